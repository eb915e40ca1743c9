package host_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/host"
	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/internal/pcap"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

var otherAddr = netip.MustParseAddr("10.0.0.3")

// impairedStack returns a TUN stack with host 10.0.0.2 impaired by m and
// host 10.0.0.3 not impaired.
func impairedStack(t *testing.T, seed uint64, m stack.Impairment) *stack.Stack {
	t.Helper()
	s, err := stack.New(stack.Config{Seed: seed, HostSide: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")},
		Hosts: []stack.Host{
			{Name: "impaired", Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Impair: m},
			{Name: "clean", Addrs: []netip.Prefix{netip.PrefixFrom(otherAddr, 32)}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// counter returns the stack's counter named name.
func counter(t *testing.T, st *stack.Stack, name string) uint64 {
	t.Helper()
	for _, c := range st.Counters() {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("no counter %q", name)
	return 0
}

// arrival is a packet the kernel side read, and when.
type arrival struct {
	pkt []byte
	at  time.Time
}

// receive reads dev until it is closed (at the end of the test) and passes
// on what it reads.
func receive(t *testing.T, dev tundev.Device) <-chan arrival {
	t.Helper()
	ch := make(chan arrival, 1024)
	done := make(chan struct{})
	t.Cleanup(func() { dev.Close(); <-done })
	go func() {
		defer close(done)
		bufs, sizes := [][]byte{make([]byte, tundev.MaxPacket)}, []int{0}
		for {
			if _, err := dev.Read(bufs, sizes, 0); err != nil {
				return
			}
			select {
			case ch <- arrival{append([]byte(nil), bufs[0][:sizes[0]]...), time.Now()}:
			default:
				t.Errorf("receive: channel full, packet dropped")
			}
		}
	}()
	return ch
}

// next returns the next arrival, failing after 10s.
func next(t *testing.T, ch <-chan arrival, what string) arrival {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		return arrival{}
	}
}

// ping writes an echo request for dst with seq to dev.
func ping(t *testing.T, dev tundev.Device, dst netip.Addr, seq uint16) {
	t.Helper()
	req := pt.Echo{Src: kernelAddr, Dst: dst, ID: 3, Seq: seq}.IPv4(t)
	if _, err := dev.Write([][]byte{req}, 0); err != nil {
		t.Fatal(err)
	}
}

// replyFrom returns the source and sequence number of an echo reply.
func replyFrom(t *testing.T, b []byte) (netip.Addr, uint16) {
	t.Helper()
	if len(b) < 28 || b[9] != 1 || b[20] != 0 {
		t.Fatalf("not an echo reply: % x", b)
	}
	return netip.AddrFrom4([4]byte(b[12:16])), binary.BigEndian.Uint16(b[26:28])
}

// TestDelayedReply: a reply delayed by 200ms arrives no earlier, and is
// recorded in the capture when it is written.
func TestDelayedReply(t *testing.T) {
	const delay = 200 * time.Millisecond
	a, b := tundev.NewPipe(tundev.TUN, "pipe0")
	st := impairedStack(t, 1, stack.Impairment{Delay: delay})
	path := filepath.Join(t.TempDir(), "c.pcap")
	capture, err := pcap.Create(path, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- host.Run(ctx, a, st, host.Config{Log: zerolog.Nop(), Capture: capture}) }()
	rx := receive(t, b)

	sent := time.Now()
	ping(t, b, hostAddr, 1)
	got := next(t, rx, "delayed reply")
	if src, seq := replyFrom(t, got.pkt); src != hostAddr || seq != 1 {
		t.Errorf("reply from %v seq %d, want %v seq 1", src, seq, hostAddr)
	}
	if d := got.at.Sub(sent); d < delay {
		t.Errorf("reply after %v, want at least %v", d, delay)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if err := capture.Close(); err != nil {
		t.Fatal(err)
	}

	// The capture has the request, then the reply stamped at least the
	// delay later.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var stamps []time.Time
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if len(data) < 20 || layers.IPProtocol(data[9]) != layers.IPProtocolICMPv4 {
			t.Fatalf("captured % x, want ICMPv4", data)
		}
		stamps = append(stamps, ci.Timestamp)
	}
	if len(stamps) != 2 {
		t.Fatalf("captured %d packets, want the request and the reply", len(stamps))
	}
	if d := stamps[1].Sub(stamps[0]); d < delay {
		t.Errorf("capture: reply %v after the request, want at least %v", d, delay)
	}
}

// TestDelayDoesNotBlock: while one host's reply waits 500ms, another
// host's reply goes out at once.
func TestDelayDoesNotBlock(t *testing.T) {
	const delay = 500 * time.Millisecond
	a, b := tundev.NewPipe(tundev.TUN, "pipe0")
	st := impairedStack(t, 1, stack.Impairment{Delay: delay})
	stop := start(t, a, st, nil)
	rx := receive(t, b)

	sent := time.Now()
	ping(t, b, hostAddr, 1)
	ping(t, b, otherAddr, 2)
	first := next(t, rx, "first reply")
	second := next(t, rx, "second reply")
	if src, seq := replyFrom(t, first.pkt); src != otherAddr || seq != 2 {
		t.Errorf("first reply from %v seq %d, want the undelayed host %v seq 2", src, seq, otherAddr)
	}
	if src, seq := replyFrom(t, second.pkt); src != hostAddr || seq != 1 {
		t.Errorf("second reply from %v seq %d, want the delayed host %v seq 1", src, seq, hostAddr)
	}
	if d := second.at.Sub(sent); d < delay {
		t.Errorf("delayed reply after %v, want at least %v", d, delay)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

// answered pings the lossy host 40 times with seed and returns the
// sequence numbers answered.
func answered(t *testing.T, seed uint64) []uint16 {
	t.Helper()
	a, b := tundev.NewPipe(tundev.TUN, "pipe0")
	st := impairedStack(t, seed, stack.Impairment{Loss: 0.5, Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond})
	stop := start(t, a, st, nil)
	rx := receive(t, b)
	for seq := range uint16(40) {
		ping(t, b, hostAddr, seq)
	}
	// Once the clean host has answered a ping sent after them, all 40
	// were handled and the stack knows how many replies it lost.
	ping(t, b, otherAddr, 1000)
	var seqs []uint16
	want := -1
	for want < 0 || len(seqs) < want {
		src, seq := replyFrom(t, next(t, rx, "reply").pkt)
		if src == otherAddr {
			want = 40 - int(counter(t, st, "impair_lost"))
			continue
		}
		seqs = append(seqs, seq)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	slices.Sort(seqs)
	return seqs
}

// TestLossReproducible: with the same seed the same pings are answered,
// run after run; with another seed, others.
func TestLossReproducible(t *testing.T) {
	first, again, other := answered(t, 11), answered(t, 11), answered(t, 12)
	if !slices.Equal(first, again) {
		t.Errorf("seed 11: answered %v, then %v; want the same", first, again)
	}
	if slices.Equal(first, other) {
		t.Errorf("seeds 11 and 12 both answered %v; want different", first)
	}
	if len(first) < 8 || len(first) > 32 {
		t.Errorf("loss 0.5: %d of 40 answered, want about 20", len(first))
	}
}

// TestStopWithPending: Run returns promptly when ctx is cancelled with
// delayed packets waiting, and the scheduler's goroutine ends.
func TestStopWithPending(t *testing.T) {
	a, b := tundev.NewPipe(tundev.TUN, "pipe0")
	st := impairedStack(t, 1, stack.Impairment{Delay: time.Minute})
	var stats host.Stats
	stop := start(t, a, st, &stats)
	rx := receive(t, b)
	const n = 10
	for seq := range uint16(n) {
		ping(t, b, hostAddr, seq)
	}
	// Wait for the loop to have read them all.
	ping(t, b, otherAddr, 1000)
	next(t, rx, "clean reply")
	if got := stats.RxPackets.Load(); got != n+1 {
		t.Fatalf("rx_packets = %d, want %d", got, n+1)
	}
	if !schedulerRunning() {
		t.Fatal("no scheduler goroutine with packets pending")
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	for deadline := time.Now().Add(5 * time.Second); schedulerRunning(); {
		if time.Now().After(deadline) {
			t.Fatal("scheduler goroutine still running 5s after Run returned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case got := <-rx:
		t.Errorf("a pending packet was written after stop: % x", got.pkt)
	default:
	}
}

// schedulerRunning reports whether a scheduler goroutine exists: one
// created by newScheduler (a goroutine not yet started shows only that).
func schedulerRunning() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "created by github.com/vhost-dev/vhost/internal/host.newScheduler")
}
