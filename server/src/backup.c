/*
 * server/src/backup.c — the encrypted backup of a data directory (server/backup.h,
 * docs/backup.md).
 *
 * File: a 46-byte header (magic, format, KDF and its costs, salt), then chunks, each
 * "u32 length | AES-256-GCM ciphertext | 16-byte tag". A chunk's 12-byte nonce is its
 * number (8 bytes, big-endian), a byte saying whether it is the last one, and three zero
 * bytes; the first chunk also authenticates the header as associated data. This is the
 * STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, 2015): each chunk is checked
 * before its bytes are used, and a file cut at a chunk boundary is caught because its
 * new last chunk was sealed as "not the last". The key is fresh per file (random salt),
 * so the counter nonces never repeat under one key.
 *
 * Plaintext: entries 'F' | u16 path length | path | u32 mode | u64 size | bytes, then 'E'.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <argon2.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>
#include <mbedtls/platform_util.h>
#include <sqlite3.h>

#include "backup_internal.h"
#include "server/error.h"
#include "server/store.h"

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__))

/* --- big-endian fields ------------------------------------------------------------------ */

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)(v >> 32));
	put_u32(p + 4, (uint32_t)v);
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

static void chunk_nonce(uint8_t nonce[12], uint64_t counter, int last)
{
	put_u64(nonce, counter);
	nonce[8] = last ? 1 : 0;
	nonce[9] = nonce[10] = nonce[11] = 0;
}

/* --- header and key ----------------------------------------------------------------------- */

static void header_build(uint8_t h[BACKUP_HEADER_LEN], const struct server_backup_kdf *kdf,
                         const uint8_t salt[BACKUP_SALT_LEN])
{
	memcpy(h, BACKUP_MAGIC, BACKUP_MAGIC_LEN);
	h[16] = BACKUP_FORMAT;
	h[17] = BACKUP_KDF_ARGON2ID;
	put_u32(h + 18, kdf->t_cost);
	put_u32(h + 22, kdf->m_cost_kib);
	put_u32(h + 26, kdf->lanes);
	memcpy(h + 30, salt, BACKUP_SALT_LEN);
}

int backup_header_parse(const uint8_t *h, size_t len, struct server_backup_kdf *kdf,
                        uint8_t salt[BACKUP_SALT_LEN], char *why, size_t whylen)
{
	if (len < BACKUP_HEADER_LEN || memcmp(h, BACKUP_MAGIC, BACKUP_MAGIC_LEN) != 0) {
		WHY("not a citypass backup (no CITYPASS-BACKUP header)");
		return SERVER_ERR_INVALID;
	}
	if (h[16] != BACKUP_FORMAT) {
		WHY("backup format %u: this release reads format %u only", h[16], BACKUP_FORMAT);
		return SERVER_ERR_INVALID;
	}
	if (h[17] != BACKUP_KDF_ARGON2ID) {
		WHY("unknown key derivation %u (expected Argon2id)", h[17]);
		return SERVER_ERR_INVALID;
	}
	kdf->t_cost = get_u32(h + 18);
	kdf->m_cost_kib = get_u32(h + 22);
	kdf->lanes = get_u32(h + 26);
	if (kdf->t_cost < 1 || kdf->t_cost > SERVER_BACKUP_T_MAX || kdf->lanes < 1 ||
	    kdf->lanes > SERVER_BACKUP_LANES_MAX || kdf->m_cost_kib < 8 * kdf->lanes ||
	    kdf->m_cost_kib > SERVER_BACKUP_M_MAX) {
		WHY("Argon2id costs out of bounds (t=%u, m=%u KiB, lanes=%u; at most t=%u, "
		    "m=%u KiB, lanes=%u)",
		    kdf->t_cost, kdf->m_cost_kib, kdf->lanes, SERVER_BACKUP_T_MAX,
		    SERVER_BACKUP_M_MAX, SERVER_BACKUP_LANES_MAX);
		return SERVER_ERR_INVALID;
	}
	memcpy(salt, h + 30, BACKUP_SALT_LEN);
	return 0;
}

static int derive_key(const char *passphrase, const struct server_backup_kdf *kdf,
                      const uint8_t salt[BACKUP_SALT_LEN], uint8_t key[BACKUP_KEY_LEN], char *why,
                      size_t whylen)
{
	int rc = argon2id_hash_raw(kdf->t_cost, kdf->m_cost_kib, kdf->lanes, passphrase,
	                           strlen(passphrase), salt, BACKUP_SALT_LEN, key, BACKUP_KEY_LEN);
	if (rc != ARGON2_OK) {
		WHY("Argon2id: %s", argon2_error_message(rc));
		return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? SERVER_ERR_NOMEM : SERVER_ERR_CRYPTO;
	}
	return 0;
}

bool backup_path_ok(const char *path)
{
	size_t len = strlen(path);
	if (len == 0 || len > BACKUP_PATH_MAX)
		return false;
	const char *c = path;
	while (*c) {
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)c[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
				return false;
		}
		c += n;
		if (*c == '/') {
			c++;
			if (!*c)
				return false; /* a trailing slash names no file */
		}
	}
	return true;
}

/* --- writing ----------------------------------------------------------------------------- */

struct sealer {
	FILE *out;
	mbedtls_gcm_context gcm;
	uint8_t header[BACKUP_HEADER_LEN];
	uint8_t buf[BACKUP_CHUNK_MAX];
	uint8_t ct[BACKUP_CHUNK_MAX];
	size_t n;
	uint64_t counter;
};

static int seal_chunk(struct sealer *s, int last)
{
	uint8_t nonce[12], len[4], tag[BACKUP_TAG_LEN];
	chunk_nonce(nonce, s->counter, last);
	const uint8_t *aad = s->counter == 0 ? s->header : NULL;
	size_t aad_len = s->counter == 0 ? sizeof(s->header) : 0;
	if (mbedtls_gcm_crypt_and_tag(&s->gcm, MBEDTLS_GCM_ENCRYPT, s->n, nonce, sizeof(nonce), aad,
	                              aad_len, s->buf, s->ct, sizeof(tag), tag) != 0)
		return SERVER_ERR_CRYPTO;
	put_u32(len, (uint32_t)s->n);
	if (fwrite(len, 1, 4, s->out) != 4 || fwrite(s->ct, 1, s->n, s->out) != s->n ||
	    fwrite(tag, 1, sizeof(tag), s->out) != sizeof(tag))
		return SERVER_ERR_IO;
	s->counter++;
	s->n = 0;
	return 0;
}

/* A full buffer is sealed only once more bytes come: the last chunk must be sealed as the
 * last, and only the end of the file says which one it is. */
static int pt_write(struct sealer *s, const void *data, size_t n)
{
	const uint8_t *p = data;
	while (n > 0) {
		if (s->n == sizeof(s->buf)) {
			int rc = seal_chunk(s, 0);
			if (rc)
				return rc;
		}
		size_t take = sizeof(s->buf) - s->n < n ? sizeof(s->buf) - s->n : n;
		memcpy(s->buf + s->n, p, take);
		s->n += take;
		p += take;
		n -= take;
	}
	return 0;
}

static int put_file(struct sealer *s, const char *name, const char *path, uint32_t mode,
                    struct server_backup_stats *stats, char *why, size_t whylen)
{
	FILE *in = fopen(path, "rb");
	struct stat st;
	if (!in || fstat(fileno(in), &st) != 0) {
		WHY("%s: %s", path, strerror(errno));
		if (in)
			fclose(in);
		return SERVER_ERR_IO;
	}
	uint8_t head[1 + 2 + BACKUP_PATH_MAX + 4 + 8];
	size_t nl = strlen(name), h = 0;
	head[h++] = 'F';
	head[h++] = (uint8_t)(nl >> 8);
	head[h++] = (uint8_t)nl;
	memcpy(head + h, name, nl);
	h += nl;
	put_u32(head + h, mode);
	h += 4;
	put_u64(head + h, (uint64_t)st.st_size);
	h += 8;
	int rc = pt_write(s, head, h);
	uint8_t buf[16384];
	uint64_t left = (uint64_t)st.st_size;
	while (rc == 0 && left > 0) {
		size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		size_t got = fread(buf, 1, want, in);
		if (got != want) {
			/* a file that shrinks while it is copied: the size written would lie */
			WHY("%s: changed while it was copied", path);
			rc = SERVER_ERR_IO;
			break;
		}
		rc = pt_write(s, buf, got);
		left -= got;
	}
	fclose(in);
	mbedtls_platform_zeroize(buf, sizeof(buf));
	if (rc == 0) {
		stats->files++;
		stats->bytes += (uint64_t)st.st_size;
	} else if (!why[0]) {
		WHY("%s: %s", path, server_strerror(rc));
	}
	return rc;
}

/* The database's own files and the copy being made: never taken as they are on disk. */
static bool db_side_file(const char *name)
{
	static const char *const skip[] = {SERVER_BACKUP_DB_NAME, SERVER_BACKUP_DB_NAME "-wal",
	                                   SERVER_BACKUP_DB_NAME "-shm",
	                                   SERVER_BACKUP_DB_NAME "-journal", NULL};
	for (size_t i = 0; skip[i]; i++)
		if (strcmp(name, skip[i]) == 0)
			return true;
	return false;
}

/* Every regular file under dir (rel: its path inside the data directory). */
static int put_tree(struct sealer *s, const char *dir, const char *rel,
                    struct server_backup_stats *stats, char *why, size_t whylen)
{
	DIR *d = opendir(dir);
	if (!d) {
		WHY("%s: %s", dir, strerror(errno));
		return SERVER_ERR_IO;
	}
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (!rel[0] && db_side_file(e->d_name))
			continue;
		char path[PATH_MAX], name[BACKUP_PATH_MAX + 2];
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path) ||
		    (size_t)snprintf(name, sizeof(name), "%s%s%s", rel, rel[0] ? "/" : "",
		                     e->d_name) >= sizeof(name) ||
		    !backup_path_ok(name)) {
			WHY("%s/%s: a name a backup cannot hold (letters, digits, '.', '-', '_')",
			    dir, e->d_name);
			rc = SERVER_ERR_INVALID;
			break;
		}
		struct stat st;
		if (lstat(path, &st) != 0) {
			WHY("%s: %s", path, strerror(errno));
			rc = SERVER_ERR_IO;
		} else if (S_ISDIR(st.st_mode)) {
			rc = put_tree(s, path, name, stats, why, whylen);
		} else if (S_ISREG(st.st_mode)) {
			rc = put_file(s, name, path, (uint32_t)(st.st_mode & 07777), stats, why,
			              whylen);
		} else {
			/* sockets, links: nothing the server needs back, and a link could point out
			 */
			stats->skipped++;
		}
	}
	closedir(d);
	return rc;
}

/* sqlite's online backup: a consistent copy while the server and agents write. */
static int copy_database(const char *src_path, const char *dst_path, char *why, size_t whylen)
{
	sqlite3 *src = NULL, *dst = NULL;
	int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
		                     NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(src, 10000);
		sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
		if (!b) {
			rc = sqlite3_errcode(dst);
		} else {
			/* whole in one step: one read transaction, so one snapshot */
			do {
				rc = sqlite3_backup_step(b, -1);
				if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
					sqlite3_sleep(50);
			} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
			sqlite3_backup_finish(b);
			if (rc == SQLITE_DONE)
				rc = sqlite3_errcode(dst);
		}
	}
	if (rc != SQLITE_OK)
		WHY("copying the database %s: %s", src_path,
		    dst   ? sqlite3_errmsg(dst)
		    : src ? sqlite3_errmsg(src)
		          : sqlite3_errstr(rc));
	sqlite3_close(dst);
	sqlite3_close(src);
	return rc == SQLITE_OK ? 0 : SERVER_ERR_IO;
}

static int random_bytes(uint8_t *out, size_t n)
{
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	static const char pers[] = "citypass-backup";
	int rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent,
	                               (const unsigned char *)pers, sizeof(pers) - 1);
	if (rc == 0)
		rc = mbedtls_ctr_drbg_random(&drbg, out, n);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return rc == 0 ? 0 : SERVER_ERR_CRYPTO;
}

static int sync_close(FILE *f)
{
	int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
	return fclose(f) == 0 && rc == 0 ? 0 : -1;
}

static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int server_backup_write(const char *data_dir, const char *out_path, const char *passphrase,
                        const struct server_backup_kdf *kdf, struct server_backup_stats *stats,
                        char *why, size_t whylen)
{
	static const struct server_backup_kdf dflt = {SERVER_BACKUP_T_DEFAULT,
	                                              SERVER_BACKUP_M_DEFAULT, 1};
	struct server_backup_stats local;
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	why[0] = '\0';
	if (!kdf)
		kdf = &dflt;
	/* issue 16: the backup copies the sqlite file; a PostgreSQL deployment is backed up
	 * by PostgreSQL's own tools, which its DBA already runs */
	char uri[SERVER_STORE_URI_MAX];
	if (server_store_uri(data_dir, uri, sizeof(uri)) != SERVER_ERR_NOT_FOUND) {
		WHY("%s keeps its rights database in PostgreSQL (%s): back the database up with "
		    "pg_dump (or the cluster's base backups), and the data directory's keys with "
		    "your file backups (docs/postgresql.md)",
		    data_dir, SERVER_STORE_FILE);
		return SERVER_ERR_INVALID;
	}
	if (strlen(passphrase) < SERVER_BACKUP_PASSPHRASE_MIN) {
		WHY("the passphrase is shorter than %d characters: the backup holds every key of "
		    "the deployment",
		    SERVER_BACKUP_PASSPHRASE_MIN);
		return SERVER_ERR_INVALID;
	}
	struct stat st;
	if (lstat(out_path, &st) == 0) {
		WHY("%s already exists: refusing to overwrite it", out_path);
		return SERVER_ERR_EXISTS;
	}
	char db[PATH_MAX], tmp[PATH_MAX], dbcopy[PATH_MAX];
	snprintf(db, sizeof(db), "%s/%s", data_dir, SERVER_BACKUP_DB_NAME);
	if (stat(db, &st) != 0) {
		WHY("%s: no rights database there (%s)", data_dir, strerror(errno));
		return SERVER_ERR_NOT_FOUND;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.partial", out_path) >= sizeof(tmp) ||
	    (size_t)snprintf(dbcopy, sizeof(dbcopy), "%s.db-copy", out_path) >= sizeof(dbcopy)) {
		WHY("%s: path too long", out_path);
		return SERVER_ERR_ARG;
	}
	unlink(dbcopy);
	int rc = copy_database(db, dbcopy, why, whylen);
	if (rc)
		goto out_copy;

	struct sealer *s = calloc(1, sizeof(*s));
	if (!s) {
		rc = SERVER_ERR_NOMEM;
		goto out_copy;
	}
	uint8_t salt[BACKUP_SALT_LEN], key[BACKUP_KEY_LEN];
	rc = random_bytes(salt, sizeof(salt));
	if (rc == 0)
		rc = derive_key(passphrase, kdf, salt, key, why, whylen);
	if (rc)
		goto out_sealer;
	mbedtls_gcm_init(&s->gcm);
	if (mbedtls_gcm_setkey(&s->gcm, MBEDTLS_CIPHER_ID_AES, key, 256) != 0) {
		rc = SERVER_ERR_CRYPTO;
		goto out_gcm;
	}
	header_build(s->header, kdf, salt);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	s->out = fd >= 0 ? fdopen(fd, "wb") : NULL;
	if (!s->out) {
		WHY("%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		rc = SERVER_ERR_IO;
		goto out_gcm;
	}
	if (fwrite(s->header, 1, sizeof(s->header), s->out) != sizeof(s->header))
		rc = SERVER_ERR_IO;
	if (rc == 0)
		rc = put_file(s, SERVER_BACKUP_DB_NAME, dbcopy, 0600, stats, why, whylen);
	if (rc == 0)
		rc = put_tree(s, data_dir, "", stats, why, whylen);
	if (rc == 0)
		rc = pt_write(s, "E", 1);
	if (rc == 0)
		rc = seal_chunk(s, 1);
	if (sync_close(s->out) != 0 && rc == 0)
		rc = SERVER_ERR_IO;
	if (rc == 0 && (rename(tmp, out_path) != 0 || sync_parent(out_path) != 0)) {
		WHY("%s: %s", out_path, strerror(errno));
		rc = SERVER_ERR_IO;
	}
	if (rc) {
		if (!why[0])
			WHY("writing %s: %s", tmp, strerror(errno));
		unlink(tmp);
	}
out_gcm:
	mbedtls_gcm_free(&s->gcm);
out_sealer:
	mbedtls_platform_zeroize(key, sizeof(key));
	mbedtls_platform_zeroize(s, sizeof(*s));
	free(s);
out_copy:
	unlink(dbcopy);
	return rc;
}

/* --- reading ----------------------------------------------------------------------------- */

struct opener {
	FILE *in;
	mbedtls_gcm_context gcm;
	uint8_t header[BACKUP_HEADER_LEN];
	uint8_t buf[BACKUP_CHUNK_MAX];
	uint8_t ct[BACKUP_CHUNK_MAX];
	size_t len, pos;
	uint64_t counter;
	bool seen_last;
};

/* The next chunk, authenticated; whether it is the last is read from the file's end. */
static int open_chunk(struct opener *o, char *why, size_t whylen)
{
	uint8_t len4[4], tag[BACKUP_TAG_LEN], nonce[12];
	if (o->seen_last) {
		WHY("the file ends inside an entry");
		return SERVER_ERR_INVALID;
	}
	size_t got = fread(len4, 1, 4, o->in);
	if (got != 4) {
		WHY("the file is cut short after %llu chunk(s): incomplete backup",
		    (unsigned long long)o->counter);
		return SERVER_ERR_INVALID;
	}
	uint32_t n = get_u32(len4);
	if (n > BACKUP_CHUNK_MAX) {
		WHY("chunk %llu claims %u bytes (at most %u): damaged file",
		    (unsigned long long)o->counter, n, BACKUP_CHUNK_MAX);
		return SERVER_ERR_INVALID;
	}
	if (fread(o->ct, 1, n, o->in) != n || fread(tag, 1, sizeof(tag), o->in) != sizeof(tag)) {
		WHY("the file is cut short inside chunk %llu: incomplete backup",
		    (unsigned long long)o->counter);
		return SERVER_ERR_INVALID;
	}
	int c = getc(o->in);
	int last = c == EOF;
	if (!last)
		ungetc(c, o->in);
	chunk_nonce(nonce, o->counter, last);
	const uint8_t *aad = o->counter == 0 ? o->header : NULL;
	size_t aad_len = o->counter == 0 ? sizeof(o->header) : 0;
	if (mbedtls_gcm_auth_decrypt(&o->gcm, n, nonce, sizeof(nonce), aad, aad_len, tag,
	                             sizeof(tag), o->ct, o->buf) != 0) {
		if (o->counter == 0)
			WHY("wrong passphrase, or the file is damaged");
		else
			WHY("chunk %llu does not authenticate: the file is damaged, cut short or "
			    "reordered",
			    (unsigned long long)o->counter);
		return SERVER_ERR_CRYPTO;
	}
	o->counter++;
	o->len = n;
	o->pos = 0;
	o->seen_last = last;
	return 0;
}

static int pt_read(struct opener *o, void *dst, size_t n, char *why, size_t whylen)
{
	uint8_t *p = dst;
	while (n > 0) {
		if (o->pos == o->len) {
			int rc = open_chunk(o, why, whylen);
			if (rc)
				return rc;
			continue;
		}
		size_t take = o->len - o->pos < n ? o->len - o->pos : n;
		memcpy(p, o->buf + o->pos, take);
		o->pos += take;
		p += take;
		n -= take;
	}
	return 0;
}

static int read_entries(struct opener *o, const struct backup_sink *sink,
                        struct server_backup_stats *stats, char *why, size_t whylen)
{
	for (;;) {
		uint8_t kind, b[12];
		int rc = pt_read(o, &kind, 1, why, whylen);
		if (rc)
			return rc;
		if (kind == 'E') {
			/* the end marker closes the last chunk, and nothing follows it */
			if (o->pos != o->len || !o->seen_last) {
				WHY("data after the end of the backup: damaged file");
				return SERVER_ERR_INVALID;
			}
			return 0;
		}
		if (kind != 'F') {
			WHY("unknown entry 0x%02x: damaged file or newer format", kind);
			return SERVER_ERR_INVALID;
		}
		char path[BACKUP_PATH_MAX + 1];
		rc = pt_read(o, b, 2, why, whylen);
		size_t nl = (size_t)b[0] << 8 | b[1];
		if (rc == 0 && (nl == 0 || nl > BACKUP_PATH_MAX)) {
			WHY("a path of %zu bytes: damaged file", nl);
			rc = SERVER_ERR_INVALID;
		}
		if (rc == 0)
			rc = pt_read(o, path, nl, why, whylen);
		if (rc)
			return rc;
		path[nl] = '\0';
		if (memchr(path, '\0', nl) || !backup_path_ok(path)) {
			WHY("refusing the path '%.*s': outside the data directory or not a plain "
			    "name",
			    (int)nl, path);
			return SERVER_ERR_INVALID;
		}
		rc = pt_read(o, b, 12, why, whylen);
		if (rc)
			return rc;
		uint32_t mode = get_u32(b);
		uint64_t size = get_u64(b + 4);
		rc = sink->file_begin(sink->ctx, path, mode, size);
		uint64_t left = size;
		while (rc == 0 && left > 0) {
			if (o->pos == o->len) {
				rc = open_chunk(o, why, whylen);
				continue;
			}
			size_t take = o->len - o->pos;
			if ((uint64_t)take > left)
				take = (size_t)left;
			rc = sink->file_data(sink->ctx, o->buf + o->pos, take);
			o->pos += take;
			left -= take;
		}
		if (rc == 0)
			rc = sink->file_end(sink->ctx);
		if (rc) {
			if (!why[0])
				WHY("%s: %s", path, server_strerror(rc));
			return rc;
		}
		stats->files++;
		stats->bytes += size;
	}
}

int backup_read(FILE *in, const char *passphrase, const uint8_t *key,
                const struct backup_sink *sink, struct server_backup_stats *stats, char *why,
                size_t whylen)
{
	struct server_backup_stats local;
	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	why[0] = '\0';
	struct opener *o = calloc(1, sizeof(*o));
	if (!o)
		return SERVER_ERR_NOMEM;
	o->in = in;
	mbedtls_gcm_init(&o->gcm);
	struct server_backup_kdf kdf;
	uint8_t salt[BACKUP_SALT_LEN], k[BACKUP_KEY_LEN];
	size_t got = fread(o->header, 1, sizeof(o->header), in);
	int rc = backup_header_parse(o->header, got, &kdf, salt, why, whylen);
	if (rc == 0) {
		if (key)
			memcpy(k, key, sizeof(k));
		else
			rc = derive_key(passphrase, &kdf, salt, k, why, whylen);
	}
	if (rc == 0 && mbedtls_gcm_setkey(&o->gcm, MBEDTLS_CIPHER_ID_AES, k, 256) != 0)
		rc = SERVER_ERR_CRYPTO;
	if (rc == 0)
		rc = read_entries(o, sink, stats, why, whylen);
	mbedtls_gcm_free(&o->gcm);
	mbedtls_platform_zeroize(k, sizeof(k));
	mbedtls_platform_zeroize(o, sizeof(*o));
	free(o);
	return rc;
}

/* --- restoring into a directory ---------------------------------------------------------- */

struct stage {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	int fd;
	uint64_t size, written;
	char *why;
	size_t whylen;
};

static int mkdirs_for(struct stage *st, const char *rel)
{
	char p[PATH_MAX];
	if ((size_t)snprintf(p, sizeof(p), "%s/%s", st->dir, rel) >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *c = p + strlen(st->dir) + 1; (c = strchr(c, '/')) != NULL; c++) {
		*c = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return -1;
		*c = '/';
	}
	return 0;
}

static int stage_begin(void *ctx, const char *path, uint32_t mode, uint64_t size)
{
	struct stage *st = ctx;
	(void)mode; /* a data directory is the server user's alone: 0600 whatever was stored */
	if (mkdirs_for(st, path) != 0 || (size_t)snprintf(st->path, sizeof(st->path), "%s/%s",
	                                                  st->dir, path) >= sizeof(st->path)) {
		snprintf(st->why, st->whylen, "%s: %s", path, strerror(errno));
		return SERVER_ERR_IO;
	}
	st->fd = open(st->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (st->fd < 0) {
		snprintf(st->why, st->whylen, "%s: %s", path,
		         errno == EEXIST ? "twice in the backup: damaged file" : strerror(errno));
		return errno == EEXIST ? SERVER_ERR_INVALID : SERVER_ERR_IO;
	}
	st->size = size;
	st->written = 0;
	return 0;
}

static int stage_data(void *ctx, const uint8_t *p, size_t n)
{
	struct stage *st = ctx;
	while (n > 0) {
		ssize_t w = write(st->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(st->why, st->whylen, "%s: %s", st->path, strerror(errno));
			return SERVER_ERR_IO;
		}
		p += w;
		n -= (size_t)w;
		st->written += (uint64_t)w;
	}
	return 0;
}

static int stage_end(void *ctx)
{
	struct stage *st = ctx;
	int rc = fsync(st->fd);
	if (close(st->fd) != 0)
		rc = -1;
	st->fd = -1;
	if (rc != 0) {
		snprintf(st->why, st->whylen, "%s: %s", st->path, strerror(errno));
		return SERVER_ERR_IO;
	}
	return 0;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		struct stat sb;
		if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
			remove_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* fsync every directory of the tree: the renames and creations inside are durable */
static int sync_tree(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[PATH_MAX];
		struct stat sb;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
			rc = sync_tree(p);
	}
	closedir(d);
	return rc;
}

/* 0: absent; 1: an empty directory; -1: anything else (refused) */
static int target_state(const char *dir)
{
	struct stat sb;
	if (lstat(dir, &sb) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(sb.st_mode))
		return -1;
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	struct dirent *e;
	int state = 1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			state = -1;
	closedir(d);
	return state;
}

int server_backup_restore(const char *in_path, const char *data_dir, const char *passphrase,
                          struct server_backup_stats *stats, char *why, size_t whylen)
{
	why[0] = '\0';
	int state = target_state(data_dir);
	if (state < 0) {
		WHY("%s exists and is not an empty directory: restore onto a new data directory",
		    data_dir);
		return SERVER_ERR_EXISTS;
	}
	FILE *in = fopen(in_path, "rb");
	if (!in) {
		WHY("%s: %s", in_path, strerror(errno));
		return SERVER_ERR_IO;
	}
	struct stage st = {.fd = -1, .why = why, .whylen = whylen};
	if ((size_t)snprintf(st.dir, sizeof(st.dir), "%s.restoring-XXXXXX", data_dir) >=
	            sizeof(st.dir) ||
	    !mkdtemp(st.dir)) {
		WHY("cannot make a directory beside %s: %s", data_dir, strerror(errno));
		fclose(in);
		return SERVER_ERR_IO;
	}
	const struct backup_sink sink = {stage_begin, stage_data, stage_end, &st};
	int rc = backup_read(in, passphrase, NULL, &sink, stats, why, whylen);
	fclose(in);
	if (st.fd >= 0)
		close(st.fd);
	if (rc == 0) {
		char db[PATH_MAX + 16];
		snprintf(db, sizeof(db), "%s/%s", st.dir, SERVER_BACKUP_DB_NAME);
		if (access(db, F_OK) != 0) {
			WHY("no rights database in the backup");
			rc = SERVER_ERR_INVALID;
		}
	}
	if (rc == 0 && state == 1 && rmdir(data_dir) != 0) {
		WHY("%s: %s", data_dir, strerror(errno));
		rc = SERVER_ERR_IO;
	}
	if (rc == 0 && (sync_tree(st.dir) != 0 || rename(st.dir, data_dir) != 0 ||
	                sync_parent(data_dir) != 0)) {
		WHY("%s: %s", data_dir, strerror(errno));
		rc = SERVER_ERR_IO;
	}
	if (rc)
		remove_tree(st.dir);
	return rc;
}
