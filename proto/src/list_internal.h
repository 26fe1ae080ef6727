/*
 * list_internal.h — byte layout shared by the list reader, builder and delta code.
 * Not installed; tests and fuzz targets may include it (that is the one way they reach
 * internals), nothing else may.
 */
#ifndef PROTO_LIST_INTERNAL_H
#define PROTO_LIST_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "proto/list.h"

#define LIST_MAGIC  "CPLS"
#define DELTA_MAGIC "CPLD"

enum delta_op {
	DELTA_OP_ADD = 1,
	DELTA_OP_CHANGE = 2,
	DELTA_OP_REMOVE = 3,
};

struct proto_list {
	const uint8_t *buf;
	size_t len;
	size_t map_len; /* non-zero when buf is our own mmap */
	struct proto_list_header hdr;
	const uint8_t *profiles;
	const uint8_t *entries;
	uint8_t hash[PROTO_HASH_LEN];
	int hash_ready;
};

/* All multi-byte fields are big-endian, so a file dumps the same on every machine. */
static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t get_be24(const uint8_t *p)
{
	return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_be24(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 16);
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static inline int all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

void list_entry_encode(uint8_t out[PROTO_LIST_ENTRY_SIZE], const struct proto_list_entry *e);
void list_entry_decode(const uint8_t in[PROTO_LIST_ENTRY_SIZE], struct proto_list_entry *e);
void list_profile_encode(uint8_t out[PROTO_LIST_PROFILE_SIZE],
                         const struct proto_rights_profile *p);
/* Decode and range-check one profile: PROTO_ERR_LIST_FIELD on a bad value. */
int list_profile_decode(const uint8_t in[PROTO_LIST_PROFILE_SIZE], struct proto_rights_profile *p);
void list_header_encode(uint8_t out[PROTO_LIST_HEADER_SIZE], const struct proto_list_header *h);
/*
 * Classify a body of `have` bytes that should hold `want` records of `size` bytes, after a
 * fixed part: PROTO_ERR_LIST_TRUNCATED (cut mid-record), _OVERSIZED (trailing partial
 * record), _COUNT (a whole number of records, but not the declared one), or 0.
 */
int list_body_check(size_t have, uint64_t want, size_t size);

/*
 * Apply a delta to base without checking any signature or policy: the structural core of
 * proto_delta_apply(), exposed for the fuzz targets so that they reach the merge code.
 */
int proto_delta_apply_unverified(const struct proto_list *base, const uint8_t *delta,
                                 size_t delta_len, const uint8_t base_hash[PROTO_HASH_LEN],
                                 uint8_t **out, size_t *out_len, struct proto_delta_header *hdr);

#endif
