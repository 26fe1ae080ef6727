/*
 * admin_csv.h — a reader of comma-separated values as RFC 4180 writes them, for the files
 * agents bring to citypass-admin (pass import). Fields may be quoted ("..."), hold commas,
 * line ends and "" for a quote; records end with LF or CRLF; empty lines are skipped; a
 * UTF-8 byte order mark before the first record is skipped (spreadsheets write one).
 *
 * Every malformed input gets one sentence in `err` naming what is wrong; no field is longer
 * than ADMIN_CSV_FIELD_MAX bytes and no record has more than ADMIN_CSV_FIELDS fields, so a
 * hostile file cannot make the reader grow without bound. Fuzzed by
 * tests/fuzz/fuzz_admin_csv.c.
 */
#ifndef CITYPASS_ADMIN_CSV_H
#define CITYPASS_ADMIN_CSV_H

#include <stddef.h>
#include <stdio.h>

#define ADMIN_CSV_FIELDS    16
#define ADMIN_CSV_FIELD_MAX 4096u

struct admin_csv {
	FILE *f;
	/* called with every block read from f, before it is decoded (the import hashes the
	 * file as it checks it); may be NULL */
	void (*on_read)(void *ctx, const unsigned char *p, size_t n);
	void *on_read_ctx;
	unsigned long line; /* physical line of the next character (1-based) */
	unsigned n;         /* fields of the last record */
	char err[160];
	/* private */
	unsigned char io[1 << 16];
	size_t io_at, io_len;
	int eof, bom_checked;
	char *buf; /* the record's fields, each NUL-terminated */
	size_t len, cap;
	size_t at[ADMIN_CSV_FIELDS];
};

/* A reader of f from its current position (line 1). */
void admin_csv_init(struct admin_csv *c, FILE *f);
void admin_csv_free(struct admin_csv *c);
/* The next record: 1, 0 at the end of the file, -1 with c->err (the reading cannot go on).
 * *first_line: the line the record starts on. */
int admin_csv_record(struct admin_csv *c, unsigned long *first_line);
/* Field i of the last record, NUL-terminated ("" for a negative i). */
const char *admin_csv_field(const struct admin_csv *c, int i);

#endif
