//go:build linux

package test

import (
	"strings"
	"testing"
)

// TestRelayTunnel joins a device in A (10.0.0.1/24) to a device in B
// (10.0.0.2/24) through vhost relay over the underlay, for TUN and TAP,
// TCP and UDP, plain and keyed, and pings across it both ways, with a
// fragmented 4000-byte echo too. On TAP the kernels resolve each other by
// ARP through the tunnel.
func TestRelayTunnel(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	key := genKey(t, t.TempDir(), "relay.key")
	for _, tc := range []struct {
		name      string
		transport string
		mode      string
		keyed     bool
	}{
		{name: "tcp_tun_plain", transport: "tcp", mode: "tun"},
		{name: "tcp_tun_keyed", transport: "tcp", mode: "tun", keyed: true},
		{name: "tcp_tap_plain", transport: "tcp", mode: "tap"},
		{name: "tcp_tap_keyed", transport: "tcp", mode: "tap", keyed: true},
		{name: "udp_tun_plain", transport: "udp", mode: "tun"},
		{name: "udp_tun_keyed", transport: "udp", mode: "tun", keyed: true},
		{name: "udp_tap_plain", transport: "udp", mode: "tap"},
		{name: "udp_tap_keyed", transport: "udp", mode: "tap", keyed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := tunnel{transport: tc.transport, mode: tc.mode}
			if tc.keyed {
				tn.key = key
			}
			n := newRelayNet(t)
			b := startServer(t, n.b, tn, relayDevice(overlayB)...)
			a := startClient(t, n.a, tn, overlayA)
			a.waitConnected(t, 1)

			pingAll(t, n.a, overlayB, 3)
			pingAll(t, n.b, overlayA, 3)
			// 4008 bytes of ICMP: three fragments each way.
			pingAll(t, n.a, overlayB, 2, "-s", "4000")
			if tc.mode == "tap" {
				mac := linkMAC(t, n.b, relayDev)
				r := n.a.mustRun(t, "ip", "neigh", "show", overlayB, "dev", relayDev)
				if !strings.Contains(strings.ToLower(r.stdout), "lladdr "+mac) {
					t.Errorf("in A, ip neigh show %s dev %s = %q; want lladdr %s (B's TAP, resolved through the tunnel)", overlayB, relayDev, strings.TrimSpace(r.stdout), mac)
				}
			}

			ca := a.stopRelay(t)
			cb := b.stopRelay(t)
			for _, end := range []struct {
				name string
				c    counters
			}{{"A (client)", ca}, {"B (server)", cb}} {
				// 3 requests, 3 replies and 2×3 fragments each way.
				for _, name := range []string{"frames_in", "frames_out"} {
					if end.c[name] < 12 {
						t.Errorf("%s: counter %s = %d, want at least 12", end.name, name, end.c[name])
					}
				}
				if got := end.c["handshakes"]; tc.keyed != (got > 0) {
					t.Errorf("%s: counter handshakes = %d on a %s tunnel", end.name, got, tn)
				}
				// Packets a device sends before there is a peer are dropped by design.
				checkNoDrops(t, end.name, end.c, "drop_no_peer")
			}
		})
	}
}

// TestRelayVirtualHost makes B's end the virtual host itself (--addr
// 10.0.0.2, no device) and pings it from A's device through the tunnel.
// The four rows cover each mode with each transport and keying once.
func TestRelayVirtualHost(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	key := genKey(t, t.TempDir(), "relay.key")
	for _, tc := range []struct {
		name      string
		transport string
		mode      string
		keyed     bool
	}{
		{name: "tcp_tun_plain", transport: "tcp", mode: "tun"},
		{name: "udp_tun_keyed", transport: "udp", mode: "tun", keyed: true},
		{name: "udp_tap_plain", transport: "udp", mode: "tap"},
		{name: "tcp_tap_keyed", transport: "tcp", mode: "tap", keyed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := tunnel{transport: tc.transport, mode: tc.mode}
			if tc.keyed {
				tn.key = key
			}
			n := newRelayNet(t)
			b := startServer(t, n.b, tn, "--addr", overlayB)
			if l, ok := b.log.find("relay: this end is the virtual host"); !ok || !strings.Contains(l.raw, `"`+overlayB+`"`) {
				t.Errorf("B: no \"relay: this end is the virtual host\" line naming %s:\n%s", overlayB, b.log)
			}
			a := startClient(t, n.a, tn, overlayA)
			a.waitConnected(t, 1)

			pingAll(t, n.a, overlayB, 3)
			if tc.mode == "tap" {
				r := n.a.mustRun(t, "ip", "neigh", "show", overlayB, "dev", relayDev)
				if !strings.Contains(r.stdout, "lladdr "+vhostMAC) {
					t.Errorf("in A, ip neigh show %s dev %s = %q; want lladdr %s (the virtual host's MAC)", overlayB, relayDev, strings.TrimSpace(r.stdout), vhostMAC)
				}
			}
			a.stopRelay(t)
			cb := b.stopRelay(t, "replied")
			if cb["replied"] < 3 {
				t.Errorf("B: counter replied = %d, want at least 3 (the echo requests from A)", cb["replied"])
			}
			checkNoDrops(t, "B (server)", cb, "drop_no_peer")
		})
	}
}
