package relay

import (
	"bytes"
	"testing"

	"github.com/flynn/noise"
)

// handshakePair runs an in-memory NNpsk0 handshake and returns the
// initiator's and responder's cipher states (send, receive).
func handshakePair(t testing.TB, key *Key) (iSend, iRecv, rSend, rRecv *noise.CipherState) {
	t.Helper()
	ini, res := newHandshake(key, true, "test"), newHandshake(key, false, "test")
	m1, _, _, err := ini.WriteMessage(nil, hello(1, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := res.ReadMessage(nil, m1); err != nil {
		t.Fatal(err)
	}
	m2, r1, r2, err := res.WriteMessage(nil, hello(1, false))
	if err != nil {
		t.Fatal(err)
	}
	_, i1, i2, err := ini.ReadMessage(nil, m2)
	if err != nil {
		t.Fatal(err)
	}
	return i1, i2, r2, r1
}

// TestAEADMatchesNoise checks that aeadState is byte for byte flynn/noise's
// ChaChaPoly cipher with the same key and nonce.
func TestAEADMatchesNoise(t *testing.T) {
	k, _ := GenerateKey()
	iSend, _, _, rRecv := handshakePair(t, &k)
	ours := newAEAD(iSend)
	theirs := rRecv.Cipher()
	for _, n := range []uint64{0, 1, 255, 1 << 32, rejectAfter - 1} {
		pt := pattern(100, byte(n))
		ct := ours.seal(nil, pt, n)
		ref := iSend.Cipher().Encrypt(nil, n, nil, pt)
		if !bytes.Equal(ct, ref) {
			t.Fatalf("nonce %d: ciphertext differs from noise's", n)
		}
		got, err := theirs.Decrypt(nil, n, nil, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("nonce %d: noise cannot open ours: %v", n, err)
		}
	}
}

func TestHandshakeWrongKey(t *testing.T) {
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	ini, res := newHandshake(&k1, true, "tcp"), newHandshake(&k2, false, "tcp")
	m1, _, _, _ := ini.WriteMessage(nil, hello(1, false))
	if _, _, _, err := res.ReadMessage(nil, m1); err == nil {
		t.Fatal("responder with another key accepted the first message")
	}
	// The prologue binds the transport.
	res = newHandshake(&k1, false, "udp")
	if _, _, _, err := res.ReadMessage(nil, m1); err == nil {
		t.Fatal("a TCP handshake message was accepted by a UDP responder")
	}
}
