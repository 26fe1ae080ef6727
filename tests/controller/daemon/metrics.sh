#!/bin/sh
# Prometheus metrics (issue 15, item 4): the server and a gate serve the text format on a
# loopback address; curl scrapes both, Prometheus's own promtool checks the format, and the
# figures follow what happened: taps by outcome and reason, the tap latency histogram, the
# reader unplugged, the connected gates and what they reported, each gate's ingest, and the
# revocation push latency (one observation per connected gate). A non-loopback address is
# refused at start.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN PROMTOOL_SH TOOLS_DIR.
. "$(dirname "$0")/lib.sh"
: "${PROMTOOL_SH:?}" "${TOOLS_DIR:?}"
PROMTOOL=$(sh "$PROMTOOL_SH" "$TOOLS_DIR") || fail "no promtool (scripts/promtool.sh)"
command -v curl >/dev/null || fail "curl is missing (scripts/install-deps.sh)"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1 pool-2
SERVER_ARGS="--metrics 127.0.0.1:0" start_server
sport=$(sed -n 's/.*metrics at http:\/\/127.0.0.1:\([0-9]*\)\/metrics.*/\1/p' "$T/server.log" | tail -n1)
[ -n "$sport" ] || fail "the server did not say where its metrics are: $(tail -n 3 "$T/server.log")"
enrol pool-1 pool-n pool-1
echo "metrics = 127.0.0.1:0" >>"$T/pool-1.conf"
start_controller pool-1
enrol pool-2 pool-n pool-2
start_controller pool-2
wait_for 10 grep -q "metrics at http://127.0.0.1:" "$T/ctl-pool-1.log" || fail "gate: no metrics line"
gport=$(sed -n 's/.*metrics at http:\/\/127.0.0.1:\([0-9]*\)\/metrics.*/\1/p' "$T/ctl-pool-1.log" | tail -n1)

scrape() { curl -fsS -m 10 "http://127.0.0.1:$1/metrics" >"$2" || fail "scrape of port $1 failed"; }
# check FILE : promtool's verdict on the format (lint problems are printed, and fail)
check() {
	out=$("$PROMTOOL" check metrics <"$1" 2>&1) || fail "promtool on $1: $out"
	[ -z "$out" ] || fail "promtool on $1: $out"
}
# value FILE SERIES : the sample's value (SERIES exactly as written, labels included)
value() { awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print "none" }' "$1"; }

# metric FILE_OR_PORT SERIES : a series' value in a fresh scrape of the port
metric() { curl -fsS -m 5 "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s { print $2; f = 1 } END { if (!f) print "none" }'; }
# reported V : both gates told the server they hold v V (their reports are handled)
reported() {
	[ "$(metric "$sport" 'citypass_gate_list_version{device="pool-1",site="pool-n"}')" = "$1" ] &&
		[ "$(metric "$sport" 'citypass_gate_list_version{device="pool-2",site="pool-n"}')" = "$1" ]
}
push_count() { metric "$sport" citypass_server_list_push_seconds_count; }

ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool)
issue_card "$T/bob.card" 04B1B2C3D4E5F6 pool >/dev/null
wait_list pool-1 pool
wait_list pool-2 pool
wait_for 15 reported "$(server_version pool)" || fail "server: the gates' reports of the list they hold"
before=$(push_count)
adm pass revoke "$ann" --reason stolen >/dev/null 2>&1 || fail "revoke"
wait_list pool-1 pool
wait_list pool-2 pool
grown() { [ "$(push_count)" = $((before + 2)) ]; }
wait_for 15 grown || fail "server: push latency count $(push_count) after the revocation, $before before: one per connected gate expected"
[ "$(metric "$sport" citypass_server_list_pushes_unacknowledged_total)" = 0 ] || fail "server: a push unacknowledged"
echo "ok - server: the revocation's push latency observed once per connected gate ($before -> $((before + 2)))"
out=$(tap pool-1 desfire "$T/bob.card")
expect "$out" "relay=open led=green" "Bob enters"
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "led=red display=Carte révoquée" "Ann's revoked card is refused"

scrape "$gport" "$T/gate.prom"
check "$T/gate.prom"
[ "$(value "$T/gate.prom" 'citypass_gate_taps_total{outcome="granted",reason="ok"}')" = 1 ] ||
	fail "gate: one grant expected: $(grep taps_total "$T/gate.prom")"
[ "$(value "$T/gate.prom" 'citypass_gate_taps_total{outcome="refused",reason="revoked"}')" = 1 ] ||
	fail "gate: one refusal for revoked expected: $(grep taps_total "$T/gate.prom")"
[ "$(value "$T/gate.prom" 'citypass_gate_tap_seconds_count')" = 2 ] || fail "gate: tap histogram count"
[ "$(value "$T/gate.prom" 'citypass_gate_tap_seconds_bucket{le="+Inf"}')" = 2 ] || fail "gate: +Inf bucket"
[ "$(value "$T/gate.prom" 'citypass_gate_reader_up{device="pool-1",site="pool-n",sector="pool"}')" = 1 ] ||
	fail "gate: reader up: $(grep reader_up "$T/gate.prom")"
[ "$(value "$T/gate.prom" 'citypass_gate_journal_backlog{device="pool-1",stream="statistics"}')" != none ] ||
	fail "gate: no journal backlog"
grep -q '^citypass_gate_free_disk_bytes{' "$T/gate.prom" || fail "gate: no free disk"
grep -q '^citypass_gate_clock_skew_seconds{' "$T/gate.prom" || fail "gate: no clock skew"
echo "ok - gate: promtool accepts the format; taps by outcome and reason, latency histogram, devices, backlog, disk, clock"

scrape "$sport" "$T/server.prom"
check "$T/server.prom"
[ "$(value "$T/server.prom" citypass_server_connected_gates)" = 2 ] || fail "server: two gates connected"
[ "$(value "$T/server.prom" citypass_server_handshakes_waiting)" = 0 ] || fail "server: handshakes waiting"
[ "$(value "$T/server.prom" citypass_server_left_waiting_total)" = 0 ] || fail "server: left waiting"
[ "$(value "$T/server.prom" 'citypass_server_list_version{sector="pool"}')" = "$(server_version pool)" ] ||
	fail "server: list version: $(grep list_version "$T/server.prom")"
grep -q '^citypass_server_list_age_seconds{sector="pool"} ' "$T/server.prom" || fail "server: list age"
wait_for 15 sh -c "curl -fsS -m 5 http://127.0.0.1:$sport/metrics | grep -q '^citypass_gate_reader_up{device=\"pool-1\",site=\"pool-n\"} 1'" ||
	fail "server: the gate's report is not in its metrics"
# each gate's ingest: the two taps' statistics, acknowledged, under its device name
ingested() { [ "$(metric "$sport" 'citypass_server_gate_ingested_events_total{device="pool-1",site="pool-n",stream="statistics"}')" = 2 ]; }
wait_for 15 ingested || fail "server: pool-1's two taps not counted: $(curl -fsS -m 5 "http://127.0.0.1:$sport/metrics" | grep gate_ingested)"
[ "$(metric "$sport" 'citypass_server_gate_ingested_events_total{device="pool-2",site="pool-n",stream="statistics"}')" = 0 ] ||
	fail "server: pool-2 had no tap"
[ "$(metric "$sport" 'citypass_server_gate_connected{device="pool-2",site="pool-n"}')" = 1 ] || fail "server: pool-2 connected"
[ "$(metric "$sport" 'citypass_server_gate_pending_batches{device="pool-1",site="pool-n"}')" = 0 ] || fail "server: pool-1's batches pending"
scrape "$sport" "$T/server2.prom"
check "$T/server2.prom"
echo "ok - server: promtool accepts the format; gates, lists, each gate's report and ingest"

# the reader unplugged: the gate says so at once
ctl unplug pool-1 reader >/dev/null
down() { curl -fsS -m 5 "http://127.0.0.1:$gport/metrics" | grep -q '^citypass_gate_reader_up{device="pool-1",site="pool-n",sector="pool"} 0'; }
wait_for 10 down || fail "gate: an unplugged reader still up in the metrics"
ctl plug pool-1 reader >/dev/null
echo "ok - an unplugged reader shows as down"

code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$gport/other")
[ "$code" = 404 ] || fail "gate: /other answered $code"
echo "ok - anything but /metrics is 404"

stop_controller pool-1
sed -i 's/^metrics = .*/metrics = 0.0.0.0:9465/' "$T/pool-1.conf"
rc=0
out=$(timeout 20 "$CONTROLLER" --config "$T/pool-1.conf" 2>&1) || rc=$?
[ "$rc" = 1 ] && printf '%s\n' "$out" | grep -q "not a loopback address" ||
	fail "a non-loopback metrics address: exit $rc: $out"
echo "ok - a non-loopback metrics address is refused at start"
echo "metrics check passed"
