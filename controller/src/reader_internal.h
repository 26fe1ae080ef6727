/*
 * reader_internal.h — the reader loop's parts (controller/reader_loop.h), shared by:
 *   reader_loop.c  the reader thread: the reader opened, polled (the PN532 polls by itself),
 *                  re-opened with a bounded back-off; cards and phones over NFC
 *   qr_scanner.c   the scanner thread: the QR line opened, read, re-opened; the gate's
 *                  timers; the watchdog of a reader hung inside libnfc
 *   tap.c          one tap decided, whatever brought it: list, counters, engine, card
 *                  debit, journal, gate
 *   panel.c        the gate's outputs, shared by the two threads, and what the display
 *                  shows between taps (out of service while the reader cannot read)
 * Decisions are taken one at a time (decide_lock): both threads share one journal
 * connection, and a tap is short.
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

/* What one tap brought, whatever the medium. */
struct tap {
	enum controller_credential cred;
	int64_t t0_ms;
	bool have_key;
	uint8_t key[PROTO_LIST_KEY_LEN];
	struct cardlib_card *card; /* cards: the open session (for a debit) */
	struct controller_card_read card_read;
	bool paid; /* a card whose unanswered commit had taken this entry: no second debit */
	/* QR: the code's time step, remembered with the decision (a screenshot cannot be
	 * used again in its window, across a restart) until `qr_expires` */
	bool qr;
	uint32_t qr_step;
	int64_t qr_expires;
};

struct controller_reader_loop {
	struct controller_reader_loop_params p;
	const struct controller_config *cfg;
	volatile sig_atomic_t *stop, *reload; /* set by run() for both threads */

	pthread_mutex_t decide_lock;    /* one decision at a time (one journal connection) */
	struct proto_zone *site_zone;   /* opening hours, subscription days */
	struct proto_zone *period_zone; /* quota periods: the deployment's zone */
	struct panel panel;
	uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN];
	uint64_t purged_version;
	int64_t purged_at;

	/* --- reader thread -------------------------------------------------------------- */
	struct cardlib_reader *reader;
	struct proto_keyring *issuers; /* phones over NFC */
	int64_t reopen_at_ms;
	int reopen_delay_ms;
	bool reader_failed_logged;
	bool waiting_removal; /* the target decided last, until the field is seen empty */
	uint8_t last_uid[CARDLIB_UID_MAX];
	size_t last_uid_len;
	/* A card whose CommitTransaction got no answer (pulled away at that instant): it may
	 * or may not have taken the entry. If it comes back soon, its value tells which
	 * (docs/controller.md, "Entries on the card"). */
	struct {
		bool active;
		uint8_t key[PROTO_LIST_KEY_LEN];
		int32_t value_before;
		int64_t at_ms;
	} unsure_commit;
	/* The watchdog's view of the reader thread: inside libnfc since (0: not), and for
	 * how long that may legitimately last. libnfc waits for an InAutoPoll's ACK and
	 * answer with no timeout: a chip that stops answering would hang the thread. */
	_Atomic int64_t busy_since_ms;
	_Atomic int64_t busy_limit_ms;

	/* --- scanner thread ------------------------------------------------------------- */
	pthread_t scanner_thread;
	bool scanner_running;
	struct proto_keyring *qr_issuers; /* its own: no sharing across threads */
	struct cardlib_qr_replay_cache *qr_cache;
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
const char *reader_cred_name(enum controller_credential c);

/* --- tap.c: deciding (callers hold decide_lock) -------------------------------------------- */

/* The list, the counters, the engine, then the card debit or the journal, then the gate. */
void tap_decide(struct controller_reader_loop *l, struct tap *t);
/* A refusal before any list lookup: the medium itself was refused (journalled). */
void tap_refuse_medium(struct controller_reader_loop *l, struct tap *t, const char *message,
                       int cause);
/* A phone's credential or QR code refused, with the message its cause deserves. */
void tap_refuse_credential(struct controller_reader_loop *l, struct tap *t, int rc);
/* A read that did not complete: nothing journalled, the citizen asked to try again. */
void tap_read_again(struct controller_reader_loop *l, struct tap *t, int cause);
/* Journal housekeeping while nobody waits (purges, the trusted time floor). */
void tap_housekeeping(struct controller_reader_loop *l);
/* cardlib errors that mean the exchange did not complete (not a refusal of the card). */
bool tap_error_is_transport(int rc);

/* --- qr_scanner.c ------------------------------------------------------------------------ */

int qr_scanner_start(struct controller_reader_loop *l);
void qr_scanner_join(struct controller_reader_loop *l);

#endif /* CONTROLLER_READER_INTERNAL_H */
