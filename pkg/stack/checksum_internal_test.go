package stack

import (
	"math/rand/v2"
	"testing"

	"github.com/vhost-dev/vhost/internal/packettest"
)

func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := checksum(b), packettest.Checksum(b); got != want {
			t.Fatalf("checksum(%d bytes) = %#04x, want %#04x", n, got, want)
		}
	}
	big := make([]byte, 65535)
	for i := range big {
		big[i] = 0xff
	}
	if got, want := checksum(big), packettest.Checksum(big); got != want {
		t.Fatalf("checksum(64 KiB of ff) = %#04x, want %#04x", got, want)
	}
}

func TestUpdateChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		b := make([]byte, 8+r.IntN(64))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		b[2], b[3] = 0, 0
		c := checksum(b)
		b[2], b[3] = byte(c>>8), byte(c)
		old := uint16(b[0])<<8 | uint16(b[1])
		b[0], b[1] = 0, 0
		nc := updateChecksum(c, old, 0)
		b[2], b[3] = byte(nc>>8), byte(nc)
		if packettest.Checksum(b) != 0 {
			t.Fatalf("incremental update left residue %#04x", packettest.Checksum(b))
		}
	}
}
