#!/bin/sh
# Retention per sector with the real binaries (issue 17, item 1; docs/privacy.md).
#   admin:   init makes the bus transport (48 h) and the pool access control (90 days); a
#            retention above the kind's ceiling is refused with a sentence; 24 h is kept
#   gate:    learns its sector's 24 h in the Welcome and keeps it in its journal, across a
#            restart with the link down; offline, once its trusted time is 25 hours on, it
#            deletes the uses past 24 h, unsent ones too, and counts those it could not send
#   server:  `privacy purge` at a time 25 hours on (CITYPASS_NOW) folds the stored uses:
#            no row names the gate any more, the quota's count and the statistics stay
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool,bus
out=$(adm sector list)
expect "$(echo "$out" | grep ' bus ')" "transport +retention 48h \(default\)" "init: the bus is transport, 48 h"
expect "$(echo "$out" | grep ' pool ')" "access +retention 2160h \(default\)" "init: the pool is access control, 90 days"
if adm sector set bus --retention 72h >"$T/set.out" 2>&1; then fail "72 h for transport accepted"; fi
expect "$(cat "$T/set.out")" "72 hours is above the 48 hours allowed for transport .*AU-015" \
	"a retention above the ceiling is refused with a sentence"
if adm sector set pool --retention 91d >/dev/null 2>&1; then fail "91 days for the pool accepted"; fi
adm sector set bus --retention 24h >/dev/null || fail "sector set bus --retention 24h"
expect "$(adm sector list | grep ' bus ')" "transport +retention 24h$" "the bus keeps 24 h"
expect "$(adm privacy register | grep '^| bus ')" '^\| bus \| transport \| 24 hours \| CNIL AU-015' \
	"the record of processing states the bus's 24 h"

adm site add line-1 --sector bus >/dev/null
start_bench bus-1
start_server
enrol bus-1 line-1 bus-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 bus,quota=50/year >/dev/null
start_controller bus-1
wait_list bus-1 bus
jdb() { sql "$T/state-bus-1/journal.db" "$1"; }
db() { sql "$CITYPASS_DATA/citypass.db" "$1"; }
_heard() { [ "$(jdb "select value from meta where name = 'sector_retention_h'")" = 24 ]; }
wait_for 15 _heard || fail "the gate did not keep its sector's retention"
echo "ok - the gate heard its sector's 24 h over the link and keeps it"

expect "$(tap bus-1 desfire "$T/ann.card")" "relay=open led=green" "a use, online"
wait_for 15 uses_acked bus-1 || fail "the use was not acknowledged"
[ "$(db "select count(*) from consumption where device = 'bus-1'")" = 1 ] ||
	fail "the server does not hold the use under its gate"
before=$(server_count)

# --- the server, 25 hours on
out=$(CITYPASS_NOW=$(($(date +%s) + 25 * 3600)) adm privacy purge) || fail "privacy purge"
expect "$out" "folded 1 consumption row" "server: the purge folds the use past 24 h"
[ "$(db "select count(*) from consumption where device <> '' or stored_at <> 0")" = 0 ] ||
	fail "server: a consumption row still names its gate or its time"
[ "$(db "select sum(count) from consumption")" = 1 ] || fail "server: the quota's count was lost"
[ "$(server_count)" = "$before" ] || fail "server: statistics changed ($(server_count), was $before)"
echo "ok - server: no row names the gate, the count and the statistics stay"

# --- the gate, link down: what it holds survives a restart without the server
stop_server
expect "$(tap bus-1 desfire "$T/ann.card")" "relay=open led=green" "a use, offline"
[ "$(jdb "select count(*) from consumption where acked_at is null")" = 1 ] ||
	fail "the offline use is not waiting in the journal"
stop_controller bus-1
start_controller bus-1
_heard || fail "the sector's retention was lost across a restart"
expect "$(tap bus-1 desfire "$T/ann.card")" "relay=open led=green" "a use, offline, restarted"
_heard || fail "the sector's retention was lost"
echo "ok - gate, link down and restarted: it still holds its sector's 24 h"

# --- the gate, link down, 25 hours on. Its purge judges age by its trusted time, never the
# wall clock (a clock jumping forward deletes nothing: clock.sh), and that time starts at
# the floor kept in its journal. A gate that ran 25 hours would have kept a floor 25 hours
# on: it is written there, as that gate would have, before a restart with no server. (A
# libfaketime jump of the monotonic clock instead trips the reader's watchdog, which
# restarts the controller mid-purge; the purge's arithmetic has test_controller_tap.)
[ "$(jdb "select count(*) from consumption")" = 3 ] || fail "the gate does not hold its 3 uses"
stop_controller bus-1
jdb "update meta set value = $(($(date +%s) + 25 * 3600)) where name = 'time_floor'"
start_controller bus-1
_purged() { [ "$(jdb "select count(*) from consumption")" = 0 ]; }
wait_for 15 _purged ||
	fail "gate offline, 25 h on: $(jdb "select count(*) from consumption") uses past its 24 h kept"
expect "$(jdb "select value from meta where name = 'consumption_purged_unacked'")" "^2$" \
	"the gate counts the 2 unsent uses its retention deleted"
echo "ok - gate, link down, 25 h on: no use past its sector's 24 h is left in its journal"
