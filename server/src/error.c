/*
 * error.c — sentences for server_error codes.
 */
#include "server/error.h"

const char *server_strerror(int err)
{
	switch (err) {
	case SERVER_OK:
		return "success";
	case SERVER_ERR_ARG:
		return "invalid argument";
	case SERVER_ERR_NOMEM:
		return "out of memory";
	case SERVER_ERR_IO:
		return "the database or a file failed";
	case SERVER_ERR_NOT_FOUND:
		return "not found";
	case SERVER_ERR_REVOKED:
		return "revoked";
	case SERVER_ERR_INVALID:
		return "the input breaks a rule";
	case SERVER_ERR_EXISTS:
		return "already exists";
	case SERVER_ERR_CRYPTO:
		return "a cryptographic operation failed";
	case SERVER_ERR_BUSY:
		return "busy: another writer holds the database or the sector's list";
	default:
		return "unknown error";
	}
}
