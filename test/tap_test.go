//go:build linux

package test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// arpingResult is arping's output and the replies it counted.
type arpingResult struct {
	result
	sent     int
	received int
	replies  []string // the MACs of "reply from" lines, lower case
}

var (
	arpingSent     = regexp.MustCompile(`Sent (\d+) probe`)
	arpingReceived = regexp.MustCompile(`Received (\d+) response`)
	arpingReply    = regexp.MustCompile(`(?i)reply from ([0-9.]+) \[([0-9a-f:]{17})\]`)
)

// arping runs arping with args in the namespace and parses its output.
func (ns *netNS) arping(t *testing.T, args ...string) arpingResult {
	t.Helper()
	r := ns.run(t, time.Minute, append([]string{"arping"}, args...)...)
	m := arpingReceived.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("arping: no \"Received N response(s)\" line: %v", r)
	}
	a := arpingResult{result: r}
	a.received, _ = strconv.Atoi(m[1])
	if m := arpingSent.FindStringSubmatch(r.stdout); m != nil {
		a.sent, _ = strconv.Atoi(m[1])
	}
	for _, m := range arpingReply.FindAllStringSubmatch(r.stdout, -1) {
		a.replies = append(a.replies, strings.ToLower(m[2]))
	}
	return a
}

// TestTAP runs ping and arping against vhost on a TAP device.
func TestTAP(t *testing.T) {
	requireE2E(t, "ping", "arping", "sysctl")
	ns := newNS(t)
	v := startVhost(t, ns, "--mode", "tap")
	if v.mode != "tap" {
		t.Errorf("vhost up: mode = %q, want tap", v.mode)
	}
	if v.mac != vhostMAC {
		t.Errorf("vhost up: mac = %q, want %s", v.mac, vhostMAC)
	}

	// First, with no neighbour entry yet: the kernel must resolve 10.0.0.2
	// by ARP before the first echo request goes out, and that first
	// request must be answered too.
	t.Run("ping_first_packet", func(t *testing.T) {
		ns.mustRun(t, "ip", "neigh", "flush", "dev", v.dev)
		p := ns.ping(t, "-c", "5", "-i", "0.2", "-W", "2", vhostAddr)
		if p.transmitted != 5 || p.received != 5 || p.code != 0 {
			t.Fatalf("ping -c 5 %s: %d transmitted, %d received, exit %d; want 5, 5, 0\n%s", vhostAddr, p.transmitted, p.received, p.code, p.stdout)
		}
		if !strings.Contains(p.stdout, "icmp_seq=1 ") {
			t.Errorf("the first echo request (icmp_seq=1) got no reply:\n%s", p.stdout)
		}
		if !strings.Contains(p.stdout, " 0% packet loss") {
			t.Errorf("ping reports loss:\n%s", p.stdout)
		}
	})

	t.Run("neighbour_entry", func(t *testing.T) {
		r := ns.mustRun(t, "ip", "neigh", "show", vhostAddr, "dev", v.dev)
		if !strings.Contains(r.stdout, "lladdr "+vhostMAC) {
			t.Errorf("ip neigh show %s dev %s = %q, want lladdr %s", vhostAddr, v.dev, strings.TrimSpace(r.stdout), vhostMAC)
		}
	})

	t.Run("fragmented", func(t *testing.T) {
		for _, size := range []string{"1473", "8000", "65507"} {
			p := ns.ping(t, "-c", "2", "-i", "0.2", "-W", "2", "-s", size, vhostAddr)
			if p.received != 2 || strings.Contains(p.stdout, "wrong data") {
				t.Errorf("ping -s %s: %d received (want 2), or wrong data:\n%s", size, p.received, p.stdout)
			}
		}
	})

	t.Run("arping", func(t *testing.T) {
		a := ns.arping(t, "-c", "3", "-w", "5", "-I", v.dev, vhostAddr)
		// arping sends one probe per second for -c seconds, but when it is
		// not scheduled for over a second it counts the missed timer
		// expirations and sends fewer probes (iputils 20221126). Every
		// probe sent must be answered; fewer than 3 sent is arping's doing.
		if a.sent < 3 {
			t.Logf("arping sent %d probes, not 3 (it was not scheduled in time)", a.sent)
		}
		if a.sent == 0 || a.received != a.sent || len(a.replies) != a.sent {
			t.Fatalf("arping -c 3 %s: %d probes sent, %d responses, %d reply lines; want every probe answered\n%s", vhostAddr, a.sent, a.received, len(a.replies), a.stdout)
		}
		for _, mac := range a.replies {
			if mac != vhostMAC {
				t.Errorf("arping reply from %s, want %s\n%s", mac, vhostMAC, a.stdout)
			}
		}
		if a.code != 0 {
			t.Errorf("arping exit status %d, want 0", a.code)
		}
	})

	t.Run("arping_not_owned", func(t *testing.T) {
		a := ns.arping(t, "-c", "2", "-w", "2", "-I", v.dev, unowned)
		if a.received != 0 || len(a.replies) != 0 {
			t.Errorf("arping %s (not owned): %d responses; want 0\n%s", unowned, a.received, a.stdout)
		}
		if a.code == 0 {
			t.Errorf("arping %s exit status 0, want non-zero (no replies)", unowned)
		}
	})

	// RFC 5227 probe (sender IP 0.0.0.0): the owner defends the address.
	// arping -D exits 0 when the address is free (no reply), 1 when a reply
	// came; the unowned address is the control.
	for _, tc := range []struct {
		name     string
		target   string
		wantCode int
		wantMACs []string
	}{
		{name: "owned", target: vhostAddr, wantCode: 1, wantMACs: []string{vhostMAC}},
		{name: "not_owned", target: unowned, wantCode: 0},
	} {
		t.Run("dad/"+tc.name, func(t *testing.T) {
			a := ns.arping(t, "-D", "-c", "2", "-w", "3", "-I", v.dev, tc.target)
			if a.code != tc.wantCode {
				t.Errorf("arping -D %s exit status %d, want %d\n%s", tc.target, a.code, tc.wantCode, a.stdout)
			}
			if strings.Join(a.replies, ",") != strings.Join(tc.wantMACs, ",") {
				t.Errorf("arping -D %s replies from %q, want %q\n%s", tc.target, a.replies, tc.wantMACs, a.stdout)
			}
		})
	}

	c := v.stop(t)
	if c["arp_announcements"] != 1 {
		t.Errorf("counter arp_announcements = %d, want 1 (one address)", c["arp_announcements"])
	}
	if c["bad_arp"] != 0 || c["bad_source"] != 0 {
		t.Errorf("counters bad_arp = %d, bad_source = %d; want 0", c["bad_arp"], c["bad_source"])
	}
	if ns.linkExists(t, v.dev) {
		t.Errorf("transient device %s still exists after vhost exited", v.dev)
	}
}

// TestTAPCustomMAC checks --mac and --addr on TAP: arping and the neighbour
// table show the given MAC for the given address.
func TestTAPCustomMAC(t *testing.T) {
	requireE2E(t, "ping", "arping", "sysctl")
	const mac, addr = "02:11:22:33:44:55", "10.0.0.5"
	ns := newNS(t)
	v := startVhost(t, ns, "--mode", "tap", "--mac", mac, "--addr", addr)
	if v.mac != mac {
		t.Errorf("vhost up: mac = %q, want %s", v.mac, mac)
	}
	a := ns.arping(t, "-c", "1", "-w", "3", "-I", v.dev, addr)
	if a.received != 1 || len(a.replies) != 1 || a.replies[0] != mac {
		t.Errorf("arping %s: %d responses from %q, want 1 from %s\n%s", addr, a.received, a.replies, mac, a.stdout)
	}
	if p := ns.ping(t, "-c", "2", "-i", "0.2", "-W", "2", addr); p.received != 2 {
		t.Errorf("ping %s: %d received, want 2\n%s", addr, p.received, p.stdout)
	}
	r := ns.mustRun(t, "ip", "neigh", "show", addr, "dev", v.dev)
	if !strings.Contains(r.stdout, "lladdr "+mac) {
		t.Errorf("ip neigh show %s = %q, want lladdr %s", addr, strings.TrimSpace(r.stdout), mac)
	}
	if p := ns.ping(t, "-c", "1", "-W", "1", vhostAddr); p.received != 0 {
		t.Errorf("ping %s (not owned with --addr %s): %d received, want 0", vhostAddr, addr, p.received)
	}
	v.stop(t)
}
