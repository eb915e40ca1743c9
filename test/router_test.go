//go:build linux

package test

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The generated routers of --hops 3 (stack.GeneratedRouter), and the hop
// lists a trace to the host behind them must show.
var (
	routers4 = []string{"198.18.0.1", "198.18.0.2", "198.18.0.3"}
	routers6 = []string{"2001:db8:ffff::1", "2001:db8:ffff::2", "2001:db8:ffff::3"}
	hops4    = append(slices.Clone(routers4), vhostAddr)
	hops6    = append(slices.Clone(routers6), vhostAddr6)
)

// traceTimeout bounds one traceroute, mtr or tracepath run. A trace that
// works takes well under a second per hop; one that does not waits -w 1
// for each of up to 30 hops.
const traceTimeout = 90 * time.Second

// canonAddr returns s as a canonical IP address string, or "" if it is not
// one (so "2001:0db8:ffff:0::1" and "2001:db8:ffff::1" compare equal).
func canonAddr(s string) string {
	a, err := netip.ParseAddr(strings.Trim(s, "()[],"))
	if err != nil {
		return ""
	}
	return a.Unmap().String()
}

// traceHop is one hop line of traceroute's output.
type traceHop struct {
	addr    string          // the first address on the line, "*" when none answered
	answers int             // probes answered (times shown)
	rtts    []time.Duration // their round-trip times
	lost    int             // probes not answered (stars)
	line    string
}

var traceHopLine = regexp.MustCompile(`^\s*(\d+)\s+(.*)$`)

// parseTraceroute parses the output of traceroute (traceroute.db, with or
// without -6) and rltraceroute6 (ndisc6's traceroute6) with -n:
//
//	traceroute to 10.0.0.2 (10.0.0.2), 30 hops max, 60 byte packets
//	 1  198.18.0.1  0.061 ms
//	 2  198.18.0.2  0.051 ms  *  0.049 ms
//
// It returns the hops in order and fails the test if their numbers do not
// run 1, 2, 3, ...
func parseTraceroute(t *testing.T, out string) []traceHop {
	t.Helper()
	var hops []traceHop
	for _, line := range strings.Split(out, "\n") {
		m := traceHopLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n != len(hops)+1 {
			t.Fatalf("traceroute: hop %d after %d hops, want consecutive hop numbers:\n%s", n, len(hops), out)
		}
		h := traceHop{addr: "*", line: line}
		fields := strings.Fields(m[2])
		for i, f := range fields {
			switch {
			case f == "*":
				h.lost++
			case f == "ms" && i > 0:
				h.answers++
				if ms, err := strconv.ParseFloat(fields[i-1], 64); err == nil {
					h.rtts = append(h.rtts, time.Duration(ms*float64(time.Millisecond)))
				}
			case h.addr == "*" && canonAddr(f) != "":
				h.addr = canonAddr(f)
			}
		}
		hops = append(hops, h)
	}
	return hops
}

func hopAddrs(hops []traceHop) []string {
	var out []string
	for _, h := range hops {
		out = append(out, h.addr)
	}
	return out
}

// checkTraceroute runs a traceroute command line in ns and fails the test
// unless it lists exactly want (the first address of each hop line), with
// no error annotations (!H, !N, !P, !X, ...). It returns the hops.
func checkTraceroute(t *testing.T, ns *netNS, want []string, argv ...string) []traceHop {
	t.Helper()
	r := ns.run(t, traceTimeout, argv...)
	hops := parseTraceroute(t, r.stdout)
	if got := hopAddrs(hops); !slices.Equal(got, want) || r.code != 0 {
		t.Fatalf("%q: exit %d, hops %q; want 0, %q\n%s", argv, r.code, got, want, r)
	}
	for _, h := range hops {
		if strings.Contains(h.line, "!") {
			t.Errorf("%q: hop line with an error annotation: %q\n%s", argv, h.line, r.stdout)
		}
	}
	return hops
}

var mtrHopLine = regexp.MustCompile(`^\s*(\d+)\.\s*\|--\s+(\S+)\s+([\d.]+)%\s+(\d+)`)

// mtrHop is one line of mtr's report.
type mtrHop struct {
	addr string // "???" when no hop answered
	loss float64
	sent int
}

// parseMtr parses mtr -n -r's report:
//
//	HOST: box                     Loss%   Snt   Last   Avg  Best  Wrst StDev
//	  1.|-- 198.18.0.1               0.0%     3    0.1   0.1   0.1   0.1   0.0
func parseMtr(t *testing.T, out string) []mtrHop {
	t.Helper()
	var hops []mtrHop
	for _, line := range strings.Split(out, "\n") {
		m := mtrHopLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n != len(hops)+1 {
			t.Fatalf("mtr: hop %d after %d hops, want consecutive hop numbers:\n%s", n, len(hops), out)
		}
		h := mtrHop{addr: m[2]}
		if a := canonAddr(m[2]); a != "" {
			h.addr = a
		}
		h.loss, _ = strconv.ParseFloat(m[3], 64)
		h.sent, _ = strconv.Atoi(m[4])
		hops = append(hops, h)
	}
	return hops
}

// checkMtr runs mtr -n -r -c 3 with args in ns and fails the test unless
// its report lists exactly the hops want. It returns the report's hops.
func checkMtr(t *testing.T, ns *netNS, want []string, args ...string) []mtrHop {
	t.Helper()
	// -i 0.2 (root may go below 1 s); -G 0.5: wait half a second for the
	// last replies, not 5.
	argv := append([]string{"mtr", "-n", "-r", "-c", "3", "-i", "0.2", "-G", "0.5"}, args...)
	r := ns.run(t, traceTimeout, argv...)
	hops := parseMtr(t, r.stdout)
	var got []string
	for _, h := range hops {
		got = append(got, h.addr)
	}
	if !slices.Equal(got, want) || r.code != 0 {
		t.Fatalf("%q: exit %d, hops %q; want 0, %q\n%s", argv, r.code, got, want, r)
	}
	t.Logf("%q:\n%s", argv, r.stdout)
	return hops
}

// tracepathResult is what tracepath reported.
type tracepathResult struct {
	hops    []string // by hop number from 1; "" for a hop with no address
	reached string   // the address of the line that says "reached"
	// pmtuFrom are the addresses of the lines that report a smaller path
	// MTU ("4:  198.18.0.3   0.249ms pmtu 1400"): who sent "fragmentation
	// needed" or "packet too big". Those lines are not hops.
	pmtuFrom []string
	pmtu     int // from the Resume line
	hopsTo   int // from the Resume line
}

var (
	tracepathLine   = regexp.MustCompile(`^\s*(\d+)\??:\s+(\S+)`)
	tracepathResume = regexp.MustCompile(`Resume: pmtu (\d+) hops (\d+)`)
)

// parseTracepath parses tracepath -n's output:
//
//	1?: [LOCALHOST]                      pmtu 1500
//	1:  198.18.0.1                       0.083ms
//	1:  198.18.0.1                       0.041ms
//	4:  198.18.0.3                       0.249ms pmtu 1400
//	4:  10.0.0.2                         0.060ms reached
//	    Resume: pmtu 1400 hops 4 back 4
//
// A hop may be printed more than once; it must name the same address each
// time.
func parseTracepath(t *testing.T, out string) tracepathResult {
	t.Helper()
	var r tracepathResult
	for _, line := range strings.Split(out, "\n") {
		if m := tracepathResume.FindStringSubmatch(line); m != nil {
			r.pmtu, _ = strconv.Atoi(m[1])
			r.hopsTo, _ = strconv.Atoi(m[2])
			continue
		}
		m := tracepathLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a := canonAddr(m[2])
		if a == "" {
			continue // [LOCALHOST], pmtu N, no reply
		}
		if strings.Contains(line, " pmtu ") {
			r.pmtuFrom = append(r.pmtuFrom, a)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		for len(r.hops) < n {
			r.hops = append(r.hops, "")
		}
		if prev := r.hops[n-1]; prev != "" && prev != a {
			t.Fatalf("tracepath: hop %d is %s and %s:\n%s", n, prev, a, out)
		}
		r.hops[n-1] = a
		if strings.Contains(line, "reached") {
			r.reached = a
		}
	}
	return r
}

// checkTracepath runs tracepath -n to dst and fails the test unless it
// lists want hop by hop, reaches the last, and reports pmtu, learnt from
// the address pmtuFrom ("" when the path MTU is the device's).
func checkTracepath(t *testing.T, ns *netNS, dst string, want []string, pmtu int, pmtuFrom string) {
	t.Helper()
	r := ns.run(t, traceTimeout, "tracepath", "-n", dst)
	p := parseTracepath(t, r.stdout)
	if !slices.Equal(p.hops, want) || p.reached != want[len(want)-1] || r.code != 0 {
		t.Fatalf("tracepath -n %s: exit %d, hops %q, reached %q; want 0, %q, reached %s\n%s", dst, r.code, p.hops, p.reached, want, want[len(want)-1], r)
	}
	var wantFrom []string
	if pmtuFrom != "" {
		wantFrom = []string{pmtuFrom}
	}
	if p.pmtu != pmtu || p.hopsTo != len(want) || !slices.Equal(p.pmtuFrom, wantFrom) {
		t.Errorf("tracepath -n %s: Resume: pmtu %d hops %d, smaller path MTU reported by %q; want pmtu %d hops %d, reported by %q\n%s",
			dst, p.pmtu, p.hopsTo, p.pmtuFrom, pmtu, len(want), wantFrom, r.stdout)
	}
}

// newRouterNS is newNS6 with strict reverse-path filtering (RFC 3704), as
// many distributions set it: the routers' ICMP errors come from addresses
// outside the kernel side's prefixes, and are accepted only because vhost
// routes those addresses into its device.
func newRouterNS(t *testing.T) *netNS {
	t.Helper()
	ns := newNS6(t)
	ns.mustRun(t, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1")
	return ns
}

// TestRouters puts three generated routers in front of the host and traces
// it with every tool: each lists exactly the routers, in order, then the
// host, whatever the probe (UDP to a closed port, ICMP echo, TCP SYN
// answered by a reset, IPv6). tshark finds every packet well formed.
func TestRouters(t *testing.T) {
	requireE2E(t, "ping", "sysctl", "traceroute", "traceroute6", "mtr", "tracepath", "tshark")
	ns := newRouterNS(t)
	v := startVhost(t, ns, append([]string{"--hops", "3"}, dualStackArgs...)...)
	capt := ns.startCapture(t, v.dev)

	// The routes vhost adds so that rp_filter accepts the routers' errors.
	t.Run("routes", func(t *testing.T) {
		for _, a := range append(slices.Clone(routers4), routers6...) {
			r := ns.mustRun(t, "ip", "route", "get", a)
			if !strings.Contains(r.stdout, " dev "+v.dev+" ") {
				t.Errorf("ip route get %s = %q, want a route via %s", a, strings.TrimSpace(r.stdout), v.dev)
			}
		}
	})
	t.Run("ping_through", func(t *testing.T) {
		pingAll(t, ns, vhostAddr, 2)
		pingAll(t, ns, vhostAddr6, 2, "-6")
	})
	for _, tc := range []struct {
		name string
		want []string
		argv []string
	}{
		{"traceroute_udp", hops4, []string{"traceroute", "-n", "-q", "1", "-w", "1", vhostAddr}},
		{"traceroute_icmp", hops4, []string{"traceroute", "-I", "-n", "-q", "1", "-w", "1", vhostAddr}},
		{"traceroute_tcp", hops4, []string{"traceroute", "-T", "-n", "-q", "1", "-w", "1", vhostAddr}},
		{"traceroute_6", hops6, []string{"traceroute", "-6", "-n", "-q", "1", "-w", "1", vhostAddr6}},
		{"traceroute_6_icmp", hops6, []string{"traceroute", "-6", "-I", "-n", "-q", "1", "-w", "1", vhostAddr6}},
		{"traceroute_6_tcp", hops6, []string{"traceroute", "-6", "-T", "-n", "-q", "1", "-w", "1", vhostAddr6}},
		// traceroute6 is rltraceroute6 (ndisc6) or traceroute.db,
		// whichever the alternatives system picked.
		{"traceroute6", hops6, []string{"traceroute6", "-n", "-q", "1", "-w", "1", vhostAddr6}},
		// Three probes per hop: every one answered.
		{"traceroute_q3", hops4, []string{"traceroute", "-n", "-q", "3", "-w", "1", vhostAddr}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkTraceroute(t, ns, tc.want, tc.argv...) })
	}
	for _, tc := range []struct {
		name string
		want []string
		args []string
	}{
		{"mtr", hops4, []string{vhostAddr}},
		{"mtr_6", hops6, []string{"-6", vhostAddr6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hops := checkMtr(t, ns, tc.want, tc.args...)
			if last := hops[len(hops)-1]; last.loss != 0 || last.sent != 3 {
				t.Errorf("mtr %q: the host lost %.1f%% of %d probes, want 0%% of 3", tc.args, last.loss, last.sent)
			}
		})
	}
	t.Run("tracepath", func(t *testing.T) { checkTracepath(t, ns, vhostAddr, hops4, 1500, "") })
	t.Run("tracepath_6", func(t *testing.T) { checkTracepath(t, ns, vhostAddr6, hops6, 1500, "") })
	file := capt.stop(t)
	c := v.stop(t)
	// Every ICMP error and reset came from a router or the host. (An error
	// quotes the packet it answers, so ip.src has two values in it: the
	// filters ask whether any of them is a router or the host, with "==",
	// never "!=", which is false when any value differs.)
	checkCounts(t, file,
		countCheck{"Time Exceeded not from a router", "icmp.type == 11 && !(" + anyOf("ip.src", routers4) + ")", 0, 0},
		countCheck{"ICMPv6 Time Exceeded not from a router", "icmpv6.type == 3 && !(" + anyOf("ipv6.src", routers6) + ")", 0, 0},
		countCheck{"Destination Unreachable not from the host", "icmp.type == 3 && !(ip.src == " + vhostAddr + ")", 0, 0},
		countCheck{"ICMPv6 Destination Unreachable not from the host", "icmpv6.type == 1 && !(ipv6.src == " + vhostAddr6 + ")", 0, 0},
		countCheck{"TCP resets not from the host", "tcp.flags.reset == 1 && !(ip.src == " + vhostAddr + " || ipv6.src == " + vhostAddr6 + ")", 0, 0},
		countCheck{"Time Exceeded from the last router", "icmp.type == 11 && icmp.code == 0 && ip.src == 198.18.0.3 && ip.dst == " + hostAddr, 1, atLeast},
		countCheck{"ICMPv6 Time Exceeded from the last router", "icmpv6.type == 3 && icmpv6.code == 0 && ipv6.src == 2001:db8:ffff::3 && ipv6.dst == " + hostAddr6, 1, atLeast},
		countCheck{"Port Unreachable from the host", "icmp.type == 3 && icmp.code == 3 && ip.src == " + vhostAddr, 1, atLeast},
		countCheck{"ICMPv6 Port Unreachable from the host", "icmpv6.type == 1 && icmpv6.code == 4 && ipv6.src == " + vhostAddr6, 1, atLeast},
		countCheck{"TCP resets from the host", "tcp.flags.reset == 1 && ip.src == " + vhostAddr, 1, atLeast},
		countCheck{"TCP resets from the host over IPv6", "tcp.flags.reset == 1 && ipv6.src == " + vhostAddr6, 1, atLeast},
	)
	if c["replied"] == 0 {
		t.Errorf("counter replied = 0, want the echo replies counted")
	}
}

// TestPathMTU gives the last link into the host an MTU of 1400: tracepath
// discovers it on both IP versions, and a ping too large for it with DF set
// is answered by the last router with "fragmentation needed" or "packet
// too big" carrying 1400. Each part gets a namespace of its own, so that
// neither finds the path MTU the kernel learnt from the other.
func TestPathMTU(t *testing.T) {
	requireE2E(t, "ping", "sysctl", "tracepath")
	setup := func(t *testing.T) *netNS {
		ns := newRouterNS(t)
		startVhost(t, ns, append([]string{"--hops", "3", "--path-mtu", "1400"}, dualStackArgs...)...)
		return ns
	}
	t.Run("tracepath", func(t *testing.T) {
		ns := setup(t)
		checkTracepath(t, ns, vhostAddr, hops4, 1400, routers4[2])
		checkTracepath(t, ns, vhostAddr6, hops6, 1400, routers6[2])
	})
	t.Run("ping", func(t *testing.T) {
		ns := setup(t)
		pingAll(t, ns, vhostAddr, 2, "-M", "do", "-s", "1372") // 20 + 8 + 1372 = 1400
		pingAll(t, ns, vhostAddr6, 2, "-6", "-M", "do", "-s", "1352")
		p := ns.ping(t, "-c", "1", "-W", "1", "-M", "do", "-s", "1373", vhostAddr)
		if !regexp.MustCompile(`From 198\.18\.0\.3 .*[Ff]rag needed.*mtu ?= ?1400`).MatchString(p.stdout) {
			t.Errorf("ping -M do -s 1373 %s: want \"From 198.18.0.3 ... Frag needed ... mtu = 1400\"\n%s", vhostAddr, p.result)
		}
		p = ns.ping(t, "-6", "-c", "1", "-W", "1", "-M", "do", "-s", "1353", vhostAddr6)
		if !regexp.MustCompile(`From 2001:db8:ffff::3 .*[Pp]acket too big.*mtu ?= ?1400`).MatchString(p.stdout) {
			t.Errorf("ping -6 -M do -s 1353 %s: want \"From 2001:db8:ffff::3 ... Packet too big: mtu=1400\"\n%s", vhostAddr6, p.result)
		}
	})
}

// TestExplicitRouters gives the routers' addresses on the command line:
// traceroute lists them in the order given, not sorted. A router given one
// address family only gets the generated address of its place in the
// chain for the other (2001:db8:ffff::2, 198.18.0.3 here).
func TestExplicitRouters(t *testing.T) {
	requireE2E(t, "sysctl", "traceroute")
	ns := newRouterNS(t)
	args := append([]string{"--router", "192.0.2.77,2001:db8:77::1", "--router", "203.0.113.5", "--router", "2001:db8:9::1"}, dualStackArgs...)
	startVhost(t, ns, args...)
	want := []string{"192.0.2.77", "203.0.113.5", "198.18.0.3", vhostAddr}
	want6 := []string{"2001:db8:77::1", "2001:db8:ffff::2", "2001:db8:9::1", vhostAddr6}
	checkTraceroute(t, ns, want, "traceroute", "-n", "-q", "1", "-w", "1", vhostAddr)
	checkTraceroute(t, ns, want, "traceroute", "-I", "-n", "-q", "1", "-w", "1", vhostAddr)
	checkTraceroute(t, ns, want6, "traceroute", "-6", "-n", "-q", "1", "-w", "1", vhostAddr6)
}

// TestICMPRateLimit sends ten probes with TTL 1 at once to a host behind
// one router whose ICMP errors are limited to a burst of 2 and 1 a second:
// at most 3 get Time Exceeded (the burst, and one token refilled while the
// probes go out), and the counters say how many were held back. With the
// default limit all ten are answered, so the limit is what held them.
func TestICMPRateLimit(t *testing.T) {
	requireE2E(t, "sysctl", "traceroute")
	ns := newRouterNS(t)
	probe := func(t *testing.T, args ...string) (answered int, c counters) {
		t.Helper()
		v := startVhost(t, ns, append([]string{"--hops", "1", "--addr", vhostAddr}, args...)...)
		argv := []string{"traceroute", "-n", "-q", "10", "-m", "1", "-w", "1", vhostAddr}
		r := ns.run(t, traceTimeout, argv...)
		hops := parseTraceroute(t, r.stdout)
		if len(hops) != 1 || hops[0].answers+hops[0].lost != 10 {
			t.Fatalf("%q: want one hop line with 10 probes\n%s", argv, r)
		}
		if hops[0].answers > 0 && hops[0].addr != routers4[0] {
			t.Errorf("%q: hop 1 is %s, want %s\n%s", argv, hops[0].addr, routers4[0], r.stdout)
		}
		v.terminate(t)
		return hops[0].answers, v.countersNamed(t, []string{"time_exceeded", "icmp_rate_limited"})
	}
	t.Run("limited", func(t *testing.T) {
		const burst = 2
		n, c := probe(t, "--icmp-rate", "1", "--icmp-burst", strconv.Itoa(burst))
		if n < 1 || n > burst+1 {
			t.Errorf("%d of 10 probes got Time Exceeded, want 1 to %d (burst %d, 1/s)", n, burst+1, burst)
		}
		if c["time_exceeded"] != uint64(n) || c["time_exceeded"]+c["icmp_rate_limited"] != 10 {
			t.Errorf("counters time_exceeded = %d, icmp_rate_limited = %d; want %d and %d (10 probes, %d answered)",
				c["time_exceeded"], c["icmp_rate_limited"], n, 10-n, n)
		}
	})
	t.Run("default", func(t *testing.T) {
		n, c := probe(t)
		if n != 10 || c["time_exceeded"] != 10 || c["icmp_rate_limited"] != 0 {
			t.Errorf("default limit: %d of 10 probes answered, counters time_exceeded = %d, icmp_rate_limited = %d; want 10, 10, 0",
				n, c["time_exceeded"], c["icmp_rate_limited"])
		}
	})
}

// anyOf is a display filter matching packets whose field has one of the
// values (written out with ||: tshark 4.0 wants commas in a set, older
// versions spaces).
func anyOf(field string, values []string) string {
	var terms []string
	for _, v := range values {
		terms = append(terms, field+" == "+v)
	}
	return strings.Join(terms, " || ")
}
