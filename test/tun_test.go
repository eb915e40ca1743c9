//go:build linux

package test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestTUNPing pings vhost on a TUN device with the kernel's ping.
func TestTUNPing(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	v := startVhost(t, ns, "--log-format", "json")
	if v.mode != "tun" {
		t.Errorf("vhost up: mode = %q, want tun", v.mode)
	}
	if len(v.addrs) != 1 || v.addrs[0] != vhostAddr {
		t.Errorf("vhost up: addrs = %q, want [%s]", v.addrs, vhostAddr)
	}
	if mtu, _ := v.up.fields["mtu"].(json.Number); mtu.String() != "1500" {
		t.Errorf("vhost up: mtu = %v, want 1500", v.up.fields["mtu"])
	}

	var replies int
	t.Run("count5", func(t *testing.T) {
		p := ns.ping(t, "-c", "5", "-i", "0.2", "-W", "2", vhostAddr)
		if p.transmitted != 5 || p.received != 5 || p.code != 0 {
			t.Fatalf("ping -c 5 %s: %d transmitted, %d received, exit %d; want 5, 5, 0\n%s", vhostAddr, p.transmitted, p.received, p.code, p.stdout)
		}
		for _, seq := range []string{"icmp_seq=1 ", "icmp_seq=5 "} {
			if !strings.Contains(p.stdout, seq) {
				t.Errorf("ping output has no reply with %s:\n%s", seq, p.stdout)
			}
		}
		if !strings.Contains(p.stdout, "ttl=64") {
			t.Errorf("ping output shows no ttl=64:\n%s", p.stdout)
		}
		replies += 5
	})

	for _, tc := range []struct {
		name string
		size string
	}{
		{name: "empty", size: "0"},
		{name: "default", size: "56"},
		{name: "fills_mtu", size: "1472"},
		{name: "one_over_mtu", size: "1473"},
		{name: "fragmented_8000", size: "8000"},
		{name: "largest_65507", size: "65507"},
	} {
		t.Run("size/"+tc.name, func(t *testing.T) {
			p := ns.ping(t, "-c", "2", "-i", "0.2", "-W", "2", "-s", tc.size, vhostAddr)
			replies += p.received
			if p.transmitted != 2 || p.received != 2 || p.code != 0 {
				t.Fatalf("ping -s %s: %d transmitted, %d received, exit %d; want 2, 2, 0\n%s", tc.size, p.transmitted, p.received, p.code, p.stdout)
			}
			// ping compares the data of replies of 16 bytes and more with
			// what it sent and says so when they differ.
			if strings.Contains(p.stdout, "wrong data") || strings.Contains(p.stdout, "DUP!") {
				t.Errorf("ping -s %s reports wrong data or duplicates:\n%s", tc.size, p.stdout)
			}
		})
	}

	t.Run("not_owned", func(t *testing.T) {
		p := ns.ping(t, "-c", "3", "-i", "0.2", "-W", "1", unowned)
		if p.transmitted != 3 || p.received != 0 {
			t.Fatalf("ping %s (not owned): %d transmitted, %d received; want 3, 0\n%s", unowned, p.transmitted, p.received, p.stdout)
		}
		if p.code == 0 {
			t.Errorf("ping %s exit status 0, want non-zero (no replies)", unowned)
		}
	})

	c := v.stop(t)
	if c["replied"] != uint64(replies) {
		t.Errorf("counter replied = %d, want %d (the replies ping received)", c["replied"], replies)
	}
	if c["not_for_us"] != 3 {
		t.Errorf("counter not_for_us = %d, want 3 (the pings to %s)", c["not_for_us"], unowned)
	}
	if ns.linkExists(t, v.dev) {
		t.Errorf("transient device %s still exists after vhost exited", v.dev)
	}
}

// TestTUNPattern checks that vhost echoes ping -p's fill pattern: ping finds
// no wrong data, and in a capture every reply carries the same data as its
// request, with the pattern in it.
func TestTUNPattern(t *testing.T) {
	requireE2E(t, "ping", "tshark", "sysctl")
	ns := newNS(t)
	v := startVhost(t, ns)
	capt := ns.startCapture(t, v.dev)
	p := ns.ping(t, "-c", "3", "-i", "0.2", "-W", "2", "-p", "ff00aa55", "-s", "100", vhostAddr)
	file := capt.stop(t)
	if p.received != 3 {
		t.Fatalf("ping -p ff00aa55: %d received, want 3\n%s", p.received, p.stdout)
	}
	if !strings.Contains(p.stdout, "PATTERN: 0xff00aa55") {
		t.Errorf("ping did not take the pattern:\n%s", p.stdout)
	}
	if strings.Contains(p.stdout, "wrong data") {
		t.Errorf("ping reports wrong data:\n%s", p.stdout)
	}
	if n := tsharkCount(t, file, badFilter); n != 0 {
		t.Errorf("tshark finds %d bad packets (%s):\n%s", n, badFilter, tsharkText(t, file, badFilter))
	}
	checkEchoedData(t, dissect(t, file), 3, "ff00aa55ff00aa55ff00aa55")
}

// checkEchoedData checks in a dissected capture that there are exactly n
// echo replies from vhost to the kernel side, each with TTL 64 and the data
// of the request with the same id and sequence number, containing pattern
// (hex) if it is set. Fragmented replies count once, in the frame that
// completes them.
func checkEchoedData(t *testing.T, pkts []dissected, n int, pattern string) {
	t.Helper()
	key := func(p dissected) string { return fmt.Sprintf("%d/%d", p.id, p.seq) }
	req := map[string]string{}
	for _, p := range pkts {
		if p.icmpType == 8 && p.ipDst == vhostAddr {
			req[key(p)] = p.data
		}
	}
	got := 0
	for _, p := range pkts {
		if p.icmpType != 0 || p.ipSrc != vhostAddr {
			continue
		}
		got++
		if p.ipDst != hostAddr || p.ttl != 64 {
			t.Errorf("frame %d: echo reply to %s with TTL %d, want to %s with TTL 64", p.frame, p.ipDst, p.ttl, hostAddr)
		}
		want, ok := req[key(p)]
		if !ok {
			t.Errorf("frame %d: echo reply id/seq %s has no request in the capture", p.frame, key(p))
			continue
		}
		if p.data != want {
			t.Errorf("frame %d: echo reply id/seq %s data differs from the request's:\n got %.80s... (%d hex digits)\nwant %.80s... (%d hex digits)",
				p.frame, key(p), p.data, len(p.data), want, len(want))
		}
		if pattern != "" && !strings.Contains(p.data, pattern) {
			t.Errorf("frame %d: echo reply id/seq %s data lacks pattern %s: %.120s", p.frame, key(p), pattern, p.data)
		}
	}
	if got != n {
		t.Errorf("capture has %d echo replies from %s, want %d", got, vhostAddr, n)
	}
}

// TestTUNAddresses checks repeated --addr and a prefix: every host address
// of the prefix is answered, but not an address outside it.
func TestTUNAddresses(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	for _, tc := range []struct {
		name    string
		args    []string
		answer  []string
		silence []string
	}{
		{
			name:    "repeated",
			args:    []string{"--addr", "10.0.0.2", "--addr", "10.0.0.3"},
			answer:  []string{"10.0.0.2", "10.0.0.3"},
			silence: []string{"10.0.0.4"},
		},
		{
			name:    "prefix",
			args:    []string{"--addr", "10.0.0.0/24"},
			answer:  []string{"10.0.0.2", "10.0.0.77", "10.0.0.254"},
			silence: []string{"10.0.1.5"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNS(t)
			v := startVhost(t, ns, tc.args...)
			// An address outside 10.0.0.0/24 needs a route into the device.
			ns.mustRun(t, "ip", "route", "add", "10.0.1.0/24", "dev", v.dev)
			for _, a := range tc.answer {
				if p := ns.ping(t, "-c", "1", "-W", "2", a); p.received != 1 {
					t.Errorf("vhost %q: ping %s: %d received, want 1\n%s", tc.args, a, p.received, p.stdout)
				}
			}
			for _, a := range tc.silence {
				if p := ns.ping(t, "-c", "1", "-W", "1", a); p.received != 0 {
					t.Errorf("vhost %q: ping %s: %d received, want 0 (not owned)\n%s", tc.args, a, p.received, p.stdout)
				}
			}
		})
	}
}

// TestMTU runs vhost with --mtu 1280 and checks that the device got that
// MTU and that a 3000-byte echo is answered with fragments that fit it.
func TestMTU(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	v := startVhost(t, ns, "--mtu", "1280")
	if mtu, _ := v.up.fields["mtu"].(json.Number); mtu.String() != "1280" {
		t.Errorf("vhost up: mtu = %v, want 1280", v.up.fields["mtu"])
	}
	r := ns.mustRun(t, "ip", "link", "show", "dev", v.dev)
	if !strings.Contains(r.stdout, " mtu 1280 ") {
		t.Errorf("ip link show %s: want mtu 1280:\n%s", v.dev, r.stdout)
	}
	s := openPacketSocket(t, ns, v.dev, false)
	p := ns.ping(t, "-c", "1", "-W", "2", "-s", "3000", vhostAddr)
	if p.received != 1 {
		t.Fatalf("ping -s 3000 with MTU 1280: %d received, want 1\n%s", p.received, p.stdout)
	}
	// The reply's fragments, as vhost wrote them to the device.
	var frags, payload int
	for {
		b := s.recv(t, 300*time.Millisecond)
		if b == nil {
			break
		}
		if len(b) < 20 || net.IP(b[12:16]).String() != vhostAddr {
			continue
		}
		frags++
		payload += len(b) - 20
		if len(b) > 1280 {
			t.Errorf("fragment of %d bytes from vhost, larger than the 1280-byte MTU", len(b))
		}
		if total := int(binary.BigEndian.Uint16(b[2:4])); total != len(b) {
			t.Errorf("fragment total length %d, read %d bytes", total, len(b))
		}
	}
	if frags < 3 || payload != 3008 {
		t.Errorf("reply came in %d fragments carrying %d bytes, want at least 3 carrying 3008 (ICMP header and data)", frags, payload)
	}
	v.stop(t)
}
