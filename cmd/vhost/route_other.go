//go:build !linux

package main

import (
	"errors"
	"net/netip"
	"runtime"
)

var errRoutes = errors.New("routes: not supported on " + runtime.GOOS + " (TUN/TAP devices need Linux)")

// addRoutes fails: TUN/TAP devices need Linux.
func addRoutes(dev string, prefixes []netip.Prefix) ([]netip.Prefix, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	return nil, errRoutes
}

// delRoutes fails: TUN/TAP devices need Linux.
func delRoutes(dev string, prefixes []netip.Prefix) error { return errRoutes }
