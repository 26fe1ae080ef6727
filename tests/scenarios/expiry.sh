#!/bin/sh
# Scenario 4 — list expiry at gates whose server is unreachable, under each site policy.
# The deployment's lists are valid 1 day (--list-validity-days 1, the minimum); the last
# list is published with citypass-admin's test clock (CITYPASS_NOW) one day minus a few
# seconds in the past, so it expires a few seconds after the gates installed it (the
# controller has no clock-offset option). Then the server stops and the list expires:
#   pool-r (expiry-policy refuse): "Service indisponible – liste périmée" for a known card;
#   pool-g (expiry-policy grace:2): the known card is granted, the controller logs it as a
#   stale-list grant and the gate display says the list is not up to date,
#   a card the list does not hold still refused ("Carte inconnue").
# Before expiry both grant normally. Server side, after the server is back, the statistics
# hold the refusals and grants of both gates; the published list header states the
# expiry (citypass-list show), and citypass-list verify refuses it as expired.
# Not covered end to end: the end of the grace period (hours later: no clock control on
# the controller; unit-tested in test_controller_list_store).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN LISTTOOL.
. "$(dirname "$0")/common.sh"
: "${LISTTOOL:?}"
AHEAD=${EXPIRY_AHEAD_S:-8}

deployment pool,library --list-validity-days 1
adm site add pool-r --sector pool --expiry-policy refuse >/dev/null
adm site add pool-g --sector pool --expiry-policy grace:2 >/dev/null
start_bench pool-1 pool-2
start_server
enrol pool-gr pool-r pool-1
enrol pool-gg pool-g pool-2
grep -q "^expiry-policy = refuse" "$T/bundle-pool-1/device.conf" || fail "pool-r bundle policy"
grep -q "^expiry-policy = grace:2" "$T/bundle-pool-2/device.conf" || fail "pool-g bundle policy"
start_controller pool-1
start_controller pool-2
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool)
# bob has library rights only: a citypass card the pool list does not hold
bob=$(issue_card "$T/bob.card" 04B1B2B3B4B5B6 library)
[ -n "$ann" ] && [ -n "$bob" ] || fail "passes not issued"

# the last list before the outage expires AHEAD seconds from now
exp=$(($(date +%s) + AHEAD))
env CITYPASS_NOW=$((exp - 86400)) timeout 60 "$ADMIN" list publish --sector pool >/dev/null 2>&1 ||
	fail "list publish with the test clock"
wait_list pool-1 pool
wait_list pool-2 pool
f=$(list_file pool "$T/ex")
"$LISTTOOL" show "$f" --json | grep -q "$exp" || fail "list header: $("$LISTTOOL" show "$f" --json)"
echo "ok - both gates hold list v$(list_version pool-1), expiring at $exp (in ${AHEAD}s)"
tap_expect pool-1 "relay=open led=green display=Bienvenue$" "fresh list: granted at pool-r" desfire "$T/ann.card"
tap_expect pool-2 "relay=open led=green display=Bienvenue$" "fresh list: granted at pool-g" desfire "$T/ann.card"

stop_server
while [ "$(date +%s)" -le "$exp" ]; do sleep 0.2; done
sleep 0.5
"$LISTTOOL" verify "$f" --pub "$(dirname "$f")/list.pub.pem" --sig "$f.sig" --sector 1 >/dev/null 2>&1 &&
	fail "citypass-list verify accepts the expired list"
echo "ok - citypass-list verify refuses the list now that it has expired"
tap_expect pool-1 "relay=closed led=red display=Service indisponible – liste périmée" "expired list, policy refuse: known card refused" desfire "$T/ann.card"
tap_expect pool-1 "relay=closed led=red display=Service indisponible – liste périmée" "expired list, policy refuse: unknown card refused" desfire "$T/bob.card"
o=$(tap pool-2 desfire "$T/ann.card")
expect "$o" "relay=open led=green display=Bienvenue" "expired list, policy grace:2: known card granted"
grep -q "tap card granted reason=ok .*(stale list)" "$T/ctl-pool-2.log" ||
	fail "pool-2's log has no stale-list grant"
echo "ok - the controller logs the grant as made on a stale list"
if printf '%s\n' "$o" | grep -Eiq "p[ée]rim|hors ligne|stale|liste"; then
	echo "ok - the gate display shows the stale list: ${o#*display=}"
else
	fail "the gate display does not show the stale list: ${o#*display=}"
fi
tap_expect pool-2 "relay=closed led=red display=Carte inconnue" "expired list, policy grace:2: unknown card refused" desfire "$T/bob.card"

# server back: the gates' decisions arrive
start_server
all() { [ "$(server_count)" -ge 6 ]; }
wait_for 30 all || fail "server counts $(server_count) decisions, expected 6"
c=$(stats_csv)
r1=$(echo "$c" | awk -F, '$1 == "pool-r" && $3 == "refused" { print $4 }')
g2=$(echo "$c" | awk -F, '$1 == "pool-g" && $3 == "granted" { print $4 }')
[ "$r1" = 2 ] && [ "$g2" = 2 ] || fail "server statistics: pool-r refused $r1, pool-g granted $g2 (expected 2, 2): $c"
echo "ok - server statistics: pool-r 2 refused, pool-g 2 granted (one on the stale list), 6 in all"
echo "scenario expiry passed"
