//go:build linux

package test

import (
	"bytes"
	"context"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMUnderFlood stops vhost while ping floods it: it must exit 0
// within a second, print its counters, and take its transient device with
// it.
func TestSIGTERMUnderFlood(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	ns := newNS(t)
	v := startVhost(t, ns)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	flood := ns.command(ctx, "ping", "-n", "-q", "-f", "-c", "100000", vhostAddr)
	flood.Stdout, flood.Stderr = &out, &out
	if err := flood.Start(); err != nil {
		t.Fatalf("start ping -f: %v", err)
	}
	floodDone := make(chan struct{})
	go func() {
		_ = flood.Wait()
		close(floodDone)
	}()
	t.Cleanup(func() {
		_ = flood.Process.Kill()
		<-floodDone
	})

	time.Sleep(time.Second)
	select {
	case <-floodDone:
		t.Fatalf("ping -f ended early:\n%s", out.String())
	default:
	}
	start := time.Now()
	v.signal(t, syscall.SIGTERM)
	code, exited := v.wait(time.Second)
	if !exited {
		t.Errorf("vhost did not exit within 1s of SIGTERM during a ping flood")
		if code, exited = v.wait(stopTimeout); !exited {
			t.Fatalf("vhost did not exit within %v of SIGTERM during a ping flood\nstderr:\n%s", stopTimeout, v.log)
		}
	}
	t.Logf("vhost exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Errorf("vhost exit status = %d, want 0\nstderr:\n%s", code, v.log)
	}
	c := v.counters(t)
	if c["replied"] == 0 {
		t.Errorf("counter replied = 0: the flood never reached vhost\nping:\n%s", out.String())
	}
	if c["rx_packets"] < c["replied"] {
		t.Errorf("counter rx_packets = %d < replied = %d", c["rx_packets"], c["replied"])
	}
	t.Logf("counters under flood: rx_packets=%d replied=%d tx_packets=%d", c["rx_packets"], c["replied"], c["tx_packets"])

	// Checked from the root namespace with ip -n, as a user would.
	ctx2, cancel2 := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel2()
	if outLink, err := exec.CommandContext(ctx2, "ip", "-n", ns.name, "link", "show", "dev", v.dev).CombinedOutput(); err == nil {
		t.Errorf("transient device %s still exists after vhost exited:\n%s", v.dev, outLink)
	}
}
