//go:build linux

package test

import (
	"strings"
	"testing"
)

// TestDeviceGone deletes the device under a running vhost and under a
// running relay: each ends within a bounded time, with a non-zero status and
// a message that says the device is gone, rather than hanging.
func TestDeviceGone(t *testing.T) {
	requireE2E(t)
	t.Run("vhost", func(t *testing.T) {
		ns := newNS(t)
		v := startVhost(t, ns, "--dev", "vhg0")
		ns.mustRun(t, "ip", "link", "del", "vhg0")
		expectGone(t, v)
	})
	t.Run("relay", func(t *testing.T) {
		n := newRelayNet(t)
		tn := tunnel{transport: "tcp", mode: "tun"}
		startServer(t, n.b, tn, "--addr", overlayB)
		a := startClient(t, n.a, tn, overlayA)
		a.waitConnected(t, 1)
		n.a.mustRun(t, "ip", "link", "del", relayDev)
		expectGone(t, a)
	})
}

// expectGone waits for v to exit with status 1 and a message naming the
// missing device.
func expectGone(t *testing.T, v *vhost) {
	t.Helper()
	code, exited := v.wait(stopTimeout)
	if !exited {
		t.Fatalf("vhost still running %v after its device was deleted\nstderr:\n%s", stopTimeout, v.log)
	}
	if code != 1 || !strings.Contains(v.log.String(), "the device is gone") {
		t.Errorf("vhost exited %d after its device was deleted; want 1 and a message saying the device is gone\nstderr:\n%s", code, v.log)
	}
}
