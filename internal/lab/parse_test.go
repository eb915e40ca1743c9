package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseAddrOrPrefix(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // the prefix, or "" for an error
		errHas   string
	}{
		{name: "v4", in: "10.0.0.2", want: "10.0.0.2/32"},
		{name: "v4_prefix", in: "10.0.1.0/24", want: "10.0.1.0/24"},
		{name: "v6", in: "fd00::2", want: "fd00::2/128"},
		{name: "v6_prefix", in: "fd00::1:0/112", want: "fd00::1:0/112"},
		{name: "host_bits", in: "10.0.0.1/24", errHas: "host bits set (did you mean 10.0.0.0/24?)"},
		{name: "v6_host_bits", in: "fd00::1:5/112", errHas: "did you mean fd00::1:0/112?"},
		{name: "garbage", in: "10.0.0.300", errHas: `"10.0.0.300" is not an address or prefix`},
		{name: "bad_length", in: "10.0.0.0/33", errHas: `"10.0.0.0/33"`},
		{name: "zone", in: "fe80::1%eth0", errHas: "zones"},
		{name: "mapped", in: "::ffff:10.0.0.2", errHas: "write IPv4 addresses as a.b.c.d (10.0.0.2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseAddrOrPrefix(tc.in)
			checkParse(t, "ParseAddrOrPrefix", tc.in, p.String(), err, tc.want, tc.errHas)
		})
	}
}

func TestParseHostSide(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, errHas string
	}{
		{name: "v4", in: "10.0.0.1/24", want: "10.0.0.1/24"},
		{name: "v6", in: "fd00::1/64", want: "fd00::1/64"},
		{name: "no_length", in: "10.0.0.1", errHas: "has no prefix length"},
		{name: "garbage", in: "x/24", errHas: "is not an address with a prefix length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseHostSide(tc.in)
			checkParse(t, "ParseHostSide", tc.in, p.String(), err, tc.want, tc.errHas)
		})
	}
}

func TestParseRouter(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want4    string
		want6    string
		errHas   string
	}{
		{name: "v4", in: "192.0.2.1", want4: "192.0.2.1"},
		{name: "v6", in: "2001:db8::1", want6: "2001:db8::1"},
		{name: "both", in: "192.0.2.1, 2001:db8::1", want4: "192.0.2.1", want6: "2001:db8::1"},
		{name: "two_v4", in: "192.0.2.1,192.0.2.2", errHas: "two IPv4 addresses"},
		{name: "prefix", in: "192.0.2.0/24", errHas: "is not an address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRouter(tc.in)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("ParseRouter(%q) error = %v, want one containing %q", tc.in, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRouter(%q): %v", tc.in, err)
			}
			if got := addrString(r.Addr4); got != tc.want4 {
				t.Errorf("ParseRouter(%q).Addr4 = %q, want %q", tc.in, got, tc.want4)
			}
			if got := addrString(r.Addr6); got != tc.want6 {
				t.Errorf("ParseRouter(%q).Addr6 = %q, want %q", tc.in, got, tc.want6)
			}
		})
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   time.Duration
		errHas string
	}{
		{in: "20ms", want: 20 * time.Millisecond},
		{in: "1.5s", want: 1500 * time.Millisecond},
		{in: "0", want: 0},
		{in: "20", errHas: `"20" has no unit: write e.g. 20ms`},
		{in: "-5ms", errHas: "negative"},
		{in: "soon", errHas: "not a duration"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := ParseDuration(tc.in)
			want := ""
			if tc.errHas == "" {
				want = tc.want.String()
			}
			checkParse(t, "ParseDuration", tc.in, d.String(), err, want, tc.errHas)
		})
	}
}

func TestParsePercent(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   float64
		errHas string
	}{
		{in: "10%", want: 10},
		{in: "10", want: 10},
		{in: "0.5", want: 0.5},
		{in: "100%", want: 100},
		{in: "0", want: 0},
		{in: "110%", errHas: `"110%" is above 100%`},
		{in: "-1", errHas: `"-1" is below 0%`},
		{in: "NaN", errHas: "not a percentage"},
		{in: "lots", errHas: "not a percentage"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			v, err := ParsePercent(tc.in)
			want := ""
			if tc.errHas == "" {
				want = FormatPercent(tc.want)
			}
			checkParse(t, "ParsePercent", tc.in, FormatPercent(v), err, want, tc.errHas)
		})
	}
}

func TestParseMAC(t *testing.T) {
	for _, tc := range []struct {
		in, want, errHas string
	}{
		{in: "02:00:00:00:00:01", want: "02:00:00:00:00:01"},
		{in: "zz:00:00:00:00:01", errHas: "not an Ethernet MAC address"},
		{in: "01:00:5e:00:00:01", errHas: "multicast"},
		{in: "00:00:00:00:00:00", errHas: "all zeros"},
		{in: "02:00:00:00:00:00:00:01", errHas: "not an Ethernet MAC address"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, err := ParseMAC(tc.in)
			checkParse(t, "ParseMAC", tc.in, m.String(), err, tc.want, tc.errHas)
		})
	}
}

// checkParse checks a parser's result: got when want is set, else an
// error containing errHas.
func checkParse(t *testing.T, fn, in, got string, err error, want, errHas string) {
	t.Helper()
	if errHas != "" {
		if err == nil || !strings.Contains(err.Error(), errHas) {
			t.Fatalf("%s(%q) error = %v, want one containing %q", fn, in, err, errHas)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s(%q): %v", fn, in, err)
	}
	if got != want {
		t.Errorf("%s(%q) = %s, want %s", fn, in, got, want)
	}
}
