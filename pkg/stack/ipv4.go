package stack

import (
	"encoding/binary"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

const (
	ipv4FlagMF      = 0x2000
	ipv4OffsetMask  = 0x1fff
	icmpEchoReply   = 0
	icmpEchoRequest = 8
)

// handleIPv4 validates an IPv4 packet, takes it through the routers in
// front of the host it is for, and answers it. l is the Ethernet context,
// nil on TUN.
func (s *Stack) handleIPv4(pkt []byte, l *link, out *Out) Verdict {
	// RFC 1122 §3.2.1.1-3.2.1.2: check version, header length, total length
	// and header checksum before trusting any other field; the decoder is
	// only given what has passed.
	if len(pkt) < ipv4HeaderLen {
		return Truncated
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4HeaderLen {
		return BadIHL
	}
	if len(pkt) < ihl {
		return Truncated
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total < ihl || total > len(pkt) {
		return BadTotalLength
	}
	// Anything past the total length is link padding.
	pkt = pkt[:total]
	if checksum(pkt[:ihl]) != 0 {
		return BadIPChecksum
	}
	ip := &s.ip4
	if err := ip.DecodeFromBytes(pkt, gopacket.NilDecodeFeedback); err != nil {
		// The fixed header was checked above, so only options can fail.
		return BadIPOptions
	}
	src, dst := be32(ip.SrcIP), be32(ip.DstIP)
	// RFC 1122 §3.2.1.3: a source that is not a single host (0.0.0.0,
	// broadcast, multicast, class E, loopback) is discarded; no reply could
	// be addressed to it.
	if !unicast(src) || src>>24 == 127 || s.addrs.isBroadcast(src) {
		return BadSource
	}
	// Only owned unicast addresses are answered: never broadcast or
	// multicast (RFC 1122 §3.2.2.6 allows silence there).
	ei, ok := s.addrs.lookup4(dst)
	if !ok || !l.accepts(s.mac4(ei, dst)) {
		return NotForUs
	}
	h := &s.hosts[ei]
	h.rx.Add(1)
	p := ipv4Pkt{
		hdr: pkt[:ihl], body: ip.Payload, src: src, dst: dst, ttl: ip.TTL, tos: ip.TOS,
		proto: ip.Protocol, id: ip.Id, offset: int(ip.FragOffset) * 8,
		more: ip.Flags&layers.IPv4MoreFragments != 0, df: ip.Flags&layers.IPv4DontFragment != 0,
	}
	if len(h.routers) > 0 || h.pathMTU != 0 {
		if v, stopped := s.forward4(h, &p, l, out); stopped {
			return v
		}
	}
	if p.more || p.offset != 0 {
		e, v := s.frags.add(s, src, dst, p.id, uint8(p.proto), p.tos, p.offset, p.more, p.body)
		if e == nil {
			return v
		}
		defer s.frags.release(e)
		// The datagram's header is the first fragment's, less the fields
		// reassembly changed; an ICMP error quotes this one.
		p.tos, p.offset, p.more, p.body = e.tos, 0, false, e.payload()
		p.hdr = p.rebuildHeader(s.rebuilt[:])
	}
	switch p.proto {
	case layers.IPProtocolICMPv4:
		return s.handleICMPv4(h, &p, l, out)
	case layers.IPProtocolUDP:
		return s.handleUDP4(h, &p, l, out)
	case layers.IPProtocolTCP:
		return s.handleTCP4(h, &p, l, out)
	}
	// RFC 1122 §3.2.2.1: a host answers a protocol it does not speak with
	// Protocol Unreachable.
	return s.sendError4(h, errFromHost(h, dst, icmpDestUnreachable, icmpProtoUnreachable, 0), &p, l, out)
}

// ipv4Pkt is a validated IPv4 packet (or reassembled datagram) for an
// owned address.
type ipv4Pkt struct {
	hdr      []byte // the header as received, options included
	body     []byte // the payload (of this fragment, or the whole datagram)
	src, dst uint32
	ttl, tos uint8
	proto    layers.IPProtocol
	id       uint16
	offset   int
	more, df bool
}

// rebuildHeader writes to b, and returns, the header of a reassembled
// datagram, for quoting in ICMP errors.
func (p *ipv4Pkt) rebuildHeader(b []byte) []byte {
	putIPv4Header(b, p.tos, int(p.ttl), ipv4HeaderLen+len(p.body), p.id, 0, p.proto, p.src, p.dst)
	return b[:ipv4HeaderLen]
}

// handleICMPv4 answers an echo request (RFC 792) carried in a complete
// datagram for one of h's addresses.
func (s *Stack) handleICMPv4(h *hostEntry, p *ipv4Pkt, l *link, out *Out) Verdict {
	msg := p.body
	if len(msg) < 8 {
		return Truncated
	}
	if checksum(msg) != 0 {
		return BadICMPChecksum
	}
	icmp := &s.icmp4
	if err := icmp.DecodeFromBytes(msg, gopacket.NilDecodeFeedback); err != nil {
		return Truncated
	}
	switch icmp.TypeCode.Type() {
	case layers.ICMPv4TypeEchoRequest:
	case layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4TypeSourceQuench,
		layers.ICMPv4TypeRedirect, layers.ICMPv4TypeTimeExceeded, layers.ICMPv4TypeParameterProblem:
		// RFC 1122 §3.2.2: never answer an ICMP error message.
		return IgnoredICMPError
	default:
		return IgnoredICMP
	}
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("rx icmp echo %v > %v id=%d seq=%d len=%d", u32Addr(p.src), u32Addr(p.dst), icmp.Id, icmp.Seq, len(msg))
	}

	// RFC 792: the reply is the request with source and destination swapped,
	// type 0, and the checksum recomputed; identifier, sequence number and
	// data are returned unchanged. RFC 1122 §3.2.2.6 lets a host reply
	// without the request's IP options, which is what we do: the reply has
	// a plain 20-byte header, TTL 64 less the routers on the way back, and
	// the request's TOS.
	var hdr [8]byte
	copy(hdr[:], msg[:8])
	hdr[0], hdr[1] = icmpEchoReply, 0
	old := binary.BigEndian.Uint16(msg[0:2])
	binary.BigEndian.PutUint16(hdr[2:4], updateChecksum(binary.BigEndian.Uint16(msg[2:4]), old, 0))
	first := out.Len()
	if v := s.sendIPv4(p.tos, defaultTTL-len(h.routers), p.dst, p.src, layers.IPProtocolICMPv4, hdr[:], msg[8:], l, out); v != Replied {
		return v
	}
	s.sent(out, first, h, len(h.routers), true)
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("tx icmp echo-reply %v > %v id=%d seq=%d len=%d", u32Addr(p.dst), u32Addr(p.src), icmp.Id, icmp.Seq, len(msg))
	}
	return Replied
}

// sendIPv4 appends a datagram from src to dst whose payload is head
// followed by body, fragmented to the MTU (RFC 791) when it does not fit.
func (s *Stack) sendIPv4(tos uint8, ttl int, src, dst uint32, proto layers.IPProtocol, head, body []byte, l *link, out *Out) Verdict {
	plen := len(head) + len(body)
	if ipv4HeaderLen+plen > MaxIPv4Packet {
		return ReplyTooLarge
	}
	per := plen
	if ipv4HeaderLen+plen > s.mtu {
		per = (s.mtu - ipv4HeaderLen) &^ 7
	}
	if (plen+per-1)/per > out.Free() {
		return ReplyTooLarge
	}
	s.ipID++
	id := s.ipID
	for off := 0; ; {
		end := min(off+per, plen)
		b := out.next()
		h := putEthernet(b, l, layers.EthernetTypeIPv4)
		frag := uint16(off / 8)
		if end < plen {
			frag |= ipv4FlagMF
		}
		putIPv4Header(b[h:], tos, ttl, ipv4HeaderLen+end-off, id, frag, proto, src, dst)
		copyRange(b[h+ipv4HeaderLen:], head, body, off, end)
		out.commit(h + ipv4HeaderLen + end - off)
		s.ctr.events[evTxPackets].Add(1)
		off = end
		if off >= plen {
			return Replied
		}
	}
}

// copyRange copies bytes [from, to) of the concatenation of a and b to dst.
func copyRange(dst, a, b []byte, from, to int) {
	if from < len(a) {
		n := copy(dst, a[from:min(to, len(a))])
		dst = dst[n:]
		from += n
	}
	if from < to {
		copy(dst, b[from-len(a):to-len(a)])
	}
}

// putIPv4Header writes a 20-byte IPv4 header with its checksum to b.
func putIPv4Header(b []byte, tos uint8, ttl, total int, id, frag uint16, proto layers.IPProtocol, src, dst uint32) {
	_ = b[ipv4HeaderLen-1]
	b[0] = 0x45
	b[1] = tos
	binary.BigEndian.PutUint16(b[2:4], uint16(total))
	binary.BigEndian.PutUint16(b[4:6], id)
	binary.BigEndian.PutUint16(b[6:8], frag)
	b[8] = uint8(ttl)
	b[9] = uint8(proto)
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint32(b[12:16], src)
	binary.BigEndian.PutUint32(b[16:20], dst)
	binary.BigEndian.PutUint16(b[10:12], checksum(b[:ipv4HeaderLen]))
}
