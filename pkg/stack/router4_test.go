package stack_test

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

// routed returns a stack whose host 10.0.0.2 sits behind three generated
// routers, the last link with the given path MTU.
func routed(t testing.TB, ethernet bool, pathMTU int, mods ...func(*stack.Config)) (*stack.Stack, *stack.Out) {
	return newStack(t, ethernet, append([]func(*stack.Config){func(c *stack.Config) {
		c.Addrs = nil
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Routers: make([]stack.Router, 3), PathMTU: pathMTU}}
		c.ICMPRate = stack.ICMPRateLimit{PerSecond: -1}
	}}, mods...)...)
}

// probe4 is a UDP datagram from the kernel side to dst with the given TTL
// and payload size, DF set as asked.
func probe4(t testing.TB, dst netip.Addr, ttl uint8, size int, df bool) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Id: 0x1234, Protocol: layers.IPProtocolUDP, SrcIP: kernelAddr.AsSlice(), DstIP: dst.AsSlice()}
	if df {
		ip.Flags = layers.IPv4DontFragment
	}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 33434 + layers.UDPPort(ttl)}
	udp.SetNetworkLayerForChecksum(ip)
	return pt.Serialize(t, ip, udp, gopacket.Payload(make([]byte, size)))
}

// icmpError decodes an ICMPv4 error and its quoted IPv4 header.
func icmpError(t *testing.T, b []byte) (*layers.IPv4, *layers.ICMPv4, *layers.IPv4) {
	t.Helper()
	var ip layers.IPv4
	var icmp layers.ICMPv4
	var quoted layers.IPv4
	if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("decode error datagram: %v", err)
	}
	if pt.Checksum(b[:20]) != 0 {
		t.Errorf("error datagram header checksum does not verify")
	}
	if ip.Protocol != layers.IPProtocolICMPv4 {
		t.Fatalf("protocol %v, want ICMPv4", ip.Protocol)
	}
	if pt.Checksum(ip.Payload) != 0 {
		t.Errorf("ICMP checksum does not verify")
	}
	if err := icmp.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("decode ICMP: %v", err)
	}
	if err := quoted.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("decode quoted header: %v", err)
	}
	if pt.Checksum(icmp.Payload[:quoted.IHL*4]) != 0 {
		t.Errorf("quoted header checksum does not verify")
	}
	return &ip, &icmp, &quoted
}

func TestTimeExceededAtEachRouter(t *testing.T) {
	s, out := routed(t, false, 0)
	for ttl := uint8(1); ttl <= 3; ttl++ {
		r := handle(t, s, out, "probe", probe4(t, hostAddr, ttl, 32, false), stack.TimeExceeded, 1)
		ip, icmp, quoted := icmpError(t, r[0])
		want, _ := stack.GeneratedRouter(int(ttl))
		if got := netip.AddrFrom4([4]byte(ip.SrcIP)); got != want {
			t.Errorf("TTL %d: Time Exceeded from %v, want router %d %v", ttl, got, ttl, want)
		}
		if got := netip.AddrFrom4([4]byte(ip.DstIP)); got != kernelAddr {
			t.Errorf("TTL %d: sent to %v, want %v", ttl, got, kernelAddr)
		}
		if icmp.TypeCode != layers.CreateICMPv4TypeCode(11, 0) {
			t.Errorf("TTL %d: %v, want time exceeded", ttl, icmp.TypeCode)
		}
		// The reply crossed ttl-1 routers on its way back; the quote shows
		// the TTL the router saw (1) and the original's addresses and ports.
		if ip.TTL != 64-(ttl-1) {
			t.Errorf("TTL %d: error has TTL %d, want %d", ttl, ip.TTL, 64-(ttl-1))
		}
		if quoted.TTL != 1 || quoted.Id != 0x1234 || netip.AddrFrom4([4]byte(quoted.DstIP)) != hostAddr {
			t.Errorf("TTL %d: quoted header TTL %d id %#x dst %v, want 1, 0x1234, %v", ttl, quoted.TTL, quoted.Id, quoted.DstIP, hostAddr)
		}
		if len(quoted.Payload) < 8 || binary.BigEndian.Uint16(quoted.Payload[2:4]) != 33434+uint16(ttl) {
			t.Errorf("TTL %d: quoted UDP header missing or wrong", ttl)
		}
	}
	// Past the routers the host answers: Port Unreachable from the host.
	r := handle(t, s, out, "probe TTL 4", probe4(t, hostAddr, 4, 32, false), stack.PortUnreachable, 1)
	ip, icmp, quoted := icmpError(t, r[0])
	if netip.AddrFrom4([4]byte(ip.SrcIP)) != hostAddr || icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 3) {
		t.Errorf("TTL 4: %v from %v, want port unreachable from %v", icmp.TypeCode, ip.SrcIP, hostAddr)
	}
	if ip.TTL != 61 || quoted.TTL != 1 {
		t.Errorf("TTL 4: error TTL %d, quoted TTL %d; want 61 and 1", ip.TTL, quoted.TTL)
	}
}

func TestRoutedEchoReplyTTL(t *testing.T) {
	s, out := routed(t, false, 0)
	r := handle(t, s, out, "echo", pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, TTL: 64}.IPv4(t), stack.Replied, 1)
	pt.IPv4(t, r[0], pt.SrcAddr(hostAddr), pt.TTL(61), pt.ICMPv4(pt.EchoReply(1, 1, nil)))
}

func TestExplicitRouters(t *testing.T) {
	r1, r2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.99")
	s, out := newStack(t, false, func(c *stack.Config) {
		c.Addrs = nil
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Routers: []stack.Router{{Addr4: r1}, {Addr4: r2}}}}
	})
	for ttl, want := range map[uint8]netip.Addr{1: r1, 2: r2} {
		r := handle(t, s, out, "probe", probe4(t, hostAddr, ttl, 0, false), stack.TimeExceeded, 1)
		if ip, _, _ := icmpError(t, r[0]); netip.AddrFrom4([4]byte(ip.SrcIP)) != want {
			t.Errorf("TTL %d: from %v, want %v", ttl, ip.SrcIP, want)
		}
	}
}

func TestFragmentationNeeded(t *testing.T) {
	tests := []struct {
		name    string
		routers []stack.Router
		pathMTU int
		size    int
		df      bool
		want    stack.Verdict
		from    netip.Addr
		mtu     uint16
	}{
		{"fits", make([]stack.Router, 3), 1400, 1400 - 28, true, stack.PortUnreachable, hostAddr, 0},
		{"too big, DF", make([]stack.Router, 3), 1400, 1400 - 27, true, stack.TooBig, netip.MustParseAddr("198.18.0.3"), 1400},
		{"too big, no DF", make([]stack.Router, 3), 1400, 1400 - 27, false, stack.PortUnreachable, hostAddr, 0},
		{"router 2's link", []stack.Router{{}, {MTU: 1300}, {}}, 1400, 1300 - 27, true, stack.TooBig, netip.MustParseAddr("198.18.0.2"), 1300},
		{"no routers", nil, 1280, 1280 - 27, true, stack.TooBig, hostAddr, 1280},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack(t, false, func(c *stack.Config) {
				c.Addrs = nil
				c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Routers: tc.routers, PathMTU: tc.pathMTU}}
			})
			r := handle(t, s, out, tc.name, probe4(t, hostAddr, 64, tc.size, tc.df), tc.want, 1)
			ip, icmp, _ := icmpError(t, r[0])
			if netip.AddrFrom4([4]byte(ip.SrcIP)) != tc.from {
				t.Errorf("error from %v, want %v", ip.SrcIP, tc.from)
			}
			if tc.want == stack.TooBig {
				if icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) {
					t.Errorf("%v, want fragmentation needed", icmp.TypeCode)
				}
				if got := binary.BigEndian.Uint16(ip.Payload[6:8]); got != tc.mtu {
					t.Errorf("next-hop MTU %d, want %d", got, tc.mtu)
				}
				// RFC 1812 §4.3.2.3: as much of the original as fits in 576 bytes.
				if len(r[0]) != 576 {
					t.Errorf("error datagram is %d bytes, want 576", len(r[0]))
				}
			}
		})
	}
}

func TestTCPReset(t *testing.T) {
	s, out := routed(t, false, 0)
	syn := func(ttl uint8, flags func(*layers.TCP)) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: layers.IPProtocolTCP, SrcIP: kernelAddr.AsSlice(), DstIP: hostAddr.AsSlice()}
		tcp := &layers.TCP{SrcPort: 40001, DstPort: 80, Seq: 1000, Ack: 77, SYN: true, Window: 1000}
		flags(tcp)
		tcp.SetNetworkLayerForChecksum(ip)
		return pt.Serialize(t, ip, tcp)
	}
	decode := func(b []byte) *layers.TCP {
		var ip layers.IPv4
		var tcp layers.TCP
		if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || ip.Protocol != layers.IPProtocolTCP {
			t.Fatalf("not a TCP reply: %v", err)
		}
		if err := tcp.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		tcp.SetNetworkLayerForChecksum(&ip)
		// Recompute the checksum over the segment: it must match.
		c := append([]byte(nil), ip.SrcIP...)
		c = append(append(c, ip.DstIP...), 0, 6, 0, byte(len(ip.Payload)))
		if pt.Checksum(append(c, ip.Payload...)) != 0 {
			t.Errorf("reset's TCP checksum does not verify")
		}
		return &tcp
	}
	r := handle(t, s, out, "SYN", syn(64, func(*layers.TCP) {}), stack.Reset, 1)
	if tcp := decode(r[0]); !tcp.RST || !tcp.ACK || tcp.Ack != 1001 || tcp.Seq != 0 || tcp.SrcPort != 80 || tcp.DstPort != 40001 {
		t.Errorf("reset to SYN: %+v, want RST+ACK ack=1001 seq=0 80>40001", tcp)
	}
	r = handle(t, s, out, "ACK", syn(64, func(c *layers.TCP) { c.SYN, c.ACK = false, true }), stack.Reset, 1)
	if tcp := decode(r[0]); !tcp.RST || tcp.ACK || tcp.Seq != 77 {
		t.Errorf("reset to ACK: %+v, want RST seq=77", tcp)
	}
	handle(t, s, out, "RST", syn(64, func(c *layers.TCP) { c.SYN, c.RST = false, true }), stack.IgnoredReset, 0)
	handle(t, s, out, "SYN TTL 2", syn(2, func(*layers.TCP) {}), stack.TimeExceeded, 1)
	handle(t, s, out, "bad checksum", corrupt(syn(64, func(*layers.TCP) {}), func(b []byte) { b[36] ^= 1 }), stack.BadL4Checksum, 0)
}

func TestProtocolUnreachable(t *testing.T) {
	s, out := newStack(t, false)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolGRE, SrcIP: kernelAddr.AsSlice(), DstIP: hostAddr.AsSlice()}
	r := handle(t, s, out, "GRE", pt.Serialize(t, ip, gopacket.Payload("grepayload")), stack.ProtoUnreachable, 1)
	if _, icmp, _ := icmpError(t, r[0]); icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 2) {
		t.Errorf("%v, want protocol unreachable", icmp.TypeCode)
	}
}

func TestErrorsSuppressed(t *testing.T) {
	s, out := routed(t, true, 0)
	mac := stack.MACFor(hostAddr)
	// RFC 1812 §4.3.2.7: not about an ICMP error...
	te := pt.Echo{Src: kernelAddr, Dst: hostAddr, TTL: 1, Type: layers.CreateICMPv4TypeCode(3, 1)}.IPv4(t)
	handle(t, s, out, "ICMP error with TTL 1", pt.Ethernet(t, mac, kernelMAC, layers.EthernetTypeIPv4, te), stack.ErrorSuppressed, 0)
	// ...but about an echo request, yes.
	echo := pt.Echo{Src: kernelAddr, Dst: hostAddr, TTL: 1, ID: 1, Seq: 1}.IPv4(t)
	handle(t, s, out, "echo with TTL 1", pt.Ethernet(t, mac, kernelMAC, layers.EthernetTypeIPv4, echo), stack.TimeExceeded, 1)
	// ...not about a frame sent to the link-layer broadcast address...
	handle(t, s, out, "broadcast frame", pt.Ethernet(t, mustMAC("ff:ff:ff:ff:ff:ff"), kernelMAC, layers.EthernetTypeIPv4, echo), stack.ErrorSuppressed, 0)
	// ...nor about a fragment other than the first.
	frags := pt.Fragment(t, probe4(t, hostAddr, 1, 3000, false), 1480)
	handle(t, s, out, "first fragment TTL 1", pt.Ethernet(t, mac, kernelMAC, layers.EthernetTypeIPv4, frags[0]), stack.TimeExceeded, 1)
	handle(t, s, out, "second fragment TTL 1", pt.Ethernet(t, mac, kernelMAC, layers.EthernetTypeIPv4, frags[1]), stack.ErrorSuppressed, 0)
}

func TestFragmentedUDPPortUnreachable(t *testing.T) {
	s, out := newStack(t, false)
	frags := pt.Fragment(t, probe4(t, hostAddr, 64, 3000, false), 1480)
	for _, f := range frags[:len(frags)-1] {
		handle(t, s, out, "fragment", f, stack.FragmentQueued, 0)
	}
	r := handle(t, s, out, "last fragment", frags[len(frags)-1], stack.PortUnreachable, 1)
	_, _, quoted := icmpError(t, r[0])
	// The quote is the reassembled datagram's header and its start.
	if quoted.Length != 20+8+3000 || quoted.Flags&layers.IPv4MoreFragments != 0 || quoted.FragOffset != 0 {
		t.Errorf("quoted header length %d flags %v offset %d, want the whole datagram's", quoted.Length, quoted.Flags, quoted.FragOffset)
	}
}

func TestICMPRateLimit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	s, out := routed(t, false, 0, func(c *stack.Config) {
		c.Now = clock.Now
		c.ICMPRate = stack.ICMPRateLimit{PerSecond: 10, Burst: 3}
	})
	probe := probe4(t, hostAddr, 1, 0, false)
	for range 3 {
		handle(t, s, out, "within the burst", probe, stack.TimeExceeded, 1)
	}
	handle(t, s, out, "past the burst", probe, stack.ICMPRateLimited, 0)
	// Echo replies are not limited.
	handle(t, s, out, "echo", pt.Echo{Src: kernelAddr, Dst: hostAddr, TTL: 64}.IPv4(t), stack.Replied, 1)
	clock.t = clock.t.Add(100 * time.Millisecond) // one token
	handle(t, s, out, "after a refill", probe, stack.TimeExceeded, 1)
	handle(t, s, out, "empty again", probe, stack.ICMPRateLimited, 0)
	clock.t = clock.t.Add(time.Hour) // the bucket holds no more than the burst
	for range 3 {
		handle(t, s, out, "burst again", probe, stack.TimeExceeded, 1)
	}
	handle(t, s, out, "past the burst again", probe, stack.ICMPRateLimited, 0)
}

// TestManyHosts: a /16 is 65534 hosts, each answering with its own MAC;
// frames to one host's MAC for another's address are not for us.
func TestManyHosts(t *testing.T) {
	s, out := newStack(t, true, func(c *stack.Config) {
		c.Addrs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
		c.HostSide = []netip.Prefix{netip.MustParsePrefix("10.1.0.1/16")}
	})
	for _, a := range []string{"10.1.0.2", "10.1.77.1", "10.1.255.254"} {
		addr := netip.MustParseAddr(a)
		mac := stack.MACFor(addr)
		r := handle(t, s, out, "ARP "+a, pt.Ethernet(t, mustMAC("ff:ff:ff:ff:ff:ff"), kernelMAC, layers.EthernetTypeARP,
			pt.ARP(t, 1, kernelMAC, netip.MustParseAddr("10.1.0.1"), mustMAC("00:00:00:00:00:00"), addr)), stack.Replied, 1)
		pt.EthernetFrame(t, r[0], pt.EthAddrs(kernelMAC, mac), pt.EthARP(2, mac, addr, kernelMAC, netip.MustParseAddr("10.1.0.1")))
		echo := pt.Echo{Src: netip.MustParseAddr("10.1.0.1"), Dst: addr, TTL: 64, ID: 9, Seq: 9}.IPv4(t)
		r = handle(t, s, out, "echo "+a, pt.Ethernet(t, mac, kernelMAC, layers.EthernetTypeIPv4, echo), stack.Replied, 1)
		pt.EthernetFrame(t, r[0], pt.EthAddrs(kernelMAC, mac), pt.EthIPv4(pt.SrcAddr(addr)))
		other := stack.MACFor(netip.MustParseAddr("10.1.0.3"))
		handle(t, s, out, "echo to another host's MAC", pt.Ethernet(t, other, kernelMAC, layers.EthernetTypeIPv4, echo), stack.NotForUs, 0)
	}
	for _, a := range []string{"10.1.0.0", "10.1.255.255", "10.1.0.1", "10.2.0.2"} {
		echo := pt.Echo{Src: netip.MustParseAddr("10.1.0.1"), Dst: netip.MustParseAddr(a), TTL: 64}.IPv4(t)
		// The network and broadcast addresses, the kernel side's, and
		// addresses outside the prefix are nobody's.
		handle(t, s, out, "echo "+a, pt.Ethernet(t, mustMAC("ff:ff:ff:ff:ff:ff"), kernelMAC, layers.EthernetTypeIPv4, echo), stack.NotForUs, 0)
	}
}

// BenchmarkEchoHosts compares an echo to one owned address with one to an
// address in a /16: lookup must not depend on the number of hosts.
func BenchmarkEchoHosts(b *testing.B) {
	for _, tc := range []struct {
		name  string
		addrs []netip.Prefix
		dst   netip.Addr
	}{
		{"1", []netip.Prefix{netip.MustParsePrefix("10.1.200.7/32")}, netip.MustParseAddr("10.1.200.7")},
		{"65534", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, netip.MustParseAddr("10.1.200.7")},
		{"256 singles", singles(256), netip.MustParseAddr("10.1.200.7")},
		{"IPv6 1", []netip.Prefix{netip.MustParsePrefix("fd00::c807/128")}, netip.MustParseAddr("fd00::c807")},
		{"IPv6 65535", []netip.Prefix{netip.MustParsePrefix("fd00::/112")}, netip.MustParseAddr("fd00::c807")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, out := newStack(b, false, func(c *stack.Config) {
				c.Addrs = tc.addrs
				c.HostSide = append(c.HostSide, netip.MustParsePrefix("fd00::1/64"))
			})
			var pkt []byte
			if tc.dst.Is6() {
				src := netip.MustParseAddr("fd00::1")
				pkt = pt.Packet6{Src: src, Dst: tc.dst, NextHeader: 58,
					Payload: pt.Echo6{Src: src, Dst: tc.dst, ID: 1, Seq: 1, Payload: make([]byte, 56)}.Message()}.Bytes()
			} else {
				pkt = pt.Echo{Src: kernelAddr, Dst: tc.dst, TTL: 64, ID: 1, Seq: 1, Payload: make([]byte, 56)}.IPv4(b)
			}
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				if v := s.Handle(pkt, out); v != stack.Replied {
					b.Fatalf("verdict %v, want replied", v)
				}
			}
		})
	}
}

func singles(n int) []netip.Prefix {
	ps := []netip.Prefix{netip.MustParsePrefix("10.1.200.7/32")}
	for i := range n - 1 {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i + 1)}), 32))
	}
	return ps
}

func TestHostCounters(t *testing.T) {
	s, out := newStack(t, false, func(c *stack.Config) {
		c.Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.3/32")}
		c.Hosts = []stack.Host{{Name: "web", Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Routers: make([]stack.Router, 1)}}
	})
	handle(t, s, out, "echo", pt.Echo{Src: kernelAddr, Dst: hostAddr, TTL: 64}.IPv4(t), stack.Replied, 1)
	handle(t, s, out, "probe", probe4(t, hostAddr, 1, 0, false), stack.TimeExceeded, 1)
	handle(t, s, out, "bad UDP checksum", corrupt(probe4(t, hostAddr, 9, 4, false), func(b []byte) { b[28] ^= 1 }), stack.BadL4Checksum, 0)
	handle(t, s, out, "echo .3", pt.Echo{Src: kernelAddr, Dst: netip.MustParseAddr("10.0.0.3"), TTL: 64}.IPv4(t), stack.Replied, 1)
	got := s.HostCounters()
	want := []stack.HostCounter{{Name: "web", Rx: 3, Replies: 2}, {Name: "10.0.0.3", Rx: 1, Replies: 1}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("HostCounters = %+v, want %+v", got, want)
	}
}
