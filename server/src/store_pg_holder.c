/*
 * store_pg_holder.c — the store ops behind a holder's access and erasure requests on the
 * PostgreSQL store (issue 17's ops, server/holder.h; issue 16): the uses kept under a list
 * key, a household's name, erasing a pass with everything kept about it, and the clean-up
 * after the commit. The same statements as the sqlite store's (store_sqlite_holder.c);
 * what differs is what "no copy left" can mean, said at pg_erase_flush.
 */
#include <stdio.h>
#include <string.h>

#include "server/passes.h"
#include "store_pg_internal.h"

int pg_uses_of_key(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                   int (*fn)(void *arg, const struct server_use *u), void *arg)
{
	static const char sql[] =
	        "SELECT product, count, period, device, stored_at FROM consumption"
	        " WHERE sector = $1 AND pseudonym = $2 ORDER BY period, stored_at, device, seq";
	struct pg_params p;
	PGresult *r;
	pgp_init(&p);
	pgp_i64(&p, sector);
	pgp_blob(&p, key, PROTO_LIST_KEY_LEN);
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		struct server_use u;
		memset(&u, 0, sizeof(u));
		u.sector = sector;
		u.product = (uint32_t)pg_i64(r, i, 0);
		u.count = (uint32_t)pg_i64(r, i, 1);
		u.period = pg_i64(r, i, 2);
		pg_copy_text(u.device, sizeof(u.device), r, i, 3);
		u.stored_at = pg_i64(r, i, 4);
		rc = fn(arg, &u);
	}
	PQclear(r);
	return rc;
}

int pg_household_name(void *ctx, int64_t id, char *out, size_t cap)
{
	static const char sql[] = "SELECT name FROM households WHERE id = $1";
	struct pg_params p;
	PGresult *r;
	pgp_init(&p);
	pgp_i64(&p, id);
	int rc = pg_query(ctx, sql, &p, &r);
	if (rc)
		return rc;
	if (PQntuples(r) < 1)
		rc = SERVER_ERR_NOT_FOUND;
	else
		pg_copy_text(out, cap, r, 0, 0);
	PQclear(r);
	return rc;
}

/* Each statement its own static string: pg_query prepares them once per connection. */
static const char erase_uses[] =
        "DELETE FROM consumption c USING pass_ids i WHERE i.pass = $1 AND i.sector = c.sector"
        " AND i.listkey = c.pseudonym";
static const char erase_rights[] = "DELETE FROM rights WHERE pass = $1";
static const char erase_ids[] = "DELETE FROM pass_ids WHERE pass = $1";
static const char erase_imports[] = "DELETE FROM pass_imports WHERE pass = $1";
static const char erase_replaced[] = "UPDATE passes SET replaced_by = NULL WHERE replaced_by = $1";
static const char erase_pass[] = "DELETE FROM passes WHERE id = $1";
static const char erase_tags[] = "DELETE FROM household_tags WHERE household = $1";
static const char erase_household[] = "DELETE FROM households WHERE id = $1";

static int run_bound(struct pg *q, const char *sql, int64_t a)
{
	struct pg_params p;
	pgp_init(&p);
	pgp_i64(&p, a);
	return pg_query(q, sql, &p, NULL);
}

int pg_pass_erase(void *ctx, int64_t pass, int *household_gone)
{
	struct pg *q = ctx;
	struct pg_params p;
	int64_t household = 0, left = 0;
	*household_gone = 0;
	/* locked as every pass changed in a write transaction is (store_pg.c): an agent
	 * renewing it at the same moment waits, then finds it gone */
	static const char get[] = "SELECT COALESCE(household, 0) FROM passes WHERE id = $1"
	                          " FOR UPDATE";
	pgp_init(&p);
	pgp_i64(&p, pass);
	int rc = pg_one_i64(q, get, &p, &household);
	static const char *const steps[] = {erase_uses,    erase_rights,   erase_ids,
	                                    erase_imports, erase_replaced, erase_pass};
	for (size_t i = 0; rc == 0 && i < sizeof(steps) / sizeof(steps[0]); i++)
		rc = run_bound(q, steps[i], pass);
	if (rc == 0 && household) {
		static const char count[] = "SELECT count(*) FROM passes WHERE household = $1";
		pgp_init(&p);
		pgp_i64(&p, household);
		rc = pg_one_i64(q, count, &p, &left);
		if (rc == 0 && left == 0) {
			rc = run_bound(q, erase_tags, household);
			if (rc == 0)
				rc = run_bound(q, erase_household, household);
			*household_gone = rc == 0;
		}
	}
	return rc;
}

/*
 * After the commit. PostgreSQL keeps a deleted row's bytes in its table's page until
 * VACUUM removes it (and index entries pointing to it): VACUUM, outside any transaction,
 * on the tables the erasure deleted from and on those the rebuilt list replaced. It
 * removes what no open transaction still sees (the servers' transactions are short). What
 * PostgreSQL keeps of its own — the write-ahead log until it recycles its segments, its
 * archive, standbys and base backups — is the database administrator's (docs/postgresql.md
 * says so): the sqlite store's secure_delete and checkpoint have no equivalent here.
 */
int pg_erase_flush(void *ctx)
{
	return pg_exec(ctx, "VACUUM consumption, rights, pass_ids, pass_imports, passes,"
	                    " household_tags, households, list_log, list_versions, list_files,"
	                    " deltas");
}

/*
 * Schema 7's folded names, filled in chunks: each a keyset read of MIGRATE_CHUNK passes
 * and one UPDATE from two unnest()ed arrays (ids, folded names in hex, so nothing in a
 * name needs quoting), not one round trip per pass — the migration runs at the first
 * start of the release, within systemd's start timeout, and must not take minutes for
 * millions of passes.
 */
#define MIGRATE_CHUNK 1000

int pg_migrate_6_to_7(struct pg *q)
{
	static const char read_sql[] =
	        "SELECT id, holder FROM passes WHERE id > $1 ORDER BY id LIMIT $2";
	static const char set_sql[] =
	        "UPDATE passes p SET holder_key = convert_from(decode(u.k, 'hex'), 'UTF8')"
	        " FROM unnest($1::bigint[], $2::text[]) AS u(id, k) WHERE p.id = u.id";
	int rc = pg_exec(q, "ALTER TABLE passes ADD COLUMN holder_key TEXT NOT NULL DEFAULT ''");
	int64_t after = 0;
	for (int rows = MIGRATE_CHUNK; rc == 0 && rows == MIGRATE_CHUNK;) {
		PGresult *r = NULL;
		struct pg_params p;
		struct pg_array col[2]; /* ids, folded names */
		memset(col, 0, sizeof(col));
		pgp_init(&p);
		pgp_i64(&p, after);
		pgp_i64(&p, MIGRATE_CHUNK);
		rc = pg_query(q, read_sql, &p, &r);
		rows = rc ? 0 : PQntuples(r);
		for (int i = 0; i < rows; i++) {
			char holder[SERVER_TEXT_MAX], key[SERVER_TEXT_MAX * 2];
			after = pg_i64(r, i, 0);
			pg_copy_text(holder, sizeof(holder), r, i, 1);
			server_text_fold(holder, key, sizeof(key));
			pg_arr_i64(&col[0], after);
			pg_arr_hex(&col[1], key, strlen(key));
		}
		PQclear(r);
		if (rc == 0 && rows > 0) {
			pgp_init(&p);
			if ((rc = pg_arr_params(&p, col, 2)) == 0)
				rc = pg_query(q, set_sql, &p, NULL);
		}
		pg_arr_free(col, 2);
	}
	return rc;
}
