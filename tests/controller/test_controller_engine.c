/*
 * test_controller_engine.c — the decision engine, one table row per rule the council voted
 * (DESIGN.md section 4), plus civil time across Europe/Paris daylight-saving changes.
 *
 * Every row is decided at the pool on Wednesday 15 July 2026, 10:00 local time, unless the
 * row says otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/calendar.h"
#include "controller/engine.h"

/* --- the products a town sells -------------------------------------------------------- */

enum product_name {
	NOT_LISTED = -1,
	SEASON_PASS,    /* pool season pass, 1 June – 30 September 2026 */
	NEXT_SEASON,    /* starts 1 September 2026 */
	LAST_SEASON,    /* ended 30 June 2026 */
	TEN_ENTRIES,    /* 10 pool entries, on the card's value file */
	WASTE_RESIDENT, /* 24 waste-centre visits a year per household, residents */
	LIBRARY_MONTH,  /* 4 events a month per pass */
	BUS_CONCESSION,
	PRODUCT_COUNT,
};

static struct proto_rights_profile products[PRODUCT_COUNT];

static uint16_t day_of(int y, unsigned m, unsigned d)
{
	return (uint16_t)proto_days_from_civil(y, m, d);
}

static void define_products(void)
{
	products[SEASON_PASS] = (struct proto_rights_profile){
	        .product = 10, .valid_from = day_of(2026, 6, 1), .valid_to = day_of(2026, 9, 30)};
	products[NEXT_SEASON] = (struct proto_rights_profile){
	        .product = 11, .valid_from = day_of(2026, 9, 1), .valid_to = day_of(2027, 6, 30)};
	products[LAST_SEASON] = (struct proto_rights_profile){
	        .product = 12, .valid_from = day_of(2025, 9, 1), .valid_to = day_of(2026, 6, 30)};
	products[TEN_ENTRIES] =
	        (struct proto_rights_profile){.product = 20,
	                                      .valid_to = PROTO_DAY_UNBOUNDED_TO,
	                                      .limit = 10,
	                                      .period = PROTO_PERIOD_LIFETIME,
	                                      .flags = PROTO_PROFILE_ENTRIES_ON_CARD};
	products[WASTE_RESIDENT] = (struct proto_rights_profile){.product = 30,
	                                                         .valid_to = PROTO_DAY_UNBOUNDED_TO,
	                                                         .limit = 24,
	                                                         .period = PROTO_PERIOD_YEAR,
	                                                         .scope = PROTO_SCOPE_HOUSEHOLD,
	                                                         .fare = PROTO_FARE_RESIDENT};
	products[LIBRARY_MONTH] = (struct proto_rights_profile){.product = 40,
	                                                        .valid_to = PROTO_DAY_UNBOUNDED_TO,
	                                                        .limit = 4,
	                                                        .period = PROTO_PERIOD_MONTH};
	products[BUS_CONCESSION] = (struct proto_rights_profile){
	        .product = 50, .valid_to = PROTO_DAY_UNBOUNDED_TO, .fare = PROTO_FARE_CONCESSION};
}

/* --- the sites ------------------------------------------------------------------------ */

enum site_name {
	ANYWHERE,          /* no hours, no anti-passback, every fare */
	POOL,              /* 09:00–20:00 every day, 30 min anti-passback */
	BUS_NO_CONCESSION, /* an express line where concessions do not apply */
	SITE_COUNT,
};

static struct controller_site_policy sites[SITE_COUNT];

static void define_sites(void)
{
	memset(sites, 0, sizeof(sites));
	sites[POOL].windows[0] =
	        (struct controller_time_window){CONTROLLER_DAYS_ALL, 9 * 60, 20 * 60};
	sites[POOL].window_count = 1;
	sites[POOL].antipassback_minutes = 30;
	sites[BUS_NO_CONCESSION].refused_fares = 1u << PROTO_FARE_CONCESSION;
}

/* --- one rule per row ----------------------------------------------------------------- */

#define THIS_PERIOD 0
#define LAST_PERIOD 1

struct rule {
	const char *rule;
	/* the tap */
	enum product_name product;
	uint8_t status;
	enum controller_credential credential;
	bool card_value_read;
	int32_t card_value;
	uint8_t listed_used;
	int listed_period; /* THIS_PERIOD or LAST_PERIOD */
	uint32_t local_uses;
	int last_grant_minutes_ago; /* 0: none remembered */
	enum controller_list_state list;
	enum site_name site;
	int local_hhmm; /* 0: 10:00 */
	/* the verdict */
	bool grant;
	enum controller_reason reason;
	enum controller_action action;
	int32_t remaining;
	const char *message;
};

#define OK        CONTROLLER_REASON_OK
#define CARD      CONTROLLER_CRED_CARD
#define PHONE     CONTROLLER_CRED_PHONE_NFC
#define QR        CONTROLLER_CRED_PHONE_QR
#define GRANT     true
#define REFUSE    false
#define NO_ACTION CONTROLLER_ACTION_NONE
#define DEBIT     CONTROLLER_ACTION_DEBIT_CARD
#define ENTRY     CONTROLLER_ACTION_COUNT_ENTRY
#define QUOTA     CONTROLLER_ACTION_COUNT_QUOTA

/* clang-format off: one rule per row, its inputs on the first lines, its verdict after => */
static const struct rule rules[] = {
        {.rule = "a season pass enters the pool",
         .product = SEASON_PASS,
         .site = POOL,
         /* => */ .grant = GRANT,
         .reason = OK,
         .remaining = -1,
         .message = "Bienvenue"},
        {.rule = "a card the list does not know is refused",
         .product = NOT_LISTED,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_UNKNOWN_PASS,
         .remaining = -1,
         .message = "Carte inconnue"},
        {.rule = "a phone the list does not know is refused",
         .product = NOT_LISTED,
         .credential = QR,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_UNKNOWN_PASS,
         .remaining = -1,
         .message = "Pass inconnu"},
        {.rule = "a revoked card is refused, saying so",
         .product = SEASON_PASS,
         .status = PROTO_STATUS_REVOKED,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_REVOKED,
         .remaining = -1,
         .message = "Carte révoquée"},
        {.rule = "a replaced card points to the new one",
         .product = SEASON_PASS,
         .status = PROTO_STATUS_REPLACED,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_REPLACED,
         .remaining = -1,
         .message = "Carte remplacée – utilisez votre nouvelle carte"},
        {.rule = "a suspended pass is sent to the desk",
         .product = SEASON_PASS,
         .status = PROTO_STATUS_SUSPENDED,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_SUSPENDED,
         .remaining = -1,
         .message = "Pass suspendu – voir l'accueil"},
        {.rule = "a status the gate does not know is refused",
         .product = SEASON_PASS,
         .status = 9,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_BAD_STATUS,
         .remaining = -1,
         .message = "Pass non valide – voir l'accueil"},
        {.rule = "a subscription before its first day is refused with the date",
         .product = NEXT_SEASON,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_NOT_YET_VALID,
         .remaining = -1,
         .message = "Valable à partir du 01/09/2026"},
        {.rule = "a subscription after its last day is refused with the date",
         .product = LAST_SEASON,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_SUBSCRIPTION_EXPIRED,
         .remaining = -1,
         .message = "Abonnement expiré le 30/06/2026"},
        {.rule = "ten-entry card: one entry is debited on the card",
         .product = TEN_ENTRIES,
         .card_value_read = true,
         .card_value = 8,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = DEBIT,
         .remaining = 7,
         .message = "Bienvenue – 7 entrées restantes"},
        {.rule = "ten-entry card: the last entry says so",
         .product = TEN_ENTRIES,
         .card_value_read = true,
         .card_value = 1,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = DEBIT,
         .remaining = 0,
         .message = "Bienvenue – dernière entrée"},
        {.rule = "ten-entry card: the card is the counter, whatever the list says",
         .product = TEN_ENTRIES,
         .card_value_read = true,
         .card_value = 3,
         .listed_used = 10,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = DEBIT,
         .remaining = 2,
         .message = "Bienvenue – 2 entrées restantes"},
        {.rule = "ten-entry card: an empty card is refused",
         .product = TEN_ENTRIES,
         .card_value_read = true,
         .card_value = 0,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_ENTRIES_EXHAUSTED,
         .remaining = -1,
         .message = "Plus d'entrée sur la carte"},
        {.rule = "ten-entry card: no value read, no entry",
         .product = TEN_ENTRIES,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_CARD_VALUE_MISSING,
         .remaining = -1,
         .message = "Carte illisible – présentez-la de nouveau"},
        {.rule = "ten entries on a phone: counted, list total plus this gate's",
         .product = TEN_ENTRIES,
         .credential = PHONE,
         .listed_used = 6,
         .local_uses = 1,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = ENTRY,
         .remaining = 2,
         .message = "Bienvenue – 2 entrées restantes"},
        {.rule = "ten entries on a phone: the eleventh is refused",
         .product = TEN_ENTRIES,
         .credential = PHONE,
         .listed_used = 9,
         .local_uses = 1,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_ENTRIES_EXHAUSTED,
         .remaining = -1,
         .message = "Plus d'entrée disponible"},
        {.rule = "waste centre: household quota counts the synced total and local visits",
         .product = WASTE_RESIDENT,
         .listed_used = 20,
         .local_uses = 2,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = QUOTA,
         .remaining = 1,
         .message = "Bienvenue – 1 passage restant cette année"},
        {.rule = "waste centre: the 24th visit is the last",
         .product = WASTE_RESIDENT,
         .listed_used = 23,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = QUOTA,
         .remaining = 0,
         .message = "Bienvenue – dernier passage cette année"},
        {.rule = "waste centre: the 25th visit of the year is refused",
         .product = WASTE_RESIDENT,
         .listed_used = 22,
         .local_uses = 2,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_QUOTA_REACHED,
         .remaining = -1,
         .message = "Quota annuel atteint"},
        {.rule = "waste centre: last year's visits do not count this year",
         .product = WASTE_RESIDENT,
         .listed_used = 24,
         .listed_period = LAST_PERIOD,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = QUOTA,
         .remaining = 23,
         .message = "Bienvenue – 23 passages restants cette année"},
        {.rule = "library: monthly quota reached",
         .product = LIBRARY_MONTH,
         .listed_used = 3,
         .local_uses = 1,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_QUOTA_REACHED,
         .remaining = -1,
         .message = "Quota mensuel atteint"},
        {.rule = "bus: a concession is refused where concessions do not apply",
         .product = BUS_CONCESSION,
         .site = BUS_NO_CONCESSION,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_FARE_NOT_ACCEPTED,
         .remaining = -1,
         .message = "Tarif non accepté ici"},
        {.rule = "bus: a resident fare is accepted there",
         .product = WASTE_RESIDENT,
         .site = BUS_NO_CONCESSION,
         /* => */ .grant = GRANT,
         .reason = OK,
         .action = QUOTA,
         .remaining = 23,
         .message = "Bienvenue – 23 passages restants cette année"},
        {.rule = "pool: closed at 21:00",
         .product = SEASON_PASS,
         .site = POOL,
         .local_hhmm = 2100,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_OUTSIDE_HOURS,
         .remaining = -1,
         .message = "Hors horaires d'ouverture"},
        {.rule = "pool: open from 09:00 sharp",
         .product = SEASON_PASS,
         .site = POOL,
         .local_hhmm = 900,
         /* => */ .grant = GRANT,
         .reason = OK,
         .remaining = -1,
         .message = "Bienvenue"},
        {.rule = "pool: closed from 20:00 sharp",
         .product = SEASON_PASS,
         .site = POOL,
         .local_hhmm = 2000,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_OUTSIDE_HOURS,
         .remaining = -1,
         .message = "Hors horaires d'ouverture"},
        {.rule = "pool: no second entry within 30 minutes",
         .product = SEASON_PASS,
         .site = POOL,
         .last_grant_minutes_ago = 5,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_ANTI_PASSBACK,
         .remaining = -1,
         .message = "Passage déjà enregistré – réessayez dans 25 min"},
        {.rule = "pool: a second entry after 30 minutes is fine",
         .product = SEASON_PASS,
         .site = POOL,
         .last_grant_minutes_ago = 30,
         /* => */ .grant = GRANT,
         .reason = OK,
         .remaining = -1,
         .message = "Bienvenue"},
        {.rule = "a revoked card outside opening hours is told it is revoked",
         .product = SEASON_PASS,
         .status = PROTO_STATUS_REVOKED,
         .site = POOL,
         .local_hhmm = 2300,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_REVOKED,
         .remaining = -1,
         .message = "Carte révoquée"},
        {.rule = "an expired list refuses everyone",
         .product = SEASON_PASS,
         .list = CONTROLLER_LIST_EXPIRED,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_LIST_EXPIRED,
         .remaining = -1,
         .message = "Service indisponible – liste périmée"},
        {.rule = "a stale list within grace still admits a known pass",
         .product = SEASON_PASS,
         .list = CONTROLLER_LIST_STALE,
         /* => */ .grant = GRANT,
         .reason = OK,
         .remaining = -1,
         .message = "Bienvenue"},
        {.rule = "a stale list within grace still refuses an unknown pass",
         .product = NOT_LISTED,
         .list = CONTROLLER_LIST_STALE,
         /* => */ .grant = REFUSE,
         .reason = CONTROLLER_REASON_UNKNOWN_PASS,
         .remaining = -1,
         .message = "Carte inconnue"},
};
/* clang-format on */

#define NOW_DAY_Y 2026
#define NOW_DAY_M 7
#define NOW_DAY_D 15

static void run_rule(const struct rule *r)
{
	int32_t today = proto_days_from_civil(NOW_DAY_Y, NOW_DAY_M, NOW_DAY_D);
	int hhmm = r->local_hhmm ? r->local_hhmm : 1000;
	struct controller_engine_input in = {
	        .credential = r->credential,
	        .card = {.value_present = r->card_value_read, .value = r->card_value},
	        .local = {.uses = r->local_uses},
	        .site = &sites[r->site],
	        .list_state = r->list,
	        .now = (int64_t)today * 86400 + 8 * 3600, /* 10:00 in Paris (CEST) */
	        .civil = {.day = today,
	                  .weekday = (uint8_t)proto_weekday(today),
	                  .minute = (uint16_t)(hhmm / 100 * 60 + hhmm % 100)},
	        .period_day = today,
	};
	if (r->product != NOT_LISTED) {
		const struct proto_rights_profile *p = &products[r->product];
		in.pass.found = true;
		in.pass.profile = *p;
		in.pass.entry.status = r->status;
		in.pass.entry.household = p->scope == PROTO_SCOPE_HOUSEHOLD ? 42 : 0;
		in.pass.entry.used = r->listed_used;
		in.pass.entry.used_period =
		        (uint8_t)(proto_period_number(p->period, today) - r->listed_period);
	}
	if (r->last_grant_minutes_ago)
		in.local.last_grant_at = in.now - (int64_t)r->last_grant_minutes_ago * 60;

	struct controller_decision d;
	controller_decide(&in, &d);
	print_message("rule: %s -> %s\n", r->rule, d.message);
	assert_int_equal(d.grant, r->grant);
	assert_string_equal(controller_reason_name(d.reason), controller_reason_name(r->reason));
	assert_int_equal(d.action, r->action);
	assert_int_equal(d.remaining, r->remaining);
	assert_string_equal(d.message, r->message);
	assert_int_equal(d.on_stale_list, r->grant && r->list == CONTROLLER_LIST_STALE);
	if (d.action == CONTROLLER_ACTION_COUNT_QUOTA ||
	    d.action == CONTROLLER_ACTION_COUNT_ENTRY) {
		assert_int_equal(d.period, in.pass.profile.period);
		assert_true(d.period_number == proto_period_number(in.pass.profile.period, today));
	}
}

static void test_council_rules(void **state)
{
	(void)state;
	define_products();
	define_sites();
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		run_rule(&rules[i]);
}

static void test_no_site_policy_means_open(void **state)
{
	(void)state;
	define_products();
	struct controller_engine_input in = {
	        .pass = {.found = true, .profile = products[SEASON_PASS]},
	        .civil = {.day = day_of(2026, 7, 15)},
	        .period_day = day_of(2026, 7, 15)};
	struct controller_decision d;
	controller_decide(&in, &d);
	assert_true(d.grant);
}

/* A site whose date is already 1 January while the deployment's is still 31 December
 * (an overseas site, or one east of the server): the year's quota is counted in the
 * deployment's year, as the server counted the list's uses — not reset by the site's. */
static void test_quota_period_is_the_deployments(void **state)
{
	(void)state;
	define_products();
	const struct proto_rights_profile *p = &products[WASTE_RESIDENT];
	struct controller_engine_input in = {
	        .pass = {.found = true, .profile = *p},
	        .civil = {.day = day_of(2027, 1, 1), .minute = 10 * 60},
	        .period_day = day_of(2026, 12, 31)};
	in.pass.entry.household = 42;
	in.pass.entry.used = 24;
	in.pass.entry.used_period =
	        (uint8_t)(proto_period_number(PROTO_PERIOD_YEAR, day_of(2026, 12, 31)) & 0xFF);
	struct controller_decision d;
	controller_decide(&in, &d);
	assert_false(d.grant);
	assert_int_equal(d.reason, CONTROLLER_REASON_QUOTA_REACHED);
	/* the deployment's new year: the list's 24 are of the year before */
	in.period_day = day_of(2027, 1, 1);
	controller_decide(&in, &d);
	assert_true(d.grant);
	assert_int_equal(d.period_number, 2027);
}

/* --- period numbers ------------------------------------------------------------------- */

static void test_period_numbers(void **state)
{
	(void)state;
	int32_t d = proto_days_from_civil(2026, 7, 15);
	assert_int_equal(proto_period_number(PROTO_PERIOD_NONE, d), 0);
	assert_int_equal(proto_period_number(PROTO_PERIOD_LIFETIME, d), 0);
	assert_int_equal(proto_period_number(PROTO_PERIOD_DAY, d), d);
	assert_int_equal(proto_period_number(PROTO_PERIOD_YEAR, d), 2026);
	assert_int_equal(proto_period_number(PROTO_PERIOD_MONTH, d), 2026 * 12 + 6);
	/* Weeks run Monday to Sunday: Sunday 19 July and Monday 20 July differ. */
	int64_t sun = proto_period_number(PROTO_PERIOD_WEEK, proto_days_from_civil(2026, 7, 19));
	int64_t mon = proto_period_number(PROTO_PERIOD_WEEK, proto_days_from_civil(2026, 7, 20));
	int64_t prev_mon =
	        proto_period_number(PROTO_PERIOD_WEEK, proto_days_from_civil(2026, 7, 13));
	assert_int_equal(mon, sun + 1);
	assert_int_equal(prev_mon, sun);
	/* New Year: 31 December and 1 January are different years and months. */
	int32_t dec31 = proto_days_from_civil(2025, 12, 31);
	assert_int_equal(proto_period_number(PROTO_PERIOD_YEAR, dec31 + 1),
	                 proto_period_number(PROTO_PERIOD_YEAR, dec31) + 1);
	assert_int_equal(proto_period_number(PROTO_PERIOD_MONTH, dec31 + 1),
	                 proto_period_number(PROTO_PERIOD_MONTH, dec31) + 1);
	/* Days before 1970 still map back and forth. */
	int32_t y;
	unsigned m, md;
	proto_civil_from_days(proto_days_from_civil(1969, 12, 29), &y, &m, &md);
	assert_int_equal(y, 1969);
	assert_int_equal(m, 12);
	assert_int_equal(md, 29);
	assert_int_equal(proto_weekday(proto_days_from_civil(1969, 12, 29)), 0);
	assert_int_equal(proto_weekday(0), 3); /* 1 January 1970 was a Thursday */
}

/* --- civil time across daylight-saving changes (Europe/Paris) ------------------------- */

static int64_t utc(int y, unsigned m, unsigned d, int hh, int mm)
{
	return (int64_t)proto_days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60;
}

/* t as civil time in Europe/Paris, as a gate of that site sees it */
static void paris(int64_t t, struct proto_civil_time *c)
{
	struct proto_zone *z = NULL;
	assert_int_equal(proto_zone_load(&z, "Europe/Paris"), 0);
	proto_zone_civil(z, t, c);
	proto_zone_free(z);
}

static void check_local(int64_t t, int y, unsigned m, unsigned d, int hh, int mm)
{
	struct proto_civil_time c;
	paris(t, &c);
	assert_int_equal(c.day, proto_days_from_civil(y, m, d));
	assert_int_equal(c.minute, hh * 60 + mm);
	assert_int_equal(c.weekday, proto_weekday(c.day));
}

static void test_paris_dst(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	/* Spring forward, Sunday 29 March 2026 at 01:00 UTC: 02:00 CET becomes 03:00 CEST. */
	check_local(utc(2026, 3, 29, 0, 30), 2026, 3, 29, 1, 30);
	check_local(utc(2026, 3, 29, 1, 30), 2026, 3, 29, 3, 30);
	/* Fall back, Sunday 25 October 2026 at 01:00 UTC: 02:30 local happens twice. */
	check_local(utc(2026, 10, 25, 0, 30), 2026, 10, 25, 2, 30);
	check_local(utc(2026, 10, 25, 1, 30), 2026, 10, 25, 2, 30);
	/* Midnight local in summer is 22:00 UTC the day before: the civil date moves. */
	check_local(utc(2026, 7, 14, 22, 30), 2026, 7, 15, 0, 30);
	/* The process's zone is restored. */
	assert_string_equal(getenv("TZ"), "UTC");

	/* The pool opens at 09:00 local: 07:30 UTC is 09:30 after the change (open), but
	 * 08:30 before it (closed), on consecutive Sundays. */
	define_products();
	define_sites();
	struct controller_engine_input in = {
	        .pass = {.found = true, .profile = products[SEASON_PASS]}, .site = &sites[POOL]};
	in.pass.profile.valid_from = 0;
	struct controller_decision d;
	in.now = utc(2026, 3, 29, 7, 30);
	paris(in.now, &in.civil);
	controller_decide(&in, &d);
	assert_true(d.grant);
	in.now = utc(2026, 3, 22, 7, 30);
	paris(in.now, &in.civil);
	controller_decide(&in, &d);
	assert_false(d.grant);
	assert_int_equal(d.reason, CONTROLLER_REASON_OUTSIDE_HOURS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_council_rules),
	        cmocka_unit_test(test_no_site_policy_means_open),
	        cmocka_unit_test(test_quota_period_is_the_deployments),
	        cmocka_unit_test(test_period_numbers),
	        cmocka_unit_test(test_paris_dst),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
