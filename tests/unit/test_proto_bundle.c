/*
 * The device bundle's card key file (proto/bundle.h): what the one writer writes, the one
 * reader reads back unchanged; files written before the format line still read; every bad
 * line is refused with a sentence naming it; key-version is required from format 2 on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/bundle.h"
#include "proto/error.h"

static const struct proto_card_key sample = {
        .format = PROTO_CARD_KEY_FORMAT,
        .aid = 0xC17A55,
        .sys_id = {0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01, 0x02, 0x03},
        .sys_id_len = 8,
        .sector = 4,
        .slot = 3,
        .version = 7,
        .master = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC,
                   0xDD, 0xEE, 0xFF},
        .reads_value = 1,
        .has_previous = 1,
        .previous_version = 6,
        .previous = {0xFF, 0xEE},
};

static void test_round_trip(void **state)
{
	(void)state;
	char text[PROTO_CARD_KEY_TEXT_MAX];
	int n = proto_card_key_write(&sample, "test", text, sizeof(text));
	assert_true(n > 0);
	assert_non_null(strstr(text, "\nformat 2\naid c17a55\n"));
	assert_non_null(strstr(text, "\nkey-version 7\n"));
	struct proto_card_key k;
	char err[200];
	unsigned line;
	assert_int_equal(proto_card_key_parse(text, (size_t)n, &k, err, sizeof(err), &line), 0);
	assert_memory_equal(&k, &sample, sizeof(k));
	/* too small a buffer: refused, nothing half-written left */
	char small[64];
	assert_int_equal(proto_card_key_write(&sample, NULL, small, sizeof(small)),
	                 PROTO_ERR_BUFSIZE);
	struct proto_card_key bad = sample;
	bad.slot = PROTO_CARD_KEY_SLOTS;
	assert_int_equal(proto_card_key_write(&bad, NULL, text, sizeof(text)), PROTO_ERR_ARG);
}

/* Bundles made before the format line (format 1) read as they always did. */
static void test_format_1(void **state)
{
	(void)state;
	static const char v1[] = "# citypass card sector key (docs/admin.md) - secret\n"
	                         "aid c17a55\nsystem-id deadbeef00010203\nsector 4\nslot 3\n"
	                         "master 00112233445566778899aabbccddeeff\nreads-value 0\n";
	struct proto_card_key k;
	char err[200];
	unsigned line;
	assert_int_equal(proto_card_key_parse(v1, sizeof(v1) - 1, &k, err, sizeof(err), &line), 0);
	assert_int_equal(k.format, 1);
	assert_int_equal(k.version, 0);
	assert_int_equal(k.aid, 0xC17A55);
	assert_int_equal(k.sector, 4);
}

static void refused(const char *text, unsigned want_line, const char *want)
{
	struct proto_card_key k;
	char err[200] = "";
	unsigned line = 99;
	memset(&k, 0x5A, sizeof(k));
	assert_int_equal(proto_card_key_parse(text, strlen(text), &k, err, sizeof(err), &line),
	                 PROTO_ERR_BUNDLE);
	print_message("refused: line %u: %s\n", line, err);
	assert_non_null(strstr(err, want));
	assert_int_equal(line, want_line);
	static const struct proto_card_key zero;
	assert_memory_equal(&k, &zero, sizeof(k)); /* nothing of a key left */
}

#define HEAD   "format 2\naid c17a55\nsystem-id 0102\nsector 1\nslot 0\n"
#define MASTER "master 00112233445566778899aabbccddeeff\n"

static void test_refusals(void **state)
{
	(void)state;
	refused(HEAD MASTER, 0, "key-version missing");
	refused("format 3\n" MASTER, 1, "format 3: newer than this reader");
	refused(HEAD "key-version 1\nmaster 0011\n", 7, "master: expected 32 hex digits");
	refused(HEAD "key-version 256\n" MASTER, 6, "key-version '256'");
	refused(HEAD "key-version 1\n" MASTER "sector 2\n", 8, "sector: given twice");
	refused(HEAD "key-version 1\n" MASTER "colour blue\n", 8, "unknown key 'colour'");
	refused(HEAD "key-version 1\n" MASTER "previous-key-version 0\n", 0,
	        "previous-master and previous-key-version go together");
	refused("aid c17a55\nformat 2\n", 2, "format: must come before");
	refused("format 2\naid c17a5\n", 2, "aid 'c17a5': expected 6 hex digits");
	refused("format 2\nslot 6\n", 2, "slot '6'");
	refused("format 2\nsector\n", 2, "'sector': expected 'key value'");
	refused("format 2\nkey-version 1\n", 0, "incomplete");
	refused("", 0, "incomplete");
	char nul[] = "format 2\nsector 1\0\n";
	struct proto_card_key k;
	char err[200];
	unsigned line;
	assert_int_equal(proto_card_key_parse(nul, sizeof(nul) - 1, &k, err, sizeof(err), &line),
	                 PROTO_ERR_BUNDLE);
	assert_non_null(strstr(err, "NUL"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_format_1),
	        cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
