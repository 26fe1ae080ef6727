#!/bin/sh
# bench_issue — issuing one pass on a card as NXP ships it, at the desk, against the
# wire-time floor: the real citypass-admin (pass issue --reader) through Debian's libnfc
# pn532_uart driver and the bench with --baud 115200, every byte to and from the emulated
# PN532 delayed as on a UART.
#
#   bench_issue.sh [CARDS]     env: ADMIN SERVER HIL CONTROLLER TOKEN (or BUILD=dir)
#
# From the bench's event log, for each card: the reader commands of the card (from the
# first InListPassiveTarget that found it to the last command; repeats the log folds
# counted back in), the bytes they put on the
# wire (the same framing count as bench_tap.sh: host frame, ACK, answer), the floor =
# bytes x 10 bits / 115 200, and the card time (first select .. last answer) beside it;
# and the whole command's wall time (process start, libnfc open, database, card).
# Radio time and the card's own processing are not modelled (docs/hil.md).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
: "${ADMIN:=$BUILD/server/citypass-admin}" "${SERVER:=$BUILD/server/citypass-server}"
: "${HIL:=$BUILD/hil/citypass-hil}" "${CONTROLLER:=$BUILD/controller/citypass-controller}"
: "${TOKEN:=$BUILD/cardlib/citypass-token}"
export ADMIN SERVER HIL CONTROLLER TOKEN
N=${1:-10}
HIL_ARGS="--baud 115200"
. "$ROOT/tests/controller/daemon/lib.sh"

deployment pool,library,waste,bus --value-sector pool
start_bench
: >"$T/issues.txt"
i=0
while [ $i -lt "$N" ]; do
	i=$((i + 1))
	ctl remove desk >/dev/null 2>&1 || true
	rm -f "$T/c$i.card"
	ctl place desk desfire "$T/c$i.card" "uid=04AB$(printf '%010X' "$i")" >/dev/null
	since=$(now_us)
	t0=$(date +%s%N)
	adm pass issue --anonymous --right pool,entries=10 --right library \
		--reader "$(reader desk)" >/dev/null 2>"$T/issue.err" || fail "issue: $(cat "$T/issue.err")"
	t1=$(date +%s%N)
	ctl events "since=$since" | awk -v wall="$(( (t1 - t0) / 1000 ))" '
		$2 != "desk" || $3 != "pn532" { next }
		# the log folds a command repeated with the same sizes (ChangeKey after ChangeKey):
		# "(last command repeated N times)" stands for N more of the previous one
		$4 == "(last" { if (start) { n += $7; bytes += $7 * prev; if (prevx) x += $7 } next }
		$4 == "InListPassiveTarget" && $8 == "19" && !start { start = $1 }
		start {
			n++
			if ($4 == "InDataExchange") { prev = 7 + 3 + $5 + 6 + 7 + 3 + $8; prevx = 1; x++ }
			else { prev = 7 + 2 + $5 + 6 + 7 + 2 + $8; prevx = 0 }
			bytes += prev
			last = $1
		}
		END { print last - start, bytes, n, x, wall }
	' >>"$T/issues.txt"
done
wall_med=$(sort -n -k5 "$T/issues.txt" | awk '{ w[NR] = $5 } END { print w[int((NR + 1) / 2)] }')
sort -n "$T/issues.txt" | awk -v wall_med="$wall_med" '
	{ t[NR] = $1; b = $2; c = $3; x = $4 }
	END {
		if (NR == 0) { print "bench_issue: nothing measured"; exit 1 }
		med = t[int((NR + 1) / 2)]; worst = t[NR]
		floor = b * 10 * 1000000 / 115200
		printf "bench_issue: %d cards issued from factory-fresh (DES PICC key), emulated PN532 at 115200 baud\n", NR
		printf "%-46s %10s %10s %8s\n", "metric", "ours", "floor", "ratio"
		printf "%-46s %8.0f ms %8.0f ms %8.2f\n", "card time, median (first select .. last answer)", med / 1000, floor / 1000, med / floor
		printf "%-46s %8.0f ms %8.0f ms %8.2f\n", "card time, worst", worst / 1000, floor / 1000, worst / floor
		printf "%-46s %8.0f ms\n", "pass issue, whole command, median", wall_med / 1000
		printf "%-46s %10d\n", "PN532 commands per card", c
		printf "%-46s %10d\n", "card exchanges per card", x
		printf "%-46s %10d\n", "bytes on the UART per card", b
	}'
