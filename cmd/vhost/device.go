package main

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/lab"
	"github.com/vhost-dev/vhost/internal/metrics"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// devFlags are the flags that choose and configure the device, shared by
// vhost and vhost relay.
type devFlags struct {
	dev, mode, hostMAC string
	hostAddrs          hostSideList
	attach             bool
	mtu                int
}

func (f *devFlags) register(fs *flag.FlagSet, hostAddrDefault string) {
	fs.StringVar(&f.dev, "dev", "", "device `name`: created if missing (transient), attached to if it exists; default: a new device named by the kernel from vhost%d")
	fs.BoolVar(&f.attach, "attach", false, "only attach to an existing --dev; fail if it is missing")
	fs.StringVar(&f.mode, "mode", "tun", "device `mode`: tun (IP packets) or tap (Ethernet frames, with ARP and neighbour discovery)")
	fs.Var(&f.hostAddrs, "host-addr", "kernel-side address `CIDR`, IPv4 or IPv6 (10.0.0.1/24, fd00::1/64); repeatable; "+hostAddrDefault)
	fs.StringVar(&f.hostMAC, "host-mac", "", "set the kernel side's `MAC` of the TAP device")
	fs.IntVar(&f.mtu, "mtu", 0, "set the device `MTU` (default: leave it, 1500 on a new device)")
}

// devConfig is the validated device part of a command line.
type devConfig struct {
	dev       string
	attach    bool
	mode      tundev.Mode
	hostAddrs []netip.Prefix // empty: leave the device's addresses alone
	hostMAC   net.HardwareAddr
	mtu       int
	vnetHdr   bool // open with a virtio-net header (relay --offload)
}

// labDevice maps the device flags onto the lab model, checking each value;
// lab.Validate checks the rest.
func (f *devFlags) labDevice() (lab.Device, error) {
	d := lab.Device{Name: f.dev, Attach: f.attach, HostSide: []netip.Prefix(f.hostAddrs), MTU: f.mtu}
	var err error
	if d.Mode, err = tundev.ParseMode(f.mode); err != nil {
		return d, usagef("--mode %q: want tun or tap", f.mode)
	}
	if f.hostMAC != "" {
		if d.HostMAC, err = lab.ParseMAC(f.hostMAC); err != nil {
			return d, usagef("--host-mac: %v", err)
		}
	}
	return d, nil
}

// config validates the device flags (for vhost relay, which has no lab).
func (f *devFlags) config() (devConfig, error) {
	d, err := f.labDevice()
	if err != nil {
		return devConfig{}, err
	}
	c := deviceConfig(&d)
	if c.attach && c.dev == "" {
		return c, usagef("--attach needs --dev NAME")
	}
	if c.hostMAC != nil && c.mode != tundev.TAP {
		return c, usagef("--host-mac needs --mode tap (a TUN device has no MAC)")
	}
	if c.mtu != 0 && (c.mtu < stack.MinMTU || c.mtu > stack.MaxIPv4Packet) {
		return c, usagef("--mtu %d: want %d to %d", c.mtu, stack.MinMTU, stack.MaxIPv4Packet)
	}
	return c, nil
}

// deviceConfig is how a lab's device is opened and configured.
func deviceConfig(d *lab.Device) devConfig {
	return devConfig{
		dev:       d.Name,
		attach:    d.Attach,
		mode:      d.ModeOrDefault(),
		hostAddrs: slices.Clone(d.HostSide),
		hostMAC:   d.HostMAC,
		mtu:       d.MTU,
	}
}

// hostSideList is a repeatable --host-addr flag.
type hostSideList []netip.Prefix

func (p *hostSideList) String() string { return (*prefixList)(p).String() }

func (p *hostSideList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		pr, err := lab.ParseHostSide(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		*p = append(*p, pr)
	}
	return nil
}

func parseMAC(s string) (net.HardwareAddr, error) { return lab.ParseMAC(s) }

// device is an opened device and what vhost knows of it.
type device struct {
	*tundev.FD
	created bool // vhost created it: closing it removes it
	mtu     int  // the MTU it has, or will have once configured
}

// openDevice creates or attaches to the device c names, without changing its
// configuration yet. When vhost creates it and c has no kernel-side address,
// defaultHostAddr (if valid) is used. Closing a transient device removes it,
// so a caller that fails before configure leaves nothing behind.
func openDevice(c *devConfig, defaultHostAddr netip.Prefix) (*device, error) {
	exists := c.dev != "" && tundev.Exists(c.dev)
	if c.attach && !exists {
		return nil, usagef("device %s does not exist (create it with: vhost mktun --dev %s --mode %v, or drop --attach, attach: true in a lab file)", c.dev, c.dev, c.mode)
	}
	name := c.dev
	if name == "" {
		name = tundev.DefaultName
	}
	if !exists && len(c.hostAddrs) == 0 && defaultHostAddr.IsValid() {
		c.hostAddrs = []netip.Prefix{defaultHostAddr}
	}
	fd, err := tundev.Open(tundev.Config{Name: name, Mode: c.mode, VnetHdr: c.vnetHdr})
	if err != nil {
		if errors.Is(err, tundev.ErrModeMismatch) {
			return nil, usageError{err}
		}
		return nil, err
	}
	d := &device{FD: fd, created: !exists, mtu: c.mtu}
	if d.mtu == 0 {
		if d.mtu, err = tundev.LinkMTU(fd.Name()); err != nil {
			fd.Close()
			return nil, err
		}
	}
	return d, nil
}

// configure applies what c asks of the device: on a device vhost created,
// link up and the kernel-side address; on an existing one, only what was
// given on the command line.
func (d *device) configure(c devConfig) error {
	lc := tundev.LinkConfig{MTU: c.mtu, HWAddr: c.hostMAC, Up: d.created}
	if len(c.hostAddrs) > 0 {
		lc.Addrs = c.hostAddrs
		lc.Up = true
	}
	if !lc.Up && lc.MTU == 0 && lc.HWAddr == nil {
		return nil
	}
	return tundev.Configure(d.Name(), lc)
}

// logFlags choose the log level and format.
type logFlags struct{ level, format string }

func (f *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.level, "log-level", "info", "`level`: debug (one line per packet), info, warn, error")
	fs.StringVar(&f.format, "log-format", "", "`format`: console or json (default console on a terminal, json otherwise)")
}

// logCounters logs one info line "counters" with every counter as a field.
func logCounters(log zerolog.Logger, groups ...[]stack.Counter) {
	ev := log.Info()
	for _, g := range groups {
		for _, c := range g {
			ev = ev.Uint64(c.Name, c.Value)
		}
	}
	ev.Msg("counters")
}

// metricsFlags expose the counters while vhost runs.
type metricsFlags struct {
	addr    string
	summary time.Duration
}

func (f *metricsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "metrics", "", "serve the counters in Prometheus text format at http://`ADDR`/metrics (e.g. 127.0.0.1:9101)")
	fs.DurationVar(&f.summary, "summary", 0, "log a one-line summary of the counters every `DURATION` (e.g. 10s) when they changed")
}

// start serves the registry and runs the periodic summary until ctx ends.
func (f *metricsFlags) start(ctx context.Context, reg *metrics.Registry, log zerolog.Logger) error {
	if f.addr != "" {
		if _, err := metrics.Serve(ctx, f.addr, reg, log); err != nil {
			return err
		}
	}
	if f.summary > 0 {
		go metrics.RunSummary(ctx, f.summary, reg, log)
	}
	return nil
}
