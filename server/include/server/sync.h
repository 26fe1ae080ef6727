/*
 * server/sync.h — the sync server: gate controllers connect over mutually authenticated
 * TLS, receive the list updates of their sector (pushed as soon as a version is published)
 * and upload their usage events (docs/sync-server.md, docs/sync-protocol.md).
 *
 * One server runs on one libevent event_base, in the thread that dispatches it; every
 * function below must be called from that thread (or before the loop runs). The storage
 * is reached only through a struct server_sync_backend (server/sync_backend.h).
 */
#ifndef SERVER_SYNC_H
#define SERVER_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"
#include "server/sync_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct server_sync;

/* Issue 15: who a log line is about. device: its certificate's name ("" before the
 * handshake); site and sector: their names (or numbers when the backend has no names),
 * "" until the device is known. Never a card's identifier. */
struct server_sync_gate_ref {
	const char *device;
	const char *site;
	const char *sector;
};

/* Defaults of the timeouts (docs/sync-server.md, "Timeouts and keepalive"). */
#define SERVER_SYNC_HANDSHAKE_TIMEOUT_MS 10000u
#define SERVER_SYNC_HELLO_TIMEOUT_MS     10000u
#define SERVER_SYNC_IDLE_TIMEOUT_MS      180000u
#define SERVER_SYNC_POLL_INTERVAL_MS     100u
/* issue 16: the poll's period while the backend announces what is published (LISTEN /
 * NOTIFY): a backstop, not the way news arrives */
#define SERVER_SYNC_NOTIFIED_POLL_MS  60000u
#define SERVER_SYNC_STOP_DRAIN_MS     2000u
#define SERVER_SYNC_DEVICE_RECHECK_MS 5000u
/* TLS handshakes in progress at once; further connections are accepted and wait their
 * turn, up to SERVER_SYNC_MAX_WAITING of them, then in the kernel's accept queue
 * (docs/sync-server.md, "Reconnect storms"). */
#define SERVER_SYNC_MAX_HANDSHAKES 64u
#define SERVER_SYNC_MAX_WAITING    16384u
/* How long after its full handshake a gate's session can be resumed from a TLS session
 * ticket (docs/sync-server.md, "Reconnect storms"): a week, so that the gates of a cut
 * healed within the week come back without a full handshake each. */
#define SERVER_SYNC_TICKET_LIFETIME_S (7u * 24u * 3600u)
/* Longer delta chains than this are replaced by a snapshot. */
#define SERVER_SYNC_MAX_CHAIN 64u

/* syslog(3) priorities are used for log lines: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
typedef void (*server_sync_log_fn)(void *arg, int priority, const char *line);

struct server_sync_config {
	/* Storage; borrowed: the caller destroys it after server_sync_free(). */
	struct server_sync_backend backend;
	/* What the ingest thread commits batches with (its own database connection); ops NULL:
	 * `backend`, which must then be safe to call from two threads (the stores' backends of
	 * server_sync_backend_open are not: one connection, one thread). Borrowed too. */
	struct server_sync_backend ingest_backend;

	/* PEM files: the deployment CA that signs device certificates, the server's own
	 * certificate and key, and optionally a CRL of the CA. */
	const char *ca_path;
	const char *cert_path;
	const char *key_path;
	const char *crl_path;

	/* 0 selects the SERVER_SYNC_* default of each. */
	unsigned handshake_timeout_ms; /* TCP accept to TLS handshake done */
	unsigned hello_timeout_ms;     /* handshake done to Hello received */
	unsigned idle_timeout_ms;      /* longest silence between two complete frames */
	unsigned poll_interval_ms;     /* how often list_latest is asked per sector */
	unsigned stop_drain_ms;        /* how long server_sync_stop() lets output drain */
	unsigned device_recheck_ms;    /* how often connected devices are looked up again, so
	                                  a revocation also ends an open session */
	unsigned max_chain;            /* longest delta chain sent instead of a snapshot */
	unsigned max_handshakes;       /* TLS handshakes in progress at once */
	unsigned max_waiting;          /* accepted connections waiting for one, at most */
	unsigned ticket_lifetime_s;    /* session tickets' lifetime */
	size_t max_frame;              /* largest frame accepted (0: PROTO_FRAME_DEFAULT_MAX) */

	/* Log sink (NULL: one line per event on stderr) and the least important priority
	 * logged (0 selects LOG_INFO). */
	server_sync_log_fn log;
	void *log_arg;
	int log_level;
	/* Issue 15: when set, a line about one gate's connection goes here instead, with the
	 * gate's identity for journald's fields; log_arg is passed to it too. */
	void (*log_gate)(void *arg, int priority, const struct server_sync_gate_ref *gate,
	                 const char *line);

	const char *server_version; /* stated in Welcome; NULL: the project version */
};

/* Counters, for tests, benchmarks and the shutdown log line. */
struct server_sync_stats {
	uint64_t accepted;          /* TCP connections accepted */
	uint64_t refused_handshake; /* TLS handshakes failed or certificates refused */
	uint64_t sessions;          /* Hellos accepted */
	uint64_t resumed;           /* TLS sessions resumed from a ticket (admitted or not) */
	uint64_t closed_bad_input;  /* connections closed for a protocol violation */
	uint64_t refused_batches;   /* of which event batches outside what the gate may report */
	uint64_t timeouts;          /* connections closed by a timeout */
	uint64_t revoked_sessions;  /* sessions ended because the device was revoked */
	uint64_t batches;           /* event batches committed and acknowledged */
	uint64_t ingest_groups;     /* transactions the ingest thread committed them in */
	uint64_t ingest_busy;       /* times it found the database locked and waited */
	uint64_t events;            /* events in those batches */
	uint64_t updates;           /* list updates sent (a delta chain counts each delta) */
	uint64_t snapshots;         /* ... of which snapshots */
	uint64_t published;         /* new versions noticed by polling */
	uint64_t grants_relayed;    /* anti-passback grants passed to a site's gates (issue 13) */
	unsigned connections;       /* open now */
	unsigned handshakes;        /* TLS handshakes in progress now */
	unsigned handshakes_peak;   /* the most ever in progress at once */
	uint64_t waited;            /* connections that waited for a handshake slot */
	uint64_t left_waiting;      /* ... of which closed by their peer meanwhile: no handshake */
	unsigned waiting;           /* waiting now */
	unsigned waiting_peak;      /* the most ever waiting at once */
	uint64_t accept_pauses;     /* times accepting stopped at max_waiting */
};

/*
 * Issue 15: each gate's traffic since the server started, for the metrics: one entry per
 * device that opened a session (its certificate's name, never a card's), kept after it
 * disconnects so that counters only grow.
 */
struct server_sync_gate_stats {
	char device[SERVER_DEVICE_ID_MAX];
	uint32_t site;
	uint16_t sector;
	unsigned sessions_open;    /* sessions of this device open now (0 or 1 normally) */
	uint64_t batches;          /* event batches committed and acknowledged */
	uint64_t events[2];        /* events in them: [0] statistics, [1] consumption */
	unsigned pending_batches;  /* received, handed to the ingest thread, not yet acked */
	int has_report;            /* a GateHealth arrived in this server's life */
	uint64_t reported_backlog; /* GateHealth.journal_backlog, as the gate last said */
};

/* The gates' entries, in the order they first connected: up to cap copied to out (out
 * may be NULL with cap 0); returns how many there are. */
size_t server_sync_gate_stats(const struct server_sync *s, struct server_sync_gate_stats *out,
                              size_t cap);

/*
 * Issue 15: revocation push latency, in seconds: from the moment the server notices a new
 * list version of a sector (its poll: at most poll_interval_ms after the publication) to
 * the moment each gate connected then reports holding it (GateHealth.list_version, which
 * a gate sends as soon as it has installed an update). One observation per gate and
 * version; a gate that disconnects first counts as unacknowledged instead.
 */
#define SERVER_SYNC_PUSH_BUCKETS 10
extern const double server_sync_push_bounds[SERVER_SYNC_PUSH_BUCKETS];
struct server_sync_push_latency {
	uint64_t buckets[SERVER_SYNC_PUSH_BUCKETS + 1]; /* per bucket; the last: above all */
	uint64_t count;
	double sum_s;
	uint64_t unacknowledged; /* pushes whose gate left before saying it held them */
};
void server_sync_get_push_latency(const struct server_sync *s,
                                  struct server_sync_push_latency *out);

/* Create a server (TLS material loaded, nothing listening yet). Returns 0 or
 * SERVER_ERR_ARG, SERVER_ERR_NOMEM, SERVER_ERR_CRYPTO (a certificate or key unreadable:
 * the reason is logged). */
int server_sync_new(struct server_sync **out, struct event_base *base,
                    const struct server_sync_config *cfg);

/* Listen on "ADDR:PORT": "1.2.3.4:P" or "[v6]:P", "[::]:P" taking IPv4 too (port 0 picks
 * a free one). Returns 0 or
 * SERVER_ERR_ARG (unparsable address), SERVER_ERR_IO (bind failed; logged). */
int server_sync_listen(struct server_sync *s, const char *addr_port);

/* The port actually bound, or 0 when not listening. */
unsigned server_sync_port(const struct server_sync *s);

/* Serve an already connected stream socket (taken over: the server closes it). Used by
 * in-process tests with socketpair(); peer names the other end in log lines. */
int server_sync_adopt(struct server_sync *s, int fd, const char *peer);

/* Ask the backend for new list versions now instead of at the next poll tick (a publisher
 * in the same process calls this right after publishing). */
void server_sync_check_published(struct server_sync *s);

/*
 * Stop: close the listener, tell every controller SHUTTING_DOWN, let output drain for at
 * most stop_drain_ms, then close every connection and remove every event of the server,
 * so event_base_dispatch() returns once the caller's own events are gone. Batches are
 * committed by the ingest thread: stop lets the transaction under way finish and drops
 * what is still queued, unacknowledged (gates send it again); an ack is only ever sent for
 * a committed batch.
 */
void server_sync_stop(struct server_sync *s);

/* 1 once stop has finished closing everything. */
int server_sync_stopped(const struct server_sync *s);

void server_sync_get_stats(const struct server_sync *s, struct server_sync_stats *out);

/* Free everything (closing what is still open). The backend is not destroyed. */
void server_sync_free(struct server_sync *s);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_SYNC_H */
