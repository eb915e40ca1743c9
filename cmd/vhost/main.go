// Command vhost is a userspace virtual host on a Linux TUN/TAP interface:
// it answers ping (and ARP on TAP) for the addresses it owns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/host"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the environment failed: permissions, the kernel, a vanished device
	exitUsage = 2 // the command line is wrong: bad flags, addresses, a missing device
)

// usageError marks errors the user fixes by changing the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const topUsage = `vhost — a userspace virtual host on a TUN/TAP interface.

Usage:
  vhost [flags]                 run the virtual host (default: a new TUN,
                                kernel side 10.0.0.1/24, answering 10.0.0.2)
  vhost mktun --dev NAME ...    create a persistent device
  vhost rmtun --dev NAME        delete a persistent device
  vhost version                 print the version

Run 'vhost COMMAND --help' for a command's flags, 'vhost --help' for the
flags of the virtual host.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "mktun":
			return report(stderr, mktun(args[1:], stderr))
		case "rmtun":
			return report(stderr, rmtun(args[1:], stderr))
		case "version":
			fmt.Fprintln(stdout, "vhost", version())
			return exitOK
		case "help":
			fmt.Fprint(stdout, topUsage)
			return exitOK
		}
		if !strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "vhost: unknown command %q\n\n%s", args[0], topUsage)
			return exitUsage
		}
	}
	return report(stderr, serve(args, stderr))
}

// report prints err and maps it to an exit status.
func report(stderr io.Writer, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "vhost:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "vhost:", err)
		return exitError
	}
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " " + s.Value[:12]
			}
		}
		return v
	}
	return "(unknown)"
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and rejects stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return nil
}

// prefixList is a repeatable --addr flag: an address or a prefix.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	s := make([]string, len(*p))
	for i, x := range *p {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		pr, err := parseAddrOrPrefix(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		*p = append(*p, pr)
	}
	return nil
}

func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not an address or prefix (e.g. 10.0.0.2 or 10.0.0.0/24)", s)
		}
		if !p.Addr().Is4() {
			return p, fmt.Errorf("%q: only IPv4 is supported", s)
		}
		if p != p.Masked() {
			return p, fmt.Errorf("prefix %q has host bits set (did you mean %v?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix (e.g. 10.0.0.2 or 10.0.0.0/24)", s)
	}
	if !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: only IPv4 is supported", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

// newLogger builds the logger: human console output on a terminal, JSON
// otherwise or when asked.
func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lv, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), usagef("--log-level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "":
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "console"
		}
	case "console", "json":
	default:
		return zerolog.Nop(), usagef("--log-format %q: want console or json", format)
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000"}
	}
	return zerolog.New(w).Level(lv).With().Timestamp().Logger(), nil
}

const serveUsage = `Usage: vhost [flags]

Runs a virtual host on a TUN or TAP device. With no flags it creates a
transient TUN (named by the kernel, vhost0 if free), gives the kernel side
10.0.0.1/24, answers ping for 10.0.0.2, and removes the device on exit.

Examples:
  sudo vhost                                   then: ping 10.0.0.2
  sudo vhost --mode tap --addr 10.0.0.0/24     ARP and ping for 10.0.0.2-254
  vhost --dev vh0                              attach to a persistent device
                                               (see vhost mktun); no root needed
  sudo vhost --log-level debug                 one line per packet

Flags:
`

type serveFlags struct {
	dev, mode, hostAddr, mac, hostMAC string
	attach                            bool
	addrs                             prefixList
	mtu                               int
	logLevel, logFormat               string
}

func serve(args []string, stderr io.Writer) error {
	var f serveFlags
	fs := newFlagSet("vhost", serveUsage, stderr)
	fs.StringVar(&f.dev, "dev", "", "device `name`: created if missing (transient), attached to if it exists; default: a new device named by the kernel from vhost%d")
	fs.BoolVar(&f.attach, "attach", false, "only attach to an existing --dev; fail if it is missing")
	fs.StringVar(&f.mode, "mode", "tun", "device `mode`: tun (IP packets) or tap (Ethernet frames, with ARP)")
	fs.Var(&f.addrs, "addr", "`address` or prefix the virtual host answers for; repeatable (default 10.0.0.2)")
	fs.StringVar(&f.hostAddr, "host-addr", "", "kernel-side address `CIDR`; default 10.0.0.1/24 when vhost creates the device, untouched on an existing one")
	fs.StringVar(&f.mac, "mac", "", "the virtual host's `MAC` on TAP (default 02:00 and the first address's four bytes)")
	fs.StringVar(&f.hostMAC, "host-mac", "", "set the kernel side's `MAC` of the TAP device")
	fs.IntVar(&f.mtu, "mtu", 0, "set the device `MTU` (default: leave it, 1500 on a new device)")
	fs.StringVar(&f.logLevel, "log-level", "info", "`level`: debug (one line per packet), info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "", "`format`: console or json (default console on a terminal, json otherwise)")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	return runHost(cfg, log)
}

// hostConfig is the validated command line.
type hostConfig struct {
	dev      string
	attach   bool
	mode     tundev.Mode
	addrs    []netip.Prefix
	hostAddr netip.Prefix // zero: leave the device's addresses alone
	mac      net.HardwareAddr
	hostMAC  net.HardwareAddr
	mtu      int
}

func (f *serveFlags) config() (hostConfig, error) {
	c := hostConfig{dev: f.dev, attach: f.attach, addrs: f.addrs, mtu: f.mtu}
	var err error
	if c.mode, err = tundev.ParseMode(f.mode); err != nil {
		return c, usagef("--mode %q: want tun or tap", f.mode)
	}
	if c.attach && c.dev == "" {
		return c, usagef("--attach needs --dev NAME")
	}
	if len(c.addrs) == 0 {
		c.addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}
	}
	if f.hostAddr != "" {
		if c.hostAddr, err = netip.ParsePrefix(f.hostAddr); err != nil || !c.hostAddr.Addr().Is4() {
			return c, usagef("--host-addr %q: want an IPv4 address with its prefix length, e.g. 10.0.0.1/24", f.hostAddr)
		}
	}
	if f.mac != "" {
		if c.mac, err = parseMAC(f.mac); err != nil {
			return c, usagef("--mac: %v", err)
		}
	}
	if f.hostMAC != "" {
		if c.hostMAC, err = parseMAC(f.hostMAC); err != nil {
			return c, usagef("--host-mac: %v", err)
		}
	}
	if (c.mac != nil || c.hostMAC != nil) && c.mode != tundev.TAP {
		return c, usagef("--mac and --host-mac need --mode tap (a TUN device has no MAC)")
	}
	if c.mtu != 0 && (c.mtu < stack.MinMTU || c.mtu > stack.MaxIPv4Packet) {
		return c, usagef("--mtu %d: want %d to %d", c.mtu, stack.MinMTU, stack.MaxIPv4Packet)
	}
	return c, nil
}

func parseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return nil, fmt.Errorf("%q is not an Ethernet MAC address (e.g. 02:00:00:00:00:02)", s)
	}
	if m[0]&1 != 0 {
		return nil, fmt.Errorf("%q is a multicast address; use a unicast one (first byte even, e.g. 02:...)", s)
	}
	return m, nil
}

func runHost(c hostConfig, log zerolog.Logger) error {
	exists := c.dev != "" && tundev.Exists(c.dev)
	if c.attach && !exists {
		return usagef("device %s does not exist (create it with: vhost mktun --dev %s --mode %v, or drop --attach)", c.dev, c.dev, c.mode)
	}
	name := c.dev
	if name == "" {
		name = "vhost%d"
	}
	created := !exists
	if created && !c.hostAddr.IsValid() {
		c.hostAddr = netip.MustParsePrefix("10.0.0.1/24")
	}
	var exclude []netip.Addr
	if c.hostAddr.IsValid() {
		exclude = append(exclude, c.hostAddr.Addr())
	}
	dev, err := tundev.Open(tundev.Config{Name: name, Mode: c.mode})
	if err != nil {
		if errors.Is(err, tundev.ErrModeMismatch) {
			return usageError{err}
		}
		return err
	}
	// Closing a transient device removes it, so every error below leaves
	// nothing behind; an existing device is not changed before the stack
	// has accepted the addresses.
	defer dev.Close()

	mtu := c.mtu
	if mtu == 0 {
		if mtu, err = tundev.LinkMTU(dev.Name()); err != nil {
			return err
		}
	}
	logger := log
	st, err := stack.New(stack.Config{Ethernet: c.mode == tundev.TAP, Addrs: c.addrs, Exclude: exclude, MAC: c.mac, MTU: mtu, Log: &logger})
	if err != nil {
		return usageError{err}
	}
	lc := tundev.LinkConfig{MTU: c.mtu, HWAddr: c.hostMAC, Up: created}
	if c.hostAddr.IsValid() {
		lc.Addrs = []netip.Prefix{c.hostAddr}
		lc.Up = true
	}
	if lc.Up || lc.MTU != 0 || lc.HWAddr != nil {
		if err := tundev.Configure(dev.Name(), lc); err != nil {
			return err
		}
	}

	addrs := make([]string, len(c.addrs))
	for i, a := range c.addrs {
		addrs[i] = a.String()
		if a.IsSingleIP() {
			addrs[i] = a.Addr().String()
		}
	}
	ev := log.Info().Str("dev", dev.Name()).Stringer("mode", c.mode).Strs("addrs", addrs).Int("mtu", mtu)
	if c.mode == tundev.TAP {
		ev = ev.Stringer("mac", st.MAC())
	}
	if c.hostAddr.IsValid() {
		ev = ev.Stringer("host_addr", c.hostAddr)
	}
	ev.Str("try", "ping "+firstHost(c.addrs, exclude).String()).Msg("vhost up")

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	var stats host.Stats
	runErr := host.Run(ctx, dev, st, &stats, log)

	ev = log.Info()
	for _, c := range st.Counters() {
		ev = ev.Uint64(c.Name, c.Value)
	}
	ev.Uint64("rx_packets", stats.RxPackets.Load()).Uint64("tx_errors", stats.TxErrors.Load()).Msg("counters")
	return runErr
}

// firstHost is the first address the host answers for.
func firstHost(addrs []netip.Prefix, exclude []netip.Addr) netip.Addr {
	p := addrs[0]
	if p.IsSingleIP() {
		return p.Addr()
	}
	for a := p.Addr().Next(); p.Contains(a); a = a.Next() {
		excluded := false
		for _, x := range exclude {
			excluded = excluded || x == a
		}
		if !excluded {
			return a
		}
	}
	return p.Addr()
}
