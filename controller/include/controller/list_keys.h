/*
 * controller/list_keys.h — the list-signing keys a gate trusts, and how it follows a
 * rotation without a visit (proto/rotation.h, docs/controller.md "The list key").
 *
 * The root is the list key of the gate's enrolment bundle (list-public-key). Statements
 * the server sends (Welcome, Frame.key_chain) extend the chain one key at a time, each
 * announced by the newest key held; what was followed is kept in STATE_DIR/list-keys.chain
 * (each statement as received, checked again at every start, so the file needs no
 * protection of its own: nothing in it is believed without its signatures).
 *
 * Which keys a list may be signed by: at start, any key of the chain (the list held may
 * predate a rotation the gate followed); from then on, the newest key, and the key of the
 * list in use while that is an older key of the chain — a gate keeps taking updates from
 * the key it holds until the server's first list under the new key is installed, then
 * refuses the old key for good.
 *
 * Threads: one — the sync client's (and the start, before it runs).
 */
#ifndef CONTROLLER_LIST_KEYS_H
#define CONTROLLER_LIST_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/rotation.h"
#include "proto/sign.h"

#ifdef __cplusplus
extern "C" {
#endif

struct controller_list_keys;

/* Load the root from `root_path` (PEM) and follow STATE_DIR/list-keys.chain. A chain file
 * that does not follow from the root is refused (err says why): it is kept aside as
 * list-keys.chain.refused and the gate starts from the root alone. Returns 0, or a
 * negative proto error when the root cannot be loaded. */
int controller_list_keys_open(struct controller_list_keys **out, const char *root_path,
                              const char *state_dir, char *err, size_t errlen);
void controller_list_keys_close(struct controller_list_keys *k);

/* Every key of the chain: for opening the store at start. Valid until the next follow. */
const struct proto_keyring *controller_list_keys_all(struct controller_list_keys *k);

/* The keys an update may be signed by while the list in use is signed by `held` (NULL:
 * none held): the newest, and `held` when it is an older key of the chain. The ring stays
 * valid until the second call after this one that changes it (give it to the store at
 * once). */
const struct proto_keyring *controller_list_keys_for(struct controller_list_keys *k,
                                                     const uint8_t *held);

/* Follow the server's statements (oldest first) and keep what was added on disk before
 * returning. 0 (added says how many), or the proto error of the first refused
 * (PROTO_ERR_ROTATION_UNANNOUNCED, _SIGNATURE, _NUMBER, _FORMAT): what came before it
 * is kept; CONTROLLER_ERR_IO when the file could not be written (the keys added are
 * trusted until the gate restarts; the server sends the chain again at every session). */
int controller_list_keys_follow(struct controller_list_keys *k,
                                const struct proto_rotation_signed *s, size_t n, size_t *added);

/* The newest key's id. */
void controller_list_keys_newest(const struct controller_list_keys *k,
                                 uint8_t id[PROTO_KEY_ID_LEN]);
/* Keys in the chain (1: never rotated). */
size_t controller_list_keys_count(const struct controller_list_keys *k);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_LIST_KEYS_H */
