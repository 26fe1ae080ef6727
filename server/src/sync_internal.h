/*
 * sync_internal.h — the sync server's private structures, shared by
 *   sync_server.c  the server: listening, sectors, publish polling, stop, logging
 *   sync_admit.c   connections accepted, admitted to their handshake a few at a time
 *   sync_conn.c    one controller connection: TLS, framing, the session rules
 *   sync_plan.c    which list update brings a controller current, and the blob cache
 *   sync_ingest.c  the thread that commits event batches (never the loop)
 *   sync_figures.c each gate's traffic and the push latency, for the metrics (issue 15)
 * Tests reach it through the server/src include path (the planner is unit-tested alone).
 */
#ifndef SERVER_SYNC_INTERNAL_H
#define SERVER_SYNC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>

#include "server/sync.h"
#include "server/sync_backend.h"
#include "link/tls.h"

struct event;
struct evbuffer;
struct evconnlistener;
struct proto_frame_decoder;
struct sockaddr;
struct sync_waiting; /* a connection accepted, waiting for its handshake (sync_admit.c) */
TAILQ_HEAD(sync_waiting_list, sync_waiting);

/* --- list updates and their cache (sync_plan.c) ---------------------------------------- */

/* One published file as the backend gave it: a snapshot (base 0) or a delta. Shared by the
 * cache and every connection still sending it, hence the reference count (loop thread
 * only). */
struct sync_blob {
	int refs;
	int is_delta;
	uint16_t sector;
	uint64_t base_version; /* 0 for a snapshot */
	uint64_t version;
	uint8_t *data;
	size_t len;
	uint8_t sig[SERVER_SIG_MAX];
	size_t sig_len;
	uint64_t usage_position; /* issue 13: ListUpdate.consumption_position */
};

struct sync_blob *sync_blob_ref(struct sync_blob *b);
void sync_blob_unref(struct sync_blob *b);

/* Deltas are immutable once published, so the cache keeps those of the last max_chain
 * versions (and which are missing) plus the newest snapshot: 1 000 controllers brought
 * current after a publish cost one backend read, not 1 000. */
#define SYNC_CACHE_DELTAS 64

struct sync_cache_delta {
	uint64_t base;
	struct sync_blob *blob; /* NULL: the backend no longer keeps it */
};

struct sync_cache {
	uint16_t sector;
	struct sync_blob *snapshot;
	struct sync_cache_delta deltas[SYNC_CACHE_DELTAS];
	size_t n_deltas;
	uint64_t backend_reads; /* for tests: how often the backend was asked */
};

void sync_cache_init(struct sync_cache *c, uint16_t sector);
void sync_cache_clear(struct sync_cache *c);

/* What to send a controller: nothing, one snapshot, or a chain of deltas in order. */
struct sync_plan {
	struct sync_blob *blobs[SYNC_CACHE_DELTAS];
	size_t count;
	int snapshot; /* 1 when blobs[0] is a snapshot */
};

/*
 * The smallest update taking a controller from `held` to `latest` (docs/sync-server.md):
 * nothing when it is current (or claims to be ahead); a snapshot when it holds nothing, is
 * more than max_chain versions behind, a delta of the chain is no longer kept, or the
 * chain of two or more deltas weighs at least as much as the snapshot; else the deltas.
 * Returns 0 (plan filled; release it with sync_plan_release) or the backend's error.
 */
int sync_plan_update(struct sync_cache *c, const struct server_sync_backend *be, unsigned max_chain,
                     uint64_t held, uint64_t latest, struct sync_plan *plan);
void sync_plan_release(struct sync_plan *plan);

/* --- server and connections ------------------------------------------------------------ */

struct sync_conn;
TAILQ_HEAD(sync_conn_list, sync_conn);

/* Issue 15: a publication a connection was told of (sync_figures.c). */
#define SYNC_PUSHES_TRACKED 4
struct sync_push {
	uint64_t version;
	struct timespec noticed; /* CLOCK_MONOTONIC: when the server saw it published */
};

/* Each gate's figures, found by device id through an open-addressing index. */
struct sync_figures {
	struct server_sync_gate_stats *gates;
	size_t n, cap;
	uint32_t *index;  /* gate number + 1; 0: empty slot */
	size_t index_cap; /* a power of two, at least twice n */
	struct server_sync_push_latency push;
};

enum sync_conn_state {
	SYNC_CONN_HANDSHAKE, /* TLS handshake (certificate checked against the backend) */
	SYNC_CONN_AWAIT_HELLO,
	SYNC_CONN_READY,   /* Welcome sent: updates, pushes and event upload */
	SYNC_CONN_CLOSING, /* draining output, reading nothing more */
};

/* An update being sent, chunk by chunk as the socket drains (a 80 MiB snapshot is never
 * copied whole into the output buffer). */
struct sync_outgoing {
	struct sync_blob *blob;
	uint32_t next_chunk;
	struct sync_outgoing *next;
};

struct sync_conn {
	struct server_sync *srv;
	unsigned id;
	int fd;
	char peer[64];
	enum sync_conn_state state;
	struct link_tls_session tls;
	struct event *rd, *wr, *timer;
	struct evbuffer *out;
	struct proto_frame_decoder *dec;

	char cn[SERVER_DEVICE_ID_MAX]; /* of the device certificate */
	char refusal[160];             /* why the certificate was refused, if it was */
	int in_handshake;              /* counted in the server's handshakes in progress */
	struct server_device_info dev; /* from the backend, at handshake */
	int have_dev;
	/* issue 15: its site's and sector's names for the log's fields (numbers without) */
	char site_name[SERVER_PLACE_NAME_MAX], sector_name[SERVER_PLACE_NAME_MAX];

	struct sync_sector *sector; /* set once Hello is accepted */
	uint32_t features;          /* Hello.features: the newer bodies this gate takes */
	uint64_t held;              /* version held once the queued updates are applied */
	struct sync_outgoing *q_head, *q_tail;

	/* Batches handed to the ingest thread and not back yet: each holds a reference, so
	 * that a connection closed meanwhile stays allocated (`closed`) until they are. */
	unsigned refs;
	unsigned pending_batches;
	int closed;

	/* issue 15: its device's entry in the figures (-1 before Hello), and the publications
	 * it was told of and has not yet reported holding, oldest first */
	long gate_ix;
	struct sync_push pushes[SYNC_PUSHES_TRACKED];
	unsigned n_pushes;

	TAILQ_ENTRY(sync_conn) all_link;
	TAILQ_ENTRY(sync_conn) sector_link;
};

/* The controllers of one service sector, and what was last published for it. */
struct sync_sector {
	uint16_t sector;
	uint64_t latest;
	int polled; /* latest was asked at least once: later changes are publications */
	struct timespec noticed; /* when `latest` was seen published (issue 15) */
	struct sync_conn_list conns;
	unsigned n_conns;
	struct sync_cache cache;
};

struct server_sync {
	struct event_base *base;
	struct server_sync_backend be;
	struct link_tls_ctx *tls;
	struct evconnlistener *listener;
	unsigned port;
	struct event *poll_ev;
	struct event *recheck_ev;
	/* issue 16: the backend's announcements (a shared PostgreSQL): while they come, the
	 * poll timer is only a backstop (SERVER_SYNC_NOTIFIED_POLL_MS) */
	struct event *changes_ev;

	unsigned hello_timeout_ms, handshake_timeout_ms, idle_timeout_ms, poll_interval_ms;
	unsigned stop_drain_ms, max_chain, device_recheck_ms;
	/* A storm of reconnecting gates (a network cut healed, a server restart) would start
	 * every handshake at once: the loop would share its CPU among thousands of them, none
	 * would finish within its deadline, and every one would be cut and start again. At
	 * most max_handshakes run at once; the others wait in `waiting`, their deadline not
	 * yet started (sync_admit.c); beyond max_waiting of them the listener pauses
	 * (accept_paused) and the kernel's accept queue holds the rest. */
	unsigned max_handshakes, max_waiting;
	struct sync_waiting_list waiting;
	struct event *admit_ev; /* admits the next waiting ones, from the loop */
	int accept_paused;
	/* accept() out of descriptors (EMFILE): the listener rests a second, instead of
	 * being woken again at once by the connection it cannot take */
	struct event *accept_retry_ev;
	int accept_resting;
	size_t max_frame;
	const struct timeval *tv_handshake, *tv_hello, *tv_idle;

	server_sync_log_fn log;
	void (*log_gate)(void *arg, int priority, const struct server_sync_gate_ref *gate,
	                 const char *line);
	void *log_arg;
	int log_level;
	char server_version[64];

	struct sync_conn_list conns;
	unsigned next_conn_id;
	struct sync_sector **sectors;
	size_t n_sectors;

	struct server_sync_stats stats;
	struct sync_figures figures; /* issue 15 */
	int stopping;
	int stopped;
	/* issue 11: the card keys' change stamp the controllers were last given */
	int64_t card_keys_stamp;
	int card_keys_polled;
	/* issue 11: the list key's rotation statements as last read, and as sent */
	struct server_list_chain chain;
	Citypass__KeyStatement *chain_msgs;
	Citypass__KeyStatement **chain_ptrs;
	Citypass__KeyChain chain_msg;
	/* issue 11: the device CA's rotations, read at start */
	struct server_ca_chain ca_chain;
	Citypass__CaAnnouncement *ca_msgs;
	Citypass__CaAnnouncement **ca_ptrs;
	Citypass__CaChain ca_chain_msg;
	struct sync_ingest *ingest;
};

void sync_log(struct server_sync *s, int priority, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The sector's entry, created on first use; NULL when out of memory. */
struct sync_sector *sync_sector_get(struct server_sync *s, uint16_t sector);
/* Ask the backend for the sector's newest version; on a new one, notify its controllers. */
void sync_sector_refresh(struct server_sync *s, struct sync_sector *sec);
/* sync_admit.c. Called by sync_conn when a connection starts its TLS handshake, and when
 * it leaves it (done, refused, timed out or closed): the next waiting one is admitted. */
void sync_server_handshake_begins(struct server_sync *s);
void sync_server_handshake_ends(struct server_sync *s);
/* The listener's callbacks; init creates the events (0 or SERVER_ERR_NOMEM); stop closes
 * the connections still waiting; free also frees the events. */
int sync_admit_init(struct server_sync *s);
void sync_admit_accept(struct evconnlistener *l, int fd, struct sockaddr *sa, int len, void *arg);
void sync_admit_accept_error(struct evconnlistener *l, void *arg);
void sync_admit_stop(struct server_sync *s);
void sync_admit_free(struct server_sync *s);
/* Called by sync_conn when a connection closes (to finish a stop). */
void sync_server_conn_gone(struct server_sync *s);

/* sync_validate.c: 0 when every event of the batch is within what `dev` may report, 1
 * when one is not (why says which and why), or a backend error. */
int sync_validate_batch(const struct server_sync_backend *be, const struct server_device_info *dev,
                        const Citypass__EventBatch *b, int64_t now, char *why, size_t cap);

/* sync_ingest.c: the ingest thread, with its own backend connection. submit takes the
 * frame (freed once done) and a reference to the connection; sync_conn_batch_done() gets
 * the result on the loop. */
int sync_ingest_start(struct server_sync *s, const struct server_sync_backend *be);
int sync_ingest_submit(struct server_sync *s, struct sync_conn *c, Citypass__Frame *f);
/* Issue 13: a gate's health report (Hello, EventBatch), copied and stored by the worker. */
int sync_ingest_health(struct server_sync *s, const char *device_id, const Citypass__GateHealth *h);
void sync_ingest_stop(struct server_sync *s);
void sync_ingest_free(struct server_sync *s);
size_t sync_ingest_queued(const struct server_sync *s);
void sync_ingest_counters(const struct server_sync *s, uint64_t *groups, uint64_t *busy);

/* sync_figures.c (issue 15), loop thread only. The connection's device gets its entry at
 * Hello (0, or SERVER_ERR_NOMEM: the session goes on, uncounted). */
int sync_figures_session(struct sync_conn *c);
struct server_sync_gate_stats *sync_figures_of(struct sync_conn *c); /* NULL: none */
/* The connection was told of `version` (noticed then); it reported holding `held`. */
void sync_figures_push_sent(struct sync_conn *c, uint64_t version, const struct timespec *noticed);
void sync_figures_report(struct sync_conn *c, const Citypass__GateHealth *h);
/* The connection closes: its session ends, its pushes go unacknowledged. */
void sync_figures_conn_gone(struct sync_conn *c);
void sync_figures_free(struct server_sync *s);

/* sync_conn.c */
int sync_conn_start(struct server_sync *s, int fd, const char *peer);
struct sync_conn *sync_conn_ref(struct sync_conn *c);
void sync_conn_unref(struct sync_conn *c);
/* A batch the ingest thread committed (rc 0, acked: the stream's new ack) or failed. */
void sync_conn_batch_done(struct sync_conn *c, const Citypass__EventBatch *b, int rc,
                          uint64_t acked, uint64_t position);
/* Tell a controller of a new version and queue the update. Returns 0, or -1 when the
 * connection was closed doing so. */
int sync_conn_notify(struct sync_conn *c, uint64_t version);
/* Issue 11: send the connection's sector card keys (a rotation was made). 0 or -1. */
int sync_conn_send_card_keys(struct sync_conn *c);
/* Issue 11: send the list key's rotation statements (an agent rotated it). 0 or -1. */
int sync_conn_send_key_chain(struct sync_conn *c);
/* Look the device up again; end the session if it was revoked or removed. */
void sync_conn_recheck(struct sync_conn *c);
/* Begin a graceful close: Error SHUTTING_DOWN, drain, close. */
void sync_conn_shutdown(struct sync_conn *c);
/* Close at once (server freed). */
void sync_conn_destroy(struct sync_conn *c);

#endif /* SERVER_SYNC_INTERNAL_H */
