/*
 * fuzz_proto_bundle.c — the device bundle's card key file reader (proto/bundle.h) on
 * hostile text. Beyond "no crash, no read past the text": what it accepts is in range and
 * survives the trip through the one writer and back unchanged, and a refusal says why and
 * leaves nothing of a key behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/bundle.h"
#include "proto/error.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_proto_bundle: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_card_key k, again;
	char err[256] = "", text[PROTO_CARD_KEY_TEXT_MAX];
	unsigned line = 0;
	int rc = proto_card_key_parse((const char *)data, size, &k, err, sizeof(err), &line);
	if (rc != 0) {
		static const struct proto_card_key zero;
		if (rc != PROTO_ERR_BUNDLE || err[0] == '\0')
			fail("a refusal without its sentence");
		if (memcmp(&k, &zero, sizeof(k)) != 0)
			fail("a refused file left a key behind");
		return 0;
	}
	if (k.sector == 0 || k.slot >= PROTO_CARD_KEY_SLOTS || k.sys_id_len == 0 ||
	    k.sys_id_len > PROTO_CARD_KEY_SYS_MAX || k.aid > 0xFFFFFF || k.format < 1 ||
	    k.format > PROTO_CARD_KEY_FORMAT)
		fail("an accepted file out of range");
	int n = proto_card_key_write(&k, "fuzz", text, sizeof(text));
	if (n <= 0)
		fail("an accepted file does not write back");
	if (proto_card_key_parse(text, (size_t)n, &again, err, sizeof(err), &line) != 0)
		fail("what the writer wrote does not read");
	k.format = PROTO_CARD_KEY_FORMAT; /* the writer writes the current format */
	if (memcmp(&k, &again, sizeof(k)) != 0)
		fail("the trip through the writer changed the key");
	return 0;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	struct proto_card_key k = {.aid = 0xC17A55,
	                           .sys_id = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08},
	                           .sys_id_len = 8,
	                           .sector = 1,
	                           .slot = 2,
	                           .version = 3,
	                           .master = {0x11, 0x22, 0x33},
	                           .reads_value = 1};
	char text[PROTO_CARD_KEY_TEXT_MAX];
	int n = proto_card_key_write(&k, NULL, text, sizeof(text));
	if (n > 0)
		emit((const uint8_t *)text, (size_t)n, ctx);
	k.has_previous = 1;
	k.previous_version = 2;
	k.previous[0] = 0x99;
	n = proto_card_key_write(&k, "seed", text, sizeof(text));
	if (n > 0)
		emit((const uint8_t *)text, (size_t)n, ctx);
	/* a format-1 file, as bundles made before the format line hold */
	static const char v1[] = "# citypass card sector key (docs/admin.md) - secret\n"
	                         "aid c17a55\nsystem-id 0102030405060708\nsector 1\nslot 0\n"
	                         "key-version 1\nmaster 00112233445566778899aabbccddeeff\n"
	                         "reads-value 0\n";
	emit((const uint8_t *)v1, sizeof(v1) - 1, ctx);
}
