#!/bin/sh
# End to end over the rights database — sqlite, or PostgreSQL when run under
# tests/support/pg_run.sh (CITYPASS_TEST_PG set; issue 16): a deployment made by citypass-admin, the
# real citypass-server binary on loopback, controllers provisioned from real device
# bundles (sync_probe). Checks: snapshot verified with the list key, batch acknowledged
# and a resend not counted twice, revoked device refused at the handshake, push of a new
# publication as a verified delta, clean stop on SIGTERM.
#   e2e_sqlite.sh CITYPASS-ADMIN CITYPASS-SERVER SYNC-PROBE
set -eu
admin=$1 server=$2 probe=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/citypass-e2e-XXXXXX")
data=$tmp/data
pid=
. "$(dirname "$0")/../../support/procs.sh" # the one exit convention
cleanup() {
	stop_procs $pid
	rm -rf "$tmp"
}
on_exit cleanup
fail() { echo "FAIL: $*" >&2; echo "--- server log" >&2; cat "$tmp/server.log" >&2 || true; exit 1; }

# command line: --help, bad usage
"$server" --help | grep -q -- "--data DIR" || fail "--help"
rc=0; "$server" --listen 127.0.0.1:1 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "no --data: exit $rc, expected 2"

if [ -n "${CITYPASS_TEST_PG:-}" ]; then
	"$admin" --data "$data" init --store "$CITYPASS_TEST_PG" >/dev/null
	[ -f "$data/store.conf" ] && [ ! -e "$data/citypass.db" ] || fail "init --store made no PostgreSQL deployment"
	# a second deployment in the same database is refused, naming why
	rc=0; "$admin" --data "$tmp/data2" init --store "$CITYPASS_TEST_PG" 2>"$tmp/init2.err" || rc=$?
	[ "$rc" != 0 ] && grep -q "already holds a citypass deployment" "$tmp/init2.err" || fail "second init: $(cat "$tmp/init2.err")"
	# the sqlite backup does not apply: it says what does
	echo "correct horse battery staple" >"$tmp/pass"
	rc=0; "$admin" --data "$data" backup --out "$tmp/b.cpb" --passphrase-file "$tmp/pass" 2>"$tmp/backup.err" || rc=$?
	[ "$rc" != 0 ] && grep -q "pg_dump" "$tmp/backup.err" || fail "backup of a PostgreSQL store: $(cat "$tmp/backup.err")"
	[ ! -e "$tmp/b.cpb" ] || fail "a backup file was written for a PostgreSQL store"
else
	"$admin" --data "$data" init >/dev/null
fi
rc=0; "$server" --data "$data" --listen nowhere 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "--listen nowhere: exit $rc, expected 2"
"$admin" --data "$data" site add pool-east --sector pool >/dev/null
"$admin" --data "$data" device add gate-1 --site pool-east --server 127.0.0.1:1 --out "$tmp/b1" >/dev/null
"$admin" --data "$data" device add gate-2 --site pool-east --server 127.0.0.1:1 --out "$tmp/b2" >/dev/null
"$admin" --data "$data" device revoke gate-2 >/dev/null
"$admin" --data "$data" list publish >/dev/null
# the probe's statistics are of product 10: the server stores only products its rights have
"$admin" --data "$data" pass issue --anonymous --right pool,product=10 >/dev/null 2>&1

# a free port: try a few random ones (bounded)
port=
for attempt in 1 2 3 4 5 6 7 8 9 10; do
	p=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
	: > "$tmp/server.log"
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

out=$("$probe" --port "$port" --bundle "$tmp/b1" --events 500) || fail "first session: $out"
echo "$out" | grep -q "snapshots 1 deltas 0 acked 500 bad 0" || fail "first session: $out"

# the same 500 events again: acknowledged, not stored twice
out=$("$probe" --port "$port" --bundle "$tmp/b1" --events 500) || fail "resend: $out"
echo "$out" | grep -q "acked 500" || fail "resend: $out"
total=$("$admin" --data "$data" stats --by site --format csv | awk -F, 'NR>1 {s+=$NF} END {print s+0}')
[ "$total" = 500 ] || fail "stats count $total, expected 500"

# revoked device: refused during the handshake
"$probe" --port "$port" --bundle "$tmp/b2" --expect-refused >/dev/null || fail "revoked device served"
grep -q "gate-2.*TLS handshake refused: device is revoked" "$tmp/server.log" || fail "no refusal logged"

# push: a controller waits, a new version is published, it arrives as a verified delta
"$probe" --port "$port" --bundle "$tmp/b1" --wait-push 10 > "$tmp/push.out" &
ppid=$!
for i in $(seq 1 100); do grep -q "ready" "$tmp/push.out" && break; sleep 0.05; done
grep -q "ready" "$tmp/push.out" || fail "push probe not ready"
"$admin" --data "$data" list publish --sector pool >/dev/null
wait "$ppid" || fail "push: $(cat "$tmp/push.out")"
grep -q "pushed held .* published 1" "$tmp/push.out" || fail "push: $(cat "$tmp/push.out")"
grep -q "deltas 1 .*bad 0" "$tmp/push.out" || fail "push not a delta: $(cat "$tmp/push.out")"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "server exit status $rc after SIGTERM"
grep -q "stopped: " "$tmp/server.log" || fail "no stop summary"
echo "e2e (${CITYPASS_TEST_PG:+postgresql}${CITYPASS_TEST_PG:-sqlite}): ok" | sed 's/postgresql.*)/postgresql)/' 
