package stack

import (
	"encoding/binary"
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

const (
	arpLen       = 28 // Ethernet/IPv4 ARP packet
	arpRequest   = 1
	arpReply     = 2
	arpHTEther   = 1
	arpFrameSize = ethHeaderLen + arpLen
)

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// handleARP answers ARP requests (RFC 826) and probes (RFC 5227) for owned
// addresses. p is the Ethernet payload.
func (s *Stack) handleARP(p []byte, l *link, out *Out) Verdict {
	// Check the fixed part and the address sizes before any decoder trusts
	// them: gopacket v1.1.19 panicked on a 20-byte frame with hlen=255.
	if len(p) < 8 {
		return Truncated
	}
	if binary.BigEndian.Uint16(p[0:2]) != arpHTEther || binary.BigEndian.Uint16(p[2:4]) != uint16(layers.EthernetTypeIPv4) ||
		p[4] != 6 || p[5] != 4 {
		return BadARP
	}
	if len(p) < arpLen {
		return Truncated
	}
	a := &s.arp
	if err := a.DecodeFromBytes(p, gopacket.NilDecodeFeedback); err != nil {
		return Truncated
	}
	if a.Operation != arpRequest {
		// RFC 826: only requests are answered. Replies carry nothing we
		// need: echo replies go back to the frame's source MAC.
		return IgnoredARP
	}
	sha := [6]byte(a.SourceHwAddress)
	spa, tpa := be32(a.SourceProtAddress), be32(a.DstProtAddress)
	if sha[0]&1 != 0 {
		return BadSource
	}
	e, ok := s.addrs.lookup4(tpa)
	if !ok || !l.accepts(s.mac4(e, tpa)) {
		return NotForUs
	}
	h := &s.hosts[e]
	h.rx.Add(1)
	// RFC 5227 §2.1.1: a probe has sender IP 0.0.0.0; the owner defends
	// its address with a reply. Linux addresses that reply to the prober's
	// MAC with target IP 0.0.0.0, and so do we.
	if spa != 0 && (!unicast(spa) || spa>>24 == 127 || s.addrs.isBroadcast(spa)) {
		return BadSource
	}
	b := out.next()
	if b == nil {
		return ReplyTooLarge
	}
	if e := s.log.Debug(); e.Enabled() {
		e.Msgf("rx arp who-has %v tell %v (%v)", u32Addr(tpa), u32Addr(spa), net.HardwareAddr(a.SourceHwAddress))
	}
	// RFC 826: swap sender and target, put our MAC in the sender hardware
	// field, set the opcode to reply, send it to the requester.
	s.putARP(b, &sha, &l.self, arpReply, tpa, &sha, spa)
	out.commit(arpFrameSize)
	s.ctr.events[evTxPackets].Add(1)
	h.replies.Add(1)
	if e := s.log.Debug(); e.Enabled() {
		self := l.self
		e.Msgf("tx arp reply %v is-at %v", u32Addr(tpa), net.HardwareAddr(self[:]))
	}
	return Replied
}

// putARP writes an Ethernet frame with an ARP packet from the host to b.
func (s *Stack) putARP(b []byte, ethDst, sha *[6]byte, op uint16, spa uint32, tha *[6]byte, tpa uint32) {
	_ = b[arpFrameSize-1]
	putEthernet(b, &link{src: *ethDst, self: *sha}, layers.EthernetTypeARP)
	p := b[ethHeaderLen:arpFrameSize]
	binary.BigEndian.PutUint16(p[0:2], arpHTEther)
	binary.BigEndian.PutUint16(p[2:4], uint16(layers.EthernetTypeIPv4))
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], op)
	copy(p[8:14], sha[:])
	binary.BigEndian.PutUint32(p[14:18], spa)
	copy(p[18:24], tha[:])
	binary.BigEndian.PutUint32(p[24:28], tpa)
}

// Announce appends gratuitous ARP announcements (RFC 5227 §2.3: a
// broadcast request with sender and target IP both the announced address)
// for the owned IPv4 addresses and unsolicited neighbour advertisements
// (RFC 4861 §7.2.6) for the IPv6 ones, starting at the from-th, until out
// is full. It returns the index to continue from, and done when all were
// appended. On TUN there is nothing to announce.
func (s *Stack) Announce(out *Out, from int) (next int, done bool) {
	if !s.ethernet {
		return from, true
	}
	var zero [6]byte
	i := 0
	more := func() bool {
		if i < from {
			i++
			return false
		}
		return true
	}
	full := false
	s.addrs.all4(func(a uint32, e int32) bool {
		if !more() {
			return true
		}
		b := out.next()
		if b == nil {
			full = true
			return false
		}
		mac := s.mac4(e, a)
		s.putARP(b, &broadcastMAC, &mac, arpRequest, a, &zero, a)
		out.commit(arpFrameSize)
		s.ctr.events[evAnnouncements].Add(1)
		s.ctr.events[evTxPackets].Add(1)
		i++
		return true
	})
	if full {
		return i, false
	}
	s.addrs.all6(func(a *[16]byte, e int32) bool {
		if !more() {
			return true
		}
		if !s.announce6(out, a, e) {
			full = true
			return false
		}
		i++
		return true
	})
	return i, !full
}
