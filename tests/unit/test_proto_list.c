/*
 * Signed list snapshots: layout, lookup, and every refusal a gate makes. Each refusal
 * test builds a list that is valid in every other respect (often re-signed after the
 * change), so that it fails if that one check is removed.
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "list_fixture.h"
#include "list_internal.h"
#include "proto/error.h"

#define N 3000

struct ctx {
	struct list_fixture f;
	struct proto_list_entry e[N];
	struct built_list l;
	struct proto_list_policy policy;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	fixture_init(&c->f);
	fixture_entries(c->e, N, 1);
	fixture_build(&c->f, 5, NULL, c->e, N, &c->l);
	c->policy = (struct proto_list_policy){
	        .sector = FIXTURE_SECTOR,
	        .held_version = 4,
	        .now = FIXTURE_ISSUED + 60,
	        .keys = c->f.ring,
	};
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	free(c->l.buf);
	fixture_free(&c->f);
	free(c);
	return 0;
}

/* Open a (possibly altered) copy and verify it under the context's policy. */
static int open_verify(struct ctx *c, const uint8_t *buf, size_t len, const uint8_t *sig,
                       size_t sig_len)
{
	struct proto_list *l = NULL;
	int rc = proto_list_open_mem(&l, buf, len);
	if (rc)
		return rc;
	rc = proto_list_verify(l, sig, sig_len, &c->policy);
	proto_list_close(l);
	return rc;
}

/* Offsets of profile i and entry i in the context's list (3 profiles). */
#define PROFILE_AT(i) (PROTO_LIST_HEADER_SIZE + (size_t)PROTO_LIST_PROFILE_SIZE * (i))
#define ENTRY_AT(i)                                                                                \
	(PROTO_LIST_HEADER_SIZE + FIXTURE_PROFILE_COUNT * PROTO_LIST_PROFILE_SIZE +                \
	 (size_t)PROTO_LIST_ENTRY_SIZE * (i))

/* An exact-size heap copy of the context's list: ASan sees any read past its end. */
static uint8_t *list_copy(const struct ctx *c, size_t len)
{
	uint8_t *copy = malloc(len);
	assert_non_null(copy);
	memcpy(copy, c->l.buf, len < c->l.len ? len : c->l.len);
	return copy;
}

/* Re-sign an altered copy, then open and verify it: only the alteration can refuse it. */
static int resign_open_verify(struct ctx *c, const uint8_t *buf, size_t len)
{
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	fixture_resign(&c->f, buf, len, sig, &sig_len);
	return open_verify(c, buf, len, sig, sig_len);
}

/* The context's list with the byte at `at` set to `value`, re-signed, opened, verified. */
static int with_byte(struct ctx *c, size_t at, uint8_t value)
{
	uint8_t *copy = list_copy(c, c->l.len);
	copy[at] = value;
	int rc = resign_open_verify(c, copy, c->l.len);
	free(copy);
	return rc;
}

static void test_valid_list_verifies_and_finds_every_pass(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, c->l.len), 0);
	assert_int_equal(proto_list_verify(l, c->l.sig, c->l.sig_len, &c->policy), 0);
	assert_int_equal(proto_list_check_entries(l), 0);
	const struct proto_list_header *h = proto_list_header(l);
	assert_int_equal(h->entry_count, N);
	assert_int_equal(h->version, 5);

	struct proto_list_entry e[N];
	fixture_entries(e, N, 1); /* same passes, in creation order */
	for (size_t i = 0; i < N; i++) {
		struct proto_list_entry got;
		struct proto_rights_profile prof;
		assert_int_equal(proto_list_lookup(l, e[i].key, &got, &prof), 0);
		assert_memory_equal(got.key, e[i].key, PROTO_LIST_KEY_LEN);
		assert_int_equal(got.profile, e[i].profile);
		assert_int_equal(got.household, e[i].household);
		assert_int_equal(got.used, e[i].used);
		assert_int_equal(got.used_period, e[i].used_period);
		assert_int_equal(got.status, e[i].status);
		assert_int_equal(prof.product, fixture_profiles[e[i].profile].product);
		assert_int_equal(prof.limit, fixture_profiles[e[i].profile].limit);
	}
	/* passes of another batch are not in the list */
	struct proto_list_entry other[50];
	fixture_entries(other, 50, 2);
	for (size_t i = 0; i < 50; i++) {
		struct proto_list_entry got;
		assert_int_equal(proto_list_lookup(l, other[i].key, &got, NULL),
		                 PROTO_ERR_LIST_NOT_FOUND);
	}
	proto_list_close(l);
}

/* The layout of docs/list-format.md, written out by hand: 16 bytes per pass, big-endian. */
static void test_entry_layout_matches_the_documented_format(void **state)
{
	struct ctx *c = *state;
	struct proto_list_entry one = {
	        .key = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08},
	        .profile = 0x0002,
	        .household = 0x030405,
	        .used = 0x06,
	        .used_period = 0x07,
	        .status = PROTO_STATUS_SUSPENDED,
	};
	struct built_list b;
	fixture_build(&c->f, 9, NULL, &one, 1, &b);
	static const uint8_t want_entry[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	                                       0x00, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x03};
	static const uint8_t want_profile2[16] = {0x00, 30, 0x00, 0x00, 0xff, 0xff, 24, 5,
	                                          1,    1,  0,    0,    0,    0,    0,  0};
	assert_int_equal(b.len, 96 + 3 * 16 + 16);
	assert_memory_equal(b.buf, "CPLS\x00\x01\x00\x07", 8);
	assert_memory_equal(b.buf + 8, "\x00\x00\x00\x00\x00\x00\x00\x09", 8);
	assert_memory_equal(b.buf + 40, "\x00\x00\x00\x01\x00\x03", 6);
	assert_memory_equal(b.buf + 96 + 2 * 16, want_profile2, 16);
	assert_memory_equal(b.buf + 96 + 3 * 16, want_entry, 16);
	free(b.buf);
	/* and at scale: exactly 16 bytes per pass plus the fixed part */
	assert_int_equal(c->l.len, PROTO_LIST_HEADER_SIZE + 3 * PROTO_LIST_PROFILE_SIZE + N * 16);
}

static void test_build_sorts_and_refuses_duplicates(void **state)
{
	struct ctx *c = *state;
	struct proto_list_entry e[4];
	fixture_entries(e, 4, 3);
	struct proto_list *l = NULL;
	struct built_list b;
	fixture_build(&c->f, 1, NULL, e, 4, &b);
	assert_int_equal(proto_list_open_mem(&l, b.buf, b.len), 0);
	assert_int_equal(proto_list_check_entries(l), 0);
	proto_list_close(l);
	free(b.buf);

	struct proto_list_params p = {.sector = 7, .version = 1, .issued_at = 1, .expires_at = 2};
	uint8_t *out = NULL;
	size_t len = 0;
	memcpy(e[3].key, e[1].key, PROTO_LIST_KEY_LEN);
	assert_int_equal(proto_list_build(&p, c->f.signer, fixture_profiles, 3, e, 4, &out, &len),
	                 PROTO_ERR_LIST_ORDER);
	assert_null(out);
	fixture_entries(e, 4, 3);
	e[2].profile = 3; /* no such profile */
	assert_int_equal(proto_list_build(&p, c->f.signer, fixture_profiles, 3, e, 4, &out, &len),
	                 PROTO_ERR_LIST_PROFILE);
}

static void test_refuses_bad_signature(void **state)
{
	struct ctx *c = *state;
	uint8_t *copy = malloc(c->l.len);
	memcpy(copy, c->l.buf, c->l.len);
	copy[c->l.len - 5] ^= 0x01; /* one pass's status bit: a revocation lifted */
	assert_int_equal(open_verify(c, copy, c->l.len, c->l.sig, c->l.sig_len),
	                 PROTO_ERR_LIST_SIGNATURE);
	free(copy);
	uint8_t sig[PROTO_SIG_MAX];
	memcpy(sig, c->l.sig, c->l.sig_len);
	sig[10] ^= 0x40;
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, sig, c->l.sig_len),
	                 PROTO_ERR_LIST_SIGNATURE);
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len), 0);
}

static void test_refuses_unknown_key_id(void **state)
{
	struct ctx *c = *state;
	struct list_fixture other;
	fixture_init(&other);
	struct proto_list_entry e[10];
	fixture_entries(e, 10, 4);
	struct built_list b;
	fixture_build(&other, 6, NULL, e, 10, &b);
	/* validly signed, but by a key the gate does not trust */
	assert_int_equal(open_verify(c, b.buf, b.len, b.sig, b.sig_len),
	                 PROTO_ERR_LIST_UNKNOWN_KEY);

	/* key rotation: once the new key is in the keyring, its lists verify */
	char pem[512];
	struct proto_key *pub = NULL;
	struct proto_keyring *ring = proto_keyring_new();
	assert_int_equal(proto_key_public_pem(c->f.signer, pem, sizeof(pem)), 0);
	assert_int_equal(proto_key_parse_public(&pub, (uint8_t *)pem, strlen(pem)), 0);
	assert_int_equal(proto_keyring_add(ring, pub), 0);
	proto_key_free(pub);
	assert_int_equal(proto_key_public_pem(other.signer, pem, sizeof(pem)), 0);
	assert_int_equal(proto_key_parse_public(&pub, (uint8_t *)pem, strlen(pem)), 0);
	assert_int_equal(proto_keyring_add(ring, pub), 0);
	proto_key_free(pub);
	struct proto_list_policy p = c->policy;
	p.keys = ring;
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, b.buf, b.len), 0);
	assert_int_equal(proto_list_verify(l, b.sig, b.sig_len, &p), 0);
	proto_list_close(l);

	/* a list whose key id names the trusted key but is signed by another is a bad
	 * signature, not an unknown key */
	uint8_t *copy = malloc(c->l.len);
	memcpy(copy, c->l.buf, c->l.len);
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	fixture_resign(&other, copy, c->l.len, sig, &sig_len);
	assert_int_equal(open_verify(c, copy, c->l.len, sig, sig_len), PROTO_ERR_LIST_SIGNATURE);
	free(copy);
	free(b.buf);
	proto_keyring_free(ring);
	fixture_free(&other);
}

static void test_refuses_rollback(void **state)
{
	struct ctx *c = *state;
	c->policy.held_version = 5; /* the same version again */
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len),
	                 PROTO_ERR_LIST_ROLLBACK);
	c->policy.held_version = 9; /* an older one */
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len),
	                 PROTO_ERR_LIST_ROLLBACK);
	c->policy.held_version = 4;
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len), 0);
	c->policy.held_version = 0; /* re-checking the list held, e.g. at start-up */
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len), 0);
}

static void test_refuses_expired_list(void **state)
{
	struct ctx *c = *state;
	c->policy.now = FIXTURE_EXPIRES - 1;
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len), 0);
	c->policy.now = FIXTURE_EXPIRES;
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len),
	                 PROTO_ERR_LIST_EXPIRED);
	c->policy.now = FIXTURE_EXPIRES + 86400 * 365;
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len),
	                 PROTO_ERR_LIST_EXPIRED);
}

static void test_refuses_other_sector(void **state)
{
	struct ctx *c = *state;
	c->policy.sector = FIXTURE_SECTOR + 1; /* a library gate offered the pool's list */
	assert_int_equal(open_verify(c, c->l.buf, c->l.len, c->l.sig, c->l.sig_len),
	                 PROTO_ERR_LIST_SECTOR);
}

static void test_refuses_truncated(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	/* cut inside the last entry */
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, c->l.len - 5), PROTO_ERR_LIST_TRUNCATED);
	/* cut inside the header, inside the profiles, and almost empty */
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, 50), PROTO_ERR_LIST_TRUNCATED);
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, 100), PROTO_ERR_LIST_TRUNCATED);
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, 2), PROTO_ERR_LIST_TRUNCATED);
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, 0), PROTO_ERR_LIST_TRUNCATED);
	assert_null(l);
}

static void test_refuses_oversized(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	uint8_t *copy = calloc(1, c->l.len + 7);
	memcpy(copy, c->l.buf, c->l.len);
	/* trailing bytes that are not a whole entry */
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len + 7), PROTO_ERR_LIST_OVERSIZED);
	/* a header claiming more passes than any list may hold */
	put_be32(copy + 40, PROTO_LIST_MAX_ENTRIES + 1);
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), PROTO_ERR_LIST_OVERSIZED);
	free(copy);
	assert_null(l);
}

static void test_refuses_oversized_file_before_mapping(void **state)
{
	struct ctx *c = *state;
	char path[] = "/tmp/citypass-list-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, c->l.buf, 96), 96);
	/* sparse: claims 2 GiB without using the disk */
	assert_int_equal(ftruncate(fd, 2LL * 1024 * 1024 * 1024), 0);
	close(fd);
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_file(&l, path), PROTO_ERR_LIST_OVERSIZED);
	unlink(path);
	assert_int_equal(proto_list_open_file(&l, path), PROTO_ERR_IO);

	/* 2 GiB still maps on 64 bits, so the size could be checked after mapping too: a file
	 * larger than any address space (a sparse memfd) cannot be mapped at all, and only a
	 * check made before mapping calls it oversized rather than an I/O error */
	int mfd = memfd_create("citypass-huge-list", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(write(mfd, c->l.buf, 96), 96);
	assert_int_equal(ftruncate(mfd, (off_t)1 << 62), 0);
	char fd_path[64];
	snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d", mfd);
	assert_int_equal(proto_list_open_file(&l, fd_path), PROTO_ERR_LIST_OVERSIZED);
	close(mfd);
	assert_null(l);
}

static void test_refuses_entry_count_mismatch(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	/* one whole entry missing */
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, c->l.len - 16), PROTO_ERR_LIST_COUNT);
	/* one whole entry too many */
	uint8_t *copy = calloc(1, c->l.len + 16);
	memcpy(copy, c->l.buf, c->l.len);
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len + 16), PROTO_ERR_LIST_COUNT);
	/* header count changed and re-signed: the signature is fine, the count is not */
	memcpy(copy, c->l.buf, c->l.len);
	put_be32(copy + 40, N - 1);
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	fixture_resign(&c->f, copy, c->l.len, sig, &sig_len);
	assert_int_equal(open_verify(c, copy, c->l.len, sig, sig_len), PROTO_ERR_LIST_COUNT);
	free(copy);
}

static void test_refuses_wrong_magic_format_and_fields(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	uint8_t *copy = malloc(c->l.len);
	memcpy(copy, c->l.buf, c->l.len);
	copy[3] = 'D';
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), PROTO_ERR_LIST_MAGIC);
	memcpy(copy, c->l.buf, c->l.len);
	put_be16(copy + 4, 2);
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), PROTO_ERR_LIST_FORMAT);
	memcpy(copy, c->l.buf, c->l.len);
	put_be64(copy + 8, 0); /* version 0 is "no list" */
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), PROTO_ERR_LIST_FIELD);
	memcpy(copy, c->l.buf, c->l.len);
	/* profile 1 (which has a limit, so the period/limit rule holds) with an unknown period */
	copy[PROFILE_AT(1) + 7] = 9;
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), PROTO_ERR_LIST_FIELD);
	free(copy);
}

static void test_entry_checks_catch_disorder_and_bad_profiles(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	uint8_t *copy = malloc(c->l.len);
	const size_t first = PROTO_LIST_HEADER_SIZE + 3 * PROTO_LIST_PROFILE_SIZE;
	uint8_t tmp[16];

	memcpy(copy, c->l.buf, c->l.len);
	memcpy(tmp, copy + first, 16); /* swap the first two entries */
	memcpy(copy + first, copy + first + 16, 16);
	memcpy(copy + first + 16, tmp, 16);
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), 0);
	assert_int_equal(proto_list_check_entries(l), PROTO_ERR_LIST_ORDER);
	proto_list_close(l);

	memcpy(copy, c->l.buf, c->l.len);
	put_be16(copy + first + 16 * 10 + 8, 3); /* entry 10 names profile 3 of 3 */
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), 0);
	assert_int_equal(proto_list_check_entries(l), PROTO_ERR_LIST_PROFILE);
	struct proto_list_entry e;
	assert_int_equal(proto_list_lookup(l, copy + first + 16 * 10, &e, NULL),
	                 PROTO_ERR_LIST_PROFILE);
	proto_list_close(l);
	free(copy);
}

static void test_open_file_maps_and_looks_up(void **state)
{
	struct ctx *c = *state;
	char path[] = "/tmp/citypass-list-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, c->l.buf, c->l.len), (ssize_t)c->l.len);
	close(fd);
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_file(&l, path), 0);
	assert_int_equal(proto_list_verify(l, c->l.sig, c->l.sig_len, &c->policy), 0);
	struct proto_list_entry got;
	assert_int_equal(proto_list_lookup(l, c->e[N / 2].key, &got, NULL), 0);
	assert_memory_equal(got.key, c->e[N / 2].key, PROTO_LIST_KEY_LEN);
	proto_list_close(l);
	unlink(path);
}

/* Keys far from uniform (a dense run, then a few huge ones) must still all be found:
 * the search may not rely on keys being hashes for correctness, only for speed. */
static void test_lookup_with_skewed_keys(void **state)
{
	struct ctx *c = *state;
	enum { SKEWED = 5000 };
	struct proto_list_entry *e = calloc(SKEWED, sizeof(*e));
	for (size_t i = 0; i < SKEWED; i++) {
		uint64_t k =
		        i < SKEWED - 5 ? 3 * (uint64_t)i + 1 : UINT64_MAX - (SKEWED - i) * 1000;
		put_be64(e[i].key, k);
	}
	struct built_list b;
	fixture_build(&c->f, 6, NULL, e, SKEWED, &b);
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, b.buf, b.len), 0);
	for (size_t i = 0; i < SKEWED; i++) {
		struct proto_list_entry got;
		uint8_t key[PROTO_LIST_KEY_LEN];
		uint64_t k =
		        i < SKEWED - 5 ? 3 * (uint64_t)i + 1 : UINT64_MAX - (SKEWED - i) * 1000;
		put_be64(key, k);
		assert_int_equal(proto_list_lookup(l, key, &got, NULL), 0);
		assert_memory_equal(got.key, key, PROTO_LIST_KEY_LEN);
		put_be64(key, k + 1); /* between two keys */
		assert_int_equal(proto_list_lookup(l, key, &got, NULL), PROTO_ERR_LIST_NOT_FOUND);
	}
	uint8_t zero[PROTO_LIST_KEY_LEN] = {0}, max[PROTO_LIST_KEY_LEN];
	struct proto_list_entry got;
	memset(max, 0xff, sizeof(max));
	assert_int_equal(proto_list_lookup(l, zero, &got, NULL), PROTO_ERR_LIST_NOT_FOUND);
	assert_int_equal(proto_list_lookup(l, max, &got, NULL), PROTO_ERR_LIST_NOT_FOUND);
	proto_list_close(l);
	free(b.buf);
	free(e);
}

static void test_empty_list_is_valid(void **state)
{
	struct ctx *c = *state;
	struct built_list b;
	fixture_build(&c->f, 6, NULL, NULL, 0, &b);
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, b.buf, b.len), 0);
	assert_int_equal(proto_list_verify(l, b.sig, b.sig_len, &c->policy), 0);
	struct proto_list_entry got;
	assert_int_equal(proto_list_lookup(l, c->e[0].key, &got, NULL), PROTO_ERR_LIST_NOT_FOUND);
	proto_list_close(l);
	free(b.buf);
}

static void test_every_error_has_its_own_message(void **state)
{
	(void)state;
	for (int a = 0; a >= -60; a--)
		for (int b = a - 1; b >= -60; b--) {
			const char *ma = proto_strerror(a), *mb = proto_strerror(b);
			if (strcmp(ma, "unknown proto error") && strcmp(mb, "unknown proto error"))
				assert_string_not_equal(ma, mb);
		}
	assert_string_equal(proto_strerror(PROTO_ERR_LIST_ROLLBACK),
	                    "list version is not newer than the one held (rollback)");
}

/* Profile 1 counts 10 entries over the pass's life: changing its period alone keeps the
 * period/limit rule satisfied, so only the range check can refuse it. */
static void test_refuses_profile_with_unknown_period_scope_fare_or_flags(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(with_byte(c, PROFILE_AT(1) + 7, PROTO_PERIOD_YEAR + 1),
	                 PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, PROFILE_AT(1) + 7, PROTO_PERIOD_YEAR), 0);
	assert_int_equal(with_byte(c, PROFILE_AT(0) + 8, PROTO_SCOPE_HOUSEHOLD + 1),
	                 PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, PROFILE_AT(0) + 8, PROTO_SCOPE_HOUSEHOLD), 0);
	assert_int_equal(with_byte(c, PROFILE_AT(0) + 9, PROTO_FARE_FREE + 1),
	                 PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, PROFILE_AT(0) + 9, PROTO_FARE_FREE), 0);
	/* a flag this gate does not know could change what a pass may do: refuse */
	assert_int_equal(with_byte(c, PROFILE_AT(1) + 10, PROTO_PROFILE_ENTRIES_ON_CARD | 0x02),
	                 PROTO_ERR_LIST_FIELD);
}

static void test_refuses_profile_with_nonzero_reserved_bytes(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(with_byte(c, PROFILE_AT(0) + 11, 1), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, PROFILE_AT(2) + 15, 1), PROTO_ERR_LIST_FIELD);
}

/* A counter needs a period, and a period without a limit would refuse every pass. */
static void test_refuses_limit_without_period_and_period_without_limit(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(with_byte(c, PROFILE_AT(0) + 6, 5), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, PROFILE_AT(1) + 6, 0), PROTO_ERR_LIST_FIELD);
}

/* Exact-size buffers: the magic may not be read before the length is known to cover it. */
static void test_refuses_list_shorter_than_its_magic(void **state)
{
	(void)state;
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, NULL, 0), PROTO_ERR_LIST_TRUNCATED);
	uint8_t *three = malloc(3);
	memcpy(three, "CPL", 3);
	assert_int_equal(proto_list_open_mem(&l, three, 3), PROTO_ERR_LIST_TRUNCATED);
	free(three);
	assert_null(l);
}

/* The existing truncation test cuts a longer buffer; here the header fields may not be read
 * past the end of an exact-size one. */
static void test_refuses_header_cut_short_without_reading_past_it(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	uint8_t *cut = list_copy(c, 50);
	assert_int_equal(proto_list_open_mem(&l, cut, 50), PROTO_ERR_LIST_TRUNCATED);
	free(cut);
	cut = list_copy(c, PROTO_LIST_HEADER_SIZE - 1);
	assert_int_equal(proto_list_open_mem(&l, cut, PROTO_LIST_HEADER_SIZE - 1),
	                 PROTO_ERR_LIST_TRUNCATED);
	free(cut);
	assert_null(l);
}

static void test_refuses_list_larger_than_the_format_allows(void **state)
{
	struct ctx *c = *state;
	/* the largest list a header can describe: 65535 profiles and 64 Mi passes */
	const size_t max = PROTO_LIST_HEADER_SIZE +
	                   (size_t)PROTO_LIST_MAX_PROFILES * PROTO_LIST_PROFILE_SIZE +
	                   (size_t)PROTO_LIST_MAX_ENTRIES * PROTO_LIST_ENTRY_SIZE;
	const size_t map_len = max + PROTO_LIST_ENTRY_SIZE;
	/* reserved, not backed: only the pages the list is copied to cost memory */
	uint8_t *m = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(m != MAP_FAILED);
	memcpy(m, c->l.buf, c->l.len);
	struct proto_list *l = NULL;
	/* one entry over the limit: refused for its size, before the counts are compared */
	assert_int_equal(proto_list_open_mem(&l, m, max + PROTO_LIST_ENTRY_SIZE),
	                 PROTO_ERR_LIST_OVERSIZED);
	/* at the limit the size is allowed, and the body is judged against the header */
	assert_int_equal(proto_list_open_mem(&l, m, max), PROTO_ERR_LIST_COUNT);
	assert_null(l);
	munmap(m, map_len);
}

static void test_refuses_expiry_not_after_issue(void **state)
{
	struct ctx *c = *state;
	uint8_t *copy = list_copy(c, c->l.len);
	put_be64(copy + 24, FIXTURE_ISSUED); /* expires the instant it is issued */
	assert_int_equal(resign_open_verify(c, copy, c->l.len), PROTO_ERR_LIST_FIELD);
	put_be64(copy + 24, FIXTURE_ISSUED - 1);
	assert_int_equal(resign_open_verify(c, copy, c->l.len), PROTO_ERR_LIST_FIELD);
	free(copy);
}

/* Reserved bytes must be zero, so that a later format can give them a meaning. */
static void test_refuses_nonzero_reserved_header_bytes(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(with_byte(c, 46, 1), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, 47, 1), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, 80, 1), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, 95, 1), PROTO_ERR_LIST_FIELD);
}

static void test_open_mem_refuses_null_arguments(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(NULL, c->l.buf, c->l.len), PROTO_ERR_ARG);
	assert_int_equal(proto_list_open_mem(&l, NULL, c->l.len), PROTO_ERR_ARG);
	assert_null(l);
}

/* An empty file cannot be mapped at all: it must be refused as truncated, not as an I/O
 * error, before mapping is tried. */
static void test_open_file_refuses_empty_file(void **state)
{
	(void)state;
	char path[] = "/tmp/citypass-list-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_file(&l, path), PROTO_ERR_LIST_TRUNCATED);
	assert_null(l);
	unlink(path);
}

static void test_verify_refuses_null_policy(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, c->l.len), 0);
	assert_int_equal(proto_list_verify(l, c->l.sig, c->l.sig_len, NULL), PROTO_ERR_ARG);
	proto_list_close(l);
}

/* Two passes with one key would make a lookup's answer depend on where the search lands. */
static void test_check_entries_refuses_duplicate_keys(void **state)
{
	struct ctx *c = *state;
	uint8_t *copy = list_copy(c, c->l.len);
	memcpy(copy + ENTRY_AT(1), copy + ENTRY_AT(0), PROTO_LIST_KEY_LEN);
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	fixture_resign(&c->f, copy, c->l.len, sig, &sig_len);
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), 0);
	assert_int_equal(proto_list_verify(l, sig, sig_len, &c->policy), 0);
	assert_int_equal(proto_list_check_entries(l), PROTO_ERR_LIST_ORDER);
	proto_list_close(l);
	free(copy);
}

/* A status this gate does not know is refused at install and at lookup, never read as
 * "active". */
static void test_refuses_entry_with_unknown_status(void **state)
{
	struct ctx *c = *state;
	uint8_t *copy = list_copy(c, c->l.len);
	copy[ENTRY_AT(10) + 15] = PROTO_STATUS_MAX + 1;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	fixture_resign(&c->f, copy, c->l.len, sig, &sig_len);
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, copy, c->l.len), 0);
	assert_int_equal(proto_list_verify(l, sig, sig_len, &c->policy), 0);
	assert_int_equal(proto_list_check_entries(l), PROTO_ERR_LIST_FIELD);
	struct proto_list_entry e;
	assert_int_equal(proto_list_lookup(l, copy + ENTRY_AT(10), &e, NULL), PROTO_ERR_LIST_FIELD);
	/* its neighbours are still found */
	assert_int_equal(proto_list_lookup(l, copy + ENTRY_AT(11), &e, NULL), 0);
	proto_list_close(l);
	free(copy);
}

static void test_profile_at_refuses_index_past_the_table(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	struct proto_rights_profile p;
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, c->l.len), 0);
	assert_int_equal(proto_list_profile_at(l, FIXTURE_PROFILE_COUNT - 1, &p), 0);
	assert_int_equal(p.product, fixture_profiles[FIXTURE_PROFILE_COUNT - 1].product);
	assert_int_equal(proto_list_profile_at(l, FIXTURE_PROFILE_COUNT, &p),
	                 PROTO_ERR_LIST_PROFILE);
	assert_int_equal(proto_list_profile_at(l, UINT16_MAX, &p), PROTO_ERR_LIST_PROFILE);
	proto_list_close(l);
}

static void test_entry_at_refuses_index_past_the_end(void **state)
{
	struct ctx *c = *state;
	struct proto_list *l = NULL;
	struct proto_list_entry e;
	assert_int_equal(proto_list_open_mem(&l, c->l.buf, c->l.len), 0);
	assert_int_equal(proto_list_entry_at(l, N - 1, &e), 0);
	assert_memory_equal(e.key, c->l.buf + ENTRY_AT(N - 1), PROTO_LIST_KEY_LEN);
	assert_int_equal(proto_list_entry_at(l, N, &e), PROTO_ERR_ARG);
	proto_list_close(l);
}

/* Build with the context's signer; on failure nothing may be returned. */
static int try_build(struct ctx *c, const struct proto_list_params *p,
                     const struct proto_rights_profile *profiles, size_t profile_count,
                     struct proto_list_entry *e, size_t n)
{
	uint8_t *out = NULL;
	size_t len = 0;
	int rc = proto_list_build(p, c->f.signer, profiles, profile_count, e, n, &out, &len);
	if (rc)
		assert_null(out);
	free(out);
	return rc;
}

static const struct proto_list_params valid_params = {
        .sector = FIXTURE_SECTOR,
        .version = 1,
        .issued_at = FIXTURE_ISSUED,
        .expires_at = FIXTURE_EXPIRES,
};

/* The builder is the format's only writer: it refuses whatever a gate would refuse. */
static void test_build_refuses_bad_header_fields(void **state)
{
	struct ctx *c = *state;
	struct proto_list_entry e[4];
	fixture_entries(e, 4, 5);
	struct proto_list_params p = valid_params;
	assert_int_equal(try_build(c, &p, fixture_profiles, FIXTURE_PROFILE_COUNT, e, 4), 0);
	p.version = 0;
	assert_int_equal(try_build(c, &p, fixture_profiles, FIXTURE_PROFILE_COUNT, e, 4),
	                 PROTO_ERR_LIST_FIELD);
	p = valid_params;
	p.expires_at = p.issued_at;
	assert_int_equal(try_build(c, &p, fixture_profiles, FIXTURE_PROFILE_COUNT, e, 4),
	                 PROTO_ERR_LIST_FIELD);
}

static void test_build_refuses_bad_entry_fields(void **state)
{
	struct ctx *c = *state;
	struct proto_list_entry e[4];
	fixture_entries(e, 4, 5);
	e[2].status = PROTO_STATUS_MAX + 1;
	assert_int_equal(try_build(c, &valid_params, fixture_profiles, FIXTURE_PROFILE_COUNT, e, 4),
	                 PROTO_ERR_LIST_FIELD);
	fixture_entries(e, 4, 5);
	e[2].household = PROTO_LIST_HOUSEHOLD_MAX; /* the largest 24-bit tag is fine */
	assert_int_equal(try_build(c, &valid_params, fixture_profiles, FIXTURE_PROFILE_COUNT, e, 4),
	                 0);
	e[2].household = PROTO_LIST_HOUSEHOLD_MAX + 1; /* would be cut to 0, "no household" */
	assert_int_equal(try_build(c, &valid_params, fixture_profiles, FIXTURE_PROFILE_COUNT, e, 4),
	                 PROTO_ERR_LIST_FIELD);
}

static void test_build_refuses_bad_profile(void **state)
{
	struct ctx *c = *state;
	struct proto_list_entry e[4];
	struct proto_rights_profile prof[FIXTURE_PROFILE_COUNT];
	fixture_entries(e, 4, 5);
	memcpy(prof, fixture_profiles, sizeof(prof));
	prof[1].period = PROTO_PERIOD_YEAR + 1; /* still with a limit: only the range is wrong */
	assert_int_equal(try_build(c, &valid_params, prof, FIXTURE_PROFILE_COUNT, e, 4),
	                 PROTO_ERR_LIST_FIELD);
}

static void test_build_refuses_counts_beyond_the_format(void **state)
{
	struct ctx *c = *state;
	struct proto_list_entry e[4];
	fixture_entries(e, 4, 5);
	/* 65536 valid profiles: the 16-bit count would wrap to 0 */
	const size_t many = (size_t)PROTO_LIST_MAX_PROFILES + 1;
	struct proto_rights_profile *prof = calloc(many, sizeof(*prof));
	assert_int_equal(try_build(c, &valid_params, prof, many - 1, e, 4), 0);
	assert_int_equal(try_build(c, &valid_params, prof, many, e, 4), PROTO_ERR_LIST_OVERSIZED);
	free(prof);
	/* the array is short: a builder that did not refuse first would read past it (ASan) */
	assert_int_equal(try_build(c, &valid_params, fixture_profiles, FIXTURE_PROFILE_COUNT, e,
	                           (size_t)PROTO_LIST_MAX_ENTRIES + 1),
	                 PROTO_ERR_LIST_OVERSIZED);
}

static void test_build_refuses_null_arguments(void **state)
{
	struct ctx *c = *state;
	struct proto_list_entry e[4];
	uint8_t *out = NULL;
	size_t len = 0;
	fixture_entries(e, 4, 5);
	assert_int_equal(proto_list_build(NULL, c->f.signer, fixture_profiles,
	                                  FIXTURE_PROFILE_COUNT, e, 4, &out, &len),
	                 PROTO_ERR_ARG);
	assert_int_equal(proto_list_build(&valid_params, NULL, fixture_profiles,
	                                  FIXTURE_PROFILE_COUNT, e, 4, &out, &len),
	                 PROTO_ERR_ARG);
	assert_int_equal(proto_list_build(&valid_params, c->f.signer, NULL, FIXTURE_PROFILE_COUNT,
	                                  e, 4, &out, &len),
	                 PROTO_ERR_ARG);
	assert_int_equal(proto_list_build(&valid_params, c->f.signer, fixture_profiles,
	                                  FIXTURE_PROFILE_COUNT, NULL, 4, &out, &len),
	                 PROTO_ERR_ARG);
	assert_int_equal(proto_list_build(&valid_params, c->f.signer, fixture_profiles,
	                                  FIXTURE_PROFILE_COUNT, e, 4, NULL, &len),
	                 PROTO_ERR_ARG);
	assert_null(out);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_valid_list_verifies_and_finds_every_pass),
	        T(test_entry_layout_matches_the_documented_format),
	        T(test_build_sorts_and_refuses_duplicates),
	        T(test_refuses_bad_signature),
	        T(test_refuses_unknown_key_id),
	        T(test_refuses_rollback),
	        T(test_refuses_expired_list),
	        T(test_refuses_other_sector),
	        T(test_refuses_truncated),
	        T(test_refuses_oversized),
	        T(test_refuses_oversized_file_before_mapping),
	        T(test_refuses_entry_count_mismatch),
	        T(test_refuses_wrong_magic_format_and_fields),
	        T(test_entry_checks_catch_disorder_and_bad_profiles),
	        T(test_open_file_maps_and_looks_up),
	        T(test_lookup_with_skewed_keys),
	        T(test_empty_list_is_valid),
	        T(test_every_error_has_its_own_message),
	        T(test_refuses_profile_with_unknown_period_scope_fare_or_flags),
	        T(test_refuses_profile_with_nonzero_reserved_bytes),
	        T(test_refuses_limit_without_period_and_period_without_limit),
	        T(test_refuses_list_shorter_than_its_magic),
	        T(test_refuses_header_cut_short_without_reading_past_it),
	        T(test_refuses_list_larger_than_the_format_allows),
	        T(test_refuses_expiry_not_after_issue),
	        T(test_refuses_nonzero_reserved_header_bytes),
	        T(test_open_mem_refuses_null_arguments),
	        T(test_open_file_refuses_empty_file),
	        T(test_verify_refuses_null_policy),
	        T(test_check_entries_refuses_duplicate_keys),
	        T(test_refuses_entry_with_unknown_status),
	        T(test_profile_at_refuses_index_past_the_table),
	        T(test_entry_at_refuses_index_past_the_end),
	        T(test_build_refuses_bad_header_fields),
	        T(test_build_refuses_bad_entry_fields),
	        T(test_build_refuses_bad_profile),
	        T(test_build_refuses_counts_beyond_the_format),
	        T(test_build_refuses_null_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
