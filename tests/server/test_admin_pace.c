/*
 * How many lines an import's transaction takes (server/tools/admin_pace.h): the time its
 * commit will take counts. The import is played here against a model clock: inserting a
 * line costs 30 us, committing one costs what the model says, as the database grows (at
 * 5 M passes a commit writes about two index pages a line, as long as the inserting).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "admin_pace.h"

#define BUDGET     0.3
#define INSERT_S   30e-6
#define CHECK_EACH 64 /* the import asks every 64 lines (admin_import.c) */

/* One transaction as the import runs it: lines until the pace says commit; what it
 * held the lock (inserting and committing) goes to *held. */
static unsigned transaction(struct admin_pace *p, double commit_per_line, double *held)
{
	unsigned i = 0;
	for (;; i++)
		if (i % CHECK_EACH == CHECK_EACH - 1 && admin_pace_full(p, i, i * INSERT_S))
			break;
	double commit = i * commit_per_line;
	admin_pace_committed(p, i, commit);
	*held = i * INSERT_S + commit;
	return i;
}

static void test_first_transaction_keeps_half_for_its_commit(void **state)
{
	(void)state;
	struct admin_pace p;
	admin_pace_init(&p, BUDGET);
	assert_false(admin_pace_full(&p, 1000, 0.14));
	assert_true(admin_pace_full(&p, 1000, 0.15));
}

static void test_batch_follows_the_commit_cost(void **state)
{
	(void)state;
	struct admin_pace p;
	admin_pace_init(&p, BUDGET);
	double held;
	/* a small database: commits are cheap, transactions long in lines */
	unsigned cheap = 0;
	for (int t = 0; t < 5; t++) {
		cheap = transaction(&p, 3e-6, &held);
		assert_true(held <= BUDGET * 1.05);
	}
	/* the same import later: each line's commit costs as much as its insert, then more */
	unsigned even = 0, dear = 0;
	for (int t = 0; t < 5; t++) {
		even = transaction(&p, INSERT_S, &held);
		assert_true(t == 0 || held <= BUDGET * 1.05); /* one transaction to learn it */
	}
	for (int t = 0; t < 5; t++) {
		dear = transaction(&p, 3 * INSERT_S, &held);
		assert_true(t == 0 || held <= BUDGET * 1.05);
	}
	assert_true(held >= BUDGET * 0.8); /* and no shorter than it needs */
	/* lines per transaction in inverse ratio of what one costs, inserting and committing */
	assert_true(cheap > 8000 && cheap < 9700); /* 0.3 / 33 us = 9 090 */
	assert_true(even > 4500 && even < 5100);   /* 0.3 / 60 us = 5 000 */
	assert_true(dear > 2300 && dear < 2600);   /* 0.3 / 120 us = 2 500 */
	/* and back when commits get cheap again */
	transaction(&p, 3e-6, &held);
	assert_true(transaction(&p, 3e-6, &held) > 8000);
}

static void test_empty_commit_tells_nothing(void **state)
{
	(void)state;
	struct admin_pace p;
	admin_pace_init(&p, BUDGET);
	admin_pace_committed(&p, 1000, 0.1);
	admin_pace_committed(&p, 0, 0.05); /* the file's end: a commit of no line */
	assert_false(admin_pace_full(&p, 1000, 0.19));
	assert_true(admin_pace_full(&p, 1000, 0.2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_first_transaction_keeps_half_for_its_commit),
	        cmocka_unit_test(test_batch_follows_the_commit_cost),
	        cmocka_unit_test(test_empty_commit_tells_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
