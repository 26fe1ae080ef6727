/*
 * accounts.c — accounts, sessions and the audit log in DATA/office.db (office/accounts.h).
 * Every statement binds its values: nothing typed reaches SQL text.
 */
#include <argon2.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mbedtls/sha256.h"
#include "office/accounts.h"
#include "server/passes.h"

/* OWASP's Argon2id floor (m = 19 MiB, t = 2, p = 1): about 50 ms on the bench machine, a
 * wait an agent does not notice and a guesser pays per try. */
#define ARGON_T    2
#define ARGON_M    19456
#define ARGON_P    1
#define ARGON_SALT 16
#define ARGON_HASH 32
#define ARGON_ENC  128

struct office_db {
	sqlite3 *db;
	char dummy[ARGON_ENC]; /* verified for unknown logins, so they cost the same */
};

static const char schema[] =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA foreign_keys=ON;"
        "CREATE TABLE IF NOT EXISTS account(id INTEGER PRIMARY KEY, login TEXT UNIQUE NOT NULL,"
        " hash TEXT NOT NULL, role INTEGER NOT NULL, sectors TEXT NOT NULL,"
        " failures INTEGER NOT NULL DEFAULT 0, locked_until INTEGER NOT NULL DEFAULT 0,"
        " created INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS session(token_hash BLOB PRIMARY KEY,"
        " account INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
        " csrf TEXT NOT NULL, started INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " at INTEGER NOT NULL, login TEXT NOT NULL, action TEXT NOT NULL, pass INTEGER NOT NULL,"
        " sector TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL);"
        "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN"
        " SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
        "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN"
        " SELECT RAISE(ABORT, 'the audit log is append-only'); END;";

static int db_fail(struct office_db *db, struct server_why *why, const char *what)
{
	return server_why_set(why, SERVER_ERR_IO, "%s : la base des comptes a échoué (%s)", what,
	                      db && db->db ? sqlite3_errmsg(db->db) : "pas de base");
}

static int hash_password(const char *pw, char out[ARGON_ENC])
{
	uint8_t salt[ARGON_SALT];
	if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
		return -1;
	return argon2id_hash_encoded(ARGON_T, ARGON_M, ARGON_P, pw, strlen(pw), salt, sizeof(salt),
	                             ARGON_HASH, out, ARGON_ENC) == ARGON2_OK
	               ? 0
	               : -1;
}

/* An office.db made before accounts could be disabled has no `disabled` column: add it
 * (every account enabled, as it was). */
static int add_disabled_column(struct office_db *db)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db,
	                       "SELECT 1 FROM pragma_table_info('account') "
	                       "WHERE name = 'disabled'",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	int st = sqlite3_step(s);
	sqlite3_finalize(s);
	if (st == SQLITE_ROW)
		return 0;
	if (st != SQLITE_DONE)
		return -1;
	return sqlite3_exec(db->db,
	                    "ALTER TABLE account ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0",
	                    NULL, NULL, NULL) == SQLITE_OK
	               ? 0
	               : -1;
}

int office_db_open(struct office_db **out, const char *data_dir, struct server_why *why)
{
	char path[4096];
	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/%s", data_dir, OFFICE_DB_FILE) >= (int)sizeof(path))
		return server_why_set(why, SERVER_ERR_ARG,
		                      "chemin du dossier de données trop long");
	struct office_db *db = calloc(1, sizeof(*db));
	if (!db)
		return server_why_set(why, SERVER_ERR_NOMEM, "mémoire insuffisante");
	/* the file holds password hashes: readable by the daemon's user only */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(db);
		return server_why_set(why, SERVER_ERR_IO, "impossible d'ouvrir %s : %s", path,
		                      strerror(errno));
	}
	close(fd);
	if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(db->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		int rc = db_fail(db, why, path);
		sqlite3_close(db->db);
		free(db);
		return rc;
	}
	if (add_disabled_column(db) != 0) {
		int rc = db_fail(db, why, path);
		sqlite3_close(db->db);
		free(db);
		return rc;
	}
	if (hash_password("citypass: no such account", db->dummy) != 0) {
		sqlite3_close(db->db);
		free(db);
		return server_why_set(why, SERVER_ERR_CRYPTO, "Argon2id ne répond pas");
	}
	*out = db;
	return 0;
}

void office_db_close(struct office_db *db)
{
	if (!db)
		return;
	sqlite3_close(db->db);
	free(db);
}

int office_login_ok(const char *login)
{
	return server_name_ok(login) && strlen(login) < OFFICE_LOGIN_MAX;
}

const char *office_role_name(int role)
{
	return role == OFFICE_ROLE_ADMIN ? "admin" : role == OFFICE_ROLE_AGENT ? "agent" : "?";
}

int office_role_parse(const char *s)
{
	if (strcmp(s, "admin") == 0)
		return OFFICE_ROLE_ADMIN;
	if (strcmp(s, "agent") == 0)
		return OFFICE_ROLE_AGENT;
	return -1;
}

int office_account_has_sector(const struct office_account *a, uint16_t sector)
{
	if (a->role == OFFICE_ROLE_ADMIN)
		return 1;
	for (size_t i = 0; i < a->n_sectors; i++)
		if (a->sectors[i] == sector)
			return 1;
	return 0;
}

static void sectors_text(const uint16_t *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = 0;
	for (size_t i = 0; i < n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%u", i ? "," : "", s[i]);
}

static void sectors_parse(const char *t, struct office_account *a)
{
	a->n_sectors = 0;
	while (t && *t && a->n_sectors < OFFICE_SECTORS_MAX) {
		char *end;
		unsigned long v = strtoul(t, &end, 10);
		if (end == t || v > UINT16_MAX)
			break;
		a->sectors[a->n_sectors++] = (uint16_t)v;
		t = *end == ',' ? end + 1 : end;
	}
}

int office_account_add(struct office_db *db, const char *login, const char *password, int role,
                       const uint16_t *sectors, size_t n_sectors, int64_t now,
                       struct server_why *why)
{
	if (!office_login_ok(login))
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "identifiant « %s » : lettres, chiffres, - _ . seulement, "
		                      "1 à %d caractères",
		                      login, OFFICE_LOGIN_MAX - 1);
	size_t pl = strlen(password);
	if (pl < OFFICE_PASSWORD_MIN || pl > OFFICE_PASSWORD_MAX)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "le mot de passe doit avoir de %d à %d caractères",
		                      OFFICE_PASSWORD_MIN, OFFICE_PASSWORD_MAX);
	if (role != OFFICE_ROLE_ADMIN && role != OFFICE_ROLE_AGENT)
		return server_why_set(why, SERVER_ERR_INVALID, "rôle inconnu");
	if (role == OFFICE_ROLE_AGENT && n_sectors == 0)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "un agent travaille pour au moins un service (--sector)");
	if (n_sectors > OFFICE_SECTORS_MAX)
		return server_why_set(why, SERVER_ERR_INVALID, "au plus %d services par agent",
		                      OFFICE_SECTORS_MAX);
	char hash[ARGON_ENC], sec[OFFICE_SECTORS_MAX * 6 + 1];
	if (hash_password(password, hash) != 0)
		return server_why_set(why, SERVER_ERR_CRYPTO, "Argon2id a échoué");
	sectors_text(sectors, role == OFFICE_ROLE_ADMIN ? 0 : n_sectors, sec, sizeof(sec));
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db->db,
	                            "INSERT INTO account(login, hash, role, sectors, created) "
	                            "VALUES (?, ?, ?, ?, ?)",
	                            -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, why, "compte non créé");
	sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, role);
	sqlite3_bind_text(s, 4, sec, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, now);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_CONSTRAINT)
		return server_why_set(why, SERVER_ERR_EXISTS, "le compte « %s » existe déjà",
		                      login);
	if (rc != SQLITE_DONE)
		return db_fail(db, why, "compte non créé");
	return 0;
}

/* OFFICE_ROLE_ADMIN as SQL text, for statements that count administrators */
#define OFFICE_ROLE_ADMIN_SQL "2"
_Static_assert(OFFICE_ROLE_ADMIN == 2, "OFFICE_ROLE_ADMIN_SQL spells OFFICE_ROLE_ADMIN");

#define ACCOUNT_COLS  "a.id, a.login, a.role, a.sectors, a.locked_until, a.disabled"
#define ACCOUNT_NCOLS 6

static void account_row(sqlite3_stmt *s, int c, struct office_account *a)
{
	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(s, c);
	snprintf(a->login, sizeof(a->login), "%s", (const char *)sqlite3_column_text(s, c + 1));
	a->role = sqlite3_column_int(s, c + 2);
	sectors_parse((const char *)sqlite3_column_text(s, c + 3), a);
	a->locked_until = sqlite3_column_int64(s, c + 4);
	a->disabled = sqlite3_column_int(s, c + 5);
}

int office_account_each(struct office_db *db, int (*fn)(void *arg, const struct office_account *a),
                        void *arg)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db, "SELECT " ACCOUNT_COLS " FROM account a ORDER BY a.login",
	                       -1, &s, NULL) != SQLITE_OK)
		return SERVER_ERR_IO;
	int rc = 0, st;
	while (rc == 0 && (st = sqlite3_step(s)) == SQLITE_ROW) {
		struct office_account a;
		account_row(s, 0, &a);
		rc = fn(arg, &a);
	}
	sqlite3_finalize(s);
	return rc;
}

static void sha256_token(const char *token, uint8_t out[32])
{
	mbedtls_sha256_ret((const unsigned char *)token, strlen(token), out, 0);
}

int office_token_new(char out[OFFICE_TOKEN_HEX + 1])
{
	uint8_t b[OFFICE_TOKEN_HEX / 2];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

int office_token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = (unsigned char)(la != lb);
	/* compare over the expected token's length whatever was sent */
	for (size_t i = 0; i < lb; i++)
		d |= (unsigned char)((i < la ? a[i] : 0) ^ b[i]);
	return d == 0 && lb > 0;
}

static int exec_bound(struct office_db *db, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db, sql, -1, &s, NULL) != SQLITE_OK)
		return SERVER_ERR_IO;
	sqlite3_bind_int64(s, 1, a);
	sqlite3_bind_int64(s, 2, b);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : SERVER_ERR_IO;
}

static int session_new(struct office_db *db, const struct office_account *a, int64_t now,
                       struct office_session *out)
{
	memset(out, 0, sizeof(*out));
	if (office_token_new(out->token) != 0 || office_token_new(out->csrf) != 0)
		return SERVER_ERR_CRYPTO;
	uint8_t h[32];
	sha256_token(out->token, h);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db,
	                       "INSERT INTO session(token_hash, account, csrf, started, last_seen) "
	                       "VALUES (?, ?, ?, ?, ?)",
	                       -1, &s, NULL) != SQLITE_OK)
		return SERVER_ERR_IO;
	sqlite3_bind_blob(s, 1, h, sizeof(h), SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, a->id);
	sqlite3_bind_text(s, 3, out->csrf, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now);
	sqlite3_bind_int64(s, 5, now);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return SERVER_ERR_IO;
	out->started = now;
	out->acct = *a;
	return 0;
}

int office_login(struct office_db *db, const char *login, const char *password, int64_t now,
                 struct office_session *out, int *known, int *locked_now, struct server_why *why)
{
	*locked_now = 0;
	*known = 0;
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db,
	                       "SELECT " ACCOUNT_COLS ", a.hash, a.failures FROM account a "
	                       "WHERE a.login = ?",
	                       -1, &s, NULL) != SQLITE_OK)
		return db_fail(db, why, "connexion impossible");
	sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC);
	struct office_account a;
	char hash[ARGON_ENC] = "";
	int64_t failures = 0;
	int found = sqlite3_step(s) == SQLITE_ROW;
	if (found) {
		account_row(s, 0, &a);
		snprintf(hash, sizeof(hash), "%s",
		         (const char *)sqlite3_column_text(s, ACCOUNT_NCOLS));
		failures = sqlite3_column_int64(s, ACCOUNT_NCOLS + 1);
	}
	sqlite3_finalize(s);
	*known = found;
	size_t pl = strlen(password);
	if (!found) {
		argon2id_verify(db->dummy, password, pl);
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "identifiant ou mot de passe incorrect");
	}
	if (a.locked_until > now) {
		time_t t = (time_t)a.locked_until;
		struct tm tm;
		char hm[16] = "?";
		if (localtime_r(&t, &tm))
			strftime(hm, sizeof(hm), "%H:%M", &tm);
		return server_why_set(
		        why, SERVER_ERR_STATE,
		        "ce compte est verrouillé après %d essais manqués, jusqu'à %s "
		        "(ou jusqu'à ce qu'un administrateur le débloque)",
		        OFFICE_LOCK_AFTER, hm);
	}
	if (argon2id_verify(hash, password, pl) != ARGON2_OK) {
		failures++;
		int64_t until = 0;
		if (failures >= OFFICE_LOCK_AFTER) {
			until = now + OFFICE_LOCK_SECONDS;
			failures = 0;
			*locked_now = 1;
		}
		sqlite3_stmt *u = NULL;
		if (sqlite3_prepare_v2(db->db,
		                       "UPDATE account SET failures = ?, locked_until = ? "
		                       "WHERE id = ?",
		                       -1, &u, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(u, 1, failures);
			sqlite3_bind_int64(u, 2, until);
			sqlite3_bind_int64(u, 3, a.id);
			sqlite3_step(u);
			sqlite3_finalize(u);
		}
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "identifiant ou mot de passe incorrect");
	}
	/* told only to whoever knows the password: a disabled login is not revealed to others */
	if (a.disabled)
		return server_why_set(why, SERVER_ERR_STATE,
		                      "ce compte est désactivé : voyez un administrateur");
	if (exec_bound(db, "UPDATE account SET failures = 0, locked_until = ?2 WHERE id = ?1", a.id,
	               0) != 0 ||
	    exec_bound(db, "DELETE FROM session WHERE last_seen < ?1 OR started < ?2",
	               now - OFFICE_SESSION_IDLE, now - OFFICE_SESSION_MAX) != 0)
		return db_fail(db, why, "connexion impossible");
	a.locked_until = 0;
	if (session_new(db, &a, now, out) != 0)
		return db_fail(db, why, "connexion impossible");
	return 0;
}

int office_session_find(struct office_db *db, const char *token, int64_t now,
                        struct office_session *out)
{
	if (strlen(token) != OFFICE_TOKEN_HEX)
		return SERVER_ERR_NOT_FOUND;
	uint8_t h[32];
	sha256_token(token, h);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db,
	                       "SELECT " ACCOUNT_COLS ", s.csrf, s.started FROM session s "
	                       "JOIN account a ON a.id = s.account WHERE s.token_hash = ? "
	                       "AND s.last_seen >= ? AND s.started >= ? AND a.disabled = 0",
	                       -1, &s, NULL) != SQLITE_OK)
		return SERVER_ERR_IO;
	sqlite3_bind_blob(s, 1, h, sizeof(h), SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now - OFFICE_SESSION_IDLE);
	sqlite3_bind_int64(s, 3, now - OFFICE_SESSION_MAX);
	int rc = SERVER_ERR_NOT_FOUND;
	if (sqlite3_step(s) == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		account_row(s, 0, &out->acct);
		snprintf(out->csrf, sizeof(out->csrf), "%s",
		         (const char *)sqlite3_column_text(s, ACCOUNT_NCOLS));
		out->started = sqlite3_column_int64(s, ACCOUNT_NCOLS + 1);
		snprintf(out->token, sizeof(out->token), "%s", token);
		rc = 0;
	}
	sqlite3_finalize(s);
	if (rc == 0) {
		sqlite3_stmt *u = NULL;
		if (sqlite3_prepare_v2(db->db,
		                       "UPDATE session SET last_seen = ? WHERE token_hash = ?", -1,
		                       &u, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(u, 1, now);
			sqlite3_bind_blob(u, 2, h, sizeof(h), SQLITE_STATIC);
			sqlite3_step(u);
			sqlite3_finalize(u);
		}
	}
	return rc;
}

int office_account_find(struct office_db *db, const char *login, struct office_account *out)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db, "SELECT " ACCOUNT_COLS " FROM account a WHERE a.login = ?",
	                       -1, &s, NULL) != SQLITE_OK)
		return SERVER_ERR_IO;
	sqlite3_bind_text(s, 1, login, -1, SQLITE_STATIC);
	int st = sqlite3_step(s), rc = SERVER_ERR_NOT_FOUND;
	if (st == SQLITE_ROW) {
		account_row(s, 0, out);
		rc = 0;
	} else if (st != SQLITE_DONE) {
		rc = SERVER_ERR_IO;
	}
	sqlite3_finalize(s);
	return rc;
}

/* One change of an account as one transaction: the statements run in order, each with
 * the account's id as ?1 (and `text` as ?2 where a statement has it). When the first
 * statement changes no row the transaction is rolled back and 1 returned: its WHERE is
 * the change's condition, checked inside the transaction. */
static int account_update(struct office_db *db, int64_t id, const char *const *sql, size_t n,
                          const char *text)
{
	if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v2(db->db, sql[i], -1, &s, NULL) != SQLITE_OK) {
			rc = -1;
			break;
		}
		sqlite3_bind_int64(s, 1, id);
		if (text && sqlite3_bind_parameter_count(s) >= 2)
			sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
		rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
		sqlite3_finalize(s);
		if (rc == 0 && i == 0 && sqlite3_changes(db->db) == 0)
			rc = 1;
	}
	if (sqlite3_exec(db->db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = -1;
	return rc;
}

int office_account_change(struct office_db *db, const char *login, int change,
                          struct server_why *why)
{
	struct office_account a;
	int rc = office_account_find(db, login, &a);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(why, rc, "aucun compte « %s »", login);
	if (rc)
		return db_fail(db, why, "compte non modifié");
	/* the last enabled administrator is counted in the same transaction as the change, so
	 * that two administrators disabling each other at once cannot both succeed */
	static const char *const disable[] = {
	        "UPDATE account SET disabled = 1 WHERE id = ?1 AND disabled = 0 AND (role "
	        "<> " OFFICE_ROLE_ADMIN_SQL
	        " OR (SELECT count(*) FROM account WHERE role = " OFFICE_ROLE_ADMIN_SQL
	        " AND disabled = 0) > 1)",
	        "DELETE FROM session WHERE account = ?1",
	};
	static const char *const enable[] = {
	        "UPDATE account SET disabled = 0, failures = 0, locked_until = 0 WHERE id = ?1",
	};
	static const char *const unlock[] = {
	        "UPDATE account SET failures = 0, locked_until = 0 WHERE id = ?1",
	};
	switch (change) {
	case OFFICE_ACCOUNT_DISABLE:
		if (a.disabled)
			return server_why_set(why, SERVER_ERR_STATE,
			                      "le compte « %s » est déjà désactivé", login);
		rc = account_update(db, a.id, disable, 2, NULL);
		if (rc == 1)
			return server_why_set(why, SERVER_ERR_STATE,
			                      "« %s » est le dernier administrateur actif : "
			                      "créez-en un autre avant de le désactiver",
			                      login);
		break;
	case OFFICE_ACCOUNT_ENABLE:
		if (!a.disabled)
			return server_why_set(why, SERVER_ERR_STATE, "le compte « %s » est actif",
			                      login);
		rc = account_update(db, a.id, enable, 1, NULL);
		break;
	case OFFICE_ACCOUNT_UNLOCK:
		rc = account_update(db, a.id, unlock, 1, NULL);
		break;
	default:
		return server_why_set(why, SERVER_ERR_ARG, "modification de compte inconnue");
	}
	return rc ? db_fail(db, why, "compte non modifié") : 0;
}

int office_account_password(struct office_db *db, const char *login, const char *password,
                            struct server_why *why)
{
	size_t pl = strlen(password);
	if (pl < OFFICE_PASSWORD_MIN || pl > OFFICE_PASSWORD_MAX)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "le mot de passe doit avoir de %d à %d caractères",
		                      OFFICE_PASSWORD_MIN, OFFICE_PASSWORD_MAX);
	struct office_account a;
	int rc = office_account_find(db, login, &a);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(why, rc, "aucun compte « %s »", login);
	if (rc)
		return db_fail(db, why, "mot de passe non changé");
	char hash[ARGON_ENC];
	if (hash_password(password, hash) != 0)
		return server_why_set(why, SERVER_ERR_CRYPTO, "Argon2id a échoué");
	static const char *const set[] = {
	        "UPDATE account SET hash = ?2, failures = 0, locked_until = 0 WHERE id = ?1",
	        "DELETE FROM session WHERE account = ?1",
	};
	rc = account_update(db, a.id, set, 2, hash);
	memset(hash, 0, sizeof(hash));
	return rc ? db_fail(db, why, "mot de passe non changé") : 0;
}

int office_session_end(struct office_db *db, const char *token)
{
	uint8_t h[32];
	sha256_token(token, h);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db, "DELETE FROM session WHERE token_hash = ?", -1, &s, NULL) !=
	    SQLITE_OK)
		return SERVER_ERR_IO;
	sqlite3_bind_blob(s, 1, h, sizeof(h), SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : SERVER_ERR_IO;
}

int office_audit(struct office_db *db, int64_t now, const char *login, const char *action,
                 int64_t pass, const char *sector, int done, const char *detail)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(
	            db->db,
	            "INSERT INTO audit(at, login, action, pass, sector, outcome, detail) "
	            "VALUES (?, ?, ?, ?, ?, ?, ?)",
	            -1, &s, NULL) != SQLITE_OK)
		return SERVER_ERR_IO;
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_text(s, 2, login ? login : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, action ? action : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, pass);
	sqlite3_bind_text(s, 5, sector ? sector : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, done ? "fait" : "refusé", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, detail ? detail : "", -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : SERVER_ERR_IO;
}

static void col_text(sqlite3_stmt *s, int c, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, c);
	snprintf(out, cap, "%s", t ? (const char *)t : "");
}

int office_audit_each(struct office_db *db, size_t limit,
                      int (*fn)(void *arg, const struct office_audit_entry *e), void *arg)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(db->db,
	                       "SELECT id, at, login, action, pass, sector, outcome, detail "
	                       "FROM audit ORDER BY id DESC LIMIT ?",
	                       -1, &s, NULL) != SQLITE_OK)
		return SERVER_ERR_IO;
	sqlite3_bind_int64(s, 1, limit ? (int64_t)limit : -1);
	int rc = 0;
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		struct office_audit_entry e;
		memset(&e, 0, sizeof(e));
		e.id = sqlite3_column_int64(s, 0);
		e.at = sqlite3_column_int64(s, 1);
		col_text(s, 2, e.login, sizeof(e.login));
		col_text(s, 3, e.action, sizeof(e.action));
		e.pass = sqlite3_column_int64(s, 4);
		col_text(s, 5, e.sector, sizeof(e.sector));
		col_text(s, 6, e.outcome, sizeof(e.outcome));
		col_text(s, 7, e.detail, sizeof(e.detail));
		rc = fn(arg, &e);
	}
	sqlite3_finalize(s);
	return rc;
}
