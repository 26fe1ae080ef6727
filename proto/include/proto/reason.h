/*
 * proto/reason.h — why a gate granted or refused a tap: the numbers a statistic carries from
 * the gate's journal to the server's reports (StatEvent.reason), and their names.
 *
 * One home for both ends: the gate's engine numbers its reasons from here
 * (controller/engine.h), the server checks and names the statistics it receives from here
 * (server/src/sync_validate.c, citypass-admin stats --by reason). The numbers are stable:
 * they are stored on both machines. New reasons take numbers from the range of the issue
 * that adds them (issue 14: 50-59); a reason a server does not know makes it refuse the
 * batch, so servers are upgraded before their gates (docs/sync-protocol.md).
 */
#ifndef PROTO_REASON_H
#define PROTO_REASON_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum proto_reason {
	PROTO_REASON_OK = 0,
	/* the decision engine's rules (docs/controller.md, "Decision engine") */
	PROTO_REASON_LIST_EXPIRED = 1,
	PROTO_REASON_UNKNOWN_PASS = 2,
	PROTO_REASON_REVOKED = 3,
	PROTO_REASON_REPLACED = 4,
	PROTO_REASON_SUSPENDED = 5,
	PROTO_REASON_NOT_YET_VALID = 6,
	PROTO_REASON_SUBSCRIPTION_EXPIRED = 7,
	PROTO_REASON_FARE_NOT_ACCEPTED = 8,
	PROTO_REASON_OUTSIDE_HOURS = 9,
	PROTO_REASON_ANTI_PASSBACK = 10,
	PROTO_REASON_QUOTA_REACHED = 11,
	PROTO_REASON_ENTRIES_EXHAUSTED = 12,
	PROTO_REASON_CARD_VALUE_MISSING = 13, /* entries on card, but no value read */
	PROTO_REASON_BAD_STATUS = 14,         /* a status the engine does not know */
	/* Issue 14: the medium itself refused, before any list lookup (all were unknown_pass,
	 * so statistics lost the cause). */
	PROTO_REASON_CLONE_SUSPECTED = 50,    /* a UID and no citypass application: MIFARE
	                                       * Classic, Ultralight, UID-only tags, a DESFire
	                                       * without the application (a copied UID) */
	PROTO_REASON_CARD_AUTH_FAILED = 51,   /* the citypass application, but the card cannot
	                                       * prove this deployment's key (authentication
	                                       * or a response MAC failed): a forged card */
	PROTO_REASON_CARD_INVALID = 52,       /* authenticated, but its files are not the
	                                       * citypass layout (missing file, permissions) */
	PROTO_REASON_CREDENTIAL_INVALID = 53, /* a phone's credential or proof does not verify
	                                       * (format, issuer signature, sector, challenge) */
	PROTO_REASON_CREDENTIAL_EXPIRED = 54, /* a phone's credential outside its validity */
	PROTO_REASON_QR_REPLAYED = 55,        /* a QR code already used (a screenshot) */
	PROTO_REASON_QR_OUTSIDE_WINDOW = 56,  /* a QR code outside its 30 s window */
};

/* Short stable English name ("quota_reached", "clone_suspected"), NULL for a number that
 * is no reason. */
const char *proto_reason_name(uint32_t reason);
/* Whether a statistic may carry this reason. */
bool proto_reason_known(uint32_t reason);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_REASON_H */
