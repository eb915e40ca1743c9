package relay

import "testing"

// TestOffloadNegotiation: on a keyed session offload is used only when both
// ends offer it; on a plain one it is what this end's Config asserts.
func TestOffloadNegotiation(t *testing.T) {
	tests := []struct {
		client, server bool
		want           bool // keyed: both ends agree on this
	}{
		{false, false, false},
		{true, false, false},
		{false, true, false},
		{true, true, true},
	}
	for _, v := range variants {
		for _, tc := range tests {
			ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
			ccfg.Offload, scfg.Offload = tc.client, tc.server
			c, s, _ := pair(t, v, ccfg, scfg)
			wantC, wantS := tc.want, tc.want
			if !v.keyed {
				wantC, wantS = tc.client, tc.server
			}
			if got := c.Offload(); got != wantC {
				t.Errorf("%s client offload %v, server %v: client Offload() = %v, want %v", v.name, tc.client, tc.server, got, wantC)
			}
			if got := s.Offload(); got != wantS {
				t.Errorf("%s client offload %v, server %v: server Offload() = %v, want %v", v.name, tc.client, tc.server, got, wantS)
			}
			c.Close()
			s.Close()
		}
	}
}

// TestUDPPlainOffloadPeer: a plain UDP server with offload takes its peer
// from a frame with a virtio-net header in front of the packet.
func TestUDPPlainOffloadPeer(t *testing.T) {
	v := variants[2]
	ccfg, scfg := config(t, v, 1500), config(t, v, 1500)
	ccfg.Offload, scfg.Offload = true, true
	c, s, _ := pair(t, v, ccfg, scfg) // pair fails unless the server takes the client's first frame
	if s.Peer() == nil {
		t.Fatal("server has no peer")
	}
	c.Close()
}
