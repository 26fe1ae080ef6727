/*
 * store_migrate.c — a sqlite deployment moved into PostgreSQL (issue 16; citypass-admin
 * migrate --to postgresql://…, docs/postgresql.md "Moving a deployment").
 *
 * The one place that knows both backends' tables: every row of the sqlite database (brought
 * to this release's schema first) is copied as it is into a PostgreSQL database that this
 * migration makes the schema of, in one PostgreSQL transaction, while the sqlite write lock
 * is held (nothing written meanwhile is lost: it waits, and is refused once the file is
 * renamed). The change log is copied last and as it was: the triggers that logged the
 * copied rows again are undone, so that the next publish is the delta it would have been.
 * Identity counters go on after the copied numbers. Only then DATA/store.conf names the
 * database, and DATA/citypass.db becomes DATA/citypass.db.migrated (kept, not removed).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "server/store.h"

/* Parents before children (foreign keys); list_log last, after the triggers' rows go. */
static const char *const tables[] = {
        "meta",         "sectors",        "sites",       "devices",       "device_health",
        "households",   "household_tags", "imports",     "passes",        "pass_ids",
        "rights",       "profiles",       "deltas",      "list_versions", "list_files",
        "pass_imports", "stats",          "consumption", "acks",          "list_log",
};
/* Identity columns whose counters must go on after the copied numbers. */
static const char *const identities[] = {"sites", "households", "imports", "passes", "list_log"};

#define COLS_MAX 16

struct mig {
	sqlite3 *db;
	PGconn *pg;
	struct server_why *why;
	uint64_t rows;
};

static int pg_ok(struct mig *m, PGresult *r, const char *what)
{
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return 0;
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(m->pg));
	msg[strcspn(msg, "\n")] = 0;
	return server_why_set(m->why, SERVER_ERR_IO, "%s: %s", what, msg);
}

static int pg_do(struct mig *m, const char *sql)
{
	PGresult *r = PQexec(m->pg, sql);
	int rc = pg_ok(m, r, sql);
	PQclear(r);
	return rc;
}

/* INSERT INTO t(cols) VALUES($1..) for the columns sqlite's SELECT * names; the names are
 * our own schema's, quoted all the same. */
static int insert_sql(struct mig *m, const char *table, sqlite3_stmt *st, char *out, size_t cap)
{
	int n = sqlite3_column_count(st);
	size_t len = (size_t)snprintf(out, cap, "INSERT INTO %s(", table);
	for (int i = 0; i < n && len < cap; i++) {
		const char *name = sqlite3_column_name(st, i);
		char *q = PQescapeIdentifier(m->pg, name, strlen(name));
		if (!q)
			return SERVER_ERR_NOMEM;
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", q);
		PQfreemem(q);
	}
	if (len < cap)
		len += (size_t)snprintf(out + len, cap - len, ")%s VALUES(",
		                        strcmp(table, "list_log") ? ""
		                                                  : " OVERRIDING SYSTEM VALUE");
	for (int i = 0; i < n && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s$%d", i ? ", " : "", i + 1);
	if (len < cap)
		len += (size_t)snprintf(
		        out + len, cap - len, ")%s",
		        strcmp(table, "meta")
		                ? ""
		                : " ON CONFLICT(key) DO UPDATE SET value = excluded.value");
	return len < cap ? 0 : SERVER_ERR_ARG;
}

/* What is read of a table: all of it, but for list_files, whose end (`until`, a column in
 * PostgreSQL, where an UPDATE does not copy a stored blob) sqlite keeps beside it. */
static void select_sql(const char *table, char *out, size_t cap)
{
	if (strcmp(table, "list_files") == 0)
		snprintf(out, cap,
		         "SELECT f.*, e.until FROM list_files f LEFT JOIN list_file_ends e"
		         " USING(sector, chunk, since, kind)");
	else
		snprintf(out, cap, "SELECT * FROM %s", table);
}

static int copy_table(struct mig *m, const char *table, int index)
{
	char sel[160], ins[2048], name[16];
	select_sql(table, sel, sizeof(sel));
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(m->db, sel, -1, &st, NULL) != SQLITE_OK)
		return server_why_set(m->why, SERVER_ERR_IO, "reading %s from sqlite: %s", table,
		                      sqlite3_errmsg(m->db));
	int n = sqlite3_column_count(st);
	int rc = n > COLS_MAX ? SERVER_ERR_ARG : insert_sql(m, table, st, ins, sizeof(ins));
	if (rc == 0) {
		snprintf(name, sizeof(name), "mig%d", index);
		PGresult *r = PQprepare(m->pg, name, ins, 0, NULL);
		rc = pg_ok(m, r, table);
		PQclear(r);
	}
	int s;
	while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v[COLS_MAX];
		int len[COLS_MAX], fmt[COLS_MAX];
		char num[COLS_MAX][24];
		for (int i = 0; i < n; i++) {
			len[i] = 0;
			fmt[i] = 0;
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_NULL:
				v[i] = NULL;
				break;
			case SQLITE_INTEGER:
				snprintf(num[i], sizeof(num[i]), "%lld",
				         (long long)sqlite3_column_int64(st, i));
				v[i] = num[i];
				break;
			case SQLITE_BLOB: /* as it is; a zero-length blob has no pointer */
				v[i] = sqlite3_column_blob(st, i);
				len[i] = sqlite3_column_bytes(st, i);
				fmt[i] = 1;
				if (!v[i])
					v[i] = "";
				break;
			default: /* text (and the floats no table holds) as text */
				v[i] = (const char *)sqlite3_column_text(st, i);
				break;
			}
		}
		PGresult *r = PQexecPrepared(m->pg, name, n, v, len, fmt, 0);
		rc = pg_ok(m, r, table);
		PQclear(r);
		m->rows++;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = server_why_set(m->why, SERVER_ERR_IO, "reading %s from sqlite: %s", table,
		                    sqlite3_errmsg(m->db));
	sqlite3_finalize(st);
	return rc;
}

static int copy_all(struct mig *m)
{
	int rc = pg_do(m, "BEGIN");
	for (size_t i = 0; rc == 0 && i < sizeof(tables) / sizeof(tables[0]); i++) {
		/* the triggers logged every copied right, identifier and use: not changes */
		if (!strcmp(tables[i], "list_log"))
			rc = pg_do(m, "DELETE FROM list_log");
		if (rc == 0)
			rc = copy_table(m, tables[i], (int)i);
	}
	for (size_t i = 0; rc == 0 && i < sizeof(identities) / sizeof(identities[0]); i++) {
		char sql[256];
		snprintf(sql, sizeof(sql),
		         "SELECT setval(pg_get_serial_sequence('%s', 'id'), COALESCE((SELECT"
		         " MAX(id) FROM %s), 0) + 1, false)",
		         identities[i], identities[i]);
		rc = pg_do(m, sql);
	}
	if (rc == 0)
		rc = pg_do(m, "COMMIT");
	else
		(void)pg_do(m, "ROLLBACK");
	return rc;
}

int server_store_migrate_to_pg(const char *data_dir, const char *uri, uint64_t *rows,
                               struct server_why *why)
{
	char path[PATH_MAX], moved[PATH_MAX], cur[SERVER_STORE_URI_MAX];
	struct mig m = {.why = why};
	*rows = 0;
	if (!server_store_is_pg_uri(uri) || strlen(uri) >= SERVER_STORE_URI_MAX)
		return server_why_set(why, SERVER_ERR_ARG, "expected a PostgreSQL URI");
	if (server_store_uri(data_dir, cur, sizeof(cur)) != SERVER_ERR_NOT_FOUND)
		return server_why_set(why, SERVER_ERR_EXISTS,
		                      "%s already keeps its database in PostgreSQL (%s)", data_dir,
		                      SERVER_STORE_FILE);
	/* the sqlite database at this release's schema (an older one migrates forward) */
	struct server_store st;
	int rc = server_store_open_sqlite(&st, data_dir, 0);
	if (rc)
		return server_why_set(why, rc, "%s has no sqlite database to move: %s", data_dir,
		                      server_strerror(rc));
	server_store_close(&st);
	/* the PostgreSQL schema, in a database that holds none yet */
	if ((rc = server_store_open_pg(&st, uri, 1, why)) != 0)
		return rc;
	server_store_close(&st);

	snprintf(path, sizeof(path), "%s/%s", data_dir, SERVER_DB_FILE);
	snprintf(moved, sizeof(moved), "%s/%s.migrated", data_dir, SERVER_DB_FILE);
	if (sqlite3_open_v2(path, &m.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(m.db);
		return server_why_set(why, SERVER_ERR_IO, "cannot open %s", path);
	}
	sqlite3_busy_timeout(m.db, 10000);
	m.pg = PQconnectdb(uri);
	if (PQstatus(m.pg) != CONNECTION_OK) {
		rc = server_why_set(why, SERVER_ERR_UNREACHABLE,
		                    "cannot connect to the PostgreSQL database: %s",
		                    PQerrorMessage(m.pg));
	} else if (sqlite3_exec(m.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		/* the write lock, held to the end: a server or agent still writing waits */
		rc = server_why_set(why, SERVER_ERR_BUSY,
		                    "%s is being written (stop citypass-server first): %s", path,
		                    sqlite3_errmsg(m.db));
	} else {
		rc = copy_all(&m);
		if (rc == 0 && (rc = server_store_set_uri(data_dir, uri)) != 0)
			server_why_set(why, rc,
			               "the rows are in PostgreSQL, but %s/%s could not be "
			               "written: write the URI there by hand",
			               data_dir, SERVER_STORE_FILE);
		/* from now on the data directory opens PostgreSQL; the old file stays aside */
		if (rc == 0 && rename(path, moved) != 0)
			server_why_set(why, SERVER_ERR_IO, "moved, but %s could not be renamed",
			               path);
		(void)sqlite3_exec(m.db, "ROLLBACK", NULL, NULL, NULL);
	}
	PQfinish(m.pg);
	sqlite3_close(m.db);
	*rows = m.rows;
	return rc;
}
