/*
 * controller/src/list_store.c — version-named list pairs plus an atomically replaced
 * pointer file (see controller/list_store.h for the scheme and why it is crash-safe).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller/error.h"
#include "controller/list_store.h"
#include "proto/error.h"

#define POINTER_NAME  "CURRENT"
#define POINTER_MAGIC "citypass list store 1"
#define MAX_SIG_FILE  (PROTO_SIG_MAX + 1)

struct controller_list_store {
	char *dir;
	uint16_t sector;
	const struct proto_keyring *keys;
	struct proto_list *list; /* mapped v<version>.cpl, or NULL */
	uint64_t version;
	bool fell_back;
};

/* --- files ---------------------------------------------------------------------------- */

static int path_of(const struct controller_list_store *s, char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", s->dir, name);
	return (n < 0 || (size_t)n >= cap) ? CONTROLLER_ERR_ARG : 0;
}

static int pair_name(char *out, size_t cap, uint64_t version, const char *ext)
{
	int n = snprintf(out, cap, "v%" PRIu64 ".%s", version, ext);
	return (n < 0 || (size_t)n >= cap) ? CONTROLLER_ERR_ARG : 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return CONTROLLER_ERR_IO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const struct controller_list_store *s)
{
	int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return CONTROLLER_ERR_IO;
	int rc = fsync(fd) == 0 ? 0 : CONTROLLER_ERR_IO;
	close(fd);
	return rc;
}

/* Write `name` so that it holds either its old content or all of `data`: temp, fsync,
 * rename. The caller fsyncs the directory to make the rename itself durable. */
static int write_atomic(const struct controller_list_store *s, const char *name,
                        const uint8_t *data, size_t len)
{
	char final[4096], tmp[4096 + 8];
	int rc = path_of(s, final, sizeof(final), name);
	if (rc)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return CONTROLLER_ERR_IO;
	rc = write_all(fd, data, len);
	if (!rc && fsync(fd) != 0)
		rc = CONTROLLER_ERR_IO;
	if (close(fd) != 0 && !rc)
		rc = CONTROLLER_ERR_IO;
	if (!rc && rename(tmp, final) != 0)
		rc = CONTROLLER_ERR_IO;
	if (rc)
		unlink(tmp);
	return rc;
}

static int read_small(const struct controller_list_store *s, const char *name, uint8_t *buf,
                      size_t cap, size_t *len)
{
	char p[4096];
	int rc = path_of(s, p, sizeof(p), name);
	if (rc)
		return rc;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return CONTROLLER_ERR_IO;
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(fd);
			return CONTROLLER_ERR_IO;
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (got == cap) {
			close(fd);
			return CONTROLLER_ERR_IO; /* larger than any valid file of this kind */
		}
	}
	close(fd);
	*len = got;
	return 0;
}

/* --- the pointer file ----------------------------------------------------------------- */

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int write_pointer(struct controller_list_store *s, uint64_t version,
                         const uint8_t hash[PROTO_HASH_LEN])
{
	char h[2 * PROTO_HASH_LEN + 1], text[256];
	hex(hash, PROTO_HASH_LEN, h);
	int n = snprintf(text, sizeof(text), POINTER_MAGIC "\nversion %" PRIu64 "\nsha256 %s\n",
	                 version, h);
	int rc = write_atomic(s, POINTER_NAME, (const uint8_t *)text, (size_t)n);
	return rc ? rc : fsync_dir(s);
}

static int read_pointer(struct controller_list_store *s, uint64_t *version, char hash_hex[65])
{
	uint8_t buf[256];
	size_t len;
	int rc = read_small(s, POINTER_NAME, buf, sizeof(buf) - 1, &len);
	if (rc)
		return rc;
	buf[len] = '\0';
	char magic_end;
	if (sscanf((const char *)buf, POINTER_MAGIC "%c version %" SCNu64 " sha256 %64s",
	           &magic_end, version, hash_hex) != 3 ||
	    magic_end != '\n' || strlen(hash_hex) != 64)
		return CONTROLLER_ERR_IO;
	return 0;
}

/* --- loading and verifying a pair ----------------------------------------------------- */

static bool accept_at_open(int rc)
{
	/* An expired list whose signature verified is still the newest truth this gate has:
	 * keep it, and let the site's stale policy decide how to use it. */
	return rc == 0 || rc == PROTO_ERR_LIST_EXPIRED;
}

static int load_pair(struct controller_list_store *s, uint64_t version, const char *want_hash,
                     int64_t now, struct proto_list **out)
{
	char name[64], p[4096], h[2 * PROTO_HASH_LEN + 1];
	uint8_t sig[MAX_SIG_FILE];
	size_t sig_len;
	struct proto_list *list = NULL;
	int rc = pair_name(name, sizeof(name), version, "sig");
	if (!rc)
		rc = read_small(s, name, sig, sizeof(sig), &sig_len);
	if (!rc)
		rc = pair_name(name, sizeof(name), version, "cpl");
	if (!rc)
		rc = path_of(s, p, sizeof(p), name);
	if (!rc)
		rc = proto_list_open_file(&list, p);
	if (rc)
		return rc;
	if (proto_list_header(list)->version != version) {
		rc = PROTO_ERR_LIST_FIELD;
		goto fail;
	}
	if (want_hash) {
		hex(proto_list_hash(list), PROTO_HASH_LEN, h);
		if (strcmp(h, want_hash) != 0) {
			rc = PROTO_ERR_LIST_SIGNATURE;
			goto fail;
		}
	}
	struct proto_list_policy pol = {
	        .sector = s->sector, .held_version = 0, .now = now, .keys = s->keys};
	rc = proto_list_verify(list, sig, sig_len, &pol);
	if (!accept_at_open(rc))
		goto fail;
	rc = proto_list_check_entries(list);
	if (rc)
		goto fail;
	*out = list;
	return 0;
fail:
	proto_list_close(list);
	return rc;
}

static bool parse_pair_name(const char *name, const char *ext, uint64_t *version)
{
	if (name[0] != 'v' || name[1] < '0' || name[1] > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(name + 1, &end, 10);
	if (errno || *end != '.' || strcmp(end + 1, ext) != 0)
		return false;
	*version = v;
	return true;
}

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Versions present on disk, newest first; *n is their count. */
static int list_versions(const struct controller_list_store *s, uint64_t **out, size_t *n)
{
	DIR *d = opendir(s->dir);
	if (!d)
		return CONTROLLER_ERR_IO;
	uint64_t *v = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t ver;
		if (!parse_pair_name(de->d_name, "cpl", &ver))
			continue;
		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			uint64_t *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return CONTROLLER_ERR_NOMEM;
			}
			v = nv;
		}
		v[count++] = ver;
	}
	closedir(d);
	if (count > 1)
		qsort(v, count, sizeof(*v), cmp_desc);
	*out = v;
	*n = count;
	return 0;
}

/* Remove temp files left by a crash, and pairs other than `keep_a` and `keep_b`. */
static void sweep(const struct controller_list_store *s, uint64_t keep_a, uint64_t keep_b)
{
	DIR *d = opendir(s->dir);
	if (!d)
		return;
	struct dirent *de;
	char p[4096];
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		uint64_t ver;
		bool stale_tmp = l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0;
		bool old_pair = (parse_pair_name(de->d_name, "cpl", &ver) ||
		                 parse_pair_name(de->d_name, "sig", &ver)) &&
		                ver != keep_a && ver != keep_b;
		if ((stale_tmp || old_pair) && path_of(s, p, sizeof(p), de->d_name) == 0)
			unlink(p);
	}
	closedir(d);
}

/* --- open / close --------------------------------------------------------------------- */

static int load_newest_valid(struct controller_list_store *s, uint64_t skip, int64_t now)
{
	uint64_t *v;
	size_t n;
	int rc = list_versions(s, &v, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n && !s->list; i++) {
		if (v[i] == skip)
			continue;
		struct proto_list *l;
		if (load_pair(s, v[i], NULL, now, &l) == 0) {
			s->list = l;
			s->version = v[i];
		}
	}
	free(v);
	if (s->list)
		/* Point CURRENT at what we use, so the next start does not search again. */
		return write_pointer(s, s->version, proto_list_hash(s->list));
	return 0;
}

int controller_list_store_open(struct controller_list_store **out, const char *dir, uint16_t sector,
                               const struct proto_keyring *keys, int64_t now)
{
	if (!out || !dir || !keys)
		return CONTROLLER_ERR_ARG;
	*out = NULL;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return CONTROLLER_ERR_IO;
	struct controller_list_store *s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		return CONTROLLER_ERR_NOMEM;
	}
	s->sector = sector;
	s->keys = keys;

	uint64_t named = 0;
	char want[65];
	int have_pointer = read_pointer(s, &named, want) == 0;
	if (have_pointer && load_pair(s, named, want, now, &s->list) == 0) {
		s->version = named;
	} else {
		uint64_t *v;
		size_t n;
		int rc = list_versions(s, &v, &n);
		if (rc) {
			controller_list_store_close(s);
			return rc;
		}
		free(v);
		s->fell_back = have_pointer || n > 0;
		rc = load_newest_valid(s, have_pointer ? named : 0, now);
		if (rc) {
			controller_list_store_close(s);
			return rc;
		}
	}
	/* Keep the pair in use and the newest one before it (a fallback); drop crash debris. */
	uint64_t *v, previous = 0;
	size_t n;
	if (list_versions(s, &v, &n) == 0) {
		for (size_t i = 0; i < n && !previous; i++)
			if (v[i] < s->version)
				previous = v[i];
		free(v);
	}
	sweep(s, s->version, previous);
	*out = s;
	return 0;
}

void controller_list_store_close(struct controller_list_store *s)
{
	if (!s)
		return;
	proto_list_close(s->list);
	free(s->dir);
	free(s);
}

struct proto_list *controller_list_store_list(const struct controller_list_store *s)
{
	return s ? s->list : NULL;
}

uint64_t controller_list_store_version(const struct controller_list_store *s)
{
	return s ? s->version : 0;
}

bool controller_list_store_fell_back(const struct controller_list_store *s)
{
	return s && s->fell_back;
}

/* --- installing ----------------------------------------------------------------------- */

/* Make a verified (list, signature) pair current: pair files, then the pointer. */
static int commit(struct controller_list_store *s, const uint8_t *list, size_t len,
                  const uint8_t *sig, size_t sig_len)
{
	struct proto_list *parsed = NULL;
	int rc = proto_list_open_mem(&parsed, list, len);
	if (rc)
		return rc;
	uint64_t version = proto_list_header(parsed)->version;
	uint8_t hash[PROTO_HASH_LEN];
	memcpy(hash, proto_list_hash(parsed), PROTO_HASH_LEN);
	proto_list_close(parsed);

	char name[64], p[4096];
	rc = pair_name(name, sizeof(name), version, "cpl");
	if (!rc)
		rc = write_atomic(s, name, list, len);
	if (!rc)
		rc = pair_name(name, sizeof(name), version, "sig");
	if (!rc)
		rc = write_atomic(s, name, sig, sig_len);
	if (!rc)
		rc = fsync_dir(s);
	if (!rc)
		rc = write_pointer(s, version, hash); /* the commit point */
	if (rc)
		return rc;

	/* Committed: from here on a failure only affects this process, not the disk. */
	struct proto_list *mapped = NULL;
	rc = pair_name(name, sizeof(name), version, "cpl");
	if (!rc)
		rc = path_of(s, p, sizeof(p), name);
	if (!rc)
		rc = proto_list_open_file(&mapped, p);
	if (rc)
		return rc;
	uint64_t previous = s->version;
	proto_list_close(s->list);
	s->list = mapped;
	s->version = version;
	s->fell_back = false;
	sweep(s, version, previous);
	return 0;
}

int controller_list_store_install_snapshot(struct controller_list_store *s, const uint8_t *list,
                                           size_t list_len, const uint8_t *sig, size_t sig_len,
                                           int64_t now)
{
	if (!s || !list || !sig)
		return CONTROLLER_ERR_ARG;
	struct proto_list *l = NULL;
	int rc = proto_list_open_mem(&l, list, list_len);
	if (rc)
		return rc;
	struct proto_list_policy pol = {
	        .sector = s->sector, .held_version = s->version, .now = now, .keys = s->keys};
	rc = proto_list_verify(l, sig, sig_len, &pol);
	if (!rc)
		rc = proto_list_check_entries(l);
	proto_list_close(l);
	return rc ? rc : commit(s, list, list_len, sig, sig_len);
}

int controller_list_store_apply_delta(struct controller_list_store *s, const uint8_t *delta,
                                      size_t delta_len, const uint8_t *sig, size_t sig_len,
                                      int64_t now)
{
	if (!s || !delta || !sig)
		return CONTROLLER_ERR_ARG;
	if (!s->list)
		return CONTROLLER_ERR_NO_LIST;
	struct proto_list_policy pol = {
	        .sector = s->sector, .held_version = s->version, .now = now, .keys = s->keys};
	uint8_t *out = NULL, rsig[PROTO_SIG_MAX];
	size_t out_len = 0, rsig_len = 0;
	int rc = proto_delta_apply(s->list, delta, delta_len, sig, sig_len, &pol, &out, &out_len,
	                           rsig, &rsig_len);
	if (rc)
		return rc;
	struct proto_list *l = NULL;
	rc = proto_list_open_mem(&l, out, out_len);
	if (!rc)
		rc = proto_list_check_entries(l);
	proto_list_close(l);
	if (!rc)
		rc = commit(s, out, out_len, rsig, rsig_len);
	free(out);
	return rc;
}

int controller_list_store_lookup(const struct controller_list_store *s,
                                 const uint8_t key[PROTO_LIST_KEY_LEN],
                                 struct controller_pass *pass)
{
	if (!s || !key || !pass)
		return CONTROLLER_ERR_ARG;
	memset(pass, 0, sizeof(*pass));
	if (!s->list)
		return CONTROLLER_ERR_NO_LIST;
	int rc = proto_list_lookup(s->list, key, &pass->entry, &pass->profile);
	if (rc == PROTO_ERR_LIST_NOT_FOUND)
		return 0;
	pass->found = rc == 0;
	return rc;
}

/* --- expiry --------------------------------------------------------------------------- */

enum controller_list_state controller_list_state_at(const struct proto_list *list,
                                                    const struct controller_stale_policy *policy,
                                                    int64_t now)
{
	if (!list)
		return CONTROLLER_LIST_EXPIRED;
	int64_t expires = proto_list_header(list)->expires_at;
	if (now < expires)
		return CONTROLLER_LIST_FRESH;
	if (policy && policy->mode == CONTROLLER_STALE_ACCEPT_KNOWN &&
	    now - expires < (int64_t)policy->grace_hours * 3600)
		return CONTROLLER_LIST_STALE;
	return CONTROLLER_LIST_EXPIRED;
}
