/*
 * list_store_files.c — the list store's files: staged writes (temp files made durable
 * together, then renamed), the CURRENT pointer (the commit point), the floor beside the
 * directory, and the sweep that removes what no version uses.
 */
#define _GNU_SOURCE /* sync_file_range */
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

/* --- staged writes ------------------------------------------------------------------- */

/*
 * An install writes several files (a one-pass delta: a chunk's .dat and .idx, the head, the
 * manifest and its signature, then CURRENT and the floor). Made durable one at a time
 * (write, fsync, rename), each fsync is a commit of the file system's journal: ten per delta,
 * and on a busy disk each one waits its turn. Staged, they are all written first with their
 * writeback started (sync_file_range), then fsync'ed together: the first fsync commits the
 * journal for all of them and the others find their data already on the disk. Only then are
 * they renamed into place. What a power cut may leave is unchanged: no file takes its name
 * before its data is durable, and CURRENT names a version only once every file of it is
 * (ls_publish). tests/crash explores those states.
 */
#define LS_STAGE_MAX 64 /* files open at once; a snapshot's chunks go in groups */

struct ls_staged {
	int fd;
	bool hold; /* fsync'ed with the others, renamed by ls_publish itself */
	char *tmp, *final;
};

struct ls_stage {
	size_t n;
	struct ls_staged f[LS_STAGE_MAX];
};

static void staged_free(struct ls_staged *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->tmp);
	free(f->final);
	f->fd = -1;
	f->tmp = f->final = NULL;
}

static int tmp_name(const char *final, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s.tmp", final);
	return (n < 0 || (size_t)n >= cap) ? CONTROLLER_ERR_ARG : 0;
}

void ls_stage_abort(struct controller_list_store *s)
{
	struct ls_stage *st = s->stage;
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++) {
		if (st->f[i].tmp)
			unlink(st->f[i].tmp);
		staged_free(&st->f[i]);
	}
	st->n = 0;
}

/* final receives data once ls_stage_flush (or, held, ls_publish) returns 0. */
static int stage_file(struct controller_list_store *s, const char *final, const uint8_t *data,
                      size_t len, bool hold, int *read_fd)
{
	if (!s->stage && !(s->stage = calloc(1, sizeof(*s->stage))))
		return CONTROLLER_ERR_NOMEM;
	struct ls_stage *st = s->stage;
	if (st->n == LS_STAGE_MAX) {
		int rc = ls_stage_flush(s);
		if (rc)
			return rc;
	}
	char tmp[4200];
	int rc = tmp_name(final, tmp, sizeof(tmp));
	if (rc)
		return rc;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return CONTROLLER_ERR_IO;
	struct ls_staged *f = &st->f[st->n];
	f->fd = fd;
	f->hold = hold;
	f->tmp = strdup(tmp);
	f->final = strdup(final);
	st->n++; /* from here ls_stage_abort removes it */
	if (!f->tmp || !f->final)
		return CONTROLLER_ERR_NOMEM;
	rc = write_all(fd, data, len);
	if (rc)
		return rc;
	/* a hint only: durability is the fsync in ls_stage_flush (EINVAL/ENOSYS: no matter) */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	if (read_fd) {
		/* the same inode under its final name once renamed */
		*read_fd = open(tmp, O_RDONLY | O_CLOEXEC);
		if (*read_fd < 0)
			return CONTROLLER_ERR_IO;
	}
	return 0;
}

int ls_stage_write(struct controller_list_store *s, const char *name, const uint8_t *data,
                   size_t len, int *read_fd)
{
	char p[4096];
	if (read_fd)
		*read_fd = -1;
	int rc = ls_path(s, p, sizeof(p), name);
	if (rc == 0)
		rc = stage_file(s, p, data, len, false, read_fd);
	if (rc == 0) {
		s->stats.bytes_written += len;
		s->stats.files_written++;
	}
	return rc;
}

int ls_stage_flush(struct controller_list_store *s)
{
	struct ls_stage *st = s->stage;
	if (!st)
		return 0;
	int rc = 0;
	for (size_t i = 0; i < st->n; i++) {
		struct ls_staged *f = &st->f[i];
		if (f->fd < 0)
			continue;
		if (fsync(f->fd) != 0 && !rc)
			rc = CONTROLLER_ERR_IO;
		if (close(f->fd) != 0 && !rc)
			rc = CONTROLLER_ERR_IO;
		f->fd = -1;
	}
	for (size_t i = 0; rc == 0 && i < st->n; i++) {
		struct ls_staged *f = &st->f[i];
		if (!f->hold && rename(f->tmp, f->final) != 0)
			rc = CONTROLLER_ERR_IO;
	}
	if (rc)
		return rc; /* the caller sweeps, which aborts what is left */
	size_t kept = 0;
	for (size_t i = 0; i < st->n; i++) {
		if (st->f[i].hold)
			st->f[kept++] = st->f[i];
		else
			staged_free(&st->f[i]);
	}
	st->n = kept;
	return 0;
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

static int pointer_text(char *text, size_t cap, unsigned format, uint64_t version,
                        const uint8_t hash[PROTO_HASH_LEN])
{
	char h[2 * PROTO_HASH_LEN + 1];
	hex(hash, PROTO_HASH_LEN, h);
	return format == 1
	               ? snprintf(text, cap, POINTER_MAGIC_1 "\nversion %" PRIu64 "\nsha256 %s\n",
	                          version, h)
	               : snprintf(text, cap, POINTER_MAGIC_2 "\nversion %" PRIu64 "\nmanifest %s\n",
	                          version, h);
}

static int floor_text(char *text, size_t cap, uint64_t version)
{
	return snprintf(text, cap, FLOOR_MAGIC "\nversion %" PRIu64 "\n", version);
}

static int fsync_parent(const char *path)
{
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = '\0';
	else
		snprintf(parent, sizeof(parent), "%s", slash ? "/" : ".");
	return fsync_path(parent);
}

int ls_publish(struct controller_list_store *s, unsigned format, uint64_t version,
               const uint8_t hash[PROTO_HASH_LEN])
{
	char text[256], ptr[4096], ptr_tmp[4200], floor_tmp[4200];
	int n = pointer_text(text, sizeof(text), format, version, hash);
	int rc = ls_path(s, ptr, sizeof(ptr), LS_POINTER);
	if (rc == 0)
		rc = tmp_name(ptr, ptr_tmp, sizeof(ptr_tmp));
	if (rc == 0)
		rc = tmp_name(s->floor_path, floor_tmp, sizeof(floor_tmp));
	if (rc)
		return rc;
	/* CURRENT and the floor go to the disk with the version's files, under temp names */
	rc = stage_file(s, ptr, (const uint8_t *)text, (size_t)n, true, NULL);
	size_t ptr_len = (size_t)n;
	bool floor_moves = version > s->floor;
	if (rc == 0 && floor_moves) {
		n = floor_text(text, sizeof(text), version);
		rc = stage_file(s, s->floor_path, (const uint8_t *)text, (size_t)n, true, NULL);
	}
	if (rc == 0)
		rc = ls_stage_flush(s); /* every file durable, the version's own renamed */
	if (rc == 0)
		rc = ls_fsync_dir(s); /* their names durable before CURRENT names them */
	if (rc == 0 && rename(ptr_tmp, ptr) != 0)
		rc = CONTROLLER_ERR_IO;
	if (rc == 0)
		rc = ls_fsync_dir(s); /* the commit point */
	if (rc) {
		ls_stage_abort(s);
		return rc;
	}
	s->stats.bytes_written += ptr_len;
	s->stats.files_written++;
	/* Committed. The floor follows (a crash before it leaves floor <= CURRENT, which is
	 * fine; the other order could refuse a committed version at the next open). */
	if (floor_moves && rename(floor_tmp, s->floor_path) == 0 &&
	    fsync_parent(s->floor_path) == 0) {
		s->floor = version;
		s->stats.files_written++;
	}
	ls_stage_abort(s); /* nothing is left staged; a floor not renamed is removed */
	return 0;
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
	int n = floor_text(text, sizeof(text), version);
	int rc = write_file_atomic(s->floor_path, (const uint8_t *)text, (size_t)n);
	if (rc == 0)
		rc = fsync_parent(s->floor_path); /* the floor's directory is the store's parent */
	if (rc == 0) {
		s->stats.bytes_written += (uint64_t)n;
		s->stats.files_written++;
		s->floor = version;
	}
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

static void unlink_name(const struct controller_list_store *s, const char *name)
{
	char p[4096];
	if (ls_path(s, p, sizeof(p), name) == 0)
		unlink(p);
}

void ls_sweep(struct controller_list_store *s, const struct ls_version *keep)
{
	ls_stage_abort(s); /* an install that failed leaves its staged files open */
	DIR *d = opendir(s->dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, LS_POINTER) == 0)
			continue;
		if (!used_by(keep, de->d_name))
			unlink_name(s, de->d_name);
	}
	closedir(d);
}

void ls_sweep_replaced(struct controller_list_store *s, const struct ls_version *old,
                       const struct ls_version *keep)
{
	if (!old || !keep || old->format != 2 || keep->format != 2 ||
	    old->manifest.n_chunks != keep->manifest.n_chunks) {
		ls_sweep(s, keep);
		return;
	}
	/* A delta knows what it replaced: reading a directory of 2 x 2^bits files and matching
	 * every name was O(chunks) in every install. A name both versions use (the same version
	 * again, a chunk not changed) is the new version's file: it stays. Without a version
	 * before (a first install, a store that opened empty) what the directory holds is not
	 * known: it is read. */
	char name[PROTO_CLIST_NAME_MAX];
	if (old->version != keep->version) {
		proto_clist_name_head(name, old->version);
		unlink_name(s, name);
		proto_clist_name_manifest(name, old->version);
		unlink_name(s, name);
		proto_clist_name_sig(name, old->version);
		unlink_name(s, name);
	}
	for (uint32_t j = 0; j < old->manifest.n_chunks; j++) {
		uint64_t since = old->manifest.chunks[j].since;
		if (since == keep->manifest.chunks[j].since)
			continue;
		proto_clist_name_chunk(name, j, since, 1);
		unlink_name(s, name);
		proto_clist_name_chunk(name, j, since, 0);
		unlink_name(s, name);
	}
}
