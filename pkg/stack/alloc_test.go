package stack_test

import (
	"testing"

	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

// hotPaths are the per-packet paths that must not allocate.
func hotPaths(t testing.TB) []struct {
	name     string
	ethernet bool
	pkts     [][]byte
} {
	big := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, Payload: make([]byte, 8000)}.IPv4(t)
	bad := corrupt(goldenEcho, func(b []byte) { b[10] ^= 1 })
	return []struct {
		name     string
		ethernet bool
		pkts     [][]byte
	}{
		{"echo TUN", false, [][]byte{goldenEcho}},
		{"echo TAP", true, [][]byte{goldenEchoFrame}},
		{"ARP reply", true, [][]byte{goldenARPRequest}},
		{"fragmented echo 8000", false, pt.Fragment(t, big, 1480)},
		{"drop bad checksum", false, [][]byte{bad}},
		{"drop unsupported frame", true, [][]byte{pt.Ethernet(t, hostMAC, kernelMAC, layers.EthernetTypeIPv6, make([]byte, 40))}},
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, tc := range hotPaths(t) {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack(t, tc.ethernet)
			run := func() {
				for _, p := range tc.pkts {
					out.Reset()
					s.Handle(p, out)
				}
			}
			run() // warm up: reassembly buffers are allocated once, then reused
			if n := testing.AllocsPerRun(100, run); n != 0 {
				t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
			}
		})
	}
}

func BenchmarkHandle(b *testing.B) {
	for _, tc := range hotPaths(b) {
		b.Run(tc.name, func(b *testing.B) {
			s, out := newStack(b, tc.ethernet)
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range tc.pkts {
					out.Reset()
					s.Handle(p, out)
				}
			}
		})
	}
}

func BenchmarkAnnounce(b *testing.B) {
	s, out := newStack(b, true)
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		s.Announce(out, 0)
	}
}

var _ = stack.Replied
