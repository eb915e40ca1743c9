//go:build linux

package test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestTshark captures the TUN and TAP exchanges (plain, fragmented and the
// largest ping, and ARP on TAP) and has tshark dissect them with every
// checksum check on: nothing may be malformed or carry a bad checksum, and
// the replies must be there, reassembled where they were fragmented.
func TestTshark(t *testing.T) {
	requireE2E(t, "ping", "arping", "tshark", "sysctl")
	for _, mode := range []string{"tun", "tap"} {
		t.Run(mode, func(t *testing.T) {
			tap := mode == "tap"
			ns := newNS(t)
			v := startVhost(t, ns, "--mode", mode)
			capt := ns.startCapture(t, v.dev)
			pings := []struct {
				size string
				n    int
			}{{"56", 3}, {"8000", 2}, {"65507", 2}}
			total := 0
			for _, p := range pings {
				r := ns.ping(t, "-c", strconv.Itoa(p.n), "-i", "0.2", "-W", "2", "-s", p.size, vhostAddr)
				if r.received != p.n {
					t.Errorf("ping -s %s: %d received, want %d\n%s", p.size, r.received, p.n, r.stdout)
				}
				total += p.n
			}
			if tap {
				a := ns.arping(t, "-c", "2", "-w", "5", "-I", v.dev, vhostAddr)
				if a.sent == 0 || a.received != a.sent {
					t.Errorf("arping: %d probes sent, %d responses; want every probe answered\n%s", a.sent, a.received, a.stdout)
				}
			}
			file := capt.stop(t)

			if n := tsharkCount(t, file, badFilter); n != 0 {
				t.Errorf("tshark finds %d bad packets (%s):\n%s", n, badFilter, tsharkText(t, file, badFilter))
			}
			pkts := dissect(t, file)
			checkEchoedData(t, pkts, total, "")
			// Replies reassembled by tshark: ICMP length = 8 + ping's size.
			reassembled := map[int]int{}
			var arpReplies, ethReplies int
			for _, p := range pkts {
				if p.ipSrc == vhostAddr && p.ipLen > 1500 {
					t.Errorf("frame %d: packet from vhost of %d bytes, longer than the 1500-byte MTU", p.frame, p.ipLen)
				}
				if p.icmpType == 0 && p.ipSrc == vhostAddr {
					reassembled[p.reassembledLen]++
					if p.ethSrc == vhostMAC {
						ethReplies++
					}
				}
				if p.arpOp == 2 && p.arpSrcMAC == vhostMAC && p.arpSrcIP == vhostAddr {
					arpReplies++
				}
			}
			for _, tc := range []struct {
				size   string
				length int
			}{{"8000", 8008}, {"65507", 65515}} {
				if reassembled[tc.length] != 2 {
					t.Errorf("capture has %d reassembled echo replies of %d bytes (ping -s %s), want 2", reassembled[tc.length], tc.length, tc.size)
				}
			}
			if tap {
				if arpReplies < 1 {
					t.Errorf("capture has %d ARP replies %s is-at %s, want at least 1:\n%s", arpReplies, vhostAddr, vhostMAC, tsharkText(t, file, "arp"))
				}
				if ethReplies != total {
					t.Errorf("capture has %d echo replies from MAC %s, want %d", ethReplies, vhostMAC, total)
				}
			}
		})
	}
}

// TestTsharkFlagsCorruption proves the checks of TestTshark can fail:
// corrupted echo replies written to a pcap are flagged by tshark with the
// same filter, and an intact one is not.
func TestTsharkFlagsCorruption(t *testing.T) {
	requireE2E(t, "tshark")
	reply := func(t *testing.T) []byte {
		t.Helper()
		return serialize(t, ipv4(vhostAddr, hostAddr),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: 7, Seq: 1},
			gopacket.Payload("abcdefghijklmnopqrstuvwxyz012345"))
	}
	cases := []struct {
		name    string
		corrupt func(b []byte) []byte
		bad     bool
	}{
		{name: "intact", corrupt: func(b []byte) []byte { return b }, bad: false},
		{name: "bad_icmp_checksum", corrupt: func(b []byte) []byte { b[22] ^= 0xff; return b }, bad: true},
		{name: "bad_icmp_data", corrupt: func(b []byte) []byte { b[40] ^= 0x01; return b }, bad: true},
		{name: "bad_ip_checksum", corrupt: func(b []byte) []byte { b[10] ^= 0xff; return b }, bad: true},
		{name: "total_length_past_end", corrupt: func(b []byte) []byte {
			b[3] += 40
			fixIPChecksum(b, 20)
			return b
		}, bad: true},
		{name: "truncated_icmp", corrupt: func(b []byte) []byte {
			b = b[:24]
			b[2], b[3] = 0, 24
			fixIPChecksum(b, 20)
			return b
		}, bad: true},
		{name: "intact_again", corrupt: func(b []byte) []byte { return b }, bad: false},
	}
	// One file, frame i+1 is case i: tshark starts slowly, so it runs twice
	// in all rather than twice per case.
	var pkts [][]byte
	for _, tc := range cases {
		pkts = append(pkts, tc.corrupt(reply(t)))
	}
	file := filepath.Join(t.TempDir(), "replies.pcap")
	writePcap(t, file, pkts...)
	flagged := map[int]bool{}
	for _, r := range tsharkFields(t, file, badFilter, "frame.number") {
		n, _ := strconv.Atoi(r[0])
		flagged[n] = true
	}
	all := dissect(t, file)
	if len(all) != len(cases) {
		t.Fatalf("tshark dissects %d packets, want %d:\n%s", len(all), len(cases), tsharkText(t, file, ""))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if p := all[i]; p.ipSrc != vhostAddr {
				t.Errorf("frame %d not dissected as IPv4 from %s: %+v", i+1, vhostAddr, p)
			}
			if flagged[i+1] != tc.bad {
				t.Errorf("tshark flags %s: %v, want %v (%s):\n%s", tc.name, flagged[i+1], tc.bad, badFilter, tsharkText(t, file, "frame.number == "+strconv.Itoa(i+1)))
			}
		})
	}
}

// writePcap writes packets as a classic pcap file of raw IPv4 packets
// (LINKTYPE_RAW). It is written by hand because gopacket's pcapgo would
// pull golang.org/x/net into the module for twenty lines of format.
func writePcap(t *testing.T, file string, pkts ...[]byte) {
	t.Helper()
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, 0xa1b2c3d4) // magic, microseconds
	b = binary.LittleEndian.AppendUint16(b, 2)          // version 2.4
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = binary.LittleEndian.AppendUint32(b, 0) // thiszone
	b = binary.LittleEndian.AppendUint32(b, 0) // sigfigs
	b = binary.LittleEndian.AppendUint32(b, 65535)
	b = binary.LittleEndian.AppendUint32(b, uint32(layers.LinkTypeRaw))
	ts := time.Unix(1700000000, 0)
	for i, p := range pkts {
		b = binary.LittleEndian.AppendUint32(b, uint32(ts.Unix())+uint32(i))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
