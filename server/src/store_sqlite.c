/*
 * store_sqlite.c — the rights database in sqlite (server/store.h).
 *
 * WAL, synchronous=FULL (an acknowledged batch survives a power cut), foreign keys on,
 * busy timeout so that citypass-admin and citypass-server share the file. The schema
 * version is in PRAGMA user_version.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/passes.h"
#include "store_sqlite_internal.h"

/* The usage streams, named per (device, journal epoch, sequence): a gate's journal numbers
 * its decisions per epoch, a new one each time it opens (docs/controller.md, "A lost or
 * restored journal"); epoch 0 holds what gates sent before epochs existed. */
#define USAGE_TABLES_SQL                                                                           \
	"CREATE TABLE stats(device TEXT NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,"               \
	" seq INTEGER NOT NULL, site INTEGER NOT NULL,"                                            \
	" gate INTEGER NOT NULL, sector INTEGER NOT NULL, product INTEGER NOT NULL,"               \
	" outcome INTEGER NOT NULL, reason INTEGER NOT NULL, quarter_hour INTEGER NOT NULL,"       \
	" PRIMARY KEY(device, epoch, seq)) WITHOUT ROWID;"                                         \
	"CREATE INDEX stats_time ON stats(quarter_hour);"                                          \
	"CREATE TABLE consumption(device TEXT NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,"         \
	" seq INTEGER NOT NULL,"                                                                   \
	" sector INTEGER NOT NULL, pseudonym BLOB NOT NULL, product INTEGER NOT NULL,"             \
	" count INTEGER NOT NULL, period INTEGER NOT NULL, PRIMARY KEY(device, epoch, seq))"       \
	" WITHOUT ROWID;"                                                                          \
	"CREATE INDEX consumption_key ON consumption(sector, pseudonym, product, period);"         \
	"CREATE TABLE acks(device TEXT NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,"                \
	" stream INTEGER NOT NULL, seq INTEGER NOT NULL,"                                          \
	" PRIMARY KEY(device, epoch, stream)) WITHOUT ROWID;"

/* Schema 1 -> 2 (issue 10): the usage tables gain the journal epoch in their keys. */
static const char migrate_1_to_2[] =
        "ALTER TABLE stats RENAME TO stats_v1; ALTER TABLE consumption RENAME TO consumption_v1;"
        " ALTER TABLE acks RENAME TO acks_v1; DROP INDEX stats_time; DROP INDEX "
        "consumption_key;" USAGE_TABLES_SQL
        "INSERT INTO stats SELECT device, 0, seq, site, gate, sector, product, outcome, reason,"
        " quarter_hour FROM stats_v1;"
        "INSERT INTO consumption SELECT device, 0, seq, sector, pseudonym, product, count, period"
        " FROM consumption_v1;"
        "INSERT INTO acks SELECT device, 0, stream, seq FROM acks_v1;"
        "DROP TABLE stats_v1; DROP TABLE consumption_v1; DROP TABLE acks_v1;"
        "PRAGMA user_version=2;";

/* Schema 3 -> 4 (issue 13): each stored use gets the position of its batch (a counter in
 * meta), each list version the position it reflects: a gate tells which of its acked uses
 * a list holds without comparing clocks (the same-second double count). And the gates'
 * last health report, for `citypass-admin device list`. */
static const char migrate_3_to_4[] =
        "ALTER TABLE consumption ADD COLUMN pos INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX consumption_pos ON consumption(device, epoch, seq, pos);"
        "INSERT OR IGNORE INTO meta(key, value) VALUES('usage_position', 0);"
        "ALTER TABLE list_versions ADD COLUMN usage_position INTEGER NOT NULL DEFAULT 0;"
        "CREATE TABLE device_health(device TEXT PRIMARY KEY REFERENCES devices(id)"
        " ON DELETE CASCADE, reported_at INTEGER NOT NULL, reader INTEGER NOT NULL,"
        " scanner INTEGER NOT NULL, list_version INTEGER NOT NULL,"
        " list_issued_at INTEGER NOT NULL, journal_backlog INTEGER NOT NULL,"
        " free_disk_bytes INTEGER NOT NULL, clock_skew_s INTEGER NOT NULL) WITHOUT ROWID;";

/* Schema 5 -> 6 (issue 17): each consumption row gets the server's time it was stored, so
 * that its detail (gate, sequence) goes at the sector's retention (server/privacy.h). Rows
 * from before have no time: 0, the first purge folds them. */
static const char migrate_5_to_6[] =
        "ALTER TABLE consumption ADD COLUMN stored_at INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX consumption_stored ON consumption(sector, stored_at);";

/* Schema 6 -> 7 (issue 18): each pass keeps its holder's name folded as searches compare it
 * (server_text_fold), written with the name, so that a search that ignores case and
 * accents is one comparison per pass, as the exact one was. citypass_fold is this
 * connection's own function (fold_sql), for this step only. */
static const char migrate_6_to_7[] =
        "ALTER TABLE passes ADD COLUMN holder_key TEXT NOT NULL DEFAULT '';"
        "UPDATE passes SET holder_key = citypass_fold(holder);";

const char sq_schema_v2_sql[] =
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE sectors(number INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
        " slot INTEGER NOT NULL UNIQUE);"
        "CREATE TABLE sites(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
        " sector INTEGER NOT NULL REFERENCES sectors(number), hours TEXT NOT NULL,"
        " tz TEXT NOT NULL, antipassback INTEGER NOT NULL, expiry_policy TEXT NOT NULL);"
        "CREATE TABLE devices(id TEXT PRIMARY KEY, gate INTEGER NOT NULL UNIQUE,"
        " site INTEGER NOT NULL REFERENCES sites(id), sector INTEGER NOT NULL,"
        " revoked INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);"
        "CREATE TABLE households(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
        "CREATE TABLE household_tags(household INTEGER NOT NULL REFERENCES households(id),"
        " sector INTEGER NOT NULL, tag INTEGER NOT NULL, PRIMARY KEY(household, sector),"
        " UNIQUE(sector, tag));"
        "CREATE TABLE passes(id INTEGER PRIMARY KEY, holder TEXT NOT NULL,"
        " household INTEGER REFERENCES households(id), state INTEGER NOT NULL,"
        " reason TEXT NOT NULL, medium TEXT NOT NULL, replaced_by INTEGER,"
        " created INTEGER NOT NULL);"
        "CREATE INDEX passes_household ON passes(household);"
        "CREATE TABLE pass_ids(pass INTEGER NOT NULL REFERENCES passes(id),"
        " sector INTEGER NOT NULL, ident BLOB NOT NULL UNIQUE, listkey BLOB NOT NULL,"
        " PRIMARY KEY(pass, sector), UNIQUE(sector, listkey));"
        "CREATE TABLE rights(pass INTEGER NOT NULL REFERENCES passes(id), sector INTEGER NOT NULL,"
        " product INTEGER NOT NULL, valid_from INTEGER NOT NULL, valid_to INTEGER NOT NULL,"
        " lim INTEGER NOT NULL, period INTEGER NOT NULL, scope INTEGER NOT NULL,"
        " fare INTEGER NOT NULL, flags INTEGER NOT NULL, PRIMARY KEY(pass, sector));"
        "CREATE INDEX rights_sector ON rights(sector);"
        "CREATE TABLE profiles(sector INTEGER NOT NULL, idx INTEGER NOT NULL,"
        " product INTEGER NOT NULL, valid_from INTEGER NOT NULL, valid_to INTEGER NOT NULL,"
        " lim INTEGER NOT NULL, period INTEGER NOT NULL, scope INTEGER NOT NULL,"
        " fare INTEGER NOT NULL, flags INTEGER NOT NULL, PRIMARY KEY(sector, idx),"
        " UNIQUE(sector, product, valid_from, valid_to, lim, period, scope, fare, flags));"
        "CREATE TABLE lists(sector INTEGER NOT NULL, version INTEGER NOT NULL,"
        " issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, data BLOB NOT NULL,"
        " sig BLOB NOT NULL, PRIMARY KEY(sector, version));"
        "CREATE TABLE deltas(sector INTEGER NOT NULL, base INTEGER NOT NULL,"
        " version INTEGER NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
        " data BLOB NOT NULL, sig BLOB NOT NULL, PRIMARY KEY(sector, base));"
        /* statistics: no identifier of a pass; the device id names a gate */
        USAGE_TABLES_SQL;

void sq_fail(struct sq *q, const char *msg)
{
	snprintf(q->errmsg, sizeof(q->errmsg), "%s", msg ? msg : "");
}

int sq_err(struct sq *q, int rc)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW && q && q->db)
		sq_fail(q, sqlite3_errmsg(q->db));
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_CONSTRAINT:
		return SERVER_ERR_EXISTS;
	case SQLITE_NOMEM:
		return SERVER_ERR_NOMEM;
	case SQLITE_BUSY:
		return SERVER_ERR_BUSY;
	default:
		return SERVER_ERR_IO;
	}
}

int sq_prep(struct sq *q, sqlite3_stmt **st, const char *sql)
{
	int rc = sqlite3_prepare_v2(q->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(q, rc);
	return 0;
}

int sq_step(struct sq *q, sqlite3_stmt *st)
{
	q->counters.statements++;
	return sqlite3_step(st);
}

int sq_cached(struct sq *q, sqlite3_stmt **st, const char *sql)
{
	for (size_t i = 0; i < q->n_cache; i++) {
		if (q->cache[i].sql == sql) {
			sqlite3_reset(q->cache[i].st);
			sqlite3_clear_bindings(q->cache[i].st);
			*st = q->cache[i].st;
			return 0;
		}
	}
	int rc = sq_prep(q, st, sql);
	if (rc == 0 && q->n_cache < SQ_CACHE_MAX) {
		q->cache[q->n_cache].sql = sql;
		q->cache[q->n_cache].st = *st;
		q->n_cache++;
	} else if (rc == 0) {
		/* a full cache is a programming error: say so */
		sqlite3_finalize(*st);
		sq_fail(q, "statement cache full (SQ_CACHE_MAX)");
		rc = SERVER_ERR_NOMEM;
	}
	return rc;
}

int sq_run_cached(struct sq *q, sqlite3_stmt *st)
{
	int rc = sq_step(q, st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	return sq_err(q, rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

void sq_bind_blob_counted(struct sq *q, sqlite3_stmt *st, int at, const void *data, size_t len)
{
	q->counters.bytes_written += len;
	sqlite3_bind_blob64(st, at, data, len, SQLITE_STATIC);
}

/* Run a statement to completion; 0, or EXISTS on a constraint. */
int sq_run(struct sq *q, sqlite3_stmt *st)
{
	int rc = sq_step(q, st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	return sq_err(q, rc == SQLITE_ROW ? SQLITE_ERROR : rc);
}

int sq_exec(struct sq *q, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
	int err = sq_err(q, rc);
	if (rc != SQLITE_OK && msg) /* the statement's own words, not the connection's */
		sq_fail(q, msg);
	sqlite3_free(msg);
	return err;
}

void sq_copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

/* --- transactions ---------------------------------------------------------------------- */

static int sq_begin(void *ctx)
{
	return sq_exec(ctx, "BEGIN IMMEDIATE");
}

/* A read transaction: one consistent snapshot for every read until commit, no lock taken
 * (WAL: writers go on meanwhile). */
static int sq_begin_read(void *ctx)
{
	return sq_exec(ctx, "BEGIN DEFERRED");
}

static int sq_commit(void *ctx)
{
	return sq_exec(ctx, "COMMIT");
}

static void sq_rollback(void *ctx)
{
	struct sq *q = ctx;
	if (!sqlite3_get_autocommit(q->db))
		(void)sq_exec(q, "ROLLBACK");
}

/* --- meta, sectors, sites, devices ------------------------------------------------------ */

static int sq_meta_get(void *ctx, const char *key, char *out, size_t cap)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "SELECT value FROM meta WHERE key=?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		sq_copy_text(out, cap, st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

int sq_meta_set(void *ctx, const char *key, const char *value)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	return sq_run(q, st);
}

static int sq_sector_add(void *ctx, const struct server_sector *s)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "INSERT INTO sectors(number, name, slot) VALUES(?, ?, ?)");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, s->number);
	sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, s->slot);
	return sq_run(q, st);
}

static int sq_sector_list(void *ctx, struct server_sector **out, size_t *n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "SELECT number, name, slot FROM sectors ORDER BY number");
	if (rc)
		return rc;
	struct server_sector *v = NULL;
	size_t len = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		struct server_sector *nv = realloc(v, (len + 1) * sizeof(*v));
		if (!nv) {
			free(v);
			sqlite3_finalize(st);
			return SERVER_ERR_NOMEM;
		}
		v = nv;
		v[len].number = (uint16_t)sqlite3_column_int(st, 0);
		sq_copy_text(v[len].name, sizeof(v[len].name), st, 1);
		v[len].slot = (uint8_t)sqlite3_column_int(st, 2);
		len++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return sq_err(q, rc);
	}
	*out = v;
	*n = len;
	return 0;
}

static int sq_site_add(void *ctx, struct server_site *s)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st,
	                 "INSERT INTO sites(name, sector, hours, tz, antipassback, expiry_policy)"
	                 " VALUES(?, ?, ?, ?, ?, ?)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, s->sector);
	sqlite3_bind_text(st, 3, s->hours, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, s->tz, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, s->antipassback_min);
	sqlite3_bind_text(st, 6, s->expiry_policy, -1, SQLITE_STATIC);
	rc = sq_run(q, st);
	if (rc == 0)
		s->id = (uint32_t)sqlite3_last_insert_rowid(q->db);
	return rc;
}

static int site_row(struct sq *q, sqlite3_stmt *st, struct server_site *o)
{
	int rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		o->id = (uint32_t)sqlite3_column_int64(st, 0);
		sq_copy_text(o->name, sizeof(o->name), st, 1);
		o->sector = (uint16_t)sqlite3_column_int(st, 2);
		sq_copy_text(o->hours, sizeof(o->hours), st, 3);
		sq_copy_text(o->tz, sizeof(o->tz), st, 4);
		o->antipassback_min = (uint32_t)sqlite3_column_int64(st, 5);
		sq_copy_text(o->expiry_policy, sizeof(o->expiry_policy), st, 6);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

#define SITE_COLS "SELECT id, name, sector, hours, tz, antipassback, expiry_policy FROM sites "

static int sq_site_find(void *ctx, const char *name, struct server_site *out)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, SITE_COLS "WHERE name=?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return site_row(q, st, out);
}

static int sq_site_get(void *ctx, uint32_t id, struct server_site *out)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, SITE_COLS "WHERE id=?");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return site_row(q, st, out);
}

static int sq_device_find(void *ctx, const char *id, struct server_device *out);

static int sq_device_add(void *ctx, struct server_device *d)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(
	        q, &st,
	        "INSERT INTO devices(id, gate, site, sector, revoked, created)"
	        " VALUES(?1, (SELECT COALESCE(MAX(gate), 0) + 1 FROM devices), ?2, ?3, 0, ?4)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, d->site);
	sqlite3_bind_int(st, 3, d->sector);
	sqlite3_bind_int64(st, 4, d->created);
	rc = sq_run(q, st);
	if (rc)
		return rc;
	struct server_device back;
	rc = sq_device_find(ctx, d->id, &back);
	if (rc == 0)
		d->gate = back.gate;
	return rc;
}

static int sq_device_find(void *ctx, const char *id, struct server_device *out)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st,
	                 "SELECT id, gate, site, sector, revoked, created FROM devices WHERE id=?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		sq_copy_text(out->id, sizeof(out->id), st, 0);
		out->gate = (uint32_t)sqlite3_column_int64(st, 1);
		out->site = (uint32_t)sqlite3_column_int64(st, 2);
		out->sector = (uint16_t)sqlite3_column_int(st, 3);
		out->revoked = sqlite3_column_int(st, 4);
		out->created = sqlite3_column_int64(st, 5);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

static int sq_device_revoke(void *ctx, const char *id)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "UPDATE devices SET revoked=1 WHERE id=?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sq_run(q, st);
	if (rc == 0 && sqlite3_changes(q->db) == 0)
		rc = SERVER_ERR_NOT_FOUND;
	return rc;
}

/* --- households ------------------------------------------------------------------------- */

/* The statements an import runs for every line are prepared once per connection. An
 * INSERT that fires a trigger and may fail on a constraint (ABORT, the default) makes
 * sqlite keep a statement journal: a copy of every page the statement changes, which an
 * import of a million passes made in /var/tmp, twice per page and per line (half of its
 * time). OR FAIL needs none and changes nothing here: the row's constraints are all
 * checked before anything is written, and the AFTER triggers' own inserts cannot fail. */
/* A name is taken when one differs from it only in case (schema 9, households_folded);
 * a lookup prefers the exact name, for a pair made before schema 9. */
static const char household_add_sql[] = "INSERT OR FAIL INTO households(name) VALUES(?1)";
static const char household_find_sql[] = "SELECT id FROM households WHERE lower(name) = lower(?1)"
                                         " ORDER BY name = ?1 DESC, id LIMIT 1";
static const char tag_add_sql[] =
        "INSERT OR FAIL INTO household_tags(household, sector, tag) VALUES(?,?,?)";
static const char tag_get_sql[] = "SELECT tag FROM household_tags WHERE household=? AND sector=?";
static const char pass_add_sql[] =
        "INSERT INTO passes(holder, household, state, reason, medium, replaced_by, created,"
        " import_id, holder_key) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char pass_id_add_sql[] =
        "INSERT OR FAIL INTO pass_ids(pass, sector, ident, listkey) VALUES(?,?,?,?)";

/* The first column of the one row of a cached statement (reset, not finalized). */
static int one_int64_cached(struct sq *q, sqlite3_stmt *st, int64_t *out)
{
	int rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	sqlite3_reset(st);
	return rc;
}

int sq_one_int64(struct sq *q, sqlite3_stmt *st, int64_t *out)
{
	int rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

static int sq_household_find(void *ctx, const char *name, int64_t *id)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, household_find_sql);
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return one_int64_cached(q, st, id);
}

static int sq_household_add(void *ctx, const char *name, int64_t *id)
{
	struct sq *q = ctx;
	int64_t held;
	/* taken in this case or another: the lookup says so (an INSERT ... WHERE NOT EXISTS
	 * would keep a statement journal, above) */
	int rc = sq_household_find(q, name, &held);
	if (rc != SERVER_ERR_NOT_FOUND)
		return rc ? rc : SERVER_ERR_EXISTS;
	sqlite3_stmt *st;
	if ((rc = sq_cached(q, &st, household_add_sql)) != 0)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sq_run_cached(q, st);
	if (rc == 0)
		*id = sqlite3_last_insert_rowid(q->db);
	return rc;
}

static int sq_household_each(void *ctx, const char *part,
                             int (*fn)(void *arg, int64_t id, const char *name), void *arg)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	/* names are ASCII (server_name_ok): lower() folds them whole */
	int rc = sq_prep(q, &st,
	                 "SELECT id, name FROM households WHERE ?1 IS NULL"
	                 " OR instr(lower(name), ?1) > 0 ORDER BY name, id");
	if (rc)
		return rc;
	if (part)
		sqlite3_bind_text(st, 1, part, -1, SQLITE_STATIC);
	int ret = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		char name[SERVER_NAME_MAX];
		sq_copy_text(name, sizeof(name), st, 1);
		if ((ret = fn(arg, sqlite3_column_int64(st, 0), name)) != 0)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sq_err(q, rc);
	sqlite3_finalize(st);
	return ret;
}

static int sq_household_rename(void *ctx, int64_t id, const char *name)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	/* its own name in another case is no conflict ("dupont" -> "Dupont") */
	int rc = sq_prep(q, &st,
	                 "UPDATE households SET name = ?1 WHERE id = ?2 AND NOT EXISTS"
	                 " (SELECT 1 FROM households WHERE lower(name) = lower(?1) AND id <> ?2)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	rc = sq_run(q, st);
	if (rc == 0 && sqlite3_changes(q->db) == 0) {
		char held[SERVER_NAME_MAX];
		rc = sq_household_name(q, id, held, sizeof(held)) == 0 ? SERVER_ERR_EXISTS
		                                                       : SERVER_ERR_NOT_FOUND;
	}
	return rc;
}

static int sq_household_delete(void *ctx, int64_t id)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int64_t left = 0;
	int rc = sq_prep(q, &st, "SELECT count(*) FROM passes WHERE household = ?");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sq_one_int64(q, st, &left)) != 0)
		return rc;
	if (left)
		return SERVER_ERR_EXISTS;
	if ((rc = sq_prep(q, &st, "DELETE FROM household_tags WHERE household = ?")) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sq_run(q, st)) != 0)
		return rc;
	if ((rc = sq_prep(q, &st, "DELETE FROM households WHERE id = ?")) != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sq_run(q, st);
	if (rc == 0 && sqlite3_changes(q->db) == 0)
		rc = SERVER_ERR_NOT_FOUND;
	return rc;
}

static int sq_household_tag_add(void *ctx, int64_t household, uint16_t sector, uint32_t tag)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, tag_add_sql);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, household);
	sqlite3_bind_int(st, 2, sector);
	sqlite3_bind_int64(st, 3, tag);
	return sq_run_cached(q, st);
}

static int sq_household_tag_get(void *ctx, int64_t household, uint16_t sector, uint32_t *tag)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, tag_get_sql);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, household);
	sqlite3_bind_int(st, 2, sector);
	int64_t v = 0;
	rc = one_int64_cached(q, st, &v);
	*tag = (uint32_t)v;
	return rc;
}

/* --- passes ----------------------------------------------------------------------------- */

/* Parameters 1 to 6 of the passes INSERT and UPDATE: the same columns in the same order
 * (an absent household or replacement stays NULL). */
static void bind_pass_fields(sqlite3_stmt *st, const struct server_pass *p)
{
	sqlite3_bind_text(st, 1, p->holder, -1, SQLITE_STATIC);
	if (p->household)
		sqlite3_bind_int64(st, 2, p->household);
	sqlite3_bind_int(st, 3, p->state);
	sqlite3_bind_text(st, 4, p->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, p->medium, -1, SQLITE_STATIC);
	if (p->replaced_by)
		sqlite3_bind_int64(st, 6, p->replaced_by);
}

static int sq_pass_add(void *ctx, struct server_pass *p)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, pass_add_sql);
	if (rc)
		return rc;
	bind_pass_fields(st, p);
	sqlite3_bind_int64(st, 7, p->created);
	if (p->import_id) /* a pass of an import stays out of lists until it is done */
		sqlite3_bind_int64(st, 8, p->import_id);
	char key[SERVER_TEXT_MAX * 2];
	server_text_fold(p->holder, key, sizeof(key));
	sqlite3_bind_text(st, 9, key, -1, SQLITE_TRANSIENT);
	rc = sq_run_cached(q, st);
	if (rc == 0)
		p->id = sqlite3_last_insert_rowid(q->db);
	return rc;
}

#define PASS_COLS "SELECT id, holder, household, state, reason, medium, replaced_by, created "

static void pass_from_row(sqlite3_stmt *st, struct server_pass *o)
{
	o->id = sqlite3_column_int64(st, 0);
	sq_copy_text(o->holder, sizeof(o->holder), st, 1);
	o->household = sqlite3_column_int64(st, 2);
	o->state = sqlite3_column_int(st, 3);
	sq_copy_text(o->reason, sizeof(o->reason), st, 4);
	sq_copy_text(o->medium, sizeof(o->medium), st, 5);
	o->replaced_by = sqlite3_column_int64(st, 6);
	o->created = sqlite3_column_int64(st, 7);
	o->import_id = 0; /* pass_add's input only: a pass read and added again is not imported */
}

static int sq_pass_get(void *ctx, int64_t id, struct server_pass *out)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, PASS_COLS "FROM passes WHERE id=?");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		pass_from_row(st, out);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	sqlite3_finalize(st);
	return rc;
}

static int sq_pass_update(void *ctx, const struct server_pass *p)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st,
	                 "UPDATE passes SET holder=?, household=?, state=?, reason=?, medium=?,"
	                 " replaced_by=?, holder_key=?8 WHERE id=?7");
	if (rc)
		return rc;
	bind_pass_fields(st, p);
	sqlite3_bind_int64(st, 7, p->id);
	char key[SERVER_TEXT_MAX * 2];
	server_text_fold(p->holder, key, sizeof(key));
	sqlite3_bind_text(st, 8, key, -1, SQLITE_TRANSIENT);
	rc = sq_run(q, st);
	if (rc == 0 && sqlite3_changes(q->db) == 0)
		rc = SERVER_ERR_NOT_FOUND;
	return rc;
}

static int sq_pass_each(void *ctx, const struct server_pass_filter *f,
                        int (*fn)(void *arg, const struct server_pass *p), void *arg)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	/* A household's passes through its index (a household page, a move, a removal); the
	 * "?2 = 0 OR" form would scan every pass. */
#define EACH_WHERE(household)                                                                      \
	PASS_COLS "FROM passes WHERE (?1 IS NULL OR instr(holder_key, ?1) > 0)"                    \
	          " AND (import_id IS NULL OR import_id IN (SELECT id FROM imports"                \
	          " WHERE done = 1)) AND " household " AND (?3 < 0 OR state = ?3)"                 \
	          " AND (?4 < 0 OR EXISTS (SELECT 1 FROM rights r WHERE r.pass ="                  \
	          " passes.id AND r.sector = ?4)) ORDER BY id"
	int rc =
	        sq_prep(q, &st, f->household ? EACH_WHERE("household = ?2") : EACH_WHERE("?2 = 0"));
#undef EACH_WHERE
	if (rc)
		return rc;
	char key[SERVER_TEXT_MAX * 2];
	if (f->holder) {
		server_text_fold(f->holder, key, sizeof(key));
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 2, f->household);
	sqlite3_bind_int(st, 3, f->state);
	sqlite3_bind_int(st, 4, f->sector);
	int ret = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		struct server_pass p;
		pass_from_row(st, &p);
		ret = fn(arg, &p);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sq_err(q, rc);
	sqlite3_finalize(st);
	return ret;
}

static int sq_pass_id_add(void *ctx, int64_t pass, uint16_t sector,
                          const uint8_t id[SERVER_PASS_ID_LEN],
                          const uint8_t key[PROTO_LIST_KEY_LEN])
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, pass_id_add_sql);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, pass);
	sqlite3_bind_int(st, 2, sector);
	sqlite3_bind_blob(st, 3, id, SERVER_PASS_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	return sq_run_cached(q, st);
}

static int sq_pass_id_get(void *ctx, int64_t pass, uint16_t sector, uint8_t id[SERVER_PASS_ID_LEN],
                          uint8_t key[PROTO_LIST_KEY_LEN])
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "SELECT ident, listkey FROM pass_ids WHERE pass=? AND sector=?");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, pass);
	sqlite3_bind_int(st, 2, sector);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == SERVER_PASS_ID_LEN &&
	    sqlite3_column_bytes(st, 1) == PROTO_LIST_KEY_LEN) {
		if (id)
			memcpy(id, sqlite3_column_blob(st, 0), SERVER_PASS_ID_LEN);
		if (key)
			memcpy(key, sqlite3_column_blob(st, 1), PROTO_LIST_KEY_LEN);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : SERVER_ERR_IO;
	}
	sqlite3_finalize(st);
	return rc;
}

static int sq_pass_id_find(void *ctx, uint16_t sector, const uint8_t id[SERVER_PASS_ID_LEN],
                           int64_t *pass)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "SELECT pass FROM pass_ids WHERE sector=? AND ident=?");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_blob(st, 2, id, SERVER_PASS_ID_LEN, SQLITE_STATIC);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		*pass = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : SERVER_ERR_IO;
	}
	sqlite3_finalize(st);
	return rc;
}

/* --- rights and profiles ---------------------------------------------------------------- */

static const char right_set_sql[] =
        "INSERT OR REPLACE INTO rights(pass, sector, " PROFILE_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?)";
/* OR FAIL: no statement journal (see household_add_sql); REPLACE needs one */
static const char right_add_sql[] =
        "INSERT OR FAIL INTO rights(pass, sector, " PROFILE_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?)";

static int right_insert(struct sq *q, const char *sql, const struct server_right *r)
{
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, sql);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, r->pass);
	sqlite3_bind_int(st, 2, r->sector);
	sq_bind_profile(st, 3, &r->p);
	return sq_run_cached(q, st);
}

static int sq_right_set(void *ctx, const struct server_right *r)
{
	return right_insert(ctx, right_set_sql, r);
}

static int sq_right_add(void *ctx, const struct server_right *r)
{
	return right_insert(ctx, right_add_sql, r);
}

static int sq_right_delete(void *ctx, int64_t pass, uint16_t sector)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "DELETE FROM rights WHERE pass=? AND sector=?");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, pass);
	sqlite3_bind_int(st, 2, sector);
	rc = sq_run(q, st);
	if (rc == 0 && sqlite3_changes(q->db) == 0)
		rc = SERVER_ERR_NOT_FOUND;
	return rc;
}

static int sq_rights_of_pass(void *ctx, int64_t pass, struct server_right **out, size_t *n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(
	        q, &st, "SELECT sector, " PROFILE_COLS " FROM rights WHERE pass=? ORDER BY sector");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, pass);
	struct server_right *v = NULL;
	size_t len = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		struct server_right *nv = realloc(v, (len + 1) * sizeof(*v));
		if (!nv) {
			free(v);
			sqlite3_finalize(st);
			return SERVER_ERR_NOMEM;
		}
		v = nv;
		v[len].pass = pass;
		v[len].sector = (uint16_t)sqlite3_column_int(st, 0);
		sq_profile_from_row(st, 1, &v[len].p);
		len++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return sq_err(q, rc);
	}
	*out = v;
	*n = len;
	return 0;
}

/* --- usage streams ---------------------------------------------------------------------- */

static int sq_acked_epoch(struct sq *q, const char *device, int64_t epoch, int stream,
                          uint64_t *seq)
{
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st,
	                 "SELECT COALESCE((SELECT seq FROM acks WHERE device=? AND epoch=? AND"
	                 " stream=?), 0)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, epoch);
	sqlite3_bind_int(st, 3, stream);
	int64_t v = 0;
	rc = sq_one_int64(q, st, &v);
	*seq = (uint64_t)v;
	return rc;
}

static int sq_ingest(void *ctx, const char *device, const Citypass__EventBatch *b, uint64_t *acked)
{
	struct sq *q = ctx;
	sqlite3_stmt *st = NULL;
	int stream = b->stream;
	const int64_t epoch = (int64_t)b->journal_epoch;
	int rc;
	uint64_t high = 0, done = 0;
	if (b->journal_epoch > INT64_MAX)
		return SERVER_ERR_INVALID;
	/* Everything of this epoch up to the acknowledged sequence is stored, or was (expired
	 * consumption): a resend from a journal restored from an older copy is skipped even
	 * where its rows are gone. */
	if ((rc = sq_acked_epoch(q, device, epoch, stream, &done)) != 0)
		return rc;
	high = done;
	if (stream == CITYPASS__STREAM__STATISTICS) {
		rc = sq_prep(
		        q, &st,
		        "INSERT OR IGNORE INTO stats(device, epoch, seq, site, gate, sector, "
		        "product,"
		        " outcome, reason, quarter_hour) VALUES(?1,?10,?2,?3,?4,?5,?6,?7,?8,?9)");
		if (rc)
			return rc;
		for (size_t i = 0; i < b->n_stats; i++) {
			const Citypass__StatEvent *e = b->stats[i];
			if (e->seq <= done)
				continue;
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 10, epoch);
			sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (int64_t)e->seq);
			sqlite3_bind_int64(st, 3, e->site);
			sqlite3_bind_int64(st, 4, e->gate);
			sqlite3_bind_int64(st, 5, e->sector);
			sqlite3_bind_int64(st, 6, e->product);
			sqlite3_bind_int(st, 7, e->outcome);
			sqlite3_bind_int64(st, 8, e->reason);
			sqlite3_bind_int64(st, 9, e->quarter_hour);
			if (sq_step(q, st) != SQLITE_DONE) {
				sqlite3_finalize(st);
				return SERVER_ERR_IO;
			}
			if (e->seq > high)
				high = e->seq;
		}
	} else if (stream == CITYPASS__STREAM__CONSUMPTION) {
		/* issue 13: the batch's rows get the next usage position (a list published
		 * later, reading a position at or above it, counts them) */
		int64_t pos = 0;
		int fresh = 0;
		for (size_t i = 0; i < b->n_consumption; i++)
			fresh |= b->consumption[i]->seq > done;
		if (fresh) {
			rc = sq_prep(
			        q, &st,
			        "UPDATE meta SET value = CAST(value AS INTEGER) + 1"
			        " WHERE key = 'usage_position' RETURNING CAST(value AS INTEGER)");
			if (rc)
				return rc;
			rc = sq_one_int64(q, st, &pos);
			if (rc)
				return rc;
		}
		rc = sq_prep(
		        q, &st,
		        "INSERT OR IGNORE INTO consumption(device, epoch, seq, sector, pseudonym,"
		        " product, count, period, pos, stored_at)"
		        " VALUES(?1,?10,?2,?3,?4,?5,?6,?7,?11,?12)");
		if (rc)
			return rc;
		sqlite3_bind_int64(st, 11, pos);
		/* issue 17: the server's own clock, what its retention is judged by */
		sqlite3_bind_int64(st, 12, (int64_t)time(NULL));
		for (size_t i = 0; i < b->n_consumption; i++) {
			const Citypass__ConsumptionEvent *e = b->consumption[i];
			if (e->pseudonym.len != PROTO_LIST_KEY_LEN) {
				sqlite3_finalize(st);
				return SERVER_ERR_INVALID;
			}
			if (e->seq <= done)
				continue;
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 10, epoch);
			sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (int64_t)e->seq);
			sqlite3_bind_int64(st, 3, e->sector);
			sqlite3_bind_blob(st, 4, e->pseudonym.data, PROTO_LIST_KEY_LEN,
			                  SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, e->product);
			sqlite3_bind_int64(st, 6, e->count);
			sqlite3_bind_int64(st, 7, e->period);
			if (sq_step(q, st) != SQLITE_DONE) {
				sqlite3_finalize(st);
				return SERVER_ERR_IO;
			}
			if (e->seq > high)
				high = e->seq;
		}
	} else {
		return SERVER_ERR_INVALID;
	}
	sqlite3_finalize(st);
	/* The acknowledged sequence is a high-water mark kept apart from the rows, so that
	 * it survives the deletion of consumption rows whose period has ended. */
	rc = sq_prep(q, &st,
	             "INSERT INTO acks(device, epoch, stream, seq) VALUES(?1, ?4, ?2, ?3) ON"
	             " CONFLICT(device, epoch, stream) DO UPDATE SET seq = MAX(seq, excluded.seq)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, stream);
	sqlite3_bind_int64(st, 3, (int64_t)high);
	sqlite3_bind_int64(st, 4, epoch);
	rc = sq_run(q, st);
	if (rc)
		return rc;
	return sq_acked_epoch(q, device, epoch, stream, acked);
}

static int sq_usage_position(void *ctx, uint64_t *pos)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st,
	                 "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'usage_position'");
	int64_t v = 0;
	if (rc == 0)
		rc = sq_one_int64(q, st, &v);
	*pos = v > 0 ? (uint64_t)v : 0;
	return rc;
}

static int sq_usage_position_of(void *ctx, const char *device, uint64_t epoch, uint64_t seq,
                                uint64_t *pos)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	if (epoch > INT64_MAX || seq > INT64_MAX)
		return SERVER_ERR_INVALID;
	int rc = sq_prep(q, &st,
	                 "SELECT COALESCE(MAX(pos), 0) FROM consumption WHERE device = ?1 AND"
	                 " epoch = ?2 AND seq <= ?3");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)epoch);
	sqlite3_bind_int64(st, 3, (int64_t)seq);
	int64_t v = 0;
	rc = sq_one_int64(q, st, &v);
	*pos = v > 0 ? (uint64_t)v : 0;
	return rc;
}

static int sq_device_health_put(void *ctx, const struct server_device_health *h)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc =
	        sq_prep(q, &st,
	                "INSERT OR REPLACE INTO device_health(device, reported_at, reader, scanner,"
	                " list_version, list_issued_at, journal_backlog, free_disk_bytes,"
	                " clock_skew_s) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9"
	                " WHERE EXISTS(SELECT 1 FROM devices WHERE id = ?1)");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, h->device, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, h->reported_at);
	sqlite3_bind_int(st, 3, h->reader);
	sqlite3_bind_int(st, 4, h->scanner);
	sqlite3_bind_int64(st, 5,
	                   h->list_version > INT64_MAX ? INT64_MAX : (int64_t)h->list_version);
	sqlite3_bind_int64(st, 6, h->list_issued_at);
	sqlite3_bind_int64(
	        st, 7, h->journal_backlog > INT64_MAX ? INT64_MAX : (int64_t)h->journal_backlog);
	sqlite3_bind_int64(
	        st, 8, h->free_disk_bytes > INT64_MAX ? INT64_MAX : (int64_t)h->free_disk_bytes);
	sqlite3_bind_int64(st, 9, h->clock_skew_s);
	return sq_run(q, st);
}

static int sq_device_status_list(void *ctx, struct server_device_status **out, size_t *n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	*out = NULL;
	*n = 0;
	int rc = sq_prep(q, &st,
	                 "SELECT d.id, d.gate, d.site, d.sector, d.revoked, d.created, s.name,"
	                 " h.reported_at, h.reader, h.scanner, h.list_version, h.list_issued_at,"
	                 " h.journal_backlog, h.free_disk_bytes, h.clock_skew_s"
	                 " FROM devices d JOIN sites s ON s.id = d.site"
	                 " LEFT JOIN device_health h ON h.device = d.id ORDER BY d.gate");
	if (rc)
		return rc;
	size_t cap = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			struct server_device_status *g = realloc(*out, cap * sizeof(**out));
			if (!g) {
				sqlite3_finalize(st);
				free(*out);
				*out = NULL;
				*n = 0;
				return SERVER_ERR_NOMEM;
			}
			*out = g;
		}
		struct server_device_status *d = &(*out)[(*n)++];
		memset(d, 0, sizeof(*d));
		sq_copy_text(d->dev.id, sizeof(d->dev.id), st, 0);
		d->dev.gate = (uint32_t)sqlite3_column_int64(st, 1);
		d->dev.site = (uint32_t)sqlite3_column_int64(st, 2);
		d->dev.sector = (uint16_t)sqlite3_column_int(st, 3);
		d->dev.revoked = sqlite3_column_int(st, 4);
		d->dev.created = sqlite3_column_int64(st, 5);
		sq_copy_text(d->site_name, sizeof(d->site_name), st, 6);
		d->has_health = sqlite3_column_type(st, 7) != SQLITE_NULL;
		if (d->has_health) {
			struct server_device_health *h = &d->health;
			snprintf(h->device, sizeof(h->device), "%s", d->dev.id);
			h->reported_at = sqlite3_column_int64(st, 7);
			h->reader = sqlite3_column_int(st, 8);
			h->scanner = sqlite3_column_int(st, 9);
			h->list_version = (uint64_t)sqlite3_column_int64(st, 10);
			h->list_issued_at = sqlite3_column_int64(st, 11);
			h->journal_backlog = (uint64_t)sqlite3_column_int64(st, 12);
			h->free_disk_bytes = (uint64_t)sqlite3_column_int64(st, 13);
			h->clock_skew_s = sqlite3_column_int64(st, 14);
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sq_err(q, rc);
}

static int sq_product_known(void *ctx, uint16_t sector, uint32_t product, int *known)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st,
	                 "SELECT EXISTS(SELECT 1 FROM profiles WHERE sector = ? AND product = ?)");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, product);
	int64_t v = 0;
	rc = sq_one_int64(q, st, &v);
	*known = v != 0;
	return rc;
}

static int sq_consumption_discard(void *ctx, const char *device, uint64_t *n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "DELETE FROM consumption WHERE device = ?");
	if (rc)
		return rc;
	sqlite3_bind_text(st, 1, device, -1, SQLITE_STATIC);
	rc = sq_run(q, st);
	*n = rc ? 0 : (uint64_t)sqlite3_changes(q->db);
	return rc;
}

static int sq_counted_right(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                            uint32_t *product, uint8_t *period)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(
	        q, &st,
	        "SELECT r.product, r.period FROM pass_ids p JOIN rights r ON r.pass = p.pass"
	        " AND r.sector = p.sector WHERE p.sector = ? AND p.listkey = ?"
	        " AND r.period != 0");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_blob(st, 2, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW) {
		*product = (uint32_t)sqlite3_column_int64(st, 0);
		*period = (uint8_t)sqlite3_column_int(st, 1);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return SERVER_ERR_NOT_FOUND;
	return rc == SQLITE_ROW ? 0 : sq_err(q, rc);
}

/* The acknowledged sequence of what the device sent before journal epochs (epoch 0). */
static int sq_acked(void *ctx, const char *device, int stream, uint64_t *seq)
{
	return sq_acked_epoch(ctx, device, 0, stream, seq);
}

static int sq_stats(void *ctx, int64_t from, int64_t to, int64_t bucket_s,
                    int (*fn)(void *arg, const struct server_stat_row *r), void *arg)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(
	        q, &st,
	        "SELECT site, gate, sector, product, outcome, reason,"
	        " (quarter_hour / ?3) * ?3 AS b, COUNT(*) FROM stats WHERE quarter_hour >= ?1"
	        " AND quarter_hour < ?2 GROUP BY site, gate, sector, product, outcome,"
	        " reason, b ORDER BY b, site, gate, sector, product, outcome, reason");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, from);
	sqlite3_bind_int64(st, 2, to);
	sqlite3_bind_int64(st, 3, bucket_s > 0 ? bucket_s : 900);
	int ret = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		struct server_stat_row r;
		r.site = (uint32_t)sqlite3_column_int64(st, 0);
		r.gate = (uint32_t)sqlite3_column_int64(st, 1);
		r.sector = (uint32_t)sqlite3_column_int64(st, 2);
		r.product = (uint32_t)sqlite3_column_int64(st, 3);
		r.outcome = sqlite3_column_int(st, 4);
		r.reason = (uint32_t)sqlite3_column_int64(st, 5);
		r.quarter_hour = sqlite3_column_int64(st, 6);
		r.count = (uint64_t)sqlite3_column_int64(st, 7);
		ret = fn(arg, &r);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = sq_err(q, rc);
	sqlite3_finalize(st);
	return ret;
}

/*
 * Waiting for another connection's write lock: sqlite's own handler sleeps 1, 2, 5 ... then
 * 100 ms between attempts, so it tries at moments of its own. Behind an import, whose
 * transactions follow each other a few milliseconds apart (admin_import.c), such a waiter
 * kept missing the gaps: measured from another connection at 5 M passes, the lock was out
 * of reach for 4 s at the median and 10.1 s at most, past the 10 s after which an agent's
 * command fails with "database is locked". Tried every millisecond, it takes the first gap.
 * A failed attempt costs a few system calls.
 */
static int sq_busy_wait(void *arg, int count)
{
	struct sq *q = arg;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	const double now = (double)t.tv_sec + (double)t.tv_nsec / 1e9;
	if (count == 0)
		q->busy_since = now;
	if ((now - q->busy_since) * 1000.0 >= (double)q->busy_ms)
		return 0; /* SQLITE_BUSY: "database is locked" */
	const struct timespec ms = {0, 1000000};
	nanosleep(&ms, NULL);
	return 1;
}

static void sq_busy_timeout(void *ctx, int ms)
{
	struct sq *q = ctx;
	q->busy_ms = ms;
	sqlite3_busy_handler(q->db, ms > 0 ? sq_busy_wait : NULL, q);
}

static void sq_counters(void *ctx, struct server_store_counters *out)
{
	struct sq *q = ctx;
	*out = q->counters;
}

static const char *sq_last_error(void *ctx)
{
	struct sq *q = ctx;
	return q->errmsg;
}

static void sq_close(void *ctx)
{
	struct sq *q = ctx;
	if (!q)
		return;
	for (size_t i = 0; i < q->n_cache; i++)
		sqlite3_finalize(q->cache[i].st);
	sqlite3_close(q->db);
	free(q);
}

#define WAL_KEPT_BYTES (64ll << 20) /* journal_size_limit once a bulk is over */
#define WAL_CUT_STEP   (256ll << 20)

/* In bulk mode sqlite's own checkpoint, run by the commit that made the log long enough,
 * is replaced by this count: that checkpoint made the import's commit return 1.2 to 1.6 s
 * later at 5 M passes (it copies up to 256 MiB of the log into the database and syncs it),
 * and the import sizes its transactions from how long its commits take
 * (admin_import.c). bulk_checkpoint does it between transactions instead. */
static int sq_bulk_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct sq *)arg)->wal_frames = frames;
	return SQLITE_OK;
}

static void sq_bulk(void *ctx, unsigned cache_mib, unsigned wal_mib)
{
	struct sq *q = ctx;
	char pragma[128];
	snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%u; PRAGMA foreign_keys=OFF",
	         cache_mib * 1024u);
	(void)sq_exec(q, pragma);
	sqlite3_stmt *st;
	int64_t page = 4096;
	if (sq_prep(q, &st, "PRAGMA page_size") == 0)
		(void)sq_one_int64(q, st, &page);
	q->wal_limit = (int)(((int64_t)wal_mib << 20) / (page > 0 ? page : 4096));
	q->wal_frames = 0;
	q->wal_kept = q->wal_kept ? q->wal_kept : WAL_KEPT_BYTES;
	q->wal_step = q->wal_step ? q->wal_step : WAL_CUT_STEP;
	sqlite3_wal_hook(q->db, sq_bulk_wal_hook, q);
	/* a bulk commit writes its pages to the log without waiting for the disk (a third of
	 * its time, with the write lock held): a crash may take the last ones back, all of
	 * them or none, and bulk_end makes them durable */
	(void)sq_exec(q, "PRAGMA synchronous=NORMAL");
}

static long long wal_size(const char *wal)
{
	struct stat sb;
	return stat(wal, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* The log is cut back to wal_kept bytes on disk by the first commit after it restarts,
 * with the write lock held: from the 1 GiB a bulk leaves, an ftruncate of 0.5-0.6 s, which
 * made the import's last transaction (the one that shows its passes) hold the lock 1 s.
 * Cut here instead, wal_step at a time: each step a transaction that writes a page (the
 * log restarts), its commit trimming the file, then a gap for a waiting writer. A reader
 * still on the old log (the server's) prevents the restart: that step cuts nothing, and
 * the next commit cuts the rest, as before. */
static void sq_wal_cut(struct sq *q)
{
	const char *db = sqlite3_db_filename(q->db, "main");
	char wal[PATH_MAX];
	if (!db || snprintf(wal, sizeof(wal), "%s-wal", db) >= (int)sizeof(wal))
		return;
	long long size = wal_size(wal);
	for (long long limit = size - q->wal_step; size > 0 && limit > q->wal_kept;
	     limit -= q->wal_step) {
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA journal_size_limit=%lld", limit);
		if (sq_exec(q, pragma) != 0 || sq_exec(q, "BEGIN IMMEDIATE") != 0)
			return;
		/* a page written (an unchanged row would not be), nothing left changed */
		if (sq_exec(q, "INSERT INTO meta(key, value) VALUES('wal-cut', '');"
		               " DELETE FROM meta WHERE key = 'wal-cut'") != 0 ||
		    sq_exec(q, "COMMIT") != 0) {
			(void)sq_exec(q, "ROLLBACK");
			return;
		}
		long long now = wal_size(wal);
		q->wal_cut_steps += now >= 0 && now < size;
		size = now;
		(void)sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		const struct timespec gap = {0, 5000000L}; /* a writer waiting takes it first */
		nanosleep(&gap, NULL);
	}
}

/* The next commit syncs the log (FULL), and with it every bulk commit written before. The
 * log is copied first, here rather than by the next commit of the server's ingestion
 * (sqlite's default: past 1 000 pages), then cut back a step at a time; that commit cuts
 * what is left above wal_kept. */
static void sq_bulk_end(void *ctx)
{
	struct sq *q = ctx;
	(void)sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	sqlite3_wal_hook(q->db, NULL, NULL);
	sq_wal_cut(q);
	char pragma[128];
	snprintf(pragma, sizeof(pragma),
	         "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=1000;"
	         " PRAGMA journal_size_limit=%lld",
	         q->wal_kept ? q->wal_kept : WAL_KEPT_BYTES);
	(void)sq_exec(q, pragma);
}

/* PASSIVE: copies what no reader still needs, takes no write lock (the server's
 * ingestion commits meanwhile) and waits for nobody. */
static int sq_bulk_checkpoint(void *ctx)
{
	struct sq *q = ctx;
	if (q->wal_frames < q->wal_limit)
		return 0;
	int rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	q->wal_frames = 0; /* counted again from the next commit */
	return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : sq_err(q, rc);
}

static const struct server_store_ops sqlite_ops = {
        .begin = sq_begin,
        .begin_read = sq_begin_read,
        .commit = sq_commit,
        .rollback = sq_rollback,
        .meta_get = sq_meta_get,
        .meta_set = sq_meta_set,
        .sector_add = sq_sector_add,
        .sector_list = sq_sector_list,
        .site_add = sq_site_add,
        .site_find = sq_site_find,
        .site_get = sq_site_get,
        .device_add = sq_device_add,
        .device_find = sq_device_find,
        .device_revoke = sq_device_revoke,
        .device_health_put = sq_device_health_put,
        .device_status_list = sq_device_status_list,
        .household_add = sq_household_add,
        .household_find = sq_household_find,
        .household_each = sq_household_each,
        .household_rename = sq_household_rename,
        .household_delete = sq_household_delete,
        .household_tag_add = sq_household_tag_add,
        .household_tag_get = sq_household_tag_get,
        .pass_add = sq_pass_add,
        .pass_get = sq_pass_get,
        .pass_update = sq_pass_update,
        .pass_each = sq_pass_each,
        .pass_id_add = sq_pass_id_add,
        .pass_id_get = sq_pass_id_get,
        .pass_id_find = sq_pass_id_find,
        .right_set = sq_right_set,
        .right_add = sq_right_add,
        .right_delete = sq_right_delete,
        .rights_of_pass = sq_rights_of_pass,
        .profiles = sq_profiles,
        .profile_add = sq_profile_add,
        .list_rows = sq_list_rows,
        .list_row = sq_list_row,
        .list_changes = sq_list_changes,
        .list_changes_trim = sq_list_changes_trim,
        .usage_position = sq_usage_position,
        .usage_position_of = sq_usage_position_of,
        .consumption_expire = sq_consumption_expire,
        .consumption_rekey = sq_consumption_rekey,
        .consumption_retire = sq_consumption_retire,
        .uses_of_key = sq_uses_of_key,
        .household_name = sq_household_name,
        .pass_erase = sq_pass_erase,
        .erase_flush = sq_erase_flush,
        .list_latest = sq_list_latest,
        .list_published = sq_list_published,
        .list_version_get = sq_list_version_get,
        .list_version_put = sq_list_version_put,
        .list_file_get = sq_list_file_get,
        .list_file_put = sq_list_file_put,
        .list_files_retire = sq_list_files_retire,
        .delta_get = sq_delta_get,
        .delta_put = sq_delta_put,
        .list_prune = sq_list_prune,
        .list_files_prune = sq_list_files_prune,
        .import_open = sq_import_open,
        .import_progress = sq_import_progress,
        .import_key_get = sq_import_key_get,
        .import_key_add = sq_import_key_add,
        .import_done = sq_import_done,
        .counters = sq_counters,
        .busy_timeout = sq_busy_timeout,
        .bulk = sq_bulk,
        .bulk_checkpoint = sq_bulk_checkpoint,
        .bulk_end = sq_bulk_end,
        .ingest = sq_ingest,
        .acked = sq_acked,
        .product_known = sq_product_known,
        .consumption_discard = sq_consumption_discard,
        .counted_right = sq_counted_right,
        .stats = sq_stats,
        .last_error = sq_last_error,
        .close = sq_close,
};

/* citypass_fold(text): server_text_fold in SQL, for the 6 -> 7 migration's UPDATE. */
static void fold_sql(sqlite3_context *c, int argc, sqlite3_value **argv)
{
	(void)argc;
	const unsigned char *s = sqlite3_value_text(argv[0]);
	char key[SERVER_TEXT_MAX * 2];
	server_text_fold(s ? (const char *)s : "", key, sizeof(key));
	sqlite3_result_text(c, key, -1, SQLITE_TRANSIENT);
}

static int schema_version(struct sq *q, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "PRAGMA user_version");
	return rc ? rc : sq_one_int64(q, st, v);
}

/* Bring an older schema forward, each step in one transaction (BEGIN IMMEDIATE: a second
 * process opening at the same moment waits, then finds the work done). */
static int migrate(struct sq *q)
{
	static const char *const steps[] = {
	        NULL,
	        migrate_1_to_2,   /* 1 -> 2: usage keyed by journal epoch (issue 10) */
	        sq_schema_v3_sql, /* 2 -> 3: format 2 lists and the change log (issue 12) */
	        migrate_3_to_4,   /* 3 -> 4: usage positions, gates' health (issue 13) */
	        sq_schema_v5_sql, /* 4 -> 5: bulk import (issue 12) */
	        migrate_5_to_6,   /* 5 -> 6: consumption rows' storage time (issue 17) */
	        migrate_6_to_7,   /* 6 -> 7: holder names folded for search (issue 18) */
	        sq_schema_v8_sql, /* 7 -> 8: list files' ends beside them (issue 12) */
	        sq_schema_v9_sql, /* 8 -> 9: household names unique ignoring case */
	};
	for (;;) {
		int64_t v = 0;
		int rc = schema_version(q, &v);
		if (rc || v == SERVER_STORE_SCHEMA_VERSION)
			return rc;
		/* never downgrade: what a newer release keeps would be lost (docs/operations.md) */
		if (v > SERVER_STORE_SCHEMA_VERSION)
			return SERVER_ERR_SCHEMA_NEWER;
		if (v < 1)
			return SERVER_ERR_INVALID;
		if ((rc = sq_exec(q, "BEGIN IMMEDIATE")) != 0)
			return rc;
		rc = schema_version(q, &v);
		if (rc == 0 && v >= 1 && v < SERVER_STORE_SCHEMA_VERSION) {
			char pragma[48];
			snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%d", (int)v + 1);
			rc = sq_exec(q, steps[v]);
			if (rc == 0)
				rc = sq_exec(q, pragma);
		}
		if (rc == 0)
			rc = sq_exec(q, "COMMIT");
		if (rc) {
			(void)sq_exec(q, "ROLLBACK");
			return rc;
		}
	}
}

int server_store_open_sqlite(struct server_store *out, const char *data_dir, int create)
{
	char path[PATH_MAX];
	if (!out || !data_dir)
		return SERVER_ERR_ARG;
	if (snprintf(path, sizeof(path), "%s/%s", data_dir, SERVER_DB_FILE) >= (int)sizeof(path))
		return SERVER_ERR_ARG;
	struct stat sb;
	int exists = stat(path, &sb) == 0;
	if (create && exists)
		return SERVER_ERR_EXISTS;
	if (!create && !exists)
		return SERVER_ERR_NOT_FOUND;
	struct sq *q = calloc(1, sizeof(*q));
	if (!q)
		return SERVER_ERR_NOMEM;
	/* NOMUTEX: a connection is only ever used by the thread that opened it (the sync
	 * server opens one per thread), so sqlite's per-call mutex bought nothing and cost
	 * 8 % of a full rebuild (a lock and an unlock for every column read) */
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	if (sqlite3_open_v2(path, &q->db, flags, NULL) != SQLITE_OK) {
		sq_close(q);
		return SERVER_ERR_IO;
	}
	sq_busy_timeout(q, 10000);
	int rc = sq_exec(q, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                    " PRAGMA foreign_keys=ON;");
	if (rc == 0 && sqlite3_create_function_v2(q->db, "citypass_fold", 1,
	                                          SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
	                                          fold_sql, NULL, NULL, NULL) != SQLITE_OK)
		rc = SERVER_ERR_IO;
	if (rc == 0 && create) {
		(void)chmod(path, 0600);
		/* a new database is made at version 2 and migrated like an old one: one path */
		rc = sq_exec(q, "BEGIN");
		if (rc == 0)
			rc = sq_exec(q, sq_schema_v2_sql);
		if (rc == 0)
			rc = sq_exec(q, "PRAGMA user_version=2");
		rc = rc == 0 ? sq_exec(q, "COMMIT") : rc;
	}
	if (rc == 0)
		rc = migrate(q);
	if (rc) {
		sq_close(q);
		return rc;
	}
	out->ops = &sqlite_ops;
	out->ctx = q;
	return 0;
}

const char *server_store_strerror(struct server_store *st, int rc)
{
	/* per thread: the sync server's ingestion thread and its loop each have a store */
	static _Thread_local char buf[SERVER_WHY_MAX];
	const char *own = st && st->ops && st->ops->last_error ? st->ops->last_error(st->ctx) : "";
	/* only a failure of the database has words of its own worth reading: a refusal we
	 * made (not found, exists) is already the whole sentence */
	if (!own || !*own ||
	    (rc != SERVER_ERR_IO && rc != SERVER_ERR_BUSY && rc != SERVER_ERR_NOMEM))
		return server_strerror(rc);
	snprintf(buf, sizeof(buf), "%s (%s)", server_strerror(rc), own);
	return buf;
}

void server_store_close(struct server_store *s)
{
	if (s && s->ops) {
		s->ops->close(s->ctx);
		s->ops = NULL;
		s->ctx = NULL;
	}
}

void server_list_version_free(struct server_list_version *v)
{
	if (v) {
		free(v->head);
		free(v->manifest);
		v->head = v->manifest = NULL;
	}
}

void server_stored_list_free(struct server_stored_list *l)
{
	if (l) {
		free(l->data);
		l->data = NULL;
		l->len = 0;
	}
}
