/*
 * store_sqlite_lists.c — what the list publisher needs from the sqlite store: the sector's
 * profiles and list rows, the change log that makes publishing O(changes), and the
 * published versions with their chunk files and deltas (server/store.h, server/publish.h).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite_internal.h"

/*
 * Schema version 3. The change log is written by triggers, so that no code path that
 * changes what a list entry shows can forget to log it: a right set, changed or removed;
 * a pass's state or household; a household tag; a consumption row stored, moved to a new
 * card or expired (for a household quota: every member's key, since they share the sum).
 */
/* clang-format off */
const char sq_schema_v3_sql[] =
	"CREATE TABLE list_versions(sector INTEGER NOT NULL, version INTEGER NOT NULL,"
	" issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, head BLOB NOT NULL,"
	" manifest BLOB NOT NULL, sig BLOB NOT NULL, PRIMARY KEY(sector, version));"
	/* until: the version that replaced the file (NULL while current) */
	"CREATE TABLE list_files(sector INTEGER NOT NULL, chunk INTEGER NOT NULL,"
	" since INTEGER NOT NULL, kind INTEGER NOT NULL, until INTEGER, data BLOB NOT NULL,"
	" PRIMARY KEY(sector, chunk, since, kind));"
	"CREATE INDEX list_files_until ON list_files(sector, until);"
	"CREATE TABLE list_log(id INTEGER PRIMARY KEY, sector INTEGER NOT NULL,"
	" listkey BLOB NOT NULL);"
	"CREATE INDEX list_log_sector ON list_log(sector, id);"
	/* bulk import: what a line of a file already created (admin_import.c) */
	"CREATE TABLE pass_imports(key BLOB PRIMARY KEY, pass INTEGER NOT NULL"
	" REFERENCES passes(id)) WITHOUT ROWID;"
	/* the pass lookups the log triggers and the household quotas make */
	"CREATE INDEX rights_pass_scope ON rights(pass, scope);"
	/* format 1 lists are not served any more: keep their last version number only, so
	 * that format 2 numbering goes on from it and a gate never sees its version go back */
	"INSERT OR REPLACE INTO meta(key, value) SELECT 'list_v1_latest.' || sector,"
	" MAX(version) FROM lists GROUP BY sector;"
	"DROP TABLE lists;"
	"DELETE FROM deltas;"

	"CREATE TRIGGER list_log_right_ins AFTER INSERT ON rights BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT NEW.sector, listkey FROM pass_ids"
	"  WHERE pass = NEW.pass AND sector = NEW.sector;"
	" END;"
	"CREATE TRIGGER list_log_right_upd AFTER UPDATE ON rights BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT sector, listkey FROM pass_ids"
	"  WHERE (pass = OLD.pass AND sector = OLD.sector) OR (pass = NEW.pass AND sector = NEW.sector);"
	" END;"
	"CREATE TRIGGER list_log_right_del AFTER DELETE ON rights BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT OLD.sector, listkey FROM pass_ids"
	"  WHERE pass = OLD.pass AND sector = OLD.sector;"
	" END;"
	"CREATE TRIGGER list_log_id_ins AFTER INSERT ON pass_ids BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT NEW.sector, NEW.listkey"
	"  WHERE EXISTS (SELECT 1 FROM rights WHERE pass = NEW.pass AND sector = NEW.sector);"
	" END;"
	"CREATE TRIGGER list_log_pass_upd AFTER UPDATE OF state, household ON passes"
	" WHEN OLD.state IS NOT NEW.state OR OLD.household IS NOT NEW.household BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT pi.sector, pi.listkey FROM rights r"
	"  JOIN pass_ids pi ON pi.pass = r.pass AND pi.sector = r.sector WHERE r.pass = NEW.id;"
	/* a household changed: the other members' shared sums change too */
	" INSERT INTO list_log(sector, listkey) SELECT pi.sector, pi.listkey FROM passes m"
	"  JOIN rights r ON r.pass = m.id AND r.scope = 1"
	"  JOIN pass_ids pi ON pi.pass = m.id AND pi.sector = r.sector"
	"  WHERE OLD.household IS NOT NEW.household AND m.id != NEW.id"
	"  AND m.household IN (OLD.household, NEW.household);"
	" END;"
	"CREATE TRIGGER list_log_tag_ins AFTER INSERT ON household_tags BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT NEW.sector, pi.listkey FROM passes m"
	"  JOIN pass_ids pi ON pi.pass = m.id AND pi.sector = NEW.sector"
	"  JOIN rights r ON r.pass = m.id AND r.sector = NEW.sector"
	"  WHERE m.household = NEW.household;"
	" END;"
	"CREATE TRIGGER list_log_cons_ins AFTER INSERT ON consumption BEGIN"
	" INSERT INTO list_log(sector, listkey) VALUES(NEW.sector, NEW.pseudonym);"
	" INSERT INTO list_log(sector, listkey) SELECT NEW.sector, p2.listkey FROM pass_ids p1"
	"  JOIN passes pp ON pp.id = p1.pass JOIN passes m ON m.household = pp.household"
	"  JOIN pass_ids p2 ON p2.pass = m.id AND p2.sector = NEW.sector"
	"  WHERE p1.sector = NEW.sector AND p1.listkey = NEW.pseudonym AND m.id != pp.id;"
	" END;"
	"CREATE TRIGGER list_log_cons_del AFTER DELETE ON consumption BEGIN"
	" INSERT INTO list_log(sector, listkey) VALUES(OLD.sector, OLD.pseudonym);"
	" INSERT INTO list_log(sector, listkey) SELECT OLD.sector, p2.listkey FROM pass_ids p1"
	"  JOIN passes pp ON pp.id = p1.pass JOIN passes m ON m.household = pp.household"
	"  JOIN pass_ids p2 ON p2.pass = m.id AND p2.sector = OLD.sector"
	"  WHERE p1.sector = OLD.sector AND p1.listkey = OLD.pseudonym AND m.id != pp.id;"
	" END;"
	"CREATE TRIGGER list_log_cons_upd AFTER UPDATE OF pseudonym ON consumption BEGIN"
	" INSERT INTO list_log(sector, listkey) VALUES(OLD.sector, OLD.pseudonym);"
	" INSERT INTO list_log(sector, listkey) VALUES(NEW.sector, NEW.pseudonym);"
	" END;";

/*
 * Schema version 5: bulk import (admin_import.c). An import's passes are listed once it is
 * done, all at once: until then the log triggers leave them out (import_done logs them, or
 * asks for a rebuild), and so do the list queries. (pass_imports, what a line of a file
 * already created, came with version 3.)
 */
#define NOT_IMPORTING(pass)                                                                   \
	" NOT EXISTS (SELECT 1 FROM passes ip JOIN imports ii ON ii.id = ip.import_id"         \
	" WHERE ip.id = " pass " AND ii.done = 0)"
const char sq_schema_v5_sql[] =
	"CREATE TABLE imports(id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL, started INTEGER"
	" NOT NULL, lines INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX imports_file ON imports(sha256);"
	"ALTER TABLE passes ADD COLUMN import_id INTEGER REFERENCES imports(id);"
	"CREATE INDEX passes_import ON passes(import_id) WHERE import_id IS NOT NULL;"
	"DROP TRIGGER list_log_right_ins;"
	"CREATE TRIGGER list_log_right_ins AFTER INSERT ON rights WHEN" NOT_IMPORTING("NEW.pass")
	" BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT NEW.sector, listkey FROM pass_ids"
	"  WHERE pass = NEW.pass AND sector = NEW.sector;"
	" END;"
	"DROP TRIGGER list_log_id_ins;"
	"CREATE TRIGGER list_log_id_ins AFTER INSERT ON pass_ids WHEN" NOT_IMPORTING("NEW.pass")
	" BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT NEW.sector, NEW.listkey"
	"  WHERE EXISTS (SELECT 1 FROM rights WHERE pass = NEW.pass AND sector = NEW.sector);"
	" END;"
	"DROP TRIGGER list_log_tag_ins;"
	"CREATE TRIGGER list_log_tag_ins AFTER INSERT ON household_tags BEGIN"
	" INSERT INTO list_log(sector, listkey) SELECT NEW.sector, pi.listkey FROM passes m"
	"  JOIN pass_ids pi ON pi.pass = m.id AND pi.sector = NEW.sector"
	"  JOIN rights r ON r.pass = m.id AND r.sector = NEW.sector"
	"  WHERE m.household = NEW.household AND" NOT_IMPORTING("m.id") ";"
	" END;";

/*
 * Schema version 8: when a list file was replaced (`until`) is kept beside it, not in its
 * row. sqlite rewrites a whole record, blob and overflow pages included, when an UPDATE
 * changes its size, as NULL -> a version number does: retiring every file of a full
 * rebuild rewrote the whole list (7.5 MiB at 500 000 passes, 75 MiB at 5 M) inside the
 * version's transaction, a third of the rebuild and that long a write lock. A file written
 * again is current again, and a file gone takes its end with it: the triggers say so once.
 * (DROP COLUMN rewrites list_files once, at the upgrade.)
 */
const char sq_schema_v8_sql[] =
	"CREATE TABLE list_file_ends(sector INTEGER NOT NULL, chunk INTEGER NOT NULL,"
	" since INTEGER NOT NULL, kind INTEGER NOT NULL, until INTEGER NOT NULL,"
	" PRIMARY KEY(sector, chunk, since, kind)) WITHOUT ROWID;"
	"INSERT INTO list_file_ends SELECT sector, chunk, since, kind, until FROM list_files"
	" WHERE until IS NOT NULL;"
	"DROP INDEX list_files_until;"
	"ALTER TABLE list_files DROP COLUMN until;"
	"CREATE TRIGGER list_file_put AFTER INSERT ON list_files BEGIN"
	" DELETE FROM list_file_ends WHERE sector = NEW.sector AND chunk = NEW.chunk"
	"  AND since = NEW.since AND kind = NEW.kind;"
	" END;"
	"CREATE TRIGGER list_file_gone AFTER DELETE ON list_files BEGIN"
	" DELETE FROM list_file_ends WHERE sector = OLD.sector AND chunk = OLD.chunk"
	"  AND since = OLD.since AND kind = OLD.kind;"
	" END;";

/*
 * Schema version 9: "Dupont" and "dupont" were two households, so one family could hold two
 * shared quotas. Names are ASCII (server_name_ok): lower() folds them whole. Adding or
 * renaming looks the lower case up (store_sqlite.c), and so does every `pass import` line
 * that names a household: this index makes that one B-tree search, not a scan. Not
 * UNIQUE: a database may already hold such a pair, which stays as it was (docs/admin.md).
 */
const char sq_schema_v9_sql[] = "CREATE INDEX households_folded ON households(lower(name));";
/* clang-format on */

/* --- profiles ------------------------------------------------------------------------ */

void sq_bind_profile(sqlite3_stmt *st, int at, const struct proto_rights_profile *p)
{
	sqlite3_bind_int(st, at + 0, p->product);
	sqlite3_bind_int(st, at + 1, p->valid_from);
	sqlite3_bind_int(st, at + 2, p->valid_to);
	sqlite3_bind_int(st, at + 3, p->limit);
	sqlite3_bind_int(st, at + 4, p->period);
	sqlite3_bind_int(st, at + 5, p->scope);
	sqlite3_bind_int(st, at + 6, p->fare);
	sqlite3_bind_int(st, at + 7, p->flags);
}

void sq_profile_from_row(sqlite3_stmt *st, int at, struct proto_rights_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->product = (uint16_t)sqlite3_column_int(st, at + 0);
	p->valid_from = (uint16_t)sqlite3_column_int(st, at + 1);
	p->valid_to = (uint16_t)sqlite3_column_int(st, at + 2);
	p->limit = (uint8_t)sqlite3_column_int(st, at + 3);
	p->period = (uint8_t)sqlite3_column_int(st, at + 4);
	p->scope = (uint8_t)sqlite3_column_int(st, at + 5);
	p->fare = (uint8_t)sqlite3_column_int(st, at + 6);
	p->flags = (uint8_t)sqlite3_column_int(st, at + 7);
}

static const char profiles_sql[] =
        "SELECT idx, " PROFILE_COLS " FROM profiles WHERE sector=? ORDER BY idx";

int sq_profiles(void *ctx, uint16_t sector, struct proto_rights_profile **out, size_t *n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, profiles_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	struct proto_rights_profile *v = NULL;
	size_t len = 0, cap = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 0) != (int64_t)len) {
			rc = SQLITE_CORRUPT;
			break;
		}
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			struct proto_rights_profile *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				sqlite3_reset(st);
				return SERVER_ERR_NOMEM;
			}
			v = nv;
		}
		sq_profile_from_row(st, 1, &v[len++]);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return sq_err(q, rc);
	}
	*out = v;
	*n = len;
	return 0;
}

static const char profile_add_sql[] =
        "INSERT INTO profiles(sector, idx, " PROFILE_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?)";

int sq_profile_add(void *ctx, uint16_t sector, uint16_t index, const struct proto_rights_profile *p)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, profile_add_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int(st, 2, index);
	sq_bind_profile(st, 3, p);
	return sq_run_cached(q, st);
}

/* --- list rows ----------------------------------------------------------------------- */

/* The current period number of a right, from the periods passed as ?2..?5 (day, week,
 * month, year); lifetime and none are period 0. */
#define CUR_PERIOD(col)                                                                            \
	"(CASE " col " WHEN 2 THEN ?2 WHEN 3 THEN ?3 WHEN 4 THEN ?4 WHEN 5 THEN ?5 ELSE 0 END)"

/* A pass's list row: its key, state, household tag, right, and its uses in the right's
 * current period (the household's, for a household quota). */
/* clang-format off */
#define ROW_COLS \
	"SELECT pi.listkey, p.state, COALESCE(ht.tag, 0), r.product, r.valid_from," \
	" r.valid_to, r.lim, r.period, r.scope, r.fare, r.flags," \
	" CASE WHEN r.period = 0 OR (r.flags & 1) THEN 0" \
	" WHEN r.scope = 1 AND p.household IS NOT NULL THEN" \
	"  (SELECT COALESCE(SUM(c.count), 0) FROM passes pp" \
	"   JOIN pass_ids p2 ON p2.pass = pp.id AND p2.sector = ?1" \
	"   JOIN consumption c ON c.sector = ?1 AND c.pseudonym = p2.listkey" \
	"    AND c.product = r.product AND c.period = " CUR_PERIOD("r.period") \
	"   WHERE pp.household = p.household)" \
	" ELSE (SELECT COALESCE(SUM(c.count), 0) FROM consumption c WHERE c.sector = ?1" \
	"   AND c.pseudonym = pi.listkey AND c.product = r.product" \
	"   AND c.period = " CUR_PERIOD("r.period") ") END"

/* a pass of an unfinished import is not listed yet */
#define LISTED " AND (p.import_id IS NULL OR (SELECT done FROM imports WHERE id = p.import_id))"

#define ROWS_FROM \
	" FROM rights r JOIN passes p ON p.id = r.pass" \
	" JOIN pass_ids pi ON pi.pass = r.pass AND pi.sector = r.sector" \
	" LEFT JOIN household_tags ht ON ht.household = p.household AND ht.sector = r.sector" \
	" WHERE r.sector = ?1"

static const char list_rows_sql[] = ROW_COLS ROWS_FROM LISTED;
/* when no import is under way every pass is listed: the same rows without a look at
 * imports for each of them (when store_sqlite_rows.c declines a database) */
static const char list_rows_all_sql[] = ROW_COLS ROWS_FROM;
static const char import_open_sql[] = "SELECT EXISTS(SELECT 1 FROM imports WHERE NOT done)";

static const char list_row_sql[] =
	ROW_COLS
	" FROM pass_ids pi JOIN rights r ON r.pass = pi.pass AND r.sector = pi.sector"
	" JOIN passes p ON p.id = pi.pass"
	" LEFT JOIN household_tags ht ON ht.household = p.household AND ht.sector = pi.sector"
	" WHERE pi.sector = ?1 AND pi.listkey = ?6" LISTED;
/* clang-format on */

static void bind_periods(sqlite3_stmt *st, uint16_t sector, const struct server_periods *now)
{
	sqlite3_bind_int(st, 1, sector);
	for (int i = 0; i < 4; i++)
		sqlite3_bind_int64(st, 2 + i, now->n[2 + i]);
}

static int row_from(sqlite3_stmt *st, struct server_list_row *r)
{
	if (sqlite3_column_bytes(st, 0) != PROTO_LIST_KEY_LEN)
		return SQLITE_CORRUPT;
	memcpy(r->key, sqlite3_column_blob(st, 0), PROTO_LIST_KEY_LEN);
	r->state = sqlite3_column_int(st, 1);
	r->household_tag = (uint32_t)sqlite3_column_int64(st, 2);
	sq_profile_from_row(st, 3, &r->p);
	int64_t used = sqlite3_column_int64(st, 11);
	r->used = used < 0 ? 0 : (uint32_t)(used > UINT32_MAX ? UINT32_MAX : used);
	return SQLITE_OK;
}

static int list_rows_read(struct sq *q, uint16_t sector, const struct server_periods *now,
                          int (*each)(void *arg, const struct server_list_row *r), void *arg)
{
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, import_open_sql);
	if (rc)
		return rc;
	int64_t importing = 1;
	if ((rc = sq_one_int64(q, st, &importing)) != 0)
		return rc;
	if (!importing) {
		int declined = 0;
		rc = sq_list_rows_scanned(q, sector, now, each, arg, &declined);
		if (rc || !declined)
			return rc;
	}
	rc = sq_prep(q, &st, importing ? list_rows_sql : list_rows_all_sql);
	if (rc)
		return rc;
	bind_periods(st, sector, now);
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		struct server_list_row row;
		if ((rc = row_from(st, &row)) != SQLITE_OK || (rc = each(arg, &row)) != 0)
			break;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	return rc < 0 ? rc : sq_err(q, rc); /* each's own code, or sqlite's */
}

int sq_list_rows(void *ctx, uint16_t sector, const struct server_periods *now,
                 int (*each)(void *arg, const struct server_list_row *r), void *arg)
{
	struct sq *q = ctx;
	/* one snapshot for the import check and every scan (the pass ids counted first must
	 * be those scanned): the publisher reads in its own read transaction, a report does
	 * not */
	const int own = sqlite3_get_autocommit(q->db);
	int rc = own ? sq_exec(q, "BEGIN") : 0;
	if (rc)
		return rc;
	rc = list_rows_read(q, sector, now, each, arg);
	if (own) {
		int end = sq_exec(q, rc ? "ROLLBACK" : "COMMIT");
		rc = rc ? rc : end;
	}
	return rc;
}

int sq_list_row(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                const struct server_periods *now, struct server_list_row *out)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, list_row_sql);
	if (rc)
		return rc;
	bind_periods(st, sector, now);
	sqlite3_bind_blob(st, 6, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW)
		rc = row_from(st, out) == SQLITE_OK ? 0 : SERVER_ERR_IO;
	else
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	sqlite3_reset(st);
	return rc;
}

/* --- the change log ------------------------------------------------------------------ */

static const char changes_sql[] =
        "SELECT DISTINCT listkey FROM list_log WHERE sector = ?1 AND id <= ?2";
static const char changes_upto_sql[] =
        "SELECT COALESCE(MAX(id), 0) FROM list_log WHERE sector = ?1";
static const char changes_trim_sql[] = "DELETE FROM list_log WHERE id IN (SELECT id FROM list_log"
                                       " WHERE sector = ?1 AND id <= ?2 LIMIT ?3)";

int sq_list_changes(void *ctx, uint16_t sector, int64_t *upto, uint8_t (**keys)[PROTO_LIST_KEY_LEN],
                    size_t *n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, changes_upto_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	rc = sq_step(q, st);
	int64_t last = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return sq_err(q, rc);
	if ((rc = sq_cached(q, &st, changes_sql)) != 0)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, last);
	uint8_t(*v)[PROTO_LIST_KEY_LEN] = NULL;
	size_t len = 0, cap = 0;
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != PROTO_LIST_KEY_LEN)
			continue; /* not a list key: nothing a list could show */
		if (len == cap) {
			cap = cap ? cap * 2 : 64;
			void *nv = realloc(v, cap * PROTO_LIST_KEY_LEN);
			if (!nv) {
				free(v);
				sqlite3_reset(st);
				return SERVER_ERR_NOMEM;
			}
			v = nv;
		}
		memcpy(v[len++], sqlite3_column_blob(st, 0), PROTO_LIST_KEY_LEN);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return sq_err(q, rc);
	}
	*upto = last;
	*keys = v;
	*n = len;
	return 0;
}

int sq_list_changes_trim(void *ctx, uint16_t sector, int64_t upto, unsigned max, unsigned *deleted)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, changes_trim_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, upto);
	sqlite3_bind_int64(st, 3, max);
	rc = sq_run_cached(q, st);
	*deleted = rc ? 0 : (unsigned)sqlite3_changes(q->db);
	return rc;
}

/* --- consumption --------------------------------------------------------------------- */

/* Issue 17: the count a right needs stays, the log of where and when goes (server/store.h).
 * Folded rows are the gate '' epoch 0 with negative sequences, below any a gate sends; the
 * triggers log the keys they touch, whose list entries come out the same. */
int sq_consumption_retire(void *ctx, uint16_t sector, int64_t before, uint64_t *n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	*n = 0;
	int rc = sq_prep(q, &st,
	                 "INSERT INTO consumption(device, epoch, seq, sector, pseudonym, product,"
	                 " count, period, pos, stored_at)"
	                 " SELECT '', 0, (SELECT COALESCE(MIN(seq), 0) FROM consumption WHERE"
	                 " device = '' AND epoch = 0) - ROW_NUMBER() OVER (ORDER BY pseudonym,"
	                 " product, period), ?1, pseudonym, product, SUM(count), period, 0, 0"
	                 " FROM consumption WHERE sector = ?1 AND device <> '' AND stored_at < ?2"
	                 " GROUP BY pseudonym, product, period");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, before);
	if ((rc = sq_run(q, st)) != 0)
		return rc;
	rc = sq_prep(
	        q, &st,
	        "DELETE FROM consumption WHERE sector = ?1 AND device <> '' AND stored_at < ?2");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, before);
	if ((rc = sq_step(q, st)) != SQLITE_DONE) {
		sqlite3_finalize(st);
		return sq_err(q, rc);
	}
	*n = (uint64_t)sqlite3_changes(q->db);
	sqlite3_finalize(st);
	return 0;
}

int sq_consumption_rekey(void *ctx, uint16_t sector, const uint8_t from[PROTO_LIST_KEY_LEN],
                         const uint8_t to[PROTO_LIST_KEY_LEN])
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(
	        q, &st,
	        "UPDATE consumption SET pseudonym = ?3 WHERE sector = ?1 AND pseudonym = ?2");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_blob(st, 2, from, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, to, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	return sq_run(q, st);
}

int sq_consumption_expire(void *ctx, uint16_t sector, const struct server_periods *now)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	/* A row's period ended when it is older than the current period of the right its own
	 * pass holds for that product; rows no right counts any more go too. One indexed look
	 * at the pass's right per row, not a scan of the sector's rights. */
	int rc = sq_prep(q, &st,
	                 "DELETE FROM consumption WHERE sector = ?1 AND NOT EXISTS (SELECT 1 FROM"
	                 " pass_ids pi JOIN rights r ON r.pass = pi.pass AND r.sector = pi.sector"
	                 " WHERE pi.sector = ?1 AND pi.listkey = consumption.pseudonym AND"
	                 " r.product = consumption.product AND (r.period = 1 OR"
	                 " consumption.period >= " CUR_PERIOD("r.period") "))");
	if (rc)
		return rc;
	bind_periods(st, sector, now);
	return sq_run(q, st);
}

/* --- published versions, their files, deltas ----------------------------------------- */

/* The newest of: format 2 versions, the format 1 ones, and the floor a restore sets
 * (admin_backup.c) above anything the lost server may have published. */
static const char latest_sql[] =
        "SELECT MAX(COALESCE((SELECT MAX(version) FROM list_versions WHERE sector = ?1), 0),"
        " COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'list_v1_latest.' || ?1),"
        " 0),"
        " COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'list_floor.' || ?1),"
        " 0))";

int sq_list_latest(void *ctx, uint16_t sector, uint64_t *version)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, latest_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	rc = sq_step(q, st);
	*version = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sq_err(q, rc);
}

static const char published_sql[] =
        "SELECT COALESCE(MAX(version), 0) FROM list_versions WHERE sector = ?1";

int sq_list_published(void *ctx, uint16_t sector, uint64_t *version)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, published_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	rc = sq_step(q, st);
	*version = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sq_err(q, rc);
}

static int copy_blob(sqlite3_stmt *st, int col, uint8_t **out, size_t *len)
{
	int n = sqlite3_column_bytes(st, col);
	*out = malloc(n > 0 ? (size_t)n : 1);
	if (!*out)
		return SERVER_ERR_NOMEM;
	if (n > 0)
		memcpy(*out, sqlite3_column_blob(st, col), (size_t)n);
	*len = (size_t)n;
	return 0;
}

static const char version_get_sql[] =
        "SELECT version, issued_at, expires_at, head, manifest, sig, usage_position"
        " FROM list_versions"
        " WHERE sector = ?1 AND (?2 = 0 OR version = ?2) ORDER BY version DESC LIMIT 1";

int sq_list_version_get(void *ctx, uint16_t sector, uint64_t version,
                        struct server_list_version *out)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	memset(out, 0, sizeof(*out));
	int rc = sq_cached(q, &st, version_get_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, (int64_t)version);
	rc = sq_step(q, st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	out->version = (uint64_t)sqlite3_column_int64(st, 0);
	out->issued_at = sqlite3_column_int64(st, 1);
	out->expires_at = sqlite3_column_int64(st, 2);
	out->usage_position = (uint64_t)sqlite3_column_int64(st, 6);
	int slen = sqlite3_column_bytes(st, 5);
	if (slen <= 0 || slen > PROTO_SIG_MAX) {
		sqlite3_reset(st);
		return SERVER_ERR_IO;
	}
	memcpy(out->sig, sqlite3_column_blob(st, 5), (size_t)slen);
	out->sig_len = (size_t)slen;
	rc = copy_blob(st, 3, &out->head, &out->head_len);
	if (rc == 0)
		rc = copy_blob(st, 4, &out->manifest, &out->manifest_len);
	sqlite3_reset(st);
	if (rc)
		server_list_version_free(out);
	return rc;
}

static const char version_put_sql[] =
        "INSERT INTO list_versions(sector, version, issued_at, expires_at, head, manifest, sig,"
        " usage_position) VALUES(?,?,?,?,?,?,?,?)";

int sq_list_version_put(void *ctx, uint16_t sector, const struct server_list_version *v)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, version_put_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, (int64_t)v->version);
	sqlite3_bind_int64(st, 3, v->issued_at);
	sqlite3_bind_int64(st, 4, v->expires_at);
	sq_bind_blob_counted(q, st, 5, v->head, v->head_len);
	sq_bind_blob_counted(q, st, 6, v->manifest, v->manifest_len);
	sq_bind_blob_counted(q, st, 7, v->sig, v->sig_len);
	sqlite3_bind_int64(st, 8, (int64_t)v->usage_position);
	return sq_run_cached(q, st);
}

static const char file_get_sql[] = "SELECT data FROM list_files WHERE sector = ?1 AND chunk = ?2"
                                   " AND since = ?3 AND kind = ?4";
static const char file_put_sql[] =
        "INSERT OR REPLACE INTO list_files(sector, chunk, since, kind, data)"
        " VALUES(?1, ?2, ?3, ?4, ?5)";

int sq_list_file_get(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     uint8_t **data, size_t *len)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, file_get_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, chunk);
	sqlite3_bind_int64(st, 3, (int64_t)since);
	sqlite3_bind_int(st, 4, idx ? 1 : 0);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW)
		rc = copy_blob(st, 0, data, len);
	else
		rc = rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	sqlite3_reset(st);
	return rc;
}

int sq_list_file_put(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     const uint8_t *data, size_t len)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, file_put_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, chunk);
	sqlite3_bind_int64(st, 3, (int64_t)since);
	sqlite3_bind_int(st, 4, idx ? 1 : 0);
	sq_bind_blob_counted(q, st, 5, len ? data : (const uint8_t *)"", len);
	return sq_run_cached(q, st);
}

/* A file already retired keeps its first end (OR IGNORE); the files' keys come from their
 * primary key's index, the blobs are not read. */
static const char retire_sql[] =
        "INSERT OR IGNORE INTO list_file_ends(sector, chunk, since, kind, until)"
        " SELECT sector, chunk, since, kind, ?3 FROM list_files WHERE sector = ?1"
        " AND since < ?3 AND (?2 < 0 OR chunk = ?2)";

int sq_list_files_retire(void *ctx, uint16_t sector, int64_t chunk, uint64_t version)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, retire_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, chunk);
	sqlite3_bind_int64(st, 3, (int64_t)version);
	return sq_run_cached(q, st);
}

static const char delta_get_sql[] =
        "SELECT version, issued_at, expires_at, data, sig FROM deltas WHERE sector=? AND base=?";
static const char delta_put_sql[] =
        "INSERT OR REPLACE INTO deltas(sector, base, version, issued_at, expires_at, data, sig)"
        " VALUES(?,?,?,?,?,?,?)";

int sq_delta_get(void *ctx, uint16_t sector, uint64_t base, struct server_stored_list *out)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, delta_get_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, (int64_t)base);
	rc = sq_step(q, st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
	}
	out->version = (uint64_t)sqlite3_column_int64(st, 0);
	out->issued_at = sqlite3_column_int64(st, 1);
	out->expires_at = sqlite3_column_int64(st, 2);
	int slen = sqlite3_column_bytes(st, 4);
	if (slen <= 0 || slen > PROTO_SIG_MAX) {
		sqlite3_reset(st);
		return SERVER_ERR_IO;
	}
	memcpy(out->sig, sqlite3_column_blob(st, 4), (size_t)slen);
	out->sig_len = (size_t)slen;
	rc = copy_blob(st, 3, &out->data, &out->len);
	sqlite3_reset(st);
	return rc;
}

int sq_delta_put(void *ctx, uint16_t sector, uint64_t base, const struct server_stored_list *d)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, delta_put_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, (int64_t)base);
	sqlite3_bind_int64(st, 3, (int64_t)d->version);
	sqlite3_bind_int64(st, 4, d->issued_at);
	sqlite3_bind_int64(st, 5, d->expires_at);
	sq_bind_blob_counted(q, st, 6, d->data, d->len);
	sq_bind_blob_counted(q, st, 7, d->sig, d->sig_len);
	return sq_run_cached(q, st);
}

/* Versions and deltas beyond the newest `keep`; the files only they named go in
 * sq_list_files_prune. */
static const char *const prune_sql[] = {
        "DELETE FROM list_versions WHERE sector = ?1 AND version <= (SELECT MAX(version) FROM"
        " list_versions WHERE sector = ?1) - ?2",
        "DELETE FROM deltas WHERE sector = ?1 AND version <= (SELECT MAX(version) FROM"
        " deltas WHERE sector = ?1) - ?2",
        /* issue 17: a delta that leads to a version before a snapshot-only one (a full
         * rebuild: no delta into it) reaches nothing a gate can still be brought to; an
         * erased holder's list keys must not stay in it */
        "DELETE FROM deltas WHERE sector = ?1 AND version < (SELECT MAX(v.version) FROM"
        " list_versions v WHERE v.sector = ?1 AND NOT EXISTS (SELECT 1 FROM deltas d WHERE"
        " d.sector = ?1 AND d.version = v.version))",
};

int sq_list_prune(void *ctx, uint16_t sector, unsigned keep)
{
	struct sq *q = ctx;
	for (size_t i = 0; i < sizeof(prune_sql) / sizeof(prune_sql[0]); i++) {
		sqlite3_stmt *st;
		int rc = sq_cached(q, &st, prune_sql[i]);
		if (rc)
			return rc;
		sqlite3_bind_int(st, 1, sector);
		sqlite3_bind_int64(st, 2, keep);
		rc = sq_run_cached(q, st);
		if (rc)
			return rc;
	}
	return 0;
}

/* A file's end (`until`) is the version that replaced it: no version from `until` on
 * needs it. Freeing a file's pages reads each of them (sqlite follows the overflow chain):
 * a few at a time, the lock is not held for a whole list's worth. */
static const char files_prune_sql[] =
        "DELETE FROM list_files WHERE rowid IN (SELECT f.rowid FROM list_file_ends e"
        " JOIN list_files f ON f.sector = e.sector AND f.chunk = e.chunk AND f.since = e.since"
        " AND f.kind = e.kind WHERE e.sector = ?1 AND e.until <= (SELECT COALESCE(MIN(version),"
        " 0) FROM list_versions WHERE sector = ?1) LIMIT ?2)";

int sq_list_files_prune(void *ctx, uint16_t sector, unsigned max, unsigned *deleted)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	*deleted = 0;
	int rc = sq_cached(q, &st, files_prune_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_int64(st, 2, max);
	rc = sq_run_cached(q, st);
	*deleted = rc ? 0 : (unsigned)sqlite3_changes(q->db);
	return rc;
}

/* --- bulk import --------------------------------------------------------------------- */

static const char import_find_sql[] =
        "SELECT id, lines, done FROM imports WHERE sha256 = ?1 ORDER BY id DESC LIMIT 1";
static const char import_new_sql[] = "INSERT INTO imports(sha256, started) VALUES(?1, ?2)";
static const char import_progress_sql[] = "UPDATE imports SET lines = ?2 WHERE id = ?1";
static const char import_key_get_sql[] =
        "SELECT k.pass FROM pass_imports k JOIN passes p ON p.id = k.pass WHERE k.key = ?1"
        " AND (p.import_id IS NULL OR p.import_id = ?2 OR"
        " (SELECT done FROM imports WHERE id = p.import_id))";
static const char import_key_add_sql[] =
        "INSERT OR REPLACE INTO pass_imports(key, pass) VALUES(?1, ?2)";

int sq_import_open(void *ctx, const uint8_t sha256[32], int64_t now, int64_t *id, uint64_t *lines,
                   int *done)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, import_find_sql);
	if (rc)
		return rc;
	sqlite3_bind_blob(st, 1, sha256, 32, SQLITE_STATIC);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW) { /* this file again: go on where it stopped, or nothing to do */
		*id = sqlite3_column_int64(st, 0);
		*lines = (uint64_t)sqlite3_column_int64(st, 1);
		*done = sqlite3_column_int(st, 2) != 0;
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sq_err(q, rc);
	if ((rc = sq_cached(q, &st, import_new_sql)) != 0)
		return rc;
	sqlite3_bind_blob(st, 1, sha256, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	rc = sq_run_cached(q, st);
	if (rc == 0) {
		*id = sqlite3_last_insert_rowid(q->db);
		*lines = 0;
		*done = 0;
	}
	return rc;
}

int sq_import_progress(void *ctx, int64_t id, uint64_t lines)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, import_progress_sql);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)lines);
	return sq_run_cached(q, st);
}

int sq_import_key_get(void *ctx, int64_t id, const uint8_t key[32], int64_t *pass)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, import_key_get_sql);
	if (rc)
		return rc;
	sqlite3_bind_blob(st, 1, key, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW)
		*pass = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
}

int sq_import_key_add(void *ctx, const uint8_t key[32], int64_t pass)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_cached(q, &st, import_key_add_sql);
	if (rc)
		return rc;
	sqlite3_bind_blob(st, 1, key, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, pass);
	return sq_run_cached(q, st);
}

int sq_import_done(void *ctx, int64_t id, const uint16_t *rebuild, size_t n)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "UPDATE imports SET done = 1 WHERE id = ?1 AND done = 0");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sq_run(q, st)) != 0)
		return rc;
	/* the publisher learns of the new passes: a sector rebuilt whole, or their keys logged */
	for (size_t i = 0; i < n && rc == 0; i++) {
		char key[32];
		snprintf(key, sizeof(key), "list_full.%u", rebuild[i]);
		rc = sq_meta_set(q, key, "1");
	}
	if (rc)
		return rc;
	/* every sector rebuilt (an import into a new deployment): nothing to log, and the
	 * statement below would still read every pass of the import, 0.6 s at 1 M passes, in
	 * the transaction that holds the write lock */
	int64_t logged = 0;
	rc = sq_prep(q, &st,
	             "SELECT EXISTS (SELECT 1 FROM sectors WHERE COALESCE((SELECT value FROM"
	             " meta WHERE key = 'list_full.' || number), '0') != '1')");
	if (rc == 0)
		rc = sq_one_int64(q, st, &logged);
	if (rc || !logged)
		return rc;
	rc = sq_prep(q, &st,
	             "INSERT INTO list_log(sector, listkey) SELECT pi.sector, pi.listkey"
	             " FROM passes p JOIN rights r ON r.pass = p.id JOIN pass_ids pi ON"
	             " pi.pass = p.id AND pi.sector = r.sector WHERE p.import_id = ?1 AND"
	             " COALESCE((SELECT value FROM meta WHERE key = 'list_full.' || r.sector),"
	             " '0') != '1'");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	return sq_run(q, st);
}
