/*
 * server/privacy.h — what the deployment keeps about people, and for how long (issue 17,
 * DESIGN §5, docs/privacy.md).
 *
 * Retention follows the service: each sector has a kind of service, and a retention of its
 * identifying rows (the server's consumption detail, the gates' consumption and
 * anti-passback rows) with a default and a ceiling per kind that the configuration cannot
 * exceed. The kind and the retention are deployment settings (the store's meta keys
 * `sector_kind.N` and `sector_retention_h.N`); a sector with neither is access control
 * with its default.
 *
 * The gates learn their sector's retention in every session's Welcome (retention_hours,
 * over the mutually authenticated link) and purge with the stricter of it and their own.
 * The server folds its consumption rows older than the retention (server_retention_purge):
 * the count a right needs for its period stays, under the pass's list key, without the
 * gate, the sequence or the time it came from.
 */
#ifndef SERVER_PRIVACY_H
#define SERVER_PRIVACY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/error.h"
#include "server/store.h"

#ifdef __cplusplus
extern "C" {
#endif

enum server_service_kind {
	SERVER_KIND_ACCESS = 0,    /* access control: pool, library, waste centre */
	SERVER_KIND_TRANSPORT = 1, /* public transport validations */
};

/* CNIL AU-015 (délibération 2011-107), art. 4: identifying validation data of a transport
 * service, 48 hours at most. */
#define SERVER_RETENTION_TRANSPORT_MAX_H 48u
/* CNIL's guidance for access-control logs: 3 months, taken as 90 days (never more than any
 * three calendar months but one day). */
#define SERVER_RETENTION_ACCESS_MAX_H (90u * 24u)

struct server_retention {
	uint16_t sector;
	char name[SERVER_NAME_MAX];
	int kind;       /* enum server_service_kind */
	uint32_t hours; /* identifying rows are kept at most this long */
	int configured; /* 1: set with `sector set --retention`; 0: the kind's default */
};

/* "transport" / "access", and back (-1 when not one of them). */
const char *server_kind_name(int kind);
int server_kind_parse(const char *s);
/* The most, and the default, a kind allows (hours); the default is the ceiling: the law's
 * limit is already the longest a purpose justifies. */
uint32_t server_retention_ceiling_h(int kind);
/* The law behind the ceiling, for sentences and the record of processing. */
const char *server_retention_basis(int kind);

/* A sector's kind and retention (NOT_FOUND: no such sector). */
int server_retention_get(struct server_store *st, uint16_t sector, struct server_retention *out);

/*
 * Set a sector's kind (kind < 0: unchanged) and retention (hours 0: the kind's default),
 * inside the caller's transaction. SERVER_ERR_RETENTION, with the sentence in *why, when the
 * retention is above the kind's ceiling (a kind changed to transport with a retention kept
 * from before counts too).
 */
int server_retention_set(struct server_store *st, uint16_t sector, int kind, uint32_t hours,
                         struct server_why *why);

/*
 * Fold every sector's consumption rows that will be older than its retention at
 * now + ahead_s (a caller purging every ahead_s seconds keeps none past it): one row per
 * (list key, product, period) keeps the count, without gate, sequence or time. One
 * transaction; *folded (may be NULL) gets how many rows went.
 */
int server_retention_purge(struct server_store *st, int64_t now, int64_t ahead_s, uint64_t *folded);

/*
 * The record of processing (GDPR art. 30) of this deployment, as Markdown, from its own
 * settings: each processing with its purpose, data, place, readers and retention, the
 * retention per sector. Reads in one snapshot; writes nothing.
 */
int server_privacy_register(struct server_store *st, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_PRIVACY_H */
