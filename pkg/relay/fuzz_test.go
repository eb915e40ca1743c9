package relay

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// FuzzFrameReader feeds arbitrary streams, in arbitrary read sizes, to a
// FrameReader. Invariants: no panic; every frame is 1..max bytes; the
// frames re-encoded are exactly a prefix of the stream; after an error no
// frame follows.
func FuzzFrameReader(f *testing.F) {
	f.Add(stream(pattern(1, 1), pattern(1500, 2)), uint16(1500), uint8(0))
	f.Add(stream(pattern(1501, 1)), uint16(1500), uint8(3))
	f.Add([]byte{0, 0, 0, 1, 7}, uint16(1500), uint8(1))
	f.Add([]byte{0xff, 0xff}, uint16(0xffff), uint8(2))
	f.Add(stream(pattern(40, 1), pattern(2, 2))[:30], uint16(64), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, max uint16, chunk uint8) {
		var r io.Reader = bytes.NewReader(data)
		if chunk > 0 {
			r = &chunkReader{data: data, n: int(chunk)}
		}
		fr := NewFrameReader(r, int(max))
		limit := clampFrame(int(max), maxStreamFrame)
		var got []byte
		for {
			frame, err := fr.Next()
			if err != nil {
				if frame != nil {
					t.Fatalf("Next returned a frame with error %v", err)
				}
				if f2, err2 := fr.Next(); f2 != nil || err2 == nil {
					t.Fatalf("Next after error %v = %d bytes, %v; want the error again", err, len(f2), err2)
				}
				break
			}
			if len(frame) == 0 || len(frame) > limit {
				t.Fatalf("frame of %d bytes, max %d", len(frame), limit)
			}
			got = binary.BigEndian.AppendUint16(got, uint16(len(frame)))
			got = append(got, frame...)
		}
		if !bytes.HasPrefix(data, got) {
			t.Fatalf("frames do not re-encode to a prefix of the stream")
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}

// FuzzOpenDatagram feeds arbitrary datagrams, from the peer's address or a
// stranger's, to a keyed UDP server's receive path with an established
// session. Invariants: no panic; a delivered frame is at most MaxFrame;
// nothing is delivered that the peer did not seal, and nothing twice.
func FuzzOpenDatagram(f *testing.F) {
	su, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer su.Close()
	key := testKey
	nop := zerolog.Nop()
	const maxFrame = 1500
	us, err := ListenUDP(su, Config{Key: &key, MaxFrame: maxFrame, Log: &nop}, nil)
	if err != nil {
		f.Fatal(err)
	}
	s := us.(*udpSession)
	peer := netip.MustParseAddrPort("127.0.0.1:9") // discard: answers go nowhere
	stranger := netip.MustParseAddrPort("127.0.0.2:9")
	iSend, _, rSend, rRecv := handshakePair(f, &key)
	s.mu.Lock() // the keepalive timer reads these
	s.cur = &keyset{peer: peer, send: newAEAD(rSend), recv: newAEAD(rRecv)}
	s.peer = peer
	s.mu.Unlock()
	s.lastRecv = time.Now()

	// Genuine datagrams the peer sealed: the only ones that may be delivered.
	genuine := map[string]bool{}
	seal := newAEAD(iSend)
	for i, size := range []int{0, 1, 64, maxFrame, maxFrame + 1} {
		d := []byte{msgData}
		d = binary.LittleEndian.AppendUint64(d, uint64(i))
		d = seal.seal(d, pattern(size, byte(i)), uint64(i))
		genuine[string(d)] = true
		f.Add(d, false)
		f.Add(d, true)
	}
	f.Add([]byte{}, false)
	f.Add([]byte{msgInit}, false)
	f.Add(append([]byte{msgInit}, pattern(hsMsgSize, 1)...), false)
	f.Add(append([]byte{msgResponse}, pattern(hsMsgSize, 1)...), false)
	f.Add(append([]byte{msgData}, pattern(minData, 1)...), false)
	f.Add(append([]byte{msgData}, pattern(minData-1, 1)...), true)
	f.Add(append([]byte{9}, pattern(100, 1)...), false)
	delivered := map[string]bool{}
	buf := make([]byte, off+maxUDPPayload, off+maxUDPPayload+TagSize)

	f.Fuzz(func(t *testing.T, d []byte, fromStranger bool) {
		if len(d) > cap(buf)-(off-dataHdr) {
			return // the kernel would have truncated it: recvMeta.trunc
		}
		from := peer
		if fromStranger {
			from = stranger
		}
		copy(buf[off-dataHdr:cap(buf)], d)
		m := recvMeta{n: len(d), from: from}
		size, ok := s.accept(buf, off, &m, time.Now())
		if !ok {
			return
		}
		if size > maxFrame {
			t.Fatalf("delivered %d bytes, MaxFrame %d", size, maxFrame)
		}
		if fromStranger || !genuine[string(d)] {
			t.Fatalf("delivered a %d-byte frame from a datagram the peer did not send (stranger %v)", size, fromStranger)
		}
		if delivered[string(d)] {
			t.Fatalf("delivered a replayed datagram")
		}
		delivered[string(d)] = true
	})
}
