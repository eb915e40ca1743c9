package stack

import (
	"fmt"
	"net/netip"
)

// addrSet is the set of IPv4 addresses the host answers for: single
// addresses and prefixes, minus exclusions (the kernel side's own address,
// and the network and broadcast addresses of every prefix shorter than /31).
// Lookup is a scan of a few entries and never allocates.
type addrSet struct {
	singles  []uint32
	prefixes []prefix4
	exclude  []uint32
	// broadcasts are the directed broadcast addresses of the kernel
	// side's prefixes.
	broadcasts []uint32
}

type prefix4 struct {
	base, mask uint32
}

func (p prefix4) contains(a uint32) bool { return a&p.mask == p.base }

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

func newAddrSet(owned, hostSide []netip.Prefix) (addrSet, error) {
	var s addrSet
	if len(owned) == 0 {
		return s, fmt.Errorf("stack: no addresses to answer for (give at least one --addr)")
	}
	for _, p := range owned {
		if !p.Addr().Is4() {
			return s, fmt.Errorf("stack: address %v: only IPv4 is supported", p)
		}
		a := addrU32(p.Addr())
		if p.IsSingleIP() {
			if !unicast(a) {
				return s, fmt.Errorf("stack: address %v is not a unicast address", p.Addr())
			}
			s.singles = append(s.singles, a)
			continue
		}
		mask := ^uint32(0) << (32 - p.Bits())
		base := a & mask
		if a != base {
			return s, fmt.Errorf("stack: prefix %v has host bits set (did you mean %v?)", p, p.Masked())
		}
		s.prefixes = append(s.prefixes, prefix4{base, mask})
		if p.Bits() < 31 {
			// RFC 1122 §3.3.6: the all-zeros and all-ones host numbers are
			// the network's broadcast addresses, not hosts.
			s.exclude = append(s.exclude, base, base|^mask)
		}
	}
	for _, h := range hostSide {
		if !h.Addr().Is4() {
			continue
		}
		s.exclude = append(s.exclude, addrU32(h.Addr()))
		if h.Bits() < 31 {
			mask := ^uint32(0) << (32 - h.Bits())
			s.broadcasts = append(s.broadcasts, addrU32(h.Addr())|^mask)
		}
	}
	return s, nil
}

// contains reports whether the host owns a.
func (s *addrSet) contains(a uint32) bool {
	for _, x := range s.singles {
		if x == a {
			return true
		}
	}
	for _, p := range s.prefixes {
		if p.contains(a) {
			for _, x := range s.exclude {
				if x == a {
					return false
				}
			}
			return true
		}
	}
	return false
}

// isBroadcast reports whether a is the limited broadcast or the directed
// broadcast address of one of the owned prefixes.
func (s *addrSet) isBroadcast(a uint32) bool {
	if a == 0xffffffff {
		return true
	}
	for _, b := range s.broadcasts {
		if a == b {
			return true
		}
	}
	for _, p := range s.prefixes {
		if p.mask != 0xffffffff && p.mask != 0xfffffffe && a == p.base|^p.mask {
			return true
		}
	}
	return false
}

// all calls f for every owned address in order, stopping when f returns false.
func (s *addrSet) all(f func(a uint32) bool) {
	for _, a := range s.singles {
		if !f(a) {
			return
		}
	}
	for _, p := range s.prefixes {
		for a := p.base; ; a++ {
			if s.contains(a) && !f(a) {
				return
			}
			if a == p.base|^p.mask {
				break
			}
		}
	}
}

// unicast reports whether a can be a host's address: not 0.0.0.0/8 "this
// network", not multicast (224/4), not reserved (240/4) or broadcast.
func unicast(a uint32) bool {
	return a>>24 != 0 && a>>28 < 0xe
}
