#!/bin/sh
# The PostgreSQL bench's code path at a toy size, so that it does not rot between two
# `make bench` (no timing is checked: a shared CI machine's timings mean nothing). It must
# run both parts through to their figures, each printed with a verdict, on a PostgreSQL
# started with fsync and synchronous_commit on; and leave no directory of its own behind
# (processes: the guard).
# Env: as bench_pg.sh (ADMIN SERVER CONTROLLER BENCH_SERVER BENCH_REVOKE).
set -eu
HERE=$(dirname "$0")
. "$HERE/../tests/support/procs.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-pg-smoke-XXXXXX")
cleanup() { rm -rf "$T"; }
on_exit cleanup
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
before=$(ls -d /tmp/citypass-bench-pg-* /tmp/citypass-bench-revoke-* 2>/dev/null | sort || true)
BENCH_PG_ROWS=24000 BENCH_PG_PHASE_S=0.05 BENCH_PG_PASSES=300 BENCH_PG_GATES=4 \
	BENCH_PG_ROUNDS=2 sh "$HERE/bench_pg.sh" >"$T/out" 2>"$T/err" ||
	{
		cat "$T/out" "$T/err" >&2
		fail "bench_pg.sh failed"
	}
cat "$T/out"
line=$(grep -E '^ingestion on PostgreSQL \(fsync on, synchronous_commit on\): raw COPY [0-9]+ rows/s.* 2 citypass-server instances with durable acks [0-9]+ rows/s.* [0-9]+ rows stored, each once\); medians of 3 alternating phases of [0-9]+ rows .*: (met|MISSED)\)$' "$T/out") ||
	fail "no ingestion figure on PostgreSQL (fsync on), with its baseline and verdict"
# the phases start at 24 000 / 3 rows and double until the baseline's takes 0.05 s, so
# their size depends on the machine; what was stored must be the three phases, once each
stored=$(echo "$line" | sed -E 's/.* ([0-9]+) rows stored, each once.*/\1/')
phase=$(echo "$line" | sed -E 's/.* alternating phases of ([0-9]+) rows .*/\1/')
[ "$phase" -ge 8000 ] && [ "$stored" -eq $((3 * phase)) ] ||
	fail "$stored rows stored for three ingestion phases of $phase"
grep -q '^== one revocation end to end on PostgreSQL: 300 passes.*2 citypass-server instances.*4 connected gates' "$T/out" ||
	fail "the revocation part did not run on PostgreSQL with two instances"
# the 4 protocol clients and the real citypass-controller (on the first instance)
grep -Eq '^revocation to every gate holding it \(5 gates x 2 revocations, the instances pushed by LISTEN/NOTIFY\): p50 [0-9]+ ms, p99 [0-9]+ ms.*(met|MISSED)\)$' "$T/out" ||
	fail "no end-to-end revocation figure with its verdict"
grep -Eq '^real citypass-controller .*, 2 one-pass deltas: .*\(budget <= 20 ms: (met|MISSED)\).*snapshots taken 1 \(1 expected\); stopped by SIGTERM cleanly$' "$T/out" ||
	fail "no figure of the real controller's updates from a PostgreSQL-backed server"
grep -Eq '^publish after one revocation .*the publish itself -?[0-9]+ ms \(budget <= 50 ms: (met|MISSED)\)$' "$T/out" ||
	fail "no publish figure beside its baseline (the exec opening the database for nothing)"
# the storm after a cut resumes every gate's session from its ticket; the second storm
# makes them all shake hands in full
grep -Eq '^reconnect storm, after a network cut.*\(0 gave up [^,]*, 0 re-dials.*, 4 sessions resumed from a ticket\).*: (met|MISSED) at 4;' "$T/out" ||
	fail "no reconnect storm with every session resumed from its ticket"
grep -Eq '^reconnect storm, every gate with a full handshake.*, 0 sessions resumed from a ticket\).*: (met|MISSED) at 4;' "$T/out" ||
	fail "no reconnect storm of full handshakes"
after=$(ls -d /tmp/citypass-bench-pg-* /tmp/citypass-bench-revoke-* 2>/dev/null | sort || true)
[ "$before" = "$after" ] || fail "the bench left a directory behind: $after"
