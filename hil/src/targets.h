/*
 * targets.h — the bench's constructors for what `place` puts on a reader.
 */
#ifndef HIL_TARGETS_H
#define HIL_TARGETS_H

#include <stddef.h>
#include <stdint.h>

#include "hil/target.h"

struct bench_desfire_opts {
	uint8_t uid[7];
	int have_uid;     /* else a UID is drawn when the image is created */
	int random_id;    /* for a new card: anonymous random UID until authenticated */
	int picc_key_aes; /* for a new card: AES PICC master key of zeros (else DES, as
	                   * NXP ships cards) */
	long pull_after;  /* > 0: the card leaves the field during its pull_after-th exchange
	                   * (executed, unanswered): an agent pulling it away mid-command */
};

/* Open (or create) a virtual DESFire card image as a target; err gets the reason. */
int bench_desfire_target(const char *image, const struct bench_desfire_opts *o,
                         struct hil_target *out, char *err, size_t err_len);

/* A clonable tag a gate must refuse: MIFARE Classic 1K (classic = 1) or UID-only. */
int bench_clone_target(int classic, const uint8_t *uid, struct hil_target *out);

#endif
