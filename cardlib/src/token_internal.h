/*
 * token_internal.h — the byte layout of phone tokens, shared by token.c and its tests.
 * docs/phone-tokens.md is the reference; these constants must match it.
 */
#ifndef CARDLIB_TOKEN_INTERNAL_H
#define CARDLIB_TOKEN_INTERNAL_H

/* Domain-separation prefixes: each signature says what it is for. */
#define TOKEN_DOMAIN_CRED "CITYPASS-CRED-V1" /* issuer over a credential */
#define TOKEN_DOMAIN_NFC  "CITYPASS-NFC-V1"  /* phone over a reader's challenge */
#define TOKEN_DOMAIN_QR   "CITYPASS-QR-V1"   /* phone over a QR time step */

/* Credential: offsets of the fixed fields (L = phone key length). */
#define CRED_OFF_VERSION 0
#define CRED_OFF_KEYLEN  1
#define CRED_OFF_SECTOR  2
#define CRED_OFF_ID      4
#define CRED_OFF_KEY     20
/* after the key: valid_from(8) valid_until(8) issuer key id(8) sig_len(1) sig(S) */
#define CRED_SIGNED_LEN(L) (CRED_OFF_KEY + (L) + 24)
#define CRED_MIN_SIG       8

/* APDUs. */
#define APDU_CLA_PROP       0x80
#define APDU_INS_SELECT     0xA4
#define APDU_INS_CHALLENGE  0x88 /* INTERNAL AUTHENTICATE, proprietary class */
#define APDU_CHALLENGE_DATA 34   /* sector(2) nonce(16) gate id(8) time(8) */
#define APDU_NONCE_LEN      16
/* The phone's answer: cred_len(1) cred proof_len(1) proof SW1 SW2. */
#define APDU_ANSWER_MAX (1 + CARDLIB_TOKEN_CRED_MAX + 1 + CARDLIB_TOKEN_SIG_MAX + 2)

/* QR payload: version(1) step(4) cred_len(1) cred sig_len(1) sig. */
#define QR_PAYLOAD_MAX (1 + 4 + 1 + CARDLIB_TOKEN_CRED_MAX + 1 + CARDLIB_TOKEN_SIG_MAX)
/* A code of step s is accepted for s*30 - QR_SKEW_S <= now <= s*30 + 30 + QR_SKEW_S. */
#define QR_SKEW_S 15

#endif /* CARDLIB_TOKEN_INTERNAL_H */
