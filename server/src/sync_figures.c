/*
 * sync_figures.c — what the metrics say of each gate (issue 15, docs/operations.md
 * "Metrics"): its ingest (batches and events acknowledged, batches awaiting their commit),
 * the backlog it last reported, and how long a published list takes to be held by the
 * gates connected when it was published (the revocation push latency).
 *
 * Loop thread only, like the rest of the server's state: the metrics render on the same
 * loop, so nothing here needs a lock. Devices are found by id through an open-addressing
 * index, so that 10 000 gates reconnecting cost one probe each, not a scan.
 */
#include <stdlib.h>
#include <string.h>

#include "sync_internal.h"

/* the budget is 1 s p99 (DESIGN.md s.9): buckets around it, and beyond for slow links */
const double server_sync_push_bounds[SERVER_SYNC_PUSH_BUCKETS] = {0.025, 0.05, 0.1, 0.25, 0.5,
                                                                  1,     2.5,  5,   10,   30};

static uint32_t hash_id(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h;
}

/* The slot of `id` in the index: its entry's, or the empty one where it would go. */
static size_t slot_of(const struct sync_figures *f, const char *id)
{
	size_t mask = f->index_cap - 1, i = hash_id(id) & mask;
	while (f->index[i] && strcmp(f->gates[f->index[i] - 1].device, id) != 0)
		i = (i + 1) & mask;
	return i;
}

static int grow_index(struct sync_figures *f)
{
	size_t cap = f->index_cap ? f->index_cap * 2 : 64;
	uint32_t *index = calloc(cap, sizeof(*index));
	if (!index)
		return -1;
	free(f->index);
	f->index = index;
	f->index_cap = cap;
	for (size_t g = 0; g < f->n; g++)
		f->index[slot_of(f, f->gates[g].device)] = (uint32_t)(g + 1);
	return 0;
}

int sync_figures_session(struct sync_conn *c)
{
	struct sync_figures *f = &c->srv->figures;
	if (c->gate_ix >= 0)
		return 0;
	if ((f->n + 1) * 2 > f->index_cap && grow_index(f) != 0)
		return SERVER_ERR_NOMEM;
	size_t slot = slot_of(f, c->cn);
	if (!f->index[slot]) {
		if (f->n == f->cap) {
			size_t cap = f->cap ? f->cap * 2 : 16;
			struct server_sync_gate_stats *g = realloc(f->gates, cap * sizeof(*g));
			if (!g)
				return SERVER_ERR_NOMEM;
			f->gates = g;
			f->cap = cap;
		}
		struct server_sync_gate_stats *g = &f->gates[f->n];
		memset(g, 0, sizeof(*g));
		memcpy(g->device, c->cn, sizeof(g->device));
		f->index[slot] = (uint32_t)++f->n;
	}
	c->gate_ix = (long)f->index[slot] - 1;
	struct server_sync_gate_stats *g = &f->gates[c->gate_ix];
	g->site = c->dev.site; /* as enrolled now: a device moved keeps one entry */
	g->sector = c->dev.sector;
	g->sessions_open++;
	return 0;
}

struct server_sync_gate_stats *sync_figures_of(struct sync_conn *c)
{
	return c->gate_ix >= 0 ? &c->srv->figures.gates[c->gate_ix] : NULL;
}

void sync_figures_push_sent(struct sync_conn *c, uint64_t version, const struct timespec *noticed)
{
	if (c->n_pushes == SYNC_PUSHES_TRACKED) {
		/* a gate this far behind: its oldest push is given up, not measured */
		c->srv->figures.push.unacknowledged++;
		memmove(&c->pushes[0], &c->pushes[1],
		        (SYNC_PUSHES_TRACKED - 1) * sizeof(c->pushes[0]));
		c->n_pushes--;
	}
	c->pushes[c->n_pushes].version = version;
	c->pushes[c->n_pushes].noticed = *noticed;
	c->n_pushes++;
}

static void observe(struct server_sync_push_latency *p, double seconds)
{
	size_t i = 0;
	while (i < SERVER_SYNC_PUSH_BUCKETS && seconds > server_sync_push_bounds[i])
		i++;
	p->buckets[i]++;
	p->count++;
	p->sum_s += seconds;
}

void sync_figures_report(struct sync_conn *c, const Citypass__GateHealth *h)
{
	struct server_sync_gate_stats *g = sync_figures_of(c);
	if (g) {
		g->has_report = 1;
		g->reported_backlog = h->journal_backlog;
	}
	if (!c->n_pushes || h->list_version < c->pushes[0].version)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	unsigned kept = 0;
	for (unsigned i = 0; i < c->n_pushes; i++) {
		const struct sync_push *p = &c->pushes[i];
		if (p->version > h->list_version) {
			c->pushes[kept++] = *p;
			continue;
		}
		observe(&c->srv->figures.push,
		        (double)(now.tv_sec - p->noticed.tv_sec) +
		                (double)(now.tv_nsec - p->noticed.tv_nsec) / 1e9);
	}
	c->n_pushes = kept;
}

void sync_figures_conn_gone(struct sync_conn *c)
{
	struct server_sync_gate_stats *g = sync_figures_of(c);
	if (g && g->sessions_open)
		g->sessions_open--;
	c->srv->figures.push.unacknowledged += c->n_pushes;
	c->n_pushes = 0;
}

void sync_figures_free(struct server_sync *s)
{
	free(s->figures.gates);
	free(s->figures.index);
	memset(&s->figures, 0, sizeof(s->figures));
}

size_t server_sync_gate_stats(const struct server_sync *s, struct server_sync_gate_stats *out,
                              size_t cap)
{
	if (!s)
		return 0;
	const struct sync_figures *f = &s->figures;
	for (size_t i = 0; out && i < f->n && i < cap; i++)
		out[i] = f->gates[i];
	return f->n;
}

void server_sync_get_push_latency(const struct server_sync *s, struct server_sync_push_latency *out)
{
	if (s && out)
		*out = s->figures.push;
}
