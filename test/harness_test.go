//go:build linux

// Package test holds the end-to-end tests: the real vhost binary runs in
// network namespaces the tests create, against real clients (ping, arping,
// tshark) and hand-made packets injected through AF_PACKET sockets.
//
// Every test creates its own namespaces (vhe2e-<random>) and removes them on
// every exit path; nothing is configured in the root namespace. The tests
// need root and the tools ip, ping, arping, tshark, traceroute, mtr,
// tracepath and ndisc6 (test/deps.sh installs them). They skip when those
// are missing, except under CI (CI set), where a skip would hide a broken
// setup and so they fail instead.
//
// The tests do not call t.Parallel: namespaces, tshark and the kernel's
// per-namespace work contend for the same locks and CPUs, and on a small
// machine running them together made them slower than one after another
// and starved the clients' timers (arping skips probes when late).
package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vhost-dev/vhost/internal/host"
	"github.com/vhost-dev/vhost/pkg/stack"
)

const (
	// nsPrefix names every namespace the suite creates, so that TestMain can
	// remove those left by a run that was killed.
	nsPrefix = "vhe2e-"

	// cmdTimeout bounds one short command (ip, sysctl, vhost mktun).
	cmdTimeout = 20 * time.Second
	// upTimeout bounds the wait for vhost's "vhost up" line.
	upTimeout = 15 * time.Second
	// stopTimeout bounds the wait for vhost to exit after SIGTERM in tests
	// that do not measure it.
	stopTimeout = 10 * time.Second

	hostAddr  = "10.0.0.1"
	vhostAddr = "10.0.0.2"
	// vhostMAC is the default MAC of a vhost owning 10.0.0.2 (02:00 and the
	// address's four bytes).
	vhostMAC = "02:00:0a:00:00:02"
	// unowned is an address in the subnet that nothing answers for.
	unowned = "10.0.0.9"
)

// raceEnabled is set by race_test.go when the tests run with -race.
var raceEnabled bool

// vhostBin is the binary under test, built once by TestMain into a 0755
// directory so that an unprivileged user can run it too.
var vhostBin string

// counterNames are the fields of the "counters" line vhost logs at exit:
// the stack's counters (its verdicts, then its events) and the loop's.
// They are taken from the code, so that a counter added there is required
// in the line too.
var counterNames = func() []string {
	s, err := stack.New(stack.Config{Addrs: []netip.Prefix{netip.MustParsePrefix(vhostAddr + "/32")}})
	if err != nil {
		panic(err) // a fixed, valid configuration
	}
	var names []string
	for _, c := range append(s.Counters(), new(host.Stats).Counters()...) {
		names = append(names, c.Name)
	}
	return names
}()

// verdictNames are the counters that classify each packet read: their sum
// is rx_packets.
var verdictNames = func() []string {
	var names []string
	for v := stack.Verdict(0); v.String() != "unknown"; v++ {
		names = append(names, v.String())
	}
	return names
}()

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		// Every test skips (or, under CI, fails) in requireE2E.
		return m.Run()
	}
	removeStaleNamespaces()
	defer removeStaleNamespaces()

	dir, err := os.MkdirTemp("", "vhe2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: make build directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The persistent-device test runs the binary as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: chmod build directory: %v\n", err)
		return 1
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	vhostBin = filepath.Join(dir, "vhost")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"build", "-o", vhostBin}
	if raceEnabled {
		args = append(args, "-race")
		// The race runtime sleeps a second at exit by default, which the
		// shutdown test would take for vhost's own slowness.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	build := exec.CommandContext(ctx, "go", append(args, "./cmd/vhost")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/vhost in %s: %v\n%s", root, err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot returns the directory of the module's go.mod.
func moduleRoot() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		// Not in module mode: the test package sits one level below the root.
		return filepath.Abs("..")
	}
	return filepath.Dir(gomod), nil
}

// removeStaleNamespaces removes vhe2e-* namespaces left by earlier runs that
// were killed before their cleanups ran, with the processes inside them.
func removeStaleNamespaces() {
	if os.Geteuid() != 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		if err := deleteNamespace(ctx, f[0]); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: remove stale namespace %s: %v\n", f[0], err)
		}
	}
}

// deleteNamespace kills the processes still inside the namespace (all of
// them started by this suite) and deletes it.
func deleteNamespace(ctx context.Context, name string) error {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// aptPackage names the Debian package of each tool, for skip messages.
var aptPackage = map[string]string{
	"ip":      "iproute2",
	"ping":    "iputils-ping",
	"arping":  "iputils-arping",
	"tshark":  "tshark",
	"setpriv": "util-linux",
	"sysctl":  "procps",
	// traceroute6 is an alternative provided by both traceroute
	// (traceroute6.db) and ndisc6 (rltraceroute6).
	"traceroute":  "traceroute",
	"traceroute6": "traceroute",
	"mtr":         "mtr-tiny",
	"tracepath":   "iputils-tracepath",
	"ndisc6":      "ndisc6",
}

// requireE2E skips the test unless it runs as root with ip and the given
// tools in PATH. Under CI a missing requirement fails the test instead: CI
// installs the tools and runs as root, and a silent skip there would hide
// the whole suite.
func requireE2E(t *testing.T, tools ...string) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("e2e: needs root to create network namespaces and TUN/TAP devices (run: sudo go test ./test/)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			skip("e2e: %s not found in PATH (apt-get install %s)", tool, aptPackage[tool])
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// netNS is a network namespace made by the test, removed at cleanup.
type netNS struct {
	name string
}

// newNS creates a namespace with lo up and IPv6 disabled, so that the only
// packets on its devices are the ones the test makes (no router
// solicitations or MLD reports that would move vhost's counters). It is
// removed when the test ends, after the processes started later (cleanups
// run last-in first-out).
func newNS(t *testing.T) *netNS {
	t.Helper()
	ns := &netNS{name: nsPrefix + randHex(4)}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.name, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		if err := deleteNamespace(ctx, ns.name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ns.mustRun(t, "ip", "link", "set", "lo", "up")
	ns.mustRun(t, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

// command returns a command that runs argv inside the namespace.
func (ns *netNS) command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name}, argv...)...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// result is what a finished command printed and its exit status.
type result struct {
	argv           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("%q: exit %d\nstdout:\n%s\nstderr:\n%s", r.argv, r.code, r.stdout, r.stderr)
}

// run runs argv in the namespace with a timeout and returns its output and
// exit status. It fails the test only if the command could not run or did
// not finish in time.
func (ns *netNS) run(t *testing.T, timeout time.Duration, argv ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := ns.command(ctx, argv...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{argv: argv, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("%q in %s did not finish within %v\nstdout:\n%s\nstderr:\n%s", argv, ns.name, timeout, r.stdout, r.stderr)
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("%q in %s: %v", argv, ns.name, err)
	}
	return r
}

// mustRun runs argv in the namespace and fails the test unless it exits 0.
func (ns *netNS) mustRun(t *testing.T, argv ...string) result {
	t.Helper()
	r := ns.run(t, cmdTimeout, argv...)
	if r.code != 0 {
		t.Fatalf("in %s: %v", ns.name, r)
	}
	return r
}

// linkExists reports whether the namespace has a device named dev.
func (ns *netNS) linkExists(t *testing.T, dev string) bool {
	t.Helper()
	return ns.run(t, cmdTimeout, "ip", "link", "show", "dev", dev).code == 0
}

// links returns the names of the namespace's devices.
func (ns *netNS) links(t *testing.T) []string {
	t.Helper()
	r := ns.mustRun(t, "ip", "-o", "link", "show")
	var names []string
	for _, line := range strings.Split(r.stdout, "\n") {
		// "1: lo: <LOOPBACK,UP,...> ..."
		f := strings.Fields(line)
		if len(f) >= 2 {
			names = append(names, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return names
}

// logLine is one JSON log line of vhost; raw keeps the text.
type logLine struct {
	raw    string
	fields map[string]any // nil when the line is not JSON
}

func (l logLine) message() string {
	for _, k := range []string{"message", "msg"} {
		if s, ok := l.fields[k].(string); ok {
			return s
		}
	}
	return ""
}

func (l logLine) str(key string) string {
	s, _ := l.fields[key].(string)
	return s
}

// logBuffer collects a process's stderr line by line.
type logBuffer struct {
	mu      sync.Mutex
	partial []byte
	lines   []logLine
	changed chan struct{} // gets a token when a line arrives
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{}, 1)} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.addLocked(string(b.partial[:i]))
		b.partial = b.partial[i+1:]
	}
	return len(p), nil
}

func (b *logBuffer) addLocked(s string) {
	l := logLine{raw: s}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) == nil {
		l.fields = m
	}
	b.lines = append(b.lines, l)
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// snapshot returns the lines so far, with an unterminated last line.
func (b *logBuffer) snapshot() []logLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]logLine(nil), b.lines...)
	if len(b.partial) > 0 {
		out = append(out, logLine{raw: string(b.partial)})
	}
	return out
}

func (b *logBuffer) String() string {
	var s strings.Builder
	for _, l := range b.snapshot() {
		s.WriteString(l.raw)
		s.WriteByte('\n')
	}
	return s.String()
}

// find returns the first line whose message is msg.
func (b *logBuffer) find(msg string) (logLine, bool) {
	for _, l := range b.snapshot() {
		if l.message() == msg {
			return l, true
		}
	}
	return logLine{}, false
}

// findAll returns every line whose message is msg.
func (b *logBuffer) findAll(msg string) []logLine {
	var out []logLine
	for _, l := range b.snapshot() {
		if l.message() == msg {
			out = append(out, l)
		}
	}
	return out
}

// vhost is a running vhost process.
type vhost struct {
	ns     *netNS
	argv   []string // the command line run inside the namespace
	cmd    *exec.Cmd
	log    *logBuffer
	stdout bytes.Buffer
	done   chan struct{} // closed when the process has been waited for
	err    error         // Wait's result, valid after done

	// From the "vhost up" line.
	up    logLine
	dev   string
	mode  string
	mac   string
	addrs []string
}

// startVhost runs vhost with args in the namespace and waits for its
// "vhost up" line. The process is killed at cleanup if still running.
func startVhost(t *testing.T, ns *netNS, args ...string) *vhost {
	t.Helper()
	return startVhostArgv(t, ns, append([]string{vhostBin}, args...))
}

// startVhostArgv is startVhost with the whole command line, for a vhost
// started through a wrapper that execs it (so the process signalled is
// vhost itself).
func startVhostArgv(t *testing.T, ns *netNS, argv []string) *vhost {
	t.Helper()
	v := spawnVhost(t, ns, argv)
	l, ok := v.waitLog(t, "vhost up", upTimeout)
	if !ok {
		v.fatalNotReady(t, "vhost up")
	}
	v.up = l
	v.dev, v.mode, v.mac = l.str("dev"), l.str("mode"), l.str("mac")
	if a, ok := l.fields["addrs"].([]any); ok {
		for _, x := range a {
			if s, ok := x.(string); ok {
				v.addrs = append(v.addrs, s)
			}
		}
	}
	if v.dev == "" {
		t.Fatalf("\"vhost up\" line has no dev field: %s", l.raw)
	}
	t.Logf("vhost up in %s: %s", ns.name, l.raw)
	return v
}

// spawnVhost starts argv in the namespace without waiting for anything,
// collecting its stderr as log lines. The process is killed at cleanup if
// still running.
func spawnVhost(t *testing.T, ns *netNS, argv []string) *vhost {
	t.Helper()
	v := &vhost{ns: ns, argv: argv, log: newLogBuffer(), done: make(chan struct{})}
	v.cmd = exec.Command("ip", append([]string{"netns", "exec", ns.name}, argv...)...)
	v.cmd.Stdout = &v.stdout
	v.cmd.Stderr = v.log
	v.cmd.WaitDelay = 2 * time.Second
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("start %q: %v", argv, err)
	}
	go func() {
		v.err = v.cmd.Wait()
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
			return
		default:
		}
		_ = v.cmd.Process.Kill()
		select {
		case <-v.done:
		case <-time.After(stopTimeout):
			t.Errorf("cleanup: vhost (pid %d) did not die after SIGKILL", v.cmd.Process.Pid)
		}
	})

	return v
}

// fatalNotReady fails the test for a process that did not log msg within
// upTimeout, saying whether it exited.
func (v *vhost) fatalNotReady(t *testing.T, msg string) {
	t.Helper()
	select {
	case <-v.done:
		t.Fatalf("%q exited before %q: %v\nstderr:\n%s", v.argv, msg, v.err, v.log)
	default:
		t.Fatalf("%q: no %q line within %v\nstderr:\n%s", v.argv, msg, upTimeout, v.log)
	}
}

// waitLog waits up to timeout for a line with message msg. It gives up
// early when the process exits without having logged it.
func (v *vhost) waitLog(t *testing.T, msg string, timeout time.Duration) (logLine, bool) {
	t.Helper()
	var l logLine
	ok := v.waitFor(timeout, func() bool {
		var found bool
		l, found = v.log.find(msg)
		return found
	})
	return l, ok
}

// waitFor waits up to timeout for cond, which it checks now and whenever a
// log line arrives. It gives up early when the process exits with cond
// still false.
func (v *vhost) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-v.log.changed:
		case <-v.done:
			return cond()
		case <-deadline.C:
			return false
		}
	}
}

// signal sends sig to the vhost process.
func (v *vhost) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := v.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal vhost: %v", err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// status (-1 when killed by a signal) and whether it exited in time.
func (v *vhost) wait(timeout time.Duration) (code int, exited bool) {
	select {
	case <-v.done:
		return v.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// stop sends SIGTERM, expects exit status 0, and returns the counters vhost
// logged on the way out.
func (v *vhost) stop(t *testing.T) counters {
	t.Helper()
	v.terminate(t)
	return v.counters(t)
}

// terminate sends SIGTERM and expects exit status 0 within stopTimeout.
func (v *vhost) terminate(t *testing.T) {
	t.Helper()
	v.signal(t, syscall.SIGTERM)
	code, ok := v.wait(stopTimeout)
	if !ok {
		t.Fatalf("vhost did not exit within %v of SIGTERM\nstderr:\n%s", stopTimeout, v.log)
	}
	if code != 0 {
		t.Fatalf("vhost exit status after SIGTERM = %d, want 0\nstderr:\n%s", code, v.log)
	}
}

// counters are vhost's counters by name.
type counters map[string]uint64

// counters parses the "counters" line of an exited vhost. Every counter
// must be present as a non-negative integer.
func (v *vhost) counters(t *testing.T) counters {
	t.Helper()
	return v.countersNamed(t, counterNames)
}

// countersNamed parses the named fields of the "counters" line of an
// exited vhost; each must be present as a non-negative integer.
func (v *vhost) countersNamed(t *testing.T, names []string) counters {
	t.Helper()
	l, ok := v.log.find("counters")
	if !ok {
		t.Fatalf("no \"counters\" line in vhost's log:\n%s", v.log)
	}
	c := counters{}
	for _, name := range names {
		x, ok := l.fields[name].(json.Number)
		if !ok {
			t.Errorf("counters line: field %q missing or not a number: %s", name, l.raw)
			continue
		}
		n, err := strconv.ParseUint(x.String(), 10, 64)
		if err != nil {
			t.Errorf("counters line: field %q = %s is not a non-negative integer", name, x)
			continue
		}
		c[name] = n
	}
	if t.Failed() {
		t.FailNow()
	}
	return c
}

// checkCounters fails the test for every counter whose value differs from
// want; counters absent from want must be zero, except those in ignore.
func checkCounters(t *testing.T, got, want counters, ignore ...string) {
	t.Helper()
	skip := map[string]bool{}
	for _, n := range ignore {
		skip[n] = true
	}
	for _, name := range counterNames {
		if skip[name] {
			continue
		}
		if got[name] != want[name] {
			t.Errorf("counter %s = %d, want %d", name, got[name], want[name])
		}
	}
	var sum uint64
	for _, name := range verdictNames {
		sum += got[name]
	}
	if sum != got["rx_packets"] {
		t.Errorf("sum of verdict counters = %d, rx_packets = %d; want equal (every packet read gets one verdict)", sum, got["rx_packets"])
	}
}

// pingResult is ping's summary.
type pingResult struct {
	result
	transmitted, received int
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received`)

// ping runs ping with args in the namespace and parses its summary line.
func (ns *netNS) ping(t *testing.T, args ...string) pingResult {
	t.Helper()
	r := ns.run(t, 2*time.Minute, append([]string{"ping", "-n"}, args...)...)
	m := pingSummary.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("ping: no summary line in output: %v", r)
	}
	p := pingResult{result: r}
	p.transmitted, _ = strconv.Atoi(m[1])
	p.received, _ = strconv.Atoi(m[2])
	return p
}

// capture is a running tshark capture writing a pcapng file.
type capture struct {
	cmd    *exec.Cmd
	file   string
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// startCapture starts tshark on dev inside the namespace and waits until
// dumpcap has opened the device and written the file header (it opens the
// device before it creates the file, so from then on packets are kept).
func (ns *netNS) startCapture(t *testing.T, dev string) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(t.TempDir(), dev+".pcapng"), done: make(chan struct{})}
	c.cmd = exec.Command("ip", "netns", "exec", ns.name, "tshark", "-n", "-q", "-i", dev, "-w", c.file)
	c.cmd.Stderr = &c.stderr
	c.cmd.WaitDelay = 2 * time.Second
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start tshark: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(c.file); err == nil && fi.Size() > 0 {
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("tshark -i %s exited before capturing: %v\n%s", dev, c.err, c.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark -i %s: capture file not created within 30s\n%s", dev, c.stderr.String())
		}
	}
}

// stop ends the capture with SIGINT (so the file is complete) and returns
// the file name.
func (c *capture) stop(t *testing.T) string {
	t.Helper()
	// Give the last replies time to reach the capture buffer.
	time.Sleep(300 * time.Millisecond)
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("signal tshark: %v", err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("tshark did not exit within 30s of SIGINT\n%s", c.stderr.String())
	}
	if c.err != nil {
		t.Fatalf("tshark: %v\n%s", c.err, c.stderr.String())
	}
	t.Logf("tshark: %s", strings.TrimSpace(c.stderr.String()))
	return c.file
}

// tsharkPrefs turn on every checksum check tshark can make: the IPv4 header
// checksum is off by default; ICMP checksums are always verified.
var tsharkPrefs = []string{"-o", "ip.check_checksum:TRUE"}

// badFilter matches packets tshark finds broken: malformed, an expert
// message of severity error (0x00800000), or a bad IP or ICMP checksum.
const badFilter = `_ws.malformed || _ws.expert.severity >= 0x00800000 || ip.checksum.status == 0 || icmp.checksum.status == 0`

// tsharkFields dissects file (no namespace needed: it only reads a file) and
// returns the given fields of the packets matching filter, one row each.
func tsharkFields(t *testing.T, file, filter string, fields ...string) [][]string {
	t.Helper()
	args := append([]string{"-n", "-r", file}, tsharkPrefs...)
	args = append(args, "-Y", filter, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "tshark", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %q: %v\n%s", args, err, stderr.String())
	}
	var rows [][]string
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		if sc.Text() != "" {
			rows = append(rows, strings.Split(sc.Text(), "|"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("tshark output: %v", err)
	}
	return rows
}

// tsharkCount returns how many packets of file match filter.
func tsharkCount(t *testing.T, file, filter string) int {
	t.Helper()
	return len(tsharkFields(t, file, filter, "frame.number"))
}

// dissected is one packet as tshark dissects it; absent numeric fields
// are -1, absent strings empty.
type dissected struct {
	frame               int
	ipSrc, ipDst        string
	ttl, ipLen          int
	icmpType, id, seq   int
	reassembledLen      int
	data                string // hex of the ICMP data after ping's timestamp
	ethSrc              string
	arpOp               int
	arpSrcMAC, arpSrcIP string
}

// dissect runs tshark once over file and returns every packet's fields
// (the first occurrence of each).
func dissect(t *testing.T, file string) []dissected {
	t.Helper()
	rows := tsharkFields(t, file, "frame", "frame.number", "ip.src", "ip.dst", "ip.ttl", "ip.len",
		"icmp.type", "icmp.ident", "icmp.seq", "ip.reassembled.length", "data.data",
		"eth.src", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4")
	num := func(s string) int {
		s = strings.SplitN(s, ",", 2)[0]
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return -1
		}
		return int(n)
	}
	first := func(s string) string { return strings.SplitN(s, ",", 2)[0] }
	var out []dissected
	for _, r := range rows {
		if len(r) != 14 {
			t.Fatalf("tshark fields: %d columns, want 14: %q", len(r), r)
		}
		out = append(out, dissected{
			frame: num(r[0]), ipSrc: first(r[1]), ipDst: first(r[2]), ttl: num(r[3]), ipLen: num(r[4]),
			icmpType: num(r[5]), id: num(r[6]), seq: num(r[7]), reassembledLen: num(r[8]), data: first(r[9]),
			ethSrc: first(r[10]), arpOp: num(r[11]), arpSrcMAC: first(r[12]), arpSrcIP: first(r[13]),
		})
	}
	return out
}

// tsharkText returns tshark's one-line summaries of the packets matching
// filter, for failure messages.
func tsharkText(t *testing.T, file, filter string) string {
	t.Helper()
	args := append([]string{"-n", "-r", file}, tsharkPrefs...)
	args = append(args, "-Y", filter)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "tshark", args...).CombinedOutput()
	return string(out)
}
