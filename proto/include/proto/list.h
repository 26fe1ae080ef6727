/*
 * proto/list.h — the signed allow-list of one service sector, and its deltas.
 *
 * A snapshot is a fixed-layout file a gate maps into memory and searches in place: a
 * 96-byte header, a small table of rights profiles, then one 16-byte entry per pass,
 * sorted by key. Opening checks only the header and the sizes (O(1)); a lookup is a
 * binary search over the mapped entries. The byte layout is in docs/list-format.md.
 *
 * Everything a gate must refuse has its own error code (proto/error.h): a bad signature,
 * an unknown key id, a version not newer than the one held, an expired list, a delta whose
 * base is not the list held, a truncated or oversized file, an entry count that does not
 * match the body.
 */
#ifndef PROTO_LIST_H
#define PROTO_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "proto/sign.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_LIST_FORMAT       1
#define PROTO_LIST_KEY_LEN      8
#define PROTO_LIST_ENTRY_SIZE   16
#define PROTO_LIST_PROFILE_SIZE 16
#define PROTO_LIST_HEADER_SIZE  96
#define PROTO_DELTA_HEADER_SIZE 200
#define PROTO_DELTA_OP_SIZE     17
/* 64 Mi passes (1 GiB of entries): any header claiming more is refused before mapping. */
#define PROTO_LIST_MAX_ENTRIES  (64u * 1024u * 1024u)
#define PROTO_LIST_MAX_PROFILES 65535u
/* Household tags are 24-bit: 0 means "no household". */
#define PROTO_LIST_HOUSEHOLD_MAX 0xFFFFFFu
/* Day numbers (days since 1970-01-01, civil date in the site's zone). */
#define PROTO_DAY_UNBOUNDED_FROM 0u
#define PROTO_DAY_UNBOUNDED_TO   0xFFFFu

/* What a profile's counter counts over (DESIGN.md section 4). */
enum proto_period {
	PROTO_PERIOD_NONE = 0,     /* no counter: a subscription or a plain right */
	PROTO_PERIOD_LIFETIME = 1, /* N entries, for the product's whole life */
	PROTO_PERIOD_DAY = 2,
	PROTO_PERIOD_WEEK = 3,
	PROTO_PERIOD_MONTH = 4,
	PROTO_PERIOD_YEAR = 5,
};

enum proto_scope {
	PROTO_SCOPE_PASS = 0,      /* the counter is this pass's own */
	PROTO_SCOPE_HOUSEHOLD = 1, /* shared by every pass of the household, across sites */
};

enum proto_fare {
	PROTO_FARE_STANDARD = 0,
	PROTO_FARE_RESIDENT = 1,
	PROTO_FARE_CONCESSION = 2,
	PROTO_FARE_FREE = 3,
};

/* Profile flags. */
#define PROTO_PROFILE_ENTRIES_ON_CARD 0x01 /* entries live in the card's value file */

/* Pass status in a list entry. Revoked passes stay listed so a gate can say why. */
enum proto_pass_status {
	PROTO_STATUS_ACTIVE = 0,
	PROTO_STATUS_REVOKED = 1,  /* lost, stolen, moved away */
	PROTO_STATUS_REPLACED = 2, /* a newer card carries the rights */
	PROTO_STATUS_SUSPENDED = 3,
};
#define PROTO_STATUS_MAX PROTO_STATUS_SUSPENDED

/*
 * A rights profile: what many passes share (a product, its validity window, its counter).
 * Passes refer to profiles by index, which keeps an entry at 16 bytes.
 */
struct proto_rights_profile {
	uint16_t product;    /* product code, as statistics and messages name it */
	uint16_t valid_from; /* first valid day, or PROTO_DAY_UNBOUNDED_FROM */
	uint16_t valid_to;   /* last valid day, or PROTO_DAY_UNBOUNDED_TO */
	uint8_t limit;       /* uses allowed per period; 0 with PROTO_PERIOD_NONE */
	uint8_t period;      /* enum proto_period */
	uint8_t scope;       /* enum proto_scope */
	uint8_t fare;        /* enum proto_fare */
	uint8_t flags;       /* PROTO_PROFILE_* */
};

/* One pass, as a gate of the sector sees it. */
struct proto_list_entry {
	uint8_t key[PROTO_LIST_KEY_LEN]; /* proto_list_key() of the pass's sector identifier */
	uint16_t profile;                /* index into the list's profile table */
	uint32_t household;              /* 24-bit per-sector household tag, 0 = none */
	uint8_t used;        /* uses already counted server-side in period `used_period` */
	uint8_t used_period; /* low 8 bits of the period number `used` belongs to */
	uint8_t status;      /* enum proto_pass_status */
};

struct proto_list_header {
	uint16_t format;
	uint16_t sector;
	uint64_t version;
	int64_t issued_at;  /* Unix seconds */
	int64_t expires_at; /* Unix seconds; refused at or after this instant */
	uint8_t key_id[PROTO_KEY_ID_LEN];
	uint32_t entry_count;
	uint16_t profile_count;
	uint8_t prev_hash[PROTO_HASH_LEN]; /* SHA-256 of the previous version's file, or zeros */
};

/* What a verifier holds and expects. */
struct proto_list_policy {
	uint16_t sector;                  /* the gate's sector */
	uint64_t held_version;            /* 0 when it holds none */
	int64_t now;                      /* Unix seconds, the gate's clock */
	const struct proto_keyring *keys; /* trusted list-signing keys */
};

/* Derive a pass's list key from its sector identifier (domain-separated SHA-256). */
void proto_list_key(uint16_t sector, const uint8_t *sector_id, size_t len,
                    uint8_t key[PROTO_LIST_KEY_LEN]);

/* --- reading (gates) ------------------------------------------------------------------ */

struct proto_list;

/*
 * Open a snapshot held in memory (not copied: buf must outlive the list). Checks magic,
 * format, header fields and that the size matches the counts: PROTO_ERR_LIST_TRUNCATED,
 * _OVERSIZED, _MAGIC, _FORMAT, _COUNT, _FIELD.
 */
int proto_list_open_mem(struct proto_list **out, const uint8_t *buf, size_t len);
/* Same, mapping a file read-only. PROTO_ERR_IO when it cannot be opened or mapped. */
int proto_list_open_file(struct proto_list **out, const char *path);
void proto_list_close(struct proto_list *list);

const struct proto_list_header *proto_list_header(const struct proto_list *list);
const uint8_t *proto_list_bytes(const struct proto_list *list, size_t *len);
/* SHA-256 of the whole file (computed once, then cached). */
const uint8_t *proto_list_hash(struct proto_list *list);

/*
 * Decide whether a gate may install or keep using this list. Checks, in this order:
 * sector (PROTO_ERR_LIST_SECTOR), key id (PROTO_ERR_LIST_UNKNOWN_KEY), signature
 * (PROTO_ERR_LIST_SIGNATURE), expiry (PROTO_ERR_LIST_EXPIRED), then version against
 * policy->held_version (PROTO_ERR_LIST_ROLLBACK; pass 0 to re-verify the list held).
 */
int proto_list_verify(struct proto_list *list, const uint8_t *sig, size_t sig_len,
                      const struct proto_list_policy *policy);

/* O(n) check that keys are strictly increasing and profiles in range (at install). */
int proto_list_check_entries(const struct proto_list *list);

/* Binary search. 0 and *entry (and *profile if non-NULL) filled, or
 * PROTO_ERR_LIST_NOT_FOUND, or PROTO_ERR_LIST_PROFILE for an entry naming a missing
 * profile. */
int proto_list_lookup(const struct proto_list *list, const uint8_t key[PROTO_LIST_KEY_LEN],
                      struct proto_list_entry *entry, struct proto_rights_profile *profile);
int proto_list_entry_at(const struct proto_list *list, uint32_t index,
                        struct proto_list_entry *entry);
int proto_list_profile_at(const struct proto_list *list, uint16_t index,
                          struct proto_rights_profile *profile);

/* --- building (server) ---------------------------------------------------------------- */

struct proto_list_params {
	uint16_t sector;
	uint64_t version;
	int64_t issued_at;
	int64_t expires_at;
	uint8_t prev_hash[PROTO_HASH_LEN];
};

/*
 * Build a snapshot. entries are sorted in place; duplicate keys are refused
 * (PROTO_ERR_LIST_ORDER) — the server must draw a new identifier on such a collision.
 * The key id is the signer's. *out is malloc'd. Sign the result with proto_sign().
 */
int proto_list_build(const struct proto_list_params *params, const struct proto_key *signer,
                     const struct proto_rights_profile *profiles, size_t profile_count,
                     struct proto_list_entry *entries, size_t entry_count, uint8_t **out,
                     size_t *out_len);

/*
 * Build the signed delta that turns `base` into `target` (consecutive versions: target's
 * prev_hash must be the hash of base, else PROTO_ERR_DELTA_BASE). target_sig is target's
 * own signature, carried in the delta so a gate that applies it ends up holding the same
 * (list, signature) pair it would have downloaded. *out is malloc'd; sign it with
 * proto_sign().
 */
int proto_delta_build(struct proto_list *base, struct proto_list *target, const uint8_t *target_sig,
                      size_t target_sig_len, const struct proto_key *signer, uint8_t **out,
                      size_t *out_len);

/* --- deltas (gates) ------------------------------------------------------------------- */

struct proto_delta_header {
	uint16_t format;
	uint16_t sector;
	uint64_t base_version;
	uint64_t version;
	int64_t issued_at;
	int64_t expires_at;
	uint8_t key_id[PROTO_KEY_ID_LEN];
	uint32_t op_count;
	uint32_t result_entry_count;
	uint16_t profile_count;
	uint8_t base_hash[PROTO_HASH_LEN];
	uint8_t result_hash[PROTO_HASH_LEN];
	uint8_t result_sig_len;
	uint8_t result_sig[PROTO_SIG_MAX];
};

/* Parse and size-check a delta's header (no signature check). */
int proto_delta_parse_header(const uint8_t *buf, size_t len, struct proto_delta_header *hdr);

/*
 * Verify a delta against the policy (sector, key id, delta signature, expiry, rollback,
 * in that order, as proto_list_verify), check that its base is exactly `base`
 * (PROTO_ERR_DELTA_BASE: version and hash), apply it, and check the result against the
 * signed result hash and the carried signature (PROTO_ERR_DELTA_RESULT,
 * PROTO_ERR_LIST_SIGNATURE). On success *out (malloc'd) holds the new snapshot and
 * result_sig its detached signature. On any failure nothing is returned.
 */
int proto_delta_apply(struct proto_list *base, const uint8_t *delta, size_t delta_len,
                      const uint8_t *delta_sig, size_t delta_sig_len,
                      const struct proto_list_policy *policy, uint8_t **out, size_t *out_len,
                      uint8_t result_sig[PROTO_SIG_MAX], size_t *result_sig_len);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_LIST_H */
