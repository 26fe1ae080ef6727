#!/bin/sh
# External targets: a process plays the card through the bench's relay socket. The reader
# side (a plain libnfc client) gets the peer's answers; a silent peer is a timeout; a peer
# that hangs up has left the field.
. "$(dirname "$0")/lib.sh"
: "${RELAY_PEER:?}" "${APDU_CLIENT:?}"
start_bench --reader r1

"$RELAY_PEER" "$BENCH_DIR/phone.sock" --uid 08C0FFEE --silent-after 2 >"$BENCH_DIR/peer.log" &
PEER_PIDS=$!
i=0
until [ -S "$BENCH_DIR/phone.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "relay peer did not start"; sleep 0.05
done
ctl place r1 external "$BENCH_DIR/phone.sock"
out=$("$APDU_CLIENT" "$(reader r1)" 00A4040007F0010203040506 8001000000 2>&1) ||
	fail "exchange through the relay failed: $out"
expect_in "$out" '^uid 08c0ffee$' "the peer's UID"
expect_in "$out" '^resp 060504030201f0070004a4009000 ' "first APDU answered reversed"
expect_in "$out" '^resp 00000001809000 ' "second APDU answered"
# the third exchange: the peer stays silent, the reader times out
if out=$("$APDU_CLIENT" "$(reader r1)" 00 00 00 2>&1); then
	fail "a silent peer must make the exchange fail: $out"
fi
expect_in "$out" '^error ' "timeout reported"
grep -q '^apdu 12 bytes$' "$BENCH_DIR/peer.log" || fail "the peer did not see the APDU"

# the longest APDU a peer takes (600 bytes, beyond any PN532 frame) is answered with its
# two status bytes more: the answer once overflowed the peer's send buffer by those two
"$RELAY_PEER" "$BENCH_DIR/long.sock" >/dev/null &
PEER_PIDS="$PEER_PIDS $!"
i=0
until [ -S "$BENCH_DIR/long.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "relay peer did not start"; sleep 0.05
done
out=$("$RELAY_PEER" --exchange "$BENCH_DIR/long.sock" 600 2>&1) ||
	fail "a 600-byte APDU: $out"
expect_in "$out" '^answer X 602 bytes$' "a 600-byte APDU answered with 602 bytes"

# unknown socket: a clear error, nothing placed
if msg=$(ctl place r1 external "$BENCH_DIR/nobody.sock" 2>&1); then
	fail "placing a missing peer must fail"
fi
expect_in "$msg" 'nobody.sock' "the error names the socket"
# a man in the middle between reader and phone: it sees every APDU; tampering shows in
# the answer (what a protocol-level MAC or signature must catch, in cardlib's tests)
"$RELAY_PEER" "$BENCH_DIR/phone2.sock" >/dev/null &
PEER_PIDS="$PEER_PIDS $!"
"$RELAY_PEER" "$BENCH_DIR/mitm.sock" --forward "$BENCH_DIR/phone2.sock" --tamper \
	>"$BENCH_DIR/mitm.log" &
PEER_PIDS="$PEER_PIDS $!"
i=0
until [ -S "$BENCH_DIR/mitm.sock" ] && [ -S "$BENCH_DIR/phone2.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "mitm did not start"; sleep 0.05
done
ctl place r1 external "$BENCH_DIR/mitm.sock"
out=$("$APDU_CLIENT" "$(reader r1)" 0102030405 2>&1) || fail "exchange through the mitm: $out"
# the phone answers 05 04 03 02 01 90 00; the mitm flipped the last data byte
expect_in "$out" '^resp 05040302009000 ' "the tampered answer reached the reader"
grep -q '^relayed X 5 bytes$' "$BENCH_DIR/mitm.log" || fail "the mitm did not see the APDU"
echo "relay check passed"
