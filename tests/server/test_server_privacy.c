/*
 * test_server_privacy — issue 17 in the server library (server/privacy.h): a sector's kind
 * and retention, their defaults and the ceiling the configuration cannot pass, the purge of
 * consumption rows past the retention with an injected clock (the count a quota needs
 * stays, the gate, sequence and time go), and the retention the sync backend gives a gate.
 * On either store (store_fixture.h, issue 16): sqlite, or PostgreSQL under
 * tests/support/pg_run.sh.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "proto/list.h"
#include "server/holder.h"
#include "server/privacy.h"
#include "server/publish.h"
#include "server/store.h"
#include "server/sync_backend.h"
#include "store_fixture.h"

#define H 3600

struct fx {
	char dir[64], db[STORE_FIXTURE_DB_MAX];
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
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-privacy-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	setenv("TZ", "Europe/Paris", 1);
	if (server_keys_create(f->dir, "localhost") != 0)
		return -1;
	if (store_fixture_open(f->dir, f->db, sizeof(f->db), &f->st) != 0)
		return -1;
	struct server_sector s = {1, "pool", 0}, b = {4, "bus", 3};
	if (f->st.ops->sector_add(f->st.ctx, &s) || f->st.ops->sector_add(f->st.ctx, &b))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	server_store_close(&f->st);
	store_fixture_drop(f->db);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct server_retention ret(struct fx *f, uint16_t sector)
{
	struct server_retention r;
	assert_int_equal(server_retention_get(&f->st, sector, &r), 0);
	return r;
}

static void test_defaults_and_ceiling(void **state)
{
	struct fx *f = *state;
	struct server_why why;
	/* a sector with nothing set: access control, 90 days */
	assert_int_equal(ret(f, 1).kind, SERVER_KIND_ACCESS);
	assert_int_equal(ret(f, 1).hours, 90 * 24);
	assert_int_equal(ret(f, 1).configured, 0);
	/* transport: 48 hours by default (CNIL AU-015 art. 4) */
	assert_int_equal(server_retention_set(&f->st, 4, SERVER_KIND_TRANSPORT, 0, &why), 0);
	assert_int_equal(ret(f, 4).kind, SERVER_KIND_TRANSPORT);
	assert_int_equal(ret(f, 4).hours, 48);
	/* shorter is allowed, longer refused with a sentence naming the ceiling */
	assert_int_equal(server_retention_set(&f->st, 4, -1, 24, &why), 0);
	assert_int_equal(ret(f, 4).hours, 24);
	assert_int_equal(ret(f, 4).configured, 1);
	assert_int_equal(server_retention_set(&f->st, 4, -1, 49, &why), SERVER_ERR_RETENTION);
	assert_non_null(strstr(why.text, "49 hours is above the 48 hours allowed for transport"));
	assert_non_null(strstr(why.text, "AU-015"));
	assert_int_equal(ret(f, 4).hours, 24); /* unchanged */
	assert_int_equal(server_retention_set(&f->st, 1, -1, 90 * 24 + 1, &why),
	                 SERVER_ERR_RETENTION);
	assert_int_equal(server_retention_set(&f->st, 1, -1, 30 * 24, &why), 0);
	assert_int_equal(ret(f, 1).hours, 30 * 24);
	/* a sector turned transport with a retention above 48 hours given: refused */
	assert_int_equal(server_retention_set(&f->st, 1, SERVER_KIND_TRANSPORT, 30 * 24, &why),
	                 SERVER_ERR_RETENTION);
	assert_int_equal(ret(f, 1).kind, SERVER_KIND_ACCESS);
	/* ... and without one, it takes the new kind's default */
	assert_int_equal(server_retention_set(&f->st, 1, SERVER_KIND_TRANSPORT, 0, &why), 0);
	assert_int_equal(ret(f, 1).hours, 48);
	/* a value written past the ceiling behind the CLI's back is never obeyed */
	assert_int_equal(f->st.ops->meta_set(f->st.ctx, "sector_retention_h.4", "1000"), 0);
	assert_int_equal(ret(f, 4).hours, 48);
	assert_int_equal(server_retention_set(&f->st, 99, -1, 1, &why), SERVER_ERR_NOT_FOUND);
}

static void consume(struct fx *f, const char *device, uint64_t seq0, const uint8_t key[8],
                    uint32_t period, int n)
{
	Citypass__ConsumptionEvent c[8], *cp[8];
	assert_true(n <= 8);
	for (int i = 0; i < n; i++) {
		citypass__consumption_event__init(&c[i]);
		c[i].seq = seq0 + (uint64_t)i;
		c[i].sector = 4;
		c[i].pseudonym.data = (uint8_t *)key;
		c[i].pseudonym.len = 8;
		c[i].product = 7;
		c[i].count = 1;
		c[i].period = period;
		cp[i] = &c[i];
	}
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	batch.stream = CITYPASS__STREAM__CONSUMPTION;
	batch.consumption = cp;
	batch.n_consumption = (size_t)n;
	uint64_t acked;
	assert_int_equal(f->st.ops->begin(f->st.ctx), 0);
	assert_int_equal(f->st.ops->ingest(f->st.ctx, device, &batch, &acked), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
}

/* The rows of the consumption table that still name a gate, straight from the database
 * (the file, or PostgreSQL through a connection of its own). */
static int detail_rows(struct fx *f)
{
	long long n = store_fixture_value(f->dir, f->db,
	                                  "SELECT count(*) FROM consumption WHERE device <> ''"
	                                  " OR stored_at <> 0 OR pos <> 0");
	assert_true(n >= 0);
	return (int)n;
}

static uint32_t used(struct fx *f, const uint8_t key[8], int64_t now)
{
	struct server_periods per;
	struct server_list_row row;
	server_periods_at(now, &per);
	assert_int_equal(f->st.ops->begin_read(f->st.ctx), 0);
	assert_int_equal(f->st.ops->list_row(f->st.ctx, 4, key, &per, &row), 0);
	assert_int_equal(f->st.ops->commit(f->st.ctx), 0);
	return row.used;
}

static void test_purge_folds_past_retention(void **state)
{
	struct fx *f = *state;
	struct server_why why;
	assert_int_equal(server_retention_set(&f->st, 4, SERVER_KIND_TRANSPORT, 0, &why), 0);
	/* a pass with a counted right in the bus sector (24 a year) */
	struct server_pass ps;
	memset(&ps, 0, sizeof(ps));
	snprintf(ps.medium, sizeof(ps.medium), "card");
	assert_int_equal(f->st.ops->pass_add(f->st.ctx, &ps), 0);
	uint8_t id[16], key[8];
	memset(id, 0x42, sizeof(id));
	proto_list_key(4, id, sizeof(id), key);
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, ps.id, 4, id, key), 0);
	const int64_t t0 = (int64_t)time(NULL); /* what ingest stamps rows with */
	struct server_periods per;
	server_periods_at(t0, &per);
	const uint32_t year = (uint32_t)per.n[PROTO_PERIOD_YEAR];
	struct server_right r = {ps.id, 4, {7, 0, 0xFFFF, 24, PROTO_PERIOD_YEAR, 0, 0, 0}};
	assert_int_equal(f->st.ops->right_set(f->st.ctx, &r), 0);
	consume(f, "bus-1", 1, key, year, 3);
	consume(f, "bus-2", 1, key, year, 2);
	assert_int_equal(used(f, key, t0), 5);
	assert_int_equal(detail_rows(f), 5);

	uint64_t n = 9;
	/* 47 hours on: nothing is old enough */
	assert_int_equal(server_retention_purge(&f->st, t0 + 47 * H, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(detail_rows(f), 5);
	/* ... unless the next purge is more than an hour away (citypass-server's timer) */
	assert_int_equal(server_retention_purge(&f->st, t0 + 47 * H, H + 2, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(detail_rows(f), 0);
	/* the quota still counts every use; the acks still deduplicate a resend */
	assert_int_equal(used(f, key, t0 + 47 * H), 5);
	consume(f, "bus-1", 1, key, year, 3);
	assert_int_equal(used(f, key, t0 + 47 * H), 5);
	uint64_t acked;
	assert_int_equal(
	        f->st.ops->acked(f->st.ctx, "bus-1", CITYPASS__STREAM__CONSUMPTION, &acked), 0);
	assert_int_equal(acked, 3);
	/* new uses come in with their detail, and go the same way, next to the folded ones */
	consume(f, "bus-1", 4, key, year, 2);
	assert_int_equal(detail_rows(f), 2);
	assert_int_equal(used(f, key, t0), 7);
	assert_int_equal(server_retention_purge(&f->st, t0 + 49 * H, 0, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(detail_rows(f), 0);
	assert_int_equal(used(f, key, t0), 7);
}

static void test_backend_tells_the_gate(void **state)
{
	struct fx *f = *state;
	struct server_why why;
	struct server_site site;
	memset(&site, 0, sizeof(site));
	snprintf(site.name, sizeof(site.name), "line-1");
	site.sector = 4;
	assert_int_equal(f->st.ops->site_add(f->st.ctx, &site), 0);
	struct server_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "bus-1");
	d.site = site.id;
	d.sector = 4;
	assert_int_equal(f->st.ops->device_add(f->st.ctx, &d), 0);
	assert_int_equal(server_retention_set(&f->st, 4, SERVER_KIND_TRANSPORT, 36, &why), 0);
	struct server_sync_backend b;
	assert_int_equal(server_sync_backend_open(&b, f->dir, 0, NULL), 0);
	struct server_device_info info;
	assert_int_equal(b.ops->device_lookup(b.ctx, "bus-1", &info), 0);
	assert_int_equal(info.retention_h, 36);
	b.ops->destroy(b.ctx);
}

static char *register_text(struct fx *f)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	assert_non_null(m);
	assert_int_equal(server_privacy_register(&f->st, m), 0);
	assert_int_equal(fclose(m), 0);
	return buf;
}

/* The record of processing follows the settings: the expected lines are written here by
 * hand, not produced by the code under test. */
static void test_register_follows_the_settings(void **state)
{
	struct fx *f = *state;
	struct server_why why;
	assert_int_equal(server_retention_set(&f->st, 4, SERVER_KIND_TRANSPORT, 0, &why), 0);
	char *t = register_text(f);
	assert_non_null(strstr(t, "# Record of processing"));
	assert_non_null(strstr(t, "| pool | access | 90 days (default) | CNIL guidance on "
	                          "access-control logs: 3 months at most |\n"));
	assert_non_null(strstr(t, "| bus | transport | 48 hours (default) | CNIL AU-015 art. 4: "
	                          "transport validation data, 48 hours at most |\n"));
	assert_non_null(strstr(t, "### Gate journals — sector bus\n"));
	assert_non_null(strstr(t, "- **Retention**: identifying rows 48 hours at most "
	                          "(transport), deleted earlier"));
	assert_non_null(strstr(t, "### Consumption — sector bus\n"));
	assert_null(strstr(t, "24 hours"));
	for (const char *h = t; (h = strstr(h, "\n### ")) != NULL; h++) {
		/* every processing says all five things */
		const char *next = strstr(h + 1, "\n### ");
		const char *keys[] = {"**Purpose**", "**Data**", "**Stored in**",
		                      "**Who can read it**", "**Retention**"};
		for (size_t k = 0; k < 5; k++) {
			const char *at = strstr(h, keys[k]);
			assert_true(at && (!next || at < next));
		}
	}
	free(t);

	assert_int_equal(server_retention_set(&f->st, 4, -1, 24, &why), 0);
	assert_int_equal(server_retention_set(&f->st, 1, -1, 30 * 24, &why), 0);
	t = register_text(f);
	assert_non_null(strstr(t, "| bus | transport | 24 hours | CNIL AU-015 art. 4: "
	                          "transport validation data, 48 hours at most |\n"));
	assert_non_null(strstr(t, "- **Retention**: identifying rows 24 hours at most "
	                          "(transport), deleted earlier"));
	assert_non_null(strstr(t, "- **Retention**: which gate reported a use, its sequence and "
	                          "time: 24 hours; then only the count"));
	assert_non_null(strstr(t, "| pool | access | 30 days | CNIL guidance"));
	assert_null(strstr(t, "| bus | transport | 48 hours"));
	free(t);
}

static int64_t holder_pass(struct fx *f, const char *holder, int64_t household, uint8_t seed)
{
	struct server_pass ps;
	memset(&ps, 0, sizeof(ps));
	snprintf(ps.holder, sizeof(ps.holder), "%s", holder);
	ps.household = household;
	snprintf(ps.medium, sizeof(ps.medium), "card");
	assert_int_equal(f->st.ops->pass_add(f->st.ctx, &ps), 0);
	uint8_t id[16], key[8];
	memset(id, seed, sizeof(id));
	proto_list_key(1, id, sizeof(id), key);
	assert_int_equal(f->st.ops->pass_id_add(f->st.ctx, ps.id, 1, id, key), 0);
	struct server_right r = {ps.id, 1, {3, 0, 0xFFFF, 0, 0, 0, 0, 0}};
	assert_int_equal(f->st.ops->right_set(f->st.ctx, &r), 0);
	return ps.id;
}

/* The holder's passes follow replacements both ways; a household other passes belong to is
 * kept, the last member's erasure takes it. */
static void test_holder_chain_and_household(void **state)
{
	struct fx *f = *state;
	struct server_desk d = {&f->st, f->dir, (int64_t)time(NULL)};
	struct server_why why;
	int64_t hh;
	assert_int_equal(f->st.ops->household_add(f->st.ctx, "martin", &hh), 0);
	int64_t a1 = holder_pass(f, "Ann Martin", hh, 1), a2 = holder_pass(f, "Ann Martin", hh, 2);
	int64_t a3 = holder_pass(f, "Ann Martin", hh, 3), b = holder_pass(f, "Bob Martin", hh, 4);
	int64_t other_ann = holder_pass(f, "Ann Martin", 0, 5); /* a namesake: not her */
	struct server_pass p;
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, a1, &p), 0);
	p.replaced_by = a2;
	p.state = SERVER_PASS_REPLACED;
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &p), 0);
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, a2, &p), 0);
	p.replaced_by = a3;
	p.state = SERVER_PASS_REPLACED;
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &p), 0);
	int64_t *ids;
	size_t n;
	assert_int_equal(server_holder_passes(&d, a2, &ids, &n, &why), 0);
	assert_int_equal(n, 3);
	assert_int_equal(ids[0], a1);
	assert_int_equal(ids[1], a2);
	assert_int_equal(ids[2], a3);
	free(ids);

	struct server_holder_erasure e;
	assert_int_equal(server_holder_erase(&d, a3, &e, NULL, &why), 0);
	assert_int_equal(e.passes, 3);
	assert_int_equal(e.household_kept, 1); /* Bob's too */
	assert_int_equal(e.rebuilt.n, 1);
	assert_int_equal(e.flushed, 1);
	int64_t id;
	assert_int_equal(f->st.ops->household_find(f->st.ctx, "martin", &id), 0);
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, a1, &p), SERVER_ERR_NOT_FOUND);
	assert_int_equal(f->st.ops->pass_get(f->st.ctx, other_ann, &p), 0);
	assert_int_equal(server_holder_erase(&d, b, &e, NULL, &why), 0);
	assert_int_equal(e.household_kept, 0);
	assert_int_equal(f->st.ops->household_find(f->st.ctx, "martin", &id), SERVER_ERR_NOT_FOUND);
	assert_int_equal(server_holder_erase(&d, b, &e, NULL, &why), SERVER_ERR_NOT_FOUND);
	assert_non_null(strstr(why.text, "no pass"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_defaults_and_ceiling, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_purge_folds_past_retention, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_backend_tells_the_gate, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_register_follows_the_settings, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_holder_chain_and_household, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
