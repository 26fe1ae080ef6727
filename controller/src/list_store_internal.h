/*
 * list_store_internal.h — the list store's private structures, shared by
 *   list_store.c         open, lookup, format 2 installs, the swap
 *   list_store_files.c   files: staged writes, CURRENT, the floor, sweeping
 *   list_store_legacy.c  format 1 (one file and its signature), read into memory
 */
#ifndef CONTROLLER_LIST_STORE_INTERNAL_H
#define CONTROLLER_LIST_STORE_INTERNAL_H

#include <stdatomic.h>

#include "controller/list_store.h"
#include "proto/clist.h"

/* One chunk's files, shared by every version that lists them (refs: the sync thread only,
 * which installs and frees versions; the reader never changes them). */
struct ls_chunk {
	int refs;
	uint32_t number;
	uint64_t since;
	int fd; /* the .dat, read with pread; -1 when damaged at open */
	uint8_t *idx_buf;
	size_t idx_len;
	struct proto_clist_idx idx; /* leaves point into idx_buf, checked against the manifest */
	atomic_int damaged;
};

/* One version in memory: what the reader decides from until the next swap. */
struct ls_version {
	unsigned format;
	uint64_t version;
	int64_t issued_at, expires_at;
	uint8_t key_id[PROTO_KEY_ID_LEN]; /* of the key that signed it */
	uint32_t entries;
	uint8_t file_hash[PROTO_HASH_LEN]; /* of the manifest (2) or of the list file (1) */
	/* format 2 */
	struct proto_clist_head head;
	struct proto_clist_manifest manifest;
	struct ls_chunk **chunks;
	/* format 1: the file, verified, in memory */
	uint8_t *legacy_buf;
	size_t legacy_len;
	struct proto_list *legacy;
};

struct controller_list_store {
	char *dir;
	char *floor_path;
	uint16_t sector;
	const struct proto_keyring *keys;
	pthread_rwlock_t *lock;
	struct ls_version *cur;
	uint64_t floor;
	int open_error;
	bool fell_back;
	atomic_int damaged;
	struct controller_list_store_stats stats;
	struct ls_stage *stage; /* files written, not yet durable (list_store_files.c) */
};

#define LS_POINTER "CURRENT"
#define LS_MAX_SIG (PROTO_SIG_MAX + 1)
#define LS_MAX_HEAD                                                                                \
	(PROTO_CLIST_HEAD_FIXED + (size_t)PROTO_CLIST_MAX_PROFILES * PROTO_LIST_PROFILE_SIZE)
#define LS_MAX_MANIFEST ((size_t)(1 + (2u << PROTO_CLIST_MAX_BITS)) * (67 + PROTO_CLIST_NAME_MAX))

/* --- files (list_store_files.c) -------------------------------------------------------- */

int ls_path(const struct controller_list_store *s, char *out, size_t cap, const char *name);
/* Write name's data to a temp file, to be made durable and renamed into place with the
 * other staged files by ls_stage_flush or ls_publish (counted in stats). read_fd (may be
 * NULL) receives a descriptor of the file for reading, valid after the rename. */
int ls_stage_write(struct controller_list_store *s, const char *name, const uint8_t *data,
                   size_t len, int *read_fd);
/* fsync every staged file, then rename each into place. */
int ls_stage_flush(struct controller_list_store *s);
/* Close and remove what is staged (a failed install). */
void ls_stage_abort(struct controller_list_store *s);
int ls_fsync_dir(const struct controller_list_store *s);
/* The whole file (malloc'd); CONTROLLER_ERR_IO when missing or larger than max. */
int ls_read_file(const struct controller_list_store *s, const char *name, size_t max, uint8_t **buf,
                 size_t *len);
int ls_pointer_read(const struct controller_list_store *s, unsigned *format, uint64_t *version,
                    uint8_t hash[PROTO_HASH_LEN]);
/* Commit a version whose files are staged: they, CURRENT's replacement and the floor's are
 * made durable together; the files renamed, their names made durable; then CURRENT replaced
 * (the commit point) and made durable; then the floor, when the version raises it. */
int ls_publish(struct controller_list_store *s, unsigned format, uint64_t version,
               const uint8_t hash[PROTO_HASH_LEN]);
int ls_floor_read(struct controller_list_store *s);
int ls_floor_write(struct controller_list_store *s, uint64_t version);
/* Remove every file of the directory that `keep` (may be NULL) does not use, temp files
 * left by a crash included. */
void ls_sweep(struct controller_list_store *s, const struct ls_version *keep);
/* After a commit from `old` to `keep`: remove by name the files of `old` that `keep` does not
 * use (a one-pass delta: one chunk's two files and the old head, manifest and signature),
 * without reading the directory; anything else (a format or partition change) is a whole
 * ls_sweep, and so is a commit with no version before it. Debris of a crash is the
 * open's sweep's. */
void ls_sweep_replaced(struct controller_list_store *s, const struct ls_version *old,
                       const struct ls_version *keep);

/* --- versions (list_store.c) ----------------------------------------------------------- */

void ls_version_free(struct ls_version *v);
/* Make v current: CURRENT, then the floor, then the swap in memory, then the sweep. v is
 * taken (freed on failure). */
int ls_commit(struct controller_list_store *s, struct ls_version *v);
/* The version an install must beat (see install_snapshot in list_store.h). */
uint64_t ls_held_for_install(const struct controller_list_store *s, unsigned format);

/* --- format 1 (list_store_legacy.c) ---------------------------------------------------- */

int ls_legacy_open(struct controller_list_store *s, uint64_t version,
                   const uint8_t hash[PROTO_HASH_LEN], int64_t now, struct ls_version **out);
int ls_legacy_install(struct controller_list_store *s, const uint8_t *list, size_t len,
                      const uint8_t *sig, size_t sig_len, int64_t now);
int ls_legacy_delta(struct controller_list_store *s, const uint8_t *delta, size_t len,
                    const uint8_t *sig, size_t sig_len, int64_t now);
int ls_legacy_lookup(const struct ls_version *v, const uint8_t key[PROTO_LIST_KEY_LEN],
                     struct controller_pass *pass);

#endif
