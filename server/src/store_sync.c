/*
 * store_sync.c — the rights database as the sync server's backend (server/sync_backend.h).
 *
 * A thin adapter over server/store.h, so that whichever store backs the admin CLI also
 * backs the sync server. Ingestion is one transaction per batch, committed before the
 * acknowledged sequence is returned (DESIGN.md s.5: acknowledged = durable).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/privacy.h"
#include "server/publish.h"

#include "proto/clist.h"
#include "server/store.h"
#include "server/sync_backend.h"

static int sb_device_lookup(void *ctx, const char *id, struct server_device_info *out)
{
	struct server_store *s = ctx;
	struct server_device d;
	if (!id || !out || strlen(id) >= SERVER_DEVICE_ID_MAX)
		return SERVER_ERR_ARG;
	int rc = s->ops->device_find(s->ctx, id, &d);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	memcpy(out->id, d.id, strlen(d.id) + 1);
	out->site = d.site;
	out->sector = d.sector;
	out->revoked = d.revoked;
	out->gate = d.gate;
	out->created = d.created;
	struct server_retention r;
	if ((rc = server_retention_get(s, d.sector, &r)) == 0)
		out->retention_h = r.hours;
	else if (rc != SERVER_ERR_NOT_FOUND) /* a device of a sector since removed: none */
		return rc;
	return 0;
}

static int sb_list_latest(void *ctx, uint16_t sector, uint64_t *version)
{
	struct server_store *s = ctx;
	return s->ops->list_published(s->ctx, sector, version);
}

static int give(struct server_stored_list *l, struct server_blob *blob, uint8_t sig[SERVER_SIG_MAX],
                size_t *sig_len)
{
	blob->data = l->data;
	blob->len = l->len;
	memcpy(sig, l->sig, l->sig_len);
	*sig_len = l->sig_len;
	return 0;
}

/* A format 2 version as one snapshot stream (proto/clist.h): the manifest, then the head
 * and every chunk file it names, in its order. */
static int sb_list_snapshot(void *ctx, uint16_t sector, uint64_t version, struct server_blob *list,
                            uint8_t sig[SERVER_SIG_MAX], size_t *sig_len)
{
	struct server_store *s = ctx;
	struct server_list_version v;
	struct proto_clist_manifest m;
	int rc = s->ops->list_version_get(s->ctx, sector, version, &v);
	if (rc)
		return rc;
	if (proto_clist_manifest_parse(v.manifest, v.manifest_len, &m) != 0) {
		server_list_version_free(&v);
		return SERVER_ERR_IO;
	}
	uint32_t n = 1 + 2 * m.n_chunks;
	uint8_t **files = calloc(n, sizeof(*files));
	size_t *lens = calloc(n, sizeof(*lens));
	rc = files && lens ? 0 : SERVER_ERR_NOMEM;
	if (rc == 0) {
		files[0] = v.head;
		lens[0] = v.head_len;
	}
	for (uint32_t j = 0; rc == 0 && j < m.n_chunks; j++) {
		rc = s->ops->list_file_get(s->ctx, sector, j, m.chunks[j].since, 1,
		                           &files[1 + 2 * j], &lens[1 + 2 * j]);
		if (rc == 0)
			rc = s->ops->list_file_get(s->ctx, sector, j, m.chunks[j].since, 0,
			                           &files[2 + 2 * j], &lens[2 + 2 * j]);
	}
	if (rc == 0)
		rc = proto_clist_stream_encode(sector, v.version, v.manifest, v.manifest_len,
		                               (const uint8_t *const *)files, lens, n, &list->data,
		                               &list->len) == 0
		             ? 0
		             : SERVER_ERR_NOMEM;
	if (rc == 0) {
		memcpy(sig, v.sig, v.sig_len);
		*sig_len = v.sig_len;
		list->usage_position = v.usage_position;
	}
	for (uint32_t i = 1; files && i < n; i++)
		free(files[i]);
	free(files);
	free(lens);
	proto_clist_manifest_free(&m);
	server_list_version_free(&v);
	return rc;
}

static int sb_list_delta(void *ctx, uint16_t sector, uint64_t base_version,
                         struct server_blob *delta, uint8_t sig[SERVER_SIG_MAX], size_t *sig_len)
{
	struct server_store *s = ctx;
	struct server_stored_list l = {0};
	int rc = s->ops->delta_get(s->ctx, sector, base_version, &l);
	if (rc)
		return rc;
	/* issue 13: the position of the version the delta leads to */
	struct server_list_version v;
	if (s->ops->list_version_get(s->ctx, sector, base_version + 1, &v) == 0) {
		delta->usage_position = v.usage_position;
		server_list_version_free(&v);
	}
	return give(&l, delta, sig, sig_len);
}

static int sb_ingest(void *ctx, const char *device_id, const Citypass__EventBatch *batch,
                     uint64_t *acked_seq)
{
	struct server_store *s = ctx;
	if (!device_id || !batch || !acked_seq)
		return SERVER_ERR_ARG;
	int rc = s->ops->begin(s->ctx);
	if (rc)
		return rc;
	rc = s->ops->ingest(s->ctx, device_id, batch, acked_seq);
	if (rc == 0)
		rc = s->ops->commit(s->ctx);
	if (rc)
		s->ops->rollback(s->ctx);
	return rc;
}

static int sb_ingest_group(void *ctx, const char *const *device_ids,
                           const Citypass__EventBatch *const *batches, size_t n, uint64_t *acked)
{
	struct server_store *s = ctx;
	if (!device_ids || !batches || !acked)
		return SERVER_ERR_ARG;
	int rc = s->ops->begin(s->ctx);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = s->ops->ingest(s->ctx, device_ids[i], batches[i], &acked[i]);
	if (rc == 0)
		rc = s->ops->commit(s->ctx);
	if (rc)
		s->ops->rollback(s->ctx);
	return rc;
}

static int sb_usage_position(void *ctx, const char *device_id, uint64_t epoch, uint64_t seq,
                             uint64_t *pos)
{
	struct server_store *s = ctx;
	return s->ops->usage_position_of(s->ctx, device_id, epoch, seq, pos);
}

static int health_state(Citypass__GateHealth__Device d)
{
	switch (d) {
	case CITYPASS__GATE_HEALTH__DEVICE__DEVICE_OK:
		return SERVER_DEVICE_OK;
	case CITYPASS__GATE_HEALTH__DEVICE__DEVICE_DOWN:
		return SERVER_DEVICE_DOWN;
	case CITYPASS__GATE_HEALTH__DEVICE__DEVICE_NOT_CONFIGURED:
		return SERVER_DEVICE_NOT_CONFIGURED;
	default: /* a newer gate's state: unknown here */
		return SERVER_DEVICE_UNKNOWN;
	}
}

static int sb_gate_health(void *ctx, const struct server_gate_report *r, size_t n)
{
	struct server_store *s = ctx;
	int rc = s->ops->begin(s->ctx);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct server_device_health h;
		memset(&h, 0, sizeof(h));
		snprintf(h.device, sizeof(h.device), "%s", r[i].device_id);
		h.reported_at = r[i].at;
		h.reader = health_state(r[i].health->reader);
		h.scanner = health_state(r[i].health->scanner);
		h.list_version = r[i].health->list_version;
		h.list_issued_at = r[i].health->list_issued_at;
		h.journal_backlog = r[i].health->journal_backlog;
		h.free_disk_bytes = r[i].health->free_disk_bytes;
		h.clock_skew_s = r[i].health->clock_skew_s;
		rc = s->ops->device_health_put(s->ctx, &h);
	}
	if (rc == 0)
		rc = s->ops->commit(s->ctx);
	if (rc)
		s->ops->rollback(s->ctx);
	return rc;
}

static int sb_acked(void *ctx, const char *device_id, Citypass__Stream stream, uint64_t *seq)
{
	struct server_store *s = ctx;
	return s->ops->acked(s->ctx, device_id, (int)stream, seq);
}

static int sb_product_known(void *ctx, uint16_t sector, uint32_t product, int *known)
{
	struct server_store *s = ctx;
	return s->ops->product_known(s->ctx, sector, product, known);
}

static int sb_counted_right(void *ctx, uint16_t sector, const uint8_t key[8],
                            struct server_counted_right *out)
{
	struct server_store *s = ctx;
	struct server_periods now;
	int rc = s->ops->counted_right(s->ctx, sector, key, &out->product, &out->period);
	if (rc)
		return rc;
	/* the gates count periods in the site's zone, the server in the deployment's: one
	 * period ahead is a clock or zone edge, not a forgery */
	server_periods_at((int64_t)time(NULL), &now);
	out->current_period = out->period < 6 ? now.n[out->period] + (out->period > 1) : 0;
	return 0;
}

static int sb_changes_fd(void *ctx, int *fd)
{
	struct server_store *s = ctx;
	return s->ops->listen ? s->ops->listen(s->ctx, fd) : SERVER_ERR_NOT_FOUND;
}

static int sb_changes_drain(void *ctx)
{
	struct server_store *s = ctx;
	return s->ops->notified ? s->ops->notified(s->ctx) : SERVER_ERR_NOT_FOUND;
}

static void sb_destroy(void *ctx)
{
	struct server_store *s = ctx;
	server_store_close(s);
	free(s);
}

/* The backend over the rights database, and the data directory whose keys/card.keys holds
 * the card masters. The store comes first: the sb_* functions above take it as ctx. */
struct store_sync {
	struct server_store st;
	char data_dir[PATH_MAX];
};

static int sb_card_keys(void *ctx, uint16_t sector, struct server_card_slot *out)
{
	struct store_sync *b = ctx;
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = b->st.ops->sector_list(b->st.ctx, &v, &n), slot = -1;
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (v[i].number == sector)
			slot = v[i].slot;
	free(v);
	if (rc)
		return rc;
	if (slot < 0 || slot >= SERVER_CARD_SLOTS)
		return SERVER_ERR_NOT_FOUND;
	struct server_card_keys ck;
	rc = server_card_keys_load(b->data_dir, &ck);
	if (rc == 0)
		*out = ck.slot[slot];
	memset(&ck, 0, sizeof(ck));
	return rc;
}

static int sb_card_keys_stamp(void *ctx, int64_t *stamp)
{
	struct store_sync *b = ctx;
	char v[32];
	*stamp = 0;
	int rc = b->st.ops->meta_get(b->st.ctx, "card_keys_changed", v, sizeof(v));
	if (rc == SERVER_ERR_NOT_FOUND)
		return 0;
	if (rc == 0)
		*stamp = strtoll(v, NULL, 10);
	return rc;
}

static int sb_list_chain(void *ctx, struct server_list_chain *out)
{
	struct store_sync *b = ctx;
	return server_list_chain_load(b->data_dir, out);
}

static int sb_ca_chain(void *ctx, struct server_ca_chain *out)
{
	struct store_sync *b = ctx;
	return server_ca_chain_load(b->data_dir, out);
}

static int sb_place_names(void *ctx, uint32_t site, uint16_t sector,
                          char site_name[SERVER_PLACE_NAME_MAX],
                          char sector_name[SERVER_PLACE_NAME_MAX])
{
	struct server_store *s = ctx;
	struct server_site st;
	struct server_sector *secs = NULL;
	size_t n = 0;
	int rc = s->ops->site_get(s->ctx, site, &st);
	if (rc == 0)
		rc = s->ops->sector_list(s->ctx, &secs, &n);
	if (rc)
		return rc;
	rc = SERVER_ERR_NOT_FOUND;
	for (size_t i = 0; i < n; i++)
		if (secs[i].number == sector) {
			snprintf(site_name, SERVER_PLACE_NAME_MAX, "%s", st.name);
			snprintf(sector_name, SERVER_PLACE_NAME_MAX, "%s", secs[i].name);
			rc = 0;
		}
	free(secs);
	return rc;
}

static const struct server_sync_backend_ops store_sync_ops = {
        .device_lookup = sb_device_lookup,
        .list_latest = sb_list_latest,
        .list_snapshot = sb_list_snapshot,
        .list_delta = sb_list_delta,
        .ingest = sb_ingest,
        .ingest_group = sb_ingest_group,
        .usage_position = sb_usage_position,
        .gate_health = sb_gate_health,
        .acked = sb_acked,
        .product_known = sb_product_known,
        .counted_right = sb_counted_right,
        .card_keys = sb_card_keys,
        .card_keys_stamp = sb_card_keys_stamp,
        .list_chain = sb_list_chain,
        .ca_chain = sb_ca_chain,
        .place_names = sb_place_names,
        .changes_fd = sb_changes_fd,
        .changes_drain = sb_changes_drain,
        .destroy = sb_destroy,
};

int server_sync_backend_open(struct server_sync_backend *out, const char *data_dir, int ingest,
                             struct server_why *why)
{
	if (!out || !data_dir)
		return SERVER_ERR_ARG;
	struct store_sync *b = calloc(1, sizeof(*b));
	if (!b)
		return SERVER_ERR_NOMEM;
	if (snprintf(b->data_dir, sizeof(b->data_dir), "%s", data_dir) >=
	    (int)sizeof(b->data_dir)) {
		free(b);
		return SERVER_ERR_ARG;
	}
	/* whichever store the data directory names (issue 16: sqlite or PostgreSQL) */
	int rc = server_store_open(&b->st, data_dir, 0, why);
	if (rc) {
		free(b);
		return rc;
	}
	/* the ingest thread waits for a locked database a second at a time (it retries, and
	 * looks whether the server is stopping in between) */
	if (ingest)
		b->st.ops->busy_timeout(b->st.ctx, 1000);
	out->ops = &store_sync_ops;
	out->ctx = b;
	return 0;
}
