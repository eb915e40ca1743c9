package relay

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// off is the offset tests use: a device's headroom.
const off = tundev.Headroom

type variant struct {
	name  string
	udp   bool
	keyed bool
}

var variants = []variant{
	{"tcp-plain", false, false},
	{"tcp-keyed", false, true},
	{"udp-plain", true, false},
	{"udp-keyed", true, true},
}

// testKey is a fixed key, so failures reproduce.
var testKey = Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func testLogger(t testing.TB) *zerolog.Logger {
	l := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	return &l
}

// config returns a Config for v with fresh Stats and a test logger.
func config(t testing.TB, v variant, maxFrame int) Config {
	cfg := Config{MaxFrame: maxFrame, Stats: new(Stats), Log: testLogger(t), HandshakeTimeout: 3 * time.Second}
	if v.keyed {
		k := testKey
		cfg.Key = &k
	}
	return cfg
}

// bufsOf returns n buffers with room for frames of size bytes at off, and
// the spare capacity a keyed session needs.
func bufsOf(n, size int) [][]byte {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, off+size, off+size+TagSize)
	}
	return b
}

// conns is what a pair was built on, for tests that go around the session.
type conns struct {
	client, server net.Conn // TCP
	cu, su         *net.UDPConn
}

// pair builds a connected client and server session over loopback and
// exchanges one frame client to server, so a UDP server knows its peer.
func pair(t testing.TB, v variant, ccfg, scfg Config) (c, s Session, cn conns) {
	t.Helper()
	if v.udp {
		su, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		s, err = ListenUDP(su, scfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() { // the server handles the handshake inside Read
			bufs, sizes := bufsOf(1, 64), make([]int, 1)
			_, err := s.Read(bufs, sizes, off)
			got <- err
		}()
		cu, err := net.DialUDP("udp", nil, su.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		c, err = ClientUDP(cu, ccfg)
		if err != nil {
			s.Close()
			cu.Close()
			t.Fatal(err)
		}
		if _, err := c.Write(fill(bufsOf(1, 20), 1), off); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server did not receive the first frame")
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s, conns{cu: cu, su: su}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		s    Session
		conn net.Conn
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			ch <- res{err: err}
			return
		}
		s, err := ServerTCP(conn, scfg)
		ch <- res{s, conn, err}
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err = ClientTCP(cc, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.s.Close() })
	if _, err := c.Write(fill(bufsOf(1, 20), 1), off); err != nil {
		t.Fatal(err)
	}
	readN(t, r.s, 1, 64, 5*time.Second)
	return c, r.s, conns{client: cc, server: r.conn}
}

// fill sets every payload to a pattern of its size and seed. The first byte
// is an IPv4 version nibble, so each frame can be a TUN packet (a plain UDP
// server takes a new peer only from such a datagram), and so is the byte
// after a virtio-net header's worth, for sessions with offload.
func fill(bufs [][]byte, seed byte) [][]byte {
	for i, b := range bufs {
		for j := off; j < len(b); j++ {
			b[j] = seed + byte(i) + byte(j*13)
		}
		if len(b) > off {
			b[off] = 0x45
		}
		if len(b) > off+tundev.VnetHdrLen {
			b[off+tundev.VnetHdrLen] = 0x45 // the packet behind a virtio-net header
		}
	}
	return bufs
}

// readN reads until n frames arrived or the timeout, returning copies.
func readN(t testing.TB, s Session, n, size int, timeout time.Duration) [][]byte {
	t.Helper()
	type res struct {
		frames [][]byte
		err    error
	}
	ch := make(chan res, 1)
	go func() {
		bufs, sizes := bufsOf(64, size), make([]int, 64)
		var out [][]byte
		for len(out) < n {
			k, err := s.Read(bufs[:min(64, n-len(out))], sizes, off)
			if err != nil {
				ch <- res{out, err}
				return
			}
			for i := range k {
				out = append(out, append([]byte(nil), bufs[i][off:off+sizes[i]]...))
			}
		}
		ch <- res{out, nil}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Read after %d of %d frames: %v", len(r.frames), n, r.err)
		}
		return r.frames
	case <-time.After(timeout):
		t.Fatalf("Read: %d frames did not arrive within %v", n, timeout)
	}
	return nil
}

// expectNoFrame checks that Read delivers nothing before a marker frame
// sent by from.
func expectOnlyMarker(t *testing.T, from, to Session) {
	t.Helper()
	marker := fill(bufsOf(1, 33), 99)
	want := append([]byte(nil), marker[0][off:]...)
	if _, err := from.Write(marker, off); err != nil {
		t.Fatal(err)
	}
	got := readN(t, to, 1, 2000, 5*time.Second)
	if string(got[0]) != string(want) {
		t.Fatalf("Read delivered a %d-byte frame, want only the %d-byte marker", len(got[0]), len(want))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }
