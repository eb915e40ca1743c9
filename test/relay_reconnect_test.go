//go:build linux

package test

import (
	"strings"
	"testing"
	"time"
)

// TestRelayRestart kills one end of a working tunnel with SIGKILL, starts
// it again, and expects traffic to resume by itself: a client reconnects
// with backoff, a server takes the next peer.
//
// A keyed UDP client whose server restarts is not tested: it notices only
// after 3×keepalive (30s) of silence, and the command line cannot shorten
// the keepalive.
func TestRelayRestart(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	key := genKey(t, t.TempDir(), "relay.key")
	for _, tc := range []struct {
		name      string
		transport string
		keyed     bool
		restart   string // "server" or "client"
		// clientLogs and serverLogs are messages the ends must log after
		// the restart; a plain UDP client cannot tell that its server went
		// away.
		clientLogs, serverLogs []string
	}{
		{name: "tcp_server", transport: "tcp", restart: "server",
			clientLogs: []string{"relay: connection lost; reconnecting"}},
		{name: "tcp_keyed_server", transport: "tcp", keyed: true, restart: "server",
			clientLogs: []string{"relay: connection lost; reconnecting"}},
		{name: "udp_server", transport: "udp", restart: "server"},
		{name: "tcp_client", transport: "tcp", restart: "client",
			serverLogs: []string{"relay: peer left"}},
		{name: "udp_keyed_client", transport: "udp", keyed: true, restart: "client",
			serverLogs: []string{"relay: udp peer authenticated from a new address; it replaces the old session"}},
		// The restarted client sends from a new port. The plain UDP server
		// keeps the first peer it heard for good, so this fails: see
		// TestRelayHostileInput/udp_plain_stray_datagram for the same cause.
		{name: "udp_client", transport: "udp", restart: "client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := tunnel{transport: tc.transport, mode: "tun"}
			if tc.keyed {
				tn.key = key
			}
			n := newRelayNet(t)
			b := startServer(t, n.b, tn, relayDevice(overlayB)...)
			a := startClient(t, n.a, tn, overlayA)
			a.waitConnected(t, 1)
			pingAll(t, n.a, overlayB, 3)

			if tc.restart == "server" {
				b.kill(t)
				b = startServer(t, n.b, tn, relayDevice(overlayB)...)
			} else {
				a.kill(t)
				a = startClient(t, n.a, tn, overlayA)
			}
			if !waitPing(t, n.a, overlayB, resumeTimeout) {
				a.requireAlive(t, "client A")
				b.requireAlive(t, "server B")
				cb := b.stopRelay(t)
				t.Fatalf("after the %s restarted, no ping through the tunnel within %v; B's counters: drop_wrong_peer %d, frames_in %d\nA:\n%s\nB:\n%s",
					tc.restart, resumeTimeout, cb["drop_wrong_peer"], cb["frames_in"], a.log, b.log)
			}
			pingAll(t, n.a, overlayB, 3)
			for _, msg := range tc.clientLogs {
				a.waitCount(t, msg, 1, connectTimeout)
			}
			for _, msg := range tc.serverLogs {
				b.waitCount(t, msg, 1, connectTimeout)
			}
			a.requireAlive(t, "client A")
			b.requireAlive(t, "server B")
		})
	}
}

// TestRelaySecondClient connects a second client, from namespace C
// (192.0.2.3, device 10.0.0.3/24), to a TCP server that already serves A.
// The documented outcome: the new client replaces the current one, and
// traffic flows through it.
func TestRelaySecondClient(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	n := newRelayNet(t)
	c := n.join(t, underlayC)
	tn := tunnel{transport: "tcp", mode: "tun"}
	b := startServer(t, n.b, tn, relayDevice(overlayB)...)
	a := startClient(t, n.a, tn, overlayA)
	a.waitConnected(t, 1)
	pingAll(t, n.a, overlayB, 3)

	// The documented outcome: a second client from another host is refused
	// while the first is connected, and the first keeps the tunnel.
	cc := startClient(t, c, tn, overlayC)
	l := b.waitCount(t, "relay: refused a second client while another is connected", 1, connectTimeout)[0]
	if !strings.HasPrefix(l.str("peer"), underlayC+":") || !strings.HasPrefix(l.str("current"), underlayA+":") {
		t.Errorf("B: want peer %s:PORT refused and current %s:PORT: %s", underlayC, underlayA, l.raw)
	}
	pingAll(t, n.a, overlayB, 5, "-i", "0.2")
	if r := b.log.findAll("relay: a new peer replaces the current one"); len(r) != 0 {
		t.Errorf("B replaced its peer %d times while A was connected, want never:\n%s", len(r), b.log)
	}

	// When the first client leaves, the second one's retries get it in.
	a.kill(t)
	if !waitPing(t, c, overlayB, 15*time.Second) {
		t.Fatalf("ping %s from C never answered within 15s after A left\nB:\n%s\nC:\n%s", overlayB, b.log, cc.log)
	}
	cc.requireAlive(t, "client C")
	b.requireAlive(t, "server B")
}
