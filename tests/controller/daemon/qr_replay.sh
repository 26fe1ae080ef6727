#!/bin/sh
# A QR screenshot does not work twice inside its window, across a reload and a restart
# (issue 10, item 7, left open there; done in issue 13): the codes a gate accepted are
# remembered in its journal with their decision, not only in memory.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
issue_phone "$T/phone" 1 pool >/dev/null
wait_list pool-1 pool

# one code, and a second taken a time step later (both inside their window to the end)
code=$(timeout 20 "$TOKEN" show-qr --wallet "$T/phone" --sector 1)
out=$(scan pool-1 "$code")
expect "$out" "relay=open led=green" "the code, first time"
out=$(scan pool-1 "$code")
expect "$out" "led=red display=Code QR déjà utilisé" "the same code again (memory)"

# SIGHUP: everything is restarted with the configuration, the reader loop included
pid=$(ctl_pid pool-1)
kill -HUP "$pid"
wait_for 10 grep -q "reloaded:" "$T/ctl-pool-1.log" || fail "no reload"
out=$(scan pool-1 "$code")
expect "$out" "led=red display=Code QR déjà utilisé" "the same code after a reload"

# a restart of the daemon
stop_controller pool-1
start_controller pool-1
out=$(scan pool-1 "$code")
expect "$out" "led=red display=Code QR déjà utilisé" "the same code after a restart"

# what is kept: the pass's list key and the code's time step, until its window ends
n=$(sql "$T/state-pool-1/journal.db" "select count(*) from qr_seen where expires >= strftime('%s','now')")
[ "$n" = 1 ] || fail "the journal remembers $n live QR codes, expected 1"
echo "controller QR replay check passed"
