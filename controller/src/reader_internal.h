/*
 * reader_internal.h — the reader loop's parts (controller/reader_loop.h), shared by:
 *   reader_loop.c  the reader thread: the reader opened, polled (the PN532 polls by itself),
 *                  re-opened with a bounded back-off; each target handed to the tap
 *   qr_scanner.c   the scanner thread: the QR line opened, read, re-opened; each line
 *                  handed to the tap; the gate's timers; the watchdog of a reader hung
 *                  inside libnfc
 *   panel.c        the gate's outputs, shared by the two threads, and what the display
 *                  shows between taps (out of service while the reader cannot read)
 * What a tap does — medium, list, counters, engine, card debit, journal, gate — is
 * controller/tap.h (src/tap.c), which takes decisions one at a time: both threads share
 * one journal connection, and a tap is short.
 */
#ifndef CONTROLLER_READER_INTERNAL_H
#define CONTROLLER_READER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "controller/engine.h"
#include "controller/reader_loop.h"
#include "controller/tap.h"
#include "proto/list.h"

#define MSG_IDLE           "Présentez votre pass"
#define MSG_OUT_OF_ORDER   "Hors service"
#define MSG_OUT_OF_SERVICE "Service indisponible"

/* --- panel.c ------------------------------------------------------------------------------ */

struct panel {
	pthread_mutex_t lock;
	struct controller_gate *gate;
	unsigned open_ms;
	int64_t decision_until_ms; /* a decision is shown until then; 0: the idle display */
	bool reader_up;
	bool scanner_configured, scanner_up;
	char idle_shown[96];        /* what the idle display last said ("" before the first) */
	void (*changed)(void *ctx); /* a device came or went (outside the lock) */
	void *ctx;
	/* The gate ops a tap drives (controller/tap.h): each call is a decision shown, as
	 * panel_show. */
	struct controller_gate decisions;
};

void panel_init(struct panel *p, struct controller_gate *gate, unsigned open_ms,
                bool scanner_configured);
void panel_destroy(struct panel *p);
/* A decision: outputs as given, held open_ms, then the idle display. */
void panel_show(struct panel *p, bool open, enum controller_led led, const char *text);
/* Back to the idle display once a decision's time is over; the ms until that, or -1. */
int64_t panel_tick(struct panel *p);
/* A device came or went: the idle display says so (at once when nothing is shown). */
void panel_reader(struct panel *p, bool up);
void panel_scanner(struct panel *p, bool up);
/* The idle display, whatever is shown now (start and stop). */
void panel_idle(struct panel *p);
void panel_devices(struct panel *p, bool *reader, bool *scanner_configured, bool *scanner);
/* Relay closed, LEDs off, the display left as it is (stop). */
void panel_off(struct panel *p);

/* --- the loop ------------------------------------------------------------------------------ */

struct controller_reader_loop {
	struct controller_reader_loop_params p;
	const struct controller_config *cfg;
	volatile sig_atomic_t *stop, *reload; /* set by run() for both threads */

	struct controller_tap *tap; /* every decision (one at a time, whichever thread) */
	struct panel panel;

	/* --- reader thread -------------------------------------------------------------- */
	struct cardlib_reader *reader;
	struct proto_keyring *issuers; /* phones over NFC */
	struct cardlib_gate *gate;     /* phones over NFC: what this gate signs with */
	int64_t reopen_at_ms;
	int reopen_delay_ms;
	bool reader_failed_logged;
	bool waiting_removal; /* the target decided last, until the field is seen empty */
	uint8_t last_uid[CARDLIB_UID_MAX];
	size_t last_uid_len;
	/* The watchdog's view of the reader thread: inside libnfc since (0: not), and for
	 * how long that may legitimately last. libnfc waits for an InAutoPoll's ACK and
	 * answer with no timeout: a chip that stops answering would hang the thread. */
	_Atomic int64_t busy_since_ms;
	_Atomic int64_t busy_limit_ms;

	/* --- scanner thread ------------------------------------------------------------- */
	pthread_t scanner_thread;
	bool scanner_running;
	struct proto_keyring *qr_issuers; /* its own: no sharing across threads */
	int qr_fd;
	int64_t qr_reopen_at_ms;
	int qr_reopen_delay_ms;
	bool qr_failed_logged;
	int64_t qr_checked_at_ms; /* the line's device was last compared with the path */
	char qr_buf[CARDLIB_QR_LINE_MAX + 8];
	size_t qr_len;
	bool qr_overlong;
};

int64_t reader_mono_ms(void);

/* --- qr_scanner.c ------------------------------------------------------------------------ */

int qr_scanner_start(struct controller_reader_loop *l);
void qr_scanner_join(struct controller_reader_loop *l);

#endif /* CONTROLLER_READER_INTERNAL_H */
