package stack

// impairer applies one Impairment with its own random stream.
type impairer struct {
	m Impairment
}

// init sets up the impairer for m, its randomness seeded from seed and
// stream (distinct for every host entry and router).
func (p *impairer) init(m Impairment, seed, stream uint64) error {
	p.m = m
	return nil
}

// impair applies the impairments of the path to out's packets from first
// on, which are one reply (all the fragments of one datagram): those of
// e.routers[:routers] and, when fromHost, e's own.
func (s *Stack) impair(out *Out, first int, e *hostEntry, routers int, fromHost bool) {
}
