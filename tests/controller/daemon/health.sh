#!/bin/sh
# Gate health reaches the office (issue 13, item 2): each gate reports over the sync link its
# reader and scanner state, list version and age, journal backlog, free disk and clock skew;
# `citypass-admin device list` shows them, and flags a gate not heard from. Real binaries:
# a gate's reader unplugged shows up as READER-DOWN within seconds (the gate reports a
# change at once), plugged back as ok; an enrolled gate that never connected, and one
# silent for longer than --silent-after, are SILENT. JSON output is checked to parse.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1 pool-2
start_server
enrol pool-1 pool-n pool-1
enrol pool-2 pool-n pool-2 # enrolled, never started
start_controller pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
wait_list pool-1 pool
line() { adm device list | awk -v d="$1" '$1 == d'; }
# shows DEVICE PATTERN : its line of `device list` matches PATTERN (extended regex)
shows() { line "$1" | grep -Eq -- "$2"; }

wait_for 15 shows pool-1 "^pool-1 +pool-n +1 +[0-9]+s +ok +ok +v$(list_version pool-1) " ||
	fail "pool-1's health not shown: $(adm device list)"
shows pool-1 " - *$" || fail "pool-1 is flagged: $(line pool-1)"
echo "ok - a connected gate's health: reader ok, scanner ok, the list it holds"
shows pool-2 "never .*SILENT" || fail "a gate never heard from is not flagged: $(line pool-2)"
echo "ok - a gate enrolled but never heard from is flagged SILENT"

# the reader unplugged: reported at once (not at the next 5-minute report)
ctl unplug pool-1 reader >/dev/null
wait_for 15 shows pool-1 " DOWN .*READER-DOWN" ||
	fail "the reader's loss did not reach the office: $(line pool-1)"
echo "ok - the reader unplugged: READER-DOWN in device list within seconds"
ctl plug pool-1 reader >/dev/null
wait_for 15 shows pool-1 " ok +ok .* - *$" || fail "the reader's return not shown: $(line pool-1)"
echo "ok - the reader back: ok again"

# a decision not uploaded yet is a backlog: server down, one tap, server back. The gate's
# Hello reports it (1); once the server has acknowledged it, the gate reports 0 at once
# (not at its next 5-minute report): seen after the tap reached the server, 0 can only come
# from that report.
stop_server
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green" "a tap while the server is down"
start_server
stats_acked() { [ "$(sql "$T/state-pool-1/journal.db" "select count(*) from stat")" = 0 ]; }
wait_for 20 stats_acked || fail "the tap was not acknowledged"
[ "$(server_count granted)" -ge 1 ] || fail "the server does not hold the tap"
wait_for 10 shows pool-1 " v[0-9]+ +[0-9]+[smhd] +0 +[0-9]+[KMG] " ||
	fail "the drained backlog did not reach the office: $(line pool-1)"
echo "ok - the backlog reported as it drains"

# JSON, and a gate silent for longer than the threshold (the admin's clock moved on)
adm device list --json >"$T/devices.json" || fail "device list --json"
if command -v python3 >/dev/null; then
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d[0]["health"]["reader"] == "ok", d; assert "SILENT" in d[1]["flags"], d' \
		"$T/devices.json" || fail "device list --json: $(cat "$T/devices.json")"
fi
stop_controller pool-1
later=$(($(date +%s) + 20 * 60))
CITYPASS_NOW=$later adm device list | awk '$1 == "pool-1"' | grep -q "SILENT" ||
	fail "a gate silent for 20 minutes is not flagged: $(CITYPASS_NOW=$later adm device list)"
CITYPASS_NOW=$later adm device list --silent-after 30 | awk '$1 == "pool-1"' | grep -q "SILENT" &&
	fail "--silent-after 30 flags a gate silent for 20 minutes"
echo "ok - a gate silent past --silent-after is flagged SILENT"
rc=0
adm device list --silent-after 0 >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--silent-after 0: exit $rc, expected 2"
echo "controller health check passed"
