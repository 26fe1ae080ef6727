/*
 * fuzz_hil_pn532.c — the emulated PN532 (hil/pn532.h) on hostile host bytes.
 *
 * Input: one configuration byte (which fake target is in the field and how it answers),
 * one byte that picks where the rest is cut, then the host's byte stream, fed in three
 * pieces. Beyond "no crash, no hang, no leak", it checks what libnfc relies on: every
 * write is an ACK, the error frame, or a chip frame with good checksums and at most 265
 * bytes after the length; no exchange status has bit 7 set (libnfc calls abort()); and
 * the target is activated and deactivated in pairs and destroyed exactly once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hil/pn532.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_hil_pn532: %s\n", what);
	abort();
}

/* ---- the fake target --------------------------------------------------------------- */

enum answer_mode { ANSWER_ECHO, ANSWER_SIZED, ANSWER_SILENT, ANSWER_GONE_LATER };

struct fake {
	struct hil_target_info info;
	enum answer_mode mode;
	int active, destroyed, exchanges;
};

static void fake_info(void *ctx, struct hil_target_info *info)
{
	*info = ((struct fake *)ctx)->info;
}

static void fake_activate(void *ctx)
{
	struct fake *f = ctx;
	if (f->active || f->destroyed)
		fail("activate while active or destroyed");
	f->active = 1;
}

static void fake_deactivate(void *ctx)
{
	struct fake *f = ctx;
	if (!f->active || f->destroyed)
		fail("deactivate while inactive or destroyed");
	f->active = 0;
}

static void fake_destroy(void *ctx)
{
	struct fake *f = ctx;
	if (f->destroyed || f->active)
		fail("destroyed twice or while active");
	f->destroyed = 1;
}

static int fake_transceive(void *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
                           size_t out_cap)
{
	struct fake *f = ctx;
	if (!f->active || f->destroyed)
		fail("transceive on an inactive target");
	if (in_len > HIL_APDU_MAX || out_cap < HIL_APDU_MAX)
		fail("transceive sizes out of contract");
	f->exchanges++;
	switch (f->mode) {
	case ANSWER_SILENT:
		return HIL_TARGET_SILENT;
	case ANSWER_GONE_LATER:
		if (f->exchanges > 2)
			return HIL_TARGET_GONE;
		/* fall through */
	case ANSWER_ECHO: {
		const size_t n = in_len + 2 <= out_cap ? in_len : out_cap - 2;
		memcpy(out, in, n);
		out[n] = 0x91;
		out[n + 1] = 0x00;
		return (int)n + 2;
	}
	case ANSWER_SIZED: {
		/* The first byte sets the size: up to the whole buffer, so chaining runs. */
		const size_t n = in_len ? ((size_t)in[0] * 2 + 1) % (out_cap + 1) : out_cap;
		memset(out, 0xA5, n);
		return (int)n;
	}
	}
	return HIL_TARGET_SILENT;
}

static const struct hil_target_ops fake_ops = {fake_info, fake_activate, fake_transceive,
                                               fake_deactivate, fake_destroy};

static void fake_init(struct fake *f, uint8_t config)
{
	static const uint8_t uid[] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99};
	static const uint8_t ats[] = {0x06, 0x75, 0x77, 0x81, 0x02, 0x80};
	memset(f, 0, sizeof(*f));
	f->mode = (enum answer_mode)((config >> 2) & 0x03);
	f->info.atqa[0] = 0x03;
	f->info.atqa[1] = 0x44;
	f->info.sak = (config & 0x10) ? 0x08 : 0x20;
	static const uint8_t uid_lens[] = {7, 4, 10, 0};
	f->info.uid_len = uid_lens[(config >> 5) & 0x03];
	memcpy(f->info.uid, uid, sizeof(uid));
	if (!(config & 0x10)) {
		memcpy(f->info.ats, ats, sizeof(ats));
		f->info.ats_len = sizeof(ats);
	}
}

/* ---- what the host receives -------------------------------------------------------- */

static void check_write(void *ctx, const uint8_t *d, size_t n)
{
	static const uint8_t ack[] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
	static const uint8_t err[] = {0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00};
	size_t *written = ctx;
	*written += n;

	if ((n == sizeof(ack) && !memcmp(d, ack, n)) || (n == sizeof(err) && !memcmp(d, err, n)))
		return;
	if (n < 9 || d[0] != 0x00 || d[1] != 0x00 || d[2] != 0xFF)
		fail("write is not a frame");
	size_t len, at;
	if (d[3] == 0xFF && d[4] == 0xFF) {
		len = ((size_t)d[5] << 8) | d[6];
		if (((d[5] + d[6] + d[7]) & 0xFF) || len <= 255)
			fail("bad extended header");
		at = 8;
	} else {
		len = d[3];
		if (((d[3] + d[4]) & 0xFF) || len < 2)
			fail("bad normal header");
		at = 5;
	}
	if (len > 265 || at + len + 2 != n || d[n - 1] != 0x00)
		fail("bad frame length or postamble");
	uint8_t sum = 0;
	for (size_t i = 0; i <= len; i++)
		sum = (uint8_t)(sum + d[at + i]);
	if (sum != 0 || d[at] != 0xD5)
		fail("bad DCS or TFI");
	const uint8_t code = d[at + 1];
	if ((code == 0x41 || code == 0x43) && (len < 3 || (d[at + 2] & 0x80)))
		fail("exchange status missing or with bit 7 set");
}

static void check_log(void *ctx, const char *line)
{
	(void)ctx;
	const size_t n = strlen(line);
	if (n == 0 || n > 200)
		fail("log line empty or runaway");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const uint8_t config = data[0], pick = data[1];
	data += 2;
	size -= 2;
	const size_t cut1 = size * (1u + (pick & 0x0fu)) / 17u;
	const size_t cut2 = cut1 + (size - cut1) * (1u + (pick >> 4)) / 17u;
	const size_t cuts[] = {0, cut1, cut2, size};

	size_t written = 0;
	const struct hil_pn532_io io = {.write = check_write, .log = check_log, .ctx = &written};
	struct hil_pn532 *chip = hil_pn532_new(&io);
	if (!chip)
		return 0;
	struct fake first, second;
	fake_init(&first, config);
	fake_init(&second, (uint8_t)(config ^ 0x10));
	if (!(config & 0x01)) {
		const struct hil_target t = {&fake_ops, &first};
		hil_pn532_set_target(chip, &t);
	}
	for (size_t i = 0; i + 1 < sizeof(cuts) / sizeof(cuts[0]); i++) {
		hil_pn532_feed(chip, data + cuts[i], cuts[i + 1] - cuts[i]);
		/* Cards come and go between reads. */
		if (i == 0 && (config & 0x80)) {
			const struct hil_target t = {&fake_ops, &second};
			hil_pn532_set_target(chip, &t);
		}
		if (i == 1 && (config & 0x02))
			hil_pn532_set_target(chip, NULL);
	}
	struct hil_pn532_stats st;
	hil_pn532_get_stats(chip, &st);
	hil_pn532_free(chip);

	if (first.active || second.active)
		fail("target left active after free");
	if (!(config & 0x01) && !first.destroyed)
		fail("first target not destroyed");
	if ((config & 0x80) && !second.destroyed)
		fail("second target not destroyed");
	if (st.commands > st.frames_in)
		fail("more answers than commands");
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

/* A host frame (TFI D4) in normal or extended form, UM0701-02 §6.2.1. */
static size_t seed_frame(uint8_t *out, const uint8_t *pd, size_t n, int extended)
{
	const size_t len = n + 1;
	size_t k = 0;
	uint8_t sum = 0xD4;
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
		out[k++] = (uint8_t)len;
		out[k++] = (uint8_t)(256 - (((len >> 8) + (len & 0xFF)) & 0xFF));
	}
	out[k++] = 0xD4;
	for (size_t i = 0; i < n; i++) {
		out[k++] = pd[i];
		sum = (uint8_t)(sum + pd[i]);
	}
	out[k++] = (uint8_t)(256 - sum);
	out[k++] = 0x00;
	return k;
}

struct seed {
	uint8_t buf[4096];
	size_t len;
};

static void seed_start(struct seed *s, uint8_t config, uint8_t pick)
{
	s->buf[0] = config;
	s->buf[1] = pick;
	s->len = 2;
}

static void seed_raw(struct seed *s, const uint8_t *p, size_t n)
{
	if (s->len + n <= sizeof(s->buf)) {
		memcpy(s->buf + s->len, p, n);
		s->len += n;
	}
}

static void seed_cmd(struct seed *s, const uint8_t *pd, size_t n, int extended)
{
	if (s->len + n + 12 <= sizeof(s->buf))
		s->len += seed_frame(s->buf + s->len, pd, n, extended);
}

#define CMD(s, ...)                                                                                \
	do {                                                                                       \
		const uint8_t pd_[] = {__VA_ARGS__};                                               \
		seed_cmd((s), pd_, sizeof(pd_), 0);                                                \
	} while (0)

/* What libnfc sends to open the reader and initialise an initiator. */
static void seed_open(struct seed *s)
{
	static const uint8_t wake[] = {0x55, 0x55, 0x00, 0x00, 0x00};
	seed_raw(s, wake, sizeof(wake));
	CMD(s, 0x14, 0x01);
	CMD(s, 0x00, 0x00, 'l', 'i', 'b', 'n', 'f', 'c');
	CMD(s, 0x02);
	CMD(s, 0x12, 0x14);
	CMD(s, 0x06, 0x63, 0x02, 0x63, 0x03, 0x63, 0x0D, 0x63, 0x38, 0x63, 0x3D);
	CMD(s, 0x32, 0x01, 0x00);
	CMD(s, 0x32, 0x01, 0x01);
	CMD(s, 0x32, 0x05, 0xFF, 0xFF, 0xFF);
	CMD(s, 0x08, 0x63, 0x3C, 0x10);
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static const uint8_t ack[] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
	static const uint8_t nack[] = {0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00};
	static const uint8_t configs[] = {0x00, 0x04, 0x08, 0x0C, 0x10, 0x82, 0x20, 0x40};
	struct seed s;

	for (size_t c = 0; c < sizeof(configs); c++) {
		/* nfc-list: select, deselect, select again, probes, close. */
		seed_start(&s, configs[c], 0x37);
		seed_open(&s);
		CMD(&s, 0x4A, 0x01, 0x00);
		CMD(&s, 0x44, 0x00);
		CMD(&s, 0x4A, 0x01, 0x00);
		CMD(&s, 0x4A, 0x01, 0x01, 0x00, 0xFF, 0xFF, 0x01, 0x00);
		CMD(&s, 0x4A, 0x01, 0x03, 0x00);
		CMD(&s, 0x08, 0x63, 0x02, 0x83, 0x63, 0x03, 0x83);
		CMD(&s, 0x42, 0x06, 0x00);
		CMD(&s, 0x42);
		CMD(&s, 0x52, 0x00);
		CMD(&s, 0x32, 0x01, 0x00);
		CMD(&s, 0x16, 0xF0);
		emit(s.buf, s.len, ctx);

		/* A DESFire session: APDUs, a long answer fetched in pieces, presence. */
		seed_start(&s, configs[c], 0x9C);
		seed_open(&s);
		CMD(&s, 0x4A, 0x01, 0x00, 0x88, 0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66);
		CMD(&s, 0x40, 0x01, 0x90, 0x60, 0x00, 0x00, 0x00);
		CMD(&s, 0x40, 0x01, 0xFF, 0xAF, 0x00, 0x00, 0x00);
		CMD(&s, 0x40, 0x01);
		CMD(&s, 0x40, 0x41, 0x90, 0x3D, 0x00);
		CMD(&s, 0x40, 0x01, 0x00, 0x00, 0x10);
		CMD(&s, 0x42, 0xB2);
		CMD(&s, 0x00, 0x06);
		CMD(&s, 0x04);
		seed_raw(&s, nack, sizeof(nack));
		CMD(&s, 0x44, 0x01);
		CMD(&s, 0x54, 0x01);
		seed_raw(&s, ack, sizeof(ack));
		CMD(&s, 0x52, 0x01);
		emit(s.buf, s.len, ctx);
	}

	/* nfc-poll. */
	seed_start(&s, 0x00, 0x51);
	seed_open(&s);
	CMD(&s, 0x60, 0x14, 0x02, 0x20, 0x10, 0x03, 0x11, 0x12, 0x04, 0x23);
	CMD(&s, 0x42, 0xB2);
	CMD(&s, 0x42, 0xBA, 0x01);
	CMD(&s, 0x50, 0x01, 0x00);
	CMD(&s, 0x56, 0x01, 0x02, 0x00);
	emit(s.buf, s.len, ctx);

	/* Extended frames: the longest command the firmware takes, and a short one. */
	uint8_t pd[264] = {0x40, 0x01};
	for (size_t i = 2; i < sizeof(pd); i++)
		pd[i] = (uint8_t)(i * 13);
	seed_start(&s, 0x04, 0x88);
	CMD(&s, 0x4A, 0x01, 0x00);
	seed_cmd(&s, pd, sizeof(pd), 0);
	CMD(&s, 0x40, 0x01);
	seed_cmd(&s, pd, 1, 1);
	emit(s.buf, s.len, ctx);

	/* Host-side chaining past the 512-byte APDU buffer, and the RF settings libnfc
	 * may send. */
	seed_start(&s, 0x00, 0x11);
	CMD(&s, 0x4A, 0x01, 0x00);
	pd[1] = 0x41;
	for (int i = 0; i < 3; i++)
		seed_cmd(&s, pd, 202, 0);
	CMD(&s, 0x40, 0x01, 0x00);
	CMD(&s, 0x32, 0x02, 0x00, 0x0B, 0x0A);
	CMD(&s, 0x32, 0x04, 0x00);
	CMD(&s, 0x32, 0x0A, 0x5A, 0xF4, 0x3F, 0x11, 0x4D, 0x85, 0x61, 0x6F, 0x26, 0x62, 0x87);
	CMD(&s, 0x4E, 0x01, 0x00, 0x00);
	emit(s.buf, s.len, ctx);

	/* Broken frames among good ones: wrong LCS, DCS, TFI, and an unknown command. */
	seed_start(&s, 0x00, 0x23);
	static const uint8_t broken[] = {0x00, 0x00, 0xFF, 0x05, 0x00, 0x00, 0x00, 0xFF,
	                                 0x02, 0xFE, 0xD4, 0x02, 0x2B, 0x00, 0x00, 0x00,
	                                 0xFF, 0x02, 0xFE, 0xD5, 0x02, 0x29, 0x00};
	seed_raw(&s, broken, sizeof(broken));
	CMD(&s, 0x1A);
	CMD(&s, 0x02);
	seed_raw(&s, nack, sizeof(nack));
	emit(s.buf, s.len, ctx);
}
