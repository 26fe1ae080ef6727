/*
 * server/holder.h — a holder's requests (issue 17, GDPR art. 15 and 17; docs/privacy.md):
 * everything the server keeps about the holder of a pass, and its erasure. citypass-admin
 * holder export|erase and the agents' back office call the same functions.
 *
 * The holder's passes are the pass named and every pass it replaced or was replaced by
 * (a replacement keeps the holder): a card lost and replaced twice is one person's three
 * passes. A household is other people too: its name is the holder's data only while no
 * other pass is in it.
 */
#ifndef SERVER_HOLDER_H
#define SERVER_HOLDER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/error.h"
#include "server/passes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The holder's passes, from any one of them (*ids malloc'd, in id order). */
int server_holder_passes(const struct server_desk *d, int64_t pass, int64_t **ids, size_t *n,
                         struct server_why *why);

/*
 * Everything the server keeps about the holder of `pass`, at d->now: each pass (holder,
 * household, state and reason, medium, dates), its rights, its identifier and list key per
 * sector (on the card, or in the phone's credential), the uses kept under them with the
 * date each will be deleted, and what is kept elsewhere (gates, backups, logs). As JSON to
 * `json` and as a readable HTML page to `page` (either may be NULL). Reads one snapshot.
 */
int server_holder_export(const struct server_desk *d, int64_t pass, FILE *json, FILE *page,
                         struct server_why *why);

struct server_holder_erasure {
	size_t passes;                    /* passes erased */
	uint64_t uses;                    /* uses (consumption rows) erased with them */
	int household_kept;               /* a household other passes still belong to */
	struct server_sector_set rebuilt; /* sectors whose lists were rebuilt without them */
	int flushed; /* 1: no copy left in the database's files; 0: another connection held
	                an older snapshot (citypass-server): run the erase again later */
};

/*
 * Erase the holder of `pass`: every pass of theirs and all it holds (one transaction),
 * then each sector's list rebuilt without them, only the new version kept (gates take it
 * as a snapshot: the older versions held their list keys), then the files flushed. What
 * the server cannot remove — the card itself, the gates' journals until their retention,
 * backups, statistics without any identifier — is written as sentences to `kept` (may be
 * NULL), each with until when.
 */
int server_holder_erase(const struct server_desk *d, int64_t pass,
                        struct server_holder_erasure *out, FILE *kept, struct server_why *why);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_HOLDER_H */
