/*
 * controller/clock.h — the site's local civil time, and the period numbers counters use.
 *
 * The decision engine never converts time itself: it takes the local civil time already
 * broken down (day number, weekday, minute of the day), so it stays a pure function and
 * its tests need no time zone database. controller_civil_from_utc() is the one place that
 * turns the gate's clock into that civil time, through the C library's tz rules
 * (localtime_r under the site's TZ): opening hours, subscription days and quota periods
 * are then right across daylight-saving changes, because the engine only ever sees the
 * wall clock a citizen reads at the door.
 */
#ifndef CONTROLLER_CLOCK_H
#define CONTROLLER_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Local civil time at a site. */
struct controller_civil_time {
	int32_t day;     /* civil date as days since 1970-01-01 (the list's day numbers) */
	uint8_t weekday; /* 0 Monday .. 6 Sunday */
	uint16_t minute; /* minutes since local midnight, 0..1439 */
};

/* Civil date <-> day number (proleptic Gregorian; month 1..12). Pure. */
int32_t controller_days_from_civil(int32_t year, unsigned month, unsigned mday);
void controller_civil_from_days(int32_t day, int32_t *year, unsigned *month, unsigned *mday);
/* Weekday of a day number, 0 Monday .. 6 Sunday. */
unsigned controller_weekday(int32_t day);

/*
 * Break a Unix time down into the civil time of zone `tz` (an Olson name such as
 * "Europe/Paris", or NULL for the process's zone). Sets TZ for the call and restores it:
 * not thread-safe — call it from the reader loop's thread only. CONTROLLER_ERR_TZ when
 * the C library cannot convert.
 */
int controller_civil_from_utc(int64_t t, const char *tz, struct controller_civil_time *out);

/*
 * The number of the period containing `day`, by enum proto_period (docs/controller.md):
 *   none, lifetime: 0
 *   day:   the day number
 *   week:  Monday-based weeks since Monday 1969-12-29, floor((day + 3) / 7)
 *   month: year * 12 + (month - 1)
 *   year:  the civil year
 * A list entry's `used_period` is this number's low 8 bits.
 */
int64_t controller_period_number(uint8_t period, int32_t day);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_CLOCK_H */
