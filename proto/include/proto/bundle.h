/*
 * proto/bundle.h — the card key file of a device bundle (`card-sector.key`), which crosses
 * from the issuing side to a gate: written by `citypass-admin device add` and by a gate
 * keeping the key its sync server sent after a rotation, read by the gate at start-up.
 * One writer, one reader, here (issue 14); the format is docs/admin.md's.
 *
 *   # comment lines and blank lines
 *   format 2                         absent in files written before it (format 1)
 *   aid c17a55                       the citypass application, 6 hex digits
 *   system-id 0011223344556677       2 to 42 hex digits
 *   sector 1                         1 to 65535
 *   slot 0                           0 to 5
 *   key-version 3                    0 to 255 — required from format 2 on
 *   master 00112233...               32 hex digits, an AES-128 key
 *   reads-value 0                    0 or 1
 *   previous-key-version 2           during a rotation, with previous-master
 *   previous-master 00112233...
 *
 * `key-version` is used: it is the version of the sector master key a gate holds, the one
 * a card's keys are checked against (cardlib reads the card at that version, or at the
 * previous one), and the one that decides whether a key file the server sent later
 * supersedes the bundle's. A format-2 file without it is refused; a format-1 file without
 * it reads as version 0, as it always did. A format newer than this reader is refused.
 */
#ifndef PROTO_BUNDLE_H
#define PROTO_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_CARD_KEY_FORMAT   2 /* what proto_card_key_write writes */
#define PROTO_CARD_KEY_AES_LEN  16
#define PROTO_CARD_KEY_SYS_MAX  21   /* CARDLIB_DIVERSIFY_SYS_MAX */
#define PROTO_CARD_KEY_SLOTS    6    /* CARDLIB_LAYOUT_SECTORS_MAX */
#define PROTO_CARD_KEY_TEXT_MAX 1024 /* the longest file the writer makes, and more */

struct proto_card_key {
	unsigned format; /* as read: 1 or 2 */
	uint32_t aid;
	uint8_t sys_id[PROTO_CARD_KEY_SYS_MAX];
	size_t sys_id_len;
	uint16_t sector;
	uint8_t slot;
	uint8_t version;
	uint8_t master[PROTO_CARD_KEY_AES_LEN];
	int reads_value;
	int has_previous;
	uint8_t previous_version;
	uint8_t previous[PROTO_CARD_KEY_AES_LEN];
};

/*
 * The file's text for k (format PROTO_CARD_KEY_FORMAT) into buf, NUL-terminated, after one
 * comment line naming who wrote it (`who`, may be NULL). Its length, PROTO_ERR_ARG for a
 * key out of range, PROTO_ERR_BUFSIZE when cap is too small. The caller wipes buf.
 */
int proto_card_key_write(const struct proto_card_key *k, const char *who, char *buf, size_t cap);

/*
 * Read a card key file's text (len bytes, not necessarily NUL-terminated). 0, or
 * PROTO_ERR_BUNDLE with one sentence in err ("master: expected 32 hex digits (an AES-128
 * key)") and the line it is about in *err_line (0: the file as a whole). *out is wiped on
 * failure.
 */
int proto_card_key_parse(const char *text, size_t len, struct proto_card_key *out, char *err,
                         size_t errlen, unsigned *err_line);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_BUNDLE_H */
