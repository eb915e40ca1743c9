//go:build linux

package test

import (
	"path/filepath"
	"testing"
)

// TestPcap runs vhost with --pcap and reads the file back with tshark: both
// directions are there, in order, with the link type of the mode (raw IP on
// TUN, Ethernet on TAP), and nothing is malformed; a fragmented exchange is
// recorded fragment by fragment.
func TestPcap(t *testing.T) {
	requireE2E(t, "ping", "tshark")
	for _, tc := range []struct {
		mode string
		// filters and how many packets each must match
		want map[string]int
	}{
		{"tun", map[string]int{
			"icmp.type == 8 && ip.src == 10.0.0.1 && ip.dst == 10.0.0.2": 3,
			"icmp.type == 0 && ip.src == 10.0.0.2 && ip.dst == 10.0.0.1": 3,
			"eth":                                    0,
			"ip.flags.mf == 1 && ip.src == 10.0.0.2": 2, // 3000-byte reply: 3 fragments at MTU 1500
			"icmp.type == 0 && ip.reassembled.length == 3008": 1,
		}},
		{"tap", map[string]int{
			"arp.opcode == 1 && arp.src.proto_ipv4 == 10.0.0.2 && arp.dst.proto_ipv4 == 10.0.0.2": 1, // the announcement
			"icmp.type == 8 && ip.src == 10.0.0.1 && ip.dst == 10.0.0.2":                          3,
			"icmp.type == 0 && eth.src == 02:00:0a:00:00:02":                                      3,
			"arp.opcode == 2 && arp.src.hw_mac == 02:00:0a:00:00:02":                              1,
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ns := newNS(t)
			file := filepath.Join(t.TempDir(), "vhost.pcap")
			v := startVhost(t, ns, "--mode", tc.mode, "--pcap", file)
			pingAll(t, ns, vhostAddr, 2)
			pingAll(t, ns, vhostAddr, 1, "-s", "3000")
			v.stop(t)

			if n := tsharkCount(t, file, badFilter); n != 0 {
				t.Errorf("%d broken packets in the capture:\n%s", n, tsharkText(t, file, badFilter))
			}
			for filter, want := range tc.want {
				if got := tsharkCount(t, file, filter); got != want {
					t.Errorf("%q: %d packets, want %d\n%s", filter, got, want, tsharkText(t, file, "frame"))
				}
			}
		})
	}
}
