/*
 * hil/desfire.h — virtual MIFARE DESFire EV2 cards, and the other targets the bench places
 * in an emulated reader's field for negative tests.
 *
 * The card implements the card side of the DESFire protocol from NXP's public descriptions
 * (it shares no code with cardlib, which implements the reader side). Its persistent state
 * (UID, keys, applications, files) lives in a card-image file, rewritten atomically after
 * every command that changes it, so a card personalised through one emulated reader is the
 * same card tapped later at another, in the same process or another one. What the card
 * implements, the image format and where it differs from a real card: docs/hil-desfire-card.md.
 *
 * Functions returning int return 0 or a negative HIL_DESFIRE_E* code; hil_desfire_strerror()
 * turns one into a sentence.
 */
#ifndef HIL_DESFIRE_H
#define HIL_DESFIRE_H

#include <stddef.h>
#include <stdint.h>

#include "hil/target.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HIL_DESFIRE_EARG    (-1) /* invalid argument */
#define HIL_DESFIRE_ENOMEM  (-2) /* out of memory */
#define HIL_DESFIRE_EIO     (-3) /* the card image could not be read or written */
#define HIL_DESFIRE_EIMAGE  (-4) /* the card image is malformed or inconsistent */
#define HIL_DESFIRE_EFORMAT (-5) /* the card image has an unknown format version */

struct hil_desfire_card;

/* What a factory-fresh card is made of. Only used when the image file does not exist. */
struct hil_desfire_config {
	uint8_t uid[7];   /* the real UID; NXP cards start with 0x04 */
	int random_id;    /* 1: the card shows an anonymous random 4-byte UID at every
	                   * activation; GetCardUID (after authentication) reveals uid */
	int picc_key_aes; /* 0: PICC master key DES 00*8, key settings 0x0F, as NXP ships
	                   * cards; 1: AES 00*16 (a card whose master key was already
	                   * changed to AES, for readers that only speak AES) */
};

/* Opens the card stored in image_path, or creates it factory-fresh from cfg_if_new when the
 * file does not exist (the image is written at once). cfg_if_new may be NULL only if the
 * image exists. */
int hil_desfire_card_open(struct hil_desfire_card **out, const char *image_path,
                          const struct hil_desfire_config *cfg_if_new);

/* The card as a reader target. The target's destroy() closes the card: once the target is
 * handed to an emulated reader (hil_pn532_set_target), do not call hil_desfire_card_close(). */
struct hil_target hil_desfire_card_target(struct hil_desfire_card *card);

/* Closes the card; its state is already on disk. NULL is allowed. */
void hil_desfire_card_close(struct hil_desfire_card *card);

/* Where RndB, TI and random UIDs come from: by default the operating system's generator.
 * Tests and reproducible bench runs install their own; fill(ctx, buf, len) returns 0, or
 * nonzero on failure (the command then fails with 0xEE, like a broken card). NULL restores
 * the default. */
typedef int (*hil_desfire_random_fn)(void *ctx, uint8_t *buf, size_t len);
void hil_desfire_card_set_random(struct hil_desfire_card *card, hil_desfire_random_fn fill,
                                 void *ctx);

const char *hil_desfire_strerror(int err);

/* ---- targets for negative tests -------------------------------------------------------- */

/* A MIFARE Classic 1K: ATQA 00 04, SAK 0x08, 4-byte UID, no ATS. It is not ISO 14443-4, so
 * every exchange gets HIL_TARGET_SILENT. */
int hil_classic1k_target_new(struct hil_target *out, const uint8_t uid[4]);

/* A UID-only tag (what cheap 7-byte-UID stickers and Ultralight-class tags look like to an
 * access-control reader): ATQA 00 44, SAK 0x00, 7-byte UID, no ATS; silent on exchanges. */
int hil_uid_only_target_new(struct hil_target *out, const uint8_t uid[7]);

#ifdef __cplusplus
}
#endif

#endif /* HIL_DESFIRE_H */
