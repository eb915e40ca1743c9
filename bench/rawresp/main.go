// Command rawresp is the floor for bench/flood.sh: the least a userspace
// ICMP echo responder on a TUN can do per packet (a blocking read, swap the
// addresses, set the type, fix both checksums, write), with none of vhost's
// checks. It creates the TUN named by its first argument (default vhost0);
// the script configures it. Not for use outside the benchmark.
package main

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vhost-dev/vhost/internal/packettest"
)

func main() {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR, 0)
	if err != nil {
		panic(err)
	}
	name := "vhost0"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		panic(err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		panic(err)
	}
	os.Stdout.WriteString("ready\n")
	// The only responder with a blocking descriptor: read(2) sleeps in the
	// kernel, which is the cheapest wait there is, and nothing else runs.
	buf := make([]byte, 65536)
	for {
		n, _, e := unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if e != 0 {
			panic(e)
		}
		p := buf[:n]
		if n < 28 || p[0]>>4 != 4 || p[9] != 1 {
			continue
		}
		ihl := int(p[0]&0xf) * 4
		if p[ihl] != 8 {
			continue
		}
		var a [4]byte
		copy(a[:], p[12:16])
		copy(p[12:16], p[16:20])
		copy(p[16:20], a[:])
		p[ihl] = 0
		p[ihl+2], p[ihl+3] = 0, 0
		c := packettest.Checksum(p[ihl:])
		p[ihl+2], p[ihl+3] = byte(c>>8), byte(c)
		p[10], p[11] = 0, 0
		c = packettest.Checksum(p[:ihl])
		p[10], p[11] = byte(c>>8), byte(c)
		unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(n))
	}
}
