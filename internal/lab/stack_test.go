package lab

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vhost-dev/vhost/pkg/stack"
	"github.com/vhost-dev/vhost/pkg/tundev"
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		p, err := ParseAddrOrPrefix(s)
		if err != nil {
			p = netip.MustParsePrefix(s)
		}
		out[i] = p
	}
	return out
}

// TestStackConfig checks the file → stack.Config mapping field by field.
func TestStackConfig(t *testing.T) {
	src := `seed: 42
icmp-rate: 10
icmp-burst: 3
devices:
  - name: lab0
    mode: tap
    host-addrs: [10.0.0.1/24, fd00::1/64]
    mtu: 1400
    mac: 02:00:00:00:00:aa
    hosts:
      - name: a
        addrs: [10.0.0.2, fd00::2]
        hops: 2
        path-mtu: 1300
        delay: 20ms
        jitter: 5ms
        loss: 10%
        dup: 0.5
      - name: b
        addrs: [10.0.1.0/24]
        mac: 02:00:00:00:00:bb
        routers:
          - 192.0.2.1
          - {addr6: "2001:db8::9", mtu: 1280, loss: 50%}
  - name: lab1
    host-addrs: [10.1.0.1/24]
    hosts:
      - addrs: [10.1.0.2]
        hops: 1
        routers: []
`
	l, _, err := Parse("lab.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	g1v4, _ := stack.GeneratedRouter(1)
	want0 := stack.Config{
		Ethernet: true,
		HostSide: mustPrefixes("10.0.0.1/24", "fd00::1/64"),
		MTU:      1400,
		Seed:     42,
		ICMPRate: stack.ICMPRateLimit{PerSecond: 10, Burst: 3},
		Hosts: []stack.Host{
			{
				Name: "a", Addrs: mustPrefixes("10.0.0.2", "fd00::2"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xaa},
				Routers: make([]stack.Router, 2), PathMTU: 1300,
				Impair: stack.Impairment{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.1, Duplicate: 0.005},
			},
			{
				Name: "b", Addrs: mustPrefixes("10.0.1.0/24"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xbb},
				Routers: []stack.Router{
					{Addr4: netip.MustParseAddr("192.0.2.1")},
					{Addr6: netip.MustParseAddr("2001:db8::9"), MTU: 1280, Impair: stack.Impairment{Loss: 0.5}},
				},
			},
		},
	}
	if got := l.StackConfig(0); !reflect.DeepEqual(got, want0) {
		t.Errorf("StackConfig(0) =\n%+v\nwant\n%+v", got, want0)
	}
	// The second device's generated routers have a block of their own.
	a4, a6 := GeneratedRouter(1, 1)
	if a4.String() != "198.18.1.1" || a6.String() != "2001:db8:ffff::101" {
		t.Errorf("GeneratedRouter(1, 1) = %v, %v; want 198.18.1.1, 2001:db8:ffff::101", a4, a6)
	}
	if b4, _ := GeneratedRouter(0, 1); b4 != g1v4 {
		t.Errorf("GeneratedRouter(0, 1) = %v, want stack.GeneratedRouter(1)'s %v", b4, g1v4)
	}
	got1 := l.StackConfig(1)
	if got1.Ethernet || got1.Seed != 42 || len(got1.Hosts) != 1 {
		t.Fatalf("StackConfig(1) = %+v", got1)
	}
	if r := got1.Hosts[0].Routers; len(r) != 1 || r[0].Addr4 != a4 || r[0].Addr6 != a6 {
		t.Errorf("StackConfig(1) routers = %+v, want one at %v, %v", r, a4, a6)
	}
	for i := range l.Devices {
		if _, err := stack.New(l.StackConfig(i)); err != nil {
			t.Errorf("stack.New(StackConfig(%d)): %v", i, err)
		}
	}
}

func TestRoutes(t *testing.T) {
	l := &Lab{Seed: 1, ICMPRate: ICMPRate{1000, 50}, Devices: []Device{{
		Mode: tundev.TUN,
		Hosts: []Host{
			{Addrs: mustPrefixes("10.0.0.2")},                          // inside the kernel side
			{Addrs: mustPrefixes("10.0.5.0/24", "fd00:5::7"), Hops: 2}, // outside, behind routers
			{Addrs: mustPrefixes("10.0.6.1"), Routers: []Router{{Addr4: netip.MustParseAddr("10.0.0.254")}, {Addr4: netip.MustParseAddr("192.0.2.1")}}},
			{Addrs: mustPrefixes("fd00::9"), Hops: 1}, // IPv6 only: no IPv4 router route
		},
	}}}
	got := l.Routes(0, mustPrefixes("10.0.0.1/24", "fd00::1/64"))
	want := mustPrefixes("10.0.5.0/24", "fd00:5::7", "198.18.0.1", "2001:db8:ffff::1", "198.18.0.2", "2001:db8:ffff::2",
		"10.0.6.1", "192.0.2.1")
	if !slices.Equal(got, want) {
		t.Errorf("Routes =\n%v\nwant\n%v", got, want)
	}
}

func TestCountAddrs(t *testing.T) {
	side := mustPrefixes("10.0.0.1/24", "fd00::1:1/64")
	for _, tc := range []struct {
		p    string
		want int
	}{
		{"10.0.0.2", 1},
		{"10.0.0.0/24", 253}, // less network, broadcast and the kernel's 10.0.0.1
		{"10.0.1.0/24", 254},
		{"10.0.1.0/31", 2},
		{"10.0.0.0/16", 65534 - 1},
		{"fd00::1:0/112", 65534}, // less the Subnet-Router anycast and the kernel's fd00::1:1
		{"fd00::2:0/126", 3},
		{"fd00::2:0/127", 2},
	} {
		p := mustPrefixes(tc.p)[0]
		if got := CountAddrs(p, side); got != tc.want {
			t.Errorf("CountAddrs(%v) = %d, want %d", p, got, tc.want)
		}
	}
}
