package lab

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vhost-dev/vhost/pkg/tundev"
)

// okLab is a valid lab built in code, as the command line builds one.
func okLab() *Lab {
	return &Lab{Seed: 1, ICMPRate: ICMPRate{DefaultICMPRate, DefaultICMPBurst}, Devices: []Device{{
		Mode:  tundev.TUN,
		Hosts: []Host{{Addrs: mustPrefixes("10.0.0.2")}},
	}}}
}

// TestValidate checks labs built in code: their errors name the field by
// its full path (devices[0]...), with no file or line.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(l *Lab)
		want   []string
		field  string // Field() of the first error
	}{
		{name: "ok", change: func(*Lab) {}},
		{
			name:   "negative_delay",
			change: func(l *Lab) { l.Devices[0].Hosts[0].Impair.Delay = -time.Millisecond },
			want:   []string{"devices[0].hosts[0].delay: -1ms is negative; want 0 or more"},
			field:  "delay",
		},
		{
			name:   "loss_fraction_too_big",
			change: func(l *Lab) { l.Devices[0].Hosts[0].Impair.Loss = 150 },
			want:   []string{"devices[0].hosts[0].loss: 150% is above 100%"},
			field:  "loss",
		},
		{
			name: "router_mtu",
			change: func(l *Lab) {
				l.Devices[0].Hosts[0].Routers = []Router{{MTU: 20}}
			},
			want:  []string{"devices[0].hosts[0].routers[0].mtu: router MTU 20 out of range: want 68 to 65535"},
			field: "mtu",
		},
		{
			name:   "mac_on_tun",
			change: func(l *Lab) { l.Devices[0].MAC = []byte{2, 0, 0, 0, 0, 1} },
			want:   []string{"devices[0].mac: a host MAC needs mode tap (a TUN device has no MACs)"},
			field:  "mac",
		},
		{
			name:   "no_devices",
			change: func(l *Lab) { l.Devices = nil },
			want:   []string{"no devices: give hosts (and the device's fields) at the top level, or a devices list"},
		},
		{
			name:   "attach_pattern",
			change: func(l *Lab) { l.Devices[0].Name, l.Devices[0].Attach = "vh%d", true },
			want:   []string{`devices[0].name: name "vh%d" is a pattern: attach needs the name of an existing device`},
			field:  "name",
		},
		{
			name:   "unlimited_icmp_needs_no_burst",
			change: func(l *Lab) { l.ICMPRate = ICMPRate{PerSecond: -1} },
		},
		{
			name: "prefix_too_large",
			change: func(l *Lab) {
				l.Devices[0].Hosts[0].Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			},
			want:  []string{"devices[0].hosts[0].addrs[0]: prefix 10.0.0.0/8 is larger than /16 (65536 hosts at most)"},
			field: "addrs",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := okLab()
			tc.change(l)
			_, err := Validate(l)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate(%s): %v", tc.name, err)
				}
				return
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Validate(%s) = %v, want Errors", tc.name, err)
			}
			if got := es.Error(); got != strings.Join(tc.want, "\n") {
				t.Errorf("Validate(%s) =\n%s\nwant\n%s", tc.name, got, strings.Join(tc.want, "\n"))
			}
			if es[0].Field() != tc.field {
				t.Errorf("Validate(%s): Field() = %q, want %q", tc.name, es[0].Field(), tc.field)
			}
		})
	}
}

func TestFieldErrorPath(t *testing.T) {
	e := &FieldError{Path: "devices[0].hosts[1].routers[2].mtu"}
	if e.Field() != "mtu" || !e.Within("routers") || !e.Within("hosts") || e.Within("addrs") {
		t.Errorf("%q: Field() = %q, Within(routers, hosts, addrs) = %v %v %v", e.Path, e.Field(), e.Within("routers"), e.Within("hosts"), e.Within("addrs"))
	}
	e = &FieldError{Path: "hosts[3]"}
	if e.Field() != "hosts" {
		t.Errorf("%q: Field() = %q, want hosts", e.Path, e.Field())
	}
}
