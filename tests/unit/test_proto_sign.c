/*
 * ECDSA P-256 signatures: the RFC 6979 published vector, key files, key ids, and refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>

#include "proto/error.h"
#include "proto/sign.h"

/*
 * RFC 6979, appendix A.2.5: ECDSA, 256 bits (prime field), key pair and the signature of
 * the message "sample" with SHA-256. The public key is wrapped in a SubjectPublicKeyInfo
 * for P-256 (RFC 5480) and the signature (r, s) in a DER ECDSA-Sig-Value (RFC 3279).
 */
static const uint8_t rfc6979_spki[] = {
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
        /* Ux */
        0x60, 0xFE, 0xD4, 0xBA, 0x25, 0x5A, 0x9D, 0x31, 0xC9, 0x61, 0xEB, 0x74, 0xC6, 0x35, 0x6D,
        0x68, 0xC0, 0x49, 0xB8, 0x92, 0x3B, 0x61, 0xFA, 0x6C, 0xE6, 0x69, 0x62, 0x2E, 0x60, 0xF2,
        0x9F, 0xB6,
        /* Uy */
        0x79, 0x03, 0xFE, 0x10, 0x08, 0xB8, 0xBC, 0x99, 0xA4, 0x1A, 0xE9, 0xE9, 0x56, 0x28, 0xBC,
        0x64, 0xF2, 0xF1, 0xB2, 0x0C, 0x2D, 0x7E, 0x9F, 0x51, 0x77, 0xA3, 0xC2, 0x94, 0xD4, 0x46,
        0x22, 0x99};

static const uint8_t rfc6979_sig_sample[] = {
        0x30, 0x46, 0x02, 0x21, 0x00,
        /* r */
        0xEF, 0xD4, 0x8B, 0x2A, 0xAC, 0xB6, 0xA8, 0xFD, 0x11, 0x40, 0xDD, 0x9C, 0xD4, 0x5E, 0x81,
        0xD6, 0x9D, 0x2C, 0x87, 0x7B, 0x56, 0xAA, 0xF9, 0x91, 0xC3, 0x4D, 0x0E, 0xA8, 0x4E, 0xAF,
        0x37, 0x16, 0x02, 0x21, 0x00,
        /* s */
        0xF7, 0xCB, 0x1C, 0x94, 0x2D, 0x65, 0x7C, 0x41, 0xD4, 0x36, 0xC7, 0xA1, 0xB6, 0xE2, 0x9F,
        0x65, 0xF3, 0xE9, 0x00, 0xDB, 0xB9, 0xAF, 0xF4, 0x06, 0x4D, 0xC4, 0xAB, 0x2F, 0x84, 0x3A,
        0xCD, 0xA8};

static void test_rfc6979_vector_verifies(void **state)
{
	(void)state;
	struct proto_key *k = NULL;
	assert_int_equal(proto_key_parse_public(&k, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	assert_int_equal(proto_verify(k, (const uint8_t *)"sample", 6, rfc6979_sig_sample,
	                              sizeof(rfc6979_sig_sample)),
	                 0);
	/* the same signature over another message of the RFC is refused */
	assert_int_equal(proto_verify(k, (const uint8_t *)"test", 4, rfc6979_sig_sample,
	                              sizeof(rfc6979_sig_sample)),
	                 PROTO_ERR_LIST_SIGNATURE);
	proto_key_free(k);
}

/*
 * RFC 6979 A.2.5 again, from the signing side: the private key x as a SEC1 ECPrivateKey
 * (RFC 5915, without the optional public key), and the signature of "test" with SHA-256,
 * whose r needs a leading zero in DER and whose s does not. Deterministic ECDSA gives
 * exactly these bytes whatever the blinding, so this checks the nonce derivation and the
 * DER writing of proto_sign against the RFC, not against our own verifier.
 */
static const uint8_t rfc6979_sec1_private[] = {
        0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20,
        /* x */
        0xC9, 0xAF, 0xA9, 0xD8, 0x45, 0xBA, 0x75, 0x16, 0x6B, 0x5C, 0x21, 0x57, 0x67, 0xB1, 0xD6,
        0x93, 0x4E, 0x50, 0xC3, 0xDB, 0x36, 0xE8, 0x9B, 0x12, 0x7B, 0x8A, 0x62, 0x2B, 0x12, 0x0F,
        0x67, 0x21,
        /* [0] namedCurve prime256v1 */
        0xA0, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};

static const uint8_t rfc6979_sig_test[] = {
        0x30, 0x45, 0x02, 0x21, 0x00,
        /* r */
        0xF1, 0xAB, 0xB0, 0x23, 0x51, 0x83, 0x51, 0xCD, 0x71, 0xD8, 0x81, 0x56, 0x7B, 0x1E, 0xA6,
        0x63, 0xED, 0x3E, 0xFC, 0xF6, 0xC5, 0x13, 0x2B, 0x35, 0x4F, 0x28, 0xD3, 0xB0, 0xB7, 0xD3,
        0x83, 0x67, 0x02, 0x20,
        /* s */
        0x01, 0x9F, 0x41, 0x13, 0x74, 0x2A, 0x2B, 0x14, 0xBD, 0x25, 0x92, 0x6B, 0x49, 0xC6, 0x49,
        0x15, 0x5F, 0x26, 0x7E, 0x60, 0xD3, 0x81, 0x4B, 0x4C, 0x0C, 0xC8, 0x42, 0x50, 0xE4, 0x6F,
        0x00, 0x83};

static void test_rfc6979_vector_signs(void **state)
{
	(void)state;
	struct proto_key *k = NULL, *pub = NULL;
	assert_int_equal(proto_key_parse(&k, rfc6979_sec1_private, sizeof(rfc6979_sec1_private)),
	                 0);
	assert_true(proto_key_is_private(k));
	/* the key is the RFC's: its public half is the RFC's U */
	assert_int_equal(proto_key_parse_public(&pub, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	assert_true(proto_key_same_public(k, pub));
	uint8_t sig[PROTO_SIG_MAX];
	size_t len = 0;
	assert_int_equal(proto_sign(k, (const uint8_t *)"sample", 6, sig, &len), 0);
	assert_int_equal(len, sizeof(rfc6979_sig_sample));
	assert_memory_equal(sig, rfc6979_sig_sample, len);
	assert_int_equal(proto_sign(k, (const uint8_t *)"test", 4, sig, &len), 0);
	assert_int_equal(len, sizeof(rfc6979_sig_test));
	assert_memory_equal(sig, rfc6979_sig_test, len);
	/* and the RFC's "test" signature verifies under the RFC's public key */
	assert_int_equal(proto_verify(pub, (const uint8_t *)"test", 4, rfc6979_sig_test,
	                              sizeof(rfc6979_sig_test)),
	                 0);
	proto_key_free(k);
	proto_key_free(pub);
}

static void test_sign_then_verify_and_tamper(void **state)
{
	(void)state;
	struct proto_key *k = NULL;
	uint8_t msg[100], sig[PROTO_SIG_MAX], junk[PROTO_SIG_MAX + 8];
	size_t sig_len = 0;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	assert_int_equal(proto_key_generate(&k), 0);
	assert_true(proto_key_is_private(k));
	assert_int_equal(proto_sign(k, msg, sizeof(msg), sig, &sig_len), 0);
	assert_in_range(sig_len, 8, PROTO_SIG_MAX);
	assert_int_equal(proto_verify(k, msg, sizeof(msg), sig, sig_len), 0);

	msg[50] ^= 1; /* one bit of the message */
	assert_int_equal(proto_verify(k, msg, sizeof(msg), sig, sig_len), PROTO_ERR_LIST_SIGNATURE);
	msg[50] ^= 1;
	sig[sig_len - 1] ^= 0x80; /* one bit of s */
	assert_int_equal(proto_verify(k, msg, sizeof(msg), sig, sig_len), PROTO_ERR_LIST_SIGNATURE);
	sig[sig_len - 1] ^= 0x80;
	assert_int_equal(proto_verify(k, msg, sizeof(msg), sig, sig_len - 1),
	                 PROTO_ERR_LIST_SIGNATURE);
	assert_int_equal(proto_verify(k, msg, sizeof(msg), sig, 0), PROTO_ERR_LIST_SIGNATURE);
	/* a valid signature with bytes after it is not a valid signature */
	memcpy(junk, sig, sig_len);
	junk[sig_len] = 0;
	assert_int_equal(proto_verify(k, msg, sizeof(msg), junk, sig_len + 1),
	                 PROTO_ERR_LIST_SIGNATURE);
	proto_key_free(k);
}

static void test_public_key_cannot_sign(void **state)
{
	(void)state;
	struct proto_key *k = NULL;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	assert_int_equal(proto_key_parse_public(&k, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	assert_false(proto_key_is_private(k));
	assert_int_equal(proto_sign(k, (const uint8_t *)"x", 1, sig, &sig_len), PROTO_ERR_ARG);
	proto_key_free(k);
}

static void test_key_files_round_trip(void **state)
{
	(void)state;
	char dir[] = "/tmp/citypass-sign-XXXXXX", priv[128], pub[128];
	assert_non_null(mkdtemp(dir));
	snprintf(priv, sizeof(priv), "%s/list.pem", dir);
	snprintf(pub, sizeof(pub), "%s/list.pub.pem", dir);

	struct proto_key *k = NULL, *kp = NULL, *kq = NULL;
	uint8_t id1[PROTO_KEY_ID_LEN], id2[PROTO_KEY_ID_LEN], id3[PROTO_KEY_ID_LEN];
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	assert_int_equal(proto_key_generate(&k), 0);
	assert_int_equal(proto_key_write_private_pem(k, priv), 0);
	assert_int_equal(proto_key_write_public_pem(k, pub), 0);

	struct stat st;
	assert_int_equal(stat(priv, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600); /* DESIGN.md s.3: key material is 0600 */
	/* an existing deployment's key is never overwritten */
	assert_int_equal(proto_key_write_private_pem(k, priv), PROTO_ERR_IO);

	assert_int_equal(proto_key_load_private(&kp, priv), 0);
	assert_int_equal(proto_key_load_public(&kq, pub), 0);
	proto_key_id(k, id1);
	proto_key_id(kp, id2);
	proto_key_id(kq, id3);
	assert_memory_equal(id1, id2, sizeof(id1));
	assert_memory_equal(id1, id3, sizeof(id1));
	/* the reloaded private key signs what the public file verifies */
	assert_int_equal(proto_sign(kp, (const uint8_t *)"abc", 3, sig, &sig_len), 0);
	assert_int_equal(proto_verify(kq, (const uint8_t *)"abc", 3, sig, sig_len), 0);
	/* a public key file is not a private key */
	struct proto_key *bad = NULL;
	assert_int_equal(proto_key_load_private(&bad, pub), PROTO_ERR_KEY);

	proto_key_free(k);
	proto_key_free(kp);
	proto_key_free(kq);
	unlink(priv);
	unlink(pub);
	rmdir(dir);
}

/* A P-384 key is a valid EC key but not the curve lists use: refused, not misused. */
static void test_other_curve_refused(void **state)
{
	(void)state;
	mbedtls_pk_context pk;
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	unsigned char pem[1024];
	mbedtls_pk_init(&pk);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
	assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
	assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP384R1, mbedtls_pk_ec(pk),
	                                     mbedtls_ctr_drbg_random, &drbg),
	                 0);
	assert_int_equal(mbedtls_pk_write_pubkey_pem(&pk, pem, sizeof(pem)), 0);
	struct proto_key *k = NULL;
	assert_int_equal(proto_key_parse_public(&k, pem, strlen((char *)pem)), PROTO_ERR_KEY);
	assert_null(k);
	assert_int_equal(proto_key_parse_public(&k, (const uint8_t *)"not a key", 9),
	                 PROTO_ERR_KEY);
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
}

static void test_keyring_finds_by_id(void **state)
{
	(void)state;
	struct proto_key *a = NULL, *b = NULL, *c = NULL;
	uint8_t ida[PROTO_KEY_ID_LEN], idb[PROTO_KEY_ID_LEN], idc[PROTO_KEY_ID_LEN];
	assert_int_equal(proto_key_generate(&a), 0);
	assert_int_equal(proto_key_generate(&b), 0);
	assert_int_equal(proto_key_generate(&c), 0);
	proto_key_id(a, ida);
	proto_key_id(b, idb);
	proto_key_id(c, idc);
	assert_memory_not_equal(ida, idb, PROTO_KEY_ID_LEN);

	struct proto_keyring *ring = proto_keyring_new();
	assert_int_equal(proto_keyring_add(ring, a), 0);
	assert_int_equal(proto_keyring_add(ring, b), 0);
	assert_true(proto_key_same_public(proto_keyring_find(ring, ida), a));
	assert_true(proto_key_same_public(proto_keyring_find(ring, idb), b));
	assert_null(proto_keyring_find(ring, idc));
	/* the ring holds copies of the public halves: it verifies what the caller's key signs,
	 * and the caller's keys are still the caller's to free */
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len = 0;
	assert_int_equal(proto_sign(a, (const uint8_t *)"m", 1, sig, &sig_len), 0);
	assert_false(proto_key_is_private(proto_keyring_find(ring, ida)));
	assert_int_equal(
	        proto_verify(proto_keyring_find(ring, ida), (const uint8_t *)"m", 1, sig, sig_len),
	        0);
	proto_key_free(a);
	proto_key_free(b);
	proto_key_free(c);
	proto_keyring_free(ring);
}

/* The key id is SHA-256 of the SubjectPublicKeyInfo DER, truncated: documented so an
 * auditor can recompute it with openssl; check it against that definition. */
static void test_key_id_definition(void **state)
{
	(void)state;
	struct proto_key *k = NULL;
	uint8_t id[PROTO_KEY_ID_LEN], h[PROTO_HASH_LEN];
	assert_int_equal(proto_key_parse_public(&k, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	proto_key_id(k, id);
	proto_sha256(rfc6979_spki, sizeof(rfc6979_spki), h);
	assert_memory_equal(id, h, PROTO_KEY_ID_LEN);
	proto_key_free(k);
}

/* FIPS 180-2 appendix B.1: SHA-256("abc"). */
static void test_sha256_fips_vector(void **state)
{
	(void)state;
	static const uint8_t want[PROTO_HASH_LEN] = {
	        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
	        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
	        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	uint8_t h[PROTO_HASH_LEN];
	proto_sha256((const uint8_t *)"abc", 3, h);
	assert_memory_equal(h, want, sizeof(h));
}

/* An RSA key is not an EC key: refused before anything reads it as one. Generated here
 * (1024 bits, fast enough; its strength does not matter). */
static void test_rsa_key_refused(void **state)
{
	(void)state;
	mbedtls_pk_context pk;
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	unsigned char der[512];
	mbedtls_pk_init(&pk);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
	assert_int_equal(mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), 0);
	assert_int_equal(mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk), mbedtls_ctr_drbg_random, &drbg,
	                                     1024, 65537),
	                 0);
	int n = mbedtls_pk_write_pubkey_der(&pk, der, sizeof(der)); /* at the end of der */
	assert_true(n > 0);
	struct proto_key *k = NULL;
	assert_int_equal(proto_key_parse_public(&k, der + sizeof(der) - n, (size_t)n),
	                 PROTO_ERR_KEY);
	assert_null(k);
	mbedtls_pk_free(&pk);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
}

/* The RFC 6979 P-256 key again, but with the algorithm id-ecDH (RFC 5480 section 2.1.2,
 * OID 1.3.132.1.12): a key restricted to key agreement, which must not verify lists. */
static const uint8_t rfc6979_ecdh_spki[] = {
        0x30, 0x57, 0x30, 0x11, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x01, 0x0c, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
        /* Ux */
        0x60, 0xFE, 0xD4, 0xBA, 0x25, 0x5A, 0x9D, 0x31, 0xC9, 0x61, 0xEB, 0x74, 0xC6, 0x35, 0x6D,
        0x68, 0xC0, 0x49, 0xB8, 0x92, 0x3B, 0x61, 0xFA, 0x6C, 0xE6, 0x69, 0x62, 0x2E, 0x60, 0xF2,
        0x9F, 0xB6,
        /* Uy */
        0x79, 0x03, 0xFE, 0x10, 0x08, 0xB8, 0xBC, 0x99, 0xA4, 0x1A, 0xE9, 0xE9, 0x56, 0x28, 0xBC,
        0x64, 0xF2, 0xF1, 0xB2, 0x0C, 0x2D, 0x7E, 0x9F, 0x51, 0x77, 0xA3, 0xC2, 0x94, 0xD4, 0x46,
        0x22, 0x99};

static void test_ecdh_only_key_refused(void **state)
{
	(void)state;
	/* mbedtls itself parses it, as an ECKEY_DH key on P-256 */
	mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	assert_int_equal(
	        mbedtls_pk_parse_public_key(&pk, rfc6979_ecdh_spki, sizeof(rfc6979_ecdh_spki)), 0);
	assert_int_equal(mbedtls_pk_get_type(&pk), MBEDTLS_PK_ECKEY_DH);
	mbedtls_pk_free(&pk);
	struct proto_key *k = NULL;
	assert_int_equal(proto_key_parse_public(&k, rfc6979_ecdh_spki, sizeof(rfc6979_ecdh_spki)),
	                 PROTO_ERR_KEY);
	assert_null(k);
}

/* The RFC 6979 signature re-encoded with a long-form SEQUENCE length (30 81 46 instead of
 * 30 46): 73 bytes, not DER, but mbedtls accepts it. A verified signature must fit the
 * PROTO_SIG_MAX bytes that callers (and the delta format) keep for it. */
static void test_verify_refuses_signature_longer_than_sig_max(void **state)
{
	(void)state;
	uint8_t long_sig[PROTO_SIG_MAX + 1], hash[PROTO_HASH_LEN];
	assert_int_equal(sizeof(rfc6979_sig_sample), PROTO_SIG_MAX);
	long_sig[0] = 0x30;
	long_sig[1] = 0x81;
	memcpy(long_sig + 2, rfc6979_sig_sample + 1, sizeof(rfc6979_sig_sample) - 1);
	proto_sha256((const uint8_t *)"sample", 6, hash);

	mbedtls_pk_context pk;
	mbedtls_pk_init(&pk);
	assert_int_equal(mbedtls_pk_parse_public_key(&pk, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	assert_int_equal(mbedtls_pk_verify(&pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), long_sig,
	                                   sizeof(long_sig)),
	                 0);
	mbedtls_pk_free(&pk);

	struct proto_key *k = NULL;
	assert_int_equal(proto_key_parse_public(&k, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	assert_int_equal(proto_verify_hash(k, hash, long_sig, sizeof(long_sig)),
	                 PROTO_ERR_LIST_SIGNATURE);
	assert_int_equal(proto_verify_hash(k, hash, rfc6979_sig_sample, sizeof(rfc6979_sig_sample)),
	                 0);
	proto_key_free(k);
}

/* A key id names one key: the same key twice is refused; both stay the caller's (the ring
 * keeps copies: a caller that frees its key after a refusal frees it once). */
static void test_keyring_refuses_duplicate_key(void **state)
{
	(void)state;
	struct proto_key *a = NULL, *again = NULL;
	uint8_t id[PROTO_KEY_ID_LEN];
	assert_int_equal(proto_key_parse_public(&a, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	assert_int_equal(proto_key_parse_public(&again, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	struct proto_keyring *ring = proto_keyring_new();
	assert_int_equal(proto_keyring_add(ring, a), 0);
	assert_int_equal(proto_keyring_add(ring, again), PROTO_ERR_ARG);
	proto_key_id(a, id);
	assert_true(proto_key_same_public(proto_keyring_find(ring, id), a));
	proto_key_free(again);
	proto_key_free(a);
	proto_keyring_free(ring);
}

/* The ring has room for 16 keys (KEYRING_MAX in sign.c): a 17th is refused, not written
 * past the array, and the 16 stay usable. */
static void test_keyring_refuses_seventeenth_key(void **state)
{
	(void)state;
	enum { MAX = 16 };
	struct proto_key *k[MAX + 1];
	uint8_t id[MAX + 1][PROTO_KEY_ID_LEN];
	struct proto_keyring *ring = proto_keyring_new();
	for (int i = 0; i <= MAX; i++) {
		assert_int_equal(proto_key_generate(&k[i]), 0);
		proto_key_id(k[i], id[i]);
	}
	for (int i = 0; i < MAX; i++)
		assert_int_equal(proto_keyring_add(ring, k[i]), 0);
	assert_int_equal(proto_keyring_add(ring, k[MAX]), PROTO_ERR_ARG);
	for (int i = 0; i < MAX; i++)
		assert_true(proto_key_same_public(proto_keyring_find(ring, id[i]), k[i]));
	assert_null(proto_keyring_find(ring, id[MAX]));
	for (int i = 0; i <= MAX; i++)
		proto_key_free(k[i]);
	proto_keyring_free(ring);
}

/*
 * The RFC 6979 signature re-encoded with a long-form SEQUENCE length (30 81 46 ...): the
 * same r and s, valid BER, and openssl refuses it. Anyone could make it without the key,
 * so a gate must refuse it too, or it would hold a list that fails the auditors' check.
 */
static void test_non_canonical_der_refused(void **state)
{
	(void)state;
	struct proto_key *k = NULL;
	uint8_t sig[sizeof(rfc6979_sig_sample) + 1];
	assert_int_equal(proto_key_parse_public(&k, rfc6979_spki, sizeof(rfc6979_spki)), 0);
	sig[0] = 0x30;
	sig[1] = 0x81;
	memcpy(sig + 2, rfc6979_sig_sample + 1, sizeof(rfc6979_sig_sample) - 1);
	assert_int_equal(proto_verify(k, (const uint8_t *)"sample", 6, sig, sizeof(sig)),
	                 PROTO_ERR_LIST_SIGNATURE);
	/* r with a needless leading zero byte: the DER checker must refuse it before
	 * mbedtls, whatever mbedtls would say */
	static const uint8_t padded_r[] = {0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01};
	assert_int_equal(proto_verify(k, (const uint8_t *)"sample", 6, padded_r, sizeof(padded_r)),
	                 PROTO_ERR_LIST_SIGNATURE);
	/* and the canonical form still verifies */
	assert_int_equal(proto_verify(k, (const uint8_t *)"sample", 6, rfc6979_sig_sample,
	                              sizeof(rfc6979_sig_sample)),
	                 0);
	proto_key_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rfc6979_vector_verifies),
	        cmocka_unit_test(test_rfc6979_vector_signs),
	        cmocka_unit_test(test_non_canonical_der_refused),
	        cmocka_unit_test(test_sign_then_verify_and_tamper),
	        cmocka_unit_test(test_public_key_cannot_sign),
	        cmocka_unit_test(test_key_files_round_trip),
	        cmocka_unit_test(test_other_curve_refused),
	        cmocka_unit_test(test_keyring_finds_by_id),
	        cmocka_unit_test(test_key_id_definition),
	        cmocka_unit_test(test_sha256_fips_vector),
	        cmocka_unit_test(test_rsa_key_refused),
	        cmocka_unit_test(test_ecdh_only_key_refused),
	        cmocka_unit_test(test_verify_refuses_signature_longer_than_sig_max),
	        cmocka_unit_test(test_keyring_refuses_duplicate_key),
	        cmocka_unit_test(test_keyring_refuses_seventeenth_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
