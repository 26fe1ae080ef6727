/*
 * proto/clist.h — the chunked signed list (format 2): a change costs what changed.
 *
 * A sector's list is a small set of files whose SHA-256 hashes are listed, in sha256sum's
 * own format, by a signed manifest (docs/list-format.md):
 *
 *     v<V>.manifest         "<sha256>  <name>" lines; signed: v<V>.manifest.sig (DER ECDSA)
 *     v<V>.head             format, sector, version, issue time, expiry, key id, profiles
 *     c<jjj>-v<W>.dat       the entries whose key starts with the `bits` bits j, sorted
 *     c<jjj>-v<W>.idx       per leaf of 64 entries: its first key and the SHA-256 of its bytes
 *
 * W is the version in which chunk j last changed, so a new version shares every file it
 * did not change with the previous one: a revocation rewrites one chunk (a few hundred KiB
 * at 5 M passes), not the list. An auditor checks a published list with
 *     openssl dgst -sha256 -verify list.pub.pem -signature v<V>.manifest.sig v<V>.manifest
 *     sha256sum -c v<V>.manifest
 * and a gate checks the same chain: the manifest's signature at open, every .idx against
 * the manifest at open, and the leaf it reads against its .idx at every lookup, so every
 * byte it decides from is covered by a signature it checked, however long after install.
 *
 * Deltas carry, per changed chunk, sorted add/change/remove operations and the new head; the
 * gate rebuilds the changed chunks, derives the new manifest and checks the server's
 * signature over it: it then holds exactly what was published. A snapshot travels as one
 * stream: the manifest first (its signature is checked before any file is written), then the
 * files in manifest order, each checked against its hash.
 *
 * Format 1 (proto/list.h: one file, one signature) is still read, so that a gate holding it
 * keeps deciding until the server sends it a format 2 snapshot.
 */
#ifndef PROTO_CLIST_H
#define PROTO_CLIST_H

#include <stddef.h>
#include <stdint.h>

#include "proto/list.h"
#include "proto/sign.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_CLIST_FORMAT       2
#define PROTO_CLIST_ENTRY_SIZE   15 /* key 8, status|profile 2, household 3, used 1, period 1 */
#define PROTO_CLIST_LEAF_ENTRIES 64
#define PROTO_CLIST_LEAF_SIZE    (PROTO_CLIST_LEAF_ENTRIES * PROTO_CLIST_ENTRY_SIZE)
#define PROTO_CLIST_HEAD_FIXED   96
#define PROTO_CLIST_IDX_FIXED    16
#define PROTO_CLIST_IDX_LEAF     40 /* first key 8 + SHA-256 32 */
#define PROTO_CLIST_OP_SIZE      (1 + PROTO_CLIST_ENTRY_SIZE)
#define PROTO_CLIST_MAX_BITS     12 /* at most 4096 chunks */
/* The profile index shares two bytes with the status (2 high bits). */
#define PROTO_CLIST_MAX_PROFILES 16383u
/* The server's partition rule aims at chunks of at most this many entries. */
#define PROTO_CLIST_CHUNK_TARGET 32768u
#define PROTO_CLIST_NAME_MAX     48
/* Delta operations (one byte before each entry). */
#define PROTO_CLIST_OP_ADD    1
#define PROTO_CLIST_OP_CHANGE 2
#define PROTO_CLIST_OP_REMOVE 3

/* --- entries ------------------------------------------------------------------------- */

void proto_clist_entry_encode(uint8_t out[PROTO_CLIST_ENTRY_SIZE],
                              const struct proto_list_entry *e);
void proto_clist_entry_decode(const uint8_t in[PROTO_CLIST_ENTRY_SIZE], struct proto_list_entry *e);
/* The chunk a key belongs to: its first `bits` bits. */
uint32_t proto_clist_chunk_of(const uint8_t key[PROTO_LIST_KEY_LEN], unsigned bits);
/* Partition width for n entries: the smallest b with n / 2^b <= PROTO_CLIST_CHUNK_TARGET. */
unsigned proto_clist_bits_for(uint64_t n);

/* --- the head file ------------------------------------------------------------------- */

struct proto_clist_head {
	uint16_t format;
	uint16_t sector;
	uint64_t version;
	int64_t issued_at;
	int64_t expires_at;
	uint8_t key_id[PROTO_KEY_ID_LEN];
	uint32_t entry_count;
	uint16_t profile_count;
	uint8_t bits;
	uint8_t prev_manifest[PROTO_HASH_LEN]; /* SHA-256 of the previous version's manifest */
	struct proto_rights_profile *profiles; /* profile_count, malloc'd by parse */
};

/* Parse and range-check (PROTO_ERR_LIST_MAGIC, _FORMAT, _TRUNCATED, _OVERSIZED, _FIELD). */
int proto_clist_head_parse(const uint8_t *buf, size_t len, struct proto_clist_head *h);
int proto_clist_head_encode(const struct proto_clist_head *h, uint8_t **out, size_t *len);
void proto_clist_head_free(struct proto_clist_head *h);

/* --- the manifest -------------------------------------------------------------------- */

struct proto_clist_ref {
	uint64_t since; /* the version that wrote this chunk's files (in their names) */
	uint8_t idx_hash[PROTO_HASH_LEN];
	uint8_t dat_hash[PROTO_HASH_LEN];
};

struct proto_clist_manifest {
	uint64_t version;
	uint8_t bits;
	uint8_t head_hash[PROTO_HASH_LEN];
	uint32_t n_chunks; /* 1 << bits */
	struct proto_clist_ref *chunks;
};

/* Names of the files (NUL-terminated, < PROTO_CLIST_NAME_MAX). */
void proto_clist_name_manifest(char out[PROTO_CLIST_NAME_MAX], uint64_t version);
void proto_clist_name_sig(char out[PROTO_CLIST_NAME_MAX], uint64_t version);
void proto_clist_name_head(char out[PROTO_CLIST_NAME_MAX], uint64_t version);
void proto_clist_name_chunk(char out[PROTO_CLIST_NAME_MAX], uint32_t chunk, uint64_t since,
                            int idx);

/* Parse a manifest's text; anything but its one canonical form is PROTO_ERR_LIST_MANIFEST. */
int proto_clist_manifest_parse(const uint8_t *text, size_t len, struct proto_clist_manifest *m);
/* The canonical text (malloc'd). */
int proto_clist_manifest_encode(const struct proto_clist_manifest *m, uint8_t **out, size_t *len);
int proto_clist_manifest_copy(struct proto_clist_manifest *dst,
                              const struct proto_clist_manifest *src);
void proto_clist_manifest_free(struct proto_clist_manifest *m);

/*
 * Decide whether a gate may take this (manifest, signature, head): structure, then sector
 * (PROTO_ERR_LIST_SECTOR), key id (_UNKNOWN_KEY), signature (_SIGNATURE), the head's hash
 * against the manifest (PROTO_ERR_LIST_HASH), head and manifest agreeing (_MANIFEST),
 * expiry (_EXPIRED), version above policy->held_version (_ROLLBACK). m and h are filled on
 * success and on _EXPIRED / _ROLLBACK (so a caller may still use a list that only expired):
 * free them in every case (they are zeroed when nothing was kept).
 */
int proto_clist_verify(const uint8_t *manifest, size_t manifest_len, const uint8_t *sig,
                       size_t sig_len, const uint8_t *head, size_t head_len,
                       const struct proto_list_policy *policy, struct proto_clist_manifest *m,
                       struct proto_clist_head *h);

/* --- chunks and their index ---------------------------------------------------------- */

struct proto_clist_idx {
	uint32_t chunk;
	uint32_t entry_count;
	uint32_t leaf_count;
	const uint8_t *leaves; /* leaf_count records of PROTO_CLIST_IDX_LEAF bytes */
};

size_t proto_clist_idx_size(uint32_t entry_count);
/* The index of a chunk's entries (malloc'd). */
int proto_clist_idx_build(uint32_t chunk, const uint8_t *dat, uint32_t n, uint8_t **out,
                          size_t *len);
/*
 * The same index, for a chunk that was `prev_dat` (prev_n entries) with index `prev_idx`:
 * the record of a leaf holding the same bytes at the same place in both is copied instead
 * of hashed again (a changed entry re-hashes its leaf only; an added or removed one, the
 * leaves from it on). The result is the index proto_clist_idx_build makes only when
 * prev_idx is prev_dat's true index — a caller passes one it checked against a signed
 * manifest, and the new chunk's own hash is computed from all of its bytes whatever this
 * copies. prev_idx NULL, unparsable, or of another chunk or entry count: every leaf hashed.
 */
int proto_clist_idx_rebuild(uint32_t chunk, const uint8_t *dat, uint32_t n, const uint8_t *prev_dat,
                            uint32_t prev_n, const uint8_t *prev_idx, size_t prev_idx_len,
                            uint8_t **out, size_t *len);
int proto_clist_idx_parse(const uint8_t *buf, size_t len, struct proto_clist_idx *idx);
/* The leaf that holds `key` if any does (first key <= key), or -1 when the key is below
 * every leaf. Leaves' first keys must be increasing (checked by idx_parse). */
int64_t proto_clist_idx_find(const struct proto_clist_idx *idx,
                             const uint8_t key[PROTO_LIST_KEY_LEN]);
/* Bytes of leaf i within the chunk file: *off and *len. */
void proto_clist_leaf_span(const struct proto_clist_idx *idx, uint32_t leaf, uint64_t *off,
                           size_t *len);
/* Check a leaf's bytes against the index (PROTO_ERR_LIST_HASH), then search it:
 * 0 and *entry, or PROTO_ERR_LIST_NOT_FOUND. */
int proto_clist_leaf_lookup(const struct proto_clist_idx *idx, uint32_t leaf, const uint8_t *bytes,
                            size_t len, const uint8_t key[PROTO_LIST_KEY_LEN],
                            struct proto_list_entry *e);

/* O(n) check of a chunk's entries: strictly increasing keys (PROTO_ERR_LIST_ORDER), all in
 * chunk `chunk` of a `bits` partition (_ORDER), profile indices below profile_count
 * (_PROFILE). */
int proto_clist_chunk_check(const uint8_t *dat, uint32_t n, unsigned bits, uint32_t chunk,
                            uint16_t profile_count);

/*
 * Apply sorted operations (m records of PROTO_CLIST_OP_SIZE) to a chunk: *out (malloc'd,
 * at least 1 byte) gets the new entries and *out_n their count. PROTO_ERR_LIST_ORDER for
 * unsorted ops, PROTO_ERR_DELTA_OP for an op that does not fit (add of a present key,
 * change or removal of an absent one, unknown op code, a removal carrying more than a key).
 */
int proto_clist_chunk_apply(const uint8_t *dat, uint32_t n, const uint8_t *ops, uint32_t m,
                            uint8_t **out, uint32_t *out_n);

/* --- deltas -------------------------------------------------------------------------- */

struct proto_clist_delta {
	uint16_t sector;
	uint64_t base_version;
	uint64_t version;
	uint8_t base_manifest[PROTO_HASH_LEN]; /* SHA-256 of the base version's manifest */
	const uint8_t *head;
	size_t head_len;
	uint32_t chunk_count; /* chunks changed */
	const uint8_t *body;  /* their records, checked by parse */
	size_t body_len;
};

struct proto_clist_delta_chunk {
	uint32_t chunk;
	uint32_t op_count;
	const uint8_t *ops;
};

/* Check a delta's framing (sizes, chunk numbers strictly increasing, >= 1 op each). */
int proto_clist_delta_parse(const uint8_t *buf, size_t len, struct proto_clist_delta *d);
/* The next changed chunk from *cursor (start at 0): 1 filled, 0 at the end. */
int proto_clist_delta_next(const struct proto_clist_delta *d, size_t *cursor,
                           struct proto_clist_delta_chunk *c);
/* Encode (malloc'd): chunks[] in increasing order, ops already encoded. */
int proto_clist_delta_encode(const struct proto_clist_delta *d,
                             const struct proto_clist_delta_chunk *chunks, uint32_t n,
                             uint8_t **out, size_t *len);

/* --- snapshot streams ---------------------------------------------------------------- */

struct proto_clist_stream {
	uint16_t sector;
	uint64_t version;
	const uint8_t *manifest;
	size_t manifest_len;
	uint32_t file_count;
	const uint8_t *files; /* file_count records: 4-byte length, bytes */
	size_t files_len;
};

int proto_clist_stream_parse(const uint8_t *buf, size_t len, struct proto_clist_stream *s);
/* The next file from *cursor (start at 0): 1 filled, 0 at the end. */
int proto_clist_stream_next(const struct proto_clist_stream *s, size_t *cursor,
                            const uint8_t **data, size_t *len);
/* Encode (malloc'd) a stream of the manifest and files[] (in manifest order). */
int proto_clist_stream_encode(uint16_t sector, uint64_t version, const uint8_t *manifest,
                              size_t manifest_len, const uint8_t *const *files, const size_t *lens,
                              uint32_t n, uint8_t **out, size_t *len);

/* Is this buffer a format 2 snapshot stream (1), a format 2 delta (2), or neither (0)? */
int proto_clist_kind(const uint8_t *buf, size_t len);

/* --- checking and applying (gates, tools, tests) ------------------------------------ */

/*
 * Everything about chunk j that a gate checks before keeping it: the .idx and .dat bytes
 * against the manifest's hashes (PROTO_ERR_LIST_HASH), the index's framing and chunk number,
 * its entry count against the .dat size (PROTO_ERR_LIST_COUNT), the entries
 * (proto_clist_chunk_check), and every leaf hash of the index against the entries
 * (PROTO_ERR_LIST_HASH). O(chunk).
 */
int proto_clist_chunk_verify(const struct proto_clist_manifest *m, const struct proto_clist_head *h,
                             uint32_t chunk, const uint8_t *idx, size_t idx_len, const uint8_t *dat,
                             size_t dat_len);

/*
 * A snapshot stream with its detached signature: framing, then proto_clist_verify() of its
 * manifest and head (file 0) under the policy, and the file count. On success (or
 * _EXPIRED / _ROLLBACK, as proto_clist_verify) s, m and h are filled; then take the chunks
 * in order with proto_clist_stream_chunk().
 */
int proto_clist_stream_open(const uint8_t *buf, size_t len, const uint8_t *sig, size_t sig_len,
                            const struct proto_list_policy *policy, struct proto_clist_stream *s,
                            struct proto_clist_manifest *m, struct proto_clist_head *h);
/* The next chunk of an opened stream, checked with proto_clist_chunk_verify(). *cursor
 * starts at 0 and chunks come in order; *dat is n entries. */
int proto_clist_stream_chunk(const struct proto_clist_stream *s,
                             const struct proto_clist_manifest *m, const struct proto_clist_head *h,
                             size_t *cursor, uint32_t chunk, const uint8_t **idx, size_t *idx_len,
                             const uint8_t **dat, uint32_t *n);

/* What applying a delta produced: the new head and manifest (their bytes too), and the
 * changed chunks, each with its new entries and index. */
struct proto_clist_applied {
	struct proto_clist_head head;
	uint8_t *head_bytes;
	size_t head_len;
	struct proto_clist_manifest manifest;
	uint8_t *manifest_bytes;
	size_t manifest_len;
	uint32_t n_changed;
	uint32_t *changed;                     /* chunk numbers, increasing */
	struct proto_clist_chunk_data *chunks; /* n_changed */
};

/* Reads the base version's chunk j: *dat (malloc'd) and its entry count; and, when the
 * reader holds it, that chunk's index as checked against the base's signed manifest (*idx,
 * not copied, valid until the derivation returns; left NULL otherwise): its unchanged
 * leaves' hashes are then reused (proto_clist_idx_rebuild) instead of computed again. */
typedef int (*proto_clist_read_chunk_fn)(void *ctx, uint32_t chunk, uint8_t **dat, uint32_t *n,
                                         const uint8_t **idx, size_t *idx_len);

/*
 * The version a base becomes with per-chunk operations `changes` (increasing chunk numbers)
 * and a new head (its bytes; same partition as the base, newer version): the changed chunks
 * rebuilt and checked, their indexes, and the manifest that lists them (since = the new
 * version). No signature is involved: the server signs out->manifest_bytes to publish, and
 * proto_clist_delta_apply() checks the server's signature over them.
 */
int proto_clist_derive(const struct proto_clist_manifest *base, const uint8_t *head,
                       size_t head_len, const struct proto_clist_delta_chunk *changes, uint32_t n,
                       proto_clist_read_chunk_fn read, void *ctx, struct proto_clist_applied *out);

/*
 * Apply a delta to the base version described by its manifest (and that manifest's
 * SHA-256): structure, sector (PROTO_ERR_LIST_SECTOR), key id (_UNKNOWN_KEY), base version
 * and manifest hash (PROTO_ERR_DELTA_BASE), version above policy->held_version (_ROLLBACK),
 * the operations on each changed chunk (_ORDER, _DELTA_OP, _PROFILE), then the server's
 * signature `sig` over the manifest derived from the result (PROTO_ERR_DELTA_RESULT when it
 * does not verify: the result is not what was published), and expiry (_EXPIRED). Reads only
 * the chunks the delta changes. On any failure nothing is returned.
 */
int proto_clist_delta_apply(const struct proto_clist_manifest *base,
                            const uint8_t base_hash[PROTO_HASH_LEN], proto_clist_read_chunk_fn read,
                            void *ctx, const uint8_t *delta, size_t delta_len, const uint8_t *sig,
                            size_t sig_len, const struct proto_list_policy *policy,
                            struct proto_clist_applied *out);
void proto_clist_applied_free(struct proto_clist_applied *a);

/* --- a version in a directory (exports, tools, tests) ------------------------------- */

/* The files of one version as a directory holds them (an export, a gate's store). */
struct proto_clist_dir {
	char path[4096]; /* the directory */
	uint8_t *manifest, *sig, *head;
	size_t manifest_len, sig_len, head_len;
	struct proto_clist_manifest m;
	struct proto_clist_head h;
};

/* Read and parse a version's manifest, signature (sig_path NULL: MANIFEST.sig beside it)
 * and head. Nothing is verified: see proto_clist_dir_verify. PROTO_ERR_IO when a file is
 * missing. */
int proto_clist_dir_open(struct proto_clist_dir *d, const char *manifest_path,
                         const char *sig_path);
/* proto_clist_verify(), then (deep) proto_clist_chunk_verify() of every chunk and the total
 * entry count: everything a gate checks at install. */
int proto_clist_dir_verify(const struct proto_clist_dir *d, const struct proto_list_policy *policy,
                           int deep);
/* A chunk file of the version (malloc'd). */
int proto_clist_dir_file(const struct proto_clist_dir *d, uint32_t chunk, int idx, uint8_t **data,
                         size_t *len);
/* Look a key up the way a gate does (its leaf checked against the index). */
int proto_clist_dir_lookup(const struct proto_clist_dir *d, const uint8_t key[PROTO_LIST_KEY_LEN],
                           struct proto_list_entry *e, struct proto_rights_profile *p);
void proto_clist_dir_close(struct proto_clist_dir *d);

/* --- building a whole version (server, tools, tests) --------------------------------- */

struct proto_clist_params {
	uint16_t sector;
	uint64_t version;
	int64_t issued_at;
	int64_t expires_at;
	uint8_t prev_manifest[PROTO_HASH_LEN];
	unsigned bits; /* partition; proto_clist_bits_for(n) unless the caller keeps its own */
};

struct proto_clist_chunk_data {
	uint8_t *dat;
	uint32_t n;
	uint8_t *idx;
	size_t idx_len;
};

struct proto_clist_built {
	struct proto_clist_head head; /* profiles borrowed from the caller: do not free */
	uint8_t *head_bytes;
	size_t head_len;
	struct proto_clist_manifest manifest;
	uint8_t *manifest_bytes;
	size_t manifest_len;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	struct proto_clist_chunk_data *chunks; /* manifest.n_chunks */
};

/*
 * Build and sign a whole version from entries (sorted in place; duplicate keys are
 * PROTO_ERR_LIST_ORDER). Every chunk is written by this version (since = version).
 */
int proto_clist_build(const struct proto_clist_params *params, const struct proto_key *signer,
                      const struct proto_rights_profile *profiles, size_t profile_count,
                      struct proto_list_entry *entries, size_t entry_count,
                      struct proto_clist_built *out);
/* The head, manifest and signature of `b` again, from its chunks and b->head (e.g. after
 * chunks were replaced): hashes what changed is the caller's job, via the manifest refs. */
int proto_clist_seal(struct proto_clist_built *b, const struct proto_key *signer);
void proto_clist_built_free(struct proto_clist_built *b);
/* One stream of a built version (for tests and tools). */
int proto_clist_built_stream(const struct proto_clist_built *b, uint8_t **out, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_CLIST_H */
