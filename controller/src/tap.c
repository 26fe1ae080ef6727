/*
 * controller/src/tap.c — one tap decided, whatever brought it (a card, a phone over NFC, a
 * QR code): the list under the store's read lock, the journal's counters, the pure engine,
 * then the card debit (entries on the card) or the journal append, then the gate
 * (docs/controller.md, "One tap, end to end"). Callers hold the loop's decide_lock.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cardlib/error.h"
#include "proto/calendar.h"
#include "controller/error.h"
#include "controller/log.h"
#include "controller/timekeeper.h"
#include "reader_internal.h"

#define PURGE_EVERY_S 3600
/* How long an unanswered commit is remembered for the same card's return. */
#define UNSURE_COMMIT_MS (10 * 60 * 1000)
#define MSG_READ_AGAIN   "Lecture incomplète – représentez votre pass"
#define MSG_PASS_INVALID "Pass non valide"
#define MSG_PASS_EXPIRED "Pass expiré – renouvelez-le"
#define MSG_QR_REPLAY    "Code QR déjà utilisé"
#define MSG_QR_WINDOW    "Code QR périmé – actualisez-le"

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
	if (t->qr && t->have_key) {
		ev->qr = true;
		ev->qr_step = t->qr_step;
		ev->qr_expires = t->qr_expires;
	}
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
		               controller_journal_strerror(l->p.journal, rc));
		panel_show(&l->panel, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
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
	panel_show(&l->panel, d->grant, d->grant ? CONTROLLER_LED_GREEN : CONTROLLER_LED_RED,
	           shown);
	int64_t took = reader_mono_ms() - t->t0_ms;
	if (cfg->log_verbose)
		controller_log_tap(LOG_INFO, d->grant ? "granted" : "refused",
		                   controller_reason_name(d->reason),
		                   "tap %s %s reason=%s product=%u seq=%" PRIu64
		                   " tap-to-gate=%" PRId64 " ms%s display=\"%s\"",
		                   reader_cred_name(t->cred), d->grant ? "granted" : "refused",
		                   controller_reason_name(d->reason), (unsigned)ev->product,
		                   seq->stat, took, d->on_stale_list ? " (stale list)" : "", shown);
	if (l->p.journal_written)
		l->p.journal_written(l->p.ctx);
	/* the site's other gates refuse this pass for the window too (DESIGN.md s.4) */
	if (ev->remember_grant && l->p.granted)
		l->p.granted(l->p.ctx, ev->key);
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
void tap_refuse_medium(struct controller_reader_loop *l, struct tap *t, const char *message,
                       int cause)
{
	struct controller_decision d;
	memset(&d, 0, sizeof(d));
	d.grant = false;
	d.reason = CONTROLLER_REASON_UNKNOWN_PASS;
	d.remaining = -1;
	snprintf(d.message, sizeof(d.message), "%s", message);
	if (l->cfg->log_verbose)
		controller_log_tap(LOG_INFO, "refused", controller_reason_name(d.reason),
		                   "tap %s: %s (%s)", reader_cred_name(t->cred),
		                   cardlib_strerror(cause), message);
	t->have_key = false;
	journal_and_act(l, t, NULL, &d, controller_timekeeper_now(l->p.clock));
}

/* A read that did not complete is not a decision: nothing journalled, ask again. */
void tap_read_again(struct controller_reader_loop *l, struct tap *t, int cause)
{
	controller_log_tap(LOG_NOTICE, "not_decided", NULL, "tap %s: read failed (%s): not decided",
	                   reader_cred_name(t->cred), cardlib_strerror(cause));
	panel_show(&l->panel, false, CONTROLLER_LED_AMBER, MSG_READ_AGAIN);
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
	const struct controller_list_mark mark = {version, issued_at};
	int rc = controller_journal_purge(l->p.journal, floor, &mark, l->cfg->retention_days,
	                                  l->cfg->policy.antipassback_minutes);
	if (rc)
		controller_log(LOG_WARNING, "journal purge failed: %s",
		               controller_journal_strerror(l->p.journal, rc));
	if (l->p.clock && (rc = controller_journal_set_time_floor(l->p.journal, floor)) != 0)
		controller_log(LOG_WARNING, "journal: keeping the time floor failed: %s",
		               controller_journal_strerror(l->p.journal, rc));
	l->purged_version = version;
	l->purged_at = now;
}

/* Purge on an empty field, so that a new list version's (or the hour's) purge, a DELETE
 * with its fsync, is done while nobody waits; decide_tap keeps its own call for a tap that
 * comes before any idle moment, and finds the work already done otherwise. */
void tap_housekeeping(struct controller_reader_loop *l)
{
	int64_t issued_at = 0;
	uint64_t version = 0;
	struct controller_list_info info;
	pthread_rwlock_rdlock(l->p.store_lock);
	controller_list_store_info(l->p.store, &info);
	pthread_rwlock_unlock(l->p.store_lock);
	if (info.held) {
		issued_at = info.issued_at;
		version = info.version;
	}
	maybe_purge(l, version, issued_at, controller_timekeeper_now(l->p.clock));
	/* the WAL copied back while nobody waits: never inside a tap's commit */
	int rc = controller_journal_checkpoint_due(l->p.journal);
	if (rc)
		controller_log(LOG_WARNING, "journal checkpoint failed: %s",
		               controller_journal_strerror(l->p.journal, rc));
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
static void debit_and_act(struct controller_reader_loop *l, struct tap *t,
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
		journal_and_act(l, t, pass, d, now);
		return;
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
		tap_read_again(l, t, rc);
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
			               seq.stat, controller_journal_strerror(l->p.journal, src));
		l->unsure_commit.active = tap_error_is_transport(rc);
		memcpy(l->unsure_commit.key, t->key, sizeof(t->key));
		l->unsure_commit.value_before = t->card_read.value;
		l->unsure_commit.at_ms = reader_mono_ms();
		tap_read_again(l, t, rc);
		return;
	}
	rc = controller_journal_settle(l->p.journal, seq.stat, &ev, true);
	if (rc != 0) /* the row stays pending, taken as done at the next start: still counted */
		controller_log(LOG_ERR, "journal: cannot settle decision %" PRIu64 ": %s", seq.stat,
		               controller_journal_strerror(l->p.journal, rc));
	(void)remaining;
	act(l, t, d, &ev, &seq);
}

void tap_decide(struct controller_reader_loop *l, struct tap *t)
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
	struct controller_list_info info;
	int lookup = 0;
	pthread_rwlock_rdlock(l->p.store_lock);
	controller_list_store_info(l->p.store, &info);
	in.list_state = controller_list_state_at(&info, &cfg->stale, now);
	if (info.held) {
		issued_at = info.issued_at;
		version = info.version;
		lookup = controller_list_store_lookup(l->p.store, t->key, &in.pass);
		if (lookup != 0)
			in.pass.found = false;
	}
	pthread_rwlock_unlock(l->p.store_lock);
	if (lookup == CONTROLLER_ERR_LIST_DAMAGED) {
		/* The leaf this pass is in no longer matches what was signed: decide nothing
		 * from it. The store now asks the server for a snapshot; wake the sync client. */
		controller_log(LOG_ERR,
		               "list v%" PRIu64
		               " is damaged on disk: tap refused, asking the server "
		               "for a fresh copy",
		               version);
		panel_show(&l->panel, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
		if (l->p.journal_written)
			l->p.journal_written(l->p.ctx);
		return;
	}

	/* Hours and subscription days in the site's zone, quota periods in the deployment's
	 * (proto/calendar.h): both zones were loaded at start-up, no TZ is touched per tap. */
	proto_zone_civil(l->site_zone, now, &in.civil);
	struct proto_civil_time period_civil;
	proto_zone_civil(l->period_zone, now, &period_civil);
	in.period_day = period_civil.day;
	maybe_purge(l, version, issued_at, now);
	if (in.pass.found) {
		const struct controller_list_mark mark = {version, issued_at};
		int rc = controller_journal_counters(l->p.journal, &in.pass, &mark, in.period_day,
		                                     &in.local);
		if (rc != 0) {
			controller_log(LOG_ERR, "journal counters failed (%s): tap refused",
			               controller_journal_strerror(l->p.journal, rc));
			panel_show(&l->panel, false, CONTROLLER_LED_AMBER, MSG_OUT_OF_SERVICE);
			return;
		}
	}

	/* The card whose commit went unanswered is back (docs/controller.md, "Entries on the
	 * card"): one entry less, the commit happened — it is decided as it was then, from the
	 * value the entry was taken from, and nothing more is debited. */
	if (l->unsure_commit.active && reader_mono_ms() - l->unsure_commit.at_ms > UNSURE_COMMIT_MS)
		l->unsure_commit.active = false;
	if (l->unsure_commit.active && t->cred == CONTROLLER_CRED_CARD && t->have_key &&
	    memcmp(l->unsure_commit.key, t->key, sizeof(t->key)) == 0) {
		l->unsure_commit.active = false;
		if (in.card.value_present && in.card.value == l->unsure_commit.value_before - 1) {
			t->paid = true;
			in.card.value = l->unsure_commit.value_before;
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

bool tap_error_is_transport(int rc)
{
	return rc == CARDLIB_ERR_TIMEOUT || rc == CARDLIB_ERR_IO || rc == CARDLIB_ERR_NO_CARD ||
	       rc == CARDLIB_ERR_TRUNCATED || rc == CARDLIB_ERR_OVERSIZED ||
	       rc == CARDLIB_ERR_NOMEM || rc == CARDLIB_ERR_CRYPTO;
}

void tap_refuse_credential(struct controller_reader_loop *l, struct tap *t, int rc)
{
	switch (rc) {
	case CARDLIB_ERR_CRED_EXPIRED:
		tap_refuse_medium(l, t, MSG_PASS_EXPIRED, rc);
		break;
	case CARDLIB_ERR_QR_REPLAY:
		tap_refuse_medium(l, t, MSG_QR_REPLAY, rc);
		break;
	case CARDLIB_ERR_QR_WINDOW:
		tap_refuse_medium(l, t, MSG_QR_WINDOW, rc);
		break;
	default: /* CRED_FORMAT, CRED_SIGNATURE, CRED_SECTOR, PROOF, NOT_CITYPASS */
		tap_refuse_medium(l, t, MSG_PASS_INVALID, rc);
		break;
	}
}
