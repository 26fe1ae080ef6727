/*
 * The server and the gates must number quota periods alike: the list's `used` counter comes
 * with the low byte of the server's period number, and a gate that computes another number
 * for the same day treats the counter as stale — letting a household past its quota. This
 * test puts the two implementations side by side over several years of days.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "controller/clock.h"
#include "proto/list.h"
#include "server/publish.h"

static void test_server_and_gate_count_periods_alike(void **state)
{
	(void)state;
	/* server_periods_at() uses the process's zone, the gate its site's: both UTC here */
	setenv("TZ", "UTC", 1);
	tzset();
	static const uint8_t periods[] = {PROTO_PERIOD_DAY, PROTO_PERIOD_WEEK, PROTO_PERIOD_MONTH,
	                                  PROTO_PERIOD_YEAR};
	/* 2024-01-01 to 2031-12-31, noon each day: leap years, year ends, every weekday */
	for (int64_t t = 1704110400; t < 1956484800; t += 86400) {
		struct server_periods sp;
		struct controller_civil_time civil;
		server_periods_at(t, &sp);
		assert_int_equal(controller_civil_from_utc(t, "UTC", &civil), 0);
		for (size_t i = 0; i < sizeof(periods); i++)
			assert_int_equal(sp.n[periods[i]],
			                 controller_period_number(periods[i], civil.day));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_server_and_gate_count_periods_alike),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
