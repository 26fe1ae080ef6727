/*
 * controller/src/reader_loop.c — the reader thread (see controller/reader_loop.h and
 * reader_internal.h): the reader opened, polled and re-opened; cards and phones over NFC.
 *
 * Waiting for a card costs nothing and loses nothing: the PN532 polls by itself
 * (InAutoPoll, cardlib_reader_wait) and answers the moment a card enters the field, so a
 * tap is timed from the card's arrival, not from the next turn of a sleeping loop
 * (issue 13, item 4). A reader that fails (unplugged, answering garbage, gone silent) is
 * closed and opened again after 100 ms, doubling up to 1 s: never a spin, back within about
 * a second of the device's return (item 1).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "controller/error.h"
#include "controller/log.h"
#include "controller/timekeeper.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "reader_internal.h"
#include "service/service.h"

/* One InAutoPoll: the chip answers a card at once, or "none" after this; the loop then
 * looks at its flags (stop, reload) and polls again. */
#define WAIT_MS          300
#define REMOVAL_POLL_MS  100  /* pause between selects while a decided card stays */
#define REOPEN_MIN_MS    100  /* reader lost: first retry, then doubling ... */
#define REOPEN_MAX_MS    1000 /* ... up to this: back within ~1 s of the device */
#define QR_CACHE_ENTRIES 1024
/* How long a libnfc call of this thread may take before the watchdog acts (qr_scanner.c):
 * an InAutoPoll lasts WAIT_MS; a tap's exchanges each have libnfc's own timeouts. */
#define BUSY_WAIT_LIMIT_MS (WAIT_MS + 3000)
#define BUSY_TAP_LIMIT_MS  15000
#define BUSY_OPEN_LIMIT_MS 8000
#define MSG_CARD_UNKNOWN   "Carte non reconnue"

int64_t reader_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *reader_cred_name(enum controller_credential c)
{
	switch (c) {
	case CONTROLLER_CRED_PHONE_NFC:
		return "phone-nfc";
	case CONTROLLER_CRED_PHONE_QR:
		return "phone-qr";
	default:
		return "card";
	}
}

/* The watchdog (qr_scanner.c) sees how long this thread has been inside libnfc. */
static void busy(struct controller_reader_loop *l, int64_t limit_ms)
{
	atomic_store(&l->busy_limit_ms, limit_ms);
	atomic_store(&l->busy_since_ms, reader_mono_ms());
}

static void idle(struct controller_reader_loop *l)
{
	atomic_store(&l->busy_since_ms, 0);
}

/* --- the presence poll's selection, handed to cardlib ------------------------------------ */

/*
 * The loop's poll selects the target; cardlib's card session begins with a select of its
 * own. Rather than deselect and select again (two more reader commands per tap, against
 * DESIGN.md s.9's budget), the libnfc reader is wrapped: after the poll found a target,
 * the next select returns it as it is, still selected in the chip (HIL-NOTES: libnfc
 * leaves the last target selected). Everything else goes through unchanged.
 */
struct presence_reader {
	struct cardlib_reader *inner;
	struct controller_timekeeper *clock; /* the time phones' proofs are checked at */
	bool handed;                         /* the next select returns `info` */
	struct cardlib_target_info info;     /* the target the poll selected */
};

static int presence_select(void *ctx, struct cardlib_target_info *info)
{
	struct presence_reader *p = ctx;
	if (p->handed) {
		p->handed = false;
		*info = p->info;
		return 1;
	}
	return cardlib_reader_select(p->inner, info);
}

static int presence_wait(void *ctx, struct cardlib_target_info *info, int timeout_ms)
{
	struct presence_reader *p = ctx;
	p->handed = false;
	return cardlib_reader_wait(p->inner, info, timeout_ms);
}

static int presence_transceive(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx,
                               size_t rx_cap, int timeout_ms)
{
	struct presence_reader *p = ctx;
	return cardlib_reader_transceive(p->inner, tx, tx_len, rx, rx_cap, timeout_ms);
}

static void presence_release(void *ctx)
{
	struct presence_reader *p = ctx;
	p->handed = false;
	cardlib_reader_release(p->inner);
}

static int64_t presence_now_ms(void *ctx)
{
	struct presence_reader *p = ctx;
	return cardlib_reader_now_ms(p->inner);
}

static int64_t presence_wall_time(void *ctx)
{
	struct presence_reader *p = ctx;
	return p->clock ? controller_timekeeper_now(p->clock) : cardlib_reader_wall_time(p->inner);
}

static void presence_destroy(void *ctx)
{
	struct presence_reader *p = ctx;
	cardlib_reader_free(p->inner);
	memset(p, 0, sizeof(*p));
	free(p);
}

static const struct cardlib_reader_ops presence_ops = {
        .select = presence_select,
        .wait = presence_wait,
        .transceive = presence_transceive,
        .release = presence_release,
        .now_ms = presence_now_ms,
        .wall_time = presence_wall_time,
        .destroy = presence_destroy,
};

static int presence_open(struct cardlib_reader **out, const char *connstring,
                         struct controller_timekeeper *clock)
{
	struct cardlib_reader *r = calloc(1, sizeof(*r));
	struct presence_reader *p = calloc(1, sizeof(*p));
	if (!r || !p) {
		free(r);
		free(p);
		return CARDLIB_ERR_NOMEM;
	}
	int rc = cardlib_nfc_open(&p->inner, connstring);
	if (rc != 0) {
		free(r);
		free(p);
		return rc;
	}
	p->clock = clock;
	r->ops = &presence_ops;
	r->ctx = p;
	*out = r;
	return 0;
}

/* The poll found this target: cardlib's next select gets it without a reader command. */
static void presence_hand_over(struct cardlib_reader *r, const struct cardlib_target_info *info)
{
	struct presence_reader *p = r->ctx;
	p->info = *info;
	p->handed = true;
}

/* --- media ---------------------------------------------------------------------------------- */

/* The historical bytes of an ATS given without its TL byte (ISO/IEC 14443-4 s.5.2). */
static void ats_historical(const struct cardlib_target_info *info, const uint8_t **hist,
                           size_t *len)
{
	*hist = NULL;
	*len = 0;
	if (info->ats_len == 0)
		return;
	uint8_t t0 = info->ats[0];
	size_t skip = 1 + !!(t0 & 0x10) + !!(t0 & 0x20) + !!(t0 & 0x40);
	if (skip <= info->ats_len) {
		*hist = info->ats + skip;
		*len = info->ats_len - skip;
	}
}

static void tap_card(struct controller_reader_loop *l, struct tap *t,
                     const struct cardlib_target_info *info)
{
	struct cardlib_card_read rd;
	t->cred = CONTROLLER_CRED_CARD;
	/* open_sector begins with a select: it gets the target the poll selected */
	presence_hand_over(l->reader, info);
	/* the sync thread may replace the card keys (a rotation): a copy for this tap */
	struct cardlib_sector_key key;
	pthread_rwlock_rdlock(l->p.store_lock);
	key = l->cfg->card_key;
	pthread_rwlock_unlock(l->p.store_lock);
	int rc = cardlib_card_open_sector(&t->card, l->reader, &key, &rd);
	mbedtls_platform_zeroize(&key, sizeof(key));
	if (rc == CARDLIB_ERR_NO_CARD)
		return; /* gone between the two selects */
	if (rc != 0) {
		if (tap_error_is_transport(rc))
			tap_read_again(l, t, rc);
		else /* NOT_DESFIRE, APP_MISSING, AUTH, LAYOUT, MAC, ...: not one of our cards */
			tap_refuse_medium(l, t, MSG_CARD_UNKNOWN, rc);
		return;
	}
	proto_list_key(l->cfg->sector, rd.id, sizeof(rd.id), t->key);
	t->have_key = true;
	t->card_read.value_present = rd.has_value != 0;
	t->card_read.value = rd.value;
	memset(&rd, 0, sizeof(rd)); /* the real UID: diversification only, never kept */
	tap_decide(l, t);
	cardlib_card_close(t->card);
	t->card = NULL;
}

/* 1 when the target was a citypass phone (decided or refused), 0 when it is not one. */
static int tap_phone(struct controller_reader_loop *l, struct tap *t)
{
	uint8_t id[CARDLIB_TOKEN_ID_LEN];
	t->cred = CONTROLLER_CRED_PHONE_NFC;
	int rc = cardlib_phone_read(l->reader, l->cfg->sector, l->gate_id, l->issuers, id, NULL);
	if (rc == CARDLIB_ERR_NOT_CITYPASS)
		return 0;
	if (rc != 0) {
		if (tap_error_is_transport(rc))
			tap_read_again(l, t, rc);
		else
			tap_refuse_credential(l, t, rc);
		cardlib_reader_release(l->reader);
		return 1;
	}
	proto_list_key(l->cfg->sector, id, sizeof(id), t->key);
	t->have_key = true;
	tap_decide(l, t);
	/* released once the gate is told: the deselect's round trip is no part of the tap */
	cardlib_reader_release(l->reader);
	return 1;
}

static void tap_target(struct controller_reader_loop *l, const struct cardlib_target_info *info,
                       int64_t t0)
{
	struct tap t;
	memset(&t, 0, sizeof(t));
	t.t0_ms = t0;
	t.cred = CONTROLLER_CRED_CARD;
	pthread_mutex_lock(&l->decide_lock);
	if (!(info->sak & 0x20)) {
		/* MIFARE Classic, Ultralight, UID-only tags: a UID is not a credential */
		cardlib_reader_release(l->reader);
		tap_refuse_medium(l, &t, MSG_CARD_UNKNOWN, CARDLIB_ERR_NOT_DESFIRE);
	} else {
		const uint8_t *hist;
		size_t hist_len;
		ats_historical(info, &hist, &hist_len);
		bool desfire_ats = hist_len == 1 && hist[0] == 0x80;
		if (desfire_ats || !tap_phone(l, &t))
			tap_card(l, &t, info);
	}
	pthread_mutex_unlock(&l->decide_lock);
}

/* --- the reader ------------------------------------------------------------------------------ */

/* Sleep up to ms, in slices, while no stop or reload is asked for. A loop that waits for
 * an unplugged reader is alive: it feeds systemd's watchdog as it waits. */
static void nap(struct controller_reader_loop *l, int64_t ms)
{
	while (ms > 0 && !*l->stop && !*l->reload) {
		int64_t slice = ms < 200 ? ms : 200;
		service_watchdog_feed();
		struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

static void reader_lost(struct controller_reader_loop *l, const char *what, int rc)
{
	if (!l->reader_failed_logged)
		controller_log(LOG_ERR,
		               "reader %s: %s (%s): out of service, opening it again "
		               "every %d ms at most",
		               l->cfg->reader, what, cardlib_strerror(rc), REOPEN_MAX_MS);
	l->reader_failed_logged = true;
	if (l->reader) {
		busy(l, BUSY_OPEN_LIMIT_MS); /* closing talks to the chip (InRelease, PowerDown) */
		cardlib_reader_free(l->reader);
		idle(l);
		l->reader = NULL;
	}
	l->waiting_removal = false;
	panel_reader(&l->panel, false);
	l->reopen_at_ms = reader_mono_ms() + l->reopen_delay_ms;
	l->reopen_delay_ms *= 2;
	if (l->reopen_delay_ms > REOPEN_MAX_MS)
		l->reopen_delay_ms = REOPEN_MAX_MS;
}

static bool reader_open(struct controller_reader_loop *l)
{
	int64_t now = reader_mono_ms();
	if (now < l->reopen_at_ms) {
		nap(l, l->reopen_at_ms - now);
		return false;
	}
	busy(l, BUSY_OPEN_LIMIT_MS);
	int rc = presence_open(&l->reader, l->cfg->reader, l->p.clock);
	idle(l);
	if (rc != 0) {
		l->reader = NULL;
		reader_lost(l, "cannot open it", rc);
		return false;
	}
	if (l->reader_failed_logged)
		controller_log(LOG_NOTICE, "reader %s: open again: back in service",
		               l->cfg->reader);
	l->reader_failed_logged = false;
	/* the delay goes back to its minimum only once the reader has answered a poll */
	return true;
}

static bool same_target(const struct controller_reader_loop *l,
                        const struct cardlib_target_info *info)
{
	bool random_id = info->uid_len == 4 && info->uid[0] == 0x08;
	if (random_id)
		return true; /* cannot tell: wait for an empty field */
	return info->uid_len == l->last_uid_len &&
	       memcmp(info->uid, l->last_uid, info->uid_len) == 0;
}

static void reader_turn(struct controller_reader_loop *l)
{
	if (!l->reader && !reader_open(l))
		return;
	struct cardlib_target_info info;
	memset(&info, 0, sizeof(info));
	int rc;
	if (l->waiting_removal) {
		/* a card decided stays on the reader: it is decided once, so look (select) until
		 * the field is empty rather than wait for a target that is already there */
		busy(l, BUSY_WAIT_LIMIT_MS);
		rc = cardlib_reader_select(l->reader, &info);
	} else {
		busy(l, BUSY_WAIT_LIMIT_MS);
		rc = cardlib_reader_wait(l->reader, &info, WAIT_MS);
	}
	idle(l);
	const int64_t t0 = reader_mono_ms();
	if (rc < 0) {
		reader_lost(l, "polling failed", rc);
		return;
	}
	l->reopen_delay_ms = REOPEN_MIN_MS; /* it answered */
	panel_reader(&l->panel, true);
	if (rc == 0) {
		l->waiting_removal = false;
		pthread_mutex_lock(&l->decide_lock);
		tap_housekeeping(l);
		pthread_mutex_unlock(&l->decide_lock);
		return;
	}
	if (l->waiting_removal && same_target(l, &info)) {
		cardlib_reader_release(l->reader);
		nap(l, REMOVAL_POLL_MS);
		return;
	}
	l->waiting_removal = true;
	l->last_uid_len = info.uid_len;
	memcpy(l->last_uid, info.uid, info.uid_len);
	busy(l, BUSY_TAP_LIMIT_MS);
	tap_target(l, &info, t0);
	idle(l);
	memset(&info, 0, sizeof(info));
}

void controller_reader_loop_run(struct controller_reader_loop *l, volatile sig_atomic_t *stop,
                                volatile sig_atomic_t *reload)
{
	l->stop = stop;
	l->reload = reload;
	panel_idle(&l->panel);
	if (qr_scanner_start(l) != 0)
		controller_log(LOG_ERR, "cannot start the scanner thread: QR codes are not read");
	while (!*stop && !*reload) {
		/* systemd's watchdog is fed by this loop only: a reader thread stuck where its own
		 * watchdog (qr_scanner.c) cannot free it gets the daemon restarted */
		service_watchdog_feed();
		reader_turn(l);
	}
	qr_scanner_join(l);
	panel_off(&l->panel);
}

int controller_reader_loop_open(struct controller_reader_loop **out,
                                const struct controller_reader_loop_params *params, char *err,
                                size_t errlen)
{
	struct controller_reader_loop *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->p = *params;
	l->cfg = params->cfg;
	l->qr_fd = -1;
	l->reopen_delay_ms = REOPEN_MIN_MS;
	l->qr_reopen_delay_ms = REOPEN_MIN_MS;
	pthread_mutex_init(&l->decide_lock, NULL);
	const struct controller_config *cfg = l->cfg;
	panel_init(&l->panel, params->gate, cfg->open_ms, cfg->qr_scanner[0] != '\0');
	l->panel.changed = params->devices_changed;
	l->panel.ctx = params->ctx;
	uint8_t h[PROTO_HASH_LEN];
	proto_sha256((const uint8_t *)cfg->device_id, strlen(cfg->device_id), h);
	memcpy(l->gate_id, h, sizeof(l->gate_id));

	/* before any thread starts: a zone is read under a temporary TZ (proto/calendar.h) */
	const char *period_tz = cfg->period_tz[0] ? cfg->period_tz : cfg->tz;
	if (proto_zone_load(&l->site_zone, cfg->tz) != 0 ||
	    proto_zone_load(&l->period_zone, period_tz) != 0) {
		snprintf(err, errlen, "tz %s / period-tz %s: not a time zone of this system",
		         cfg->tz, period_tz);
		goto fail;
	}
	/* one keyring per thread: nothing of mbedTLS is shared across threads */
	for (int i = 0; i < 2; i++) {
		struct proto_key *issuer = NULL;
		struct proto_keyring **ring = i ? &l->qr_issuers : &l->issuers;
		int rc = proto_key_load(&issuer, cfg->issuer_key_path);
		if (rc == 0 && !(*ring = proto_keyring_new()))
			rc = PROTO_ERR_NOMEM;
		if (rc == 0)
			rc = proto_keyring_add(*ring, issuer);
		proto_key_free(issuer);
		if (rc != 0) {
			snprintf(err, errlen, "issuer-public-key %s: %s", cfg->issuer_key_path,
			         proto_strerror(rc));
			goto fail;
		}
	}
	/* no WAL checkpoint inside a tap's commit: housekeeping does them on an empty field */
	if (controller_journal_defer_checkpoints(params->journal) != 0) {
		snprintf(err, errlen, "journal: cannot defer its checkpoints");
		goto fail;
	}
	if (cardlib_qr_replay_cache_new(&l->qr_cache, QR_CACHE_ENTRIES) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* The reader and the scanner are opened by their threads, and again whenever they
	 * fail: a gate whose reader is unplugged at boot starts, says "Hors service", syncs
	 * and reports it (docs/controller.md, "Devices come and go"). */
	*out = l;
	return 0;
fail:
	controller_reader_loop_close(l);
	return -1;
}

void controller_reader_loop_devices(struct controller_reader_loop *l, bool *reader_up,
                                    bool *scanner_configured, bool *scanner_up)
{
	panel_devices(&l->panel, reader_up, scanner_configured, scanner_up);
}

void controller_reader_loop_close(struct controller_reader_loop *l)
{
	if (!l)
		return;
	cardlib_reader_free(l->reader);
	if (l->qr_fd >= 0)
		close(l->qr_fd);
	cardlib_qr_replay_cache_free(l->qr_cache);
	proto_zone_free(l->site_zone);
	proto_zone_free(l->period_zone);
	proto_keyring_free(l->issuers);
	proto_keyring_free(l->qr_issuers);
	panel_destroy(&l->panel);
	pthread_mutex_destroy(&l->decide_lock);
	free(l);
}
