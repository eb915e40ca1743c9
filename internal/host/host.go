// Package host runs a stack on a device: it reads packets in batches, hands
// them to the stack and writes the replies back in batches.
package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/pcap"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Batch is how many packets one device read may return.
const Batch = 64

// Stats are the loop's own counters, beside the stack's.
type Stats struct {
	RxPackets atomic.Uint64
	TxErrors  atomic.Uint64
	// ImpairQueueFull counts delayed packets dropped because
	// MaxDelayedPackets or MaxDelayedBytes were waiting already.
	ImpairQueueFull atomic.Uint64
}

// Counters returns the loop's counters, named like the stack's.
func (s *Stats) Counters() []stack.Counter {
	return []stack.Counter{{Name: "rx_packets", Value: s.RxPackets.Load()}, {Name: "tx_errors", Value: s.TxErrors.Load()},
		{Name: "impair_queue_full", Value: s.ImpairQueueFull.Load()}}
}

// Config configures Run.
type Config struct {
	// Stats receives the loop's counters. Nil: a private Stats.
	Stats *Stats
	// Log receives debug lines about failed writes.
	Log zerolog.Logger
	// Capture, if set, records every packet read from the device and every
	// packet written to it (a delayed one when it is written).
	Capture *pcap.Writer
}

// Run serves st on dev until ctx is done or the device fails. It closes dev
// when ctx is done, which unblocks a pending read. A nil error means ctx
// ended the loop.
//
// Replies the stack delays (simulated path latency) are copied to a
// scheduler that writes each at its due time from its own goroutine; the
// loop goes on reading and answering meanwhile. Run stops the scheduler
// before it returns, dropping the replies still waiting.
func Run(ctx context.Context, dev tundev.Device, st *stack.Stack, cfg Config) error {
	stats, log, capture := cfg.Stats, cfg.Log, cfg.Capture
	if stats == nil {
		stats = new(Stats)
	}
	stop := context.AfterFunc(ctx, func() { dev.Close() })
	defer stop()

	bufs := make([][]byte, Batch)
	mem := make([]byte, Batch*(tundev.Headroom+tundev.MaxPacket))
	for i := range bufs {
		bufs[i] = mem[i*(tundev.Headroom+tundev.MaxPacket) : (i+1)*(tundev.Headroom+tundev.MaxPacket)]
	}
	sizes := make([]int, Batch)
	// Room for a batch of replies and, after any one reply, for a
	// duplicate of it (an impairment), however many fragments it has.
	room := 2 * st.MaxOut()
	out := stack.NewOut(Batch+room, st.PacketSize(), tundev.Headroom)

	// The scheduler starts with the first delayed reply. From then on
	// device writes take wmu (see scheduler).
	var (
		sched     *scheduler
		wmu       sync.Mutex
		immediate = make([][]byte, 0, Batch+room)
	)
	defer func() {
		if sched != nil {
			sched.stop()
		}
	}()

	flush := func() error {
		if out.Len() == 0 {
			return nil
		}
		pkts := out.Packets()
		if out.Delayed() {
			if sched == nil {
				sched = newScheduler(dev, &wmu, stats, log, capture)
			}
			immediate = sched.enqueue(out, time.Now(), immediate[:0])
			pkts = immediate
		}
		var mu *sync.Mutex // no lock before the scheduler exists
		if sched != nil {
			mu = &wmu
		}
		err := write(dev, capture, mu, pkts)
		out.Reset()
		if err != nil {
			if errors.Is(err, tundev.ErrClosed) {
				return err
			}
			// The kernel refuses writes while the link is down (EIO);
			// that is the user's to fix, not a reason to stop answering.
			stats.TxErrors.Add(1)
			if e := log.Debug(); e.Enabled() {
				e.Err(err).Msg("tx failed")
			}
		}
		return nil
	}
	ended := func(err error) error {
		if ctx.Err() != nil && errors.Is(err, tundev.ErrClosed) {
			return nil
		}
		return fmt.Errorf("device %s: %w", dev.Name(), err)
	}

	// RFC 5227 §2.3: announce every address once at start.
	for i, done := 0, false; !done; {
		i, done = st.Announce(out, i)
		if err := flush(); err != nil {
			return ended(err)
		}
	}

	for {
		n, err := dev.Read(bufs, sizes, tundev.Headroom)
		if err != nil {
			return ended(err)
		}
		stats.RxPackets.Add(uint64(n))
		for i := range n {
			if out.Free() < room {
				if err := flush(); err != nil {
					return ended(err)
				}
			}
			pkt := bufs[i][tundev.Headroom : tundev.Headroom+sizes[i]]
			if capture != nil {
				capture.Write(pkt)
			}
			st.Handle(pkt, out)
		}
		if err := flush(); err != nil {
			return ended(err)
		}
	}
}

// write records pkts (each after tundev.Headroom) in the capture, if any,
// and writes them to the device. mu, when not nil, is held for both, so
// that two writers keep the capture in the device's order.
func write(dev tundev.Device, capture *pcap.Writer, mu *sync.Mutex, pkts [][]byte) error {
	if len(pkts) == 0 {
		return nil
	}
	if mu != nil {
		mu.Lock()
		defer mu.Unlock()
	}
	if capture != nil {
		for _, p := range pkts {
			capture.Write(p[tundev.Headroom:])
		}
	}
	_, err := dev.Write(pkts, tundev.Headroom)
	return err
}
