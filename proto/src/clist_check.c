/*
 * clist_check.c — what a gate checks before it keeps a format 2 version: a chunk against
 * its signed hashes, a snapshot stream file by file, a delta's result against the server's
 * signature. The server derives its new versions with the same code it expects gates to
 * run (proto_clist_derive), so both sides agree byte for byte by construction, and the
 * signature is what makes a gate trust the result.
 */
#include <stdlib.h>

#include "list_internal.h"
#include "proto/clist.h"
#include "proto/error.h"

int proto_clist_chunk_verify(const struct proto_clist_manifest *m, const struct proto_clist_head *h,
                             uint32_t chunk, const uint8_t *idx, size_t idx_len, const uint8_t *dat,
                             size_t dat_len)
{
	if (!m || !h || !idx || (dat_len && !dat) || chunk >= m->n_chunks)
		return PROTO_ERR_ARG;
	const struct proto_clist_ref *r = &m->chunks[chunk];
	uint8_t hash[PROTO_HASH_LEN];
	proto_sha256(idx, idx_len, hash);
	if (memcmp(hash, r->idx_hash, PROTO_HASH_LEN) != 0)
		return PROTO_ERR_LIST_HASH;
	proto_sha256(dat, dat_len, hash);
	if (memcmp(hash, r->dat_hash, PROTO_HASH_LEN) != 0)
		return PROTO_ERR_LIST_HASH;
	struct proto_clist_idx ix;
	int rc = proto_clist_idx_parse(idx, idx_len, &ix);
	if (rc)
		return rc;
	if (ix.chunk != chunk)
		return PROTO_ERR_LIST_MANIFEST;
	if (dat_len % PROTO_CLIST_ENTRY_SIZE != 0 ||
	    dat_len / PROTO_CLIST_ENTRY_SIZE != ix.entry_count)
		return PROTO_ERR_LIST_COUNT;
	rc = proto_clist_chunk_check(dat, ix.entry_count, h->bits, chunk, h->profile_count);
	if (rc)
		return rc;
	/* the index a gate will trust at every lookup must describe exactly these entries */
	uint8_t *want = NULL;
	size_t want_len = 0;
	rc = proto_clist_idx_build(chunk, dat, ix.entry_count, &want, &want_len);
	if (rc == 0 && (want_len != idx_len || memcmp(want, idx, idx_len) != 0))
		rc = PROTO_ERR_LIST_HASH;
	free(want);
	return rc;
}

int proto_clist_stream_open(const uint8_t *buf, size_t len, const uint8_t *sig, size_t sig_len,
                            const struct proto_list_policy *policy, struct proto_clist_stream *s,
                            struct proto_clist_manifest *m, struct proto_clist_head *h)
{
	if (!policy || !s || !m || !h)
		return PROTO_ERR_ARG;
	int rc = proto_clist_stream_parse(buf, len, s);
	if (rc)
		return rc;
	if (s->sector != policy->sector)
		return PROTO_ERR_LIST_SECTOR;
	size_t cursor = 0;
	const uint8_t *head;
	size_t head_len;
	if (!proto_clist_stream_next(s, &cursor, &head, &head_len))
		return PROTO_ERR_LIST_COUNT;
	rc = proto_clist_verify(s->manifest, s->manifest_len, sig, sig_len, head, head_len, policy,
	                        m, h);
	if (rc && rc != PROTO_ERR_LIST_EXPIRED && rc != PROTO_ERR_LIST_ROLLBACK)
		return rc;
	int structural = 0;
	if (h->version != s->version)
		structural = PROTO_ERR_LIST_MANIFEST;
	else if (s->file_count != 1 + 2 * m->n_chunks)
		structural = PROTO_ERR_LIST_COUNT;
	if (structural) {
		proto_clist_head_free(h);
		proto_clist_manifest_free(m);
		return structural;
	}
	return rc;
}

int proto_clist_stream_chunk(const struct proto_clist_stream *s,
                             const struct proto_clist_manifest *m, const struct proto_clist_head *h,
                             size_t *cursor, uint32_t chunk, const uint8_t **idx, size_t *idx_len,
                             const uint8_t **dat, uint32_t *n)
{
	size_t dat_len;
	if (*cursor == 0) {
		const uint8_t *head;
		size_t head_len;
		if (!proto_clist_stream_next(s, cursor, &head, &head_len))
			return PROTO_ERR_LIST_COUNT;
	}
	if (!proto_clist_stream_next(s, cursor, idx, idx_len) ||
	    !proto_clist_stream_next(s, cursor, dat, &dat_len))
		return PROTO_ERR_LIST_COUNT;
	int rc = proto_clist_chunk_verify(m, h, chunk, *idx, *idx_len, *dat, dat_len);
	if (rc == 0)
		*n = (uint32_t)(dat_len / PROTO_CLIST_ENTRY_SIZE);
	return rc;
}

void proto_clist_applied_free(struct proto_clist_applied *a)
{
	if (!a)
		return;
	if (a->chunks) {
		for (uint32_t i = 0; i < a->n_changed; i++) {
			free(a->chunks[i].dat);
			free(a->chunks[i].idx);
		}
	}
	free(a->chunks);
	free(a->changed);
	free(a->head_bytes);
	free(a->manifest_bytes);
	proto_clist_head_free(&a->head);
	proto_clist_manifest_free(&a->manifest);
	memset(a, 0, sizeof(*a));
}

int proto_clist_derive(const struct proto_clist_manifest *base, const uint8_t *head,
                       size_t head_len, const struct proto_clist_delta_chunk *changes, uint32_t n,
                       proto_clist_read_chunk_fn read, void *ctx, struct proto_clist_applied *out)
{
	if (!base || !head || (n && (!changes || !read)) || !out)
		return PROTO_ERR_ARG;
	memset(out, 0, sizeof(*out));
	int rc = proto_clist_head_parse(head, head_len, &out->head);
	if (rc)
		return rc;
	if (out->head.bits != base->bits || out->head.version <= base->version) {
		proto_clist_applied_free(out);
		return PROTO_ERR_LIST_MANIFEST;
	}
	rc = proto_clist_manifest_copy(&out->manifest, base);
	out->head_bytes = malloc(head_len);
	out->changed = calloc(n ? n : 1, sizeof(*out->changed));
	out->chunks = calloc(n ? n : 1, sizeof(*out->chunks));
	if (rc || !out->head_bytes || !out->changed || !out->chunks) {
		proto_clist_applied_free(out);
		return PROTO_ERR_NOMEM;
	}
	memcpy(out->head_bytes, head, head_len);
	out->head_len = head_len;
	out->manifest.version = out->head.version;
	proto_sha256(head, head_len, out->manifest.head_hash);

	for (uint32_t i = 0; i < n && rc == 0; i++) {
		const struct proto_clist_delta_chunk *c = &changes[i];
		struct proto_clist_chunk_data *d = &out->chunks[i];
		uint8_t *old = NULL;
		uint32_t old_n = 0;
		const uint8_t *old_idx = NULL;
		size_t old_idx_len = 0;
		if (c->chunk >= base->n_chunks || (i > 0 && c->chunk <= changes[i - 1].chunk)) {
			rc = PROTO_ERR_LIST_MANIFEST;
			break;
		}
		rc = read(ctx, c->chunk, &old, &old_n, &old_idx, &old_idx_len);
		if (rc == 0)
			rc = proto_clist_chunk_apply(old, old_n, c->ops, c->op_count, &d->dat,
			                             &d->n);
		if (rc == 0)
			rc = proto_clist_chunk_check(d->dat, d->n, out->head.bits, c->chunk,
			                             out->head.profile_count);
		/* a base chunk damaged on disk: the leaves copied from its index do not make
		 * the result pass, its whole hash below is of every byte it holds */
		if (rc == 0)
			rc = proto_clist_idx_rebuild(c->chunk, d->dat, d->n, old, old_n, old_idx,
			                             old_idx_len, &d->idx, &d->idx_len);
		free(old);
		if (rc)
			break;
		out->changed[i] = c->chunk;
		out->n_changed = i + 1;
		struct proto_clist_ref *r = &out->manifest.chunks[c->chunk];
		r->since = out->head.version;
		proto_sha256(d->dat, (size_t)d->n * PROTO_CLIST_ENTRY_SIZE, r->dat_hash);
		proto_sha256(d->idx, d->idx_len, r->idx_hash);
	}
	if (rc == 0)
		rc = proto_clist_manifest_encode(&out->manifest, &out->manifest_bytes,
		                                 &out->manifest_len);
	if (rc) {
		/* chunks filled so far are freed with the rest: count them all */
		out->n_changed = n;
		proto_clist_applied_free(out);
	}
	return rc;
}

int proto_clist_delta_apply(const struct proto_clist_manifest *base,
                            const uint8_t base_hash[PROTO_HASH_LEN], proto_clist_read_chunk_fn read,
                            void *ctx, const uint8_t *delta, size_t delta_len, const uint8_t *sig,
                            size_t sig_len, const struct proto_list_policy *policy,
                            struct proto_clist_applied *out)
{
	if (!base || !base_hash || !policy || !out)
		return PROTO_ERR_ARG;
	memset(out, 0, sizeof(*out));
	struct proto_clist_delta d;
	struct proto_clist_head h;
	int rc = proto_clist_delta_parse(delta, delta_len, &d);
	if (rc)
		return rc;
	if (d.sector != policy->sector)
		return PROTO_ERR_LIST_SECTOR;
	rc = proto_clist_head_parse(d.head, d.head_len, &h);
	if (rc)
		return rc;
	const struct proto_key *key = proto_keyring_find(policy->keys, h.key_id);
	if (h.sector != d.sector || h.version != d.version)
		rc = PROTO_ERR_LIST_FIELD;
	else if (!key)
		rc = PROTO_ERR_LIST_UNKNOWN_KEY;
	else if (d.base_version != base->version ||
	         memcmp(d.base_manifest, base_hash, PROTO_HASH_LEN) != 0)
		rc = PROTO_ERR_DELTA_BASE;
	else if (d.version <= policy->held_version)
		rc = PROTO_ERR_LIST_ROLLBACK;
	int64_t expires = h.expires_at;
	proto_clist_head_free(&h);
	if (rc)
		return rc;

	struct proto_clist_delta_chunk *changes =
	        calloc(d.chunk_count ? d.chunk_count : 1, sizeof(*changes));
	if (!changes)
		return PROTO_ERR_NOMEM;
	size_t cursor = 0;
	uint32_t k = 0;
	while (k < d.chunk_count && proto_clist_delta_next(&d, &cursor, &changes[k]))
		k++;
	rc = proto_clist_derive(base, d.head, d.head_len, changes, k, read, ctx, out);
	free(changes);
	if (rc)
		return rc;
	if (proto_verify(key, out->manifest_bytes, out->manifest_len, sig, sig_len) != 0)
		rc = PROTO_ERR_DELTA_RESULT;
	else if (policy->now >= expires)
		rc = PROTO_ERR_LIST_EXPIRED;
	if (rc)
		proto_clist_applied_free(out);
	return rc;
}
