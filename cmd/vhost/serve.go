package main

import (
	"context"
	"flag"
	"io"

	"net/netip"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/host"
	"github.com/vhost-dev/vhost/internal/metrics"
	"github.com/vhost-dev/vhost/internal/pcap"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

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

// defaultHostAddr is the kernel side's address on a device vhost creates.
var defaultHostAddr = netip.MustParsePrefix("10.0.0.1/24")

// hostFlags describe the virtual host: its addresses and MAC.
type hostFlags struct {
	addrs prefixList
	mac   string
}

func (f *hostFlags) register(fs *flag.FlagSet, addrUsage string) {
	fs.Var(&f.addrs, "addr", addrUsage)
	fs.StringVar(&f.mac, "mac", "", "the virtual host's `MAC` on TAP (default 02:00 and the first address's four bytes)")
}

// stackConfig validates f for a host on a device of mode with the given
// kernel side.
func (f *hostFlags) stackConfig(mode tundev.Mode, hostAddr netip.Prefix) (stack.Config, error) {
	cfg := stack.Config{Ethernet: mode == tundev.TAP, Addrs: []netip.Prefix(f.addrs)}
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}
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

func serve(args []string, stdout, stderr io.Writer) error {
	var (
		df      devFlags
		hf      hostFlags
		lf      logFlags
		pcapOut string
		mf      metricsFlags
	)
	fs := newFlagSet("vhost", serveUsage, stdout)
	df.register(fs.FlagSet, "default 10.0.0.1/24 when vhost creates the device, untouched on an existing one")
	hf.register(fs.FlagSet, "`address` or prefix the virtual host answers for; repeatable (default 10.0.0.2)")
	lf.register(fs.FlagSet)
	fs.StringVar(&pcapOut, "pcap", "", "write every packet in and out to `FILE` (pcap: Ethernet on TAP, raw IP on TUN), flushed on exit")
	mf.register(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, lf.level, lf.format)
	if err != nil {
		return err
	}
	dc, err := df.config()
	if err != nil {
		return err
	}
	if _, err := hf.stackConfig(dc.mode, dc.hostAddr); err != nil {
		return err
	}
	dev, err := openDevice(&dc, defaultHostAddr)
	if err != nil {
		return err
	}
	defer dev.Close()
	sc, err := hf.stackConfig(dc.mode, dc.hostAddr)
	if err != nil {
		return err
	}
	sc.MTU, sc.Log = dev.mtu, &log
	st, err := stack.New(sc)
	if err != nil {
		return usageError{err}
	}
	if err := dev.configure(dc); err != nil {
		return err
	}
	logUp(log, dev, dc, sc, st)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	hc := host.Config{Stats: new(host.Stats), Log: log}
	if pcapOut != "" {
		if hc.Capture, err = pcap.Create(pcapOut, dc.mode == tundev.TAP); err != nil {
			return err
		}
	}
	reg := metrics.New("vhost")
	reg.Add("Packets by the virtual host's verdict, and its events.", st.Counters)
	reg.Add("Packets the device loop read, and failed writes.", hc.Stats.Counters)
	if err := mf.start(ctx, reg, log); err != nil {
		return err
	}
	runErr := host.Run(ctx, dev, st, hc)
	logCounters(log, st.Counters(), hc.Stats.Counters())
	if hc.Capture != nil {
		if err := hc.Capture.Close(); err != nil && runErr == nil {
			runErr = err
		}
	}
	return runErr
}

// logUp logs the start-up line.
func logUp(log zerolog.Logger, dev *device, dc devConfig, sc stack.Config, st *stack.Stack) {
	addrs := make([]string, len(sc.Addrs))
	for i, a := range sc.Addrs {
		addrs[i] = a.String()
		if a.IsSingleIP() {
			addrs[i] = a.Addr().String()
		}
	}
	ev := log.Info().Str("dev", dev.Name()).Stringer("mode", dc.mode).Strs("addrs", addrs).Int("mtu", dev.mtu)
	if dc.mode == tundev.TAP {
		ev = ev.Stringer("mac", st.MAC())
	}
	if dc.hostAddr.IsValid() {
		ev = ev.Stringer("host_addr", dc.hostAddr)
	}
	ev.Str("try", "ping "+firstHost(sc.Addrs, sc.HostSide).String()).Msg("vhost up")
}

// firstHost is the first address the host answers for.
func firstHost(addrs, hostSide []netip.Prefix) netip.Addr {
	p := addrs[0]
	if p.IsSingleIP() {
		return p.Addr()
	}
	for a := p.Addr().Next(); p.Contains(a); a = a.Next() {
		excluded := false
		for _, x := range hostSide {
			excluded = excluded || x.Addr() == a
		}
		if !excluded {
			return a
		}
	}
	return p.Addr()
}
