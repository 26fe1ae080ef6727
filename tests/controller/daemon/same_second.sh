#!/bin/sh
# The same-second double count (issue 13, item 5): a use acknowledged in the second a list
# reflecting it was issued was counted twice by the gate — once in the list's `used`, once
# as "acknowledged at or after the list's issue time, so not in it yet". The finer
# watermark: the server states where each acked use sits (EventAck.position) and up to
# where a list reflects them (ListUpdate.consumption_position).
# Tested without any one-second sleep, and deterministically: the server and citypass-admin
# run with their clock frozen (libfaketime), so every list is issued in the very second of
# every ack. Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

LIBFT=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
[ -f "$LIBFT" ] || LIBFT=$(dpkg -L libfaketime 2>/dev/null | grep 'libfaketimeMT.so' | head -n1)
[ -n "$LIBFT" ] && [ -f "$LIBFT" ] || fail "libfaketime is not installed (scripts/install-deps.sh)"
FROZEN=$(date -u '+%Y-%m-%d %H:%M:%S')
for tool in ADMIN SERVER; do
	eval "real=\$$tool"
	cat >"$T/$tool-frozen" <<-EOF
		#!/bin/sh
		# $tool with its clock stopped at $FROZEN (the monotonic clock runs)
		export LD_PRELOAD=$LIBFT FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME="$FROZEN" TZ=UTC
		export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
		exec "$real" "\$@"
	EOF
	chmod +x "$T/$tool-frozen"
	eval "$tool=\$T/$tool-frozen"
done

deployment waste
adm site add waste-a --sector waste >/dev/null
start_bench waste-1
start_server
enrol waste-ga waste-a waste-1
start_controller waste-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 waste,quota=3/year >/dev/null
wait_list waste-1 waste
# every use the gate journalled is acknowledged (acked rows the list reflects are forgotten)
all_acked() { [ "$(sql "$T/state-waste-1/journal.db" "select count(*) from consumption where acked_at is null")" = 0 ]; }

out=$(tap waste-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green display=Bienvenue – 2 passages restants cette année" "visit 1"
wait_for 15 all_acked || fail "the use was not acknowledged"
# a list folding the use, issued in the second of its ack (the clocks are stopped)
adm list publish --sector waste >/dev/null 2>&1 || fail "list publish"
wait_list waste-1 waste
out=$(tap waste-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green display=Bienvenue – 1 passage restant cette année" \
	"visit 2: the use the list holds is not counted again"
wait_for 15 all_acked || fail "the second use was not acknowledged"
adm list publish --sector waste >/dev/null 2>&1 || fail "list publish"
wait_list waste-1 waste
out=$(tap waste-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green display=Bienvenue – dernier passage cette année" "visit 3"
out=$(tap waste-1 desfire "$T/ann.card")
expect "$out" "relay=closed led=red display=Quota annuel atteint" "visit 4: the quota is reached"
echo "controller same-second check passed"
