//go:build !linux

package tundev

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
)

var errNotSupported = errors.New("tundev: not supported on " + runtime.GOOS + " (TUN/TAP devices need Linux)")

// FD is an open TUN/TAP queue. On this system it cannot be opened.
type FD struct{}

var _ Device = (*FD)(nil)

func (*FD) Read(bufs [][]byte, sizes []int, offset int) (int, error) { return 0, errNotSupported }
func (*FD) Write(bufs [][]byte, offset int) (int, error)             { return 0, errNotSupported }
func (*FD) Name() string                                             { return "" }
func (*FD) Mode() Mode                                               { return 0 }
func (*FD) Flags() uint16                                            { return 0 }
func (*FD) Close() error                                             { return nil }

// Open returns an error: TUN/TAP devices need Linux.
func Open(cfg Config) (*FD, error) { return nil, errNotSupported }

// OpenQueues returns an error: TUN/TAP devices need Linux.
func OpenQueues(cfg Config, n int) ([]*FD, error) { return nil, errNotSupported }

// CreatePersistent returns an error: TUN/TAP devices need Linux.
func CreatePersistent(cfg PersistConfig) (string, error) { return "", errNotSupported }

// DeletePersistent returns an error: TUN/TAP devices need Linux.
func DeletePersistent(name string) error { return errNotSupported }

// Exists reports false: TUN/TAP devices need Linux.
func Exists(name string) bool { return false }

// Configure returns an error: TUN/TAP devices need Linux.
func Configure(name string, c LinkConfig) error { return errNotSupported }

// LinkMTU returns an error: TUN/TAP devices need Linux.
func LinkMTU(name string) (int, error) { return 0, errNotSupported }

// NewSocketpair returns an error: the socketpair twin needs Linux.
func NewSocketpair(mode Mode, name string) (*FD, *os.File, error) {
	return nil, nil, errNotSupported
}

// SetGSOMaxSize returns an error: TUN/TAP devices need Linux.
func SetGSOMaxSize(name string, size int) error { return errNotSupported }

// AddRoutes fails: TUN/TAP devices need Linux.
func AddRoutes(dev string, prefixes []netip.Prefix) ([]netip.Prefix, error) {
	return nil, errNotSupported
}

// DeleteRoutes fails: TUN/TAP devices need Linux.
func DeleteRoutes(dev string, prefixes []netip.Prefix) error { return errNotSupported }
