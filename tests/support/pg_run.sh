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
cleanup() {
	if [ -n "$pid" ]; then
		# SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave)
		kill -INT "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "pg_run: PostgreSQL (pid $pid) still running 10 s after SIGINT: SIGKILL" >&2
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
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
$AS_PG setpriv --pdeathsig INT -- "$PG_BIN/postgres" -D "$dir/data" -k "$dir" \
	-c listen_addresses= -c fsync=off -c full_page_writes=off -c shared_buffers=32MB \
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
