# db.sh — one query on a deployment's rights database, whichever store it is on (issue 16).
# Sourced (POSIX sh).
#
#   db_query DATA SQL   the answer's rows, columns separated by '|': sqlite3 on
#                       DATA/citypass.db, or psql on the database CITYPASS_TEST_PG names
#                       when the test runs under tests/support/pg_run.sh. Plain SQL both
#                       engines read (no hex(), no x'..' literals). Fails when the tool
#                       fails.
#   db_tool             the command db_query needs (sqlite3 or psql): `command -v
#                       "$(db_tool)"` says whether the test can look inside.
db_tool() {
	if [ -n "${CITYPASS_TEST_PG:-}" ]; then echo "${PG_BIN:-/usr/lib/postgresql/15/bin}/psql"; else echo sqlite3; fi
}

db_query() {
	if [ -n "${CITYPASS_TEST_PG:-}" ]; then
		"$(db_tool)" -X -q -A -t -v ON_ERROR_STOP=1 -d "$CITYPASS_TEST_PG" -c "$2"
	else
		sqlite3 -bail -cmd ".timeout 5000" "$1/citypass.db" "$2"
	fi
}
