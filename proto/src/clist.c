/*
 * clist.c — the chunked list (format 2): entries, head, manifest, chunk index and the
 * checks a gate runs on them (proto/clist.h, docs/list-format.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "list_internal.h"
#include "proto/clist.h"
#include "proto/error.h"

#define HEAD_MAGIC "CPLH"
#define IDX_MAGIC  "CPLI"

/* --- entries ------------------------------------------------------------------------- */

void proto_clist_entry_encode(uint8_t out[PROTO_CLIST_ENTRY_SIZE], const struct proto_list_entry *e)
{
	memcpy(out, e->key, PROTO_LIST_KEY_LEN);
	put_be16(out + 8, (uint16_t)(((unsigned)(e->status & 3) << 14) |
	                             (e->profile & PROTO_CLIST_MAX_PROFILES)));
	put_be24(out + 10, e->household);
	out[13] = e->used;
	out[14] = e->used_period;
}

void proto_clist_entry_decode(const uint8_t in[PROTO_CLIST_ENTRY_SIZE], struct proto_list_entry *e)
{
	uint16_t sp = get_be16(in + 8);
	memcpy(e->key, in, PROTO_LIST_KEY_LEN);
	e->status = (uint8_t)(sp >> 14);
	e->profile = (uint16_t)(sp & PROTO_CLIST_MAX_PROFILES);
	e->household = get_be24(in + 10);
	e->used = in[13];
	e->used_period = in[14];
}

uint32_t proto_clist_chunk_of(const uint8_t key[PROTO_LIST_KEY_LEN], unsigned bits)
{
	if (bits == 0)
		return 0;
	return (uint32_t)(get_be64(key) >> (64 - bits));
}

unsigned proto_clist_bits_for(uint64_t n)
{
	unsigned b = 0;
	while (b < PROTO_CLIST_MAX_BITS && (n >> b) > PROTO_CLIST_CHUNK_TARGET)
		b++;
	return b;
}

/* --- head ---------------------------------------------------------------------------- */

int proto_clist_head_parse(const uint8_t *b, size_t len, struct proto_clist_head *h)
{
	if (!b || !h)
		return PROTO_ERR_ARG;
	memset(h, 0, sizeof(*h));
	if (len < 4)
		return PROTO_ERR_LIST_TRUNCATED;
	if (memcmp(b, HEAD_MAGIC, 4) != 0)
		return PROTO_ERR_LIST_MAGIC;
	if (len < PROTO_CLIST_HEAD_FIXED)
		return PROTO_ERR_LIST_TRUNCATED;
	h->format = get_be16(b + 4);
	if (h->format != PROTO_CLIST_FORMAT)
		return PROTO_ERR_LIST_FORMAT;
	h->sector = get_be16(b + 6);
	h->version = get_be64(b + 8);
	h->issued_at = (int64_t)get_be64(b + 16);
	h->expires_at = (int64_t)get_be64(b + 24);
	memcpy(h->key_id, b + 32, PROTO_KEY_ID_LEN);
	h->entry_count = get_be32(b + 40);
	h->profile_count = get_be16(b + 44);
	h->bits = b[46];
	memcpy(h->prev_manifest, b + 48, PROTO_HASH_LEN);
	if (h->version == 0 || h->expires_at <= h->issued_at || h->bits > PROTO_CLIST_MAX_BITS ||
	    b[47] != 0 || !all_zero(b + 80, 16) || h->profile_count > PROTO_CLIST_MAX_PROFILES)
		return PROTO_ERR_LIST_FIELD;
	if (h->entry_count > PROTO_LIST_MAX_ENTRIES)
		return PROTO_ERR_LIST_OVERSIZED;
	int rc = list_body_check(len - PROTO_CLIST_HEAD_FIXED, h->profile_count,
	                         PROTO_LIST_PROFILE_SIZE);
	if (rc)
		return rc;
	h->profiles = calloc(h->profile_count ? h->profile_count : 1, sizeof(*h->profiles));
	if (!h->profiles)
		return PROTO_ERR_NOMEM;
	for (uint32_t i = 0; i < h->profile_count && rc == 0; i++)
		rc = list_profile_decode(b + PROTO_CLIST_HEAD_FIXED +
		                                 (size_t)i * PROTO_LIST_PROFILE_SIZE,
		                         &h->profiles[i]);
	if (rc)
		proto_clist_head_free(h);
	return rc;
}

int proto_clist_head_encode(const struct proto_clist_head *h, uint8_t **out, size_t *len)
{
	if (!h || !out || !len || (h->profile_count && !h->profiles))
		return PROTO_ERR_ARG;
	if (h->version == 0 || h->expires_at <= h->issued_at || h->bits > PROTO_CLIST_MAX_BITS ||
	    h->profile_count > PROTO_CLIST_MAX_PROFILES)
		return PROTO_ERR_LIST_FIELD;
	size_t n = PROTO_CLIST_HEAD_FIXED + (size_t)h->profile_count * PROTO_LIST_PROFILE_SIZE;
	uint8_t *b = calloc(1, n);
	if (!b)
		return PROTO_ERR_NOMEM;
	memcpy(b, HEAD_MAGIC, 4);
	put_be16(b + 4, PROTO_CLIST_FORMAT);
	put_be16(b + 6, h->sector);
	put_be64(b + 8, h->version);
	put_be64(b + 16, (uint64_t)h->issued_at);
	put_be64(b + 24, (uint64_t)h->expires_at);
	memcpy(b + 32, h->key_id, PROTO_KEY_ID_LEN);
	put_be32(b + 40, h->entry_count);
	put_be16(b + 44, h->profile_count);
	b[46] = h->bits;
	memcpy(b + 48, h->prev_manifest, PROTO_HASH_LEN);
	for (uint32_t i = 0; i < h->profile_count; i++) {
		uint8_t *p = b + PROTO_CLIST_HEAD_FIXED + (size_t)i * PROTO_LIST_PROFILE_SIZE;
		struct proto_rights_profile check;
		list_profile_encode(p, &h->profiles[i]);
		if (list_profile_decode(p, &check) != 0) {
			free(b);
			return PROTO_ERR_LIST_FIELD;
		}
	}
	*out = b;
	*len = n;
	return PROTO_OK;
}

void proto_clist_head_free(struct proto_clist_head *h)
{
	if (h) {
		free(h->profiles);
		h->profiles = NULL;
	}
}

/* --- names and the manifest ---------------------------------------------------------- */

void proto_clist_name_manifest(char out[PROTO_CLIST_NAME_MAX], uint64_t version)
{
	snprintf(out, PROTO_CLIST_NAME_MAX, "v%" PRIu64 ".manifest", version);
}

void proto_clist_name_sig(char out[PROTO_CLIST_NAME_MAX], uint64_t version)
{
	snprintf(out, PROTO_CLIST_NAME_MAX, "v%" PRIu64 ".manifest.sig", version);
}

void proto_clist_name_head(char out[PROTO_CLIST_NAME_MAX], uint64_t version)
{
	snprintf(out, PROTO_CLIST_NAME_MAX, "v%" PRIu64 ".head", version);
}

void proto_clist_name_chunk(char out[PROTO_CLIST_NAME_MAX], uint32_t chunk, uint64_t since, int idx)
{
	snprintf(out, PROTO_CLIST_NAME_MAX, "c%03" PRIx32 "-v%" PRIu64 ".%s", chunk, since,
	         idx ? "idx" : "dat");
}

static const char hexdigits[] = "0123456789abcdef";

static size_t put_line(uint8_t *w, const uint8_t hash[PROTO_HASH_LEN], const char *name)
{
	for (int i = 0; i < PROTO_HASH_LEN; i++) {
		w[2 * i] = (uint8_t)hexdigits[hash[i] >> 4];
		w[2 * i + 1] = (uint8_t)hexdigits[hash[i] & 15];
	}
	w[64] = ' ';
	w[65] = ' ';
	size_t n = strlen(name);
	memcpy(w + 66, name, n);
	w[66 + n] = '\n';
	return 67 + n;
}

int proto_clist_manifest_encode(const struct proto_clist_manifest *m, uint8_t **out, size_t *len)
{
	if (!m || !out || !len || m->bits > PROTO_CLIST_MAX_BITS ||
	    m->n_chunks != (1u << m->bits) || !m->chunks)
		return PROTO_ERR_ARG;
	/* each line: 64 hex, 2 spaces, a name shorter than PROTO_CLIST_NAME_MAX, newline */
	size_t cap = (1 + 2 * (size_t)m->n_chunks) * (67 + PROTO_CLIST_NAME_MAX);
	uint8_t *b = malloc(cap), *w = b;
	if (!b)
		return PROTO_ERR_NOMEM;
	char name[PROTO_CLIST_NAME_MAX];
	proto_clist_name_head(name, m->version);
	w += put_line(w, m->head_hash, name);
	for (uint32_t j = 0; j < m->n_chunks; j++) {
		proto_clist_name_chunk(name, j, m->chunks[j].since, 1);
		w += put_line(w, m->chunks[j].idx_hash, name);
		proto_clist_name_chunk(name, j, m->chunks[j].since, 0);
		w += put_line(w, m->chunks[j].dat_hash, name);
	}
	*out = b;
	*len = (size_t)(w - b);
	return PROTO_OK;
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One "hash  name\n" line at *p: the hash, and the name as [*name, *name + *name_len). */
static int take_line(const uint8_t **p, const uint8_t *end, uint8_t hash[PROTO_HASH_LEN],
                     const char **name, size_t *name_len)
{
	const uint8_t *s = *p;
	if (end - s < 68)
		return PROTO_ERR_LIST_MANIFEST;
	for (int i = 0; i < PROTO_HASH_LEN; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return PROTO_ERR_LIST_MANIFEST;
		hash[i] = (uint8_t)(hi << 4 | lo);
	}
	if (s[64] != ' ' || s[65] != ' ')
		return PROTO_ERR_LIST_MANIFEST;
	const uint8_t *nl = memchr(s + 66, '\n', (size_t)(end - s - 66));
	if (!nl || nl - (s + 66) >= PROTO_CLIST_NAME_MAX)
		return PROTO_ERR_LIST_MANIFEST;
	*name = (const char *)(s + 66);
	*name_len = (size_t)(nl - (s + 66));
	*p = nl + 1;
	return PROTO_OK;
}

/* Decimal digits of a version (1 .. 2^64 - 1): no sign, no leading zero. */
static int take_version(const char **s, const char *end, uint64_t *v)
{
	const char *p = *s;
	uint64_t x = 0;
	int n = 0;
	while (p < end && *p >= '0' && *p <= '9') {
		uint64_t d = (uint64_t)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
		p++;
		n++;
	}
	if (n == 0 || (n > 1 && **s == '0') || x == 0)
		return -1;
	*v = x;
	*s = p;
	return 0;
}

static int name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(name, want, len) == 0;
}

int proto_clist_manifest_parse(const uint8_t *text, size_t len, struct proto_clist_manifest *m)
{
	if (!text || !m)
		return PROTO_ERR_ARG;
	memset(m, 0, sizeof(*m));
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	/* 1 + 2 * 2^bits lines: the head, then each chunk's idx and dat */
	if (lines < 3 || lines % 2 == 0)
		return PROTO_ERR_LIST_MANIFEST;
	size_t n = (lines - 1) / 2;
	unsigned bits = 0;
	while (bits <= PROTO_CLIST_MAX_BITS && ((size_t)1 << bits) < n)
		bits++;
	if (bits > PROTO_CLIST_MAX_BITS || ((size_t)1 << bits) != n)
		return PROTO_ERR_LIST_MANIFEST;
	m->bits = (uint8_t)bits;
	m->n_chunks = (uint32_t)n;
	m->chunks = calloc(n, sizeof(*m->chunks));
	if (!m->chunks)
		return PROTO_ERR_NOMEM;

	const uint8_t *p = text, *end = text + len;
	const char *name;
	size_t nl;
	int rc = take_line(&p, end, m->head_hash, &name, &nl);
	const char *q = name, *qe = name + nl;
	if (rc == 0 && (q == qe || *q++ != 'v' || take_version(&q, qe, &m->version) != 0 ||
	                !name_is(q, (size_t)(qe - q), ".head")))
		rc = PROTO_ERR_LIST_MANIFEST;
	for (uint32_t j = 0; rc == 0 && j < n; j++) {
		struct proto_clist_ref *r = &m->chunks[j];
		uint8_t dat_hash[PROTO_HASH_LEN];
		const char *dn;
		size_t dl;
		rc = take_line(&p, end, r->idx_hash, &name, &nl);
		if (rc == 0)
			rc = take_line(&p, end, dat_hash, &dn, &dl);
		if (rc)
			break;
		memcpy(r->dat_hash, dat_hash, PROTO_HASH_LEN);
		/* c<jjj>-v<since>.idx: the chunk number is checked by the canonical form below */
		q = name;
		qe = name + nl;
		if (nl < 6 || q[0] != 'c' || q[4] != '-' || q[5] != 'v') {
			rc = PROTO_ERR_LIST_MANIFEST;
			break;
		}
		q += 6;
		if (take_version(&q, qe, &r->since) != 0 || r->since > m->version ||
		    !name_is(q, (size_t)(qe - q), ".idx")) {
			rc = PROTO_ERR_LIST_MANIFEST;
			break;
		}
	}
	if (rc == 0 && p != end)
		rc = PROTO_ERR_LIST_MANIFEST;
	if (rc == 0) {
		/* one text per manifest: re-encode and compare, which also checks every name */
		uint8_t *canon = NULL;
		size_t clen = 0;
		rc = proto_clist_manifest_encode(m, &canon, &clen);
		if (rc == 0 && (clen != len || memcmp(canon, text, len) != 0))
			rc = PROTO_ERR_LIST_MANIFEST;
		free(canon);
	}
	if (rc)
		proto_clist_manifest_free(m);
	return rc;
}

int proto_clist_manifest_copy(struct proto_clist_manifest *dst,
                              const struct proto_clist_manifest *src)
{
	*dst = *src;
	dst->chunks = malloc((size_t)src->n_chunks * sizeof(*dst->chunks));
	if (!dst->chunks)
		return PROTO_ERR_NOMEM;
	memcpy(dst->chunks, src->chunks, (size_t)src->n_chunks * sizeof(*dst->chunks));
	return PROTO_OK;
}

void proto_clist_manifest_free(struct proto_clist_manifest *m)
{
	if (m) {
		free(m->chunks);
		m->chunks = NULL;
		m->n_chunks = 0;
	}
}

int proto_clist_verify(const uint8_t *manifest, size_t manifest_len, const uint8_t *sig,
                       size_t sig_len, const uint8_t *head, size_t head_len,
                       const struct proto_list_policy *policy, struct proto_clist_manifest *m,
                       struct proto_clist_head *h)
{
	if (!manifest || !head || !policy || !m || !h)
		return PROTO_ERR_ARG;
	/* both always safe to free afterwards, whatever the outcome */
	memset(m, 0, sizeof(*m));
	memset(h, 0, sizeof(*h));
	int rc = proto_clist_head_parse(head, head_len, h);
	if (rc)
		return rc;
	rc = proto_clist_manifest_parse(manifest, manifest_len, m);
	if (rc) {
		proto_clist_head_free(h);
		return rc;
	}
	const struct proto_key *key = NULL;
	uint8_t hash[PROTO_HASH_LEN];
	if (h->sector != policy->sector)
		rc = PROTO_ERR_LIST_SECTOR;
	else if (!(key = proto_keyring_find(policy->keys, h->key_id)))
		rc = PROTO_ERR_LIST_UNKNOWN_KEY;
	else if ((rc = proto_verify(key, manifest, manifest_len, sig, sig_len)) != 0)
		;
	else if (proto_sha256(head, head_len, hash), memcmp(hash, m->head_hash, PROTO_HASH_LEN))
		rc = PROTO_ERR_LIST_HASH;
	else if (h->version != m->version || h->bits != m->bits)
		rc = PROTO_ERR_LIST_MANIFEST;
	else if (policy->now >= h->expires_at)
		return PROTO_ERR_LIST_EXPIRED; /* m and h stay filled: see the header */
	else if (h->version <= policy->held_version)
		return PROTO_ERR_LIST_ROLLBACK;
	if (rc) {
		proto_clist_head_free(h);
		proto_clist_manifest_free(m);
	}
	return rc;
}

/* --- chunk index --------------------------------------------------------------------- */

static uint32_t leaves_of(uint32_t n)
{
	return (n + PROTO_CLIST_LEAF_ENTRIES - 1) / PROTO_CLIST_LEAF_ENTRIES;
}

size_t proto_clist_idx_size(uint32_t n)
{
	return PROTO_CLIST_IDX_FIXED + (size_t)leaves_of(n) * PROTO_CLIST_IDX_LEAF;
}

int proto_clist_idx_build(uint32_t chunk, const uint8_t *dat, uint32_t n, uint8_t **out,
                          size_t *len)
{
	return proto_clist_idx_rebuild(chunk, dat, n, NULL, 0, NULL, 0, out, len);
}

/* Leaf i of the previous index, when the leaf holds the same bytes at the same place in
 * both versions of the chunk: its record (first key and hash) is the same. */
static const uint8_t *same_leaf(const struct proto_clist_idx *prev, const uint8_t *prev_dat,
                                uint32_t i, const uint8_t *dat, uint64_t off, size_t l)
{
	if (!prev || i >= prev->leaf_count)
		return NULL;
	uint64_t poff; /* off too: a leaf's place depends on its number only */
	size_t pl;
	proto_clist_leaf_span(prev, i, &poff, &pl);
	if (pl != l || memcmp(prev_dat + off, dat + off, l) != 0)
		return NULL;
	return prev->leaves + (size_t)i * PROTO_CLIST_IDX_LEAF;
}

int proto_clist_idx_rebuild(uint32_t chunk, const uint8_t *dat, uint32_t n, const uint8_t *prev_dat,
                            uint32_t prev_n, const uint8_t *prev_idx, size_t prev_idx_len,
                            uint8_t **out, size_t *len)
{
	if ((n && !dat) || !out || !len || chunk >= (1u << PROTO_CLIST_MAX_BITS))
		return PROTO_ERR_ARG;
	struct proto_clist_idx prev_parsed, *prev = NULL;
	if (prev_idx && (prev_dat || prev_n == 0) &&
	    proto_clist_idx_parse(prev_idx, prev_idx_len, &prev_parsed) == PROTO_OK &&
	    prev_parsed.chunk == chunk && prev_parsed.entry_count == prev_n)
		prev = &prev_parsed; /* anything else: every leaf hashed */
	size_t size = proto_clist_idx_size(n);
	uint8_t *b = calloc(1, size);
	if (!b)
		return PROTO_ERR_NOMEM;
	memcpy(b, IDX_MAGIC, 4);
	put_be16(b + 4, PROTO_CLIST_FORMAT);
	put_be16(b + 6, (uint16_t)chunk);
	put_be32(b + 8, n);
	struct proto_clist_idx idx = {.chunk = chunk, .entry_count = n, .leaf_count = leaves_of(n)};
	for (uint32_t i = 0; i < idx.leaf_count; i++) {
		uint64_t off;
		size_t l;
		proto_clist_leaf_span(&idx, i, &off, &l);
		uint8_t *rec = b + PROTO_CLIST_IDX_FIXED + (size_t)i * PROTO_CLIST_IDX_LEAF;
		const uint8_t *kept = same_leaf(prev, prev_dat, i, dat, off, l);
		if (kept) {
			memcpy(rec, kept, PROTO_CLIST_IDX_LEAF);
			continue;
		}
		memcpy(rec, dat + off, PROTO_LIST_KEY_LEN);
		proto_sha256(dat + off, l, rec + PROTO_LIST_KEY_LEN);
	}
	*out = b;
	*len = size;
	return PROTO_OK;
}

int proto_clist_idx_parse(const uint8_t *b, size_t len, struct proto_clist_idx *idx)
{
	if (!b || !idx)
		return PROTO_ERR_ARG;
	memset(idx, 0, sizeof(*idx));
	if (len < 4)
		return PROTO_ERR_LIST_TRUNCATED;
	if (memcmp(b, IDX_MAGIC, 4) != 0)
		return PROTO_ERR_LIST_MAGIC;
	if (len < PROTO_CLIST_IDX_FIXED)
		return PROTO_ERR_LIST_TRUNCATED;
	if (get_be16(b + 4) != PROTO_CLIST_FORMAT)
		return PROTO_ERR_LIST_FORMAT;
	idx->chunk = get_be16(b + 6);
	idx->entry_count = get_be32(b + 8);
	if (idx->chunk >= (1u << PROTO_CLIST_MAX_BITS) || !all_zero(b + 12, 4))
		return PROTO_ERR_LIST_FIELD;
	if (idx->entry_count > PROTO_LIST_MAX_ENTRIES)
		return PROTO_ERR_LIST_OVERSIZED;
	idx->leaf_count = leaves_of(idx->entry_count);
	int rc =
	        list_body_check(len - PROTO_CLIST_IDX_FIXED, idx->leaf_count, PROTO_CLIST_IDX_LEAF);
	if (rc)
		return rc;
	idx->leaves = b + PROTO_CLIST_IDX_FIXED;
	for (uint32_t i = 1; i < idx->leaf_count; i++)
		if (memcmp(idx->leaves + (size_t)(i - 1) * PROTO_CLIST_IDX_LEAF,
		           idx->leaves + (size_t)i * PROTO_CLIST_IDX_LEAF, PROTO_LIST_KEY_LEN) >= 0)
			return PROTO_ERR_LIST_ORDER;
	return PROTO_OK;
}

int64_t proto_clist_idx_find(const struct proto_clist_idx *idx,
                             const uint8_t key[PROTO_LIST_KEY_LEN])
{
	/* the last leaf whose first key is <= key */
	uint32_t lo = 0, hi = idx->leaf_count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (memcmp(idx->leaves + (size_t)mid * PROTO_CLIST_IDX_LEAF, key,
		           PROTO_LIST_KEY_LEN) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (int64_t)lo - 1;
}

void proto_clist_leaf_span(const struct proto_clist_idx *idx, uint32_t leaf, uint64_t *off,
                           size_t *len)
{
	uint64_t first = (uint64_t)leaf * PROTO_CLIST_LEAF_ENTRIES;
	uint64_t count = idx->entry_count - first;
	if (count > PROTO_CLIST_LEAF_ENTRIES)
		count = PROTO_CLIST_LEAF_ENTRIES;
	*off = first * PROTO_CLIST_ENTRY_SIZE;
	*len = (size_t)count * PROTO_CLIST_ENTRY_SIZE;
}

int proto_clist_leaf_lookup(const struct proto_clist_idx *idx, uint32_t leaf, const uint8_t *bytes,
                            size_t len, const uint8_t key[PROTO_LIST_KEY_LEN],
                            struct proto_list_entry *e)
{
	uint64_t off;
	size_t want;
	if (leaf >= idx->leaf_count)
		return PROTO_ERR_ARG;
	proto_clist_leaf_span(idx, leaf, &off, &want);
	const uint8_t *rec = idx->leaves + (size_t)leaf * PROTO_CLIST_IDX_LEAF;
	uint8_t hash[PROTO_HASH_LEN];
	if (len != want)
		return PROTO_ERR_LIST_HASH;
	proto_sha256(bytes, len, hash);
	if (memcmp(hash, rec + PROTO_LIST_KEY_LEN, PROTO_HASH_LEN) != 0)
		return PROTO_ERR_LIST_HASH;
	size_t lo = 0, hi = len / PROTO_CLIST_ENTRY_SIZE;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const uint8_t *p = bytes + mid * PROTO_CLIST_ENTRY_SIZE;
		int c = memcmp(p, key, PROTO_LIST_KEY_LEN);
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			proto_clist_entry_decode(p, e);
			return PROTO_OK;
		}
	}
	return PROTO_ERR_LIST_NOT_FOUND;
}

/* --- chunk content ------------------------------------------------------------------- */

int proto_clist_chunk_check(const uint8_t *dat, uint32_t n, unsigned bits, uint32_t chunk,
                            uint16_t profile_count)
{
	if ((n && !dat) || bits > PROTO_CLIST_MAX_BITS)
		return PROTO_ERR_ARG;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = dat + (size_t)i * PROTO_CLIST_ENTRY_SIZE;
		if (i > 0 && memcmp(e - PROTO_CLIST_ENTRY_SIZE, e, PROTO_LIST_KEY_LEN) >= 0)
			return PROTO_ERR_LIST_ORDER;
		if (proto_clist_chunk_of(e, bits) != chunk)
			return PROTO_ERR_LIST_ORDER;
		if ((get_be16(e + 8) & PROTO_CLIST_MAX_PROFILES) >= profile_count)
			return PROTO_ERR_LIST_PROFILE;
	}
	return PROTO_OK;
}

int proto_clist_chunk_apply(const uint8_t *dat, uint32_t n, const uint8_t *ops, uint32_t m,
                            uint8_t **out, uint32_t *out_n)
{
	if ((n && !dat) || (m && !ops) || !out || !out_n)
		return PROTO_ERR_ARG;
	/* First pass over the operations alone: codes, order, and room for the result. */
	uint64_t adds = 0;
	for (uint32_t j = 0; j < m; j++) {
		const uint8_t *op = ops + (size_t)j * PROTO_CLIST_OP_SIZE;
		if (j > 0 && memcmp(op - PROTO_CLIST_OP_SIZE + 1, op + 1, PROTO_LIST_KEY_LEN) >= 0)
			return PROTO_ERR_LIST_ORDER;
		if (op[0] == PROTO_CLIST_OP_ADD)
			adds++;
		else if (op[0] == PROTO_CLIST_OP_REMOVE) {
			/* a removal names a key and nothing else: one encoding per delta */
			if (!all_zero(op + 1 + PROTO_LIST_KEY_LEN,
			              PROTO_CLIST_ENTRY_SIZE - PROTO_LIST_KEY_LEN))
				return PROTO_ERR_DELTA_OP;
		} else if (op[0] != PROTO_CLIST_OP_CHANGE)
			return PROTO_ERR_DELTA_OP;
	}
	if ((uint64_t)n + adds > PROTO_LIST_MAX_ENTRIES)
		return PROTO_ERR_LIST_OVERSIZED;
	size_t cap = (size_t)(n + adds) * PROTO_CLIST_ENTRY_SIZE;
	uint8_t *buf = malloc(cap ? cap : 1), *w = buf;
	if (!buf)
		return PROTO_ERR_NOMEM;
	const uint8_t *e = dat, *e_end = dat + (size_t)n * PROTO_CLIST_ENTRY_SIZE;
	int rc = PROTO_OK;
	for (uint32_t j = 0; j < m; j++) {
		const uint8_t *op = ops + (size_t)j * PROTO_CLIST_OP_SIZE, *oe = op + 1;
		while (e < e_end && memcmp(e, oe, PROTO_LIST_KEY_LEN) < 0) {
			memcpy(w, e, PROTO_CLIST_ENTRY_SIZE);
			w += PROTO_CLIST_ENTRY_SIZE;
			e += PROTO_CLIST_ENTRY_SIZE;
		}
		int present = e < e_end && memcmp(e, oe, PROTO_LIST_KEY_LEN) == 0;
		if (op[0] == PROTO_CLIST_OP_ADD ? present : !present) {
			rc = PROTO_ERR_DELTA_OP;
			break;
		}
		if (present)
			e += PROTO_CLIST_ENTRY_SIZE; /* changed or removed: the old entry goes */
		if (op[0] != PROTO_CLIST_OP_REMOVE) {
			memcpy(w, oe, PROTO_CLIST_ENTRY_SIZE);
			w += PROTO_CLIST_ENTRY_SIZE;
		}
	}
	if (rc) {
		free(buf);
		return rc;
	}
	/* the rest of the base: every add took one slot, so it always fits */
	memcpy(w, e, (size_t)(e_end - e));
	w += e_end - e;
	*out = buf;
	*out_n = (uint32_t)((size_t)(w - buf) / PROTO_CLIST_ENTRY_SIZE);
	return PROTO_OK;
}
