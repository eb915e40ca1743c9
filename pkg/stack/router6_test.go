package stack_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

// routed6 returns a stack whose hosts 10.0.0.2 and fd00::2 sit behind
// three generated routers, the last link with the given path MTU.
func routed6(t testing.TB, ethernet bool, pathMTU int, mods ...func(*stack.Config)) (*stack.Stack, *stack.Out) {
	return newStack(t, ethernet, append([]func(*stack.Config){func(c *stack.Config) {
		c.Addrs = nil
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32), netip.PrefixFrom(hostAddr6, 128)},
			Routers: make([]stack.Router, 3), PathMTU: pathMTU}}
		c.HostSide = append(c.HostSide, netip.MustParsePrefix("fd00::1/64"))
		c.ICMPRate = stack.ICMPRateLimit{PerSecond: -1}
	}}, mods...)...)
}

// router6 is the generated IPv6 address of router k (1-based).
func router6(k int) netip.Addr {
	_, a := stack.GeneratedRouter(k)
	return a
}

// probe6 is a UDP datagram from the kernel side to fd00::2 with the given
// hop limit and data size, as traceroute -6 sends.
func probe6(hl uint8, size int) []byte {
	b := pt.Packet6{Src: kernelAddr6, Dst: hostAddr6, NextHeader: pt.NHUDP,
		Payload: pt.UDP6(kernelAddr6, hostAddr6, 40000, 33434+uint16(hl), make([]byte, size))}.Bytes()
	b[7] = hl
	return b
}

func TestTimeExceeded6AtEachRouter(t *testing.T) {
	s, out := routed6(t, false, 0)
	for hl := uint8(0); hl <= 3; hl++ {
		probe := probe6(hl, 32)
		k := max(int(hl), 1) // the router where it runs out: hop limit 0 and 1 at the first
		r := handle(t, s, out, fmt.Sprintf("hop limit %d", hl), probe, stack.TimeExceeded, 1)[0]
		// Router k's error crosses k-1 routers back; it quotes the probe
		// with the hop limit it had there.
		pt.IPv6(t, r, pt.Src6(router6(k)), pt.Dst6(kernelAddr6), pt.HopLimit(uint8(64-(k-1))), pt.TrafficClass(0),
			pt.ICMPv6(pt.ICMPv6Error(3, 0, 0, probe, uint8(max(int(hl)-(k-1), 0)))))
	}
	// Past the routers the host answers: hop limit 1 left, port
	// unreachable from the host, 64 less the three routers.
	probe := probe6(4, 32)
	r := handle(t, s, out, "hop limit 4", probe, stack.PortUnreachable, 1)[0]
	pt.IPv6(t, r, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.HopLimit(61), pt.ICMPv6(pt.ICMPv6Error(1, 4, 0, probe, 1)))
}

// TestTimeExceeded6OnTAP: errors of routers come from the host's MAC, to
// the frame's source.
func TestTimeExceeded6OnTAP(t *testing.T) {
	s, out := routed6(t, true, 0)
	probe := probe6(2, 8)
	r := handle(t, s, out, "hop limit 2", frame6(hostMAC6, probe), stack.TimeExceeded, 1)[0]
	pt.EthernetFrame(t, r, pt.EthAddrs(kernelMAC, hostMAC6), pt.EthIPv6(pt.Src6(router6(2)), pt.ICMPv6(pt.ICMPv6Error(3, 0, 0, probe, 1))))
}

func TestRoutedEcho6HopLimit(t *testing.T) {
	s, out := routed6(t, false, 0)
	r := handle(t, s, out, "echo", echo6(t, nil), stack.Replied, 1)[0]
	pt.IPv6(t, r, pt.Src6(hostAddr6), pt.HopLimit(61), pt.ICMPv6(pt.EchoReply6(1, 1, []byte("payload!"))))
	// Neighbour discovery is not routed: the advertisement has hop limit
	// 255 whatever stands in front of the host.
	s, out = routed6(t, true, 0)
	r = handle(t, s, out, "solicitation", rawFrame(solicitedMAC6, kernelMAC, layers.EthernetTypeIPv6, solicit.packet()), stack.Replied, 1)[0]
	pt.EthernetFrame(t, r, pt.EthIPv6(pt.HopLimit(255), pt.ICMPv6(pt.NeighborAdvert(hostAddr6, pt.NASolicited|pt.NAOverride, hostMAC6))))
}

func TestExplicitRouters6(t *testing.T) {
	r1, r2 := netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:2::1")
	s, out := newStack(t, false, func(c *stack.Config) {
		c.Addrs = nil
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr6, 128)},
			Routers: []stack.Router{{Addr6: r1}, {Addr6: r2, MTU: 1400}}}}
	})
	r := handle(t, s, out, "hop limit 2", probe6(2, 8), stack.TimeExceeded, 1)[0]
	pt.IPv6(t, r, pt.Src6(r2), pt.HopLimit(63))
	probe := probe6(64, 1400-48)
	r = handle(t, s, out, "1401 bytes", probe6(64, 1401-48), stack.TooBig, 1)[0]
	pt.IPv6(t, r, pt.Src6(r2), pt.HopLimit(63), pt.ICMPv6(pt.ICMPv6Error(2, 0, 1400, probe6(64, 1401-48), 63)))
	handle(t, s, out, "1400 bytes", probe, stack.PortUnreachable, 1)
}

func TestPacketTooBig6(t *testing.T) {
	tests := []struct {
		name    string
		routers []stack.Router
		pathMTU int
		size    int // packet size
		from    netip.Addr
		mtu     uint32
		hl      uint8 // of the error
		quoteHL uint8
	}{
		{"host's path MTU, no routers", nil, 1300, 1301, hostAddr6, 1300, 64, 64},
		{"last router's path MTU", make([]stack.Router, 2), 1300, 1301, router6(2), 1300, 63, 63},
		{"first router's link", []stack.Router{{MTU: 1400}, {}}, 0, 1401, router6(1), 1400, 64, 64},
		{"the smaller of router and path", []stack.Router{{}, {MTU: 1400}}, 1350, 1351, router6(2), 1350, 63, 63},
		// RFC 8200 §5: no IPv6 link is below 1280.
		{"IPv4-sized MTU counts as 1280", []stack.Router{{MTU: 576}}, 0, 1281, router6(1), 1280, 64, 64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack(t, false, func(c *stack.Config) {
				c.Addrs = nil
				c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr6, 128)}, Routers: tc.routers, PathMTU: tc.pathMTU}}
			})
			probe := probe6(64, tc.size-48)
			r := handle(t, s, out, tc.name, probe, stack.TooBig, 1)[0]
			pt.IPv6(t, r, pt.Src6(tc.from), pt.Dst6(kernelAddr6), pt.HopLimit(tc.hl), pt.ICMPv6(pt.ICMPv6Error(2, 0, tc.mtu, probe, tc.quoteHL)))
			// One byte less passes.
			handle(t, s, out, tc.name+", fits", probe6(64, tc.size-49), stack.PortUnreachable, 1)
			// IPv6 has no DF: an echo request too big is refused the same.
			big := echo6(t, func(e *pt.Echo6) { e.Payload = make([]byte, tc.size-48) })
			handle(t, s, out, tc.name+", echo", big, stack.TooBig, 1)
		})
	}
}

// TestPacketTooBig6Multicast: RFC 4443 §2.4(e.4)-(e.5) make an exception
// of Packet Too Big for packets in link-layer multicast frames.
func TestPacketTooBig6Multicast(t *testing.T) {
	s, out := routed6(t, true, 1300)
	bcast := mustMAC("ff:ff:ff:ff:ff:ff")
	handle(t, s, out, "too big, broadcast frame", frame6(bcast, probe6(64, 1300)), stack.TooBig, 1)
	handle(t, s, out, "time exceeded, broadcast frame", frame6(bcast, probe6(1, 8)), stack.ErrorSuppressed, 0)
	handle(t, s, out, "port unreachable, broadcast frame", frame6(bcast, probe6(64, 8)), stack.ErrorSuppressed, 0)
	handle(t, s, out, "port unreachable, unicast frame", frame6(hostMAC6, probe6(64, 8)), stack.PortUnreachable, 1)
}

func TestPortUnreachable6(t *testing.T) {
	for _, ethernet := range []bool{false, true} {
		s, out := newStack6(t, ethernet)
		probe := probe6(64, 100)
		pkt := probe
		if ethernet {
			pkt = frame6(hostMAC6, probe)
		}
		r := handle(t, s, out, "UDP", pkt, stack.PortUnreachable, 1)[0]
		if ethernet {
			pt.EthernetFrame(t, r, pt.EthAddrs(kernelMAC, hostMAC6))
			r = r[14:]
		}
		pt.IPv6(t, r, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.HopLimit(64), pt.ICMPv6(pt.ICMPv6Error(1, 4, 0, probe, 64)))
	}
}

// TestFragmentedUDP6PortUnreachable: the error about a reassembled
// datagram quotes it as one packet with a plain header.
func TestFragmentedUDP6PortUnreachable(t *testing.T) {
	s, out := routed6(t, false, 0)
	probe := probe6(10, 3000)
	frags := pt.Fragment6(t, probe, 1448, 1)
	handle(t, s, out, "first", frags[0], stack.FragmentQueued, 0)
	handle(t, s, out, "second", frags[1], stack.FragmentQueued, 0)
	r := handle(t, s, out, "last", frags[2], stack.PortUnreachable, 1)[0]
	pt.IPv6(t, r, pt.Src6(hostAddr6), pt.HopLimit(61), pt.ICMPv6(pt.ICMPv6Error(1, 4, 0, probe, 7)))
	// A router's error about the first fragment quotes it; one about the
	// others is not sent (RFC 4443 §2.4(e.1) cannot be checked on them).
	frags = pt.Fragment6(t, probe6(2, 3000), 1448, 2)
	r = handle(t, s, out, "first, hop limit 2", frags[0], stack.TimeExceeded, 1)[0]
	pt.IPv6(t, r, pt.Src6(router6(2)), pt.ICMPv6(pt.ICMPv6Error(3, 0, 0, frags[0], 1)))
	handle(t, s, out, "second, hop limit 2", frags[1], stack.ErrorSuppressed, 0)
}

func TestTCPReset6(t *testing.T) {
	tests := []struct {
		name     string
		flags    uint8
		seq, ack uint32
		data     int
		wantSeq  uint32
		wantAck  uint32
		wantFlag uint8
	}{
		{"SYN", 0x02, 1000, 0, 0, 0, 1001, 0x14},
		{"SYN with data", 0x02, 1000, 0, 10, 0, 1011, 0x14},
		{"ACK", 0x10, 5, 777, 0, 777, 0, 0x04},
		{"FIN ACK", 0x11, 5, 778, 0, 778, 0, 0x04},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := routed6(t, false, 0)
			seg := pt.TCP6(kernelAddr6, hostAddr6, 40001, 443, tc.seq, tc.ack, tc.flags, make([]byte, tc.data))
			r := handle(t, s, out, tc.name, packet6(pt.NHTCP, seg), stack.Reset, 1)[0]
			pt.IPv6(t, r, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.HopLimit(61), pt.TrafficClass(0), func(t testing.TB, ip *layers.IPv6) {
				t.Helper()
				if ip.NextHeader != layers.IPProtocolTCP || len(ip.Payload) != 20 {
					t.Fatalf("reset: next header %v, %d bytes; want TCP, 20", ip.NextHeader, len(ip.Payload))
				}
				if c := pt.Checksum6(hostAddr6, kernelAddr6, pt.NHTCP, ip.Payload); c != 0 {
					t.Errorf("reset: checksum does not verify (residue %#04x)", c)
				}
				p := ip.Payload
				if sp, dp := binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]); sp != 443 || dp != 40001 {
					t.Errorf("reset: ports %d > %d, want 443 > 40001", sp, dp)
				}
				seq, ack := binary.BigEndian.Uint32(p[4:8]), binary.BigEndian.Uint32(p[8:12])
				if seq != tc.wantSeq || ack != tc.wantAck || p[13] != tc.wantFlag || p[12] != 5<<4 {
					t.Errorf("reset: seq %d ack %d flags %#x offset %#x, want %d %d %#x 0x50", seq, ack, p[13], p[12], tc.wantSeq, tc.wantAck, tc.wantFlag)
				}
			})
		})
	}
}

// TestErrorsSuppressed6 applies RFC 4443 §2.4(e).
func TestErrorsSuppressed6(t *testing.T) {
	s, out := routed6(t, false, 0, func(c *stack.Config) {
		c.Hosts = append(c.Hosts, stack.Host{Addrs: []netip.Prefix{netip.MustParsePrefix("fd00::100/120")}, Routers: make([]stack.Router, 1)})
	})
	icmpErr := func(typ uint8) []byte {
		return pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, HopLimit: 1, Type: typ, Payload: make([]byte, 40)}.IPv6(t)
	}
	// A whole redirect is neighbour discovery, which no router sees; in a
	// fragment it goes through them.
	redirect := pt.Fragment6(t, pt.Packet6{Src: kernelAddr6, Dst: hostAddr6, HopLimit: 1, NextHeader: pt.NHICMPv6,
		Payload: pt.ICMPv6Msg(kernelAddr6, hostAddr6, 137, 0, make([]byte, 36))}.Bytes(), 32, 1)[0]
	anycast := pt.Echo6{Src: netip.MustParseAddr("fd00::100"), Dst: netip.MustParseAddr("fd00::101"), HopLimit: 1}.IPv6(t)
	behindOptions := pt.Packet6{Src: kernelAddr6, Dst: hostAddr6, HopLimit: 1, NextHeader: pt.NHDestOpts,
		Payload: append(pt.OptionsHeader(pt.NHICMPv6), pt.ICMPv6Msg(kernelAddr6, hostAddr6, 1, 0, make([]byte, 4))...)}.Bytes()
	tests := []struct {
		name string
		pkt  []byte
		want stack.Verdict
	}{
		{"about destination unreachable", icmpErr(1), stack.ErrorSuppressed},
		{"about packet too big", icmpErr(2), stack.ErrorSuppressed},
		{"about time exceeded", icmpErr(3), stack.ErrorSuppressed},
		{"about parameter problem", icmpErr(4), stack.ErrorSuppressed},
		{"about an error behind destination options", behindOptions, stack.ErrorSuppressed},
		{"about a redirect", redirect, stack.ErrorSuppressed},
		{"about an echo request", icmpErr(128), stack.TimeExceeded},
		{"about an echo reply", icmpErr(129), stack.TimeExceeded},
		{"from a Subnet-Router anycast address", anycast, stack.ErrorSuppressed},
	}
	for _, tc := range tests {
		n := 0
		if tc.want != stack.ErrorSuppressed {
			n = 1
		}
		handle(t, s, out, tc.name, tc.pkt, tc.want, n)
	}
}

func TestICMPRateLimit6(t *testing.T) {
	s, out := routed6(t, false, 0, func(c *stack.Config) { c.ICMPRate = stack.ICMPRateLimit{PerSecond: 1, Burst: 2} })
	handle(t, s, out, "first", probe6(1, 8), stack.TimeExceeded, 1)
	handle(t, s, out, "second", probe6(64, 8), stack.PortUnreachable, 1)
	handle(t, s, out, "third", probe6(1, 8), stack.ICMPRateLimited, 0)
	// Echo replies are not limited.
	handle(t, s, out, "echo", echo6(t, nil), stack.Replied, 1)
}
