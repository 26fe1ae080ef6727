/*
 * controller/journal.h — every decision, durable before the gate acts (sqlite, WAL).
 *
 * Two upload streams (DESIGN.md s.5), each with its own contiguous sequence numbers:
 *   statistics  — site, gate, sector, product, outcome, reason, time truncated to the
 *                 quarter hour: no identifier of any kind. One row per decision.
 *   consumption — (list key as sector pseudonym, product, count, period) only for a
 *                 decision that used a counted right (quota, entries counted for phones).
 * The server acknowledges after its own commit; acknowledged statistics rows are deleted
 * at once. Acknowledged consumption rows are kept — out of the upload stream — only until
 * a list issued after the acknowledgement reflects them, because until then they are
 * this gate's only memory of a household's uses (docs/controller.md, "Journal").
 * Identifying rows (consumption, anti-passback) are never kept beyond the retention
 * setting, acknowledged or not: privacy wins over upload for them, and every such loss is
 * counted (controller_journal_stats()). Statistics rows are never deleted unacknowledged.
 *
 * Every append is one transaction committed with synchronous=FULL: when append returns 0
 * the decision survives a crash or power loss.
 */
#ifndef CONTROLLER_JOURNAL_H
#define CONTROLLER_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/engine.h"
#include "proto/list.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CONTROLLER_RETENTION_DAYS_DEFAULT 90u
#define CONTROLLER_QUARTER_HOUR           900

struct controller_journal;

/*
 * The list a gate holds, as far as counting its own uses goes (issue 13, item 5): a use
 * acknowledged at server position P is in the list's counts when the server said, with the
 * list, that it reflects every use up to a position >= P (controller_journal_set_list_
 * position, for that version). Without a position (an older server, version 0 here) the
 * rule falls back to times: a use acked before the list's issue time is in it.
 */
struct controller_list_mark {
	uint64_t version;
	int64_t issued_at;
};

/* One decision, as the controller journals it. */
struct controller_event {
	int64_t at; /* the gate's clock at the decision, Unix seconds */
	uint32_t site, gate;
	uint16_t sector, product; /* product 0 for an unknown pass */
	bool granted;
	uint8_t reason; /* enum controller_reason */

	/* A counted use (the engine's COUNT_ENTRY / COUNT_QUOTA actions). */
	bool consumes;
	uint8_t key[PROTO_LIST_KEY_LEN]; /* the pass's list key: its sector pseudonym */
	uint32_t household;              /* household tag, 0 = none */
	uint8_t period;                  /* enum proto_period of the counter */
	int64_t period_number;           /* proto_period_number() */
	uint8_t count;                   /* uses consumed, normally 1 */

	/* Remember this grant for anti-passback (uses `key`). */
	bool remember_grant;

	/* A QR code (issue 13): (key, qr_step) is remembered until qr_expires, the last second
	 * the code could pass the window, so that its screenshot is refused across a reload
	 * or a restart (controller_journal_qr_seen). */
	bool qr;
	uint32_t qr_step;
	int64_t qr_expires;

	/* The decision's action is not done yet (a card debit awaiting its commit): the
	 * statistic is journalled but held back from upload, and the grant is remembered,
	 * until controller_journal_settle(). Not with `consumes`. */
	bool pending;
};

/* Sequence numbers an append received; 0 for a stream it wrote nothing to. */
struct controller_journal_seq {
	uint64_t stat;
	uint64_t consumption;
};

enum controller_stream {
	CONTROLLER_STREAM_STATS = 0,
	CONTROLLER_STREAM_CONSUMPTION = 1,
};

struct controller_stat_row {
	int64_t epoch; /* the journal connection that appended it (0: a version 1 journal) */
	uint64_t seq;
	int64_t quarter_hour; /* Unix seconds, a multiple of 900 */
	uint32_t site, gate;
	uint16_t sector, product;
	bool granted;
	uint8_t reason;
};

struct controller_consumption_row {
	int64_t epoch;
	uint64_t seq;
	uint8_t key[PROTO_LIST_KEY_LEN];
	uint16_t product;
	uint8_t count;
	uint8_t period;
	int64_t period_number;
};

/* Counters for the operator and the sync Hello. */
struct controller_journal_stats {
	uint64_t stat_pending, consumption_pending; /* unacknowledged rows */
	uint64_t stat_acked, consumption_acked;     /* highest acknowledged sequence */
	uint64_t consumption_purged_unacked;        /* rows dropped at retention before any ack */
};

/* Open or create the journal database at `path` (WAL, synchronous=FULL). */
int controller_journal_open(struct controller_journal **out, const char *path);
/* The same, and when it fails with CONTROLLER_ERR_SQLITE, sqlite's own sentence ("file is
 * not a database", "database or disk is full") in why: the cause the operator reads. */
int controller_journal_open_why(struct controller_journal **out, const char *path, char *why,
                                size_t whylen);
/* sqlite's sentence behind this journal's last CONTROLLER_ERR_SQLITE (never NULL). */
const char *controller_journal_error(const struct controller_journal *j);
/* The sentence for rc returned by this journal: controller_strerror(rc), and for
 * CONTROLLER_ERR_SQLITE sqlite's cause after it ("journal database error: database or disk
 * is full"). Valid until the next call on j; j's thread only, as every journal call. */
const char *controller_journal_strerror(struct controller_journal *j, int rc);
void controller_journal_close(struct controller_journal *j);

/* Append one decision durably. seq may be NULL. */
int controller_journal_append(struct controller_journal *j, const struct controller_event *ev,
                              struct controller_journal_seq *seq);
/* Append n decisions in one durable transaction (imports, tests, benchmarks). */
int controller_journal_append_many(struct controller_journal *j, const struct controller_event *ev,
                                   size_t n);

/* The oldest unacknowledged rows of a stream, at most max, in sequence order. */
int controller_journal_fetch_stats(struct controller_journal *j, struct controller_stat_row *rows,
                                   size_t max, size_t *n);
int controller_journal_fetch_consumption(struct controller_journal *j,
                                         struct controller_consumption_row *rows, size_t max,
                                         size_t *n);

/*
 * The server committed every row of `stream` up to `seq`: statistics rows are deleted,
 * consumption rows leave the upload stream (stamped `now`, kept for local counting). An
 * ack below the last one is ignored; one above the highest sequence issued is
 * CONTROLLER_ERR_ARG (the server cannot hold what was never sent).
 */
int controller_journal_ack(struct controller_journal *j, enum controller_stream stream,
                           uint64_t seq, int64_t now);

/*
 * The server committed every row of `stream` appended under `epoch` up to `seq`: the same
 * effect as controller_journal_ack on those rows only. An ack above what this journal
 * issued is no error here: a journal restored from an older copy holds fewer rows of an
 * epoch than the server does (docs/controller.md, "A lost or restored journal").
 * *changed (may be NULL): rows deleted or marked.
 */
int controller_journal_ack_epoch(struct controller_journal *j, enum controller_stream stream,
                                 int64_t epoch, uint64_t seq, int64_t now, uint64_t *changed);

/* The last trusted time the gate knew (controller/timekeeper.h), kept across restarts:
 * get (0 when none yet), and set (only ever raised). */
int controller_journal_time_floor(struct controller_journal *j, int64_t *t);
int controller_journal_set_time_floor(struct controller_journal *j, int64_t t);

/* Issue 17: the retention of identifying rows the server states for the gate's sector
 * (Welcome.retention_hours), kept across restarts so that a gate offline still obeys it:
 * get (0: none heard yet), and set. */
int controller_journal_sector_retention(struct controller_journal *j, uint32_t *hours);
int controller_journal_set_sector_retention(struct controller_journal *j, uint32_t hours);

/* The epoch this connection stamps on the rows it appends (random, > 0, new per open). */
int64_t controller_journal_epoch(const struct controller_journal *j);

/*
 * A pending decision (event.pending) was carried out (done: the card committed its debit;
 * the grant is remembered for anti-passback) or not (its statistic is deleted, durably: it
 * never reaches the server). `ev` is the event as appended.
 */
int controller_journal_settle(struct controller_journal *j, uint64_t stat_seq,
                              const struct controller_event *ev, bool done);
/* At start-up, before any thread: rows left pending by a crash or power cut between the
 * journal and the card's commit are taken as done (the gate may have opened: a decision
 * that opened a gate is never lost). *n: how many. */
int controller_journal_settle_orphans(struct controller_journal *j, uint64_t *n);

/*
 * Uses of a counter journalled here that the held list cannot yet include: rows not
 * acknowledged, or acknowledged at a server position above the one the list reflects (or,
 * with no position known, at or after its issue time). Counts the household's rows when
 * scope is the household and household != 0, else the pass's.
 */
int controller_journal_local_uses(struct controller_journal *j,
                                  const uint8_t key[PROTO_LIST_KEY_LEN], uint32_t household,
                                  uint8_t scope, uint8_t period, int64_t period_number,
                                  const struct controller_list_mark *list, uint32_t *uses);

/* Issue 13: the server acknowledged the consumption rows of `epoch` up to `seq` at its
 * usage position `position` (EventAck.position; 0: unknown, nothing recorded). Rows
 * already given a position keep theirs. */
int controller_journal_ack_position(struct controller_journal *j, int64_t epoch, uint64_t seq,
                                    uint64_t position);
/* Issue 13: list `version` reflects every use up to server position `position`
 * (ListUpdate.consumption_position; 0: unknown). Kept until the next. */
int controller_journal_set_list_position(struct controller_journal *j, uint64_t version,
                                         uint64_t position);

/*
 * WAL checkpoints (copying the WAL into the database, with its fsyncs) happen on the
 * commit that finds 1 000 frames or more in the WAL: inside a tap's append, a tail latency
 * of tens of ms. The reader loop defers them on its connection and calls
 * controller_journal_checkpoint_due (PASSIVE: it waits for nobody; same threshold) while
 * the field is empty.
 */
int controller_journal_defer_checkpoints(struct controller_journal *j);
int controller_journal_checkpoint_due(struct controller_journal *j);

/* Whether the QR code of this pass's key and time step was accepted here and can still
 * pass its window at `now` (journalled with its decision: event.qr). */
int controller_journal_qr_seen(struct controller_journal *j, const uint8_t key[PROTO_LIST_KEY_LEN],
                               uint32_t step, int64_t now, bool *seen);

/* Issue 13: another gate of the site admitted this pass at `at` (shared through the
 * server): remembered for anti-passback as this gate's own grants are (the later time
 * wins), purged after the window. */
int controller_journal_remember_grant(struct controller_journal *j,
                                      const uint8_t key[PROTO_LIST_KEY_LEN], int64_t at);

/* The last remembered grant of this pass at this site, 0 when none. */
int controller_journal_last_grant(struct controller_journal *j,
                                  const uint8_t key[PROTO_LIST_KEY_LEN], int64_t *at);

/*
 * Everything the engine needs from the journal for one tap, in one call: the unsynced
 * uses of the pass's counter (its profile's period and scope, the period containing
 * `today`) and its last grant here. A pass not found, or a right without a counter, gets
 * zero uses.
 */
int controller_journal_counters(struct controller_journal *j, const struct controller_pass *pass,
                                const struct controller_list_mark *list, int32_t today,
                                struct controller_local_counters *out);

/*
 * Housekeeping, run after each sync and hourly: forget acknowledged consumption rows the
 * held list reflects (as local_uses judges it), every identifying row older than
 * retention_s seconds (0: the default 90 days), anti-passback entries older than the
 * window, and QR codes past theirs.
 */
int controller_journal_purge(struct controller_journal *j, int64_t now,
                             const struct controller_list_mark *list, uint32_t retention_s,
                             uint32_t antipassback_minutes);

int controller_journal_stats(struct controller_journal *j, struct controller_journal_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_JOURNAL_H */
