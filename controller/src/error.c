/* controller/src/error.c — error sentences (controller range, then proto's). */
#include "controller/error.h"

#include "proto/error.h"

const char *controller_strerror(int err)
{
	switch (err) {
	case CONTROLLER_OK:
		return "success";
	case CONTROLLER_ERR_NOMEM:
		return "out of memory";
	case CONTROLLER_ERR_IO:
		return "file or system call failed";
	case CONTROLLER_ERR_ARG:
		return "invalid argument";
	case CONTROLLER_ERR_SQLITE:
		return "journal database error";
	case CONTROLLER_ERR_NO_LIST:
		return "no valid list held";
	case CONTROLLER_ERR_TZ:
		return "time zone conversion failed";
	case CONTROLLER_ERR_SCHEMA:
		return "journal written by a newer citypass-controller (unknown schema version)";
	case CONTROLLER_ERR_LIST_DAMAGED:
		return "list file damaged: it no longer matches what was signed";
	default:
		return proto_strerror(err);
	}
}
