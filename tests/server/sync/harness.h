/*
 * harness.h — a sync server on its own thread and event_base, over the in-memory backend
 * and a test PKI, with its log lines captured so tests can check the reasons it gives.
 */
#ifndef TEST_SYNC_HARNESS_H
#define TEST_SYNC_HARNESS_H

#include <pthread.h>

#include "mem_backend.h"
#include "server/sync.h"
#include "sim_controller.h"
#include "test_pki.h"

struct harness {
	struct test_pki pki;
	struct mem_backend *mem;
	struct server_sync_config cfg;
	struct event_base *base;
	struct server_sync *srv;
	struct event *stop_ev, *watch_ev;
	pthread_t thread;
	unsigned port;
	int running;
	struct server_sync_stats final_stats;

	pthread_mutex_t log_lock;
	char *log;
	size_t log_len, log_cap;
	int quiet; /* do not echo log lines to stderr */
};

/* Make the PKI and backend; adjust h->cfg before harness_start(). Returns 0 or -1. */
int harness_init(struct harness *h);
/* Start the server listening on 127.0.0.1 (free port in h->port). */
int harness_start(struct harness *h);
/* Hand a connected socket to the server (in-process tests); runs on the loop thread. */
int harness_adopt(struct harness *h, int fd);
/* Run fn(srv, arg) on the loop thread and wait for it. */
void harness_call(struct harness *h, void (*fn)(struct server_sync *, void *), void *arg);
void harness_stats(struct harness *h, struct server_sync_stats *out);
/* server_sync_stop() on the loop thread, wait for the loop to end. */
void harness_stop(struct harness *h);
void harness_free(struct harness *h);

/* Whether a log line so far contains `needle`; waits up to timeout_ms for it. */
int harness_log_has(struct harness *h, const char *needle, int timeout_ms);

/* A controller of the harness's PKI with a certificate for `cn` (device enrolled only if
 * site != 0). Returns 0 or -1. */
int harness_controller(struct harness *h, struct sim_ctl *c, const char *cn, uint32_t site,
                       uint16_t sector);

#endif
