/*
 * clist_build.c — building a whole format 2 version (the server's full rebuild, tools and
 * tests). The builder is a writer of the format, so it refuses whatever a gate would.
 */
#include <stdlib.h>

#include "list_internal.h"
#include "proto/clist.h"
#include "proto/error.h"

static int entry_key_cmp(const void *a, const void *b)
{
	return memcmp(((const struct proto_list_entry *)a)->key,
	              ((const struct proto_list_entry *)b)->key, PROTO_LIST_KEY_LEN);
}

/* Entries in key order, byte by byte from the last (LSD radix, stable): the order memcmp
 * gives, in eight linear passes. A full rebuild sorts every pass of a sector, and qsort's
 * comparisons were a fifth of its time at 5 M passes. A pass where every key has the same
 * byte changes nothing and is skipped. */
static int sort_by_key(struct proto_list_entry *e, size_t n)
{
	if (n < 256) {
		qsort(e, n, sizeof(*e), entry_key_cmp);
		return PROTO_OK;
	}
	struct proto_list_entry *tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return PROTO_ERR_NOMEM;
	struct proto_list_entry *src = e, *dst = tmp;
	for (int b = PROTO_LIST_KEY_LEN - 1; b >= 0; b--) {
		size_t at[256] = {0};
		for (size_t i = 0; i < n; i++)
			at[src[i].key[b]]++;
		if (at[src[0].key[b]] == n)
			continue;
		for (size_t d = 0, sum = 0; d < 256; d++) {
			size_t c = at[d];
			at[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[at[src[i].key[b]]++] = src[i];
		struct proto_list_entry *t = src;
		src = dst;
		dst = t;
	}
	if (src != e)
		memcpy(e, src, n * sizeof(*e));
	free(tmp);
	return PROTO_OK;
}

int proto_clist_seal(struct proto_clist_built *b, const struct proto_key *signer)
{
	if (!b || !signer || !b->manifest.chunks)
		return PROTO_ERR_ARG;
	free(b->head_bytes);
	free(b->manifest_bytes);
	b->head_bytes = b->manifest_bytes = NULL;
	proto_key_id(signer, b->head.key_id);
	b->head.bits = b->manifest.bits;
	b->manifest.version = b->head.version;
	int rc = proto_clist_head_encode(&b->head, &b->head_bytes, &b->head_len);
	if (rc)
		return rc;
	proto_sha256(b->head_bytes, b->head_len, b->manifest.head_hash);
	rc = proto_clist_manifest_encode(&b->manifest, &b->manifest_bytes, &b->manifest_len);
	if (rc)
		return rc;
	return proto_sign(signer, b->manifest_bytes, b->manifest_len, b->sig, &b->sig_len);
}

int proto_clist_build(const struct proto_clist_params *params, const struct proto_key *signer,
                      const struct proto_rights_profile *profiles, size_t profile_count,
                      struct proto_list_entry *entries, size_t entry_count,
                      struct proto_clist_built *out)
{
	if (!params || !signer || !out || (profile_count && !profiles) || (entry_count && !entries))
		return PROTO_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if (params->version == 0 || params->expires_at <= params->issued_at ||
	    params->bits > PROTO_CLIST_MAX_BITS)
		return PROTO_ERR_LIST_FIELD;
	if (entry_count > PROTO_LIST_MAX_ENTRIES || profile_count > PROTO_CLIST_MAX_PROFILES)
		return PROTO_ERR_LIST_OVERSIZED;
	if (entry_count > 1 && sort_by_key(entries, entry_count) != PROTO_OK)
		return PROTO_ERR_NOMEM;
	for (size_t i = 0; i < entry_count; i++) {
		const struct proto_list_entry *e = &entries[i];
		if (i > 0 && entry_key_cmp(&entries[i - 1], e) == 0)
			return PROTO_ERR_LIST_ORDER;
		if (e->profile >= profile_count)
			return PROTO_ERR_LIST_PROFILE;
		if (e->status > PROTO_STATUS_MAX || e->household > PROTO_LIST_HOUSEHOLD_MAX)
			return PROTO_ERR_LIST_FIELD;
	}

	const uint32_t n_chunks = 1u << params->bits;
	out->head = (struct proto_clist_head){
	        .format = PROTO_CLIST_FORMAT,
	        .sector = params->sector,
	        .version = params->version,
	        .issued_at = params->issued_at,
	        .expires_at = params->expires_at,
	        .entry_count = (uint32_t)entry_count,
	        .profile_count = (uint16_t)profile_count,
	        .bits = (uint8_t)params->bits,
	        .profiles = (struct proto_rights_profile *)profiles,
	};
	memcpy(out->head.prev_manifest, params->prev_manifest, PROTO_HASH_LEN);
	out->manifest.version = params->version;
	out->manifest.bits = (uint8_t)params->bits;
	out->manifest.n_chunks = n_chunks;
	out->manifest.chunks = calloc(n_chunks, sizeof(*out->manifest.chunks));
	out->chunks = calloc(n_chunks, sizeof(*out->chunks));
	if (!out->manifest.chunks || !out->chunks) {
		proto_clist_built_free(out);
		return PROTO_ERR_NOMEM;
	}
	int rc = PROTO_OK;
	size_t at = 0;
	for (uint32_t j = 0; j < n_chunks && rc == 0; j++) {
		size_t first = at;
		while (at < entry_count && proto_clist_chunk_of(entries[at].key, params->bits) == j)
			at++;
		struct proto_clist_chunk_data *c = &out->chunks[j];
		c->n = (uint32_t)(at - first);
		c->dat = malloc(c->n ? (size_t)c->n * PROTO_CLIST_ENTRY_SIZE : 1);
		if (!c->dat) {
			rc = PROTO_ERR_NOMEM;
			break;
		}
		for (uint32_t i = 0; i < c->n; i++)
			proto_clist_entry_encode(c->dat + (size_t)i * PROTO_CLIST_ENTRY_SIZE,
			                         &entries[first + i]);
		rc = proto_clist_idx_build(j, c->dat, c->n, &c->idx, &c->idx_len);
		if (rc)
			break;
		struct proto_clist_ref *r = &out->manifest.chunks[j];
		r->since = params->version;
		proto_sha256(c->dat, (size_t)c->n * PROTO_CLIST_ENTRY_SIZE, r->dat_hash);
		proto_sha256(c->idx, c->idx_len, r->idx_hash);
	}
	if (rc == 0)
		rc = proto_clist_seal(out, signer);
	if (rc)
		proto_clist_built_free(out);
	return rc;
}

void proto_clist_built_free(struct proto_clist_built *b)
{
	if (!b)
		return;
	if (b->chunks) {
		for (uint32_t j = 0; j < b->manifest.n_chunks; j++) {
			free(b->chunks[j].dat);
			free(b->chunks[j].idx);
		}
	}
	free(b->chunks);
	free(b->head_bytes);
	free(b->manifest_bytes);
	proto_clist_manifest_free(&b->manifest);
	memset(b, 0, sizeof(*b));
}

int proto_clist_built_stream(const struct proto_clist_built *b, uint8_t **out, size_t *len)
{
	if (!b || !b->chunks || !b->manifest_bytes)
		return PROTO_ERR_ARG;
	uint32_t n = 1 + 2 * b->manifest.n_chunks;
	const uint8_t **files = malloc(n * sizeof(*files));
	size_t *lens = malloc(n * sizeof(*lens));
	int rc = PROTO_ERR_NOMEM;
	if (files && lens) {
		files[0] = b->head_bytes;
		lens[0] = b->head_len;
		for (uint32_t j = 0; j < b->manifest.n_chunks; j++) {
			files[1 + 2 * j] = b->chunks[j].idx;
			lens[1 + 2 * j] = b->chunks[j].idx_len;
			files[2 + 2 * j] = b->chunks[j].dat;
			lens[2 + 2 * j] = (size_t)b->chunks[j].n * PROTO_CLIST_ENTRY_SIZE;
		}
		rc = proto_clist_stream_encode(b->head.sector, b->head.version, b->manifest_bytes,
		                               b->manifest_len, files, lens, n, out, len);
	}
	free(files);
	free(lens);
	return rc;
}
