/*
 * desfire_card.c — a virtual MIFARE DESFire EV2 card: framing, command dispatcher, secure
 * messaging and file system, card side.
 *
 * Written from NXP's public descriptions (AN12343, AN12196, NT4H2421Gx §9, the DESFire EV1
 * command set as documented in the open literature) and checked against libfreefare 0.4.0
 * as the independent reader for EV1 AES. One exchange of the reader is one DESFire frame:
 *
 *   ISO 7816-4 wrapped:  90 CMD 00 00 [Lc data] 00   answered   data 91 SW2
 *   native:              CMD data                   answered   SW2 data
 *
 * Long answers and long commands are chained with status/command AF (ADDITIONAL_FRAME).
 *
 * Secure messaging, one of four states after an authentication:
 *   none     plain frames;
 *   legacy   DES/2K3DES authentication (0x0A): plain frames, 4-byte MACs on MACed file
 *            data, enciphered parts with CRC16 and the legacy "send mode" chaining;
 *   EV1      AuthenticateISO (0x1A, DES/2K3DES/3K3DES keys) or AuthenticateAES (0xAA): one
 *            running IV for the session, updated by the CMAC of every command and response
 *            (8-byte CMACs), enciphered parts with CRC32, on the session key's cipher;
 *   EV2      AuthenticateEV2First (0x71): session keys from SV1/SV2, TI, CmdCtr, MACt over
 *            Cmd || CmdCtr || TI || data, IVs derived from TI and CmdCtr, 80-padding.
 * Every command declares how it is secured (struct command below); the file data commands
 * decide at run time from the file's communication settings and from which access right
 * granted them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <mbedtls/platform_util.h>

#include "hil/desfire.h"

#include "card_image.h"
#include "desfire_crypto.h"

/* Return codes (SW2 of 91xx). */
#define ST_OK               0x00
#define ST_OUT_OF_EEPROM    0x0E
#define ST_ILLEGAL_COMMAND  0x1C
#define ST_INTEGRITY        0x1E
#define ST_NO_SUCH_KEY      0x40
#define ST_LENGTH           0x7E
#define ST_PERMISSION       0x9D
#define ST_PARAMETER        0x9E
#define ST_APP_NOT_FOUND    0xA0
#define ST_AUTHENTICATION   0xAE
#define ST_ADDITIONAL_FRAME 0xAF
#define ST_BOUNDARY         0xBE
#define ST_COMMAND_ABORTED  0xCA
#define ST_COUNT            0xCE
#define ST_DUPLICATE        0xDE
#define ST_EEPROM           0xEE
#define ST_FILE_NOT_FOUND   0xF0
/* Not on the wire: the handler needs more frames before it can run. */
#define ST_NEED_MORE 0x100

#define CMD_AUTH_LEGACY     0x0A
#define CMD_AUTH_ISO        0x1A
#define CMD_AUTH_AES        0xAA
#define CMD_AUTH_EV2_FIRST  0x71
#define CMD_AUTH_EV2_NONFST 0x77
#define CMD_ADDITIONAL      0xAF
#define CMD_CHANGE_KEY      0xC4

/* Key settings bits (PICC and application). */
#define KS_MASTER_CHANGEABLE 0x01
#define KS_FREE_LISTING      0x02
#define KS_FREE_CREATE       0x04
#define KS_CONFIG_CHANGEABLE 0x08

/* Access right nibbles. */
#define AR_FREE  0xE
#define AR_NEVER 0xF
#define AR_READ  0x8 /* which rights a command accepts, as a mask */
#define AR_WRITE 0x4
#define AR_RW    0x2

#define FRAME_DATA_MAX 59 /* data bytes in one answer frame */
#define MSG_MAX        (HIL_DF_CAPACITY + 64)

static const uint8_t ats_desfire_ev2[] = {0x06, 0x75, 0x77, 0x81, 0x02, 0x80};

/* AUTH_EV1 is the "new" secure messaging of EV1, entered by AuthenticateISO (0x1A, DES,
 * 2K3DES and 3K3DES keys) and AuthenticateAES (0xAA): CMAC and CRC32, a running IV; the
 * session's cipher decides the block size. */
enum auth_kind { AUTH_NONE, AUTH_LEGACY, AUTH_EV1, AUTH_EV2 };

/* How a command's parameters are secured (see sm_unwrap for each session kind). */
enum cmd_mode {
	CM_NONE,  /* never: authentication, selection */
	CM_PLAIN, /* EV1: CMAC over the frame to update the IV, none sent; EV2: nothing */
	CM_MGMT,  /* EV1: as CM_PLAIN; EV2: MACt appended (CommMode.MAC) */
	CM_MAC,   /* EV1: CMAC appended; EV2: MACt appended */
	CM_FULL,  /* EV1: enciphered with CRC32; EV2: enciphered + MACt; legacy: CRC16 */
	CM_SELF,  /* the handler calls sm_unwrap once it knows the mode */
};

/* How an answer is secured. */
enum resp_mode {
	RM_NONE,     /* never (the session just started or ended) */
	RM_PLAIN,    /* EV1: data || CMAC; EV2: data */
	RM_MAC,      /* EV1: data || CMAC; EV2: data || MACt; legacy: data */
	RM_DATA_MAC, /* MACed file data: as RM_MAC, and legacy: data || 4-byte MAC */
	RM_FULL,     /* EV1: E(data || CRC32); EV2: E(data) || MACt; legacy: E(data || CRC16) */
};

enum pending { PEND_NONE, PEND_AUTH, PEND_OUT, PEND_IN };

struct session {
	enum auth_kind kind;
	enum hil_df_cipher cipher; /* of the session key (EV2: AES) */
	uint8_t key_no;
	uint8_t enc[24]; /* EV1/legacy session key, EV2 SesAuthENCKey */
	uint8_t mac[16]; /* EV2 SesAuthMACKey */
	uint8_t iv[16];  /* EV1 running IV */
	uint8_t ti[4];   /* EV2 */
	uint16_t ctr;    /* EV2 CmdCtr */
};

struct pending_auth {
	uint8_t cmd;
	uint8_t key_no;
	enum hil_df_cipher cipher;
	uint8_t key[24];
	uint8_t rnd_b[16];
	uint8_t iv[16];
	uint8_t pcd_cap2[6];
};

/* Changes waiting for CommitTransaction: value files (value), backup data files (data, a
 * copy of the file being written) and record files (a record being written, or cleared). */
struct txn_entry {
	uint8_t touched;
	uint8_t limited_used;
	int32_t value;
	int64_t debited;
	uint8_t *data;   /* backup file: the new contents; record file: the new record */
	uint8_t cleared; /* ClearRecordFile */
	uint8_t record;  /* a record was written */
};

struct hil_desfire_card {
	char *path;
	struct hil_df_picc picc;
	struct stat image_stat; /* of the image as last loaded or saved */
	int dirty;              /* persistent state changed by the running command */
	hil_desfire_random_fn random;
	void *random_ctx;

	/* volatile state: lost at deactivation */
	uint8_t rf_uid[HIL_DF_UID_LEN];
	uint8_t rf_uid_len;
	int used;               /* frames were exchanged since the last activation */
	struct hil_df_app *app; /* NULL: PICC level */
	struct session auth;
	struct txn_entry txn[HIL_DF_MAX_FILES];
	enum pending pending;
	struct pending_auth pauth;
	size_t msg_len, msg_off; /* PEND_OUT: wrapped answer being sent */
	/* sizes of the first frames of a chained answer (GetVersion, GetDFNames) */
	size_t plan[HIL_DF_MAX_APPS], nplan, iplan;
	size_t rx_len, rx_need; /* PEND_IN: command being received */

	/* the answer to the current exchange */
	uint8_t ans_status;
	uint8_t ans[FRAME_DATA_MAX + 8];
	size_t ans_len;

	uint8_t rx[MSG_MAX];    /* command frame, reassembled */
	uint8_t plain[MSG_MAX]; /* its parameters, deciphered */
	uint8_t resp[MSG_MAX];  /* answer data, before secure messaging */
	uint8_t msg[MSG_MAX + 64];
};

struct req {
	uint8_t cmd;
	const uint8_t *frame; /* command code and parameters, as received */
	size_t frame_len;
	const uint8_t *data; /* parameters; deciphered and without MAC once unwrapped */
	size_t len;
	int sm_done; /* the command's secure messaging was processed */
	size_t need; /* ST_NEED_MORE: parameter bytes the whole command has */
	size_t resp_len;
	enum resp_mode mode;
	int drop_session; /* after the answer: ChangeKey of the session key, FormatPICC... */
	const size_t *plan;
	size_t nplan;
	size_t own_plan[HIL_DF_MAX_APPS];
};

/* ---- small helpers --------------------------------------------------------------------- */

static uint32_t le24(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static int32_t le32s(const uint8_t *p)
{
	const uint32_t u =
	        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	return (int32_t)u;
}

static void put_le(uint8_t *p, uint32_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static size_t pad_to(size_t n, size_t block)
{
	return (n + block - 1) / block * block;
}

static int draw_random(struct hil_desfire_card *c, uint8_t *buf, size_t len)
{
	if (c->random)
		return c->random(c->random_ctx, buf, len) ? -1 : 0;
	size_t got = 0;
	while (got < len) {
		const ssize_t n = getrandom(buf + got, len - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

static void new_rf_uid(struct hil_desfire_card *c)
{
	if (!c->picc.random_id) {
		memcpy(c->rf_uid, c->picc.uid, HIL_DF_UID_LEN);
		c->rf_uid_len = HIL_DF_UID_LEN;
		return;
	}
	/* ISO/IEC 14443-3: a single-size UID starting with 08h is a random ID */
	c->rf_uid[0] = 0x08;
	if (draw_random(c, c->rf_uid + 1, 3))
		memset(c->rf_uid + 1, 0, 3);
	c->rf_uid_len = 4;
}

static void session_clear(struct hil_desfire_card *c)
{
	mbedtls_platform_zeroize(&c->auth, sizeof(c->auth));
	c->auth.kind = AUTH_NONE;
}

static void txn_clear(struct txn_entry *t)
{
	free(t->data);
	memset(t, 0, sizeof(*t));
}

static void txn_abort(struct hil_desfire_card *c)
{
	for (size_t i = 0; i < HIL_DF_MAX_FILES; i++)
		txn_clear(&c->txn[i]);
}

static void pending_clear(struct hil_desfire_card *c)
{
	mbedtls_platform_zeroize(&c->pauth, sizeof(c->pauth));
	c->pending = PEND_NONE;
	c->msg_len = c->msg_off = 0;
	c->rx_len = c->rx_need = 0;
	c->nplan = c->iplan = 0;
}

static void volatile_reset(struct hil_desfire_card *c)
{
	session_clear(c);
	pending_clear(c);
	txn_abort(c);
	c->app = NULL;
}

static int authenticated(const struct hil_desfire_card *c)
{
	return c->auth.kind != AUTH_NONE;
}

static unsigned level_nkeys(const struct hil_desfire_card *c)
{
	return c->app ? c->app->nkeys : 1;
}

static uint8_t level_settings(const struct hil_desfire_card *c)
{
	return c->app ? c->app->settings : c->picc.settings;
}

static uint8_t level_key_type(const struct hil_desfire_card *c)
{
	return c->app ? c->app->key_type : c->picc.key_type;
}

static struct hil_df_key *level_key(struct hil_desfire_card *c, unsigned no)
{
	if (no >= level_nkeys(c))
		return NULL;
	return c->app ? &c->app->keys[no] : &c->picc.key;
}

/* 0 when the master key of the current level is authenticated. */
static int need_master(const struct hil_desfire_card *c)
{
	if (!authenticated(c))
		return ST_AUTHENTICATION;
	return c->auth.key_no == 0 ? 0 : ST_PERMISSION;
}

static int need_master_unless(const struct hil_desfire_card *c, uint8_t free_bit)
{
	return (level_settings(c) & free_bit) ? 0 : need_master(c);
}

static struct hil_df_app *find_app(struct hil_desfire_card *c, uint32_t aid)
{
	for (size_t i = 0; i < c->picc.napps; i++)
		if (c->picc.apps[i].aid == aid)
			return &c->picc.apps[i];
	return NULL;
}

static struct hil_df_file *find_file(struct hil_desfire_card *c, uint8_t no)
{
	if (!c->app || no >= HIL_DF_MAX_FILES || !c->app->files[no].present)
		return NULL;
	return &c->app->files[no];
}

/* DESFire keeps a DES or 3K3DES key's version in the parity bits of its first 8 bytes. */
static uint8_t key_version_of(uint8_t type, const struct hil_df_key *key)
{
	return type == HIL_DF_KEY_AES ? key->version : hil_df_des_key_version(key->value);
}

static enum hil_df_cipher cipher_of(uint8_t key_type)
{
	return key_type == HIL_DF_KEY_AES      ? HIL_DF_CIPHER_AES
	       : key_type == HIL_DF_KEY_3K3DES ? HIL_DF_CIPHER_3K3DES
	                                       : HIL_DF_CIPHER_2K3DES;
}

/* Block size of the session's cipher. */
static size_t sess_block(const struct hil_desfire_card *c)
{
	return hil_df_cipher_block(c->auth.cipher);
}

/* ---- access rights --------------------------------------------------------------------- */

/* Which communication mode a granted file command uses: the file's when one of the rights
 * names the authenticated key, plain when only free access (Eh) granted it. Returns 0 and the
 * mode, or the refusal. */
static int file_access(const struct hil_desfire_card *c, const struct hil_df_file *file,
                       unsigned rights, uint8_t *comm)
{
	const uint8_t nib[3] = {(uint8_t)(file->access >> 12), (uint8_t)((file->access >> 8) & 0xF),
	                        (uint8_t)((file->access >> 4) & 0xF)};
	const unsigned mask[3] = {AR_READ, AR_WRITE, AR_RW};
	int free_ok = 0, key_needed = 0;
	for (int i = 0; i < 3; i++) {
		if (!(rights & mask[i]))
			continue;
		if (nib[i] == AR_FREE) {
			free_ok = 1;
		} else if (nib[i] < c->app->nkeys) {
			key_needed = 1;
			if (authenticated(c) && c->auth.key_no == nib[i]) {
				*comm = (file->comm & 0x03) == HIL_DF_COMM_FULL ? HIL_DF_COMM_FULL
				        : (file->comm & 0x03) == HIL_DF_COMM_MAC
				                ? HIL_DF_COMM_MAC
				                : HIL_DF_COMM_PLAIN;
				return 0;
			}
		}
	}
	if (free_ok) {
		*comm = HIL_DF_COMM_PLAIN;
		return 0;
	}
	/* NXP's public datasheet of the same file system, NT4H2421Gx (NTAG 424 DNA), return
	 * codes of ReadData and WriteData: AUTHENTICATION_ERROR (AE) when the rights name keys
	 * but none of them is the authenticated one, whether another key is authenticated or
	 * none; PERMISSION_DENIED (9D) only when every right the command could use is "never"
	 * (F). docs/hil-desfire-card.md, "Commands". */
	return key_needed ? ST_AUTHENTICATION : ST_PERMISSION;
}

static enum cmd_mode read_cmd_mode(uint8_t comm)
{
	/* a read command carries no data: EV2 MACs it unless the file is plain */
	return comm == HIL_DF_COMM_PLAIN ? CM_PLAIN : CM_MGMT;
}

static enum cmd_mode write_cmd_mode(uint8_t comm)
{
	return comm == HIL_DF_COMM_FULL ? CM_FULL : comm == HIL_DF_COMM_MAC ? CM_MAC : CM_PLAIN;
}

static enum resp_mode data_resp_mode(uint8_t comm)
{
	return comm == HIL_DF_COMM_FULL  ? RM_FULL
	       : comm == HIL_DF_COMM_MAC ? RM_DATA_MAC
	                                 : RM_PLAIN;
}

/* ---- secure messaging: commands -------------------------------------------------------- */

/* Length of the parameters of a command whose `hdr` plain bytes are followed by `n` bytes
 * of data secured with `mode` in the current session. */
static size_t secured_len(const struct hil_desfire_card *c, enum cmd_mode mode, size_t hdr,
                          size_t n)
{
	switch (c->auth.kind) {
	case AUTH_EV1:
		if (mode == CM_MAC)
			return hdr + n + HIL_DF_MACT_LEN;
		if (mode == CM_FULL)
			return hdr + pad_to(n + 4, sess_block(c));
		return hdr + n;
	case AUTH_EV2:
		if (mode == CM_MAC || mode == CM_MGMT)
			return hdr + n + HIL_DF_MACT_LEN;
		if (mode == CM_FULL)
			return hdr + (n / 16 + 1) * 16 + HIL_DF_MACT_LEN;
		return hdr + n;
	case AUTH_LEGACY:
		if (mode == CM_FULL)
			return hdr + pad_to(n + 2, HIL_DF_DES_BLOCK);
		if (mode == CM_MAC)
			return hdr + n + 4;
		return hdr + n;
	case AUTH_NONE:
		break;
	}
	return hdr + n;
}

static int ev1_cmac(struct hil_desfire_card *c, const uint8_t *msg, size_t len)
{
	return hil_df_cmac(c->auth.cipher, c->auth.enc, c->auth.iv, msg, len) ? ST_EEPROM : 0;
}

static int unwrap_ev1(struct hil_desfire_card *c, struct req *r, enum cmd_mode mode, size_t hdr,
                      long plain_len)
{
	if (mode == CM_PLAIN || mode == CM_MGMT)
		return ev1_cmac(c, r->frame, r->frame_len);
	if (mode == CM_MAC) {
		if (r->len < hdr + HIL_DF_MACT_LEN)
			return ST_LENGTH;
		const size_t body = r->frame_len - HIL_DF_MACT_LEN;
		if (ev1_cmac(c, r->frame, body))
			return ST_EEPROM;
		if (hil_df_memcmp_ct(c->auth.iv, r->frame + body, HIL_DF_MACT_LEN))
			return ST_INTEGRITY;
		r->len -= HIL_DF_MACT_LEN;
		return 0;
	}
	/* CM_FULL: Cmd || hdr || E(data || CRC32(Cmd || hdr || data) || 00..) */
	if (plain_len < 0 || r->len < hdr ||
	    r->len - hdr != pad_to((size_t)plain_len + 4, sess_block(c)))
		return ST_LENGTH;
	const size_t enc_len = r->len - hdr;
	uint8_t *p = c->plain;
	p[0] = r->cmd;
	memcpy(p + 1, r->data, hdr);
	if (hil_df_cbc_decrypt(c->auth.cipher, c->auth.enc, c->auth.iv, r->data + hdr, p + 1 + hdr,
	                       enc_len))
		return ST_EEPROM;
	const size_t covered = 1 + hdr + (size_t)plain_len;
	uint8_t crc[4];
	hil_df_crc32_le(p, covered, crc);
	int bad = hil_df_memcmp_ct(crc, p + covered, 4);
	for (size_t i = covered + 4; i < 1 + hdr + enc_len; i++)
		bad |= p[i] != 0;
	if (bad)
		return ST_INTEGRITY;
	r->data = p + 1;
	r->len = hdr + (size_t)plain_len;
	return 0;
}

static int unwrap_ev2(struct hil_desfire_card *c, struct req *r, enum cmd_mode mode, size_t hdr,
                      long plain_len)
{
	uint8_t mact[HIL_DF_MACT_LEN];
	if (c->auth.ctr == 0xFFFF)
		return ST_INTEGRITY; /* NT4H2421Gx §9.1.2: treated like a wrong MAC */
	if (mode == CM_PLAIN)
		return 0;
	if (r->len < hdr + HIL_DF_MACT_LEN)
		return ST_LENGTH;
	const size_t body = r->len - HIL_DF_MACT_LEN;
	if (hil_df_ev2_mact(c->auth.mac, r->cmd, c->auth.ctr, c->auth.ti, r->data, body, mact))
		return ST_EEPROM;
	if (hil_df_memcmp_ct(mact, r->data + body, HIL_DF_MACT_LEN))
		return ST_INTEGRITY;
	if (mode != CM_FULL) {
		r->len = body;
		return 0;
	}
	const size_t enc_len = body - hdr;
	if (enc_len == 0 || enc_len % 16)
		return ST_LENGTH;
	uint8_t iv[16];
	if (hil_df_ev2_iv(c->auth.enc, 0, c->auth.ti, c->auth.ctr, iv))
		return ST_EEPROM;
	uint8_t *p = c->plain;
	memcpy(p, r->data, hdr);
	if (hil_df_aes_cbc_decrypt(c->auth.enc, iv, r->data + hdr, p + hdr, enc_len))
		return ST_EEPROM;
	/* ISO/IEC 9797-1 method 2: 80 then zeros, within the last block */
	size_t end = hdr + enc_len;
	while (end > hdr && p[end - 1] == 0x00)
		end--;
	if (end == hdr || p[end - 1] != 0x80 || hdr + enc_len - end >= 16)
		return ST_INTEGRITY;
	end--;
	if (plain_len >= 0 && end - hdr != (size_t)plain_len)
		return ST_LENGTH;
	r->data = p;
	r->len = end;
	return 0;
}

static int unwrap_legacy(struct hil_desfire_card *c, struct req *r, enum cmd_mode mode, size_t hdr,
                         long plain_len)
{
	if (mode == CM_MAC) {
		/* MACed file data: data || MAC(data), 4 bytes of DES CBC-MAC (libfreefare's
		 * MAC_COMMAND); the header is not covered */
		uint8_t mac[4];
		if (r->len < hdr + 4)
			return ST_LENGTH;
		const size_t body = r->len - 4;
		if (hil_df_legacy_mac(c->auth.enc, r->data + hdr, body - hdr, mac))
			return ST_EEPROM;
		if (hil_df_memcmp_ct(mac, r->data + body, 4))
			return ST_INTEGRITY;
		r->len = body;
		return 0;
	}
	if (mode != CM_FULL)
		return 0; /* plain and management commands carry no MAC in legacy sessions */
	if (plain_len < 0 || r->len < hdr || r->len - hdr != pad_to((size_t)plain_len + 2, 8))
		return ST_LENGTH;
	const size_t enc_len = r->len - hdr;
	uint8_t *p = c->plain;
	memcpy(p, r->data, r->len);
	if (hil_df_legacy_receive(c->auth.enc, p + hdr, enc_len))
		return ST_EEPROM;
	const uint16_t crc = hil_df_crc16(p + hdr, (size_t)plain_len);
	const uint8_t *q = p + hdr + plain_len;
	int bad = q[0] != (uint8_t)crc || q[1] != (uint8_t)(crc >> 8);
	for (size_t i = hdr + (size_t)plain_len + 2; i < r->len; i++)
		bad |= p[i] != 0;
	if (bad)
		return ST_INTEGRITY;
	r->data = p;
	r->len = hdr + (size_t)plain_len;
	return 0;
}

/* Checks and strips the command's secure messaging; afterwards r->data holds the plain
 * parameters (header, then data). `plain_len` is the length of the data after the header
 * when it is enciphered (-1: any, EV2 only). Returns 0 or a status. */
static int sm_unwrap(struct hil_desfire_card *c, struct req *r, enum cmd_mode mode, size_t hdr,
                     long plain_len)
{
	int st = 0;
	if (r->sm_done)
		return 0;
	r->sm_done = 1;
	switch (c->auth.kind) {
	case AUTH_NONE:
		break;
	case AUTH_LEGACY:
		st = unwrap_legacy(c, r, mode, hdr, plain_len);
		break;
	case AUTH_EV1:
		st = unwrap_ev1(c, r, mode, hdr, plain_len);
		break;
	case AUTH_EV2:
		st = unwrap_ev2(c, r, mode, hdr, plain_len);
		break;
	}
	return st;
}

/* ---- secure messaging: answers --------------------------------------------------------- */

/* Builds c->msg from c->resp. Returns 0 or ST_EEPROM. */
static int sm_wrap(struct hil_desfire_card *c, const struct req *r)
{
	const size_t n = r->resp_len;
	uint8_t *m = c->msg;
	memcpy(m, c->resp, n);
	c->msg_len = n;
	if (r->mode == RM_NONE)
		return 0;
	switch (c->auth.kind) {
	case AUTH_NONE:
		break;
	case AUTH_LEGACY:
		if (r->mode == RM_DATA_MAC) {
			if (hil_df_legacy_mac(c->auth.enc, m, n, m + n))
				return ST_EEPROM;
			c->msg_len = n + 4;
		} else if (r->mode == RM_FULL) {
			const uint16_t crc = hil_df_crc16(m, n);
			m[n] = (uint8_t)crc;
			m[n + 1] = (uint8_t)(crc >> 8);
			c->msg_len = pad_to(n + 2, 8);
			memset(m + n + 2, 0, c->msg_len - n - 2);
			if (hil_df_legacy_encrypt(c->auth.enc, m, c->msg_len))
				return ST_EEPROM;
		}
		break;
	case AUTH_EV1:
		/* the MAC and the CRC both cover the data followed by the status */
		m[n] = ST_OK;
		if (r->mode == RM_FULL) {
			hil_df_crc32_le(m, n + 1, m + n);
			c->msg_len = pad_to(n + 4, sess_block(c));
			memset(m + n + 4, 0, c->msg_len - n - 4);
			if (hil_df_cbc_encrypt(c->auth.cipher, c->auth.enc, c->auth.iv, m, m,
			                       c->msg_len))
				return ST_EEPROM;
		} else {
			if (ev1_cmac(c, m, n + 1))
				return ST_EEPROM;
			memcpy(m + n, c->auth.iv, HIL_DF_MACT_LEN);
			c->msg_len = n + HIL_DF_MACT_LEN;
		}
		break;
	case AUTH_EV2:
		/* CmdCtr counts the pair between the command and the answer (§9.1.2) */
		c->auth.ctr++;
		if (r->mode == RM_PLAIN)
			break;
		if (r->mode == RM_FULL && n > 0) {
			uint8_t iv[16];
			m[n] = 0x80;
			c->msg_len = (n / 16 + 1) * 16;
			memset(m + n + 1, 0, c->msg_len - n - 1);
			if (hil_df_ev2_iv(c->auth.enc, 1, c->auth.ti, c->auth.ctr, iv) ||
			    hil_df_aes_cbc_encrypt(c->auth.enc, iv, m, m, c->msg_len))
				return ST_EEPROM;
		}
		if (hil_df_ev2_mact(c->auth.mac, ST_OK, c->auth.ctr, c->auth.ti, m, c->msg_len,
		                    m + c->msg_len))
			return ST_EEPROM;
		c->msg_len += HIL_DF_MACT_LEN;
		break;
	}
	return 0;
}

/* ---- answers --------------------------------------------------------------------------- */

static void answer(struct hil_desfire_card *c, uint8_t status, const uint8_t *data, size_t len)
{
	c->ans_status = status;
	c->ans_len = len;
	if (len)
		memcpy(c->ans, data, len);
}

/* Sends the next frame of c->msg. */
static void send_chunk(struct hil_desfire_card *c)
{
	size_t size = FRAME_DATA_MAX;
	if (c->iplan < c->nplan)
		size = c->plan[c->iplan++];
	const size_t left = c->msg_len - c->msg_off;
	if (left <= size && c->iplan >= c->nplan) {
		answer(c, ST_OK, c->msg + c->msg_off, left);
		pending_clear(c);
		return;
	}
	if (size > left)
		size = left;
	answer(c, ST_ADDITIONAL_FRAME, c->msg + c->msg_off, size);
	c->msg_off += size;
	c->pending = PEND_OUT;
}

static void finish_error(struct hil_desfire_card *c, struct req *r, int status)
{
	/* EV1 readers (libfreefare) CMAC every command they send, plain or refused: the card
	 * does the same so that the IVs stay in step after a refusal. */
	if (c->auth.kind == AUTH_EV1 && r && !r->sm_done)
		(void)ev1_cmac(c, r->frame, r->frame_len);
	/* EV2 (NT4H2421Gx §9.1.9): any error ends the authentication and the transaction. EV1
	 * and legacy keep the session, except when its integrity is in doubt. */
	if (c->auth.kind == AUTH_EV2 || status == ST_INTEGRITY || status == ST_AUTHENTICATION ||
	    status == ST_EEPROM || status == ST_COMMAND_ABORTED) {
		session_clear(c);
		txn_abort(c);
	}
	pending_clear(c);
	answer(c, (uint8_t)status, NULL, 0);
}

static void finish_ok(struct hil_desfire_card *c, struct req *r)
{
	if (sm_wrap(c, r)) {
		finish_error(c, NULL, ST_EEPROM);
		return;
	}
	if (r->drop_session)
		session_clear(c);
	c->msg_off = 0;
	c->nplan = r->nplan;
	c->iplan = 0;
	for (size_t i = 0; i < r->nplan && i < HIL_DF_MAX_APPS; i++)
		c->plan[i] = r->plan[i];
	send_chunk(c);
}

/* ---- persistence ----------------------------------------------------------------------- */

static void remember_image(struct hil_desfire_card *c)
{
	if (stat(c->path, &c->image_stat) != 0)
		memset(&c->image_stat, 0, sizeof(c->image_stat));
}

static int save(struct hil_desfire_card *c)
{
	const int rc = hil_df_image_save(c->path, &c->picc);
	if (rc == 0)
		remember_image(c);
	return rc;
}

/* Another process may have used the same card (image) since: take its version. */
static void refresh_image(struct hil_desfire_card *c)
{
	struct stat st;
	if (stat(c->path, &st) != 0)
		return;
	if (st.st_dev == c->image_stat.st_dev && st.st_ino == c->image_stat.st_ino &&
	    st.st_size == c->image_stat.st_size &&
	    st.st_mtim.tv_sec == c->image_stat.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == c->image_stat.st_mtim.tv_nsec)
		return;
	struct hil_df_picc *fresh = malloc(sizeof(*fresh));
	if (!fresh)
		return;
	if (hil_df_image_load(c->path, fresh) == 0) {
		volatile_reset(c);
		hil_df_picc_free(&c->picc);
		c->picc = *fresh;
		c->image_stat = st;
		/* the anticollision already happened: keep a random UID, follow a real one */
		if (!c->picc.random_id || c->rf_uid_len != 4)
			new_rf_uid(c);
	}
	free(fresh);
}

/* ---- authentication -------------------------------------------------------------------- */

/* Which key types an authentication command accepts (the others answer AE). */
static int auth_accepts(uint8_t cmd, uint8_t key_type)
{
	switch (cmd) {
	case CMD_AUTH_LEGACY:
		return key_type == HIL_DF_KEY_DES;
	case CMD_AUTH_ISO:
		return key_type == HIL_DF_KEY_DES || key_type == HIL_DF_KEY_3K3DES;
	default: /* AES, EV2First, EV2NonFirst */
		return key_type == HIL_DF_KEY_AES;
	}
}

/* Part 1 of every authentication: E(K, RndB), answered with AF. */
static int auth_start(struct hil_desfire_card *c, struct req *r)
{
	const int was_ev2 = c->auth.kind == AUTH_EV2;
	if (r->len < 1)
		return ST_LENGTH;
	struct hil_df_key *key = level_key(c, r->data[0]);
	if (!key)
		return ST_NO_SUCH_KEY;
	if (!auth_accepts(r->cmd, level_key_type(c)))
		return ST_AUTHENTICATION;
	if (r->cmd == CMD_AUTH_EV2_FIRST) {
		/* KeyNo LenCap PCDcap2.1..LenCap; longer messages are accepted (§9.1.5) */
		if (r->len < 2 || r->len < 2u + r->data[1])
			return ST_LENGTH;
	} else if (r->cmd == CMD_AUTH_EV2_NONFST) {
		if (!was_ev2)
			return ST_PERMISSION;
	} else if (r->len != 1) {
		return ST_LENGTH;
	}

	struct pending_auth *pa = &c->pauth;
	memset(pa, 0, sizeof(*pa));
	pa->cmd = r->cmd;
	pa->key_no = r->data[0];
	pa->cipher = cipher_of(level_key_type(c));
	memcpy(pa->key, key->value, sizeof(pa->key));
	if (r->cmd == CMD_AUTH_EV2_FIRST) {
		const size_t cap = r->data[1] < 6 ? r->data[1] : 6;
		memcpy(pa->pcd_cap2, r->data + 2, cap);
	}
	/* a new authentication ends the current one, except NonFirst until it succeeds */
	if (r->cmd != CMD_AUTH_EV2_NONFST)
		session_clear(c);

	/* randoms: 8 bytes with DES and 2K3DES keys, 16 with 3K3DES and AES */
	const size_t n = pa->cipher == HIL_DF_CIPHER_2K3DES ? 8 : 16;
	if (draw_random(c, pa->rnd_b, n))
		return ST_EEPROM;
	memcpy(c->resp, pa->rnd_b, n);
	int st;
	if (r->cmd == CMD_AUTH_LEGACY) {
		st = hil_df_legacy_encrypt(pa->key, c->resp, 8);
	} else {
		memset(pa->iv, 0, sizeof(pa->iv));
		st = hil_df_cbc_encrypt(pa->cipher, pa->key, pa->iv, c->resp, c->resp, n);
		/* ISO and AES chain on from that block; EV2 restarts every step from zero */
		if (r->cmd == CMD_AUTH_EV2_FIRST || r->cmd == CMD_AUTH_EV2_NONFST)
			memset(pa->iv, 0, sizeof(pa->iv));
	}
	if (st)
		return ST_EEPROM;
	r->resp_len = n;
	r->mode = RM_NONE;
	return ST_ADDITIONAL_FRAME;
}

/* The session key of a legacy or ISO authentication (libfreefare 0.4.0's
 * mifare_desfire_session_key_new: single DES when the key's halves are equal). */
static void des_session_key(const struct pending_auth *pa, const uint8_t *rnd_a, struct session *s)
{
	if (pa->cipher == HIL_DF_CIPHER_3K3DES) {
		s->cipher = HIL_DF_CIPHER_3K3DES;
		hil_df_3k3des_session_key(rnd_a, pa->rnd_b, s->enc);
	} else {
		s->cipher = HIL_DF_CIPHER_2K3DES;
		hil_df_legacy_session_key(rnd_a, pa->rnd_b, hil_df_des_key_is_single(pa->key),
		                          s->enc);
	}
}

/* Part 2: AF E(K, RndA || RndB'), answered with E(K, RndA') (and more for EV2First). */
static void auth_finish(struct hil_desfire_card *c, const uint8_t *data, size_t len)
{
	struct pending_auth *pa = &c->pauth;
	const uint8_t cmd = pa->cmd;
	const size_t n = pa->cipher == HIL_DF_CIPHER_2K3DES ? 8 : 16;
	uint8_t buf[32], rot[16], out[32];
	size_t out_len = n;
	int ok = len == 2 * n || (cmd == CMD_AUTH_EV2_FIRST && len > 2 * n);
	if (!ok) {
		session_clear(c);
		pending_clear(c);
		answer(c, ST_LENGTH, NULL, 0);
		return;
	}
	memcpy(buf, data, 2 * n);
	if (cmd == CMD_AUTH_LEGACY)
		ok = hil_df_legacy_receive(pa->key, buf, 16) == 0;
	else
		ok = hil_df_cbc_decrypt(pa->cipher, pa->key, pa->iv, buf, buf, 2 * n) == 0;
	hil_df_rotate_left(pa->rnd_b, rot, n);
	if (!ok || hil_df_memcmp_ct(rot, buf + n, n)) {
		session_clear(c);
		pending_clear(c);
		answer(c, ST_AUTHENTICATION, NULL, 0);
		return;
	}
	const uint8_t *rnd_a = buf;
	struct session s = {0};
	s.key_no = pa->key_no;
	s.cipher = HIL_DF_CIPHER_AES;
	hil_df_rotate_left(rnd_a, out, n);
	switch (cmd) {
	case CMD_AUTH_LEGACY:
		s.kind = AUTH_LEGACY;
		des_session_key(pa, rnd_a, &s);
		ok = hil_df_legacy_encrypt(pa->key, out, 8) == 0;
		break;
	case CMD_AUTH_ISO:
		s.kind = AUTH_EV1;
		des_session_key(pa, rnd_a, &s);
		/* the IV still holds the last block the reader sent */
		ok = hil_df_cbc_encrypt(pa->cipher, pa->key, pa->iv, out, out, n) == 0;
		break;
	case CMD_AUTH_AES:
		s.kind = AUTH_EV1;
		hil_df_ev1_session_key(rnd_a, pa->rnd_b, s.enc);
		ok = hil_df_cbc_encrypt(pa->cipher, pa->key, pa->iv, out, out, 16) == 0;
		break;
	case CMD_AUTH_EV2_FIRST:
		s.kind = AUTH_EV2;
		if (draw_random(c, s.ti, 4)) {
			ok = 0;
			break;
		}
		memmove(out + 4, out, 16); /* TI || RndA' || PDcap2 || PCDcap2 */
		memcpy(out, s.ti, 4);
		memset(out + 20, 0, 6);
		memcpy(out + 26, pa->pcd_cap2, 6);
		out_len = 32;
		memset(pa->iv, 0, 16);
		ok = hil_df_aes_cbc_encrypt(pa->key, pa->iv, out, out, 32) == 0 &&
		     hil_df_ev2_session_keys(pa->key, rnd_a, pa->rnd_b, s.enc, s.mac) == 0;
		break;
	case CMD_AUTH_EV2_NONFST:
		s.kind = AUTH_EV2;
		memcpy(s.ti, c->auth.ti, 4);
		s.ctr = c->auth.ctr;
		memset(pa->iv, 0, 16);
		ok = hil_df_aes_cbc_encrypt(pa->key, pa->iv, out, out, 16) == 0 &&
		     hil_df_ev2_session_keys(pa->key, rnd_a, pa->rnd_b, s.enc, s.mac) == 0;
		break;
	default:
		ok = 0;
	}
	mbedtls_platform_zeroize(buf, sizeof(buf));
	pending_clear(c);
	if (!ok) {
		session_clear(c);
		answer(c, ST_EEPROM, NULL, 0);
		return;
	}
	c->auth = s; /* ISO and AES: the running IV starts at zero */
	mbedtls_platform_zeroize(&s, sizeof(s));
	answer(c, ST_OK, out, out_len);
}

/* ---- PICC and application commands ----------------------------------------------------- */

static int cmd_get_version(struct hil_desfire_card *c, struct req *r)
{
	/* NXP vendor 04, type 01 (DESFire), subtype 01, hardware 12.00 (EV2), software 2.1,
	 * storage 1A (8 KiB), protocol 05 (ISO 14443-2 and -3 / -3 and -4) */
	static const uint8_t hw[7] = {0x04, 0x01, 0x01, 0x12, 0x00, 0x1A, 0x05};
	static const uint8_t sw[7] = {0x04, 0x01, 0x01, 0x02, 0x01, 0x1A, 0x05};
	static const uint8_t batch[5] = {0xC1, 0x7B, 0x0A, 0x55, 0x01};
	static const size_t plan[2] = {7, 7};
	if (r->len != 0)
		return ST_LENGTH;
	uint8_t *p = c->resp;
	memcpy(p, hw, 7);
	memcpy(p + 7, sw, 7);
	/* with random ID on, the UID is not given away before authentication */
	if (c->picc.random_id && !authenticated(c))
		memset(p + 14, 0, 7);
	else
		memcpy(p + 14, c->picc.uid, 7);
	memcpy(p + 21, batch, 5);
	p[26] = 0x12; /* production week, BCD */
	p[27] = 0x24; /* production year, BCD */
	r->resp_len = 28;
	r->mode = RM_MAC;
	r->plan = plan;
	r->nplan = 2;
	return ST_OK;
}

static int cmd_get_card_uid(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	if (!authenticated(c))
		return ST_AUTHENTICATION;
	memcpy(c->resp, c->picc.uid, HIL_DF_UID_LEN);
	r->resp_len = HIL_DF_UID_LEN;
	r->mode = RM_FULL;
	return ST_OK;
}

static int cmd_format_picc(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	if (c->app)
		return ST_PERMISSION;
	const int st = need_master(c);
	if (st)
		return st;
	hil_df_picc_format(&c->picc);
	txn_abort(c);
	c->dirty = 1;
	r->mode = RM_MAC;
	/* libfreefare drops its session after FormatPICC; so does the card */
	r->drop_session = 1;
	return ST_OK;
}

static int cmd_get_application_ids(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	if (c->app)
		return ST_PERMISSION;
	const int st = need_master_unless(c, KS_FREE_LISTING);
	if (st)
		return st;
	for (size_t i = 0; i < c->picc.napps; i++)
		put_le(c->resp + 3 * i, c->picc.apps[i].aid, 3);
	r->resp_len = 3 * c->picc.napps;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_create_application(struct hil_desfire_card *c, struct req *r)
{
	/* AID(3) KeySett1 KeySett2 [ISOFileID(2) [DFName(1..16)]] */
	if (r->len != 5 && (r->len < 7 || r->len > 7 + 16))
		return ST_LENGTH;
	if (c->app)
		return ST_PERMISSION;
	int st = need_master_unless(c, KS_FREE_CREATE);
	if (st)
		return st;
	const uint32_t aid = le24(r->data);
	const uint8_t settings = r->data[3], keys = r->data[4];
	const unsigned nkeys = keys & 0x0F;
	/* KeySett2: bits 7-6 the crypto of every key, bit 5 "files carry ISO identifiers"
	 * (not checked); the application's own ISO DF identifier and DF name, when it has
	 * them, follow (libfreefare 0.4.0 create_application(): told by the length alone) */
	const int with_fid = r->len > 5;
	if (aid == 0 || nkeys == 0 || nkeys > HIL_DF_MAX_KEYS || (keys & 0xC0) == 0xC0 ||
	    (keys & 0x10))
		return ST_PARAMETER;
	for (size_t i = 0; with_fid && i < c->picc.napps; i++) {
		const struct hil_df_app *o = &c->picc.apps[i];
		const size_t name_len = r->len - 7;
		if ((o->has_fid && o->fid == (uint16_t)(r->data[5] | r->data[6] << 8)) ||
		    (name_len && o->df_name_len == name_len &&
		     !memcmp(o->df_name, r->data + 7, name_len)))
			return ST_DUPLICATE;
	}
	if (find_app(c, aid))
		return ST_DUPLICATE;
	if (c->picc.napps == HIL_DF_MAX_APPS)
		return ST_COUNT;
	struct hil_df_app *app = &c->picc.apps[c->picc.napps++];
	memset(app, 0, sizeof(*app));
	app->aid = aid;
	app->settings = settings;
	app->nkeys = (uint8_t)nkeys;
	app->key_type = keys & 0xC0;
	if (with_fid) {
		app->has_fid = 1;
		app->fid = (uint16_t)(r->data[5] | r->data[6] << 8);
		app->df_name_len = (uint8_t)(r->len - 7);
		memcpy(app->df_name, r->data + 7, app->df_name_len);
	}
	/* every key starts as the default key of SetConfiguration (zeros from the factory) */
	for (unsigned k = 0; k < nkeys; k++) {
		memcpy(app->keys[k].value, c->picc.default_key.value, HIL_DF_KEY_MAX);
		if (app->key_type != HIL_DF_KEY_3K3DES)
			memset(app->keys[k].value + 16, 0, HIL_DF_KEY_MAX - 16);
		app->keys[k].version =
		        app->key_type == HIL_DF_KEY_AES ? c->picc.default_key.version : 0;
	}
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_delete_application(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 3)
		return ST_LENGTH;
	const uint32_t aid = le24(r->data);
	struct hil_df_app *app = find_app(c, aid);
	if (!app)
		return ST_APP_NOT_FOUND;
	/* the PICC master key, or the application's own master key while it is selected */
	if (c->app && c->app != app)
		return ST_PERMISSION;
	const int st = need_master(c);
	if (st)
		return st;
	const size_t idx = (size_t)(app - c->picc.apps);
	for (size_t f = 0; f < HIL_DF_MAX_FILES; f++)
		hil_df_file_clear(&app->files[f]);
	memmove(&c->picc.apps[idx], &c->picc.apps[idx + 1],
	        (c->picc.napps - idx - 1) * sizeof(c->picc.apps[0]));
	c->picc.napps--;
	memset(&c->picc.apps[c->picc.napps], 0, sizeof(c->picc.apps[0]));
	if (c->app) {
		/* the selected application is gone: back to PICC level, session over */
		c->app = NULL;
		txn_abort(c);
		r->drop_session = 1;
	}
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_select_application(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 3)
		return ST_LENGTH;
	const uint32_t aid = le24(r->data);
	struct hil_df_app *app = NULL;
	if (aid != 0 && !(app = find_app(c, aid)))
		return ST_APP_NOT_FOUND;
	session_clear(c);
	txn_abort(c);
	c->app = app;
	r->mode = RM_NONE;
	return ST_OK;
}

static int cmd_get_key_settings(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	const int st = need_master_unless(c, KS_FREE_LISTING);
	if (st)
		return st;
	c->resp[0] = level_settings(c);
	c->resp[1] = (uint8_t)(level_nkeys(c) | level_key_type(c));
	r->resp_len = 2;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_change_key_settings(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 1)
		return ST_LENGTH;
	const int st = need_master(c);
	if (st)
		return st;
	if (!(level_settings(c) & KS_CONFIG_CHANGEABLE))
		return ST_PERMISSION;
	if (c->app)
		c->app->settings = r->data[0];
	else
		c->picc.settings = r->data[0];
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int change_key_allowed(const struct hil_desfire_card *c, unsigned target)
{
	const unsigned by = c->auth.key_no;
	if (target == 0) {
		if (by != 0 || !(level_settings(c) & KS_MASTER_CHANGEABLE))
			return ST_PERMISSION;
		return 0;
	}
	const unsigned access = c->app->settings >> 4;
	if (access == 0xF)
		return ST_PERMISSION; /* keys frozen */
	if (access == 0xE)
		return by == target ? 0 : ST_PERMISSION;
	return by == access ? 0 : ST_PERMISSION;
}

/* The cryptogram of ChangeKey, deciphered into plain[]: returns 0 or a status. The layout
 * depends on the session: EV1 "key data || version || CRC32(C4 KeyNo key data version)
 * [|| CRC32(new key)]", legacy the same with CRC16 over the key data, EV2 "key data ||
 * version [|| CRC32(new key)]" in CommMode.Full. */
static int change_key_decipher(struct hil_desfire_card *c, struct req *r, size_t body, int same,
                               uint8_t *plain)
{
	int st;
	size_t covered, extra;
	switch (c->auth.kind) {
	case AUTH_EV2:
		st = sm_unwrap(c, r, CM_FULL, 1, (long)(body + (same ? 0 : 4)));
		if (!st)
			memcpy(plain, r->data + 1, body + (same ? 0 : 4));
		return st;
	case AUTH_EV1:
		extra = same ? 0 : 4;
		r->sm_done = 1;
		if (r->len - 1 != pad_to(body + 4 + extra, sess_block(c)))
			return ST_LENGTH;
		plain[0] = r->cmd;
		plain[1] = r->data[0];
		if (hil_df_cbc_decrypt(c->auth.cipher, c->auth.enc, c->auth.iv, r->data + 1,
		                       plain + 2, r->len - 1))
			return ST_EEPROM;
		covered = 2 + body;
		uint8_t crc[4];
		hil_df_crc32_le(plain, covered, crc);
		st = hil_df_memcmp_ct(crc, plain + covered, 4);
		for (size_t i = covered + 4 + extra; i < 1 + r->len; i++)
			st |= plain[i] != 0;
		if (st)
			return ST_INTEGRITY;
		memmove(plain, plain + 2, body + 4 + extra);
		/* keep the CRC of the new key where the EV2 layout has it */
		if (!same)
			memmove(plain + body, plain + body + 4, 4);
		return 0;
	case AUTH_LEGACY:
		extra = same ? 0 : 2;
		if (r->len - 1 != pad_to(body + 2 + extra, 8))
			return ST_LENGTH;
		memcpy(plain, r->data + 1, r->len - 1);
		if (hil_df_legacy_receive(c->auth.enc, plain, r->len - 1))
			return ST_EEPROM;
		const uint16_t crc16 = hil_df_crc16(plain, body);
		st = plain[body] != (uint8_t)crc16 || plain[body + 1] != (uint8_t)(crc16 >> 8);
		for (size_t i = body + 2 + extra; i < r->len - 1; i++)
			st |= plain[i] != 0;
		return st ? ST_INTEGRITY : 0;
	case AUTH_NONE:
		break;
	}
	return ST_AUTHENTICATION;
}

static int cmd_change_key(struct hil_desfire_card *c, struct req *r)
{
	uint8_t plain[64];
	if (r->len < 1)
		return ST_LENGTH;
	if (!authenticated(c))
		return ST_AUTHENTICATION;
	const uint8_t raw_no = r->data[0];
	unsigned target;
	uint8_t new_type;
	if (!c->app) {
		/* PICC level: key 0 only; bits 7-6 choose the crypto of the new master key (00
		 * DES/2K3DES, 01 3K3DES, 10 AES), as libfreefare's mifare_desfire_change_key() */
		if ((raw_no & 0x3F) != 0)
			return ST_NO_SUCH_KEY;
		if ((raw_no & 0xC0) == 0xC0)
			return ST_PARAMETER;
		new_type = raw_no & 0xC0;
		target = 0;
	} else {
		if (raw_no >= c->app->nkeys)
			return ST_NO_SUCH_KEY;
		new_type = c->app->key_type;
		target = raw_no;
	}
	int st = change_key_allowed(c, target);
	if (st)
		return st;
	const int same = c->auth.key_no == target;
	const size_t key_len = new_type == HIL_DF_KEY_3K3DES ? 24 : 16;
	/* EV2 always sends a key version; EV1 and legacy only for AES keys (DES keys keep
	 * theirs in the parity bits) */
	const size_t body = key_len + (new_type == HIL_DF_KEY_AES || c->auth.kind == AUTH_EV2);
	st = change_key_decipher(c, r, body, same, plain);
	if (st)
		return st;
	struct hil_df_key *key = level_key(c, target);
	uint8_t value[HIL_DF_KEY_MAX] = {0};
	for (size_t i = 0; i < key_len; i++)
		value[i] = plain[i] ^ (same ? 0 : key->value[i]);
	if (!same) {
		int bad;
		if (c->auth.kind == AUTH_LEGACY) {
			const uint16_t crc16 = hil_df_crc16(value, key_len);
			bad = plain[body + 2] != (uint8_t)crc16 ||
			      plain[body + 3] != (uint8_t)(crc16 >> 8);
		} else {
			uint8_t crc[4];
			hil_df_crc32_le(value, key_len, crc);
			bad = hil_df_memcmp_ct(crc, plain + body, 4);
		}
		if (bad) {
			mbedtls_platform_zeroize(value, sizeof(value));
			mbedtls_platform_zeroize(plain, sizeof(plain));
			return ST_INTEGRITY;
		}
	}
	memcpy(key->value, value, sizeof(value));
	key->version = new_type == HIL_DF_KEY_AES ? plain[key_len] : hil_df_des_key_version(value);
	if (!c->app)
		c->picc.key_type = new_type;
	mbedtls_platform_zeroize(value, sizeof(value));
	mbedtls_platform_zeroize(plain, sizeof(plain));
	c->dirty = 1;
	if (same) {
		/* the session key is gone with the key: answer without MAC, end the session */
		r->mode = RM_NONE;
		r->drop_session = 1;
	} else {
		r->mode = RM_MAC;
	}
	return ST_OK;
}

static int cmd_get_key_version(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 1)
		return ST_LENGTH;
	const struct hil_df_key *key = level_key(c, r->data[0]);
	if (!key)
		return ST_NO_SUCH_KEY;
	c->resp[0] = key_version_of(level_key_type(c), key);
	r->resp_len = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_get_free_memory(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	put_le(c->resp, HIL_DF_CAPACITY - hil_df_picc_used(&c->picc), 3);
	r->resp_len = 3;
	r->mode = RM_MAC;
	return ST_OK;
}

/* SetConfiguration option 02 (ATS) under EV1 or legacy secure messaging: the reader puts its
 * own checksum and an 80 marker after the ATS, whose length is its first byte (libfreefare
 * 0.4.0 mifare_desfire_set_ats: NO_CRC), so the generic unwrapping cannot know the length. */
static int unwrap_ats(struct hil_desfire_card *c, struct req *r)
{
	uint8_t *p = c->plain;
	r->sm_done = 1;
	const size_t enc_len = r->len - 1;
	const size_t bs = c->auth.kind == AUTH_LEGACY ? 8 : sess_block(c);
	if (enc_len == 0 || enc_len % bs || enc_len > 2 + HIL_DF_ATS_MAX + 4 + bs)
		return ST_LENGTH;
	p[0] = r->cmd;
	p[1] = r->data[0];
	memcpy(p + 2, r->data + 1, enc_len);
	int rc = c->auth.kind == AUTH_LEGACY
	                 ? hil_df_legacy_receive(c->auth.enc, p + 2, enc_len)
	                 : hil_df_cbc_decrypt(c->auth.cipher, c->auth.enc, c->auth.iv, p + 2, p + 2,
	                                      enc_len);
	if (rc)
		return ST_EEPROM;
	const size_t tl = p[2], crc_len = c->auth.kind == AUTH_LEGACY ? 2 : 4;
	if (tl < 1 || tl > HIL_DF_ATS_MAX || tl + crc_len + 1 > enc_len)
		return ST_INTEGRITY;
	int bad;
	if (c->auth.kind == AUTH_LEGACY) {
		const uint16_t crc = hil_df_crc16(p + 2, tl);
		bad = p[2 + tl] != (uint8_t)crc || p[3 + tl] != (uint8_t)(crc >> 8);
	} else {
		uint8_t crc[4];
		hil_df_crc32_le(p, 2 + tl, crc);
		bad = hil_df_memcmp_ct(crc, p + 2 + tl, 4);
	}
	bad |= p[2 + tl + crc_len] != 0x80;
	for (size_t i = 2 + tl + crc_len + 1; i < 2 + enc_len; i++)
		bad |= p[i] != 0;
	if (bad)
		return ST_INTEGRITY;
	r->data = p + 1;
	r->len = 1 + tl;
	return 0;
}

static int cmd_set_configuration(struct hil_desfire_card *c, struct req *r)
{
	/* Option 00: PICC configuration, bit 1 random ID (one way), bit 0 format disable (not
	 * emulated); 01: the default key of new applications (24 bytes) and its version; 02:
	 * the ATS (TL first). Everything after the option byte travels enciphered. */
	if (r->len < 2)
		return ST_LENGTH;
	if (c->app)
		return ST_PERMISSION;
	int st = need_master(c);
	if (st)
		return st;
	const uint8_t option = r->data[0];
	if (option == 0x02 && c->auth.kind != AUTH_EV2)
		st = unwrap_ats(c, r);
	else if (option <= 0x02)
		st = sm_unwrap(c, r, CM_FULL, 1, option == 0x00 ? 1 : option == 0x01 ? 25 : -1);
	else
		st = ST_PARAMETER;
	if (st)
		return st;
	switch (option) {
	case 0x00:
		if (r->len != 2)
			return ST_LENGTH;
		if (r->data[1] & ~0x02)
			return ST_PARAMETER;
		if (r->data[1] & 0x02) {
			c->picc.random_id = 1;
			c->dirty = 1;
		}
		break;
	case 0x01:
		if (r->len != 26)
			return ST_LENGTH;
		memcpy(c->picc.default_key.value, r->data + 1, HIL_DF_KEY_MAX);
		c->picc.default_key.version = r->data[25];
		c->dirty = 1;
		break;
	default:
		if (r->len < 2 || r->len - 1 != r->data[1] || r->data[1] > HIL_DF_ATS_MAX)
			return ST_LENGTH;
		memcpy(c->picc.ats, r->data + 1, r->data[1]);
		c->picc.ats_len = r->data[1];
		c->dirty = 1;
		break;
	}
	r->mode = RM_MAC;
	return ST_OK;
}

/* ---- files ----------------------------------------------------------------------------- */

static int check_app_and_create_right(struct hil_desfire_card *c)
{
	if (!c->app)
		return ST_PERMISSION;
	return need_master_unless(c, KS_FREE_CREATE);
}

static int new_file(struct hil_desfire_card *c, uint8_t no, uint8_t comm, uint16_t access,
                    uint32_t footprint, struct hil_df_file **out)
{
	if (no >= HIL_DF_MAX_FILES || (comm & ~0x03))
		return ST_PARAMETER;
	if (c->app->files[no].present)
		return ST_DUPLICATE;
	if (hil_df_picc_used(&c->picc) + footprint > HIL_DF_CAPACITY)
		return ST_OUT_OF_EEPROM;
	struct hil_df_file *file = &c->app->files[no];
	memset(file, 0, sizeof(*file));
	file->comm = comm;
	file->access = access;
	*out = file;
	return 0;
}

/* The optional ISO file identifier after the file number: its presence is told by the
 * length of the command. */
static void set_fid(struct hil_df_file *file, const struct req *r, size_t plain_len)
{
	if (r->len == plain_len + 2) {
		file->has_fid = 1;
		file->fid = (uint16_t)(r->data[1] | r->data[2] << 8);
	}
}

/* CreateStdDataFile (CD) and CreateBackupDataFile (CB):
 * FileNo [ISOFileID(2)] CommSett AccessRights(2) FileSize(3). */
static int create_data_file(struct hil_desfire_card *c, struct req *r, uint8_t type)
{
	if (r->len != 7 && r->len != 9)
		return ST_LENGTH;
	int st = check_app_and_create_right(c);
	if (st)
		return st;
	const uint8_t *p = r->data + (r->len == 9 ? 2 : 0);
	const uint32_t size = le24(p + 4);
	if (size == 0 || size > HIL_DF_CAPACITY)
		return size ? ST_OUT_OF_EEPROM : ST_PARAMETER;
	const uint32_t footprint =
	        pad_to(size, HIL_DF_BLOCK) * (type == HIL_DF_FILE_BACKUP ? 2 : 1);
	struct hil_df_file *file;
	st = new_file(c, r->data[0], p[1], (uint16_t)(p[2] | p[3] << 8), footprint, &file);
	if (st)
		return st;
	file->data = calloc(1, size);
	if (!file->data)
		return ST_OUT_OF_EEPROM;
	file->type = type;
	file->size = size;
	set_fid(file, r, 7);
	file->present = 1;
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_create_std_file(struct hil_desfire_card *c, struct req *r)
{
	return create_data_file(c, r, HIL_DF_FILE_STD);
}

static int cmd_create_backup_file(struct hil_desfire_card *c, struct req *r)
{
	return create_data_file(c, r, HIL_DF_FILE_BACKUP);
}

/* CreateLinearRecordFile (C1) and CreateCyclicRecordFile (C0): FileNo [ISOFileID(2)]
 * CommSett AccessRights(2) RecordSize(3) MaxNumberOfRecords(3). */
static int create_record_file(struct hil_desfire_card *c, struct req *r, uint8_t type)
{
	if (r->len != 10 && r->len != 12)
		return ST_LENGTH;
	int st = check_app_and_create_right(c);
	if (st)
		return st;
	const uint8_t *p = r->data + (r->len == 12 ? 2 : 0);
	const uint32_t rsize = le24(p + 4), rmax = le24(p + 7);
	/* a cyclic file keeps one record free for the write in progress: at least 2 */
	if (rsize == 0 || rmax == 0 || (type == HIL_DF_FILE_CYCLIC && rmax < 2))
		return ST_PARAMETER;
	if ((uint64_t)rsize * rmax > HIL_DF_CAPACITY)
		return ST_OUT_OF_EEPROM;
	struct hil_df_file *file;
	st = new_file(c, r->data[0], p[1], (uint16_t)(p[2] | p[3] << 8),
	              pad_to(rsize * rmax, HIL_DF_BLOCK), &file);
	if (st)
		return st;
	file->data = calloc(rmax, rsize);
	if (!file->data)
		return ST_OUT_OF_EEPROM;
	file->type = type;
	file->record_size = rsize;
	file->max_records = rmax;
	set_fid(file, r, 10);
	file->present = 1;
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_create_linear_file(struct hil_desfire_card *c, struct req *r)
{
	return create_record_file(c, r, HIL_DF_FILE_LINEAR);
}

static int cmd_create_cyclic_file(struct hil_desfire_card *c, struct req *r)
{
	return create_record_file(c, r, HIL_DF_FILE_CYCLIC);
}

static int cmd_create_value_file(struct hil_desfire_card *c, struct req *r)
{
	/* FileNo CommSett AccessRights(2) Lower(4) Upper(4) Value(4) LimitedCreditEnabled */
	if (r->len != 17)
		return ST_LENGTH;
	int st = check_app_and_create_right(c);
	if (st)
		return st;
	const uint8_t *p = r->data;
	const int32_t lower = le32s(p + 4), upper = le32s(p + 8), value = le32s(p + 12);
	if (lower > upper || value < lower || value > upper)
		return ST_BOUNDARY;
	struct hil_df_file *file;
	st = new_file(c, p[0], p[1], (uint16_t)(p[2] | p[3] << 8), HIL_DF_BLOCK, &file);
	if (st)
		return st;
	file->type = HIL_DF_FILE_VALUE;
	file->lower = lower;
	file->upper = upper;
	file->value = value;
	file->limited = p[16] & 0x01;
	file->present = 1;
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_delete_file(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 1)
		return ST_LENGTH;
	int st = check_app_and_create_right(c);
	if (st)
		return st;
	struct hil_df_file *file = find_file(c, r->data[0]);
	if (!file)
		return ST_FILE_NOT_FOUND;
	hil_df_file_clear(file);
	txn_clear(&c->txn[r->data[0]]);
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_get_file_ids(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	if (!c->app)
		return ST_PERMISSION;
	const int st = need_master_unless(c, KS_FREE_LISTING);
	if (st)
		return st;
	size_t n = 0;
	for (uint8_t i = 0; i < HIL_DF_MAX_FILES; i++)
		if (c->app->files[i].present)
			c->resp[n++] = i;
	r->resp_len = n;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_get_file_settings(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 1)
		return ST_LENGTH;
	if (!c->app)
		return ST_PERMISSION;
	const struct hil_df_file *file = find_file(c, r->data[0]);
	if (!file)
		return ST_FILE_NOT_FOUND;
	const int st = need_master_unless(c, KS_FREE_LISTING);
	if (st)
		return st;
	uint8_t *p = c->resp;
	p[0] = file->type;
	p[1] = file->comm;
	put_le(p + 2, file->access, 2);
	if (file->type == HIL_DF_FILE_STD || file->type == HIL_DF_FILE_BACKUP) {
		put_le(p + 4, file->size, 3);
		r->resp_len = 7;
	} else if (file->type != HIL_DF_FILE_VALUE) {
		put_le(p + 4, file->record_size, 3);
		put_le(p + 7, file->max_records, 3);
		put_le(p + 10, file->nrecords, 3);
		r->resp_len = 13;
	} else {
		put_le(p + 4, (uint32_t)file->lower, 4);
		put_le(p + 8, (uint32_t)file->upper, 4);
		put_le(p + 12, (uint32_t)file->limited_value, 4);
		p[16] = file->limited;
		r->resp_len = 17;
	}
	r->mode = RM_MAC;
	return ST_OK;
}

/* Common start of the file data commands: the file, of the right type, and the mode the
 * granting right implies. */
#define TYPE_BIT(t)  (1u << (t))
#define DATA_FILES   (TYPE_BIT(HIL_DF_FILE_STD) | TYPE_BIT(HIL_DF_FILE_BACKUP))
#define RECORD_FILES (TYPE_BIT(HIL_DF_FILE_LINEAR) | TYPE_BIT(HIL_DF_FILE_CYCLIC))

static int data_file(struct hil_desfire_card *c, const struct req *r, size_t hdr, unsigned types,
                     unsigned rights, struct hil_df_file **file, uint8_t *comm)
{
	if (!c->app)
		return ST_PERMISSION;
	if (r->len < hdr)
		return ST_LENGTH;
	*file = find_file(c, r->data[0]);
	if (!*file)
		return ST_FILE_NOT_FOUND;
	if (!(types & TYPE_BIT((*file)->type)))
		return ST_PARAMETER;
	return file_access(c, *file, rights, comm);
}

static int cmd_read_data(struct hil_desfire_card *c, struct req *r)
{
	struct hil_df_file *file;
	uint8_t comm;
	int st = data_file(c, r, 7, DATA_FILES, AR_READ | AR_RW, &file, &comm);
	if (st)
		return st;
	st = sm_unwrap(c, r, read_cmd_mode(comm), 7, 0);
	if (st)
		return st;
	if (r->len != 7)
		return ST_LENGTH;
	const uint32_t off = le24(r->data + 1);
	uint32_t n = le24(r->data + 4);
	if (off > file->size || (n == 0 && off == file->size))
		return ST_BOUNDARY;
	if (n == 0)
		n = file->size - off; /* length 0: up to the end of the file */
	if (n > file->size - off)
		return ST_BOUNDARY;
	memcpy(c->resp, file->data + off, n);
	r->resp_len = n;
	r->mode = data_resp_mode(comm);
	return ST_OK;
}

static int cmd_write_data(struct hil_desfire_card *c, struct req *r)
{
	struct hil_df_file *file;
	uint8_t comm;
	int st = data_file(c, r, 7, DATA_FILES, AR_WRITE | AR_RW, &file, &comm);
	if (st)
		return st;
	const uint32_t off = le24(r->data + 1), n = le24(r->data + 4);
	if (n == 0)
		return ST_LENGTH;
	if (off > file->size || n > file->size - off)
		return ST_BOUNDARY;
	const enum cmd_mode mode = write_cmd_mode(comm);
	const size_t need = secured_len(c, mode, 7, n);
	if (r->len < need) {
		r->need = need; /* the rest comes in AF frames */
		return ST_NEED_MORE;
	}
	if (r->len > need)
		return ST_LENGTH;
	st = sm_unwrap(c, r, mode, 7, (long)n);
	if (st)
		return st;
	if (r->len != 7 + n)
		return ST_LENGTH;
	if (file->type == HIL_DF_FILE_BACKUP) {
		/* written into the mirror; CommitTransaction makes it the file's data */
		struct txn_entry *t = &c->txn[r->data[0]];
		if (!t->data) {
			t->data = malloc(file->size);
			if (!t->data)
				return ST_OUT_OF_EEPROM;
			memcpy(t->data, file->data, file->size);
		}
		memcpy(t->data + off, r->data + 7, n);
		t->touched = 1;
	} else {
		memcpy(file->data + off, r->data + 7, n);
		c->dirty = 1;
	}
	r->mode = comm == HIL_DF_COMM_PLAIN ? RM_PLAIN : RM_MAC;
	return ST_OK;
}

/* Records a linear file can take, or a cyclic one keeps (one record is the write in
 * progress: a cyclic file of N records keeps N - 1). */
static uint32_t record_capacity(const struct hil_df_file *file)
{
	return file->type == HIL_DF_FILE_CYCLIC ? file->max_records - 1 : file->max_records;
}

static int cmd_write_record(struct hil_desfire_card *c, struct req *r)
{
	struct hil_df_file *file;
	uint8_t comm;
	int st = data_file(c, r, 7, RECORD_FILES, AR_WRITE | AR_RW, &file, &comm);
	if (st)
		return st;
	const uint32_t off = le24(r->data + 1), n = le24(r->data + 4);
	if (n == 0)
		return ST_LENGTH;
	if (off > file->record_size || n > file->record_size - off)
		return ST_BOUNDARY;
	const enum cmd_mode mode = write_cmd_mode(comm);
	const size_t need = secured_len(c, mode, 7, n);
	if (r->len < need) {
		r->need = need;
		return ST_NEED_MORE;
	}
	if (r->len > need)
		return ST_LENGTH;
	st = sm_unwrap(c, r, mode, 7, (long)n);
	if (st)
		return st;
	if (r->len != 7 + n)
		return ST_LENGTH;
	struct txn_entry *t = &c->txn[r->data[0]];
	if (!t->record) {
		/* a full linear file takes no new record until it is cleared */
		const uint32_t kept = t->cleared ? 0 : file->nrecords;
		if (file->type == HIL_DF_FILE_LINEAR && kept >= record_capacity(file))
			return ST_BOUNDARY;
		free(t->data);
		t->data = calloc(1, file->record_size);
		if (!t->data)
			return ST_OUT_OF_EEPROM;
		t->record = 1;
	}
	memcpy(t->data + off, r->data + 7, n);
	t->touched = 1;
	r->mode = comm == HIL_DF_COMM_PLAIN ? RM_PLAIN : RM_MAC;
	return ST_OK;
}

static int cmd_read_records(struct hil_desfire_card *c, struct req *r)
{
	struct hil_df_file *file;
	uint8_t comm;
	int st = data_file(c, r, 7, RECORD_FILES, AR_READ | AR_RW, &file, &comm);
	if (st)
		return st;
	st = sm_unwrap(c, r, read_cmd_mode(comm), 7, 0);
	if (st)
		return st;
	if (r->len != 7)
		return ST_LENGTH;
	/* Offset counts from the newest record (0); Length 0 means every older one too. The
	 * records come oldest first. */
	const uint32_t off = le24(r->data + 1);
	uint32_t n = le24(r->data + 4);
	if (off >= file->nrecords)
		return ST_BOUNDARY;
	if (n == 0)
		n = file->nrecords - off;
	if (n > file->nrecords - off)
		return ST_BOUNDARY;
	const uint32_t first = file->nrecords - off - n;
	memcpy(c->resp, file->data + (size_t)first * file->record_size,
	       (size_t)n * file->record_size);
	r->resp_len = (size_t)n * file->record_size;
	r->mode = data_resp_mode(comm);
	return ST_OK;
}

static int cmd_clear_record_file(struct hil_desfire_card *c, struct req *r)
{
	struct hil_df_file *file;
	uint8_t comm;
	if (r->len != 1)
		return ST_LENGTH;
	int st = data_file(c, r, 1, RECORD_FILES, AR_RW, &file, &comm);
	if (st)
		return st;
	struct txn_entry *t = &c->txn[r->data[0]];
	txn_clear(t);
	t->cleared = 1;
	t->touched = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

/* CommitTransaction for a backup or record file. */
static void commit_file(struct hil_df_file *file, struct txn_entry *t)
{
	if (file->type == HIL_DF_FILE_BACKUP && t->data) {
		memcpy(file->data, t->data, file->size);
		return;
	}
	if (file->type != HIL_DF_FILE_LINEAR && file->type != HIL_DF_FILE_CYCLIC)
		return;
	if (t->cleared)
		file->nrecords = 0;
	if (!t->record)
		return;
	const size_t rs = file->record_size;
	if (file->nrecords == record_capacity(file)) { /* cyclic: the oldest goes */
		memmove(file->data, file->data + rs, (file->nrecords - 1) * rs);
		file->nrecords--;
	}
	memcpy(file->data + file->nrecords * rs, t->data, rs);
	file->nrecords++;
}

static int cmd_change_file_settings(struct hil_desfire_card *c, struct req *r)
{
	/* FileNo, then CommSett AccessRights(2): enciphered when the file's change right names
	 * a key, sent as a management command when it is free (libfreefare 0.4.0
	 * mifare_desfire_change_file_settings) */
	if (!c->app)
		return ST_PERMISSION;
	if (r->len < 1)
		return ST_LENGTH;
	struct hil_df_file *file = find_file(c, r->data[0]);
	if (!file)
		return ST_FILE_NOT_FOUND;
	const uint8_t change = file->access & 0xF;
	int st;
	if (change == AR_NEVER)
		return ST_PERMISSION;
	if (change == AR_FREE) {
		st = sm_unwrap(c, r, CM_MGMT, 1, 3);
	} else {
		if (!authenticated(c) || c->auth.key_no != change)
			return ST_AUTHENTICATION;
		st = sm_unwrap(c, r, CM_FULL, 1, 3);
	}
	if (st)
		return st;
	if (r->len != 4)
		return ST_LENGTH;
	if (r->data[1] & ~0x03)
		return ST_PARAMETER;
	file->comm = r->data[1];
	file->access = (uint16_t)(r->data[2] | r->data[3] << 8);
	c->dirty = 1;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_get_df_names(struct hil_desfire_card *c, struct req *r)
{
	/* PICC level: AID(3) ISOFileID(2) DFName of every application created with ISO
	 * identifiers, one application per frame */
	if (r->len != 0)
		return ST_LENGTH;
	if (c->app)
		return ST_PERMISSION;
	const int st = need_master_unless(c, KS_FREE_LISTING);
	if (st)
		return st;
	size_t n = 0, frames = 0;
	for (size_t i = 0; i < c->picc.napps; i++) {
		const struct hil_df_app *app = &c->picc.apps[i];
		if (!app->has_fid)
			continue;
		put_le(c->resp + n, app->aid, 3);
		put_le(c->resp + n + 3, app->fid, 2);
		memcpy(c->resp + n + 5, app->df_name, app->df_name_len);
		n += 5 + app->df_name_len;
		frames++;
	}
	/* the plan lists the sizes of every frame but the last, which takes the rest */
	size_t k = 0;
	for (size_t i = 0; i < c->picc.napps; i++)
		if (c->picc.apps[i].has_fid && k + 1 < frames)
			r->own_plan[k++] = 5 + c->picc.apps[i].df_name_len;
	r->resp_len = n;
	r->plan = r->own_plan;
	r->nplan = k;
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_get_iso_file_ids(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	if (!c->app)
		return ST_PERMISSION;
	const int st = need_master_unless(c, KS_FREE_LISTING);
	if (st)
		return st;
	size_t n = 0;
	for (uint8_t i = 0; i < HIL_DF_MAX_FILES; i++)
		if (c->app->files[i].present && c->app->files[i].has_fid) {
			put_le(c->resp + n, c->app->files[i].fid, 2);
			n += 2;
		}
	r->resp_len = n;
	r->mode = RM_MAC;
	return ST_OK;
}

static int32_t pending_value(const struct hil_desfire_card *c, uint8_t no,
                             const struct hil_df_file *file)
{
	return c->txn[no].touched ? c->txn[no].value : file->value;
}

static int cmd_get_value(struct hil_desfire_card *c, struct req *r)
{
	struct hil_df_file *file;
	uint8_t comm;
	int st = data_file(c, r, 1, TYPE_BIT(HIL_DF_FILE_VALUE), AR_READ | AR_WRITE | AR_RW, &file,
	                   &comm);
	if (st)
		return st;
	st = sm_unwrap(c, r, read_cmd_mode(comm), 1, 0);
	if (st)
		return st;
	if (r->len != 1)
		return ST_LENGTH;
	/* the committed value: changes count only after CommitTransaction */
	put_le(c->resp, (uint32_t)file->value, 4);
	r->resp_len = 4;
	r->mode = data_resp_mode(comm);
	return ST_OK;
}

/* Credit, Debit and LimitedCredit: FileNo Amount(4), secured as the file says. */
static int value_change(struct hil_desfire_card *c, struct req *r, unsigned rights)
{
	struct hil_df_file *file;
	uint8_t comm;
	int st = data_file(c, r, 1, TYPE_BIT(HIL_DF_FILE_VALUE), rights, &file, &comm);
	if (st)
		return st;
	st = sm_unwrap(c, r, write_cmd_mode(comm), 1, 4);
	if (st)
		return st;
	if (r->len != 5)
		return ST_LENGTH;
	const uint8_t no = r->data[0];
	const int32_t amount = le32s(r->data + 1);
	if (amount < 0)
		return ST_PARAMETER;
	const int64_t cur = pending_value(c, no, file);
	struct txn_entry *t = &c->txn[no];
	int64_t next;
	switch (r->cmd) {
	case 0x0C: /* Credit */
		next = cur + amount;
		if (next > file->upper)
			return ST_BOUNDARY;
		break;
	case 0xDC: /* Debit */
		next = cur - amount;
		if (next < file->lower)
			return ST_BOUNDARY;
		t->debited += amount;
		break;
	default: /* LimitedCredit */
		if (!(file->limited & 0x01))
			return ST_PERMISSION;
		next = cur + amount;
		if (amount > file->limited_value || next > file->upper)
			return ST_BOUNDARY;
		t->limited_used = 1;
		break;
	}
	t->touched = 1;
	t->value = (int32_t)next;
	r->mode = comm == HIL_DF_COMM_PLAIN ? RM_PLAIN : RM_MAC;
	return ST_OK;
}

static int cmd_credit(struct hil_desfire_card *c, struct req *r)
{
	return value_change(c, r, AR_RW);
}

static int cmd_debit(struct hil_desfire_card *c, struct req *r)
{
	return value_change(c, r, AR_READ | AR_WRITE | AR_RW);
}

static int cmd_limited_credit(struct hil_desfire_card *c, struct req *r)
{
	return value_change(c, r, AR_WRITE | AR_RW);
}

static int cmd_commit_transaction(struct hil_desfire_card *c, struct req *r)
{
	/* EV2 adds an option byte (00: no transaction MAC data returned) */
	if (r->len > 1 || (r->len == 1 && r->data[0] != 0x00))
		return r->len > 1 ? ST_LENGTH : ST_PARAMETER;
	for (uint8_t no = 0; c->app && no < HIL_DF_MAX_FILES; no++) {
		struct txn_entry *t = &c->txn[no];
		struct hil_df_file *file = find_file(c, no);
		if (!t->touched || !file)
			continue;
		c->dirty = 1;
		if (file->type != HIL_DF_FILE_VALUE) {
			commit_file(file, t);
			continue;
		}
		file->value = t->value;
		/* what was debited may be credited back once with LimitedCredit */
		if (t->limited_used)
			file->limited_value = 0;
		if (t->debited > 0 && (file->limited & 0x01))
			file->limited_value =
			        t->debited > INT32_MAX ? INT32_MAX : (int32_t)t->debited;
		c->dirty = 1;
	}
	txn_abort(c);
	r->mode = RM_MAC;
	return ST_OK;
}

static int cmd_abort_transaction(struct hil_desfire_card *c, struct req *r)
{
	if (r->len != 0)
		return ST_LENGTH;
	txn_abort(c);
	r->mode = RM_MAC;
	return ST_OK;
}

/* ---- dispatcher ------------------------------------------------------------------------ */

struct command {
	uint8_t code;
	enum cmd_mode mode;
	uint8_t hdr;      /* CM_FULL: plain bytes before the enciphered part */
	int8_t plain_len; /* CM_FULL: deciphered data after the header */
	int (*run)(struct hil_desfire_card *c, struct req *r);
};

static const struct command commands[] = {
        {CMD_AUTH_LEGACY, CM_NONE, 0, 0, auth_start},
        {CMD_AUTH_ISO, CM_NONE, 0, 0, auth_start},
        {CMD_AUTH_AES, CM_NONE, 0, 0, auth_start},
        {CMD_AUTH_EV2_FIRST, CM_NONE, 0, 0, auth_start},
        {CMD_AUTH_EV2_NONFST, CM_NONE, 0, 0, auth_start},
        {0x5A, CM_NONE, 0, 0, cmd_select_application},
        {0x60, CM_MGMT, 0, 0, cmd_get_version},
        {0x51, CM_MGMT, 0, 0, cmd_get_card_uid},
        {0xFC, CM_MGMT, 0, 0, cmd_format_picc},
        {0x6A, CM_MGMT, 0, 0, cmd_get_application_ids},
        {0xCA, CM_MGMT, 0, 0, cmd_create_application},
        {0xDA, CM_MGMT, 0, 0, cmd_delete_application},
        {0x45, CM_MGMT, 0, 0, cmd_get_key_settings},
        {0x54, CM_FULL, 0, 1, cmd_change_key_settings},
        {CMD_CHANGE_KEY, CM_SELF, 0, 0, cmd_change_key},
        {0x64, CM_MGMT, 0, 0, cmd_get_key_version},
        {0x6E, CM_MGMT, 0, 0, cmd_get_free_memory},
        {0x5C, CM_SELF, 0, 0, cmd_set_configuration},
        {0xCD, CM_MGMT, 0, 0, cmd_create_std_file},
        {0xCB, CM_MGMT, 0, 0, cmd_create_backup_file},
        {0xC1, CM_MGMT, 0, 0, cmd_create_linear_file},
        {0xC0, CM_MGMT, 0, 0, cmd_create_cyclic_file},
        {0x5F, CM_SELF, 0, 0, cmd_change_file_settings},
        {0x6D, CM_MGMT, 0, 0, cmd_get_df_names},
        {0x61, CM_MGMT, 0, 0, cmd_get_iso_file_ids},
        {0x3B, CM_SELF, 0, 0, cmd_write_record},
        {0xBB, CM_SELF, 0, 0, cmd_read_records},
        {0xEB, CM_MGMT, 0, 0, cmd_clear_record_file},
        {0xCC, CM_MGMT, 0, 0, cmd_create_value_file},
        {0xDF, CM_MGMT, 0, 0, cmd_delete_file},
        {0x6F, CM_MGMT, 0, 0, cmd_get_file_ids},
        {0xF5, CM_MGMT, 0, 0, cmd_get_file_settings},
        {0xBD, CM_SELF, 0, 0, cmd_read_data},
        {0x3D, CM_SELF, 0, 0, cmd_write_data},
        {0x6C, CM_SELF, 0, 0, cmd_get_value},
        {0x0C, CM_SELF, 0, 0, cmd_credit},
        {0xDC, CM_SELF, 0, 0, cmd_debit},
        {0x1C, CM_SELF, 0, 0, cmd_limited_credit},
        {0xC7, CM_MGMT, 0, 0, cmd_commit_transaction},
        {0xA7, CM_MGMT, 0, 0, cmd_abort_transaction},
};

static const struct command *find_command(uint8_t code)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].code == code)
			return &commands[i];
	return NULL;
}

static int is_auth_command(uint8_t code)
{
	return code == CMD_AUTH_LEGACY || code == CMD_AUTH_ISO || code == CMD_AUTH_AES ||
	       code == CMD_AUTH_EV2_FIRST || code == CMD_AUTH_EV2_NONFST;
}

/* Runs one complete command (frame = code and parameters, possibly reassembled). */
static void run_command(struct hil_desfire_card *c, const uint8_t *frame, size_t len)
{
	struct req r = {0};
	r.cmd = frame[0];
	r.frame = frame;
	r.frame_len = len;
	r.data = frame + 1;
	r.len = len - 1;
	r.mode = RM_MAC;
	c->dirty = 0;

	const struct command *cmd = find_command(r.cmd);
	int st = ST_ILLEGAL_COMMAND;
	if (cmd) {
		st = 0;
		if (cmd->mode == CM_MGMT || cmd->mode == CM_FULL)
			st = sm_unwrap(c, &r, cmd->mode, cmd->hdr, cmd->plain_len);
		if (st == 0)
			st = cmd->run(c, &r);
	}

	if (st == ST_NEED_MORE) {
		if (r.need + 1 > sizeof(c->rx)) {
			finish_error(c, &r, ST_LENGTH);
			return;
		}
		if (frame != c->rx)
			memcpy(c->rx, frame, len);
		c->rx_len = len;
		c->rx_need = r.need + 1;
		c->pending = PEND_IN;
		answer(c, ST_ADDITIONAL_FRAME, NULL, 0);
		return;
	}
	if (st == ST_ADDITIONAL_FRAME) { /* authentication, part 1 */
		c->pending = PEND_AUTH;
		answer(c, ST_ADDITIONAL_FRAME, c->resp, r.resp_len);
		return;
	}
	if (st == ST_OK && c->dirty && save(c) != 0)
		st = ST_EEPROM;
	c->dirty = 0;
	if (st == ST_OK)
		finish_ok(c, &r);
	else
		finish_error(c, &r, st);
}

static void continue_chain(struct hil_desfire_card *c, const uint8_t *data, size_t len)
{
	switch (c->pending) {
	case PEND_OUT:
		if (len != 0) {
			finish_error(c, NULL, ST_LENGTH);
			return;
		}
		send_chunk(c);
		return;
	case PEND_AUTH:
		auth_finish(c, data, len);
		return;
	case PEND_IN:
		if (len > c->rx_need - c->rx_len) {
			finish_error(c, NULL, ST_LENGTH);
			return;
		}
		memcpy(c->rx + c->rx_len, data, len);
		c->rx_len += len;
		if (c->rx_len < c->rx_need) {
			answer(c, ST_ADDITIONAL_FRAME, NULL, 0);
			return;
		}
		const size_t total = c->rx_len;
		c->pending = PEND_NONE;
		c->rx_len = c->rx_need = 0;
		run_command(c, c->rx, total);
		return;
	case PEND_NONE:
		break;
	}
	finish_error(c, NULL, ST_ILLEGAL_COMMAND);
}

/* One DESFire frame in, the answer in c->ans_status / c->ans. */
static void process_frame(struct hil_desfire_card *c, const uint8_t *frame, size_t len)
{
	if (len == 0) {
		finish_error(c, NULL, ST_LENGTH);
		return;
	}
	if (frame[0] == CMD_ADDITIONAL) {
		continue_chain(c, frame + 1, len - 1);
		return;
	}
	if (c->pending != PEND_NONE) {
		/* a chained exchange interrupted: a new authentication simply starts over;
		 * anything else is refused and ends the session */
		const int was_auth = c->pending == PEND_AUTH;
		pending_clear(c);
		if (was_auth)
			session_clear(c);
		if (!is_auth_command(frame[0])) {
			finish_error(c, NULL, ST_COMMAND_ABORTED);
			return;
		}
	}
	run_command(c, frame, len);
}

/* ---- hil_target ------------------------------------------------------------------------ */

static void target_info(void *ctx, struct hil_target_info *info)
{
	struct hil_desfire_card *c = ctx;
	memset(info, 0, sizeof(*info));
	/* ATQA 0344: 7-byte UID; 0304 for the single-size random ID */
	info->atqa[0] = 0x03;
	info->atqa[1] = c->rf_uid_len == 4 ? 0x04 : 0x44;
	info->sak = 0x20;
	memcpy(info->uid, c->rf_uid, c->rf_uid_len);
	info->uid_len = c->rf_uid_len;
	/* the factory ATS, or the one SetConfiguration option 02 wrote */
	if (c->picc.ats_len) {
		memcpy(info->ats, c->picc.ats, c->picc.ats_len);
		info->ats_len = c->picc.ats_len;
	} else {
		memcpy(info->ats, ats_desfire_ev2, sizeof(ats_desfire_ev2));
		info->ats_len = sizeof(ats_desfire_ev2);
	}
}

static void target_activate(void *ctx)
{
	struct hil_desfire_card *c = ctx;
	refresh_image(c);
	c->used = 0;
}

static void target_deactivate(void *ctx)
{
	struct hil_desfire_card *c = ctx;
	volatile_reset(c);
	/* A random-ID card shows a new UID after each use. A select/deselect with no frame in
	 * between (libnfc's listing loop, before it reselects the card by UID) keeps it, as a
	 * real card that stays in the field does. */
	if (c->used)
		new_rf_uid(c);
	c->used = 0;
}

static int target_transceive(void *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
                             size_t out_cap)
{
	struct hil_desfire_card *c = ctx;
	if (!in || !out)
		return HIL_TARGET_SILENT;
	c->used = 1;
	/* ISO 7816-4 wrapping: 90 CMD 00 00 [Lc data] [Le] */
	const int iso = in_len >= 4 && in[0] == 0x90;
	if (iso) {
		static const uint8_t wrong_length[2] = {0x67, 0x00}, wrong_p1p2[2] = {0x6A, 0x86};
		const uint8_t *sw = NULL;
		size_t lc = 0;
		if (in[2] != 0 || in[3] != 0)
			sw = wrong_p1p2;
		else if (in_len > 5) {
			lc = in[4];
			if (in_len != 5 + lc && in_len != 6 + lc)
				sw = wrong_length;
		}
		if (in_len == 5 + lc + 1 && in[in_len - 1] != 0x00)
			sw = wrong_length;
		if (sw) {
			if (out_cap < 2)
				return HIL_TARGET_SILENT;
			memcpy(out, sw, 2);
			return 2;
		}
		/* the frame is CMD followed by the Lc data: assemble it in the answer area */
		uint8_t frame[1 + 255];
		frame[0] = in[1];
		memcpy(frame + 1, in + 5, lc);
		process_frame(c, frame, 1 + lc);
	} else {
		process_frame(c, in, in_len);
	}
	if (out_cap < c->ans_len + 2)
		return HIL_TARGET_SILENT;
	if (iso) {
		memcpy(out, c->ans, c->ans_len);
		out[c->ans_len] = 0x91;
		out[c->ans_len + 1] = c->ans_status;
		return (int)(c->ans_len + 2);
	}
	out[0] = c->ans_status;
	memcpy(out + 1, c->ans, c->ans_len);
	return (int)(c->ans_len + 1);
}

static void target_destroy(void *ctx)
{
	hil_desfire_card_close(ctx);
}

static const struct hil_target_ops desfire_ops = {
        .info = target_info,
        .activate = target_activate,
        .transceive = target_transceive,
        .deactivate = target_deactivate,
        .destroy = target_destroy,
};

/* ---- public API ------------------------------------------------------------------------ */

int hil_desfire_card_open(struct hil_desfire_card **out, const char *image_path,
                          const struct hil_desfire_config *cfg_if_new)
{
	if (!out || !image_path || !*image_path)
		return HIL_DESFIRE_EARG;
	*out = NULL;
	struct hil_desfire_card *c = calloc(1, sizeof(*c));
	if (!c)
		return HIL_DESFIRE_ENOMEM;
	c->path = strdup(image_path);
	if (!c->path) {
		free(c);
		return HIL_DESFIRE_ENOMEM;
	}
	int rc = hil_df_image_load(c->path, &c->picc);
	if (rc == HIL_DESFIRE_EIO && errno == ENOENT) {
		if (!cfg_if_new) {
			rc = HIL_DESFIRE_EIO;
		} else {
			hil_df_picc_factory(&c->picc, cfg_if_new->uid, cfg_if_new->random_id,
			                    cfg_if_new->picc_key_aes);
			rc = save(c);
		}
	} else if (rc == 0) {
		remember_image(c);
	}
	if (rc != 0) {
		hil_desfire_card_close(c);
		return rc;
	}
	volatile_reset(c);
	new_rf_uid(c);
	*out = c;
	return 0;
}

struct hil_target hil_desfire_card_target(struct hil_desfire_card *card)
{
	struct hil_target t = {&desfire_ops, card};
	return t;
}

void hil_desfire_card_close(struct hil_desfire_card *card)
{
	if (!card)
		return;
	hil_df_picc_free(&card->picc);
	free(card->path);
	mbedtls_platform_zeroize(card, sizeof(*card));
	free(card);
}

void hil_desfire_card_set_random(struct hil_desfire_card *card, hil_desfire_random_fn fill,
                                 void *ctx)
{
	if (!card)
		return;
	card->random = fill;
	card->random_ctx = fill ? ctx : NULL;
}

const char *hil_desfire_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case HIL_DESFIRE_EARG:
		return "invalid argument";
	case HIL_DESFIRE_ENOMEM:
		return "out of memory";
	case HIL_DESFIRE_EIO:
		return "the card image could not be read or written";
	case HIL_DESFIRE_EIMAGE:
		return "the card image is malformed or inconsistent";
	case HIL_DESFIRE_EFORMAT:
		return "the card image has an unknown format version";
	default:
		return "unknown error";
	}
}
