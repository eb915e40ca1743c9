//go:build linux

package test

import (
	"slices"
	"strings"
	"testing"
)

// TestUsageErrors checks that a wrong command line exits with status 2 and
// a message naming what is wrong, and leaves no device behind.
func TestUsageErrors(t *testing.T) {
	requireE2E(t, "sysctl")
	ns := newNS(t)
	// A persistent TAP to attach to with the wrong mode.
	const tapDev = "vhm0"
	ns.mustRun(t, vhostBin, "mktun", "--dev", tapDev, "--mode", "tap")
	before := ns.links(t)
	if !slices.Contains(before, tapDev) {
		t.Fatalf("vhost mktun --dev %s: device not created; links: %q", tapDev, before)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of stderr, matched case-insensitively
		// code is the exit status; 0 means 2, the status of a usage error.
		code int
	}{
		{name: "bad_mode", args: []string{"--mode", "tan"}, want: []string{"mode", "tan"}},
		{name: "bad_addr", args: []string{"--addr", "10.0.0.300"}, want: []string{"10.0.0.300"}},
		{name: "bad_prefix_length", args: []string{"--addr", "10.0.0.0/33"}, want: []string{"10.0.0.0/33"}},
		{name: "ipv6_addr", args: []string{"--addr", "fe80::1"}, want: []string{"fe80::1", "ipv4"}},
		{name: "prefix_host_bits", args: []string{"--addr", "10.0.0.1/24"}, want: []string{"10.0.0.1/24", "host bits"}},
		{name: "bad_host_addr", args: []string{"--host-addr", "10.0.0.1"}, want: []string{"host-addr"}},
		{name: "bad_mac", args: []string{"--mode", "tap", "--mac", "zz:00:00:00:00:01"}, want: []string{"mac"}},
		{name: "bad_mtu", args: []string{"--mtu", "10"}, want: []string{"mtu"}},
		{name: "bad_log_level", args: []string{"--log-level", "loud"}, want: []string{"log-level"}},
		{name: "unknown_flag", args: []string{"--bogus"}, want: []string{"bogus"}},
		{name: "unknown_command", args: []string{"frobnicate"}, want: []string{"frobnicate"}},
		{name: "stray_argument", args: []string{"--mode", "tun", "extra"}, want: []string{"extra"}},
		{name: "mode_mismatch", args: []string{"--dev", tapDev, "--mode", "tun"}, want: []string{tapDev, "mode"}},
		{name: "attach_missing_device", args: []string{"--dev", "nosuchdev", "--attach"}, want: []string{"nosuchdev"}},
		{name: "rmtun_missing_device", args: []string{"rmtun", "--dev", "nosuchdev"}, want: []string{"nosuchdev", "exist"}},
		{name: "rmtun_without_dev", args: []string{"rmtun"}, want: []string{"dev"}},
		{name: "mktun_bad_mode", args: []string{"mktun", "--dev", "vhx0", "--mode", "tan"}, want: []string{"tan"}},
		{name: "mktun_existing_device", args: []string{"mktun", "--dev", tapDev, "--mode", "tap"}, want: []string{tapDev, "exists"},
			code: 1}, // the system's state, not the command line, is in the way
		{name: "mktun_unknown_user", args: []string{"mktun", "--dev", "vhx0", "--mode", "tun", "--user", "nosuchuser"}, want: []string{"nosuchuser"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ns.run(t, cmdTimeout, append([]string{vhostBin}, tc.args...)...)
			want := tc.code
			if want == 0 {
				want = 2
			}
			if r.code != want {
				t.Errorf("vhost %q: exit status %d, want %d\nstderr:\n%s", tc.args, r.code, want, r.stderr)
			}
			msg := strings.ToLower(r.stderr)
			for _, w := range tc.want {
				if !strings.Contains(msg, strings.ToLower(w)) {
					t.Errorf("vhost %q: stderr does not mention %q:\n%s", tc.args, w, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
				t.Errorf("vhost %q panicked:\n%s", tc.args, r.stderr)
			}
			if strings.Contains(r.stderr, "vhost up") {
				t.Errorf("vhost %q logged \"vhost up\" before failing:\n%s", tc.args, r.stderr)
			}
			if after := ns.links(t); !slices.Equal(after, before) {
				t.Errorf("vhost %q left devices changed: before %q, after %q", tc.args, before, after)
			}
		})
	}

	ns.mustRun(t, vhostBin, "rmtun", "--dev", tapDev)
	if ns.linkExists(t, tapDev) {
		t.Errorf("device %s still exists after vhost rmtun", tapDev)
	}
}

// TestInfoCommands checks version and --help: exit status 0 and text.
func TestInfoCommands(t *testing.T) {
	requireE2E(t, "sysctl")
	ns := newNS(t)
	for _, tc := range []struct {
		name string
		args []string
		want string // in stdout or stderr
	}{
		{name: "version", args: []string{"version"}, want: "vhost"},
		{name: "help", args: []string{"--help"}, want: "-mode"},
		{name: "mktun_help", args: []string{"mktun", "--help"}, want: "-user"},
		{name: "rmtun_help", args: []string{"rmtun", "--help"}, want: "-dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ns.run(t, cmdTimeout, append([]string{vhostBin}, tc.args...)...)
			if r.code != 0 {
				t.Errorf("vhost %q: exit status %d, want 0\n%v", tc.args, r.code, r)
			}
			if !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Errorf("vhost %q: output does not mention %q:\n%v", tc.args, tc.want, r)
			}
		})
	}
	if links := ns.links(t); !slices.Equal(links, []string{"lo"}) {
		t.Errorf("devices after info commands: %q, want only lo", links)
	}
}

// TestLogLevels checks the per-packet debug lines: present with --log-level
// debug, absent at the default level.
func TestLogLevels(t *testing.T) {
	requireE2E(t, "ping", "sysctl")
	for _, tc := range []struct {
		name      string
		args      []string
		perPacket bool
	}{
		{name: "debug", args: []string{"--log-level", "debug"}, perPacket: true},
		{name: "default", args: nil, perPacket: false},
		{name: "info", args: []string{"--log-level", "info"}, perPacket: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNS(t)
			v := startVhost(t, ns, tc.args...)
			p := ns.ping(t, "-c", "3", "-i", "0.2", "-W", "2", vhostAddr)
			if p.received != 3 {
				t.Errorf("ping: %d received, want 3\n%s", p.received, p.stdout)
			}
			v.stop(t)

			lines := v.log.snapshot()
			var rx, tx, debug int
			for _, l := range lines {
				if l.fields == nil {
					t.Errorf("log line is not JSON (stderr is not a terminal, so JSON is the default): %q", l.raw)
					continue
				}
				if l.str("level") == "debug" {
					debug++
				}
				m := l.message()
				if strings.HasPrefix(m, "rx icmp echo "+hostAddr+" > "+vhostAddr+" ") {
					rx++
				}
				if strings.HasPrefix(m, "tx icmp echo-reply "+vhostAddr+" > "+hostAddr+" ") {
					tx++
				}
			}
			if tc.perPacket {
				if rx != 3 {
					t.Errorf("%d \"rx icmp echo %s > %s\" lines, want 3 (one per ping)\n%s", rx, hostAddr, vhostAddr, v.log)
				}
				if !strings.Contains(v.log.String(), "seq=3 len=64") {
					t.Errorf("no debug line for seq=3 len=64:\n%s", v.log)
				}
				if tx == 0 {
					t.Logf("no \"tx icmp echo-reply\" lines (not required)")
				}
			} else if rx != 0 || tx != 0 || debug != 0 {
				t.Errorf("%d rx, %d tx, %d debug lines at level %q; want no per-packet lines\n%s", rx, tx, debug, tc.name, v.log)
			}
		})
	}
}
