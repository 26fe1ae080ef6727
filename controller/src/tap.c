/*
 * controller/src/tap.c — one tap decided, whatever brought it (controller/tap.h): a card,
 * a phone over NFC or a QR code; the list under the store's read lock, the journal's
 * counters, the pure engine, then the card debit (entries on the card) or the journal
 * append, then the gate (docs/controller.md, "One tap, end to end").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/platform_util.h>

#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "cardlib/token.h"
#include "controller/error.h"
#include "controller/log.h"
#include "controller/metrics.h"
#include "controller/tap.h"
#include "proto/calendar.h"
#include "proto/list.h"

#define PURGE_EVERY_S 3600
/* How long an unanswered commit is remembered for the same card's return. */
#define UNSURE_COMMIT_MS   (10 * 60 * 1000)
#define QR_CACHE_ENTRIES   1024
#define MSG_READ_AGAIN     "Lecture incomplète – représentez votre pass"
#define MSG_OUT_OF_SERVICE "Service indisponible"
#define MSG_CARD_UNKNOWN   "Carte non reconnue"
#define MSG_PASS_INVALID   "Pass non valide"
#define MSG_PASS_EXPIRED   "Pass expiré – renouvelez-le"
#define MSG_QR_NOT_OURS    "Code QR non reconnu"
#define MSG_QR_REPLAY      "Code QR déjà utilisé"
#define MSG_QR_WINDOW      "Code QR périmé – actualisez-le"

struct controller_tap {
	struct controller_tap_params p;
	const struct controller_config *cfg;
	pthread_mutex_t lock;           /* one decision at a time (one journal connection) */
	struct proto_zone *site_zone;   /* opening hours, subscription days */
	struct proto_zone *period_zone; /* quota periods: the deployment's zone */
	struct cardlib_qr_replay_cache *qr_cache; /* controller_tap_qr's thread only */
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

/* What one tap brought, whatever the medium. */
struct one_tap {
	enum controller_credential cred;
	int64_t t0_ms;
	bool have_key;
	uint8_t key[PROTO_LIST_KEY_LEN];
	struct cardlib_card *card; /* cards: the open session (for a debit) */
	struct controller_card_read card_read;
	bool paid; /* a card whose unanswered commit had taken this entry: no second debit */
	/* QR: the code's time step, remembered with the decision (a screenshot cannot be
	 * used again in its window, across a restart) until `qr_expires` */
	bool qr;
	uint32_t qr_step;
	int64_t qr_expires;
	struct controller_tap_result *res;
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

const char *controller_tap_outcome_name(enum controller_tap_outcome outcome)
{
	switch (outcome) {
	case CONTROLLER_TAP_GRANTED:
		return "granted";
	case CONTROLLER_TAP_REFUSED:
		return "refused";
	case CONTROLLER_TAP_READ_AGAIN:
		return "read-again";
	case CONTROLLER_TAP_OUT_OF_SERVICE:
		return "out-of-service";
	default:
		return "none";
	}
}

static void outcome(struct one_tap *t, enum controller_tap_outcome o, int cause)
{
	t->res->outcome = o;
	t->res->cause = cause;
}

/* The gate shows it; a failing backend is logged by the backend and deciding goes on (a
 * gate that cannot report must not stop deciding: controller/gate.h). */
static void gate_show(struct controller_tap *tap, bool open, enum controller_led led,
                      const char *text)
{
	const struct controller_gate_state st = {open, led, text};
	if (tap->p.gate && tap->p.gate->ops && tap->p.gate->ops->set)
		(void)tap->p.gate->ops->set(tap->p.gate->ctx, &st);
}

static void store_rdlock(struct controller_tap *tap)
{
	if (tap->p.store_lock)
		pthread_rwlock_rdlock(tap->p.store_lock);
}

static void store_unlock(struct controller_tap *tap)
{
	if (tap->p.store_lock)
		pthread_rwlock_unlock(tap->p.store_lock);
}

/* --- journal, then gate ----------------------------------------------------------------- */

static void event_of(struct controller_tap *tap, const struct one_tap *t,
                     const struct controller_pass *pass, const struct controller_decision *d,
                     int64_t now, struct controller_event *ev)
{
	const struct controller_config *cfg = tap->cfg;
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
	if (t->qr && t->have_key) {
		ev->qr = true;
		ev->qr_step = t->qr_step;
		ev->qr_expires = t->qr_expires;
	}
}

/* Journal a decision (durable when it returns 0). A failure refuses the tap on the gate:
 * what is not journalled is not acted upon (DESIGN.md s.5, fail closed). */
static int journal_decision(struct controller_tap *tap, struct one_tap *t,
                            const struct controller_event *ev, struct controller_journal_seq *seq)
{
	seq->stat = seq->consumption = 0;
	int rc = controller_journal_append(tap->p.journal, ev, seq);
	if (rc != 0) {
		controller_log(LOG_ERR, "journal append failed (%s): tap refused",
		               controller_journal_strerror(tap->p.journal, rc));
		gate_show(tap, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
		outcome(t, CONTROLLER_TAP_OUT_OF_SERVICE, rc);
	}
	return rc;
}

/* Carry out a journalled decision: the gate, the log line, the uploader's kick. */
static void act(struct controller_tap *tap, struct one_tap *t, const struct controller_decision *d,
                const struct controller_event *ev, const struct controller_journal_seq *seq)
{
	const struct controller_config *cfg = tap->cfg;
	/* A grant on a stale list says so on the display, so staff see that the gate has not
	 * heard from the server (docs/controller.md, stale policy). */
	char shown[sizeof(d->message) + 32];
	snprintf(shown, sizeof(shown), "%s%s", d->message,
	         d->grant && d->on_stale_list ? " (liste non à jour)" : "");
	gate_show(tap, d->grant, d->grant ? CONTROLLER_LED_GREEN : CONTROLLER_LED_RED, shown);
	t->res->outcome = d->grant ? CONTROLLER_TAP_GRANTED : CONTROLLER_TAP_REFUSED;
	t->res->reason = d->reason;
	t->res->seq = seq->stat;
	int64_t took = mono_ms() - t->t0_ms;
	controller_metrics_tap(d->grant ? CONTROLLER_METRIC_GRANTED : CONTROLLER_METRIC_REFUSED,
	                       d->reason, took);
	if (cfg->log_verbose)
		controller_log_tap(LOG_INFO, d->grant ? "granted" : "refused",
		                   controller_reason_name(d->reason),
		                   "tap %s %s reason=%s product=%u seq=%" PRIu64
		                   " tap-to-gate=%" PRId64 " ms%s display=\"%s\"",
		                   cred_name(t->cred), d->grant ? "granted" : "refused",
		                   controller_reason_name(d->reason), (unsigned)ev->product,
		                   seq->stat, took, d->on_stale_list ? " (stale list)" : "", shown);
	if (tap->p.journal_written)
		tap->p.journal_written(tap->p.ctx);
	/* the site's other gates refuse this pass for the window too (DESIGN.md s.4) */
	if (ev->remember_grant && tap->p.granted)
		tap->p.granted(tap->p.ctx, ev->key);
}

static void journal_and_act(struct controller_tap *tap, struct one_tap *t,
                            const struct controller_pass *pass, const struct controller_decision *d,
                            int64_t now)
{
	struct controller_event ev;
	struct controller_journal_seq seq;
	event_of(tap, t, pass, d, now, &ev);
	if (journal_decision(tap, t, &ev, &seq) == 0)
		act(tap, t, d, &ev, &seq);
}

/* A refusal before any list lookup: the medium itself was refused, with its own reason
 * (issue 14: statistics keep the cause). */
static void refuse_medium(struct controller_tap *tap, struct one_tap *t,
                          enum controller_reason reason, const char *message, int cause)
{
	struct controller_decision d;
	memset(&d, 0, sizeof(d));
	d.grant = false;
	d.reason = reason;
	d.remaining = -1;
	snprintf(d.message, sizeof(d.message), "%s", message);
	if (tap->cfg->log_verbose)
		controller_log_tap(LOG_INFO, "refused", controller_reason_name(d.reason),
		                   "tap %s: %s (%s)", cred_name(t->cred), cardlib_strerror(cause),
		                   message);
	t->have_key = false;
	journal_and_act(tap, t, NULL, &d, controller_timekeeper_now(tap->p.clock));
	if (t->res->outcome == CONTROLLER_TAP_REFUSED)
		t->res->cause = cause;
}

/* A read that did not complete is not a decision: nothing journalled, ask again. */
static void read_again(struct controller_tap *tap, struct one_tap *t, int cause)
{
	controller_metrics_tap(CONTROLLER_METRIC_NOT_DECIDED, CONTROLLER_REASON_OK, 0);
	controller_log_tap(LOG_NOTICE, "not_decided", NULL, "tap %s: read failed (%s): not decided",
	                   cred_name(t->cred), cardlib_strerror(cause));
	gate_show(tap, false, CONTROLLER_LED_AMBER, MSG_READ_AGAIN);
	outcome(t, CONTROLLER_TAP_READ_AGAIN, cause);
}

/* cardlib errors that mean the exchange did not complete (not a refusal of the medium). */
static bool error_is_transport(int rc)
{
	return rc == CARDLIB_ERR_TIMEOUT || rc == CARDLIB_ERR_IO || rc == CARDLIB_ERR_NO_CARD ||
	       rc == CARDLIB_ERR_TRUNCATED || rc == CARDLIB_ERR_OVERSIZED ||
	       rc == CARDLIB_ERR_NOMEM || rc == CARDLIB_ERR_CRYPTO;
}

/* Why a card that is not one of ours was refused: what cardlib could tell apart. */
static enum controller_reason card_refusal(int rc)
{
	switch (rc) {
	case CARDLIB_ERR_NOT_DESFIRE: /* Classic, Ultralight, UID-only: a UID and nothing */
	case CARDLIB_ERR_APP_MISSING: /* a DESFire without the application: a copied UID */
		return CONTROLLER_REASON_CLONE_SUSPECTED;
	case CARDLIB_ERR_AUTH: /* the application, but not this deployment's key */
	case CARDLIB_ERR_MAC:
		return CONTROLLER_REASON_CARD_AUTH_FAILED;
	default: /* LAYOUT, FILE_MISSING, PERMISSION, CARD_STATUS, ... */
		return CONTROLLER_REASON_CARD_INVALID;
	}
}

/* A phone's credential or QR code refused, with the message and reason its cause deserves. */
static void refuse_credential(struct controller_tap *tap, struct one_tap *t, int rc)
{
	switch (rc) {
	case CARDLIB_ERR_CRED_EXPIRED:
		refuse_medium(tap, t, CONTROLLER_REASON_CREDENTIAL_EXPIRED, MSG_PASS_EXPIRED, rc);
		break;
	case CARDLIB_ERR_QR_REPLAY:
		refuse_medium(tap, t, CONTROLLER_REASON_QR_REPLAYED, MSG_QR_REPLAY, rc);
		break;
	case CARDLIB_ERR_QR_WINDOW:
		refuse_medium(tap, t, CONTROLLER_REASON_QR_OUTSIDE_WINDOW, MSG_QR_WINDOW, rc);
		break;
	default: /* CRED_FORMAT, CRED_SIGNATURE, CRED_SECTOR, PROOF, NOT_CITYPASS, and
	          * GATE_REFUSED: the phone did not accept this gate (its CA or clock) */
		refuse_medium(tap, t, CONTROLLER_REASON_CREDENTIAL_INVALID, MSG_PASS_INVALID, rc);
		break;
	}
}

/* --- deciding ----------------------------------------------------------------------------- */

/*
 * Issue 17: how long identifying rows stay, in seconds: the stricter of the gate's own
 * retention-days and its sector's retention as the server last stated it (kept in the
 * journal, so it holds offline and across restarts), less the time until the next purge so
 * that no row outlives it (CNIL AU-015: 48 hours at most for transport, not 49).
 */
static uint32_t retention_s(struct controller_tap *tap)
{
	uint64_t s = (uint64_t)(tap->cfg->retention_days ? tap->cfg->retention_days
	                                                 : CONTROLLER_RETENTION_DAYS_DEFAULT) *
	             86400u;
	uint32_t sector_h = 0;
	if (controller_journal_sector_retention(tap->p.journal, &sector_h) == 0 && sector_h > 0 &&
	    (uint64_t)sector_h * 3600u < s)
		s = (uint64_t)sector_h * 3600u;
	s = s > PURGE_EVERY_S ? s - PURGE_EVERY_S : 1;
	return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static void maybe_purge(struct controller_tap *tap, uint64_t version, int64_t issued_at,
                        int64_t now)
{
	if (version == tap->purged_version && now - tap->purged_at < PURGE_EVERY_S)
		return;
	/* Retention deletes identifying rows even unacknowledged: it is judged by the trusted
	 * floor, never the wall clock, so a clock jumping forward deletes nothing early
	 * (issue 10). The floor is kept for the next start at the same time. */
	int64_t floor = controller_timekeeper_floor(tap->p.clock);
	const struct controller_list_mark mark = {version, issued_at};
	int rc = controller_journal_purge(tap->p.journal, floor, &mark, retention_s(tap),
	                                  tap->cfg->policy.antipassback_minutes);
	if (rc)
		controller_log(LOG_WARNING, "journal purge failed: %s",
		               controller_journal_strerror(tap->p.journal, rc));
	if (tap->p.clock && (rc = controller_journal_set_time_floor(tap->p.journal, floor)) != 0)
		controller_log(LOG_WARNING, "journal: keeping the time floor failed: %s",
		               controller_journal_strerror(tap->p.journal, rc));
	tap->purged_version = version;
	tap->purged_at = now;
}

/* Purge on an empty field, so that a new list version's (or the hour's) purge, a DELETE
 * with its fsync, is done while nobody waits; decide keeps its own call for a tap that
 * comes before any idle moment, and finds the work already done otherwise. */
void controller_tap_housekeeping(struct controller_tap *tap)
{
	pthread_mutex_lock(&tap->lock);
	int64_t issued_at = 0;
	uint64_t version = 0;
	struct controller_list_info info;
	store_rdlock(tap);
	controller_list_store_info(tap->p.store, &info);
	store_unlock(tap);
	if (info.held) {
		issued_at = info.issued_at;
		version = info.version;
	}
	maybe_purge(tap, version, issued_at, controller_timekeeper_now(tap->p.clock));
	/* the WAL copied back while nobody waits: never inside a tap's commit */
	int rc = controller_journal_checkpoint_due(tap->p.journal);
	if (rc)
		controller_log(LOG_WARNING, "journal checkpoint failed: %s",
		               controller_journal_strerror(tap->p.journal, rc));
	pthread_mutex_unlock(&tap->lock);
}

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
static void debit_and_act(struct controller_tap *tap, struct one_tap *t,
                          const struct controller_pass *pass, struct controller_decision *d,
                          int64_t now)
{
	struct controller_event ev;
	struct controller_journal_seq seq;
	int32_t remaining = 0;
	int rc;

	if (t->paid) {
		/* the unanswered commit did happen: this entry is paid, let the citizen in */
		controller_log(LOG_NOTICE, "tap card: the unanswered commit had taken the entry: "
		                           "admitted without a second debit");
		journal_and_act(tap, t, pass, d, now);
		return;
	}
	rc = t->card ? cardlib_card_debit_begin(t->card, &remaining) : CARDLIB_ERR_LAYOUT;
	if (rc == CARDLIB_ERR_VALUE_EXHAUSTED) {
		d->grant = false;
		d->reason = CONTROLLER_REASON_ENTRIES_EXHAUSTED;
		snprintf(d->message, sizeof(d->message), "Plus d'entrée sur la carte");
		journal_and_act(tap, t, pass, d, now);
		return;
	}
	if (rc != 0) { /* no Debit answer: nothing is committed, the card drops it */
		read_again(tap, t, rc);
		return;
	}
	event_of(tap, t, pass, d, now, &ev);
	ev.pending = true;
	if (journal_decision(tap, t, &ev, &seq) != 0) {
		(void)cardlib_card_debit_abort(t->card);
		return;
	}
	rc = cardlib_card_debit_commit(t->card);
	if (rc != 0) {
		(void)cardlib_card_debit_abort(t->card);
		int src = controller_journal_settle(tap->p.journal, seq.stat, &ev, false);
		if (src != 0) /* left pending: taken as done at the next start (counted once) */
			controller_log(LOG_ERR, "journal: cannot withdraw decision %" PRIu64 ": %s",
			               seq.stat, controller_journal_strerror(tap->p.journal, src));
		tap->unsure_commit.active = error_is_transport(rc);
		memcpy(tap->unsure_commit.key, t->key, sizeof(t->key));
		tap->unsure_commit.value_before = t->card_read.value;
		tap->unsure_commit.at_ms = mono_ms();
		read_again(tap, t, rc);
		return;
	}
	rc = controller_journal_settle(tap->p.journal, seq.stat, &ev, true);
	if (rc != 0) /* the row stays pending, taken as done at the next start: still counted */
		controller_log(LOG_ERR, "journal: cannot settle decision %" PRIu64 ": %s", seq.stat,
		               controller_journal_strerror(tap->p.journal, rc));
	(void)remaining;
	act(tap, t, d, &ev, &seq);
}

static void decide(struct controller_tap *tap, struct one_tap *t)
{
	const struct controller_config *cfg = tap->cfg;
	const int64_t now = controller_timekeeper_now(tap->p.clock);
	struct controller_engine_input in;
	memset(&in, 0, sizeof(in));
	in.credential = t->cred;
	in.card = t->card_read;
	in.site = &cfg->policy;
	in.now = now;

	/* The list under the read lock: the entry is copied out, the lock held briefly. */
	int64_t issued_at = 0;
	uint64_t version = 0;
	struct controller_list_info info;
	int lookup = 0;
	store_rdlock(tap);
	controller_list_store_info(tap->p.store, &info);
	in.list_state = controller_list_state_at(&info, &cfg->stale, now);
	if (info.held) {
		issued_at = info.issued_at;
		version = info.version;
		lookup = controller_list_store_lookup(tap->p.store, t->key, &in.pass);
		if (lookup != 0)
			in.pass.found = false;
	}
	store_unlock(tap);
	if (lookup == CONTROLLER_ERR_LIST_DAMAGED) {
		/* The leaf this pass is in no longer matches what was signed: decide nothing
		 * from it. The store now asks the server for a snapshot; wake the sync client. */
		controller_log(LOG_ERR,
		               "list v%" PRIu64
		               " is damaged on disk: tap refused, asking the server "
		               "for a fresh copy",
		               version);
		gate_show(tap, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
		outcome(t, CONTROLLER_TAP_OUT_OF_SERVICE, lookup);
		if (tap->p.journal_written)
			tap->p.journal_written(tap->p.ctx);
		return;
	}

	/* Hours and subscription days in the site's zone, quota periods in the deployment's
	 * (proto/calendar.h): both zones were loaded at start-up, no TZ is touched per tap. */
	proto_zone_civil(tap->site_zone, now, &in.civil);
	struct proto_civil_time period_civil;
	proto_zone_civil(tap->period_zone, now, &period_civil);
	in.period_day = period_civil.day;
	maybe_purge(tap, version, issued_at, now);
	if (in.pass.found) {
		const struct controller_list_mark mark = {version, issued_at};
		int rc = controller_journal_counters(tap->p.journal, &in.pass, &mark, in.period_day,
		                                     &in.local);
		if (rc != 0) {
			controller_log(LOG_ERR, "journal counters failed (%s): tap refused",
			               controller_journal_strerror(tap->p.journal, rc));
			gate_show(tap, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
			outcome(t, CONTROLLER_TAP_OUT_OF_SERVICE, rc);
			return;
		}
	}

	/* The card whose commit went unanswered is back (docs/controller.md, "Entries on the
	 * card"): one entry less, the commit happened — it is decided as it was then, from the
	 * value the entry was taken from, and nothing more is debited. */
	if (tap->unsure_commit.active && mono_ms() - tap->unsure_commit.at_ms > UNSURE_COMMIT_MS)
		tap->unsure_commit.active = false;
	if (tap->unsure_commit.active && t->cred == CONTROLLER_CRED_CARD && t->have_key &&
	    memcmp(tap->unsure_commit.key, t->key, sizeof(t->key)) == 0) {
		tap->unsure_commit.active = false;
		if (in.card.value_present && in.card.value == tap->unsure_commit.value_before - 1) {
			t->paid = true;
			in.card.value = tap->unsure_commit.value_before;
		}
	}
	struct controller_decision d;
	controller_decide(&in, &d);

	if (d.grant && d.action == CONTROLLER_ACTION_DEBIT_CARD) {
		debit_and_act(tap, t, &in.pass, &d, now);
		return;
	}
	journal_and_act(tap, t, &in.pass, &d, now);
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

static void tap_card(struct controller_tap *tap, struct cardlib_reader *reader, struct one_tap *t)
{
	struct cardlib_card_read rd;
	t->cred = CONTROLLER_CRED_CARD;
	/* the sync thread may replace the card keys (a rotation): a copy for this tap */
	struct cardlib_sector_key key;
	store_rdlock(tap);
	key = tap->cfg->card_key;
	store_unlock(tap);
	/* open_sector begins with a select: the reader hands it the target already selected */
	int rc = cardlib_card_open_sector(&t->card, reader, &key, &rd);
	mbedtls_platform_zeroize(&key, sizeof(key));
	if (rc == CARDLIB_ERR_NO_CARD)
		return; /* gone between the two selects: no tap */
	if (rc != 0) {
		if (error_is_transport(rc))
			read_again(tap, t, rc);
		else /* NOT_DESFIRE, APP_MISSING, AUTH, LAYOUT, MAC, ...: not one of our cards */
			refuse_medium(tap, t, card_refusal(rc), MSG_CARD_UNKNOWN, rc);
		return;
	}
	proto_list_key(tap->cfg->sector, rd.id, sizeof(rd.id), t->key);
	t->have_key = true;
	t->card_read.value_present = rd.has_value != 0;
	t->card_read.value = rd.value;
	mbedtls_platform_zeroize(&rd, sizeof(rd)); /* the real UID: diversification only */
	decide(tap, t);
	cardlib_card_close(t->card);
	t->card = NULL;
}

/* 1 when the target was a citypass phone (decided or refused), 0 when it is not one. */
static int tap_phone(struct controller_tap *tap, struct cardlib_reader *reader, struct one_tap *t)
{
	uint8_t id[CARDLIB_TOKEN_ID_LEN];
	t->cred = CONTROLLER_CRED_PHONE_NFC;
	int rc = tap->p.nfc_issuers && tap->p.nfc_gate
	                 ? cardlib_phone_read(reader, tap->p.nfc_gate, tap->p.nfc_issuers, id, NULL)
	                 : CARDLIB_ERR_NOT_CITYPASS;
	if (rc == CARDLIB_ERR_NOT_CITYPASS)
		return 0;
	if (rc != 0) {
		if (error_is_transport(rc))
			read_again(tap, t, rc);
		else
			refuse_credential(tap, t, rc);
		cardlib_reader_release(reader);
		return 1;
	}
	proto_list_key(tap->cfg->sector, id, sizeof(id), t->key);
	t->have_key = true;
	decide(tap, t);
	/* released once the gate is told: the deselect's round trip is no part of the tap */
	cardlib_reader_release(reader);
	return 1;
}

void controller_tap_target(struct controller_tap *tap, struct cardlib_reader *reader,
                           const struct cardlib_target_info *info, int64_t t0_ms,
                           struct controller_tap_result *res)
{
	struct controller_tap_result ignored;
	struct one_tap t;
	memset(&t, 0, sizeof(t));
	t.res = res ? res : &ignored;
	memset(t.res, 0, sizeof(*t.res));
	t.t0_ms = t0_ms;
	t.cred = CONTROLLER_CRED_CARD;
	pthread_mutex_lock(&tap->lock);
	if (!(info->sak & 0x20)) {
		/* MIFARE Classic, Ultralight, UID-only tags: a UID is not a credential */
		cardlib_reader_release(reader);
		refuse_medium(tap, &t, card_refusal(CARDLIB_ERR_NOT_DESFIRE), MSG_CARD_UNKNOWN,
		              CARDLIB_ERR_NOT_DESFIRE);
	} else {
		const uint8_t *hist;
		size_t hist_len;
		ats_historical(info, &hist, &hist_len);
		bool desfire_ats = hist_len == 1 && hist[0] == 0x80;
		if (desfire_ats || !tap_phone(tap, reader, &t))
			tap_card(tap, reader, &t);
	}
	pthread_mutex_unlock(&tap->lock);
}

void controller_tap_qr(struct controller_tap *tap, const char *line, size_t len, int64_t t0_ms,
                       struct controller_tap_result *res)
{
	struct controller_tap_result ignored;
	struct one_tap t;
	memset(&t, 0, sizeof(t));
	t.res = res ? res : &ignored;
	memset(t.res, 0, sizeof(*t.res));
	t.t0_ms = t0_ms;
	t.cred = CONTROLLER_CRED_PHONE_QR;
	if (len == 0)
		return;
	uint8_t id[CARDLIB_TOKEN_ID_LEN];
	const int64_t now = controller_timekeeper_now(tap->p.clock);
	/* verified outside the lock: the keyring and the cache are this thread's own */
	int rc = tap->p.qr_issuers
	                 ? cardlib_qr_verify(line, len, tap->p.qr_issuers, tap->cfg->sector, now,
	                                     tap->qr_cache, id, NULL)
	                 : CARDLIB_ERR_CRED_SIGNATURE;
	pthread_mutex_lock(&tap->lock);
	if (rc == CARDLIB_ERR_QR_FORMAT) {
		/* not a citypass code (any barcode held to the scanner): no decision */
		controller_log(LOG_NOTICE, "QR scanner: not a citypass code (%zu characters)", len);
		gate_show(tap, false, CONTROLLER_LED_RED, MSG_QR_NOT_OURS);
	} else if (rc != 0) {
		refuse_credential(tap, &t, rc);
	} else {
		proto_list_key(tap->cfg->sector, id, sizeof(id), t.key);
		t.have_key = true;
		t.qr = cardlib_qr_step(line, len, &t.qr_step, &t.qr_expires) == 0;
		/* The memory cache forgets at a reload or a restart; the journal does not (the
		 * code's decision recorded it): a screenshot is refused for its whole window. */
		bool seen = false;
		int jrc = t.qr ? controller_journal_qr_seen(tap->p.journal, t.key, t.qr_step, now,
		                                            &seen)
		               : 0;
		if (jrc != 0) {
			controller_log(LOG_ERR,
			               "journal: QR codes already used unknown (%s): tap "
			               "refused",
			               controller_journal_strerror(tap->p.journal, jrc));
			gate_show(tap, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
			outcome(&t, CONTROLLER_TAP_OUT_OF_SERVICE, jrc);
		} else if (seen) {
			t.qr = false; /* already remembered */
			refuse_medium(tap, &t, CONTROLLER_REASON_QR_REPLAYED, MSG_QR_REPLAY,
			              CARDLIB_ERR_QR_REPLAY);
		} else {
			decide(tap, &t);
		}
	}
	pthread_mutex_unlock(&tap->lock);
}

/* --- life ----------------------------------------------------------------------------------- */

int controller_tap_open(struct controller_tap **out, const struct controller_tap_params *params,
                        char *err, size_t errlen)
{
	*out = NULL;
	struct controller_tap *tap = calloc(1, sizeof(*tap));
	if (!tap) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	tap->p = *params;
	tap->cfg = params->cfg;
	pthread_mutex_init(&tap->lock, NULL);
	const struct controller_config *cfg = tap->cfg;
	/* before any thread starts: a zone is read under a temporary TZ (proto/calendar.h) */
	const char *period_tz = cfg->period_tz[0] ? cfg->period_tz : cfg->tz;
	if (proto_zone_load(&tap->site_zone, cfg->tz) != 0 ||
	    proto_zone_load(&tap->period_zone, period_tz) != 0) {
		snprintf(err, errlen, "tz %s / period-tz %s: not a time zone of this system",
		         cfg->tz, period_tz);
		goto fail;
	}
	/* no WAL checkpoint inside a tap's commit: housekeeping does them while nobody waits */
	if (controller_journal_defer_checkpoints(params->journal) != 0) {
		snprintf(err, errlen, "journal: cannot defer its checkpoints");
		goto fail;
	}
	if (cardlib_qr_replay_cache_new(&tap->qr_cache, QR_CACHE_ENTRIES) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	*out = tap;
	return 0;
fail:
	controller_tap_close(tap);
	return -1;
}

void controller_tap_close(struct controller_tap *tap)
{
	if (!tap)
		return;
	cardlib_qr_replay_cache_free(tap->qr_cache);
	proto_zone_free(tap->site_zone);
	proto_zone_free(tap->period_zone);
	pthread_mutex_destroy(&tap->lock);
	free(tap);
}
