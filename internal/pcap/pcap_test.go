package pcap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestWriteAndReadBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ethernet bool
		link     layers.LinkType
	}{
		{"tun", false, layers.LinkTypeRaw},
		{"tap", true, layers.LinkTypeEthernet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.pcap")
			w, err := Create(path, tc.ethernet)
			if err != nil {
				t.Fatal(err)
			}
			base := time.Unix(1700000000, 123456789)
			i := 0
			w.now = func() time.Time { i++; return base.Add(time.Duration(i) * time.Millisecond) }
			pkts := [][]byte{{0x45, 1, 2, 3}, bytes.Repeat([]byte{0xab}, 9000), {}}
			for _, p := range pkts {
				w.Write(p)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := pcapgo.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			if r.LinkType() != tc.link {
				t.Errorf("link type %v, want %v", r.LinkType(), tc.link)
			}
			for j, want := range pkts {
				data, ci, err := r.ReadPacketData()
				if err != nil {
					t.Fatalf("packet %d: %v", j, err)
				}
				if !bytes.Equal(data, want) || ci.Length != len(want) {
					t.Errorf("packet %d: %d bytes (length %d), want %d", j, len(data), ci.Length, len(want))
				}
				if wantTS := base.Add(time.Duration(j+1) * time.Millisecond); !ci.Timestamp.Equal(wantTS) {
					t.Errorf("packet %d: timestamp %v, want %v", j, ci.Timestamp, wantTS)
				}
			}
			if _, _, err := r.ReadPacketData(); err == nil {
				t.Error("more packets than written")
			}
		})
	}
}

func TestCreateError(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "no", "such", "dir", "c.pcap"), false); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}

func TestWriteAllocs(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "c.pcap"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pkt := make([]byte, 84)
	if n := testing.AllocsPerRun(1000, func() { w.Write(pkt) }); n != 0 {
		t.Errorf("Write: %v allocations, want 0", n)
	}
}
