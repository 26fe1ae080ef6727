/*
 * test_controller_journal_capacity.c — DESIGN.md s.9: at least 1 000 000 events kept
 * offline and uploaded without loss.
 *
 * A gate offline for weeks journals a million decisions (one in ten consuming a counted
 * right), restarts, then uploads them in batches of 5 000 and acknowledges each; every
 * sequence must arrive exactly once, in order, and the journal must end empty. Appends are
 * grouped 10 000 to a transaction to keep the test in seconds; bench_journal measures the
 * one-commit-per-decision rate the reader loop really uses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "controller/journal.h"

#define EVENTS 1000000u
#define CHUNK  10000u
#define BATCH  5000u
#define T0     1780000000

static double seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_million_events_offline(void **state)
{
	(void)state;
	char dir[64], path[96], cmd[128];
	snprintf(dir, sizeof(dir), "/tmp/ctl-capacity-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal.db", dir);

	struct controller_journal *j;
	assert_int_equal(controller_journal_open(&j, path), 0);
	struct controller_event *ev = calloc(CHUNK, sizeof(*ev));
	assert_non_null(ev);
	double t = seconds();
	for (uint32_t done = 0; done < EVENTS; done += CHUNK) {
		for (uint32_t i = 0; i < CHUNK; i++) {
			uint32_t n = done + i;
			ev[i] = (struct controller_event){.at = T0 + n * 3,
			                                  .site = 1 + n % 4,
			                                  .gate = n % 16,
			                                  .sector = 7,
			                                  .product = (uint16_t)(10 + n % 3),
			                                  .granted = n % 9 != 0,
			                                  .reason = n % 9 ? 0 : 11};
			if (n % 10 == 0) {
				ev[i].consumes = true;
				memcpy(ev[i].key, &n, sizeof(n));
				ev[i].period = 5;
				ev[i].period_number = 2026;
				ev[i].count = 1;
			}
		}
		assert_int_equal(controller_journal_append_many(j, ev, CHUNK), 0);
	}
	double t_append = seconds() - t;
	free(ev);
	controller_journal_close(j);

	assert_int_equal(controller_journal_open(&j, path), 0);
	struct controller_journal_stats st;
	assert_int_equal(controller_journal_stats(j, &st), 0);
	assert_int_equal(st.stat_pending, EVENTS);
	assert_int_equal(st.consumption_pending, EVENTS / 10);

	struct controller_stat_row *rows = calloc(BATCH, sizeof(*rows));
	assert_non_null(rows);
	uint64_t expect = 1;
	size_t n;
	t = seconds();
	do {
		assert_int_equal(controller_journal_fetch_stats(j, rows, BATCH, &n), 0);
		for (size_t i = 0; i < n; i++)
			assert_true(rows[i].seq == expect++);
		if (n)
			assert_int_equal(controller_journal_ack(j, CONTROLLER_STREAM_STATS,
			                                        rows[n - 1].seq, T0),
			                 0);
	} while (n);
	double t_upload = seconds() - t;
	assert_int_equal(expect - 1, EVENTS);
	struct controller_consumption_row *c = calloc(BATCH, sizeof(*c));
	assert_non_null(c);
	uint64_t consumed = 0;
	do {
		assert_int_equal(controller_journal_fetch_consumption(j, c, BATCH, &n), 0);
		consumed += n;
		if (n)
			assert_int_equal(controller_journal_ack(j, CONTROLLER_STREAM_CONSUMPTION,
			                                        c[n - 1].seq, T0),
			                 0);
	} while (n);
	assert_int_equal(consumed, EVENTS / 10);
	assert_int_equal(controller_journal_stats(j, &st), 0);
	assert_int_equal(st.stat_pending, 0);
	assert_int_equal(st.consumption_pending, 0);
	assert_int_equal(st.stat_acked, EVENTS);
	print_message("1 M events: appended in %.2f s, uploaded and acknowledged in %.2f s\n",
	              t_append, t_upload);
	free(rows);
	free(c);
	controller_journal_close(j);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_million_events_offline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
