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

// AddRoutes adds a route through the device called dev to each prefix
// (ip route add PREFIX dev DEV). A route that is there already is left
// alone and not returned; the routes added are returned, even with an
// error, so that the caller can remove them.
func AddRoutes(dev string, prefixes []netip.Prefix) ([]netip.Prefix, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("route via %s: %w", dev, err)
	}
	var added []netip.Prefix
	for _, p := range prefixes {
		r := route(link, p)
		err := netlink.RouteAdd(r)
		if errors.Is(err, unix.EEXIST) {
			// Linux says EEXIST for the same prefix through any device:
			// only one through ours is "already there".
			if other := otherRouteDev(r); other != "" {
				return added, fmt.Errorf("add route %v dev %s: a route to %v already goes through %s, so the kernel would send "+
					"its packets there (ip route show %v); delete it or give the lab other addresses", p, dev, p, other, p)
			}
			continue
		}
		if err != nil {
			return added, routeError(dev, p, err)
		}
		added = append(added, p)
	}
	return added, nil
}

// otherRouteDev returns the name of a device, not r's, that the main
// table routes r's destination through; "" if none (or on error).
func otherRouteDev(r *netlink.Route) string {
	family := netlink.FAMILY_V4
	if r.Dst.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Dst: r.Dst}, netlink.RT_FILTER_DST)
	if err != nil {
		return ""
	}
	for _, x := range routes {
		if x.LinkIndex == r.LinkIndex {
			return ""
		}
	}
	for _, x := range routes {
		if l, err := netlink.LinkByIndex(x.LinkIndex); err == nil {
			return l.Attrs().Name
		}
		if x.Gw != nil {
			return "gateway " + x.Gw.String()
		}
	}
	return ""
}

// DeleteRoutes removes the routes AddRoutes added.
func DeleteRoutes(dev string, prefixes []netip.Prefix) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("route via %s: %w", dev, err)
	}
	var errs []error
	for _, p := range prefixes {
		if err := netlink.RouteDel(route(link, p)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %v dev %s: %w", p, dev, err))
		}
	}
	return errors.Join(errs...)
}

// route is a route to p through link: scope link for IPv4, as ip route
// add gives a route without a gateway; IPv6 routes have no scope.
func route(link netlink.Link, p netip.Prefix) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
	}
	if p.Addr().Is4() {
		r.Scope = netlink.SCOPE_LINK
	}
	return r
}

func routeError(dev string, p netip.Prefix, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		hint = " (needs CAP_NET_ADMIN)"
	case p.Addr().Is6():
		hint = " (is IPv6 off on the device? check its MTU is at least 1280 and sysctl net.ipv6.conf." + dev + ".disable_ipv6)"
	}
	return fmt.Errorf("add route %v dev %s: %w%s", p, dev, err, hint)
}
