package stack

import (
	"net"
	"net/netip"
	"time"
)

// Host describes one entry of the hosts a stack answers for: a single
// address, or a prefix meaning one host per address in it (up to 65536),
// with what stands between the kernel and them.
type Host struct {
	// Name labels the entry in logs and errors (lab files name hosts).
	Name string
	// Addrs are the entry's IPv4 and IPv6 addresses or prefixes. A prefix
	// (10.0.0.0/16, fd00::/112) is one host per address, less the kernel
	// side's addresses and, for IPv4 prefixes shorter than /31, the network
	// and broadcast addresses.
	Addrs []netip.Prefix
	// MAC is the hardware address on Ethernet of every address in the
	// entry. Default: each address has its own, MACFor(address).
	MAC net.HardwareAddr
	// Routers stand between the kernel and the entry's hosts, nearest to
	// the kernel first: a packet arriving with TTL (hop limit) k <= len(Routers)
	// is answered with Time Exceeded by Routers[k-1].
	Routers []Router
	// PathMTU, if not zero, is the MTU of the last link into the hosts: a
	// larger IPv4 packet with DF set, or any larger IPv6 packet, is
	// answered with "fragmentation needed" / "packet too big" by the last
	// router, or by the host itself when there are no routers.
	PathMTU int
	// Impair applies to every packet the entry's hosts send.
	Impair Impairment
}

// Router is one simulated hop.
type Router struct {
	// Addr4 and Addr6 are the router's addresses, the sources of its ICMP
	// errors. Zero: generated, 198.18.0.k and 2001:db8:ffff::k for the
	// k-th router (1-based) of a chain (RFC 2544's benchmarking range and
	// RFC 3849's documentation prefix: never anyone's real address).
	Addr4, Addr6 netip.Addr
	// MTU, if not zero, is the MTU of the link from this router towards the
	// host; larger packets get "fragmentation needed" / "packet too big"
	// from this router.
	MTU int
	// Impair applies to every packet that crosses this router towards the
	// kernel, including its own ICMP errors.
	Impair Impairment
}

// Impairment is what a path does to packets: they are delayed by Delay
// plus a uniformly random amount in [-Jitter, +Jitter] (never below zero),
// lost with probability Loss, and duplicated with probability Duplicate.
// The randomness comes from Config.Seed, so a lab behaves the same way run
// after run for the same packets.
type Impairment struct {
	Delay     time.Duration
	Jitter    time.Duration
	Loss      float64 // fraction, 0..1
	Duplicate float64 // fraction, 0..1
}

// IsZero reports whether the impairment does nothing.
func (m Impairment) IsZero() bool { return m == Impairment{} }

// ICMPRateLimit bounds the ICMP error messages (Time Exceeded, Destination
// Unreachable, Packet Too Big) the stack sends, with a token bucket like
// Linux's net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst (RFC 1812
// §4.3.2.8). Echo replies are not limited.
type ICMPRateLimit struct {
	// PerSecond is the refill rate. Default 1000. Negative: unlimited.
	PerSecond int
	// Burst is the bucket size. Default 50.
	Burst int
}

// GeneratedRouter returns the generated addresses of the k-th router
// (1-based) of a chain: 198.18.0.k and 2001:db8:ffff::k.
func GeneratedRouter(k int) (netip.Addr, netip.Addr) {
	v4 := netip.AddrFrom4([4]byte{198, 18, byte(k >> 8), byte(k)})
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5] = 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff
	b[14], b[15] = byte(k>>8), byte(k)
	return v4, netip.AddrFrom16(b)
}
