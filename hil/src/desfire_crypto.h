/*
 * desfire_crypto.h — the cryptography a MIFARE DESFire card performs, card side (private).
 *
 * AES-128 and 2K3DES blocks come from mbedTLS; everything built on them (the DESFire way of
 * chaining the CBC IV through CMACs, the CRCs, the session-key derivations, the EV2 IVs and
 * truncated MACs) is written here from NXP's public descriptions:
 *   - EV1 AES: the running IV of a session is the last CMAC or the last ciphertext block,
 *     whichever came last (what libfreefare 0.4.0, the independent reference, expects);
 *   - EV2 (AN12343, AN12196, NT4H2421Gx §9.1): SV1/SV2 session vectors, IVs encrypted from
 *     A55A/5AA5 || TI || CmdCtr, CMAC truncated to its odd-indexed bytes.
 * Nothing in this file knows about commands or files; desfire_card.c decides what to feed it.
 *
 * Every function that runs a cipher returns 0 or an mbedTLS error code (negative).
 */
#ifndef HIL_DESFIRE_CRYPTO_H
#define HIL_DESFIRE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define HIL_DF_AES_BLOCK 16
#define HIL_DF_DES_BLOCK 8
#define HIL_DF_KEY_LEN   16
#define HIL_DF_MACT_LEN  8 /* truncated MAC of EV1 (first 8 bytes) and EV2 (odd bytes) */

/* ---- AES-128 -------------------------------------------------------------------------- */

int hil_df_aes_ecb_encrypt(const uint8_t key[16], const uint8_t in[16], uint8_t out[16]);

/* CBC over `len` bytes (a multiple of 16; in == out allowed). `iv` is read, then replaced by
 * the last ciphertext block: the chaining rule of DESFire EV1 secure messaging. */
int hil_df_aes_cbc_encrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                           size_t len);
int hil_df_aes_cbc_decrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                           size_t len);

/* AES-CMAC (NIST SP 800-38B, RFC 4493) whose CBC chain starts from `iv` instead of zero;
 * `iv` then holds the full 16-byte MAC. With a zero IV this is the standard CMAC. EV1 keeps
 * one such IV for the whole session and sends the first 8 bytes of the MAC. */
int hil_df_aes_cmac(const uint8_t key[16], uint8_t iv[16], const uint8_t *msg, size_t len);

/* ---- any DESFire key type ------------------------------------------------------------- */

/* The block ciphers of DESFire key types: DES and 2K3DES are one 16-byte K1||K2 key (K1 ==
 * K2 is single DES, since E(K1, D(K1, E(K1, x))) = E(K1, x)), 3K3DES a 24-byte key, AES-128
 * a 16-byte key. */
enum hil_df_cipher { HIL_DF_CIPHER_2K3DES, HIL_DF_CIPHER_3K3DES, HIL_DF_CIPHER_AES };

size_t hil_df_cipher_block(enum hil_df_cipher cipher);
size_t hil_df_cipher_key_len(enum hil_df_cipher cipher);

/* CBC over whole blocks with the running IV of ISO/AES sessions (iv holds the last
 * ciphertext block afterwards, in both directions; in == out allowed). */
int hil_df_cbc_encrypt(enum hil_df_cipher cipher, const uint8_t *key, uint8_t *iv,
                       const uint8_t *in, uint8_t *out, size_t len);
int hil_df_cbc_decrypt(enum hil_df_cipher cipher, const uint8_t *key, uint8_t *iv,
                       const uint8_t *in, uint8_t *out, size_t len);

/* CMAC (NIST SP 800-38B) for either block size (Rb 0x1B for 64-bit blocks, 0x87 for
 * 128-bit ones), chained from `iv`, which then holds the whole MAC. */
int hil_df_cmac(enum hil_df_cipher cipher, const uint8_t *key, uint8_t *iv, const uint8_t *msg,
                size_t len);

/* ---- 2K3DES (the factory PICC master key and legacy DES authentication only) ---------- */

/* One block with a 16-byte key K1||K2 (K1 == K2 is single DES). */
int hil_df_des3_block(const uint8_t key[16], int encrypt, const uint8_t in[8], uint8_t out[8]);

/* Standard CBC encryption with a zero IV: what the card sends under legacy authentication. */
int hil_df_legacy_encrypt(const uint8_t key[16], uint8_t *buf, size_t len);

/* The 4-byte MAC of legacy sessions (MACed file data): CBC encryption with a zero IV over the
 * data padded with zeros, first 4 bytes of the last block. */
int hil_df_legacy_mac(const uint8_t key[16], const uint8_t *data, size_t len, uint8_t mac[4]);

/* Inverse of the reader's legacy "send mode" (each block is deciphered after XOR with the
 * previous ciphertext block, zero IV): what the card receives under legacy authentication. */
int hil_df_legacy_receive(const uint8_t key[16], uint8_t *buf, size_t len);

/* ---- checksums ------------------------------------------------------------------------ */

/* CRC32 as DESFire uses it: IEEE 802.3 polynomial, reflected, preset 0xFFFFFFFF, no final
 * XOR (the complement of zlib's crc32). Appended little-endian. */
uint32_t hil_df_crc32(const uint8_t *data, size_t len);
void hil_df_crc32_le(const uint8_t *data, size_t len, uint8_t out[4]);

/* CRC_A of ISO/IEC 14443-3 (preset 0x6363, reflected 0x8408), used by legacy DESFire. */
uint16_t hil_df_crc16(const uint8_t *data, size_t len);

/* ---- authentication helpers ----------------------------------------------------------- */

void hil_df_rotate_left(const uint8_t *in, uint8_t *out, size_t len);

/* EV1 AES session key: RndA[0..3] || RndB[0..3] || RndA[12..15] || RndB[12..15]. */
void hil_df_ev1_session_key(const uint8_t rnd_a[16], const uint8_t rnd_b[16], uint8_t out[16]);

/* Legacy session key from 8-byte randoms: single DES (both halves RndA[0..3]||RndB[0..3])
 * when the card key is single DES, else RndA[0..3]||RndB[0..3]||RndA[4..7]||RndB[4..7]. */
void hil_df_legacy_session_key(const uint8_t rnd_a[8], const uint8_t rnd_b[8], int single_des,
                               uint8_t out[16]);

/* ISO (0x1A) session keys: 2K3DES (8-byte randoms) as the legacy ones, 3K3DES (16-byte
 * randoms) RndA[0..3] || RndB[0..3] || RndA[6..9] || RndB[6..9] || RndA[12..15] ||
 * RndB[12..15] (24 bytes). */
void hil_df_3k3des_session_key(const uint8_t rnd_a[16], const uint8_t rnd_b[16], uint8_t out[24]);

/* The version DESFire keeps in the parity bits of a DES/3DES key's first 8 bytes. */
uint8_t hil_df_des_key_version(const uint8_t *key);

/* A 2K3DES key whose halves are equal once the parity bits (which DESFire uses for the key
 * version) are ignored is a single DES key. */
int hil_df_des_key_is_single(const uint8_t key[16]);

/* The session vector SV1 (label A55A) or SV2 (label 5AA5) of AN12343 / NT4H2421Gx §9.1.7. */
void hil_df_ev2_session_vector(int mac, const uint8_t rnd_a[16], const uint8_t rnd_b[16],
                               uint8_t sv[32]);
/* SesAuthENCKey = CMAC(Kx, SV1), SesAuthMACKey = CMAC(Kx, SV2). */
int hil_df_ev2_session_keys(const uint8_t key[16], const uint8_t rnd_a[16], const uint8_t rnd_b[16],
                            uint8_t enc[16], uint8_t mac[16]);

/* ---- EV2 secure messaging ------------------------------------------------------------- */

/* IV = E(SesAuthENCKey, A55A (command) or 5AA5 (response) || TI || CmdCtr LE || 0^8). */
int hil_df_ev2_iv(const uint8_t enc_key[16], int response, const uint8_t ti[4], uint16_t ctr,
                  uint8_t iv[16]);

/* MACt over first || CmdCtr LE || TI || data, where first is the command code (command) or
 * the return code (response); `data` is CmdHeader || CmdData, or RespData, possibly
 * already encrypted. Keeps the bytes at odd indexes 1, 3, ... 15 of the CMAC. */
int hil_df_ev2_mact(const uint8_t mac_key[16], uint8_t first, uint16_t ctr, const uint8_t ti[4],
                    const uint8_t *data, size_t len, uint8_t mact[8]);
void hil_df_ev2_truncate(const uint8_t mac[16], uint8_t mact[8]);

/* Constant-time comparison for MACs and CRCs: 0 when equal. */
int hil_df_memcmp_ct(const uint8_t *a, const uint8_t *b, size_t len);

#endif /* HIL_DESFIRE_CRYPTO_H */
