/*
 * Reading a signed list snapshot: open (header and sizes only), verify, look up.
 * Opening never touches the entries, so a 5-million-pass list opens in constant time;
 * verification hashes the whole file once and caches the digest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "list_internal.h"
#include <mbedtls/sha256.h>

#include "proto/error.h"

/* Domain separation: a list key can never equal any other SHA-256 use of an identifier. */
static const char key_domain[] = "citypass list key v1";

void proto_list_key(uint16_t sector, const uint8_t *sector_id, size_t len,
                    uint8_t key[PROTO_LIST_KEY_LEN])
{
	mbedtls_sha256_context ctx;
	uint8_t s[2], h[PROTO_HASH_LEN];
	put_be16(s, sector);
	mbedtls_sha256_init(&ctx);
	(void)mbedtls_sha256_starts_ret(&ctx, 0);
	(void)mbedtls_sha256_update_ret(&ctx, (const uint8_t *)key_domain, sizeof(key_domain));
	(void)mbedtls_sha256_update_ret(&ctx, s, sizeof(s));
	(void)mbedtls_sha256_update_ret(&ctx, sector_id, len);
	(void)mbedtls_sha256_finish_ret(&ctx, h);
	mbedtls_sha256_free(&ctx);
	memcpy(key, h, PROTO_LIST_KEY_LEN);
}

void list_entry_encode(uint8_t out[PROTO_LIST_ENTRY_SIZE], const struct proto_list_entry *e)
{
	memcpy(out, e->key, PROTO_LIST_KEY_LEN);
	put_be16(out + 8, e->profile);
	put_be24(out + 10, e->household);
	out[13] = e->used;
	out[14] = e->used_period;
	out[15] = e->status;
}

void list_entry_decode(const uint8_t in[PROTO_LIST_ENTRY_SIZE], struct proto_list_entry *e)
{
	memcpy(e->key, in, PROTO_LIST_KEY_LEN);
	e->profile = get_be16(in + 8);
	e->household = get_be24(in + 10);
	e->used = in[13];
	e->used_period = in[14];
	e->status = in[15];
}

void list_profile_encode(uint8_t out[PROTO_LIST_PROFILE_SIZE], const struct proto_rights_profile *p)
{
	memset(out, 0, PROTO_LIST_PROFILE_SIZE);
	put_be16(out, p->product);
	put_be16(out + 2, p->valid_from);
	put_be16(out + 4, p->valid_to);
	out[6] = p->limit;
	out[7] = p->period;
	out[8] = p->scope;
	out[9] = p->fare;
	out[10] = p->flags;
}

int list_profile_decode(const uint8_t in[PROTO_LIST_PROFILE_SIZE], struct proto_rights_profile *p)
{
	p->product = get_be16(in);
	p->valid_from = get_be16(in + 2);
	p->valid_to = get_be16(in + 4);
	p->limit = in[6];
	p->period = in[7];
	p->scope = in[8];
	p->fare = in[9];
	p->flags = in[10];
	if (p->period > PROTO_PERIOD_YEAR || p->scope > PROTO_SCOPE_HOUSEHOLD ||
	    p->fare > PROTO_FARE_FREE || (p->flags & ~PROTO_PROFILE_ENTRIES_ON_CARD) ||
	    !all_zero(in + 11, PROTO_LIST_PROFILE_SIZE - 11))
		return PROTO_ERR_LIST_FIELD;
	/* a counter needs a period, and a period without a limit would refuse everyone */
	if ((p->period == PROTO_PERIOD_NONE) != (p->limit == 0))
		return PROTO_ERR_LIST_FIELD;
	return PROTO_OK;
}

void list_header_encode(uint8_t out[PROTO_LIST_HEADER_SIZE], const struct proto_list_header *h)
{
	memset(out, 0, PROTO_LIST_HEADER_SIZE);
	memcpy(out, LIST_MAGIC, 4);
	put_be16(out + 4, h->format);
	put_be16(out + 6, h->sector);
	put_be64(out + 8, h->version);
	put_be64(out + 16, (uint64_t)h->issued_at);
	put_be64(out + 24, (uint64_t)h->expires_at);
	memcpy(out + 32, h->key_id, PROTO_KEY_ID_LEN);
	put_be32(out + 40, h->entry_count);
	put_be16(out + 44, h->profile_count);
	memcpy(out + 48, h->prev_hash, PROTO_HASH_LEN);
}

int list_body_check(size_t have, uint64_t want, size_t size)
{
	if (have % size != 0)
		return have < want * size ? PROTO_ERR_LIST_TRUNCATED : PROTO_ERR_LIST_OVERSIZED;
	if (have / size != want)
		return PROTO_ERR_LIST_COUNT;
	return PROTO_OK;
}

/* Largest file a header may describe; checked before mapping anything. */
#define LIST_MAX_SIZE                                                                              \
	((size_t)PROTO_LIST_HEADER_SIZE +                                                          \
	 (size_t)PROTO_LIST_MAX_PROFILES * PROTO_LIST_PROFILE_SIZE +                               \
	 (size_t)PROTO_LIST_MAX_ENTRIES * PROTO_LIST_ENTRY_SIZE)

static int list_parse(struct proto_list *l)
{
	const uint8_t *b = l->buf;
	struct proto_list_header *h = &l->hdr;

	if (l->len < 4)
		return PROTO_ERR_LIST_TRUNCATED;
	if (memcmp(b, LIST_MAGIC, 4) != 0)
		return PROTO_ERR_LIST_MAGIC;
	if (l->len > LIST_MAX_SIZE)
		return PROTO_ERR_LIST_OVERSIZED;
	if (l->len < PROTO_LIST_HEADER_SIZE)
		return PROTO_ERR_LIST_TRUNCATED;
	h->format = get_be16(b + 4);
	if (h->format != PROTO_LIST_FORMAT)
		return PROTO_ERR_LIST_FORMAT;
	h->sector = get_be16(b + 6);
	h->version = get_be64(b + 8);
	h->issued_at = (int64_t)get_be64(b + 16);
	h->expires_at = (int64_t)get_be64(b + 24);
	memcpy(h->key_id, b + 32, PROTO_KEY_ID_LEN);
	h->entry_count = get_be32(b + 40);
	h->profile_count = get_be16(b + 44);
	memcpy(h->prev_hash, b + 48, PROTO_HASH_LEN);
	if (h->version == 0 || h->expires_at <= h->issued_at || get_be16(b + 46) != 0 ||
	    !all_zero(b + 80, 16))
		return PROTO_ERR_LIST_FIELD;
	if (h->entry_count > PROTO_LIST_MAX_ENTRIES)
		return PROTO_ERR_LIST_OVERSIZED;

	size_t fixed = PROTO_LIST_HEADER_SIZE + (size_t)h->profile_count * PROTO_LIST_PROFILE_SIZE;
	if (l->len < fixed)
		return PROTO_ERR_LIST_TRUNCATED;
	int rc = list_body_check(l->len - fixed, h->entry_count, PROTO_LIST_ENTRY_SIZE);
	if (rc)
		return rc;
	l->profiles = b + PROTO_LIST_HEADER_SIZE;
	l->entries = b + fixed;
	/* The profile table is small (at most 1 MiB): checking it here keeps lookups simple. */
	for (uint32_t i = 0; i < h->profile_count; i++) {
		struct proto_rights_profile p;
		rc = list_profile_decode(l->profiles + (size_t)i * PROTO_LIST_PROFILE_SIZE, &p);
		if (rc)
			return rc;
	}
	return PROTO_OK;
}

int proto_list_open_mem(struct proto_list **out, const uint8_t *buf, size_t len)
{
	if (!out || (!buf && len))
		return PROTO_ERR_ARG;
	struct proto_list *l = calloc(1, sizeof(*l));
	if (!l)
		return PROTO_ERR_NOMEM;
	l->buf = buf;
	l->len = len;
	int rc = list_parse(l);
	if (rc) {
		free(l);
		return rc;
	}
	*out = l;
	return PROTO_OK;
}

int proto_list_open_file(struct proto_list **out, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return PROTO_ERR_IO;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return PROTO_ERR_IO;
	}
	if ((uint64_t)st.st_size > LIST_MAX_SIZE) {
		close(fd);
		return PROTO_ERR_LIST_OVERSIZED;
	}
	if (st.st_size < PROTO_LIST_HEADER_SIZE) {
		close(fd);
		return PROTO_ERR_LIST_TRUNCATED;
	}
	size_t len = (size_t)st.st_size;
	void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return PROTO_ERR_IO;
	/* Lookups touch a few scattered pages: without this hint, from the very first fault
	 * (the header), the kernel's read-ahead pulls megabytes around each one and the
	 * first lookups after boot take tens of ms instead of a fraction of one. */
	(void)madvise(map, len, MADV_RANDOM);
	struct proto_list *l = NULL;
	int rc = proto_list_open_mem(&l, map, len);
	if (rc) {
		munmap(map, len);
		return rc;
	}
	l->map_len = len;
	*out = l;
	return PROTO_OK;
}

void proto_list_close(struct proto_list *list)
{
	if (!list)
		return;
	if (list->map_len)
		munmap((void *)list->buf, list->map_len);
	free(list);
}

const struct proto_list_header *proto_list_header(const struct proto_list *list)
{
	return &list->hdr;
}

const uint8_t *proto_list_bytes(const struct proto_list *list, size_t *len)
{
	if (len)
		*len = list->len;
	return list->buf;
}

const uint8_t *proto_list_hash(struct proto_list *list)
{
	if (!list->hash_ready) {
		/* hashing reads the file front to back once: let read-ahead help, then go back
		 * to the lookup pattern */
		if (list->map_len)
			(void)madvise((void *)list->buf, list->map_len, MADV_SEQUENTIAL);
		proto_sha256(list->buf, list->len, list->hash);
		if (list->map_len)
			(void)madvise((void *)list->buf, list->map_len, MADV_RANDOM);
		list->hash_ready = 1;
	}
	return list->hash;
}

int proto_list_verify(struct proto_list *list, const uint8_t *sig, size_t sig_len,
                      const struct proto_list_policy *policy)
{
	const struct proto_list_header *h = &list->hdr;
	if (!policy)
		return PROTO_ERR_ARG;
	if (h->sector != policy->sector)
		return PROTO_ERR_LIST_SECTOR;
	const struct proto_key *key = proto_keyring_find(policy->keys, h->key_id);
	if (!key)
		return PROTO_ERR_LIST_UNKNOWN_KEY;
	int rc = proto_verify_hash(key, proto_list_hash(list), sig, sig_len);
	if (rc)
		return rc;
	if (policy->now >= h->expires_at)
		return PROTO_ERR_LIST_EXPIRED;
	if (h->version <= policy->held_version)
		return PROTO_ERR_LIST_ROLLBACK;
	return PROTO_OK;
}

int proto_list_check_entries(const struct proto_list *list)
{
	const uint8_t *e = list->entries;
	for (uint32_t i = 0; i < list->hdr.entry_count; i++, e += PROTO_LIST_ENTRY_SIZE) {
		if (i > 0 && memcmp(e - PROTO_LIST_ENTRY_SIZE, e, PROTO_LIST_KEY_LEN) >= 0)
			return PROTO_ERR_LIST_ORDER;
		if (get_be16(e + 8) >= list->hdr.profile_count)
			return PROTO_ERR_LIST_PROFILE;
		if (e[15] > PROTO_STATUS_MAX)
			return PROTO_ERR_LIST_FIELD;
	}
	return PROTO_OK;
}

int proto_list_profile_at(const struct proto_list *list, uint16_t index,
                          struct proto_rights_profile *profile)
{
	if (index >= list->hdr.profile_count)
		return PROTO_ERR_LIST_PROFILE;
	return list_profile_decode(list->profiles + (size_t)index * PROTO_LIST_PROFILE_SIZE,
	                           profile);
}

int proto_list_entry_at(const struct proto_list *list, uint32_t index,
                        struct proto_list_entry *entry)
{
	if (index >= list->hdr.entry_count)
		return PROTO_ERR_ARG;
	list_entry_decode(list->entries + (size_t)index * PROTO_LIST_ENTRY_SIZE, entry);
	return PROTO_OK;
}

static uint64_t key_at(const struct proto_list *list, size_t i)
{
	return get_be64(list->entries + i * PROTO_LIST_ENTRY_SIZE);
}

/* Interpolation steps before plain bisection takes over (see proto_list_lookup). */
#define INTERPOLATION_STEPS 4

int proto_list_lookup(const struct proto_list *list, const uint8_t key[PROTO_LIST_KEY_LEN],
                      struct proto_list_entry *entry, struct proto_rights_profile *profile)
{
	/* Keys are SHA-256 prefixes, so uniform: interpolating the position of the key lands
	 * within ~sqrt(n) entries, then ~n^(1/4), so a 5 M-pass list is searched in 3 or 4
	 * probes instead of bisection's 23. That matters on a gate just after boot, when each
	 * probe is a page fault. Bisection takes over after a few steps, so a list with
	 * skewed keys still costs O(log n), never O(n). */
	const uint64_t want = get_be64(key);
	size_t lo = 0, hi = list->hdr.entry_count; /* the key, if present, is in [lo, hi) */
	int steps = 0;
	while (lo < hi) {
		size_t mid;
		if (steps < INTERPOLATION_STEPS && hi - lo > 16) {
			uint64_t klo = key_at(list, lo), khi = key_at(list, hi - 1);
			if (want < klo || want > khi)
				return PROTO_ERR_LIST_NOT_FOUND;
			double frac = khi > klo ? (double)(want - klo) / (double)(khi - klo) : 0.0;
			mid = lo + (size_t)(frac * (double)(hi - 1 - lo));
			if (mid >= hi) /* rounding */
				mid = hi - 1;
			steps++;
		} else {
			mid = lo + (hi - lo) / 2;
		}
		const uint8_t *e = list->entries + mid * PROTO_LIST_ENTRY_SIZE;
		uint64_t k = get_be64(e);
		if (k < want) {
			lo = mid + 1;
		} else if (k > want) {
			hi = mid;
		} else {
			list_entry_decode(e, entry);
			if (entry->status > PROTO_STATUS_MAX)
				return PROTO_ERR_LIST_FIELD;
			if (entry->profile >= list->hdr.profile_count)
				return PROTO_ERR_LIST_PROFILE;
			return profile ? proto_list_profile_at(list, entry->profile, profile)
			               : PROTO_OK;
		}
	}
	return PROTO_ERR_LIST_NOT_FOUND;
}
