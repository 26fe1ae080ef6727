/*
 * form.c — urlencoded forms and the Cookie header (office/form.h).
 */
#include <stdlib.h>
#include <string.h>

#include "office/form.h"
#include "server/passes.h"

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode [s, e) into out (never longer than the input); the decoded length, or an error. */
static long decode(const char *s, const char *e, char *out)
{
	char *o = out;
	while (s < e) {
		unsigned char c = (unsigned char)*s++;
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (e - s < 2 || hexval((unsigned char)s[0]) < 0 ||
			    hexval((unsigned char)s[1]) < 0)
				return OFFICE_FORM_BAD_ESCAPE;
			c = (unsigned char)(hexval((unsigned char)s[0]) * 16 +
			                    hexval((unsigned char)s[1]));
			s += 2;
		}
		*o++ = (char)c;
	}
	*o = 0;
	/* text only: well-formed UTF-8, no control character but tab, CR, LF (no NUL) */
	for (const unsigned char *p = (const unsigned char *)out; p < (unsigned char *)o;) {
		size_t n = server_utf8_len(p);
		if (n == 0 || (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n') || *p == 0x7F)
			return OFFICE_FORM_NOT_TEXT;
		p += n;
	}
	return (long)(o - out);
}

int office_form_parse(const char *text, size_t len, struct office_form *out)
{
	memset(out, 0, sizeof(*out));
	if (len > OFFICE_FORM_MAX)
		return OFFICE_FORM_TOO_LONG;
	/* each field's name and value each decode to at most their own length, plus NULs */
	char *buf = malloc(2 * len + 2 * OFFICE_FORM_FIELDS + 2);
	if (!buf)
		return OFFICE_FORM_NOMEM;
	char *w = buf;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp ? amp : end;
		if (pe > p) {
			if (out->n == OFFICE_FORM_FIELDS) {
				free(buf);
				memset(out, 0, sizeof(*out));
				return OFFICE_FORM_TOO_MANY;
			}
			const char *eq = memchr(p, '=', (size_t)(pe - p));
			const char *ne = eq ? eq : pe;
			long a = decode(p, ne, w);
			if (a < 0) {
				free(buf);
				memset(out, 0, sizeof(*out));
				return (int)a;
			}
			out->f[out->n].name = w;
			w += a + 1;
			long b = decode(eq ? eq + 1 : pe, pe, w);
			if (b < 0) {
				free(buf);
				memset(out, 0, sizeof(*out));
				return (int)b;
			}
			out->f[out->n].value = w;
			w += b + 1;
			out->n++;
		}
		p = amp ? amp + 1 : end;
	}
	out->buf = buf;
	return 0;
}

const char *office_form_get(const struct office_form *f, const char *name)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->f[i].name, name) == 0)
			return f->f[i].value;
	return NULL;
}

void office_form_free(struct office_form *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

const char *office_form_strerror(int err)
{
	switch (err) {
	case OFFICE_FORM_OK:
		return "formulaire lu";
	case OFFICE_FORM_TOO_LONG:
		return "le formulaire est trop long";
	case OFFICE_FORM_TOO_MANY:
		return "le formulaire a trop de champs";
	case OFFICE_FORM_BAD_ESCAPE:
		return "le formulaire contient un « % » mal formé";
	case OFFICE_FORM_NOT_TEXT:
		return "le formulaire contient des caractères qui ne sont pas du texte (UTF-8)";
	case OFFICE_FORM_NOMEM:
		return "mémoire insuffisante pour lire le formulaire";
	}
	return "le formulaire est illisible";
}

/* RFC 6265 §4.1.1 cookie-octet */
static int cookie_octet(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
	       (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

int office_cookie_get(const char *header, const char *name, char *out, size_t cap)
{
	if (!header || cap == 0)
		return -1;
	size_t nl = strlen(name);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *pair = p;
		while (*p && *p != ';')
			p++;
		const char *eq = memchr(pair, '=', (size_t)(p - pair));
		if (!eq || (size_t)(eq - pair) != nl || memcmp(pair, name, nl) != 0)
			continue;
		const char *v = eq + 1, *ve = p;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"')
			v++, ve--;
		int good = 1;
		for (const char *q = v; q < ve; q++)
			good &= cookie_octet((unsigned char)*q);
		if (!good)
			continue;
		if ((size_t)(ve - v) >= cap)
			return -1;
		memcpy(out, v, (size_t)(ve - v));
		out[ve - v] = 0;
		return 0;
	}
	return -1;
}
