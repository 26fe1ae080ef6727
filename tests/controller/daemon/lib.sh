# lib.sh — shared by the controller daemon scenarios (and scripts/demo.sh): a temporary
# deployment made by citypass-admin, the real citypass-server on a free loopback port, a
# citypass-hil bench, and citypass-controller processes with the bench gate backend.
# Everything lives in one temp directory and is stopped on exit. Every wait is bounded.
# Sourced; expects ADMIN SERVER HIL CONTROLLER TOKEN (paths to the binaries).
set -eu
# the one exit convention (tests/support/procs.sh), found from the sourcing script's place
_d=$(cd "$(dirname "$0")" && pwd)
while [ ! -f "$_d/tests/support/procs.sh" ] && [ "$_d" != / ]; do _d=$(dirname "$_d"); done
. "$_d/tests/support/procs.sh"

: "${ADMIN:?}" "${SERVER:?}" "${HIL:?}" "${CONTROLLER:?}" "${TOKEN:?}"
export LIBNFC_AUTO_SCAN=false
unset LIBNFC_DEVICE LIBNFC_DEFAULT_DEVICE CITYPASS_NOW
# short paths: unix socket names are limited to 108 bytes
T=$(mktemp -d "${TMPDIR:-/tmp}/cpd-XXXXXX")
export CITYPASS_DATA="$T/data"
BENCH="$T/b"
SERVER_PID=
BENCH_PID=
CTRL_PIDS=
PEER_PIDS=
PORT=
KEEP_TMP=${KEEP_TMP:-}

cleanup() {
	# controllers and peers before the server and the bench they talk to
	stop_procs $CTRL_PIDS $PEER_PIDS
	stop_procs $SERVER_PID $BENCH_PID
	# a script's own undo (e.g. unmount what it mounted), once every process is gone
	[ -n "${EXTRA_CLEANUP:-}" ] && eval "$EXTRA_CLEANUP"
	if [ $rc -ne 0 ]; then
		for f in "$T"/ctl-*.log "$T/server.log"; do
			[ -f "$f" ] || continue
			echo "--- $f (last lines)" >&2
			tail -n 25 "$f" >&2
		done
	fi
	if [ -n "$KEEP_TMP" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
on_exit cleanup

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
MAIN_PID=$$
# sql DB QUERY : sqlite3's answer. A sqlite3 that fails (missing tool, locked or corrupt
# file, bad query) fails the test, even from inside $(...), whose own exit would only end
# the subshell and leave the script comparing two empty strings.
sql() {
	_out=$(sqlite3 -bail -cmd ".timeout 5000" "$1" "$2" 2>"$T/sql.err") || {
		echo "FAIL: sqlite3 $1 \"$2\": $(cat "$T/sql.err")" >&2
		kill -TERM "$MAIN_PID"
		exit 1
	}
	printf '%s\n' "$_out"
}
adm() { timeout 60 "$ADMIN" "$@"; }
ctl() { timeout 20 "$HIL" ctl --run-dir "$BENCH" "$@"; }
reader() { echo "pn532_uart:$BENCH/readers/$1"; }
now_us() { ctl now | grep -Eo '[0-9]+' | head -n1; }

# wait_for SECONDS COMMAND... : poll every 0.1 s until the command succeeds
wait_for() {
	_deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.1
	done
}

# deployment SECTORS [init options] : citypass-admin init (server name 127.0.0.1)
deployment() {
	_s=$1
	shift
	adm init --server-name 127.0.0.1 --sectors "$_s" "$@" >/dev/null 2>"$T/init.log" ||
		fail "init: $(cat "$T/init.log")"
}

# start_bench READER... : citypass-hil with those readers (plus a desk reader "desk");
# HIL_ARGS adds options (--baud 115200)
start_bench() {
	_args="--reader desk"
	for r in "$@"; do _args="$_args --reader $r"; done
	# shellcheck disable=SC2086
	"$HIL" run --run-dir "$BENCH" ${HIL_ARGS:-} $_args 2>"$T/hil.log" &
	BENCH_PID=$!
	ctl --wait 10 status >/dev/null || fail "bench did not start: $(cat "$T/hil.log")"
}

# start_server : citypass-server on a free port of LISTEN_HOST (default the IPv4 loopback;
# bounded retries: a random port may be taken); sets PORT
start_server() {
	_host=${LISTEN_HOST:-127.0.0.1}
	for _attempt in 1 2 3 4 5 6 7 8 9 10; do
		_p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
		[ -n "$PORT" ] && _p=$PORT
		# shellcheck disable=SC2086 # SERVER_ARGS: extra options, word-split on purpose
		"$SERVER" --data "$CITYPASS_DATA" --listen "$_host:$_p" --poll-ms 50 ${SERVER_ARGS:-} \
			>>"$T/server.log" 2>&1 &
		SERVER_PID=$!
		if wait_for 5 grep -qF "listening on $_host:$_p" "$T/server.log"; then
			PORT=$_p
			return 0
		fi
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
		[ -n "$PORT" ] && sleep 0.5
	done
	fail "server did not start: $(tail -n 5 "$T/server.log")"
}

stop_server() {
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

# enrol DEVICE SITE READER : device bundle + controller configuration T/READER.conf;
# SERVERS, when set, is the bundle's server list instead of this server (issue 16)
enrol() {
	adm device add "$1" --site "$2" --server "${SERVERS:-127.0.0.1:${PORT:?start_server first}}" \
		--out "$T/bundle-$3" >/dev/null 2>&1 || fail "device add $1"
	cat >"$T/$3.conf" <<-EOF
		# citypass-controller for bench reader $3
		bundle = bundle-$3
		reader = $(reader "$3")
		qr-scanner = $BENCH/qr/$3
		state-dir = state-$3
		gate = bench
		bench-dir = $BENCH
		bench-reader = $3
		open-ms = 800
		reconnect-min-ms = 100
		reconnect-max-ms = 1000
		keepalive-s = 5
	EOF
}

# start_controller READER : one controller; its pid goes to CTRL_PID_<reader>
start_controller() {
	# CTRL_WRAP: a command prefix, e.g. "env LD_PRELOAD=... FAKETIME=-400d" (clock tests)
	# a restart appends to the same log: only this start's lines count
	_from=$(($(cat "$T/ctl-$1.log" 2>/dev/null | wc -l) + 1))
	${CTRL_WRAP:-} "$CONTROLLER" --config "$T/$1.conf" >>"$T/ctl-$1.log" 2>&1 &
	_pid=$!
	CTRL_PIDS="$CTRL_PIDS $_pid"
	eval "CTRL_PID_$(echo "$1" | tr -- - _)=$_pid"
	_this_start() { tail -n "+$_from" "$T/ctl-$1.log" | grep -q "$2"; }
	wait_for 10 _this_start "$1" "started\|cannot start" || fail "controller $1 silent"
	_this_start "$1" "cannot start" &&
		fail "controller $1: $(tail -n "+$_from" "$T/ctl-$1.log" | grep 'cannot start')"
	return 0
}

ctl_pid() { eval "echo \${CTRL_PID_$(echo "$1" | tr -- - _):-}"; }

stop_controller() {
	_pid=$(ctl_pid "$1")
	kill "$_pid"
	wait "$_pid" 2>/dev/null || true
	CTRL_PIDS=$(echo "$CTRL_PIDS" | tr ' ' '\n' | grep -vx "$_pid" | tr '\n' ' ')
}

# list_version READER : the version the controller's list store holds (0: none)
list_version() {
	_c="$T/state-$1/lists/CURRENT"
	[ -f "$_c" ] || { echo 0; return; }
	sed -n 's/^version \([0-9]*\).*/\1/p' "$_c" | head -n1
}
server_version() { # server_version SECTOR_NAME
	adm list export --sector "$1" --out "$T/exp.$$" >/dev/null 2>&1 || true
	ls "$T/exp.$$" | sed -n 's/^sector-[0-9]*-v\([0-9]*\)$/\1/p' | sort -n | tail -n1
	rm -rf "$T/exp.$$"
}
# wait_list READER SECTOR_NAME : the controller holds the server's latest version
wait_list() {
	_want=$(server_version "$2")
	_holds() { [ "$(list_version "$1")" = "$_want" ]; }
	wait_for 15 _holds "$1" ||
		fail "$1 holds list v$(list_version "$1"), server has v$_want"
}

# issue_card IMAGE UID RIGHT... : issue a factory-fresh card at the desk; prints pass id
issue_card() {
	_img=$1 _uid=$2
	shift 2
	_r=
	for r in "$@"; do _r="$_r --right $r"; done
	ctl place desk desfire "$_img" "uid=$_uid" >/dev/null
	# shellcheck disable=SC2086
	_out=$(adm pass issue --holder "Holder $_uid" ${HOUSEHOLD:+--household "$HOUSEHOLD"} $_r --reader "$(reader desk)" 2>&1) ||
		fail "pass issue: $_out"
	ctl remove desk >/dev/null
	echo "$_out" | sed -n 's/^pass \([0-9]*\) issued.*/\1/p'
}

# issue_phone WALLET SECTOR_NUMBER RIGHT... : a phone pass; prints pass id
issue_phone() {
	_w=$1 _sec=$2
	shift 2
	_req=$(timeout 20 "$TOKEN" enrol --wallet "$_w" --sector "$_sec")
	_r=
	for r in "$@"; do _r="$_r --right $r"; done
	# shellcheck disable=SC2086
	_out=$(adm pass issue --holder "Phone $_w" $_r --phone-key "$_sec=$_req" \
		--out "$_w.creds" 2>&1) || fail "pass issue (phone): $_out"
	timeout 20 "$TOKEN" install --wallet "$_w" --credential "$_w.creds/sector-$_sec.cred" \
		>/dev/null || fail "token install"
	echo "$_out" | sed -n 's/^pass \([0-9]*\) issued.*/\1/p'
}

# start_phone WALLET : citypass-token hce on WALLET.sock
start_phone() {
	"$TOKEN" hce --wallet "$1" --socket "$1.sock" >"$1.hce.log" 2>&1 &
	PEER_PIDS="$PEER_PIDS $!"
	wait_for 10 test -S "$1.sock" || fail "citypass-token hce did not start"
}

# tap READER WHAT... : place WHAT on READER, wait for the gate's decision after it, take
# it away and wait for the field to be seen empty; prints the decision's gate line.
# WHAT: "desfire IMAGE", "classic", "uid-only", "external SOCKET".
tap() {
	_rd=$1
	shift
	# ctl tap places WHAT and waits for the decision in one process: nothing of ours is
	# forked while the controller works (bench_tap times the tap from the events)
	_line=$(ctl tap "$_rd" "$@") || fail "no gate decision at $_rd for '$*'"
	_rm=$(now_us)
	ctl remove "$_rd" >/dev/null
	# the controller must see the empty field before the next tap (a card left is one
	# tap): wait for its select to find the field empty (the chip answers no target)
	_empty() { ctl events "since=$_rm" | grep -q "$_rd pn532 InListPassiveTarget 2 bytes -> 1 bytes"; }
	wait_for 10 _empty || fail "the controller at $_rd did not see the field empty"
	echo "$_line"
}

# scan READER LINE : the reader's QR scanner reads LINE; prints the gate's decision line
scan() {
	ctl scan "$1" "$2" || fail "no gate decision at $1 for a QR code"
}

# uses_acked READER... : every use those gates journalled is acknowledged by the server
# (the consumption stream goes beside the statistics stream, in its own batches)
uses_acked() {
	for _g in "$@"; do
		[ "$(sql "$T/state-$_g/journal.db" "select count(*) from consumption where acked_at is null")" = 0 ] ||
			return 1
	done
}

# expect LINE PATTERN MESSAGE
expect() {
	printf '%s\n' "$1" | grep -Eq -- "$2" || fail "$3: expected /$2/ in: $1"
	echo "ok - $3"
}

# server_count [granted|refused|all] : decisions the server holds (statistics stream)
server_count() {
	adm stats --by outcome --format csv 2>/dev/null |
		awk -F, -v want="${1:-all}" 'NR > 1 && (want == "all" || $1 == want) { s += $NF }
			END { print s + 0 }'
}
