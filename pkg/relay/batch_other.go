//go:build !linux

package relay

import (
	"net"
	"net/netip"
)

const maxBatch = 128

// batchConn is the portable fallback: one system call per datagram.
type batchConn struct {
	c  *net.UDPConn
	to netip.AddrPort
}

type recvMeta struct {
	n     int
	from  netip.AddrPort
	trunc bool
}

func newBatchConn(c *net.UDPConn) (*batchConn, error) { return &batchConn{c: c}, nil }

func (b *batchConn) recv(bufs [][]byte, off int, useCap bool, meta []recvMeta) (int, error) {
	buf := bufs[0][off:]
	if useCap {
		buf = buf[:cap(buf)]
	}
	n, from, err := b.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return 0, err
	}
	meta[0] = recvMeta{n: n, from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), trunc: n == len(buf)}
	return 1, nil
}

func (b *batchConn) setDest(to netip.AddrPort) { b.to = to }

func (b *batchConn) send(pkts [][]byte) (int, error) {
	for i, p := range pkts {
		var err error
		if b.to.IsValid() {
			_, err = b.c.WriteToUDPAddrPort(p, b.to)
		} else {
			_, err = b.c.Write(p)
		}
		if err != nil {
			return i, err
		}
	}
	return len(pkts), nil
}
