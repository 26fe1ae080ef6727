/*
 * fuzz_cardlib_qr.c — the gate's QR decoder on hostile scans.
 *
 * Each input is tried twice: as the scanned text line itself, and as the binary payload
 * (wrapped in "CP1." + base64url here), so mutations reach the payload's structure and not
 * only the text. A verified code must be the fixture's (only its phone key signs), carry
 * its identifier, and be refused as a replay the second time; every refusal must be one of
 * the documented codes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardlib/error.h"
#include "cardlib/token.h"
#include "proto/sign.h"
#include "fuzz.h"

#define T_NOW  1767229215 /* 15 s into a step */
#define SECTOR 2

static struct {
	int ready;
	struct proto_key *issuer, *phone_key;
	struct proto_keyring *ring;
	uint8_t id[16];
	uint8_t cred[CARDLIB_TOKEN_CRED_MAX];
	size_t cred_len;
} fx;

static uint64_t rng_state = 7;

static int det_random(void *ctx, unsigned char *buf, size_t len)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++) {
		uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		buf[i] = (unsigned char)(z ^ (z >> 31));
	}
	return 0;
}

static void fail(const char *what, int rc)
{
	fprintf(stderr, "fuzz_cardlib_qr: %s (rc %d: %s)\n", what, rc, cardlib_strerror(rc));
	abort();
}

static void fixture(void)
{
	if (fx.ready)
		return;
	cardlib_token_set_random_for_testing(det_random, NULL);
	for (int i = 0; i < 16; i++)
		fx.id[i] = (uint8_t)(0xc3 ^ (i * 29));
	if (proto_key_generate(&fx.issuer) || proto_key_generate(&fx.phone_key) ||
	    !(fx.ring = proto_keyring_new()) || proto_keyring_add(fx.ring, fx.issuer))
		fail("fixture", -1);
	int n = cardlib_token_issue(fx.issuer, SECTOR, fx.id, fx.phone_key, T_NOW - 86400,
	                            T_NOW + 86400, fx.cred, sizeof(fx.cred));
	if (n < 0)
		fail("issue", n);
	fx.cred_len = (size_t)n;
	fx.ready = 1;
}

static int documented_refusal(int rc)
{
	switch (rc) {
	case CARDLIB_ERR_QR_FORMAT:
	case CARDLIB_ERR_QR_WINDOW:
	case CARDLIB_ERR_QR_REPLAY:
	case CARDLIB_ERR_CRED_FORMAT:
	case CARDLIB_ERR_CRED_SIGNATURE:
	case CARDLIB_ERR_CRED_EXPIRED:
	case CARDLIB_ERR_CRED_SECTOR:
	case CARDLIB_ERR_PROOF:
		return 1;
	default:
		return 0;
	}
}

static void check_line(const char *line, size_t len)
{
	struct cardlib_qr_replay_cache *cache = NULL;
	uint8_t id[16];
	struct cardlib_token_credential c;
	if (cardlib_qr_replay_cache_new(&cache, 4) != 0)
		fail("cache", -1);
	int rc = cardlib_qr_verify(line, len, fx.ring, SECTOR, T_NOW, cache, id, &c);
	if (rc == 0) {
		if (memcmp(id, fx.id, 16) != 0 || c.sector != SECTOR)
			fail("a verified code with a foreign identifier", rc);
		rc = cardlib_qr_verify(line, len, fx.ring, SECTOR, T_NOW, cache, id, NULL);
		if (rc != CARDLIB_ERR_QR_REPLAY)
			fail("a verified code was accepted twice", rc);
	} else if (!documented_refusal(rc)) {
		fail("an undocumented refusal", rc);
	}
	cardlib_qr_replay_cache_free(cache);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fixture();
	/* 1. the text as scanned (not NUL-terminated: the decoder must not need it) */
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	check_line(copy, size);
	free(copy);

	/* 2. the bytes as the payload */
	if (size > 400)
		return 0;
	char line[4 + 540];
	size_t o = 4;
	unsigned acc = 0, bits = 0;
	memcpy(line, "CP1.", 4);
	for (size_t i = 0; i < size; i++) {
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			line[o++] = b64[(acc >> bits) & 63];
		}
		acc &= (1u << bits) - 1;
	}
	if (bits)
		line[o++] = b64[(acc << (6 - bits)) & 63];
	check_line(line, o);
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	fixture();
	char line[CARDLIB_QR_LINE_MAX + 3];
	const int64_t times[] = {T_NOW, T_NOW - 30, T_NOW + 30, T_NOW + 3600};
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		int n = cardlib_qr_encode(fx.cred, fx.cred_len, fx.phone_key, times[i], line,
		                          sizeof(line));
		if (n < 0)
			fail("seed", n);
		emit((const uint8_t *)line, (size_t)n, ctx);
		if (i == 0) {
			memcpy(line + n, "\r\n", 2);
			emit((const uint8_t *)line, (size_t)n + 2, ctx);
		}
	}
	/* the binary payload of a good code, for the second reading */
	int n = cardlib_qr_encode(fx.cred, fx.cred_len, fx.phone_key, T_NOW, line, sizeof(line));
	uint8_t payload[300];
	size_t o = 0;
	unsigned acc = 0, bits = 0;
	for (int i = 4; i < n; i++) {
		acc = (acc << 6) | (unsigned)(strchr(b64, line[i]) - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			payload[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	emit(payload, o, ctx);
}
