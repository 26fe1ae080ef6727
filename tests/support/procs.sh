# procs.sh — the one exit convention of every test script (and of scripts/demo.sh and the
# shell benches). Sourced (POSIX sh). Before it there were three: the bench tests trapped
# EXIT INT TERM and killed without a grace, the daemon tests trapped EXIT and gave 5 s
# before SIGKILL, and single scripts trapped `rm -rf` on INT and TERM — a handler that does
# not exit, so an interrupted script went on running without its directory.
#
#   on_exit FUNC      FUNC runs once when the script ends, however it ends: success,
#                     failure, `set -e`, SIGINT or SIGTERM (citypass-test-guard passes
#                     ctest's and an operator's stop on as SIGTERM). $rc holds the exit
#                     status; the script exits with it after FUNC. INT, TERM and PIPE end
#                     the script with 130, 143 and 141, so that the EXIT path runs, once:
#                     a script whose reader is gone (ctest killed) would otherwise die of
#                     SIGPIPE at its next echo without stopping anything.
#   stop_procs PID... every PID gets SIGTERM; whatever still runs STOP_GRACE seconds later
#                     (default 5) is named on stderr and killed; all are reaped. Give the
#                     processes in the order they must stop (clients before their server).
#
# This stops cleanly what a script knows it started. citypass-test-guard
# (tests/support/test_guard.c) runs each test in a process group of its own and names, kills
# and fails the test for anything still running after it: the backstop for what a script
# forgot, not a reason to forget.

STOP_GRACE=${STOP_GRACE:-5}

on_exit() {
	_procs_exit_fn=$1
	trap _procs_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 141' PIPE
}

_procs_on_exit() {
	rc=$?
	trap - EXIT
	trap '' PIPE # the cleanup's own messages may have no reader left
	set +e
	"$_procs_exit_fn"
	exit $rc
}

stop_procs() {
	_sp_live=
	for _sp in "$@"; do
		[ -n "$_sp" ] || continue
		kill "$_sp" 2>/dev/null && _sp_live="$_sp_live $_sp"
	done
	_sp_i=0
	while [ -n "$_sp_live" ] && [ $_sp_i -lt $((STOP_GRACE * 10)) ]; do
		_sp_left=
		for _sp in $_sp_live; do kill -0 "$_sp" 2>/dev/null && _sp_left="$_sp_left $_sp"; done
		_sp_live=$_sp_left
		[ -n "$_sp_live" ] || break
		sleep 0.1
		_sp_i=$((_sp_i + 1))
	done
	for _sp in $_sp_live; do
		echo "stop_procs: pid $_sp ignored SIGTERM for ${STOP_GRACE} s: SIGKILL" >&2
		kill -9 "$_sp" 2>/dev/null || true
	done
	for _sp in "$@"; do
		if [ -n "$_sp" ]; then wait "$_sp" 2>/dev/null || true; fi
	done
	return 0
}
