#!/bin/sh
# Issue 16, item 3: a gate fails over between two citypass-server instances on one
# PostgreSQL (run under tests/support/pg_run.sh). The gate's bundle lists both servers
# (device.conf format 3). It is served by A; A is frozen while a revocation is published
# and taps are uploaded to it, then killed with SIGKILL with that batch unacknowledged;
# the gate moves to B by itself, uploads, and receives the revocation published before A
# died; a revocation made while it is on B reaches it by B's push; B killed and A back,
# it returns to A. Every event is on the server exactly once, and the journal keeps
# nothing unacknowledged.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN, CITYPASS_TEST_PG (pg_run.sh).
. "$(dirname "$0")/lib.sh"
[ -n "${CITYPASS_TEST_PG:-}" ] || fail "run under tests/support/pg_run.sh (no CITYPASS_TEST_PG)"

deployment pool --store "$CITYPASS_TEST_PG"
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
PID_A=$SERVER_PID PORT_A=$PORT
PORT=
start_server
PID_B=$SERVER_PID PORT_B=$PORT
SERVER_PID="$PID_A $PID_B" # both stopped on exit (lib.sh)
[ "$PORT_A" != "$PORT_B" ] || fail "two servers on one port"
SERVERS="127.0.0.1:$PORT_A,127.0.0.1:$PORT_B"
enrol pool-1 pool-n pool-1
grep -q "^format = 3$" "$T/bundle-pool-1/device.conf" || fail "a bundle with two servers is not format 3"
grep -q "^server = $SERVERS$" "$T/bundle-pool-1/device.conf" || fail "the bundle does not list both servers"
start_controller pool-1
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool)
ben=$(issue_card "$T/ben.card" 04B1B2B3B4B5B6 pool)
wait_list pool-1 pool
log="$T/ctl-pool-1.log"
grep -q "connected to 127.0.0.1:$PORT_A" "$log" || fail "the gate did not start with the first server"
: >"$T/taps"
taps() { wc -l <"$T/taps" | tr -d ' '; }
server_exact() { [ "$(server_count)" = "$(taps)" ]; }
# tap_as READER CARD PATTERN MESSAGE
tap_as() {
	echo tap >>"$T/taps"
	expect "$(tap "$1" desfire "$T/$2.card")" "$3" "$4"
}

tap_as pool-1 ann "relay=open led=green" "on A: Ann"
tap_as pool-1 ben "relay=open led=green" "on A: Ben"
wait_for 15 server_exact || fail "on A: server counts $(server_count), expected $(taps)"

# A frozen: it holds its gate's connection but answers nothing. A revocation is published
# in the database meanwhile (A cannot push it), and the gate's taps go to A unanswered.
kill -STOP "$PID_A"
adm pass revoke "$ben" --reason stolen >/dev/null 2>&1 || fail "revoke Ben"
tap_as pool-1 ann "relay=open led=green" "A frozen: Ann"
tap_as pool-1 ben "relay=open led=green" "A frozen: Ben (the gate has not heard yet)"
sleep 0.5 # the batch is in flight to A
unacked=$(sql "$T/state-pool-1/journal.db" "select count(*) from stat")
[ "$unacked" -gt 0 ] || fail "no batch left unacknowledged by the frozen server"
kill -KILL "$PID_A"
wait "$PID_A" 2>/dev/null || true
SERVER_PID=$PID_B

# the gate moves to B by itself, uploads what A never acknowledged, and gets the list
wait_for 30 grep -q "connected to 127.0.0.1:$PORT_B" "$log" || fail "the gate did not move to B"
echo "ok - the gate moved to B after A was killed"
wait_for 30 server_exact || fail "after failover: server counts $(server_count), expected $(taps)"
echo "ok - all $(taps) events once after the failover"
wait_list pool-1 pool
tap_as pool-1 ben "led=red display=Carte révoquée" "on B: the revocation published before A died"

# a change made while the gate is on B reaches it by B's push
before=$(list_version pool-1)
adm pass revoke "$ann" --reason lost >/dev/null 2>&1 || fail "revoke Ann"
wait_list pool-1 pool
[ "$(list_version pool-1)" -gt "$before" ] || fail "no new version on B"
tap_as pool-1 ann "led=red display=Carte révoquée" "on B: the revocation published while on B"
wait_for 15 server_exact || fail "on B: server counts $(server_count), expected $(taps)"

# B killed, A back on its port: the gate goes round its list to A
PORT=$PORT_A
start_server
PID_A=$SERVER_PID
SERVER_PID="$PID_A $PID_B"
n_a=$(grep -c "connected to 127.0.0.1:$PORT_A" "$log" || true)
kill -KILL "$PID_B"
wait "$PID_B" 2>/dev/null || true
SERVER_PID=$PID_A
more_on_a() { [ "$(grep -c "connected to 127.0.0.1:$PORT_A" "$log")" -gt "$n_a" ]; }
wait_for 30 more_on_a || fail "the gate did not come back to A"
tap_as pool-1 ben "led=red display=Carte révoquée" "on A again"
wait_for 30 server_exact || fail "back on A: server counts $(server_count), expected $(taps)"
echo "ok - exactly $(taps) events after two failovers"

# the journal keeps nothing unacknowledged
stop_controller pool-1
pending=$(sql "$T/state-pool-1/journal.db" "select count(*) from stat")
[ "$pending" = 0 ] || fail "$pending statistics rows left unacknowledged"
echo "controller failover check passed"
