/*
 * token_internal.h — the byte layout of phone tokens, shared by token.c and its tests.
 * docs/phone-tokens.md is the reference; these constants must match it.
 */
#ifndef CARDLIB_TOKEN_INTERNAL_H
#define CARDLIB_TOKEN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/token.h"

/* Domain-separation prefixes: each signature says what it is for. */
#define TOKEN_DOMAIN_CRED      "CITYPASS-CRED-V1"      /* issuer over a credential */
#define TOKEN_DOMAIN_NFC       "CITYPASS-NFC-V2"       /* phone over a gate's challenge */
#define TOKEN_DOMAIN_QR        "CITYPASS-QR-V1"        /* phone over a QR time step */
#define TOKEN_DOMAIN_GATE_CERT "CITYPASS-GATE-CERT-V1" /* device CA over a gate certificate */
#define TOKEN_DOMAIN_GATE      "CITYPASS-GATE-V1"      /* gate over its challenge */

/* Credential: offsets of the fixed fields (L = phone key length). */
#define CRED_OFF_VERSION 0
#define CRED_OFF_KEYLEN  1
#define CRED_OFF_SECTOR  2
#define CRED_OFF_ID      4
#define CRED_OFF_KEY     20
/* after the key: valid_from(8) valid_until(8) issuer key id(8) sig_len(1) sig(S) */
#define CRED_SIGNED_LEN(L) (CRED_OFF_KEY + (L) + 24)
#define CRED_MIN_SIG       8

/* Gate certificate: offsets (docs/phone-tokens.md s.3.1). */
#define GCERT_OFF_SECTOR  1
#define GCERT_OFF_GATE_ID 3
#define GCERT_OFF_KEY     11
#define GCERT_OFF_FROM    44
#define GCERT_OFF_UNTIL   52
#define GCERT_OFF_CA_ID   60
#define GCERT_SIGNED_LEN  68 /* then sig_len(1) sig(S) */

/* APDUs. */
#define APDU_CLA_PROP      0x80
#define APDU_INS_SELECT    0xA4
#define APDU_INS_CHALLENGE 0x88 /* INTERNAL AUTHENTICATE, proprietary class */
#define APDU_CHALLENGE_P1  0x02 /* the exchange's version: 2, the gate proves itself */
#define APDU_NONCE_LEN     16
/* The challenge's data: nonce_r(16) time(8) cert_len(1) cert sig_len(1) sig. */
#define APDU_CHALLENGE_FIXED (APDU_NONCE_LEN + 8 + 1 + 1)
#define APDU_CHALLENGE_MAX   (APDU_CHALLENGE_FIXED + CARDLIB_GATE_CERT_MAX + CARDLIB_TOKEN_SIG_MAX)
/* The phone's answer: cred_len(1) cred proof_len(1) proof SW1 SW2. */
#define APDU_ANSWER_MAX (1 + CARDLIB_TOKEN_CRED_MAX + 1 + CARDLIB_TOKEN_SIG_MAX + 2)

/* --- shared by token.c and token_gate.c ------------------------------------------------ */

struct token_part {
	const uint8_t *p;
	size_t n;
};

/* SHA-256(domain ‖ parts...): the message every signature of the module covers. */
void token_domain_hash(const char *domain, const struct token_part *parts, size_t n_parts,
                       uint8_t out[32]);
void token_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
void token_put_be16(uint8_t *p, uint16_t v);
uint16_t token_get_be16(const uint8_t *p);
void token_put_be64(uint8_t *p, int64_t s);
int64_t token_get_be64(const uint8_t *p);
/* An mbedTLS f_rng: the test hook when set, else the module's ctr_drbg. */
int token_random(void *unused, unsigned char *buf, size_t len);
/* A proto error from a key operation, in cardlib's space. */
int token_from_proto(int rc);
int token_key_sign_hash(const struct proto_key *key, const uint8_t hash[32],
                        uint8_t sig[CARDLIB_TOKEN_SIG_MAX], size_t *sig_len);
/* 1 when sig is a canonical, valid signature of hash by key. */
int token_key_verify_hash(const struct proto_key *key, const uint8_t hash[32], const uint8_t *sig,
                          size_t sig_len);

/* The hash a gate signs over its challenge (docs/phone-tokens.md s.3.3). */
void token_gate_challenge_hash(const uint8_t nonce_p[APDU_NONCE_LEN],
                               const uint8_t nonce_r[APDU_NONCE_LEN], int64_t time,
                               const uint8_t *cert, size_t cert_len, uint16_t sector,
                               const uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN], uint8_t h[32]);
/* The gate's certificate bytes and its signature over a challenge (the reader's side). */
const uint8_t *token_gate_cert_bytes(const struct cardlib_gate *g, size_t *len);
int token_gate_sign(const struct cardlib_gate *g, const uint8_t h[32],
                    uint8_t sig[CARDLIB_TOKEN_SIG_MAX], size_t *sig_len);

/* QR payload: version(1) step(4) cred_len(1) cred sig_len(1) sig. */
#define QR_PAYLOAD_MAX (1 + 4 + 1 + CARDLIB_TOKEN_CRED_MAX + 1 + CARDLIB_TOKEN_SIG_MAX)
/* A code of step s is accepted for s*30 - QR_SKEW_S <= now <= s*30 + 30 + QR_SKEW_S. */
#define QR_SKEW_S 15

#endif /* CARDLIB_TOKEN_INTERNAL_H */
