package lab

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestParseErrors checks that every error in a lab file is reported, in
// file order, with its line, column and field path.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string // every error, in order
	}{
		{
			name: "percentage_above_100",
			src: `host-addrs: [10.0.0.1/24]
hosts:
  - addrs: [10.0.0.2]
  - addrs: [10.0.0.3]
    loss: 110%
`,
			want: []string{`lab.yaml:5:11: hosts[1].loss: "110%" is above 100%`},
		},
		{
			name: "unknown_field_did_you_mean",
			src: `hosts:
  - addrs: [10.0.0.2]
    los: 10%
    pathmtu: 1400
`,
			want: []string{
				`lab.yaml:3:5: hosts[0].los: unknown field "los" for a host (did you mean loss?)`,
				`lab.yaml:4:5: hosts[0].pathmtu: unknown field "pathmtu" for a host (did you mean path-mtu?)`,
			},
		},
		{
			name: "field_at_the_wrong_level",
			src: `loss: 5%
hosts:
  - addrs: [10.0.0.2]
    mode: tap
`,
			want: []string{
				`lab.yaml:1:1: loss: unknown field "loss" for the lab; loss is a field of a host: put it on a host (a hosts item)`,
				`lab.yaml:4:5: hosts[0].mode: unknown field "mode" for a host; mode is a field of a device: put it on a device (at the top level, or in a devices item)`,
			},
		},
		{
			name: "unknown_field_listed",
			src: `hosts:
  - addrs: [10.0.0.2]
    colour: blue
`,
			want: []string{`lab.yaml:3:5: hosts[0].colour: unknown field "colour" for a host; the fields are name, addrs, mac, hops, routers, path-mtu, delay, jitter, loss, dup`},
		},
		{
			name: "address_twice",
			src: `hosts:
  - name: a
    addrs: [10.0.0.2]
  - name: b
    addrs: [10.0.0.3, 10.0.0.2]
`,
			want: []string{`lab.yaml:5:23: hosts[1].addrs[1]: 10.0.0.2 is given twice; it is also hosts[0].addrs[0]`},
		},
		{
			name: "address_in_prefix_and_kernel_side",
			src: `host-addrs: [10.0.0.1/24]
hosts:
  - addrs: [10.0.1.0/24]
  - addrs: [10.0.1.9, 10.0.0.1]
`,
			want: []string{
				`lab.yaml:4:13: hosts[1].addrs[0]: 10.0.1.9 is inside prefix 10.0.1.0/24, hosts[0].addrs[0]`,
				`lab.yaml:4:23: hosts[1].addrs[1]: 10.0.0.1 is also the kernel side's address (10.0.0.1/24); pick another`,
			},
		},
		{
			name: "default_kernel_side",
			src: `hosts:
  - addrs: [10.0.0.1]
`,
			want: []string{`lab.yaml:2:13: hosts[0].addrs[0]: 10.0.0.1 is also the kernel side's address (10.0.0.1/24); pick another`},
		},
		{
			name: "bad_values",
			src: `seed: many
mode: tan
host-addrs: [10.0.0.1]
mtu: big
hosts:
  - addrs: [10.0.0.1/24, fe80::1, fd00::/64]
    delay: 20
    jitter: -1ms
    dup: lots
    mac: 01:00:5e:00:00:01
`,
			want: []string{
				`lab.yaml:1:7: seed: "many" is not a seed: want a whole number from 0 to 18446744073709551615`,
				`lab.yaml:2:7: mode: "tan" is not a mode: want tun (IP packets) or tap (Ethernet frames)`,
				`lab.yaml:3:14: host-addrs[0]: "10.0.0.1" has no prefix length: write the address with it, e.g. 10.0.0.1/24 or fd00::1/64`,
				`lab.yaml:4:6: mtu: "big" is not a whole number`,
				`lab.yaml:6:13: hosts[0].addrs[0]: prefix "10.0.0.1/24" has host bits set (did you mean 10.0.0.0/24?)`,
				`lab.yaml:6:26: hosts[0].addrs[1]: fe80::1 is a link-local address, which needs a zone and never crosses a router; use a unique-local IPv6 address (e.g. fd00::2) or an IPv4 one`,
				`lab.yaml:6:35: hosts[0].addrs[2]: prefix fd00::/64 is larger than /112 (65536 hosts at most)`,
				`lab.yaml:7:12: hosts[0].delay: "20" has no unit: write e.g. 20ms or 20s`,
				`lab.yaml:8:13: hosts[0].jitter: "-1ms" is negative; a delay is 0 or more`,
				`lab.yaml:9:10: hosts[0].dup: "lots" is not a percentage (e.g. 10% or 0.5%)`,
				`lab.yaml:10:10: hosts[0].mac: "01:00:5e:00:00:01" is a multicast address; use a unicast one (first byte even, e.g. 02:...)`,
			},
		},
		{
			name: "ranges",
			src: `mtu: 40
icmp-rate: 0
hosts:
  - addrs: [10.0.0.2]
    hops: 65
    path-mtu: 70000
  - addrs: [10.0.0.3]
    hops: 2
    routers: [192.0.2.1]
`,
			want: []string{
				`lab.yaml:1:6: mtu: MTU 40 out of range: want 68 to 65535`,
				`lab.yaml:2:12: icmp-rate: 0 ICMP errors per second: want 1 or more, or -1 for no limit`,
				`lab.yaml:5:11: hosts[0].hops: 65 hops: want 0 to 63`,
				`lab.yaml:6:15: hosts[0].path-mtu: path MTU 70000 out of range: want 68 to 65535`,
				`lab.yaml:8:11: hosts[1].hops: give hops (generated routers) or routers (explicit ones), not both`,
			},
		},
		{
			name: "routers",
			src: `hosts:
  - addrs: [10.0.0.2]
    routers:
      - addr4: 2001:db8::1
      - {addr4: 192.0.2.1, addr6: 192.0.2.2, mtu: 10}
      - 10.0.0.1
      - "192.0.2.1,192.0.2.9"
      - {addr4: 192.0.2.5, loss: 101}
`,
			want: []string{
				`lab.yaml:4:16: hosts[0].routers[0].addr4: "2001:db8::1" is not an IPv4 address (e.g. 192.0.2.1)`,
				`lab.yaml:5:35: hosts[0].routers[1].addr6: "192.0.2.2" is not an IPv6 address (e.g. 2001:db8::1)`,
				`lab.yaml:5:51: hosts[0].routers[1].mtu: router MTU 10 out of range: want 68 to 65535`,
				`lab.yaml:6:9: hosts[0].routers[2].addr4: router 10.0.0.1 is the kernel side's own address; the kernel would drop its ICMP errors as its own`,
				`lab.yaml:7:9: hosts[0].routers[3]: router "192.0.2.1,192.0.2.9": two IPv4 addresses; a router has one of each family (a second router is another --router or list item)`,
				`lab.yaml:8:34: hosts[0].routers[4].loss: "101" is above 100%`,
			},
		},
		{
			name: "devices",
			src: `devices:
  - name: lab0
    host-addrs: [10.0.0.1/24]
    hosts: [{addrs: [10.0.0.2]}]
  - name: lab0
    host-addrs: [10.0.0.5/16]
    hosts: [{addrs: [10.0.0.2]}]
  - name: "lab%d%d"
    host-addrs: [10.9.0.1/24]
    mac: 02:00:00:00:00:01
    hosts: [{addrs: [10.9.0.2]}]
  - name: averyveryverylongname
    attach: yes
    mode: tap
    host-addrs: [10.8.0.1/24]
`,
			want: []string{
				`lab.yaml:5:11: devices[1].name: device lab0 is also devices[0]; give each device its own name`,
				`lab.yaml:6:18: devices[1].host-addrs[0]: 10.0.0.5/16 overlaps devices[0].host-addrs[0] (10.0.0.0/24) of another device; give each device its own subnet`,
				`lab.yaml:7:22: devices[1].hosts[0].addrs[0]: 10.0.0.2 is given twice; it is also devices[0].hosts[0].addrs[0] (on another device: routes to it would go to one device only)`,
				`lab.yaml:8:11: devices[2].name: name "lab%d%d": the only pattern allowed is one %d (e.g. lab%d)`,
				`lab.yaml:10:10: devices[2].mac: a host MAC needs mode tap (a TUN device has no MACs)`,
				// No hosts: placed at the device, which has no hosts field.
				`lab.yaml:12:5: devices[3].hosts: no hosts: give at least one, e.g. hosts: [{addrs: [10.0.0.2]}]`,
				`lab.yaml:12:11: devices[3].name: name "averyveryverylongname" is 21 bytes; Linux allows 15`,
				`lab.yaml:13:13: devices[3].attach: "yes": want true or false`,
			},
		},
		{
			name: "devices_and_top_level_device_fields",
			src: `mode: tap
devices:
  - hosts: [{addrs: [10.0.0.2]}]
`,
			want: []string{`lab.yaml:1:7: mode: with a devices list, mode goes on each device: move it into a devices item`},
		},
		{
			name: "shapes",
			src: `hosts:
  - 10.0.0.2
  - addrs: {a: 1}
    routers: {addr4: 192.0.2.1}
`,
			want: []string{
				`lab.yaml:2:5: hosts[0]: want a host's fields (key: value lines), got the value "10.0.0.2"`,
				`lab.yaml:3:12: hosts[1].addrs[0]: want an address or prefix, got a mapping`,
			},
		},
		{
			name: "given_twice",
			src: `hosts:
  - addrs: [10.0.0.2]
    delay: 1ms
    delay: 2ms
`,
			want: []string{`lab.yaml:4:5: hosts[0].delay: given twice (first on line 3); keep one`},
		},
		{
			name: "no_hosts",
			src:  "seed: 3\n",
			want: []string{`lab.yaml:1:1: hosts: no hosts: give at least one, e.g. hosts: [{addrs: [10.0.0.2]}]`},
		},
		{
			name: "host_without_addresses",
			src: `hosts:
  - name: x
`,
			want: []string{`lab.yaml:2:5: hosts[0].addrs: no addresses: give at least one, e.g. addrs: [10.0.0.2]`},
		},
		{
			name: "empty",
			src:  "# nothing yet\n",
			want: []string{`lab.yaml: the lab is empty: give at least hosts: [{addrs: [10.0.0.2]}] (see examples/hello.yaml)`},
		},
		{
			name: "not_a_mapping",
			src:  "- 10.0.0.2\n",
			want: []string{`lab.yaml:1:1: want the lab's fields (key: value lines, e.g. hosts:), got a list`},
		},
		{
			name: "syntax",
			src:  "hosts:\n  - addrs: [10.0.0.2\n",
			want: []string{`lab.yaml:2: did not find expected ',' or ']' (YAML syntax)`},
		},
		{
			name: "unquoted_ipv6_in_flow_list",
			src:  "hosts:\n  - addrs: [::2]\n",
			want: []string{`lab.yaml:2: did not find expected node content: an IPv6 address starting with :: inside [...] must be quoted, e.g. ["::ffff:1"], or written as an indented - item`},
		},
		{
			name: "two_documents",
			src:  "hosts: [{addrs: [10.0.0.2]}]\n---\nhosts: [{addrs: [10.0.0.3]}]\n",
			want: []string{`lab.yaml:2: a second YAML document (after ---): a lab file holds one lab; put every device under devices`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse("lab.yaml", []byte(tc.src))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse(%s) error = %v, want Errors", tc.name, err)
			}
			got := strings.Split(es.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Parse(%s) errors:\n%s\nwant:\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestParseWarnings checks problems that do not stop a lab.
func TestParseWarnings(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "ipv6_below_1280",
			src: `mtu: 1200
host-addrs: [10.0.0.1/24, fd00::1/64]
hosts:
  - addrs: [fd00::2]
    path-mtu: 1000
`,
			want: []string{
				`lab.yaml:1:6: warning: mtu: MTU 1200 is below 1280, the smallest IPv6 allows: Linux turns IPv6 off on the device, so its IPv6 addresses will not work; use 1280 or more, or IPv4 only`,
				`lab.yaml:5:15: warning: hosts[0].path-mtu: path MTU 1000 is below 1280, the smallest an IPv6 link may have (RFC 8200 §5): IPv6 packets larger than it get Packet Too Big, which Linux ignores below 1280`,
			},
		},
		{
			name: "no_kernel_side_of_the_family",
			src: `hosts:
  - addrs: [fd00::2]
`,
			want: []string{`lab.yaml:1:1: warning: host-addrs: 1 host(s) have IPv6 addresses but the kernel side has none: add one (e.g. fd00::1/64) or the kernel has no source address to reach them from`},
		},
		{
			name: "two_devices_on_the_default",
			src: `devices:
  - hosts: [{addrs: [10.0.0.2]}]
  - hosts: [{addrs: [10.0.0.3]}]
`,
			want: []string{`lab.yaml:3:5: warning: devices[1].host-addrs: no host-addrs, like devices[0]: a device vhost creates gets 10.0.0.1/24, and two devices on one subnet do not work; give each its own`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, warns, err := Parse("lab.yaml", []byte(tc.src))
			var got []string
			for _, w := range warns {
				got = append(got, w.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Parse(%s) warnings:\n%s\nwant:\n%s\n(error: %v)", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"), err)
			}
		})
	}
}

// TestParseAliasBomb checks that aliases of aliases, which make a small
// file stand for billions of values, are refused rather than expanded.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {delay: 1ms}\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&b, "x-%d: &a%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("hosts: [{<<: *a12, addrs: [10.0.0.2]}]\n")
	_, _, err := Parse("lab.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "aliases of aliases") {
		t.Fatalf("Parse(alias bomb) error = %v, want one about aliases of aliases", err)
	}
}

// TestParseAliasesAndMerges checks YAML anchors, aliases and merge keys,
// and the x- keys that hold them.
func TestParseAliasesAndMerges(t *testing.T) {
	l, _, err := Parse("lab.yaml", []byte(`x-slow: &slow {delay: 50ms, loss: 1%}
x-addrs: &addrs [10.0.0.2, fd00::2]
host-addrs: [10.0.0.1/24, fd00::1/64]
hosts:
  - {<<: *slow, name: a, addrs: *addrs, loss: 2%}
`))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Devices[0].Hosts[0]
	if h.Name != "a" || len(h.Addrs) != 2 || h.Impair.Delay.String() != "50ms" || h.Impair.Loss != 2 {
		t.Errorf("host = %+v, want a, two addresses, delay 50ms and loss 2%% (its own, over the merged 1%%)", h)
	}
}
