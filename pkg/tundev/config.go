package tundev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/user"
	"strconv"
	"strings"
)

// DefaultName is the name pattern used when Config.Name is empty. The kernel
// replaces %d with the lowest free number.
const DefaultName = "vhost%d"

// MaxNameLen is the longest interface name the kernel accepts (IFNAMSIZ-1).
const MaxNameLen = 15

// Config says which device Open creates or attaches to.
type Config struct {
	// Name is the interface name. "" means DefaultName. It may contain one
	// %d, which the kernel replaces with the lowest free number; Name() on
	// the opened device reports the result.
	Name string
	// Mode is TUN (IP packets) or TAP (Ethernet frames).
	Mode Mode
	// MultiQueue opens one queue of a multi-queue device (IFF_MULTI_QUEUE).
	MultiQueue bool
	// PacketInfo keeps the kernel's 4-byte packet information header in
	// front of every packet. The default (false) sets IFF_NO_PI.
	PacketInfo bool
	// VnetHdr puts a virtio-net header (VnetHdrLen bytes) in front of every
	// packet read and written (IFF_VNET_HDR). With SetOffload the kernel
	// then hands over TCP segmentation-offload super-packets of up to 64 KiB
	// and packets whose checksum is still to be completed, and accepts them.
	VnetHdr bool
}

// VnetHdrLen is the size of the virtio-net header (struct virtio_net_hdr)
// in front of each packet of a device opened with Config.VnetHdr.
const VnetHdrLen = 10

// Fields of the virtio-net header (include/uapi/linux/virtio_net.h).
const (
	VnetFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum at csum_start+csum_offset still to do
	VnetGSONone       = 0 // VIRTIO_NET_HDR_GSO_NONE: gso_type of an ordinary packet
)

// PersistConfig describes a persistent device for CreatePersistent.
type PersistConfig struct {
	// Name is the interface name; "" means DefaultName, and %d is allowed.
	Name string
	// Mode is TUN or TAP.
	Mode Mode
	// MultiQueue creates a multi-queue device; every later Open of it must
	// set Config.MultiQueue too.
	MultiQueue bool
	// Owner and Group, when not -1, let that user or group attach to the
	// device without CAP_NET_ADMIN (TUNSETOWNER, TUNSETGROUP). Note that the
	// zero value 0 means root, not "unset".
	Owner, Group int
}

// LinkConfig is the kernel-side configuration Configure applies to a device.
type LinkConfig struct {
	// Addrs are the kernel-side addresses, e.g. 10.0.0.1/24. An address that
	// is already present is not an error.
	Addrs []netip.Prefix
	// MTU is the link MTU; 0 leaves it unchanged.
	MTU int
	// HWAddr is the kernel-side MAC address of a TAP device; nil leaves it
	// unchanged. A TUN device has none.
	HWAddr net.HardwareAddr
	// Up sets the link up after everything else is configured.
	Up bool
}

// checkName reports whether the kernel would accept name as an interface name
// (or name pattern), with an error saying what is wrong. It mirrors the
// kernel's dev_valid_name and dev_alloc_name checks so that the user gets a
// sentence instead of EINVAL.
func checkName(name string) error {
	if name == "" {
		return errors.New("tundev: empty interface name")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("tundev: name %q is %d bytes, longer than the %d the kernel allows", name, len(name), MaxNameLen)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("tundev: name %q is not allowed as an interface name", name)
	}
	if i := strings.IndexAny(name, "/: \t\n\v\f\r"); i >= 0 {
		return fmt.Errorf("tundev: name %q contains %q, which the kernel does not allow in interface names", name, name[i])
	}
	if i := strings.IndexByte(name, '%'); i >= 0 {
		if !strings.HasPrefix(name[i:], "%d") || strings.IndexByte(name[i+2:], '%') >= 0 {
			return fmt.Errorf("tundev: name %q: the only pattern allowed is a single %%d", name)
		}
	}
	return nil
}

// isPattern reports whether name is a %d pattern rather than a fixed name.
func isPattern(name string) bool { return strings.IndexByte(name, '%') >= 0 }

func checkMode(m Mode) error {
	if m != TUN && m != TAP {
		return fmt.Errorf("tundev: invalid mode %v (want tun or tap)", m)
	}
	return nil
}

// LookupOwner resolves a user name or numeric uid for PersistConfig.Owner.
// "" returns -1 (unset).
func LookupOwner(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	if id, ok := parseID(s); ok {
		return id, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return 0, fmt.Errorf("tundev: owner %q: no such user (give a user name from /etc/passwd or a numeric uid): %w", s, err)
		}
		return 0, fmt.Errorf("tundev: owner %q: %w", s, err)
	}
	id, ok := parseID(u.Uid)
	if !ok {
		return 0, fmt.Errorf("tundev: owner %q: uid %q is not a valid number", s, u.Uid)
	}
	return id, nil
}

// LookupGroup resolves a group name or numeric gid for PersistConfig.Group.
// "" returns -1 (unset).
func LookupGroup(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	if id, ok := parseID(s); ok {
		return id, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			return 0, fmt.Errorf("tundev: group %q: no such group (give a group name from /etc/group or a numeric gid): %w", s, err)
		}
		return 0, fmt.Errorf("tundev: group %q: %w", s, err)
	}
	id, ok := parseID(g.Gid)
	if !ok {
		return 0, fmt.Errorf("tundev: group %q: gid %q is not a valid number", s, g.Gid)
	}
	return id, nil
}

// parseID parses a numeric uid or gid. (uid_t)-1 is excluded: the kernel
// treats it as "no owner".
func parseID(s string) (int, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 1<<32-1 {
		return 0, false
	}
	return int(v), true
}
