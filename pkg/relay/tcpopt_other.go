//go:build !linux

package relay

import (
	"net"
	"syscall"
	"time"
)

var errConnReset error = syscall.ECONNRESET

func setUserTimeout(*net.TCPConn, time.Duration) {}
