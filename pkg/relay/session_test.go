package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// TestRoundTrip sends batches of frames of every size 1..MaxFrame both ways.
func TestRoundTrip(t *testing.T) {
	const maxFrame = 1514
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			ccfg, scfg := config(t, v, maxFrame), config(t, v, maxFrame)
			c, s, _ := pair(t, v, ccfg, scfg)
			for _, dir := range []struct {
				name     string
				from, to Session
			}{{"client to server", c, s}, {"server to client", s, c}} {
				const batch = 32
				for start := 1; start <= maxFrame; start += batch {
					var bufs [][]byte
					for size := start; size < start+batch && size <= maxFrame; size++ {
						b := make([]byte, off+size, off+size+TagSize)
						bufs = append(bufs, b)
					}
					fill(bufs, byte(start))
					want := make([][]byte, len(bufs))
					for i, b := range bufs {
						want[i] = append([]byte(nil), b[off:]...)
					}
					if n, err := dir.from.Write(bufs, off); n != len(bufs) || err != nil {
						t.Fatalf("%s: Write = %d, %v; want %d, nil", dir.name, n, err, len(bufs))
					}
					got := readN(t, dir.to, len(want), maxFrame, 5*time.Second)
					for i := range want {
						if !bytes.Equal(got[i], want[i]) {
							t.Fatalf("%s: frame of size %d arrived as %d bytes, or changed", dir.name, len(want[i]), len(got[i]))
						}
					}
				}
			}
			if got, want := scfg.Stats.FramesIn.Load(), uint64(maxFrame+1); got != want {
				t.Errorf("server frames_in = %d, want %d", got, want)
			}
			if got := ccfg.Stats.FramesIn.Load(); got != maxFrame {
				t.Errorf("client frames_in = %d, want %d", got, maxFrame)
			}
		})
	}
}

// TestLargestFrame sends the largest frame each transport carries.
func TestLargestFrame(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			want := map[variant]int{
				variants[0]: 65535, variants[1]: 65535 - TagSize,
				variants[2]: maxUDPPayload, variants[3]: maxUDPPayload - minData,
			}[v]
			c, s, _ := pair(t, v, config(t, v, 0), config(t, v, 0))
			bufs := fill(bufsOf(1, want), 7)
			orig := append([]byte(nil), bufs[0][off:]...)
			if n, err := c.Write(bufs, off); n != 1 || err != nil {
				t.Fatalf("Write(%d bytes) = %d, %v", want, n, err)
			}
			got := readN(t, s, 1, want, 5*time.Second)
			if !bytes.Equal(got[0], orig) {
				t.Fatalf("%d-byte frame arrived as %d bytes, or changed", want, len(got[0]))
			}
			big := bufsOf(2, want+1)
			big[0] = big[0][:off+10]
			n, err := c.Write(big, off)
			if n != 1 || !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("Write(10, %d bytes) = %d, %v; want 1, ErrFrameTooLarge", want+1, n, err)
			}
			readN(t, s, 1, want, 5*time.Second)
		})
	}
}

func TestWriteChecks(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c, _, _ := pair(t, v, config(t, v, 1500), config(t, v, 1500))
			if _, err := c.Write(bufsOf(1, 10), Headroom-1); err == nil || !strings.Contains(err.Error(), "relay.Headroom") {
				t.Errorf("Write(offset %d) error = %v, want a headroom error", Headroom-1, err)
			}
			if n, err := c.Write([][]byte{make([]byte, off)}, off); n != 0 || !errors.Is(err, ErrBadFrame) {
				t.Errorf("Write(empty) = %d, %v; want 0, ErrBadFrame", n, err)
			}
			if v.keyed {
				tight := [][]byte{make([]byte, off+10)}
				if _, err := c.Write(tight, off); err == nil || !strings.Contains(err.Error(), "TagSize") {
					t.Errorf("Write(no tag room) error = %v, want a capacity error", err)
				}
			}
		})
	}
}

func TestTCPWrongKey(t *testing.T) {
	k2, _ := GenerateKey()
	v := variants[1]
	ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
	scfg.Key = &k2
	cerr, serr := tcpHandshakeErrors(t, ccfg, scfg)
	for _, e := range []struct {
		end string
		err error
	}{{"client", cerr}, {"server", serr}} {
		if !errors.Is(e.err, ErrHandshake) {
			t.Errorf("%s error = %v, want ErrHandshake", e.end, e.err)
		}
		if e.err != nil && !strings.Contains(e.err.Error(), "127.0.0.1:") {
			t.Errorf("%s error = %q, want it to name the peer", e.end, e.err)
		}
	}
	if scfg.Stats.DropHandshake.Load() != 1 {
		t.Errorf("server drop_handshake_failed = %d, want 1", scfg.Stats.DropHandshake.Load())
	}
}

func TestTCPModeMismatch(t *testing.T) {
	v := variants[1]
	ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
	ccfg.Mode, scfg.Mode = tundev.TAP, tundev.TUN
	cerr, serr := tcpHandshakeErrors(t, ccfg, scfg)
	for _, e := range []struct {
		end, want string
		err       error
	}{
		{"client", "relay: peer is in TUN mode but this end is in TAP mode: use the same --mode on both ends", cerr},
		{"server", "relay: peer is in TAP mode but this end is in TUN mode: use the same --mode on both ends", serr},
	} {
		if e.err == nil || e.err.Error() != e.want || !errors.Is(e.err, ErrModeMismatch) || !errors.Is(e.err, ErrHandshake) {
			t.Errorf("%s error = %v, want %q wrapping ErrModeMismatch and ErrHandshake", e.end, e.err, e.want)
		}
	}
}

// TestTCPKeyedMeetsPlain: a plain client sends a packet, not a handshake;
// a keyed server refuses it. A keyed client of a plain server times out.
func TestTCPKeyedMeetsPlain(t *testing.T) {
	ccfg, scfg := config(t, variants[0], 1500), config(t, variants[1], 1500)
	_, serr := tcpHandshakeErrors(t, ccfg, scfg)
	if !errors.Is(serr, ErrHandshake) {
		t.Errorf("keyed server, plain client: server error = %v, want ErrHandshake", serr)
	}
	ccfg, scfg = config(t, variants[1], 1500), config(t, variants[0], 1500)
	ccfg.HandshakeTimeout = 200 * time.Millisecond
	cerr, _ := tcpHandshakeErrors(t, ccfg, scfg)
	if !errors.Is(cerr, ErrHandshake) || !strings.Contains(cerr.Error(), "is the peer using a key?") {
		t.Errorf("keyed client, plain server: client error = %v, want ErrHandshake asking about the key", cerr)
	}
}

// tcpHandshakeErrors connects a client and server over loopback and returns
// their constructor errors. A plain end writes one frame and closes.
func tcpHandshakeErrors(t *testing.T, ccfg, scfg Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		s, err := ServerTCP(conn, scfg)
		if err == nil && scfg.Key == nil {
			// A plain server reads until the client gives up, as a real one would.
			for err == nil {
				_, err = s.Read(bufsOf(1, 1500), make([]int, 1), off)
			}
			err = nil
		}
		conn.Close()
		ch <- err
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	s, cerr := ClientTCP(cc, ccfg)
	if cerr == nil && ccfg.Key == nil {
		s.Write(fill(bufsOf(1, 100), 1), off)
	}
	if cerr != nil {
		cc.Close()
	}
	return cerr, <-ch
}

// TestTCPGarbage feeds bytes that are not a stream of frames to servers.
func TestTCPGarbage(t *testing.T) {
	for _, tt := range []struct {
		name    string
		keyed   bool
		data    []byte
		wantErr error
	}{
		{"plain: length above max", false, []byte{0xff, 0xff, 1, 2, 3}, ErrFrameTooLarge},
		{"plain: zero length", false, []byte{0, 0, 0, 0}, ErrBadFrame},
		{"plain: truncated", false, []byte{0, 100, 1, 2}, io.ErrUnexpectedEOF},
		{"keyed: length above max", true, []byte{0xff, 0xff, 1, 2, 3}, ErrHandshake},
		{"keyed: random handshake", true, append([]byte{0, hsMsgSize}, pattern(hsMsgSize, 3)...), ErrHandshake},
		{"keyed: short handshake", true, append([]byte{0, 5}, pattern(5, 3)...), ErrHandshake},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := variants[0]
			if tt.keyed {
				v = variants[1]
			}
			scfg := config(t, v, 1500)
			a, b := net.Pipe()
			defer a.Close()
			go func() { a.Write(tt.data); a.Close() }()
			s, err := ServerTCP(b, scfg)
			if err == nil {
				var n int
				n, err = s.Read(bufsOf(4, 1500), make([]int, 4), off)
				if n != 0 {
					t.Fatalf("Read delivered %d frames from garbage", n)
				}
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrFrameTooLarge && scfg.Stats.DropTooLarge.Load() != 1 {
				t.Errorf("drop_too_large = %d, want 1", scfg.Stats.DropTooLarge.Load())
			}
		})
	}
}

// TestTCPTampered flips a bit of a keyed frame on the wire.
func TestTCPTampered(t *testing.T) {
	scfg := config(t, variants[1], 1500)
	ca, sa := net.Pipe() // client end, middle's end
	sv, sb := net.Pipe() // server end, middle's end
	// Relay the handshake both ways, then corrupt the first data frame.
	go io.Copy(sa, sb)
	go func() {
		buf := make([]byte, 4096)
		seen := 0
		for {
			n, err := sa.Read(buf)
			if err != nil {
				sb.Close()
				return
			}
			if p := LenSize + hsMsgSize + LenSize + 3; seen <= p && p < seen+n {
				buf[p-seen] ^= 1
			}
			seen += n
			sb.Write(buf[:n])
		}
	}()
	ch := make(chan Session, 1)
	go func() {
		s, err := ServerTCP(sv, scfg)
		if err != nil {
			t.Error(err)
		}
		ch <- s
	}()
	c, err := ClientTCP(ca, config(t, variants[1], 1500))
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	if s == nil {
		return
	}
	defer s.Close()
	defer c.Close()
	c.Write(fill(bufsOf(1, 100), 1), off)
	n, err := s.Read(bufsOf(1, 1500), make([]int, 1), off)
	if n != 0 || err == nil || !strings.Contains(err.Error(), "failed authentication") {
		t.Fatalf("Read(tampered) = %d, %v; want 0 and an authentication error", n, err)
	}
	if scfg.Stats.DropAuthFailed.Load() != 1 {
		t.Errorf("drop_auth_failed = %d, want 1", scfg.Stats.DropAuthFailed.Load())
	}
}

func TestUDPWrongKey(t *testing.T) {
	v := variants[3]
	k2, _ := GenerateKey()
	scfg, ccfg := config(t, v, 1500), config(t, v, 1500)
	ccfg.Key = &k2
	ccfg.HandshakeTimeout = 1500 * time.Millisecond // two transmissions
	cerr := udpHandshake(t, ccfg, scfg)
	if !errors.Is(cerr, ErrHandshake) {
		t.Fatalf("client error = %v, want ErrHandshake", cerr)
	}
	if got := scfg.Stats.DropHandshake.Load(); got < 1 || got > 2 {
		t.Errorf("server drop_handshake_failed = %d, want 1 or 2 (one per transmission)", got)
	}
}

func TestUDPModeMismatch(t *testing.T) {
	v := variants[3]
	scfg, ccfg := config(t, v, 1500), config(t, v, 1500)
	ccfg.Mode, scfg.Mode = tundev.TUN, tundev.TAP
	cerr := udpHandshake(t, ccfg, scfg)
	want := "relay: peer is in TAP mode but this end is in TUN mode: use the same --mode on both ends"
	if cerr == nil || cerr.Error() != want || !errors.Is(cerr, ErrHandshake) {
		t.Fatalf("client error = %v, want %q", cerr, want)
	}
	waitFor(t, "server to count the handshake", func() bool { return scfg.Stats.DropHandshake.Load() == 1 })
}

// udpHandshake runs a keyed UDP client against a server that reads until
// closed, and returns the client's error.
func udpHandshake(t *testing.T, ccfg, scfg Config) error {
	su, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ListenUDP(su, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		bufs, sizes := bufsOf(8, 1500), make([]int, 8)
		for {
			if _, err := s.Read(bufs, sizes, off); isErr(err, ErrClosed) {
				return
			}
		}
	}()
	defer func() { s.Close(); <-done }()
	cu, err := net.DialUDP("udp", nil, su.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cu.Close()
	c, err := ClientUDP(cu, ccfg)
	if err == nil {
		c.Close()
	}
	return err
}

// sealed returns the datagram c's Write put on the wire for the frame in
// b (keyed UDP seals in place: header, ciphertext, tag).
func sealed(b []byte) []byte { return append([]byte(nil), b[off-dataHdr:len(b)+TagSize]...) }

func TestUDPReplayTamperWrongPeer(t *testing.T) {
	v := variants[3]
	ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
	c, s, cn := pair(t, v, ccfg, scfg)
	bufs := fill(bufsOf(1, 100), 5)
	if _, err := c.Write(bufs, off); err != nil {
		t.Fatal(err)
	}
	wire := sealed(bufs[0])
	readN(t, s, 1, 1500, 5*time.Second)

	// Replay: the same datagram from the same socket.
	cn.cu.Write(wire)
	expectOnlyMarker(t, c, s)
	if got := scfg.Stats.DropReplay.Load(); got != 1 {
		t.Errorf("drop_replay = %d, want 1", got)
	}

	// Tampered: every byte position flipped in turn, from the peer's address.
	for i := 1; i < len(wire); i++ {
		bad := bytes.Clone(wire)
		bad[i] ^= 0x40
		cn.cu.Write(bad)
	}
	expectOnlyMarker(t, c, s)
	if got := scfg.Stats.DropAuthFailed.Load(); got != uint64(len(wire)-1) {
		t.Errorf("drop_auth_failed = %d, want %d", got, len(wire)-1)
	}

	// A valid datagram from another address.
	other, err := net.DialUDP("udp", nil, cn.su.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	fresh := fill(bufsOf(1, 100), 6)
	// Seal one with the client's keys without sending it through the client.
	ks := c.(*udpSession)
	ks.mu.Lock()
	fresh[0][off-dataHdr] = msgData
	ctr := ks.cur.sendN
	ks.cur.sendN++
	for i := range 8 {
		fresh[0][off-dataHdr+1+i] = byte(ctr >> (8 * i))
	}
	ks.cur.send.seal(fresh[0][off:off], fresh[0][off:], ctr)
	ks.mu.Unlock()
	other.Write(sealed(fresh[0]))
	expectOnlyMarker(t, c, s)
	if got := scfg.Stats.DropWrongPeer.Load(); got != 1 {
		t.Errorf("drop_wrong_peer = %d, want 1", got)
	}
	if got := scfg.Stats.FramesIn.Load(); got != 5 {
		t.Errorf("frames_in = %d, want 5 (sync, frame, 3 markers)", got)
	}
}

// TestUDPGarbage sends datagrams that are not the protocol to servers, from
// the peer's address and from a stranger.
func TestUDPGarbage(t *testing.T) {
	garbage := [][]byte{
		{}, {0}, {1}, {2}, {3}, {4}, {5}, {0xff},
		append([]byte{msgInit}, pattern(hsMsgSize, 1)...),
		append([]byte{msgInit}, pattern(hsMsgSize+1, 1)...),
		append([]byte{msgResponse}, pattern(hsMsgSize, 1)...),
		append([]byte{msgData}, pattern(dataHdr-1, 1)...),
		append([]byte{msgData}, pattern(minData-1, 1)...),
		append([]byte{msgData}, pattern(minData, 1)...),
		append([]byte{msgData}, pattern(1400, 1)...),
		pattern(1501, 2), // too large for a plain server
	}
	for _, v := range variants[2:] {
		t.Run(v.name, func(t *testing.T) {
			ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
			c, s, cn := pair(t, v, ccfg, scfg)
			stranger, err := net.DialUDP("udp", nil, cn.su.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			defer stranger.Close()
			for _, g := range garbage {
				stranger.Write(g)
				if v.keyed || len(g) == 0 || len(g) > 1500 {
					cn.cu.Write(g) // a plain server takes any other datagram from its peer
				}
			}
			expectOnlyMarker(t, c, s)
			var drops uint64
			for _, ctr := range scfg.Stats.Snapshot() {
				if strings.HasPrefix(ctr.Name, "drop_") {
					drops += ctr.Value
				}
			}
			if drops == 0 {
				t.Error("no drops counted for garbage")
			}
			t.Logf("server counters: %v", scfg.Stats.Snapshot())
		})
	}
}

func TestUDPPlainLocksOntoFirstPeer(t *testing.T) {
	v := variants[2]
	ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
	c, s, cn := pair(t, v, ccfg, scfg)
	if got, want := s.Peer().String(), cn.cu.LocalAddr().String(); got != want {
		t.Errorf("server Peer() = %s, want %s", got, want)
	}
	stranger, _ := net.DialUDP("udp", nil, cn.su.LocalAddr().(*net.UDPAddr))
	defer stranger.Close()
	stranger.Write([]byte("not from the peer"))
	expectOnlyMarker(t, c, s)
	if got := scfg.Stats.DropWrongPeer.Load(); got != 1 {
		t.Errorf("drop_wrong_peer = %d, want 1", got)
	}
	// The server answers the peer.
	expectOnlyMarker(t, s, c)
}

// TestUDPPlainFixedPeer: with a peer given, a server can send first and
// accepts nobody else.
func TestUDPPlainFixedPeer(t *testing.T) {
	v := variants[2]
	su, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	cu, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	cu.Close()
	cu, err := net.DialUDP("udp", cu.LocalAddr().(*net.UDPAddr), su.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	scfg := config(t, v, 1500)
	s, _ := ListenUDP(su, scfg, cu.LocalAddr().(*net.UDPAddr))
	defer s.Close()
	c, _ := ClientUDP(cu, config(t, v, 1500))
	defer c.Close()
	expectOnlyMarker(t, s, c)
	stranger, _ := net.DialUDP("udp", nil, su.LocalAddr().(*net.UDPAddr))
	defer stranger.Close()
	stranger.Write([]byte("x"))
	expectOnlyMarker(t, c, s)
	if got := scfg.Stats.DropWrongPeer.Load(); got != 1 {
		t.Errorf("drop_wrong_peer = %d, want 1", got)
	}
}

// TestUDPServerBeforePeer: a server's writes before it has a peer are
// dropped and counted, not errors.
func TestUDPServerBeforePeer(t *testing.T) {
	for _, v := range variants[2:] {
		t.Run(v.name, func(t *testing.T) {
			su, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			scfg := config(t, v, 1500)
			s, _ := ListenUDP(su, scfg, nil)
			defer s.Close()
			if n, err := s.Write(fill(bufsOf(3, 10), 1), off); n != 3 || err != nil {
				t.Fatalf("Write = %d, %v; want 3, nil", n, err)
			}
			if got := scfg.Stats.DropNoPeer.Load(); got != 3 {
				t.Errorf("drop_no_peer = %d, want 3", got)
			}
			if s.Peer() != nil {
				t.Errorf("Peer() = %v, want nil", s.Peer())
			}
		})
	}
}

// TestUDPRehandshake: a client that restarts (new socket, new handshake)
// replaces the server's session; the old client's traffic is dropped.
func TestUDPRehandshake(t *testing.T) {
	v := variants[3]
	ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
	c1, s, cn := pair(t, v, ccfg, scfg)
	cu2, _ := net.DialUDP("udp", nil, cn.su.LocalAddr().(*net.UDPAddr))
	// The server must be reading to answer the handshake.
	got := make(chan [][]byte, 1)
	go func() {
		bufs, sizes := bufsOf(1, 1500), make([]int, 1)
		n, err := s.Read(bufs, sizes, off)
		if err != nil || n != 1 {
			t.Error(n, err)
		}
		got <- [][]byte{bytes.Clone(bufs[0][off : off+sizes[0]])}
	}()
	c2, err := ClientUDP(cu2, config(t, v, 1500))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Write(fill(bufsOf(1, 77), 3), off); err != nil {
		t.Fatal(err)
	}
	if f := <-got; len(f[0]) != 77 {
		t.Fatalf("server read %d bytes, want the new client's 77", len(f[0]))
	}
	if got, want := s.Peer().String(), cu2.LocalAddr().String(); got != want {
		t.Errorf("server Peer() = %s, want %s", got, want)
	}
	c1.Write(fill(bufsOf(1, 55), 3), off) // the old session is gone
	expectOnlyMarker(t, c2, s)
	expectOnlyMarker(t, s, c2)
	if got := scfg.Stats.Handshakes.Load(); got != 2 {
		t.Errorf("handshakes = %d, want 2", got)
	}
}

func TestUDPKeepaliveAndPeerDead(t *testing.T) {
	v := variants[3]
	const ka = 100 * time.Millisecond
	ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
	ccfg.Keepalive, scfg.Keepalive = ka, ka
	c, s, _ := pair(t, v, ccfg, scfg)

	// Idle for well over 3×Keepalive: keepalives keep both ends alive.
	errc := make(chan error, 2)
	for _, sess := range []Session{c, s} {
		go func() {
			_, err := sess.Read(bufsOf(1, 1500), make([]int, 1), off)
			errc <- err
		}()
	}
	time.Sleep(8 * ka)
	select {
	case err := <-errc:
		t.Fatalf("Read returned %v while the peer was alive", err)
	default:
	}
	if ccfg.Stats.KeepalivesIn.Load() == 0 || scfg.Stats.KeepalivesIn.Load() == 0 {
		t.Errorf("keepalives in: client %d, server %d; want both > 0", ccfg.Stats.KeepalivesIn.Load(), scfg.Stats.KeepalivesIn.Load())
	}
	// Release both readers.
	c.Write(fill(bufsOf(1, 10), 1), off)
	s.Write(fill(bufsOf(1, 10), 1), off)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}

	// Silence the client: the server notices within about 3×Keepalive.
	c.(*udpSession).done <- struct{}{} // stops the client's keepalive loop
	start := time.Now()
	_, err := s.Read(bufsOf(1, 1500), make([]int, 1), off)
	if !errors.Is(err, ErrPeerDead) {
		t.Fatalf("server Read = %v, want ErrPeerDead", err)
	}
	if el := time.Since(start); el > 3*ka+500*time.Millisecond {
		t.Errorf("ErrPeerDead after %v, want about %v", el, 3*ka)
	}
	t.Log(err)
}

func TestClose(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			c, s, _ := pair(t, v, config(t, v, 1500), config(t, v, 1500))
			errc := make(chan error, 1)
			go func() {
				_, err := s.Read(bufsOf(1, 1500), make([]int, 1), off)
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			s.Close()
			select {
			case err := <-errc:
				if !errors.Is(err, ErrClosed) {
					t.Errorf("Read after Close = %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not unblock Read")
			}
			if _, err := s.Write(fill(bufsOf(1, 10), 1), off); err == nil {
				t.Error("Write after Close succeeded")
			}
			_ = c
		})
	}
}

func TestStatsSnapshot(t *testing.T) {
	var s Stats
	s.DropReplay.Add(3)
	names := map[string]uint64{}
	for _, c := range s.Snapshot() {
		names[c.Name] = c.Value
	}
	for _, n := range []string{"frames_in", "bytes_out", "drop_too_large", "drop_bad_frame", "drop_auth_failed", "drop_replay", "drop_wrong_peer", "drop_handshake_failed"} {
		if _, ok := names[n]; !ok {
			t.Errorf("Snapshot has no %q", n)
		}
	}
	if names["drop_replay"] != 3 {
		t.Errorf("drop_replay = %d, want 3", names["drop_replay"])
	}
	_ = fmt.Sprint(names)
}

// TestUDPPlainStrayDoesNotLock: a first datagram that cannot be a packet of
// the mode does not make its sender the peer; the real client's does.
func TestUDPPlainStrayDoesNotLock(t *testing.T) {
	v := variants[2]
	su, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	scfg := config(t, v, 1500)
	s, err := ListenUDP(su, scfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stranger, _ := net.DialUDP("udp", nil, su.LocalAddr().(*net.UDPAddr))
	defer stranger.Close()
	stranger.Write([]byte{0x00, 1, 2, 3}) // version 0: not an IP packet
	cu, err := net.DialUDP("udp", nil, su.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := ClientUDP(cu, config(t, v, 1500))
	defer c.Close()
	expectOnlyMarker(t, c, s)
	if got, want := s.Peer().String(), cu.LocalAddr().String(); got != want {
		t.Errorf("server Peer() = %s, want the client %s", got, want)
	}
	if got := scfg.Stats.DropBadFrame.Load(); got != 1 {
		t.Errorf("drop_bad_frame = %d, want 1", got)
	}
	expectOnlyMarker(t, s, c)
}
