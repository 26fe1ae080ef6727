/*
 * store_fixture.c — a data directory's store on either backend (store_fixture.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <sqlite3.h>

#include "server/error.h"
#include "store_fixture.h"

const char *store_fixture_pg_dir(void)
{
	const char *d = getenv("CITYPASS_TEST_PG_DIR");
	return d && *d ? d : NULL;
}

PGconn *store_fixture_pg_connect(const char *db)
{
	char uri[512];
	snprintf(uri, sizeof(uri), "postgresql://citypass@/%s?host=%s", db, store_fixture_pg_dir());
	PGconn *c = PQconnectdb(uri);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect to %s: %s", uri, PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

int store_fixture_pg_run(const char *db, const char *sql)
{
	PGconn *c = store_fixture_pg_connect(db);
	if (!c)
		return -1;
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

long long store_fixture_value(const char *dir, const char *db, const char *sql)
{
	long long v = -1;
	if (store_fixture_pg_dir()) {
		PGconn *c = store_fixture_pg_connect(db);
		if (!c)
			return -1;
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
			v = atoll(PQgetvalue(r, 0, 0));
		else
			fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return v;
	}
	char path[512];
	sqlite3 *s = NULL;
	sqlite3_stmt *st = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, SERVER_DB_FILE);
	if (sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(s));
	sqlite3_finalize(st);
	sqlite3_close(s);
	return v;
}

int store_fixture_open(const char *dir, char *db, size_t cap, struct server_store *st)
{
	const char *pg = store_fixture_pg_dir();
	if (cap)
		db[0] = '\0';
	if (pg) {
		static int n;
		char sql[128], uri[512];
		snprintf(db, cap, "t%d_%d", (int)getpid(), ++n);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
		if (store_fixture_pg_run("postgres", sql) != 0)
			return SERVER_ERR_IO;
		snprintf(uri, sizeof(uri), "postgresql://citypass@/%s?host=%s", db, pg);
		if (server_store_set_uri(dir, uri) != 0)
			return SERVER_ERR_IO;
	}
	struct server_why why = {""};
	int rc = server_store_open(st, dir, 1, &why);
	if (rc)
		fprintf(stderr, "store: %s\n", why.text);
	return rc;
}

void store_fixture_drop(const char *db)
{
	char sql[128];
	if (store_fixture_pg_dir() && db && *db) {
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
		(void)store_fixture_pg_run("postgres", sql);
	}
}
