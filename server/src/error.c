/*
 * error.c — sentences for server_error codes, and the refusal sentence of an operation.
 */
#include <stdarg.h>
#include <stdio.h>

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
	case SERVER_ERR_STATE:
		return "the pass's state does not allow it";
	case SERVER_ERR_CARD:
		return "the card or its reader failed";
	case SERVER_ERR_IN_USE:
		return "the card holds a live pass";
	case SERVER_ERR_SCHEMA_NEWER:
		return "the database was written by a newer citypass release (its schema "
		       "version is above this program's): run that release, or restore the "
		       "backup taken before upgrading";
	case SERVER_ERR_UNREACHABLE:
		return "the database server cannot be reached";
	case SERVER_ERR_RETENTION:
		return "the retention is above the ceiling the law sets for the sector's kind "
		       "of service (docs/privacy.md)";
	default:
		return "unknown error";
	}
}

int server_why_set(struct server_why *why, int code, const char *fmt, ...)
{
	if (why) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why->text, sizeof(why->text), fmt, ap);
		va_end(ap);
	}
	return code;
}
