/*
 * test_controller_list_store.c — the gate's list on disk: every refusal leaves the store
 * unchanged, deltas chain, a damaged newest version falls back to the previous one, and
 * the stale policy turns an expiry into fresh / stale / expired.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "controller/error.h"
#include "controller/list_store.h"
#include "list_fixture.h"
#include "proto/error.h"

#define PASSES 64
#define NOW    (FIXTURE_ISSUED + 60)

struct env {
	struct list_fixture fx;
	char dir[64];
	struct built_list v[4]; /* v[1..3]: a chain of consecutive versions */
	uint8_t *delta12, *delta23;
	size_t delta12_len, delta23_len;
	uint8_t delta12_sig[PROTO_SIG_MAX], delta23_sig[PROTO_SIG_MAX];
	size_t delta12_sig_len, delta23_sig_len;
};

static void build_delta(struct env *e, int from, uint8_t **out, size_t *len, uint8_t *sig,
                        size_t *sig_len)
{
	struct proto_list *base = NULL, *target = NULL;
	assert_int_equal(proto_list_open_mem(&base, e->v[from].buf, e->v[from].len), 0);
	assert_int_equal(proto_list_open_mem(&target, e->v[from + 1].buf, e->v[from + 1].len), 0);
	assert_int_equal(proto_delta_build(base, target, e->v[from + 1].sig, e->v[from + 1].sig_len,
	                                   e->fx.signer, out, len),
	                 0);
	assert_int_equal(proto_sign(e->fx.signer, *out, *len, sig, sig_len), 0);
	proto_list_close(base);
	proto_list_close(target);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	fixture_init(&e->fx);
	snprintf(e->dir, sizeof(e->dir), "/tmp/ctl-store-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	uint8_t prev[PROTO_HASH_LEN];
	struct proto_list_entry entries[PASSES];
	fixture_entries(entries, PASSES, 1);
	for (int ver = 1; ver <= 3; ver++) {
		/* each version changes a few passes' counters, as a day of use would */
		for (int i = 0; i < 5; i++)
			entries[(ver * 7 + i) % PASSES].used++;
		fixture_build(&e->fx, (uint64_t)ver, ver > 1 ? prev : NULL, entries, PASSES,
		              &e->v[ver]);
		proto_sha256(e->v[ver].buf, e->v[ver].len, prev);
	}
	build_delta(e, 1, &e->delta12, &e->delta12_len, e->delta12_sig, &e->delta12_sig_len);
	build_delta(e, 2, &e->delta23, &e->delta23_len, e->delta23_sig, &e->delta23_sig_len);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
	for (int i = 1; i <= 3; i++)
		free(e->v[i].buf);
	free(e->delta12);
	free(e->delta23);
	fixture_free(&e->fx);
	free(e);
	return 0;
}

static struct controller_list_store *open_store(struct env *e)
{
	struct controller_list_store *s = NULL;
	assert_int_equal(controller_list_store_open(&s, e->dir, FIXTURE_SECTOR, e->fx.ring, NOW),
	                 0);
	return s;
}

static int install(struct controller_list_store *s, const struct built_list *l)
{
	return controller_list_store_install_snapshot(s, l->buf, l->len, l->sig, l->sig_len, NOW);
}

static void path_in(struct env *e, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", e->dir, name);
}

/* --- tests ---------------------------------------------------------------------------- */

static void test_empty_store_holds_nothing(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_null(controller_list_store_list(s));
	assert_int_equal(controller_list_store_version(s), 0);
	assert_false(controller_list_store_fell_back(s));
	struct controller_stale_policy p = {CONTROLLER_STALE_ACCEPT_KNOWN, 24};
	assert_int_equal(controller_list_state_at(NULL, &p, NOW), CONTROLLER_LIST_EXPIRED);
	assert_int_equal(controller_list_store_apply_delta(s, e->delta12, e->delta12_len,
	                                                   e->delta12_sig, e->delta12_sig_len, NOW),
	                 CONTROLLER_ERR_NO_LIST);
	controller_list_store_close(s);
}

static void test_snapshot_installs_and_survives_restart(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	assert_int_equal(controller_list_store_version(s), 1);
	controller_list_store_close(s);

	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 1);
	assert_false(controller_list_store_fell_back(s));
	size_t len;
	const uint8_t *bytes = proto_list_bytes(controller_list_store_list(s), &len);
	assert_int_equal(len, e->v[1].len);
	assert_memory_equal(bytes, e->v[1].buf, len);
	/* The pair on disk is the published pair: signature detached, verifiable as is. */
	char p[128];
	path_in(e, "v1.sig", p, sizeof(p));
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	uint8_t sig[PROTO_SIG_MAX + 1];
	size_t sig_len = fread(sig, 1, sizeof(sig), f);
	fclose(f);
	assert_int_equal(sig_len, e->v[1].sig_len);
	assert_memory_equal(sig, e->v[1].sig, sig_len);
	controller_list_store_close(s);
}

static void test_refusals_leave_the_store_unchanged(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[2]), 0);

	/* rollback: the same version, and an older one */
	assert_int_equal(install(s, &e->v[2]), PROTO_ERR_LIST_ROLLBACK);
	assert_int_equal(install(s, &e->v[1]), PROTO_ERR_LIST_ROLLBACK);
	/* a signature of another list */
	struct built_list forged = e->v[3];
	memcpy(forged.sig, e->v[1].sig, e->v[1].sig_len);
	forged.sig_len = e->v[1].sig_len;
	assert_int_equal(install(s, &forged), PROTO_ERR_LIST_SIGNATURE);
	/* another sector's list */
	struct proto_list_entry entries[8];
	struct built_list other;
	fixture_entries(entries, 8, 9);
	fixture_build_sector(&e->fx, FIXTURE_SECTOR + 1, 5, NULL, entries, 8, &other);
	assert_int_equal(install(s, &other), PROTO_ERR_LIST_SECTOR);
	free(other.buf);
	/* signed by a key the gate does not trust */
	struct list_fixture stranger;
	fixture_init(&stranger);
	struct built_list foreign;
	fixture_entries(entries, 8, 9);
	fixture_build(&stranger, 9, NULL, entries, 8, &foreign);
	assert_int_equal(install(s, &foreign), PROTO_ERR_LIST_UNKNOWN_KEY);
	free(foreign.buf);
	fixture_free(&stranger);
	/* expired at the gate's clock */
	assert_int_equal(controller_list_store_install_snapshot(s, e->v[3].buf, e->v[3].len,
	                                                        e->v[3].sig, e->v[3].sig_len,
	                                                        FIXTURE_EXPIRES),
	                 PROTO_ERR_LIST_EXPIRED);
	/* truncated */
	assert_int_equal(controller_list_store_install_snapshot(s, e->v[3].buf, 50, e->v[3].sig,
	                                                        e->v[3].sig_len, NOW),
	                 PROTO_ERR_LIST_TRUNCATED);
	/* a delta whose base is not the list held (v1 -> v2 on v2) */
	assert_int_equal(controller_list_store_apply_delta(s, e->delta12, e->delta12_len,
	                                                   e->delta12_sig, e->delta12_sig_len, NOW),
	                 PROTO_ERR_LIST_ROLLBACK);
	/* a delta with a bad signature */
	assert_int_equal(controller_list_store_apply_delta(s, e->delta23, e->delta23_len,
	                                                   e->delta12_sig, e->delta12_sig_len, NOW),
	                 PROTO_ERR_LIST_SIGNATURE);

	assert_int_equal(controller_list_store_version(s), 2);
	controller_list_store_close(s);
	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 2);
	assert_false(controller_list_store_fell_back(s));
	controller_list_store_close(s);
}

static void test_delta_base_must_be_held(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	/* v2 -> v3 on v1: base version mismatch */
	assert_int_equal(controller_list_store_apply_delta(s, e->delta23, e->delta23_len,
	                                                   e->delta23_sig, e->delta23_sig_len, NOW),
	                 PROTO_ERR_DELTA_BASE);
	assert_int_equal(controller_list_store_version(s), 1);
	controller_list_store_close(s);
}

static void test_deltas_chain_to_the_published_pair(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	assert_int_equal(controller_list_store_apply_delta(s, e->delta12, e->delta12_len,
	                                                   e->delta12_sig, e->delta12_sig_len, NOW),
	                 0);
	assert_int_equal(controller_list_store_apply_delta(s, e->delta23, e->delta23_len,
	                                                   e->delta23_sig, e->delta23_sig_len, NOW),
	                 0);
	assert_int_equal(controller_list_store_version(s), 3);
	size_t len;
	const uint8_t *bytes = proto_list_bytes(controller_list_store_list(s), &len);
	assert_int_equal(len, e->v[3].len);
	assert_memory_equal(bytes, e->v[3].buf, len);
	controller_list_store_close(s);
	/* only the current pair and its predecessor are kept */
	char p[128];
	path_in(e, "v1.cpl", p, sizeof(p));
	assert_int_not_equal(access(p, F_OK), 0);
	path_in(e, "v2.cpl", p, sizeof(p));
	assert_int_equal(access(p, F_OK), 0);
}

static void corrupt_byte(const char *path, long offset)
{
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, offset, SEEK_SET), 0);
	int c = fgetc(f);
	assert_int_equal(fseek(f, offset, SEEK_SET), 0);
	fputc(c ^ 0x5A, f);
	fclose(f);
}

static void test_damaged_newest_falls_back(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	assert_int_equal(install(s, &e->v[2]), 0);
	controller_list_store_close(s);

	char p[128];
	path_in(e, "v2.cpl", p, sizeof(p));
	corrupt_byte(p, (long)e->v[2].len - 3); /* inside the last entry */
	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 1);
	assert_true(controller_list_store_fell_back(s));
	/* the repaired store takes v2 again, and v3 after it */
	assert_int_equal(install(s, &e->v[2]), 0);
	assert_int_equal(install(s, &e->v[3]), 0);
	controller_list_store_close(s);

	/* a damaged pointer: the newest pair that verifies is used */
	path_in(e, "CURRENT", p, sizeof(p));
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("garbage\n", f);
	fclose(f);
	s = open_store(e);
	assert_int_equal(controller_list_store_version(s), 3);
	assert_true(controller_list_store_fell_back(s));
	controller_list_store_close(s);
	s = open_store(e);
	assert_false(controller_list_store_fell_back(s)); /* the pointer was repaired */
	controller_list_store_close(s);
}

static void test_expired_list_is_kept_at_open(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	assert_int_equal(install(s, &e->v[1]), 0);
	controller_list_store_close(s);
	assert_int_equal(controller_list_store_open(&s, e->dir, FIXTURE_SECTOR, e->fx.ring,
	                                            FIXTURE_EXPIRES + 3600),
	                 0);
	assert_int_equal(controller_list_store_version(s), 1);
	controller_list_store_close(s);
}

static void test_lookup_for_the_engine(void **state)
{
	struct env *e = *state;
	struct controller_list_store *s = open_store(e);
	struct controller_pass pass;
	uint8_t key[PROTO_LIST_KEY_LEN];
	proto_list_key(FIXTURE_SECTOR, (const uint8_t *)"pass-1-4", 8, key);
	assert_int_equal(controller_list_store_lookup(s, key, &pass), CONTROLLER_ERR_NO_LIST);
	assert_int_equal(install(s, &e->v[1]), 0);
	assert_int_equal(controller_list_store_lookup(s, key, &pass), 0);
	assert_true(pass.found);
	assert_memory_equal(pass.entry.key, key, sizeof(key));
	assert_int_equal(pass.profile.product, fixture_profiles[pass.entry.profile].product);
	proto_list_key(FIXTURE_SECTOR, (const uint8_t *)"nobody", 6, key);
	assert_int_equal(controller_list_store_lookup(s, key, &pass), 0);
	assert_false(pass.found);
	controller_list_store_close(s);
}

static void test_stale_policy(void **state)
{
	struct env *e = *state;
	struct proto_list *l = NULL;
	assert_int_equal(proto_list_open_mem(&l, e->v[1].buf, e->v[1].len), 0);
	struct controller_stale_policy refuse = {CONTROLLER_STALE_REFUSE_ALL, 48};
	struct controller_stale_policy grace = {CONTROLLER_STALE_ACCEPT_KNOWN, 6};
	const int64_t exp = FIXTURE_EXPIRES;
	assert_int_equal(controller_list_state_at(l, &refuse, exp - 1), CONTROLLER_LIST_FRESH);
	assert_int_equal(controller_list_state_at(l, &refuse, exp), CONTROLLER_LIST_EXPIRED);
	assert_int_equal(controller_list_state_at(l, &grace, exp - 1), CONTROLLER_LIST_FRESH);
	assert_int_equal(controller_list_state_at(l, &grace, exp), CONTROLLER_LIST_STALE);
	assert_int_equal(controller_list_state_at(l, &grace, exp + 6 * 3600 - 1),
	                 CONTROLLER_LIST_STALE);
	assert_int_equal(controller_list_state_at(l, &grace, exp + 6 * 3600),
	                 CONTROLLER_LIST_EXPIRED);
	assert_int_equal(controller_list_state_at(l, NULL, exp), CONTROLLER_LIST_EXPIRED);
	proto_list_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_empty_store_holds_nothing, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_installs_and_survives_restart, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_refusals_leave_the_store_unchanged, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_delta_base_must_be_held, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_deltas_chain_to_the_published_pair, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_damaged_newest_falls_back, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_expired_list_is_kept_at_open, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_lookup_for_the_engine, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stale_policy, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
