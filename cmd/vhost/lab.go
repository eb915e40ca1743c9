package main

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/host"
	"github.com/vhost-dev/vhost/internal/lab"
	"github.com/vhost-dev/vhost/internal/metrics"
	"github.com/vhost-dev/vhost/internal/pcap"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

// runOptions are what a run needs besides the lab.
type runOptions struct {
	log     zerolog.Logger
	metrics metricsFlags
}

// labDevice is one device of a running lab.
type labDevice struct {
	index   int
	dev     *device
	dc      devConfig
	st      *stack.Stack
	routes  []netip.Prefix // routes vhost added, removed on exit from a device that stays
	stats   host.Stats
	capture *pcap.Writer
	log     zerolog.Logger
}

// runLab runs every device of l, each with its own stack and loop, until
// ctx ends or a device fails. Whatever fails, devices vhost created are
// removed and the routes it added to the others are removed, in reverse
// order (the addresses, MTU and MAC it set on them stay).
// vhost and vhost run both come here.
func runLab(ctx context.Context, l *lab.Lab, o runOptions) (err error) {
	var devs []*labDevice
	defer func() {
		for i := len(devs) - 1; i >= 0; i-- {
			if cerr := devs[i].close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	}()
	for i := range l.Devices {
		ld, err := setUp(l, i, o.log)
		if err != nil {
			return err
		}
		devs = append(devs, ld)
	}
	for _, ld := range devs {
		if err := ld.openCapture(&l.Devices[ld.index]); err != nil {
			return err
		}
	}
	reg := metrics.New("vhost")
	for _, ld := range devs {
		ld.logUp(l)
		reg.Add("Packets by the virtual host's verdict, and its events.", ld.st.Counters)
		reg.Add("Packets the device loop read, and failed writes.", ld.stats.Counters)
		st := ld.st
		dev := metrics.Label{Name: "dev", Value: ld.dev.Name()}
		reg.AddLabeled("host_rx_packets", "Packets for each host's addresses.", "host", func() []metrics.Labeled {
			return hostValues(st, func(c stack.HostCounter) uint64 { return c.Rx })
		}, dev)
		reg.AddLabeled("host_replies", "Replies and ICMP errors each host and its routers sent.", "host", func() []metrics.Labeled {
			return hostValues(st, func(c stack.HostCounter) uint64 { return c.Replies })
		}, dev)
	}
	if err := o.metrics.start(ctx, reg, o.log); err != nil {
		return err
	}
	return runLoops(ctx, devs)
}

// setUp opens device i of l, builds its stack and configures the kernel
// side. On error nothing of it is left.
func setUp(l *lab.Lab, i int, log zerolog.Logger) (*labDevice, error) {
	d := &l.Devices[i]
	ld := &labDevice{index: i, dc: deviceConfig(d)}
	dev, err := openDevice(&ld.dc, defaultHostAddr)
	if err != nil {
		return nil, err
	}
	ld.dev = dev
	ld.log = log.With().Str("dev", dev.Name()).Logger()
	ok := false
	defer func() {
		if !ok {
			ld.close()
		}
	}()
	sc := l.StackConfig(i)
	sc.HostSide = ld.dc.hostAddrs
	sc.MTU, sc.Log = dev.mtu, &ld.log
	if ld.st, err = stack.New(sc); err != nil {
		return nil, usagef("device %s: %v", d.DisplayName(), err)
	}
	if d.MTU == 0 && dev.mtu < lab.MinIPv6MTU && d.HasIPv6() {
		ld.log.Warn().Int("mtu", dev.mtu).Msgf("the device's MTU is below %d, the smallest IPv6 allows: Linux turns IPv6 off on it, so its IPv6 addresses will not work; give it a larger MTU", lab.MinIPv6MTU)
	}
	if err := dev.configure(ld.dc); err != nil {
		return nil, err
	}
	if len(ld.dc.hostAddrs) > 0 {
		// vhost configured the kernel side: it also routes to the hosts
		// and routers outside it.
		ld.routes, err = tundev.AddRoutes(dev.Name(), routable(l.Routes(i, ld.dc.hostAddrs), dev.mtu))
		if err != nil {
			return nil, err
		}
	}
	ok = true
	return ld, nil
}

// routable drops the IPv6 routes when the device's MTU is too small for
// IPv6: Linux has turned IPv6 off on it (setUp warned).
func routable(routes []netip.Prefix, mtu int) []netip.Prefix {
	if mtu >= lab.MinIPv6MTU {
		return routes
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Addr().Is4() {
			out = append(out, r)
		}
	}
	return out
}

// openCapture creates the device's capture file, if the lab asks for one.
func (ld *labDevice) openCapture(d *lab.Device) error {
	if d.Pcap == "" {
		return nil
	}
	var err error
	ld.capture, err = pcap.Create(d.Pcap, ld.dc.mode == tundev.TAP)
	return err
}

// close undoes what setUp did: the routes on a device that stays, then
// the device itself (a transient one is removed), then the capture.
func (ld *labDevice) close() error {
	var errs []error
	if !ld.dev.created && len(ld.routes) > 0 {
		if err := tundev.DeleteRoutes(ld.dev.Name(), ld.routes); err != nil {
			ld.log.Warn().Err(err).Msg("removing routes")
		}
	}
	ld.dev.Close()
	if ld.capture != nil {
		errs = append(errs, ld.capture.Close())
	}
	return errors.Join(errs...)
}

// runLoops runs every device's loop until ctx ends or one of them fails,
// which stops them all.
func runLoops(ctx context.Context, devs []*labDevice) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(devs))
	var wg sync.WaitGroup
	for i, ld := range devs {
		wg.Go(func() {
			hc := host.Config{Stats: &ld.stats, Log: ld.log, Capture: ld.capture}
			if errs[i] = host.Run(ctx, ld.dev, ld.st, hc); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	for _, ld := range devs {
		logCounters(ld.log, ld.st.Counters(), ld.stats.Counters())
	}
	return errors.Join(errs...)
}

// maxLoggedHosts bounds the hosts listed in the start-up line.
const maxLoggedHosts = 32

// logUp logs the device's start-up line: its mode, MTU, kernel side,
// hosts with their addresses (and how many a prefix stands for), routers
// and impairments, and a command to try.
func (ld *labDevice) logUp(l *lab.Lab) {
	d := &l.Devices[ld.index]
	ev := ld.log.Info().Stringer("mode", ld.dc.mode).Int("mtu", ld.dev.mtu)
	if ld.dc.mode == tundev.TAP {
		ev = ev.Stringer("mac", ld.st.MAC())
	}
	if len(ld.dc.hostAddrs) > 0 {
		ev = ev.Strs("host_addrs", prefixStrings(ld.dc.hostAddrs))
	}
	var addrs []string
	count := 0
	hosts := zerolog.Arr()
	for j := range d.Hosts {
		h := &d.Hosts[j]
		addrs = append(addrs, prefixStrings(h.Addrs)...)
		n := 0
		for _, p := range h.Addrs {
			n += lab.CountAddrs(p, ld.dc.hostAddrs)
		}
		count += n
		if j < maxLoggedHosts {
			v4, v6 := l.RouterAddrs(ld.index, j)
			hosts = hosts.Object(hostLog{h, n, v4, v6})
		}
	}
	ev = ev.Strs("addrs", addrs).Int("n_addrs", count).Array("hosts", hosts)
	if len(d.Hosts) > maxLoggedHosts {
		ev = ev.Int("hosts_not_listed", len(d.Hosts)-maxLoggedHosts)
	}
	if ld.capture != nil {
		ev = ev.Str("pcap", d.Pcap)
	}
	ev.Str("try", "ping "+firstHost(d.Hosts[0].Addrs, ld.dc.hostAddrs).String()).Msg("vhost up")
}

// hostLog is a host in the start-up line.
type hostLog struct {
	h      *lab.Host
	n      int
	v4, v6 []netip.Addr
}

func (x hostLog) MarshalZerologObject(e *zerolog.Event) {
	e.Str("name", x.h.DisplayName()).Strs("addrs", prefixStrings(x.h.Addrs))
	if x.n != 1 {
		e.Int("n_addrs", x.n)
	}
	if len(x.v4) > 0 {
		var rs []string
		for k := range x.v4 {
			rs = append(rs, x.v4[k].String()+" "+x.v6[k].String())
		}
		e.Strs("routers", rs)
	}
	if x.h.PathMTU != 0 {
		e.Int("path_mtu", x.h.PathMTU)
	}
	if !x.h.Impair.IsZero() {
		e.Str("impair", x.h.Impair.String())
	}
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

// hostValues returns one of st's per-host counters as a labelled family.
func hostValues(st *stack.Stack, get func(stack.HostCounter) uint64) []metrics.Labeled {
	cs := st.HostCounters()
	out := make([]metrics.Labeled, len(cs))
	for i, c := range cs {
		out[i] = metrics.Labeled{Label: c.Name, Value: get(c)}
	}
	return out
}
