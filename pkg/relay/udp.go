package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/pkg/tundev"
	"golang.zx2c4.com/wireguard/replay"
)

// Keyed UDP datagram types (the first byte). Plain UDP has no header at all:
// one frame per datagram, as socat's UDP:host:port TUN tunnel sends them.
const (
	msgInit     = 1 // type || NNpsk0 message 1 (initiator to responder)
	msgResponse = 2 // type || NNpsk0 message 2
	msgData     = 4 // type || counter (8 bytes, little-endian) || ciphertext
)

// dataHdr is the header of a keyed data datagram; minData is an empty one
// (a keepalive).
const (
	dataHdr = 1 + 8
	minData = dataHdr + TagSize
)

// maxUDPPayload is the largest payload of a UDP datagram over IPv4.
const maxUDPPayload = 65535 - 20 - 8

// ClientUDP starts a session on a connected UDP socket (net.DialUDP). With a
// key it runs the handshake, retransmitting its first message every second
// until answered or HandshakeTimeout passes, then sends keepalives. On
// error the caller still owns conn.
func ClientUDP(conn *net.UDPConn, cfg Config) (Session, error) {
	if conn.RemoteAddr() == nil {
		return nil, errors.New("relay: ClientUDP needs a connected socket (net.DialUDP)")
	}
	s, err := newUDP(conn, cfg, true)
	if err != nil {
		return nil, err
	}
	if s.keyed {
		if err := s.clientHandshake(); err != nil {
			return nil, err
		}
		s.start()
		s.sendKeepalive() // confirms the new keys to the server at once
	}
	return s, nil
}

// ListenUDP starts the server end of a UDP session on a listening,
// unconnected socket. It returns at once; the session learns its peer from
// the traffic.
//
// Plain: the peer is the given address or, if peer is nil, the source of the
// first datagram; datagrams from any other source are dropped and counted.
//
// Keyed: the peer is whoever completes a handshake and then sends a valid
// data message under the new keys (so a replayed handshake message cannot
// take the session over). A new handshake from any address replaces the
// session: the peer may restart or roam. If peer is given, only it may
// handshake. Data is accepted only from the authenticated address.
func ListenUDP(conn *net.UDPConn, cfg Config, peer *net.UDPAddr) (Session, error) {
	s, err := newUDP(conn, cfg, false)
	if err != nil {
		return nil, err
	}
	if peer != nil {
		ap := peer.AddrPort()
		s.fixed = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !s.keyed {
			s.setPeer(s.fixed)
		}
	}
	if s.keyed {
		s.scratch = make([]byte, maxUDPPayload)
		s.start()
	}
	return s, nil
}

type udpSession struct {
	conn      *net.UDPConn
	bc        *batchConn
	cfg       Config
	stats     *Stats
	log       *zerolog.Logger
	keyed     bool
	client    bool
	maxFrame  int
	fixed     netip.AddrPort // server: the only peer accepted, if valid
	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	lastSend  atomic.Int64 // UnixNano of the last datagram sent

	// Read side: only the reading goroutine.
	meta     []recvMeta
	pending  *keyset // server: handshake done, waiting for the first data
	lastInit []byte  // server: the last handshake message answered, and to whom
	initFrom netip.AddrPort
	lastResp []byte
	scratch  []byte // server: trial decryption under pending keys
	lastRecv time.Time
	deadline time.Time // read deadline currently set
	lastWarn time.Time

	// Shared: written under mu (the reading goroutine may read them without it).
	mu   sync.Mutex
	peer netip.AddrPort // invalid until known
	cur  *keyset
	pkts [][]byte // Write's batch, reused
	ka   [minData]byte
}

// packet returns the packet in a plain frame: after the virtio-net header
// when frames carry one.
func (s *udpSession) packet(f []byte) []byte {
	if !s.cfg.Offload {
		return f
	}
	if len(f) < tundev.VnetHdrLen {
		return nil
	}
	return f[tundev.VnetHdrLen:]
}

// plainPeerIdle is how long a plain UDP server's peer must have been quiet
// before a datagram from another address may take its place.
const plainPeerIdle = 3 * time.Second

// keyset is one handshake's transport keys.
type keyset struct {
	peer    netip.AddrPort
	offload bool // both ends carry virtio-net headers
	send    aeadState
	sendN   uint64 // under udpSession.mu
	recv    aeadState
	replay  replay.Filter // reading goroutine only
}

func newUDP(conn *net.UDPConn, cfg Config, client bool) (*udpSession, error) {
	cfg = cfg.withDefaults()
	bc, err := newBatchConn(conn)
	if err != nil {
		return nil, fmt.Errorf("relay: udp socket: %w", err)
	}
	s := &udpSession{
		conn:   conn,
		bc:     bc,
		cfg:    cfg,
		stats:  cfg.Stats,
		log:    cfg.Log,
		keyed:  cfg.Key != nil,
		client: client,
		done:   make(chan struct{}),
		meta:   make([]recvMeta, maxBatch),
		pkts:   make([][]byte, 0, maxBatch),
	}
	if s.keyed {
		s.maxFrame = clampFrame(cfg.MaxFrame, maxUDPPayload-minData)
	} else {
		s.maxFrame = clampFrame(cfg.MaxFrame, maxUDPPayload)
	}
	if client {
		ap := conn.RemoteAddr().(*net.UDPAddr).AddrPort()
		s.peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	s.lastSend.Store(time.Now().UnixNano())
	return s, nil
}

func (s *udpSession) clientHandshake() error {
	peer := s.peer.String()
	timeout := s.cfg.HandshakeTimeout
	hs := newHandshake(s.cfg.Key, true, "udp")
	init, _, _, err := hs.WriteMessage([]byte{msgInit}, hello(s.cfg.Mode, s.cfg.Offload))
	if err != nil {
		return fmt.Errorf("%w: with %s: %v", ErrHandshake, peer, err)
	}
	defer s.conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 2048)
	deadline := time.Now().Add(timeout)
	for {
		now := time.Now()
		if !now.Before(deadline) {
			s.stats.DropHandshake.Add(1)
			return fmt.Errorf("%w: no valid response from %s within %v (wrong key, peer not running, or peer not using a key?)",
				ErrHandshake, peer, timeout)
		}
		if _, err := s.conn.Write(init); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: send to %s: %w", ErrHandshake, peer, err)
		}
		_ = s.conn.SetReadDeadline(minTime(now.Add(time.Second), deadline))
		for {
			n, err := s.conn.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // retransmit
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // nothing listens there (yet)
			}
			if err != nil {
				return fmt.Errorf("%w: receive from %s: %w", ErrHandshake, peer, err)
			}
			if n != 1+hsMsgSize || buf[0] != msgResponse {
				s.stats.DropBadFrame.Add(1)
				continue
			}
			payload, cs1, cs2, err := hs.ReadMessage(nil, buf[1:n])
			if err != nil {
				// Forged or corrupted: keep waiting for the real answer.
				s.stats.DropHandshake.Add(1)
				continue
			}
			peerOffload, err := checkHello(payload, s.cfg.Mode)
			if err != nil {
				s.stats.DropHandshake.Add(1)
				return err
			}
			s.cur = &keyset{peer: s.peer, send: newAEAD(cs1), recv: newAEAD(cs2), offload: s.cfg.Offload && peerOffload}
			s.lastRecv = time.Now()
			s.stats.Handshakes.Add(1)
			s.log.Debug().Str("peer", peer).Str("transport", "udp").Msg("relay: handshake complete")
			return nil
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// start runs the keepalive timer of a keyed session.
func (s *udpSession) start() {
	go func() {
		t := time.NewTicker(s.cfg.Keepalive / 4)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, s.lastSend.Load())) >= s.cfg.Keepalive {
					s.sendKeepalive()
				}
			}
		}
	}()
}

// sendKeepalive sends an empty data message, if there is a session.
func (s *udpSession) sendKeepalive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.cur
	if ks == nil || s.closed.Load() || ks.sendN >= rejectAfter {
		return
	}
	b := s.ka[:dataHdr]
	b[0] = msgData
	binary.LittleEndian.PutUint64(b[1:], ks.sendN)
	pkt := ks.send.seal(b, nil, ks.sendN)
	ks.sendN++
	s.pkts = append(s.pkts[:0], pkt)
	if _, err := s.bc.send(s.pkts); err == nil {
		s.stats.KeepalivesOut.Add(1)
	}
	s.lastSend.Store(time.Now().UnixNano())
}

// setPeer makes ap the address Write sends to.
func (s *udpSession) setPeer(ap netip.AddrPort) {
	s.mu.Lock()
	s.peer = ap
	if !s.client {
		s.bc.setDest(ap)
	}
	s.mu.Unlock()
}

func (s *udpSession) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	off := offset
	if s.keyed {
		if offset < dataHdr {
			return 0, fmt.Errorf("relay: read: offset %d is less than relay.Headroom (%d)", offset, Headroom)
		}
		off = offset - dataHdr // receive the header in front, the payload in place
	}
	for {
		if err := s.armDeadline(); err != nil {
			return 0, err
		}
		n, err := s.bc.recv(bufs, off, s.keyed, s.meta)
		if err != nil {
			switch {
			case s.closed.Load():
				return 0, fmt.Errorf("relay: read: %w", ErrClosed)
			case errors.Is(err, os.ErrDeadlineExceeded):
				continue // armDeadline decides whether the peer is dead
			case errors.Is(err, syscall.ECONNREFUSED):
				continue // an ICMP port unreachable for something we sent: the peer may come back
			}
			return 0, fmt.Errorf("relay: read: %w", err)
		}
		now := time.Now()
		out, total := 0, 0
		for i := range n {
			size, ok := s.accept(bufs[i], offset, &s.meta[i], now)
			if !ok {
				continue
			}
			if out != i {
				copy(bufs[out][offset:], bufs[i][offset:offset+size])
			}
			sizes[out] = size
			total += size
			out++
		}
		if out > 0 {
			s.stats.FramesIn.Add(uint64(out))
			s.stats.BytesIn.Add(uint64(total))
			return out, nil
		}
	}
}

// armDeadline keeps a read deadline at the time a keyed peer would be
// declared dead, and reports it dead (once per 3×Keepalive of silence) when
// that time has come. The deadline is moved only when it has passed, so a
// busy session does not reset a timer for every batch.
func (s *udpSession) armDeadline() error {
	if !s.keyed || s.cur == nil {
		return nil
	}
	now := time.Now()
	dead := s.lastRecv.Add(3 * s.cfg.Keepalive)
	if !now.Before(dead) {
		silent := now.Sub(s.lastRecv)
		s.lastRecv = now // report again only after another 3×Keepalive
		return fmt.Errorf("%w: nothing heard from %s for %v", ErrPeerDead, s.cur.peer, silent.Round(time.Millisecond))
	}
	if s.deadline.IsZero() || !now.Before(s.deadline) {
		s.deadline = dead
		_ = s.conn.SetReadDeadline(dead)
	}
	return nil
}

// accept checks one received datagram. If it carries a frame, the frame is
// at buf[offset:offset+size].
func (s *udpSession) accept(buf []byte, offset int, m *recvMeta, now time.Time) (size int, ok bool) {
	if m.trunc {
		// Larger than the caller's buffer, so larger than MaxFrame.
		s.stats.DropTooLarge.Add(1)
		return 0, false
	}
	if !s.keyed {
		switch {
		case m.n == 0:
			s.stats.DropBadFrame.Add(1)
			return 0, false
		case m.n > s.maxFrame:
			s.stats.DropTooLarge.Add(1)
			return 0, false
		case s.client:
			// The kernel only delivers datagrams from the connected peer.
		case s.fixed.IsValid() && m.from != s.fixed:
			s.stats.DropWrongPeer.Add(1)
			return 0, false
		case m.from == s.peer:
		case s.peer.IsValid() && !s.fixed.IsValid() && now.Sub(s.lastRecv) < plainPeerIdle:
			// Another sender while the peer is active.
			s.stats.DropWrongPeer.Add(1)
			return 0, false
		case !plausible(s.packet(buf[offset:offset+m.n]), s.cfg.Mode):
			// Only what can be a packet of our mode takes the peer's place,
			// so stray garbage cannot lock the real peer out.
			s.stats.DropBadFrame.Add(1)
			return 0, false
		default:
			// The first peer, or a new one (a restarted client has a new
			// port) after the old one went quiet.
			if s.peer.IsValid() {
				s.log.Info().Str("old", s.peer.String()).Str("new", m.from.String()).Msg("relay: a new peer replaces the current one")
			} else {
				s.log.Info().Str("peer", m.from.String()).Msg("relay: peer connected")
			}
			s.setPeer(m.from)
			s.stats.PeerChanges.Add(1)
		}
		s.lastRecv = now
		return m.n, true
	}
	d := buf[offset-dataHdr : offset-dataHdr+m.n]
	if len(d) == 0 {
		s.stats.DropBadFrame.Add(1)
		return 0, false
	}
	switch d[0] {
	case msgData:
		return s.openData(buf, offset, d, m.from, now)
	case msgInit:
		if !s.client {
			s.handleInit(d, m.from)
			return 0, false
		}
	case msgResponse:
		if s.client {
			// A second answer to a retransmitted init: the handshake is done.
			return 0, false
		}
	}
	s.stats.DropBadFrame.Add(1)
	return 0, false
}

// openData authenticates and decrypts a data datagram d (at
// buf[offset-dataHdr:]) in place.
func (s *udpSession) openData(buf []byte, offset int, d []byte, from netip.AddrPort, now time.Time) (int, bool) {
	if len(d) < minData {
		s.stats.DropBadFrame.Add(1)
		return 0, false
	}
	ctr := binary.LittleEndian.Uint64(d[1:dataHdr])
	ct := d[dataHdr:]
	var ks *keyset
	var pt []byte
	if p := s.pending; p != nil && p.peer == from {
		// Trial-open into scratch so the ciphertext survives for the current
		// keys if this is in-flight data of the old session.
		if out, err := p.recv.open(s.scratch[:0], ct, ctr); err == nil {
			ks, pt = p, buf[offset:offset+copy(buf[offset:], out)]
		}
	}
	if ks == nil {
		c := s.cur
		if c == nil || (!s.client && c.peer != from) {
			if s.pending == nil || s.pending.peer != from {
				s.stats.DropWrongPeer.Add(1)
			} else {
				s.stats.DropAuthFailed.Add(1)
			}
			return 0, false
		}
		out, err := c.recv.open(ct[:0], ct, ctr)
		if err != nil {
			s.stats.DropAuthFailed.Add(1)
			return 0, false
		}
		ks, pt = c, out
	}
	// The counter is checked after authentication, as wireguard-go does, so a
	// forged counter cannot move the window.
	if !ks.replay.ValidateCounter(ctr, rejectAfter) {
		s.stats.DropReplay.Add(1)
		return 0, false
	}
	if ks == s.pending {
		s.promote(ks)
	}
	s.lastRecv = now
	switch {
	case len(pt) == 0:
		s.stats.KeepalivesIn.Add(1)
		return 0, false
	case len(pt) > s.maxFrame, offset+len(pt) > len(buf):
		s.stats.DropTooLarge.Add(1)
		return 0, false
	}
	return len(pt), true
}

// promote makes a confirmed pending session the current one.
func (s *udpSession) promote(ks *keyset) {
	s.mu.Lock()
	old := s.cur
	s.cur = ks
	s.peer = ks.peer
	s.bc.setDest(ks.peer)
	s.mu.Unlock()
	s.pending = nil
	s.deadline = time.Time{}
	s.stats.Handshakes.Add(1)
	ev := s.log.Info().Str("peer", ks.peer.String())
	switch {
	case old == nil:
		s.stats.PeerChanges.Add(1)
		ev.Msg("relay: udp peer authenticated")
	case old.peer != ks.peer:
		s.stats.PeerChanges.Add(1)
		ev.Str("old_peer", old.peer.String()).Msg("relay: udp peer authenticated from a new address; it replaces the old session")
	default:
		ev.Msg("relay: udp peer made a new session; it replaces the old one")
	}
}

// handleInit answers a handshake initiation. The new keys stay pending
// until the initiator proves it holds them by sending data.
func (s *udpSession) handleInit(d []byte, from netip.AddrPort) {
	if s.fixed.IsValid() && from != s.fixed {
		s.stats.DropWrongPeer.Add(1)
		return
	}
	if len(d) != 1+hsMsgSize {
		s.stats.DropHandshake.Add(1)
		return
	}
	if from == s.initFrom && bytes.Equal(d, s.lastInit) {
		// A retransmission: our answer was lost. Resend the same answer rather
		// than start a second handshake the initiator would not know about.
		_, _ = s.conn.WriteToUDPAddrPort(s.lastResp, from)
		return
	}
	hs := newHandshake(s.cfg.Key, false, "udp")
	payload, _, _, err := hs.ReadMessage(nil, d[1:])
	if err != nil {
		s.stats.DropHandshake.Add(1)
		s.warn(from, "relay: udp handshake does not authenticate: wrong key, or not a keyed vhost")
		return
	}
	peerOffload, helloErr := checkHello(payload, s.cfg.Mode)
	resp, cs1, cs2, err := hs.WriteMessage([]byte{msgResponse}, hello(s.cfg.Mode, s.cfg.Offload))
	if err != nil {
		s.stats.DropHandshake.Add(1)
		return
	}
	// Answer even on a mode mismatch so the other end can say so as clearly.
	_, _ = s.conn.WriteToUDPAddrPort(resp, from)
	if helloErr != nil {
		s.stats.DropHandshake.Add(1)
		s.warn(from, helloErr.Error())
		return
	}
	s.pending = &keyset{peer: from, recv: newAEAD(cs1), send: newAEAD(cs2), offload: s.cfg.Offload && peerOffload}
	s.lastInit = append(s.lastInit[:0], d...)
	s.initFrom = from
	s.lastResp = resp
	s.log.Debug().Str("peer", from.String()).Msg("relay: udp handshake answered; waiting for the peer's first data")
}

// warn logs a failed handshake, at most once a second: anyone can send them.
func (s *udpSession) warn(from netip.AddrPort, msg string) {
	if now := time.Now(); now.Sub(s.lastWarn) >= time.Second {
		s.lastWarn = now
		s.log.Warn().Str("peer", from.String()).Uint64("handshakes_failed", s.stats.DropHandshake.Load()).Msg(msg)
	}
}

func (s *udpSession) Write(bufs [][]byte, offset int) (int, error) {
	if offset < Headroom {
		return 0, errHeadroom(offset)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, fmt.Errorf("relay: write: %w", ErrClosed)
	}
	ks := s.cur
	if !s.peer.IsValid() || (s.keyed && ks == nil) {
		// No peer yet (a server before its first datagram or handshake): a
		// datagram link may lose packets, so drop rather than fail the pump.
		s.stats.DropNoPeer.Add(uint64(len(bufs)))
		return len(bufs), nil
	}
	s.pkts = s.pkts[:0]
	var ferr error
	total := 0
	for i, b := range bufs {
		size := len(b) - offset
		if ferr = checkFrame(i, size, s.maxFrame); ferr != nil {
			break
		}
		pkt := b[offset:]
		if s.keyed {
			if ferr = checkSeal(i, b, ks.sendN); ferr != nil {
				break
			}
			hdr := b[offset-dataHdr : offset]
			hdr[0] = msgData
			binary.LittleEndian.PutUint64(hdr[1:], ks.sendN)
			ks.send.seal(b[offset:offset], b[offset:], ks.sendN)
			ks.sendN++
			pkt = b[offset-dataHdr : len(b)+TagSize]
		}
		s.pkts = append(s.pkts, pkt)
		total += size
	}
	n := len(s.pkts)
	if n == 0 {
		return 0, ferr
	}
	sent, err := s.bc.send(s.pkts)
	clear(s.pkts) // keep no caller buffer reachable
	lost := 0
	if err != nil {
		switch {
		case s.closed.Load():
			return sent, fmt.Errorf("relay: write: %w", ErrClosed)
		case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
			// The kernel reports an ICMP error for an earlier datagram; the peer is
			// not there (yet). Count the rest as lost, like the network would.
			lost = n - sent
			s.stats.DropUnreachable.Add(uint64(lost))
		default:
			return sent, fmt.Errorf("relay: write to %s: %w", s.peer, err)
		}
	}
	s.stats.FramesOut.Add(uint64(n - lost))
	s.stats.BytesOut.Add(uint64(total))
	s.lastSend.Store(time.Now().UnixNano())
	return n, ferr
}

func (s *udpSession) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
	})
	return s.conn.Close()
}

func (s *udpSession) Peer() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.peer.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(s.peer)
}

// Offload reports whether frames carry virtio-net headers: Config.Offload on
// a plain session, what the current peer's handshake agreed on a keyed one.
func (s *udpSession) Offload() bool {
	if !s.keyed {
		return s.cfg.Offload
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.cur.offload
}
