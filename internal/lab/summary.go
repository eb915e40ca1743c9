package lab

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Totals counts what a lab holds.
type Totals struct {
	Devices, Hosts, Addrs, Routers int
}

// Totals returns the lab's devices, hosts, addresses answered for (each
// address of a prefix counted) and routers (those of each host counted).
func (l *Lab) Totals() Totals {
	t := Totals{Devices: len(l.Devices)}
	for i := range l.Devices {
		d := &l.Devices[i]
		t.Hosts += len(d.Hosts)
		for j := range d.Hosts {
			t.Addrs += d.HostAddrCount(j)
			t.Routers += d.Hosts[j].RouterCount()
		}
	}
	return t
}

// HostAddrCount is the number of addresses host j answers for.
func (d *Device) HostAddrCount(j int) int {
	n := 0
	for _, p := range d.Hosts[j].Addrs {
		n += CountAddrs(p, d.EffectiveHostSide())
	}
	return n
}

func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	if strings.HasSuffix(one, "s") {
		return fmt.Sprintf("%d %ses", n, one)
	}
	return fmt.Sprintf("%d %ss", n, one)
}

func (t Totals) String() string {
	return strings.Join([]string{plural(t.Devices, "device"), plural(t.Hosts, "host"),
		plural(t.Addrs, "address"), plural(t.Routers, "router")}, ", ")
}

// WriteSummary describes the lab for people: each device, its hosts and
// their addresses, routers and impairments.
func (l *Lab) WriteSummary(w io.Writer) error {
	var b strings.Builder
	t := l.Totals()
	fmt.Fprintf(&b, "%s (seed %d, ICMP errors %s)\n", t, l.Seed, l.ICMPRate)
	for i := range l.Devices {
		l.writeDevice(&b, i)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r ICMPRate) String() string {
	if r.PerSecond < 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d/s, burst %d", r.PerSecond, r.Burst)
}

func (l *Lab) writeDevice(b *strings.Builder, i int) {
	d := &l.Devices[i]
	fmt.Fprintf(b, "device %s: %v", d.DisplayName(), d.ModeOrDefault())
	switch {
	case len(d.HostSide) > 0:
		fmt.Fprintf(b, ", kernel side %s", prefixList(d.HostSide))
	case d.Attach:
		b.WriteString(", kernel side left as it is")
	default:
		fmt.Fprintf(b, ", kernel side %v if vhost creates it", DefaultHostSide)
	}
	if d.MTU != 0 {
		fmt.Fprintf(b, ", mtu %d", d.MTU)
	}
	if d.MAC != nil {
		fmt.Fprintf(b, ", host MAC %v", d.MAC)
	}
	if d.Attach {
		b.WriteString(", attach only")
	}
	if d.Pcap != "" {
		fmt.Fprintf(b, ", capture to %s", d.Pcap)
	}
	b.WriteString("\n")
	for j := range d.Hosts {
		l.writeHost(b, i, j)
	}
}

func (l *Lab) writeHost(b *strings.Builder, i, j int) {
	d := &l.Devices[i]
	h := &d.Hosts[j]
	fmt.Fprintf(b, "  host %s: %s", h.DisplayName(), prefixList(h.Addrs))
	if n := d.HostAddrCount(j); n != 1 {
		fmt.Fprintf(b, " (%s)", plural(n, "address"))
	}
	if h.MAC != nil {
		fmt.Fprintf(b, ", MAC %v", h.MAC)
	}
	if h.PathMTU != 0 {
		fmt.Fprintf(b, ", path MTU %d", h.PathMTU)
	}
	if !h.Impair.IsZero() {
		fmt.Fprintf(b, ", %s", h.Impair)
	}
	b.WriteString("\n")
	if h.RouterCount() == 0 {
		return
	}
	v4, v6 := l.RouterAddrs(i, j)
	var via []string
	for k := range v4 {
		via = append(via, routerString(h, v4[k], v6[k]))
	}
	fmt.Fprintf(b, "    behind %s: %s\n", plural(len(via), "router"), strings.Join(via, ", "))
	for k, r := range h.Routers {
		if r.MTU != 0 || !r.Impair.IsZero() {
			var extra []string
			if r.MTU != 0 {
				extra = append(extra, fmt.Sprintf("mtu %d", r.MTU))
			}
			if !r.Impair.IsZero() {
				extra = append(extra, r.Impair.String())
			}
			fmt.Fprintf(b, "    router %d (%s): %s\n", k+1, routerString(h, v4[k], v6[k]), strings.Join(extra, ", "))
		}
	}
}

// routerString writes a router's addresses of the families its host has.
func routerString(h *Host, a4, a6 netip.Addr) string {
	var s []string
	if h.has(true) {
		s = append(s, a4.String())
	}
	if h.has(false) {
		s = append(s, a6.String())
	}
	return strings.Join(s, " ")
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = PrefixString(p)
	}
	return strings.Join(s, " ")
}
