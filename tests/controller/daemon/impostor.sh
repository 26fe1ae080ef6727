#!/bin/sh
# One stolen gate bundle must not impersonate the sync server (issue 10, item 4), and a
# server from another deployment must not either (the controller's verification of the
# server certificate, item 8). The gate holds unacknowledged decisions while the real
# server is down; an impostor listens on the server's address with
#   1. the certificate and key of another gate of the same deployment (same CA, CN = a
#      device id, extendedKeyUsage clientAuth), then
#   2. a real server certificate of another deployment (serverAuth, CN 127.0.0.1, another
#      CA).
# The gate must refuse both during the handshake, keep its journal, and deliver every
# decision once the real server is back.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
enrol pool-2 pool-n pool-2 # the stolen bundle: never run, only its files are used
start_controller pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
wait_list pool-1 pool
: >"$T/taps"
taps() { wc -l <"$T/taps" | tr -d ' '; }
server_exact() { [ "$(server_count)" = "$(taps)" ]; }
pending() { sql "$T/state-pool-1/journal.db" "select count(*) from stat"; }

echo tap >>"$T/taps"
expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green" "online tap"
wait_for 15 server_exact || fail "online: server counts $(server_count), expected $(taps)"

stop_server
for i in 1 2 3; do
	echo tap >>"$T/taps"
	expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green" "offline tap $i"
done
[ "$(pending)" = 3 ] || fail "the journal holds $(pending) unacknowledged rows, expected 3"

# impostor_up NAME PID : the impostor listens; wait until the gate has refused it twice,
# stop it, and check the gate never finished a handshake with it and kept its journal
impostor_check() {
	_n=$1 _ipid=$2
	_refused_twice() {
		[ "$(grep -c "server certificate refused" "$T/ctl-pool-1.log")" -ge $((_tries + 2)) ]
	}
	wait_for 20 _refused_twice || {
		kill "$_ipid"
		fail "$_n: the gate did not refuse it: $(grep 'sync' "$T/ctl-pool-1.log" | tail -n 3)"
	}
	kill "$_ipid"
	wait "$_ipid" 2>/dev/null || true
	PEER_PIDS=$(echo "$PEER_PIDS" | tr ' ' '\n' | grep -vx "$_ipid" | tr '\n' ' ')
	[ "$(grep -c "TLS up with" "$T/ctl-pool-1.log")" = "$tls_before" ] ||
		fail "$_n: the gate completed a TLS handshake with it"
	[ "$(pending)" = 3 ] || fail "$_n: the journal now holds $(pending) rows: the impostor acked them"
	echo "ok - $_n refused by the gate ($(grep "server certificate refused" "$T/ctl-pool-1.log" |
		tail -n 1 | sed 's/.*refused: //')); nothing acknowledged"
}
tls_before=$(grep -c "TLS up with" "$T/ctl-pool-1.log")

# 1. the stolen gate's own certificate and key on the server's address, served by a TLS
# server that does not care what its certificate is for (openssl s_server)
_tries=$(grep -c "server certificate refused" "$T/ctl-pool-1.log" || true)
openssl s_server -accept "127.0.0.1:$PORT" -cert "$T/bundle-pool-2/device.crt" \
	-key "$T/bundle-pool-2/device.key" -CAfile "$T/bundle-pool-2/ca.crt" -verify 1 -www \
	>"$T/stolen-gate.log" 2>&1 </dev/null &
ipid=$!
PEER_PIDS="$PEER_PIDS $ipid"
impostor_check stolen-gate "$ipid"
grep -q "Usage does not match the extendedKeyUsage\|Common Name (CN) does not match" \
	"$T/ctl-pool-1.log" || fail "the refusal does not name the certificate's role or name"

# openssl_impostor NAME CN PURPOSE : a certificate signed by the deployment CA (as a
# second enrolment tool or a mistake could make), served by openssl s_server
openssl_impostor() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
		-keyout "$T/$1.key" -out "$T/$1.csr" >/dev/null 2>&1 || fail "$1: openssl req"
	printf 'extendedKeyUsage = %s\n' "$3" >"$T/$1.ext"
	openssl x509 -req -in "$T/$1.csr" -CA "$CITYPASS_DATA/keys/ca.crt" \
		-CAkey "$CITYPASS_DATA/keys/ca.key" -CAcreateserial -days 30 -sha256 \
		-extfile "$T/$1.ext" -out "$T/$1.crt" >/dev/null 2>&1 || fail "$1: openssl x509"
	_tries=$(grep -c "server certificate refused" "$T/ctl-pool-1.log" || true)
	openssl s_server -accept "127.0.0.1:$PORT" -cert "$T/$1.crt" -key "$T/$1.key" -www \
		>"$T/$1.log" 2>&1 </dev/null &
	ipid=$!
	PEER_PIDS="$PEER_PIDS $ipid"
	impostor_check "$1" "$ipid"
}
# 1b. a gate certificate that bears the server's name: its role alone refuses it
openssl_impostor gate-named-as-server 127.0.0.1 clientAuth
grep -q "Usage does not match the extendedKeyUsage" "$T/ctl-pool-1.log" ||
	fail "a clientAuth certificate was not refused for its role"
# 1c. a server certificate of this CA for another name: the pinned name refuses it
openssl_impostor server-of-another-name other-server serverAuth
[ "$(grep "server certificate refused" "$T/ctl-pool-1.log" | tail -n 1 |
	grep -c "Common Name (CN) does not match")" = 1 ] ||
	fail "a server certificate for another name was not refused for its name"

# 2. a genuine server certificate of another deployment (serverAuth, the right CN), served
# by a real citypass-server on a copy of this deployment's database: it would acknowledge
CITYPASS_DATA="$T/other" adm init --server-name 127.0.0.1 --sectors pool >/dev/null 2>&1 ||
	fail "second deployment"
cp -a "$CITYPASS_DATA" "$T/foreign-data"
_tries=$(grep -c "server certificate refused" "$T/ctl-pool-1.log" || true)
"$SERVER" --data "$T/foreign-data" --listen "127.0.0.1:$PORT" --poll-ms 50 \
	--cert "$T/other/keys/server.crt" --key "$T/other/keys/server.key" \
	>>"$T/foreign.log" 2>&1 &
ipid=$!
PEER_PIDS="$PEER_PIDS $ipid"
wait_for 5 grep -q "listening on 127.0.0.1:$PORT" "$T/foreign.log" ||
	fail "foreign server did not start: $(tail -n 3 "$T/foreign.log")"
impostor_check foreign-server "$ipid"
grep -q "not correctly signed by the trusted CA" "$T/ctl-pool-1.log" ||
	fail "the foreign server's refusal does not say it is not from the deployment CA"

# the real server is back: every decision arrives, once
start_server
wait_for 30 server_exact || fail "after the impostors: server counts $(server_count), expected $(taps)"
echo "ok - all $(taps) decisions reached the real server once"
echo "controller impostor check passed"
