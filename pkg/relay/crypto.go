package relay

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"

	"github.com/flynn/noise"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// protoVersion is the relay protocol version carried in handshake payloads.
const protoVersion = 1

// cipherSuite is Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s.
var cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

// hsMsgSize is the size of both NNpsk0 handshake messages with our payload:
// an ephemeral key, the 2-byte hello and its tag.
const hsMsgSize = 32 + helloSize + TagSize

const helloSize = 3

// helloOffload in the hello's flags byte: this end carries virtio-net
// headers and segmentation-offload frames (Config.Offload).
const helloOffload = 1

// rejectAfter is the last nonce a transport key may use; wireguard-go stops
// 2^13 short of the Noise limit, as do we. A session that reaches it (after
// 2^64 frames) must be re-established.
const rejectAfter = noise.MaxNonce - 1<<13

// newHandshake starts an NNpsk0 handshake. The prologue binds the transport,
// so a TCP handshake message cannot be replayed over UDP.
func newHandshake(key *Key, initiator bool, transport string) *noise.HandshakeState {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:           cipherSuite,
		Pattern:               noise.HandshakeNN,
		Initiator:             initiator,
		Prologue:              []byte("vhost relay v1 " + transport),
		PresharedKey:          key[:],
		PresharedKeyPlacement: 0,
	})
	if err != nil {
		// Only a PSK of the wrong length fails, and a Key is always 32 bytes.
		panic("relay: noise handshake: " + err.Error())
	}
	return hs
}

// hello is a handshake payload: our protocol version, mode and flags.
func hello(mode tundev.Mode, offload bool) []byte {
	var flags byte
	if offload {
		flags |= helloOffload
	}
	return []byte{protoVersion, byte(mode), flags}
}

// checkHello checks the peer's handshake payload against ours and reports
// whether the peer offers offload.
func checkHello(p []byte, mode tundev.Mode) (offload bool, err error) {
	if len(p) != helloSize {
		return false, fmt.Errorf("%w: handshake payload is %d bytes, want %d", ErrHandshake, len(p), helloSize)
	}
	if p[0] != protoVersion {
		return false, fmt.Errorf("%w: peer speaks relay protocol version %d, this end version %d: run the same vhost version on both ends",
			ErrHandshake, p[0], protoVersion)
	}
	if peer := tundev.Mode(p[1]); peer != mode {
		return false, &modeError{peer: peer, local: mode}
	}
	return p[2]&helloOffload != 0, nil
}

// aeadState is one direction of a Noise transport: the ChaCha20-Poly1305 key
// that noise.CipherState holds, with Noise's nonce encoding (32 zero bits,
// then the 64-bit counter little-endian; Noise spec §12.3).
//
// We do not call noise.Cipher.Encrypt per frame because flynn/noise builds
// each nonce in a fresh heap slice; this is the same primitive and the same
// nonce with a session-owned nonce buffer, so a frame costs no allocation.
// TestAEADMatchesNoise checks the two agree byte for byte.
type aeadState struct {
	aead  cipher.AEAD
	nonce [chacha20poly1305.NonceSize]byte
}

func newAEAD(cs *noise.CipherState) aeadState {
	k := cs.UnsafeKey()
	a, err := chacha20poly1305.New(k[:])
	if err != nil {
		panic("relay: chacha20poly1305: " + err.Error()) // only for a key of the wrong size
	}
	return aeadState{aead: a}
}

// seal appends the sealed plaintext to dst; dst may be plaintext[:0].
func (a *aeadState) seal(dst, plaintext []byte, n uint64) []byte {
	binary.LittleEndian.PutUint64(a.nonce[4:], n)
	return a.aead.Seal(dst, a.nonce[:], plaintext, nil)
}

// open appends the opened ciphertext to dst; dst may be ciphertext[:0].
// On failure the bytes at dst may have been overwritten.
func (a *aeadState) open(dst, ciphertext []byte, n uint64) ([]byte, error) {
	binary.LittleEndian.PutUint64(a.nonce[4:], n)
	return a.aead.Open(dst, a.nonce[:], ciphertext, nil)
}
