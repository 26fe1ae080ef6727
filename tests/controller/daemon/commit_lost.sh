#!/bin/sh
# The tap path's commit-failure branch (docs/controller.md, "Entries on the card"; left
# without a bench test by issue 10): the card leaves the field while its CommitTransaction
# runs — the card commits the debit, the answer never reaches the gate — after the
# decision's pending row is durable. The gate withdraws the row (nothing of it reaches the
# server), asks for the card again, and remembers what the card held: back with one entry
# less, the entry was paid, so the citizen is let in without a second debit and that grant
# is journalled then. Counted once, charged once. The Debit's answer lost instead (the
# debit never committed: the card drops it) costs nothing either.
# Real binaries; the bench's `place … pull-after=N` (issue 11) pulls the card during its
# Nth exchange (an ordinary tap says which are the Debit and the CommitTransaction).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool --value-sector pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool,entries=10 >/dev/null
wait_list pool-1 pool
journal_rows() { sql "$T/state-pool-1/journal.db" "select count(*) from stat"; }
# tap_pulled READER IMAGE N : the card pulled away during its Nth exchange; prints the gate
# line (the card leaves by itself: the controller may see the field empty before `remove`)
tap_pulled() {
	_since=$(now_us)
	ctl place "$1" desfire "$2" "pull-after=$3" >/dev/null
	wait_for 15 sh -c "$HIL ctl --run-dir $BENCH outputs $1 since=$_since | grep -Eq 'led=(green|red|amber)'" ||
		fail "no gate decision for the pulled card"
	ctl outputs "$1" "since=$_since" | grep -E "led=(green|red|amber)" | head -n1
	ctl remove "$1" >/dev/null
}

# An ordinary tap (10 -> 9) tells which exchanges the Debit and the CommitTransaction are
# (the last two before the gate opens), whatever cardlib's read costs.
since=$(now_us)
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green display=Bienvenue – 9 entrées restantes" "an ordinary tap"
commit=$(ctl events "since=$since" | awk '$2 == "pool-1" && $3 == "placed" { on = 1 }
	on && $4 == "InDataExchange" { n++ } on && $3 == "gate" { print n; exit }')
debit=$((commit - 1))
echo "the CommitTransaction is exchange $commit of a tap, the Debit $debit"
wait_for 15 sh -c "[ \"\$(sqlite3 '$T/state-pool-1/journal.db' 'select count(*) from stat')\" = 0 ]" ||
	fail "the first tap was not uploaded"

# the commit's answer lost: the card took the entry (9 -> 8), the gate cannot know it
out=$(tap_pulled pool-1 "$T/ann.card" "$commit")
expect "$out" "relay=closed led=amber display=Lecture incomplète" \
	"commit unanswered: the citizen is asked to tap again, the gate stays closed"
grep -q "read failed" "$T/ctl-pool-1.log" || fail "the lost answer is not logged"
[ "$(journal_rows)" = 0 ] || fail "the withdrawn decision is still in the journal ($(journal_rows) rows)"
sleep 1
[ "$(server_count)" = 1 ] || fail "the server got $(($(server_count) - 1)) decision(s) of the withdrawn tap"
echo "ok - the pending row is withdrawn: nothing reached the server"

# back on the reader: 8 entries, the one taken was paid — admitted, nothing more debited
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green display=Bienvenue – 8 entrées restantes" \
	"the card back with one entry less: admitted without a second debit"
grep -q "unanswered commit had taken the entry" "$T/ctl-pool-1.log" ||
	fail "the paid entry is not logged"
wait_for 15 sh -c "[ \"\$($ADMIN stats --by outcome --format csv 2>/dev/null | awk -F, 'NR > 1 { s += \$NF } END { print s + 0 }')\" = 2 ]" ||
	fail "the server counts $(server_count) decisions, expected 2"
echo "ok - one grant on the server for the one entry paid"

# the next tap is an ordinary one: 8 -> 7
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green display=Bienvenue – 7 entrées restantes" "the next tap takes one entry"

# the Debit's answer lost: never committed, the card drops it when it leaves the field
out=$(tap_pulled pool-1 "$T/ann.card" "$debit")
expect "$out" "relay=closed led=amber display=Lecture incomplète" "debit unanswered: tap again"
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green display=Bienvenue – 6 entrées restantes" \
	"the card kept its entry (7), this tap takes one"
wait_for 15 sh -c "[ \"\$($ADMIN stats --by outcome --format csv 2>/dev/null | awk -F, 'NR > 1 { s += \$NF } END { print s + 0 }')\" = 4 ]" ||
	fail "the server counts $(server_count) decisions, expected 4"
[ "$(server_count granted)" = 4 ] || fail "the server counts $(server_count granted) grants, expected 4"
echo "controller commit-lost check passed"
