package packettest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Checksum is the Internet checksum of b, computed independently of the
// stack's own implementation (RFC 1071, the plain 16-bit loop).
func Checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// IPv4Checker checks one property of an IPv4 packet.
type IPv4Checker func(t testing.TB, ip *layers.IPv4)

// IPv4 decodes b as IPv4, checks the header checksum and the total length,
// and runs the checkers.
func IPv4(t testing.TB, b []byte, checkers ...IPv4Checker) {
	t.Helper()
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("IPv4: decode: %v", err)
	}
	if ip.Version != 4 {
		t.Errorf("IPv4: version = %d, want 4", ip.Version)
	}
	if int(ip.Length) != len(b) {
		t.Errorf("IPv4: total length = %d, packet is %d bytes", ip.Length, len(b))
	}
	if c := Checksum(b[:ip.IHL*4]); c != 0 {
		t.Errorf("IPv4: header checksum does not verify (residue %#04x)", c)
	}
	for _, c := range checkers {
		c(t, &ip)
	}
}

// SrcAddr checks the source address.
func SrcAddr(a netip.Addr) IPv4Checker {
	return func(t testing.TB, ip *layers.IPv4) {
		t.Helper()
		if got, _ := netip.AddrFromSlice(ip.SrcIP); got != a {
			t.Errorf("IPv4: src = %v, want %v", got, a)
		}
	}
}

// DstAddr checks the destination address.
func DstAddr(a netip.Addr) IPv4Checker {
	return func(t testing.TB, ip *layers.IPv4) {
		t.Helper()
		if got, _ := netip.AddrFromSlice(ip.DstIP); got != a {
			t.Errorf("IPv4: dst = %v, want %v", got, a)
		}
	}
}

// TTL checks the time to live.
func TTL(want uint8) IPv4Checker {
	return func(t testing.TB, ip *layers.IPv4) {
		t.Helper()
		if ip.TTL != want {
			t.Errorf("IPv4: ttl = %d, want %d", ip.TTL, want)
		}
	}
}

// TOS checks the type of service.
func TOS(want uint8) IPv4Checker {
	return func(t testing.TB, ip *layers.IPv4) {
		t.Helper()
		if ip.TOS != want {
			t.Errorf("IPv4: tos = %#x, want %#x", ip.TOS, want)
		}
	}
}

// NoOptions checks for a plain 20-byte header.
func NoOptions() IPv4Checker {
	return func(t testing.TB, ip *layers.IPv4) {
		t.Helper()
		if ip.IHL != 5 {
			t.Errorf("IPv4: ihl = %d, want 5", ip.IHL)
		}
	}
}

// ICMPChecker checks one property of an ICMPv4 message.
type ICMPChecker func(t testing.TB, icmp *layers.ICMPv4)

// ICMPv4 checks that the packet is a whole (unfragmented) ICMPv4 message
// with a valid checksum, then runs the checkers.
func ICMPv4(checkers ...ICMPChecker) IPv4Checker {
	return func(t testing.TB, ip *layers.IPv4) {
		t.Helper()
		if ip.Protocol != layers.IPProtocolICMPv4 {
			t.Fatalf("IPv4: protocol = %v, want ICMPv4", ip.Protocol)
		}
		if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
			t.Fatalf("IPv4: is a fragment (flags %v offset %d)", ip.Flags, ip.FragOffset)
		}
		if c := Checksum(ip.Payload); c != 0 {
			t.Errorf("ICMPv4: checksum does not verify (residue %#04x)", c)
		}
		var icmp layers.ICMPv4
		if err := icmp.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("ICMPv4: decode: %v", err)
		}
		for _, c := range checkers {
			c(t, &icmp)
		}
	}
}

// EchoReply checks for an echo reply with the given identifier, sequence
// number and data.
func EchoReply(id, seq uint16, payload []byte) ICMPChecker {
	return func(t testing.TB, icmp *layers.ICMPv4) {
		t.Helper()
		if got, want := icmp.TypeCode, layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0); got != want {
			t.Errorf("ICMPv4: type/code = %v, want %v", got, want)
		}
		if icmp.Id != id || icmp.Seq != seq {
			t.Errorf("ICMPv4: id/seq = %d/%d, want %d/%d", icmp.Id, icmp.Seq, id, seq)
		}
		if !bytes.Equal(icmp.Payload, payload) {
			t.Errorf("ICMPv4: payload (%d bytes) differs from the request's (%d bytes)", len(icmp.Payload), len(payload))
		}
	}
}

// EthernetChecker checks one property of an Ethernet frame.
type EthernetChecker func(t testing.TB, eth *layers.Ethernet)

// Ethernet decodes b as an Ethernet frame and runs the checkers.
func EthernetFrame(t testing.TB, b []byte, checkers ...EthernetChecker) {
	t.Helper()
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("Ethernet: decode: %v", err)
	}
	for _, c := range checkers {
		c(t, &eth)
	}
}

// EthAddrs checks the destination and source MACs.
func EthAddrs(dst, src net.HardwareAddr) EthernetChecker {
	return func(t testing.TB, eth *layers.Ethernet) {
		t.Helper()
		if !bytes.Equal(eth.DstMAC, dst) || !bytes.Equal(eth.SrcMAC, src) {
			t.Errorf("Ethernet: %v > %v, want %v > %v", eth.SrcMAC, eth.DstMAC, src, dst)
		}
	}
}

// EthIPv4 checks an IPv4 payload.
func EthIPv4(checkers ...IPv4Checker) EthernetChecker {
	return func(t testing.TB, eth *layers.Ethernet) {
		t.Helper()
		if eth.EthernetType != layers.EthernetTypeIPv4 {
			t.Fatalf("Ethernet: type = %v, want IPv4", eth.EthernetType)
		}
		IPv4(t, eth.Payload, checkers...)
	}
}

// EthARP checks an ARP packet: operation, sender and target.
func EthARP(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) EthernetChecker {
	return func(t testing.TB, eth *layers.Ethernet) {
		t.Helper()
		if eth.EthernetType != layers.EthernetTypeARP {
			t.Fatalf("Ethernet: type = %v, want ARP", eth.EthernetType)
		}
		p := eth.Payload
		if len(p) != 28 {
			t.Fatalf("ARP: %d bytes, want 28", len(p))
		}
		if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != 0x0800 || p[4] != 6 || p[5] != 4 {
			t.Errorf("ARP: header % x, want Ethernet/IPv4 6/4", p[:6])
		}
		gotSPA, _ := netip.AddrFromSlice(p[14:18])
		gotTPA, _ := netip.AddrFromSlice(p[24:28])
		if got := binary.BigEndian.Uint16(p[6:8]); got != op || !bytes.Equal(p[8:14], sha) || gotSPA != spa ||
			!bytes.Equal(p[18:24], tha) || gotTPA != tpa {
			t.Errorf("ARP: op %d %v/%v -> %v/%v, want op %d %v/%v -> %v/%v",
				got, net.HardwareAddr(p[8:14]), gotSPA, net.HardwareAddr(p[18:24]), gotTPA, op, sha, spa, tha, tpa)
		}
	}
}
