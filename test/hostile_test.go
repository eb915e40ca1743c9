//go:build linux

package test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// hostileID is the ICMP identifier of the bad packets; controlID that of
// the valid echo requests sent after each one.
const (
	hostileID = 0xbad0
	controlID = 0xe2e0
)

// hostileCase is one packet vhost must drop without a reply, counted under
// counter.
type hostileCase struct {
	name    string
	counter string
	// ip builds an IPv4 packet: sent as is on TUN, in an Ethernet frame
	// from the kernel side's MAC to vhost's on TAP.
	ip func(t *testing.T) []byte
	// frame builds a whole Ethernet frame; such cases run on TAP only.
	frame func(t *testing.T, hostMAC net.HardwareAddr) []byte
}

// validEcho is an echo request from the kernel side to vhost.
func validEcho(t *testing.T) []byte {
	t.Helper()
	return serialize(t, append([]gopacket.SerializableLayer{ipv4(hostAddr, vhostAddr)}, echoRequest(hostileID, 1)...)...)
}

// mutate returns a builder of a valid echo request changed by f.
func mutate(f func(b []byte)) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		t.Helper()
		b := validEcho(t)
		f(b)
		return b
	}
}

// icmpPacket returns an ICMP message of the given type with payload from
// src to dst, checksums valid.
func icmpPacket(src, dst string, typ, code uint8, payload []byte) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		t.Helper()
		return serialize(t, ipv4(src, dst),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: hostileID},
			gopacket.Payload(payload))
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// ethernet wraps an IPv4 packet or ARP payload in a frame.
func ethernet(dst, src net.HardwareAddr, typ layers.EthernetType, payload []byte) []byte {
	b := make([]byte, 14+len(payload))
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], uint16(typ))
	copy(b[14:], payload)
	return b
}

// arpPacket returns a 28-byte Ethernet/IPv4 ARP packet.
func arpPacket(op uint16, sha net.HardwareAddr, spa string, tha net.HardwareAddr, tpa string) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:4], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], op)
	copy(p[8:14], sha)
	copy(p[14:18], net.ParseIP(spa).To4())
	copy(p[18:24], tha)
	copy(p[24:28], net.ParseIP(tpa).To4())
	return p
}

var broadcastMAC = mustMAC("ff:ff:ff:ff:ff:ff")

var hostileCases = []hostileCase{
	{name: "bad_ip_checksum", counter: "bad_ip_checksum", ip: mutate(func(b []byte) { b[10] ^= 0x5a })},
	{name: "bad_icmp_checksum", counter: "bad_icmp_checksum", ip: mutate(func(b []byte) { b[22] ^= 0x5a })},
	{name: "ihl_4", counter: "bad_ihl", ip: mutate(func(b []byte) { b[0] = 0x44; fixIPChecksum(b, 20) })},
	{name: "total_length_past_end", counter: "bad_total_length", ip: mutate(func(b []byte) {
		binary.BigEndian.PutUint16(b[2:4], uint16(len(b)+8))
		fixIPChecksum(b, 20)
	})},
	{name: "truncated_ip_header", counter: "truncated", ip: func(t *testing.T) []byte { return validEcho(t)[:12] }},
	{name: "truncated_icmp_header", counter: "truncated", ip: func(t *testing.T) []byte {
		return serialize(t, ipv4(hostAddr, vhostAddr), gopacket.Payload{8, 0, 0xf7, 0xff})
	}},
	{name: "version_7", counter: "bad_version", ip: mutate(func(b []byte) { b[0] = 0x75; fixIPChecksum(b, 20) })},
	{name: "source_0.0.0.0", counter: "bad_source", ip: func(t *testing.T) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{ipv4("0.0.0.0", vhostAddr)}, echoRequest(hostileID, 1)...)...)
	}},
	{name: "source_224.0.0.1", counter: "bad_source", ip: func(t *testing.T) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{ipv4("224.0.0.1", vhostAddr)}, echoRequest(hostileID, 1)...)...)
	}},
	{name: "source_broadcast", counter: "bad_source", ip: func(t *testing.T) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{ipv4("255.255.255.255", vhostAddr)}, echoRequest(hostileID, 1)...)...)
	}},
	// RFC 1122 §3.2.2: an ICMP error (here port unreachable quoting a
	// datagram from vhost) is never answered.
	{name: "dest_unreachable", counter: "ignored_icmp_error", ip: func(t *testing.T) []byte {
		quoted := serialize(t, append([]gopacket.SerializableLayer{ipv4(vhostAddr, hostAddr)}, echoRequest(1, 1)...)...)[:28]
		return icmpPacket(hostAddr, vhostAddr, layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort, quoted)(t)
	}},
	{name: "timestamp_request", counter: "ignored_icmp",
		ip: icmpPacket(hostAddr, vhostAddr, layers.ICMPv4TypeTimestampRequest, 0, make([]byte, 12))},
	{name: "not_owned_10.0.0.9", counter: "not_for_us", ip: func(t *testing.T) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{ipv4(hostAddr, unowned)}, echoRequest(hostileID, 1)...)...)
	}},
	{name: "non_final_fragment_of_13_bytes", counter: "bad_fragment", ip: func(t *testing.T) []byte {
		ip := ipv4(hostAddr, vhostAddr)
		ip.Flags = layers.IPv4MoreFragments
		return serialize(t, ip, gopacket.Payload("thirteen byte"))
	}},
	// UDP and TCP to the host are answered (Port Unreachable, a reset;
	// TestRouters checks those), but not with a bad checksum, and a reset
	// never (RFC 9293 §3.10.7.1).
	{name: "udp_bad_checksum", counter: "bad_l4_checksum", ip: func(t *testing.T) []byte {
		ip := ipv4(hostAddr, vhostAddr)
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: 40000, DstPort: 9}
		_ = udp.SetNetworkLayerForChecksum(ip)
		b := serialize(t, ip, udp, gopacket.Payload("hello"))
		b[26] ^= 0x5a // the UDP checksum
		return b
	}},
	{name: "tcp_reset", counter: "ignored_reset", ip: func(t *testing.T) []byte {
		ip := ipv4(hostAddr, vhostAddr)
		ip.Protocol = layers.IPProtocolTCP
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, RST: true, Window: 0}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, ip, tcp)
	}},

	// TAP only.
	// gopacket v1.1.19's ARP decoder panicked on this: hlen 255 in a
	// 20-byte ARP payload.
	{name: "arp_hlen_255", counter: "bad_arp", frame: func(t *testing.T, hostMAC net.HardwareAddr) []byte {
		p := make([]byte, 20)
		binary.BigEndian.PutUint16(p[0:2], 1)
		binary.BigEndian.PutUint16(p[2:4], 0x0800)
		p[4], p[5] = 255, 4
		binary.BigEndian.PutUint16(p[6:8], 1)
		return ethernet(broadcastMAC, hostMAC, layers.EthernetTypeARP, p)
	}},
	{name: "arp_request_not_owned", counter: "not_for_us", frame: func(t *testing.T, hostMAC net.HardwareAddr) []byte {
		return ethernet(broadcastMAC, hostMAC, layers.EthernetTypeARP,
			arpPacket(1, hostMAC, hostAddr, make(net.HardwareAddr, 6), unowned))
	}},
	{name: "arp_reply", counter: "ignored_arp", frame: func(t *testing.T, hostMAC net.HardwareAddr) []byte {
		return ethernet(mustMAC(vhostMAC), hostMAC, layers.EthernetTypeARP,
			arpPacket(2, hostMAC, hostAddr, mustMAC(vhostMAC), vhostAddr))
	}},
	{name: "multicast_source_mac", counter: "bad_source", frame: func(t *testing.T, hostMAC net.HardwareAddr) []byte {
		return ethernet(mustMAC(vhostMAC), mustMAC("01:00:5e:00:00:01"), layers.EthernetTypeIPv4, validEcho(t))
	}},
	{name: "other_unicast_mac", counter: "not_for_us", frame: func(t *testing.T, hostMAC net.HardwareAddr) []byte {
		return ethernet(mustMAC("02:00:0a:00:00:09"), hostMAC, layers.EthernetTypeIPv4, validEcho(t))
	}},
	// IEEE 802 local experimental EtherType 1: nothing vhost speaks.
	{name: "ethertype_88b5", counter: "unsupported", frame: func(t *testing.T, hostMAC net.HardwareAddr) []byte {
		return ethernet(mustMAC(vhostMAC), hostMAC, layers.EthernetType(0x88b5), []byte("local experimental payload...."))
	}},
}

// isAnnouncement reports whether frame is vhost's gratuitous ARP
// announcement (a request whose sender and target IP are both its own),
// which it sends once at start and may still be in the socket.
func isAnnouncement(frame []byte) bool {
	if len(frame) < 42 || binary.BigEndian.Uint16(frame[12:14]) != uint16(layers.EthernetTypeARP) {
		return false
	}
	p := frame[14:]
	return binary.BigEndian.Uint16(p[6:8]) == 1 && string(p[14:18]) == string(p[24:28])
}

// TestHostile injects malformed and unanswerable packets from the kernel
// side of the device through an AF_PACKET socket. For each, nothing must
// come back: a valid echo request sent right after it must get the first
// reply (a positive control: a reply to the bad packet would come first).
// At exit, each drop reason's counter must have counted exactly its
// packets.
func TestHostile(t *testing.T) {
	requireE2E(t, "sysctl")
	for _, mode := range []string{"tun", "tap"} {
		t.Run(mode, func(t *testing.T) {
			tap := mode == "tap"
			ns := newNS(t)
			v := startVhost(t, ns, "--mode", mode)
			s := openPacketSocket(t, ns, v.dev, tap)

			want := counters{}
			if tap {
				want["arp_announcements"] = 1
				want["tx_packets"] = 1
			}
			var seq uint16
			for _, tc := range hostileCases {
				if tc.frame != nil && !tap {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					var pkt []byte
					switch {
					case tc.frame != nil:
						pkt = tc.frame(t, s.hwaddr)
					case tap:
						pkt = ethernet(mustMAC(vhostMAC), s.hwaddr, layers.EthernetTypeIPv4, tc.ip(t))
					default:
						pkt = tc.ip(t)
					}
					s.drain()
					s.send(t, pkt)
					want[tc.counter]++
					want["rx_packets"]++

					seq++
					ctl := echoRequest(controlID, seq)
					payload := []byte(ctl[1].(gopacket.Payload))
					ctlPkt := serialize(t, append([]gopacket.SerializableLayer{ipv4(hostAddr, vhostAddr)}, ctl...)...)
					if tap {
						ctlPkt = ethernet(mustMAC(vhostMAC), s.hwaddr, layers.EthernetTypeIPv4, ctlPkt)
					}
					s.send(t, ctlPkt)
					want["rx_packets"]++
					want["replied"]++
					want["tx_packets"]++

					got := s.recvSkipping(t, 5*time.Second, tap)
					if got == nil {
						t.Fatalf("no reply to the valid echo request (id=%#x seq=%d) sent after the %s packet", controlID, seq, tc.name)
					}
					// The first packet back must be the control's reply: a
					// reply to the bad packet would have come before it.
					if icmpID(got, tap) == hostileID {
						t.Fatalf("vhost answered the %s packet (want it dropped and counted as %s): %x", tc.name, tc.counter, got)
					}
					checkEchoReply(t, got, tap, echoReplyCheck{
						src: vhostAddr, dst: hostAddr, id: controlID, seq: seq, payload: payload,
						srcMAC: vhostMAC, dstMAC: s.hwaddr.String(),
					})
					if extra := s.recvSkipping(t, 200*time.Millisecond, tap); extra != nil {
						t.Errorf("unexpected packet from vhost after the control reply: %x", extra)
					}
				})
			}

			c := v.stop(t)
			checkCounters(t, c, want)
		})
	}
}

// recvSkipping is recv that skips vhost's ARP announcement on TAP.
func (s *packetSocket) recvSkipping(t *testing.T, timeout time.Duration, tap bool) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := s.recv(t, time.Until(deadline))
		if b == nil || !tap || !isAnnouncement(b) {
			return b
		}
	}
}

// icmpID returns the ICMP identifier of an IPv4 packet (TUN) or frame
// (TAP), or -1 when it carries no ICMP.
func icmpID(pkt []byte, tap bool) int {
	first := layers.LayerTypeIPv4
	if tap {
		first = layers.LayerTypeEthernet
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		return int(icmp.Id)
	}
	return -1
}
