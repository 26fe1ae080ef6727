#!/bin/sh
# The bench's control surface: clear refusals naming the bad value, the virtual QR scanner
# delivering a line on its serial port, gate outputs recorded with timestamps, the event
# log, and a clean stop.
. "$(dirname "$0")/lib.sh"
start_bench --reader gate-a --reader gate-b

# refusals: exit 1 and a message naming what was wrong
if msg=$(ctl place nowhere classic 2>&1); then fail "unknown reader accepted"; fi
expect_in "$msg" "no reader named 'nowhere'" "names the unknown reader"
if msg=$(ctl place gate-a teapot 2>&1); then fail "unknown target kind accepted"; fi
expect_in "$msg" "unknown target kind 'teapot'" "names the unknown kind"
if msg=$(ctl place gate-a classic uid=XYZ 2>&1); then fail "bad UID accepted"; fi
expect_in "$msg" "'uid=XYZ' is not valid" "names the bad UID"
if msg=$(ctl gate gate-a relay=ajar 2>&1); then fail "bad relay state accepted"; fi
expect_in "$msg" "'relay=ajar' is not valid" "names the bad relay state"
if msg=$(ctl frobnicate 2>&1); then fail "unknown command accepted"; fi
expect_in "$msg" "unknown command 'frobnicate'" "names the unknown command"
set +e
"$HIL" ctl --run-dir "$BENCH_DIR/elsewhere" status >/dev/null 2>&1
[ $? -eq 2 ] || fail "ctl without a bench must exit 2"
set -e

# the QR scanner: the text arrives as one line on the reader's scanner port
qr="$BENCH_DIR/qr/gate-a"
[ -L "$qr" ] || fail "no QR scanner port at $qr"
(timeout 10 head -n 1 <"$qr" >"$BENCH_DIR/qr.line") &
reader_pid=$!
sleep 0.3
ctl qr gate-a 'CPQ1.abc-DEF_123.xyz'
wait $reader_pid || fail "nothing arrived on the QR scanner port"
line=$(tr -d '\r' <"$BENCH_DIR/qr.line")
[ "$line" = "CPQ1.abc-DEF_123.xyz" ] || fail "QR line was '$line'"

# gate outputs: recorded per reader, with timestamps, readable since a point in time
t0=$(ctl now)
ctl gate gate-a relay=open led=green display=Bienvenue - 7 entrées restantes
ctl gate gate-b led=red display=Carte révoquée
ctl gate gate-a relay=closed led=off display=
out=$(ctl outputs gate-a since="$t0")
[ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ] || fail "expected 2 gate-a events since t0: $out"
expect_in "$out" '^[0-9]+ gate-a gate relay=open led=green display=Bienvenue - 7 entrées restantes$' \
	"the open event with its display text"
expect_in "$out" '^[0-9]+ gate-a gate relay=closed led=off display=$' "the close event"
expect_not_in "$out" 'gate-b' "only gate-a's outputs"
first=$(printf '%s\n' "$out" | head -n 1 | cut -d' ' -f1)
[ "$first" -gt "$t0" ] || fail "event time $first not after $t0"
status=$(ctl status)
expect_in "$status" 'reader gate-b .*relay=closed led=red' "status shows gate-b's LED"
grep -q 'gate-b gate relay=closed led=red display=Carte révoquée' "$BENCH_DIR/events.log" ||
	fail "events.log lacks the gate-b event"

# ctl tap / scan: the placement and the wait for the gate's decision in one process. The
# decision here is the bench's own gate command (no controller), sent while tap waits; a
# gate line without a decision (led=off) is not taken for one.
(sleep 0.3 && ctl gate gate-b relay=closed led=off display= &&
	ctl gate gate-b relay=open led=green display=Bienvenue) &
gate_pid=$!
out=$(ctl tap gate-b uid-only)
wait $gate_pid || fail "the gate command beside ctl tap failed"
expect_in "$out" '^[0-9]+ gate-b gate relay=open led=green display=Bienvenue$' "tap: the decision after the placement"
(sleep 0.3 && ctl gate gate-b led=amber display=Reessayez) &
gate_pid=$!
out=$(ctl scan gate-b 'CPQ1.x')
wait $gate_pid || fail "the gate command beside ctl scan failed"
expect_in "$out" '^[0-9]+ gate-b gate relay=open led=amber display=Reessayez$' "scan: the decision after the line"
# nothing decides: exit 1 after --within, naming the reader; a bad reader: refused at once
set +e
msg=$(ctl --within 1 tap gate-b uid-only 2>&1)
rc=$?
set -e
[ $rc -eq 1 ] || fail "tap without a decision must exit 1 (got $rc)"
expect_in "$msg" "no gate decision at gate-b within 1 s" "tap names the reader that decided nothing"
if msg=$(ctl tap nowhere classic 2>&1); then fail "tap on an unknown reader accepted"; fi
expect_in "$msg" "no reader named 'nowhere'" "tap names the unknown reader"
if msg=$(ctl --within 0 tap gate-b classic 2>&1); then fail "--within 0 accepted"; fi
expect_in "$msg" "'0' is not valid" "names the bad --within"

# a clean stop: the control socket and the reader links go away
ctl quit
wait "$BENCH_PID" || fail "bench exited with an error"
BENCH_PID=
[ ! -e "$BENCH_DIR/control.sock" ] || fail "control socket left behind"
[ ! -e "$BENCH_DIR/readers/gate-a" ] || fail "reader link left behind"
echo "control check passed"
