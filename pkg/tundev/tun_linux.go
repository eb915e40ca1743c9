//go:build linux

package tundev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const tunPath = "/dev/net/tun"

// permHint is appended to EPERM/EACCES errors.
const permHint = "needs CAP_NET_ADMIN, or a persistent device owned by you: vhost mktun --dev NAME --user YOU"

// FD is an open TUN/TAP queue (or the socketpair twin of one). Its file
// descriptor is non-blocking and registered with the Go netpoller, so a Read
// waiting for packets parks its goroutine, not a thread, and Close unblocks
// it.
//
// Read and Write may be called concurrently with each other and with Close;
// concurrent Reads (or Writes) are serialised.
type FD struct {
	file   *os.File
	rc     syscall.RawConn
	name   string
	mode   Mode
	flags  uint16
	closed atomic.Bool
	// wake is an eventfd that Close signals: Read and Write wait in poll(2)
	// on the device and on wake, so Close unblocks them (see waitFn).
	wake int

	// The RawConn callbacks are made once, in newFD, and take their
	// arguments from rd/wr: a closure per call would allocate.
	rmu    sync.Mutex
	rd     fdOp
	readFn func(fd uintptr)

	wmu     sync.Mutex
	wr      fdOp
	writeFn func(fd uintptr)
}

// fdOp holds the arguments and results of one Read or Write for its RawConn
// callback.
type fdOp struct {
	bufs   [][]byte
	sizes  []int
	offset int
	n      int
	err    error
}

var _ Device = (*FD)(nil)

// newFD wraps fd, which must already be non-blocking, and takes ownership of
// it: on error fd is closed.
func newFD(fd int, name string, mode Mode, flags uint16) (*FD, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tundev: open %s: eventfd: %w", name, err)
	}
	file := os.NewFile(uintptr(fd), name)
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		unix.Close(wake)
		return nil, fmt.Errorf("tundev: open %s: %w", name, err)
	}
	f := &FD{file: file, rc: rc, name: name, mode: mode, flags: flags, wake: wake}
	f.readFn = f.doRead
	f.writeFn = f.doWrite
	return f, nil
}

// Open creates a transient device, or attaches to an existing (persistent or
// multi-queue) one, and returns it. A transient device is removed by the
// kernel when its last queue is closed.
func Open(cfg Config) (*FD, error) {
	fd, name, flags, err := openTun(cfg)
	if err != nil {
		return nil, err
	}
	return newFD(fd, name, cfg.Mode, flags)
}

// OpenQueues opens n queues of one multi-queue device; cfg.MultiQueue must be
// set. The queues can be read and written by n goroutines in parallel. On
// error, every queue opened so far is closed.
func OpenQueues(cfg Config, n int) (qs []*FD, err error) {
	if !cfg.MultiQueue {
		return nil, errors.New("tundev: open queues: Config.MultiQueue is not set (multiple queues need a multi-queue device)")
	}
	if n < 1 {
		return nil, fmt.Errorf("tundev: open queues: want at least 1 queue, got %d", n)
	}
	defer func() {
		if err != nil {
			for _, q := range qs {
				q.Close()
			}
			qs = nil
		}
	}()
	for i := range n {
		q, err := Open(cfg)
		if err != nil {
			return qs, fmt.Errorf("tundev: open queue %d of %d: %w", i+1, n, err)
		}
		qs = append(qs, q)
		// A %d pattern names the device on the first Open; the rest attach
		// to that device.
		cfg.Name = q.Name()
	}
	return qs, nil
}

// openTun opens /dev/net/tun and binds it to a device with TUNSETIFF. It
// returns the non-blocking fd, the device's real name and the flags used.
func openTun(cfg Config) (fd int, name string, flags uint16, err error) {
	if err := checkMode(cfg.Mode); err != nil {
		return -1, "", 0, err
	}
	name = cfg.Name
	if name == "" {
		name = DefaultName
	}
	if err := checkName(name); err != nil {
		return -1, "", 0, err
	}

	op := "create"
	if !isPattern(name) {
		info, exists, err := lookupTun(name)
		if err != nil {
			return -1, "", 0, fmt.Errorf("tundev: attach %s: %w", name, err)
		}
		if exists {
			op = "attach"
			if err := info.compatible(name, cfg.Mode, cfg.MultiQueue); err != nil {
				return -1, "", 0, err
			}
		}
	}

	flags = unix.IFF_TUN
	if cfg.Mode == TAP {
		flags = unix.IFF_TAP
	}
	if !cfg.PacketInfo {
		flags |= unix.IFF_NO_PI
	}
	if cfg.MultiQueue {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if cfg.VnetHdr {
		flags |= unix.IFF_VNET_HDR
	}

	fd, err = unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", 0, openError(err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()

	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return -1, "", 0, fmt.Errorf("tundev: %s %s: %w", op, name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return -1, "", 0, setIffError(op, name, err)
	}
	name = ifr.Name()
	if err := unix.SetNonblock(fd, true); err != nil {
		return -1, "", 0, fmt.Errorf("tundev: %s %s: set non-blocking: %w", op, name, err)
	}
	ok = true
	return fd, name, flags, nil
}

func openError(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
		return fmt.Errorf("tundev: open %s: %w (load the tun module: modprobe tun)", tunPath, err)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("tundev: open %s: %w (%s)", tunPath, err, permHint)
	}
	return fmt.Errorf("tundev: open %s: %w", tunPath, err)
}

func setIffError(op, name string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("tundev: %s %s: %w (%s)", op, name, err, permHint)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("tundev: %s %s: %w (another program is attached to it; stop it, or create it with --multi-queue)", op, name, err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("tundev: %s %s: %w (a device of that name exists with another mode or multi-queue setting, or is not a TUN/TAP device)", op, name, err)
	case errors.Is(err, unix.E2BIG):
		return fmt.Errorf("tundev: %s %s: %w (the device has the most queues the kernel allows)", op, name, err)
	}
	return fmt.Errorf("tundev: %s %s: %w", op, name, err)
}

// Name is the interface name.
func (f *FD) Name() string { return f.name }

// Mode is TUN or TAP.
func (f *FD) Mode() Mode { return f.mode }

// Flags are the IFF_* flags the device was opened with (0 for a socketpair).
func (f *FD) Flags() uint16 { return f.flags }

// Read implements Device.Read.
func (f *FD) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if f.closed.Load() {
		return 0, &closedError{op: "read", name: f.name}
	}
	if len(sizes) < len(bufs) {
		bufs = bufs[:len(sizes)]
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	f.rmu.Lock()
	defer f.rmu.Unlock()
	f.rd = fdOp{bufs: bufs, sizes: sizes, offset: offset}
	err := f.rc.Control(f.readFn)
	n, opErr := f.rd.n, f.rd.err
	f.rd = fdOp{} // do not keep the caller's buffers
	if err == nil {
		err = opErr
	}
	if err != nil {
		return n, f.opError("read", err)
	}
	return n, nil
}

// doRead is the RawConn Control callback of Read: it reads packets until the
// device would block, and if none was read, waits for one in poll(2).
//
// Waiting in poll(2) rather than in the Go netpoller matters for speed: a
// flood ping keeps one packet in flight per reply, so the reader waits once
// per packet, and parking a goroutine in the netpoller costs a scheduler
// round trip and thread hand-offs each time. A poll(2) blocks this thread
// only; Close wakes it through the eventfd, and os.File.Close waits for the
// callback to return before the descriptor is closed.
func (f *FD) doRead(fd uintptr) {
	op := &f.rd
	for {
		if f.read(fd) || op.n > 0 || op.err != nil {
			return
		}
		if op.err = f.wait(fd, unix.POLLIN); op.err != nil {
			return
		}
	}
}

// wait blocks until fd has one of events, or Close was called.
func (f *FD) wait(fd uintptr, events int16) error {
	pfds := [2]unix.PollFd{{Fd: int32(fd), Events: events}, {Fd: int32(f.wake), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(pfds[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if pfds[1].Revents != 0 || f.closed.Load() {
			return os.ErrClosed
		}
		if pfds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 && pfds[0].Revents&events == 0 {
			// A queue whose device was deleted (or whose namespace was
			// removed) polls as an error for ever.
			return ErrDeviceGone
		}
		return nil
	}
}

// read reads packets until the device would block or the buffers are full.
// It reports true when it is done (buffers full, error, or end of file).
func (f *FD) read(fd uintptr) bool {
	op := &f.rd
	for op.n < len(op.bufs) {
		b := op.bufs[op.n]
		if op.offset < 0 || op.offset >= len(b) {
			op.err = errNoRoom
			return true
		}
		m, err := rawRead(fd, b[op.offset:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil:
			op.err = err
			return true
		case m == 0:
			// A TUN/TAP never returns an empty packet; a socketpair does
			// when its peer has closed.
			if op.n == 0 {
				op.err = io.EOF
			}
			return true
		}
		op.sizes[op.n] = m
		op.n++
	}
	return true
}

// Write implements Device.Write. It writes each packet whole; on error it
// returns how many packets were written before it.
func (f *FD) Write(bufs [][]byte, offset int) (int, error) {
	if f.closed.Load() {
		return 0, &closedError{op: "write", name: f.name}
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.wr = fdOp{bufs: bufs, offset: offset}
	err := f.rc.Control(f.writeFn)
	n, opErr := f.wr.n, f.wr.err
	f.wr = fdOp{}
	if err == nil {
		err = opErr
	}
	if err != nil {
		return n, f.opError("write", err)
	}
	return n, nil
}

// doWrite is the RawConn Control callback of Write. On EAGAIN it waits in
// poll(2) for the fd to become writable and goes on from the packet that did
// not fit.
func (f *FD) doWrite(fd uintptr) {
	op := &f.wr
	for op.n < len(op.bufs) {
		b := op.bufs[op.n]
		if op.offset < 0 || op.offset > len(b) {
			op.err = errNoRoom
			return
		}
		_, err := rawWrite(fd, b[op.offset:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if op.err = f.wait(fd, unix.POLLOUT); op.err != nil {
				return
			}
			continue
		case err != nil:
			op.err = err
			return
		}
		op.n++
	}
}

// rawRead and rawWrite are read(2) and write(2) without the Go scheduler's
// entersyscall/exitsyscall bookkeeping: the descriptor is non-blocking, so
// they never block, and on this path that bookkeeping is a measurable share
// of the cost of a packet.
func rawRead(fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd uintptr, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

var errNoRoom = errors.New("offset leaves no room in buffer")

// opError wraps a Read or Write error, mapping the errors a closed file
// gives to ErrClosed.
func (f *FD) opError(op string, err error) error {
	if f.closed.Load() || errors.Is(err, os.ErrClosed) || strings.Contains(err.Error(), "use of closed file") {
		return &closedError{op: op, name: f.name}
	}
	if errors.Is(err, unix.EBADFD) {
		// What read(2) and write(2) return once the device is deleted.
		err = ErrDeviceGone
	}
	return fmt.Errorf("tundev: %s %s: %w", op, f.name, err)
}

// SetOffload turns the kernel's offloads to this queue on (checksum, TCP
// segmentation over IPv4 and IPv6: TUNSETOFFLOAD) or off. It needs a device
// opened with Config.VnetHdr. Turning them off makes the kernel segment and
// checksum in software before packets reach the queue.
func (f *FD) SetOffload(on bool) error {
	if f.flags&unix.IFF_VNET_HDR == 0 {
		return fmt.Errorf("tundev: offload on %s: the device was opened without a virtio-net header (Config.VnetHdr)", f.name)
	}
	var flags int
	if on {
		flags = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	}
	var err error
	if cerr := f.rc.Control(func(fd uintptr) {
		err = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, flags)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tundev: offload on %s: TUNSETOFFLOAD: %w (this kernel may lack TUN offloads)", f.name, err)
	}
	return nil
}

// Close closes the queue, unblocking a pending Read or Write. It is
// idempotent. Closing the last queue of a transient device removes it.
func (f *FD) Close() error {
	if !f.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Wake a Read or Write waiting in poll(2); file.Close then waits for it
	// to leave its callback before closing the descriptor.
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(f.wake, one[:])
	err := f.file.Close()
	unix.Close(f.wake)
	if err != nil {
		return fmt.Errorf("tundev: close %s: %w", f.name, err)
	}
	return nil
}

// CreatePersistent creates a device that outlives the process (TUNSETPERSIST),
// optionally owned by a user or group who may then attach to it without
// CAP_NET_ADMIN. It returns the device's name (the kernel's choice for a %d
// pattern). A name that already exists is an error.
func CreatePersistent(cfg PersistConfig) (name string, err error) {
	name = cfg.Name
	if name == "" {
		name = DefaultName
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	if !isPattern(name) {
		if _, exists, _ := lookupTun(name); exists {
			return "", fmt.Errorf("tundev: create %s: device already exists (delete it first: vhost rmtun --dev %s)", name, name)
		}
	}
	fd, name, _, err := openTun(Config{Name: name, Mode: cfg.Mode, MultiQueue: cfg.MultiQueue})
	if err != nil {
		return "", err
	}
	// Until TUNSETPERSIST succeeds the device is transient: closing fd on
	// an error below removes it again.
	defer unix.Close(fd)
	if cfg.Owner != -1 {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, cfg.Owner); err != nil {
			return "", fmt.Errorf("tundev: create %s: set owner %d: %w", name, cfg.Owner, err)
		}
	}
	if cfg.Group != -1 {
		if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, cfg.Group); err != nil {
			return "", fmt.Errorf("tundev: create %s: set group %d: %w", name, cfg.Group, err)
		}
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return "", fmt.Errorf("tundev: create %s: make persistent: %w", name, err)
	}
	return name, nil
}

// DeletePersistent removes a persistent device made by CreatePersistent (or
// ip tuntap add). It finds the device's mode and multi-queue setting itself.
func DeletePersistent(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if isPattern(name) {
		return fmt.Errorf("tundev: delete %s: give the device's real name, not a pattern", name)
	}
	info, exists, err := lookupTun(name)
	switch {
	case err != nil:
		return fmt.Errorf("tundev: delete %s: %w", name, err)
	case !exists:
		return fmt.Errorf("tundev: delete %s: no such device (list devices: ip tuntap show)", name)
	case !info.persist:
		return fmt.Errorf("tundev: delete %s: device is not persistent (it goes away when the program using it closes it)", name)
	}
	fd, _, _, err := openTun(Config{Name: name, Mode: info.mode, MultiQueue: info.multiQueue})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0); err != nil {
		return fmt.Errorf("tundev: delete %s: clear persistent flag: %w", name, err)
	}
	return nil
}

// Exists reports whether an interface called name exists in the calling
// thread's network namespace.
func Exists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// tunInfo is what the kernel says about an existing TUN/TAP device.
type tunInfo struct {
	mode       Mode
	multiQueue bool
	persist    bool
}

// compatible returns an error saying how to fix a mismatch between an
// existing device and the mode and multi-queue setting asked for.
func (i tunInfo) compatible(name string, mode Mode, multiQueue bool) error {
	if i.mode != mode {
		return mismatch("tundev: attach %s: device is a %s device, not %s (use --mode %s)",
			name, strings.ToUpper(i.mode.String()), strings.ToUpper(mode.String()), i.mode)
	}
	if i.multiQueue && !multiQueue {
		return mismatch("tundev: attach %s: device is multi-queue (use --multi-queue)", name)
	}
	if !i.multiQueue && multiQueue {
		return mismatch("tundev: attach %s: device is not multi-queue (drop --multi-queue, or recreate it with --multi-queue)", name)
	}
	return nil
}

// hintError is an error whose message explains a condition the kernel would
// report as errs[i], without repeating their text.
type hintError struct {
	msg  string
	errs []error
}

func (e *hintError) Error() string   { return e.msg }
func (e *hintError) Unwrap() []error { return e.errs }

// mismatch returns an error that wraps ErrModeMismatch and the EINVAL the
// kernel would have returned.
func mismatch(format string, args ...any) error {
	return &hintError{fmt.Sprintf(format, args...), []error{ErrModeMismatch, unix.EINVAL}}
}

// lookupTun reports whether name exists and, if it is a TUN/TAP device, its
// mode and flags. A device that exists but is not a TUN/TAP is an error.
//
// It asks netlink (IFLA_TUN_* attributes, Linux 4.15+), which answers for the
// calling thread's network namespace. It falls back to sysfs tun_flags, which
// shows the namespace sysfs was mounted in: the same one, except after a bare
// setns(2).
func lookupTun(name string) (info tunInfo, exists bool, err error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return tunInfo{}, false, nil
		}
		return lookupTunSysfs(name)
	}
	tt, ok := link.(*netlink.Tuntap)
	if !ok {
		kind := ""
		if t := link.Type(); t != "device" {
			kind = " (it is a " + t + " link)"
		}
		return tunInfo{}, true, mismatch("device exists and is not a TUN/TAP device%s; choose another name", kind)
	}
	switch tt.Mode {
	case netlink.TUNTAP_MODE_TUN:
		info.mode = TUN
	case netlink.TUNTAP_MODE_TAP:
		info.mode = TAP
	default:
		// An old kernel without IFLA_TUN_TYPE.
		return lookupTunSysfs(name)
	}
	info.multiQueue = tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0
	info.persist = !tt.NonPersist
	return info, true, nil
}

func lookupTunSysfs(name string) (info tunInfo, exists bool, err error) {
	dir := "/sys/class/net/" + name
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return tunInfo{}, false, nil
		}
		return tunInfo{}, false, err
	}
	b, err := os.ReadFile(dir + "/tun_flags")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return tunInfo{}, true, mismatch("device exists and is not a TUN/TAP device; choose another name")
		}
		return tunInfo{}, true, err
	}
	flags, err := parseTunFlags(string(b))
	if err != nil {
		return tunInfo{}, true, fmt.Errorf("read %s/tun_flags: %w", dir, err)
	}
	return infoFromFlags(flags), true, nil
}

// parseTunFlags parses the contents of sysfs tun_flags, e.g. "0x1002\n".
func parseTunFlags(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("bad tun_flags %q", s)
	}
	return uint32(v), nil
}

func infoFromFlags(flags uint32) tunInfo {
	info := tunInfo{
		mode:       TUN,
		multiQueue: flags&unix.IFF_MULTI_QUEUE != 0,
		persist:    flags&unix.IFF_PERSIST != 0,
	}
	if flags&unix.IFF_TAP != 0 {
		info.mode = TAP
	}
	return info
}
