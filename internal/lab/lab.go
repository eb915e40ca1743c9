package lab

import (
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Defaults and limits.
const (
	// DefaultSeed seeds the impairments' randomness when a lab gives no
	// seed, so that runs are reproducible by default.
	DefaultSeed = 1
	// DefaultICMPRate and DefaultICMPBurst bound ICMP error messages like
	// Linux's net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst.
	DefaultICMPRate  = 1000
	DefaultICMPBurst = 50
	// MaxHops is the most routers in front of one host: Linux sends with
	// a TTL of 64, and the host's replies cross them all again.
	MaxHops = stack.MaxRouters
	// MaxDevices is the most devices of one lab; each gets its own block
	// of generated router addresses (see GeneratedRouter).
	MaxDevices = 255
	// MinIPv6MTU is the smallest link MTU IPv6 allows (RFC 8200 §5); Linux
	// disables IPv6 on a device with a smaller one.
	MinIPv6MTU = 1280
)

// DefaultHostSide is the kernel side's address on a device vhost creates
// when none is given.
var DefaultHostSide = netip.MustParsePrefix("10.0.0.1/24")

// DefaultHostAddr is the address answered for when the command line gives
// none.
var DefaultHostAddr = netip.MustParsePrefix("10.0.0.2/32")

// Lab is what vhost runs: devices, each with its hosts.
type Lab struct {
	// Seed seeds the impairments' randomness: the same seed and the same
	// packets give the same losses, duplicates and delays.
	Seed uint64
	// ICMPRate bounds the ICMP error messages each device's stack sends.
	ICMPRate ICMPRate
	// Devices are run side by side, each with its own stack and loop.
	Devices []Device

	// src is the file the lab was read from, for error positions; nil for
	// a lab built in code (from flags).
	src *source
}

// ICMPRate is a token bucket for ICMP error messages (RFC 1812 §4.3.2.8).
type ICMPRate struct {
	// PerSecond is the refill rate; -1 means no limit.
	PerSecond int
	// Burst is the bucket size.
	Burst int
}

// Device is one TUN or TAP device and the hosts behind it.
type Device struct {
	// Name is the interface name; it may contain one %d, which the kernel
	// replaces with the lowest free number. "" means DefaultDeviceName.
	// A device that exists is attached to and kept; one that does not is
	// created and removed on exit.
	Name string
	// Attach fails instead of creating a device that does not exist.
	Attach bool
	// Exists is set by a caller that has looked: the device exists now, so
	// vhost attaches to it and gives it no default kernel side. Never read
	// from a file.
	Exists bool
	// Mode is TUN (raw IP) or TAP (Ethernet, with ARP and neighbour
	// discovery). Zero means TUN.
	Mode tundev.Mode
	// HostSide are the kernel side's addresses with their prefix lengths,
	// IPv4 and IPv6. Empty: DefaultHostSide on a device vhost creates, the
	// device's own addresses left alone on one it attaches to.
	HostSide []netip.Prefix
	// HostMAC sets the kernel side's MAC (TAP only); nil leaves it.
	HostMAC net.HardwareAddr
	// MTU sets the device's MTU; 0 leaves it (1500 on a new device).
	MTU int
	// MAC is the default MAC of the hosts (TAP only); nil: each address
	// has its own (stack.MACFor).
	MAC net.HardwareAddr
	// Pcap, if set, is a file that records every packet in and out.
	Pcap string
	// Hosts are the virtual hosts on the device.
	Hosts []Host
}

// DefaultDeviceName is the name pattern of a device given no name.
const DefaultDeviceName = tundev.DefaultName

// DisplayName is the device's name, or the default pattern.
func (d *Device) DisplayName() string {
	if d.Name == "" {
		return DefaultDeviceName
	}
	return d.Name
}

// ModeOrDefault is the device's mode, TUN when not set.
func (d *Device) ModeOrDefault() tundev.Mode {
	if d.Mode == 0 {
		return tundev.TUN
	}
	return d.Mode
}

// EffectiveHostSide is the kernel side assumed when checking the lab: the
// given addresses, or DefaultHostSide on a device vhost may create.
func (d *Device) EffectiveHostSide() []netip.Prefix {
	if len(d.HostSide) == 0 && !d.Attach && !d.Exists {
		return []netip.Prefix{DefaultHostSide}
	}
	return d.HostSide
}

// HasIPv6 reports whether the device's kernel side or hosts have IPv6
// addresses.
func (d *Device) HasIPv6() bool {
	for _, p := range d.HostSide {
		if p.Addr().Is6() {
			return true
		}
	}
	for i := range d.Hosts {
		if d.Hosts[i].has(false) {
			return true
		}
	}
	return false
}

// Host is one entry of virtual hosts: an address, several, or prefixes
// standing for one host per address, with what stands between the kernel
// and them.
type Host struct {
	// Name labels the host in logs and errors; "" means its first address.
	Name string
	// Addrs are addresses (/32, /128) or prefixes, IPv4 and IPv6.
	Addrs []netip.Prefix
	// MAC, on TAP, is the MAC of every address of the host; nil: the
	// device's MAC, or each address its own.
	MAC net.HardwareAddr
	// Hops is a number of generated routers in front of the host; Routers
	// lists them explicitly instead. At most one of the two is given.
	Hops    int
	Routers []Router
	// PathMTU, if not zero, is the MTU of the last link into the host.
	PathMTU int
	// Impair is what happens to every packet the host sends.
	Impair Impairment
}

// DisplayName is the host's name, or its first address.
func (h *Host) DisplayName() string {
	if h.Name != "" {
		return h.Name
	}
	if len(h.Addrs) > 0 {
		return PrefixString(h.Addrs[0])
	}
	return "(no address)"
}

// RouterCount is the number of routers in front of the host.
func (h *Host) RouterCount() int { return max(h.Hops, len(h.Routers)) }

// has reports whether the host has IPv4 (v4) or IPv6 (!v4) addresses.
func (h *Host) has(v4 bool) bool {
	for _, p := range h.Addrs {
		if v4 && p.Addr().Is4() || !v4 && p.Addr().Is6() {
			return true
		}
	}
	return false
}

// Router is one explicit router. A zero address means the generated one.
type Router struct {
	Addr4, Addr6 netip.Addr
	// MTU, if not zero, is the MTU of the link from the router towards the
	// host.
	MTU int
	// Impair is what happens to every packet crossing the router towards
	// the kernel, its own ICMP errors included.
	Impair Impairment
}

// Impairment is what a path does to packets, in the units people write.
type Impairment struct {
	// Delay, plus a uniformly random amount in [-Jitter, +Jitter], delays
	// every packet.
	Delay, Jitter time.Duration
	// Loss and Dup are percentages, 0 to 100, of packets lost and
	// duplicated.
	Loss, Dup float64
}

// IsZero reports whether the impairment does nothing.
func (m Impairment) IsZero() bool { return m == Impairment{} }

// String is the impairment as a lab file would write it.
func (m Impairment) String() string {
	var parts []string
	if m.Delay != 0 {
		parts = append(parts, "delay "+m.Delay.String())
	}
	if m.Jitter != 0 {
		parts = append(parts, "jitter "+m.Jitter.String())
	}
	if m.Loss != 0 {
		parts = append(parts, "loss "+FormatPercent(m.Loss))
	}
	if m.Dup != 0 {
		parts = append(parts, "dup "+FormatPercent(m.Dup))
	}
	return strings.Join(parts, " ")
}

// PrefixString writes a single address without its /32 or /128.
func PrefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
