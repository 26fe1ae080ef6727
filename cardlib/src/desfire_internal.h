/*
 * desfire_internal.h — what desfire.c (sessions, commands) and desfire_sm.c (secure
 * messaging, crypto) share, and the test-only hooks (see "Test access" at the bottom).
 *
 * Layers, top to bottom:
 *   desfire.c     one function per DESFire command: builds header and data, parses the answer
 *   desfire_sm.c  desfire_sm_transact(): protects the command for the session in force
 *                 (none, EV1 AES, EV2) and checks/unprotects the answer
 *   desfire.c     desfire_frames(): ISO 7816-4 wrapping and AF continuation, both directions
 */
#ifndef CARDLIB_DESFIRE_INTERNAL_H
#define CARDLIB_DESFIRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/desfire.h"
#include "cardlib/reader.h"

/* Command codes (DESFire EV2 datasheet command set). */
enum desfire_cmd_code {
	DF_CMD_AUTH_LEGACY = 0x0A,
	DF_CMD_AUTH_ISO = 0x1A,
	DF_CMD_AUTH_AES = 0xAA,
	DF_CMD_AUTH_EV2_FIRST = 0x71,
	DF_CMD_ADDITIONAL_FRAME = 0xAF,
	DF_CMD_GET_VERSION = 0x60,
	DF_CMD_GET_CARD_UID = 0x51,
	DF_CMD_FORMAT_PICC = 0xFC,
	DF_CMD_CREATE_APPLICATION = 0xCA,
	DF_CMD_SELECT_APPLICATION = 0x5A,
	DF_CMD_CHANGE_KEY = 0xC4,
	DF_CMD_GET_KEY_SETTINGS = 0x45,
	DF_CMD_CHANGE_KEY_SETTINGS = 0x54,
	DF_CMD_GET_KEY_VERSION = 0x64,
	DF_CMD_SET_CONFIGURATION = 0x5C,
	DF_CMD_GET_APPLICATION_IDS = 0x6A,
	DF_CMD_CREATE_STD_DATA_FILE = 0xCD,
	DF_CMD_CREATE_VALUE_FILE = 0xCC,
	DF_CMD_READ_DATA = 0xBD,
	DF_CMD_WRITE_DATA = 0x3D,
	DF_CMD_GET_VALUE = 0x6C,
	DF_CMD_CREDIT = 0x0C,
	DF_CMD_DEBIT = 0xDC,
	DF_CMD_COMMIT = 0xC7,
	DF_CMD_ABORT = 0xA7,
};

/* DESFire status codes (SW2 after 0x91) that cardlib tells apart. */
enum desfire_status {
	DF_ST_OK = 0x00,
	DF_ST_INTEGRITY = 0x1E,
	DF_ST_PERMISSION = 0x9D,
	DF_ST_APP_NOT_FOUND = 0xA0,
	DF_ST_AUTH = 0xAE,
	DF_ST_ADDITIONAL_FRAME = 0xAF,
	DF_ST_BOUNDARY = 0xBE,
	DF_ST_ABORTED = 0xCA,
	DF_ST_EEPROM = 0xEE,
	DF_ST_FILE_NOT_FOUND = 0xF0,
};

/* Largest command or answer, after reassembly, that a session handles: a whole std data
 * file of an 8 KiB card plus MAC and padding. */
#define DESFIRE_MSG_MAX 8192u

enum desfire_session_kind {
	DESFIRE_SESSION_NONE = 0,
	DESFIRE_SESSION_LEGACY, /* Authenticate (0A): DESFire native, CRC16, "send mode" */
	DESFIRE_SESSION_EV1,    /* AuthenticateISO (1A) or AuthenticateAES (AA) */
	DESFIRE_SESSION_EV2,
};

/* The block ciphers of the key types. 2K3DES takes 16 bytes (K1 == K2: single DES). */
enum desfire_cipher {
	DESFIRE_CIPHER_AES = 0,
	DESFIRE_CIPHER_2K3DES,
	DESFIRE_CIPHER_3K3DES,
};

/* The secure-messaging state of an authenticated session. */
struct desfire_sm {
	enum desfire_session_kind kind;
	enum desfire_cipher cipher; /* of the session key; EV2 always AES */
	uint8_t key_no;             /* the key authenticated with (as sent, without PICC flags) */
	/* EV2: SesAuthENCKey / SesAuthMACKey. EV1 and legacy: enc_key holds the one session key
	 * (16 bytes, 24 for 3K3DES), mac_key a copy of its first 16. */
	uint8_t enc_key[24];
	uint8_t mac_key[16];
	uint8_t iv[16];   /* EV1: the running IV (CMACs and CBC chain through it; 8 bytes used
	                   * with a DES session key) */
	uint8_t ti[4];    /* EV2: transaction identifier */
	uint16_t cmd_ctr; /* EV2: command counter */
};

struct cardlib_desfire {
	struct cardlib_reader *reader;
	struct cardlib_target_info info;
	uint32_t aid; /* selected application (0 = PICC) */
	struct desfire_sm sm;
};

/* ---- frames (desfire.c) ---------------------------------------------------------------- */

/*
 * Send one native command (cmd ‖ params) ISO-wrapped, split in AF frames when long, and
 * collect the answer's data across AF frames into rx (at most rx_cap bytes, else
 * CARDLIB_ERR_OVERSIZED). *status gets the last SW2. With continue_af = 0 a single exchange
 * is made and an AF status is returned as is (authentication steps).
 */
int desfire_frames(struct cardlib_desfire *d, const uint8_t *cmd, size_t cmd_len, uint8_t *rx,
                   size_t rx_cap, size_t *rx_len, uint8_t *status, int continue_af);

/* The CARDLIB_ERR_* for a DESFire status answered to command `cmd` (0 for 0x00). */
int desfire_status_error(uint8_t cmd, uint8_t status);
/* Commands on a file's data, whose refusals the file's access rights decide. */
int desfire_is_file_command(uint8_t cmd);

/* ---- secure messaging (desfire_sm.c) --------------------------------------------------- */

/* One command as the caller means it; desfire_sm_transact() protects it for the session. */
struct desfire_cmd {
	uint8_t code;
	const uint8_t *hdr; /* sent plain in every mode (file number, offset, ...) */
	size_t hdr_len;
	const uint8_t *data; /* protected per cmd_mode */
	size_t data_len;
	enum cardlib_comm_mode cmd_mode;  /* for data; MACED also covers a data-less command */
	enum cardlib_comm_mode resp_mode; /* for the answer's data */
	size_t resp_min, resp_max;        /* plaintext answer length bounds */
	int ends_session; /* the card answers without MAC and drops the session (own ChangeKey) */
	int no_crc;       /* EV1 Full: the caller put its own CRC32s in data (ChangeKey) */
};

/*
 * Run one command under the session in force. 0 and the plaintext answer in resp (resp_max
 * bytes of room) with its length in *resp_len, or a CARDLIB_ERR_*: a card status mapped by
 * desfire_status_error(), _TRUNCATED / _OVERSIZED for an answer outside [resp_min,
 * resp_max] (or shorter than its MAC), _MAC for a MAC, CRC or padding that does not verify.
 * The session ends on _MAC and on the statuses after which the card drops it.
 */
int desfire_sm_transact(struct cardlib_desfire *d, const struct desfire_cmd *c, uint8_t *resp,
                        size_t *resp_len);

/* AuthenticateEV2First (0x71) and AuthenticateAES (0xAA). */
int desfire_sm_auth_ev2_first(struct cardlib_desfire *d, uint8_t key_no,
                              const uint8_t key[CARDLIB_AES_KEY_LEN]);
int desfire_sm_auth_ev1_aes(struct cardlib_desfire *d, uint8_t key_no,
                            const uint8_t key[CARDLIB_AES_KEY_LEN]);
/* Authenticate (0x0A, DES/2K3DES key of 16 bytes) and AuthenticateISO (0x1A, 16 bytes of
 * DES/2K3DES, or 24 of 3K3DES when three_key). */
int desfire_sm_auth_legacy(struct cardlib_desfire *d, uint8_t key_no, const uint8_t key[16]);
int desfire_sm_auth_iso(struct cardlib_desfire *d, uint8_t key_no, const uint8_t *key,
                        int three_key);

void desfire_sm_reset(struct desfire_sm *sm);

/* ---- crypto primitives (desfire_sm.c), exposed for the vector tests -------------------- */

/* AES-128 CMAC (RFC 4493) whose CBC chain starts at iv (NULL: zero, i.e. plain CMAC). */
int desfire_cmac(const uint8_t key[16], const uint8_t *iv, const uint8_t *msg, size_t len,
                 uint8_t mac[16]);
/* CBC on whole blocks; iv is updated to the last ciphertext block (chaining). */
int desfire_cbc_encrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                        size_t len);
int desfire_cbc_decrypt(const uint8_t key[16], uint8_t iv[16], const uint8_t *in, uint8_t *out,
                        size_t len);
/* DESFire's CRC32: IEEE 802.3 polynomial, reflected, preset ~0, NOT complemented at the
 * end, stored little-endian (libfreefare's desfire_crc32; AN12196 Table 25 step 7). */
void desfire_crc32(const uint8_t *data, size_t len, uint8_t out[4]);
/* EV2 session keys from Kx, RndA and RndB (SV1 = A5 5A ..., SV2 = 5A A5 ...). */
int desfire_ev2_session_keys(const uint8_t key[16], const uint8_t rnda[16], const uint8_t rndb[16],
                             uint8_t enc[16], uint8_t mac[16]);
/* MACt: the 8 odd-indexed bytes of a CMAC (S14, S12... in NXP's MSB-first numbering). */
void desfire_mact(const uint8_t cmac[16], uint8_t mact[8]);

/* Any cipher: block size (8 or 16), one block, CBC on whole blocks with iv updated to the
 * last ciphertext block, and CMAC (NIST SP 800-38B; Rb 0x1B for 64-bit blocks) whose chain
 * starts at iv (NULL: zero), the whole block-size MAC into mac. */
size_t desfire_cipher_block(enum desfire_cipher cipher);
int desfire_cipher_ecb(enum desfire_cipher cipher, const uint8_t *key, int encrypt,
                       const uint8_t *in, uint8_t *out);
int desfire_cipher_cbc(enum desfire_cipher cipher, const uint8_t *key, int encrypt, uint8_t *iv,
                       const uint8_t *in, uint8_t *out, size_t len);
int desfire_cipher_cmac(enum desfire_cipher cipher, const uint8_t *key, const uint8_t *iv,
                        const uint8_t *msg, size_t len, uint8_t *mac);
/* DESFire native ("legacy") chaining with a 2K3DES key: the reader "sends" with
 * c[i] = D(K, p[i] XOR c[i-1]) and "receives" with the ordinary CBC decryption, both from a
 * zero IV at each message (libfreefare 0.4.0's MCD_SEND/MCO_DECYPHER and MCD_RECEIVE). */
int desfire_legacy_send(const uint8_t key[16], uint8_t *buf, size_t len);
int desfire_legacy_receive(const uint8_t key[16], uint8_t *buf, size_t len);
/* CRC_A of ISO/IEC 14443-3 (preset 6363, reflected 8408), appended least significant byte
 * first: what legacy sessions put after enciphered data. */
void desfire_crc16(const uint8_t *data, size_t len, uint8_t out[2]);
/* Session keys of legacy and ISO authentication from RndA and RndB (libfreefare 0.4.0
 * mifare_desfire_session_key_new): 2K3DES RndA[0..3] RndB[0..3] RndA[4..7] RndB[4..7], the
 * first half twice when the key is single DES (its halves equal, parity bits aside); 3K3DES
 * RndA[0..3] RndB[0..3] RndA[6..9] RndB[6..9] RndA[12..15] RndB[12..15]. */
void desfire_des_session_key(const uint8_t *key, int three_key, const uint8_t *rnda,
                             const uint8_t *rndb, uint8_t out[24]);

/* ---- Test access ----------------------------------------------------------------------- */

/*
 * Where RndA comes from: by default getrandom(2). Tests install fill(ctx, buf, len), which
 * returns 0 or nonzero on failure (authentication then fails with CARDLIB_ERR_CRYPTO); NULL
 * restores the default. Process-wide: only tests and fuzz targets call it.
 */
typedef int (*cardlib_desfire_random_fn)(void *ctx, uint8_t *buf, size_t len);
void cardlib_desfire_set_random(cardlib_desfire_random_fn fill, void *ctx);

#endif /* CARDLIB_DESFIRE_INTERNAL_H */
