#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "list_fixture.h"

const struct proto_rights_profile fixture_profiles[3] = {
        {.product = 10, .valid_from = 11000, .valid_to = 11500},
        {.product = 20,
         .limit = 10,
         .period = PROTO_PERIOD_LIFETIME,
         .flags = PROTO_PROFILE_ENTRIES_ON_CARD,
         .valid_to = PROTO_DAY_UNBOUNDED_TO},
        {.product = 30,
         .limit = 24,
         .period = PROTO_PERIOD_YEAR,
         .scope = PROTO_SCOPE_HOUSEHOLD,
         .fare = PROTO_FARE_RESIDENT,
         .valid_to = PROTO_DAY_UNBOUNDED_TO},
};

void fixture_init(struct list_fixture *f)
{
	char pem[512];
	struct proto_key *pub = NULL;
	assert_int_equal(proto_key_generate(&f->signer), 0);
	assert_int_equal(proto_key_public_pem(f->signer, pem, sizeof(pem)), 0);
	assert_int_equal(proto_key_parse_public(&pub, (const uint8_t *)pem, strlen(pem)), 0);
	assert_false(proto_key_is_private(pub));
	f->ring = proto_keyring_new();
	assert_non_null(f->ring);
	assert_int_equal(proto_keyring_add(f->ring, pub), 0);
}

void fixture_free(struct list_fixture *f)
{
	proto_key_free(f->signer);
	proto_keyring_free(f->ring);
}

void fixture_entries(struct proto_list_entry *e, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++) {
		char id[48];
		int len = snprintf(id, sizeof(id), "pass-%u-%zu", tag, i);
		memset(&e[i], 0, sizeof(e[i]));
		proto_list_key(FIXTURE_SECTOR, (const uint8_t *)id, (size_t)len, e[i].key);
		e[i].profile = (uint16_t)(i % FIXTURE_PROFILE_COUNT);
		e[i].household = e[i].profile == 2 ? (uint32_t)(1 + i / 3) : 0;
		e[i].used = (uint8_t)(i % 5);
		e[i].used_period = 26;
		e[i].status = (uint8_t)(i % 17 == 0 ? PROTO_STATUS_REVOKED : PROTO_STATUS_ACTIVE);
	}
}

void fixture_build(const struct list_fixture *f, uint64_t version, const uint8_t *prev_hash,
                   struct proto_list_entry *e, size_t n, struct built_list *out)
{
	struct proto_list_params p = {
	        .sector = FIXTURE_SECTOR,
	        .version = version,
	        .issued_at = FIXTURE_ISSUED,
	        .expires_at = FIXTURE_EXPIRES,
	};
	if (prev_hash)
		memcpy(p.prev_hash, prev_hash, PROTO_HASH_LEN);
	assert_int_equal(proto_list_build(&p, f->signer, fixture_profiles, FIXTURE_PROFILE_COUNT, e,
	                                  n, &out->buf, &out->len),
	                 0);
	fixture_resign(f, out->buf, out->len, out->sig, &out->sig_len);
}

void fixture_build_sector(const struct list_fixture *f, uint16_t sector, uint64_t version,
                          const uint8_t *prev_hash, struct proto_list_entry *e, size_t n,
                          struct built_list *out)
{
	struct proto_list_params p = {
	        .sector = sector,
	        .version = version,
	        .issued_at = FIXTURE_ISSUED,
	        .expires_at = FIXTURE_EXPIRES,
	};
	if (prev_hash)
		memcpy(p.prev_hash, prev_hash, PROTO_HASH_LEN);
	assert_int_equal(proto_list_build(&p, f->signer, fixture_profiles, FIXTURE_PROFILE_COUNT, e,
	                                  n, &out->buf, &out->len),
	                 0);
	fixture_resign(f, out->buf, out->len, out->sig, &out->sig_len);
}

void fixture_resign(const struct list_fixture *f, const uint8_t *buf, size_t len,
                    uint8_t sig[PROTO_SIG_MAX], size_t *sig_len)
{
	assert_int_equal(proto_sign(f->signer, buf, len, sig, sig_len), 0);
}
