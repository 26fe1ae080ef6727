/*
 * cardlib/desfire.h — MIFARE DESFire EV2/EV3, reader side.
 *
 * A session follows one card from selection to release. AuthenticateEV2First with EV2
 * secure messaging (session keys, transaction identifier, command counter, CMAC on commands
 * and responses, full encryption) is the default; AuthenticateAES (EV1) is the fallback and
 * what libfreefare speaks. Commands are sent ISO 7816-4 wrapped (90 CMD 00 00 Lc data 00).
 * Every response is checked before it is believed: status, length, MAC or CRC — a refusal
 * is a distinct CARDLIB_ERR_* (cardlib/error.h).
 *
 * The citypass application uses AES-128 keys only. The other key types exist for the cards
 * as a town buys them (PICC master key DES 00*8, settings 0x0F) and as they are given back:
 * legacy (0A) and ISO (1A) authentication with DES, 2K3DES and 3K3DES keys, ChangeKey from
 * and to any type (cardlib_desfire_change_key_ex), ChangeKeySettings and SetConfiguration.
 * Under a legacy session cardlib sends and receives enciphered data only (no MACed files).
 */
#ifndef CARDLIB_DESFIRE_H
#define CARDLIB_DESFIRE_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/reader.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CARDLIB_AES_KEY_LEN 16

enum cardlib_comm_mode {
	CARDLIB_COMM_PLAIN = 0x00,
	CARDLIB_COMM_MACED = 0x01,
	CARDLIB_COMM_FULL = 0x03, /* enciphered */
};

enum cardlib_auth_kind {
	CARDLIB_AUTH_EV2 = 0,    /* AuthenticateEV2First (0x71) + EV2 secure messaging */
	CARDLIB_AUTH_EV1 = 1,    /* AuthenticateAES (0xAA) + EV1 secure messaging */
	CARDLIB_AUTH_LEGACY = 2, /* Authenticate (0x0A), DES/2K3DES keys, DESFire native */
	CARDLIB_AUTH_ISO = 3,    /* AuthenticateISO (0x1A), DES/2K3DES/3K3DES keys, EV1 SM */
};

/* Key types, as bits 7-6 of a key set's settings byte (CreateApplication, GetKeySettings). */
enum cardlib_key_type {
	CARDLIB_KEY_DES = 0x00,    /* DES or 2K3DES: 16 bytes, K1 == K2 for single DES */
	CARDLIB_KEY_3K3DES = 0x40, /* 24 bytes */
	CARDLIB_KEY_AES = 0x80,    /* AES-128, 16 bytes */
};

#define CARDLIB_KEY_MAX 24

/* A key of any type. DES and 3K3DES keys carry their version in the parity bits of their
 * first 8 bytes (cardlib_key_set_des_version); AES keys in `version`. */
struct cardlib_key {
	enum cardlib_key_type type;
	uint8_t bytes[CARDLIB_KEY_MAX]; /* 16 used (24 for 3K3DES), the rest zero */
	uint8_t version;                /* AES keys */
};

/* A key of type `type` from len bytes (16, or 24 for 3K3DES). CARDLIB_ERR_ARG otherwise. */
int cardlib_key_make(struct cardlib_key *k, enum cardlib_key_type type, const uint8_t *bytes,
                     size_t len, uint8_t version);
/* Write `version` into the parity bits of a DES or 3K3DES key's first 8 bytes, as DESFire
 * reads it back with GetKeyVersion (a single-DES key keeps its halves equal). */
void cardlib_key_set_des_version(struct cardlib_key *k, uint8_t version);

/* DESFire access rights nibbles, as in the DESFire datasheet. */
#define CARDLIB_AR_FREE 0xE
#define CARDLIB_AR_DENY 0xF
#define CARDLIB_ACCESS(read, write, read_write, change)                                            \
	((uint16_t)(((read) << 12) | ((write) << 8) | ((read_write) << 4) | (change)))

struct cardlib_desfire;

/*
 * Start a session with the target the reader selected. Refuses what is not a DESFire
 * (CARDLIB_ERR_NOT_DESFIRE): no ISO 14443-4 (MIFARE Classic, UID-only tags), or an ATS /
 * GetVersion that is not a DESFire's. Does not send any command when info decides.
 */
int cardlib_desfire_open(struct cardlib_desfire **out, struct cardlib_reader *reader,
                         const struct cardlib_target_info *info);
void cardlib_desfire_close(struct cardlib_desfire *d);

/* 0 = PICC level. CARDLIB_ERR_APP_MISSING when the card has no such application. */
int cardlib_desfire_select_application(struct cardlib_desfire *d, uint32_t aid);
int cardlib_desfire_authenticate(struct cardlib_desfire *d, enum cardlib_auth_kind kind,
                                 uint8_t key_no, const uint8_t key[CARDLIB_AES_KEY_LEN]);
/* Any key type: LEGACY takes DES keys, ISO DES and 3K3DES keys, EV1 and EV2 AES keys
 * (CARDLIB_ERR_ARG for another pairing). CARDLIB_ERR_AUTH when the card refuses. */
int cardlib_desfire_authenticate_key(struct cardlib_desfire *d, enum cardlib_auth_kind kind,
                                     uint8_t key_no, const struct cardlib_key *key);
/* The real UID of a random-ID card (needs an authentication). */
int cardlib_desfire_get_card_uid(struct cardlib_desfire *d, uint8_t uid[CARDLIB_UID_MAX],
                                 size_t *uid_len);

int cardlib_desfire_read_data(struct cardlib_desfire *d, uint8_t file_no, uint32_t offset,
                              uint32_t length, enum cardlib_comm_mode mode, uint8_t *out);
int cardlib_desfire_write_data(struct cardlib_desfire *d, uint8_t file_no, uint32_t offset,
                               const uint8_t *data, uint32_t length, enum cardlib_comm_mode mode);
int cardlib_desfire_get_value(struct cardlib_desfire *d, uint8_t file_no,
                              enum cardlib_comm_mode mode, int32_t *value);
/* Debit answers CARDLIB_ERR_VALUE_EXHAUSTED when the card refuses for the lower limit. */
int cardlib_desfire_debit(struct cardlib_desfire *d, uint8_t file_no, enum cardlib_comm_mode mode,
                          int32_t amount);
int cardlib_desfire_credit(struct cardlib_desfire *d, uint8_t file_no, enum cardlib_comm_mode mode,
                           int32_t amount);
int cardlib_desfire_commit(struct cardlib_desfire *d);
int cardlib_desfire_abort(struct cardlib_desfire *d);

/* Personalisation. */
int cardlib_desfire_format_picc(struct cardlib_desfire *d);
/* An application with n_keys AES keys (all zero until changed). */
int cardlib_desfire_create_application(struct cardlib_desfire *d, uint32_t aid,
                                       uint8_t key_settings, uint8_t n_keys);
/* Change key_no to new_key (with its version); old_key is needed when key_no is not the
 * key of the session (the card checks new XOR old). */
int cardlib_desfire_change_key(struct cardlib_desfire *d, uint8_t key_no,
                               const uint8_t new_key[CARDLIB_AES_KEY_LEN], uint8_t new_version,
                               const uint8_t old_key[CARDLIB_AES_KEY_LEN]);
/* ChangeKey with keys of any type, under any session. At PICC level the new master key may
 * change type (DES, 3K3DES, AES); in an application every key has the application's type.
 * old_key: as above (NULL when key_no is the session's key). */
int cardlib_desfire_change_key_ex(struct cardlib_desfire *d, uint8_t key_no,
                                  const struct cardlib_key *new_key,
                                  const struct cardlib_key *old_key);
/* The key settings byte and the key count | key type byte of the selected level. */
int cardlib_desfire_get_key_settings(struct cardlib_desfire *d, uint8_t *settings, uint8_t *keys);
/* ChangeKeySettings (enciphered; the level's master key authenticated). */
int cardlib_desfire_change_key_settings(struct cardlib_desfire *d, uint8_t settings);
int cardlib_desfire_get_key_version(struct cardlib_desfire *d, uint8_t key_no, uint8_t *version);
/* SetConfiguration option 0 (PICC level, PICC master key): bit 1 random ID — for good, a
 * card cannot turn it off — bit 0 format disabled. */
#define CARDLIB_CONFIG_FORMAT_DISABLED 0x01
#define CARDLIB_CONFIG_RANDOM_ID       0x02
int cardlib_desfire_set_configuration(struct cardlib_desfire *d, uint8_t flags);
/* GetApplicationIDs: up to cap AIDs into aids, their number in *n. */
int cardlib_desfire_get_application_ids(struct cardlib_desfire *d, uint32_t *aids, size_t cap,
                                        size_t *n);
int cardlib_desfire_create_std_data_file(struct cardlib_desfire *d, uint8_t file_no,
                                         enum cardlib_comm_mode mode, uint16_t access,
                                         uint32_t size);
int cardlib_desfire_create_value_file(struct cardlib_desfire *d, uint8_t file_no,
                                      enum cardlib_comm_mode mode, uint16_t access, int32_t lower,
                                      int32_t upper, int32_t value, int limited_credit);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_DESFIRE_H */
