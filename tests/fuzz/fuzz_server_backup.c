/*
 * fuzz_server_backup.c — the backup reader (server/src/backup.c) on hostile files. The
 * first byte chooses what the rest is: 0, a whole file (header, framing, tags: almost
 * every mutation must be refused by GCM, never read); 1, a plaintext that this target
 * seals under the fixed key, in chunks of a size given by the second byte, so that the
 * entry parser behind the tags is fuzzed too. Beyond "no crash": every path handed to the
 * sink is a plain name inside the data directory, every file gets exactly the bytes it
 * declared, and a refusal says why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/gcm.h>

#include "backup_internal.h"
#include "fuzz.h"
#include "server/error.h"

static const uint8_t key[BACKUP_KEY_LEN] = {0x42};

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_server_backup: %s\n", what);
	abort();
}

struct check {
	int open;
	uint64_t declared, got;
};

static int on_begin(void *ctx, const char *path, uint32_t mode, uint64_t size)
{
	struct check *c = ctx;
	(void)mode;
	if (c->open)
		fail("a file begun inside another");
	/* checked here without backup_path_ok: absolute, or a ".." component anywhere */
	size_t n = strlen(path);
	if (path[0] == '/' || strcmp(path, "..") == 0 || strncmp(path, "../", 3) == 0 ||
	    strstr(path, "/../") || (n >= 3 && strcmp(path + n - 3, "/..") == 0))
		fail("a path outside the data directory reached the sink");
	c->open = 1;
	c->declared = size;
	c->got = 0;
	return 0;
}

static int on_data(void *ctx, const uint8_t *p, size_t n)
{
	struct check *c = ctx;
	(void)p;
	if (!c->open)
		fail("bytes outside a file");
	c->got += n;
	if (c->got > c->declared)
		fail("more bytes than the file declared");
	return 0;
}

static int on_end(void *ctx)
{
	struct check *c = ctx;
	if (!c->open || c->got != c->declared)
		fail("a file ended with fewer bytes than it declared");
	c->open = 0;
	return 0;
}

static void header(uint8_t *out)
{
	memcpy(out, BACKUP_MAGIC, BACKUP_MAGIC_LEN);
	out[16] = BACKUP_FORMAT;
	out[17] = BACKUP_KDF_ARGON2ID;
	static const uint8_t costs[12] = {0, 0, 0, 1, 0, 0, 0, 64, 0, 0, 0, 1};
	memcpy(out + 18, costs, sizeof(costs));
	memset(out + 30, 0x5a, BACKUP_SALT_LEN);
}

/* The plaintext sealed as the writer would, in chunks of `chunk` bytes (at least 1). */
static uint8_t *seal(const uint8_t *pt, size_t n, size_t chunk, size_t *out_len)
{
	size_t chunks = n / chunk + 1;
	uint8_t *out = malloc(BACKUP_HEADER_LEN + n + chunks * (4 + BACKUP_TAG_LEN));
	if (!out)
		return NULL;
	header(out);
	size_t o = BACKUP_HEADER_LEN;
	mbedtls_gcm_context gcm;
	mbedtls_gcm_init(&gcm);
	mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 256);
	for (size_t i = 0, off = 0; i < chunks; i++) {
		size_t len = n - off < chunk ? n - off : chunk;
		int last = i == chunks - 1;
		if (last)
			len = n - off;
		uint8_t nonce[12] = {0};
		for (int b = 0; b < 8; b++)
			nonce[b] = (uint8_t)((uint64_t)i >> (56 - 8 * b));
		nonce[8] = (uint8_t)last;
		out[o] = (uint8_t)(len >> 24);
		out[o + 1] = (uint8_t)(len >> 16);
		out[o + 2] = (uint8_t)(len >> 8);
		out[o + 3] = (uint8_t)len;
		mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, len, nonce, 12,
		                          i == 0 ? out : NULL, i == 0 ? BACKUP_HEADER_LEN : 0,
		                          pt + off, out + o + 4, BACKUP_TAG_LEN, out + o + 4 + len);
		o += 4 + len + BACKUP_TAG_LEN;
		off += len;
	}
	mbedtls_gcm_free(&gcm);
	*out_len = o;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t *file = NULL;
	size_t len = size - 1;
	if (data[0] & 1) {
		size_t chunk = (size_t)data[1] + 1;
		if (chunk * 4096 < size) /* a bounded number of chunks */
			chunk = size / 4096 + 1;
		file = seal(data + 2, size - 2, chunk, &len);
		if (!file)
			return 0;
	} else {
		file = malloc(len ? len : 1);
		if (!file)
			return 0;
		memcpy(file, data + 1, len);
	}
	FILE *in = fmemopen(file, len, "rb");
	if (!in) {
		free(file);
		return 0;
	}
	struct check c = {0};
	const struct backup_sink sink = {on_begin, on_data, on_end, &c};
	char why[512] = "";
	int rc = backup_read(in, NULL, key, &sink, NULL, why, sizeof(why));
	fclose(in);
	free(file);
	if (rc != 0 && why[0] == '\0')
		fail("a refusal without its sentence");
	if (rc == 0 && c.open)
		fail("an accepted file ended inside an entry");
	return 0;
}

static void entry(uint8_t *p, size_t *h, const char *path, const char *body)
{
	size_t nl = strlen(path), bl = strlen(body);
	p[(*h)++] = 'F';
	p[(*h)++] = (uint8_t)(nl >> 8);
	p[(*h)++] = (uint8_t)nl;
	memcpy(p + *h, path, nl);
	*h += nl;
	memset(p + *h, 0, 12);
	p[*h + 2] = 0x01; /* mode 0600 */
	p[*h + 3] = 0x80;
	p[*h + 11] = (uint8_t)bl;
	*h += 12;
	memcpy(p + *h, body, bl);
	*h += bl;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	uint8_t p[512];
	size_t h = 0;
	p[h++] = 1;  /* mode: plaintext sealed here */
	p[h++] = 16; /* chunks of 17 bytes */
	entry(p, &h, SERVER_BACKUP_DB_NAME, "SQLite format 3");
	entry(p, &h, "keys/list.key", "-----BEGIN EC PRIVATE KEY-----");
	entry(p, &h, "keys/ca.crt", "");
	p[h++] = 'E';
	emit(p, h, ctx);
	/* the same as a whole sealed file */
	size_t len;
	uint8_t *file = seal(p + 2, h - 2, 40, &len);
	if (file) {
		uint8_t *whole = malloc(len + 1);
		if (whole) {
			whole[0] = 0;
			memcpy(whole + 1, file, len);
			emit(whole, len + 1, ctx);
			free(whole);
		}
		free(file);
	}
}
