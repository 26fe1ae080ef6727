/*
 * test_office_accounts — the back office's accounts, sessions and audit log
 * (office/accounts.h) and its form and cookie decoders (office/form.h), as a library:
 * Argon2id hashes in the encoded form of RFC 9106 with OWASP's floor of costs, never the
 * password; a wrong password and an unknown login refused alike; the lock-out after
 * OFFICE_LOCK_AFTER failures, even for the right password, and its end; a session found by
 * its token only (not by its stored hash), gone after logout and after its idle limit;
 * CSRF comparison; the audit log refusing UPDATE and DELETE; and the decoders' refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "office/accounts.h"
#include "office/form.h"

#define T0 1780000000

struct fx {
	char dir[64];
	struct office_db *db;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct server_why why;
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/citypass-office-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(office_db_open(&f->db, f->dir, &why), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[128];
	office_db_close(f->db);
	static const char *const files[] = {"office.db", "office.db-wal", "office.db-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static sqlite3 *raw(struct fx *f)
{
	char p[128];
	sqlite3 *db;
	snprintf(p, sizeof(p), "%s/office.db", f->dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	return db;
}

static void test_password_hash(void **state)
{
	struct fx *f = *state;
	struct server_why why;
	uint16_t pool = 1;
	assert_int_equal(office_account_add(f->db, "agent-piscine", "correct horse battery",
	                                    OFFICE_ROLE_AGENT, &pool, 1, T0, &why),
	                 0);
	sqlite3 *db = raw(f);
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT hash FROM account", -1, &s, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	const char *h = (const char *)sqlite3_column_text(s, 0);
	/* RFC 9106's encoding, Argon2 version 0x13, OWASP's minimum costs */
	assert_memory_equal(h, "$argon2id$v=19$m=19456,t=2,p=1$", 31);
	assert_null(strstr(h, "correct horse"));
	sqlite3_finalize(s);
	sqlite3_close(db);
	/* refusals: login, password length, agent without sector, twice the same login */
	assert_int_equal(office_account_add(f->db, "bad login", "0123456789", OFFICE_ROLE_ADMIN,
	                                    NULL, 0, T0, &why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(office_account_add(f->db, "short", "012345678", OFFICE_ROLE_ADMIN, NULL, 0,
	                                    T0, &why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(office_account_add(f->db, "nosector", "0123456789", OFFICE_ROLE_AGENT,
	                                    NULL, 0, T0, &why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(office_account_add(f->db, "agent-piscine", "0123456789", OFFICE_ROLE_ADMIN,
	                                    NULL, 0, T0, &why),
	                 SERVER_ERR_EXISTS);
}

static void test_login_lockout_session(void **state)
{
	struct fx *f = *state;
	struct server_why why, why2;
	struct office_session s, found;
	int known, locked;
	uint16_t sec[2] = {1, 2};
	assert_int_equal(office_account_add(f->db, "agent", "the right password", OFFICE_ROLE_AGENT,
	                                    sec, 2, T0, &why),
	                 0);
	/* unknown login and wrong password: the same refusal */
	assert_int_equal(office_login(f->db, "nobody", "x", T0, &s, &known, &locked, &why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(known, 0);
	assert_int_equal(office_login(f->db, "agent", "wrong", T0, &s, &known, &locked, &why2),
	                 SERVER_ERR_INVALID);
	assert_int_equal(known, 1);
	assert_string_equal(why.text, why2.text);
	/* a success resets the count */
	assert_int_equal(
	        office_login(f->db, "agent", "the right password", T0, &s, &known, &locked, &why),
	        0);
	assert_int_equal(s.acct.n_sectors, 2);
	assert_true(office_account_has_sector(&s.acct, 2));
	assert_false(office_account_has_sector(&s.acct, 3));
	for (int i = 1; i <= OFFICE_LOCK_AFTER; i++) {
		assert_int_equal(
		        office_login(f->db, "agent", "wrong", T0 + i, &s, &known, &locked, &why),
		        SERVER_ERR_INVALID);
		assert_int_equal(locked, i == OFFICE_LOCK_AFTER);
	}
	assert_int_equal(office_login(f->db, "agent", "the right password", T0 + 10, &s, &known,
	                              &locked, &why),
	                 SERVER_ERR_STATE);
	assert_non_null(strstr(why.text, "verrouillé"));
	/* the lock ends by itself */
	assert_int_equal(office_login(f->db, "agent", "the right password",
	                              T0 + OFFICE_LOCK_AFTER + OFFICE_LOCK_SECONDS + 1, &s, &known,
	                              &locked, &why),
	                 0);
	int64_t now = T0 + OFFICE_LOCK_AFTER + OFFICE_LOCK_SECONDS + 1;
	assert_int_equal(strlen(s.token), OFFICE_TOKEN_HEX);
	assert_int_equal(office_session_find(f->db, s.token, now + 60, &found), 0);
	assert_string_equal(found.csrf, s.csrf);
	assert_string_equal(found.acct.login, "agent");
	/* the database keeps the token's hash: the hash itself opens nothing */
	sqlite3 *db = raw(f);
	sqlite3_stmt *st;
	assert_int_equal(
	        sqlite3_prepare_v2(db, "SELECT hex(token_hash) FROM session", -1, &st, NULL),
	        SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char lower[65];
		const char *hx = (const char *)sqlite3_column_text(st, 0);
		for (size_t i = 0; i < 64 && hx[i]; i++)
			lower[i] = (char)(hx[i] >= 'A' && hx[i] <= 'F' ? hx[i] + 32 : hx[i]);
		lower[64] = 0;
		assert_int_not_equal(office_session_find(f->db, lower, now + 60, &found), 0);
		assert_int_not_equal(strcmp(lower, s.token), 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* idle too long: gone; and after logout: gone */
	assert_int_equal(
	        office_session_find(f->db, s.token, now + 60 + OFFICE_SESSION_IDLE + 1, &found),
	        SERVER_ERR_NOT_FOUND);
	assert_int_equal(
	        office_login(f->db, "agent", "the right password", now, &s, &known, &locked, &why),
	        0);
	assert_int_equal(office_session_end(f->db, s.token), 0);
	assert_int_equal(office_session_find(f->db, s.token, now, &found), SERVER_ERR_NOT_FOUND);
	assert_int_equal(office_session_find(f->db, "short", now, &found), SERVER_ERR_NOT_FOUND);
}

/* An administrator's changes: an agent who left is disabled (sessions end, the right
 * password opens nothing, enable brings it back), a lock-out lifted before its time, a new
 * password ending the old sessions, the last enabled administrator kept. */
static void test_account_changes(void **state)
{
	struct fx *f = *state;
	struct server_why why;
	struct office_session s, s2, found;
	struct office_account a;
	int known, locked;
	uint16_t pool = 1;
	assert_int_equal(office_account_add(f->db, "chef", "administrator pw", OFFICE_ROLE_ADMIN,
	                                    NULL, 0, T0, &why),
	                 0);
	assert_int_equal(office_account_add(f->db, "agent", "the right password", OFFICE_ROLE_AGENT,
	                                    &pool, 1, T0, &why),
	                 0);
	assert_int_equal(
	        office_login(f->db, "agent", "the right password", T0, &s, &known, &locked, &why),
	        0);
	/* disabled: its session ends at once, the right password is refused with a sentence */
	assert_int_equal(office_account_change(f->db, "agent", OFFICE_ACCOUNT_DISABLE, &why), 0);
	assert_int_equal(office_session_find(f->db, s.token, T0 + 1, &found), SERVER_ERR_NOT_FOUND);
	sqlite3 *db = raw(f);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM session", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0); /* the rows gone, not only unused */
	sqlite3_finalize(st);
	assert_int_equal(office_login(f->db, "agent", "the right password", T0 + 2, &s, &known,
	                              &locked, &why),
	                 SERVER_ERR_STATE);
	assert_non_null(strstr(why.text, "désactivé"));
	/* a wrong password learns nothing of it: the usual refusal */
	assert_int_equal(office_login(f->db, "agent", "wrong", T0 + 2, &s, &known, &locked, &why),
	                 SERVER_ERR_INVALID);
	assert_null(strstr(why.text, "désactivé"));
	assert_int_equal(office_account_find(f->db, "agent", &a), 0);
	assert_int_equal(a.disabled, 1);
	assert_int_equal(office_account_change(f->db, "agent", OFFICE_ACCOUNT_DISABLE, &why),
	                 SERVER_ERR_STATE);
	assert_int_equal(office_account_change(f->db, "agent", OFFICE_ACCOUNT_ENABLE, &why), 0);
	assert_int_equal(office_account_change(f->db, "agent", OFFICE_ACCOUNT_ENABLE, &why),
	                 SERVER_ERR_STATE);
	assert_int_equal(office_login(f->db, "agent", "the right password", T0 + 3, &s, &known,
	                              &locked, &why),
	                 0);
	/* a session made while enabled dies with a disable even if its row were left: the
	 * lookup itself refuses a disabled account's session */
	assert_int_equal(sqlite3_exec(db, "UPDATE account SET disabled = 1 WHERE login = 'agent'",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(office_session_find(f->db, s.token, T0 + 4, &found), SERVER_ERR_NOT_FOUND);
	assert_int_equal(sqlite3_exec(db, "UPDATE account SET disabled = 0 WHERE login = 'agent'",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	/* locked by wrong passwords, unlocked by an administrator before the 15 minutes */
	for (int i = 0; i < OFFICE_LOCK_AFTER; i++)
		office_login(f->db, "agent", "wrong", T0 + 5, &s2, &known, &locked, &why);
	assert_int_equal(office_login(f->db, "agent", "the right password", T0 + 6, &s2, &known,
	                              &locked, &why),
	                 SERVER_ERR_STATE);
	assert_int_equal(office_account_change(f->db, "agent", OFFICE_ACCOUNT_UNLOCK, &why), 0);
	assert_int_equal(office_login(f->db, "agent", "the right password", T0 + 7, &s2, &known,
	                              &locked, &why),
	                 0);
	/* a new password: the old one and every session of the account are gone */
	assert_int_equal(office_account_password(f->db, "agent", "short", &why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(office_account_password(f->db, "agent", "a brand new password", &why), 0);
	assert_int_equal(office_session_find(f->db, s2.token, T0 + 8, &found),
	                 SERVER_ERR_NOT_FOUND);
	assert_int_equal(office_login(f->db, "agent", "the right password", T0 + 8, &s2, &known,
	                              &locked, &why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(office_login(f->db, "agent", "a brand new password", T0 + 9, &s2, &known,
	                              &locked, &why),
	                 0);
	/* the last enabled administrator stays; with a second one it may go */
	assert_int_equal(office_account_change(f->db, "chef", OFFICE_ACCOUNT_DISABLE, &why),
	                 SERVER_ERR_STATE);
	assert_non_null(strstr(why.text, "dernier administrateur"));
	assert_int_equal(office_account_add(f->db, "chef2", "administrator pw", OFFICE_ROLE_ADMIN,
	                                    NULL, 0, T0, &why),
	                 0);
	assert_int_equal(office_account_change(f->db, "chef", OFFICE_ACCOUNT_DISABLE, &why), 0);
	assert_int_equal(office_account_change(f->db, "chef2", OFFICE_ACCOUNT_DISABLE, &why),
	                 SERVER_ERR_STATE);
	/* unknown login */
	assert_int_equal(office_account_change(f->db, "nobody", OFFICE_ACCOUNT_UNLOCK, &why),
	                 SERVER_ERR_NOT_FOUND);
	assert_int_equal(office_account_password(f->db, "nobody", "0123456789", &why),
	                 SERVER_ERR_NOT_FOUND);
}

/* An office.db made before accounts could be disabled opens, its accounts enabled. */
static void test_office_db_before_disable(void **state)
{
	struct fx *f = *state;
	struct server_why why;
	struct office_account a;
	office_db_close(f->db);
	f->db = NULL;
	char p[128];
	snprintf(p, sizeof(p), "%s/office.db", f->dir);
	unlink(p);
	sqlite3 *db = raw(f);
	assert_int_equal(
	        sqlite3_exec(db,
	                     "CREATE TABLE account(id INTEGER PRIMARY KEY, login TEXT UNIQUE NOT "
	                     "NULL, hash TEXT NOT NULL, role INTEGER NOT NULL, sectors TEXT NOT "
	                     "NULL, failures INTEGER NOT NULL DEFAULT 0, locked_until INTEGER NOT "
	                     "NULL DEFAULT 0, created INTEGER NOT NULL);"
	                     "INSERT INTO account(login, hash, role, sectors, created) VALUES "
	                     "('old', 'x', 2, '', 1);",
	                     NULL, NULL, NULL),
	        SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(office_db_open(&f->db, f->dir, &why), 0);
	assert_int_equal(office_account_find(f->db, "old", &a), 0);
	assert_int_equal(a.disabled, 0);
	assert_int_equal(office_account_add(f->db, "new-one", "administrator pw", OFFICE_ROLE_ADMIN,
	                                    NULL, 0, T0, &why),
	                 0);
	assert_int_equal(office_account_change(f->db, "old", OFFICE_ACCOUNT_DISABLE, &why), 0);
}

static void test_csrf_compare(void **state)
{
	(void)state;
	char a[OFFICE_TOKEN_HEX + 1], b[OFFICE_TOKEN_HEX + 1];
	assert_int_equal(office_token_new(a), 0);
	assert_int_equal(office_token_new(b), 0);
	assert_int_not_equal(strcmp(a, b), 0);
	assert_true(office_token_equal(a, a));
	assert_false(office_token_equal(b, a));
	assert_false(office_token_equal("", a));
	assert_false(office_token_equal("", ""));
	char shorter[OFFICE_TOKEN_HEX + 1];
	memcpy(shorter, a, OFFICE_TOKEN_HEX);
	shorter[OFFICE_TOKEN_HEX - 1] = 0;
	assert_false(office_token_equal(shorter, a));
	char longer[OFFICE_TOKEN_HEX + 2];
	snprintf(longer, sizeof(longer), "%s0", a);
	assert_false(office_token_equal(longer, a));
}

static int count_entry(void *arg, const struct office_audit_entry *e)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}

static void test_audit_append_only(void **state)
{
	struct fx *f = *state;
	assert_int_equal(office_audit(f->db, T0, "agent", "révocation", 12, "pool", 1, "perdue"),
	                 0);
	assert_int_equal(office_audit(f->db, T0 + 1, "agent", "droit accordé", 12, "pool", 0, ""),
	                 0);
	int n = 0;
	assert_int_equal(office_audit_each(f->db, 0, count_entry, &n), 0);
	assert_int_equal(n, 2);
	sqlite3 *db = raw(f);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET pass = 13", NULL, NULL, NULL),
	                     SQLITE_OK);
	sqlite3_close(db);
	n = 0;
	assert_int_equal(office_audit_each(f->db, 0, count_entry, &n), 0);
	assert_int_equal(n, 2);
}

static void test_form_decoder(void **state)
{
	(void)state;
	struct office_form f;
	const char *t = "a=1&b=caf%C3%A9+cr%C3%A8me&&c&=e&a=2";
	assert_int_equal(office_form_parse(t, strlen(t), &f), 0);
	assert_string_equal(office_form_get(&f, "a"), "1");
	assert_string_equal(office_form_get(&f, "b"), "café crème");
	assert_string_equal(office_form_get(&f, "c"), "");
	assert_null(office_form_get(&f, "d"));
	office_form_free(&f);
	static const char *const bad[] = {"a=%",   "a=%4",        "a=%zz", "a=%00",   "a=%ff",
	                                  "a=%C3", "a=%ED%A0%80", "a=%01", "%C0%AF=x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(office_form_parse(bad[i], strlen(bad[i]), &f), 0);
		assert_int_equal(f.n, 0);
	}
	char many[OFFICE_FORM_FIELDS * 4 + 8] = "";
	for (int i = 0; i <= OFFICE_FORM_FIELDS; i++)
		strcat(many, "x=1&");
	assert_int_equal(office_form_parse(many, strlen(many), &f), OFFICE_FORM_TOO_MANY);
	char *big = malloc(OFFICE_FORM_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', OFFICE_FORM_MAX + 1);
	assert_int_equal(office_form_parse(big, OFFICE_FORM_MAX + 1, &f), OFFICE_FORM_TOO_LONG);
	free(big);
}

static void test_cookie_reader(void **state)
{
	(void)state;
	char v[80];
	assert_int_equal(office_cookie_get("a=1; citypass_session=abc; b=2", "citypass_session", v,
	                                   sizeof(v)),
	                 0);
	assert_string_equal(v, "abc");
	assert_int_equal(
	        office_cookie_get("xcitypass_session=abc", "citypass_session", v, sizeof(v)), -1);
	assert_int_equal(
	        office_cookie_get("citypass_session=\"q\"", "citypass_session", v, sizeof(v)), 0);
	assert_string_equal(v, "q");
	/* a value with a byte RFC 6265 forbids is skipped, the next one read */
	assert_int_equal(office_cookie_get("s=a\\b; s=ok", "s", v, sizeof(v)), 0);
	assert_string_equal(v, "ok");
	assert_int_equal(office_cookie_get(NULL, "s", v, sizeof(v)), -1);
	assert_int_equal(office_cookie_get("s=0123456789", "s", v, 5), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_password_hash, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_login_lockout_session, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_account_changes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_office_db_before_disable, setup, teardown),
	        cmocka_unit_test(test_csrf_compare),
	        cmocka_unit_test_setup_teardown(test_audit_append_only, setup, teardown),
	        cmocka_unit_test(test_form_decoder),
	        cmocka_unit_test(test_cookie_reader),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
