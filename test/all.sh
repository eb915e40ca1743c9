#!/usr/bin/env bash
# all.sh — every test of vhost: formatting, vet, the unit and end-to-end tests
# with the race detector, and a short fuzz run of the stack.
#
#   sudo ./test/all.sh
#
# Root is needed because the end-to-end tests create network namespaces,
# TUN/TAP devices and veth pairs (only inside namespaces they make and remove).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "all.sh: run as root (sudo ./test/all.sh): the end-to-end tests create network namespaces" >&2
	exit 2
fi
# sudo's secure_path usually lacks Go's directory.
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin

./test/deps.sh
[ -e /dev/net/tun ] || modprobe tun 2>/dev/null || true

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 10m ./...
# Budgets are counts of executions, not durations: a duration races a
# deadline in Go 1.26's fuzz coordinator (go.dev/issue/75804, fixed in Go
# 1.27), which fails a run with "context deadline exceeded" and no crasher.
echo "== fuzz (short; run longer by hand, e.g. go test -run '^\$' -fuzz FuzzHandle -fuzztime 10m ./pkg/stack)"
go test -run '^$' -fuzz '^FuzzHandle$' -fuzztime 300000x ./pkg/stack
go test -run '^$' -fuzz '^FuzzFrameReader$' -fuzztime 200000x ./pkg/relay
go test -run '^$' -fuzz '^FuzzOpenDatagram$' -fuzztime 200000x ./pkg/relay
go test -run '^$' -fuzz '^FuzzParse$' -fuzztime 50000x ./internal/lab
