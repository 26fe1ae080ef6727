#!/bin/sh
# pg_run.sh — run one test beside a PostgreSQL of its own (issue 16, item 4).
#
#   sh tests/support/pg_run.sh COMMAND [ARG...]
#
# initdb in a fresh temporary directory, the server listening only on a unix socket in
# that directory (listen_addresses=''; no TCP port, so tests running in parallel never
# clash), COMMAND run with
#   CITYPASS_TEST_PG   a libpq URI of the database `citypass`
#                      ("postgresql://citypass@/citypass?host=DIR", user citypass)
#   CITYPASS_TEST_PG_ADMIN  the same for the maintenance database `postgres` (a test
#                      creating one database per case connects there)
#   CITYPASS_TEST_PG_DIR    the directory (socket, server log)
# then the server stopped and the directory removed, however COMMAND ends. Exit status:
# COMMAND's.
#
# PostgreSQL refuses to run as root and CI runs as root: then the server runs as the
# `postgres` system user (Debian's postgresql package makes it), else as `nobody`. It gets
# SIGINT (a fast shutdown) when this script dies, even by SIGKILL (ctest's timeout): a
# parent-death signal (prctl PR_SET_PDEATHSIG through setpriv, set after the user change,
# which would clear it). What a SIGKILL leaves is the directory: the next run removes the
# directories whose script is gone.
#
# Env: PG_BIN (default /usr/lib/postgresql/15/bin, Debian 12's).
#      PG_RUN_DURABLE=1: fsync and full_page_writes on, PostgreSQL's defaults, for a
#      benchmark (make bench) whose figures must have the durability of a deployment; a
#      test's database does without them (below).
set -eu
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
. "$(dirname "$0")/procs.sh"

if [ $# -lt 1 ]; then
	echo "usage: pg_run.sh COMMAND [ARG...]" >&2
	exit 2
fi
for b in initdb postgres pg_isready; do
	if [ ! -x "$PG_BIN/$b" ]; then
		echo "pg_run: no $PG_BIN/$b: PostgreSQL 15 is not installed (scripts/install-deps.sh" \
			"installs Debian's postgresql)" >&2
		exit 1
	fi
done

# the directories of runs that died by SIGKILL: their script (the number in `runner`) is gone
base=${TMPDIR:-/tmp}
for d in "$base"/citypass-pg.*; do
	[ -f "$d/runner" ] || continue
	kill -0 "$(cat "$d/runner")" 2>/dev/null || rm -rf "$d"
done

# a command prefix, not a function: `$AS_PG postgres &` must fork postgres itself (a
# function would put a subshell between, and the signals would stop there)
AS_PG=
if [ "$(id -u)" = 0 ]; then
	if id postgres >/dev/null 2>&1; then user=postgres; else user=nobody; fi
	AS_PG="setpriv --reuid=$user --regid=$user --clear-groups --"
fi

dir=$(mktemp -d "$base/citypass-pg.XXXXXX")
echo $$ >"$dir/runner"
pid=
# SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave). A
# durable server would then write its whole cache out in a shutdown checkpoint (seconds after
# a bench: beyond the guard's grace, which then killed the removal half way): SIGQUIT, the
# immediate shutdown, since the database is thrown away
stop_sig=INT
[ "${PG_RUN_DURABLE:-0}" != 1 ] || stop_sig=QUIT
cleanup() {
	if [ -n "$pid" ]; then
		kill -"$stop_sig" "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "pg_run: PostgreSQL (pid $pid) still running 10 s after SIG$stop_sig: SIGKILL" >&2
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	# `runner` last: a removal cut short leaves it, for the next run's sweep (above)
	find "$dir" -mindepth 1 -maxdepth 1 ! -name runner -exec rm -rf {} + 2>/dev/null || true
	rm -rf "$dir"
}
on_exit cleanup

if [ "$(id -u)" = 0 ]; then chown "$user" "$dir"; fi
# trust on the socket only: nobody but this machine's users reach it, for the test's life
if ! $AS_PG "$PG_BIN/initdb" -D "$dir/data" -U citypass -A trust -N -E UTF8 --locale=C \
	>"$dir/initdb.log" 2>&1; then
	cat "$dir/initdb.log" >&2
	echo "pg_run: initdb failed (above)" >&2
	exit 1
fi
# fsync off: a test's database dies with the test, and the machine is shared; commits are
# still synchronous (synchronous_commit on), which is what the code under test relies on
durability="-c fsync=off -c full_page_writes=off -c shared_buffers=32MB"
if [ "${PG_RUN_DURABLE:-0}" = 1 ]; then
	durability="-c fsync=on -c full_page_writes=on -c shared_buffers=128MB"
fi
# dynamic shared memory in files of the data directory (mmap), not /dev/shm: a postmaster
# killed by SIGKILL (a sweep of a timed-out test) cannot remove its /dev/shm/PostgreSQL.*
# segments, and removing the directory removes these
# shellcheck disable=SC2086 # $durability: options, word-split on purpose
$AS_PG setpriv --pdeathsig INT -- "$PG_BIN/postgres" -D "$dir/data" -k "$dir" \
	-c listen_addresses= $durability -c synchronous_commit=on \
	-c dynamic_shared_memory_type=mmap \
	-c max_connections=60 -c log_min_messages=warning >"$dir/postgres.log" 2>&1 &
pid=$!
i=0
until "$PG_BIN/pg_isready" -q -h "$dir" -d postgres -U citypass; do
	if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 300 ]; then
		cat "$dir/postgres.log" >&2
		echo "pg_run: PostgreSQL did not start (its log above)" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
"$PG_BIN/psql" -q -h "$dir" -U citypass -d postgres -c 'CREATE DATABASE citypass' \
	>/dev/null 2>"$dir/createdb.log" || {
	cat "$dir/createdb.log" >&2
	echo "pg_run: could not create the database citypass" >&2
	exit 1
}

export CITYPASS_TEST_PG="postgresql://citypass@/citypass?host=$dir"
export CITYPASS_TEST_PG_ADMIN="postgresql://citypass@/postgres?host=$dir"
export CITYPASS_TEST_PG_DIR="$dir"
export PGUSER=citypass
"$@"
