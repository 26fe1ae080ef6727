/*
 * scripted_card.h — a card that answers cardlib's exchanges from a script, byte for byte, for
 * the tests that replay published transcripts (NXP application notes, public forum traces)
 * or play a hostile card. Shared by cardlib's DESFire tests; uses cmocka's assertions.
 */
#ifndef CITYPASS_SCRIPTED_CARD_H
#define CITYPASS_SCRIPTED_CARD_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/desfire.h"
#include "cardlib/reader.h"

#define SCRIPT_MAX 16

/* Hex with optional spaces into out: its length. */
size_t unhex(const char *s, uint8_t *out);
/* got[0..len) must be the bytes of `want` (hex). */
void assert_hex(const uint8_t *got, size_t len, const char *want);

/* Answers in order; where `expect` is set, the reader's frame must be exactly that. */
struct script {
	const char *expect[SCRIPT_MAX];
	const char *answer[SCRIPT_MAX];
	size_t n, next;
	int repeat_last; /* keep answering the last answer (an endless AF card) */
	struct cardlib_target_info info;
};

/* The loopback peer that plays s (cardlib_loopback_new). */
struct cardlib_loopback_peer script_peer(struct script *s);

/* DESFire EV2 as anticollision reports it: SAK 20, ATS 75 77 81 02 80 (TL excluded). */
void desfire_info(struct cardlib_target_info *info);

struct scripted {
	struct script s;
	struct cardlib_reader *r;
	struct cardlib_desfire *d;
};

/* A loopback reader with the script in its field, the card selected and a DESFire session
 * opened on it (s.info defaults to desfire_info()). */
void scripted_open(struct scripted *t);
void scripted_close(struct scripted *t);

#endif
