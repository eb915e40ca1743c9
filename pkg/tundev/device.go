// Package tundev opens, creates, attaches to, configures and deletes Linux
// TUN/TAP devices, and provides in-memory twins of them for tests.
package tundev

import (
	"errors"
	"fmt"
)

// Mode says whether a device carries raw IP packets (TUN) or Ethernet frames (TAP).
type Mode int

const (
	TUN Mode = iota + 1
	TAP
)

func (m Mode) String() string {
	switch m {
	case TUN:
		return "tun"
	case TAP:
		return "tap"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "tun" or "tap".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "tun":
		return TUN, nil
	case "tap":
		return TAP, nil
	}
	return 0, fmt.Errorf("tundev: unknown mode %q (want tun or tap)", s)
}

// Headroom is the minimum offset callers should leave in front of every
// packet buffer so that a later layer (relay framing, a crypto header) can
// write its header in place without a copy.
const Headroom = 32

// MaxPacket is the largest packet or frame a device read can return:
// a 64 KiB IP datagram plus an Ethernet header.
const MaxPacket = 65535 + 14

// Device is a TUN/TAP device, or a twin of one.
//
// Read blocks until at least one packet is available, then reads more until the
// device would block or len(bufs) packets were read. Packet i is placed at
// bufs[i][offset:] and its length stored in sizes[i]. It returns the number
// of packets read. After Close, Read returns an error wrapping ErrClosed.
//
// Write writes bufs[i][offset:] as one packet each and returns how many were
// written.
type Device interface {
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	Write(bufs [][]byte, offset int) (int, error)
	// Name is the interface name (the kernel's choice for "%d" patterns).
	Name() string
	// Mode is TUN or TAP.
	Mode() Mode
	Close() error
}

// ErrClosed is returned (wrapped) by Read and Write on a closed device.
var ErrClosed = errors.New("tundev: device closed")

// ErrModeMismatch is wrapped by Open's error when a device of the requested
// name exists but does not match: it is TAP and TUN was asked for (or the
// reverse), its multi-queue setting differs, or it is not a TUN/TAP device.
// Such errors also wrap unix.EINVAL, which the kernel would have returned.
var ErrModeMismatch = errors.New("tundev: device mode mismatch")

// closedError is the error of a Read or Write on a closed device.
type closedError struct{ op, name string }

func (e *closedError) Error() string { return "tundev: " + e.op + " " + e.name + ": device closed" }
func (e *closedError) Unwrap() error { return ErrClosed }

// ErrDeviceGone is returned (wrapped) by Read and Write when the device was
// deleted under them (ip link del, or its network namespace removed).
var ErrDeviceGone = errors.New("the device is gone (deleted, or its network namespace removed)")
