/*
 * list_store_files.c — the list store's files: atomic writes (temp, fsync, rename), the
 * CURRENT pointer (the commit point), the floor beside the directory, and the sweep that
 * removes what no version uses.
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
#include "list_store_internal.h"

#define POINTER_MAGIC_1 "citypass list store 1"
#define POINTER_MAGIC_2 "citypass list store 2"
#define FLOOR_MAGIC     "citypass list floor 1"

int ls_path(const struct controller_list_store *s, char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", s->dir, name);
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

static int write_file_atomic(const char *final, const uint8_t *data, size_t len)
{
	char tmp[4200];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return CONTROLLER_ERR_ARG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return CONTROLLER_ERR_IO;
	int rc = write_all(fd, data, len);
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

int ls_write_atomic(struct controller_list_store *s, const char *name, const uint8_t *data,
                    size_t len)
{
	char p[4096];
	int rc = ls_path(s, p, sizeof(p), name);
	if (rc == 0)
		rc = write_file_atomic(p, data, len);
	if (rc == 0) {
		s->stats.bytes_written += len;
		s->stats.files_written++;
	}
	return rc;
}

static int fsync_path(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return CONTROLLER_ERR_IO;
	int rc = fsync(fd) == 0 ? 0 : CONTROLLER_ERR_IO;
	close(fd);
	return rc;
}

int ls_fsync_dir(const struct controller_list_store *s)
{
	return fsync_path(s->dir);
}

int ls_read_file(const struct controller_list_store *s, const char *name, size_t max, uint8_t **buf,
                 size_t *len)
{
	char p[4096];
	int rc = ls_path(s, p, sizeof(p), name);
	if (rc)
		return rc;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return CONTROLLER_ERR_IO;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return CONTROLLER_ERR_IO;
	}
	size_t want = (size_t)st.st_size, got = 0;
	uint8_t *b = malloc(want ? want : 1);
	if (!b) {
		close(fd);
		return CONTROLLER_ERR_NOMEM;
	}
	while (got < want) {
		ssize_t r = read(fd, b + got, want - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break; /* shrank under us: what was read is what there is */
		got += (size_t)r;
	}
	close(fd);
	if (got != want) {
		free(b);
		return CONTROLLER_ERR_IO;
	}
	*buf = b;
	*len = got;
	return 0;
}

/* --- CURRENT ------------------------------------------------------------------------- */

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

int ls_pointer_write(struct controller_list_store *s, unsigned format, uint64_t version,
                     const uint8_t hash[PROTO_HASH_LEN])
{
	char h[2 * PROTO_HASH_LEN + 1], text[256];
	hex(hash, PROTO_HASH_LEN, h);
	int n = format == 1
	                ? snprintf(text, sizeof(text),
	                           POINTER_MAGIC_1 "\nversion %" PRIu64 "\nsha256 %s\n", version, h)
	                : snprintf(text, sizeof(text),
	                           POINTER_MAGIC_2 "\nversion %" PRIu64 "\nmanifest %s\n", version,
	                           h);
	int rc = ls_write_atomic(s, LS_POINTER, (const uint8_t *)text, (size_t)n);
	return rc ? rc : ls_fsync_dir(s);
}

int ls_pointer_read(const struct controller_list_store *s, unsigned *format, uint64_t *version,
                    uint8_t hash[PROTO_HASH_LEN])
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = ls_read_file(s, LS_POINTER, 255, &buf, &len);
	if (rc)
		return rc;
	char text[256], h[65] = "", end;
	memcpy(text, buf, len);
	text[len] = '\0';
	free(buf);
	if (sscanf(text, POINTER_MAGIC_2 "%c version %" SCNu64 " manifest %64s", &end, version,
	           h) == 3 &&
	    end == '\n')
		*format = 2;
	else if (sscanf(text, POINTER_MAGIC_1 "%c version %" SCNu64 " sha256 %64s", &end, version,
	                h) == 3 &&
	         end == '\n')
		*format = 1;
	else
		return CONTROLLER_ERR_IO;
	if (strlen(h) != 64 || unhex(h, hash, PROTO_HASH_LEN) != 0 || *version == 0)
		return CONTROLLER_ERR_IO;
	return 0;
}

/* --- the floor ----------------------------------------------------------------------- */

int ls_floor_read(struct controller_list_store *s)
{
	FILE *f = fopen(s->floor_path, "re");
	s->floor = 0;
	if (!f)
		return errno == ENOENT ? 0 : CONTROLLER_ERR_IO;
	char line[128];
	uint64_t v = 0;
	int ok = fgets(line, sizeof(line), f) && strcmp(line, FLOOR_MAGIC "\n") == 0 &&
	         fscanf(f, "version %" SCNu64, &v) == 1;
	fclose(f);
	if (!ok)
		return CONTROLLER_ERR_IO;
	s->floor = v;
	return 0;
}

int ls_floor_write(struct controller_list_store *s, uint64_t version)
{
	char text[128];
	int n = snprintf(text, sizeof(text), FLOOR_MAGIC "\nversion %" PRIu64 "\n", version);
	int rc = write_file_atomic(s->floor_path, (const uint8_t *)text, (size_t)n);
	if (rc == 0) {
		/* the floor's directory is the store's parent */
		char parent[4096];
		snprintf(parent, sizeof(parent), "%s", s->floor_path);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent)
			*slash = '\0';
		else
			snprintf(parent, sizeof(parent), "%s", slash ? "/" : ".");
		rc = fsync_path(parent);
		s->stats.bytes_written += (uint64_t)n;
		s->stats.files_written++;
	}
	if (rc == 0)
		s->floor = version;
	return rc;
}

/* --- sweeping ------------------------------------------------------------------------ */

static bool used_by(const struct ls_version *v, const char *name)
{
	char want[PROTO_CLIST_NAME_MAX];
	if (!v)
		return false;
	if (v->format == 1) {
		snprintf(want, sizeof(want), "v%" PRIu64 ".cpl", v->version);
		if (strcmp(name, want) == 0)
			return true;
		snprintf(want, sizeof(want), "v%" PRIu64 ".sig", v->version);
		return strcmp(name, want) == 0;
	}
	proto_clist_name_manifest(want, v->version);
	if (strcmp(name, want) == 0)
		return true;
	proto_clist_name_sig(want, v->version);
	if (strcmp(name, want) == 0)
		return true;
	proto_clist_name_head(want, v->version);
	if (strcmp(name, want) == 0)
		return true;
	/* c<jjj>-v<since>.idx|dat: the chunk number says which reference to compare */
	unsigned chunk;
	uint64_t since;
	char ext[4];
	int end = 0;
	if (sscanf(name, "c%3x-v%" SCNu64 ".%3s%n", &chunk, &since, ext, &end) != 3 ||
	    name[end] != '\0' || chunk >= v->manifest.n_chunks)
		return false;
	proto_clist_name_chunk(want, chunk, v->manifest.chunks[chunk].since, ext[0] == 'i');
	return strcmp(name, want) == 0;
}

void ls_sweep(struct controller_list_store *s, const struct ls_version *keep)
{
	DIR *d = opendir(s->dir);
	if (!d)
		return;
	struct dirent *de;
	char p[4096];
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, LS_POINTER) == 0)
			continue;
		if (used_by(keep, de->d_name))
			continue;
		if (ls_path(s, p, sizeof(p), de->d_name) == 0)
			unlink(p);
	}
	closedir(d);
}
