/*
 * controller/src/reader_loop.c — the reader thread (see controller/reader_loop.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "controller/clock.h"
#include "controller/engine.h"
#include "controller/error.h"
#include "controller/log.h"
#include "controller/reader_loop.h"
#include "controller/timekeeper.h"
#include "proto/list.h"
#include "proto/sign.h"

#define IDLE_POLL_MS       40   /* pause between selects on an empty field */
#define REMOVAL_POLL_MS    100  /* pause between selects while a decided card stays */
#define REOPEN_MS          1000 /* reader lost: try again this often */
#define PURGE_EVERY_S      3600
#define QR_CACHE_ENTRIES   1024
#define MSG_CARD_UNKNOWN   "Carte non reconnue"
#define MSG_PASS_INVALID   "Pass non valide"
#define MSG_PASS_EXPIRED   "Pass expiré – renouvelez-le"
#define MSG_QR_REPLAY      "Code QR déjà utilisé"
#define MSG_QR_WINDOW      "Code QR périmé – actualisez-le"
#define MSG_READ_AGAIN     "Lecture incomplète – représentez votre pass"
#define MSG_OUT_OF_SERVICE "Service indisponible"
#define MSG_IDLE           "Présentez votre pass"

struct controller_reader_loop {
	struct controller_reader_loop_params p;
	const struct controller_config *cfg;
	struct cardlib_reader *reader;
	int64_t reopen_at_ms;
	int qr_fd;
	char qr_buf[CARDLIB_QR_LINE_MAX + 8];
	size_t qr_len;
	bool qr_overlong;
	struct cardlib_token_keyring *issuers;
	struct cardlib_qr_replay_cache *qr_cache;
	uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN];

	/* the target decided last, until the field is seen empty */
	bool waiting_removal;
	uint8_t last_uid[CARDLIB_UID_MAX];
	size_t last_uid_len;

	int64_t relay_close_at_ms; /* 0: nothing to close */
	uint64_t purged_version;
	int64_t purged_at;

	/* A card whose CommitTransaction got no answer (pulled away at that instant): it may
	 * or may not have taken the entry. If it comes back soon, its value tells which
	 * (docs/controller.md, "Entries on the card"). */
	struct {
		bool active;
		uint8_t key[PROTO_LIST_KEY_LEN];
		int32_t value_before;
		int64_t at_ms;
	} unsure_commit;
};

/* How long an unanswered commit is remembered for the same card's return. */
#define UNSURE_COMMIT_MS (10 * 60 * 1000)

/* What one tap brought, whatever the medium. */
struct tap {
	enum controller_credential cred;
	int64_t t0_ms;
	bool have_key;
	uint8_t key[PROTO_LIST_KEY_LEN];
	struct cardlib_card *card; /* cards: the open session (for a debit) */
	struct controller_card_read card_read;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *cred_name(enum controller_credential c)
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

/* --- the presence poll's selection, handed to cardlib ------------------------------------ */

/*
 * The loop's presence poll selects the target; cardlib's card session begins with a select
 * of its own. Rather than deselect and select again (two more reader commands per tap,
 * against DESIGN.md s.9's budget), the libnfc reader is wrapped: after the poll found a
 * target, the next select returns it as it is, still selected in the chip (HIL-NOTES:
 * libnfc leaves the last target selected). Everything else goes through unchanged.
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

/* --- gate ----------------------------------------------------------------------------- */

static void gate_show(struct controller_reader_loop *l, bool open, enum controller_led led,
                      const char *display)
{
	struct controller_gate_state st = {open, led, display};
	(void)controller_gate_set(l->p.gate, &st);
	l->relay_close_at_ms = mono_ms() + l->cfg->open_ms;
}

static void gate_tick(struct controller_reader_loop *l)
{
	if (l->relay_close_at_ms && mono_ms() >= l->relay_close_at_ms) {
		struct controller_gate_state st = {false, CONTROLLER_LED_OFF, MSG_IDLE};
		(void)controller_gate_set(l->p.gate, &st);
		l->relay_close_at_ms = 0;
	}
}

/* --- journal, then gate ----------------------------------------------------------------- */

static void event_of(struct controller_reader_loop *l, const struct tap *t,
                     const struct controller_pass *pass, const struct controller_decision *d,
                     int64_t now, struct controller_event *ev)
{
	const struct controller_config *cfg = l->cfg;
	memset(ev, 0, sizeof(*ev));
	ev->at = now;
	ev->site = cfg->site;
	ev->gate = cfg->gate;
	ev->sector = cfg->sector;
	ev->product = pass && pass->found ? pass->profile.product : 0;
	ev->granted = d->grant;
	ev->reason = (uint8_t)d->reason;
	if (t->have_key)
		memcpy(ev->key, t->key, sizeof(ev->key));
	if (d->grant && t->have_key &&
	    (d->action == CONTROLLER_ACTION_COUNT_ENTRY ||
	     d->action == CONTROLLER_ACTION_COUNT_QUOTA)) {
		ev->consumes = true;
		ev->household = pass->entry.household;
		ev->period = d->period;
		ev->period_number = d->period_number;
		ev->count = 1;
	}
	ev->remember_grant = d->grant && t->have_key && cfg->policy.antipassback_minutes > 0;
}

/* Journal a decision (durable when it returns 0). A failure refuses the tap on the gate:
 * what is not journalled is not acted upon (DESIGN.md s.5, fail closed). */
static int journal_decision(struct controller_reader_loop *l, const struct controller_event *ev,
                            struct controller_journal_seq *seq)
{
	seq->stat = seq->consumption = 0;
	int rc = controller_journal_append(l->p.journal, ev, seq);
	if (rc != 0) {
		controller_log(LOG_ERR, "journal append failed (%s): tap refused",
		               controller_strerror(rc));
		gate_show(l, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
	}
	return rc;
}

/* Carry out a journalled decision: the gate, the log line, the uploader's kick. */
static void act(struct controller_reader_loop *l, struct tap *t,
                const struct controller_decision *d, const struct controller_event *ev,
                const struct controller_journal_seq *seq)
{
	const struct controller_config *cfg = l->cfg;
	/* A grant on a stale list says so on the display, so staff see that the gate has not
	 * heard from the server (docs/controller.md, stale policy). */
	char shown[sizeof(d->message) + 32];
	snprintf(shown, sizeof(shown), "%s%s", d->message,
	         d->grant && d->on_stale_list ? " (liste non à jour)" : "");
	gate_show(l, d->grant, d->grant ? CONTROLLER_LED_GREEN : CONTROLLER_LED_RED, shown);
	int64_t took = mono_ms() - t->t0_ms;
	if (cfg->log_verbose)
		controller_log(LOG_INFO,
		               "tap %s %s reason=%s product=%u seq=%" PRIu64 " tap-to-gate=%" PRId64
		               " ms%s display=\"%s\"",
		               cred_name(t->cred), d->grant ? "granted" : "refused",
		               controller_reason_name(d->reason), (unsigned)ev->product, seq->stat,
		               took, d->on_stale_list ? " (stale list)" : "", shown);
	if (l->p.journal_written)
		l->p.journal_written(l->p.ctx);
}

static void journal_and_act(struct controller_reader_loop *l, struct tap *t,
                            const struct controller_pass *pass, const struct controller_decision *d,
                            int64_t now)
{
	struct controller_event ev;
	struct controller_journal_seq seq;
	event_of(l, t, pass, d, now, &ev);
	if (journal_decision(l, &ev, &seq) == 0)
		act(l, t, d, &ev, &seq);
}

/* A refusal before any list lookup: the medium itself was refused. */
static void refuse_medium(struct controller_reader_loop *l, struct tap *t, const char *message,
                          int cause)
{
	struct controller_decision d;
	memset(&d, 0, sizeof(d));
	d.grant = false;
	d.reason = CONTROLLER_REASON_UNKNOWN_PASS;
	d.remaining = -1;
	snprintf(d.message, sizeof(d.message), "%s", message);
	if (l->cfg->log_verbose)
		controller_log(LOG_INFO, "tap %s: %s (%s)", cred_name(t->cred),
		               cardlib_strerror(cause), message);
	t->have_key = false;
	journal_and_act(l, t, NULL, &d, controller_timekeeper_now(l->p.clock));
}

/* A read that did not complete is not a decision: nothing journalled, ask again. */
static void read_again(struct controller_reader_loop *l, struct tap *t, int cause)
{
	controller_log(LOG_NOTICE, "tap %s: read failed (%s): not decided", cred_name(t->cred),
	               cardlib_strerror(cause));
	gate_show(l, false, CONTROLLER_LED_AMBER, MSG_READ_AGAIN);
}

/* --- deciding ----------------------------------------------------------------------------- */

static void maybe_purge(struct controller_reader_loop *l, uint64_t version, int64_t issued_at,
                        int64_t now)
{
	if (version == l->purged_version && now - l->purged_at < PURGE_EVERY_S)
		return;
	/* Retention deletes identifying rows even unacknowledged: it is judged by the trusted
	 * floor, never the wall clock, so a clock jumping forward deletes nothing early
	 * (issue 10). The floor is kept for the next start at the same time. */
	int64_t floor = controller_timekeeper_floor(l->p.clock);
	int rc = controller_journal_purge(l->p.journal, floor, issued_at, l->cfg->retention_days,
	                                  l->cfg->policy.antipassback_minutes);
	if (rc)
		controller_log(LOG_WARNING, "journal purge failed: %s", controller_strerror(rc));
	if (l->p.clock && (rc = controller_journal_set_time_floor(l->p.journal, floor)) != 0)
		controller_log(LOG_WARNING, "journal: keeping the time floor failed: %s",
		               controller_strerror(rc));
	l->purged_version = version;
	l->purged_at = now;
}

/* Purge on an empty field, so that a new list version's (or the hour's) purge, a DELETE
 * with its fsync, is done while nobody waits; decide_tap keeps its own call for a tap that
 * comes before any idle moment, and finds the work already done otherwise. */
static void housekeeping(struct controller_reader_loop *l)
{
	int64_t issued_at = 0;
	uint64_t version = 0;
	pthread_rwlock_rdlock(l->p.store_lock);
	struct proto_list *list = controller_list_store_list(l->p.store);
	if (list) {
		issued_at = proto_list_header(list)->issued_at;
		version = controller_list_store_version(l->p.store);
	}
	pthread_rwlock_unlock(l->p.store_lock);
	maybe_purge(l, version, issued_at, controller_timekeeper_now(l->p.clock));
}

static bool card_error_is_transport(int rc);

/*
 * Entries on the card (issue 10): nothing irreversible happens to the card before the
 * decision is durable, and a tap refused for a local fault costs the citizen nothing.
 *   Debit (the card holds it uncommitted) → journal, pending → CommitTransaction → settle
 *   → gate.
 * Journal fails (full disk…): AbortTransaction, refuse — the card keeps the entry (it also
 * drops an uncommitted debit by itself when it leaves the field). Commit fails: the row
 * is deleted (never uploaded) and the citizen asked to tap again; without the commit's
 * answer the card may have taken the entry, so its return within UNSURE_COMMIT_MS with one
 * entry less is admitted without a second debit, journalled then.
 */
static void debit_and_act(struct controller_reader_loop *l, struct tap *t,
                          const struct controller_pass *pass, struct controller_decision *d,
                          int64_t now)
{
	struct controller_event ev;
	struct controller_journal_seq seq;
	int32_t remaining = 0;
	int rc;

	if (l->unsure_commit.active && mono_ms() - l->unsure_commit.at_ms > UNSURE_COMMIT_MS)
		l->unsure_commit.active = false;
	if (l->unsure_commit.active && t->have_key &&
	    memcmp(l->unsure_commit.key, t->key, sizeof(t->key)) == 0) {
		l->unsure_commit.active = false;
		if (t->card_read.value == l->unsure_commit.value_before - 1) {
			/* the commit did happen: this entry is paid, let the citizen in */
			controller_log(LOG_NOTICE, "tap card: the unanswered commit had taken the "
			                           "entry: admitted without a second debit");
			event_of(l, t, pass, d, now, &ev);
			if (journal_decision(l, &ev, &seq) == 0)
				act(l, t, d, &ev, &seq);
			return;
		}
	}
	rc = t->card ? cardlib_card_debit_begin(t->card, &remaining) : CARDLIB_ERR_LAYOUT;
	if (rc == CARDLIB_ERR_VALUE_EXHAUSTED) {
		d->grant = false;
		d->reason = CONTROLLER_REASON_ENTRIES_EXHAUSTED;
		snprintf(d->message, sizeof(d->message), "Plus d'entrée sur la carte");
		journal_and_act(l, t, pass, d, now);
		return;
	}
	if (rc != 0) { /* no Debit answer: nothing is committed, the card drops it */
		read_again(l, t, rc);
		return;
	}
	event_of(l, t, pass, d, now, &ev);
	ev.pending = true;
	if (journal_decision(l, &ev, &seq) != 0) {
		(void)cardlib_card_debit_abort(t->card);
		return;
	}
	rc = cardlib_card_debit_commit(t->card);
	if (rc != 0) {
		(void)cardlib_card_debit_abort(t->card);
		int src = controller_journal_settle(l->p.journal, seq.stat, &ev, false);
		if (src != 0) /* left pending: taken as done at the next start (counted once) */
			controller_log(LOG_ERR, "journal: cannot withdraw decision %" PRIu64 ": %s",
			               seq.stat, controller_strerror(src));
		l->unsure_commit.active = card_error_is_transport(rc);
		memcpy(l->unsure_commit.key, t->key, sizeof(t->key));
		l->unsure_commit.value_before = t->card_read.value;
		l->unsure_commit.at_ms = mono_ms();
		read_again(l, t, rc);
		return;
	}
	rc = controller_journal_settle(l->p.journal, seq.stat, &ev, true);
	if (rc != 0) /* the row stays pending, taken as done at the next start: still counted */
		controller_log(LOG_ERR, "journal: cannot settle decision %" PRIu64 ": %s", seq.stat,
		               controller_strerror(rc));
	(void)remaining;
	act(l, t, d, &ev, &seq);
}

static void decide_tap(struct controller_reader_loop *l, struct tap *t)
{
	const struct controller_config *cfg = l->cfg;
	const int64_t now = controller_timekeeper_now(l->p.clock);
	struct controller_engine_input in;
	memset(&in, 0, sizeof(in));
	in.credential = t->cred;
	in.card = t->card_read;
	in.site = &cfg->policy;
	in.now = now;

	/* The list under the read lock: the entry is copied out, the lock held briefly. */
	int64_t issued_at = 0;
	uint64_t version = 0;
	pthread_rwlock_rdlock(l->p.store_lock);
	struct proto_list *list = controller_list_store_list(l->p.store);
	in.list_state = controller_list_state_at(list, &cfg->stale, now);
	if (list) {
		issued_at = proto_list_header(list)->issued_at;
		version = controller_list_store_version(l->p.store);
		if (controller_list_store_lookup(l->p.store, t->key, &in.pass) != 0)
			in.pass.found = false;
	}
	pthread_rwlock_unlock(l->p.store_lock);

	/* The process's zone is the site's (set once at start-up, before the sync thread:
	 * no setenv per tap racing with the other thread's getenv). */
	if (controller_civil_from_utc(now, NULL, &in.civil) != 0) {
		controller_log(LOG_ERR, "time zone %s: cannot convert the clock: tap refused",
		               cfg->tz);
		gate_show(l, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
		return;
	}
	maybe_purge(l, version, issued_at, now);
	if (in.pass.found) {
		int rc = controller_journal_counters(l->p.journal, &in.pass, issued_at,
		                                     in.civil.day, &in.local);
		if (rc != 0) {
			controller_log(LOG_ERR, "journal counters failed (%s): tap refused",
			               controller_strerror(rc));
			gate_show(l, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
			return;
		}
	}

	struct controller_decision d;
	controller_decide(&in, &d);

	if (d.grant && d.action == CONTROLLER_ACTION_DEBIT_CARD) {
		debit_and_act(l, t, &in.pass, &d, now);
		return;
	}
	journal_and_act(l, t, &in.pass, &d, now);
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

static bool card_error_is_transport(int rc)
{
	return rc == CARDLIB_ERR_TIMEOUT || rc == CARDLIB_ERR_IO || rc == CARDLIB_ERR_NO_CARD ||
	       rc == CARDLIB_ERR_TRUNCATED || rc == CARDLIB_ERR_OVERSIZED ||
	       rc == CARDLIB_ERR_NOMEM || rc == CARDLIB_ERR_CRYPTO;
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
		if (card_error_is_transport(rc))
			read_again(l, t, rc);
		else /* NOT_DESFIRE, APP_MISSING, AUTH, LAYOUT, MAC, ...: not one of our cards */
			refuse_medium(l, t, MSG_CARD_UNKNOWN, rc);
		return;
	}
	proto_list_key(l->cfg->sector, rd.id, sizeof(rd.id), t->key);
	t->have_key = true;
	t->card_read.value_present = rd.has_value != 0;
	t->card_read.value = rd.value;
	memset(&rd, 0, sizeof(rd)); /* the real UID: diversification only, never kept */
	decide_tap(l, t);
	cardlib_card_close(t->card);
	t->card = NULL;
}

static void refuse_credential(struct controller_reader_loop *l, struct tap *t, int rc)
{
	switch (rc) {
	case CARDLIB_ERR_CRED_EXPIRED:
		refuse_medium(l, t, MSG_PASS_EXPIRED, rc);
		break;
	case CARDLIB_ERR_QR_REPLAY:
		refuse_medium(l, t, MSG_QR_REPLAY, rc);
		break;
	case CARDLIB_ERR_QR_WINDOW:
		refuse_medium(l, t, MSG_QR_WINDOW, rc);
		break;
	default: /* CRED_FORMAT, CRED_SIGNATURE, CRED_SECTOR, PROOF, NOT_CITYPASS */
		refuse_medium(l, t, MSG_PASS_INVALID, rc);
		break;
	}
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
		if (card_error_is_transport(rc))
			read_again(l, t, rc);
		else
			refuse_credential(l, t, rc);
		cardlib_reader_release(l->reader);
		return 1;
	}
	cardlib_reader_release(l->reader);
	proto_list_key(l->cfg->sector, id, sizeof(id), t->key);
	t->have_key = true;
	decide_tap(l, t);
	return 1;
}

static void tap_target(struct controller_reader_loop *l, const struct cardlib_target_info *info,
                       int64_t t0)
{
	struct tap t;
	memset(&t, 0, sizeof(t));
	t.t0_ms = t0;
	t.cred = CONTROLLER_CRED_CARD;
	if (!(info->sak & 0x20)) {
		/* MIFARE Classic, Ultralight, UID-only tags: a UID is not a credential */
		cardlib_reader_release(l->reader);
		refuse_medium(l, &t, MSG_CARD_UNKNOWN, CARDLIB_ERR_NOT_DESFIRE);
		return;
	}
	const uint8_t *hist;
	size_t hist_len;
	ats_historical(info, &hist, &hist_len);
	bool desfire_ats = hist_len == 1 && hist[0] == 0x80;
	if (!desfire_ats && tap_phone(l, &t))
		return;
	tap_card(l, &t, info);
}

/* --- QR ------------------------------------------------------------------------------------- */

static void qr_line(struct controller_reader_loop *l, const char *line, size_t len)
{
	struct tap t;
	memset(&t, 0, sizeof(t));
	t.t0_ms = mono_ms();
	t.cred = CONTROLLER_CRED_PHONE_QR;
	if (len == 0)
		return;
	uint8_t id[CARDLIB_TOKEN_ID_LEN];
	int rc = cardlib_qr_verify(line, len, l->issuers, l->cfg->sector,
	                           controller_timekeeper_now(l->p.clock), l->qr_cache, id, NULL);
	if (rc == CARDLIB_ERR_QR_FORMAT) {
		/* not a citypass code (any barcode held to the scanner): no decision */
		controller_log(LOG_NOTICE, "QR scanner: not a citypass code (%zu characters)", len);
		gate_show(l, false, CONTROLLER_LED_RED, "Code QR non reconnu");
		return;
	}
	if (rc != 0) {
		refuse_credential(l, &t, rc);
		return;
	}
	proto_list_key(l->cfg->sector, id, sizeof(id), t.key);
	t.have_key = true;
	decide_tap(l, &t);
}

static void qr_read(struct controller_reader_loop *l)
{
	for (;;) {
		char buf[256];
		ssize_t n = read(l->qr_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n') {
				if (!l->qr_overlong) {
					size_t len = l->qr_len;
					while (len > 0 && l->qr_buf[len - 1] == '\r')
						len--;
					l->qr_buf[len] = '\0';
					qr_line(l, l->qr_buf, len);
				} else {
					controller_log(LOG_NOTICE,
					               "QR scanner: line too long, ignored");
				}
				l->qr_len = 0;
				l->qr_overlong = false;
			} else if (l->qr_len < sizeof(l->qr_buf) - 1) {
				l->qr_buf[l->qr_len++] = c;
			} else {
				l->qr_overlong = true;
			}
		}
	}
}

static int qr_open(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct termios tio;
	if (tcgetattr(fd, &tio) == 0) { /* a serial line: raw, the scanner's lines as sent */
		cfmakeraw(&tio);
		tio.c_cflag |= CLOCAL | CREAD;
		(void)tcsetattr(fd, TCSANOW, &tio);
	}
	return fd;
}

/* --- the loop ----------------------------------------------------------------------------------
 */

static void wait_input(struct controller_reader_loop *l, int timeout_ms)
{
	if (l->qr_fd < 0) {
		struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		return;
	}
	struct pollfd p = {.fd = l->qr_fd, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) > 0) {
		if (p.revents & POLLIN)
			qr_read(l);
		else if (p.revents & (POLLHUP | POLLERR)) { /* pty closed by the other side */
			struct timespec ts = {0, (long)timeout_ms * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
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

static void poll_reader(struct controller_reader_loop *l)
{
	int64_t now = mono_ms();
	if (!l->reader) {
		if (now < l->reopen_at_ms) {
			wait_input(l, IDLE_POLL_MS);
			return;
		}
		if (presence_open(&l->reader, l->cfg->reader, l->p.clock) != 0) {
			l->reader = NULL;
			l->reopen_at_ms = now + REOPEN_MS;
			return;
		}
		controller_log(LOG_NOTICE, "reader %s: open again", l->cfg->reader);
	}
	struct cardlib_target_info info;
	memset(&info, 0, sizeof(info));
	int rc = cardlib_reader_select(l->reader, &info);
	if (rc < 0) {
		controller_log(LOG_ERR, "reader %s: %s; re-opening", l->cfg->reader,
		               cardlib_strerror(rc));
		cardlib_reader_free(l->reader);
		l->reader = NULL;
		l->reopen_at_ms = now + REOPEN_MS;
		return;
	}
	if (rc == 0) {
		l->waiting_removal = false;
		housekeeping(l);
		wait_input(l, IDLE_POLL_MS);
		return;
	}
	if (l->waiting_removal && same_target(l, &info)) {
		cardlib_reader_release(l->reader);
		wait_input(l, REMOVAL_POLL_MS);
		return;
	}
	l->waiting_removal = true;
	l->last_uid_len = info.uid_len;
	memcpy(l->last_uid, info.uid, info.uid_len);
	tap_target(l, &info, now);
	memset(&info, 0, sizeof(info));
}

void controller_reader_loop_run(struct controller_reader_loop *l, volatile sig_atomic_t *stop,
                                volatile sig_atomic_t *reload)
{
	struct controller_gate_state st = {false, CONTROLLER_LED_OFF, MSG_IDLE};
	(void)controller_gate_set(l->p.gate, &st);
	while (!*stop && !*reload) {
		gate_tick(l);
		poll_reader(l);
	}
	st.display = NULL;
	(void)controller_gate_set(l->p.gate, &st);
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
	const struct controller_config *cfg = l->cfg;
	uint8_t h[PROTO_HASH_LEN];
	proto_sha256((const uint8_t *)cfg->device_id, strlen(cfg->device_id), h);
	memcpy(l->gate_id, h, sizeof(l->gate_id));

	struct cardlib_token_key *issuer = NULL;
	int rc = cardlib_token_key_load(&issuer, cfg->issuer_key_path);
	if (rc == 0)
		rc = cardlib_token_keyring_new(&l->issuers);
	if (rc == 0)
		rc = cardlib_token_keyring_add(l->issuers, issuer);
	cardlib_token_key_free(issuer);
	if (rc != 0) {
		snprintf(err, errlen, "issuer-public-key %s: %s", cfg->issuer_key_path,
		         cardlib_strerror(rc));
		goto fail;
	}
	if (cardlib_qr_replay_cache_new(&l->qr_cache, QR_CACHE_ENTRIES) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (cfg->qr_scanner[0]) {
		l->qr_fd = qr_open(cfg->qr_scanner);
		if (l->qr_fd < 0) {
			snprintf(err, errlen, "qr-scanner %s: cannot open: %s", cfg->qr_scanner,
			         strerror(errno));
			goto fail;
		}
	}
	rc = presence_open(&l->reader, cfg->reader, l->p.clock);
	if (rc != 0) {
		snprintf(err, errlen, "reader '%s': cannot open it through libnfc (%s)",
		         cfg->reader, cardlib_strerror(rc));
		l->reader = NULL;
		goto fail;
	}
	*out = l;
	return 0;
fail:
	controller_reader_loop_close(l);
	return -1;
}

void controller_reader_loop_close(struct controller_reader_loop *l)
{
	if (!l)
		return;
	cardlib_reader_free(l->reader);
	if (l->qr_fd >= 0)
		close(l->qr_fd);
	cardlib_qr_replay_cache_free(l->qr_cache);
	cardlib_token_keyring_free(l->issuers);
	free(l);
}
