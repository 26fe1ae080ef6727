/*
 * store_sqlite_holder.c — the store ops behind a holder's access and erasure requests
 * (issue 17, server/holder.h): the uses kept under a list key, a household's name, erasing
 * a pass with everything kept about it, and making the deleted bytes unrecoverable.
 */
#include <stdio.h>
#include <string.h>

#include "store_sqlite_internal.h"

int sq_uses_of_key(void *ctx, uint16_t sector, const uint8_t key[PROTO_LIST_KEY_LEN],
                   int (*fn)(void *arg, const struct server_use *u), void *arg)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st,
	                 "SELECT product, count, period, device, stored_at FROM consumption"
	                 " WHERE sector = ?1 AND pseudonym = ?2 ORDER BY period, stored_at, device,"
	                 " seq");
	if (rc)
		return rc;
	sqlite3_bind_int(st, 1, sector);
	sqlite3_bind_blob(st, 2, key, PROTO_LIST_KEY_LEN, SQLITE_STATIC);
	while ((rc = sq_step(q, st)) == SQLITE_ROW) {
		struct server_use u;
		memset(&u, 0, sizeof(u));
		u.sector = sector;
		u.product = (uint32_t)sqlite3_column_int64(st, 0);
		u.count = (uint32_t)sqlite3_column_int64(st, 1);
		u.period = sqlite3_column_int64(st, 2);
		sq_copy_text(u.device, sizeof(u.device), st, 3);
		u.stored_at = sqlite3_column_int64(st, 4);
		if ((rc = fn(arg, &u)) != 0) {
			sqlite3_finalize(st);
			return rc;
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sq_err(q, rc);
}

int sq_household_name(void *ctx, int64_t id, char *out, size_t cap)
{
	struct sq *q = ctx;
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "SELECT name FROM households WHERE id = ?");
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	rc = sq_step(q, st);
	if (rc == SQLITE_ROW)
		sq_copy_text(out, cap, st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, rc);
}

static int run_bound(struct sq *q, const char *sql, int64_t a)
{
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, sql);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, a);
	return sq_run(q, st);
}

int sq_pass_erase(void *ctx, int64_t pass, int *household_gone)
{
	struct sq *q = ctx;
	int64_t household = 0;
	*household_gone = 0;
	/* what is deleted from now on is overwritten in the file, not only unlinked */
	int rc = sq_exec(q, "PRAGMA secure_delete = ON");
	sqlite3_stmt *st;
	if (rc == 0 && (rc = sq_prep(q, &st,
	                             "SELECT COALESCE(household, 0) FROM passes"
	                             " WHERE id = ?")) == 0) {
		sqlite3_bind_int64(st, 1, pass);
		int s = sq_step(q, st);
		if (s == SQLITE_ROW)
			household = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		rc = s == SQLITE_ROW ? 0 : s == SQLITE_DONE ? SERVER_ERR_NOT_FOUND : sq_err(q, s);
	}
	static const char *const steps[] = {
	        "DELETE FROM consumption WHERE EXISTS (SELECT 1 FROM pass_ids i WHERE i.pass = ?1"
	        " AND i.sector = consumption.sector AND i.listkey = consumption.pseudonym)",
	        "DELETE FROM rights WHERE pass = ?1",
	        "DELETE FROM pass_ids WHERE pass = ?1",
	        "DELETE FROM pass_imports WHERE pass = ?1",
	        "UPDATE passes SET replaced_by = NULL WHERE replaced_by = ?1",
	        "DELETE FROM passes WHERE id = ?1",
	};
	for (size_t i = 0; rc == 0 && i < sizeof(steps) / sizeof(steps[0]); i++)
		rc = run_bound(q, steps[i], pass);
	if (rc == 0 && household) {
		int64_t left = 0;
		if ((rc = sq_prep(q, &st, "SELECT count(*) FROM passes WHERE household = ?")) ==
		    0) {
			sqlite3_bind_int64(st, 1, household);
			rc = sq_one_int64(q, st, &left);
		}
		if (rc == 0 && left == 0) {
			rc = run_bound(q, "DELETE FROM household_tags WHERE household = ?1",
			               household);
			if (rc == 0)
				rc = run_bound(q, "DELETE FROM households WHERE id = ?1",
				               household);
			*household_gone = rc == 0;
		}
	}
	return rc;
}

int sq_erase_flush(void *ctx)
{
	struct sq *q = ctx;
	/* every page image of the write-ahead log copied into the database and the log
	 * emptied: the pages as they were before the erasure are nowhere any more */
	sqlite3_stmt *st;
	int rc = sq_prep(q, &st, "PRAGMA wal_checkpoint(TRUNCATE)");
	if (rc)
		return rc;
	int s = sq_step(q, st);
	int busy = s == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
	sqlite3_finalize(st);
	if (s != SQLITE_ROW)
		return sq_err(q, s);
	return busy ? SERVER_ERR_BUSY : 0;
}
