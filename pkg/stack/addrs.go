package stack

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// MaxPrefixHosts is the most hosts one prefix may stand for: a /16 of IPv4
// or a /112 of IPv6.
const MaxPrefixHosts = 1 << 16

// hostEntry is one compiled Host: what every address of it shares.
type hostEntry struct {
	name     string
	mac      [6]byte // when fixedMAC; else each address has MACFor(address)
	fixedMAC bool
	routers  []routerEntry
	pathMTU  int
	imp      impairer
	// impaired: imp or a router's impairer does something, so replies go
	// through impairPath.
	impaired bool
	// rx counts packets for the entry's addresses; replies, the replies
	// and ICMP errors its hosts and routers sent.
	rx, replies atomic.Uint64
}

// routerEntry is one compiled Router.
type routerEntry struct {
	addr4 uint32
	addr6 [16]byte
	mtu   int
	imp   impairer
}

// addrSet maps the owned addresses to their host entries. Lookup is a map
// access or a scan of a few small slices, whatever the number of hosts a
// prefix stands for, and never allocates.
type addrSet struct {
	singles4 []single4 // in configuration order
	map4     map[uint32]int32
	prefix4  []prefix4
	singles6 []single6
	map6     map[[16]byte]int32
	prefix6  []prefix6
	// exclude4 and exclude6 are the kernel side's own addresses: never
	// answered for, even inside an owned prefix.
	exclude4 []uint32
	exclude6 [][16]byte
	// broadcasts are the directed broadcast addresses of the kernel
	// side's prefixes.
	broadcasts []uint32
}

type single4 struct {
	a     uint32
	entry int32
}

type single6 struct {
	a     [16]byte
	entry int32
}

type prefix4 struct {
	base, mask uint32
	entry      int32
}

func (p prefix4) contains(a uint32) bool { return a&p.mask == p.base }

// hostPart reports whether a is a host address of p: not the network or
// broadcast address of a prefix shorter than /31 (RFC 1122 §3.3.6, RFC 3021).
func (p prefix4) hostPart(a uint32) bool {
	if p.mask>>1 == 0x7fffffff { // /31 and /32
		return true
	}
	return a != p.base && a != p.base|^p.mask
}

// prefix6 is an IPv6 prefix of /112 or longer: the first 14 bytes equal,
// the last two masked.
type prefix6 struct {
	hi    [14]byte
	base  uint16
	mask  uint16
	entry int32
}

func (p *prefix6) contains(a *[16]byte) bool {
	return [14]byte(a[:14]) == p.hi && (uint16(a[14])<<8|uint16(a[15]))&p.mask == p.base
}

// hostPart reports whether a is a host address of p: not the Subnet-Router
// anycast address (all-zero host bits, RFC 4291 §2.6.1) of a prefix shorter
// than /127.
func (p *prefix6) hostPart(a *[16]byte) bool {
	if p.mask >= 0xfffe {
		return true
	}
	return uint16(a[14])<<8|uint16(a[15]) != p.base
}

func be32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return be32(b[:])
}

func u32Addr(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

// add records the addresses of entry i.
func (s *addrSet) add(h *Host, i int32) error {
	for _, p := range h.Addrs {
		if !p.IsValid() {
			return fmt.Errorf("invalid address %v", p)
		}
		a := p.Addr()
		if a.Is4In6() {
			return fmt.Errorf("address %v: write IPv4 addresses as a.b.c.d", p)
		}
		if a.Zone() != "" {
			return fmt.Errorf("address %v: zones are not supported", p)
		}
		if p.Masked() != p {
			return fmt.Errorf("prefix %v has host bits set (did you mean %v?)", p, p.Masked())
		}
		if a.Is4() {
			if err := s.add4(p, i); err != nil {
				return err
			}
			continue
		}
		if err := s.add6(p, i); err != nil {
			return err
		}
	}
	return nil
}

func (s *addrSet) add4(p netip.Prefix, i int32) error {
	a := addrU32(p.Addr())
	if p.Bits() < 16 {
		return fmt.Errorf("prefix %v is larger than /16 (%d hosts at most)", p, MaxPrefixHosts)
	}
	if p.IsSingleIP() {
		if !unicast(a) || a>>24 == 127 {
			return fmt.Errorf("address %v is not a unicast address", p.Addr())
		}
		if _, dup := s.lookup4(a); dup {
			return fmt.Errorf("address %v is given twice", p.Addr())
		}
		s.singles4 = append(s.singles4, single4{a, i})
		return nil
	}
	if !unicast(a) || a>>24 == 127 {
		return fmt.Errorf("prefix %v is not a unicast range", p)
	}
	mask := ^uint32(0) << (32 - p.Bits())
	np := prefix4{a, mask, i}
	for _, q := range s.prefix4 {
		if q.contains(a) || np.contains(q.base) {
			return fmt.Errorf("prefix %v overlaps %v", p, netip.PrefixFrom(u32Addr(q.base), 32-trailingZeros32(q.mask)))
		}
	}
	s.prefix4 = append(s.prefix4, np)
	return nil
}

func (s *addrSet) add6(p netip.Prefix, i int32) error {
	b := p.Addr().As16()
	if p.Bits() < 112 {
		return fmt.Errorf("prefix %v is larger than /112 (%d hosts at most)", p, MaxPrefixHosts)
	}
	if !unicast6(&b) {
		return fmt.Errorf("address %v is not a unicast address", p)
	}
	if p.IsSingleIP() {
		if _, dup := s.lookup6(&b); dup {
			return fmt.Errorf("address %v is given twice", p.Addr())
		}
		s.singles6 = append(s.singles6, single6{b, i})
		return nil
	}
	np := prefix6{hi: [14]byte(b[:14]), base: uint16(b[14])<<8 | uint16(b[15]), mask: ^uint16(0) << (128 - p.Bits()), entry: i}
	for _, q := range s.prefix6 {
		var qb [16]byte
		copy(qb[:], q.hi[:])
		qb[14], qb[15] = byte(q.base>>8), byte(q.base)
		if q.contains(&b) || np.contains(&qb) {
			return fmt.Errorf("prefix %v overlaps another prefix", p)
		}
	}
	s.prefix6 = append(s.prefix6, np)
	return nil
}

func trailingZeros32(m uint32) int {
	n := 0
	for m != 0 && m&1 == 0 {
		m >>= 1
		n++
	}
	if m == 0 {
		return 32
	}
	return n
}

// finish builds the maps once every entry is in, and checks that no
// single address is also inside a prefix.
func (s *addrSet) finish(hostSide []netip.Prefix) error {
	for _, h := range hostSide {
		a := h.Addr()
		if a.Is4() {
			s.exclude4 = append(s.exclude4, addrU32(a))
			if h.Bits() < 31 {
				mask := ^uint32(0) << (32 - h.Bits())
				s.broadcasts = append(s.broadcasts, addrU32(a)|^mask)
			}
			continue
		}
		s.exclude6 = append(s.exclude6, a.As16())
	}
	for _, x := range s.singles4 {
		if s.excluded4(x.a) {
			return fmt.Errorf("address %v is also the kernel side's address; pick another", u32Addr(x.a))
		}
		for _, p := range s.prefix4 {
			if p.contains(x.a) {
				return fmt.Errorf("address %v is inside prefix %v given too", u32Addr(x.a), netip.PrefixFrom(u32Addr(p.base), 32-trailingZeros32(p.mask)))
			}
		}
	}
	for _, x := range s.singles6 {
		if s.excluded6(&x.a) {
			return fmt.Errorf("address %v is also the kernel side's address; pick another", netip.AddrFrom16(x.a))
		}
		for i := range s.prefix6 {
			if s.prefix6[i].contains(&x.a) {
				return fmt.Errorf("address %v is inside a prefix given too", netip.AddrFrom16(x.a))
			}
		}
	}
	// Past a handful of singles a map beats a scan.
	if len(s.singles4) > 8 {
		s.map4 = make(map[uint32]int32, len(s.singles4))
		for _, x := range s.singles4 {
			s.map4[x.a] = x.entry
		}
	}
	if len(s.singles6) > 8 {
		s.map6 = make(map[[16]byte]int32, len(s.singles6))
		for _, x := range s.singles6 {
			s.map6[x.a] = x.entry
		}
	}
	return nil
}

func (s *addrSet) excluded4(a uint32) bool {
	for _, x := range s.exclude4 {
		if x == a {
			return true
		}
	}
	return false
}

func (s *addrSet) excluded6(a *[16]byte) bool {
	for i := range s.exclude6 {
		if s.exclude6[i] == *a {
			return true
		}
	}
	return false
}

// lookup4 returns the entry that owns a.
func (s *addrSet) lookup4(a uint32) (int32, bool) {
	if s.map4 != nil {
		if e, ok := s.map4[a]; ok {
			return e, true
		}
	} else {
		for _, x := range s.singles4 {
			if x.a == a {
				return x.entry, true
			}
		}
	}
	for _, p := range s.prefix4 {
		if p.contains(a) {
			if !p.hostPart(a) || s.excluded4(a) {
				return 0, false
			}
			return p.entry, true
		}
	}
	return 0, false
}

// lookup6 returns the entry that owns a.
func (s *addrSet) lookup6(a *[16]byte) (int32, bool) {
	if s.map6 != nil {
		if e, ok := s.map6[*a]; ok {
			return e, true
		}
	} else {
		for i := range s.singles6 {
			if s.singles6[i].a == *a {
				return s.singles6[i].entry, true
			}
		}
	}
	for i := range s.prefix6 {
		p := &s.prefix6[i]
		if p.contains(a) {
			if !p.hostPart(a) || s.excluded6(a) {
				return 0, false
			}
			return p.entry, true
		}
	}
	return 0, false
}

// contains reports whether the host owns the IPv4 address a.
func (s *addrSet) contains(a uint32) bool {
	_, ok := s.lookup4(a)
	return ok
}

// isBroadcast reports whether a is the limited broadcast or the directed
// broadcast address of the kernel side's or an owned prefix.
func (s *addrSet) isBroadcast(a uint32) bool {
	if a == 0xffffffff {
		return true
	}
	for _, b := range s.broadcasts {
		if a == b {
			return true
		}
	}
	for _, p := range s.prefix4 {
		if p.mask>>1 != 0x7fffffff && a == p.base|^p.mask {
			return true
		}
	}
	return false
}

// all4 calls f for every owned IPv4 address in configuration order,
// stopping when f returns false.
func (s *addrSet) all4(f func(a uint32, entry int32) bool) bool {
	for _, x := range s.singles4 {
		if !f(x.a, x.entry) {
			return false
		}
	}
	for _, p := range s.prefix4 {
		for a := p.base; ; a++ {
			if p.hostPart(a) && !s.excluded4(a) && !f(a, p.entry) {
				return false
			}
			if a == p.base|^p.mask {
				break
			}
		}
	}
	return true
}

// all6 calls f for every owned IPv6 address in configuration order,
// stopping when f returns false.
func (s *addrSet) all6(f func(a *[16]byte, entry int32) bool) bool {
	for i := range s.singles6 {
		if !f(&s.singles6[i].a, s.singles6[i].entry) {
			return false
		}
	}
	for i := range s.prefix6 {
		p := &s.prefix6[i]
		var a [16]byte
		copy(a[:], p.hi[:])
		for lo := uint32(p.base); lo <= uint32(p.base|^p.mask); lo++ {
			a[14], a[15] = byte(lo>>8), byte(lo)
			if p.hostPart(&a) && !s.excluded6(&a) && !f(&a, p.entry) {
				return false
			}
		}
	}
	return true
}

// unicast reports whether a can be a host's address: not 0.0.0.0/8 "this
// network", not multicast (224/4), not reserved (240/4) or broadcast.
func unicast(a uint32) bool {
	return a>>24 != 0 && a>>28 < 0xe
}

// unicast6 reports whether a can be a host's address: not unspecified,
// loopback or multicast (RFC 4291 §2.5.2, §2.5.3, §2.7).
func unicast6(a *[16]byte) bool {
	if a[0] == 0xff {
		return false
	}
	var zero [15]byte
	return [15]byte(a[:15]) != zero || a[15] > 1
}
