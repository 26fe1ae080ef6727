/*
 * controller/list_store.h — the gate's copy of its sector's signed list, on disk.
 *
 * A directory holding version-named pairs `v<version>.cpl` + `v<version>.sig` (the list
 * and its detached DER signature, exactly as published: `openssl dgst -sha256 -verify`
 * checks them in place) and a pointer file `CURRENT` naming the version in use and its
 * SHA-256. Installing writes the new pair (temp file, fsync, rename), fsyncs the
 * directory, then replaces `CURRENT` the same way: that rename is the commit point, so a
 * crash at any instant leaves either the old or the new version in use, both verified.
 * The previous pair is kept as a fallback; older ones are removed after the commit.
 *
 * At open the store verifies what `CURRENT` names (hash, signature, sector, entries); if
 * that is damaged or missing it falls back to the newest other pair that verifies.
 *
 * The list returned by controller_list_store_list() stays valid until the next successful
 * install or close.
 */
#ifndef CONTROLLER_LIST_STORE_H
#define CONTROLLER_LIST_STORE_H

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

/*
 * Open (creating the directory if needed) the store of `sector`, trusting `keys` (not
 * copied: must outlive the store). An empty store is not an error: it holds no list
 * (controller_list_store_list() is NULL) until a snapshot is installed. A list found past
 * its expiry is still loaded: what to do then is the site's stale policy.
 */
int controller_list_store_open(struct controller_list_store **out, const char *dir, uint16_t sector,
                               const struct proto_keyring *keys, int64_t now);
void controller_list_store_close(struct controller_list_store *store);

/* The list in use, or NULL. */
struct proto_list *controller_list_store_list(const struct controller_list_store *store);
/* Its version, 0 when none. */
uint64_t controller_list_store_version(const struct controller_list_store *store);
/* True when open had to fall back from what CURRENT named (damaged or missing). */
bool controller_list_store_fell_back(const struct controller_list_store *store);

/*
 * Verify a snapshot (sector, key id, signature, expiry at `now`, version newer than the
 * one held, entries ordered) and make it current atomically. On any refusal — the proto
 * code says why: PROTO_ERR_LIST_ROLLBACK, _SECTOR, _SIGNATURE, _EXPIRED... — the store is
 * unchanged.
 */
int controller_list_store_install_snapshot(struct controller_list_store *store, const uint8_t *list,
                                           size_t list_len, const uint8_t *sig, size_t sig_len,
                                           int64_t now);

/*
 * Verify a delta against the list held (PROTO_ERR_DELTA_BASE when its base is not the
 * held version, CONTROLLER_ERR_NO_LIST when none is held), apply it, and make the
 * result current atomically, exactly as install_snapshot.
 */
int controller_list_store_apply_delta(struct controller_list_store *store, const uint8_t *delta,
                                      size_t delta_len, const uint8_t *sig, size_t sig_len,
                                      int64_t now);

/*
 * Look a pass up in the list in use, as the engine wants it: 0 with pass->found set or
 * cleared, CONTROLLER_ERR_NO_LIST when none is held, or PROTO_ERR_LIST_PROFILE for an
 * entry naming a missing profile (check_entries at install makes that impossible).
 */
int controller_list_store_lookup(const struct controller_list_store *store,
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

/* The state of a list (NULL: none held, EXPIRED) at `now` under the site's policy. */
enum controller_list_state controller_list_state_at(const struct proto_list *list,
                                                    const struct controller_stale_policy *policy,
                                                    int64_t now);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_LIST_STORE_H */
