/*
 * fuzz_cardlib_gate.c — gate certificates and the phone's checks of a gate's challenge on
 * hostile bytes (issue 17: a phone reveals nothing to a reader that is not a gate of its
 * deployment).
 *
 * The first byte picks what the rest is:
 *   0  a gate certificate: decode, and when it decodes it must re-encode to the same bytes;
 *      verification against the fixture's CA accepts only the fixture's own certificate
 *   1  the data of a challenge APDU (80 88 02 00 Lc DATA 00, Lc from the input's length)
 *      to a phone just selected: whatever the bytes, the phone answers a status word and
 *      nothing else (a valid challenge needs the gate's signature over the phone's fresh
 *      nonce, which a fuzzer cannot produce)
 *   2  a whole APDU to a phone just selected: a status word alone, within its buffer,
 *      unless it is a SELECT (a fresh nonce)
 * Keys come from a deterministic random source, so runs are reproducible; the phone's
 * nonces come from it too, and they differ at every selection all the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardlib/error.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "proto/sign.h"
#include "fuzz.h"

#define T_NOW  1767229200
#define SECTOR 4

static struct {
	int ready;
	struct proto_key *issuer, *phone_key, *ca, *gate_key;
	struct proto_keyring *cas;
	struct cardlib_phone *phone;
	uint8_t cert[CARDLIB_GATE_CERT_MAX];
	size_t cert_len;
} fx;

static uint64_t rng_state = 17;

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
	fprintf(stderr, "fuzz_cardlib_gate: %s (rc %d: %s)\n", what, rc, cardlib_strerror(rc));
	abort();
}

static int64_t fixed_clock(void *ctx)
{
	(void)ctx;
	return T_NOW;
}

static void fixture(void)
{
	if (fx.ready)
		return;
	cardlib_token_set_random_for_testing(det_random, NULL);
	static const uint8_t id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	static const uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN] = {'g', 'a', 't', 'e', 0, 0, 0, 2};
	uint8_t cred[CARDLIB_TOKEN_CRED_MAX];
	if (proto_key_generate(&fx.issuer) || proto_key_generate(&fx.phone_key) ||
	    proto_key_generate(&fx.ca) || proto_key_generate(&fx.gate_key) ||
	    !(fx.cas = proto_keyring_new()) || proto_keyring_add(fx.cas, fx.ca) ||
	    cardlib_phone_new(&fx.phone))
		fail("fixture", -1);
	int n = cardlib_token_issue(fx.issuer, SECTOR, id, fx.phone_key, T_NOW - 86400,
	                            T_NOW + 86400, cred, sizeof(cred));
	if (n < 0 || (n = cardlib_phone_add_sector(fx.phone, cred, (size_t)n, fx.phone_key)) != 0)
		fail("credential", n);
	n = cardlib_gate_cert_issue(fx.ca, SECTOR, gate_id, fx.gate_key, T_NOW - 86400,
	                            T_NOW + 86400, fx.cert, sizeof(fx.cert));
	if (n < 0)
		fail("gate certificate", n);
	fx.cert_len = (size_t)n;
	if ((n = cardlib_phone_add_gate_ca(fx.phone, fx.ca)) != 0)
		fail("gate CA", n);
	cardlib_phone_set_clock(fx.phone, fixed_clock, NULL);
	fx.ready = 1;
}

static void fuzz_cert(const uint8_t *data, size_t size)
{
	struct cardlib_gate_cert c;
	uint8_t again[CARDLIB_GATE_CERT_MAX];
	int rc = cardlib_gate_cert_decode(&c, data, size);
	if (rc == 0) {
		int n = cardlib_gate_cert_encode(&c, again, sizeof(again));
		if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
			fail("decoded gate certificate does not re-encode to the same bytes", n);
	} else if (rc != CARDLIB_ERR_GATE_CERT) {
		fail("decode failed with an unexpected code", rc);
	}
	rc = cardlib_gate_cert_verify(data, size, fx.cas, T_NOW, &c);
	if (rc == 0 && (size != fx.cert_len || memcmp(data, fx.cert, size) != 0))
		fail("a forged gate certificate verified", rc);
}

static void phone_select(void)
{
	uint8_t select[6 + CARDLIB_TOKEN_AID_LEN] = {0x00, 0xA4, 0x04, 0x00, CARDLIB_TOKEN_AID_LEN};
	memcpy(select + 5, cardlib_token_aid, CARDLIB_TOKEN_AID_LEN);
	uint8_t out[64];
	cardlib_phone_deselect(fx.phone);
	if (cardlib_phone_handle_apdu(fx.phone, select, sizeof(select), out, sizeof(out)) != 18)
		fail("SELECT answer", -1);
}

/* The phone's answer to apdu: a status word alone, never beyond its buffer. */
static void expect_status_only(const uint8_t *apdu, size_t len)
{
	uint8_t out[263 + 16];
	memset(out + 263, 0xEE, 16);
	int n = cardlib_phone_handle_apdu(fx.phone, apdu, len, out, 263);
	const int is_select = len > 1 && apdu[0] == 0x00 && apdu[1] == 0xA4;
	if (n < 2 || n > 263 || (n != 2 && !(is_select && n == 18)))
		fail("the phone revealed data to a reader that did not prove itself", n);
	for (int i = 263; i < 263 + 16; i++)
		if (out[i] != 0xEE)
			fail("phone wrote past its buffer", n);
}

static void fuzz_challenge(const uint8_t *data, size_t size)
{
	uint8_t apdu[5 + 255 + 1] = {0x80, 0x88, 0x02, 0x00};
	if (size > 255)
		size = 255;
	apdu[4] = (uint8_t)size;
	memcpy(apdu + 5, data, size);
	apdu[5 + size] = 0x00;
	phone_select();
	expect_status_only(apdu, 6 + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fixture();
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_cert(data + 1, size - 1);
		break;
	case 1:
		fuzz_challenge(data + 1, size - 1);
		break;
	default:
		phone_select();
		expect_status_only(data + 1, size - 1);
		break;
	}
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

static void emit_with(fuzz_emit_fn emit, void *ctx, uint8_t mode, const uint8_t *p, size_t n)
{
	uint8_t buf[512];
	buf[0] = mode;
	memcpy(buf + 1, p, n);
	emit(buf, n + 1, ctx);
}

struct recorder {
	uint8_t challenge[300];
	size_t len;
};

static int rec_info(void *ctx, struct cardlib_target_info *info)
{
	(void)ctx;
	info->uid[0] = 0x08;
	info->uid_len = 4;
	info->sak = 0x20;
	return 1;
}

static int rec_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap)
{
	struct recorder *rec = ctx;
	if (tx_len > 1 && tx[1] == 0x88 && tx_len <= sizeof(rec->challenge)) {
		memcpy(rec->challenge, tx, tx_len);
		rec->len = tx_len;
	}
	return cardlib_phone_handle_apdu(fx.phone, tx, tx_len, rx, rx_cap);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	fixture();
	emit_with(emit, ctx, 0, fx.cert, fx.cert_len);
	/* a real gate's challenge, recorded from a real tap: replayed to a new selection it
	 * carries the wrong nonce */
	struct cardlib_gate *gate = NULL;
	int n = cardlib_gate_new(&gate, fx.cert, fx.cert_len, fx.gate_key);
	struct proto_keyring *issuers = proto_keyring_new();
	if (n != 0 || !issuers || proto_keyring_add(issuers, fx.issuer) != 0)
		fail("seed gate", n);
	struct recorder rec = {0};
	struct cardlib_loopback_peer peer = {
	        .info = rec_info, .exchange = rec_exchange, .ctx = &rec};
	struct cardlib_reader *r = NULL;
	uint8_t id[16];
	if (cardlib_loopback_new(&r, &peer, T_NOW) != 0)
		fail("loopback", -1);
	n = cardlib_phone_read(r, gate, issuers, id, NULL);
	cardlib_reader_free(r);
	cardlib_gate_free(gate);
	proto_keyring_free(issuers);
	cardlib_phone_deselect(fx.phone);
	if (n != 0 || rec.len < 6)
		fail("seed tap", n);
	emit_with(emit, ctx, 1, rec.challenge + 5, rec.challenge[4]);
	emit_with(emit, ctx, 2, rec.challenge, rec.len);
}
