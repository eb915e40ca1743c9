package relay

import (
	"encoding/binary"
	"fmt"
	"io"
)

// LenSize is the size of the big-endian length that precedes every frame on
// a TCP stream, exactly as in the classic simpletun tunnel.
const LenSize = 2

// maxStreamFrame is the largest length a 2-byte prefix can carry.
const maxStreamFrame = 1<<(8*LenSize) - 1

// readBufSize is the FrameReader's buffer: one read system call fills it with
// as many frames as the kernel has queued.
const readBufSize = 256 << 10

// FrameReader splits a stream of length-prefixed frames. It reads in large
// chunks, so a busy stream costs one read call for many frames, and it does
// not allocate once created.
//
// A length above the maximum (ErrFrameTooLarge) or of zero (ErrBadFrame)
// ends the stream: the prefix cannot be trusted, so neither can anything
// after it. Errors are sticky; a FrameReader never delivers a frame after
// an error.
type FrameReader struct {
	r          io.Reader
	buf        []byte
	start, end int // buf[start:end] holds unread bytes
	max        int
	err        error
}

// NewFrameReader returns a FrameReader of r that accepts frames of 1 to
// maxFrame bytes (clamped to 1..65535).
func NewFrameReader(r io.Reader, maxFrame int) *FrameReader {
	return &FrameReader{r: r, buf: make([]byte, readBufSize), max: clampFrame(maxFrame, maxStreamFrame)}
}

func clampFrame(n, limit int) int {
	if n <= 0 || n > limit {
		return limit
	}
	return n
}

// Next returns the next frame, reading from the stream only when no whole
// frame is buffered. The frame aliases the reader's buffer and is valid
// until the next call to Next.
func (f *FrameReader) Next() ([]byte, error) {
	for {
		if frame, err := f.parse(); frame != nil || err != nil {
			return frame, err
		}
		if f.err != nil {
			return nil, f.err
		}
		f.fill()
	}
}

// Buffered reports whether Next would return without reading: a whole frame,
// or an invalid length, is buffered.
func (f *FrameReader) Buffered() bool {
	avail := f.end - f.start
	if f.err != nil || avail < LenSize {
		return f.err != nil
	}
	n := int(binary.BigEndian.Uint16(f.buf[f.start:]))
	return n == 0 || n > f.max || avail >= LenSize+n
}

// parse returns the next whole buffered frame, nil if there is none yet, or
// an error for an invalid length (which it makes sticky).
func (f *FrameReader) parse() ([]byte, error) {
	avail := f.end - f.start
	if avail < LenSize {
		return nil, nil
	}
	n := int(binary.BigEndian.Uint16(f.buf[f.start:]))
	switch {
	case n == 0:
		// simpletun never sends an empty frame; a zero length means the stream is
		// not what we think it is.
		f.fail(fmt.Errorf("%w: zero length prefix", ErrBadFrame))
		return nil, f.err
	case n > f.max:
		// Trust no length from the wire: refuse it rather than read past a buffer
		// (the bug simpletun has) or resynchronise on garbage.
		f.fail(fmt.Errorf("%w: length prefix %d exceeds the maximum frame size %d", ErrFrameTooLarge, n, f.max))
		return nil, f.err
	case avail < LenSize+n:
		return nil, nil
	}
	frame := f.buf[f.start+LenSize : f.start+LenSize+n : f.start+LenSize+n]
	f.start += LenSize + n
	return frame, nil
}

func (f *FrameReader) fail(err error) {
	f.err = err
	f.start, f.end = 0, 0
}

// fill reads once from the stream, first making room for a whole frame.
func (f *FrameReader) fill() {
	if f.start == f.end {
		f.start, f.end = 0, 0
	} else if len(f.buf)-f.start < LenSize+f.max {
		f.end = copy(f.buf, f.buf[f.start:f.end])
		f.start = 0
	}
	n, err := f.r.Read(f.buf[f.end:])
	if n < 0 || n > len(f.buf)-f.end {
		panic("relay: reader returned an invalid count")
	}
	f.end += n
	if err != nil {
		if err == io.EOF && f.end > f.start {
			err = fmt.Errorf("relay: stream ended inside a frame: %w", io.ErrUnexpectedEOF)
		}
		f.err = err
	}
}
