/*
 * proto/src/bundle_text.h — what the bundle's two text files (card-sector.key, bundle.c;
 * device.conf, device_conf.c) share: an output that never overruns its buffer, the line
 * reader that names the line of the first thing wrong, and bounded numbers.
 */
#ifndef PROTO_BUNDLE_TEXT_H
#define PROTO_BUNDLE_TEXT_H

#include <stddef.h>

#define BUNDLE_LINE_MAX 2048 /* device.conf holds paths: its lines are the longest */

struct bundle_out {
	char *buf;
	size_t cap, n;
	int over; /* cap was too small: the text is not whole */
};

void bundle_put(struct bundle_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct bundle_in {
	const char *text;
	size_t len, pos;
	unsigned line; /* of the line last read; 0 once the file as a whole is checked */
	char *err;
	size_t errlen;
	unsigned *err_line;
};

/* The sentence into in->err, the line into *in->err_line; PROTO_ERR_BUNDLE. */
int bundle_fail(struct bundle_in *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The next line that is not blank nor a comment ('#' first), trimmed, into line (cap
 * bytes, at most BUNDLE_LINE_MAX): 1, 0 at the end, PROTO_ERR_BUNDLE for a line too long
 * or holding a NUL byte.
 */
int bundle_next_line(struct bundle_in *in, char *line, size_t cap, char **s);

/* Strip spaces, tabs and line ends from both ends of s, in place (the hours grammar,
 * hours.c, trims its rules and windows with it too). */
char *bundle_trim(char *s);

/* v as a decimal number from min to max, or a refusal naming key. */
int bundle_number(struct bundle_in *in, const char *key, const char *v, unsigned long min,
                  unsigned long max, unsigned long *out);

#endif /* PROTO_BUNDLE_TEXT_H */
