/*
 * Fuzz target: the delta decoder and merge. The input is taken as a delta against a fixed
 * base list; the signature check is skipped (proto_delta_apply_unverified) so that the
 * fuzzer reaches the parser and the merge, which are what a bad file could break. The
 * base hash is the real one, so inputs derived from the seeds get through the base check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "list_internal.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"

#define BASE_PASSES 40

static const struct proto_rights_profile profiles[] = {
        {.product = 1, .valid_to = PROTO_DAY_UNBOUNDED_TO},
        {.product = 2,
         .limit = 10,
         .period = PROTO_PERIOD_LIFETIME,
         .valid_to = PROTO_DAY_UNBOUNDED_TO},
};

static struct proto_key *key;
static uint8_t *base_buf;
static size_t base_len;
static struct proto_list *base;

static void entries(struct proto_list_entry *e, size_t n, uint8_t tag)
{
	memset(e, 0, n * sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		uint8_t id[2] = {(uint8_t)i, tag};
		proto_list_key(5, id, sizeof(id), e[i].key);
		e[i].profile = (uint16_t)(i % 2);
	}
}

static void build(uint64_t version, const uint8_t *prev, struct proto_list_entry *e, size_t n,
                  uint8_t **buf, size_t *len)
{
	struct proto_list_params p = {
	        .sector = 5, .version = version, .issued_at = 100, .expires_at = 200};
	if (prev)
		memcpy(p.prev_hash, prev, PROTO_HASH_LEN);
	if (proto_list_build(&p, key, profiles, 2, e, n, buf, len) != 0)
		abort();
}

static void init_base(void)
{
	if (base)
		return;
	struct proto_list_entry e[BASE_PASSES];
	if (proto_key_generate(&key) != 0)
		abort();
	entries(e, BASE_PASSES, 0);
	build(1, NULL, e, BASE_PASSES, &base_buf, &base_len);
	if (proto_list_open_mem(&base, base_buf, base_len) != 0)
		abort();
	(void)proto_list_hash(base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	init_base();
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct proto_delta_header h;
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (proto_delta_apply_unverified(base, buf, size, proto_list_hash(base), &out, &out_len,
	                                 &h) == 0) {
		/* whatever merged must itself open as a list */
		struct proto_list *l = NULL;
		int rc = proto_list_open_mem(&l, out, out_len);
		if (rc != 0) {
			fprintf(stderr, "merged delta does not open as a list: %s\n",
			        proto_strerror(rc));
			abort();
		}
		(void)proto_list_check_entries(l);
		proto_list_close(l);
		free(out);
	}
	free(buf);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	init_base();
	/* next versions: some removed, some changed, some added */
	for (int variant = 0; variant < 4; variant++) {
		struct proto_list_entry e[BASE_PASSES + 10];
		entries(e, BASE_PASSES, 0);
		size_t n = BASE_PASSES - (size_t)variant * 3;
		for (size_t i = 0; i < n; i += 5)
			e[i].used = (uint8_t)(variant + 1);
		struct proto_list_entry fresh[10];
		entries(fresh, 10, (uint8_t)(variant + 1));
		memcpy(e + n, fresh, (size_t)variant * 2 * sizeof(*e));
		n += (size_t)variant * 2;
		uint8_t *next_buf, *delta, sig[PROTO_SIG_MAX];
		size_t next_len, delta_len, sig_len;
		struct proto_list *next;
		build(2, proto_list_hash(base), e, n, &next_buf, &next_len);
		if (proto_list_open_mem(&next, next_buf, next_len) != 0 ||
		    proto_sign(key, next_buf, next_len, sig, &sig_len) != 0 ||
		    proto_delta_build(base, next, sig, sig_len, key, &delta, &delta_len) != 0)
			abort();
		emit(delta, delta_len, ctx);
		free(delta);
		proto_list_close(next);
		free(next_buf);
	}
}
