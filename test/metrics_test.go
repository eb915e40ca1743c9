//go:build linux

package test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetrics runs vhost with --metrics and --summary: after three pings
// the Prometheus endpoint (fetched from inside the namespace) reports
// vhost_replied_total 3 (and 3 for the host 10.0.0.2), and the periodic summary line says replied=3.
func TestMetrics(t *testing.T) {
	requireE2E(t, "ping")
	ns := newNS(t)
	ns.mustRun(t, "ip", "link", "set", "lo", "up")
	const addr = "127.0.0.1:9101"
	v := startVhost(t, ns, "--metrics", addr, "--summary", "200ms")
	pingAll(t, ns, vhostAddr, 3)

	c := dialIn(t, ns, "tcp", addr)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET http://%s/metrics: %v", addr, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("GET /metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"# TYPE vhost_replied_total counter\n",
		"\nvhost_replied_total 3\n",
		"\nvhost_bad_ip_checksum_total 0\n",
		"\nvhost_rx_packets_total ",
		// Per host: the three requests and the three replies.
		fmt.Sprintf("\nvhost_host_rx_packets_total{dev=%q,host=\"10.0.0.2\"} 3\n", v.dev),
		fmt.Sprintf("\nvhost_host_replies_total{dev=%q,host=\"10.0.0.2\"} 3\n", v.dev),
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// The summary line is the whole message, counters in the stack's order.
	summary := func() bool {
		for _, l := range v.log.snapshot() {
			if strings.HasPrefix(l.str("message"), "replied=3 ") {
				return true
			}
		}
		return false
	}
	if !v.waitFor(5*time.Second, summary) {
		t.Errorf("no summary line starting replied=3 within 5s:\n%s", v.log)
	}
	v.stop(t)
}
