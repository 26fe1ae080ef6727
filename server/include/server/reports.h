/*
 * server/reports.h — what the statistics and the rights say in sum, for citypass-admin
 * (stats, opendata export, quota report) and the agents' back office alike (DESIGN §5, §12;
 * docs/admin.md "Statistics and open data").
 *
 * Statistics come from the anonymous stream (no identifier of any kind). The open-data
 * export suppresses every count under SERVER_OPENDATA_MIN (national statistics offices'
 * threshold) and publishes no total, so that no suppressed cell can be recovered.
 */
#ifndef SERVER_REPORTS_H
#define SERVER_REPORTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_OPENDATA_MIN 10

/* What a sum of statistics is grouped by. */
enum server_stat_dim {
	SERVER_STAT_SITE = 1,
	SERVER_STAT_SERVICE = 2,
	SERVER_STAT_OUTCOME = 4,
	SERVER_STAT_HOUR = 8,
	SERVER_STAT_REASON = 16,
};

/* One group: the fields of the dimensions asked (the others 0), and its counts. */
struct server_stat_sum {
	uint32_t site, sector, reason;
	int outcome;  /* Citypass__Outcome */
	int64_t hour; /* Unix seconds at the hour's start */
	uint64_t granted, refused, count;
};

/* The statistics of [from, to) summed by `dims` (enum server_stat_dim), in the order groups
 * first appear; *out malloc'd. */
int server_stats_sum(struct server_store *st, int64_t from, int64_t to, unsigned dims,
                     struct server_stat_sum **out, size_t *n);

/* The open-data CSV of [from, to): "hour,site,service,granted,refused", one row per hour x
 * site x service that saw any decision, each count under SERVER_OPENDATA_MIN written
 * "<10". Hours in the process's time zone (the deployment's), ISO 8601 with offset. */
int server_opendata_write(struct server_store *st, int64_t from, int64_t to, FILE *f);

/* A pass (or a household, once) past its quota in the current period. */
struct server_quota_line {
	struct server_sector sector;
	int64_t pass; /* 0: not found */
	char holder[SERVER_TEXT_MAX];
	int household; /* a household quota: the total of every member */
	uint32_t used, limit;
};

/* Every active pass or household whose counted uses at `now` exceed its right's limit, in
 * sector `only` (NULL: every sector); fn's non-zero return stops and is returned. Uses on a
 * card's value file are not the server's to see. */
int server_quota_overshoot(struct server_store *st, int64_t now, const struct server_sector *only,
                           int (*fn)(void *arg, const struct server_quota_line *l), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_REPORTS_H */
