//go:build linux

package tundev

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// NewSocketpair returns a twin of a real device that needs no privileges: dev
// is an *FD on one end of a SOCK_SEQPACKET unix socketpair, so its Read and
// Write run exactly the non-blocking fd code of a TUN/TAP queue, and peer is
// the other end, on which each Read or Write is one whole packet. Close both.
func NewSocketpair(mode Mode, name string) (dev *FD, peer *os.File, err error) {
	if err := checkMode(mode); err != nil {
		return nil, nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("tundev: socketpair: %w", err)
	}
	// newFD takes fds[0] even on error.
	dev, err = newFD(fds[0], name, mode, 0)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return dev, os.NewFile(uintptr(fds[1]), name+"-peer"), nil
}
