#!/usr/bin/env bash
# deps.sh — install the tools the end-to-end tests drive, with apt, when any
# is missing. Run as root. A no-op when everything is there.
set -euo pipefail

# command:package
need=(
	ping:iputils-ping
	arping:iputils-arping
	tshark:tshark
	ip:iproute2
	setpriv:util-linux
	mount:mount
	sudo:sudo
	socat:socat
	iperf3:iperf3
	# traceroute.db, not traceroute: inetutils-traceroute also provides a
	# traceroute, without the -T and -6 the tests use.
	traceroute.db:traceroute
	mtr:mtr-tiny
	tracepath:iputils-tracepath
	ndisc6:ndisc6
)

missing=()
for n in "${need[@]}"; do
	command -v "${n%%:*}" >/dev/null 2>&1 || missing+=("${n#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps.sh: missing ${missing[*]} and no apt-get to install them; install them by hand" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# tshark asks whether non-root users may capture; answer no, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
