/*
 * controller/metrics.h — the gate's Prometheus figures (docs/operations.md "Metrics"),
 * served on a loopback address when the configuration names one (`metrics = ADDR:PORT`;
 * off by default): taps by outcome and reason, the tap's latency from the card's arrival
 * to the gate command, the reader and scanner, the held list, the journal's backlog, free
 * disk and clock skew. Figures are recorded by the threads that make them, lock-free, and
 * read by the metrics thread of its own (an evhttp loop) at each scrape.
 */
#ifndef CONTROLLER_METRICS_H
#define CONTROLLER_METRICS_H

#include <stdint.h>

#include "controller/engine.h"
#include "controller/sync_client.h"

#ifdef __cplusplus
extern "C" {
#endif

enum controller_tap_outcome_metric {
	CONTROLLER_METRIC_GRANTED,
	CONTROLLER_METRIC_REFUSED,
	CONTROLLER_METRIC_NOT_DECIDED, /* the read did not complete: nothing journalled */
};

/* A tap carried out (reader thread); took_ms: the card's arrival to the gate command. */
void controller_metrics_tap(enum controller_tap_outcome_metric outcome,
                            enum controller_reason reason, int64_t took_ms);
/* The gate's health as last computed (sync thread, at each report). */
void controller_metrics_health(const struct controller_gate_health *h);

struct controller_metrics_server;
struct controller_metrics_params {
	const char *addr;         /* "127.0.0.1:9465" */
	const char *journal_path; /* read for the backlog, on a connection of its own */
	const char *device, *site, *sector;
	/* the reader and scanner now (any thread; NULL: unknown) */
	void (*devices)(void *ctx, int *reader_up, int *scanner_configured, int *scanner_up);
	/* free bytes where the journal and lists are (-1: unknown) and the clock's skew: the
	 * health report's own function, so both say the same (any thread; NULL: unknown) */
	void (*host)(void *ctx, int64_t *free_disk_bytes, int64_t *clock_skew_s);
	void *ctx;
};
/* Start the metrics thread; 0, or -1 with *why (a bad or busy address). */
int controller_metrics_start(struct controller_metrics_server **out,
                             const struct controller_metrics_params *p, char *why, size_t whylen);
void controller_metrics_stop(struct controller_metrics_server *m);
/* The port bound (the address may ask for 0: any free port). */
unsigned controller_metrics_port(const struct controller_metrics_server *m);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_METRICS_H */
