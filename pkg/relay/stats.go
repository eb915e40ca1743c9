package relay

import "sync/atomic"

// Stats counts a session's traffic and, for every reason a frame or datagram
// is dropped, how many were. Sessions update it atomically; one Stats may be
// shared by several sessions (for example successive sessions of a server).
type Stats struct {
	FramesIn  atomic.Uint64 // frames delivered by Read
	BytesIn   atomic.Uint64 // their payload bytes
	FramesOut atomic.Uint64 // frames sent by Write
	BytesOut  atomic.Uint64 // their payload bytes

	Handshakes    atomic.Uint64 // keyed handshakes completed
	KeepalivesIn  atomic.Uint64 // authenticated empty keepalives received (UDP)
	KeepalivesOut atomic.Uint64 // keepalives sent (UDP)
	PeerChanges   atomic.Uint64 // times a UDP server took a new peer address

	DropTooLarge    atomic.Uint64 // length prefix or datagram larger than MaxFrame
	DropBadFrame    atomic.Uint64 // zero length, truncated, unknown type, undersized
	DropAuthFailed  atomic.Uint64 // AEAD open failed: forged, corrupted or stale keys
	DropReplay      atomic.Uint64 // counter seen before or behind the replay window
	DropWrongPeer   atomic.Uint64 // datagram from an address that is not the peer
	DropHandshake   atomic.Uint64 // handshake message that failed (wrong key, garbage, mode)
	DropNoPeer      atomic.Uint64 // Write before a UDP server had a peer to send to
	DropUnreachable atomic.Uint64 // Write refused by the kernel (ICMP unreachable)

	// Counted by Run, on the way to the device.
	DropDeviceMTU atomic.Uint64 // frame larger than the device's MTU (plus 14 on TAP)
	DropWrongMode atomic.Uint64 // not an IP packet on TUN, shorter than an Ethernet header on TAP
	DropOffload   atomic.Uint64 // offload packet from the device while the peer takes none
}

// Counter is one named value of a Stats snapshot.
type Counter struct {
	Name  string
	Value uint64
}

// Snapshot returns every counter with a stable name, in a fixed order.
func (s *Stats) Snapshot() []Counter {
	return []Counter{
		{"frames_in", s.FramesIn.Load()},
		{"bytes_in", s.BytesIn.Load()},
		{"frames_out", s.FramesOut.Load()},
		{"bytes_out", s.BytesOut.Load()},
		{"handshakes", s.Handshakes.Load()},
		{"keepalives_in", s.KeepalivesIn.Load()},
		{"keepalives_out", s.KeepalivesOut.Load()},
		{"peer_changes", s.PeerChanges.Load()},
		{"drop_too_large", s.DropTooLarge.Load()},
		{"drop_bad_frame", s.DropBadFrame.Load()},
		{"drop_auth_failed", s.DropAuthFailed.Load()},
		{"drop_replay", s.DropReplay.Load()},
		{"drop_wrong_peer", s.DropWrongPeer.Load()},
		{"drop_handshake_failed", s.DropHandshake.Load()},
		{"drop_no_peer", s.DropNoPeer.Load()},
		{"drop_unreachable", s.DropUnreachable.Load()},
		{"drop_device_mtu", s.DropDeviceMTU.Load()},
		{"drop_wrong_mode", s.DropWrongMode.Load()},
		{"drop_offload", s.DropOffload.Load()},
	}
}
