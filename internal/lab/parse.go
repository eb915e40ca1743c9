package lab

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// The parsers below read one value as a user writes it, on the command
// line or in a lab file; both use the same ones, so a value means the same
// thing in both places. Their errors quote the value and say what to write.

// ParseAddrOrPrefix parses a host address (10.0.0.2, fd00::2) or a prefix
// (10.0.1.0/24, fd00::1:0/112). A single address becomes a /32 or /128.
func ParseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an address or prefix (e.g. 10.0.0.2, 10.0.1.0/24, fd00::2 or fd00::1:0/112)", s)
		}
		if err := checkAddrSyntax(s, p.Addr()); err != nil {
			return p, err
		}
		if p != p.Masked() {
			return p, fmt.Errorf("prefix %q has host bits set (did you mean %v?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix (e.g. 10.0.0.2, 10.0.1.0/24, fd00::2 or fd00::1:0/112)", s)
	}
	if err := checkAddrSyntax(s, a); err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseHostSide parses a kernel-side address with its prefix length,
// 10.0.0.1/24 or fd00::1/64.
func ParseHostSide(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			return p, fmt.Errorf("%q has no prefix length: write the address with it, e.g. 10.0.0.1/24 or fd00::1/64", s)
		}
		return p, fmt.Errorf("%q is not an address with a prefix length (e.g. 10.0.0.1/24 or fd00::1/64)", s)
	}
	if err := checkAddrSyntax(s, p.Addr()); err != nil {
		return p, err
	}
	return p, nil
}

// checkAddrSyntax rejects the address forms vhost does not take.
func checkAddrSyntax(s string, a netip.Addr) error {
	if a.Zone() != "" {
		return fmt.Errorf("%q: zones (%%%s) are not supported; the device is the zone", s, a.Zone())
	}
	if a.Is4In6() {
		return fmt.Errorf("%q: write IPv4 addresses as a.b.c.d (%v)", s, a.Unmap())
	}
	return nil
}

// ParseRouter parses a router's addresses: an IPv4 address, an IPv6 one,
// or both separated by a comma (192.0.2.1,2001:db8::1). The family not
// given is generated.
func ParseRouter(s string) (Router, error) {
	var r Router
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		a, err := netip.ParseAddr(f)
		if err != nil {
			return r, fmt.Errorf("router %q: %q is not an address (want an IPv4 address, an IPv6 one, or both: 192.0.2.1,2001:db8::1)", s, f)
		}
		if err := checkAddrSyntax(f, a); err != nil {
			return r, fmt.Errorf("router %q: %w", s, err)
		}
		dst := &r.Addr4
		if a.Is6() {
			dst = &r.Addr6
		}
		if dst.IsValid() {
			return r, fmt.Errorf("router %q: two %s addresses; a router has one of each family (a second router is another --router or list item)", s, family(a))
		}
		*dst = a
	}
	return r, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// ParseDuration parses a delay or jitter such as 20ms or 1.5s. A bare 0
// is allowed; other numbers need a unit.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return 0, fmt.Errorf("%q has no unit: write e.g. %sms or %ss", s, s, s)
		}
		return 0, fmt.Errorf("%q is not a duration (e.g. 20ms, 1.5s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative; a delay is 0 or more", s)
	}
	return d, nil
}

// ParsePercent parses a percentage, 10% or 10 (both ten percent; 0.5 is
// half a percent, not fifty), from 0 to 100.
func ParsePercent(s string) (float64, error) {
	num := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a percentage (e.g. 10%% or 0.5%%)", s)
	}
	if err := checkPercent(v); err != nil {
		return 0, fmt.Errorf("%q %w", s, err)
	}
	return v, nil
}

// checkPercent says what is wrong with a percentage out of range, to be
// written after the value.
func checkPercent(v float64) error {
	switch {
	case math.IsNaN(v):
		return fmt.Errorf("is not a number; want 0 to 100%%")
	case v < 0:
		return fmt.Errorf("is below 0%%")
	case v > 100:
		return fmt.Errorf("is above 100%%")
	}
	return nil
}

// FormatPercent writes a percentage as ParsePercent reads it.
func FormatPercent(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64) + "%"
}

// ParseMAC parses an Ethernet unicast MAC address.
func ParseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return nil, fmt.Errorf("%q is not an Ethernet MAC address (e.g. 02:00:00:00:00:02)", s)
	}
	if err := checkMAC(m); err != nil {
		return nil, fmt.Errorf("%q %w", s, err)
	}
	return m, nil
}

// checkMAC says what is wrong with a MAC, to be written after it.
func checkMAC(m net.HardwareAddr) error {
	switch {
	case len(m) != 6:
		return fmt.Errorf("is not a 6-byte Ethernet address")
	case m[0]&1 != 0:
		return fmt.Errorf("is a multicast address; use a unicast one (first byte even, e.g. 02:...)")
	case m[0]|m[1]|m[2]|m[3]|m[4]|m[5] == 0:
		return fmt.Errorf("is all zeros; use e.g. 02:00:00:00:00:01")
	}
	return nil
}

// ParseMode parses tun or tap.
func ParseMode(s string) (tundev.Mode, error) {
	m, err := tundev.ParseMode(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a mode: want tun (IP packets) or tap (Ethernet frames)", s)
	}
	return m, nil
}
