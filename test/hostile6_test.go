//go:build linux

package test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	pt "github.com/vhost-dev/vhost/internal/packettest"
)

// hostileCase6 is one IPv6 packet, or a sequence of them, that vhost must
// drop without a reply, counted under counters.
type hostileCase6 struct {
	name string
	// counters are the verdicts the packets get, one per packet.
	counters []string
	// pkts builds the raw IPv6 packets: sent as they are on TUN, in
	// Ethernet frames to vhost's MAC for fd00::2 on TAP.
	pkts func(t *testing.T) [][]byte
	// tapOnly cases need Ethernet (neighbour discovery).
	tapOnly bool
	// dstMAC, if set, is the frame's destination on TAP.
	dstMAC net.HardwareAddr
}

var (
	kernel6 = netip.MustParseAddr(hostAddr6)
	vhost6  = netip.MustParseAddr(vhostAddr6)
)

// echo6 is an echo request from the kernel side to vhost, changed by f.
func echo6(id, seq uint16, f func(b []byte)) []byte {
	b := pt.Packet6{Src: kernel6, Dst: vhost6, NextHeader: pt.NHICMPv6,
		Payload: pt.Echo6{Src: kernel6, Dst: vhost6, ID: id, Seq: seq, Payload: []byte("vhost-e2e hostile6 ........")}.Message()}.Bytes()
	if f != nil {
		f(b)
	}
	return b
}

// raw6 is e as a raw IPv6 packet.
func raw6(e pt.Echo6) []byte {
	return pt.Packet6{Src: e.Src, Dst: e.Dst, NextHeader: pt.NHICMPv6, Payload: e.Message()}.Bytes()
}

func one(b []byte) func(t *testing.T) [][]byte {
	return func(*testing.T) [][]byte { return [][]byte{b} }
}

// withExt is an echo request behind the extension headers ext, the first
// of type nh.
func withExt(nh uint8, ext ...[]byte) []byte {
	var p []byte
	for _, e := range ext {
		p = append(p, e...)
	}
	msg := pt.Echo6{Src: kernel6, Dst: vhost6, ID: hostileID, Seq: 1}.Message()
	return pt.Packet6{Src: kernel6, Dst: vhost6, NextHeader: nh, Payload: append(p, msg...)}.Bytes()
}

// ns6 is a neighbour solicitation for target from the kernel side, sent to
// target's solicited-node address with the given hop limit and options.
func ns6(hl uint8, target netip.Addr, slla net.HardwareAddr, extra ...[]byte) []byte {
	dst := pt.SolicitedNode(target)
	return pt.Packet6{Src: kernel6, Dst: dst, HopLimit: hl, NextHeader: pt.NHICMPv6,
		Payload: pt.NS(kernel6, dst, target, slla, extra...)}.Bytes()
}

// fragments of a 3000-byte echo request, identification id.
func fragments6(t *testing.T, id uint32) [][]byte {
	big := pt.Packet6{Src: kernel6, Dst: vhost6, NextHeader: pt.NHICMPv6,
		Payload: pt.Echo6{Src: kernel6, Dst: vhost6, ID: hostileID, Seq: 2, Payload: make([]byte, 3000)}.Message()}.Bytes()
	return pt.Fragment6(t, big, 1232, id)
}

var hostileCases6 = []hostileCase6{
	{name: "bad_icmpv6_checksum", counters: []string{"bad_icmp_checksum"}, pkts: one(echo6(hostileID, 1, func(b []byte) { b[42] ^= 0x5a }))},
	{name: "payload_length_past_end", counters: []string{"bad_total_length"},
		pkts: one(echo6(hostileID, 1, func(b []byte) { binary.BigEndian.PutUint16(b[4:6], uint16(len(b))) }))},
	{name: "truncated_header", counters: []string{"truncated"}, pkts: one(echo6(hostileID, 1, nil)[:30])},
	{name: "extension_header_past_end", counters: []string{"truncated"},
		pkts: one(pt.Packet6{Src: kernel6, Dst: vhost6, NextHeader: pt.NHHopByHop, Payload: []byte{pt.NHICMPv6, 4, 1, 4, 0, 0, 0, 0}}.Bytes())},
	{name: "truncated_fragment_header", counters: []string{"truncated"},
		pkts: one(pt.Packet6{Src: kernel6, Dst: vhost6, NextHeader: pt.NHFragment, Payload: []byte{pt.NHICMPv6, 0, 0, 0}}.Bytes())},
	{name: "option_past_its_header", counters: []string{"bad_ip_options"},
		pkts: one(withExt(pt.NHDestOpts, pt.ExtHeader(pt.NHICMPv6, []byte{1, 5, 0, 0, 0, 0})))},
	{name: "source_multicast", counters: []string{"bad_source"},
		pkts: one(raw6(pt.Echo6{Src: netip.MustParseAddr("ff02::1"), Dst: vhost6, ID: hostileID}))},
	{name: "source_unspecified", counters: []string{"bad_source"},
		pkts: one(raw6(pt.Echo6{Src: netip.MustParseAddr("::"), Dst: vhost6, ID: hostileID}))},
	{name: "not_owned_fd00::9", counters: []string{"not_for_us"},
		pkts: one(raw6(pt.Echo6{Src: kernel6, Dst: netip.MustParseAddr(unowned6), ID: hostileID}))},
	{name: "echo_to_all_nodes", counters: []string{"not_for_us"},
		pkts:   one(raw6(pt.Echo6{Src: kernel6, Dst: netip.MustParseAddr("ff02::1"), ID: hostileID})),
		dstMAC: mustMAC("33:33:00:00:00:01")},
	// RFC 4443 §2.4(e.1): an ICMPv6 error is never answered.
	{name: "destination_unreachable", counters: []string{"ignored_icmp_error"},
		pkts: one(raw6(pt.Echo6{Src: kernel6, Dst: vhost6, Type: 1, Code: 4}))},
	// Fragments that overlap: the whole datagram is dropped (RFC 5722).
	{name: "overlapping_fragments", counters: []string{"fragment_queued", "fragment_overlap"}, pkts: func(t *testing.T) [][]byte {
		f := fragments6(t, 0x6001)
		return [][]byte{f[0], f[0]}
	}},
	// Fragments that never complete: queued, no reply.
	{name: "incomplete_fragments", counters: []string{"fragment_queued", "fragment_queued"}, pkts: func(t *testing.T) [][]byte {
		f := fragments6(t, 0x6002)
		return f[:2]
	}},
	// Neighbour discovery, TAP only: RFC 4861 §7.1.1's checks.
	{name: "ns_hop_limit_254", counters: []string{"bad_nd"}, tapOnly: true, dstMAC: pt.MulticastMAC(pt.SolicitedNode(vhost6)),
		pkts: one(ns6(254, vhost6, nil))},
	{name: "ns_zero_length_option", counters: []string{"bad_nd"}, tapOnly: true, dstMAC: pt.MulticastMAC(pt.SolicitedNode(vhost6)),
		pkts: one(ns6(255, vhost6, nil, []byte{14, 0, 0, 0, 0, 0, 0, 0}))},
	// Sent to vhost's own address (a frame to a group vhost has not
	// joined would not be for it at all).
	{name: "ns_multicast_target", counters: []string{"bad_nd"}, tapOnly: true,
		pkts: one(pt.Packet6{Src: kernel6, Dst: vhost6, HopLimit: 255, NextHeader: pt.NHICMPv6,
			Payload: pt.NS(kernel6, vhost6, netip.MustParseAddr("ff02::1"), nil)}.Bytes())},
}

// noisy are the counters the kernel's own IPv6 traffic on the device
// (router solicitations, MLD reports, its DAD probes for its link-local
// address) moves while the test runs: checked as lower bounds only.
var noisy = []string{"rx_packets", "not_for_us", "ignored_nd", "ignored_icmp", "unsupported", "bad_source"}

// TestHostile6 is TestHostile for IPv6: malformed IPv6, bad neighbour
// discovery, overlapping and incomplete fragments, hostile ICMPv6. Each
// gets no reply (a valid echo request sent right after it gets the first
// reply) and is counted under its reason.
func TestHostile6(t *testing.T) {
	requireE2E(t, "sysctl")
	for _, mode := range []string{"tun", "tap"} {
		t.Run(mode, func(t *testing.T) {
			tap := mode == "tap"
			ns := newNS6(t)
			v := startVhost(t, ns, append([]string{"--mode", mode}, dualStackArgs...)...)
			s := openPacketSocketProto(t, ns, v.dev, tap, unix.ETH_P_IPV6)
			vmac := mustMAC(mac6(vhostAddr6))
			frame := func(dst net.HardwareAddr, ip []byte) []byte {
				if !tap {
					return ip
				}
				if dst == nil {
					dst = vmac
				}
				return ethernet(dst, s.hwaddr, layers.EthernetTypeIPv6, ip)
			}

			want := counters{}
			var seq uint16
			for _, tc := range hostileCases6 {
				if tc.tapOnly && !tap {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					s.drain()
					for _, p := range tc.pkts(t) {
						s.send(t, frame(tc.dstMAC, p))
						want["rx_packets"]++
					}
					for _, c := range tc.counters {
						want[c]++
					}
					seq++
					s.send(t, frame(nil, echo6(controlID, seq, nil)))
					want["rx_packets"]++
					want["replied"]++
					want["tx_packets"]++

					got := recvEcho6(t, s, tap, 5*time.Second)
					if got == nil {
						t.Fatalf("no reply to the valid echo request (id=%#x seq=%d) sent after %s", controlID, seq, tc.name)
					}
					if got.Identifier != controlID || got.SeqNumber != seq {
						t.Fatalf("vhost answered %s (want it dropped and counted as %v): id %#x seq %d", tc.name, tc.counters, got.Identifier, got.SeqNumber)
					}
					if extra := recvEcho6(t, s, tap, 200*time.Millisecond); extra != nil {
						t.Errorf("unexpected ICMPv6 from vhost after the control reply: id %#x seq %d", extra.Identifier, extra.SeqNumber)
					}
				})
			}

			c := v.stop(t)
			checkCounters(t, c, want, append(append([]string{}, noisy...), "tx_packets", "nd_announcements", "arp_announcements")...)
			for _, n := range noisy {
				if c[n] < want[n] {
					t.Errorf("counter %s = %d, want at least %d", n, c[n], want[n])
				}
			}
		})
	}
}

// recvEcho6 returns the next ICMPv6 echo reply or error vhost sends, or
// nil within timeout; its neighbour advertisements and ARP are skipped.
func recvEcho6(t *testing.T, s *packetSocket, tap bool, timeout time.Duration) *layers.ICMPv6Echo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := s.recv(t, time.Until(deadline))
		if b == nil {
			return nil
		}
		first := layers.LayerTypeIPv6
		if tap {
			first = layers.LayerTypeEthernet
		}
		p := gopacket.NewPacket(b, first, gopacket.Default)
		icmp, ok := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if !ok {
			continue
		}
		switch icmp.TypeCode.Type() {
		case layers.ICMPv6TypeNeighborAdvertisement, layers.ICMPv6TypeNeighborSolicitation:
			continue
		case layers.ICMPv6TypeEchoReply:
			if e, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
				return e
			}
		}
		// Anything else from vhost (an error) is a reply to a packet that
		// should have had none.
		t.Fatalf("vhost sent %v: %x", icmp.TypeCode, b)
	}
}
