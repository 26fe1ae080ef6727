#!/bin/sh
# Card key rotation through a real gate (DESIGN.md §3, issue 11): the gate's bundle holds
# version 1 of its sector key; `keys rotate` makes version 2 and the running gate gets both
# over the sync link, with no visit and no restart. It then opens new cards (version 2) and
# old ones (version 1) alike; a card moved at the desk (`card inspect --update-keys`) opens
# at version 2; after a restart offline the gate still holds what the server sent; `keys
# retire` reaches it too, and a card still at version 1 is then refused until moved.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool --value-sector pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
issue_card "$T/old.card" 04A1B2C3D4E5F6 pool >/dev/null
issue_card "$T/later.card" 04B1B2B3B4B5B6 pool >/dev/null
wait_list pool-1 pool
grep -q '^key-version 1$' "$T/bundle-pool-1/card-sector.key" || fail "bundle not at version 1"
out=$(tap pool-1 desfire "$T/old.card")
expect "$out" "relay=open led=green" "a version-1 card at a version-1 gate"

# rotate: the connected gate learns version 2 (and keeps 1) from the server
out=$(adm keys rotate --sector pool 2>&1) || fail "keys rotate: $out"
wait_for 15 grep -q "card keys: version 2, and version 1 for cards not yet moved" "$T/ctl-pool-1.log" ||
	fail "the gate did not get the new keys: $(tail -5 "$T/ctl-pool-1.log")"
grep -q '^key-version 2$' "$T/state-pool-1/card-sector.key" || fail "the gate did not keep the new keys"
[ "$(stat -c %a "$T/state-pool-1/card-sector.key")" = 600 ] || fail "kept keys not 0600"
grep -q '^key-version 1$' "$T/bundle-pool-1/card-sector.key" || fail "the bundle was rewritten"
echo "ok - the running gate got version 2 over the sync link"
issue_card "$T/new.card" 04C1C2C3C4C5C6 pool >/dev/null
wait_list pool-1 pool
out=$(tap pool-1 desfire "$T/new.card")
expect "$out" "relay=open led=green" "a card issued at version 2"
out=$(tap pool-1 desfire "$T/old.card")
expect "$out" "relay=open led=green" "a card still at version 1"

# the desk moves the old card
ctl place desk desfire "$T/old.card" >/dev/null
out=$(adm card inspect --reader "$(reader desk)" --update-keys 2>&1) || fail "update-keys: $out"
expect "$out" "1 sector\\(s\\) moved" "the desk moves the card to version 2"
ctl remove desk >/dev/null
out=$(tap pool-1 desfire "$T/old.card")
expect "$out" "relay=open led=green" "the moved card"

# a restart, server away: the gate still holds version 2 (from its state directory)
stop_server
stop_controller pool-1
start_controller pool-1
out=$(tap pool-1 desfire "$T/new.card")
expect "$out" "relay=open led=green" "offline after a restart, a version-2 card"

# retire version 1: a card left at it is refused, until moved
start_server
out=$(adm keys retire --sector pool 2>&1) || fail "keys retire: $out"
wait_for 20 grep -q "card keys: version 2 only" "$T/ctl-pool-1.log" ||
	fail "the gate did not learn the retirement: $(tail -5 "$T/ctl-pool-1.log")"
out=$(tap pool-1 desfire "$T/later.card")
expect "$out" "led=red" "a card still at the retired version 1 is refused"
ctl place desk desfire "$T/later.card" >/dev/null
out=$(adm card inspect --reader "$(reader desk)") || fail "inspect: $out"
expect "$out" "keys this deployment no longer accepts" "the desk sees the card's keys are retired"
ctl remove desk >/dev/null
echo "key rotation check passed"
