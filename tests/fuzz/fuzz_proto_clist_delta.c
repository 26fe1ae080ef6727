/*
 * Fuzz target: a format 2 delta against a fixed base version: the framing, then the same
 * derivation a gate runs (the changed chunks rebuilt from sorted operations and checked,
 * their indexes, the new manifest). The server's signature over the result is what a gate
 * checks last; the fuzzer cannot sign, so it stops before it (proto_clist_derive). Whatever
 * derives must be a version a gate could hold: every rebuilt chunk passes the install checks,
 * and its index, made from the base's as a gate makes it, is the one a full build makes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/clist.h"
#include "proto/error.h"
#include "proto/sign.h"

#define BASE_PASSES 120
#define BITS        2

static const struct proto_rights_profile profiles[] = {
        {.product = 1, .valid_to = PROTO_DAY_UNBOUNDED_TO},
        {.product = 2, .limit = 10, .period = PROTO_PERIOD_LIFETIME, .valid_to = 0xFFFF},
};

static struct proto_key *key;
static struct proto_clist_built base;
static uint8_t base_hash[PROTO_HASH_LEN];

static void entry(struct proto_list_entry *e, size_t i, uint8_t tag)
{
	uint8_t id[2] = {(uint8_t)i, tag};
	memset(e, 0, sizeof(*e));
	proto_list_key(5, id, sizeof(id), e->key);
	e->profile = (uint16_t)(i % 2);
}

static void init_base(void)
{
	if (key)
		return;
	struct proto_list_entry e[BASE_PASSES];
	if (proto_key_generate(&key) != 0)
		abort();
	for (size_t i = 0; i < BASE_PASSES; i++)
		entry(&e[i], i, 0);
	struct proto_clist_params p = {
	        .sector = 5, .version = 1, .issued_at = 100, .expires_at = 200, .bits = BITS};
	if (proto_clist_build(&p, key, profiles, 2, e, BASE_PASSES, &base) != 0)
		abort();
	proto_sha256(base.manifest_bytes, base.manifest_len, base_hash);
}

static int read_base(void *ctx, uint32_t j, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                     size_t *idx_len)
{
	(void)ctx;
	/* the base's index, as a gate's store gives it: the leaves a delta leaves alone are
	 * kept (the result must be the index a full build makes: checked below) */
	*idx = base.chunks[j].idx;
	*idx_len = base.chunks[j].idx_len;
	size_t len = (size_t)base.chunks[j].n * PROTO_CLIST_ENTRY_SIZE;
	*dat = malloc(len ? len : 1);
	if (!*dat)
		return PROTO_ERR_NOMEM;
	memcpy(*dat, base.chunks[j].dat, len);
	*n = base.chunks[j].n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_base();
	struct proto_clist_delta d;
	if (proto_clist_delta_parse(data, size, &d) != 0)
		return 0;
	struct proto_clist_delta_chunk c[1u << BITS];
	size_t cursor = 0;
	uint32_t k = 0;
	while (k < (1u << BITS) && proto_clist_delta_next(&d, &cursor, &c[k]))
		k++;
	struct proto_clist_applied ap;
	if (proto_clist_derive(&base.manifest, d.head, d.head_len, c, k, read_base, NULL, &ap) != 0)
		return 0;
	for (uint32_t i = 0; i < ap.n_changed; i++) {
		uint32_t j = ap.changed[i];
		int rc = proto_clist_chunk_verify(&ap.manifest, &ap.head, j, ap.chunks[i].idx,
		                                  ap.chunks[i].idx_len, ap.chunks[i].dat,
		                                  (size_t)ap.chunks[i].n * PROTO_CLIST_ENTRY_SIZE);
		if (rc != 0) {
			fprintf(stderr, "derived chunk %u fails the install checks: %s\n", j,
			        proto_strerror(rc));
			abort();
		}
		uint8_t *full;
		size_t full_len;
		if (proto_clist_idx_build(j, ap.chunks[i].dat, ap.chunks[i].n, &full, &full_len) !=
		            0 ||
		    full_len != ap.chunks[i].idx_len ||
		    memcmp(full, ap.chunks[i].idx, full_len) != 0) {
			fprintf(stderr, "derived chunk %u: its index is not a full build's\n", j);
			abort();
		}
		free(full);
	}
	struct proto_clist_manifest m;
	if (proto_clist_manifest_parse(ap.manifest_bytes, ap.manifest_len, &m) != 0)
		abort(); /* a derived manifest is always canonical */
	proto_clist_manifest_free(&m);
	proto_clist_applied_free(&ap);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	init_base();
	for (int variant = 0; variant < 4; variant++) {
		/* ops: change a few, remove some, add some, in as many chunks as they fall */
		uint8_t ops[40 * PROTO_CLIST_OP_SIZE];
		struct proto_list_entry e[40];
		uint8_t code[40];
		size_t n = 0;
		for (size_t i = 0; i < 10; i++) {
			entry(&e[n], i * 7 + (size_t)variant, 0);
			e[n].used = (uint8_t)(variant + 1);
			code[n++] = i % 3 == 0 ? PROTO_CLIST_OP_REMOVE : PROTO_CLIST_OP_CHANGE;
		}
		for (size_t i = 0; i < (size_t)variant * 3; i++) {
			entry(&e[n], i, (uint8_t)(variant + 1));
			code[n++] = PROTO_CLIST_OP_ADD;
		}
		/* sort by key (tiny: insertion sort) */
		for (size_t i = 1; i < n; i++)
			for (size_t j = i; j > 0 && memcmp(e[j - 1].key, e[j].key, 8) > 0; j--) {
				struct proto_list_entry t = e[j];
				uint8_t tc = code[j];
				e[j] = e[j - 1];
				code[j] = code[j - 1];
				e[j - 1] = t;
				code[j - 1] = tc;
			}
		struct proto_clist_delta_chunk c[1u << BITS];
		uint32_t k = 0;
		for (size_t i = 0; i < n; i++) {
			uint8_t *op = ops + i * PROTO_CLIST_OP_SIZE;
			op[0] = code[i];
			proto_clist_entry_encode(op + 1, &e[i]);
			if (code[i] == PROTO_CLIST_OP_REMOVE)
				memset(op + 9, 0, PROTO_CLIST_ENTRY_SIZE - 8);
			uint32_t j = proto_clist_chunk_of(e[i].key, BITS);
			if (k == 0 || c[k - 1].chunk != j)
				c[k++] = (struct proto_clist_delta_chunk){.chunk = j, .ops = op};
			c[k - 1].op_count++;
		}
		struct proto_clist_head h = base.head;
		h.version = 2;
		uint8_t *head = NULL, *delta = NULL;
		size_t head_len = 0, delta_len = 0;
		if (proto_clist_head_encode(&h, &head, &head_len) != 0)
			abort();
		struct proto_clist_delta d = {.sector = 5,
		                              .base_version = 1,
		                              .version = 2,
		                              .head = head,
		                              .head_len = head_len};
		memcpy(d.base_manifest, base_hash, PROTO_HASH_LEN);
		if (proto_clist_delta_encode(&d, c, k, &delta, &delta_len) != 0)
			abort();
		emit(delta, delta_len, ctx);
		free(delta);
		free(head);
	}
}
