#!/bin/sh
# Scenario 6 — a gate enrolled for the pool cannot read the library sector of a card.
# Card: pool and library rights. With the pool gate's bundle (card-sector.key: sector 1,
# slot 0, the pool master), server_probe card-read reads the pool file (its list key =
# the pass's pool list key). The same bundle aimed at the library slot (sector 2, slot 1,
# still the pool master: the only key a pool gate holds) is refused with an
# authentication failure. The pool bundle holds the pool slot master and no other slot's
# (compared with the server's keys/card.keys). The exported pool list has the pool key and
# no entry for the pass's library list key, which differs from the pool one. At the gates:
# the pool gate grants, and a library-only card is "Carte inconnue" there.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN PROBE LISTTOOL.
. "$(dirname "$0")/common.sh"
: "${PROBE:?}" "${LISTTOOL:?}"

deployment pool,library
adm site add pool-n --sector pool >/dev/null
adm site add lib-c --sector library >/dev/null
start_bench pool-1 library-1
start_server
enrol pool-g1 pool-n pool-1
enrol lib-g1 lib-c library-1
start_controller pool-1
start_controller library-1
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool library)
bob=$(issue_card "$T/bob.card" 04B1B2B3B4B5B6 library)
[ -n "$ann" ] && [ -n "$bob" ] || fail "passes not issued"
kp=$(list_key "$ann" pool) kl=$(list_key "$ann" library) kb=$(list_key "$bob" library)
[ -n "$kp" ] && [ -n "$kl" ] && [ "$kp" != "$kl" ] || fail "list keys pool=$kp library=$kl"
echo "ok - the pass's pool and library list keys differ ($kp / $kl)"
wait_list pool-1 pool
wait_list library-1 library

# the key material of the pool gate
K=$T/bundle-pool-1/card-sector.key
grep -q "^sector 1$" "$K" && grep -q "^slot 0$" "$K" || fail "pool bundle key: $(grep -v master "$K")"
pm=$(sed -n 's/^master //p' "$K")
ck=$CITYPASS_DATA/keys/card.keys
[ "$(sed -n 's/^slot-master 0 \([0-9a-f]*\).*/\1/p' "$ck")" = "$pm" ] || fail "the pool bundle's master is not slot 0's"
lm=$(sed -n 's/^slot-master 1 \([0-9a-f]*\).*/\1/p' "$ck")
[ -n "$lm" ] && [ "$lm" != "$pm" ] || fail "library slot master missing or equal"
grep -rqi "$lm" "$T/bundle-pool-1" && fail "the pool bundle holds the library master key"
grep -qi "$(sed -n 's/^app-master //p' "$ck")" "$K" && fail "the pool bundle holds the application master key"
[ "$(grep -c '^master ' "$K")" = 1 ] || fail "the pool bundle holds more than one master key"
echo "ok - the pool bundle holds only the pool slot master (not the library's nor the application master)"

ctl place desk desfire "$T/ann.card" >/dev/null
out=$("$PROBE" card-read "$(reader desk)" "$T/bundle-pool-1" 2>&1) || fail "pool read: $out"
echo "$out" | grep -q "^list-key $kp$" || fail "pool read: $out"
echo "ok - with the pool key the pool file reads, list key $kp"
mkdir "$T/pool-as-lib"
cp -p "$T"/bundle-pool-1/* "$T/pool-as-lib/"
sed -e 's/^sector .*/sector 2/' -e 's/^slot .*/slot 1/' -e 's/^reads-value .*/reads-value 0/' "$K" >"$T/pool-as-lib/card-sector.key"
sed -i 's/^sector = .*/sector = 2/' "$T/pool-as-lib/device.conf"
rc=0
out=$("$PROBE" card-read "$(reader desk)" "$T/pool-as-lib" 2>&1) || rc=$?
ctl remove desk >/dev/null
[ $rc = 1 ] || fail "reading the library file with the pool key: rc $rc: $out"
echo "$out" | grep -qi "authentication failed" || fail "reading the library file with the pool key: $out"
echo "$out" | grep -q "$kl" && fail "the library list key leaked: $out"
echo "ok - the library file with the pool key: refused (${out#refused: })"

# the pool list
f=$(list_file pool "$T/ex")
"$LISTTOOL" verify "$f" --pub "$(dirname "$f")/list.pub.pem" --sig "$f.sig" --sector 1 >/dev/null 2>&1 ||
	fail "the pool list does not verify"
"$PROBE" lookup "$f" "$kp" | grep -q "^status 0 " || fail "pool list: pool key absent"
"$PROBE" lookup "$f" "$kl" >/dev/null 2>&1 && fail "pool list holds the library key $kl"
"$PROBE" lookup "$f" "$kb" >/dev/null 2>&1 && fail "pool list holds bob's library key $kb"
n=$("$LISTTOOL" show "$f" --json | sed -n 's/.*"entries":\([0-9]*\).*/\1/p')
[ -z "$n" ] || [ "$n" = 1 ] || fail "the pool list holds $n entries, expected 1"
echo "ok - the pool list (verified) holds the pool key only: no library list key (${n:-?} entry)"

tap_expect pool-1 "relay=open led=green" "pool gate: the pool right granted" desfire "$T/ann.card"
tap_expect pool-1 "relay=closed led=red display=Carte inconnue" "pool gate: a library-only card unknown" desfire "$T/bob.card"
tap_expect library-1 "relay=open led=green" "library gate: the library right granted" desfire "$T/bob.card"
all() { [ "$(server_count)" -ge 3 ]; }
wait_for 20 all || fail "server counts $(server_count) decisions, expected 3"
[ "$(server_count granted)" = 2 ] && [ "$(server_count refused)" = 1 ] || fail "server statistics"
echo "ok - server statistics: 2 granted, 1 refused"
echo "scenario sector_isolation passed"
