/*
 * test_proto_clist.c — list format 2 (proto/clist.h, docs/list-format.md): the byte layout
 * of entries, head, index and manifest; the manifest's one canonical text (the lines
 * sha256sum writes); leaves checked at lookup; chunk operations; deltas and snapshot
 * streams, and every refusal a gate makes, each with its own code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "list_fixture.h"
#include "proto/clist.h"
#include "proto/error.h"

#define NOW (FIXTURE_ISSUED + 60)

static struct list_fixture fx;

static int group_setup(void **state)
{
	(void)state;
	fixture_init(&fx);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	fixture_free(&fx);
	return 0;
}

static struct proto_list_policy policy(uint64_t held)
{
	struct proto_list_policy p = {FIXTURE_SECTOR, held, NOW, fx.ring};
	return p;
}

static void test_entry_layout(void **state)
{
	(void)state;
	struct proto_list_entry e = {.profile = 0x1234,
	                             .household = 0xABCDEF,
	                             .used = 7,
	                             .used_period = 26,
	                             .status = PROTO_STATUS_SUSPENDED};
	memcpy(e.key, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	uint8_t b[PROTO_CLIST_ENTRY_SIZE];
	proto_clist_entry_encode(b, &e);
	/* key, then status in the two high bits above a 14-bit profile, household, used, period */
	static const uint8_t want[PROTO_CLIST_ENTRY_SIZE] = {1,    2,    3,    4,    5,    6, 7, 8,
	                                                     0xD2, 0x34, 0xAB, 0xCD, 0xEF, 7, 26};
	assert_memory_equal(b, want, sizeof(want));
	struct proto_list_entry d;
	proto_clist_entry_decode(b, &d);
	assert_memory_equal(d.key, e.key, 8);
	assert_int_equal(d.profile, 0x1234);
	assert_int_equal(d.status, PROTO_STATUS_SUSPENDED);
	assert_int_equal(d.household, 0xABCDEF);
	assert_int_equal(d.used, 7);
	assert_int_equal(d.used_period, 26);
	/* the partition: the first bits of the key */
	assert_int_equal(proto_clist_chunk_of(e.key, 0), 0);
	assert_int_equal(proto_clist_chunk_of(e.key, 8), 0x01);
	assert_int_equal(proto_clist_chunk_of(e.key, 12), 0x010);
	assert_int_equal(proto_clist_bits_for(0), 0);
	assert_int_equal(proto_clist_bits_for(PROTO_CLIST_CHUNK_TARGET), 0);
	assert_int_equal(proto_clist_bits_for(PROTO_CLIST_CHUNK_TARGET + 1), 1);
	assert_int_equal(proto_clist_bits_for(5000000), 8);
	assert_int_equal(proto_clist_bits_for(10000000), 9);
}

static void test_head_fields_are_checked(void **state)
{
	(void)state;
	struct proto_clist_head h = {.format = 2,
	                             .sector = 7,
	                             .version = 3,
	                             .issued_at = 10,
	                             .expires_at = 20,
	                             .bits = 4,
	                             .profile_count = 3,
	                             .profiles = (struct proto_rights_profile *)fixture_profiles};
	uint8_t *b = NULL;
	size_t n = 0;
	assert_int_equal(proto_clist_head_encode(&h, &b, &n), 0);
	assert_int_equal(n, PROTO_CLIST_HEAD_FIXED + 3 * PROTO_LIST_PROFILE_SIZE);
	struct proto_clist_head d;
	assert_int_equal(proto_clist_head_parse(b, n, &d), 0);
	assert_int_equal(d.version, 3);
	assert_int_equal(d.bits, 4);
	assert_int_equal(d.profiles[2].limit, 24);
	proto_clist_head_free(&d);
	assert_int_equal(proto_clist_head_parse(b, n - 1, &d), PROTO_ERR_LIST_TRUNCATED);
	b[46] = PROTO_CLIST_MAX_BITS + 1;
	assert_int_equal(proto_clist_head_parse(b, n, &d), PROTO_ERR_LIST_FIELD);
	b[46] = 4;
	b[85] = 1; /* reserved */
	assert_int_equal(proto_clist_head_parse(b, n, &d), PROTO_ERR_LIST_FIELD);
	b[85] = 0;
	b[5] = 1; /* format 1 is not a head */
	assert_int_equal(proto_clist_head_parse(b, n, &d), PROTO_ERR_LIST_FORMAT);
	b[0] = 'X';
	assert_int_equal(proto_clist_head_parse(b, n, &d), PROTO_ERR_LIST_MAGIC);
	free(b);
}

static void test_manifest_is_sha256sum_text_in_one_form(void **state)
{
	(void)state;
	struct proto_list_entry e[300];
	fixture_entries(e, 300, 3);
	struct v2list l;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 12, 1, e, 300, &l);
	/* "<64 lowercase hex>  <name>\n": the head, then each chunk's index and entries */
	const char *t = (const char *)l.manifest;
	assert_int_equal(l.manifest_len, 5 * 67 + strlen("v12.head") + 4 * strlen("c000-v12.idx"));
	assert_memory_equal(t + 64, "  v12.head\n", 11);
	assert_non_null(strstr(t, "  c000-v12.idx\n"));
	assert_non_null(strstr(t, "  c001-v12.dat\n"));
	struct proto_clist_manifest m;
	assert_int_equal(proto_clist_manifest_parse(l.manifest, l.manifest_len, &m), 0);
	assert_int_equal(m.bits, 1);
	assert_int_equal(m.version, 12);
	proto_clist_manifest_free(&m);
	/* any other spelling of the same content is refused: one manifest, one text */
	uint8_t *c = malloc(l.manifest_len + 8);
	const struct {
		size_t at;
		char ch;
	} edits[] = {{0, 'A'}, {64, '\t'}, {66, 'V'}, {70, 'H'}};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		memcpy(c, l.manifest, l.manifest_len);
		c[edits[i].at] = (uint8_t)edits[i].ch;
		assert_int_equal(proto_clist_manifest_parse(c, l.manifest_len, &m),
		                 PROTO_ERR_LIST_MANIFEST);
	}
	memcpy(c, l.manifest, l.manifest_len);
	assert_int_equal(proto_clist_manifest_parse(c, l.manifest_len - 1, &m),
	                 PROTO_ERR_LIST_MANIFEST); /* no final newline */
	memcpy(c + l.manifest_len, "\n", 1);
	assert_int_equal(proto_clist_manifest_parse(c, l.manifest_len + 1, &m),
	                 PROTO_ERR_LIST_MANIFEST); /* a line too many */
	/* two chunk lines swapped */
	memcpy(c, l.manifest, l.manifest_len);
	size_t line = 67 + strlen("v12.head"), cl = 67 + strlen("c000-v12.idx");
	memcpy(c + line, l.manifest + line + 2 * cl, 2 * cl);
	memcpy(c + line + 2 * cl, l.manifest + line, 2 * cl);
	assert_int_equal(proto_clist_manifest_parse(c, l.manifest_len, &m),
	                 PROTO_ERR_LIST_MANIFEST);
	free(c);
	fixture_v2_free(&l);
}

static void test_verify_refuses_with_its_own_code(void **state)
{
	(void)state;
	struct proto_list_entry e[50];
	fixture_entries(e, 50, 4);
	struct v2list l;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 5, 0, e, 50, &l);
	struct proto_clist_manifest m;
	struct proto_clist_head h;
	struct proto_list_policy p = policy(0);
	assert_int_equal(proto_clist_verify(l.manifest, l.manifest_len, l.sig, l.sig_len, l.head,
	                                    l.head_len, &p, &m, &h),
	                 0);
	proto_clist_manifest_free(&m);
	proto_clist_head_free(&h);
	p.sector = 8;
	assert_int_equal(proto_clist_verify(l.manifest, l.manifest_len, l.sig, l.sig_len, l.head,
	                                    l.head_len, &p, &m, &h),
	                 PROTO_ERR_LIST_SECTOR);
	p = policy(5);
	assert_int_equal(proto_clist_verify(l.manifest, l.manifest_len, l.sig, l.sig_len, l.head,
	                                    l.head_len, &p, &m, &h),
	                 PROTO_ERR_LIST_ROLLBACK);
	proto_clist_manifest_free(&m);
	proto_clist_head_free(&h);
	p = policy(0);
	p.now = FIXTURE_EXPIRES;
	assert_int_equal(proto_clist_verify(l.manifest, l.manifest_len, l.sig, l.sig_len, l.head,
	                                    l.head_len, &p, &m, &h),
	                 PROTO_ERR_LIST_EXPIRED);
	proto_clist_manifest_free(&m);
	proto_clist_head_free(&h);
	/* a head other than the one the manifest names */
	p = policy(0);
	uint8_t *head = malloc(l.head_len);
	memcpy(head, l.head, l.head_len);
	head[20] ^= 1; /* issue time */
	assert_int_equal(proto_clist_verify(l.manifest, l.manifest_len, l.sig, l.sig_len, head,
	                                    l.head_len, &p, &m, &h),
	                 PROTO_ERR_LIST_HASH);
	free(head);
	/* the signature of something else */
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	assert_int_equal(proto_sign(fx.signer, (const uint8_t *)"x", 1, sig, &sig_len), 0);
	assert_int_equal(proto_clist_verify(l.manifest, l.manifest_len, sig, sig_len, l.head,
	                                    l.head_len, &p, &m, &h),
	                 PROTO_ERR_LIST_SIGNATURE);
	/* a key the gate does not hold */
	struct list_fixture other;
	fixture_init(&other);
	p.keys = other.ring;
	assert_int_equal(proto_clist_verify(l.manifest, l.manifest_len, l.sig, l.sig_len, l.head,
	                                    l.head_len, &p, &m, &h),
	                 PROTO_ERR_LIST_UNKNOWN_KEY);
	fixture_free(&other);
	fixture_v2_free(&l);
}

static void test_a_leaf_is_checked_before_it_is_searched(void **state)
{
	(void)state;
	struct proto_list_entry e[1000];
	fixture_entries(e, 1000, 5);
	struct v2list l;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 1, 0, e, 1000, &l);
	struct proto_clist_idx ix;
	assert_int_equal(proto_clist_idx_parse(l.chunks[0].idx, l.chunks[0].idx_len, &ix), 0);
	assert_int_equal(ix.entry_count, 1000);
	assert_int_equal(ix.leaf_count, 16); /* 15 leaves of 64 and one of 40 */
	assert_int_equal(proto_clist_idx_size(1000),
	                 PROTO_CLIST_IDX_FIXED + 16 * PROTO_CLIST_IDX_LEAF);
	uint64_t off;
	size_t len;
	proto_clist_leaf_span(&ix, 15, &off, &len);
	assert_int_equal(off, 960 * 15);
	assert_int_equal(len, 40 * PROTO_CLIST_ENTRY_SIZE);
	for (size_t i = 0; i < 1000; i += 37) {
		int64_t leaf = proto_clist_idx_find(&ix, e[i].key);
		assert_int_equal(leaf, (int64_t)(i / 64));
		struct proto_list_entry got;
		proto_clist_leaf_span(&ix, (uint32_t)leaf, &off, &len);
		assert_int_equal(proto_clist_leaf_lookup(&ix, (uint32_t)leaf, l.chunks[0].dat + off,
		                                         len, e[i].key, &got),
		                 0);
		assert_int_equal(got.status, e[i].status);
	}
	/* one bit changed anywhere in the leaf: refused, whichever entry is asked for */
	proto_clist_leaf_span(&ix, 3, &off, &len);
	uint8_t leaf[PROTO_CLIST_LEAF_SIZE];
	memcpy(leaf, l.chunks[0].dat + off, len);
	leaf[len - 1] ^= 0x80;
	struct proto_list_entry got;
	assert_int_equal(proto_clist_leaf_lookup(&ix, 3, leaf, len, e[3 * 64].key, &got),
	                 PROTO_ERR_LIST_HASH);
	assert_int_equal(proto_clist_leaf_lookup(&ix, 3, leaf, len - 1, e[3 * 64].key, &got),
	                 PROTO_ERR_LIST_HASH);
	/* below the first key: no leaf */
	uint8_t zero[8] = {0};
	assert_int_equal(proto_clist_idx_find(&ix, zero), -1);
	fixture_v2_free(&l);
}

static void test_chunk_operations_fit_the_base_or_are_refused(void **state)
{
	(void)state;
	struct proto_list_entry e[10];
	fixture_entries(e, 10, 6);
	struct v2list l;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 1, 0, e, 10, &l); /* sorts e */
	const uint8_t *dat = l.chunks[0].dat;
	uint8_t ops[3 * PROTO_CLIST_OP_SIZE], *out = NULL;
	uint32_t n = 0;
	struct proto_list_entry fresh;
	fixture_entries(&fresh, 1, 7);
	/* a change, an add, a remove, in key order */
	struct {
		uint8_t op;
		struct proto_list_entry e;
	} want[3] = {{PROTO_CLIST_OP_CHANGE, e[2]},
	             {PROTO_CLIST_OP_ADD, fresh},
	             {PROTO_CLIST_OP_REMOVE, e[7]}};
	want[0].e.used = 99;
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (memcmp(want[i].e.key, want[j].e.key, 8) > 0) {
				__typeof__(want[0]) t = want[i];
				want[i] = want[j];
				want[j] = t;
			}
	for (int i = 0; i < 3; i++) {
		ops[i * PROTO_CLIST_OP_SIZE] = want[i].op;
		proto_clist_entry_encode(ops + i * PROTO_CLIST_OP_SIZE + 1, &want[i].e);
		if (want[i].op == PROTO_CLIST_OP_REMOVE)
			memset(ops + i * PROTO_CLIST_OP_SIZE + 9, 0, PROTO_CLIST_ENTRY_SIZE - 8);
	}
	assert_int_equal(proto_clist_chunk_apply(dat, 10, ops, 3, &out, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal(proto_clist_chunk_check(out, n, 0, 0, FIXTURE_PROFILE_COUNT), 0);
	free(out);
	/* an add of a present key, a change of an absent one */
	uint8_t op[PROTO_CLIST_OP_SIZE];
	op[0] = PROTO_CLIST_OP_ADD;
	proto_clist_entry_encode(op + 1, &e[4]);
	assert_int_equal(proto_clist_chunk_apply(dat, 10, op, 1, &out, &n), PROTO_ERR_DELTA_OP);
	op[0] = PROTO_CLIST_OP_CHANGE;
	proto_clist_entry_encode(op + 1, &fresh);
	assert_int_equal(proto_clist_chunk_apply(dat, 10, op, 1, &out, &n), PROTO_ERR_DELTA_OP);
	op[0] = PROTO_CLIST_OP_REMOVE; /* a removal carrying more than a key */
	proto_clist_entry_encode(op + 1, &e[4]);
	op[9] |= 1;
	assert_int_equal(proto_clist_chunk_apply(dat, 10, op, 1, &out, &n), PROTO_ERR_DELTA_OP);
	op[0] = 9;
	assert_int_equal(proto_clist_chunk_apply(dat, 10, op, 1, &out, &n), PROTO_ERR_DELTA_OP);
	/* unsorted */
	uint8_t two[2 * PROTO_CLIST_OP_SIZE];
	memcpy(two, ops + 2 * PROTO_CLIST_OP_SIZE, PROTO_CLIST_OP_SIZE);
	memcpy(two + PROTO_CLIST_OP_SIZE, ops, PROTO_CLIST_OP_SIZE);
	assert_int_equal(proto_clist_chunk_apply(dat, 10, two, 2, &out, &n), PROTO_ERR_LIST_ORDER);
	/* entries that are not the chunk's, or name a missing profile */
	assert_int_equal(proto_clist_chunk_check(dat, 10, 1, 0, FIXTURE_PROFILE_COUNT) == 0 &&
	                         proto_clist_chunk_check(dat, 10, 1, 1, FIXTURE_PROFILE_COUNT) == 0,
	                 0);
	assert_int_equal(proto_clist_chunk_check(dat, 10, 0, 0, 1), PROTO_ERR_LIST_PROFILE);
	fixture_v2_free(&l);
}

/* One leaf's record (first key and hash) in an index. */
static uint8_t *leaf_rec(uint8_t *idx, uint32_t leaf)
{
	return idx + PROTO_CLIST_IDX_FIXED + (size_t)leaf * PROTO_CLIST_IDX_LEAF;
}

/* proto_clist_idx_rebuild against proto_clist_idx_build. A record planted in the previous
 * index (a hash no leaf has) shows which leaves were copied and which hashed again. */
static void test_index_rebuilt_keeps_only_leaves_that_did_not_move(void **state)
{
	(void)state;
	struct proto_list_entry e[400];
	fixture_entries(e, 400, 10);
	struct v2list a;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 1, 0, e, 400, &a); /* one chunk, 7 leaves */
	const struct proto_clist_chunk_data *c0 = &a.chunks[0];
	assert_int_equal(c0->n, 400);
	const size_t len = (size_t)c0->n * PROTO_CLIST_ENTRY_SIZE;
	uint8_t *prev = malloc(c0->idx_len), *dat = malloc(len), *want, *got;
	size_t want_len, got_len;
	memcpy(prev, c0->idx, c0->idx_len);
	leaf_rec(prev, 1)[PROTO_LIST_KEY_LEN] ^= 0xff; /* leaf 1: entries 64..127 */
	leaf_rec(prev, 5)[PROTO_LIST_KEY_LEN] ^= 0xff; /* leaf 5: entries 320..383 */

	/* a change (a revocation) in leaf 1: leaf 1 hashed again, every other copied */
	memcpy(dat, c0->dat, len);
	dat[100 * PROTO_CLIST_ENTRY_SIZE + 8] ^= 0x80;
	assert_int_equal(proto_clist_idx_build(0, dat, 400, &want, &want_len), 0);
	assert_int_equal(proto_clist_idx_rebuild(0, dat, 400, c0->dat, 400, prev, c0->idx_len, &got,
	                                         &got_len),
	                 0);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(leaf_rec(got, 1), leaf_rec(want, 1), PROTO_CLIST_IDX_LEAF);
	assert_memory_equal(leaf_rec(got, 5), leaf_rec(prev, 5), PROTO_CLIST_IDX_LEAF); /* kept */
	leaf_rec(got, 5)[PROTO_LIST_KEY_LEN] ^= 0xff;
	assert_memory_equal(got, want, want_len); /* and the rest as a full build */
	free(want);
	free(got);
	/* the same from the true previous index: exactly the full build */
	assert_int_equal(proto_clist_idx_build(0, dat, 400, &want, &want_len), 0);
	assert_int_equal(proto_clist_idx_rebuild(0, dat, 400, c0->dat, 400, c0->idx, c0->idx_len,
	                                         &got, &got_len),
	                 0);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	free(want);
	free(got);

	/* a removal in leaf 0: every leaf after it holds other entries, all hashed again */
	memcpy(dat, c0->dat, 10 * PROTO_CLIST_ENTRY_SIZE);
	memcpy(dat + 10 * PROTO_CLIST_ENTRY_SIZE, c0->dat + 11 * PROTO_CLIST_ENTRY_SIZE,
	       389 * PROTO_CLIST_ENTRY_SIZE);
	assert_int_equal(proto_clist_idx_build(0, dat, 399, &want, &want_len), 0);
	assert_int_equal(proto_clist_idx_rebuild(0, dat, 399, c0->dat, 400, prev, c0->idx_len, &got,
	                                         &got_len),
	                 0);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	free(want);
	free(got);

	/* the last entry removed, or one more after it: the last leaf is shorter or longer,
	 * its first bytes the same, its hash another (and the previous chunk not read past
	 * its end) */
	for (uint32_t n = 399; n <= 401; n += 2) {
		uint8_t *more = malloc((size_t)n * PROTO_CLIST_ENTRY_SIZE);
		memcpy(more, c0->dat, (size_t)(n < 400 ? n : 400) * PROTO_CLIST_ENTRY_SIZE);
		if (n > 400) { /* a copy of the last entry with a key above it */
			memcpy(more + len, c0->dat + len - PROTO_CLIST_ENTRY_SIZE,
			       PROTO_CLIST_ENTRY_SIZE);
			more[len + PROTO_LIST_KEY_LEN - 1] ^= 1;
		}
		assert_int_equal(proto_clist_idx_build(0, more, n, &want, &want_len), 0);
		assert_int_equal(proto_clist_idx_rebuild(0, more, n, c0->dat, 400, c0->idx,
		                                         c0->idx_len, &got, &got_len),
		                 0);
		assert_int_equal(got_len, want_len);
		assert_memory_equal(got, want, want_len);
		free(want);
		free(got);
		free(more);
	}

	/* a previous index that is not this chunk's, or not of prev_n entries: no leaf kept */
	memcpy(dat, c0->dat, len);
	assert_int_equal(proto_clist_idx_build(0, dat, 400, &want, &want_len), 0);
	assert_int_equal(proto_clist_idx_rebuild(0, dat, 400, c0->dat, 399, prev, c0->idx_len, &got,
	                                         &got_len),
	                 0);
	assert_memory_equal(got, want, want_len);
	free(got);
	assert_int_equal(proto_clist_idx_rebuild(1, dat, 400, c0->dat, 400, prev, c0->idx_len, &got,
	                                         &got_len),
	                 0);
	assert_memory_not_equal(leaf_rec(got, 5), leaf_rec(prev, 5), PROTO_CLIST_IDX_LEAF);
	free(got);
	assert_int_equal(
	        proto_clist_idx_rebuild(0, dat, 400, c0->dat, 400, prev, 7, &got, &got_len), 0);
	assert_memory_equal(got, want, want_len); /* unparsable */
	free(got);
	free(want);
	free(prev);
	free(dat);
	fixture_v2_free(&a);
}

static int read_v2(void *ctx, uint32_t j, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                   size_t *idx_len)
{
	(void)idx; /* every leaf hashed again */
	(void)idx_len;
	const struct v2list *l = ctx;
	size_t len = (size_t)l->chunks[j].n * PROTO_CLIST_ENTRY_SIZE;
	*dat = malloc(len ? len : 1);
	memcpy(*dat, l->chunks[j].dat, len);
	*n = l->chunks[j].n;
	return 0;
}

/* read_v2 with the chunk's index, as a gate's store gives it; `bad_leaf_hash` plants a
 * wrong hash in leaf 5 of every index it gives (a gate whose index no longer matches). */
static int bad_leaf_hash;
static uint8_t *given_idx;

static int read_v2_idx(void *ctx, uint32_t j, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                       size_t *idx_len)
{
	const struct v2list *l = ctx;
	read_v2(ctx, j, dat, n, NULL, NULL);
	free(given_idx);
	given_idx = malloc(l->chunks[j].idx_len);
	memcpy(given_idx, l->chunks[j].idx, l->chunks[j].idx_len);
	if (bad_leaf_hash && l->chunks[j].n > 6 * PROTO_CLIST_LEAF_ENTRIES)
		leaf_rec(given_idx, 5)[PROTO_LIST_KEY_LEN] ^= 1;
	*idx = given_idx;
	*idx_len = l->chunks[j].idx_len;
	return 0;
}

/* A gate that gives its index has a delta applied to the same bytes; one whose index does
 * not match its chunks has it refused, never installed with a leaf nobody signed. */
static void test_delta_apply_with_the_held_index(void **state)
{
	(void)state;
	struct proto_list_entry e[800];
	fixture_entries(e, 800, 11);
	struct v2list a, b;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 1, 0, e, 800, &a);
	struct v2change ch = {PROTO_CLIST_OP_CHANGE, e[30]};
	ch.e.status = PROTO_STATUS_REVOKED;
	uint8_t *d = NULL;
	size_t dl = 0;
	fixture_v2_next(&fx, &a, &ch, 1, &b, &d, &dl);
	uint8_t ha[PROTO_HASH_LEN];
	proto_sha256(a.manifest, a.manifest_len, ha);
	struct proto_list_policy p = policy(1);
	struct proto_clist_applied ap;
	bad_leaf_hash = 0;
	assert_int_equal(proto_clist_delta_apply(&a.m, ha, read_v2_idx, &a, d, dl, b.sig, b.sig_len,
	                                         &p, &ap),
	                 0);
	assert_memory_equal(ap.manifest_bytes, b.manifest, b.manifest_len);
	assert_int_equal(ap.n_changed, 1);
	assert_int_equal(ap.chunks[0].idx_len, b.chunks[0].idx_len);
	assert_memory_equal(ap.chunks[0].idx, b.chunks[0].idx, b.chunks[0].idx_len);
	proto_clist_applied_free(&ap);
	bad_leaf_hash = 1;
	assert_int_equal(proto_clist_delta_apply(&a.m, ha, read_v2_idx, &a, d, dl, b.sig, b.sig_len,
	                                         &p, &ap),
	                 PROTO_ERR_DELTA_RESULT);
	bad_leaf_hash = 0;
	free(given_idx);
	given_idx = NULL;
	free(d);
	fixture_v2_free(&a);
	fixture_v2_free(&b);
}

static void test_delta_apply_gives_what_was_signed(void **state)
{
	(void)state;
	struct proto_list_entry e[400];
	fixture_entries(e, 400, 8);
	struct v2list a, b, c;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 1, 2, e, 400, &a);
	struct v2change ch[2] = {{PROTO_CLIST_OP_CHANGE, e[5]}, {PROTO_CLIST_OP_REMOVE, e[6]}};
	ch[0].e.status = PROTO_STATUS_REVOKED;
	uint8_t *d12 = NULL, *d23 = NULL;
	size_t l12 = 0, l23 = 0;
	fixture_v2_next(&fx, &a, ch, 2, &b, &d12, &l12);
	struct v2change ch2 = {PROTO_CLIST_OP_CHANGE, e[200]};
	ch2.e.used = 42;
	fixture_v2_next(&fx, &b, &ch2, 1, &c, &d23, &l23);
	uint8_t ha[PROTO_HASH_LEN], hb[PROTO_HASH_LEN];
	proto_sha256(a.manifest, a.manifest_len, ha);
	proto_sha256(b.manifest, b.manifest_len, hb);
	struct proto_list_policy p = policy(1);
	struct proto_clist_applied ap;
	assert_int_equal(
	        proto_clist_delta_apply(&a.m, ha, read_v2, &a, d12, l12, b.sig, b.sig_len, &p, &ap),
	        0);
	assert_int_equal(ap.manifest_len, b.manifest_len);
	assert_memory_equal(ap.manifest_bytes, b.manifest, b.manifest_len);
	assert_true(ap.n_changed >= 1 && ap.n_changed <= 2);
	assert_int_equal(ap.head.entry_count, 399);
	proto_clist_applied_free(&ap);

	/* the refusals, in order */
	assert_int_equal(
	        proto_clist_delta_apply(&a.m, ha, read_v2, &a, d23, l23, c.sig, c.sig_len, &p, &ap),
	        PROTO_ERR_DELTA_BASE); /* base is v2, a gate holding v1 */
	uint8_t wrong[PROTO_HASH_LEN];
	memcpy(wrong, ha, sizeof(wrong));
	wrong[0] ^= 1;
	assert_int_equal(proto_clist_delta_apply(&a.m, wrong, read_v2, &a, d12, l12, b.sig,
	                                         b.sig_len, &p, &ap),
	                 PROTO_ERR_DELTA_BASE);
	p = policy(2);
	assert_int_equal(
	        proto_clist_delta_apply(&a.m, ha, read_v2, &a, d12, l12, b.sig, b.sig_len, &p, &ap),
	        PROTO_ERR_LIST_ROLLBACK);
	p = policy(1);
	assert_int_equal(
	        proto_clist_delta_apply(&a.m, ha, read_v2, &a, d12, l12, c.sig, c.sig_len, &p, &ap),
	        PROTO_ERR_DELTA_RESULT); /* not what the signature covers */
	p.now = FIXTURE_EXPIRES;
	assert_int_equal(
	        proto_clist_delta_apply(&a.m, ha, read_v2, &a, d12, l12, b.sig, b.sig_len, &p, &ap),
	        PROTO_ERR_LIST_EXPIRED);
	p = policy(1);
	p.sector = 9;
	assert_int_equal(
	        proto_clist_delta_apply(&a.m, ha, read_v2, &a, d12, l12, b.sig, b.sig_len, &p, &ap),
	        PROTO_ERR_LIST_SECTOR);
	/* framing: cut short, or followed by junk */
	struct proto_clist_delta d;
	assert_int_equal(proto_clist_delta_parse(d12, l12, &d), 0);
	assert_int_equal(proto_clist_delta_parse(d12, l12 - 1, &d), PROTO_ERR_LIST_TRUNCATED);
	uint8_t *longer = malloc(l12 + 1);
	memcpy(longer, d12, l12);
	longer[l12] = 0;
	assert_int_equal(proto_clist_delta_parse(longer, l12 + 1, &d), PROTO_ERR_LIST_OVERSIZED);
	free(longer);
	assert_int_equal(proto_clist_kind(d12, l12), 2);
	assert_int_equal(proto_clist_kind(a.stream, a.stream_len), 1);
	free(d12);
	free(d23);
	fixture_v2_free(&a);
	fixture_v2_free(&b);
	fixture_v2_free(&c);
}

static void test_snapshot_stream_is_checked_file_by_file(void **state)
{
	(void)state;
	struct proto_list_entry e[200];
	fixture_entries(e, 200, 9);
	struct v2list l;
	fixture_v2_build(&fx, FIXTURE_SECTOR, 4, 1, e, 200, &l);
	struct proto_clist_stream st;
	struct proto_clist_manifest m;
	struct proto_clist_head h;
	struct proto_list_policy p = policy(3);
	assert_int_equal(
	        proto_clist_stream_open(l.stream, l.stream_len, l.sig, l.sig_len, &p, &st, &m, &h),
	        0);
	size_t cursor = 0;
	uint32_t total = 0;
	for (uint32_t j = 0; j < m.n_chunks; j++) {
		const uint8_t *idx, *dat;
		size_t il;
		uint32_t n;
		assert_int_equal(
		        proto_clist_stream_chunk(&st, &m, &h, &cursor, j, &idx, &il, &dat, &n), 0);
		total += n;
	}
	assert_int_equal(total, 200);
	proto_clist_manifest_free(&m);
	proto_clist_head_free(&h);
	/* a chunk altered in transit: its hash */
	uint8_t *bad = malloc(l.stream_len);
	memcpy(bad, l.stream, l.stream_len);
	bad[l.stream_len - 1] ^= 1;
	assert_int_equal(
	        proto_clist_stream_open(bad, l.stream_len, l.sig, l.sig_len, &p, &st, &m, &h), 0);
	cursor = 0;
	const uint8_t *idx, *dat;
	size_t il;
	uint32_t n;
	assert_int_equal(proto_clist_stream_chunk(&st, &m, &h, &cursor, 0, &idx, &il, &dat, &n), 0);
	assert_int_equal(proto_clist_stream_chunk(&st, &m, &h, &cursor, 1, &idx, &il, &dat, &n),
	                 PROTO_ERR_LIST_HASH);
	proto_clist_manifest_free(&m);
	proto_clist_head_free(&h);
	/* cut short, or the manifest's signature from another version */
	assert_int_equal(proto_clist_stream_open(l.stream, l.stream_len - 1, l.sig, l.sig_len, &p,
	                                         &st, &m, &h),
	                 PROTO_ERR_LIST_TRUNCATED);
	p = policy(4);
	assert_int_equal(
	        proto_clist_stream_open(l.stream, l.stream_len, l.sig, l.sig_len, &p, &st, &m, &h),
	        PROTO_ERR_LIST_ROLLBACK);
	proto_clist_manifest_free(&m);
	proto_clist_head_free(&h);
	free(bad);
	fixture_v2_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_entry_layout),
	        cmocka_unit_test(test_head_fields_are_checked),
	        cmocka_unit_test(test_manifest_is_sha256sum_text_in_one_form),
	        cmocka_unit_test(test_verify_refuses_with_its_own_code),
	        cmocka_unit_test(test_a_leaf_is_checked_before_it_is_searched),
	        cmocka_unit_test(test_chunk_operations_fit_the_base_or_are_refused),
	        cmocka_unit_test(test_index_rebuilt_keeps_only_leaves_that_did_not_move),
	        cmocka_unit_test(test_delta_apply_gives_what_was_signed),
	        cmocka_unit_test(test_delta_apply_with_the_held_index),
	        cmocka_unit_test(test_snapshot_stream_is_checked_file_by_file),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
