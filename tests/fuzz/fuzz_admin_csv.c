/*
 * Fuzz target: the CSV reader of citypass-admin pass import (server/tools/admin_csv.c) on
 * hostile files. Every input must end in records or one sentence of error, never a crash, a
 * hang or a read past a buffer; fields stay within their bounds, line numbers only grow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_csv.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* fmemopen refuses an empty buffer: read an empty file from /dev/null instead */
	FILE *f = size ? fmemopen((void *)data, size, "rb") : fopen("/dev/null", "rb");
	if (!f)
		return 0;
	struct admin_csv *c = malloc(sizeof(*c));
	if (!c) {
		fclose(f);
		return 0;
	}
	admin_csv_init(c, f);
	unsigned long line = 0, prev = 0;
	size_t records = 0;
	int r;
	while ((r = admin_csv_record(c, &line)) > 0) {
		if (line < prev || c->n == 0 || c->n > ADMIN_CSV_FIELDS)
			abort();
		prev = line;
		for (unsigned i = 0; i < c->n; i++)
			if (strlen(admin_csv_field(c, (int)i)) > ADMIN_CSV_FIELD_MAX)
				abort();
		if (*admin_csv_field(c, -1) || *admin_csv_field(c, (int)c->n))
			abort();
		if (++records > size + 1) /* each record consumes at least one byte */
			abort();
	}
	if (r < 0 && (c->err[0] == 0 || strlen(c->err) >= sizeof(c->err)))
		abort(); /* an error is one sentence */
	admin_csv_free(c);
	free(c);
	fclose(f);
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static const char *const seeds[] = {
	        "holder,household,rights\nAnn,doe,pool\n,,\"pool,product=2;library\"\n",
	        "\xEF\xBB\xBFid,holder,household,rights\r\nA1,\"Doe, \"\"Jo\"\"\",doe,bus\r\n\r\n",
	        "a,\"multi\nline\",c\n\"\",\"\"\"\",x",
	        "h\n\"never closed,\n",
	        "a\"b,c\r\nd\re\n",
	        ",,,,,,,,,,,,,,,,,\n",
	};
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		emit((const uint8_t *)seeds[i], strlen(seeds[i]), ctx);
}
