//go:build linux

package test

import (
	"context"
	"encoding/binary"
	"io"

	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestRelaySimpletunFraming speaks simpletun's wire format by hand to a
// plain TCP relay whose far end is the virtual host: a 2-byte big-endian
// length, then the IP packet. Frames sent whole, two in one write, and one
// split across writes (short reads on the relay's side) are all answered,
// and every answer comes back framed the same way.
func TestRelaySimpletunFraming(t *testing.T) {
	requireE2E(t)
	n := newRelayNet(t)
	b := startServer(t, n.b, tunnel{transport: "tcp", mode: "tun"}, "--addr", overlayB)
	c := dialIn(t, n.a, "tcp", relayServer)

	frame := func(seq uint16) []byte {
		p := serialize(t, append([]gopacket.SerializableLayer{ipv4(overlayA, overlayB)}, echoRequest(0x5157, seq)...)...)
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...)
	}
	f1, f2, f3, f4 := frame(1), frame(2), frame(3), frame(4)
	writes := [][]byte{f1, append(append([]byte(nil), f2...), f3...), f4[:1], f4[1:7], f4[7:]}
	for _, w := range writes {
		if _, err := c.Write(w); err != nil {
			t.Fatalf("write to the relay: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // keep the split writes separate segments
	}

	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for want := uint16(1); want <= 4; want++ {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			t.Fatalf("reply %d: read the length: %v\nB:\n%s", want, err, b.log)
		}
		p := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, p); err != nil {
			t.Fatalf("reply %d: read %d bytes: %v", want, len(p), err)
		}
		var ip layers.IPv4
		var icmp layers.ICMPv4
		if err := ip.DecodeFromBytes(p, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("reply %d is not IPv4: %v", want, err)
		}
		if err := icmp.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("reply %d is not ICMP: %v", want, err)
		}
		if int(ip.Length) != len(p) || ip.SrcIP.String() != overlayB || ip.DstIP.String() != overlayA ||
			icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Id != 0x5157 || icmp.Seq != want {
			t.Errorf("reply %d: %v > %v %v id=%#x seq=%d, %d of %d bytes; want an echo reply %s > %s id=0x5157 seq=%d",
				want, ip.SrcIP, ip.DstIP, icmp.TypeCode, icmp.Id, icmp.Seq, ip.Length, len(p), overlayB, overlayA, want)
		}
	}
	c.Close()
	cb := b.stopRelay(t, "replied")
	if cb["replied"] != 4 || cb["frames_in"] != 4 || cb["frames_out"] != 4 {
		t.Errorf("B: replied %d, frames_in %d, frames_out %d; want 4 each", cb["replied"], cb["frames_in"], cb["frames_out"])
	}
}

// TestRelaySocatInterop: socat's UDP TUN tunnel in A talks to a plain UDP
// vhost relay in B (one frame per datagram): pings cross both ways.
func TestRelaySocatInterop(t *testing.T) {
	requireE2E(t, "ping", "socat")
	n := newRelayNet(t)
	b := startServer(t, n.b, tunnel{transport: "udp", mode: "tun"}, relayDevice(overlayB)...)

	ctx, cancel := context.WithCancel(context.Background())
	socat := n.a.command(ctx, "socat", "UDP:"+relayServer+",bind="+underlayA+":"+relayPort,
		"TUN:"+overlayA+"/24,tun-name=st0,iff-up,iff-no-pi")
	var stderr strings.Builder
	socat.Stderr = &stderr
	if err := socat.Start(); err != nil {
		cancel()
		t.Fatalf("start socat: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = socat.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for !n.a.linkExists(t, "st0") {
		if time.Now().After(deadline) {
			t.Fatalf("socat's st0 did not appear in A: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// B learns its peer from the first datagram: ping from socat's side.
	pingAll(t, n.a, overlayB, 3)
	pingAll(t, n.b, overlayA, 3)
	pingAll(t, n.a, overlayB, 2, "-s", "1400")
	cb := b.stopRelay(t)
	if cb["frames_in"] < 8 || cb["frames_out"] < 8 {
		t.Errorf("B: frames_in %d, frames_out %d; want at least 8 each", cb["frames_in"], cb["frames_out"])
	}
	checkNoDrops(t, "B", cb, "drop_no_peer")
}

// TestRelayOffload: with --offload on both ends of a keyed TCP tunnel, a
// TCP transfer crosses as segmentation-offload super-packets (frames far
// larger than the 1500-byte MTU) and arrives whole; with --offload on one
// end only, the handshake turns it off and the transfer still works.
func TestRelayOffload(t *testing.T) {
	requireE2E(t, "ping", "iperf3")
	for _, tc := range []struct {
		name          string
		offA, offB    bool
		wantSuperPkts bool
	}{
		{"both", true, true, true},
		{"client only", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := genKey(t, t.TempDir(), "relay.key")
			tn := tunnel{transport: "tcp", mode: "tun", key: key}
			n := newRelayNet(t)
			flag := func(on bool) []string {
				if on {
					return []string{"--offload"}
				}
				return nil
			}
			b := startServer(t, n.b, tn, append(relayDevice(overlayB), flag(tc.offB)...)...)
			a := startRelay(t, n.a, "relay: device ready", tn.flags(append(append([]string{"--connect", relayServer}, relayDevice(overlayA)...), flag(tc.offA)...)...)...)
			a.waitConnected(t, 1)
			pingAll(t, n.a, overlayB, 2)

			ctx, cancel := context.WithCancel(context.Background())
			server := n.b.command(ctx, "iperf3", "-s", "-1", "-B", overlayB)
			if err := server.Start(); err != nil {
				cancel()
				t.Fatalf("start iperf3 -s: %v", err)
			}
			t.Cleanup(func() { cancel(); _ = server.Wait() })
			time.Sleep(300 * time.Millisecond)
			const bytes = 64_000_000
			r := n.a.run(t, 60*time.Second, "iperf3", "-c", overlayB, "-n", strconv.Itoa(bytes), "-f", "m")
			if r.code != 0 || !strings.Contains(r.stdout, "receiver") {
				t.Fatalf("iperf3 through the tunnel: %s", r)
			}
			a.stopRelay(t)
			cb := b.stopRelay(t)
			avg := cb["bytes_in"] / max(cb["frames_in"], 1)
			// iperf3 ends when its sender has written -n bytes, which may be
			// a little before the last of them crossed: the bulk must have.
			if cb["bytes_in"] < bytes*9/10 {
				t.Errorf("B: bytes_in %d, want at least 90%% of the %d sent", cb["bytes_in"], bytes)
			}
			if super := avg > 4000; super != tc.wantSuperPkts {
				t.Errorf("B: %d frames, %d bytes in: %d bytes a frame; super-packets %v, want %v", cb["frames_in"], cb["bytes_in"], avg, super, tc.wantSuperPkts)
			}
			checkNoDrops(t, "B", cb, "drop_no_peer")

		})
	}
}
