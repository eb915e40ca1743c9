//go:build linux

package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The relay tests' topology: namespace B holds the underlay's bridge with
// 192.0.2.2/24 and runs the relay server on port 55555; A (192.0.2.1/24)
// and, where a test needs a second client, C (192.0.2.3/24) join it by veth
// pairs and run clients. The overlay is 10.0.0.0/24: the kernel side of
// each end's device, or B's virtual host, holds the addresses below.
const (
	underlayA   = "192.0.2.1"
	underlayB   = "192.0.2.2"
	underlayC   = "192.0.2.3"
	relayPort   = "55555"
	relayServer = underlayB + ":" + relayPort
	// relayDev names the relay's device in every namespace.
	relayDev = "vr0"

	overlayA = "10.0.0.1"
	overlayB = "10.0.0.2"
	overlayC = "10.0.0.3"

	// connectTimeout bounds the wait for a tunnel to come up, including a
	// keyed UDP handshake (retransmitted every second).
	connectTimeout = 15 * time.Second
	// resumeTimeout bounds the wait for traffic to flow again after an end
	// restarts: the client's backoff is at most 5s.
	resumeTimeout = 15 * time.Second
)

// relayCounterNames are the relay's fields of the "counters" line.
var relayCounterNames = []string{
	"frames_in", "bytes_in", "frames_out", "bytes_out", "handshakes",
	"keepalives_in", "keepalives_out", "peer_changes",
	"drop_too_large", "drop_bad_frame", "drop_auth_failed", "drop_replay",
	"drop_wrong_peer", "drop_handshake_failed", "drop_no_peer",
	"drop_unreachable", "drop_device_mtu", "drop_wrong_mode", "drop_offload",
}

// relayNet is the underlay: B with its bridge, A joined to it.
type relayNet struct {
	a, b  *netNS
	ports int // veth pairs made so far, to name B's ends
}

// newRelayNet creates namespaces A and B joined by the underlay.
func newRelayNet(t *testing.T) *relayNet {
	t.Helper()
	n := &relayNet{b: newNS(t)}
	n.b.mustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	n.b.mustRun(t, "ip", "addr", "add", underlayB+"/24", "dev", "br0")
	n.b.mustRun(t, "ip", "link", "set", "br0", "up")
	n.a = n.join(t, underlayA)
	return n
}

// join creates a namespace whose u0 holds addr/24 on the underlay (a veth
// pair whose other end is a port of B's bridge).
func (n *relayNet) join(t *testing.T, addr string) *netNS {
	t.Helper()
	ns := newNS(t)
	n.ports++
	port := fmt.Sprintf("u%d", n.ports)
	ns.mustRun(t, "ip", "link", "add", "u0", "type", "veth", "peer", "name", port, "netns", n.b.name)
	n.b.mustRun(t, "ip", "link", "set", port, "master", "br0", "up")
	ns.mustRun(t, "ip", "addr", "add", addr+"/24", "dev", "u0")
	ns.mustRun(t, "ip", "link", "set", "u0", "up")
	return ns
}

// tunnel is what both ends of a relay must agree on.
type tunnel struct {
	transport string // tcp or udp
	mode      string // tun or tap
	key       string // key file; empty: plain
}

func (tn tunnel) String() string {
	k := "plain"
	if tn.key != "" {
		k = "keyed"
	}
	return tn.transport + "/" + tn.mode + "/" + k
}

func (tn tunnel) keyed() bool { return tn.key != "" }

// flags returns the relay flags of tn followed by extra.
func (tn tunnel) flags(extra ...string) []string {
	f := []string{"--transport", tn.transport, "--mode", tn.mode}
	if tn.key != "" {
		f = append(f, "--key", tn.key)
	}
	return append(f, extra...)
}

// relayDevice returns the flags that give an end a device whose kernel side
// holds addr/24.
func relayDevice(addr string) []string {
	return []string{"--dev", relayDev, "--host-addr", addr + "/24"}
}

// startRelay runs vhost relay with args (JSON logs) in the namespace and
// waits for a line with message ready.
func startRelay(t *testing.T, ns *netNS, ready string, args ...string) *vhost {
	t.Helper()
	v := spawnVhost(t, ns, append([]string{vhostBin, "relay", "--log-format", "json"}, args...))
	if _, ok := v.waitLog(t, ready, upTimeout); !ok {
		v.fatalNotReady(t, ready)
	}
	return v
}

// startServer starts a relay server of tn in ns, ready when it listens.
// end is --addr for the virtual host, or relayDevice(...).
func startServer(t *testing.T, ns *netNS, tn tunnel, end ...string) *vhost {
	t.Helper()
	return startRelay(t, ns, "relay listening", tn.flags(append([]string{"--listen", ":" + relayPort}, end...)...)...)
}

// startClient starts a relay client of tn in ns with a device whose kernel
// side holds addr/24, ready when the device is; it does not wait for the
// server.
func startClient(t *testing.T, ns *netNS, tn tunnel, addr string) *vhost {
	t.Helper()
	return startRelay(t, ns, "relay: device ready", tn.flags(append([]string{"--connect", relayServer}, relayDevice(addr)...)...)...)
}

// waitConnected waits until the client has logged its n-th connection to
// the server. Pings must then start from the client's side: the server
// attaches a TCP peer before it reads the peer's first frame, and a UDP
// server learns its peer from the peer's first datagram.
func (v *vhost) waitConnected(t *testing.T, n int) {
	t.Helper()
	v.waitCount(t, "relay: peer connected", n, connectTimeout)
}

// waitCount waits for the n-th line with message msg and fails the test if
// it does not come within timeout.
func (v *vhost) waitCount(t *testing.T, msg string, n int, timeout time.Duration) []logLine {
	t.Helper()
	if !v.waitFor(timeout, func() bool { return len(v.log.findAll(msg)) >= n }) {
		t.Fatalf("%q: %d line(s) %q within %v, want %d\nstderr:\n%s", v.argv, len(v.log.findAll(msg)), msg, timeout, n, v.log)
	}
	return v.log.findAll(msg)
}

// grep returns the lines whose raw text contains s.
func (v *vhost) grep(s string) []logLine {
	var out []logLine
	for _, l := range v.log.snapshot() {
		if strings.Contains(l.raw, s) {
			out = append(out, l)
		}
	}
	return out
}

// alive reports whether the process is still running.
func (v *vhost) alive() bool {
	select {
	case <-v.done:
		return false
	default:
		return true
	}
}

// requireAlive fails the test if the process has exited.
func (v *vhost) requireAlive(t *testing.T, what string) {
	t.Helper()
	if !v.alive() {
		t.Fatalf("%s exited (%v); want it running\nstderr:\n%s", what, v.err, v.log)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (v *vhost) kill(t *testing.T) {
	t.Helper()
	if err := v.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill vhost: %v", err)
	}
	if _, ok := v.wait(stopTimeout); !ok {
		t.Fatalf("vhost (pid %d) did not die within %v of SIGKILL", v.cmd.Process.Pid, stopTimeout)
	}
}

// stopRelay sends SIGTERM, expects exit status 0 and returns the relay
// counters and the extra named ones (the virtual host's).
func (v *vhost) stopRelay(t *testing.T, extra ...string) counters {
	t.Helper()
	v.terminate(t)
	return v.countersNamed(t, append(append([]string(nil), relayCounterNames...), extra...))
}

// checkNoDrops fails the test for every drop_* counter that is not zero,
// except those named.
func checkNoDrops(t *testing.T, who string, c counters, except ...string) {
	t.Helper()
outer:
	for _, name := range relayCounterNames {
		if !strings.HasPrefix(name, "drop_") || c[name] == 0 {
			continue
		}
		for _, e := range except {
			if name == e {
				continue outer
			}
		}
		t.Errorf("%s: counter %s = %d, want 0", who, name, c[name])
	}
}

// genKey writes a new key with vhost genkey into dir and checks that the
// file is private.
func genKey(t *testing.T, dir, name string) string {
	t.Helper()
	file := filepath.Join(dir, name)
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, vhostBin, "genkey")
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("vhost genkey > %s: %v\n%s", file, err, stderr.String())
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("vhost genkey > %s: mode %#o, want 0600", file, perm)
	}
	return file
}

// pingAll pings dst count times from ns and fails the test unless every
// request is answered.
func pingAll(t *testing.T, ns *netNS, dst string, count int, args ...string) {
	t.Helper()
	argv := append([]string{"-c", fmt.Sprint(count), "-i", "0.2", "-W", "2"}, args...)
	p := ns.ping(t, append(argv, dst)...)
	if p.transmitted != count || p.received != count {
		t.Fatalf("ping %q %s: %d transmitted, %d received; want %d, %d\n%s", args, dst, p.transmitted, p.received, count, count, p.stdout)
	}
}

// pingNone pings dst count times from ns and fails the test if any
// request is answered.
func pingNone(t *testing.T, ns *netNS, dst string, count int) {
	t.Helper()
	p := ns.ping(t, "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", dst)
	if p.received != 0 {
		t.Fatalf("ping %s: %d of %d answered; want none\n%s", dst, p.received, p.transmitted, p.stdout)
	}
}

// waitPing pings dst once a second (ping -c 1 -W 1) until one is answered
// or within passes, and reports whether one was.
func waitPing(t *testing.T, ns *netNS, dst string, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		start := time.Now()
		if ns.ping(t, "-c", "1", "-W", "1", dst).received == 1 {
			return true
		}
		// ping fails at once when it cannot send; keep to one a second.
		time.Sleep(time.Second - time.Since(start))
	}
	return false
}

// linkMAC returns the MAC of dev in the namespace (ip -j link show).
func linkMAC(t *testing.T, ns *netNS, dev string) string {
	t.Helper()
	r := ns.mustRun(t, "ip", "-j", "link", "show", "dev", dev)
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &links); err != nil || len(links) != 1 || links[0].Address == "" {
		t.Fatalf("ip -j link show dev %s: want one link with an address (%v): %s", dev, err, r.stdout)
	}
	return strings.ToLower(links[0].Address)
}

// dialIn opens a TCP or UDP socket inside the namespace connected to addr
// (see inNetNS).
func dialIn(t *testing.T, ns *netNS, network, addr string) net.Conn {
	t.Helper()
	c, err := inNetNS(ns, func() (net.Conn, error) {
		return net.DialTimeout(network, addr, cmdTimeout)
	}, func(c net.Conn) { c.Close() })
	if err != nil {
		t.Fatalf("dial %s %s in %s: %v", network, addr, ns.name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
