# common.sh — sourced by every scenario in tests/scenarios/: the shared controller-daemon
# helpers (tests/controller/daemon/lib.sh: temp deployment, server, bench, controllers,
# cleanup trap with SIGKILL after a 5 s grace) plus a few scenario-level checks.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN; PROBE (server_probe) and LISTTOOL (citypass-list)
# where a scenario needs them.
. "$(dirname "$0")/../controller/daemon/lib.sh"

# the whole scenario is bounded even if a helper waits too long (ctest TIMEOUT is the
# outer bound): a watchdog kills this shell, whose EXIT trap stops everything
SCENARIO_LIMIT=${SCENARIO_LIMIT:-240}
(
	trap 'kill $_sp 2>/dev/null; exit 0' TERM
	sleep "$SCENARIO_LIMIT" </dev/null >/dev/null 2>&1 &
	_sp=$!
	wait $_sp && echo "FAIL: scenario over ${SCENARIO_LIMIT}s" >&2 && kill -TERM $$
) &
PEER_PIDS="$PEER_PIDS $!"

# tap_expect READER PATTERN MESSAGE WHAT... : one tap, its gate line must match PATTERN
tap_expect() {
	_r=$1 _pat=$2 _msg=$3
	shift 3
	_o=$(tap "$_r" "$@")
	expect "$_o" "$_pat" "$_msg"
}

# ms : wall clock in milliseconds
ms() { echo $(($(date +%s%N) / 1000000)); }

# stats_sum OUTCOME [FILTER_AWK] : the server's statistics stream, summed over --by
# site,service,outcome (CSV), for one outcome ("granted"/"refused"/"all")
stats_csv() { adm stats --by site,service,outcome --format csv 2>/dev/null; }

# list_file SECTOR_NAME OUTDIR : exports the newest list of a sector, prints the path of its
# manifest (the version's files and list.pub.pem are beside it)
list_file() {
	rm -rf "$2"
	adm list export --sector "$1" --out "$2" >/dev/null 2>&1 || fail "list export $1"
	ls "$2"/sector-*/v*.manifest | sed -n 's/.*\/v\([0-9]*\)\.manifest$/\1 &/p' | sort -n |
		tail -n1 | cut -d' ' -f2
}

# list_key PASS SECTOR_NAME : the pass's list key in that sector (pass show --json)
list_key() {
	adm pass show "$1" --json | tr '{' '\n' | grep "\"sector\":\"$2\"" |
		sed -n 's/.*"list_key":"\([0-9a-f]*\)".*/\1/p'
}

# used_in_list SECTOR_NAME KEYHEX : the `used` counter of a list key in the newest list
used_in_list() {
	_f=$(list_file "$1" "$T/used.$$")
	"$PROBE" lookup "$_f" "$2" | sed -n 's/.* used \([0-9]*\) .*/\1/p'
	rm -rf "$T/used.$$"
}
# publish_until_used SECTOR_NAME KEYHEX N : publish until the server has folded the
# uploaded consumption into the list (bounded: 20 s). No second to wait out any more: a gate
# tells the uses a list holds by the server's usage positions, not by comparing the list's
# issue time with its ack times (issue 13; docs/controller.md, journal).
publish_until_used() {
	_d=$(($(date +%s) + 20))
	while :; do
		adm list publish --sector "$1" >/dev/null 2>&1 || true
		[ "$(used_in_list "$1" "$2")" = "$3" ] && return 0
		[ "$(date +%s)" -lt $_d ] || fail "$1 list: used $(used_in_list "$1" "$2"), expected $3"
		sleep 0.2
	done
}
# offline READER / online READER : restart a controller with its bundle pointing at a
# closed port (its server unreachable; its list and journal kept) or back at the server
offline() {
	stop_controller "$1"
	sed -i "s/^server = .*/server = 127.0.0.1:1/" "$T/bundle-$1/device.conf"
	start_controller "$1"
}
online() {
	stop_controller "$1"
	sed -i "s/^server = .*/server = 127.0.0.1:$PORT/" "$T/bundle-$1/device.conf"
	start_controller "$1"
}
