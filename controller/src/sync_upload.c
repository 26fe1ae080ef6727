/*
 * sync_upload.c — what the gate uploads in a sync session (controller/sync_session.h,
 * sync_session_internal.h): the journal's two streams as batches, one in flight per
 * stream and acknowledged in the journal by sync_session.c when the server says so; the
 * empty batch of a keepalive; the health report that rides in a statistics batch.
 */
#include <stdlib.h>
#include <string.h>

#include "controller/error.h"
#include "controller/journal.h"
#include "controller/timekeeper.h"
#include "sync_session_internal.h"

/* Issue 13: the report the office sees (GateHealth). */
void sess_fill_health(struct controller_sync_session *s, Citypass__GateHealth *h)
{
	static const Citypass__GateHealth__Device states[] = {
	        [CONTROLLER_DEVICE_OK] = CITYPASS__GATE_HEALTH__DEVICE__DEVICE_OK,
	        [CONTROLLER_DEVICE_DOWN] = CITYPASS__GATE_HEALTH__DEVICE__DEVICE_DOWN,
	        [CONTROLLER_DEVICE_NOT_CONFIGURED] =
	                CITYPASS__GATE_HEALTH__DEVICE__DEVICE_NOT_CONFIGURED,
	};
	struct controller_gate_health g;
	memset(&g, 0, sizeof(g));
	s->cfg.health(s->cfg.ctx, &g);
	citypass__gate_health__init(h);
	if (g.reader >= CONTROLLER_DEVICE_OK && g.reader <= CONTROLLER_DEVICE_NOT_CONFIGURED)
		h->reader = states[g.reader];
	if (g.scanner >= CONTROLLER_DEVICE_OK && g.scanner <= CONTROLLER_DEVICE_NOT_CONFIGURED)
		h->scanner = states[g.scanner];
	h->list_version = g.list_version;
	h->list_issued_at = g.list_issued_at;
	h->free_disk_bytes = g.free_disk_bytes;
	h->clock_skew_s = g.clock_skew_s;
	struct controller_journal_stats js;
	if (controller_journal_stats(s->cfg.journal, &js) == 0)
		h->journal_backlog = js.stat_pending + js.consumption_pending;
	s->health_backlog = h->journal_backlog;
	s->health_due = 0;
	s->health_sent = sess_mono_now();
	s->status.health_reports++;
}

/* --- upload: the journal's two streams as batches ---------------------------------------- */

/*
 * One journal stream and how its rows become a batch's events. Both streams go the same
 * way (send_stream): the pending rows of one journal epoch (the server acknowledges per
 * epoch), at most batch_max, one batch in flight.
 */
struct stream_kind {
	Citypass__Stream wire;
	size_t row_size;
	int (*fetch)(struct controller_journal *j, void *rows, size_t max, size_t *n);
	int64_t (*epoch)(const void *row);
	uint64_t (*seq)(const void *row);
	/* Hang the events of rows[0..n) on b, their memory in *mem (the caller frees it). */
	int (*fill)(struct controller_sync_session *s, const void *rows, size_t n,
	            Citypass__EventBatch *b, void **mem);
};

static int stat_fetch(struct controller_journal *j, void *rows, size_t max, size_t *n)
{
	return controller_journal_fetch_stats(j, rows, max, n);
}

static int64_t stat_epoch(const void *row)
{
	return ((const struct controller_stat_row *)row)->epoch;
}

static uint64_t stat_seq(const void *row)
{
	return ((const struct controller_stat_row *)row)->seq;
}

static int stat_fill(struct controller_sync_session *s, const void *rows_, size_t n,
                     Citypass__EventBatch *b, void **mem)
{
	const struct controller_stat_row *rows = rows_;
	/* one block: the events, then the pointers to them */
	Citypass__StatEvent *ev = calloc(n, sizeof(*ev) + sizeof(ev));
	if (!ev)
		return CONTROLLER_ERR_NOMEM;
	Citypass__StatEvent **evp = (Citypass__StatEvent **)(ev + n);
	*mem = ev;
	/* A decision stamped later than now was made under a clock ahead, offline: its real
	 * time is unknown but past, the upload's quarter hour is the best one known (the
	 * server refuses a time a day ahead of its own). */
	const int64_t now = controller_timekeeper_now(s->cfg.clock);
	size_t clamped = 0;
	for (size_t i = 0; i < n; i++) {
		Citypass__StatEvent e = CITYPASS__STAT_EVENT__INIT;
		e.seq = rows[i].seq;
		e.site = rows[i].site;
		e.gate = rows[i].gate;
		e.sector = rows[i].sector;
		e.product = rows[i].product;
		e.outcome =
		        rows[i].granted ? CITYPASS__OUTCOME__GRANTED : CITYPASS__OUTCOME__REFUSED;
		e.reason = rows[i].reason;
		e.quarter_hour = rows[i].quarter_hour;
		if (s->cfg.clock && e.quarter_hour > now + 900) {
			e.quarter_hour = now - now % 900;
			clamped++;
		}
		ev[i] = e;
		evp[i] = &ev[i];
	}
	b->n_stats = n;
	b->stats = evp;
	if (clamped)
		sess_log(s,
		         "sync: %zu statistic(s) stamped in the future (clock ahead while "
		         "offline) sent with the current quarter hour",
		         clamped);
	return 0;
}

static int use_fetch(struct controller_journal *j, void *rows, size_t max, size_t *n)
{
	return controller_journal_fetch_consumption(j, rows, max, n);
}

static int64_t use_epoch(const void *row)
{
	return ((const struct controller_consumption_row *)row)->epoch;
}

static uint64_t use_seq(const void *row)
{
	return ((const struct controller_consumption_row *)row)->seq;
}

static int use_fill(struct controller_sync_session *s, const void *rows_, size_t n,
                    Citypass__EventBatch *b, void **mem)
{
	const struct controller_consumption_row *rows = rows_;
	/* one block: the events, then the pointers to them */
	Citypass__ConsumptionEvent *ev = calloc(n, sizeof(*ev) + sizeof(ev));
	if (!ev)
		return CONTROLLER_ERR_NOMEM;
	Citypass__ConsumptionEvent **evp = (Citypass__ConsumptionEvent **)(ev + n);
	*mem = ev;
	for (size_t i = 0; i < n; i++) {
		Citypass__ConsumptionEvent e = CITYPASS__CONSUMPTION_EVENT__INIT;
		e.seq = rows[i].seq;
		e.sector = s->cfg.sector;
		/* the protobuf field is not const; the encoder only reads it */
		e.pseudonym.data = (uint8_t *)rows[i].key;
		e.pseudonym.len = PROTO_LIST_KEY_LEN;
		e.product = rows[i].product;
		e.count = rows[i].count;
		e.period = (uint32_t)rows[i].period_number;
		ev[i] = e;
		evp[i] = &ev[i];
	}
	b->n_consumption = n;
	b->consumption = evp;
	return 0;
}

static const struct stream_kind stream_kinds[2] = {
        [STREAM_STATS] = {CITYPASS__STREAM__STATISTICS, sizeof(struct controller_stat_row),
                          stat_fetch, stat_epoch, stat_seq, stat_fill},
        [STREAM_CONSUMPTION] = {CITYPASS__STREAM__CONSUMPTION,
                                sizeof(struct controller_consumption_row), use_fetch, use_epoch,
                                use_seq, use_fill},
};

/* Queue one batch of a stream's pending rows; on success its last sequence is in flight
 * until the server's EventAck. Nothing pending: nothing sent. */
static int send_stream(struct controller_sync_session *s, int stream, int *sent)
{
	const struct stream_kind *k = &stream_kinds[stream];
	Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__GateHealth health;
	size_t n = 0, max = s->cfg.batch_max;
	void *mem = NULL;
	uint8_t *rows = calloc(max, k->row_size);
	int rc;

	if (!rows)
		return CONTROLLER_ERR_NOMEM;
	rc = k->fetch(s->cfg.journal, rows, max, &n);
	if (rc || n == 0)
		goto out;
	/* a batch holds one journal epoch: the rows up to the first of another epoch, which
	 * go in the next batch */
	for (size_t i = 1; i < n; i++)
		if (k->epoch(rows + i * k->row_size) != k->epoch(rows)) {
			n = i;
			break;
		}
	b.stream = k->wire;
	b.journal_epoch = (uint64_t)k->epoch(rows);
	if ((rc = k->fill(s, rows, n, &b, &mem)) != 0)
		goto out;
	if (stream == STREAM_STATS && s->health_due && s->cfg.health) {
		sess_fill_health(s, &health);
		b.health = &health;
	}
	f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
	f.event_batch = &b;
	if ((rc = sess_queue_frame(s, &f)) == 0) {
		s->streams[stream].inflight_last = k->seq(rows + (n - 1) * k->row_size);
		s->streams[stream].inflight_epoch = (int64_t)b.journal_epoch;
		*sent = 1;
	}
out:
	free(mem);
	free(rows);
	return rc;
}

/* Send what the journal holds, one batch in flight per stream (the next one goes when the
 * ack of this one has been written to the journal, so fetch never returns rows in flight).
 * With keepalive set and nothing to send, send an empty statistics batch. */
int sess_upload(struct controller_sync_session *s, int keepalive)
{
	int sent = 0, rc = 0;

	if (!sess_ready(s))
		return s->state == CONTROLLER_SYNC_SESSION_ENDED ? -1 : 0;
	if (!s->streams[STREAM_STATS].inflight_last)
		rc = send_stream(s, STREAM_STATS, &sent);
	if (rc == 0 && !s->streams[STREAM_CONSUMPTION].inflight_last)
		rc = send_stream(s, STREAM_CONSUMPTION, &sent);
	if (rc)
		return sess_end(s, "upload failed: %s", controller_strerror(rc));
	/* a health report due goes in an empty statistics batch (an older server takes it
	 * for a keepalive and ignores the field), unless a statistics batch is in flight: the
	 * next one carries it */
	const int idle = !s->streams[STREAM_STATS].inflight_last &&
	                 !s->streams[STREAM_CONSUMPTION].inflight_last;
	const int report =
	        s->health_due && s->cfg.health && !s->streams[STREAM_STATS].inflight_last;
	if ((keepalive && !sent && idle) || report) {
		Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
		Citypass__Frame f = CITYPASS__FRAME__INIT;
		Citypass__GateHealth health;
		b.stream = CITYPASS__STREAM__STATISTICS;
		b.journal_epoch = (uint64_t)controller_journal_epoch(s->cfg.journal);
		if (report) {
			sess_fill_health(s, &health);
			b.health = &health;
		}
		f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
		f.event_batch = &b;
		if ((rc = sess_queue_frame(s, &f)) != 0)
			return sess_end(s, "keepalive failed: %s", controller_strerror(rc));
	}
	return 0;
}
