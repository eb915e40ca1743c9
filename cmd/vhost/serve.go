package main

import (
	"context"
	"flag"
	"io"
	"net/netip"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vhost-dev/vhost/internal/lab"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

const serveUsage = `Usage: vhost [flags]

Runs a virtual host on a TUN or TAP device. With no flags it creates a
transient TUN (named by the kernel, vhost0 if free), gives the kernel side
10.0.0.1/24, answers ping for 10.0.0.2, and removes the device on exit.
The flags describe a lab of one device; 'vhost run --config FILE' runs a
lab file, which can hold several devices and hosts that differ.

Examples:
  sudo vhost                                   then: ping 10.0.0.2
  sudo vhost --mode tap --addr 10.0.0.0/24     ARP and ping for 10.0.0.2-254
  sudo vhost --host-addr 10.0.0.1/24 --host-addr fd00::1/64 --addr 10.0.0.2 --addr fd00::2
                                               then: ping fd00::2
  sudo vhost --hops 3 --delay 20ms --loss 10%  then: traceroute -n 10.0.0.2
  sudo vhost --router 192.0.2.1 --router 198.51.100.1 --path-mtu 1400
                                               then: tracepath -n 10.0.0.2
  vhost --dev vh0                              attach to a persistent device
                                               (see vhost mktun); no root needed
  sudo vhost --log-level debug                 one line per packet

Flags:
`

// defaultHostAddr is the kernel side's address on a device vhost creates.
var defaultHostAddr = lab.DefaultHostSide

// hostFlags describe the virtual host: its addresses and MAC.
type hostFlags struct {
	addrs prefixList
	mac   string
}

func (f *hostFlags) register(fs *flag.FlagSet, addrUsage string) {
	fs.Var(&f.addrs, "addr", addrUsage)
	fs.StringVar(&f.mac, "mac", "", "the virtual host's `MAC` on TAP (default 02:00 and the IPv4 address's four bytes; 06:... for IPv6)")
}

// stackConfig validates f for a host on a device of mode with the given
// kernel side (for vhost relay, which has no lab).
func (f *hostFlags) stackConfig(mode tundev.Mode, hostAddr netip.Prefix) (stack.Config, error) {
	cfg := stack.Config{Ethernet: mode == tundev.TAP, Addrs: []netip.Prefix(f.addrs)}
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []netip.Prefix{lab.DefaultHostAddr}
	}
	if hostAddr.IsValid() {
		cfg.HostSide = []netip.Prefix{hostAddr}
	}
	if f.mac != "" {
		if mode != tundev.TAP {
			return cfg, usagef("--mac needs --mode tap (a TUN device has no MAC)")
		}
		mac, err := parseMAC(f.mac)
		if err != nil {
			return cfg, usagef("--mac: %v", err)
		}
		cfg.MAC = mac
	}
	return cfg, nil
}

// pathFlags describe what stands between the kernel and every host.
type pathFlags struct {
	hops      int
	routers   routerList
	pathMTU   int
	delay     durationFlag
	jitter    durationFlag
	loss, dup percentFlag
}

func (f *pathFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.hops, "hops", 0, "put `N` generated routers (198.18.0.1, 2001:db8:ffff::1, ...) in front of every host: traceroute lists them")
	fs.Var(&f.routers, "router", "put a router with this `ADDR` (IPv4, IPv6, or both: 192.0.2.1,2001:db8::1) in front of every host; repeatable, nearest to the kernel first; instead of --hops")
	fs.IntVar(&f.pathMTU, "path-mtu", 0, "the `MTU` of the last link into the hosts: larger packets get \"fragmentation needed\" (IPv4 with DF) or \"packet too big\" (IPv6) (default: none)")
	fs.Var(&f.delay, "delay", "delay every reply by `DURATION` (e.g. 20ms)")
	fs.Var(&f.jitter, "jitter", "add a random -`DURATION` to +DURATION to every --delay (e.g. 5ms)")
	fs.Var(&f.loss, "loss", "lose `PERCENT` of the hosts' packets (e.g. 10% or 10)")
	fs.Var(&f.dup, "dup", "duplicate `PERCENT` of the hosts' packets (e.g. 1%)")
}

// host is a lab host for one --addr.
func (f *pathFlags) host(addr netip.Prefix) lab.Host {
	return lab.Host{
		Addrs:   []netip.Prefix{addr},
		Hops:    f.hops,
		Routers: slices.Clone([]lab.Router(f.routers)),
		PathMTU: f.pathMTU,
		Impair: lab.Impairment{
			Delay: time.Duration(f.delay), Jitter: time.Duration(f.jitter),
			Loss: float64(f.loss), Dup: float64(f.dup),
		},
	}
}

// labFlags are the lab-wide settings.
type labFlags struct {
	seed                uint64
	icmpRate, icmpBurst int
}

func (f *labFlags) register(fs *flag.FlagSet) {
	fs.Uint64Var(&f.seed, "seed", lab.DefaultSeed, "seed `N` for the losses, duplicates and jitter: a fixed default, so that runs are reproducible; change it for other random draws")
	fs.IntVar(&f.icmpRate, "icmp-rate", lab.DefaultICMPRate, "send at most `N` ICMP errors (time exceeded, unreachable, too big) a second, like net.ipv4.icmp_msgs_per_sec; -1: no limit")
	fs.IntVar(&f.icmpBurst, "icmp-burst", lab.DefaultICMPBurst, "allow bursts of `N` ICMP errors, like net.ipv4.icmp_msgs_burst")
}

// serveFlags are vhost's flags: a lab of one device.
type serveFlags struct {
	dev     devFlags
	host    hostFlags
	path    pathFlags
	lab     labFlags
	log     logFlags
	pcap    string
	metrics metricsFlags
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	f.dev.register(fs, "default 10.0.0.1/24 when vhost creates the device, untouched on an existing one")
	f.host.register(fs, "`address` or prefix the virtual host answers for, IPv4 or IPv6 (10.0.0.2, 10.0.1.0/24, fd00::2, fd00::1:0/112); repeatable (default 10.0.0.2)")
	f.path.register(fs)
	f.lab.register(fs)
	f.log.register(fs)
	fs.StringVar(&f.pcap, "pcap", "", "write every packet in and out to `FILE` (pcap: Ethernet on TAP, raw IP on TUN), flushed on exit")
	f.metrics.register(fs)
}

// toLab maps the flags onto the lab model: one device, one host per
// --addr, each with the path flags. It returns the lab's warnings.
func (f *serveFlags) toLab() (*lab.Lab, []*lab.FieldError, error) {
	d, err := f.dev.labDevice()
	if err != nil {
		return nil, nil, err
	}
	if f.host.mac != "" {
		if d.MAC, err = lab.ParseMAC(f.host.mac); err != nil {
			return nil, nil, usagef("--mac: %v", err)
		}
	}
	d.Pcap = f.pcap
	addrs := f.host.addrs
	if len(addrs) == 0 {
		addrs = prefixList{lab.DefaultHostAddr}
	}
	for _, a := range addrs {
		d.Hosts = append(d.Hosts, f.path.host(a))
	}
	l := &lab.Lab{
		Seed:     f.lab.seed,
		ICMPRate: lab.ICMPRate{PerSecond: f.lab.icmpRate, Burst: f.lab.icmpBurst},
		Devices:  []lab.Device{d},
	}
	// An existing device keeps its addresses: check against those, not
	// against the default a new device would get.
	l.Devices[0].Exists = d.Name != "" && !strings.Contains(d.Name, "%") && tundev.Exists(d.Name)
	warns, err := lab.Validate(l)
	if err != nil {
		return nil, nil, flagErrors(err)
	}
	return l, warns, nil
}

// labFlagNames maps lab fields to the flags that set them.
var labFlagNames = map[string]string{
	"name": "--dev", "attach": "--attach", "mode": "--mode", "host-addrs": "--host-addr",
	"host-mac": "--host-mac", "mtu": "--mtu", "mac": "--mac", "pcap": "--pcap",
	"hosts": "--addr", "addrs": "--addr", "hops": "--hops", "routers": "--router",
	"path-mtu": "--path-mtu", "delay": "--delay", "jitter": "--jitter", "loss": "--loss", "dup": "--dup",
	"seed": "--seed", "icmp-rate": "--icmp-rate", "icmp-burst": "--icmp-burst",
}

// flagMessage words a lab error or warning about a lab made from flags
// with the flag's name instead of the field's path.
func flagMessage(e *lab.FieldError) string {
	field := e.Field()
	for _, f := range []string{"routers", "addrs"} {
		if e.Within(f) {
			field = f
		}
	}
	if name, ok := labFlagNames[field]; ok {
		return name + ": " + e.Msg
	}
	return e.Msg
}

// flagErrors rewords lab.Validate's errors for the command line: each once
// (a flag that applies to every --addr is wrong for all of them), with the
// flag's name.
func flagErrors(err error) error {
	es, ok := err.(lab.Errors)
	if !ok {
		return usageError{err}
	}
	var lines []string
	for _, e := range es {
		if m := flagMessage(e); !slices.Contains(lines, m) {
			lines = append(lines, m)
		}
	}
	return usagef("%s", strings.Join(lines, "\n"))
}

func serve(args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := newFlagSet("vhost", serveUsage, stdout)
	f.register(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, f.log.level, f.log.format)
	if err != nil {
		return err
	}
	l, warns, err := f.toLab()
	if err != nil {
		return err
	}
	for _, w := range dedupe(warns) {
		log.Warn().Msg(flagMessage(w))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	return runLab(ctx, l, runOptions{log: log, metrics: f.metrics})
}

// dedupe drops warnings whose message an earlier one has.
func dedupe(ws []*lab.FieldError) []*lab.FieldError {
	var out []*lab.FieldError
	seen := map[string]bool{}
	for _, w := range ws {
		if m := flagMessage(w); !seen[m] {
			seen[m] = true
			out = append(out, w)
		}
	}
	return out
}
