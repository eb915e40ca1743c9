//go:build linux

package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRelayWrongKey runs the client with a different key from the
// server's: nothing passes, the server names the rejected peer, both keep
// running, and a client with the right key then connects to the same
// server process.
func TestRelayWrongKey(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	dir := t.TempDir()
	right := genKey(t, dir, "right.key")
	wrong := genKey(t, dir, "wrong.key")
	for _, tc := range []struct {
		name      string
		transport string
		// rejected is the message of the server's warning about the peer.
		rejected string
	}{
		{name: "tcp", transport: "tcp", rejected: "relay: peer rejected"},
		// A UDP server has no connection to reject; it warns about the
		// handshake message (at most once a second).
		{name: "udp", transport: "udp", rejected: "relay: udp handshake does not authenticate: wrong key, or not a keyed vhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := tunnel{transport: tc.transport, mode: "tun", key: right}
			bad := good
			bad.key = wrong
			n := newRelayNet(t)
			b := startServer(t, n.b, good, relayDevice(overlayB)...)
			a := startClient(t, n.a, bad, overlayA)

			rej := b.waitCount(t, tc.rejected, 1, connectTimeout)[0]
			pingNone(t, n.a, overlayB, 3)
			// The client's attempt fails at once on TCP (the server hangs
			// up) and after the 5s handshake timeout on UDP.
			a.waitCount(t, "relay: connect failed", 1, connectTimeout)
			if rej.str("level") != "warn" || !strings.HasPrefix(rej.str("peer"), underlayA+":") {
				t.Errorf("B: %q line: want level warn and peer %s:PORT: %s", tc.rejected, underlayA, rej.raw)
			}
			if !strings.Contains(rej.raw, "wrong key") {
				t.Errorf("B: %q line does not say \"wrong key\": %s", tc.rejected, rej.raw)
			}
			if _, ok := a.log.find("relay: peer connected"); ok {
				t.Errorf("A connected with the wrong key:\n%s", a.log)
			}
			a.requireAlive(t, "client A after failed handshakes")
			b.requireAlive(t, "server B after failed handshakes")
			a.terminate(t)

			a = startClient(t, n.a, good, overlayA)
			a.waitConnected(t, 1)
			pingAll(t, n.a, overlayB, 3)
			a.stopRelay(t)
			cb := b.stopRelay(t)
			if cb["drop_handshake_failed"] == 0 || cb["handshakes"] == 0 {
				t.Errorf("B: counters drop_handshake_failed = %d, handshakes = %d; want both > 0", cb["drop_handshake_failed"], cb["handshakes"])
			}
		})
	}
}

// TestRelayKeyFile checks that a key file others may read, or a missing
// one, is refused as a usage error (status 2) before any device is made.
func TestRelayKeyFile(t *testing.T) {
	requireE2E(t, "sysctl")
	ns := newNS(t)
	dir := t.TempDir()
	key := genKey(t, dir, "relay.key")
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		perm os.FileMode // 0: no file
		side []string
		want []string // substrings of stderr
	}{
		{name: "mode_0644_server", perm: 0o644, side: []string{"--listen", ":" + relayPort}, want: []string{"chmod 600", "0644"}},
		{name: "mode_0644_client", perm: 0o644, side: []string{"--connect", relayServer}, want: []string{"chmod 600", "0644"}},
		{name: "mode_0640", perm: 0o640, side: []string{"--listen", ":" + relayPort}, want: []string{"chmod 600", "0640"}},
		{name: "missing", side: []string{"--listen", ":" + relayPort}, want: []string{"does not exist", "vhost genkey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, tc.name+".key")
			if tc.perm != 0 {
				if err := os.WriteFile(file, b, tc.perm); err != nil {
					t.Fatal(err)
				}
				// WriteFile's mode passes through the umask.
				if err := os.Chmod(file, tc.perm); err != nil {
					t.Fatal(err)
				}
			}
			argv := append([]string{vhostBin, "relay", "--key", file}, tc.side...)
			argv = append(argv, relayDevice(overlayA)...)
			r := ns.run(t, cmdTimeout, argv...)
			if r.code != 2 {
				t.Errorf("vhost relay --key (%s): exit status %d, want 2\nstderr:\n%s", tc.name, r.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("vhost relay --key (%s): stderr does not mention %q:\n%s", tc.name, w, r.stderr)
				}
			}
			if links := ns.links(t); !slices.Equal(links, []string{"lo"}) {
				t.Errorf("devices after a refused key: %q, want only lo", links)
			}
		})
	}
}

// TestRelayModeMismatch runs a keyed TUN client against a keyed TAP
// server: the handshake tells them apart, nothing passes, and both ends
// say what to change.
func TestRelayModeMismatch(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	key := genKey(t, t.TempDir(), "relay.key")
	const advice = "use the same --mode on both ends"
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			n := newRelayNet(t)
			b := startServer(t, n.b, tunnel{transport: transport, mode: "tap", key: key}, relayDevice(overlayB)...)
			a := startClient(t, n.a, tunnel{transport: transport, mode: "tun", key: key}, overlayA)
			// The server answers even a mismatched handshake, so the client
			// fails at once.
			l := a.waitCount(t, "relay: connect failed", 1, connectTimeout)[0]
			if !strings.Contains(l.raw, advice) {
				t.Errorf("A: \"relay: connect failed\" does not say %q: %s", advice, l.raw)
			}
			if !b.waitFor(connectTimeout, func() bool { return len(b.grep(advice)) > 0 }) {
				t.Errorf("B: no line saying %q:\n%s", advice, b.log)
			}
			pingNone(t, n.a, overlayB, 3)
			a.requireAlive(t, "client A")
			b.requireAlive(t, "server B")
			if _, ok := a.log.find("relay: peer connected"); ok {
				t.Errorf("A connected in the wrong mode:\n%s", a.log)
			}
		})
	}
}
