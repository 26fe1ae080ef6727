/*
 * sync_plan.c — which list update brings a controller current, and the cache of published
 * files that lets one backend read serve every controller of a sector.
 */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

struct sync_blob *sync_blob_ref(struct sync_blob *b)
{
	if (b)
		b->refs++;
	return b;
}

void sync_blob_unref(struct sync_blob *b)
{
	if (!b || --b->refs > 0)
		return;
	free(b->data);
	free(b);
}

void sync_cache_init(struct sync_cache *c, uint16_t sector)
{
	memset(c, 0, sizeof(*c));
	c->sector = sector;
}

void sync_cache_clear(struct sync_cache *c)
{
	sync_blob_unref(c->snapshot);
	c->snapshot = NULL;
	for (size_t i = 0; i < c->n_deltas; i++)
		sync_blob_unref(c->deltas[i].blob);
	c->n_deltas = 0;
}

static struct sync_blob *blob_new(uint16_t sector, int is_delta, uint64_t base, uint64_t version,
                                  struct server_blob *data, const uint8_t *sig, size_t sig_len)
{
	struct sync_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->refs = 1;
	b->is_delta = is_delta;
	b->sector = sector;
	b->base_version = base;
	b->version = version;
	b->data = data->data;
	b->len = data->len;
	b->usage_position = data->usage_position;
	data->data = NULL;
	if (sig_len > SERVER_SIG_MAX)
		sig_len = SERVER_SIG_MAX;
	memcpy(b->sig, sig, sig_len);
	b->sig_len = sig_len;
	return b;
}

/* The newest snapshot (the cache holds one: older ones serve nobody). */
static int cache_snapshot(struct sync_cache *c, const struct server_sync_backend *be,
                          uint64_t version, struct sync_blob **out)
{
	struct server_blob data = {0};
	uint8_t sig[SERVER_SIG_MAX];
	size_t sig_len = 0;
	int rc;

	if (c->snapshot && c->snapshot->version == version) {
		*out = c->snapshot;
		return 0;
	}
	c->backend_reads++;
	rc = be->ops->list_snapshot(be->ctx, c->sector, version, &data, sig, &sig_len);
	if (rc)
		return rc;
	if (sig_len == 0 || sig_len > SERVER_SIG_MAX) {
		free(data.data);
		return SERVER_ERR_INVALID;
	}
	struct sync_blob *b = blob_new(c->sector, 0, 0, version, &data, sig, sig_len);
	if (!b) {
		free(data.data);
		return SERVER_ERR_NOMEM;
	}
	sync_blob_unref(c->snapshot);
	c->snapshot = b;
	*out = b;
	return 0;
}

/* The delta base -> base + 1, or *out = NULL when the backend no longer keeps it. */
static int cache_delta(struct sync_cache *c, const struct server_sync_backend *be, uint64_t base,
                       struct sync_blob **out)
{
	struct server_blob data = {0};
	uint8_t sig[SERVER_SIG_MAX];
	size_t sig_len = 0;
	struct sync_blob *b = NULL;
	size_t slot;
	int rc;

	for (size_t i = 0; i < c->n_deltas; i++) {
		if (c->deltas[i].base == base) {
			*out = c->deltas[i].blob;
			return 0;
		}
	}
	c->backend_reads++;
	rc = be->ops->list_delta(be->ctx, c->sector, base, &data, sig, &sig_len);
	if (rc == 0) {
		if (sig_len == 0 || sig_len > SERVER_SIG_MAX) {
			free(data.data);
			return SERVER_ERR_INVALID;
		}
		b = blob_new(c->sector, 1, base, base + 1, &data, sig, sig_len);
		if (!b) {
			free(data.data);
			return SERVER_ERR_NOMEM;
		}
	} else if (rc != SERVER_ERR_NOT_FOUND) {
		return rc;
	}
	/* Full: forget the oldest base, which the fewest controllers still hold. */
	if (c->n_deltas < SYNC_CACHE_DELTAS) {
		slot = c->n_deltas++;
	} else {
		slot = 0;
		for (size_t i = 1; i < c->n_deltas; i++)
			if (c->deltas[i].base < c->deltas[slot].base)
				slot = i;
		sync_blob_unref(c->deltas[slot].blob);
	}
	c->deltas[slot].base = base;
	c->deltas[slot].blob = b;
	*out = b;
	return 0;
}

void sync_plan_release(struct sync_plan *plan)
{
	for (size_t i = 0; i < plan->count; i++)
		sync_blob_unref(plan->blobs[i]);
	plan->count = 0;
	plan->snapshot = 0;
}

static int plan_snapshot(struct sync_cache *c, const struct server_sync_backend *be,
                         uint64_t latest, struct sync_plan *plan)
{
	struct sync_blob *snap;
	int rc;

	sync_plan_release(plan);
	rc = cache_snapshot(c, be, latest, &snap);
	if (rc)
		return rc;
	plan->blobs[0] = sync_blob_ref(snap);
	plan->count = 1;
	plan->snapshot = 1;
	return 0;
}

int sync_plan_update(struct sync_cache *c, const struct server_sync_backend *be, unsigned max_chain,
                     uint64_t held, uint64_t latest, struct sync_plan *plan)
{
	size_t chain_bytes = 0;
	struct sync_blob *snap;
	int rc;

	memset(plan, 0, sizeof(*plan));
	if (max_chain > SYNC_CACHE_DELTAS)
		max_chain = SYNC_CACHE_DELTAS;
	if (latest == 0 || held >= latest)
		return 0;
	if (held == 0 || latest - held > max_chain)
		return plan_snapshot(c, be, latest, plan);

	for (uint64_t base = held; base < latest; base++) {
		struct sync_blob *d;
		rc = cache_delta(c, be, base, &d);
		if (rc) {
			sync_plan_release(plan);
			return rc;
		}
		if (!d)
			return plan_snapshot(c, be, latest, plan);
		plan->blobs[plan->count++] = sync_blob_ref(d);
		chain_bytes += d->len + d->sig_len;
	}
	/* One delta is always smaller than its snapshot in practice; a longer chain is
	 * weighed against the snapshot, which costs one backend read per version. */
	if (plan->count > 1) {
		rc = cache_snapshot(c, be, latest, &snap);
		if (rc == 0 && snap->len + snap->sig_len <= chain_bytes)
			return plan_snapshot(c, be, latest, plan);
		if (rc && rc != SERVER_ERR_NOT_FOUND) {
			sync_plan_release(plan);
			return rc;
		}
	}
	return 0;
}
