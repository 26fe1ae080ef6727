/*
 * store_sqlite_rows.c — every list row of a sector, for a full rebuild (server/store.h,
 * list_rows), read by scanning each table once and joining in memory.
 *
 * The one-key query (store_sqlite_lists.c, list_row) joins rights, passes, pass_ids and
 * household_tags through their indexes: five or six B-tree searches per row. Run over a
 * whole sector it costs more than everything else of a rebuild together (5.7 s of CPU at
 * 5 M passes). Here each table is read once, in its own order, and joined in arrays
 * indexed by pass id: about a third of that. The result is the same rows; a test compares
 * them with the one-key query for every key (tests/server/test_server_store.c).
 *
 * While an import is under way (its passes are not listed yet), the rows come from the
 * SQL join, which knows which imports are done; a rebuild follows every import anyway.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_sqlite_internal.h"

/* The scan reads the tables through a memory map of the file (sqlite caps it at 2 GiB; the
 * pages beyond are read as before). With the file not in the page cache, reading its
 * tables a 4 KiB pread at a time, the passes' pages scattered among the others', defeats
 * the kernel's read-ahead: at 500 000 passes the scan of `passes` took 0.32 s cold against
 * 0.11 s warm; mapped, 0.11 s either way. Only for the scan, which only reads: a disk
 * error while mapped is a SIGBUS, not an error code. */
#define SCAN_MMAP_BYTES "2147418112"

/* Pass ids above this are not indexed in memory (a database where ids are that sparse,
 * or below 1, is read with the SQL join). 64 M ids: 1.5 GiB of slots, never reached by a
 * town. */
#define MAX_SLOT_ID (64 * 1024 * 1024)

struct slot {
	int64_t household;
	int32_t state;
	uint8_t in_household; /* household is not NULL */
	uint8_t exists;       /* a passes row */
	uint8_t has_key;      /* a pass_ids row in the sector */
	uint8_t key[PROTO_LIST_KEY_LEN];
};

struct tag {
	int64_t household;
	uint32_t tag;
};

/* Uses summed over the current periods: per list key (pseudonym), or per household. */
struct use_sum {
	uint8_t key[PROTO_LIST_KEY_LEN]; /* the pseudonym; zero for a household's */
	int64_t household;
	int64_t product, period, count;
};

struct rows_scan {
	struct sq *q;
	uint16_t sector;
	struct slot *slots;
	int64_t max_id;
	struct tag *tags;
	size_t n_tags;
	struct use_sum *own, *shared; /* by key, by household */
	size_t n_own, n_shared;
};

static int tag_cmp(const void *a, const void *b)
{
	const struct tag *x = a, *y = b;
	return x->household < y->household ? -1 : x->household > y->household;
}

static int sum_cmp(const void *a, const void *b)
{
	const struct use_sum *x = a, *y = b;
	int c = memcmp(x->key, y->key, PROTO_LIST_KEY_LEN);
	if (c)
		return c;
	if (x->household != y->household)
		return x->household < y->household ? -1 : 1;
	if (x->product != y->product)
		return x->product < y->product ? -1 : 1;
	return x->period < y->period ? -1 : x->period > y->period;
}

/* By list key alone: a key names one pass at most, so one household. */
static int key_only_cmp(const void *a, const void *b)
{
	return memcmp(((const struct use_sum *)a)->key, ((const struct use_sum *)b)->key,
	              PROTO_LIST_KEY_LEN);
}

static int64_t sum_find(const struct use_sum *v, size_t n, const struct use_sum *want)
{
	const struct use_sum *hit = n ? bsearch(want, v, n, sizeof(*v), sum_cmp) : NULL;
	return hit ? hit->count : 0;
}

/* The end of a scan: sqlite's DONE, sqlite's failure, or one of ours (a row that cannot
 * be, or memory). */
static int scan_end(struct sq *q, sqlite3_stmt *st, int rc)
{
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SERVER_ERR_IO)
		sq_fail(q, "a list key that is not 8 bytes long");
	return rc < 0 ? rc : sq_err(q, rc);
}

static int step_all(struct rows_scan *s, const char *sql, int bind_sector,
                    int (*each)(struct rows_scan *, sqlite3_stmt *))
{
	sqlite3_stmt *st;
	int rc = sq_prep(s->q, &st, sql);
	if (rc)
		return rc;
	if (bind_sector)
		sqlite3_bind_int(st, 1, s->sector);
	while ((rc = sq_step(s->q, st)) == SQLITE_ROW) {
		if ((rc = each(s, st)) != 0)
			break;
	}
	return scan_end(s->q, st, rc);
}

static struct slot *slot_of(struct rows_scan *s, int64_t id)
{
	return id >= 1 && id <= s->max_id ? &s->slots[id] : NULL;
}

static int take_pass(struct rows_scan *s, sqlite3_stmt *st)
{
	struct slot *p = slot_of(s, sqlite3_column_int64(st, 0));
	if (!p)
		return 0; /* in range in the caller's snapshot (sq_list_rows): never, but cheap */
	p->exists = 1;
	p->state = sqlite3_column_int(st, 1);
	p->in_household = sqlite3_column_type(st, 2) != SQLITE_NULL;
	p->household = sqlite3_column_int64(st, 2);
	return 0;
}

static int take_id(struct rows_scan *s, sqlite3_stmt *st)
{
	struct slot *p = slot_of(s, sqlite3_column_int64(st, 0));
	if (!p)
		return 0; /* no such pass: the join drops it */
	if (sqlite3_column_type(st, 1) != SQLITE_BLOB ||
	    sqlite3_column_bytes(st, 1) != PROTO_LIST_KEY_LEN)
		return SERVER_ERR_IO; /* as the one-key query refuses it */
	memcpy(p->key, sqlite3_column_blob(st, 1), PROTO_LIST_KEY_LEN);
	p->has_key = 1;
	return 0;
}

static int take_tag(struct rows_scan *s, sqlite3_stmt *st)
{
	if ((s->n_tags & (s->n_tags - 1)) == 0) { /* 0, 1, 2, 4...: grow */
		struct tag *nv = realloc(s->tags, (s->n_tags ? s->n_tags * 2 : 64) * sizeof(*nv));
		if (!nv)
			return SERVER_ERR_NOMEM;
		s->tags = nv;
	}
	s->tags[s->n_tags++] =
	        (struct tag){sqlite3_column_int64(st, 0), (uint32_t)sqlite3_column_int64(st, 1)};
	return 0;
}

static int push_sum(struct use_sum **v, size_t *n, const struct use_sum *u)
{
	if ((*n & (*n - 1)) == 0) {
		struct use_sum *nv = realloc(*v, (*n ? *n * 2 : 64) * sizeof(*nv));
		if (!nv)
			return SERVER_ERR_NOMEM;
		*v = nv;
	}
	(*v)[(*n)++] = *u;
	return 0;
}

static int take_use(struct rows_scan *s, sqlite3_stmt *st)
{
	if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
	    sqlite3_column_bytes(st, 0) != PROTO_LIST_KEY_LEN)
		return 0; /* equal to no list key: it counts for no row */
	struct use_sum u = {.product = sqlite3_column_int64(st, 1),
	                    .period = sqlite3_column_int64(st, 2),
	                    .count = sqlite3_column_int64(st, 3)};
	memcpy(u.key, sqlite3_column_blob(st, 0), PROTO_LIST_KEY_LEN);
	return push_sum(&s->own, &s->n_own, &u);
}

/* The household sums: each pseudonym's uses go to the household of the pass it names in
 * the sector (a list key names one pass at most: UNIQUE(sector, listkey)). */
static int sum_households(struct rows_scan *s)
{
	struct use_sum *by_key = NULL;
	size_t n = 0;
	int rc = 0;
	for (int64_t id = 1; id <= s->max_id && rc == 0; id++) {
		const struct slot *p = &s->slots[id];
		if (p->exists && p->has_key && p->in_household) {
			struct use_sum k = {.household = p->household};
			memcpy(k.key, p->key, PROTO_LIST_KEY_LEN);
			rc = push_sum(&by_key, &n, &k);
		}
	}
	if (rc == 0 && n)
		qsort(by_key, n, sizeof(*by_key), key_only_cmp);
	for (size_t i = 0; i < s->n_own && rc == 0 && n; i++) {
		const struct use_sum *m =
		        bsearch(&s->own[i], by_key, n, sizeof(*by_key), key_only_cmp);
		if (!m)
			continue;
		struct use_sum h = {.household = m->household,
		                    .product = s->own[i].product,
		                    .period = s->own[i].period,
		                    .count = s->own[i].count};
		rc = push_sum(&s->shared, &s->n_shared, &h);
	}
	free(by_key);
	if (rc || s->n_shared < 2)
		return rc;
	qsort(s->shared, s->n_shared, sizeof(*s->shared), sum_cmp);
	size_t w = 0;
	for (size_t i = 1; i < s->n_shared; i++) {
		if (sum_cmp(&s->shared[w], &s->shared[i]) == 0)
			s->shared[w].count += s->shared[i].count;
		else
			s->shared[++w] = s->shared[i];
	}
	s->n_shared = w + 1;
	return 0;
}

/* The period number a right counts in now (CUR_PERIOD of the one-key query). */
static int64_t current_period(int64_t kind, const struct server_periods *now)
{
	return kind >= 2 && kind <= 5 ? now->n[kind] : 0;
}

static const char passes_sql[] = "SELECT id, state, household FROM passes";
/* unary +: a scan of the table in its own order, not of the (sector, ...) index and a
 * search of the table for every row it names (random reads: three times slower at 5 M) */
static const char ids_sql[] = "SELECT pass, listkey FROM pass_ids WHERE +sector = ?1";
static const char tags_sql[] = "SELECT household, tag FROM household_tags WHERE +sector = ?1";
static const char uses_sql[] = "SELECT pseudonym, product, period, SUM(count) FROM consumption"
                               " WHERE sector = ?1 GROUP BY pseudonym, product, period";
static const char rights_sql[] = "SELECT pass, " PROFILE_COLS " FROM rights WHERE +sector = ?1";

struct rows_out {
	int (*each)(void *arg, const struct server_list_row *r);
	void *arg;
};

static int emit(struct rows_scan *s, sqlite3_stmt *st, const struct server_periods *now,
                const struct rows_out *out)
{
	const struct slot *p = slot_of(s, sqlite3_column_int64(st, 0));
	if (!p || !p->exists || !p->has_key)
		return 0; /* the joins are inner: no pass, or no key in the sector, no row */
	struct server_list_row row, *r = &row;
	memcpy(r->key, p->key, PROTO_LIST_KEY_LEN);
	r->state = p->state;
	r->household_tag = 0;
	if (p->in_household && s->n_tags) {
		struct tag want = {p->household, 0};
		const struct tag *t = bsearch(&want, s->tags, s->n_tags, sizeof(*t), tag_cmp);
		r->household_tag = t ? t->tag : 0;
	}
	sq_profile_from_row(st, 1, &r->p);
	int64_t product = sqlite3_column_int64(st, 1), period = sqlite3_column_int64(st, 5);
	int64_t scope = sqlite3_column_int64(st, 6), flags = sqlite3_column_int64(st, 8);
	int64_t used = 0;
	if (period != 0 && !(flags & 1)) {
		struct use_sum want = {.product = product, .period = current_period(period, now)};
		if (scope == 1 && p->in_household) {
			want.household = p->household;
			used = sum_find(s->shared, s->n_shared, &want);
		} else {
			memcpy(want.key, p->key, PROTO_LIST_KEY_LEN);
			used = sum_find(s->own, s->n_own, &want);
		}
	}
	r->used = used < 0 ? 0 : (uint32_t)(used > UINT32_MAX ? UINT32_MAX : used);
	return out->each(out->arg, r);
}

static int scan_rights(struct rows_scan *s, const struct server_periods *now,
                       const struct rows_out *out)
{
	sqlite3_stmt *st;
	int rc = sq_prep(s->q, &st, rights_sql);
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, s->sector);
	while ((rc = sq_step(s->q, st)) == SQLITE_ROW) {
		if ((rc = emit(s, st, now, out)) != 0)
			break;
	}
	return scan_end(s->q, st, rc);
}

int sq_list_rows_scanned(struct sq *q, uint16_t sector, const struct server_periods *now,
                         int (*each)(void *arg, const struct server_list_row *r), void *arg,
                         int *declined)
{
	*declined = 0;
	struct rows_scan s = {.q = q, .sector = sector};
	const struct rows_out out = {each, arg};
	sqlite3_stmt *st;
	int64_t min_id = 1;
	int rc = sq_prep(q, &st, "SELECT COALESCE(MAX(id), 0) FROM passes");
	if (rc == 0)
		rc = sq_one_int64(q, st, &s.max_id);
	if (rc == 0)
		rc = sq_prep(q, &st, "SELECT COALESCE(MIN(id), 1) FROM passes");
	if (rc == 0)
		rc = sq_one_int64(q, st, &min_id);
	if (rc)
		return rc;
	if (min_id < 1 || s.max_id > MAX_SLOT_ID) {
		*declined = 1;
		return 0;
	}
	s.slots = calloc((size_t)s.max_id + 1, sizeof(*s.slots));
	if (!s.slots)
		return SERVER_ERR_NOMEM;
	(void)sq_exec(q, "PRAGMA mmap_size=" SCAN_MMAP_BYTES); /* an optimisation: may fail */
	rc = step_all(&s, passes_sql, 0, take_pass);
	if (rc == 0)
		rc = step_all(&s, ids_sql, 1, take_id);
	if (rc == 0)
		rc = step_all(&s, tags_sql, 1, take_tag);
	if (rc == 0 && s.n_tags > 1)
		qsort(s.tags, s.n_tags, sizeof(*s.tags), tag_cmp);
	if (rc == 0)
		rc = step_all(&s, uses_sql, 1, take_use);
	if (rc == 0 && s.n_own) {
		qsort(s.own, s.n_own, sizeof(*s.own), sum_cmp);
		rc = sum_households(&s);
	}
	if (rc == 0)
		rc = scan_rights(&s, now, &out);
	(void)sq_exec(q, "PRAGMA mmap_size=0");
	free(s.slots);
	free(s.tags);
	free(s.own);
	free(s.shared);
	return rc;
}
