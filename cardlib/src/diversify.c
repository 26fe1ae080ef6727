/*
 * NXP AN10922 s.2.2 AES-128 key diversification on mbedTLS 2.28's AES-CMAC.
 *
 * AN10922 always MACs 32 bytes: the padded input's last block is masked with K2, a full
 * 32-byte input's with K1. mbedTLS's CMAC of a 32-byte (block-aligned) message masks the
 * last block with K1, so a padded input is handed to it with its last block pre-masked by
 * K1 ^ K2: the two K1 cancel and K2 remains. K1 and K2 come from RFC 4493 s.2.3.
 */
#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/cipher.h>
#include <mbedtls/cmac.h>
#include <mbedtls/platform_util.h>

#include "cardlib/diversify.h"
#include "cardlib/error.h"

#define BLOCK 16
/* AN10922 s.2.2: the diversification constant of an AES-128 key */
#define AN10922_DIV_AES128 0x01

int cardlib_diversify_aes_cmac(const uint8_t key[CARDLIB_AN10922_KEY_LEN], const uint8_t *msg,
                               size_t len, uint8_t mac[16])
{
	if (!key || (!msg && len) || !mac)
		return CARDLIB_ERR_ARG;
	const mbedtls_cipher_info_t *info =
	        mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_ECB);
	if (!info)
		return CARDLIB_ERR_CRYPTO;
	if (mbedtls_cipher_cmac(info, key, 128, msg, len, mac) != 0)
		return CARDLIB_ERR_CRYPTO;
	return 0;
}

/* RFC 4493 s.2.3: doubling in GF(2^128) */
static void gf128_double(const uint8_t in[BLOCK], uint8_t out[BLOCK])
{
	uint8_t carry = 0;
	for (int i = BLOCK - 1; i >= 0; i--) {
		uint8_t b = in[i];
		out[i] = (uint8_t)((b << 1) | carry);
		carry = (uint8_t)(b >> 7);
	}
	if (carry)
		out[BLOCK - 1] ^= 0x87;
}

/* k1_xor_k2 = K1 ^ K2 of `key` (RFC 4493 s.2.3) */
static int cmac_subkeys_xor(const uint8_t key[CARDLIB_AN10922_KEY_LEN], uint8_t k1_xor_k2[BLOCK])
{
	static const uint8_t zero[BLOCK];
	uint8_t l[BLOCK], k1[BLOCK], k2[BLOCK];
	mbedtls_aes_context aes;
	mbedtls_aes_init(&aes);
	int rc = mbedtls_aes_setkey_enc(&aes, key, 128);
	if (rc == 0)
		rc = mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, zero, l);
	mbedtls_aes_free(&aes);
	if (rc == 0) {
		gf128_double(l, k1);
		gf128_double(k1, k2);
		for (int i = 0; i < BLOCK; i++)
			k1_xor_k2[i] = k1[i] ^ k2[i];
	}
	mbedtls_platform_zeroize(l, sizeof(l));
	mbedtls_platform_zeroize(k1, sizeof(k1));
	mbedtls_platform_zeroize(k2, sizeof(k2));
	return rc == 0 ? 0 : CARDLIB_ERR_CRYPTO;
}

int cardlib_an10922_aes128(const uint8_t master[CARDLIB_AN10922_KEY_LEN], const uint8_t *m,
                           size_t m_len, uint8_t out[CARDLIB_AN10922_KEY_LEN])
{
	if (!master || !m || !out || m_len == 0 || m_len > CARDLIB_AN10922_M_MAX)
		return CARDLIB_ERR_ARG;
	uint8_t d[2 * BLOCK] = {0};
	d[0] = AN10922_DIV_AES128;
	memcpy(d + 1, m, m_len);
	size_t d_len = 1 + m_len;
	int rc = 0;
	if (d_len < sizeof(d)) {
		uint8_t mask[BLOCK];
		d[d_len] = 0x80;
		rc = cmac_subkeys_xor(master, mask);
		for (int i = 0; i < BLOCK; i++)
			d[BLOCK + i] ^= mask[i];
		mbedtls_platform_zeroize(mask, sizeof(mask));
	}
	if (rc == 0)
		rc = cardlib_diversify_aes_cmac(master, d, sizeof(d), out);
	mbedtls_platform_zeroize(d, sizeof(d));
	return rc;
}

int cardlib_diversify_card_key(const uint8_t master[CARDLIB_AN10922_KEY_LEN], const uint8_t *uid,
                               size_t uid_len, uint32_t aid, const uint8_t *sys_id,
                               size_t sys_id_len, uint8_t out[CARDLIB_AN10922_KEY_LEN])
{
	if (!uid || uid_len == 0 || (!sys_id && sys_id_len) || aid > 0xFFFFFFu ||
	    uid_len + 3 + sys_id_len > CARDLIB_AN10922_M_MAX)
		return CARDLIB_ERR_ARG;
	uint8_t m[CARDLIB_AN10922_M_MAX];
	size_t n = 0;
	memcpy(m, uid, uid_len);
	n += uid_len;
	m[n++] = (uint8_t)aid;
	m[n++] = (uint8_t)(aid >> 8);
	m[n++] = (uint8_t)(aid >> 16);
	if (sys_id_len)
		memcpy(m + n, sys_id, sys_id_len);
	n += sys_id_len;
	int rc = cardlib_an10922_aes128(master, m, n, out);
	mbedtls_platform_zeroize(m, sizeof(m));
	return rc;
}
