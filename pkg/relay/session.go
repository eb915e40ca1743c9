// Package relay carries the packets or frames of a TUN/TAP device to a remote
// vhost peer over TCP or UDP.
//
// Without a key the wire formats are those of the classic tunnels, so vhost
// interoperates with them: on TCP every frame is a 2-byte big-endian length
// and the frame (simpletun); on UDP every datagram is one frame (socat's
// UDP:host:port TUN).
//
// With a key both ends run a Noise NNpsk0 handshake (flynn/noise,
// Curve25519, ChaCha20-Poly1305, BLAKE2s) and every frame is then encrypted
// and authenticated with the resulting transport keys; UDP adds explicit
// counters and wireguard-go's replay window. No part of the cryptography is
// of our own design.
package relay

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Headroom is the least offset Session.Write accepts: the session writes its
// header (at most Headroom bytes) in front of each packet, in place.
// It fits inside tundev.Headroom.
const Headroom = 16

// TagSize is the spare capacity a keyed session's Write needs after each
// packet for the authentication tag: cap(bufs[i]) >= len(bufs[i])+TagSize.
// A keyed UDP Read receives each datagram where its plaintext will end up,
// so it needs the same spare capacity for a frame of full size: buffers with
// len >= offset+MaxFrame and cap >= len+TagSize suit every session.
const TagSize = 16

// Session is one end of a relay: the same shape as tundev.Device, so one
// pump copies device to session and session to device.
//
// Read blocks until at least one frame arrives, then returns as many as are
// already buffered or queued, up to len(bufs). Frame i is at
// bufs[i][offset:offset+sizes[i]].
//
// Write sends bufs[i][offset:] as one frame each, writing headers into
// bufs[i][offset-Headroom:offset] and, on a keyed session, the tag into the
// spare capacity after the packet (see TagSize). The payload is encrypted in
// place, so the caller must not reuse its contents after Write. If frame i
// is refused (too large, empty), frames before it are sent and Write
// returns i and an error.
//
// One goroutine may Read while another Writes; Close may be called from any
// goroutine and unblocks both.
type Session interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	Write(bufs [][]byte, offset int) (int, error)
	Close() error
	// Peer is the remote address: the TCP peer, the connected UDP peer, or
	// the current peer of a UDP server (nil before it has one).
	Peer() net.Addr
	// Offload reports whether frames carry a virtio-net header in front of
	// the packet, and may be segmentation-offload super-packets: negotiated
	// in a keyed handshake when both ends set Config.Offload, asserted by
	// Config.Offload on a plain session. On a UDP server it follows the
	// current peer.
	Offload() bool
}

// Config configures a session.
type Config struct {
	// Key, if set, makes the session authenticated and encrypted. Nil means
	// plain: no handshake, framing only, compatible with simpletun and socat.
	Key *Key
	// Mode is TUN or TAP; keyed peers check they agree. Default TUN.
	Mode tundev.Mode
	// MaxFrame is the largest frame accepted or sent, such as the MTU
	// (+14 on TAP). Default tundev.MaxPacket, clamped to what the transport
	// can carry (65535 on plain TCP, less the tag on keyed TCP).
	MaxFrame int
	// HandshakeTimeout bounds a keyed handshake. Default 5s.
	HandshakeTimeout time.Duration
	// Keepalive is the idle time after which a keyed UDP session sends an
	// empty message; after 3×Keepalive without hearing from the peer, Read
	// fails with ErrPeerDead. On TCP it sets the kernel's keepalive. Default 10s.
	Keepalive time.Duration
	// Log receives session events (handshakes, peer changes). Nil means none.
	Log *zerolog.Logger
	// Stats receives the session's counters. Nil means a private Stats.
	Stats *Stats
	// Offload says this end's frames carry virtio-net headers and may be
	// segmentation-offload super-packets of up to 64 KiB. With a key it is
	// offered in the handshake and used when the peer offers it too; on a
	// plain session (no handshake) both ends must set it.
	Offload bool
}

// Defaults.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultKeepalive        = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Mode == 0 {
		c.Mode = tundev.TUN
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = tundev.MaxPacket
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Keepalive <= 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.Stats == nil {
		c.Stats = new(Stats)
	}
	if c.Log == nil {
		nop := zerolog.Nop()
		c.Log = &nop
	}
	return c
}

var (
	// ErrFrameTooLarge is wrapped by errors about a frame above the maximum:
	// a length prefix read from a stream (which ends it) or a frame given to
	// Write.
	ErrFrameTooLarge = errors.New("relay: frame too large")
	// ErrBadFrame is wrapped by errors about a malformed frame, such as a zero
	// length prefix.
	ErrBadFrame = errors.New("relay: bad frame")
	// ErrHandshake is wrapped by every failed keyed handshake: wrong key,
	// timeout, garbage, or a mode mismatch.
	ErrHandshake = errors.New("relay: handshake failed")
	// ErrModeMismatch is wrapped (with ErrHandshake) when the peer runs in the
	// other mode (TUN vs TAP).
	ErrModeMismatch = errors.New("relay: mode mismatch")
	// ErrPeerDead is wrapped by Read's error when a keyed UDP peer has not been
	// heard from for 3×Keepalive.
	ErrPeerDead = errors.New("relay: peer dead")
	// ErrClosed is wrapped by Read and Write on a closed session.
	ErrClosed = errors.New("relay: session closed")
)

// modeError is a handshake that failed because the peers' modes differ.
type modeError struct{ peer, local tundev.Mode }

func (e *modeError) Error() string {
	return fmt.Sprintf("relay: peer is in %s mode but this end is in %s mode: use the same --mode on both ends",
		upper(e.peer), upper(e.local))
}

func (e *modeError) Unwrap() []error { return []error{ErrModeMismatch, ErrHandshake} }

func upper(m tundev.Mode) string {
	switch m {
	case tundev.TUN:
		return "TUN"
	case tundev.TAP:
		return "TAP"
	}
	return m.String()
}

func errHeadroom(offset int) error {
	return fmt.Errorf("relay: write: offset %d is less than relay.Headroom (%d)", offset, Headroom)
}

func errTagRoom(i, c, need int) error {
	return fmt.Errorf("relay: write: packet %d has capacity %d, need %d (relay.TagSize spare bytes for the tag)", i, c, need)
}

func errTooLarge(i, size, max int) error {
	return fmt.Errorf("%w: write: packet %d is %d bytes, larger than the maximum frame %d", ErrFrameTooLarge, i, size, max)
}

// checkFrame refuses frame i of Write when it is empty or above max.
func checkFrame(i, size, max int) error {
	switch {
	case size <= 0:
		return errEmpty(i)
	case size > max:
		return errTooLarge(i, size, max)
	}
	return nil
}

// checkSeal refuses to seal frame i of Write when there is no room for the
// tag after it, or its key has sealed as many frames as it may (nonce n).
func checkSeal(i int, b []byte, n uint64) error {
	switch {
	case cap(b) < len(b)+TagSize:
		return errTagRoom(i, cap(b), len(b)+TagSize)
	case n >= rejectAfter:
		return errors.New("relay: write: session has used its key for 2^64 frames: reconnect")
	}
	return nil
}

func errEmpty(i int) error {
	return fmt.Errorf("%w: write: packet %d is empty", ErrBadFrame, i)
}
