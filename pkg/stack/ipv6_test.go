package stack_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/rs/zerolog"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

var (
	kernelAddr6 = netip.MustParseAddr("fd00::1")
	hostAddr6   = netip.MustParseAddr("fd00::2")
	otherAddr6  = netip.MustParseAddr("fd00::9")
	// hostMAC6 is fd00::2's MAC on TAP: 06, the XOR of fd00::'s first 12
	// bytes, and its last four.
	hostMAC6 = mustMAC("06:fd:00:00:00:02")
)

// with6 adds fd00::2 to the owned addresses and fd00::1/64 to the kernel
// side's.
func with6(c *stack.Config) {
	c.Addrs = append(c.Addrs, netip.PrefixFrom(hostAddr6, 128))
	c.HostSide = append(c.HostSide, netip.MustParsePrefix("fd00::1/64"))
}

// newStack6 is newStack owning fd00::2 too.
func newStack6(t testing.TB, ethernet bool, mods ...func(*stack.Config)) (*stack.Stack, *stack.Out) {
	t.Helper()
	return newStack(t, ethernet, append([]func(*stack.Config){with6}, mods...)...)
}

// frame6 puts an IPv6 packet in an Ethernet frame from the kernel to dst.
func frame6(dst []byte, pkt []byte) []byte {
	return rawFrame(dst, kernelMAC, layers.EthernetTypeIPv6, pkt)
}

// echo6 is an echo request from the kernel side to fd00::2 with 8 bytes of
// data, modified by mod.
func echo6(t testing.TB, mod func(*pt.Echo6)) []byte {
	e := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 1, Seq: 1, Payload: []byte("payload!")}
	if mod != nil {
		mod(&e)
	}
	return e.IPv6(t)
}

// packet6 is an IPv6 packet from the kernel side to fd00::2 with the
// given next header and bytes after the fixed header.
func packet6(nh uint8, payload ...[]byte) []byte {
	return pt.Packet6{Src: kernelAddr6, Dst: hostAddr6, NextHeader: nh, Payload: bytes.Join(payload, nil)}.Bytes()
}

// echoMsg6 is the ICMPv6 echo request message of echo6(nil).
func echoMsg6() []byte {
	return pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 1, Seq: 1, Payload: []byte("payload!")}.Message()
}

func TestEcho6(t *testing.T) {
	tests := []struct {
		name string
		echo pt.Echo6
	}{
		{"minimal", pt.Echo6{ID: 1, Seq: 1}},
		{"56 bytes", pt.Echo6{ID: 7, Seq: 3, Payload: bytes.Repeat([]byte{0xab}, 56)}},
		{"odd length", pt.Echo6{ID: 0xffff, Seq: 0xffff, Payload: []byte{1, 2, 3}}},
		{"traffic class copied", pt.Echo6{ID: 2, Seq: 9, TC: 0xb8, Payload: []byte("tc")}},
		{"hop limit 1", pt.Echo6{ID: 5, Seq: 1, HopLimit: 1}},
		{"nonzero code answered with code 0", pt.Echo6{ID: 5, Seq: 2, Code: 3}},
		{"MTU-sized", pt.Echo6{ID: 6, Seq: 1, Payload: make([]byte, 1452)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.echo.Src, tc.echo.Dst = kernelAddr6, hostAddr6
			pkt := tc.echo.IPv6(t)
			want := []pt.IPv6Checker{pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.HopLimit(64), pt.TrafficClass(tc.echo.TC),
				pt.ICMPv6(pt.EchoReply6(tc.echo.ID, tc.echo.Seq, tc.echo.Payload))}

			s, out := newStack6(t, false)
			reply := handle(t, s, out, tc.name, pkt, stack.Replied, 1)[0]
			pt.IPv6(t, reply, want...)

			s, out = newStack6(t, true)
			reply = handle(t, s, out, tc.name+" on TAP", frame6(hostMAC6, pkt), stack.Replied, 1)[0]
			pt.EthernetFrame(t, reply, pt.EthAddrs(kernelMAC, hostMAC6), pt.EthIPv6(want...))
		})
	}
}

// TestEcho6Headers: extension headers the host processes and goes past
// leave a plain reply; link padding past the payload length is ignored.
func TestEcho6Headers(t *testing.T) {
	msg := echoMsg6()
	pad := []byte{1, 4, 0, 0, 0, 0}
	tests := []struct {
		name string
		pkt  []byte
	}{
		{"hop-by-hop PadN", packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHICMPv6, pad), msg)},
		{"hop-by-hop router alert", packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHICMPv6, []byte{5, 2, 0, 0}), msg)},
		{"hop-by-hop Pad1s", packet6(pt.NHHopByHop, pt.ExtHeader(pt.NHICMPv6, make([]byte, 6)), msg)},
		{"destination option to skip", packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHICMPv6, []byte{0x1e, 2, 9, 9}), msg)},
		{"routing header, no segments left", packet6(pt.NHRouting, pt.ExtHeader(pt.NHICMPv6, []byte{4, 0, 0, 0, 0, 0}), msg)},
		{"all of them", packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHDestOpts, pad), pt.OptionsHeader(pt.NHRouting, pad),
			pt.ExtHeader(pt.NHDestOpts, []byte{0, 0, 0, 0, 0, 0}), pt.OptionsHeader(pt.NHICMPv6, pad), msg)},
		// RFC 6946: an atomic fragment is a whole packet.
		{"atomic fragment", packet6(pt.NHFragment, pt.FragmentHeader(pt.NHICMPv6, 0, false, 77), msg)},
		{"atomic fragment after hop-by-hop", packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHFragment, pad), pt.FragmentHeader(pt.NHICMPv6, 0, false, 77), msg)},
		{"link padding", append(echo6(t, nil), 0, 0, 0, 0, 0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ethernet := range []bool{false, true} {
				s, out := newStack6(t, ethernet)
				pkt := tc.pkt
				if ethernet {
					pkt = frame6(hostMAC6, pkt)
				}
				r := handle(t, s, out, tc.name, pkt, stack.Replied, 1)[0]
				if ethernet {
					r = r[14:]
				}
				pt.IPv6(t, r, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.ICMPv6(pt.EchoReply6(1, 1, []byte("payload!"))))
			}
		})
	}
}

// fixPayloadLength6 sets the payload length of a raw IPv6 packet to what
// follows the fixed header.
func fixPayloadLength6(b []byte) { binary.BigEndian.PutUint16(b[4:6], uint16(len(b)-40)) }

func TestDrops6(t *testing.T) {
	good := echo6(t, nil)
	msg := echoMsg6()
	typ := func(ty, code uint8) func(*pt.Echo6) { return func(e *pt.Echo6) { e.Type, e.Code = ty, code } }
	src := func(a string) func(*pt.Echo6) { return func(e *pt.Echo6) { e.Src = netip.MustParseAddr(a) } }
	dst := func(a string) func(*pt.Echo6) { return func(e *pt.Echo6) { e.Dst = netip.MustParseAddr(a) } }
	udp := pt.UDP6(kernelAddr6, hostAddr6, 40000, 33434, []byte("probe"))
	tcp := pt.TCP6(kernelAddr6, hostAddr6, 40000, 80, 1, 0, 0x02, nil)
	nd := func(ty uint8, d netip.Addr) []byte {
		return pt.Packet6{Src: kernelAddr6, Dst: d, HopLimit: 255, NextHeader: pt.NHICMPv6,
			Payload: pt.ICMPv6Msg(kernelAddr6, d, ty, 0, make([]byte, 20))}.Bytes()
	}
	tests := []struct {
		name string
		pkt  []byte
		want stack.Verdict
	}{
		{"39-byte header", good[:39], stack.Truncated},
		{"payload length beyond what was read", corrupt(good, func(b []byte) { b[5]++ }), stack.BadTotalLength},
		{"payload length cuts the ICMPv6 header", corrupt(good, func(b []byte) { b[4], b[5] = 0, 7 }), stack.Truncated},
		{"source multicast", echo6(t, src("ff02::1")), stack.BadSource},
		{"source unspecified", echo6(t, src("::")), stack.BadSource},
		{"source loopback", echo6(t, src("::1")), stack.BadSource},
		{"source IPv4-mapped", echo6(t, src("::ffff:10.0.0.1")), stack.BadSource},
		{"not ours", echo6(t, dst("fd00::9")), stack.NotForUs},
		{"the kernel's address", echo6(t, dst("fd00::1")), stack.NotForUs},
		{"all nodes", echo6(t, dst("ff02::1")), stack.NotForUs},
		{"solicited-node group", echo6(t, dst("ff02::1:ff00:2")), stack.NotForUs},
		{"bad ICMPv6 checksum", corrupt(good, func(b []byte) { b[42] ^= 1 }), stack.BadICMPChecksum},
		{"checksum without the pseudo-header", corrupt(good, func(b []byte) {
			b[42], b[43] = 0, 0
			c := pt.Checksum(b[40:])
			b[42], b[43] = byte(c>>8), byte(c)
		}), stack.BadICMPChecksum},
		{"echo reply", echo6(t, typ(129, 0)), stack.IgnoredICMP},
		{"MLD query to a unicast address", echo6(t, typ(130, 0)), stack.IgnoredICMP},
		{"node information query", echo6(t, typ(139, 0)), stack.IgnoredICMP},
		{"destination unreachable", echo6(t, typ(1, 4)), stack.IgnoredICMPError},
		{"packet too big", echo6(t, typ(2, 0)), stack.IgnoredICMPError},
		{"time exceeded", echo6(t, typ(3, 0)), stack.IgnoredICMPError},
		{"parameter problem", echo6(t, typ(4, 1)), stack.IgnoredICMPError},
		{"extension header past the packet", packet6(pt.NHHopByHop, []byte{pt.NHICMPv6, 1, 1, 4, 0, 0, 0, 0}), stack.Truncated},
		{"extension header of 4 bytes", packet6(pt.NHDestOpts, []byte{pt.NHICMPv6, 0, 1, 0}), stack.Truncated},
		{"fragment header of 4 bytes", packet6(pt.NHFragment, []byte{pt.NHICMPv6, 0, 0, 0}), stack.Truncated},
		{"option past its header", packet6(pt.NHHopByHop, pt.ExtHeader(pt.NHICMPv6, []byte{1, 5, 0, 0, 0, 0}), msg), stack.BadIPOptions},
		{"option type byte last", packet6(pt.NHDestOpts, pt.ExtHeader(pt.NHICMPv6, []byte{0, 0, 0, 0, 0, 0x3e}), msg), stack.BadIPOptions},
		// RFC 8200 §4.2: an unrecognized option of type 01xxxxxx discards
		// the packet silently.
		{"option that discards", packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHICMPv6, []byte{0x7e, 0}), msg), stack.BadIPOptions},
		{"no next header", packet6(pt.NHNone, []byte("ignored")), stack.NoNextHeader},
		{"no next header after options", packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHNone)), stack.NoNextHeader},
		{"UDP, bad checksum", packet6(pt.NHUDP, corrupt(udp, func(b []byte) { b[7] ^= 1 })), stack.BadL4Checksum},
		// RFC 8200 §8.1: no checksum is no good over IPv6.
		{"UDP, zero checksum", packet6(pt.NHUDP, corrupt(udp, func(b []byte) { b[6], b[7] = 0, 0 })), stack.BadL4Checksum},
		{"UDP, length past the packet", packet6(pt.NHUDP, corrupt(udp, func(b []byte) { b[5]++ })), stack.BadL4Length},
		{"UDP, 7 bytes", packet6(pt.NHUDP, udp[:7]), stack.Truncated},
		{"TCP, bad checksum", packet6(pt.NHTCP, corrupt(tcp, func(b []byte) { b[17] ^= 1 })), stack.BadL4Checksum},
		{"TCP, data offset past the segment", packet6(pt.NHTCP, corrupt(tcp, func(b []byte) { b[12] = 6 << 4 })), stack.BadL4Length},
		{"TCP reset", packet6(pt.NHTCP, pt.TCP6(kernelAddr6, hostAddr6, 1, 2, 3, 4, 0x14, nil)), stack.IgnoredReset},
		{"router solicitation", nd(133, netip.MustParseAddr("ff02::2")), stack.IgnoredND},
		{"router advertisement", nd(134, netip.MustParseAddr("ff02::1")), stack.IgnoredND},
		{"neighbour advertisement", nd(136, hostAddr6), stack.IgnoredND},
		{"unsolicited neighbour advertisement", nd(136, netip.MustParseAddr("ff02::1")), stack.IgnoredND},
		{"redirect", nd(137, hostAddr6), stack.IgnoredND},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack6(t, false)
			handle(t, s, out, tc.name, tc.pkt, tc.want, 0)
			// The same packet in Ethernet gets the same verdict: unicast to
			// the host's MAC, multicast to the group's.
			mac := hostMAC6
			if len(tc.pkt) >= 40 && tc.pkt[24] == 0xff {
				mac = pt.MulticastMAC(netip.AddrFrom16([16]byte(tc.pkt[24:40])))
			}
			s, out = newStack6(t, true)
			handle(t, s, out, tc.name+" on TAP", frame6(mac, tc.pkt), tc.want, 0)
		})
	}
}

func TestEthernetDrops6(t *testing.T) {
	echo := echo6(t, nil)
	tests := []struct {
		name string
		pkt  []byte
		want stack.Verdict
	}{
		{"other unicast MAC", frame6(mustMAC("06:fd:00:00:00:09"), echo), stack.NotForUs},
		{"the IPv4 address's MAC", frame6(hostMAC, echo), stack.NotForUs},
		{"broadcast MAC, our address", frame6(mustMAC("ff:ff:ff:ff:ff:ff"), echo), stack.Replied},
		{"multicast packet in a frame to another group", frame6(mustMAC("33:33:00:00:00:02"),
			echo6(t, func(e *pt.Echo6) { e.Dst = netip.MustParseAddr("ff02::1") })), stack.NotForUs},
		{"multicast source MAC", rawFrame(hostMAC6, mustMAC("33:33:00:00:00:01"), layers.EthernetTypeIPv6, echo), stack.BadSource},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack6(t, true)
			n := 0
			if tc.want == stack.Replied {
				n = 1
			}
			handle(t, s, out, tc.name, tc.pkt, tc.want, n)
		})
	}
}

// TestPrefix6 answers every address of an owned /120 but the kernel's and
// the Subnet-Router anycast address, each from its own MAC on TAP.
func TestPrefix6(t *testing.T) {
	s, out := newStack(t, true, func(c *stack.Config) {
		c.Addrs = []netip.Prefix{netip.MustParsePrefix("fd00::/120")}
		c.HostSide = []netip.Prefix{netip.MustParsePrefix("fd00::1/64")}
	})
	tests := []struct {
		dst  string
		want stack.Verdict
	}{
		{"fd00::2", stack.Replied},
		{"fd00::ff", stack.Replied},
		{"fd00::1", stack.NotForUs},
		{"fd00::", stack.NotForUs},
		{"fd00::100", stack.NotForUs},
	}
	for _, tc := range tests {
		dst := netip.MustParseAddr(tc.dst)
		mac := stack.MACFor6(dst)
		n := 0
		if tc.want == stack.Replied {
			n = 1
		}
		pkt := echo6(t, func(e *pt.Echo6) { e.Dst = dst })
		for _, r := range handle(t, s, out, "echo to "+tc.dst, frame6(mac, pkt), tc.want, n) {
			pt.EthernetFrame(t, r, pt.EthAddrs(kernelMAC, mac), pt.EthIPv6(pt.Src6(dst)))
		}
	}
}

// perFragment6 is the data each fragment of an IPv6 reply carries at mtu.
func perFragment6(mtu int) int { return (mtu - 48) &^ 7 }

func TestFragmentedEcho6(t *testing.T) {
	tests := []struct {
		name      string
		size, mtu int
		fragSize  int // the request's fragmentable part per fragment
		reverse   bool
	}{
		{"1453 bytes at MTU 1500", 1453, 1500, 1448, false},
		{"8000 bytes at MTU 1500", 8000, 1500, 1448, false},
		{"8000 bytes out of order", 8000, 1500, 1448, true},
		{"65000 bytes at MTU 1500", 65000, 1500, 1448, false},
		// ping -6 -s 65527: the largest ICMPv6 message, 65535 bytes.
		{"65527 bytes at MTU 1500", 65527, 1500, 1448, false},
		{"65527 bytes at MTU 1280", 65527, 1280, 1232, false},
		{"65527 bytes at MTU 576", 65527, 576, 528, false},
		{"small fragments, big MTU", 3000, 9000, 64, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack6(t, false, func(c *stack.Config) { c.MTU = tc.mtu })
			payload := make([]byte, tc.size)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			pkt := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 42, Seq: 7, Payload: payload, TC: 0x10}.IPv6(t)
			frags := pt.Fragment6(t, pkt, tc.fragSize, 0xabcdef01)
			if tc.reverse {
				for i, j := 0, len(frags)-1; i < j; i, j = i+1, j-1 {
					frags[i], frags[j] = frags[j], frags[i]
				}
			}
			for i, f := range frags[:len(frags)-1] {
				handle(t, s, out, fmt.Sprintf("fragment %d", i), f, stack.FragmentQueued, 0)
			}
			want := 1
			if 48+tc.size > tc.mtu {
				per := perFragment6(tc.mtu)
				want = (8 + tc.size + per - 1) / per
			}
			replies := handle(t, s, out, "last fragment", frags[len(frags)-1], stack.Replied, want)
			if want > s.MaxOut() {
				t.Errorf("MaxOut() = %d, below the %d fragments of this reply", s.MaxOut(), want)
			}
			for _, r := range replies {
				if len(r) > tc.mtu {
					t.Fatalf("reply fragment of %d bytes exceeds MTU %d", len(r), tc.mtu)
				}
				pt.IPv6(t, r, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.HopLimit(64), pt.TrafficClass(0x10))
			}
			whole := replies[0]
			if len(replies) > 1 {
				whole = pt.Defragment6(t, replies)
			}
			pt.IPv6(t, whole, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.TrafficClass(0x10), pt.ICMPv6(pt.EchoReply6(42, 7, payload)))
		})
	}
}

// TestFragmentedEcho6OnTAP: the fragments of a reply go in frames from the
// address's MAC.
func TestFragmentedEcho6OnTAP(t *testing.T) {
	s, out := newStack6(t, true)
	payload := bytes.Repeat([]byte("0123456789"), 300)
	pkt := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 1, Seq: 2, Payload: payload}.IPv6(t)
	frags := pt.Fragment6(t, pkt, 1448, 5)
	handle(t, s, out, "first", frame6(hostMAC6, frags[0]), stack.FragmentQueued, 0)
	handle(t, s, out, "second", frame6(hostMAC6, frags[1]), stack.FragmentQueued, 0)
	replies := handle(t, s, out, "last", frame6(hostMAC6, frags[2]), stack.Replied, 3)
	var ips [][]byte
	for _, r := range replies {
		if len(r) > 1514 {
			t.Errorf("frame of %d bytes", len(r))
		}
		pt.EthernetFrame(t, r, pt.EthAddrs(kernelMAC, hostMAC6), pt.EthIPv6())
		ips = append(ips, r[14:])
	}
	pt.IPv6(t, pt.Defragment6(t, ips), pt.ICMPv6(pt.EchoReply6(1, 2, payload)))
}

// TestFragmentIDs6: each fragmented reply has its own identification.
func TestFragmentIDs6(t *testing.T) {
	s, out := newStack6(t, false)
	seen := map[uint32]bool{}
	for i := range 3 {
		pkt := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 1, Seq: uint16(i), Payload: make([]byte, 2000)}.IPv6(t)
		frags := pt.Fragment6(t, pkt, 1448, uint32(i))
		handle(t, s, out, "first", frags[0], stack.FragmentQueued, 0)
		for _, r := range handle(t, s, out, "last", frags[1], stack.Replied, 2) {
			seen[binary.BigEndian.Uint32(r[44:48])] = true
		}
	}
	if len(seen) != 3 {
		t.Errorf("3 fragmented replies used identifications %v, want 3 different", seen)
	}
}

func TestReassembly6(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	mods := func(c *stack.Config) {
		c.Now = clock.Now
		c.Reassembly = stack.ReassemblyConfig{MaxDatagrams: 4, PerSource: 2}
	}
	frags := func(id uint32, src netip.Addr) [][]byte {
		p := pt.Echo6{Src: src, Dst: hostAddr6, ID: 1, Seq: 1, Payload: make([]byte, 3000)}.IPv6(t)
		return pt.Fragment6(t, p, 1448, id)
	}
	frags4 := func(id uint16) [][]byte {
		p := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, IPID: id, Payload: make([]byte, 3000)}.IPv4(t)
		return pt.Fragment(t, p, 1480)
	}

	t.Run("overlap drops the datagram", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		f := frags(1, kernelAddr6)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		handle(t, s, out, "first again", f[0], stack.FragmentOverlap, 0)
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		handle(t, s, out, "last", f[2], stack.FragmentQueued, 0)
	})
	t.Run("partial overlap", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		f := frags(1, kernelAddr6)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		shifted := corrupt(f[1], func(b []byte) { binary.BigEndian.PutUint16(b[42:44], (1448-8)|1) })
		handle(t, s, out, "overlapping", shifted, stack.FragmentOverlap, 0)
	})
	t.Run("timeout is 60s", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		f := frags(1, kernelAddr6)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		clock.t = clock.t.Add(59 * time.Second)
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		handle(t, s, out, "last", f[2], stack.Replied, 3)
		f = frags(2, kernelAddr6)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		clock.t = clock.t.Add(61 * time.Second)
		handle(t, s, out, "last, too late", f[2], stack.FragmentQueued, 0)
		if got := counterValue(t, s, "fragment_timeout"); got != 1 {
			t.Errorf("fragment_timeout = %d, want 1", got)
		}
	})
	t.Run("IPv4 keeps its 30s", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		f := frags4(1)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		clock.t = clock.t.Add(31 * time.Second)
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		handle(t, s, out, "last", f[2], stack.FragmentQueued, 0)
	})
	t.Run("a configured timeout applies to both", func(t *testing.T) {
		s, out := newStack6(t, false, mods, func(c *stack.Config) { c.Reassembly.Timeout = 10 * time.Second })
		f := frags(1, kernelAddr6)
		handle(t, s, out, "first", f[0], stack.FragmentQueued, 0)
		clock.t = clock.t.Add(11 * time.Second)
		handle(t, s, out, "second", f[1], stack.FragmentQueued, 0)
		handle(t, s, out, "last", f[2], stack.FragmentQueued, 0)
	})
	t.Run("per-source limit", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		handle(t, s, out, "id 1", frags(1, kernelAddr6)[0], stack.FragmentQueued, 0)
		handle(t, s, out, "id 2", frags(2, kernelAddr6)[0], stack.FragmentQueued, 0)
		handle(t, s, out, "id 3 over the limit", frags(3, kernelAddr6)[0], stack.FragmentLimit, 0)
		handle(t, s, out, "another source", frags(1, netip.MustParseAddr("fd00::3"))[0], stack.FragmentQueued, 0)
		// IPv4's sources are counted apart.
		handle(t, s, out, "IPv4", frags4(1)[0], stack.FragmentQueued, 0)
	})
	t.Run("IPv4 and IPv6 share the memory bound", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		first := frags(1, kernelAddr6)
		handle(t, s, out, "IPv6 datagram", first[0], stack.FragmentQueued, 0)
		handle(t, s, out, "IPv6 datagram", frags(1, netip.MustParseAddr("fd00::3"))[0], stack.FragmentQueued, 0)
		handle(t, s, out, "IPv4 datagram", frags4(1)[0], stack.FragmentQueued, 0)
		handle(t, s, out, "IPv4 datagram", frags4(2)[0], stack.FragmentQueued, 0)
		handle(t, s, out, "IPv6 datagram, one too many", frags(1, netip.MustParseAddr("fd00::4"))[0], stack.FragmentQueued, 0)
		if got := counterValue(t, s, "fragment_evicted"); got != 1 {
			t.Errorf("fragment_evicted = %d, want 1", got)
		}
		handle(t, s, out, "evicted datagram's rest", first[1], stack.FragmentQueued, 0)
	})
	t.Run("same identification, other addresses", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		a, b := frags(7, kernelAddr6), frags(7, netip.MustParseAddr("fd00::3"))
		for i := range 2 {
			handle(t, s, out, "a", a[i], stack.FragmentQueued, 0)
			handle(t, s, out, "b", b[i], stack.FragmentQueued, 0)
		}
		handle(t, s, out, "a's last", a[2], stack.Replied, 3)
		handle(t, s, out, "b's last", b[2], stack.Replied, 3)
	})
	t.Run("next header of the first fragment counts", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		f := frags(1, kernelAddr6)
		// RFC 8200 §4.5: the others' next headers may differ.
		f[1] = corrupt(f[1], func(b []byte) { b[40] = pt.NHUDP })
		for i := range 2 {
			handle(t, s, out, "fragment", f[i], stack.FragmentQueued, 0)
		}
		handle(t, s, out, "last", f[2], stack.Replied, 3)
	})
	t.Run("fragment with extension headers", func(t *testing.T) {
		// The unfragmentable part (hop-by-hop) before the Fragment header,
		// destination options after it in the fragmentable part.
		s, out := newStack6(t, false, mods)
		msg := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 3, Seq: 4, Payload: make([]byte, 2000)}.Message()
		fragmentable := append(pt.OptionsHeader(pt.NHICMPv6, []byte{1, 0}), msg...)
		hbh := pt.OptionsHeader(pt.NHFragment, []byte{5, 2, 0, 0})
		p1 := packet6(pt.NHHopByHop, hbh, pt.FragmentHeader(pt.NHDestOpts, 0, true, 9), fragmentable[:1448])
		p2 := packet6(pt.NHHopByHop, hbh, pt.FragmentHeader(pt.NHDestOpts, 1448, false, 9), fragmentable[1448:])
		handle(t, s, out, "first", p1, stack.FragmentQueued, 0)
		replies := handle(t, s, out, "last", p2, stack.Replied, 2)
		pt.IPv6(t, pt.Defragment6(t, replies), pt.ICMPv6(pt.EchoReply6(3, 4, make([]byte, 2000))))
	})
	t.Run("bad fragments", func(t *testing.T) {
		s, out := newStack6(t, false, mods)
		f := frags(1, kernelAddr6)
		empty := packet6(pt.NHFragment, pt.FragmentHeader(pt.NHICMPv6, 8, true, 4))
		handle(t, s, out, "empty non-final fragment", empty, stack.BadFragment, 0)
		handle(t, s, out, "last first", f[2], stack.FragmentQueued, 0)
		beyond := corrupt(f[1], func(b []byte) { binary.BigEndian.PutUint16(b[42:44], 3000|1) })
		handle(t, s, out, "beyond the last", beyond, stack.BadFragment, 0)
	})
}

// TestFragmentProblems6: RFC 8200 §4.5 and RFC 7112 answer some bad
// fragments with a Parameter Problem.
func TestFragmentProblems6(t *testing.T) {
	msg := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 1, Seq: 1, Payload: make([]byte, 3000)}.Message()
	odd := packet6(pt.NHFragment, pt.FragmentHeader(pt.NHICMPv6, 0, true, 1), msg[:100])
	far := packet6(pt.NHFragment, pt.FragmentHeader(pt.NHICMPv6, 65528, false, 2), msg[:16])
	// The first fragment ends inside the destination options header.
	split := packet6(pt.NHFragment, pt.FragmentHeader(pt.NHDestOpts, 0, true, 3), []byte{pt.NHICMPv6, 1, 1, 4, 0, 0, 0, 0})
	// The first fragment ends before the UDP header.
	short := packet6(pt.NHFragment, pt.FragmentHeader(pt.NHUDP, 0, true, 4))
	tests := []struct {
		name      string
		pkt       []byte
		code      uint8
		ptr       uint32
		fragments int
	}{
		{"non-final fragment not a multiple of 8", odd, 0, 4, 0},
		{"past 65535 bytes", far, 0, 42, 0},
		{"first fragment without the whole header chain", split, 3, 0, 0},
		{"first fragment without the upper-layer header", short, 3, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack6(t, false)
			r := handle(t, s, out, tc.name, tc.pkt, stack.BadFragment, 1)[0]
			pt.IPv6(t, r, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.HopLimit(64),
				pt.ICMPv6(pt.ICMPv6Error(4, tc.code, tc.ptr, tc.pkt, 64)))
		})
	}
	// A first fragment that ends before the ICMPv6 type might be part of
	// an error: RFC 4443 §2.4(e.1) keeps the host silent (as Linux is).
	s, out := newStack6(t, false)
	handle(t, s, out, "no ICMPv6 type", packet6(pt.NHFragment, pt.FragmentHeader(pt.NHICMPv6, 0, true, 5)), stack.ErrorSuppressed, 0)
}

// counterValue returns the named counter of s.
func counterValue(t testing.TB, s *stack.Stack, name string) uint64 {
	t.Helper()
	for _, c := range s.Counters() {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("no counter %q", name)
	return 0
}

// TestParamProblem6: the Parameter Problems of RFC 8200 §4, each with its
// code and pointer, quoting the packet.
func TestParamProblem6(t *testing.T) {
	msg := echoMsg6()
	tests := []struct {
		name string
		pkt  []byte
		want stack.Verdict
		code uint8
		ptr  uint32
	}{
		{"unknown next header", packet6(253, []byte("experimental")), stack.ProtoUnreachable, 1, 6},
		{"unknown next header after options", packet6(pt.NHDestOpts, pt.OptionsHeader(253), []byte("x")), stack.ProtoUnreachable, 1, 40},
		{"ESP", packet6(50, make([]byte, 16)), stack.ProtoUnreachable, 1, 6},
		// RFC 8200 §4.1: hop-by-hop only right after the IPv6 header.
		{"hop-by-hop after destination options", packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHHopByHop), pt.OptionsHeader(pt.NHICMPv6), msg),
			stack.ProtoUnreachable, 1, 40},
		{"hop-by-hop after an atomic fragment", packet6(pt.NHFragment, pt.FragmentHeader(pt.NHHopByHop, 0, false, 1), pt.OptionsHeader(pt.NHICMPv6), msg),
			stack.ProtoUnreachable, 1, 40},
		// RFC 8200 §4.4: segments left, pointing at the routing type.
		{"routing header with segments left", packet6(pt.NHRouting, pt.ExtHeader(pt.NHICMPv6, append([]byte{0, 1, 0, 0, 0, 0}, make([]byte, 16)...)), msg),
			stack.ParamProblem, 0, 42},
		{"segment routing header", packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHRouting), pt.ExtHeader(pt.NHICMPv6, append([]byte{4, 2, 1, 0, 0, 0}, make([]byte, 32)...)), msg),
			stack.ParamProblem, 0, 50},
		// RFC 8200 §4.2: unrecognized options of types 10 and 11 are
		// reported with code 2 pointing at them.
		{"hop-by-hop option of type 10", packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHICMPv6, []byte{1, 0}, []byte{0x9e, 1, 0}), msg),
			stack.ParamProblem, 2, 44},
		{"destination option of type 11", packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHICMPv6, []byte{0xde, 0}), msg), stack.ParamProblem, 2, 42},
		{"jumbo payload option", packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHICMPv6, []byte{0xc2, 4, 0, 1, 0, 0}), msg), stack.ParamProblem, 2, 42},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack6(t, false)
			r := handle(t, s, out, tc.name, tc.pkt, tc.want, 1)[0]
			pt.IPv6(t, r, pt.Src6(hostAddr6), pt.Dst6(kernelAddr6), pt.HopLimit(64), pt.TrafficClass(0),
				pt.ICMPv6(pt.ICMPv6Error(4, tc.code, tc.ptr, tc.pkt, 64)))
			s, out = newStack6(t, true)
			r = handle(t, s, out, tc.name+" on TAP", frame6(hostMAC6, tc.pkt), tc.want, 1)[0]
			pt.EthernetFrame(t, r, pt.EthAddrs(kernelMAC, hostMAC6), pt.EthIPv6(pt.ICMPv6(pt.ICMPv6Error(4, tc.code, tc.ptr, tc.pkt, 64))))
		})
	}
}

// TestParamProblem6Multicast: RFC 4443 §2.4(e.3)-(e.5) allow a Parameter
// Problem about a packet in a multicast frame only for options of type 10.
func TestParamProblem6Multicast(t *testing.T) {
	msg := echoMsg6()
	bcast := mustMAC("ff:ff:ff:ff:ff:ff")
	type10 := packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHICMPv6, []byte{0x9e, 0}), msg)
	type11 := packet6(pt.NHDestOpts, pt.OptionsHeader(pt.NHICMPv6, []byte{0xde, 0}), msg)
	s, out := newStack6(t, true)
	handle(t, s, out, "type 10 in a broadcast frame", frame6(bcast, type10), stack.ParamProblem, 1)
	handle(t, s, out, "type 11 in a broadcast frame", frame6(bcast, type11), stack.ErrorSuppressed, 0)
	handle(t, s, out, "unknown next header in a broadcast frame", frame6(bcast, packet6(253)), stack.ErrorSuppressed, 0)
	// To a multicast address no host of ours is the one to answer.
	grp := netip.MustParseAddr("ff02::1")
	mc := pt.Packet6{Src: kernelAddr6, Dst: grp, NextHeader: pt.NHDestOpts, Payload: append(pt.OptionsHeader(pt.NHICMPv6, []byte{0x9e, 0}), msg...)}.Bytes()
	handle(t, s, out, "type 10 to all nodes", frame6(pt.MulticastMAC(grp), mc), stack.ErrorSuppressed, 0)
	// A group no host listens to: not for us, whatever is in it.
	grp = netip.MustParseAddr("ff02::16")
	mc = pt.Packet6{Src: kernelAddr6, Dst: grp, NextHeader: pt.NHDestOpts, Payload: append(pt.OptionsHeader(pt.NHICMPv6, []byte{0x9e, 0}), msg...)}.Bytes()
	handle(t, s, out, "type 10 to ff02::16", frame6(pt.MulticastMAC(grp), mc), stack.NotForUs, 0)
}

// TestParamProblem6Quote: an error quotes no more than fits in 1280 bytes.
func TestParamProblem6Quote(t *testing.T) {
	s, out := newStack6(t, false)
	pkt := packet6(253, make([]byte, 3000))
	r := handle(t, s, out, "big", pkt, stack.ProtoUnreachable, 1)[0]
	if len(r) != 1280 {
		t.Errorf("error of %d bytes, want 1280", len(r))
	}
	pt.IPv6(t, r, pt.ICMPv6(pt.ICMPv6Error(4, 1, 6, pkt, 64)))
	// At an MTU below 1280 the error fits the MTU.
	s, out = newStack6(t, false, func(c *stack.Config) { c.MTU = 576 })
	r = handle(t, s, out, "big at MTU 576", pkt, stack.ProtoUnreachable, 1)[0]
	if len(r) != 576 {
		t.Errorf("error of %d bytes at MTU 576, want 576", len(r))
	}
}

func TestMaxOut6(t *testing.T) {
	for _, mtu := range []int{68, 576, 1280, 1500, 9000, 65535} {
		s, _ := newStack6(t, false, func(c *stack.Config) { c.MTU = mtu })
		per := perFragment6(mtu)
		if want := (65535 + per - 1) / per; s.MaxOut() < want {
			t.Errorf("MTU %d: MaxOut() = %d, want at least %d (a 65535-byte IPv6 payload)", mtu, s.MaxOut(), want)
		}
	}
}

// TestLog6 checks the per-packet debug lines.
func TestLog6(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf).Level(zerolog.DebugLevel)
	s, out := newStack6(t, false, func(c *stack.Config) { c.Log = &log })
	handle(t, s, out, "echo", pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 7, Seq: 3, Payload: make([]byte, 56)}.IPv6(t), stack.Replied, 1)
	for _, want := range []string{"rx icmp6 echo fd00::1 > fd00::2 id=7 seq=3 len=64", "tx icmp6 echo-reply fd00::2 > fd00::1 id=7 seq=3 len=64"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
	// Not above debug.
	buf.Reset()
	log = log.Level(zerolog.InfoLevel)
	s, out = newStack6(t, false, func(c *stack.Config) { c.Log = &log })
	handle(t, s, out, "echo", echo6(t, nil), stack.Replied, 1)
	if buf.Len() != 0 {
		t.Errorf("logged at info level: %s", buf.String())
	}
}
