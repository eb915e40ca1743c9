//go:build linux

package test

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// junk returns n pseudo-random bytes, the same on every run, starting
// with prefix.
func junk(n int, prefix ...byte) []byte {
	var seed [32]byte
	copy(seed[:], "vhost relay e2e junk")
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b) // never fails
	copy(b, prefix)
	return b
}

// TestRelayHostileInput sends garbage to the server's port from A (random
// bytes, a 0xFFFF length prefix, empty, oversized and mistyped datagrams),
// then checks that the server is still running, counted each drop, and
// carries a real client's traffic.
func TestRelayHostileInput(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	key := genKey(t, t.TempDir(), "relay.key")
	for _, tc := range []struct {
		name      string
		transport string
		keyed     bool
		// send are the garbage payloads: one connection each on TCP, one
		// datagram each (from one socket) on UDP.
		send [][]byte
		// logged is the message the server logs for each payload on TCP,
		// or once on UDP; empty: none.
		logged string
		// want are lower bounds of the server's counters.
		want counters
	}{
		{
			// A plain server takes any connection as its peer (there is
			// nothing to authenticate) and drops it at the first bad length.
			name: "tcp_plain", transport: "tcp",
			send:   [][]byte{junk(4096), junk(102, 0xff, 0xff)},
			logged: "relay: peer left",
			want:   counters{"drop_too_large": 2}, // the random bytes start with length 7710
		},
		{
			name: "tcp_keyed", transport: "tcp", keyed: true,
			send:   [][]byte{junk(4096), junk(102, 0xff, 0xff)},
			logged: "relay: peer rejected",
			want:   counters{"drop_handshake_failed": 2},
		},
		{
			// Empty and larger than the MTU: refused before the server
			// takes the sender as its peer.
			name: "udp_plain", transport: "udp",
			send: [][]byte{{}, junk(4000)},
			want: counters{"drop_bad_frame": 1, "drop_too_large": 1},
		},
		{
			// A datagram that is not an IP packet (version 0), from a port
			// that is not the real client's: the plain server drops it
			// without taking its sender as the peer (only what can be a
			// packet of its mode does), so the real client that comes next
			// gets through.
			name: "udp_plain_stray_datagram", transport: "udp",
			send: [][]byte{junk(100, 0x00)},
			want: counters{"drop_bad_frame": 1},
		},
		{
			name: "udp_keyed", transport: "udp", keyed: true,
			send: append([][]byte{
				{},                // empty
				junk(100, 0x00),   // unknown type
				junk(60, 0x04),    // data with no session
				junk(4000, 0x04)}, // oversized data with no session
				handshakeInits()...),
			logged: "relay: udp handshake does not authenticate: wrong key, or not a keyed vhost",
			want:   counters{"drop_bad_frame": 2, "drop_handshake_failed": uint64(len(handshakeInits())), "drop_wrong_peer": 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := tunnel{transport: tc.transport, mode: "tun"}
			if tc.keyed {
				tn.key = key
			}
			n := newRelayNet(t)
			b := startServer(t, n.b, tn, relayDevice(overlayB)...)

			if tc.transport == "tcp" {
				for i, p := range tc.send {
					sendTCPGarbage(t, n.a, p)
					l := b.waitCount(t, tc.logged, i+1, connectTimeout)[i]
					if !strings.HasPrefix(l.str("peer"), underlayA+":") {
						t.Errorf("B: %q line does not name A (%s): %s", tc.logged, underlayA, l.raw)
					}
				}
				if l := b.log.findAll(tc.logged); !strings.Contains(l[len(l)-1].raw, "too large") {
					t.Errorf("B: the 0xFFFF length is not reported as too large: %s", l[len(l)-1].raw)
				}
			} else {
				c := dialIn(t, n.a, "udp", relayServer)
				for _, p := range tc.send {
					if _, err := c.Write(p); err != nil {
						t.Fatalf("send a %d-byte datagram to B: %v", len(p), err)
					}
				}
				if tc.logged != "" {
					b.waitCount(t, tc.logged, 1, connectTimeout)
				}
			}
			b.requireAlive(t, "server B after garbage")

			a := startClient(t, n.a, tn, overlayA)
			a.waitConnected(t, 1)
			// One echo first, tried up to three times: a lost first
			// packet (seen once in CI, with the underlay's neighbour
			// still being resolved) is not the lock-out this test is
			// about; a server locked out by the garbage answers none.
			for try := 0; try < 3; try++ {
				if n.a.ping(t, "-c", "1", "-W", "2", overlayB).received == 1 {
					break
				}
				t.Logf("warm-up echo %d through the tunnel lost", try+1)
			}
			p := n.a.ping(t, "-c", "3", "-i", "0.2", "-W", "2", overlayB)
			ca := a.stopRelay(t)
			cb := b.stopRelay(t)
			if p.received != 3 {
				t.Errorf("after the garbage, ping %s through a real client: %d of %d answered, want all; B's counters: drop_wrong_peer %d, frames_in %d; A's: frames_out %d, frames_in %d\nA:\n%s\nB:\n%s",
					overlayB, p.received, p.transmitted, cb["drop_wrong_peer"], cb["frames_in"], ca["frames_out"], ca["frames_in"], a.log, b.log)
			}
			for name, min := range tc.want {
				if cb[name] < min {
					t.Errorf("B: counter %s = %d, want at least %d", name, cb[name], min)
				}
			}
			if tc.keyed {
				if c := len(b.log.findAll("relay: peer connected")); tc.transport == "tcp" && c != 1 {
					t.Errorf("B logged %d \"relay: peer connected\" lines, want 1 (garbage must not become a keyed peer)", c)
				}
				if cb["handshakes"] == 0 {
					t.Errorf("B: counter handshakes = 0 after the real client connected")
				}
			}
		})
	}
}

// handshakeInits returns keyed UDP handshake initiations (type 1) that do
// not authenticate, of every size around the real one (a type byte and a
// Noise message of 32+hello+16 bytes), so that one has the right size
// whatever the hello holds: the server must try to authenticate it.
func handshakeInits() [][]byte {
	var out [][]byte
	for n := 1 + 32 + 16; n <= 1+32+16+16; n++ {
		out = append(out, junk(n, 0x01))
	}
	return out
}

// sendTCPGarbage connects from ns to the relay server, sends p, closes its
// sending side and expects the server to hang up.
func sendTCPGarbage(t *testing.T, ns *netNS, p []byte) {
	t.Helper()
	c := dialIn(t, ns, "tcp", relayServer)
	defer c.Close()
	// The server may hang up before it has read everything: then the
	// write fails with a reset, which is fine.
	_, _ = c.Write(p)
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(stopTimeout))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after %d bytes of garbage, the server did not close the connection within %v", len(p), stopTimeout)
	}
}
