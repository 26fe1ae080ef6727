/*
 * reports.c — statistics summed, the open-data CSV, the quota report (server/reports.h).
 * Moved here from citypass-admin so that the back office shows the same figures.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "citypass.pb-c.h"
#include "server/passes.h"
#include "server/publish.h"
#include "server/reports.h"

struct sum_ctx {
	unsigned dims;
	struct server_stat_sum *v;
	size_t n, cap;
};

static int sum_add(void *arg, const struct server_stat_row *r)
{
	struct sum_ctx *g = arg;
	struct server_stat_sum k;
	memset(&k, 0, sizeof(k));
	if (g->dims & SERVER_STAT_SITE)
		k.site = r->site;
	if (g->dims & SERVER_STAT_SERVICE)
		k.sector = r->sector;
	if (g->dims & SERVER_STAT_OUTCOME)
		k.outcome = r->outcome;
	if (g->dims & SERVER_STAT_HOUR)
		k.hour = r->quarter_hour - r->quarter_hour % 3600;
	if (g->dims & SERVER_STAT_REASON)
		k.reason = r->reason;
	size_t i = 0;
	for (; i < g->n; i++)
		if (g->v[i].site == k.site && g->v[i].sector == k.sector &&
		    g->v[i].outcome == k.outcome && g->v[i].hour == k.hour &&
		    g->v[i].reason == k.reason)
			break;
	if (i == g->n) {
		if (g->n == g->cap) {
			size_t ncap = g->cap ? g->cap * 2 : 64;
			struct server_stat_sum *nv = realloc(g->v, ncap * sizeof(*nv));
			if (!nv)
				return SERVER_ERR_NOMEM;
			g->v = nv;
			g->cap = ncap;
		}
		g->v[g->n++] = k;
	}
	g->v[i].count += r->count;
	if (r->outcome == CITYPASS__OUTCOME__GRANTED)
		g->v[i].granted += r->count;
	else if (r->outcome == CITYPASS__OUTCOME__REFUSED)
		g->v[i].refused += r->count;
	return 0;
}

int server_stats_sum(struct server_store *st, int64_t from, int64_t to, unsigned dims,
                     struct server_stat_sum **out, size_t *n)
{
	struct sum_ctx g = {dims, NULL, 0, 0};
	int rc = st->ops->stats(st->ctx, from, to, 3600, sum_add, &g);
	if (rc) {
		free(g.v);
		return rc;
	}
	*out = g.v;
	*n = g.n;
	return 0;
}

static void cell(FILE *f, uint64_t n)
{
	if (n < SERVER_OPENDATA_MIN)
		fprintf(f, ",<%d", SERVER_OPENDATA_MIN);
	else
		fprintf(f, ",%" PRIu64, n);
}

int server_opendata_write(struct server_store *st, int64_t from, int64_t to, FILE *f)
{
	struct server_stat_sum *v = NULL;
	size_t n = 0;
	int rc = server_stats_sum(
	        st, from, to, SERVER_STAT_SITE | SERVER_STAT_SERVICE | SERVER_STAT_HOUR, &v, &n);
	if (rc)
		return rc;
	fprintf(f, "hour,site,service,granted,refused\n");
	for (size_t i = 0; i < n; i++) {
		char hour[40], sec[SERVER_NAME_MAX];
		struct server_site site;
		time_t tt = (time_t)v[i].hour;
		struct tm tm;
		localtime_r(&tt, &tm);
		strftime(hour, sizeof(hour), "%Y-%m-%dT%H:%M%z", &tm);
		server_sector_name(st, (uint16_t)v[i].sector, sec, sizeof(sec));
		if (st->ops->site_get(st->ctx, v[i].site, &site) == 0)
			fprintf(f, "%s,%s,%s", hour, site.name, sec);
		else
			fprintf(f, "%s,site-%u,%s", hour, v[i].site, sec);
		cell(f, v[i].granted);
		cell(f, v[i].refused);
		fputc('\n', f);
	}
	free(v);
	return ferror(f) ? SERVER_ERR_IO : 0;
}

struct owner_search {
	struct server_store *st;
	uint16_t sector;
	const uint8_t *key;
	struct server_pass found;
	int hit;
};

static int match_key(void *arg, const struct server_pass *p)
{
	struct owner_search *s = arg;
	uint8_t key[PROTO_LIST_KEY_LEN];
	if (s->st->ops->pass_id_get(s->st->ctx, p->id, s->sector, NULL, key) == 0 &&
	    memcmp(key, s->key, sizeof(key)) == 0) {
		s->found = *p;
		s->hit = 1;
		return 1; /* stop */
	}
	return 0;
}

struct overshot {
	struct server_list_row *v;
	size_t n, cap;
};

/* The rows above their quota only: a report reads the whole sector and keeps few. */
static int keep_overshot(void *arg, const struct server_list_row *r)
{
	struct overshot *o = arg;
	if (r->p.limit == 0 || (r->p.flags & PROTO_PROFILE_ENTRIES_ON_CARD) ||
	    r->used <= r->p.limit || r->state != SERVER_PASS_ACTIVE)
		return 0;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 16;
		struct server_list_row *nv = realloc(o->v, cap * sizeof(*nv));
		if (!nv)
			return SERVER_ERR_NOMEM;
		o->v = nv;
		o->cap = cap;
	}
	o->v[o->n++] = *r;
	return 0;
}

static int overshoot_sector(struct server_store *st, const struct server_sector *sec,
                            const struct server_periods *per,
                            int (*fn)(void *arg, const struct server_quota_line *l), void *arg)
{
	struct overshot o = {0};
	int rc = st->ops->list_rows(st->ctx, sec->number, per, keep_overshot, &o);
	if (rc) {
		free(o.v);
		return rc;
	}
	struct server_list_row *rows = o.v;
	const size_t n = o.n;
	uint32_t seen_households[256];
	size_t n_seen = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct server_list_row *r = &rows[i];
		const int household = r->p.scope == PROTO_SCOPE_HOUSEHOLD && r->household_tag;
		if (household) { /* every member carries the household's total: report it once */
			size_t k = 0;
			while (k < n_seen && seen_households[k] != r->household_tag)
				k++;
			if (k < n_seen)
				continue;
			if (n_seen < sizeof(seen_households) / sizeof(seen_households[0]))
				seen_households[n_seen++] = r->household_tag;
		}
		struct owner_search s = {.st = st, .sector = sec->number, .key = r->key};
		struct server_pass_filter f = {.state = -1, .sector = sec->number};
		(void)st->ops->pass_each(st->ctx, &f, match_key, &s);
		struct server_quota_line l;
		memset(&l, 0, sizeof(l));
		l.sector = *sec;
		l.pass = s.hit ? s.found.id : 0;
		if (s.hit)
			memcpy(l.holder, s.found.holder, sizeof(l.holder));
		l.household = household;
		l.used = r->used;
		l.limit = r->p.limit;
		rc = fn(arg, &l);
	}
	free(rows);
	return rc;
}

int server_quota_overshoot(struct server_store *st, int64_t now, const struct server_sector *only,
                           int (*fn)(void *arg, const struct server_quota_line *l), void *arg)
{
	struct server_sector *all = NULL;
	size_t n = 1;
	int rc = 0;
	if (!only && (rc = st->ops->sector_list(st->ctx, &all, &n)) != 0)
		return rc;
	struct server_periods per;
	server_periods_at(now, &per);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = overshoot_sector(st, only ? only : &all[i], &per, fn, arg);
	free(all);
	return rc;
}
