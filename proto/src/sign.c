/*
 * ECDSA P-256 keys, keyrings and signatures over mbedTLS 2.28 (Debian 12's version: the
 * 2.x pk API, whose sign and parse functions take no RNG and no output size). The list
 * keys and the phone tokens' issuer and phone keys are all these (proto/sign.h).
 *
 * mbedTLS 2.28 can write compressed points but not read them (ecp_point_read_binary
 * answers FEATURE_UNAVAILABLE): point_decompress() does it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "proto/error.h"
#include "proto/sign.h"

struct proto_key {
	mbedtls_pk_context pk;
	uint8_t id[PROTO_KEY_ID_LEN];
	int has_private;
	/* Only private keys carry an RNG: ECDSA signing needs randomness for blinding. */
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	int rng_ready;
};

#define KEYRING_MAX  16
#define KEY_FILE_MAX 8192

static int (*rng_test_fn)(void *, unsigned char *, size_t);
static void *rng_test_ctx;

void proto_sign_set_random_for_testing(int (*fn)(void *ctx, unsigned char *buf, size_t len),
                                       void *ctx)
{
	rng_test_fn = fn;
	rng_test_ctx = ctx;
}

/* An mbedTLS f_rng over a key: the test hook when set, else the key's own DRBG. */
static int key_random(void *key, unsigned char *buf, size_t len)
{
	if (rng_test_fn)
		return rng_test_fn(rng_test_ctx, buf, len);
	return mbedtls_ctr_drbg_random(&((struct proto_key *)key)->drbg, buf, len);
}

/*
 * One P-256 group for every signature and check. mbedtls_pk_sign and mbedtls_pk_verify
 * (2.28) copy the key's group into a temporary ECDSA context at each call, and the copy
 * recomputes the generator's comb table: 0.35 ms more per signature or check, which a
 * phone's tap at a gate pays three times. This group's table is computed once, on first
 * use under pthread_once; from then on mbedtls only reads it, from any thread.
 */
static mbedtls_ecp_group p256;
static int p256_ready;
static pthread_once_t p256_once = PTHREAD_ONCE_INIT;

static void p256_load(void)
{
	mbedtls_ecp_group_init(&p256);
	mbedtls_ecp_point r;
	mbedtls_mpi one;
	mbedtls_ecp_point_init(&r);
	mbedtls_mpi_init(&one);
	/* the first multiple of G computes the comb table and leaves it in the group */
	p256_ready = mbedtls_ecp_group_load(&p256, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
	             mbedtls_mpi_lset(&one, 1) == 0 &&
	             mbedtls_ecp_mul(&p256, &r, &one, &p256.G, NULL, NULL) == 0 && p256.T != NULL;
	mbedtls_ecp_point_free(&r);
	mbedtls_mpi_free(&one);
}

static const mbedtls_ecp_group *p256_group(void)
{
	return pthread_once(&p256_once, p256_load) == 0 && p256_ready ? &p256 : NULL;
}

struct proto_keyring {
	size_t n;
	struct proto_key *keys[KEYRING_MAX];
};

void proto_sha256(const uint8_t *data, size_t len, uint8_t out[PROTO_HASH_LEN])
{
	/* mbedtls_sha256_ret cannot fail for SHA-256 in 2.28 (no hardware back end). */
	(void)mbedtls_sha256_ret(data, len, out, 0);
}

static struct proto_key *key_alloc(void)
{
	struct proto_key *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	mbedtls_pk_init(&k->pk);
	mbedtls_entropy_init(&k->entropy);
	mbedtls_ctr_drbg_init(&k->drbg);
	return k;
}

void proto_key_free(struct proto_key *key)
{
	if (!key)
		return;
	mbedtls_pk_free(&key->pk);
	mbedtls_ctr_drbg_free(&key->drbg);
	mbedtls_entropy_free(&key->entropy);
	free(key);
}

static int key_rng_init(struct proto_key *k)
{
	static const char pers[] = "citypass-proto-sign";
	if (mbedtls_ctr_drbg_seed(&k->drbg, mbedtls_entropy_func, &k->entropy,
	                          (const unsigned char *)pers, sizeof(pers) - 1) != 0)
		return PROTO_ERR_CRYPTO;
	k->rng_ready = 1;
	return PROTO_OK;
}

/* Refuse anything but an EC key on P-256, then derive the key id. */
static int key_finish(struct proto_key *k)
{
	if (mbedtls_pk_get_type(&k->pk) != MBEDTLS_PK_ECKEY)
		return PROTO_ERR_KEY;
	const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(k->pk);
	if (ec->grp.id != MBEDTLS_ECP_DP_SECP256R1)
		return PROTO_ERR_KEY;
	k->has_private = mbedtls_mpi_cmp_int(&ec->d, 0) != 0;

	uint8_t der[160];
	int n = mbedtls_pk_write_pubkey_der(&k->pk, der, sizeof(der));
	if (n <= 0)
		return PROTO_ERR_KEY;
	/* mbedtls writes DER at the end of the buffer */
	uint8_t h[PROTO_HASH_LEN];
	proto_sha256(der + sizeof(der) - (size_t)n, (size_t)n, h);
	memcpy(k->id, h, PROTO_KEY_ID_LEN);
	if (k->has_private)
		return key_rng_init(k);
	return PROTO_OK;
}

int proto_key_generate(struct proto_key **out)
{
	struct proto_key *k = key_alloc();
	if (!k)
		return PROTO_ERR_NOMEM;
	int rc = key_rng_init(k);
	if (rc == 0 && mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0)
		rc = PROTO_ERR_CRYPTO;
	if (rc == 0 &&
	    mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk), key_random, k) != 0)
		rc = PROTO_ERR_CRYPTO;
	if (rc == 0)
		rc = key_finish(k);
	if (rc) {
		proto_key_free(k);
		return rc;
	}
	*out = k;
	return PROTO_OK;
}

int proto_key_load_private(struct proto_key **out, const char *path)
{
	struct proto_key *k = key_alloc();
	if (!k)
		return PROTO_ERR_NOMEM;
	int rc = mbedtls_pk_parse_keyfile(&k->pk, path, NULL) == 0 ? key_finish(k) : PROTO_ERR_KEY;
	if (rc == 0 && !k->has_private)
		rc = PROTO_ERR_KEY;
	if (rc) {
		proto_key_free(k);
		return rc;
	}
	*out = k;
	return PROTO_OK;
}

int proto_key_load_public(struct proto_key **out, const char *path)
{
	struct proto_key *k = key_alloc();
	if (!k)
		return PROTO_ERR_NOMEM;
	int rc = mbedtls_pk_parse_public_keyfile(&k->pk, path) == 0 ? key_finish(k) : PROTO_ERR_KEY;
	if (rc) {
		proto_key_free(k);
		return rc;
	}
	*out = k;
	return PROTO_OK;
}

int proto_key_parse_public(struct proto_key **out, const uint8_t *buf, size_t len)
{
	struct proto_key *k = key_alloc();
	if (!k)
		return PROTO_ERR_NOMEM;
	/* PEM input must be NUL-terminated and its length count the NUL (mbedtls rule). */
	uint8_t *copy = malloc(len + 1);
	int rc = PROTO_ERR_NOMEM;
	if (copy) {
		memcpy(copy, buf, len);
		copy[len] = 0;
		static const char pem_start[] = "-----BEGIN";
		int pem = len >= sizeof(pem_start) - 1 &&
		          memcmp(buf, pem_start, sizeof(pem_start) - 1) == 0;
		rc = mbedtls_pk_parse_public_key(&k->pk, copy, pem ? len + 1 : len) == 0
		             ? key_finish(k)
		             : PROTO_ERR_KEY;
		free(copy);
	}
	if (rc) {
		proto_key_free(k);
		return rc;
	}
	*out = k;
	return PROTO_OK;
}

int proto_key_parse(struct proto_key **out, const uint8_t *buf, size_t len)
{
	if (!out || !buf || len == 0 || len > KEY_FILE_MAX)
		return PROTO_ERR_ARG;
	/* PEM input must be NUL-terminated and its length count the NUL (mbedtls rule) */
	uint8_t *copy = malloc(len + 1);
	struct proto_key *k = key_alloc();
	if (!copy || !k) {
		free(copy);
		proto_key_free(k);
		return PROTO_ERR_NOMEM;
	}
	memcpy(copy, buf, len);
	copy[len] = 0;
	const size_t n = buf[0] == '-' ? len + 1 : len;
	int rc = mbedtls_pk_parse_key(&k->pk, copy, n, NULL, 0);
	if (rc != 0) {
		mbedtls_pk_free(&k->pk);
		mbedtls_pk_init(&k->pk);
		rc = mbedtls_pk_parse_public_key(&k->pk, copy, n);
	}
	mbedtls_platform_zeroize(copy, len + 1);
	free(copy);
	rc = rc == 0 ? key_finish(k) : PROTO_ERR_KEY;
	if (rc) {
		proto_key_free(k);
		return rc;
	}
	*out = k;
	return PROTO_OK;
}

int proto_key_load(struct proto_key **out, const char *path)
{
	if (!out || !path)
		return PROTO_ERR_ARG;
	FILE *f = fopen(path, "rb");
	if (!f)
		return PROTO_ERR_IO;
	uint8_t buf[KEY_FILE_MAX];
	size_t n = fread(buf, 1, sizeof(buf), f);
	int too_long = !feof(f);
	fclose(f);
	int rc = too_long || n == 0 ? PROTO_ERR_KEY : proto_key_parse(out, buf, n);
	mbedtls_platform_zeroize(buf, sizeof(buf));
	return rc;
}

/*
 * SEC1 2.3.4 for a compressed P-256 point: y = sqrt(x^3 - 3x + b) mod p, which is
 * (x^3 - 3x + b)^((p+1)/4) since p = 3 mod 4; then pick the root with the sign bit.
 */
static int point_decompress(const mbedtls_ecp_group *grp, const uint8_t in[33], uint8_t out[65])
{
	mbedtls_mpi x, y, t, e;
	int ok = 0;
	mbedtls_mpi_init(&x);
	mbedtls_mpi_init(&y);
	mbedtls_mpi_init(&t);
	mbedtls_mpi_init(&e);
	if (mbedtls_mpi_read_binary(&x, in + 1, 32) != 0 || mbedtls_mpi_cmp_mpi(&x, &grp->P) >= 0)
		goto done;
	/* t = x^3 - 3x + b mod p */
	if (mbedtls_mpi_mul_mpi(&t, &x, &x) != 0 || mbedtls_mpi_sub_int(&t, &t, 3) != 0 ||
	    mbedtls_mpi_mul_mpi(&t, &t, &x) != 0 || mbedtls_mpi_add_mpi(&t, &t, &grp->B) != 0 ||
	    mbedtls_mpi_mod_mpi(&t, &t, &grp->P) != 0)
		goto done;
	/* e = (p + 1) / 4; y = t^e mod p */
	if (mbedtls_mpi_add_int(&e, &grp->P, 1) != 0 || mbedtls_mpi_shift_r(&e, 2) != 0 ||
	    mbedtls_mpi_exp_mod(&y, &t, &e, &grp->P, NULL) != 0)
		goto done;
	/* a square root exists only for points on the curve */
	if (mbedtls_mpi_mul_mpi(&e, &y, &y) != 0 || mbedtls_mpi_mod_mpi(&e, &e, &grp->P) != 0 ||
	    mbedtls_mpi_cmp_mpi(&e, &t) != 0)
		goto done;
	if ((size_t)mbedtls_mpi_get_bit(&y, 0) != (size_t)(in[0] & 1) &&
	    mbedtls_mpi_sub_mpi(&y, &grp->P, &y) != 0)
		goto done;
	out[0] = 0x04;
	ok = mbedtls_mpi_write_binary(&x, out + 1, 32) == 0 &&
	     mbedtls_mpi_write_binary(&y, out + 33, 32) == 0;
done:
	mbedtls_mpi_free(&x);
	mbedtls_mpi_free(&y);
	mbedtls_mpi_free(&t);
	mbedtls_mpi_free(&e);
	return ok;
}

int proto_key_from_point(struct proto_key **out, const uint8_t *point, size_t len)
{
	if (!out || !point)
		return PROTO_ERR_ARG;
	if (!(len == 33 && (point[0] == 0x02 || point[0] == 0x03)) &&
	    !(len == 65 && point[0] == 0x04))
		return PROTO_ERR_KEY;
	struct proto_key *k = key_alloc();
	if (!k)
		return PROTO_ERR_NOMEM;
	int rc = PROTO_ERR_KEY;
	if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0) {
		rc = PROTO_ERR_NOMEM;
		goto fail;
	}
	mbedtls_ecp_keypair *ec = mbedtls_pk_ec(k->pk);
	if (mbedtls_ecp_group_load(&ec->grp, MBEDTLS_ECP_DP_SECP256R1) != 0) {
		rc = PROTO_ERR_CRYPTO;
		goto fail;
	}
	uint8_t full[65];
	if (len == 33 && !point_decompress(&ec->grp, point, full))
		goto fail;
	if (mbedtls_ecp_point_read_binary(&ec->grp, &ec->Q, len == 33 ? full : point, 65) != 0 ||
	    mbedtls_ecp_check_pubkey(&ec->grp, &ec->Q) != 0)
		goto fail;
	if ((rc = key_finish(k)) != PROTO_OK)
		goto fail;
	*out = k;
	return PROTO_OK;
fail:
	proto_key_free(k);
	return rc;
}

int proto_key_private_pem(const struct proto_key *key, char *buf, size_t cap)
{
	if (!key || !buf || !key->has_private)
		return PROTO_ERR_ARG;
	/* 2.28 takes a non-const context but does not modify it */
	if (mbedtls_pk_write_key_pem((mbedtls_pk_context *)&key->pk, (unsigned char *)buf, cap) !=
	    0)
		return PROTO_ERR_BUFSIZE;
	return PROTO_OK;
}

int proto_key_copy(struct proto_key **out, const struct proto_key *key)
{
	if (!out || !key)
		return PROTO_ERR_ARG;
	char pem[512];
	int rc = key->has_private ? proto_key_private_pem(key, pem, sizeof(pem))
	                          : proto_key_public_pem(key, pem, sizeof(pem));
	if (rc == PROTO_OK)
		rc = proto_key_parse(out, (const uint8_t *)pem, strlen(pem));
	mbedtls_platform_zeroize(pem, sizeof(pem));
	return rc;
}

int proto_key_point(const struct proto_key *key, uint8_t point[PROTO_POINT_LEN])
{
	if (!key || !point)
		return PROTO_ERR_ARG;
	const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(key->pk);
	size_t n = 0;
	if (mbedtls_ecp_point_write_binary(&ec->grp, &ec->Q, MBEDTLS_ECP_PF_COMPRESSED, &n, point,
	                                   PROTO_POINT_LEN) != 0 ||
	    n != PROTO_POINT_LEN)
		return PROTO_ERR_CRYPTO;
	return PROTO_OK;
}

int proto_key_same_public(const struct proto_key *a, const struct proto_key *b)
{
	return a && b &&
	       mbedtls_ecp_point_cmp(&mbedtls_pk_ec(a->pk)->Q, &mbedtls_pk_ec(b->pk)->Q) == 0;
}

static int write_new_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return PROTO_ERR_IO;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			unlink(path);
			return PROTO_ERR_IO;
		}
		off += (size_t)w;
	}
	/* A key that vanishes in a power cut after `init` said it was written is worse than
	 * a slow init. */
	if (fsync(fd) != 0 || close(fd) != 0) {
		unlink(path);
		return PROTO_ERR_IO;
	}
	return PROTO_OK;
}

int proto_key_write_private_pem(const struct proto_key *key, const char *path)
{
	if (!key->has_private)
		return PROTO_ERR_ARG;
	unsigned char pem[512];
	/* mbedtls_pk_write_key_pem takes a non-const context in 2.28 but does not modify it */
	if (mbedtls_pk_write_key_pem((mbedtls_pk_context *)&key->pk, pem, sizeof(pem)) != 0)
		return PROTO_ERR_CRYPTO;
	int rc = write_new_file(path, (const char *)pem, 0600);
	mbedtls_platform_zeroize(pem, sizeof(pem));
	return rc;
}

int proto_key_public_pem(const struct proto_key *key, char *buf, size_t cap)
{
	if (mbedtls_pk_write_pubkey_pem((mbedtls_pk_context *)&key->pk, (unsigned char *)buf,
	                                cap) != 0)
		return PROTO_ERR_BUFSIZE;
	return PROTO_OK;
}

int proto_key_write_public_pem(const struct proto_key *key, const char *path)
{
	char pem[512];
	int rc = proto_key_public_pem(key, pem, sizeof(pem));
	return rc ? rc : write_new_file(path, pem, 0644);
}

void proto_key_id(const struct proto_key *key, uint8_t id[PROTO_KEY_ID_LEN])
{
	memcpy(id, key->id, PROTO_KEY_ID_LEN);
}

int proto_key_is_private(const struct proto_key *key)
{
	return key->has_private;
}

int proto_sign_hash(const struct proto_key *key, const uint8_t hash[PROTO_HASH_LEN],
                    uint8_t sig[PROTO_SIG_MAX], size_t *sig_len)
{
	if (!key->has_private || !key->rng_ready)
		return PROTO_ERR_ARG;
	const mbedtls_ecp_group *grp = p256_group();
	if (!grp)
		return PROTO_ERR_CRYPTO;
	/* The DRBG state changes on every signature; the key is logically const. */
	struct proto_key *k = (struct proto_key *)key;
	const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(k->pk);
	mbedtls_mpi r, s;
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	/* RFC 6979 (what mbedtls_pk_sign does in 2.28), the RNG only for blinding; the
	 * group is only read (p256_group) */
	int rc = mbedtls_ecdsa_sign_det_ext((mbedtls_ecp_group *)grp, &r, &s, &ec->d, hash,
	                                    PROTO_HASH_LEN, MBEDTLS_MD_SHA256, key_random, k) == 0
	                 ? PROTO_OK
	                 : PROTO_ERR_CRYPTO;
	/* ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279), DER, written
	 * backwards from the end of tmp as mbedtls' asn1write does */
	uint8_t tmp[PROTO_SIG_MAX];
	unsigned char *p = tmp + sizeof(tmp);
	int len = 0, n;
	if (rc == 0 && (n = mbedtls_asn1_write_mpi(&p, tmp, &s)) > 0)
		len += n;
	else
		rc = PROTO_ERR_CRYPTO;
	if (rc == 0 && (n = mbedtls_asn1_write_mpi(&p, tmp, &r)) > 0)
		len += n;
	else
		rc = PROTO_ERR_CRYPTO;
	if (rc == 0 && (n = mbedtls_asn1_write_len(&p, tmp, (size_t)len)) > 0)
		len += n;
	else
		rc = PROTO_ERR_CRYPTO;
	if (rc == 0 && (n = mbedtls_asn1_write_tag(
	                        &p, tmp, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) > 0)
		len += n;
	else
		rc = PROTO_ERR_CRYPTO;
	mbedtls_mpi_free(&r);
	mbedtls_mpi_free(&s);
	if (rc != 0)
		return rc;
	memcpy(sig, p, (size_t)len);
	*sig_len = (size_t)len;
	return PROTO_OK;
}

int proto_sign(const struct proto_key *key, const uint8_t *data, size_t len,
               uint8_t sig[PROTO_SIG_MAX], size_t *sig_len)
{
	uint8_t h[PROTO_HASH_LEN];
	proto_sha256(data, len, h);
	return proto_sign_hash(key, h, sig, sig_len);
}

/* One INTEGER of an ECDSA-Sig-Value in minimal DER: positive, no needless leading zero,
 * at most 33 bytes for P-256. Returns the bytes it took, or 0. */
static size_t der_p256_integer(const uint8_t *p, size_t avail)
{
	if (avail < 3 || p[0] != 0x02)
		return 0;
	size_t n = p[1];
	if (n < 1 || n > 33 || n > avail - 2)
		return 0;
	const uint8_t *v = p + 2;
	if (v[0] & 0x80)
		return 0; /* negative */
	if (n > 1 && v[0] == 0x00 && !(v[1] & 0x80))
		return 0; /* leading zero that is not needed */
	return 2 + n;
}

/* A signature has exactly one valid encoding: only canonical DER goes to mbedtls_pk_verify
 * (proto/sign.h says why). */
int proto_sig_is_canonical(const uint8_t *sig, size_t len)
{
	if (!sig || len < PROTO_SIG_MIN || len > PROTO_SIG_MAX || sig[0] != 0x30 ||
	    sig[1] >= 0x80 || (size_t)sig[1] != len - 2)
		return 0;
	size_t r = der_p256_integer(sig + 2, len - 2);
	if (r == 0)
		return 0;
	size_t s = der_p256_integer(sig + 2 + r, len - 2 - r);
	return s != 0 && 2 + r + s == len;
}

int proto_verify_hash(const struct proto_key *key, const uint8_t hash[PROTO_HASH_LEN],
                      const uint8_t *sig, size_t sig_len)
{
	/* Only canonical DER is checked: a signature has one encoding (proto/sign.h), and
	 * anything after it is a refusal. */
	if (!proto_sig_is_canonical(sig, sig_len))
		return PROTO_ERR_LIST_SIGNATURE;
	const mbedtls_ecp_group *grp = p256_group();
	if (!grp)
		return PROTO_ERR_CRYPTO;
	const size_t r_len = der_p256_integer(sig + 2, sig_len - 2);
	const uint8_t *r_at = sig + 4, *s_at = sig + 2 + r_len + 2;
	mbedtls_mpi r, s;
	mbedtls_mpi_init(&r);
	mbedtls_mpi_init(&s);
	/* mbedtls_ecdsa_verify refuses r or s outside [1, n-1] itself */
	int ok = mbedtls_mpi_read_binary(&r, r_at, r_len - 2) == 0 &&
	         mbedtls_mpi_read_binary(&s, s_at, sig[2 + r_len + 1]) == 0 &&
	         mbedtls_ecdsa_verify((mbedtls_ecp_group *)grp, hash, PROTO_HASH_LEN,
	                              &mbedtls_pk_ec(key->pk)->Q, &r, &s) == 0;
	mbedtls_mpi_free(&r);
	mbedtls_mpi_free(&s);
	return ok ? PROTO_OK : PROTO_ERR_LIST_SIGNATURE;
}

int proto_verify(const struct proto_key *key, const uint8_t *data, size_t len, const uint8_t *sig,
                 size_t sig_len)
{
	uint8_t h[PROTO_HASH_LEN];
	proto_sha256(data, len, h);
	return proto_verify_hash(key, h, sig, sig_len);
}

struct proto_keyring *proto_keyring_new(void)
{
	return calloc(1, sizeof(struct proto_keyring));
}

int proto_keyring_add(struct proto_keyring *ring, const struct proto_key *key)
{
	if (!ring || !key || ring->n == KEYRING_MAX || proto_keyring_find(ring, key->id))
		return PROTO_ERR_ARG;
	/* the public half only: a verifier never needs the private one */
	uint8_t der[160];
	int n = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&key->pk, der, sizeof(der));
	if (n <= 0)
		return PROTO_ERR_KEY;
	struct proto_key *pub = NULL;
	int rc = proto_key_parse_public(&pub, der + sizeof(der) - (size_t)n, (size_t)n);
	if (rc)
		return rc;
	ring->keys[ring->n++] = pub;
	return PROTO_OK;
}

const struct proto_key *proto_keyring_find(const struct proto_keyring *ring,
                                           const uint8_t id[PROTO_KEY_ID_LEN])
{
	for (size_t i = 0; ring && i < ring->n; i++)
		if (memcmp(ring->keys[i]->id, id, PROTO_KEY_ID_LEN) == 0)
			return ring->keys[i];
	return NULL;
}

void proto_keyring_free(struct proto_keyring *ring)
{
	if (!ring)
		return;
	for (size_t i = 0; i < ring->n; i++)
		proto_key_free(ring->keys[i]);
	free(ring);
}
