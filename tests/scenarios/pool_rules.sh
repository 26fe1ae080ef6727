#!/bin/sh
# Scenario 5 — opening hours and anti-passback at the pool. Two pool sites:
#   pool-c: open tomorrow only (site zone Europe/Paris: now is always outside its hours),
#           anti-passback 30 min;
#   pool-a: open always, anti-passback 30 min.
# A card with 5 entries on its value file: refused "Hors horaires d'ouverture" at pool-c
# (twice), granted once at pool-a ("4 entrées
# restantes"), then refused "Passage déjà enregistré" there. The value file, read back
# with the pool gate's own bundle key, still holds 4: refusals debit nothing.
# Server: statistics pool-c 2 refused; pool-a 1 granted, 1 refused; the bundles carry the
# site rules (device.conf hours / antipassback-minutes).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN PROBE.
. "$(dirname "$0")/common.sh"
: "${PROBE:?}"

deployment pool --value-sector pool
days="Mon Tue Wed Thu Fri Sat Sun"
tomorrow=$(echo $days | cut -d' ' -f$(($(TZ=Europe/Paris date +%u) % 7 + 1)))
adm site add pool-c --sector pool --hours "$tomorrow 09:00-18:00" --antipassback 30 >/dev/null
adm site add pool-a --sector pool --antipassback 30 >/dev/null
start_bench pool-1 pool-2
start_server
enrol pool-gc pool-c pool-1
enrol pool-ga pool-a pool-2
grep -q "^hours = $tomorrow 09:00-18:00" "$T/bundle-pool-1/device.conf" || fail "pool-c bundle hours"
grep -q "^antipassback-minutes = 30" "$T/bundle-pool-2/device.conf" || fail "pool-a bundle anti-passback"
start_controller pool-1
start_controller pool-2
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool,entries=5)
[ -n "$ann" ] || fail "pass not issued"
wait_list pool-1 pool
wait_list pool-2 pool

tap_expect pool-1 "relay=closed led=red display=Hors horaires d'ouverture" "pool-c closed now ($tomorrow only): refused" desfire "$T/ann.card"
tap_expect pool-1 "relay=closed led=red display=Hors horaires d'ouverture" "pool-c: a second tap refused too (hours are checked before anti-passback)" desfire "$T/ann.card"
tap_expect pool-2 "relay=open led=green display=Bienvenue – 4 entrées restantes" "pool-a: first entry granted, one entry debited" desfire "$T/ann.card"
tap_expect pool-2 "relay=closed led=red display=Passage déjà enregistré – réessayez dans (30|29) min" "pool-a: second entry within 30 min refused" desfire "$T/ann.card"

ctl place desk desfire "$T/ann.card" >/dev/null
val=$("$PROBE" card-read "$(reader desk)" "$T/bundle-pool-2" | sed -n 's/^value //p')
ctl remove desk >/dev/null
[ "$val" = 4 ] || fail "the card holds $val entries, expected 4"
echo "ok - the card's value file holds 4: the three refusals debited nothing"

all() { [ "$(server_count)" -ge 4 ]; }
wait_for 20 all || fail "server counts $(server_count) decisions, expected 4"
c=$(stats_csv)
cell() { echo "$c" | awk -F, -v s="$1" -v o="$2" '$1 == s && $3 == o { n += $4 } END { print n + 0 }'; }
[ "$(cell pool-c refused)" = 2 ] && [ "$(cell pool-c granted)" = 0 ] &&
	[ "$(cell pool-a granted)" = 1 ] && [ "$(cell pool-a refused)" = 1 ] ||
	fail "server statistics: $c"
echo "ok - server statistics: pool-c 0 granted / 2 refused, pool-a 1 granted / 1 refused"
echo "scenario pool_rules passed"
