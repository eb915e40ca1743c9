package lab

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Validate checks the lab: everything pkg/stack would reject, and what
// only makes sense across hosts and devices (names, addresses and kernel
// sides given twice). It returns the warnings, and an Errors listing every
// error, or nil. For a lab read from a file, each names its line.
func Validate(l *Lab) (warnings []*FieldError, err error) {
	c := &checker{l: l}
	c.lab()
	if len(c.errs) == 0 {
		c.stacks()
	}
	return c.finish(nil)
}

// checker collects a lab's errors and warnings.
type checker struct {
	l     *Lab
	errs  []*FieldError
	warns []*FieldError
	addrs []owned // every host address seen so far, all devices
	sides []owned // every kernel-side prefix seen so far, all devices
}

// owned is an address or prefix and where it was given.
type owned struct {
	p    netip.Prefix
	dev  int
	path string
}

func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (c *checker) warnf(path, format string, args ...any) {
	c.warns = append(c.warns, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// finish places the errors in the lab's file and sorts them. Errors at or
// under a path in skip (one that failed to decode) are dropped: they
// follow from that failure.
func (c *checker) finish(skip []*FieldError) ([]*FieldError, error) {
	errs := c.errs[:0]
	for _, e := range c.errs {
		if !related(e, skip) {
			errs = append(errs, e)
		}
	}
	errs = append(errs, skip...)
	if src := c.l.src; src != nil {
		for _, e := range append(errs, c.warns...) {
			src.locate(e)
		}
	}
	sortErrors(errs)
	sortErrors(c.warns)
	if len(errs) == 0 {
		return c.warns, nil
	}
	return c.warns, Errors(errs)
}

// related reports whether e's path and one of skip's are one within the
// other.
func related(e *FieldError, skip []*FieldError) bool {
	for _, s := range skip {
		if within(e.Path, s.Path) || within(s.Path, e.Path) {
			return true
		}
	}
	return false
}

// within reports whether path p is q or a field or item of q.
func within(p, q string) bool {
	return p == q || q == "" || strings.HasPrefix(p, q) && (p[len(q)] == '.' || p[len(q)] == '[')
}

// Paths.

func (l *Lab) devPath(i int) string {
	if l.src != nil && l.src.shorthand {
		return ""
	}
	return "devices[" + strconv.Itoa(i) + "]"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// The lab.

func (c *checker) lab() {
	l := c.l
	if len(l.Devices) == 0 {
		c.errorf("", "no devices: give hosts (and the device's fields) at the top level, or a devices list")
	}
	if len(l.Devices) > MaxDevices {
		c.errorf("devices", "%d devices: at most %d", len(l.Devices), MaxDevices)
	}
	if r := l.ICMPRate.PerSecond; r < 1 && r != -1 {
		c.errorf("icmp-rate", "%d ICMP errors per second: want 1 or more, or -1 for no limit", r)
	}
	if b := l.ICMPRate.Burst; b < 1 && l.ICMPRate.PerSecond != -1 {
		c.errorf("icmp-burst", "burst %d: want 1 or more", b)
	}
	names := map[string]string{}
	pcaps := map[string]string{}
	defaults := ""
	for i := range l.Devices {
		d, path := &l.Devices[i], l.devPath(i)
		if d.Name != "" && !strings.Contains(d.Name, "%") {
			if prev, dup := names[d.Name]; dup {
				c.errorf(join(path, "name"), "device %s is also %s; give each device its own name", d.Name, prev)
			}
			names[d.Name] = path
		}
		if d.Pcap != "" {
			if prev, dup := pcaps[d.Pcap]; dup {
				c.errorf(join(path, "pcap"), "capture file %s is also %s's; give each device its own", d.Pcap, prev)
			}
			pcaps[d.Pcap] = path
		}
		if len(d.HostSide) == 0 && !d.Attach && !d.Exists {
			if defaults != "" {
				c.warnf(join(path, "host-addrs"), "no host-addrs, like %s: a device vhost creates gets %v, and two devices on one subnet do not work; give each its own", defaults, DefaultHostSide)
			}
			defaults = path
		}
		c.device(i)
	}
}

// stacks builds each device's stack, to catch anything pkg/stack rejects
// that the checks above missed.
func (c *checker) stacks() {
	for i := range c.l.Devices {
		d := &c.l.Devices[i]
		cfg := c.l.StackConfig(i)
		cfg.HostSide = d.EffectiveHostSide()
		if _, err := stack.New(cfg); err != nil {
			c.errs = append(c.errs, c.stackError(i, err))
		}
	}
}

var stackHostError = regexp.MustCompile(`^stack: host (.+?): (.*)$`)

// stackError places an error of stack.New at the host it names.
func (c *checker) stackError(i int, err error) *FieldError {
	d, path := &c.l.Devices[i], c.l.devPath(i)
	msg := strings.TrimPrefix(err.Error(), "stack: ")
	if m := stackHostError.FindStringSubmatch(err.Error()); m != nil {
		for j := range d.Hosts {
			if d.Hosts[j].Name == m[1] || d.Hosts[j].Name == "" && strconv.Itoa(j+1) == m[1] {
				return &FieldError{Path: index(join(path, "hosts"), j), Msg: m[2]}
			}
		}
	}
	return &FieldError{Path: path, Msg: msg}
}

// A device.

func (c *checker) device(i int) {
	d, path := &c.l.Devices[i], c.l.devPath(i)
	c.deviceName(d, path)
	tap := d.ModeOrDefault() == tundev.TAP
	if d.Mode != 0 && d.Mode != tundev.TUN && d.Mode != tundev.TAP {
		c.errorf(join(path, "mode"), "mode %v: want tun or tap", d.Mode)
	}
	c.hostSide(i)
	c.mac(join(path, "host-mac"), d.HostMAC, tap, "the kernel side's MAC")
	c.mac(join(path, "mac"), d.MAC, tap, "a host MAC")
	if d.MTU != 0 {
		c.mtu(join(path, "mtu"), "MTU", d.MTU)
		if d.MTU >= stack.MinMTU && d.MTU < MinIPv6MTU && d.HasIPv6() {
			c.warnf(join(path, "mtu"), "MTU %d is below %d, the smallest IPv6 allows: Linux turns IPv6 off on the device, so its IPv6 addresses will not work; use %d or more, or IPv4 only", d.MTU, MinIPv6MTU, MinIPv6MTU)
		}
	}
	if len(d.Hosts) == 0 {
		c.errorf(join(path, "hosts"), "no hosts: give at least one, e.g. hosts: [{addrs: [10.0.0.2]}]")
	}
	names := map[string]int{}
	for j := range d.Hosts {
		hpath := index(join(path, "hosts"), j)
		if n := d.Hosts[j].Name; n != "" {
			if prev, dup := names[n]; dup {
				c.errorf(join(hpath, "name"), "host name %q is also hosts[%d]'s; give each host its own", n, prev)
			}
			names[n] = j
		}
		c.host(i, j, hpath, tap)
	}
	c.families(d, path)
}

// deviceName mirrors the kernel's checks on interface names, so that the
// user reads a sentence instead of EINVAL.
func (c *checker) deviceName(d *Device, path string) {
	name, p := d.Name, join(path, "name")
	if name == "" {
		if d.Attach {
			c.errorf(p, "attach needs the name of an existing device")
		}
		return
	}
	switch {
	case len(name) > tundev.MaxNameLen:
		c.errorf(p, "name %q is %d bytes; Linux allows %d", name, len(name), tundev.MaxNameLen)
	case name == "." || name == "..":
		c.errorf(p, "name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r"):
		c.errorf(p, "name %q has a character Linux does not allow in interface names ('/', ':' or a space)", name)
	}
	if i := strings.IndexByte(name, '%'); i >= 0 {
		if !strings.HasPrefix(name[i:], "%d") || strings.IndexByte(name[i+2:], '%') >= 0 {
			c.errorf(p, "name %q: the only pattern allowed is one %%d (e.g. lab%%d)", name)
		} else if d.Attach {
			c.errorf(p, "name %q is a pattern: attach needs the name of an existing device", name)
		}
	}
}

// hostSide checks the kernel side's addresses of device i.
func (c *checker) hostSide(i int) {
	d, path := &c.l.Devices[i], join(c.l.devPath(i), "host-addrs")
	for k, p := range d.HostSide {
		kp := index(path, k)
		a := p.Addr()
		switch {
		case !p.IsValid():
			c.errorf(kp, "not an address with a prefix length (e.g. 10.0.0.1/24 or fd00::1/64)")
			continue
		case a.Zone() != "" || a.Is4In6():
			c.errorf(kp, "%v: write IPv4 addresses as a.b.c.d and IPv6 ones without a zone", p)
			continue
		case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.Is4() && a.As4()[0] >= 224:
			c.errorf(kp, "%v is not a unicast address; the kernel side needs one (e.g. 10.0.0.1/24)", p)
			continue
		}
		for _, o := range c.sides {
			if o.p.Overlaps(p.Masked()) {
				if o.dev == i {
					c.errorf(kp, "%v overlaps %s (%v); give each kernel-side prefix once", p, o.path, o.p)
				} else {
					c.errorf(kp, "%v overlaps %s (%v) of another device; give each device its own subnet", p, o.path, o.p)
				}
			}
		}
		c.sides = append(c.sides, owned{p.Masked(), i, kp})
	}
}

// families warns when hosts have a family the kernel side has no address
// of: the kernel would have no source address on the device to reach them.
func (c *checker) families(d *Device, path string) {
	side := d.EffectiveHostSide()
	if len(side) == 0 {
		return // attached, left alone: the user configured it
	}
	for _, v4 := range []bool{true, false} {
		hasSide, hosts := false, 0
		for _, p := range side {
			hasSide = hasSide || p.IsValid() && p.Addr().Is4() == v4
		}
		for j := range d.Hosts {
			if d.Hosts[j].has(v4) {
				hosts++
			}
		}
		if hosts > 0 && !hasSide {
			fam, eg := "IPv6", "fd00::1/64"
			if v4 {
				fam, eg = "IPv4", "10.0.0.1/24"
			}
			c.warnf(join(path, "host-addrs"), "%d host(s) have %s addresses but the kernel side has none: add one (e.g. %s) or the kernel has no source address to reach them from", hosts, fam, eg)
		}
	}
}

func (c *checker) mac(path string, m []byte, tap bool, what string) {
	if m == nil {
		return
	}
	if !tap {
		c.errorf(path, "%s needs mode tap (a TUN device has no MACs)", what)
		return
	}
	if err := checkMAC(m); err != nil {
		c.errorf(path, "%v %v", fmtMAC(m), err)
	}
}

func fmtMAC(m []byte) string {
	s := make([]string, len(m))
	for i, b := range m {
		s[i] = fmt.Sprintf("%02x", b)
	}
	return strings.Join(s, ":")
}

func (c *checker) mtu(path, what string, v int) {
	if v < stack.MinMTU || v > stack.MaxIPv4Packet {
		c.errorf(path, "%s %d out of range: want %d to %d", what, v, stack.MinMTU, stack.MaxIPv4Packet)
	}
}

// A host.

func (c *checker) host(i, j int, path string, tap bool) {
	h := &c.l.Devices[i].Hosts[j]
	if len(h.Addrs) == 0 {
		c.errorf(join(path, "addrs"), "no addresses: give at least one, e.g. addrs: [10.0.0.2]")
	}
	for k, p := range h.Addrs {
		c.hostAddr(i, index(join(path, "addrs"), k), p)
	}
	c.mac(join(path, "mac"), h.MAC, tap, "a host MAC")
	if h.Hops < 0 || h.Hops > MaxHops {
		c.errorf(join(path, "hops"), "%d hops: want 0 to %d", h.Hops, MaxHops)
	}
	if h.Hops != 0 && len(h.Routers) != 0 {
		c.errorf(join(path, "hops"), "give hops (generated routers) or routers (explicit ones), not both")
	}
	if len(h.Routers) > MaxHops {
		c.errorf(join(path, "routers"), "%d routers: at most %d (Linux sends with a TTL of 64)", len(h.Routers), MaxHops)
	}
	for k := range h.Routers {
		c.router(i, index(join(path, "routers"), k), &h.Routers[k])
	}
	if h.PathMTU != 0 {
		c.mtu(join(path, "path-mtu"), "path MTU", h.PathMTU)
		if h.PathMTU >= stack.MinMTU && h.PathMTU < MinIPv6MTU && h.has(false) {
			c.warnf(join(path, "path-mtu"), "path MTU %d is below %d, the smallest an IPv6 link may have (RFC 8200 §5): IPv6 packets larger than it get Packet Too Big, which Linux ignores below 1280", h.PathMTU, MinIPv6MTU)
		}
	}
	c.impairment(path, h.Impair)
}

// hostAddr checks one host address or prefix of device i, alone and
// against every other one of the lab.
func (c *checker) hostAddr(i int, path string, p netip.Prefix) {
	if !p.IsValid() {
		c.errorf(path, "not an address or prefix")
		return
	}
	if msg := addrProblem(p); msg != "" {
		c.errorf(path, "%s", msg)
		return
	}
	d := &c.l.Devices[i]
	for _, s := range d.EffectiveHostSide() {
		if p.IsSingleIP() && s.Addr() == p.Addr() {
			c.errorf(path, "%v is also the kernel side's address (%v); pick another", p.Addr(), s)
			return
		}
	}
	for _, o := range c.addrs {
		if !o.p.Overlaps(p) {
			continue
		}
		where := o.path
		if o.dev != i {
			where += " (on another device: routes to it would go to one device only)"
		}
		switch {
		case o.p == p && p.IsSingleIP():
			c.errorf(path, "%v is given twice; it is also %s", PrefixString(p), where)
		case o.p == p:
			c.errorf(path, "prefix %v is given twice; it is also %s", p, where)
		case p.IsSingleIP():
			c.errorf(path, "%v is inside prefix %v, %s", p.Addr(), o.p, where)
		default:
			c.errorf(path, "prefix %v overlaps %v, %s", PrefixString(p), PrefixString(o.p), where)
		}
		return
	}
	c.addrs = append(c.addrs, owned{p, i, path})
}

// addrProblem says what is wrong with a host address or prefix alone.
func addrProblem(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case a.Zone() != "" || a.Is4In6():
		return fmt.Sprintf("%v: write IPv4 addresses as a.b.c.d and IPv6 ones without a zone", p)
	case p.Masked() != p:
		return fmt.Sprintf("prefix %v has host bits set (did you mean %v?)", p, p.Masked())
	case a.Is4() && p.Bits() < 16:
		return fmt.Sprintf("prefix %v is larger than /16 (%d hosts at most)", p, stack.MaxPrefixHosts)
	case a.Is6() && p.Bits() < 112:
		return fmt.Sprintf("prefix %v is larger than /112 (%d hosts at most)", p, stack.MaxPrefixHosts)
	case a.Is4() && (a.As4()[0] == 0 || a.As4()[0] >= 224 || a.IsLoopback()):
		return fmt.Sprintf("%v is not a unicast address a host can have", PrefixString(p))
	case a.Is6() && a.IsLinkLocalUnicast():
		return fmt.Sprintf("%v is a link-local address, which needs a zone and never crosses a router; use a unique-local IPv6 address (e.g. fd00::2) or an IPv4 one", PrefixString(p))
	case a.Is6() && (a.IsMulticast() || a.IsUnspecified() || a.IsLoopback()):
		return fmt.Sprintf("%v is not a unicast address a host can have", PrefixString(p))
	}
	return ""
}

// A router.

func (c *checker) router(i int, path string, r *Router) {
	d := &c.l.Devices[i]
	for _, x := range []struct {
		key, family string
		a           netip.Addr
		v4          bool
	}{{"addr4", "IPv4", r.Addr4, true}, {"addr6", "IPv6", r.Addr6, false}} {
		if !x.a.IsValid() {
			continue
		}
		p := join(path, x.key)
		if x.a.Is4() != x.v4 {
			c.errorf(p, "%v is not an %s address", x.a, x.family)
			continue
		}
		if msg := addrProblem(netip.PrefixFrom(x.a, x.a.BitLen())); msg != "" {
			c.errorf(p, "router %s", msg)
			continue
		}
		for _, s := range d.EffectiveHostSide() {
			if s.Addr() == x.a {
				c.errorf(p, "router %v is the kernel side's own address; the kernel would drop its ICMP errors as its own", x.a)
			}
		}
	}
	if r.MTU != 0 {
		c.mtu(join(path, "mtu"), "router MTU", r.MTU)
	}
	c.impairment(path, r.Impair)
}

// impairment checks the impairment fields at path.
func (c *checker) impairment(path string, m Impairment) {
	for _, x := range []struct {
		key string
		d   time.Duration
	}{{"delay", m.Delay}, {"jitter", m.Jitter}} {
		if x.d < 0 {
			c.errorf(join(path, x.key), "%v is negative; want 0 or more", x.d)
		}
	}
	for _, x := range []struct {
		key string
		v   float64
	}{{"loss", m.Loss}, {"dup", m.Dup}} {
		if err := checkPercent(x.v); err != nil {
			c.errorf(join(path, x.key), "%s %v", FormatPercent(x.v), err)
		}
	}
}
