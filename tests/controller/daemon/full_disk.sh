#!/bin/sh
# A full disk never takes a citizen's paid entries (issue 10, item 2), and a decision that
# cannot be journalled opens nothing (item 8: the fail-closed branch). The gate's state
# directory is a small tmpfs, filled for real; a card holding 10 entries is tapped three
# times while nothing can be written: each tap is refused ("Service indisponible", relay
# closed) and the card keeps every entry, because the Debit is committed on the card only
# after the decision is durable. Space back, the next tap takes one entry: 10 -> 9 -> 8.
# Needs root (mount); exits 77 (skipped) without it.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

mkdir "$T/state-pool-1"
if ! mount -t tmpfs -o size=1m,mode=0700 citypass-full-disk "$T/state-pool-1" 2>/dev/null; then
	echo "SKIP: cannot mount a tmpfs here (needs root)"
	exit 77
fi
EXTRA_CLEANUP="umount '$T/state-pool-1'"

deployment pool --value-sector pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool,entries=10 >/dev/null
wait_list pool-1 pool

expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green display=Bienvenue – 9 entrées" \
	"a tap takes one entry (10 -> 9)"
wait_for 15 sh -c "[ \"\$(sqlite3 '$T/state-pool-1/journal.db' 'select count(*) from stat')\" = 0 ]" ||
	fail "the first tap was not uploaded"

# the disk fills up: every block of the tmpfs taken
dd if=/dev/zero of="$T/state-pool-1/fill" bs=64k >/dev/null 2>&1 || true
dd if=/dev/zero of="$T/state-pool-1/fill2" bs=512 >/dev/null 2>&1 || true
[ "$(df -P "$T/state-pool-1" | awk 'NR == 2 { print $4 }')" = 0 ] || fail "the tmpfs is not full"
for i in 1 2 3; do
	out=$(tap pool-1 desfire "$T/ann.card")
	expect "$out" "relay=closed led=amber display=Service indisponible" \
		"full disk, tap $i: refused, the gate stays closed"
done
grep -q "journal append failed" "$T/ctl-pool-1.log" || fail "the controller did not log the journal failure"

# space again: the card still holds 9 entries, and the next tap takes one
rm -f "$T/state-pool-1/fill" "$T/state-pool-1/fill2"
expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green display=Bienvenue – 8 entrées" \
	"the refused taps cost nothing (9 -> 8)"
wait_for 15 sh -c "[ \"\$(sqlite3 '$T/state-pool-1/journal.db' 'select count(*) from stat')\" = 0 ]" ||
	fail "the last tap was not uploaded"
[ "$(server_count granted)" = 2 ] || fail "the server counts $(server_count granted) grants, expected 2"
[ "$(server_count)" = 2 ] || fail "the server counts $(server_count) decisions, expected 2"
echo "ok - the server holds the 2 grants and nothing of the refused taps"
echo "controller full disk check passed"
