/* proto/src/reason.c — the names of the reasons a statistic carries (proto/reason.h). */
#include <stddef.h>

#include "proto/reason.h"

const char *proto_reason_name(uint32_t reason)
{
	static const char *const names[] = {
	        [PROTO_REASON_OK] = "ok",
	        [PROTO_REASON_LIST_EXPIRED] = "list_expired",
	        [PROTO_REASON_UNKNOWN_PASS] = "unknown_pass",
	        [PROTO_REASON_REVOKED] = "revoked",
	        [PROTO_REASON_REPLACED] = "replaced",
	        [PROTO_REASON_SUSPENDED] = "suspended",
	        [PROTO_REASON_NOT_YET_VALID] = "not_yet_valid",
	        [PROTO_REASON_SUBSCRIPTION_EXPIRED] = "subscription_expired",
	        [PROTO_REASON_FARE_NOT_ACCEPTED] = "fare_not_accepted",
	        [PROTO_REASON_OUTSIDE_HOURS] = "outside_hours",
	        [PROTO_REASON_ANTI_PASSBACK] = "anti_passback",
	        [PROTO_REASON_QUOTA_REACHED] = "quota_reached",
	        [PROTO_REASON_ENTRIES_EXHAUSTED] = "entries_exhausted",
	        [PROTO_REASON_CARD_VALUE_MISSING] = "card_value_missing",
	        [PROTO_REASON_BAD_STATUS] = "bad_status",
	        [PROTO_REASON_CLONE_SUSPECTED] = "clone_suspected",
	        [PROTO_REASON_CARD_AUTH_FAILED] = "card_auth_failed",
	        [PROTO_REASON_CARD_INVALID] = "card_invalid",
	        [PROTO_REASON_CREDENTIAL_INVALID] = "credential_invalid",
	        [PROTO_REASON_CREDENTIAL_EXPIRED] = "credential_expired",
	        [PROTO_REASON_QR_REPLAYED] = "qr_replayed",
	        [PROTO_REASON_QR_OUTSIDE_WINDOW] = "qr_outside_window",
	};
	/* the gap between the engine's rules and issue 14's range holds no name */
	return reason < sizeof(names) / sizeof(names[0]) ? names[reason] : NULL;
}

bool proto_reason_known(uint32_t reason)
{
	return proto_reason_name(reason) != NULL;
}
