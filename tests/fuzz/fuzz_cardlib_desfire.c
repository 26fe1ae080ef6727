/*
 * fuzz_cardlib_desfire.c — cardlib's DESFire reader side facing a hostile card.
 *
 * The card is a loopback peer that answers each exchange with the next slice of the input:
 *
 *   input  = flags ‖ slice*      slice = length (2 bytes, big-endian) ‖ answer bytes
 *
 * A missing slice is a timeout; a slice longer than what is left is cut. flags picks the
 * session: bit 0 EV1 (AuthenticateAES) instead of EV2First, bit 1 a long MACed read too
 * (answers in AF frames), bit 2 an ATS that is not DESFire's (recognition by GetVersion),
 * bit 3 a desk's session with a factory card instead (issue 11: legacy authentication with
 * the DES key, or with bit 4 ISO authentication, then GetCardUID, GetKeySettings,
 * GetKeyVersion, GetApplicationIDs, ChangeKeySettings — the DES secure messaging's
 * decoders). The gate's session is: select, authenticate, read the sector file (Full), get
 * the value, debit, commit, and GetCardUID. Beyond "no crash, no out-of-bounds read" (ASan,
 * UBSan), it checks that whatever cardlib accepted is within what it asked for.
 *
 * fuzz_seeds() records real sessions against the bench's virtual card (hil/desfire.h) with
 * both sides' randomness scripted, so that a seed replays the whole session exactly and the
 * fuzzer starts past the MACs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardlib/desfire.h"
#include "cardlib/error.h"
#include "cardlib/reader.h"
#include "desfire_internal.h"
#include "fuzz.h"
#include "hil/desfire.h"
#include "hil_field.h"

#define FLAG_EV1    0x01
#define FLAG_LONG   0x02
#define FLAG_NOT_80 0x04
#define FLAG_DESK   0x08
#define FLAG_ISO    0x10
#define SESSION_AID 0x5C1701u
#define RECORD_MAX  8192

static const uint8_t key1[16] = {0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
                                 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x20};
static const uint8_t zero_key[16];

static void fail(const char *what, int rc)
{
	fprintf(stderr, "fuzz_cardlib_desfire: %s (rc %d: %s)\n", what, rc, cardlib_strerror(rc));
	abort();
}

/* RndA: a constant, so that recorded sessions replay. */
static int fixed_rnda(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(0xA0 + i);
	return 0;
}

static void target_info(struct cardlib_target_info *info, uint8_t flags)
{
	static const uint8_t uid[7] = {0x04, 0x5a, 0x11, 0x22, 0x33, 0x44, 0x80};
	static const uint8_t ats[] = {0x75, 0x77, 0x81, 0x02, 0x80};
	memset(info, 0, sizeof(*info));
	memcpy(info->uid, uid, sizeof(uid));
	info->uid_len = sizeof(uid);
	info->atqa[0] = 0x03;
	info->atqa[1] = 0x44;
	info->sak = 0x20;
	memcpy(info->ats, ats, sizeof(ats));
	info->ats_len = sizeof(ats);
	if (flags & FLAG_NOT_80)
		info->ats[4] = 0xC1;
}

/* While recording seeds every step must succeed, or the seeds would not reach deep. */
static int recording_seeds;

static int ok_or_refused(int rc)
{
	if (rc > 0 || rc == CARDLIB_ERR_ARG || rc == CARDLIB_ERR_NOMEM)
		fail("unexpected result", rc);
	if (recording_seeds && rc != 0)
		fail("the virtual card refused a recorded session", rc);
	return rc;
}

/* What a desk does with a card as bought (DES PICC key): the DES sessions' decoders. */
static void desk_session(struct cardlib_desfire *d, uint8_t flags)
{
	struct cardlib_key des0;
	uint8_t uid[CARDLIB_UID_MAX], settings = 0, keys = 0, version = 0;
	size_t uid_len = 0, n = 0;
	uint32_t aids[4];
	cardlib_key_make(&des0, CARDLIB_KEY_DES, zero_key, 16, 0);
	ok_or_refused(cardlib_desfire_select_application(d, 0));
	ok_or_refused(cardlib_desfire_get_key_settings(d, &settings, &keys));
	ok_or_refused(cardlib_desfire_authenticate_key(
	        d, (flags & FLAG_ISO) ? CARDLIB_AUTH_ISO : CARDLIB_AUTH_LEGACY, 0, &des0));
	if (ok_or_refused(cardlib_desfire_get_card_uid(d, uid, &uid_len)) == 0 &&
	    (uid_len < 4 || uid_len > CARDLIB_UID_MAX))
		fail("GetCardUID accepted a UID of impossible length", (int)uid_len);
	ok_or_refused(cardlib_desfire_get_key_settings(d, &settings, &keys));
	ok_or_refused(cardlib_desfire_get_key_version(d, 0, &version));
	if (ok_or_refused(cardlib_desfire_get_application_ids(d, aids, 4, &n)) == 0 && n > 38)
		fail("GetApplicationIDs accepted more than it can hold", (int)n);
	ok_or_refused(cardlib_desfire_change_key_settings(d, 0x0F));
}

/* What a gate does with a card; the same sequence whether recorded or replayed. */
static void gate_session(struct cardlib_reader *r, uint8_t flags)
{
	struct cardlib_target_info info;
	struct cardlib_desfire *d = NULL;
	if (cardlib_reader_select(r, &info) != 1)
		return;
	target_info(&info, flags);
	if (ok_or_refused(cardlib_desfire_open(&d, r, &info)) != 0)
		return;
	if (flags & FLAG_DESK) {
		desk_session(d, flags);
		cardlib_desfire_close(d);
		cardlib_reader_release(r);
		return;
	}

	const enum cardlib_auth_kind kind =
	        (flags & FLAG_EV1) ? CARDLIB_AUTH_EV1 : CARDLIB_AUTH_EV2;
	uint8_t sector[32];
	uint8_t long_data[100];
	int32_t value = 0;
	uint8_t uid[CARDLIB_UID_MAX];
	size_t uid_len = 0;

	ok_or_refused(cardlib_desfire_select_application(d, SESSION_AID));
	ok_or_refused(cardlib_desfire_authenticate(d, kind, 1, key1));
	ok_or_refused(
	        cardlib_desfire_read_data(d, 3, 0, sizeof(sector), CARDLIB_COMM_FULL, sector));
	if (flags & FLAG_LONG)
		ok_or_refused(cardlib_desfire_read_data(d, 2, 0, sizeof(long_data),
		                                        CARDLIB_COMM_MACED, long_data));
	ok_or_refused(cardlib_desfire_get_value(d, 4, CARDLIB_COMM_FULL, &value));
	ok_or_refused(cardlib_desfire_debit(d, 4, CARDLIB_COMM_FULL, 1));
	ok_or_refused(cardlib_desfire_commit(d));
	if (ok_or_refused(cardlib_desfire_get_card_uid(d, uid, &uid_len)) == 0 &&
	    (uid_len < 4 || uid_len > CARDLIB_UID_MAX))
		fail("GetCardUID accepted a UID of impossible length", (int)uid_len);
	cardlib_desfire_close(d);
	cardlib_reader_release(r);
}

/* ---- replay ---------------------------------------------------------------------------- */

struct slices {
	const uint8_t *p;
	size_t left;
};

static int slice_info(void *ctx, struct cardlib_target_info *info)
{
	(void)ctx;
	target_info(info, 0);
	return 1;
}

static int slice_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap)
{
	struct slices *s = ctx;
	(void)tx;
	(void)tx_len;
	if (s->left < 2)
		return CARDLIB_ERR_TIMEOUT;
	size_t len = (size_t)s->p[0] << 8 | s->p[1];
	s->p += 2;
	s->left -= 2;
	if (len > s->left)
		len = s->left;
	const size_t give = len < rx_cap ? len : rx_cap;
	memcpy(rx, s->p, give);
	s->p += len;
	s->left -= len;
	return (int)give;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct slices s = {data + 1, size - 1};
	const struct cardlib_loopback_peer peer = {
	        .info = slice_info, .exchange = slice_exchange, .ctx = &s};
	struct cardlib_reader *r = NULL;
	if (cardlib_loopback_new(&r, &peer, 0) != 0)
		return 0;
	cardlib_desfire_set_random(fixed_rnda, NULL);
	gate_session(r, data[0]);
	cardlib_desfire_set_random(NULL, NULL);
	cardlib_reader_free(r);
	return 0;
}

/* ---- seeds: sessions recorded against the virtual card ---------------------------------- */

/* The bench's card in a field; the session's answers are recorded as the seed. */
struct recorder {
	struct hil_field field;
	uint8_t buf[RECORD_MAX];
	size_t len;
	int recording;
};

static void rec_answer(void *ctx, const uint8_t *rx, size_t n)
{
	struct recorder *rec = ctx;
	if (rec->recording && rec->len + 2 + n <= sizeof(rec->buf)) {
		rec->buf[rec->len++] = (uint8_t)(n >> 8);
		rec->buf[rec->len++] = (uint8_t)n;
		memcpy(rec->buf + rec->len, rx, n);
		rec->len += n;
	}
}

static uint32_t card_rng_state;
static int card_random(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++) {
		card_rng_state = card_rng_state * 1103515245u + 12345u;
		buf[i] = (uint8_t)(card_rng_state >> 16);
	}
	return 0;
}

static int personalise(struct cardlib_reader *r)
{
	struct cardlib_target_info info;
	struct cardlib_desfire *d = NULL;
	uint8_t data[100];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13);
	const uint16_t access = CARDLIB_ACCESS(1, 0, 0, 0);
	int rc = cardlib_reader_select(r, &info) == 1 ? 0 : CARDLIB_ERR_NO_CARD;
	if (rc == 0)
		rc = cardlib_desfire_open(&d, r, &info);
	if (rc == 0)
		rc = cardlib_desfire_authenticate(d, CARDLIB_AUTH_EV2, 0, zero_key);
	if (rc == 0)
		rc = cardlib_desfire_create_application(d, SESSION_AID, 0x0B, 2);
	if (rc == 0)
		rc = cardlib_desfire_select_application(d, SESSION_AID);
	if (rc == 0)
		rc = cardlib_desfire_authenticate(d, CARDLIB_AUTH_EV2, 0, zero_key);
	if (rc == 0)
		rc = cardlib_desfire_change_key(d, 1, key1, 1, zero_key);
	if (rc == 0)
		rc = cardlib_desfire_create_std_data_file(d, 2, CARDLIB_COMM_MACED, access, 100);
	if (rc == 0)
		rc = cardlib_desfire_create_std_data_file(d, 3, CARDLIB_COMM_FULL, access, 32);
	if (rc == 0)
		rc = cardlib_desfire_create_value_file(d, 4, CARDLIB_COMM_FULL, access, 0, 100, 50,
		                                       0);
	if (rc == 0)
		rc = cardlib_desfire_write_data(d, 2, 0, data, 100, CARDLIB_COMM_MACED);
	if (rc == 0)
		rc = cardlib_desfire_write_data(d, 3, 0, data, 32, CARDLIB_COMM_FULL);
	cardlib_desfire_close(d);
	cardlib_reader_release(r);
	return rc;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	char dir[] = "/tmp/fuzz_cardlib_desfire.XXXXXX";
	char image[64];
	if (!mkdtemp(dir))
		return;
	snprintf(image, sizeof(image), "%s/card", dir);

	struct hil_desfire_config cfg = {.uid = {0x04, 0x5a, 0x11, 0x22, 0x33, 0x44, 0x80},
	                                 .picc_key_aes = 1};
	struct hil_desfire_card *card = NULL;
	struct recorder *rec = calloc(1, sizeof(*rec));
	struct cardlib_reader *r = NULL;
	if (!rec || hil_desfire_card_open(&card, image, &cfg) != 0)
		goto out;
	hil_desfire_card_set_random(card, card_random, NULL);
	hil_field_place(&rec->field, hil_desfire_card_target(card));
	rec->field.on_answer = rec_answer;
	rec->field.on_answer_ctx = rec;
	const struct cardlib_loopback_peer peer = hil_field_peer(&rec->field);
	if (cardlib_loopback_new(&r, &peer, 0) != 0)
		goto out;
	if (personalise(r) != 0)
		fail("personalising the virtual card failed", 0);

	static const uint8_t flag_sets[] = {
	        0, FLAG_EV1, FLAG_LONG, FLAG_EV1 | FLAG_LONG, FLAG_NOT_80, FLAG_EV1 | FLAG_NOT_80};
	for (size_t i = 0; i < sizeof(flag_sets); i++) {
		card_rng_state = 0x5eed0000u + (uint32_t)i;
		cardlib_desfire_set_random(fixed_rnda, NULL);
		rec->len = 0;
		rec->buf[rec->len++] = flag_sets[i];
		rec->recording = 1;
		recording_seeds = 1;
		gate_session(r, flag_sets[i]);
		recording_seeds = 0;
		rec->recording = 0;
		cardlib_desfire_set_random(NULL, NULL);
		emit(rec->buf, rec->len, ctx);
	}
	/* the desk's sessions with a factory card (PICC key DES zeros) */
	{
		struct hil_field desk = {0};
		struct hil_desfire_card *fresh = NULL;
		struct cardlib_reader *dr = NULL;
		char image2[80];
		snprintf(image2, sizeof(image2), "%s/fresh", dir);
		struct hil_desfire_config fcfg = {
		        .uid = {0x04, 0x5a, 0x11, 0x22, 0x33, 0x44, 0x80}};
		if (hil_desfire_card_open(&fresh, image2, &fcfg) == 0) {
			hil_desfire_card_set_random(fresh, card_random, NULL);
			hil_field_place(&desk, hil_desfire_card_target(fresh));
			desk.on_answer = rec_answer;
			desk.on_answer_ctx = rec;
			const struct cardlib_loopback_peer dpeer = hil_field_peer(&desk);
			if (cardlib_loopback_new(&dr, &dpeer, 0) == 0) {
				static const uint8_t desk_flags[] = {FLAG_DESK,
				                                     FLAG_DESK | FLAG_ISO};
				for (size_t i = 0; i < sizeof(desk_flags); i++) {
					card_rng_state = 0xde5c0000u + (uint32_t)i;
					cardlib_desfire_set_random(fixed_rnda, NULL);
					rec->len = 0;
					rec->buf[rec->len++] = desk_flags[i];
					rec->recording = 1;
					recording_seeds = 1;
					gate_session(dr, desk_flags[i]);
					recording_seeds = 0;
					rec->recording = 0;
					cardlib_desfire_set_random(NULL, NULL);
					emit(rec->buf, rec->len, ctx);
				}
			}
			cardlib_reader_free(dr);
			hil_field_clear(&desk);
		}
		unlink(image2);
	}
	/* and a few hostile starts: empty, a lone status, an AF that never ends */
	static const uint8_t lone[] = {0x00, 0x00, 0x01, 0x91};
	static const uint8_t af[] = {0x00, 0x00, 0x02, 0x91, 0xAF, 0x00, 0x02, 0x91, 0xAF};
	emit(lone, sizeof(lone), ctx);
	emit(af, sizeof(af), ctx);
out:
	cardlib_reader_free(r);
	if (rec)
		hil_field_clear(&rec->field);
	else if (card)
		hil_desfire_card_close(card);
	free(rec);
	unlink(image);
	rmdir(dir);
}
