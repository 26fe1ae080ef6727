/*
 * admin_csv.c — RFC 4180 records from a file (admin_csv.h).
 */
#include "admin_csv.h"

#include <stdlib.h>
#include <string.h>

void admin_csv_init(struct admin_csv *c, FILE *f)
{
	memset(c, 0, offsetof(struct admin_csv, io));
	c->f = f;
	c->line = 1;
	c->io_at = c->io_len = 0;
	c->eof = c->bom_checked = 0;
	c->buf = NULL;
	c->len = c->cap = 0;
}

void admin_csv_free(struct admin_csv *c)
{
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

static int csv_getc(struct admin_csv *c)
{
	while (c->io_at == c->io_len) { /* a block that held only the byte order mark: read on */
		if (c->eof)
			return EOF;
		c->io_len = fread(c->io, 1, sizeof(c->io), c->f);
		c->io_at = 0;
		if (c->io_len == 0) {
			c->eof = 1;
			return EOF;
		}
		if (c->on_read)
			c->on_read(c->on_read_ctx, c->io, c->io_len);
		if (!c->bom_checked) {
			c->bom_checked = 1;
			if (c->io_len >= 3 && memcmp(c->io, "\xEF\xBB\xBF", 3) == 0)
				c->io_at = 3;
		}
	}
	return c->io[c->io_at++];
}

/* Room for one more byte in the record's buffer. */
static int csv_reserve(struct admin_csv *c)
{
	if (c->len < c->cap)
		return 0;
	size_t cap = c->cap ? 2 * c->cap : 1024;
	char *nb = realloc(c->buf, cap);
	if (!nb) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		return -1;
	}
	c->buf = nb;
	c->cap = cap;
	return 0;
}

static int csv_put(struct admin_csv *c, int ch)
{
	if (ch == 0) {
		snprintf(c->err, sizeof(c->err), "field %u holds a NUL byte (is this a text file?)",
		         c->n);
		return -1;
	}
	if (c->len - c->at[c->n - 1] >= ADMIN_CSV_FIELD_MAX) {
		snprintf(c->err, sizeof(c->err), "field %u is longer than %u bytes", c->n,
		         ADMIN_CSV_FIELD_MAX);
		return -1;
	}
	if (csv_reserve(c) != 0)
		return -1;
	c->buf[c->len++] = (char)ch;
	return 0;
}

/* The end of the field being read: its NUL. */
static int csv_end_field(struct admin_csv *c)
{
	if (csv_reserve(c) != 0)
		return -1;
	c->buf[c->len++] = 0;
	return 0;
}

static int csv_next_field(struct admin_csv *c)
{
	if (c->n > 0 && csv_end_field(c) != 0)
		return -1;
	if (c->n == ADMIN_CSV_FIELDS) {
		snprintf(c->err, sizeof(c->err), "more than %d fields", ADMIN_CSV_FIELDS);
		return -1;
	}
	c->at[c->n++] = c->len;
	return 0;
}

int admin_csv_record(struct admin_csv *c, unsigned long *first_line)
{
	int ch;
	c->len = 0;
	c->n = 0;
	c->err[0] = 0;
	do { /* empty lines */
		*first_line = c->line;
		ch = csv_getc(c);
		if (ch == '\r') {
			ch = csv_getc(c);
			if (ch != '\n') {
				snprintf(c->err, sizeof(c->err),
				         "a carriage return not followed by a line feed");
				return -1;
			}
		}
		if (ch == '\n')
			c->line++;
	} while (ch == '\n');
	if (ch == EOF)
		return 0;
	if (csv_next_field(c) != 0)
		return -1;
	for (;;) {
		if (ch == '"' && c->len == c->at[c->n - 1]) { /* a quoted field */
			unsigned long open_line = c->line;
			for (;;) {
				ch = csv_getc(c);
				if (ch == EOF) {
					snprintf(c->err, sizeof(c->err),
					         "the quote opened on line %lu is never closed",
					         open_line);
					return -1;
				}
				if (ch == '"') {
					ch = csv_getc(c);
					if (ch != '"')
						break; /* closed */
				}
				if (ch == '\n')
					c->line++;
				if (csv_put(c, ch) != 0)
					return -1;
			}
			if (ch != ',' && ch != '\n' && ch != '\r' && ch != EOF) {
				snprintf(c->err, sizeof(c->err),
				         "text after the closing quote of field %u (a quote inside "
				         "a quoted field is written \"\")",
				         c->n);
				return -1;
			}
			continue;
		}
		if (ch == ',') {
			if (csv_next_field(c) != 0)
				return -1;
		} else if (ch == '\r' || ch == '\n' || ch == EOF) {
			if (ch == '\r' && csv_getc(c) != '\n') {
				snprintf(c->err, sizeof(c->err),
				         "a carriage return not followed by a line feed");
				return -1;
			}
			if (ch != EOF)
				c->line++;
			return csv_end_field(c) == 0 ? 1 : -1;
		} else if (ch == '"') {
			snprintf(c->err, sizeof(c->err),
			         "a quote inside field %u, which is not quoted (quote the whole "
			         "field: \"...\", with \"\" for the quote)",
			         c->n);
			return -1;
		} else if (csv_put(c, ch) != 0) {
			return -1;
		}
		ch = csv_getc(c);
	}
}

const char *admin_csv_field(const struct admin_csv *c, int i)
{
	return i < 0 || (unsigned)i >= c->n ? "" : c->buf + c->at[i];
}
