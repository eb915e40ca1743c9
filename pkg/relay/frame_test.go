package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// stream encodes frames with their 2-byte length prefix.
func stream(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// splitReader returns its data in two reads, split at k.
type splitReader struct {
	data []byte
	k    int
	pos  int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	if r.pos < r.k {
		end = r.k
	}
	n := copy(p, r.data[r.pos:end])
	r.pos += n
	return n, nil
}

// readAll reads frames until an error, copying each.
func readAll(fr *FrameReader) ([][]byte, error) {
	var out [][]byte
	for {
		f, err := fr.Next()
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(f))
	}
}

func TestFrameReaderSplitAtEveryByte(t *testing.T) {
	frames := [][]byte{pattern(1, 1), pattern(300, 2), pattern(2, 3), pattern(1500, 4), pattern(7, 5)}
	data := stream(frames...)
	for k := 0; k <= len(data); k++ {
		fr := NewFrameReader(&splitReader{data: data, k: k}, 1500)
		got, err := readAll(fr)
		if err != io.EOF {
			t.Fatalf("split at %d: error = %v, want io.EOF", k, err)
		}
		if len(got) != len(frames) {
			t.Fatalf("split at %d: got %d frames, want %d", k, len(got), len(frames))
		}
		for i := range frames {
			if !bytes.Equal(got[i], frames[i]) {
				t.Fatalf("split at %d: frame %d differs", k, i)
			}
		}
	}
}

// countingReader counts Read calls.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) { c.reads++; return c.r.Read(p) }

func TestFrameReader(t *testing.T) {
	many := make([][]byte, 100)
	for i := range many {
		many[i] = pattern(1+i*13, byte(i))
	}
	for _, tt := range []struct {
		name      string
		data      []byte
		max       int
		oneByte   bool
		want      [][]byte
		wantErr   error
		wantReads int // 0: do not check
	}{
		{name: "many frames in one read", data: stream(many...), max: 1500, want: many, wantErr: io.EOF, wantReads: 2},
		{name: "one byte at a time", data: stream(many[:5]...), max: 1500, oneByte: true, want: many[:5], wantErr: io.EOF},
		{name: "max size", data: stream(pattern(65535, 9)), max: 65535, want: [][]byte{pattern(65535, 9)}, wantErr: io.EOF},
		{name: "zero length", data: append(stream(many[0]), 0, 0, 1, 2), max: 1500, want: many[:1], wantErr: ErrBadFrame},
		{name: "too large", data: stream(pattern(1501, 1)), max: 1500, wantErr: ErrFrameTooLarge},
		{name: "too large after good", data: stream(many[1], pattern(1501, 1), many[2]), max: 1500, want: many[1:2], wantErr: ErrFrameTooLarge},
		{name: "huge prefix", data: []byte{0xff, 0xff, 1, 2, 3}, max: 1500, wantErr: ErrFrameTooLarge},
		{name: "truncated frame", data: stream(pattern(100, 1))[:50], max: 1500, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated prefix", data: []byte{0}, max: 1500, wantErr: io.ErrUnexpectedEOF},
		{name: "empty stream", data: nil, max: 1500, wantErr: io.EOF},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tt.data)
			if tt.oneByte {
				r = iotest.OneByteReader(r)
			}
			cr := &countingReader{r: r}
			got, err := readAll(NewFrameReader(cr, tt.max))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Next error = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d frames, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Fatalf("frame %d = %d bytes, want %d bytes %x...", i, len(got[i]), len(tt.want[i]), tt.want[i][:1])
				}
			}
			if tt.wantReads != 0 && cr.reads != tt.wantReads {
				t.Errorf("reads = %d, want %d", cr.reads, tt.wantReads)
			}
		})
	}
}

func TestFrameReaderStickyError(t *testing.T) {
	fr := NewFrameReader(bytes.NewReader(stream(pattern(2000, 1), pattern(10, 2))), 1500)
	for range 3 {
		if f, err := fr.Next(); !errors.Is(err, ErrFrameTooLarge) || f != nil {
			t.Fatalf("Next = %d bytes, %v; want nothing and ErrFrameTooLarge", len(f), err)
		}
	}
	if !fr.Buffered() {
		t.Fatal("Buffered() = false after an error, want true (Next returns without reading)")
	}
}

// loopReader replays its data forever.
type loopReader struct {
	data []byte
	pos  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.pos:])
		n += c
		r.pos = (r.pos + c) % len(r.data)
	}
	return n, nil
}

func TestFrameReaderAllocs(t *testing.T) {
	fr := NewFrameReader(&loopReader{data: stream(pattern(1400, 1), pattern(60, 2), pattern(1, 3))}, 1500)
	allocs := testing.AllocsPerRun(10000, func() {
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("FrameReader.Next allocs = %v, want 0", allocs)
	}
}

func BenchmarkFrameReader(b *testing.B) {
	fr := NewFrameReader(&loopReader{data: stream(pattern(1400, 1))}, 1500)
	b.ReportAllocs()
	b.SetBytes(1400)
	for b.Loop() {
		if _, err := fr.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
