//go:build linux

package tundev

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// blockTimeout bounds waits for a goroutine that should return promptly. It
// only detects a hang; it is not a speed assertion.
const blockTimeout = 5 * time.Second

// twin is a device under test plus the far end of it.
type twin struct {
	dev       Device
	peerWrite func(t *testing.T, pkt []byte)
	peerRead  func(t *testing.T) []byte
}

var twins = []struct {
	name string
	new  func(t *testing.T) twin
}{
	{"pipe", newPipeTwin},
	{"socketpair", newSocketpairTwin},
}

func newPipeTwin(t *testing.T) twin {
	t.Helper()
	a, b := NewPipe(TUN, "pipe0")
	t.Cleanup(func() { a.Close(); b.Close() })
	return twin{
		dev: a,
		peerWrite: func(t *testing.T, pkt []byte) {
			t.Helper()
			if _, err := b.Write([][]byte{pkt}, 0); err != nil {
				t.Fatalf("peer Write: %v", err)
			}
		},
		peerRead: func(t *testing.T) []byte {
			t.Helper()
			buf := make([]byte, MaxPacket)
			sizes := make([]int, 1)
			if _, err := b.Read([][]byte{buf}, sizes, 0); err != nil {
				t.Fatalf("peer Read: %v", err)
			}
			return buf[:sizes[0]]
		},
	}
}

func newSocketpairTwin(t *testing.T) twin {
	t.Helper()
	dev, peer := newSocketpair(t)
	return twin{
		dev: dev,
		peerWrite: func(t *testing.T, pkt []byte) {
			t.Helper()
			if _, err := peer.Write(pkt); err != nil {
				t.Fatalf("peer Write: %v", err)
			}
		},
		peerRead: func(t *testing.T) []byte {
			t.Helper()
			buf := make([]byte, MaxPacket)
			n, err := peer.Read(buf)
			if err != nil {
				t.Fatalf("peer Read: %v", err)
			}
			return buf[:n]
		},
	}
}

func newSocketpair(t *testing.T) (*FD, *os.File) {
	t.Helper()
	dev, peer, err := NewSocketpair(TUN, "sp0")
	if err != nil {
		t.Fatalf("NewSocketpair: %v", err)
	}
	t.Cleanup(func() { dev.Close(); peer.Close() })
	return dev, peer
}

// packet returns an n-byte packet whose bytes depend on seed.
func packet(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// makeBufs returns n buffers of MaxPacket bytes after offset, filled with
// 0xAA so that writes outside a packet show.
func makeBufs(n, offset int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = bytes.Repeat([]byte{0xAA}, offset+MaxPacket)
	}
	return bufs, make([]int, n)
}

func TestTwinRoundTrip(t *testing.T) {
	sizes := []struct {
		name string
		size int
	}{
		{"tiny", 1},
		{"ipv4 header", 20},
		{"ethernet mtu", 1500},
		{"jumbo", 9000},
		{"max", MaxPacket},
	}
	for _, tw := range twins {
		for _, sz := range sizes {
			t.Run(tw.name+"/"+sz.name, func(t *testing.T) {
				tt := tw.new(t)
				in := packet(sz.size, 1)
				tt.peerWrite(t, in)
				bufs, ns := makeBufs(1, 0)
				n, err := tt.dev.Read(bufs, ns, 0)
				if err != nil || n != 1 {
					t.Fatalf("Read = %d, %v, want 1, nil", n, err)
				}
				if got := bufs[0][:ns[0]]; !bytes.Equal(got, in) {
					t.Fatalf("Read got %d bytes, want the %d written", len(got), len(in))
				}

				out := packet(sz.size, 7)
				if n, err := tt.dev.Write([][]byte{out}, 0); err != nil || n != 1 {
					t.Fatalf("Write = %d, %v, want 1, nil", n, err)
				}
				if got := tt.peerRead(t); !bytes.Equal(got, out) {
					t.Fatalf("peer got %d bytes, want the %d written", len(got), len(out))
				}
			})
		}
	}
}

func TestTwinBatchRead(t *testing.T) {
	tests := []struct {
		name    string
		written int
		bufs    int
		want    []int // packets returned by successive Reads
	}{
		{"all in one read", 5, 8, []int{5}},
		{"exactly full", 4, 4, []int{4}},
		{"more than bufs", 5, 3, []int{3, 2}},
		{"one at a time", 3, 1, []int{1, 1, 1}},
	}
	for _, tw := range twins {
		for _, tc := range tests {
			t.Run(tw.name+"/"+tc.name, func(t *testing.T) {
				tt := tw.new(t)
				var pkts [][]byte
				for i := range tc.written {
					p := packet(100+i, byte(i))
					pkts = append(pkts, p)
					tt.peerWrite(t, p)
				}
				bufs, ns := makeBufs(tc.bufs, 0)
				next := 0
				for i, want := range tc.want {
					n, err := tt.dev.Read(bufs, ns, 0)
					if err != nil || n != want {
						t.Fatalf("Read #%d = %d, %v, want %d, nil", i, n, err, want)
					}
					for j := range n {
						if got := bufs[j][:ns[j]]; !bytes.Equal(got, pkts[next]) {
							t.Fatalf("Read #%d packet %d: got %d bytes, want packet %d (%d bytes)", i, j, len(got), next, len(pkts[next]))
						}
						next++
					}
				}
			})
		}
	}
}

func TestTwinOffset(t *testing.T) {
	for _, tw := range twins {
		t.Run(tw.name, func(t *testing.T) {
			tt := tw.new(t)
			in := packet(60, 3)
			tt.peerWrite(t, in)
			bufs, ns := makeBufs(2, Headroom)
			n, err := tt.dev.Read(bufs, ns, Headroom)
			if err != nil || n != 1 {
				t.Fatalf("Read = %d, %v, want 1, nil", n, err)
			}
			if got := bufs[0][Headroom : Headroom+ns[0]]; !bytes.Equal(got, in) {
				t.Errorf("Read packet at offset %d = %x, want %x", Headroom, got, in)
			}
			if head := bufs[0][:Headroom]; !bytes.Equal(head, bytes.Repeat([]byte{0xAA}, Headroom)) {
				t.Errorf("Read wrote into the headroom: %x", head)
			}

			out := append(bytes.Repeat([]byte{0xEE}, Headroom), packet(60, 9)...)
			if n, err := tt.dev.Write([][]byte{out}, Headroom); err != nil || n != 1 {
				t.Fatalf("Write = %d, %v, want 1, nil", n, err)
			}
			if got := tt.peerRead(t); !bytes.Equal(got, out[Headroom:]) {
				t.Errorf("peer got %x, want %x (the headroom must not be sent)", got, out[Headroom:])
			}
		})
	}
}

func TestTwinCloseUnblocksRead(t *testing.T) {
	for _, tw := range twins {
		t.Run(tw.name, func(t *testing.T) {
			tt := tw.new(t)
			checkCloseUnblocksRead(t, tt.dev)
		})
	}
}

// checkCloseUnblocksRead starts a Read on an idle dev, closes dev, and checks
// that the Read returns an error wrapping ErrClosed.
func checkCloseUnblocksRead(t *testing.T, dev Device) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		bufs, ns := makeBufs(4, 0)
		_, err := dev.Read(bufs, ns, 0)
		done <- err
	}()
	// Give the Read a moment to block; the test is correct either way.
	time.Sleep(20 * time.Millisecond)
	if err := dev.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close = %v, want an error wrapping ErrClosed", err)
		}
	case <-time.After(blockTimeout):
		t.Fatalf("Read still blocked %v after Close", blockTimeout)
	}
}

func TestTwinErrClosed(t *testing.T) {
	for _, tw := range twins {
		t.Run(tw.name, func(t *testing.T) {
			tt := tw.new(t)
			if err := tt.dev.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := tt.dev.Close(); err != nil {
				t.Fatalf("second Close = %v, want nil (idempotent)", err)
			}
			bufs, ns := makeBufs(1, 0)
			if _, err := tt.dev.Read(bufs, ns, 0); !errors.Is(err, ErrClosed) {
				t.Errorf("Read after Close = %v, want an error wrapping ErrClosed", err)
			}
			if _, err := tt.dev.Write([][]byte{packet(10, 0)}, 0); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after Close = %v, want an error wrapping ErrClosed", err)
			}
		})
	}
}

func TestTwinNameMode(t *testing.T) {
	a, b := NewPipe(TAP, "p0")
	defer a.Close()
	defer b.Close()
	dev, peer, err := NewSocketpair(TAP, "s0")
	if err != nil {
		t.Fatalf("NewSocketpair: %v", err)
	}
	defer dev.Close()
	defer peer.Close()
	for _, d := range []Device{a, b, dev} {
		if d.Mode() != TAP {
			t.Errorf("%s: Mode() = %v, want tap", d.Name(), d.Mode())
		}
	}
	if a.Name() != "p0" || dev.Name() != "s0" {
		t.Errorf("names = %q, %q, want p0, s0", a.Name(), dev.Name())
	}
}

func TestPipeBlocksWhenFull(t *testing.T) {
	a, b := NewPipe(TUN, "p0")
	defer b.Close()
	pkt := [][]byte{packet(10, 0)}
	for i := range pipeDepth {
		if _, err := a.Write(pkt, 0); err != nil {
			t.Fatalf("Write #%d: %v", i, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(pkt, 0)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Write to a full pipe returned %v, want it to block", err)
	case <-time.After(20 * time.Millisecond):
	}
	a.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Write after Close = %v, want an error wrapping ErrClosed", err)
		}
	case <-time.After(blockTimeout):
		t.Fatalf("Write still blocked %v after Close", blockTimeout)
	}
}

func TestPipePeerClosed(t *testing.T) {
	a, b := NewPipe(TUN, "p0")
	defer a.Close()
	b.Close()
	if _, err := a.Write([][]byte{packet(10, 0)}, 0); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write to a pipe whose peer is closed = %v, want io.ErrClosedPipe", err)
	}
}

func TestPipeShortBuffer(t *testing.T) {
	a, b := NewPipe(TUN, "p0")
	defer a.Close()
	defer b.Close()
	if _, err := b.Write([][]byte{packet(100, 0)}, 0); err != nil {
		t.Fatalf("Write: %v", err)
	}
	ns := make([]int, 1)
	if _, err := a.Read([][]byte{make([]byte, 50)}, ns, 0); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("Read into a short buffer = %v, want io.ErrShortBuffer", err)
	}
}

func TestSocketpairPeerClosed(t *testing.T) {
	dev, peer := newSocketpair(t)
	peer.Close()
	bufs, ns := makeBufs(1, 0)
	if _, err := dev.Read(bufs, ns, 0); !errors.Is(err, io.EOF) {
		t.Fatalf("Read after the peer closed = %v, want io.EOF", err)
	}
}

// TestSocketpairAllocs guards the zero-allocation promise of FD.Read and
// FD.Write, which share their code with a real TUN/TAP queue.
func TestSocketpairAllocs(t *testing.T) {
	dev, peer := newSocketpair(t)
	in := packet(1400, 1)
	out := [][]byte{append(make([]byte, Headroom), packet(1400, 2)...)}
	bufs, ns := makeBufs(8, Headroom)
	peerBuf := make([]byte, MaxPacket)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := peer.Write(in); err != nil {
			t.Fatalf("peer Write: %v", err)
		}
		if n, err := dev.Read(bufs, ns, Headroom); err != nil || n != 1 {
			t.Fatalf("Read = %d, %v", n, err)
		}
		if _, err := dev.Write(out, Headroom); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if _, err := peer.Read(peerBuf); err != nil {
			t.Fatalf("peer Read: %v", err)
		}
	})
	if allocs != 0 {
		t.Errorf("Read+Write allocated %v times per run, want 0", allocs)
	}
}

func TestPipeAllocs(t *testing.T) {
	a, b := NewPipe(TUN, "p0")
	defer a.Close()
	defer b.Close()
	out := [][]byte{packet(1400, 2)}
	bufs, ns := makeBufs(8, Headroom)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(out, 0); err != nil {
			t.Fatalf("Write: %v", err)
		}
		if n, err := b.Read(bufs, ns, Headroom); err != nil || n != 1 {
			t.Fatalf("Read = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("pipe Write+Read allocated %v times per run, want 0", allocs)
	}
}

func BenchmarkSocketpairReadWrite(b *testing.B) {
	dev, peer, err := NewSocketpair(TUN, "sp0")
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	defer peer.Close()
	in := packet(1400, 1)
	bufs, ns := makeBufs(1, Headroom)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := peer.Write(in); err != nil {
			b.Fatal(err)
		}
		if _, err := dev.Read(bufs, ns, Headroom); err != nil {
			b.Fatal(err)
		}
	}
}
