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

# start_server LOG ARGS...: a server on a free port (a few random ones tried, bounded);
# sets started_pid and started_port
start_server() {
	_log=$1
	shift
	started_port=
	for attempt in 1 2 3 4 5 6 7 8 9 10; do
		p=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
		: > "$_log"
		"$server" --data "$data" --listen "127.0.0.1:$p" "$@" 2>"$_log" &
		started_pid=$!
		for i in $(seq 1 50); do
			grep -q "listening on" "$_log" && break
			kill -0 "$started_pid" 2>/dev/null || break
			sleep 0.1
		done
		if grep -q "listening on" "$_log"; then started_port=$p; return 0; fi
		wait "$started_pid" 2>/dev/null || true
		started_pid=
	done
	return 1
}
start_server "$tmp/server.log" --poll-ms 50 || fail "server did not start"
pid=$started_pid port=$started_port

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

# an independent client (openssl) offering its usual curves (x25519 first): the server
# picks P-256, its own first choice, the curve of the certificates, not mbedTLS's default
# secp521r1 (a full handshake's dearest part in a reconnect storm; link/src/tls.c)
openssl s_client -connect "127.0.0.1:$port" -cert "$tmp/b1/device.crt" -key "$tmp/b1/device.key" \
	-CAfile "$tmp/b1/ca.crt" </dev/null >"$tmp/s_client.out" 2>&1 || true
grep -q "Verify return code: 0" "$tmp/s_client.out" || fail "openssl s_client: $(cat "$tmp/s_client.out")"
grep -q "Server Temp Key: ECDH, prime256v1" "$tmp/s_client.out" ||
	fail "key exchange not on P-256: $(grep "Temp Key" "$tmp/s_client.out")"

if [ -n "${CITYPASS_TEST_PG:-}" ]; then
	# issue 16: a second instance on the same database, that never polls: a version
	# published through citypass-admin reaches its gates by the database's announcement
	# (LISTEN/NOTIFY), and a gate of either instance is served
	start_server "$tmp/server-b.log" --poll-ms 60000 || fail "second instance did not start: $(cat "$tmp/server-b.log")"
	pid_b=$started_pid port_b=$started_port
	pid="$pid $pid_b"
	grep -q "announces publications" "$tmp/server-b.log" || fail "instance B does not listen: $(cat "$tmp/server-b.log")"
	"$probe" --port "$port_b" --bundle "$tmp/b1" --wait-push 10 > "$tmp/push-b.out" &
	ppid=$!
	for i in $(seq 1 100); do grep -q "ready" "$tmp/push-b.out" && break; sleep 0.05; done
	grep -q "ready" "$tmp/push-b.out" || fail "push probe on B not ready"
	"$admin" --data "$data" list publish --sector pool >/dev/null
	wait "$ppid" || fail "push through B: $(cat "$tmp/push-b.out"); $(cat "$tmp/server-b.log")"
	grep -q "deltas 1 .*bad 0" "$tmp/push-b.out" || fail "push through B not a delta: $(cat "$tmp/push-b.out")"
	# the resend of gate-1's 500 events to B: acknowledged, counted once
	out=$("$probe" --port "$port_b" --bundle "$tmp/b1" --events 500) || fail "resend to B: $out"
	echo "$out" | grep -q "acked 500" || fail "resend to B: $out"
	total=$("$admin" --data "$data" stats --by site --format csv | awk -F, 'NR>1 {s+=$NF} END {print s+0}')
	[ "$total" = 500 ] || fail "stats count $total after the resend to B, expected 500"
	kill -TERM "$pid_b"
	wait "$pid_b" || fail "instance B exit status $? after SIGTERM"
	pid=${pid%% *}

	# the database unreachable at start: the server says why and tries again with a
	# back-off (never exits, never crashes); once the database answers, it serves. The
	# socket directory it is given is empty until a link to the real socket appears.
	mkdir -p "$tmp/late/sock"
	cp -R "$data" "$tmp/late/data"
	printf 'postgresql://citypass@/citypass?host=%s\n' "$tmp/late/sock" >"$tmp/late/data/store.conf"
	"$server" --data "$tmp/late/data" --listen 127.0.0.1:0 2>"$tmp/late.log" &
	pid_late=$!
	pid="$pid $pid_late"
	for i in $(seq 1 100); do
		[ "$(grep -c "trying again" "$tmp/late.log")" -ge 2 ] && break
		kill -0 "$pid_late" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid_late" 2>/dev/null || fail "unreachable database: the server exited: $(cat "$tmp/late.log")"
	grep -q "cannot connect to the PostgreSQL database: .*trying again in 1 s" "$tmp/late.log" || fail "unreachable database: $(cat "$tmp/late.log")"
	grep -q "trying again in 2 s" "$tmp/late.log" || fail "no back-off: $(cat "$tmp/late.log")"
	ln -s "$CITYPASS_TEST_PG_DIR/.s.PGSQL.5432" "$tmp/late/sock/.s.PGSQL.5432"
	for i in $(seq 1 150); do
		grep -q "listening on" "$tmp/late.log" && break
		sleep 0.1
	done
	grep -q "listening on" "$tmp/late.log" || fail "the server did not start once the database answered: $(cat "$tmp/late.log")"
	kill -TERM "$pid_late"
	wait "$pid_late" || fail "late server exit status $? after SIGTERM"
	pid=${pid%% *}
fi

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "server exit status $rc after SIGTERM"
grep -q "stopped: " "$tmp/server.log" || fail "no stop summary"
echo "e2e (${CITYPASS_TEST_PG:+postgresql}${CITYPASS_TEST_PG:-sqlite}): ok" | sed 's/postgresql.*)/postgresql)/' 
