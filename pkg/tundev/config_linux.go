//go:build linux

package tundev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Configure applies c to the kernel side of the device called name, in the
// calling thread's network namespace: MAC address (TAP only), MTU, addresses,
// then link up.
//
// IPv6 addresses are added with IFA_F_NODAD: the device is a point-to-point
// link to our own virtual host, so duplicate address detection would only
// delay the address (tentative addresses cannot be used) without finding
// anything.
func Configure(name string, c LinkConfig) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return linkError(name, err)
	}

	if c.HWAddr != nil {
		if err := checkHWAddr(c.HWAddr); err != nil {
			return fmt.Errorf("tundev: configure %s: set MAC %v: %w", name, c.HWAddr, err)
		}
		if len(link.Attrs().HardwareAddr) == 0 {
			return fmt.Errorf("tundev: configure %s: set MAC %v: a TUN device has no MAC address (use --mode tap, or drop the MAC)", name, c.HWAddr)
		}
		if err := netlink.LinkSetHardwareAddr(link, c.HWAddr); err != nil {
			return configError(name, fmt.Sprintf("set MAC %v", c.HWAddr), err,
				"use a unicast address, e.g. 02:00:00:00:00:01")
		}
	}

	if c.MTU != 0 && c.MTU != link.Attrs().MTU {
		if c.MTU < 68 || c.MTU > 65535 {
			return fmt.Errorf("tundev: configure %s: MTU %d out of range (TUN/TAP allows 68 to 65535)", name, c.MTU)
		}
		if err := netlink.LinkSetMTU(link, c.MTU); err != nil {
			return configError(name, fmt.Sprintf("set MTU %d", c.MTU), err, "TUN/TAP allows 68 to 65535")
		}
	}

	for _, p := range c.Addrs {
		addr, err := nlAddr(p)
		if err != nil {
			return fmt.Errorf("tundev: configure %s: add address %v: %w", name, p, err)
		}
		err = netlink.AddrAdd(link, addr)
		if errors.Is(err, unix.EEXIST) {
			continue // already there: Configure is idempotent
		}
		if err != nil {
			hint := "check the address and prefix length"
			if p.Addr().Is6() {
				hint = "is IPv6 disabled? check sysctl net.ipv6.conf." + name + ".disable_ipv6 and that the MTU is at least 1280"
			}
			return configError(name, fmt.Sprintf("add address %v", p), err, hint)
		}
	}

	if c.Up {
		if err := netlink.LinkSetUp(link); err != nil {
			return configError(name, "set link up", err, "")
		}
	}
	return nil
}

// SetGSOMaxSize bounds the size of the segmentation-offload packets the
// kernel builds for the device, so that they fit a relay frame.
func SetGSOMaxSize(name string, size int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return linkError(name, err)
	}
	if err := netlink.LinkSetGSOMaxSize(link, size); err != nil {
		return fmt.Errorf("tundev: configure %s: set gso_max_size %d: %w", name, size, err)
	}
	return nil
}

// LinkMTU returns the MTU of the interface called name.
func LinkMTU(name string) (int, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return 0, linkError(name, err)
	}
	return link.Attrs().MTU, nil
}

func linkError(name string, err error) error {
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return fmt.Errorf("tundev: configure %s: no such device (create it first, or check the name: ip link show)", name)
	}
	return fmt.Errorf("tundev: configure %s: %w", name, err)
}

// configError explains a failed netlink change. hint is used for errors
// other than the permission ones.
func configError(name, what string, err error, hint string) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES) && hint == "":
		hint = "needs CAP_NET_ADMIN"
	case errors.Is(err, unix.ENODEV):
		hint = "the device went away; is the program that created it still running?"
	}
	if hint == "" {
		return fmt.Errorf("tundev: configure %s: %s: %w", name, what, err)
	}
	return fmt.Errorf("tundev: configure %s: %s: %w (%s)", name, what, err, hint)
}

func checkHWAddr(mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("want a 6-byte Ethernet address, got %d bytes", len(mac))
	}
	if mac[0]&1 != 0 {
		return errors.New("multicast address (use a unicast address, e.g. 02:00:00:00:00:01)")
	}
	if mac[0]|mac[1]|mac[2]|mac[3]|mac[4]|mac[5] == 0 {
		return errors.New("all-zero address (use e.g. 02:00:00:00:00:01)")
	}
	return nil
}

func nlAddr(p netip.Prefix) (*netlink.Addr, error) {
	if !p.IsValid() {
		return nil, errors.New("invalid prefix")
	}
	a := p.Addr()
	bits := p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	if a.Zone() != "" {
		return nil, fmt.Errorf("zone %q not allowed (the device is the zone)", a.Zone())
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	return addr, nil
}
