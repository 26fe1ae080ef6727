/*
 * test_sync_inproc.c — the session rules in-process: the server is handed one end of a
 * socketpair (server_sync_adopt), a simulated controller holds the other. Same TLS, same
 * framing, no TCP: Hello / Welcome / update, ingest and ack, keepalive, message order,
 * a backend failure that must not be acknowledged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"

#define SECTOR 7
#define SITE   2
#define WAIT   5000

static int setup(void **state)
{
	struct harness *h = calloc(1, sizeof(*h));
	assert_non_null(h);
	assert_int_equal(harness_init(h), 0);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct harness *h = *state;
	harness_free(h);
	free(h);
	return 0;
}

static void pair(struct harness *h, struct sim_ctl *c)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(harness_adopt(h, sv[0]), 0);
	assert_int_equal(sim_connect_fd(c, sv[1]), 0);
}

static uint64_t want;
static int cond_held(const struct sim_ctl *c)
{
	return c->welcomed && c->held >= want;
}
static int cond_acked(const struct sim_ctl *c)
{
	return c->stats_acked >= want;
}
static int cond_acks(const struct sim_ctl *c)
{
	return c->acks >= want;
}

static void test_session_update_and_ingest(void **state)
{
	struct harness *h = *state;
	struct sim_ctl c;

	mem_backend_publish(h->mem, SECTOR, 3000, 0);
	mem_backend_publish(h->mem, SECTOR, 3000, 200);
	assert_int_equal(harness_start(h), 0);
	assert_int_equal(harness_controller(h, &c, "gate-1", SITE, SECTOR), 0);
	pair(h, &c);
	c.held = 1;
	assert_int_equal(sim_send_hello(&c, NULL), 0);
	want = 2;
	assert_int_equal(sim_wait(&c, cond_held, WAIT), 1);
	assert_int_equal(c.deltas, 1);

	assert_int_equal(sim_send_stats(&c, 1, 1000, SITE, SECTOR), 0);
	want = 1000;
	assert_int_equal(sim_wait(&c, cond_acked, WAIT), 1);
	assert_int_equal(mem_backend_rows(h->mem, "gate-1", CITYPASS__STREAM__STATISTICS), 1000);

	/* keepalive: an empty batch gets the current ack */
	unsigned acks = c.acks;
	assert_int_equal(sim_send_stats(&c, 1, 0, SITE, SECTOR), 0);
	want = acks + 1;
	assert_int_equal(sim_wait(&c, cond_acks, WAIT), 1);
	assert_int_equal(c.stats_acked, 1000);

	/* a repeated Hello is an update request */
	mem_backend_publish(h->mem, SECTOR, 3000, 200);
	assert_int_equal(sim_send_hello(&c, NULL), 0);
	want = 3;
	assert_int_equal(sim_wait(&c, cond_held, WAIT), 1);
	assert_int_equal(c.bad_updates, 0);
	sim_free(&c);
}

static void test_backend_failure_not_acked(void **state)
{
	struct harness *h = *state;
	struct sim_ctl c;

	assert_int_equal(harness_start(h), 0);
	assert_int_equal(harness_controller(h, &c, "gate-1", SITE, SECTOR), 0);
	pair(h, &c);
	assert_int_equal(sim_send_hello(&c, NULL), 0);
	assert_int_equal(sim_wait(&c, sim_cond_welcomed, WAIT), 1);
	mem_backend_fail_ingest(h->mem, 1);
	assert_int_equal(sim_send_stats(&c, 1, 10, SITE, SECTOR), 0);
	assert_int_equal(sim_wait(&c, sim_cond_closed, WAIT), 1);
	assert_int_equal(c.stats_acked, 0);
	assert_int_equal(c.last_error, CITYPASS__ERROR__CODE__INTERNAL);
	assert_true(harness_log_has(h, "storing a batch of 10 event(s) failed", WAIT));
	sim_free(&c);
}

static void test_order_rules(void **state)
{
	struct harness *h = *state;
	struct sim_ctl c;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__EventAck a = CITYPASS__EVENT_ACK__INIT;

	assert_int_equal(harness_start(h), 0);
	assert_int_equal(harness_controller(h, &c, "gate-1", SITE, SECTOR), 0);
	pair(h, &c);
	a.stream = CITYPASS__STREAM__STATISTICS;
	f.body_case = CITYPASS__FRAME__BODY_EVENT_ACK;
	f.event_ack = &a;
	assert_int_equal(sim_send_frame(&c, &f), 0);
	assert_int_equal(sim_wait(&c, sim_cond_closed, WAIT), 1);
	assert_false(c.welcomed);
	assert_int_equal(c.last_error, CITYPASS__ERROR__CODE__BAD_REQUEST);
	assert_true(harness_log_has(h, "EventAck before Hello", WAIT));
	sim_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_session_update_and_ingest, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_backend_failure_not_acked, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_order_rules, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
