/*
 * list_fixture.h — building signed lists in tests: a signing key with its trusted
 * public half, and synthetic passes whose keys look like real ones (SHA-256 prefixes).
 */
#ifndef CITYPASS_LIST_FIXTURE_H
#define CITYPASS_LIST_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/clist.h"
#include "proto/list.h"
#include "proto/sign.h"

struct list_fixture {
	struct proto_key *signer;
	struct proto_keyring *ring; /* holds the signer's public half only */
};

/* A fresh signer and a keyring trusting it; aborts the test on failure. */
void fixture_init(struct list_fixture *f);
void fixture_free(struct list_fixture *f);

/* The profiles every fixture list carries (a subscription, 10 entries, a household quota). */
extern const struct proto_rights_profile fixture_profiles[3];
#define FIXTURE_PROFILE_COUNT 3

/* Passes "pass-<tag>-<i>" of sector 7 with varied profiles, households and counters. */
void fixture_entries(struct proto_list_entry *e, size_t n, unsigned tag);

struct built_list {
	uint8_t *buf;
	size_t len;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
};

/* Build and sign a list of sector 7 valid from t=1e9 to t=1e9+86400; entries are sorted in
 * place. prev may be NULL (no previous version). */
void fixture_build(const struct list_fixture *f, uint64_t version, const uint8_t *prev_hash,
                   struct proto_list_entry *e, size_t n, struct built_list *out);

/* The same, for a list of another sector (what a gate of that sector would hold). */
void fixture_build_sector(const struct list_fixture *f, uint16_t sector, uint64_t version,
                          const uint8_t *prev_hash, struct proto_list_entry *e, size_t n,
                          struct built_list *out);

/* Re-sign a buffer the test altered, so that only the check under test can refuse it. */
void fixture_resign(const struct list_fixture *f, const uint8_t *buf, size_t len,
                    uint8_t sig[PROTO_SIG_MAX], size_t *sig_len);

/* --- format 2 (proto/clist.h) --------------------------------------------------------- */

/* A whole format 2 version in memory: its files, its signature, its snapshot stream. */
struct v2list {
	uint16_t sector;
	uint64_t version;
	uint8_t *head;
	size_t head_len;
	uint8_t *manifest;
	size_t manifest_len;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	struct proto_clist_manifest m;
	struct proto_clist_chunk_data *chunks; /* m.n_chunks */
	uint8_t *stream;                       /* the snapshot as the sync link carries it */
	size_t stream_len;
};

/* Build and sign version `version` of `sector` (valid FIXTURE_ISSUED..FIXTURE_EXPIRES) in
 * 2^bits chunks; entries are sorted in place. */
void fixture_v2_build(const struct list_fixture *f, uint16_t sector, uint64_t version,
                      unsigned bits, struct proto_list_entry *e, size_t n, struct v2list *out);

/* One change for fixture_v2_next: op is PROTO_CLIST_OP_ADD, _CHANGE or _REMOVE. */
struct v2change {
	uint8_t op;
	struct proto_list_entry e;
};

/* The next version of base with these changes (any order), as the server derives it, and
 * the delta base -> next (malloc'd). */
void fixture_v2_next(const struct list_fixture *f, const struct v2list *base,
                     struct v2change *changes, size_t n, struct v2list *next, uint8_t **delta,
                     size_t *delta_len);
/* A version as a directory holds it (a gate's store, an export), by its manifest's path. */
void fixture_v2_load(const char *manifest_path, struct v2list *out);
void fixture_v2_free(struct v2list *l);

#define FIXTURE_SECTOR  7
#define FIXTURE_ISSUED  1000000000
#define FIXTURE_EXPIRES (FIXTURE_ISSUED + 86400)

#endif
