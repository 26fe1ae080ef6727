#!/bin/sh
# Nothing stops while agents work (issue 12 item 2, DESIGN.md s.9 "server under change"):
# a deployment of many passes (300 000 by default in make test; make bench runs it with
# CITYPASS_TEST_PASSES=5000000, the issue's 5 M) made with `pass import`, then full rebuilds of its list (`list publish --full`) and revocations
# published over and over while five gates upload
# batch after batch through the real citypass-server. No gate is cut off, every batch is
# acknowledged, every event is stored exactly once, no "database is locked" anywhere, and
# every list the gates receive meanwhile (snapshots and deltas) verifies. Under
# tests/support/pg_run.sh the same on PostgreSQL (issue 16).
#   publish_busy.sh CITYPASS-ADMIN CITYPASS-SERVER SYNC-PROBE
set -eu
admin=$1 server=$2 probe=$3
passes=${CITYPASS_TEST_PASSES:-300000}
batches=30 per=200
tmp=$(mktemp -d "${TMPDIR:-/tmp}/citypass-pubbusy-XXXXXX")
data=$tmp/data
pid=
pids=
cleanup() {
	for p in $pids $pid; do kill "$p" 2>/dev/null || true; done
	for p in $pids $pid; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- server log" >&2; tail -n 30 "$tmp/server.log" >&2 || true; exit 1; }

"$admin" --data "$data" init --server-name 127.0.0.1 ${CITYPASS_TEST_PG:+--store "$CITYPASS_TEST_PG"} >/dev/null
"$admin" --data "$data" site add pool-east --sector pool >/dev/null
for g in 1 2 3 4 5; do
	"$admin" --data "$data" device add "gate-$g" --site pool-east --server 127.0.0.1:1 \
		--out "$tmp/b$g" >/dev/null
done
# the probes report product 10: the server stores only products its rights have
awk -v n="$passes" 'BEGIN { print "holder,household,rights";
	for (i = 1; i <= n; i++) printf "H%d,%s,\"pool,product=%d\"\n", i,
		(i % 4 ? "" : "f" int(i / 8)), 10 + i % 3 }' >"$tmp/passes.csv"
"$admin" --data "$data" pass import "$tmp/passes.csv" >"$tmp/import.out" 2>&1 ||
	fail "import: $(cat "$tmp/import.out")"
rm -f "$tmp/passes.csv"
echo "ok - $passes passes imported"

port=
for attempt in 1 2 3 4 5 6 7 8 9 10; do
	p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
	: >"$tmp/server.log"
	"$server" --data "$data" --listen "127.0.0.1:$p" --poll-ms 50 2>"$tmp/server.log" &
	pid=$!
	for i in $(seq 1 50); do
		grep -q "listening on" "$tmp/server.log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q "listening on" "$tmp/server.log"; then port=$p; break; fi
	wait "$pid" 2>/dev/null || true
	pid=
done
[ -n "$port" ] || fail "server did not start"

# five gates upload $batches batches of $per events each, one session each, while the
# agents publish
for g in 1 2 3 4 5; do
	"$probe" --port "$port" --bundle "$tmp/b$g" --events $per --batches $batches \
		--pause-ms 200 --ack-wait 60 >"$tmp/g$g.out" 2>&1 &
	pids="$pids $!"
done
alive() {
	for p in $pids; do kill -0 "$p" 2>/dev/null && return 0; done
	return 1
}
rebuilds=0 revokes=0 id=1
while alive; do
	"$admin" --data "$data" list publish --sector pool --full >>"$tmp/admin.out" 2>&1 ||
		fail "list publish --full: $(tail -n 3 "$tmp/admin.out")"
	rebuilds=$((rebuilds + 1))
	alive || break
	"$admin" --data "$data" pass revoke "$id" --reason busy >>"$tmp/admin.out" 2>&1 ||
		fail "pass revoke $id: $(tail -n 3 "$tmp/admin.out")"
	revokes=$((revokes + 1))
	id=$((1 + (id + 7919) % passes))
done
for p in $pids; do wait "$p" || true; done
pids=
[ "$rebuilds" -ge 1 ] || fail "no publish ran while the gates uploaded"
for g in 1 2 3 4 5; do
	grep -q "acked $((batches * per)) bad 0" "$tmp/g$g.out" ||
		fail "gate $g: $(cat "$tmp/g$g.out")"
done
echo "ok - five gates, one session each: every batch acknowledged, every list received verified ($rebuilds full rebuilds of $passes passes and $revokes revocations published meanwhile)"
grep -q "database is locked\|backend error\|closing" "$tmp/server.log" &&
	fail "a gate saw the publishes: $(grep -m1 "database is locked\|backend error\|closing" "$tmp/server.log")"
grep -q "database is locked" "$tmp/admin.out" &&
	fail "an agent saw the lock: $(grep -m1 "database is locked" "$tmp/admin.out")"
echo "ok - no gate was cut off, no batch refused, no 'database is locked'"
total=$("$admin" --data "$data" stats --by site --format csv | awk -F, 'NR>1 {s+=$NF} END {print s+0}')
[ "$total" = $((5 * batches * per)) ] ||
	fail "the server holds $total events, expected $((5 * batches * per)) (each once)"
echo "ok - $total events stored, each once"
kill "$pid" && wait "$pid" 2>/dev/null || true
pid=
echo "ingest during publishes at $passes passes: passed"
