// Package packettest builds packets and frames for tests and checks the
// ones the stack produces, in the spirit of gVisor's tcpip/checker: every
// check is a composable function, and every helper calls t.Helper.
package packettest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Serialize serializes ls with lengths and checksums computed.
func Serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Echo describes an ICMPv4 message in an IPv4 packet.
type Echo struct {
	Src, Dst netip.Addr
	ID, Seq  uint16
	Payload  []byte
	TOS      uint8
	TTL      uint8 // default 64
	IPID     uint16
	Type     layers.ICMPv4TypeCode // default echo request
	Options  []layers.IPv4Option
	Flags    layers.IPv4Flag
}

// IPv4Layers returns the layers of e.
func (e Echo) IPv4Layers() (*layers.IPv4, *layers.ICMPv4) {
	ttl := e.TTL
	if ttl == 0 {
		ttl = 64
	}
	typ := e.Type
	if typ == 0 {
		typ = layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0)
	}
	ip := &layers.IPv4{Version: 4, IHL: 5, TOS: e.TOS, Id: e.IPID, TTL: ttl, Protocol: layers.IPProtocolICMPv4,
		SrcIP: e.Src.AsSlice(), DstIP: e.Dst.AsSlice(), Options: e.Options, Flags: e.Flags}
	icmp := &layers.ICMPv4{TypeCode: typ, Id: e.ID, Seq: e.Seq}
	return ip, icmp
}

// IPv4 returns e as a raw IPv4 packet.
func (e Echo) IPv4(t testing.TB) []byte {
	t.Helper()
	ip, icmp := e.IPv4Layers()
	return Serialize(t, ip, icmp, gopacket.Payload(e.Payload))
}

// Ethernet wraps payload in an Ethernet frame.
func Ethernet(t testing.TB, dst, src net.HardwareAddr, typ layers.EthernetType, payload []byte) []byte {
	t.Helper()
	return Serialize(t, &layers.Ethernet{DstMAC: dst, SrcMAC: src, EthernetType: typ}, gopacket.Payload(payload))
}

// ARP returns an Ethernet/IPv4 ARP packet (without the Ethernet header).
func ARP(t testing.TB, op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	t.Helper()
	return Serialize(t, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: sha, SourceProtAddress: spa.AsSlice(), DstHwAddress: tha, DstProtAddress: tpa.AsSlice()})
}

// Fragment splits a raw IPv4 packet with a 20-byte header into fragments
// whose payloads are at most size bytes (a multiple of 8 but for the last).
func Fragment(t testing.TB, pkt []byte, size int) [][]byte {
	t.Helper()
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(pkt, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("fragment: %v", err)
	}
	var frags [][]byte
	payload := ip.Payload
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		f := ip
		f.Options = nil
		f.IHL = 5
		f.FragOffset = uint16(off / 8)
		f.Flags = 0
		if end < len(payload) {
			f.Flags = layers.IPv4MoreFragments
		}
		frags = append(frags, Serialize(t, &f, gopacket.Payload(payload[off:end])))
	}
	return frags
}

// MustAddr parses an address or panics.
func MustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// MustMAC parses a MAC or panics.
func MustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}
