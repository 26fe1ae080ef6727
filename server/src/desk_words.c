/*
 * desk_words.c — the vocabulary agents type and read (server/passes.h): sectors by name or
 * number, pass states, the names of things, days. The CLI and the back office parse and
 * show them the same way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pass_internal.h"

int server_sector_find(struct server_store *st, const char *s, struct server_sector *out)
{
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = st->ops->sector_list(st->ctx, &v, &n);
	if (rc)
		return rc;
	char *end = NULL;
	unsigned long num = 0;
	int numeric = s[0] >= '0' && s[0] <= '9';
	if (numeric) {
		num = strtoul(s, &end, 10);
		numeric = *end == 0 && num <= UINT16_MAX;
	}
	rc = SERVER_ERR_NOT_FOUND;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, s) == 0 || (numeric && v[i].number == num)) {
			*out = v[i];
			rc = 0;
		}
	free(v);
	return rc;
}

void server_sector_name(struct server_store *st, uint16_t number, char *out, size_t cap)
{
	char num[8];
	snprintf(num, sizeof(num), "%u", number);
	struct server_sector s;
	if (server_sector_find(st, num, &s) == 0)
		snprintf(out, cap, "%s", s.name);
	else
		snprintf(out, cap, "%u", number);
}

static const char *const state_names[] = {"active", "revoked", "replaced", "suspended"};

const char *server_pass_state_name(int state)
{
	return state >= 0 && state <= 3 ? state_names[state] : "unknown";
}

int server_pass_state_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return -1;
}

int server_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= SERVER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

size_t server_utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, min = 0x80;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, min = 0x800;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, min = 0x10000;
	else
		return 0;
	unsigned v = c & (0x3F >> (n - 1));
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	return n;
}

void server_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = server_utf8_len(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7F)
			fprintf(f, "\\u%04x", *p);
		else
			fwrite(p, 1, n, f);
		p += n;
	}
	fputc('"', f);
}

void server_html_text(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = server_utf8_len(p);
		if (n == 0 || (*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7F) {
			fputs("\xEF\xBF\xBD", f); /* U+FFFD: not text, shown as such */
			p += n ? n : 1;
			continue;
		}
		switch (*p) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fwrite(p, 1, n, f);
		}
		p += n;
	}
}

int server_day_parse(const char *s, int64_t *day)
{
	int y, m, d, n = 0;
	if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10)
		return -1;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1970 || y > 2149 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (m == 2 && d == 29 && !leap)
		return -1;
	struct tm tm = {0};
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	tm.tm_hour = 12;
	time_t t = timegm(&tm);
	*day = (int64_t)t / 86400;
	return 0;
}

int pass_value_sector(struct server_store *st)
{
	char vs[16];
	if (st->ops->meta_get(st->ctx, "value_sector", vs, sizeof(vs)) != 0)
		return -1;
	return atoi(vs);
}

void pass_changed_add(struct server_sector_set *set, uint16_t sector)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == sector)
			return;
	if (set->n < SERVER_CARD_SLOTS)
		set->v[set->n++] = sector;
}

int pass_why_store(struct server_why *why, struct server_store *st, int rc, const char *what)
{
	return server_why_set(why, rc, "%s: %s", what, server_store_strerror(st, rc));
}

int pass_begin(struct server_store *st, struct server_why *why)
{
	int rc = st->ops->begin(st->ctx);
	return rc ? pass_why_store(why, st, rc, "cannot start a transaction") : 0;
}

int pass_end(struct server_store *st, int rc, struct server_why *why)
{
	if (rc == 0 && (rc = st->ops->commit(st->ctx)) != 0)
		server_why_set(why, rc, "cannot commit: %s; nothing was changed",
		               server_store_strerror(st, rc));
	if (rc)
		st->ops->rollback(st->ctx);
	return rc;
}

/* The letters U+00C0..U+017F stand for, lower case and without their accent: one entry per
 * code point, "" for the two that are no letter (multiplication and division signs, kept
 * as they are). Latin-1 Supplement then Latin Extended-A: every letter of French names
 * (é, è, ç, œ, ÿ...) and of the neighbouring languages a town's register holds. */
/* clang-format off */
static const char *const fold_latin[] = {
	/* U+00C0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
	/* U+00D0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "ss",
	/* U+00E0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
	/* U+00F0 */ "d", "n", "o", "o", "o", "o", "o", "", "o", "u", "u", "u", "u", "y", "th", "y",
	/* U+0100 */ "a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",
	/* U+0110 */ "d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",
	/* U+0120 */ "g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",
	/* U+0130 */ "i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l",
	/* U+0140 */ "l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",
	/* U+0150 */ "o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s",
	/* U+0160 */ "s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",
	/* U+0170 */ "u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s",
};
/* clang-format on */

size_t server_text_fold(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	if (cap == 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		char one[2] = {0, 0};
		const char *put = one;
		size_t n = server_utf8_len(p);
		uint32_t cp = 0;
		if (n == 2)
			cp = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
		else if (n == 3)
			cp = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 |
			     (p[2] & 0x3f);
		if (n == 0) {
			n = 1; /* not UTF-8: kept as it is, matched byte for byte */
			one[0] = (char)*p;
		} else if (n == 1) {
			one[0] = (char)(*p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p);
		} else if (cp >= 0xc0 && cp <= 0x17f && *fold_latin[cp - 0xc0]) {
			put = fold_latin[cp - 0xc0];
		} else if (cp >= 0x300 && cp <= 0x36f) {
			put = ""; /* a combining accent (a name typed decomposed, NFD): dropped */
		} else if (cp == 0x2019 || cp == 0x2bc) {
			put = "'"; /* N’Diaye is N'Diaye */
		} else {
			put = NULL; /* any other character, as it is */
		}
		size_t len = put ? strlen(put) : n;
		if (o + len >= cap)
			break; /* whole characters only */
		memcpy(out + o, put ? put : (const char *)p, len);
		o += len;
		p += n;
	}
	out[o] = 0;
	return o;
}
