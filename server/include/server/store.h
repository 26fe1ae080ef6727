/*
 * server/store.h — the rights database behind one interface.
 *
 * Everything the admin CLI, the list publisher and the sync backend keep lives behind this
 * ops struct: sectors, sites, devices, households, passes and their per-sector identifiers,
 * rights, rights profiles, published lists and deltas, and the two usage streams. sqlite
 * (WAL, synchronous=FULL, foreign keys on, schema versioned) is the embedded default
 * (server_store_open_sqlite); PostgreSQL (server_store_open_pg, issue 16) fills the same
 * struct for several server instances on one database; server_store_open picks the one a
 * data directory is configured for.
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

/* 2: usage keyed by journal epoch (issue 10); 3: format 2 lists and the change log (issue
 * 12); 4: usage positions, gates' health (issue 13); 5: bulk import (issue 12); 6:
 * consumption rows' storage time (issue 17); 7: each pass's holder name folded for search
 * (issue 18); 8: list files' ends kept beside them (issue 12); 9: household names unique
 * ignoring case, found through an index on their lower case */
#define SERVER_STORE_SCHEMA_VERSION 9
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

/* Issue 13: a gate's health as it last reported it (GateHealth, docs/sync-protocol.md). */
enum server_device_state {
	SERVER_DEVICE_UNKNOWN = 0,
	SERVER_DEVICE_OK = 1,
	SERVER_DEVICE_DOWN = 2,
	SERVER_DEVICE_NOT_CONFIGURED = 3,
};

struct server_device_health {
	char device[SERVER_NAME_MAX];
	int64_t reported_at; /* the server's time when it arrived (Unix seconds) */
	int reader, scanner; /* enum server_device_state */
	uint64_t list_version;
	int64_t list_issued_at;
	uint64_t journal_backlog;
	uint64_t free_disk_bytes;
	int64_t clock_skew_s;
};

/* A device and what it last reported (has_health 0: nothing yet). */
struct server_device_status {
	struct server_device dev;
	char site_name[SERVER_NAME_MAX];
	int has_health;
	struct server_device_health health;
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
	int64_t import_id; /* pass_add only: the bulk import creating it (0: none) */
};

struct server_pass_filter {
	const char *holder; /* substring of the holder's name, compared folded (server_text_fold:
	                       "helene" finds "Hélène"), or NULL */
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

/* Issue 17: one consumption row as kept (device "" and stored_at 0: folded at retention,
 * server/privacy.h). */
struct server_use {
	uint16_t sector;
	uint32_t product, count;
	int64_t period;
	char device[SERVER_NAME_MAX];
	int64_t stored_at;
};

struct server_stat_row {
	uint32_t site, gate, sector, product, reason;
	int outcome;
	int64_t quarter_hour;
	uint64_t count;
};

/* A delta as stored: the bytes, and the signature of the version it produces. */
struct server_stored_list {
	uint64_t version;
	int64_t issued_at, expires_at;
	uint8_t *data;
	size_t len;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
};

/* One published version of a sector's list (format 2, docs/list-format.md): its head and
 * signed manifest; the chunk files it names are list files (list_file_get). */
struct server_list_version {
	uint64_t version;
	int64_t issued_at, expires_at;
	uint64_t usage_position; /* issue 13: every use at or below it is in this version */
	uint8_t *head;
	size_t head_len;
	uint8_t *manifest;
	size_t manifest_len;
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
};

/* The work a store did since it was opened: tests check that a change costs what changed
 * by counting it, not by timing it. */
struct server_store_counters {
	uint64_t statements;    /* statements stepped */
	uint64_t bytes_written; /* blob bytes written */
};

struct server_store_ops {
	int (*begin)(void *ctx);
	/* A transaction that only reads: one snapshot, no write lock; end it with commit. */
	int (*begin_read)(void *ctx);
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
	/* Issue 13: record a gate's health report (replacing its last); every device with
	 * its last report, in gate order (*out malloc'd). */
	int (*device_health_put)(void *ctx, const struct server_device_health *h);
	int (*device_status_list)(void *ctx, struct server_device_status **out, size_t *n);

	int (*household_add)(void *ctx, const char *name, int64_t *id);
	int (*household_find)(void *ctx, const char *name, int64_t *id);
	/* Households whose name, in lower case, holds `part` (already folded: lower-case
	 * ASCII; NULL: all), in name order: fn(arg, id, name), a non-zero return stops. */
	int (*household_each)(void *ctx, const char *part,
	                      int (*fn)(void *arg, int64_t id, const char *name), void *arg);
	/* Rename (EXISTS: the name is taken; NOT_FOUND); delete a household no pass is in,
	 * with its tags (EXISTS while a pass is in it; NOT_FOUND). */
	int (*household_rename)(void *ctx, int64_t id, const char *name);
	int (*household_delete)(void *ctx, int64_t id);
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
	/* A right in a sector where the pass holds none yet (a pass being created, as an
	 * import does a million times): EXISTS when it holds one. Cheaper than right_set on
	 * sqlite, whose replacement needs a statement journal (store_sqlite.c). */
	int (*right_add)(void *ctx, const struct server_right *r);
	int (*right_delete)(void *ctx, int64_t pass, uint16_t sector);
	int (*rights_of_pass)(void *ctx, int64_t pass, struct server_right **out, size_t *n);

	/*
	 * Lists (server/publish.h, docs/list-format.md). Every change that can alter a list
	 * entry (a right, a pass's state or household, a household tag, a consumption row) is
	 * logged, with the list key it touches, by the store itself, in the transaction that
	 * makes it: the publisher reads the log instead of the whole sector.
	 */
	/* The sector's profiles in index order; add one at the next index. */
	int (*profiles)(void *ctx, uint16_t sector, struct proto_rights_profile **out, size_t *n);
	int (*profile_add)(void *ctx, uint16_t sector, uint16_t index,
	                   const struct proto_rights_profile *p);
	/* Every pass holding a right in the sector, with its usage in the current periods,
	 * given to `each` one by one (a full rebuild at 5 M passes keeps no array of them);
	 * `each` returns 0 to go on, or a SERVER_ERR_* code that ends the reading and is
	 * returned as is. */
	int (*list_rows)(void *ctx, uint16_t sector, const struct server_periods *now,
	                 int (*each)(void *arg, const struct server_list_row *r), void *arg);
	/* The row of one list key; SERVER_ERR_NOT_FOUND when no right is listed under it. */
	int (*list_row)(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
	                const struct server_periods *now, struct server_list_row *out);
	/* The distinct keys logged as changed in the sector (*keys malloc'd), and in *upto the
	 * last log position read; trim forgets the log up to that position, at most `max`
	 * rows per call (*deleted says how many), so that a long log goes in short
	 * transactions. */
	int (*list_changes)(void *ctx, uint16_t sector, int64_t *upto,
	                    uint8_t (**keys)[PROTO_LIST_KEY_LEN], size_t *n);
	int (*list_changes_trim)(void *ctx, uint16_t sector, int64_t upto, unsigned max,
	                         unsigned *deleted);
	/* Issue 13: the usage position: every consumption row stored gets the position of its
	 * batch, from a counter that only grows; a list read in the same transaction as this
	 * value reflects every row at or below it (ListUpdate.consumption_position). */
	int (*usage_position)(void *ctx, uint64_t *pos);
	/* ... and where a device's uses of `epoch` up to `seq` sit: the highest position of
	 * their rows (0: none kept), EventAck.position. */
	int (*usage_position_of)(void *ctx, const char *device, uint64_t epoch, uint64_t seq,
	                         uint64_t *pos);
	/* Delete consumption rows of the sector whose period has ended. */
	int (*consumption_expire)(void *ctx, uint16_t sector, const struct server_periods *now);
	/* Move a sector's counted uses from one list key to another: a replaced card's
	 * counters follow its rights to the new card. */
	int (*consumption_rekey)(void *ctx, uint16_t sector, const uint8_t from[PROTO_LIST_KEY_LEN],
	                         const uint8_t to[PROTO_LIST_KEY_LEN]);
	/* Issue 17: fold the sector's consumption rows stored (by the server's clock, at
	 * ingest) before `before` into one row per (list key, product, period) that keeps
	 * their count and nothing of the gate, sequence or time they came from; *n gets how
	 * many rows were folded. Counts and list entries are unchanged. */
	int (*consumption_retire)(void *ctx, uint16_t sector, int64_t before, uint64_t *n);

	/* Issue 17, a holder's access and erasure (server/holder.h). The consumption rows
	 * kept under a list key of the sector, in period order; a household's name
	 * (NOT_FOUND); erase a pass and everything kept about it — the uses under its list
	 * keys, its identifiers, rights and import record, and its household when no other
	 * pass is left in it (*household_gone) — with the deleted content overwritten, not
	 * only unlinked; and, after the commit, leave no copy of what was deleted in the
	 * backend's files (BUSY while another connection holds an older snapshot). */
	int (*uses_of_key)(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
	                   int (*fn)(void *arg, const struct server_use *u), void *arg);
	int (*household_name)(void *ctx, int64_t id, char *out, size_t cap);
	int (*pass_erase)(void *ctx, int64_t pass, int *household_gone);
	int (*erase_flush)(void *ctx);
	/* The newest version published for the sector in any format (0 if none): the next
	 * one is numbered after it. */
	int (*list_latest)(void *ctx, uint16_t sector, uint64_t *version);
	/* The newest format 2 version, the one gates are brought to (0 if none). */
	int (*list_published)(void *ctx, uint16_t sector, uint64_t *version);
	/* A format 2 version (version 0: the newest); SERVER_ERR_NOT_FOUND if none. */
	int (*list_version_get)(void *ctx, uint16_t sector, uint64_t version,
	                        struct server_list_version *out);
	int (*list_version_put)(void *ctx, uint16_t sector, const struct server_list_version *v);
	/* A chunk file (idx: the .idx, else the .dat) written by version `since`. */
	int (*list_file_get)(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
	                     uint8_t **data, size_t *len);
	int (*list_file_put)(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
	                     const uint8_t *data, size_t len);
	/* Version `version` replaces chunk `chunk` (every chunk when negative): the files written
	 * before it are kept only as long as the versions that name them. */
	int (*list_files_retire)(void *ctx, uint16_t sector, int64_t chunk, uint64_t version);
	int (*delta_get)(void *ctx, uint16_t sector, uint64_t base, struct server_stored_list *out);
	int (*delta_put)(void *ctx, uint16_t sector, uint64_t base,
	                 const struct server_stored_list *d);
	/* Keep the newest `keep` versions and deltas of a sector. */
	int (*list_prune)(void *ctx, uint16_t sector, unsigned keep);
	/* Delete at most `max` files no kept version names any more (*deleted says how many):
	 * after a full rebuild they are a whole list's worth, deleted in short transactions. */
	int (*list_files_prune)(void *ctx, uint16_t sector, unsigned max, unsigned *deleted);
	/*
	 * Bulk import (citypass-admin pass import). Passes created under an import stay out of
	 * lists and of pass_each until import_done marks it done, in one row: a file goes in
	 * whole, however many transactions it takes. An import knows its file by its SHA-256
	 * and counts the lines it has committed, so that a run interrupted goes on where it
	 * stopped and the same file run again creates nothing; a file with an id column also
	 * keeps each id's pass, so that no other file creates it twice.
	 */
	/* The import of this file (by its SHA-256): the last one, done or not (*done, and in
	 * *lines the lines it committed), or a new one. */
	int (*import_open)(void *ctx, const uint8_t sha256[32], int64_t now, int64_t *id,
	                   uint64_t *lines, int *done);
	/* In the transaction that brought them: the import has committed `lines` lines. */
	int (*import_progress)(void *ctx, int64_t id, uint64_t lines);
	/* The pass an id (its key) was imported as, by a finished import or by import `id`.
	 * SERVER_ERR_NOT_FOUND: none; a pass left by another import that never finished does
	 * not count, and stays unlisted: key_add then points the key at the new pass. */
	int (*import_key_get)(void *ctx, int64_t id, const uint8_t key[32], int64_t *pass);
	int (*import_key_add)(void *ctx, const uint8_t key[32], int64_t pass);
	/* Done: its passes are listed from now on. The `n` sectors in `rebuild` are rebuilt whole
	 * by their next publish (the import brought most of their passes); in the others the
	 * new passes' keys go to the change log. */
	int (*import_done)(void *ctx, int64_t id, const uint16_t *rebuild, size_t n);
	void (*counters)(void *ctx, struct server_store_counters *out);
	/* How long a statement waits for a database locked by another writer before it
	 * returns SERVER_ERR_BUSY (default 10 s). */
	void (*busy_timeout)(void *ctx, int ms);
	/* This connection does bulk work from now on (an import's inserts, at random places
	 * of the identifier indexes): it keeps up to `cache_mib` MiB of the database in memory
	 * and lets its log grow to `wal_mib` MiB before it is copied into the database file,
	 * so that a page written by many transactions is not written out again by each. That
	 * copy is never part of a commit: bulk_checkpoint does it, between transactions.
	 * Its commits need not be durable one by one (bulk_end). */
	void (*bulk)(void *ctx, unsigned cache_mib, unsigned wal_mib);
	/* Outside any transaction: copy the log into the database if it grew past `wal_mib`,
	 * holding no lock that a writer waits for. 0 or an error. NULL: nothing to do. */
	int (*bulk_checkpoint)(void *ctx);
	/* The bulk work is over, outside any transaction: bulk commits may be lost by a
	 * crash (all of the last ones, never a part of one) until the next commit, which is
	 * durable again and makes them durable. NULL: nothing to do. */
	void (*bulk_end)(void *ctx);

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

	/* Issue 16: one publisher of a sector at a time across every instance (take = 1, waiting
	 * up to wait_ms, else SERVER_ERR_BUSY; take = 0 releases), held across transactions and
	 * dropped by the database if the connection dies. NULL: the backend has none (sqlite:
	 * the publisher takes an flock in the data directory instead). */
	int (*publish_lock)(void *ctx, uint16_t sector, int take, int wait_ms);
	/* Issue 16: what any process on the same database publishes (a list version, card keys
	 * changed) is announced, so that every server instance pushes it without polling.
	 * listen: *fd becomes readable when something was announced (a connection of its own);
	 * notified: consumes the announcements: 1 some came, 0 none, or an error when the
	 * listening connection was lost (listen again). NULL: the backend has none (sqlite: one
	 * server, which polls). */
	int (*listen)(void *ctx, int *fd);
	int (*notified)(void *ctx);

	/* The backend's own words for its last failure ("disk I/O error", "database is
	 * locked"), "" when it has none: server_store_strerror puts them after ours. */
	const char *(*last_error)(void *ctx);

	void (*close)(void *ctx);
};

struct server_store {
	const struct server_store_ops *ops;
	void *ctx;
};

/* The database file in a data directory. */
#define SERVER_DB_FILE "citypass.db"
/* Issue 16: where a data directory's rights database lives when it is not DB_FILE: one
 * line, a libpq connection URI ("postgresql://host/db"; citypass-admin init --store). */
#define SERVER_STORE_FILE    "store.conf"
#define SERVER_STORE_URI_MAX 1024

/*
 * The data directory's store, whichever it is (issue 16): PostgreSQL when DATA_DIR/store.conf
 * names one, else the sqlite file. create as for server_store_open_sqlite. why (may be NULL)
 * gets a sentence for a refusal (an unreachable server, a schema newer than this release).
 */
int server_store_open(struct server_store *out, const char *data_dir, int create,
                      struct server_why *why);
/* The URI DATA_DIR/store.conf names: 0, NOT_FOUND (a sqlite deployment), or IO/INVALID. */
int server_store_uri(const char *data_dir, char *uri, size_t cap);
/* Record `uri` as DATA_DIR's store (0600: the URI may hold a password). */
int server_store_set_uri(const char *data_dir, const char *uri);
/* 1 when `s` names a PostgreSQL database ("postgresql://" or "postgres://"). */
int server_store_is_pg_uri(const char *s);
/* The PostgreSQL store at `conninfo` (libpq URI or key=value string): create = 1 makes the
 * schema, refusing a database that holds one (SERVER_ERR_EXISTS); else the schema must be
 * there and not newer than this release's (SERVER_ERR_SCHEMA_NEWER). A server that does
 * not answer is SERVER_ERR_UNREACHABLE. */
int server_store_open_pg(struct server_store *out, const char *conninfo, int create,
                         struct server_why *why);
/* citypass-admin migrate: DATA_DIR's sqlite database copied whole into the PostgreSQL
 * database `uri` (which must hold no deployment), then DATA_DIR/store.conf names it and
 * citypass.db becomes citypass.db.migrated. *rows: the rows copied. */
int server_store_migrate_to_pg(const char *data_dir, const char *uri, uint64_t *rows,
                               struct server_why *why);

/*
 * Open (create = 1: create, refusing an existing file with SERVER_ERR_EXISTS) the sqlite
 * store DATA_DIR/citypass.db. An older schema is migrated forward in one transaction
 * (docs/admin.md, "Upgrading"); a newer one is SERVER_ERR_SCHEMA_NEWER.
 */
int server_store_open_sqlite(struct server_store *out, const char *data_dir, int create);
void server_store_close(struct server_store *s);

/* The sentence for rc returned by one of st's ops: server_strerror(rc), and for a failure of
 * the database the backend's own words after it ("the database or a file failed (disk I/O
 * error)"). Valid until the next call with st. */
const char *server_store_strerror(struct server_store *st, int rc);

/* Convenience: free a stored delta's data, a version's head and manifest. */
void server_stored_list_free(struct server_stored_list *l);
void server_list_version_free(struct server_list_version *v);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_STORE_H */
