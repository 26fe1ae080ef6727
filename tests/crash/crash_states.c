/*
 * crash_states.c — every state a power cut could leave (crash_record.h), materialised.
 *
 * A state is a crash point k (operations [0, k) were issued) and, among the operations
 * not yet durable at k, those the disk had nevertheless persisted. The file system is
 * modelled in memory: names (directory entries) map to files, files hold bytes; the base
 * copy is the state before the workload. Directory entries and file contents persist
 * independently, as POSIX allows: a file's bytes may be on the disk while its name is not
 * (then it is lost), a rename may persist before the data it was meant to publish.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash_record.h"

#define SECTOR      512
#define MAX_FILES   4096
#define MAX_NAMES   4096
#define SEEN_STATES (1u << 20)

struct content {
	int used;
	uint8_t *data;
	size_t len;
};

struct model {
	/* files: index = recorder's file id + base offset; base files first */
	struct content files[MAX_FILES];
	int bound[MAX_FILES]; /* recorder id -> model file, -1 unbound */
	struct {
		char name[CRASH_PATH_MAX];
		int file;
	} names[MAX_NAMES];
	size_t n_names;
	int next_model_file;
};

/* --- the base copy --------------------------------------------------------------------- */

struct base_file {
	char name[CRASH_PATH_MAX];
	uint8_t *data;
	size_t len;
};
static struct base_file base_files[MAX_NAMES];
static size_t n_base;

static int read_file(const char *path, uint8_t **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	size_t cap = 4096, n = 0;
	uint8_t *b = malloc(cap);
	size_t r;
	while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			uint8_t *g = realloc(b, cap *= 2);
			if (!g) {
				free(b);
				b = NULL;
			}
			b = g;
		}
	}
	fclose(f);
	if (!b)
		return -1;
	*data = b;
	*len = n;
	return 0;
}

static int load_base(const char *root, const char *rel)
{
	char path[2 * CRASH_PATH_MAX];
	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char sub[CRASH_PATH_MAX], full[2 * CRASH_PATH_MAX];
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		struct stat st;
		if (lstat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = load_base(root, sub);
		} else if (S_ISREG(st.st_mode) && n_base < MAX_NAMES) {
			struct base_file *b = &base_files[n_base];
			snprintf(b->name, sizeof(b->name), "%s", sub);
			if (read_file(full, &b->data, &b->len) == 0)
				n_base++;
			else
				rc = -1;
		}
	}
	closedir(d);
	return rc;
}

/* --- the model ------------------------------------------------------------------------- */

static void model_reset(struct model *m)
{
	for (int i = 0; i < m->next_model_file; i++)
		free(m->files[i].data);
	memset(m->files, 0, sizeof(m->files));
	for (size_t i = 0; i < MAX_FILES; i++)
		m->bound[i] = -1;
	m->n_names = 0;
	m->next_model_file = 0;
	for (size_t i = 0; i < n_base; i++) {
		int f = m->next_model_file++;
		m->files[f].used = 1;
		m->files[f].len = base_files[i].len;
		m->files[f].data = malloc(base_files[i].len ? base_files[i].len : 1);
		memcpy(m->files[f].data, base_files[i].data, base_files[i].len);
		memcpy(m->names[m->n_names].name, base_files[i].name, CRASH_PATH_MAX);
		m->names[m->n_names++].file = f;
	}
}

static int name_index(const struct model *m, const char *name)
{
	for (size_t i = 0; i < m->n_names; i++)
		if (m->names[i].name[0] && strcmp(m->names[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void name_set(struct model *m, const char *name, int file)
{
	int i = name_index(m, name);
	if (i < 0) {
		if (m->n_names == MAX_NAMES)
			abort();
		i = (int)m->n_names++;
		size_t n = strlen(name);
		if (n >= CRASH_PATH_MAX)
			n = CRASH_PATH_MAX - 1;
		memcpy(m->names[i].name, name, n);
		m->names[i].name[n] = '\0';
	}
	m->names[i].file = file;
}

static void name_remove(struct model *m, const char *name)
{
	int i = name_index(m, name);
	if (i >= 0)
		m->names[i].name[0] = '\0';
}

/* The model file a recorder id denotes: bound at its creation, or, for a base file, at
 * its first operation (by the name it had then in the record). -1: it does not exist. */
static int model_file(struct model *m, const struct crash_op *op)
{
	if (op->file < 0 || op->file >= MAX_FILES)
		return -1;
	if (m->bound[op->file] >= 0)
		return m->bound[op->file];
	int i = name_index(m, op->path);
	if (i < 0)
		return -1;
	m->bound[op->file] = m->names[i].file;
	return m->bound[op->file];
}

static void content_write(struct content *c, int64_t off, const uint8_t *data, size_t len)
{
	size_t end = (size_t)off + len;
	if (end > c->len) {
		uint8_t *g = realloc(c->data, end);
		if (!g)
			abort();
		memset(g + c->len, 0, end - c->len);
		c->data = g;
		c->len = end;
	}
	memcpy(c->data + off, data, len);
}

static void content_truncate(struct content *c, int64_t len)
{
	if ((size_t)len > c->len) {
		content_write(c, len - 1, (const uint8_t *)"", 1);
		c->data[len - 1] = 0;
	}
	c->len = (size_t)len;
}

/* Apply one operation (torn: only `keep` bytes of a write). */
static void apply(struct model *m, const struct crash_op *op, size_t keep)
{
	int f;
	switch (op->kind) {
	case CRASH_CREATE:
		f = m->next_model_file++;
		if (f >= MAX_FILES)
			abort();
		m->files[f].used = 1;
		m->bound[op->file] = f;
		name_set(m, op->path, f);
		break;
	case CRASH_WRITE:
		if ((f = model_file(m, op)) >= 0)
			content_write(&m->files[f], op->off, op->data,
			              keep < op->len ? keep : op->len);
		break;
	case CRASH_TRUNCATE:
		if ((f = model_file(m, op)) >= 0)
			content_truncate(&m->files[f], op->off);
		break;
	case CRASH_RENAME: {
		int i = name_index(m, op->path);
		if (i < 0)
			break; /* its source name never reached the disk */
		f = m->names[i].file;
		if (op->file >= 0 && op->file < MAX_FILES && m->bound[op->file] < 0)
			m->bound[op->file] = f;
		name_remove(m, op->path);
		name_set(m, op->path2, f);
		break;
	}
	case CRASH_UNLINK:
		name_remove(m, op->path);
		break;
	default: /* syncs, marks, mkdir (directories exist where their files are) */
		break;
	}
}

/* --- durability --------------------------------------------------------------------------- */

static void parent(const char *rel, char *dir, size_t cap)
{
	const char *s = strrchr(rel, '/');
	if (!s)
		snprintf(dir, cap, ".");
	else
		snprintf(dir, cap, "%.*s", (int)(s - rel), rel);
}

static int changes_state(enum crash_op_kind k)
{
	return k == CRASH_CREATE || k == CRASH_WRITE || k == CRASH_TRUNCATE || k == CRASH_RENAME ||
	       k == CRASH_UNLINK;
}

/* Whether op i was made durable by a sync issued before op k. */
static int durable(const struct crash_log *log, size_t i, size_t k)
{
	const struct crash_op *op = &log->ops[i];
	char d1[CRASH_PATH_MAX], d2[CRASH_PATH_MAX];
	switch (op->kind) {
	case CRASH_WRITE:
	case CRASH_TRUNCATE:
		for (size_t j = i + 1; j < k; j++)
			if (log->ops[j].kind == CRASH_SYNC && log->ops[j].file == op->file)
				return 1;
		return 0;
	case CRASH_CREATE:
	case CRASH_UNLINK:
	case CRASH_RENAME: {
		parent(op->path, d1, sizeof(d1));
		int need2 = op->kind == CRASH_RENAME;
		if (need2)
			parent(op->path2, d2, sizeof(d2));
		int got1 = 0, got2 = !need2;
		for (size_t j = i + 1; j < k; j++) {
			if (log->ops[j].kind != CRASH_DIRSYNC)
				continue;
			got1 |= strcmp(log->ops[j].path, d1) == 0;
			if (need2)
				got2 |= strcmp(log->ops[j].path, d2) == 0;
		}
		return got1 && got2;
	}
	default:
		return 1;
	}
}

/* --- the states --------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The state's fingerprint: sorted names and their contents (-shm left out). */
static uint64_t fingerprint(const struct model *m)
{
	const char *list[MAX_NAMES];
	size_t n = 0;
	for (size_t i = 0; i < m->n_names; i++)
		if (m->names[i].name[0])
			list[n++] = m->names[i].name;
	qsort(list, n, sizeof(list[0]), cmp_names);
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		int idx = name_index(m, list[i]);
		const struct content *c = &m->files[m->names[idx].file];
		h = fnv(h, list[i], strlen(list[i]) + 1);
		h = fnv(h, &c->len, sizeof(c->len));
		h = fnv(h, c->data, c->len);
	}
	return h;
}

static int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char sub[2 * CRASH_PATH_MAX];
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			rm_rf(sub);
		}
		if (d)
			closedir(d);
		return rmdir(path);
	}
	return unlink(path);
}

static void mkdirs(const char *path)
{
	char p[2 * CRASH_PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0700);
			*s = '/';
		}
	mkdir(p, 0700);
}

static int write_out(const struct model *m, const char *dir)
{
	if (rm_rf(dir) != 0)
		return -1;
	mkdirs(dir);
	/* the list store's directory exists in every state (created before any workload) */
	char lists[2 * CRASH_PATH_MAX];
	snprintf(lists, sizeof(lists), "%s/lists", dir);
	mkdir(lists, 0700);
	for (size_t i = 0; i < m->n_names; i++) {
		const char *name = m->names[i].name;
		size_t nl = strlen(name);
		if (!name[0] || (nl > 4 && strcmp(name + nl - 4, "-shm") == 0))
			continue;
		char path[2 * CRASH_PATH_MAX], pd[2 * CRASH_PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		snprintf(pd, sizeof(pd), "%s", path);
		char *slash = strrchr(pd, '/');
		if (slash) {
			*slash = '\0';
			mkdirs(pd);
		}
		const struct content *c = &m->files[m->names[i].file];
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			return -1;
		if (c->len && write(fd, c->data, c->len) != (ssize_t)c->len) {
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

struct variant {
	const char *how;
	long which;
};

#define SMALL_PENDING 16

static struct model model;
static uint64_t *seen;
static size_t n_seen;

static int seen_before(uint64_t h)
{
	for (size_t i = 0; i < n_seen; i++)
		if (seen[i] == h)
			return 1;
	if (n_seen < SEEN_STATES)
		seen[n_seen++] = h;
	return 0;
}

/* Build the state: ops before k, the durable ones and those of `keep` (a mask over the
 * pending list), `torn` (index in pending, -1 none) cut to its first `torn_len` bytes. */
static void build(const struct crash_log *log, size_t k, const size_t *pending, size_t n_pending,
                  const uint8_t *keep, long torn, size_t torn_len)
{
	model_reset(&model);
	size_t p = 0;
	for (size_t i = 0; i < k; i++) {
		const struct crash_op *op = &log->ops[i];
		if (!changes_state(op->kind))
			continue;
		if (p < n_pending && pending[p] == i) {
			if (keep[p])
				apply(&model, op, (long)p == torn ? torn_len : op->len);
			p++;
			continue;
		}
		apply(&model, op, op->len);
	}
}

long crash_states_explore(const struct crash_log *log, const char *base, const char *dir,
                          int (*fn)(void *ctx, const struct crash_state *st, const char *dir),
                          void *ctx)
{
	n_base = 0;
	if (load_base(base, "") != 0)
		return -1;
	seen = calloc(SEEN_STATES, sizeof(*seen));
	size_t *pending = calloc(log->n + 1, sizeof(*pending));
	uint8_t *keep = calloc(log->n + 1, 1);
	if (!seen || !pending || !keep)
		return -1;
	n_seen = 0;
	long states = 0;
	int stop = 0;
	for (size_t k = 0; k <= log->n && !stop; k++) {
		if (k > 0 && !changes_state(log->ops[k - 1].kind) &&
		    log->ops[k - 1].kind != CRASH_SYNC && log->ops[k - 1].kind != CRASH_DIRSYNC)
			continue; /* a mark: the same state as before it */
		size_t np = 0;
		for (size_t i = 0; i < k; i++)
			if (changes_state(log->ops[i].kind) && !durable(log, i, k))
				pending[np++] = i;
		/* the variants: (how, which); "only-one" and the prefixes for small pending
		 * sets, where the orders the kernel may choose are few enough to try */
		static struct variant v[8192];
		size_t nv = 0;
		v[nv++] = (struct variant){"all", -1};
		if (np)
			v[nv++] = (struct variant){"none", -1};
		for (size_t j = 0; j < np && nv + 4 < sizeof(v) / sizeof(v[0]); j++) {
			v[nv++] = (struct variant){"all-but-one", (long)j};
			if (np > 1 && np <= SMALL_PENDING)
				v[nv++] = (struct variant){"only-one", (long)j};
			if (j > 0 && j + 1 < np && np <= SMALL_PENDING)
				v[nv++] = (struct variant){"prefix", (long)j};
			if (log->ops[pending[j]].kind == CRASH_WRITE &&
			    log->ops[pending[j]].len > SECTOR)
				v[nv++] = (struct variant){"torn", (long)j};
		}
		for (size_t t = 0; t < nv && !stop; t++) {
			long torn = -1;
			size_t torn_len = 0;
			for (size_t j = 0; j < np; j++) {
				if (!strcmp(v[t].how, "all") || !strcmp(v[t].how, "torn"))
					keep[j] = 1;
				else if (!strcmp(v[t].how, "none"))
					keep[j] = 0;
				else if (!strcmp(v[t].how, "all-but-one"))
					keep[j] = (long)j != v[t].which;
				else if (!strcmp(v[t].how, "only-one"))
					keep[j] = (long)j == v[t].which;
				else /* prefix: the first `which` in the order they were issued */
					keep[j] = (long)j < v[t].which;
			}
			if (!strcmp(v[t].how, "torn")) {
				torn = v[t].which;
				/* a sector-aligned half: what a power cut mid-write leaves */
				torn_len = log->ops[pending[torn]].len / 2 / SECTOR * SECTOR;
				if (torn_len == 0)
					torn_len = SECTOR;
			}
			build(log, k, pending, np, keep, torn, torn_len);
			if (seen_before(fingerprint(&model)))
				continue;
			if (write_out(&model, dir) != 0) {
				states = -1;
				stop = 1;
				break;
			}
			struct crash_state st = {.crash_at = k,
			                         .how = v[t].how,
			                         .variant =
			                                 v[t].which < 0 ? 0 : (size_t)v[t].which};
			states++;
			if (fn(ctx, &st, dir) != 0)
				stop = 1;
		}
	}
	model_reset(&model);
	for (size_t i = 0; i < n_base; i++)
		free(base_files[i].data);
	free(seen);
	free(pending);
	free(keep);
	return states;
}
