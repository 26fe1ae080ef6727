/*
 * sync_session.c — the gate's sync session as a state machine (controller/sync_session.h,
 * docs/controller.md "The sync client", docs/link.md).
 *
 * IDLE → begin(): Hello queued → HELLO → Welcome (clock skew, card keys, key chain, CA
 * announcements) → READY: in any order EventAck / ListUpdate chunks / ListPublished /
 * CardKeys / KeyChain / PassbackGrant / Error from the server, while at most one EventBatch
 * per stream is in flight. Anything the server sends that breaks the protocol ends the
 * session with a reason (ENDED); the caller closes the connection and calls reset().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/error.h"
#include "controller/journal.h"
#include "controller/sync_session.h"
#include "controller/timekeeper.h"
#include "proto/error.h"
#include "proto/frame.h"
#include "sync_session_internal.h"

/* Largest update assembled: 5 M passes at 16 bytes is 80 MiB (DESIGN.md s.9). */
#define SYNC_UPDATE_MAX (256u * 1024u * 1024u)
/* A server silent this many keepalive periods is taken for gone. */
#define SYNC_SILENT_PERIODS 3
/* Issue 13: a gate's health goes at Hello, when it changed, and at least this often. */
#define SYNC_HEALTH_EVERY_S 300

/* --- small helpers ---------------------------------------------------------------------- */

double sess_mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sess_log(struct controller_sync_session *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!s->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.ctx, line);
}

/* The first reason is the one kept (what follows is a consequence). */
int sess_end(struct controller_sync_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->state == CONTROLLER_SYNC_SESSION_ENDED)
		return -1;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->state = CONTROLLER_SYNC_SESSION_ENDED;
	return -1;
}

int sess_ready(const struct controller_sync_session *s)
{
	return s->state == CONTROLLER_SYNC_SESSION_READY;
}

int sess_queue_frame(struct controller_sync_session *s, const Citypass__Frame *f)
{
	size_t need = proto_frame_encoded_size(f);
	long n;

	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + need > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		while (cap < s->out_len + need)
			cap *= 2;
		uint8_t *g = realloc(s->out, cap);
		if (!g)
			return CONTROLLER_ERR_NOMEM;
		s->out = g;
		s->out_cap = cap;
	}
	n = proto_frame_encode(f, 0, s->out + s->out_len, s->out_cap - s->out_len);
	if (n < 0)
		return (int)n;
	s->out_len += (size_t)n;
	s->frames_queued++;
	return 0;
}

/* --- what the gate sends ---------------------------------------------------------------- */

static int send_hello(struct controller_sync_session *s)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__Hello h = CITYPASS__HELLO__INIT;
	Citypass__ListHeld held = CITYPASS__LIST_HELD__INIT;
	Citypass__ListHeld *lists[1] = {&held};
	struct controller_journal_stats js;
	int rc;

	rc = controller_journal_stats(s->cfg.journal, &js);
	if (rc)
		return rc;
	held.sector = s->cfg.sector;
	held.version = s->want_snapshot ? 0 : s->cfg.held_version(s->cfg.ctx);
	held.format = s->cfg.held_format ? s->cfg.held_format(s->cfg.ctx) : 2;
	s->hello_held = held.version;
	h.device_id = s->device_id;
	h.n_lists = 1;
	h.lists = lists;
	h.stats_acked_seq = js.stat_acked;
	h.consumption_acked_seq = js.consumption_acked;
	h.software_version = s->software_version;
	/* issue 10: events are numbered per journal epoch, acked per batch */
	h.journal_epoch = (uint64_t)controller_journal_epoch(s->cfg.journal);
	h.consumption_purged_unacked = js.consumption_purged_unacked;
	Citypass__GateHealth health;
	if (s->cfg.health) {
		sess_fill_health(s, &health);
		h.health = &health;
	}
	if (s->cfg.share_passback)
		h.features |= CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE;
	if (s->cfg.key_chain)
		h.features |= CITYPASS__FEATURE__FEATURE_KEY_CHAIN;
	f.body_case = CITYPASS__FRAME__BODY_HELLO;
	f.hello = &h;
	sess_log(s,
	         "sync: Hello as %s, sector %u holds v%llu, acked statistics %llu consumption %llu",
	         s->device_id, (unsigned)held.sector, (unsigned long long)held.version,
	         (unsigned long long)js.stat_acked, (unsigned long long)js.consumption_acked);
	return sess_queue_frame(s, &f);
}

/* --- messages from the server ----------------------------------------------------------- */

/* Issue 11: the card keys of the gate's sector (Welcome, or pushed after a rotation). The
 * frame decoder checked their shape; a sector other than the gate's is bad input. */
static int on_card_keys(struct controller_sync_session *s, const Citypass__CardKeys *k)
{
	if (k->sector != s->cfg.sector)
		return sess_end(s,
		                "bad input from server: card keys of sector %u (the gate is %u's)",
		                (unsigned)k->sector, (unsigned)s->cfg.sector);
	if (!s->cfg.card_keys)
		return 0;
	const struct controller_card_keys ck = {
	        .version = (uint8_t)k->version,
	        .master = k->master.data,
	        .has_previous = k->previous_master.len == 16,
	        .previous_version = (uint8_t)k->previous_version,
	        .previous = k->previous_master.len == 16 ? k->previous_master.data : NULL,
	};
	s->cfg.card_keys(s->cfg.ctx, &ck);
	return 0;
}

/* Issue 11: the list key's rotation statements (Welcome, or pushed after a rotation, before
 * the lists the new key signs). The frame decoder bounded them; their signatures are the
 * callback's to check. A refused chain is logged, not fatal: the gate keeps the keys it
 * trusts and refuses lists signed by any other. */
static int on_key_chain(struct controller_sync_session *s, const Citypass__KeyChain *k)
{
	if (!s->cfg.key_chain || k->n_statements == 0)
		return 0;
	struct proto_rotation_signed *st = calloc(k->n_statements, sizeof(*st));
	if (!st)
		return 0;
	for (size_t i = 0; i < k->n_statements; i++) {
		const Citypass__KeyStatement *m = k->statements[i];
		st[i] = (struct proto_rotation_signed){m->text.data,          m->text.len,
		                                       m->old_signature.data, m->old_signature.len,
		                                       m->new_signature.data, m->new_signature.len};
	}
	s->cfg.key_chain(s->cfg.ctx, st, k->n_statements);
	free(st);
	return 0;
}

/* Issue 11: the device CA's rotations (Welcome), handed to the caller, who keeps its TLS
 * anchors. */
static void on_ca_chain(struct controller_sync_session *s, const Citypass__CaChain *c)
{
	if (!s->cfg.ca_chain || c->n_announcements == 0)
		return;
	struct controller_ca_announcement *a = calloc(c->n_announcements, sizeof(*a));
	if (!a)
		return;
	for (size_t i = 0; i < c->n_announcements; i++) {
		const Citypass__CaAnnouncement *m = c->announcements[i];
		a[i] = (struct controller_ca_announcement){
		        m->cross_certificate.data, m->ca_certificate.data, m->cross_certificate.len,
		        m->ca_certificate.len};
	}
	s->cfg.ca_chain(s->cfg.ca_ctx, a, c->n_announcements);
	free(a);
}

/* Issue 13: another gate of the site admitted this pass: remembered at this gate's time
 * (the frame left that gate within the second), for the window only. */
static int on_passback(struct controller_sync_session *s, const Citypass__PassbackGrant *g)
{
	if (!s->cfg.share_passback)
		return sess_end(s, "bad input from server: a shared grant this gate did not "
		                   "ask for");
	int rc = controller_journal_remember_grant(s->cfg.journal, g->key.data,
	                                           controller_timekeeper_now(s->cfg.clock));
	if (rc)
		sess_log(s, "sync: a grant shared by another gate not remembered: %s",
		         controller_strerror(rc));
	s->status.grants_heard++;
	return 0;
}

/* Issue 17: the sector's retention, kept by the journal and obeyed by the tap's purge
 * (the stricter of it and retention-days), link up or down. Heard only over the
 * authenticated link; a server that states none (0) leaves what the gate holds. */
static void on_retention(struct controller_sync_session *s, uint32_t hours)
{
	uint32_t held = 0;
	(void)controller_journal_sector_retention(s->cfg.journal, &held);
	if (held == hours)
		return;
	int rc = controller_journal_set_sector_retention(s->cfg.journal, hours);
	if (rc)
		sess_log(s, "sync: the sector's retention (%u h) not kept: %s", hours,
		         controller_strerror(rc));
	else
		sess_log(s, "sync: the sector keeps identifying rows %u hours", hours);
}

static int on_welcome(struct controller_sync_session *s, const Citypass__Welcome *w)
{
	int64_t skew = w->server_time - (int64_t)time(NULL);
	/* the server's time is the gate's from now on (issue 10): kept across restarts as
	 * the floor a clock behind cannot go under */
	controller_timekeeper_server_time(s->cfg.clock, w->server_time);
	if (s->cfg.clock && w->server_time > 0)
		(void)controller_journal_set_time_floor(s->cfg.journal, w->server_time);

	if (s->state != CONTROLLER_SYNC_SESSION_HELLO)
		return sess_end(s, "bad input from server: Welcome outside the session start");
	s->state = CONTROLLER_SYNC_SESSION_READY;
	s->healthy = 1;
	s->server_features = w->features;
	s->status.clock_skew_s = skew;
	sess_log(s, "sync: connected to %s (server '%.64s'), clock skew %lld s", s->server,
	         w->server_version, (long long)skew);
	if (w->card_keys && on_card_keys(s, w->card_keys) != 0)
		return -1;
	if (w->key_chain)
		on_key_chain(s, w->key_chain);
	if (w->ca_chain)
		on_ca_chain(s, w->ca_chain);
	if (w->retention_hours)
		on_retention(s, w->retention_hours);
	return sess_upload(s, 0);
}

static int on_ack(struct controller_sync_session *s, const Citypass__EventAck *a)
{
	int is_stats = a->stream == CITYPASS__STREAM__STATISTICS;
	struct sync_stream *st = &s->streams[is_stats ? STREAM_STATS : STREAM_CONSUMPTION];
	enum controller_stream stream =
	        is_stats ? CONTROLLER_STREAM_STATS : CONTROLLER_STREAM_CONSUMPTION;
	int64_t epoch = (int64_t)a->journal_epoch;
	int rc;

	if (a->journal_epoch > INT64_MAX)
		return sess_end(s, "bad input from server: ack of journal epoch %llu",
		                (unsigned long long)a->journal_epoch);
	if (epoch == 0 && st->inflight_last && st->inflight_epoch != 0) {
		/* a server from before epochs acknowledges by sequence alone */
		epoch = st->inflight_epoch;
	}
	/* Acks are per journal epoch (issue 10): an ack above what this journal issued in
	 * that epoch is normal after a restore from an older copy (the server holds rows the
	 * copy never had) and touches no row of any other epoch. */
	rc = controller_journal_ack_epoch(s->cfg.journal, stream, epoch, a->acked_seq,
	                                  controller_timekeeper_now(s->cfg.clock), NULL);
	if (rc)
		return sess_end(s, "%s ack %llu (epoch %lld) not recorded by the journal: %s",
		                is_stats ? "statistics" : "consumption",
		                (unsigned long long)a->acked_seq, (long long)epoch,
		                controller_strerror(rc));
	/* issue 13: where the server holds these uses; a list at or past it counts them */
	if (!is_stats && a->position &&
	    (rc = controller_journal_ack_position(s->cfg.journal, epoch, a->acked_seq,
	                                          a->position)))
		return sess_end(s, "consumption ack position %llu not recorded: %s",
		                (unsigned long long)a->position, controller_strerror(rc));
	if (is_stats && a->acked_seq > s->status.stats_acked)
		s->status.stats_acked = a->acked_seq;
	if (!is_stats && a->acked_seq > s->status.consumption_acked)
		s->status.consumption_acked = a->acked_seq;
	if (st->inflight_last && epoch == st->inflight_epoch && a->acked_seq >= st->inflight_last) {
		sess_log(s, "sync: %s acked up to %llu", is_stats ? "statistics" : "consumption",
		         (unsigned long long)a->acked_seq);
		st->inflight_last = 0;
		/* issue 13: the office saw a backlog; once it is all acked, say so at once
		 * (not at the next 5-minute report) */
		struct controller_journal_stats js;
		if (s->health_backlog && !s->streams[STREAM_STATS].inflight_last &&
		    !s->streams[STREAM_CONSUMPTION].inflight_last &&
		    controller_journal_stats(s->cfg.journal, &js) == 0 &&
		    js.stat_pending + js.consumption_pending == 0)
			s->health_due = 1;
		return sess_upload(s, 0);
	}
	return 0;
}

static int update_bad(struct controller_sync_session *s, const char *why)
{
	return sess_end(s, "bad input from server: ListUpdate %s", why);
}

/* Take one chunk into the update being assembled. 1: complete, 0: more to come, -1. */
static int update_take_chunk(struct controller_sync_session *s, const Citypass__ListUpdate *u)
{
	struct sync_update *a = &s->upd;

	if (u->sector != s->cfg.sector)
		return update_bad(s, "for another sector");
	if (u->chunk_index == 0) {
		if (a->active)
			return update_bad(s, "started before the previous one ended");
		if (u->total_size > SYNC_UPDATE_MAX ||
		    u->total_size > (uint64_t)u->chunk_count * PROTO_FRAME_LIST_CHUNK)
			return update_bad(s, "total_size out of bounds");
		free(a->buf);
		memset(a, 0, sizeof(*a));
		a->active = 1;
		a->sector = u->sector;
		a->kind = (uint32_t)u->kind;
		a->base_version = u->base_version;
		a->version = u->version;
		a->chunk_count = u->chunk_count;
		a->total_size = u->total_size;
	} else if (!a->active || u->chunk_index != a->next_chunk) {
		return update_bad(s, "chunk out of order");
	} else if ((uint32_t)u->kind != a->kind || u->base_version != a->base_version ||
	           u->version != a->version || u->chunk_count != a->chunk_count ||
	           u->total_size != a->total_size) {
		return update_bad(s, "chunk of another update");
	}
	if (u->data.len > a->total_size - a->len)
		return update_bad(s, "larger than its total_size");
	if (a->len + u->data.len > a->cap) {
		size_t cap = a->cap ? a->cap : 65536;
		while (cap < a->len + u->data.len)
			cap *= 2;
		if (cap > a->total_size)
			cap = (size_t)a->total_size;
		uint8_t *g = realloc(a->buf, cap);
		if (!g)
			return sess_end(s, "out of memory assembling an update");
		a->buf = g;
		a->cap = cap;
	}
	if (u->data.len)
		memcpy(a->buf + a->len, u->data.data, u->data.len);
	a->len += u->data.len;
	a->next_chunk = u->chunk_index + 1;
	if (a->next_chunk < a->chunk_count)
		return 0;
	if (a->len != a->total_size)
		return update_bad(s, "shorter than its total_size");
	if (u->signature.len == 0)
		return update_bad(s, "without a signature");
	return 1;
}

static int on_update(struct controller_sync_session *s, const Citypass__ListUpdate *u)
{
	struct sync_update *a = &s->upd;
	int rc = update_take_chunk(s, u);

	if (rc <= 0)
		return rc;
	const char *kind = a->kind == CITYPASS__LIST_UPDATE__KIND__SNAPSHOT ? "snapshot" : "delta";
	/* Issue 13: which of this gate's acked uses the new version holds (0: the server does
	 * not say; the time rule counts then). Recorded before the install, so a decision
	 * never sees the new list without it: the position names its version, and a list
	 * held with another version falls back to the time rule. The whole of it is timed:
	 * what a gate spends on an update is this commit and the install (docs/bench.md). */
	const double t0 = sess_mono_now();
	rc = controller_journal_set_list_position(s->cfg.journal, a->version,
	                                          u->consumption_position);
	if (rc)
		sess_log(s, "sync: the list's usage position not recorded: %s",
		         controller_strerror(rc));
	const double t_position = sess_mono_now();
	rc = s->cfg.install(s->cfg.ctx,
	                    a->kind == CITYPASS__LIST_UPDATE__KIND__SNAPSHOT
	                            ? CONTROLLER_UPDATE_SNAPSHOT
	                            : CONTROLLER_UPDATE_DELTA,
	                    a->buf, a->len, u->signature.data, u->signature.len);
	if (rc) {
		/* the list code said why (signature, base, rollback...); the next session asks
		 * for a snapshot, after the backoff, so a bad update cannot loop fast */
		s->want_snapshot = 1;
		s->healthy = 0;
		return sess_end(s, "%s v%llu (base v%llu, %zu bytes) refused: %s", kind,
		                (unsigned long long)a->version, (unsigned long long)a->base_version,
		                a->len, controller_strerror(rc));
	}
	const double t1 = sess_mono_now();
	s->want_snapshot = 0;
	s->hello_held = a->version;
	s->health_due = 1; /* issue 13: the office sees the new version at once */
	sess_log(s,
	         "sync: installed %s v%llu (%zu bytes, %u chunk%s) in %.1f ms, %.1f ms of it "
	         "recording the list's usage position",
	         kind, (unsigned long long)a->version, a->len, (unsigned)a->chunk_count,
	         a->chunk_count == 1 ? "" : "s", (t1 - t0) * 1e3, (t_position - t0) * 1e3);
	free(a->buf);
	memset(a, 0, sizeof(*a));
	return sess_upload(s, 0);
}

static int on_frame(struct controller_sync_session *s, const Citypass__Frame *f)
{
	s->status.last_contact = (int64_t)time(NULL);
	s->last_rx = sess_mono_now();

	if (f->body_case == CITYPASS__FRAME__BODY_ERROR) {
		if (f->error->code != CITYPASS__ERROR__CODE__SHUTTING_DOWN)
			s->healthy = 0; /* back off as after a failure */
		return sess_end(s, "server error %d: %.200s", (int)f->error->code,
		                f->error->message);
	}
	if (f->body_case == CITYPASS__FRAME__BODY_WELCOME)
		return on_welcome(s, f->welcome);
	if (!sess_ready(s))
		return sess_end(s, "bad input from server: frame %d before Welcome",
		                (int)f->body_case);
	switch (f->body_case) {
	case CITYPASS__FRAME__BODY_EVENT_ACK:
		return on_ack(s, f->event_ack);
	case CITYPASS__FRAME__BODY_LIST_UPDATE:
		return on_update(s, f->list_update);
	case CITYPASS__FRAME__BODY_CARD_KEYS:
		return on_card_keys(s, f->card_keys);
	case CITYPASS__FRAME__BODY_KEY_CHAIN:
		return on_key_chain(s, f->key_chain);
	case CITYPASS__FRAME__BODY_PASSBACK_GRANT:
		return on_passback(s, f->passback_grant);
	case CITYPASS__FRAME__BODY_LIST_PUBLISHED:
		/* the server follows it with the update itself (docs/sync-server.md, Push) */
		if (f->list_published->sector == s->cfg.sector &&
		    f->list_published->version > s->published)
			s->published = f->list_published->version;
		sess_log(s, "sync: sector %u v%llu published", (unsigned)f->list_published->sector,
		         (unsigned long long)f->list_published->version);
		return 0;
	default:
		return sess_end(s, "bad input from server: a controller's message (frame %d)",
		                (int)f->body_case);
	}
}

/* --- the API ---------------------------------------------------------------------------- */

int controller_sync_session_new(struct controller_sync_session **out,
                                const struct controller_sync_session_config *cfg)
{
	struct controller_sync_session *s;

	if (!out)
		return CONTROLLER_ERR_ARG;
	*out = NULL;
	if (!cfg || !cfg->device_id || !cfg->device_id[0] || !cfg->journal || !cfg->held_version ||
	    !cfg->install || cfg->batch_max == 0 || cfg->keepalive_s == 0)
		return CONTROLLER_ERR_ARG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CONTROLLER_ERR_NOMEM;
	s->cfg = *cfg;
	if (s->cfg.batch_max > SYNC_BATCH_CAP)
		s->cfg.batch_max = SYNC_BATCH_CAP;
	s->server = strdup(cfg->server ? cfg->server : "the server");
	s->device_id = strdup(cfg->device_id);
	s->software_version = strdup(cfg->software_version ? cfg->software_version : "");
	if (!s->server || !s->device_id || !s->software_version) {
		controller_sync_session_free(s);
		return CONTROLLER_ERR_NOMEM;
	}
	s->cfg.server = s->server;
	s->cfg.device_id = s->device_id;
	s->cfg.software_version = s->software_version;
	*out = s;
	return 0;
}

void controller_sync_session_free(struct controller_sync_session *s)
{
	if (!s)
		return;
	controller_sync_session_reset(s);
	free(s->out);
	free(s->server);
	free(s->device_id);
	free(s->software_version);
	free(s);
}

int controller_sync_session_set_server(struct controller_sync_session *s, const char *server)
{
	char *copy;
	if (!s || !server)
		return CONTROLLER_ERR_ARG;
	if (!(copy = strdup(server)))
		return CONTROLLER_ERR_NOMEM;
	free(s->server);
	s->server = copy;
	s->cfg.server = s->server;
	return 0;
}

int controller_sync_session_begin(struct controller_sync_session *s)
{
	int rc;

	if (s->state != CONTROLLER_SYNC_SESSION_IDLE)
		return sess_end(s, "a session begun twice");
	s->dec = proto_frame_decoder_new(0);
	if (!s->dec)
		return sess_end(s, "out of memory");
	s->state = CONTROLLER_SYNC_SESSION_HELLO;
	if ((rc = send_hello(s)) != 0)
		return sess_end(s, "Hello failed: %s", controller_strerror(rc));
	return 0;
}

int controller_sync_session_feed(struct controller_sync_session *s, const uint8_t *data, size_t len)
{
	Citypass__Frame *f = NULL;
	int rc;

	if (s->state == CONTROLLER_SYNC_SESSION_ENDED)
		return -1;
	if (!s->dec)
		return sess_end(s, "bytes from the server before the session began");
	if (proto_frame_decoder_feed(s->dec, data, len) != 0)
		return sess_end(s, "out of memory reading a frame");
	while ((rc = proto_frame_next(s->dec, &f)) == 1) {
		int r = on_frame(s, f);
		proto_frame_free_message(f);
		if (r != 0)
			return -1;
	}
	if (rc < 0)
		return sess_end(s, "bad input from server: %s", proto_strerror(rc));
	return 0;
}

const uint8_t *controller_sync_session_output(const struct controller_sync_session *s, size_t *len)
{
	*len = s->out_len - s->out_off;
	return s->out + s->out_off;
}

void controller_sync_session_sent(struct controller_sync_session *s, size_t n)
{
	if (n > s->out_len - s->out_off)
		n = s->out_len - s->out_off;
	s->out_off += n;
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
}

uint64_t controller_sync_session_frames_queued(const struct controller_sync_session *s)
{
	return s->frames_queued;
}

int controller_sync_session_keepalive(struct controller_sync_session *s)
{
	if (!sess_ready(s))
		return s->state == CONTROLLER_SYNC_SESSION_ENDED ? -1 : 0;
	if (sess_mono_now() - s->last_rx > (double)SYNC_SILENT_PERIODS * s->cfg.keepalive_s)
		return sess_end(s, "server silent for %u s",
		                SYNC_SILENT_PERIODS * s->cfg.keepalive_s);
	if (s->cfg.health && sess_mono_now() - s->health_sent >= SYNC_HEALTH_EVERY_S)
		s->health_due = 1;
	return sess_upload(s, 1);
}

int controller_sync_session_kick(struct controller_sync_session *s)
{
	/* The store found a damaged file and now claims no list: a repeated Hello asks the
	 * server for a snapshot (docs/sync-server.md) without waiting for the next session. */
	if (sess_ready(s) && !s->upd.active && s->hello_held != 0 &&
	    s->cfg.held_version(s->cfg.ctx) == 0 && send_hello(s) != 0)
		return sess_end(s, "Hello failed: out of memory");
	return sess_upload(s, 0);
}

void controller_sync_session_health_changed(struct controller_sync_session *s)
{
	s->health_due = 1;
}

int controller_sync_session_share_grants(struct controller_sync_session *s,
                                         const uint8_t (*keys)[PROTO_LIST_KEY_LEN], size_t n)
{
	if (!sess_ready(s) || !s->cfg.share_passback ||
	    !(s->server_features & CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE))
		return s->state == CONTROLLER_SYNC_SESSION_ENDED ? -1 : 0;
	for (size_t i = 0; i < n; i++) {
		Citypass__Frame f = CITYPASS__FRAME__INIT;
		Citypass__PassbackGrant g = CITYPASS__PASSBACK_GRANT__INIT;
		g.key.data = (uint8_t *)keys[i]; /* not const in protobuf-c; only read */
		g.key.len = PROTO_LIST_KEY_LEN;
		f.body_case = CITYPASS__FRAME__BODY_PASSBACK_GRANT;
		f.passback_grant = &g;
		int rc = sess_queue_frame(s, &f);
		if (rc)
			return sess_end(s, "sharing a grant failed: %s", controller_strerror(rc));
		s->status.grants_shared++;
	}
	return 0;
}

void controller_sync_session_reset(struct controller_sync_session *s)
{
	proto_frame_decoder_free(s->dec);
	s->dec = NULL;
	s->out_len = s->out_off = 0;
	memset(s->streams, 0, sizeof(s->streams));
	free(s->upd.buf);
	memset(&s->upd, 0, sizeof(s->upd));
	s->state = CONTROLLER_SYNC_SESSION_IDLE;
	s->healthy = 0;
	s->server_features = 0;
	s->why[0] = '\0';
}

enum controller_sync_session_state
controller_sync_session_state(const struct controller_sync_session *s)
{
	return s->state;
}

const char *controller_sync_session_why(const struct controller_sync_session *s)
{
	return s->why;
}

int controller_sync_session_healthy(const struct controller_sync_session *s)
{
	return s->healthy;
}

void controller_sync_session_status(const struct controller_sync_session *s,
                                    struct controller_sync_status *st)
{
	*st = s->status;
	st->connected = sess_ready(s);
	st->reconnects = 0;
}
