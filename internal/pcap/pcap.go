// Package pcap writes the packets a virtual host reads and writes to a
// capture file that tshark, tcpdump and Wireshark open: Ethernet link type
// for a TAP device, raw IP for a TUN.
package pcap

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// snaplen is large enough for any packet a device carries whole.
const snaplen = 262144

// Writer appends packets to a capture file. Its methods may be called from
// several goroutines. Packets are buffered; Close flushes them.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	bw   *bufio.Writer
	pw   *pcapgo.Writer
	now  func() time.Time
	err  error // the first write error; later writes are dropped
	path string
}

// Create creates (or truncates) the file at path and writes the capture
// header: Ethernet frames when ethernet is set, raw IP packets otherwise.
func Create(path string, ethernet bool) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("pcap: %w (check the directory exists and is writable)", err)
	}
	w := &Writer{f: f, bw: bufio.NewWriterSize(f, 1<<16), now: time.Now, path: path}
	w.pw = pcapgo.NewWriterNanos(w.bw)
	link := layers.LinkTypeRaw
	if ethernet {
		link = layers.LinkTypeEthernet
	}
	if err := w.pw.WriteFileHeader(snaplen, link); err != nil {
		f.Close()
		return nil, fmt.Errorf("pcap: write header to %s: %w", path, err)
	}
	return w, nil
}

// Write records one packet, stamped now. After a write error it records
// nothing more; Close reports the error.
func (w *Writer) Write(pkt []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	n := len(pkt)
	ci := gopacket.CaptureInfo{Timestamp: w.now(), CaptureLength: n, Length: n}
	if err := w.pw.WritePacket(ci, pkt); err != nil {
		w.err = err
	}
}

// Close flushes what is buffered and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	if ferr := w.bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pcap: write %s: %w", w.path, err)
	}
	return nil
}
