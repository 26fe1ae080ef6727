/*
 * proto/error.h — error codes of the proto library (framing, signed lists, signatures).
 *
 * Every function of the library returns 0 (PROTO_OK) or one of these negative codes, each
 * naming one cause, so a caller can refuse precisely and proto_strerror() can say why.
 */
#ifndef PROTO_ERROR_H
#define PROTO_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum proto_error {
	PROTO_OK = 0,

	/* generic */
	PROTO_ERR_NOMEM = -1,   /* allocation failed */
	PROTO_ERR_IO = -2,      /* file or system call failed (see errno) */
	PROTO_ERR_ARG = -3,     /* caller passed an invalid argument */
	PROTO_ERR_CRYPTO = -4,  /* mbedTLS failed (RNG, key generation, signing) */
	PROTO_ERR_KEY = -5,     /* a key file is unreadable or not an EC P-256 key */
	PROTO_ERR_BUFSIZE = -6, /* output buffer too small */

	/* framing on the sync link */
	PROTO_ERR_FRAME_TOO_BIG = -20,   /* length prefix above the maximum frame size */
	PROTO_ERR_FRAME_EMPTY = -21,     /* zero-length frame */
	PROTO_ERR_FRAME_MALFORMED = -22, /* payload is not a valid protobuf message */
	PROTO_ERR_FRAME_NO_BODY = -23,   /* message carries none of the known bodies */
	PROTO_ERR_FRAME_INVALID = -24,   /* well-formed but breaks a rule of the protocol */

	/* signed lists and deltas */
	PROTO_ERR_LIST_TRUNCATED = -40,   /* shorter than its header says */
	PROTO_ERR_LIST_OVERSIZED = -41,   /* longer than its header says, or over the limit */
	PROTO_ERR_LIST_MAGIC = -42,       /* not a citypass list or delta file */
	PROTO_ERR_LIST_FORMAT = -43,      /* unsupported format version */
	PROTO_ERR_LIST_COUNT = -44,       /* entry count does not match the body */
	PROTO_ERR_LIST_SIGNATURE = -45,   /* signature does not verify */
	PROTO_ERR_LIST_UNKNOWN_KEY = -46, /* signed with a key id we do not hold */
	PROTO_ERR_LIST_ROLLBACK = -47,    /* version not newer than the one held */
	PROTO_ERR_LIST_EXPIRED = -48,     /* past its expiry at the given time */
	PROTO_ERR_LIST_SECTOR = -49,      /* for another service sector */
	PROTO_ERR_LIST_ORDER = -50,       /* entries not strictly sorted, or duplicate keys */
	PROTO_ERR_LIST_PROFILE = -51,     /* entry names a rights profile the list lacks */
	PROTO_ERR_DELTA_BASE = -52,       /* delta's base is not the list held */
	PROTO_ERR_DELTA_RESULT = -53,     /* delta applied, result is not what was signed */
	PROTO_ERR_DELTA_OP = -54, /* delta removes/changes an absent key, adds a present one */
	PROTO_ERR_LIST_NOT_FOUND = -55, /* lookup: no entry for this key */
	PROTO_ERR_LIST_FIELD = -56,     /* a header field is out of range */
	/* format 2 (proto/clist.h) */
	PROTO_ERR_LIST_MANIFEST = -60, /* manifest malformed, or not the one its head describes */
	PROTO_ERR_LIST_HASH = -61,     /* a file or leaf does not match its signed hash */

	/* list-key rotation statements (proto/rotation.h) */
	PROTO_ERR_ROTATION_FORMAT = -70,      /* not a statement in its one canonical text */
	PROTO_ERR_ROTATION_UNANNOUNCED = -71, /* its key is not announced by the newest held */
	PROTO_ERR_ROTATION_NUMBER = -72,      /* its number does not follow the chain's */
	PROTO_ERR_ROTATION_SIGNATURE = -73,   /* one of its two signatures does not verify */

	/* device bundle files (proto/bundle.h) */
	PROTO_ERR_BUNDLE = -80, /* a bundle file is malformed: the parser says where */
};

/* A short English sentence for an error code; never NULL. */
const char *proto_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_ERROR_H */
