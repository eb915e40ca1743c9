//go:build linux

package test

import (
	"strings"
	"testing"
)

// TestAttachKeepsAddresses: on a device that exists, vhost leaves the
// kernel side's addresses alone, and so does its check of --addr: 10.0.0.1
// is only the default kernel side of a device vhost creates. Here the
// kernel side is 10.0.0.5/24 and vhost answers 10.0.0.1.
func TestAttachKeepsAddresses(t *testing.T) {
	requireE2E(t, "ping")
	ns := newNS(t)
	ns.mustRun(t, "ip", "tuntap", "add", "dev", "vhx0", "mode", "tun")
	ns.mustRun(t, "ip", "addr", "add", "10.0.0.5/24", "dev", "vhx0")
	ns.mustRun(t, "ip", "link", "set", "vhx0", "up")
	v := startVhost(t, ns, "--dev", "vhx0", "--addr", "10.0.0.1")
	pingAll(t, ns, "10.0.0.1", 3)
	v.stop(t)
	// The device and its address are still there.
	if r := ns.mustRun(t, "ip", "-4", "addr", "show", "dev", "vhx0"); !strings.Contains(r.stdout, "inet 10.0.0.5/24") {
		t.Errorf("after vhost: vhx0 lost its address 10.0.0.5/24: %s", r.stdout)
	}
}
