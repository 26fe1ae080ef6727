/*
 * store_fixture.h — a data directory's store for the server's library tests, on either
 * backend (issue 16). Under tests/support/pg_run.sh (CITYPASS_TEST_PG_DIR set: ctest label
 * store-pg) each fixture gets a fresh PostgreSQL database of its own, named in the data
 * directory's store.conf and dropped afterwards; otherwise (label store-sqlite) the data
 * directory's sqlite file.
 */
#ifndef TESTS_STORE_FIXTURE_H
#define TESTS_STORE_FIXTURE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "server/store.h"

#define STORE_FIXTURE_DB_MAX 64

/* The socket directory of the test's PostgreSQL, NULL on sqlite. */
const char *store_fixture_pg_dir(void);

/* Open (creating) the store of data directory `dir`: with PostgreSQL a fresh database,
 * its name in db (cap bytes; "" on sqlite). 0, or a SERVER_ERR_* (said on stderr). */
int store_fixture_open(const char *dir, char *db, size_t cap, struct server_store *st);

/* Drop the fixture's database (nothing on sqlite; db "" does nothing). */
void store_fixture_drop(const char *db);

/* A connection to database `db` of the test's PostgreSQL as its owner (NULL, said on
 * stderr); the caller PQfinish()es it. */
PGconn *store_fixture_pg_connect(const char *db);

/* Run one statement on database `db` ("postgres": the maintenance one) as its owner:
 * 0 or -1 (said on stderr). PostgreSQL only. */
int store_fixture_pg_run(const char *db, const char *sql);

/* The integer in the first column of a query's first row, read straight from the store's
 * database beside the store (data directory `dir` on sqlite, database `db` on PostgreSQL):
 * -1 when the query gives none (said on stderr). */
long long store_fixture_value(const char *dir, const char *db, const char *sql);

/* SQL that takes a sqlite database of this release back to schema 8's shape (no index of
 * the households' names in lower case), for the tests of the migrations from 8. */
#define STORE_FIXTURE_SQLITE_SCHEMA_8 "DROP INDEX households_folded; PRAGMA user_version=8;"

/* ... and to schema 7's (a list file's end in its row), for the migrations from 7. */
#define STORE_FIXTURE_SQLITE_SCHEMA_7                                                              \
	STORE_FIXTURE_SQLITE_SCHEMA_8                                                              \
	"ALTER TABLE list_files ADD COLUMN until INTEGER;"                                         \
	"UPDATE list_files SET until = (SELECT until FROM list_file_ends e WHERE"                  \
	" e.sector = list_files.sector AND e.chunk = list_files.chunk AND"                         \
	" e.since = list_files.since AND e.kind = list_files.kind);"                               \
	"DROP TRIGGER list_file_put; DROP TRIGGER list_file_gone; DROP TABLE list_file_ends;"      \
	"CREATE INDEX list_files_until ON list_files(sector, until);"                              \
	"PRAGMA user_version=7;"

#endif /* TESTS_STORE_FIXTURE_H */
