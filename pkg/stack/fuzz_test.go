package stack_test

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

// fuzzSeeds are every golden packet, raw and in Ethernet.
func fuzzSeeds(t testing.TB) [][]byte {
	frags := pt.Fragment(t, pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, Payload: make([]byte, 3000)}.IPv4(t), 1480)
	seeds := [][]byte{goldenEcho, goldenEchoReply, goldenARPRequest[14:], goldenARPReply[14:]}
	seeds = append(seeds, frags...)
	var out [][]byte
	for _, s := range seeds {
		out = append(out, s, rawFrame(hostMAC, kernelMAC, layers.EthernetTypeIPv4, s))
	}
	out = append(out, goldenARPRequest, goldenARPReply, goldenEchoFrame, goldenEchoReplyFrame)
	return append(out, fuzzSeeds6(t)...)
}

// FuzzHandle feeds arbitrary bytes to a TUN and a TAP stack, both owning a
// prefix and a small MTU so fragmentation paths run. Invariants: no panic,
// replies fit the packet size, and every reply is a valid packet.
func FuzzHandle(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	mk := func(ethernet bool) (*stack.Stack, *stack.Out) {
		s, err := stack.New(stack.Config{Ethernet: ethernet, MTU: 576,
			Addrs:    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/120")},
			HostSide: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")}, MAC: hostMAC,
			Reassembly: stack.ReassemblyConfig{MaxDatagrams: 4, PerSource: 2}})
		if err != nil {
			f.Fatal(err)
		}
		return s, stack.NewOut(s.MaxOut(), s.PacketSize(), 8)
	}
	tun, tunOut := mk(false)
	tap, tapOut := mk(true)
	// The same addresses behind routers, one with a small MTU, and a path
	// MTU: the routers' errors, port unreachable and resets for both
	// families.
	mkRouted := func(ethernet bool) (*stack.Stack, *stack.Out) {
		s, err := stack.New(stack.Config{Ethernet: ethernet, MTU: 1500,
			Hosts: []stack.Host{{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/120")},
				MAC: hostMAC, Routers: []stack.Router{{}, {MTU: 1400}}, PathMTU: 1300}},
			HostSide:   []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")},
			Reassembly: stack.ReassemblyConfig{MaxDatagrams: 4, PerSource: 2}, ICMPRate: stack.ICMPRateLimit{PerSecond: -1}})
		if err != nil {
			f.Fatal(err)
		}
		return s, stack.NewOut(s.MaxOut(), s.PacketSize(), 8)
	}
	rtun, rtunOut := mkRouted(false)
	rtap, rtapOut := mkRouted(true)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, c := range []struct {
			s        *stack.Stack
			out      *stack.Out
			ethernet bool
			routed   bool
		}{{tun, tunOut, false, false}, {tap, tapOut, true, false}, {rtun, rtunOut, false, true}, {rtap, rtapOut, true, true}} {
			c.out.Reset()
			in := append([]byte(nil), pkt...)
			v := c.s.Handle(in, c.out)
			if string(in) != string(pkt) {
				t.Fatalf("Handle modified its input")
			}
			if !mayReply[v] && c.out.Len() != 0 {
				t.Fatalf("verdict %v but %d packets appended", v, c.out.Len())
			}
			if v == stack.Replied && c.out.Len() == 0 {
				t.Fatalf("verdict replied but nothing appended")
			}
			for _, r := range packets(c.out) {
				if len(r) > c.s.PacketSize() {
					t.Fatalf("reply of %d bytes exceeds packet size %d", len(r), c.s.PacketSize())
				}
				if c.routed {
					checkRoutedReply(t, r, c.ethernet)
					continue
				}
				checkValidReply(t, r, c.ethernet)
			}
		}
	})
}

// mayReply are the verdicts that come with a reply: an echo reply, a
// neighbour advertisement, an ICMP error (a bad IPv6 fragment may get a
// Parameter Problem) or a reset.
var mayReply = map[stack.Verdict]bool{
	stack.Replied: true, stack.TimeExceeded: true, stack.TooBig: true, stack.PortUnreachable: true,
	stack.ProtoUnreachable: true, stack.Reset: true, stack.ParamProblem: true, stack.BadFragment: true,
}

// checkValidReply checks that r is a well-formed packet the host may send.
func checkValidReply(t *testing.T, r []byte, ethernet bool) {
	t.Helper()
	if ethernet {
		if len(r) < 14 {
			t.Fatalf("reply frame of %d bytes", len(r))
		}
		if r[6]&1 != 0 || [6]byte(r[6:12]) != [6]byte(hostMAC) {
			t.Fatalf("reply from MAC % x, want %v", r[6:12], hostMAC)
		}
		if r[0]&1 != 0 && [6]byte(r[0:6]) != [6]byte{0x33, 0x33, 0, 0, 0, 1} {
			t.Fatalf("reply to group MAC % x", r[0:6])
		}
		switch layers.EthernetType(uint16(r[12])<<8 | uint16(r[13])) {
		case layers.EthernetTypeARP:
			if len(r) != 42 || r[21] != 2 {
				t.Fatalf("ARP reply malformed: % x", r)
			}
			return
		case layers.EthernetTypeIPv4:
			if r[0]&1 != 0 {
				t.Fatalf("IPv4 reply to group MAC % x", r[0:6])
			}
			r = r[14:]
		case layers.EthernetTypeIPv6:
			checkValidReply6(t, r[14:], r[0:6], false)
			return
		default:
			t.Fatalf("reply of EtherType %#x", r[12:14])
		}
	}
	if len(r) > 0 && r[0]>>4 == 6 {
		checkValidReply6(t, r, nil, false)
		return
	}
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(r, nil); err != nil {
		t.Fatalf("reply does not decode as IPv4: %v", err)
	}
	// The host's errors (port and protocol unreachable) and resets are
	// checked as the routed stacks' replies are.
	whole := ip.FragOffset == 0 && ip.Flags&layers.IPv4MoreFragments == 0
	if ip.TTL == 64 && (ip.Protocol == layers.IPProtocolTCP || ip.Protocol == layers.IPProtocolICMPv4 && whole && len(ip.Payload) > 0 && ip.Payload[0] == 3) {
		checkRoutedReply(t, r, false)
		return
	}
	if pt.Checksum(r[:20]) != 0 || int(ip.Length) != len(r) || ip.TTL != 64 || ip.Protocol != layers.IPProtocolICMPv4 {
		t.Fatalf("reply header invalid: % x", r[:20])
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	if !netip.MustParsePrefix("10.0.0.0/24").Contains(src) || src == netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("reply from %v, not an owned address", src)
	}
	if ip.FragOffset == 0 && ip.Flags&layers.IPv4MoreFragments == 0 {
		if pt.Checksum(ip.Payload) != 0 || ip.Payload[0] != 0 {
			t.Fatalf("echo reply invalid: % x", ip.Payload[:min(8, len(ip.Payload))])
		}
	}
}
