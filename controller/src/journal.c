/*
 * controller/src/journal.c — the offline journal on sqlite (see controller/journal.h).
 *
 * Sequences are AUTOINCREMENT rowids: sqlite never reuses one, even after the rows below
 * it were acknowledged and deleted, so a sequence names one decision for ever and the
 * server can deduplicate on (device, sequence). The highest acknowledged sequence of each
 * stream is kept in `meta` in the same transaction as the deletion it causes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sqlite3.h>

#include "proto/calendar.h"
#include "controller/error.h"
#include "controller/journal.h"

/* 1: the first; 2: stat.pending, stat.epoch, consumption.epoch (issue 10);
 * 3: consumption.ack_position (issue 13). */
#define SCHEMA_VERSION 3

static const char schema[] =
        "CREATE TABLE IF NOT EXISTS stat("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " quarter_hour INTEGER NOT NULL, site INTEGER NOT NULL, gate INTEGER NOT NULL,"
        " sector INTEGER NOT NULL, product INTEGER NOT NULL, granted INTEGER NOT NULL,"
        " reason INTEGER NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,"
        " pending INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS consumption("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " tapped_at INTEGER NOT NULL, key BLOB NOT NULL, household INTEGER NOT NULL,"
        " product INTEGER NOT NULL, count INTEGER NOT NULL, period INTEGER NOT NULL,"
        " period_number INTEGER NOT NULL, acked_at INTEGER, epoch INTEGER NOT NULL DEFAULT 0,"
        " ack_position INTEGER);"
        "CREATE INDEX IF NOT EXISTS consumption_key ON consumption(key, period_number);"
        "CREATE INDEX IF NOT EXISTS consumption_household ON consumption(household, period_number)"
        " WHERE household != 0;"
        "CREATE INDEX IF NOT EXISTS consumption_tapped ON consumption(tapped_at);"
        "CREATE TABLE IF NOT EXISTS passback(key BLOB PRIMARY KEY, at INTEGER NOT NULL)"
        " WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        " WITHOUT ROWID;"
        /* issue 13: QR codes accepted here, until they could no longer pass the window (an
         * older controller ignores the table: no schema version needed) */
        "CREATE TABLE IF NOT EXISTS qr_seen(key BLOB NOT NULL, step INTEGER NOT NULL,"
        " expires INTEGER NOT NULL, PRIMARY KEY(key, step)) WITHOUT ROWID;"
        "INSERT OR IGNORE INTO meta VALUES('stat_acked', 0), ('consumption_acked', 0),"
        " ('consumption_purged_unacked', 0), ('time_floor', 0), ('list_position_version', 0),"
        " ('list_position', 0), ('sector_retention_h', 0);";

/* Version 1 journals (before issue 10) get the new columns; their rows are epoch 0, the
 * sequence space the server knew them under. */
static const char migrate_1_to_2[] =
        "ALTER TABLE stat ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE stat ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE consumption ADD COLUMN epoch INTEGER NOT NULL"
        " DEFAULT 0;";
/* Version 2 journals: acked rows have no server position (the time rule counts them). */
static const char migrate_2_to_3[] = "ALTER TABLE consumption ADD COLUMN ack_position INTEGER;";

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT_STAT,
	ST_INSERT_CONSUMPTION,
	ST_UPSERT_PASSBACK,
	ST_FETCH_STATS,
	ST_FETCH_CONSUMPTION,
	ST_META_GET,
	ST_META_SET,
	ST_MAX_SEQ,
	ST_DELETE_STATS,
	ST_ACK_CONSUMPTION,
	ST_USES_PASS,
	ST_USES_HOUSEHOLD,
	ST_LAST_GRANT,
	ST_PURGE_COUNTED,
	ST_COUNT_UNACKED_OLD,
	ST_PURGE_OLD,
	ST_PURGE_PASSBACK,
	ST_PENDING_STATS,
	ST_PENDING_CONSUMPTION,
	ST_DELETE_STATS_EPOCH,
	ST_ACK_CONSUMPTION_EPOCH,
	ST_SETTLE_DONE,
	ST_SETTLE_UNDONE,
	ST_SETTLE_ORPHANS,
	ST_REMEMBER_GRANT,
	ST_ACK_POSITION,
	ST_INSERT_QR,
	ST_QR_SEEN,
	ST_PURGE_QR,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        [ST_INSERT_STAT] = "INSERT INTO stat(quarter_hour, site, gate, sector, product, granted,"
                           " reason, epoch, pending) VALUES(?,?,?,?,?,?,?,?,?)",
        [ST_INSERT_CONSUMPTION] = "INSERT INTO consumption(tapped_at, key, household, product,"
                                  " count, period, period_number, epoch)"
                                  " VALUES(?,?,?,?,?,?,?,?)",
        [ST_UPSERT_PASSBACK] = "INSERT INTO passback(key, at) VALUES(?,?)"
                               " ON CONFLICT(key) DO UPDATE SET at = excluded.at",
        /* never a row at or after one still pending: the server acknowledges "up to" */
        [ST_FETCH_STATS] = "SELECT seq, quarter_hour, site, gate, sector, product, granted, reason,"
                           " epoch FROM stat WHERE seq < coalesce((SELECT min(seq) FROM stat"
                           " WHERE pending), 9223372036854775807) ORDER BY seq LIMIT ?",
        [ST_FETCH_CONSUMPTION] = "SELECT seq, key, product, count, period, period_number, epoch"
                                 " FROM consumption WHERE acked_at IS NULL ORDER BY seq LIMIT ?",
        [ST_META_GET] = "SELECT value FROM meta WHERE name = ?",
        [ST_META_SET] = "UPDATE meta SET value = ? WHERE name = ?",
        [ST_MAX_SEQ] = "SELECT seq FROM sqlite_sequence WHERE name = ?",
        [ST_DELETE_STATS] = "DELETE FROM stat WHERE seq <= ? AND NOT pending",
        [ST_ACK_CONSUMPTION] = "UPDATE consumption SET acked_at = ?"
                               " WHERE seq <= ? AND acked_at IS NULL",
        /* ?4 issue time, ?5 1 when the list's position is known, ?6 that position */
        [ST_USES_PASS] = "SELECT coalesce(sum(count), 0) FROM consumption WHERE key = ?1"
                         " AND period_number = ?2 AND period = ?3 AND (acked_at IS NULL OR"
                         " CASE WHEN ?5 AND ack_position IS NOT NULL THEN ack_position > ?6"
                         " ELSE acked_at >= ?4 END)",
        [ST_USES_HOUSEHOLD] = "SELECT coalesce(sum(count), 0) FROM consumption"
                              " WHERE household = ?1 AND household != 0 AND period_number = ?2"
                              " AND period = ?3 AND (acked_at IS NULL OR"
                              " CASE WHEN ?5 AND ack_position IS NOT NULL"
                              " THEN ack_position > ?6 ELSE acked_at >= ?4 END)",
        [ST_LAST_GRANT] = "SELECT at FROM passback WHERE key = ?",
        [ST_PURGE_COUNTED] = "DELETE FROM consumption WHERE acked_at IS NOT NULL AND"
                             " CASE WHEN ?2 AND ack_position IS NOT NULL"
                             " THEN ack_position <= ?3 ELSE acked_at < ?1 END",
        [ST_COUNT_UNACKED_OLD] = "SELECT count(*) FROM consumption WHERE tapped_at < ?"
                                 " AND acked_at IS NULL",
        [ST_PURGE_OLD] = "DELETE FROM consumption WHERE tapped_at < ?",
        [ST_PURGE_PASSBACK] = "DELETE FROM passback WHERE at < ?",
        [ST_PENDING_STATS] = "SELECT count(*) FROM stat",
        [ST_PENDING_CONSUMPTION] = "SELECT count(*) FROM consumption WHERE acked_at IS NULL",
        [ST_DELETE_STATS_EPOCH] = "DELETE FROM stat WHERE epoch = ? AND seq <= ? AND NOT pending",
        [ST_ACK_CONSUMPTION_EPOCH] = "UPDATE consumption SET acked_at = ? WHERE epoch = ?"
                                     " AND seq <= ? AND acked_at IS NULL",
        [ST_SETTLE_DONE] = "UPDATE stat SET pending = 0 WHERE seq = ? AND pending",
        [ST_SETTLE_UNDONE] = "DELETE FROM stat WHERE seq = ? AND pending",
        [ST_SETTLE_ORPHANS] = "UPDATE stat SET pending = 0 WHERE pending",
        [ST_ACK_POSITION] = "UPDATE consumption SET ack_position = ? WHERE epoch = ?"
                            " AND seq <= ? AND acked_at IS NOT NULL AND ack_position IS NULL",
        [ST_REMEMBER_GRANT] = "INSERT INTO passback(key, at) VALUES(?,?) ON CONFLICT(key)"
                              " DO UPDATE SET at = max(at, excluded.at)",
        [ST_INSERT_QR] = "INSERT OR IGNORE INTO qr_seen(key, step, expires) VALUES(?,?,?)",
        [ST_QR_SEEN] = "SELECT count(*) FROM qr_seen WHERE key = ? AND step = ? AND expires >= ?",
        [ST_PURGE_QR] = "DELETE FROM qr_seen WHERE expires < ?",
};

struct controller_journal {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	/* This connection's epoch: the rows it appends are numbered (epoch, seq). A journal
	 * restored from an older copy reuses sequences the server already holds, a wiped one
	 * restarts them at 1; a fresh epoch per open keeps every decision's name unique for
	 * the server's deduplication (docs/controller.md, "A lost or restored journal"). */
	int64_t epoch;
	int wal_frames;  /* WAL frames after this connection's last commit (deferred checkpoints) */
	char error[200]; /* sqlite's sentence behind the last CONTROLLER_ERR_SQLITE */
	char sentence[256]; /* controller_journal_strerror's */
};

/* --- statement helpers ---------------------------------------------------------------- */

static sqlite3_stmt *stmt(struct controller_journal *j, enum stmt s)
{
	sqlite3_reset(j->st[s]);
	sqlite3_clear_bindings(j->st[s]);
	return j->st[s];
}

/* CONTROLLER_ERR_SQLITE, with sqlite's own sentence kept for controller_journal_error():
 * it is gone from the connection once the next statement (a ROLLBACK) has run. */
static int sq_failed(struct controller_journal *j)
{
	snprintf(j->error, sizeof(j->error), "%s", sqlite3_errmsg(j->db));
	return CONTROLLER_ERR_SQLITE;
}

static int step_done(struct controller_journal *j, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : sq_failed(j);
}

/* A one-row, one-integer query; *v = 0 when it yields no row. */
static int step_int(struct controller_journal *j, sqlite3_stmt *s, int64_t *v)
{
	int rc = sqlite3_step(s);
	*v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : sq_failed(j);
}

static int begin(struct controller_journal *j)
{
	return step_done(j, stmt(j, ST_BEGIN));
}

static int finish(struct controller_journal *j, int rc)
{
	if (rc == 0 && (rc = step_done(j, stmt(j, ST_COMMIT))) == 0)
		return 0;
	if (!sqlite3_get_autocommit(j->db))
		step_done(j, stmt(j, ST_ROLLBACK));
	return rc;
}

static int meta_get(struct controller_journal *j, const char *name, int64_t *v)
{
	sqlite3_stmt *s = stmt(j, ST_META_GET);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	return step_int(j, s, v);
}

static int meta_set(struct controller_journal *j, const char *name, int64_t v)
{
	sqlite3_stmt *s = stmt(j, ST_META_SET);
	sqlite3_bind_int64(s, 1, v);
	sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
	return step_done(j, s);
}

static int max_seq(struct controller_journal *j, const char *table, int64_t *v)
{
	sqlite3_stmt *s = stmt(j, ST_MAX_SEQ);
	sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
	return step_int(j, s, v);
}

/* --- open / close --------------------------------------------------------------------- */

static int configure(struct controller_journal *j)
{
	/* WAL: readers (the uploader) never block the writer (the reader loop).
	 * synchronous=FULL: the WAL is fsynced at every commit, so an append that returned
	 * survives power loss, not only a process crash. */
	static const char pragmas[] = "PRAGMA journal_mode=WAL;"
	                              "PRAGMA synchronous=FULL;"
	                              "PRAGMA foreign_keys=OFF;";
	sqlite3_busy_timeout(j->db, 5000);
	if (sqlite3_exec(j->db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
		return sq_failed(j);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return sq_failed(j);
	int64_t version;
	int rc = step_int(j, s, &version);
	sqlite3_finalize(s);
	if (rc)
		return rc;
	if (version < 0 || version > SCHEMA_VERSION) {
		/* a newer release's journal: migrating it back would lose what that release keeps,
		 * and writing into it blindly could corrupt its unsent rows (docs/operations.md) */
		snprintf(j->error, sizeof(j->error),
		         "its schema version is %lld, this citypass-controller knows up to %d: run "
		         "the release that wrote it",
		         (long long)version, SCHEMA_VERSION);
		return CONTROLLER_ERR_SCHEMA;
	}
	if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sq_failed(j);
	if ((version == 1 && sqlite3_exec(j->db, migrate_1_to_2, NULL, NULL, NULL) != SQLITE_OK) ||
	    ((version == 1 || version == 2) &&
	     sqlite3_exec(j->db, migrate_2_to_3, NULL, NULL, NULL) != SQLITE_OK) ||
	    sqlite3_exec(j->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(j->db, "PRAGMA user_version=3", NULL, NULL, NULL) != SQLITE_OK) {
		int failed = sq_failed(j); /* before the ROLLBACK replaces sqlite's sentence */
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
		return failed;
	}
	if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return sq_failed(j);
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i],
		                       NULL) != SQLITE_OK)
			return sq_failed(j);
	uint64_t e = 0;
	if (getrandom(&e, sizeof(e), 0) != (ssize_t)sizeof(e))
		return CONTROLLER_ERR_IO;
	j->epoch = (int64_t)(e >> 1) | 1; /* positive, never 0 (0: rows of a version 1 journal) */
	return 0;
}

int controller_journal_open_why(struct controller_journal **out, const char *path, char *why,
                                size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (!out || !path)
		return CONTROLLER_ERR_ARG;
	*out = NULL;
	struct controller_journal *j = calloc(1, sizeof(*j));
	if (!j)
		return CONTROLLER_ERR_NOMEM;
	int rc = sqlite3_open_v2(path, &j->db,
	                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                         NULL) == SQLITE_OK
	                 ? configure(j)
	                 : sq_failed(j);
	if (rc) {
		if ((rc == CONTROLLER_ERR_SQLITE || rc == CONTROLLER_ERR_SCHEMA) && why && whylen)
			snprintf(why, whylen, "%s", j->error);
		controller_journal_close(j);
		return rc;
	}
	*out = j;
	return 0;
}

int controller_journal_open(struct controller_journal **out, const char *path)
{
	return controller_journal_open_why(out, path, NULL, 0);
}

const char *controller_journal_error(const struct controller_journal *j)
{
	return j && j->error[0] ? j->error : "no sqlite error";
}

const char *controller_journal_strerror(struct controller_journal *j, int rc)
{
	if (rc != CONTROLLER_ERR_SQLITE || !j || !j->error[0])
		return controller_strerror(rc);
	snprintf(j->sentence, sizeof(j->sentence), "%s: %s", controller_strerror(rc), j->error);
	return j->sentence;
}

void controller_journal_close(struct controller_journal *j)
{
	if (!j)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(j->st[i]);
	sqlite3_close(j->db);
	free(j);
}

/* --- appending ------------------------------------------------------------------------ */

static int64_t quarter_hour(int64_t t)
{
	int64_t r = t % CONTROLLER_QUARTER_HOUR;
	return t - (r < 0 ? r + CONTROLLER_QUARTER_HOUR : r);
}

static int insert_event(struct controller_journal *j, const struct controller_event *ev,
                        struct controller_journal_seq *seq)
{
	sqlite3_stmt *s = stmt(j, ST_INSERT_STAT);
	sqlite3_bind_int64(s, 1, quarter_hour(ev->at));
	sqlite3_bind_int64(s, 2, ev->site);
	sqlite3_bind_int64(s, 3, ev->gate);
	sqlite3_bind_int(s, 4, ev->sector);
	sqlite3_bind_int(s, 5, ev->product);
	sqlite3_bind_int(s, 6, ev->granted);
	sqlite3_bind_int(s, 7, ev->reason);
	sqlite3_bind_int64(s, 8, j->epoch);
	sqlite3_bind_int(s, 9, ev->pending);
	int rc = step_done(j, s);
	if (rc)
		return rc;
	if (seq)
		seq->stat = (uint64_t)sqlite3_last_insert_rowid(j->db);
	if (ev->consumes) {
		s = stmt(j, ST_INSERT_CONSUMPTION);
		sqlite3_bind_int64(s, 1, ev->at);
		sqlite3_bind_blob(s, 2, ev->key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(s, 3, ev->household);
		sqlite3_bind_int(s, 4, ev->product);
		sqlite3_bind_int(s, 5, ev->count ? ev->count : 1);
		sqlite3_bind_int(s, 6, ev->period);
		sqlite3_bind_int64(s, 7, ev->period_number);
		sqlite3_bind_int64(s, 8, j->epoch);
		if ((rc = step_done(j, s)))
			return rc;
		if (seq)
			seq->consumption = (uint64_t)sqlite3_last_insert_rowid(j->db);
	}
	if (ev->qr) { /* this code is used: in this transaction, so never acted on unrecorded */
		s = stmt(j, ST_INSERT_QR);
		sqlite3_bind_blob(s, 1, ev->key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, ev->qr_step);
		sqlite3_bind_int64(s, 3, ev->qr_expires);
		if ((rc = step_done(j, s)))
			return rc;
	}
	if (ev->remember_grant && !ev->pending) { /* a pending grant is remembered when settled */
		s = stmt(j, ST_UPSERT_PASSBACK);
		sqlite3_bind_blob(s, 1, ev->key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, ev->at);
		rc = step_done(j, s);
	}
	return rc;
}

int controller_journal_append(struct controller_journal *j, const struct controller_event *ev,
                              struct controller_journal_seq *seq)
{
	if (!j || !ev || (ev->pending && ev->consumes))
		return CONTROLLER_ERR_ARG;
	struct controller_journal_seq got = {0, 0};
	int rc = begin(j);
	if (rc)
		return rc;
	rc = finish(j, insert_event(j, ev, &got));
	if (!rc && seq)
		*seq = got;
	return rc;
}

int controller_journal_append_many(struct controller_journal *j, const struct controller_event *ev,
                                   size_t n)
{
	if (!j || (!ev && n))
		return CONTROLLER_ERR_ARG;
	int rc = begin(j);
	for (size_t i = 0; !rc && i < n; i++)
		rc = insert_event(j, &ev[i], NULL);
	return finish(j, rc);
}

/* --- upload --------------------------------------------------------------------------- */

int controller_journal_fetch_stats(struct controller_journal *j, struct controller_stat_row *rows,
                                   size_t max, size_t *n)
{
	if (!j || !n || (!rows && max))
		return CONTROLLER_ERR_ARG;
	sqlite3_stmt *s = stmt(j, ST_FETCH_STATS);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
	size_t k = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct controller_stat_row *r = &rows[k++];
		r->seq = (uint64_t)sqlite3_column_int64(s, 0);
		r->quarter_hour = sqlite3_column_int64(s, 1);
		r->site = (uint32_t)sqlite3_column_int64(s, 2);
		r->gate = (uint32_t)sqlite3_column_int64(s, 3);
		r->sector = (uint16_t)sqlite3_column_int(s, 4);
		r->product = (uint16_t)sqlite3_column_int(s, 5);
		r->granted = sqlite3_column_int(s, 6) != 0;
		r->reason = (uint8_t)sqlite3_column_int(s, 7);
		r->epoch = sqlite3_column_int64(s, 8);
	}
	sqlite3_reset(s);
	*n = k;
	return rc == SQLITE_DONE ? 0 : sq_failed(j);
}

int controller_journal_fetch_consumption(struct controller_journal *j,
                                         struct controller_consumption_row *rows, size_t max,
                                         size_t *n)
{
	if (!j || !n || (!rows && max))
		return CONTROLLER_ERR_ARG;
	sqlite3_stmt *s = stmt(j, ST_FETCH_CONSUMPTION);
	sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
	size_t k = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct controller_consumption_row *r = &rows[k++];
		r->seq = (uint64_t)sqlite3_column_int64(s, 0);
		memset(r->key, 0, sizeof(r->key));
		if (sqlite3_column_bytes(s, 1) == PROTO_LIST_KEY_LEN)
			memcpy(r->key, sqlite3_column_blob(s, 1), PROTO_LIST_KEY_LEN);
		r->product = (uint16_t)sqlite3_column_int(s, 2);
		r->count = (uint8_t)sqlite3_column_int(s, 3);
		r->period = (uint8_t)sqlite3_column_int(s, 4);
		r->period_number = sqlite3_column_int64(s, 5);
		r->epoch = sqlite3_column_int64(s, 6);
	}
	sqlite3_reset(s);
	*n = k;
	return rc == SQLITE_DONE ? 0 : sq_failed(j);
}

int controller_journal_ack(struct controller_journal *j, enum controller_stream stream,
                           uint64_t seq, int64_t now)
{
	if (!j || (stream != CONTROLLER_STREAM_STATS && stream != CONTROLLER_STREAM_CONSUMPTION))
		return CONTROLLER_ERR_ARG;
	bool stats = stream == CONTROLLER_STREAM_STATS;
	const char *mark = stats ? "stat_acked" : "consumption_acked";
	int64_t acked, issued;
	int rc = begin(j);
	if (!rc)
		rc = meta_get(j, mark, &acked);
	if (!rc)
		rc = max_seq(j, stats ? "stat" : "consumption", &issued);
	if (!rc && seq > (uint64_t)issued)
		rc = CONTROLLER_ERR_ARG;
	if (!rc && seq > (uint64_t)acked) {
		sqlite3_stmt *s = stmt(j, stats ? ST_DELETE_STATS : ST_ACK_CONSUMPTION);
		if (stats) {
			sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
		} else {
			sqlite3_bind_int64(s, 1, now);
			sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
		}
		rc = step_done(j, s);
		if (!rc)
			rc = meta_set(j, mark, (int64_t)seq);
	}
	return finish(j, rc);
}

int controller_journal_ack_epoch(struct controller_journal *j, enum controller_stream stream,
                                 int64_t epoch, uint64_t seq, int64_t now, uint64_t *changed)
{
	if (!j || (stream != CONTROLLER_STREAM_STATS && stream != CONTROLLER_STREAM_CONSUMPTION) ||
	    seq > INT64_MAX)
		return CONTROLLER_ERR_ARG;
	bool stats = stream == CONTROLLER_STREAM_STATS;
	const char *mark = stats ? "stat_acked" : "consumption_acked";
	int rc = begin(j);
	if (!rc) {
		sqlite3_stmt *s = stmt(j, stats ? ST_DELETE_STATS_EPOCH : ST_ACK_CONSUMPTION_EPOCH);
		if (stats) {
			sqlite3_bind_int64(s, 1, epoch);
			sqlite3_bind_int64(s, 2, (sqlite3_int64)seq);
		} else {
			sqlite3_bind_int64(s, 1, now);
			sqlite3_bind_int64(s, 2, epoch);
			sqlite3_bind_int64(s, 3, (sqlite3_int64)seq);
		}
		rc = step_done(j, s);
	}
	if (!rc && changed)
		*changed = (uint64_t)sqlite3_changes(j->db);
	/* informational (Hello, stats): the last acknowledged sequence, whatever its epoch */
	if (!rc)
		rc = meta_set(j, mark, (int64_t)seq);
	return finish(j, rc);
}

int64_t controller_journal_epoch(const struct controller_journal *j)
{
	return j ? j->epoch : 0;
}

int controller_journal_time_floor(struct controller_journal *j, int64_t *t)
{
	if (!j || !t)
		return CONTROLLER_ERR_ARG;
	return meta_get(j, "time_floor", t);
}

int controller_journal_set_time_floor(struct controller_journal *j, int64_t t)
{
	if (!j)
		return CONTROLLER_ERR_ARG;
	int64_t old = 0;
	int rc = begin(j);
	if (!rc)
		rc = meta_get(j, "time_floor", &old);
	if (!rc && t > old)
		rc = meta_set(j, "time_floor", t);
	return finish(j, rc);
}

int controller_journal_sector_retention(struct controller_journal *j, uint32_t *hours)
{
	if (!j || !hours)
		return CONTROLLER_ERR_ARG;
	int64_t v = 0;
	int rc = meta_get(j, "sector_retention_h", &v);
	*hours = rc == 0 && v > 0 && v <= UINT32_MAX ? (uint32_t)v : 0;
	return rc;
}

int controller_journal_set_sector_retention(struct controller_journal *j, uint32_t hours)
{
	if (!j)
		return CONTROLLER_ERR_ARG;
	int rc = begin(j);
	if (!rc)
		rc = meta_set(j, "sector_retention_h", hours);
	return finish(j, rc);
}

/* --- a decision whose action is not yet done (a card debit) ----------------------------- */

int controller_journal_settle(struct controller_journal *j, uint64_t stat_seq,
                              const struct controller_event *ev, bool done)
{
	if (!j || !ev || stat_seq == 0)
		return CONTROLLER_ERR_ARG;
	/* Done: the gate opens right after, and a pending row found at the next start is
	 * taken as done anyway (controller_journal_settle_orphans), so this commit need not
	 * wait for the disk. Undone: a row that must never reach the server, on disk now. */
	if (done && sqlite3_exec(j->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
		return sq_failed(j);
	int rc = begin(j);
	sqlite3_stmt *s;
	if (!rc) {
		s = stmt(j, done ? ST_SETTLE_DONE : ST_SETTLE_UNDONE);
		sqlite3_bind_int64(s, 1, (sqlite3_int64)stat_seq);
		rc = step_done(j, s);
	}
	if (!rc && done && ev->remember_grant) {
		s = stmt(j, ST_UPSERT_PASSBACK);
		sqlite3_bind_blob(s, 1, ev->key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, ev->at);
		rc = step_done(j, s);
	}
	rc = finish(j, rc);
	if (done && sqlite3_exec(j->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK &&
	    rc == 0)
		rc = sq_failed(j);
	return rc;
}

int controller_journal_settle_orphans(struct controller_journal *j, uint64_t *n)
{
	if (!j)
		return CONTROLLER_ERR_ARG;
	int rc = begin(j);
	if (!rc)
		rc = step_done(j, stmt(j, ST_SETTLE_ORPHANS));
	if (!rc && n)
		*n = (uint64_t)sqlite3_changes(j->db);
	return finish(j, rc);
}

/* --- what the engine needs ------------------------------------------------------------ */

/* Whether the server said which uses the held list reflects, and up to where. */
static int list_position(struct controller_journal *j, const struct controller_list_mark *list,
                         int *known, int64_t *position)
{
	int64_t version = 0;
	*known = 0;
	*position = 0;
	int rc = meta_get(j, "list_position_version", &version);
	if (!rc)
		rc = meta_get(j, "list_position", position);
	if (!rc && list->version != 0 && (uint64_t)version == list->version && *position > 0)
		*known = 1;
	return rc;
}

int controller_journal_local_uses(struct controller_journal *j,
                                  const uint8_t key[PROTO_LIST_KEY_LEN], uint32_t household,
                                  uint8_t scope, uint8_t period, int64_t period_number,
                                  const struct controller_list_mark *list, uint32_t *uses)
{
	if (!j || !key || !uses || !list)
		return CONTROLLER_ERR_ARG;
	int known;
	int64_t position;
	int rc = list_position(j, list, &known, &position);
	if (rc)
		return rc;
	bool by_household = scope == PROTO_SCOPE_HOUSEHOLD && household != 0;
	sqlite3_stmt *s = stmt(j, by_household ? ST_USES_HOUSEHOLD : ST_USES_PASS);
	if (by_household)
		sqlite3_bind_int64(s, 1, household);
	else
		sqlite3_bind_blob(s, 1, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, period_number);
	sqlite3_bind_int(s, 3, period);
	sqlite3_bind_int64(s, 4, list->issued_at);
	sqlite3_bind_int(s, 5, known);
	sqlite3_bind_int64(s, 6, position);
	int64_t v;
	rc = step_int(j, s, &v);
	*uses = rc ? 0 : (v > UINT32_MAX ? UINT32_MAX : (uint32_t)v);
	return rc;
}

int controller_journal_ack_position(struct controller_journal *j, int64_t epoch, uint64_t seq,
                                    uint64_t position)
{
	if (!j || seq > INT64_MAX || position > INT64_MAX)
		return CONTROLLER_ERR_ARG;
	if (position == 0)
		return 0;
	sqlite3_stmt *s = stmt(j, ST_ACK_POSITION);
	sqlite3_bind_int64(s, 1, (int64_t)position);
	sqlite3_bind_int64(s, 2, epoch);
	sqlite3_bind_int64(s, 3, (int64_t)seq);
	return step_done(j, s);
}

int controller_journal_set_list_position(struct controller_journal *j, uint64_t version,
                                         uint64_t position)
{
	if (!j || version > INT64_MAX || position > INT64_MAX)
		return CONTROLLER_ERR_ARG;
	/* This commit need not wait for the disk: it is in the way of every list install
	 * (an fsync, 1 to 10 ms on the bench's disk, half of the install's budget). A power
	 * cut may lose it: then the position kept names an older version than the list held,
	 * and the held list falls back to the time rule (list_position) — as it does anyway
	 * after a cut between this commit and the install's. The next commit that waits for
	 * the disk (a decision's append, an ack) takes it to disk with its own. */
	if (sqlite3_exec(j->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK)
		return sq_failed(j);
	int rc = begin(j);
	if (!rc)
		rc = meta_set(j, "list_position_version", (int64_t)version);
	if (!rc)
		rc = meta_set(j, "list_position", (int64_t)position);
	rc = finish(j, rc);
	if (sqlite3_exec(j->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK &&
	    rc == 0)
		rc = sq_failed(j);
	return rc;
}

int controller_journal_last_grant(struct controller_journal *j,
                                  const uint8_t key[PROTO_LIST_KEY_LEN], int64_t *at)
{
	if (!j || !key || !at)
		return CONTROLLER_ERR_ARG;
	sqlite3_stmt *s = stmt(j, ST_LAST_GRANT);
	sqlite3_bind_blob(s, 1, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	return step_int(j, s, at);
}

int controller_journal_counters(struct controller_journal *j, const struct controller_pass *pass,
                                const struct controller_list_mark *list, int32_t today,
                                struct controller_local_counters *out)
{
	if (!j || !pass || !out || !list)
		return CONTROLLER_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if (!pass->found)
		return 0;
	const struct proto_rights_profile *p = &pass->profile;
	int rc = controller_journal_last_grant(j, pass->entry.key, &out->last_grant_at);
	if (rc || p->period == PROTO_PERIOD_NONE)
		return rc;
	return controller_journal_local_uses(j, pass->entry.key, pass->entry.household, p->scope,
	                                     p->period, proto_period_number(p->period, today), list,
	                                     &out->uses);
}

/* --- housekeeping --------------------------------------------------------------------- */

int controller_journal_purge(struct controller_journal *j, int64_t now,
                             const struct controller_list_mark *list, uint32_t retention_s,
                             uint32_t antipassback_minutes)
{
	if (!j || !list)
		return CONTROLLER_ERR_ARG;
	int known;
	int64_t position;
	int prc = list_position(j, list, &known, &position);
	if (prc)
		return prc;
	int64_t horizon = now - (retention_s ? (int64_t)retention_s
	                                     : (int64_t)CONTROLLER_RETENTION_DAYS_DEFAULT * 86400);
	int64_t lost = 0, purged_before;
	int rc = begin(j);
	sqlite3_stmt *s;
	if (!rc) {
		s = stmt(j, ST_PURGE_COUNTED);
		sqlite3_bind_int64(s, 1, list->issued_at);
		sqlite3_bind_int(s, 2, known);
		sqlite3_bind_int64(s, 3, position);
		rc = step_done(j, s);
	}
	if (!rc) {
		s = stmt(j, ST_COUNT_UNACKED_OLD);
		sqlite3_bind_int64(s, 1, horizon);
		rc = step_int(j, s, &lost);
	}
	if (!rc) {
		s = stmt(j, ST_PURGE_OLD);
		sqlite3_bind_int64(s, 1, horizon);
		rc = step_done(j, s);
	}
	if (!rc && lost > 0 && !(rc = meta_get(j, "consumption_purged_unacked", &purged_before)))
		rc = meta_set(j, "consumption_purged_unacked", purged_before + lost);
	if (!rc) {
		/* Anti-passback rows live only as long as the window they serve, and never
		 * beyond retention whatever the window. */
		int64_t apb_horizon = now - (int64_t)antipassback_minutes * 60;
		s = stmt(j, ST_PURGE_PASSBACK);
		sqlite3_bind_int64(s, 1, apb_horizon > horizon ? apb_horizon : horizon);
		rc = step_done(j, s);
	}
	if (!rc) { /* a QR code past its window cannot be replayed: it is forgotten */
		s = stmt(j, ST_PURGE_QR);
		sqlite3_bind_int64(s, 1, now);
		rc = step_done(j, s);
	}
	return finish(j, rc);
}

/* sqlite's wal_autocheckpoint threshold, which a deferring connection keeps, at idle */
#define CHECKPOINT_FRAMES 1000

static int wal_frames_seen(void *ctx, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct controller_journal *)ctx)->wal_frames = frames;
	return SQLITE_OK;
}

int controller_journal_defer_checkpoints(struct controller_journal *j)
{
	if (!j)
		return CONTROLLER_ERR_ARG;
	/* replaces sqlite's own hook (the autocheckpoint): the count is kept, nothing done */
	sqlite3_wal_hook(j->db, wal_frames_seen, j);
	return 0;
}

int controller_journal_checkpoint_due(struct controller_journal *j)
{
	if (!j)
		return CONTROLLER_ERR_ARG;
	if (j->wal_frames < CHECKPOINT_FRAMES)
		return 0;
	int rc = sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		return sq_failed(j);
	j->wal_frames = 0;
	return 0;
}

int controller_journal_remember_grant(struct controller_journal *j,
                                      const uint8_t key[PROTO_LIST_KEY_LEN], int64_t at)
{
	if (!j || !key)
		return CONTROLLER_ERR_ARG;
	sqlite3_stmt *s = stmt(j, ST_REMEMBER_GRANT);
	sqlite3_bind_blob(s, 1, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, at);
	return step_done(j, s);
}

int controller_journal_qr_seen(struct controller_journal *j, const uint8_t key[PROTO_LIST_KEY_LEN],
                               uint32_t step, int64_t now, bool *seen)
{
	if (!j || !key || !seen)
		return CONTROLLER_ERR_ARG;
	sqlite3_stmt *s = stmt(j, ST_QR_SEEN);
	sqlite3_bind_blob(s, 1, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, step);
	sqlite3_bind_int64(s, 3, now);
	int64_t n = 0;
	int rc = step_int(j, s, &n);
	*seen = n > 0;
	return rc;
}

int controller_journal_stats(struct controller_journal *j, struct controller_journal_stats *st)
{
	if (!j || !st)
		return CONTROLLER_ERR_ARG;
	int64_t v[5];
	int rc = step_int(j, stmt(j, ST_PENDING_STATS), &v[0]);
	if (!rc)
		rc = step_int(j, stmt(j, ST_PENDING_CONSUMPTION), &v[1]);
	if (!rc)
		rc = meta_get(j, "stat_acked", &v[2]);
	if (!rc)
		rc = meta_get(j, "consumption_acked", &v[3]);
	if (!rc)
		rc = meta_get(j, "consumption_purged_unacked", &v[4]);
	if (rc)
		return rc;
	st->stat_pending = (uint64_t)v[0];
	st->consumption_pending = (uint64_t)v[1];
	st->stat_acked = (uint64_t)v[2];
	st->consumption_acked = (uint64_t)v[3];
	st->consumption_purged_unacked = (uint64_t)v[4];
	return 0;
}
