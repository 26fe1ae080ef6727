#!/bin/sh
# The wire-time model: with --baud 9600 and a card time, an exchange cannot complete before
# the bytes it needs have crossed a 9600-baud line, plus the card's time. Only the lower
# bound is checked (a floor the bench enforces), never an upper bound: the machine is shared.
. "$(dirname "$0")/lib.sh"
: "${RELAY_PEER:?}" "${APDU_CLIENT:?}"
start_bench --reader r1 --baud 9600 --card-time-us 20000
"$RELAY_PEER" "$BENCH_DIR/phone.sock" >/dev/null &
PEER_PIDS=$!
i=0
until [ -S "$BENCH_DIR/phone.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "peer did not start"; sleep 0.05
done
ctl place r1 external "$BENCH_DIR/phone.sock"
# 10-byte APDU: host frame 00 00 FF LEN LCS D4 40 01 +10 +DCS 00 = 20 bytes; ACK 6 bytes;
# answer 00 00 FF LEN LCS D5 41 00 +12 +DCS 00 = 22 bytes. 48 bytes x 10 bits / 9600 baud
# = 50 ms, plus 20 ms of card time.
out=$("$APDU_CLIENT" "$(reader r1)" 00112233445566778899 2>&1) || fail "exchange failed: $out"
us=$(printf '%s\n' "$out" | sed -n 's/^resp .* us=\([0-9]*\)$/\1/p')
[ -n "$us" ] || fail "no timing in: $out"
[ "$us" -ge 70000 ] || fail "exchange took $us us, below the 70 000 us wire-time floor"
echo "wire-time check passed: $us us >= 70000 us floor"
