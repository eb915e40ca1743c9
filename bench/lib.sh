# lib.sh — shared by the bench scripts; source it after setting count.

# flood NS DST: flood-ping DST from namespace NS, COUNT packets with 64 in
# flight, and print "replies_per_s loss_percent received".
flood() {
	local out tx rx ms
	# No -w: with a deadline ping keeps sending until COUNT replies are in
	# and counts what is still in flight at exit as lost.
	out=$(timeout 120 ip netns exec "$1" ping -q -n -f -l 64 -c "$count" "$2" 2>&1) || true
	tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' <<<"$out")
	rx=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$out")
	ms=$(sed -n 's/.*time \([0-9]*\)ms.*/\1/p' <<<"$out")
	if [ -z "$tx" ] || [ -z "$rx" ] || [ -z "$ms" ] || [ "$ms" = 0 ]; then
		echo "$(basename "$0"): could not parse ping output: $out" >&2
		exit 1
	fi
	awk -v tx="$tx" -v rx="$rx" -v ms="$ms" 'BEGIN { printf "%.0f %.3f %d\n", rx / (ms / 1000), 100 * (tx - rx) / tx, rx }'
}
