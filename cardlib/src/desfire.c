/*
 * desfire.c — MIFARE DESFire EV2 sessions, reader side: recognising the card, ISO 7816-4
 * framing with AF continuation, status codes, and one function per command of
 * cardlib/desfire.h. Secure messaging is desfire_sm.c's.
 *
 * Recognition (cardlib_desfire_open): ISO 14443-4 (SAK bit 0x20 and an ATS) is required. A
 * DESFire EV1/EV2/EV3 ATS carries the single historical byte 0x80; with it the card is
 * accepted without any command (DESIGN.md §9 counts reader commands per tap). Any other
 * ISO 14443-4 target is asked GetVersion: hardware vendor 0x04 (NXP) and type 0x01
 * (DESFire) are required.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "cardlib/desfire.h"
#include "cardlib/error.h"
#include "desfire_internal.h"

/* Bytes of command data per frame: a DESFire frame holds 64 bytes (FSCI 5 in its ATS); ISO
 * wrapping and the ISO 14443-4 block take the rest. Longer commands go in AF frames. */
#define DESFIRE_TX_CHUNK   54
#define DESFIRE_TIMEOUT_MS 500
/* A card answering AF forever is not believed past this many frames. */
#define DESFIRE_MAX_FRAMES 200

/* ---- frames --------------------------------------------------------------------------- */

/* One ISO-wrapped exchange: 90 code 00 00 [Lc data] 00 → data 91 SW2. */
static int exchange(struct cardlib_desfire *d, uint8_t code, const uint8_t *data, size_t len,
                    uint8_t *frame, size_t *frame_len, uint8_t *status)
{
	uint8_t apdu[6 + DESFIRE_TX_CHUNK];
	size_t n = 0;
	apdu[n++] = 0x90;
	apdu[n++] = code;
	apdu[n++] = 0x00;
	apdu[n++] = 0x00;
	if (len) {
		apdu[n++] = (uint8_t)len;
		memcpy(apdu + n, data, len);
		n += len;
	}
	apdu[n++] = 0x00;
	const int got = cardlib_reader_transceive(d->reader, apdu, n, frame, CARDLIB_FRAME_MAX,
	                                          DESFIRE_TIMEOUT_MS);
	if (got < 0)
		return got;
	if (got < 2)
		return CARDLIB_ERR_TRUNCATED;
	if (frame[got - 2] != 0x91)
		return CARDLIB_ERR_CARD_STATUS; /* an ISO status word: 67 00, 6A 86, 6D 00... */
	*status = frame[got - 1];
	*frame_len = (size_t)got - 2;
	return 0;
}

int desfire_frames(struct cardlib_desfire *d, const uint8_t *cmd, size_t cmd_len, uint8_t *rx,
                   size_t rx_cap, size_t *rx_len, uint8_t *status, int continue_af)
{
	uint8_t frame[CARDLIB_FRAME_MAX];
	size_t flen = 0;
	if (!cmd_len)
		return CARDLIB_ERR_ARG;
	*rx_len = 0;

	/* the command, in as many frames as it takes */
	size_t off = 1;
	uint8_t code = cmd[0];
	int frames = 0;
	for (;;) {
		const size_t rest = cmd_len - off;
		const size_t chunk = rest < DESFIRE_TX_CHUNK ? rest : DESFIRE_TX_CHUNK;
		int rc = exchange(d, code, cmd + off, chunk, frame, &flen, status);
		if (rc)
			return rc;
		off += chunk;
		frames++;
		if (off == cmd_len)
			break;
		if (*status != DF_ST_ADDITIONAL_FRAME)
			break; /* refused before the end of the command: the status says why */
		if (flen)
			return CARDLIB_ERR_OVERSIZED; /* "send more" carries no data */
		code = DF_CMD_ADDITIONAL_FRAME;
	}
	if (off != cmd_len) {
		if (flen > rx_cap)
			return CARDLIB_ERR_OVERSIZED;
		memcpy(rx, frame, flen);
		*rx_len = flen;
		return 0;
	}

	/* the answer, in as many frames as the card sends */
	size_t total = 0;
	for (;;) {
		if (flen > rx_cap - total)
			return CARDLIB_ERR_OVERSIZED;
		if (flen)
			memcpy(rx + total, frame, flen);
		total += flen;
		*rx_len = total;
		if (*status != DF_ST_ADDITIONAL_FRAME || !continue_af)
			return 0;
		if (++frames > DESFIRE_MAX_FRAMES)
			return CARDLIB_ERR_OVERSIZED;
		int rc = exchange(d, DF_CMD_ADDITIONAL_FRAME, NULL, 0, frame, &flen, status);
		if (rc)
			return rc;
	}
}

int desfire_status_error(uint8_t cmd, uint8_t status)
{
	switch (status) {
	case DF_ST_OK:
		return 0;
	case DF_ST_APP_NOT_FOUND:
		return cmd == DF_CMD_SELECT_APPLICATION ? CARDLIB_ERR_APP_MISSING
		                                        : CARDLIB_ERR_CARD_STATUS;
	case DF_ST_AUTH:
		return CARDLIB_ERR_AUTH;
	case DF_ST_PERMISSION:
		return CARDLIB_ERR_PERMISSION;
	case DF_ST_FILE_NOT_FOUND:
		return CARDLIB_ERR_FILE_MISSING;
	case DF_ST_BOUNDARY:
		return cmd == DF_CMD_DEBIT ? CARDLIB_ERR_VALUE_EXHAUSTED : CARDLIB_ERR_CARD_STATUS;
	case DF_ST_INTEGRITY:
		return CARDLIB_ERR_MAC;
	default:
		return CARDLIB_ERR_CARD_STATUS;
	}
}

int desfire_is_file_command(uint8_t cmd)
{
	switch (cmd) {
	case DF_CMD_READ_DATA:
	case DF_CMD_WRITE_DATA:
	case DF_CMD_GET_VALUE:
	case DF_CMD_CREDIT:
	case DF_CMD_DEBIT:
		return 1;
	default:
		return 0;
	}
}

/* ---- recognising the card ------------------------------------------------------------- */

/* The historical bytes of an ATS given T0 first (ISO/IEC 14443-4 §5.2). */
static int ats_historical(const struct cardlib_target_info *info, const uint8_t **hist, size_t *len)
{
	if (info->ats_len < 1 || info->ats_len > CARDLIB_ATS_MAX)
		return -1;
	const uint8_t t0 = info->ats[0];
	size_t i = 1;
	i += (t0 & 0x10) ? 1 : 0; /* TA(1) */
	i += (t0 & 0x20) ? 1 : 0; /* TB(1) */
	i += (t0 & 0x40) ? 1 : 0; /* TC(1) */
	if (i > info->ats_len)
		return -1;
	*hist = info->ats + i;
	*len = info->ats_len - i;
	return 0;
}

static int check_get_version(struct cardlib_desfire *d)
{
	static const uint8_t cmd[] = {DF_CMD_GET_VERSION};
	uint8_t v[28];
	size_t n = 0;
	uint8_t status = 0;
	int rc = desfire_frames(d, cmd, sizeof(cmd), v, sizeof(v), &n, &status, 1);
	if (rc == CARDLIB_ERR_CARD_STATUS)
		return CARDLIB_ERR_NOT_DESFIRE; /* an ISO status word: not a DESFire */
	if (rc == CARDLIB_ERR_OVERSIZED)
		return CARDLIB_ERR_NOT_DESFIRE;
	if (rc)
		return rc;
	if (status != DF_ST_OK || n != sizeof(v))
		return CARDLIB_ERR_NOT_DESFIRE;
	/* hardware part: vendor 04 (NXP), type 01 (DESFire) */
	if (v[0] != 0x04 || v[1] != 0x01)
		return CARDLIB_ERR_NOT_DESFIRE;
	return 0;
}

int cardlib_desfire_open(struct cardlib_desfire **out, struct cardlib_reader *reader,
                         const struct cardlib_target_info *info)
{
	if (!out || !reader || !info)
		return CARDLIB_ERR_ARG;
	*out = NULL;
	const uint8_t *hist = NULL;
	size_t hist_len = 0;
	if (!(info->sak & 0x20) || ats_historical(info, &hist, &hist_len) != 0)
		return CARDLIB_ERR_NOT_DESFIRE; /* MIFARE Classic, Ultralight, UID-only tags */

	struct cardlib_desfire *d = calloc(1, sizeof(*d));
	if (!d)
		return CARDLIB_ERR_NOMEM;
	d->reader = reader;
	d->info = *info;
	desfire_sm_reset(&d->sm);
	if (!(hist_len == 1 && hist[0] == 0x80)) {
		int rc = check_get_version(d);
		if (rc) {
			free(d);
			return rc;
		}
	}
	*out = d;
	return 0;
}

void cardlib_desfire_close(struct cardlib_desfire *d)
{
	if (!d)
		return;
	mbedtls_platform_zeroize(d, sizeof(*d));
	free(d);
}

/* ---- encoding helpers ----------------------------------------------------------------- */

static void put_le(uint8_t *p, uint32_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int valid_mode(enum cardlib_comm_mode mode)
{
	return mode == CARDLIB_COMM_PLAIN || mode == CARDLIB_COMM_MACED ||
	       mode == CARDLIB_COMM_FULL;
}

/* A command without answer data. Management commands travel MACed under EV2 (and CMACed
 * for the IV under EV1); resp_mode MACED makes the answer's MAC checked. */
static int simple(struct cardlib_desfire *d, uint8_t code, const uint8_t *hdr, size_t hdr_len)
{
	const struct desfire_cmd c = {
	        .code = code,
	        .hdr = hdr,
	        .hdr_len = hdr_len,
	        .cmd_mode = CARDLIB_COMM_MACED,
	        .resp_mode = CARDLIB_COMM_MACED,
	};
	size_t n = 0;
	return desfire_sm_transact(d, &c, NULL, &n);
}

/* ---- application level ---------------------------------------------------------------- */

int cardlib_desfire_select_application(struct cardlib_desfire *d, uint32_t aid)
{
	if (!d || aid > 0xFFFFFF)
		return CARDLIB_ERR_ARG;
	uint8_t hdr[3];
	put_le(hdr, aid, 3);
	/* SelectApplication ends any session: it travels plain */
	desfire_sm_reset(&d->sm);
	const struct desfire_cmd c = {
	        .code = DF_CMD_SELECT_APPLICATION,
	        .hdr = hdr,
	        .hdr_len = sizeof(hdr),
	};
	size_t n = 0;
	int rc = desfire_sm_transact(d, &c, NULL, &n);
	if (rc == 0)
		d->aid = aid;
	return rc;
}

int cardlib_desfire_authenticate(struct cardlib_desfire *d, enum cardlib_auth_kind kind,
                                 uint8_t key_no, const uint8_t key[CARDLIB_AES_KEY_LEN])
{
	if (!d || !key || key_no > 13)
		return CARDLIB_ERR_ARG;
	switch (kind) {
	case CARDLIB_AUTH_EV2:
		return desfire_sm_auth_ev2_first(d, key_no, key);
	case CARDLIB_AUTH_EV1:
		return desfire_sm_auth_ev1_aes(d, key_no, key);
	case CARDLIB_AUTH_LEGACY:
	case CARDLIB_AUTH_ISO:
		break; /* DES keys: cardlib_desfire_authenticate_key() */
	}
	return CARDLIB_ERR_ARG;
}

/* ---- keys of any type ----------------------------------------------------------------- */

static size_t key_len(enum cardlib_key_type type)
{
	return type == CARDLIB_KEY_3K3DES ? 24 : 16;
}

static int key_type_valid(enum cardlib_key_type type)
{
	return type == CARDLIB_KEY_DES || type == CARDLIB_KEY_3K3DES || type == CARDLIB_KEY_AES;
}

int cardlib_key_make(struct cardlib_key *k, enum cardlib_key_type type, const uint8_t *bytes,
                     size_t len, uint8_t version)
{
	if (!k || !bytes || !key_type_valid(type) || len != key_len(type))
		return CARDLIB_ERR_ARG;
	memset(k, 0, sizeof(*k));
	k->type = type;
	memcpy(k->bytes, bytes, len);
	k->version = type == CARDLIB_KEY_AES ? version : 0;
	if (type != CARDLIB_KEY_AES)
		cardlib_key_set_des_version(k, version);
	return 0;
}

void cardlib_key_set_des_version(struct cardlib_key *k, uint8_t version)
{
	if (!k || k->type == CARDLIB_KEY_AES)
		return;
	int single = k->type == CARDLIB_KEY_DES;
	for (int i = 0; single && i < 8; i++)
		single = ((k->bytes[i] ^ k->bytes[i + 8]) & 0xFE) == 0;
	for (int i = 0; i < 8; i++) {
		k->bytes[i] = (uint8_t)((k->bytes[i] & 0xFE) | ((version >> (7 - i)) & 1));
		if (single)
			k->bytes[i + 8] = k->bytes[i];
	}
}

int cardlib_desfire_authenticate_key(struct cardlib_desfire *d, enum cardlib_auth_kind kind,
                                     uint8_t key_no, const struct cardlib_key *key)
{
	if (!d || !key || key_no > 13 || !key_type_valid(key->type))
		return CARDLIB_ERR_ARG;
	switch (kind) {
	case CARDLIB_AUTH_EV2:
	case CARDLIB_AUTH_EV1:
		if (key->type != CARDLIB_KEY_AES)
			return CARDLIB_ERR_ARG;
		return cardlib_desfire_authenticate(d, kind, key_no, key->bytes);
	case CARDLIB_AUTH_LEGACY:
		if (key->type != CARDLIB_KEY_DES)
			return CARDLIB_ERR_ARG;
		return desfire_sm_auth_legacy(d, key_no, key->bytes);
	case CARDLIB_AUTH_ISO:
		if (key->type == CARDLIB_KEY_AES)
			return CARDLIB_ERR_ARG;
		return desfire_sm_auth_iso(d, key_no, key->bytes, key->type == CARDLIB_KEY_3K3DES);
	}
	return CARDLIB_ERR_ARG;
}

int cardlib_desfire_get_card_uid(struct cardlib_desfire *d, uint8_t uid[CARDLIB_UID_MAX],
                                 size_t *uid_len)
{
	if (!d || !uid || !uid_len)
		return CARDLIB_ERR_ARG;
	if (d->sm.kind == DESFIRE_SESSION_NONE)
		return CARDLIB_ERR_AUTH; /* the answer is enciphered with a session key */
	const struct desfire_cmd c = {
	        .code = DF_CMD_GET_CARD_UID,
	        .cmd_mode = CARDLIB_COMM_MACED,
	        .resp_mode = CARDLIB_COMM_FULL,
	        .resp_min = 4,
	        .resp_max = CARDLIB_UID_MAX,
	};
	return desfire_sm_transact(d, &c, uid, uid_len);
}

/* ---- data files ----------------------------------------------------------------------- */

int cardlib_desfire_read_data(struct cardlib_desfire *d, uint8_t file_no, uint32_t offset,
                              uint32_t length, enum cardlib_comm_mode mode, uint8_t *out)
{
	if (!d || !out || file_no > 31 || offset > 0xFFFFFF || length == 0 ||
	    length > DESFIRE_MSG_MAX - 64 || !valid_mode(mode))
		return CARDLIB_ERR_ARG;
	uint8_t hdr[7];
	hdr[0] = file_no;
	put_le(hdr + 1, offset, 3);
	put_le(hdr + 4, length, 3);
	const struct desfire_cmd c = {
	        .code = DF_CMD_READ_DATA,
	        .hdr = hdr,
	        .hdr_len = sizeof(hdr),
	        .cmd_mode = mode == CARDLIB_COMM_PLAIN ? CARDLIB_COMM_PLAIN : CARDLIB_COMM_MACED,
	        .resp_mode = mode,
	        .resp_min = length,
	        .resp_max = length,
	};
	size_t n = 0;
	return desfire_sm_transact(d, &c, out, &n);
}

int cardlib_desfire_write_data(struct cardlib_desfire *d, uint8_t file_no, uint32_t offset,
                               const uint8_t *data, uint32_t length, enum cardlib_comm_mode mode)
{
	if (!d || !data || file_no > 31 || offset > 0xFFFFFF || length == 0 ||
	    length > DESFIRE_MSG_MAX - 64 || !valid_mode(mode))
		return CARDLIB_ERR_ARG;
	uint8_t hdr[7];
	hdr[0] = file_no;
	put_le(hdr + 1, offset, 3);
	put_le(hdr + 4, length, 3);
	const struct desfire_cmd c = {
	        .code = DF_CMD_WRITE_DATA,
	        .hdr = hdr,
	        .hdr_len = sizeof(hdr),
	        .data = data,
	        .data_len = length,
	        .cmd_mode = mode,
	        .resp_mode = mode == CARDLIB_COMM_PLAIN ? CARDLIB_COMM_PLAIN : CARDLIB_COMM_MACED,
	};
	size_t n = 0;
	return desfire_sm_transact(d, &c, NULL, &n);
}

/* ---- value files ---------------------------------------------------------------------- */

int cardlib_desfire_get_value(struct cardlib_desfire *d, uint8_t file_no,
                              enum cardlib_comm_mode mode, int32_t *value)
{
	if (!d || !value || file_no > 31 || !valid_mode(mode))
		return CARDLIB_ERR_ARG;
	const struct desfire_cmd c = {
	        .code = DF_CMD_GET_VALUE,
	        .hdr = &file_no,
	        .hdr_len = 1,
	        .cmd_mode = mode == CARDLIB_COMM_PLAIN ? CARDLIB_COMM_PLAIN : CARDLIB_COMM_MACED,
	        .resp_mode = mode,
	        .resp_min = 4,
	        .resp_max = 4,
	};
	uint8_t v[4];
	size_t n = 0;
	int rc = desfire_sm_transact(d, &c, v, &n);
	if (rc)
		return rc;
	*value = (int32_t)((uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 |
	                   (uint32_t)v[3] << 24);
	return 0;
}

static int value_op(struct cardlib_desfire *d, uint8_t code, uint8_t file_no,
                    enum cardlib_comm_mode mode, int32_t amount)
{
	if (!d || file_no > 31 || amount < 0 || !valid_mode(mode))
		return CARDLIB_ERR_ARG;
	uint8_t v[4];
	put_le(v, (uint32_t)amount, 4);
	const struct desfire_cmd c = {
	        .code = code,
	        .hdr = &file_no,
	        .hdr_len = 1,
	        .data = v,
	        .data_len = sizeof(v),
	        .cmd_mode = mode,
	        .resp_mode = mode == CARDLIB_COMM_PLAIN ? CARDLIB_COMM_PLAIN : CARDLIB_COMM_MACED,
	};
	size_t n = 0;
	return desfire_sm_transact(d, &c, NULL, &n);
}

int cardlib_desfire_debit(struct cardlib_desfire *d, uint8_t file_no, enum cardlib_comm_mode mode,
                          int32_t amount)
{
	return value_op(d, DF_CMD_DEBIT, file_no, mode, amount);
}

int cardlib_desfire_credit(struct cardlib_desfire *d, uint8_t file_no, enum cardlib_comm_mode mode,
                           int32_t amount)
{
	return value_op(d, DF_CMD_CREDIT, file_no, mode, amount);
}

int cardlib_desfire_commit(struct cardlib_desfire *d)
{
	if (!d)
		return CARDLIB_ERR_ARG;
	return simple(d, DF_CMD_COMMIT, NULL, 0);
}

int cardlib_desfire_abort(struct cardlib_desfire *d)
{
	if (!d)
		return CARDLIB_ERR_ARG;
	return simple(d, DF_CMD_ABORT, NULL, 0);
}

/* ---- personalisation ------------------------------------------------------------------ */

int cardlib_desfire_format_picc(struct cardlib_desfire *d)
{
	if (!d)
		return CARDLIB_ERR_ARG;
	int rc = simple(d, DF_CMD_FORMAT_PICC, NULL, 0);
	if (rc == 0)
		desfire_sm_reset(&d->sm); /* the card drops the session with the applications */
	return rc;
}

int cardlib_desfire_create_application(struct cardlib_desfire *d, uint32_t aid,
                                       uint8_t key_settings, uint8_t n_keys)
{
	if (!d || aid == 0 || aid > 0xFFFFFF || n_keys < 1 || n_keys > 14)
		return CARDLIB_ERR_ARG;
	uint8_t hdr[5];
	put_le(hdr, aid, 3);
	hdr[3] = key_settings;
	hdr[4] = (uint8_t)(0x80 | n_keys); /* bits 7-6 = 10: AES keys */
	return simple(d, DF_CMD_CREATE_APPLICATION, hdr, sizeof(hdr));
}

int cardlib_desfire_change_key(struct cardlib_desfire *d, uint8_t key_no,
                               const uint8_t new_key[CARDLIB_AES_KEY_LEN], uint8_t new_version,
                               const uint8_t old_key[CARDLIB_AES_KEY_LEN])
{
	struct cardlib_key nk, ok;
	if (!new_key)
		return CARDLIB_ERR_ARG;
	cardlib_key_make(&nk, CARDLIB_KEY_AES, new_key, 16, new_version);
	if (old_key)
		cardlib_key_make(&ok, CARDLIB_KEY_AES, old_key, 16, 0);
	int rc = cardlib_desfire_change_key_ex(d, key_no, &nk, old_key ? &ok : NULL);
	mbedtls_platform_zeroize(&nk, sizeof(nk));
	mbedtls_platform_zeroize(&ok, sizeof(ok));
	return rc;
}

/*
 * ChangeKey's cryptogram, for the session in force (libfreefare 0.4.0
 * mifare_desfire_change_key(); NT4H2421Gx Table 63 for EV2):
 *   key data = new key (same key) or new XOR old (another key), 16 bytes or 24 (3K3DES),
 *              then the version byte for an AES key (always under EV2);
 *   EV2:       key data [‖ CRC32(new key)], in CommMode.Full;
 *   EV1:       key data ‖ CRC32(C4 ‖ KeyNo ‖ key data) [‖ CRC32(new key)], enciphered;
 *   legacy:    key data ‖ CRC16(key data) [‖ CRC16(new key)], enciphered in send mode.
 * At PICC level KeyNo's bits 7-6 give the new master key's type (00 DES, 40 3K3DES, 80 AES).
 */
int cardlib_desfire_change_key_ex(struct cardlib_desfire *d, uint8_t key_no,
                                  const struct cardlib_key *new_key,
                                  const struct cardlib_key *old_key)
{
	if (!d || !new_key || key_no > 13 || (d->aid == 0 && key_no != 0) ||
	    !key_type_valid(new_key->type))
		return CARDLIB_ERR_ARG;
	if (d->sm.kind == DESFIRE_SESSION_NONE)
		return CARDLIB_ERR_AUTH; /* the new key travels enciphered */
	const int same = key_no == d->sm.key_no;
	if (!same && !old_key)
		return CARDLIB_ERR_ARG;
	if (d->sm.kind == DESFIRE_SESSION_EV2 && new_key->type != CARDLIB_KEY_AES)
		return CARDLIB_ERR_ARG; /* cardlib's EV2 sessions change AES keys only */

	const uint8_t kn = (uint8_t)(key_no | (d->aid == 0 ? (uint8_t)new_key->type : 0x00));
	const size_t klen = key_len(new_key->type);
	uint8_t data[48];
	size_t n = 0;
	for (size_t i = 0; i < klen; i++)
		data[i] = (uint8_t)(new_key->bytes[i] ^ (same ? 0 : old_key->bytes[i]));
	n = klen;
	if (new_key->type == CARDLIB_KEY_AES || d->sm.kind == DESFIRE_SESSION_EV2)
		data[n++] = new_key->version;
	switch (d->sm.kind) {
	case DESFIRE_SESSION_EV2:
		if (!same) {
			desfire_crc32(new_key->bytes, klen, data + n);
			n += 4;
		}
		break;
	case DESFIRE_SESSION_EV1: {
		uint8_t crcin[2 + 25];
		crcin[0] = DF_CMD_CHANGE_KEY;
		crcin[1] = kn;
		memcpy(crcin + 2, data, n);
		desfire_crc32(crcin, 2 + n, data + n);
		mbedtls_platform_zeroize(crcin, sizeof(crcin));
		n += 4;
		if (!same) {
			desfire_crc32(new_key->bytes, klen, data + n);
			n += 4;
		}
		break;
	}
	default: /* legacy */
		desfire_crc16(data, n, data + n);
		n += 2;
		if (!same) {
			desfire_crc16(new_key->bytes, klen, data + n);
			n += 2;
		}
		break;
	}
	const struct desfire_cmd c = {
	        .code = DF_CMD_CHANGE_KEY,
	        .hdr = &kn,
	        .hdr_len = 1,
	        .data = data,
	        .data_len = n,
	        .cmd_mode = CARDLIB_COMM_FULL,
	        .resp_mode = CARDLIB_COMM_MACED,
	        .ends_session = same,
	        .no_crc = 1,
	};
	size_t rn = 0;
	int rc = desfire_sm_transact(d, &c, NULL, &rn);
	mbedtls_platform_zeroize(data, sizeof(data));
	return rc;
}

int cardlib_desfire_get_key_settings(struct cardlib_desfire *d, uint8_t *settings, uint8_t *keys)
{
	if (!d || !settings || !keys)
		return CARDLIB_ERR_ARG;
	const struct desfire_cmd c = {
	        .code = DF_CMD_GET_KEY_SETTINGS,
	        .cmd_mode = CARDLIB_COMM_MACED,
	        .resp_mode = CARDLIB_COMM_MACED,
	        .resp_min = 2,
	        .resp_max = 2,
	};
	uint8_t v[2];
	size_t n = 0;
	int rc = desfire_sm_transact(d, &c, v, &n);
	if (rc == 0) {
		*settings = v[0];
		*keys = v[1];
	}
	return rc;
}

int cardlib_desfire_change_key_settings(struct cardlib_desfire *d, uint8_t settings)
{
	if (!d)
		return CARDLIB_ERR_ARG;
	if (d->sm.kind == DESFIRE_SESSION_NONE)
		return CARDLIB_ERR_AUTH; /* the settings travel enciphered */
	const struct desfire_cmd c = {
	        .code = DF_CMD_CHANGE_KEY_SETTINGS,
	        .data = &settings,
	        .data_len = 1,
	        .cmd_mode = CARDLIB_COMM_FULL,
	        .resp_mode = CARDLIB_COMM_MACED,
	};
	size_t n = 0;
	return desfire_sm_transact(d, &c, NULL, &n);
}

int cardlib_desfire_get_key_version(struct cardlib_desfire *d, uint8_t key_no, uint8_t *version)
{
	if (!d || !version || key_no > 13)
		return CARDLIB_ERR_ARG;
	const struct desfire_cmd c = {
	        .code = DF_CMD_GET_KEY_VERSION,
	        .hdr = &key_no,
	        .hdr_len = 1,
	        .cmd_mode = CARDLIB_COMM_MACED,
	        .resp_mode = CARDLIB_COMM_MACED,
	        .resp_min = 1,
	        .resp_max = 1,
	};
	size_t n = 0;
	return desfire_sm_transact(d, &c, version, &n);
}

int cardlib_desfire_set_configuration(struct cardlib_desfire *d, uint8_t flags)
{
	if (!d || d->aid != 0 ||
	    (flags & ~(CARDLIB_CONFIG_FORMAT_DISABLED | CARDLIB_CONFIG_RANDOM_ID)))
		return CARDLIB_ERR_ARG;
	if (d->sm.kind == DESFIRE_SESSION_NONE)
		return CARDLIB_ERR_AUTH;
	static const uint8_t option = 0x00;
	const struct desfire_cmd c = {
	        .code = DF_CMD_SET_CONFIGURATION,
	        .hdr = &option,
	        .hdr_len = 1,
	        .data = &flags,
	        .data_len = 1,
	        .cmd_mode = CARDLIB_COMM_FULL,
	        .resp_mode = CARDLIB_COMM_MACED,
	};
	size_t n = 0;
	return desfire_sm_transact(d, &c, NULL, &n);
}

int cardlib_desfire_get_application_ids(struct cardlib_desfire *d, uint32_t *aids, size_t cap,
                                        size_t *n)
{
	if (!d || !n || (cap && !aids))
		return CARDLIB_ERR_ARG;
	/* at most 28 applications on EV1 (more on EV2: up to what two frames carry here) */
	uint8_t v[3 * 38];
	size_t len = 0;
	const struct desfire_cmd c = {
	        .code = DF_CMD_GET_APPLICATION_IDS,
	        .cmd_mode = CARDLIB_COMM_MACED,
	        .resp_mode = CARDLIB_COMM_MACED,
	        .resp_min = 0,
	        .resp_max = sizeof(v),
	};
	int rc = desfire_sm_transact(d, &c, v, &len);
	if (rc)
		return rc;
	if (len % 3)
		return CARDLIB_ERR_TRUNCATED;
	*n = len / 3;
	for (size_t i = 0; i < *n && i < cap; i++)
		aids[i] = (uint32_t)v[3 * i] | (uint32_t)v[3 * i + 1] << 8 |
		          (uint32_t)v[3 * i + 2] << 16;
	return 0;
}

int cardlib_desfire_create_std_data_file(struct cardlib_desfire *d, uint8_t file_no,
                                         enum cardlib_comm_mode mode, uint16_t access,
                                         uint32_t size)
{
	if (!d || file_no > 31 || !valid_mode(mode) || size == 0 || size > 0xFFFFFF)
		return CARDLIB_ERR_ARG;
	uint8_t hdr[7];
	hdr[0] = file_no;
	hdr[1] = (uint8_t)mode;
	put_le(hdr + 2, access, 2);
	put_le(hdr + 4, size, 3);
	return simple(d, DF_CMD_CREATE_STD_DATA_FILE, hdr, sizeof(hdr));
}

int cardlib_desfire_create_value_file(struct cardlib_desfire *d, uint8_t file_no,
                                      enum cardlib_comm_mode mode, uint16_t access, int32_t lower,
                                      int32_t upper, int32_t value, int limited_credit)
{
	if (!d || file_no > 31 || !valid_mode(mode) || lower > upper || value < lower ||
	    value > upper)
		return CARDLIB_ERR_ARG;
	uint8_t hdr[17];
	hdr[0] = file_no;
	hdr[1] = (uint8_t)mode;
	put_le(hdr + 2, access, 2);
	put_le(hdr + 4, (uint32_t)lower, 4);
	put_le(hdr + 8, (uint32_t)upper, 4);
	put_le(hdr + 12, (uint32_t)value, 4);
	hdr[16] = limited_credit ? 0x01 : 0x00;
	return simple(d, DF_CMD_CREATE_VALUE_FILE, hdr, sizeof(hdr));
}
