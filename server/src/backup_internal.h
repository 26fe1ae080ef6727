/* server/src/backup_internal.h — the backup file's reader, for the restore, the unit tests
 * and the fuzz target (docs/backup.md has the format). */
#ifndef SERVER_BACKUP_INTERNAL_H
#define SERVER_BACKUP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "server/backup.h"

#define BACKUP_MAGIC        "CITYPASS-BACKUP\n"
#define BACKUP_MAGIC_LEN    16
#define BACKUP_FORMAT       1
#define BACKUP_KDF_ARGON2ID 1
#define BACKUP_SALT_LEN     16
#define BACKUP_HEADER_LEN   (BACKUP_MAGIC_LEN + 2 + 12 + BACKUP_SALT_LEN)
#define BACKUP_CHUNK_MAX    65536
#define BACKUP_TAG_LEN      16
#define BACKUP_KEY_LEN      32
#define BACKUP_PATH_MAX     255

/* What the reader hands over, entry by entry; each chunk is authenticated before any of
 * its bytes reach the sink, but only the end of backup_read says the file was complete. */
struct backup_sink {
	int (*file_begin)(void *ctx, const char *path, uint32_t mode, uint64_t size);
	int (*file_data)(void *ctx, const uint8_t *p, size_t n);
	int (*file_end)(void *ctx);
	void *ctx;
};

/* A path inside the data directory: relative, components of letters, digits, '.', '-'
 * and '_', none of them "." or "..", at most BACKUP_PATH_MAX bytes. */
bool backup_path_ok(const char *path);

/* Parse the fixed header; SERVER_ERR_INVALID with *why on anything but a citypass backup
 * of a known format with costs within the limits. */
int backup_header_parse(const uint8_t *h, size_t len, struct server_backup_kdf *kdf,
                        uint8_t salt[BACKUP_SALT_LEN], char *why, size_t whylen);

/* Read a whole backup: key NULL derives it from the passphrase (Argon2id with the file's
 * salt and costs); a key given skips the derivation (tests, fuzzing). */
int backup_read(FILE *in, const char *passphrase, const uint8_t *key,
                const struct backup_sink *sink, struct server_backup_stats *stats, char *why,
                size_t whylen);

#endif /* SERVER_BACKUP_INTERNAL_H */
