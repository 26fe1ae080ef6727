/*
 * controller/sync_client.h — the gate's side of the sync link (docs/sync-protocol.md,
 * docs/sync-server.md).
 *
 * One mutually authenticated TLS connection to citypass-server (link/tls.h), run on its own
 * thread with its own libevent loop, so that the reader thread (libnfc, decisions) never
 * waits for the network, and reconnected with exponential backoff and jitter while the gate
 * works on offline. The protocol is the session's (controller/sync_session.h): it sends
 * Hello, applies the list updates it receives through the caller's install callback,
 * uploads the journal's two streams in batches and acks them in the journal only when the
 * server acknowledged them (so a batch unacknowledged when a server dies goes again to the
 * next one, which the database counts once), reacts to the server's publish notifications, sends
 * keepalives.
 */
#ifndef CONTROLLER_SYNC_CLIENT_H
#define CONTROLLER_SYNC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/rotation.h"

#ifdef __cplusplus
extern "C" {
#endif

enum controller_update_kind {
	CONTROLLER_UPDATE_SNAPSHOT = 1,
	CONTROLLER_UPDATE_DELTA = 2,
};

/* Issue 11: the card keys of the gate's sector as the server gives them (valid during the
 * call only). */
struct controller_card_keys {
	uint8_t version;
	const uint8_t *master; /* 16 bytes */
	int has_previous;
	uint8_t previous_version;
	const uint8_t *previous; /* 16 bytes when has_previous */
};

/* Issue 13: a device's state in the gate's health report (GateHealth). */
enum controller_device_state {
	CONTROLLER_DEVICE_OK = 1,
	CONTROLLER_DEVICE_DOWN = 2, /* configured, but unplugged, silent or answering garbage */
	CONTROLLER_DEVICE_NOT_CONFIGURED = 3,
};

/* Issue 13: what the office sees of a gate (`citypass-admin device list`); the journal's
 * backlog is added by the sync client from its own connection. */
struct controller_gate_health {
	enum controller_device_state reader, scanner;
	uint64_t list_version;
	int64_t list_issued_at; /* the held list's, 0 with none */
	uint64_t free_disk_bytes;
	int64_t clock_skew_s; /* the system clock minus the trusted time */
};

struct controller_sync_config {
	/* "HOST:PORT", or up to PROTO_DEVICE_SERVERS_MAX of them separated by commas (issue
	 * 16: instances on one PostgreSQL), tried in that order: a server that fails or
	 * drops the session hands over to the next, and the back-off grows only when a whole
	 * round failed (link/addr.h reads the list). */
	const char *server;
	/* The server's identity pinned in the bundle: its certificate's CN must be this,
	 * however `server` addresses it (NULL: the host of the server connected to, when it
	 * is a name). */
	const char *server_name;
	const char *ca_path; /* the deployment's CA certificate (PEM) */
	/* Issue 11: where the device CAs followed since enrolment are kept (NULL: the gate
	 * trusts ca_path alone and ignores announcements). */
	const char *ca_followed_path;
	const char *cert_path; /* this device's certificate (PEM), CN = device id */
	const char *key_path;  /* its private key (PEM) */
	const char *device_id;
	uint16_t sector;
	const char *software_version;
	const char *journal_path; /* the sync thread opens its own connection to the journal */
	unsigned batch_max;       /* events per batch (e.g. 1000) */
	unsigned reconnect_min_ms, reconnect_max_ms; /* backoff bounds (e.g. 500, 60000) */
	unsigned keepalive_s; /* empty batch when idle (docs/sync-server.md: <= 60) */
	/* The list version the gate holds now (0: none, or a snapshot is wanted); called on the
	 * sync thread, also after a kick: a change since the last Hello sends a new Hello. */
	uint64_t (*held_version)(void *ctx);
	/* The list format it holds (docs/list-format.md); NULL: format 2. */
	unsigned (*held_format)(void *ctx);
	/* Install a complete, assembled update (bytes and detached signature); called on the
	 * sync thread. Returns 0, or a negative proto/controller error (the update is then
	 * dropped, logged, and a snapshot requested at the next Hello). */
	int (*install)(void *ctx, enum controller_update_kind kind, const uint8_t *data, size_t len,
	               const uint8_t *sig, size_t sig_len);
	/* The card keys of the gate's sector, at every session and after a rotation; called
	 * on the sync thread; may be NULL. */
	void (*card_keys)(void *ctx, const struct controller_card_keys *keys);
	/* Issue 11: the list key's rotation statements, oldest first (Welcome, and pushed after
	 * a rotation, always before the lists the new key signs); called on the sync thread;
	 * may be NULL (the gate then does not announce FEATURE_KEY_CHAIN). */
	void (*key_chain)(void *ctx, const struct proto_rotation_signed *statements, size_t n);
	/* The gate's trusted clock (controller/timekeeper.h): anchored at every Welcome; its
	 * floor judges the server certificate's validity dates and acknowledgement times.
	 * NULL: the wall clock alone. */
	struct controller_timekeeper *clock;
	/* Issue 13: the gate's health now (Hello, then when it changed and every 5 minutes);
	 * called on the sync thread; may be NULL (no report). */
	void (*health)(void *ctx, struct controller_gate_health *out);
	/* Issue 13: the site has an anti-passback window: grants are shared with the other
	 * gates of the site through the server (controller_sync_share_grant), and theirs are
	 * remembered in the journal at this gate's time. */
	int share_passback;
	/* One line per significant event (connect, update, ack, error); may be NULL. */
	void (*log)(void *ctx, const char *line);
	void *ctx;
};

struct controller_sync_status {
	int connected;
	int64_t last_contact; /* Unix seconds of the last frame from the server, 0 never */
	int64_t clock_skew_s; /* server time - gate time at the last Welcome */
	uint64_t stats_acked, consumption_acked;
	unsigned long reconnects;
	unsigned long health_reports;              /* GateHealth sent (issue 13) */
	unsigned long grants_shared, grants_heard; /* PassbackGrant sent / received */
};

struct controller_sync;

/* Start the sync thread. 0, or a negative error (bad configuration, unreadable key). */
int controller_sync_start(struct controller_sync **out, const struct controller_sync_config *cfg);
/* Thread-safe: new journal rows are waiting (upload soon rather than at the next tick). */
void controller_sync_kick(struct controller_sync *s);
/* Thread-safe: the gate's health changed (a device came or went): report it soon. */
void controller_sync_health_changed(struct controller_sync *s);
/* Thread-safe: this gate admitted the pass whose list key is `key` at a site with
 * anti-passback; it goes to the site's other gates through the server at once when the
 * link is up and the server shares grants (else it is dropped: offline, anti-passback can
 * only be per gate). */
void controller_sync_share_grant(struct controller_sync *s, const uint8_t key[8]);
/* Thread-safe snapshot of the link's state. */
void controller_sync_get_status(struct controller_sync *s, struct controller_sync_status *st);
/* Stop the thread (finishing an upload in flight is not waited for: unacked rows stay in
 * the journal and go at the next start) and free everything. NULL is allowed. */
void controller_sync_stop(struct controller_sync *s);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_SYNC_CLIENT_H */
