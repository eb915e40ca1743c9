package host_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vhost-dev/vhost/internal/host"
	pt "github.com/vhost-dev/vhost/internal/packettest"
	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

var (
	kernelAddr = netip.MustParseAddr("10.0.0.1")
	hostAddr   = netip.MustParseAddr("10.0.0.2")
)

func newStack(t *testing.T, ethernet bool) *stack.Stack {
	t.Helper()
	s, err := stack.New(stack.Config{Ethernet: ethernet, Addrs: []netip.Prefix{netip.PrefixFrom(hostAddr, 32)},
		HostSide: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs the host on dev and returns a function that stops it and
// returns Run's error.
func start(t *testing.T, dev tundev.Device, st *stack.Stack, stats *host.Stats) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- host.Run(ctx, dev, st, host.Config{Stats: stats, Log: zerolog.Nop()}) }()
	stop := func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5s of cancel")
			return nil
		}
	}
	t.Cleanup(func() { cancel() })
	return stop
}

// TestRunSocketpair answers echo requests written to the peer end of a
// socketpair twin, which exercises the real device's fd code.
func TestRunSocketpair(t *testing.T) {
	dev, peer, err := tundev.NewSocketpair(tundev.TUN, "twin0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	st := newStack(t, false)
	var stats host.Stats
	stop := start(t, dev, st, &stats)

	const n = 50
	for i := range n {
		req := pt.Echo{Src: kernelAddr, Dst: hostAddr, ID: 9, Seq: uint16(i), Payload: []byte("hello")}.IPv4(t)
		if _, err := peer.Write(req); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2048)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		m, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		pt.IPv4(t, buf[:m], pt.SrcAddr(hostAddr), pt.DstAddr(kernelAddr), pt.ICMPv4(pt.EchoReply(9, uint16(i), []byte("hello"))))
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if got := stats.RxPackets.Load(); got != n {
		t.Errorf("rx_packets = %d, want %d", got, n)
	}
	if got := st.Count(stack.Replied); got != n {
		t.Errorf("replied = %d, want %d", got, n)
	}
}

// TestRunAnnouncesAndAnswersARP checks the start-up announcement and an ARP
// exchange over the in-memory pipe twin.
func TestRunAnnouncesAndAnswersARP(t *testing.T) {
	a, b := tundev.NewPipe(tundev.TAP, "pipe0")
	defer b.Close()
	st := newStack(t, true)
	var stats host.Stats
	stop := start(t, a, st, &stats)

	kernelMAC := pt.MustMAC("9a:29:56:55:0c:c6")
	hostMAC := stack.MACFor(hostAddr)
	zero := pt.MustMAC("00:00:00:00:00:00")
	bufs := [][]byte{make([]byte, 2048)}
	sizes := []int{0}
	read := func() []byte {
		t.Helper()
		n, err := b.Read(bufs, sizes, 0)
		if err != nil || n != 1 {
			t.Fatalf("read: %d, %v", n, err)
		}
		return bufs[0][:sizes[0]]
	}
	pt.EthernetFrame(t, read(), pt.EthAddrs(pt.MustMAC("ff:ff:ff:ff:ff:ff"), hostMAC), pt.EthARP(1, hostMAC, hostAddr, zero, hostAddr))

	req := pt.Ethernet(t, pt.MustMAC("ff:ff:ff:ff:ff:ff"), kernelMAC, 0x0806, pt.ARP(t, 1, kernelMAC, kernelAddr, zero, hostAddr))
	if _, err := b.Write([][]byte{req}, 0); err != nil {
		t.Fatal(err)
	}
	pt.EthernetFrame(t, read(), pt.EthAddrs(kernelMAC, hostMAC), pt.EthARP(2, hostMAC, hostAddr, kernelMAC, kernelAddr))
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
}

// TestRunDeviceGone: when the device fails (here: the peer of a socketpair
// closes), Run returns an error naming the device instead of hanging.
func TestRunDeviceGone(t *testing.T) {
	dev, peer, err := tundev.NewSocketpair(tundev.TUN, "twin1")
	if err != nil {
		t.Fatal(err)
	}
	st := newStack(t, false)
	var stats host.Stats
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- host.Run(ctx, dev, st, host.Config{Stats: &stats, Log: zerolog.Nop()}) }()
	peer.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after the device failed, want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run hung after the device failed")
	}
}
