/*
 * The server and the gates must number quota periods alike: the list's `used` counter comes
 * with the low byte of the server's period number, and a gate that computes another number
 * for the same instant treats the counter as stale — letting a household past its quota.
 *
 * The server numbers them in its process's zone (the deployment's); a gate in the zone
 * its bundle's period-tz names (written by `device add` from the same zone), whatever its
 * site's zone (docs/calendar.md). This test runs both, hour by hour over several years,
 * for deployments whose sites are in other zones, and checks that the site's own zone
 * would have disagreed on some of those hours — so the test tells the zones apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "proto/calendar.h"
#include "proto/error.h"
#include "proto/list.h"
#include "server/publish.h"

static const uint8_t periods[] = {PROTO_PERIOD_DAY, PROTO_PERIOD_WEEK, PROTO_PERIOD_MONTH,
                                  PROTO_PERIOD_YEAR};

static void agree(const char *deployment, const char *site)
{
	/* the server: its process's zone is the deployment's */
	setenv("TZ", deployment, 1);
	tzset();
	/* the gate: the site's zone for hours, the deployment's for periods */
	struct proto_zone *period_zone = NULL, *site_zone = NULL;
	assert_int_equal(proto_zone_load(&period_zone, deployment), 0);
	assert_int_equal(proto_zone_load(&site_zone, site), 0);
	unsigned site_disagrees = 0;
	/* 2024-01-01 to 2031-12-31 every hour: leap years, year ends, DST changes */
	for (int64_t t = 1704067200; t < 1956528000; t += 3600) {
		struct server_periods sp;
		struct proto_civil_time gate, at_site;
		server_periods_at(t, &sp);
		proto_zone_civil(period_zone, t, &gate);
		proto_zone_civil(site_zone, t, &at_site);
		for (size_t i = 0; i < sizeof(periods); i++) {
			assert_int_equal(sp.n[periods[i]],
			                 proto_period_number(periods[i], gate.day));
			if (sp.n[periods[i]] != proto_period_number(periods[i], at_site.day))
				site_disagrees++;
		}
	}
	print_message("%s deployment, %s site: the site's own zone would disagree %u times\n",
	              deployment, site, site_disagrees);
	assert_true(site_disagrees > 0);
	proto_zone_free(period_zone);
	proto_zone_free(site_zone);
}

static void test_server_and_gate_count_periods_alike(void **state)
{
	(void)state;
	agree("Europe/Paris", "America/Cayenne"); /* an overseas site, UTC-3, no DST */
	agree("Pacific/Noumea", "Europe/Paris");  /* a deployment east of its site */
	agree("America/New_York", "Asia/Tokyo");  /* DST on one side only */
	agree("UTC", "Europe/Paris");
}

/* A gate's zone is its own: loading one neither needs nor changes the process's TZ. */
static void test_zone_leaves_the_process_alone(void **state)
{
	(void)state;
	setenv("TZ", "Asia/Tokyo", 1);
	tzset();
	struct proto_zone *z = NULL;
	assert_int_equal(proto_zone_load(&z, "Europe/Paris"), 0);
	assert_string_equal(getenv("TZ"), "Asia/Tokyo");
	struct proto_civil_time c;
	/* 2026-07-14 22:30 UTC is 00:30 on the 15th in Paris (CEST) */
	proto_zone_civil(z, 1784068200, &c);
	assert_int_equal(c.day, proto_days_from_civil(2026, 7, 15));
	assert_int_equal(c.minute, 30);
	proto_zone_free(z);
	/* a zone the system does not know is refused, not taken for UTC */
	assert_int_equal(proto_zone_load(&z, "Europe/Atlantis"), PROTO_ERR_ARG);
	assert_int_equal(proto_zone_load(&z, "../etc/passwd"), PROTO_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_server_and_gate_count_periods_alike),
	        cmocka_unit_test(test_zone_leaves_the_process_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
