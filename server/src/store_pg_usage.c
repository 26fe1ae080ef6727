/*
 * store_pg_usage.c — the usage streams in the PostgreSQL store: ingestion deduplicated by
 * the database, acknowledgements, usage positions, gates' health, statistics.
 *
 * A batch retried on another instance (its gate failed over before the ack arrived) is
 * counted once: rows are keyed (device, epoch, seq) and inserted ON CONFLICT DO NOTHING;
 * two instances storing the same batch at once wait for each other on that key, and the
 * second stores nothing. The ack is a high-water mark kept apart from the rows, raised
 * with GREATEST, in the same transaction: acknowledged = committed. Each stream of a
 * batch goes in as one statement (its columns as arrays), not a round trip per row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_pg_internal.h"

static int acked_epoch(struct pg *q, const char *device, int64_t epoch, int stream, uint64_t *seq)
{
	static const char sql[] = "SELECT COALESCE((SELECT seq FROM acks WHERE device = $1 AND"
	                          " epoch = $2 AND stream = $3), 0)";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, device);
	pgp_i64(&p, epoch);
	pgp_i64(&p, stream);
	int64_t v = 0;
	int rc = pg_one_i64(q, sql, &p, &v);
	*seq = v > 0 ? (uint64_t)v : 0;
	return rc;
}

/* A batch goes in as one statement per stream (issue 16, item 5): each column a PostgreSQL
 * array parameter (pg_arr_*), unnest()ed into rows, instead of one round trip per row. */

static int ingest_stats(struct pg *q, const char *device, int64_t epoch,
                        const Citypass__EventBatch *b, uint64_t done, uint64_t *high)
{
	static const char sql[] =
	        "INSERT INTO stats(device, epoch, seq, site, gate, sector, product, outcome,"
	        " reason, quarter_hour) SELECT $1, $2, u.* FROM unnest($3::bigint[],"
	        " $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],"
	        " $9::bigint[], $10::bigint[]) AS u ON CONFLICT(device, epoch, seq) DO NOTHING";
	enum { SEQ, SITE, GATE, SECTOR, PRODUCT, OUTCOME, REASON, QUARTER, COLS };
	struct pg_array col[COLS];
	size_t rows = 0;
	memset(col, 0, sizeof(col));
	for (size_t i = 0; i < b->n_stats; i++) {
		const Citypass__StatEvent *e = b->stats[i];
		if (e->seq <= done)
			continue;
		if (e->seq > INT64_MAX) {
			pg_arr_free(col, COLS);
			return SERVER_ERR_INVALID;
		}
		pg_arr_i64(&col[SEQ], (int64_t)e->seq);
		pg_arr_i64(&col[SITE], e->site);
		pg_arr_i64(&col[GATE], e->gate);
		pg_arr_i64(&col[SECTOR], e->sector);
		pg_arr_i64(&col[PRODUCT], e->product);
		pg_arr_i64(&col[OUTCOME], e->outcome);
		pg_arr_i64(&col[REASON], e->reason);
		pg_arr_i64(&col[QUARTER], e->quarter_hour);
		if (e->seq > *high)
			*high = e->seq;
		rows++;
	}
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, device);
	pgp_i64(&p, epoch);
	int rc = rows ? pg_arr_params(&p, col, COLS) : 0;
	if (rc == 0 && rows)
		rc = pg_query(q, sql, &p, NULL);
	pg_arr_free(col, COLS);
	return rc;
}

static int ingest_consumption(struct pg *q, const char *device, int64_t epoch,
                              const Citypass__EventBatch *b, uint64_t done, uint64_t *high)
{
	/* issue 13: the batch's rows get the next usage position; the row lock this UPDATE
	 * takes is held to commit, so positions commit in the order they were handed out
	 * across every instance (a list reading position P holds every row at or below P) */
	static const char pos_sql[] =
	        "UPDATE meta SET value = (CAST(value AS BIGINT) + 1)::text"
	        " WHERE key = 'usage_position' RETURNING CAST(value AS BIGINT)";
	static const char sql[] =
	        "INSERT INTO consumption(device, epoch, seq, sector, pseudonym, product, count,"
	        " period, pos, stored_at) SELECT $1, $2, u.seq, u.sector, decode(u.pseudonym,"
	        " 'hex'), u.product, u.count, u.period, $3, $4 FROM unnest($5::bigint[],"
	        " $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[])"
	        " AS u(seq, sector, pseudonym, product, count, period)"
	        " ON CONFLICT(device, epoch, seq) DO NOTHING";
	enum { SEQ, SECTOR, PSEUDONYM, PRODUCT, COUNT, PERIOD, COLS };
	int64_t pos = 0;
	int fresh = 0;
	for (size_t i = 0; i < b->n_consumption; i++) {
		if (b->consumption[i]->pseudonym.len != PROTO_LIST_KEY_LEN)
			return SERVER_ERR_INVALID;
		if (b->consumption[i]->seq > INT64_MAX)
			return SERVER_ERR_INVALID;
		fresh |= b->consumption[i]->seq > done;
	}
	if (!fresh)
		return 0;
	int rc = pg_one_i64(q, pos_sql, NULL, &pos);
	if (rc)
		return rc;
	struct pg_array col[COLS];
	memset(col, 0, sizeof(col));
	for (size_t i = 0; i < b->n_consumption; i++) {
		const Citypass__ConsumptionEvent *e = b->consumption[i];
		if (e->seq <= done)
			continue;
		pg_arr_i64(&col[SEQ], (int64_t)e->seq);
		pg_arr_i64(&col[SECTOR], e->sector);
		pg_arr_hex(&col[PSEUDONYM], e->pseudonym.data,
		           e->pseudonym.len < PROTO_LIST_KEY_LEN ? e->pseudonym.len
		                                                 : PROTO_LIST_KEY_LEN);
		pg_arr_i64(&col[PRODUCT], e->product);
		pg_arr_i64(&col[COUNT], e->count);
		pg_arr_i64(&col[PERIOD], e->period);
		if (e->seq > *high)
			*high = e->seq;
	}
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, device);
	pgp_i64(&p, epoch);
	pgp_i64(&p, pos);
	pgp_i64(&p, (int64_t)time(NULL)); /* issue 17: the server's own clock judges retention */
	if ((rc = pg_arr_params(&p, col, COLS)) == 0)
		rc = pg_query(q, sql, &p, NULL);
	pg_arr_free(col, COLS);
	return rc;
}

int pg_ingest(void *ctx, const char *device, const Citypass__EventBatch *b, uint64_t *acked)
{
	struct pg *q = ctx;
	static const char ack_sql[] =
	        "INSERT INTO acks(device, epoch, stream, seq) VALUES($1, $2, $3, $4)"
	        " ON CONFLICT(device, epoch, stream) DO UPDATE SET seq = GREATEST(acks.seq,"
	        " excluded.seq)";
	if (b->journal_epoch > INT64_MAX)
		return SERVER_ERR_INVALID;
	const int64_t epoch = (int64_t)b->journal_epoch;
	uint64_t done = 0, high;
	/* everything of this epoch up to the acknowledged sequence is stored, or was (expired
	 * consumption): a resend from a journal restored from an older copy is skipped */
	int rc = acked_epoch(q, device, epoch, b->stream, &done);
	if (rc)
		return rc;
	high = done;
	if (b->stream == CITYPASS__STREAM__STATISTICS)
		rc = ingest_stats(q, device, epoch, b, done, &high);
	else if (b->stream == CITYPASS__STREAM__CONSUMPTION)
		rc = ingest_consumption(q, device, epoch, b, done, &high);
	else
		rc = SERVER_ERR_INVALID;
	if (rc)
		return rc;
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, device);
	pgp_i64(&p, epoch);
	pgp_i64(&p, b->stream);
	pgp_u64(&p, high);
	if ((rc = pg_query(q, ack_sql, &p, NULL)) != 0)
		return rc;
	return acked_epoch(q, device, epoch, b->stream, acked);
}

/* The acknowledged sequence of what the device sent before journal epochs (epoch 0). */
int pg_acked(void *ctx, const char *device, int stream, uint64_t *seq)
{
	return acked_epoch(ctx, device, 0, stream, seq);
}

int pg_usage_position(void *ctx, uint64_t *pos)
{
	static const char sql[] =
	        "SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'usage_position'";
	int64_t v = 0;
	int rc = pg_one_i64(ctx, sql, NULL, &v);
	*pos = v > 0 ? (uint64_t)v : 0;
	return rc;
}

int pg_usage_position_of(void *ctx, const char *device, uint64_t epoch, uint64_t seq, uint64_t *pos)
{
	static const char sql[] = "SELECT COALESCE(MAX(pos), 0) FROM consumption WHERE device = $1"
	                          " AND epoch = $2 AND seq <= $3";
	if (epoch > INT64_MAX || seq > INT64_MAX)
		return SERVER_ERR_INVALID;
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, device);
	pgp_i64(&p, (int64_t)epoch);
	pgp_i64(&p, (int64_t)seq);
	int64_t v = 0;
	int rc = pg_one_i64(ctx, sql, &p, &v);
	*pos = v > 0 ? (uint64_t)v : 0;
	return rc;
}

int pg_device_health_put(void *ctx, const struct server_device_health *h)
{
	static const char sql[] =
	        "INSERT INTO device_health(device, reported_at, reader, scanner, list_version,"
	        " list_issued_at, journal_backlog, free_disk_bytes, clock_skew_s)"
	        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9"
	        " WHERE EXISTS(SELECT 1 FROM devices WHERE id = $1)"
	        " ON CONFLICT(device) DO UPDATE SET reported_at = excluded.reported_at,"
	        " reader = excluded.reader, scanner = excluded.scanner,"
	        " list_version = excluded.list_version, list_issued_at = excluded.list_issued_at,"
	        " journal_backlog = excluded.journal_backlog,"
	        " free_disk_bytes = excluded.free_disk_bytes, clock_skew_s = excluded.clock_skew_s";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, h->device);
	pgp_i64(&p, h->reported_at);
	pgp_i64(&p, h->reader);
	pgp_i64(&p, h->scanner);
	pgp_u64(&p, h->list_version);
	pgp_i64(&p, h->list_issued_at);
	pgp_u64(&p, h->journal_backlog);
	pgp_u64(&p, h->free_disk_bytes);
	pgp_i64(&p, h->clock_skew_s);
	return pg_query(ctx, sql, &p, NULL);
}

int pg_device_status_list(void *ctx, struct server_device_status **out, size_t *n)
{
	static const char sql[] =
	        "SELECT d.id, d.gate, d.site, d.sector, d.revoked, d.created, s.name,"
	        " h.reported_at, h.reader, h.scanner, h.list_version, h.list_issued_at,"
	        " h.journal_backlog, h.free_disk_bytes, h.clock_skew_s"
	        " FROM devices d JOIN sites s ON s.id = d.site"
	        " LEFT JOIN device_health h ON h.device = d.id ORDER BY d.gate";
	*out = NULL;
	*n = 0;
	PGresult *r;
	int rc = pg_query(ctx, sql, NULL, &r);
	if (rc)
		return rc;
	int rows = PQntuples(r);
	struct server_device_status *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v) {
		PQclear(r);
		return SERVER_ERR_NOMEM;
	}
	for (int i = 0; i < rows; i++) {
		struct server_device_status *d = &v[i];
		pg_copy_text(d->dev.id, sizeof(d->dev.id), r, i, 0);
		d->dev.gate = (uint32_t)pg_i64(r, i, 1);
		d->dev.site = (uint32_t)pg_i64(r, i, 2);
		d->dev.sector = (uint16_t)pg_i64(r, i, 3);
		d->dev.revoked = (int)pg_i64(r, i, 4);
		d->dev.created = pg_i64(r, i, 5);
		pg_copy_text(d->site_name, sizeof(d->site_name), r, i, 6);
		d->has_health = !PQgetisnull(r, i, 7);
		if (d->has_health) {
			struct server_device_health *h = &d->health;
			snprintf(h->device, sizeof(h->device), "%s", d->dev.id);
			h->reported_at = pg_i64(r, i, 7);
			h->reader = (int)pg_i64(r, i, 8);
			h->scanner = (int)pg_i64(r, i, 9);
			h->list_version = (uint64_t)pg_i64(r, i, 10);
			h->list_issued_at = pg_i64(r, i, 11);
			h->journal_backlog = (uint64_t)pg_i64(r, i, 12);
			h->free_disk_bytes = (uint64_t)pg_i64(r, i, 13);
			h->clock_skew_s = pg_i64(r, i, 14);
		}
	}
	PQclear(r);
	*out = v;
	*n = (size_t)rows;
	return 0;
}

int pg_product_known(void *ctx, uint16_t sector, uint32_t product, int *known)
{
	static const char sql[] = "SELECT CASE WHEN EXISTS(SELECT 1 FROM profiles WHERE"
	                          " sector = $1 AND product = $2) THEN 1 ELSE 0 END";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_i64(&p, product);
	int64_t v = 0;
	int rc = pg_one_i64(ctx, sql, &p, &v);
	*known = v != 0;
	return rc;
}

int pg_consumption_discard(void *ctx, const char *device, uint64_t *n)
{
	static const char sql[] = "DELETE FROM consumption WHERE device = $1";
	struct pg_params p;
	pgp_init(&p);
	pgp_text(&p, device);
	return pg_run_counted(ctx, sql, &p, n);
}

int pg_counted_right(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                     uint32_t *product, uint8_t *period)
{
	static const char sql[] =
	        "SELECT r.product, r.period FROM pass_ids p JOIN rights r ON r.pass = p.pass"
	        " AND r.sector = p.sector WHERE p.sector = $1 AND p.listkey = $2"
	        " AND r.period != 0 LIMIT 1";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_blob(&p, key, PROTO_LIST_KEY_LEN);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1) {
		rc = SERVER_ERR_NOT_FOUND;
	} else {
		*product = (uint32_t)pg_i64(r, 0, 0);
		*period = (uint8_t)pg_i64(r, 0, 1);
	}
	PQclear(r);
	return rc;
}

int pg_stats(void *ctx, int64_t from, int64_t to, int64_t bucket_s,
             int (*fn)(void *arg, const struct server_stat_row *r), void *arg)
{
	static const char sql[] =
	        "SELECT site, gate, sector, product, outcome, reason,"
	        " (quarter_hour / $3) * $3 AS b, COUNT(*) FROM stats WHERE quarter_hour >= $1"
	        " AND quarter_hour < $2 GROUP BY site, gate, sector, product, outcome,"
	        " reason, b ORDER BY b, site, gate, sector, product, outcome, reason";
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, from);
	pgp_i64(&p, to);
	pgp_i64(&p, bucket_s > 0 ? bucket_s : 900);
	PGresult *r;
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	int ret = 0;
	for (int i = 0; i < PQntuples(r) && !ret; i++) {
		struct server_stat_row s;
		s.site = (uint32_t)pg_i64(r, i, 0);
		s.gate = (uint32_t)pg_i64(r, i, 1);
		s.sector = (uint32_t)pg_i64(r, i, 2);
		s.product = (uint32_t)pg_i64(r, i, 3);
		s.outcome = (int)pg_i64(r, i, 4);
		s.reason = (uint32_t)pg_i64(r, i, 5);
		s.quarter_hour = pg_i64(r, i, 6);
		s.count = (uint64_t)pg_i64(r, i, 7);
		ret = fn(arg, &s);
	}
	PQclear(r);
	return ret;
}
