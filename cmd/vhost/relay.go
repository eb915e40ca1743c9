package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/host"
	"github.com/vhost-dev/vhost/pkg/relay"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

const relayUsage = `Usage: vhost relay (--listen [ADDR]:PORT | --connect HOST:PORT) [flags]

Tunnels the packets (TUN) or frames (TAP) of a device to a remote vhost
relay. The far end may be a device too, or the virtual host itself: with
--addr and no --dev, this end's virtual host answers what the peer sends.

Plain TCP uses simpletun's framing (a 2-byte length, then the frame), so
vhost interoperates with it; plain UDP carries one frame per datagram (as
socat's UDP TUN tunnel does). With --key on both ends the peers authenticate
each other and every frame is encrypted and authenticated (Noise NNpsk0:
Curve25519, ChaCha20-Poly1305, BLAKE2s), and replays are rejected.

A client reconnects with backoff when the server goes away; the server takes
the next client when one leaves. A second TCP client from another host is
refused while one is connected; one from the same host (a restart) replaces
the old connection.

Examples:
  vhost genkey > relay.key                     (mode 0600; copy it to the peer)
  sudo vhost relay --listen :55555 --key relay.key --host-addr 10.0.0.2/24
  sudo vhost relay --connect 192.0.2.2:55555 --key relay.key --host-addr 10.0.0.1/24
  sudo vhost relay --listen :55555 --addr 10.0.0.2     (the far end is the virtual host)

Flags:
`

type relayFlags struct {
	listen, connect, transport, key, peer string
	offload                               bool
}

func relayCmd(args []string, stdout, stderr io.Writer) error {
	var (
		rf relayFlags
		df devFlags
		hf hostFlags
		lf logFlags
	)
	fs := newFlagSet("vhost relay", relayUsage, stdout)
	fs.StringVar(&rf.listen, "listen", "", "listen on `[ADDR]:PORT` (server)")
	fs.StringVar(&rf.connect, "connect", "", "connect to `HOST:PORT` (client); names, IPv4 and [IPv6] work")
	fs.StringVar(&rf.transport, "transport", "tcp", "`transport`: tcp or udp")
	fs.StringVar(&rf.key, "key", "", "key `file` made by vhost genkey, the same on both ends (mode 0600); without it the tunnel is unauthenticated")
	fs.BoolVar(&rf.offload, "offload", false, "carry TCP segmentation-offload super-packets whole (IFF_VNET_HDR + TUNSETOFFLOAD): with --key it is used when the peer offers it too; on a plain tunnel both ends must set it")
	fs.StringVar(&rf.peer, "peer", "", "with --listen and --transport udp: accept datagrams only from `HOST:PORT` (default: the first peer heard, or the authenticated one)")
	df.register(fs.FlagSet, "set on a device vhost creates or attaches to (default: none, link up only on a created device)")
	hf.register(fs.FlagSet, "make this end the virtual host answering for `address` or prefix (repeatable) instead of a device")
	lf.register(fs.FlagSet)
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, lf.level, lf.format)
	if err != nil {
		return err
	}
	if (rf.listen == "") == (rf.connect == "") {
		return usagef("relay needs exactly one of --listen [ADDR]:PORT and --connect HOST:PORT")
	}
	if rf.transport != "tcp" && rf.transport != "udp" {
		return usagef("--transport %q: want tcp or udp", rf.transport)
	}
	if rf.peer != "" && (rf.listen == "" || rf.transport != "udp") {
		return usagef("--peer goes with --listen and --transport udp")
	}
	for _, a := range []string{rf.listen, rf.connect} {
		if a != "" && !strings.Contains(a, ":") {
			return usagef("%q: want [ADDR]:PORT or HOST:PORT, e.g. :55555 or 192.0.2.2:55555", a)
		}
	}
	dc, err := df.config()
	if err != nil {
		return err
	}
	virtual := len(hf.addrs) > 0
	if virtual && (df.dev != "" || df.attach || len(dc.hostAddrs) > 0 || dc.hostMAC != nil || rf.offload) {
		return usagef("--addr makes this end the virtual host, which has no device: drop --dev, --attach, --host-addr, --host-mac and --offload")
	}
	dc.vnetHdr = rf.offload
	scfg := relay.Config{Mode: dc.mode, Log: &log, Stats: new(relay.Stats)}
	if rf.key != "" {
		k, err := relay.LoadKey(rf.key)
		if err != nil {
			return usageError{err}
		}
		scfg.Key = &k
	}
	cfg := relay.RunConfig{
		Endpoint: relay.Endpoint{Transport: rf.transport, Listen: rf.listen, Connect: rf.connect, Peer: rf.peer},
		Log:      log,
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	var (
		dev      tundev.Device
		counters []func() []stack.Counter
		wg       sync.WaitGroup
		hostErr  error
	)
	if virtual {
		// The virtual host runs on one end of an in-memory pipe and the
		// relay on the other: the same loop that serves a device.
		sc, err := hf.stackConfig(dc.mode, netip.Prefix{})
		if err != nil {
			return err
		}
		sc.MTU, sc.Log = dc.mtu, &log
		st, err := stack.New(sc)
		if err != nil {
			return usageError{err}
		}
		a, b := tundev.NewPipe(dc.mode, "vhost")
		dev = b
		cfg.DeviceMTU = st.MTU()
		var stats host.Stats
		hctx, hcancel := context.WithCancel(ctx)
		defer hcancel()
		wg.Go(func() {
			if err := host.Run(hctx, a, st, host.Config{Stats: &stats, Log: log}); err != nil {
				hostErr = err
			}
		})
		counters = append(counters, st.Counters, stats.Counters)
		log.Info().Strs("addrs", prefixStrings(sc.Addrs)).Stringer("mode", dc.mode).Msg("relay: this end is the virtual host")
	} else {
		d, err := openDevice(&dc, netip.Prefix{})
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.configure(dc); err != nil {
			return err
		}
		dev = d
		cfg.DeviceMTU = d.mtu
		if rf.offload {
			cfg.VnetHdr = true
			scfg.Offload = enableOffload(d, log)
		}
		log.Info().Str("dev", d.Name()).Stringer("mode", dc.mode).Int("mtu", d.mtu).Bool("offload", scfg.Offload).Msg("relay: device ready")
	}
	scfg.MaxFrame = cfg.DeviceMTU
	if dc.mode == tundev.TAP {
		scfg.MaxFrame += 14
	}
	if scfg.Offload {
		// Offload frames are a virtio-net header and up to gsoMaxSize bytes.
		scfg.MaxFrame = tundev.VnetHdrLen + gsoMaxSize
	}
	cfg.Session = scfg
	err = relay.Run(ctx, dev, cfg)
	cancel()
	wg.Wait()
	groups := [][]stack.Counter{}
	for _, c := range counters {
		groups = append(groups, c())
	}
	groups = append(groups, relayCounters(scfg.Stats))
	logCounters(log, groups...)
	if err == nil {
		err = hostErr
	}
	return err
}

// gsoMaxSize bounds the device's segmentation-offload packets so that one,
// with its virtio-net header, fits every relay frame (at most 65535 bytes
// less an AEAD tag on TCP, 65507 less the keyed header on UDP).
const gsoMaxSize = 65000

// enableOffload checks that the kernel takes the device's offloads and
// bounds their size; on failure it says why and the relay carries plain
// packets (the virtio-net header is stripped and added locally).
func enableOffload(d *device, log zerolog.Logger) bool {
	err := d.SetOffload(true)
	if err == nil {
		err = d.SetOffload(false) // on only while a peer takes it
	}
	if err == nil {
		err = tundev.SetGSOMaxSize(d.Name(), gsoMaxSize)
	}
	if err != nil {
		log.Warn().Err(err).Msg("relay: --offload unavailable; carrying plain packets")
		return false
	}
	return true
}

func relayCounters(s *relay.Stats) []stack.Counter {
	var out []stack.Counter
	for _, c := range s.Snapshot() {
		out = append(out, stack.Counter{Name: c.Name, Value: c.Value})
	}
	return out
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, a := range ps {
		out[i] = a.String()
		if a.IsSingleIP() {
			out[i] = a.Addr().String()
		}
	}
	return out
}

const genkeyUsage = `Usage: vhost genkey > FILE

Prints a new random 256-bit relay key (base64). When standard output is a
file, vhost makes it mode 0600. Give the same key to both ends with --key.
`

func genkey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("vhost genkey", genkeyUsage, stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	if f, ok := stdout.(*os.File); ok {
		if err := relay.SecureStdout(f); err != nil {
			return fmt.Errorf("genkey: %w", err)
		}
	}
	k, err := relay.GenerateKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, k.String())
	return err
}
