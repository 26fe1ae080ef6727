/*
 * proto/sign.h — ECDSA P-256 / SHA-256 signatures over lists and deltas (mbedTLS 2.28).
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
#define PROTO_KEY_ID_LEN 8
#define PROTO_HASH_LEN   32

/* An EC P-256 key: a private key (can sign and verify) or a public key (verify only). */
struct proto_key;

/* A set of public keys a verifier trusts, found by key id (keys rotate: DESIGN.md s.3). */
struct proto_keyring;

int proto_key_generate(struct proto_key **out);
/* Load a PEM or DER private key (SEC1 or PKCS#8, unencrypted). */
int proto_key_load_private(struct proto_key **out, const char *path);
/* Load a PEM or DER public key (SubjectPublicKeyInfo). */
int proto_key_load_public(struct proto_key **out, const char *path);
int proto_key_parse_public(struct proto_key **out, const uint8_t *buf, size_t len);
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
/* 0 when sig is a valid signature of SHA-256(data); PROTO_ERR_LIST_SIGNATURE otherwise. */
int proto_verify(const struct proto_key *key, const uint8_t *data, size_t len, const uint8_t *sig,
                 size_t sig_len);
int proto_verify_hash(const struct proto_key *key, const uint8_t hash[PROTO_HASH_LEN],
                      const uint8_t *sig, size_t sig_len);

void proto_sha256(const uint8_t *data, size_t len, uint8_t out[PROTO_HASH_LEN]);

struct proto_keyring *proto_keyring_new(void);
/* Add a key (the ring takes ownership, also on failure). */
int proto_keyring_add(struct proto_keyring *ring, struct proto_key *key);
/* The key with this id, or NULL. */
const struct proto_key *proto_keyring_find(const struct proto_keyring *ring,
                                           const uint8_t id[PROTO_KEY_ID_LEN]);
void proto_keyring_free(struct proto_keyring *ring);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_SIGN_H */
