#!/bin/sh
# The PostgreSQL test fixture (pg_run.sh) leaves nothing behind: not when its test passes,
# fails, is stopped (SIGTERM, as citypass-test-guard passes ctest's stop on) or killed
# (SIGKILL, ctest's timeout): no server process, no directory.
set -eu
HERE=$(dirname "$0")
PG_RUN="$HERE/pg_run.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/pgcheck-XXXXXX")
. "$HERE/procs.sh"
runner=
cleanup() {
	[ -z "$runner" ] || kill -KILL "-$runner" 2>/dev/null || true
	rm -rf "$T"
}
on_exit cleanup
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# the postmaster of a fixture directory, from its lock file (first line: the pid)
postmaster_of() { head -n 1 "$1/data/postmaster.pid" 2>/dev/null || true; }
# wait_gone PID: the process ends within 15 s
wait_gone() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		[ $i -lt 150 ] || return 1
		sleep 0.1
		i=$((i + 1))
	done
}

# 1. a passing command reaches the database through the socket, as the URI says; then the
#    server and the directory are gone
sh "$PG_RUN" sh -c 'psql "$CITYPASS_TEST_PG" -Atc "SELECT current_database()" >"$0/db";
	psql "$CITYPASS_TEST_PG" -Atc "SHOW dynamic_shared_memory_type" >"$0/dsm";
	echo "$CITYPASS_TEST_PG_DIR" >"$0/dir"; head -n 1 "$CITYPASS_TEST_PG_DIR/data/postmaster.pid" >"$0/pm"' "$T"
[ "$(cat "$T/db")" = citypass ] || fail "the command did not reach the database citypass"
# its shared memory lives in its directory: a SIGKILLed server leaves nothing in /dev/shm
[ "$(cat "$T/dsm")" = mmap ] || fail "dynamic shared memory is '$(cat "$T/dsm")', not mmap (files in the data directory)"
[ ! -e "$(cat "$T/dir")" ] || fail "the fixture directory $(cat "$T/dir") was left behind"
wait_gone "$(cat "$T/pm")" || fail "PostgreSQL (pid $(cat "$T/pm")) outlived a passing test"

# 2. a failing command: its status comes back, nothing is left
rc=0
sh "$PG_RUN" sh -c 'echo "$CITYPASS_TEST_PG_DIR" >"$0/dir"; exit 3' "$T" || rc=$?
[ $rc = 3 ] || fail "a failing command's status came back as $rc, not 3"
[ ! -e "$(cat "$T/dir")" ] || fail "a failing test left its fixture directory"

# 3. stopped (SIGTERM) and 4. killed (SIGKILL) while the command runs
for sig in TERM KILL; do
	rm -f "$T/dir"
	# a process group of its own, as citypass-test-guard runs a test
	setsid sh "$PG_RUN" sh -c 'echo "$CITYPASS_TEST_PG_DIR" >"$0/dir.tmp"; mv "$0/dir.tmp" "$0/dir";
		exec sleep 300' "$T" &
	runner=$!
	i=0
	until [ -s "$T/dir" ]; do
		[ $i -lt 600 ] || fail "the fixture never ran its command"
		sleep 0.1
		i=$((i + 1))
	done
	dir=$(cat "$T/dir")
	pm=$(postmaster_of "$dir")
	[ -n "$pm" ] && kill -0 "$pm" || fail "no PostgreSQL running for $dir"
	if [ $sig = TERM ]; then
		kill -TERM "-$runner" # the guard's stop: the whole group
	else
		kill -KILL "$runner" # the script alone: its server must notice
	fi
	wait "$runner" 2>/dev/null || true
	wait_gone "$pm" || fail "PostgreSQL (pid $pm) outlived its fixture stopped with SIG$sig"
	kill -KILL "-$runner" 2>/dev/null || true # the command (sleep): the guard's to end
	runner=
	if [ $sig = TERM ]; then
		[ ! -e "$dir" ] || fail "a fixture stopped with SIGTERM left $dir"
	else
		# the directory is the next run's
		sh "$PG_RUN" true
		[ ! -e "$dir" ] || fail "the next run did not remove $dir, left by a SIGKILL"
	fi
done
echo "pg_run: nothing left behind (pass, fail, SIGTERM, SIGKILL)"
