/*
 * test_sync_client.c — the gate's sync client (controller/sync_client.h) against the real
 * sync server library on 127.0.0.1: TLS with the test PKI, lists built and signed by proto
 * and installed through the real list store, events from a real journal counted in the
 * server's in-memory backend. Every wait is bounded; every case ends by itself within
 * seconds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "controller/error.h"
#include "controller/journal.h"
#include "controller/list_store.h"
#include "controller/sync_client.h"
#include "harness.h"
#include "list_fixture.h"
#include "proto/error.h"

#define SITE 3
#define GATE 1
/* 20 000 passes: a snapshot of more than 256 KiB, so it travels in two chunks */
#define PASSES 20000
#define NOW    (FIXTURE_ISSUED + 60) /* the gate's clock for list checks */
#define DEVICE "gate-pool-1"

/* --- real signed lists served by the server ------------------------------------------- */

struct lists {
	pthread_mutex_t lock;
	struct list_fixture fx;
	struct built_list v[4]; /* v[1..3]: consecutive versions */
	uint8_t *delta[3];      /* delta[b]: v[b] -> v[b+1] */
	size_t delta_len[3];
	uint8_t delta_sig[3][PROTO_SIG_MAX];
	size_t delta_sig_len[3];
	uint64_t latest; /* what the server may see as published */
	int corrupt;     /* serve snapshots with a flipped signature byte */
	/* issue 13: the health reports the server stored, in order */
	struct {
		int reader;
		uint64_t backlog, list_version;
	} reports[64];
	size_t n_reports;
	struct server_sync_backend inner;
	struct server_sync_backend_ops ops;
};

static void build_delta(struct lists *l, int from)
{
	struct proto_list *base = NULL, *target = NULL;
	assert_int_equal(proto_list_open_mem(&base, l->v[from].buf, l->v[from].len), 0);
	assert_int_equal(proto_list_open_mem(&target, l->v[from + 1].buf, l->v[from + 1].len), 0);
	assert_int_equal(proto_delta_build(base, target, l->v[from + 1].sig, l->v[from + 1].sig_len,
	                                   l->fx.signer, &l->delta[from], &l->delta_len[from]),
	                 0);
	assert_int_equal(proto_sign(l->fx.signer, l->delta[from], l->delta_len[from],
	                            l->delta_sig[from], &l->delta_sig_len[from]),
	                 0);
	proto_list_close(base);
	proto_list_close(target);
}

static int op_latest(void *ctx, uint16_t sector, uint64_t *version)
{
	struct lists *l = ctx;
	pthread_mutex_lock(&l->lock);
	*version = sector == FIXTURE_SECTOR ? l->latest : 0;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static int copy_blob(struct server_blob *b, const uint8_t *data, size_t len, uint8_t *sig,
                     size_t *sig_len, const uint8_t *src_sig, size_t src_sig_len)
{
	b->data = malloc(len);
	if (!b->data)
		return SERVER_ERR_NOMEM;
	memcpy(b->data, data, len);
	b->len = len;
	memcpy(sig, src_sig, src_sig_len);
	*sig_len = src_sig_len;
	return 0;
}

static int op_snapshot(void *ctx, uint16_t sector, uint64_t version, struct server_blob *list,
                       uint8_t sig[SERVER_SIG_MAX], size_t *sig_len)
{
	struct lists *l = ctx;
	int rc;
	if (sector != FIXTURE_SECTOR || version < 1 || version > 3)
		return SERVER_ERR_NOT_FOUND;
	rc = copy_blob(list, l->v[version].buf, l->v[version].len, sig, sig_len, l->v[version].sig,
	               l->v[version].sig_len);
	pthread_mutex_lock(&l->lock);
	if (rc == 0 && l->corrupt)
		sig[*sig_len - 1] ^= 0x01;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

static int op_delta(void *ctx, uint16_t sector, uint64_t base, struct server_blob *delta,
                    uint8_t sig[SERVER_SIG_MAX], size_t *sig_len)
{
	struct lists *l = ctx;
	if (sector != FIXTURE_SECTOR || base < 1 || base > 2)
		return SERVER_ERR_NOT_FOUND;
	return copy_blob(delta, l->delta[base], l->delta_len[base], sig, sig_len,
	                 l->delta_sig[base], l->delta_sig_len[base]);
}

/* devices and events: the in-memory backend's own */
static int op_lookup(void *ctx, const char *id, struct server_device_info *out)
{
	struct lists *l = ctx;
	return l->inner.ops->device_lookup(l->inner.ctx, id, out);
}

static int op_ingest(void *ctx, const char *id, const Citypass__EventBatch *b, uint64_t *acked)
{
	struct lists *l = ctx;
	return l->inner.ops->ingest(l->inner.ctx, id, b, acked);
}

static int op_acked(void *ctx, const char *id, Citypass__Stream stream, uint64_t *seq)
{
	struct lists *l = ctx;
	return l->inner.ops->acked(l->inner.ctx, id, stream, seq);
}

static int op_gate_health(void *ctx, const struct server_gate_report *r, size_t n)
{
	struct lists *l = ctx;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < n && l->n_reports < 64; i++) {
		l->reports[l->n_reports].reader = (int)r[i].health->reader;
		l->reports[l->n_reports].backlog = r[i].health->journal_backlog;
		l->reports[l->n_reports].list_version = r[i].health->list_version;
		l->n_reports++;
	}
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static void op_destroy(void *ctx)
{
	(void)ctx;
}

static void lists_init(struct lists *l, struct mem_backend *mem)
{
	uint8_t prev[PROTO_HASH_LEN];
	struct proto_list_entry *entries = calloc(PASSES, sizeof(*entries));

	assert_non_null(entries);
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	fixture_init(&l->fx);
	fixture_entries(entries, PASSES, 1);
	for (int ver = 1; ver <= 3; ver++) {
		for (int i = 0; i < 3; i++)
			entries[(ver * 5 + i) % PASSES].used++;
		fixture_build(&l->fx, (uint64_t)ver, ver > 1 ? prev : NULL, entries, PASSES,
		              &l->v[ver]);
		proto_sha256(l->v[ver].buf, l->v[ver].len, prev);
	}
	free(entries);
	build_delta(l, 1);
	build_delta(l, 2);
	mem_backend_ops(mem, &l->inner);
	l->ops = (struct server_sync_backend_ops){
	        .device_lookup = op_lookup,
	        .list_latest = op_latest,
	        .list_snapshot = op_snapshot,
	        .list_delta = op_delta,
	        .ingest = op_ingest,
	        .acked = op_acked,
	        .gate_health = op_gate_health,
	        .destroy = op_destroy,
	};
}

static void lists_free(struct lists *l)
{
	for (int i = 1; i <= 3; i++)
		free(l->v[i].buf);
	free(l->delta[1]);
	free(l->delta[2]);
	fixture_free(&l->fx);
	pthread_mutex_destroy(&l->lock);
}

static void lists_publish(struct lists *l, uint64_t version)
{
	pthread_mutex_lock(&l->lock);
	l->latest = version;
	pthread_mutex_unlock(&l->lock);
}

/* --- the gate side: list store behind the install callback, a log ----------------------- */

struct gate {
	pthread_mutex_t lock;
	char dir[64];
	char journal[96];
	char cert[PKI_PATH_MAX];
	struct controller_list_store *store;
	unsigned snapshots, deltas, refused;
	char log[65536];
	size_t log_len;
};

static uint64_t gate_held(void *ctx)
{
	struct gate *g = ctx;
	pthread_mutex_lock(&g->lock);
	uint64_t v = controller_list_store_version(g->store);
	pthread_mutex_unlock(&g->lock);
	return v;
}

static int gate_install(void *ctx, enum controller_update_kind kind, const uint8_t *data,
                        size_t len, const uint8_t *sig, size_t sig_len)
{
	struct gate *g = ctx;
	int rc;
	pthread_mutex_lock(&g->lock);
	if (kind == CONTROLLER_UPDATE_SNAPSHOT)
		rc = controller_list_store_install_snapshot(g->store, data, len, sig, sig_len, NOW);
	else
		rc = controller_list_store_apply_delta(g->store, data, len, sig, sig_len, NOW);
	if (rc == 0 && kind == CONTROLLER_UPDATE_SNAPSHOT)
		g->snapshots++;
	else if (rc == 0)
		g->deltas++;
	else
		g->refused++;
	pthread_mutex_unlock(&g->lock);
	return rc;
}

static void gate_log(void *ctx, const char *line)
{
	struct gate *g = ctx;
	size_t len = strlen(line);
	fprintf(stderr, "[client] %s\n", line);
	pthread_mutex_lock(&g->lock);
	if (g->log_len + len + 2 < sizeof(g->log)) {
		memcpy(g->log + g->log_len, line, len);
		g->log_len += len;
		g->log[g->log_len++] = '\n';
		g->log[g->log_len] = '\0';
	}
	pthread_mutex_unlock(&g->lock);
}

static int gate_log_has(struct gate *g, const char *needle)
{
	pthread_mutex_lock(&g->lock);
	int found = strstr(g->log, needle) != NULL;
	pthread_mutex_unlock(&g->lock);
	return found;
}

/* --- one test's world ------------------------------------------------------------------- */

struct world {
	enum controller_device_state reader; /* what the gate's health callback says */
	struct harness h;
	struct lists lists;
	struct gate gate;
	struct controller_sync_config cfg;
	struct controller_sync *sync;
	struct controller_journal *journal; /* the reader thread's own connection */
	char server[64];
	uint64_t taps;
};

static void world_health(void *ctx, struct controller_gate_health *out)
{
	/* ctx is the gate, as for every callback: its world around it */
	struct world *w = (struct world *)((char *)ctx - offsetof(struct world, gate));
	pthread_mutex_lock(&w->gate.lock);
	out->reader = w->reader;
	pthread_mutex_unlock(&w->gate.lock);
	out->scanner = CONTROLLER_DEVICE_NOT_CONFIGURED;
	out->list_version = gate_held(&w->gate);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	(void)fd;
	(void)what;
	server_sync_stop(h->srv);
	struct timeval tv = {0, 10000};
	event_add(h->watch_ev, &tv);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	(void)fd;
	(void)what;
	if (server_sync_stopped(h->srv)) {
		event_del(h->watch_ev);
		event_base_loopexit(h->base, NULL);
	}
}

static void *loop_main(void *arg)
{
	struct harness *h = arg;
	event_base_dispatch(h->base);
	return NULL;
}

/* harness_start(), but on a given port so that a restarted server is found again */
static void server_up(struct harness *h, unsigned port)
{
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	h->base = event_base_new();
	assert_non_null(h->base);
	assert_int_equal(server_sync_new(&h->srv, h->base, &h->cfg), 0);
	assert_int_equal(server_sync_listen(h->srv, addr), 0);
	h->port = server_sync_port(h->srv);
	h->stop_ev = event_new(h->base, -1, 0, on_stop, h);
	h->watch_ev = event_new(h->base, -1, EV_PERSIST, on_watch, h);
	assert_non_null(h->stop_ev);
	assert_non_null(h->watch_ev);
	assert_int_equal(pthread_create(&h->thread, NULL, loop_main, h), 0);
	h->running = 1;
}

static void server_down(struct harness *h)
{
	harness_stop(h);
	server_sync_free(h->srv);
	event_free(h->stop_ev);
	event_free(h->watch_ev);
	event_base_free(h->base);
	h->srv = NULL;
	h->stop_ev = h->watch_ev = NULL;
	h->base = NULL;
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	assert_int_equal(harness_init(&w->h), 0);
	w->h.quiet = 1;
	w->h.cfg.stop_drain_ms = 200;
	lists_init(&w->lists, w->h.mem);
	w->h.cfg.backend.ops = &w->lists.ops;
	w->h.cfg.backend.ctx = &w->lists;

	struct gate *g = &w->gate;
	pthread_mutex_init(&g->lock, NULL);
	snprintf(g->dir, sizeof(g->dir), "/tmp/ctl-sync-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	snprintf(g->journal, sizeof(g->journal), "%s/journal.db", g->dir);
	char store_dir[96];
	snprintf(store_dir, sizeof(store_dir), "%s/list", g->dir);
	assert_int_equal(controller_list_store_open(&g->store, store_dir, FIXTURE_SECTOR,
	                                            w->lists.fx.ring, NOW),
	                 0);
	assert_int_equal(controller_journal_open(&w->journal, g->journal), 0);
	assert_int_equal(pki_device(&w->h.pki, DEVICE, g->cert), 0);

	w->cfg = (struct controller_sync_config){
	        .ca_path = w->h.pki.ca_cert,
	        .cert_path = g->cert,
	        .key_path = w->h.pki.device_key,
	        .device_id = DEVICE,
	        .sector = FIXTURE_SECTOR,
	        .software_version = "test",
	        .journal_path = g->journal,
	        .batch_max = 100,
	        .reconnect_min_ms = 50,
	        .reconnect_max_ms = 400,
	        .keepalive_s = 20,
	        .held_version = gate_held,
	        .install = gate_install,
	        .log = gate_log,
	        .ctx = g,
	};
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	char cmd[128];
	controller_sync_stop(w->sync);
	controller_journal_close(w->journal);
	controller_list_store_close(w->gate.store);
	harness_free(&w->h);
	lists_free(&w->lists);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->gate.dir);
	assert_int_equal(system(cmd), 0);
	pthread_mutex_destroy(&w->gate.lock);
	free(w);
	return 0;
}

static void start_client(struct world *w)
{
	/* "localhost", not an address: the server's certificate CN is checked against it */
	snprintf(w->server, sizeof(w->server), "localhost:%u", w->h.port);
	w->cfg.server = w->server;
	assert_int_equal(controller_sync_start(&w->sync, &w->cfg), 0);
}

static void tap(struct world *w, unsigned n, int consumes)
{
	struct controller_event *ev = calloc(n, sizeof(*ev));
	assert_non_null(ev);
	for (unsigned i = 0; i < n; i++) {
		ev[i].at = FIXTURE_ISSUED + 60 + (int64_t)(w->taps + i);
		ev[i].site = SITE;
		ev[i].gate = GATE;
		ev[i].sector = FIXTURE_SECTOR;
		ev[i].product = 1;
		ev[i].granted = (i % 5) != 0;
		ev[i].reason = ev[i].granted ? 0 : 2;
		if (consumes && ev[i].granted) {
			ev[i].consumes = true;
			memset(ev[i].key, (int)(i & 0xff), sizeof(ev[i].key));
			ev[i].period = 4;
			ev[i].period_number = 2001;
			ev[i].count = 1;
		}
	}
	assert_int_equal(controller_journal_append_many(w->journal, ev, n), 0);
	w->taps += n;
	free(ev);
	controller_sync_kick(w->sync);
}

static uint64_t stored(struct world *w, Citypass__Stream stream)
{
	return mem_backend_rows(w->h.mem, DEVICE, stream);
}

static size_t unacked_stats(struct world *w)
{
	struct controller_stat_row rows[4];
	size_t n = 0;
	assert_int_equal(controller_journal_fetch_stats(w->journal, rows, 4, &n), 0);
	return n;
}

static size_t unacked_consumption(struct world *w)
{
	struct controller_consumption_row rows[4];
	size_t n = 0;
	assert_int_equal(controller_journal_fetch_consumption(w->journal, rows, 4, &n), 0);
	return n;
}

static struct controller_sync_status status(struct world *w)
{
	struct controller_sync_status st;
	controller_sync_get_status(w->sync, &st);
	return st;
}

/* Poll cond(w) every 10 ms for at most ms milliseconds. */
#define WAIT_FOR(cond, ms)                                                                         \
	do {                                                                                       \
		double deadline_ = sim_now() + (ms) / 1000.0;                                      \
		while (!(cond) && sim_now() < deadline_)                                           \
			usleep(10000);                                                             \
	} while (0)

/* A counter of the install callback, read under its lock. */
static unsigned counted(struct world *w, const unsigned *field)
{
	pthread_mutex_lock(&w->gate.lock);
	unsigned v = *field;
	pthread_mutex_unlock(&w->gate.lock);
	return v;
}

static uint64_t held(struct world *w)
{
	return gate_held(&w->gate);
}

/* --- the cases -------------------------------------------------------------------------- */

/* A gate holding nothing gets the snapshot, verified and installed by the list store;
 * a publication then reaches it at once as a delta. */
static void test_snapshot_then_pushed_delta(void **state)
{
	struct world *w = *state;
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	lists_publish(&w->lists, 1);
	server_up(&w->h, 0);
	start_client(w);

	WAIT_FOR(held(w) == 1, 5000);
	assert_int_equal(held(w), 1);
	assert_int_equal(counted(w, &w->gate.snapshots), 1);
	WAIT_FOR(gate_log_has(&w->gate, "installed snapshot v1"), 1000);
	assert_true(gate_log_has(&w->gate, "2 chunks)"));
	WAIT_FOR(status(w).connected, 2000);
	struct controller_sync_status st = status(w);
	assert_int_equal(st.connected, 1);
	assert_true(st.last_contact > 0);
	assert_true(st.clock_skew_s >= -2 && st.clock_skew_s <= 2);

	lists_publish(&w->lists, 2);
	WAIT_FOR(held(w) == 2, 5000);
	assert_int_equal(held(w), 2);
	assert_int_equal(counted(w, &w->gate.deltas), 1);
	assert_int_equal(counted(w, &w->gate.snapshots), 1);
	assert_int_equal(counted(w, &w->gate.refused), 0);
	WAIT_FOR(gate_log_has(&w->gate, "installed delta v2"), 1000);
	assert_true(gate_log_has(&w->gate, "installed delta v2"));
	assert_true(harness_log_has(&w->h, "session: site 3 sector 7 holds v0", 100));
}

/* Taps of both streams go up in several batches each, are stored exactly once, and are
 * acknowledged in the journal: nothing is left to fetch. */
static void test_upload_acked_in_journal(void **state)
{
	struct world *w = *state;
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	server_up(&w->h, 0);
	start_client(w);
	WAIT_FOR(status(w).connected, 5000);
	assert_int_equal(status(w).connected, 1);

	tap(w, 250, 0);
	tap(w, 100, 1); /* 80 of them granted with a counted use */
	WAIT_FOR(stored(w, CITYPASS__STREAM__STATISTICS) == 350 &&
	                 stored(w, CITYPASS__STREAM__CONSUMPTION) == 80 && unacked_stats(w) == 0 &&
	                 unacked_consumption(w) == 0,
	         10000);
	assert_int_equal(stored(w, CITYPASS__STREAM__STATISTICS), 350);
	assert_int_equal(stored(w, CITYPASS__STREAM__CONSUMPTION), 80);
	assert_int_equal(unacked_stats(w), 0);
	assert_int_equal(unacked_consumption(w), 0);

	struct controller_journal_stats js;
	assert_int_equal(controller_journal_stats(w->journal, &js), 0);
	assert_int_equal(js.stat_acked, 350);
	assert_int_equal(js.consumption_acked, 80);
	WAIT_FOR(status(w).stats_acked == 350, 1000);
	assert_int_equal(status(w).stats_acked, 350);
	assert_int_equal(status(w).consumption_acked, 80);
	struct server_sync_stats ss;
	harness_stats(&w->h, &ss);
	assert_true(ss.batches >= 5); /* 350 statistics at 100 per batch, and consumption */
	assert_int_equal(ss.closed_bad_input, 0);
}

/* The server goes away mid-upload; the gate keeps journalling and retrying with backoff;
 * when the server is back every tap arrives, and arrives once. */
static void test_server_restart_exactly_once(void **state)
{
	struct world *w = *state;
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	server_up(&w->h, 0);
	unsigned port = w->h.port;
	w->cfg.batch_max = 20;
	start_client(w);
	WAIT_FOR(status(w).connected, 5000);
	assert_int_equal(status(w).connected, 1);

	tap(w, 2000, 0);
	WAIT_FOR(stored(w, CITYPASS__STREAM__STATISTICS) > 0, 5000);
	server_down(&w->h); /* 20 events a batch, one at a time: it is mid-way */
	uint64_t before = stored(w, CITYPASS__STREAM__STATISTICS);
	assert_true(before > 0);

	WAIT_FOR(!status(w).connected, 3000);
	assert_int_equal(status(w).connected, 0);
	unsigned long r0 = status(w).reconnects;
	tap(w, 300, 0); /* offline taps */
	usleep(1500 * 1000);
	/* backoff between 50 and 400 ms: several attempts, not hundreds */
	unsigned long tries = status(w).reconnects - r0;
	assert_true(tries >= 2);
	assert_true(tries <= 40);
	assert_true(gate_log_has(&w->gate, "connect failed"));

	server_up(&w->h, port);
	WAIT_FOR(stored(w, CITYPASS__STREAM__STATISTICS) == w->taps && unacked_stats(w) == 0,
	         15000);
	assert_int_equal(stored(w, CITYPASS__STREAM__STATISTICS), w->taps);
	assert_int_equal(unacked_stats(w), 0);
	assert_int_equal(status(w).connected, 1);
}

/* Issue 16: a gate listing two servers. The first does not answer: the gate is served by
 * the second at once, without a back-off round; the second dies mid-upload and the first
 * comes back: the gate moves to it, and every tap arrives once (the server side stands for
 * a database shared by both instances). */
static void test_failover_between_servers(void **state)
{
	struct world *w = *state;
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	server_up(&w->h, 0);
	unsigned first = w->h.port; /* closed again: nobody answers there for now */
	server_down(&w->h);
	server_up(&w->h, 0);
	unsigned second = w->h.port;
	w->cfg.batch_max = 20;
	w->cfg.reconnect_min_ms = 50;
	w->cfg.reconnect_max_ms = 4000;
	snprintf(w->server, sizeof(w->server), "localhost:%u, localhost:%u", first, second);
	w->cfg.server = w->server;
	assert_int_equal(controller_sync_start(&w->sync, &w->cfg), 0);
	WAIT_FOR(status(w).connected, 5000);
	assert_int_equal(status(w).connected, 1);
	char line[64];
	snprintf(line, sizeof(line), "connected to localhost:%u", second);
	assert_true(gate_log_has(&w->gate, line));
	snprintf(line, sizeof(line), "trying localhost:%u next (server 2 of 2)", second);
	assert_true(gate_log_has(&w->gate, line));

	tap(w, 2000, 0);
	WAIT_FOR(stored(w, CITYPASS__STREAM__STATISTICS) > 0, 5000);
	server_down(&w->h); /* the second dies mid-way through the upload */
	assert_true(stored(w, CITYPASS__STREAM__STATISTICS) < w->taps);
	WAIT_FOR(!status(w).connected, 3000);
	tap(w, 300, 0);
	server_up(&w->h, first);
	WAIT_FOR(stored(w, CITYPASS__STREAM__STATISTICS) == w->taps && unacked_stats(w) == 0,
	         15000);
	assert_int_equal(stored(w, CITYPASS__STREAM__STATISTICS), w->taps);
	assert_int_equal(unacked_stats(w), 0);
	snprintf(line, sizeof(line), "connected to localhost:%u", first);
	assert_true(gate_log_has(&w->gate, line));
}

/* A snapshot whose signature does not verify is refused by the list store: the client
 * logs why, drops the connection and comes back after a backoff asking for a snapshot,
 * and installs the next good one. */
static void test_bad_update_dropped_then_retried(void **state)
{
	struct world *w = *state;
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	w->lists.corrupt = 1;
	lists_publish(&w->lists, 1);
	server_up(&w->h, 0);
	start_client(w);

	WAIT_FOR(counted(w, &w->gate.refused) >= 2, 5000);
	assert_true(counted(w, &w->gate.refused) >= 2);
	assert_int_equal(held(w), 0);
	assert_true(gate_log_has(&w->gate, "snapshot v1 (base v0, "));
	assert_true(status(w).reconnects >= 1);

	/* the server caches published files, so the good one is a new version */
	pthread_mutex_lock(&w->lists.lock);
	w->lists.corrupt = 0;
	pthread_mutex_unlock(&w->lists.lock);
	lists_publish(&w->lists, 2);
	WAIT_FOR(held(w) == 2, 5000);
	assert_int_equal(held(w), 2);
	WAIT_FOR(status(w).connected, 2000);
	assert_int_equal(status(w).connected, 1);
}

/* A gate whose certificate is from the deployment CA but not enrolled is refused at the
 * handshake: never connected, and both sides log why. */
static void test_not_enrolled_refused(void **state)
{
	struct world *w = *state;
	server_up(&w->h, 0); /* DEVICE not added to the backend */
	start_client(w);
	/* refused again on each retry: watched until it has retried twice (bounded generously,
	 * each attempt is a TLS handshake on a shared machine) */
	int ever = 0;
	double deadline = sim_now() + 30.0;
	while (status(w).reconnects < 2 && sim_now() < deadline) {
		ever |= status(w).connected;
		usleep(10000);
	}
	ever |= status(w).connected;
	assert_int_equal(ever, 0);
	assert_true(status(w).reconnects >= 2);
	assert_true(gate_log_has(&w->gate,
	                         "TLS handshake refused by the server after our certificate"));
	assert_true(harness_log_has(&w->h, "device is not enrolled", 1000));
	assert_int_equal(held(w), 0);
}

/* Issue 13: the office hears of the gate's health at connect (its backlog, the list it
 * holds), as soon as the backlog is all acknowledged, and as soon as a device goes. */
static size_t reports(struct world *w)
{
	pthread_mutex_lock(&w->lists.lock);
	size_t n = w->lists.n_reports;
	pthread_mutex_unlock(&w->lists.lock);
	return n;
}

static int report_matches(struct world *w, size_t from, int reader, uint64_t backlog)
{
	int found = 0;
	pthread_mutex_lock(&w->lists.lock);
	for (size_t i = from; i < w->lists.n_reports; i++)
		found |= w->lists.reports[i].reader == reader &&
		         w->lists.reports[i].backlog == backlog;
	pthread_mutex_unlock(&w->lists.lock);
	return found;
}

static void test_health_reported(void **state)
{
	struct world *w = *state;
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	mem_backend_fail_ingest(w->h.mem, 1); /* what the gate journals stays unacked */
	server_up(&w->h, 0);
	w->reader = CONTROLLER_DEVICE_OK;
	w->cfg.health = world_health;
	tap(w, 7, 0);
	start_client(w);
	/* at Hello: the backlog the office must see (the uploads fail, the gate retries) */
	WAIT_FOR(report_matches(w, 0, CITYPASS__GATE_HEALTH__DEVICE__DEVICE_OK, 7), 5000);
	assert_true(report_matches(w, 0, CITYPASS__GATE_HEALTH__DEVICE__DEVICE_OK, 7));
	assert_int_equal(w->lists.reports[0].backlog, 7);

	/* the server stores again: the drained backlog is reported at once, not in 5 min */
	mem_backend_fail_ingest(w->h.mem, 0);
	WAIT_FOR(unacked_stats(w) == 0 &&
	                 report_matches(w, 0, CITYPASS__GATE_HEALTH__DEVICE__DEVICE_OK, 0),
	         10000);
	assert_int_equal(unacked_stats(w), 0);
	assert_true(report_matches(w, 0, CITYPASS__GATE_HEALTH__DEVICE__DEVICE_OK, 0));

	/* the reader goes: reported at once */
	size_t before = reports(w);
	pthread_mutex_lock(&w->gate.lock);
	w->reader = CONTROLLER_DEVICE_DOWN;
	pthread_mutex_unlock(&w->gate.lock);
	controller_sync_health_changed(w->sync);
	WAIT_FOR(report_matches(w, before, CITYPASS__GATE_HEALTH__DEVICE__DEVICE_DOWN, 0), 5000);
	assert_true(report_matches(w, before, CITYPASS__GATE_HEALTH__DEVICE__DEVICE_DOWN, 0));
	assert_true(status(w).health_reports >= 3);
}

/* The server closes a link silent for 3 s; a keepalive every second keeps an idle one open
 * for more than twice that. (3 s, not less: a stall of the loaded test machine between two
 * keepalives must not look like a missed one.) */
static void test_keepalive_keeps_idle_link(void **state)
{
	struct world *w = *state;
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	w->h.cfg.idle_timeout_ms = 3000;
	w->cfg.keepalive_s = 1;
	server_up(&w->h, 0);
	start_client(w);
	WAIT_FOR(status(w).connected, 5000);
	assert_int_equal(status(w).connected, 1);
	unsigned long r0 = status(w).reconnects;
	int64_t contact0 = status(w).last_contact;

	int dropped = 0;
	double deadline = sim_now() + 6.5;
	while (sim_now() < deadline) {
		dropped |= !status(w).connected;
		usleep(20000);
	}
	assert_int_equal(dropped, 0);
	assert_int_equal(status(w).reconnects, r0);
	struct server_sync_stats ss;
	harness_stats(&w->h, &ss);
	assert_int_equal(ss.timeouts, 0);
	assert_int_equal(ss.sessions, 1);
	/* each keepalive was answered: the link works both ways */
	assert_true(status(w).last_contact >= contact0 + 3);
}

/* Cut by the server (here for its silence), the gate dials again with its session's ticket
 * and is resumed without a certificate exchange. Revoked meanwhile, it is refused with its
 * ticket, forgets it, and its next, full, handshake is refused with the reason a gate can
 * tell. */
static void test_reconnect_resumes_session(void **state)
{
	struct world *w = *state;
	const char *full_refusal = "TLS handshake refused by the server after our certificate";
	mem_backend_add_device(w->h.mem, DEVICE, SITE, FIXTURE_SECTOR);
	w->h.cfg.idle_timeout_ms = 400; /* the keepalive comes every 20 s */
	server_up(&w->h, 0);
	start_client(w);
	WAIT_FOR(gate_log_has(&w->gate, "resumed from a ticket"), 10000);
	assert_true(gate_log_has(&w->gate, "resumed from a ticket"));
	struct server_sync_stats ss;
	harness_stats(&w->h, &ss);
	assert_true(ss.resumed >= 1);
	assert_int_equal(ss.refused_handshake, 0);

	mem_backend_revoke_device(w->h.mem, DEVICE);
	WAIT_FOR(gate_log_has(&w->gate, full_refusal), 10000);
	assert_true(gate_log_has(&w->gate, full_refusal));
	assert_true(harness_log_has(&w->h,
	                            "TLS handshake refused (session resumed from a ticket): "
	                            "device is revoked",
	                            1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_snapshot_then_pushed_delta, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_upload_acked_in_journal, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_server_restart_exactly_once, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_failover_between_servers, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_update_dropped_then_retried, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_not_enrolled_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_keepalive_keeps_idle_link, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_reconnect_resumes_session, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_health_reported, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
