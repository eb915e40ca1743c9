package stack_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

var (
	solicited6    = pt.SolicitedNode(hostAddr6) // ff02::1:ff00:2
	solicitedMAC6 = mustMAC("33:33:ff:00:00:02")
	allNodes6     = netip.MustParseAddr("ff02::1")
	allNodesMAC6  = mustMAC("33:33:00:00:00:01")
	unspecified6  = netip.IPv6Unspecified()
)

// ns6 describes a neighbour solicitation from the kernel side.
type ns6 struct {
	src, dst, target netip.Addr
	slla             net.HardwareAddr
	hopLimit         uint8 // default 255
	extra            [][]byte
}

func (n ns6) packet() []byte {
	hl := n.hopLimit
	if hl == 0 {
		hl = 255
	}
	return pt.Packet6{Src: n.src, Dst: n.dst, HopLimit: hl, NextHeader: pt.NHICMPv6,
		Payload: pt.NS(n.src, n.dst, n.target, n.slla, n.extra...)}.Bytes()
}

// solicit is the solicitation ndisc6 and the kernel send: to the
// solicited-node group, with the sender's MAC.
var solicit = ns6{src: kernelAddr6, dst: solicited6, target: hostAddr6, slla: kernelMAC}

func TestNeighborSolicitation(t *testing.T) {
	linkLocal := netip.MustParseAddr("fe80::9829:56ff:fe55:cc6")
	other := mustMAC("0a:00:00:00:00:07")
	nonce := []byte{14, 1, 1, 2, 3, 4, 5, 6} // RFC 7527, ignored
	tests := []struct {
		name      string
		ns        ns6
		frameDst  net.HardwareAddr
		dst       netip.Addr       // the advertisement's
		dstMAC    net.HardwareAddr // and its frame's
		flags     uint8
		frameFrom net.HardwareAddr // default kernelMAC
	}{
		{"solicited-node multicast", solicit, solicitedMAC6, kernelAddr6, kernelMAC, pt.NASolicited | pt.NAOverride, nil},
		{"from a link-local address", ns6{src: linkLocal, dst: solicited6, target: hostAddr6, slla: kernelMAC}, solicitedMAC6,
			linkLocal, kernelMAC, pt.NASolicited | pt.NAOverride, nil},
		// RFC 4861 §7.2.4: to the source link-layer address option's MAC.
		{"option names another MAC", ns6{src: kernelAddr6, dst: solicited6, target: hostAddr6, slla: other}, solicitedMAC6,
			kernelAddr6, other, pt.NASolicited | pt.NAOverride, nil},
		// Neighbour unreachability detection: unicast, often without the
		// option; the advertisement goes to the frame's source.
		{"unicast", ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6}, hostMAC6, kernelAddr6, kernelMAC,
			pt.NASolicited | pt.NAOverride, nil},
		{"unicast from another MAC", ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6}, hostMAC6, kernelAddr6, other,
			pt.NASolicited | pt.NAOverride, other},
		{"unknown option", ns6{src: kernelAddr6, dst: solicited6, target: hostAddr6, slla: kernelMAC, extra: [][]byte{nonce}}, solicitedMAC6,
			kernelAddr6, kernelMAC, pt.NASolicited | pt.NAOverride, nil},
		// RFC 4862 §5.4.3: duplicate address detection for an owned
		// address is answered to all nodes, Solicited clear.
		{"duplicate address detection", ns6{src: unspecified6, dst: solicited6, target: hostAddr6, extra: [][]byte{nonce}}, solicitedMAC6,
			allNodes6, allNodesMAC6, pt.NAOverride, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack6(t, true)
			from := tc.frameFrom
			if from == nil {
				from = kernelMAC
			}
			frame := rawFrame(tc.frameDst, from, layers.EthernetTypeIPv6, tc.ns.packet())
			before := s.HostCounters()
			r := handle(t, s, out, tc.name, frame, stack.Replied, 1)[0]
			if len(r) != 14+40+32 {
				t.Errorf("advertisement frame of %d bytes, want 86", len(r))
			}
			pt.EthernetFrame(t, r, pt.EthAddrs(tc.dstMAC, hostMAC6), pt.EthIPv6(pt.Src6(hostAddr6), pt.Dst6(tc.dst),
				pt.HopLimit(255), pt.TrafficClass(0), pt.ICMPv6(pt.NeighborAdvert(hostAddr6, tc.flags, hostMAC6))))
			after := s.HostCounters()
			if after[1].Rx != before[1].Rx+1 || after[1].Replies != before[1].Replies+1 {
				t.Errorf("host counters %+v, then %+v: want one more packet and one more reply for fd00::2", before[1], after[1])
			}
		})
	}
}

// TestNeighborSolicitationFixedMAC: a host with a MAC of its own answers
// with it, for every address.
func TestNeighborSolicitationFixedMAC(t *testing.T) {
	mac := mustMAC("02:00:00:00:00:01")
	s, out := newStack6(t, true, func(c *stack.Config) { c.MAC = mac })
	frame := rawFrame(solicitedMAC6, kernelMAC, layers.EthernetTypeIPv6, solicit.packet())
	r := handle(t, s, out, "solicitation", frame, stack.Replied, 1)[0]
	pt.EthernetFrame(t, r, pt.EthAddrs(kernelMAC, mac), pt.EthIPv6(pt.ICMPv6(pt.NeighborAdvert(hostAddr6, pt.NASolicited|pt.NAOverride, mac))))
	unicast := rawFrame(mac, kernelMAC, layers.EthernetTypeIPv6, ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6}.packet())
	handle(t, s, out, "unicast solicitation", unicast, stack.Replied, 1)
}

func TestNeighborSolicitationDrops(t *testing.T) {
	mod := func(f func(b []byte)) []byte {
		b := solicit.packet()
		f(b)
		return b
	}
	// fixICMP recomputes the checksum of the message after the fixed header.
	fixICMP := func(b []byte) {
		b[42], b[43] = 0, 0
		c := pt.Checksum6(netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40])), pt.NHICMPv6, b[40:])
		b[42], b[43] = byte(c>>8), byte(c)
	}
	short := solicit.packet()[:40+23]
	fixPayloadLength6(short)
	fixICMP(short)
	withOpt := func(opt []byte) []byte {
		return ns6{src: kernelAddr6, dst: solicited6, target: hostAddr6, extra: [][]byte{opt}}.packet()
	}
	sn := func(a string) netip.Addr { return pt.SolicitedNode(netip.MustParseAddr(a)) }
	frag := pt.Fragment6(t, solicit.packet(), 16, 1)
	for _, f := range frag {
		f[7] = 255
	}
	tests := []struct {
		name     string
		pkt      []byte
		frameDst net.HardwareAddr // default the solicited-node group's
		want     stack.Verdict
	}{
		// RFC 4861 §7.1.1, one check each.
		{"hop limit 254", ns6{src: kernelAddr6, dst: solicited6, target: hostAddr6, slla: kernelMAC, hopLimit: 254}.packet(), nil, stack.BadND},
		{"hop limit 64, unicast", ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6, hopLimit: 64}.packet(), hostMAC6, stack.BadND},
		{"bad checksum", mod(func(b []byte) { b[43] ^= 1 }), nil, stack.BadICMPChecksum},
		{"code 1", mod(func(b []byte) { b[41] = 1; fixICMP(b) }), nil, stack.BadND},
		{"23 bytes", short, nil, stack.BadND},
		{"multicast target", ns6{src: kernelAddr6, dst: sn("ff02::1"), target: allNodes6}.packet(), mustMAC("33:33:ff:00:00:01"), stack.BadND},
		{"zero-length option", withOpt([]byte{14, 0, 0, 0, 0, 0, 0, 0}), nil, stack.BadND},
		{"option past the message", withOpt([]byte{14, 2, 0, 0, 0, 0, 0, 0}), nil, stack.BadND},
		{"option of one byte", withOpt([]byte{14}), nil, stack.BadND},
		{"source link-layer option of 16 bytes", withOpt(append([]byte{1, 2}, make([]byte, 14)...)), nil, stack.BadND},
		{"duplicate address detection with a source option",
			ns6{src: unspecified6, dst: solicited6, target: hostAddr6, slla: kernelMAC}.packet(), nil, stack.BadND},
		{"duplicate address detection to all nodes", ns6{src: unspecified6, dst: allNodes6, target: hostAddr6}.packet(), allNodesMAC6, stack.BadND},
		{"duplicate address detection to a unicast address", ns6{src: unspecified6, dst: hostAddr6, target: hostAddr6}.packet(), hostMAC6, stack.BadSource},
		// Fragments to a group are not reassembled (nor may neighbour
		// discovery be fragmented, RFC 6980 §5).
		{"fragmented", frag[0], nil, stack.NotForUs},
		{"fragmented, last", frag[1], nil, stack.NotForUs},
		{"multicast source link-layer address", ns6{src: kernelAddr6, dst: solicited6, target: hostAddr6, slla: allNodesMAC6}.packet(), nil, stack.BadSource},
		{"unowned target", ns6{src: kernelAddr6, dst: sn("fd00::9"), target: otherAddr6, slla: kernelMAC}.packet(), mustMAC("33:33:ff:00:00:09"), stack.NotForUs},
		{"the kernel's address", ns6{src: kernelAddr6, dst: sn("fd00::1"), target: kernelAddr6, slla: kernelMAC}.packet(), mustMAC("33:33:ff:00:00:01"), stack.NotForUs},
		{"another group than the target's", ns6{src: kernelAddr6, dst: sn("fd00::9"), target: hostAddr6, slla: kernelMAC}.packet(), mustMAC("33:33:ff:00:00:09"), stack.NotForUs},
		{"group's frame to another MAC", solicit.packet(), mustMAC("33:33:ff:00:00:03"), stack.NotForUs},
		{"unicast to another address", ns6{src: kernelAddr6, dst: hostAddr6, target: otherAddr6}.packet(), hostMAC6, stack.NotForUs},
		{"unicast frame to another MAC", ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6}.packet(), mustMAC("06:fd:00:00:00:03"), stack.NotForUs},
	}
	s, out := newStack6(t, true)
	for _, tc := range tests {
		dst := tc.frameDst
		if dst == nil {
			dst = solicitedMAC6
		}
		handle(t, s, out, tc.name, rawFrame(dst, kernelMAC, layers.EthernetTypeIPv6, tc.pkt), tc.want, 0)
	}
}

// TestNeighborSolicitationFragmented: RFC 6980 §5 forbids fragmented
// neighbour discovery; a reassembled solicitation to the host is dropped.
func TestNeighborSolicitationFragmented(t *testing.T) {
	s, out := newStack6(t, true)
	pkt := ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6, slla: kernelMAC}.packet()
	frags := pt.Fragment6(t, pkt, 16, 1)
	handle(t, s, out, "first", frame6(hostMAC6, frags[0]), stack.FragmentQueued, 0)
	handle(t, s, out, "last", frame6(hostMAC6, frags[1]), stack.BadND, 0)
}

// TestNeighborSolicitationAtomicFragment: RFC 6980 §5 covers atomic
// fragments too, to the group and to the host.
func TestNeighborSolicitationAtomicFragment(t *testing.T) {
	s, out := newStack6(t, true)
	for _, dst := range []netip.Addr{solicited6, hostAddr6} {
		msg := pt.NS(kernelAddr6, dst, hostAddr6, kernelMAC)
		pkt := pt.Packet6{Src: kernelAddr6, Dst: dst, HopLimit: 255, NextHeader: pt.NHFragment,
			Payload: append(pt.FragmentHeader(pt.NHICMPv6, 0, false, 5), msg...)}.Bytes()
		mac := hostMAC6
		if dst == solicited6 {
			mac = pt.MulticastMAC(solicited6)
		}
		handle(t, s, out, "atomic fragment to "+dst.String(), frame6(mac, pkt), stack.BadND, 0)
	}
}

// TestNeighborSolicitationSourceNotOnLink: no advertisement goes to
// loopback or an IPv4-mapped address.
func TestNeighborSolicitationSourceNotOnLink(t *testing.T) {
	s, out := newStack6(t, true)
	for _, src := range []string{"::1", "::ffff:10.0.0.1"} {
		n := ns6{src: netip.MustParseAddr(src), dst: solicited6, target: hostAddr6, slla: kernelMAC}
		handle(t, s, out, "from "+src, frame6(pt.MulticastMAC(solicited6), n.packet()), stack.BadSource, 0)
	}
}

func TestNeighborSolicitationOnTUN(t *testing.T) {
	s, out := newStack6(t, false)
	handle(t, s, out, "solicitation", solicit.packet(), stack.IgnoredND, 0)
	handle(t, s, out, "unicast solicitation", ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6}.packet(), stack.IgnoredND, 0)
}

// TestMulticastListenerDiscovery: the kernel's MLD reports (hop-by-hop
// router alert, to ff02::16) and queries are ignored.
func TestMulticastListenerDiscovery(t *testing.T) {
	mld := netip.MustParseAddr("ff02::16")
	report := pt.Packet6{Src: netip.MustParseAddr("fe80::1"), Dst: mld, HopLimit: 1, NextHeader: pt.NHHopByHop,
		Payload: append(pt.OptionsHeader(pt.NHICMPv6, []byte{5, 2, 0, 0}), pt.ICMPv6Msg(netip.MustParseAddr("fe80::1"), mld, 143, 0, make([]byte, 4))...)}.Bytes()
	query := pt.Packet6{Src: netip.MustParseAddr("fe80::1"), Dst: allNodes6, HopLimit: 1, NextHeader: pt.NHHopByHop,
		Payload: append(pt.OptionsHeader(pt.NHICMPv6, []byte{5, 2, 0, 0}), pt.ICMPv6Msg(netip.MustParseAddr("fe80::1"), allNodes6, 130, 0, make([]byte, 24))...)}.Bytes()
	for _, ethernet := range []bool{false, true} {
		s, out := newStack6(t, ethernet)
		r, q := report, query
		if ethernet {
			r, q = frame6(pt.MulticastMAC(mld), report), frame6(allNodesMAC6, query)
		}
		handle(t, s, out, "MLDv2 report", r, stack.IgnoredICMP, 0)
		handle(t, s, out, "MLD query", q, stack.IgnoredICMP, 0)
	}
}

func TestAnnounce6(t *testing.T) {
	s, err := stack.New(stack.Config{Ethernet: true, Addrs: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.2/32"), netip.MustParsePrefix("fd00::2/128"), netip.MustParsePrefix("fd00::10/127"),
	}, HostSide: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	out := stack.NewOut(2, s.PacketSize(), 0)
	var got []netip.Addr
	for i, done := 0, false; !done; {
		out.Reset()
		i, done = s.Announce(out, i)
		for _, f := range packets(out) {
			if layers.EthernetType(uint16(f[12])<<8|uint16(f[13])) != layers.EthernetTypeIPv6 {
				continue
			}
			a := netip.AddrFrom16([16]byte(f[14+8 : 14+24]))
			mac := stack.MACFor6(a)
			// RFC 4861 §7.2.6: to all nodes, Override set, Solicited clear,
			// with the target link-layer address.
			pt.EthernetFrame(t, f, pt.EthAddrs(allNodesMAC6, mac), pt.EthIPv6(pt.Src6(a), pt.Dst6(allNodes6),
				pt.ICMPv6(pt.NeighborAdvert(a, pt.NAOverride, mac))))
			got = append(got, a)
		}
	}
	want := []netip.Addr{netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::10"), netip.MustParseAddr("fd00::11")}
	if len(got) != len(want) {
		t.Fatalf("announced %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("announced %v, want %v", got, want)
		}
	}
	if n := counterValue(t, s, "nd_announcements"); n != 3 {
		t.Errorf("nd_announcements = %d, want 3", n)
	}
}
