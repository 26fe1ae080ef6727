/*
 * proto/calendar.h — the civil calendar and quota period numbers: one definition for the
 * server, which writes a pass's uses with the low byte of the current period number into
 * the list, and for the gates, which count those uses only while they compute the same
 * number (docs/calendar.md).
 *
 * A quota period is numbered in the deployment's zone — the zone of the server and of
 * citypass-admin, written into each device bundle as `period-tz` — not the site's: a
 * household's 24 visits a year are shared across every site of the sector, whichever zone
 * a site is in. Opening hours and the day of a subscription are read in the site's zone.
 *
 * Zones are loaded once (proto_zone_load, before any thread starts: it reads the C
 * library's rules under a temporary TZ) and then converted without touching the
 * process's environment, so a gate's reader thread and its sync thread never race on TZ.
 */
#ifndef PROTO_CALENDAR_H
#define PROTO_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Civil date <-> days since 1970-01-01 (proleptic Gregorian; month 1..12). Pure. */
int32_t proto_days_from_civil(int32_t year, unsigned month, unsigned mday);
void proto_civil_from_days(int32_t day, int32_t *year, unsigned *month, unsigned *mday);
/* Weekday of a day number, 0 Monday .. 6 Sunday. */
unsigned proto_weekday(int32_t day);

/*
 * The number of the period containing `day`, by enum proto_period (proto/list.h):
 *   none, lifetime: 0
 *   day:   the day number
 *   week:  Monday-based weeks since Monday 1969-12-29, floor((day + 3) / 7)
 *   month: year * 12 + (month - 1)
 *   year:  the civil year
 * A list entry's `used_period` is this number's low 8 bits.
 */
int64_t proto_period_number(uint8_t period, int32_t day);

/* The number of every period kind at `day`, indexed by enum proto_period (0 and 1: 0). */
#define PROTO_PERIOD_KINDS 6
void proto_periods_of_day(int32_t day, int64_t n[PROTO_PERIOD_KINDS]);

/* Civil time in one zone. */
struct proto_civil_time {
	int32_t day;     /* civil date as days since 1970-01-01 (the list's day numbers) */
	uint8_t weekday; /* 0 Monday .. 6 Sunday */
	uint16_t minute; /* minutes since local midnight, 0..1439 */
};

/* A time zone's UTC offsets over 1970-2100, read once from the C library's rules. */
struct proto_zone;

/*
 * Load zone `name` (an Olson name such as "Europe/Paris", or "UTC"); NULL or "" for the
 * process's own zone (TZ, else /etc/localtime). PROTO_ERR_ARG when the system has no such
 * zone (the C library would silently use UTC). Sets TZ during the call and restores it:
 * call it before starting threads.
 */
int proto_zone_load(struct proto_zone **out, const char *name);
void proto_zone_free(struct proto_zone *zone);
/* The name it was loaded with ("" for the process's zone). */
const char *proto_zone_name(const struct proto_zone *zone);
/* Unix time t as civil time in the zone. Thread-safe: reads the loaded table only. */
void proto_zone_civil(const struct proto_zone *zone, int64_t t, struct proto_civil_time *out);

/* Unix time t as civil time in the process's zone (localtime_r; no TZ change). */
int proto_civil_local(int64_t t, struct proto_civil_time *out);

/*
 * The Olson name of the process's zone, for writing into a device bundle: TZ (without a
 * leading ':'), else the target of /etc/localtime under .../zoneinfo/, else the first line
 * of /etc/timezone, else "UTC". PROTO_ERR_ARG when that names no zone of this system (TZ
 * may be a POSIX rule such as "CET-1CEST"); PROTO_ERR_BUFSIZE when it does not fit.
 */
int proto_zone_process_name(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_CALENDAR_H */
