/*
 * server_metrics.c — citypass-server's Prometheus figures (--metrics ADDR:PORT,
 * docs/operations.md "Metrics"): the sync server's counters, each sector's newest list and
 * its age, the revocation push latency, each gate's ingest since the server started, and
 * every gate as it last reported itself (backlog, clock, disk, devices).
 *
 * Rendered on the event loop at each scrape, from a read-only store connection of its own:
 * a few short queries every scrape interval, never inside the loop's hot path.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/store.h"
#include "server/sync.h"
#include "server_metrics.h"
#include "service/metrics.h"

static void counter(struct service_metrics_writer *w, const char *name, const char *help,
                    uint64_t v)
{
	service_metrics_family(w, name, "counter", help);
	service_metrics_sample(w, name, NULL, (double)v);
}

static void sync_figures(struct server_metrics_ctx *m, struct service_metrics_writer *w)
{
	struct server_sync_stats st;
	server_sync_get_stats(m->srv, &st);
	service_metrics_family(w, "citypass_server_connected_gates", "gauge",
	                       "Gate connections open now.");
	service_metrics_sample(w, "citypass_server_connected_gates", NULL, st.connections);
	counter(w, "citypass_server_connections_accepted_total", "TCP connections accepted.",
	        st.accepted);
	counter(w, "citypass_server_handshakes_refused_total",
	        "TLS handshakes failed or certificates refused.", st.refused_handshake);
	service_metrics_family(w, "citypass_server_handshakes_waiting", "gauge",
	                       "Connections accepted, waiting for a TLS handshake slot now "
	                       "(a reconnect storm).");
	service_metrics_sample(w, "citypass_server_handshakes_waiting", NULL, st.waiting);
	counter(w, "citypass_server_left_waiting_total",
	        "Connections closed by their gate while they waited for a handshake slot.",
	        st.left_waiting);
	counter(w, "citypass_server_sessions_total", "Gate sessions begun (Hello accepted).",
	        st.sessions);
	counter(w, "citypass_server_closed_bad_input_total",
	        "Connections closed for a protocol violation.", st.closed_bad_input);
	counter(w, "citypass_server_timeouts_total", "Connections closed by a timeout.",
	        st.timeouts);
	counter(w, "citypass_server_ingested_batches_total",
	        "Event batches committed and acknowledged.", st.batches);
	counter(w, "citypass_server_ingested_events_total",
	        "Events committed and acknowledged (rate(): the ingest rate).", st.events);
	counter(w, "citypass_server_ingest_busy_total",
	        "Times the ingest thread found the database locked and waited.", st.ingest_busy);
	counter(w, "citypass_server_lists_published_total",
	        "New list versions the server noticed and pushed to connected gates.",
	        st.published);
	service_metrics_family(w, "citypass_server_list_updates_sent_total", "counter",
	                       "List updates sent to gates, by kind.");
	const char *snap[] = {"kind", "snapshot", NULL};
	const char *delta[] = {"kind", "delta", NULL};
	service_metrics_sample(w, "citypass_server_list_updates_sent_total", snap,
	                       (double)st.snapshots);
	service_metrics_sample(w, "citypass_server_list_updates_sent_total", delta,
	                       (double)(st.updates - st.snapshots));
}

/* The server's own histogram (server/sync.h), written by the one renderer of the format. */
static void push_figures(struct server_metrics_ctx *m, struct service_metrics_writer *w)
{
	struct server_sync_push_latency p;
	struct service_histogram h;
	server_sync_get_push_latency(m->srv, &p);
	service_histogram_init(&h, server_sync_push_bounds, SERVER_SYNC_PUSH_BUCKETS);
	for (size_t i = 0; i <= SERVER_SYNC_PUSH_BUCKETS; i++)
		atomic_store(&h.buckets[i], p.buckets[i]);
	atomic_store(&h.count, p.count);
	atomic_store(&h.sum_micro, (uint64_t)(p.sum_s * 1e6));
	service_metrics_histogram(w, "citypass_server_list_push_seconds",
	                          "From a new list version noticed by the server to each gate "
	                          "connected then reporting it holds it.",
	                          &h);
	counter(w, "citypass_server_list_pushes_unacknowledged_total",
	        "Pushes whose gate disconnected or fell behind before saying it held them.",
	        p.unacknowledged);
}

static int by_device(const void *a, const void *b)
{
	return strcmp((*(const struct server_device_status *const *)a)->dev.id,
	              (*(const struct server_device_status *const *)b)->dev.id);
}

/* Each gate's ingest since the server started (labelled like the reported figures: the
 * device and its site's name, never a card). */
static void ingest_figures(struct server_metrics_ctx *m, struct service_metrics_writer *w,
                           const struct server_device_status *d, size_t nd)
{
	size_t n = server_sync_gate_stats(m->srv, NULL, 0);
	struct server_sync_gate_stats *g = calloc(n ? n : 1, sizeof(*g));
	const struct server_device_status **sorted = calloc(nd ? nd : 1, sizeof(*sorted));
	if (!g || !sorted)
		goto out;
	n = server_sync_gate_stats(m->srv, g, n);
	for (size_t i = 0; i < nd; i++)
		sorted[i] = &d[i];
	qsort(sorted, nd, sizeof(*sorted), by_device);
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	        {"citypass_server_gate_connected", "gauge", "1 while the gate has a session open."},
	        {"citypass_server_gate_ingested_batches_total", "counter",
	         "The gate's event batches committed and acknowledged."},
	        {"citypass_server_gate_ingested_events_total", "counter",
	         "The gate's events committed and acknowledged, by stream (rate(): its ingest "
	         "rate)."},
	        {"citypass_server_gate_pending_batches", "gauge",
	         "The gate's batches received and not yet committed (its ack waits for them)."},
	};
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		service_metrics_family(w, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < n; i++) {
			struct server_device_status key, *kp = &key;
			snprintf(key.dev.id, sizeof(key.dev.id), "%s", g[i].device);
			const struct server_device_status **hit =
			        nd ? bsearch(&kp, sorted, nd, sizeof(*sorted), by_device) : NULL;
			const char *site = hit ? (*hit)->site_name : "";
			const char *labels[] = {"device", g[i].device, "site", site, NULL};
			switch (f) {
			case 0:
				service_metrics_sample(w, fam[f].name, labels,
				                       g[i].sessions_open > 0);
				break;
			case 1:
				service_metrics_sample(w, fam[f].name, labels,
				                       (double)g[i].batches);
				break;
			case 2: {
				const char *st[] = {"device", g[i].device,  "site", site,
				                    "stream", "statistics", NULL};
				const char *co[] = {"device", g[i].device,   "site", site,
				                    "stream", "consumption", NULL};
				service_metrics_sample(w, fam[f].name, st, (double)g[i].events[0]);
				service_metrics_sample(w, fam[f].name, co, (double)g[i].events[1]);
				break;
			}
			default:
				service_metrics_sample(w, fam[f].name, labels,
				                       (double)g[i].pending_batches);
				break;
			}
		}
	}
out:
	free(sorted);
	free(g);
}

static void list_figures(struct server_metrics_ctx *m, struct service_metrics_writer *w,
                         int64_t now)
{
	struct server_sector *secs = NULL;
	size_t n = 0;
	if (m->st.ops->sector_list(m->st.ctx, &secs, &n) != 0)
		return;
	service_metrics_family(w, "citypass_server_list_version", "gauge",
	                       "The newest list version published for the sector.");
	struct server_list_version *v = calloc(n ? n : 1, sizeof(*v));
	int *have = calloc(n ? n : 1, sizeof(*have));
	for (size_t i = 0; v && have && i < n; i++) {
		char num[8];
		snprintf(num, sizeof(num), "%u", (unsigned)secs[i].number);
		const char *labels[] = {"sector", secs[i].name, NULL};
		have[i] = m->st.ops->list_version_get(m->st.ctx, secs[i].number, 0, &v[i]) == 0;
		if (have[i])
			service_metrics_sample(w, "citypass_server_list_version", labels,
			                       (double)v[i].version);
	}
	service_metrics_family(w, "citypass_server_list_age_seconds", "gauge",
	                       "Seconds since the sector's newest list was issued.");
	for (size_t i = 0; v && have && i < n; i++) {
		const char *labels[] = {"sector", secs[i].name, NULL};
		if (have[i]) {
			service_metrics_sample(w, "citypass_server_list_age_seconds", labels,
			                       (double)(now - v[i].issued_at));
			server_list_version_free(&v[i]);
		}
	}
	free(have);
	free(v);
	free(secs);
}

static const char *state_name(int s)
{
	switch (s) {
	case SERVER_DEVICE_OK:
		return "ok";
	case SERVER_DEVICE_DOWN:
		return "down";
	case SERVER_DEVICE_NOT_CONFIGURED:
		return "none";
	default:
		return "unknown";
	}
}

/* One family per figure, a sample per gate that reported (series in family order). */
static void gate_figures(struct service_metrics_writer *w, const struct server_device_status *d,
                         size_t n, int64_t now)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
	        {"citypass_gate_journal_backlog", "Events the gate holds not yet acknowledged."},
	        {"citypass_gate_clock_skew_seconds", "The gate's system clock minus its trusted "
	                                             "time, as it last reported."},
	        {"citypass_gate_free_disk_bytes", "Free bytes on the gate's state directory."},
	        {"citypass_gate_list_version", "The list version the gate holds."},
	        {"citypass_gate_report_age_seconds", "Seconds since the gate last reported."},
	        {"citypass_gate_reader_up", "1 when the gate's reader answers."},
	};
	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		service_metrics_family(w, fam[f].name, "gauge", fam[f].help);
		for (size_t i = 0; i < n; i++) {
			if (!d[i].has_health || d[i].dev.revoked)
				continue;
			const struct server_device_health *h = &d[i].health;
			const char *labels[] = {"device", d[i].dev.id, "site", d[i].site_name,
			                        NULL};
			double v = 0;
			switch (f) {
			case 0:
				v = (double)h->journal_backlog;
				break;
			case 1:
				v = (double)h->clock_skew_s;
				break;
			case 2:
				v = (double)h->free_disk_bytes;
				break;
			case 3:
				v = (double)h->list_version;
				break;
			case 4:
				v = (double)(now - h->reported_at);
				break;
			default:
				v = h->reader == SERVER_DEVICE_OK;
				break;
			}
			service_metrics_sample(w, fam[f].name, labels, v);
		}
	}
	service_metrics_family(w, "citypass_gate_scanner_state", "gauge",
	                       "The gate's QR scanner: 1 for its current state.");
	for (size_t i = 0; i < n; i++) {
		if (!d[i].has_health || d[i].dev.revoked)
			continue;
		const char *labels[] = {"device", d[i].dev.id, "state",
		                        state_name(d[i].health.scanner), NULL};
		service_metrics_sample(w, "citypass_gate_scanner_state", labels, 1);
	}
}

void server_metrics_render(void *ctx, struct service_metrics_writer *w)
{
	struct server_metrics_ctx *m = ctx;
	int64_t now = (int64_t)time(NULL);
	struct server_device_status *d = NULL;
	size_t n = 0;
	sync_figures(m, w);
	push_figures(m, w);
	/* one read transaction: the figures of one scrape agree with each other */
	if (m->st_open && m->st.ops->begin_read(m->st.ctx) == 0) {
		list_figures(m, w, now);
		if (m->st.ops->device_status_list(m->st.ctx, &d, &n) != 0) {
			d = NULL;
			n = 0;
		}
		gate_figures(w, d, n, now);
		m->st.ops->rollback(m->st.ctx);
	}
	/* without the store, the gates go unlabelled by site but still counted */
	ingest_figures(m, w, d, n);
	free(d);
}
