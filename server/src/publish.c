/*
 * publish.c — the next version of a sector's list, from the change log (server/publish.h).
 *
 *   1. lock       one publisher at a time (an flock the kernel drops if the process dies;
 *                 the store's advisory lock when it is shared by several instances)
 *   2. read       in one read transaction: the newest version, the keys the change log
 *                 names and their rows (or every row, for a full rebuild), the chunks they
 *                 fall in
 *   3. compute    new entries, the rewritten chunks (proto_clist_derive: what gates run),
 *                 the head, the manifest, its signature, the delta; no lock held
 *   4. write      one short write transaction: the new files, the version, the delta, the
 *                 log trimmed up to what was read, old versions pruned; a full rebuild
 *                 writes its chunk files before, in transactions of a few MiB each
 *   5. forget     after that commit, in short transactions: what is left of a long change
 *                 log, and the files no kept version names any more
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "proto/calendar.h"
#include "proto/clist.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "server/keys.h"
#include "server/publish.h"

#define LOCK_WAIT_MS     30000      /* another publish under way: wait this long at most */
#define FILE_BATCH_BYTES (8u << 20) /* full rebuild: chunk files written per transaction */
#define WRITE_ATTEMPTS   3
#define LOG_TRIM_BATCH   20000u /* change log rows forgotten per transaction */
#define FILE_PRUNE_BATCH 8u     /* unneeded list files deleted per transaction */

/* The deployment's zone is the process's (proto/calendar.h numbers the periods). */
_Static_assert(sizeof(((struct server_periods *)0)->n) == PROTO_PERIOD_KINDS * sizeof(int64_t),
               "one period number per enum proto_period");
void server_periods_at(int64_t now, struct server_periods *out)
{
	struct proto_civil_time today;
	memset(out, 0, sizeof(*out));
	if (proto_civil_local(now, &today) == 0)
		proto_periods_of_day(today.day, out->n);
}

static int from_proto(int rc)
{
	switch (rc) {
	case PROTO_OK:
		return 0;
	case PROTO_ERR_NOMEM:
		return SERVER_ERR_NOMEM;
	case PROTO_ERR_IO:
	case PROTO_ERR_KEY:
		return SERVER_ERR_IO;
	case PROTO_ERR_CRYPTO:
		return SERVER_ERR_CRYPTO;
	default:
		return SERVER_ERR_INVALID;
	}
}

/* --- profiles: a sector's table, found by value ------------------------------------- */

struct profile_map {
	struct proto_rights_profile *v; /* by index */
	size_t n, cap;
	size_t loaded;   /* those below are in the database; the rest are new */
	uint32_t *slots; /* open addressing: index + 1, 0 empty */
	size_t n_slots;
};

static uint64_t profile_hash(const struct proto_rights_profile *p)
{
	uint64_t h = ((uint64_t)p->product << 48) ^ ((uint64_t)p->valid_from << 32) ^
	             ((uint64_t)p->valid_to << 16) ^ ((uint64_t)p->limit << 8) ^ p->period;
	h ^= ((uint64_t)p->scope << 40) ^ ((uint64_t)p->fare << 24) ^ ((uint64_t)p->flags << 56);
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

static int profile_eq(const struct proto_rights_profile *a, const struct proto_rights_profile *b)
{
	return a->product == b->product && a->valid_from == b->valid_from &&
	       a->valid_to == b->valid_to && a->limit == b->limit && a->period == b->period &&
	       a->scope == b->scope && a->fare == b->fare && a->flags == b->flags;
}

static int map_rehash(struct profile_map *m, size_t n_slots)
{
	uint32_t *s = calloc(n_slots, sizeof(*s));
	if (!s)
		return SERVER_ERR_NOMEM;
	free(m->slots);
	m->slots = s;
	m->n_slots = n_slots;
	for (size_t i = 0; i < m->n; i++) {
		size_t at = profile_hash(&m->v[i]) & (n_slots - 1);
		while (s[at])
			at = (at + 1) & (n_slots - 1);
		s[at] = (uint32_t)i + 1;
	}
	return 0;
}

static int map_load(struct profile_map *m, struct server_store *s, uint16_t sector)
{
	memset(m, 0, sizeof(*m));
	int rc = s->ops->profiles(s->ctx, sector, &m->v, &m->n);
	if (rc)
		return rc;
	m->cap = m->n;
	m->loaded = m->n;
	/* at most half full, always: open addressing needs empty slots to end its probes */
	size_t slots = 64;
	while (slots < 2 * m->n + 2)
		slots *= 2;
	return map_rehash(m, slots);
}

/* The index of p, added at the end when new. */
static int map_index(struct profile_map *m, const struct proto_rights_profile *p, uint16_t *index)
{
	size_t at = profile_hash(p) & (m->n_slots - 1);
	while (m->slots[at]) {
		if (profile_eq(&m->v[m->slots[at] - 1], p)) {
			*index = (uint16_t)(m->slots[at] - 1);
			return 0;
		}
		at = (at + 1) & (m->n_slots - 1);
	}
	if (m->n >= PROTO_CLIST_MAX_PROFILES)
		return SERVER_ERR_INVALID; /* docs/list-format.md: 16 383 distinct rights at most */
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct proto_rights_profile *nv = realloc(m->v, cap * sizeof(*nv));
		if (!nv)
			return SERVER_ERR_NOMEM;
		m->v = nv;
		m->cap = cap;
	}
	m->v[m->n] = *p;
	*index = (uint16_t)m->n;
	m->n++;
	if (m->n * 2 > m->n_slots)
		return map_rehash(m, m->n_slots * 2);
	m->slots[at] = (uint32_t)m->n;
	return 0;
}

static void map_free(struct profile_map *m)
{
	free(m->v);
	free(m->slots);
}

/* --- entries ------------------------------------------------------------------------- */

static int entry_of(struct profile_map *m, const struct server_periods *per,
                    const struct server_list_row *r, struct proto_list_entry *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->key, r->key, PROTO_LIST_KEY_LEN);
	int rc = map_index(m, &r->p, &e->profile);
	e->household = r->household_tag & PROTO_LIST_HOUSEHOLD_MAX;
	e->used = (uint8_t)(r->used > 255 ? 255 : r->used);
	/* a stamp only means something beside a count: 0 otherwise, so that an entry nobody
	 * used is the same bytes whichever period it was last written in */
	e->used_period = e->used ? (uint8_t)(per->n[r->p.period < 6 ? r->p.period : 0] & 0xFF) : 0;
	e->status =
	        (uint8_t)(r->state >= 0 && r->state <= PROTO_STATUS_MAX ? r->state
	                                                                : PROTO_STATUS_SUSPENDED);
	return rc;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, PROTO_LIST_KEY_LEN);
}

/* --- one publish --------------------------------------------------------------------- */

struct base_chunk {
	uint32_t chunk;
	uint8_t *dat;
	uint32_t n;
};

struct pub {
	struct server_store *s;
	uint16_t sector;
	const struct server_publish_opts *o;
	struct proto_key *key;
	struct server_periods per;
	int lock_fd;
	int db_locked; /* the store's own publish lock is held (publish_lock) */

	uint64_t latest;
	struct server_list_version base; /* the newest format 2 version, if any */
	int have_base;
	struct proto_clist_manifest bm;
	struct proto_clist_head bh;
	uint8_t base_hash[PROTO_HASH_LEN];
	int64_t upto;
	uint64_t usage_position; /* issue 13: read with the rows: every use at or below is in */
	uint8_t (*keys)[PROTO_LIST_KEY_LEN];
	size_t n_keys;
	struct profile_map profiles;
	int full;
	int log_left; /* the version's write trimmed only part of the log */

	/* full rebuild */
	struct proto_list_entry *entries;
	size_t n_entries, cap_entries;
	/* incremental */
	struct base_chunk *bases;
	size_t n_bases;
	struct proto_clist_delta_chunk *changes;
	uint8_t **ops; /* per change */
	size_t n_changes;
	uint32_t entry_count;
};

static void pub_reset(struct pub *p)
{
	server_list_version_free(&p->base);
	proto_clist_manifest_free(&p->bm);
	proto_clist_head_free(&p->bh);
	free(p->keys);
	map_free(&p->profiles);
	free(p->entries);
	for (size_t i = 0; i < p->n_bases; i++)
		free(p->bases[i].dat);
	free(p->bases);
	for (size_t i = 0; i < p->n_changes; i++)
		free(p->ops[i]);
	free(p->ops);
	free(p->changes);
	p->have_base = 0;
	p->keys = NULL;
	p->n_keys = 0;
	p->entries = NULL;
	p->n_entries = p->cap_entries = 0;
	p->bases = NULL;
	p->n_bases = 0;
	p->ops = NULL;
	p->changes = NULL;
	p->n_changes = 0;
	memset(&p->profiles, 0, sizeof(p->profiles));
}

/* --- 1. one publisher at a time ------------------------------------------------------- */

/* An flock(2) on DATA/publish.lock: held for the whole publish, released by the kernel when
 * the process ends however it ends (an agent's Ctrl-C, a kill -9), so a publisher that dies
 * never blocks the next one. A store with a publish_lock op (PostgreSQL) takes its own. */
static int lock_take(struct pub *p, const char *data_dir)
{
	/* a store shared by several instances serialises publishers itself (PostgreSQL: an
	 * advisory lock the server drops when the connection dies); a lock file would only
	 * exclude the publishers of this machine */
	if (p->s->ops->publish_lock) {
		int rc = p->s->ops->publish_lock(p->s->ctx, p->sector, 1, LOCK_WAIT_MS);
		p->db_locked = rc == 0;
		return rc;
	}
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/publish.lock", data_dir) >= (int)sizeof(path))
		return SERVER_ERR_ARG;
	p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (p->lock_fd < 0)
		return SERVER_ERR_IO;
	for (int waited = 0;; waited += 20) {
		if (flock(p->lock_fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if (waited >= LOCK_WAIT_MS) {
			close(p->lock_fd);
			p->lock_fd = -1;
			return SERVER_ERR_BUSY;
		}
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	close(p->lock_fd);
	p->lock_fd = -1;
	return SERVER_ERR_IO;
}

static void lock_drop(struct pub *p)
{
	if (p->db_locked)
		(void)p->s->ops->publish_lock(p->s->ctx, p->sector, 0, 0);
	p->db_locked = 0;
	if (p->lock_fd >= 0)
		close(p->lock_fd); /* releases the flock */
	p->lock_fd = -1;
}

/* Consumption of ended periods goes once a day, not at every publish: it is a scan of the
 * sector's counted uses. The deletions log the keys they touch (server/store.h). */
static int expire_daily(struct pub *p)
{
	char key[48], val[32];
	snprintf(key, sizeof(key), "consumption_expired.%u", p->sector);
	long long day = (long long)p->per.n[PROTO_PERIOD_DAY];
	if (p->s->ops->meta_get(p->s->ctx, key, val, sizeof(val)) == 0 && atoll(val) == day)
		return 0;
	int rc = p->s->ops->begin(p->s->ctx);
	if (rc)
		return rc;
	rc = p->s->ops->consumption_expire(p->s->ctx, p->sector, &p->per);
	snprintf(val, sizeof(val), "%lld", day);
	if (rc == 0)
		rc = p->s->ops->meta_set(p->s->ctx, key, val);
	rc = rc ? rc : p->s->ops->commit(p->s->ctx);
	if (rc)
		p->s->ops->rollback(p->s->ctx);
	return rc;
}

/* --- 2. reading ---------------------------------------------------------------------- */

static uint64_t chunk_target(const struct server_publish_opts *o)
{
	return o->chunk_target ? o->chunk_target : PROTO_CLIST_CHUNK_TARGET;
}

static unsigned bits_for(const struct server_publish_opts *o, uint64_t n)
{
	unsigned b = 0;
	while (b < PROTO_CLIST_MAX_BITS && (n >> b) > chunk_target(o))
		b++;
	return b;
}

/* A row becomes its entry as it is read: the rows themselves are never all in memory. */
static int take_row(void *arg, const struct server_list_row *r)
{
	struct pub *p = arg;
	if (p->n_entries == p->cap_entries) {
		size_t cap = p->cap_entries ? p->cap_entries * 2 : 1024;
		struct proto_list_entry *nv = realloc(p->entries, cap * sizeof(*nv));
		if (!nv)
			return SERVER_ERR_NOMEM;
		p->entries = nv;
		p->cap_entries = cap;
	}
	return entry_of(&p->profiles, &p->per, r, &p->entries[p->n_entries++]);
}

static int read_full(struct pub *p)
{
	return p->s->ops->list_rows(p->s->ctx, p->sector, &p->per, take_row, p);
}

static const uint8_t *find_entry(const uint8_t *dat, uint32_t n, const uint8_t *key)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const uint8_t *e = dat + (size_t)mid * PROTO_CLIST_ENTRY_SIZE;
		int c = memcmp(e, key, PROTO_LIST_KEY_LEN);
		if (c == 0)
			return e;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The operations of one chunk, from the logged keys that fall in it (keys[a..b)). */
static int chunk_ops(struct pub *p, uint32_t chunk, size_t a, size_t b)
{
	const struct proto_clist_ref *r = &p->bm.chunks[chunk];
	struct base_chunk bc = {.chunk = chunk};
	size_t len = 0;
	int rc = p->s->ops->list_file_get(p->s->ctx, p->sector, chunk, r->since, 0, &bc.dat, &len);
	if (rc)
		return rc == SERVER_ERR_NOT_FOUND ? SERVER_ERR_IO : rc;
	if (len % PROTO_CLIST_ENTRY_SIZE) {
		free(bc.dat);
		return SERVER_ERR_IO;
	}
	bc.n = (uint32_t)(len / PROTO_CLIST_ENTRY_SIZE);
	uint8_t *ops = malloc((b - a) * PROTO_CLIST_OP_SIZE);
	uint32_t m = 0;
	if (!ops) {
		free(bc.dat);
		return SERVER_ERR_NOMEM;
	}
	for (size_t i = a; i < b && rc == 0; i++) {
		struct server_list_row row;
		struct proto_list_entry e;
		uint8_t enc[PROTO_CLIST_ENTRY_SIZE];
		const uint8_t *old = find_entry(bc.dat, bc.n, p->keys[i]);
		rc = p->s->ops->list_row(p->s->ctx, p->sector, p->keys[i], &p->per, &row);
		uint8_t *op = ops + (size_t)m * PROTO_CLIST_OP_SIZE;
		if (rc == SERVER_ERR_NOT_FOUND) {
			rc = 0;
			if (!old)
				continue; /* logged, but never listed: nothing to do */
			op[0] = PROTO_CLIST_OP_REMOVE;
			memset(op + 1, 0, PROTO_CLIST_ENTRY_SIZE);
			memcpy(op + 1, p->keys[i], PROTO_LIST_KEY_LEN);
			m++;
			p->entry_count--;
			continue;
		}
		if (rc == 0)
			rc = entry_of(&p->profiles, &p->per, &row, &e);
		if (rc)
			break;
		proto_clist_entry_encode(enc, &e);
		if (old && memcmp(old, enc, PROTO_CLIST_ENTRY_SIZE) == 0)
			continue; /* logged, but the entry shows nothing new */
		op[0] = old ? PROTO_CLIST_OP_CHANGE : PROTO_CLIST_OP_ADD;
		memcpy(op + 1, enc, PROTO_CLIST_ENTRY_SIZE);
		m++;
		if (!old)
			p->entry_count++;
	}
	if (rc || m == 0) {
		free(ops);
		free(bc.dat);
		return rc;
	}
	p->bases[p->n_bases++] = bc;
	p->ops[p->n_changes] = ops;
	p->changes[p->n_changes++] =
	        (struct proto_clist_delta_chunk){.chunk = chunk, .op_count = m, .ops = ops};
	return 0;
}

static int read_changes(struct pub *p)
{
	if (p->n_keys > 1)
		qsort(p->keys, p->n_keys, PROTO_LIST_KEY_LEN, key_cmp);
	size_t cap = p->n_keys < p->bm.n_chunks ? p->n_keys : p->bm.n_chunks;
	p->bases = calloc(cap ? cap : 1, sizeof(*p->bases));
	p->changes = calloc(cap ? cap : 1, sizeof(*p->changes));
	p->ops = calloc(cap ? cap : 1, sizeof(*p->ops));
	if (!p->bases || !p->changes || !p->ops)
		return SERVER_ERR_NOMEM;
	p->entry_count = p->bh.entry_count;
	int rc = 0;
	for (size_t a = 0; a < p->n_keys && rc == 0;) {
		uint32_t chunk = proto_clist_chunk_of(p->keys[a], p->bh.bits);
		size_t b = a + 1;
		while (b < p->n_keys && proto_clist_chunk_of(p->keys[b], p->bh.bits) == chunk)
			b++;
		rc = chunk_ops(p, chunk, a, b);
		a = b;
	}
	return rc;
}

static int read_phase(struct pub *p)
{
	struct server_store *s = p->s;
	int rc = s->ops->begin_read(s->ctx);
	if (rc)
		return rc;
	rc = s->ops->list_latest(s->ctx, p->sector, &p->latest);
	if (rc == 0) {
		rc = s->ops->list_version_get(s->ctx, p->sector, 0, &p->base);
		p->have_base = rc == 0;
		if (rc == SERVER_ERR_NOT_FOUND)
			rc = 0;
	}
	if (rc == 0 && p->have_base) {
		rc = from_proto(
		        proto_clist_manifest_parse(p->base.manifest, p->base.manifest_len, &p->bm));
		if (rc == 0)
			rc = from_proto(
			        proto_clist_head_parse(p->base.head, p->base.head_len, &p->bh));
		proto_sha256(p->base.manifest, p->base.manifest_len, p->base_hash);
	}
	if (rc == 0)
		rc = s->ops->list_changes(s->ctx, p->sector, &p->upto, &p->keys, &p->n_keys);
	/* in the same read transaction as the rows: the list counts every use stored up to
	 * this position, and none above (issue 13: what a gate counts itself) */
	if (rc == 0 && s->ops->usage_position)
		rc = s->ops->usage_position(s->ctx, &p->usage_position);
	if (rc == 0)
		rc = map_load(&p->profiles, s, p->sector);
	if (rc == 0) {
		/* a sector that grew to twice its partition's target is cut finer, once */
		uint64_t target = (uint64_t)chunk_target(p->o) << (p->have_base ? p->bh.bits : 0);
		/* a finished bulk import of many passes asks for a rebuild (store.h, import_done)
		 */
		char key[48], val[8] = "";
		snprintf(key, sizeof(key), "list_full.%u", p->sector);
		int asked = s->ops->meta_get(s->ctx, key, val, sizeof(val)) == 0 && val[0] == '1';
		p->full = p->o->full || asked || !p->have_base || p->latest != p->base.version ||
		          (uint64_t)p->bh.entry_count + p->n_keys > 2 * target;
		rc = p->full ? read_full(p) : read_changes(p);
	}
	if (rc == 0)
		rc = s->ops->commit(s->ctx);
	else
		s->ops->rollback(s->ctx);
	return rc;
}

/* --- 3. computing -------------------------------------------------------------------- */

static int read_base(void *ctx, uint32_t chunk, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                     size_t *idx_len)
{
	(void)idx; /* every leaf hashed again */
	(void)idx_len;
	struct pub *p = ctx;
	for (size_t i = 0; i < p->n_bases; i++) {
		if (p->bases[i].chunk != chunk)
			continue;
		size_t len = (size_t)p->bases[i].n * PROTO_CLIST_ENTRY_SIZE;
		*dat = malloc(len ? len : 1);
		if (!*dat)
			return PROTO_ERR_NOMEM;
		memcpy(*dat, p->bases[i].dat, len);
		*n = p->bases[i].n;
		return 0;
	}
	return PROTO_ERR_ARG;
}

static void head_of(const struct pub *p, uint64_t version, unsigned bits, uint32_t entries,
                    struct proto_clist_head *h)
{
	memset(h, 0, sizeof(*h));
	h->format = PROTO_CLIST_FORMAT;
	h->sector = p->sector;
	h->version = version;
	h->issued_at = p->o->now;
	h->expires_at = p->o->now + p->o->validity_s;
	proto_key_id(p->key, h->key_id);
	h->entry_count = entries;
	h->profile_count = (uint16_t)p->profiles.n;
	h->bits = (uint8_t)bits;
	if (p->have_base)
		memcpy(h->prev_manifest, p->base_hash, PROTO_HASH_LEN);
	h->profiles = p->profiles.v;
}

/* --- 4. writing ---------------------------------------------------------------------- */

static int write_profiles(struct pub *p)
{
	for (size_t i = p->profiles.loaded; i < p->profiles.n; i++) {
		int rc = p->s->ops->profile_add(p->s->ctx, p->sector, (uint16_t)i,
		                                &p->profiles.v[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* The end of every publish: in the caller's write transaction. */
static int write_version(struct pub *p, const struct server_list_version *v,
                         const struct server_stored_list *delta)
{
	struct server_store *s = p->s;
	uint64_t latest = 0;
	int rc = s->ops->list_latest(s->ctx, p->sector, &latest);
	if (rc == 0 && latest != p->latest)
		rc = SERVER_ERR_BUSY; /* someone published meanwhile: start again */
	if (rc == 0)
		rc = write_profiles(p);
	if (rc == 0)
		rc = s->ops->list_version_put(s->ctx, p->sector, v);
	if (rc == 0 && delta)
		rc = s->ops->delta_put(s->ctx, p->sector, p->base.version, delta);
	if (rc == 0)
		rc = s->ops->list_prune(s->ctx, p->sector,
		                        p->o->keep ? p->o->keep : SERVER_KEEP_DEFAULT);
	/* the log read for this version goes with it: one commit (one fsync) for both when
	 * it is short, as after an agent's change; a long one is trimmed after (trim_log) */
	unsigned deleted = 0;
	if (rc == 0)
		rc = s->ops->list_changes_trim(s->ctx, p->sector, p->upto, LOG_TRIM_BATCH,
		                               &deleted);
	p->log_left = deleted == LOG_TRIM_BATCH;
	return rc;
}

static int publish_full(struct pub *p, struct server_publish_result *res)
{
	struct server_store *s = p->s;
	struct proto_clist_params params;
	struct proto_clist_built b;
	memset(&params, 0, sizeof(params));
	params.sector = p->sector;
	params.version = p->latest + 1;
	params.issued_at = p->o->now;
	params.expires_at = p->o->now + p->o->validity_s;
	params.bits = bits_for(p->o, p->n_entries);
	if (p->have_base)
		memcpy(params.prev_manifest, p->base_hash, PROTO_HASH_LEN);
	int rc = from_proto(proto_clist_build(&params, p->key, p->profiles.v, p->profiles.n,
	                                      p->entries, p->n_entries, &b));
	if (rc)
		return rc;
	/* the chunk files first, a few MiB per transaction: the write lock is never held long */
	uint32_t j = 0;
	while (rc == 0 && j < b.manifest.n_chunks) {
		size_t bytes = 0;
		rc = s->ops->begin(s->ctx);
		for (; rc == 0 && j < b.manifest.n_chunks && bytes < FILE_BATCH_BYTES; j++) {
			const struct proto_clist_chunk_data *c = &b.chunks[j];
			size_t dl = (size_t)c->n * PROTO_CLIST_ENTRY_SIZE;
			rc = s->ops->list_file_put(s->ctx, p->sector, j, params.version, 0, c->dat,
			                           dl);
			if (rc == 0)
				rc = s->ops->list_file_put(s->ctx, p->sector, j, params.version, 1,
				                           c->idx, c->idx_len);
			bytes += dl + c->idx_len;
		}
		rc = rc ? rc : s->ops->commit(s->ctx);
		if (rc)
			s->ops->rollback(s->ctx);
	}
	struct server_list_version v = {
	        .version = params.version,
	        .issued_at = params.issued_at,
	        .expires_at = params.expires_at,
	        .usage_position = p->usage_position,
	        .head = b.head_bytes,
	        .head_len = b.head_len,
	        .manifest = b.manifest_bytes,
	        .manifest_len = b.manifest_len,
	        .sig_len = b.sig_len,
	};
	memcpy(v.sig, b.sig, b.sig_len);
	if (rc == 0)
		rc = s->ops->begin(s->ctx);
	if (rc == 0) {
		rc = s->ops->list_files_retire(s->ctx, p->sector, -1, params.version);
		/* no delta: a new partition (or a first version) goes to gates as a snapshot */
		if (rc == 0)
			rc = write_version(p, &v, NULL);
		char key[48];
		snprintf(key, sizeof(key), "list_full.%u", p->sector);
		if (rc == 0)
			rc = s->ops->meta_set(s->ctx, key, "0");
		rc = rc ? rc : s->ops->commit(s->ctx);
		if (rc)
			s->ops->rollback(s->ctx);
	}
	if (rc == 0 && res) {
		res->version = params.version;
		res->full = 1;
		res->changed_chunks = b.manifest.n_chunks;
		res->entries = (uint32_t)p->n_entries;
	}
	proto_clist_built_free(&b);
	return rc;
}

static int publish_changes(struct pub *p, struct server_publish_result *res)
{
	struct server_store *s = p->s;
	struct proto_clist_head h;
	struct proto_clist_applied ap;
	uint8_t *head = NULL, *delta = NULL;
	size_t head_len = 0, delta_len = 0;
	const uint64_t version = p->latest + 1;
	head_of(p, version, p->bh.bits, p->entry_count, &h);
	int rc = from_proto(proto_clist_head_encode(&h, &head, &head_len));
	if (rc)
		return rc;
	/* the same code a gate runs on the delta: both sides derive the same bytes */
	rc = from_proto(proto_clist_derive(&p->bm, head, head_len, p->changes,
	                                   (uint32_t)p->n_changes, read_base, p, &ap));
	if (rc) {
		free(head);
		return rc;
	}
	struct server_list_version v = {
	        .version = version,
	        .issued_at = h.issued_at,
	        .expires_at = h.expires_at,
	        .usage_position = p->usage_position,
	        .head = head,
	        .head_len = head_len,
	        .manifest = ap.manifest_bytes,
	        .manifest_len = ap.manifest_len,
	};
	rc = from_proto(proto_sign(p->key, ap.manifest_bytes, ap.manifest_len, v.sig, &v.sig_len));
	struct proto_clist_delta d = {
	        .sector = p->sector,
	        .base_version = p->base.version,
	        .version = version,
	        .head = head,
	        .head_len = head_len,
	};
	memcpy(d.base_manifest, p->base_hash, PROTO_HASH_LEN);
	if (rc == 0)
		rc = from_proto(proto_clist_delta_encode(&d, p->changes, (uint32_t)p->n_changes,
		                                         &delta, &delta_len));
	struct server_stored_list sd = {.version = version,
	                                .issued_at = h.issued_at,
	                                .expires_at = h.expires_at,
	                                .data = delta,
	                                .len = delta_len,
	                                .sig_len = v.sig_len};
	memcpy(sd.sig, v.sig, v.sig_len);
	if (rc == 0)
		rc = s->ops->begin(s->ctx);
	if (rc == 0) {
		for (uint32_t i = 0; i < ap.n_changed && rc == 0; i++) {
			const struct proto_clist_chunk_data *c = &ap.chunks[i];
			rc = s->ops->list_files_retire(s->ctx, p->sector, ap.changed[i], version);
			if (rc == 0)
				rc = s->ops->list_file_put(s->ctx, p->sector, ap.changed[i],
				                           version, 0, c->dat,
				                           (size_t)c->n * PROTO_CLIST_ENTRY_SIZE);
			if (rc == 0)
				rc = s->ops->list_file_put(s->ctx, p->sector, ap.changed[i],
				                           version, 1, c->idx, c->idx_len);
		}
		if (rc == 0)
			rc = write_version(p, &v, &sd);
		rc = rc ? rc : s->ops->commit(s->ctx);
		if (rc)
			s->ops->rollback(s->ctx);
	}
	if (rc == 0 && res) {
		res->version = version;
		res->changed_chunks = ap.n_changed;
		res->entries = p->entry_count;
		res->delta_len = delta_len;
	}
	free(delta);
	free(head);
	proto_clist_applied_free(&ap);
	return rc;
}

/* After the version committed, what it no longer needs goes in short transactions of
 * `batch` rows each, until a step deletes fewer. A failure only leaves rows the next
 * publish deletes. */
static void forget_in_batches(struct pub *p, unsigned batch,
                              int (*step)(struct pub *p, unsigned batch, unsigned *deleted))
{
	struct server_store *s = p->s;
	unsigned deleted = batch;
	while (deleted == batch) {
		if (s->ops->begin(s->ctx) != 0)
			return;
		int rc = step(p, batch, &deleted);
		rc = rc ? rc : s->ops->commit(s->ctx);
		if (rc) {
			s->ops->rollback(s->ctx);
			return;
		}
	}
}

/* What the version's own transaction left of a long log (a bulk change): the next publish
 * would only read it again and find nothing new in it. */
static int trim_log(struct pub *p, unsigned batch, unsigned *deleted)
{
	return p->s->ops->list_changes_trim(p->s->ctx, p->sector, p->upto, batch, deleted);
}

/*
 * The files no kept version names any more. `keep` publishes after a full rebuild they are
 * the whole list before it (at 5 M passes 500 files, 75 MiB, whose every page sqlite reads
 * to free it): in the version's own transaction that held the write lock 0.6-1.4 s,
 * measured, and delayed the revocation it carried as long.
 */
static int prune_files(struct pub *p, unsigned batch, unsigned *deleted)
{
	return p->s->ops->list_files_prune(p->s->ctx, p->sector, batch, deleted);
}

int server_publish_sector(struct server_store *s, const char *data_dir, uint16_t sector,
                          const struct server_publish_opts *o, struct server_publish_result *res)
{
	char path[PATH_MAX];
	struct pub p;
	if (!s || !data_dir || !o || o->validity_s <= 0)
		return SERVER_ERR_ARG;
	if (res)
		memset(res, 0, sizeof(*res));
	memset(&p, 0, sizeof(p));
	p.s = s;
	p.sector = sector;
	p.o = o;
	int rc = server_key_path(path, sizeof(path), data_dir, "list.key");
	if (rc)
		return rc;
	if (proto_key_load_private(&p.key, path) != 0)
		return SERVER_ERR_CRYPTO;
	p.lock_fd = -1;
	server_periods_at(o->now, &p.per);
	rc = lock_take(&p, data_dir);
	if (rc == 0)
		rc = expire_daily(&p);
	for (int attempt = 0; rc == 0 && attempt < WRITE_ATTEMPTS; attempt++) {
		rc = read_phase(&p);
		if (rc == 0) {
			if (res)
				res->changed_keys = (uint32_t)p.n_keys;
			rc = p.full ? publish_full(&p, res) : publish_changes(&p, res);
		}
		if (rc == 0 && p.log_left)
			forget_in_batches(&p, LOG_TRIM_BATCH, trim_log);
		if (rc == 0)
			forget_in_batches(&p, FILE_PRUNE_BATCH, prune_files);
		pub_reset(&p);
		if (rc != SERVER_ERR_BUSY)
			break;
		if (attempt + 1 < WRITE_ATTEMPTS)
			rc = 0;
	}
	lock_drop(&p);
	proto_key_free(p.key);
	return rc;
}
