/*
 * store_pg_lists.c — what the list publisher needs from the PostgreSQL store: the sector's
 * profiles and list rows, the change log, published versions with their chunk files and
 * deltas, the publisher's lock, and bulk import (server/store.h, server/publish.h). The
 * queries are the sqlite store's (store_sqlite_lists.c) in PostgreSQL's words.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_pg_internal.h"

/* --- profiles ------------------------------------------------------------------------ */

int pg_profiles(void *ctx, uint16_t sector, struct proto_rights_profile **out, size_t *n)
{
	static const char sql[] =
	        "SELECT idx, " PG_PROFILE_COLS " FROM profiles WHERE sector = $1 ORDER BY idx";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	size_t len = (size_t)PQntuples(r);
	struct proto_rights_profile *v = calloc(len ? len : 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return SERVER_ERR_NOMEM;
	}
	for (size_t i = 0; i < len && rc == 0; i++) {
		if (pg_i64(r, (int)i, 0) !=
		    (int64_t)i) /* indices are 0..n-1: anything else is damage */
			rc = SERVER_ERR_IO;
		else
			pg_profile_from_row(r, (int)i, 1, &v[i]);
	}
	PQclear(r);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = len;
	return 0;
}

int pg_profile_add(void *ctx, uint16_t sector, uint16_t index,
                   const struct proto_rights_profile *pr)
{
	static const char sql[] = "INSERT INTO profiles(sector, idx, " PG_PROFILE_COLS ")"
	                          " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, index);
	pgp_profile(&p, pr);
	return pg_query(ctx, sql, &p, NULL);
}

/* --- list rows ----------------------------------------------------------------------- */

/* The current period number of a right, from the periods passed as $2..$5 (day, week,
 * month, year); lifetime and none are period 0. */
#define CUR_PERIOD(col)                                                                            \
	"(CASE " col " WHEN 2 THEN $2::bigint WHEN 3 THEN $3::bigint WHEN 4 THEN $4::bigint"       \
	" WHEN 5 THEN $5::bigint ELSE 0 END)"

/* clang-format off */
#define ROW_COLS \
	"SELECT pi.listkey, p.state, COALESCE(ht.tag, 0), r.product, r.valid_from," \
	" r.valid_to, r.lim, r.period, r.scope, r.fare, r.flags," \
	" CASE WHEN r.period = 0 OR (r.flags & 1) <> 0 THEN 0" \
	" WHEN r.scope = 1 AND p.household IS NOT NULL THEN" \
	"  (SELECT COALESCE(SUM(c.count), 0) FROM passes pp" \
	"   JOIN pass_ids p2 ON p2.pass = pp.id AND p2.sector = $1::int" \
	"   JOIN consumption c ON c.sector = $1::int AND c.pseudonym = p2.listkey" \
	"    AND c.product = r.product AND c.period = " CUR_PERIOD("r.period") \
	"   WHERE pp.household = p.household)" \
	" ELSE (SELECT COALESCE(SUM(c.count), 0) FROM consumption c WHERE c.sector = $1::int" \
	"   AND c.pseudonym = pi.listkey AND c.product = r.product" \
	"   AND c.period = " CUR_PERIOD("r.period") ") END"

/* a pass of an unfinished import is not listed yet */
#define LISTED " AND (p.import_id IS NULL OR (SELECT done FROM imports WHERE id = p.import_id) <> 0)"

static const char list_rows_sql[] =
	ROW_COLS
	" FROM rights r JOIN passes p ON p.id = r.pass"
	" JOIN pass_ids pi ON pi.pass = r.pass AND pi.sector = r.sector"
	" LEFT JOIN household_tags ht ON ht.household = p.household AND ht.sector = r.sector"
	" WHERE r.sector = $1::int" LISTED;

static const char list_row_sql[] =
	ROW_COLS
	" FROM pass_ids pi JOIN rights r ON r.pass = pi.pass AND r.sector = pi.sector"
	" JOIN passes p ON p.id = pi.pass"
	" LEFT JOIN household_tags ht ON ht.household = p.household AND ht.sector = pi.sector"
	" WHERE pi.sector = $1::int AND pi.listkey = $6" LISTED;
/* clang-format on */

static void period_params(struct pg_params *p, uint16_t sector, const struct server_periods *now)
{
	pgp_init(p);
	pgp_i64(p, sector);
	for (int i = 0; i < 4; i++)
		pgp_i64(p, now->n[2 + i]);
}

static int row_from(const PGresult *r, int i, struct server_list_row *o)
{
	int rc = pg_blob_fixed(r, i, 0, o->key, PROTO_LIST_KEY_LEN);
	if (rc)
		return rc;
	o->state = (int)pg_i64(r, i, 1);
	o->household_tag = (uint32_t)pg_i64(r, i, 2);
	pg_profile_from_row(r, i, 3, &o->p);
	int64_t used = pg_i64(r, i, 11);
	o->used = used < 0 ? 0 : (uint32_t)(used > UINT32_MAX ? UINT32_MAX : used);
	return 0;
}

int pg_list_rows(void *ctx, uint16_t sector, const struct server_periods *now,
                 int (*each)(void *arg, const struct server_list_row *r), void *arg)
{
	struct pg_params p;
	period_params(&p, sector, now);
	PGresult *r;
	int rc = pg_query(ctx, list_rows_sql, &p, &r);
	if (rc)
		return rc;
	int len = PQntuples(r);
	for (int i = 0; i < len && rc == 0; i++) {
		struct server_list_row row;
		rc = row_from(r, i, &row);
		if (rc == 0)
			rc = each(arg, &row);
	}
	PQclear(r);
	return rc;
}

int pg_list_row(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                const struct server_periods *now, struct server_list_row *out)
{
	struct pg_params p;
	period_params(&p, sector, now);
	pgp_blob(&p, key, PROTO_LIST_KEY_LEN);
	PGresult *r;
	int rc = pg_query(ctx, list_row_sql, &p, &r);
	if (rc)
		return rc;
	rc = PQntuples(r) < 1 ? SERVER_ERR_NOT_FOUND : row_from(r, 0, out);
	PQclear(r);
	return rc;
}

/* --- the change log ------------------------------------------------------------------ */

int pg_list_changes(void *ctx, uint16_t sector, int64_t *upto, uint8_t (**keys)[PROTO_LIST_KEY_LEN],
                    size_t *n)
{
	static const char upto_sql[] =
	        "SELECT COALESCE(MAX(id), 0) FROM list_log WHERE sector = $1";
	static const char sql[] =
	        "SELECT DISTINCT listkey FROM list_log WHERE sector = $1 AND id <= $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	int64_t last = 0;
	int rc = pg_one_i64(ctx, upto_sql, &p, &last);
	if (rc)
		return rc;
	pgp_i64(&p, last);
	PGresult *r;
	if ((rc = pg_query(ctx, sql, &p, &r)) != 0)
		return rc;
	int rows = PQntuples(r);
	uint8_t(*v)[PROTO_LIST_KEY_LEN] = calloc(rows ? (size_t)rows : 1, PROTO_LIST_KEY_LEN);
	if (!v) {
		PQclear(r);
		return SERVER_ERR_NOMEM;
	}
	size_t len = 0;
	for (int i = 0; i < rows; i++)
		if (pg_blob_fixed(r, i, 0, v[len], PROTO_LIST_KEY_LEN) == 0)
			len++; /* else not a list key: nothing a list could show */
	PQclear(r);
	*upto = last;
	*keys = v;
	*n = len;
	return 0;
}

int pg_list_changes_trim(void *ctx, uint16_t sector, int64_t upto, unsigned max, unsigned *deleted)
{
	static const char sql[] = "DELETE FROM list_log WHERE id IN (SELECT id FROM list_log"
	                          " WHERE sector = $1 AND id <= $2 ORDER BY id LIMIT $3)";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, upto);
	pgp_i64(&p, max);
	uint64_t n;
	int rc = pg_run_counted(ctx, sql, &p, &n);
	*deleted = (unsigned)n;
	return rc;
}

/* --- consumption --------------------------------------------------------------------- */

/* Issue 17: the count a right needs stays, the log of where and when goes (server/store.h),
 * as the sqlite store does it: folded rows are the gate '' epoch 0 with negative
 * sequences, below any a gate sends; the triggers log the keys they touch. */
int pg_consumption_retire(void *ctx, uint16_t sector, int64_t before, uint64_t *n)
{
	static const char fold_sql[] =
	        "INSERT INTO consumption(device, epoch, seq, sector, pseudonym, product, count,"
	        " period, pos, stored_at)"
	        " SELECT '', 0, (SELECT COALESCE(MIN(seq), 0) FROM consumption WHERE"
	        " device = '' AND epoch = 0) - ROW_NUMBER() OVER (ORDER BY pseudonym, product,"
	        " period), $1::int, pseudonym, product, SUM(count), period, 0, 0"
	        " FROM consumption WHERE sector = $1::int AND device <> '' AND stored_at < $2"
	        " GROUP BY pseudonym, product, period";
	static const char drop_sql[] =
	        "DELETE FROM consumption WHERE sector = $1 AND device <> '' AND stored_at < $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, before);
	*n = 0;
	int rc = pg_query(ctx, fold_sql, &p, NULL);
	return rc ? rc : pg_run_counted(ctx, drop_sql, &p, n);
}

int pg_consumption_rekey(void *ctx, uint16_t sector, const uint8_t from[PROTO_LIST_KEY_LEN],
                         const uint8_t to[PROTO_LIST_KEY_LEN])
{
	static const char sql[] =
	        "UPDATE consumption SET pseudonym = $3 WHERE sector = $1 AND pseudonym = $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_blob(&p, from, PROTO_LIST_KEY_LEN);
	pgp_blob(&p, to, PROTO_LIST_KEY_LEN);
	return pg_query(ctx, sql, &p, NULL);
}

int pg_consumption_expire(void *ctx, uint16_t sector, const struct server_periods *now)
{
	/* a row's period ended when it is older than the current period of the right its own
	 * pass holds for that product; rows no right counts any more go too */
	static const char sql[] =
	        "DELETE FROM consumption WHERE sector = $1::int AND NOT EXISTS (SELECT 1 FROM"
	        " pass_ids pi JOIN rights r ON r.pass = pi.pass AND r.sector = pi.sector"
	        " WHERE pi.sector = $1::int AND pi.listkey = consumption.pseudonym AND"
	        " r.product = consumption.product AND (r.period = 1 OR"
	        " consumption.period >= " CUR_PERIOD("r.period") "))";
	struct pg_params p;
	period_params(&p, sector, now);
	return pg_query(ctx, sql, &p, NULL);
}

/* --- published versions, their files, deltas ----------------------------------------- */

/* The newest of: format 2 versions, the format 1 ones, and the floor a restore sets. */
int pg_list_latest(void *ctx, uint16_t sector, uint64_t *version)
{
	static const char sql[] =
	        "SELECT GREATEST(COALESCE((SELECT MAX(version) FROM list_versions WHERE sector ="
	        " $1::int), 0), COALESCE((SELECT CAST(value AS BIGINT) FROM meta WHERE key ="
	        " 'list_v1_latest.' || $1::text), 0), COALESCE((SELECT CAST(value AS BIGINT)"
	        " FROM meta WHERE key = 'list_floor.' || $1::text), 0))";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	int64_t v = 0;
	int rc = pg_one_i64(ctx, sql, &p, &v);
	*version = v > 0 ? (uint64_t)v : 0;
	return rc;
}

int pg_list_published(void *ctx, uint16_t sector, uint64_t *version)
{
	static const char sql[] =
	        "SELECT COALESCE(MAX(version), 0) FROM list_versions WHERE sector = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	int64_t v = 0;
	int rc = pg_one_i64(ctx, sql, &p, &v);
	*version = v > 0 ? (uint64_t)v : 0;
	return rc;
}

int pg_list_version_get(void *ctx, uint16_t sector, uint64_t version,
                        struct server_list_version *out)
{
	static const char sql[] =
	        "SELECT version, issued_at, expires_at, head, manifest, sig, usage_position"
	        " FROM list_versions WHERE sector = $1 AND ($2::bigint = 0 OR version = $2::bigint)"
	        " ORDER BY version DESC LIMIT 1";
	memset(out, 0, sizeof(*out));
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_u64(&p, version);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1) {
		PQclear(r);
		return SERVER_ERR_NOT_FOUND;
	}
	out->version = (uint64_t)pg_i64(r, 0, 0);
	out->issued_at = pg_i64(r, 0, 1);
	out->expires_at = pg_i64(r, 0, 2);
	out->usage_position = (uint64_t)pg_i64(r, 0, 6);
	uint8_t *sig = NULL;
	size_t slen = 0;
	rc = pg_blob(r, 0, 5, &sig, &slen);
	if (rc == 0 && (slen == 0 || slen > PROTO_SIG_MAX))
		rc = SERVER_ERR_IO;
	if (rc == 0) {
		memcpy(out->sig, sig, slen);
		out->sig_len = slen;
		rc = pg_blob(r, 0, 3, &out->head, &out->head_len);
	}
	free(sig);
	if (rc == 0)
		rc = pg_blob(r, 0, 4, &out->manifest, &out->manifest_len);
	PQclear(r);
	if (rc)
		server_list_version_free(out);
	return rc;
}

int pg_list_version_put(void *ctx, uint16_t sector, const struct server_list_version *v)
{
	struct pg *q = ctx;
	static const char sql[] =
	        "INSERT INTO list_versions(sector, version, issued_at, expires_at, head, manifest,"
	        " sig, usage_position) VALUES($1, $2, $3, $4, $5, $6, $7, $8)";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_u64(&p, v->version);
	pgp_i64(&p, v->issued_at);
	pgp_i64(&p, v->expires_at);
	pgp_blob_counted(q, &p, v->head, v->head_len);
	pgp_blob_counted(q, &p, v->manifest, v->manifest_len);
	pgp_blob_counted(q, &p, v->sig, v->sig_len);
	pgp_u64(&p, v->usage_position);
	int rc = pg_query(q, sql, &p, NULL);
	char what[8];
	snprintf(what, sizeof(what), "%u", sector);
	/* issue 16: every instance's gates get the version, whoever published it */
	return rc ? rc : pg_announce(q, what);
}

int pg_list_file_get(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     uint8_t **data, size_t *len)
{
	static const char sql[] = "SELECT data FROM list_files WHERE sector = $1 AND chunk = $2"
	                          " AND since = $3 AND kind = $4";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, chunk);
	pgp_u64(&p, since);
	pgp_i64(&p, idx ? 1 : 0);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	rc = PQntuples(r) < 1 ? SERVER_ERR_NOT_FOUND : pg_blob(r, 0, 0, data, len);
	PQclear(r);
	return rc;
}

int pg_list_file_put(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     const uint8_t *data, size_t len)
{
	struct pg *q = ctx;
	static const char sql[] =
	        "INSERT INTO list_files(sector, chunk, since, kind, until, data)"
	        " VALUES($1, $2, $3, $4, NULL, $5) ON CONFLICT(sector, chunk, since, kind) DO"
	        " UPDATE SET until = NULL, data = excluded.data";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, chunk);
	pgp_u64(&p, since);
	pgp_i64(&p, idx ? 1 : 0);
	pgp_blob_counted(q, &p, data, len);
	return pg_query(q, sql, &p, NULL);
}

int pg_list_files_retire(void *ctx, uint16_t sector, int64_t chunk, uint64_t version)
{
	static const char sql[] =
	        "UPDATE list_files SET until = $3 WHERE sector = $1 AND until IS NULL AND"
	        " since < $3 AND ($2::bigint < 0 OR chunk = $2::bigint)";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, chunk);
	pgp_u64(&p, version);
	return pg_query(ctx, sql, &p, NULL);
}

int pg_delta_get(void *ctx, uint16_t sector, uint64_t base, struct server_stored_list *out)
{
	static const char sql[] = "SELECT version, issued_at, expires_at, data, sig FROM deltas"
	                          " WHERE sector = $1 AND base = $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_u64(&p, base);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1) {
		PQclear(r);
		return SERVER_ERR_NOT_FOUND;
	}
	out->version = (uint64_t)pg_i64(r, 0, 0);
	out->issued_at = pg_i64(r, 0, 1);
	out->expires_at = pg_i64(r, 0, 2);
	uint8_t *sig = NULL;
	size_t slen = 0;
	rc = pg_blob(r, 0, 4, &sig, &slen);
	if (rc == 0 && (slen == 0 || slen > PROTO_SIG_MAX))
		rc = SERVER_ERR_IO;
	if (rc == 0) {
		memcpy(out->sig, sig, slen);
		out->sig_len = slen;
		rc = pg_blob(r, 0, 3, &out->data, &out->len);
	}
	free(sig);
	PQclear(r);
	return rc;
}

int pg_delta_put(void *ctx, uint16_t sector, uint64_t base, const struct server_stored_list *d)
{
	struct pg *q = ctx;
	static const char sql[] =
	        "INSERT INTO deltas(sector, base, version, issued_at, expires_at, data, sig)"
	        " VALUES($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(sector, base) DO UPDATE SET"
	        " version = excluded.version, issued_at = excluded.issued_at,"
	        " expires_at = excluded.expires_at, data = excluded.data, sig = excluded.sig";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_u64(&p, base);
	pgp_u64(&p, d->version);
	pgp_i64(&p, d->issued_at);
	pgp_i64(&p, d->expires_at);
	pgp_blob_counted(q, &p, d->data, d->len);
	pgp_blob_counted(q, &p, d->sig, d->sig_len);
	return pg_query(q, sql, &p, NULL);
}

/* Versions and deltas beyond the newest `keep`; the files only they named go in
 * pg_list_files_prune. */
static const char *const prune_sql[] = {
        "DELETE FROM list_versions WHERE sector = $1 AND version <= (SELECT MAX(version) FROM"
        " list_versions WHERE sector = $1) - $2",
        "DELETE FROM deltas WHERE sector = $1 AND version <= (SELECT MAX(version) FROM"
        " deltas WHERE sector = $1) - $2",
        /* issue 17, as the sqlite store (found by admin_holder_pg, issue 16): a delta that
         * leads to a version before a snapshot-only one (a full rebuild: no delta into it)
         * reaches nothing a gate can still be brought to; an erased holder's list keys must
         * not stay in it */
        "DELETE FROM deltas WHERE sector = $1 AND version < (SELECT MAX(v.version) FROM"
        " list_versions v WHERE v.sector = $1 AND NOT EXISTS (SELECT 1 FROM deltas d WHERE"
        " d.sector = $1 AND d.version = v.version)) AND $2::bigint >= 0",
};

int pg_list_prune(void *ctx, uint16_t sector, unsigned keep)
{
	for (size_t i = 0; i < sizeof(prune_sql) / sizeof(prune_sql[0]); i++) {
		struct pg_params p;
		pgp_init(&p);
		pgp_i64(&p, sector);
		pgp_i64(&p, keep);
		int rc = pg_query(ctx, prune_sql[i], &p, NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* The files no kept version names, a few per call (the sqlite store says why). */
int pg_list_files_prune(void *ctx, uint16_t sector, unsigned max, unsigned *deleted)
{
	static const char sql[] =
	        "DELETE FROM list_files WHERE ctid IN (SELECT ctid FROM list_files WHERE"
	        " sector = $1 AND until IS NOT NULL AND until <= (SELECT COALESCE(MIN(version), 0)"
	        " FROM list_versions WHERE sector = $1) LIMIT $2)";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, max);
	uint64_t n;
	int rc = pg_run_counted(ctx, sql, &p, &n);
	*deleted = (unsigned)n;
	return rc;
}

/* One publisher of a sector at a time, across every instance and citypass-admin: a session
 * advisory lock, held across the publisher's transactions, dropped by the server when the
 * connection ends however it ends (the flock of the sqlite store, in the database). */
int pg_publish_lock(void *ctx, uint16_t sector, int take, int wait_ms)
{
	struct pg *q = ctx;
	static const char try_sql[] = "SELECT pg_try_advisory_lock($1::int, $2::int)";
	static const char drop_sql[] = "SELECT pg_advisory_unlock($1::int, $2::int)";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, PG_LOCK_PUBLISH);
	pgp_i64(&p, sector);
	if (!take) {
		q->publish_locks -= q->publish_locks > 0;
		/* a lost connection took the lock with it: nothing left to release */
		return PQstatus(q->conn) == CONNECTION_OK ? pg_query(q, drop_sql, &p, NULL) : 0;
	}
	for (int waited = 0;; waited += 20) {
		PGresult *r;
		int rc = pg_query(q, try_sql, &p, &r);
		if (rc)
			return rc;
		int got = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
		PQclear(r);
		if (got) {
			q->publish_locks++;
			return 0;
		}
		if (waited >= wait_ms) {
			pg_fail(q, "another instance is publishing this sector's list");
			return SERVER_ERR_BUSY;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* --- bulk import --------------------------------------------------------------------- */

int pg_import_open(void *ctx, const uint8_t sha256[32], int64_t now, int64_t *id, uint64_t *lines,
                   int *done)
{
	static const char find_sql[] =
	        "SELECT id, lines, done FROM imports WHERE sha256 = $1 ORDER BY id DESC LIMIT 1";
	static const char new_sql[] =
	        "INSERT INTO imports(sha256, started) VALUES($1, $2) RETURNING id";
	struct pg_params p;
	pgp_init(&p);
	pgp_blob(&p, sha256, 32);
	PGresult *r;
	int rc = pg_query(ctx, find_sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) == 1) { /* this file again: go on where it stopped, or nothing to do */
		*id = pg_i64(r, 0, 0);
		*lines = (uint64_t)pg_i64(r, 0, 1);
		*done = pg_i64(r, 0, 2) != 0;
		PQclear(r);
		return 0;
	}
	PQclear(r);
	pgp_i64(&p, now);
	if ((rc = pg_one_i64(ctx, new_sql, &p, id)) != 0)
		return rc;
	*lines = 0;
	*done = 0;
	return 0;
}

int pg_import_progress(void *ctx, int64_t id, uint64_t lines)
{
	static const char sql[] = "UPDATE imports SET lines = $2 WHERE id = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, id);
	pgp_u64(&p, lines);
	return pg_query(ctx, sql, &p, NULL);
}

int pg_import_key_get(void *ctx, int64_t id, const uint8_t key[32], int64_t *pass)
{
	static const char sql[] =
	        "SELECT k.pass FROM pass_imports k JOIN passes p ON p.id = k.pass WHERE k.key = $1"
	        " AND (p.import_id IS NULL OR p.import_id = $2 OR"
	        " (SELECT done FROM imports WHERE id = p.import_id) <> 0)";
	struct pg_params p;
	pgp_init(&p);
	pgp_blob(&p, key, 32);
	pgp_i64(&p, id);
	return pg_one_i64(ctx, sql, &p, pass);
}

int pg_import_key_add(void *ctx, const uint8_t key[32], int64_t pass)
{
	static const char sql[] = "INSERT INTO pass_imports(key, pass) VALUES($1, $2)"
	                          " ON CONFLICT(key) DO UPDATE SET pass = excluded.pass";
	struct pg_params p;
	pgp_init(&p);
	pgp_blob(&p, key, 32);
	pgp_i64(&p, pass);
	return pg_query(ctx, sql, &p, NULL);
}

int pg_import_done(void *ctx, int64_t id, const uint16_t *rebuild, size_t n)
{
	static const char done_sql[] = "UPDATE imports SET done = 1 WHERE id = $1 AND done = 0";
	static const char log_sql[] =
	        "INSERT INTO list_log(sector, listkey) SELECT pi.sector, pi.listkey"
	        " FROM passes p JOIN rights r ON r.pass = p.id JOIN pass_ids pi ON"
	        " pi.pass = p.id AND pi.sector = r.sector WHERE p.import_id = $1 AND"
	        " COALESCE((SELECT value FROM meta WHERE key = 'list_full.' || r.sector::text),"
	        " '0') != '1'";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, id);
	int rc = pg_query(ctx, done_sql, &p, NULL);
	/* the publisher learns of the new passes: a sector rebuilt whole, or their keys logged */
	for (size_t i = 0; i < n && rc == 0; i++) {
		char key[32];
		snprintf(key, sizeof(key), "list_full.%u", rebuild[i]);
		rc = pg_meta_set(ctx, key, "1");
	}
	if (rc == 0)
		rc = pg_query(ctx, log_sql, &p, NULL);
	return rc;
}
