/*
 * controller/engine.h — the decision engine: grant or refuse one tap.
 *
 * A pure function of (list entry, local counters, credential, site policy, clock): no I/O,
 * no globals, no time zone lookups. Everything else in the controller feeds it (list store,
 * journal, card read, proto_zone_civil) or carries out its verdict (relay,
 * display, card debit, journal). The rules are DESIGN.md section 4; their order and the
 * messages are in docs/controller.md, and tests/controller/test_controller_engine.c has
 * one table row per rule.
 */
#ifndef CONTROLLER_ENGINE_H
#define CONTROLLER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/calendar.h"
#include "proto/list.h"
#include "proto/reason.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the citizen presented the pass. */
enum controller_credential {
	CONTROLLER_CRED_CARD = 0,      /* DESFire card */
	CONTROLLER_CRED_PHONE_NFC = 1, /* phone, NFC HCE */
	CONTROLLER_CRED_PHONE_QR = 2,  /* phone, signed QR code */
};

/* How usable the held list is at this instant (controller_list_state_at()). */
enum controller_list_state {
	CONTROLLER_LIST_FRESH = 0,   /* before its expiry */
	CONTROLLER_LIST_STALE = 1,   /* expired, but the site accepts known passes for a while */
	CONTROLLER_LIST_EXPIRED = 2, /* expired past any grace, or no list held: refuse all */
};

/* Why a tap was granted or refused. The numbers go into statistics: they are proto's
 * (proto/reason.h), where the server reads and names them too. The engine gives the rules'
 * reasons; the tap (controller/tap.h) gives those of a medium refused before any lookup. */
enum controller_reason {
	CONTROLLER_REASON_OK = PROTO_REASON_OK,
	CONTROLLER_REASON_LIST_EXPIRED = PROTO_REASON_LIST_EXPIRED,
	CONTROLLER_REASON_UNKNOWN_PASS = PROTO_REASON_UNKNOWN_PASS,
	CONTROLLER_REASON_REVOKED = PROTO_REASON_REVOKED,
	CONTROLLER_REASON_REPLACED = PROTO_REASON_REPLACED,
	CONTROLLER_REASON_SUSPENDED = PROTO_REASON_SUSPENDED,
	CONTROLLER_REASON_NOT_YET_VALID = PROTO_REASON_NOT_YET_VALID,
	CONTROLLER_REASON_SUBSCRIPTION_EXPIRED = PROTO_REASON_SUBSCRIPTION_EXPIRED,
	CONTROLLER_REASON_FARE_NOT_ACCEPTED = PROTO_REASON_FARE_NOT_ACCEPTED,
	CONTROLLER_REASON_OUTSIDE_HOURS = PROTO_REASON_OUTSIDE_HOURS,
	CONTROLLER_REASON_ANTI_PASSBACK = PROTO_REASON_ANTI_PASSBACK,
	CONTROLLER_REASON_QUOTA_REACHED = PROTO_REASON_QUOTA_REACHED,
	CONTROLLER_REASON_ENTRIES_EXHAUSTED = PROTO_REASON_ENTRIES_EXHAUSTED,
	CONTROLLER_REASON_CARD_VALUE_MISSING = PROTO_REASON_CARD_VALUE_MISSING,
	CONTROLLER_REASON_BAD_STATUS = PROTO_REASON_BAD_STATUS,
	/* issue 14: the medium refused before any list lookup (they were all unknown_pass) */
	CONTROLLER_REASON_CLONE_SUSPECTED = PROTO_REASON_CLONE_SUSPECTED,
	CONTROLLER_REASON_CARD_AUTH_FAILED = PROTO_REASON_CARD_AUTH_FAILED,
	CONTROLLER_REASON_CARD_INVALID = PROTO_REASON_CARD_INVALID,
	CONTROLLER_REASON_CREDENTIAL_INVALID = PROTO_REASON_CREDENTIAL_INVALID,
	CONTROLLER_REASON_CREDENTIAL_EXPIRED = PROTO_REASON_CREDENTIAL_EXPIRED,
	CONTROLLER_REASON_QR_REPLAYED = PROTO_REASON_QR_REPLAYED,
	CONTROLLER_REASON_QR_OUTSIDE_WINDOW = PROTO_REASON_QR_OUTSIDE_WINDOW,
};

/* What the controller must do when it opens the gate. */
enum controller_action {
	CONTROLLER_ACTION_NONE = 0,
	CONTROLLER_ACTION_DEBIT_CARD = 1,  /* debit 1 from the card's value file, then commit */
	CONTROLLER_ACTION_COUNT_ENTRY = 2, /* journal one entry (phone, or counted entries) */
	CONTROLLER_ACTION_COUNT_QUOTA = 3, /* journal one quota use for the pass or household */
};

/* One weekly opening window in local civil time: [open, close) minutes on the days set. */
struct controller_time_window {
	uint8_t days;   /* bit 0 Monday .. bit 6 Sunday */
	uint16_t open;  /* minutes since local midnight */
	uint16_t close; /* open < close <= 1440; a night opening is two windows */
};

#define CONTROLLER_MAX_WINDOWS 32
#define CONTROLLER_DAYS_ALL    0x7F

/* A site's rules for its gates. */
struct controller_site_policy {
	struct controller_time_window windows[CONTROLLER_MAX_WINDOWS];
	size_t window_count;           /* 0: open at all hours */
	uint16_t antipassback_minutes; /* 0: no anti-passback */
	uint8_t refused_fares;         /* bit (1 << enum proto_fare) set: fare not accepted here */
};

/* What the list said about the pass. */
struct controller_pass {
	bool found;
	struct proto_list_entry entry;
	struct proto_rights_profile profile;
};

/* What the card read gave (cards only). */
struct controller_card_read {
	bool value_present; /* the entries value file was read */
	int32_t value;      /* its value: entries left on the card */
};

/* What this gate knows that the list does not yet reflect (from the journal). */
struct controller_local_counters {
	/* Uses of this pass — or of its household when the profile's scope is the household —
	 * in the current period, journalled here and not yet counted in the list's `used`. */
	uint32_t uses;
	/* Last grant for this pass at this site (Unix seconds), 0 when none is remembered. */
	int64_t last_grant_at;
};

struct controller_engine_input {
	struct controller_pass pass;
	enum controller_credential credential;
	struct controller_card_read card;
	struct controller_local_counters local;
	const struct controller_site_policy *site;
	enum controller_list_state list_state;
	int64_t now;                   /* the gate's clock, Unix seconds */
	struct proto_civil_time civil; /* now, in the site's local civil time */
	/* Today in the deployment's zone, which numbers quota periods on the server and on
	 * every gate alike (proto/calendar.h): the site's zone may be another. */
	int32_t period_day;
};

#define CONTROLLER_MESSAGE_MAX 96

struct controller_decision {
	bool grant;
	enum controller_reason reason;
	enum controller_action action;
	/* The counter the action feeds: its period kind and full period number. */
	uint8_t period;
	int64_t period_number;
	/* Entries or uses left after this one, -1 when the right has no counter. */
	int32_t remaining;
	/* Granted on a stale list: the display shows it and the controller logs it. */
	bool on_stale_list;
	/* What the display shows, UTF-8, French. */
	char message[CONTROLLER_MESSAGE_MAX];
};

/* Decide one tap. Never fails: a malformed input is a refusal with its reason. */
void controller_decide(const struct controller_engine_input *in, struct controller_decision *out);

/* Short stable English name of a reason ("quota_reached"), for logs and tests. */
const char *controller_reason_name(enum controller_reason reason);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_ENGINE_H */
