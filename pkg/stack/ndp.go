package stack

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Neighbour discovery (RFC 4861) sizes, options and flags.
const (
	nsLen       = 24 // ICMPv6 header, reserved word, target address
	naLen       = 32 // ICMPv6 header, flags, target, Target Link-Layer Address option
	ndHopLimit  = 255
	ndOptSLLA   = 1
	ndOptTLLA   = 2
	naSolicited = 0x40
	naOverride  = 0x20
)

var (
	// allNodes is ff02::1, the all-nodes link-local group (RFC 4291 §2.7.1).
	allNodes = [16]byte{0: 0xff, 1: 0x02, 15: 1}
	// allNodesMAC is its Ethernet address (RFC 2464 §7).
	allNodesMAC = [6]byte{0x33, 0x33, 0, 0, 0, 1}
)

// isND reports whether the ICMPv6 type t is a neighbour discovery message:
// router solicitation and advertisement, neighbour solicitation and
// advertisement, redirect (RFC 4861 §4).
func isND(t uint8) bool { return t >= icmp6RouterSolicit && t <= icmp6Redirect }

// solicitedNode is the solicited-node multicast address of a, ff02::1:ff
// and a's last three bytes (RFC 4291 §2.7.1).
func solicitedNode(a *[16]byte) [16]byte {
	return [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]}
}

// handleND handles a neighbour discovery message in an unfragmented packet
// p. Only neighbour solicitations on Ethernet are answered: the hosts are
// not routers, so solicitations for routers, advertisements of routers and
// redirects concern them not, and neighbour advertisements carry nothing
// they need (replies go to the frame's source MAC, as for ARP).
func (s *Stack) handleND(p *ipv6Pkt, l *link, out *Out) Verdict {
	if p.body[0] != icmp6NeighborSolicit {
		return IgnoredND
	}
	if l == nil {
		// On TUN there are no link-layer addresses to resolve.
		return IgnoredND
	}
	if p.atomic {
		// RFC 6980 §5: neighbour discovery in a packet with a Fragment
		// header, even an atomic fragment's, is silently ignored.
		return BadND
	}
	return s.handleNS(p, l, out)
}

// handleNS answers a neighbour solicitation for an owned address with a
// neighbour advertisement (RFC 4861 §7.2.3-§7.2.4), and defends an owned
// address against duplicate address detection (RFC 4862 §5.4.3).
func (s *Stack) handleNS(p *ipv6Pkt, l *link, out *Out) Verdict {
	msg := p.body
	// RFC 4861 §7.1.1: the validity checks of a solicitation, in order. A
	// hop limit of 255 proves it comes from the link.
	if p.hl != ndHopLimit || len(msg) < nsLen {
		return BadND
	}
	if ^fold(sum(msg, pseudoSum6(&p.src, &p.dst, nhICMPv6, len(msg)))) != 0 {
		return BadICMPChecksum
	}
	if msg[1] != 0 || msg[8] == 0xff { // code 0; the target is not multicast
		return BadND
	}
	// Every option has a length above zero and fits; checked here, before
	// gopacket's decoder (which errors with an allocated message).
	for o := msg[nsLen:]; len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || len(o) < int(o[1])*8 {
			return BadND
		}
		// RFC 4861 §4.6.1 and RFC 2464 §8: on Ethernet a link-layer
		// address option is 8 bytes; Linux drops a solicitation whose
		// source option is not.
		if o[0] == ndOptSLLA && o[1] != 1 {
			return BadND
		}
		o = o[int(o[1])*8:]
	}
	icmp, ns := &s.v6.icmp, &s.v6.ns
	if icmp.DecodeFromBytes(msg, gopacket.NilDecodeFeedback) != nil || ns.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback) != nil {
		return BadND // not reached: the lengths were checked
	}
	var slla []byte
	for i := range ns.Options {
		if o := &ns.Options[i]; o.Type == layers.ICMPv6OptSourceAddress {
			slla = o.Data[:6]
		}
	}
	target := [16]byte(ns.TargetAddress)
	dad := p.src == [16]byte{}
	// A solicitation from the unspecified address (duplicate address
	// detection) goes to the solicited-node group and has no source
	// link-layer address option.
	if dad && (p.dst != solicitedNode(&target) || slla != nil) {
		return BadND
	}
	// Nor is an answer sent to loopback or an IPv4-mapped address, which
	// never appear on a link (RFC 4291 §2.5.3, RFC 4038 §5.1).
	if !dad && (!unicast6(&p.src) || v4Mapped(&p.src)) || slla != nil && slla[0]&1 != 0 {
		return BadSource
	}
	e, ok := s.addrs.lookup6(&target)
	if !ok {
		return NotForUs
	}
	// It asks the target's owner: to its solicited-node group, or to the
	// target itself (neighbour unreachability detection).
	if p.dst[0] == 0xff && p.dst != solicitedNode(&target) || p.dst[0] != 0xff && p.dst != target {
		return NotForUs
	}
	mac := s.mac6(e, &target)
	if !l.accepts(mac) {
		return NotForUs
	}
	h := &s.hosts[e]
	if p.dst[0] == 0xff {
		// A unicast solicitation was counted on its way in.
		h.rx.Add(1)
	}
	if ipv6HeaderLen+naLen > s.mtu {
		return ReplyTooLarge // an MTU no IPv6 link has
	}
	b := out.next()
	if b == nil {
		return ReplyTooLarge
	}
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("rx icmp6 neighbor solicitation who-has %v tell %v", netip.AddrFrom16(target), netip.AddrFrom16(p.src))
	}
	// RFC 4861 §7.2.4: the advertisement goes to the solicitation's source,
	// Solicited and Override set, with the target's link-layer address, to
	// the MAC in the source link-layer address option or else the frame's.
	// RFC 4862 §5.4.3 and RFC 4861 §7.2.4: a duplicate address detection
	// probe is answered to all nodes, Solicited clear.
	dst, dstMAC, flags := p.src, l.src, uint8(naSolicited|naOverride)
	if dad {
		dst, dstMAC, flags = allNodes, allNodesMAC, naOverride
	} else if slla != nil {
		dstMAC = [6]byte(slla)
	}
	out.commit(s.putNA(b, &dstMAC, &mac, &target, &dst, flags))
	s.ctr.events[evTxPackets].Add(1)
	h.replies.Add(1)
	if e := s.log.Debug(); e.Enabled() {
		m := mac // a copy, so that mac itself stays off the heap
		e.Msgf("tx icmp6 neighbor advertisement %v is-at %v to %v", netip.AddrFrom16(target), net.HardwareAddr(m[:]), netip.AddrFrom16(dst))
	}
	return Replied
}

// putNA writes to b an Ethernet frame with a neighbour advertisement from
// target (owned, at mac) to dst, and returns its length: hop limit 255,
// the flags given (never Router: the hosts are not routers), and a Target
// Link-Layer Address option (RFC 4861 §4.4).
func (s *Stack) putNA(b []byte, ethDst, mac *[6]byte, target, dst *[16]byte, flags uint8) int {
	o := putEthernet(b, &link{src: *ethDst, self: *mac}, layers.EthernetTypeIPv6)
	putIPv6Header(b[o:], 0, naLen, nhICMPv6, ndHopLimit, target, dst)
	na := b[o+ipv6HeaderLen : o+ipv6HeaderLen+naLen]
	na[0], na[1], na[2], na[3] = icmp6NeighborAdvert, 0, 0, 0
	na[4], na[5], na[6], na[7] = flags, 0, 0, 0
	copy(na[8:24], target[:])
	na[24], na[25] = ndOptTLLA, 1
	copy(na[26:32], mac[:])
	binary.BigEndian.PutUint16(na[2:4], ^fold(sum(na, pseudoSum6(target, dst, nhICMPv6, naLen))))
	return o + ipv6HeaderLen + naLen
}

// announce6 appends an unsolicited neighbour advertisement for a, owned
// by entry e, to all nodes with Override set (RFC 4861 §7.2.6); false when
// out is full.
func (s *Stack) announce6(out *Out, a *[16]byte, e int32) bool {
	if ipv6HeaderLen+naLen > s.mtu {
		return true // an MTU no IPv6 link has: nothing to announce on
	}
	b := out.next()
	if b == nil {
		return false
	}
	mac := s.mac6(e, a)
	out.commit(s.putNA(b, &allNodesMAC, &mac, a, &allNodes, naOverride))
	s.ctr.events[evNDAnnounce].Add(1)
	s.ctr.events[evTxPackets].Add(1)
	return true
}
