#!/bin/sh
# Device CA rotation through real gates (DESIGN.md §3, issue 11): `keys rotate --ca` makes
# CA 2 and certifies it with CA 1 (the announcement, checked here with openssl); after the
# server's restart a gate enrolled under CA 1 learns CA 2 in its Welcome and keeps it; a
# gate enrolled after the rotation (device certificate by CA 2) is admitted; once the server
# presents a certificate by CA 2 (`keys retire --ca`), the first gate still connects — also
# after its own restart — with no visit. A CA planted in a gate's state directory, not
# certified by one it trusts, is not believed, and a server presenting a certificate of that
# CA is refused.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1 pool-2
start_server
enrol pool-1 pool-n pool-1
start_controller pool-1
a=$(issue_card "$T/a.card" 04A1A2A3A4A5A6 pool)
b=$(issue_card "$T/b.card" 04B1B2B3B4B5B6 pool)
wait_list pool-1 pool
K=$CITYPASS_DATA/keys

out=$(adm keys rotate --ca 2>&1) || fail "keys rotate --ca: $out"
expect "$out" "device CA 2 announced by CA 1" "the rotation names both CAs"
# an independent verifier: the announcement is CA 2 certified by CA 1, same key as CA 2
openssl verify -CAfile "$K/ca-chain/1.ca.crt" "$K/ca-chain/1.cross.crt" >/dev/null 2>&1 ||
	fail "the cross-certificate does not verify under CA 1 with openssl"
[ "$(openssl x509 -in "$K/ca-chain/1.cross.crt" -noout -pubkey)" = \
	"$(openssl x509 -in "$K/ca-chain/1.next.crt" -noout -pubkey)" ] ||
	fail "the announcement does not carry CA 2's key"
echo "ok - openssl verifies the announcement of CA 2 under CA 1"

# the server restarts with its new trust anchors; pool-1 learns CA 2 at its next session
stop_server
start_server
wait_for 20 grep -q "device CA: 1 rotation(s) followed" "$T/ctl-pool-1.log" ||
	fail "pool-1 did not follow CA 2: $(tail -5 "$T/ctl-pool-1.log")"
[ -s "$T/state-pool-1/ca-followed.pem" ] || fail "pool-1 did not keep CA 2"

# a gate enrolled now holds a device certificate by CA 2
enrol pool-2 pool-n pool-2
openssl verify -CAfile "$K/ca-chain/1.next.crt" "$T/bundle-pool-2/device.crt" >/dev/null 2>&1 ||
	fail "pool-2's certificate is not by CA 2"
start_controller pool-2
wait_list pool-2 pool
echo "ok - a gate enrolled after the rotation, certified by CA 2, is admitted"

# the server now presents a certificate by CA 2: pool-1 (bundle: CA 1 only) still connects
out=$(adm keys retire --ca 2>&1) || fail "keys retire --ca: $out"
openssl verify -CAfile "$K/ca-chain/1.next.crt" "$K/server.crt" >/dev/null 2>&1 ||
	fail "the server certificate is not by CA 2"
stop_server
start_server
adm pass revoke "$a" --reason stolen >/dev/null 2>&1 || fail "revoke A"
wait_list pool-1 pool
out=$(tap pool-1 desfire "$T/a.card")
expect "$out" "led=red" "pool-1, enrolled under CA 1, syncs with a server certified by CA 2"
stop_controller pool-1
start_controller pool-1
wait_for 10 grep -q "device CA: 1 CA(s) followed since enrolment" "$T/ctl-pool-1.log" ||
	fail "pool-1 did not read CA 2 back at its restart"
adm pass revoke "$b" --reason lost >/dev/null 2>&1 || fail "revoke B"
wait_list pool-1 pool
echo "ok - after its restart, pool-1 still trusts CA 2 (kept, checked again from CA 1)"

# a CA planted in pool-1's state directory is not believed, and its server is refused:
# once on its own (signed by itself), once beside the real announcement of CA 2 (same name,
# another key)
openssl ecparam -name prime256v1 -genkey -noout -out "$T/rogue-ca.key" 2>/dev/null
openssl req -x509 -new -key "$T/rogue-ca.key" -subj "/CN=citypass device CA 2/O=citypass" \
	-days 30 -addext "basicConstraints=critical,CA:TRUE" -out "$T/rogue-ca.crt" 2>/dev/null ||
	fail "openssl: rogue CA"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/rogue.key" 2>/dev/null
openssl req -new -key "$T/rogue.key" -subj "/CN=127.0.0.1/O=citypass" -out "$T/rogue.csr" 2>/dev/null
printf 'extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$T/rogue.ext"
openssl x509 -req -in "$T/rogue.csr" -CA "$T/rogue-ca.crt" -CAkey "$T/rogue-ca.key" \
	-CAcreateserial -days 30 -extfile "$T/rogue.ext" -out "$T/rogue.crt" 2>/dev/null ||
	fail "openssl: rogue server certificate"
planted() { # planted CROSS WHAT
	stop_controller pool-1
	cp "$T/state-pool-1/ca-followed.pem" "$T/followed.good"
	cat "$1" "$T/rogue-ca.crt" >>"$T/state-pool-1/ca-followed.pem"
	stop_server
	lines=$(wc -l <"$T/ctl-pool-1.log")
	start_controller pool-1
	wait_for 10 sh -c "tail -n +$((lines + 1)) '$T/ctl-pool-1.log' | grep -q 'device CA: .*not believed'" ||
		fail "$2 was believed: $(tail -5 "$T/ctl-pool-1.log")"
	"$SERVER" --data "$CITYPASS_DATA" --listen "127.0.0.1:$PORT" --poll-ms 50 \
		--cert "$T/rogue.crt" --key "$T/rogue.key" >>"$T/server.log" 2>&1 &
	SERVER_PID=$!
	wait_for 20 sh -c "tail -n +$((lines + 1)) '$T/ctl-pool-1.log' | grep -q 'server certificate refused'" ||
		fail "pool-1 did not refuse the server of $2: $(tail -5 "$T/ctl-pool-1.log")"
	tail -n +$((lines + 1)) "$T/ctl-pool-1.log" | grep -q "sync: connected" &&
		fail "pool-1 connected to a server certified by $2"
	stop_server
	# the real chain back, as the server would send it again
	stop_controller pool-1
	cp "$T/followed.good" "$T/state-pool-1/ca-followed.pem"
	start_server
	lines=$(wc -l <"$T/ctl-pool-1.log")
	start_controller pool-1
	wait_for 20 sh -c "tail -n +$((lines + 1)) '$T/ctl-pool-1.log' | grep -q 'sync: connected'" ||
		fail "pool-1 did not reconnect to the real server"
	echo "ok - $2 is not believed, and its server is refused"
}
planted "$T/rogue-ca.crt" "a CA announced by itself"
planted "$K/ca-chain/1.cross.crt" "another key under the real announcement's name"
echo "CA rotation check passed"
