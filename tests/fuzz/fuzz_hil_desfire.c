/*
 * fuzz_hil_desfire.c — the virtual DESFire card (hil/desfire.h) on hostile reader frames.
 *
 * Input: one configuration byte (bit 0: AES PICC master key instead of the factory DES one,
 * bit 1: random ID), then frames, each a length byte and that many bytes (a length past the
 * end takes what is left). Two lengths are commands to the field: FF = the card leaves and
 * re-enters it (deactivate, activate), FE = anticollision (info).
 *
 * The card is opened on a fresh image in a temporary directory (tmpfs when there is one:
 * the card fsyncs after every change) with a deterministic random source, so that the
 * seeds, recorded from live sessions with real authentications, replay exactly. Beyond "no
 * crash, no out-of-bounds access, no leak" it checks what the reader emulator relies on:
 * every answer fits the buffer and one DESFire frame, the target info is well formed, and
 * the image the card leaves behind opens again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "desfire_crypto.h"
#include "fuzz.h"
#include "hil/desfire.h"

#define FIELD_RESET 0xFF
#define FIELD_INFO  0xFE
#define FRAME_MAX   0xFD

static char image_dir[64];
static char image_path[128];

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_hil_desfire: %s\n", what);
	abort();
}

static void remove_dir(void)
{
	unlink(image_path);
	rmdir(image_dir);
}

static void make_dir(void)
{
	if (image_dir[0])
		return;
	strcpy(image_dir, "/dev/shm/fuzz_hil_desfire.XXXXXX");
	if (!mkdtemp(image_dir)) {
		strcpy(image_dir, "/tmp/fuzz_hil_desfire.XXXXXX");
		if (!mkdtemp(image_dir))
			fail("cannot create a temporary directory");
	}
	snprintf(image_path, sizeof(image_path), "%s/card.img", image_dir);
	atexit(remove_dir);
}

/* Bytes 1, 2, 3... from the opening of the card on: RndB, TI and random UIDs are known. */
static int counter_random(void *ctx, uint8_t *buf, size_t len)
{
	uint8_t *counter = ctx;
	for (size_t i = 0; i < len; i++)
		buf[i] = ++*counter;
	return 0;
}

struct session {
	struct hil_desfire_card *card;
	struct hil_target tg;
	uint8_t counter;
};

static void session_open(struct session *s, uint8_t config)
{
	const struct hil_desfire_config cfg = {
	        .uid = {0x04, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60},
	        .random_id = (config >> 1) & 1,
	        .picc_key_aes = config & 1,
	};
	make_dir();
	unlink(image_path);
	s->counter = 0;
	if (hil_desfire_card_open(&s->card, image_path, &cfg) != 0)
		fail("cannot create the card");
	hil_desfire_card_set_random(s->card, counter_random, &s->counter);
	s->tg = hil_desfire_card_target(s->card);
	s->tg.ops->activate(s->tg.ctx);
}

static void check_info(const struct session *s)
{
	struct hil_target_info info;
	s->tg.ops->info(s->tg.ctx, &info);
	if ((info.uid_len != 4 && info.uid_len != 7) || info.ats_len > HIL_ATS_MAX ||
	    !(info.sak & 0x20))
		fail("malformed target info");
}

/* One exchange; returns the answer's length (status included) or -1. */
static int exchange(struct session *s, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	const int n = s->tg.ops->transceive(s->tg.ctx, in, len, out, cap);
	if (n == HIL_TARGET_SILENT)
		return -1;
	if (n < 1 || (size_t)n > cap || n > 61)
		fail("answer does not fit one DESFire frame");
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct session s;
	session_open(&s, data[0]);
	size_t pos = 1;
	while (pos < size) {
		const uint8_t len = data[pos++];
		if (len == FIELD_RESET) {
			s.tg.ops->deactivate(s.tg.ctx);
			s.tg.ops->activate(s.tg.ctx);
			continue;
		}
		if (len == FIELD_INFO) {
			check_info(&s);
			continue;
		}
		const size_t take = len < size - pos ? len : size - pos;
		uint8_t out[HIL_APDU_MAX];
		/* a small buffer now and then: the card must not write past it */
		const size_t cap = (len & 0x0F) == 0x0F ? 8 : sizeof(out);
		exchange(&s, data + pos, take, out, cap);
		pos += take;
	}
	check_info(&s);
	s.tg.ops->destroy(s.tg.ctx);
	/* whatever the card saved, it can read back */
	struct hil_desfire_card *again;
	if (hil_desfire_card_open(&again, image_path, NULL) != 0)
		fail("the card left an image it cannot open");
	hil_desfire_card_close(again);
	return 0;
}

/* ---- seeds: live sessions, recorded ---------------------------------------------------- */

/* A reader talking to a live card and writing down what it sent. */
struct recorder {
	struct session s;
	uint8_t *buf;
	size_t len, cap;
	int iso;
	int sm; /* 0 none, 1 EV1, 2 EV2 */
	uint8_t ses[16], mac[16], iv[16], ti[4];
	uint16_t ctr;
	uint8_t st;
	uint8_t resp[512];
	size_t resp_len;
};

static void rec_put(struct recorder *r, uint8_t byte)
{
	if (r->len == r->cap)
		fail("seed buffer too small");
	r->buf[r->len++] = byte;
}

/* Sends one native frame (wrapped in ISO 7816-4 if r->iso), records it, keeps the answer. */
static void rec_send(struct recorder *r, const uint8_t *frame, size_t len)
{
	uint8_t wire[FRAME_MAX], out[HIL_APDU_MAX];
	size_t wlen = len;
	if (r->iso) {
		wire[0] = 0x90;
		wire[1] = frame[0];
		wire[2] = wire[3] = 0x00;
		wlen = 4;
		if (len > 1) {
			wire[wlen++] = (uint8_t)(len - 1);
			memcpy(wire + wlen, frame + 1, len - 1);
			wlen += len - 1;
		}
		wire[wlen++] = 0x00;
	} else {
		memcpy(wire, frame, len);
	}
	if (wlen > FRAME_MAX)
		fail("seed frame too long");
	rec_put(r, (uint8_t)wlen);
	for (size_t i = 0; i < wlen; i++)
		rec_put(r, wire[i]);
	const int n = exchange(&r->s, wire, wlen, out, sizeof(out));
	if (n < 0)
		fail("the card was silent to a seed");
	if (r->iso) {
		r->st = out[n - 1];
		r->resp_len = (size_t)n - 2;
		memcpy(r->resp, out, r->resp_len);
	} else {
		r->st = out[0];
		r->resp_len = (size_t)n - 1;
		memcpy(r->resp, out + 1, r->resp_len);
	}
}

/* A command, then AF while the card has more; the whole answer lands in r->resp. */
static void rec_command(struct recorder *r, const uint8_t *frame, size_t len)
{
	uint8_t all[512];
	size_t total = 0;
	rec_send(r, frame, len);
	memcpy(all, r->resp, r->resp_len);
	total = r->resp_len;
	while (r->st == 0xAF) {
		static const uint8_t af = 0xAF;
		rec_send(r, &af, 1);
		memcpy(all + total, r->resp, r->resp_len);
		total += r->resp_len;
	}
	memcpy(r->resp, all, total);
	r->resp_len = total;
}

/* Hex digits, spaces ignored. */
static size_t parse_hex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	while (*hex) {
		unsigned v = 0;
		if (*hex == ' ') {
			hex++;
			continue;
		}
		if (n == cap || sscanf(hex, "%2x", &v) != 1 || !hex[1])
			fail("bad seed hex");
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

static void rec_hex(struct recorder *r, const char *hex)
{
	uint8_t frame[FRAME_MAX];
	rec_command(r, frame, parse_hex(hex, frame, sizeof(frame)));
}

static void rec_field_reset(struct recorder *r)
{
	rec_put(r, FIELD_RESET);
	r->s.tg.ops->deactivate(r->s.tg.ctx);
	r->s.tg.ops->activate(r->s.tg.ctx);
	r->sm = 0;
}

static const uint8_t zero_key[16];

static void rec_auth(struct recorder *r, uint8_t cmd, uint8_t key_no, const uint8_t key[16])
{
	const int des = cmd == 0x0A;
	const size_t n = des ? 8 : 16;
	uint8_t frame[40] = {cmd, key_no, 0x00}, rnd_b[16], rnd_a[16], iv[16] = {0};
	rec_send(r, frame, cmd == 0x71 ? 3 : 2);
	memcpy(rnd_b, r->resp, n);
	for (size_t i = 0; i < n; i++)
		rnd_a[i] = (uint8_t)(0xA0 + i);
	frame[0] = 0xAF;
	memcpy(frame + 1, rnd_a, n);
	hil_df_rotate_left(rnd_b, frame + 1 + n, n);
	if (des) {
		/* the reader's legacy send mode, on the card's own primitives */
		uint8_t prev[8] = {0};
		hil_df_des3_block(key, 0, rnd_b, rnd_b);
		hil_df_rotate_left(rnd_b, frame + 9, 8);
		for (int b = 0; b < 2; b++) {
			for (int i = 0; i < 8; i++)
				frame[1 + 8 * b + i] ^= prev[i];
			hil_df_des3_block(key, 0, frame + 1 + 8 * b, frame + 1 + 8 * b);
			memcpy(prev, frame + 1 + 8 * b, 8);
		}
		rec_send(r, frame, 17);
		hil_df_legacy_session_key(rnd_a, rnd_b, 1, r->ses);
		r->sm = 0; /* legacy sessions MAC nothing the seeds use */
		return;
	}
	hil_df_aes_cbc_decrypt(key, iv, rnd_b, rnd_b, 16);
	hil_df_rotate_left(rnd_b, frame + 17, 16);
	if (cmd != 0xAA)
		memset(iv, 0, 16);
	hil_df_aes_cbc_encrypt(key, iv, frame + 1, frame + 1, 32);
	rec_send(r, frame, 33);
	if (cmd == 0xAA) {
		hil_df_ev1_session_key(rnd_a, rnd_b, r->ses);
		memset(r->iv, 0, 16);
		r->sm = 1;
	} else {
		if (cmd == 0x71) {
			memset(iv, 0, 16);
			hil_df_aes_cbc_decrypt(key, iv, r->resp, r->resp, 32);
			memcpy(r->ti, r->resp, 4);
			r->ctr = 0;
		}
		hil_df_ev2_session_keys(key, rnd_a, rnd_b, r->ses, r->mac);
		r->sm = 2;
	}
}

enum { PLAIN, MAC, FULL };

/* A command secured as the session wants; the answer's IV/counter bookkeeping follows. */
static void rec_secure(struct recorder *r, const char *hex, int mode, size_t hdr, int resp_full)
{
	uint8_t frame[FRAME_MAX];
	size_t n = parse_hex(hex, frame, sizeof(frame) - 32);
	if (r->sm == 1) {
		if (mode == FULL) {
			hil_df_crc32_le(frame, n, frame + n);
			n += 4;
			while ((n - 1 - hdr) % 16)
				frame[n++] = 0;
			hil_df_aes_cbc_encrypt(r->ses, r->iv, frame + 1 + hdr, frame + 1 + hdr,
			                       n - 1 - hdr);
		} else {
			hil_df_aes_cmac(r->ses, r->iv, frame, n);
			if (mode == MAC) {
				memcpy(frame + n, r->iv, 8);
				n += 8;
			}
		}
	} else if (r->sm == 2 && mode != PLAIN) {
		if (mode == FULL) {
			uint8_t iv[16];
			hil_df_ev2_iv(r->ses, 0, r->ti, r->ctr, iv);
			frame[n++] = 0x80;
			while ((n - 1 - hdr) % 16)
				frame[n++] = 0;
			hil_df_aes_cbc_encrypt(r->ses, iv, frame + 1 + hdr, frame + 1 + hdr,
			                       n - 1 - hdr);
		}
		hil_df_ev2_mact(r->mac, frame[0], r->ctr, r->ti, frame + 1, n - 1, frame + n);
		n += 8;
	}
	rec_command(r, frame, n);
	if (r->st != 0x00) {
		if (r->sm == 2)
			r->sm = 0;
		return;
	}
	if (r->sm == 1) {
		if (resp_full) {
			hil_df_aes_cbc_decrypt(r->ses, r->iv, r->resp, r->resp, r->resp_len);
		} else if (r->resp_len >= 8) {
			r->resp[r->resp_len - 8] = 0x00;
			hil_df_aes_cmac(r->ses, r->iv, r->resp, r->resp_len - 7);
		}
	} else if (r->sm == 2) {
		r->ctr++;
	}
}

static void seed_plain(struct recorder *r)
{
	rec_hex(r, "60");
	rec_hex(r, "6A");
	rec_hex(r, "6E");
	rec_hex(r, "45");
	rec_hex(r, "6400");
	rec_hex(r, "CA 010000 0F 82");
	rec_hex(r, "5A 010000");
	rec_hex(r, "CD 01 00 EEEE 800000");
	/* a 100-byte write in two frames, then a chained read */
	uint8_t w[60] = {0x3D, 0x01, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00};
	for (int i = 0; i < 52; i++)
		w[8 + i] = (uint8_t)(i * 5);
	rec_send(r, w, 60);
	w[0] = 0xAF;
	rec_send(r, w, 49);
	rec_hex(r, "BD 01 000000 000000");
	rec_hex(r, "CC 02 00 EEEE 00000000 64000000 0A000000 01");
	rec_hex(r, "0C 02 05000000");
	rec_hex(r, "DC 02 03000000");
	rec_hex(r, "C7");
	rec_hex(r, "1C 02 03000000");
	rec_hex(r, "A7");
	rec_hex(r, "6C 02");
	rec_hex(r, "F5 02");
	rec_hex(r, "6F");
	rec_field_reset(r);
	rec_put(r, FIELD_INFO);
	rec_hex(r, "5A 010000");
	rec_hex(r, "BD 01 100000 100000");
	rec_hex(r, "DF 01");
	rec_hex(r, "5A 000000");
	rec_hex(r, "DA 010000");
}

static const uint8_t key1[16] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                                 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xF0, 0x01};

static void seed_ev1(struct recorder *r)
{
	rec_auth(r, 0xAA, 0, zero_key);
	rec_secure(r, "CA 020000 0B 83", PLAIN, 0, 0);
	rec_secure(r, "6A", PLAIN, 0, 0);
	rec_secure(r, "51", PLAIN, 0, 1);
	rec_hex(r, "5A 020000");
	rec_auth(r, 0xAA, 0, zero_key);
	/* ChangeKey 1 (other key): cryptogram built by hand */
	uint8_t frame[40] = {0xC4, 0x01};
	memcpy(frame + 2, key1, 16);
	frame[18] = 0x01;
	hil_df_crc32_le(frame, 19, frame + 19);
	hil_df_crc32_le(key1, 16, frame + 23);
	memset(frame + 27, 0, 7);
	hil_df_aes_cbc_encrypt(r->ses, r->iv, frame + 2, frame + 2, 32);
	rec_command(r, frame, 34);
	r->resp[0] = 0x00;
	hil_df_aes_cmac(r->ses, r->iv, r->resp, 1);
	rec_secure(r, "CD 01 03 1011 400000", PLAIN, 0, 0);
	rec_secure(r, "CD 03 01 1011 200000", PLAIN, 0, 0);
	rec_secure(r, "CC 02 03 1011 00000000 E8030000 64000000 00", PLAIN, 0, 0);
	rec_auth(r, 0xAA, 1, key1);
	rec_secure(r,
	           "3D 01 000000 200000 00112233445566778899AABBCCDDEEFF"
	           "00112233445566778899AABBCCDDEEFF",
	           FULL, 7, 0);
	rec_secure(r, "BD 01 000000 200000", PLAIN, 0, 1);
	rec_secure(r, "3D 03 000000 040000 01020304", MAC, 7, 0);
	rec_secure(r, "BD 03 000000 000000", PLAIN, 0, 0);
	rec_secure(r, "0C 02 0A000000", FULL, 1, 0);
	rec_secure(r, "DC 02 01000000", FULL, 1, 0);
	rec_secure(r, "C7", PLAIN, 0, 0);
	rec_secure(r, "6C 02", PLAIN, 0, 1);
	rec_secure(r, "6401", PLAIN, 0, 0);
}

static void seed_ev2(struct recorder *r)
{
	rec_auth(r, 0x71, 0, zero_key);
	rec_secure(r, "CA 030000 0B 82", MAC, 0, 0);
	rec_secure(r, "6A", MAC, 0, 0);
	rec_secure(r, "60", MAC, 0, 0);
	rec_secure(r, "51", MAC, 0, 1);
	rec_hex(r, "5A 030000");
	rec_auth(r, 0x71, 0, zero_key);
	rec_secure(r, "CD 01 03 0000 400000", MAC, 0, 0);
	rec_secure(r, "CC 02 01 0000 00000000 E8030000 64000000 00", MAC, 0, 0);
	rec_secure(r, "3D 01 000000 100000 00112233445566778899AABBCCDDEEFF", FULL, 7, 0);
	rec_secure(r, "BD 01 000000 100000", MAC, 0, 1);
	rec_secure(r, "0C 02 0A000000", MAC, 1, 0);
	rec_secure(r, "C7", MAC, 0, 0);
	rec_secure(r, "6C 02", MAC, 0, 0);
	rec_auth(r, 0x77, 0, zero_key);
	/* ChangeKey 1 by key 0: (new ^ old) || version || CRC32(new), new = old = 0 */
	rec_secure(r, "C4 01 00000000000000000000000000000000 02 AAB44413", FULL, 1, 0);
	rec_secure(r, "54 0F", FULL, 0, 0);
	rec_secure(r, "BD 09 000000 100000", MAC, 0, 0); /* an error ends the session */
}

static void seed_legacy(struct recorder *r)
{
	rec_auth(r, 0x0A, 0, zero_key);
	rec_hex(r, "FC");
	rec_auth(r, 0x0A, 0, zero_key);
	/* PICC master key to AES: C4 80 || send-mode(key || version || CRC16 || 00..) */
	uint8_t frame[32] = {0xC4, 0x80}, prev[8] = {0};
	memcpy(frame + 2, key1, 16);
	frame[18] = 0x07;
	const uint16_t crc = hil_df_crc16(frame + 2, 17);
	frame[19] = (uint8_t)crc;
	frame[20] = (uint8_t)(crc >> 8);
	for (int b = 0; b < 3; b++) {
		for (int i = 0; i < 8; i++)
			frame[2 + 8 * b + i] ^= prev[i];
		hil_df_des3_block(r->ses, 0, frame + 2 + 8 * b, frame + 2 + 8 * b);
		memcpy(prev, frame + 2 + 8 * b, 8);
	}
	rec_command(r, frame, 26);
	rec_auth(r, 0xAA, 0, key1);
	rec_secure(r, "5C 00 02", FULL, 1, 0);
	rec_field_reset(r);
	rec_put(r, FIELD_INFO);
	rec_hex(r, "60");
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static const struct {
		uint8_t config;
		int iso;
		void (*build)(struct recorder *r);
	} seeds[] = {
	        {0x00, 0, seed_plain},  {0x00, 1, seed_plain},  {0x01, 0, seed_ev1},
	        {0x01, 1, seed_ev1},    {0x01, 0, seed_ev2},    {0x01, 1, seed_ev2},
	        {0x00, 0, seed_legacy}, {0x02, 1, seed_legacy},
	};
	static uint8_t buf[8192];
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		struct recorder r;
		memset(&r, 0, sizeof(r));
		r.buf = buf;
		r.cap = sizeof(buf);
		r.iso = seeds[i].iso;
		rec_put(&r, seeds[i].config);
		session_open(&r.s, seeds[i].config);
		seeds[i].build(&r);
		r.s.tg.ops->destroy(r.s.tg.ctx);
		emit(buf, r.len, ctx);
	}
}
