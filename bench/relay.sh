#!/usr/bin/env bash
# relay.sh — measure vhost relay between two network namespaces, against
# socat's UDP TUN tunnel and a direct veth, in the same run.
#
#   sudo bench/relay.sh [ROUNDS]      (default 1 round)
#
# Topology, made afresh for every case inside namespaces this script creates
# and removes: A (192.0.2.1/24) and B (192.0.2.2/24) joined by a veth
# underlay; the overlay is 10.0.0.1/24 in A and 10.0.0.2/24 in B. B listens
# on :55555, A connects. Every overlay device has MTU 1400, so that a UDP
# datagram carrying a full frame (with a keyed header and tag) fits the
# 1500-byte underlay unfragmented, for vhost and socat alike.
#
# For each case, from A: the flood-ping rate (ping -f -l 32 -c 100000
# 10.0.0.2: replies/s and loss) and TCP throughput A->B (iperf3 -t 5, the
# receiver's Mbit/s). Cases: vhost relay over TCP and UDP, plain and keyed,
# each without and with --offload (TCP segmentation-offload super-packets
# cross whole; a keyed UDP one then spans several underlay fragments);
# socat's UDP TUN tunnel (the reference every ratio is taken against); a
# direct veth pair carrying the overlay (the limit). With ROUNDS > 1 it also
# prints each case's median ratios.
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(...) ends it too

rounds=${1:-1}
count=100000
preload=32
seconds=5
mtu=1400
port=55555
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
ns=vhrelay-$$
nsa=$ns-a
nsb=$ns-b

# teardown kills what runs in the namespaces (all started here) and
# removes them.
teardown() {
	local n pids
	for n in "$nsa" "$nsb"; do
		pids=$(ip netns pids "$n" 2>/dev/null) || continue
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
		for _ in $(seq 50); do
			[ -z "$(ip netns pids "$n" 2>/dev/null)" ] && break
			sleep 0.1
		done
		ip netns del "$n" 2>/dev/null || true
	done
}
cleanup() {
	teardown
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "relay.sh: run as root (it creates network namespaces)" >&2; exit 2; }
# sudo's secure_path usually lacks Go's directory.
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
for t in ip ping go iperf3 socat timeout; do
	if ! command -v "$t" >/dev/null 2>&1; then
		case $t in
		iperf3 | socat) echo "relay.sh: needs $t: apt-get install iperf3 socat" >&2 ;;
		*) echo "relay.sh: needs $t" >&2 ;;
		esac
		exit 2
	fi
done

(cd "$here" && go build -o "$tmp/vhost" ./cmd/vhost)
"$tmp/vhost" genkey >"$tmp/relay.key"

die() {
	echo "relay.sh: $*" >&2
	for f in "$tmp"/*.log; do
		[ -s "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }
	done
	exit 1
}

# wait_for PID FILE PATTERN: wait up to 10s for PATTERN to appear in FILE,
# the log of process PID.
wait_for() {
	for _ in $(seq 100); do
		grep -q "$3" "$2" 2>/dev/null && return 0
		kill -0 "$1" 2>/dev/null || die "process $1 exited before logging $3"
		sleep 0.1
	done
	die "no $3 in $2 within 10s"
}

underlay() {
	ip netns add "$nsa"
	ip netns add "$nsb"
	for n in "$nsa" "$nsb"; do
		ip -n "$n" link set lo up
		ip netns exec "$n" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	done
	ip -n "$nsa" link add u0 type veth peer name u0 netns "$nsb"
	ip -n "$nsa" addr add 192.0.2.1/24 dev u0
	ip -n "$nsb" addr add 192.0.2.2/24 dev u0
	ip -n "$nsa" link set u0 up
	ip -n "$nsb" link set u0 up
}

# relay TRANSPORT [--key FILE]: vhost relay from A to B.
relay() {
	local transport=$1
	shift
	# Empty the logs first: the background jobs truncate them only once
	# they run, and wait_for must not find a previous case's lines.
	: >"$tmp/a.log"
	: >"$tmp/b.log"
	ip netns exec "$nsb" "$tmp/vhost" relay --listen ":$port" --transport "$transport" "$@" \
		--dev vr0 --host-addr 10.0.0.2/24 --mtu "$mtu" --log-format json >/dev/null 2>"$tmp/b.log" &
	disown
	wait_for $! "$tmp/b.log" '"relay listening"'
	ip netns exec "$nsa" "$tmp/vhost" relay --connect "192.0.2.2:$port" --transport "$transport" "$@" \
		--dev vr0 --host-addr 10.0.0.1/24 --mtu "$mtu" --log-format json >/dev/null 2>"$tmp/a.log" &
	disown
	wait_for $! "$tmp/a.log" '"relay: peer connected"'
}

# socat's TUN tunnel over UDP, one frame per datagram (the format plain
# vhost relay UDP shares).
socat_tunnel() {
	: >"$tmp/a.log"
	: >"$tmp/b.log"
	ip netns exec "$nsb" socat -d "UDP:192.0.2.1:$port,bind=192.0.2.2:$port" \
		"TUN:10.0.0.2/24,tun-name=st0,tun-type=tun,iff-no-pi,iff-up" >/dev/null 2>"$tmp/b.log" &
	disown
	ip netns exec "$nsa" socat -d "UDP:192.0.2.2:$port,bind=192.0.2.1:$port" \
		"TUN:10.0.0.1/24,tun-name=st0,tun-type=tun,iff-no-pi,iff-up" >/dev/null 2>"$tmp/a.log" &
	disown
	for n in "$nsa" "$nsb"; do
		for _ in $(seq 100); do
			ip -n "$n" link show st0 >/dev/null 2>&1 && break
			sleep 0.1
		done
		ip -n "$n" link set st0 mtu "$mtu" || die "socat's st0 did not appear in $n"
	done
}

direct_veth() {
	ip -n "$nsa" link add d0 type veth peer name d0 netns "$nsb"
	ip -n "$nsa" addr add 10.0.0.1/24 dev d0
	ip -n "$nsb" addr add 10.0.0.2/24 dev d0
	for n in "$nsa" "$nsb"; do
		ip -n "$n" link set d0 mtu "$mtu" up
	done
}

# flood: prints "replies_per_s loss_percent"
flood() {
	local out tx rx ms
	out=$(timeout 120 ip netns exec "$nsa" ping -q -n -f -l "$preload" -c "$count" 10.0.0.2 2>&1) || true
	tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' <<<"$out")
	rx=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$out")
	ms=$(sed -n 's/.*time \([0-9]*\)ms.*/\1/p' <<<"$out")
	if [ -z "$tx" ] || [ -z "$rx" ] || [ -z "$ms" ] || [ "$ms" = 0 ] || [ "$tx" = 0 ]; then
		die "could not parse ping output: $out"
	fi
	awk -v tx="$tx" -v rx="$rx" -v ms="$ms" 'BEGIN { printf "%.0f %.3f\n", rx / (ms / 1000), 100 * (tx - rx) / tx }'
}

# throughput: prints the receiver's Mbit/s of a TCP stream A -> B.
throughput() {
	local out mbit
	# -1: the server exits after one test; -D: in the background.
	ip netns exec "$nsb" iperf3 -s -D -1 -B 10.0.0.2 -I "$tmp/iperf3.pid" >/dev/null
	for _ in $(seq 50); do
		out=$(timeout $((seconds + 30)) ip netns exec "$nsa" iperf3 -c 10.0.0.2 -t "$seconds" -f m 2>&1) && break
		grep -q "unable to connect" <<<"$out" || break
		sleep 0.1 # the server is not listening yet
	done
	mbit=$(awk '/receiver/ { for (i = 2; i <= NF; i++) if ($i == "Mbits/sec") print $(i - 1) }' <<<"$out")
	[ -n "$mbit" ] || die "could not parse iperf3 output: $out"
	echo "$mbit"
}

# run_case NAME: set the case up, measure, tear down; prints "rate loss mbit".
run_case() {
	underlay
	case $1 in
	vhost-tcp) relay tcp ;;
	vhost-udp) relay udp ;;
	vhost-tcp-key) relay tcp --key "$tmp/relay.key" ;;
	vhost-udp-key) relay udp --key "$tmp/relay.key" ;;
	vhost-tcp-offload) relay tcp --offload ;;
	vhost-udp-offload) relay udp --offload ;;
	vhost-tcp-key-offload) relay tcp --key "$tmp/relay.key" --offload ;;
	vhost-udp-key-offload) relay udp --key "$tmp/relay.key" --offload ;;
	socat-udp) socat_tunnel ;;
	direct-veth) direct_veth ;;
	esac
	# Warm up (and fail early on a broken tunnel).
	ip netns exec "$nsa" ping -q -c 3 -i 0.2 -W 2 10.0.0.2 >/dev/null || die "$1: no ping through the tunnel"
	local f t
	f=$(flood)
	t=$(throughput)
	teardown
	echo "$f $t"
}

cases=(direct-veth socat-udp vhost-tcp vhost-udp vhost-tcp-key vhost-udp-key
	vhost-tcp-offload vhost-udp-offload vhost-tcp-key-offload vhost-udp-key-offload)
fmt='%-6s %-22s %12s %8s %10s %12s %12s\n'
printf "$fmt" round case "replies/s" "loss%" "Mbit/s" "flood/socat" "tput/socat"
: >"$tmp/results"
for round in $(seq "$rounds"); do
	declare -A res=()
	for c in "${cases[@]}"; do
		res[$c]=$(run_case "$c")
	done
	set -- ${res[socat-udp]}
	sr=$1 st=$3
	for c in "${cases[@]}"; do
		set -- ${res[$c]}
		fr=$(awk -v a="$1" -v b="$sr" 'BEGIN { printf(b > 0 ? "%.2fx" : "-", a / (b > 0 ? b : 1)) }')
		tr=$(awk -v a="$3" -v b="$st" 'BEGIN { printf(b > 0 ? "%.2fx" : "-", a / (b > 0 ? b : 1)) }')
		echo "$c ${fr%x} ${tr%x}" >>"$tmp/results"
		printf "$fmt" "$round" "$c" "$1" "$2" "$3" "$fr" "$tr"
	done
done

# The machine may be shared and noisy: over several rounds, the median of
# the per-round ratios is the figure to quote.
if [ "$rounds" -gt 1 ]; then
	echo
	for c in "${cases[@]}"; do
		awk -v c="$c" '$1 == c { f[++n] = $2; t[n] = $3 }
		function median(a, n,   i, j, x) {
			for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
			return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		END { printf "%-22s median over %d rounds: flood %.2fx socat, throughput %.2fx socat\n", c, n, median(f, n), median(t, n) }' "$tmp/results"
	done
fi
