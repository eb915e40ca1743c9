package stack

import "time"

// ReassemblyConfig bounds IPv4 reassembly (RFC 791, RFC 815). Memory is at
// most MaxDatagrams × 64 KiB, allocated as needed and then reused.
type ReassemblyConfig struct {
	// Timeout drops a datagram whose fragments have not all arrived.
	// Default 30s, as Linux's ipfrag_time.
	Timeout time.Duration
	// MaxDatagrams is how many datagrams may be in reassembly at once.
	// When full, the oldest is dropped for a new one. Default 64 (4 MiB).
	MaxDatagrams int
	// PerSource is how many of those one source may hold; its further
	// fragments are dropped until one completes or times out. Default 16.
	PerSource int
}

const maxFragPayload = MaxIPv4Packet - ipv4HeaderLen

// fragEntry is one datagram in reassembly.
type fragEntry struct {
	src, dst uint32
	id       uint16
	proto    uint8
	tos      uint8
	created  time.Time
	total    int // payload length, known once the last fragment is in; -1 before
	got      int // payload bytes received
	maxEnd   int
	blocks   [(maxFragPayload+7)/8/64 + 1]uint64 // received 8-byte blocks
	buf      []byte
}

func (e *fragEntry) payload() []byte { return e.buf[:e.total] }

type reassembler struct {
	cfg     ReassemblyConfig
	entries []*fragEntry // in reassembly, oldest first
	spare   []*fragEntry // reusable
}

func (r *reassembler) init(cfg ReassemblyConfig) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxDatagrams <= 0 {
		cfg.MaxDatagrams = 64
	}
	if cfg.PerSource <= 0 {
		cfg.PerSource = 16
	}
	r.cfg = cfg
	r.entries = make([]*fragEntry, 0, cfg.MaxDatagrams)
}

// add stores a fragment. It returns the entry when its datagram is complete
// (the caller processes e.payload() and then calls release), or nil and
// the verdict for the fragment.
func (r *reassembler) add(s *Stack, src, dst uint32, id uint16, proto, tos uint8, off int, more bool, data []byte) (*fragEntry, Verdict) {
	end := off + len(data)
	// RFC 791: every fragment but the last carries a multiple of 8 bytes;
	// nothing may reach past the largest datagram.
	if more && (len(data) == 0 || len(data)%8 != 0) || end > maxFragPayload {
		return nil, BadFragment
	}
	now := s.now()
	r.expire(s, now)
	e := r.find(src, dst, id, proto)
	if e == nil {
		n := 0
		for _, x := range r.entries {
			if x.src == src {
				n++
			}
		}
		if n >= r.cfg.PerSource {
			return nil, FragmentLimit
		}
		if len(r.entries) == r.cfg.MaxDatagrams {
			s.ctr.events[evFragEvicted].Add(1)
			r.release(r.entries[0])
		}
		e = r.alloc()
		e.src, e.dst, e.id, e.proto, e.created = src, dst, id, proto, now
		r.entries = append(r.entries, e)
	}
	if off == 0 {
		// The first fragment's header is the datagram's (RFC 791).
		e.tos = tos
	}
	switch {
	case e.total >= 0 && end > e.total,
		!more && e.total >= 0 && end != e.total,
		!more && e.maxEnd > end:
		r.release(e)
		return nil, BadFragment
	}
	// Overlapping or duplicate data drops the whole datagram: RFC 5722's
	// rule for IPv6, and what Linux does for IPv4 too.
	first, last := off/8, (end+7)/8
	for b := first; b < last; b++ {
		if e.blocks[b/64]&(1<<(b%64)) != 0 {
			r.release(e)
			return nil, FragmentOverlap
		}
	}
	for b := first; b < last; b++ {
		e.blocks[b/64] |= 1 << (b % 64)
	}
	copy(e.buf[off:end], data)
	e.got += len(data)
	e.maxEnd = max(e.maxEnd, end)
	if !more {
		e.total = end
	}
	if e.total >= 0 && e.got == e.total {
		return e, Replied
	}
	return nil, FragmentQueued
}

func (r *reassembler) find(src, dst uint32, id uint16, proto uint8) *fragEntry {
	// RFC 791: fragments belong together when source, destination, protocol
	// and identification match.
	for _, e := range r.entries {
		if e.id == id && e.src == src && e.dst == dst && e.proto == proto {
			return e
		}
	}
	return nil
}

// expire drops datagrams older than the timeout.
func (r *reassembler) expire(s *Stack, now time.Time) {
	for len(r.entries) > 0 && now.Sub(r.entries[0].created) > r.cfg.Timeout {
		s.ctr.events[evFragTimeout].Add(1)
		r.release(r.entries[0])
	}
}

func (r *reassembler) alloc() *fragEntry {
	var e *fragEntry
	if n := len(r.spare); n > 0 {
		e = r.spare[n-1]
		r.spare = r.spare[:n-1]
	} else {
		e = &fragEntry{buf: make([]byte, maxFragPayload)}
	}
	e.total, e.got, e.maxEnd = -1, 0, 0
	e.blocks = [len(e.blocks)]uint64{}
	return e
}

// release removes e from reassembly and keeps it for reuse.
func (r *reassembler) release(e *fragEntry) {
	for i, x := range r.entries {
		if x == e {
			r.entries = append(r.entries[:i], r.entries[i+1:]...)
			r.spare = append(r.spare, e)
			return
		}
	}
}
