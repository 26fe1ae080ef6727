#!/bin/sh
# bench_pg — the PostgreSQL figures of `make bench` (issue 16, item 5; DESIGN.md s.9, s.11):
#
# 1. event ingestion with durable acks through two citypass-server instances on one
#    PostgreSQL, the gates split between them, against the raw COPY rate of the same server
#    in the same run (bench_server --pg);
# 2. one revocation end to end: citypass-admin pass revoke until every connected gate holds
#    it, the gates split between two instances (bench_revoke --pg).
#
#   bench_pg.sh      env: ADMIN SERVER CONTROLLER BENCH_SERVER BENCH_REVOKE (or BUILD=dir)
#                    BENCH_PG_PASSES (100000) BENCH_PG_GATES (1000) BENCH_PG_ROUNDS (20)
#                    BENCH_PG_ROWS (240000: ingestion rows to start the calibration from)
#                    BENCH_PG_PHASE_S (2: the baseline's shortest ingestion phase)
#
# Each part gets a PostgreSQL of its own (tests/support/pg_run.sh with PG_RUN_DURABLE=1:
# fsync, full_page_writes and synchronous_commit on, as a deployment runs it), stopped and
# removed when the part ends, however it ends (Ctrl-C included). The sizes are smaller than
# the sqlite run's 5 M passes: `pass import` stores a pass in several round trips to
# PostgreSQL (about 1 ms a pass here), and the PostgreSQL part must fit in a few minutes.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
: "${ADMIN:=$BUILD/server/citypass-admin}" "${SERVER:=$BUILD/server/citypass-server}"
: "${CONTROLLER:=$BUILD/controller/citypass-controller}"
: "${BENCH_SERVER:=$BUILD/bench/bench_server}" "${BENCH_REVOKE:=$BUILD/bench/bench_revoke}"
: "${BENCH_PG_PASSES:=100000}" "${BENCH_PG_GATES:=1000}" "${BENCH_PG_ROUNDS:=20}"
: "${BENCH_PG_PHASE_S:=2}" "${BENCH_PG_ROWS:=240000}"
export ADMIN SERVER CONTROLLER BENCH_SERVER BENCH_REVOKE BENCH_PG_PASSES BENCH_PG_GATES \
	BENCH_PG_ROUNDS BENCH_PG_PHASE_S BENCH_PG_ROWS
export PG_RUN_DURABLE=1
set -eu
PG_RUN="$ROOT/tests/support/pg_run.sh"

echo
echo "== PostgreSQL (issue 16): its own server, fsync on, synchronous_commit on; two" \
	"citypass-server instances sharing the gates; $BENCH_PG_PASSES passes, $BENCH_PG_GATES" \
	"gates, $BENCH_PG_ROUNDS revocations =="
# shellcheck disable=SC2016 # expanded by the inner shell, once pg_run.sh has set them
sh "$PG_RUN" sh -c '"$BENCH_SERVER" --admin "$ADMIN" --server "$SERVER" --instances 2 \
	--rows "$BENCH_PG_ROWS" --phase-seconds "$BENCH_PG_PHASE_S" --pg "$CITYPASS_TEST_PG"'
# shellcheck disable=SC2016
sh "$PG_RUN" sh -c '"$BENCH_REVOKE" --admin "$ADMIN" --server "$SERVER" \
	--controller "$CONTROLLER" --instances 2 --passes "$BENCH_PG_PASSES" \
	--gates "$BENCH_PG_GATES" --rounds "$BENCH_PG_ROUNDS" --pg "$CITYPASS_TEST_PG"'
