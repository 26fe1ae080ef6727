/*
 * crash_vfs.c — a sqlite VFS over "unix" that records what reaches the disk (crash_record.h):
 * writes, truncations and syncs of the database, its WAL and journals, their creation and
 * deletion. The shared-memory index (-shm) is not recorded: it is not durable state, sqlite
 * rebuilds it from the WAL after a crash (the explorer leaves it out of every state).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "crash_record.h"

struct shim_file {
	sqlite3_file base;
	sqlite3_file *real; /* right after this struct, szOsFile of the unix VFS */
	int recorded;       /* under the recorded root */
	int file;
	char rel[CRASH_PATH_MAX];
	int dirsync_pending; /* unix VFS: the first sync of a new WAL/journal syncs the dir */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;

static void parent_of(const char *rel, char *dir, size_t cap)
{
	const char *slash = strrchr(rel, '/');
	if (!slash) {
		snprintf(dir, cap, ".");
		return;
	}
	size_t n = (size_t)(slash - rel);
	snprintf(dir, cap, "%.*s", (int)n, rel);
}

/* --- the file ---------------------------------------------------------------------------- */

static int shim_close(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	int rc = s->real->pMethods ? s->real->pMethods->xClose(s->real) : SQLITE_OK;
	return rc;
}

static int shim_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xRead(s->real, buf, n, off);
}

static int shim_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	struct shim_file *s = (struct shim_file *)f;
	int rc = s->real->pMethods->xWrite(s->real, buf, n, off);
	if (rc == SQLITE_OK && s->recorded && crash_record_active())
		crash_record_op(CRASH_WRITE, s->file, s->rel, NULL, off, buf, (size_t)n);
	return rc;
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct shim_file *s = (struct shim_file *)f;
	int rc = s->real->pMethods->xTruncate(s->real, size);
	if (rc == SQLITE_OK && s->recorded && crash_record_active())
		crash_record_op(CRASH_TRUNCATE, s->file, s->rel, NULL, size, NULL, 0);
	return rc;
}

static int shim_sync(sqlite3_file *f, int flags)
{
	struct shim_file *s = (struct shim_file *)f;
	int rc = s->real->pMethods->xSync(s->real, flags);
	if (rc == SQLITE_OK && s->recorded && crash_record_active()) {
		crash_record_op(CRASH_SYNC, s->file, s->rel, NULL, 0, NULL, 0);
		if (s->dirsync_pending) {
			char dir[CRASH_PATH_MAX];
			parent_of(s->rel, dir, sizeof(dir));
			crash_record_op(CRASH_DIRSYNC, -1, dir, NULL, 0, NULL, 0);
		}
	}
	if (rc == SQLITE_OK)
		s->dirsync_pending = 0;
	return rc;
}

static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xFileSize(s->real, size);
}

static int shim_lock(sqlite3_file *f, int level)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xLock(s->real, level);
}

static int shim_unlock(sqlite3_file *f, int level)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xUnlock(s->real, level);
}

static int shim_check_reserved(sqlite3_file *f, int *out)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xCheckReservedLock(s->real, out);
}

static int shim_file_control(sqlite3_file *f, int op, void *arg)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xFileControl(s->real, op, arg);
}

static int shim_sector_size(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xSectorSize(s->real);
}

static int shim_device_characteristics(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	/* nothing the disk promises beyond POSIX: no atomic or sequential writes assumed */
	return s->real->pMethods->xDeviceCharacteristics(s->real);
}

static int shim_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xShmMap(s->real, pg, pgsz, extend, pp);
}

static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xShmLock(s->real, offset, n, flags);
}

static void shim_shm_barrier(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	s->real->pMethods->xShmBarrier(s->real);
}

static int shim_shm_unmap(sqlite3_file *f, int delete_flag)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xShmUnmap(s->real, delete_flag);
}

static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	/* no memory-mapped reads: every byte sqlite reads comes through xRead */
	(void)f;
	(void)off;
	(void)n;
	*pp = NULL;
	return SQLITE_OK;
}

static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	(void)f;
	(void)off;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods shim_methods = {
        .iVersion = 3,
        .xClose = shim_close,
        .xRead = shim_read,
        .xWrite = shim_write,
        .xTruncate = shim_truncate,
        .xSync = shim_sync,
        .xFileSize = shim_file_size,
        .xLock = shim_lock,
        .xUnlock = shim_unlock,
        .xCheckReservedLock = shim_check_reserved,
        .xFileControl = shim_file_control,
        .xSectorSize = shim_sector_size,
        .xDeviceCharacteristics = shim_device_characteristics,
        .xShmMap = shim_shm_map,
        .xShmLock = shim_shm_lock,
        .xShmBarrier = shim_shm_barrier,
        .xShmUnmap = shim_shm_unmap,
        .xFetch = shim_fetch,
        .xUnfetch = shim_unfetch,
};

/* --- the VFS ------------------------------------------------------------------------------ */

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	(void)vfs;
	struct shim_file *s = (struct shim_file *)f;
	memset(s, 0, sizeof(*s));
	s->real = (sqlite3_file *)(s + 1);
	const int existed = name && access(name, F_OK) == 0;
	int rc = real_vfs->xOpen(real_vfs, name, s->real, flags, out);
	if (rc != SQLITE_OK) {
		s->real->pMethods = NULL;
		return rc;
	}
	f->pMethods = &shim_methods;
	if (name && crash_record_relative(name, s->rel, sizeof(s->rel))) {
		s->recorded = 1;
		s->file = crash_record_file_of(s->rel);
		if (!existed && (flags & SQLITE_OPEN_CREATE))
			crash_record_op(CRASH_CREATE, s->file, s->rel, NULL, 0, NULL, 0);
		s->dirsync_pending = (flags & SQLITE_OPEN_CREATE) &&
		                     (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL |
		                               SQLITE_OPEN_SUPER_JOURNAL));
	}
	return rc;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	int rc = real_vfs->xDelete(real_vfs, name, sync_dir);
	char rel[CRASH_PATH_MAX];
	if (rc == SQLITE_OK && crash_record_relative(name, rel, sizeof(rel))) {
		int file = crash_record_file_of(rel);
		crash_record_op(CRASH_UNLINK, file, rel, NULL, 0, NULL, 0);
		if (sync_dir) {
			char dir[CRASH_PATH_MAX];
			parent_of(rel, dir, sizeof(dir));
			crash_record_op(CRASH_DIRSYNC, -1, dir, NULL, 0, NULL, 0);
		}
	}
	return rc;
}

static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *shim_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return real_vfs->xDlOpen(real_vfs, name);
}

static void shim_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	real_vfs->xDlError(real_vfs, n, msg);
}

static void (*shim_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void shim_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	real_vfs->xDlClose(real_vfs, h);
}

static int shim_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int shim_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int shim_current_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, t);
}

static int shim_get_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	return real_vfs->xGetLastError(real_vfs, n, msg);
}

static int shim_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

int crash_vfs_register(void)
{
	real_vfs = sqlite3_vfs_find("unix");
	if (!real_vfs)
		return -1;
	shim_vfs = (sqlite3_vfs){
	        .iVersion = 2,
	        .szOsFile = (int)sizeof(struct shim_file) + real_vfs->szOsFile,
	        .mxPathname = real_vfs->mxPathname,
	        .zName = "crash-record",
	        .xOpen = shim_open,
	        .xDelete = shim_delete,
	        .xAccess = shim_access,
	        .xFullPathname = shim_full_pathname,
	        .xDlOpen = shim_dl_open,
	        .xDlError = shim_dl_error,
	        .xDlSym = shim_dl_sym,
	        .xDlClose = shim_dl_close,
	        .xRandomness = shim_randomness,
	        .xSleep = shim_sleep,
	        .xCurrentTime = shim_current_time,
	        .xGetLastError = shim_get_last_error,
	        .xCurrentTimeInt64 = shim_current_time_int64,
	};
	return sqlite3_vfs_register(&shim_vfs, 1) == SQLITE_OK ? 0 : -1;
}
