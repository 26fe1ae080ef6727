/*
 * controller/src/clock.c — civil dates and period numbers.
 *
 * Day-number conversions are Howard Hinnant's algorithms ("chrono-compatible low-level
 * date algorithms"): exact for the proleptic Gregorian calendar, no tables, no tz.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/clock.h"
#include "controller/error.h"
#include "proto/list.h"

static int32_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return (int32_t)q;
}

int32_t controller_days_from_civil(int32_t year, unsigned month, unsigned mday)
{
	int32_t y = year - (month <= 2);
	int32_t era = floor_div(y, 400);
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + mday - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int32_t)doe - 719468;
}

void controller_civil_from_days(int32_t day, int32_t *year, unsigned *month, unsigned *mday)
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

unsigned controller_weekday(int32_t day)
{
	/* 1970-01-01 was a Thursday (3 with Monday = 0). */
	int32_t w = (day + 3) % 7;
	return (unsigned)(w < 0 ? w + 7 : w);
}

int controller_civil_from_utc(int64_t t, const char *tz, struct controller_civil_time *out)
{
	if (!out)
		return CONTROLLER_ERR_ARG;
	char *saved = NULL;
	if (tz) {
		const char *old = getenv("TZ");
		if (old && !(saved = strdup(old)))
			return CONTROLLER_ERR_NOMEM;
		if (setenv("TZ", tz, 1) != 0) {
			free(saved);
			return CONTROLLER_ERR_TZ;
		}
		tzset();
	}
	time_t tt = (time_t)t;
	struct tm tm;
	int ok = localtime_r(&tt, &tm) != NULL;
	if (tz) {
		if (saved)
			setenv("TZ", saved, 1);
		else
			unsetenv("TZ");
		tzset();
		free(saved);
	}
	if (!ok)
		return CONTROLLER_ERR_TZ;
	out->day = controller_days_from_civil(tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
	                                      (unsigned)tm.tm_mday);
	out->weekday = (uint8_t)controller_weekday(out->day);
	out->minute = (uint16_t)(tm.tm_hour * 60 + tm.tm_min);
	return CONTROLLER_OK;
}

int64_t controller_period_number(uint8_t period, int32_t day)
{
	int32_t y;
	unsigned m, d;
	switch (period) {
	case PROTO_PERIOD_DAY:
		return day;
	case PROTO_PERIOD_WEEK:
		return floor_div((int64_t)day + 3, 7);
	case PROTO_PERIOD_MONTH:
		controller_civil_from_days(day, &y, &m, &d);
		return (int64_t)y * 12 + (m - 1);
	case PROTO_PERIOD_YEAR:
		controller_civil_from_days(day, &y, &m, &d);
		return y;
	default:
		return 0;
	}
}
