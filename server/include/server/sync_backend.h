/*
 * server/sync_backend.h — what the sync server needs from the rights database.
 *
 * The sync server (citypass-server) talks to controllers; the rights database (sqlite by
 * default, server/store.h) holds devices, published lists and usage. This ops struct is the
 * border between the two, so the sync server is tested with an in-memory backend and the
 * database is tested without sockets. Every call returns 0 or a negative SERVER_ERR_* code
 * (server/error.h); blobs returned are malloc'd and owned by the caller.
 */
#ifndef SERVER_SYNC_BACKEND_H
#define SERVER_SYNC_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "citypass.pb-c.h"
#include "server/error.h"
#include "server/keys.h"
#include "server/list_keys.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_DEVICE_ID_MAX  64
#define SERVER_PLACE_NAME_MAX 64 /* a site's or sector's name, with its terminator */
#define SERVER_SIG_MAX        72

/* A gate controller as enrolled with `citypass-admin device add`. */
struct server_device_info {
	char id[SERVER_DEVICE_ID_MAX]; /* also the CN of its certificate */
	uint32_t site;
	uint16_t sector; /* the one service sector it serves */
	int revoked;
	uint32_t gate;   /* the gate number its statistics carry; 0: not checked */
	int64_t created; /* enrolment time (Unix seconds); 0: not checked */
	/* issue 17: how long the sector keeps identifying rows, in hours (server/privacy.h),
	 * told to the gate in every Welcome; 0: none stated */
	uint32_t retention_h;
};

/* A pass's counted right in a sector (quota, or entries counted by the server). */
struct server_counted_right {
	uint32_t product;
	uint8_t period;         /* enum proto_period */
	int64_t current_period; /* the period number a use made now belongs to */
};

struct server_blob {
	uint8_t *data;
	size_t len;
	/* issue 13: the usage position the list version (a snapshot's, a delta's target)
	 * reflects, ListUpdate.consumption_position; 0 unknown */
	uint64_t usage_position;
};

/* Issue 13: a gate's health report, as the sync server hands it to the backend. */
struct server_gate_report {
	char device_id[SERVER_DEVICE_ID_MAX];
	int64_t at; /* the server's time when it arrived */
	const Citypass__GateHealth *health;
};

struct server_sync_backend_ops {
	/* The device whose certificate CN is `id` (SERVER_ERR_NOT_FOUND if none). */
	int (*device_lookup)(void *ctx, const char *id, struct server_device_info *out);
	/* The newest published version of a sector's list, 0 if none. */
	int (*list_latest)(void *ctx, uint16_t sector, uint64_t *version);
	/* A published snapshot and its detached DER signature. */
	int (*list_snapshot)(void *ctx, uint16_t sector, uint64_t version, struct server_blob *list,
	                     uint8_t sig[SERVER_SIG_MAX], size_t *sig_len);
	/* The delta from base_version to base_version + 1 and its signature, or
	 * SERVER_ERR_NOT_FOUND when it is no longer kept. */
	int (*list_delta)(void *ctx, uint16_t sector, uint64_t base_version,
	                  struct server_blob *delta, uint8_t sig[SERVER_SIG_MAX], size_t *sig_len);
	/*
	 * Store one validated event batch of `device_id` durably (one transaction, committed
	 * before returning), ignoring events whose (device, stream, seq) is already stored, and
	 * give the sequence the device may now consider acknowledged for that stream (the
	 * highest stored). Statistics rows carry no identifier; consumption rows feed quotas.
	 */
	int (*ingest)(void *ctx, const char *device_id, const Citypass__EventBatch *batch,
	              uint64_t *acked_seq);
	/* Optional: n batches (of the devices named) in one transaction, committed before
	 * returning, each deduplicated as ingest does; acked[i] for each. SERVER_ERR_BUSY when
	 * the database is locked by another writer (nothing stored: try again), any other
	 * error when one batch was refused (nothing stored: take them one by one). */
	int (*ingest_group)(void *ctx, const char *const *device_ids,
	                    const Citypass__EventBatch *const *batches, size_t n, uint64_t *acked);
	/* The highest acknowledged sequence of a device's stream (0 if none). */
	int (*acked)(void *ctx, const char *device_id, Citypass__Stream stream, uint64_t *seq);
	/*
	 * What a gate may report (server/src/sync_validate.c); either may be NULL, and the
	 * checks that need it are then skipped. product_known: *known = 1 when `product` is a
	 * product of a right in `sector`. counted_right: the counted right (a period other than
	 * none) of the pass whose list key in `sector` is `key`, or SERVER_ERR_NOT_FOUND.
	 */
	int (*product_known)(void *ctx, uint16_t sector, uint32_t product, int *known);
	/* Issue 13, optional (NULL: EventAck.position stays 0): where a device's uses of
	 * `epoch` up to `seq` sit (the highest usage position of their rows). */
	int (*usage_position)(void *ctx, const char *device_id, uint64_t epoch, uint64_t seq,
	                      uint64_t *pos);
	/* Issue 13, optional (NULL: reports are dropped): store n gates' health reports, each
	 * replacing that gate's last, in one transaction. */
	int (*gate_health)(void *ctx, const struct server_gate_report *reports, size_t n);
	int (*counted_right)(void *ctx, uint16_t sector, const uint8_t key[8],
	                     struct server_counted_right *out);
	/*
	 * Issue 11, either may be NULL (no card keys over the link). card_keys: the card master
	 * key of `sector` at the current version and, during a rotation, the previous one
	 * (SERVER_ERR_NOT_FOUND: no such sector). card_keys_stamp: changes whenever an agent
	 * rotates or retires a version (0 before any), so the server knows when to push.
	 */
	int (*card_keys)(void *ctx, uint16_t sector, struct server_card_slot *out);
	int (*card_keys_stamp)(void *ctx, int64_t *stamp);
	/*
	 * Issue 11, may be NULL (the list key never rotates): the statements rotating the
	 * list-signing key, oldest first (server/list_keys.h). Read at every poll: a new one
	 * goes to every connected gate before the lists it signs.
	 */
	int (*list_chain)(void *ctx, struct server_list_chain *out);
	/* Issue 11, may be NULL: the device CA's rotations (server/keys.h), read at start (the
	 * server is restarted after a CA rotation) and sent in every Welcome. */
	int (*ca_chain)(void *ctx, struct server_ca_chain *out);
	/* Issue 15, may be NULL (log lines then give the site and sector by number): the names
	 * of a device's site and sector, for the journal's CITYPASS_SITE and CITYPASS_SECTOR,
	 * asked once per connection. SERVER_ERR_NOT_FOUND when either is unknown. */
	int (*place_names)(void *ctx, uint32_t site, uint16_t sector,
	                   char site_name[SERVER_PLACE_NAME_MAX],
	                   char sector_name[SERVER_PLACE_NAME_MAX]);
	/* Issue 16: announcements of what other processes publish on a shared database
	 * (server/store.h listen, notified); NULL or an error from changes_fd: poll. */
	int (*changes_fd)(void *ctx, int *fd);
	int (*changes_drain)(void *ctx);
	void (*destroy)(void *ctx);
};

struct server_sync_backend {
	const struct server_sync_backend_ops *ops;
	void *ctx;
};

/* The data directory's rights database as a sync backend (server/src/store_sync.c):
 * sqlite, or PostgreSQL when DATA/store.conf names one (issue 16). ingest = 1: the
 * connection of the sync server's ingest thread, which waits for a locked database a short
 * while only (the thread retries, and can be stopped meanwhile). why (may be NULL) gets
 * the refusal's sentence: an unreachable database server, a schema newer than this
 * release. */
int server_sync_backend_open(struct server_sync_backend *out, const char *data_dir, int ingest,
                             struct server_why *why);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_SYNC_BACKEND_H */
