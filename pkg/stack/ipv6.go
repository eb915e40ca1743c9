package stack

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

const (
	ipv6HeaderLen = 40
	fragHeaderLen = 8
	// ipv6MinMTU is the smallest MTU of a link that carries IPv6 (RFC 8200
	// §5), and so the bound of an ICMPv6 error (RFC 4443 §2.4(c)).
	ipv6MinMTU = 1280
	// maxIPv6Payload is the largest payload length (jumbograms, RFC 2675,
	// are not supported).
	maxIPv6Payload = 65535
)

// Next Header values (RFC 8200 §4, IANA "Assigned Internet Protocol
// Numbers").
const (
	nhHopByHop = 0
	nhTCP      = 6
	nhUDP      = 17
	nhRouting  = 43
	nhFragment = 44
	nhICMPv6   = 58
	nhNone     = 59
	nhDestOpts = 60
)

// ICMPv6 types and codes (RFC 4443, RFC 4861, RFC 2710, RFC 3810).
const (
	icmp6DstUnreachable   = 1
	icmp6PacketTooBig     = 2
	icmp6TimeExceeded     = 3
	icmp6ParamProblem     = 4
	icmp6EchoRequest      = 128
	icmp6EchoReply        = 129
	icmp6MLDQuery         = 130
	icmp6MLDReport        = 131
	icmp6MLDDone          = 132
	icmp6RouterSolicit    = 133
	icmp6RouterAdvert     = 134
	icmp6NeighborSolicit  = 135
	icmp6NeighborAdvert   = 136
	icmp6Redirect         = 137
	icmp6MLDv2Report      = 143
	icmp6PortUnreachable  = 4 // Destination Unreachable code
	icmp6HopLimitExceeded = 0 // Time Exceeded code
	// Parameter Problem codes (RFC 4443 §3.4, RFC 7112).
	ppErroneousField  = 0
	ppUnknownNext     = 1
	ppUnknownOption   = 2
	ppIncompleteChain = 3
)

// stack6 is a Stack's IPv6 state: the decoders, preallocated (one Stack is
// used by one goroutine), the identification of fragmented replies and the
// header of a reassembled datagram.
//
// The fixed header and the extension header chain are read here rather
// than by layers.IPv6: its decoder allocates for every hop-by-hop option
// and builds error strings for bad lengths, and the chain must be walked
// with offsets anyway (for Parameter Problem pointers). gopacket decodes
// the Fragment header, ICMPv6 and neighbour solicitations, after our own
// checks.
type stack6 struct {
	fragID  uint32
	rebuilt [ipv6HeaderLen]byte
	frag    layers.IPv6Fragment
	icmp    layers.ICMPv6
	echo    layers.ICMPv6Echo
	ns      layers.ICMPv6NeighborSolicitation
}

// ipv6Pkt is a validated IPv6 packet, or a reassembled datagram.
type ipv6Pkt struct {
	// head and rest are the packet as received, or the reassembled
	// datagram (a rebuilt header and the payload): what an error quotes.
	// head is the 40-byte fixed header.
	head, rest []byte
	// body is the upper-layer message (or this fragment's part of it): a
	// suffix of rest.
	body     []byte
	src, dst [16]byte
	hl, tc   uint8
	// proto is the last Next Header walked: the upper-layer protocol, or
	// the header the walk stopped at; nhOff is where in head+rest the
	// field that names it is.
	proto uint8
	nhOff int
	// frag is where the Fragment header of a fragment is in head+rest; 0
	// for a packet that is not a fragment (an atomic fragment is not one,
	// RFC 6946).
	frag int
	// atomic is set when the packet had an atomic fragment's header.
	atomic bool
	id     uint32
	offset int
	more   bool
	// prob is why the host discards the packet, found while walking its
	// headers and acted on once the packet has crossed the routers.
	prob problem6
}

// problem6 is a reason for the host to discard a packet: with an ICMPv6
// Parameter Problem (RFC 4443 §3.4) when send is set, silently otherwise.
type problem6 struct {
	set     bool
	send    bool
	code    uint8
	ptr     uint32
	verdict Verdict
	// exempt: an unrecognized option of type 10xxxxxx, which RFC 4443
	// §2.4(e.3) allows reporting about multicast packets too.
	exempt bool
	// aboutFragment: RFC 8200 §4.5's report about a fragment itself, sent
	// whatever its offset.
	aboutFragment bool
}

// handleIPv6 validates an IPv6 packet, takes it through the routers in
// front of the host it is for, and answers it. l is the Ethernet context,
// nil on TUN.
func (s *Stack) handleIPv6(pkt []byte, l *link, out *Out) Verdict {
	// RFC 8200 §3: the fixed header, then Payload Length bytes of
	// extension headers and upper-layer data. Both are checked before any
	// other field is read.
	if len(pkt) < ipv6HeaderLen {
		return Truncated
	}
	plen := int(binary.BigEndian.Uint16(pkt[4:6]))
	if ipv6HeaderLen+plen > len(pkt) {
		return BadTotalLength
	}
	// Anything past the payload length is link padding.
	pkt = pkt[:ipv6HeaderLen+plen]
	p := ipv6Pkt{
		head: pkt[:ipv6HeaderLen], rest: pkt[ipv6HeaderLen:],
		src: [16]byte(pkt[8:24]), dst: [16]byte(pkt[24:40]),
		hl: pkt[7], tc: byte(binary.BigEndian.Uint16(pkt[0:2]) >> 4),
	}
	// RFC 4291 §2.7: a multicast address is never a source.
	if p.src[0] == 0xff {
		return BadSource
	}
	if v, ok := s.walk6(&p, p.rest, pkt[6], 6, true); !ok {
		return v
	}
	if p.dst[0] == 0xff {
		return s.handleMulticast6(&p, l, out)
	}
	ei, ok := s.addrs.lookup6(&p.dst)
	if !ok || !l.accepts(s.mac6(ei, &p.dst)) {
		return NotForUs
	}
	h := &s.hosts[ei]
	h.rx.Add(1)
	// No reply can go to the unspecified or the loopback address (RFC 4291
	// §2.5.2, §2.5.3), nor to an IPv4-mapped one, which never appears on
	// the wire (RFC 4038 §5.1).
	if !unicast6(&p.src) || v4Mapped(&p.src) {
		return BadSource
	}
	// Neighbour discovery is between the kernel and the host on the link:
	// the simulated routers do not stand in its way (as for ARP).
	if p.proto == nhICMPv6 && p.frag == 0 && !p.prob.set && len(p.body) > 0 && isND(p.body[0]) {
		return s.handleND(&p, l, out)
	}
	if len(h.routers) > 0 || h.pathMTU != 0 {
		if v, stopped := s.forward6(h, &p, l, out); stopped {
			return v
		}
	}
	if p.prob.set {
		return s.sendProblem6(h, &p, l, out)
	}
	if p.frag != 0 {
		e, v := s.reassemble6(h, &p, l, out)
		if e == nil {
			return v
		}
		defer s.frags.release(e)
	}
	switch p.proto {
	case nhICMPv6:
		return s.handleICMPv6(h, &p, l, out)
	case nhUDP:
		return s.handleUDP6(h, &p, l, out)
	case nhTCP:
		return s.handleTCP6(h, &p, l, out)
	case nhNone:
		// RFC 8200 §4.7: nothing follows; the rest is ignored.
		return NoNextHeader
	}
	// RFC 8200 §4: a Next Header the host does not know is answered with
	// a Parameter Problem, code 1, pointing at it (as Linux does for an
	// upper-layer protocol it has no handler for).
	p.prob = problem6{set: true, send: true, code: ppUnknownNext, ptr: uint32(p.nhOff), verdict: ProtoUnreachable}
	return s.sendProblem6(h, &p, l, out)
}

// handleMulticast6 handles a packet to a multicast address: only neighbour
// solicitations are answered; echo requests to a group are not (RFC 4443
// §4.2 allows silence, and one reply per owned address would flood).
func (s *Stack) handleMulticast6(p *ipv6Pkt, l *link, out *Out) Verdict {
	// RFC 2464 §7: a multicast packet travels in a frame to 33:33 and the
	// group's last four bytes; a NIC filters out others.
	if l != nil && l.dst != [6]byte{0x33, 0x33, p.dst[12], p.dst[13], p.dst[14], p.dst[15]} {
		return NotForUs
	}
	if p.prob.set {
		if !joined6(&p.dst) {
			return NotForUs
		}
		// Not reported: RFC 4443 §2.4(e.3) forbids most errors about a
		// multicast packet, and no single host of ours received it.
		if !p.prob.send {
			return p.prob.verdict
		}
		return ErrorSuppressed
	}
	if p.proto != nhICMPv6 || p.frag != 0 || len(p.body) == 0 {
		return NotForUs
	}
	switch t := p.body[0]; {
	case isND(t):
		return s.handleND(p, l, out)
	case t == icmp6MLDQuery || t == icmp6MLDReport || t == icmp6MLDDone || t == icmp6MLDv2Report:
		// Multicast listener discovery (RFC 2710, RFC 3810) is for
		// routers; the host listens to its groups whatever they say.
		return IgnoredICMP
	}
	return NotForUs
}

// joined6 reports whether a is a group the hosts listen to: all nodes, or
// a solicited-node group (RFC 4291 §2.8).
func joined6(a *[16]byte) bool {
	sn := solicitedNode(a)
	return *a == allNodes || [13]byte(a[:13]) == [13]byte(sn[:13])
}

// v4Mapped reports whether a is an IPv4-mapped address, ::ffff:0:0/96.
func v4Mapped(a *[16]byte) bool {
	return [12]byte(a[:12]) == [12]byte{10: 0xff, 11: 0xff}
}

// anycast6 reports whether a is the Subnet-Router anycast address (RFC
// 4291 §2.6.1) of an owned prefix.
func (s *addrSet) anycast6(a *[16]byte) bool {
	for i := range s.prefix6 {
		if p := &s.prefix6[i]; p.contains(a) && !p.hostPart(a) {
			return true
		}
	}
	return false
}

// walk6 walks the extension headers of p from data, which follows the
// field at nhOff (in head+rest) that names nh as the next header, as RFC
// 8200 §4.1 orders: it sets p.proto, p.nhOff and p.body to the upper
// layer, p.frag and the fragment fields at a Fragment header that is not
// atomic, and p.prob when the host must discard the packet. first says
// whether data follows the fixed header (only there may a Hop-by-Hop
// Options header be). ok is false, with the verdict, for a header that
// does not fit the packet.
func (s *Stack) walk6(p *ipv6Pkt, data []byte, nh uint8, nhOff int, first bool) (v Verdict, ok bool) {
	// Every offset reported is into head+rest, where data starts after the
	// 40-byte header.
	for i := 0; ; {
		switch nh {
		case nhHopByHop, nhDestOpts, nhRouting:
			if nh == nhHopByHop && !first {
				// RFC 8200 §4.1: Hop-by-Hop Options only right after the
				// IPv6 header; elsewhere it is an unrecognized Next Header.
				p.proto, p.nhOff = nh, nhOff
				p.prob = problem6{set: true, send: true, code: ppUnknownNext, ptr: uint32(nhOff), verdict: ProtoUnreachable}
				return 0, true
			}
			if len(data)-i < 8 {
				return Truncated, false
			}
			n := (int(data[i+1]) + 1) * 8
			if len(data)-i < n {
				return Truncated, false
			}
			h := data[i : i+n]
			if nh == nhRouting {
				// RFC 8200 §4.4: a Routing header with no segments left is
				// ignored; the host routes no further, so with segments left
				// it answers code 0 pointing at the Routing Type (RFC 5095
				// deprecates type 0, and no other type is processed here).
				if h[3] != 0 {
					p.proto, p.nhOff = nh, nhOff
					p.prob = problem6{set: true, send: true, code: ppErroneousField, ptr: uint32(ipv6HeaderLen + i + 2), verdict: ParamProblem}
					return 0, true
				}
			} else if v, ok := options6(p, h, ipv6HeaderLen+i, nh == nhHopByHop); !ok {
				return v, false
			} else if p.prob.set {
				p.proto, p.nhOff = nh, nhOff
				return 0, true
			}
			nh, nhOff = h[0], ipv6HeaderLen+i
			i += n
		case nhFragment:
			if len(data)-i < fragHeaderLen {
				return Truncated, false
			}
			f := &s.v6.frag
			if f.DecodeFromBytes(data[i:i+fragHeaderLen], gopacket.NilDecodeFeedback) != nil {
				return Truncated, false // not reached: the length was checked
			}
			if f.FragmentOffset == 0 && !f.MoreFragments {
				// RFC 6946 §4: an atomic fragment is processed as a whole
				// packet, its Fragment header skipped.
				nh, nhOff = uint8(f.NextHeader), ipv6HeaderLen+i
				i += fragHeaderLen
				first = false
				p.atomic = true
				continue
			}
			p.frag, p.id, p.offset, p.more = ipv6HeaderLen+i, f.Identification, int(f.FragmentOffset)*8, f.MoreFragments
			p.proto, p.nhOff = uint8(f.NextHeader), ipv6HeaderLen+i
			p.body = data[i+fragHeaderLen:]
			return 0, true
		default:
			p.proto, p.nhOff, p.body = nh, nhOff, data[i:]
			return 0, true
		}
		first = false
	}
}

// options6 processes the options of a Hop-by-Hop or Destination Options
// header h, which starts at off in head+rest (RFC 8200 §4.2). ok is false
// for an option that overruns the header; an option the host must not
// skip sets p.prob.
func options6(p *ipv6Pkt, h []byte, off int, hopByHop bool) (v Verdict, ok bool) {
	for j := 2; j < len(h); {
		t := h[j]
		if t == 0 { // Pad1
			j++
			continue
		}
		if len(h)-j < 2 || len(h)-j-2 < int(h[j+1]) {
			return BadIPOptions, false
		}
		switch {
		case t == 1: // PadN
		case t == 5 && hopByHop:
			// Router Alert (RFC 2711): for routers; a host goes on.
		default:
			// The two high bits of an unrecognized option's type say what
			// to do with the packet.
			switch t >> 6 {
			case 0: // skip the option
			case 1: // discard silently
				p.prob = problem6{set: true, verdict: BadIPOptions}
				return 0, true
			case 2, 3: // discard, and send code 2 pointing at the option
				p.prob = problem6{set: true, send: true, code: ppUnknownOption, ptr: uint32(off + j), verdict: ParamProblem, exempt: t>>6 == 2}
				return 0, true
			}
		}
		j += 2 + int(h[j+1])
	}
	return 0, true
}

// skipExt skips the extension headers of data, which follows a Next Header
// field naming nh, without processing them. ok is false when the chain
// runs past data or into a fragment other than the first.
func skipExt(data []byte, nh uint8) (upper uint8, rest []byte, ok bool) {
	for {
		switch nh {
		case nhHopByHop, nhDestOpts, nhRouting:
			if len(data) < 2 || len(data) < (int(data[1])+1)*8 {
				return nh, data, false
			}
			nh, data = data[0], data[(int(data[1])+1)*8:]
		case nhFragment:
			if len(data) < fragHeaderLen || binary.BigEndian.Uint16(data[2:4])&^7 != 0 {
				return nh, data, false
			}
			nh, data = data[0], data[fragHeaderLen:]
		default:
			return nh, data, true
		}
	}
}

// reassemble6 adds the fragment p to its datagram (RFC 8200 §4.5). When
// the datagram is complete it makes p the datagram, with its headers
// walked, and returns the entry to release after use; otherwise nil and
// the verdict.
func (s *Stack) reassemble6(h *hostEntry, p *ipv6Pkt, l *link, out *Out) (*fragEntry, Verdict) {
	data := p.body
	// RFC 8200 §4.5's checks, each answered with a Parameter Problem.
	unfrag := p.frag - ipv6HeaderLen // extension headers before the Fragment header
	switch {
	case p.more && len(data)%8 != 0:
		// A fragment but the last must hold a multiple of 8 bytes: code
		// 0 pointing at the Payload Length.
		p.prob = problem6{set: true, send: true, code: ppErroneousField, ptr: 4, verdict: BadFragment, aboutFragment: true}
	case unfrag+p.offset+len(data) > maxIPv6Payload:
		// The datagram would exceed 65535 bytes: code 0 pointing at the
		// Fragment Offset.
		p.prob = problem6{set: true, send: true, code: ppErroneousField, ptr: uint32(p.frag + 2), verdict: BadFragment, aboutFragment: true}
	case p.offset == 0 && !chainComplete(data, p.proto):
		// RFC 7112 §5: the first fragment holds the whole header chain,
		// upper-layer header included; else code 3.
		p.prob = problem6{set: true, send: true, code: ppIncompleteChain, verdict: BadFragment}
	}
	if p.prob.set {
		return nil, s.sendProblem6(h, p, l, out)
	}
	e, v := s.frags.add6(s, &p.src, &p.dst, p.id, p.proto, p.tc, p.offset, p.more, data, maxIPv6Payload-unfrag)
	if e == nil {
		return nil, v
	}
	// The datagram is the first fragment's packet without its Fragment
	// header: quoted in errors as a plain header (the unfragmentable
	// extension headers, already processed, are left out) and the payload.
	body := e.payload()
	p.tc = e.tos
	b := s.v6.rebuilt[:]
	putIPv6Header(b, p.tc, len(body), e.proto, p.hl, &p.src, &p.dst)
	p.head, p.rest = b, body
	p.frag, p.offset, p.more = 0, 0, false
	if v, ok := s.walk6(p, body, e.proto, 6, false); !ok {
		s.frags.release(e)
		return nil, v
	}
	switch {
	case p.frag != 0:
		// A fragment inside a fragment.
		s.frags.release(e)
		return nil, BadFragment
	case p.prob.set:
		v := s.sendProblem6(h, p, l, out)
		s.frags.release(e)
		return nil, v
	case p.proto == nhICMPv6 && len(p.body) > 0 && isND(p.body[0]):
		// RFC 6980 §5: neighbour discovery messages are never fragmented.
		s.frags.release(e)
		return nil, BadND
	}
	return e, Replied
}

// chainComplete reports whether the first fragment's data, which follows a
// Next Header field naming nh, holds the whole header chain through the
// upper-layer header (RFC 7112; the upper-layer header sizes are Linux's).
func chainComplete(data []byte, nh uint8) bool {
	upper, rest, ok := skipExt(data, nh)
	if !ok {
		return false
	}
	switch upper {
	case nhTCP:
		return len(rest) >= tcpLen
	case nhUDP, nhICMPv6:
		return len(rest) >= 8
	case nhNone:
		return true
	}
	return len(rest) >= 1
}

// handleICMPv6 answers an echo request (RFC 4443 §4) carried in a complete
// datagram for one of h's addresses.
func (s *Stack) handleICMPv6(h *hostEntry, p *ipv6Pkt, l *link, out *Out) Verdict {
	msg := p.body
	if len(msg) < 8 {
		return Truncated
	}
	// RFC 4443 §2.3: the checksum covers the pseudo-header of RFC 8200
	// §8.1 (with no Routing header left to process, the destination is
	// the final one).
	if ^fold(sum(msg, pseudoSum6(&p.src, &p.dst, nhICMPv6, len(msg)))) != 0 {
		return BadICMPChecksum
	}
	icmp := &s.v6.icmp
	if err := icmp.DecodeFromBytes(msg, gopacket.NilDecodeFeedback); err != nil {
		return Truncated
	}
	switch t := icmp.TypeCode.Type(); {
	case t == icmp6EchoRequest:
	case t < 128:
		// RFC 4443 §2.4(e.1): an error message is never answered.
		return IgnoredICMPError
	case isND(t):
		// Only reached in a packet whose headers were a problem.
		return IgnoredND
	default:
		return IgnoredICMP
	}
	echo := &s.v6.echo
	if err := echo.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback); err != nil {
		return Truncated // not reached: the length was checked
	}
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("rx icmp6 echo %v > %v id=%d seq=%d len=%d", netip.AddrFrom16(p.src), netip.AddrFrom16(p.dst), echo.Identifier, echo.SeqNumber, len(msg))
	}
	// RFC 4443 §4.2: the reply is sent from the address the request was
	// sent to, with the request's identifier, sequence number and data;
	// type 129, code 0. Its pseudo-header sums the same as the request's
	// (the addresses swapped, the length the same), so only the changed
	// type and code go into the checksum (RFC 1624). The reply has no
	// extension headers, hop limit 64 less the routers on the way back,
	// and the request's traffic class.
	var hdr [8]byte
	copy(hdr[:], msg[:8])
	hdr[0], hdr[1] = icmp6EchoReply, 0
	old := binary.BigEndian.Uint16(msg[0:2])
	binary.BigEndian.PutUint16(hdr[2:4], updateChecksum(binary.BigEndian.Uint16(msg[2:4]), old, icmp6EchoReply<<8))
	first := out.Len()
	if v := s.sendIPv6(p.tc, defaultTTL-len(h.routers), &p.dst, &p.src, nhICMPv6, hdr[:], msg[8:], l, out); v != Replied {
		return v
	}
	s.sent(out, first, h, len(h.routers), true)
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("tx icmp6 echo-reply %v > %v id=%d seq=%d len=%d", netip.AddrFrom16(p.dst), netip.AddrFrom16(p.src), echo.Identifier, echo.SeqNumber, len(msg))
	}
	return Replied
}

// sendIPv6 appends a packet from src to dst whose payload is head followed
// by body, in fragments of the MTU with Fragment headers (RFC 8200 §4.5)
// when it does not fit.
func (s *Stack) sendIPv6(tc uint8, hl int, src, dst *[16]byte, proto uint8, head, body []byte, l *link, out *Out) Verdict {
	plen := len(head) + len(body)
	if plen > maxIPv6Payload {
		return ReplyTooLarge
	}
	if ipv6HeaderLen+plen <= s.mtu {
		b := out.next()
		if b == nil {
			return ReplyTooLarge
		}
		o := putEthernet(b, l, layers.EthernetTypeIPv6)
		putIPv6Header(b[o:], tc, plen, proto, uint8(hl), src, dst)
		copyRange(b[o+ipv6HeaderLen:], head, body, 0, plen)
		out.commit(o + ipv6HeaderLen + plen)
		s.ctr.events[evTxPackets].Add(1)
		return Replied
	}
	// Every fragment but the last carries a multiple of 8 bytes of the
	// fragmentable part, which here is the whole payload.
	per := s.perFragment6()
	if (plen+per-1)/per > out.Free() {
		return ReplyTooLarge
	}
	s.v6.fragID++
	id := s.v6.fragID
	for off := 0; off < plen; {
		end := min(off+per, plen)
		b := out.next()
		o := putEthernet(b, l, layers.EthernetTypeIPv6)
		putIPv6Header(b[o:], tc, fragHeaderLen+end-off, nhFragment, uint8(hl), src, dst)
		f := b[o+ipv6HeaderLen : o+ipv6HeaderLen+fragHeaderLen]
		f[0], f[1] = proto, 0
		// Offset in 8-byte units in the top 13 bits, M in the lowest.
		m := uint16(off) &^ 7
		if end < plen {
			m |= 1
		}
		binary.BigEndian.PutUint16(f[2:4], m)
		binary.BigEndian.PutUint32(f[4:8], id)
		copyRange(b[o+ipv6HeaderLen+fragHeaderLen:], head, body, off, end)
		out.commit(o + ipv6HeaderLen + fragHeaderLen + end - off)
		s.ctr.events[evTxPackets].Add(1)
		off = end
	}
	return Replied
}

// perFragment6 is the data in each fragment of a fragmented IPv6 reply.
func (s *Stack) perFragment6() int {
	return (s.mtu - ipv6HeaderLen - fragHeaderLen) &^ 7
}

// maxOut6 is the most packets an IPv6 reply takes: the fragments of a
// 65535-byte payload.
func (s *Stack) maxOut6() int {
	per := s.perFragment6()
	return (maxIPv6Payload + per - 1) / per
}

// putIPv6Header writes a 40-byte IPv6 header, flow label 0, to b.
func putIPv6Header(b []byte, tc uint8, plen int, nh, hl uint8, src, dst *[16]byte) {
	_ = b[ipv6HeaderLen-1]
	b[0] = 0x60 | tc>>4
	b[1] = tc << 4
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[4:6], uint16(plen))
	b[6] = nh
	b[7] = hl
	copy(b[8:24], src[:])
	copy(b[24:40], dst[:])
}

// pseudoSum6 is the sum of the IPv6 pseudo-header of an upper-layer
// checksum (RFC 8200 §8.1): addresses, upper-layer length, next header.
func pseudoSum6(src, dst *[16]byte, nh uint8, n int) uint64 {
	return sum(dst[:], sum(src[:], uint64(n)+uint64(nh)))
}
