/*
 * test_server_store — the store, the publisher and the sync backend as libraries:
 * schema refusal and migration, ingestion deduplicated on (device, stream, seq) with
 * durable acks, consumption feeding household quotas, stable profile indices, revocation
 * in the next version, a stored delta that turns version N into exactly version N+1, and
 * the cost of a change: statements run and bytes written by a publish do not grow with
 * the deployment, and what the change log published equals a full rebuild.
 *
 * Issue 16: the same tests run against either backend. Under tests/support/pg_run.sh
 * (ctest label store-pg: CITYPASS_TEST_PG_DIR set) each case gets a PostgreSQL database of
 * its own, named in its data directory's store.conf; otherwise (label store-sqlite) the
 * sqlite file. A few cases are one backend's only (sqlite's migration from schema 2;
 * PostgreSQL's deduplication between two instances storing one batch at the same time).
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <pthread.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "proto/clist.h"
#include "proto/error.h"
#include "store_fixture.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "server/keys.h"
#include "server/publish.h"
#include "server/store.h"
#include "server/sync_backend.h"
#include "store_sqlite_internal.h"

#define NOW 1790000000 /* 2026-09-21 */

struct fx {
	char dir[64];
	struct server_store st;
	char db[64]; /* PostgreSQL: this case's database */
};

/* The PostgreSQL the fixture started (its socket directory), or NULL: sqlite. */
static const char *pg_dir;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-server-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	setenv("TZ", "Europe/Paris", 1);
	if (server_keys_create(f->dir, "localhost") != 0)
		return -1;
	if (store_fixture_open(f->dir, f->db, sizeof(f->db), &f->st) != 0)
		return -1;
	struct server_sector s = {1, "pool", 0}, w = {3, "waste", 2};
	if (f->st.ops->sector_add(f->st.ctx, &s) || f->st.ops->sector_add(f->st.ctx, &w))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	server_store_close(&f->st);
	store_fixture_drop(f->db);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static int64_t add_pass(struct fx *f, int64_t household, uint16_t sector, uint8_t seed,
                        const struct proto_rights_profile *p, uint8_t key[PROTO_LIST_KEY_LEN])
{
	struct server_pass ps;
	memset(&ps, 0, sizeof(ps));
	ps.household = household;
	snprintf(ps.medium, sizeof(ps.medium), "card");
	assert_int_equal(f->st.ops->pass_add(f->st.ctx, &ps), 0);
	uint8_t id[16];
	memset(id, seed, sizeof(id));
	proto_list_key(sector, id, sizeof(id), key);
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, ps.id, sector, id, key), 0);
	struct server_right r = {ps.id, sector, *p};
	assert_int_equal(f->st.ops->right_set(f->st.ctx, &r), 0);
	return ps.id;
}

/* --- reading a published version back, as a gate would --------------------------------- */

struct pubv {
	struct server_list_version v;
	struct proto_clist_manifest m;
	struct proto_clist_head h;
};

static void pubv_get(struct fx *f, uint16_t sector, uint64_t version, struct pubv *out)
{
	assert_int_equal(f->st.ops->list_version_get(f->st.ctx, sector, version, &out->v), 0);
	assert_int_equal(proto_clist_manifest_parse(out->v.manifest, out->v.manifest_len, &out->m),
	                 0);
	assert_int_equal(proto_clist_head_parse(out->v.head, out->v.head_len, &out->h), 0);
}

static void pubv_free(struct pubv *p)
{
	server_list_version_free(&p->v);
	proto_clist_manifest_free(&p->m);
	proto_clist_head_free(&p->h);
}

static int store_chunk(struct fx *f, uint16_t sector, const struct pubv *p, uint32_t j, int idx,
                       uint8_t **data, size_t *len)
{
	return f->st.ops->list_file_get(f->st.ctx, sector, j, p->m.chunks[j].since, idx, data, len);
}

/* The entry of `key` in a published version (0, or PROTO_ERR_LIST_NOT_FOUND). */
static int pubv_lookup(struct fx *f, uint16_t sector, const struct pubv *p, const uint8_t *key,
                       struct proto_list_entry *e, struct proto_rights_profile *pr)
{
	uint32_t j = proto_clist_chunk_of(key, p->h.bits);
	uint8_t *idx = NULL, *dat = NULL;
	size_t il = 0, dl = 0;
	struct proto_clist_idx ix;
	assert_int_equal(store_chunk(f, sector, p, j, 1, &idx, &il), 0);
	assert_int_equal(store_chunk(f, sector, p, j, 0, &dat, &dl), 0);
	assert_int_equal(proto_clist_chunk_verify(&p->m, &p->h, j, idx, il, dat, dl), 0);
	assert_int_equal(proto_clist_idx_parse(idx, il, &ix), 0);
	int64_t leaf = proto_clist_idx_find(&ix, key);
	int rc = PROTO_ERR_LIST_NOT_FOUND;
	if (leaf >= 0) {
		uint64_t off;
		size_t len;
		proto_clist_leaf_span(&ix, (uint32_t)leaf, &off, &len);
		rc = proto_clist_leaf_lookup(&ix, (uint32_t)leaf, dat + off, len, key, e);
	}
	if (rc == 0 && pr)
		*pr = p->h.profiles[e->profile];
	free(idx);
	free(dat);
	return rc;
}

/* Every entry of a version, in key order (what a gate holds). */
static struct proto_list_entry *pubv_entries(struct fx *f, uint16_t sector, const struct pubv *p,
                                             size_t *n)
{
	struct proto_list_entry *e = calloc(p->h.entry_count + 1, sizeof(*e));
	*n = 0;
	for (uint32_t j = 0; j < p->m.n_chunks; j++) {
		uint8_t *dat = NULL;
		size_t dl = 0;
		assert_int_equal(store_chunk(f, sector, p, j, 0, &dat, &dl), 0);
		for (size_t i = 0; i < dl / PROTO_CLIST_ENTRY_SIZE; i++) {
			assert_true(*n < p->h.entry_count);
			proto_clist_entry_decode(dat + i * PROTO_CLIST_ENTRY_SIZE, &e[(*n)++]);
		}
		free(dat);
	}
	assert_int_equal(*n, p->h.entry_count);
	return e;
}

struct store_reader {
	struct fx *f;
	uint16_t sector;
	const struct pubv *p;
};

static int read_store_chunk(void *ctx, uint32_t j, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                            size_t *idx_len)
{
	(void)idx; /* every leaf hashed again */
	(void)idx_len;
	struct store_reader *r = ctx;
	size_t len = 0;
	int rc = store_chunk(r->f, r->sector, r->p, j, 0, dat, &len);
	*n = (uint32_t)(len / PROTO_CLIST_ENTRY_SIZE);
	return rc ? PROTO_ERR_IO : 0;
}

static int profile_same(const struct proto_rights_profile *a, const struct proto_rights_profile *b)
{
	return a->product == b->product && a->valid_from == b->valid_from &&
	       a->valid_to == b->valid_to && a->limit == b->limit && a->period == b->period &&
	       a->scope == b->scope && a->fare == b->fare && a->flags == b->flags;
}

static struct proto_keyring *list_ring(struct fx *f)
{
	char pub[256];
	struct proto_key *key = NULL;
	server_key_path(pub, sizeof(pub), f->dir, "list.pub.pem");
	assert_int_equal(proto_key_load_public(&key, pub), 0);
	struct proto_keyring *ring = proto_keyring_new();
	assert_int_equal(proto_keyring_add(ring, key), 0);
	proto_key_free(key);
	return ring;
}

static void test_schema_refuses_second_create(void **state)
{
	struct fx *f = *state;
	struct server_store other;
	assert_int_equal(server_store_open(&other, f->dir, 1, NULL), SERVER_ERR_EXISTS);
	assert_int_equal(server_store_open(&other, "/nonexistent-dir", 0, NULL),
	                 SERVER_ERR_NOT_FOUND);
}

/* A database written by a newer release is refused with a sentence saying so, never
 * opened (what the newer release keeps would be lost). */
static void test_schema_newer_refused(void **state)
{
	struct fx *f = *state;
	server_store_close(&f->st);
	if (pg_dir) {
		assert_int_equal(
		        store_fixture_pg_run(f->db, "UPDATE citypass_schema SET version = 99"), 0);
	} else {
		char path[128];
		sqlite3 *db = NULL;
		snprintf(path, sizeof(path), "%s/%s", f->dir, SERVER_DB_FILE);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL),
		                 SQLITE_OK);
		sqlite3_close(db);
	}
	struct server_why why = {""};
	assert_int_equal(server_store_open(&f->st, f->dir, 0, &why), SERVER_ERR_SCHEMA_NEWER);
	if (pg_dir) /* PostgreSQL's refusal names both versions */
		assert_non_null(strstr(why.text, "version 99, newer than this release's"));
	f->st.ops = NULL;
}

static void test_identifier_collision_refused(void **state)
{
	struct fx *f = *state;
	struct proto_rights_profile p = {1, 0, 0xFFFF, 0, 0, 0, 0, 0};
	uint8_t key[8], id[16];
	int64_t a = add_pass(f, 0, 1, 0x11, &p, key);
	memset(id, 0x11, sizeof(id));
	/* the same identifier, in another sector or for another pass: refused */
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, a, 3, id, key), SERVER_ERR_EXISTS);
	memset(id, 0x12, sizeof(id));
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, a + 1, 1, id, key), SERVER_ERR_EXISTS);
}

/* right_add, the import's: a pass's first right in a sector; a second is refused and the
 * first stays as it was. */
static void test_right_add_refuses_a_second(void **state)
{
	struct fx *f = *state;
	struct proto_rights_profile p = {1, 0, 0xFFFF, 0, 0, 0, 0, 0}, q = p;
	uint8_t key[8];
	int64_t a = add_pass(f, 0, 1, 0x21, &p, key);
	q.product = 2;
	struct server_right r = {a, 1, q};
	assert_int_equal(f->st.ops->right_add(f->st.ctx, &r), SERVER_ERR_EXISTS);
	r.sector = 3;
	assert_int_equal(f->st.ops->right_add(f->st.ctx, &r), 0);
	struct server_right *v = NULL;
	size_t n = 0;
	assert_int_equal(f->st.ops->rights_of_pass(f->st.ctx, a, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].sector, 1);
	assert_int_equal(v[0].p.product, 1);
	assert_int_equal(v[1].sector, 3);
	assert_int_equal(v[1].p.product, 2);
	free(v);
}

/*
 * The statements an import runs per line keep no statement journal: sqlite keeps one for
 * an INSERT that fires a trigger and may abort on a constraint, a copy of every page it
 * changes, and a million passes spent half their import writing them (store_sqlite.c).
 * With the spill threshold at 0 every statement journal is a file, opened through the
 * VFS, which this wrapper counts.
 */
static sqlite3_vfs counting_vfs, *real_vfs;
static unsigned subjournal_opens;

static int counting_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                         int *out_flags)
{
	(void)vfs;
	if (flags & SQLITE_OPEN_SUBJOURNAL)
		subjournal_opens++;
	return real_vfs->xOpen(real_vfs, name, file, flags, out_flags);
}

static void import_line(struct server_store *st, int64_t import_id, unsigned i)
{
	struct server_pass ps;
	memset(&ps, 0, sizeof(ps));
	char name[32];
	snprintf(name, sizeof(name), "h%u", i);
	assert_int_equal(st->ops->household_add(st->ctx, name, &ps.household), 0);
	snprintf(ps.holder, sizeof(ps.holder), "Holder %u", i);
	snprintf(ps.medium, sizeof(ps.medium), "none");
	ps.import_id = import_id;
	assert_int_equal(st->ops->pass_add(st->ctx, &ps), 0);
	uint8_t id[16], key[PROTO_LIST_KEY_LEN], ikey[32];
	memset(id, (int)i, sizeof(id));
	proto_list_key(1, id, sizeof(id), key);
	assert_int_equal(st->ops->pass_id_add(st->ctx, ps.id, 1, id, key), 0);
	struct server_right r = {ps.id, 1, {1, 0, 0xFFFF, 0, 0, 0, 0, 0}};
	assert_int_equal(st->ops->right_add(st->ctx, &r), 0);
	assert_int_equal(st->ops->household_tag_add(st->ctx, ps.household, 1, 100 + i), 0);
	memset(ikey, (int)i, sizeof(ikey));
	assert_int_equal(st->ops->import_key_add(st->ctx, ikey, ps.id), 0);
}

static void test_import_lines_keep_no_statement_journal(void **state)
{
	(void)state;
	if (pg_dir)
		skip(); /* sqlite's own cost */
	assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
	assert_int_equal(sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 0), SQLITE_OK);
	assert_int_equal(sqlite3_initialize(), SQLITE_OK);
	real_vfs = sqlite3_vfs_find(NULL);
	assert_non_null(real_vfs);
	counting_vfs = *real_vfs;
	counting_vfs.zName = "citypass-counting";
	counting_vfs.xOpen = counting_open;
	assert_int_equal(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);

	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/test-server-jrnl-XXXXXX");
	assert_non_null(mkdtemp(dir));
	struct server_store st;
	assert_int_equal(server_store_open_sqlite(&st, dir, 1), 0);
	st.ops->bulk(st.ctx, 8, 4); /* as the import runs them */
	struct server_sector sec = {1, "pool", 0};
	assert_int_equal(st.ops->sector_add(st.ctx, &sec), 0);
	const uint8_t sha[32] = {1};
	int64_t import_id = 0;
	uint64_t lines = 0;
	int done = 0;
	assert_int_equal(st.ops->begin(st.ctx), 0);
	assert_int_equal(st.ops->import_open(st.ctx, sha, NOW, &import_id, &lines, &done), 0);
	subjournal_opens = 0;
	for (unsigned i = 1; i <= 20; i++)
		import_line(&st, import_id, i);
	unsigned opened = subjournal_opens;
	assert_int_equal(st.ops->commit(st.ctx), 0);
	/* the measure measures: right_set's REPLACE keeps one */
	struct server_right r = {1, 1, {2, 0, 0xFFFF, 0, 0, 0, 0, 0}};
	assert_int_equal(st.ops->begin(st.ctx), 0);
	assert_int_equal(st.ops->right_set(st.ctx, &r), 0);
	assert_int_equal(st.ops->right_set(st.ctx, &r), 0);
	assert_int_equal(st.ops->commit(st.ctx), 0);
	unsigned replaced = subjournal_opens - opened;
	server_store_close(&st);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);

	assert_int_equal(sqlite3_vfs_unregister(&counting_vfs), SQLITE_OK);
	assert_int_equal(sqlite3_shutdown(), SQLITE_OK);
	assert_int_equal(sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 64 * 1024), SQLITE_OK);
	assert_int_equal(sqlite3_initialize(), SQLITE_OK);
	assert_int_equal(opened, 0);
	assert_true(replaced > 0);
}

/*
 * An import's commits copy nothing into the database file: sqlite's own checkpoint, run by
 * the commit that made its log long enough, made an import's transaction hold on 1.2 to
 * 1.6 s longer at 5 M passes, and the import sizes its transactions from how long its
 * commits take (admin_import.c). bulk_checkpoint does it between transactions. In WAL
 * mode only a checkpoint writes the database file: its size and time tell.
 */
static off_t db_file_size(const char *dir)
{
	char path[128];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/%s", dir, SERVER_DB_FILE);
	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

static void test_bulk_commits_never_checkpoint(void **state)
{
	(void)state;
	if (pg_dir)
		skip(); /* PostgreSQL's checkpoints are the server's */
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/test-server-ckpt-XXXXXX");
	assert_non_null(mkdtemp(dir));
	struct server_store st;
	assert_int_equal(server_store_open_sqlite(&st, dir, 1), 0);
	/* a log of 1 MiB between copies: 256 pages; sqlite's own checkpoint would come at
	 * 1 000, and this writes about 2 500, all new pages: a copy grows the file */
	st.ops->bulk(st.ctx, 8, 1);
	char value[3000], key[32];
	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = 0;
	unsigned in_commit = 0, between = 0;
	for (unsigned t = 0; t < 25; t++) {
		off_t before = db_file_size(dir);
		assert_int_equal(st.ops->begin(st.ctx), 0);
		for (unsigned i = 0; i < 100; i++) {
			snprintf(key, sizeof(key), "bulk.%u.%u", t, i);
			assert_int_equal(st.ops->meta_set(st.ctx, key, value), 0);
		}
		assert_int_equal(st.ops->commit(st.ctx), 0);
		off_t committed = db_file_size(dir);
		in_commit += committed != before;
		assert_int_equal(st.ops->bulk_checkpoint(st.ctx), 0);
		between += db_file_size(dir) != committed;
	}
	st.ops->bulk_end(st.ctx);
	char got[sizeof(value)];
	assert_int_equal(st.ops->meta_get(st.ctx, "bulk.24.99", got, sizeof(got)), 0);
	assert_string_equal(got, value);
	server_store_close(&st);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	assert_int_equal(in_commit, 0);
	assert_true(between >= 5); /* the log was copied, every 256 pages or so */
}

/* The log a bulk leaves is cut back after it a step at a time, each step its own short
 * transaction: in one (the next commit's, sqlite's way), cutting the 1 GiB an import leaves
 * held the write lock 0.5-0.6 s. Small sizes here: a log of about 1.2 MiB, 128 KiB kept,
 * 256 KiB a step. */
static void test_bulk_log_cut_a_step_at_a_time(void **state)
{
	(void)state;
	if (pg_dir)
		skip(); /* PostgreSQL has no log of sqlite's */
	char dir[64], wal[128];
	snprintf(dir, sizeof(dir), "/tmp/test-server-walcut-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(wal, sizeof(wal), "%s/%s-wal", dir, SERVER_DB_FILE);
	struct server_store st;
	assert_int_equal(server_store_open_sqlite(&st, dir, 1), 0);
	struct sq *q = st.ctx;
	q->wal_kept = 128 << 10;
	q->wal_step = 256 << 10;
	st.ops->bulk(st.ctx, 8, 1);
	char value[3000], key[32];
	memset(value, 'x', sizeof(value) - 1);
	value[sizeof(value) - 1] = 0;
	for (unsigned t = 0; t < 6; t++) {
		assert_int_equal(st.ops->begin(st.ctx), 0);
		for (unsigned i = 0; i < 100; i++) {
			snprintf(key, sizeof(key), "bulk.%u.%u", t, i);
			assert_int_equal(st.ops->meta_set(st.ctx, key, value), 0);
		}
		assert_int_equal(st.ops->commit(st.ctx), 0);
		assert_int_equal(st.ops->bulk_checkpoint(st.ctx), 0);
	}
	struct stat sb;
	assert_int_equal(stat(wal, &sb), 0);
	off_t before = sb.st_size;
	st.ops->bulk_end(st.ctx);
	assert_int_equal(stat(wal, &sb), 0);
	off_t after = sb.st_size;
	unsigned steps = q->wal_cut_steps;
	char got[sizeof(value)];
	assert_int_equal(st.ops->meta_get(st.ctx, "bulk.5.99", got, sizeof(got)), 0);
	assert_string_equal(got, value);
	assert_int_equal(st.ops->meta_get(st.ctx, "wal-cut", got, sizeof(got)),
	                 SERVER_ERR_NOT_FOUND);
	server_store_close(&st);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	print_message("log %lld bytes, cut to %lld in %u steps\n", (long long)before,
	              (long long)after, steps);
	assert_true(before >= 4 * (256 << 10));
	assert_true(after <= (128 << 10) + (256 << 10));
	assert_true(steps >= (unsigned)((before - (384 << 10)) / (256 << 10)));
}

/* A bulk writer (an import) taking transaction after transaction with a short gap between
 * them, as admin_import.c does. */
struct back_to_back {
	struct server_store *st;
	pthread_mutex_t lock;
	unsigned done; /* transactions committed */
	int started;   /* the first holds the lock */
};

static void *run_back_to_back(void *arg)
{
	struct back_to_back *b = arg;
	const struct timespec hold = {0, 600 * 1000000L}, gap = {0, 10 * 1000000L};
	for (unsigned t = 0; t < 4; t++) {
		char key[32];
		if (b->st->ops->begin(b->st->ctx) != 0)
			return NULL;
		snprintf(key, sizeof(key), "bulk.%u", t);
		(void)b->st->ops->meta_set(b->st->ctx, key, "1");
		pthread_mutex_lock(&b->lock);
		b->started = 1;
		pthread_mutex_unlock(&b->lock);
		nanosleep(&hold, NULL);
		if (b->st->ops->commit(b->st->ctx) != 0)
			return NULL;
		pthread_mutex_lock(&b->lock);
		b->done++;
		pthread_mutex_unlock(&b->lock);
		nanosleep(&gap, NULL);
	}
	return NULL;
}

/* A writer waiting for the write lock takes the first gap another writer leaves between
 * two transactions: sqlite's own busy handler, trying every 100 ms once it has waited a
 * while, let an import's back-to-back transactions hold it off for seconds (10 s and more:
 * "database is locked"). What is checked is which gap, not how long. */
static void test_waiting_writer_takes_the_gap(void **state)
{
	(void)state;
	if (pg_dir)
		skip(); /* PostgreSQL queues waiters for a lock */
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/test-server-gap-XXXXXX");
	assert_non_null(mkdtemp(dir));
	struct server_store bulk, agent;
	assert_int_equal(server_store_open_sqlite(&bulk, dir, 1), 0);
	assert_int_equal(server_store_open_sqlite(&agent, dir, 0), 0);
	struct back_to_back b = {.st = &bulk, .lock = PTHREAD_MUTEX_INITIALIZER};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, run_back_to_back, &b), 0);
	for (int started = 0; !started;) {
		pthread_mutex_lock(&b.lock);
		started = b.started;
		pthread_mutex_unlock(&b.lock);
		if (!started)
			usleep(1000);
	}
	/* sqlite's own handler would be trying every 100 ms by the first gap, 550 ms on */
	usleep(50 * 1000);
	int rc = agent.ops->begin(agent.ctx);
	pthread_mutex_lock(&b.lock);
	unsigned in_after = b.done;
	pthread_mutex_unlock(&b.lock);
	if (rc == 0) {
		rc = agent.ops->meta_set(agent.ctx, "agent", "1");
		rc = rc ? rc : agent.ops->commit(agent.ctx);
	}
	pthread_join(th, NULL);
	pthread_mutex_lock(&b.lock);
	unsigned all = b.done;
	pthread_mutex_unlock(&b.lock);
	server_store_close(&agent);
	server_store_close(&bulk);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	assert_int_equal(rc, 0);
	assert_int_equal(all, 4);
	assert_int_equal(in_after, 1); /* in the first gap, not after the second or later */
}

static int count_rows(void *arg, const struct server_stat_row *r)
{
	*(uint64_t *)arg += r->count;
	return 0;
}

static void test_ingest_dedup_and_acks(void **state)
{
	struct fx *f = *state;
	struct server_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "gate-a");
	struct server_site site;
	memset(&site, 0, sizeof(site));
	snprintf(site.name, sizeof(site.name), "pool-north");
	site.sector = 1;
	assert_int_equal(f->st.ops->site_add(f->st.ctx, &site), 0);
	d.site = site.id;
	d.sector = 1;
	assert_int_equal(f->st.ops->device_add(f->st.ctx, &d), 0);
	assert_int_equal(d.gate, 1);

	struct server_sync_backend b;
	assert_int_equal(server_sync_backend_open(&b, f->dir, 0, NULL), 0);
	struct server_device_info info;
	assert_int_equal(b.ops->device_lookup(b.ctx, "gate-a", &info), 0);
	assert_int_equal(info.sector, 1);
	assert_int_equal(b.ops->device_lookup(b.ctx, "nobody", &info), SERVER_ERR_NOT_FOUND);

	Citypass__StatEvent ev[4], *evp[4];
	for (int i = 0; i < 4; i++) {
		citypass__stat_event__init(&ev[i]);
		ev[i].seq = (uint64_t)i + 1;
		ev[i].site = site.id;
		ev[i].sector = 1;
		ev[i].outcome = CITYPASS__OUTCOME__GRANTED;
		ev[i].quarter_hour = NOW - NOW % 900;
		evp[i] = &ev[i];
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__STATISTICS;
	batch.stats = evp;
	batch.n_stats = 3; /* 1..3 */
	uint64_t acked = 0;
	assert_int_equal(b.ops->ingest(b.ctx, "gate-a", &batch, &acked), 0);
	assert_int_equal(acked, 3);
	batch.stats = evp + 1; /* 2..4: two duplicates */
	assert_int_equal(b.ops->ingest(b.ctx, "gate-a", &batch, &acked), 0);
	assert_int_equal(acked, 4);
	assert_int_equal(b.ops->acked(b.ctx, "gate-a", CITYPASS__STREAM__STATISTICS, &acked), 0);
	assert_int_equal(acked, 4);
	assert_int_equal(b.ops->acked(b.ctx, "gate-a", CITYPASS__STREAM__CONSUMPTION, &acked), 0);
	assert_int_equal(acked, 0);
	b.ops->destroy(b.ctx);

	uint64_t total = 0;
	assert_int_equal(f->st.ops->stats(f->st.ctx, 0, INT64_MAX, 3600, count_rows, &total), 0);
	assert_int_equal(total, 4); /* stored once each */
}

struct ingest_job {
	const char *dir;
	const Citypass__EventBatch *batch;
	int rc;
	uint64_t acked;
};

/* Another instance storing a batch: its own connection, its own transaction. */
static void *ingest_elsewhere(void *arg)
{
	struct ingest_job *j = arg;
	struct server_sync_backend b;
	j->rc = server_sync_backend_open(&b, j->dir, 0, NULL);
	if (j->rc == 0) {
		j->rc = b.ops->ingest(b.ctx, "gate-a", j->batch, &j->acked);
		b.ops->destroy(b.ctx);
	}
	return NULL;
}

/* Sessions of the cluster waiting for a lock another transaction holds. */
static long waiting_sessions(const char *db)
{
	PGconn *c = store_fixture_pg_connect(db);
	if (!c)
		return -1;
	PGresult *r = PQexec(c, "SELECT count(*) FROM pg_locks WHERE NOT granted");
	long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	PQfinish(c);
	return n;
}

/* Issue 16: a gate's batch stored by two instances at once (its server died before the ack
 * reached it, and it sent the batch again to another) is counted once: the second instance
 * sees no ack yet, tries to store the same rows, waits on the first one's, and stores
 * nothing once the first commits — the database's unique (device, epoch, seq), not a
 * check in our code, decides. */
static void test_ingest_dedup_two_instances(void **state)
{
	struct fx *f = *state;
	if (!pg_dir)
		skip(); /* sqlite has one writer at a time: nothing to race */
	struct server_site site;
	memset(&site, 0, sizeof(site));
	snprintf(site.name, sizeof(site.name), "pool-north");
	site.sector = 1;
	assert_int_equal(f->st.ops->site_add(f->st.ctx, &site), 0);
	struct server_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "gate-a");
	d.site = site.id;
	d.sector = 1;
	assert_int_equal(f->st.ops->device_add(f->st.ctx, &d), 0);
	Citypass__StatEvent ev[3], *evp[3];
	for (int i = 0; i < 3; i++) {
		citypass__stat_event__init(&ev[i]);
		ev[i].seq = (uint64_t)i + 1;
		ev[i].site = site.id;
		ev[i].sector = 1;
		ev[i].quarter_hour = NOW - NOW % 900;
		evp[i] = &ev[i];
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__STATISTICS;
	batch.stats = evp;
	batch.n_stats = 3;

	/* instance A has stored the batch, not committed yet */
	struct server_store a;
	uint64_t acked = 0;
	assert_int_equal(server_store_open(&a, f->dir, 0, NULL), 0);
	assert_int_equal(a.ops->begin(a.ctx), 0);
	assert_int_equal(a.ops->ingest(a.ctx, "gate-a", &batch, &acked), 0);
	assert_int_equal(acked, 3);
	/* instance B gets the same batch meanwhile */
	struct ingest_job j = {f->dir, &batch, -1, 0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, ingest_elsewhere, &j), 0);
	struct timespec tick = {0, 10 * 1000 * 1000};
	for (int i = 0; i < 3000 && waiting_sessions(f->db) == 0; i++)
		nanosleep(&tick, NULL);
	assert_int_equal(a.ops->commit(a.ctx), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	server_store_close(&a);
	assert_int_equal(j.rc, 0);
	assert_int_equal(j.acked, 3);
	uint64_t total = 0;
	assert_int_equal(f->st.ops->stats(f->st.ctx, 0, INT64_MAX, 3600, count_rows, &total), 0);
	assert_int_equal(total, 3); /* once each, not twice */
}

/* Issue 16: the database lost in the middle of an ingest (PostgreSQL restarted, a failover,
 * the network cut): the commit fails, so the batch is not acknowledged (the sync backend
 * acks only what commit() returned 0 for) and nothing of it is kept; the store connects
 * again at its next transaction and the gate's resend is stored once. */
static void test_ingest_lost_connection(void **state)
{
	struct fx *f = *state;
	if (!pg_dir)
		skip(); /* an embedded sqlite has no connection to lose */
	struct server_site site;
	memset(&site, 0, sizeof(site));
	snprintf(site.name, sizeof(site.name), "pool-north");
	site.sector = 1;
	assert_int_equal(f->st.ops->site_add(f->st.ctx, &site), 0);
	struct server_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "gate-a");
	d.site = site.id;
	d.sector = 1;
	assert_int_equal(f->st.ops->device_add(f->st.ctx, &d), 0);
	Citypass__StatEvent ev[3], *evp[3];
	for (int i = 0; i < 3; i++) {
		citypass__stat_event__init(&ev[i]);
		ev[i].seq = (uint64_t)i + 1;
		ev[i].site = site.id;
		ev[i].sector = 1;
		ev[i].quarter_hour = NOW - NOW % 900;
		evp[i] = &ev[i];
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__STATISTICS;
	batch.stats = evp;
	batch.n_stats = 3;
	uint64_t acked = 0;
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	assert_int_equal(f->st.ops->ingest(f->st.ctx, "gate-a", &batch, &acked), 0);
	/* every other session of this database ends: the store's own, in its transaction */
	assert_int_equal(
	        store_fixture_pg_run(f->db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	                                    " WHERE datname = current_database() AND"
	                                    " pid <> pg_backend_pid()"),
	        0);
	assert_int_not_equal(f->st.ops->commit(f->st.ctx), 0);
	f->st.ops->rollback(f->st.ctx);
	/* the next statement connects again, and finds nothing of the lost batch */
	assert_int_equal(
	        f->st.ops->acked(f->st.ctx, "gate-a", CITYPASS__STREAM__STATISTICS, &acked), 0);
	assert_int_equal(acked, 0);
	uint64_t total = 0;
	assert_int_equal(f->st.ops->stats(f->st.ctx, 0, INT64_MAX, 3600, count_rows, &total), 0);
	assert_int_equal(total, 0);
	/* the gate sends the batch again: stored once, acknowledged */
	struct server_sync_backend b;
	assert_int_equal(server_sync_backend_open(&b, f->dir, 0, NULL), 0);
	assert_int_equal(b.ops->ingest(b.ctx, "gate-a", &batch, &acked), 0);
	assert_int_equal(acked, 3);
	b.ops->destroy(b.ctx);
	assert_int_equal(f->st.ops->stats(f->st.ctx, 0, INT64_MAX, 3600, count_rows, &total), 0);
	assert_int_equal(total, 3);
}

static void test_household_quota_from_consumption(void **state)
{
	struct fx *f = *state;
	int64_t hh;
	assert_int_equal(f->st.ops->household_add(f->st.ctx, "dupont", &hh), 0);
	assert_int_equal(f->st.ops->household_tag_add(f->st.ctx, hh, 3, 0x123456), 0);
	struct proto_rights_profile p = {7, 0, 0xFFFF, 24, PROTO_PERIOD_YEAR, PROTO_SCOPE_HOUSEHOLD,
	                                 0, 0};
	uint8_t k1[8], k2[8];
	add_pass(f, hh, 3, 0x21, &p, k1);
	add_pass(f, hh, 3, 0x22, &p, k2);
	struct server_periods per;
	server_periods_at(NOW, &per);
	assert_int_equal(per.n[PROTO_PERIOD_YEAR], 2026);

	Citypass__ConsumptionEvent c[3], *cp[3];
	const uint8_t *keys[3] = {k1, k2, k1};
	const uint32_t periods[3] = {2026, 2026, 2025}; /* last year's does not count */
	for (int i = 0; i < 3; i++) {
		citypass__consumption_event__init(&c[i]);
		c[i].seq = (uint64_t)i + 1;
		c[i].sector = 3;
		c[i].pseudonym.data = (uint8_t *)keys[i];
		c[i].pseudonym.len = 8;
		c[i].product = 7;
		c[i].count = (uint32_t)(i + 2);
		c[i].period = periods[i];
		cp[i] = &c[i];
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__CONSUMPTION;
	batch.consumption = cp;
	batch.n_consumption = 3;
	uint64_t acked;
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	assert_int_equal(f->st.ops->ingest(f->st.ctx, "gate-w", &batch, &acked), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
	assert_int_equal(acked, 3);

	struct server_publish_opts o = {NOW, 7 * 86400, 30, 0, 0};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 3, &o, &r), 0);
	assert_int_equal(r.version, 1);
	struct pubv pv;
	pubv_get(f, 3, 1, &pv);
	struct proto_list_entry e;
	assert_int_equal(pubv_lookup(f, 3, &pv, k2, &e, NULL), 0);
	assert_int_equal(e.used, 2 + 3); /* both passes of the household, this year only */
	assert_int_equal(e.used_period, 2026 & 0xFF);
	assert_int_equal(e.household, 0x123456);
	pubv_free(&pv);
	/* publishing deleted last year's row */
	assert_int_equal(server_publish_sector(&f->st, f->dir, 3, &o, &r), 0);
	assert_int_equal(
	        f->st.ops->acked(f->st.ctx, "gate-w", CITYPASS__STREAM__CONSUMPTION, &acked), 0);
	assert_int_equal(acked, 3); /* the ack survives the purge */
}

static void test_revocation_and_delta(void **state)
{
	struct fx *f = *state;
	struct proto_rights_profile sub = {1, 20000, 20500, 0, 0, 0, 1, 0};
	struct proto_rights_profile ten = {2, 0, 0xFFFF, 10, PROTO_PERIOD_LIFETIME, 0, 0, 1};
	uint8_t k1[8], k2[8];
	int64_t p1 = add_pass(f, 0, 1, 0x31, &sub, k1);
	add_pass(f, 0, 1, 0x32, &ten, k2);
	struct server_publish_opts o = {NOW, 7 * 86400, 30, 0, 0};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_int_equal(r.version, 1);
	assert_true(r.full);

	struct server_pass ps;
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, p1, &ps), 0);
	ps.state = SERVER_PASS_REVOKED;
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &ps), 0);
	o.now += 60;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_int_equal(r.version, 2);
	assert_false(r.full);
	assert_int_equal(r.changed_keys, 1);
	assert_int_equal(r.changed_chunks, 1);

	struct pubv v1, v2;
	struct server_stored_list d = {0};
	pubv_get(f, 1, 1, &v1);
	pubv_get(f, 1, 2, &v2);
	assert_int_equal(f->st.ops->delta_get(f->st.ctx, 1, 1, &d), 0);
	assert_int_equal(d.version, 2);
	assert_int_equal(d.len, r.delta_len);

	/* the signature is over the manifest; a gate applying the delta to version 1 derives
	 * that very manifest, and the server's signature verifies over it */
	struct proto_keyring *ring = list_ring(f);
	struct proto_list_policy pol = {1, 1, NOW + 120, ring};
	struct proto_clist_manifest m;
	struct proto_clist_head h;
	assert_int_equal(proto_clist_verify(v2.v.manifest, v2.v.manifest_len, v2.v.sig,
	                                    v2.v.sig_len, v2.v.head, v2.v.head_len, &pol, &m, &h),
	                 0);
	proto_clist_manifest_free(&m);
	proto_clist_head_free(&h);
	uint8_t h1[PROTO_HASH_LEN];
	proto_sha256(v1.v.manifest, v1.v.manifest_len, h1);
	struct store_reader rd = {f, 1, &v1};
	struct proto_clist_applied ap;
	assert_int_equal(proto_clist_delta_apply(&v1.m, h1, read_store_chunk, &rd, d.data, d.len,
	                                         d.sig, d.sig_len, &pol, &ap),
	                 0);
	assert_int_equal(ap.manifest_len, v2.v.manifest_len);
	assert_memory_equal(ap.manifest_bytes, v2.v.manifest, v2.v.manifest_len);
	proto_clist_applied_free(&ap);

	/* the revoked pass is listed as revoked, profiles kept their indices */
	struct proto_list_entry e1, e2, b1;
	struct proto_rights_profile pr;
	assert_int_equal(pubv_lookup(f, 1, &v2, k1, &e1, &pr), 0);
	assert_int_equal(e1.status, PROTO_STATUS_REVOKED);
	assert_int_equal(pr.valid_from, 20000);
	assert_int_equal(pubv_lookup(f, 1, &v2, k2, &e2, &pr), 0);
	assert_int_equal(e2.status, PROTO_STATUS_ACTIVE);
	assert_int_equal(pr.flags, PROTO_PROFILE_ENTRIES_ON_CARD);
	assert_int_equal(pubv_lookup(f, 1, &v1, k1, &b1, NULL), 0);
	assert_int_equal(b1.profile, e1.profile);
	assert_int_equal(b1.status, PROTO_STATUS_ACTIVE);

	proto_keyring_free(ring);
	pubv_free(&v1);
	pubv_free(&v2);
	server_stored_list_free(&d);
}

static void test_prune_keeps_last(void **state)
{
	struct fx *f = *state;
	struct server_publish_opts o = {NOW, 86400, 3, 0, 0};
	struct server_publish_result r;
	struct proto_rights_profile p = {1, 0, 0xFFFF, 0, 0, 0, 0, 0};
	uint8_t key[8];
	add_pass(f, 0, 1, 0x41, &p, key);
	for (int i = 0; i < 6; i++) {
		/* a change each time, so that chunk files are replaced and can go */
		struct server_right rt = {1, 1, p};
		rt.p.product = (uint16_t)(10 + i);
		assert_int_equal(f->st.ops->right_set(f->st.ctx, &rt), 0);
		assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	}
	assert_int_equal(r.version, 6);
	struct server_list_version v;
	assert_int_equal(f->st.ops->list_version_get(f->st.ctx, 1, 3, &v), SERVER_ERR_NOT_FOUND);
	assert_int_equal(f->st.ops->list_version_get(f->st.ctx, 1, 4, &v), 0);
	server_list_version_free(&v);
	struct server_stored_list l = {0};
	assert_int_equal(f->st.ops->delta_get(f->st.ctx, 1, 2, &l), SERVER_ERR_NOT_FOUND);
	assert_int_equal(f->st.ops->delta_get(f->st.ctx, 1, 5, &l), 0);
	server_stored_list_free(&l);
	/* the chunk files of versions 1..3 are gone; those of 4..6 stay */
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(f->st.ops->list_file_get(f->st.ctx, 1, 0, 3, 0, &data, &len),
	                 SERVER_ERR_NOT_FOUND);
	for (uint64_t since = 4; since <= 6; since++) {
		assert_int_equal(f->st.ops->list_file_get(f->st.ctx, 1, 0, since, 0, &data, &len),
		                 0);
		free(data);
	}
}

/* --- a whole sector's rows, as a full rebuild reads them ---------------------------------- */

static int collect_row(void *arg, const struct server_list_row *r)
{
	struct {
		struct server_list_row v[400];
		size_t n;
	} *c = arg;
	assert_true(c->n < sizeof(c->v) / sizeof(c->v[0]));
	c->v[c->n++] = *r;
	return 0;
}

static void use_count(struct fx *f, uint64_t seq, const uint8_t key[8], uint32_t product,
                      uint32_t count, uint32_t period)
{
	Citypass__ConsumptionEvent c = CITYPASS__CONSUMPTION_EVENT__INIT, *cp = &c;
	c.seq = seq;
	c.sector = 1;
	c.pseudonym.data = (uint8_t *)key;
	c.pseudonym.len = 8;
	c.product = product;
	c.count = count;
	c.period = period;
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__CONSUMPTION;
	batch.consumption = &cp;
	batch.n_consumption = 1;
	uint64_t acked;
	assert_int_equal(f->st.ops->ingest(f->st.ctx, "gate-rows", &batch, &acked), 0);
}

/* list_rows (the full rebuild's, read by scanning each table on sqlite) gives, for every
 * key, the row list_row (the one-key query, what every delta is made from) gives: state,
 * household tag, right, and the uses of the current period, a pass's own or its
 * household's, of every period kind. */
static void test_sector_rows_equal_one_key_rows(void **state)
{
	struct fx *f = *state;
	struct server_periods per;
	server_periods_at(NOW, &per);
	enum { N = 120 };
	uint8_t keys[N][8];
	int64_t hh[8];
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	for (int h = 0; h < 8; h++) {
		char name[16];
		snprintf(name, sizeof(name), "rows-h%d", h);
		assert_int_equal(f->st.ops->household_add(f->st.ctx, name, &hh[h]), 0);
		if (h % 4 != 3) /* some households have no tag in the sector */
			assert_int_equal(f->st.ops->household_tag_add(f->st.ctx, hh[h], 1,
			                                              0x1000u + (uint32_t)h),
			                 0);
	}
	for (int i = 0; i < N; i++) {
		struct server_pass ps;
		memset(&ps, 0, sizeof(ps));
		ps.household = i % 5 == 0 ? 0 : hh[i % 8];
		ps.state = i % 11 == 0 ? SERVER_PASS_REVOKED : SERVER_PASS_ACTIVE;
		snprintf(ps.medium, sizeof(ps.medium), "card");
		assert_int_equal(f->st.ops->pass_add(f->st.ctx, &ps), 0);
		uint8_t id[16] = {0};
		memcpy(id, &i, sizeof(i));
		id[15] = 0x77;
		proto_list_key(1, id, sizeof(id), keys[i]);
		/* one in seven has no identifier in the sector: no row, its right aside */
		if (i % 7 != 6)
			assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, ps.id, 1, id, keys[i]),
			                 0);
		/* one in nine has an identifier but no right in the sector: no row either */
		if (i % 9 == 8)
			continue;
		struct proto_rights_profile p = {
		        (uint16_t)(1 + i % 3), 0, 0xFFFF, 10, (uint8_t)(i % 6), (uint8_t)(i % 2), 0,
		        (uint8_t)(i % 13 == 0)};
		struct server_right r = {ps.id, 1, p};
		assert_int_equal(f->st.ops->right_set(f->st.ctx, &r), 0);
	}
	/* uses: this period's and an older one's, of the right product or another, for keys
	 * in the sector, and for a pseudonym no pass has */
	uint64_t seq = 1;
	for (int i = 0; i < N; i++) {
		uint32_t product = 1 + (uint32_t)(i % 3);
		for (int kind = 1; kind <= 5; kind++) {
			uint32_t cur = (uint32_t)(kind == 1 ? 0 : per.n[kind]);
			if ((i + kind) % 3 == 0)
				continue;
			use_count(f, seq++, keys[i], product, (uint32_t)(1 + (i + kind) % 4), cur);
			use_count(f, seq++, keys[i], product, 50, cur - 1);
			use_count(f, seq++, keys[i], product + 1, 70, cur);
		}
	}
	uint8_t stranger[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	use_count(f, seq++, stranger, 1, 90, (uint32_t)per.n[PROTO_PERIOD_YEAR]);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);

	static struct {
		struct server_list_row v[400];
		size_t n;
	} got;
	got.n = 0;
	assert_int_equal(f->st.ops->begin_read(f->st.ctx), 0);
	assert_int_equal(f->st.ops->list_rows(f->st.ctx, 1, &per, collect_row, &got), 0);
	size_t listed = 0;
	int shared_uses = 0;
	for (int i = 0; i < N; i++) {
		struct server_list_row one;
		int rc = f->st.ops->list_row(f->st.ctx, 1, keys[i], &per, &one);
		const struct server_list_row *r = NULL;
		for (size_t k = 0; k < got.n && !r; k++)
			if (memcmp(got.v[k].key, keys[i], 8) == 0)
				r = &got.v[k];
		if (rc == SERVER_ERR_NOT_FOUND) {
			assert_null(r);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_non_null(r);
		listed++;
		assert_int_equal(r->state, one.state);
		assert_int_equal(r->household_tag, one.household_tag);
		assert_memory_equal(&r->p, &one.p, sizeof(one.p));
		assert_int_equal(r->used, one.used);
		shared_uses +=
		        one.p.scope == PROTO_SCOPE_HOUSEHOLD && one.household_tag && one.used;
	}
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
	assert_int_equal(got.n, listed);
	/* the cases are there: rows, of both scopes, and a household's total counted */
	assert_true(listed > N / 2);
	assert_true(shared_uses > 0);
}

/* --- a change costs what changed --------------------------------------------------------- */

/* n passes in sector 1 (2 of 3 with a household quota shared by households of 3) */
static void many_passes(struct fx *f, int n, int64_t *first)
{
	struct proto_rights_profile sub = {1, 0, 0xFFFF, 0, 0, 0, 0, 0};
	struct proto_rights_profile quota = {
	        5, 0, 0xFFFF, 24, PROTO_PERIOD_YEAR, PROTO_SCOPE_HOUSEHOLD, 1, 0};
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	int64_t hh = 0;
	for (int i = 0; i < n; i++) {
		if (i % 3 == 0) {
			char name[32];
			snprintf(name, sizeof(name), "h%d", i);
			assert_int_equal(f->st.ops->household_add(f->st.ctx, name, &hh), 0);
			assert_int_equal(
			        f->st.ops->household_tag_add(f->st.ctx, hh, 1, (uint32_t)(i + 1)),
			        0);
		}
		struct server_pass ps;
		memset(&ps, 0, sizeof(ps));
		ps.household = i % 3 ? hh : 0;
		snprintf(ps.medium, sizeof(ps.medium), "card");
		assert_int_equal(f->st.ops->pass_add(f->st.ctx, &ps), 0);
		if (i == 0)
			*first = ps.id;
		uint8_t id[16] = {0}, key[8];
		memcpy(id, &i, sizeof(i));
		id[15] = 0x5a;
		proto_list_key(1, id, sizeof(id), key);
		assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, ps.id, 1, id, key), 0);
		struct server_right r = {ps.id, 1, i % 3 ? quota : sub};
		assert_int_equal(f->st.ops->right_set(f->st.ctx, &r), 0);
	}
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
}

struct cost {
	uint64_t statements, bytes;
	uint32_t chunks;
};

static void revoke_and_measure(struct fx *f, int64_t pass, const struct server_publish_opts *o,
                               struct cost *c)
{
	struct server_pass ps;
	struct server_store_counters before, after;
	struct server_publish_result r;
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, pass, &ps), 0);
	ps.state = SERVER_PASS_REVOKED;
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &ps), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
	f->st.ops->counters(f->st.ctx, &before);
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, o, &r), 0);
	f->st.ops->counters(f->st.ctx, &after);
	assert_false(r.full);
	c->statements = after.statements - before.statements;
	c->bytes = after.bytes_written - before.bytes_written;
	c->chunks = r.changed_chunks;
}

static void cost_of_one_revocation(int n, struct cost *c)
{
	struct fx *f;
	assert_int_equal(setup((void **)&f), 0);
	int64_t first = 0;
	many_passes(f, n, &first);
	/* chunks of ~256 passes: a 16 000-pass sector has 64 of them */
	struct server_publish_opts o = {NOW, 7 * 86400, 30, 0, 256};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_true(r.full);
	revoke_and_measure(f, first + n / 2, &o, c);
	teardown((void **)&f);
}

static void test_publish_costs_what_changed(void **state)
{
	(void)state;
	struct cost small, large;
	cost_of_one_revocation(2000, &small);
	cost_of_one_revocation(16000, &large);
	print_message("one revocation: %llu statements, %llu bytes at 2 000 passes; %llu "
	              "statements, %llu bytes at 16 000\n",
	              (unsigned long long)small.statements, (unsigned long long)small.bytes,
	              (unsigned long long)large.statements, (unsigned long long)large.bytes);
	/* one pass changed: one chunk rewritten, whatever the size of the sector */
	assert_int_equal(small.chunks, 1);
	assert_int_equal(large.chunks, 1);
	/* the statements a publish runs do not depend on the passes held */
	assert_int_equal(small.statements, large.statements);
	/* bytes written: one chunk of ~250 passes (15 bytes each, and its index), the delta,
	 * the head, and the manifest (one line per file: it grows with the chunks, 64 here
	 * against 8, not with the passes); a full rebuild would write 16 000 x 15 = 240 000 */
	assert_true(large.bytes * 10 < 16000 * PROTO_CLIST_ENTRY_SIZE);
	assert_true(large.bytes - small.bytes < (64 - 8) * 2 * 90);
}

/* What the publish's store calls did with the files no kept version names. */
static struct {
	const struct server_store_ops *real;
	unsigned batches, deleted, most, commits, commits_then;
	int two_in_one_transaction;
} g_prune;

static int prune_spy(void *ctx, uint16_t sector, unsigned max, unsigned *deleted)
{
	int rc = g_prune.real->list_files_prune(ctx, sector, max, deleted);
	if (rc == 0 && *deleted > 0) {
		if (g_prune.batches++ > 0 && g_prune.commits == g_prune.commits_then)
			g_prune.two_in_one_transaction = 1;
		g_prune.commits_then = g_prune.commits;
		g_prune.deleted += *deleted;
		if (*deleted > g_prune.most)
			g_prune.most = *deleted;
	}
	return rc;
}

static int commit_spy(void *ctx)
{
	g_prune.commits++;
	return g_prune.real->commit(ctx);
}

/* `keep` publishes after a full rebuild, the files of the list before it go: all of them
 * (a whole list's worth), in transactions of a few each, never in the one that carries the
 * new version (at 5 M passes that held the write lock up to 1.4 s, and a revocation with
 * it). */
static void test_replaced_list_files_go_a_few_at_a_time(void **state)
{
	struct fx *f = *state;
	int64_t first = 0;
	many_passes(f, 16000, &first);
	struct server_publish_opts o = {NOW, 7 * 86400, 3, 1, 256}; /* 64 chunks, 128 files */
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_int_equal(r.version, 2);
	const unsigned files = 2 * r.changed_chunks; /* each chunk: its .dat and its .idx */
	assert_true(files >= 100);

	static struct server_store_ops spy;
	spy = *f->st.ops;
	spy.list_files_prune = prune_spy;
	spy.commit = commit_spy;
	memset(&g_prune, 0, sizeof(g_prune));
	g_prune.real = f->st.ops;
	f->st.ops = &spy;
	o.full = 0;
	struct cost c;
	revoke_and_measure(f, first + 10, &o, &c); /* version 3: versions 1-3 kept */
	assert_int_equal(g_prune.deleted, 0);
	revoke_and_measure(f, first + 9000, &o, &c); /* version 4: version 1 goes, and its files */
	f->st.ops = g_prune.real;

	assert_int_equal(g_prune.deleted, files);
	assert_true(g_prune.batches >= files / 16);
	assert_true(g_prune.most <= 16);
	assert_false(g_prune.two_in_one_transaction);
	uint8_t *data = NULL;
	size_t len = 0;
	assert_int_equal(f->st.ops->list_file_get(f->st.ctx, 1, 0, 1, 0, &data, &len),
	                 SERVER_ERR_NOT_FOUND);
	assert_int_equal(f->st.ops->list_file_get(f->st.ctx, 1, 0, 2, 0, &data, &len), 0);
	free(data);
}

/* The pages a transaction wrote, from the moment the spied retire runs to the next commit. */
static struct {
	const struct server_store_ops *real;
	int armed;
	int64_t pages; /* -1 until the version's transaction committed */
} g_retire;

static int retire_spy(void *ctx, uint16_t sector, int64_t chunk, uint64_t version)
{
	struct sq *q = ctx;
	int cur = 0, hi = 0;
	sqlite3_db_status(q->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 1); /* from zero */
	g_retire.armed = 1;
	return g_retire.real->list_files_retire(ctx, sector, chunk, version);
}

static int retire_commit_spy(void *ctx)
{
	struct sq *q = ctx;
	int rc = g_retire.real->commit(ctx);
	if (g_retire.armed) {
		int cur = 0, hi = 0;
		sqlite3_db_status(q->db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 0);
		g_retire.pages = cur;
		g_retire.armed = 0;
	}
	return rc;
}

/* A full rebuild replaces every file of the list before it; saying so writes a few bytes a
 * file, not the files again. (Kept in the file's own row, sqlite rewrote each blob to set
 * it: the whole list, inside the version's transaction, 75 MiB at 5 M passes.) */
static void test_full_rebuild_retires_without_rewriting(void **state)
{
	struct fx *f = *state;
	if (pg_dir)
		skip(); /* PostgreSQL's UPDATE keeps a stored blob where it is */
	int64_t first = 0;
	many_passes(f, 16000, &first);
	struct server_publish_opts o = {NOW, 7 * 86400, 30, 1, 256}; /* 64 chunks, 240 KB */
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	const int64_t list_pages = (int64_t)r.entries * PROTO_CLIST_ENTRY_SIZE / 4096;

	static struct server_store_ops spy;
	spy = *f->st.ops;
	spy.list_files_retire = retire_spy;
	spy.commit = retire_commit_spy;
	memset(&g_retire, 0, sizeof(g_retire));
	g_retire.real = f->st.ops;
	g_retire.pages = -1;
	f->st.ops = &spy;
	int rc = server_publish_sector(&f->st, f->dir, 1, &o, &r);
	f->st.ops = g_retire.real;
	assert_int_equal(rc, 0);
	assert_int_equal(r.version, 2);
	print_message("the version's transaction wrote %lld pages; the list is %lld pages\n",
	              (long long)g_retire.pages, (long long)list_pages);
	assert_true(list_pages >= 50);
	assert_true(g_retire.pages >= 1); /* the counter counts this transaction's pages */
	assert_true(g_retire.pages * 2 < list_pages);

	/* every file of version 1 is retired at 2: gone once version 1 is not kept */
	o.keep = 1;
	o.full = 0;
	revoke_and_measure(f, first + 10, &o, &(struct cost){0});
	uint8_t *data = NULL;
	size_t len = 0;
	unsigned current = 0;
	for (uint32_t chunk = 0; chunk < 64; chunk++) {
		assert_int_equal(f->st.ops->list_file_get(f->st.ctx, 1, chunk, 1, 0, &data, &len),
		                 SERVER_ERR_NOT_FOUND);
		if (f->st.ops->list_file_get(f->st.ctx, 1, chunk, 2, 0, &data, &len) == 0) {
			current++;
			free(data);
		}
	}
	assert_int_equal(current, 63); /* the revoked pass's chunk was replaced at 3 */
}

static int64_t sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* A database of schema 7 kept a replaced file's end in the file's row: the upgrade moves
 * every end beside the files, and the files it names still go when their versions do. */
static void test_file_ends_migration(void **state)
{
	struct fx *f = *state;
	if (pg_dir)
		skip(); /* schema 8 is the sqlite store's */
	int64_t first = 0;
	many_passes(f, 2000, &first);
	struct server_publish_opts o = {NOW, 7 * 86400, 30, 1, 256}; /* 8 chunks */
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	const int64_t files = 2 * (int64_t)r.changed_chunks;
	server_store_close(&f->st);
	char path[128];
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/%s", f->dir, SERVER_DB_FILE);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	/* schema 7's shape: the end in the file's row */
	assert_int_equal(sqlite3_exec(db, STORE_FIXTURE_SQLITE_SCHEMA_7, NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(sql_int(db, "SELECT COUNT(*) FROM list_files WHERE until = 2"), files);
	sqlite3_close(db);

	assert_int_equal(server_store_open_sqlite(&f->st, f->dir, 0), 0);
	struct sq *q = f->st.ctx;
	assert_int_equal(sql_int(q->db, "PRAGMA user_version"), SERVER_STORE_SCHEMA_VERSION);
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM list_file_ends WHERE until = 2"
	                                " AND since = 1"),
	                 files);
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM list_file_ends"), files);
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM pragma_table_info('list_files')"
	                                " WHERE name = 'until'"),
	                 0);
	/* version 1 out of the kept ones: its files go, version 2's stay */
	o.keep = 1;
	o.full = 0;
	revoke_and_measure(f, first + 10, &o, &(struct cost){0});
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM list_files WHERE since = 1"), 0);
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM list_files WHERE since = 2"),
	                 files - 2);
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM list_file_ends"), 0);

	/* a file written again is current again (as PostgreSQL's upsert sets until NULL) */
	const uint8_t dat[3] = {1, 2, 3};
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	assert_int_equal(f->st.ops->list_file_put(f->st.ctx, 1, 99, 50, 0, dat, 3), 0);
	assert_int_equal(f->st.ops->list_files_retire(f->st.ctx, 1, 99, 51), 0);
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM list_file_ends"), 1);
	assert_int_equal(f->st.ops->list_file_put(f->st.ctx, 1, 99, 50, 0, dat, 3), 0);
	assert_int_equal(sql_int(q->db, "SELECT COUNT(*) FROM list_file_ends"), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
}

/* Every path that changes an entry is in the change log: after changes of every kind,
 * the version published from the log equals a full rebuild made right after. */
static void test_change_log_equals_full_rebuild(void **state)
{
	struct fx *f = *state;
	int64_t first = 0;
	many_passes(f, 1500, &first);
	/* a household whose sector tag comes only after this first version */
	struct server_pass ps;
	int64_t hh;
	assert_int_equal(f->st.ops->household_add(f->st.ctx, "late", &hh), 0);
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, first + 40, &ps), 0);
	ps.household = hh;
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &ps), 0);
	struct server_publish_opts o = {NOW, 7 * 86400, 30, 0, 128};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);

	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	/* a revocation, a household move, a right changed, a right removed, a new pass */
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, first + 10, &ps), 0);
	ps.state = SERVER_PASS_SUSPENDED;
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &ps), 0);
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, first + 4, &ps), 0);
	ps.household = 0;
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &ps), 0);
	struct proto_rights_profile np = {9, 100, 200, 0, 0, 0, 2, 0};
	struct server_right rt = {first + 20, 1, np};
	assert_int_equal(f->st.ops->right_set(f->st.ctx, &rt), 0);
	assert_int_equal(f->st.ops->right_delete(f->st.ctx, first + 30, 1), 0);
	uint8_t knew[8];
	add_pass(f, 0, 1, 0x77, &np, knew);
	/* the household gets its tag now */
	assert_int_equal(f->st.ops->household_tag_add(f->st.ctx, hh, 1, 0xABCDE), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
	/* uses counted by a gate for a household member */
	uint8_t k50[8];
	assert_int_equal(f->st.ops->pass_id_get(f->st.ctx, first + 50, 1, NULL, k50), 0);
	Citypass__ConsumptionEvent c = CITYPASS__CONSUMPTION_EVENT__INIT, *cp = &c;
	c.seq = 1;
	c.sector = 1;
	c.pseudonym.data = k50;
	c.pseudonym.len = 8;
	c.product = 5;
	c.count = 2;
	c.period = 2026;
	Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
	b.stream = CITYPASS__STREAM__CONSUMPTION;
	b.consumption = &cp;
	b.n_consumption = 1;
	uint64_t acked;
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	assert_int_equal(f->st.ops->ingest(f->st.ctx, "gate-x", &b, &acked), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);

	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_false(r.full);
	uint64_t incremental = r.version;
	o.full = 1;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_true(r.full);

	struct pubv a, z;
	pubv_get(f, 1, incremental, &a);
	pubv_get(f, 1, r.version, &z);
	size_t na, nz;
	struct proto_list_entry *ea = pubv_entries(f, 1, &a, &na);
	struct proto_list_entry *ez = pubv_entries(f, 1, &z, &nz);
	assert_int_equal(na, nz);
	for (size_t i = 0; i < na; i++) {
		assert_memory_equal(ea[i].key, ez[i].key, 8);
		assert_int_equal(ea[i].status, ez[i].status);
		assert_int_equal(ea[i].household, ez[i].household);
		assert_int_equal(ea[i].used, ez[i].used);
		assert_int_equal(ea[i].used_period, ez[i].used_period);
		assert_true(
		        profile_same(&a.h.profiles[ea[i].profile], &z.h.profiles[ez[i].profile]));
	}
	/* and the changes are there */
	struct proto_list_entry e;
	uint8_t k10[8], k49[8];
	assert_int_equal(f->st.ops->pass_id_get(f->st.ctx, first + 10, 1, NULL, k10), 0);
	assert_int_equal(pubv_lookup(f, 1, &a, k10, &e, NULL), 0);
	assert_int_equal(e.status, PROTO_STATUS_SUSPENDED);
	assert_int_equal(pubv_lookup(f, 1, &a, knew, &e, NULL), 0);
	assert_int_equal(f->st.ops->pass_id_get(f->st.ctx, first + 49, 1, NULL, k49), 0);
	assert_int_equal(pubv_lookup(f, 1, &a, k49, &e, NULL), 0);
	assert_int_equal(e.used, 2); /* another member of pass 50's household */
	free(ea);
	free(ez);
	pubv_free(&a);
	pubv_free(&z);
}

/* Hundreds of distinct rights in a sector (the profile table the publisher keeps in memory
 * grows past its first size): publishing still ends, and the indices stay stable. */
static void test_many_profiles(void **state)
{
	struct fx *f = *state;
	uint8_t key[8];
	for (int i = 0; i < 250; i++) {
		struct proto_rights_profile p = {(uint16_t)(100 + i), 0, 0xFFFF, 0, 0, 0, 0, 0};
		add_pass(f, 0, 1, (uint8_t)i, &p, key);
	}
	struct server_publish_opts o = {NOW, 86400, 3, 0, 0};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	struct server_right rt = {1, 1, {999, 0, 0xFFFF, 0, 0, 0, 0, 0}};
	assert_int_equal(f->st.ops->right_set(f->st.ctx, &rt), 0);
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
	assert_false(r.full);
	struct pubv v;
	pubv_get(f, 1, r.version, &v);
	assert_int_equal(v.h.profile_count, 251);
	pubv_free(&v);
}

/* PostgreSQL: the publisher's lock is the database's. Held by one connection (another
 * instance publishing), refused to the next; dropped with the connection of a publisher
 * killed in the middle, so that the next publish goes through. */
static void dead_publisher_pg(struct fx *f)
{
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* another instance, publishing sector 1, then killed */
		struct server_store st;
		if (server_store_open(&st, f->dir, 0, NULL) != 0 ||
		    st.ops->publish_lock(st.ctx, 1, 1, 0) != 0)
			_exit(1);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_non_null(f->st.ops->publish_lock);
	assert_int_equal(f->st.ops->publish_lock(f->st.ctx, 1, 1, 0), SERVER_ERR_BUSY);
	/* another sector is not held up */
	assert_int_equal(f->st.ops->publish_lock(f->st.ctx, 3, 1, 0), 0);
	assert_int_equal(f->st.ops->publish_lock(f->st.ctx, 3, 0, 0), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(ready[0]);
	close(ready[1]);
	struct server_publish_opts o = {NOW, 86400, 3, 0, 0};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
}

/* A publisher that dies in the middle (kill -9, an agent's Ctrl-C) does not stop the next
 * one: the kernel drops its lock with it. */
static void test_a_dead_publisher_blocks_nobody(void **state)
{
	struct fx *f = *state;
	if (pg_dir) {
		dead_publisher_pg(f);
		return;
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/publish.lock", f->dir);
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) { /* holds the lock as a publisher would, then is killed */
		int fd = open(path, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(1);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(ready[0]);
	close(ready[1]);
	/* the lock is free at once (a lock kept in the database would be held until it timed
	 * out), and the next publish goes through */
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	struct server_publish_opts o = {NOW, 86400, 3, 0, 0};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &r), 0);
}

/* A database of schema 2 (format 1 lists) is migrated at open; numbering goes on. */
static void test_migration_to_format2_lists(void **state)
{
	(void)state;
	if (pg_dir)
		skip(); /* sqlite's own history: the PostgreSQL store began at schema 5 */
	char dir[64], path[128];
	snprintf(dir, sizeof(dir), "/tmp/test-server-mig-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(server_keys_create(dir, "localhost"), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, SERVER_DB_FILE);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sq_schema_v2_sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(
	        sqlite3_exec(db,
	                     "PRAGMA user_version=2; INSERT INTO sectors VALUES(1, 'pool', 0);"
	                     " INSERT INTO lists VALUES(1, 7, 0, 1, x'00', x'00');",
	                     NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	struct server_store st;
	assert_int_equal(server_store_open_sqlite(&st, dir, 0), 0);
	uint64_t v = 0;
	assert_int_equal(st.ops->list_latest(st.ctx, 1, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(st.ops->list_published(st.ctx, 1, &v), 0);
	assert_int_equal(v, 0);
	struct server_publish_opts o = {NOW, 86400, 30, 0, 0};
	struct server_publish_result r;
	assert_int_equal(server_publish_sector(&st, dir, 1, &o, &r), 0);
	assert_int_equal(r.version, 8); /* a gate holding format 1 v7 never sees it go back */
	assert_true(r.full);
	server_store_close(&st);
	/* reopening finds schema 3 and leaves it */
	assert_int_equal(server_store_open_sqlite(&st, dir, 0), 0);
	server_store_close(&st);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	pg_dir = getenv("CITYPASS_TEST_PG_DIR");
	if (pg_dir && !*pg_dir)
		pg_dir = NULL;
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_schema_refuses_second_create, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_schema_newer_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ingest_dedup_two_instances, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ingest_lost_connection, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_identifier_collision_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_right_add_refuses_a_second, setup, teardown),
	        cmocka_unit_test(test_import_lines_keep_no_statement_journal),
	        cmocka_unit_test(test_bulk_commits_never_checkpoint),
	        cmocka_unit_test(test_bulk_log_cut_a_step_at_a_time),
	        cmocka_unit_test(test_waiting_writer_takes_the_gap),
	        cmocka_unit_test_setup_teardown(test_ingest_dedup_and_acks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_household_quota_from_consumption, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_revocation_and_delta, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prune_keeps_last, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sector_rows_equal_one_key_rows, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_many_profiles, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_a_dead_publisher_blocks_nobody, setup,
	                                        teardown),
	        cmocka_unit_test(test_publish_costs_what_changed),
	        cmocka_unit_test_setup_teardown(test_replaced_list_files_go_a_few_at_a_time, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_full_rebuild_retires_without_rewriting, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_file_ends_migration, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_change_log_equals_full_rebuild, setup,
	                                        teardown),
	        cmocka_unit_test(test_migration_to_format2_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
