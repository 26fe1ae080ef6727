/*
 * Phone tokens (DESIGN.md s.3 "Phone tokens"): per-sector ECDSA P-256 credentials, the
 * NFC challenge-response on both sides, the rotating QR line and its replay cache.
 * The byte formats are in docs/phone-tokens.md; token_internal.h holds the constants.
 *
 * The keys, keyrings and the canonical-DER check of signatures are proto's
 * (proto/sign.h): one home for P-256 keys, whether they sign lists or credentials.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "cardlib/error.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "proto/error.h"
#include "proto/sign.h"
#include "token_internal.h"

const uint8_t cardlib_token_aid[CARDLIB_TOKEN_AID_LEN] = {0xF0, 'C', 'I', 'T', 'Y',
                                                          'P',  'A', 'S', 'S'};

/* --- random ----------------------------------------------------------------------------- */

static mbedtls_entropy_context rng_entropy;
static mbedtls_ctr_drbg_context rng_drbg;
static int rng_seeded;
static int (*rng_test_fn)(void *, unsigned char *, size_t);
static void *rng_test_ctx;

void cardlib_token_set_random_for_testing(int (*fn)(void *ctx, unsigned char *buf, size_t len),
                                          void *ctx)
{
	rng_test_fn = fn;
	rng_test_ctx = ctx;
	proto_sign_set_random_for_testing(fn, ctx); /* the keys' generation and signatures */
}

/* An mbedTLS f_rng: the test hook when set, else the module's ctr_drbg. */
int token_random(void *unused, unsigned char *buf, size_t len)
{
	(void)unused;
	if (rng_test_fn)
		return rng_test_fn(rng_test_ctx, buf, len);
	if (!rng_seeded) {
		static const unsigned char pers[] = "cardlib-token";
		mbedtls_entropy_init(&rng_entropy);
		mbedtls_ctr_drbg_init(&rng_drbg);
		if (mbedtls_ctr_drbg_seed(&rng_drbg, mbedtls_entropy_func, &rng_entropy, pers,
		                          sizeof(pers) - 1) != 0) {
			mbedtls_ctr_drbg_free(&rng_drbg);
			mbedtls_entropy_free(&rng_entropy);
			return -1;
		}
		rng_seeded = 1;
	}
	return mbedtls_ctr_drbg_random(&rng_drbg, buf, len);
}

/* --- small helpers ---------------------------------------------------------------------- */

void token_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

uint16_t token_get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

void token_put_be64(uint8_t *p, int64_t s)
{
	uint64_t v = (uint64_t)s;
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int64_t token_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return (int64_t)v; /* two's complement: every platform we build for */
}

void token_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	/* cannot fail for SHA-256 in 2.28 (no hardware back end) */
	(void)mbedtls_sha256_ret(data, len, out, 0);
}

/* SHA-256 over domain ‖ parts, the message every signature of this module covers. */
void token_domain_hash(const char *domain, const struct token_part *parts, size_t n_parts,
                       uint8_t out[32])
{
	mbedtls_sha256_context c;
	mbedtls_sha256_init(&c);
	(void)mbedtls_sha256_starts_ret(&c, 0);
	(void)mbedtls_sha256_update_ret(&c, (const uint8_t *)domain, strlen(domain));
	for (size_t i = 0; i < n_parts; i++)
		(void)mbedtls_sha256_update_ret(&c, parts[i].p, parts[i].n);
	(void)mbedtls_sha256_finish_ret(&c, out);
	mbedtls_sha256_free(&c);
}

/* --- keys: proto's (proto/sign.h) -------------------------------------------------------- */

/* A proto error from a key operation, in cardlib's space. */
int token_from_proto(int rc)
{
	switch (rc) {
	case PROTO_OK:
		return CARDLIB_OK;
	case PROTO_ERR_NOMEM:
		return CARDLIB_ERR_NOMEM;
	case PROTO_ERR_CRYPTO:
		return CARDLIB_ERR_CRYPTO;
	default:
		return CARDLIB_ERR_ARG;
	}
}

int token_key_sign_hash(const struct proto_key *key, const uint8_t hash[32],
                        uint8_t sig[CARDLIB_TOKEN_SIG_MAX], size_t *sig_len)
{
	if (!proto_key_is_private(key))
		return CARDLIB_ERR_ARG;
	return proto_sign_hash(key, hash, sig, sig_len) == PROTO_OK ? CARDLIB_OK
	                                                            : CARDLIB_ERR_CRYPTO;
}

/* 1 when sig is a canonical, valid signature of hash by key. */
int token_key_verify_hash(const struct proto_key *key, const uint8_t hash[32], const uint8_t *sig,
                          size_t sig_len)
{
	return proto_verify_hash(key, hash, sig, sig_len) == PROTO_OK;
}

/* --- credentials ------------------------------------------------------------------------ */

/* The signed part (everything before sig_len) into out; its length. */
static size_t cred_write_signed(const struct cardlib_token_credential *c, uint8_t *out)
{
	const size_t L = c->phone_key_len;
	out[CRED_OFF_VERSION] = c->version;
	out[CRED_OFF_KEYLEN] = (uint8_t)L;
	token_put_be16(out + CRED_OFF_SECTOR, c->sector);
	memcpy(out + CRED_OFF_ID, c->identifier, CARDLIB_TOKEN_ID_LEN);
	memcpy(out + CRED_OFF_KEY, c->phone_key, L);
	token_put_be64(out + CRED_OFF_KEY + L, c->valid_from);
	token_put_be64(out + CRED_OFF_KEY + L + 8, c->valid_until);
	memcpy(out + CRED_OFF_KEY + L + 16, c->issuer_key_id, CARDLIB_TOKEN_KEY_ID_LEN);
	return CRED_SIGNED_LEN(L);
}

static int cred_fields_valid(const struct cardlib_token_credential *c)
{
	const size_t L = c->phone_key_len;
	return c->version == CARDLIB_TOKEN_VERSION &&
	       ((L == 33 && (c->phone_key[0] == 0x02 || c->phone_key[0] == 0x03)) ||
	        (L == 65 && c->phone_key[0] == 0x04)) &&
	       c->valid_from >= 0 && c->valid_until > c->valid_from;
}

int cardlib_token_credential_encode(const struct cardlib_token_credential *c, uint8_t *out,
                                    size_t cap)
{
	if (!c || !out || !cred_fields_valid(c) || c->signature_len > CARDLIB_TOKEN_SIG_MAX)
		return CARDLIB_ERR_ARG;
	const size_t total = CRED_SIGNED_LEN(c->phone_key_len) + 1 + c->signature_len;
	if (cap < total)
		return CARDLIB_ERR_ARG;
	size_t n = cred_write_signed(c, out);
	out[n++] = (uint8_t)c->signature_len;
	memcpy(out + n, c->signature, c->signature_len);
	return (int)total;
}

int cardlib_token_credential_decode(struct cardlib_token_credential *c, const uint8_t *buf,
                                    size_t len)
{
	if (!c || (!buf && len))
		return CARDLIB_ERR_ARG;
	memset(c, 0, sizeof(*c));
	if (len < CRED_OFF_KEY || len > CARDLIB_TOKEN_CRED_MAX)
		return CARDLIB_ERR_CRED_FORMAT;
	const size_t L = buf[CRED_OFF_KEYLEN];
	if (L != 33 && L != 65)
		return CARDLIB_ERR_CRED_FORMAT;
	const size_t signed_len = CRED_SIGNED_LEN(L);
	if (len < signed_len + 1)
		return CARDLIB_ERR_CRED_FORMAT;
	const size_t S = buf[signed_len];
	if (len != signed_len + 1 + S || !proto_sig_is_canonical(buf + signed_len + 1, S))
		return CARDLIB_ERR_CRED_FORMAT;
	c->version = buf[CRED_OFF_VERSION];
	c->sector = token_get_be16(buf + CRED_OFF_SECTOR);
	memcpy(c->identifier, buf + CRED_OFF_ID, CARDLIB_TOKEN_ID_LEN);
	memcpy(c->phone_key, buf + CRED_OFF_KEY, L);
	c->phone_key_len = L;
	c->valid_from = token_get_be64(buf + CRED_OFF_KEY + L);
	c->valid_until = token_get_be64(buf + CRED_OFF_KEY + L + 8);
	memcpy(c->issuer_key_id, buf + CRED_OFF_KEY + L + 16, CARDLIB_TOKEN_KEY_ID_LEN);
	memcpy(c->signature, buf + signed_len + 1, S);
	c->signature_len = S;
	if (!cred_fields_valid(c)) {
		memset(c, 0, sizeof(*c));
		return CARDLIB_ERR_CRED_FORMAT;
	}
	return CARDLIB_OK;
}

static void cred_signed_hash(const uint8_t *signed_part, size_t n, uint8_t h[32])
{
	const struct token_part p = {signed_part, n};
	token_domain_hash(TOKEN_DOMAIN_CRED, &p, 1, h);
}

int cardlib_token_issue(const struct proto_key *issuer, uint16_t sector,
                        const uint8_t identifier[CARDLIB_TOKEN_ID_LEN],
                        const struct proto_key *phone_key, int64_t valid_from, int64_t valid_until,
                        uint8_t *out, size_t cap)
{
	if (!issuer || !identifier || !phone_key || !out || !proto_key_is_private(issuer))
		return CARDLIB_ERR_ARG;
	struct cardlib_token_credential c = {.version = CARDLIB_TOKEN_VERSION,
	                                     .sector = sector,
	                                     .phone_key_len = 33,
	                                     .valid_from = valid_from,
	                                     .valid_until = valid_until};
	memcpy(c.identifier, identifier, CARDLIB_TOKEN_ID_LEN);
	int rc = token_from_proto(proto_key_point(phone_key, c.phone_key));
	if (rc == 0)
		proto_key_id(issuer, c.issuer_key_id);
	if (rc != 0)
		return rc;
	if (!cred_fields_valid(&c))
		return CARDLIB_ERR_ARG;
	uint8_t signed_part[CARDLIB_TOKEN_CRED_MAX], h[32];
	const size_t n = cred_write_signed(&c, signed_part);
	cred_signed_hash(signed_part, n, h);
	rc = token_key_sign_hash(issuer, h, c.signature, &c.signature_len);
	if (rc != 0)
		return rc;
	return cardlib_token_credential_encode(&c, out, cap);
}

int cardlib_token_credential_verify(const uint8_t *buf, size_t len,
                                    const struct proto_keyring *issuers, uint16_t sector,
                                    int64_t now, struct cardlib_token_credential *out)
{
	if (!issuers)
		return CARDLIB_ERR_ARG;
	struct cardlib_token_credential c;
	int rc = cardlib_token_credential_decode(&c, buf, len);
	if (rc != 0)
		return rc;
	const struct proto_key *issuer = proto_keyring_find(issuers, c.issuer_key_id);
	uint8_t h[32];
	cred_signed_hash(buf, CRED_SIGNED_LEN(c.phone_key_len), h);
	if (!issuer || !token_key_verify_hash(issuer, h, c.signature, c.signature_len))
		return CARDLIB_ERR_CRED_SIGNATURE;
	if (c.sector != sector)
		return CARDLIB_ERR_CRED_SECTOR;
	if (now < c.valid_from || now >= c.valid_until)
		return CARDLIB_ERR_CRED_EXPIRED;
	if (out)
		*out = c;
	return CARDLIB_OK;
}

/* The phone key a verified credential names; CRED_FORMAT if the point is not on P-256. */
static int cred_phone_key(const struct cardlib_token_credential *c, struct proto_key **out)
{
	int rc = proto_key_from_point(out, c->phone_key, c->phone_key_len);
	return rc == PROTO_ERR_KEY || rc == PROTO_ERR_ARG ? CARDLIB_ERR_CRED_FORMAT
	                                                  : token_from_proto(rc);
}

/* --- NFC proof -------------------------------------------------------------------------- */

/* What a challenge says once the phone has checked it, or the reader has built it. */
struct nfc_challenge {
	uint8_t nonce_p[APDU_NONCE_LEN]; /* the phone's, from its SELECT answer */
	uint8_t nonce_r[APDU_NONCE_LEN]; /* the reader's */
	int64_t time;                    /* the reader's wall clock */
	uint16_t sector;                 /* the gate certificate's */
	uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN];
};

static void nfc_proof_hash(const struct nfc_challenge *ch, const uint8_t cred_hash[32],
                           uint8_t h[32])
{
	/* nonce_p ‖ nonce_r ‖ gate id ‖ time ‖ sector ‖ SHA-256(credential) */
	uint8_t t[8], sec[2];
	token_put_be64(t, ch->time);
	token_put_be16(sec, ch->sector);
	const struct token_part parts[] = {
	        {ch->nonce_p, APDU_NONCE_LEN},
	        {ch->nonce_r, APDU_NONCE_LEN},
	        {ch->gate_id, CARDLIB_TOKEN_GATE_ID_LEN},
	        {t, 8},
	        {sec, 2},
	        {cred_hash, 32},
	};
	token_domain_hash(TOKEN_DOMAIN_NFC, parts, sizeof(parts) / sizeof(parts[0]), h);
}

/* --- phone side ------------------------------------------------------------------------- */

struct phone_sector {
	uint16_t sector;
	uint8_t cred[CARDLIB_TOKEN_CRED_MAX];
	size_t cred_len;
	uint8_t cred_hash[32];
	struct proto_key *key;
};

struct cardlib_phone {
	struct phone_sector *s;
	size_t n;
	int selected;
	/* The nonce of the current selection, good for one challenge: a gate's signature over
	 * it cannot be replayed, even within the selection. */
	int nonce_live;
	uint8_t nonce[APDU_NONCE_LEN];
	struct proto_keyring *cas; /* the device CA(s) received at enrolment */
	int64_t (*now)(void *);
	void *now_ctx;
};

int cardlib_phone_new(struct cardlib_phone **out)
{
	if (!out)
		return CARDLIB_ERR_ARG;
	*out = calloc(1, sizeof(**out));
	return *out ? CARDLIB_OK : CARDLIB_ERR_NOMEM;
}

void cardlib_phone_free(struct cardlib_phone *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		proto_key_free(p->s[i].key);
	free(p->s);
	proto_keyring_free(p->cas);
	mbedtls_platform_zeroize(p, sizeof(*p));
	free(p);
}

void cardlib_phone_deselect(struct cardlib_phone *p)
{
	if (!p)
		return;
	p->selected = 0;
	p->nonce_live = 0;
}

int cardlib_phone_add_gate_ca(struct cardlib_phone *p, const struct proto_key *ca)
{
	if (!p || !ca)
		return CARDLIB_ERR_ARG;
	if (!p->cas && !(p->cas = proto_keyring_new()))
		return CARDLIB_ERR_NOMEM;
	return token_from_proto(proto_keyring_add(p->cas, ca));
}

void cardlib_phone_set_clock(struct cardlib_phone *p, int64_t (*now)(void *ctx), void *ctx)
{
	if (!p)
		return;
	p->now = now;
	p->now_ctx = ctx;
}

static int64_t phone_now(const struct cardlib_phone *p)
{
	return p->now ? p->now(p->now_ctx) : (int64_t)time(NULL);
}

int cardlib_phone_add_sector(struct cardlib_phone *p, const uint8_t *cred, size_t cred_len,
                             const struct proto_key *sector_key)
{
	if (!p || !cred || !sector_key || !proto_key_is_private(sector_key))
		return CARDLIB_ERR_ARG;
	struct cardlib_token_credential c;
	int rc = cardlib_token_credential_decode(&c, cred, cred_len);
	if (rc != 0)
		return rc;
	/* the credential must name this very key */
	struct proto_key *named = NULL;
	rc = cred_phone_key(&c, &named);
	if (rc != 0)
		return rc;
	int same = proto_key_same_public(named, sector_key);
	proto_key_free(named);
	if (!same)
		return CARDLIB_ERR_CRED_FORMAT;

	struct phone_sector *slot = NULL;
	for (size_t i = 0; i < p->n; i++)
		if (p->s[i].sector == c.sector)
			slot = &p->s[i];
	struct proto_key *copy = NULL;
	rc = token_from_proto(proto_key_copy(&copy, sector_key)); /* the phone owns its keys */
	if (rc != 0)
		return rc;
	if (!slot) {
		struct phone_sector *grown = realloc(p->s, (p->n + 1) * sizeof(*grown));
		if (!grown) {
			proto_key_free(copy);
			return CARDLIB_ERR_NOMEM;
		}
		p->s = grown;
		slot = &p->s[p->n++];
		memset(slot, 0, sizeof(*slot));
	}
	proto_key_free(slot->key);
	slot->key = copy;
	slot->sector = c.sector;
	memcpy(slot->cred, cred, cred_len);
	slot->cred_len = cred_len;
	token_sha256(cred, cred_len, slot->cred_hash);
	return CARDLIB_OK;
}

static int sw(uint8_t *out, uint8_t sw1, uint8_t sw2)
{
	out[0] = sw1;
	out[1] = sw2;
	return 2;
}

/* ISO 7816-4 short APDU: header, Lc, data, optional Le. The data, or NULL if malformed. */
static const uint8_t *apdu_data(const uint8_t *apdu, size_t len, size_t *lc)
{
	if (len < 6)
		return NULL;
	*lc = apdu[4];
	if (*lc == 0 || (len != 5 + *lc && len != 6 + *lc))
		return NULL;
	return apdu + 5;
}

/* SELECT of our AID: a fresh nonce, the only thing a reader gets before proving itself. */
static int phone_select(struct cardlib_phone *p, const uint8_t *apdu, size_t len, uint8_t *out,
                        size_t cap)
{
	size_t lc;
	const uint8_t *aid = apdu_data(apdu, len, &lc);
	p->selected = 0;
	p->nonce_live = 0;
	if (!aid)
		return sw(out, 0x67, 0x00);
	if (apdu[2] != 0x04 || apdu[3] != 0x00)
		return sw(out, 0x6A, 0x86);
	if (lc != CARDLIB_TOKEN_AID_LEN || memcmp(aid, cardlib_token_aid, lc) != 0)
		return sw(out, 0x6A, 0x82);
	if (cap < APDU_NONCE_LEN + 2)
		return sw(out, 0x6C, 0x00);
	if (token_random(NULL, p->nonce, APDU_NONCE_LEN) != 0)
		return sw(out, 0x6F, 0x00);
	p->selected = 1;
	p->nonce_live = 1;
	memcpy(out, p->nonce, APDU_NONCE_LEN);
	return APDU_NONCE_LEN + sw(out + APDU_NONCE_LEN, 0x90, 0x00);
}

/*
 * The gate's challenge, checked before anything of the phone is revealed: the gate
 * certificate (CA signature, validity), the gate's signature over this selection's nonce,
 * the time. 0 with *ch filled, or -1: the reader is not a gate of this deployment.
 */
static int phone_check_gate(struct cardlib_phone *p, const uint8_t *d, size_t lc,
                            struct nfc_challenge *ch)
{
	if (lc < APDU_CHALLENGE_FIXED || !p->cas)
		return -1;
	memcpy(ch->nonce_p, p->nonce, APDU_NONCE_LEN);
	memcpy(ch->nonce_r, d, APDU_NONCE_LEN);
	ch->time = token_get_be64(d + APDU_NONCE_LEN);
	const size_t cert_len = d[APDU_NONCE_LEN + 8];
	const uint8_t *cert = d + APDU_NONCE_LEN + 9;
	if (lc < APDU_CHALLENGE_FIXED + cert_len)
		return -1;
	const size_t sig_len = cert[cert_len];
	const uint8_t *sig = cert + cert_len + 1;
	if (lc != APDU_CHALLENGE_FIXED + cert_len + sig_len)
		return -1;
	const int64_t now = phone_now(p);
	struct cardlib_gate_cert gc;
	if (cardlib_gate_cert_verify(cert, cert_len, p->cas, now, &gc) != 0)
		return -1;
	/* the clocks of a phone and a gate both follow NTP: a time far off is a replay of a
	 * challenge, or a gate whose credential checks would be wrong anyway */
	if (ch->time < now - CARDLIB_GATE_TIME_SKEW_S || ch->time > now + CARDLIB_GATE_TIME_SKEW_S)
		return -1;
	ch->sector = gc.sector;
	memcpy(ch->gate_id, gc.gate_id, CARDLIB_TOKEN_GATE_ID_LEN);
	struct proto_key *gate_key = NULL;
	if (proto_key_from_point(&gate_key, gc.gate_key, CARDLIB_GATE_POINT_LEN) != PROTO_OK)
		return -1;
	uint8_t h[32];
	token_gate_challenge_hash(ch->nonce_p, ch->nonce_r, ch->time, cert, cert_len, ch->sector,
	                          ch->gate_id, h);
	const int ok = token_key_verify_hash(gate_key, h, sig, sig_len);
	proto_key_free(gate_key);
	return ok ? 0 : -1;
}

static int phone_challenge(struct cardlib_phone *p, const uint8_t *apdu, size_t len, uint8_t *out,
                           size_t cap)
{
	if (!p->selected || !p->nonce_live)
		return sw(out, 0x69, 0x85);
	if (apdu[2] != APDU_CHALLENGE_P1 || apdu[3] != 0x00)
		return sw(out, 0x6B, 0x00);
	size_t lc;
	const uint8_t *d = apdu_data(apdu, len, &lc);
	if (!d)
		return sw(out, 0x67, 0x00);
	/* one challenge per nonce, whatever its fate: a reader cannot try again on it */
	p->nonce_live = 0;
	struct nfc_challenge ch;
	if (phone_check_gate(p, d, lc, &ch) != 0)
		return sw(out, 0x69, 0x82); /* one answer for every failure: nothing to learn */
	const struct phone_sector *s = NULL;
	for (size_t i = 0; i < p->n; i++)
		if (p->s[i].sector == ch.sector)
			s = &p->s[i];
	if (!s)
		return sw(out, 0x6A, 0x88);
	if (cap < 1 + s->cred_len + 1 + CARDLIB_TOKEN_SIG_MAX + 2)
		return sw(out, 0x6C, 0x00);

	uint8_t h[32], sig[CARDLIB_TOKEN_SIG_MAX];
	size_t sig_len = 0;
	nfc_proof_hash(&ch, s->cred_hash, h);
	int rc = token_key_sign_hash(s->key, h, sig, &sig_len);
	if (rc != 0)
		return sw(out, 0x6F, 0x00);
	size_t n = 0;
	out[n++] = (uint8_t)s->cred_len;
	memcpy(out + n, s->cred, s->cred_len);
	n += s->cred_len;
	out[n++] = (uint8_t)sig_len;
	memcpy(out + n, sig, sig_len);
	n += sig_len;
	return (int)n + sw(out + n, 0x90, 0x00);
}

int cardlib_phone_handle_apdu(struct cardlib_phone *p, const uint8_t *apdu, size_t len,
                              uint8_t *out, size_t cap)
{
	if (!p || (!apdu && len) || !out || cap < 2)
		return CARDLIB_ERR_ARG;
	if (len < 4)
		return sw(out, 0x67, 0x00);
	if (apdu[0] == 0x00 && apdu[1] == APDU_INS_SELECT)
		return phone_select(p, apdu, len, out, cap);
	if (apdu[0] == APDU_CLA_PROP && apdu[1] == APDU_INS_CHALLENGE)
		return phone_challenge(p, apdu, len, out, cap);
	if (apdu[0] != 0x00 && apdu[0] != APDU_CLA_PROP)
		return sw(out, 0x6E, 0x00);
	return sw(out, 0x6D, 0x00);
}

/* --- reader side ------------------------------------------------------------------------ */

#define PHONE_TIMEOUT_MS 1000

/* The challenge APDU into cmd: its length. */
static int reader_challenge(const struct cardlib_gate *gate, struct nfc_challenge *ch, uint8_t *cmd,
                            size_t cap)
{
	size_t cert_len;
	const uint8_t *cert = token_gate_cert_bytes(gate, &cert_len);
	uint8_t h[32], sig[CARDLIB_TOKEN_SIG_MAX];
	size_t sig_len = 0;
	token_gate_challenge_hash(ch->nonce_p, ch->nonce_r, ch->time, cert, cert_len, ch->sector,
	                          ch->gate_id, h);
	int rc = token_gate_sign(gate, h, sig, &sig_len);
	if (rc != 0)
		return rc;
	const size_t lc = APDU_CHALLENGE_FIXED + cert_len + sig_len;
	if (lc > 255 || cap < 5 + lc + 1)
		return CARDLIB_ERR_ARG;
	size_t n = 0;
	cmd[n++] = APDU_CLA_PROP;
	cmd[n++] = APDU_INS_CHALLENGE;
	cmd[n++] = APDU_CHALLENGE_P1;
	cmd[n++] = 0x00;
	cmd[n++] = (uint8_t)lc;
	memcpy(cmd + n, ch->nonce_r, APDU_NONCE_LEN);
	n += APDU_NONCE_LEN;
	token_put_be64(cmd + n, ch->time);
	n += 8;
	cmd[n++] = (uint8_t)cert_len;
	memcpy(cmd + n, cert, cert_len);
	n += cert_len;
	cmd[n++] = (uint8_t)sig_len;
	memcpy(cmd + n, sig, sig_len);
	n += sig_len;
	cmd[n++] = 0x00; /* Le */
	return (int)n;
}

int cardlib_phone_read(struct cardlib_reader *reader, const struct cardlib_gate *gate,
                       const struct proto_keyring *issuers,
                       uint8_t identifier[CARDLIB_TOKEN_ID_LEN],
                       struct cardlib_token_credential *cred_out)
{
	if (!reader || !gate || !issuers || !identifier)
		return CARDLIB_ERR_ARG;
	/* room for one byte more than the phone may send, to tell "too long" apart */
	uint8_t rx[APDU_ANSWER_MAX + 8];
	uint8_t cmd[5 + APDU_CHALLENGE_MAX + 1];
	struct nfc_challenge ch;
	const uint16_t sector = cardlib_gate_sector(gate);

	cmd[0] = 0x00;
	cmd[1] = APDU_INS_SELECT;
	cmd[2] = 0x04;
	cmd[3] = 0x00;
	cmd[4] = CARDLIB_TOKEN_AID_LEN;
	memcpy(cmd + 5, cardlib_token_aid, CARDLIB_TOKEN_AID_LEN);
	cmd[5 + CARDLIB_TOKEN_AID_LEN] = 0x00;
	int n = cardlib_reader_transceive(reader, cmd, 6 + CARDLIB_TOKEN_AID_LEN, rx, sizeof(rx),
	                                  PHONE_TIMEOUT_MS);
	if (n < 0)
		return n;
	if (n != APDU_NONCE_LEN + 2 || rx[APDU_NONCE_LEN] != 0x90 || rx[APDU_NONCE_LEN + 1] != 0x00)
		return CARDLIB_ERR_NOT_CITYPASS;
	memcpy(ch.nonce_p, rx, APDU_NONCE_LEN);

	ch.time = cardlib_reader_wall_time(reader);
	ch.sector = sector;
	memcpy(ch.gate_id, cardlib_gate_gate_id(gate), CARDLIB_TOKEN_GATE_ID_LEN);
	if (token_random(NULL, ch.nonce_r, APDU_NONCE_LEN) != 0)
		return CARDLIB_ERR_CRYPTO;
	int len = reader_challenge(gate, &ch, cmd, sizeof(cmd));
	if (len < 0)
		return len;
	n = cardlib_reader_transceive(reader, cmd, (size_t)len, rx, sizeof(rx), PHONE_TIMEOUT_MS);
	if (n < 0)
		return n;
	if (n < 2)
		return CARDLIB_ERR_TRUNCATED;
	if ((size_t)n > APDU_ANSWER_MAX)
		return CARDLIB_ERR_OVERSIZED;
	const uint8_t sw1 = rx[n - 2], sw2 = rx[n - 1];
	if (n == 2 && sw1 == 0x69 && sw2 == 0x82)
		return CARDLIB_ERR_GATE_REFUSED; /* our certificate or signature was not accepted */
	if (sw1 == 0x6A && sw2 == 0x88)
		return CARDLIB_ERR_CRED_SECTOR; /* the phone holds nothing for this sector */
	if (sw1 != 0x90 || sw2 != 0x00)
		return CARDLIB_ERR_CARD_STATUS;

	/* body: cred_len(1) cred proof_len(1) proof */
	const size_t body = (size_t)n - 2;
	if (body < 1)
		return CARDLIB_ERR_TRUNCATED;
	const size_t cred_len = rx[0];
	if (body < 1 + cred_len + 1)
		return CARDLIB_ERR_TRUNCATED;
	const uint8_t *cred = rx + 1;
	const size_t proof_len = rx[1 + cred_len];
	const uint8_t *proof = rx + 2 + cred_len;
	if (body < 2 + cred_len + proof_len)
		return CARDLIB_ERR_TRUNCATED;
	if (body > 2 + cred_len + proof_len)
		return CARDLIB_ERR_OVERSIZED;

	struct cardlib_token_credential c;
	int rc = cardlib_token_credential_verify(cred, cred_len, issuers, sector, ch.time, &c);
	if (rc != 0)
		return rc;
	struct proto_key *phone_key = NULL;
	rc = cred_phone_key(&c, &phone_key);
	if (rc != 0)
		return rc;
	uint8_t cred_hash[32], h[32];
	token_sha256(cred, cred_len, cred_hash);
	nfc_proof_hash(&ch, cred_hash, h);
	const int ok = token_key_verify_hash(phone_key, h, proof, proof_len);
	proto_key_free(phone_key);
	if (!ok)
		return CARDLIB_ERR_PROOF;
	memcpy(identifier, c.identifier, CARDLIB_TOKEN_ID_LEN);
	if (cred_out)
		*cred_out = c;
	return CARDLIB_OK;
}

/* --- QR --------------------------------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding (RFC 4648 s.5); the text length. */
static size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		const uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		out[o++] = b64url[in[i] >> 2];
		out[o++] = b64url[(in[i] & 3) << 4];
	} else if (n - i == 2) {
		const uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
		out[o++] = b64url[v >> 10];
		out[o++] = b64url[(v >> 4) & 63];
		out[o++] = b64url[(v & 15) << 2];
	}
	return o;
}

static int b64url_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/*
 * Strict decoding: alphabet only, no padding, a length that base64 can produce, and zero
 * spare bits, so each payload has exactly one text. The byte count, or -1.
 */
static long b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	if (n % 4 == 1 || (n / 4) * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < n; i++) {
		const int v = b64url_value(in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) /* non-zero spare bits */
		return -1;
	return (long)o;
}

static void qr_proof_hash(uint32_t step, uint16_t sector, const uint8_t cred_hash[32],
                          uint8_t h[32])
{
	uint8_t st[4] = {(uint8_t)(step >> 24), (uint8_t)(step >> 16), (uint8_t)(step >> 8),
	                 (uint8_t)step};
	uint8_t sec[2];
	token_put_be16(sec, sector);
	const struct token_part parts[] = {{st, 4}, {sec, 2}, {cred_hash, 32}};
	token_domain_hash(TOKEN_DOMAIN_QR, parts, 3, h);
}

int cardlib_qr_encode(const uint8_t *cred, size_t cred_len, const struct proto_key *key,
                      int64_t now, char *line, size_t cap)
{
	if (!cred || !key || !line || now < 0 || now / CARDLIB_QR_STEP_S > UINT32_MAX)
		return CARDLIB_ERR_ARG;
	struct cardlib_token_credential c;
	int rc = cardlib_token_credential_decode(&c, cred, cred_len);
	if (rc != 0)
		return rc;
	const uint32_t step = (uint32_t)(now / CARDLIB_QR_STEP_S);
	uint8_t payload[QR_PAYLOAD_MAX], cred_hash[32], h[32], sig[CARDLIB_TOKEN_SIG_MAX];
	size_t sig_len = 0;
	token_sha256(cred, cred_len, cred_hash);
	qr_proof_hash(step, c.sector, cred_hash, h);
	rc = token_key_sign_hash(key, h, sig, &sig_len);
	if (rc != 0)
		return rc;
	size_t n = 0;
	payload[n++] = CARDLIB_TOKEN_VERSION;
	payload[n++] = (uint8_t)(step >> 24);
	payload[n++] = (uint8_t)(step >> 16);
	payload[n++] = (uint8_t)(step >> 8);
	payload[n++] = (uint8_t)step;
	payload[n++] = (uint8_t)cred_len;
	memcpy(payload + n, cred, cred_len);
	n += cred_len;
	payload[n++] = (uint8_t)sig_len;
	memcpy(payload + n, sig, sig_len);
	n += sig_len;

	const size_t prefix = strlen(CARDLIB_QR_PREFIX);
	const size_t text = (n * 4 + 2) / 3;
	if (cap < prefix + text + 1)
		return CARDLIB_ERR_ARG;
	memcpy(line, CARDLIB_QR_PREFIX, prefix);
	b64url_encode(payload, n, line + prefix);
	line[prefix + text] = '\0';
	return (int)(prefix + text);
}

struct replay_entry {
	int64_t expires; /* last wall second at which the code still passes the window */
	uint32_t step;
	uint16_t sector;
	uint8_t id[CARDLIB_TOKEN_ID_LEN];
	uint8_t used;
};

struct cardlib_qr_replay_cache {
	struct replay_entry *e;
	size_t cap;
};

int cardlib_qr_replay_cache_new(struct cardlib_qr_replay_cache **out, size_t capacity)
{
	if (!out || capacity == 0 || capacity > (1u << 20))
		return CARDLIB_ERR_ARG;
	struct cardlib_qr_replay_cache *c = calloc(1, sizeof(*c));
	if (c)
		c->e = calloc(capacity, sizeof(*c->e));
	if (!c || !c->e) {
		free(c);
		return CARDLIB_ERR_NOMEM;
	}
	c->cap = capacity;
	*out = c;
	return CARDLIB_OK;
}

void cardlib_qr_replay_cache_free(struct cardlib_qr_replay_cache *cache)
{
	if (!cache)
		return;
	free(cache->e);
	free(cache);
}

static void replay_expire(struct cardlib_qr_replay_cache *cache, int64_t now)
{
	for (size_t i = 0; i < cache->cap; i++)
		if (cache->e[i].used && cache->e[i].expires < now)
			cache->e[i].used = 0;
}

size_t cardlib_qr_replay_cache_count(struct cardlib_qr_replay_cache *cache, int64_t now)
{
	size_t n = 0;
	if (!cache)
		return 0;
	replay_expire(cache, now);
	for (size_t i = 0; i < cache->cap; i++)
		n += cache->e[i].used;
	return n;
}

/* Record (sector, identifier, step) unless already there: 0, QR_REPLAY or NOMEM. */
static int replay_use(struct cardlib_qr_replay_cache *cache, uint16_t sector,
                      const uint8_t id[CARDLIB_TOKEN_ID_LEN], uint32_t step, int64_t now)
{
	struct replay_entry *free_slot = NULL;
	replay_expire(cache, now);
	for (size_t i = 0; i < cache->cap; i++) {
		struct replay_entry *e = &cache->e[i];
		if (!e->used) {
			if (!free_slot)
				free_slot = e;
			continue;
		}
		if (e->step == step && e->sector == sector &&
		    memcmp(e->id, id, CARDLIB_TOKEN_ID_LEN) == 0)
			return CARDLIB_ERR_QR_REPLAY;
	}
	if (!free_slot)
		return CARDLIB_ERR_NOMEM;
	free_slot->used = 1;
	free_slot->step = step;
	free_slot->sector = sector;
	memcpy(free_slot->id, id, CARDLIB_TOKEN_ID_LEN);
	free_slot->expires = (int64_t)step * CARDLIB_QR_STEP_S + CARDLIB_QR_STEP_S + QR_SKEW_S;
	/* cardlib_qr_step() says the same to a cache kept elsewhere (a gate's journal) */
	return CARDLIB_OK;
}

/* A QR line's payload: version(1) step(4) cred_len(1) cred sig_len(1) sig. 0 or QR_FORMAT. */
struct qr_payload {
	uint8_t bytes[QR_PAYLOAD_MAX];
	uint32_t step;
	const uint8_t *cred, *sig;
	size_t cred_len, sig_len;
};

static int qr_parse(const char *line, size_t len, struct qr_payload *q)
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	const size_t prefix = strlen(CARDLIB_QR_PREFIX);
	if (len < prefix || len > CARDLIB_QR_LINE_MAX || memcmp(line, CARDLIB_QR_PREFIX, prefix))
		return CARDLIB_ERR_QR_FORMAT;
	uint8_t *payload = q->bytes;
	const long n = b64url_decode(line + prefix, len - prefix, payload, sizeof(q->bytes));
	if (n < 7 || payload[0] != CARDLIB_TOKEN_VERSION)
		return CARDLIB_ERR_QR_FORMAT;
	q->step = (uint32_t)payload[1] << 24 | (uint32_t)payload[2] << 16 |
	          (uint32_t)payload[3] << 8 | payload[4];
	q->cred_len = payload[5];
	if ((size_t)n < 7 + q->cred_len)
		return CARDLIB_ERR_QR_FORMAT;
	q->cred = payload + 6;
	q->sig_len = payload[6 + q->cred_len];
	q->sig = payload + 7 + q->cred_len;
	if ((size_t)n != 7 + q->cred_len + q->sig_len)
		return CARDLIB_ERR_QR_FORMAT;
	return 0;
}

int cardlib_qr_step(const char *line, size_t len, uint32_t *step, int64_t *expires)
{
	if ((!line && len) || !step || !expires)
		return CARDLIB_ERR_ARG;
	struct qr_payload q;
	int rc = qr_parse(line, len, &q);
	if (rc != 0)
		return rc;
	*step = q.step;
	*expires = (int64_t)q.step * CARDLIB_QR_STEP_S + CARDLIB_QR_STEP_S + QR_SKEW_S;
	return 0;
}

int cardlib_qr_verify(const char *line, size_t len, const struct proto_keyring *issuers,
                      uint16_t sector, int64_t now, struct cardlib_qr_replay_cache *cache,
                      uint8_t identifier[CARDLIB_TOKEN_ID_LEN],
                      struct cardlib_token_credential *cred_out)
{
	if ((!line && len) || !issuers || !identifier)
		return CARDLIB_ERR_ARG;
	struct qr_payload q;
	int rc = qr_parse(line, len, &q);
	if (rc != 0)
		return rc;
	const uint32_t step = q.step;
	const uint8_t *cred = q.cred, *sig = q.sig;
	const size_t cred_len = q.cred_len, sig_len = q.sig_len;

	struct cardlib_token_credential c;
	rc = cardlib_token_credential_verify(cred, cred_len, issuers, sector, now, &c);
	if (rc != 0)
		return rc;
	/* s*30 - 15 <= now <= s*30 + 45: |now - middle of the step| <= 30 */
	const int64_t start = (int64_t)step * CARDLIB_QR_STEP_S;
	if (now < start - QR_SKEW_S || now > start + CARDLIB_QR_STEP_S + QR_SKEW_S)
		return CARDLIB_ERR_QR_WINDOW;
	struct proto_key *phone_key = NULL;
	rc = cred_phone_key(&c, &phone_key);
	if (rc != 0)
		return rc;
	uint8_t cred_hash[32], h[32];
	token_sha256(cred, cred_len, cred_hash);
	qr_proof_hash(step, c.sector, cred_hash, h);
	const int ok = token_key_verify_hash(phone_key, h, sig, sig_len);
	proto_key_free(phone_key);
	if (!ok)
		return CARDLIB_ERR_PROOF;
	if (cache) {
		rc = replay_use(cache, c.sector, c.identifier, step, now);
		if (rc != 0)
			return rc;
	}
	memcpy(identifier, c.identifier, CARDLIB_TOKEN_ID_LEN);
	if (cred_out)
		*cred_out = c;
	return CARDLIB_OK;
}
