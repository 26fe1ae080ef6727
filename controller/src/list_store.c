/*
 * controller/src/list_store.c — the gate's list: format 2 versions whose chunk files are
 * shared between versions, checked leaf by leaf at every lookup (controller/list_store.h
 * for the scheme and why it is crash-safe, docs/list-format.md for the files).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller/error.h"
#include "list_store_internal.h"
#include "proto/error.h"

/* --- chunks and versions ------------------------------------------------------------- */

static struct ls_chunk *chunk_ref(struct ls_chunk *c)
{
	c->refs++;
	return c;
}

static void chunk_unref(struct ls_chunk *c)
{
	if (!c || --c->refs > 0)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->idx_buf);
	free(c);
}

void ls_version_free(struct ls_version *v)
{
	if (!v)
		return;
	if (v->chunks)
		for (uint32_t j = 0; j < v->manifest.n_chunks; j++)
			chunk_unref(v->chunks[j]);
	free(v->chunks);
	proto_clist_head_free(&v->head);
	proto_clist_manifest_free(&v->manifest);
	proto_list_close(v->legacy);
	free(v->legacy_buf);
	free(v);
}

static void mark_damaged(struct controller_list_store *s, struct ls_chunk *c)
{
	atomic_store(&c->damaged, 1);
	atomic_store(&s->damaged, 1);
}

/* A chunk from its index bytes (taken) and its .dat (dat_fd, taken, or opened by name when
 * -1), sized. An index or file that does not fit gives a chunk marked damaged, so that one
 * bad file costs the passes it holds, not the whole list. */
static struct ls_chunk *chunk_new(struct controller_list_store *s, uint32_t number, uint64_t since,
                                  uint8_t *idx_buf, size_t idx_len,
                                  const uint8_t want[PROTO_HASH_LEN], int dat_fd)
{
	struct ls_chunk *c = calloc(1, sizeof(*c));
	if (!c) {
		free(idx_buf);
		if (dat_fd >= 0)
			close(dat_fd);
		return NULL;
	}
	c->refs = 1;
	c->number = number;
	c->since = since;
	c->fd = dat_fd;
	c->idx_buf = idx_buf;
	c->idx_len = idx_len;
	atomic_init(&c->damaged, 0);
	uint8_t hash[PROTO_HASH_LEN];
	char name[PROTO_CLIST_NAME_MAX], p[4096];
	bool ok = idx_buf != NULL;
	if (ok) {
		proto_sha256(idx_buf, idx_len, hash);
		ok = memcmp(hash, want, PROTO_HASH_LEN) == 0 &&
		     proto_clist_idx_parse(idx_buf, idx_len, &c->idx) == 0 &&
		     c->idx.chunk == number;
	}
	proto_clist_name_chunk(name, number, since, 0);
	if (ok && c->fd < 0 && ls_path(s, p, sizeof(p), name) == 0)
		c->fd = open(p, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (ok && (c->fd < 0 || fstat(c->fd, &st) != 0 ||
	           (uint64_t)st.st_size != (uint64_t)c->idx.entry_count * PROTO_CLIST_ENTRY_SIZE))
		ok = false;
	if (!ok)
		mark_damaged(s, c);
	return c;
}

static uint32_t entries_of(const struct ls_version *v)
{
	uint64_t n = 0;
	for (uint32_t j = 0; j < v->manifest.n_chunks; j++)
		n += v->chunks[j]->idx.entry_count;
	return (uint32_t)n;
}

static bool any_damaged(const struct ls_version *v)
{
	for (uint32_t j = 0; j < v->manifest.n_chunks; j++)
		if (atomic_load(&v->chunks[j]->damaged))
			return true;
	return false;
}

/* --- open ---------------------------------------------------------------------------- */

static int open_v2(struct controller_list_store *s, uint64_t version,
                   const uint8_t want[PROTO_HASH_LEN], int64_t now, struct ls_version **out)
{
	char name[PROTO_CLIST_NAME_MAX];
	uint8_t *manifest = NULL, *sig = NULL, *head = NULL, hash[PROTO_HASH_LEN];
	size_t manifest_len = 0, sig_len = 0, head_len = 0;
	struct ls_version *v = calloc(1, sizeof(*v));
	if (!v)
		return CONTROLLER_ERR_NOMEM;
	v->format = 2;
	proto_clist_name_manifest(name, version);
	int rc = ls_read_file(s, name, LS_MAX_MANIFEST, &manifest, &manifest_len);
	if (rc == 0) {
		proto_clist_name_sig(name, version);
		rc = ls_read_file(s, name, LS_MAX_SIG, &sig, &sig_len);
	}
	if (rc == 0) {
		proto_clist_name_head(name, version);
		rc = ls_read_file(s, name, LS_MAX_HEAD, &head, &head_len);
	}
	if (rc == 0) {
		/* the check the test "open refuses a manifest CURRENT does not name" guards */
		proto_sha256(manifest, manifest_len, hash);
		if (memcmp(hash, want, PROTO_HASH_LEN) != 0)
			rc = PROTO_ERR_LIST_HASH;
	}
	if (rc == 0) {
		struct proto_list_policy pol = {
		        .sector = s->sector, .held_version = 0, .now = now, .keys = s->keys};
		rc = proto_clist_verify(manifest, manifest_len, sig, sig_len, head, head_len, &pol,
		                        &v->manifest, &v->head);
		/* An expired list whose signature verified is still the newest truth this gate
		 * has: keep it, and let the site's stale policy decide how to use it. */
		if (rc == PROTO_ERR_LIST_EXPIRED)
			rc = 0;
	}
	if (rc == 0 && v->head.version != version)
		rc = PROTO_ERR_LIST_FIELD;
	if (rc == 0 && !(v->chunks = calloc(v->manifest.n_chunks, sizeof(*v->chunks))))
		rc = CONTROLLER_ERR_NOMEM;
	for (uint32_t j = 0; rc == 0 && j < v->manifest.n_chunks; j++) {
		const struct proto_clist_ref *r = &v->manifest.chunks[j];
		uint8_t *idx = NULL;
		size_t idx_len = 0;
		proto_clist_name_chunk(name, j, r->since, 1);
		if (ls_read_file(s, name, proto_clist_idx_size(PROTO_LIST_MAX_ENTRIES), &idx,
		                 &idx_len) != 0)
			idx = NULL; /* missing: that chunk is damaged, the others serve */
		v->chunks[j] = chunk_new(s, j, r->since, idx, idx_len, r->idx_hash, -1);
		if (!v->chunks[j])
			rc = CONTROLLER_ERR_NOMEM;
	}
	if (rc == 0 && !any_damaged(v) && entries_of(v) != v->head.entry_count)
		rc = PROTO_ERR_LIST_COUNT;
	free(manifest);
	free(sig);
	free(head);
	if (rc) {
		ls_version_free(v);
		return rc;
	}
	v->version = version;
	v->issued_at = v->head.issued_at;
	memcpy(v->key_id, v->head.key_id, PROTO_KEY_ID_LEN);
	v->expires_at = v->head.expires_at;
	v->entries = v->head.entry_count;
	memcpy(v->file_hash, want, PROTO_HASH_LEN);
	*out = v;
	return 0;
}

int controller_list_store_open(struct controller_list_store **out, const char *dir, uint16_t sector,
                               const struct proto_keyring *keys, int64_t now)
{
	if (!out || !dir || !keys)
		return CONTROLLER_ERR_ARG;
	*out = NULL;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return CONTROLLER_ERR_IO;
	struct controller_list_store *s = calloc(1, sizeof(*s));
	if (!s)
		return CONTROLLER_ERR_NOMEM;
	size_t dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	s->dir = strndup(dir, dl);
	s->floor_path = malloc(dl + sizeof(".floor"));
	if (!s->dir || !s->floor_path) {
		controller_list_store_close(s);
		return CONTROLLER_ERR_NOMEM;
	}
	snprintf(s->floor_path, dl + sizeof(".floor"), "%s.floor", s->dir);
	s->sector = sector;
	s->keys = keys;
	atomic_init(&s->damaged, 0);
	if (ls_floor_read(s) != 0) {
		/* a floor we cannot read protects nothing: say so rather than guess low */
		controller_list_store_close(s);
		return CONTROLLER_ERR_IO;
	}

	unsigned format = 0;
	uint64_t version = 0;
	uint8_t hash[PROTO_HASH_LEN];
	struct ls_version *v = NULL;
	int rc = 0;
	if (ls_pointer_read(s, &format, &version, hash) == 0) {
		if (version < s->floor)
			rc = PROTO_ERR_LIST_ROLLBACK; /* an older version's files put back */
		else if (format == 2)
			rc = open_v2(s, version, hash, now, &v);
		else
			rc = ls_legacy_open(s, version, hash, now, &v);
	} else {
		char p[4096];
		struct stat st;
		/* no pointer: nothing was ever committed here, unless it was removed */
		if (ls_path(s, p, sizeof(p), LS_POINTER) == 0 && stat(p, &st) == 0)
			rc = PROTO_ERR_LIST_FIELD;
	}
	if (rc) {
		s->open_error = rc;
		s->fell_back = true;
		ls_version_free(v);
		v = NULL;
	}
	s->cur = v;
	if (v) {
		if (v->version > s->floor && ls_floor_write(s, v->version) != 0) {
			controller_list_store_close(s);
			return CONTROLLER_ERR_IO;
		}
		ls_sweep(s, v);
	}
	memset(&s->stats, 0, sizeof(s->stats));
	*out = s;
	return 0;
}

void controller_list_store_close(struct controller_list_store *s)
{
	if (!s)
		return;
	ls_version_free(s->cur);
	ls_stage_abort(s);
	free(s->stage);
	free(s->dir);
	free(s->floor_path);
	free(s);
}

void controller_list_store_set_lock(struct controller_list_store *s, pthread_rwlock_t *lock)
{
	if (s)
		s->lock = lock;
}

void controller_list_store_set_keys(struct controller_list_store *s,
                                    const struct proto_keyring *keys)
{
	if (s && keys)
		s->keys = keys;
}

/* --- what the reader and the sync client see ----------------------------------------- */

void controller_list_store_info(const struct controller_list_store *s,
                                struct controller_list_info *info)
{
	memset(info, 0, sizeof(*info));
	if (!s)
		return;
	info->damaged = atomic_load(&((struct controller_list_store *)s)->damaged) != 0;
	if (!s->cur)
		return;
	info->held = true;
	info->format = s->cur->format;
	info->version = s->cur->version;
	info->issued_at = s->cur->issued_at;
	info->expires_at = s->cur->expires_at;
	info->entries = s->cur->entries;
	memcpy(info->key_id, s->cur->key_id, PROTO_KEY_ID_LEN);
}

uint64_t controller_list_store_version(const struct controller_list_store *s)
{
	return s && s->cur ? s->cur->version : 0;
}

void controller_list_store_hello(const struct controller_list_store *s, uint64_t *version,
                                 unsigned *format)
{
	struct controller_list_info i;
	controller_list_store_info(s, &i);
	*version = i.held && !i.damaged ? i.version : 0;
	*format = i.held ? i.format : PROTO_CLIST_FORMAT;
}

int controller_list_store_open_error(const struct controller_list_store *s)
{
	return s ? s->open_error : 0;
}

bool controller_list_store_fell_back(const struct controller_list_store *s)
{
	return s && s->fell_back;
}

void controller_list_store_stats(const struct controller_list_store *s,
                                 struct controller_list_store_stats *stats)
{
	if (s && stats)
		*stats = s->stats;
}

/* --- lookups ------------------------------------------------------------------------- */

static int lookup_v2(struct controller_list_store *s, const struct ls_version *v,
                     const uint8_t key[PROTO_LIST_KEY_LEN], struct controller_pass *pass)
{
	struct ls_chunk *c = v->chunks[proto_clist_chunk_of(key, v->head.bits)];
	if (atomic_load(&c->damaged))
		return CONTROLLER_ERR_LIST_DAMAGED;
	int64_t leaf = proto_clist_idx_find(&c->idx, key);
	if (leaf < 0)
		return 0;
	uint64_t off;
	size_t len;
	uint8_t buf[PROTO_CLIST_LEAF_SIZE];
	proto_clist_leaf_span(&c->idx, (uint32_t)leaf, &off, &len);
	/* pread, not a mapping: a file cut short after install is a short read here, never
	 * a SIGBUS; and what is read is checked before anything is decided from it */
	ssize_t r;
	do
		r = pread(c->fd, buf, len, (off_t)off);
	while (r < 0 && errno == EINTR);
	int rc = r == (ssize_t)len ? proto_clist_leaf_lookup(&c->idx, (uint32_t)leaf, buf, len, key,
	                                                     &pass->entry)
	                           : PROTO_ERR_LIST_HASH;
	if (rc == PROTO_ERR_LIST_NOT_FOUND)
		return 0;
	if (rc == 0 && pass->entry.profile >= v->head.profile_count)
		rc = PROTO_ERR_LIST_HASH; /* impossible for a checked chunk: treat as damage */
	if (rc) {
		mark_damaged(s, c);
		memset(&pass->entry, 0, sizeof(pass->entry));
		return CONTROLLER_ERR_LIST_DAMAGED;
	}
	pass->profile = v->head.profiles[pass->entry.profile];
	pass->found = true;
	return 0;
}

int controller_list_store_lookup(struct controller_list_store *s,
                                 const uint8_t key[PROTO_LIST_KEY_LEN],
                                 struct controller_pass *pass)
{
	if (!s || !key || !pass)
		return CONTROLLER_ERR_ARG;
	memset(pass, 0, sizeof(*pass));
	if (!s->cur)
		return CONTROLLER_ERR_NO_LIST;
	if (s->cur->format == 1)
		return ls_legacy_lookup(s->cur, key, pass);
	return lookup_v2(s, s->cur, key, pass);
}

/* --- committing ---------------------------------------------------------------------- */

uint64_t ls_held_for_install(const struct controller_list_store *s, unsigned format)
{
	uint64_t held = s->cur ? s->cur->version : 0;
	/* the same version again is welcome when it changes the format or repairs damage */
	if (held && ((s->cur->format != format) ||
	             atomic_load(&((struct controller_list_store *)s)->damaged)))
		held--;
	/* never below the highest version ever installed */
	if (s->floor && held < s->floor - 1)
		held = s->floor - 1;
	return held;
}

int ls_commit(struct controller_list_store *s, struct ls_version *v)
{
	int rc = ls_publish(s, v->format, v->version, v->file_hash);
	if (rc) {
		ls_version_free(v);
		ls_sweep(s, s->cur);
		return rc;
	}
	if (s->lock)
		pthread_rwlock_wrlock(s->lock);
	struct ls_version *old = s->cur;
	s->cur = v;
	atomic_store(&s->damaged, any_damaged(v) ? 1 : 0);
	s->open_error = 0;
	s->fell_back = false;
	if (s->lock)
		pthread_rwlock_unlock(s->lock);
	/* no lookup runs on `old` any more: the swap waited for the readers */
	ls_sweep_replaced(s, old, v);
	ls_version_free(old);
	return 0;
}

/* --- format 2 installs --------------------------------------------------------------- */

static int write_chunk_files(struct controller_list_store *s, uint32_t j, uint64_t since,
                             const uint8_t *idx, size_t idx_len, const uint8_t *dat, uint32_t n,
                             int *dat_fd)
{
	char name[PROTO_CLIST_NAME_MAX];
	proto_clist_name_chunk(name, j, since, 0);
	int rc = ls_stage_write(s, name, dat, (size_t)n * PROTO_CLIST_ENTRY_SIZE, dat_fd);
	if (rc == 0) {
		proto_clist_name_chunk(name, j, since, 1);
		rc = ls_stage_write(s, name, idx, idx_len, NULL);
	}
	return rc;
}

static int write_top_files(struct controller_list_store *s, uint64_t version, const uint8_t *head,
                           size_t head_len, const uint8_t *manifest, size_t manifest_len,
                           const uint8_t *sig, size_t sig_len)
{
	char name[PROTO_CLIST_NAME_MAX];
	proto_clist_name_head(name, version);
	int rc = ls_stage_write(s, name, head, head_len, NULL);
	if (rc == 0) {
		proto_clist_name_manifest(name, version);
		rc = ls_stage_write(s, name, manifest, manifest_len, NULL);
	}
	if (rc == 0) {
		proto_clist_name_sig(name, version);
		rc = ls_stage_write(s, name, sig, sig_len, NULL);
	}
	return rc;
}

/* A chunk just staged: its index in memory (a copy), its .dat through dat_fd (taken). */
static struct ls_chunk *chunk_written(struct controller_list_store *s, uint32_t j, uint64_t since,
                                      const uint8_t *idx, size_t idx_len,
                                      const uint8_t want[PROTO_HASH_LEN], int dat_fd)
{
	uint8_t *copy = malloc(idx_len);
	if (!copy) {
		close(dat_fd);
		return NULL;
	}
	memcpy(copy, idx, idx_len);
	return chunk_new(s, j, since, copy, idx_len, want, dat_fd);
}

/* Can the current version's chunk j serve the new version as it is? */
static struct ls_chunk *reusable(const struct controller_list_store *s, uint32_t j,
                                 const struct proto_clist_ref *r, unsigned bits)
{
	const struct ls_version *cur = s->cur;
	if (!cur || cur->format != 2 || cur->head.bits != bits)
		return NULL;
	const struct proto_clist_ref *old = &cur->manifest.chunks[j];
	struct ls_chunk *c = cur->chunks[j];
	if (old->since != r->since || memcmp(old->idx_hash, r->idx_hash, PROTO_HASH_LEN) != 0 ||
	    memcmp(old->dat_hash, r->dat_hash, PROTO_HASH_LEN) != 0 || atomic_load(&c->damaged))
		return NULL;
	return c;
}

static int install_stream(struct controller_list_store *s, const uint8_t *buf, size_t len,
                          const uint8_t *sig, size_t sig_len, int64_t now)
{
	struct proto_list_policy pol = {.sector = s->sector,
	                                .held_version = ls_held_for_install(s, 2),
	                                .now = now,
	                                .keys = s->keys};
	struct proto_clist_stream st;
	struct ls_version *v = calloc(1, sizeof(*v));
	if (!v)
		return CONTROLLER_ERR_NOMEM;
	v->format = 2;
	/* the signature is checked here, before a single file is written */
	int rc = proto_clist_stream_open(buf, len, sig, sig_len, &pol, &st, &v->manifest, &v->head);
	if (rc) {
		/* an expired or older version comes back parsed: nothing of it is kept */
		proto_clist_manifest_free(&v->manifest);
		proto_clist_head_free(&v->head);
		free(v);
		return rc;
	}
	v->chunks = calloc(v->manifest.n_chunks, sizeof(*v->chunks));
	if (!v->chunks)
		rc = CONTROLLER_ERR_NOMEM;
	size_t cursor = 0;
	for (uint32_t j = 0; rc == 0 && j < v->manifest.n_chunks; j++) {
		const uint8_t *idx, *dat;
		size_t idx_len;
		uint32_t n;
		const struct proto_clist_ref *r = &v->manifest.chunks[j];
		rc = proto_clist_stream_chunk(&st, &v->manifest, &v->head, &cursor, j, &idx,
		                              &idx_len, &dat, &n);
		if (rc)
			break;
		struct ls_chunk *c = reusable(s, j, r, v->head.bits);
		if (c) {
			v->chunks[j] = chunk_ref(c);
			s->stats.chunks_reused++;
			continue;
		}
		int fd = -1;
		rc = write_chunk_files(s, j, r->since, idx, idx_len, dat, n, &fd);
		if (rc == 0 &&
		    !(v->chunks[j] = chunk_written(s, j, r->since, idx, idx_len, r->idx_hash, fd)))
			rc = CONTROLLER_ERR_NOMEM;
		else if (rc && fd >= 0)
			close(fd);
	}
	if (rc == 0 && entries_of(v) != v->head.entry_count)
		rc = PROTO_ERR_LIST_COUNT;
	if (rc == 0) {
		/* the head is the stream's first file (stream_open checked it) */
		size_t c0 = 0, head_len = 0;
		const uint8_t *head = NULL;
		proto_clist_stream_next(&st, &c0, &head, &head_len);
		rc = write_top_files(s, v->head.version, head, head_len, st.manifest,
		                     st.manifest_len, sig, sig_len);
	}
	if (rc) {
		ls_version_free(v);
		ls_sweep(s, s->cur);
		return rc;
	}
	v->version = v->head.version;
	v->issued_at = v->head.issued_at;
	memcpy(v->key_id, v->head.key_id, PROTO_KEY_ID_LEN);
	v->expires_at = v->head.expires_at;
	v->entries = v->head.entry_count;
	proto_sha256(st.manifest, st.manifest_len, v->file_hash);
	return ls_commit(s, v);
}

/* proto_clist_delta_apply() reads the base chunks it changes through this. */
static int read_base_chunk(void *ctx, uint32_t j, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                           size_t *idx_len)
{
	const struct ls_version *cur = ctx;
	const struct ls_chunk *c = cur->chunks[j];
	size_t len = (size_t)c->idx.entry_count * PROTO_CLIST_ENTRY_SIZE;
	uint8_t *b = malloc(len ? len : 1);
	if (!b)
		return PROTO_ERR_NOMEM;
	size_t got = 0;
	while (got < len && c->fd >= 0) {
		ssize_t r = pread(c->fd, b + got, len - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got != len) {
		/* damaged base: the result will not match the signature, say so plainly */
		free(b);
		return PROTO_ERR_LIST_HASH;
	}
	*dat = b;
	*n = c->idx.entry_count;
	/* checked against the signed manifest when it was opened or written: the leaves a
	 * delta leaves alone keep their hashes (a revocation re-hashes one leaf, not 290 KB) */
	*idx = c->idx_buf;
	*idx_len = c->idx_len;
	return 0;
}

static int apply_delta_v2(struct controller_list_store *s, const uint8_t *delta, size_t len,
                          const uint8_t *sig, size_t sig_len, int64_t now)
{
	struct ls_version *cur = s->cur;
	if (!cur)
		return CONTROLLER_ERR_NO_LIST;
	if (cur->format != 2)
		return PROTO_ERR_DELTA_BASE; /* a format 1 list takes a format 2 snapshot first */
	struct proto_list_policy pol = {.sector = s->sector,
	                                .held_version = ls_held_for_install(s, 2),
	                                .now = now,
	                                .keys = s->keys};
	if (pol.held_version < cur->version)
		pol.held_version = cur->version; /* a delta always moves forward */
	struct proto_clist_applied ap;
	int rc = proto_clist_delta_apply(&cur->manifest, cur->file_hash, read_base_chunk, cur,
	                                 delta, len, sig, sig_len, &pol, &ap);
	if (rc)
		return rc;
	struct ls_version *v = calloc(1, sizeof(*v));
	if (!v) {
		proto_clist_applied_free(&ap);
		return CONTROLLER_ERR_NOMEM;
	}
	v->format = 2;
	v->head = ap.head;
	v->manifest = ap.manifest;
	ap.head.profiles = NULL;
	ap.manifest.chunks = NULL;
	v->chunks = calloc(v->manifest.n_chunks, sizeof(*v->chunks));
	rc = v->chunks ? 0 : CONTROLLER_ERR_NOMEM;
	uint32_t k = 0;
	for (uint32_t j = 0; rc == 0 && j < v->manifest.n_chunks; j++) {
		if (k < ap.n_changed && ap.changed[k] == j) {
			const struct proto_clist_chunk_data *d = &ap.chunks[k++];
			const struct proto_clist_ref *r = &v->manifest.chunks[j];
			int fd = -1;
			rc = write_chunk_files(s, j, r->since, d->idx, d->idx_len, d->dat, d->n,
			                       &fd);
			if (rc == 0 && !(v->chunks[j] = chunk_written(s, j, r->since, d->idx,
			                                              d->idx_len, r->idx_hash, fd)))
				rc = CONTROLLER_ERR_NOMEM;
			else if (rc && fd >= 0)
				close(fd);
		} else {
			v->chunks[j] = chunk_ref(cur->chunks[j]);
			s->stats.chunks_reused++;
		}
	}
	if (rc == 0 && !any_damaged(v) && entries_of(v) != v->head.entry_count)
		rc = PROTO_ERR_LIST_COUNT;
	if (rc == 0)
		rc = write_top_files(s, v->head.version, ap.head_bytes, ap.head_len,
		                     ap.manifest_bytes, ap.manifest_len, sig, sig_len);
	if (rc == 0) {
		v->version = v->head.version;
		v->issued_at = v->head.issued_at;
		memcpy(v->key_id, v->head.key_id, PROTO_KEY_ID_LEN);
		v->expires_at = v->head.expires_at;
		v->entries = v->head.entry_count;
		proto_sha256(ap.manifest_bytes, ap.manifest_len, v->file_hash);
	}
	proto_clist_applied_free(&ap);
	if (rc) {
		ls_version_free(v);
		ls_sweep(s, s->cur);
		return rc;
	}
	return ls_commit(s, v);
}

int controller_list_store_install_snapshot(struct controller_list_store *s, const uint8_t *list,
                                           size_t list_len, const uint8_t *sig, size_t sig_len,
                                           int64_t now)
{
	if (!s || !list || !sig)
		return CONTROLLER_ERR_ARG;
	memset(&s->stats, 0, sizeof(s->stats));
	if (proto_clist_kind(list, list_len) == 1)
		return install_stream(s, list, list_len, sig, sig_len, now);
	return ls_legacy_install(s, list, list_len, sig, sig_len, now);
}

int controller_list_store_apply_delta(struct controller_list_store *s, const uint8_t *delta,
                                      size_t delta_len, const uint8_t *sig, size_t sig_len,
                                      int64_t now)
{
	if (!s || !delta || !sig)
		return CONTROLLER_ERR_ARG;
	memset(&s->stats, 0, sizeof(s->stats));
	if (!s->cur)
		return CONTROLLER_ERR_NO_LIST;
	if (proto_clist_kind(delta, delta_len) == 2)
		return apply_delta_v2(s, delta, delta_len, sig, sig_len, now);
	return ls_legacy_delta(s, delta, delta_len, sig, sig_len, now);
}

/* --- expiry -------------------------------------------------------------------------- */

enum controller_list_state controller_list_state_at(const struct controller_list_info *info,
                                                    const struct controller_stale_policy *policy,
                                                    int64_t now)
{
	if (!info || !info->held)
		return CONTROLLER_LIST_EXPIRED;
	if (now < info->expires_at)
		return CONTROLLER_LIST_FRESH;
	if (policy && policy->mode == CONTROLLER_STALE_ACCEPT_KNOWN &&
	    now - info->expires_at < (int64_t)policy->grace_hours * 3600)
		return CONTROLLER_LIST_STALE;
	return CONTROLLER_LIST_EXPIRED;
}
