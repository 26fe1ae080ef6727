/*
 * crash_wrap.c — the libc calls of the list store, recorded (crash_record.h). Linked with
 * -Wl,--wrap=open,... into the explorer's driver only: the list store's objects call these,
 * sqlite (a shared library) does not, it goes through crash_vfs.c.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crash_record.h"

int __real_open(const char *path, int flags, ...);
int __real_openat(int dirfd, const char *path, int flags, ...);
int __real_close(int fd);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t off);
int __real_ftruncate(int fd, off_t len);
int __real_fsync(int fd);
int __real_fdatasync(int fd);
int __real_rename(const char *from, const char *to);
int __real_renameat(int fromfd, const char *from, int tofd, const char *to);
int __real_unlink(const char *path);
int __real_unlinkat(int dirfd, const char *path, int flags);
int __real_mkdir(const char *path, mode_t mode);
int __wrap_open(const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...);
int __wrap_close(int fd);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off);
int __wrap_ftruncate(int fd, off_t len);
int __wrap_fsync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_rename(const char *from, const char *to);
int __wrap_renameat(int fromfd, const char *from, int tofd, const char *to);
int __wrap_unlink(const char *path);
int __wrap_unlinkat(int dirfd, const char *path, int flags);
int __wrap_mkdir(const char *path, mode_t mode);

/* the recorded files the process has open */
static struct {
	int used, dir, file;
	char rel[CRASH_PATH_MAX];
} fds[1024];

static bool absolute(const char *path, char *abs, size_t cap)
{
	if (path[0] == '/') {
		snprintf(abs, cap, "%s", path);
		return true;
	}
	char cwd[CRASH_PATH_MAX];
	if (!getcwd(cwd, sizeof(cwd)))
		return false;
	snprintf(abs, cap, "%s/%s", cwd, path);
	return true;
}

static bool rel_of(const char *path, char *rel, size_t cap)
{
	char abs[2 * CRASH_PATH_MAX];
	return crash_record_active() && absolute(path, abs, sizeof(abs)) &&
	       crash_record_relative(abs, rel, cap);
}

static void opened(int fd, const char *path, int flags)
{
	if (fd < 0 || fd >= (int)(sizeof(fds) / sizeof(fds[0])))
		return;
	fds[fd].used = 0;
	char rel[CRASH_PATH_MAX];
	if (!rel_of(path, rel, sizeof(rel)))
		return;
	struct stat st;
	const int dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	fds[fd].used = 1;
	fds[fd].dir = dir;
	snprintf(fds[fd].rel, sizeof(fds[fd].rel), "%s", rel);
	fds[fd].file = dir ? -1 : crash_record_file_of(rel);
	if (!dir && (flags & O_TRUNC))
		crash_record_op(CRASH_TRUNCATE, fds[fd].file, rel, NULL, 0, NULL, 0);
}

static int traced(int fd)
{
	return fd >= 0 && fd < (int)(sizeof(fds) / sizeof(fds[0])) && fds[fd].used &&
	       crash_record_active();
}

int __wrap_open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	char rel[CRASH_PATH_MAX];
	const int new_file =
	        (flags & O_CREAT) && access(path, F_OK) != 0 && rel_of(path, rel, sizeof(rel));
	int fd = __real_open(path, flags, mode);
	if (fd >= 0 && new_file)
		crash_record_op(CRASH_CREATE, crash_record_file_of(rel), rel, NULL, 0, NULL, 0);
	opened(fd, path, flags);
	return fd;
}

int __wrap_openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (dirfd == AT_FDCWD || path[0] == '/')
		return __wrap_open(path, flags, mode);
	return __real_openat(dirfd, path, flags, mode); /* not used by the list store */
}

int __wrap_close(int fd)
{
	if (fd >= 0 && fd < (int)(sizeof(fds) / sizeof(fds[0])))
		fds[fd].used = 0;
	return __real_close(fd);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
	off_t off = traced(fd) ? lseek(fd, 0, SEEK_CUR) : 0;
	ssize_t w = __real_write(fd, buf, n);
	if (w > 0 && traced(fd))
		crash_record_op(CRASH_WRITE, fds[fd].file, fds[fd].rel, NULL, off, buf, (size_t)w);
	return w;
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t w = __real_pwrite(fd, buf, n, off);
	if (w > 0 && traced(fd))
		crash_record_op(CRASH_WRITE, fds[fd].file, fds[fd].rel, NULL, off, buf, (size_t)w);
	return w;
}

int __wrap_ftruncate(int fd, off_t len)
{
	int rc = __real_ftruncate(fd, len);
	if (rc == 0 && traced(fd))
		crash_record_op(CRASH_TRUNCATE, fds[fd].file, fds[fd].rel, NULL, len, NULL, 0);
	return rc;
}

static void synced(int fd)
{
	if (!traced(fd))
		return;
	if (fds[fd].dir)
		crash_record_op(CRASH_DIRSYNC, -1, fds[fd].rel, NULL, 0, NULL, 0);
	else
		crash_record_op(CRASH_SYNC, fds[fd].file, fds[fd].rel, NULL, 0, NULL, 0);
}

int __wrap_fsync(int fd)
{
	int rc = __real_fsync(fd);
	if (rc == 0)
		synced(fd);
	return rc;
}

int __wrap_fdatasync(int fd)
{
	int rc = __real_fdatasync(fd);
	if (rc == 0)
		synced(fd);
	return rc;
}

int __wrap_rename(const char *from, const char *to)
{
	char rf[CRASH_PATH_MAX], rt[CRASH_PATH_MAX];
	const int rec = rel_of(from, rf, sizeof(rf)) && rel_of(to, rt, sizeof(rt));
	const int file = rec ? crash_record_file_of(rf) : -1;
	int rc = __real_rename(from, to);
	if (rc == 0 && rec)
		crash_record_op(CRASH_RENAME, file, rf, rt, 0, NULL, 0);
	return rc;
}

int __wrap_renameat(int fromfd, const char *from, int tofd, const char *to)
{
	if ((fromfd == AT_FDCWD || from[0] == '/') && (tofd == AT_FDCWD || to[0] == '/'))
		return __wrap_rename(from, to);
	return __real_renameat(fromfd, from, tofd, to);
}

int __wrap_unlink(const char *path)
{
	char rel[CRASH_PATH_MAX];
	const int rec = rel_of(path, rel, sizeof(rel));
	const int file = rec ? crash_record_file_of(rel) : -1;
	int rc = __real_unlink(path);
	if (rc == 0 && rec)
		crash_record_op(CRASH_UNLINK, file, rel, NULL, 0, NULL, 0);
	return rc;
}

int __wrap_unlinkat(int dirfd, const char *path, int flags)
{
	if ((dirfd == AT_FDCWD || path[0] == '/') && !(flags & AT_REMOVEDIR))
		return __wrap_unlink(path);
	return __real_unlinkat(dirfd, path, flags);
}

int __wrap_mkdir(const char *path, mode_t mode)
{
	char rel[CRASH_PATH_MAX];
	const int rec = rel_of(path, rel, sizeof(rel));
	int rc = __real_mkdir(path, mode);
	if (rc == 0 && rec)
		crash_record_op(CRASH_MKDIR, -1, rel, NULL, 0, NULL, 0);
	return rc;
}
