/*
 * The libnfc backend. libnfc 1.8.0 is not thread-safe, and nfc_exit() frees a process-wide
 * driver list that other contexts still use (HIL-NOTES.md pitfalls 1 and 2): every reader
 * of the process shares one context, created at the first open and released with the last.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nfc/nfc.h>

#include "cardlib/error.h"
#include "cardlib/reader.h"

static nfc_context *shared_ctx;
static unsigned shared_users;

struct nfc_backend {
	nfc_device *dev;
	int selected;
};

static int target_found(struct nfc_backend *b, const nfc_target *t,
                        struct cardlib_target_info *info)
{
	const nfc_iso14443a_info *a = &t->nti.nai;
	size_t uid_len = a->szUidLen < CARDLIB_UID_MAX ? a->szUidLen : CARDLIB_UID_MAX;
	size_t ats_len = a->szAtsLen < CARDLIB_ATS_MAX ? a->szAtsLen : CARDLIB_ATS_MAX;
	memcpy(info->uid, a->abtUid, uid_len);
	info->uid_len = uid_len;
	memcpy(info->atqa, a->abtAtqa, 2);
	info->sak = a->btSak;
	memcpy(info->ats, a->abtAts, ats_len);
	info->ats_len = ats_len;
	b->selected = 1;
	return 1;
}

static int nfcb_select(void *ctx, struct cardlib_target_info *info)
{
	struct nfc_backend *b = ctx;
	const nfc_modulation mod = {.nmt = NMT_ISO14443A, .nbr = NBR_106};
	nfc_target t;
	int n = nfc_initiator_select_passive_target(b->dev, mod, NULL, 0, &t);
	if (n < 0)
		return n == NFC_ETIMEOUT ? 0 : CARDLIB_ERR_IO;
	if (n == 0)
		return 0;
	return target_found(b, &t, info);
}

/*
 * The PN532 polls by itself (InAutoPoll, UM0701 s.7.3.13): it answers the moment a target
 * enters the field, selected and (ISO 14443-4) activated, or with no target once PollNr x
 * Period x 150 ms have passed. libnfc waits for that answer with no timeout of its own,
 * and nothing is an error when the field stays empty: no 50 ms error flush, no command
 * sent after the card arrived (HIL-NOTES.md, "Timing"). libnfc's bAutoIso14443_4 makes it
 * ask for ISO 14443-4A before MIFARE, so a DESFire card or a phone comes with its ATS.
 */
static int nfcb_wait(void *ctx, struct cardlib_target_info *info, int timeout_ms)
{
	struct nfc_backend *b = ctx;
	const nfc_modulation mod = {.nmt = NMT_ISO14443A, .nbr = NBR_106};
	nfc_target t;
	int polls = (timeout_ms + 149) / 150;
	if (polls < 1)
		polls = 1;
	if (polls > 0xFE) /* 0xFF would poll for ever */
		polls = 0xFE;
	int n = nfc_initiator_poll_target(b->dev, &mod, 1, (uint8_t)polls, 1, &t);
	if (n < 0)
		return n == NFC_ETIMEOUT ? 0 : CARDLIB_ERR_IO;
	if (n == 0)
		return 0;
	return target_found(b, &t, info);
}

static int nfcb_transceive(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap,
                           int timeout_ms)
{
	struct nfc_backend *b = ctx;
	if (!b->selected)
		return CARDLIB_ERR_NO_CARD;
	int n = nfc_initiator_transceive_bytes(b->dev, tx, tx_len, rx, rx_cap, timeout_ms);
	if (n >= 0)
		return n;
	switch (n) {
	case NFC_ETIMEOUT:
	case NFC_ERFTRANS: /* the chip's status 01: the card stayed silent */
		return CARDLIB_ERR_TIMEOUT;
	case NFC_ETGRELEASED:
	case NFC_ENOTSUCHDEV:
		return CARDLIB_ERR_NO_CARD;
	case NFC_EOVFLOW:
		return CARDLIB_ERR_OVERSIZED;
	default:
		return CARDLIB_ERR_IO;
	}
}

static void nfcb_release(void *ctx)
{
	struct nfc_backend *b = ctx;
	if (b->selected)
		(void)nfc_initiator_deselect_target(b->dev);
	b->selected = 0;
}

static int64_t mono_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_time(void *ctx)
{
	(void)ctx;
	return (int64_t)time(NULL);
}

static void nfcb_destroy(void *ctx)
{
	struct nfc_backend *b = ctx;
	nfc_close(b->dev);
	free(b);
	if (--shared_users == 0) {
		nfc_exit(shared_ctx);
		shared_ctx = NULL;
	}
}

static const struct cardlib_reader_ops nfc_ops = {
        .select = nfcb_select,
        .transceive = nfcb_transceive,
        .release = nfcb_release,
        .wait = nfcb_wait,
        .now_ms = mono_ms,
        .wall_time = wall_time,
        .destroy = nfcb_destroy,
};

int cardlib_nfc_open(struct cardlib_reader **out, const char *connstring)
{
	if (!out || !connstring)
		return CARDLIB_ERR_ARG;
	if (!shared_ctx) {
		nfc_init(&shared_ctx);
		if (!shared_ctx)
			return CARDLIB_ERR_IO;
	}
	shared_users++;
	struct cardlib_reader *r = calloc(1, sizeof(*r));
	struct nfc_backend *b = calloc(1, sizeof(*b));
	if (r && b)
		b->dev = nfc_open(shared_ctx, connstring);
	if (!r || !b || !b->dev || nfc_initiator_init(b->dev) < 0) {
		int err = r && b ? CARDLIB_ERR_IO : CARDLIB_ERR_NOMEM;
		if (b && b->dev)
			nfc_close(b->dev);
		free(b);
		free(r);
		if (--shared_users == 0) {
			nfc_exit(shared_ctx);
			shared_ctx = NULL;
		}
		return err;
	}
	/* A gate waits for no card: selecting returns at once when the field is empty. */
	(void)nfc_device_set_property_bool(b->dev, NP_INFINITE_SELECT, false);
	r->ops = &nfc_ops;
	r->ctx = b;
	*out = r;
	return CARDLIB_OK;
}
