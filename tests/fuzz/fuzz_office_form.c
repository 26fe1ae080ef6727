/*
 * fuzz_office_form.c — what a browser (or anyone) sends the back office: the urlencoded
 * form and query decoder and the Cookie header reader (office/form.h). The first byte picks
 * the decoder. A form that decodes holds text only (UTF-8, no control character but tab,
 * CR, LF) and encodes back to a form that decodes to the same fields; a refusal leaves no
 * field; a cookie value found is cookie-octets only and fits its buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "office/form.h"
#include "server/passes.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_office_form: %s\n", what);
	abort();
}

static void text_only(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = server_utf8_len(p);
		if (n == 0 || (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n') || *p == 0x7F)
			fail("a decoded field is not text");
		p += n;
	}
}

/* percent-encode every byte but unreserved ones */
static size_t encode(const char *s, char *out)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9'))
			out[o++] = (char)*p;
		else
			o += (size_t)sprintf(out + o, "%%%02X", *p);
	}
	return o;
}

static void check_form(const char *text, size_t len)
{
	struct office_form f, g;
	int rc = office_form_parse(text, len, &f);
	if (rc != 0) {
		if (f.n != 0 || f.buf != NULL)
			fail("a refused form left fields");
		return;
	}
	size_t cap = 3 * len + 2 * OFFICE_FORM_FIELDS + 2, o = 0;
	char *back = malloc(cap);
	if (!back)
		fail("malloc");
	for (size_t i = 0; i < f.n; i++) {
		text_only(f.f[i].name);
		text_only(f.f[i].value);
		if (i)
			back[o++] = '&';
		o += encode(f.f[i].name, back + o);
		back[o++] = '=';
		o += encode(f.f[i].value, back + o);
	}
	if (o <= OFFICE_FORM_MAX) {
		if (office_form_parse(back, o, &g) != 0)
			fail("a decoded form, encoded again, does not decode");
		if (g.n != f.n)
			fail("a form encoded again has another number of fields");
		for (size_t i = 0; i < f.n; i++)
			if (strcmp(f.f[i].name, g.f[i].name) || strcmp(f.f[i].value, g.f[i].value))
				fail("a form encoded again decodes differently");
		office_form_free(&g);
	}
	free(back);
	if (f.n && office_form_get(&f, f.f[0].name) != f.f[0].value)
		fail("office_form_get does not find the first field");
	office_form_free(&f);
}

static void check_cookie(const char *text, size_t len)
{
	char out[80];
	char *h = malloc(len + 1);
	if (!h)
		fail("malloc");
	memcpy(h, text, len);
	h[len] = 0;
	static const char *const names[] = {"citypass_session", "citypass_login", "a"};
	for (size_t k = 0; k < 3; k++) {
		memset(out, 'X', sizeof(out));
		if (office_cookie_get(h, names[k], out, sizeof(out)) != 0)
			continue;
		size_t n = strnlen(out, sizeof(out));
		if (n == sizeof(out))
			fail("a cookie value overflows its buffer");
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)out[i];
			if (c <= 0x20 || c >= 0x7F || c == '"' || c == ',' || c == ';' || c == '\\')
				fail("a cookie value holds a byte RFC 6265 forbids");
		}
	}
	free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		check_cookie((const char *)data + 1, size - 1);
	else
		check_form((const char *)data + 1, size - 1);
	return 0;
}

static void emit_text(fuzz_emit_fn emit, void *ctx, uint8_t kind, const char *text)
{
	uint8_t buf[512];
	size_t n = strlen(text);
	buf[0] = kind;
	memcpy(buf + 1, text, n);
	emit(buf, n + 1, ctx);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	emit_text(emit, ctx, 0,
	          "csrf=0123abcd&identifiant=agent-piscine&mot_de_passe=s%C3%A9same+1");
	emit_text(emit, ctx, 0, "q=Zo%C3%AB+L%27H%C3%B4te&&x&=y&motif=%3Cscript%3E");
	emit_text(emit, ctx, 0, "secteur=pool&du=2026-01-01&au=2026-12-31&quota=24&periode=annee");
	emit_text(emit, ctx, 1, "citypass_session=0123456789abcdef; theme=dark");
	emit_text(emit, ctx, 1, " a=\"quoted\" ;citypass_login=ab;citypass_session=\"x y\"");
}
