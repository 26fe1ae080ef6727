#!/bin/sh
# Nothing stops while agents work (issue 12, DESIGN.md s.9 "server under change"): another
# writer holds the rights database's write lock for 12 s — longer than any busy timeout
# (sqlite's was 10 s: "database is locked", the batch refused, the gate cut off) — while
# five gates upload through the real citypass-server. Every gate stays connected, every
# event is acknowledged once the lock is gone, and stored exactly once; meanwhile the
# server goes on answering (a gate's Hello gets its Welcome and list during the lock).
# Under tests/support/pg_run.sh (issue 16) the same on PostgreSQL: there the writer is a
# transaction holding the usage tables against every other writer for 12 s, longer than the
# store's lock_timeout (10 s).
#   ingest_busy.sh CITYPASS-ADMIN CITYPASS-SERVER SYNC-PROBE SERVER-PROBE
set -eu
admin=$1 server=$2 probe=$3 sprobe=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/citypass-busy-XXXXXX")
data=$tmp/data
pid=
pids=
. "$(dirname "$0")/../../support/procs.sh" # the one exit convention
cleanup() {
	stop_procs $pids $pid
	rm -rf "$tmp"
}
on_exit cleanup
fail() { echo "FAIL: $*" >&2; echo "--- server log" >&2; tail -n 30 "$tmp/server.log" >&2 || true; exit 1; }

"$admin" --data "$data" init --server-name 127.0.0.1 ${CITYPASS_TEST_PG:+--store "$CITYPASS_TEST_PG"} >/dev/null
"$admin" --data "$data" site add pool-east --sector pool >/dev/null
for g in 1 2 3 4 5 6; do
	"$admin" --data "$data" device add "gate-$g" --site pool-east --server 127.0.0.1:1 \
		--out "$tmp/b$g" >/dev/null
done
# the probe's statistics are of product 10: the server stores only products its rights have
"$admin" --data "$data" pass issue --anonymous --right pool,product=10 >/dev/null 2>&1

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

# the long writer
"$sprobe" hold-lock "$data" 12 >"$tmp/lock.out" 2>&1 &
lock=$!
pids="$lock"
for i in $(seq 1 50); do grep -q locked "$tmp/lock.out" && break; sleep 0.1; done
grep -q locked "$tmp/lock.out" || fail "could not take the lock: $(cat "$tmp/lock.out")"
start=$(date +%s)

# five gates upload 400 events each while it holds the lock
for g in 1 2 3 4 5; do
	"$probe" --port "$port" --bundle "$tmp/b$g" --events 400 --ack-wait 40 >"$tmp/g$g.out" 2>&1 &
	pids="$pids $!"
done
# ... and the server still answers a new session at once: Welcome and its list
sleep 1
out=$(timeout 8 "$probe" --port "$port" --bundle "$tmp/b6" 2>&1) || fail "a new session during the lock: $out"
echo "$out" | grep -q "held [1-9]" || fail "no list during the lock: $out"
[ $(($(date +%s) - start)) -lt 10 ] || fail "the server answered only once the lock was gone"
echo "ok - a new gate gets its session and list while the database is locked"

for p in $pids; do
	[ "$p" = "$lock" ] && continue
	wait "$p" || true
done
wait "$lock" || fail "the lock holder failed"
pids=
for g in 1 2 3 4 5; do
	grep -q "acked 400 bad 0" "$tmp/g$g.out" || fail "gate $g: $(cat "$tmp/g$g.out")"
done
echo "ok - five gates: every batch acknowledged once the lock was gone ($(($(date +%s) - start)) s)"
grep -q "database is locked\|backend error\|closing" "$tmp/server.log" &&
	fail "a gate saw the lock: $(grep -m1 "database is locked\|backend error\|closing" "$tmp/server.log")"
echo "ok - no gate was cut off, no batch refused"
total=$("$admin" --data "$data" stats --by site --format csv | awk -F, 'NR>1 {s+=$NF} END {print s+0}')
[ "$total" = 2000 ] || fail "the server holds $total events, expected 2000 (each once)"
echo "ok - 2000 events stored, each once"
kill "$pid" && wait "$pid" 2>/dev/null || true
pid=
echo "ingest during a long write lock: passed"
