/*
 * proto/sign.h — P-256 keys, keyrings and ECDSA / SHA-256 signatures (mbedTLS 2.28): the
 * one home of keys for lists, deltas and phone tokens (cardlib/token.h signs and verifies
 * credentials with these keys; issue 14).
 *
 * Signatures are DER-encoded ECDSA-Sig-Value, exactly what `openssl dgst -sha256 -sign`
 * writes and `openssl dgst -sha256 -verify` reads, so a published list can be checked
 * with nothing of ours. Public keys are PEM SubjectPublicKeyInfo. A key's id is the first
 * 8 bytes of SHA-256 over its SubjectPublicKeyInfo DER:
 *     openssl pkey -pubin -in list.pub.pem -outform DER | sha256sum | cut -c1-16
 */
#ifndef PROTO_SIGN_H
#define PROTO_SIGN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest DER ECDSA P-256 signature: SEQUENCE { INTEGER(33), INTEGER(33) }. */
#define PROTO_SIG_MAX    72
#define PROTO_SIG_MIN    8  /* SEQUENCE { INTEGER(1), INTEGER(1) } */
#define PROTO_POINT_LEN  33 /* a compressed SEC1 point */
#define PROTO_KEY_ID_LEN 8
#define PROTO_HASH_LEN   32

/* An EC P-256 key: a private key (can sign and verify) or a public key (verify only). */
struct proto_key;

/* A set of public keys a verifier trusts, found by key id (keys rotate: DESIGN.md s.3). */
struct proto_keyring;

/* Every function taking `struct proto_key **out` leaves a new key there that the caller
 * frees with proto_key_free(), and nothing on failure. No function takes a key over. */

int proto_key_generate(struct proto_key **out);
/* Load a PEM or DER private key (SEC1 or PKCS#8, unencrypted). */
int proto_key_load_private(struct proto_key **out, const char *path);
/* Load a PEM or DER public key (SubjectPublicKeyInfo). */
int proto_key_load_public(struct proto_key **out, const char *path);
int proto_key_parse_public(struct proto_key **out, const uint8_t *buf, size_t len);
/* Either kind, PEM or DER: a private key (SEC1 or PKCS#8, unencrypted) or a public one. */
int proto_key_parse(struct proto_key **out, const uint8_t *buf, size_t len);
/* The same from a file of at most 8 KiB. */
int proto_key_load(struct proto_key **out, const char *path);
/* A public key from a SEC1 point: 33 bytes compressed or 65 uncompressed, on the curve. */
int proto_key_from_point(struct proto_key **out, const uint8_t *point, size_t len);
/* A copy of key, private when key is. */
int proto_key_copy(struct proto_key **out, const struct proto_key *key);
/* The compressed SEC1 point of the public half. */
int proto_key_point(const struct proto_key *key, uint8_t point[PROTO_POINT_LEN]);
/* 1 when both keys have the same public half. */
int proto_key_same_public(const struct proto_key *a, const struct proto_key *b);
/* The private key as PEM text (SEC1) into buf, NUL-terminated; the caller wipes it. */
int proto_key_private_pem(const struct proto_key *key, char *buf, size_t cap);
/* Write the private key as PEM, created with mode 0600; refuses to overwrite a file. */
int proto_key_write_private_pem(const struct proto_key *key, const char *path);
/* Write the public half as PEM (mode 0644); refuses to overwrite a file. */
int proto_key_write_public_pem(const struct proto_key *key, const char *path);
/* Public half as PEM text into buf (NUL-terminated). */
int proto_key_public_pem(const struct proto_key *key, char *buf, size_t cap);
void proto_key_id(const struct proto_key *key, uint8_t id[PROTO_KEY_ID_LEN]);
int proto_key_is_private(const struct proto_key *key);
void proto_key_free(struct proto_key *key);

/* Sign SHA-256(data) with a private key; sig must hold PROTO_SIG_MAX bytes. */
int proto_sign(const struct proto_key *key, const uint8_t *data, size_t len,
               uint8_t sig[PROTO_SIG_MAX], size_t *sig_len);
/* Same, for a digest already computed. */
int proto_sign_hash(const struct proto_key *key, const uint8_t hash[PROTO_HASH_LEN],
                    uint8_t sig[PROTO_SIG_MAX], size_t *sig_len);
/*
 * 1 when sig is an ECDSA-Sig-Value for P-256 in canonical DER: the only encoding verified.
 * mbedTLS 2.28 also accepts BER variants (a long-form length, for one), which anyone can
 * derive from a valid signature without the key: an auditor's openssl would refuse what
 * a gate accepted, and a credential would have several valid encodings.
 */
int proto_sig_is_canonical(const uint8_t *sig, size_t len);

/* 0 when sig is a valid signature of SHA-256(data); PROTO_ERR_LIST_SIGNATURE otherwise. */
int proto_verify(const struct proto_key *key, const uint8_t *data, size_t len, const uint8_t *sig,
                 size_t sig_len);
int proto_verify_hash(const struct proto_key *key, const uint8_t hash[PROTO_HASH_LEN],
                      const uint8_t *sig, size_t sig_len);

void proto_sha256(const uint8_t *data, size_t len, uint8_t out[PROTO_HASH_LEN]);

struct proto_keyring *proto_keyring_new(void);
/* Add the public half of key: the ring keeps its own copy, key stays the caller's (to
 * free, whatever the result). PROTO_ERR_ARG for a key the ring holds already or a full
 * ring (16 keys). */
int proto_keyring_add(struct proto_keyring *ring, const struct proto_key *key);
/* The key with this id, or NULL. */
const struct proto_key *proto_keyring_find(const struct proto_keyring *ring,
                                           const uint8_t id[PROTO_KEY_ID_LEN]);
void proto_keyring_free(struct proto_keyring *ring);

/* Tests only: the random source of key generation and signing (NULL: the DRBG's), so a
 * fuzz target or a vector test is deterministic. Not thread-safe. */
void proto_sign_set_random_for_testing(int (*fn)(void *ctx, unsigned char *buf, size_t len),
                                       void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_SIGN_H */
