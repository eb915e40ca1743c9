// Command vhost is a userspace virtual host on a Linux TUN/TAP interface:
// it answers ping (and ARP on TAP) for the addresses it owns.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/lab"
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
  vhost run --config FILE       run a lab file: devices, hosts, routers
  vhost check FILE              check a lab file and summarise it
  vhost mktun --dev NAME ...    create a persistent device
  vhost rmtun --dev NAME        delete a persistent device
  vhost relay ...               tunnel the device to a remote vhost relay
  vhost genkey > FILE           make a relay key
  vhost version                 print the version

Run 'vhost COMMAND --help' for a command's flags, 'vhost --help' for the
flags of the virtual host. Lab files: see examples/ and the README.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "mktun":
			return report(stderr, mktun(args[1:], stdout, stderr))
		case "rmtun":
			return report(stderr, rmtun(args[1:], stdout, stderr))
		case "run":
			return report(stderr, runCmd(args[1:], stdout, stderr))
		case "check":
			return report(stderr, checkCmd(args[1:], stdout, stderr))
		case "relay":
			return report(stderr, relayCmd(args[1:], stdout, stderr))
		case "genkey":
			return report(stderr, genkey(args[1:], stdout, stderr))
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
	return report(stderr, serve(args, stdout, stderr))
}

// report prints err and maps it to an exit status.
func report(stderr io.Writer, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		printError(stderr, err)
		return exitUsage
	default:
		printError(stderr, err)
		return exitError
	}
}

// printError prints each line of err after "vhost: ".
func printError(stderr io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(stderr, "vhost:", line)
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

// flagSet is a command's flags and its help text.
type flagSet struct {
	*flag.FlagSet
	usage string
	out   io.Writer
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints nothing itself: parse does.
func newFlagSet(name, usage string, out io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{fs, usage, out}
}

// printDefaults lists the flags GNU-style, with two dashes.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n      %s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args and rejects stray arguments. --help prints the usage.
func parse(fs *flagSet, args []string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (flags start with --; see: %s --help)", fs.Arg(0), fs.Name())
	}
	return nil
}

// parseArgs parses args, leaving arguments after the flags in fs.Args().
// --help prints the usage.
func parseArgs(fs *flagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(fs.out, fs.usage)
			printDefaults(fs.out, fs.FlagSet)
			return err
		}
		return usagef("%v (see: %s --help)", err, fs.Name())
	}
	return nil
}

// prefixList is a repeatable --addr flag: an address or a prefix, IPv4 or
// IPv6.
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
		pr, err := lab.ParseAddrOrPrefix(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		*p = append(*p, pr)
	}
	return nil
}

// routerList is a repeatable --router flag.
type routerList []lab.Router

func (r *routerList) String() string {
	s := make([]string, len(*r))
	for i, x := range *r {
		var a []string
		for _, ad := range []netip.Addr{x.Addr4, x.Addr6} {
			if ad.IsValid() {
				a = append(a, ad.String())
			}
		}
		s[i] = strings.Join(a, ",")
	}
	return strings.Join(s, " ")
}

func (r *routerList) Set(v string) error {
	x, err := lab.ParseRouter(v)
	if err != nil {
		return err
	}
	*r = append(*r, x)
	return nil
}

// durationFlag is a delay: 20ms, 1.5s; never negative.
type durationFlag time.Duration

func (d *durationFlag) String() string {
	if *d == 0 {
		return ""
	}
	return time.Duration(*d).String()
}

func (d *durationFlag) Set(v string) error {
	x, err := lab.ParseDuration(v)
	*d = durationFlag(x)
	return err
}

// percentFlag is a percentage, 0 to 100: 10% or 10.
type percentFlag float64

func (p *percentFlag) String() string {
	if *p == 0 {
		return ""
	}
	return lab.FormatPercent(float64(*p))
}

func (p *percentFlag) Set(v string) error {
	x, err := lab.ParsePercent(v)
	*p = percentFlag(x)
	return err
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
