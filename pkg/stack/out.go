package stack

import "time"

// Out collects the packets one or more Handle calls produce, laid out for
// tundev.Device.Write: packet i is Packets()[i][offset:].
// Its buffers are allocated once by NewOut and reused after Reset.
type Out struct {
	full   [][]byte // full-capacity buffers
	pkts   [][]byte // full[i][:offset+len(packet i)]
	delays []time.Duration
	offset int
}

// NewOut returns an Out holding up to n packets of up to size bytes each,
// every one preceded by offset bytes of headroom.
func NewOut(n, size, offset int) *Out {
	o := &Out{full: make([][]byte, n), pkts: make([][]byte, 0, n), delays: make([]time.Duration, 0, n), offset: offset}
	mem := make([]byte, n*(offset+size))
	for i := range o.full {
		o.full[i] = mem[i*(offset+size) : (i+1)*(offset+size) : (i+1)*(offset+size)]
	}
	return o
}

// Packets returns the packets appended since the last Reset.
func (o *Out) Packets() [][]byte { return o.pkts }

// Len is the number of packets appended since the last Reset.
func (o *Out) Len() int { return len(o.pkts) }

// Free is how many more packets fit.
func (o *Out) Free() int { return len(o.full) - len(o.pkts) }

// Offset is the headroom in front of every packet.
func (o *Out) Offset() int { return o.offset }

// Reset empties o, keeping its buffers.
func (o *Out) Reset() { o.pkts, o.delays = o.pkts[:0], o.delays[:0] }

// Delay is how long packet i must wait before it is written (a simulated
// path's latency); zero means now.
func (o *Out) Delay(i int) time.Duration { return o.delays[i] }

// Delayed reports whether any packet since the last Reset has a delay.
func (o *Out) Delayed() bool {
	for _, d := range o.delays {
		if d != 0 {
			return true
		}
	}
	return false
}

// next returns the buffer for the next packet (without its headroom), or nil
// when o is full.
func (o *Out) next() []byte {
	if len(o.pkts) == len(o.full) {
		return nil
	}
	return o.full[len(o.pkts)][o.offset:]
}

// commit appends the packet of n bytes written into the buffer next returned.
func (o *Out) commit(n int) {
	o.pkts = append(o.pkts, o.full[len(o.pkts)][:o.offset+n])
	o.delays = append(o.delays, 0)
}

// setDelay sets the delay of the n packets from i on to d.
func (o *Out) setDelay(i, n int, d time.Duration) {
	for j := i; j < i+n; j++ {
		o.delays[j] = d
	}
}

// duplicate appends a copy of the n packets from i on, with their delays,
// or returns false when they do not fit.
func (o *Out) duplicate(i, n int) bool {
	if o.Free() < n {
		return false
	}
	for j := i; j < i+n; j++ {
		m := copy(o.next(), o.pkts[j][o.offset:])
		o.commit(m)
		o.delays[len(o.delays)-1] = o.delays[j]
	}
	return true
}

// remove removes the n packets from i on; those after them move up, in
// order. Only buffer headers move: the removed packets' buffers go to the
// end, where next reuses them.
func (o *Out) remove(i, n int) {
	for j := i; j+n < len(o.pkts); j++ {
		o.full[j], o.full[j+n] = o.full[j+n], o.full[j]
		o.pkts[j], o.pkts[j+n] = o.pkts[j+n], o.pkts[j]
		o.delays[j] = o.delays[j+n]
	}
	o.pkts, o.delays = o.pkts[:len(o.pkts)-n], o.delays[:len(o.delays)-n]
}
