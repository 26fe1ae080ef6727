/*
 * List deltas. The central property: applying the delta N -> N+1 to snapshot N gives,
 * byte for byte, the snapshot the server built for N+1 (and its signature). Then every
 * refusal, each on a delta valid in every other respect.
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
#include "list_internal.h"
#include "proto/error.h"

static uint64_t rng;

static uint32_t rnd(uint32_t bound)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)((rng >> 33) % bound);
}

struct version {
	struct proto_list_entry *e;
	size_t n;
	struct built_list b;
	struct proto_list *l;
};

static void version_open(struct version *v)
{
	assert_int_equal(proto_list_open_mem(&v->l, v->b.buf, v->b.len), 0);
}

static void version_free(struct version *v)
{
	proto_list_close(v->l);
	free(v->b.buf);
	free(v->e);
	memset(v, 0, sizeof(*v));
}

/* What the server does between two versions: churn some passes, rebuild. */
static void next_version(const struct list_fixture *f, struct version *base, struct version *next,
                         unsigned removes, unsigned changes, unsigned adds, unsigned tag)
{
	next->e = calloc(base->n + adds + 1, sizeof(*next->e));
	memcpy(next->e, base->e, base->n * sizeof(*base->e));
	next->n = base->n;
	for (unsigned i = 0; i < removes && next->n > 0; i++) {
		size_t k = rnd((uint32_t)next->n);
		next->e[k] = next->e[--next->n];
	}
	for (unsigned i = 0; i < changes && next->n > 0; i++) {
		struct proto_list_entry *e = &next->e[rnd((uint32_t)next->n)];
		switch (rnd(4)) {
		case 0:
			e->status = PROTO_STATUS_REVOKED;
			break;
		case 1:
			e->used = (uint8_t)(e->used + 1);
			break;
		case 2:
			e->profile = (uint16_t)((e->profile + 1) % FIXTURE_PROFILE_COUNT);
			break;
		default:
			e->household = 1 + rnd(1000);
			break;
		}
	}
	struct proto_list_entry *fresh = calloc(adds + 1, sizeof(*fresh));
	fixture_entries(fresh, adds, tag);
	memcpy(next->e + next->n, fresh, adds * sizeof(*fresh));
	next->n += adds;
	free(fresh);
	fixture_build(f, proto_list_header(base->l)->version + 1, proto_list_hash(base->l), next->e,
	              next->n, &next->b);
	version_open(next);
}

struct delta {
	uint8_t *buf;
	size_t len;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
};

static void make_delta(const struct list_fixture *f, struct version *a, struct version *b,
                       struct delta *d)
{
	assert_int_equal(
	        proto_delta_build(a->l, b->l, b->b.sig, b->b.sig_len, f->signer, &d->buf, &d->len),
	        0);
	fixture_resign(f, d->buf, d->len, d->sig, &d->sig_len);
}

static struct proto_list_policy policy_for(const struct list_fixture *f, struct version *held)
{
	return (struct proto_list_policy){
	        .sector = FIXTURE_SECTOR,
	        .held_version = proto_list_header(held->l)->version,
	        .now = FIXTURE_ISSUED + 10,
	        .keys = f->ring,
	};
}

static int apply(struct version *held, const struct delta *d, const struct proto_list_policy *p,
                 uint8_t **out, size_t *out_len, uint8_t sig[PROTO_SIG_MAX], size_t *sig_len)
{
	return proto_delta_apply(held->l, d->buf, d->len, d->sig, d->sig_len, p, out, out_len, sig,
	                         sig_len);
}

static void check_property(unsigned n, unsigned removes, unsigned changes, unsigned adds,
                           uint64_t seed)
{
	struct list_fixture f;
	struct version a = {0}, b = {0};
	struct delta d;
	rng = seed;
	fixture_init(&f);
	a.n = n;
	a.e = calloc(n + 1, sizeof(*a.e));
	fixture_entries(a.e, n, 10);
	fixture_build(&f, 1, NULL, a.e, n, &a.b);
	version_open(&a);
	next_version(&f, &a, &b, removes, changes, adds, 11);
	make_delta(&f, &a, &b, &d);

	struct proto_list_policy p = policy_for(&f, &a);
	uint8_t *out = NULL, sig[PROTO_SIG_MAX];
	size_t out_len = 0, sig_len = 0;
	assert_int_equal(apply(&a, &d, &p, &out, &out_len, sig, &sig_len), 0);
	assert_int_equal(out_len, b.b.len);
	assert_memory_equal(out, b.b.buf, b.b.len);
	assert_int_equal(sig_len, b.b.sig_len);
	assert_memory_equal(sig, b.b.sig, sig_len);
	/* what the gate now holds verifies as a downloaded snapshot would */
	struct proto_list *got = NULL;
	assert_int_equal(proto_list_open_mem(&got, out, out_len), 0);
	assert_int_equal(proto_list_verify(got, sig, sig_len, &p), 0);
	assert_int_equal(proto_list_check_entries(got), 0);
	proto_list_close(got);
	free(out);
	free(d.buf);
	version_free(&a);
	version_free(&b);
	fixture_free(&f);
}

static void test_apply_gives_exactly_the_next_snapshot(void **state)
{
	(void)state;
	check_property(2000, 20, 20, 20, 1);   /* ordinary churn */
	check_property(2000, 0, 0, 0, 2);      /* nothing changed but the version */
	check_property(2000, 2000, 0, 0, 3);   /* everyone removed */
	check_property(0, 0, 0, 500, 4);       /* from an empty list */
	check_property(500, 100, 300, 700, 5); /* heavy churn */
	for (uint64_t s = 10; s < 40; s++)
		check_property(200 + (unsigned)s, (unsigned)s % 7, (unsigned)s % 11,
		               (unsigned)s % 13, s);
}

static void test_chain_of_deltas(void **state)
{
	(void)state;
	struct list_fixture f;
	struct version v[4] = {{0}};
	rng = 99;
	fixture_init(&f);
	v[0].n = 1000;
	v[0].e = calloc(v[0].n, sizeof(*v[0].e));
	fixture_entries(v[0].e, v[0].n, 20);
	fixture_build(&f, 1, NULL, v[0].e, v[0].n, &v[0].b);
	version_open(&v[0]);
	for (int i = 1; i < 4; i++)
		next_version(&f, &v[i - 1], &v[i], 5, 5, 5, 20 + (unsigned)i);

	/* the gate holds v1 and applies 1->2, 2->3, 3->4 */
	struct version held = {0};
	held.b.len = v[0].b.len;
	held.b.buf = malloc(held.b.len);
	memcpy(held.b.buf, v[0].b.buf, held.b.len);
	version_open(&held);
	for (int i = 1; i < 4; i++) {
		struct delta d;
		make_delta(&f, &v[i - 1], &v[i], &d);
		struct proto_list_policy p = policy_for(&f, &held);
		uint8_t *out, sig[PROTO_SIG_MAX];
		size_t out_len, sig_len;
		assert_int_equal(apply(&held, &d, &p, &out, &out_len, sig, &sig_len), 0);
		proto_list_close(held.l);
		free(held.b.buf);
		held.b.buf = out;
		held.b.len = out_len;
		version_open(&held);
		free(d.buf);
	}
	assert_int_equal(held.b.len, v[3].b.len);
	assert_memory_equal(held.b.buf, v[3].b.buf, v[3].b.len);
	version_free(&held);
	for (int i = 0; i < 4; i++)
		version_free(&v[i]);
	fixture_free(&f);
}

/* A base list, the next version and the delta between them, for the refusal tests. */
struct ctx {
	struct list_fixture f;
	struct version a, b;
	struct delta d;
	struct proto_list_policy p;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	rng = 7;
	fixture_init(&c->f);
	c->a.n = 300;
	c->a.e = calloc(c->a.n, sizeof(*c->a.e));
	fixture_entries(c->a.e, c->a.n, 30);
	fixture_build(&c->f, 3, NULL, c->a.e, c->a.n, &c->a.b);
	version_open(&c->a);
	next_version(&c->f, &c->a, &c->b, 10, 10, 10, 31);
	make_delta(&c->f, &c->a, &c->b, &c->d);
	c->p = policy_for(&c->f, &c->a);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	free(c->d.buf);
	version_free(&c->a);
	version_free(&c->b);
	fixture_free(&c->f);
	free(c);
	return 0;
}

static int try_apply(struct ctx *c, const struct delta *d)
{
	uint8_t *out = NULL, sig[PROTO_SIG_MAX];
	size_t out_len = 0, sig_len = 0;
	int rc = apply(&c->a, d, &c->p, &out, &out_len, sig, &sig_len);
	if (rc)
		assert_null(out);
	free(out);
	return rc;
}

/* A copy of the context's delta with one change, re-signed so only that change matters. */
static struct delta altered(struct ctx *c, size_t len)
{
	struct delta d = {.len = len};
	d.buf = calloc(1, len > c->d.len ? len : c->d.len);
	memcpy(d.buf, c->d.buf, c->d.len < len ? c->d.len : len);
	return d;
}

static void resign(struct ctx *c, struct delta *d)
{
	fixture_resign(&c->f, d->buf, d->len, d->sig, &d->sig_len);
}

static void test_valid_delta_applies(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(try_apply(c, &c->d), 0);
}

static void test_refuses_base_not_held(void **state)
{
	struct ctx *c = *state;
	/* the gate holds another version 3 (another history): same version, other hash */
	struct version other = {0};
	other.n = 300;
	other.e = calloc(other.n, sizeof(*other.e));
	fixture_entries(other.e, other.n, 32);
	fixture_build(&c->f, 3, NULL, other.e, other.n, &other.b);
	version_open(&other);
	uint8_t *out = NULL, sig[PROTO_SIG_MAX];
	size_t out_len, sig_len;
	assert_int_equal(apply(&other, &c->d, &c->p, &out, &out_len, sig, &sig_len),
	                 PROTO_ERR_DELTA_BASE);
	version_free(&other);

	/* the gate holds version 2: the 3 -> 4 delta is not for it */
	other.n = 10;
	other.e = calloc(other.n, sizeof(*other.e));
	fixture_entries(other.e, other.n, 33);
	fixture_build(&c->f, 2, NULL, other.e, other.n, &other.b);
	version_open(&other);
	struct proto_list_policy p = policy_for(&c->f, &other);
	assert_int_equal(apply(&other, &c->d, &p, &out, &out_len, sig, &sig_len),
	                 PROTO_ERR_DELTA_BASE);
	assert_null(out);
	version_free(&other);
}

static void test_refuses_bad_delta_signature(void **state)
{
	struct ctx *c = *state;
	struct delta d = altered(c, c->d.len);
	memcpy(d.sig, c->d.sig, c->d.sig_len);
	d.sig_len = c->d.sig_len;
	d.buf[d.len - 1] ^= 1; /* the last op's status byte, not re-signed */
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_SIGNATURE);
	free(d.buf);
}

static void test_refuses_unknown_key(void **state)
{
	struct ctx *c = *state;
	struct list_fixture other;
	fixture_init(&other);
	struct delta d = altered(c, c->d.len);
	uint8_t id[PROTO_KEY_ID_LEN];
	proto_key_id(other.signer, id);
	memcpy(d.buf + 40, id, PROTO_KEY_ID_LEN);
	fixture_resign(&other, d.buf, d.len, d.sig, &d.sig_len);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_UNKNOWN_KEY);
	free(d.buf);
	fixture_free(&other);
}

static void test_refuses_rollback_and_expiry(void **state)
{
	struct ctx *c = *state;
	c->p.held_version = 4; /* already holds the delta's target */
	assert_int_equal(try_apply(c, &c->d), PROTO_ERR_LIST_ROLLBACK);
	c->p.held_version = 3;
	c->p.now = FIXTURE_EXPIRES;
	assert_int_equal(try_apply(c, &c->d), PROTO_ERR_LIST_EXPIRED);
	c->p.now = FIXTURE_ISSUED + 10;
	c->p.sector = FIXTURE_SECTOR + 1;
	assert_int_equal(try_apply(c, &c->d), PROTO_ERR_LIST_SECTOR);
}

static void test_refuses_truncated_oversized_and_miscounted(void **state)
{
	struct ctx *c = *state;
	struct delta d = altered(c, c->d.len - 3); /* cut inside the last op */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_TRUNCATED);
	free(d.buf);
	d = altered(c, 150); /* cut inside the header */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_TRUNCATED);
	free(d.buf);
	d = altered(c, c->d.len + 5); /* a partial op after the last */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_OVERSIZED);
	free(d.buf);
	d = altered(c, c->d.len - PROTO_DELTA_OP_SIZE); /* one whole op missing */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_COUNT);
	free(d.buf);
	d = altered(c, c->d.len); /* result count that the ops do not produce */
	put_be32(d.buf + 52, get_be32(d.buf + 52) + 1);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_COUNT);
	free(d.buf);
	d = altered(c, c->d.len); /* op count beyond any list */
	put_be32(d.buf + 48, PROTO_LIST_MAX_ENTRIES + 1);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_OVERSIZED);
	free(d.buf);
}

static size_t first_op(const struct delta *d)
{
	return PROTO_DELTA_HEADER_SIZE + get_be16(d->buf + 56) * PROTO_LIST_PROFILE_SIZE;
}

static void test_refuses_ops_that_do_not_fit_the_base(void **state)
{
	struct ctx *c = *state;
	const size_t op0 = first_op(&c->d);
	int found = 0;
	/* turn the first removal or change into an addition of a key the base holds */
	for (size_t at = op0; at < c->d.len; at += PROTO_DELTA_OP_SIZE) {
		if (c->d.buf[at] == DELTA_OP_ADD)
			continue;
		struct delta d = altered(c, c->d.len);
		int was_remove = d.buf[at] == DELTA_OP_REMOVE;
		d.buf[at] = DELTA_OP_ADD;
		/* the result count follows, so that only the op check can refuse */
		put_be32(d.buf + 52, get_be32(d.buf + 52) + (was_remove ? 2 : 1));
		resign(c, &d);
		assert_int_equal(try_apply(c, &d), PROTO_ERR_DELTA_OP);
		free(d.buf);
		found = 1;
		break;
	}
	assert_true(found);
	/* the last op removes a key the base lacks, beyond every base key, and the counts
	 * agree: the merge must notice before the base entries overflow the output (found
	 * by fuzz_proto_delta) */
	{
		struct delta d = altered(c, c->d.len);
		uint8_t *last = d.buf + d.len - PROTO_DELTA_OP_SIZE;
		const int32_t shift = last[0] == DELTA_OP_ADD      ? -2
		                      : last[0] == DELTA_OP_CHANGE ? -1
		                                                   : 0;
		last[0] = DELTA_OP_REMOVE;
		memset(last + 1, 0xff, PROTO_LIST_KEY_LEN);
		memset(last + 1 + PROTO_LIST_KEY_LEN, 0,
		       PROTO_LIST_ENTRY_SIZE - PROTO_LIST_KEY_LEN);
		put_be32(d.buf + 52, (uint32_t)((int32_t)get_be32(d.buf + 52) + shift));
		resign(c, &d);
		assert_int_equal(try_apply(c, &d), PROTO_ERR_DELTA_OP);
		free(d.buf);
	}
	/* an unknown op code */
	struct delta d = altered(c, c->d.len);
	d.buf[op0] = 9;
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_DELTA_OP);
	free(d.buf);
	/* ops out of order */
	d = altered(c, c->d.len);
	uint8_t tmp[PROTO_DELTA_OP_SIZE];
	memcpy(tmp, d.buf + op0, sizeof(tmp));
	memcpy(d.buf + op0, d.buf + op0 + PROTO_DELTA_OP_SIZE, sizeof(tmp));
	memcpy(d.buf + op0 + PROTO_DELTA_OP_SIZE, tmp, sizeof(tmp));
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_ORDER);
	free(d.buf);
}

static void test_refuses_result_other_than_signed(void **state)
{
	struct ctx *c = *state;
	const size_t op0 = first_op(&c->d);
	/* a change op altered (e.g. a revocation dropped) and the delta re-signed: the merge
	 * works, but the result is not the snapshot the server signed */
	struct delta d = altered(c, c->d.len);
	size_t at;
	for (at = op0; at < d.len && d.buf[at] != DELTA_OP_CHANGE; at += PROTO_DELTA_OP_SIZE)
		;
	assert_true(at < d.len);
	d.buf[at + 1 + 13] ^= 0x40; /* its `used` counter */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_DELTA_RESULT);
	free(d.buf);
	/* the carried snapshot signature corrupted: the result hash matches, the signature
	 * a gate would keep does not verify */
	d = altered(c, c->d.len);
	d.buf[128 + 20] ^= 0x01;
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_SIGNATURE);
	free(d.buf);
}

static void test_build_refuses_non_consecutive_versions(void **state)
{
	struct ctx *c = *state;
	uint8_t *out = NULL;
	size_t len = 0;
	/* b's prev_hash is a's hash: b -> a is not a delta */
	assert_int_equal(proto_delta_build(c->b.l, c->a.l, c->a.b.sig, c->a.b.sig_len, c->f.signer,
	                                   &out, &len),
	                 PROTO_ERR_DELTA_BASE);
	assert_null(out);
}

/* Header offsets (docs/list-format.md). */
#define D_SECTOR      6
#define D_BASE_VER    8
#define D_VERSION     16
#define D_ISSUED      24
#define D_EXPIRES     32
#define D_OP_COUNT    48
#define D_RESULT_CNT  52
#define D_PROFILE_CNT 56
#define D_SIG_LEN     58
#define D_SIG         128

/* An exact-size heap copy of the first len bytes of the context's delta, re-signed: ASan
 * sees any read past its end. */
static struct delta exact(struct ctx *c, size_t len)
{
	struct delta d = {.len = len, .buf = malloc(len)};
	assert_non_null(d.buf);
	memcpy(d.buf, c->d.buf, len);
	resign(c, &d);
	return d;
}

/* The context's delta with the byte at `at` set to `value`, re-signed, applied. */
static int with_byte(struct ctx *c, size_t at, uint8_t value)
{
	struct delta d = altered(c, c->d.len);
	d.buf[at] = value;
	resign(c, &d);
	int rc = try_apply(c, &d);
	free(d.buf);
	return rc;
}

/* Offset of the first op with this code in d. */
static size_t find_op(const struct delta *d, uint8_t code)
{
	for (size_t at = first_op(d); at < d->len; at += PROTO_DELTA_OP_SIZE)
		if (d->buf[at] == code)
			return at;
	fail_msg("no op %u in the delta", code);
	return 0;
}

/* A version of `sector` holding one pass per byte of `keys` (its key: 8 times that byte). */
static void keyed_version(const struct list_fixture *f, uint16_t sector, uint64_t version,
                          const uint8_t *prev_hash, const uint8_t *keys, size_t n,
                          struct version *v)
{
	v->n = n;
	v->e = calloc(n + 1, sizeof(*v->e));
	for (size_t i = 0; i < n; i++)
		memset(v->e[i].key, keys[i], PROTO_LIST_KEY_LEN);
	fixture_build_sector(f, sector, version, prev_hash, v->e, n, &v->b);
	version_open(v);
}

/* Apply d to another base than the context's, under the context's policy. */
static int try_apply_to(struct ctx *c, struct version *base, const struct delta *d)
{
	uint8_t *out = NULL, sig[PROTO_SIG_MAX];
	size_t out_len = 0, sig_len = 0;
	int rc = apply(base, d, &c->p, &out, &out_len, sig, &sig_len);
	if (rc)
		assert_null(out);
	free(out);
	return rc;
}

static void test_parse_header_refuses_null_arguments(void **state)
{
	struct ctx *c = *state;
	struct proto_delta_header h;
	assert_int_equal(proto_delta_parse_header(NULL, 0, &h), PROTO_ERR_ARG);
	assert_int_equal(proto_delta_parse_header(c->d.buf, c->d.len, NULL), PROTO_ERR_ARG);
	assert_int_equal(proto_delta_parse_header(c->d.buf, c->d.len, &h), 0);
}

static void test_apply_refuses_null_arguments(void **state)
{
	struct ctx *c = *state;
	struct proto_list *a = c->a.l;
	const uint8_t *d = c->d.buf, *ds = c->d.sig;
	const size_t dl = c->d.len, dsl = c->d.sig_len;
	uint8_t *out = NULL, sig[PROTO_SIG_MAX];
	size_t out_len, sig_len;
	assert_int_equal(
	        proto_delta_apply(NULL, d, dl, ds, dsl, &c->p, &out, &out_len, sig, &sig_len),
	        PROTO_ERR_ARG);
	assert_int_equal(proto_delta_apply(a, d, dl, ds, dsl, NULL, &out, &out_len, sig, &sig_len),
	                 PROTO_ERR_ARG);
	assert_int_equal(proto_delta_apply(a, d, dl, ds, dsl, &c->p, NULL, &out_len, sig, &sig_len),
	                 PROTO_ERR_ARG);
	assert_int_equal(proto_delta_apply(a, d, dl, ds, dsl, &c->p, &out, NULL, sig, &sig_len),
	                 PROTO_ERR_ARG);
	assert_int_equal(
	        proto_delta_apply(a, d, dl, ds, dsl, &c->p, &out, &out_len, NULL, &sig_len),
	        PROTO_ERR_ARG);
	assert_int_equal(proto_delta_apply(a, d, dl, ds, dsl, &c->p, &out, &out_len, sig, NULL),
	                 PROTO_ERR_ARG);
	assert_null(out);
}

static void test_refuses_delta_shorter_than_its_magic(void **state)
{
	struct ctx *c = *state;
	struct delta d = exact(c, 3); /* "CPL" */
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_TRUNCATED);
	free(d.buf);
}

/* A snapshot is not a delta, even one that happens to parse as a delta. */
static void test_refuses_delta_with_snapshot_magic(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(with_byte(c, 3, 'S'), PROTO_ERR_LIST_MAGIC);
}

/* The truncation test cuts a longer buffer; here nothing past an exact-size one is read. */
static void test_refuses_header_cut_short_without_reading_past_it(void **state)
{
	struct ctx *c = *state;
	struct delta d = exact(c, 150);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_TRUNCATED);
	free(d.buf);
	d = exact(c, PROTO_DELTA_HEADER_SIZE - 1);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_TRUNCATED);
	free(d.buf);
}

static void test_refuses_unknown_delta_format(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(with_byte(c, 5, PROTO_LIST_FORMAT + 1), PROTO_ERR_LIST_FORMAT);
}

static void test_refuses_result_signature_length_out_of_range(void **state)
{
	struct ctx *c = *state;
	/* no signature at all (the signature bytes zeroed too, so the padding rule holds) */
	struct delta d = altered(c, c->d.len);
	d.buf[D_SIG_LEN] = 0;
	memset(d.buf + D_SIG, 0, PROTO_SIG_MAX);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	free(d.buf);
	/* longer than the field: the padding after it would be read past the header, and past
	 * the end of this exact-size buffer */
	d = exact(c, c->d.len);
	d.buf[D_SIG_LEN] = PROTO_SIG_MAX + 1;
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	d.buf[D_SIG_LEN] = 0xff;
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	free(d.buf);
}

static void test_refuses_nonzero_reserved_header_bytes(void **state)
{
	struct ctx *c = *state;
	assert_int_equal(with_byte(c, 59, 1), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, 60, 1), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, 63, 1), PROTO_ERR_LIST_FIELD);
}

/* The bytes after a short result signature must be zero: one encoding per delta. The
 * signature must be a real one shorter than the field, so pick a next version whose
 * (deterministic ECDSA) signature is under 72 bytes, as three in four are. */
static void test_refuses_nonzero_signature_padding(void **state)
{
	struct ctx *c = *state;
	struct version t = {0};
	int found = 0;
	for (unsigned i = 0; i < 64 && !found; i++) {
		next_version(&c->f, &c->a, &t, 1, 1, 1, 40 + i);
		found = t.b.sig_len < PROTO_SIG_MAX;
		if (!found)
			version_free(&t);
	}
	assert_true(found);
	struct delta d;
	make_delta(&c->f, &c->a, &t, &d);
	assert_int_equal(try_apply(c, &d), 0);
	d.buf[D_SIG + t.b.sig_len] = 1; /* just after the signature */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	d.buf[D_SIG + t.b.sig_len] = 0;
	d.buf[D_SIG + PROTO_SIG_MAX - 1] = 1; /* the last byte of the field */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	free(d.buf);
	version_free(&t);
}

/* Version 0 means "no list": a delta from it is malformed, not merely for another base. */
static void test_refuses_base_version_zero(void **state)
{
	struct ctx *c = *state;
	struct delta d = altered(c, c->d.len);
	put_be64(d.buf + D_BASE_VER, 0);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	free(d.buf);
}

/* A delta goes forward: from 3 to 3 (or to 2) is malformed, whatever the gate holds. */
static void test_refuses_version_not_after_base(void **state)
{
	struct ctx *c = *state;
	c->p.held_version = 0; /* so that the rollback rule cannot be the one refusing */
	struct delta d = altered(c, c->d.len);
	put_be64(d.buf + D_VERSION, get_be64(d.buf + D_BASE_VER));
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	put_be64(d.buf + D_VERSION, get_be64(d.buf + D_BASE_VER) - 1);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	free(d.buf);
}

static void test_refuses_expiry_not_after_issue(void **state)
{
	struct ctx *c = *state;
	c->p.now = FIXTURE_ISSUED - 10; /* so that the expiry rule cannot be the one refusing */
	struct delta d = altered(c, c->d.len);
	put_be64(d.buf + D_EXPIRES, get_be64(d.buf + D_ISSUED));
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_FIELD);
	free(d.buf);
}

static void test_refuses_result_count_beyond_any_list(void **state)
{
	struct ctx *c = *state;
	struct delta d = altered(c, c->d.len);
	put_be32(d.buf + D_RESULT_CNT, PROTO_LIST_MAX_ENTRIES + 1);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_OVERSIZED);
	free(d.buf);
}

/* 65535 profiles do not fit in this delta: the size left for the ops must not wrap. */
static void test_refuses_profile_table_longer_than_the_delta(void **state)
{
	struct ctx *c = *state;
	struct delta d = altered(c, c->d.len);
	put_be16(d.buf + D_PROFILE_CNT, 0xffff);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_TRUNCATED);
	free(d.buf);
}

/* A gate of sector 7 holding, by mistake, sector 8's list: a delta for sector 7 built from
 * exactly that list (same version, same hash) must still not be merged into it. */
static void test_refuses_delta_for_a_base_of_another_sector(void **state)
{
	struct ctx *c = *state;
	static const uint8_t base_keys[] = {0x10, 0x30}, next_keys[] = {0x10, 0x20, 0x30};
	struct version base = {0}, next = {0};
	keyed_version(&c->f, FIXTURE_SECTOR + 1, 3, NULL, base_keys, 2, &base);
	keyed_version(&c->f, FIXTURE_SECTOR + 1, 4, proto_list_hash(base.l), next_keys, 3, &next);
	struct delta d;
	make_delta(&c->f, &base, &next, &d);
	put_be16(d.buf + D_SECTOR, FIXTURE_SECTOR);
	resign(c, &d);
	assert_int_equal(try_apply_to(c, &base, &d), PROTO_ERR_LIST_SECTOR);
	free(d.buf);
	version_free(&base);
	version_free(&next);
}

/* The profiles a delta brings in are checked as the list reader would check them. */
static void test_refuses_delta_with_bad_profile(void **state)
{
	struct ctx *c = *state;
	/* profile 0's scope */
	assert_int_equal(with_byte(c, PROTO_DELTA_HEADER_SIZE + 8, PROTO_SCOPE_HOUSEHOLD + 1),
	                 PROTO_ERR_LIST_FIELD);
}

/* The same addition twice, with both counts adjusted: the result would hold a key twice. */
static void test_refuses_duplicate_op_keys(void **state)
{
	struct ctx *c = *state;
	const size_t at = find_op(&c->d, DELTA_OP_ADD);
	struct delta d = altered(c, c->d.len + PROTO_DELTA_OP_SIZE);
	memmove(d.buf + at + PROTO_DELTA_OP_SIZE, d.buf + at, c->d.len - at);
	put_be32(d.buf + D_OP_COUNT, get_be32(d.buf + D_OP_COUNT) + 1);
	put_be32(d.buf + D_RESULT_CNT, get_be32(d.buf + D_RESULT_CNT) + 1);
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_ORDER);
	free(d.buf);
}

static void test_refuses_removal_from_empty_list(void **state)
{
	struct ctx *c = *state;
	static const uint8_t next_keys[] = {0x20};
	struct version base = {0}, next = {0};
	keyed_version(&c->f, FIXTURE_SECTOR, 3, NULL, NULL, 0, &base);
	keyed_version(&c->f, FIXTURE_SECTOR, 4, proto_list_hash(base.l), next_keys, 1, &next);
	struct delta d;
	make_delta(&c->f, &base, &next, &d);
	assert_int_equal(try_apply_to(c, &base, &d), 0);
	/* its one addition turned into a removal, and the result count to 0 */
	uint8_t *op = d.buf + first_op(&d);
	op[0] = DELTA_OP_REMOVE;
	memset(op + 1 + PROTO_LIST_KEY_LEN, 0, PROTO_LIST_ENTRY_SIZE - PROTO_LIST_KEY_LEN);
	put_be32(d.buf + D_RESULT_CNT, 0);
	resign(c, &d);
	assert_int_equal(try_apply_to(c, &base, &d), PROTO_ERR_DELTA_OP);
	free(d.buf);
	version_free(&base);
	version_free(&next);
}

/* A removal names a key and nothing else: any other encoding of it is refused. */
static void test_refuses_removal_carrying_more_than_a_key(void **state)
{
	struct ctx *c = *state;
	const size_t at = find_op(&c->d, DELTA_OP_REMOVE);
	assert_int_equal(with_byte(c, at + 1 + PROTO_LIST_KEY_LEN, 1), PROTO_ERR_LIST_FIELD);
	assert_int_equal(with_byte(c, at + PROTO_DELTA_OP_SIZE - 1, 1), PROTO_ERR_LIST_FIELD);
}

static void test_refuses_op_naming_missing_profile(void **state)
{
	struct ctx *c = *state;
	const size_t at = find_op(&c->d, DELTA_OP_ADD);
	struct delta d = altered(c, c->d.len);
	put_be16(d.buf + at + 1 + 8, FIXTURE_PROFILE_COUNT); /* one past the table */
	resign(c, &d);
	assert_int_equal(try_apply(c, &d), PROTO_ERR_LIST_PROFILE);
	free(d.buf);
}

static void test_refuses_op_with_unknown_status(void **state)
{
	struct ctx *c = *state;
	const size_t at = find_op(&c->d, DELTA_OP_ADD);
	assert_int_equal(with_byte(c, at + PROTO_DELTA_OP_SIZE - 1, PROTO_STATUS_MAX + 1),
	                 PROTO_ERR_LIST_FIELD);
}

/* Base {10, 30}, next {10, 20, 30}: the addition of 20 made a change, or a removal, of a
 * key the base lacks, with the result count adjusted. Merged blindly, either would drop 30
 * in its place. */
static void test_refuses_change_or_removal_of_absent_key(void **state)
{
	struct ctx *c = *state;
	static const uint8_t base_keys[] = {0x10, 0x30}, next_keys[] = {0x10, 0x20, 0x30};
	struct version base = {0}, next = {0};
	keyed_version(&c->f, FIXTURE_SECTOR, 3, NULL, base_keys, 2, &base);
	keyed_version(&c->f, FIXTURE_SECTOR, 4, proto_list_hash(base.l), next_keys, 3, &next);
	struct delta d;
	make_delta(&c->f, &base, &next, &d);
	assert_int_equal(try_apply_to(c, &base, &d), 0);
	uint8_t *op = d.buf + first_op(&d);
	assert_int_equal(op[0], DELTA_OP_ADD);
	op[0] = DELTA_OP_CHANGE;
	put_be32(d.buf + D_RESULT_CNT, 2);
	resign(c, &d);
	assert_int_equal(try_apply_to(c, &base, &d), PROTO_ERR_DELTA_OP);
	op[0] = DELTA_OP_REMOVE;
	memset(op + 1 + PROTO_LIST_KEY_LEN, 0, PROTO_LIST_ENTRY_SIZE - PROTO_LIST_KEY_LEN);
	put_be32(d.buf + D_RESULT_CNT, 1);
	resign(c, &d);
	assert_int_equal(try_apply_to(c, &base, &d), PROTO_ERR_DELTA_OP);
	free(d.buf);
	version_free(&base);
	version_free(&next);
}

/* Base {10}; ops: add 20, then remove 30 (absent), result count 1 + 1 - 1 = 1. The output
 * has room for one entry: the merge must notice it is full before writing 20 past it. */
static void test_refuses_ops_that_overflow_the_result(void **state)
{
	struct ctx *c = *state;
	static const uint8_t base_keys[] = {0x10}, next_keys[] = {0x10, 0x20};
	struct version base = {0}, next = {0};
	keyed_version(&c->f, FIXTURE_SECTOR, 3, NULL, base_keys, 1, &base);
	keyed_version(&c->f, FIXTURE_SECTOR, 4, proto_list_hash(base.l), next_keys, 2, &next);
	struct delta d;
	make_delta(&c->f, &base, &next, &d);
	assert_int_equal(try_apply_to(c, &base, &d), 0);
	d.buf = realloc(d.buf, d.len + PROTO_DELTA_OP_SIZE);
	uint8_t *op = d.buf + d.len;
	memset(op, 0, PROTO_DELTA_OP_SIZE);
	op[0] = DELTA_OP_REMOVE;
	memset(op + 1, 0x30, PROTO_LIST_KEY_LEN);
	d.len += PROTO_DELTA_OP_SIZE;
	put_be32(d.buf + D_OP_COUNT, 2);
	put_be32(d.buf + D_RESULT_CNT, 1);
	resign(c, &d);
	assert_int_equal(try_apply_to(c, &base, &d), PROTO_ERR_DELTA_OP);
	free(d.buf);
	version_free(&base);
	version_free(&next);
}

/* The fuzz targets call the merge directly: it must parse the header itself. */
static void test_apply_unverified_refuses_malformed_header(void **state)
{
	struct ctx *c = *state;
	struct proto_delta_header h;
	uint8_t *out = NULL;
	size_t len = 0;
	memset(&h, 0, sizeof(h));
	struct delta d = altered(c, c->d.len);
	put_be16(d.buf + 4, PROTO_LIST_FORMAT + 1);
	assert_int_equal(proto_delta_apply_unverified(c->a.l, d.buf, d.len, proto_list_hash(c->a.l),
	                                              &out, &len, &h),
	                 PROTO_ERR_LIST_FORMAT);
	free(d.buf);
	d = exact(c, 3);
	assert_int_equal(proto_delta_apply_unverified(c->a.l, d.buf, d.len, proto_list_hash(c->a.l),
	                                              &out, &len, &h),
	                 PROTO_ERR_LIST_TRUNCATED);
	free(d.buf);
	assert_null(out);
	assert_int_equal(proto_delta_apply_unverified(c->a.l, c->d.buf, c->d.len,
	                                              proto_list_hash(c->a.l), &out, &len, &h),
	                 0);
	free(out);
}

static void test_build_refuses_bad_signature_length(void **state)
{
	struct ctx *c = *state;
	uint8_t *out = NULL, sig[PROTO_SIG_MAX + 1] = {0};
	size_t len = 0;
	memcpy(sig, c->b.b.sig, c->b.b.sig_len);
	assert_int_equal(proto_delta_build(c->a.l, c->b.l, sig, 0, c->f.signer, &out, &len),
	                 PROTO_ERR_ARG);
	assert_int_equal(
	        proto_delta_build(c->a.l, c->b.l, sig, PROTO_SIG_MAX + 1, c->f.signer, &out, &len),
	        PROTO_ERR_ARG);
	assert_null(out);
}

static void test_build_refuses_lists_of_two_sectors(void **state)
{
	struct ctx *c = *state;
	static const uint8_t keys[] = {0x10};
	struct version other = {0};
	/* consecutive to the base in every other respect */
	keyed_version(&c->f, FIXTURE_SECTOR + 1, 4, proto_list_hash(c->a.l), keys, 1, &other);
	uint8_t *out = NULL;
	size_t len = 0;
	assert_int_equal(proto_delta_build(c->a.l, other.l, other.b.sig, other.b.sig_len,
	                                   c->f.signer, &out, &len),
	                 PROTO_ERR_LIST_SECTOR);
	assert_null(out);
	version_free(&other);
}

/* A target must name the base as its predecessor and come after it; either alone is not
 * enough. */
static void test_build_refuses_target_that_does_not_follow_the_base(void **state)
{
	struct ctx *c = *state;
	static const uint8_t keys[] = {0x10};
	const uint8_t *base_hash = proto_list_hash(c->a.l);
	struct {
		uint64_t version;
		const uint8_t *prev_hash;
		int want;
	} cases[] = {
	        {4, base_hash, 0},
	        {3, base_hash, PROTO_ERR_DELTA_BASE}, /* same version as the base */
	        {2, base_hash, PROTO_ERR_DELTA_BASE}, /* older */
	        {4, NULL, PROTO_ERR_DELTA_BASE},      /* next version, no predecessor */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct version t = {0};
		keyed_version(&c->f, FIXTURE_SECTOR, cases[i].version, cases[i].prev_hash, keys, 1,
		              &t);
		uint8_t *out = NULL;
		size_t len = 0;
		assert_int_equal(proto_delta_build(c->a.l, t.l, t.b.sig, t.b.sig_len, c->f.signer,
		                                   &out, &len),
		                 cases[i].want);
		free(out);
		version_free(&t);
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_apply_gives_exactly_the_next_snapshot),
	        cmocka_unit_test(test_chain_of_deltas),
	        T(test_valid_delta_applies),
	        T(test_refuses_base_not_held),
	        T(test_refuses_bad_delta_signature),
	        T(test_refuses_unknown_key),
	        T(test_refuses_rollback_and_expiry),
	        T(test_refuses_truncated_oversized_and_miscounted),
	        T(test_refuses_ops_that_do_not_fit_the_base),
	        T(test_refuses_result_other_than_signed),
	        T(test_build_refuses_non_consecutive_versions),
	        T(test_parse_header_refuses_null_arguments),
	        T(test_apply_refuses_null_arguments),
	        T(test_refuses_delta_shorter_than_its_magic),
	        T(test_refuses_delta_with_snapshot_magic),
	        T(test_refuses_header_cut_short_without_reading_past_it),
	        T(test_refuses_unknown_delta_format),
	        T(test_refuses_result_signature_length_out_of_range),
	        T(test_refuses_nonzero_reserved_header_bytes),
	        T(test_refuses_nonzero_signature_padding),
	        T(test_refuses_base_version_zero),
	        T(test_refuses_version_not_after_base),
	        T(test_refuses_expiry_not_after_issue),
	        T(test_refuses_result_count_beyond_any_list),
	        T(test_refuses_profile_table_longer_than_the_delta),
	        T(test_refuses_delta_for_a_base_of_another_sector),
	        T(test_refuses_delta_with_bad_profile),
	        T(test_refuses_duplicate_op_keys),
	        T(test_refuses_removal_from_empty_list),
	        T(test_refuses_removal_carrying_more_than_a_key),
	        T(test_refuses_op_naming_missing_profile),
	        T(test_refuses_op_with_unknown_status),
	        T(test_refuses_change_or_removal_of_absent_key),
	        T(test_refuses_ops_that_overflow_the_result),
	        T(test_apply_unverified_refuses_malformed_header),
	        T(test_build_refuses_bad_signature_length),
	        T(test_build_refuses_lists_of_two_sectors),
	        T(test_build_refuses_target_that_does_not_follow_the_base),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
