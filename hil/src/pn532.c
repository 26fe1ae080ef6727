/*
 * pn532.c — an emulated NXP PN532 on HSU, as libnfc 1.8.0's pn532_uart driver drives it.
 *
 * Sources: PN532 user manual UM0701-02 §6.2 (frames) and §7 (commands); libnfc 1.8.0
 * chips/pn53x.c and drivers/pn532_uart.c (what the host sends and what it checks);
 * shared/HIL-NOTES.md (what was measured against Debian's build).
 *
 * The chip answers every command synchronously from hil_pn532_feed(): an ACK, then the
 * response frame. It keeps one target (Tg 1) in its field and carries ISO/IEC 14443-4
 * payloads to it; the 14443-3 anticollision and the 14443-4 block protocol are assumed
 * to succeed and are not modelled bit by bit.
 */
#include "hil/pn532.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- frame layout (UM0701-02 §6.2.1) ------------------------------------------------- */

#define PN532_TFI_HOST 0xD4
#define PN532_TFI_CHIP 0xD5
/* LEN counts TFI and data; the firmware takes at most 264 data bytes (§6.2.1.2). */
#define PN532_LEN_MAX 265
/* A chip frame uses the normal form up to LEN 255 and the extended form above (§6.2.1.2). */
#define PN532_NORMAL_LEN_MAX 255
/* Start code, extended header, TFI + data, DCS, postamble. */
#define PN532_FRAME_MAX (2 + 5 + PN532_LEN_MAX + 2)
/* Room for a few whole frames, so a frame split across feeds always fits. */
#define PN532_RX_CAP (4 * PN532_FRAME_MAX)
/* Response data after TFI: the answered command code (CMD + 1) and its parameters. */
#define PN532_REPLY_DATA_MAX (PN532_LEN_MAX - 1)
/* InDataExchange carries at most 262 data bytes per frame after its status byte; more is
 * chained with status bit 6 (MI), and libnfc fetches the rest with `D4 40 01`. */
#define PN532_DEP_CHUNK 262

static const uint8_t pn532_ack_frame[] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
/* Application-level (syntax) error frame, §6.2.1.5. */
static const uint8_t pn532_error_frame[] = {0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00};

/* ---- commands and status codes (UM0701-02 §7) ----------------------------------------- */

enum pn532_cmd {
	CMD_DIAGNOSE = 0x00,
	CMD_GET_FIRMWARE_VERSION = 0x02,
	CMD_GET_GENERAL_STATUS = 0x04,
	CMD_READ_REGISTER = 0x06,
	CMD_WRITE_REGISTER = 0x08,
	CMD_READ_GPIO = 0x0C,
	CMD_WRITE_GPIO = 0x0E,
	CMD_SET_SERIAL_BAUD_RATE = 0x10,
	CMD_SET_PARAMETERS = 0x12,
	CMD_SAM_CONFIGURATION = 0x14,
	CMD_POWER_DOWN = 0x16,
	CMD_RF_CONFIGURATION = 0x32,
	CMD_IN_DATA_EXCHANGE = 0x40,
	CMD_IN_COMMUNICATE_THRU = 0x42,
	CMD_IN_DESELECT = 0x44,
	CMD_IN_JUMP_FOR_PSL = 0x46,
	CMD_IN_LIST_PASSIVE_TARGET = 0x4A,
	CMD_IN_PSL = 0x4E,
	CMD_IN_ATR = 0x50,
	CMD_IN_RELEASE = 0x52,
	CMD_IN_SELECT = 0x54,
	CMD_IN_JUMP_FOR_DEP = 0x56,
	CMD_IN_AUTO_POLL = 0x60,
};

#define ST_OK             0x00
#define ST_TIMEOUT        0x01 /* the target did not answer */
#define ST_INBUF_OVERFLOW 0x0E /* internal buffer overflow */
#define ST_MIFARE_AUTH    0x14 /* MIFARE authentication error */
#define ST_NOT_ACCEPTABLE 0x27 /* command not acceptable in the current context */
#define ST_MI             0x40 /* more information: the answer continues */

/* SetParameters flags (§7.2.9). */
#define PARAM_AUTO_ATR_RES 0x04
#define PARAM_AUTO_RATS    0x10

/* InListPassiveTarget BrTy 0x00 and InAutoPoll target types (§7.3.5, §7.3.13). */
#define BRTY_106_TYPE_A      0x00
#define POLL_GENERIC_106     0x00
#define POLL_MIFARE          0x10
#define POLL_ISO14443_4A_106 0x20

/* CIU registers the emulator gives a reset value (§8.6.23); others read as written. */
#define REG_CIU_TXMODE   0x6302
#define REG_CIU_RXMODE   0x6303
#define REG_CIU_TXAUTO   0x6305
#define REG_CIU_CONTROL  0x633C
#define CIU_FRAMING_MASK 0x03 /* TxMode framing: 0 = ISO/IEC 14443-A / MIFARE */

/* ---- the chip ---------------------------------------------------------------------- */

struct hil_pn532 {
	struct hil_pn532_io io;
	struct hil_pn532_stats stats;

	/* Host bytes not yet parsed; always starts at a possible frame start. */
	uint8_t rx[PN532_RX_CAP];
	size_t rx_len;

	/* The last response frame, for a host NACK (§6.2.1.4); emptied by a host ACK. */
	uint8_t last_reply[PN532_FRAME_MAX];
	size_t last_reply_len;

	uint8_t regs[0x10000]; /* ReadRegister/WriteRegister address space */
	uint8_t params;        /* SetParameters flags */
	uint8_t sam_mode;
	uint8_t last_error; /* GetGeneralStatus Err */
	int field_on;

	/* The target in the field. `listed`: Tg 1 is known to the chip (InListPassiveTarget
	 * or InAutoPoll); `selected`: and not deselected; `iso4`: RATS was done, so payloads go
	 * to ops->transceive; `active`: ops->activate was called and deactivate is owed. */
	struct hil_target target;
	int has_target;
	int present; /* 0 once the target reported HIL_TARGET_GONE */
	int listed, selected, iso4, active;
	struct hil_target_info info;

	/* InDataExchange chaining, host to chip (Tg bit 6) and chip to host (status bit 6). */
	uint8_t apdu_in[HIL_APDU_MAX];
	size_t apdu_in_len;
	int apdu_in_overflow;
	uint8_t apdu_out[HIL_APDU_MAX];
	size_t apdu_out_len, apdu_out_off;

	/* An InAutoPoll that found nothing waits, as the chip keeps polling, for a target or
	 * for the end of its PollNr x Period (§7.3.13); only with io.now_ms. */
	int poll_pending;
	uint8_t poll_args[17];
	size_t poll_args_len;
	long long poll_deadline_ms; /* -1: PollNr 0xFF, polls until a target comes */
};

/* cmd_in_auto_poll found nothing and will answer later: ACK now, no reply yet. */
#define POLL_DEFERRED 1

/* One response under construction: CMD + 1, then parameters. */
struct reply {
	uint8_t data[PN532_REPLY_DATA_MAX];
	size_t len;
	int status;      /* status byte for the log line, or -1 */
	size_t in_bytes; /* payload sizes for the log line of an exchange, or SIZE_MAX */
	size_t out_bytes;
};

static void reply_put(struct reply *r, uint8_t b)
{
	if (r->len < sizeof(r->data))
		r->data[r->len++] = b;
}

static void reply_put_bytes(struct reply *r, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		reply_put(r, p[i]);
}

static void reply_status(struct reply *r, uint8_t status)
{
	r->status = status;
	reply_put(r, status);
}

/* ---- output ------------------------------------------------------------------------ */

static void chip_write(struct hil_pn532 *chip, const uint8_t *data, size_t len)
{
	if (chip->io.write && len)
		chip->io.write(chip->io.ctx, data, len);
}

static void chip_log(struct hil_pn532 *chip, const char *line)
{
	if (chip->io.log)
		chip->io.log(chip->io.ctx, line);
}

/* Frames `data` (CMD + 1 and parameters) as a chip information frame into last_reply. */
static void encode_reply(struct hil_pn532 *chip, const uint8_t *data, size_t len)
{
	uint8_t *f = chip->last_reply;
	const size_t frame_len = len + 1; /* TFI included */
	size_t n = 0;

	f[n++] = 0x00;
	f[n++] = 0x00;
	f[n++] = 0xFF;
	if (frame_len <= PN532_NORMAL_LEN_MAX) {
		f[n++] = (uint8_t)frame_len;
		f[n++] = (uint8_t)(0x100 - frame_len);
	} else {
		const uint8_t len_m = (uint8_t)(frame_len >> 8), len_l = (uint8_t)frame_len;
		f[n++] = 0xFF;
		f[n++] = 0xFF;
		f[n++] = len_m;
		f[n++] = len_l;
		f[n++] = (uint8_t)(0x100 - ((len_m + len_l) & 0xFF));
	}
	uint8_t sum = PN532_TFI_CHIP;
	f[n++] = PN532_TFI_CHIP;
	for (size_t i = 0; i < len; i++) {
		f[n++] = data[i];
		sum = (uint8_t)(sum + data[i]);
	}
	f[n++] = (uint8_t)(0x100 - sum);
	f[n++] = 0x00;
	chip->last_reply_len = n;
}

static void send_reply(struct hil_pn532 *chip, const struct reply *r)
{
	encode_reply(chip, r->data, r->len);
	chip_write(chip, pn532_ack_frame, sizeof(pn532_ack_frame));
	chip_write(chip, chip->last_reply, chip->last_reply_len);
}

/* A well-formed frame the firmware refuses at the application level: ACK, then §6.2.1.5. */
static void send_syntax_error(struct hil_pn532 *chip)
{
	memcpy(chip->last_reply, pn532_error_frame, sizeof(pn532_error_frame));
	chip->last_reply_len = sizeof(pn532_error_frame);
	chip_write(chip, pn532_ack_frame, sizeof(pn532_ack_frame));
	chip_write(chip, chip->last_reply, chip->last_reply_len);
}

/* ---- the target -------------------------------------------------------------------- */

static int target_here(const struct hil_pn532 *chip)
{
	return chip->has_target && chip->present;
}

static void target_deactivate(struct hil_pn532 *chip)
{
	if (chip->active) {
		chip->active = 0;
		if (chip->target.ops->deactivate)
			chip->target.ops->deactivate(chip->target.ctx);
	}
}

static void target_activate(struct hil_pn532 *chip)
{
	if (!chip->active) {
		chip->active = 1;
		if (chip->target.ops->activate)
			chip->target.ops->activate(chip->target.ctx);
	}
}

static void apdu_chain_reset(struct hil_pn532 *chip)
{
	chip->apdu_in_len = 0;
	chip->apdu_in_overflow = 0;
	chip->apdu_out_len = 0;
	chip->apdu_out_off = 0;
}

/* The chip forgets Tg 1: InRelease, field off, PowerDown, a new listing, a new card. */
static void target_release(struct hil_pn532 *chip)
{
	target_deactivate(chip);
	chip->listed = chip->selected = chip->iso4 = 0;
	apdu_chain_reset(chip);
}

/* Identification as the target gives it, made safe to put on the wire. */
static int target_identify(struct hil_pn532 *chip)
{
	struct hil_target_info *info = &chip->info;

	memset(info, 0, sizeof(*info));
	if (chip->target.ops->info)
		chip->target.ops->info(chip->target.ctx, info);
	if (info->uid_len > HIL_UID_MAX)
		info->uid_len = HIL_UID_MAX;
	if (info->ats_len > HIL_ATS_MAX)
		info->ats_len = HIL_ATS_MAX;
	/* TL counts itself; libnfc trusts it for the copy length, so it must match. */
	if (info->ats_len)
		info->ats[0] = info->ats_len;
	return info->uid_len > 0;
}

/* ISO/IEC 14443-3 cascade form of the UID, as libnfc's iso14443_cascade_uid() sends it
 * in InListPassiveTarget to select one card. */
static size_t cascade_uid(const struct hil_target_info *info, uint8_t out[12])
{
	const uint8_t *u = info->uid;
	switch (info->uid_len) {
	case 7:
		out[0] = 0x88;
		memcpy(out + 1, u, 7);
		return 8;
	case 10:
		out[0] = 0x88;
		memcpy(out + 1, u, 3);
		out[4] = 0x88;
		memcpy(out + 5, u + 3, 7);
		return 12;
	default:
		memcpy(out, u, info->uid_len);
		return info->uid_len;
	}
}

static int uid_matches(const struct hil_target_info *info, const uint8_t *want, size_t n)
{
	uint8_t cascaded[12];
	const size_t len = cascade_uid(info, cascaded);
	if (n == len && memcmp(cascaded, want, n) == 0)
		return 1;
	return n == info->uid_len && memcmp(info->uid, want, n) == 0;
}

/* Anticollision, and RATS when asked: the target becomes Tg 1. */
static int target_select(struct hil_pn532 *chip, const uint8_t *uid, size_t uid_len, int rats)
{
	target_release(chip);
	chip->field_on = 1; /* the chip switches the field on to poll */
	if (!target_here(chip) || !target_identify(chip))
		return 0;
	if (uid_len && !uid_matches(&chip->info, uid, uid_len))
		return 0;
	chip->listed = chip->selected = 1;
	chip->iso4 = rats && chip->info.ats_len > 0;
	if (chip->iso4)
		target_activate(chip);
	return 1;
}

/* TargetData of InListPassiveTarget and InAutoPoll for 106 kbps type A (§7.3.5). */
static void put_target_data(struct reply *r, const struct hil_pn532 *chip)
{
	const struct hil_target_info *info = &chip->info;
	reply_put(r, 0x01); /* Tg */
	reply_put_bytes(r, info->atqa, 2);
	reply_put(r, info->sak);
	reply_put(r, info->uid_len);
	reply_put_bytes(r, info->uid, info->uid_len);
	if (chip->iso4)
		reply_put_bytes(r, info->ats, info->ats_len);
}

/* ---- commands ---------------------------------------------------------------------- */

/* Each handler appends the parameters of its answer to `r` (CMD + 1 is already there)
 * and returns 0, or -1 for a syntax error. `a` holds the n bytes after the command code. */
typedef int (*cmd_fn)(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r);

static int cmd_diagnose(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	if (n < 1)
		return -1;
	switch (a[0]) {
	case 0x00: /* communication line test: echo NumTst and InParam */
		reply_put_bytes(r, a, n);
		return 0;
	case 0x01: /* ROM test */
	case 0x02: /* RAM test */
	case 0x07: /* antenna self test */
		reply_status(r, ST_OK);
		return 0;
	case 0x04: /* polling test: NbFail out of 128 polls */
		reply_put(r, target_here(chip) ? 0 : 128);
		return 0;
	case 0x06: /* ISO/IEC 14443-4 card presence, libnfc's "Diagnose06" */
		if (!target_here(chip))
			reply_status(r, ST_TIMEOUT);
		else
			reply_status(r, chip->selected ? ST_OK : ST_NOT_ACCEPTABLE);
		return 0;
	default:
		return -1;
	}
}

static int cmd_get_firmware_version(struct hil_pn532 *chip, const uint8_t *a, size_t n,
                                    struct reply *r)
{
	/* IC 0x32 = PN532, version 1.6, supports ISO 14443-A, 14443-B and ISO 18092. */
	static const uint8_t version[] = {0x32, 0x01, 0x06, 0x07};
	(void)chip;
	(void)a;
	(void)n;
	reply_put_bytes(r, version, sizeof(version));
	return 0;
}

static int cmd_get_general_status(struct hil_pn532 *chip, const uint8_t *a, size_t n,
                                  struct reply *r)
{
	(void)a;
	(void)n;
	reply_put(r, chip->last_error);
	reply_put(r, chip->field_on ? 1 : 0);
	reply_put(r, chip->selected ? 1 : 0);
	if (chip->selected) {
		static const uint8_t tg[] = {0x01, 0x00, 0x00, 0x00}; /* Tg, 106 kbps, type A */
		reply_put_bytes(r, tg, sizeof(tg));
	}
	reply_put(r, 0x00); /* SAM status */
	return 0;
}

static int cmd_read_register(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	if (n == 0 || n % 2)
		return -1;
	/* PN532: one value byte per address, no status byte (a PN533 would prepend one). */
	for (size_t i = 0; i < n; i += 2)
		reply_put(r, chip->regs[(a[i] << 8) | a[i + 1]]);
	return 0;
}

static int cmd_write_register(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	(void)r;
	if (n == 0 || n % 3)
		return -1;
	for (size_t i = 0; i < n; i += 3)
		chip->regs[(a[i] << 8) | a[i + 1]] = a[i + 2];
	return 0;
}

static int cmd_read_gpio(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	static const uint8_t gpio[] = {0x3F, 0x07, 0x00}; /* P3, P7, I0I1: pulled up, idle */
	(void)chip;
	(void)a;
	(void)n;
	reply_put_bytes(r, gpio, sizeof(gpio));
	return 0;
}

static int cmd_accept_one(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	/* WriteGPIO, SetSerialBaudRate: one parameter at least, nothing to model on a pty. */
	(void)chip;
	(void)a;
	(void)r;
	return n >= 1 ? 0 : -1;
}

static int cmd_set_parameters(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	(void)r;
	if (n != 1)
		return -1;
	chip->params = a[0];
	return 0;
}

static int cmd_sam_configuration(struct hil_pn532 *chip, const uint8_t *a, size_t n,
                                 struct reply *r)
{
	(void)r;
	if (n < 1 || n > 3 || a[0] < 0x01 || a[0] > 0x04)
		return -1;
	chip->sam_mode = a[0];
	return 0;
}

static int cmd_power_down(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	(void)a;
	if (n < 1 || n > 2)
		return -1;
	/* The RF field goes off with the chip: the card loses power. */
	target_release(chip);
	chip->field_on = 0;
	reply_status(r, ST_OK);
	return 0;
}

static int cmd_rf_configuration(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	size_t want;
	(void)r;
	if (n < 1)
		return -1;
	switch (a[0]) {
	case 0x01: /* RF field */
	case 0x04: /* MaxRtyCOM */
	case 0x0C: /* analog settings, 212/424 kbps additional */
		want = 1;
		break;
	case 0x02: /* various timings */
	case 0x05: /* max retries */
	case 0x0B: /* analog settings, 212/424 kbps */
		want = 3;
		break;
	case 0x0A: /* analog settings, 106 kbps type A */
		want = 11;
		break;
	case 0x0D: /* analog settings, type B */
		want = 9;
		break;
	default:
		return -1;
	}
	if (n - 1 != want)
		return -1;
	if (a[0] == 0x01) {
		chip->field_on = a[1] & 0x01;
		if (!chip->field_on)
			target_release(chip);
	}
	return 0;
}

/* One ISO/IEC 14443-4 exchange with the target; the answer goes to apdu_out. */
static uint8_t exchange_iso4(struct hil_pn532 *chip, const uint8_t *in, size_t in_len)
{
	chip->stats.exchanges++;
	const int n = chip->target.ops->transceive(chip->target.ctx, in, in_len, chip->apdu_out,
	                                           sizeof(chip->apdu_out));
	if (n == HIL_TARGET_GONE) {
		/* The chip still lists the card; it just never answers again. */
		target_deactivate(chip);
		chip->present = 0;
		return ST_TIMEOUT;
	}
	if (n < 0)
		return ST_TIMEOUT;
	chip->apdu_out_len =
	        (size_t)n > sizeof(chip->apdu_out) ? sizeof(chip->apdu_out) : (size_t)n;
	chip->apdu_out_off = 0;
	return ST_OK;
}

/* Status and the next chunk of apdu_out, with MI while more remains. */
static void put_answer_chunk(struct hil_pn532 *chip, struct reply *r)
{
	size_t left = chip->apdu_out_len - chip->apdu_out_off;
	size_t take = left > PN532_DEP_CHUNK ? PN532_DEP_CHUNK : left;

	reply_status(r, left > take ? ST_MI : ST_OK);
	reply_put_bytes(r, chip->apdu_out + chip->apdu_out_off, take);
	r->out_bytes = take;
	chip->apdu_out_off += take;
	if (chip->apdu_out_off == chip->apdu_out_len)
		chip->apdu_out_len = chip->apdu_out_off = 0;
}

/* The status for an exchange with no selected ISO 14443-4 target, or 0 to go ahead. */
static uint8_t exchange_refusal(const struct hil_pn532 *chip, const uint8_t *in, size_t in_len)
{
	if (!target_here(chip))
		return ST_TIMEOUT; /* nothing in the field answers */
	if (!chip->selected)
		return ST_NOT_ACCEPTABLE;
	if (!chip->iso4) {
		/* A MIFARE Classic or UID-only target: raw 14443-3 commands are not emulated.
		 * An AUTH fails as with a wrong key, anything else goes unanswered. */
		if (in_len && (in[0] == 0x60 || in[0] == 0x61))
			return ST_MIFARE_AUTH;
		return ST_TIMEOUT;
	}
	return 0;
}

static int cmd_in_data_exchange(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	if (n < 1)
		return -1;
	const uint8_t tg = a[0];
	const uint8_t *data = a + 1;
	const size_t len = n - 1;
	r->in_bytes = len;
	r->out_bytes = 0;

	if ((tg & 0x3F) != 0x01) {
		apdu_chain_reset(chip);
		reply_status(r, ST_NOT_ACCEPTABLE);
		return 0;
	}
	/* `D4 40 01` with nothing to send fetches the rest of a chained answer. */
	if (len == 0 && !(tg & 0x40) && chip->apdu_out_len && !chip->apdu_in_len) {
		put_answer_chunk(chip, r);
		return 0;
	}
	chip->apdu_out_len = chip->apdu_out_off = 0;

	const uint8_t refusal = exchange_refusal(chip, data, len);
	if (refusal) {
		apdu_chain_reset(chip);
		reply_status(r, refusal);
		return 0;
	}
	/* Host-side chaining: Tg bit 6 says more of the same payload follows. */
	if (chip->apdu_in_len + len > sizeof(chip->apdu_in)) {
		chip->apdu_in_overflow = 1;
	} else {
		memcpy(chip->apdu_in + chip->apdu_in_len, data, len);
		chip->apdu_in_len += len;
	}
	if (tg & 0x40) {
		reply_status(r, ST_OK);
		return 0;
	}
	if (chip->apdu_in_overflow) {
		apdu_chain_reset(chip);
		reply_status(r, ST_INBUF_OVERFLOW);
		return 0;
	}
	r->in_bytes = chip->apdu_in_len;
	const uint8_t status = exchange_iso4(chip, chip->apdu_in, chip->apdu_in_len);
	chip->apdu_in_len = 0;
	if (status != ST_OK) {
		reply_status(r, status);
		return 0;
	}
	put_answer_chunk(chip, r);
	return 0;
}

/* R(ACK)/R(NAK) blocks: PCB 101x x01b (ISO/IEC 14443-4 §7.1.1.1). */
static int is_r_block(const uint8_t *in, size_t len)
{
	return len >= 1 && (in[0] & 0xE6) == 0xA2;
}

static int cmd_in_communicate_thru(struct hil_pn532 *chip, const uint8_t *a, size_t n,
                                   struct reply *r)
{
	r->in_bytes = n;
	r->out_bytes = 0;
	/* libnfc probes B, B', SR, CT and barcode tags with raw frames after switching the
	 * CIU framing; a type A card never answers those. The one raw exchange that reaches
	 * an ISO 14443-4 card is libnfc's presence check, an R(NAK) `B2`: the card answers
	 * R(ACK) (ISO/IEC 14443-4 rule 12), carrying the CID if the R block did. */
	const int type_a = (chip->regs[REG_CIU_TXMODE] & CIU_FRAMING_MASK) == 0;
	if (!type_a || exchange_refusal(chip, a, n) || !is_r_block(a, n) ||
	    ((a[0] & 0x08) && n < 2)) {
		reply_status(r, ST_TIMEOUT);
		return 0;
	}
	chip->stats.exchanges++;
	reply_status(r, ST_OK);
	reply_put(r, (uint8_t)(0xA2 | (a[0] & 0x08) | ((a[0] & 0x01) ^ 0x01)));
	r->out_bytes = 1;
	if (a[0] & 0x08) {
		reply_put(r, a[1]);
		r->out_bytes = 2;
	}
	return 0;
}

static int cmd_in_deselect(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	if (n < 1)
		return -1;
	if (a[0] != 0x00 && (a[0] != 0x01 || !chip->listed)) {
		reply_status(r, ST_NOT_ACCEPTABLE);
		return 0;
	}
	/* S(DESELECT): the card leaves the protocol state; the chip keeps Tg 1 for InSelect. */
	target_deactivate(chip);
	chip->selected = 0;
	apdu_chain_reset(chip);
	reply_status(r, ST_OK);
	return 0;
}

static int cmd_in_release(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	if (n < 1)
		return -1;
	if (a[0] != 0x00 && (a[0] != 0x01 || !chip->listed)) {
		reply_status(r, ST_NOT_ACCEPTABLE);
		return 0;
	}
	target_release(chip);
	reply_status(r, ST_OK);
	return 0;
}

static int cmd_in_select(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	if (n < 1)
		return -1;
	if (a[0] != 0x01 || !chip->listed) {
		reply_status(r, ST_NOT_ACCEPTABLE);
		return 0;
	}
	if (!target_here(chip)) {
		reply_status(r, ST_TIMEOUT);
		return 0;
	}
	chip->selected = 1;
	if (chip->iso4)
		target_activate(chip);
	reply_status(r, ST_OK);
	return 0;
}

static int cmd_in_list_passive_target(struct hil_pn532 *chip, const uint8_t *a, size_t n,
                                      struct reply *r)
{
	if (n < 2 || a[0] < 1 || a[0] > 2)
		return -1;
	/* Only 106 kbps type A cards exist in this field; FeliCa, type B and Jewel polls
	 * find nothing. Initiator data at 106 kbps A is a UID to select one card. */
	if (a[1] != BRTY_106_TYPE_A) {
		target_release(chip);
		chip->field_on = 1;
		reply_put(r, 0);
		return 0;
	}
	const int found = target_select(chip, a + 2, n - 2, chip->params & PARAM_AUTO_RATS);
	reply_put(r, found ? 1 : 0);
	if (found)
		put_target_data(r, chip);
	return 0;
}

static int cmd_in_auto_poll(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	if (n < 3 || n > 2 + 15 || a[0] == 0 || a[1] < 1 || a[1] > 0x0F)
		return -1;
	target_release(chip);
	chip->field_on = 1;
	/* The first requested type this card satisfies decides how it is reported: libnfc
	 * asks for ISO 14443-4A (with RATS and ATS) before MIFARE (without). */
	int type = -1;
	if (target_here(chip) && target_identify(chip)) {
		const int iso4 = chip->info.ats_len > 0;
		for (size_t i = 2; i < n && type < 0; i++) {
			if (a[i] == POLL_ISO14443_4A_106 && iso4)
				type = POLL_ISO14443_4A_106;
			else if (a[i] == POLL_MIFARE && !iso4)
				type = POLL_MIFARE;
			else if (a[i] == POLL_GENERIC_106)
				type = iso4 ? POLL_ISO14443_4A_106 : POLL_MIFARE;
		}
	}
	if (type < 0 || !target_select(chip, NULL, 0, type == POLL_ISO14443_4A_106)) {
		if (chip->io.now_ms && !chip->poll_pending) {
			/* keep polling: a card placed meanwhile is reported at once */
			chip->poll_pending = 1;
			memcpy(chip->poll_args, a, n);
			chip->poll_args_len = n;
			chip->poll_deadline_ms =
			        a[0] == 0xFF ? -1
			                     : chip->io.now_ms(chip->io.ctx) + 150LL * a[0] * a[1];
			return POLL_DEFERRED;
		}
		reply_put(r, 0);
		return 0;
	}
	reply_put(r, 1); /* NbTg */
	reply_put(r, (uint8_t)type);
	const size_t len_at = r->len;
	reply_put(r, 0); /* AutoPollTargetData length, patched below */
	put_target_data(r, chip);
	r->data[len_at] = (uint8_t)(r->len - len_at - 1);
	return 0;
}

static int cmd_in_atr(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	(void)a;
	if (n < 2)
		return -1;
	/* No target here speaks ISO/IEC 18092: an ATR_REQ goes unanswered. */
	reply_status(r, chip->listed ? ST_TIMEOUT : ST_NOT_ACCEPTABLE);
	return 0;
}

static int cmd_in_psl(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	(void)chip;
	(void)a;
	if (n < 3)
		return -1;
	reply_status(r, ST_NOT_ACCEPTABLE); /* no DEP target to change the bit rate of */
	return 0;
}

static int cmd_in_jump(struct hil_pn532 *chip, const uint8_t *a, size_t n, struct reply *r)
{
	(void)a;
	if (n < 3)
		return -1;
	/* InJumpForDEP / InJumpForPSL: a new activation, and no DEP target answers it. */
	target_release(chip);
	chip->field_on = 1;
	reply_status(r, ST_TIMEOUT);
	return 0;
}

struct command {
	uint8_t code;
	const char *name;
	cmd_fn run;
};

static const struct command commands[] = {
        {CMD_DIAGNOSE, "Diagnose", cmd_diagnose},
        {CMD_GET_FIRMWARE_VERSION, "GetFirmwareVersion", cmd_get_firmware_version},
        {CMD_GET_GENERAL_STATUS, "GetGeneralStatus", cmd_get_general_status},
        {CMD_READ_REGISTER, "ReadRegister", cmd_read_register},
        {CMD_WRITE_REGISTER, "WriteRegister", cmd_write_register},
        {CMD_READ_GPIO, "ReadGPIO", cmd_read_gpio},
        {CMD_WRITE_GPIO, "WriteGPIO", cmd_accept_one},
        {CMD_SET_SERIAL_BAUD_RATE, "SetSerialBaudRate", cmd_accept_one},
        {CMD_SET_PARAMETERS, "SetParameters", cmd_set_parameters},
        {CMD_SAM_CONFIGURATION, "SAMConfiguration", cmd_sam_configuration},
        {CMD_POWER_DOWN, "PowerDown", cmd_power_down},
        {CMD_RF_CONFIGURATION, "RFConfiguration", cmd_rf_configuration},
        {CMD_IN_DATA_EXCHANGE, "InDataExchange", cmd_in_data_exchange},
        {CMD_IN_COMMUNICATE_THRU, "InCommunicateThru", cmd_in_communicate_thru},
        {CMD_IN_DESELECT, "InDeselect", cmd_in_deselect},
        {CMD_IN_JUMP_FOR_PSL, "InJumpForPSL", cmd_in_jump},
        {CMD_IN_LIST_PASSIVE_TARGET, "InListPassiveTarget", cmd_in_list_passive_target},
        {CMD_IN_PSL, "InPSL", cmd_in_psl},
        {CMD_IN_ATR, "InATR", cmd_in_atr},
        {CMD_IN_RELEASE, "InRelease", cmd_in_release},
        {CMD_IN_SELECT, "InSelect", cmd_in_select},
        {CMD_IN_JUMP_FOR_DEP, "InJumpForDEP", cmd_in_jump},
        {CMD_IN_AUTO_POLL, "InAutoPoll", cmd_in_auto_poll},
};

static const struct command *find_command(uint8_t code)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].code == code)
			return &commands[i];
	return NULL;
}

static void log_command(struct hil_pn532 *chip, const struct command *c, uint8_t code, size_t n,
                        const struct reply *r, int syntax_error)
{
	char line[160];
	char name[24];

	if (!chip->io.log)
		return;
	if (c)
		snprintf(name, sizeof(name), "%s", c->name);
	else
		snprintf(name, sizeof(name), "command 0x%02X", code);
	if (syntax_error)
		snprintf(line, sizeof(line), "%s %zu bytes -> syntax error frame", name, n);
	else if (r->in_bytes != SIZE_MAX && r->status >= 0)
		snprintf(line, sizeof(line), "%s %zu bytes -> %zu bytes, status %02x", name,
		         r->in_bytes, r->out_bytes, (unsigned)r->status);
	else if (r->status >= 0)
		snprintf(line, sizeof(line), "%s %zu bytes -> status %02x", name, n,
		         (unsigned)r->status);
	else
		snprintf(line, sizeof(line), "%s %zu bytes -> %zu bytes", name, n, r->len - 1);
	chip_log(chip, line);
}

/* A well-formed command frame: `cmd` is PD0 (the command code) and its parameters. */
static void handle_command(struct hil_pn532 *chip, const uint8_t *cmd, size_t len)
{
	const struct command *c = find_command(cmd[0]);
	struct reply r = {.len = 0, .status = -1, .in_bytes = SIZE_MAX, .out_bytes = 0};

	/* Anything but `D4 40 01` abandons an unfetched chained answer. */
	if (cmd[0] != CMD_IN_DATA_EXCHANGE)
		apdu_chain_reset(chip);
	reply_put(&r, (uint8_t)(cmd[0] + 1));
	const int rc = c ? c->run(chip, cmd + 1, len - 1, &r) : -1;
	chip->stats.commands++;
	if (rc == POLL_DEFERRED) {
		chip_log(chip, "InAutoPoll: no target yet, polling");
		chip_write(chip, pn532_ack_frame, sizeof(pn532_ack_frame));
		return;
	}
	log_command(chip, c, cmd[0], len - 1, &r, rc < 0);
	if (rc < 0) {
		send_syntax_error(chip);
		return;
	}
	if (r.status >= 0 && r.status != ST_MI)
		chip->last_error = (uint8_t)r.status;
	send_reply(chip, &r);
}

/* ---- host framing ------------------------------------------------------------------ */

enum parse_result {
	PARSE_NEED_MORE, /* the frame at the start code is incomplete */
	PARSE_CONSUMED,  /* *end is the index after the frame */
	PARSE_RESYNC,    /* not a frame after all: hunt again right after the start code */
};

/* Answer a pending InAutoPoll now (a target came, or its time ran out). */
static void finish_poll(struct hil_pn532 *chip)
{
	struct reply r = {.len = 0, .status = -1, .in_bytes = SIZE_MAX, .out_bytes = 0};
	chip->poll_pending = 2; /* answering: do not defer again */
	reply_put(&r, CMD_IN_AUTO_POLL + 1);
	(void)cmd_in_auto_poll(chip, chip->poll_args, chip->poll_args_len, &r);
	chip->poll_pending = 0;
	log_command(chip, find_command(CMD_IN_AUTO_POLL), CMD_IN_AUTO_POLL, chip->poll_args_len, &r,
	            0);
	encode_reply(chip, r.data, r.len);
	chip_write(chip, chip->last_reply, chip->last_reply_len);
}

long long hil_pn532_tick(struct hil_pn532 *chip)
{
	if (!chip || !chip->poll_pending || chip->poll_deadline_ms < 0 || !chip->io.now_ms)
		return -1;
	long long left = chip->poll_deadline_ms - chip->io.now_ms(chip->io.ctx);
	if (left > 0)
		return left;
	finish_poll(chip);
	return -1;
}

static void host_ack(struct hil_pn532 *chip)
{
	/* Abort (§6.2.1.3): whatever the host did not take yet is dropped. */
	chip->last_reply_len = 0;
	apdu_chain_reset(chip);
}

static void host_nack(struct hil_pn532 *chip)
{
	chip_write(chip, chip->last_reply, chip->last_reply_len);
}

/* Parses the frame whose start code `00 FF` ends at rx[p - 1]. */
static enum parse_result parse_frame(struct hil_pn532 *chip, size_t p, size_t *end)
{
	const uint8_t *rx = chip->rx;
	const size_t avail = chip->rx_len;
	size_t len, data;

	if (avail - p < 2)
		return PARSE_NEED_MORE;
	chip->poll_pending = 0; /* whatever the host sends now, it stopped waiting */
	if (rx[p] == 0x00 && rx[p + 1] == 0xFF) {
		host_ack(chip);
		*end = p + 2;
		return PARSE_CONSUMED;
	}
	if (rx[p] == 0xFF && rx[p + 1] == 0x00) {
		host_nack(chip);
		*end = p + 2;
		return PARSE_CONSUMED;
	}
	if (rx[p] == 0xFF && rx[p + 1] == 0xFF) {
		if (avail - p < 5)
			return PARSE_NEED_MORE;
		if (((rx[p + 2] + rx[p + 3] + rx[p + 4]) & 0xFF) != 0)
			goto bad_header;
		len = ((size_t)rx[p + 2] << 8) | rx[p + 3];
		data = p + 5;
	} else {
		if (((rx[p] + rx[p + 1]) & 0xFF) != 0)
			goto bad_header;
		len = rx[p];
		data = p + 2;
	}
	/* TFI and a command code at least; no more than the firmware's buffer. */
	if (len < 2 || len > PN532_LEN_MAX)
		goto bad_header;
	if (avail - data < len + 1)
		return PARSE_NEED_MORE;
	*end = data + len + 1;

	uint8_t sum = 0;
	for (size_t i = 0; i <= len; i++)
		sum = (uint8_t)(sum + rx[data + i]);
	/* A corrupt frame gets no ACK (a NACK only goes host to chip, §6.2.1.4): the host
	 * times out and retries. A frame in the chip's own direction is not a command. */
	if (sum != 0 || rx[data] != PN532_TFI_HOST) {
		chip->stats.frames_bad++;
		return PARSE_CONSUMED;
	}
	chip->stats.frames_in++;
	handle_command(chip, rx + data + 1, len - 1);
	return PARSE_CONSUMED;

bad_header:
	chip->stats.frames_bad++;
	return PARSE_RESYNC;
}

/* Consumes every complete item in rx; keeps an incomplete frame (or a trailing 00 that
 * may begin a start code) at the front for the next feed. */
static void parse_rx(struct hil_pn532 *chip)
{
	size_t pos = 0;

	while (pos < chip->rx_len) {
		size_t s = pos;
		/* Preamble, postamble, the 55 wake-up bytes and garbage: skip to `00 FF`. */
		while (s + 1 < chip->rx_len && !(chip->rx[s] == 0x00 && chip->rx[s + 1] == 0xFF))
			s++;
		if (s + 1 >= chip->rx_len) {
			pos = chip->rx[s] == 0x00 ? s : chip->rx_len;
			break;
		}
		size_t end = 0;
		const enum parse_result res = parse_frame(chip, s + 2, &end);
		if (res == PARSE_NEED_MORE) {
			pos = s;
			break;
		}
		pos = res == PARSE_CONSUMED ? end : s + 2;
	}
	chip->rx_len -= pos;
	memmove(chip->rx, chip->rx + pos, chip->rx_len);
}

/* ---- public API -------------------------------------------------------------------- */

struct hil_pn532 *hil_pn532_new(const struct hil_pn532_io *io)
{
	struct hil_pn532 *chip = calloc(1, sizeof(*chip));
	if (!chip)
		return NULL;
	if (io)
		chip->io = *io;
	/* What libnfc sets at open anyway (SetParameters 0x14); CRC on, type A framing,
	 * initiator mode, as after the firmware's own start-up. */
	chip->params = PARAM_AUTO_ATR_RES | PARAM_AUTO_RATS;
	chip->sam_mode = 0x01;
	chip->regs[REG_CIU_TXMODE] = 0x80;
	chip->regs[REG_CIU_RXMODE] = 0x80;
	chip->regs[REG_CIU_TXAUTO] = 0x40;
	chip->regs[REG_CIU_CONTROL] = 0x10;
	return chip;
}

static void target_remove(struct hil_pn532 *chip)
{
	if (!chip->has_target)
		return;
	target_release(chip);
	chip->has_target = 0;
	chip->present = 0;
	if (chip->target.ops->destroy)
		chip->target.ops->destroy(chip->target.ctx);
	memset(&chip->target, 0, sizeof(chip->target));
}

void hil_pn532_free(struct hil_pn532 *chip)
{
	if (!chip)
		return;
	target_remove(chip);
	free(chip);
}

void hil_pn532_feed(struct hil_pn532 *chip, const uint8_t *data, size_t len)
{
	if (!chip || !data)
		return;
	while (len) {
		/* parse_rx() leaves less than one frame behind, so there is always room. */
		size_t room = sizeof(chip->rx) - chip->rx_len;
		if (room == 0) {
			chip->rx_len = 0;
			room = sizeof(chip->rx);
		}
		size_t take = len < room ? len : room;
		memcpy(chip->rx + chip->rx_len, data, take);
		chip->rx_len += take;
		data += take;
		len -= take;
		parse_rx(chip);
	}
}

static void place_target(struct hil_pn532 *chip, const struct hil_target *target)
{
	if (!chip)
		return;
	if (target && target->ops && chip->has_target && target->ops == chip->target.ops &&
	    target->ctx == chip->target.ctx) {
		/* The same card taken out and put back: a new session, not a new card. */
		target_release(chip);
		chip->present = 1;
		return;
	}
	target_remove(chip);
	if (target && target->ops) {
		chip->target = *target;
		chip->has_target = 1;
		chip->present = 1;
	}
}

void hil_pn532_set_target(struct hil_pn532 *chip, const struct hil_target *target)
{
	place_target(chip, target);
	if (chip && chip->poll_pending && target_here(chip))
		finish_poll(chip);
}

int hil_pn532_has_target(const struct hil_pn532 *chip)
{
	return chip && target_here(chip);
}

void hil_pn532_get_stats(const struct hil_pn532 *chip, struct hil_pn532_stats *stats)
{
	if (!stats)
		return;
	if (chip)
		*stats = chip->stats;
	else
		memset(stats, 0, sizeof(*stats));
}
