/*
 * server/error.h — error codes of the server library (rights database, publisher, sync).
 */
#ifndef SERVER_ERROR_H
#define SERVER_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum server_error {
	SERVER_OK = 0,
	SERVER_ERR_ARG = -1,
	SERVER_ERR_NOMEM = -2,
	SERVER_ERR_IO = -3,        /* the database or a file failed */
	SERVER_ERR_NOT_FOUND = -4, /* no such device, pass, site, list version or delta */
	SERVER_ERR_REVOKED = -5,   /* the device or pass was revoked */
	SERVER_ERR_INVALID = -6,   /* the input breaks a rule */
	SERVER_ERR_EXISTS = -7,    /* refusing to overwrite */
	SERVER_ERR_CRYPTO = -8,    /* key generation, signing, certificates */
	/* issue 12's range */
	SERVER_ERR_BUSY = -30, /* the database is locked by another writer, or a sector's list
	                          is being published by someone else: try again later */
};

/* A sentence for an error code; never NULL. */
const char *server_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_ERROR_H */
