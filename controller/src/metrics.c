/* controller/src/metrics.c — the gate's Prometheus figures (controller/metrics.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "controller/journal.h"
#include "controller/metrics.h"
#include "service/metrics.h"

#define REASONS 64 /* proto/reason.h values stay below */

/* --- what the threads record -------------------------------------------------------------- */

static _Atomic uint64_t taps[3][REASONS];
/* the budget is 1.3 x the floor of about 100 ms (DESIGN.md s.9): buckets around it */
static const double tap_bounds[] = {0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5};
static struct service_histogram tap_seconds;
static pthread_once_t tap_once = PTHREAD_ONCE_INIT;

static void tap_init(void)
{
	service_histogram_init(&tap_seconds, tap_bounds,
	                       sizeof(tap_bounds) / sizeof(tap_bounds[0]));
}

void controller_metrics_tap(enum controller_tap_outcome_metric outcome,
                            enum controller_reason reason, int64_t took_ms)
{
	pthread_once(&tap_once, tap_init);
	unsigned r = (unsigned)reason < REASONS ? (unsigned)reason : 0;
	atomic_fetch_add(&taps[outcome][r], 1);
	if (outcome != CONTROLLER_METRIC_NOT_DECIDED)
		service_histogram_observe(&tap_seconds, (double)took_ms / 1000.0);
}

static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;
static struct controller_gate_health health;
static int have_health;

void controller_metrics_health(const struct controller_gate_health *h)
{
	pthread_mutex_lock(&health_lock);
	health = *h;
	have_health = 1;
	pthread_mutex_unlock(&health_lock);
}

/* --- the metrics thread ------------------------------------------------------------------- */

struct controller_metrics_server {
	struct controller_metrics_params p;
	char addr[160], journal_path[1024], device[128], site[128], sector[128];
	struct event_base *base;
	struct service_metrics *http;
	struct event *tick;
	struct controller_journal *journal; /* opened at the first scrape, on this thread */
	pthread_t thread;
	atomic_int stop;
};

static void gauge(struct service_metrics_writer *w, const char *name, const char *help,
                  const char *const *labels, double v)
{
	service_metrics_family(w, name, "gauge", help);
	service_metrics_sample(w, name, labels, v);
}

static void render(void *ctx, struct service_metrics_writer *w)
{
	struct controller_metrics_server *m = ctx;
	const char *gate[] = {"device", m->device, "site", m->site, "sector", m->sector, NULL};
	static const char *const outcome_names[] = {"granted", "refused", "not_decided"};

	pthread_once(&tap_once, tap_init);
	service_metrics_family(w, "citypass_gate_taps_total", "counter",
	                       "Taps by outcome and the engine's reason.");
	for (int o = 0; o < 3; o++)
		for (unsigned r = 0; r < REASONS; r++) {
			uint64_t n = atomic_load(&taps[o][r]);
			if (!n)
				continue;
			const char *labels[] = {
			        "outcome", outcome_names[o], "reason",
			        o == CONTROLLER_METRIC_NOT_DECIDED
			                ? "none"
			                : controller_reason_name((enum controller_reason)r),
			        NULL};
			service_metrics_sample(w, "citypass_gate_taps_total", labels, (double)n);
		}
	service_metrics_histogram(w, "citypass_gate_tap_seconds",
	                          "From the card's or phone's arrival to the gate command.",
	                          &tap_seconds);

	int reader = 0, scanner_cfg = 0, scanner = 0;
	if (m->p.devices)
		m->p.devices(m->p.ctx, &reader, &scanner_cfg, &scanner);
	gauge(w, "citypass_gate_reader_up", "1 when the reader answers its polls.", gate, reader);
	const char *sc[] = {"device", m->device, "state",
	                    !scanner_cfg ? "none"
	                    : scanner    ? "ok"
	                                 : "down",
	                    NULL};
	gauge(w, "citypass_gate_scanner_state", "The QR scanner: 1 for its current state.", sc, 1);
	if (m->p.host) {
		int64_t free_bytes, skew;
		m->p.host(m->p.ctx, &free_bytes, &skew);
		gauge(w, "citypass_gate_clock_skew_seconds",
		      "The system clock minus the gate's trusted time.", gate, (double)skew);
		if (free_bytes >= 0)
			gauge(w, "citypass_gate_free_disk_bytes",
			      "Free bytes where the journal and lists are.", gate,
			      (double)free_bytes);
	}

	struct controller_gate_health h;
	pthread_mutex_lock(&health_lock);
	h = health;
	int have = have_health;
	pthread_mutex_unlock(&health_lock);
	if (have) {
		gauge(w, "citypass_gate_list_version", "The list version the gate holds.", gate,
		      (double)h.list_version);
		if (h.list_issued_at)
			gauge(w, "citypass_gate_list_age_seconds",
			      "Seconds since the held list was issued.", gate,
			      (double)((int64_t)time(NULL) - h.list_issued_at));
	}

	if (!m->journal && controller_journal_open(&m->journal, m->journal_path) != 0)
		m->journal = NULL;
	struct controller_journal_stats js;
	if (m->journal && controller_journal_stats(m->journal, &js) == 0) {
		const char *st[] = {"device", m->device, "stream", "statistics", NULL};
		const char *co[] = {"device", m->device, "stream", "consumption", NULL};
		service_metrics_family(w, "citypass_gate_journal_backlog", "gauge",
		                       "Journalled events not yet acknowledged by the server.");
		service_metrics_sample(w, "citypass_gate_journal_backlog", st,
		                       (double)js.stat_pending);
		service_metrics_sample(w, "citypass_gate_journal_backlog", co,
		                       (double)js.consumption_pending);
	}
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct controller_metrics_server *m = arg;
	(void)fd;
	(void)what;
	if (atomic_load(&m->stop))
		event_base_loopbreak(m->base);
}

static void *run(void *arg)
{
	struct controller_metrics_server *m = arg;
	event_base_dispatch(m->base);
	return NULL;
}

static void server_free(struct controller_metrics_server *m)
{
	service_metrics_free(m->http);
	if (m->tick)
		event_free(m->tick);
	if (m->base)
		event_base_free(m->base);
	controller_journal_close(m->journal);
	free(m);
}

int controller_metrics_start(struct controller_metrics_server **out,
                             const struct controller_metrics_params *p, char *why, size_t whylen)
{
	*out = NULL;
	struct controller_metrics_server *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(why, whylen, "metrics: out of memory");
		return -1;
	}
	m->p = *p;
	snprintf(m->journal_path, sizeof(m->journal_path), "%s", p->journal_path);
	snprintf(m->device, sizeof(m->device), "%s", p->device);
	snprintf(m->site, sizeof(m->site), "%s", p->site);
	snprintf(m->sector, sizeof(m->sector), "%s", p->sector);
	/* the loop looks at its stop flag every 200 ms: no cross-thread libevent call */
	const struct timeval tv = {0, 200000};
	m->base = event_base_new();
	if (!m->base || !(m->tick = event_new(m->base, -1, EV_PERSIST, on_tick, m)) ||
	    event_add(m->tick, &tv) != 0) {
		snprintf(why, whylen, "metrics: cannot create its event loop");
		server_free(m);
		return -1;
	}
	if (service_metrics_listen(&m->http, m->base, p->addr, render, m, why, whylen) != 0) {
		server_free(m);
		return -1;
	}
	if (pthread_create(&m->thread, NULL, run, m) != 0) {
		snprintf(why, whylen, "metrics: cannot start its thread");
		server_free(m);
		return -1;
	}
	*out = m;
	return 0;
}

unsigned controller_metrics_port(const struct controller_metrics_server *m)
{
	return m ? service_metrics_port(m->http) : 0;
}

void controller_metrics_stop(struct controller_metrics_server *m)
{
	if (!m)
		return;
	atomic_store(&m->stop, 1);
	pthread_join(m->thread, NULL);
	server_free(m);
}
