#!/bin/sh
# Anti-passback per site, not per gate (DESIGN.md s.4; issue 10, item 7, left open there,
# done in issue 13): two pool gates of one site with a 30-minute window; a card admitted
# at the first is refused at the second a second later, its grant shared through the
# server (the list key only, kept by nobody but the gates, for the window). A gate of
# another site is not told. With the server down the limit is the documented one: each
# gate knows its own grants only.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool --antipassback 30 >/dev/null
adm site add pool-s --sector pool --antipassback 30 >/dev/null
start_bench pool-1 pool-2 pool-3
start_server
enrol pool-1 pool-n pool-1
enrol pool-2 pool-n pool-2
enrol pool-3 pool-s pool-3
for g in pool-1 pool-2 pool-3; do start_controller $g; done
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
issue_card "$T/ben.card" 04B1B2B3B4B5B6 pool >/dev/null
for g in pool-1 pool-2 pool-3; do wait_list $g pool; done
# every gate in session: the grant must find its peers connected
connected() { grep -q "sync: connected" "$T/ctl-$1.log"; }
for g in pool-1 pool-2 pool-3; do wait_for 15 connected $g || fail "$g never connected"; done

out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green" "ann admitted at the north pool's first gate"
sleep 1
out=$(tap pool-2 desfire "$T/ann.card")
expect "$out" "relay=closed led=red display=Passage déjà enregistré" \
	"one second later, the north pool's second gate refuses her"
out=$(tap pool-3 desfire "$T/ann.card")
expect "$out" "relay=open led=green" "the south pool (another site) is not told"

# what the server keeps of it: nothing (no table holds list keys of grants)
if sql "$CITYPASS_DATA/citypass.db" "select name from sqlite_master where type = 'table'" |
	grep -qi passback; then
	fail "the server keeps anti-passback grants in its database"
fi

# offline (documented limit): each gate knows its own grants only
stop_server
out=$(tap pool-1 desfire "$T/ben.card")
expect "$out" "relay=open led=green" "ben admitted at the first gate, server down"
out=$(tap pool-2 desfire "$T/ben.card")
expect "$out" "relay=open led=green" "offline, the second gate cannot know (per gate)"
out=$(tap pool-2 desfire "$T/ben.card")
expect "$out" "relay=closed led=red display=Passage déjà enregistré" "... its own grant it knows"
echo "controller anti-passback per site check passed"
