//go:build linux

package tundev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Every test here that touches a real device calls enterNetns first: devices
// are created in a throwaway namespace, never in the host's own.

func openT(t *testing.T, cfg Config) *FD {
	t.Helper()
	dev, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

// waitGone waits until the interface called name has gone: the kernel
// removes a transient device when its last queue closes.
func waitGone(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(blockTimeout)
	for Exists(name) {
		if time.Now().After(deadline) {
			t.Fatalf("device %s still exists %v after it should have gone", name, blockTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tuntapLink(t *testing.T, name string) *netlink.Tuntap {
	t.Helper()
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("netlink.LinkByName(%s): %v", name, err)
	}
	tt, ok := link.(*netlink.Tuntap)
	if !ok {
		t.Fatalf("%s is a %s link, want tuntap", name, link.Type())
	}
	return tt
}

func TestOpenNameErrors(t *testing.T) {
	// These fail before any system call, so they need no namespace.
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"too long", Config{Name: "vhtd-name-toolong", Mode: TUN},
			`tundev: name "vhtd-name-toolong" is 17 bytes, longer than the 15 the kernel allows`},
		{"slash", Config{Name: "vh/0", Mode: TUN},
			`tundev: name "vh/0" contains '/', which the kernel does not allow in interface names`},
		{"space", Config{Name: "vh 0", Mode: TAP},
			`tundev: name "vh 0" contains ' ', which the kernel does not allow in interface names`},
		{"dot", Config{Name: ".", Mode: TUN}, `tundev: name "." is not allowed as an interface name`},
		{"two patterns", Config{Name: "vh%d%d", Mode: TUN}, `tundev: name "vh%d%d": the only pattern allowed is a single %d`},
		{"bad pattern", Config{Name: "vh%s", Mode: TUN}, `tundev: name "vh%s": the only pattern allowed is a single %d`},
		{"no mode", Config{Name: "vh0"}, `tundev: invalid mode Mode(0) (want tun or tap)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dev, err := Open(tc.cfg)
			if err == nil {
				dev.Close()
				t.Fatalf("Open(%+v) succeeded, want error %q", tc.cfg, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Open(%+v) error = %q, want %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestOpenTransient(t *testing.T) {
	for _, mode := range []Mode{TUN, TAP} {
		t.Run(mode.String(), func(t *testing.T) {
			enterNetns(t)
			dev, err := Open(Config{Name: "vhtd%d", Mode: mode})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer dev.Close()
			name := dev.Name()
			if name == "vhtd%d" || !strings.HasPrefix(name, "vhtd") {
				t.Fatalf("Name() = %q, want the kernel's name for vhtd%%d", name)
			}
			if dev.Mode() != mode {
				t.Errorf("Mode() = %v, want %v", dev.Mode(), mode)
			}
			if !Exists(name) {
				t.Fatalf("Exists(%s) = false after Open", name)
			}
			tt := tuntapLink(t, name)
			if tt.NonPersist != true {
				t.Errorf("%s is persistent, want transient", name)
			}
			if err := dev.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			waitGone(t, name)
		})
	}
}

func TestRealCloseUnblocksRead(t *testing.T) {
	enterNetns(t)
	dev := openT(t, Config{Name: "vhtd0", Mode: TUN})
	checkCloseUnblocksRead(t, dev)
	waitGone(t, "vhtd0")
}

func TestConfigure(t *testing.T) {
	enterNetns(t)
	dev := openT(t, Config{Name: "vhtd0", Mode: TUN})
	cfg := LinkConfig{
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24"), netip.MustParsePrefix("fd00:9::1/64")},
		MTU:   1400,
		Up:    true,
	}
	if err := Configure("vhtd0", cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	// Again: addresses already present are not an error.
	if err := Configure("vhtd0", cfg); err != nil {
		t.Fatalf("second Configure: %v", err)
	}

	link := tuntapLink(t, "vhtd0")
	if link.Attrs().MTU != 1400 {
		t.Errorf("MTU = %d, want 1400", link.Attrs().MTU)
	}
	if mtu, err := LinkMTU("vhtd0"); err != nil || mtu != 1400 {
		t.Errorf("LinkMTU = %d, %v, want 1400, nil", mtu, err)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("link flags %v, want up", link.Attrs().Flags)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("AddrList: %v", err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	for _, want := range []string{"10.9.0.1/24", "fd00:9::1/64"} {
		if !slices.Contains(got, want) {
			t.Errorf("addresses %v, want %s among them", got, want)
		}
	}

	// Kernel to device: a datagram routed out of the TUN shows up in Read.
	c, err := net.Dial("udp4", "10.9.0.2:9")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	payload := []byte("vhost tundev test")
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("udp write: %v", err)
	}
	pkt := readUntil(t, dev, func(p []byte) bool {
		return len(p) >= 28 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP &&
			bytes.Equal(p[16:20], []byte{10, 9, 0, 2}) && bytes.HasSuffix(p, payload)
	})
	if !bytes.Equal(pkt[12:16], []byte{10, 9, 0, 1}) {
		t.Errorf("packet source %v, want 10.9.0.1", net.IP(pkt[12:16]))
	}

	// Device to kernel: a datagram written to the TUN reaches a socket.
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 9, 0, 1)})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	port := l.LocalAddr().(*net.UDPAddr).Port
	out := udp4Packet(Headroom, [4]byte{10, 9, 0, 2}, [4]byte{10, 9, 0, 1}, 4321, uint16(port), payload)
	if n, err := dev.Write([][]byte{out}, Headroom); err != nil || n != 1 {
		t.Fatalf("Write = %d, %v, want 1, nil", n, err)
	}
	l.SetReadDeadline(time.Now().Add(blockTimeout))
	buf := make([]byte, 100)
	n, from, err := l.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("udp read: %v", err)
	}
	if !bytes.Equal(buf[:n], payload) || from.Port != 4321 || !from.IP.Equal(net.IPv4(10, 9, 0, 2)) {
		t.Errorf("socket got %q from %v, want %q from 10.9.0.2:4321", buf[:n], from, payload)
	}
}

// readUntil reads dev until a packet matches and returns a copy of it. It
// fails the test after blockTimeout.
func readUntil(t *testing.T, dev Device, match func([]byte) bool) []byte {
	t.Helper()
	pkts := make(chan []byte, 64)
	errc := make(chan error, 1)
	go func() {
		bufs, sizes := makeBufs(8, Headroom)
		for {
			n, err := dev.Read(bufs, sizes, Headroom)
			if err != nil {
				errc <- err
				return
			}
			for i := range n {
				pkts <- bytes.Clone(bufs[i][Headroom : Headroom+sizes[i]])
			}
		}
	}()
	timeout := time.After(blockTimeout)
	for {
		select {
		case p := <-pkts:
			if match(p) {
				return p
			}
		case err := <-errc:
			t.Fatalf("Read: %v", err)
		case <-timeout:
			t.Fatalf("no matching packet read from %s within %v", dev.Name(), blockTimeout)
		}
	}
}

// udp4Packet builds an IPv4/UDP packet after headroom bytes. The UDP checksum
// is left zero (allowed for IPv4, RFC 768).
func udp4Packet(headroom int, src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, headroom+28+len(payload))
	ip := b[headroom:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	return b
}

func TestConfigureHWAddr(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	tests := []struct {
		name    string
		mode    Mode
		mac     net.HardwareAddr
		wantErr string // "" means success
	}{
		{"tap", TAP, mac, ""},
		{"tun", TUN, mac, "a TUN device has no MAC address (use --mode tap, or drop the MAC)"},
		{"multicast", TAP, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}, "multicast address"},
		{"zero", TAP, make(net.HardwareAddr, 6), "all-zero address"},
		{"short", TAP, net.HardwareAddr{2, 0, 0}, "want a 6-byte Ethernet address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enterNetns(t)
			openT(t, Config{Name: "vhtd0", Mode: tc.mode})
			err := Configure("vhtd0", LinkConfig{HWAddr: tc.mac, Up: true})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Configure(MAC %v) = %v, want an error containing %q", tc.mac, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Configure(MAC %v): %v", tc.mac, err)
			}
			if got := tuntapLink(t, "vhtd0").Attrs().HardwareAddr; !bytes.Equal(got, tc.mac) {
				t.Errorf("MAC = %v, want %v", got, tc.mac)
			}
		})
	}
}

func TestConfigureErrors(t *testing.T) {
	enterNetns(t)
	if err := Configure("vhtdnone", LinkConfig{Up: true}); err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Errorf("Configure(missing device) = %v, want a no such device error", err)
	}
	if _, err := LinkMTU("vhtdnone"); err == nil {
		t.Errorf("LinkMTU(missing device) succeeded")
	}
	openT(t, Config{Name: "vhtd0", Mode: TUN})
	if err := Configure("vhtd0", LinkConfig{MTU: 40}); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("Configure(MTU 40) = %v, want an out of range error", err)
	}
}

func TestPersistent(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody to own the device: %v", err)
	}
	uid, err := LookupOwner("nobody")
	if err != nil || strconv.Itoa(uid) != nobody.Uid {
		t.Fatalf("LookupOwner(nobody) = %d, %v, want %s", uid, err, nobody.Uid)
	}
	tests := []struct {
		name       string
		mode       Mode
		multiQueue bool
		wantFlags  uint32 // sysfs tun_flags
	}{
		{"tap", TAP, false, unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_PERSIST},
		{"tun multi-queue", TUN, true, unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_PERSIST | unix.IFF_MULTI_QUEUE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := enterNetns(t)
			name, err := CreatePersistent(PersistConfig{Name: "vhtdp%d", Mode: tc.mode, MultiQueue: tc.multiQueue, Owner: uid, Group: -1})
			if err != nil {
				t.Fatalf("CreatePersistent: %v", err)
			}
			t.Cleanup(func() {
				if Exists(name) {
					DeletePersistent(name)
				}
			})
			if !strings.HasPrefix(name, "vhtdp") || name == "vhtdp%d" {
				t.Fatalf("CreatePersistent name = %q, want the kernel's name for vhtdp%%d", name)
			}
			if !Exists(name) {
				t.Fatalf("%s gone after CreatePersistent returned: want it persistent", name)
			}
			tt := tuntapLink(t, name)
			if tt.NonPersist || int(tt.Owner) != uid {
				t.Errorf("netlink: persistent %v owner %d, want true %d", !tt.NonPersist, tt.Owner, uid)
			}

			// sysfs, read through ip netns exec, which mounts the
			// namespace's own /sys.
			if got := sysfsAttr(t, ns, name, "owner"); got != nobody.Uid {
				t.Errorf("sysfs owner = %q, want %q", got, nobody.Uid)
			}
			flags, err := parseTunFlags(sysfsAttr(t, ns, name, "tun_flags"))
			if err != nil || flags != tc.wantFlags {
				t.Errorf("sysfs tun_flags = %#x, %v, want %#x", flags, err, tc.wantFlags)
			}

			// Attaching and closing leaves a persistent device in place.
			dev := openT(t, Config{Name: name, Mode: tc.mode, MultiQueue: tc.multiQueue})
			dev.Close()
			if !Exists(name) {
				t.Fatalf("%s gone after attach and close: want it persistent", name)
			}

			if _, err := CreatePersistent(PersistConfig{Name: name, Mode: tc.mode, MultiQueue: tc.multiQueue, Owner: -1, Group: -1}); err == nil ||
				!strings.Contains(err.Error(), "already exists") {
				t.Errorf("CreatePersistent(existing) = %v, want an already exists error", err)
			}

			if err := DeletePersistent(name); err != nil {
				t.Fatalf("DeletePersistent: %v", err)
			}
			waitGone(t, name)
			if err := DeletePersistent(name); err == nil || !strings.Contains(err.Error(), "no such device") {
				t.Errorf("DeletePersistent(gone) = %v, want a no such device error", err)
			}
		})
	}
}

func sysfsAttr(t *testing.T, ns, dev, attr string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+dev+"/"+attr).CombinedOutput()
	if err != nil {
		t.Fatalf("read sysfs %s/%s in %s: %v: %s", dev, attr, ns, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestDeletePersistentErrors(t *testing.T) {
	enterNetns(t)
	openT(t, Config{Name: "vhtd0", Mode: TUN})
	tests := []struct {
		name string
		dev  string
		want string
	}{
		{"missing", "vhtdnone", "tundev: delete vhtdnone: no such device (list devices: ip tuntap show)"},
		{"transient", "vhtd0", "tundev: delete vhtd0: device is not persistent (it goes away when the program using it closes it)"},
		{"loopback", "lo", "tundev: delete lo: device exists and is not a TUN/TAP device; choose another name"},
		{"pattern", "vhtd%d", "tundev: delete vhtd%d: give the device's real name, not a pattern"},
	}
	for _, tc := range tests {
		// No subtests: they would run outside the namespace.
		if err := DeletePersistent(tc.dev); err == nil || err.Error() != tc.want {
			t.Errorf("%s: DeletePersistent(%s) = %v, want %q", tc.name, tc.dev, err, tc.want)
		}
	}
}

func TestAttachMismatch(t *testing.T) {
	tests := []struct {
		name     string
		existing Config
		open     Config
		want     string
	}{
		{"tap opened as tun", Config{Mode: TAP}, Config{Mode: TUN},
			"tundev: attach vhtd0: device is a TAP device, not TUN (use --mode tap)"},
		{"tun opened as tap", Config{Mode: TUN}, Config{Mode: TAP},
			"tundev: attach vhtd0: device is a TUN device, not TAP (use --mode tun)"},
		{"multi-queue opened single", Config{Mode: TUN, MultiQueue: true}, Config{Mode: TUN},
			"tundev: attach vhtd0: device is multi-queue (use --multi-queue)"},
		{"single opened multi-queue", Config{Mode: TUN}, Config{Mode: TUN, MultiQueue: true},
			"tundev: attach vhtd0: device is not multi-queue (drop --multi-queue, or recreate it with --multi-queue)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enterNetns(t)
			tc.existing.Name, tc.open.Name = "vhtd0", "vhtd0"
			openT(t, tc.existing)
			dev, err := Open(tc.open)
			if err == nil {
				dev.Close()
				t.Fatalf("Open(%+v) on a %+v device succeeded", tc.open, tc.existing)
			}
			if err.Error() != tc.want {
				t.Errorf("Open error = %q, want %q", err, tc.want)
			}
			if !errors.Is(err, unix.EINVAL) || !errors.Is(err, ErrModeMismatch) {
				t.Errorf("Open error %v does not wrap both EINVAL and ErrModeMismatch", err)
			}
		})
	}
}

func TestAttachNotTun(t *testing.T) {
	enterNetns(t)
	_, err := Open(Config{Name: "lo", Mode: TUN})
	want := "tundev: attach lo: device exists and is not a TUN/TAP device; choose another name"
	if err == nil || err.Error() != want {
		t.Errorf("Open(lo) = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrModeMismatch) {
		t.Errorf("Open(lo) error %v does not wrap ErrModeMismatch", err)
	}
}

func TestAttachBusy(t *testing.T) {
	enterNetns(t)
	openT(t, Config{Name: "vhtd0", Mode: TUN})
	dev, err := Open(Config{Name: "vhtd0", Mode: TUN})
	if err == nil {
		dev.Close()
		t.Fatal("second Open of a single-queue device succeeded, want EBUSY")
	}
	want := "tundev: attach vhtd0: device or resource busy (another program is attached to it; stop it, or create it with --multi-queue)"
	if err.Error() != want {
		t.Errorf("second Open error = %q, want %q", err, want)
	}
	if !errors.Is(err, unix.EBUSY) {
		t.Errorf("second Open error %v does not wrap EBUSY", err)
	}
}

func TestOpenQueues(t *testing.T) {
	if _, err := OpenQueues(Config{Name: "vhtd0", Mode: TUN}, 2); err == nil {
		t.Error("OpenQueues without MultiQueue succeeded")
	}
	enterNetns(t)
	qs, err := OpenQueues(Config{Name: "vhtdmq%d", Mode: TUN, MultiQueue: true}, 2)
	if err != nil {
		t.Fatalf("OpenQueues: %v", err)
	}
	defer func() {
		for _, q := range qs {
			q.Close()
		}
	}()
	if len(qs) != 2 || qs[0].Name() != qs[1].Name() || !strings.HasPrefix(qs[0].Name(), "vhtdmq") {
		t.Fatalf("OpenQueues returned %d queues named %q, %q; want 2 sharing one vhtdmq name", len(qs), qs[0].Name(), qs[len(qs)-1].Name())
	}
	name := qs[0].Name()
	tt := tuntapLink(t, name)
	if tt.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 || tt.Queues != 2 {
		t.Errorf("netlink: multi-queue %v with %d queues, want true with 2", tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0, tt.Queues)
	}
	// The device lives until its last queue closes.
	qs[0].Close()
	if !Exists(name) {
		t.Fatalf("%s gone with one queue still open", name)
	}
	qs[1].Close()
	waitGone(t, name)
}
