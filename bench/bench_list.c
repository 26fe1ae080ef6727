/*
 * bench_list — the signed allow-list against an indexed sqlite table of the same passes.
 *
 *     bench_list [--passes N] [--dir DIR] [--lookups N]
 *
 * Every row of the table is our figure beside a baseline measured in the same run on the
 * same machine, and the ratio ours / baseline. The baseline is what a gate would otherwise
 * carry: a sqlite file (WAL) holding `pass(key BLOB PRIMARY KEY, rights BLOB) WITHOUT
 * ROWID` with the same 8-byte keys and the same 8 bytes of rights per pass.
 *
 * Keys are splitmix64 outputs of distinct counters: uniform like the SHA-256 prefixes of
 * proto_list_key(), and guaranteed distinct (the mixer is a bijection), so a present key
 * and an absent key never collide. Nothing here asserts a timing: DESIGN.md section 9 gives
 * the budgets and the end of the output says which figures are within them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench_table.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"

#define SECTOR          7
#define VERIFY_REPS     5
#define LOAD_REPS       20
#define DELTA_REPS      3
#define WARMUP_LOOKUPS  100000u
#define KEY_SEED        0x63697479706173ULL /* "citypas" */
#define GOLDEN          0x9e3779b97f4a7c15ULL
#define ABSENT_BASE     (1ULL << 63) /* key counters of passes that are never listed */
#define RIGHTS_LEN      8
#define DEFAULT_PASSES  5000000u
#define DEFAULT_LOOKUPS 1000000u

/* --- failure and cleanup ------------------------------------------------------------- */

static char g_dir[4096];
static int g_dir_ours; /* created with mkdtemp: removed at the end */
static const char *const g_files[] = {"v1.list",     "v1.list.sig", "pass.db",
                                      "pass.db-wal", "pass.db-shm", "pass.db-journal"};

static void path_in_dir(char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", g_dir, name);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "bench_list: path too long: %s/%s\n", g_dir, name);
		exit(1);
	}
}

static void cleanup(void)
{
	if (!g_dir[0])
		return;
	char p[4200];
	for (size_t i = 0; i < sizeof(g_files) / sizeof(g_files[0]); i++) {
		path_in_dir(p, sizeof(p), g_files[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			fprintf(stderr, "bench_list: cannot remove %s: %s\n", p, strerror(errno));
	}
	if (g_dir_ours && rmdir(g_dir) != 0)
		fprintf(stderr, "bench_list: cannot remove %s: %s\n", g_dir, strerror(errno));
	g_dir[0] = '\0';
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "bench_list: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	cleanup();
	exit(1);
}

static void check(int rc, const char *what)
{
	if (rc != PROTO_OK)
		die("%s failed: %s (%d)", what, proto_strerror(rc), rc);
}

static void sq_check(sqlite3 *db, int rc, int want, const char *what)
{
	if (rc != want)
		die("sqlite: %s failed: %s (%d)", what,
		    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

static void sq_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		die("sqlite: %s failed: %s", sql, err ? err : sqlite3_errstr(rc));
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* --- time, numbers, keys ------------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs_since(uint64_t t0)
{
	return (double)(now_ns() - t0) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest-rank percentile of a sorted array, q in (0, 1]. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double q)
{
	size_t rank = (size_t)(q * (double)n);
	if ((double)rank < q * (double)n)
		rank++;
	return sorted[rank ? rank - 1 : 0];
}

/* splitmix64's finaliser: a bijection on 64-bit words. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Key of pass number i: distinct i give distinct keys (GOLDEN is odd, mix64 bijective). */
static uint64_t key_of(uint64_t i)
{
	return mix64(KEY_SEED + (i + 1) * GOLDEN);
}

static void put_key(uint8_t out[PROTO_LIST_KEY_LEN], uint64_t k)
{
	for (int i = 0; i < PROTO_LIST_KEY_LEN; i++)
		out[i] = (uint8_t)(k >> (56 - 8 * i));
}

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	r->s += GOLDEN;
	return mix64(r->s);
}

static uint64_t rng_below(struct rng *r, uint64_t bound)
{
	return rng_next(r) % bound;
}

/* The 8 bytes after the key in a list entry (docs/list-format.md), as the sqlite value. */
static void rights_encode(uint8_t out[RIGHTS_LEN], const struct proto_list_entry *e)
{
	out[0] = (uint8_t)(e->profile >> 8);
	out[1] = (uint8_t)e->profile;
	out[2] = (uint8_t)(e->household >> 16);
	out[3] = (uint8_t)(e->household >> 8);
	out[4] = (uint8_t)e->household;
	out[5] = e->used;
	out[6] = e->used_period;
	out[7] = e->status;
}

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(((const struct proto_list_entry *)a)->key,
	              ((const struct proto_list_entry *)b)->key, PROTO_LIST_KEY_LEN);
}

/* --- files --------------------------------------------------------------------------- */

static void write_durable(const char *path, const uint8_t *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot create %s: %s", path, strerror(errno));
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("cannot write %s: %s", path, w < 0 ? strerror(errno) : "short write");
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0)
		die("cannot fsync %s: %s", path, strerror(errno));
	if (close(fd) != 0)
		die("cannot close %s: %s", path, strerror(errno));
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		die("cannot stat %s: %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Evict a (clean, unmapped) file from the page cache, so the next open reads the disk. */
static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("cannot open %s: %s", path, strerror(errno));
	int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (rc != 0)
		die("posix_fadvise %s: %s", path, strerror(rc));
	close(fd);
}

/* --- the table ----------------------------------------------------------------------- */

static struct bench_table g_table = {.ours_name = "citypass", .base_name = "baseline"};

/* --- the benchmark ------------------------------------------------------------------- */

static const char lookup_sql[] = "SELECT rights FROM pass WHERE key = ?1";

struct bench {
	uint32_t n;       /* passes */
	uint32_t lookups; /* timed lookups per implementation */
	int64_t now;
	struct proto_key *signer;
	struct proto_keyring *ring;
	struct proto_list_policy policy;
	char list_path[4200], sig_path[4200], db_path[4200];
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	size_t list_len;
	size_t fixed_len; /* header and profile table */
};

static const struct proto_rights_profile *profiles(size_t *count, int64_t now)
{
	static struct proto_rights_profile p[5];
	const uint16_t today = (uint16_t)(now / 86400);
	const struct proto_rights_profile init[] = {
	        /* annual subscription */
	        {.product = 1, .valid_from = today, .valid_to = (uint16_t)(today + 365)},
	        /* 10-entry card, counted on the card */
	        {.product = 2,
	         .limit = 10,
	         .period = PROTO_PERIOD_LIFETIME,
	         .flags = PROTO_PROFILE_ENTRIES_ON_CARD,
	         .valid_to = PROTO_DAY_UNBOUNDED_TO},
	        /* resident household pass: 24 entries a year shared by the household */
	        {.product = 3,
	         .limit = 24,
	         .period = PROTO_PERIOD_YEAR,
	         .scope = PROTO_SCOPE_HOUSEHOLD,
	         .fare = PROTO_FARE_RESIDENT,
	         .valid_to = PROTO_DAY_UNBOUNDED_TO},
	        /* concession: 8 entries a month */
	        {.product = 4,
	         .limit = 8,
	         .period = PROTO_PERIOD_MONTH,
	         .fare = PROTO_FARE_CONCESSION,
	         .valid_from = today,
	         .valid_to = (uint16_t)(today + 180)},
	        /* staff and carers: free, unbounded */
	        {.product = 5, .fare = PROTO_FARE_FREE, .valid_to = PROTO_DAY_UNBOUNDED_TO},
	};
	memcpy(p, init, sizeof(p));
	*count = sizeof(p) / sizeof(p[0]);
	return p;
}

/* Pass number i's entry: a deterministic mix of profiles, households, counters, statuses. */
static void make_entry(struct proto_list_entry *e, uint64_t i)
{
	static const uint8_t limits[] = {0, 10, 24, 8, 0};
	uint64_t h = mix64(i ^ 0x5eedf00dULL);
	memset(e, 0, sizeof(*e));
	put_key(e->key, key_of(i));
	unsigned pct = (unsigned)(h % 100);
	e->profile = pct < 45 ? 0 : pct < 65 ? 1 : pct < 85 ? 2 : pct < 95 ? 3 : 4;
	if (e->profile == 2)
		e->household = (uint32_t)(1 + (i / 3) % PROTO_LIST_HOUSEHOLD_MAX);
	if (limits[e->profile]) {
		e->used = (uint8_t)((h >> 8) % (limits[e->profile] + 1u));
		e->used_period = (uint8_t)(h >> 16);
	}
	unsigned st = (unsigned)((h >> 24) % 1000);
	e->status = st < 10   ? PROTO_STATUS_REVOKED
	            : st < 15 ? PROTO_STATUS_REPLACED
	            : st < 17 ? PROTO_STATUS_SUSPENDED
	                      : PROTO_STATUS_ACTIVE;
}

static uint8_t *build_list(const struct bench *b, uint64_t version,
                           const uint8_t prev_hash[PROTO_HASH_LEN], struct proto_list_entry *ents,
                           size_t n, size_t *len)
{
	size_t np;
	const struct proto_rights_profile *p = profiles(&np, b->now);
	struct proto_list_params params = {
	        .sector = SECTOR,
	        .version = version,
	        .issued_at = b->now,
	        .expires_at = b->now + 7 * 86400,
	};
	if (prev_hash)
		memcpy(params.prev_hash, prev_hash, PROTO_HASH_LEN);
	uint8_t *buf = NULL;
	check(proto_list_build(&params, b->signer, p, np, ents, n, &buf, len), "proto_list_build");
	return buf;
}

/* Row 1, ours: build + sign + write the list and its signature durably. */
static double build_ours(struct bench *b, struct proto_list_entry *ents)
{
	uint64_t t0 = now_ns();
	uint8_t *buf = build_list(b, 1, NULL, ents, b->n, &b->list_len);
	check(proto_sign(b->signer, buf, b->list_len, b->sig, &b->sig_len), "proto_sign");
	write_durable(b->list_path, buf, b->list_len);
	write_durable(b->sig_path, b->sig, b->sig_len);
	double t = secs_since(t0);
	free(buf);
	return t;
}

/* Row 1, baseline: sort, insert in one transaction, commit, checkpoint, close. */
static double build_sqlite(struct bench *b, struct proto_list_entry *ents)
{
	uint64_t t0 = now_ns();
	qsort(ents, b->n, sizeof(*ents), entry_cmp);
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(b->db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	sq_check(db, rc, SQLITE_OK, "open");
	sqlite3_stmt *st = NULL;
	sq_check(db, sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL), SQLITE_OK,
	         "prepare journal_mode");
	sq_check(db, sqlite3_step(st), SQLITE_ROW, "journal_mode=WAL");
	if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		die("sqlite: journal_mode is %s, not wal", sqlite3_column_text(st, 0));
	sq_check(db, sqlite3_finalize(st), SQLITE_OK, "finalize journal_mode");
	sq_exec(db, "PRAGMA synchronous=FULL");
	sq_exec(db, "CREATE TABLE pass(key BLOB PRIMARY KEY, rights BLOB) WITHOUT ROWID");
	sq_exec(db, "BEGIN");
	sq_check(db,
	         sqlite3_prepare_v2(db, "INSERT INTO pass(key, rights) VALUES (?1, ?2)", -1, &st,
	                            NULL),
	         SQLITE_OK, "prepare insert");
	for (uint32_t i = 0; i < b->n; i++) {
		uint8_t rights[RIGHTS_LEN];
		rights_encode(rights, &ents[i]);
		sq_check(db,
		         sqlite3_bind_blob(st, 1, ents[i].key, PROTO_LIST_KEY_LEN, SQLITE_STATIC),
		         SQLITE_OK, "bind key");
		sq_check(db, sqlite3_bind_blob(st, 2, rights, RIGHTS_LEN, SQLITE_STATIC), SQLITE_OK,
		         "bind rights");
		sq_check(db, sqlite3_step(st), SQLITE_DONE, "insert");
		sq_check(db, sqlite3_reset(st), SQLITE_OK, "reset insert");
	}
	sq_check(db, sqlite3_finalize(st), SQLITE_OK, "finalize insert");
	sq_exec(db, "COMMIT");
	int log = -1, done = -1;
	sq_check(db, sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done),
	         SQLITE_OK, "wal_checkpoint(TRUNCATE)");
	if (log != done)
		die("sqlite: checkpoint copied %d of %d frames", done, log);
	sq_check(db, sqlite3_close(db), SQLITE_OK, "close");
	return secs_since(t0);
}

static sqlite3 *sq_open_ro(const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	sq_check(db, rc, SQLITE_OK, "open read-only");
	return db;
}

static void verify_rows(struct bench *b)
{
	double ours[VERIFY_REPS], base[VERIFY_REPS];
	for (int r = 0; r < VERIFY_REPS; r++) {
		struct proto_list *l = NULL;
		check(proto_list_open_file(&l, b->list_path), "proto_list_open_file");
		uint64_t t0 = now_ns();
		check(proto_list_verify(l, b->sig, b->sig_len, &b->policy), "proto_list_verify");
		ours[r] = secs_since(t0);
		proto_list_close(l);

		sqlite3 *db = sq_open_ro(b->db_path);
		sqlite3_stmt *st = NULL;
		t0 = now_ns();
		sq_check(db, sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL), SQLITE_OK,
		         "prepare quick_check");
		sq_check(db, sqlite3_step(st), SQLITE_ROW, "quick_check");
		const char *res = (const char *)sqlite3_column_text(st, 0);
		if (!res || strcmp(res, "ok") != 0)
			die("sqlite: quick_check says %s", res ? res : "(null)");
		sq_check(db, sqlite3_step(st), SQLITE_DONE, "quick_check end");
		base[r] = secs_since(t0);
		sq_check(db, sqlite3_finalize(st), SQLITE_OK, "finalize quick_check");
		sq_check(db, sqlite3_close(db), SQLITE_OK, "close");
	}
	bench_table_add_time(&g_table, "verify at load (median of 5)", median(ours, VERIFY_REPS),
	                     median(base, VERIFY_REPS));
}

static void load_rows(struct bench *b, int cold, double *ours_median)
{
	double ours[LOAD_REPS], base[LOAD_REPS];
	for (int r = 0; r < LOAD_REPS; r++) {
		uint8_t key[PROTO_LIST_KEY_LEN];
		put_key(key, key_of(((uint64_t)r * 104729u + 17u) % b->n));

		if (cold)
			drop_cache(b->list_path);
		struct proto_list *l = NULL;
		struct proto_list_entry e;
		struct proto_rights_profile p;
		uint64_t t0 = now_ns();
		check(proto_list_open_file(&l, b->list_path), "proto_list_open_file");
		/* a gate decides from a list only once its signature is checked */
		check(proto_list_verify(l, b->sig, b->sig_len, &b->policy), "proto_list_verify");
		check(proto_list_lookup(l, key, &e, &p), "first proto_list_lookup");
		ours[r] = secs_since(t0);
		proto_list_close(l);

		if (cold)
			drop_cache(b->db_path);
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		t0 = now_ns();
		db = sq_open_ro(b->db_path);
		sq_check(db, sqlite3_prepare_v2(db, lookup_sql, -1, &st, NULL), SQLITE_OK,
		         "prepare select");
		sq_check(db, sqlite3_bind_blob(st, 1, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC),
		         SQLITE_OK, "bind");
		sq_check(db, sqlite3_step(st), SQLITE_ROW, "first select");
		base[r] = secs_since(t0);
		sq_check(db, sqlite3_finalize(st), SQLITE_OK, "finalize select");
		sq_check(db, sqlite3_close(db), SQLITE_OK, "close");
	}
	*ours_median = median(ours, LOAD_REPS);
	bench_table_add_time(&g_table,
	                     cold ? "load + verify + 1st lookup, cache dropped"
	                          : "load + verify + 1st lookup (median of 20)",
	                     *ours_median, median(base, LOAD_REPS));
}

static void lookup_rows(struct bench *b, uint64_t *ours_p99)
{
	const uint32_t m = b->lookups;
	const uint32_t warm = m < WARMUP_LOOKUPS ? m : WARMUP_LOOKUPS;
	uint8_t(*keys)[PROTO_LIST_KEY_LEN] = xmalloc((size_t)m * PROTO_LIST_KEY_LEN);
	uint8_t *present = xmalloc(m);
	uint64_t *ours = xmalloc((size_t)m * sizeof(uint64_t));
	uint64_t *base = xmalloc((size_t)m * sizeof(uint64_t));
	struct rng rng = {0x10c4u};
	for (uint32_t i = 0; i < m; i++) {
		present[i] = rng_below(&rng, 10) != 0; /* 90 % present */
		uint64_t idx = present[i] ? rng_below(&rng, b->n) : ABSENT_BASE + i;
		put_key(keys[i], key_of(idx));
	}

	struct proto_list *l = NULL;
	check(proto_list_open_file(&l, b->list_path), "proto_list_open_file");
	sqlite3 *db = sq_open_ro(b->db_path);
	sqlite3_stmt *st = NULL;
	sq_check(db, sqlite3_prepare_v2(db, lookup_sql, -1, &st, NULL), SQLITE_OK,
	         "prepare select");

	/* Warm-up (not timed), then every lookup timed on its own. */
	for (int timed = 0; timed < 2; timed++) {
		for (uint32_t i = 0; i < (timed ? m : warm); i++) {
			struct proto_list_entry e;
			struct proto_rights_profile p;
			uint64_t t0 = now_ns();
			int rc = proto_list_lookup(l, keys[i], &e, &p);
			uint64_t t1 = now_ns();
			if (rc != (present[i] ? PROTO_OK : PROTO_ERR_LIST_NOT_FOUND))
				die("proto_list_lookup of key %" PRIu32 " returned %s", i,
				    proto_strerror(rc));
			if (timed)
				ours[i] = t1 - t0;
		}
		for (uint32_t i = 0; i < (timed ? m : warm); i++) {
			uint64_t t0 = now_ns();
			int rc = sqlite3_bind_blob(st, 1, keys[i], PROTO_LIST_KEY_LEN,
			                           SQLITE_STATIC);
			int step = rc == SQLITE_OK ? sqlite3_step(st) : rc;
			int len = step == SQLITE_ROW ? sqlite3_column_bytes(st, 0) : 0;
			int reset = sqlite3_reset(st);
			uint64_t t1 = now_ns();
			sq_check(db, rc, SQLITE_OK, "bind");
			sq_check(db, step, present[i] ? SQLITE_ROW : SQLITE_DONE, "select");
			sq_check(db, reset, SQLITE_OK, "reset");
			if (present[i] && len != RIGHTS_LEN)
				die("sqlite: rights of key %" PRIu32 " are %d bytes", i, len);
			if (timed)
				base[i] = t1 - t0;
		}
	}
	sq_check(db, sqlite3_finalize(st), SQLITE_OK, "finalize select");
	sq_check(db, sqlite3_close(db), SQLITE_OK, "close");
	proto_list_close(l);

	qsort(ours, m, sizeof(*ours), cmp_u64);
	qsort(base, m, sizeof(*base), cmp_u64);
	*ours_p99 = percentile(ours, m, 0.99);
	bench_table_add(&g_table, "lookup p50", 0, "ns", 1, (double)percentile(ours, m, 0.50),
	                (double)percentile(base, m, 0.50));
	bench_table_add(&g_table, "lookup p99", 0, "ns", 1, (double)(*ours_p99),
	                (double)(percentile(base, m, 0.99)));
	bench_table_add(&g_table, "lookup p99.9", 0, "ns", 1, (double)percentile(ours, m, 0.999),
	                (double)percentile(base, m, 0.999));
	free(keys);
	free(present);
	free(ours);
	free(base);
}

struct churn {
	uint32_t adds, changes, removes;
	size_t delta_len;
	size_t sig_len; /* the delta's own signature */
};

/* Version 2 from version 1's (sorted) entries with `c` passes added, changed or removed. */
static struct proto_list_entry *
churn_entries(const struct bench *b, const struct proto_list_entry *v1, struct churn *c, size_t *n2)
{
	uint32_t total = b->n / 1000 ? b->n / 1000 : 1;
	c->removes = total / 3;
	c->changes = total / 3;
	c->adds = total - c->removes - c->changes;
	if (c->removes + c->changes > b->n)
		die("too few passes to churn");
	uint8_t *mark = calloc(b->n, 1); /* 1 changed, 2 removed */
	struct proto_list_entry *v2 = xmalloc(((size_t)b->n + c->adds) * sizeof(*v2));
	if (!mark)
		die("out of memory");
	struct rng rng = {0xde17au};
	for (uint32_t k = 0; k < c->removes + c->changes; k++) {
		uint64_t i;
		do
			i = rng_below(&rng, b->n);
		while (mark[i]);
		mark[i] = k < c->removes ? 2 : 1;
	}
	size_t w = 0;
	for (uint32_t i = 0; i < b->n; i++) {
		if (mark[i] == 2)
			continue;
		v2[w] = v1[i];
		if (mark[i] == 1) {
			/* a revocation, a counter update or a product change */
			switch (rng_below(&rng, 3)) {
			case 0:
				v2[w].status = PROTO_STATUS_REVOKED;
				break;
			case 1:
				v2[w].used_period = (uint8_t)(v2[w].used_period + 1);
				break;
			default:
				v2[w].profile = v2[w].profile == 0 ? 4 : 0;
				v2[w].household = 0;
				v2[w].used = 0;
				v2[w].used_period = 0;
				break;
			}
		}
		w++;
	}
	/* new passes: counters just above version 1's, so never a listed or an absent key */
	for (uint32_t k = 0; k < c->adds; k++)
		make_entry(&v2[w++], (uint64_t)b->n + k);
	free(mark);
	*n2 = w;
	return v2;
}

static void delta_rows(struct bench *b, const struct proto_list_entry *v1, struct churn *c)
{
	size_t n2;
	struct proto_list_entry *v2 = churn_entries(b, v1, c, &n2);
	struct proto_list_entry *work = xmalloc(n2 * sizeof(*work));

	struct proto_list *base = NULL, *target = NULL;
	check(proto_list_open_file(&base, b->list_path), "proto_list_open_file");
	memcpy(work, v2, n2 * sizeof(*work));
	size_t len2;
	uint8_t *buf2 = build_list(b, 2, proto_list_hash(base), work, n2, &len2);
	uint8_t sig2[PROTO_SIG_MAX], dsig[PROTO_SIG_MAX];
	size_t sig2_len, dsig_len;
	check(proto_sign(b->signer, buf2, len2, sig2, &sig2_len), "proto_sign v2");
	check(proto_list_open_mem(&target, buf2, len2), "proto_list_open_mem v2");
	uint8_t *delta = NULL;
	check(proto_delta_build(base, target, sig2, sig2_len, b->signer, &delta, &c->delta_len),
	      "proto_delta_build");
	check(proto_sign(b->signer, delta, c->delta_len, dsig, &dsig_len), "proto_sign delta");
	c->sig_len = dsig_len;
	proto_list_close(base);

	bench_table_add_bytes(&g_table, "delta size, 0.1 % churn (vs snapshot)",
	                      (double)c->delta_len, (double)len2);

	/* A gate applying the delta (base opened afresh: its hash is computed, not cached),
	 * against the server rebuilding and signing the whole version 2. */
	struct proto_list_policy pol = b->policy;
	pol.held_version = 1;
	double apply[DELTA_REPS], rebuild[DELTA_REPS];
	for (int r = 0; r < DELTA_REPS; r++) {
		check(proto_list_open_file(&base, b->list_path), "proto_list_open_file");
		uint8_t *out = NULL, rsig[PROTO_SIG_MAX];
		size_t out_len = 0, rsig_len = 0;
		uint64_t t0 = now_ns();
		check(proto_delta_apply(base, delta, c->delta_len, dsig, dsig_len, &pol, &out,
		                        &out_len, rsig, &rsig_len),
		      "proto_delta_apply");
		apply[r] = secs_since(t0);
		if (out_len != len2 || memcmp(out, buf2, len2) != 0)
			die("delta applied to version 1 is not version 2");
		free(out);
		proto_list_close(base);

		memcpy(work, v2, n2 * sizeof(*work));
		uint8_t hash1[PROTO_HASH_LEN];
		memcpy(hash1, proto_list_header(target)->prev_hash, PROTO_HASH_LEN);
		t0 = now_ns();
		size_t len;
		uint8_t *buf = build_list(b, 2, hash1, work, n2, &len);
		uint8_t s[PROTO_SIG_MAX];
		size_t s_len;
		check(proto_sign(b->signer, buf, len, s, &s_len), "proto_sign");
		rebuild[r] = secs_since(t0);
		free(buf);
	}
	bench_table_add_time(&g_table, "delta apply vs snapshot rebuild+sign",
	                     median(apply, DELTA_REPS), median(rebuild, DELTA_REPS));
	proto_list_close(target);
	free(buf2);
	free(delta);
	free(work);
	free(v2);
}

/* --- main ---------------------------------------------------------------------------- */

static void cpu_model(char *out, size_t cap)
{
	snprintf(out, cap, "unknown CPU");
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) != 0)
			continue;
		const char *v = strchr(line, ':');
		if (!v)
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		snprintf(out, cap, "%s", v);
		out[strcspn(out, "\n")] = '\0';
		break;
	}
	fclose(f);
}

static uint32_t parse_count(const char *s, const char *name, uint32_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *s == '\0' || *s == '-' || *end != '\0' || v == 0 || v > max) {
		fprintf(stderr,
		        "bench_list: %s '%s': expected a whole number from 1 to %" PRIu32 "\n",
		        name, s, max);
		exit(2);
	}
	return (uint32_t)v;
}

static void setup_dir(const char *dir)
{
	if (dir) {
		if (strlen(dir) >= sizeof(g_dir))
			die("--dir path too long");
		snprintf(g_dir, sizeof(g_dir), "%s", dir);
		char p[4200];
		for (size_t i = 0; i < sizeof(g_files) / sizeof(g_files[0]); i++) {
			path_in_dir(p, sizeof(p), g_files[i]);
			if (file_exists(p)) {
				g_dir[0] = '\0'; /* not ours: leave it alone */
				die("%s already exists; give an empty --dir", p);
			}
		}
		return;
	}
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	char templ[sizeof(g_dir)];
	int n = snprintf(templ, sizeof(templ), "%s/citypass-bench-list.XXXXXX", tmp);
	if (n < 0 || (size_t)n >= sizeof(templ))
		die("TMPDIR path too long");
	if (!mkdtemp(templ))
		die("mkdtemp %s: %s", templ, strerror(errno));
	snprintf(g_dir, sizeof(g_dir), "%s", templ);
	g_dir_ours = 1;
}

static void usage(void)
{
	fputs("usage: bench_list [--passes N] [--dir DIR] [--lookups N]\n"
	      "  --passes N   passes in the list (default 5000000)\n"
	      "  --dir DIR    where to write the files (default: a fresh directory under\n"
	      "               $TMPDIR or /tmp, removed at the end)\n"
	      "  --lookups N  timed lookups per implementation (default 1000000)\n",
	      stdout);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"passes", required_argument, NULL, 'p'},
	        {"dir", required_argument, NULL, 'd'},
	        {"lookups", required_argument, NULL, 'l'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct bench b = {.n = DEFAULT_PASSES, .lookups = DEFAULT_LOOKUPS};
	const char *dir = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			b.n = parse_count(optarg, "--passes", PROTO_LIST_MAX_ENTRIES);
			break;
		case 'd':
			dir = optarg;
			break;
		case 'l':
			b.lookups = parse_count(optarg, "--lookups", 100000000u);
			break;
		case 'h':
			usage();
			return 0;
		default:
			fputs("Try 'bench_list --help'.\n", stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bench_list: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	char cpu[256];
	cpu_model(cpu, sizeof(cpu));
	printf("bench_list: %" PRIu32 " passes, %" PRIu32 " lookups; %ld CPUs (%s); sqlite %s\n",
	       b.n, b.lookups, sysconf(_SC_NPROCESSORS_ONLN), cpu, sqlite3_libversion());
	fflush(stdout);

	setup_dir(dir);
	path_in_dir(b.list_path, sizeof(b.list_path), "v1.list");
	path_in_dir(b.sig_path, sizeof(b.sig_path), "v1.list.sig");
	path_in_dir(b.db_path, sizeof(b.db_path), "pass.db");

	b.now = (int64_t)time(NULL);
	check(proto_key_generate(&b.signer), "proto_key_generate");
	char pem[512];
	struct proto_key *pub = NULL;
	check(proto_key_public_pem(b.signer, pem, sizeof(pem)), "proto_key_public_pem");
	check(proto_key_parse_public(&pub, (const uint8_t *)pem, strlen(pem)),
	      "proto_key_parse_public");
	b.ring = proto_keyring_new();
	if (!b.ring)
		die("out of memory");
	check(proto_keyring_add(b.ring, pub), "proto_keyring_add");
	proto_key_free(pub); /* the ring keeps its own copy */
	b.policy = (struct proto_list_policy){
	        .sector = SECTOR, .held_version = 0, .now = b.now, .keys = b.ring};

	fprintf(stderr, "generating %" PRIu32 " passes...\n", b.n);
	struct proto_list_entry *gen = xmalloc((size_t)b.n * sizeof(*gen));
	struct proto_list_entry *ents = xmalloc((size_t)b.n * sizeof(*ents));
	for (uint32_t i = 0; i < b.n; i++)
		make_entry(&gen[i], i);

	/* Both builds start from the same unsorted array; each sorts its own copy. */
	fprintf(stderr, "building the list...\n");
	memcpy(ents, gen, (size_t)b.n * sizeof(*ents));
	double t_ours = build_ours(&b, ents);
	fprintf(stderr, "building the sqlite baseline...\n");
	double t_base = build_sqlite(&b, gen);
	free(gen);
	bench_table_add_time(&g_table, "build + sign / insert + commit, durable", t_ours, t_base);

	char wal[4300];
	snprintf(wal, sizeof(wal), "%s-wal", b.db_path);
	uint64_t db_size = file_size(b.db_path) + (file_exists(wal) ? file_size(wal) : 0);
	uint64_t list_size = file_size(b.list_path);
	size_t np;
	(void)profiles(&np, b.now);
	b.fixed_len = PROTO_LIST_HEADER_SIZE + np * PROTO_LIST_PROFILE_SIZE;
	bench_table_add_bytes(&g_table, "file size", (double)list_size, (double)db_size);
	bench_table_add(&g_table, "bytes per pass", 3, "B", 1, (double)list_size / b.n,
	                (double)db_size / b.n);

	fprintf(stderr, "verifying...\n");
	verify_rows(&b);
	fprintf(stderr, "loading...\n");
	double load_warm, load_cold;
	load_rows(&b, 0, &load_warm);
	load_rows(&b, 1, &load_cold);
	fprintf(stderr, "looking up...\n");
	uint64_t p99;
	lookup_rows(&b, &p99);
	fprintf(stderr, "delta...\n");
	struct churn ch;
	delta_rows(&b, ents, &ch);
	free(ents);

	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage: %s", strerror(errno));

	printf("\n");
	bench_table_print(&g_table);
	printf("\n"
	       "baseline: sqlite %s file, pass(key BLOB PRIMARY KEY, rights BLOB) WITHOUT ROWID,\n"
	       "  8-byte keys + the same 8 bytes of rights, journal_mode=WAL, synchronous=FULL,\n"
	       "  default page and cache sizes, no mmap.\n"
	       "build: ours = proto_list_build (sorts) + proto_sign + write list and .sig with\n"
	       "  fsync; sqlite = sort by key + prepared INSERTs in one transaction + COMMIT +\n"
	       "  wal_checkpoint(TRUNCATE) + close. Both from the same unsorted passes.\n"
	       "file size: sqlite db after the checkpoint (WAL truncated).\n"
	       "verify: ours = proto_list_verify on a freshly opened list (SHA-256 of the file +\n"
	       "  ECDSA P-256 verify); sqlite = PRAGMA quick_check (it has no signature).\n"
	       "load: ours = proto_list_open_file + proto_list_verify (the signature, as a gate\n"
	       "  checks it before deciding) + 1st lookup; sqlite = sqlite3_open_v2\n"
	       "  (read-only) + prepare SELECT + 1st lookup. Fresh handle each repetition; the\n"
	       "  second row evicts both files with posix_fadvise(DONTNEED) first.\n"
	       "lookup: %" PRIu32 " random keys (90 %% present, 10 %% absent) after %" PRIu32
	       " warm-up lookups,\n"
	       "  each timed alone (clock_gettime overhead included); ours = proto_list_lookup\n"
	       "  with profile; sqlite = bind_blob + step + reset of a prepared SELECT.\n"
	       "delta: %" PRIu32 " adds, %" PRIu32 " changes, %" PRIu32
	       " removes; size excludes its %zu-byte signature; apply =\n"
	       "  proto_delta_apply with the base opened afresh (hashes base and result,\n"
	       "  2 ECDSA verifies), baseline = proto_list_build + proto_sign of version 2.\n",
	       sqlite3_libversion(), b.lookups,
	       b.lookups < WARMUP_LOOKUPS ? b.lookups : WARMUP_LOOKUPS, ch.adds, ch.changes,
	       ch.removes, ch.sig_len);
	printf("peak RSS of the whole process (both implementations): %.1f MiB\n",
	       (double)ru.ru_maxrss / 1024);

	double entry_bytes = (double)(list_size - b.fixed_len) / b.n;
	printf("\nDESIGN.md s.9 budgets (stated for 5 M passes; informative, not asserted),\n"
	       "measured on the LEGACY FORMAT 1 list (proto/list.h, one file, one signature):\n"
	       "gates now hold format 2 (proto/clist.h), whose figures for the same budgets are\n"
	       "bench_gate's (bytes per pass, store on disk, daily delta, start) and\n"
	       "bench_revoke's:\n");
	printf("  list lookup p99 <= 10 us:           %" PRIu64 " ns  %s\n", p99,
	       p99 <= 10000 ? "met" : "MISSED");
	printf("  <= 16 B per pass (+ %zu B header):  %.3f B  %s\n", b.fixed_len, entry_bytes,
	       entry_bytes <= 16.0 ? "met" : "MISSED");
	printf("  5 M passes <= 80 MiB:               %.1f MiB for %" PRIu32 " passes  %s\n",
	       (double)list_size / (1024 * 1024), b.n,
	       (double)list_size * 5e6 / b.n <= 80.0 * 1024 * 1024 ? "met" : "MISSED");
	printf("  load <= 0.5 s:                      %.3f ms warm, %.3f ms cold  %s\n",
	       load_warm * 1e3, load_cold * 1e3,
	       load_warm <= 0.5 && load_cold <= 0.5 ? "met" : "MISSED");
	printf("  daily delta at 0.1 %% <= 256 KiB:    %.1f KiB  %s\n", (double)ch.delta_len / 1024,
	       ch.delta_len <= 256 * 1024 ? "met" : "MISSED");

	proto_keyring_free(b.ring);
	proto_key_free(b.signer);
	cleanup();
	return 0;
}
