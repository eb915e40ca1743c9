//go:build linux

package test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vhost-dev/vhost/internal/packettest"
)

// packetSocket is an AF_PACKET socket bound to a device inside a namespace:
// what it sends goes out of the kernel side of the device to vhost, and it
// reads what vhost writes. On TUN it is SOCK_DGRAM for ETH_P_IP (raw IPv4
// packets); on TAP SOCK_RAW for every EtherType (whole Ethernet frames).
type packetSocket struct {
	fd      int
	ifindex int
	proto   uint16
	hwaddr  net.HardwareAddr // the kernel side's MAC (TAP)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacketSocket opens the socket inside the namespace (see inNetNS).
func openPacketSocket(t *testing.T, ns *netNS, dev string, tap bool) *packetSocket {
	t.Helper()
	return openPacketSocketProto(t, ns, dev, tap, unix.ETH_P_IP)
}

// openPacketSocketProto is openPacketSocket for packets of EtherType proto
// on TUN (ETH_P_IPV6 for IPv6); on TAP the socket takes every frame.
func openPacketSocketProto(t *testing.T, ns *netNS, dev string, tap bool, ipProto uint16) *packetSocket {
	t.Helper()
	typ, proto := unix.SOCK_DGRAM, ipProto
	if tap {
		typ, proto = unix.SOCK_RAW, uint16(unix.ETH_P_ALL)
	}
	s, err := inNetNS(ns, func() (*packetSocket, error) {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return nil, fmt.Errorf("interface %s in %s: %w", dev, ns.name, err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, int(htons(proto)))
		if err != nil {
			return nil, fmt.Errorf("socket(AF_PACKET): %w", err)
		}
		s := &packetSocket{fd: fd, ifindex: ifi.Index, proto: proto, hwaddr: ifi.HardwareAddr}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("bind AF_PACKET to %s: %w", dev, err)
		}
		return s, nil
	}, func(s *packetSocket) { unix.Close(s.fd) })
	if err != nil {
		t.Fatalf("open packet socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// inNetNS runs fn inside the namespace and returns what it made: sockets
// stay in the namespace they were created in. The switch happens on a
// locked OS thread of its own goroutine; if switching back fails, undo
// releases what fn made, and the goroutine exits still locked so that Go
// discards the thread.
func inNetNS[T any](ns *netNS, fn func() (T, error), undo func(T)) (T, error) {
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		v, err := func() (v T, err error) {
			orig, err := netns.Get()
			if err != nil {
				return v, fmt.Errorf("get current netns: %w", err)
			}
			defer orig.Close()
			target, err := netns.GetFromName(ns.name)
			if err != nil {
				return v, fmt.Errorf("open netns %s: %w", ns.name, err)
			}
			defer target.Close()
			if err := netns.Set(target); err != nil {
				return v, fmt.Errorf("enter netns %s: %w", ns.name, err)
			}
			v, fnErr := fn()
			if err := netns.Set(orig); err != nil {
				if fnErr == nil {
					undo(v)
				}
				var zero T
				return zero, fmt.Errorf("return to original netns: %w", err)
			}
			runtime.UnlockOSThread()
			return v, fnErr
		}()
		ch <- res{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// send writes one packet (TUN) or frame (TAP) to the device.
func (s *packetSocket) send(t *testing.T, b []byte) {
	t.Helper()
	sa := &unix.SockaddrLinklayer{Protocol: htons(s.proto), Ifindex: s.ifindex}
	if s.proto == unix.ETH_P_ALL && len(b) >= 14 {
		// SOCK_RAW: the frame carries its own EtherType.
		sa.Protocol = htons(binary.BigEndian.Uint16(b[12:14]))
	}
	if err := unix.Sendto(s.fd, b, 0, sa); err != nil {
		t.Fatalf("send %d bytes on AF_PACKET: %v", len(b), err)
	}
}

// drain discards what has been received so far.
func (s *packetSocket) drain() {
	buf := make([]byte, 1<<16)
	for {
		if _, _, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT); err != nil {
			return
		}
	}
}

// recv returns the next packet that came in from vhost (packets the kernel
// sends out are skipped), or nil when none arrives within timeout.
func (s *packetSocket) recv(t *testing.T, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1<<16)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		ms := int(left / time.Millisecond)
		if ms == 0 {
			ms = 1
		}
		fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll AF_PACKET: %v", err)
		}
		if n == 0 {
			continue
		}
		n, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("recv AF_PACKET: %v", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return append([]byte(nil), buf[:n]...)
	}
}

// serialize builds a packet from layers with lengths and checksums computed.
func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// ipv4 returns an IPv4 header from src to dst carrying ICMP.
func ipv4(src, dst string) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Id: 0x1234, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4(),
	}
}

// echoRequest returns an ICMP echo request with a recognisable payload.
func echoRequest(id, seq uint16) []gopacket.SerializableLayer {
	payload := []byte(fmt.Sprintf("vhost-e2e id=%d seq=%d ......", id, seq))
	return []gopacket.SerializableLayer{
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq},
		gopacket.Payload(payload),
	}
}

// fixIPChecksum recomputes the header checksum of the IPv4 packet at b
// after a test changed a header field, so that only the intended field is
// wrong. ihl is the header length in bytes to checksum.
func fixIPChecksum(b []byte, ihl int) {
	b[10], b[11] = 0, 0
	c := packettest.Checksum(b[:ihl])
	b[10], b[11] = byte(c>>8), byte(c)
}

// echoReplyCheck describes the echo reply a test expects.
type echoReplyCheck struct {
	src, dst string
	id, seq  uint16
	payload  []byte
	srcMAC   string // TAP only
	dstMAC   string // TAP only
}

// checkEchoReply fails the test unless pkt (an IPv4 packet on TUN, an
// Ethernet frame on TAP) is the expected echo reply with valid checksums
// and TTL 64.
func checkEchoReply(t *testing.T, pkt []byte, tap bool, want echoReplyCheck) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if tap {
		first = layers.LayerTypeEthernet
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("reply does not decode: %v\n%x", el.Error(), pkt)
	}
	if tap {
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if eth == nil {
			t.Fatalf("reply is not Ethernet: %x", pkt)
		}
		if eth.SrcMAC.String() != want.srcMAC || eth.DstMAC.String() != want.dstMAC {
			t.Errorf("reply Ethernet %v > %v, want %v > %v", eth.SrcMAC, eth.DstMAC, want.srcMAC, want.dstMAC)
		}
	}
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || icmp == nil {
		t.Fatalf("reply is not IPv4/ICMP: %v", p)
	}
	if ip.SrcIP.String() != want.src || ip.DstIP.String() != want.dst {
		t.Errorf("reply IPv4 %v > %v, want %v > %v", ip.SrcIP, ip.DstIP, want.src, want.dst)
	}
	if ip.TTL != 64 {
		t.Errorf("reply TTL = %d, want 64", ip.TTL)
	}
	if c := packettest.Checksum(ip.Contents); c != 0 {
		t.Errorf("reply IPv4 header checksum does not verify (residue %#04x)", c)
	}
	if c := packettest.Checksum(ip.Payload); c != 0 {
		t.Errorf("reply ICMP checksum does not verify (residue %#04x)", c)
	}
	if icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0) {
		t.Errorf("reply ICMP type = %v, want echo reply", icmp.TypeCode)
	}
	if icmp.Id != want.id || icmp.Seq != want.seq {
		t.Errorf("reply id=%d seq=%d, want id=%d seq=%d", icmp.Id, icmp.Seq, want.id, want.seq)
	}
	if want.payload != nil && string(icmp.Payload) != string(want.payload) {
		t.Errorf("reply payload = %q, want %q", icmp.Payload, want.payload)
	}
}
