#!/usr/bin/env bash
# flood.sh — flood-ping vhost on TUN and TAP, and the kernel over a veth pair,
# in the same run, inside network namespaces this script creates and removes.
#
#   sudo bench/flood.sh [COUNT] [ROUNDS]      (default 200000 packets, 1 round)
#
# Prints replies/s, loss and the responder's CPU time per reply for each case,
# and each case's rate as a ratio to the kernel-over-veth rate of the same
# round. A bare read/swap/write responder (bench/rawresp) runs beside vhost
# as the floor: what the TUN device path allows on this machine.
set -euo pipefail

count=${1:-200000}
rounds=${2:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
ns=vhbench-$$
nsa=$ns-a
nsb=$ns-b

cleanup() {
	for n in "$ns" "$nsa" "$nsb"; do
		ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
		ip netns del "$n" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "flood.sh: run as root (it creates network namespaces)" >&2; exit 2; }
for t in ping ip go; do
	command -v "$t" >/dev/null || { echo "flood.sh: needs $t" >&2; exit 2; }
done

(cd "$here" && go build -o "$tmp/vhost" ./cmd/vhost && go build -o "$tmp/rawresp" ./bench/rawresp)
ticks=$(getconf CLK_TCK)
. "$here/bench/lib.sh"

# cpu PID: user+system CPU time of PID in clock ticks
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

vhost_case() { # MODE
	ip netns add "$ns"
	ip netns exec "$ns" "$tmp/vhost" --mode "$1" --dev vhb0 --log-format json 2>"$tmp/vhost.log" &
	local pid=$!
	for _ in $(seq 50); do grep -q '"vhost up"' "$tmp/vhost.log" 2>/dev/null && break; sleep 0.1; done
	grep -q '"vhost up"' "$tmp/vhost.log" || { cat "$tmp/vhost.log" >&2; exit 1; }
	ip netns exec "$ns" ping -q -c 3 -i 0.2 10.0.0.2 >/dev/null # resolve ARP on TAP, warm up
	local c0 r c1
	c0=$(cpu "$pid")
	r=$(flood "$ns" 10.0.0.2)
	c1=$(cpu "$pid")
	kill -TERM "$pid"; wait "$pid" || true
	ip netns del "$ns"
	set -- $r
	awk -v r="$1" -v l="$2" -v n="$3" -v c=$((c1 - c0)) -v hz="$ticks" \
		'BEGIN { printf "%.0f %.3f %.2f\n", r, l, n ? c / hz * 1e6 / n : 0 }'
}

# raw_case: the floor of a userspace responder on a TUN (bench/rawresp).
raw_case() {
	ip netns add "$ns"
	ip netns exec "$ns" "$tmp/rawresp" vhb0 >"$tmp/raw.log" &
	local pid=$!
	for _ in $(seq 50); do grep -q ready "$tmp/raw.log" 2>/dev/null && break; sleep 0.1; done
	ip -n "$ns" addr add 10.0.0.1/24 dev vhb0
	ip -n "$ns" link set vhb0 up
	ip netns exec "$ns" ping -q -c 3 -i 0.2 10.0.0.2 >/dev/null
	local c0 r c1
	c0=$(cpu "$pid")
	r=$(flood "$ns" 10.0.0.2)
	c1=$(cpu "$pid")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	ip netns del "$ns"
	set -- $r
	awk -v r="$1" -v l="$2" -v n="$3" -v c=$((c1 - c0)) -v hz="$ticks" \
		'BEGIN { printf "%.0f %.3f %.2f\n", r, l, n ? c / hz * 1e6 / n : 0 }'
}

kernel_case() {
	ip netns add "$nsa"; ip netns add "$nsb"
	# Made inside the namespaces: nothing is created in the root namespace.
	ip -n "$nsa" link add vhba type veth peer name vhbb netns "$nsb"
	ip -n "$nsa" addr add 10.0.0.1/24 dev vhba; ip -n "$nsb" addr add 10.0.0.2/24 dev vhbb
	ip -n "$nsa" link set vhba up; ip -n "$nsb" link set vhbb up
	ip netns exec "$nsa" ping -q -c 3 -i 0.2 10.0.0.2 >/dev/null
	local r
	r=$(flood "$nsa" 10.0.0.2)
	ip netns del "$nsa"; ip netns del "$nsb"
	set -- $r
	echo "$1 $2 -"
}

printf '%-6s %-22s %12s %8s %14s %10s\n' round case "replies/s" "loss%" "cpu us/reply" "vs kernel"
: >"$tmp/ratios"
for round in $(seq "$rounds"); do
	k=$(kernel_case)
	raw=$(raw_case)
	tun=$(vhost_case tun)
	tap=$(vhost_case tap)
	kr=${k%% *}
	for row in "kernel-over-veth|$k" "raw-responder-tun|$raw" "vhost-tun|$tun" "vhost-tap|$tap"; do
		name=${row%%|*}; set -- ${row#*|}
		ratio=$(awk -v a="$1" -v b="$kr" 'BEGIN { printf "%.2f", a / b }')
		echo "$name $ratio $2" >>"$tmp/ratios"
		printf '%-6s %-22s %12s %8s %14s %10s\n' "$round" "$name" "$1" "$2" "$3" "${ratio}x"
	done
done
# The machine is shared and noisy: the median of the per-round ratios is the
# figure to quote; the worst loss of any round is shown beside it.
echo
for name in raw-responder-tun vhost-tun vhost-tap; do
	awk -v n="$name" '$1 == n { print $2, $3 }' "$tmp/ratios" | sort -n |
		awk -v n="$name" '{ r[++c] = $1; if ($2 > l) l = $2 }
		END { m = (c % 2) ? r[(c + 1) / 2] : (r[c / 2] + r[c / 2 + 1]) / 2
		      printf "%-10s median %.2fx the kernel over %d rounds, worst loss %.3f%%\n", n, m, c, l }' 
done
