/*
 * store_pg.c — the rights database in PostgreSQL (server/store.h; issue 16, DESIGN §11).
 *
 * Several citypass-server instances and citypass-admin share one database. Isolation:
 *  - begin() is READ COMMITTED, as PostgreSQL's default; the places that read, then write
 *    what they read lock what they read: a pass read inside begin() is read FOR UPDATE
 *    (pass_life's checks then writes), gate numbers are handed out under a transaction
 *    advisory lock, the usage position is one row every consumption batch updates (so
 *    positions commit in the order they were taken: issue 13's rule);
 *  - begin_read() is REPEATABLE READ READ ONLY: one snapshot for every read until commit,
 *    as sqlite's deferred transaction gives (a list and its usage position agree);
 *  - publishing a sector is serialised by a session advisory lock (publish_lock), held
 *    across the publisher's transactions and dropped by the server if the connection dies,
 *    as the flock of the sqlite store is by the kernel;
 *  - ingestion is deduplicated by the usage tables' primary keys (store_pg_usage.c).
 * The schema's version is the one row of citypass_schema; a newer one than this binary's is
 * refused (SERVER_ERR_SCHEMA_NEWER), as the sqlite store does.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/passes.h"
#include "store_pg_internal.h"

/* --- parameters and results ----------------------------------------------------------- */

void pgp_init(struct pg_params *p)
{
	p->n = 0;
}

static int pgp_slot(struct pg_params *p)
{
	/* a statement with more parameters than PG_PARAMS_MAX is a programming error: the
	 * extra ones are dropped and PostgreSQL refuses the statement for lack of them */
	return p->n < PG_PARAMS_MAX ? p->n++ : -1;
}

void pgp_i64(struct pg_params *p, int64_t v)
{
	int i = pgp_slot(p);
	if (i < 0)
		return;
	snprintf(p->num[i], sizeof(p->num[i]), "%" PRId64, v);
	p->v[i] = p->num[i];
	p->len[i] = 0;
	p->fmt[i] = 0;
}

void pgp_u64(struct pg_params *p, uint64_t v)
{
	pgp_i64(p, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

void pgp_text(struct pg_params *p, const char *s)
{
	int i = pgp_slot(p);
	if (i < 0)
		return;
	p->v[i] = s;
	p->len[i] = 0;
	p->fmt[i] = 0;
}

void pgp_null(struct pg_params *p)
{
	pgp_text(p, NULL);
}

void pgp_blob(struct pg_params *p, const void *data, size_t len)
{
	int i = pgp_slot(p);
	if (i < 0)
		return;
	p->v[i] = len ? (const char *)data : "";
	p->len[i] = (int)len;
	p->fmt[i] = 1; /* binary: the bytes as they are */
}

void pgp_blob_counted(struct pg *q, struct pg_params *p, const void *data, size_t len)
{
	q->counters.bytes_written += len;
	pgp_blob(p, data, len);
}

static void arr_put(struct pg_array *a, const char *s, size_t n)
{
	if (a->oom)
		return;
	if (a->len + n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		while (cap < a->len + n + 2)
			cap *= 2;
		char *b = realloc(a->buf, cap);
		if (!b) {
			a->oom = 1;
			return;
		}
		a->buf = b;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, s, n);
	a->len += n;
	a->buf[a->len] = '\0';
}

void pg_arr_i64(struct pg_array *a, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%s%lld", a->len ? "," : "{", (long long)v);
	arr_put(a, num, (size_t)n);
}

void pg_arr_hex(struct pg_array *a, const void *data, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = data;
	char hex[64];
	arr_put(a, a->len ? "," : "{", 1);
	for (size_t i = 0; i < len;) {
		size_t h = 0;
		for (; i < len && h < sizeof(hex); i++) {
			hex[h++] = digits[b[i] >> 4];
			hex[h++] = digits[b[i] & 15];
		}
		arr_put(a, hex, h);
	}
}

int pg_arr_params(struct pg_params *p, struct pg_array *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		arr_put(&a[i], a[i].len ? "}" : "{}", a[i].len ? 1 : 2);
		if (a[i].oom)
			return SERVER_ERR_NOMEM;
		pgp_text(p, a[i].buf);
	}
	return 0;
}

void pg_arr_free(struct pg_array *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].buf);
}

void pgp_profile(struct pg_params *p, const struct proto_rights_profile *pr)
{
	pgp_i64(p, pr->product);
	pgp_i64(p, pr->valid_from);
	pgp_i64(p, pr->valid_to);
	pgp_i64(p, pr->limit);
	pgp_i64(p, pr->period);
	pgp_i64(p, pr->scope);
	pgp_i64(p, pr->fare);
	pgp_i64(p, pr->flags);
}

int64_t pg_i64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

void pg_copy_text(char *dst, size_t cap, const PGresult *r, int row, int col)
{
	snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

void pg_profile_from_row(const PGresult *r, int row, int col, struct proto_rights_profile *pr)
{
	memset(pr, 0, sizeof(*pr));
	pr->product = (uint16_t)pg_i64(r, row, col + 0);
	pr->valid_from = (uint16_t)pg_i64(r, row, col + 1);
	pr->valid_to = (uint16_t)pg_i64(r, row, col + 2);
	pr->limit = (uint8_t)pg_i64(r, row, col + 3);
	pr->period = (uint8_t)pg_i64(r, row, col + 4);
	pr->scope = (uint8_t)pg_i64(r, row, col + 5);
	pr->fare = (uint8_t)pg_i64(r, row, col + 6);
	pr->flags = (uint8_t)pg_i64(r, row, col + 7);
}

int pg_blob(const PGresult *r, int row, int col, uint8_t **out, size_t *len)
{
	size_t n = 0;
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	if (!b)
		return SERVER_ERR_NOMEM;
	*out = malloc(n ? n : 1);
	if (!*out) {
		PQfreemem(b);
		return SERVER_ERR_NOMEM;
	}
	memcpy(*out, b, n);
	*len = n;
	PQfreemem(b);
	return 0;
}

int pg_blob_fixed(const PGresult *r, int row, int col, void *dst, size_t len)
{
	size_t n = 0;
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	if (!b)
		return SERVER_ERR_NOMEM;
	int rc = n == len ? 0 : SERVER_ERR_IO;
	if (rc == 0)
		memcpy(dst, b, len);
	PQfreemem(b);
	return rc;
}

uint64_t pg_changes(PGresult *r)
{
	const char *t = PQcmdTuples(r);
	return t && *t ? strtoull(t, NULL, 10) : 0;
}

int pg_run_counted(struct pg *q, const char *sql, const struct pg_params *p, uint64_t *n)
{
	PGresult *r;
	*n = 0;
	int rc = pg_query(q, sql, p, &r);
	if (rc)
		return rc;
	*n = pg_changes(r);
	PQclear(r);
	return 0;
}

/* --- statements ------------------------------------------------------------------------ */

void pg_fail(struct pg *q, const char *msg)
{
	snprintf(q->errmsg, sizeof(q->errmsg), "%s", msg ? msg : "");
	/* one line: PostgreSQL ends its messages with a newline, and adds DETAIL lines */
	char *nl = strchr(q->errmsg, '\n');
	if (nl)
		*nl = 0;
}

/* The SERVER_ERR_* for a failed result, keeping PostgreSQL's words. */
static int pg_err(struct pg *q, PGresult *r)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : NULL;
	pg_fail(q, msg && *msg ? msg : PQerrorMessage(q->conn));
	if (PQstatus(q->conn) != CONNECTION_OK)
		return SERVER_ERR_IO; /* the server is gone: nothing was committed */
	if (!state)
		return r ? SERVER_ERR_IO : SERVER_ERR_NOMEM;
	if (strncmp(state, "23", 2) == 0) /* integrity constraint violation */
		return SERVER_ERR_EXISTS;
	/* lock_not_available (lock_timeout), serialization_failure, deadlock_detected,
	 * query_canceled (statement_timeout): another writer holds what we need */
	if (!strcmp(state, "55P03") || !strcmp(state, "40001") || !strcmp(state, "40P01") ||
	    !strcmp(state, "57014"))
		return SERVER_ERR_BUSY;
	if (!strcmp(state, "53200"))
		return SERVER_ERR_NOMEM;
	return SERVER_ERR_IO;
}

/* The connection's prepared statement for `sql` (*name NULL: the cache is full, run it
 * unprepared), or the error that preparing it gave (a failed PREPARE ends the transaction
 * like any failed statement). */
static int pg_prepared(struct pg *q, const char *sql, const char **name)
{
	*name = NULL;
	for (size_t i = 0; i < q->n_cache; i++)
		if (q->cache[i].sql == sql) {
			*name = q->cache[i].name;
			return 0;
		}
	if (q->n_cache == PG_CACHE_MAX)
		return 0;
	char nm[16];
	snprintf(nm, sizeof(nm), "cp%zu", q->n_cache);
	PGresult *r = PQprepare(q->conn, nm, sql, 0, NULL);
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		int rc = pg_err(q, r);
		PQclear(r);
		return rc;
	}
	PQclear(r);
	q->cache[q->n_cache].sql = sql;
	memcpy(q->cache[q->n_cache].name, nm, sizeof(nm));
	*name = q->cache[q->n_cache++].name;
	return 0;
}

/* A connection lost (the server restarted, a failover, a network cut) is opened again
 * between transactions, never inside one: what the lost transaction did is gone, and its
 * caller learns it from the error of its next statement or of its commit (nothing is
 * acknowledged that was not committed). Prepared statements went with the old session. */
static int pg_revive(struct pg *q)
{
	if (PQstatus(q->conn) == CONNECTION_OK)
		return 0;
	if (q->publish_locks) {
		pg_fail(q, "the connection holding the publisher's lock was lost");
		return SERVER_ERR_IO;
	}
	PQreset(q->conn);
	q->n_cache = 0;
	if (PQstatus(q->conn) != CONNECTION_OK) {
		pg_fail(q, PQerrorMessage(q->conn));
		return SERVER_ERR_UNREACHABLE;
	}
	return pg_exec(q, "SET client_min_messages = warning; SET lock_timeout = '10s'");
}

int pg_query(struct pg *q, const char *sql, const struct pg_params *p, PGresult **res)
{
	static const struct pg_params none = {0};
	if (!p)
		p = &none;
	if (res)
		*res = NULL;
	if (!q->in_tx) {
		int rc = pg_revive(q);
		if (rc)
			return rc;
	}
	q->counters.statements++;
	/* nothing runs in a transaction that failed: its next statement gets PostgreSQL's
	 * refusal, not a new statement prepared */
	const char *name = NULL;
	if (PQtransactionStatus(q->conn) != PQTRANS_INERROR) {
		int rc = pg_prepared(q, sql, &name);
		if (rc)
			return rc;
	}
	PGresult *r = name ? PQexecPrepared(q->conn, name, p->n, p->v, p->len, p->fmt, 0)
	                   : PQexecParams(q->conn, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		int rc = pg_err(q, r);
		PQclear(r);
		return rc;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

int pg_exec(struct pg *q, const char *sql)
{
	q->counters.statements++;
	PGresult *r = PQexec(q->conn, sql);
	ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : pg_err(q, r);
	PQclear(r);
	return rc;
}

int pg_one_i64(struct pg *q, const char *sql, const struct pg_params *p, int64_t *out)
{
	PGresult *r;
	int rc = pg_query(q, sql, p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1) {
		rc = SERVER_ERR_NOT_FOUND;
	} else {
		*out = pg_i64(r, 0, 0);
	}
	PQclear(r);
	return rc;
}

/* --- transactions ---------------------------------------------------------------------- */

static int pg_begin(void *ctx)
{
	struct pg *q = ctx;
	int rc = pg_revive(q);
	if (rc == 0)
		rc = pg_exec(q, "BEGIN ISOLATION LEVEL READ COMMITTED");
	q->write_tx = q->in_tx = rc == 0;
	q->households_locked = 0;
	return rc;
}

static int pg_begin_read(void *ctx)
{
	struct pg *q = ctx;
	q->write_tx = q->households_locked = 0;
	int rc = pg_revive(q);
	if (rc == 0)
		rc = pg_exec(q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	q->in_tx = rc == 0;
	return rc;
}

static int pg_commit(void *ctx)
{
	struct pg *q = ctx;
	q->write_tx = q->in_tx = q->households_locked = 0;
	/* a COMMIT of a failed transaction is a ROLLBACK: PostgreSQL says so with a warning,
	 * not an error, so ask first */
	if (PQtransactionStatus(q->conn) == PQTRANS_INERROR) {
		(void)pg_exec(q, "ROLLBACK");
		pg_fail(q, "the transaction failed earlier and was rolled back");
		return SERVER_ERR_IO;
	}
	return pg_exec(q, "COMMIT");
}

static void pg_rollback(void *ctx)
{
	struct pg *q = ctx;
	q->write_tx = q->in_tx = q->households_locked = 0;
	PGTransactionStatusType t = PQtransactionStatus(q->conn);
	if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
		(void)pg_exec(q, "ROLLBACK");
}

/* --- meta, sectors, sites, devices ------------------------------------------------------ */

static int pg_meta_get(void *ctx, const char *key, char *out, size_t cap)
{
	struct pg *q = ctx;
	static const char sql[] = "SELECT value FROM meta WHERE key = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, key);
	PGresult *r;
	int rc = pg_query(q, sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1)
		rc = SERVER_ERR_NOT_FOUND;
	else
		pg_copy_text(out, cap, r, 0, 0);
	PQclear(r);
	return rc;
}

int pg_announce(struct pg *q, const char *what)
{
	static const char sql[] = "SELECT pg_notify('" PG_CHANNEL "', $1)";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, what);
	return pg_query(q, sql, &p, NULL);
}

int pg_meta_set(void *ctx, const char *key, const char *value)
{
	struct pg *q = ctx;
	static const char sql[] = "INSERT INTO meta(key, value) VALUES($1, $2)"
	                          " ON CONFLICT(key) DO UPDATE SET value = excluded.value";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, key);
	pgp_text(&p, value);
	int rc = pg_query(q, sql, &p, NULL);
	/* the card keys' change stamp (store_sync.c): gates on every instance fetch them */
	if (rc == 0 && !strcmp(key, "card_keys_changed"))
		rc = pg_announce(q, "keys");
	return rc;
}

/* An INSERT ... ON CONFLICT DO NOTHING: EXISTS when it inserted nothing. A unique
 * violation would end PostgreSQL's transaction, where sqlite's goes on: callers that try
 * another value on EXISTS (pass_life's identifiers, household tags) need it to go on. */
static int insert_new(struct pg *q, const char *sql, const struct pg_params *p, PGresult **res)
{
	PGresult *r;
	int rc = pg_query(q, sql, p, &r);
	if (rc)
		return rc;
	if (pg_changes(r) == 0) {
		PQclear(r);
		return SERVER_ERR_EXISTS;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return 0;
}

static int pg_sector_add(void *ctx, const struct server_sector *s)
{
	static const char sql[] = "INSERT INTO sectors(number, name, slot) VALUES($1, $2, $3)"
	                          " ON CONFLICT DO NOTHING";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, s->number);
	pgp_text(&p, s->name);
	pgp_i64(&p, s->slot);
	return insert_new(ctx, sql, &p, NULL);
}

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	void *nv = realloc(*v, ncap * size);
	if (!nv)
		return SERVER_ERR_NOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

static int pg_sector_list(void *ctx, struct server_sector **out, size_t *n)
{
	struct pg *q = ctx;
	static const char sql[] = "SELECT number, name, slot FROM sectors ORDER BY number";
	PGresult *r;
	int rc = pg_query(q, sql, NULL, &r);
	if (rc)
		return rc;
	size_t len = (size_t)PQntuples(r);
	struct server_sector *v = calloc(len ? len : 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return SERVER_ERR_NOMEM;
	}
	for (size_t i = 0; i < len; i++) {
		v[i].number = (uint16_t)pg_i64(r, (int)i, 0);
		pg_copy_text(v[i].name, sizeof(v[i].name), r, (int)i, 1);
		v[i].slot = (uint8_t)pg_i64(r, (int)i, 2);
	}
	PQclear(r);
	*out = v;
	*n = len;
	return 0;
}

static int pg_site_add(void *ctx, struct server_site *s)
{
	/* a name taken draws no number: an identity value is drawn for each row the SELECT
	 * gives, and one drawn by a row ON CONFLICT drops would be lost (sites numbered 1, 3
	 * after a refused duplicate, where sqlite says 1, 2); the conflict clause stays for
	 * two agents adding one name at the same moment */
	static const char sql[] =
	        "INSERT INTO sites(name, sector, hours, tz, antipassback, expiry_policy)"
	        " SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS(SELECT 1 FROM sites WHERE"
	        " name = $1) ON CONFLICT DO NOTHING RETURNING id";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, s->name);
	pgp_i64(&p, s->sector);
	pgp_text(&p, s->hours);
	pgp_text(&p, s->tz);
	pgp_i64(&p, s->antipassback_min);
	pgp_text(&p, s->expiry_policy);
	PGresult *r;
	int rc = insert_new(ctx, sql, &p, &r);
	if (rc)
		return rc;
	s->id = (uint32_t)pg_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

#define SITE_COLS "SELECT id, name, sector, hours, tz, antipassback, expiry_policy FROM sites "

static int site_row(struct pg *q, const char *sql, const struct pg_params *p, struct server_site *o)
{
	PGresult *r;
	int rc = pg_query(q, sql, p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1) {
		PQclear(r);
		return SERVER_ERR_NOT_FOUND;
	}
	o->id = (uint32_t)pg_i64(r, 0, 0);
	pg_copy_text(o->name, sizeof(o->name), r, 0, 1);
	o->sector = (uint16_t)pg_i64(r, 0, 2);
	pg_copy_text(o->hours, sizeof(o->hours), r, 0, 3);
	pg_copy_text(o->tz, sizeof(o->tz), r, 0, 4);
	o->antipassback_min = (uint32_t)pg_i64(r, 0, 5);
	pg_copy_text(o->expiry_policy, sizeof(o->expiry_policy), r, 0, 6);
	PQclear(r);
	return 0;
}

static int pg_site_find(void *ctx, const char *name, struct server_site *out)
{
	static const char sql[] = SITE_COLS "WHERE name = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, name);
	return site_row(ctx, sql, &p, out);
}

static int pg_site_get(void *ctx, uint32_t id, struct server_site *out)
{
	static const char sql[] = SITE_COLS "WHERE id = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, id);
	return site_row(ctx, sql, &p, out);
}

static int pg_device_add(void *ctx, struct server_device *d)
{
	struct pg *q = ctx;
	/* gate numbers are MAX + 1: two instances adding at once take turns */
	static const char lock_sql[] = "SELECT pg_advisory_xact_lock($1)";
	static const char sql[] =
	        "INSERT INTO devices(id, gate, site, sector, revoked, created)"
	        " VALUES($1, (SELECT COALESCE(MAX(gate), 0) + 1 FROM devices), $2, $3, 0, $4)"
	        " ON CONFLICT DO NOTHING RETURNING gate";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, PG_LOCK_DEVICES);
	int rc = pg_query(q, lock_sql, &p, NULL);
	if (rc)
		return rc;
	pgp_init(&p);
	pgp_text(&p, d->id);
	pgp_i64(&p, d->site);
	pgp_i64(&p, d->sector);
	pgp_i64(&p, d->created);
	PGresult *r;
	if ((rc = insert_new(q, sql, &p, &r)) != 0)
		return rc;
	d->gate = (uint32_t)pg_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

static int pg_device_find(void *ctx, const char *id, struct server_device *out)
{
	struct pg *q = ctx;
	static const char sql[] =
	        "SELECT id, gate, site, sector, revoked, created FROM devices WHERE id = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, id);
	PGresult *r;
	int rc = pg_query(q, sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1) {
		PQclear(r);
		return SERVER_ERR_NOT_FOUND;
	}
	pg_copy_text(out->id, sizeof(out->id), r, 0, 0);
	out->gate = (uint32_t)pg_i64(r, 0, 1);
	out->site = (uint32_t)pg_i64(r, 0, 2);
	out->sector = (uint16_t)pg_i64(r, 0, 3);
	out->revoked = (int)pg_i64(r, 0, 4);
	out->created = pg_i64(r, 0, 5);
	PQclear(r);
	return 0;
}

/* An UPDATE or DELETE: NOT_FOUND when it touched nothing. */
static int change_some(struct pg *q, const char *sql, const struct pg_params *p)
{
	PGresult *r;
	int rc = pg_query(q, sql, p, &r);
	if (rc)
		return rc;
	rc = pg_changes(r) ? 0 : SERVER_ERR_NOT_FOUND;
	PQclear(r);
	return rc;
}

static int pg_device_revoke(void *ctx, const char *id)
{
	static const char sql[] = "UPDATE devices SET revoked = 1 WHERE id = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, id);
	return change_some(ctx, sql, &p);
}

/* --- households ------------------------------------------------------------------------- */

/* A name differing from another only in case is taken too (schema 8). Two agents adding
 * "Dupont" and "dupont" at once would each miss the other's row under READ COMMITTED: names
 * are given one at a time, until the transaction's end (the sqlite store's write lock). */
static int households_lock(struct pg *q)
{
	static const char lock_sql[] = "SELECT pg_advisory_xact_lock($1)";
	/* once per transaction: an import names a household on every line */
	if (q->in_tx && q->households_locked)
		return 0;
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, PG_LOCK_HOUSEHOLDS);
	int rc = pg_query(q, lock_sql, &p, NULL);
	q->households_locked = rc == 0 && q->in_tx;
	return rc;
}

static int pg_household_add(void *ctx, const char *name, int64_t *id)
{
	/* a name taken draws no number (pg_site_add) */
	static const char sql[] =
	        "INSERT INTO households(name) SELECT $1 WHERE NOT EXISTS(SELECT 1 FROM households"
	        " WHERE lower(name) = lower($1)) ON CONFLICT DO NOTHING RETURNING id";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, name);
	PGresult *r;
	int rc = households_lock(ctx);
	if (rc)
		return rc;
	rc = insert_new(ctx, sql, &p, &r);
	if (rc)
		return rc;
	*id = pg_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

static int pg_household_find(void *ctx, const char *name, int64_t *id)
{
	/* the exact name first: a pair made before schema 8 */
	static const char sql[] = "SELECT id FROM households WHERE lower(name) = lower($1)"
	                          " ORDER BY name = $1 DESC, id LIMIT 1";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, name);
	return pg_one_i64(ctx, sql, &p, id);
}

static int pg_household_each(void *ctx, const char *part,
                             int (*fn)(void *arg, int64_t id, const char *name), void *arg)
{
	/* names are ASCII (server_name_ok): lower() folds them whole, in any locale */
	static const char sql[] = "SELECT id, name FROM households WHERE $1::text IS NULL"
	                          " OR strpos(lower(name), $1::text) > 0 ORDER BY name, id";
	struct pg_params p;
	pgp_init(&p);
	if (part)
		pgp_text(&p, part);
	else
		pgp_null(&p);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	int ret = 0;
	for (int i = 0; i < PQntuples(r) && !ret; i++) {
		char name[SERVER_NAME_MAX];
		pg_copy_text(name, sizeof(name), r, i, 1);
		ret = fn(arg, pg_i64(r, i, 0), name);
	}
	PQclear(r);
	return ret;
}

static int pg_household_rename(void *ctx, int64_t id, const char *name)
{
	/* a name taken, in any case but the household's own ("dupont" -> "Dupont"), changes
	 * nothing: EXISTS when the household is there */
	static const char sql[] =
	        "UPDATE households SET name = $1 WHERE id = $2 AND NOT EXISTS(SELECT 1 FROM"
	        " households WHERE lower(name) = lower($1) AND id <> $2)";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, name);
	pgp_i64(&p, id);
	int rc = households_lock(ctx);
	if (rc == 0)
		rc = change_some(ctx, sql, &p);
	if (rc == SERVER_ERR_NOT_FOUND) {
		char held[SERVER_NAME_MAX];
		rc = pg_household_name(ctx, id, held, sizeof(held)) == 0 ? SERVER_ERR_EXISTS
		                                                         : SERVER_ERR_NOT_FOUND;
	}
	return rc;
}

static int pg_household_delete(void *ctx, int64_t id)
{
	static const char left_sql[] = "SELECT count(*) FROM passes WHERE household = $1";
	static const char tags_sql[] = "DELETE FROM household_tags WHERE household = $1";
	static const char del_sql[] = "DELETE FROM households WHERE id = $1";
	struct pg_params p;
	int64_t left = 0;
	pgp_init(&p);
	pgp_i64(&p, id);
	int rc = pg_one_i64(ctx, left_sql, &p, &left);
	if (rc == 0 && left)
		rc = SERVER_ERR_EXISTS;
	if (rc == 0)
		rc = pg_query(ctx, tags_sql, &p, NULL);
	return rc ? rc : change_some(ctx, del_sql, &p);
}

static int pg_household_tag_add(void *ctx, int64_t household, uint16_t sector, uint32_t tag)
{
	static const char sql[] = "INSERT INTO household_tags(household, sector, tag)"
	                          " VALUES($1, $2, $3) ON CONFLICT DO NOTHING";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, household);
	pgp_i64(&p, sector);
	pgp_i64(&p, tag);
	return insert_new(ctx, sql, &p, NULL);
}

static int pg_household_tag_get(void *ctx, int64_t household, uint16_t sector, uint32_t *tag)
{
	static const char sql[] =
	        "SELECT tag FROM household_tags WHERE household = $1 AND sector = $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, household);
	pgp_i64(&p, sector);
	int64_t v = 0;
	int rc = pg_one_i64(ctx, sql, &p, &v);
	*tag = (uint32_t)v;
	return rc;
}

/* --- passes ----------------------------------------------------------------------------- */

/* Parameters 1 to 6 of the passes INSERT and UPDATE (an absent household or replacement
 * stays NULL). */
static void pass_params(struct pg_params *p, const struct server_pass *ps)
{
	pgp_text(p, ps->holder);
	if (ps->household)
		pgp_i64(p, ps->household);
	else
		pgp_null(p);
	pgp_i64(p, ps->state);
	pgp_text(p, ps->reason);
	pgp_text(p, ps->medium);
	if (ps->replaced_by)
		pgp_i64(p, ps->replaced_by);
	else
		pgp_null(p);
}

static int pg_pass_add(void *ctx, struct server_pass *ps)
{
	static const char sql[] =
	        "INSERT INTO passes(holder, household, state, reason, medium, replaced_by, created,"
	        " import_id, holder_key) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
	struct pg_params p;
	char key[SERVER_TEXT_MAX * 2];
	pgp_init(&p);
	pass_params(&p, ps);
	pgp_i64(&p, ps->created);
	if (ps->import_id) /* a pass of an import stays out of lists until it is done */
		pgp_i64(&p, ps->import_id);
	else
		pgp_null(&p);
	server_text_fold(ps->holder, key, sizeof(key));
	pgp_text(&p, key);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	ps->id = pg_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

#define PASS_COLS "SELECT id, holder, household, state, reason, medium, replaced_by, created "

static void pass_from_row(const PGresult *r, int row, struct server_pass *o)
{
	o->id = pg_i64(r, row, 0);
	pg_copy_text(o->holder, sizeof(o->holder), r, row, 1);
	o->household = pg_i64(r, row, 2);
	o->state = (int)pg_i64(r, row, 3);
	pg_copy_text(o->reason, sizeof(o->reason), r, row, 4);
	pg_copy_text(o->medium, sizeof(o->medium), r, row, 5);
	o->replaced_by = pg_i64(r, row, 6);
	o->created = pg_i64(r, row, 7);
	o->import_id = 0; /* pass_add's input only: a pass read and added again is not imported */
}

static int pg_pass_get(void *ctx, int64_t id, struct server_pass *out)
{
	struct pg *q = ctx;
	static const char sql[] = PASS_COLS "FROM passes WHERE id = $1";
	/* read to be changed (a revocation checks the state it then writes): a second
	 * instance or agent changing the same pass waits for this transaction */
	static const char sql_locked[] = PASS_COLS "FROM passes WHERE id = $1 FOR UPDATE";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, id);
	PGresult *r;
	int rc = pg_query(q, q->write_tx ? sql_locked : sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1)
		rc = SERVER_ERR_NOT_FOUND;
	else
		pass_from_row(r, 0, out);
	PQclear(r);
	return rc;
}

static int pg_pass_update(void *ctx, const struct server_pass *ps)
{
	static const char sql[] = "UPDATE passes SET holder = $1, household = $2, state = $3,"
	                          " reason = $4, medium = $5, replaced_by = $6, holder_key = $8"
	                          " WHERE id = $7";
	struct pg_params p;
	char key[SERVER_TEXT_MAX * 2];
	pgp_init(&p);
	pass_params(&p, ps);
	pgp_i64(&p, ps->id);
	server_text_fold(ps->holder, key, sizeof(key));
	pgp_text(&p, key);
	return change_some(ctx, sql, &p);
}

static int pg_pass_each(void *ctx, const struct server_pass_filter *f,
                        int (*fn)(void *arg, const struct server_pass *p), void *arg)
{
	struct pg *q = ctx;
	/* A household's passes through its index (a household page, a move, a removal): a
	 * generic plan for "$2 = 0 OR household = $2" would scan every pass. */
#define EACH_WHERE(household)                                                                      \
	PASS_COLS "FROM passes WHERE ($1::text IS NULL OR strpos(holder_key, $1::text) > 0)"       \
	          " AND (import_id IS NULL OR import_id IN (SELECT id FROM imports"                \
	          " WHERE done = 1)) AND " household " AND ($3::int < 0 OR state = $3::int)"       \
	          " AND ($4::int < 0 OR EXISTS (SELECT 1 FROM rights r WHERE r.pass ="             \
	          " passes.id AND r.sector = $4::int)) ORDER BY id"
	static const char sql[] = EACH_WHERE("$2::bigint = 0");
	static const char sql_household[] = EACH_WHERE("household = $2::bigint");
#undef EACH_WHERE
	struct pg_params p;
	char key[SERVER_TEXT_MAX * 2];
	pgp_init(&p);
	if (f->holder) {
		server_text_fold(f->holder, key, sizeof(key));
		pgp_text(&p, key);
	} else
		pgp_null(&p);
	pgp_i64(&p, f->household);
	pgp_i64(&p, f->state);
	pgp_i64(&p, f->sector);
	/* the whole result at once: a deployment's passes fit in the admin's memory, and fn
	 * may run statements of its own on this connection */
	PGresult *r;
	int rc = pg_query(q, f->household ? sql_household : sql, &p, &r);
	if (rc)
		return rc;
	int ret = 0;
	for (int i = 0; i < PQntuples(r) && !ret; i++) {
		struct server_pass ps;
		pass_from_row(r, i, &ps);
		ret = fn(arg, &ps);
	}
	PQclear(r);
	return ret;
}

static int pg_pass_id_add(void *ctx, int64_t pass, uint16_t sector,
                          const uint8_t id[SERVER_PASS_ID_LEN],
                          const uint8_t key[PROTO_LIST_KEY_LEN])
{
	static const char sql[] = "INSERT INTO pass_ids(pass, sector, ident, listkey)"
	                          " VALUES($1, $2, $3, $4) ON CONFLICT DO NOTHING";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, pass);
	pgp_i64(&p, sector);
	pgp_blob(&p, id, SERVER_PASS_ID_LEN);
	pgp_blob(&p, key, PROTO_LIST_KEY_LEN);
	return insert_new(ctx, sql, &p, NULL);
}

static int pg_pass_id_get(void *ctx, int64_t pass, uint16_t sector, uint8_t id[SERVER_PASS_ID_LEN],
                          uint8_t key[PROTO_LIST_KEY_LEN])
{
	static const char sql[] =
	        "SELECT ident, listkey FROM pass_ids WHERE pass = $1 AND sector = $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, pass);
	pgp_i64(&p, sector);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	uint8_t tid[SERVER_PASS_ID_LEN], tkey[PROTO_LIST_KEY_LEN];
	if (PQntuples(r) < 1)
		rc = SERVER_ERR_NOT_FOUND;
	else if ((rc = pg_blob_fixed(r, 0, 0, tid, sizeof(tid))) == 0)
		rc = pg_blob_fixed(r, 0, 1, tkey, sizeof(tkey));
	PQclear(r);
	if (rc == 0 && id)
		memcpy(id, tid, sizeof(tid));
	if (rc == 0 && key)
		memcpy(key, tkey, sizeof(tkey));
	return rc;
}

static int pg_pass_id_find(void *ctx, uint16_t sector, const uint8_t id[SERVER_PASS_ID_LEN],
                           int64_t *pass)
{
	static const char sql[] = "SELECT pass FROM pass_ids WHERE sector = $1 AND ident = $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_blob(&p, id, SERVER_PASS_ID_LEN);
	return pg_one_i64(ctx, sql, &p, pass);
}

/* --- rights ----------------------------------------------------------------------------- */

/* A right's parameters, in the order of the rights table's columns: $1 .. $10. */
static void pgp_right(struct pg_params *p, const struct server_right *rt)
{
	pgp_init(p);
	pgp_i64(p, rt->pass);
	pgp_i64(p, rt->sector);
	pgp_profile(p, &rt->p);
}

static int pg_right_set(void *ctx, const struct server_right *rt)
{
	static const char sql[] =
	        "INSERT INTO rights(pass, sector, " PG_PROFILE_COLS ")"
	        " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT(pass, sector) DO"
	        " UPDATE SET product = excluded.product, valid_from = excluded.valid_from,"
	        " valid_to = excluded.valid_to, lim = excluded.lim, period = excluded.period,"
	        " scope = excluded.scope, fare = excluded.fare, flags = excluded.flags";
	struct pg_params p;
	pgp_right(&p, rt);
	return pg_query(ctx, sql, &p, NULL);
}

static int pg_right_add(void *ctx, const struct server_right *rt)
{
	static const char sql[] = "INSERT INTO rights(pass, sector, " PG_PROFILE_COLS ")"
	                          " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	                          " ON CONFLICT DO NOTHING";
	struct pg_params p;
	pgp_right(&p, rt);
	return insert_new(ctx, sql, &p, NULL);
}

static int pg_right_delete(void *ctx, int64_t pass, uint16_t sector)
{
	static const char sql[] = "DELETE FROM rights WHERE pass = $1 AND sector = $2";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, pass);
	pgp_i64(&p, sector);
	return change_some(ctx, sql, &p);
}

static int pg_rights_of_pass(void *ctx, int64_t pass, struct server_right **out, size_t *n)
{
	static const char sql[] =
	        "SELECT sector, " PG_PROFILE_COLS " FROM rights WHERE pass = $1 ORDER BY sector";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, pass);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	size_t len = (size_t)PQntuples(r), cap = 0;
	struct server_right *v = NULL;
	if (grow((void **)&v, &cap, len ? len : 1, sizeof(*v)) != 0) {
		PQclear(r);
		return SERVER_ERR_NOMEM;
	}
	for (size_t i = 0; i < len; i++) {
		v[i].pass = pass;
		v[i].sector = (uint16_t)pg_i64(r, (int)i, 0);
		pg_profile_from_row(r, (int)i, 1, &v[i].p);
	}
	PQclear(r);
	*out = v;
	*n = len;
	return 0;
}

/* --- the connection --------------------------------------------------------------------- */

static void pg_counters(void *ctx, struct server_store_counters *out)
{
	struct pg *q = ctx;
	*out = q->counters;
}

/* sqlite's busy timeout is PostgreSQL's lock_timeout: how long a statement waits for a row
 * or lock another transaction holds before it fails with SERVER_ERR_BUSY. */
static void pg_busy_timeout(void *ctx, int ms)
{
	struct pg *q = ctx;
	static const char sql[] = "SELECT set_config('lock_timeout', $1, false)";
	char v[24];
	snprintf(v, sizeof(v), "%dms", ms > 0 ? ms : 1);
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, v);
	(void)pg_query(q, sql, &p, NULL);
}

/* Bulk work needs nothing of the connection here: PostgreSQL's shared buffers and its
 * checkpoints are the DBA's settings, not one client's. */
static void pg_bulk(void *ctx, unsigned cache_mib, unsigned wal_mib)
{
	(void)ctx;
	(void)cache_mib;
	(void)wal_mib;
}

/* A connection of its own that only listens: the store's connection runs statements, and
 * libpq would read announcements there in the middle of a query result. */
static int pg_listen(void *ctx, int *fd)
{
	struct pg *q = ctx;
	if (q->listen_conn)
		PQfinish(q->listen_conn);
	q->listen_conn = PQconnectdb(q->conninfo);
	if (!q->listen_conn || PQstatus(q->listen_conn) != CONNECTION_OK) {
		pg_fail(q, q->listen_conn ? PQerrorMessage(q->listen_conn) : "out of memory");
		PQfinish(q->listen_conn);
		q->listen_conn = NULL;
		return SERVER_ERR_UNREACHABLE;
	}
	PGresult *r = PQexec(q->listen_conn, "LISTEN " PG_CHANNEL);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok || PQsetnonblocking(q->listen_conn, 1) != 0) {
		pg_fail(q, PQerrorMessage(q->listen_conn));
		PQfinish(q->listen_conn);
		q->listen_conn = NULL;
		return SERVER_ERR_IO;
	}
	*fd = PQsocket(q->listen_conn);
	return 0;
}

static int pg_notified(void *ctx)
{
	struct pg *q = ctx;
	if (!q->listen_conn)
		return SERVER_ERR_IO;
	if (!PQconsumeInput(q->listen_conn) || PQstatus(q->listen_conn) != CONNECTION_OK) {
		pg_fail(q, PQerrorMessage(q->listen_conn));
		PQfinish(q->listen_conn);
		q->listen_conn = NULL;
		return SERVER_ERR_UNREACHABLE;
	}
	int n = 0;
	PGnotify *no;
	while ((no = PQnotifies(q->listen_conn)) != NULL) {
		n++;
		PQfreemem(no);
	}
	return n > 0;
}

static const char *pg_last_error(void *ctx)
{
	struct pg *q = ctx;
	return q->errmsg;
}

static void pg_close(void *ctx)
{
	struct pg *q = ctx;
	if (!q)
		return;
	PQfinish(q->conn);
	if (q->listen_conn)
		PQfinish(q->listen_conn);
	free(q->conninfo);
	free(q);
}

static const struct server_store_ops pg_ops = {
        .begin = pg_begin,
        .begin_read = pg_begin_read,
        .commit = pg_commit,
        .rollback = pg_rollback,
        .meta_get = pg_meta_get,
        .meta_set = pg_meta_set,
        .sector_add = pg_sector_add,
        .sector_list = pg_sector_list,
        .site_add = pg_site_add,
        .site_find = pg_site_find,
        .site_get = pg_site_get,
        .device_add = pg_device_add,
        .device_find = pg_device_find,
        .device_revoke = pg_device_revoke,
        .device_health_put = pg_device_health_put,
        .device_status_list = pg_device_status_list,
        .household_add = pg_household_add,
        .household_find = pg_household_find,
        .household_each = pg_household_each,
        .household_rename = pg_household_rename,
        .household_delete = pg_household_delete,
        .household_tag_add = pg_household_tag_add,
        .household_tag_get = pg_household_tag_get,
        .pass_add = pg_pass_add,
        .pass_get = pg_pass_get,
        .pass_update = pg_pass_update,
        .pass_each = pg_pass_each,
        .pass_id_add = pg_pass_id_add,
        .pass_id_get = pg_pass_id_get,
        .pass_id_find = pg_pass_id_find,
        .right_set = pg_right_set,
        .right_add = pg_right_add,
        .right_delete = pg_right_delete,
        .rights_of_pass = pg_rights_of_pass,
        .profiles = pg_profiles,
        .profile_add = pg_profile_add,
        .list_rows = pg_list_rows,
        .list_row = pg_list_row,
        .list_changes = pg_list_changes,
        .list_changes_trim = pg_list_changes_trim,
        .usage_position = pg_usage_position,
        .usage_position_of = pg_usage_position_of,
        .consumption_expire = pg_consumption_expire,
        .consumption_rekey = pg_consumption_rekey,
        .consumption_retire = pg_consumption_retire,
        .uses_of_key = pg_uses_of_key,
        .household_name = pg_household_name,
        .pass_erase = pg_pass_erase,
        .erase_flush = pg_erase_flush,
        .list_latest = pg_list_latest,
        .list_published = pg_list_published,
        .list_version_get = pg_list_version_get,
        .list_version_put = pg_list_version_put,
        .list_file_get = pg_list_file_get,
        .list_file_put = pg_list_file_put,
        .list_files_retire = pg_list_files_retire,
        .delta_get = pg_delta_get,
        .delta_put = pg_delta_put,
        .list_prune = pg_list_prune,
        .list_files_prune = pg_list_files_prune,
        .import_open = pg_import_open,
        .import_progress = pg_import_progress,
        .import_key_get = pg_import_key_get,
        .import_key_add = pg_import_key_add,
        .import_done = pg_import_done,
        .counters = pg_counters,
        .busy_timeout = pg_busy_timeout,
        .bulk = pg_bulk,
        .ingest = pg_ingest,
        .acked = pg_acked,
        .product_known = pg_product_known,
        .consumption_discard = pg_consumption_discard,
        .counted_right = pg_counted_right,
        .stats = pg_stats,
        .publish_lock = pg_publish_lock,
        .listen = pg_listen,
        .notified = pg_notified,
        .last_error = pg_last_error,
        .close = pg_close,
};

/* --- schema ----------------------------------------------------------------------------- */

/* The schema's version: 0 when the database holds no citypass schema at all. */
static int schema_version(struct pg *q, int64_t *v)
{
	/* two statements: one naming a table that does not exist would not even prepare */
	static const char has_sql[] =
	        "SELECT CASE WHEN to_regclass('citypass_schema') IS NULL THEN 0 ELSE 1 END";
	static const char sql[] = "SELECT COALESCE(MAX(version), 0) FROM citypass_schema";
	int64_t has = 0;
	int rc = pg_one_i64(q, has_sql, NULL, &has);
	*v = 0;
	return rc || !has ? rc : pg_one_i64(q, sql, NULL, v);
}

/* Create (create = 1) or check the schema, in one transaction under an advisory lock, so
 * that instances starting together find it made once. Older versions would be migrated
 * here, step by step, as the sqlite store does; version 5 is the first of this backend. */
static int schema_open(struct pg *q, int create, char *why, size_t why_cap)
{
	static const char lock_sql[] = "SELECT pg_advisory_xact_lock($1)";
	static const char set_sql[] = "INSERT INTO citypass_schema(version) VALUES($1)";
	struct pg_params p;
	int64_t v = 0;
	int rc = pg_exec(q, "BEGIN");
	pgp_init(&p);
	pgp_i64(&p, PG_LOCK_SCHEMA);
	if (rc == 0)
		rc = pg_query(q, lock_sql, &p, NULL);
	if (rc == 0)
		rc = schema_version(q, &v);
	if (rc == 0 && create && v != 0) {
		rc = SERVER_ERR_EXISTS;
		snprintf(why, why_cap,
		         "the database already holds a citypass deployment (schema %" PRId64 ")",
		         v);
	} else if (rc == 0 && !create && v == 0) {
		rc = SERVER_ERR_NOT_FOUND;
		snprintf(why, why_cap,
		         "the database holds no citypass deployment (citypass-admin init --store "
		         "makes one)");
	} else if (rc == 0 && v > PG_SCHEMA_VERSION) {
		/* never downgrade: what a newer release keeps would be lost (docs/operations.md) */
		rc = SERVER_ERR_SCHEMA_NEWER;
		snprintf(why, why_cap,
		         "the database's schema is version %" PRId64
		         ", newer than this release's %d: "
		         "run the release that wrote it, or a newer one",
		         v, PG_SCHEMA_VERSION);
	} else if (rc == 0 && !create && (v == 6 || v == 7)) {
		/* each step in this one transaction: an interrupted upgrade leaves version v */
		int64_t from = v;
		if (v == 6 && (rc = pg_migrate_6_to_7(q)) == 0)
			v = 7;
		if (rc == 0 && v == 7 && (rc = pg_exec(q, PG_SCHEMA_HOUSEHOLDS_FOLDED)) == 0)
			v = 8;
		pgp_init(&p);
		pgp_i64(&p, PG_SCHEMA_VERSION);
		if (rc == 0)
			rc = pg_query(q, set_sql, &p, NULL);
		if (rc)
			snprintf(why, why_cap,
			         "cannot bring the schema from version %" PRId64 " to %d", from,
			         PG_SCHEMA_VERSION);
	} else if (rc == 0 && !create && v < PG_SCHEMA_VERSION) {
		rc = SERVER_ERR_INVALID;
		snprintf(why, why_cap, "the database's schema version %" PRId64 " is unknown", v);
	} else if (rc == 0 && create) {
		rc = pg_exec(q, pg_schema_sql);
		pgp_init(&p);
		pgp_i64(&p, PG_SCHEMA_VERSION);
		if (rc == 0)
			rc = pg_query(q, set_sql, &p, NULL);
	}
	if (rc == 0)
		rc = pg_exec(q, "COMMIT");
	else
		(void)pg_exec(q, "ROLLBACK");
	return rc;
}

static void pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int server_store_open_pg(struct server_store *out, const char *conninfo, int create,
                         struct server_why *why)
{
	if (!out || !conninfo)
		return SERVER_ERR_ARG;
	struct pg *q = calloc(1, sizeof(*q));
	if (!q)
		return SERVER_ERR_NOMEM;
	q->conninfo = strdup(conninfo);
	q->conn = q->conninfo ? PQconnectdb(conninfo) : NULL;
	if (!q->conn || PQstatus(q->conn) != CONNECTION_OK) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s",
		         q->conn ? PQerrorMessage(q->conn) : "out of memory");
		char *nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		pg_close(q);
		/* the URI may hold a password: name the failure, not the string */
		return server_why_set(why, SERVER_ERR_UNREACHABLE,
		                      "cannot connect to the PostgreSQL database: %s", msg);
	}
	/* our own words, not PostgreSQL's notices on stderr (a daemon's stderr is its log) */
	PQsetNoticeProcessor(q->conn, pg_quiet, NULL);
	char text[SERVER_WHY_MAX] = "";
	int rc = pg_exec(q, "SET client_min_messages = warning; SET lock_timeout = '10s'");
	if (rc == 0)
		rc = schema_open(q, create, text, sizeof(text));
	if (rc) {
		if (!*text)
			snprintf(text, sizeof(text), "%s (%s)", server_strerror(rc), q->errmsg);
		pg_close(q);
		return server_why_set(why, rc, "%s", text);
	}
	out->ops = &pg_ops;
	out->ctx = q;
	return 0;
}
