package stack

import (
	"encoding/binary"

	"github.com/gopacket/gopacket/layers"
)

// ICMPv4 error types and codes (RFC 792, RFC 1191).
const (
	icmpDestUnreachable  = 3
	icmpTimeExceeded     = 11
	icmpProtoUnreachable = 2
	icmpPortUnreachable  = 3
	icmpFragNeeded       = 4
	icmpTTLExceeded      = 0
	// icmpErrorMax bounds an ICMPv4 error datagram (RFC 1812 §4.3.2.3).
	icmpErrorMax = 576
	// tosInternetControl is the precedence of ICMP errors, as Linux sets it.
	tosInternetControl = 0xc0
	tosMask            = 0x1e
)

// icmpErr is an ICMP error to send and who sends it.
type icmpErr struct {
	typ, code uint8
	rest      uint32 // the ICMP header's second word (the MTU, for "fragmentation needed")
	from      uint32 // the reporting router's or host's address
	hops      int    // routers between the reporter and the kernel: the TTL is 64 less this
	// impair is how many routers' impairments apply (the reporter's
	// included), and fromHost whether the host's do.
	impair   int
	fromHost bool
	verdict  Verdict
	// quoteTTL is the TTL of the quoted header, as the reporter received it.
	quoteTTL uint8
}

// errFromRouter is an error sent by router k (0-based) of h.
func errFromRouter(h *hostEntry, k int, typ, code uint8, rest uint32, quoteTTL uint8, v Verdict) icmpErr {
	return icmpErr{typ: typ, code: code, rest: rest, from: h.routers[k].addr4, hops: k, impair: k + 1, verdict: v, quoteTTL: quoteTTL}
}

// errFromHost is an error sent by the host at address a.
func errFromHost(h *hostEntry, a uint32, typ, code uint8, rest uint32) icmpErr {
	v := PortUnreachable
	switch {
	case typ == icmpDestUnreachable && code == icmpProtoUnreachable:
		v = ProtoUnreachable
	case typ == icmpDestUnreachable && code == icmpFragNeeded:
		v = TooBig
	}
	return icmpErr{typ: typ, code: code, rest: rest, from: a, hops: len(h.routers), impair: len(h.routers), fromHost: true, verdict: v}
}

// pathEnd is where, on the way to a host, a packet stops.
type pathEnd uint8

const (
	reachesHost pathEnd = iota
	expires             // its TTL (hop limit) runs out at a router
	tooBig              // it is too big for the link out of a router, or the host's path MTU
)

// walk follows a packet of total bytes sent with TTL (hop limit) ttl
// through h's routers. At router k the packet arrives with ttl-k: 1 or
// less there and it expires; otherwise it must fit the MTU of the link out
// of the router (the last one's at most the path MTU), unless it may be
// fragmented there. With no routers, the path MTU is the host's. linkMTU
// maps a configured MTU to what the packet's IP version sees. k is the
// router it stops at, -1 for the host itself.
func (h *hostEntry) walk(ttl, total int, linkMTU func(int) int, fragmentable bool) (end pathEnd, k, mtu int) {
	n := len(h.routers)
	pathMTU := linkMTU(h.pathMTU)
	for k := range n {
		if ttl-k <= 1 {
			return expires, k, 0
		}
		mtu := linkMTU(h.routers[k].mtu)
		if k == n-1 && pathMTU != 0 && (mtu == 0 || pathMTU < mtu) {
			mtu = pathMTU
		}
		if mtu != 0 && total > mtu && !fragmentable {
			return tooBig, k, mtu
		}
	}
	if n == 0 && pathMTU != 0 && total > pathMTU && !fragmentable {
		return tooBig, -1, pathMTU
	}
	return reachesHost, 0, 0
}

// sameMTU is IPv4's view of a configured MTU: as given.
func sameMTU(m int) int { return m }

// forward4 takes p through h's routers (RFC 1812 §5.2.1): a packet whose
// TTL runs out at a router is answered with Time Exceeded (§5.3.1), and one
// too large for the link out of a router, with DF set, with "fragmentation
// needed" and that link's MTU (§5.2.6, RFC 1191). stopped is false when p
// reaches the host.
func (s *Stack) forward4(h *hostEntry, p *ipv4Pkt, l *link, out *Out) (v Verdict, stopped bool) {
	end, k, mtu := h.walk(int(p.ttl), len(p.hdr)+len(p.body), sameMTU, !p.df)
	switch {
	case end == expires:
		m := errFromRouter(h, k, icmpTimeExceeded, icmpTTLExceeded, 0, uint8(max(int(p.ttl)-k, 0)), TimeExceeded)
		return s.sendError4(h, m, p, l, out), true
	case end == tooBig && k >= 0:
		m := errFromRouter(h, k, icmpDestUnreachable, icmpFragNeeded, uint32(mtu), p.ttl-uint8(k), TooBig)
		return s.sendError4(h, m, p, l, out), true
	case end == tooBig:
		m := errFromHost(h, p.dst, icmpDestUnreachable, icmpFragNeeded, uint32(mtu))
		m.quoteTTL = p.ttl
		return s.sendError4(h, m, p, l, out), true
	}
	// The host sees the TTL less the routers it crossed.
	p.ttl -= uint8(len(h.routers))
	return 0, false
}

// sendError4 sends the ICMP error m about p, quoting p's header and as
// much of its data as fits in 576 bytes (RFC 1812 §4.3.2.3), unless RFC
// 1812 §4.3.2.7 forbids an error about p or the rate limit is reached.
func (s *Stack) sendError4(h *hostEntry, m icmpErr, p *ipv4Pkt, l *link, out *Out) Verdict {
	if m.fromHost && m.quoteTTL == 0 {
		m.quoteTTL = p.ttl
	}
	b, v := s.errorBuffer(errorAllowed4(p, l), out)
	if b == nil {
		return v
	}
	o, ip, icmp, n := s.layoutError(b, l, layers.EthernetTypeIPv4, ipv4HeaderLen, icmpErrorMax, p.hdr, p.body)
	q := icmp[8:]
	// Quote the header as the reporter received it: its TTL, and the
	// header checksum to match.
	if n >= len(p.hdr) && q[8] != m.quoteTTL {
		q[8] = m.quoteTTL
		q[10], q[11] = 0, 0
		binary.BigEndian.PutUint16(q[10:12], checksum(q[:len(p.hdr)]))
	}
	icmp[0], icmp[1], icmp[2], icmp[3] = m.typ, m.code, 0, 0
	binary.BigEndian.PutUint32(icmp[4:8], m.rest)
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp[:8+n]))
	s.ipID++
	putIPv4Header(ip, p.tos&tosMask|tosInternetControl, defaultTTL-m.hops, ipv4HeaderLen+8+n, s.ipID, 0,
		layers.IPProtocolICMPv4, m.from, p.src)
	s.errorSent(h, o+ipv4HeaderLen+8+n, m.impair, m.fromHost, out)
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("tx icmp type=%d code=%d %v > %v about %v > %v proto=%d", m.typ, m.code, u32Addr(m.from), u32Addr(p.src), u32Addr(p.src), u32Addr(p.dst), p.proto)
	}
	return m.verdict
}

// errorBuffer returns the buffer for an ICMP error the rules allow
// (allowed) and the rate limit lets through, or nil and the verdict why
// not.
func (s *Stack) errorBuffer(allowed bool, out *Out) ([]byte, Verdict) {
	if !allowed {
		return nil, ErrorSuppressed
	}
	// Room first, so that an error with nowhere to go costs no token.
	b := out.next()
	if b == nil {
		return nil, ReplyTooLarge
	}
	if !s.allowError() {
		return nil, ICMPRateLimited
	}
	return b, Replied
}

// layoutError lays out an ICMP error in b: the link header (on Ethernet),
// room for an IP header of ipLen bytes, the 8-byte ICMP header, and as
// much of head then rest as fits in a datagram of bound bytes and the MTU.
// It returns the link header's length, the IP datagram, the ICMP message
// and the length of the quote.
func (s *Stack) layoutError(b []byte, l *link, typ layers.EthernetType, ipLen, bound int, head, rest []byte) (o int, ip, icmp []byte, n int) {
	o = putEthernet(b, l, typ)
	ip = b[o:]
	icmp = ip[ipLen:]
	q := icmp[8:]
	limit := min(bound, s.mtu) - ipLen - 8
	n = copy(q[:limit], head)
	n += copy(q[n:limit], rest)
	return o, ip, icmp, n
}

// errorSent appends the ICMP error of n bytes written to the buffer
// errorBuffer returned, counts it, and impairs it along the path: impair
// routers of h's and, when fromHost, h's own.
func (s *Stack) errorSent(h *hostEntry, n, impair int, fromHost bool, out *Out) {
	first := out.Len()
	out.commit(n)
	s.ctr.events[evTxPackets].Add(1)
	s.ctr.events[evICMPErrors].Add(1)
	s.sent(out, first, h, impair, fromHost)
}

// errorAllowed4 applies RFC 1812 §4.3.2.7: no ICMP error about an ICMP
// error, about a fragment other than the first, or about a datagram sent
// as a link-layer broadcast. (Bad sources and broadcast or multicast
// destinations never get this far.)
func errorAllowed4(p *ipv4Pkt, l *link) bool {
	if p.offset != 0 {
		return false
	}
	if l != nil && l.dst[0]&1 != 0 {
		return false
	}
	if p.proto == layers.IPProtocolICMPv4 {
		if len(p.body) < 1 {
			return false
		}
		switch p.body[0] {
		case icmpEchoRequest, icmpEchoReply, 13, 14, 15, 16, 17, 18:
			// Queries and replies are not errors.
		default:
			return false
		}
	}
	return true
}

// pseudoSum4 is the sum of the IPv4 pseudo-header of TCP and UDP (RFC 793,
// RFC 768).
func pseudoSum4(src, dst uint32, proto layers.IPProtocol, n int) uint64 {
	return uint64(src>>16) + uint64(src&0xffff) + uint64(dst>>16) + uint64(dst&0xffff) + uint64(proto) + uint64(n)
}

// handleUDP4 answers a UDP datagram with Port Unreachable: the host has no
// UDP service (RFC 1122 §4.1.3.1), so traceroute's probes end here.
func (s *Stack) handleUDP4(h *hostEntry, p *ipv4Pkt, l *link, out *Out) Verdict {
	// A zero checksum means none was computed (RFC 768).
	if v := checkUDP(p.body, pseudoSum4(p.src, p.dst, layers.IPProtocolUDP, 0), true); v != PortUnreachable {
		return v
	}
	return s.sendError4(h, errFromHost(h, p.dst, icmpDestUnreachable, icmpPortUnreachable, 0), p, l, out)
}

// checkUDP validates a UDP datagram (RFC 768) whose pseudo-header, less
// the length, sums to ph. A zero checksum (none computed) passes when
// zeroOK. It returns PortUnreachable, what the datagram gets, when it is
// valid.
func checkUDP(d []byte, ph uint64, zeroOK bool) Verdict {
	if len(d) < 8 {
		return Truncated
	}
	n := int(binary.BigEndian.Uint16(d[4:6]))
	if n < 8 || n > len(d) {
		return BadL4Length
	}
	if binary.BigEndian.Uint16(d[6:8]) == 0 {
		if zeroOK {
			return PortUnreachable
		}
		return BadL4Checksum
	}
	if ^fold(sum(d[:n], ph+uint64(n))) != 0 {
		return BadL4Checksum
	}
	return PortUnreachable
}

// TCP header flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
	tcpLen = 20
)

// handleTCP4 answers a TCP segment with a reset: no port is listening
// (RFC 793 §3.4, "If the connection does not exist"), so traceroute -T
// ends here.
func (s *Stack) handleTCP4(h *hostEntry, p *ipv4Pkt, l *link, out *Out) Verdict {
	seg := p.body
	var rst [tcpLen]byte
	if v := makeReset(&rst, seg, pseudoSum4(p.src, p.dst, layers.IPProtocolTCP, 0)); v != Reset {
		return v
	}
	first := out.Len()
	if v := s.sendIPv4(0, defaultTTL-len(h.routers), p.dst, p.src, layers.IPProtocolTCP, rst[:], nil, l, out); v != Replied {
		return v
	}
	s.sent(out, first, h, len(h.routers), true)
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("tx tcp rst %v:%d > %v:%d", u32Addr(p.dst), binary.BigEndian.Uint16(seg[2:4]), u32Addr(p.src), binary.BigEndian.Uint16(seg[0:2]))
	}
	return Reset
}

// makeReset validates a TCP segment (RFC 793) whose pseudo-header, less
// the length, sums to ph, and writes to rst the reset that answers it,
// checksum included: the reset's pseudo-header sums the same, its
// addresses only swapped. It returns Reset when rst is ready.
func makeReset(rst *[tcpLen]byte, seg []byte, ph uint64) Verdict {
	if len(seg) < tcpLen {
		return Truncated
	}
	off := int(seg[12]>>4) * 4
	if off < tcpLen || off > len(seg) {
		return BadL4Length
	}
	if ^fold(sum(seg, ph+uint64(len(seg)))) != 0 {
		return BadL4Checksum
	}
	if !putReset(rst, seg, off) {
		return IgnoredReset
	}
	binary.BigEndian.PutUint16(rst[16:18], ^fold(sum(rst[:], ph+tcpLen)))
	return Reset
}

// putReset writes to rst the reset RFC 793 §3.4 answers seg with, less the
// checksum, or returns false when seg is itself a reset. off is seg's data
// offset in bytes.
func putReset(rst *[tcpLen]byte, seg []byte, off int) bool {
	flags := seg[13]
	if flags&tcpRST != 0 {
		return false
	}
	copy(rst[0:2], seg[2:4])
	copy(rst[2:4], seg[0:2])
	rst[12] = tcpLen / 4 << 4
	if flags&tcpACK != 0 {
		// <SEQ=SEG.ACK><CTL=RST>
		copy(rst[4:8], seg[8:12])
		rst[13] = tcpRST
		return true
	}
	// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN counting one.
	n := uint32(len(seg) - off)
	if flags&tcpSYN != 0 {
		n++
	}
	if flags&tcpFIN != 0 {
		n++
	}
	binary.BigEndian.PutUint32(rst[8:12], binary.BigEndian.Uint32(seg[4:8])+n)
	rst[13] = tcpRST | tcpACK
	return true
}
