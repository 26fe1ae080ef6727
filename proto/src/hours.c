/*
 * proto/src/hours.c — opening hours (proto/hours.h): the one grammar the admin CLI checks,
 * device.conf's reader and writer check, and the gate turns into its weekly windows.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "bundle_text.h"
#include "proto/hours.h"

static const char *const day_names[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

static int day_index(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n == 3 && strncmp(s, day_names[i], 3) == 0)
			return i;
	return -1;
}

static int parse_hhmm(const char *s, unsigned *minutes)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return -1;
	unsigned h = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
	unsigned m = (unsigned)(s[3] - '0') * 10 + (unsigned)(s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	*minutes = h * 60 + m;
	return 0;
}

/* "Mon-Fri" or "Sat": the days' bit mask, 0 for anything else. */
static uint8_t days_mask(const char *days)
{
	const char *dash = strchr(days, '-');
	int d0, d1;
	if (dash) {
		d0 = day_index(days, (size_t)(dash - days));
		d1 = day_index(dash + 1, strlen(dash + 1));
	} else {
		d0 = d1 = day_index(days, strlen(days));
	}
	if (d0 < 0 || d1 < 0 || d1 < d0)
		return 0;
	uint8_t mask = 0;
	for (int d = d0; d <= d1; d++)
		mask |= (uint8_t)(1u << d);
	return mask;
}

/* One rule, "DAYS HH:MM-HH:MM[,...]": 0, -1 malformed, -2 too many windows. */
static int one_rule(char *rule, struct proto_hours *out)
{
	char *sp = strchr(rule, ' ');
	if (!sp)
		return -1;
	*sp = '\0';
	uint8_t mask = days_mask(rule);
	if (!mask)
		return -1;
	char *save = NULL;
	unsigned last_close = 0;
	for (char *iv = strtok_r(bundle_trim(sp + 1), ",", &save); iv;
	     iv = strtok_r(NULL, ",", &save)) {
		iv = bundle_trim(iv);
		unsigned open, close;
		if (strlen(iv) != 11 || iv[5] != '-' || parse_hhmm(iv, &open) ||
		    parse_hhmm(iv + 6, &close) || open >= close || open < last_close)
			return -1;
		last_close = close;
		if (out->count >= PROTO_HOURS_WINDOWS)
			return -2;
		out->windows[out->count++] =
		        (struct proto_hours_window){mask, (uint16_t)open, (uint16_t)close};
	}
	return last_close == 0 ? -1 : 0;
}

int proto_hours_parse(const char *text, struct proto_hours *out, char *err, size_t errlen)
{
	char buf[PROTO_HOURS_TEXT_MAX];
	memset(out, 0, sizeof(*out));
	if (strcmp(text, "always") == 0)
		return 0;
	if (strlen(text) >= sizeof(buf)) {
		if (err && errlen)
			snprintf(err, errlen, "hours: too long");
		return -1;
	}
	strcpy(buf, text);
	char *save = NULL;
	int rc = 0;
	for (char *rule = strtok_r(buf, ";", &save); rule && rc == 0;
	     rule = strtok_r(NULL, ";", &save))
		rc = one_rule(bundle_trim(rule), out);
	if (rc == 0 && out->count == 0)
		rc = -1;
	if (rc != 0 && err && errlen) {
		if (rc == -2)
			snprintf(err, errlen, "hours '%s': more than %d windows", text,
			         PROTO_HOURS_WINDOWS);
		else
			snprintf(err, errlen,
			         "hours '%s': expected always or 'DAYS HH:MM-HH:MM[,...]' rules "
			         "separated by ';' (DAYS: Mon..Sun or a range such as Mon-Fri)",
			         text);
	}
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc ? -1 : 0;
}
