package host

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// delayedOut returns the replies of an impaired host to n echo requests
// with sequence numbers 0..n-1, in one Out.
func delayedOut(t *testing.T, n int, m stack.Impairment) *stack.Out {
	t.Helper()
	kernel, addr := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	st, err := stack.New(stack.Config{Seed: 5, Hosts: []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(addr, 32)}, Impair: m}}})
	if err != nil {
		t.Fatal(err)
	}
	out := stack.NewOut(n, st.PacketSize(), tundev.Headroom)
	for i := range n {
		st.Handle(pt.Echo{Src: kernel, Dst: addr, ID: 1, Seq: uint16(i)}.IPv4(t), out)
	}
	if out.Len() != n {
		t.Fatalf("%d replies, want %d", out.Len(), n)
	}
	return out
}

// TestSchedulerOrder: packets are written in the order of their due
// times, whatever the order they were queued in.
func TestSchedulerOrder(t *testing.T) {
	const n = 50
	out := delayedOut(t, n, stack.Impairment{Delay: 30 * time.Millisecond, Jitter: 25 * time.Millisecond})
	want := make([]uint16, n)
	for i := range want {
		want[i] = uint16(i)
	}
	slices.SortStableFunc(want, func(a, b uint16) int { return int(out.Delay(int(a)) - out.Delay(int(b))) })

	a, b := tundev.NewPipe(tundev.TUN, "pipe0")
	defer b.Close()
	var stats Stats
	var wmu sync.Mutex
	q := newScheduler(a, &wmu, &stats, zerolog.Nop(), nil)
	defer q.stop()
	if rest := q.enqueue(out, time.Now(), nil); len(rest) != 0 {
		t.Fatalf("%d packets not delayed, want 0", len(rest))
	}
	bufs, sizes := make([][]byte, n), make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	var got []uint16
	for len(got) < n {
		k, err := b.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range k {
			got = append(got, binary.BigEndian.Uint16(bufs[i][26:28]))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("written in order %v, want %v", got, want)
	}
}

// TestSchedulerBounds: beyond the queue's bounds delayed packets are
// dropped and counted.
func TestSchedulerBounds(t *testing.T) {
	out := delayedOut(t, 10, stack.Impairment{Delay: time.Minute})
	size := len(out.Packets()[0]) - out.Offset()
	a, b := tundev.NewPipe(tundev.TUN, "pipe0")
	defer b.Close()
	var stats Stats
	var wmu sync.Mutex
	q := newScheduler(a, &wmu, &stats, zerolog.Nop(), nil)
	defer q.stop()
	q.maxPkts, q.maxBytes = 25, 100*size
	for range 3 {
		q.enqueue(out, time.Now(), nil)
	}
	if got := stats.ImpairQueueFull.Load(); got != 5 {
		t.Errorf("impair_queue_full = %d after 30 packets into a 25-packet queue, want 5", got)
	}
	q.maxPkts, q.maxBytes = 100, 27*size
	q.enqueue(out, time.Now(), nil)
	if got := stats.ImpairQueueFull.Load(); got != 5+8 {
		t.Errorf("impair_queue_full = %d after 10 more packets into room for 2, want 13", got)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) != 27 || q.bytes != 27*size {
		t.Errorf("queue holds %d packets, %d bytes; want 27, %d", len(q.queue), q.bytes, 27*size)
	}
}
