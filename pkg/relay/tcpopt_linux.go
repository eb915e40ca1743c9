package relay

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var errConnReset error = syscall.ECONNRESET

// setUserTimeout sets TCP_USER_TIMEOUT: the kernel gives up on a connection
// whose sent data stays unacknowledged for d (keepalives only probe an idle
// one).
func setUserTimeout(tc *net.TCPConn, d time.Duration) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	})
}
