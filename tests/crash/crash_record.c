/*
 * crash_record.c — the operation log shared by the two recorders (crash_record.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash_record.h"

static char root[CRASH_PATH_MAX];
static size_t root_len;
static bool active;
static struct crash_log log_;
static int marks;

/* path -> file identity, for the files the log has seen */
static struct {
	char path[CRASH_PATH_MAX];
	int file;
} names[4096];
static size_t n_names;

void crash_record_start(const char *dir)
{
	snprintf(root, sizeof(root), "%s", dir);
	root_len = strlen(root);
	while (root_len > 1 && root[root_len - 1] == '/')
		root[--root_len] = '\0';
	active = true;
}

void crash_record_stop(void)
{
	active = false;
}

bool crash_record_active(void)
{
	return active;
}

struct crash_log *crash_record_log(void)
{
	return &log_;
}

void crash_record_reset(void)
{
	for (size_t i = 0; i < log_.n; i++)
		free(log_.ops[i].data);
	free(log_.ops);
	memset(&log_, 0, sizeof(log_));
	n_names = 0;
	marks = 0;
}

bool crash_record_relative(const char *path, char *rel, size_t cap)
{
	if (!active || !path || strncmp(path, root, root_len) != 0)
		return false;
	const char *r = path + root_len;
	if (*r == '\0') {
		snprintf(rel, cap, ".");
		return true;
	}
	if (*r != '/')
		return false;
	while (*r == '/')
		r++;
	snprintf(rel, cap, "%s", *r ? r : ".");
	return true;
}

int crash_record_file_of(const char *rel)
{
	for (size_t i = 0; i < n_names; i++)
		if (strcmp(names[i].path, rel) == 0)
			return names[i].file;
	if (n_names == sizeof(names) / sizeof(names[0])) {
		fprintf(stderr, "crash_record: too many files\n");
		abort();
	}
	snprintf(names[n_names].path, sizeof(names[n_names].path), "%s", rel);
	names[n_names].file = log_.next_file++;
	return names[n_names++].file;
}

/* A file's name changes with a rename or goes with an unlink (for the next lookups). */
static void rename_name(const char *from, const char *to)
{
	for (size_t i = 0; i < n_names; i++)
		if (strcmp(names[i].path, to) == 0)
			names[i].path[0] = '\0'; /* the replaced file has no name any more */
	for (size_t i = 0; i < n_names; i++)
		if (strcmp(names[i].path, from) == 0)
			snprintf(names[i].path, sizeof(names[i].path), "%s", to);
}

static void unlink_name(const char *rel)
{
	for (size_t i = 0; i < n_names; i++)
		if (strcmp(names[i].path, rel) == 0)
			names[i].path[0] = '\0';
}

void crash_record_op(enum crash_op_kind kind, int file, const char *path, const char *path2,
                     int64_t off, const void *data, size_t len)
{
	if (log_.n == log_.cap) {
		log_.cap = log_.cap ? 2 * log_.cap : 256;
		log_.ops = realloc(log_.ops, log_.cap * sizeof(*log_.ops));
		if (!log_.ops)
			abort();
	}
	struct crash_op *op = &log_.ops[log_.n++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->file = file;
	if (path)
		snprintf(op->path, sizeof(op->path), "%s", path);
	if (path2)
		snprintf(op->path2, sizeof(op->path2), "%s", path2);
	op->off = off;
	if (data && len) {
		op->data = malloc(len);
		if (!op->data)
			abort();
		memcpy(op->data, data, len);
		op->len = len;
	}
	if (kind == CRASH_RENAME)
		rename_name(path, path2);
	else if (kind == CRASH_UNLINK)
		unlink_name(path);
}

int crash_record_mark(void)
{
	int m = marks++;
	crash_record_op(CRASH_MARK, -1, NULL, NULL, 0, NULL, 0);
	log_.ops[log_.n - 1].mark = m;
	return m;
}

size_t crash_marks_before(const struct crash_log *log, size_t crash_at)
{
	size_t n = 0;
	for (size_t i = 0; i < crash_at && i < log->n; i++)
		n += log->ops[i].kind == CRASH_MARK;
	return n;
}
