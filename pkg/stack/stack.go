// Package stack is the virtual host: bytes in, reply bytes out.
//
// It answers ICMPv4 echo (RFC 792) and ICMPv6 echo (RFC 4443) for the
// addresses it owns, on raw IP (TUN) and inside Ethernet (TAP), answers ARP
// (RFC 826, RFC 5227) and neighbour solicitations (RFC 4861) on Ethernet,
// reassembles fragmented requests and fragments replies to the MTU. It has
// no file descriptors, no goroutines, and no clock but the one it is given:
// everything in it can be tested without privileges.
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
	// MaxRouters is the longest chain of routers in front of a host: every
	// router on the way back takes one from the replies' TTL of 64.
	MaxRouters = 63
	// defaultTTL is the TTL of every packet the host sends (RFC 1700's 64,
	// as Linux uses).
	defaultTTL = 64
)

// Config describes the virtual hosts of one device.
type Config struct {
	// Ethernet is true on a TAP device: packets are Ethernet frames, and the
	// hosts answer ARP and neighbour discovery. Otherwise packets are raw
	// IP (TUN).
	Ethernet bool
	// Hosts are the hosts answered for, with their routers, path MTUs and
	// impairments.
	Hosts []Host
	// Addrs is shorthand for one Host per address or prefix, with MAC as
	// its hardware address when MAC is given.
	Addrs []netip.Prefix
	// HostSide are the kernel side's addresses with their prefix lengths
	// (10.0.0.1/24): never answered for even inside an owned prefix, and the
	// prefix's broadcast address is not a valid source.
	HostSide []netip.Prefix
	// MAC is the hardware address on Ethernet of every host from Addrs.
	// Default: each address has its own, MACFor(address).
	MAC net.HardwareAddr
	// MTU is the link MTU; replies larger than it are fragmented.
	// Default 1500.
	MTU int
	// Now is the clock used for reassembly timeouts and the ICMP rate
	// limit. Default time.Now.
	Now func() time.Time
	// Log receives debug lines per packet. Default: no logging.
	Log *zerolog.Logger
	// Reassembly bounds; zero values take the defaults described at
	// ReassemblyConfig.
	Reassembly ReassemblyConfig
	// Seed seeds the impairments' randomness: the same seed and the same
	// packets give the same losses, duplicates and delays.
	Seed uint64
	// ICMPRate limits ICMP error messages; zero values take the defaults.
	ICMPRate ICMPRateLimit
}

// Stack is one device's virtual hosts. Handle must be called from one
// goroutine at a time; Counters may be read concurrently.
type Stack struct {
	ethernet bool
	hosts    []hostEntry
	addrs    addrSet
	mac      [6]byte // of the first address, for MAC()
	mtu      int
	now      func() time.Time
	log      zerolog.Logger
	ipID     uint16
	frags    reassembler
	ctr      counters
	rate     tokenBucket
	rebuilt  [ipv4HeaderLen]byte // the header of a reassembled datagram

	// Decoders, preallocated: one Stack is used by one goroutine.
	eth   layers.Ethernet
	arp   layers.ARP
	ip4   layers.IPv4
	icmp4 layers.ICMPv4
	v6    stack6
}

// MACFor returns the default hardware address of a host that owns a: a
// locally administered unicast address 02:00 followed by a's four bytes,
// so that 10.0.0.2 is 02:00:0a:00:00:02, easy to spot in a capture.
func MACFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x00, b[0], b[1], b[2], b[3]}
}

// MACFor6 returns the default hardware address of a host that owns the
// IPv6 address a: a locally administered unicast address 06, then a byte
// folding the first 12 bytes of a, then a's last four bytes. Within any
// /96, and so within any prefix a Host may give, it is unique.
func MACFor6(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	var fold byte
	for _, x := range b[:12] {
		fold ^= x
	}
	return net.HardwareAddr{0x06, fold, b[12], b[13], b[14], b[15]}
}

// New returns the hosts of cfg.
func New(cfg Config) (*Stack, error) {
	s := &Stack{ethernet: cfg.Ethernet, mtu: cfg.MTU, now: cfg.Now, log: zerolog.Nop()}
	hosts := cfg.Hosts
	for _, p := range cfg.Addrs {
		hosts = append(hosts[:len(hosts):len(hosts)], Host{Addrs: []netip.Prefix{p}, MAC: cfg.MAC})
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("stack: no addresses to answer for (give at least one --addr)")
	}
	s.hosts = make([]hostEntry, len(hosts))
	for i := range hosts {
		if err := s.compileHost(&hosts[i], int32(i), cfg.Seed); err != nil {
			name := hosts[i].Name
			if name == "" {
				name = fmt.Sprint(i + 1)
			}
			return nil, fmt.Errorf("stack: host %s: %w", name, err)
		}
	}
	if err := s.addrs.finish(cfg.HostSide); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
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
	s.mac = s.firstMAC()
	s.frags.init(cfg.Reassembly)
	s.initRate(cfg.ICMPRate)
	return s, nil
}

func (s *Stack) compileHost(h *Host, i int32, seed uint64) error {
	e := &s.hosts[i]
	e.name, e.pathMTU = h.Name, h.PathMTU
	if len(h.Addrs) == 0 {
		return fmt.Errorf("no addresses")
	}
	if e.name == "" {
		e.name = h.Addrs[0].String()
		if h.Addrs[0].IsSingleIP() {
			e.name = h.Addrs[0].Addr().String()
		}
	}
	if err := s.addrs.add(h, i); err != nil {
		return err
	}
	if h.MAC != nil {
		if len(h.MAC) != 6 {
			return fmt.Errorf("MAC %v is not a 6-byte Ethernet address", h.MAC)
		}
		if h.MAC[0]&1 != 0 {
			return fmt.Errorf("MAC %v is a multicast address; a host needs a unicast one (e.g. 02:00:00:00:00:01)", h.MAC)
		}
		e.mac, e.fixedMAC = [6]byte(h.MAC), true
	}
	if h.PathMTU != 0 && (h.PathMTU < MinMTU || h.PathMTU > MaxIPv4Packet) {
		return fmt.Errorf("path MTU %d out of range %d..%d", h.PathMTU, MinMTU, MaxIPv4Packet)
	}
	if len(h.Routers) > MaxRouters {
		return fmt.Errorf("%d routers: at most %d, so that replies keep a TTL above 0", len(h.Routers), MaxRouters)
	}
	e.routers = make([]routerEntry, len(h.Routers))
	for k, r := range h.Routers {
		g4, g6 := GeneratedRouter(k + 1)
		a4, a6 := r.Addr4, r.Addr6
		if !a4.IsValid() {
			a4 = g4
		}
		if !a6.IsValid() {
			a6 = g6
		}
		if !a4.Is4() || !a6.Is6() || a6.Is4In6() {
			return fmt.Errorf("router %d: addresses %v and %v must be IPv4 and IPv6", k+1, r.Addr4, r.Addr6)
		}
		if r.MTU != 0 && (r.MTU < MinMTU || r.MTU > MaxIPv4Packet) {
			return fmt.Errorf("router %d: MTU %d out of range %d..%d", k+1, r.MTU, MinMTU, MaxIPv4Packet)
		}
		re := &e.routers[k]
		re.addr4, re.addr6, re.mtu = addrU32(a4), a6.As16(), r.MTU
		if err := re.imp.init(r.Impair, seed, uint64(i)<<16|uint64(k+1)); err != nil {
			return fmt.Errorf("router %d: %w", k+1, err)
		}
	}
	if err := e.imp.init(h.Impair, seed, uint64(i)<<16); err != nil {
		return err
	}
	e.impaired = e.imp.on
	for k := range e.routers {
		e.impaired = e.impaired || e.routers[k].imp.on
	}
	return nil
}

// firstMAC is the MAC of the first owned address.
func (s *Stack) firstMAC() [6]byte {
	var mac [6]byte
	if !s.addrs.all4(func(a uint32, e int32) bool { mac = s.mac4(e, a); return false }) {
		return mac
	}
	s.addrs.all6(func(a *[16]byte, e int32) bool { mac = s.mac6(e, a); return false })
	return mac
}

// mac4 is the hardware address of the IPv4 address a of entry e.
func (s *Stack) mac4(e int32, a uint32) [6]byte {
	if h := &s.hosts[e]; h.fixedMAC {
		return h.mac
	}
	return [6]byte{0x02, 0x00, byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}
}

// mac6 is the hardware address of the IPv6 address a of entry e.
func (s *Stack) mac6(e int32, a *[16]byte) [6]byte {
	if h := &s.hosts[e]; h.fixedMAC {
		return h.mac
	}
	var fold byte
	for _, x := range a[:12] {
		fold ^= x
	}
	return [6]byte{0x06, fold, a[12], a[13], a[14], a[15]}
}

// MAC returns the hardware address of the first owned address (meaningful
// on Ethernet).
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
// largest reply (an IPv4 datagram or an IPv6 payload of 64 KiB). Callers
// flush their Out when Free drops below it.
func (s *Stack) MaxOut() int {
	per := (s.mtu - ipv4HeaderLen) &^ 7
	return max((MaxIPv4Packet-ipv4HeaderLen+per-1)/per, s.maxOut6())
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

// link is the Ethernet context of a packet on TAP; nil on TUN.
type link struct {
	src  [6]byte // the frame's source: where replies go
	dst  [6]byte // the frame's destination
	self [6]byte // the answering address's MAC: replies come from it
}

// accepts reports whether a frame to l.dst is for the owned address whose
// MAC is mac: frames to group addresses are for everyone, unicast frames
// only for their MAC's owner. On a match, replies come from mac.
func (l *link) accepts(mac [6]byte) bool {
	if l == nil {
		return true
	}
	if l.dst[0]&1 == 0 && l.dst != mac {
		return false
	}
	l.self = mac
	return true
}

func (s *Stack) handleEthernet(frame []byte, out *Out) Verdict {
	if len(frame) < ethHeaderLen {
		return Truncated
	}
	eth := &s.eth
	if err := eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil {
		return Truncated
	}
	// No frame comes from a group address (IEEE 802.3 §3.2.3).
	if eth.SrcMAC[0]&1 != 0 {
		return BadSource
	}
	// Whether a unicast frame is for us depends on the address it asks
	// for: every owned address has its own MAC. link.accepts decides.
	l := link{src: [6]byte(eth.SrcMAC), dst: [6]byte(eth.DstMAC)}
	switch eth.EthernetType {
	case layers.EthernetTypeARP:
		return s.handleARP(eth.Payload, &l, out)
	case layers.EthernetTypeIPv4:
		if len(eth.Payload) > 0 && eth.Payload[0]>>4 != 4 {
			return BadVersion
		}
		return s.handleIP(eth.Payload, &l, out)
	case layers.EthernetTypeIPv6:
		if len(eth.Payload) > 0 && eth.Payload[0]>>4 != 6 {
			return BadVersion
		}
		return s.handleIP(eth.Payload, &l, out)
	}
	return Unsupported
}

// handleIP dispatches a raw IP packet. l is the Ethernet context, nil on
// TUN.
func (s *Stack) handleIP(pkt []byte, l *link, out *Out) Verdict {
	if len(pkt) == 0 {
		return Truncated
	}
	switch pkt[0] >> 4 {
	case 4:
		return s.handleIPv4(pkt, l, out)
	case 6:
		return s.handleIPv6(pkt, l, out)
	}
	return BadVersion
}

// putEthernet writes an Ethernet header from l.self to l.src to b and
// returns its length, or 0 on TUN (l == nil).
func putEthernet(b []byte, l *link, typ layers.EthernetType) int {
	if l == nil {
		return 0
	}
	copy(b[0:6], l.src[:])
	copy(b[6:12], l.self[:])
	binary.BigEndian.PutUint16(b[12:14], uint16(typ))
	return ethHeaderLen
}
