package stack_test

import (
	"bytes"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
)

// counter returns the value of the counter named name.
func counter(t testing.TB, s *stack.Stack, name string) uint64 {
	t.Helper()
	for _, c := range s.Counters() {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("no counter %q", name)
	return 0
}

// impaired returns a stack whose host 10.0.0.2 has impairment m, with
// seed, behind the given routers.
func impaired(t testing.TB, seed uint64, m stack.Impairment, routers ...stack.Router) (*stack.Stack, *stack.Out) {
	t.Helper()
	return newStack(t, false, func(c *stack.Config) {
		c.Addrs, c.Seed = nil, seed
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Routers: routers, Impair: m}}
		c.ICMPRate = stack.ICMPRateLimit{PerSecond: -1}
	})
}

// copyFate is what became of one copy of a reply: its delay, and how many
// packets it has.
type copyFate struct {
	delay time.Duration
	pkts  int
}

// fates handles each request in turn and returns, per request, the copies
// of its reply that came out. A reply of k packets comes out as zero or
// more copies of k packets, one after another, and all the packets of a
// copy must carry the same delay and be byte-identical to the other
// copies'.
func fates(t testing.TB, s *stack.Stack, out *stack.Out, k int, reqs ...[][]byte) [][]copyFate {
	t.Helper()
	var all [][]copyFate
	for _, req := range reqs {
		out.Reset()
		for _, p := range req {
			s.Handle(p, out)
		}
		if out.Len()%k != 0 {
			t.Fatalf("request %d: %d packets out, not a multiple of the reply's %d", len(all), out.Len(), k)
		}
		var fs []copyFate
		for c := 0; c < out.Len(); c += k {
			d := out.Delay(c)
			for i := c; i < c+k; i++ {
				if out.Delay(i) != d {
					t.Fatalf("request %d: packet %d of a copy has delay %v, packet 0 %v: fragments must share fate", len(all), i-c, out.Delay(i), d)
				}
				if !bytes.Equal(out.Packets()[i], out.Packets()[i%k]) {
					t.Fatalf("request %d: copy %d packet %d differs from the first copy's", len(all), c/k, i-c)
				}
			}
			fs = append(fs, copyFate{d, k})
		}
		all = append(all, fs)
	}
	return all
}

// echoes returns n echo requests with sequence numbers 0..n-1, each one
// packet.
func echoes(t testing.TB, n int) [][][]byte {
	reqs := make([][][]byte, n)
	for i := range reqs {
		reqs[i] = [][]byte{pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 7, Seq: uint16(i)}.IPv4(t)}
	}
	return reqs
}

func TestImpairConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		m    stack.Impairment
		want string
	}{
		{"loss above 1", stack.Impairment{Loss: 1.5}, "loss 1.5 out of range"},
		{"negative loss", stack.Impairment{Loss: -0.1}, "loss -0.1 out of range"},
		{"NaN loss", stack.Impairment{Loss: math.NaN()}, "loss NaN out of range"},
		{"duplicate above 1", stack.Impairment{Duplicate: 2}, "duplicate 2 out of range"},
		{"negative delay", stack.Impairment{Delay: -time.Millisecond}, "delay -1ms is negative"},
		{"negative jitter", stack.Impairment{Jitter: -time.Millisecond}, "jitter -1ms is negative"},
		{"delay too long", stack.Impairment{Delay: 50 * time.Minute, Jitter: 20 * time.Minute}, "exceeds 1h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stack.New(stack.Config{Hosts: []stack.Host{{Name: "h", Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, Impair: tc.m}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "host h") {
				t.Errorf("New(host %+v) = %v, want an error naming host h and containing %q", tc.m, err, tc.want)
			}
			_, err = stack.New(stack.Config{Hosts: []stack.Host{{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, Routers: []stack.Router{{}, {Impair: tc.m}}}}})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "router 2") {
				t.Errorf("New(router %+v) = %v, want an error naming router 2 and containing %q", tc.m, err, tc.want)
			}
		})
	}
	// The limits themselves are valid.
	ok := stack.Impairment{Loss: 1, Duplicate: 1, Delay: 30 * time.Minute, Jitter: 30 * time.Minute}
	if _, err := stack.New(stack.Config{Hosts: []stack.Host{{Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, Impair: ok}}}); err != nil {
		t.Errorf("New(%+v) = %v, want no error", ok, err)
	}
}

func TestImpairNone(t *testing.T) {
	s, out := newStack(t, false)
	r := handle(t, s, out, "echo", goldenEcho, stack.Replied, 1)
	if !bytes.Equal(r[0], goldenEchoReply) || out.Delayed() || out.Delay(0) != 0 {
		t.Errorf("unimpaired echo: delayed %v (%v), reply changed %v", out.Delayed(), out.Delay(0), !bytes.Equal(r[0], goldenEchoReply))
	}
	for _, name := range []string{"impair_lost", "impair_duplicated", "impair_delayed", "impair_dup_no_room"} {
		if got := counter(t, s, name); got != 0 {
			t.Errorf("counter %s = %d, want 0", name, got)
		}
	}
}

// TestImpairDeterministic: the same seed and packets give the same fates;
// another seed gives others; the rates are roughly those asked for.
func TestImpairDeterministic(t *testing.T) {
	const n = 10000
	m := stack.Impairment{Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 0.3, Duplicate: 0.1}
	reqs := echoes(t, n)
	run := func(seed uint64) ([][]copyFate, *stack.Stack) {
		s, out := impaired(t, seed, m)
		return fates(t, s, out, 1, reqs...), s
	}
	a, s := run(42)
	b, _ := run(42)
	c, _ := run(43)
	eq := func(x, y [][]copyFate) bool { return slices.EqualFunc(x, y, slices.Equal) }
	if !eq(a, b) {
		t.Errorf("seed 42 twice: fates differ")
	}
	if eq(a, c) {
		t.Errorf("seeds 42 and 43: identical fates, want different")
	}
	var lost, dups, copies int
	for _, f := range a {
		switch len(f) {
		case 0:
			lost++
		case 2:
			dups++
		}
		copies += len(f)
	}
	if r := float64(lost) / n; math.Abs(r-0.3) > 0.05 {
		t.Errorf("loss rate %.3f, want 0.3 ± 0.05", r)
	}
	if r := float64(dups) / float64(n-lost); math.Abs(r-0.1) > 0.05 {
		t.Errorf("duplicate rate %.3f of the replies not lost, want 0.1 ± 0.05", r)
	}
	if got := counter(t, s, "impair_lost"); got != uint64(lost) {
		t.Errorf("impair_lost = %d, want %d", got, lost)
	}
	if got := counter(t, s, "impair_duplicated"); got != uint64(dups) {
		t.Errorf("impair_duplicated = %d, want %d", got, dups)
	}
	if got := counter(t, s, "impair_delayed"); got != uint64(copies) {
		t.Errorf("impair_delayed = %d, want %d (every copy has at least 30ms)", got, copies)
	}
	if tx, got := counter(t, s, "tx_packets"), uint64(copies); tx-uint64(lost)+uint64(dups) != got {
		t.Errorf("tx_packets %d - impair_lost %d + impair_duplicated %d != %d packets out", tx, lost, dups, got)
	}
}

// TestImpairStreams: two hosts with the same impairment draw from
// different streams.
func TestImpairStreams(t *testing.T) {
	m := stack.Impairment{Loss: 0.5}
	s, out := newStack(t, false, func(c *stack.Config) {
		c.Addrs, c.Seed = nil, 1
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)}, Impair: m}, {Addrs: []netip.Prefix{netip.PrefixFrom(otherAddr, 32)}, Impair: m}}
	})
	var a, b []int
	for i := range 64 {
		for _, dst := range []netip.Addr{hostAddr, otherAddr} {
			out.Reset()
			s.Handle(pt.Echo{Src: kernelAddr, Dst: dst, ID: 1, Seq: uint16(i)}.IPv4(t), out)
			if dst == hostAddr {
				a = append(a, out.Len())
			} else {
				b = append(b, out.Len())
			}
		}
	}
	if slices.Equal(a, b) {
		t.Errorf("two hosts, same seed: identical loss patterns %v, want independent streams", a)
	}
}

func TestImpairDelayBounds(t *testing.T) {
	tests := []struct {
		name       string
		m          stack.Impairment
		lo, hi     time.Duration
		wantZeroes bool // the jitter exceeds the delay: some draws clamp to 0
	}{
		{"delay only", stack.Impairment{Delay: 50 * time.Millisecond}, 50 * time.Millisecond, 50 * time.Millisecond, false},
		{"jitter", stack.Impairment{Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond}, 30 * time.Millisecond, 70 * time.Millisecond, false},
		{"jitter only", stack.Impairment{Jitter: 10 * time.Millisecond}, 0, 10 * time.Millisecond, true},
		{"clamped", stack.Impairment{Delay: 10 * time.Millisecond, Jitter: 30 * time.Millisecond}, 0, 40 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, out := impaired(t, 7, tc.m)
			var zeroes int
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			for _, f := range fates(t, s, out, 1, echoes(t, 5000)...) {
				if len(f) != 1 {
					t.Fatalf("%d copies of a reply, want 1", len(f))
				}
				d := f[0].delay
				if d < tc.lo || d > tc.hi {
					t.Fatalf("delay %v outside [%v, %v]", d, tc.lo, tc.hi)
				}
				if d == 0 {
					zeroes++
				}
				lo, hi = min(lo, d), max(hi, d)
			}
			// Uniform draws come near both ends of the range.
			if span := tc.hi - tc.lo; lo > tc.lo+span/50 || hi < tc.hi-span/50 {
				t.Errorf("delays span [%v, %v], want close to [%v, %v]", lo, hi, tc.lo, tc.hi)
			}
			if tc.wantZeroes != (zeroes > 0) {
				t.Errorf("%d delays clamped to 0, want some: %v", zeroes, tc.wantZeroes)
			}
		})
	}
}

func TestImpairDuplicate(t *testing.T) {
	s, out := impaired(t, 3, stack.Impairment{Duplicate: 1, Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond})
	var differ int
	for _, f := range fates(t, s, out, 1, echoes(t, 200)...) {
		if len(f) != 2 {
			t.Fatalf("%d copies with Duplicate 1, want 2", len(f))
		}
		// The duplicate has its own jitter draw.
		if f[0].delay != f[1].delay {
			differ++
		}
	}
	if differ < 150 {
		t.Errorf("%d of 200 duplicates have a delay of their own, want nearly all", differ)
	}
	// Both copies are the reply (but for the IP ID, which counts on).
	r := handle(t, s, out, "echo", goldenEcho, stack.Replied, 2)
	for i := range r {
		pt.IPv4(t, r[i], pt.SrcAddr(hostAddr), pt.DstAddr(kernelAddr), pt.TTL(64))
		if !bytes.Equal(r[i][12:], goldenEchoReply[12:]) || !bytes.Equal(r[i], r[0]) {
			t.Errorf("copy %d\n got % x\nwant % x", i, r[i], goldenEchoReply)
		}
	}
	if got := counter(t, s, "impair_duplicated"); got != 201 {
		t.Errorf("impair_duplicated = %d, want 201", got)
	}

	// With no room left in the output the duplicate is skipped and counted.
	small := stack.NewOut(1, s.PacketSize(), 0)
	handle(t, s, small, "echo into a one-packet Out", goldenEcho, stack.Replied, 1)
	if got := counter(t, s, "impair_dup_no_room"); got != 1 {
		t.Errorf("impair_dup_no_room = %d, want 1", got)
	}
}

// TestImpairAlongThePath: the delays of the routers a reply crosses add up
// with the host's; a router's loss takes the replies that cross it,
// including its own errors, and no others.
func TestImpairAlongThePath(t *testing.T) {
	ms := time.Millisecond
	routers := []stack.Router{{Impair: stack.Impairment{Delay: 1 * ms}}, {Impair: stack.Impairment{Delay: 10 * ms}}, {Impair: stack.Impairment{Delay: 100 * ms}}}
	s, out := impaired(t, 1, stack.Impairment{Delay: 1000 * ms}, routers...)
	for ttl, want := range map[uint8]time.Duration{1: 1 * ms, 2: 11 * ms, 3: 111 * ms} {
		handle(t, s, out, "probe", probe4(t, hostAddr, ttl, 8, false), stack.TimeExceeded, 1)
		if got := out.Delay(0); got != want {
			t.Errorf("Time Exceeded from router %d: delay %v, want %v", ttl, got, want)
		}
	}
	handle(t, s, out, "echo", pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1}.IPv4(t), stack.Replied, 1)
	if got, want := out.Delay(0), 1111*ms; got != want {
		t.Errorf("echo reply: delay %v, want %v", got, want)
	}
	handle(t, s, out, "probe past the routers", probe4(t, hostAddr, 64, 8, false), stack.PortUnreachable, 1)
	if got, want := out.Delay(0), 1111*ms; got != want {
		t.Errorf("port unreachable from the host: delay %v, want %v", got, want)
	}

	// Router 2 loses everything: router 1's errors pass, router 2's own
	// and everything from beyond it are lost.
	routers[1].Impair.Loss = 1
	s, out = impaired(t, 1, stack.Impairment{}, routers...)
	handle(t, s, out, "probe TTL 1", probe4(t, hostAddr, 1, 8, false), stack.TimeExceeded, 1)
	handle(t, s, out, "probe TTL 2", probe4(t, hostAddr, 2, 8, false), stack.TimeExceeded, 0)
	handle(t, s, out, "probe TTL 3", probe4(t, hostAddr, 3, 8, false), stack.TimeExceeded, 0)
	handle(t, s, out, "echo", pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1}.IPv4(t), stack.Replied, 0)
	if got := counter(t, s, "impair_lost"); got != 3 {
		t.Errorf("impair_lost = %d, want 3", got)
	}

	// A duplicate made by router 3 crosses routers 2 and 1 like the
	// original: router 1 duplicates both, making four copies.
	s, out = impaired(t, 1, stack.Impairment{}, stack.Router{Impair: stack.Impairment{Duplicate: 1}}, stack.Router{}, stack.Router{Impair: stack.Impairment{Duplicate: 1}})
	handle(t, s, out, "echo", pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1}.IPv4(t), stack.Replied, 4)
}

// TestImpairFragmentsShareFate: the fragments of one reply are lost,
// duplicated and delayed together.
func TestImpairFragmentsShareFate(t *testing.T) {
	big := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 1, Seq: 1, Payload: make([]byte, 8000)}.IPv4(t)
	reqs := make([][][]byte, 300)
	for i := range reqs {
		reqs[i] = [][]byte{big}
	}
	m := stack.Impairment{Loss: 0.3, Duplicate: 0.3, Delay: 20 * time.Millisecond, Jitter: 20 * time.Millisecond}
	s, out := impaired(t, 9, m, stack.Router{Impair: m})
	out = stack.NewOut(4*s.MaxOut(), s.PacketSize(), 16)
	const k = 6 // 8028 bytes in 1480-byte fragments
	var counts [5]int
	for _, f := range fates(t, s, out, k, reqs...) {
		counts[min(len(f), 4)]++
	}
	if counts[0] == 0 || counts[1] == 0 || counts[2]+counts[3]+counts[4] == 0 {
		t.Errorf("replies with 0, 1, 2, 3, 4+ copies: %v; want some lost, some single and some duplicated", counts)
	}
	// Every copy reassembles: its fragments are whole and in order.
	out.Reset()
	for out.Len() < 2*k {
		out.Reset()
		s.Handle(big, out)
	}
	for c := 0; c < out.Len(); c += k {
		var ip layers.IPv4
		for i, f := range packets(out)[c : c+k] {
			if err := ip.DecodeFromBytes(f, gopacket.NilDecodeFeedback); err != nil {
				t.Fatal(err)
			}
			if int(ip.FragOffset)*8 != i*1480 || (ip.Flags&layers.IPv4MoreFragments != 0) != (i < k-1) {
				t.Errorf("copy %d fragment %d: offset %d MF %v", c/k, i, ip.FragOffset*8, ip.Flags&layers.IPv4MoreFragments != 0)
			}
		}
	}
}

// TestImpairIPv6: IPv6 replies and errors cross the same impaired path.
func TestImpairIPv6(t *testing.T) {
	ms := time.Millisecond
	kernel6, host6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	s, out := newStack(t, false, func(c *stack.Config) {
		c.Addrs, c.Seed = nil, 1
		c.HostSide = append(c.HostSide, netip.MustParsePrefix("fd00::1/64"))
		c.Hosts = []stack.Host{{Addrs: []netip.Prefix{netip.PrefixFrom(host6, 128)}, Impair: stack.Impairment{Delay: 100 * ms},
			Routers: []stack.Router{{Impair: stack.Impairment{Delay: 10 * ms}}, {Impair: stack.Impairment{Delay: 10 * ms}}}}}
		c.ICMPRate = stack.ICMPRateLimit{PerSecond: -1}
	})
	handle(t, s, out, "echo6", pt.Echo6{Src: kernel6, Dst: host6, ID: 1, Seq: 1}.IPv6(t), stack.Replied, 1)
	if got, want := out.Delay(0), 120*ms; got != want {
		t.Errorf("echo6 reply: delay %v, want %v", got, want)
	}
	handle(t, s, out, "echo6 hop limit 1", pt.Echo6{Src: kernel6, Dst: host6, ID: 1, Seq: 2, HopLimit: 1}.IPv6(t), stack.TimeExceeded, 1)
	if got, want := out.Delay(0), 10*ms; got != want {
		t.Errorf("time exceeded from router 1: delay %v, want %v", got, want)
	}
	// A reply in fragments: all of them carry the path's delay.
	out.Reset()
	if v := s.Handle(pt.Echo6{Src: kernel6, Dst: host6, ID: 1, Seq: 3, Payload: make([]byte, 3000)}.IPv6(t), out); v != stack.Replied || out.Len() < 2 {
		t.Fatalf("Handle(big echo6) = %v with %d packets, want a reply in fragments", v, out.Len())
	}
	for i := range out.Len() {
		if got, want := out.Delay(i), 120*ms; got != want {
			t.Errorf("fragment %d of the echo6 reply: delay %v, want %v", i, got, want)
		}
	}
}
