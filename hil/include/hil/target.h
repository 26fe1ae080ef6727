/*
 * hil/target.h — what an emulated PN532 reader hosts in its field: a card, a tag, a
 * phone, or a relay to another process.
 *
 * The reader emulator (hil/pn532.h) knows nothing of DESFire or of phones: it performs the
 * ISO/IEC 14443-3 anticollision from `info` and carries ISO/IEC 14443-4 payloads (APDUs,
 * or DESFire native frames) to and from `transceive`. Each kind of virtual target fills
 * this struct of callbacks with its own context, as libosdp's channel struct does.
 */
#ifndef HIL_TARGET_H
#define HIL_TARGET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIL_UID_MAX 10
#define HIL_ATS_MAX 32
/* Largest payload one ISO 14443-4 exchange carries through a PN532 (InDataExchange). */
#define HIL_APDU_MAX 512

/* ISO/IEC 14443 type A identification, as InListPassiveTarget reports it. */
struct hil_target_info {
	uint8_t atqa[2]; /* SENS_RES, in the byte order the PN532 sends it */
	uint8_t sak;     /* SEL_RES: bit 0x20 set = ISO/IEC 14443-4 compliant */
	uint8_t uid[HIL_UID_MAX];
	uint8_t uid_len;          /* 4, 7 or 10 */
	uint8_t ats[HIL_ATS_MAX]; /* answer to RATS, its length byte (TL) first; empty if
	                           * the target is not ISO 14443-4 (MIFARE Classic, UID-only) */
	uint8_t ats_len;
};

/* Result of a transceive that produced no answer. */
#define HIL_TARGET_SILENT (-1) /* the card did not answer (timeout on the reader) */
#define HIL_TARGET_GONE   (-2) /* the target left the field (relay peer hung up) */

struct hil_target_ops {
	/* Fill the identification. Called at every selection: a random-ID card may answer
	 * with a new UID each time it enters the field. */
	void (*info)(void *ctx, struct hil_target_info *info);
	/* The target was selected and activated (RATS done, for an ISO 14443-4 target). */
	void (*activate)(void *ctx);
	/* One exchange: `in` is the payload the reader sends (an APDU or a native DESFire
	 * frame, no ISO 14443-4 block header, no CRC). Returns the length of the answer written
	 * to `out` (at most `out_cap`), or HIL_TARGET_SILENT / HIL_TARGET_GONE. */
	int (*transceive)(void *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
	                  size_t out_cap);
	/* Deselected or released, or the field was switched off: volatile state (an
	 * authentication, a selected application, an uncommitted transaction) is lost. */
	void (*deactivate)(void *ctx);
	/* Removed from the reader for good. */
	void (*destroy)(void *ctx);
};

struct hil_target {
	const struct hil_target_ops *ops;
	void *ctx;
};

#ifdef __cplusplus
}
#endif

#endif /* HIL_TARGET_H */
