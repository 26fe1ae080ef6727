/*
 * controller/error.h — error codes of the controller core (list store, journal, clock).
 *
 * Functions return 0 or a negative code. Codes of proto/error.h (-1 to -99) pass through
 * unchanged (a refused list keeps its precise cause: rollback, signature, base...); the
 * controller's own causes are -100 to -199 and cardlib's -200 to -299, so no two parts'
 * codes collide. controller_strerror() names the controller's and proto's (the core links
 * no cardlib: the reader loop names a card's with cardlib_strerror()).
 */
#ifndef CONTROLLER_ERROR_H
#define CONTROLLER_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum controller_error {
	CONTROLLER_OK = 0,
	CONTROLLER_ERR_NOMEM = -100,   /* allocation failed */
	CONTROLLER_ERR_IO = -101,      /* a file or system call failed (see errno) */
	CONTROLLER_ERR_ARG = -102,     /* caller passed an invalid argument */
	CONTROLLER_ERR_SQLITE = -103,  /* the journal database failed */
	CONTROLLER_ERR_NO_LIST = -104, /* the store holds no valid list */
	CONTROLLER_ERR_TZ = -105,      /* time zone conversion failed */
	CONTROLLER_ERR_SCHEMA = -106,  /* journal written by an unknown schema version */
	/* the list store (issue 12's range) */
	CONTROLLER_ERR_LIST_DAMAGED = -130, /* a list file no longer matches what was signed */
};

/* A short English sentence for a controller or proto error code; never NULL. */
const char *controller_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_ERROR_H */
