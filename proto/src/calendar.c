/*
 * proto/src/calendar.c — civil dates, period numbers and zones (proto/calendar.h).
 *
 * Day-number conversions are Howard Hinnant's algorithms ("chrono-compatible low-level
 * date algorithms"): exact for the proleptic Gregorian calendar, no tables, no tz.
 *
 * A zone is the C library's own rules, sampled once: its UTC offset at every midnight
 * UTC from 1970 to 2100, each change then pinned to the second by bisection. The C
 * library stays the authority on zones (as when the gate set TZ per tap), but nothing
 * after the load depends on the process's TZ. Two changes within one day (no zone has
 * had them since 1970) would be seen as none.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/calendar.h"
#include "proto/error.h"
#include "proto/list.h"

#define DAY_S         86400
#define ZONE_FIRST    0LL          /* 1970-01-01 */
#define ZONE_LAST     4102444800LL /* 2100-01-01 */
#define ZONE_NAME_MAX 64

static int32_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return (int32_t)q;
}

int32_t proto_days_from_civil(int32_t year, unsigned month, unsigned mday)
{
	int32_t y = year - (month <= 2);
	int32_t era = floor_div(y, 400);
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + mday - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int32_t)doe - 719468;
}

void proto_civil_from_days(int32_t day, int32_t *year, unsigned *month, unsigned *mday)
{
	int32_t z = day + 719468;
	int32_t era = floor_div(z, 146097);
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	*mday = doy - (153 * mp + 2) / 5 + 1;
	*month = m;
	*year = (int32_t)yoe + era * 400 + (m <= 2);
}

unsigned proto_weekday(int32_t day)
{
	/* 1970-01-01 was a Thursday (3 with Monday = 0). */
	int32_t w = (day + 3) % 7;
	return (unsigned)(w < 0 ? w + 7 : w);
}

int64_t proto_period_number(uint8_t period, int32_t day)
{
	int32_t y;
	unsigned m, d;
	switch (period) {
	case PROTO_PERIOD_DAY:
		return day;
	case PROTO_PERIOD_WEEK:
		return floor_div((int64_t)day + 3, 7);
	case PROTO_PERIOD_MONTH:
		proto_civil_from_days(day, &y, &m, &d);
		return (int64_t)y * 12 + (m - 1);
	case PROTO_PERIOD_YEAR:
		proto_civil_from_days(day, &y, &m, &d);
		return y;
	default:
		return 0;
	}
}

void proto_periods_of_day(int32_t day, int64_t n[PROTO_PERIOD_KINDS])
{
	for (uint8_t p = 0; p < PROTO_PERIOD_KINDS; p++)
		n[p] = proto_period_number(p, day);
}

static void civil_of_local(int64_t local, struct proto_civil_time *out)
{
	out->day = floor_div(local, DAY_S);
	out->weekday = (uint8_t)proto_weekday(out->day);
	out->minute = (uint16_t)((local - (int64_t)out->day * DAY_S) / 60);
}

int proto_civil_local(int64_t t, struct proto_civil_time *out)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!out || !localtime_r(&tt, &tm))
		return PROTO_ERR_ARG;
	out->day = proto_days_from_civil(tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
	                                 (unsigned)tm.tm_mday);
	out->weekday = (uint8_t)proto_weekday(out->day);
	out->minute = (uint16_t)(tm.tm_hour * 60 + tm.tm_min);
	return PROTO_OK;
}

/* --- zones ----------------------------------------------------------------------------- */

struct zone_change {
	int64_t at;     /* from this instant on */
	int32_t offset; /* seconds east of UTC */
};

struct proto_zone {
	char name[ZONE_NAME_MAX];
	size_t n;
	struct zone_change *changes; /* changes[0].at = INT64_MIN */
};

static int32_t offset_at(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm))
		return 0;
	return (int32_t)tm.tm_gmtoff;
}

static int zone_push(struct proto_zone *z, size_t *cap, int64_t at, int32_t offset)
{
	if (z->n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct zone_change *grown = realloc(z->changes, c * sizeof(*grown));
		if (!grown)
			return PROTO_ERR_NOMEM;
		z->changes = grown;
		*cap = c;
	}
	z->changes[z->n].at = at;
	z->changes[z->n].offset = offset;
	z->n++;
	return PROTO_OK;
}

/* The table of the zone TZ currently names (the process's, or the one load set). */
static int zone_sample(struct proto_zone *z)
{
	size_t cap = 0;
	int32_t off = offset_at(ZONE_FIRST);
	int rc = zone_push(z, &cap, INT64_MIN, off);
	for (int64_t t = ZONE_FIRST; rc == 0 && t < ZONE_LAST; t += DAY_S) {
		int32_t next = offset_at(t + DAY_S);
		if (next == off)
			continue;
		/* the first second in (t, t + DAY_S] with the new offset */
		int64_t lo = t, hi = t + DAY_S;
		while (hi - lo > 1) {
			int64_t mid = lo + (hi - lo) / 2;
			if (offset_at(mid) == off)
				lo = mid;
			else
				hi = mid;
		}
		off = offset_at(hi);
		rc = zone_push(z, &cap, hi, off);
	}
	return rc;
}

/* The system knows the zone: glibc takes any unknown name for UTC without a word. */
static int zone_known(const char *name)
{
	if (strcmp(name, "UTC") == 0)
		return 1;
	if (strstr(name, "..") || name[0] == '/')
		return 0;
	const char *dir = getenv("TZDIR");
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo",
	                 name);
	return n > 0 && (size_t)n < sizeof(path) && access(path, R_OK) == 0;
}

int proto_zone_load(struct proto_zone **out, const char *name)
{
	if (!out)
		return PROTO_ERR_ARG;
	if (!name)
		name = "";
	if (name[0] == ':')
		name++;
	if (strlen(name) >= ZONE_NAME_MAX || (name[0] && !zone_known(name)))
		return PROTO_ERR_ARG;
	struct proto_zone *z = calloc(1, sizeof(*z));
	if (!z)
		return PROTO_ERR_NOMEM;
	snprintf(z->name, sizeof(z->name), "%s", name);
	char *saved = NULL;
	int rc = PROTO_OK;
	if (name[0]) {
		const char *old = getenv("TZ");
		if (old && !(saved = strdup(old)))
			rc = PROTO_ERR_NOMEM;
		else if (setenv("TZ", name, 1) != 0)
			rc = PROTO_ERR_NOMEM;
		tzset();
	}
	if (rc == PROTO_OK)
		rc = zone_sample(z);
	if (name[0]) {
		if (saved)
			setenv("TZ", saved, 1);
		else
			unsetenv("TZ");
		tzset();
		free(saved);
	}
	if (rc != PROTO_OK) {
		proto_zone_free(z);
		return rc;
	}
	*out = z;
	return PROTO_OK;
}

void proto_zone_free(struct proto_zone *zone)
{
	if (!zone)
		return;
	free(zone->changes);
	free(zone);
}

const char *proto_zone_name(const struct proto_zone *zone)
{
	return zone->name;
}

void proto_zone_civil(const struct proto_zone *zone, int64_t t, struct proto_civil_time *out)
{
	/* the last change at or before t (changes[0] is at INT64_MIN) */
	size_t lo = 0, hi = zone->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (zone->changes[mid].at <= t)
			lo = mid;
		else
			hi = mid;
	}
	civil_of_local(t + zone->changes[lo].offset, out);
}

int proto_zone_process_name(char *buf, size_t cap)
{
	char name[PATH_MAX] = "";
	const char *tz = getenv("TZ");
	if (tz && *tz) {
		snprintf(name, sizeof(name), "%s", tz[0] == ':' ? tz + 1 : tz);
	} else {
		char link[PATH_MAX];
		ssize_t n = readlink("/etc/localtime", link, sizeof(link) - 1);
		const char *z;
		if (n > 0) {
			link[n] = '\0';
			if ((z = strstr(link, "zoneinfo/")) != NULL)
				snprintf(name, sizeof(name), "%s", z + strlen("zoneinfo/"));
		}
		FILE *f;
		if (!name[0] && (f = fopen("/etc/timezone", "r")) != NULL) {
			if (fgets(name, sizeof(name), f))
				name[strcspn(name, " \t\r\n")] = '\0';
			fclose(f);
		}
		if (!name[0])
			snprintf(name, sizeof(name), "UTC");
	}
	if (!zone_known(name))
		return PROTO_ERR_ARG; /* a POSIX TZ string ("CET-1CEST"), not a zone's name */
	if (strlen(name) >= cap)
		return PROTO_ERR_BUFSIZE;
	memcpy(buf, name, strlen(name) + 1);
	return PROTO_OK;
}
