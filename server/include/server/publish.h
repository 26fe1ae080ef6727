/*
 * server/publish.h — the list publisher: from the rights database to signed lists.
 *
 * For one sector: every pass holding a right there is an entry (status from the pass's
 * state, used/used_period from the consumption stream, household quotas summed over the
 * household); identical rights share one profile whose index never changes. Lists are in
 * format 2 (proto/clist.h, docs/list-format.md) and publishing costs what changed: the
 * store logs the list key of every change (server/store.h), and a publish reads that log,
 * recomputes those entries only, rewrites the chunks that hold them, and signs a new
 * manifest and the delta from the previous version. The first publish of a sector (and a
 * format upgrade, or a sector that outgrew its partition) rebuilds everything once.
 *
 * A publish runs its own short transactions (never the caller's): it reads in one read
 * transaction, computes and signs without any lock, then writes the version in one short
 * write transaction. Publishers take turns (an flock on DATA/publish.lock, which the kernel
 * releases when a publisher dies), so two agents publishing at once are served one after
 * the other.
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
/* How far a restore raises every sector's list version (meta list_floor.N): above any
 * version the lost server can have published since the backup (docs/backup.md). */
#define SERVER_LIST_RESTORE_GAP 1000000u

struct server_publish_opts {
	int64_t now;        /* issue time, Unix seconds */
	int64_t validity_s; /* expiry = now + validity_s */
	unsigned keep;      /* versions and deltas kept per sector */
	int full;           /* rebuild every chunk (gates then need a snapshot) */
	/* Entries a chunk aims at when a full rebuild partitions the sector (0: the format's
	 * PROTO_CLIST_CHUNK_TARGET). Tests set it low to get many chunks from few passes. */
	unsigned chunk_target;
};

/* What a publish did. */
struct server_publish_result {
	uint64_t version;
	int full;                /* every chunk was rebuilt */
	uint32_t changed_keys;   /* keys the change log named */
	uint32_t changed_chunks; /* chunks rewritten */
	uint32_t entries;        /* passes in the new version */
	size_t delta_len;        /* bytes of the delta from the previous version (0: none) */
};

/*
 * The current period numbers at `now`: proto_periods_of_day() (proto/calendar.h) of the
 * civil date in the process's time zone (TZ), which is the deployment's — the zone
 * `device add` writes into each bundle as period-tz, so that gates count alike.
 */
void server_periods_at(int64_t now, struct server_periods *out);

/* Publish the next version of a sector's list (outside any transaction of the caller's);
 * res may be NULL. */
int server_publish_sector(struct server_store *s, const char *data_dir, uint16_t sector,
                          const struct server_publish_opts *o, struct server_publish_result *res);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_PUBLISH_H */
