package stack

import (
	"math/rand/v2"
	"testing"
)

// refChecksum is RFC 1071's plain 16-bit loop.
func refChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := checksum(b), refChecksum(b); got != want {
			t.Fatalf("checksum(%d bytes) = %#04x, want %#04x", n, got, want)
		}
	}
	big := make([]byte, 65535)
	for i := range big {
		big[i] = 0xff
	}
	if got, want := checksum(big), refChecksum(big); got != want {
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
		if refChecksum(b) != 0 {
			t.Fatalf("incremental update left residue %#04x", refChecksum(b))
		}
	}
}
