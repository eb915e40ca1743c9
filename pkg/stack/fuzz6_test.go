package stack_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
)

// fuzzSeeds6 are IPv6 packets of every kind the stack handles, raw and in
// Ethernet frames to the MAC FuzzHandle's stacks use (or to the group's).
func fuzzSeeds6(t testing.TB) [][]byte {
	msg := echoMsg6()
	pad := []byte{1, 4, 0, 0, 0, 0}
	big := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 1, Seq: 1, Payload: make([]byte, 3000)}.IPv6(t)
	mld := netip.MustParseAddr("ff02::16")
	unicast := [][]byte{
		echo6(t, nil),
		echo6(t, func(e *pt.Echo6) { e.HopLimit = 1 }),
		echo6(t, func(e *pt.Echo6) { e.Payload = make([]byte, 1400) }),
		packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHICMPv6, pad), msg),
		packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHDestOpts, []byte{5, 2, 0, 0}), pt.OptionsHeader(pt.NHICMPv6, []byte{0x9e, 0}), msg),
		packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHHopByHop), pt.OptionsHeader(pt.NHICMPv6), msg),
		packet6(pt.NHRouting, pt.ExtHeader(pt.NHICMPv6, append([]byte{0, 1, 0, 0, 0, 0}, make([]byte, 16)...)), msg),
		packet6(pt.NHRouting, pt.ExtHeader(pt.NHICMPv6, []byte{4, 0, 0, 0, 0, 0}), msg),
		packet6(pt.NHFragment, pt.FragmentHeader(pt.NHICMPv6, 0, false, 77), msg),
		packet6(pt.NHFragment, pt.FragmentHeader(pt.NHDestOpts, 0, true, 3), []byte{pt.NHICMPv6, 1, 1, 4, 0, 0, 0, 0}),
		packet6(253, []byte("experimental")),
		packet6(pt.NHNone),
		probe6(1, 32),
		probe6(64, 32),
		probe6(64, 1400),
		packet6(pt.NHTCP, pt.TCP6(kernelAddr6, hostAddr6, 40001, 443, 1000, 0, 0x02, nil)),
		ns6{src: kernelAddr6, dst: hostAddr6, target: hostAddr6}.packet(),
		pt.Packet6{Src: kernelAddr6, Dst: hostAddr6, HopLimit: 255, NextHeader: pt.NHICMPv6,
			Payload: pt.ICMPv6Msg(kernelAddr6, hostAddr6, 136, 0, make([]byte, 20))}.Bytes(),
	}
	unicast = append(unicast, pt.Fragment6(t, big, 528, 9)...)
	unicast = append(unicast, pt.Fragment6(t, probe6(64, 3000), 1448, 10)...)
	var out [][]byte
	for _, p := range unicast {
		out = append(out, p, frame6(hostMAC, p))
	}
	group := [][]byte{
		solicit.packet(),
		ns6{src: unspecified6, dst: solicited6, target: hostAddr6}.packet(),
		pt.Packet6{Src: kernelAddr6, Dst: netip.MustParseAddr("ff02::2"), HopLimit: 255, NextHeader: pt.NHICMPv6,
			Payload: pt.ICMPv6Msg(kernelAddr6, netip.MustParseAddr("ff02::2"), 133, 0, make([]byte, 4))}.Bytes(),
		pt.Packet6{Src: netip.MustParseAddr("fe80::1"), Dst: mld, HopLimit: 1, NextHeader: pt.NHHopByHop,
			Payload: append(pt.OptionsHeader(pt.NHICMPv6, []byte{5, 2, 0, 0}), pt.ICMPv6Msg(netip.MustParseAddr("fe80::1"), mld, 143, 0, make([]byte, 4))...)}.Bytes(),
	}
	for _, p := range group {
		out = append(out, p, frame6(pt.MulticastMAC(netip.AddrFrom16([16]byte(p[24:40]))), p))
	}
	for _, g := range [][]byte{goldenNSFrame, goldenNAFrame, goldenEcho6Frame, goldenEcho6ReplyFrame} {
		out = append(out, g, g[14:])
	}
	return out
}

var fuzzPrefix6 = netip.MustParsePrefix("fd00::/120")

// checkValidReply6 checks that r is a well-formed IPv6 packet one of
// FuzzHandle's hosts (or, when routed, their routers) may send. ethDst is
// its frame's destination, nil on TUN.
func checkValidReply6(t *testing.T, r, ethDst []byte, routed bool) {
	t.Helper()
	if len(r) < 40 || r[0]>>4 != 6 || int(binary.BigEndian.Uint16(r[4:6]))+40 != len(r) {
		t.Fatalf("reply is not an IPv6 packet with its length: % x", r[:min(len(r), 40)])
	}
	src, dst := netip.AddrFrom16([16]byte(r[8:24])), netip.AddrFrom16([16]byte(r[24:40]))
	owned := fuzzPrefix6.Contains(src) && src != netip.MustParseAddr("fd00::1") && src != netip.MustParseAddr("fd00::")
	if !owned && !(routed && (src == router6(1) || src == router6(2))) {
		t.Fatalf("IPv6 reply from %v, not an owned address", src)
	}
	na := r[6] == pt.NHICMPv6 && len(r) > 40 && r[40] == 136
	if dst.IsMulticast() && !(na && dst == allNodes6) {
		t.Fatalf("IPv6 reply to %v", dst)
	}
	if ethDst != nil && ethDst[0]&1 != 0 && !(dst == allNodes6 && [6]byte(ethDst) == [6]byte(allNodesMAC6)) {
		t.Fatalf("IPv6 reply to %v in a frame to % x", dst, ethDst)
	}
	minHL := uint8(64)
	if routed {
		minHL = 62
	}
	if hl := r[7]; !(na && hl == 255 || hl >= minHL && hl <= 64) {
		t.Fatalf("IPv6 reply with hop limit %d", hl)
	}
	p := r[40:]
	switch r[6] {
	case pt.NHFragment:
		if len(p) < 8 || p[0] != pt.NHICMPv6 && p[0] != pt.NHTCP {
			t.Fatalf("IPv6 fragment malformed: % x", p[:min(len(p), 8)])
		}
		if p[3]&1 != 0 && (len(p)-8)%8 != 0 {
			t.Fatalf("IPv6 fragment with M set carries %d bytes", len(p)-8)
		}
	case pt.NHICMPv6:
		if c := pt.Checksum6(src, dst, pt.NHICMPv6, p); c != 0 || len(p) < 8 {
			t.Fatalf("ICMPv6 reply of %d bytes with checksum residue %#04x", len(p), c)
		}
		switch p[0] {
		case 129:
		case 136:
			if len(p) != 32 || p[4]&0x80 != 0 || p[24] != 2 || p[25] != 1 {
				t.Fatalf("neighbour advertisement malformed: % x", p)
			}
		case 1, 2, 3, 4:
			if len(r) > 1280 {
				t.Fatalf("ICMPv6 error of %d bytes", len(r))
			}
		default:
			t.Fatalf("ICMPv6 reply of type %d", p[0])
		}
	case pt.NHTCP:
		if c := pt.Checksum6(src, dst, pt.NHTCP, p); c != 0 || len(p) != 20 || p[13]&0x04 == 0 {
			t.Fatalf("TCP reply malformed (checksum residue %#04x): % x", c, p)
		}
	default:
		t.Fatalf("IPv6 reply with next header %d", r[6])
	}
}

// checkRoutedReply checks a reply of FuzzHandle's routed stacks: echo
// replies, the routers' and the hosts' errors, resets, ARP replies and
// neighbour advertisements.
func checkRoutedReply(t *testing.T, r []byte, ethernet bool) {
	t.Helper()
	var ethDst []byte
	if ethernet {
		if len(r) < 14 || [6]byte(r[6:12]) != [6]byte(hostMAC) {
			t.Fatalf("reply frame malformed or not from %v: % x", hostMAC, r[:min(len(r), 14)])
		}
		ethDst = r[0:6]
		switch layers.EthernetType(binary.BigEndian.Uint16(r[12:14])) {
		case layers.EthernetTypeARP:
			if len(r) != 42 || r[21] != 2 || r[0]&1 != 0 {
				t.Fatalf("ARP reply malformed: % x", r)
			}
			return
		case layers.EthernetTypeIPv6:
			checkValidReply6(t, r[14:], ethDst, true)
			return
		case layers.EthernetTypeIPv4:
			if r[0]&1 != 0 {
				t.Fatalf("IPv4 reply to group MAC % x", r[0:6])
			}
			r = r[14:]
		default:
			t.Fatalf("reply of EtherType %#x", r[12:14])
		}
	}
	if len(r) > 0 && r[0]>>4 == 6 {
		checkValidReply6(t, r, ethDst, true)
		return
	}
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(r, nil); err != nil {
		t.Fatalf("reply does not decode as IPv4: %v", err)
	}
	if pt.Checksum(r[:20]) != 0 || int(ip.Length) != len(r) || ip.TTL < 62 || ip.TTL > 64 {
		t.Fatalf("reply header invalid: % x", r[:20])
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	r1, _ := netip.AddrFromSlice([]byte{198, 18, 0, 1})
	r2, _ := netip.AddrFromSlice([]byte{198, 18, 0, 2})
	if !(netip.MustParsePrefix("10.0.0.0/24").Contains(src) && src != netip.MustParseAddr("10.0.0.1")) && src != r1 && src != r2 {
		t.Fatalf("reply from %v, not an owned address or a router", src)
	}
	if ip.FragOffset != 0 || ip.Flags&layers.IPv4MoreFragments != 0 {
		return
	}
	switch ip.Protocol {
	case layers.IPProtocolICMPv4:
		if pt.Checksum(ip.Payload) != 0 || len(ip.Payload) < 8 {
			t.Fatalf("ICMP reply invalid: % x", ip.Payload[:min(8, len(ip.Payload))])
		}
		switch ip.Payload[0] {
		case 0:
		case 3, 11:
			if len(r) > 576 {
				t.Fatalf("ICMP error of %d bytes", len(r))
			}
		default:
			t.Fatalf("ICMP reply of type %d", ip.Payload[0])
		}
	case layers.IPProtocolTCP:
		ph := append(append([]byte(nil), r[12:20]...), 0, 6, 0, byte(len(ip.Payload)))
		if pt.Checksum(append(ph, ip.Payload...)) != 0 || len(ip.Payload) != 20 || ip.Payload[13]&0x04 == 0 {
			t.Fatalf("TCP reply malformed: % x", ip.Payload)
		}
	default:
		t.Fatalf("reply of protocol %v", ip.Protocol)
	}
}
