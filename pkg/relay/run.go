package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// Endpoint says where the peer is: Listen for a server, Connect for a client.
type Endpoint struct {
	// Transport is "tcp" or "udp".
	Transport string
	// Listen is [ADDR]:PORT to listen on; Connect is HOST:PORT to dial.
	// Exactly one is set.
	Listen, Connect string
	// Peer, on a UDP server, is the only address datagrams are accepted
	// from (plain mode). Empty: the first peer heard from.
	Peer string
}

// RunConfig configures Run.
type RunConfig struct {
	Endpoint
	// Session configures every session; its Stats also receive Run's own
	// counters (drop_no_peer, drop_device_mtu, drop_wrong_mode).
	Session Config
	// DeviceMTU bounds the frames written to the device: frames larger than
	// DeviceMTU (plus 14 on TAP) are dropped and counted.
	DeviceMTU int
	// VnetHdr says the device's packets carry a virtio-net header
	// (tundev.Config.VnetHdr). Run then turns the device's offloads on
	// while the session carries them (Session.Offload) and off otherwise,
	// stripping and adding the header itself for a peer without offload.
	VnetHdr bool
	// Backoff bounds the client's reconnection delay. Default 100ms to 5s.
	MinBackoff, MaxBackoff time.Duration
	Log                    zerolog.Logger
}

// batch is how many packets one device or session read may return.
const batch = 64

// Run relays frames between dev and the peer until ctx ends (nil error) or
// the device or the listening socket fails. A client reconnects with
// backoff whenever its session ends; a server takes the next peer.
func Run(ctx context.Context, dev tundev.Device, cfg RunConfig) error {
	r := &runner{cfg: cfg, dev: dev, log: cfg.Log}
	r.cfg.Session = r.cfg.Session.withDefaults()
	r.stats = r.cfg.Session.Stats
	r.maxDev = cfg.DeviceMTU
	if dev.Mode() == tundev.TAP {
		r.maxDev += ethHeaderLen
	}
	if r.cfg.MinBackoff <= 0 {
		r.cfg.MinBackoff = 100 * time.Millisecond
	}
	if r.cfg.MaxBackoff <= 0 {
		r.cfg.MaxBackoff = 5 * time.Second
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.cancel = cancel
	stop := context.AfterFunc(ctx, func() { dev.Close() })
	defer stop()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := r.deviceToPeer(); err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("device %s: %w", dev.Name(), err))
		}
	})
	var err error
	switch {
	case cfg.Listen != "" && cfg.Transport == "udp":
		err = r.serveUDP(ctx)
	case cfg.Listen != "":
		err = r.serveTCP(ctx)
	default:
		err = r.dial(ctx)
	}
	if err != nil && ctx.Err() == nil {
		cancel(err)
	}
	<-ctx.Done()
	r.setSession(nil)
	dev.Close()
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

const ethHeaderLen = 14

type runner struct {
	cfg    RunConfig
	dev    tundev.Device
	log    zerolog.Logger
	stats  *Stats
	maxDev int
	cancel context.CancelCauseFunc

	devOffload bool // the device's offloads are on (deviceToPeer only)

	mu  sync.Mutex
	cur Session // the session the device's packets go to; nil: none
}

// setSession makes s the current session, closing the previous one.
func (r *runner) setSession(s Session) {
	r.mu.Lock()
	old := r.cur
	r.cur = s
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// clearSession forgets s if it is still the current session.
func (r *runner) clearSession(s Session) {
	r.mu.Lock()
	if r.cur == s {
		r.cur = nil
	}
	r.mu.Unlock()
	s.Close()
}

func (r *runner) session() Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// newBufs returns n packet buffers with headroom and room for a tag.
func newBufs(n int) ([][]byte, []int) {
	size := tundev.Headroom + tundev.MaxPacket + TagSize
	mem := make([]byte, n*size)
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
	}
	return bufs, make([]int, n)
}

// deviceToPeer reads the device and sends each batch to the current
// session in one call. It returns when the device fails or is closed.
func (r *runner) deviceToPeer() error {
	bufs, sizes := newBufs(batch)
	pkts := make([][]byte, batch)
	for {
		n, err := r.dev.Read(bufs, sizes, tundev.Headroom)
		if err != nil {
			return err
		}
		s := r.session()
		if s == nil {
			r.stats.DropNoPeer.Add(uint64(n))
			continue
		}
		off := tundev.Headroom
		m := 0
		if r.cfg.VnetHdr {
			r.matchOffload(s.Offload())
			if !r.devOffload {
				// The peer takes bare packets: strip the header. Packets
				// queued before offload was turned off cannot be sent.
				off += tundev.VnetHdrLen
				for i := range n {
					h := bufs[i][tundev.Headroom:]
					if sizes[i] < tundev.VnetHdrLen || h[0]&tundev.VnetFlagNeedsCsum != 0 || h[1] != tundev.VnetGSONone {
						r.stats.DropOffload.Add(1)
						continue
					}
					pkts[m] = bufs[i][:tundev.Headroom+sizes[i]]
					m++
				}
			}
		}
		if off == tundev.Headroom {
			for i := range n {
				pkts[i] = bufs[i][:tundev.Headroom+sizes[i]]
			}
			m = n
		}
		if m == 0 {
			continue
		}
		if _, err := s.Write(pkts[:m], off); err != nil {
			// The session's reader sees the failure too and ends it.
			if e := r.log.Debug(); e.Enabled() {
				e.Err(err).Msg("relay: send failed")
			}
		}
	}
}

// matchOffload turns the device's offloads on or off to match the session.
func (r *runner) matchOffload(on bool) {
	if on == r.devOffload {
		return
	}
	d, ok := r.dev.(interface{ SetOffload(bool) error })
	if !ok {
		return
	}
	if err := d.SetOffload(on); err != nil {
		r.log.Warn().Err(err).Msg("relay: cannot change the device's offloads")
		return
	}
	r.devOffload = on
	r.log.Debug().Bool("offload", on).Msg("relay: device offloads changed")
}

// peerToDevice reads s and writes its frames to the device until s fails.
// A device failure cancels the relay.
func (r *runner) peerToDevice(s Session) error {
	bufs, sizes := newBufs(batch)
	pkts := make([][]byte, 0, batch)
	warned := false
	for {
		n, err := s.Read(bufs, sizes, tundev.Headroom)
		if err != nil {
			return err
		}
		pkts = pkts[:0]
		// With a virtio-net header on the device, a frame either carries
		// one (offload) or gets a zero one (a plain packet) in its headroom.
		hdr := r.cfg.VnetHdr && s.Offload()
		off := tundev.Headroom
		if r.cfg.VnetHdr && !hdr {
			off -= tundev.VnetHdrLen
		}
		for i := range n {
			f := bufs[i][tundev.Headroom : tundev.Headroom+sizes[i]]
			limit := r.maxDev
			if hdr {
				if len(f) < tundev.VnetHdrLen {
					r.stats.DropWrongMode.Add(1)
					continue
				}
				if f[1] != tundev.VnetGSONone {
					// A segmentation-offload super-packet: the kernel
					// splits it to the MTU.
					limit = tundev.MaxPacket
				}
				f = f[tundev.VnetHdrLen:]
			}
			if len(f) > limit || len(f) == 0 {
				// Never write a frame the device cannot carry.
				r.stats.DropDeviceMTU.Add(1)
				continue
			}
			if !plausible(f, r.dev.Mode()) {
				r.stats.DropWrongMode.Add(1)
				if !warned {
					warned = true
					r.log.Warn().Stringer("peer", s.Peer()).Stringer("mode", r.dev.Mode()).
						Msg("relay: the peer sends frames that do not fit this end's mode; both ends need the same --mode")
				}
				continue
			}
			if off < tundev.Headroom {
				clear(bufs[i][off:tundev.Headroom])
			}
			pkts = append(pkts, bufs[i][:tundev.Headroom+sizes[i]])
		}
		if len(pkts) == 0 {
			continue
		}
		if _, err := r.dev.Write(pkts, off); err != nil {
			r.cancel(fmt.Errorf("device %s: %w", r.dev.Name(), err))
			return err
		}
	}
}

// plausible reports whether f can be a packet of mode: an IP packet on
// TUN, an Ethernet frame on TAP. It catches peers of the other mode on
// plain sessions, which have no handshake to tell, and stray datagrams.
func plausible(f []byte, mode tundev.Mode) bool {
	if mode == tundev.TAP {
		return len(f) >= ethHeaderLen
	}
	if len(f) == 0 {
		return false
	}
	v := f[0] >> 4
	return v == 4 || v == 6
}

// serveTCP accepts peers until ctx ends. A peer that completes the
// handshake (immediately on a plain relay) replaces the current one: a
// client that restarts must not wait for the old connection to time out.
func (r *runner) serveTCP(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("relay: listen on %s: %w", r.cfg.Listen, err)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	r.logListening(ln.Addr())
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("relay: accept on %s: %w", ln.Addr(), err)
		}
		wg.Go(func() { r.serveConn(ctx, conn) })
	}
}

func (r *runner) serveConn(ctx context.Context, conn net.Conn) {
	unblock := context.AfterFunc(ctx, func() { conn.Close() })
	defer unblock()
	s, err := ServerTCP(conn, r.cfg.Session)
	if err != nil {
		conn.Close()
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Stringer("peer", conn.RemoteAddr()).Msg("relay: peer rejected")
		}
		return
	}
	if cur := r.session(); cur != nil && !sameHost(cur.Peer(), s.Peer()) {
		// A second client from another host while one is connected is
		// refused: two live clients would otherwise take the session from
		// each other for ever. A client from the same host is taken as a
		// restart of the current one and replaces it (attach logs that).
		r.log.Warn().Stringer("peer", s.Peer()).Stringer("current", cur.Peer()).
			Msg("relay: refused a second client while another is connected")
		s.Close()
		return
	}
	r.attach(s)
	err = r.peerToDevice(s)
	r.clearSession(s)
	if ctx.Err() == nil {
		r.log.Info().AnErr("reason", err).Stringer("peer", s.Peer()).Msg("relay: peer left")
	}
}

// sameHost reports whether a and b are TCP addresses of the same host.
func sameHost(a, b net.Addr) bool {
	ta, ok1 := a.(*net.TCPAddr)
	tb, ok2 := b.(*net.TCPAddr)
	return ok1 && ok2 && ta.IP.Equal(tb.IP)
}

// attach makes s the current session and logs it.
func (r *runner) attach(s Session) {
	if old := r.session(); old != nil {
		r.log.Info().Stringer("old", old.Peer()).Stringer("new", s.Peer()).Msg("relay: a new peer replaces the current one")
	} else {
		r.log.Info().Stringer("peer", s.Peer()).Msg("relay: peer connected")
	}
	r.setSession(s)
}

func (r *runner) logListening(addr net.Addr) {
	ev := r.log.Info().Stringer("listen", addr).Str("transport", r.cfg.Transport).Bool("keyed", r.cfg.Session.Key != nil)
	ev.Msg("relay listening")
	if r.cfg.Session.Key == nil && !isLoopback(addr) {
		r.log.Warn().Stringer("listen", addr).Msg("relay: listening without --key on a non-loopback address: the tunnel is unauthenticated and unencrypted; anyone who reaches this port can inject frames")
	}
}

func isLoopback(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UDPAddr:
		return a.IP.IsLoopback()
	}
	return false
}

// serveUDP serves the one UDP session until ctx ends.
func (r *runner) serveUDP(ctx context.Context) error {
	laddr, err := net.ResolveUDPAddr("udp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("relay: --listen %s: %w", r.cfg.Listen, err)
	}
	var peer *net.UDPAddr
	if r.cfg.Peer != "" {
		if peer, err = net.ResolveUDPAddr("udp", r.cfg.Peer); err != nil {
			return fmt.Errorf("relay: --peer %s: %w", r.cfg.Peer, err)
		}
	}
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return fmt.Errorf("relay: listen on udp %s: %w", r.cfg.Listen, err)
	}
	r.logListening(pc.LocalAddr())
	s, err := ListenUDP(pc, r.cfg.Session, peer)
	if err != nil {
		pc.Close()
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	r.setSession(s)
	for {
		err := r.peerToDevice(s)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrPeerDead) {
			// The session waits for the peer's next handshake.
			r.log.Warn().Stringer("peer", s.Peer()).Msg("relay: peer silent; waiting for it to come back")
			continue
		}
		return fmt.Errorf("relay: udp %s: %w", pc.LocalAddr(), err)
	}
}

// dial connects to the server, relays until the session ends, and
// reconnects with exponential backoff until ctx ends.
func (r *runner) dial(ctx context.Context) error {
	backoff := r.cfg.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		s, err := r.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn().Err(err).Str("server", r.cfg.Connect).Dur("retry_in", backoff).Msg("relay: connect failed")
		} else {
			r.attach(s)
			stop := context.AfterFunc(ctx, func() { s.Close() })
			err = r.peerToDevice(s)
			stop()
			r.clearSession(s)
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn().AnErr("reason", err).Str("server", r.cfg.Connect).Dur("retry_in", backoff).Msg("relay: connection lost; reconnecting")
			if time.Since(start) > r.cfg.MaxBackoff {
				// The session worked for a while: start backing off anew.
				backoff = r.cfg.MinBackoff
			}
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
	return nil
}

func (r *runner) connect(ctx context.Context) (Session, error) {
	d := net.Dialer{Timeout: r.cfg.Session.HandshakeTimeout}
	conn, err := d.DialContext(ctx, r.cfg.Transport, r.cfg.Connect)
	if err != nil {
		return nil, err
	}
	unblock := context.AfterFunc(ctx, func() { conn.Close() })
	defer unblock()
	var s Session
	if r.cfg.Transport == "udp" {
		s, err = ClientUDP(conn.(*net.UDPConn), r.cfg.Session)
	} else {
		s, err = ClientTCP(conn, r.cfg.Session)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}
