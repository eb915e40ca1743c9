package host

import (
	"container/heap"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/pcap"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Bounds of the packets waiting for their delay. Beyond them a delayed
// packet is dropped and counted in impair_queue_full: a path that delays
// more than this holds is better lossy than a host out of memory.
const (
	// MaxDelayedPackets is the most packets waiting at once.
	MaxDelayedPackets = 65536
	// MaxDelayedBytes is the most packet bytes waiting at once.
	MaxDelayedBytes = 64 << 20
)

// delayed is one packet waiting for its time, in a buffer with
// tundev.Headroom in front of it.
type delayed struct {
	due time.Time
	seq uint64 // order of arrival: equal due times keep it
	buf []byte // buf[tundev.Headroom:] is the packet
}

// delayHeap is a min-heap of delayed packets by due time, then arrival.
type delayHeap []*delayed

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(*delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
}

// scheduler writes delayed packets to the device at their due times, from
// its own goroutine, so that neither the read loop nor other hosts' replies
// wait for them. One goroutine, one timer armed for the earliest packet.
//
// Writes: tundev.Device does not promise that Write may be called from two
// goroutines (the real FD serialises them, the pipe twin happens to be
// safe). Once a scheduler exists, the read loop and the scheduler take
// wmu around every device write, and around recording it in the capture so
// that the capture's order is the device's. Before the first delayed
// packet there is no scheduler and the read loop writes without a lock.
type scheduler struct {
	dev     tundev.Device
	wmu     *sync.Mutex
	stats   *Stats
	log     zerolog.Logger
	capture *pcap.Writer

	// maxPkts and maxBytes bound the queue: MaxDelayedPackets and
	// MaxDelayedBytes.
	maxPkts, maxBytes int

	mu    sync.Mutex
	queue delayHeap
	bytes int
	seq   uint64

	wake chan struct{} // a packet was queued: re-arm the timer
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the goroutine ends

	pool sync.Pool // *delayed with a buffer
}

func newScheduler(dev tundev.Device, wmu *sync.Mutex, stats *Stats, log zerolog.Logger, capture *pcap.Writer) *scheduler {
	q := &scheduler{dev: dev, wmu: wmu, stats: stats, log: log, capture: capture,
		maxPkts: MaxDelayedPackets, maxBytes: MaxDelayedBytes,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

// enqueue copies the delayed packets of out (those with a non-zero delay),
// due at now plus their delay, and returns the others appended to rest.
func (q *scheduler) enqueue(out *stack.Out, now time.Time, rest [][]byte) [][]byte {
	q.mu.Lock()
	queued := false
	for i, p := range out.Packets() {
		d := out.Delay(i)
		if d <= 0 {
			rest = append(rest, p)
			continue
		}
		pkt := p[out.Offset():]
		if len(q.queue) >= q.maxPkts || q.bytes+len(pkt) > q.maxBytes {
			q.stats.ImpairQueueFull.Add(1)
			continue
		}
		e := q.get(len(pkt))
		copy(e.buf[tundev.Headroom:], pkt)
		e.due, e.seq = now.Add(d), q.seq
		q.seq++
		q.bytes += len(pkt)
		heap.Push(&q.queue, e)
		queued = true
	}
	q.mu.Unlock()
	if queued {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return rest
}

// get returns a delayed whose buffer holds an n-byte packet after the
// headroom.
func (q *scheduler) get(n int) *delayed {
	e, _ := q.pool.Get().(*delayed)
	if e == nil {
		e = new(delayed)
	}
	if cap(e.buf) < tundev.Headroom+n {
		e.buf = make([]byte, tundev.Headroom+max(n, 2048))
	}
	e.buf = e.buf[:tundev.Headroom+n]
	return e
}

// run is the scheduler's goroutine: it writes what is due in batches, then
// sleeps until the next due time, a new packet, or stop.
func (q *scheduler) run() {
	defer close(q.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	due := make([]*delayed, 0, Batch)
	bufs := make([][]byte, 0, Batch)
	for {
		q.mu.Lock()
		now := time.Now()
		for len(q.queue) > 0 && len(due) < Batch && !q.queue[0].due.After(now) {
			e := heap.Pop(&q.queue).(*delayed)
			q.bytes -= len(e.buf) - tundev.Headroom
			due = append(due, e)
		}
		var next time.Time
		if len(q.queue) > 0 {
			next = q.queue[0].due
		}
		q.mu.Unlock()

		if len(due) > 0 {
			for _, e := range due {
				bufs = append(bufs, e.buf)
			}
			q.write(bufs)
			for i, e := range due {
				q.pool.Put(e)
				due[i], bufs[i] = nil, nil
			}
			due, bufs = due[:0], bufs[:0]
			select {
			case <-q.quit:
				return
			default:
			}
			continue
		}
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
		}
		select {
		case <-q.quit:
			return
		case <-timer.C:
		case <-q.wake:
		}
	}
}

// write writes bufs to the device and records them in the capture.
func (q *scheduler) write(bufs [][]byte) {
	if err := write(q.dev, q.capture, q.wmu, bufs); err != nil && !errors.Is(err, tundev.ErrClosed) {
		q.stats.TxErrors.Add(1)
		if e := q.log.Debug(); e.Enabled() {
			e.Err(err).Msg("tx delayed failed")
		}
	}
}

// stop ends the goroutine and waits for it; the packets still waiting are
// dropped.
func (q *scheduler) stop() {
	close(q.quit)
	<-q.done
	q.mu.Lock()
	clear(q.queue)
	q.queue, q.bytes = nil, 0
	q.mu.Unlock()
}
