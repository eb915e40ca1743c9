package stack

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// icmp6Err is an ICMPv6 error to send and who sends it.
type icmp6Err struct {
	typ, code uint8
	rest      uint32   // the header's second word: the MTU (Packet Too Big), the pointer (Parameter Problem)
	from      [16]byte // the reporting router's or host's address
	hops      int      // routers between the reporter and the kernel: the hop limit is 64 less this
	// impair is how many routers' impairments apply (the reporter's
	// included), and fromHost whether the host's do.
	impair   int
	fromHost bool
	verdict  Verdict
	// quoteHL is the hop limit of the quoted header, as the reporter
	// received it.
	quoteHL uint8
	// exempt: one of RFC 4443 §2.4(e.3)'s exceptions, which may be about a
	// packet to a multicast address or in a link-layer multicast or
	// broadcast frame: Packet Too Big, and Parameter Problem code 2 about
	// an option of type 10xxxxxx.
	exempt bool
	// aboutFragment: RFC 8200 §4.5's Parameter Problem about a fragment
	// itself, sent whatever its offset.
	aboutFragment bool
}

// err6FromRouter is an error sent by router k (0-based) of h.
func err6FromRouter(h *hostEntry, k int, typ, code uint8, rest uint32, quoteHL uint8, v Verdict) icmp6Err {
	return icmp6Err{typ: typ, code: code, rest: rest, from: h.routers[k].addr6, hops: k, impair: k + 1,
		verdict: v, quoteHL: quoteHL, exempt: typ == icmp6PacketTooBig}
}

// err6FromHost is an error sent by the host p was for.
func err6FromHost(h *hostEntry, p *ipv6Pkt, typ, code uint8, rest uint32, v Verdict) icmp6Err {
	return icmp6Err{typ: typ, code: code, rest: rest, from: p.dst, hops: len(h.routers), impair: len(h.routers),
		fromHost: true, verdict: v, quoteHL: p.hl, exempt: typ == icmp6PacketTooBig}
}

// linkMTU6 is the MTU of a simulated link for IPv6: none (0), or at least
// 1280, the least an IPv6 link has (RFC 8200 §5). A smaller MTU, given for
// IPv4, is 1280 for IPv6: a Packet Too Big below it would only make the
// sender keep sending 1280-byte packets (RFC 8201 §4).
func linkMTU6(m int) int {
	if m == 0 {
		return 0
	}
	return max(m, ipv6MinMTU)
}

// forward6 takes p through h's routers (RFC 8200 §3): at router k the
// packet arrives with hop limit hl-k; one that has 1 or less there is
// answered with Time Exceeded (RFC 4443 §3.3), and one larger than the link
// out of a router, with Packet Too Big and that link's MTU (RFC 4443 §3.2:
// IPv6 routers never fragment, so any oversize packet). stopped is false
// when p reaches the host.
func (s *Stack) forward6(h *hostEntry, p *ipv6Pkt, l *link, out *Out) (v Verdict, stopped bool) {
	end, k, mtu := h.walk(int(p.hl), len(p.head)+len(p.rest), linkMTU6, false)
	switch {
	case end == expires:
		m := err6FromRouter(h, k, icmp6TimeExceeded, icmp6HopLimitExceeded, 0, uint8(max(int(p.hl)-k, 0)), TimeExceeded)
		return s.sendError6(h, m, p, l, out), true
	case end == tooBig && k >= 0:
		m := err6FromRouter(h, k, icmp6PacketTooBig, 0, uint32(mtu), p.hl-uint8(k), TooBig)
		return s.sendError6(h, m, p, l, out), true
	case end == tooBig:
		return s.sendError6(h, err6FromHost(h, p, icmp6PacketTooBig, 0, uint32(mtu), TooBig), p, l, out), true
	}
	// The host sees the hop limit less the routers it crossed.
	p.hl -= uint8(len(h.routers))
	return 0, false
}

// sendProblem6 discards p for p.prob: with a Parameter Problem from the
// host when the problem asks for one, silently otherwise.
func (s *Stack) sendProblem6(h *hostEntry, p *ipv6Pkt, l *link, out *Out) Verdict {
	pr := &p.prob
	if !pr.send {
		return pr.verdict
	}
	m := err6FromHost(h, p, icmp6ParamProblem, pr.code, pr.ptr, pr.verdict)
	m.exempt, m.aboutFragment = pr.exempt, pr.aboutFragment
	return s.sendError6(h, m, p, l, out)
}

// sendError6 sends the ICMPv6 error m about p, quoting as much of p as fits
// in 1280 bytes (RFC 4443 §2.4(c)), unless RFC 4443 §2.4(e) forbids an
// error about p or the rate limit (§2.4(f)) is reached.
func (s *Stack) sendError6(h *hostEntry, m icmp6Err, p *ipv6Pkt, l *link, out *Out) Verdict {
	b, v := s.errorBuffer(s.errorAllowed6(&m, p, l), out)
	if b == nil {
		return v
	}
	o, ip, icmp, n := s.layoutError(b, l, layers.EthernetTypeIPv6, ipv6HeaderLen, ipv6MinMTU, p.head, p.rest)
	q := icmp[8:]
	// Quote the header as the reporter received it: its hop limit.
	if n > 7 {
		q[7] = m.quoteHL
	}
	icmp[0], icmp[1], icmp[2], icmp[3] = m.typ, m.code, 0, 0
	binary.BigEndian.PutUint32(icmp[4:8], m.rest)
	binary.BigEndian.PutUint16(icmp[2:4], ^fold(sum(icmp[:8+n], pseudoSum6(&m.from, &p.src, nhICMPv6, 8+n))))
	// Traffic class 0, as Linux sends its ICMPv6 errors.
	putIPv6Header(ip, 0, 8+n, nhICMPv6, uint8(defaultTTL-m.hops), &m.from, &p.src)
	s.errorSent(h, o+ipv6HeaderLen+8+n, m.impair, m.fromHost, out)
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("tx icmp6 type=%d code=%d %v > %v about %v > %v proto=%d", m.typ, m.code,
			netip.AddrFrom16(m.from), netip.AddrFrom16(p.src), netip.AddrFrom16(p.src), netip.AddrFrom16(p.dst), p.proto)
	}
	return m.verdict
}

// errorAllowed6 applies RFC 4443 §2.4(e): no ICMPv6 error about an ICMPv6
// error or Redirect (e.1, e.2), about a packet to a multicast address or
// in a link-layer multicast or broadcast frame (e.3-e.5, but for m's
// exceptions), or from a source that is not one node (e.6). Nor about a
// fragment other than the first: it holds no upper-layer header, so (e.1)
// cannot be checked (RFC 1812 §4.3.2.7's rule for IPv4).
func (s *Stack) errorAllowed6(m *icmp6Err, p *ipv6Pkt, l *link) bool {
	if p.offset != 0 && !m.aboutFragment {
		return false
	}
	// The extension headers are skipped to find the upper layer, as
	// Linux's is_ineligible does, whether or not they were processed.
	if nh, upper, ok := skipExt(p.rest, p.head[6]); ok && nh == nhICMPv6 {
		if len(upper) == 0 || upper[0] < 128 || upper[0] == icmp6Redirect {
			return false
		}
	}
	if !m.exempt && (p.dst[0] == 0xff || l != nil && l.dst[0]&1 != 0) {
		return false
	}
	// Unspecified and multicast sources never get this far; an owned
	// prefix's Subnet-Router anycast address is the anycast address known
	// here.
	return unicast6(&p.src) && !v4Mapped(&p.src) && !s.addrs.anycast6(&p.src)
}

// handleUDP6 answers a UDP datagram with Port Unreachable (RFC 4443 §3.1,
// code 4): the host has no UDP service, so traceroute's probes end here.
func (s *Stack) handleUDP6(h *hostEntry, p *ipv6Pkt, l *link, out *Out) Verdict {
	// RFC 8200 §8.1: the UDP checksum is mandatory over IPv6; a packet with
	// a zero one is discarded.
	if v := checkUDP(p.body, pseudoSum6(&p.src, &p.dst, nhUDP, 0), false); v != PortUnreachable {
		return v
	}
	return s.sendError6(h, err6FromHost(h, p, icmp6DstUnreachable, icmp6PortUnreachable, 0, PortUnreachable), p, l, out)
}

// handleTCP6 answers a TCP segment with a reset, as handleTCP4 does (RFC
// 793 §3.4), with the IPv6 pseudo-header in the checksums.
func (s *Stack) handleTCP6(h *hostEntry, p *ipv6Pkt, l *link, out *Out) Verdict {
	seg := p.body
	var rst [tcpLen]byte
	if v := makeReset(&rst, seg, pseudoSum6(&p.src, &p.dst, nhTCP, 0)); v != Reset {
		return v
	}
	first := out.Len()
	if v := s.sendIPv6(0, defaultTTL-len(h.routers), &p.dst, &p.src, nhTCP, rst[:], nil, l, out); v != Replied {
		return v
	}
	s.sent(out, first, h, len(h.routers), true)
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("tx tcp6 rst [%v]:%d > [%v]:%d", netip.AddrFrom16(p.dst), binary.BigEndian.Uint16(seg[2:4]),
			netip.AddrFrom16(p.src), binary.BigEndian.Uint16(seg[0:2]))
	}
	return Reset
}
