/*
 * crash_record.h — the crash-state explorer (issue 13, item 3; ALICE, OSDI 2014, and
 * CrashMonkey, OSDI 2018, are the models): record the file-system operations a workload
 * makes under one directory, then build every state a power cut could leave there.
 *
 *   recording  crash_vfs.c  a sqlite VFS shim over the unix VFS: the journal's writes,
 *                           truncations, syncs, creations and deletions;
 *              crash_wrap.c an interposer (the linker's --wrap) on the libc calls the list
 *                           store makes: open/creat, write/pwrite, ftruncate, fsync,
 *                           fdatasync, rename, unlink, mkdir;
 *              marks        what the workload learned the moment an API call returned
 *                           (a decision durable, an ack recorded, a list installed).
 *   states     crash_states.c: a crash after op k; what was synced by then survives; of
 *              what was not, the kernel may have persisted any part, in any order
 *              (each of: everything, nothing, all but one, only one, a prefix in issue
 *              order, one write torn at a sector boundary). Materialised from a copy of the
 *              directory taken before the workload.
 *
 * Persistence model (POSIX, no more): a write or truncation is durable once its file is
 * fsynced (fdatasync too); a creation, deletion or rename once its directory is fsynced.
 * One exception is modelled because it is sqlite's, not the kernel's: the unix VFS fsyncs
 * the directory the first time it syncs a WAL or journal file it created (UNIXFILE_DIRSYNC),
 * so the shim records that directory sync itself.
 */
#ifndef CRASH_RECORD_H
#define CRASH_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRASH_PATH_MAX 512

enum crash_op_kind {
	CRASH_CREATE,   /* a new, empty file (path) */
	CRASH_WRITE,    /* data at offset into file `file` */
	CRASH_TRUNCATE, /* file `file` to `off` bytes */
	CRASH_SYNC,     /* fsync(file): its data (and size) durable */
	CRASH_MKDIR,    /* directory `path` */
	CRASH_UNLINK,   /* the name `path` (file `file`) removed */
	CRASH_RENAME,   /* file `file` from `path` to `path2` (replacing what was there) */
	CRASH_DIRSYNC,  /* fsync(directory `path`): its entries durable */
	CRASH_MARK,     /* the workload's mark (not a file-system operation) */
};

struct crash_op {
	enum crash_op_kind kind;
	int file; /* file identity (a file keeps it across renames); -1 for a directory op */
	char path[CRASH_PATH_MAX], path2[CRASH_PATH_MAX]; /* relative to the recorded root */
	int64_t off;
	uint8_t *data;
	size_t len;
	int mark;
};

struct crash_log {
	struct crash_op *ops;
	size_t n, cap;
	int next_file;
};

/* Start recording under `root` (an absolute path); everything elsewhere passes. */
void crash_record_start(const char *root);
void crash_record_stop(void);
/* The log recorded so far (owned by the recorder until crash_record_reset). */
struct crash_log *crash_record_log(void);
void crash_record_reset(void);
/* A workload's mark, in order with the operations; returns its number (0, 1, ...). */
int crash_record_mark(void);

/* --- used by the two recorders ----------------------------------------------------------- */

/* `path` relative to the root into rel; false when it lies outside (not recorded). */
bool crash_record_relative(const char *path, char *rel, size_t cap);
/* The file identity of a relative path (a new one for an unknown path). */
int crash_record_file_of(const char *rel);
void crash_record_op(enum crash_op_kind kind, int file, const char *path, const char *path2,
                     int64_t off, const void *data, size_t len);
bool crash_record_active(void);

/* crash_vfs.c: register the recording VFS as sqlite's default (over "unix"). */
int crash_vfs_register(void);

/* --- states (crash_states.c) ------------------------------------------------------------ */

struct crash_state {
	size_t crash_at; /* operations [0, crash_at) were issued before the power cut */
	const char *how; /* which of the pending ones persisted: "all", "none", ... */
	size_t variant;  /* the pending op dropped, kept, or torn (how) */
};

/* Every state of the log (deduplicated by content); calls fn with each materialised into
 * `dir` (emptied first) from the `base` copy. fn returns 0 to go on. Returns the number of
 * states, or -1 on an error. */
long crash_states_explore(const struct crash_log *log, const char *base, const char *dir,
                          int (*fn)(void *ctx, const struct crash_state *st, const char *dir),
                          void *ctx);
/* How many of the workload's marks came before op `crash_at` (marks are numbered from 0 in
 * the order they were made: marks 0 .. n-1 had been reached). */
size_t crash_marks_before(const struct crash_log *log, size_t crash_at);

#endif /* CRASH_RECORD_H */
