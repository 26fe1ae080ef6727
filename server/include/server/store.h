/*
 * server/store.h — the rights database behind one interface.
 *
 * Everything the admin CLI, the list publisher and the sync backend keep lives behind this
 * ops struct: sectors, sites, devices, households, passes and their per-sector identifiers,
 * rights, rights profiles, published lists and deltas, and the two usage streams. sqlite
 * (WAL, synchronous=FULL, foreign keys on, schema versioned) is the embedded default
 * (server_store_open_sqlite); a PostgreSQL backend fills the same struct.
 *
 * Every op returns 0 or a negative SERVER_ERR_* (server/error.h). Writes happen inside
 * begin()/commit(); rollback() undoes everything since begin(). Strings returned in structs
 * are fixed arrays; lists returned are malloc'd and owned by the caller.
 */
#ifndef SERVER_STORE_H
#define SERVER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "citypass.pb-c.h"
#include "proto/list.h"
#include "server/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_STORE_SCHEMA_VERSION 2 /* 2: usage keyed by journal epoch (issue 10) */
#define SERVER_NAME_MAX             64
#define SERVER_TEXT_MAX             256
#define SERVER_PASS_ID_LEN          16

struct server_sector {
	uint16_t number; /* the sector number lists and events carry */
	char name[SERVER_NAME_MAX];
	uint8_t slot; /* card layout slot, 0..5 */
};

struct server_site {
	uint32_t id;
	char name[SERVER_NAME_MAX];
	uint16_t sector;
	char hours[SERVER_TEXT_MAX]; /* opening hours, docs/admin.md */
	char tz[SERVER_NAME_MAX];    /* IANA time zone */
	uint32_t antipassback_min;
	char expiry_policy[SERVER_NAME_MAX]; /* "refuse" or "grace:HOURS" */
};

struct server_device {
	char id[SERVER_NAME_MAX]; /* certificate CN */
	uint32_t gate;            /* number statistics carry */
	uint32_t site;
	uint16_t sector;
	int revoked;
	int64_t created;
};

enum server_pass_state {
	SERVER_PASS_ACTIVE = PROTO_STATUS_ACTIVE,
	SERVER_PASS_REVOKED = PROTO_STATUS_REVOKED,
	SERVER_PASS_REPLACED = PROTO_STATUS_REPLACED,
	SERVER_PASS_SUSPENDED = PROTO_STATUS_SUSPENDED,
};

struct server_pass {
	int64_t id;
	char holder[SERVER_TEXT_MAX]; /* empty: anonymous */
	int64_t household;            /* 0: none */
	int state;                    /* enum server_pass_state */
	char reason[SERVER_TEXT_MAX];
	char medium[16]; /* "card", "phone" or "none" */
	int64_t replaced_by;
	int64_t created;
};

struct server_pass_filter {
	const char *holder; /* substring, or NULL */
	int64_t household;  /* 0: any */
	int state;          /* -1: any */
	int sector;         /* -1: any; else passes holding a right in it */
};

/* A right: at most one per (pass, sector); the profile fields of proto/list.h. */
struct server_right {
	int64_t pass;
	uint16_t sector;
	struct proto_rights_profile p;
};

/* One row of a sector's list, before profile indices are assigned. */
struct server_list_row {
	uint8_t key[PROTO_LIST_KEY_LEN];
	int state;
	uint32_t household_tag;
	struct proto_rights_profile p;
	uint32_t used; /* in the current period (summed over the household for its scope) */
};

/* Current period numbers by enum proto_period (index 0 and 1 are 0). */
struct server_periods {
	int64_t n[6];
};

struct server_stat_row {
	uint32_t site, gate, sector, product, reason;
	int outcome;
	int64_t quarter_hour;
	uint64_t count;
};

struct server_stored_list {
	uint64_t version;
	int64_t issued_at, expires_at;
	uint8_t *data;
	size_t len;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
};

struct server_store_ops {
	int (*begin)(void *ctx);
	int (*commit)(void *ctx);
	void (*rollback)(void *ctx);

	/* Deployment settings (key/value text). get: SERVER_ERR_NOT_FOUND if unset. */
	int (*meta_get)(void *ctx, const char *key, char *out, size_t cap);
	int (*meta_set)(void *ctx, const char *key, const char *value);

	int (*sector_add)(void *ctx, const struct server_sector *s); /* EXISTS: name/slot/num */
	int (*sector_list)(void *ctx, struct server_sector **out, size_t *n);

	int (*site_add)(void *ctx, struct server_site *s); /* fills s->id; EXISTS on name */
	int (*site_find)(void *ctx, const char *name, struct server_site *out);
	int (*site_get)(void *ctx, uint32_t id, struct server_site *out);

	int (*device_add)(void *ctx, struct server_device *d); /* fills gate; EXISTS on id */
	int (*device_find)(void *ctx, const char *id, struct server_device *out);
	int (*device_revoke)(void *ctx, const char *id);

	int (*household_add)(void *ctx, const char *name, int64_t *id);
	int (*household_find)(void *ctx, const char *name, int64_t *id);
	/* The household's tag in a sector; EXISTS when `tag` is taken in that sector. */
	int (*household_tag_add)(void *ctx, int64_t household, uint16_t sector, uint32_t tag);
	int (*household_tag_get)(void *ctx, int64_t household, uint16_t sector, uint32_t *tag);

	int (*pass_add)(void *ctx, struct server_pass *p); /* fills p->id */
	int (*pass_get)(void *ctx, int64_t id, struct server_pass *out);
	int (*pass_update)(void *ctx, const struct server_pass *p);
	/* Calls fn for each matching pass, in id order; a non-zero return stops and is returned. */
	int (*pass_each)(void *ctx, const struct server_pass_filter *f,
	                 int (*fn)(void *arg, const struct server_pass *p), void *arg);
	/* EXISTS when the identifier or its list key is already taken in that sector. */
	int (*pass_id_add)(void *ctx, int64_t pass, uint16_t sector,
	                   const uint8_t id[SERVER_PASS_ID_LEN],
	                   const uint8_t key[PROTO_LIST_KEY_LEN]);
	int (*pass_id_get)(void *ctx, int64_t pass, uint16_t sector, uint8_t id[SERVER_PASS_ID_LEN],
	                   uint8_t key[PROTO_LIST_KEY_LEN]);
	/* The pass whose identifier in `sector` is `id` (a card read at the desk). NOT_FOUND. */
	int (*pass_id_find)(void *ctx, uint16_t sector, const uint8_t id[SERVER_PASS_ID_LEN],
	                    int64_t *pass);

	int (*right_set)(void *ctx, const struct server_right *r); /* replaces the sector's */
	int (*right_delete)(void *ctx, int64_t pass, uint16_t sector);
	int (*rights_of_pass)(void *ctx, int64_t pass, struct server_right **out, size_t *n);

	/* The stable index of a profile in a sector, created on first use. */
	int (*profile_index)(void *ctx, uint16_t sector, const struct proto_rights_profile *p,
	                     uint16_t *index);
	int (*profiles)(void *ctx, uint16_t sector, struct proto_rights_profile **out, size_t *n);
	/* Every pass holding a right in the sector, with its usage in the current periods. */
	int (*list_rows)(void *ctx, uint16_t sector, const struct server_periods *now,
	                 struct server_list_row **out, size_t *n);
	/* Delete consumption rows of the sector whose period has ended. */
	int (*consumption_expire)(void *ctx, uint16_t sector, const struct server_periods *now);
	/* Move a sector's counted uses from one list key to another: a replaced card's
	 * counters follow its rights to the new card. */
	int (*consumption_rekey)(void *ctx, uint16_t sector, const uint8_t from[PROTO_LIST_KEY_LEN],
	                         const uint8_t to[PROTO_LIST_KEY_LEN]);

	int (*list_latest)(void *ctx, uint16_t sector, uint64_t *version); /* 0 if none */
	int (*list_get)(void *ctx, uint16_t sector, uint64_t version,
	                struct server_stored_list *out);
	int (*list_put)(void *ctx, uint16_t sector, const struct server_stored_list *l);
	int (*delta_get)(void *ctx, uint16_t sector, uint64_t base, struct server_stored_list *out);
	int (*delta_put)(void *ctx, uint16_t sector, uint64_t base,
	                 const struct server_stored_list *d);
	/* Keep the newest `keep` snapshots and deltas of a sector. */
	int (*list_prune)(void *ctx, uint16_t sector, unsigned keep);

	/* One event batch, deduplicated on (device, stream, seq), inside the caller's
	 * transaction; *acked gets the highest stored seq of that stream. */
	int (*ingest)(void *ctx, const char *device, const Citypass__EventBatch *b,
	              uint64_t *acked);
	int (*acked)(void *ctx, const char *device, int stream, uint64_t *seq);
	/* What a gate may report (issue 10): *known = 1 when some right of the sector is of
	 * that product; the counted right (period other than none) of the pass whose list key
	 * in the sector is `key` (SERVER_ERR_NOT_FOUND if none). */
	int (*product_known)(void *ctx, uint16_t sector, uint32_t product, int *known);
	/* Forget every use a device reported (a stolen gate's reports no longer count);
	 * *n gets how many rows went. */
	int (*consumption_discard)(void *ctx, const char *device, uint64_t *n);
	int (*counted_right)(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
	                     uint32_t *product, uint8_t *period);
	/* Statistics grouped by (site, gate, sector, product, outcome, reason, bucket), where
	 * bucket is quarter_hour truncated to `bucket_s` seconds; within [from, to). */
	int (*stats)(void *ctx, int64_t from, int64_t to, int64_t bucket_s,
	             int (*fn)(void *arg, const struct server_stat_row *r), void *arg);

	void (*close)(void *ctx);
};

struct server_store {
	const struct server_store_ops *ops;
	void *ctx;
};

/* The database file in a data directory. */
#define SERVER_DB_FILE "citypass.db"

/*
 * Open (create = 1: create, refusing an existing file with SERVER_ERR_EXISTS) the sqlite
 * store DATA_DIR/citypass.db. A store of another schema version is SERVER_ERR_INVALID.
 */
int server_store_open_sqlite(struct server_store *out, const char *data_dir, int create);
void server_store_close(struct server_store *s);

/* Convenience: free a stored list's data. */
void server_stored_list_free(struct server_stored_list *l);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_STORE_H */
