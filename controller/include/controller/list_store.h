/*
 * controller/list_store.h — the gate's copy of its sector's signed list, on disk.
 *
 * A directory holding one published version in format 2 (proto/clist.h): its signed
 * manifest, head and chunk files, exactly as the server published them, so that
 *     openssl dgst -sha256 -verify list.pub.pem -signature v<V>.manifest.sig v<V>.manifest
 *     sha256sum -c v<V>.manifest
 * check the store in place; and a pointer file CURRENT naming the version in use and the
 * SHA-256 of its manifest. Installing writes the files the new version does not share with
 * the current one (temp file, fsync, rename), fsyncs the directory, then replaces CURRENT
 * the same way: that rename is the commit point, so a crash at any instant leaves the old
 * or the new version. A delta rewrites only the chunks it changes (docs/list-format.md).
 *
 * Nothing on disk is trusted after it was checked once: open verifies the manifest's
 * signature and every chunk index against it (not the entries: O(chunks), not O(passes)),
 * and every lookup reads its leaf of 64 entries with pread(2) and checks it against the
 * index held in memory before deciding from it. A file altered, truncated or removed after
 * install is found at the lookup that reads it: that lookup fails closed
 * (CONTROLLER_ERR_LIST_DAMAGED), the rest of the list keeps working, and the store asks the
 * server for a snapshot (controller_list_store_hello). Nothing is mapped, so a truncated
 * file cannot raise SIGBUS.
 *
 * Rollback: DIR.floor (beside the directory, not in it) records the highest version ever
 * installed; a store naming a lower one (an older version's files put back) is refused at
 * open, and nothing older than the floor is ever installed.
 *
 * Format 1 (one file v<V>.cpl and its signature, what gates held before) is still opened
 * and installed, read into memory once verified: a gate holding it keeps deciding until the
 * server sends it a format 2 snapshot, and says which format it holds in its Hello.
 *
 * Threads: installs run on one thread (the sync client's), lookups on another (the
 * reader's). Give the store the reader's rwlock (controller_list_store_set_lock): an install
 * prepares and commits the new version without it, then takes it for writing only for the
 * instant it swaps the version in memory. The reader holds it for reading around
 * controller_list_store_info() and _lookup(). Taps go on with the old version meanwhile.
 */
#ifndef CONTROLLER_LIST_STORE_H
#define CONTROLLER_LIST_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/engine.h"
#include "proto/list.h"
#include "proto/sign.h"

#ifdef __cplusplus
extern "C" {
#endif

struct controller_list_store;

/* What the reader needs to know about the list in use. */
struct controller_list_info {
	bool held;       /* a list is in use */
	unsigned format; /* 1 (legacy, one file) or 2 (chunked) */
	uint64_t version;
	int64_t issued_at;
	int64_t expires_at;
	uint32_t entries;
	uint8_t key_id[PROTO_KEY_ID_LEN]; /* of the key that signed the list in use */
	bool damaged; /* a file was found damaged since open: a snapshot is wanted */
};

/* What the last successful install wrote (for tests and benchmarks). */
struct controller_list_store_stats {
	uint64_t bytes_written; /* file bytes written, pointer and floor included */
	unsigned files_written;
	unsigned chunks_reused; /* chunk files shared with the previous version */
};

/*
 * Open (creating the directory if needed) the store of `sector`, trusting `keys` (not
 * copied: must outlive the store). An empty store is not an error: it holds no list until
 * a snapshot is installed. A list found past its expiry is still loaded: what to do then
 * is the site's stale policy. A store whose content cannot be used (damaged, unknown key,
 * older than the floor) opens empty: controller_list_store_open_error() says why.
 */
int controller_list_store_open(struct controller_list_store **out, const char *dir, uint16_t sector,
                               const struct proto_keyring *keys, int64_t now);
void controller_list_store_close(struct controller_list_store *store);

/* Trust `keys` from now on (not copied) for what is installed next: after the list key
 * rotated (controller/list_keys.h). On the thread that installs. */
void controller_list_store_set_keys(struct controller_list_store *store,
                                    const struct proto_keyring *keys);

/* The reader's lock (see above); NULL (the default) for a single-threaded user. */
void controller_list_store_set_lock(struct controller_list_store *store, pthread_rwlock_t *lock);

/* Under the reader's lock (read). */
void controller_list_store_info(const struct controller_list_store *store,
                                struct controller_list_info *info);
/* The version in use, 0 when none. */
uint64_t controller_list_store_version(const struct controller_list_store *store);
/* What a Hello should claim: the version and format held, or version 0 (a snapshot,
 * please) when none is held or a file was found damaged. */
void controller_list_store_hello(const struct controller_list_store *store, uint64_t *version,
                                 unsigned *format);
/* Why open could not use what the directory held (0 when it could, or it was empty). */
int controller_list_store_open_error(const struct controller_list_store *store);
/* True when open found a list on disk and could not use it. */
bool controller_list_store_fell_back(const struct controller_list_store *store);
void controller_list_store_stats(const struct controller_list_store *store,
                                 struct controller_list_store_stats *stats);

/*
 * Verify a snapshot (format 2 stream or format 1 file: sector, key id, signature, expiry at
 * `now`, version newer than the one held and not below the floor, every chunk checked) and
 * make it current atomically. On any refusal — the proto code says why:
 * PROTO_ERR_LIST_ROLLBACK, _SECTOR, _SIGNATURE, _HASH, _EXPIRED... — the store is unchanged.
 * A snapshot of the version held is taken when it changes the format, or repairs a damaged
 * store.
 */
int controller_list_store_install_snapshot(struct controller_list_store *store, const uint8_t *list,
                                           size_t list_len, const uint8_t *sig, size_t sig_len,
                                           int64_t now);

/*
 * Verify a delta against the list held (PROTO_ERR_DELTA_BASE when its base is not the
 * held version, CONTROLLER_ERR_NO_LIST when none is held), apply it, check the result
 * against the server's signature, and make it current atomically, as install_snapshot.
 */
int controller_list_store_apply_delta(struct controller_list_store *store, const uint8_t *delta,
                                      size_t delta_len, const uint8_t *sig, size_t sig_len,
                                      int64_t now);

/*
 * Look a pass up in the list in use, as the engine wants it (under the reader's lock): 0
 * with pass->found set or cleared, CONTROLLER_ERR_NO_LIST when none is held, or
 * CONTROLLER_ERR_LIST_DAMAGED when the leaf that would hold the pass no longer matches
 * what was signed (the tap must be refused; the store then wants a snapshot).
 */
int controller_list_store_lookup(struct controller_list_store *store,
                                 const uint8_t key[PROTO_LIST_KEY_LEN],
                                 struct controller_pass *pass);

/* What a site does once its list has expired (DESIGN.md s.3: bounded behaviour). */
enum controller_stale_mode {
	CONTROLLER_STALE_REFUSE_ALL = 0,   /* refuse every tap from the expiry on */
	CONTROLLER_STALE_ACCEPT_KNOWN = 1, /* decide known passes as usual for grace_hours */
};

struct controller_stale_policy {
	enum controller_stale_mode mode;
	uint32_t grace_hours; /* with ACCEPT_KNOWN: how long after the expiry */
};

/* The state of the list in use (none held: EXPIRED) at `now` under the site's policy. */
enum controller_list_state controller_list_state_at(const struct controller_list_info *info,
                                                    const struct controller_stale_policy *policy,
                                                    int64_t now);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_LIST_STORE_H */
