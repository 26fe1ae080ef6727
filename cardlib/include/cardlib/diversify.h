/*
 * cardlib/diversify.h — per-card keys: NXP AN10922 AES-128 key diversification.
 *
 * Every citypass card key is derived from a master key the issuer (or a gate, for its own
 * sector) holds, and the card's identity (DESIGN.md s.3), so that a key extracted from one
 * card opens no other card:
 *
 *     K_card = AES-CMAC(K_master, pad32(0x01 || M)),   M = UID || AID || system identifier
 *
 * as AN10922 s.2.2 specifies: the diversification input D = 0x01 || M (M of 1 to 31 bytes)
 * is padded with 0x80 0x00... to 32 bytes when shorter, and the CMAC's last block is then
 * masked with the subkey K2 (K1 when D is exactly 32 bytes). This is not the RFC 4493 CMAC
 * of D when D is 16 bytes or shorter: that one would pad to 16 bytes only.
 */
#ifndef CARDLIB_DIVERSIFY_H
#define CARDLIB_DIVERSIFY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CARDLIB_AN10922_KEY_LEN 16
/* M is at most 31 bytes (AN10922 s.2.2): with a 7-byte UID and a 3-byte AID, the system
 * identifier gets at most 21. */
#define CARDLIB_AN10922_M_MAX     31
#define CARDLIB_DIVERSIFY_SYS_MAX 21

/* AES-CMAC as RFC 4493 defines it (mbedTLS's), for any message length. 0 or
 * CARDLIB_ERR_ARG / CARDLIB_ERR_CRYPTO. */
int cardlib_diversify_aes_cmac(const uint8_t key[CARDLIB_AN10922_KEY_LEN], const uint8_t *msg,
                               size_t len, uint8_t mac[16]);

/* AN10922 s.2.2 AES-128 diversification of `master` with an arbitrary M (1 to 31 bytes). */
int cardlib_an10922_aes128(const uint8_t master[CARDLIB_AN10922_KEY_LEN], const uint8_t *m,
                           size_t m_len, uint8_t out[CARDLIB_AN10922_KEY_LEN]);

/*
 * The card key of `master` for the card with this (real) UID and application: M = UID ||
 * AID || sys_id, the AID in the byte order DESFire sends it (least significant byte first:
 * AID 0xF54230 is 30 42 F5, the AN10922 example's). The UID is the real one, never a random
 * ID (read it with cardlib_desfire_get_card_uid). 0, or CARDLIB_ERR_ARG when M would not fit.
 */
int cardlib_diversify_card_key(const uint8_t master[CARDLIB_AN10922_KEY_LEN], const uint8_t *uid,
                               size_t uid_len, uint32_t aid, const uint8_t *sys_id,
                               size_t sys_id_len, uint8_t out[CARDLIB_AN10922_KEY_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_DIVERSIFY_H */
