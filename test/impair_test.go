//go:build linux

package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pingReply is one reply line of ping's output.
type pingReply struct {
	seq int
	rtt time.Duration
	dup bool
}

var pingReplyLine = regexp.MustCompile(`bytes from \S+ icmp_seq=(\d+) .*time=([\d.]+) ms(.*)$`)

// pingReplies parses ping's reply lines:
//
//	64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=100.3 ms
//	64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=100.4 ms (DUP!)
func pingReplies(out string) []pingReply {
	var rs []pingReply
	for _, line := range strings.Split(out, "\n") {
		m := pingReplyLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		seq, _ := strconv.Atoi(m[1])
		ms, _ := strconv.ParseFloat(m[2], 64)
		rs = append(rs, pingReply{seq: seq, rtt: time.Duration(ms * float64(time.Millisecond)), dup: strings.Contains(m[3], "DUP!")})
	}
	return rs
}

// answeredSeqs returns the sorted sequence numbers that got a reply.
func answeredSeqs(out string) []int {
	var seqs []int
	for _, r := range pingReplies(out) {
		if !r.dup {
			seqs = append(seqs, r.seq)
		}
	}
	slices.Sort(seqs)
	return slices.Compact(seqs)
}

// TestDelay runs vhost with --delay 100ms: every reply takes at least that
// long.
func TestDelay(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	startVhost(t, ns, "--delay", "100ms")
	p := ns.ping(t, "-c", "5", "-i", "0.2", "-W", "2", vhostAddr)
	rs := pingReplies(p.stdout)
	if p.received != 5 || len(rs) != 5 {
		t.Fatalf("ping -c 5 %s with --delay 100ms: %d received, %d reply lines; want 5\n%s", vhostAddr, p.received, len(rs), p.stdout)
	}
	for _, r := range rs {
		if r.rtt < 100*time.Millisecond {
			t.Errorf("icmp_seq=%d: RTT %v with --delay 100ms, want at least 100ms", r.seq, r.rtt)
		}
	}
}

// TestJitter runs vhost with --delay 50ms --jitter 20ms: every RTT is at
// least 30 ms, and they are not all alike. (The draws come from the
// default seed and are the same run after run.)
func TestJitter(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	startVhost(t, ns, "--delay", "50ms", "--jitter", "20ms")
	p := ns.ping(t, "-c", "5", "-i", "0.2", "-W", "2", vhostAddr)
	rs := pingReplies(p.stdout)
	if len(rs) != 5 {
		t.Fatalf("ping -c 5 %s with --delay 50ms --jitter 20ms: %d replies, want 5\n%s", vhostAddr, len(rs), p.stdout)
	}
	lo, hi := rs[0].rtt, rs[0].rtt
	for _, r := range rs {
		lo, hi = min(lo, r.rtt), max(hi, r.rtt)
		if r.rtt < 30*time.Millisecond {
			t.Errorf("icmp_seq=%d: RTT %v with --delay 50ms --jitter 20ms, want at least 30ms", r.seq, r.rtt)
		}
	}
	if hi-lo < 2*time.Millisecond {
		t.Errorf("RTTs from %v to %v with --jitter 20ms: want them spread by the jitter\n%s", lo, hi, p.stdout)
	}
}

// TestLossSeed runs vhost with --loss 30 three times: twice with seed 7,
// which must lose the same requests of the same ping run, and once with
// seed 8, which must lose others. The seeds were checked to give different
// losses; the stack's randomness is deterministic, so that does not change
// from run to run.
func TestLossSeed(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	const count = 40
	run := func(t *testing.T, seed string) []int {
		t.Helper()
		v := startVhost(t, ns, "--loss", "30", "--seed", seed)
		p := ns.ping(t, "-c", strconv.Itoa(count), "-i", "0.05", "-W", "1", vhostAddr)
		v.stop(t)
		seqs := answeredSeqs(p.stdout)
		if len(seqs) != p.received {
			t.Fatalf("ping: %d received but %d distinct icmp_seq in the reply lines\n%s", p.received, len(seqs), p.stdout)
		}
		// 30% of 40 lost: 12 on average, a standard deviation of 2.9.
		if lost := count - len(seqs); lost < 2 || lost > 24 {
			t.Errorf("--loss 30 --seed %s: %d of %d lost, want about 30%% (2 to 24)\n%s", seed, lost, count, p.stdout)
		}
		t.Logf("--seed %s: answered %v", seed, seqs)
		return seqs
	}
	a := run(t, "7")
	b := run(t, "7")
	c := run(t, "8")
	if !slices.Equal(a, b) {
		t.Errorf("--loss 30 --seed 7 twice: answered icmp_seq differ:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("--loss 30 with seeds 7 and 8: the same icmp_seq answered, want different losses: %v", a)
	}
}

// TestDuplicate runs vhost with --dup 100: every reply comes twice. ping
// -c exits on the last reply it counts, before that reply's copy arrives,
// so the last request may show no DUP!.
func TestDuplicate(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	startVhost(t, ns, "--dup", "100")
	const count = 5
	p := ns.ping(t, "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", vhostAddr)
	dups := map[int]int{}
	for _, r := range pingReplies(p.stdout) {
		if r.dup {
			dups[r.seq]++
		}
	}
	if p.received != count {
		t.Errorf("ping -c %d %s with --dup 100: %d received, want %d\n%s", count, vhostAddr, p.received, count, p.stdout)
	}
	for seq := 1; seq <= count; seq++ {
		if n := dups[seq]; n != 1 && !(seq == count && n == 0) {
			t.Errorf("ping -c %d %s with --dup 100: icmp_seq=%d has %d DUP! lines, want 1\n%s", count, vhostAddr, seq, n, p.stdout)
		}
	}
}

// writeLab writes a lab file into the test's temporary directory.
func writeLab(t *testing.T, name, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestDelayPerHost runs a lab with two hosts on one device, one delayed by
// a second: pinging it does not hold up the other's replies.
func TestDelayPerHost(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	const slow, fast = "10.0.0.2", "10.0.0.3"
	file := writeLab(t, "two.yaml", fmt.Sprintf(`# two hosts, one a second away
host-addrs: [10.0.0.1/24]
hosts:
  - name: slow
    addrs: [%s]
    delay: 1s
  - name: fast
    addrs: [%s]
`, slow, fast))
	startVhost(t, ns, "run", "--config", file)

	// The slow host's replies are due one second after each request, at
	// 0.25 s intervals: while the fast host is pinged there are always
	// some waiting.
	// t.Fatal may not be called from another goroutine: the slow ping
	// runs as a plain command, checked afterwards.
	var slowOut bytes.Buffer
	slowArgv := []string{"ping", "-n", "-c", "6", "-i", "0.25", "-W", "3", slow}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	slowCmd := ns.command(ctx, slowArgv...)
	slowCmd.Stdout, slowCmd.Stderr = &slowOut, &slowOut
	if err := slowCmd.Start(); err != nil {
		t.Fatalf("start %q: %v", slowArgv, err)
	}
	slowDone := make(chan error, 1)
	go func() { slowDone <- slowCmd.Wait() }()
	time.Sleep(500 * time.Millisecond)
	fastPing := ns.ping(t, "-c", "10", "-i", "0.1", "-W", "2", fast)
	if err := <-slowDone; err != nil {
		t.Errorf("%q: %v\n%s", slowArgv, err, slowOut.String())
	}
	slowPing := struct{ stdout string }{slowOut.String()}

	rs := pingReplies(slowPing.stdout)
	if len(rs) != 6 {
		t.Errorf("ping -c 6 %s (delay 1s): %d replies, want 6\n%s", slow, len(rs), slowPing.stdout)
	}
	for _, r := range rs {
		if r.rtt < time.Second {
			t.Errorf("ping %s (delay 1s): icmp_seq=%d RTT %v, want at least 1s", slow, r.seq, r.rtt)
		}
	}
	rs = pingReplies(fastPing.stdout)
	var worst time.Duration
	for _, r := range rs {
		worst = max(worst, r.rtt)
	}
	t.Logf("ping %s (no delay): slowest of %d replies %v", fast, len(rs), worst)
	if len(rs) != 10 {
		t.Errorf("ping -c 10 %s (no delay): %d replies, want 10\n%s", fast, len(rs), fastPing.stdout)
	}
	for _, r := range rs {
		// A reply held behind the slow host's would wait up to a second.
		if r.rtt > 300*time.Millisecond {
			t.Errorf("ping %s (no delay) while %s (delay 1s) is pinged: icmp_seq=%d RTT %v, want under 300ms", fast, slow, r.seq, r.rtt)
		}
	}
}
