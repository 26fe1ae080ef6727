/*
 * controller/tap.h — one tap, from the target the reader found (or the line the QR scanner
 * read) to the gate's command: the seam between the devices and the decision.
 *
 *   the medium: a target without ISO 14443-4 is refused (a UID is not a credential); a
 *   phone answers the citypass AID (NFC challenge); anything else is read as a card (this
 *   sector with the bundle's key). Then the list under the store's read lock, the
 *   journal's counters, the pure engine (controller/engine.h), and, in this order:
 *     the card's Debit (entries on the card; held uncommitted by the card)
 *     → the journal append (durable) → the card's CommitTransaction → the gate.
 * Fail closed: what is not journalled opens nothing; a journal that fails refuses the tap
 * and aborts the card's Debit (the citizen keeps the entry); a card pulled away before
 * its commit is answered withdraws the journal row and opens nothing
 * (docs/controller.md, "One tap, end to end").
 *
 * Everything a tap touches comes in here: the reader (cardlib ops — libnfc in the daemon,
 * the loopback holding the bench's virtual card in tests/controller/test_controller_tap.c),
 * the clock (controller/timekeeper.h), the gate (controller/gate.h ops) and the journal.
 * The reader loop (controller/reader_loop.h) keeps the loop, the devices and the display
 * between taps. Decisions are taken one at a time: a tap holds the tap's lock from the
 * target to the gate, so a card (the reader thread) and a QR code (the scanner thread)
 * may arrive together.
 */
#ifndef CONTROLLER_TAP_H
#define CONTROLLER_TAP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cardlib/reader.h"
#include "controller/config.h"
#include "controller/engine.h"
#include "controller/gate.h"
#include "controller/journal.h"
#include "controller/list_store.h"
#include "controller/timekeeper.h"
#include "proto/sign.h"

struct cardlib_gate; /* cardlib/token.h */

#ifdef __cplusplus
extern "C" {
#endif

struct controller_tap_params {
	/* site, gate, sector, policies, tz / period-tz, device id, retention, log_verbose; the
	 * card key is read under store_lock (the sync thread replaces it at a rotation) */
	const struct controller_config *cfg;
	struct controller_list_store *store;
	pthread_rwlock_t *store_lock;        /* read-locked around lookups; may be NULL */
	struct controller_journal *journal;  /* used by taps only, one at a time */
	struct controller_timekeeper *clock; /* every decision's time; NULL: the wall clock */
	struct controller_gate *gate;        /* each decision: relay, LED, display */
	/* Issuers of phone credentials, one keyring per thread (no mbedTLS context is shared
	 * across threads): nfc_issuers for controller_tap_target's thread, qr_issuers for
	 * controller_tap_qr's. Not copied; NULL refuses every phone. */
	const struct proto_keyring *nfc_issuers, *qr_issuers;
	/* The gate's certificate and device key (issue 17): a phone answers only a reader that
	 * signs its challenge with them. controller_tap_target's thread only; NULL (a bundle
	 * without gate-certificate) serves no phone over NFC. */
	const struct cardlib_gate *nfc_gate;
	/* After each journal append (the sync client uploads soon), and after a grant at a
	 * site with anti-passback (the site's other gates hear of it). Each may be NULL. */
	void (*journal_written)(void *ctx);
	void (*granted)(void *ctx, const uint8_t key[PROTO_LIST_KEY_LEN]);
	void *ctx;
};

struct controller_tap;

enum controller_tap_outcome {
	CONTROLLER_TAP_NONE = 0,           /* nothing decided: the target left before the read,
	                                    * or a QR line that is no citypass code */
	CONTROLLER_TAP_GRANTED = 1,        /* journalled (and debited), then the gate opened */
	CONTROLLER_TAP_REFUSED = 2,        /* journalled; the gate stayed closed */
	CONTROLLER_TAP_READ_AGAIN = 3,     /* the exchange did not complete (card pulled away):
	                                    * nothing journalled or debited, tap again */
	CONTROLLER_TAP_OUT_OF_SERVICE = 4, /* a local fault (journal, damaged list): refused,
	                                    * nothing journalled, nothing debited */
};

struct controller_tap_result {
	enum controller_tap_outcome outcome;
	enum controller_reason reason; /* GRANTED / REFUSED: the journalled reason */
	uint64_t seq;                  /* GRANTED / REFUSED: the statistic's sequence number */
	int cause; /* the cardlib / controller error behind a refused medium, READ_AGAIN or
	            * OUT_OF_SERVICE; 0 otherwise */
};

/*
 * Load the zones (site's, deployment's: before any thread starts, proto/calendar.h), make
 * the QR replay cache. 0, or -1 with one sentence in err. Nothing in params is copied but
 * the pointers: they must outlive the tap.
 */
int controller_tap_open(struct controller_tap **out, const struct controller_tap_params *params,
                        char *err, size_t errlen);
void controller_tap_close(struct controller_tap *tap);

/*
 * Decide the target `reader` selected (its info), which arrived at t0_ms (CLOCK_MONOTONIC
 * milliseconds: the log's tap-to-gate). The next select on the reader must find the same
 * target (the reader loop hands the poll's selection over). The target is released when
 * this returns. res may be NULL.
 */
void controller_tap_target(struct controller_tap *tap, struct cardlib_reader *reader,
                           const struct cardlib_target_info *info, int64_t t0_ms,
                           struct controller_tap_result *res);

/* Decide a line the QR scanner read (end of line removed), read at t0_ms. res may be NULL. */
void controller_tap_qr(struct controller_tap *tap, const char *line, size_t len, int64_t t0_ms,
                       struct controller_tap_result *res);

/* Journal housekeeping while nobody waits (purges, the trusted time floor, checkpoints). */
void controller_tap_housekeeping(struct controller_tap *tap);

const char *controller_tap_outcome_name(enum controller_tap_outcome outcome);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_TAP_H */
