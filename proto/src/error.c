#include "proto/error.h"

const char *proto_strerror(int err)
{
	switch (err) {
	case PROTO_OK:
		return "success";
	case PROTO_ERR_NOMEM:
		return "out of memory";
	case PROTO_ERR_IO:
		return "input/output error";
	case PROTO_ERR_ARG:
		return "invalid argument";
	case PROTO_ERR_CRYPTO:
		return "cryptographic operation failed";
	case PROTO_ERR_KEY:
		return "key is unreadable or not an ECDSA P-256 key";
	case PROTO_ERR_BUFSIZE:
		return "output buffer too small";
	case PROTO_ERR_FRAME_TOO_BIG:
		return "frame length exceeds the maximum frame size";
	case PROTO_ERR_FRAME_EMPTY:
		return "frame is empty";
	case PROTO_ERR_FRAME_MALFORMED:
		return "frame payload is not a valid protobuf message";
	case PROTO_ERR_FRAME_NO_BODY:
		return "frame carries no known message";
	case PROTO_ERR_FRAME_INVALID:
		return "frame breaks a protocol rule";
	case PROTO_ERR_LIST_TRUNCATED:
		return "list is truncated";
	case PROTO_ERR_LIST_OVERSIZED:
		return "list is oversized";
	case PROTO_ERR_LIST_MAGIC:
		return "not a citypass list file";
	case PROTO_ERR_LIST_FORMAT:
		return "unsupported list format version";
	case PROTO_ERR_LIST_COUNT:
		return "list entry count does not match its body";
	case PROTO_ERR_LIST_SIGNATURE:
		return "list signature does not verify";
	case PROTO_ERR_LIST_UNKNOWN_KEY:
		return "list is signed with an unknown key id";
	case PROTO_ERR_LIST_ROLLBACK:
		return "list version is not newer than the one held (rollback)";
	case PROTO_ERR_LIST_EXPIRED:
		return "list has expired";
	case PROTO_ERR_LIST_SECTOR:
		return "list is for another service sector";
	case PROTO_ERR_LIST_ORDER:
		return "list entries are not strictly sorted by key";
	case PROTO_ERR_LIST_PROFILE:
		return "list entry refers to a missing rights profile";
	case PROTO_ERR_DELTA_BASE:
		return "delta base is not the list held";
	case PROTO_ERR_DELTA_RESULT:
		return "delta result does not match the signed result";
	case PROTO_ERR_DELTA_OP:
		return "delta operation does not fit the base list";
	case PROTO_ERR_LIST_NOT_FOUND:
		return "no list entry for this pass";
	case PROTO_ERR_LIST_FIELD:
		return "list header field out of range";
	case PROTO_ERR_LIST_MANIFEST:
		return "list manifest is malformed or does not match its head";
	case PROTO_ERR_LIST_HASH:
		return "list file does not match its signed hash (damaged or altered)";
	case PROTO_ERR_ROTATION_FORMAT:
		return "list-key rotation statement is malformed";
	case PROTO_ERR_ROTATION_UNANNOUNCED:
		return "list key not announced by the key this gate trusts";
	case PROTO_ERR_ROTATION_NUMBER:
		return "list-key rotation statement out of sequence";
	case PROTO_ERR_ROTATION_SIGNATURE:
		return "list-key rotation statement signature does not verify";
	case PROTO_ERR_BUNDLE:
		return "device bundle file is malformed";
	}
	return "unknown proto error";
}
