//go:build linux

package test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// examplesDir returns the module's examples directory.
func examplesDir(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "examples")
}

// example returns the path of examples/name, failing the test if it is
// missing.
func example(t *testing.T, name string) string {
	t.Helper()
	file := filepath.Join(examplesDir(t), name)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("example %s: %v", name, err)
	}
	return file
}

// TestCheckExamples runs vhost check on every example: all are valid.
func TestCheckExamples(t *testing.T) {
	requireE2E(t, "sysctl")
	files, err := filepath.Glob(filepath.Join(examplesDir(t), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hello.yaml", "arp-ndp.yaml", "traceroute.yaml"} {
		if !slices.Contains(files, filepath.Join(examplesDir(t), want)) {
			t.Errorf("examples/%s is missing; examples: %q", want, files)
		}
	}
	ns := newNS(t)
	before := ns.snapshot(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			r := ns.run(t, cmdTimeout, vhostBin, "check", file)
			if r.code != 0 {
				t.Errorf("vhost check %s: exit %d, want 0\n%s", file, r.code, r)
			}
		})
	}
	if after := ns.snapshot(t); after != before {
		t.Errorf("vhost check changed the namespace:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestCheckBroken runs vhost check on broken lab files: each exits 2 and
// names the file, the line and the field at fault. A valid file next to
// them exits 0, so the check is not simply failing everything.
func TestCheckBroken(t *testing.T) {
	requireE2E(t, "sysctl")
	ns := newNS(t)
	for _, tc := range []struct {
		name string
		text string
		code int
		line int      // the line the message must name
		want []string // substrings of the message, matched case-insensitively
	}{
		{
			name: "valid",
			text: "host-addrs: [10.0.0.1/24]\nhosts:\n  - name: a\n    addrs: [10.0.0.2]\n    loss: 10%\n",
			code: 0,
		},
		{
			name: "loss_above_100",
			text: "host-addrs: [10.0.0.1/24]\nhosts:\n  - name: a\n    addrs: [10.0.0.2]\n    loss: 110%\n",
			code: 2, line: 5, want: []string{"hosts[0].loss", "110%"},
		},
		{
			name: "unknown_field",
			text: "host-addrs: [10.0.0.1/24]\nhosts:\n  - name: a\n    addrs: [10.0.0.2]\n\n    colour: red\n",
			code: 2, line: 6, want: []string{"colour"},
		},
		{
			name: "bad_address",
			text: "host-addrs: [10.0.0.1/24]\nhosts:\n  - name: a\n    addrs: [10.0.0.2]\n  - name: b\n    addrs: [10.0.0.300]\n",
			code: 2, line: 6, want: []string{"hosts[1].addrs", "10.0.0.300"},
		},
		{
			name: "bad_delay",
			text: "host-addrs: [10.0.0.1/24]\nhosts:\n  - name: a\n    addrs: [10.0.0.2]\n    delay: soon\n",
			code: 2, line: 5, want: []string{"hosts[0].delay", "soon"},
		},
		{
			name: "address_twice",
			text: "host-addrs: [10.0.0.1/24]\nhosts:\n  - name: a\n    addrs: [10.0.0.2]\n  - name: b\n    addrs: [10.0.0.2]\n",
			code: 2, line: 6, want: []string{"hosts[1].addrs", "10.0.0.2"},
		},
		{
			name: "yaml_syntax",
			text: "host-addrs: [10.0.0.1/24]\nhosts:\n  - name: a\n    addrs: [10.0.0.2\n",
			code: 2, line: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeLab(t, tc.name+".yaml", tc.text)
			r := ns.run(t, cmdTimeout, vhostBin, "check", file)
			msg := r.stdout + r.stderr
			if r.code != tc.code {
				t.Fatalf("vhost check %s: exit %d, want %d\n%s\nfile:\n%s", tc.name, r.code, tc.code, r, tc.text)
			}
			if tc.code == 0 {
				return
			}
			// file:line:column: field: what is wrong
			pos := regexp.MustCompile(regexp.QuoteMeta(filepath.Base(file)) + `:` + strconv.Itoa(tc.line) + `(:\d+)?:`)
			if !pos.MatchString(msg) {
				t.Errorf("vhost check %s: message does not name %s:%d:\n%s\nfile:\n%s", tc.name, filepath.Base(file), tc.line, msg, tc.text)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
					t.Errorf("vhost check %s: message does not mention %q:\n%s", tc.name, w, msg)
				}
			}
			if strings.Contains(msg, "panic:") || strings.Contains(msg, "goroutine ") {
				t.Errorf("vhost check %s panicked:\n%s", tc.name, msg)
			}
		})
	}
}

// nsSnapshot is what a namespace's network looks like: its devices,
// addresses and routes, without the counters and timers that change by
// themselves.
type nsSnapshot string

var lifetimes = regexp.MustCompile(`\s+(valid_lft|preferred_lft) \S+`)

// snapshot returns the namespace's devices, addresses and routes.
func (ns *netNS) snapshot(t *testing.T) nsSnapshot {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{
		{"ip", "-o", "link", "show"},
		{"ip", "-o", "addr", "show"},
		{"ip", "route", "show", "table", "all"},
		{"ip", "-6", "route", "show", "table", "all"},
		{"ip", "rule", "show"},
	} {
		out := ns.mustRun(t, argv...).stdout
		b.WriteString("$ " + strings.Join(argv, " ") + "\n" + lifetimes.ReplaceAllString(out, "") + "\n")
	}
	return nsSnapshot(b.String())
}

// startExample runs vhost run --config examples/name in the namespace, from
// a temporary directory (so that a file the example writes stays there),
// and waits until it is up.
func startExample(t *testing.T, ns *netNS, name string) *vhost {
	t.Helper()
	file := example(t, name)
	dir := t.TempDir()
	return startVhostArgv(t, ns, []string{"sh", "-c", `cd "$1" && exec "$2" run --config "$3"`, "sh", dir, vhostBin, file})
}

// TestExampleHello runs examples/hello.yaml in a namespace: 10.0.0.2
// answers ping; the namespace has one more device while it runs, and is
// as it was once vhost exits.
func TestExampleHello(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	before := ns.snapshot(t)
	links := ns.links(t)
	v := startExample(t, ns, "hello.yaml")
	pingAll(t, ns, vhostAddr, 3)
	if got := ns.links(t); len(got) != len(links)+1 || !slices.Contains(got, v.dev) {
		t.Errorf("devices while examples/hello.yaml runs: %q, want %q and %s", got, links, v.dev)
	}
	v.stop(t)
	if after := ns.snapshot(t); after != before {
		t.Errorf("examples/hello.yaml left the namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestExampleTraceroute runs examples/traceroute.yaml in a namespace with
// strict reverse-path filtering and checks what its comments promise: a
// host three routers away (10.0.1.1, 10.0.2.1, 10.0.3.1, then 10.0.5.7;
// fd00:1::1, fd00:2::1, fd00:3::1, then fd00:5::7), times growing hop by
// hop with the routers' and the host's delays, and a last link of MTU 1400
// that tracepath finds and that answers an oversized ping from router 3.
// Router 3 loses 10% of what crosses it, so the traces send three probes a
// hop and a hop needs one answer.
func TestExampleTraceroute(t *testing.T) {
	requireE2E(t, "ping", "sysctl", "traceroute", "mtr", "tracepath")
	const host, host6 = "10.0.5.7", "fd00:5::7"
	routers := []string{"10.0.1.1", "10.0.2.1", "10.0.3.1"}
	routers6 := []string{"fd00:1::1", "fd00:2::1", "fd00:3::1"}
	want := append(slices.Clone(routers), host)
	want6 := append(slices.Clone(routers6), host6)
	// The least delay to each hop and back: the delays of the routers up
	// to it (less their jitter), and at the host its own 15 ms.
	minRTT := []time.Duration{5 * time.Millisecond, 13 * time.Millisecond, 28 * time.Millisecond, 43 * time.Millisecond}

	ns := newRouterNS(t)
	before := ns.snapshot(t)
	links := ns.links(t)
	v := startExample(t, ns, "traceroute.yaml")
	if v.dev != "vhtr0" {
		t.Errorf("examples/traceroute.yaml: device %q, want vhtr0", v.dev)
	}
	if got := ns.links(t); !slices.Equal(got, append(slices.Clone(links), "vhtr0")) {
		t.Errorf("devices while examples/traceroute.yaml runs: %q, want %q and vhtr0", got, links)
	}
	t.Run("routes", func(t *testing.T) {
		for _, a := range append(slices.Clone(want), want6...) {
			if r := ns.mustRun(t, "ip", "route", "get", a); !strings.Contains(r.stdout, " dev vhtr0 ") {
				t.Errorf("ip route get %s = %q, want a route via vhtr0", a, strings.TrimSpace(r.stdout))
			}
		}
	})
	t.Run("ping", func(t *testing.T) {
		p := ns.ping(t, "-c", "5", "-i", "0.2", "-W", "2", host)
		rs := pingReplies(p.stdout)
		if len(rs) < 3 {
			t.Errorf("ping -c 5 %s: %d replies, want at least 3 (10%% loss)\n%s", host, len(rs), p.stdout)
		}
		for _, r := range rs {
			if r.rtt < minRTT[3] {
				t.Errorf("ping %s: icmp_seq=%d RTT %v, want at least %v (5 + 10 + 20 + 15 ms less jitter)", host, r.seq, r.rtt, minRTT[3])
			}
		}
	})
	// While the kernel does not know the path MTU yet: once it does, ping
	// fails locally ("message too long") instead.
	t.Run("ping_too_big", func(t *testing.T) {
		p := ns.ping(t, "-c", "3", "-i", "0.2", "-W", "1", "-M", "do", "-s", "1400", host)
		if !regexp.MustCompile(`From 10\.0\.3\.1 .*[Ff]rag needed.*mtu ?= ?1400`).MatchString(p.stdout) {
			t.Errorf("ping -M do -s 1400 %s: want \"From 10.0.3.1 ... Frag needed and DF set (mtu = 1400)\"\n%s", host, p.result)
		}
	})
	for _, tc := range []struct {
		name string
		want []string
		argv []string
	}{
		{"traceroute", want, []string{"traceroute", "-n", "-q", "3", "-w", "1", host}},
		{"traceroute_icmp", want, []string{"traceroute", "-n", "-I", "-q", "3", "-w", "1", host}},
		{"traceroute_6", want6, []string{"traceroute", "-n", "-6", "-q", "3", "-w", "1", host6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hops := checkTraceroute(t, ns, tc.want, tc.argv...)
			for i, h := range hops {
				for _, rtt := range h.rtts {
					if rtt < minRTT[i] {
						t.Errorf("%q: hop %d (%s) RTT %v, want at least %v\n%s", tc.argv, i+1, h.addr, rtt, minRTT[i], h.line)
					}
				}
			}
		})
	}
	t.Run("mtr", func(t *testing.T) { checkMtr(t, ns, want, host) })
	t.Run("tracepath", func(t *testing.T) {
		// Forget the path MTU ping_too_big taught the kernel, so that
		// tracepath finds it itself, from router 3.
		ns.mustRun(t, "ip", "route", "flush", "cache")
		checkTracepath(t, ns, host, want, 1400, routers[2])
	})

	v.stop(t)
	if after := ns.snapshot(t); after != before {
		t.Errorf("examples/traceroute.yaml left the namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestExampleARPNDP runs examples/arp-ndp.yaml in a namespace and checks
// what its comments promise: each address is found by ARP or neighbour
// discovery with its MAC (made from the address, or the host's own for
// both of beta's addresses), a /28 is one host per address but its network
// and broadcast addresses, nothing answers for 10.0.0.9, and the capture
// it writes (relative to the directory vhost runs in) shows the
// announcements and the advertisements with their flags.
func TestExampleARPNDP(t *testing.T) {
	requireE2E(t, "ping", "arping", "ndisc6", "sysctl", "tshark")
	const dev, betaMAC = "vhtap0", "02:be:7a:00:00:03"
	ns := newNS6(t)
	before := ns.snapshot(t)
	links := ns.links(t)
	file := example(t, "arp-ndp.yaml")
	dir := t.TempDir()
	v := startVhostArgv(t, ns, []string{"sh", "-c", `cd "$1" && exec "$2" run --config "$3"`, "sh", dir, vhostBin, file})
	if got := ns.links(t); !slices.Equal(got, append(slices.Clone(links), dev)) {
		t.Errorf("devices while examples/arp-ndp.yaml runs: %q, want %q and %s", got, links, dev)
	}

	t.Run("arping", func(t *testing.T) {
		for _, tc := range []struct{ addr, mac string }{
			{"10.0.0.2", "02:00:0a:00:00:02"},
			{"10.0.0.3", betaMAC},
			{"10.0.0.130", "02:00:0a:00:00:82"},
		} {
			a := ns.arping(t, "-c", "1", "-w", "3", "-I", dev, tc.addr)
			if a.received != 1 || len(a.replies) != 1 || a.replies[0] != tc.mac {
				t.Errorf("arping %s: %d responses from %q, want 1 from %s\n%s", tc.addr, a.received, a.replies, tc.mac, a.stdout)
			}
		}
		if a := ns.arping(t, "-c", "2", "-w", "2", "-I", dev, "10.0.0.9"); a.received != 0 {
			t.Errorf("arping 10.0.0.9 (nobody's): %d responses, want 0\n%s", a.received, a.stdout)
		}
	})
	t.Run("ndisc6", func(t *testing.T) {
		for _, tc := range []struct{ addr, mac string }{
			{"fd00::2", "06:fd:00:00:00:02"},
			{"fd00::3", betaMAC},
		} {
			if n := ns.ndisc6(t, tc.addr, dev, 3); n.code != 0 || n.mac != tc.mac {
				t.Errorf("ndisc6 %s %s: exit %d, link-layer address %q; want 0, %s\n%s", tc.addr, dev, n.code, n.mac, tc.mac, n)
			}
		}
	})
	t.Run("ping", func(t *testing.T) {
		for _, a := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.129", "10.0.0.130", "10.0.0.142"} {
			pingAll(t, ns, a, 1)
		}
		pingAll(t, ns, "fd00::2", 1, "-6")
		pingAll(t, ns, "fd00::3", 1, "-6")
		// The /28's broadcast address, and the first address past it.
		for _, a := range []string{"10.0.0.143", "10.0.0.144"} {
			if p := ns.ping(t, "-c", "1", "-W", "1", a); p.received != 0 {
				t.Errorf("ping %s (not a host of 10.0.0.128/28): %d received, want 0\n%s", a, p.received, p.stdout)
			}
		}
	})
	t.Run("neighbours", func(t *testing.T) {
		r := ns.mustRun(t, "ip", "neigh", "show", "dev", dev)
		for _, want := range []string{
			"10.0.0.2 lladdr 02:00:0a:00:00:02", "10.0.0.3 lladdr " + betaMAC,
			"fd00::2 lladdr 06:fd:00:00:00:02", "fd00::3 lladdr " + betaMAC,
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("ip neigh show dev %s lacks %q:\n%s", dev, want, r.stdout)
			}
		}
	})
	v.stop(t)
	if after := ns.snapshot(t); after != before {
		t.Errorf("examples/arp-ndp.yaml left the namespace changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	pcap := filepath.Join(dir, "arp-ndp.pcap")
	if _, err := os.Stat(pcap); err != nil {
		t.Fatalf("examples/arp-ndp.yaml: no capture in the directory vhost ran in: %v", err)
	}
	checkCounts(t, pcap,
		countCheck{"announcements of 10.0.0.2", "arp.opcode == 1 && arp.src.proto_ipv4 == 10.0.0.2 && arp.dst.proto_ipv4 == 10.0.0.2", 1, atLeast},
		countCheck{"announcements of 10.0.0.3", "arp.opcode == 1 && arp.src.proto_ipv4 == 10.0.0.3 && arp.dst.proto_ipv4 == 10.0.0.3 && arp.src.hw_mac == " + betaMAC, 1, atLeast},
		countCheck{"ARP requests that are not broadcasts", "arp.opcode == 1 && eth.dst != ff:ff:ff:ff:ff:ff", 0, 0},
		countCheck{"ARP replies that are broadcasts", "arp.opcode == 2 && eth.dst == ff:ff:ff:ff:ff:ff", 0, 0},
		countCheck{"ARP replies for 10.0.0.9", "arp.opcode == 2 && arp.src.proto_ipv4 == 10.0.0.9", 0, 0},
		countCheck{"solicitations for fd00::2 to its solicited-node group", "icmpv6.type == 135 && icmpv6.nd.ns.target_address == fd00::2 && ipv6.dst == ff02::1:ff00:2 && eth.dst == 33:33:ff:00:00:02", 1, atLeast},
		countCheck{"advertisements for fd00::2 with S, O and its MAC", "icmpv6.type == 136 && icmpv6.nd.na.target_address == fd00::2 && icmpv6.nd.na.flag.s == 1 && icmpv6.nd.na.flag.o == 1 && icmpv6.opt.linkaddr == 06:fd:00:00:00:02", 1, atLeast},
		countCheck{"advertisements for fd00::3 with beta's MAC", "icmpv6.type == 136 && icmpv6.nd.na.target_address == fd00::3 && icmpv6.opt.linkaddr == " + betaMAC + " && eth.src == " + betaMAC, 1, atLeast},
	)
}
