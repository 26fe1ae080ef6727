#!/bin/sh
# citypass-admin migrate --to postgresql://… (issue 16): a sqlite deployment — sites, a
# device, households, passes with rights, a revocation, published lists — moves into
# PostgreSQL whole. Afterwards the admin reads the same passes, the next publish is a
# delta numbered after the last sqlite version (gates never see their version go back nor
# take a snapshot for nothing), new passes are numbered after the old ones, and a second
# migration is refused. Run under tests/support/pg_run.sh.   Env: ADMIN, CITYPASS_TEST_PG.
set -eu
: "${ADMIN:?}" "${CITYPASS_TEST_PG:?}"
W=$(mktemp -d "${TMPDIR:-/tmp}/citypass-migrate-XXXXXX")
. "$(dirname "$0")/../support/procs.sh"
. "$(dirname "$0")/../support/db.sh" # db_query: psql here
cleanup() { rm -rf "$W"; }
on_exit cleanup
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
data=$W/data
adm() { "$ADMIN" --data "$data" "$@"; }

adm init >/dev/null 2>&1
adm site add pool-east --sector pool >/dev/null 2>&1
adm device add gate-1 --site pool-east --server 127.0.0.1:1 --out "$W/b1" >/dev/null 2>&1
adm household add martin >/dev/null 2>&1
for h in Alice Bob Carol; do
	adm pass issue --holder "$h" --household martin --right pool,product=10 >/dev/null 2>&1
done
adm pass revoke 2 --reason lost >/dev/null 2>&1
adm pass list >"$W/passes.before"
adm site list >"$W/sites.before"
v=$(adm list publish --sector pool 2>&1 | sed -n 's/.*list version \([0-9]*\).*/\1/p' | head -n 1)
[ -n "$v" ] || fail "no version published before the migration"

# refusals first: not a PostgreSQL URI; a server that does not answer (nothing moved)
rc=0; adm migrate --to /tmp/x.db 2>"$W/err" || rc=$?
[ $rc = 2 ] && grep -q "expected a PostgreSQL URI" "$W/err" || fail "bad URI: $rc $(cat "$W/err")"
rc=0; adm migrate --to "postgresql://citypass@/citypass?host=$W/nowhere" 2>"$W/err" || rc=$?
[ $rc = 1 ] && grep -q "cannot connect to the PostgreSQL database" "$W/err" || fail "unreachable: $rc $(cat "$W/err")"
[ -f "$data/citypass.db" ] && [ ! -e "$data/store.conf" ] || fail "a refused migration changed the data directory"

# the files replaced by a later version (sqlite keeps their ends beside them) keep their
# end in PostgreSQL: without it they would never be pruned
ends=$(sqlite3 "$data/citypass.db" "select count(*) || '/' || sum(until) from list_file_ends")
[ "${ends%/*}" -gt 0 ] || fail "no replaced list file before the migration: $ends"

adm migrate --to "$CITYPASS_TEST_PG" >"$W/out" 2>&1 || fail "migrate: $(cat "$W/out")"
grep -q "moved [0-9]* rows" "$W/out" || fail "migrate said: $(cat "$W/out")"
[ -f "$data/store.conf" ] && [ ! -e "$data/citypass.db" ] && [ -f "$data/citypass.db.migrated" ] ||
	fail "after the migration: $(ls "$data")"

pg_ends=$(db_query "$data" "select count(*) || '/' || sum(until) from list_files where until is not null")
[ "$pg_ends" = "$ends" ] || fail "replaced files (count/sum of ends): $ends in sqlite, $pg_ends in PostgreSQL"

adm pass list >"$W/passes.after"
cmp -s "$W/passes.before" "$W/passes.after" || fail "passes differ: $(diff "$W/passes.before" "$W/passes.after")"
adm site list >"$W/sites.after"
cmp -s "$W/sites.before" "$W/sites.after" || fail "sites differ"
# a change after the move: published as the next version, a delta of what changed only
adm pass revoke 3 --reason lost >/dev/null 2>"$W/pub" || fail "revoke after the move: $(cat "$W/pub")"
grep -q "list version $((v + 1)) .*chunk(s) rewritten" "$W/pub" || fail "publish after the move: $(cat "$W/pub") (last sqlite version $v)"
adm pass issue --holder Dave --right pool,product=10 >/dev/null 2>&1 || fail "issue after the move"
adm pass list | grep -q "^ *4 .*Dave" || fail "the new pass is not number 4: $(adm pass list)"
rc=0; adm migrate --to "$CITYPASS_TEST_PG" 2>"$W/err" || rc=$?
[ $rc = 1 ] && grep -q "already keeps its database in PostgreSQL" "$W/err" || fail "second migration: $rc $(cat "$W/err")"
echo "migrate: ok (last sqlite version $v, next $((v + 1)) on PostgreSQL)"
