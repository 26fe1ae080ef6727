/*
 * test_hil_pn532.c — the emulated PN532 (hil/pn532.h) byte for byte, as libnfc 1.8.0's
 * pn532_uart driver sees it.
 *
 * Expected frames are written out from the PN532 user manual UM0701-02 §6.2.1 (frame
 * layout) and §7 (command answers) with a small frame builder of this file's own, and
 * some are spelled out literally; none is produced by the emulator's encoder. The hosted
 * target is a fake: fixed UID and ATS, it echoes each APDU with 90 00 appended and counts
 * its activations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hil/pn532.h"

/* ---- frames, by the book ----------------------------------------------------------- */

static const uint8_t ACK[] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
static const uint8_t NACK[] = {0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00};
static const uint8_t ERROR_FRAME[] = {0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00};

#define FRAME_MAX 300

/* Preamble, start code, LEN/LCS (or FF FF LENm LENl LCS), TFI, data, DCS, postamble. */
static size_t build_frame(uint8_t *out, uint8_t tfi, const uint8_t *pd, size_t n, int extended)
{
	const size_t len = n + 1;
	size_t k = 0;
	uint8_t sum = tfi;

	out[k++] = 0x00;
	out[k++] = 0x00;
	out[k++] = 0xFF;
	if (!extended && len <= 255) {
		out[k++] = (uint8_t)len;
		out[k++] = (uint8_t)(256 - len);
	} else {
		out[k++] = 0xFF;
		out[k++] = 0xFF;
		out[k++] = (uint8_t)(len >> 8);
		out[k++] = (uint8_t)(len & 0xFF);
		out[k++] = (uint8_t)(256 - (((len >> 8) + (len & 0xFF)) & 0xFF));
	}
	out[k++] = tfi;
	for (size_t i = 0; i < n; i++) {
		out[k++] = pd[i];
		sum = (uint8_t)(sum + pd[i]);
	}
	out[k++] = (uint8_t)(256 - sum);
	out[k++] = 0x00;
	return k;
}

/* ---- the fake target --------------------------------------------------------------- */

struct fake {
	struct hil_target_info info;
	int activates, deactivates, destroys, transceives;
	int result;        /* 0: answer; or HIL_TARGET_SILENT / HIL_TARGET_GONE */
	size_t answer_len; /* 0: echo + 90 00; else this many bytes i & 0xFF */
	uint8_t last_in[HIL_APDU_MAX];
	size_t last_in_len;
};

static const uint8_t UID7[] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
static const uint8_t ATS[] = {0x06, 0x75, 0x77, 0x81, 0x02, 0x80};

static void fake_info(void *ctx, struct hil_target_info *info)
{
	*info = ((struct fake *)ctx)->info;
}

static void fake_activate(void *ctx)
{
	((struct fake *)ctx)->activates++;
}

static void fake_deactivate(void *ctx)
{
	((struct fake *)ctx)->deactivates++;
}

static void fake_destroy(void *ctx)
{
	((struct fake *)ctx)->destroys++;
}

static int fake_transceive(void *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
                           size_t out_cap)
{
	struct fake *f = ctx;
	f->transceives++;
	memcpy(f->last_in, in, in_len);
	f->last_in_len = in_len;
	if (f->result)
		return f->result;
	if (f->answer_len) {
		assert_true(f->answer_len <= out_cap);
		for (size_t i = 0; i < f->answer_len; i++)
			out[i] = (uint8_t)i;
		return (int)f->answer_len;
	}
	assert_true(in_len + 2 <= out_cap);
	memcpy(out, in, in_len);
	out[in_len] = 0x90;
	out[in_len + 1] = 0x00;
	return (int)in_len + 2;
}

static const struct hil_target_ops fake_ops = {fake_info, fake_activate, fake_transceive,
                                               fake_deactivate, fake_destroy};

static void fake_desfire(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->info.atqa[0] = 0x03;
	f->info.atqa[1] = 0x44;
	f->info.sak = 0x20;
	memcpy(f->info.uid, UID7, sizeof(UID7));
	f->info.uid_len = sizeof(UID7);
	memcpy(f->info.ats, ATS, sizeof(ATS));
	f->info.ats_len = sizeof(ATS);
}

static void fake_classic(struct fake *f)
{
	static const uint8_t uid4[] = {0xDE, 0xAD, 0xBE, 0xEF};
	memset(f, 0, sizeof(*f));
	f->info.atqa[0] = 0x00;
	f->info.atqa[1] = 0x04;
	f->info.sak = 0x08;
	memcpy(f->info.uid, uid4, sizeof(uid4));
	f->info.uid_len = sizeof(uid4);
}

/* ---- the bench: one chip, its output, its log -------------------------------------- */

struct bench {
	struct hil_pn532 *chip;
	uint8_t out[1 << 16];
	size_t out_len;
	int log_lines;
	char last_log[200];
	struct fake fake;
};

static void bench_write(void *ctx, const uint8_t *data, size_t len)
{
	struct bench *b = ctx;
	assert_true(b->out_len + len <= sizeof(b->out));
	memcpy(b->out + b->out_len, data, len);
	b->out_len += len;
}

static void bench_log(void *ctx, const char *line)
{
	struct bench *b = ctx;
	b->log_lines++;
	snprintf(b->last_log, sizeof(b->last_log), "%s", line);
}

static int setup(void **state)
{
	struct bench *b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	const struct hil_pn532_io io = {.write = bench_write, .log = bench_log, .ctx = b};
	b->chip = hil_pn532_new(&io);
	if (!b->chip) {
		free(b);
		return -1;
	}
	fake_desfire(&b->fake);
	const struct hil_target t = {&fake_ops, &b->fake};
	hil_pn532_set_target(b->chip, &t);
	*state = b;
	return 0;
}

static int teardown(void **state)
{
	struct bench *b = *state;
	hil_pn532_free(b->chip);
	free(b);
	return 0;
}

static void feed(struct bench *b, const uint8_t *data, size_t len)
{
	hil_pn532_feed(b->chip, data, len);
}

static void feed_bytewise(struct bench *b, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		hil_pn532_feed(b->chip, data + i, 1);
}

/* A host command frame (TFI D4) with data `pd` = command code and parameters. */
static void send_cmd(struct bench *b, const uint8_t *pd, size_t n)
{
	uint8_t frame[FRAME_MAX];
	feed(b, frame, build_frame(frame, 0xD4, pd, n, 0));
}

#define SEND(b, ...)                                                                               \
	do {                                                                                       \
		const uint8_t pd_[] = {__VA_ARGS__};                                               \
		send_cmd((b), pd_, sizeof(pd_));                                                   \
	} while (0)

static void expect_bytes(struct bench *b, const uint8_t *want, size_t n)
{
	assert_int_equal(b->out_len, n);
	assert_memory_equal(b->out, want, n);
	b->out_len = 0;
}

/* ACK, then the chip frame (TFI D5) carrying `pd` = CMD + 1 and the answer. */
static void expect_reply(struct bench *b, const uint8_t *pd, size_t n)
{
	uint8_t want[sizeof(ACK) + FRAME_MAX];
	memcpy(want, ACK, sizeof(ACK));
	const size_t k = build_frame(want + sizeof(ACK), 0xD5, pd, n, 0);
	expect_bytes(b, want, sizeof(ACK) + k);
}

#define EXPECT(b, ...)                                                                             \
	do {                                                                                       \
		const uint8_t pd_[] = {__VA_ARGS__};                                               \
		expect_reply((b), pd_, sizeof(pd_));                                               \
	} while (0)

static void expect_nothing(struct bench *b)
{
	assert_int_equal(b->out_len, 0);
}

static void expect_syntax_error(struct bench *b)
{
	uint8_t want[sizeof(ACK) + sizeof(ERROR_FRAME)];
	memcpy(want, ACK, sizeof(ACK));
	memcpy(want + sizeof(ACK), ERROR_FRAME, sizeof(ERROR_FRAME));
	expect_bytes(b, want, sizeof(want));
}

/* InListPassiveTarget 106 kbps type A with automatic RATS, as libnfc selects. */
static void select_desfire(struct bench *b)
{
	SEND(b, 0x4A, 0x01, 0x00);
	EXPECT(b, 0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55,
	       0x66, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80);
}

/* ---- framing ----------------------------------------------------------------------- */

static void test_firmware_version_literal(void **state)
{
	struct bench *b = *state;
	static const uint8_t cmd[] = {0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00};
	static const uint8_t want[] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00, /* ACK */
	                               0x00, 0x00, 0xFF, 0x06, 0xFA, 0xD5, 0x03,
	                               0x32, 0x01, 0x06, 0x07, 0xE8, 0x00};
	feed(b, cmd, sizeof(cmd));
	expect_bytes(b, want, sizeof(want));
}

static void test_wakeup_preamble_bytewise(void **state)
{
	struct bench *b = *state;
	/* libnfc's wake-up, then SAMConfiguration normal mode, one byte per read. */
	static const uint8_t in[] = {0x55, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF,
	                             0x03, 0xFD, 0xD4, 0x14, 0x01, 0x17, 0x00};
	feed_bytewise(b, in, sizeof(in));
	EXPECT(b, 0x15);
}

static void test_diagnose_echo(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x00, 0x00, 'l', 'i', 'b', 'n', 'f', 'c');
	EXPECT(b, 0x01, 0x00, 'l', 'i', 'b', 'n', 'f', 'c');
}

static void test_libnfc_open_sequence_any_split(void **state)
{
	struct bench *b = *state;
	uint8_t in[256];
	size_t n = 0;
	static const uint8_t wake[] = {0x55, 0x55, 0x00, 0x00, 0x00};
	static const uint8_t sam[] = {0x14, 0x01};
	static const uint8_t diag[] = {0x00, 0x00, 'l', 'i', 'b', 'n', 'f', 'c'};
	static const uint8_t fw[] = {0x02};
	static const uint8_t par[] = {0x12, 0x14};

	memcpy(in, wake, sizeof(wake));
	n = sizeof(wake);
	n += build_frame(in + n, 0xD4, sam, sizeof(sam), 0);
	n += build_frame(in + n, 0xD4, diag, sizeof(diag), 0);
	n += build_frame(in + n, 0xD4, fw, sizeof(fw), 0);
	n += build_frame(in + n, 0xD4, par, sizeof(par), 0);

	feed(b, in, n);
	uint8_t whole[512];
	const size_t whole_len = b->out_len;
	assert_true(whole_len > 0 && whole_len <= sizeof(whole));
	memcpy(whole, b->out, whole_len);
	b->out_len = 0;

	for (size_t cut = 1; cut < n; cut++) {
		feed(b, in, cut);
		feed(b, in + cut, n - cut);
		expect_bytes(b, whole, whole_len);
	}
	/* The answers are, in order: SAMConfiguration, Diagnose, firmware, parameters. */
	uint8_t want[512];
	size_t k = 0;
	static const uint8_t r_sam[] = {0x15};
	static const uint8_t r_diag[] = {0x01, 0x00, 'l', 'i', 'b', 'n', 'f', 'c'};
	static const uint8_t r_fw[] = {0x03, 0x32, 0x01, 0x06, 0x07};
	static const uint8_t r_par[] = {0x13};
	const uint8_t *r[] = {r_sam, r_diag, r_fw, r_par};
	const size_t rn[] = {sizeof(r_sam), sizeof(r_diag), sizeof(r_fw), sizeof(r_par)};
	for (int i = 0; i < 4; i++) {
		memcpy(want + k, ACK, sizeof(ACK));
		k += sizeof(ACK);
		k += build_frame(want + k, 0xD5, r[i], rn[i], 0);
	}
	assert_int_equal(whole_len, k);
	assert_memory_equal(whole, want, k);
}

static void test_extended_command_frame(void **state)
{
	struct bench *b = *state;
	uint8_t frame[FRAME_MAX];
	static const uint8_t fw[] = {0x02};
	/* A host may use the extended form for a short frame too (§6.2.1.2). */
	feed(b, frame, build_frame(frame, 0xD4, fw, sizeof(fw), 1));
	EXPECT(b, 0x03, 0x32, 0x01, 0x06, 0x07);
}

static void test_bad_checksums_ignored_then_resync(void **state)
{
	struct bench *b = *state;
	struct hil_pn532_stats st;
	uint8_t frame[FRAME_MAX];
	static const uint8_t fw[] = {0x02};
	const size_t n = build_frame(frame, 0xD4, fw, sizeof(fw), 0);

	/* Wrong DCS: the chip does not ACK (a NACK goes host to chip only, §6.2.1.4). */
	frame[n - 2] ^= 0x01;
	feed(b, frame, n);
	expect_nothing(b);
	frame[n - 2] ^= 0x01;

	/* Wrong LCS right before a good frame: the good frame is still found. */
	static const uint8_t bad_lcs[] = {0x00, 0x00, 0xFF, 0x05, 0x00};
	feed(b, bad_lcs, sizeof(bad_lcs));
	feed(b, frame, n);
	EXPECT(b, 0x03, 0x32, 0x01, 0x06, 0x07);

	/* A start code inside a header that fails its checksum begins the next frame:
	 * "00 FF 03" + "00 FF 02 FE D4 02 2A 00". */
	uint8_t nested[FRAME_MAX] = {0x00, 0xFF, 0x03};
	memcpy(nested + 3, frame + 1, n - 1);
	feed(b, nested, n + 2);
	EXPECT(b, 0x03, 0x32, 0x01, 0x06, 0x07);

	hil_pn532_get_stats(b->chip, &st);
	assert_int_equal(st.frames_bad, 3);
	assert_int_equal(st.frames_in, 2);
}

static void test_wrong_tfi_ignored(void **state)
{
	struct bench *b = *state;
	uint8_t frame[FRAME_MAX];
	static const uint8_t fw[] = {0x02};
	feed(b, frame, build_frame(frame, 0xD5, fw, sizeof(fw), 0));
	expect_nothing(b);
	struct hil_pn532_stats st;
	hil_pn532_get_stats(b->chip, &st);
	assert_int_equal(st.frames_bad, 1);
	assert_int_equal(st.commands, 0);
}

static void test_host_nack_resends_last_reply(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x02);
	EXPECT(b, 0x03, 0x32, 0x01, 0x06, 0x07);
	feed(b, NACK, sizeof(NACK));
	uint8_t want[FRAME_MAX];
	static const uint8_t r_fw[] = {0x03, 0x32, 0x01, 0x06, 0x07};
	/* The response again, without a second ACK. */
	expect_bytes(b, want, build_frame(want, 0xD5, r_fw, sizeof(r_fw), 0));
	feed(b, NACK, sizeof(NACK));
	expect_bytes(b, want, build_frame(want, 0xD5, r_fw, sizeof(r_fw), 0));
}

static void test_host_ack_aborts(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x02);
	b->out_len = 0;
	feed(b, ACK, sizeof(ACK));
	expect_nothing(b);
	feed(b, NACK, sizeof(NACK));
	expect_nothing(b); /* nothing left to resend */

	/* An abort also drops the unfetched rest of a chained answer. */
	select_desfire(b);
	b->fake.answer_len = 300;
	SEND(b, 0x40, 0x01, 0x90, 0x60, 0x00, 0x00, 0x00);
	b->out_len = 0;
	feed(b, ACK, sizeof(ACK));
	b->fake.answer_len = 0;
	SEND(b, 0x40, 0x01);
	EXPECT(b, 0x41, 0x00, 0x90, 0x00); /* a fresh, empty exchange */
	assert_int_equal(b->fake.transceives, 2);
	assert_int_equal(b->fake.last_in_len, 0);
}

static void test_unknown_command_error_frame(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x1A);
	expect_syntax_error(b);
	SEND(b, 0x8C, 0x00); /* TgInitAsTarget: target mode is not emulated */
	expect_syntax_error(b);
	SEND(b, 0x06, 0x63); /* ReadRegister with half an address */
	expect_syntax_error(b);
	SEND(b, 0x32, 0x01); /* RFConfiguration field item without its value */
	expect_syntax_error(b);
	SEND(b, 0x4A, 0x03, 0x00); /* MaxTg is 1 or 2 */
	expect_syntax_error(b);
	/* A NACK after an error frame resends the error frame. */
	feed(b, NACK, sizeof(NACK));
	expect_bytes(b, ERROR_FRAME, sizeof(ERROR_FRAME));
}

static void test_garbage_never_crashes(void **state)
{
	struct bench *b = *state;
	static uint8_t junk[1 << 17];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245u + 12345u;
		/* bias towards the framing bytes so headers get exercised */
		const uint8_t v = (uint8_t)(x >> 16);
		junk[i] = (v & 0x0C) == 0   ? 0x00
		          : (v & 0x0C) == 4 ? 0xFF
		          : (v & 0x0C) == 8 ? 0xD4
		                            : v;
	}
	for (size_t off = 0; off < sizeof(junk);) {
		x = x * 1103515245u + 12345u;
		size_t step = 1 + (x >> 16) % 700;
		if (step > sizeof(junk) - off)
			step = sizeof(junk) - off;
		feed(b, junk + off, step);
		off += step;
		b->out_len = 0;
	}
	/* Zeros complete or break whatever frame the junk left open; then all is well. */
	static const uint8_t zeros[300];
	feed(b, zeros, sizeof(zeros));
	b->out_len = 0;
	SEND(b, 0x02);
	EXPECT(b, 0x03, 0x32, 0x01, 0x06, 0x07);
}

/* ---- chip commands ----------------------------------------------------------------- */

static void test_sam_configuration_and_parameters(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x14, 0x01);
	EXPECT(b, 0x15);
	SEND(b, 0x14, 0x01, 0x14, 0x01);
	EXPECT(b, 0x15);
	SEND(b, 0x14, 0x00); /* no mode 0 */
	expect_syntax_error(b);
	SEND(b, 0x12, 0x14);
	EXPECT(b, 0x13);
}

static void test_registers(void **state)
{
	struct bench *b = *state;
	/* CRC on in TxMode/RxMode, as libnfc assumes at open. */
	SEND(b, 0x06, 0x63, 0x02, 0x63, 0x03);
	EXPECT(b, 0x07, 0x80, 0x80);
	SEND(b, 0x08, 0x63, 0x3D, 0x07, 0x63, 0x02, 0x83);
	EXPECT(b, 0x09);
	SEND(b, 0x06, 0x63, 0x3D, 0x63, 0x02, 0xFF, 0xB0);
	EXPECT(b, 0x07, 0x07, 0x83, 0x00);
	SEND(b, 0x08, 0x63, 0x3D);
	expect_syntax_error(b);
}

static void test_general_status(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x04);
	EXPECT(b, 0x05, 0x00, 0x00, 0x00, 0x00);
	select_desfire(b);
	SEND(b, 0x04);
	EXPECT(b, 0x05, 0x00, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00);
}

static void test_list_with_auto_rats(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x12, 0x14);
	EXPECT(b, 0x13);
	select_desfire(b);
	assert_int_equal(b->fake.activates, 1);
	assert_int_equal(b->fake.deactivates, 0);
	/* Listing again is a new session: the old one ends first. */
	select_desfire(b);
	assert_int_equal(b->fake.activates, 2);
	assert_int_equal(b->fake.deactivates, 1);
}

static void test_list_without_auto_rats(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x12, 0x04);
	EXPECT(b, 0x13);
	SEND(b, 0x4A, 0x01, 0x00);
	EXPECT(b, 0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55,
	       0x66);
	assert_int_equal(b->fake.activates, 0);
	/* No RATS, so no ISO 14443-4 session: payloads do not reach the target. */
	SEND(b, 0x40, 0x01, 0x00, 0xA4, 0x04, 0x00);
	EXPECT(b, 0x41, 0x01);
	assert_int_equal(b->fake.transceives, 0);
}

static void test_list_without_target(void **state)
{
	struct bench *b = *state;
	hil_pn532_set_target(b->chip, NULL);
	SEND(b, 0x4A, 0x01, 0x00);
	EXPECT(b, 0x4B, 0x00);
}

static void test_list_other_modulations(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x4A, 0x01, 0x01, 0x00, 0xFF, 0xFF, 0x01, 0x00); /* FeliCa 212 */
	EXPECT(b, 0x4B, 0x00);
	SEND(b, 0x4A, 0x01, 0x03, 0x00); /* type B */
	EXPECT(b, 0x4B, 0x00);
	SEND(b, 0x4A, 0x01, 0x04); /* Jewel */
	EXPECT(b, 0x4B, 0x00);
	assert_int_equal(b->fake.activates, 0);
}

static void test_list_by_uid(void **state)
{
	struct bench *b = *state;
	/* libnfc/libfreefare send a 7-byte UID with its cascade tag. */
	SEND(b, 0x4A, 0x01, 0x00, 0x88, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66);
	EXPECT(b, 0x4B, 0x01, 0x01, 0x03, 0x44, 0x20, 0x07, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55,
	       0x66, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80);
	SEND(b, 0x4A, 0x01, 0x00, 0x88, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x67);
	EXPECT(b, 0x4B, 0x00);
}

static void test_data_exchange_echo(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	SEND(b, 0x40, 0x01, 0x90, 0x60, 0x00, 0x00, 0x00);
	EXPECT(b, 0x41, 0x00, 0x90, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00);
	assert_int_equal(b->fake.transceives, 1);
	assert_int_equal(b->fake.last_in_len, 5);
	assert_string_equal(b->last_log, "InDataExchange 5 bytes -> 7 bytes, status 00");
	/* Only target 1 exists. */
	SEND(b, 0x40, 0x02, 0x90, 0x60, 0x00, 0x00, 0x00);
	EXPECT(b, 0x41, 0x27);
}

static void test_data_exchange_chained_answer(void **state)
{
	struct bench *b = *state;
	uint8_t pd[FRAME_MAX], want[sizeof(ACK) + FRAME_MAX];
	select_desfire(b);
	b->fake.answer_len = 300;
	SEND(b, 0x40, 0x01, 0x90, 0x6F, 0x00, 0x00, 0x00);

	/* 262 data bytes and MI: D5 41 40 + 262 is LEN 265, an extended frame. */
	pd[0] = 0x41;
	pd[1] = 0x40;
	for (int i = 0; i < 262; i++)
		pd[2 + i] = (uint8_t)i;
	memcpy(want, ACK, sizeof(ACK));
	size_t k = build_frame(want + sizeof(ACK), 0xD5, pd, 264, 0);
	static const uint8_t ext_header[] = {0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x09, 0xF6, 0xD5};
	assert_memory_equal(want + sizeof(ACK), ext_header, sizeof(ext_header));
	expect_bytes(b, want, sizeof(ACK) + k);

	/* libnfc fetches the rest with an empty InDataExchange. */
	SEND(b, 0x40, 0x01);
	pd[1] = 0x00;
	for (int i = 0; i < 38; i++)
		pd[2 + i] = (uint8_t)(262 + i);
	expect_reply(b, pd, 40);
	assert_int_equal(b->fake.transceives, 1);
}

static void test_data_exchange_extended_command(void **state)
{
	struct bench *b = *state;
	uint8_t pd[FRAME_MAX], frame[FRAME_MAX];
	select_desfire(b);
	/* D4 40 01 + 262 bytes: LEN 265, the most the firmware takes. */
	pd[0] = 0x40;
	pd[1] = 0x01;
	for (int i = 0; i < 262; i++)
		pd[2 + i] = (uint8_t)(i ^ 0x5A);
	feed_bytewise(b, frame, build_frame(frame, 0xD4, pd, 264, 0));
	assert_int_equal(b->fake.last_in_len, 262);
	assert_memory_equal(b->fake.last_in, pd + 2, 262);
	/* The echo plus 90 00 is 264 bytes: 262 now, 2 on request. */
	uint8_t rp[FRAME_MAX];
	rp[0] = 0x41;
	rp[1] = 0x40;
	memcpy(rp + 2, pd + 2, 262);
	expect_reply(b, rp, 264);
	SEND(b, 0x40, 0x01);
	EXPECT(b, 0x41, 0x00, 0x90, 0x00);

	/* Too long for the firmware's buffer: refused at the frame level. */
	pd[2 + 262] = 0x00;
	feed(b, frame, build_frame(frame, 0xD4, pd, 265, 0));
	expect_nothing(b);
}

static void test_data_exchange_host_chaining(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	SEND(b, 0x40, 0x41, 0x01, 0x02, 0x03); /* Tg with MI: more follows */
	EXPECT(b, 0x41, 0x00);
	assert_int_equal(b->fake.transceives, 0);
	SEND(b, 0x40, 0x01, 0x04, 0x05);
	EXPECT(b, 0x41, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x90, 0x00);
	assert_int_equal(b->fake.transceives, 1);
}

static void test_data_exchange_host_chaining_overflow(void **state)
{
	struct bench *b = *state;
	uint8_t pd[202] = {0x40, 0x41};
	select_desfire(b);
	/* 3 x 200 bytes is more than an exchange carries (HIL_APDU_MAX). */
	for (int i = 0; i < 2; i++) {
		send_cmd(b, pd, sizeof(pd));
		EXPECT(b, 0x41, 0x00);
	}
	pd[1] = 0x01;
	send_cmd(b, pd, sizeof(pd));
	EXPECT(b, 0x41, 0x0E); /* internal buffer overflow */
	assert_int_equal(b->fake.transceives, 0);
	/* The next exchange starts afresh. */
	SEND(b, 0x40, 0x01, 0x01);
	EXPECT(b, 0x41, 0x00, 0x01, 0x90, 0x00);
}

static void test_silent_and_gone(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	b->fake.result = HIL_TARGET_SILENT;
	SEND(b, 0x40, 0x01, 0x90, 0x60, 0x00, 0x00, 0x00);
	EXPECT(b, 0x41, 0x01);
	assert_true(hil_pn532_has_target(b->chip));

	b->fake.result = HIL_TARGET_GONE;
	SEND(b, 0x40, 0x01, 0x90, 0x60, 0x00, 0x00, 0x00);
	EXPECT(b, 0x41, 0x01);
	assert_false(hil_pn532_has_target(b->chip));
	assert_int_equal(b->fake.deactivates, 1);
	SEND(b, 0x40, 0x01, 0x90, 0x60, 0x00, 0x00, 0x00);
	EXPECT(b, 0x41, 0x01);
	assert_int_equal(b->fake.transceives, 2);
	SEND(b, 0x4A, 0x01, 0x00);
	EXPECT(b, 0x4B, 0x00);
	assert_int_equal(b->fake.destroys, 0); /* still owned until replaced or freed */
}

static void test_deselect_select_release(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	SEND(b, 0x44, 0x00);
	EXPECT(b, 0x45, 0x00);
	assert_int_equal(b->fake.deactivates, 1);
	SEND(b, 0x40, 0x01, 0x00);
	EXPECT(b, 0x41, 0x27); /* deselected: not in this context */
	SEND(b, 0x54, 0x01);
	EXPECT(b, 0x55, 0x00);
	assert_int_equal(b->fake.activates, 2);
	SEND(b, 0x40, 0x01, 0x00);
	EXPECT(b, 0x41, 0x00, 0x00, 0x90, 0x00);
	SEND(b, 0x52, 0x00);
	EXPECT(b, 0x53, 0x00);
	assert_int_equal(b->fake.deactivates, 2);
	SEND(b, 0x40, 0x01, 0x00);
	EXPECT(b, 0x41, 0x27);
	SEND(b, 0x54, 0x01); /* released: nothing to select */
	EXPECT(b, 0x55, 0x27);
	SEND(b, 0x52, 0x00); /* releasing nothing is fine */
	EXPECT(b, 0x53, 0x00);
	assert_int_equal(b->fake.deactivates, 2);
}

static void test_rf_field_off_deactivates(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	SEND(b, 0x32, 0x05, 0xFF, 0xFF, 0xFF); /* max retries */
	EXPECT(b, 0x33);
	assert_int_equal(b->fake.deactivates, 0);
	SEND(b, 0x32, 0x01, 0x00);
	EXPECT(b, 0x33);
	assert_int_equal(b->fake.deactivates, 1);
	SEND(b, 0x40, 0x01, 0x00);
	EXPECT(b, 0x41, 0x27);
	SEND(b, 0x32, 0x01, 0x01);
	EXPECT(b, 0x33);
	select_desfire(b);
	assert_int_equal(b->fake.activates, 2);
}

static void test_power_down(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	SEND(b, 0x16, 0xF0);
	EXPECT(b, 0x17, 0x00);
	assert_int_equal(b->fake.deactivates, 1);
	/* libnfc wakes the chip with 55 55 00 00 00 and a SAMConfiguration. */
	static const uint8_t wake[] = {0x55, 0x55, 0x00, 0x00, 0x00};
	feed(b, wake, sizeof(wake));
	SEND(b, 0x14, 0x01);
	EXPECT(b, 0x15);
}

static void test_remove_target(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	hil_pn532_set_target(b->chip, NULL);
	assert_int_equal(b->fake.deactivates, 1);
	assert_int_equal(b->fake.destroys, 1);
	assert_false(hil_pn532_has_target(b->chip));
	SEND(b, 0x40, 0x01, 0x00);
	EXPECT(b, 0x41, 0x01);
	SEND(b, 0x4A, 0x01, 0x00);
	EXPECT(b, 0x4B, 0x00);
	SEND(b, 0x42, 0xB2);
	EXPECT(b, 0x43, 0x01);
	assert_int_equal(b->fake.transceives, 0);
}

static void test_replace_and_free_destroy(void **state)
{
	struct bench *b = *state;
	struct fake other;
	fake_classic(&other);
	select_desfire(b);
	const struct hil_target t = {&fake_ops, &other};
	hil_pn532_set_target(b->chip, &t);
	assert_int_equal(b->fake.deactivates, 1);
	assert_int_equal(b->fake.destroys, 1);
	assert_int_equal(other.destroys, 0);
	hil_pn532_free(b->chip);
	b->chip = NULL;
	assert_int_equal(other.destroys, 1);
	assert_int_equal(other.deactivates, 0);
	/* teardown must not free twice */
	const struct hil_pn532_io io = {.write = bench_write, .log = bench_log, .ctx = b};
	b->chip = hil_pn532_new(&io);
	assert_non_null(b->chip);
}

static void test_classic_target(void **state)
{
	struct bench *b = *state;
	fake_classic(&b->fake);
	SEND(b, 0x4A, 0x01, 0x00);
	EXPECT(b, 0x4B, 0x01, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF);
	assert_int_equal(b->fake.activates, 0);
	/* MIFARE AUTH with key A: fails as with a wrong key. */
	SEND(b, 0x40, 0x01, 0x60, 0x04, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xDE, 0xAD, 0xBE, 0xEF);
	EXPECT(b, 0x41, 0x14);
	SEND(b, 0x40, 0x01, 0x30, 0x04); /* READ */
	EXPECT(b, 0x41, 0x01);
	assert_int_equal(b->fake.transceives, 0);
	SEND(b, 0x44, 0x00);
	EXPECT(b, 0x45, 0x00);
	assert_int_equal(b->fake.deactivates, 0); /* never activated, nothing owed */
}

static void test_auto_poll(void **state)
{
	struct bench *b = *state;
	/* nfc-poll: 20 polls, period 2, ISO 14443-4A before MIFARE, then B, FeliCa, Jewel. */
	SEND(b, 0x60, 0x14, 0x02, 0x20, 0x10, 0x03, 0x11, 0x12, 0x04, 0x23);
	EXPECT(b, 0x61, 0x01, 0x20, 0x12, 0x01, 0x03, 0x44, 0x20, 0x07, 0x04, 0x11, 0x22, 0x33,
	       0x44, 0x55, 0x66, 0x06, 0x75, 0x77, 0x81, 0x02, 0x80);
	assert_int_equal(b->fake.activates, 1);
	SEND(b, 0x40, 0x01, 0x00);
	EXPECT(b, 0x41, 0x00, 0x00, 0x90, 0x00);

	/* A card without ISO 14443-4 is reported as MIFARE, without ATS. */
	struct fake classic;
	fake_classic(&classic);
	const struct hil_target t = {&fake_ops, &classic};
	hil_pn532_set_target(b->chip, &t);
	SEND(b, 0x60, 0x14, 0x02, 0x20, 0x10, 0x03);
	EXPECT(b, 0x61, 0x01, 0x10, 0x09, 0x01, 0x00, 0x04, 0x08, 0x04, 0xDE, 0xAD, 0xBE, 0xEF);

	hil_pn532_set_target(b->chip, NULL);
	SEND(b, 0x60, 0x14, 0x02, 0x20, 0x10);
	EXPECT(b, 0x61, 0x00);
	SEND(b, 0x60, 0x14, 0x02);
	expect_syntax_error(b);
}

static void test_presence_check(void **state)
{
	struct bench *b = *state;
	select_desfire(b);
	/* libnfc's ISO 14443-4A ping on a PN532: raw R(NAK) `B2`; the card answers R(ACK). */
	SEND(b, 0x42, 0xB2);
	EXPECT(b, 0x43, 0x00, 0xA3);
	SEND(b, 0x42, 0xBA, 0x01); /* with CID 1 */
	EXPECT(b, 0x43, 0x00, 0xAB, 0x01);
	SEND(b, 0x00, 0x06); /* Diagnose card presence */
	EXPECT(b, 0x01, 0x00);
	/* Any other raw frame gets no answer from a type A card. */
	SEND(b, 0x42, 0x26);
	EXPECT(b, 0x43, 0x01);
	SEND(b, 0x42);
	EXPECT(b, 0x43, 0x01);
	/* After switching the CIU to type B framing, as nfc-list probes, nothing answers. */
	SEND(b, 0x08, 0x63, 0x02, 0x83);
	EXPECT(b, 0x09);
	SEND(b, 0x42, 0xB2);
	EXPECT(b, 0x43, 0x01);
}

static void test_dep_commands(void **state)
{
	struct bench *b = *state;
	SEND(b, 0x56, 0x01, 0x02, 0x00); /* InJumpForDEP, active, 424 kbps */
	EXPECT(b, 0x57, 0x01);
	SEND(b, 0x50, 0x01, 0x00); /* InATR without a listed target */
	EXPECT(b, 0x51, 0x27);
}

static void test_stats_and_log(void **state)
{
	struct bench *b = *state;
	struct hil_pn532_stats st;
	select_desfire(b);
	SEND(b, 0x40, 0x01, 0x00);
	b->out_len = 0;
	SEND(b, 0x1A);
	b->out_len = 0;
	hil_pn532_get_stats(b->chip, &st);
	assert_int_equal(st.frames_in, 3);
	assert_int_equal(st.commands, 3);
	assert_int_equal(st.exchanges, 1);
	assert_int_equal(st.frames_bad, 0);
	assert_int_equal(b->log_lines, 3);
	assert_string_equal(b->last_log, "command 0x1A 0 bytes -> syntax error frame");
}

static void test_null_io(void **state)
{
	(void)state;
	struct hil_pn532 *chip = hil_pn532_new(NULL);
	assert_non_null(chip);
	static const uint8_t cmd[] = {0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00};
	hil_pn532_feed(chip, cmd, sizeof(cmd));
	struct hil_pn532_stats st;
	hil_pn532_get_stats(chip, &st);
	assert_int_equal(st.commands, 1);
	hil_pn532_free(chip);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_firmware_version_literal),
	        T(test_wakeup_preamble_bytewise),
	        T(test_diagnose_echo),
	        T(test_libnfc_open_sequence_any_split),
	        T(test_extended_command_frame),
	        T(test_bad_checksums_ignored_then_resync),
	        T(test_wrong_tfi_ignored),
	        T(test_host_nack_resends_last_reply),
	        T(test_host_ack_aborts),
	        T(test_unknown_command_error_frame),
	        T(test_garbage_never_crashes),
	        T(test_sam_configuration_and_parameters),
	        T(test_registers),
	        T(test_general_status),
	        T(test_list_with_auto_rats),
	        T(test_list_without_auto_rats),
	        T(test_list_without_target),
	        T(test_list_other_modulations),
	        T(test_list_by_uid),
	        T(test_data_exchange_echo),
	        T(test_data_exchange_chained_answer),
	        T(test_data_exchange_extended_command),
	        T(test_data_exchange_host_chaining),
	        T(test_data_exchange_host_chaining_overflow),
	        T(test_silent_and_gone),
	        T(test_deselect_select_release),
	        T(test_rf_field_off_deactivates),
	        T(test_power_down),
	        T(test_remove_target),
	        T(test_replace_and_free_destroy),
	        T(test_classic_target),
	        T(test_auto_poll),
	        T(test_presence_check),
	        T(test_dep_commands),
	        T(test_stats_and_log),
	        cmocka_unit_test(test_null_io),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
