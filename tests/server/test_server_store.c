/*
 * test_server_store — the sqlite store, the publisher and the sync backend as libraries:
 * schema refusal, ingestion deduplicated on (device, stream, seq) with durable acks,
 * consumption feeding household quotas, stable profile indices, revocation in the next
 * version, and a stored delta that turns version N into exactly version N+1.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "server/keys.h"
#include "server/publish.h"
#include "server/store.h"
#include "server/sync_backend.h"

#define NOW 1790000000 /* 2026-09-21 */

struct fx {
	char dir[64];
	struct server_store st;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-server-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	setenv("TZ", "Europe/Paris", 1);
	if (server_keys_create(f->dir, "localhost") != 0)
		return -1;
	if (server_store_open_sqlite(&f->st, f->dir, 1) != 0)
		return -1;
	struct server_sector s = {1, "pool", 0}, w = {3, "waste", 2};
	if (f->st.ops->sector_add(f->st.ctx, &s) || f->st.ops->sector_add(f->st.ctx, &w))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	server_store_close(&f->st);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static int64_t add_pass(struct fx *f, int64_t household, uint16_t sector, uint8_t seed,
                        const struct proto_rights_profile *p, uint8_t key[PROTO_LIST_KEY_LEN])
{
	struct server_pass ps;
	memset(&ps, 0, sizeof(ps));
	ps.household = household;
	snprintf(ps.medium, sizeof(ps.medium), "card");
	assert_int_equal(f->st.ops->pass_add(f->st.ctx, &ps), 0);
	uint8_t id[16];
	memset(id, seed, sizeof(id));
	proto_list_key(sector, id, sizeof(id), key);
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, ps.id, sector, id, key), 0);
	struct server_right r = {ps.id, sector, *p};
	assert_int_equal(f->st.ops->right_set(f->st.ctx, &r), 0);
	return ps.id;
}

static void test_schema_refuses_second_create(void **state)
{
	struct fx *f = *state;
	struct server_store other;
	assert_int_equal(server_store_open_sqlite(&other, f->dir, 1), SERVER_ERR_EXISTS);
	assert_int_equal(server_store_open_sqlite(&other, "/nonexistent-dir", 0),
	                 SERVER_ERR_NOT_FOUND);
}

static void test_identifier_collision_refused(void **state)
{
	struct fx *f = *state;
	struct proto_rights_profile p = {1, 0, 0xFFFF, 0, 0, 0, 0, 0};
	uint8_t key[8], id[16];
	int64_t a = add_pass(f, 0, 1, 0x11, &p, key);
	memset(id, 0x11, sizeof(id));
	/* the same identifier, in another sector or for another pass: refused */
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, a, 3, id, key), SERVER_ERR_EXISTS);
	memset(id, 0x12, sizeof(id));
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, a + 1, 1, id, key), SERVER_ERR_EXISTS);
}

static int count_rows(void *arg, const struct server_stat_row *r)
{
	*(uint64_t *)arg += r->count;
	return 0;
}

static void test_ingest_dedup_and_acks(void **state)
{
	struct fx *f = *state;
	struct server_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "gate-a");
	struct server_site site;
	memset(&site, 0, sizeof(site));
	snprintf(site.name, sizeof(site.name), "pool-north");
	site.sector = 1;
	assert_int_equal(f->st.ops->site_add(f->st.ctx, &site), 0);
	d.site = site.id;
	d.sector = 1;
	assert_int_equal(f->st.ops->device_add(f->st.ctx, &d), 0);
	assert_int_equal(d.gate, 1);

	struct server_sync_backend b;
	assert_int_equal(server_sync_backend_sqlite(&b, f->dir), 0);
	struct server_device_info info;
	assert_int_equal(b.ops->device_lookup(b.ctx, "gate-a", &info), 0);
	assert_int_equal(info.sector, 1);
	assert_int_equal(b.ops->device_lookup(b.ctx, "nobody", &info), SERVER_ERR_NOT_FOUND);

	Citypass__StatEvent ev[4], *evp[4];
	for (int i = 0; i < 4; i++) {
		citypass__stat_event__init(&ev[i]);
		ev[i].seq = (uint64_t)i + 1;
		ev[i].site = site.id;
		ev[i].sector = 1;
		ev[i].outcome = CITYPASS__OUTCOME__GRANTED;
		ev[i].quarter_hour = NOW - NOW % 900;
		evp[i] = &ev[i];
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__STATISTICS;
	batch.stats = evp;
	batch.n_stats = 3; /* 1..3 */
	uint64_t acked = 0;
	assert_int_equal(b.ops->ingest(b.ctx, "gate-a", &batch, &acked), 0);
	assert_int_equal(acked, 3);
	batch.stats = evp + 1; /* 2..4: two duplicates */
	assert_int_equal(b.ops->ingest(b.ctx, "gate-a", &batch, &acked), 0);
	assert_int_equal(acked, 4);
	assert_int_equal(b.ops->acked(b.ctx, "gate-a", CITYPASS__STREAM__STATISTICS, &acked), 0);
	assert_int_equal(acked, 4);
	assert_int_equal(b.ops->acked(b.ctx, "gate-a", CITYPASS__STREAM__CONSUMPTION, &acked), 0);
	assert_int_equal(acked, 0);
	b.ops->destroy(b.ctx);

	uint64_t total = 0;
	assert_int_equal(f->st.ops->stats(f->st.ctx, 0, INT64_MAX, 3600, count_rows, &total), 0);
	assert_int_equal(total, 4); /* stored once each */
}

static void test_household_quota_from_consumption(void **state)
{
	struct fx *f = *state;
	int64_t hh;
	assert_int_equal(f->st.ops->household_add(f->st.ctx, "dupont", &hh), 0);
	assert_int_equal(f->st.ops->household_tag_add(f->st.ctx, hh, 3, 0x123456), 0);
	struct proto_rights_profile p = {7, 0, 0xFFFF, 24, PROTO_PERIOD_YEAR, PROTO_SCOPE_HOUSEHOLD,
	                                 0, 0};
	uint8_t k1[8], k2[8];
	add_pass(f, hh, 3, 0x21, &p, k1);
	add_pass(f, hh, 3, 0x22, &p, k2);
	struct server_periods per;
	server_periods_at(NOW, &per);
	assert_int_equal(per.n[PROTO_PERIOD_YEAR], 2026);

	Citypass__ConsumptionEvent c[3], *cp[3];
	const uint8_t *keys[3] = {k1, k2, k1};
	const uint32_t periods[3] = {2026, 2026, 2025}; /* last year's does not count */
	for (int i = 0; i < 3; i++) {
		citypass__consumption_event__init(&c[i]);
		c[i].seq = (uint64_t)i + 1;
		c[i].sector = 3;
		c[i].pseudonym.data = (uint8_t *)keys[i];
		c[i].pseudonym.len = 8;
		c[i].product = 7;
		c[i].count = (uint32_t)(i + 2);
		c[i].period = periods[i];
		cp[i] = &c[i];
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__CONSUMPTION;
	batch.consumption = cp;
	batch.n_consumption = 3;
	uint64_t acked;
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	assert_int_equal(f->st.ops->ingest(f->st.ctx, "gate-w", &batch, &acked), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
	assert_int_equal(acked, 3);

	struct server_publish_opts o = {NOW, 7 * 86400, 30};
	uint64_t v = 0;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 3, &o, &v), 0);
	assert_int_equal(v, 1);
	struct server_stored_list l = {0};
	assert_int_equal(f->st.ops->list_get(f->st.ctx, 3, 1, &l), 0);
	struct proto_list *list = NULL;
	assert_int_equal(proto_list_open_mem(&list, l.data, l.len), 0);
	struct proto_list_entry e;
	assert_int_equal(proto_list_lookup(list, k2, &e, NULL), 0);
	assert_int_equal(e.used, 2 + 3); /* both passes of the household, this year only */
	assert_int_equal(e.used_period, 2026 & 0xFF);
	assert_int_equal(e.household, 0x123456);
	proto_list_close(list);
	server_stored_list_free(&l);
	/* publishing deleted last year's row */
	assert_int_equal(server_publish_sector(&f->st, f->dir, 3, &o, &v), 0);
	assert_int_equal(
	        f->st.ops->acked(f->st.ctx, "gate-w", CITYPASS__STREAM__CONSUMPTION, &acked), 0);
	assert_int_equal(acked, 3); /* the ack survives the purge */
}

static void test_revocation_and_delta(void **state)
{
	struct fx *f = *state;
	struct proto_rights_profile sub = {1, 20000, 20500, 0, 0, 0, 1, 0};
	struct proto_rights_profile ten = {2, 0, 0xFFFF, 10, PROTO_PERIOD_LIFETIME, 0, 0, 1};
	uint8_t k1[8], k2[8];
	int64_t p1 = add_pass(f, 0, 1, 0x31, &sub, k1);
	add_pass(f, 0, 1, 0x32, &ten, k2);
	struct server_publish_opts o = {NOW, 7 * 86400, 30};
	uint64_t v;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &v), 0);
	assert_int_equal(v, 1);

	struct server_pass ps;
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, p1, &ps), 0);
	ps.state = SERVER_PASS_REVOKED;
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &ps), 0);
	o.now += 60;
	assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &v), 0);
	assert_int_equal(v, 2);

	struct server_stored_list l1 = {0}, l2 = {0}, d = {0};
	assert_int_equal(f->st.ops->list_get(f->st.ctx, 1, 1, &l1), 0);
	assert_int_equal(f->st.ops->list_get(f->st.ctx, 1, 2, &l2), 0);
	assert_int_equal(f->st.ops->delta_get(f->st.ctx, 1, 1, &d), 0);
	assert_int_equal(d.version, 2);

	char pub[256];
	struct proto_key *key = NULL;
	server_key_path(pub, sizeof(pub), f->dir, "list.pub.pem");
	assert_int_equal(proto_key_load_public(&key, pub), 0);
	assert_int_equal(proto_verify(key, l2.data, l2.len, l2.sig, l2.sig_len), 0);
	struct proto_keyring *ring = proto_keyring_new();
	assert_int_equal(proto_keyring_add(ring, key), 0);

	struct proto_list *base = NULL, *next = NULL;
	assert_int_equal(proto_list_open_mem(&base, l1.data, l1.len), 0);
	struct proto_list_policy pol = {1, 1, NOW + 120, ring};
	uint8_t *out = NULL, rsig[PROTO_SIG_MAX];
	size_t out_len = 0, rsig_len = 0;
	assert_int_equal(proto_delta_apply(base, d.data, d.len, d.sig, d.sig_len, &pol, &out,
	                                   &out_len, rsig, &rsig_len),
	                 0);
	assert_int_equal(out_len, l2.len);
	assert_memory_equal(out, l2.data, l2.len);
	assert_int_equal(rsig_len, l2.sig_len);

	/* the revoked pass is listed as revoked, profiles kept their indices */
	assert_int_equal(proto_list_open_mem(&next, l2.data, l2.len), 0);
	struct proto_list_entry e1, e2;
	struct proto_rights_profile pr;
	assert_int_equal(proto_list_lookup(next, k1, &e1, &pr), 0);
	assert_int_equal(e1.status, PROTO_STATUS_REVOKED);
	assert_int_equal(pr.valid_from, 20000);
	assert_int_equal(proto_list_lookup(next, k2, &e2, &pr), 0);
	assert_int_equal(e2.status, PROTO_STATUS_ACTIVE);
	assert_int_equal(pr.flags, PROTO_PROFILE_ENTRIES_ON_CARD);
	struct proto_list_entry b1;
	assert_int_equal(proto_list_lookup(base, k1, &b1, NULL), 0);
	assert_int_equal(b1.profile, e1.profile);
	assert_int_equal(b1.status, PROTO_STATUS_ACTIVE);

	proto_list_close(next);
	proto_list_close(base);
	proto_keyring_free(ring);
	free(out);
	server_stored_list_free(&l1);
	server_stored_list_free(&l2);
	server_stored_list_free(&d);
}

static void test_prune_keeps_last(void **state)
{
	struct fx *f = *state;
	struct server_publish_opts o = {NOW, 86400, 3};
	uint64_t v = 0;
	for (int i = 0; i < 6; i++)
		assert_int_equal(server_publish_sector(&f->st, f->dir, 1, &o, &v), 0);
	assert_int_equal(v, 6);
	struct server_stored_list l = {0};
	assert_int_equal(f->st.ops->list_get(f->st.ctx, 1, 3, &l), SERVER_ERR_NOT_FOUND);
	assert_int_equal(f->st.ops->list_get(f->st.ctx, 1, 4, &l), 0);
	server_stored_list_free(&l);
	assert_int_equal(f->st.ops->delta_get(f->st.ctx, 1, 2, &l), SERVER_ERR_NOT_FOUND);
	assert_int_equal(f->st.ops->delta_get(f->st.ctx, 1, 5, &l), 0);
	server_stored_list_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_schema_refuses_second_create, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_identifier_collision_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ingest_dedup_and_acks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_household_quota_from_consumption, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_revocation_and_delta, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_prune_keeps_last, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
