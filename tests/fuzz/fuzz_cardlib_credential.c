/*
 * fuzz_cardlib_credential.c — phone-token credentials and the NFC exchange on hostile bytes.
 *
 * The first byte picks what the rest is:
 *   0  a credential: decode, and when it decodes it must re-encode to the same bytes;
 *      verification at the fixture's gate must accept only the fixture's own credential
 *   1  a phone's answer to the reader's challenge (after a good SELECT), through
 *      cardlib_phone_read on the loopback reader: success only for a real phone's answer
 *      to this very challenge, which a fuzzer cannot produce (the gate certificates and
 *      the phone's checks of a challenge have their own target: fuzz_cardlib_gate)
 *   2  an APDU to the phone: always an answer with a status word, within the buffer
 * Keys and seeds come from a deterministic random source, so runs are reproducible.
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
	struct cardlib_gate *gate;
	struct proto_keyring *ring;
	struct cardlib_phone *phone;
	uint8_t id[16];
	uint8_t cred[CARDLIB_TOKEN_CRED_MAX];
	size_t cred_len;
} fx;

static uint64_t rng_state = 42;

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
	fprintf(stderr, "fuzz_cardlib_credential: %s (rc %d: %s)\n", what, rc,
	        cardlib_strerror(rc));
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
	for (int i = 0; i < 16; i++)
		fx.id[i] = (uint8_t)(0x5a ^ (i * 13));
	if (proto_key_generate(&fx.issuer) || proto_key_generate(&fx.phone_key) ||
	    proto_key_generate(&fx.ca) || proto_key_generate(&fx.gate_key) ||
	    !(fx.ring = proto_keyring_new()) || proto_keyring_add(fx.ring, fx.issuer) ||
	    cardlib_phone_new(&fx.phone))
		fail("fixture", -1);
	int n = cardlib_token_issue(fx.issuer, SECTOR, fx.id, fx.phone_key, T_NOW - 86400,
	                            T_NOW + 86400, fx.cred, sizeof(fx.cred));
	if (n < 0)
		fail("issue", n);
	fx.cred_len = (size_t)n;
	n = cardlib_phone_add_sector(fx.phone, fx.cred, fx.cred_len, fx.phone_key);
	if (n != 0)
		fail("add sector", n);
	uint8_t cert[CARDLIB_GATE_CERT_MAX];
	static const uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN] = {'g', 'a', 't', 'e', 0, 0, 0, 1};
	n = cardlib_gate_cert_issue(fx.ca, SECTOR, gate_id, fx.gate_key, T_NOW - 86400,
	                            T_NOW + 86400, cert, sizeof(cert));
	if (n < 0 || (n = cardlib_gate_new(&fx.gate, cert, (size_t)n, fx.gate_key)) != 0 ||
	    (n = cardlib_phone_add_gate_ca(fx.phone, fx.ca)) != 0)
		fail("gate", n);
	cardlib_phone_set_clock(fx.phone, fixed_clock, NULL);
	fx.ready = 1;
}

static void fuzz_credential(const uint8_t *data, size_t size)
{
	struct cardlib_token_credential c;
	uint8_t again[CARDLIB_TOKEN_CRED_MAX];
	int rc = cardlib_token_credential_decode(&c, data, size);
	if (rc == 0) {
		int n = cardlib_token_credential_encode(&c, again, sizeof(again));
		if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0)
			fail("decoded credential does not re-encode to the same bytes", n);
	} else if (rc != CARDLIB_ERR_CRED_FORMAT) {
		fail("decode failed with an unexpected code", rc);
	}
	rc = cardlib_token_credential_verify(data, size, fx.ring, SECTOR, T_NOW, &c);
	/* only the issuer makes credentials: nothing but the fixture's own can verify */
	if (rc == 0 && (size != fx.cred_len || memcmp(data, fx.cred, size) != 0))
		fail("a forged credential verified", rc);
}

/* Loopback phone: a good SELECT answer, then the fuzzer's bytes as the challenge answer. */
struct answer {
	const uint8_t *data;
	size_t len;
	int calls;
};

static int ans_info(void *ctx, struct cardlib_target_info *info)
{
	(void)ctx;
	info->uid[0] = 0x08;
	info->uid_len = 4;
	info->sak = 0x20;
	return 1;
}

static int ans_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap)
{
	struct answer *a = ctx;
	(void)tx;
	(void)tx_len;
	if (a->calls++ == 0) { /* SELECT: the phone's nonce, then 90 00 */
		memset(rx, 0x4E, 16);
		rx[16] = 0x90;
		rx[17] = 0x00;
		return 18;
	}
	size_t n = a->len < rx_cap ? a->len : rx_cap;
	memcpy(rx, a->data, n);
	return (int)n;
}

static void fuzz_answer(const uint8_t *data, size_t size)
{
	struct answer a = {data, size, 0};
	struct cardlib_loopback_peer peer = {.info = ans_info, .exchange = ans_exchange, .ctx = &a};
	struct cardlib_reader *r = NULL;
	uint8_t id[16];
	if (cardlib_loopback_new(&r, &peer, T_NOW) != 0)
		fail("loopback", -1);
	int rc = cardlib_phone_read(r, fx.gate, fx.ring, id, NULL);
	cardlib_reader_free(r);
	if (rc == 0)
		fail("the reader accepted an answer not made for its challenge", rc);
	if (rc > 0)
		fail("positive return", rc);
}

static void fuzz_apdu(const uint8_t *data, size_t size)
{
	uint8_t out[263 + 16];
	memset(out + 263, 0xEE, 16);
	int n = cardlib_phone_handle_apdu(fx.phone, data, size, out, 263);
	if (n < 2 || n > 263)
		fail("phone answer length", n);
	for (int i = 263; i < 263 + 16; i++)
		if (out[i] != 0xEE)
			fail("phone wrote past its buffer", n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fixture();
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_credential(data + 1, size - 1);
		break;
	case 1:
		fuzz_answer(data + 1, size - 1);
		break;
	default:
		fuzz_apdu(data + 1, size - 1);
		/* the phone keeps its selection across inputs: let both states be explored */
		if (size > 1 && (data[1] & 0x10))
			cardlib_phone_deselect(fx.phone);
		break;
	}
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

/* A loopback peer that is the fixture's phone, keeping its answer to the challenge. */
struct recorder {
	uint8_t answer[300];
	size_t len;
};

static int rec_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap)
{
	struct recorder *rec = ctx;
	int n = cardlib_phone_handle_apdu(fx.phone, tx, tx_len, rx, rx_cap);
	if (n > 0 && tx_len > 1 && tx[1] == 0x88 && (size_t)n <= sizeof(rec->answer)) {
		memcpy(rec->answer, rx, (size_t)n);
		rec->len = (size_t)n;
	}
	return n;
}

static void emit_with(fuzz_emit_fn emit, void *ctx, uint8_t mode, const uint8_t *p, size_t n)
{
	uint8_t buf[512];
	buf[0] = mode;
	memcpy(buf + 1, p, n);
	emit(buf, n + 1, ctx);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	fixture();
	emit_with(emit, ctx, 0, fx.cred, fx.cred_len);

	uint8_t select[6 + CARDLIB_TOKEN_AID_LEN] = {0x00, 0xA4, 0x04, 0x00, CARDLIB_TOKEN_AID_LEN};
	memcpy(select + 5, cardlib_token_aid, CARDLIB_TOKEN_AID_LEN);
	uint8_t challenge[40] = {0x80, 0x88, 0x02, 0x00, 34, 0x00, SECTOR};
	for (int i = 7; i < 39; i++)
		challenge[i] = (uint8_t)(i * 11);
	emit_with(emit, ctx, 2, select, sizeof(select));
	emit_with(emit, ctx, 2, challenge, sizeof(challenge));

	/* a real phone answer, recorded from a real tap (to another challenge, so the reader
	 * must refuse it) */
	struct recorder rec = {0};
	struct cardlib_loopback_peer peer = {
	        .info = ans_info, .exchange = rec_exchange, .ctx = &rec};
	struct cardlib_reader *r = NULL;
	uint8_t id[16];
	if (cardlib_loopback_new(&r, &peer, T_NOW) != 0)
		fail("loopback", -1);
	int n = cardlib_phone_read(r, fx.gate, fx.ring, id, NULL);
	cardlib_reader_free(r);
	cardlib_phone_deselect(fx.phone);
	if (n != 0 || rec.len < 2)
		fail("seed answer", n);
	emit_with(emit, ctx, 1, rec.answer, rec.len);
	emit_with(emit, ctx, 1, rec.answer + rec.len - 2, 2);
	static const uint8_t no_sector[] = {0x6A, 0x88};
	emit_with(emit, ctx, 1, no_sector, sizeof(no_sector));
}
