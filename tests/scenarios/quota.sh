#!/bin/sh
# Scenario 3 — a household quota (waste, 3 visits a year per household) across two
# déchèteries, waste-b offline (server unreachable) during the last allowed visits.
# Gates: waste-a (online) grants up to the quota then refuses "Quota annuel atteint";
# waste-b, offline since its list said used=1, grants limit - 1 = 2 more visits, then
# refuses. Overshoot bound: total grants <= limit + (limit - used at the offline gate's
# last sync) = 3 + 2 = 5.
# "Reported" means: once waste-b is back, the server's statistics hold 5 grants for
# the waste service (2 at waste-b) and the household's consumption, as published in the
# waste list (`used`), is 5 against a limit of 3, and `citypass-admin quota report` names the
# household with its overshoot of 2.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN PROBE.
. "$(dirname "$0")/common.sh"
: "${PROBE:?}"

deployment waste
adm site add waste-a --sector waste >/dev/null
adm site add waste-b --sector waste >/dev/null
adm household add dupont >/dev/null
start_bench waste-1 waste-2
start_server
enrol waste-ga waste-a waste-1
enrol waste-gb waste-b waste-2
start_controller waste-1
start_controller waste-2
export HOUSEHOLD=dupont
alice=$(issue_card "$T/alice.card" 04A1B2C3D4E5F6 waste,quota=3/year/household)
bob=$(issue_card "$T/bob.card" 04B1B2B3B4B5B6 waste,quota=3/year/household)
unset HOUSEHOLD
[ -n "$alice" ] && [ -n "$bob" ] || fail "passes not issued"
ka=$(list_key "$alice" waste)
wait_list waste-1 waste
wait_list waste-2 waste

tap_expect waste-1 "relay=open led=green display=Bienvenue – 2 passages restants cette année" "visit 1 (alice at waste-a, online)" desfire "$T/alice.card"
publish_until_used waste "$ka" 1
wait_list waste-1 waste
wait_list waste-2 waste
echo "ok - the server folded visit 1 into the list both gates hold (used 1)"

offline waste-2
vb=$(list_version waste-2)
ub=$("$PROBE" lookup "$T/state-waste-2/lists/v$vb.manifest" "$ka" | sed -n 's/.* used \([0-9]*\) .*/\1/p')
lim=$("$PROBE" lookup "$T/state-waste-2/lists/v$vb.manifest" "$ka" | sed -n 's/.* limit \([0-9]*\) .*/\1/p')
[ "$ub" = 1 ] && [ "$lim" = 3 ] || fail "waste-b's held list v$vb: used '$ub' limit '$lim', expected 1 and 3"
bound=$((lim - ub))
echo "ok - waste-b restarted with its server unreachable; its list v$vb says used $ub of $lim: it may grant $bound offline"
tap_expect waste-1 "relay=open led=green display=Bienvenue – 1 passage restant cette année" "visit 2 (bob at waste-a, household counted)" desfire "$T/bob.card"
publish_until_used waste "$ka" 2
wait_list waste-1 waste
tap_expect waste-1 "relay=open led=green" "visit 3 (alice at waste-a)" desfire "$T/alice.card"
publish_until_used waste "$ka" 3
wait_list waste-1 waste
tap_expect waste-1 "relay=closed led=red display=Quota annuel atteint" "visit 4 refused at the online waste-a" desfire "$T/alice.card"

# the offline gate knows only used=1: it grants what is left from there, then refuses
tap_expect waste-2 "relay=open led=green display=Bienvenue – 1 passage restant cette année" "offline waste-b: grant over the real quota (1)" desfire "$T/bob.card"
tap_expect waste-2 "relay=open led=green" "offline waste-b: grant over the real quota (2)" desfire "$T/alice.card"
tap_expect waste-2 "relay=closed led=red display=Quota annuel atteint" "offline waste-b refuses once its own bound is reached" desfire "$T/bob.card"

# back online: everything reaches the server
online waste-2
all() { [ "$(server_count)" -ge 7 ]; }
wait_for 30 all || fail "server counts $(server_count) decisions, expected 7"
g=$(server_count granted) r=$(server_count refused)
[ "$g" = $((lim + bound)) ] && [ "$r" = 2 ] || fail "server: $g granted / $r refused, expected $((lim + bound)) / 2"
echo "ok - server statistics: $g granted = limit $lim + overshoot $bound (what waste-b could grant offline), 2 refused"
gb=$(stats_csv | awk -F, '$1 == "waste-b" && $3 == "granted" { print $4 }')
[ "$gb" = 2 ] || fail "server statistics: waste-b granted '$gb', expected 2"
echo "ok - server statistics: the 2 overshooting grants are at waste-b"
publish_until_used waste "$ka" 5
echo "ok - server consumption: the household's used counter in the published list is 5 (limit 3)"
[ "$(used_in_list waste "$(list_key "$bob" waste)")" = 5 ] || fail "bob's entry does not share the household counter"
# reported: the agents' quota report names the household and its overshoot
rep=$(adm quota report --sector waste) || fail "quota report failed: $rep"
printf '%s\n' "$rep" | grep -Eq '^waste +[0-9]+ +.* +yes +5 +3 +2$' ||
	fail "quota report does not show the household's overshoot (5 of 3, 2 over): $rep"
[ "$(printf '%s\n' "$rep" | grep -c '^waste ')" = 1 ] || fail "the household is reported more than once: $rep"
echo "ok - citypass-admin quota report: the household, used 5 of 3, overshoot 2"
wait_list waste-2 waste
tap_expect waste-2 "relay=closed led=red display=Quota annuel atteint" "waste-b, synced, refuses" desfire "$T/alice.card"
echo "scenario quota passed"
