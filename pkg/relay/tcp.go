package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"github.com/rs/zerolog"
)

// ClientTCP starts a session on conn as the end that dialled. With a key it
// runs the handshake first (bounded by HandshakeTimeout). On error the caller
// still owns conn and should close it.
func ClientTCP(conn net.Conn, cfg Config) (Session, error) { return newTCP(conn, cfg, true) }

// ServerTCP starts a session on conn as the end that accepted it. With a
// key it answers the handshake, and on a mode or version mismatch answers
// before failing, so both ends report it. On error the caller still owns
// conn.
func ServerTCP(conn net.Conn, cfg Config) (Session, error) { return newTCP(conn, cfg, false) }

type tcpSession struct {
	conn     net.Conn
	stats    *Stats
	log      *zerolog.Logger
	keyed    bool
	offload  bool // frames carry virtio-net headers (negotiated, or asserted on a plain session)
	maxFrame int  // largest plaintext frame
	closed   atomic.Bool

	// Read side: only the reading goroutine.
	fr    *FrameReader
	recv  aeadState
	recvN uint64
	rerr  error // sticky: the stream is unusable after it

	// Write side, under wmu.
	wmu   sync.Mutex
	send  aeadState
	sendN uint64
	vec   [][]byte    // backing array of nb, reused
	nb    net.Buffers // the batch handed to writev
}

func newTCP(conn net.Conn, cfg Config, initiator bool) (*tcpSession, error) {
	cfg = cfg.withDefaults()
	s := &tcpSession{conn: conn, stats: cfg.Stats, log: cfg.Log, keyed: cfg.Key != nil, offload: cfg.Offload}
	wireMax := maxStreamFrame
	if s.keyed {
		s.maxFrame = clampFrame(cfg.MaxFrame, maxStreamFrame-TagSize)
		wireMax = s.maxFrame + TagSize
	} else {
		s.maxFrame = clampFrame(cfg.MaxFrame, maxStreamFrame)
		wireMax = s.maxFrame
	}
	s.fr = NewFrameReader(conn, max(wireMax, hsMsgSize))
	if tc, ok := conn.(*net.TCPConn); ok {
		setTCPOptions(tc, cfg.Keepalive)
	}
	if s.keyed {
		if err := s.handshake(cfg, initiator); err != nil {
			cfg.Stats.DropHandshake.Add(1)
			return nil, err
		}
		cfg.Stats.Handshakes.Add(1)
		s.log.Debug().Str("peer", addrString(conn.RemoteAddr())).Str("transport", "tcp").Msg("relay: handshake complete")
	}
	s.fr.max = wireMax
	return s, nil
}

// setTCPOptions turns off Nagle (frames are whole packets; delaying them only
// adds latency) and makes the kernel detect a dead peer in about
// 3×keepalive: keepalive probes when idle, TCP_USER_TIMEOUT when data is
// unacknowledged. Failures only cost dead-peer detection, so they are ignored.
func setTCPOptions(tc *net.TCPConn, keepalive time.Duration) {
	_ = tc.SetNoDelay(true)
	_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{
		Enable:   true,
		Idle:     keepalive,
		Interval: keepalive * 2 / 3,
		Count:    3,
	})
	setUserTimeout(tc, 3*keepalive)
}

// handshake runs NNpsk0 over the stream, each message framed like data.
// A mode or version mismatch is detected by the responder, which still
// answers so the initiator can report it as clearly.
func (s *tcpSession) handshake(cfg Config, initiator bool) error {
	peer := addrString(s.conn.RemoteAddr())
	_ = s.conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	defer s.conn.SetDeadline(time.Time{})
	hs := newHandshake(cfg.Key, initiator, "tcp")
	buf := make([]byte, LenSize, LenSize+hsMsgSize)

	writeMsg := func(payload []byte) (*cipherPair, error) {
		msg, cs1, cs2, err := hs.WriteMessage(buf[:LenSize], payload)
		if err != nil {
			return nil, fmt.Errorf("%w: with %s: %v", ErrHandshake, peer, err)
		}
		binary.BigEndian.PutUint16(msg, uint16(len(msg)-LenSize))
		if _, err := s.conn.Write(msg); err != nil {
			return nil, fmt.Errorf("%w: with %s: send: %v", ErrHandshake, peer, err)
		}
		if cs1 == nil {
			return nil, nil
		}
		return &cipherPair{cs1, cs2}, nil
	}
	readMsg := func() ([]byte, error) {
		frame, err := s.fr.Next()
		switch {
		case err == nil && len(frame) != hsMsgSize:
			return nil, fmt.Errorf("%w: with %s: handshake message is %d bytes, want %d (is the peer using a key?)", ErrHandshake, peer, len(frame), hsMsgSize)
		case err == nil:
			return frame, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("%w: with %s: no handshake message within %v (is the peer using a key?)", ErrHandshake, peer, cfg.HandshakeTimeout)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, errConnReset):
			return nil, fmt.Errorf("%w: with %s: peer closed the connection during the handshake (wrong key, or a mode or version mismatch logged there)", ErrHandshake, peer)
		}
		return nil, fmt.Errorf("%w: with %s: %w", ErrHandshake, peer, err)
	}

	if initiator {
		if _, err := writeMsg(hello(cfg.Mode, cfg.Offload)); err != nil {
			return err
		}
		msg, err := readMsg()
		if err != nil {
			return err
		}
		payload, cs1, cs2, err := hs.ReadMessage(nil, msg)
		if err != nil {
			return fmt.Errorf("%w: with %s: response does not authenticate (wrong key?): %v", ErrHandshake, peer, err)
		}
		peerOffload, err := checkHello(payload, cfg.Mode)
		if err != nil {
			return err
		}
		s.offload = cfg.Offload && peerOffload
		s.send, s.recv = newAEAD(cs1), newAEAD(cs2)
		return nil
	}
	msg, err := readMsg()
	if err != nil {
		return err
	}
	payload, _, _, err := hs.ReadMessage(nil, msg)
	if err != nil {
		return fmt.Errorf("%w: with %s: wrong key, or the peer is not using one", ErrHandshake, peer)
	}
	peerOffload, helloErr := checkHello(payload, cfg.Mode)
	s.offload = cfg.Offload && peerOffload
	cp, err := writeMsg(hello(cfg.Mode, cfg.Offload))
	if err != nil {
		return err
	}
	if helloErr != nil {
		return helloErr
	}
	s.recv, s.send = newAEAD(cp.c1), newAEAD(cp.c2)
	return nil
}

// Offload reports whether frames carry virtio-net headers.
func (s *tcpSession) Offload() bool { return s.offload }

func (s *tcpSession) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if s.rerr != nil {
		return 0, s.rerr
	}
	n, bytes := 0, 0
	for n < len(bufs) && (n == 0 || s.fr.Buffered()) {
		frame, err := s.fr.Next()
		if err != nil {
			s.rerr = s.readError(err)
			if n > 0 {
				break // deliver what we have; the error comes next call
			}
			return 0, s.rerr
		}
		dst := bufs[n][offset:]
		if s.keyed {
			if len(frame) <= TagSize {
				s.stats.DropBadFrame.Add(1)
				s.rerr = fmt.Errorf("%w: read from %s: encrypted frame of %d bytes", ErrBadFrame, addrString(s.conn.RemoteAddr()), len(frame))
				break
			}
			if len(dst) < len(frame)-TagSize {
				return n, fmt.Errorf("relay: read: buffer %d has %d bytes for a %d-byte frame: %w", n, len(dst), len(frame)-TagSize, io.ErrShortBuffer)
			}
			pt, err := s.recv.open(dst[:0], frame, s.recvN)
			if err != nil {
				// The stream is ordered, so a frame that does not open is tampering
				// or corruption, and the nonces can no longer be trusted.
				s.stats.DropAuthFailed.Add(1)
				s.rerr = fmt.Errorf("relay: read from %s: frame %d failed authentication: %w", addrString(s.conn.RemoteAddr()), s.recvN, err)
				break
			}
			s.recvN++
			sizes[n] = len(pt)
		} else {
			if len(dst) < len(frame) {
				return n, fmt.Errorf("relay: read: buffer %d has %d bytes for a %d-byte frame: %w", n, len(dst), len(frame), io.ErrShortBuffer)
			}
			sizes[n] = copy(dst, frame)
		}
		bytes += sizes[n]
		n++
	}
	if n == 0 {
		return 0, s.rerr
	}
	s.stats.FramesIn.Add(uint64(n))
	s.stats.BytesIn.Add(uint64(bytes))
	return n, nil
}

func (s *tcpSession) readError(err error) error {
	peer := addrString(s.conn.RemoteAddr())
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		s.stats.DropTooLarge.Add(1)
	case errors.Is(err, ErrBadFrame):
		s.stats.DropBadFrame.Add(1)
	case s.closed.Load():
		return fmt.Errorf("relay: read from %s: %w", peer, ErrClosed)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("relay: read from %s: peer closed the connection: %w", peer, err)
	}
	return fmt.Errorf("relay: read from %s: %w", peer, err)
}

func (s *tcpSession) Write(bufs [][]byte, offset int) (int, error) {
	if offset < Headroom {
		return 0, errHeadroom(offset)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if cap(s.vec) < len(bufs) {
		s.vec = make([][]byte, 0, len(bufs))
	}
	s.nb = s.vec[:0]
	var ferr error
	bytes := 0
	for i, b := range bufs {
		size := len(b) - offset
		if ferr = checkFrame(i, size, s.maxFrame); ferr != nil {
			break
		}
		wire := size
		if s.keyed {
			if ferr = checkSeal(i, b, s.sendN); ferr != nil {
				break
			}
			s.send.seal(b[offset:offset], b[offset:], s.sendN)
			s.sendN++
			wire += TagSize
		}
		binary.BigEndian.PutUint16(b[offset-LenSize:], uint16(wire))
		s.nb = append(s.nb, b[offset-LenSize:offset+wire])
		bytes += size
	}
	n := len(s.nb)
	if n > 0 {
		// One writev for the whole batch (net.Buffers on a *net.TCPConn).
		if _, err := s.nb.WriteTo(s.conn); err != nil {
			if s.closed.Load() {
				err = ErrClosed
			}
			return 0, fmt.Errorf("relay: write to %s: %w", addrString(s.conn.RemoteAddr()), err)
		}
		s.stats.FramesOut.Add(uint64(n))
		s.stats.BytesOut.Add(uint64(bytes))
	}
	return n, ferr
}

func (s *tcpSession) Close() error {
	s.closed.Store(true)
	return s.conn.Close()
}

func (s *tcpSession) Peer() net.Addr { return s.conn.RemoteAddr() }

// cipherPair is the pair of CipherStates a completed handshake yields:
// c1 for initiator to responder, c2 for the reverse.
type cipherPair struct{ c1, c2 *noise.CipherState }

func addrString(a net.Addr) string {
	if a == nil {
		return "peer"
	}
	return a.String()
}
