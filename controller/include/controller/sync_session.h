/*
 * controller/sync_session.h — the gate's side of a sync session as a state machine
 * (docs/link.md, docs/controller.md "The sync client", docs/sync-protocol.md).
 *
 * Bytes from the server in, bytes for the server out, and in between the protocol's rules:
 * Hello, Welcome (clock, card keys, key chain, device-CA announcements), list updates
 * assembled chunk by chunk and handed to the install callback, the journal's two streams
 * uploaded in batches (one in flight per stream) and acknowledged in the journal when the
 * server says so, shared anti-passback grants, keepalives and health reports. There is no
 * socket, no thread and no timer inside: the sync client (controller/sync_client.h) moves
 * the bytes over TLS and calls the tick functions from its timers; a test plays the server
 * in-process by encoding frames (proto/frame.h) and feeding their bytes (as libevent's
 * bufferevent pairs do).
 *
 * One session object serves the connections of a sync client one after the other: begin()
 * at each connection, reset() after it; what a connection teaches (a refused update wants a
 * snapshot, the version held by the server's account, the time of the last health report)
 * survives reset(). Not thread-safe: one thread drives it.
 *
 * Functions that can end the session return 0 while it goes on and -1 once it has ended:
 * controller_sync_session_why() then says why in one line (e.g. "bad input from server:
 * ListUpdate chunk out of order", "server error 3: ..."), and the caller closes the
 * connection and calls reset().
 */
#ifndef CONTROLLER_SYNC_SESSION_H
#define CONTROLLER_SYNC_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "controller/sync_client.h"
#include "proto/list.h"
#include "proto/rotation.h"

#ifdef __cplusplus
extern "C" {
#endif

struct controller_journal;
struct controller_timekeeper;

enum controller_sync_session_state {
	CONTROLLER_SYNC_SESSION_IDLE = 0, /* no connection: begin() starts one */
	CONTROLLER_SYNC_SESSION_HELLO,    /* Hello queued, waiting for Welcome */
	CONTROLLER_SYNC_SESSION_READY,    /* Welcome received: updates, uploads, acks */
	CONTROLLER_SYNC_SESSION_ENDED,    /* ended (why() says why): close, then reset() */
};

/* Issue 11: one rotation of the device CA as Welcome announces it, DER (valid during the
 * call only): the new CA certified by the one before, and the new CA itself. */
struct controller_ca_announcement {
	const uint8_t *cross, *ca;
	size_t cross_len, ca_len;
};

struct controller_sync_session_config {
	const char *server; /* for the log: who "connected to" names (NULL: "the server") */
	const char *device_id;
	uint16_t sector;
	const char *software_version;        /* NULL: "" */
	unsigned batch_max;                  /* events per batch, 1..8192 */
	unsigned keepalive_s;                /* a server silent 3 periods ends the session */
	struct controller_journal *journal;  /* the driving thread's own connection */
	struct controller_timekeeper *clock; /* NULL: the wall clock alone */
	int share_passback;                  /* see controller_sync_config */
	/* The callbacks of controller_sync_config, with the same contracts, all called on the
	 * driving thread with `ctx`: held_version and install are required. */
	uint64_t (*held_version)(void *ctx);
	unsigned (*held_format)(void *ctx);
	int (*install)(void *ctx, enum controller_update_kind kind, const uint8_t *data, size_t len,
	               const uint8_t *sig, size_t sig_len);
	void (*card_keys)(void *ctx, const struct controller_card_keys *keys);
	void (*key_chain)(void *ctx, const struct proto_rotation_signed *statements, size_t n);
	void (*health)(void *ctx, struct controller_gate_health *out);
	void (*log)(void *ctx, const char *line);
	void *ctx;
	/* Issue 11: the device CA's rotations announced in Welcome, oldest first; called with
	 * ca_ctx (the sync client follows them into its TLS anchors). NULL: ignored. A refusal
	 * is the callback's to log: the session goes on, authenticated by an anchor held. */
	void (*ca_chain)(void *ca_ctx, const struct controller_ca_announcement *a, size_t n);
	void *ca_ctx;
};

struct controller_sync_session;

/* A session in state IDLE. 0, CONTROLLER_ERR_ARG (a required field missing),
 * CONTROLLER_ERR_NOMEM. */
int controller_sync_session_new(struct controller_sync_session **out,
                                const struct controller_sync_session_config *cfg);
void controller_sync_session_free(struct controller_sync_session *s); /* NULL is allowed */

/* Issue 16: the server the next connections go to, for the log ("connected to"), when
 * the client moves along its list. 0, or CONTROLLER_ERR_ARG (NULL) / _NOMEM (the name
 * kept unchanged). */
int controller_sync_session_set_server(struct controller_sync_session *s, const char *server);

/* The connection is up (TLS done): queue Hello, wait for Welcome. 0 or -1 (ended). */
int controller_sync_session_begin(struct controller_sync_session *s);

/* Bytes received from the server, any split: every whole frame in them is handled.
 * 0, or -1 once the session has ended (a malformed frame, a broken rule, an Error frame,
 * a refused update, a journal failure). Bytes fed to an ended session are ignored. */
int controller_sync_session_feed(struct controller_sync_session *s, const uint8_t *data,
                                 size_t len);

/* The bytes queued for the server (length-prefixed frames), and how many of them went. */
const uint8_t *controller_sync_session_output(const struct controller_sync_session *s, size_t *len);
void controller_sync_session_sent(struct controller_sync_session *s, size_t n);
/* Counts every frame queued since new(): the server's idle timer counts from the last one,
 * so a caller re-arms its keepalive timer when this moves. */
uint64_t controller_sync_session_frames_queued(const struct controller_sync_session *s);

/* A keepalive period passed (READY only): end the session when the server has been silent
 * 3 periods, else send what the journal holds, an empty batch when nothing, and a health
 * report when 5 minutes old. 0 or -1. */
int controller_sync_session_keepalive(struct controller_sync_session *s);
/* New journal rows wait, or the list store changed: upload now; a store that now claims
 * no list (a damaged file) sends a new Hello so the snapshot comes at once. 0 or -1. */
int controller_sync_session_kick(struct controller_sync_session *s);
/* The gate's health changed: reported with the next batch. */
void controller_sync_session_health_changed(struct controller_sync_session *s);
/* Grants this gate admitted (controller_sync_share_grant): sent when READY and the server
 * shares grants, else dropped (a grant is worth its first seconds only). 0 or -1. */
int controller_sync_session_share_grants(struct controller_sync_session *s,
                                         const uint8_t (*keys)[PROTO_LIST_KEY_LEN], size_t n);

/* After the connection is closed, whoever ended it: back to IDLE, buffers and the update
 * in assembly dropped, the batches in flight forgotten (their rows stay unacked in the
 * journal and go again in the next session). */
void controller_sync_session_reset(struct controller_sync_session *s);

enum controller_sync_session_state
controller_sync_session_state(const struct controller_sync_session *s);
/* Why the session ended ("" while it has not). */
const char *controller_sync_session_why(const struct controller_sync_session *s);
/* 1 when the session reached Welcome and nothing went wrong since: the caller's back-off
 * starts again from its minimum after such a session. */
int controller_sync_session_healthy(const struct controller_sync_session *s);
/* What the session knows of the link (controller_sync_status without `reconnects`). */
void controller_sync_session_status(const struct controller_sync_session *s,
                                    struct controller_sync_status *st);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_SYNC_SESSION_H */
