#!/bin/sh
# Two emulated readers used by two processes at once keep working: each process has its
# own reader (HIL-NOTES pitfall 4: a reader is never shared).
. "$(dirname "$0")/lib.sh"
: "${RELAY_PEER:?}" "${APDU_CLIENT:?}"
start_bench --reader r1 --reader r2
for r in r1 r2; do
	"$RELAY_PEER" "$BENCH_DIR/$r.sock" >/dev/null &
	PEER_PIDS="$PEER_PIDS $!"
done
for r in r1 r2; do
	i=0
	until [ -S "$BENCH_DIR/$r.sock" ]; do
		i=$((i + 1)); [ $i -lt 100 ] || fail "peer $r did not start"; sleep 0.05
	done
	ctl place $r external "$BENCH_DIR/$r.sock"
done
"$APDU_CLIENT" "$(reader r1)" --repeat 200 0011223344 >"$BENCH_DIR/r1.out" 2>&1 &
p1=$!
"$APDU_CLIENT" "$(reader r2)" --repeat 200 5566778899AA >"$BENCH_DIR/r2.out" 2>&1 &
p2=$!
wait $p1 || fail "reader r1: $(tail -3 "$BENCH_DIR/r1.out")"
wait $p2 || fail "reader r2: $(tail -3 "$BENCH_DIR/r2.out")"
[ "$(grep -c '^resp 44332211009000 ' "$BENCH_DIR/r1.out")" -eq 200 ] || fail "r1 lost exchanges"
[ "$(grep -c '^resp aa99887766559000 ' "$BENCH_DIR/r2.out")" -eq 200 ] || fail "r2 lost exchanges"
echo "two readers check passed: 2 x 200 exchanges"
