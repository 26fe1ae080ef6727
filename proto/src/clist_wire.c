/*
 * clist_wire.c — how a format 2 list travels on the sync link: deltas (per changed chunk,
 * sorted operations, plus the new head) and snapshot streams (the manifest, then each file
 * it names, in its order). docs/list-format.md, "On the wire".
 */
#include <stdlib.h>

#include "list_internal.h"
#include "proto/clist.h"
#include "proto/error.h"

#define STREAM_FIXED 24
#define DELTA_FIXED  64
#define CHUNK_FIXED  6 /* chunk number 2, op count 4 */
/* A head holds at most PROTO_CLIST_MAX_PROFILES profiles. */
#define HEAD_MAX                                                                                   \
	(PROTO_CLIST_HEAD_FIXED + (size_t)PROTO_CLIST_MAX_PROFILES * PROTO_LIST_PROFILE_SIZE)

int proto_clist_kind(const uint8_t *buf, size_t len)
{
	if (!buf || len < 6 || get_be16(buf + 4) != PROTO_CLIST_FORMAT)
		return 0;
	if (memcmp(buf, LIST_MAGIC, 4) == 0)
		return 1;
	if (memcmp(buf, DELTA_MAGIC, 4) == 0)
		return 2;
	return 0;
}

/* --- deltas -------------------------------------------------------------------------- */

int proto_clist_delta_parse(const uint8_t *b, size_t len, struct proto_clist_delta *d)
{
	if (!b || !d)
		return PROTO_ERR_ARG;
	memset(d, 0, sizeof(*d));
	if (len < 4)
		return PROTO_ERR_LIST_TRUNCATED;
	if (memcmp(b, DELTA_MAGIC, 4) != 0)
		return PROTO_ERR_LIST_MAGIC;
	if (len < DELTA_FIXED)
		return PROTO_ERR_LIST_TRUNCATED;
	if (get_be16(b + 4) != PROTO_CLIST_FORMAT)
		return PROTO_ERR_LIST_FORMAT;
	d->sector = get_be16(b + 6);
	d->base_version = get_be64(b + 8);
	d->version = get_be64(b + 16);
	memcpy(d->base_manifest, b + 24, PROTO_HASH_LEN);
	d->head_len = get_be32(b + 56);
	d->chunk_count = get_be32(b + 60);
	if (d->base_version == 0 || d->version <= d->base_version)
		return PROTO_ERR_LIST_FIELD;
	if (d->head_len > HEAD_MAX || d->chunk_count > (1u << PROTO_CLIST_MAX_BITS))
		return PROTO_ERR_LIST_OVERSIZED;
	if (len - DELTA_FIXED < d->head_len)
		return PROTO_ERR_LIST_TRUNCATED;
	d->head = b + DELTA_FIXED;
	d->body = d->head + d->head_len;
	d->body_len = len - DELTA_FIXED - d->head_len;
	/* walk the records once: each must fit, and nothing may follow the last */
	size_t at = 0;
	int64_t prev = -1;
	for (uint32_t i = 0; i < d->chunk_count; i++) {
		if (d->body_len - at < CHUNK_FIXED)
			return PROTO_ERR_LIST_TRUNCATED;
		uint32_t chunk = get_be16(d->body + at);
		uint32_t ops = get_be32(d->body + at + 2);
		if ((int64_t)chunk <= prev || chunk >= (1u << PROTO_CLIST_MAX_BITS) || ops == 0)
			return PROTO_ERR_LIST_FIELD;
		if (ops > PROTO_LIST_MAX_ENTRIES)
			return PROTO_ERR_LIST_OVERSIZED;
		prev = chunk;
		at += CHUNK_FIXED;
		if ((d->body_len - at) / PROTO_CLIST_OP_SIZE < ops)
			return PROTO_ERR_LIST_TRUNCATED;
		at += (size_t)ops * PROTO_CLIST_OP_SIZE;
	}
	if (at != d->body_len)
		return PROTO_ERR_LIST_OVERSIZED;
	return PROTO_OK;
}

int proto_clist_delta_next(const struct proto_clist_delta *d, size_t *cursor,
                           struct proto_clist_delta_chunk *c)
{
	/* parse checked every record: only the end needs testing here */
	if (*cursor >= d->body_len)
		return 0;
	const uint8_t *p = d->body + *cursor;
	c->chunk = get_be16(p);
	c->op_count = get_be32(p + 2);
	c->ops = p + CHUNK_FIXED;
	*cursor += CHUNK_FIXED + (size_t)c->op_count * PROTO_CLIST_OP_SIZE;
	return 1;
}

int proto_clist_delta_encode(const struct proto_clist_delta *d,
                             const struct proto_clist_delta_chunk *chunks, uint32_t n,
                             uint8_t **out, size_t *len)
{
	if (!d || !out || !len || (n && !chunks) || !d->head || d->head_len > HEAD_MAX)
		return PROTO_ERR_ARG;
	size_t size = DELTA_FIXED + d->head_len;
	for (uint32_t i = 0; i < n; i++) {
		if (chunks[i].op_count == 0 || chunks[i].chunk >= (1u << PROTO_CLIST_MAX_BITS) ||
		    (i > 0 && chunks[i].chunk <= chunks[i - 1].chunk))
			return PROTO_ERR_ARG;
		size += CHUNK_FIXED + (size_t)chunks[i].op_count * PROTO_CLIST_OP_SIZE;
	}
	uint8_t *b = malloc(size);
	if (!b)
		return PROTO_ERR_NOMEM;
	memcpy(b, DELTA_MAGIC, 4);
	put_be16(b + 4, PROTO_CLIST_FORMAT);
	put_be16(b + 6, d->sector);
	put_be64(b + 8, d->base_version);
	put_be64(b + 16, d->version);
	memcpy(b + 24, d->base_manifest, PROTO_HASH_LEN);
	put_be32(b + 56, (uint32_t)d->head_len);
	put_be32(b + 60, n);
	memcpy(b + DELTA_FIXED, d->head, d->head_len);
	uint8_t *w = b + DELTA_FIXED + d->head_len;
	for (uint32_t i = 0; i < n; i++) {
		put_be16(w, (uint16_t)chunks[i].chunk);
		put_be32(w + 2, chunks[i].op_count);
		w += CHUNK_FIXED;
		size_t ol = (size_t)chunks[i].op_count * PROTO_CLIST_OP_SIZE;
		memcpy(w, chunks[i].ops, ol);
		w += ol;
	}
	*out = b;
	*len = size;
	return PROTO_OK;
}

/* --- snapshot streams ---------------------------------------------------------------- */

int proto_clist_stream_parse(const uint8_t *b, size_t len, struct proto_clist_stream *s)
{
	if (!b || !s)
		return PROTO_ERR_ARG;
	memset(s, 0, sizeof(*s));
	if (len < 4)
		return PROTO_ERR_LIST_TRUNCATED;
	if (memcmp(b, LIST_MAGIC, 4) != 0)
		return PROTO_ERR_LIST_MAGIC;
	if (len < STREAM_FIXED)
		return PROTO_ERR_LIST_TRUNCATED;
	if (get_be16(b + 4) != PROTO_CLIST_FORMAT)
		return PROTO_ERR_LIST_FORMAT;
	s->sector = get_be16(b + 6);
	s->version = get_be64(b + 8);
	s->manifest_len = get_be32(b + 16);
	s->file_count = get_be32(b + 20);
	if (s->version == 0 || s->manifest_len == 0)
		return PROTO_ERR_LIST_FIELD;
	if (s->file_count > 1 + (2u << PROTO_CLIST_MAX_BITS))
		return PROTO_ERR_LIST_OVERSIZED;
	if (len - STREAM_FIXED < s->manifest_len)
		return PROTO_ERR_LIST_TRUNCATED;
	s->manifest = b + STREAM_FIXED;
	s->files = s->manifest + s->manifest_len;
	s->files_len = len - STREAM_FIXED - s->manifest_len;
	size_t at = 0;
	for (uint32_t i = 0; i < s->file_count; i++) {
		if (s->files_len - at < 4)
			return PROTO_ERR_LIST_TRUNCATED;
		uint32_t fl = get_be32(s->files + at);
		at += 4;
		if (s->files_len - at < fl)
			return PROTO_ERR_LIST_TRUNCATED;
		at += fl;
	}
	if (at != s->files_len)
		return PROTO_ERR_LIST_OVERSIZED;
	return PROTO_OK;
}

int proto_clist_stream_next(const struct proto_clist_stream *s, size_t *cursor,
                            const uint8_t **data, size_t *len)
{
	if (*cursor >= s->files_len)
		return 0;
	const uint8_t *p = s->files + *cursor;
	*len = get_be32(p);
	*data = p + 4;
	*cursor += 4 + *len;
	return 1;
}

int proto_clist_stream_encode(uint16_t sector, uint64_t version, const uint8_t *manifest,
                              size_t manifest_len, const uint8_t *const *files, const size_t *lens,
                              uint32_t n, uint8_t **out, size_t *len)
{
	if (!manifest || !manifest_len || manifest_len > UINT32_MAX || (n && (!files || !lens)) ||
	    !out || !len)
		return PROTO_ERR_ARG;
	size_t size = STREAM_FIXED + manifest_len;
	for (uint32_t i = 0; i < n; i++) {
		if (lens[i] > UINT32_MAX)
			return PROTO_ERR_ARG;
		size += 4 + lens[i];
	}
	uint8_t *b = malloc(size);
	if (!b)
		return PROTO_ERR_NOMEM;
	memcpy(b, LIST_MAGIC, 4);
	put_be16(b + 4, PROTO_CLIST_FORMAT);
	put_be16(b + 6, sector);
	put_be64(b + 8, version);
	put_be32(b + 16, (uint32_t)manifest_len);
	put_be32(b + 20, n);
	memcpy(b + STREAM_FIXED, manifest, manifest_len);
	uint8_t *w = b + STREAM_FIXED + manifest_len;
	for (uint32_t i = 0; i < n; i++) {
		put_be32(w, (uint32_t)lens[i]);
		if (lens[i])
			memcpy(w + 4, files[i], lens[i]);
		w += 4 + lens[i];
	}
	*out = b;
	*len = size;
	return PROTO_OK;
}
