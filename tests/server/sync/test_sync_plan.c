/*
 * test_sync_plan.c — the choice of list update (server/src/sync_plan.c) against the
 * in-memory backend: nothing, snapshot, delta chain, and each fallback to a snapshot; and
 * that the cache serves repeated plans without asking the backend again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mem_backend.h"
#include "sync_internal.h"

#define SECTOR 7

struct fx {
	struct mem_backend *mem;
	struct server_sync_backend be;
	struct sync_cache cache;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->mem = mem_backend_new();
	assert_non_null(f->mem);
	mem_backend_ops(f->mem, &f->be);
	sync_cache_init(&f->cache, SECTOR);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sync_cache_clear(&f->cache);
	mem_backend_free(f->mem);
	free(f);
	return 0;
}

static void publish(struct fx *f, unsigned n, size_t snap, size_t delta)
{
	for (unsigned i = 0; i < n; i++)
		assert_true(mem_backend_publish(f->mem, SECTOR, snap, delta) > 0);
}

static void test_nothing_to_send(void **state)
{
	struct fx *f = *state;
	struct sync_plan p;

	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 0, 0, &p), 0); /* no list */
	assert_int_equal(p.count, 0);
	publish(f, 3, 1000, 100);
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 3, 3, &p), 0); /* current */
	assert_int_equal(p.count, 0);
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 9, 3, &p), 0); /* ahead */
	assert_int_equal(p.count, 0);
	assert_int_equal(mem_backend_list_reads(f->mem), 0);
}

static void test_snapshot_for_empty_controller(void **state)
{
	struct fx *f = *state;
	struct sync_plan p;

	publish(f, 3, 1000, 100);
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 0, 3, &p), 0);
	assert_int_equal(p.count, 1);
	assert_true(p.snapshot);
	assert_false(p.blobs[0]->is_delta);
	assert_int_equal(p.blobs[0]->version, 3);
	assert_int_equal(p.blobs[0]->len, 1000);
	assert_true(mem_blob_matches(SECTOR, 0, 3, p.blobs[0]->data, p.blobs[0]->len, 1000));
	sync_plan_release(&p);
}

static void test_delta_chain_in_order(void **state)
{
	struct fx *f = *state;
	struct sync_plan p;

	publish(f, 6, 10000, 100);
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 2, 6, &p), 0);
	assert_int_equal(p.count, 4);
	assert_false(p.snapshot);
	for (size_t i = 0; i < p.count; i++) {
		assert_true(p.blobs[i]->is_delta);
		assert_int_equal(p.blobs[i]->base_version, 2 + i);
		assert_int_equal(p.blobs[i]->version, 3 + i);
	}
	sync_plan_release(&p);
	/* cached: a second controller at the same version costs no backend read */
	unsigned reads = mem_backend_list_reads(f->mem);
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 2, 6, &p), 0);
	assert_int_equal(p.count, 4);
	assert_int_equal(mem_backend_list_reads(f->mem), reads);
	sync_plan_release(&p);
}

static void test_single_delta_never_weighed(void **state)
{
	struct fx *f = *state;
	struct sync_plan p;

	publish(f, 2, 100, 5000); /* a delta bigger than its snapshot (absurd but legal) */
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 1, 2, &p), 0);
	assert_int_equal(p.count, 1);
	assert_false(p.snapshot);
	assert_int_equal(mem_backend_list_reads(f->mem), 1);
	sync_plan_release(&p);
}

static void test_fallbacks_to_snapshot(void **state)
{
	struct fx *f = *state;
	struct sync_plan p;

	publish(f, 10, 1000, 100);
	mem_backend_drop_delta(f->mem, SECTOR, 4);
	/* chain not kept */
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 3, 10, &p), 0);
	assert_true(p.snapshot);
	assert_int_equal(p.blobs[0]->version, 10);
	sync_plan_release(&p);
	/* too far behind */
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 4, 5, 10, &p), 0);
	assert_true(p.snapshot);
	sync_plan_release(&p);
	/* 5 deltas of 100 + signatures outweigh... not a 1000-byte snapshot: deltas */
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 5, 10, &p), 0);
	assert_false(p.snapshot);
	assert_int_equal(p.count, 5);
	sync_plan_release(&p);
}

static void test_heavy_chain_replaced(void **state)
{
	struct fx *f = *state;
	struct sync_plan p;

	publish(f, 5, 1000, 400); /* 4 deltas of 400: heavier than the snapshot */
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 1, 5, &p), 0);
	assert_true(p.snapshot);
	assert_int_equal(p.count, 1);
	sync_plan_release(&p);
	assert_int_equal(sync_plan_update(&f->cache, &f->be, 64, 3, 5, &p), 0);
	assert_false(p.snapshot); /* 2 x 400 < 1000 */
	assert_int_equal(p.count, 2);
	sync_plan_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_nothing_to_send, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_for_empty_controller, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_delta_chain_in_order, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_single_delta_never_weighed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_fallbacks_to_snapshot, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_heavy_chain_replaced, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
