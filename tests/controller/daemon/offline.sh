#!/bin/sh
# Offline: the server stops, the gate keeps deciding from its signed list and journals
# every tap; the server comes back on the same port, the controller reconnects by itself
# and every event arrives exactly once (checked again after a second server restart, when
# the controller's Hello replays its acked sequences). A revocation published while the
# gate is offline takes effect when it is back.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool --value-sector pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
ben=$(issue_card "$T/ben.card" 04B1B2B3B4B5B6 pool)
wait_list pool-1 pool
: >"$T/taps"
taps() { wc -l <"$T/taps" | tr -d ' '; }
server_exact() { [ "$(server_count)" = "$(taps)" ]; }

# online: two taps
for c in ann ben; do
	echo tap >>"$T/taps"
	out=$(tap pool-1 desfire "$T/$c.card")
	expect "$out" "relay=open led=green" "online tap ($c)"
done
wait_for 15 server_exact || fail "online: server counts $(server_count), expected $(taps)"

# offline: ten taps, all decided at once from the held list
stop_server
wait_for 10 grep -q "closed\|lost\|failed\|reconnect" "$T/ctl-pool-1.log" || true
i=0
while [ $i -lt 10 ]; do
	i=$((i + 1))
	c=ann
	[ $((i % 2)) = 0 ] && c=ben
	echo tap >>"$T/taps"
	out=$(tap pool-1 desfire "$T/$c.card")
	expect "$out" "relay=open led=green" "offline tap $i"
done
# a revocation made while the gate is offline
adm pass revoke "$ben" --reason stolen >/dev/null 2>&1 || fail "revoke"

# back online on the same port: everything arrives, once
start_server
wait_for 30 server_exact || fail "after reconnect: server counts $(server_count), expected $(taps)"
echo "ok - all $(taps) events arrived after the server came back"
wait_list pool-1 pool
echo tap >>"$T/taps"
out=$(tap pool-1 desfire "$T/ben.card")
expect "$out" "led=red display=Carte révoquée" "the revocation made offline applies once back"

# the server restarts again: the controller's resent Hello duplicates nothing
stop_server
start_server
wait_for 15 grep -c "Hello as pool-1" "$T/ctl-pool-1.log" >/dev/null || true
sleep 2
wait_for 15 server_exact || fail "after a second restart: server counts $(server_count), expected $(taps)"
echo "ok - exactly $(taps) events after a second server restart"

# the journal keeps nothing unacknowledged
stop_controller pool-1
pending=$(sql "$T/state-pool-1/journal.db" "select count(*) from stat")
[ "$pending" = 0 ] || fail "$pending statistics rows left unacknowledged"
echo "controller offline check passed"
