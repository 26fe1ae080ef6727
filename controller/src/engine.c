/*
 * controller/src/engine.c — the rules a council voted, in the order a gate applies them.
 *
 * Each rule is one function that either lets the tap through to the next rule or refuses
 * it with a reason and a message. The order puts the most informative refusal first: a
 * revoked card says "Carte révoquée" even outside opening hours, and counters are looked
 * at last so a refused tap never consumes anything.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "controller/engine.h"

__attribute__((format(printf, 2, 3))) static void say(struct controller_decision *d,
                                                      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->message, sizeof(d->message), fmt, ap);
	va_end(ap);
}

static bool refuse(struct controller_decision *d, enum controller_reason reason, const char *msg)
{
	d->grant = false;
	d->reason = reason;
	d->action = CONTROLLER_ACTION_NONE;
	say(d, "%s", msg);
	return false;
}

/* --- the rules ------------------------------------------------------------------------ */

static bool list_is_usable(const struct controller_engine_input *in, struct controller_decision *d)
{
	if (in->list_state == CONTROLLER_LIST_EXPIRED)
		return refuse(d, CONTROLLER_REASON_LIST_EXPIRED,
		              "Service indisponible – liste périmée");
	d->on_stale_list = in->list_state == CONTROLLER_LIST_STALE;
	return true;
}

static bool pass_is_known(const struct controller_engine_input *in, struct controller_decision *d)
{
	if (in->pass.found)
		return true;
	return refuse(d, CONTROLLER_REASON_UNKNOWN_PASS,
	              in->credential == CONTROLLER_CRED_CARD ? "Carte inconnue" : "Pass inconnu");
}

static bool pass_is_active(const struct controller_engine_input *in, struct controller_decision *d)
{
	switch (in->pass.entry.status) {
	case PROTO_STATUS_ACTIVE:
		return true;
	case PROTO_STATUS_REVOKED:
		return refuse(d, CONTROLLER_REASON_REVOKED,
		              in->credential == CONTROLLER_CRED_CARD ? "Carte révoquée"
		                                                     : "Pass révoqué");
	case PROTO_STATUS_REPLACED:
		return refuse(d, CONTROLLER_REASON_REPLACED,
		              "Carte remplacée – utilisez votre nouvelle carte");
	case PROTO_STATUS_SUSPENDED:
		return refuse(d, CONTROLLER_REASON_SUSPENDED, "Pass suspendu – voir l'accueil");
	default:
		return refuse(d, CONTROLLER_REASON_BAD_STATUS, "Pass non valide – voir l'accueil");
	}
}

static bool within_validity(const struct controller_engine_input *in, struct controller_decision *d)
{
	const struct proto_rights_profile *p = &in->pass.profile;
	int32_t today = in->civil.day, y;
	unsigned m, md;
	if (p->valid_from != PROTO_DAY_UNBOUNDED_FROM && today < (int32_t)p->valid_from) {
		proto_civil_from_days(p->valid_from, &y, &m, &md);
		refuse(d, CONTROLLER_REASON_NOT_YET_VALID, "");
		say(d, "Valable à partir du %02u/%02u/%04d", md, m, (int)y);
		return false;
	}
	if (p->valid_to != PROTO_DAY_UNBOUNDED_TO && today > (int32_t)p->valid_to) {
		proto_civil_from_days(p->valid_to, &y, &m, &md);
		refuse(d, CONTROLLER_REASON_SUBSCRIPTION_EXPIRED, "");
		say(d, "Abonnement expiré le %02u/%02u/%04d", md, m, (int)y);
		return false;
	}
	return true;
}

static bool fare_accepted(const struct controller_engine_input *in, struct controller_decision *d)
{
	uint8_t fare = in->pass.profile.fare;
	if (fare < 8 && (in->site->refused_fares & (1u << fare)))
		return refuse(d, CONTROLLER_REASON_FARE_NOT_ACCEPTED, "Tarif non accepté ici");
	return true;
}

static bool site_is_open(const struct controller_engine_input *in, struct controller_decision *d)
{
	const struct controller_site_policy *s = in->site;
	if (s->window_count == 0)
		return true;
	size_t n =
	        s->window_count < CONTROLLER_MAX_WINDOWS ? s->window_count : CONTROLLER_MAX_WINDOWS;
	for (size_t i = 0; i < n; i++) {
		const struct controller_time_window *w = &s->windows[i];
		if ((w->days & (1u << in->civil.weekday)) && in->civil.minute >= w->open &&
		    in->civil.minute < w->close)
			return true;
	}
	return refuse(d, CONTROLLER_REASON_OUTSIDE_HOURS, "Hors horaires d'ouverture");
}

static bool passback_elapsed(const struct controller_engine_input *in,
                             struct controller_decision *d)
{
	int64_t window = (int64_t)in->site->antipassback_minutes * 60;
	int64_t last = in->local.last_grant_at;
	if (window == 0 || last == 0 || in->now - last >= window || in->now < last)
		return true;
	int64_t wait_min = (window - (in->now - last) + 59) / 60;
	refuse(d, CONTROLLER_REASON_ANTI_PASSBACK, "");
	say(d, "Passage déjà enregistré – réessayez dans %d min", (int)wait_min);
	return false;
}

/* The list's `used`, if it belongs to the current period (a mismatch: an older period). */
static uint32_t listed_uses(const struct controller_engine_input *in, int64_t period_number)
{
	const struct proto_list_entry *e = &in->pass.entry;
	if (in->pass.profile.period == PROTO_PERIOD_LIFETIME)
		return e->used; /* one period for the product's life: the stamp means nothing */
	return e->used_period == (uint8_t)(period_number & 0xFF) ? e->used : 0;
}

static void welcome_entries(struct controller_decision *d, int32_t left)
{
	if (left <= 0)
		say(d, "Bienvenue – dernière entrée");
	else if (left == 1)
		say(d, "Bienvenue – 1 entrée restante");
	else
		say(d, "Bienvenue – %d entrées restantes", (int)left);
}

static const char *period_words(uint8_t period)
{
	switch (period) {
	case PROTO_PERIOD_DAY:
		return "aujourd'hui";
	case PROTO_PERIOD_WEEK:
		return "cette semaine";
	case PROTO_PERIOD_MONTH:
		return "ce mois-ci";
	default:
		return "cette année";
	}
}

static const char *quota_words(uint8_t period)
{
	switch (period) {
	case PROTO_PERIOD_DAY:
		return "Quota journalier atteint";
	case PROTO_PERIOD_WEEK:
		return "Quota hebdomadaire atteint";
	case PROTO_PERIOD_MONTH:
		return "Quota mensuel atteint";
	default:
		return "Quota annuel atteint";
	}
}

/* Entries on the card's value file: the card is the counter (DESIGN.md s.3). */
static bool debit_card_entry(const struct controller_engine_input *in,
                             struct controller_decision *d)
{
	if (!in->card.value_present)
		return refuse(d, CONTROLLER_REASON_CARD_VALUE_MISSING,
		              "Carte illisible – présentez-la de nouveau");
	if (in->card.value <= 0)
		return refuse(d, CONTROLLER_REASON_ENTRIES_EXHAUSTED, "Plus d'entrée sur la carte");
	d->action = CONTROLLER_ACTION_DEBIT_CARD;
	d->remaining = in->card.value - 1;
	welcome_entries(d, d->remaining);
	return true;
}

/* A counted right: the list's total for the period plus this gate's unsynced uses. */
static bool count_use(const struct controller_engine_input *in, struct controller_decision *d)
{
	const struct proto_rights_profile *p = &in->pass.profile;
	int64_t period_number = proto_period_number(p->period, in->period_day);
	uint32_t used = listed_uses(in, period_number) + in->local.uses;
	bool entries = p->period == PROTO_PERIOD_LIFETIME;
	if (used >= p->limit)
		return refuse(d,
		              entries ? CONTROLLER_REASON_ENTRIES_EXHAUSTED
		                      : CONTROLLER_REASON_QUOTA_REACHED,
		              entries ? "Plus d'entrée disponible" : quota_words(p->period));
	d->action = entries ? CONTROLLER_ACTION_COUNT_ENTRY : CONTROLLER_ACTION_COUNT_QUOTA;
	d->period = p->period;
	d->period_number = period_number;
	d->remaining = (int32_t)(p->limit - used - 1);
	if (entries)
		welcome_entries(d, d->remaining);
	else if (d->remaining == 0)
		say(d, "Bienvenue – dernier passage %s", period_words(p->period));
	else
		say(d, "Bienvenue – %d passage%s restant%s %s", (int)d->remaining,
		    d->remaining > 1 ? "s" : "", d->remaining > 1 ? "s" : "",
		    period_words(p->period));
	return true;
}

static bool right_has_uses_left(const struct controller_engine_input *in,
                                struct controller_decision *d)
{
	const struct proto_rights_profile *p = &in->pass.profile;
	if (p->period == PROTO_PERIOD_NONE) {
		say(d, "Bienvenue");
		return true;
	}
	if (p->period == PROTO_PERIOD_LIFETIME && (p->flags & PROTO_PROFILE_ENTRIES_ON_CARD) &&
	    in->credential == CONTROLLER_CRED_CARD)
		return debit_card_entry(in, d);
	return count_use(in, d);
}

/* --- the engine ----------------------------------------------------------------------- */

void controller_decide(const struct controller_engine_input *in, struct controller_decision *d)
{
	static const struct controller_site_policy open_site; /* const: no state */
	struct controller_engine_input tap = *in;
	if (!tap.site)
		tap.site = &open_site;

	memset(d, 0, sizeof(*d));
	d->remaining = -1;
	d->grant = list_is_usable(&tap, d) && pass_is_known(&tap, d) && pass_is_active(&tap, d) &&
	           within_validity(&tap, d) && fare_accepted(&tap, d) && site_is_open(&tap, d) &&
	           passback_elapsed(&tap, d) && right_has_uses_left(&tap, d);
	if (d->grant)
		d->reason = CONTROLLER_REASON_OK;
	else
		d->on_stale_list = false;
}

const char *controller_reason_name(enum controller_reason reason)
{
	const char *name = proto_reason_name((uint32_t)reason);
	return name ? name : "unknown";
}
