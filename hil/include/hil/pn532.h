/*
 * hil/pn532.h — an emulated NXP PN532 as Debian's libnfc 1.8.0 `pn532_uart` driver drives
 * it over HSU (../shared/HIL-NOTES.md lists what that driver sends and expects).
 *
 * The emulator is transport-free: the bench daemon feeds it the bytes it read from the
 * pseudo-terminal and sends on whatever the emulator writes through `io.write`. One field,
 * one target at a time (a PN532 can hold two; libnfc selects one).
 */
#ifndef HIL_PN532_H
#define HIL_PN532_H

#include <stddef.h>
#include <stdint.h>

#include "hil/target.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hil_pn532;

struct hil_pn532_io {
	/* Bytes for the host, in order. Called from within hil_pn532_feed(), _set_target()
	 * and _tick(); it must not call back into the emulator. */
	void (*write)(void *ctx, const uint8_t *data, size_t len);
	/* Optional: one line per command handled, for the bench's event log (may be NULL). */
	void (*log)(void *ctx, const char *line);
	/* Optional: a monotonic clock in ms. With it, an InAutoPoll that finds no target
	 * waits for one (or for its PollNr x Period) as the chip does; without it, it answers
	 * "no target" at once. */
	long long (*now_ms)(void *ctx);
	void *ctx;
};

struct hil_pn532 *hil_pn532_new(const struct hil_pn532_io *io);
/* Destroys the emulator and the target in its field. */
void hil_pn532_free(struct hil_pn532 *chip);

/* Bytes received from the host; any split, any garbage. Never fails: what the real chip
 * would ignore or NACK, the emulator ignores or NACKs. */
void hil_pn532_feed(struct hil_pn532 *chip, const uint8_t *data, size_t len);

/* Place a target in the field (the emulator takes ownership; the previous target, if
 * any, is destroyed), or remove it with NULL. */
void hil_pn532_set_target(struct hil_pn532 *chip, const struct hil_target *target);
int hil_pn532_has_target(const struct hil_pn532 *chip);

/* Let time pass: answers a waiting InAutoPoll whose polling time ran out. Returns the ms
 * until the next such deadline, or -1 when nothing waits on time. */
long long hil_pn532_tick(struct hil_pn532 *chip);

/* Counters, for tests and the bench's status command. */
struct hil_pn532_stats {
	unsigned long frames_in;  /* well-formed command frames */
	unsigned long frames_bad; /* refused: checksum, length, direction */
	unsigned long commands;   /* commands answered */
	unsigned long exchanges;  /* InDataExchange / InCommunicateThru with a target */
};
void hil_pn532_get_stats(const struct hil_pn532 *chip, struct hil_pn532_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* HIL_PN532_H */
