/*
 * cardlib/reader.h — how cardlib reaches a card: a caller-filled ops struct.
 *
 * cardlib knows nothing of libnfc or of the bench: it calls these callbacks. Two backends
 * come with it: libnfc (any connection string, e.g. pn532_uart:/dev/ttyUSB0) and an
 * in-process loopback for unit tests. Clocks are injected too, so that credential
 * validity and QR windows are tested with a clock the test controls.
 */
#ifndef CARDLIB_READER_H
#define CARDLIB_READER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CARDLIB_UID_MAX 10
#define CARDLIB_ATS_MAX 32
/* Longest payload libnfc 1.8.0 carries either way (docs/hil.md). */
#define CARDLIB_FRAME_MAX 262

/* What anticollision told us about the target in the field. */
struct cardlib_target_info {
	uint8_t uid[CARDLIB_UID_MAX];
	size_t uid_len;
	uint8_t atqa[2];
	uint8_t sak;
	uint8_t ats[CARDLIB_ATS_MAX]; /* the ATS without its TL byte, as libnfc reports it
	                               * (T0 first); empty if not ISO 14443-4 */
	size_t ats_len;
};

struct cardlib_reader_ops {
	/* Select one ISO 14443-A target. 1 and *info filled when a target was selected, 0
	 * when the field is empty, or a negative CARDLIB_ERR_*. */
	int (*select)(void *ctx, struct cardlib_target_info *info);
	/* One ISO 14443-4 exchange with the selected target: the length of the answer in rx
	 * (at most rx_cap), or CARDLIB_ERR_TIMEOUT / _IO / _NO_CARD. */
	int (*transceive)(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap,
	                  int timeout_ms);
	/* Release the target (deselect). */
	void (*release)(void *ctx);
	/* Optional. Wait up to about timeout_ms for a target to come into the field, and
	 * select it the moment it does (the reader polls by itself: a PN532's InAutoPoll).
	 * Returns like select. NULL: cardlib_reader_wait() selects once, without waiting. */
	int (*wait)(void *ctx, struct cardlib_target_info *info, int timeout_ms);
	/* Monotonic milliseconds (timeouts, QR replay-cache expiry). */
	int64_t (*now_ms)(void *ctx);
	/* Wall-clock Unix seconds (credential validity, QR windows). */
	int64_t (*wall_time)(void *ctx);
	/* Free the backend's context. */
	void (*destroy)(void *ctx);
};

/* What a card read cost: the budget of DESIGN.md s.9 is counted in reader commands. */
struct cardlib_reader_stats {
	unsigned long selects;   /* select calls */
	unsigned long exchanges; /* transceive calls */
	unsigned long tx_bytes;  /* payload bytes sent */
	unsigned long rx_bytes;  /* payload bytes received */
};

struct cardlib_reader {
	const struct cardlib_reader_ops *ops;
	void *ctx;
	struct cardlib_reader_stats stats;
};

/* Wrappers that keep the statistics; cardlib calls the ops only through them. */
int cardlib_reader_select(struct cardlib_reader *r, struct cardlib_target_info *info);
/* Wait for a target to arrive (ops.wait), up to about timeout_ms; counted as a select. */
int cardlib_reader_wait(struct cardlib_reader *r, struct cardlib_target_info *info, int timeout_ms);
int cardlib_reader_transceive(struct cardlib_reader *r, const uint8_t *tx, size_t tx_len,
                              uint8_t *rx, size_t rx_cap, int timeout_ms);
void cardlib_reader_release(struct cardlib_reader *r);
int64_t cardlib_reader_now_ms(struct cardlib_reader *r);
int64_t cardlib_reader_wall_time(struct cardlib_reader *r);
void cardlib_reader_reset_stats(struct cardlib_reader *r);
/* Destroys the backend too. NULL is allowed. */
void cardlib_reader_free(struct cardlib_reader *r);

/* --- libnfc backend ------------------------------------------------------------------- */

/*
 * Open a reader by libnfc connection string ("pn532_uart:/dev/ttyUSB0"). libnfc 1.8.0 is
 * not thread-safe and its nfc_exit() breaks other contexts (HIL-NOTES.md): all readers of a
 * process share one context, and must be used from one thread.
 */
int cardlib_nfc_open(struct cardlib_reader **out, const char *connstring);

/* --- loopback backend (tests) --------------------------------------------------------- */

/* An in-process card: the test decides what is in the field and what it answers. */
struct cardlib_loopback_peer {
	/* 1 and *info when a target is in the field, else 0. */
	int (*info)(void *ctx, struct cardlib_target_info *info);
	/* Answer one exchange: length, or a negative CARDLIB_ERR_* (e.g. _TIMEOUT). */
	int (*exchange)(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap);
	/* The reader released the target. May be NULL. */
	void (*release)(void *ctx);
	void *ctx;
};

/* A reader whose field holds `peer`; its clocks start at now_ms = 0 and wall = wall_time. */
int cardlib_loopback_new(struct cardlib_reader **out, const struct cardlib_loopback_peer *peer,
                         int64_t wall_time);
/* Move the loopback's clocks forward (both by ms). */
void cardlib_loopback_advance(struct cardlib_reader *r, int64_t ms);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_READER_H */
