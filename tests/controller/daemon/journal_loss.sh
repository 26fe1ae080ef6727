#!/bin/sh
# A gate that loses its journal recovers alone (issue 10, item 1): its state directory is
# wiped (a new SD card, the same bundle), then restored from an older copy that still holds
# two decisions the server got since. Each time the gate must sync again, take its list,
# and every decision must reach the server exactly once: none lost, none dropped as a false
# duplicate (new taps reuse sequence numbers the server already holds), none counted twice
# (the copy's old rows are uploaded again).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
wait_list pool-1 pool
: >"$T/taps"
taps() { wc -l <"$T/taps" | tr -d ' '; }
server_exact() { [ "$(server_count)" = "$(taps)" ]; }
# taps N WHAT : N granted taps, each counted
taps_n() {
	for _i in $(seq 1 "$1"); do
		echo tap >>"$T/taps"
		expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green" "$2 tap $_i"
	done
}
exact() {
	wait_for 30 server_exact || fail "$1: the server counts $(server_count), expected $(taps)"
	sleep 2 # a late duplicate would show now
	server_exact || fail "$1: the server counts $(server_count) after a while, expected $(taps)"
	echo "ok - $1: the server holds exactly $(taps) decisions"
}

taps_n 3 online
exact "online"

# a copy of the state directory holding two decisions not yet acknowledged
stop_server
taps_n 2 offline
stop_controller pool-1
cp -a "$T/state-pool-1" "$T/backup"
start_controller pool-1
start_server
exact "back online"
taps_n 2 "after the copy"
exact "after the copy"

# 1. wiped: a new SD card, the same bundle
stop_controller pool-1
rm -rf "$T/state-pool-1"
start_controller pool-1
wait_list pool-1 pool
echo "ok - the wiped gate synced and holds the list again"
taps_n 2 "wiped gate"
exact "wiped state directory"
[ "$(grep -c "refused by the journal" "$T/ctl-pool-1.log")" = 0 ] ||
	fail "the gate refused the server's acknowledgements"

# 2. restored from the older copy, offline first: its two old rows, already on the server,
# go again (duplicates), and the new taps reuse sequence numbers the server holds
stop_controller pool-1
stop_server
rm -rf "$T/state-pool-1"
cp -a "$T/backup" "$T/state-pool-1"
start_controller pool-1
taps_n 2 "restored, offline"
start_server
exact "restored from an older copy (offline taps)"
wait_list pool-1 pool
taps_n 2 "restored, online"
exact "restored from an older copy"

# and a server restart after all that duplicates nothing
stop_server
start_server
exact "after a server restart"
echo "controller journal loss check passed"
