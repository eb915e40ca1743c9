package packettest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// IPv6 Next Header values the builders use.
const (
	NHHopByHop = 0
	NHTCP      = 6
	NHUDP      = 17
	NHRouting  = 43
	NHFragment = 44
	NHICMPv6   = 58
	NHNone     = 59
	NHDestOpts = 60
)

// Checksum6 is the upper-layer checksum of b with the IPv6 pseudo-header
// (RFC 8200 §8.1), computed independently of the stack: over a message
// whose checksum field is filled in, it is 0.
func Checksum6(src, dst netip.Addr, nh uint8, b []byte) uint16 {
	s, d := src.As16(), dst.As16()
	ph := make([]byte, 0, 40+len(b))
	ph = append(ph, s[:]...)
	ph = append(ph, d[:]...)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(b)))
	ph = append(ph, 0, 0, 0, nh)
	return Checksum(append(ph, b...))
}

// Packet6 describes a raw IPv6 packet: the fixed header and the bytes
// after it, extension headers included.
type Packet6 struct {
	Src, Dst   netip.Addr
	HopLimit   uint8 // default 64
	TC         uint8
	NextHeader uint8
	Payload    []byte
}

// Bytes returns the packet, its payload length set.
func (p Packet6) Bytes() []byte {
	hl := p.HopLimit
	if hl == 0 {
		hl = 64
	}
	b := make([]byte, 40, 40+len(p.Payload))
	b[0], b[1] = 0x60|p.TC>>4, p.TC<<4
	binary.BigEndian.PutUint16(b[4:6], uint16(len(p.Payload)))
	b[6], b[7] = p.NextHeader, hl
	s, d := p.Src.As16(), p.Dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	return append(b, p.Payload...)
}

// ICMPv6Msg returns an ICMPv6 message from src to dst with its checksum.
// body follows the type, code and checksum.
func ICMPv6Msg(src, dst netip.Addr, typ, code uint8, body []byte) []byte {
	m := append([]byte{typ, code, 0, 0}, body...)
	c := Checksum6(src, dst, NHICMPv6, m)
	binary.BigEndian.PutUint16(m[2:4], c)
	return m
}

// Echo6 describes an ICMPv6 message with an identifier and sequence
// number (echo request by default) in an IPv6 packet.
type Echo6 struct {
	Src, Dst netip.Addr
	ID, Seq  uint16
	Payload  []byte
	TC       uint8
	HopLimit uint8 // default 64
	Type     uint8 // default 128, echo request
	Code     uint8
}

// Message returns the ICMPv6 message of e.
func (e Echo6) Message() []byte {
	typ := e.Type
	if typ == 0 {
		typ = 128
	}
	body := binary.BigEndian.AppendUint16(nil, e.ID)
	body = binary.BigEndian.AppendUint16(body, e.Seq)
	return ICMPv6Msg(e.Src, e.Dst, typ, e.Code, append(body, e.Payload...))
}

// IPv6 returns e as a raw IPv6 packet.
func (e Echo6) IPv6(t testing.TB) []byte {
	t.Helper()
	return Packet6{Src: e.Src, Dst: e.Dst, HopLimit: e.HopLimit, TC: e.TC, NextHeader: NHICMPv6, Payload: e.Message()}.Bytes()
}

// ExtHeader returns an extension header that names nh as the next header,
// with content after its first two bytes, zero-padded to a multiple of 8.
func ExtHeader(nh uint8, content []byte) []byte {
	n := (2 + len(content) + 7) / 8 * 8
	h := make([]byte, n)
	h[0], h[1] = nh, uint8(n/8-1)
	copy(h[2:], content)
	return h
}

// OptionsHeader returns a Hop-by-Hop or Destination Options header naming
// nh with the given TLV options, padded with a PadN option (RFC 8200 §4.2).
func OptionsHeader(nh uint8, opts ...[]byte) []byte {
	var c []byte
	for _, o := range opts {
		c = append(c, o...)
	}
	if pad := (8 - (2+len(c))%8) % 8; pad == 1 {
		c = append(c, 0)
	} else if pad > 1 {
		c = append(c, 1, uint8(pad-2))
		c = append(c, make([]byte, pad-2)...)
	}
	return ExtHeader(nh, c)
}

// FragmentHeader returns a Fragment header.
func FragmentHeader(nh uint8, offset int, more bool, id uint32) []byte {
	h := make([]byte, 8)
	h[0] = nh
	m := uint16(offset) &^ 7
	if more {
		m |= 1
	}
	binary.BigEndian.PutUint16(h[2:4], m)
	binary.BigEndian.PutUint32(h[4:8], id)
	return h
}

// Fragment6 splits a raw IPv6 packet without extension headers into
// fragments whose fragmentable parts are at most size bytes (a multiple
// of 8 but for the last), all with identification id.
func Fragment6(t testing.TB, pkt []byte, size int, id uint32) [][]byte {
	t.Helper()
	if len(pkt) < 40 || pkt[0]>>4 != 6 {
		t.Fatalf("fragment6: not an IPv6 packet")
	}
	nh, payload := pkt[6], pkt[40:]
	var frags [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		f := append(FragmentHeader(nh, off, end < len(payload), id), payload[off:end]...)
		b := append(append([]byte(nil), pkt[:40]...), f...)
		b[6] = NHFragment
		binary.BigEndian.PutUint16(b[4:6], uint16(len(f)))
		frags = append(frags, b)
	}
	return frags
}

// Defragment6 reassembles IPv6 fragments (in any order) that have nothing
// but a Fragment header after the fixed header, checking that they agree,
// and returns the whole packet.
func Defragment6(t testing.TB, frags [][]byte) []byte {
	t.Helper()
	var (
		whole []byte
		id    uint32
		total = -1
		got   int
		nh    uint8
		head  []byte
	)
	for i, f := range frags {
		IPv6(t, f)
		if f[6] != NHFragment || len(f) < 48 {
			t.Fatalf("defragment6: packet %d has next header %d, want a Fragment header", i, f[6])
		}
		fh := f[40:48]
		off := int(binary.BigEndian.Uint16(fh[2:4]) &^ 7)
		more := fh[3]&1 != 0
		fid := binary.BigEndian.Uint32(fh[4:8])
		data := f[48:]
		if i == 0 {
			id = fid
		} else if fid != id {
			t.Fatalf("defragment6: fragment %d has id %#x, want %#x", i, fid, id)
		}
		if more && len(data)%8 != 0 {
			t.Fatalf("defragment6: fragment %d with M set carries %d bytes, not a multiple of 8", i, len(data))
		}
		if off == 0 {
			nh, head = fh[0], f[:40]
		}
		if !more {
			total = off + len(data)
		}
		if len(whole) < off+len(data) {
			whole = append(whole, make([]byte, off+len(data)-len(whole))...)
		}
		copy(whole[off:], data)
		got += len(data)
	}
	if head == nil || total < 0 || got != total || len(whole) != total {
		t.Fatalf("defragment6: fragments do not make a whole packet (first %v, total %d, got %d)", head != nil, total, got)
	}
	return Packet6{Src: addr16(head[8:24]), Dst: addr16(head[24:40]), HopLimit: head[7],
		TC: head[0]<<4 | head[1]>>4, NextHeader: nh, Payload: whole}.Bytes()
}

func addr16(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b)) }

// NS returns a neighbour solicitation message for target from src to dst,
// with a source link-layer address option when slla is not nil, and
// extra options after it.
func NS(src, dst, target netip.Addr, slla net.HardwareAddr, extra ...[]byte) []byte {
	tb := target.As16()
	body := append(make([]byte, 4), tb[:]...)
	if slla != nil {
		body = append(append(body, 1, 1), slla...)
	}
	for _, o := range extra {
		body = append(body, o...)
	}
	return ICMPv6Msg(src, dst, 135, 0, body)
}

// SolicitedNode is the solicited-node multicast address of a.
func SolicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// MulticastMAC is the Ethernet address of the IPv6 multicast address a
// (RFC 2464 §7).
func MulticastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// UDP6 returns a UDP datagram from src to dst with its checksum.
func UDP6(src, dst netip.Addr, sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(8+len(data)))
	u = append(u, data...)
	binary.BigEndian.PutUint16(u[6:8], Checksum6(src, dst, NHUDP, u))
	return u
}

// TCP6 returns a 20-byte-header TCP segment from src to dst with its
// checksum.
func TCP6(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8, data []byte) []byte {
	s := make([]byte, 20, 20+len(data))
	binary.BigEndian.PutUint16(s[0:2], sport)
	binary.BigEndian.PutUint16(s[2:4], dport)
	binary.BigEndian.PutUint32(s[4:8], seq)
	binary.BigEndian.PutUint32(s[8:12], ack)
	s[12], s[13] = 5<<4, flags
	binary.BigEndian.PutUint16(s[14:16], 65535)
	s = append(s, data...)
	binary.BigEndian.PutUint16(s[16:18], Checksum6(src, dst, NHTCP, s))
	return s
}

// IPv6Checker checks one property of an IPv6 packet.
type IPv6Checker func(t testing.TB, ip *layers.IPv6)

// IPv6 decodes b as IPv6, checks the version and the payload length, and
// runs the checkers.
func IPv6(t testing.TB, b []byte, checkers ...IPv6Checker) {
	t.Helper()
	var ip layers.IPv6
	if len(b) < 40 {
		t.Fatalf("IPv6: %d bytes, shorter than the header", len(b))
	}
	if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("IPv6: decode: %v", err)
	}
	if ip.Version != 6 {
		t.Errorf("IPv6: version = %d, want 6", ip.Version)
	}
	if int(ip.Length)+40 != len(b) {
		t.Errorf("IPv6: payload length = %d, packet is %d bytes", ip.Length, len(b))
	}
	for _, c := range checkers {
		c(t, &ip)
	}
}

// Src6 checks the source address.
func Src6(a netip.Addr) IPv6Checker {
	return func(t testing.TB, ip *layers.IPv6) {
		t.Helper()
		if got, _ := netip.AddrFromSlice(ip.SrcIP); got != a {
			t.Errorf("IPv6: src = %v, want %v", got, a)
		}
	}
}

// Dst6 checks the destination address.
func Dst6(a netip.Addr) IPv6Checker {
	return func(t testing.TB, ip *layers.IPv6) {
		t.Helper()
		if got, _ := netip.AddrFromSlice(ip.DstIP); got != a {
			t.Errorf("IPv6: dst = %v, want %v", got, a)
		}
	}
}

// HopLimit checks the hop limit.
func HopLimit(want uint8) IPv6Checker {
	return func(t testing.TB, ip *layers.IPv6) {
		t.Helper()
		if ip.HopLimit != want {
			t.Errorf("IPv6: hop limit = %d, want %d", ip.HopLimit, want)
		}
	}
}

// TrafficClass checks the traffic class.
func TrafficClass(want uint8) IPv6Checker {
	return func(t testing.TB, ip *layers.IPv6) {
		t.Helper()
		if ip.TrafficClass != want {
			t.Errorf("IPv6: traffic class = %#x, want %#x", ip.TrafficClass, want)
		}
	}
}

// ICMPv6Checker checks one property of an ICMPv6 message.
type ICMPv6Checker func(t testing.TB, ip *layers.IPv6, icmp *layers.ICMPv6)

// ICMPv6 checks that the packet carries a whole ICMPv6 message right after
// the fixed header, with a checksum that verifies with the pseudo-header,
// then runs the checkers.
func ICMPv6(checkers ...ICMPv6Checker) IPv6Checker {
	return func(t testing.TB, ip *layers.IPv6) {
		t.Helper()
		if ip.NextHeader != layers.IPProtocolICMPv6 {
			t.Fatalf("IPv6: next header = %v, want ICMPv6", ip.NextHeader)
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		dst, _ := netip.AddrFromSlice(ip.DstIP)
		if c := Checksum6(src, dst, NHICMPv6, ip.Payload); c != 0 {
			t.Errorf("ICMPv6: checksum does not verify (residue %#04x)", c)
		}
		var icmp layers.ICMPv6
		if err := icmp.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("ICMPv6: decode: %v", err)
		}
		for _, c := range checkers {
			c(t, ip, &icmp)
		}
	}
}

// EchoReply6 checks for an echo reply with the given identifier, sequence
// number and data.
func EchoReply6(id, seq uint16, payload []byte) ICMPv6Checker {
	return func(t testing.TB, ip *layers.IPv6, icmp *layers.ICMPv6) {
		t.Helper()
		if got, want := icmp.TypeCode, layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0); got != want {
			t.Errorf("ICMPv6: type/code = %v, want %v", got, want)
		}
		var e layers.ICMPv6Echo
		if err := e.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("ICMPv6 echo: decode: %v", err)
		}
		if e.Identifier != id || e.SeqNumber != seq {
			t.Errorf("ICMPv6: id/seq = %d/%d, want %d/%d", e.Identifier, e.SeqNumber, id, seq)
		}
		if !bytes.Equal(e.Payload, payload) {
			t.Errorf("ICMPv6: echo data (%d bytes) differs from the request's (%d bytes)", len(e.Payload), len(payload))
		}
	}
}

// NA flags.
const (
	NARouter    = 0x80
	NASolicited = 0x40
	NAOverride  = 0x20
)

// NeighborAdvert checks for a neighbour advertisement for target with
// exactly the given flags and one option, the target link-layer address
// tlla, and the hop limit 255 RFC 4861 §7.1.2 requires.
func NeighborAdvert(target netip.Addr, flags uint8, tlla net.HardwareAddr) ICMPv6Checker {
	return func(t testing.TB, ip *layers.IPv6, icmp *layers.ICMPv6) {
		t.Helper()
		if got, want := icmp.TypeCode, layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0); got != want {
			t.Fatalf("ICMPv6: type/code = %v, want %v", got, want)
		}
		if ip.HopLimit != 255 {
			t.Errorf("NA: hop limit = %d, want 255", ip.HopLimit)
		}
		var na layers.ICMPv6NeighborAdvertisement
		if err := na.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("NA: decode: %v", err)
		}
		if got, _ := netip.AddrFromSlice(na.TargetAddress); got != target {
			t.Errorf("NA: target = %v, want %v", got, target)
		}
		if na.Flags != flags {
			t.Errorf("NA: flags = %#x, want %#x", na.Flags, flags)
		}
		if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, tlla) {
			t.Errorf("NA: options %v, want one target link-layer address %v", na.Options, tlla)
		}
	}
}

// ICMPv6Error checks for an error message of the given type and code, with
// rest in its second word (MTU, pointer), quoting the start of orig, whose
// hop limit the quote shows as quoteHL, and no more than fits in 1280 bytes.
func ICMPv6Error(typ, code uint8, rest uint32, orig []byte, quoteHL uint8) ICMPv6Checker {
	return func(t testing.TB, ip *layers.IPv6, icmp *layers.ICMPv6) {
		t.Helper()
		if got, want := icmp.TypeCode, layers.CreateICMPv6TypeCode(typ, code); got != want {
			t.Errorf("ICMPv6: type/code = %v, want %v", got, want)
		}
		if len(icmp.Payload) < 4 {
			t.Fatalf("ICMPv6 error: %d bytes after the checksum", len(icmp.Payload))
		}
		if got := binary.BigEndian.Uint32(icmp.Payload[:4]); got != rest {
			t.Errorf("ICMPv6 error: second word = %d, want %d", got, rest)
		}
		if 40+int(ip.Length) > 1280 {
			t.Errorf("ICMPv6 error: %d bytes, over the 1280 of RFC 4443 §2.4(c)", 40+int(ip.Length))
		}
		q := icmp.Payload[4:]
		want := append([]byte(nil), orig...)
		if len(want) > 7 {
			want[7] = quoteHL
		}
		if n := min(len(want), 1280-48); len(q) != n || !bytes.Equal(q, want[:n]) {
			t.Errorf("ICMPv6 error: quotes %d bytes\n% x\nwant %d bytes\n% x", len(q), q[:min(len(q), 64)], n, want[:min(n, 64)])
		}
	}
}

// EthIPv6 checks an IPv6 payload.
func EthIPv6(checkers ...IPv6Checker) EthernetChecker {
	return func(t testing.TB, eth *layers.Ethernet) {
		t.Helper()
		if eth.EthernetType != layers.EthernetTypeIPv6 {
			t.Fatalf("Ethernet: type = %v, want IPv6", eth.EthernetType)
		}
		IPv6(t, eth.Payload, checkers...)
	}
}
