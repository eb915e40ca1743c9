#!/usr/bin/env bash
# hosts.sh — does the number of hosts cost speed? Flood-ping one address of
# vhost when it owns that one address, and when it owns a whole /16 (65534
# hosts, each with its own MAC on TAP), or for IPv6 a /112 (65535 hosts), in
# the same rounds, inside network namespaces this script creates and
# removes.
#
#   sudo bench/hosts.sh [COUNT] [ROUNDS]      (default 100000 packets, 3 rounds)
#
# Prints replies/s and loss for each case and the /16's rate as a ratio to
# the single address's, per round and as the median over the rounds.
set -euo pipefail

count=${1:-100000}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
ns=vhhosts-$$
dst4=10.0.200.7
dst6=fd00::c807

cleanup() {
	ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "hosts.sh: run as root (it creates network namespaces)" >&2; exit 2; }
for t in ping ip go; do
	command -v "$t" >/dev/null || { echo "hosts.sh: needs $t" >&2; exit 2; }
done
(cd "$here" && go build -o "$tmp/vhost" ./cmd/vhost)
. "$here/bench/lib.sh"

vhost_case() { # MODE ADDR DST
	ip netns add "$ns"
	ip netns exec "$ns" "$tmp/vhost" --mode "$1" --dev vhh0 --host-addr 10.0.0.1/16 --host-addr fd00::1/64 \
		--addr "$2" --log-format json 2>"$tmp/vhost.log" &
	local pid=$!
	for _ in $(seq 100); do grep -q '"vhost up"' "$tmp/vhost.log" 2>/dev/null && break; sleep 0.1; done
	grep -q '"vhost up"' "$tmp/vhost.log" || { cat "$tmp/vhost.log" >&2; exit 1; }
	ip netns exec "$ns" ping -q -c 3 -i 0.2 "$3" >/dev/null # resolve ARP/ND on TAP, warm up
	flood "$ns" "$3"
	kill -TERM "$pid"; wait "$pid" || true
	ip netns del "$ns"
}

printf '%-6s %-18s %12s %8s %12s\n' round case "replies/s" "loss%" "vs one host"
: >"$tmp/ratios"
for round in $(seq "$rounds"); do
	for c in "tun $dst4 10.0.0.0/16 65534" "tap $dst4 10.0.0.0/16 65534" "tun $dst6 fd00::/112 65535" "tap $dst6 fd00::/112 65535"; do
		set -- $c
		mode=$1 dst=$2 prefix=$3 n=$4
		fam=4
		[ "$dst" = "$dst6" ] && fam=6
		one=$(vhost_case "$mode" "$dst" "$dst")
		many=$(vhost_case "$mode" "$prefix" "$dst")
		ratio=$(awk -v a="${many%% *}" -v b="${one%% *}" 'BEGIN { printf "%.3f", a / b }')
		echo "$mode-ipv$fam $ratio" >>"$tmp/ratios"
		set -- $one
		printf '%-6s %-18s %12s %8s %12s\n' "$round" "$mode-ipv$fam-1-host" "$1" "$2" 1.00
		set -- $many
		printf '%-6s %-18s %12s %8s %12s\n' "$round" "$mode-ipv$fam-$n" "$1" "$2" "$ratio"
	done
done
echo
for c in tun-ipv4 tap-ipv4 tun-ipv6 tap-ipv6; do
	awk -v m="$c" '$1 == m { print $2 }' "$tmp/ratios" | sort -n |
		awk -v m="$c" '{ v[NR] = $1 } END { printf "median %s many hosts / 1 host: %.3f (%d rounds)\n", m, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, NR }'
done
