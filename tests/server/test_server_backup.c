/*
 * test_server_backup — the encrypted backup of a data directory (server/backup.h).
 *
 * The format is checked independently of our reader: the key is derived by Debian's
 * `argon2` tool (the reference implementation's CLI, RFC 9106) from the salt and costs the
 * header states, and the first chunk is opened here with mbedTLS's GCM directly, following
 * docs/backup.md. Then: a round trip spanning several chunks, and every way a file can be
 * wrong (passphrase, a byte, a cut, a reorder, a trailing byte, a hostile path, hostile
 * costs), each leaving nothing where the deployment would go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/gcm.h>
#include <sqlite3.h>

#include "backup_internal.h"
#include "server/error.h"

#define PASS "correct horse battery staple"
/* small costs: the tests run many derivations; the format is the same */
static const struct server_backup_kdf small = {1, 64, 1};

struct fx {
	char root[64];
	char data[128];
	char file[128];
	char target[128];
};

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *p = malloc((size_t)len + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	*n = (size_t)len;
	return p;
}

/* A data directory: a real sqlite database, keys/, and a 200 KiB file (four chunks). */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/cp-backup-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->data, sizeof(f->data), "%s/data", f->root);
	snprintf(f->file, sizeof(f->file), "%s/b.cpb", f->root);
	snprintf(f->target, sizeof(f->target), "%s/restored", f->root);
	assert_int_equal(mkdir(f->data, 0700), 0);
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", f->data, SERVER_BACKUP_DB_NAME);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "PRAGMA journal_mode=WAL;"
	                              "CREATE TABLE passes(id INTEGER PRIMARY KEY, holder TEXT);"
	                              "INSERT INTO passes(holder) VALUES('Ann'),('Bob');",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	/* left open: the copy must come from sqlite's backup API, the WAL not yet merged */
	snprintf(p, sizeof(p), "%s/keys", f->data);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/keys/list.key", f->data);
	write_file(p, (const uint8_t *)"-----BEGIN EC PRIVATE KEY-----\n", 31);
	static uint8_t big[200 * 1024];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 31 + 7);
	snprintf(p, sizeof(p), "%s/keys/card.keys", f->data);
	write_file(p, big, sizeof(big));
	char why[512];
	struct server_backup_stats st;
	assert_int_equal(server_backup_write(f->data, f->file, PASS, &small, &st, why, sizeof(why)),
	                 0);
	assert_int_equal(st.files, 3);
	sqlite3_close(db);
	*state = f;
	return 0;
}

static void rm_rf(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	rm_rf(f->root);
	free(f);
	return 0;
}

/* Nothing where the deployment would go, and no staging directory beside it. */
static void assert_nothing_left(const struct fx *f)
{
	struct stat sb;
	assert_int_not_equal(stat(f->target, &sb), 0);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -q restoring", f->root);
	assert_int_not_equal(system(cmd), 0);
}

static void assert_refused(struct fx *f, const uint8_t *p, size_t n, int want, const char *why_has)
{
	char path[160], why[512];
	snprintf(path, sizeof(path), "%s/bad.cpb", f->root);
	write_file(path, p, n);
	int rc = server_backup_restore(path, f->target, PASS, NULL, why, sizeof(why));
	assert_int_equal(rc, want);
	if (!strstr(why, why_has))
		fail_msg("expected '%s' in: %s", why_has, why);
	assert_nothing_left(f);
	unlink(path);
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	char why[512];
	struct server_backup_stats st;
	assert_int_equal(server_backup_restore(f->file, f->target, PASS, &st, why, sizeof(why)), 0);
	assert_int_equal(st.files, 3);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cmp -s '%s/keys/card.keys' '%s/keys/card.keys'", f->data,
	         f->target);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "cmp -s '%s/keys/list.key' '%s/keys/list.key'", f->data,
	         f->target);
	assert_int_equal(system(cmd), 0);
	/* the copy holds what was committed (in the WAL when it was taken) */
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", f->target, SERVER_BACKUP_DB_NAME);
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "SELECT group_concat(holder) FROM passes", -1, &q, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "Ann,Bob");
	sqlite3_finalize(q);
	sqlite3_close(db);
	/* a private directory, private files */
	struct stat sb;
	snprintf(p, sizeof(p), "%s/keys/list.key", f->target);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0077, 0);
	/* restoring again onto it: refused, it is not empty */
	assert_int_equal(server_backup_restore(f->file, f->target, PASS, NULL, why, sizeof(why)),
	                 SERVER_ERR_EXISTS);
}

static void test_restore_into_empty_dir(void **state)
{
	struct fx *f = *state;
	char why[512];
	assert_int_equal(mkdir(f->target, 0700), 0);
	assert_int_equal(server_backup_restore(f->file, f->target, PASS, NULL, why, sizeof(why)),
	                 0);
}

/* argon2 SALT -id -t 1 -k 64 -p 1 -l 32 -r, the passphrase on its stdin, without a shell
 * (the salt is binary): the 32-byte key, or -1. */
static int argon2_tool(const uint8_t salt[BACKUP_SALT_LEN], uint8_t key[32])
{
	char saltarg[BACKUP_SALT_LEN + 1];
	memcpy(saltarg, salt, BACKUP_SALT_LEN);
	saltarg[BACKUP_SALT_LEN] = '\0';
	int in[2], out[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execlp("argon2", "argon2", saltarg, "-id", "-t", "1", "-k", "64", "-p", "1", "-l",
		       "32", "-r", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	assert_int_equal(write(in[1], PASS, strlen(PASS)), (ssize_t)strlen(PASS));
	close(in[1]);
	char hex[80] = "";
	ssize_t got = read(out[0], hex, sizeof(hex) - 1);
	close(out[0]);
	int status;
	waitpid(pid, &status, 0);
	if (got < 64 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		key[i] = (uint8_t)v;
	}
	return 0;
}

/* The key from Debian's argon2 tool, the first chunk opened with GCM directly. */
static void test_format_by_hand(void **state)
{
	struct fx *f = *state;
	size_t n;
	uint8_t *b = NULL;
	/* the salt goes to the tool as an argument: take a file whose salt has no NUL byte
	 * (each has one with a chance of 6 %) */
	for (int attempt = 0; attempt < 40; attempt++) {
		char path[160], why[512];
		snprintf(path, sizeof(path), "%s/hand-%d.cpb", f->root, attempt);
		assert_int_equal(
		        server_backup_write(f->data, path, PASS, &small, NULL, why, sizeof(why)),
		        0);
		b = read_file(path, &n);
		if (!memchr(b + 30, 0, BACKUP_SALT_LEN))
			break;
		free(b);
		b = NULL;
	}
	assert_non_null(b);
	assert_true(n > BACKUP_HEADER_LEN + 4 + BACKUP_TAG_LEN);
	assert_memory_equal(b, "CITYPASS-BACKUP\n", 16);
	assert_int_equal(b[16], 1); /* format */
	assert_int_equal(b[17], 1); /* Argon2id */
	uint8_t key[32];
	if (argon2_tool(b + 30, key) != 0)
		fail_msg("the argon2 tool (Debian package argon2) did not answer");
	uint32_t len = (uint32_t)b[46] << 24 | (uint32_t)b[47] << 16 | (uint32_t)b[48] << 8 | b[49];
	assert_int_equal(len, BACKUP_CHUNK_MAX); /* 200 KiB: the first chunk is full */
	uint8_t nonce[12] = {0};                 /* chunk 0, not the last */
	uint8_t *pt = malloc(len);
	mbedtls_gcm_context gcm;
	mbedtls_gcm_init(&gcm);
	assert_int_equal(mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 256), 0);
	assert_int_equal(mbedtls_gcm_auth_decrypt(&gcm, len, nonce, 12, b, BACKUP_HEADER_LEN,
	                                          b + 50 + len, 16, b + 50, pt),
	                 0);
	mbedtls_gcm_free(&gcm);
	/* the first entry: the database */
	assert_int_equal(pt[0], 'F');
	assert_int_equal(pt[1] << 8 | pt[2], strlen(SERVER_BACKUP_DB_NAME));
	assert_memory_equal(pt + 3, SERVER_BACKUP_DB_NAME, strlen(SERVER_BACKUP_DB_NAME));
	assert_memory_equal(pt + 3 + strlen(SERVER_BACKUP_DB_NAME) + 4 + 8, "SQLite format 3", 15);
	free(pt);
	free(b);
}

static void test_wrong_passphrase(void **state)
{
	struct fx *f = *state;
	char why[512];
	int rc = server_backup_restore(f->file, f->target, "not the passphrase!", NULL, why,
	                               sizeof(why));
	assert_int_equal(rc, SERVER_ERR_CRYPTO);
	assert_non_null(strstr(why, "wrong passphrase"));
	assert_nothing_left(f);
}

static void test_damaged(void **state)
{
	struct fx *f = *state;
	size_t n;
	uint8_t *b = read_file(f->file, &n);
	const size_t c0 = BACKUP_HEADER_LEN, clen = 4 + BACKUP_CHUNK_MAX + BACKUP_TAG_LEN;
	/* a byte of the second chunk's ciphertext */
	b[c0 + clen + 100] ^= 1;
	assert_refused(f, b, n, SERVER_ERR_CRYPTO, "chunk 1 does not authenticate");
	b[c0 + clen + 100] ^= 1;
	/* a byte of the header (its costs are authenticated with the first chunk) */
	b[30] ^= 1;
	assert_refused(f, b, n, SERVER_ERR_CRYPTO, "wrong passphrase, or the file is damaged");
	b[30] ^= 1;
	/* cut after two whole chunks: the second was not sealed as the last */
	assert_refused(f, b, c0 + 2 * clen, SERVER_ERR_CRYPTO, "chunk 1 does not authenticate");
	/* cut inside a chunk */
	assert_refused(f, b, c0 + clen + 1000, SERVER_ERR_INVALID, "cut short");
	/* cut inside the header */
	assert_refused(f, b, 20, SERVER_ERR_INVALID, "not a citypass backup");
	/* one byte more at the end: the last chunk is read as not the last */
	uint8_t *more = malloc(n + 1);
	memcpy(more, b, n);
	more[n] = 0;
	assert_refused(f, more, n + 1, SERVER_ERR_CRYPTO, "does not authenticate");
	free(more);
	/* the second and third chunks swapped */
	uint8_t *sw = malloc(n);
	memcpy(sw, b, n);
	memcpy(sw + c0 + clen, b + c0 + 2 * clen, clen);
	memcpy(sw + c0 + 2 * clen, b + c0 + clen, clen);
	assert_refused(f, sw, n, SERVER_ERR_CRYPTO, "chunk 1 does not authenticate");
	free(sw);
	/* a chunk length beyond the limit */
	b[c0] = 0x7f;
	assert_refused(f, b, n, SERVER_ERR_INVALID, "claims");
	free(b);
}

static void test_hostile_header(void **state)
{
	struct fx *f = *state;
	size_t n;
	uint8_t *b = read_file(f->file, &n);
	/* 4 GiB of memory asked: refused before any derivation */
	b[22] = 0xff;
	assert_refused(f, b, n, SERVER_ERR_INVALID, "costs out of bounds");
	b[22] = 0;
	b[16] = 2;
	assert_refused(f, b, n, SERVER_ERR_INVALID, "format 2");
	b[16] = 1;
	b[17] = 9;
	assert_refused(f, b, n, SERVER_ERR_INVALID, "key derivation");
	free(b);
}

/* A well-sealed file (our own sealing here, after docs/backup.md) whose entry names a path
 * outside the data directory: refused, nothing written anywhere. */
static size_t seal_one(const uint8_t key[32], const uint8_t *pt, size_t n, uint8_t *out)
{
	static const struct server_backup_kdf k = {1, 64, 1};
	memcpy(out, BACKUP_MAGIC, 16);
	out[16] = 1;
	out[17] = 1;
	uint32_t v[3] = {k.t_cost, k.m_cost_kib, k.lanes};
	for (int i = 0; i < 3; i++) {
		out[18 + 4 * i] = (uint8_t)(v[i] >> 24);
		out[19 + 4 * i] = (uint8_t)(v[i] >> 16);
		out[20 + 4 * i] = (uint8_t)(v[i] >> 8);
		out[21 + 4 * i] = (uint8_t)v[i];
	}
	memset(out + 30, 0x5a, 16);
	out[46] = (uint8_t)(n >> 24);
	out[47] = (uint8_t)(n >> 16);
	out[48] = (uint8_t)(n >> 8);
	out[49] = (uint8_t)n;
	uint8_t nonce[12] = {0};
	nonce[8] = 1; /* the last chunk */
	mbedtls_gcm_context gcm;
	mbedtls_gcm_init(&gcm);
	assert_int_equal(mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 256), 0);
	assert_int_equal(mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, n, nonce, 12, out, 46,
	                                           pt, out + 50, 16, out + 50 + n),
	                 0);
	mbedtls_gcm_free(&gcm);
	return 50 + n + 16;
}

static int count_begin(void *ctx, const char *path, uint32_t mode, uint64_t size)
{
	(void)path;
	(void)mode;
	(void)size;
	(*(int *)ctx)++;
	return 0;
}
static int count_data(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return 0;
}
static int count_end(void *ctx)
{
	(void)ctx;
	return 0;
}

static void test_hostile_paths(void **state)
{
	(void)state;
	static const char *const bad[] = {"../escape", "/etc/passwd", "keys/../../x", "a//b",
	                                  "keys/",     ".",           "a b",          "a\\b"};
	uint8_t key[32];
	memset(key, 0x42, sizeof(key));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t pt[64], file[256];
		size_t nl = strlen(bad[i]), h = 0;
		pt[h++] = 'F';
		pt[h++] = 0;
		pt[h++] = (uint8_t)nl;
		memcpy(pt + h, bad[i], nl);
		h += nl;
		memset(pt + h, 0, 12); /* mode 0, size 0 */
		h += 12;
		pt[h++] = 'E';
		size_t n = seal_one(key, pt, h, file);
		FILE *in = fmemopen(file, n, "rb");
		int files = 0;
		const struct backup_sink sink = {count_begin, count_data, count_end, &files};
		char why[256];
		int rc = backup_read(in, NULL, key, &sink, NULL, why, sizeof(why));
		fclose(in);
		if (rc != SERVER_ERR_INVALID || files != 0 || !strstr(why, "refusing the path"))
			fail_msg("path '%s': rc %d, %d file(s), '%s'", bad[i], rc, files, why);
	}
	/* the same sealing with a good path is read: the refusals above are the paths' */
	uint8_t pt[64], file[256];
	size_t h = 0;
	pt[h++] = 'F';
	pt[h++] = 0;
	pt[h++] = 8;
	memcpy(pt + h, "keys/a.b", 8);
	h += 8;
	memset(pt + h, 0, 12);
	h += 12;
	pt[h++] = 'E';
	size_t n = seal_one(key, pt, h, file);
	FILE *in = fmemopen(file, n, "rb");
	int files = 0;
	const struct backup_sink sink = {count_begin, count_data, count_end, &files};
	char why[256];
	assert_int_equal(backup_read(in, NULL, key, &sink, NULL, why, sizeof(why)), 0);
	fclose(in);
	assert_int_equal(files, 1);
}

static void test_writer_refusals(void **state)
{
	struct fx *f = *state;
	char why[512], out[160];
	snprintf(out, sizeof(out), "%s/short.cpb", f->root);
	assert_int_equal(server_backup_write(f->data, out, "short", &small, NULL, why, sizeof(why)),
	                 SERVER_ERR_INVALID);
	assert_non_null(strstr(why, "shorter than"));
	/* never overwrites */
	assert_int_equal(
	        server_backup_write(f->data, f->file, PASS, &small, NULL, why, sizeof(why)),
	        SERVER_ERR_EXISTS);
	/* no database: not a data directory */
	assert_int_equal(server_backup_write(f->root, out, PASS, &small, NULL, why, sizeof(why)),
	                 SERVER_ERR_NOT_FOUND);
	assert_int_not_equal(access(out, F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_restore_into_empty_dir, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_format_by_hand, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_wrong_passphrase, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hostile_header, setup, teardown),
	        cmocka_unit_test(test_hostile_paths),
	        cmocka_unit_test_setup_teardown(test_writer_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
