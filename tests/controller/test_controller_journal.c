/*
 * test_controller_journal.c — the offline journal: per-stream sequences, upload batches,
 * acknowledgements, the local counters the engine needs, anti-passback and retention.
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

#include "controller/engine.h"
#include "controller/error.h"
#include "controller/journal.h"

#define T0   1780000000 /* a Thursday in May 2026, 20:26:40 UTC */
#define DAY  86400
#define SITE 3
#define GATE 12

struct env {
	char dir[64];
	char path[96];
	struct controller_journal *j;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/ctl-journal-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/journal.db", e->dir);
	assert_int_equal(controller_journal_open(&e->j, e->path), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	controller_journal_close(e->j);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

static void reopen(struct env *e)
{
	controller_journal_close(e->j);
	assert_int_equal(controller_journal_open(&e->j, e->path), 0);
}

/* A list without a server position: the time rule (issue 13 keeps it for older servers). */
static const struct controller_list_mark *issued_mark(int64_t issued_at)
{
	static struct controller_list_mark m;
	m.version = 0;
	m.issued_at = issued_at;
	return &m;
}

static struct controller_event tap(int64_t at, uint8_t pass)
{
	struct controller_event ev = {
	        .at = at, .site = SITE, .gate = GATE, .sector = 7, .product = 10, .granted = true};
	memset(ev.key, pass, sizeof(ev.key));
	return ev;
}

static struct controller_event waste_visit(int64_t at, uint8_t pass, uint32_t household,
                                           int64_t year)
{
	struct controller_event ev = tap(at, pass);
	ev.product = 30;
	ev.consumes = true;
	ev.household = household;
	ev.period = PROTO_PERIOD_YEAR;
	ev.period_number = year;
	ev.count = 1;
	return ev;
}

static void test_sequences_per_stream(void **state)
{
	struct env *e = *state;
	struct controller_journal_seq seq;
	struct controller_event a = tap(T0, 1), b = waste_visit(T0 + 1, 2, 5, 2026);
	assert_int_equal(controller_journal_append(e->j, &a, &seq), 0);
	assert_int_equal(seq.stat, 1);
	assert_int_equal(seq.consumption, 0);
	assert_int_equal(controller_journal_append(e->j, &b, &seq), 0);
	assert_int_equal(seq.stat, 2);
	assert_int_equal(seq.consumption, 1);
	assert_int_equal(controller_journal_append(e->j, &a, &seq), 0);
	assert_int_equal(seq.stat, 3);
	assert_int_equal(seq.consumption, 0);
}

static void test_statistics_rows_carry_no_identifier(void **state)
{
	struct env *e = *state;
	struct controller_event ev = tap(T0, 1); /* 20:26:40 -> quarter hour 20:15 */
	ev.granted = false;
	ev.reason = 11;
	assert_int_equal(controller_journal_append(e->j, &ev, NULL), 0);
	struct controller_stat_row r;
	size_t n;
	assert_int_equal(controller_journal_fetch_stats(e->j, &r, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(r.quarter_hour, T0 - 11 * 60 - 40); /* 20:15:00 */
	assert_int_equal(r.quarter_hour % 900, 0);
	assert_true(r.quarter_hour <= T0 && T0 - r.quarter_hour < 900);
	assert_int_equal(r.site, SITE);
	assert_int_equal(r.gate, GATE);
	assert_int_equal(r.sector, 7);
	assert_int_equal(r.product, 10);
	assert_false(r.granted);
	assert_int_equal(r.reason, 11);
}

static void test_batches_and_acks(void **state)
{
	struct env *e = *state;
	for (int i = 0; i < 25; i++) {
		struct controller_event ev = tap(T0 + i, (uint8_t)i);
		assert_int_equal(controller_journal_append(e->j, &ev, NULL), 0);
	}
	struct controller_stat_row rows[10];
	size_t n;
	assert_int_equal(controller_journal_fetch_stats(e->j, rows, 10, &n), 0);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rows[i].seq, i + 1);
	/* the server may hold nothing the gate never issued */
	assert_int_equal(controller_journal_ack(e->j, CONTROLLER_STREAM_STATS, 26, T0),
	                 CONTROLLER_ERR_ARG);
	assert_int_equal(controller_journal_ack(e->j, CONTROLLER_STREAM_STATS, 10, T0), 0);
	/* an older ack arriving late changes nothing */
	assert_int_equal(controller_journal_ack(e->j, CONTROLLER_STREAM_STATS, 4, T0), 0);
	reopen(e);
	assert_int_equal(controller_journal_fetch_stats(e->j, rows, 10, &n), 0);
	assert_int_equal(n, 10);
	assert_int_equal(rows[0].seq, 11);
	assert_int_equal(controller_journal_ack(e->j, CONTROLLER_STREAM_STATS, 25, T0), 0);
	assert_int_equal(controller_journal_fetch_stats(e->j, rows, 10, &n), 0);
	assert_int_equal(n, 0);
	/* sequences are never reused, even with every row deleted and the journal reopened */
	reopen(e);
	struct controller_event ev = tap(T0 + 100, 1);
	struct controller_journal_seq seq;
	assert_int_equal(controller_journal_append(e->j, &ev, &seq), 0);
	assert_int_equal(seq.stat, 26);
	struct controller_journal_stats st;
	assert_int_equal(controller_journal_stats(e->j, &st), 0);
	assert_int_equal(st.stat_pending, 1);
	assert_int_equal(st.stat_acked, 25);
}

static void test_local_uses_count_what_the_list_lacks(void **state)
{
	struct env *e = *state;
	const int64_t issued = T0 + 1000; /* the list held was issued then */
	struct controller_event v1 = waste_visit(T0, 1, 77, 2026);      /* pass 1, household 77 */
	struct controller_event v2 = waste_visit(T0 + 10, 2, 77, 2026); /* pass 2, same household */
	struct controller_event v3 = waste_visit(T0 + 20, 3, 0, 2026);  /* pass 3, no household */
	struct controller_event old = waste_visit(T0 + 30, 1, 77, 2025); /* last year */
	assert_int_equal(controller_journal_append(e->j, &v1, NULL), 0);
	assert_int_equal(controller_journal_append(e->j, &v2, NULL), 0);
	assert_int_equal(controller_journal_append(e->j, &v3, NULL), 0);
	assert_int_equal(controller_journal_append(e->j, &old, NULL), 0);
	uint32_t u;
	assert_int_equal(controller_journal_local_uses(e->j, v1.key, 77, PROTO_SCOPE_HOUSEHOLD,
	                                               PROTO_PERIOD_YEAR, 2026, issued_mark(issued),
	                                               &u),
	                 0);
	assert_int_equal(u, 2);
	assert_int_equal(controller_journal_local_uses(e->j, v1.key, 77, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, issued_mark(issued),
	                                               &u),
	                 0);
	assert_int_equal(u, 1);
	/* household scope without a household: the pass's own */
	assert_int_equal(controller_journal_local_uses(e->j, v3.key, 0, PROTO_SCOPE_HOUSEHOLD,
	                                               PROTO_PERIOD_YEAR, 2026, issued_mark(issued),
	                                               &u),
	                 0);
	assert_int_equal(u, 1);

	/* v1, v2 acknowledged before the list was issued: the list counts them */
	struct controller_consumption_row rows[8];
	size_t n;
	assert_int_equal(controller_journal_fetch_consumption(e->j, rows, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(rows[0].seq, 1);
	assert_memory_equal(rows[0].key, v1.key, 8);
	assert_int_equal(rows[0].period_number, 2026);
	assert_int_equal(controller_journal_ack(e->j, CONTROLLER_STREAM_CONSUMPTION, 2, issued - 1),
	                 0);
	assert_int_equal(controller_journal_fetch_consumption(e->j, rows, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(controller_journal_local_uses(e->j, v1.key, 77, PROTO_SCOPE_HOUSEHOLD,
	                                               PROTO_PERIOD_YEAR, 2026, issued_mark(issued),
	                                               &u),
	                 0);
	assert_int_equal(u, 0);
	/* v3 acknowledged after the list was issued: still only this gate knows it */
	assert_int_equal(controller_journal_ack(e->j, CONTROLLER_STREAM_CONSUMPTION, 3, issued + 5),
	                 0);
	assert_int_equal(controller_journal_local_uses(e->j, v3.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, issued_mark(issued),
	                                               &u),
	                 0);
	assert_int_equal(u, 1);
	/* a newer list (issued after that ack) reflects it: purge forgets the row */
	assert_int_equal(
	        controller_journal_purge(e->j, issued + 100, issued_mark(issued + 50), 0, 0), 0);
	assert_int_equal(controller_journal_local_uses(e->j, v3.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026,
	                                               issued_mark(issued + 50), &u),
	                 0);
	assert_int_equal(u, 0);
	/* the unacknowledged row is untouched */
	assert_int_equal(controller_journal_fetch_consumption(e->j, rows, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, 4);
}

static void test_anti_passback_memory(void **state)
{
	struct env *e = *state;
	struct controller_event ev = tap(T0, 9);
	ev.remember_grant = true;
	assert_int_equal(controller_journal_append(e->j, &ev, NULL), 0);
	ev.at = T0 + 60;
	assert_int_equal(controller_journal_append(e->j, &ev, NULL), 0);
	int64_t at;
	assert_int_equal(controller_journal_last_grant(e->j, ev.key, &at), 0);
	assert_int_equal(at, T0 + 60);
	uint8_t other[8] = {1};
	assert_int_equal(controller_journal_last_grant(e->j, other, &at), 0);
	assert_int_equal(at, 0);
	/* kept while the 30-minute window can use it, forgotten after */
	assert_int_equal(controller_journal_purge(e->j, T0 + 60 + 29 * 60, issued_mark(0), 0, 30),
	                 0);
	assert_int_equal(controller_journal_last_grant(e->j, ev.key, &at), 0);
	assert_int_equal(at, T0 + 60);
	assert_int_equal(controller_journal_purge(e->j, T0 + 60 + 31 * 60, issued_mark(0), 0, 30),
	                 0);
	assert_int_equal(controller_journal_last_grant(e->j, ev.key, &at), 0);
	assert_int_equal(at, 0);
}

static void test_retention_bounds_identifying_rows(void **state)
{
	struct env *e = *state;
	struct controller_event old = waste_visit(T0, 1, 5, 2026);
	struct controller_event recent = waste_visit(T0 + 80 * DAY, 2, 5, 2026);
	assert_int_equal(controller_journal_append(e->j, &old, NULL), 0);
	assert_int_equal(controller_journal_append(e->j, &recent, NULL), 0);
	/* 91 days later, nothing uploaded: the identifying row goes, counted; the statistics
	 * rows (no identifier) wait for their ack */
	assert_int_equal(controller_journal_purge(e->j, T0 + 91 * DAY, issued_mark(0), 0, 0), 0);
	struct controller_consumption_row rows[4];
	size_t n;
	assert_int_equal(controller_journal_fetch_consumption(e->j, rows, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, 2);
	struct controller_journal_stats st;
	assert_int_equal(controller_journal_stats(e->j, &st), 0);
	assert_int_equal(st.consumption_purged_unacked, 1);
	assert_int_equal(st.stat_pending, 2);
	/* a shorter retention setting applies */
	assert_int_equal(controller_journal_purge(e->j, T0 + 91 * DAY, issued_mark(0), 10 * DAY, 0),
	                 0);
	assert_int_equal(controller_journal_fetch_consumption(e->j, rows, 4, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(controller_journal_stats(e->j, &st), 0);
	assert_int_equal(st.consumption_purged_unacked, 2);
}

/* The reader loop's flow: counters from the journal, decision, journal, next tap. */
static bool household_visit(struct controller_journal *j, const struct controller_pass *pass,
                            int64_t now, int64_t list_issued_at)
{
	const int32_t today = (int32_t)(now / DAY); /* UTC is civil enough for this test */
	struct controller_engine_input in = {.pass = *pass, .now = now};
	in.civil.day = today;
	in.civil.minute = (uint16_t)(now % DAY / 60);
	in.civil.weekday = (uint8_t)proto_weekday(today);
	in.period_day = today;
	assert_int_equal(
	        controller_journal_counters(j, pass, issued_mark(list_issued_at), today, &in.local),
	        0);
	struct controller_decision d;
	controller_decide(&in, &d);
	struct controller_event ev = {.at = now,
	                              .site = SITE,
	                              .gate = GATE,
	                              .sector = 7,
	                              .product = pass->profile.product,
	                              .granted = d.grant,
	                              .reason = (uint8_t)d.reason};
	if (d.grant && d.action == CONTROLLER_ACTION_COUNT_QUOTA) {
		ev.consumes = true;
		memcpy(ev.key, pass->entry.key, sizeof(ev.key));
		ev.household = pass->entry.household;
		ev.period = d.period;
		ev.period_number = d.period_number;
		ev.count = 1;
	}
	assert_int_equal(controller_journal_append(j, &ev, NULL), 0);
	return d.grant;
}

static void test_household_quota_across_taps(void **state)
{
	struct env *e = *state;
	const int64_t issued = T0 - DAY;
	struct controller_pass a = {.found = true}, b;
	a.profile = (struct proto_rights_profile){.product = 30,
	                                          .valid_to = PROTO_DAY_UNBOUNDED_TO,
	                                          .limit = 3,
	                                          .period = PROTO_PERIOD_YEAR,
	                                          .scope = PROTO_SCOPE_HOUSEHOLD};
	a.entry.household = 77;
	a.entry.used = 1; /* one visit the server already counted this year */
	a.entry.used_period = (uint8_t)proto_period_number(PROTO_PERIOD_YEAR, T0 / DAY);
	b = a;
	memset(a.entry.key, 0xA1, sizeof(a.entry.key));
	memset(b.entry.key, 0xB2, sizeof(b.entry.key));
	assert_true(household_visit(e->j, &a, T0, issued));
	assert_true(household_visit(e->j, &b, T0 + 3600, issued)); /* the household's third */
	assert_false(household_visit(e->j, &a, T0 + 7200, issued));
	assert_false(household_visit(e->j, &b, T0 + 7300, issued));
	/* after a restart the journal still knows */
	reopen(e);
	assert_false(household_visit(e->j, &a, T0 + 9000, issued));
}

static long file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

/*
 * Issue 13, item 5: the same-second double count. A use acknowledged in the second a list
 * was issued was counted twice when that list already held it (the time rule cannot tell:
 * ack time >= issue time). The server's positions can: the use's (EventAck.position) and
 * the list's (ListUpdate.consumption_position) — no clock, no one-second sleep.
 */
static void test_positions_tell_what_the_list_holds(void **state)
{
	struct env *e = *state;
	const int64_t t = T0 + 500; /* the ack, and the lists' issue time: one second */
	struct controller_event v = waste_visit(T0, 1, 0, 2026);
	struct controller_consumption_row rows[4];
	size_t n;
	uint32_t u;
	assert_int_equal(controller_journal_append(e->j, &v, NULL), 0);
	assert_int_equal(controller_journal_fetch_consumption(e->j, rows, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(controller_journal_ack_epoch(e->j, CONTROLLER_STREAM_CONSUMPTION,
	                                              rows[0].epoch, 1, t, NULL),
	                 0);
	assert_int_equal(controller_journal_ack_position(e->j, rows[0].epoch, 1, 40), 0);

	/* the time rule alone (no position known for the list): counted here as well */
	const struct controller_list_mark v7 = {7, t};
	assert_int_equal(controller_journal_local_uses(e->j, v.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, &v7, &u),
	                 0);
	assert_int_equal(u, 1);
	/* list 7 was published after the use's commit (position 40 >= 40): it holds it */
	assert_int_equal(controller_journal_set_list_position(e->j, 7, 40), 0);
	assert_int_equal(controller_journal_local_uses(e->j, v.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, &v7, &u),
	                 0);
	assert_int_equal(u, 0);
	/* list 7 published before it (39), in the same second: only this gate knows it */
	assert_int_equal(controller_journal_set_list_position(e->j, 7, 39), 0);
	assert_int_equal(controller_journal_local_uses(e->j, v.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, &v7, &u),
	                 0);
	assert_int_equal(u, 1);
	/* a position of another version says nothing of the list held: the time rule */
	const struct controller_list_mark v6 = {6, t + 1};
	assert_int_equal(controller_journal_local_uses(e->j, v.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, &v6, &u),
	                 0);
	assert_int_equal(u, 0);
	/* purge keeps the row while the list lacks it, forgets it once one holds it */
	assert_int_equal(controller_journal_purge(e->j, t + 10, &v7, 0, 0), 0);
	assert_int_equal(controller_journal_local_uses(e->j, v.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, &v7, &u),
	                 0);
	assert_int_equal(u, 1);
	const struct controller_list_mark v8 = {8, t};
	assert_int_equal(controller_journal_set_list_position(e->j, 8, 41), 0);
	assert_int_equal(controller_journal_purge(e->j, t + 10, &v8, 0, 0), 0);
	assert_int_equal(controller_journal_set_list_position(e->j, 7, 39), 0);
	assert_int_equal(controller_journal_local_uses(e->j, v.key, 0, PROTO_SCOPE_PASS,
	                                               PROTO_PERIOD_YEAR, 2026, &v7, &u),
	                 0);
	assert_int_equal(u, 0); /* gone */
}

/* Issue 13: no WAL checkpoint inside a tap's append (its fsyncs are a tail latency); the
 * reader loop runs the one that is due while the field is empty. */
static void test_checkpoints_deferred_to_idle(void **state)
{
	struct env *e = *state;
	struct controller_event ev = tap(T0, 1);
	assert_int_equal(controller_journal_defer_checkpoints(e->j), 0);
	assert_int_equal(controller_journal_checkpoint_due(e->j), 0); /* nothing due */
	long db_before = file_size(e->path);
	/* well past sqlite's 1 000-frame autocheckpoint, one durable commit each */
	for (int i = 0; i < 1500; i++)
		assert_int_equal(controller_journal_append(e->j, &ev, NULL), 0);
	assert_int_equal(file_size(e->path), db_before); /* nothing copied in a commit */
	assert_int_equal(controller_journal_checkpoint_due(e->j), 0);
	assert_true(file_size(e->path) > db_before); /* copied now */
	struct controller_journal_stats st;
	assert_int_equal(controller_journal_stats(e->j, &st), 0);
	assert_int_equal(st.stat_pending, 1500);
}

static void test_bad_arguments(void **state)
{
	struct env *e = *state;
	struct controller_journal *j;
	assert_int_equal(controller_journal_open(&j, "/nonexistent-dir/x/journal.db"),
	                 CONTROLLER_ERR_SQLITE);
	assert_int_equal(controller_journal_append(e->j, NULL, NULL), CONTROLLER_ERR_ARG);
	assert_int_equal(controller_journal_ack(e->j, (enum controller_stream)7, 1, 0),
	                 CONTROLLER_ERR_ARG);
	assert_string_equal(controller_strerror(CONTROLLER_ERR_SQLITE), "journal database error");
}

/* sqlite's own cause reaches the sentence the operator reads (issue 14): not only
 * "journal database error", but what sqlite said, at open and after a failed call. */
static void test_sqlite_cause_carried_up(void **state)
{
	struct env *e = *state;
	char path[128], why[200];
	snprintf(path, sizeof(path), "%s/not-a-journal.db", e->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 64; i++)
		fputs("this is not a database, whatever its name says\n", f);
	fclose(f);
	struct controller_journal *j = NULL;
	assert_int_equal(controller_journal_open_why(&j, path, why, sizeof(why)),
	                 CONTROLLER_ERR_SQLITE);
	assert_null(j);
	print_message("open: %s\n", why);
	assert_non_null(strstr(why, "not a database"));
	assert_int_equal(
	        controller_journal_open_why(&j, "/nonexistent-dir/x/journal.db", why, sizeof(why)),
	        CONTROLLER_ERR_SQLITE);
	assert_non_null(strstr(why, "unable to open"));
	/* a code that is not sqlite's keeps its own sentence */
	assert_string_equal(controller_journal_strerror(e->j, CONTROLLER_ERR_ARG),
	                    "invalid argument");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_sequences_per_stream, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_statistics_rows_carry_no_identifier, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_batches_and_acks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_local_uses_count_what_the_list_lacks, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_anti_passback_memory, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_retention_bounds_identifying_rows, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_household_quota_across_taps, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_positions_tell_what_the_list_holds, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_checkpoints_deferred_to_idle, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sqlite_cause_carried_up, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
