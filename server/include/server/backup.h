/*
 * server/backup.h — a deployment's data directory in one encrypted file, and back
 * (docs/backup.md). `citypass-admin backup` and `restore` are thin layers over it.
 *
 * The file holds the rights database, copied with sqlite's online backup API while the
 * server runs (a consistent snapshot, never a half-written page), and every other file of
 * the data directory: the key material (list and issuer keys, the device CA, the card
 * master keys). It is sealed with AES-256-GCM under a key derived from a passphrase by
 * Argon2id (RFC 9106), in chunks of 64 KiB that each carry their own tag and whose last
 * one says it is the last: a byte changed, a chunk dropped, reordered or cut off is
 * refused before anything is written where the deployment lives.
 */
#ifndef SERVER_BACKUP_H
#define SERVER_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A passphrase shorter than this is refused: the file holds every key of the deployment. */
#define SERVER_BACKUP_PASSPHRASE_MIN 12
/* The database's name inside the data directory (and inside the file). */
#define SERVER_BACKUP_DB_NAME "citypass.db"

/* Argon2id's costs. The defaults are RFC 9106's second recommended option (t=3, 64 MiB,
 * one lane); a file states its own, and a reader refuses costs beyond the limits below,
 * so that a forged header cannot make a restore allocate gigabytes or run for hours. */
struct server_backup_kdf {
	uint32_t t_cost;
	uint32_t m_cost_kib;
	uint32_t lanes;
};
#define SERVER_BACKUP_T_DEFAULT 3
#define SERVER_BACKUP_M_DEFAULT (64 * 1024)
#define SERVER_BACKUP_T_MAX     16
#define SERVER_BACKUP_M_MAX     (1024 * 1024)
#define SERVER_BACKUP_LANES_MAX 8

struct server_backup_stats {
	unsigned files;   /* files in the backup, the database included */
	uint64_t bytes;   /* their bytes, before encryption */
	unsigned skipped; /* neither files nor directories (sockets, links): not taken */
};

/* Write a backup of data_dir to out_path (refused if it exists; written to a temporary
 * name, synced, then renamed). kdf NULL: the defaults. On error, *why says what. */
int server_backup_write(const char *data_dir, const char *out_path, const char *passphrase,
                        const struct server_backup_kdf *kdf, struct server_backup_stats *stats,
                        char *why, size_t whylen);

/* Restore in_path into data_dir, which must not exist or be empty. Everything is written
 * to a directory beside it and renamed into place only once the whole file has been
 * authenticated: a wrong passphrase or a damaged file leaves nothing behind. */
int server_backup_restore(const char *in_path, const char *data_dir, const char *passphrase,
                          struct server_backup_stats *stats, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_BACKUP_H */
