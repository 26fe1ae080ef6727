/*
 * store_sqlite_internal.h — what the files of the sqlite store share:
 *   store_sqlite.c        the connection, schema and migrations, deployment data, passes,
 *                         rights, usage streams
 *   store_sqlite_lists.c  what the list publisher needs: profiles, list rows, the change
 *                         log, published versions, their chunk files and deltas
 *   store_sqlite_rows.c   a whole sector's list rows for a full rebuild
 *   store_sqlite_holder.c a holder's access and erasure requests (issue 17)
 */
#ifndef SERVER_STORE_SQLITE_INTERNAL_H
#define SERVER_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "server/store.h"

/* Statements prepared once per connection (the hot paths: publishing, ingestion). */
#define SQ_CACHE_MAX 48

struct sq {
	sqlite3 *db;
	struct {
		const char *sql; /* a static string: the cache is keyed by its address */
		sqlite3_stmt *st;
	} cache[SQ_CACHE_MAX];
	size_t n_cache;
	struct server_store_counters counters;
	/* sqlite's own sentence for the last failure ("disk I/O error", "database is locked"),
	 * carried up to the agent by server_store_strerror instead of printed here */
	char errmsg[256];
	char sentence[SERVER_WHY_MAX];
	/* bulk work (sq_bulk): the log's frames after the last commit, and how many it may
	 * hold before bulk_checkpoint copies it into the database */
	int wal_frames, wal_limit;
	/* the log's size on disk after a bulk, and how much of it each step cuts (sq_bulk_end;
	 * tests set them small), and the steps that cut it */
	long long wal_kept, wal_step;
	unsigned wal_cut_steps;
	/* how long a statement waits for the write lock (sq_busy_wait), and since when */
	int busy_ms;
	double busy_since;
};

/* The SERVER_ERR_* for a sqlite result code, keeping sqlite's message of a failure. */
int sq_err(struct sq *q, int rc);
/* Keep a sentence of our own as the last failure's cause. */
void sq_fail(struct sq *q, const char *msg);
/* Prepare a one-off statement (the caller finalizes it, sq_run does). */
int sq_prep(struct sq *q, sqlite3_stmt **st, const char *sql);
/* The connection's prepared statement for `sql` (a static string), reset and unbound;
 * never finalized by the caller. */
int sq_cached(struct sq *q, sqlite3_stmt **st, const char *sql);
/* sqlite3_step, counted. */
int sq_step(struct sq *q, sqlite3_stmt *st);
/* Run a one-off statement to completion and finalize it: 0, or EXISTS on a constraint. */
int sq_run(struct sq *q, sqlite3_stmt *st);
/* Run a cached statement to completion (it is reset, not finalized). */
int sq_run_cached(struct sq *q, sqlite3_stmt *st);
int sq_exec(struct sq *q, const char *sql);
/* The first column of the single row of a one-off statement (finalized). */
int sq_one_int64(struct sq *q, sqlite3_stmt *st, int64_t *out);
void sq_copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col);
/* Bind a blob and count its bytes as written. */
void sq_bind_blob_counted(struct sq *q, sqlite3_stmt *st, int at, const void *data, size_t len);

/* Every list row of a sector when no import is under way, from one scan of each table
 * (store_sqlite_rows.c); *declined when the pass ids are too sparse for it, and the caller
 * reads them with the SQL join. */
int sq_list_rows_scanned(struct sq *q, uint16_t sector, const struct server_periods *now,
                         int (*each)(void *arg, const struct server_list_row *r), void *arg,
                         int *declined);

#define PROFILE_COLS "product, valid_from, valid_to, lim, period, scope, fare, flags"
void sq_bind_profile(sqlite3_stmt *st, int at, const struct proto_rights_profile *p);
void sq_profile_from_row(sqlite3_stmt *st, int at, struct proto_rights_profile *p);

/* Schema version 2, as databases made before format 2 hold it (new databases are made
 * with it, then migrated; tests build one to check the migration). */
extern const char sq_schema_v2_sql[];

/* Schema 2 -> 3 (lists in format 2, the change log): run inside the migration's
 * transaction. */
extern const char sq_schema_v3_sql[];
extern const char sq_schema_v5_sql[];
/* Schema 7 -> 8: list files' ends in a table of their own. */
extern const char sq_schema_v8_sql[];
extern const char sq_schema_v9_sql[];

/* store_sqlite_lists.c: the list ops of the store */
int sq_profiles(void *ctx, uint16_t sector, struct proto_rights_profile **out, size_t *n);
int sq_profile_add(void *ctx, uint16_t sector, uint16_t index,
                   const struct proto_rights_profile *p);
int sq_list_rows(void *ctx, uint16_t sector, const struct server_periods *now,
                 int (*each)(void *arg, const struct server_list_row *r), void *arg);
int sq_list_row(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                const struct server_periods *now, struct server_list_row *out);
int sq_list_changes(void *ctx, uint16_t sector, int64_t *upto, uint8_t (**keys)[PROTO_LIST_KEY_LEN],
                    size_t *n);
int sq_list_changes_trim(void *ctx, uint16_t sector, int64_t upto, unsigned max, unsigned *deleted);
int sq_consumption_expire(void *ctx, uint16_t sector, const struct server_periods *now);
int sq_consumption_rekey(void *ctx, uint16_t sector, const uint8_t from[PROTO_LIST_KEY_LEN],
                         const uint8_t to[PROTO_LIST_KEY_LEN]);
int sq_consumption_retire(void *ctx, uint16_t sector, int64_t before, uint64_t *n);
/* store_sqlite_holder.c: a holder's access and erasure requests (issue 17) */
int sq_uses_of_key(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                   int (*fn)(void *arg, const struct server_use *u), void *arg);
int sq_household_name(void *ctx, int64_t id, char *out, size_t cap);
int sq_pass_erase(void *ctx, int64_t pass, int *household_gone);
int sq_erase_flush(void *ctx);
int sq_list_latest(void *ctx, uint16_t sector, uint64_t *version);
int sq_list_published(void *ctx, uint16_t sector, uint64_t *version);
int sq_list_version_get(void *ctx, uint16_t sector, uint64_t version,
                        struct server_list_version *out);
int sq_list_version_put(void *ctx, uint16_t sector, const struct server_list_version *v);
int sq_list_file_get(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     uint8_t **data, size_t *len);
int sq_list_file_put(void *ctx, uint16_t sector, uint32_t chunk, uint64_t since, int idx,
                     const uint8_t *data, size_t len);
int sq_list_files_retire(void *ctx, uint16_t sector, int64_t chunk, uint64_t version);
int sq_delta_get(void *ctx, uint16_t sector, uint64_t base, struct server_stored_list *out);
int sq_delta_put(void *ctx, uint16_t sector, uint64_t base, const struct server_stored_list *d);
int sq_list_prune(void *ctx, uint16_t sector, unsigned keep);
int sq_list_files_prune(void *ctx, uint16_t sector, unsigned max, unsigned *deleted);
int sq_meta_set(void *ctx, const char *key, const char *value);
int sq_import_open(void *ctx, const uint8_t sha256[32], int64_t now, int64_t *id, uint64_t *lines,
                   int *done);
int sq_import_progress(void *ctx, int64_t id, uint64_t lines);
int sq_import_key_get(void *ctx, int64_t id, const uint8_t key[32], int64_t *pass);
int sq_import_key_add(void *ctx, const uint8_t key[32], int64_t pass);
int sq_import_done(void *ctx, int64_t id, const uint16_t *rebuild, size_t n);

#endif
