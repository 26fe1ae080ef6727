#!/bin/sh
# make demo: the whole citypass system on the emulated bench, from a fresh temp directory.
#   a deployment (citypass-admin init: pool, library, waste), citypass-server on a free
#   loopback port, a citypass-hil bench with four gate readers and an issuing desk, one
#   citypass-controller per reader (bench gate backend), a card personalised at the desk
#   and a phone wallet (citypass-token), then a short story; after each step it prints what
#   the gate showed (citypass-hil ctl outputs). Everything is stopped at the end; exit 0.
# Binaries come from BUILD (default: build); each can be overridden (ADMIN, SERVER, HIL,
# CONTROLLER, TOKEN). KEEP_TMP=1 keeps the temp directory (logs, journals, lists).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
ADMIN=${ADMIN:-$BUILD/server/citypass-admin}
SERVER=${SERVER:-$BUILD/server/citypass-server}
HIL=${HIL:-$BUILD/hil/citypass-hil}
CONTROLLER=${CONTROLLER:-$BUILD/controller/citypass-controller}
TOKEN=${TOKEN:-$BUILD/cardlib/citypass-token}
for b in "$ADMIN" "$SERVER" "$HIL" "$CONTROLLER" "$TOKEN"; do
	[ -x "$b" ] || { echo "demo: $b is missing: build first (make build)" >&2; exit 1; }
done
export ADMIN SERVER HIL CONTROLLER TOKEN
. "$ROOT/tests/controller/daemon/lib.sh"

say() { printf '\n== %s\n' "$*"; }
# show READER WHAT... : a tap, and what the gate showed
show() {
	_r=$1
	shift
	_l=$(tap "$_r" "$@")
	printf '   %-10s %s\n' "$_r" "$(echo "$_l" | sed 's/^[0-9]* [^ ]* gate //')"
}
show_qr() {
	_l=$(scan "$1" "$2")
	printf '   %-10s %s\n' "$1" "$(echo "$_l" | sed 's/^[0-9]* [^ ]* gate //')"
}

say "A deployment: sectors pool, library, waste (entries on the card for the pool)"
deployment pool,library,waste --value-sector pool
adm site add piscine-aquaval --sector pool --antipassback 20 >/dev/null
adm site add mediatheque --sector library --hours "Mon-Sun 00:00-24:00" >/dev/null
adm site add decheterie-nord --sector waste >/dev/null
adm site add decheterie-sud --sector waste >/dev/null
adm household add martin >/dev/null
adm site list

say "The bench (emulated PN532 readers), the sync server, four gate controllers"
start_bench pool-1 library-1 waste-1 waste-2
start_server
echo "   citypass-server on 127.0.0.1:$PORT, bench in $BENCH"
enrol pool-1 piscine-aquaval pool-1
enrol library-1 mediatheque library-1
enrol waste-1 decheterie-nord waste-1
enrol waste-2 decheterie-sud waste-2
for r in pool-1 library-1 waste-1 waste-2; do
	start_controller $r
	echo "   citypass-controller for $r: $(grep -o 'device [^,]*, site [^,]*' "$T/ctl-$r.log" | head -n1)"
done

say "Camille's card, personalised at the desk: 10 pool entries on the card, the library,
   and the waste centres (2 visits a year for the household, across both centres)"
camille=$(HOUSEHOLD=martin issue_card "$T/camille.card" 04CA3111E0C0DE pool,entries=10 \
	library waste,quota=2/year/household)
adm pass show "$camille" | sed 's/^/   /'

say "Louis's phone: a library credential in the citypass-token wallet"
louis=$(issue_phone "$T/louis" 2 library)
echo "   pass $louis, wallet $T/louis"
start_phone "$T/louis"
for r in pool-1 library-1 waste-1 waste-2; do
	s=pool
	case $r in library-*) s=library ;; waste-*) s=waste ;; esac
	wait_list $r $s
done

say "Camille at the pool, then again at once (anti-passback), then at the library"
show pool-1 desfire "$T/camille.card"
show pool-1 desfire "$T/camille.card"
show library-1 desfire "$T/camille.card"

say "Camille at the waste centres: north, south, north again (2 a year for the household)"
show waste-1 desfire "$T/camille.card"
exact_so_far() { [ "$(server_count)" -ge 4 ]; }
wait_for 20 exact_so_far || true
sleep 1
adm list publish --sector waste >/dev/null 2>&1 || true
wait_list waste-2 waste
show waste-2 desfire "$T/camille.card"
exact6() { [ "$(server_count)" -ge 5 ]; }
wait_for 20 exact6 || true
sleep 1
adm list publish --sector waste >/dev/null 2>&1 || true
wait_list waste-1 waste
show waste-1 desfire "$T/camille.card"

say "Louis taps his phone at the library, then shows a QR code twice (a screenshot replay)"
show library-1 external "$T/louis.sock"
qr=$(timeout 20 "$TOKEN" show-qr --wallet "$T/louis" --sector 2)
show_qr library-1 "$qr"
show_qr library-1 "$qr"

say "Someone copies Camille's card UID onto a MIFARE Classic and a blank DESFire"
show pool-1 classic uid=04CA3111
show pool-1 desfire "$T/clone.card" uid=04CA3111E0C0DE

say "Camille loses her card: the agent revokes it; the revocation is pushed to the gates"
adm pass revoke "$camille" --reason lost 2>&1 | sed 's/^/   /'
wait_list library-1 library
show library-1 desfire "$T/camille.card"

say "What every gate showed, in order (citypass-hil ctl outputs)"
for r in pool-1 library-1 waste-1 waste-2; do
	echo "   -- $r"
	ctl outputs $r | grep -E "led=(green|red|amber)" | sed 's/^[0-9]* [^ ]* gate /      /'
done

say "What the server received (anonymous statistics, citypass-admin stats)"
all_in() { [ "$(server_count)" -ge 12 ]; } # the 12 decisions above
wait_for 20 all_in || true
adm stats --by site,outcome --format table | sed 's/^/   /'

say "Stopping everything"
for r in pool-1 library-1 waste-1 waste-2; do stop_controller $r; done
echo "   demo finished"
