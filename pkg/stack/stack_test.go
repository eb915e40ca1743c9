package stack_test

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

var (
	kernelAddr = netip.MustParseAddr("10.0.0.1")
	hostAddr   = netip.MustParseAddr("10.0.0.2")
	otherAddr  = netip.MustParseAddr("10.0.0.9")
)

func mustMAC(s string) net.HardwareAddr { return pt.MustMAC(s) }

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// newStack returns a stack owning 10.0.0.2 with an Out sized for it.
func newStack(t testing.TB, ethernet bool, mods ...func(*stack.Config)) (*stack.Stack, *stack.Out) {
	t.Helper()
	cfg := stack.Config{Ethernet: ethernet, Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, HostSide: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := stack.New(cfg)
	if err != nil {
		t.Fatalf("stack.New: %v", err)
	}
	return s, stack.NewOut(s.MaxOut()+1, s.PacketSize(), 16)
}

// packets returns out's packets without headroom.
func packets(out *stack.Out) [][]byte {
	var ps [][]byte
	for _, p := range out.Packets() {
		ps = append(ps, p[out.Offset():])
	}
	return ps
}

// handle runs one packet and checks the verdict and the count of replies.
func handle(t *testing.T, s *stack.Stack, out *stack.Out, name string, pkt []byte, want stack.Verdict, wantReplies int) [][]byte {
	t.Helper()
	out.Reset()
	before := s.Count(want)
	if v := s.Handle(pkt, out); v != want {
		t.Fatalf("Handle(%s) verdict = %v, want %v", name, v, want)
	}
	if got := s.Count(want) - before; got != 1 {
		t.Errorf("Handle(%s): counter %v moved by %d, want 1", name, want, got)
	}
	if out.Len() != wantReplies {
		t.Fatalf("Handle(%s) appended %d packets, want %d", name, out.Len(), wantReplies)
	}
	return packets(out)
}

func TestGoldenEcho(t *testing.T) {
	s, out := newStack(t, false)
	got := handle(t, s, out, "golden echo", goldenEcho, stack.Replied, 1)[0]
	if !bytes.Equal(got, goldenEchoReply) {
		t.Errorf("reply\n got % x\nwant % x", got, goldenEchoReply)
	}
	s, out = newStack(t, true)
	got = handle(t, s, out, "golden echo frame", goldenEchoFrame, stack.Replied, 1)[0]
	if !bytes.Equal(got, goldenEchoReplyFrame) {
		t.Errorf("reply frame\n got % x\nwant % x", got, goldenEchoReplyFrame)
	}
}

func TestGoldenARP(t *testing.T) {
	s, out := newStack(t, true)
	got := handle(t, s, out, "golden arp request", goldenARPRequest, stack.Replied, 1)[0]
	if !bytes.Equal(got, goldenARPReply) {
		t.Errorf("ARP reply\n got % x\nwant % x", got, goldenARPReply)
	}
}

func TestEcho(t *testing.T) {
	rr := layers.IPv4Option{OptionType: 7, OptionLength: 11, OptionData: []byte{8, 0, 0, 0, 0, 0, 0, 0, 0}}
	tests := []struct {
		name string
		echo pt.Echo
	}{
		{"minimal", pt.Echo{ID: 1, Seq: 1}},
		{"56 bytes", pt.Echo{ID: 7, Seq: 3, Payload: bytes.Repeat([]byte{0xab}, 56)}},
		{"odd length", pt.Echo{ID: 0xffff, Seq: 0xffff, Payload: []byte{1, 2, 3}}},
		{"TOS copied", pt.Echo{ID: 2, Seq: 9, TOS: 0xb8, Payload: []byte("tos")}},
		{"record route option dropped", pt.Echo{ID: 3, Seq: 1, Options: []layers.IPv4Option{rr}, Payload: []byte("rr")}},
		{"DF set", pt.Echo{ID: 4, Seq: 1, Flags: layers.IPv4DontFragment, Payload: []byte("df")}},
		{"low TTL", pt.Echo{ID: 5, Seq: 1, TTL: 1}},
		{"MTU-sized", pt.Echo{ID: 6, Seq: 1, Payload: make([]byte, 1472)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.echo.Src, tc.echo.Dst = kernelAddr, hostAddr
			pkt := tc.echo.IPv4(t)
			want := []pt.IPv4Checker{pt.SrcAddr(hostAddr), pt.DstAddr(kernelAddr), pt.TTL(64), pt.TOS(tc.echo.TOS), pt.NoOptions(),
				pt.ICMPv4(pt.EchoReply(tc.echo.ID, tc.echo.Seq, tc.echo.Payload))}

			s, out := newStack(t, false)
			reply := handle(t, s, out, tc.name, pkt, stack.Replied, 1)[0]
			pt.IPv4(t, reply, want...)

			s, out = newStack(t, true)
			frame := pt.Ethernet(t, hostMAC, kernelMAC, layers.EthernetTypeIPv4, pkt)
			reply = handle(t, s, out, tc.name+" on TAP", frame, stack.Replied, 1)[0]
			pt.EthernetFrame(t, reply, pt.EthAddrs(kernelMAC, hostMAC), pt.EthIPv4(want...))
		})
	}
}

// TestEchoFirstFrameToSourceMAC: a frame from a MAC the host never heard of
// is answered to that MAC (no ARP exchange needed first).
func TestEchoFirstFrameToSourceMAC(t *testing.T) {
	s, out := newStack(t, true)
	stranger := mustMAC("06:11:22:33:44:55")
	pkt := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1}.IPv4(t)
	reply := handle(t, s, out, "stranger", pt.Ethernet(t, hostMAC, stranger, layers.EthernetTypeIPv4, pkt), stack.Replied, 1)[0]
	pt.EthernetFrame(t, reply, pt.EthAddrs(stranger, hostMAC))
}

func TestPrefixAddresses(t *testing.T) {
	s, out := newStack(t, false, func(c *stack.Config) {
		c.Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("192.0.2.77/32")}
	})
	tests := []struct {
		dst  string
		want stack.Verdict
	}{
		{"10.0.0.2", stack.Replied},
		{"10.0.0.254", stack.Replied},
		{"192.0.2.77", stack.Replied},
		{"10.0.0.1", stack.NotForUs},   // the kernel side's own
		{"10.0.0.0", stack.NotForUs},   // network address
		{"10.0.0.255", stack.NotForUs}, // directed broadcast
		{"255.255.255.255", stack.NotForUs},
		{"224.0.0.1", stack.NotForUs},
		{"10.0.1.2", stack.NotForUs},
		{"192.0.2.78", stack.NotForUs},
	}
	for _, tc := range tests {
		n := 0
		if tc.want == stack.Replied {
			n = 1
		}
		dst := netip.MustParseAddr(tc.dst)
		replies := handle(t, s, out, "echo to "+tc.dst, pt.Echo{Src: kernelAddr, Dst: dst, ID: 1, Seq: 1}.IPv4(t), tc.want, n)
		for _, r := range replies {
			pt.IPv4(t, r, pt.SrcAddr(dst), pt.DstAddr(kernelAddr))
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  stack.Config
	}{
		{"no addresses", stack.Config{}},
		{"IPv6 prefix over /112", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}}},
		{"IPv4 prefix over /16", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/15")}}},
		{"overlapping prefixes", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.0.0/25")}}},
		{"address inside a prefix", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.0.7/32")}}},
		{"address twice", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.7/32"), netip.MustParsePrefix("10.0.0.7/32")}}},
		{"IPv6 multicast", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("ff02::1/128")}}},
		{"router with IPv6 as Addr4", stack.Config{Hosts: []stack.Host{{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, Routers: []stack.Router{{Addr4: netip.MustParseAddr("2001:db8::1")}}}}}},
		{"path MTU too small", stack.Config{Hosts: []stack.Host{{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, PathMTU: 20}}}},
		{"host bits", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}},
		{"multicast", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("224.0.0.5/32")}}},
		{"kernel side's address", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}, HostSide: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}},
		{"MTU too small", stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, MTU: 67}},
		{"multicast MAC", stack.Config{Ethernet: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, MAC: mustMAC("01:00:5e:00:00:01")}},
	}
	for _, tc := range tests {
		if _, err := stack.New(tc.cfg); err == nil {
			t.Errorf("New(%s) succeeded, want an error", tc.name)
		}
	}
}

// corrupt returns a copy of b with f applied.
func corrupt(b []byte, f func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

// fixIPChecksum recomputes the header checksum of a raw IPv4 packet.
func fixIPChecksum(b []byte) {
	ihl := int(b[0]&0xf) * 4
	b[10], b[11] = 0, 0
	c := pt.Checksum(b[:ihl])
	b[10], b[11] = byte(c>>8), byte(c)
}

// fixICMPChecksum recomputes the ICMP checksum of a raw IPv4 packet.
func fixICMPChecksum(b []byte) {
	ihl := int(b[0]&0xf) * 4
	b[ihl+2], b[ihl+3] = 0, 0
	c := pt.Checksum(b[ihl:])
	b[ihl+2], b[ihl+3] = byte(c>>8), byte(c)
}

// rawFrame is an Ethernet frame without the padding gopacket would add.
func rawFrame(dst, src net.HardwareAddr, typ layers.EthernetType, payload []byte) []byte {
	b := append(append([]byte(nil), dst...), src...)
	return append(append(b, byte(typ>>8), byte(typ)), payload...)
}

func TestDrops(t *testing.T) {
	echo := func(mod func(*pt.Echo)) []byte {
		e := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, Payload: []byte("payload!")}
		if mod != nil {
			mod(&e)
		}
		return e.IPv4(t)
	}
	good := echo(nil)
	typ := func(ty, code uint8) func(*pt.Echo) {
		return func(e *pt.Echo) { e.Type = layers.CreateICMPv4TypeCode(ty, code) }
	}
	src := func(a string) func(*pt.Echo) { return func(e *pt.Echo) { e.Src = netip.MustParseAddr(a) } }
	udpIP := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: kernelAddr.AsSlice(), DstIP: hostAddr.AsSlice()}
	udpL := &layers.UDP{SrcPort: 1, DstPort: 2}
	udpL.SetNetworkLayerForChecksum(udpIP)
	udp := pt.Serialize(t, udpIP, udpL, gopacket.Payload("x"))
	badOption := corrupt(echo(func(e *pt.Echo) {
		e.Options = []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}}
	}), func(b []byte) { b[21] = 40; fixIPChecksum(b) }) // option length past the header

	tests := []struct {
		name string
		pkt  []byte
		want stack.Verdict
	}{
		{"empty", nil, stack.Truncated},
		{"19-byte header", good[:19], stack.Truncated},
		{"version 5", corrupt(good, func(b []byte) { b[0] = 0x55 }), stack.BadVersion},
		{"IHL 4", corrupt(good, func(b []byte) { b[0] = 0x44; fixIPChecksum(b) }), stack.BadIHL},
		{"IHL past the packet", corrupt(good[:22], func(b []byte) { b[0] = 0x46 }), stack.Truncated},
		{"total length beyond what was read", corrupt(good, func(b []byte) { b[3] += 1; fixIPChecksum(b) }), stack.BadTotalLength},
		{"total length below header", corrupt(good, func(b []byte) { b[2], b[3] = 0, 19; fixIPChecksum(b) }), stack.BadTotalLength},
		{"bad IP checksum", corrupt(good, func(b []byte) { b[10] ^= 0xff }), stack.BadIPChecksum},
		{"bad IP option", badOption, stack.BadIPOptions},
		{"bad ICMP checksum", corrupt(good, func(b []byte) { b[22] ^= 0x01 }), stack.BadICMPChecksum},
		{"ICMP shorter than its header", corrupt(good[:26], func(b []byte) { b[2], b[3] = 0, 26; fixIPChecksum(b) }), stack.Truncated},
		{"source 0.0.0.0", echo(src("0.0.0.0")), stack.BadSource},
		{"source broadcast", echo(src("255.255.255.255")), stack.BadSource},
		{"source directed broadcast of the link", echo(src("10.0.0.255")), stack.BadSource},
		{"source multicast", echo(src("224.0.0.1")), stack.BadSource},
		{"source loopback", echo(src("127.0.0.1")), stack.BadSource},
		{"not ours", echo(func(e *pt.Echo) { e.Dst = otherAddr }), stack.NotForUs},
		{"echo reply", corrupt(good, func(b []byte) { b[20] = 0; fixICMPChecksum(b) }), stack.IgnoredICMP},
		{"timestamp request", echo(typ(13, 0)), stack.IgnoredICMP},
		{"destination unreachable", echo(typ(3, 3)), stack.IgnoredICMPError},
		{"time exceeded", echo(typ(11, 0)), stack.IgnoredICMPError},
		{"parameter problem", echo(typ(12, 0)), stack.IgnoredICMPError},
		{"redirect", echo(typ(5, 1)), stack.IgnoredICMPError},
		{"source quench", echo(typ(4, 0)), stack.IgnoredICMPError},
		{"UDP, bad checksum", corrupt(udp, func(b []byte) { b[27] ^= 1 }), stack.BadL4Checksum},
		{"UDP, length past the datagram", corrupt(udp, func(b []byte) { b[25]++; fixUDPChecksum(b) }), stack.BadL4Length},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack(t, false)
			handle(t, s, out, tc.name, tc.pkt, tc.want, 0)
			// The same packet inside Ethernet gets the same verdict.
			s, out = newStack(t, true)
			handle(t, s, out, tc.name+" on TAP", rawFrame(hostMAC, kernelMAC, layers.EthernetTypeIPv4, tc.pkt), tc.want, 0)
		})
	}
}

func TestDropsSourceDirectedBroadcast(t *testing.T) {
	s, out := newStack(t, false, func(c *stack.Config) { c.Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")} })
	pkt := pt.Echo{Src: netip.MustParseAddr("10.0.0.255"), Dst: hostAddr, ID: 1, Seq: 1}.IPv4(t)
	handle(t, s, out, "from 10.0.0.255", pkt, stack.BadSource, 0)
}

func TestEthernetDrops(t *testing.T) {
	echo := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1}.IPv4(t)
	arp := func(op uint16, sha net.HardwareAddr, spa string, tpa string) []byte {
		return pt.ARP(t, op, sha, netip.MustParseAddr(spa), net.HardwareAddr{0, 0, 0, 0, 0, 0}, netip.MustParseAddr(tpa))
	}
	bcast := mustMAC("ff:ff:ff:ff:ff:ff")
	req := arp(1, kernelMAC, "10.0.0.1", "10.0.0.2")
	tests := []struct {
		name string
		pkt  []byte
		want stack.Verdict
	}{
		{"short frame", goldenEchoFrame[:13], stack.Truncated},
		{"other unicast MAC", pt.Ethernet(t, mustMAC("02:00:0a:00:00:09"), kernelMAC, layers.EthernetTypeIPv4, echo), stack.NotForUs},
		{"multicast source MAC", pt.Ethernet(t, hostMAC, mustMAC("01:00:5e:00:00:01"), layers.EthernetTypeIPv4, echo), stack.BadSource},
		{"IPv4 to broadcast MAC for our address", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeIPv4, echo), stack.Replied},
		{"VLAN", pt.Ethernet(t, hostMAC, kernelMAC, layers.EthernetTypeDot1Q, echo), stack.Unsupported},
		{"IPv4 packet in an IPv6 frame", pt.Ethernet(t, hostMAC, kernelMAC, layers.EthernetTypeIPv6, echo), stack.BadVersion},
		{"IPv6 version in an IPv4 frame", pt.Ethernet(t, hostMAC, kernelMAC, layers.EthernetTypeIPv4, corrupt(echo, func(b []byte) { b[0] = 0x60 })), stack.BadVersion},
		{"LLDP", pt.Ethernet(t, hostMAC, kernelMAC, layers.EthernetTypeLinkLayerDiscovery, []byte{1, 2, 3}), stack.Unsupported},
		// gopacket v1.1.19's ARP decoder panicked on this 20-byte frame.
		{"ARP hlen 255 in 20 bytes", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x9a, 0x29, 0x56, 0x55, 0x0c, 0xc6, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0xff, 0x04}, stack.Truncated},
		{"ARP hlen 255", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, corrupt(req, func(b []byte) { b[4] = 255 })), stack.BadARP},
		{"ARP plen 16", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, corrupt(req, func(b []byte) { b[5] = 16 })), stack.BadARP},
		{"ARP htype 6", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, corrupt(req, func(b []byte) { b[1] = 6 })), stack.BadARP},
		{"ARP ptype IPv6", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, corrupt(req, func(b []byte) { b[2], b[3] = 0x86, 0xdd })), stack.BadARP},
		{"ARP truncated", rawFrame(bcast, kernelMAC, layers.EthernetTypeARP, req[:27]), stack.Truncated},
		{"ARP reply", pt.Ethernet(t, hostMAC, kernelMAC, layers.EthernetTypeARP, arp(2, kernelMAC, "10.0.0.1", "10.0.0.2")), stack.IgnoredARP},
		{"ARP for another address", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, arp(1, kernelMAC, "10.0.0.1", "10.0.0.9")), stack.NotForUs},
		{"ARP for the kernel's address", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, arp(1, kernelMAC, "10.0.0.1", "10.0.0.1")), stack.NotForUs},
		{"ARP from multicast sha", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, arp(1, mustMAC("01:00:5e:00:00:01"), "10.0.0.1", "10.0.0.2")), stack.BadSource},
		{"ARP from broadcast spa", pt.Ethernet(t, bcast, kernelMAC, layers.EthernetTypeARP, arp(1, kernelMAC, "255.255.255.255", "10.0.0.2")), stack.BadSource},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack(t, true)
			n := 0
			if tc.want == stack.Replied {
				n = 1
			}
			handle(t, s, out, tc.name, tc.pkt, tc.want, n)
		})
	}
}

func TestARP(t *testing.T) {
	bcast := mustMAC("ff:ff:ff:ff:ff:ff")
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	ip0 := netip.MustParseAddr("0.0.0.0")
	tests := []struct {
		name    string
		req     []byte
		checker pt.EthernetChecker
	}{
		{"request", pt.ARP(t, 1, kernelMAC, kernelAddr, zero, hostAddr), pt.EthARP(2, hostMAC, hostAddr, kernelMAC, kernelAddr)},
		// RFC 5227 probe: sender IP 0.0.0.0; the reply defends the address.
		{"probe", pt.ARP(t, 1, kernelMAC, ip0, zero, hostAddr), pt.EthARP(2, hostMAC, hostAddr, kernelMAC, ip0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack(t, true)
			for _, dst := range []net.HardwareAddr{bcast, hostMAC} {
				reply := handle(t, s, out, tc.name, pt.Ethernet(t, dst, kernelMAC, layers.EthernetTypeARP, tc.req), stack.Replied, 1)[0]
				pt.EthernetFrame(t, reply, pt.EthAddrs(kernelMAC, hostMAC), tc.checker)
			}
		})
	}
}

func TestARPOnTUNIsUnsupported(t *testing.T) {
	s, out := newStack(t, false)
	handle(t, s, out, "ARP bytes on TUN", goldenARPRequest[14:], stack.BadVersion, 0)
}

func TestAnnounce(t *testing.T) {
	s, err := stack.New(stack.Config{Ethernet: true, Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/29")}, HostSide: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}})
	if err != nil {
		t.Fatal(err)
	}
	// 10.0.0.0/29 less the network, broadcast and kernel addresses: .2 to .6.
	out := stack.NewOut(2, s.PacketSize(), 0)
	var got []netip.Addr
	for i, done := 0, false; !done; {
		out.Reset()
		i, done = s.Announce(out, i)
		for _, f := range packets(out) {
			a, _ := netip.AddrFromSlice(f[14+14 : 14+18])
			// Every address of a prefix has its own MAC.
			mac := stack.MACFor(a)
			pt.EthernetFrame(t, f, pt.EthAddrs(mustMAC("ff:ff:ff:ff:ff:ff"), mac),
				pt.EthARP(1, mac, a, net.HardwareAddr{0, 0, 0, 0, 0, 0}, a))
			got = append(got, a)
		}
	}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4"),
		netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.6")}
	if len(got) != len(want) {
		t.Fatalf("announced %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("announced %v, want %v", got, want)
		}
	}
	tun, _ := newStack(t, false)
	if _, done := tun.Announce(out, 0); !done {
		t.Errorf("TUN Announce not done at once")
	}
}

// defrag reassembles the stack's reply fragments with gopacket's
// independent defragmenter and returns the whole datagram's layers.
func defrag(t *testing.T, frags [][]byte) (*layers.IPv4, []byte) {
	t.Helper()
	d := ip4defrag.NewIPv4Defragmenter()
	for i, f := range frags {
		pt.IPv4(t, f, pt.SrcAddr(hostAddr), pt.DstAddr(kernelAddr), pt.TTL(64))
		var ip layers.IPv4
		if err := ip.DecodeFromBytes(f, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		whole, err := d.DefragIPv4(&ip)
		if err != nil {
			t.Fatalf("defrag fragment %d: %v", i, err)
		}
		if whole != nil {
			if i != len(frags)-1 {
				t.Fatalf("datagram complete after %d of %d fragments", i+1, len(frags))
			}
			b := pt.Serialize(t, whole, gopacket.Payload(whole.Payload))
			return whole, b
		}
	}
	t.Fatalf("reply fragments never completed a datagram")
	return nil, nil
}

func TestFragmentedEcho(t *testing.T) {
	tests := []struct {
		name      string
		size, mtu int
		fragSize  int // request fragment payload size
		reverse   bool
		wantFrags int
	}{
		{"1473 bytes at MTU 1500", 1473, 1500, 1480, false, 2},
		{"8000 bytes at MTU 1500", 8000, 1500, 1480, false, 6},
		{"8000 bytes out of order", 8000, 1500, 1480, true, 6},
		{"65507 bytes at MTU 1500", 65507, 1500, 1480, false, 45},
		{"65507 bytes at MTU 576", 65507, 576, 552, false, 119},
		{"small fragments, big MTU", 3000, 9000, 64, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack(t, false, func(c *stack.Config) { c.MTU = tc.mtu })
			payload := make([]byte, tc.size)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			pkt := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 42, Seq: 7, Payload: payload, TOS: 0x10}.IPv4(t)
			frags := pt.Fragment(t, pkt, tc.fragSize)
			if tc.reverse {
				for i, j := 0, len(frags)-1; i < j; i, j = i+1, j-1 {
					frags[i], frags[j] = frags[j], frags[i]
				}
			}
			for i, f := range frags[:len(frags)-1] {
				handle(t, s, out, "fragment "+string(rune('0'+i%10)), f, stack.FragmentQueued, 0)
			}
			replies := handle(t, s, out, "last fragment", frags[len(frags)-1], stack.Replied, tc.wantFrags)
			for _, r := range replies {
				if len(r) > tc.mtu {
					t.Fatalf("reply fragment of %d bytes exceeds MTU %d", len(r), tc.mtu)
				}
			}
			var whole []byte
			if len(replies) == 1 {
				whole = replies[0]
			} else {
				_, whole = defrag(t, replies)
			}
			pt.IPv4(t, whole, pt.SrcAddr(hostAddr), pt.DstAddr(kernelAddr), pt.TOS(0x10), pt.ICMPv4(pt.EchoReply(42, 7, payload)))
		})
	}
}

func TestReassemblyBounds(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	mods := func(c *stack.Config) {
		c.Now = clock.Now
		c.Reassembly = stack.ReassemblyConfig{Timeout: 30 * time.Second, MaxDatagrams: 4, PerSource: 2}
	}
	frags := func(id uint16, src netip.Addr) [][]byte {
		p := pt.Echo{Src: src, Dst: hostAddr, ID: 1, Seq: 1, IPID: id, Payload: make([]byte, 3000)}.IPv4(t)
		return pt.Fragment(t, p, 1480)
	}
	count := func(s *stack.Stack, name string) uint64 {
		for _, c := range s.Counters() {
			if c.Name == name {
				return c.Value
			}
		}
		t.Fatalf("no counter %q", name)
		return 0
	}

	t.Run("overlap drops the datagram", func(t *testing.T) {
		s, out := newStack(t, false, mods)
		f := frags(1, kernelAddr)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		handle(t, s, out, "first again", f[0], stack.FragmentOverlap, 0)
		// The datagram is gone: the rest cannot complete it.
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		handle(t, s, out, "last", f[2], stack.FragmentQueued, 0)
	})
	t.Run("partial overlap", func(t *testing.T) {
		s, out := newStack(t, false, mods)
		f := frags(1, kernelAddr)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		shifted := corrupt(f[1], func(b []byte) { b[7] -= 1; fixIPChecksum(b) }) // offset 1472 instead of 1480
		handle(t, s, out, "overlapping", shifted, stack.FragmentOverlap, 0)
	})
	t.Run("timeout", func(t *testing.T) {
		s, out := newStack(t, false, mods)
		f := frags(1, kernelAddr)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		clock.t = clock.t.Add(31 * time.Second)
		handle(t, s, out, "last, too late", f[2], stack.FragmentQueued, 0)
		if got := count(s, "fragment_timeout"); got != 1 {
			t.Errorf("fragment_timeout = %d, want 1", got)
		}
		// Within the timeout it completes.
		f = frags(2, kernelAddr)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		clock.t = clock.t.Add(29 * time.Second)
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		handle(t, s, out, "last", f[2], stack.Replied, 3)
	})
	t.Run("per-source limit", func(t *testing.T) {
		s, out := newStack(t, false, mods)
		handle(t, s, out, "id 1", frags(1, kernelAddr)[0], stack.FragmentQueued, 0)
		handle(t, s, out, "id 2", frags(2, kernelAddr)[0], stack.FragmentQueued, 0)
		handle(t, s, out, "id 3 over the limit", frags(3, kernelAddr)[0], stack.FragmentLimit, 0)
		// Another source still gets in.
		other := netip.MustParseAddr("10.0.0.3")
		handle(t, s, out, "other source", frags(1, other)[0], stack.FragmentQueued, 0)
	})
	t.Run("global limit evicts the oldest", func(t *testing.T) {
		s, out := newStack(t, false, mods)
		var first [][]byte
		for i := range 5 {
			f := frags(1, netip.AddrFrom4([4]byte{10, 0, 0, byte(10 + i)}))
			if i == 0 {
				first = f
			}
			handle(t, s, out, "datagram", f[0], stack.FragmentQueued, 0)
		}
		if got := count(s, "fragment_evicted"); got != 1 {
			t.Errorf("fragment_evicted = %d, want 1", got)
		}
		handle(t, s, out, "evicted datagram's rest", first[1], stack.FragmentQueued, 0)
		handle(t, s, out, "evicted datagram's last", first[2], stack.FragmentQueued, 0)
	})
	t.Run("bad fragments", func(t *testing.T) {
		s, out := newStack(t, false, mods)
		f := frags(1, kernelAddr)
		odd := pt.Fragment(t, pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, IPID: 9, Payload: make([]byte, 100)}.IPv4(t), 1480)[0]
		odd = corrupt(odd, func(b []byte) { b[6] |= 0x20; fixIPChecksum(b) }) // MF set on 108 bytes: not a multiple of 8
		handle(t, s, out, "non-final fragment of odd length", odd, stack.BadFragment, 0)
		past := corrupt(f[2], func(b []byte) { b[6], b[7] = 0x1f, 0xff; fixIPChecksum(b) }) // offset 65528
		handle(t, s, out, "past 65535 bytes", past, stack.BadFragment, 0)
		handle(t, s, out, "last first", f[2], stack.FragmentQueued, 0)
		beyond := corrupt(f[1], func(b []byte) { b[6], b[7] = 0x20, 0xff; fixIPChecksum(b) })
		handle(t, s, out, "beyond the last", beyond, stack.BadFragment, 0)
	})
}

func TestCountersNamed(t *testing.T) {
	s, _ := newStack(t, false)
	seen := map[string]bool{}
	for _, c := range s.Counters() {
		if c.Name == "" || c.Name == "unknown" || seen[c.Name] {
			t.Errorf("counter name %q empty or repeated", c.Name)
		}
		seen[c.Name] = true
	}
	if !seen["replied"] || !seen["bad_ip_checksum"] || !seen["tx_packets"] {
		t.Errorf("counters %v lack expected names", seen)
	}
}

// fixUDPChecksum recomputes the UDP checksum of a raw IPv4 packet with a
// 20-byte header, over the whole IP payload.
func fixUDPChecksum(b []byte) {
	u := b[20:]
	u[6], u[7] = 0, 0
	ph := append(append([]byte(nil), b[12:20]...), 0, 17, byte(len(u)>>8), byte(len(u)))
	c := pt.Checksum(append(ph, u...))
	u[6], u[7] = byte(c>>8), byte(c)
}
