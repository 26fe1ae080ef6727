/*
 * server/error.h — error codes of the server library (rights database, publisher, pass
 * lifecycle, sync), and the sentence that carries an operation's refusal to the agent.
 *
 * The parts' codes never overlap (issue 14), so a code names its part wherever it ends up:
 * proto -1 to -99, controller -100 to -199, cardlib -200 to -299, server -300 to -399
 * (SERVER_ERR_FIRST to SERVER_ERR_LAST).
 */
#ifndef SERVER_ERROR_H
#define SERVER_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_ERR_FIRST (-300)
#define SERVER_ERR_LAST  (-399)

enum server_error {
	SERVER_OK = 0,
	SERVER_ERR_ARG = -301,
	SERVER_ERR_NOMEM = -302,
	SERVER_ERR_IO = -303,        /* the database or a file failed */
	SERVER_ERR_NOT_FOUND = -304, /* no such device, pass, site, list version or delta */
	SERVER_ERR_REVOKED = -305,   /* the device or pass was revoked */
	SERVER_ERR_INVALID = -306,   /* the input breaks a rule */
	SERVER_ERR_EXISTS = -307,    /* refusing to overwrite */
	SERVER_ERR_CRYPTO = -308,    /* key generation, signing, certificates */
	/* issue 12's range */
	SERVER_ERR_BUSY = -330, /* the database is locked by another writer, or a sector's list
	                           is being published by someone else: try again later */
	/* issue 14's range: the pass lifecycle (server/passes.h) */
	SERVER_ERR_STATE = -350,  /* the pass's state forbids it (revoked twice, a right for
	                             a revoked pass, a replaced pass replaced again) */
	SERVER_ERR_CARD = -351,   /* the card or its reader failed or refused (the sentence
	                             says how, in cardlib's words) */
	SERVER_ERR_IN_USE = -352, /* the card holds a pass that is still live */
	/* issue 15's range */
	SERVER_ERR_SCHEMA_NEWER = -360, /* the database was written by a newer release */
	/* issue 16's range: the PostgreSQL store */
	SERVER_ERR_UNREACHABLE = -370, /* the database server cannot be reached (yet): retry */
	/* issue 17's range: privacy */
	SERVER_ERR_RETENTION = -380, /* a retention above the ceiling of its sector's kind */
};

/* A sentence for an error code; never NULL. */
const char *server_strerror(int err);

/*
 * Why an operation of the server library was refused: one sentence for the person who
 * asked ("pass 12 is already revoked", "cannot revoke pass 12: the database or a file
 * failed (disk I/O error)"), sqlite's or cardlib's own words at its end when they are the
 * cause. The caller prints it or shows it; nothing below prints to stderr.
 */
#define SERVER_WHY_MAX 512
struct server_why {
	char text[SERVER_WHY_MAX];
};

/* Fill why (which may be NULL) and return code, so that `return server_why_set(...)` ends a
 * refused operation in one line. */
__attribute__((format(printf, 3, 4))) int server_why_set(struct server_why *why, int code,
                                                         const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_ERROR_H */
