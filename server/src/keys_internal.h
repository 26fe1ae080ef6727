/*
 * keys_internal.h — what keys.c (key files, card and list keys) and certs.c (the device CA
 * and its certificates) share inside the server library.
 */
#ifndef SERVER_KEYS_INTERNAL_H
#define SERVER_KEYS_INTERNAL_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

/* mbedTLS's CTR-DRBG over the system's entropy, for key generation and certificates. */
struct rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

int keys_rng_init(struct rng *r);
void keys_rng_free(struct rng *r);

/* A CN that fits a distinguished name without escaping. */
int keys_cn_ok(const char *cn);

/* DATA/keys/ca.key and its self-signed certificate ca.crt (20 years). */
int keys_ca_create(const char *data_dir, struct rng *r);

#endif /* SERVER_KEYS_INTERNAL_H */
