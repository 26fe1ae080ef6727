/*
 * office/accounts.h — who may use the back office, their sessions, and the audit log
 * (docs/office.md, "Accounts"). All of it lives in DATA/office.db, a sqlite file of its own
 * beside the deployment's store: the rights database may be PostgreSQL shared by several
 * servers (DESIGN §11), and an agent's password hash has nothing to do in it, nor in its
 * backups that gates' lists are rebuilt from.
 *
 * Passwords: Argon2id (libargon2, RFC 9106), the encoded form keeps its salt and costs, so
 * costs can rise later without a migration. Sessions: a random 256-bit token in the cookie,
 * only its SHA-256 in the database (a copy of office.db opens no session); a CSRF token per
 * session. Lock-out: OFFICE_LOCK_AFTER failures in a row lock the account for
 * OFFICE_LOCK_SECONDS, even for the right password. The audit log is append-only: triggers
 * refuse UPDATE and DELETE on it.
 *
 * Functions return 0 or a negative SERVER_ERR_* with, where they take one, a French
 * sentence in *why.
 */
#ifndef OFFICE_ACCOUNTS_H
#define OFFICE_ACCOUNTS_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"
#include "server/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OFFICE_DB_FILE      "office.db"
#define OFFICE_LOGIN_MAX    64
#define OFFICE_TOKEN_HEX    64 /* 32 random bytes, hex */
#define OFFICE_SECTORS_MAX  8
#define OFFICE_LOCK_AFTER   5
#define OFFICE_LOCK_SECONDS (15 * 60)
#define OFFICE_SESSION_IDLE (30 * 60)
#define OFFICE_SESSION_MAX  (12 * 3600)
#define OFFICE_PASSWORD_MIN 10
#define OFFICE_PASSWORD_MAX 256

enum office_role {
	OFFICE_ROLE_AGENT = 1, /* the sectors listed only */
	OFFICE_ROLE_ADMIN = 2, /* every sector, the audit log, the manager's pages */
};

struct office_account {
	int64_t id;
	char login[OFFICE_LOGIN_MAX];
	int role;
	size_t n_sectors;
	uint16_t sectors[OFFICE_SECTORS_MAX]; /* an agent's sectors (numbers) */
	int64_t locked_until;
	int disabled; /* logs in no more, its sessions ended (an agent who left) */
};

struct office_session {
	char token[OFFICE_TOKEN_HEX + 1]; /* what the cookie carries (set by office_login only) */
	char csrf[OFFICE_TOKEN_HEX + 1];
	int64_t started;
	struct office_account acct;
};

struct office_db;

int office_db_open(struct office_db **out, const char *data_dir, struct server_why *why);
void office_db_close(struct office_db *db);

/* 1 when a login is one agents can type: as server_name_ok (letters, digits, - _ .). */
int office_login_ok(const char *login);
/* "admin" / "agent" and back (-1). */
const char *office_role_name(int role);
int office_role_parse(const char *s);

/* A new account (EXISTS, INVALID: login, password length, an agent without sector). */
int office_account_add(struct office_db *db, const char *login, const char *password, int role,
                       const uint16_t *sectors, size_t n_sectors, int64_t now,
                       struct server_why *why);
int office_account_each(struct office_db *db, int (*fn)(void *arg, const struct office_account *a),
                        void *arg);
/*
 * What an administrator changes on an account (`citypass-office account ...` and the
 * /comptes page). Each returns 0, NOT_FOUND (no such login), or STATE with *why:
 *  - disable: it logs in no more and its sessions end at once; the last enabled
 *    administrator cannot be disabled (nobody could enable anyone again from the web);
 *  - enable: it may log in again, its failures and lock forgotten;
 *  - unlock: a lock-out lifted before its 15 minutes.
 * A new password (INVALID: length) also lifts the lock and ends the account's sessions,
 * so a password someone else learnt opens nothing any more.
 */
enum office_account_change {
	OFFICE_ACCOUNT_DISABLE = 1,
	OFFICE_ACCOUNT_ENABLE,
	OFFICE_ACCOUNT_UNLOCK,
};
int office_account_change(struct office_db *db, const char *login, int change,
                          struct server_why *why);
int office_account_password(struct office_db *db, const char *login, const char *password,
                            struct server_why *why);
/* The account of `login`: 0, or NOT_FOUND. */
int office_account_find(struct office_db *db, const char *login, struct office_account *out);

/* 1 when the account may see and change sector `sector`. */
int office_account_has_sector(const struct office_account *a, uint16_t sector);

/*
 * Log in: the account's lock-out checked first, then the password (an unknown login costs
 * the same Argon2id verification, so timing does not tell logins apart). 0 and a new
 * session in *out; SERVER_ERR_INVALID (unknown login or wrong password: one sentence for
 * both), SERVER_ERR_STATE (locked: *why says until when). *known: the login is an account's
 * (the audit names it only then); *locked_now: this failure locked the account.
 */
int office_login(struct office_db *db, const char *login, const char *password, int64_t now,
                 struct office_session *out, int *known, int *locked_now, struct server_why *why);
/* The live session of a cookie's token (idle and absolute limits), its last use moved to
 * now: 0, or SERVER_ERR_NOT_FOUND. */
int office_session_find(struct office_db *db, const char *token, int64_t now,
                        struct office_session *out);
/* Log out: the session is deleted, its cookie opens nothing any more. */
int office_session_end(struct office_db *db, const char *token);

/* Equal strings, in time independent of where they differ (CSRF tokens). */
int office_token_equal(const char *a, const char *b);
/* A fresh random token (OFFICE_TOKEN_HEX hex digits): 0, or -1 when the kernel has no
 * randomness to give. */
int office_token_new(char out[OFFICE_TOKEN_HEX + 1]);

/* --- the audit log --------------------------------------------------------------------- */

struct office_audit_entry {
	int64_t id, at;
	char login[OFFICE_LOGIN_MAX];
	char action[64]; /* "révocation", "connexion", ... */
	int64_t pass;    /* 0: none */
	char sector[SERVER_NAME_MAX];
	char outcome[16]; /* "fait" or "refusé" */
	char detail[SERVER_TEXT_MAX];
};

/* Append one entry (NULL strings are empty). No holder names: the pass number says which. */
int office_audit(struct office_db *db, int64_t now, const char *login, const char *action,
                 int64_t pass, const char *sector, int done, const char *detail);
/* Newest first, at most `limit` (0: all). */
int office_audit_each(struct office_db *db, size_t limit,
                      int (*fn)(void *arg, const struct office_audit_entry *e), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* OFFICE_ACCOUNTS_H */
