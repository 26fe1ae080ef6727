/*
 * controller/reader_loop.h — the reader thread: one tap from the field (or one QR line) to
 * the gate, on the thread that owns libnfc (HIL-NOTES.md: libnfc is not thread-safe).
 *
 *   poll the QR scanner line (a serial device; a pty on the bench) and select on the
 *   reader; for a target: classify it (no ISO 14443-4 / no DESFire: a clonable tag,
 *   refused; a phone: NFC challenge; a card: read this sector with the bundle's key),
 *   look the pass up under the store's read lock, get the local counters from the
 *   journal, decide (controller_decide, civil time of the site's zone), debit the card
 *   when the engine says so, append to the journal (durable), then drive the gate.
 *
 * Two threads: the caller's (the reader thread, which owns libnfc) and a scanner thread
 * (the QR line, the gate's timers, a watchdog of the reader thread); decisions are taken
 * one at a time. Both devices may come and go: each is opened again with a bounded
 * back-off, and the display says "Hors service" while the reader cannot read.
 *
 * A card left on the reader is decided once: after a tap the loop waits until a select
 * finds the field empty before it decides again. A target with a fixed UID that differs
 * from the last one is a new tap at once; a random-ID target (4-byte UID starting 08h:
 * random-ID cards and phones) cannot be told apart from the last one, so only an empty
 * field re-arms the reader (docs/controller.md, "Operations").
 */
#ifndef CONTROLLER_READER_LOOP_H
#define CONTROLLER_READER_LOOP_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "controller/config.h"
#include "controller/gate.h"
#include "controller/journal.h"
#include "controller/list_store.h"

#ifdef __cplusplus
extern "C" {
#endif

struct controller_reader_loop_params {
	const struct controller_config *cfg;
	struct controller_list_store *store; /* shared with the sync thread ... */
	pthread_rwlock_t *store_lock;        /* ... which installs under the write lock */
	struct controller_journal *journal;  /* this thread's own connection */
	struct controller_gate *gate;
	/* The gate's trusted clock (controller/timekeeper.h): every decision's time; its floor
	 * drives retention. NULL: the wall clock. */
	struct controller_timekeeper *clock;
	/* Called after each journal append (the sync client uploads soon). May be NULL. */
	void (*journal_written)(void *ctx);
	void *ctx;
	/* Issue 13: the reader or the scanner came or went (the gate's health changed), and a
	 * pass was admitted at a site with anti-passback (its grant goes to the site's other
	 * gates). Called from the reader or the scanner thread; each may be NULL. */
	void (*devices_changed)(void *ctx);
	void (*granted)(void *ctx, const uint8_t key[8]);
	/* The daemon's command line: a reader hung inside libnfc makes the controller execute
	 * itself again with it (src/qr_scanner.c, the watchdog). NULL: it exits instead. */
	char *const *argv;
};

struct controller_reader_loop;

/*
 * Load the issuer key for phones, prepare the gate's panel. The reader and the QR scanner
 * are opened by run(), and again whenever they fail. 0, or -1 with one sentence in err.
 */
int controller_reader_loop_open(struct controller_reader_loop **out,
                                const struct controller_reader_loop_params *params, char *err,
                                size_t errlen);
/* Run until *stop or *reload becomes non-zero (signal handlers set them); the scanner
 * thread runs meanwhile. */
void controller_reader_loop_run(struct controller_reader_loop *loop, volatile sig_atomic_t *stop,
                                volatile sig_atomic_t *reload);
void controller_reader_loop_close(struct controller_reader_loop *loop);

/* Issue 13, thread-safe: whether the reader and the scanner can read now (a scanner not
 * configured: *scanner_configured false). */
void controller_reader_loop_devices(struct controller_reader_loop *loop, bool *reader_up,
                                    bool *scanner_configured, bool *scanner_up);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_READER_LOOP_H */
