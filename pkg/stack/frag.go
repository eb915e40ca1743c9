package stack

import (
	"encoding/binary"
	"time"
)

// ReassemblyConfig bounds reassembly of IPv4 (RFC 791, RFC 815) and IPv6
// (RFC 8200 §4.5) datagrams, which share the memory. Memory is at most
// MaxDatagrams × 64 KiB, allocated as needed and then reused.
type ReassemblyConfig struct {
	// Timeout drops a datagram whose fragments have not all arrived.
	// Default 30s for IPv4, as Linux's ipfrag_time, and 60s for IPv6, as
	// RFC 8200 §4.5 asks; a value given applies to both.
	Timeout time.Duration
	// MaxDatagrams is how many datagrams may be in reassembly at once.
	// When full, the oldest is dropped for a new one. Default 64 (4 MiB).
	MaxDatagrams int
	// PerSource is how many of those one source may hold; its further
	// fragments are dropped until one completes or times out. Default 16.
	PerSource int
}

const (
	maxFragPayload = MaxIPv4Packet - ipv4HeaderLen
	// maxFragBuf is the most data one datagram in reassembly holds: an
	// IPv6 payload, which may be fragmentable from its first byte.
	maxFragBuf = maxIPv6Payload
	// Default timeouts.
	fragTimeout4 = 30 * time.Second
	fragTimeout6 = 60 * time.Second
)

// fragKey says which datagram a fragment belongs to: source, destination,
// protocol and identification for IPv4 (RFC 791); source, destination and
// identification for IPv6 (RFC 8200 §4.5), whose fragments may name
// different next headers.
type fragKey struct {
	src, dst [16]byte // IPv4 addresses in the first four bytes
	id       uint32
	proto    uint8 // IPv4 only
	v6       bool
}

// fragEntry is one datagram in reassembly.
type fragEntry struct {
	key      fragKey
	proto    uint8 // the first fragment's next header (IPv6; IPv4's is in the key)
	tos      uint8 // the first fragment's TOS or traffic class
	deadline time.Time
	total    int // payload length, known once the last fragment is in; -1 before
	got      int // payload bytes received
	maxEnd   int
	blocks   [(maxFragBuf+7)/8/64 + 1]uint64 // received 8-byte blocks
	buf      []byte
}

func (e *fragEntry) payload() []byte { return e.buf[:e.total] }

type reassembler struct {
	cfg                ReassemblyConfig
	timeout4, timeout6 time.Duration
	entries            []*fragEntry // in reassembly, oldest first
	spare              []*fragEntry // reusable
}

func (r *reassembler) init(cfg ReassemblyConfig) {
	r.timeout4, r.timeout6 = fragTimeout4, fragTimeout6
	if cfg.Timeout > 0 {
		r.timeout4, r.timeout6 = cfg.Timeout, cfg.Timeout
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

// add stores an IPv4 fragment. It returns the entry when its datagram is
// complete (the caller processes e.payload() and then calls release), or
// nil and the verdict for the fragment.
func (r *reassembler) add(s *Stack, src, dst uint32, id uint16, proto, tos uint8, off int, more bool, data []byte) (*fragEntry, Verdict) {
	k := fragKey{id: uint32(id), proto: proto}
	binary.BigEndian.PutUint32(k.src[:], src)
	binary.BigEndian.PutUint32(k.dst[:], dst)
	return r.insert(s, &k, proto, tos, off, more, data, maxFragPayload)
}

// add6 stores an IPv6 fragment whose data may reach limit bytes into the
// fragmentable part (RFC 8200 §4.5: the reassembled payload length, less
// the unfragmentable extension headers, is at most 65535). proto is the
// Fragment header's next header and tc the packet's traffic class; only
// the first fragment's are kept.
func (r *reassembler) add6(s *Stack, src, dst *[16]byte, id uint32, proto, tc uint8, off int, more bool, data []byte, limit int) (*fragEntry, Verdict) {
	k := fragKey{src: *src, dst: *dst, id: id, v6: true}
	return r.insert(s, &k, proto, tc, off, more, data, limit)
}

func (r *reassembler) insert(s *Stack, k *fragKey, proto, tos uint8, off int, more bool, data []byte, limit int) (*fragEntry, Verdict) {
	end := off + len(data)
	// RFC 791, RFC 8200 §4.5: every fragment but the last carries a
	// multiple of 8 bytes; nothing may reach past the largest datagram.
	if more && (len(data) == 0 || len(data)%8 != 0) || end > limit {
		return nil, BadFragment
	}
	now := s.now()
	r.expire(s, now)
	e := r.find(k)
	if e == nil {
		n := 0
		for _, x := range r.entries {
			if x.key.src == k.src && x.key.v6 == k.v6 {
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
		e.key = *k
		e.deadline = now.Add(r.timeout4)
		if k.v6 {
			e.deadline = now.Add(r.timeout6)
		}
		r.entries = append(r.entries, e)
	}
	if off == 0 {
		// The first fragment's header is the datagram's (RFC 791, RFC
		// 8200 §4.5: only the offset-zero fragment's next header counts).
		e.tos, e.proto = tos, proto
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

func (r *reassembler) find(k *fragKey) *fragEntry {
	for _, e := range r.entries {
		if e.key == *k {
			return e
		}
	}
	return nil
}

// expire drops datagrams past their deadline. IPv4 and IPv6 may have
// different timeouts, so every entry is looked at; there are few.
func (r *reassembler) expire(s *Stack, now time.Time) {
	for i := 0; i < len(r.entries); {
		if e := r.entries[i]; now.After(e.deadline) {
			s.ctr.events[evFragTimeout].Add(1)
			r.release(e)
			continue
		}
		i++
	}
}

func (r *reassembler) alloc() *fragEntry {
	var e *fragEntry
	if n := len(r.spare); n > 0 {
		e = r.spare[n-1]
		r.spare = r.spare[:n-1]
	} else {
		e = &fragEntry{buf: make([]byte, maxFragBuf)}
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
