//go:build linux

package tundev

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// enterNetns skips the test unless it can create real devices, then creates a
// network namespace named vhtd-<random>, switches the test goroutine's OS
// thread into it for the rest of the test, and undoes both in t.Cleanup:
// the thread goes back to its namespace, then the namespace is deleted
// (which also removes any device left in it). It returns the namespace name.
//
// Everything the test does on its own goroutine happens in the namespace;
// file descriptors and sockets opened there stay bound to it. Subtests run on
// new goroutines and must call enterNetns themselves. Cleanups registered
// after enterNetns run first, still in the namespace.
func enterNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping real TUN/TAP test: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to make network namespaces)")
	}
	if _, err := os.Stat(tunPath); err != nil {
		t.Skipf("skipping real TUN/TAP test: %v (load the tun module: modprobe tun)", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping real TUN/TAP test: no ip command (install iproute2)")
	}

	var rnd [4]byte
	rand.Read(rnd[:])
	name := "vhtd-" + hex.EncodeToString(rnd[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("skipping real TUN/TAP test: ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})

	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns.Get: %v", err)
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("netns.GetFromName(%s): %v", name, err)
	}
	if err := netns.Set(ns); err != nil {
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("netns.Set(%s): %v", name, err)
	}
	t.Cleanup(func() {
		defer ns.Close()
		defer orig.Close()
		if cur, err := netns.Get(); err != nil || !cur.Equal(ns) {
			// Cleanup is not on the thread we switched: never unlock or
			// touch a thread we cannot vouch for.
			t.Errorf("netns cleanup: not in namespace %s (err %v); leaving the thread locked", name, err)
			return
		} else {
			cur.Close()
		}
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with the test goroutine,
			// so it never runs other code in the wrong namespace.
			t.Errorf("netns.Set(original): %v", err)
			return
		}
		runtime.UnlockOSThread()
	})
	return name
}
