#!/bin/sh
# The list on disk is not trusted after install (docs/controller.md, "List store"); the
# real citypass-controller on the bench:
#  1. a list file edited in place (a revoked pass flipped to active): the tap is refused, not
#     admitted; the gate asks for a snapshot and is repaired, and the pass is refused as
#     revoked again;
#  2. a list file truncated to nothing: no SIGBUS, the tap is refused, the gate repairs
#     itself the same way;
#  3. an older version's files put back in the state dir: refused at open (the floor); the
#     gate decides nothing from them and takes the newest list at its next sync.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool --value-sector pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool)
bob=$(issue_card "$T/bob.card" 04B1B2B3B4B5B6 pool)
adm pass revoke "$bob" --reason lost >/dev/null 2>&1 || fail "revoke bob"
wait_list pool-1 pool
L="$T/state-pool-1/lists"
expect "$(tap pool-1 desfire "$T/bob.card")" "display=Carte révoquée" "bob refused as revoked"
key=$(adm pass show "$bob" --json | tr '{' '\n' | grep '"sector":"pool"' |
	sed -n 's/.*"list_key":"\([0-9a-f]*\)".*/\1/p')
[ -n "$key" ] || fail "no list key for bob"

# entry_offset DATFILE KEYHEX : the byte offset of the entry of that key (15 bytes each)
entry_offset() {
	_pat=$(echo "$2" | sed 's/../ &/g')
	_line=$(od -An -tx1 -v -w15 "$1" | grep -n "^$_pat" | cut -d: -f1)
	[ -n "$_line" ] || fail "key $2 not in $1"
	echo $(((_line - 1) * 15))
}
alive() { kill -0 "$(ctl_pid pool-1)" 2>/dev/null || fail "the controller died: $(tail -n 5 "$T/ctl-pool-1.log")"; }
repaired() { [ "$(grep -c "list snapshot installed" "$T/ctl-pool-1.log")" -gt "$1" ]; }

# 1. edited in place: the status bits of bob's entry set to active
dat=$(ls "$L"/c*.dat)
off=$(entry_offset "$dat" "$key")
byte=$(od -An -tu1 -j $((off + 8)) -N1 "$dat" | tr -d ' ')
printf "$(printf '\\%03o' $((byte % 64)))" | dd of="$dat" bs=1 seek=$((off + 8)) conv=notrunc 2>/dev/null
[ "$(od -An -tu1 -j $((off + 8)) -N1 "$dat" | tr -d ' ')" = $((byte % 64)) ] || fail "the edit did not take"
before=$(grep -c "list snapshot installed" "$T/ctl-pool-1.log")
out=$(tap pool-1 desfire "$T/bob.card")
expect "$out" "relay=closed led=amber display=Service indisponible" "edited in place: bob is not admitted"
grep -q "is damaged on disk: tap refused" "$T/ctl-pool-1.log" || fail "the damage was not logged"
wait_for 20 repaired "$before" || fail "no snapshot after the damage: $(tail -n 5 "$T/ctl-pool-1.log")"
expect "$(tap pool-1 desfire "$T/bob.card")" "display=Carte révoquée" "repaired by a snapshot: bob refused as revoked"
alive

# 2. truncated to nothing (was: SIGBUS)
dat=$(ls "$L"/c*.dat)
: >"$dat"
before=$(grep -c "list snapshot installed" "$T/ctl-pool-1.log")
expect "$(tap pool-1 desfire "$T/ann.card")" "led=amber display=Service indisponible" "truncated: refused, no crash"
alive
wait_for 20 repaired "$before" || fail "no snapshot after the truncation"
expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green" "repaired: ann admitted"

# 3. an older version put back through the state dir
old=$(list_version pool-1)
cp -a "$L" "$T/lists.old"
carl=$(issue_card "$T/carl.card" 04C1C2C3C4C5C6 pool)
adm pass revoke "$ann" --reason stolen >/dev/null 2>&1 || fail "revoke ann"
wait_list pool-1 pool
[ "$(list_version pool-1)" -gt "$old" ] || fail "no newer version installed"
stop_controller pool-1
stop_server
rm -rf "$L" && mv "$T/lists.old" "$L"
: >"$T/ctl-pool-1.log"
start_controller pool-1
grep -q "was not used (list version is not newer than the one held (rollback))" "$T/ctl-pool-1.log" ||
	fail "the older files were not refused at open: $(head -n 5 "$T/ctl-pool-1.log")"
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=closed" "ann (revoked since) is not admitted from the older list put back"
start_server
wait_list pool-1 pool
expect "$(tap pool-1 desfire "$T/ann.card")" "display=Carte révoquée" "after the sync: ann refused as revoked"
expect "$(tap pool-1 desfire "$T/carl.card")" "relay=open led=green" "after the sync: carl admitted"
echo "controller tamper check passed"
