/*
 * hil_field.h — a reader field holding one of the bench's virtual targets, seen by cardlib
 * as a loopback peer: cardlib's tests run against the bench's independent card in-process,
 * without a pty or libnfc.
 */
#ifndef CITYPASS_HIL_FIELD_H
#define CITYPASS_HIL_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/reader.h"
#include "hil/target.h"

struct hil_field {
	struct hil_target target; /* ops NULL: the field is empty */
	int active;
	/* Optional: sees every answer the target gave (n bytes of rx), e.g. to record a
	 * session as a fuzz seed. */
	void (*on_answer)(void *ctx, const uint8_t *rx, size_t n);
	void *on_answer_ctx;
};

/* The loopback peer to pass to cardlib_loopback_new(); it points at f. */
struct cardlib_loopback_peer hil_field_peer(struct hil_field *f);

/* Put a target in the field (the field owns it), after clearing what was there. */
void hil_field_place(struct hil_field *f, struct hil_target target);

/* Deactivate and destroy the target in the field, if any. */
void hil_field_clear(struct hil_field *f);

/* hil reports the ATS with its TL byte first, cardlib (like libnfc) without it. */
void hil_field_info_to_cardlib(const struct hil_target_info *hi, struct cardlib_target_info *info);

#endif
