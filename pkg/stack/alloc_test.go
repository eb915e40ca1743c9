package stack_test

import (
	"net/netip"
	"testing"
	"time"

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

// impairedPaths are hot paths through a host (and routers) with loss,
// delay, jitter and duplication: an impaired reply must not allocate
// either.
func impairedPaths(t testing.TB) []struct {
	name    string
	m       stack.Impairment
	routers []stack.Router
	pkts    [][]byte
} {
	big := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, Payload: make([]byte, 8000)}.IPv4(t)
	m := stack.Impairment{Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.2, Duplicate: 0.2}
	return []struct {
		name    string
		m       stack.Impairment
		routers []stack.Router
		pkts    [][]byte
	}{
		{"echo, host impaired", m, nil, [][]byte{goldenEcho}},
		{"echo, host and 3 routers impaired", m, []stack.Router{{Impair: m}, {Impair: m}, {Impair: m}}, [][]byte{goldenEcho}},
		{"time exceeded, router impaired", stack.Impairment{}, []stack.Router{{Impair: m}}, [][]byte{pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, TTL: 1}.IPv4(t)}},
		{"fragmented echo 8000, host impaired", m, nil, pt.Fragment(t, big, 1480)},
	}
}

// newImpaired returns a stack owning 10.0.0.2 with impairment m behind
// routers, seed 1, and an Out with room for duplicates.
func newImpaired(t testing.TB, m stack.Impairment, routers []stack.Router) (*stack.Stack, *stack.Out) {
	t.Helper()
	s, _ := newStack(t, false, func(c *stack.Config) {
		c.Addrs, c.Seed = nil, 1
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Routers: routers, Impair: m}}
		c.ICMPRate = stack.ICMPRateLimit{PerSecond: -1}
	})
	return s, stack.NewOut(16*s.MaxOut(), s.PacketSize(), 16)
}

func TestImpairedZeroAllocs(t *testing.T) {
	for _, tc := range impairedPaths(t) {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newImpaired(t, tc.m, tc.routers)
			run := func() {
				for _, p := range tc.pkts {
					out.Reset()
					s.Handle(p, out)
				}
			}
			run()
			if n := testing.AllocsPerRun(1000, run); n != 0 {
				t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
			}
		})
	}
}

// BenchmarkImpairedEcho is BenchmarkHandle's "echo TUN" through impaired
// paths; compare with BenchmarkHandle/echo_TUN.
func BenchmarkImpairedEcho(b *testing.B) {
	for _, tc := range impairedPaths(b) {
		b.Run(tc.name, func(b *testing.B) {
			s, out := newImpaired(b, tc.m, tc.routers)
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

// hotPaths6 are the IPv6 per-packet paths that must not allocate: echo on
// TUN and TAP, a neighbour solicitation answered, a fragmented echo both
// ways, an error from a router, a parameter problem.
func hotPaths6(t testing.TB) []struct {
	name     string
	ethernet bool
	pkts     [][]byte
} {
	big := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 1, Seq: 1, Payload: make([]byte, 8000)}.IPv6(t)
	echo := pt.Echo6{Src: kernelAddr6, Dst: hostAddr6, ID: 7, Seq: 3, Payload: make([]byte, 56)}.IPv6(t)
	hbh := packet6(pt.NHHopByHop, pt.OptionsHeader(pt.NHICMPv6, []byte{5, 2, 0, 0}), echoMsg6())
	return []struct {
		name     string
		ethernet bool
		pkts     [][]byte
	}{
		{"echo6 TUN", false, [][]byte{echo}},
		{"echo6 TAP", true, [][]byte{frame6(hostMAC6, echo)}},
		{"echo6 hop-by-hop", false, [][]byte{hbh}},
		{"NS to NA", true, [][]byte{rawFrame(solicitedMAC6, kernelMAC, layers.EthernetTypeIPv6, solicit.packet())}},
		{"DAD defended", true, [][]byte{rawFrame(solicitedMAC6, kernelMAC, layers.EthernetTypeIPv6, ns6{src: unspecified6, dst: solicited6, target: hostAddr6}.packet())}},
		{"fragmented echo6 8000", false, pt.Fragment6(t, big, 1448, 1)},
		{"parameter problem", false, [][]byte{packet6(253, []byte("x"))}},
		{"port unreachable", false, [][]byte{probe6(64, 32)}},
		{"drop bad checksum", false, [][]byte{corrupt(echo, func(b []byte) { b[42] ^= 1 })}},
		{"drop MLD report", false, [][]byte{pt.Packet6{Src: kernelAddr6, Dst: netip.MustParseAddr("ff02::16"), NextHeader: pt.NHICMPv6,
			Payload: pt.ICMPv6Msg(kernelAddr6, netip.MustParseAddr("ff02::16"), 143, 0, make([]byte, 4))}.Bytes()}},
	}
}

func TestZeroAllocs6(t *testing.T) {
	for _, tc := range hotPaths6(t) {
		t.Run(tc.name, func(t *testing.T) {
			s, out := newStack6(t, tc.ethernet, func(c *stack.Config) { c.ICMPRate = stack.ICMPRateLimit{PerSecond: -1} })
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
	// Through routers: time exceeded and a routed echo.
	s, out := routed6(t, false, 0)
	for _, p := range [][]byte{probe6(2, 32), echo6(t, nil)} {
		if n := testing.AllocsPerRun(100, func() { out.Reset(); s.Handle(p, out) }); n != 0 {
			t.Errorf("routed: %v allocations per run, want 0", n)
		}
	}
}

func BenchmarkHandle6(b *testing.B) {
	for _, tc := range hotPaths6(b) {
		b.Run(tc.name, func(b *testing.B) {
			s, out := newStack6(b, tc.ethernet, func(c *stack.Config) { c.ICMPRate = stack.ICMPRateLimit{PerSecond: -1} })
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

var _ = stack.Replied
