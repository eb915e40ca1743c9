// Package stack is the virtual host: bytes in, reply bytes out.
//
// It answers ICMPv4 echo (RFC 792) for the addresses it owns, on raw IP
// (TUN) and inside Ethernet (TAP), answers ARP (RFC 826, RFC 5227) on
// Ethernet, reassembles fragmented requests and fragments replies to the
// MTU. It has no file descriptors, no goroutines, and no clock but the one
// it is given: everything in it can be tested without privileges.
package stack

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/rs/zerolog"
)

const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	// MinMTU is the smallest MTU an IPv4 link may have (RFC 791).
	MinMTU = 68
	// MaxIPv4Packet is the largest IPv4 datagram, header included.
	MaxIPv4Packet = 65535
	// defaultTTL is the TTL of every packet the host sends (RFC 1700's 64,
	// as Linux uses).
	defaultTTL = 64
)

// Config describes one virtual host.
type Config struct {
	// Ethernet is true on a TAP device: packets are Ethernet frames, and the
	// host answers ARP. Otherwise packets are raw IPv4 (TUN).
	Ethernet bool
	// Addrs are the addresses the host owns: single addresses (/32) or
	// prefixes meaning every host address in them.
	Addrs []netip.Prefix
	// HostSide are the kernel side's addresses with their prefix lengths
	// (10.0.0.1/24): never answered for even inside an owned prefix, and the
	// prefix's broadcast address is not a valid source.
	HostSide []netip.Prefix
	// MAC is the host's hardware address on Ethernet. Default: MACFor the
	// first address.
	MAC net.HardwareAddr
	// MTU is the link MTU; replies larger than it are fragmented.
	// Default 1500.
	MTU int
	// Now is the clock used for reassembly timeouts. Default time.Now.
	Now func() time.Time
	// Log receives debug lines per packet. Default: no logging.
	Log *zerolog.Logger
	// Reassembly bounds; zero values take the defaults described at
	// ReassemblyConfig.
	Reassembly ReassemblyConfig
}

// Stack is one virtual host. Handle must be called from one goroutine at a
// time; Counters may be read concurrently.
type Stack struct {
	ethernet bool
	addrs    addrSet
	mac      [6]byte
	mtu      int
	now      func() time.Time
	log      zerolog.Logger
	ipID     uint16
	frags    reassembler
	ctr      counters

	// Decoders, preallocated: one Stack is used by one goroutine.
	eth   layers.Ethernet
	arp   layers.ARP
	ip4   layers.IPv4
	icmp4 layers.ICMPv4
}

// MACFor returns the default hardware address of a host that owns a: a
// locally administered unicast address 02:00 followed by a's four bytes,
// so that 10.0.0.2 is 02:00:0a:00:00:02, easy to spot in a capture.
func MACFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
}

// New returns a host for cfg.
func New(cfg Config) (*Stack, error) {
	addrs, err := newAddrSet(cfg.Addrs, cfg.HostSide)
	if err != nil {
		return nil, err
	}
	for _, x := range addrs.exclude {
		for _, a := range addrs.singles {
			if a == x {
				return nil, fmt.Errorf("stack: address %v is also the kernel side's address; pick another", u32Addr(a))
			}
		}
	}
	s := &Stack{ethernet: cfg.Ethernet, addrs: addrs, mtu: cfg.MTU, now: cfg.Now, log: zerolog.Nop()}
	if s.mtu == 0 {
		s.mtu = 1500
	}
	if s.mtu < MinMTU || s.mtu > MaxIPv4Packet {
		return nil, fmt.Errorf("stack: MTU %d out of range %d..%d", s.mtu, MinMTU, MaxIPv4Packet)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.Log != nil {
		s.log = *cfg.Log
	}
	if cfg.Ethernet {
		mac := cfg.MAC
		if mac == nil {
			mac = MACFor(cfg.Addrs[0].Addr())
		}
		if len(mac) != 6 {
			return nil, fmt.Errorf("stack: MAC %v is not a 6-byte Ethernet address", mac)
		}
		if mac[0]&1 != 0 {
			return nil, fmt.Errorf("stack: MAC %v is a multicast address; a host needs a unicast one (e.g. 02:00:00:00:00:01)", mac)
		}
		copy(s.mac[:], mac)
	}
	s.frags.init(cfg.Reassembly)
	return s, nil
}

// MAC returns the host's hardware address (meaningful on Ethernet).
func (s *Stack) MAC() net.HardwareAddr { return net.HardwareAddr(s.mac[:]) }

// MTU returns the link MTU replies are fragmented to.
func (s *Stack) MTU() int { return s.mtu }

// PacketSize is the size of the largest packet or frame Handle appends: the
// MTU plus the Ethernet header on TAP. NewOut's size must be at least this.
func (s *Stack) PacketSize() int {
	if s.ethernet {
		return s.mtu + ethHeaderLen
	}
	return s.mtu
}

// MaxOut is the most packets one Handle call appends: the fragments of the
// largest reply. Callers flush their Out when Free drops below it.
func (s *Stack) MaxOut() int {
	per := (s.mtu - ipv4HeaderLen) &^ 7
	return (MaxIPv4Packet - ipv4HeaderLen + per - 1) / per
}

// Handle processes one packet (TUN) or frame (TAP) and appends any replies
// to out. It keeps no reference to pkt or to out's buffers.
func (s *Stack) Handle(pkt []byte, out *Out) Verdict {
	var v Verdict
	if s.ethernet {
		v = s.handleEthernet(pkt, out)
	} else {
		v = s.handleIP(pkt, nil, out)
	}
	s.ctr.verdicts[v].Add(1)
	if v != Replied {
		if e := s.log.Debug(); e.Enabled() {
			e.Str("verdict", v.String()).Int("len", len(pkt)).Msg("rx no reply")
		}
	}
	return v
}

func (s *Stack) handleEthernet(frame []byte, out *Out) Verdict {
	if len(frame) < ethHeaderLen {
		return Truncated
	}
	eth := &s.eth
	if err := eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil {
		return Truncated
	}
	// A host receives frames for its own MAC and for group addresses
	// (broadcast, multicast); other unicast frames are someone else's.
	if eth.DstMAC[0]&1 == 0 && [6]byte(eth.DstMAC) != s.mac {
		return NotForUs
	}
	// No frame comes from a group address (IEEE 802.3 §3.2.3).
	if eth.SrcMAC[0]&1 != 0 {
		return BadSource
	}
	src := [6]byte(eth.SrcMAC)
	switch eth.EthernetType {
	case layers.EthernetTypeARP:
		return s.handleARP(eth.Payload, out)
	case layers.EthernetTypeIPv4:
		return s.handleIP(eth.Payload, &src, out)
	}
	return Unsupported
}

// handleIP dispatches a raw IP packet. srcMAC is the sender's MAC on
// Ethernet, nil on TUN.
func (s *Stack) handleIP(pkt []byte, srcMAC *[6]byte, out *Out) Verdict {
	if len(pkt) == 0 {
		return Truncated
	}
	switch pkt[0] >> 4 {
	case 4:
		return s.handleIPv4(pkt, srcMAC, out)
	case 6:
		return Unsupported
	}
	return BadVersion
}

// putEthernet writes an Ethernet header to b.
func (s *Stack) putEthernet(b []byte, dst *[6]byte, typ layers.EthernetType) {
	copy(b[0:6], dst[:])
	copy(b[6:12], s.mac[:])
	binary.BigEndian.PutUint16(b[12:14], uint16(typ))
}
