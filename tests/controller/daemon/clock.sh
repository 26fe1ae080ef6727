#!/bin/sh
# A gate's wrong clock, both ways, online and offline (issue 10, item 3; docs/controller.md
# "Clock"). The controller runs under libfaketime (its system clock moved, its monotonic
# clock untouched), against the real server with the right time.
#   behind, online:  400 days behind (before the server certificate's start): it syncs,
#                    and a revocation reaches it ("Carte révoquée"); its statistics carry
#                    the real quarter hour
#   ahead, online:   30 days ahead (its list expired by its own clock): it takes the
#                    server's time and grants
#   ahead, offline:  a jump 400 days forward with quota uses unacknowledged: it refuses
#                    (fail closed: its list looks expired) but deletes nothing; back online
#                    it uploads every use, its future-stamped refusals land on the current
#                    quarter hour, and it grants again
#   behind, offline: 400 days behind with a list that expires in 45 s: the list still
#                    expires on time (the trusted floor, carried by the monotonic clock)
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

LIBFT=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
[ -f "$LIBFT" ] || LIBFT=$(dpkg -L libfaketime 2>/dev/null | grep 'libfaketimeMT.so' | head -n1)
[ -n "$LIBFT" ] && [ -f "$LIBFT" ] || fail "libfaketime is not installed (scripts/install-deps.sh)"
# (under AddressSanitizer, make sanitize: libfaketime is preloaded before the ASan runtime,
# which ASan accepts once told not to insist on coming first)
faked() {
	echo "env LD_PRELOAD=$LIBFT FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME=$1" \
		"ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
}

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool,quota=50/year >/dev/null
ben=$(issue_card "$T/ben.card" 04B1B2B3B4B5B6 pool)
db() { sql "$CITYPASS_DATA/citypass.db" "$1"; }
jdb() { sql "$T/state-pool-1/journal.db" "$1"; }
: >"$T/taps"
taps() { wc -l <"$T/taps" | tr -d ' '; }
server_exact() { [ "$(server_count)" = "$(taps)" ]; }
t() { echo tap >>"$T/taps"; tap "$@"; }
sessions() { grep -c "sync: connected to" "$T/ctl-pool-1.log" || true; }
# wait_session N : the gate has had more than N sessions (it heard the server's time)
wait_session() {
	_more() { [ "$(sessions)" -gt "$1" ]; }
	wait_for 20 _more "$1" || fail "the gate did not reach the server"
}
restart() { # restart [FAKETIME offset]; online, waits until the gate has the server's time
	_n=$(sessions)
	stop_controller pool-1
	CTRL_WRAP=${1:+$(faked "$1")} start_controller pool-1
	[ -z "$SERVER_PID" ] || wait_session "$_n"
}

# --- 1. 400 days behind, online
CTRL_WRAP=$(faked -400d) start_controller pool-1
wait_list pool-1 pool
echo "ok - 400 days behind: the gate accepted the server and holds its list"
expect "$(t pool-1 desfire "$T/ben.card")" "relay=open led=green" "behind: granted"
adm pass revoke "$ben" --reason stolen >/dev/null 2>&1 || fail "revoke"
wait_list pool-1 pool
expect "$(t pool-1 desfire "$T/ben.card")" "led=red display=Carte révoquée" \
	"behind: the revocation reached the gate"
wait_for 15 server_exact || fail "behind: server counts $(server_count), expected $(taps)"
[ "$(db "select count(*) from stats where quarter_hour < strftime('%s','now') - 86400")" = 0 ] ||
	fail "behind: statistics stamped with the gate's wrong clock"
echo "ok - behind: every decision reached the server with the real quarter hour"

# --- 2. 30 days ahead, online: its list has expired by its own clock
restart +30d
expect "$(t pool-1 desfire "$T/ann.card")" "relay=open led=green" \
	"30 days ahead, online: the server's time wins, granted"

# --- 3. offline, then the clock jumps 400 days forward
stop_server
restart
expect "$(t pool-1 desfire "$T/ann.card")" "relay=open led=green" "offline quota use 1"
expect "$(t pool-1 desfire "$T/ann.card")" "relay=open led=green" "offline quota use 2"
[ "$(jdb "select count(*) from consumption where acked_at is null")" = 2 ] ||
	fail "the two uses are not waiting in the journal"
before=$(db "select count(*) from consumption")
restart +400d
expect "$(t pool-1 desfire "$T/ann.card")" "led=red display=Service indisponible – liste périmée" \
	"400 days ahead, offline: fail closed"
[ "$(jdb "select count(*) from consumption where acked_at is null")" = 2 ] ||
	fail "the clock jump deleted unacknowledged quota uses"
[ "$(jdb "select value from meta where name = 'consumption_purged_unacked'")" = 0 ] ||
	fail "the clock jump counted uses as purged"
echo "ok - the jump forward deleted no unacknowledged use"
n=$(sessions)
start_server
wait_session "$n"
wait_for 30 server_exact || fail "ahead: server counts $(server_count), expected $(taps)"
wait_for 15 sh -c "[ \$(sqlite3 '$CITYPASS_DATA/citypass.db' 'select count(*) from consumption') = $((before + 2)) ]" ||
	fail "the server holds $(db "select count(*) from consumption") uses, expected $((before + 2))"
echo "ok - back online: both uses and every decision reached the server"
expect "$(t pool-1 desfire "$T/ann.card")" "relay=open led=green" "400 days ahead, online again: granted"

# --- 4. 400 days behind, offline, with a list that expires in 45 s
exp=$(($(date +%s) + 45))
env CITYPASS_NOW=$((exp - 7 * 86400)) timeout 60 "$ADMIN" list publish --sector pool >/dev/null 2>&1 ||
	fail "publish a list expiring soon"
wait_list pool-1 pool
stop_server
restart -400d
expect "$(t pool-1 desfire "$T/ann.card")" "relay=open led=green" "behind, offline: granted before expiry"
while [ "$(date +%s)" -le $((exp + 2)) ]; do sleep 1; done
expect "$(t pool-1 desfire "$T/ann.card")" "led=red display=Service indisponible – liste périmée" \
	"400 days behind, offline: the list expired on time all the same"
echo "controller clock check passed"
