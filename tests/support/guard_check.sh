#!/bin/sh
# citypass-test-guard (item 6 of issue 13): what a test leaves running is found, named and
# ended — whether the test passes, fails, is stopped by a signal or killed by ctest's
# timeout — and the sweep fixture fails when a process of this build's tests outlived it.
# A nested ctest project plays ctest's own timeout kill.   Env: GUARD (the binary).
set -eu
: "${GUARD:?}"
T=$(mktemp -d "${TMPDIR:-/tmp}/guard-XXXXXX")
# every process below carries this marker: what is found afterwards came from this script
MARK="$T/build"
mkdir -p "$MARK"
. "$(dirname "$0")/procs.sh" # the one exit convention
cleanup() {
	# nothing of ours may survive this check either (the sweep kills and names it)
	"$GUARD" sweep --build-dir "$MARK" >/dev/null 2>&1 || true
	rm -rf "$T"
}
on_exit cleanup
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
# alive TAG: a process whose command line holds TAG (a unique sleep length) is running
alive() { ps -eo args= | grep -q "^sleep $1\$"; }

# 1. a passing test that leaves a background job and a double-forked orphan: the guard
#    fails it, names both, and ends them
rc=0
"$GUARD" run --name leaky --build-dir "$MARK" -- \
	sh -c 'sleep 1001 & (setsid sleep 1002 &); exit 0' 2>"$T/leaky.err" || rc=$?
[ "$rc" = 1 ] || fail "a test leaving processes exited $rc, expected 1"
grep -q "test leaky left pid [0-9]* (.*sleep 1001" "$T/leaky.err" || fail "sleep 1001 not named: $(cat "$T/leaky.err")"
grep -q "sleep 1002" "$T/leaky.err" || fail "the orphan is not named: $(cat "$T/leaky.err")"
alive 1001 && fail "sleep 1001 still running"
alive 1002 && fail "the orphan sleep 1002 still running"
echo "ok - a test that leaves processes fails, each named and ended"

# 2. a clean test keeps its own status (77: skipped)
rc=0
"$GUARD" run --name clean --build-dir "$MARK" -- sh -c 'sleep 0.1 & wait; exit 77' || rc=$?
[ "$rc" = 77 ] || fail "a clean test's status 77 became $rc"
echo "ok - a clean test's exit status passes through"

# 3. the guard stopped by SIGTERM (an operator's Ctrl-C, `timeout`): the test's trap runs,
#    and what ignores SIGTERM is killed after the grace
"$GUARD" run --name stopped --build-dir "$MARK" --grace-ms 500 -- \
	sh -c 'trap "" TERM; sleep 1003 & sleep 1004' 2>/dev/null &
g=$!
# stopped once the test runs (a fixed wait lost that race on a loaded machine)
i=0
until alive 1004 || [ $i -ge 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
alive 1004 || fail "the stopped test never started"
kill -TERM $g
rc=0
wait $g || rc=$?
[ "$rc" = 143 ] || fail "a guard stopped by SIGTERM exited $rc, expected 143"
alive 1003 && fail "sleep 1003 survived the stop"
alive 1004 && fail "sleep 1004 survived the stop"
echo "ok - a stopped test leaves nothing, even what ignores SIGTERM"

# 4. ctest's timeout (SIGSTOP + SIGKILL of the test's process tree): the guard kept the
#    orphans in that tree, so nothing survives; and a test that is not run under the guard
#    and orphans a process is caught by the sweep fixture, which names it.
mkdir -p "$T/proj"
cat >"$T/proj/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(guarded NONE)
enable_testing()
add_test(NAME hangs COMMAND "$GUARD" run --name hangs --build-dir "$MARK" --
         sh -c "sleep 1005 & (setsid sleep 1006 &); sleep 1007")
set_tests_properties(hangs PROPERTIES TIMEOUT 2 FIXTURES_REQUIRED procs)
# (its output elsewhere: a process holding the test's pipe would keep ctest waiting)
add_test(NAME unguarded COMMAND sh -c "(setsid sleep 1008 >/dev/null 2>&1 &); exit 0")
set_tests_properties(unguarded PROPERTIES FIXTURES_REQUIRED procs
                     ENVIRONMENT "CITYPASS_TEST_BUILD=$MARK;CITYPASS_TEST=unguarded")
add_test(NAME sweep COMMAND "$GUARD" sweep --build-dir "$MARK")
set_tests_properties(sweep PROPERTIES FIXTURES_CLEANUP procs)
EOF
(cd "$T/proj" && cmake -S . -B b >/dev/null) || fail "nested cmake"
(cd "$T/proj/b" && ctest --output-on-failure >"$T/ctest.log" 2>&1) && fail "the nested ctest passed"
grep -q "hangs .*Timeout" "$T/ctest.log" || fail "hangs did not time out: $(cat "$T/ctest.log")"
for s in 1005 1006 1007; do alive $s && fail "sleep $s survived ctest's timeout kill"; done
echo "ok - a test killed by ctest's timeout leaves nothing (orphans included)"
grep -q "sleep 1008) outlived test unguarded: killed" "$T/ctest.log" ||
	fail "the sweep did not name the unguarded test's orphan: $(cat "$T/ctest.log")"
grep -q "sweep .*Failed" "$T/ctest.log" || fail "the sweep fixture passed"
alive 1008 && fail "sleep 1008 survived the sweep"
echo "ok - the sweep fixture fails on a process that outlived its test, and names the test"
echo "guard check passed"
