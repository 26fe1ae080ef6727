/*
 * proto/src/bundle_text.c — the line-level reading and writing both bundle files share
 * (bundle_text.h): one place bounds every line and every number.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle_text.h"
#include "proto/error.h"

void bundle_put(struct bundle_out *o, const char *fmt, ...)
{
	if (o->over)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->n, o->cap - o->n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->n)
		o->over = 1;
	else
		o->n += (size_t)n;
}

int bundle_fail(struct bundle_in *in, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (in->err && in->errlen)
		snprintf(in->err, in->errlen, "%s", msg);
	if (in->err_line)
		*in->err_line = in->line;
	return PROTO_ERR_BUNDLE;
}

char *bundle_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

int bundle_next_line(struct bundle_in *in, char *line, size_t cap, char **s)
{
	while (in->pos < in->len) {
		const char *start = in->text + in->pos;
		const char *nl = memchr(start, '\n', in->len - in->pos);
		size_t n = nl ? (size_t)(nl - start) : in->len - in->pos;
		in->line++;
		if (n >= cap)
			return bundle_fail(in, "longer than %zu characters", cap - 1);
		if (memchr(start, '\0', n))
			return bundle_fail(in, "a NUL byte: not a text file");
		memcpy(line, start, n);
		line[n] = '\0';
		in->pos += n + (nl != NULL);
		*s = bundle_trim(line);
		if (**s != '\0' && **s != '#')
			return 1;
	}
	return 0;
}

int bundle_number(struct bundle_in *in, const char *key, const char *v, unsigned long min,
                  unsigned long max, unsigned long *out)
{
	char *end;
	if (!isdigit((unsigned char)v[0]) || strlen(v) > 10)
		return bundle_fail(in, "%s '%s': expected a number from %lu to %lu", key, v, min,
		                   max);
	unsigned long n = strtoul(v, &end, 10);
	if (*end || n < min || n > max)
		return bundle_fail(in, "%s '%s': expected a number from %lu to %lu", key, v, min,
		                   max);
	*out = n;
	return 0;
}
