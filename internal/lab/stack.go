package lab

import (
	"net/netip"
	"slices"

	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// StackConfig returns the stack configuration of device i. Its HostSide is
// the device's as given: a caller that creates the device and gives it
// DefaultHostSide sets that itself. MTU is the device's MTU setting (zero:
// the stack's default); a caller that knows the device's real MTU sets it,
// and Log and Now, itself.
func (l *Lab) StackConfig(i int) stack.Config {
	d := &l.Devices[i]
	cfg := stack.Config{
		Ethernet: d.ModeOrDefault() == tundev.TAP,
		HostSide: slices.Clone(d.HostSide),
		MTU:      d.MTU,
		Seed:     l.Seed,
		ICMPRate: stack.ICMPRateLimit{PerSecond: l.ICMPRate.PerSecond, Burst: l.ICMPRate.Burst},
		Hosts:    make([]stack.Host, len(d.Hosts)),
	}
	for j := range d.Hosts {
		cfg.Hosts[j] = l.stackHost(i, &d.Hosts[j])
	}
	return cfg
}

func (l *Lab) stackHost(i int, h *Host) stack.Host {
	sh := stack.Host{
		Name:    h.Name,
		Addrs:   slices.Clone(h.Addrs),
		MAC:     h.MAC,
		PathMTU: h.PathMTU,
		Impair:  h.Impair.stack(),
	}
	if sh.MAC == nil {
		sh.MAC = l.Devices[i].MAC
	}
	n := h.RouterCount()
	if n > 0 {
		sh.Routers = make([]stack.Router, n)
	}
	for k := range sh.Routers {
		var r Router
		if k < len(h.Routers) {
			r = h.Routers[k]
		}
		sh.Routers[k] = stack.Router{Addr4: r.Addr4, Addr6: r.Addr6, MTU: r.MTU, Impair: r.Impair.stack()}
		if i > 0 {
			// The stack's generated addresses are the same on every
			// device; a route can point to one device only.
			sh.Routers[k].Addr4, sh.Routers[k].Addr6 = routerAddrs(i, k+1, r)
		}
	}
	return sh
}

// stack converts percentages to the stack's fractions.
func (m Impairment) stack() stack.Impairment {
	return stack.Impairment{Delay: m.Delay, Jitter: m.Jitter, Loss: m.Loss / 100, Duplicate: m.Dup / 100}
}

// GeneratedRouter returns the addresses of the k-th (1-based) generated
// router of device dev (0-based): stack.GeneratedRouter(k) on the first
// device, 198.18.0.k and 2001:db8:ffff::k, and a block of its own on each
// other one, 198.18.dev.k and 2001:db8:ffff::XXYY with XX the device and
// YY the router in hexadecimal (2001:db8:ffff::101 for the first router of
// the second device), so that routes to them lead to the right device.
func GeneratedRouter(dev, k int) (netip.Addr, netip.Addr) {
	return stack.GeneratedRouter(dev<<8 | k)
}

// routerAddrs are the addresses router r, the k-th of a host of device
// dev, answers from: its own, or generated ones.
func routerAddrs(dev, k int, r Router) (netip.Addr, netip.Addr) {
	g4, g6 := GeneratedRouter(dev, k)
	if r.Addr4.IsValid() {
		g4 = r.Addr4
	}
	if r.Addr6.IsValid() {
		g6 = r.Addr6
	}
	return g4, g6
}

// RouterAddrs returns the addresses of the routers in front of host j of
// device i, explicit or generated, nearest to the kernel first.
func (l *Lab) RouterAddrs(i, j int) (v4, v6 []netip.Addr) {
	h := &l.Devices[i].Hosts[j]
	for k := range h.RouterCount() {
		var r Router
		if k < len(h.Routers) {
			r = h.Routers[k]
		}
		a4, a6 := routerAddrs(i, k+1, r)
		v4, v6 = append(v4, a4), append(v6, a6)
	}
	return v4, v6
}

// Routes returns the routes vhost adds through device i whose kernel side
// is hostSide, so that the kernel reaches every host and accepts the
// routers' ICMP errors under strict reverse-path filtering: each host
// address or prefix outside hostSide's prefixes, and each router address
// (of the families its host uses) outside them, as a /32 or /128.
func (l *Lab) Routes(i int, hostSide []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	add := func(p netip.Prefix) {
		if !covered(hostSide, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	d := &l.Devices[i]
	for j := range d.Hosts {
		h := &d.Hosts[j]
		for _, p := range h.Addrs {
			add(p.Masked())
		}
		v4, v6 := l.RouterAddrs(i, j)
		for k := range v4 {
			if h.has(true) {
				add(netip.PrefixFrom(v4[k], 32))
			}
			if h.has(false) {
				add(netip.PrefixFrom(v6[k], 128))
			}
		}
	}
	return out
}

// covered reports whether p is inside one of the prefixes of sides.
func covered(sides []netip.Prefix, p netip.Prefix) bool {
	for _, s := range sides {
		if s.Addr().Is4() == p.Addr().Is4() && s.Bits() <= p.Bits() && s.Masked().Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// CountAddrs is the number of addresses a host address or prefix stands
// for, as the stack answers them: less the network and broadcast
// addresses of an IPv4 prefix shorter than /31, the Subnet-Router anycast
// address of an IPv6 prefix shorter than /127, and the kernel side's
// addresses.
func CountAddrs(p netip.Prefix, hostSide []netip.Prefix) int {
	bits := p.Addr().BitLen() - p.Bits()
	if bits > 30 {
		bits = 30 // larger prefixes are refused anyway
	}
	n := 1 << bits
	switch {
	case p.Addr().Is4() && p.Bits() < 31:
		n -= 2
	case p.Addr().Is6() && p.Bits() < 127:
		n--
	}
	for _, s := range hostSide {
		if a := s.Addr(); p.Contains(a) && p.Bits() < a.BitLen() && isHostPart(p, a) {
			n--
		}
	}
	return n
}

// isHostPart reports whether a, inside p, is one of the addresses
// CountAddrs counts before excluding the kernel side.
func isHostPart(p netip.Prefix, a netip.Addr) bool {
	if a == p.Masked().Addr() {
		return p.Addr().Is4() && p.Bits() >= 31 || p.Addr().Is6() && p.Bits() >= 127
	}
	if p.Addr().Is4() && p.Bits() < 31 {
		b := a.As4()
		host := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		mask := ^uint32(0) >> p.Bits()
		return host&mask != mask
	}
	return true
}
