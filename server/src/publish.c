/*
 * publish.c — build, sign and store the next version of a sector's list (server/publish.h).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "server/keys.h"
#include "server/publish.h"

/* Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void server_periods_at(int64_t now, struct server_periods *out)
{
	struct tm tm;
	time_t t = (time_t)now;
	localtime_r(&t, &tm);
	int64_t year = tm.tm_year + 1900;
	int64_t day = days_from_civil(year, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
	memset(out, 0, sizeof(*out));
	out->n[PROTO_PERIOD_DAY] = day;
	out->n[PROTO_PERIOD_WEEK] = (day + 3) / 7;
	out->n[PROTO_PERIOD_MONTH] = year * 12 + tm.tm_mon; /* month 0-11: as the gates count */
	out->n[PROTO_PERIOD_YEAR] = year;
}

static int from_proto(int rc)
{
	switch (rc) {
	case PROTO_OK:
		return 0;
	case PROTO_ERR_NOMEM:
		return SERVER_ERR_NOMEM;
	case PROTO_ERR_IO:
	case PROTO_ERR_KEY:
		return SERVER_ERR_IO;
	case PROTO_ERR_CRYPTO:
		return SERVER_ERR_CRYPTO;
	default:
		return SERVER_ERR_INVALID;
	}
}

static int build_entries(struct server_store *s, uint16_t sector, const struct server_periods *per,
                         struct proto_list_entry **out, size_t *n)
{
	struct server_list_row *rows = NULL;
	size_t nrows = 0;
	int rc = s->ops->list_rows(s->ctx, sector, per, &rows, &nrows);
	if (rc)
		return rc;
	struct proto_list_entry *e = calloc(nrows ? nrows : 1, sizeof(*e));
	if (!e) {
		free(rows);
		return SERVER_ERR_NOMEM;
	}
	for (size_t i = 0; i < nrows && rc == 0; i++) {
		const struct server_list_row *r = &rows[i];
		rc = s->ops->profile_index(s->ctx, sector, &r->p, &e[i].profile);
		memcpy(e[i].key, r->key, PROTO_LIST_KEY_LEN);
		e[i].household = r->household_tag;
		e[i].used = (uint8_t)(r->used > 255 ? 255 : r->used);
		e[i].used_period = (uint8_t)(per->n[r->p.period < 6 ? r->p.period : 0] & 0xFF);
		e[i].status = (uint8_t)(r->state >= 0 && r->state <= PROTO_STATUS_MAX
		                                ? r->state
		                                : PROTO_STATUS_SUSPENDED);
	}
	free(rows);
	if (rc) {
		free(e);
		return rc;
	}
	*out = e;
	*n = nrows;
	return 0;
}

static int store_delta(struct server_store *s, uint16_t sector,
                       const struct server_stored_list *prev, const struct server_stored_list *cur,
                       const struct proto_key *key)
{
	struct proto_list *base = NULL, *target = NULL;
	struct server_stored_list d = {0};
	int rc = from_proto(proto_list_open_mem(&base, prev->data, prev->len));
	if (rc == 0)
		rc = from_proto(proto_list_open_mem(&target, cur->data, cur->len));
	if (rc == 0)
		rc = from_proto(proto_delta_build(base, target, cur->sig, cur->sig_len, key,
		                                  &d.data, &d.len));
	if (rc == 0)
		rc = from_proto(proto_sign(key, d.data, d.len, d.sig, &d.sig_len));
	if (rc == 0) {
		d.version = cur->version;
		d.issued_at = cur->issued_at;
		d.expires_at = cur->expires_at;
		rc = s->ops->delta_put(s->ctx, sector, prev->version, &d);
	}
	free(d.data);
	proto_list_close(target);
	proto_list_close(base);
	return rc;
}

int server_publish_sector(struct server_store *s, const char *data_dir, uint16_t sector,
                          const struct server_publish_opts *o, uint64_t *version)
{
	char path[PATH_MAX];
	struct proto_key *key = NULL;
	struct server_periods per;
	struct proto_list_entry *entries = NULL;
	struct proto_rights_profile *profiles = NULL;
	size_t n_entries = 0, n_profiles = 0;
	struct server_stored_list prev = {0}, cur = {0};
	uint64_t latest = 0;
	int rc;

	if (!s || !data_dir || !o || o->validity_s <= 0)
		return SERVER_ERR_ARG;
	if ((rc = server_key_path(path, sizeof(path), data_dir, "list.key")) != 0)
		return rc;
	if (proto_key_load_private(&key, path) != 0)
		return SERVER_ERR_CRYPTO;
	server_periods_at(o->now, &per);
	rc = s->ops->consumption_expire(s->ctx, sector, &per);
	if (rc == 0)
		rc = build_entries(s, sector, &per, &entries, &n_entries);
	if (rc == 0)
		rc = s->ops->profiles(s->ctx, sector, &profiles, &n_profiles);
	if (rc == 0)
		rc = s->ops->list_latest(s->ctx, sector, &latest);
	if (rc == 0 && latest > 0)
		rc = s->ops->list_get(s->ctx, sector, latest, &prev);
	if (rc)
		goto out;

	struct proto_list_params params;
	memset(&params, 0, sizeof(params));
	params.sector = sector;
	params.version = latest + 1;
	params.issued_at = o->now;
	params.expires_at = o->now + o->validity_s;
	if (prev.data)
		proto_sha256(prev.data, prev.len, params.prev_hash);
	rc = from_proto(proto_list_build(&params, key, profiles, n_profiles, entries, n_entries,
	                                 &cur.data, &cur.len));
	if (rc == 0)
		rc = from_proto(proto_sign(key, cur.data, cur.len, cur.sig, &cur.sig_len));
	if (rc)
		goto out;
	cur.version = params.version;
	cur.issued_at = params.issued_at;
	cur.expires_at = params.expires_at;
	rc = s->ops->list_put(s->ctx, sector, &cur);
	if (rc == 0 && prev.data)
		rc = store_delta(s, sector, &prev, &cur, key);
	if (rc == 0)
		rc = s->ops->list_prune(s->ctx, sector, o->keep ? o->keep : SERVER_KEEP_DEFAULT);
	if (rc == 0 && version)
		*version = cur.version;
out:
	free(cur.data);
	server_stored_list_free(&prev);
	free(profiles);
	free(entries);
	proto_key_free(key);
	return rc;
}
