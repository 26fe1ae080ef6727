/*
 * office/form.h — what a browser sends the back office, decoded: a form body or a query
 * string (application/x-www-form-urlencoded, the HTML standard's algorithm) and the Cookie
 * header (RFC 6265 §4.2). Pure functions on bytes: no I/O, fuzzed (tests/fuzz/fuzz_office_form.c).
 *
 * A decoder refuses rather than guesses: a '%' not followed by two hex digits, a byte that is
 * not UTF-8 text (RFC 3629) or a control character other than tab, CR and LF once decoded,
 * more than OFFICE_FORM_FIELDS fields, or more than OFFICE_FORM_MAX bytes in all. The page
 * then says the form was unreadable; nothing half-decoded is used.
 */
#ifndef OFFICE_FORM_H
#define OFFICE_FORM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OFFICE_FORM_FIELDS 32
#define OFFICE_FORM_MAX    (16 * 1024)

enum office_form_error {
	OFFICE_FORM_OK = 0,
	OFFICE_FORM_TOO_LONG = -1,   /* more than OFFICE_FORM_MAX bytes */
	OFFICE_FORM_TOO_MANY = -2,   /* more than OFFICE_FORM_FIELDS fields */
	OFFICE_FORM_BAD_ESCAPE = -3, /* '%' without two hex digits */
	OFFICE_FORM_NOT_TEXT = -4,   /* not UTF-8, or a control character */
	OFFICE_FORM_NOMEM = -5,
};

struct office_form_field {
	const char *name, *value; /* NUL-terminated, decoded, inside the form's own copy */
};

/* A decoded form; zero it (or office_form_parse) before office_form_free. */
struct office_form {
	size_t n;
	struct office_form_field f[OFFICE_FORM_FIELDS];
	char *buf;
};

/* Decode `len` bytes of urlencoded text (a body, or a query string without its '?'): 0 or
 * an office_form_error, and then `out` holds no field. Empty pairs ("a=1&&b=2") are skipped;
 * a pair without '=' is a name with an empty value. */
int office_form_parse(const char *text, size_t len, struct office_form *out);
/* The first value of `name`, or NULL. */
const char *office_form_get(const struct office_form *f, const char *name);
void office_form_free(struct office_form *f);
/* A French sentence for an office_form_error. */
const char *office_form_strerror(int err);

/* The value of cookie `name` in a Cookie header (`header` may be NULL): 0 and the value in
 * out (at most cap - 1 bytes, else -1), or -1 when absent. A cookie value is taken as sent
 * (RFC 6265 cookie-octets only: anything else makes the pair unreadable, skipped). */
int office_cookie_get(const char *header, const char *name, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* OFFICE_FORM_H */
