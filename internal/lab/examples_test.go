package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples parses and checks every lab in examples/, so that none of
// them rots: no errors, no warnings, a stack for every device, and a
// comment at the top with the command that runs it.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("examples/: %d lab files, want at least 3 (hello, arp-ndp, traceroute)", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			l, warns, err := Load(file)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", file, err)
			}
			for _, w := range warns {
				t.Errorf("Load(%s): %v", file, w)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			run := "vhost run --config examples/" + filepath.Base(file)
			if !strings.HasPrefix(string(data), "#") || !strings.Contains(string(data), run) {
				t.Errorf("%s: want a comment at the top with the command that runs it, %q", file, run)
			}
			var b strings.Builder
			if err := l.WriteSummary(&b); err != nil || b.Len() == 0 {
				t.Errorf("%s: WriteSummary: %v, %q", file, err, b.String())
			}
		})
	}
}

// TestExampleContents pins what the examples' comments promise.
func TestExampleContents(t *testing.T) {
	for _, tc := range []struct {
		file    string
		summary []string
	}{
		{"hello.yaml", []string{
			"1 device, 1 host, 1 address, 0 routers",
			"device vhost%d: tun, kernel side 10.0.0.1/24",
			"  host hello: 10.0.0.2\n",
		}},
		{"arp-ndp.yaml", []string{
			"1 device, 3 hosts, 18 addresses, 0 routers",
			"device vhtap0: tap, kernel side 10.0.0.1/24 fd00::1/64, capture to arp-ndp.pcap",
			"  host beta: 10.0.0.3 fd00::3 (2 addresses), MAC 02:be:7a:00:00:03",
			"  host range: 10.0.0.128/28 (14 addresses)",
		}},
		{"traceroute.yaml", []string{
			"1 device, 1 host, 2 addresses, 3 routers",
			"  host far: 10.0.5.7 fd00:5::7 (2 addresses), delay 15ms",
			"    behind 3 routers: 10.0.1.1 fd00:1::1, 10.0.2.1 fd00:2::1, 10.0.3.1 fd00:3::1",
			"    router 3 (10.0.3.1 fd00:3::1): mtu 1400, delay 20ms jitter 5ms loss 10%",
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			l, _, err := Load(filepath.Join("..", "..", "examples", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			l.WriteSummary(&b)
			for _, w := range tc.summary {
				if !strings.Contains(b.String(), w) {
					t.Errorf("summary of %s does not say %q:\n%s", tc.file, w, b.String())
				}
			}
		})
	}
}
