#!/bin/sh
# libnfc's nfc-poll (InAutoPoll, then presence checks) sees a virtual card placed on the
# emulated reader, and sees it leave.
. "$(dirname "$0")/lib.sh"
start_bench --reader r1

LIBNFC_DEVICE=$(reader r1) timeout 60 nfc-poll -v >"$BENCH_DIR/poll.out" 2>&1 &
poll_pid=$!
PEER_PIDS="$poll_pid"
sleep 1
ctl place r1 desfire "$BENCH_DIR/bob.card" uid=04010203040506
# nfc-poll reports the card, then waits for its removal
i=0
until grep -q 'Waiting for card removing' "$BENCH_DIR/poll.out"; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "nfc-poll never saw the card: $(cat "$BENCH_DIR/poll.out")"
	sleep 0.1
done
ctl remove r1
wait "$poll_pid" || fail "nfc-poll failed: $(cat "$BENCH_DIR/poll.out")"
out=$(cat "$BENCH_DIR/poll.out")
expect_in "$out" 'UID \(NFCID1\): 04 +01 +02 +03 +04 +05 +06' "nfc-poll saw the card's UID"
# libnfc prints its own "Target Released" between the two words
expect_in "$out" 'Target Released' "nfc-poll saw the card leave"
expect_in "$out" '^done\.$' "nfc-poll finished waiting for the removal"
echo "nfc-poll check passed"
