#!/bin/sh
# IPv6 (issue 15, item 8): citypass-server on [::] serves IPv6 and IPv4 gates on one
# socket; a gate whose bundle names the server as [::1]:PORT and one that names it
# 127.0.0.1:PORT both get their list and decide; a server on [::1] alone serves IPv6.
# Bad addresses are refused with a sentence. Run on sqlite (sync_ipv6) and on PostgreSQL
# (sync_ipv6_pg: CITYPASS_TEST_PG, tests/support/pg_run.sh).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN [CITYPASS_TEST_PG].
. "$(dirname "$0")/lib.sh"

[ -r /proc/net/if_inet6 ] && grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 ||
	fail "this machine has no IPv6 loopback (::1): the test needs one"

deployment pool ${CITYPASS_TEST_PG:+--store "$CITYPASS_TEST_PG"}
adm site add pool-n --sector pool >/dev/null
start_bench pool-6 pool-4
# a random port may be taken (CI ran this beside sync_ipv6_pg): start_server retries
LISTEN_HOST='[::]'
start_server
LISTEN_HOST=
grep -qF "listening on [::]:$PORT" "$T/server.log" || fail "server on [::]:$PORT: $(tail -n 3 "$T/server.log")"
echo "ok - the server listens on [::]:$PORT"

enrol pool-6 pool-n pool-6
enrol pool-4 pool-n pool-4
# pool-6 reaches the server over IPv6: its bundle names [::1]:PORT
adm device revoke pool-6 >/dev/null 2>&1 || true
rm -rf "$T/bundle-pool-6"
adm device add pool-6b --site pool-n --server "[::1]:$PORT" --out "$T/bundle-pool-6" \
	>/dev/null 2>"$T/add.err" || fail "device add --server [::1]:$PORT: $(cat "$T/add.err")"
grep -q "^server = \[::1\]:$PORT" "$T/bundle-pool-6/device.conf" ||
	fail "the bundle does not name [::1]: $(grep server "$T/bundle-pool-6/device.conf")"
start_controller pool-6
start_controller pool-4
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool)
wait_list pool-6 pool
wait_list pool-4 pool
grep -q "conn [0-9]* pool-6b (\[::1\]:" "$T/server.log" || fail "no IPv6 session: $(grep conn "$T/server.log" | tail -n 3)"
grep -q "conn [0-9]* pool-4 (127.0.0.1:" "$T/server.log" ||
	fail "no IPv4 session on the same socket: $(grep conn "$T/server.log" | tail -n 3)"
echo "ok - one socket: a gate over IPv6 ([::1]) and one over IPv4, both hold the list"
out=$(tap pool-6 desfire "$T/ann.card")
expect "$out" "relay=open led=green" "the IPv6 gate decides"
adm pass revoke "$ann" --reason stolen >/dev/null 2>&1 || fail "revoke"
wait_list pool-6 pool
out=$(tap pool-6 desfire "$T/ann.card")
expect "$out" "led=red display=Carte révoquée" "a revocation reaches the IPv6 gate"

# bad addresses: a sentence and exit 2, nothing listening
for a in "[::1:7443" "::1:7443" "[zz::1]:7443" "[::1]:70000" "127.0.0.1"; do
	rc=0
	out=$(timeout 10 "$SERVER" --data "$CITYPASS_DATA" --listen "$a" 2>&1) || rc=$?
	[ "$rc" = 2 ] && printf '%s\n' "$out" | grep -q "expected IPV4:PORT or \[IPV6\]:PORT" ||
		fail "--listen '$a': exit $rc: $out"
done
echo "ok - malformed addresses are refused with a sentence"
echo "IPv6 check passed"
