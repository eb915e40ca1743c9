package tundev

import (
	"fmt"
	"io"
	"sync"
)

// pipeDepth is how many packets a pipe direction buffers before Write blocks.
const pipeDepth = 256

// NewPipe returns two in-memory devices connected back to back: what one
// writes, the other reads. Both are named name and carry mode packets. Read
// behaves as on a real device (block for the first packet, then take what is
// already queued, up to len(bufs)). Write copies each packet and blocks while
// the peer has pipeDepth packets unread; it never drops one. Closing an end
// unblocks its Read and Write with ErrClosed; writing to an end whose peer is
// closed fails with io.ErrClosedPipe.
func NewPipe(mode Mode, name string) (a, b Device) {
	ab, ba := newPipeQueue(), newPipeQueue()
	pa := &pipeEnd{name: name, mode: mode, rx: ba, tx: ab, done: make(chan struct{})}
	pb := &pipeEnd{name: name, mode: mode, rx: ab, tx: ba, done: make(chan struct{})}
	pa.peer, pb.peer = pb, pa
	return pa, pb
}

// pipeQueue is one direction of a pipe: queued packets, and a free list so
// that steady-state traffic reuses packet buffers instead of allocating.
type pipeQueue struct {
	pkts chan []byte
	free chan []byte
}

func newPipeQueue() *pipeQueue {
	return &pipeQueue{pkts: make(chan []byte, pipeDepth), free: make(chan []byte, pipeDepth)}
}

type pipeEnd struct {
	name      string
	mode      Mode
	rx, tx    *pipeQueue
	peer      *pipeEnd
	done      chan struct{}
	closeOnce sync.Once
}

func (p *pipeEnd) Name() string { return p.name }
func (p *pipeEnd) Mode() Mode   { return p.mode }

func (p *pipeEnd) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Read implements Device.Read.
func (p *pipeEnd) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if p.isClosed() {
		return 0, &closedError{op: "read", name: p.name}
	}
	if len(sizes) < len(bufs) {
		bufs = bufs[:len(sizes)]
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	var pkt []byte
	select {
	case pkt = <-p.rx.pkts:
	case <-p.done:
		return 0, &closedError{op: "read", name: p.name}
	}
	n := 0
	for {
		if err := p.put(bufs[n], offset, pkt, &sizes[n]); err != nil {
			return n, err
		}
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case pkt = <-p.rx.pkts:
		default:
			return n, nil
		}
	}
}

// put copies pkt into b[offset:] and recycles pkt's buffer. A packet that
// does not fit is dropped with an error, as a real device truncates or
// rejects it.
func (p *pipeEnd) put(b []byte, offset int, pkt []byte, size *int) error {
	defer p.recycle(pkt)
	if offset < 0 || offset > len(b) || len(b)-offset < len(pkt) {
		return fmt.Errorf("tundev: read %s: %d-byte packet does not fit in %d bytes after offset %d: %w",
			p.name, len(pkt), len(b)-offset, offset, io.ErrShortBuffer)
	}
	*size = copy(b[offset:], pkt)
	return nil
}

func (p *pipeEnd) recycle(pkt []byte) {
	select {
	case p.rx.free <- pkt[:0]:
	default:
	}
}

// Write implements Device.Write.
func (p *pipeEnd) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if p.isClosed() {
			return i, &closedError{op: "write", name: p.name}
		}
		if p.peer.isClosed() {
			return i, fmt.Errorf("tundev: write %s: %w", p.name, errPeerClosed)
		}
		if offset < 0 || offset > len(b) {
			return i, fmt.Errorf("tundev: write %s: offset %d beyond %d-byte buffer", p.name, offset, len(b))
		}
		if len(b)-offset > MaxPacket {
			return i, fmt.Errorf("tundev: write %s: %d-byte packet longer than MaxPacket", p.name, len(b)-offset)
		}
		var pkt []byte
		select {
		case pkt = <-p.tx.free:
		default:
			pkt = make([]byte, 0, max(len(b)-offset, 2048))
		}
		pkt = append(pkt, b[offset:]...)
		select {
		case p.tx.pkts <- pkt:
		case <-p.done:
			return i, &closedError{op: "write", name: p.name}
		case <-p.peer.done:
			return i, fmt.Errorf("tundev: write %s: %w", p.name, errPeerClosed)
		}
	}
	return len(bufs), nil
}

var errPeerClosed = fmt.Errorf("peer closed: %w", io.ErrClosedPipe)

// Close implements Device.Close. It is idempotent.
func (p *pipeEnd) Close() error {
	p.closeOnce.Do(func() { close(p.done) })
	return nil
}
