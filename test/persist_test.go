//go:build linux

package test

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPersistentRootless creates a persistent TUN owned by nobody, lets root
// configure its kernel side, runs vhost as nobody attached to it, pings it,
// and checks the device outlives vhost until rmtun deletes it.
func TestPersistentRootless(t *testing.T) {
	requireE2E(t, "ping", "setpriv", "sysctl")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("e2e: no user nobody: %v", err)
	}
	const dev = "vhp0"
	ns := newNS(t)
	ns.mustRun(t, vhostBin, "mktun", "--dev", dev, "--mode", "tun", "--user", "nobody")
	t.Cleanup(func() {
		if ns.linkExists(t, dev) {
			ns.run(t, cmdTimeout, "ip", "link", "del", dev)
		}
	})
	r := ns.mustRun(t, "ip", "-d", "link", "show", "dev", dev)
	if !strings.Contains(r.stdout, "tun type tun") || !strings.Contains(r.stdout, "pi off") {
		t.Errorf("ip -d link show %s: want a TUN device without packet information:\n%s", dev, r.stdout)
	}
	if !strings.Contains(r.stdout, "persist on") || !strings.Contains(r.stdout, "user "+nobody.Username) && !strings.Contains(r.stdout, "user "+nobody.Uid) {
		t.Errorf("ip -d link show %s: want persist on, user nobody:\n%s", dev, r.stdout)
	}
	ns.mustRun(t, "ip", "addr", "add", hostAddr+"/24", "dev", dev)
	ns.mustRun(t, "ip", "link", "set", dev, "up")

	// /dev/net/tun is root-only here. Inside `ip netns exec` (which runs in
	// a mount namespace of its own) bind-mount a world-usable node of the
	// same device over it, then drop to nobody and exec vhost. The host's
	// /dev is never changed.
	node := filepath.Join(t.TempDir(), "tun")
	if err := unix.Mknod(node, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
		t.Fatalf("mknod %s: %v", node, err)
	}
	if err := os.Chmod(node, 0o666); err != nil {
		t.Fatal(err)
	}
	script := `mount --bind "$1" /dev/net/tun && exec setpriv --reuid="$2" --regid="$3" --clear-groups "$4" --dev "$5" --log-format json`
	v := startVhostArgv(t, ns, []string{"sh", "-c", script, "sh", node, nobody.Uid, nobody.Gid, vhostBin, dev})
	if v.dev != dev || v.mode != "tun" {
		t.Errorf("vhost up: dev %q mode %q, want %s tun", v.dev, v.mode, dev)
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(v.cmd.Process.Pid), "status"))
	if err != nil {
		t.Fatalf("read vhost's status: %v", err)
	}
	// Uid: real, effective, saved, filesystem.
	if uids := strings.Fields(statusField(string(status), "Uid:")); len(uids) != 4 || uids[0] != nobody.Uid || uids[1] != nobody.Uid {
		t.Errorf("vhost runs with uids %q, want real and effective %s (nobody)", uids, nobody.Uid)
	}

	p := ns.ping(t, "-c", "3", "-i", "0.2", "-W", "2", vhostAddr)
	if p.transmitted != 3 || p.received != 3 {
		t.Errorf("ping -c 3 %s (vhost as nobody): %d transmitted, %d received; want 3, 3\n%s", vhostAddr, p.transmitted, p.received, p.stdout)
	}
	c := v.stop(t)
	if c["replied"] != 3 {
		t.Errorf("counter replied = %d, want 3", c["replied"])
	}

	if !ns.linkExists(t, dev) {
		t.Fatalf("persistent device %s is gone after vhost exited", dev)
	}
	r = ns.mustRun(t, "ip", "addr", "show", "dev", dev)
	if !strings.Contains(r.stdout, hostAddr+"/24") {
		t.Errorf("persistent device %s lost its kernel-side address:\n%s", dev, r.stdout)
	}
	ns.mustRun(t, vhostBin, "rmtun", "--dev", dev)
	if ns.linkExists(t, dev) {
		t.Errorf("device %s still exists after vhost rmtun", dev)
	}
}

// statusField returns the value of a /proc/PID/status line.
func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, key) {
			return strings.TrimSpace(strings.TrimPrefix(line, key))
		}
	}
	return ""
}
