/*
 * Fuzz target: the list snapshot decoder. Whatever the bytes, opening must either refuse
 * with an error code or give a list whose header, entry checks and lookups stay inside
 * the buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private copy with no slack: ASan flags any read past the end. */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct proto_list *l = NULL;
	if (proto_list_open_mem(&l, buf, size) == 0) {
		const struct proto_list_header *h = proto_list_header(l);
		(void)proto_list_check_entries(l);
		struct proto_list_entry e;
		struct proto_rights_profile p;
		/* look up the first and last entries' keys, and one absent key */
		if (h->entry_count > 0) {
			uint8_t key[PROTO_LIST_KEY_LEN];
			if (proto_list_entry_at(l, 0, &e) == 0) {
				memcpy(key, e.key, sizeof(key));
				(void)proto_list_lookup(l, key, &e, &p);
			}
			if (proto_list_entry_at(l, h->entry_count - 1, &e) == 0) {
				memcpy(key, e.key, sizeof(key));
				(void)proto_list_lookup(l, key, &e, &p);
			}
		}
		static const uint8_t absent[PROTO_LIST_KEY_LEN] = {0x80};
		(void)proto_list_lookup(l, absent, &e, &p);
		for (uint32_t i = 0; i < h->profile_count && i < 8; i++)
			(void)proto_list_profile_at(l, (uint16_t)i, &p);
		(void)proto_list_hash(l);
		proto_list_close(l);
	}
	free(buf);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	struct proto_key *key = NULL;
	if (proto_key_generate(&key) != 0)
		abort();
	static const struct proto_rights_profile profiles[] = {
	        {.product = 1, .valid_to = PROTO_DAY_UNBOUNDED_TO},
	        {.product = 2,
	         .limit = 24,
	         .period = PROTO_PERIOD_YEAR,
	         .scope = PROTO_SCOPE_HOUSEHOLD,
	         .valid_to = PROTO_DAY_UNBOUNDED_TO},
	};
	for (size_t n = 0; n <= 64; n = n ? n * 4 : 1) {
		struct proto_list_entry e[64];
		memset(e, 0, sizeof(e));
		for (size_t i = 0; i < n; i++) {
			uint8_t id[2] = {(uint8_t)i, (uint8_t)n};
			proto_list_key(3, id, sizeof(id), e[i].key);
			e[i].profile = (uint16_t)(i % 2);
			e[i].household = (uint32_t)i;
			e[i].status = (uint8_t)(i % 4);
		}
		struct proto_list_params p = {
		        .sector = 3, .version = 1 + n, .issued_at = 100, .expires_at = 200};
		uint8_t *buf = NULL;
		size_t len = 0;
		if (proto_list_build(&p, key, profiles, 2, e, n, &buf, &len) != 0)
			abort();
		emit(buf, len, ctx);
		free(buf);
	}
	proto_key_free(key);
}
