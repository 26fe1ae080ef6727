/*
 * retention.c — a sector's kind of service and how long its identifying rows are kept
 * (server/privacy.h), and the server's purge of them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/privacy.h"

const char *server_kind_name(int kind)
{
	return kind == SERVER_KIND_TRANSPORT ? "transport" : "access";
}

int server_kind_parse(const char *s)
{
	if (strcmp(s, "transport") == 0)
		return SERVER_KIND_TRANSPORT;
	if (strcmp(s, "access") == 0)
		return SERVER_KIND_ACCESS;
	return -1;
}

uint32_t server_retention_ceiling_h(int kind)
{
	return kind == SERVER_KIND_TRANSPORT ? SERVER_RETENTION_TRANSPORT_MAX_H
	                                     : SERVER_RETENTION_ACCESS_MAX_H;
}

const char *server_retention_basis(int kind)
{
	return kind == SERVER_KIND_TRANSPORT
	               ? "CNIL AU-015 art. 4: transport validation data, 48 hours at most"
	               : "CNIL guidance on access-control logs: 3 months at most";
}

static int meta_u32(struct server_store *st, const char *key, uint32_t *v, int *found)
{
	char buf[32];
	int rc = st->ops->meta_get(st->ctx, key, buf, sizeof(buf));
	*found = 0;
	if (rc == SERVER_ERR_NOT_FOUND)
		return 0;
	if (rc)
		return rc;
	char *end;
	unsigned long x = strtoul(buf, &end, 10);
	if (*end || x > UINT32_MAX)
		return SERVER_ERR_INVALID;
	*v = (uint32_t)x;
	*found = 1;
	return 0;
}

int server_retention_get(struct server_store *st, uint16_t sector, struct server_retention *out)
{
	struct server_sector *v = NULL;
	size_t n = 0;
	memset(out, 0, sizeof(*out));
	int rc = st->ops->sector_list(st->ctx, &v, &n);
	if (rc)
		return rc;
	rc = SERVER_ERR_NOT_FOUND;
	for (size_t i = 0; i < n; i++)
		if (v[i].number == sector) {
			memcpy(out->name, v[i].name, sizeof(out->name));
			rc = 0;
		}
	free(v);
	if (rc)
		return rc;
	out->sector = sector;
	char key[48], kind[32];
	snprintf(key, sizeof(key), "sector_kind.%u", sector);
	rc = st->ops->meta_get(st->ctx, key, kind, sizeof(kind));
	if (rc && rc != SERVER_ERR_NOT_FOUND)
		return rc;
	out->kind = rc == 0 && server_kind_parse(kind) >= 0 ? server_kind_parse(kind)
	                                                    : SERVER_KIND_ACCESS;
	snprintf(key, sizeof(key), "sector_retention_h.%u", sector);
	uint32_t h = 0;
	int found;
	if ((rc = meta_u32(st, key, &h, &found)) != 0)
		return rc;
	out->configured = found && h > 0;
	out->hours = out->configured ? h : server_retention_ceiling_h(out->kind);
	/* a value written past the ceiling (by hand, or by a release without one) is never
	 * obeyed: the law's limit wins */
	if (out->hours > server_retention_ceiling_h(out->kind))
		out->hours = server_retention_ceiling_h(out->kind);
	return 0;
}

int server_retention_set(struct server_store *st, uint16_t sector, int kind, uint32_t hours,
                         struct server_why *why)
{
	struct server_retention r;
	int rc = server_retention_get(st, sector, &r);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(why, rc, "no sector numbered %u", sector);
	if (rc)
		return server_why_set(why, rc, "cannot read sector %u's retention: %s", sector,
		                      server_store_strerror(st, rc));
	char key[48], val[32];
	snprintf(key, sizeof(key), "sector_retention_h.%u", sector);
	uint32_t stored = 0;
	int found;
	if ((rc = meta_u32(st, key, &stored, &found)) != 0)
		return server_why_set(why, rc, "cannot read sector %u's retention: %s", sector,
		                      server_store_strerror(st, rc));
	if (kind < 0)
		kind = r.kind;
	else if (hours == 0 && kind != r.kind)
		stored = 0; /* a new kind without a retention: the new kind's default */
	if (hours == 0)
		hours = stored;
	const uint32_t ceiling = server_retention_ceiling_h(kind);
	if (hours > ceiling)
		return server_why_set(why, SERVER_ERR_RETENTION,
		                      "sector %s: a retention of %" PRIu32
		                      " hours is above the %" PRIu32 " hours allowed for %s "
		                      "(%s); give --retention %" PRIu32 "h or less",
		                      r.name, hours, ceiling, server_kind_name(kind),
		                      server_retention_basis(kind), ceiling);
	snprintf(key, sizeof(key), "sector_kind.%u", sector);
	if ((rc = st->ops->meta_set(st->ctx, key, server_kind_name(kind))) != 0)
		return server_why_set(why, rc, "cannot save sector %s's kind: %s", r.name,
		                      server_store_strerror(st, rc));
	snprintf(key, sizeof(key), "sector_retention_h.%u", sector);
	snprintf(val, sizeof(val), "%" PRIu32, hours);
	if ((rc = st->ops->meta_set(st->ctx, key, val)) != 0)
		return server_why_set(why, rc, "cannot save sector %s's retention: %s", r.name,
		                      server_store_strerror(st, rc));
	return 0;
}

int server_retention_purge(struct server_store *st, int64_t now, int64_t ahead_s, uint64_t *folded)
{
	struct server_sector *v = NULL;
	size_t n = 0;
	uint64_t total = 0;
	if (folded)
		*folded = 0;
	int rc = st->ops->begin(st->ctx);
	if (rc)
		return rc;
	if ((rc = st->ops->sector_list(st->ctx, &v, &n)) != 0)
		goto out;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct server_retention r;
		uint64_t k = 0;
		if ((rc = server_retention_get(st, v[i].number, &r)) != 0)
			break;
		/* a row stored before `before` would be older than the retention at
		 * now + ahead_s */
		const int64_t before = now + ahead_s - (int64_t)r.hours * 3600;
		rc = st->ops->consumption_retire(st->ctx, v[i].number, before, &k);
		total += k;
	}
out:
	free(v);
	if (rc == 0)
		rc = st->ops->commit(st->ctx);
	if (rc) {
		st->ops->rollback(st->ctx);
		return rc;
	}
	if (folded)
		*folded = total;
	return 0;
}
