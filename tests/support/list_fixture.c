#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
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
	proto_key_free(pub); /* the ring keeps its own copy */
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

/* --- format 2 ------------------------------------------------------------------------ */

static void v2_stream(struct v2list *l)
{
	uint32_t n = 1 + 2 * l->m.n_chunks;
	const uint8_t **files = calloc(n, sizeof(*files));
	size_t *lens = calloc(n, sizeof(*lens));
	assert_non_null(files);
	assert_non_null(lens);
	files[0] = l->head;
	lens[0] = l->head_len;
	for (uint32_t j = 0; j < l->m.n_chunks; j++) {
		files[1 + 2 * j] = l->chunks[j].idx;
		lens[1 + 2 * j] = l->chunks[j].idx_len;
		files[2 + 2 * j] = l->chunks[j].dat;
		lens[2 + 2 * j] = (size_t)l->chunks[j].n * PROTO_CLIST_ENTRY_SIZE;
	}
	assert_int_equal(proto_clist_stream_encode(l->sector, l->version, l->manifest,
	                                           l->manifest_len, files, lens, n, &l->stream,
	                                           &l->stream_len),
	                 0);
	free(files);
	free(lens);
}

static uint8_t *dup_bytes(const uint8_t *b, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	assert_non_null(c);
	if (n)
		memcpy(c, b, n);
	return c;
}

void fixture_v2_build(const struct list_fixture *f, uint16_t sector, uint64_t version,
                      unsigned bits, struct proto_list_entry *e, size_t n, struct v2list *out)
{
	struct proto_clist_params p = {
	        .sector = sector,
	        .version = version,
	        .issued_at = FIXTURE_ISSUED,
	        .expires_at = FIXTURE_EXPIRES,
	        .bits = bits,
	};
	struct proto_clist_built b;
	assert_int_equal(
	        proto_clist_build(&p, f->signer, fixture_profiles, FIXTURE_PROFILE_COUNT, e, n, &b),
	        0);
	memset(out, 0, sizeof(*out));
	out->sector = sector;
	out->version = version;
	out->head = dup_bytes(b.head_bytes, b.head_len);
	out->head_len = b.head_len;
	out->manifest = dup_bytes(b.manifest_bytes, b.manifest_len);
	out->manifest_len = b.manifest_len;
	memcpy(out->sig, b.sig, b.sig_len);
	out->sig_len = b.sig_len;
	assert_int_equal(proto_clist_manifest_copy(&out->m, &b.manifest), 0);
	out->chunks = b.chunks; /* taken */
	b.chunks = NULL;
	proto_clist_built_free(&b);
	v2_stream(out);
}

static int change_cmp(const void *a, const void *b)
{
	return memcmp(((const struct v2change *)a)->e.key, ((const struct v2change *)b)->e.key,
	              PROTO_LIST_KEY_LEN);
}

static int read_fixture_chunk(void *ctx, uint32_t j, uint8_t **dat, uint32_t *n,
                              const uint8_t **idx, size_t *idx_len)
{
	(void)idx; /* every leaf hashed again */
	(void)idx_len;
	const struct v2list *l = ctx;
	*n = l->chunks[j].n;
	*dat = dup_bytes(l->chunks[j].dat, (size_t)*n * PROTO_CLIST_ENTRY_SIZE);
	return 0;
}

void fixture_v2_next(const struct list_fixture *f, const struct v2list *base,
                     struct v2change *changes, size_t n, struct v2list *next, uint8_t **delta,
                     size_t *delta_len)
{
	struct proto_clist_head h;
	assert_int_equal(proto_clist_head_parse(base->head, base->head_len, &h), 0);
	if (n > 1)
		qsort(changes, n, sizeof(*changes), change_cmp);
	/* per chunk, the sorted operations */
	struct proto_clist_delta_chunk *dc = calloc(n ? n : 1, sizeof(*dc));
	uint8_t *ops = calloc(n ? n : 1, PROTO_CLIST_OP_SIZE);
	assert_non_null(dc);
	assert_non_null(ops);
	uint32_t k = 0;
	int64_t count = h.entry_count;
	for (size_t i = 0; i < n; i++) {
		uint8_t *op = ops + i * PROTO_CLIST_OP_SIZE;
		op[0] = changes[i].op;
		proto_clist_entry_encode(op + 1, &changes[i].e);
		if (op[0] == PROTO_CLIST_OP_REMOVE)
			memset(op + 1 + PROTO_LIST_KEY_LEN, 0,
			       PROTO_CLIST_ENTRY_SIZE - PROTO_LIST_KEY_LEN);
		count += op[0] == PROTO_CLIST_OP_ADD ? 1 : op[0] == PROTO_CLIST_OP_REMOVE ? -1 : 0;
		uint32_t chunk = proto_clist_chunk_of(changes[i].e.key, h.bits);
		if (k == 0 || dc[k - 1].chunk != chunk)
			dc[k++] = (struct proto_clist_delta_chunk){.chunk = chunk, .ops = op};
		dc[k - 1].op_count++;
	}
	h.version = base->version + 1;
	h.entry_count = (uint32_t)count;
	proto_key_id(f->signer, h.key_id);
	proto_sha256(base->manifest, base->manifest_len, h.prev_manifest);
	uint8_t *head = NULL;
	size_t head_len = 0;
	assert_int_equal(proto_clist_head_encode(&h, &head, &head_len), 0);
	struct proto_clist_applied ap;
	assert_int_equal(proto_clist_derive(&base->m, head, head_len, dc, k, read_fixture_chunk,
	                                    (void *)base, &ap),
	                 0);
	memset(next, 0, sizeof(*next));
	next->sector = base->sector;
	next->version = h.version;
	next->head = head;
	next->head_len = head_len;
	next->manifest = dup_bytes(ap.manifest_bytes, ap.manifest_len);
	next->manifest_len = ap.manifest_len;
	assert_int_equal(proto_sign(f->signer, next->manifest, next->manifest_len, next->sig,
	                            &next->sig_len),
	                 0);
	assert_int_equal(proto_clist_manifest_copy(&next->m, &ap.manifest), 0);
	next->chunks = calloc(next->m.n_chunks, sizeof(*next->chunks));
	assert_non_null(next->chunks);
	for (uint32_t j = 0, c = 0; j < next->m.n_chunks; j++) {
		struct proto_clist_chunk_data *d = &next->chunks[j];
		const struct proto_clist_chunk_data *s =
		        c < ap.n_changed && ap.changed[c] == j ? &ap.chunks[c++] : &base->chunks[j];
		d->n = s->n;
		d->dat = dup_bytes(s->dat, (size_t)s->n * PROTO_CLIST_ENTRY_SIZE);
		d->idx = dup_bytes(s->idx, s->idx_len);
		d->idx_len = s->idx_len;
	}
	struct proto_clist_delta d = {
	        .sector = base->sector,
	        .base_version = base->version,
	        .version = next->version,
	        .head = head,
	        .head_len = head_len,
	};
	proto_sha256(base->manifest, base->manifest_len, d.base_manifest);
	assert_int_equal(proto_clist_delta_encode(&d, dc, k, delta, delta_len), 0);
	proto_clist_applied_free(&ap);
	proto_clist_head_free(&h);
	free(dc);
	free(ops);
	v2_stream(next);
}

void fixture_v2_load(const char *manifest_path, struct v2list *out)
{
	struct proto_clist_dir d;
	assert_int_equal(proto_clist_dir_open(&d, manifest_path, NULL), 0);
	memset(out, 0, sizeof(*out));
	out->sector = d.h.sector;
	out->version = d.h.version;
	out->head = dup_bytes(d.head, d.head_len);
	out->head_len = d.head_len;
	out->manifest = dup_bytes(d.manifest, d.manifest_len);
	out->manifest_len = d.manifest_len;
	assert_true(d.sig_len <= PROTO_SIG_MAX);
	memcpy(out->sig, d.sig, d.sig_len);
	out->sig_len = d.sig_len;
	assert_int_equal(proto_clist_manifest_copy(&out->m, &d.m), 0);
	out->chunks = calloc(d.m.n_chunks, sizeof(*out->chunks));
	assert_non_null(out->chunks);
	for (uint32_t j = 0; j < d.m.n_chunks; j++) {
		size_t dl = 0;
		assert_int_equal(proto_clist_dir_file(&d, j, 0, &out->chunks[j].dat, &dl), 0);
		out->chunks[j].n = (uint32_t)(dl / PROTO_CLIST_ENTRY_SIZE);
		assert_int_equal(proto_clist_dir_file(&d, j, 1, &out->chunks[j].idx,
		                                      &out->chunks[j].idx_len),
		                 0);
	}
	proto_clist_dir_close(&d);
	v2_stream(out);
}

void fixture_v2_free(struct v2list *l)
{
	if (!l)
		return;
	if (l->chunks)
		for (uint32_t j = 0; j < l->m.n_chunks; j++) {
			free(l->chunks[j].dat);
			free(l->chunks[j].idx);
		}
	free(l->chunks);
	free(l->head);
	free(l->manifest);
	free(l->stream);
	proto_clist_manifest_free(&l->m);
	memset(l, 0, sizeof(*l));
}
