#!/bin/sh
# Scenario 2 — replacement. A card with rights in three sectors (pool: 5 entries on the
# card's value file; library: quota 5/week per pass; waste: quota 3/year per household)
# is used once in each, then `pass replace --reader` issues a new card.
# Gates: the new card is granted at every gate the old one was; the old card is refused
# ("Carte remplacée") at all of them. Server: the old pass is `replaced` and points at
# the new one, the new pass has the same rights text, new list keys in every sector, the
# old keys stay listed with status 2 (replaced); quota counters as the server counts
# them carry over (household: used 1 before, 2 after the new card's visit).
# The card value file: see the KNOWN GAP line below (entries left are not carried).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN PROBE.
. "$(dirname "$0")/common.sh"
: "${PROBE:?}"

deployment pool,library,waste --value-sector pool
adm site add pool-n --sector pool >/dev/null
adm site add lib-c --sector library >/dev/null
adm site add waste-a --sector waste >/dev/null
adm household add dupont >/dev/null
start_bench pool-1 library-1 waste-1
start_server
enrol pool-g1 pool-n pool-1
enrol lib-g1 lib-c library-1
enrol waste-g1 waste-a waste-1
for r in pool-1 library-1 waste-1; do start_controller $r; done
old=$(HOUSEHOLD=dupont issue_card "$T/old.card" 04A1B2C3D4E5F6 pool,entries=5 \
	library,quota=5/week waste,quota=3/year/household)
[ -n "$old" ] || fail "pass not issued"
for s in pool:pool-1 library:library-1 waste:waste-1; do wait_list "${s#*:}" "${s%%:*}"; done

tap_expect pool-1 "relay=open led=green display=Bienvenue – 4 entrées restantes" "old card: pool, 4 entries left on the card" desfire "$T/old.card"
tap_expect library-1 "relay=open led=green display=Bienvenue – 4 passages restants cette semaine" "old card: library, 4 left this week" desfire "$T/old.card"
tap_expect waste-1 "relay=open led=green display=Bienvenue – 2 passages restants cette année" "old card: waste, 2 left this year" desfire "$T/old.card"
three() { [ "$(server_count granted)" -ge 3 ]; }
wait_for 20 three || fail "server counts $(server_count granted) grants, expected 3"
wait_for 20 uses_acked library-1 waste-1 || fail "the uses were not acknowledged"

# replacement on a new card at the desk
ctl place desk desfire "$T/new.card" uid=04C1C2C3C4C5C6 >/dev/null
out=$(adm pass replace "$old" --reason lost --reader "$(reader desk)" 2>&1) || fail "pass replace: $out"
ctl remove desk >/dev/null
new=$(echo "$out" | sed -n 's/^pass [0-9]* replaced by pass \([0-9]*\).*/\1/p')
[ -n "$new" ] || fail "pass replace said: $out"
echo "ok - pass $old replaced by pass $new"
for s in pool:pool-1 library:library-1 waste:waste-1; do wait_list "${s#*:}" "${s%%:*}"; done

# server records
adm pass show "$old" | grep -q "^state: replaced" || fail "old pass: $(adm pass show "$old")"
adm pass show "$old" | grep -q "^replaced by: pass $new$" || fail "old pass does not point at $new"
rights() { adm pass show "$1" | sed -n 's/^  \([a-z]*\) *\(.*\) (list key.*/\1 \2/p'; }
[ -n "$(rights "$new")" ] && [ "$(rights "$old")" = "$(rights "$new")" ] ||
	fail "rights differ: old [$(rights "$old")] new [$(rights "$new")]"
echo "ok - server: old pass replaced -> pass $new, same rights in every sector"
for s in pool library waste; do
	ko=$(list_key "$old" $s) kn=$(list_key "$new" $s)
	[ -n "$ko" ] && [ -n "$kn" ] && [ "$ko" != "$kn" ] || fail "$s list keys old=$ko new=$kn"
	f=$(list_file $s "$T/ex-$s")
	"$PROBE" lookup "$f" "$ko" | grep -q "^status 2 " || fail "$s list: old key $("$PROBE" lookup "$f" "$ko")"
	"$PROBE" lookup "$f" "$kn" | grep -q "^status 0 " || fail "$s list: new key $("$PROBE" lookup "$f" "$kn")"
done
echo "ok - every sector's list: old key status replaced, new key active, keys differ"
f=$(list_file waste "$T/ex-waste")
"$PROBE" lookup "$f" "$(list_key "$new" waste)" | grep -q " used 1 " ||
	fail "waste list: new pass $("$PROBE" lookup "$f" "$(list_key "$new" waste)")"
echo "ok - waste list: the household's used counter (1) carried to the new pass"

# the new card's value file
ctl place desk desfire "$T/new.card" >/dev/null
val=$("$PROBE" card-read "$(reader desk)" "$T/bundle-pool-1" | sed -n 's/^value //p')
ctl remove desk >/dev/null
if [ "$val" = 4 ]; then
	echo "ok - the new card carries the 4 entries left on the old one"
else
	# entries on a card are debited on the card, offline: the server cannot know what a
	# lost card had left, so the new card gets the granted N (docs/admin.md)
	echo "not ok - KNOWN LIMIT: the new card's value file holds $val entries, the old card had 4 left (a lost card cannot be read)"
fi

# gates: the new card everywhere, the old one nowhere
tap_expect pool-1 "relay=open led=green display=Bienvenue – $((val - 1)) entrées restantes" "new card: pool granted" desfire "$T/new.card"
tap_expect waste-1 "relay=open led=green display=Bienvenue – 1 passage restant cette année" "new card: waste granted, household counter kept (1 left)" desfire "$T/new.card"
lib=$(tap library-1 desfire "$T/new.card")
expect "$lib" "relay=open led=green" "new card: library granted"
if printf '%s' "$lib" | grep -q "3 passages restants"; then
	echo "ok - library pass-scoped weekly counter kept (3 left)"
else
	fail "library pass-scoped quota counter reset on replacement: $lib"
fi
for r in pool-1 library-1 waste-1; do
	tap_expect $r "relay=closed led=red display=Carte remplacée" "old card refused at $r" desfire "$T/old.card"
done
all() { [ "$(server_count)" -ge 9 ]; }
wait_for 20 all || fail "server counts $(server_count) decisions, expected 9"
[ "$(server_count granted)" = 6 ] && [ "$(server_count refused)" = 3 ] ||
	fail "server: $(server_count granted) granted / $(server_count refused) refused, expected 6/3"
echo "ok - server statistics: 6 granted, 3 refused"
echo "scenario replacement passed"
