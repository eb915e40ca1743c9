package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vhost-dev/vhost/internal/lab"
)

// flagsLab maps a command line onto the lab model, as vhost does.
func flagsLab(t *testing.T, args []string) (*lab.Lab, error) {
	t.Helper()
	var f serveFlags
	fs := newFlagSet("vhost", serveUsage, new(bytes.Buffer))
	f.register(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	l, _, err := f.toLab()
	return l, err
}

// TestFlagsMatchFile checks that a command line and the lab file saying
// the same thing give the same device and the same stack.Config.
func TestFlagsMatchFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		file  string
	}{
		{
			name:  "defaults",
			flags: nil,
			file:  "hosts: [{addrs: [10.0.0.2]}]\n",
		},
		{
			name: "tap_dual_stack",
			flags: []string{"--mode", "tap", "--dev", "lab0", "--host-addr", "10.0.0.1/24", "--host-addr", "fd00::1/64",
				"--addr", "10.0.0.2", "--addr", "fd00::2", "--addr", "fd00::1:0/112", "--mac", "02:00:00:00:00:09",
				"--host-mac", "02:00:00:00:00:01", "--mtu", "1400", "--pcap", "x.pcap"},
			file: `name: lab0
mode: tap
host-addrs: [10.0.0.1/24, fd00::1/64]
host-mac: 02:00:00:00:00:01
mtu: 1400
mac: 02:00:00:00:00:09
pcap: x.pcap
hosts:
  - addrs: [10.0.0.2]
  - addrs: [fd00::2]
  - addrs: [fd00::1:0/112]
`,
		},
		{
			name: "hops_and_impairments",
			flags: []string{"--addr", "10.0.0.2", "--addr", "10.0.1.0/24", "--hops", "3", "--path-mtu", "1400",
				"--delay", "20ms", "--jitter", "5ms", "--loss", "10%", "--dup", "1", "--seed", "7",
				"--icmp-rate", "10", "--icmp-burst", "2"},
			file: `seed: 7
icmp-rate: 10
icmp-burst: 2
x-path: &path {hops: 3, path-mtu: 1400, delay: 20ms, jitter: 5ms, loss: 10, dup: 1%}
hosts:
  - {<<: *path, addrs: [10.0.0.2]}
  - {<<: *path, addrs: [10.0.1.0/24]}
`,
		},
		{
			name:  "explicit_routers",
			flags: []string{"--attach", "--dev", "vh0", "--router", "192.0.2.77", "--router", "203.0.113.5,2001:db8::5", "--router", "2001:db8::9"},
			file: `name: vh0
attach: true
hosts:
  - addrs: [10.0.0.2]
    routers:
      - 192.0.2.77
      - {addr4: 203.0.113.5, addr6: "2001:db8::5"}
      - addr6: 2001:db8::9
`,
		},
		{
			name:  "unlimited_icmp",
			flags: []string{"--icmp-rate", "-1"},
			file:  "icmp-rate: -1\nhosts: [{addrs: [10.0.0.2]}]\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl, err := flagsLab(t, tc.flags)
			if err != nil {
				t.Fatalf("flags %q: %v", tc.flags, err)
			}
			ll, _, err := lab.Parse("lab.yaml", []byte(tc.file))
			if err != nil {
				t.Fatalf("lab file:\n%v", err)
			}
			if got, want := fl.StackConfig(0), ll.StackConfig(0); !reflect.DeepEqual(got, want) {
				t.Errorf("flags %q: stack.Config\n%+v\nlab file:\n%+v", tc.flags, got, want)
			}
			if got, want := deviceConfig(&fl.Devices[0]), deviceConfig(&ll.Devices[0]); !reflect.DeepEqual(got, want) {
				t.Errorf("flags %q: device\n%+v\nlab file:\n%+v", tc.flags, got, want)
			}
			if fl.Devices[0].Pcap != ll.Devices[0].Pcap {
				t.Errorf("flags %q: pcap %q, lab file %q", tc.flags, fl.Devices[0].Pcap, ll.Devices[0].Pcap)
			}
		})
	}
}

// TestUsageErrors checks that bad flags and bad lab files exit with
// status 2 and say what to change, before any device is touched.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("hosts:\n  - addrs: [10.0.0.2]\n    loss: 110%\n    hops: 99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string // lines or parts of stderr
	}{
		{name: "loss", args: []string{"--loss", "110%"}, want: []string{`invalid value "110%" for flag -loss: "110%" is above 100%`}},
		{name: "delay_unit", args: []string{"--delay", "20"}, want: []string{`"20" has no unit: write e.g. 20ms`}},
		{name: "hops", args: []string{"--hops", "65", "--addr", "10.0.0.2", "--addr", "10.0.0.3"}, want: []string{"vhost: --hops: 65 hops: want 0 to 63\n"}},
		{name: "hops_and_router", args: []string{"--hops", "2", "--router", "192.0.2.1"}, want: []string{"--hops: give hops (generated routers) or routers (explicit ones), not both"}},
		{name: "router_is_kernel", args: []string{"--router", "10.0.0.1"}, want: []string{"--router: router 10.0.0.1 is the kernel side's own address"}},
		{name: "router_bad", args: []string{"--router", "10.0.0.0/24"}, want: []string{"-router", `"10.0.0.0/24" is not an address`}},
		{name: "path_mtu", args: []string{"--path-mtu", "10"}, want: []string{"--path-mtu: path MTU 10 out of range: want 68 to 65535"}},
		{name: "ipv6_link_local", args: []string{"--addr", "fe80::1"}, want: []string{"--addr: fe80::1 is a link-local address", "IPv4"}},
		{name: "host_addr_no_length", args: []string{"--host-addr", "fd00::1"}, want: []string{"-host-addr", "has no prefix length"}},
		{name: "addr_is_kernel", args: []string{"--host-addr", "fd00::1/64", "--addr", "fd00::1"}, want: []string{"--addr: fd00::1 is also the kernel side's address (fd00::1/64); pick another"}},
		{name: "two_errors", args: []string{"--mtu", "10", "--addr", "224.0.0.1"}, want: []string{
			"vhost: --mtu: MTU 10 out of range: want 68 to 65535\nvhost: --addr: 224.0.0.1 is not a unicast address a host can have\n"}},
		{name: "mac_on_tun", args: []string{"--mac", "02:00:00:00:00:01"}, want: []string{"--mac: a host MAC needs mode tap"}},
		{name: "icmp_rate", args: []string{"--icmp-rate", "0"}, want: []string{"--icmp-rate: 0 ICMP errors per second: want 1 or more, or -1 for no limit"}},
		{name: "run_without_config", args: []string{"run"}, want: []string{"run needs --config FILE"}},
		{name: "run_missing_file", args: []string{"run", "--config", filepath.Join(dir, "nope.yaml")}, want: []string{"nope.yaml: no such file or directory"}},
		{name: "run_bad_file", args: []string{"run", "--config", bad}, want: []string{
			bad + `:3:11: hosts[0].loss: "110%" is above 100%` + "\n" + bad + ":4:11: hosts[0].hops: 99 hops: want 0 to 63\nvhost: " + bad + ": 2 errors\n"}},
		{name: "check_bad_file", args: []string{"check", bad}, want: []string{bad + ":4:11: hosts[0].hops: 99 hops: want 0 to 63\n"}},
		{name: "check_no_file", args: []string{"check"}, want: []string{"check needs one lab file"}},
		{name: "check_two_files", args: []string{"check", bad, bad}, want: []string{"check needs one lab file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("vhost %q: exit status %d, want %d\nstderr:\n%s", tc.args, code, exitUsage, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("vhost %q: stderr does not say %q:\n%s", tc.args, w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "vhost up") {
				t.Errorf("vhost %q logged \"vhost up\":\n%s", tc.args, stderr.String())
			}
		})
	}
}

// TestCheck checks vhost check on the examples: status 0 and a summary.
func TestCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	file := filepath.Join("..", "..", "examples", "traceroute.yaml")
	if code := run([]string{"check", file}, &stdout, &stderr); code != exitOK {
		t.Fatalf("vhost check %s: exit status %d, want 0\nstderr:\n%s", file, code, stderr.String())
	}
	for _, w := range []string{file + ": ok: 1 device, 1 host, 2 addresses, 3 routers", "device vhtr0: tun", "behind 3 routers"} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("vhost check %s: stdout does not say %q:\n%s", file, w, stdout.String())
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("vhost check %s: stderr %q, want nothing", file, stderr.String())
	}
}

// TestHelp checks that --help lists the new flags and commands.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"--hops N", "--router ADDR", "--path-mtu", "--delay DURATION", "--jitter", "--loss PERCENT", "--dup", "--seed N", "reproducible", `(default "1")`, "--icmp-rate N", "--icmp-burst N", "--host-addr CIDR", "repeatable"}},
		{[]string{"run", "--help"}, []string{"--config FILE", "examples/"}},
		{[]string{"check", "--help"}, []string{"vhost check FILE"}},
		{[]string{"help"}, []string{"vhost run --config FILE", "vhost check FILE"}},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitOK {
			t.Errorf("vhost %q: exit status %d, want 0\n%s", tc.args, code, stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("vhost %q: output does not say %q:\n%s", tc.args, w, stdout.String())
			}
		}
	}
}
