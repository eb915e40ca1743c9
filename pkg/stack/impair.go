package stack

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"time"
)

// MaxImpairDelay bounds an Impairment's Delay plus Jitter, so that the sum
// along a path of up to 256 elements cannot overflow a time.Duration.
const MaxImpairDelay = time.Hour

// impairer applies one Impairment with its own random stream.
//
// The stream is a PCG (math/rand/v2) held by value: a draw is a
// multiply-add and a few shifts, with no allocation and no interface call.
// Draws are made only for the impairment's non-zero parts, in a fixed
// order per reply (loss, delay, duplicate), so the same seed and the same
// packets give the same fates.
type impairer struct {
	on bool // the impairment does something: the only check a clean path makes
	m  Impairment
	// lossAt and dupAt are Loss and Duplicate scaled to 2^53: a draw of
	// 53 random bits below them is a loss (a duplicate).
	lossAt, dupAt uint64
	rng           rand.PCG
}

// init sets up the impairer for m, its randomness seeded from seed and
// stream (distinct for every host entry and router).
func (p *impairer) init(m Impairment, seed, stream uint64) error {
	// !(x >= 0 && x <= 1) also rejects NaN.
	if !(m.Loss >= 0 && m.Loss <= 1) {
		return fmt.Errorf("impairment loss %v out of range: give a fraction from 0 to 1 (0.05 for 5%%)", m.Loss)
	}
	if !(m.Duplicate >= 0 && m.Duplicate <= 1) {
		return fmt.Errorf("impairment duplicate %v out of range: give a fraction from 0 to 1 (0.01 for 1%%)", m.Duplicate)
	}
	if m.Delay < 0 {
		return fmt.Errorf("impairment delay %v is negative: give 0 or more", m.Delay)
	}
	if m.Jitter < 0 {
		return fmt.Errorf("impairment jitter %v is negative: give 0 or more", m.Jitter)
	}
	if m.Delay > MaxImpairDelay || m.Jitter > MaxImpairDelay-m.Delay {
		return fmt.Errorf("impairment delay %v plus jitter %v exceeds %v: give less", m.Delay, m.Jitter, MaxImpairDelay)
	}
	*p = impairer{on: !m.IsZero(), m: m, lossAt: scale53(m.Loss), dupAt: scale53(m.Duplicate)}
	// PCG's two words are its 128-bit state, not independent streams:
	// states that differ in a few low bits stay correlated. Hash both
	// through splitmix64 so that neighbouring streams (host i, router
	// k) and neighbouring seeds start far apart.
	p.rng.Seed(mix64(seed^mix64(stream)), mix64(mix64(seed)^stream))
	return nil
}

// scale53 maps a fraction in [0,1] onto [0, 2^53].
func scale53(f float64) uint64 { return uint64(math.Ldexp(f, 53)) }

// mix64 is splitmix64's finaliser (Steele, Lea, Flood 2014).
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// chance draws 53 random bits and reports whether they fall below at
// (a fraction scaled by scale53): true with probability at/2^53.
func (p *impairer) chance(at uint64) bool { return p.rng.Uint64()>>11 < at }

// delay draws this element's delay: Delay plus a uniform amount in
// [-Jitter, +Jitter], never below zero.
func (p *impairer) delay() time.Duration {
	d := p.m.Delay
	if j := p.m.Jitter; j > 0 {
		d += time.Duration(p.below(2*uint64(j)+1)) - j
	}
	return max(d, 0)
}

// below returns a uniform random integer in [0, n), n > 0, by Lemire's
// multiply-and-reject method (no modulo bias).
func (p *impairer) below(n uint64) uint64 {
	hi, lo := bits.Mul64(p.rng.Uint64(), n)
	if lo < n {
		for thresh := -n % n; lo < thresh; {
			hi, lo = bits.Mul64(p.rng.Uint64(), n)
		}
	}
	return hi
}

// sent records that out[first:] is one reply (all the fragments of one
// datagram) of e's hosts or routers, and applies the impairments of its
// path: those of e.routers[:routers] and, when fromHost, e's own.
func (s *Stack) sent(out *Out, first int, e *hostEntry, routers int, fromHost bool) {
	e.replies.Add(1)
	if e.impaired {
		s.impairPath(out, first, e, routers, fromHost)
	}
}

// impairPath takes the reply at out[first:] along its path: from the host
// (when fromHost) through e.routers[routers-1] down to e.routers[0], the
// router nearest the kernel. At every element each copy of the reply still
// alive may be lost, gains that element's delay, and may be duplicated:
// the duplicate takes the delay gathered so far plus its own draw of this
// element's delay, and goes on along the rest of the path like the
// original. Copies sit one after another in out, k packets each; all the
// packets of a copy share its fate and its delay.
func (s *Stack) impairPath(out *Out, first int, e *hostEntry, routers int, fromHost bool) {
	k := out.Len() - first
	if k <= 0 {
		return
	}
	for el := -1; el < routers; el++ {
		var p *impairer
		if el < 0 {
			if !fromHost {
				continue
			}
			p = &e.imp
		} else {
			// Walk the routers from the host's side towards the kernel.
			p = &e.routers[routers-1-el].imp
		}
		if !p.on {
			continue
		}
		copies := (out.Len() - first) / k
		for c := 0; c < copies; {
			at := first + c*k
			if p.lossAt != 0 && p.chance(p.lossAt) {
				out.remove(at, k)
				s.ctr.events[evImpairLost].Add(uint64(k))
				copies--
				continue // the next copy has moved into slot c
			}
			gathered := out.delays[at]
			if p.m.Delay != 0 || p.m.Jitter != 0 {
				out.setDelay(at, k, gathered+p.delay())
			}
			if p.dupAt != 0 && p.chance(p.dupAt) {
				// Appended after the copies this element walks: it has
				// had this element already.
				if dup := out.Len(); out.duplicate(at, k) {
					if p.m.Delay != 0 || p.m.Jitter != 0 {
						out.setDelay(dup, k, gathered+p.delay())
					}
					s.ctr.events[evImpairDuplicated].Add(uint64(k))
				} else {
					s.ctr.events[evImpairDupNoRoom].Add(uint64(k))
				}
			}
			c++
		}
		if out.Len() == first {
			return
		}
	}
	for i := first; i < out.Len(); i += k {
		if out.delays[i] > 0 {
			s.ctr.events[evImpairDelayed].Add(uint64(k))
		}
	}
}
