#!/bin/sh
# Upgrades (issue 15, item 6): a deployment made and run by the previous release
# (tests/upgrade/PREVIOUS_RELEASE, built from git by build_previous.sh) is taken over by this
# tree's binaries on the same data directory and the same gate state directory. Before the
# upgrade: passes with rights on cards, a household quota, a revocation, taps granted and
# refused uploaded (statistics and consumption); then the server stops, the gate goes on
# deciding and journals taps it cannot send, and the gate is stopped holding them — a gate
# upgraded while offline. After: every pass and right is still there, every old statistic
# still counted, the gate's unsent rows arrive exactly once, the household's uses still
# count, a revocation made with the new admin reaches the gate, both databases carry this
# tree's schema versions, and a database or journal from a NEWER release is refused with a
# sentence saying so.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN (this tree's), SRC (the source tree), BUILD_DIR.
set -eu
: "${SRC:?}" "${BUILD_DIR:?}"
PREV=$(sh "$SRC/tests/upgrade/build_previous.sh" "$SRC" "$BUILD_DIR") ||
	{ echo "FAIL: cannot build the previous release" >&2; exit 1; }
NEW_ADMIN=$ADMIN NEW_SERVER=$SERVER NEW_HIL=$HIL NEW_CONTROLLER=$CONTROLLER NEW_TOKEN=$TOKEN
# the bench is test equipment, not what is upgraded: this tree's in both halves (the test
# scripts' tap uses its `ctl tap`, which older benches lack)
ADMIN=$PREV/bin/citypass-admin SERVER=$PREV/bin/citypass-server
CONTROLLER=$PREV/bin/citypass-controller TOKEN=$PREV/bin/citypass-token
. "$SRC/tests/controller/daemon/lib.sh"
echo "previous release: $(basename "$PREV")"

# the schema versions this tree writes, from their one home in the sources
server_schema=$(sed -n 's/^#define SERVER_STORE_SCHEMA_VERSION \([0-9]*\).*/\1/p' \
	"$SRC/server/include/server/store.h")
journal_schema=$(sed -n 's/^#define SCHEMA_VERSION \([0-9]*\).*/\1/p' \
	"$SRC/controller/src/journal.c")
[ -n "$server_schema" ] && [ -n "$journal_schema" ] || fail "schema versions not found in the sources"

# === the previous release ===================================================================
deployment pool,waste
adm site add waste-a --sector waste >/dev/null
adm household add dupont >/dev/null
start_bench waste-1
start_server
enrol waste-1 waste-a waste-1
start_controller waste-1
alice=$(HOUSEHOLD=dupont issue_card "$T/alice.card" 04A1B2C3D4E5F6 waste,quota=3/year/household \
	pool,from=2020-01-01,to=2099-12-31)
bob=$(issue_card "$T/bob.card" 04B1B2B3B4B5B6 waste)
carol=$(issue_card "$T/carol.card" 04C1C2C3C4C5C6 waste)
dave=$(issue_card "$T/dave.card" 04D1D2D3D4D5D6 pool)
for p in $alice $bob $carol $dave; do [ -n "$p" ] || fail "a pass was not issued"; done
adm pass revoke "$carol" --reason lost >/dev/null 2>&1 || fail "revoke (previous release)"
wait_list waste-1 waste

# online: granted and refused, uploaded and acknowledged
out=$(tap waste-1 desfire "$T/alice.card")
expect "$out" "relay=open led=green" "previous release: Alice's first household use"
out=$(tap waste-1 desfire "$T/bob.card")
expect "$out" "relay=open led=green" "previous release: Bob enters"
out=$(tap waste-1 desfire "$T/carol.card")
expect "$out" "led=red display=Carte révoquée" "previous release: Carol's revoked card refused"
out=$(tap waste-1 desfire "$T/dave.card")
expect "$out" "led=red display=Carte inconnue" "previous release: a pool-only card refused"
online_stats() { [ "$(server_count granted)" = 2 ] && [ "$(server_count refused)" = 2 ]; }
wait_for 30 online_stats ||
	fail "previous release: server counts $(server_count granted) granted, $(server_count refused) refused, expected 2 and 2"
wait_for 30 uses_acked waste-1 || fail "previous release: the household use was not acknowledged"
echo "ok - previous release: 4 decisions and a household use uploaded"

# offline: the server stops first, the gate journals what it cannot send, then it stops too
stop_server
out=$(tap waste-1 desfire "$T/alice.card")
expect "$out" "relay=open led=green" "offline: Alice's second household use"
out=$(tap waste-1 desfire "$T/bob.card")
expect "$out" "relay=open led=green" "offline: Bob enters"
out=$(tap waste-1 desfire "$T/carol.card")
expect "$out" "led=red display=Carte révoquée" "offline: Carol refused"
stop_controller waste-1
J="$T/state-waste-1/journal.db"
unsent_stat=$(sql "$J" "select count(*) from stat")
unsent_use=$(sql "$J" "select count(*) from consumption where acked_at is null")
[ "$unsent_stat" = 3 ] && [ "$unsent_use" = 1 ] ||
	fail "the stopped gate should hold 3 unsent decisions and 1 unsent use, holds $unsent_stat and $unsent_use"
echo "ok - the gate is stopped holding 3 unsent decisions and 1 unsent use"
old_journal_schema=$(sql "$J" "pragma user_version")
old_server_schema=$(sql "$CITYPASS_DATA/citypass.db" "pragma user_version")
echo "previous release schemas: database $old_server_schema, journal $old_journal_schema"
# what the previous release's admin says of each pass, to hold the new one to
for p in $alice $bob $carol $dave; do
	adm pass show "$p" >"$T/before-$p" 2>&1 || fail "pass show $p (previous release)"
done
stop_procs $BENCH_PID
BENCH_PID=

# === this tree, same data directory, same state directory ===================================
ADMIN=$NEW_ADMIN SERVER=$NEW_SERVER HIL=$NEW_HIL CONTROLLER=$NEW_CONTROLLER TOKEN=$NEW_TOKEN
start_bench waste-1
# every pass, its holder, household, state, medium and rights, as the previous release
# showed them (the lines of `pass show` that are data, not layout)
facts() { grep -E '^(holder|household|state|medium|revoked|reason)|^  [a-z]+ +product' "$1" || true; }
for p in $alice $bob $carol $dave; do
	adm pass show "$p" >"$T/after-$p" 2>&1 || fail "pass show $p after the upgrade: $(cat "$T/after-$p")"
	[ -n "$(facts "$T/before-$p")" ] || fail "pass show $p: nothing recognised in: $(cat "$T/before-$p")"
	[ "$(facts "$T/before-$p")" = "$(facts "$T/after-$p")" ] ||
		fail "pass $p changed in the upgrade: before: $(cat "$T/before-$p") after: $(cat "$T/after-$p")"
done
grep -q "^household: [1-9]" "$T/after-$alice" || fail "Alice's household is gone: $(cat "$T/after-$alice")"
grep -q "^state: revoked" "$T/after-$carol" || fail "Carol's revocation is gone: $(cat "$T/after-$carol")"
grep -q "quota 3 per year per household" "$T/after-$alice" || fail "Alice's quota is gone"
echo "ok - every pass, its household, rights and state are still there (citypass-admin pass show)"
[ "$(server_count granted)" = 2 ] && [ "$(server_count refused)" = 2 ] ||
	fail "after the upgrade the server counts $(server_count granted) granted, $(server_count refused) refused, expected 2 and 2"
echo "ok - every statistic uploaded before the upgrade is still counted (citypass-admin stats)"

start_server
start_controller waste-1
all_arrived() { [ "$(server_count granted)" = 4 ] && [ "$(server_count refused)" = 3 ]; }
wait_for 30 all_arrived ||
	fail "after the upgrade the server counts $(server_count granted) granted, $(server_count refused) refused, expected 4 and 3"
wait_for 30 uses_acked waste-1 || fail "the use journalled offline was not acknowledged after the upgrade"
[ "$(sql "$J" "select count(*) from stat")" = 0 ] || fail "decisions left unsent after the upgrade"
# exactly once: a server restart makes the gate's Hello replay its acknowledged sequences
stop_server
start_server
wait_for 15 grep -q "Hello as waste-1" "$T/ctl-waste-1.log" || true
sleep 2
all_arrived ||
	fail "after a server restart the server counts $(server_count granted) granted, $(server_count refused) refused, expected 4 and 3"
echo "ok - the gate's unsent rows arrived exactly once after the upgrade"

# the household's two uses still count: the third passes, the fourth is refused
adm list publish --sector waste >/dev/null 2>&1 || true
wait_list waste-1 waste
out=$(tap waste-1 desfire "$T/alice.card")
expect "$out" "relay=open led=green" "after the upgrade: Alice's third household use"
out=$(tap waste-1 desfire "$T/alice.card")
expect "$out" "led=red display=Quota annuel atteint" "after the upgrade: the quota counts the uses made before"

# the next list: a revocation made with this tree's admin reaches the upgraded gate
adm pass revoke "$bob" --reason stolen >/dev/null 2>&1 || fail "revoke (this tree)"
wait_list waste-1 waste
out=$(tap waste-1 desfire "$T/bob.card")
expect "$out" "led=red display=Carte révoquée" "after the upgrade: a new revocation reaches the gate"
wait_for 30 uses_acked waste-1 || fail "uses after the upgrade not acknowledged"

# both databases carry this tree's schema versions
stop_controller waste-1
stop_server
[ "$(sql "$CITYPASS_DATA/citypass.db" "pragma user_version")" = "$server_schema" ] ||
	fail "the database is at schema $(sql "$CITYPASS_DATA/citypass.db" "pragma user_version"), expected $server_schema"
[ "$(sql "$J" "pragma user_version")" = "$journal_schema" ] ||
	fail "the journal is at schema $(sql "$J" "pragma user_version"), expected $journal_schema"
echo "ok - database at schema $server_schema, journal at schema $journal_schema (were $old_server_schema and $old_journal_schema)"

# === a newer release's files are refused, and left as they were =============================
sql "$CITYPASS_DATA/citypass.db" "pragma user_version=$((server_schema + 1))" >/dev/null
rc=0
out=$(adm pass show "$alice" 2>&1) || rc=$?
[ "$rc" = 1 ] && printf '%s\n' "$out" | grep -q "written by a newer citypass release" ||
	fail "a newer database, citypass-admin: exit $rc: $out"
echo "ok - citypass-admin refuses a newer release's database: $out"
rc=0
out=$(timeout 20 "$SERVER" --data "$CITYPASS_DATA" --listen 127.0.0.1:0 2>&1) || rc=$?
[ "$rc" != 0 ] && printf '%s\n' "$out" | grep -q "written by a newer citypass release" ||
	fail "a newer database, citypass-server: exit $rc: $out"
echo "ok - citypass-server refuses it too"
[ "$(sql "$CITYPASS_DATA/citypass.db" "pragma user_version")" = $((server_schema + 1)) ] ||
	fail "the refused database was changed"

sql "$J" "pragma user_version=$((journal_schema + 1))" >/dev/null
rows=$(sql "$J" "select count(*) from consumption")
"$CONTROLLER" --config "$T/waste-1.conf" >"$T/ctl-newer.log" 2>&1 &
newer_pid=$!
CTRL_PIDS="$CTRL_PIDS $newer_pid"
wait_for 15 grep -q "cannot start" "$T/ctl-newer.log" ||
	fail "a newer journal: the controller did not refuse it: $(cat "$T/ctl-newer.log")"
grep "cannot start" "$T/ctl-newer.log" | grep -q "newer citypass-controller.*schema version is $((journal_schema + 1))" ||
	fail "a newer journal: no clear sentence: $(cat "$T/ctl-newer.log")"
stop_procs $newer_pid
echo "ok - citypass-controller refuses a newer release's journal: $(grep "cannot start" "$T/ctl-newer.log")"
[ "$(sql "$J" "pragma user_version")" = $((journal_schema + 1)) ] &&
	[ "$(sql "$J" "select count(*) from consumption")" = "$rows" ] || fail "the refused journal was changed"
echo "upgrade check passed"
