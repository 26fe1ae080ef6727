/*
 * service/metrics.h — a Prometheus text endpoint (exposition format 0.0.4) on a loopback
 * address, and the pieces a daemon renders its figures with (DESIGN.md s.10,
 * docs/operations.md "Metrics").
 *
 * The endpoint is an evhttp server on the caller's event_base: it answers GET /metrics
 * (anything else: 404) by calling the daemon's render function, which writes families and
 * samples through the writer. Only loopback addresses are accepted: the figures describe
 * the deployment's operation, and exposing them further is a reverse proxy's decision.
 */
#ifndef SERVICE_METRICS_H
#define SERVICE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct service_metrics;
struct service_metrics_writer;

typedef void (*service_metrics_render_fn)(void *ctx, struct service_metrics_writer *w);

/* Serve GET /metrics on addr_port ("127.0.0.1:9464", "[::1]:9464"; port 0 picks one).
 * Returns 0, or -1 with *why (not a loopback address, unparsable, cannot bind). */
int service_metrics_listen(struct service_metrics **out, struct event_base *base,
                           const char *addr_port, service_metrics_render_fn render, void *ctx,
                           char *why, size_t whylen);
unsigned service_metrics_port(const struct service_metrics *m);
void service_metrics_free(struct service_metrics *m);

/* One family: its # HELP and # TYPE lines ("counter", "gauge", "histogram"). */
void service_metrics_family(struct service_metrics_writer *w, const char *name, const char *type,
                            const char *help);
/* One sample; labels: NULL or { "key", "value", ..., NULL } (values escaped here). */
void service_metrics_sample(struct service_metrics_writer *w, const char *name,
                            const char *const *labels, double value);

/* A histogram that threads observe without a lock: counts per bucket (upper bounds in
 * increasing order, +Inf implied), their sum and count. */
#define SERVICE_HISTOGRAM_MAX_BUCKETS 16
struct service_histogram {
	size_t n;
	double bounds[SERVICE_HISTOGRAM_MAX_BUCKETS];
	_Atomic uint64_t buckets[SERVICE_HISTOGRAM_MAX_BUCKETS + 1]; /* last: above every bound */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_micro; /* the sum, in millionths of the unit */
};
void service_histogram_init(struct service_histogram *h, const double *bounds, size_t n);
void service_histogram_observe(struct service_histogram *h, double value);
/* Its family and samples (cumulative _bucket{le}, _sum, _count). */
void service_metrics_histogram(struct service_metrics_writer *w, const char *name, const char *help,
                               struct service_histogram *h);

#ifdef __cplusplus
}
#endif

#endif /* SERVICE_METRICS_H */
