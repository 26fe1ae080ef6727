/*
 * store_pg_internal.h — what the files of the PostgreSQL store share (issue 16):
 *   store_pg.c        the connection, statements, schema and its version, transactions,
 *                     deployment data, passes, rights
 *   store_pg_schema.c the schema text (tables, the change log's triggers)
 *   store_pg_usage.c  the usage streams: ingestion, acknowledgements, usage positions,
 *                     gates' health, statistics
 *   store_pg_lists.c  what the list publisher needs: profiles, list rows, the change log,
 *                     published versions, their chunk files and deltas, bulk import
 *   store_pg_holder.c a holder's access and erasure requests (server/holder.h)
 *
 * Every statement is parameterised (PQexecParams / PQprepare): no value is ever spliced
 * into SQL text. Results come back as text (bytea unescaped with PQunescapeBytea);
 * parameters go as text, blobs as binary.
 */
#ifndef SERVER_STORE_PG_INTERNAL_H
#define SERVER_STORE_PG_INTERNAL_H

#include <libpq-fe.h>

#include "server/store.h"

/* Statements prepared once per connection (the hot paths: publishing, ingestion). */
#define PG_CACHE_MAX  96
#define PG_PARAMS_MAX 16

/* The advisory lock class of the publisher (pg_try_advisory_lock(class, sector)) and of
 * gate numbering: numbers no other user of the database is expected to take. */
#define PG_LOCK_PUBLISH    0x43500001
#define PG_LOCK_DEVICES    0x43500002
#define PG_LOCK_SCHEMA     0x43500003
#define PG_LOCK_HOUSEHOLDS 0x43500004

struct pg {
	PGconn *conn;
	char *conninfo;      /* to open the listening connection */
	PGconn *listen_conn; /* LISTEN citypass_changed (store_pg.c: pg_listen) */
	struct {
		const char *sql; /* a static string: the cache is keyed by its address */
		char name[16];
	} cache[PG_CACHE_MAX];
	size_t n_cache;
	int write_tx; /* inside begin() (not begin_read): reads that precede a write lock rows */
	int in_tx;    /* inside begin() or begin_read(): a lost connection loses the transaction */
	int households_locked; /* this transaction holds PG_LOCK_HOUSEHOLDS (store_pg.c) */
	int publish_locks;     /* publish_lock held: a lost connection lost them, never reopen it
	                          silently under a publisher that believes it holds one */
	struct server_store_counters counters;
	char errmsg[256];
};

struct pg_params {
	int n;
	const char *v[PG_PARAMS_MAX];
	int len[PG_PARAMS_MAX];
	int fmt[PG_PARAMS_MAX];
	char num[PG_PARAMS_MAX][24];
};

void pgp_init(struct pg_params *p);
void pgp_i64(struct pg_params *p, int64_t v);
void pgp_u64(struct pg_params *p, uint64_t v); /* clamped to INT64_MAX */
void pgp_text(struct pg_params *p, const char *s);
void pgp_null(struct pg_params *p);
void pgp_blob(struct pg_params *p, const void *data, size_t len);
/* ... and counted as written (server_store_counters) */
void pgp_blob_counted(struct pg *q, struct pg_params *p, const void *data, size_t len);

/*
 * A column of many rows as one array parameter, unnest()ed into rows by the statement,
 * instead of one round trip per row. Arrays are written as text ("{1,2,3}"): numbers and
 * hex only, nothing that needs quoting. Zero-initialise, add elements, then pg_arr_params
 * closes them and adds them as parameters (SERVER_ERR_NOMEM if any failed to grow);
 * pg_arr_free after the statement.
 */
struct pg_array {
	char *buf;
	size_t len, cap;
	int oom;
};
void pg_arr_i64(struct pg_array *a, int64_t v);
/* len bytes as hex: decode(x, 'hex') in the statement gives them back */
void pg_arr_hex(struct pg_array *a, const void *data, size_t len);
int pg_arr_params(struct pg_params *p, struct pg_array *a, size_t n);
void pg_arr_free(struct pg_array *a, size_t n);

/* The channel every instance listens on; the payload is the sector (or "keys"). */
#define PG_CHANNEL "citypass_changed"
/* Announce a change to every listening instance, at the commit of this transaction. */
int pg_announce(struct pg *q, const char *what);

/* Keep a sentence of our own, or the server's, as the last failure's cause. */
void pg_fail(struct pg *q, const char *msg);
/* Run `sql` (a static string: prepared once per connection) with `p` (may be NULL). 0 with
 * *res (the caller PQclear()s it; res NULL: cleared here), or a SERVER_ERR_*: EXISTS for a
 * constraint, BUSY for a lock not granted in time, IO for the rest. */
int pg_query(struct pg *q, const char *sql, const struct pg_params *p, PGresult **res);
/* Statements without parameters, several allowed (schema, transaction control). */
int pg_exec(struct pg *q, const char *sql);
/* A statement's rows changed (UPDATE, DELETE, INSERT ... ON CONFLICT DO NOTHING). */
uint64_t pg_changes(PGresult *r);
/* An UPDATE or DELETE run: *n the rows it touched (0 on an error). */
int pg_run_counted(struct pg *q, const char *sql, const struct pg_params *p, uint64_t *n);
/* The first column of the one row; NOT_FOUND when there is none. */
int pg_one_i64(struct pg *q, const char *sql, const struct pg_params *p, int64_t *out);

int64_t pg_i64(const PGresult *r, int row, int col);
void pg_copy_text(char *dst, size_t cap, const PGresult *r, int row, int col);
/* A bytea column, malloc'd (at least one byte). */
int pg_blob(const PGresult *r, int row, int col, uint8_t **out, size_t *len);
/* A bytea column of exactly `len` bytes into dst; SERVER_ERR_IO otherwise. */
int pg_blob_fixed(const PGresult *r, int row, int col, void *dst, size_t len);

#define PG_PROFILE_COLS "product, valid_from, valid_to, lim, period, scope, fare, flags"
void pgp_profile(struct pg_params *p, const struct proto_rights_profile *pr);
void pg_profile_from_row(const PGresult *r, int row, int col, struct proto_rights_profile *pr);

/* store_pg_schema.c */
/* the sqlite schema version this one matches (server/store.h); 6: consumption rows'
 * storage time (issue 17); 7: holder names folded (issue 18); 8: household names unique
 * ignoring case (sqlite's 9; sqlite's 8 has no counterpart here) */
#define PG_SCHEMA_VERSION 8
extern const char pg_schema_sql[];
/* Names are ASCII (server_name_ok): lower() folds them whole, in any locale. Not UNIQUE: a
 * database may already hold "Dupont" and "dupont" (docs/admin.md). */
#define PG_SCHEMA_HOUSEHOLDS_FOLDED "CREATE INDEX households_folded ON households(lower(name));"

/* store_pg_lists.c */
int pg_profiles(void *ctx, uint16_t sector, struct proto_rights_profile **out, size_t *n);
int pg_profile_add(void *ctx, uint16_t sector, uint16_t index,
                   const struct proto_rights_profile *p);
int pg_list_rows(void *ctx, uint16_t sector, const struct server_periods *now,
                 int (*each)(void *arg, const struct server_list_row *r), void *arg);
int pg_list_row(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                const struct server_periods *now, struct server_list_row *out);
int pg_list_changes(void *ctx, uint16_t sector, int64_t *upto, uint8_t (**keys)[PROTO_LIST_KEY_LEN],
                    size_t *n);
int pg_list_changes_trim(void *ctx, uint16_t sector, int64_t upto, unsigned max, unsigned *deleted);
int pg_consumption_expire(void *ctx, uint16_t sector, const struct server_periods *now);
int pg_consumption_retire(void *ctx, uint16_t sector, int64_t before, uint64_t *n);
int pg_consumption_rekey(void *ctx, uint16_t sector, const uint8_t from[PROTO_LIST_KEY_LEN],
                         const uint8_t to[PROTO_LIST_KEY_LEN]);
int pg_list_latest(void *ctx, uint16_t sector, uint64_t *version);
int pg_list_published(void *ctx, uint16_t sector, uint64_t *version);
int pg_list_version_get(void *ctx, uint16_t sector, uint64_t version,
                        struct server_list_version *out);
int pg_list_version_put(void *ctx, uint16_t sector, const struct server_list_version *v);
int pg_list_file_get(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     uint8_t **data, size_t *len);
int pg_list_file_put(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     const uint8_t *data, size_t len);
int pg_list_files_retire(void *ctx, uint16_t sector, int64_t chunk, uint64_t version);
int pg_delta_get(void *ctx, uint16_t sector, uint64_t base, struct server_stored_list *out);
int pg_delta_put(void *ctx, uint16_t sector, uint64_t base, const struct server_stored_list *d);
int pg_list_prune(void *ctx, uint16_t sector, unsigned keep);
int pg_list_files_prune(void *ctx, uint16_t sector, unsigned max, unsigned *deleted);
int pg_publish_lock(void *ctx, uint16_t sector, int take, int wait_ms);
int pg_meta_set(void *ctx, const char *key, const char *value);
int pg_import_open(void *ctx, const uint8_t sha256[32], int64_t now, int64_t *id, uint64_t *lines,
                   int *done);
int pg_import_progress(void *ctx, int64_t id, uint64_t lines);
int pg_import_key_get(void *ctx, int64_t id, const uint8_t key[32], int64_t *pass);
int pg_import_key_add(void *ctx, const uint8_t key[32], int64_t pass);
int pg_import_done(void *ctx, int64_t id, const uint16_t *rebuild, size_t n);

/* store_pg_holder.c */
int pg_uses_of_key(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                   int (*fn)(void *arg, const struct server_use *u), void *arg);
int pg_household_name(void *ctx, int64_t id, char *out, size_t cap);
/* Schema 6 -> 7 (issue 18): the holder_key column, filled from each pass's holder
 * (store_pg_holder.c), inside the caller's transaction. */
int pg_migrate_6_to_7(struct pg *q);
int pg_pass_erase(void *ctx, int64_t pass, int *household_gone);
int pg_erase_flush(void *ctx);

/* store_pg_usage.c */
int pg_ingest(void *ctx, const char *device, const Citypass__EventBatch *b, uint64_t *acked);
int pg_acked(void *ctx, const char *device, int stream, uint64_t *seq);
int pg_usage_position(void *ctx, uint64_t *pos);
int pg_usage_position_of(void *ctx, const char *device, uint64_t epoch, uint64_t seq,
                         uint64_t *pos);
int pg_device_health_put(void *ctx, const struct server_device_health *h);
int pg_device_status_list(void *ctx, struct server_device_status **out, size_t *n);
int pg_product_known(void *ctx, uint16_t sector, uint32_t product, int *known);
int pg_consumption_discard(void *ctx, const char *device, uint64_t *n);
int pg_counted_right(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                     uint32_t *product, uint8_t *period);
int pg_stats(void *ctx, int64_t from, int64_t to, int64_t bucket_s,
             int (*fn)(void *arg, const struct server_stat_row *r), void *arg);

#endif
