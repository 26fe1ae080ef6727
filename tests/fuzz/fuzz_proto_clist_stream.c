/*
 * Fuzz target: a format 2 snapshot stream and the decoders of what it carries (the manifest,
 * the head, each chunk's index and entries). A gate checks the manifest's signature before
 * anything else; the fuzzer cannot sign, so this target calls the structural decoders
 * directly on the parts, which is what a bad file could break first.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/clist.h"
#include "proto/error.h"
#include "proto/sign.h"

static const struct proto_rights_profile profiles[] = {
        {.product = 1, .valid_to = PROTO_DAY_UNBOUNDED_TO},
        {.product = 2, .limit = 10, .period = PROTO_PERIOD_LIFETIME, .valid_to = 0xFFFF},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_clist_stream s;
	if (proto_clist_stream_parse(data, size, &s) != 0)
		return 0;
	struct proto_clist_manifest m;
	int have_m = proto_clist_manifest_parse(s.manifest, s.manifest_len, &m) == 0;
	if (have_m) {
		/* the canonical form is unique: encoding what was parsed gives the input back */
		uint8_t *text = NULL;
		size_t len = 0;
		if (proto_clist_manifest_encode(&m, &text, &len) != 0 || len != s.manifest_len ||
		    memcmp(text, s.manifest, len) != 0)
			abort();
		free(text);
	}
	struct proto_clist_head h;
	int have_h = 0;
	size_t cursor = 0;
	const uint8_t *file;
	size_t flen;
	for (uint32_t i = 0; proto_clist_stream_next(&s, &cursor, &file, &flen); i++) {
		if (i == 0) {
			have_h = proto_clist_head_parse(file, flen, &h) == 0;
		} else if (i % 2 == 1) {
			struct proto_clist_idx ix;
			if (proto_clist_idx_parse(file, flen, &ix) == 0 && ix.leaf_count)
				(void)proto_clist_idx_find(&ix, file);
		} else if (have_h && flen % PROTO_CLIST_ENTRY_SIZE == 0) {
			(void)proto_clist_chunk_check(file,
			                              (uint32_t)(flen / PROTO_CLIST_ENTRY_SIZE),
			                              h.bits, (i - 2) / 2, h.profile_count);
		}
		if (have_m && have_h && i >= 1 && i % 2 == 0 && (i - 2) / 2 < m.n_chunks) {
			/* the whole chunk check, as at install (hashes will mostly refuse) */
			const uint8_t *idx = NULL;
			size_t il = 0, c2 = 0;
			for (uint32_t k = 0; k < i && proto_clist_stream_next(&s, &c2, &idx, &il);
			     k++)
				;
			(void)proto_clist_chunk_verify(&m, &h, (i - 2) / 2, idx, il, file, flen);
		}
	}
	if (have_h)
		proto_clist_head_free(&h);
	if (have_m)
		proto_clist_manifest_free(&m);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	struct proto_key *key = NULL;
	if (proto_key_generate(&key) != 0)
		abort();
	for (unsigned bits = 0; bits <= 2; bits++) {
		struct proto_list_entry e[200];
		memset(e, 0, sizeof(e));
		size_t n = 40 + bits * 70;
		for (size_t i = 0; i < n; i++) {
			uint8_t id[2] = {(uint8_t)i, (uint8_t)bits};
			proto_list_key(5, id, sizeof(id), e[i].key);
			e[i].profile = (uint16_t)(i % 2);
			e[i].status = (uint8_t)(i % 7 == 0);
		}
		struct proto_clist_params p = {.sector = 5,
		                               .version = 1 + bits,
		                               .issued_at = 100,
		                               .expires_at = 200,
		                               .bits = bits};
		struct proto_clist_built b;
		uint8_t *stream = NULL;
		size_t len = 0;
		if (proto_clist_build(&p, key, profiles, 2, e, n, &b) != 0 ||
		    proto_clist_built_stream(&b, &stream, &len) != 0)
			abort();
		emit(stream, len, ctx);
		free(stream);
		proto_clist_built_free(&b);
	}
	proto_key_free(key);
}
