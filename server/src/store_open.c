/*
 * store_open.c — which store a data directory uses (issue 16): DATA/store.conf, when it
 * exists, holds the libpq URI of its PostgreSQL database; otherwise the store is the
 * sqlite file DATA/citypass.db. Keys and certificates stay in the data directory either
 * way: each instance of a multi-instance deployment has a copy of it (docs/postgresql.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/store.h"

int server_store_is_pg_uri(const char *s)
{
	return s && (!strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11));
}

int server_store_uri(const char *data_dir, char *uri, size_t cap)
{
	char path[PATH_MAX];
	if (!data_dir || !uri || cap < 2)
		return SERVER_ERR_ARG;
	if (snprintf(path, sizeof(path), "%s/%s", data_dir, SERVER_STORE_FILE) >= (int)sizeof(path))
		return SERVER_ERR_ARG;
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? SERVER_ERR_NOT_FOUND : SERVER_ERR_IO;
	char *got = fgets(uri, (int)cap, f);
	fclose(f);
	if (!got)
		return SERVER_ERR_INVALID;
	uri[strcspn(uri, "\r\n")] = 0;
	return server_store_is_pg_uri(uri) ? 0 : SERVER_ERR_INVALID;
}

int server_store_set_uri(const char *data_dir, const char *uri)
{
	char path[PATH_MAX];
	if (!data_dir || !server_store_is_pg_uri(uri) || strlen(uri) >= SERVER_STORE_URI_MAX ||
	    strpbrk(uri, "\r\n"))
		return SERVER_ERR_ARG;
	if (snprintf(path, sizeof(path), "%s/%s", data_dir, SERVER_STORE_FILE) >= (int)sizeof(path))
		return SERVER_ERR_ARG;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? SERVER_ERR_EXISTS : SERVER_ERR_IO;
	size_t len = strlen(uri);
	int ok = write(fd, uri, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	return ok ? 0 : SERVER_ERR_IO;
}

int server_store_open(struct server_store *out, const char *data_dir, int create,
                      struct server_why *why)
{
	char uri[SERVER_STORE_URI_MAX];
	int rc = server_store_uri(data_dir, uri, sizeof(uri));
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_store_open_sqlite(out, data_dir, create);
	if (rc)
		return server_why_set(why, rc,
		                      "%s/%s does not name a PostgreSQL database (one line, "
		                      "postgresql://...)",
		                      data_dir ? data_dir : "", SERVER_STORE_FILE);
	return server_store_open_pg(out, uri, create, why);
}
