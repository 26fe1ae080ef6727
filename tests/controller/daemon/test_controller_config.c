/*
 * test_controller_config — device.conf's opening-hours grammar (docs/admin.md, "site add"),
 * as the controller turns it into the engine's weekly windows, and its refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "controller/config.h"

static struct controller_site_policy policy;
static char err[CONTROLLER_ERROR_MAX];

static int parse(const char *text)
{
	memset(&policy, 0, sizeof(policy));
	err[0] = '\0';
	return controller_config_parse_hours(text, &policy, err, sizeof(err));
}

static void test_always(void **state)
{
	(void)state;
	assert_int_equal(parse("always"), 0);
	assert_int_equal(policy.window_count, 0); /* no window: open at all hours */
}

static void test_weekdays_two_windows_and_saturday(void **state)
{
	(void)state;
	assert_int_equal(parse("Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00"), 0);
	assert_int_equal(policy.window_count, 3);
	assert_int_equal(policy.windows[0].days, 0x1F);
	assert_int_equal(policy.windows[0].open, 9 * 60);
	assert_int_equal(policy.windows[0].close, 12 * 60);
	assert_int_equal(policy.windows[1].days, 0x1F);
	assert_int_equal(policy.windows[1].open, 14 * 60);
	assert_int_equal(policy.windows[1].close, 19 * 60);
	assert_int_equal(policy.windows[2].days, 1 << 5);
	assert_int_equal(policy.windows[2].open, 10 * 60);
	assert_int_equal(policy.windows[2].close, 18 * 60);
}

static void test_end_of_day_and_sunday(void **state)
{
	(void)state;
	assert_int_equal(parse("Sun 22:00-24:00"), 0);
	assert_int_equal(policy.window_count, 1);
	assert_int_equal(policy.windows[0].days, 1 << 6);
	assert_int_equal(policy.windows[0].close, 1440);
	assert_int_equal(parse("Mon-Sun 00:00-24:00"), 0);
	assert_int_equal(policy.windows[0].days, CONTROLLER_DAYS_ALL);
}

static void test_refusals(void **state)
{
	(void)state;
	static const char *const bad[] = {
	        "",                            /* nothing */
	        "never",                       /* not a rule */
	        "Mon",                         /* no interval */
	        "Monday 09:00-12:00",          /* day names are three letters */
	        "Fri-Mon 09:00-12:00",         /* a range runs forward */
	        "Mon 9:00-12:00",              /* HH:MM */
	        "Mon 12:00-09:00",             /* open < close */
	        "Mon 09:00-09:00",             /* empty */
	        "Mon 09:00-12:00,11:00-13:00", /* intervals increase */
	        "Mon 09:00-24:30",             /* 24:00 is the last minute */
	        "Mon 09:60-10:00",             /* minutes */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i]), -1);
		assert_non_null(strstr(err, "hours '"));
		assert_int_equal(policy.window_count, 0);
	}
	/* a trailing ';' leaves an empty rule, which is skipped */
	assert_int_equal(parse("Mon 09:00-12:00;"), 0);
	assert_int_equal(policy.window_count, 1);
}

static void test_window_limit(void **state)
{
	(void)state;
	char text[2048] = "Mon ";
	for (int i = 0; i < CONTROLLER_MAX_WINDOWS + 1; i++) {
		char iv[16];
		snprintf(iv, sizeof(iv), "%s%02d:%02d-%02d:%02d", i ? "," : "", i / 2, (i % 2) * 30,
		         i / 2, (i % 2) * 30 + 15);
		strcat(text, iv);
	}
	assert_int_equal(parse(text), -1);
	assert_non_null(strstr(err, "more than 32 windows"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_always),
	        cmocka_unit_test(test_weekdays_two_windows_and_saturday),
	        cmocka_unit_test(test_end_of_day_and_sunday),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_window_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
