package relay

import (
	"testing"
	"time"
)

// TestAllocs guards the hot path: a batch Write and the Reads that receive
// it allocate nothing, on every transport.
func TestAllocs(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c, s, _ := pair(t, v, config(t, v, 1500), config(t, v, 1500))
			const batch = 16
			wbufs := fill(bufsOf(batch, 1400), 1)
			rbufs, sizes := bufsOf(batch, 1500), make([]int, batch)
			roundTrip := func() {
				if n, err := c.Write(wbufs, off); n != batch || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				for got := 0; got < batch; {
					n, err := s.Read(rbufs[:batch-got], sizes, off)
					if err != nil {
						t.Fatalf("Read: %v", err)
					}
					got += n
				}
			}
			roundTrip() // warm up: buffers sized on first use
			if allocs := testing.AllocsPerRun(200, roundTrip); allocs != 0 {
				t.Errorf("Write+Read of %d frames: %v allocs, want 0", batch, allocs)
			}
		})
	}
}

// benchmarkSession measures one direction in lock step: a batch written,
// then read in full (so UDP on loopback never overflows the socket buffer).
func benchmarkSession(b *testing.B, v variant, size, batch int) {
	c, s, _ := pair(b, v, config(b, v, 1500), config(b, v, 1500))
	wbufs := fill(bufsOf(batch, size), 1)
	rbufs, sizes := bufsOf(batch, 1500), make([]int, batch)
	b.ReportAllocs()
	b.SetBytes(int64(size * batch))
	deadline := time.Now().Add(time.Minute)
	for b.Loop() {
		if n, err := c.Write(wbufs, off); n != batch || err != nil {
			b.Fatalf("Write = %d, %v", n, err)
		}
		for got := 0; got < batch; {
			n, err := s.Read(rbufs[:batch-got], sizes, off)
			if err != nil {
				b.Fatalf("Read: %v", err)
			}
			got += n
		}
		if time.Now().After(deadline) {
			b.Fatal("benchmark ran over a minute")
		}
	}
}

func BenchmarkSession(b *testing.B) {
	for _, v := range variants {
		b.Run(v.name+"/1400x32", func(b *testing.B) { benchmarkSession(b, v, 1400, 32) })
		b.Run(v.name+"/64x32", func(b *testing.B) { benchmarkSession(b, v, 64, 32) })
	}
}
