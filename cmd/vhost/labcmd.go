package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/vhost-dev/vhost/internal/lab"
)

const runUsage = `Usage: vhost run --config FILE [flags]

Runs a lab file: every device in it, each with its own virtual hosts, side
by side, until SIGINT or SIGTERM. Devices vhost created are removed on
exit; on existing devices the routes vhost added are removed, while the
addresses, MTU and MAC it was asked to set stay. The file is checked
first; 'vhost check FILE' checks it without running anything.

A lab file is YAML; see examples/ and the README's Labs section:

  host-addrs: [10.0.0.1/24]
  hosts:
    - name: hello
      addrs: [10.0.0.2]

Examples:
  sudo vhost run --config examples/hello.yaml        then: ping 10.0.0.2
  sudo vhost run --config examples/traceroute.yaml   then: traceroute -n 10.0.5.7

Flags:
`

func runCmd(args []string, stdout, stderr io.Writer) error {
	var (
		config string
		lf     logFlags
		mf     metricsFlags
	)
	fs := newFlagSet("vhost run", runUsage, stdout)
	fs.StringVar(&config, "config", "", "the lab `FILE` to run (required)")
	lf.register(fs.FlagSet)
	mf.register(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return err
	}
	if config == "" {
		return usagef("run needs --config FILE (a lab file; see examples/hello.yaml)")
	}
	log, err := newLogger(stderr, lf.level, lf.format)
	if err != nil {
		return err
	}
	l, warns, err := loadLab(config, stderr)
	if err != nil {
		return err
	}
	for _, w := range warns {
		log.Warn().Msg(w.Error())
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	return runLab(ctx, l, runOptions{log: log, metrics: mf})
}

const checkUsage = `Usage: vhost check FILE

Checks a lab file without running it (no root needed). A good file is
summarised on standard output (devices, hosts, how many addresses, routers)
and vhost exits 0; otherwise every error is printed with its line, and
vhost exits 2. Warnings are printed either way.

Flags:
`

func checkCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("vhost check", checkUsage, stdout)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("check needs one lab file: vhost check FILE")
	}
	file := fs.Arg(0)
	l, warns, err := loadLab(file, stderr)
	for _, w := range warns {
		fmt.Fprintln(stderr, w)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok: ", file)
	return l.WriteSummary(stdout)
}

// loadLab reads and checks a lab file. Its errors are printed to stderr,
// one a line with the file and line first, as compilers do; the error
// returned only counts them.
func loadLab(file string, stderr io.Writer) (*lab.Lab, []*lab.FieldError, error) {
	l, warns, err := lab.Load(file)
	var es lab.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(stderr, e)
		}
		n := "1 error"
		if len(es) > 1 {
			n = fmt.Sprintf("%d errors", len(es))
		}
		return nil, warns, usagef("%s: %s", file, n)
	}
	if err != nil {
		return nil, nil, usageError{err}
	}
	return l, warns, nil
}
