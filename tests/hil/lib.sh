# lib.sh — shared by the bench tests: start a citypass-hil bench in a fresh directory,
# stop it on exit, and small assertions. Sourced; expects HIL (path to citypass-hil).
set -eu
# the one exit convention (tests/support/procs.sh), found from the sourcing script's place
_d=$(cd "$(dirname "$0")" && pwd)
while [ ! -f "$_d/tests/support/procs.sh" ] && [ "$_d" != / ]; do _d=$(dirname "$_d"); done
. "$_d/tests/support/procs.sh"

: "${HIL:?HIL must name the citypass-hil binary}"
export LIBNFC_AUTO_SCAN=false
unset LIBNFC_DEVICE LIBNFC_DEFAULT_DEVICE

BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/citypass-hil-test-XXXXXX")
BENCH_PID=
PEER_PIDS=

cleanup() {
	stop_procs $PEER_PIDS
	stop_procs $BENCH_PID
	if [ $rc -ne 0 ] && [ -f "$BENCH_DIR/events.log" ]; then
		echo "--- last bench events" >&2
		tail -n 40 "$BENCH_DIR/events.log" >&2
	fi
	rm -rf "$BENCH_DIR"
}
on_exit cleanup

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# start_bench ARGS... : citypass-hil run with the given readers/options, then wait for it
start_bench() {
	"$HIL" run --run-dir "$BENCH_DIR" "$@" 2>"$BENCH_DIR/stderr" &
	BENCH_PID=$!
	"$HIL" ctl --run-dir "$BENCH_DIR" --wait 10 status >/dev/null ||
		fail "bench did not start: $(cat "$BENCH_DIR/stderr")"
}

ctl() {
	"$HIL" ctl --run-dir "$BENCH_DIR" "$@"
}

reader() {
	echo "pn532_uart:$BENCH_DIR/readers/$1"
}

# expect_in TEXT PATTERN MESSAGE : grep -E PATTERN in TEXT or fail
expect_in() {
	printf '%s\n' "$1" | grep -Eq -- "$2" || fail "$3 (pattern '$2' not in output:
$1)"
}

expect_not_in() {
	if printf '%s\n' "$1" | grep -Eq -- "$2"; then
		fail "$3 (pattern '$2' found in output:
$1)"
	fi
}
