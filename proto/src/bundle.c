/*
 * proto/src/bundle.c — the card key file of a device bundle (proto/bundle.h): its one
 * writer and its one reader. Lines are "key value"; the reader names the line and the key
 * of the first thing wrong, and wipes what it read (the file holds master keys).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "bundle_text.h"
#include "proto/bundle.h"
#include "proto/error.h"

#define LINE_MAX_LEN 256

/* --- writer ---------------------------------------------------------------------------- */

static void put_hex(struct bundle_out *o, const char *key, const uint8_t *b, size_t n)
{
	bundle_put(o, "%s ", key);
	for (size_t i = 0; i < n; i++)
		bundle_put(o, "%02x", b[i]);
	bundle_put(o, "\n");
}

int proto_card_key_write(const struct proto_card_key *k, const char *who, char *buf, size_t cap)
{
	if (!k || !buf || cap == 0 || k->aid > 0xFFFFFF || k->sys_id_len == 0 ||
	    k->sys_id_len > PROTO_CARD_KEY_SYS_MAX || k->sector == 0 ||
	    k->slot >= PROTO_CARD_KEY_SLOTS || (k->reads_value != 0 && k->reads_value != 1))
		return PROTO_ERR_ARG;
	struct bundle_out o = {buf, cap, 0, 0};
	bundle_put(&o, "# citypass card sector key (docs/admin.md)%s%s - secret\n", who ? ", " : "",
	           who ? who : "");
	bundle_put(&o, "format %u\naid %06x\n", PROTO_CARD_KEY_FORMAT, (unsigned)k->aid);
	put_hex(&o, "system-id", k->sys_id, k->sys_id_len);
	bundle_put(&o, "sector %u\nslot %u\nkey-version %u\n", (unsigned)k->sector,
	           (unsigned)k->slot, (unsigned)k->version);
	put_hex(&o, "master", k->master, sizeof(k->master));
	bundle_put(&o, "reads-value %d\n", k->reads_value);
	if (k->has_previous) {
		bundle_put(&o, "previous-key-version %u\n", (unsigned)k->previous_version);
		put_hex(&o, "previous-master", k->previous, sizeof(k->previous));
	}
	if (o.over) {
		mbedtls_platform_zeroize(buf, cap);
		return PROTO_ERR_BUFSIZE;
	}
	return (int)o.n;
}

/* --- reader ---------------------------------------------------------------------------- */

static int hex_decode(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = strlen(s);
	if (n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*len = n / 2;
	return 0;
}

enum seen {
	SEEN_FORMAT = 1 << 0,
	SEEN_AID = 1 << 1,
	SEEN_SYS = 1 << 2,
	SEEN_SECTOR = 1 << 3,
	SEEN_SLOT = 1 << 4,
	SEEN_VERSION = 1 << 5,
	SEEN_MASTER = 1 << 6,
	SEEN_READS = 1 << 7,
	SEEN_PREV_VERSION = 1 << 8,
	SEEN_PREV_MASTER = 1 << 9,
};

static int one_line(struct bundle_in *in, char *s, struct proto_card_key *k, unsigned *seen)
{
	char *sp = strpbrk(s, " \t");
	if (!sp)
		return bundle_fail(in, "'%s': expected 'key value'", s);
	*sp = '\0';
	char *v = sp + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	static const struct {
		const char *name;
		unsigned bit;
	} keys[] = {{"format", SEEN_FORMAT},
	            {"aid", SEEN_AID},
	            {"system-id", SEEN_SYS},
	            {"sector", SEEN_SECTOR},
	            {"slot", SEEN_SLOT},
	            {"key-version", SEEN_VERSION},
	            {"master", SEEN_MASTER},
	            {"reads-value", SEEN_READS},
	            {"previous-key-version", SEEN_PREV_VERSION},
	            {"previous-master", SEEN_PREV_MASTER}};
	unsigned bit = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(s, keys[i].name) == 0)
			bit = keys[i].bit;
	if (!bit)
		return bundle_fail(in, "unknown key '%s'", s);
	if (*seen & bit)
		return bundle_fail(in, "%s: given twice", s);
	*seen |= bit;
	if (bit == SEEN_FORMAT && *seen != SEEN_FORMAT)
		return bundle_fail(in, "format: must come before every other key");
	unsigned long n = 0;
	size_t len = 0;
	uint8_t aid[3];
	switch (bit) {
	case SEEN_FORMAT:
		if (bundle_number(in, s, v, 1, 255, &n))
			return PROTO_ERR_BUNDLE;
		if (n > PROTO_CARD_KEY_FORMAT)
			return bundle_fail(in, "format %lu: newer than this reader (%u): update it",
			                   n, PROTO_CARD_KEY_FORMAT);
		k->format = (unsigned)n;
		return 0;
	case SEEN_AID:
		if (hex_decode(v, aid, sizeof(aid), &len) || len != 3)
			return bundle_fail(in, "aid '%s': expected 6 hex digits", v);
		k->aid = (uint32_t)aid[0] << 16 | (uint32_t)aid[1] << 8 | aid[2];
		return 0;
	case SEEN_SYS:
		if (hex_decode(v, k->sys_id, sizeof(k->sys_id), &len) || len == 0)
			return bundle_fail(in, "system-id '%s': expected 2 to %d hex digits", v,
			                   2 * PROTO_CARD_KEY_SYS_MAX);
		k->sys_id_len = len;
		return 0;
	case SEEN_SECTOR:
		if (bundle_number(in, s, v, 1, 65535, &n))
			return PROTO_ERR_BUNDLE;
		k->sector = (uint16_t)n;
		return 0;
	case SEEN_SLOT:
		if (bundle_number(in, s, v, 0, PROTO_CARD_KEY_SLOTS - 1, &n))
			return PROTO_ERR_BUNDLE;
		k->slot = (uint8_t)n;
		return 0;
	case SEEN_VERSION:
	case SEEN_PREV_VERSION:
		if (bundle_number(in, s, v, 0, 255, &n))
			return PROTO_ERR_BUNDLE;
		*(bit == SEEN_VERSION ? &k->version : &k->previous_version) = (uint8_t)n;
		return 0;
	case SEEN_MASTER:
	case SEEN_PREV_MASTER:
		if (hex_decode(v, bit == SEEN_MASTER ? k->master : k->previous,
		               PROTO_CARD_KEY_AES_LEN, &len) ||
		    len != PROTO_CARD_KEY_AES_LEN)
			return bundle_fail(in, "%s: expected 32 hex digits (an AES-128 key)", s);
		k->has_previous |= bit == SEEN_PREV_MASTER;
		return 0;
	default: /* SEEN_READS */
		if (bundle_number(in, s, v, 0, 1, &n))
			return PROTO_ERR_BUNDLE;
		k->reads_value = (int)n;
		return 0;
	}
}

int proto_card_key_parse(const char *text, size_t len, struct proto_card_key *out, char *err,
                         size_t errlen, unsigned *err_line)
{
	struct bundle_in in = {text, len, 0, 0, err, errlen, err_line};
	if (err_line)
		*err_line = 0;
	if (!text || !out)
		return PROTO_ERR_ARG;
	memset(out, 0, sizeof(*out));
	out->format = 1;
	unsigned seen = 0;
	int rc = 0;
	char line[LINE_MAX_LEN], *s;
	while (rc == 0 && (rc = bundle_next_line(&in, line, sizeof(line), &s)) == 1)
		rc = one_line(&in, s, out, &seen);
	mbedtls_platform_zeroize(line, sizeof(line));
	in.line = 0;
	const unsigned needed = SEEN_AID | SEEN_SYS | SEEN_SECTOR | SEEN_SLOT | SEEN_MASTER;
	if (rc == 0 && (seen & needed) != needed)
		rc = bundle_fail(&in, "incomplete: needs aid, system-id, sector, slot and master");
	if (rc == 0 && out->format >= 2 && !(seen & SEEN_VERSION))
		rc = bundle_fail(&in, "format %u: key-version missing (the master key's version)",
		                 out->format);
	const unsigned prev = SEEN_PREV_VERSION | SEEN_PREV_MASTER;
	if (rc == 0 && (seen & prev) && (seen & prev) != prev)
		rc = bundle_fail(&in, "previous-master and previous-key-version go together");
	if (rc != 0)
		mbedtls_platform_zeroize(out, sizeof(*out));
	return rc;
}
