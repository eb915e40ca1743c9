//go:build linux

package test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vhost-dev/vhost/pkg/stack"
)

const (
	hostAddr6  = "fd00::1"
	vhostAddr6 = "fd00::2"
	// unowned6 is an address in fd00::/64 that nothing answers for.
	unowned6 = "fd00::9"
)

// dualStackArgs give the kernel side 10.0.0.1/24 and fd00::1/64 and have
// vhost answer 10.0.0.2 and fd00::2.
var dualStackArgs = []string{
	"--host-addr", hostAddr + "/24", "--host-addr", hostAddr6 + "/64",
	"--addr", vhostAddr, "--addr", vhostAddr6,
}

// badFilter6 is badFilter for captures with IPv6, UDP and TCP in them:
// tshark always verifies ICMPv6 checksums, and the UDP and TCP checks are
// turned on by tsharkPrefs6.
const badFilter6 = badFilter + ` || icmpv6.checksum.status == 0 || udp.checksum.status == 0 || tcp.checksum.status == 0`

// newNS6 is newNS with IPv6 turned back on, so that the devices created in
// it afterwards (vhost's) have IPv6. The kernel then sends its own router
// solicitations and MLD reports, which vhost must ignore.
func newNS6(t *testing.T) *netNS {
	t.Helper()
	ns := newNS(t)
	ns.mustRun(t, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0")
	return ns
}

// mac6 is vhost's default MAC for an IPv6 address.
func mac6(addr string) string {
	return stack.MACFor6(netip.MustParseAddr(addr)).String()
}

// tsharkPrefs6 are tsharkPrefs with tshark's UDP and TCP checksum checks on
// too (off by default): TCP resets and the packets quoted in ICMP errors are
// then verified.
var tsharkPrefs6 = append(append([]string(nil), tsharkPrefs...), "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE")

// tsharkCounts returns how many packets of file match each filter, from a
// single pass of tshark (its io,stat statistics), with tsharkPrefs6.
// Filters may not contain commas, which separate them there.
func tsharkCounts(t *testing.T, file string, filters ...string) []int {
	t.Helper()
	for _, f := range filters {
		if strings.Contains(f, ",") {
			t.Fatalf("tsharkCounts: filter %q has a comma", f)
		}
	}
	args := append([]string{"-n", "-r", file, "-q"}, tsharkPrefs6...)
	args = append(args, "-z", "io,stat,0,"+strings.Join(filters, ","))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "tshark", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %q: %v\n%s", args, err, stderr.String())
	}
	// The last row of the table: "| 0.000 <> 1.234 |  9 | 792 | 16 | 640 |",
	// frames and bytes for each filter in turn.
	var row []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.Contains(line, "<>") {
			// A wide header pads the row with an empty cell.
			row = strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
			for len(row) > 0 && strings.TrimSpace(row[len(row)-1]) == "" {
				row = row[:len(row)-1]
			}
		}
	}
	if len(row) != 1+2*len(filters) {
		t.Fatalf("tshark io,stat: no row of %d columns in its output:\n%s", 1+2*len(filters), stdout.String())
	}
	counts := make([]int, len(filters))
	for i := range filters {
		n, err := strconv.Atoi(strings.TrimSpace(row[1+2*i]))
		if err != nil {
			t.Fatalf("tshark io,stat: column %d: %v:\n%s", i+1, err, stdout.String())
		}
		counts[i] = n
	}
	return counts
}

// countCheck is a number of packets a capture must have that match filter.
type countCheck struct {
	what, filter string
	min, max     int
}

// atLeast is max for a countCheck with no upper bound.
const atLeast = 1 << 30

// checkCounts fails the test for every check whose count is out of range,
// showing the matching packets. It always checks that no packet is broken
// (badFilter6). tshark runs once for all the checks.
func checkCounts(t *testing.T, file string, checks ...countCheck) {
	t.Helper()
	checks = append([]countCheck{{"broken packets", badFilter6, 0, 0}}, checks...)
	var filters []string
	for _, c := range checks {
		filters = append(filters, c.filter)
	}
	for i, n := range tsharkCounts(t, file, filters...) {
		if c := checks[i]; n < c.min || n > c.max {
			t.Errorf("%s: %d packets match %q, want %s\n%s", c.what, n, c.filter, span(c.min, c.max), tsharkText(t, file, c.filter))
		}
	}
}

// checkEchoedData6 checks in a capture that there are exactly n ICMPv6
// echo replies from vhostAddr6 to hostAddr6 (a fragmented reply counts once,
// in the frame tshark reassembles it in), each with hop limit 64 and the
// data of the request with the same id and sequence number, and that no
// packet vhost sent is longer than mtu. On TAP (ethSrc set) the replies
// must come from that MAC.
func checkEchoedData6(t *testing.T, file string, n, mtu int, ethSrc string) {
	t.Helper()
	rows := tsharkFields(t, file, "ipv6", "frame.number", "ipv6.src", "ipv6.dst", "ipv6.plen", "ipv6.hlim",
		"icmpv6.type", "icmpv6.echo.identifier", "icmpv6.echo.sequence_number", "data.data", "eth.src")
	first := func(s string) string { return strings.SplitN(s, ",", 2)[0] }
	req := map[string]string{}
	for _, r := range rows {
		if first(r[5]) == "128" && first(r[2]) == vhostAddr6 {
			req[first(r[6])+"/"+first(r[7])] = r[8]
		}
	}
	got := 0
	for _, r := range rows {
		frame, src := r[0], first(r[1])
		if src != vhostAddr6 {
			continue
		}
		if plen, err := strconv.Atoi(first(r[3])); err != nil || plen+40 > mtu {
			t.Errorf("frame %s: packet from %s with payload length %q, longer than the %d-byte MTU", frame, vhostAddr6, r[3], mtu)
		}
		if first(r[5]) != "129" {
			continue
		}
		got++
		key := first(r[6]) + "/" + first(r[7])
		if dst, hlim := first(r[2]), first(r[4]); dst != hostAddr6 || hlim != "64" {
			t.Errorf("frame %s: echo reply to %s with hop limit %s, want to %s with hop limit 64", frame, dst, hlim, hostAddr6)
		}
		if ethSrc != "" && first(r[9]) != ethSrc {
			t.Errorf("frame %s: echo reply id/seq %s from MAC %s, want %s", frame, key, first(r[9]), ethSrc)
		}
		want, ok := req[key]
		if !ok {
			t.Errorf("frame %s: echo reply id/seq %s has no request in the capture", frame, key)
			continue
		}
		if r[8] != want {
			t.Errorf("frame %s: echo reply id/seq %s data differs from the request's:\n got %.80s... (%d hex digits)\nwant %.80s... (%d hex digits)",
				frame, key, r[8], len(r[8]), want, len(want))
		}
	}
	if got != n {
		t.Errorf("capture has %d ICMPv6 echo replies from %s, want %d", got, vhostAddr6, n)
	}
}

// ping6Sizes are the ping -s sizes every IPv6 test sends: empty, the
// default, one that fills a 1500-byte MTU (40 + 8 + 1452), one byte more
// (the kernel fragments it), and large ones in many fragments.
var ping6Sizes = []string{"0", "56", "1452", "1453", "8000", "65000"}

// TestIPv6TUN pings vhost's IPv6 address on a TUN device: echo of every
// size is answered with the request's data, fragmented both ways where it
// must be, IPv4 keeps working next to it, an unowned IPv6 address gets
// nothing, and tshark finds every packet well formed.
func TestIPv6TUN(t *testing.T) {
	requireE2E(t, "ping", "sysctl", "tshark")
	ns := newNS6(t)
	v := startVhost(t, ns, dualStackArgs...)
	if !strings.Contains(strings.Join(v.addrs, " "), vhostAddr6) {
		t.Errorf("vhost up: addrs = %q, want %s among them", v.addrs, vhostAddr6)
	}
	capt := ns.startCapture(t, v.dev)

	replies6, replies := 0, 0
	t.Run("count3", func(t *testing.T) {
		p := ns.ping(t, "-6", "-c", "3", "-i", "0.2", "-W", "2", vhostAddr6)
		replies6 += p.received
		if p.transmitted != 3 || p.received != 3 || p.code != 0 {
			t.Fatalf("ping -6 -c 3 %s: %d transmitted, %d received, exit %d; want 3, 3, 0\n%s", vhostAddr6, p.transmitted, p.received, p.code, p.stdout)
		}
		if !strings.Contains(p.stdout, "ttl=64") {
			t.Errorf("ping -6 output shows no ttl=64 (hop limit):\n%s", p.stdout)
		}
	})
	t.Run("ipv4_too", func(t *testing.T) {
		p := ns.ping(t, "-c", "2", "-i", "0.2", "-W", "2", vhostAddr)
		replies += p.received
		if p.received != 2 {
			t.Errorf("ping %s next to IPv6: %d received, want 2\n%s", vhostAddr, p.received, p.stdout)
		}
	})
	for _, size := range ping6Sizes {
		t.Run("size/"+size, func(t *testing.T) {
			p := ns.ping(t, "-6", "-c", "2", "-i", "0.2", "-W", "2", "-s", size, vhostAddr6)
			replies6 += p.received
			if p.transmitted != 2 || p.received != 2 || p.code != 0 {
				t.Fatalf("ping -6 -s %s %s: %d transmitted, %d received, exit %d; want 2, 2, 0\n%s", size, vhostAddr6, p.transmitted, p.received, p.code, p.stdout)
			}
			if strings.Contains(p.stdout, "wrong data") || strings.Contains(p.stdout, "DUP!") {
				t.Errorf("ping -6 -s %s reports wrong data or duplicates:\n%s", size, p.stdout)
			}
		})
	}
	t.Run("not_owned", func(t *testing.T) {
		p := ns.ping(t, "-6", "-c", "3", "-i", "0.2", "-W", "1", unowned6)
		if p.transmitted != 3 || p.received != 0 || p.code == 0 {
			t.Fatalf("ping -6 %s (not owned): %d transmitted, %d received, exit %d; want 3, 0, non-zero\n%s", unowned6, p.transmitted, p.received, p.code, p.stdout)
		}
	})
	file := capt.stop(t)
	c := v.stop(t)
	replies += replies6
	if c["replied"] != uint64(replies) {
		t.Errorf("counter replied = %d, want %d (the replies ping received)", c["replied"], replies)
	}
	checkEchoedData6(t, file, replies6, 1500, "")
	checkCounts(t, file,
		countCheck{"fragmented replies", "ipv6.src == " + vhostAddr6 + " && ipv6.fragment", 1, atLeast},
		countCheck{"packets from " + unowned6 + " (not owned)", "ipv6.src == " + unowned6, 0, 0},
	)
}

// ndiscResult is ndisc6's output and the link-layer address it found.
type ndiscResult struct {
	result
	mac string // lower case; "" when no advertisement came
}

var ndiscTarget = regexp.MustCompile(`Target link-layer address: ([0-9A-Fa-f:]{17})`)

// ndisc6 solicits addr on dev with ndisc6 (a neighbour solicitation to its
// solicited-node multicast address).
func (ns *netNS) ndisc6(t *testing.T, addr, dev string, tries int) ndiscResult {
	t.Helper()
	r := ns.run(t, time.Minute, "ndisc6", "-n", "-r", strconv.Itoa(tries), "-w", "1000", addr, dev)
	n := ndiscResult{result: r}
	if m := ndiscTarget.FindStringSubmatch(r.stdout); m != nil {
		n.mac = strings.ToLower(m[1])
	}
	return n
}

// addrFlags returns the flags ip shows after each IPv6 address of dev
// (tentative, dadfailed, nodad, ...), by address.
func addrFlags(t *testing.T, ns *netNS, dev string) map[string]string {
	t.Helper()
	r := ns.mustRun(t, "ip", "-6", "-o", "addr", "show", "dev", dev)
	out := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		// "5: vhost0    inet6 fd00::2/64 scope global tentative dadfailed \    valid_lft ..."
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				out[f[i+1]] = strings.Join(f[i+2:], " ")
			}
		}
	}
	return out
}

// TestIPv6TAP checks neighbour discovery and echo on a TAP device: ndisc6
// gets vhost's MAC for its address and nothing for an unowned one, the
// kernel resolves it by itself and its first echo request is answered,
// large echoes are fragmented both ways, tshark finds the advertisements
// and replies well formed, and vhost defends its address against the
// kernel's duplicate address detection.
func TestIPv6TAP(t *testing.T) {
	requireE2E(t, "ping", "ndisc6", "sysctl", "tshark")
	ns := newNS6(t)
	v := startVhost(t, ns, append([]string{"--mode", "tap"}, dualStackArgs...)...)
	mac := mac6(vhostAddr6)
	// The kernel side's IPv6 address skips duplicate address detection,
	// so that it works at once.
	if f := addrFlags(t, ns, v.dev)[hostAddr6+"/64"]; !strings.Contains(f, "nodad") || strings.Contains(f, "tentative") {
		t.Errorf("kernel address %s/64 flags %q, want nodad and not tentative", hostAddr6, f)
	}
	capt := ns.startCapture(t, v.dev)

	t.Run("ndisc6", func(t *testing.T) {
		n := ns.ndisc6(t, vhostAddr6, v.dev, 3)
		if n.code != 0 || n.mac != mac {
			t.Fatalf("ndisc6 %s %s: exit %d, link-layer address %q; want 0, %s\n%s", vhostAddr6, v.dev, n.code, n.mac, mac, n)
		}
	})
	t.Run("ndisc6_not_owned", func(t *testing.T) {
		n := ns.ndisc6(t, unowned6, v.dev, 2)
		if n.code == 0 || n.mac != "" {
			t.Fatalf("ndisc6 %s %s (not owned): exit %d, link-layer address %q; want non-zero, none\n%s", unowned6, v.dev, n.code, n.mac, n)
		}
	})

	replies6 := 0
	// With no neighbour entry, the kernel resolves fd00::2 itself before
	// the first echo request goes out, and that request must be answered.
	t.Run("ping_first_packet", func(t *testing.T) {
		ns.mustRun(t, "ip", "-6", "neigh", "flush", "dev", v.dev)
		p := ns.ping(t, "-6", "-c", "5", "-i", "0.2", "-W", "2", vhostAddr6)
		replies6 += p.received
		if p.transmitted != 5 || p.received != 5 || p.code != 0 {
			t.Fatalf("ping -6 -c 5 %s: %d transmitted, %d received, exit %d; want 5, 5, 0\n%s", vhostAddr6, p.transmitted, p.received, p.code, p.stdout)
		}
		if !strings.Contains(p.stdout, "icmp_seq=1 ") || !strings.Contains(p.stdout, " 0% packet loss") {
			t.Errorf("ping -6: the first request got no reply, or loss reported:\n%s", p.stdout)
		}
	})
	t.Run("neighbour_entry", func(t *testing.T) {
		r := ns.mustRun(t, "ip", "-6", "neigh", "show", vhostAddr6, "dev", v.dev)
		if !strings.Contains(r.stdout, "lladdr "+mac) {
			t.Errorf("ip -6 neigh show %s dev %s = %q, want lladdr %s", vhostAddr6, v.dev, strings.TrimSpace(r.stdout), mac)
		}
	})
	t.Run("fragmented", func(t *testing.T) {
		for _, size := range []string{"1452", "1453", "8000", "65000"} {
			p := ns.ping(t, "-6", "-c", "2", "-i", "0.2", "-W", "2", "-s", size, vhostAddr6)
			replies6 += p.received
			if p.received != 2 || strings.Contains(p.stdout, "wrong data") || strings.Contains(p.stdout, "DUP!") {
				t.Errorf("ping -6 -s %s: %d received (want 2), or wrong data or duplicates:\n%s", size, p.received, p.stdout)
			}
		}
	})
	t.Run("ipv4_too", func(t *testing.T) {
		pingAll(t, ns, vhostAddr, 2)
		r := ns.mustRun(t, "ip", "neigh", "show", vhostAddr, "dev", v.dev)
		want := stack.MACFor(netip.MustParseAddr(vhostAddr)).String()
		if !strings.Contains(r.stdout, "lladdr "+want) {
			t.Errorf("ip neigh show %s dev %s = %q, want lladdr %s", vhostAddr, v.dev, strings.TrimSpace(r.stdout), want)
		}
	})
	t.Run("not_owned", func(t *testing.T) {
		p := ns.ping(t, "-6", "-c", "2", "-i", "0.2", "-W", "1", unowned6)
		if p.received != 0 {
			t.Errorf("ping -6 %s (not owned): %d received, want 0\n%s", unowned6, p.received, p.stdout)
		}
	})
	file := capt.stop(t)

	checkEchoedData6(t, file, replies6, 1500, mac)
	checkCounts(t, file,
		// ndisc6 (3 tries, stops at the first answer) and the kernel's own
		// resolution: at least one each, with the Solicited flag and the
		// target's MAC in a Target Link-Layer Address option (RFC 4861
		// §7.2.4).
		countCheck{"solicited advertisements for " + vhostAddr6 + " from " + mac,
			"icmpv6.type == 136 && icmpv6.nd.na.target_address == " + vhostAddr6 + " && eth.src == " + mac +
				" && icmpv6.nd.na.flag.s == 1 && icmpv6.opt.linkaddr == " + mac, 2, atLeast},
		// RFC 4861 §7.1.2: a receiver drops advertisements whose hop limit
		// is not 255.
		countCheck{"advertisements from vhost with hop limit other than 255",
			"icmpv6.type == 136 && eth.src == " + mac + " && ipv6.hlim != 255", 0, 0},
		// A host must not claim to be a router.
		countCheck{"advertisements from vhost with the router flag",
			"icmpv6.type == 136 && eth.src == " + mac + " && icmpv6.nd.na.flag.r == 1", 0, 0},
		countCheck{"advertisements for " + unowned6,
			"icmpv6.type == 136 && icmpv6.nd.na.target_address == " + unowned6, 0, 0},
		// A host never sends router advertisements (the kernel's router
		// solicitations must go unanswered).
		countCheck{"router advertisements", "icmpv6.type == 134", 0, 0},
	)

	// The kernel's duplicate address detection (RFC 4862 §5.4): vhost
	// answers the probe for its own address, so the kernel marks it
	// dadfailed, and stays silent for the others (the control fd00::9, the
	// kernel's link-local address).
	t.Run("dad", func(t *testing.T) {
		ns.mustRun(t, "ip", "addr", "add", unowned6+"/64", "dev", v.dev)
		ns.mustRun(t, "ip", "addr", "add", vhostAddr6+"/64", "dev", v.dev)
		var flags map[string]string
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			flags = addrFlags(t, ns, v.dev)
			if strings.Contains(flags[vhostAddr6+"/64"], "dadfailed") && !strings.Contains(flags[unowned6+"/64"], "tentative") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if f := flags[vhostAddr6+"/64"]; !strings.Contains(f, "dadfailed") {
			t.Errorf("kernel address %s/64 (vhost's) flags %q, want dadfailed: vhost did not defend it", vhostAddr6, f)
		}
		if f := flags[unowned6+"/64"]; strings.Contains(f, "tentative") || strings.Contains(f, "dadfailed") {
			t.Errorf("kernel address %s/64 (not vhost's) flags %q, want neither tentative nor dadfailed", unowned6, f)
		}
		for a, f := range flags {
			if strings.HasPrefix(a, "fe80:") && strings.Contains(f, "dadfailed") {
				t.Errorf("kernel link-local address %s flags %q: vhost answered its duplicate address detection", a, f)
			}
		}
		if t.Failed() {
			t.Logf("ip -6 addr show dev %s:\n%s", v.dev, ns.mustRun(t, "ip", "-6", "addr", "show", "dev", v.dev).stdout)
		}
	})
	v.stop(t)
}

// span describes the range [min, max] for messages.
func span(min, max int) string {
	switch {
	case min == max:
		return strconv.Itoa(min)
	case max == atLeast:
		return fmt.Sprintf("at least %d", min)
	default:
		return fmt.Sprintf("%d to %d", min, max)
	}
}
