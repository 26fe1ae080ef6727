/*
 * desfire_crypto.c — DESFire card-side cryptography on top of mbedTLS 2.28 block ciphers.
 * See desfire_crypto.h for what each function is and which document it follows.
 */
#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/des.h>
#include <mbedtls/platform_util.h>

#include "desfire_crypto.h"

/* ---- AES-128 -------------------------------------------------------------------------- */

int hil_df_aes_ecb_encrypt(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
	mbedtls_aes_context ctx;
	mbedtls_aes_init(&ctx);
	int rc = mbedtls_aes_setkey_enc(&ctx, key, 128);
	if (rc == 0)
		rc = mbedtls_aes_crypt_ecb(&ctx, MBEDTLS_AES_ENCRYPT, in, out);
	mbedtls_aes_free(&ctx);
	return rc;
}

static int aes_cbc(const uint8_t key[16], int mode, uint8_t iv[16], const uint8_t *in, uint8_t *out,
                   size_t len)
{
	if (len % HIL_DF_AES_BLOCK)
		return MBEDTLS_ERR_AES_INVALID_INPUT_LENGTH;
	if (len == 0)
		return 0;
	mbedtls_aes_context ctx;
	mbedtls_aes_init(&ctx);
	int rc = mode == MBEDTLS_AES_ENCRYPT ? mbedtls_aes_setkey_enc(&ctx, key, 128)
	                                     : mbedtls_aes_setkey_dec(&ctx, key, 128);
	/* mbedtls_aes_crypt_cbc leaves the last ciphertext block in iv, in both directions */
	if (rc == 0)
		rc = mbedtls_aes_crypt_cbc(&ctx, mode, len, iv, in, out);
	mbedtls_aes_free(&ctx);
	return rc;
}

int hil_df_aes_cbc_encrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                           size_t len)
{
	return aes_cbc(key, MBEDTLS_AES_ENCRYPT, iv, in, out, len);
}

int hil_df_aes_cbc_decrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                           size_t len)
{
	return aes_cbc(key, MBEDTLS_AES_DECRYPT, iv, in, out, len);
}

/* Doubling in GF(2^128) for the CMAC subkeys (SP 800-38B §6.1). */
static void cmac_double(const uint8_t in[16], uint8_t out[16])
{
	const uint8_t carry = in[0] & 0x80;
	for (int i = 0; i < 15; i++)
		out[i] = (uint8_t)((in[i] << 1) | (in[i + 1] >> 7));
	out[15] = (uint8_t)(in[15] << 1);
	if (carry)
		out[15] ^= 0x87;
}

/* CMAC over the concatenation a || b, without copying either. */
static int aes_cmac2(const uint8_t key[16], uint8_t iv[16], const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen)
{
	mbedtls_aes_context ctx;
	uint8_t l[16] = {0}, k1[16], k2[16], block[16];
	size_t fill = 0;
	const size_t total = alen + blen;
	mbedtls_aes_init(&ctx);
	int rc = mbedtls_aes_setkey_enc(&ctx, key, 128);
	if (rc == 0)
		rc = mbedtls_aes_crypt_ecb(&ctx, MBEDTLS_AES_ENCRYPT, l, l);
	if (rc != 0)
		goto out;
	cmac_double(l, k1);
	cmac_double(k1, k2);

	/* Every complete block but the last goes straight through the CBC chain; the last
	 * (complete or not) waits in `block` for its subkey. */
	for (size_t i = 0; i < total; i++) {
		if (fill == 16) {
			for (int j = 0; j < 16; j++)
				iv[j] ^= block[j];
			rc = mbedtls_aes_crypt_ecb(&ctx, MBEDTLS_AES_ENCRYPT, iv, iv);
			if (rc != 0)
				goto out;
			fill = 0;
		}
		block[fill++] = i < alen ? a[i] : b[i - alen];
	}
	if (fill == 16) {
		for (int j = 0; j < 16; j++)
			block[j] ^= k1[j];
	} else {
		block[fill++] = 0x80;
		while (fill < 16)
			block[fill++] = 0x00;
		for (int j = 0; j < 16; j++)
			block[j] ^= k2[j];
	}
	for (int j = 0; j < 16; j++)
		iv[j] ^= block[j];
	rc = mbedtls_aes_crypt_ecb(&ctx, MBEDTLS_AES_ENCRYPT, iv, iv);
out:
	mbedtls_platform_zeroize(l, sizeof(l));
	mbedtls_platform_zeroize(k1, sizeof(k1));
	mbedtls_platform_zeroize(k2, sizeof(k2));
	mbedtls_aes_free(&ctx);
	return rc;
}

int hil_df_aes_cmac(const uint8_t key[16], uint8_t iv[16], const uint8_t *msg, size_t len)
{
	return aes_cmac2(key, iv, msg, len, NULL, 0);
}

/* ---- 2K3DES --------------------------------------------------------------------------- */

int hil_df_des3_block(const uint8_t key[16], int encrypt, const uint8_t in[8], uint8_t out[8])
{
	mbedtls_des3_context ctx;
	mbedtls_des3_init(&ctx);
	int rc =
	        encrypt ? mbedtls_des3_set2key_enc(&ctx, key) : mbedtls_des3_set2key_dec(&ctx, key);
	if (rc == 0)
		rc = mbedtls_des3_crypt_ecb(&ctx, in, out);
	mbedtls_des3_free(&ctx);
	return rc;
}

int hil_df_legacy_encrypt(const uint8_t key[16], uint8_t *buf, size_t len)
{
	uint8_t prev[8] = {0};
	if (len % HIL_DF_DES_BLOCK)
		return MBEDTLS_ERR_DES_INVALID_INPUT_LENGTH;
	for (size_t off = 0; off < len; off += 8) {
		for (int i = 0; i < 8; i++)
			buf[off + i] ^= prev[i];
		int rc = hil_df_des3_block(key, 1, buf + off, buf + off);
		if (rc != 0)
			return rc;
		memcpy(prev, buf + off, 8);
	}
	return 0;
}

int hil_df_legacy_receive(const uint8_t key[16], uint8_t *buf, size_t len)
{
	/* The reader computed c[i] = D(p[i] ^ c[i-1]); so p[i] = E(c[i]) ^ c[i-1]. */
	uint8_t prev[8] = {0}, cur[8];
	if (len % HIL_DF_DES_BLOCK)
		return MBEDTLS_ERR_DES_INVALID_INPUT_LENGTH;
	for (size_t off = 0; off < len; off += 8) {
		memcpy(cur, buf + off, 8);
		int rc = hil_df_des3_block(key, 1, buf + off, buf + off);
		if (rc != 0)
			return rc;
		for (int i = 0; i < 8; i++)
			buf[off + i] ^= prev[i];
		memcpy(prev, cur, 8);
	}
	return 0;
}

/* ---- checksums ------------------------------------------------------------------------ */

uint32_t hil_df_crc32(const uint8_t *data, size_t len)
{
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < len; i++) {
		crc ^= data[i];
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
	}
	return crc;
}

void hil_df_crc32_le(const uint8_t *data, size_t len, uint8_t out[4])
{
	const uint32_t crc = hil_df_crc32(data, len);
	out[0] = (uint8_t)crc;
	out[1] = (uint8_t)(crc >> 8);
	out[2] = (uint8_t)(crc >> 16);
	out[3] = (uint8_t)(crc >> 24);
}

uint16_t hil_df_crc16(const uint8_t *data, size_t len)
{
	uint16_t crc = 0x6363;
	for (size_t i = 0; i < len; i++) {
		crc ^= data[i];
		for (int bit = 0; bit < 8; bit++)
			crc = (uint16_t)((crc >> 1) ^ (0x8408u & (0u - (crc & 1u))));
	}
	return crc;
}

/* ---- authentication helpers ----------------------------------------------------------- */

void hil_df_rotate_left(const uint8_t *in, uint8_t *out, size_t len)
{
	const uint8_t first = in[0];
	memmove(out, in + 1, len - 1);
	out[len - 1] = first;
}

void hil_df_ev1_session_key(const uint8_t rnd_a[16], const uint8_t rnd_b[16], uint8_t out[16])
{
	memcpy(out, rnd_a, 4);
	memcpy(out + 4, rnd_b, 4);
	memcpy(out + 8, rnd_a + 12, 4);
	memcpy(out + 12, rnd_b + 12, 4);
}

void hil_df_legacy_session_key(const uint8_t rnd_a[8], const uint8_t rnd_b[8], int single_des,
                               uint8_t out[16])
{
	memcpy(out, rnd_a, 4);
	memcpy(out + 4, rnd_b, 4);
	if (single_des) {
		memcpy(out + 8, out, 8);
	} else {
		memcpy(out + 8, rnd_a + 4, 4);
		memcpy(out + 12, rnd_b + 4, 4);
	}
}

int hil_df_des_key_is_single(const uint8_t key[16])
{
	for (int i = 0; i < 8; i++)
		if ((key[i] ^ key[i + 8]) & 0xFE)
			return 0;
	return 1;
}

void hil_df_ev2_session_vector(int mac, const uint8_t rnd_a[16], const uint8_t rnd_b[16],
                               uint8_t sv[32])
{
	/* The spec numbers bytes most significant first: RndA[15..14] are rnd_a[0..1]. */
	sv[0] = mac ? 0x5A : 0xA5;
	sv[1] = mac ? 0xA5 : 0x5A;
	sv[2] = 0x00;
	sv[3] = 0x01;
	sv[4] = 0x00;
	sv[5] = 0x80;
	memcpy(sv + 6, rnd_a, 2);
	for (int i = 0; i < 6; i++)
		sv[8 + i] = rnd_a[2 + i] ^ rnd_b[i];
	memcpy(sv + 14, rnd_b + 6, 10);
	memcpy(sv + 24, rnd_a + 8, 8);
}

int hil_df_ev2_session_keys(const uint8_t key[16], const uint8_t rnd_a[16], const uint8_t rnd_b[16],
                            uint8_t enc[16], uint8_t mac[16])
{
	uint8_t sv[32];
	hil_df_ev2_session_vector(0, rnd_a, rnd_b, sv);
	memset(enc, 0, 16);
	int rc = hil_df_aes_cmac(key, enc, sv, sizeof(sv));
	if (rc == 0) {
		hil_df_ev2_session_vector(1, rnd_a, rnd_b, sv);
		memset(mac, 0, 16);
		rc = hil_df_aes_cmac(key, mac, sv, sizeof(sv));
	}
	mbedtls_platform_zeroize(sv, sizeof(sv));
	return rc;
}

/* ---- EV2 secure messaging ------------------------------------------------------------- */

int hil_df_ev2_iv(const uint8_t enc_key[16], int response, const uint8_t ti[4], uint16_t ctr,
                  uint8_t iv[16])
{
	uint8_t in[16] = {0};
	in[0] = response ? 0x5A : 0xA5;
	in[1] = response ? 0xA5 : 0x5A;
	memcpy(in + 2, ti, 4);
	in[6] = (uint8_t)ctr;
	in[7] = (uint8_t)(ctr >> 8);
	return hil_df_aes_ecb_encrypt(enc_key, in, iv);
}

void hil_df_ev2_truncate(const uint8_t mac[16], uint8_t mact[8])
{
	for (int i = 0; i < 8; i++)
		mact[i] = mac[2 * i + 1];
}

int hil_df_ev2_mact(const uint8_t mac_key[16], uint8_t first, uint16_t ctr, const uint8_t ti[4],
                    const uint8_t *data, size_t len, uint8_t mact[8])
{
	uint8_t head[7], mac[16] = {0};
	head[0] = first;
	head[1] = (uint8_t)ctr;
	head[2] = (uint8_t)(ctr >> 8);
	memcpy(head + 3, ti, 4);
	int rc = aes_cmac2(mac_key, mac, head, sizeof(head), data, len);
	if (rc == 0)
		hil_df_ev2_truncate(mac, mact);
	return rc;
}

int hil_df_memcmp_ct(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint8_t diff = 0;
	for (size_t i = 0; i < len; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff != 0;
}

/* ---- any key type --------------------------------------------------------------------- */

size_t hil_df_cipher_block(enum hil_df_cipher cipher)
{
	return cipher == HIL_DF_CIPHER_AES ? HIL_DF_AES_BLOCK : HIL_DF_DES_BLOCK;
}

size_t hil_df_cipher_key_len(enum hil_df_cipher cipher)
{
	return cipher == HIL_DF_CIPHER_3K3DES ? 24 : 16;
}

/* One block in ECB. */
static int cipher_block(enum hil_df_cipher cipher, const uint8_t *key, int encrypt,
                        const uint8_t *in, uint8_t *out)
{
	if (cipher == HIL_DF_CIPHER_AES) {
		mbedtls_aes_context ctx;
		mbedtls_aes_init(&ctx);
		int rc = encrypt ? mbedtls_aes_setkey_enc(&ctx, key, 128)
		                 : mbedtls_aes_setkey_dec(&ctx, key, 128);
		if (rc == 0)
			rc = mbedtls_aes_crypt_ecb(
			        &ctx, encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT, in, out);
		mbedtls_aes_free(&ctx);
		return rc;
	}
	mbedtls_des3_context ctx;
	mbedtls_des3_init(&ctx);
	int rc;
	if (cipher == HIL_DF_CIPHER_3K3DES)
		rc = encrypt ? mbedtls_des3_set3key_enc(&ctx, key)
		             : mbedtls_des3_set3key_dec(&ctx, key);
	else
		rc = encrypt ? mbedtls_des3_set2key_enc(&ctx, key)
		             : mbedtls_des3_set2key_dec(&ctx, key);
	if (rc == 0)
		rc = mbedtls_des3_crypt_ecb(&ctx, in, out);
	mbedtls_des3_free(&ctx);
	return rc;
}

int hil_df_cbc_encrypt(enum hil_df_cipher cipher, const uint8_t *key, uint8_t *iv,
                       const uint8_t *in, uint8_t *out, size_t len)
{
	const size_t bs = hil_df_cipher_block(cipher);
	uint8_t x[16];
	if (len % bs)
		return MBEDTLS_ERR_DES_INVALID_INPUT_LENGTH;
	for (size_t off = 0; off < len; off += bs) {
		for (size_t i = 0; i < bs; i++)
			x[i] = in[off + i] ^ iv[i];
		int rc = cipher_block(cipher, key, 1, x, out + off);
		if (rc)
			return rc;
		memcpy(iv, out + off, bs);
	}
	return 0;
}

int hil_df_cbc_decrypt(enum hil_df_cipher cipher, const uint8_t *key, uint8_t *iv,
                       const uint8_t *in, uint8_t *out, size_t len)
{
	const size_t bs = hil_df_cipher_block(cipher);
	uint8_t c[16], p[16];
	if (len % bs)
		return MBEDTLS_ERR_DES_INVALID_INPUT_LENGTH;
	for (size_t off = 0; off < len; off += bs) {
		memcpy(c, in + off, bs);
		int rc = cipher_block(cipher, key, 0, c, p);
		if (rc)
			return rc;
		for (size_t i = 0; i < bs; i++)
			out[off + i] = p[i] ^ iv[i];
		memcpy(iv, c, bs);
	}
	return 0;
}

/* SP 800-38B §6.1: shift left by one bit, XOR Rb when the top bit fell out. */
static void gf_double(const uint8_t *in, uint8_t *out, size_t bs)
{
	const uint8_t carry = in[0] & 0x80;
	for (size_t i = 0; i + 1 < bs; i++)
		out[i] = (uint8_t)((in[i] << 1) | (in[i + 1] >> 7));
	out[bs - 1] = (uint8_t)(in[bs - 1] << 1);
	if (carry)
		out[bs - 1] ^= bs == 8 ? 0x1B : 0x87;
}

int hil_df_cmac(enum hil_df_cipher cipher, const uint8_t *key, uint8_t *iv, const uint8_t *msg,
                size_t len)
{
	if (cipher == HIL_DF_CIPHER_AES)
		return hil_df_aes_cmac(key, iv, msg, len);
	const size_t bs = HIL_DF_DES_BLOCK;
	uint8_t l[8] = {0}, k1[8], k2[8], block[8];
	int rc = cipher_block(cipher, key, 1, l, l);
	if (rc)
		return rc;
	gf_double(l, k1, bs);
	gf_double(k1, k2, bs);
	const size_t nblocks = len == 0 ? 1 : (len + bs - 1) / bs;
	for (size_t b = 0; b < nblocks && rc == 0; b++) {
		const size_t off = b * bs, take = len - off < bs ? len - off : bs;
		memset(block, 0, bs);
		if (take)
			memcpy(block, msg + off, take);
		if (b == nblocks - 1) {
			if (take < bs)
				block[take] = 0x80;
			for (size_t i = 0; i < bs; i++)
				block[i] ^= take == bs ? k1[i] : k2[i];
		}
		for (size_t i = 0; i < bs; i++)
			iv[i] ^= block[i];
		rc = cipher_block(cipher, key, 1, iv, iv);
	}
	mbedtls_platform_zeroize(l, sizeof(l));
	mbedtls_platform_zeroize(k1, sizeof(k1));
	mbedtls_platform_zeroize(k2, sizeof(k2));
	return rc;
}

int hil_df_legacy_mac(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t mac[4])
{
	uint8_t iv[8] = {0}, block[8];
	const size_t n = len == 0 ? 8 : (len + 7) / 8 * 8;
	for (size_t off = 0; off < n; off += 8) {
		memset(block, 0, 8);
		if (off < len)
			memcpy(block, data + off, len - off < 8 ? len - off : 8);
		for (int i = 0; i < 8; i++)
			iv[i] ^= block[i];
		int rc = hil_df_des3_block(key, 1, iv, iv);
		if (rc)
			return rc;
	}
	memcpy(mac, iv, 4);
	return 0;
}

void hil_df_3k3des_session_key(const uint8_t rnd_a[16], const uint8_t rnd_b[16], uint8_t out[24])
{
	memcpy(out, rnd_a, 4);
	memcpy(out + 4, rnd_b, 4);
	memcpy(out + 8, rnd_a + 6, 4);
	memcpy(out + 12, rnd_b + 6, 4);
	memcpy(out + 16, rnd_a + 12, 4);
	memcpy(out + 20, rnd_b + 12, 4);
}

uint8_t hil_df_des_key_version(const uint8_t *key)
{
	uint8_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint8_t)((key[i] & 1) << (7 - i));
	return v;
}
