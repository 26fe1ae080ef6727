/*
 * server/publish.h — the list publisher: from the rights database to signed lists.
 *
 * For one sector: every pass holding a right there becomes an entry (status from the
 * pass's state, used/used_period from the consumption stream, household quotas summed over
 * the household); identical rights share one profile whose index never changes; the
 * snapshot is built and signed with DATA/keys/list.key, and so is the delta from the
 * previous version. Runs inside the caller's transaction, so a change and the list that
 * shows it commit together.
 */
#ifndef SERVER_PUBLISH_H
#define SERVER_PUBLISH_H

#include <stdint.h>

#include "server/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_LIST_VALIDITY_DEFAULT (7 * 86400)
#define SERVER_KEEP_DEFAULT          30

struct server_publish_opts {
	int64_t now;        /* issue time, Unix seconds */
	int64_t validity_s; /* expiry = now + validity_s */
	unsigned keep;      /* snapshots and deltas kept per sector */
};

/*
 * The current period numbers at `now`, from the civil date in the process's time zone
 * (TZ): day = days since 1970-01-01, week = (day + 3) / 7 (weeks start on Monday),
 * month = year * 12 + month (1..12), year = year.
 */
void server_periods_at(int64_t now, struct server_periods *out);

/* Publish the next version of a sector's list; *version gets it. */
int server_publish_sector(struct server_store *s, const char *data_dir, uint16_t sector,
                          const struct server_publish_opts *o, uint64_t *version);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_PUBLISH_H */
