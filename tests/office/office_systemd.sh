#!/bin/sh
# citypass-office under systemd (citypass-office.service is Type=notify with a watchdog),
# with no systemd as PID 1: a notification socket of our own (notify_listen) receives
# READY=1 with a status once the office listens, WATCHDOG=1 fed by its event loop (none
# while the process is stopped: the feeds prove the loop turns), and STOPPING=1 on SIGTERM.
# Env: ADMIN OFFICE NOTIFY_LISTEN (tests/office/CMakeLists.txt).
set -eu
: "${ADMIN:?}" "${OFFICE:?}" "${NOTIFY_LISTEN:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/citypass-office-sd-XXXXXX")
. "$HERE/../support/procs.sh"
LISTEN=
cleanup() {
	sh "$HERE/../support/office_run.sh" stop "$W/s" >/dev/null 2>&1
	stop_procs $LISTEN
	rm -rf "$W"
}
on_exit cleanup
fail() { echo "FAIL: $*" >&2; exit 1; }
count() { grep -c "^[0-9]* $1\$" "$W/notify" 2>/dev/null || true; }

"$NOTIFY_LISTEN" "$W/notify.sock" "$W/notify" 120 &
LISTEN=$!
i=0
until [ -S "$W/notify.sock" ]; do
	i=$((i + 1))
	[ $i -lt 50 ] || fail "notify_listen did not start"
	sleep 0.1
done

# the office inherits the socket and a 0.4 s watchdog, as systemd would hand them over
NOTIFY_SOCKET="$W/notify.sock" WATCHDOG_USEC=400000 OFFICE_BENCH=0 ADMIN="$ADMIN" \
	OFFICE="$OFFICE" sh "$HERE/../support/office_run.sh" start "$W/s" >"$W/env" ||
	fail "office_run.sh start"
url=$(sed -n 's/^URL=//p' "$W/env")
i=0
until [ "$(count READY=1)" -ge 1 ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "no READY=1: $(cat "$W/notify")"
	sleep 0.1
done
grep -q "STATUS=serving agents on ${url}/\$" "$W/notify" ||
	fail "no status naming $url: $(cat "$W/notify")"
echo "ok - READY=1 once listening, with the status 'serving agents on $url/'"

# a 0.4 s watchdog is fed at least every 0.2 s: 2 s give about ten
sleep 2
n=$(count WATCHDOG=1)
[ "$n" -ge 5 ] || fail "$n watchdog feeds in 2 s (WatchdogSec=0.4 s)"
pid=$(cat "$W/s/office.pid")
kill -STOP "$pid"
sleep 0.5
before=$(count WATCHDOG=1)
sleep 1.5
after=$(count WATCHDOG=1)
kill -CONT "$pid"
[ "$after" = "$before" ] || fail "the watchdog was fed while the office was stopped ($before -> $after)"
echo "ok - the watchdog fed by the loop ($n in 2 s), starved while the process is stopped"

sh "$HERE/../support/office_run.sh" stop "$W/s"
[ "$(count STOPPING=1)" -ge 1 ] || fail "SIGTERM without STOPPING=1: $(cat "$W/notify")"
echo "ok - SIGTERM notifies STOPPING=1"
echo "office systemd readiness and watchdog check passed"
