package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxBatch bounds one recvmmsg/sendmmsg call.
const maxBatch = 128

// batchConn moves batches of datagrams with one recvmmsg or sendmmsg call
// through the socket's RawConn, so the runtime poller still does the
// waiting (and Close and deadlines still interrupt it). Its message headers
// are reused: no allocation per datagram. The receive half belongs to the
// reading goroutine and the send half to the (locked) writer.
type batchConn struct {
	rc syscall.RawConn

	rhs    []unix.Mmsghdr
	riov   []unix.Iovec
	rnames []unix.RawSockaddrInet6
	rcnt   int
	rn     int
	rerr   error
	recvFn func(fd uintptr) bool

	shs    []unix.Mmsghdr
	siov   []unix.Iovec
	sname  unix.RawSockaddrInet6
	snlen  uint32
	scnt   int
	sn     int
	serr   error
	sendFn func(fd uintptr) bool
}

// recvMeta describes one received datagram.
type recvMeta struct {
	n     int
	from  netip.AddrPort
	trunc bool // larger than the buffer: the rest was discarded
}

func newBatchConn(c *net.UDPConn) (*batchConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchConn{
		rc:     rc,
		rhs:    make([]unix.Mmsghdr, maxBatch),
		riov:   make([]unix.Iovec, maxBatch),
		rnames: make([]unix.RawSockaddrInet6, maxBatch),
		shs:    make([]unix.Mmsghdr, maxBatch),
		siov:   make([]unix.Iovec, maxBatch),
	}
	b.recvFn = b.doRecv
	b.sendFn = b.doSend
	return b, nil
}

// recv receives up to len(bufs) datagrams, datagram i into bufs[i][off:]
// (up to its capacity if useCap). It blocks until at least one is queued.
func (b *batchConn) recv(bufs [][]byte, off int, useCap bool, meta []recvMeta) (int, error) {
	cnt := min(len(bufs), maxBatch, len(meta))
	for i := range cnt {
		buf := bufs[i][off:]
		if useCap {
			buf = buf[:cap(buf)]
		}
		b.riov[i].Base = unsafe.SliceData(buf)
		b.riov[i].SetLen(len(buf))
		h := &b.rhs[i].Hdr
		h.Iov = &b.riov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&b.rnames[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Flags = 0
		b.rhs[i].Len = 0
	}
	b.rcnt = cnt
	if err := b.rc.Read(b.recvFn); err != nil {
		return 0, err
	}
	if b.rerr != nil {
		return 0, b.rerr
	}
	for i := range b.rn {
		h := &b.rhs[i]
		meta[i] = recvMeta{
			n:     int(h.Len),
			from:  sockaddrToAddrPort(&b.rnames[i], h.Hdr.Namelen),
			trunc: h.Hdr.Flags&unix.MSG_TRUNC != 0,
		}
		b.riov[i].Base = nil // do not keep the caller's buffer reachable
	}
	return b.rn, nil
}

func (b *batchConn) doRecv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhs[0])), uintptr(b.rcnt), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			b.rn, b.rerr = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // let the poller wait
		}
		b.rn, b.rerr = 0, e
		return true
	}
}

// setDest sets where send sends to; an invalid AddrPort means the connected
// peer.
func (b *batchConn) setDest(to netip.AddrPort) {
	b.snlen = addrPortToSockaddr(to, &b.sname)
}

// send sends every packet as one datagram, with as few sendmmsg calls as the
// kernel allows.
func (b *batchConn) send(pkts [][]byte) (int, error) {
	done := 0
	for done < len(pkts) {
		cnt := min(len(pkts)-done, maxBatch)
		for i := range cnt {
			p := pkts[done+i]
			b.siov[i].Base = unsafe.SliceData(p)
			b.siov[i].SetLen(len(p))
			h := &b.shs[i].Hdr
			h.Iov = &b.siov[i]
			h.SetIovlen(1)
			if b.snlen > 0 {
				h.Name = (*byte)(unsafe.Pointer(&b.sname))
				h.Namelen = b.snlen
			} else {
				h.Name, h.Namelen = nil, 0
			}
		}
		b.scnt = cnt
		err := b.rc.Write(b.sendFn)
		for i := range cnt {
			b.siov[i].Base = nil
		}
		if err == nil {
			err = b.serr
		}
		if err != nil {
			return done, err
		}
		done += b.sn
	}
	return done, nil
}

func (b *batchConn) doSend(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.shs[0])), uintptr(b.scnt), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			b.sn, b.serr = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		b.sn, b.serr = 0, e
		return true
	}
}

func sockaddrToAddrPort(sa *unix.RawSockaddrInet6, n uint32) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// addrPortToSockaddr encodes ap as an IPv6 socket address (IPv4 addresses
// mapped, which an AF_INET6 socket needs) or, for an AF_INET socket's sake,
// as IPv4 when ap is IPv4. It returns the address length, 0 for none.
func addrPortToSockaddr(ap netip.AddrPort, sa *unix.RawSockaddrInet6) uint32 {
	*sa = unix.RawSockaddrInet6{}
	if !ap.IsValid() {
		return 0
	}
	if ap.Addr().Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], ap.Port())
		sa4.Addr = ap.Addr().As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = ap.Addr().As16()
	return unix.SizeofSockaddrInet6
}
