/*
 * desfire_sm.c — DESFire secure messaging, reader side: AES-128 authentication (EV1
 * AuthenticateAES and EV2 AuthenticateEV2First) and the protection of every command and
 * answer of a session.
 *
 * Sources (public): NXP AN12196 rev 2.0 (NTAG 424 DNA, whose EV2 secure messaging is DESFire
 * EV2's: §5.6/§5.10 EV2First and SV1/SV2, §5.8 CommMode.Full, §5.16 ChangeKey, §6.3
 * GetCardUID), AN12343 (DESFire Light, same scheme), NT4H2421Gx §9.1 (MACt, IVs, ISO/IEC
 * 9797-1 padding method 2, CmdCtr), and for EV1 the behaviour libfreefare 0.4.0 documents in
 * its mifare_desfire_crypto.c comments (one running IV, CMAC over every command and answer,
 * CRC32 + zero padding for enciphered data). RFC 4493 for CMAC.
 *
 * DES keys (the factory PICC master key and whatever a card comes back with): legacy
 * Authenticate (0A) and its native secure messaging (CRC_A of ISO/IEC 14443-3 after
 * enciphered data, the reader's "send mode" c[i] = D(p[i] XOR c[i-1]) from a zero IV, as
 * libfreefare 0.4.0 and the public transcripts cited in test_cardlib_des.c do it), and
 * AuthenticateISO (1A) with DES, 2K3DES and 3K3DES keys, after which EV1 secure messaging
 * runs on 8-byte blocks (NIST SP 800-38B CMAC with Rb = 1B, SP 800-67 TDEA).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/aes.h>
#include <mbedtls/des.h>
#include <mbedtls/platform_util.h>

#include "cardlib/error.h"
#include "desfire_internal.h"

/* ---- randomness ----------------------------------------------------------------------- */

static cardlib_desfire_random_fn random_fill;
static void *random_ctx;

void cardlib_desfire_set_random(cardlib_desfire_random_fn fill, void *ctx)
{
	random_fill = fill;
	random_ctx = ctx;
}

static int fill_random(uint8_t *buf, size_t len)
{
	if (random_fill)
		return random_fill(random_ctx, buf, len) == 0 ? 0 : CARDLIB_ERR_CRYPTO;
	size_t got = 0;
	while (got < len) {
		const ssize_t n = getrandom(buf + got, len - got, 0);
		if (n <= 0)
			return CARDLIB_ERR_CRYPTO;
		got += (size_t)n;
	}
	return 0;
}

/* ---- primitives ----------------------------------------------------------------------- */

static int aes_ecb_encrypt(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
	mbedtls_aes_context aes;
	mbedtls_aes_init(&aes);
	int rc = mbedtls_aes_setkey_enc(&aes, key, 128);
	if (rc == 0)
		rc = mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, in, out);
	mbedtls_aes_free(&aes);
	return rc == 0 ? 0 : CARDLIB_ERR_CRYPTO;
}

static int aes_cbc(int encrypt, const uint8_t key[16], uint8_t iv[16], const uint8_t *in,
                   uint8_t *out, size_t len)
{
	if (len % 16)
		return CARDLIB_ERR_ARG;
	if (len == 0)
		return 0;
	mbedtls_aes_context aes;
	mbedtls_aes_init(&aes);
	int rc = encrypt ? mbedtls_aes_setkey_enc(&aes, key, 128)
	                 : mbedtls_aes_setkey_dec(&aes, key, 128);
	if (rc == 0)
		rc = mbedtls_aes_crypt_cbc(&aes,
		                           encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT, len,
		                           iv, in, out);
	mbedtls_aes_free(&aes);
	return rc == 0 ? 0 : CARDLIB_ERR_CRYPTO;
}

int desfire_cbc_encrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                        size_t len)
{
	return aes_cbc(1, key, iv, in, out, len);
}

int desfire_cbc_decrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                        size_t len)
{
	return aes_cbc(0, key, iv, in, out, len);
}

/* RFC 4493 §2.3: doubling in GF(2^128). */
static void cmac_double(const uint8_t in[16], uint8_t out[16])
{
	const uint8_t carry = in[0] & 0x80;
	for (int i = 0; i < 15; i++)
		out[i] = (uint8_t)((in[i] << 1) | (in[i + 1] >> 7));
	out[15] = (uint8_t)(in[15] << 1);
	if (carry)
		out[15] ^= 0x87;
}

/* EV1 chains CMACs through the session IV (libfreefare's cmac()), so mbedTLS's CMAC, which
 * always starts from zero, does not fit; with iv == NULL this is RFC 4493's AES-CMAC. */
int desfire_cmac(const uint8_t key[16], const uint8_t *iv, const uint8_t *msg, size_t len,
                 uint8_t mac[16])
{
	uint8_t l[16], k1[16], k2[16], x[16], block[16];
	static const uint8_t zero[16];
	int rc = aes_ecb_encrypt(key, zero, l);
	if (rc)
		return rc;
	cmac_double(l, k1);
	cmac_double(k1, k2);
	memcpy(x, iv ? iv : zero, 16);

	mbedtls_aes_context aes;
	mbedtls_aes_init(&aes);
	if (mbedtls_aes_setkey_enc(&aes, key, 128) != 0) {
		mbedtls_aes_free(&aes);
		return CARDLIB_ERR_CRYPTO;
	}
	const size_t nblocks = len == 0 ? 1 : (len + 15) / 16;
	for (size_t b = 0; b < nblocks && rc == 0; b++) {
		const size_t off = b * 16;
		const size_t take = len - off < 16 ? len - off : 16;
		memset(block, 0, 16);
		if (take)
			memcpy(block, msg + off, take);
		if (b == nblocks - 1) {
			if (take == 16) {
				for (int i = 0; i < 16; i++)
					block[i] ^= k1[i];
			} else {
				block[take] = 0x80;
				for (int i = 0; i < 16; i++)
					block[i] ^= k2[i];
			}
		}
		for (int i = 0; i < 16; i++)
			x[i] ^= block[i];
		if (mbedtls_aes_crypt_ecb(&aes, MBEDTLS_AES_ENCRYPT, x, x) != 0)
			rc = CARDLIB_ERR_CRYPTO;
	}
	mbedtls_aes_free(&aes);
	if (rc == 0)
		memcpy(mac, x, 16);
	mbedtls_platform_zeroize(l, sizeof(l));
	mbedtls_platform_zeroize(k1, sizeof(k1));
	mbedtls_platform_zeroize(k2, sizeof(k2));
	return rc;
}

void desfire_crc32(const uint8_t *data, size_t len, uint8_t out[4])
{
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < len; i++) {
		crc ^= data[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ ((crc & 1u) ? 0xEDB88320u : 0u);
	}
	out[0] = (uint8_t)crc;
	out[1] = (uint8_t)(crc >> 8);
	out[2] = (uint8_t)(crc >> 16);
	out[3] = (uint8_t)(crc >> 24);
}

void desfire_mact(const uint8_t cmac[16], uint8_t mact[8])
{
	for (int i = 0; i < 8; i++)
		mact[i] = cmac[2 * i + 1];
}

/* ---- any cipher ----------------------------------------------------------------------- */

size_t desfire_cipher_block(enum desfire_cipher cipher)
{
	return cipher == DESFIRE_CIPHER_AES ? 16 : 8;
}

int desfire_cipher_ecb(enum desfire_cipher cipher, const uint8_t *key, int encrypt,
                       const uint8_t *in, uint8_t *out)
{
	int rc;
	if (cipher == DESFIRE_CIPHER_AES) {
		mbedtls_aes_context aes;
		mbedtls_aes_init(&aes);
		rc = encrypt ? mbedtls_aes_setkey_enc(&aes, key, 128)
		             : mbedtls_aes_setkey_dec(&aes, key, 128);
		if (rc == 0)
			rc = mbedtls_aes_crypt_ecb(
			        &aes, encrypt ? MBEDTLS_AES_ENCRYPT : MBEDTLS_AES_DECRYPT, in, out);
		mbedtls_aes_free(&aes);
		return rc == 0 ? 0 : CARDLIB_ERR_CRYPTO;
	}
	mbedtls_des3_context des;
	mbedtls_des3_init(&des);
	if (cipher == DESFIRE_CIPHER_3K3DES)
		rc = encrypt ? mbedtls_des3_set3key_enc(&des, key)
		             : mbedtls_des3_set3key_dec(&des, key);
	else
		rc = encrypt ? mbedtls_des3_set2key_enc(&des, key)
		             : mbedtls_des3_set2key_dec(&des, key);
	if (rc == 0)
		rc = mbedtls_des3_crypt_ecb(&des, in, out);
	mbedtls_des3_free(&des);
	return rc == 0 ? 0 : CARDLIB_ERR_CRYPTO;
}

int desfire_cipher_cbc(enum desfire_cipher cipher, const uint8_t *key, int encrypt, uint8_t *iv,
                       const uint8_t *in, uint8_t *out, size_t len)
{
	const size_t bs = desfire_cipher_block(cipher);
	uint8_t x[16], c[16];
	if (len % bs)
		return CARDLIB_ERR_ARG;
	for (size_t off = 0; off < len; off += bs) {
		int rc;
		if (encrypt) {
			for (size_t i = 0; i < bs; i++)
				x[i] = in[off + i] ^ iv[i];
			rc = desfire_cipher_ecb(cipher, key, 1, x, out + off);
			if (rc)
				return rc;
			memcpy(iv, out + off, bs);
		} else {
			memcpy(c, in + off, bs);
			rc = desfire_cipher_ecb(cipher, key, 0, c, x);
			if (rc)
				return rc;
			for (size_t i = 0; i < bs; i++)
				out[off + i] = x[i] ^ iv[i];
			memcpy(iv, c, bs);
		}
	}
	return 0;
}

/* SP 800-38B §6.1 subkey doubling for either block size. */
static void cmac_double_bs(const uint8_t *in, uint8_t *out, size_t bs)
{
	const uint8_t carry = in[0] & 0x80;
	for (size_t i = 0; i + 1 < bs; i++)
		out[i] = (uint8_t)((in[i] << 1) | (in[i + 1] >> 7));
	out[bs - 1] = (uint8_t)(in[bs - 1] << 1);
	if (carry)
		out[bs - 1] ^= bs == 8 ? 0x1B : 0x87;
}

int desfire_cipher_cmac(enum desfire_cipher cipher, const uint8_t *key, const uint8_t *iv,
                        const uint8_t *msg, size_t len, uint8_t *mac)
{
	if (cipher == DESFIRE_CIPHER_AES)
		return desfire_cmac(key, iv, msg, len, mac);
	const size_t bs = 8;
	uint8_t l[8] = {0}, k1[8], k2[8], x[8] = {0}, block[8];
	int rc = desfire_cipher_ecb(cipher, key, 1, l, l);
	if (rc)
		return rc;
	cmac_double_bs(l, k1, bs);
	cmac_double_bs(k1, k2, bs);
	if (iv)
		memcpy(x, iv, bs);
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
			x[i] ^= block[i];
		rc = desfire_cipher_ecb(cipher, key, 1, x, x);
	}
	if (rc == 0)
		memcpy(mac, x, bs);
	mbedtls_platform_zeroize(l, sizeof(l));
	mbedtls_platform_zeroize(k1, sizeof(k1));
	mbedtls_platform_zeroize(k2, sizeof(k2));
	return rc;
}

int desfire_legacy_send(const uint8_t key[16], uint8_t *buf, size_t len)
{
	uint8_t prev[8] = {0};
	if (len % 8)
		return CARDLIB_ERR_ARG;
	for (size_t off = 0; off < len; off += 8) {
		for (int i = 0; i < 8; i++)
			buf[off + i] ^= prev[i];
		int rc = desfire_cipher_ecb(DESFIRE_CIPHER_2K3DES, key, 0, buf + off, buf + off);
		if (rc)
			return rc;
		memcpy(prev, buf + off, 8);
	}
	return 0;
}

int desfire_legacy_receive(const uint8_t key[16], uint8_t *buf, size_t len)
{
	uint8_t iv[8] = {0};
	return desfire_cipher_cbc(DESFIRE_CIPHER_2K3DES, key, 0, iv, buf, buf, len);
}

void desfire_crc16(const uint8_t *data, size_t len, uint8_t out[2])
{
	uint16_t crc = 0x6363;
	for (size_t i = 0; i < len; i++) {
		crc ^= data[i];
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)((crc >> 1) ^ ((crc & 1u) ? 0x8408u : 0u));
	}
	out[0] = (uint8_t)crc;
	out[1] = (uint8_t)(crc >> 8);
}

/* DES keys' halves are equal, the parity bits (where DESFire keeps the version) aside. */
static int des_key_is_single(const uint8_t key[16])
{
	uint8_t diff = 0;
	for (int i = 0; i < 8; i++)
		diff |= (uint8_t)((key[i] ^ key[i + 8]) & 0xFE);
	return diff == 0;
}

void desfire_des_session_key(const uint8_t *key, int three_key, const uint8_t *rnda,
                             const uint8_t *rndb, uint8_t out[24])
{
	memset(out, 0, 24);
	memcpy(out, rnda, 4);
	memcpy(out + 4, rndb, 4);
	if (three_key) {
		memcpy(out + 8, rnda + 6, 4);
		memcpy(out + 12, rndb + 6, 4);
		memcpy(out + 16, rnda + 12, 4);
		memcpy(out + 20, rndb + 12, 4);
	} else if (des_key_is_single(key)) {
		memcpy(out + 8, out, 8);
	} else {
		memcpy(out + 8, rnda + 4, 4);
		memcpy(out + 12, rndb + 4, 4);
	}
}

/* AN12196 §5.6 / NT4H2421Gx §9.1.7: SV = label ‖ 00 01 00 80 ‖ RndA[15..14] ‖
 * (RndA[13..8] XOR RndB[15..10]) ‖ RndB[9..0] ‖ RndA[7..0], NXP numbering bytes from the
 * most significant, i.e. in memory order: RndA[0..1], RndA[2..7]^RndB[0..5], RndB[6..15],
 * RndA[8..15]. */
int desfire_ev2_session_keys(const uint8_t key[16], const uint8_t rnda[16], const uint8_t rndb[16],
                             uint8_t enc[16], uint8_t mac[16])
{
	uint8_t sv[32] = {0xA5, 0x5A, 0x00, 0x01, 0x00, 0x80};
	memcpy(sv + 6, rnda, 2);
	for (int i = 0; i < 6; i++)
		sv[8 + i] = rnda[2 + i] ^ rndb[i];
	memcpy(sv + 14, rndb + 6, 10);
	memcpy(sv + 24, rnda + 8, 8);
	int rc = desfire_cmac(key, NULL, sv, sizeof(sv), enc);
	sv[0] = 0x5A;
	sv[1] = 0xA5;
	if (rc == 0)
		rc = desfire_cmac(key, NULL, sv, sizeof(sv), mac);
	mbedtls_platform_zeroize(sv, sizeof(sv));
	return rc;
}

static void rotate_left(const uint8_t in[16], uint8_t out[16])
{
	memmove(out, in + 1, 15);
	out[15] = in[0];
}

void desfire_sm_reset(struct desfire_sm *sm)
{
	mbedtls_platform_zeroize(sm, sizeof(*sm));
	sm->kind = DESFIRE_SESSION_NONE;
}

/* ---- authentication ------------------------------------------------------------------- */

/* One step of an authentication: the answer must be exactly `want` bytes with `want_status`.
 * An error status is AUTH (AE: wrong key, 40: no such key) or its own mapping. */
static int auth_step(struct cardlib_desfire *d, const uint8_t *cmd, size_t cmd_len, uint8_t *rx,
                     size_t want, uint8_t want_status)
{
	uint8_t buf[64];
	size_t n = 0;
	uint8_t status = 0;
	int rc = desfire_frames(d, cmd, cmd_len, buf, sizeof(buf), &n, &status, 0);
	if (rc)
		return rc;
	if (status != want_status) {
		if (status == DF_ST_AUTH || status == 0x40 || status == DF_ST_OK ||
		    status == DF_ST_ADDITIONAL_FRAME)
			return CARDLIB_ERR_AUTH;
		return desfire_status_error(cmd[0], status);
	}
	if (n < want)
		return CARDLIB_ERR_TRUNCATED;
	if (n > want)
		return CARDLIB_ERR_OVERSIZED;
	memcpy(rx, buf, want);
	return 0;
}

/*
 * Both handshakes share their shape: E(Kx, RndB) comes back, the reader answers
 * E(Kx, RndA ‖ RndB<<8), the card proves itself with RndA<<8. EV1 chains the CBC IV through
 * the three messages (libfreefare); EV2 restarts every message at a zero IV (AN12196 §5.6).
 */
static int authenticate(struct cardlib_desfire *d, uint8_t code, uint8_t key_no,
                        const uint8_t key[16])
{
	const int ev2 = code == DF_CMD_AUTH_EV2_FIRST;
	uint8_t cmd[1 + 32], ek[32], plain[32], rnda[16], rndb[16], iv[16] = {0};
	size_t cmd_len = 0;
	int rc;

	desfire_sm_reset(&d->sm); /* the card drops any session when an authentication starts */
	cmd[cmd_len++] = code;
	cmd[cmd_len++] = key_no;
	if (ev2)
		cmd[cmd_len++] = 0x00; /* LenCap: no PCDcap2 */
	rc = auth_step(d, cmd, cmd_len, ek, 16, DF_ST_ADDITIONAL_FRAME);
	if (rc == 0)
		rc = desfire_cbc_decrypt(key, iv, ek, rndb, 16);
	if (rc == 0)
		rc = fill_random(rnda, 16);
	if (rc)
		goto out;

	memcpy(plain, rnda, 16);
	rotate_left(rndb, plain + 16);
	if (ev2)
		memset(iv, 0, 16);
	cmd[0] = DF_CMD_ADDITIONAL_FRAME;
	rc = desfire_cbc_encrypt(key, iv, plain, cmd + 1, 32);
	if (rc)
		goto out;
	const size_t want = ev2 ? 32 : 16;
	rc = auth_step(d, cmd, 33, ek, want, DF_ST_OK);
	if (rc)
		goto out;
	if (ev2)
		memset(iv, 0, 16);
	rc = desfire_cbc_decrypt(key, iv, ek, plain, want);
	if (rc)
		goto out;

	uint8_t rnda_rot[16];
	rotate_left(rnda, rnda_rot);
	const uint8_t *proof = ev2 ? plain + 4 : plain;
	uint8_t diff = 0;
	for (int i = 0; i < 16; i++)
		diff |= (uint8_t)(proof[i] ^ rnda_rot[i]);
	if (diff) {
		rc = CARDLIB_ERR_AUTH; /* the card does not know Kx */
		goto out;
	}

	d->sm.key_no = key_no;
	if (ev2) {
		rc = desfire_ev2_session_keys(key, rnda, rndb, d->sm.enc_key, d->sm.mac_key);
		if (rc)
			goto out;
		memcpy(d->sm.ti, plain, 4);
		d->sm.cmd_ctr = 0;
		d->sm.cipher = DESFIRE_CIPHER_AES;
		d->sm.kind = DESFIRE_SESSION_EV2;
	} else {
		/* libfreefare: RndA[0..3] ‖ RndB[0..3] ‖ RndA[12..15] ‖ RndB[12..15], IV zero */
		memcpy(d->sm.enc_key, rnda, 4);
		memcpy(d->sm.enc_key + 4, rndb, 4);
		memcpy(d->sm.enc_key + 8, rnda + 12, 4);
		memcpy(d->sm.enc_key + 12, rndb + 12, 4);
		memcpy(d->sm.mac_key, d->sm.enc_key, 16);
		memset(d->sm.iv, 0, 16);
		d->sm.cipher = DESFIRE_CIPHER_AES;
		d->sm.kind = DESFIRE_SESSION_EV1;
	}
out:
	if (rc)
		desfire_sm_reset(&d->sm);
	mbedtls_platform_zeroize(plain, sizeof(plain));
	mbedtls_platform_zeroize(rnda, sizeof(rnda));
	mbedtls_platform_zeroize(rndb, sizeof(rndb));
	mbedtls_platform_zeroize(ek, sizeof(ek));
	return rc;
}

int desfire_sm_auth_ev2_first(struct cardlib_desfire *d, uint8_t key_no,
                              const uint8_t key[CARDLIB_AES_KEY_LEN])
{
	return authenticate(d, DF_CMD_AUTH_EV2_FIRST, key_no, key);
}

int desfire_sm_auth_ev1_aes(struct cardlib_desfire *d, uint8_t key_no,
                            const uint8_t key[CARDLIB_AES_KEY_LEN])
{
	return authenticate(d, DF_CMD_AUTH_AES, key_no, key);
}

/*
 * Authenticate (0A) and AuthenticateISO (1A): the same three passes with DES ciphers and
 * 8-byte randoms (16 with a 3K3DES key). Legacy: the card's messages are read with the CBC
 * decryption from a zero IV, the reader's sent in "send mode" (each message from a zero IV);
 * ISO: ordinary CBC, the IV chained through the three messages as AES EV1 does.
 */
static int authenticate_des(struct cardlib_desfire *d, uint8_t code, uint8_t key_no,
                            const uint8_t *key, int three_key)
{
	const int legacy = code == DF_CMD_AUTH_LEGACY;
	const enum desfire_cipher cipher =
	        three_key ? DESFIRE_CIPHER_3K3DES : DESFIRE_CIPHER_2K3DES;
	const size_t n = three_key ? 16 : 8;
	uint8_t cmd[1 + 32], ek[16], plain[32], rnda[16], rndb[16], iv[8] = {0};
	int rc;

	desfire_sm_reset(&d->sm);
	cmd[0] = code;
	cmd[1] = key_no;
	rc = auth_step(d, cmd, 2, ek, n, DF_ST_ADDITIONAL_FRAME);
	if (rc == 0) {
		memcpy(rndb, ek, n);
		rc = legacy ? desfire_legacy_receive(key, rndb, n)
		            : desfire_cipher_cbc(cipher, key, 0, iv, rndb, rndb, n);
	}
	if (rc == 0)
		rc = fill_random(rnda, n);
	if (rc)
		goto out;

	memcpy(plain, rnda, n);
	memcpy(plain + n, rndb + 1, n - 1); /* RndB rotated left by one byte */
	plain[2 * n - 1] = rndb[0];
	cmd[0] = DF_CMD_ADDITIONAL_FRAME;
	memcpy(cmd + 1, plain, 2 * n);
	rc = legacy ? desfire_legacy_send(key, cmd + 1, 2 * n)
	            : desfire_cipher_cbc(cipher, key, 1, iv, cmd + 1, cmd + 1, 2 * n);
	if (rc == 0)
		rc = auth_step(d, cmd, 1 + 2 * n, ek, n, DF_ST_OK);
	if (rc == 0)
		rc = legacy ? desfire_legacy_receive(key, ek, n)
		            : desfire_cipher_cbc(cipher, key, 0, iv, ek, ek, n);
	if (rc)
		goto out;
	uint8_t diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (uint8_t)(ek[i] ^ rnda[(i + 1) % n]);
	if (diff) {
		rc = CARDLIB_ERR_AUTH; /* the card does not know the key */
		goto out;
	}
	d->sm.key_no = key_no;
	d->sm.cipher = cipher;
	desfire_des_session_key(key, three_key, rnda, rndb, d->sm.enc_key);
	memcpy(d->sm.mac_key, d->sm.enc_key, 16);
	memset(d->sm.iv, 0, sizeof(d->sm.iv));
	d->sm.kind = legacy ? DESFIRE_SESSION_LEGACY : DESFIRE_SESSION_EV1;
out:
	if (rc)
		desfire_sm_reset(&d->sm);
	mbedtls_platform_zeroize(plain, sizeof(plain));
	mbedtls_platform_zeroize(rnda, sizeof(rnda));
	mbedtls_platform_zeroize(rndb, sizeof(rndb));
	mbedtls_platform_zeroize(ek, sizeof(ek));
	return rc;
}

int desfire_sm_auth_legacy(struct cardlib_desfire *d, uint8_t key_no, const uint8_t key[16])
{
	return authenticate_des(d, DF_CMD_AUTH_LEGACY, key_no, key, 0);
}

int desfire_sm_auth_iso(struct cardlib_desfire *d, uint8_t key_no, const uint8_t *key,
                        int three_key)
{
	return authenticate_des(d, DF_CMD_AUTH_ISO, key_no, key, three_key);
}

/* ---- EV2 secure messaging ------------------------------------------------------------- */

/* NT4H2421Gx §9.1.4: IV = E(SesAuthENCKey, label ‖ TI ‖ CmdCtr(LSB first) ‖ 00*8), with
 * label A5 5A for commands and 5A A5 for answers. */
static int ev2_iv(const struct desfire_sm *sm, int answer, uint16_t ctr, uint8_t iv[16])
{
	uint8_t in[16] = {0};
	in[0] = answer ? 0x5A : 0xA5;
	in[1] = answer ? 0xA5 : 0x5A;
	memcpy(in + 2, sm->ti, 4);
	in[6] = (uint8_t)ctr;
	in[7] = (uint8_t)(ctr >> 8);
	return aes_ecb_encrypt(sm->enc_key, in, iv);
}

/* MACt over first ‖ CmdCtr ‖ TI ‖ body (first: the command code, or the answer's status). */
static int ev2_mact(const struct desfire_sm *sm, uint8_t first, uint16_t ctr, const uint8_t *body,
                    size_t len, uint8_t mact[8])
{
	uint8_t *msg = malloc(7 + len);
	uint8_t mac[16];
	if (!msg)
		return CARDLIB_ERR_NOMEM;
	msg[0] = first;
	msg[1] = (uint8_t)ctr;
	msg[2] = (uint8_t)(ctr >> 8);
	memcpy(msg + 3, sm->ti, 4);
	if (len)
		memcpy(msg + 7, body, len);
	int rc = desfire_cmac(sm->mac_key, NULL, msg, 7 + len, mac);
	free(msg);
	if (rc == 0)
		desfire_mact(mac, mact);
	return rc;
}

static int ct_differ(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff != 0;
}

/* Protect c into tx (code ‖ header ‖ data'): returns the length. */
static int ev2_protect(const struct desfire_sm *sm, const struct desfire_cmd *c, uint8_t *tx)
{
	size_t n = 0;
	tx[n++] = c->code;
	if (c->hdr_len)
		memcpy(tx + n, c->hdr, c->hdr_len);
	n += c->hdr_len;
	if (c->cmd_mode == CARDLIB_COMM_FULL && c->data_len) {
		/* ISO/IEC 9797-1 method 2: always 80, then zeros to the block */
		const size_t padded = (c->data_len / 16 + 1) * 16;
		uint8_t iv[16];
		memcpy(tx + n, c->data, c->data_len);
		tx[n + c->data_len] = 0x80;
		memset(tx + n + c->data_len + 1, 0, padded - c->data_len - 1);
		int rc = ev2_iv(sm, 0, sm->cmd_ctr, iv);
		if (rc == 0)
			rc = desfire_cbc_encrypt(sm->enc_key, iv, tx + n, tx + n, padded);
		if (rc)
			return rc;
		n += padded;
	} else {
		if (c->data_len)
			memcpy(tx + n, c->data, c->data_len);
		n += c->data_len;
	}
	if (c->cmd_mode != CARDLIB_COMM_PLAIN) {
		int rc = ev2_mact(sm, c->code, sm->cmd_ctr, tx + 1, n - 1, tx + n);
		if (rc)
			return rc;
		n += 8;
	}
	return (int)n;
}

static void copy_out(uint8_t *resp, const uint8_t *rx, size_t n)
{
	if (n)
		memcpy(resp, rx, n);
}

static int bounds(const struct desfire_cmd *c, size_t len)
{
	if (len < c->resp_min)
		return CARDLIB_ERR_TRUNCATED;
	if (len > c->resp_max)
		return CARDLIB_ERR_OVERSIZED;
	return 0;
}

/* Check and unprotect a 00 answer of n bytes in rx; plaintext to resp. */
static int ev2_unprotect(struct desfire_sm *sm, const struct desfire_cmd *c, uint8_t *rx, size_t n,
                         uint8_t *resp, size_t *resp_len)
{
	const uint16_t ctr = (uint16_t)(sm->cmd_ctr + 1);
	if (c->ends_session || c->resp_mode == CARDLIB_COMM_PLAIN) {
		int rc = bounds(c, n);
		if (rc)
			return rc;
		copy_out(resp, rx, n);
		*resp_len = n;
		return 0;
	}
	if (n < 8)
		return CARDLIB_ERR_TRUNCATED;
	const size_t body = n - 8;
	uint8_t mact[8];
	int rc = ev2_mact(sm, DF_ST_OK, ctr, rx, body, mact);
	if (rc)
		return rc;
	if (ct_differ(mact, rx + body, 8))
		return CARDLIB_ERR_MAC;
	if (c->resp_mode == CARDLIB_COMM_MACED) {
		rc = bounds(c, body);
		if (rc)
			return rc;
		copy_out(resp, rx, body);
		*resp_len = body;
		return 0;
	}
	/* Full: E(data ‖ 80 00..) — length first, so that nothing unverified is deciphered */
	if (body < (c->resp_min / 16 + 1) * 16)
		return CARDLIB_ERR_TRUNCATED;
	if (body > (c->resp_max / 16 + 1) * 16)
		return CARDLIB_ERR_OVERSIZED;
	if (body % 16)
		return CARDLIB_ERR_MAC;
	uint8_t iv[16];
	rc = ev2_iv(sm, 1, ctr, iv);
	if (rc == 0)
		rc = desfire_cbc_decrypt(sm->enc_key, iv, rx, rx, body);
	if (rc)
		return rc;
	size_t len = body;
	while (len > body - 16 && rx[len - 1] == 0)
		len--;
	if (len == body - 16 || rx[len - 1] != 0x80)
		return CARDLIB_ERR_MAC; /* padding does not verify */
	len--;
	rc = bounds(c, len);
	if (rc)
		return rc;
	copy_out(resp, rx, len);
	*resp_len = len;
	return 0;
}

/* ---- EV1 secure messaging ------------------------------------------------------------- */

static int ev1_protect(struct desfire_sm *sm, const struct desfire_cmd *c, uint8_t *tx)
{
	size_t n = 0;
	tx[n++] = c->code;
	if (c->hdr_len)
		memcpy(tx + n, c->hdr, c->hdr_len);
	n += c->hdr_len;
	if (c->data_len)
		memcpy(tx + n, c->data, c->data_len);
	n += c->data_len;
	const size_t bs = desfire_cipher_block(sm->cipher);
	if (c->cmd_mode == CARDLIB_COMM_FULL && c->data_len) {
		/* E(data ‖ CRC32(cmd ‖ header ‖ data) ‖ 00..), the CBC chained from the IV */
		const size_t off = 1 + c->hdr_len;
		size_t plain = n;
		if (!c->no_crc) {
			desfire_crc32(tx, n, tx + n);
			plain += 4;
		}
		size_t enc = ((plain - off + bs - 1) / bs) * bs;
		memset(tx + plain, 0, off + enc - plain);
		int rc = desfire_cipher_cbc(sm->cipher, sm->enc_key, 1, sm->iv, tx + off, tx + off,
		                            enc);
		if (rc)
			return rc;
		return (int)(off + enc);
	}
	/* every other command is CMACed to keep the IV in step; the CMAC travels only with
	 * MACed data (libfreefare's CMAC_COMMAND vs MAC_COMMAND) */
	uint8_t mac[16];
	int rc = desfire_cipher_cmac(sm->cipher, sm->enc_key, sm->iv, tx, n, mac);
	if (rc)
		return rc;
	memcpy(sm->iv, mac, bs);
	if (c->cmd_mode == CARDLIB_COMM_MACED && c->data_len) {
		memcpy(tx + n, mac, 8);
		n += 8;
	}
	return (int)n;
}

static int ev1_unprotect(struct desfire_sm *sm, const struct desfire_cmd *c, uint8_t *rx, size_t n,
                         uint8_t *resp, size_t *resp_len)
{
	const size_t bs = desfire_cipher_block(sm->cipher);
	int rc;
	if (c->ends_session) {
		rc = bounds(c, n);
		if (rc == 0) {
			copy_out(resp, rx, n);
			*resp_len = n;
		}
		return rc;
	}
	if (c->resp_mode != CARDLIB_COMM_FULL) {
		/* data ‖ CMAC(data ‖ status)[0..7] */
		if (n < 8)
			return CARDLIB_ERR_TRUNCATED;
		const size_t body = n - 8;
		uint8_t *msg = malloc(body + 1);
		uint8_t mac[16];
		if (!msg)
			return CARDLIB_ERR_NOMEM;
		if (body)
			memcpy(msg, rx, body);
		msg[body] = DF_ST_OK;
		rc = desfire_cipher_cmac(sm->cipher, sm->enc_key, sm->iv, msg, body + 1, mac);
		free(msg);
		if (rc)
			return rc;
		memcpy(sm->iv, mac, bs);
		if (ct_differ(mac, rx + body, 8))
			return CARDLIB_ERR_MAC;
		rc = bounds(c, body);
		if (rc)
			return rc;
		copy_out(resp, rx, body);
		*resp_len = body;
		return 0;
	}
	/* E(data ‖ CRC32(data ‖ status) ‖ 00..): the length is found where the CRC holds */
	if (n < ((c->resp_min + 4 + bs - 1) / bs) * bs)
		return CARDLIB_ERR_TRUNCATED;
	if (n > ((c->resp_max + 4 + bs - 1) / bs) * bs)
		return CARDLIB_ERR_OVERSIZED;
	if (n % bs)
		return CARDLIB_ERR_MAC;
	rc = desfire_cipher_cbc(sm->cipher, sm->enc_key, 0, sm->iv, rx, rx, n);
	if (rc)
		return rc;
	for (size_t len = c->resp_max + 1; len-- > c->resp_min;) {
		if (((len + 4 + bs - 1) / bs) * bs != n)
			continue;
		int zeros = 1;
		for (size_t i = len + 4; i < n; i++)
			zeros &= rx[i] == 0;
		if (!zeros)
			continue;
		uint8_t crc[4];
		const uint8_t saved = rx[len];
		rx[len] = DF_ST_OK;
		desfire_crc32(rx, len + 1, crc);
		rx[len] = saved;
		if (ct_differ(crc, rx + len, 4))
			continue;
		copy_out(resp, rx, len);
		*resp_len = len;
		return 0;
	}
	return CARDLIB_ERR_MAC;
}

/* ---- legacy (DESFire native) secure messaging ----------------------------------------- */

/* Enciphered data travel as send-mode(data ‖ CRC16(data) ‖ 00..); nothing else is protected
 * (cardlib sends no MACed file data in legacy sessions). */
static int legacy_protect(const struct desfire_sm *sm, const struct desfire_cmd *c, uint8_t *tx)
{
	size_t n = 0;
	tx[n++] = c->code;
	if (c->hdr_len)
		memcpy(tx + n, c->hdr, c->hdr_len);
	n += c->hdr_len;
	if (c->data_len)
		memcpy(tx + n, c->data, c->data_len);
	n += c->data_len;
	if (c->cmd_mode != CARDLIB_COMM_FULL || !c->data_len)
		return (int)n;
	const size_t off = 1 + c->hdr_len;
	size_t plain = n;
	if (!c->no_crc) {
		desfire_crc16(tx + off, c->data_len, tx + n);
		plain += 2;
	}
	const size_t enc = ((plain - off + 7) / 8) * 8;
	memset(tx + plain, 0, off + enc - plain);
	int rc = desfire_legacy_send(sm->enc_key, tx + off, enc);
	return rc ? rc : (int)(off + enc);
}

/* Enciphered answers: D(data ‖ CRC16(data) ‖ 00..) from a zero IV; the length is found where
 * the CRC holds and only zeros follow. */
static int legacy_unprotect(const struct desfire_sm *sm, const struct desfire_cmd *c, uint8_t *rx,
                            size_t n, uint8_t *resp, size_t *resp_len)
{
	int rc;
	if (c->ends_session || c->resp_mode != CARDLIB_COMM_FULL) {
		rc = bounds(c, n);
		if (rc == 0) {
			copy_out(resp, rx, n);
			*resp_len = n;
		}
		return rc;
	}
	if (n < ((c->resp_min + 2 + 7) / 8) * 8)
		return CARDLIB_ERR_TRUNCATED;
	if (n > ((c->resp_max + 2 + 7) / 8) * 8)
		return CARDLIB_ERR_OVERSIZED;
	if (n % 8)
		return CARDLIB_ERR_MAC;
	rc = desfire_legacy_receive(sm->enc_key, rx, n);
	if (rc)
		return rc;
	/* Shortest first: CRC_A over data ‖ CRC(data) is zero, and stays zero over the padding,
	 * so every longer length would seem to hold a CRC 00 00 (libfreefare searches the same
	 * way). */
	for (size_t len = c->resp_min; len <= c->resp_max; len++) {
		if (((len + 2 + 7) / 8) * 8 != n)
			continue;
		int zeros = 1;
		for (size_t i = len + 2; i < n; i++)
			zeros &= rx[i] == 0;
		uint8_t crc[2];
		desfire_crc16(rx, len, crc);
		if (!zeros || ct_differ(crc, rx + len, 2))
			continue;
		copy_out(resp, rx, len);
		*resp_len = len;
		return 0;
	}
	return CARDLIB_ERR_MAC;
}

/* ---- one command ---------------------------------------------------------------------- */

/* After which statuses the card drops an EV1 session (docs/hil-desfire-card.md: AE, 1E, CA,
 * EE; a real card's list is not public). EV2 sessions end on any error (NT4H2421Gx
 * §9.1.9). */
static int ev1_status_ends_session(uint8_t status)
{
	return status == DF_ST_AUTH || status == DF_ST_INTEGRITY || status == DF_ST_ABORTED ||
	       status == DF_ST_EEPROM;
}

int desfire_sm_transact(struct cardlib_desfire *d, const struct desfire_cmd *c, uint8_t *resp,
                        size_t *resp_len)
{
	struct desfire_sm *sm = &d->sm;
	if (c->data_len > DESFIRE_MSG_MAX || c->hdr_len > 32 || c->resp_max > DESFIRE_MSG_MAX ||
	    c->resp_min > c->resp_max)
		return CARDLIB_ERR_ARG;
	if (sm->kind == DESFIRE_SESSION_EV2 && sm->cmd_ctr == 0xFFFF)
		return CARDLIB_ERR_AUTH; /* the counter is spent: a new authentication is due */

	const size_t tx_cap = 1 + c->hdr_len + c->data_len + 16 + 4 + 8;
	const size_t rx_cap = c->resp_max + 16 + 4 + 8 + 16;
	uint8_t *tx = malloc(tx_cap);
	uint8_t *rx = malloc(rx_cap);
	int rc = 0;
	if (!tx || !rx) {
		rc = CARDLIB_ERR_NOMEM;
		goto out;
	}

	int n;
	switch (sm->kind) {
	case DESFIRE_SESSION_EV2:
		n = ev2_protect(sm, c, tx);
		break;
	case DESFIRE_SESSION_EV1:
		n = ev1_protect(sm, c, tx);
		break;
	case DESFIRE_SESSION_LEGACY:
		n = legacy_protect(sm, c, tx);
		break;
	default:
		n = (int)(1 + c->hdr_len + c->data_len);
		tx[0] = c->code;
		if (c->hdr_len)
			memcpy(tx + 1, c->hdr, c->hdr_len);
		if (c->data_len)
			memcpy(tx + 1 + c->hdr_len, c->data, c->data_len);
		break;
	}
	if (n < 0) {
		rc = n;
		goto out;
	}

	size_t rx_len = 0;
	uint8_t status = 0;
	rc = desfire_frames(d, tx, (size_t)n, rx, rx_cap, &rx_len, &status, 1);
	if (rc) {
		/* the exchange failed midway: the card's state is unknown */
		desfire_sm_reset(sm);
		goto out;
	}
	if (status != DF_ST_OK) {
		rc = desfire_status_error(c->code, status);
		/* Authenticated, a file command answered AUTHENTICATION_ERROR means the file's
		 * access rights name another key than the session's (NXP NT4H2421Gx, ReadData and
		 * WriteData return codes): a refusal of rights, like PERMISSION_DENIED (rights
		 * "never"), not a wrong key. */
		if (status == DF_ST_AUTH && sm->kind != DESFIRE_SESSION_NONE &&
		    desfire_is_file_command(c->code))
			rc = CARDLIB_ERR_PERMISSION;
		if (sm->kind == DESFIRE_SESSION_EV2 ||
		    (sm->kind != DESFIRE_SESSION_NONE && ev1_status_ends_session(status)))
			desfire_sm_reset(sm);
		goto out;
	}

	switch (sm->kind) {
	case DESFIRE_SESSION_EV2:
		rc = ev2_unprotect(sm, c, rx, rx_len, resp, resp_len);
		if (rc == 0)
			sm->cmd_ctr++;
		break;
	case DESFIRE_SESSION_EV1:
		rc = ev1_unprotect(sm, c, rx, rx_len, resp, resp_len);
		break;
	case DESFIRE_SESSION_LEGACY:
		rc = legacy_unprotect(sm, c, rx, rx_len, resp, resp_len);
		break;
	default:
		rc = bounds(c, rx_len);
		if (rc == 0) {
			if (rx_len)
				memcpy(resp, rx, rx_len);
			*resp_len = rx_len;
		}
		break;
	}
	/* an answer we cannot believe leaves the two sides out of step */
	if (rc || c->ends_session)
		desfire_sm_reset(sm);
out:
	if (tx)
		mbedtls_platform_zeroize(tx, tx_cap);
	if (rx)
		mbedtls_platform_zeroize(rx, rx_cap);
	free(tx);
	free(rx);
	return rc;
}
