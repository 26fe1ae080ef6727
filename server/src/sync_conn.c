/*
 * sync_conn.c — one controller connection: TLS handshake with the certificate checked
 * against the backend, framing, the session rules of docs/sync-server.md, output queued
 * in an evbuffer and written through mbedTLS as the socket drains.
 *
 * A connection is closed only through conn_free(); every handler returns -1 once it has
 * closed (or begun closing) its connection, and its caller then touches it no more.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>

#include "proto/clist.h"
#include "proto/error.h"
#include "proto/frame.h"
#include "sync_internal.h"

/* Output is refilled with list chunks below LOW; reading pauses above HIGH, so a
 * controller that does not read cannot make the server buffer without bound. */
#define SYNC_OUT_LOW_WATER  (256u * 1024u)
#define SYNC_OUT_HIGH_WATER (2u * 1024u * 1024u)
/* Fairness: records written / read per callback before yielding to other connections. */
#define SYNC_WRITE_ROUNDS 64
#define SYNC_READ_ROUNDS  32
/* Batches of one connection handed to the ingest thread and not answered yet, at most. */
#define SYNC_MAX_PENDING_BATCHES 4
/* A connection refused for bad input gets this long to receive its Error frame. */
#define SYNC_REJECT_DRAIN_MS 1000

static int conn_flush(struct sync_conn *c);

/* --- lifecycle -------------------------------------------------------------------------- */

struct sync_conn *sync_conn_ref(struct sync_conn *c)
{
	c->refs++;
	return c;
}

void sync_conn_unref(struct sync_conn *c)
{
	if (--c->refs == 0 && c->closed)
		free(c);
}

/* The connection no longer counts among the handshakes in progress (done or closed). */
static void conn_handshake_over(struct sync_conn *c)
{
	if (c->in_handshake) {
		c->in_handshake = 0;
		sync_server_handshake_ends(c->srv);
	}
}

/* Close everything of the connection; the structure itself goes now, or when the last
 * batch handed to the ingest thread comes back (sync_conn_unref). */
static void conn_free(struct sync_conn *c)
{
	struct server_sync *s = c->srv;

	if (c->closed)
		return;
	conn_handshake_over(c);
	sync_figures_conn_gone(c);
	TAILQ_REMOVE(&s->conns, c, all_link);
	if (c->sector) {
		TAILQ_REMOVE(&c->sector->conns, c, sector_link);
		c->sector->n_conns--;
	}
	while (c->q_head) {
		struct sync_outgoing *o = c->q_head;
		c->q_head = o->next;
		sync_blob_unref(o->blob);
		free(o);
	}
	if (c->rd)
		event_free(c->rd);
	if (c->wr)
		event_free(c->wr);
	if (c->timer)
		event_free(c->timer);
	if (c->out)
		evbuffer_free(c->out);
	proto_frame_decoder_free(c->dec);
	link_tls_session_free(&c->tls);
	if (c->fd >= 0)
		evutil_closesocket(c->fd);
	s->stats.connections--;
	c->closed = 1;
	if (c->refs == 0)
		free(c);
	sync_server_conn_gone(s);
}

static const char *conn_who(const struct sync_conn *c, char *buf, size_t cap)
{
	if (c->cn[0])
		snprintf(buf, cap, "conn %u %s (%s)", c->id, c->cn, c->peer);
	else
		snprintf(buf, cap, "conn %u (%s)", c->id, c->peer);
	return buf;
}

static void conn_vlog(struct sync_conn *c, int priority, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
static void conn_vlog(struct sync_conn *c, int priority, const char *fmt, va_list ap)
{
	char who[192], what[384];
	vsnprintf(what, sizeof(what), fmt, ap);
	if (c->srv->log_gate && priority <= c->srv->log_level) {
		char line[600];
		snprintf(line, sizeof(line), "%s: %s", conn_who(c, who, sizeof(who)), what);
		const struct server_sync_gate_ref gate = {c->cn, c->site_name, c->sector_name};
		c->srv->log_gate(c->srv->log_arg, priority, &gate, line);
		return;
	}
	sync_log(c->srv, priority, "%s: %s", conn_who(c, who, sizeof(who)), what);
}

static void conn_log(struct sync_conn *c, int priority, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void conn_log(struct sync_conn *c, int priority, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conn_vlog(c, priority, fmt, ap);
	va_end(ap);
}

/* Close now, with one log line saying why. Returns -1 for the caller to pass up. */
static int conn_close(struct sync_conn *c, int priority, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int conn_close(struct sync_conn *c, int priority, const char *fmt, ...)
{
	va_list ap;
	char why[384];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	conn_log(c, priority, "closed: %s", why);
	conn_free(c);
	return -1;
}

static void set_timer(struct sync_conn *c, const struct timeval *tv)
{
	event_add(c->timer, tv);
}

static int send_frame(struct sync_conn *c, const Citypass__Frame *f)
{
	size_t size = proto_frame_encoded_size(f);
	struct evbuffer_iovec vec;
	long n;

	if (evbuffer_reserve_space(c->out, (ev_ssize_t)size, &vec, 1) < 1 || vec.iov_len < size)
		return SERVER_ERR_NOMEM;
	n = proto_frame_encode(f, 0, vec.iov_base, vec.iov_len);
	if (n < 0)
		return SERVER_ERR_INVALID;
	vec.iov_len = (size_t)n;
	if (evbuffer_commit_space(c->out, &vec, 1) != 0)
		return SERVER_ERR_NOMEM;
	return 0;
}

static int send_error(struct sync_conn *c, Citypass__Error__Code code, const char *message)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__Error e = CITYPASS__ERROR__INIT;
	e.code = code;
	e.message = (char *)message;
	f.body_case = CITYPASS__FRAME__BODY_ERROR;
	f.error = &e;
	return send_frame(c, &f);
}

/*
 * End the session for a reason the controller should hear: log it, queue an Error frame,
 * read nothing more, close once the frame is out (or after a short drain). Returns -1.
 */
static int conn_end(struct sync_conn *c, int priority, Citypass__Error__Code code, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static int conn_end(struct sync_conn *c, int priority, Citypass__Error__Code code, const char *fmt,
                    ...)
{
	va_list ap;
	char why[384];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	conn_log(c, priority, "closing: %s", why);
	if (c->state == SYNC_CONN_HANDSHAKE) {
		conn_free(c);
		return -1;
	}
	c->state = SYNC_CONN_CLOSING;
	event_del(c->rd);
	if (send_error(c, code, why) != 0) {
		conn_free(c);
		return -1;
	}
	struct timeval tv = {.tv_sec = SYNC_REJECT_DRAIN_MS / 1000,
	                     .tv_usec = (SYNC_REJECT_DRAIN_MS % 1000) * 1000};
	if (c->srv->stopping) {
		tv.tv_sec = c->srv->stop_drain_ms / 1000;
		tv.tv_usec = (suseconds_t)(c->srv->stop_drain_ms % 1000) * 1000;
	}
	set_timer(c, &tv);
	conn_flush(c);
	return -1;
}

/* A protocol violation: counted, logged, closed. Never affects other connections. */
#define conn_bad_input(c, ...)                                                                     \
	((c)->srv->stats.closed_bad_input++,                                                       \
	 conn_end((c), LOG_WARNING, CITYPASS__ERROR__CODE__BAD_REQUEST, __VA_ARGS__))

/* --- output ----------------------------------------------------------------------------- */

/* Encode further chunks of the queued updates while the output buffer is low. */
static int conn_fill(struct sync_conn *c)
{
	while (c->q_head && evbuffer_get_length(c->out) < SYNC_OUT_LOW_WATER) {
		struct sync_outgoing *o = c->q_head;
		const struct sync_blob *b = o->blob;
		const size_t chunk = PROTO_FRAME_LIST_CHUNK;
		uint32_t count = b->len ? (uint32_t)((b->len + chunk - 1) / chunk) : 1;
		size_t off = (size_t)o->next_chunk * chunk;
		Citypass__Frame f = CITYPASS__FRAME__INIT;
		Citypass__ListUpdate u = CITYPASS__LIST_UPDATE__INIT;

		u.sector = b->sector;
		u.kind = b->is_delta ? CITYPASS__LIST_UPDATE__KIND__DELTA
		                     : CITYPASS__LIST_UPDATE__KIND__SNAPSHOT;
		u.base_version = b->base_version;
		u.version = b->version;
		u.chunk_index = o->next_chunk;
		u.chunk_count = count;
		u.total_size = b->len;
		u.data.data = b->data ? b->data + off : NULL;
		u.data.len = b->len - off < chunk ? b->len - off : chunk;
		u.consumption_position = b->usage_position; /* issue 13 */
		if (o->next_chunk + 1 == count) {
			u.signature.data = (uint8_t *)b->sig;
			u.signature.len = b->sig_len;
		}
		f.body_case = CITYPASS__FRAME__BODY_LIST_UPDATE;
		f.list_update = &u;
		if (send_frame(c, &f) != 0)
			return -1;
		if (++o->next_chunk == count) {
			c->q_head = o->next;
			if (!c->q_head)
				c->q_tail = NULL;
			sync_blob_unref(o->blob);
			free(o);
		}
	}
	return 0;
}

static int conn_flush(struct sync_conn *c)
{
	char err[128];

	for (int round = 0; round < SYNC_WRITE_ROUNDS; round++) {
		if (c->state != SYNC_CONN_CLOSING && conn_fill(c) != 0)
			return conn_close(c, LOG_ERR, "out of memory encoding a list update");
		size_t len = evbuffer_get_length(c->out);
		if (len == 0)
			break;
		size_t n = len < LINK_TLS_RECORD_MAX ? len : LINK_TLS_RECORD_MAX;
		const uint8_t *p = evbuffer_pullup(c->out, (ev_ssize_t)n);
		if (!p)
			return conn_close(c, LOG_ERR, "out of memory writing");
		long w = link_tls_session_write(&c->tls, p, n);
		if (w > 0) {
			evbuffer_drain(c->out, (size_t)w);
			continue;
		}
		if (w == LINK_TLS_WANT_WRITE || w == LINK_TLS_WANT_READ) {
			event_add(c->wr, NULL);
			return 0;
		}
		return conn_close(c, LOG_INFO, "write failed: %s",
		                  link_tls_strerror((int)w, err, sizeof(err)));
	}
	if (evbuffer_get_length(c->out) > 0 || (c->q_head && c->state != SYNC_CONN_CLOSING)) {
		/* more to send: yield to the other connections, come back when writable */
		event_add(c->wr, NULL);
		return 0;
	}
	if (c->state == SYNC_CONN_CLOSING) {
		link_tls_session_close_notify(&c->tls);
		conn_free(c);
		return -1;
	}
	return 0;
}

/* Queue a plan's updates; the controller holds `latest` once it has applied them. */
static void conn_queue_plan(struct sync_conn *c, struct sync_plan *plan, uint64_t latest)
{
	size_t bytes = 0;
	for (size_t i = 0; i < plan->count; i++) {
		struct sync_outgoing *o = calloc(1, sizeof(*o));
		if (!o) {
			conn_log(c, LOG_ERR, "out of memory queueing a list update");
			break;
		}
		o->blob = sync_blob_ref(plan->blobs[i]);
		bytes += o->blob->len;
		if (c->q_tail)
			c->q_tail->next = o;
		else
			c->q_head = o;
		c->q_tail = o;
	}
	c->srv->stats.updates += plan->count;
	if (plan->snapshot) {
		c->srv->stats.snapshots++;
		conn_log(c, LOG_INFO, "sending snapshot of sector %u v%llu (%zu bytes, held v%llu)",
		         c->dev.sector, (unsigned long long)latest, bytes,
		         (unsigned long long)c->held);
	} else {
		conn_log(c, LOG_INFO,
		         "sending %zu delta(s) of sector %u v%llu -> v%llu (%zu bytes)",
		         plan->count, c->dev.sector, (unsigned long long)c->held,
		         (unsigned long long)latest, bytes);
	}
	c->held = latest;
}

/* Plan and queue what brings the controller to the sector's newest version. */
static void conn_update(struct sync_conn *c)
{
	struct sync_sector *sec = c->sector;
	struct sync_plan plan;
	int rc;

	if (sec->latest == 0 || c->held >= sec->latest)
		return;
	rc = sync_plan_update(&sec->cache, &c->srv->be, c->srv->max_chain, c->held, sec->latest,
	                      &plan);
	if (rc) {
		/* The controller keeps its list and gets the update at the next publish or
		 * Hello; the session itself is sound. */
		conn_log(c, LOG_ERR, "no update for sector %u v%llu: backend error %d", sec->sector,
		         (unsigned long long)sec->latest, rc);
		send_error(c, CITYPASS__ERROR__CODE__NO_LIST, "list update unavailable");
		return;
	}
	conn_queue_plan(c, &plan, sec->latest);
	sync_plan_release(&plan);
}

int sync_conn_notify(struct sync_conn *c, uint64_t version)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__ListPublished p = CITYPASS__LIST_PUBLISHED__INIT;

	if (c->state != SYNC_CONN_READY)
		return -1;
	p.sector = c->sector->sector;
	p.version = version;
	f.body_case = CITYPASS__FRAME__BODY_LIST_PUBLISHED;
	f.list_published = &p;
	if (send_frame(c, &f) != 0)
		return -1;
	/* issue 15: timed until the gate reports holding it (a gate already there is not) */
	if (c->held < version)
		sync_figures_push_sent(c, version, &c->sector->noticed);
	conn_update(c);
	/* written from the write callback, in this same loop iteration: a notifying loop
	 * over a sector never sees a connection vanish under it */
	event_active(c->wr, EV_WRITE, 1);
	return 0;
}

/* --- card keys (issue 11) ----------------------------------------------------------------- */

/* The sector's card keys from the backend into k (master/previous point into slot): 1 when
 * there are some to give, 0 when the backend has none, -1 on a backend error. */
static int card_keys_of(struct sync_conn *c, Citypass__CardKeys *k, struct server_card_slot *slot)
{
	struct server_sync *s = c->srv;
	if (!s->be.ops->card_keys)
		return 0;
	int rc = s->be.ops->card_keys(s->be.ctx, c->dev.sector, slot);
	if (rc == SERVER_ERR_NOT_FOUND)
		return 0;
	if (rc) {
		conn_log(c, LOG_ERR, "reading the card keys failed (backend error %d)", rc);
		return -1;
	}
	k->sector = c->dev.sector;
	k->version = slot->version;
	k->master.data = slot->master;
	k->master.len = sizeof(slot->master);
	if (slot->has_previous) {
		k->previous_version = slot->previous_version;
		k->previous_master.data = slot->previous;
		k->previous_master.len = sizeof(slot->previous);
	}
	return 1;
}

int sync_conn_send_card_keys(struct sync_conn *c)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__CardKeys k = CITYPASS__CARD_KEYS__INIT;
	struct server_card_slot slot;
	if (c->state != SYNC_CONN_READY)
		return -1;
	int have = card_keys_of(c, &k, &slot);
	int rc = -1;
	if (have == 1) {
		f.body_case = CITYPASS__FRAME__BODY_CARD_KEYS;
		f.card_keys = &k;
		rc = send_frame(c, &f);
		if (rc == 0) {
			conn_update(c);
			event_active(c->wr, EV_WRITE, 1);
		}
	}
	memset(&slot, 0, sizeof(slot));
	return rc;
}

/* --- the list key's rotations (issue 11) ------------------------------------------------ */

int sync_conn_send_key_chain(struct sync_conn *c)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	struct server_sync *s = c->srv;
	/* a gate that did not announce it would take the frame for garbage (issue 13's rule) */
	if (c->state != SYNC_CONN_READY || s->chain.n == 0 ||
	    !(c->features & CITYPASS__FEATURE__FEATURE_KEY_CHAIN))
		return -1;
	f.body_case = CITYPASS__FRAME__BODY_KEY_CHAIN;
	f.key_chain = &s->chain_msg;
	int rc = send_frame(c, &f);
	if (rc == 0) {
		conn_update(c);
		event_active(c->wr, EV_WRITE, 1);
	}
	return rc;
}

/* --- session rules ---------------------------------------------------------------------- */

static uint64_t hello_acked(const Citypass__Hello *h, Citypass__Stream stream)
{
	return stream == CITYPASS__STREAM__STATISTICS ? h->stats_acked_seq
	                                              : h->consumption_acked_seq;
}

static int send_ack_at(struct sync_conn *c, Citypass__Stream stream, uint64_t epoch, uint64_t seq,
                       uint64_t position)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__EventAck a = CITYPASS__EVENT_ACK__INIT;
	a.stream = stream;
	a.acked_seq = seq;
	a.journal_epoch = epoch;
	a.position = position; /* issue 13: where the uses sit (consumption) */
	f.body_case = CITYPASS__FRAME__BODY_EVENT_ACK;
	f.event_ack = &a;
	return send_frame(c, &f);
}

static int send_ack(struct sync_conn *c, Citypass__Stream stream, uint64_t epoch, uint64_t seq)
{
	return send_ack_at(c, stream, epoch, seq, 0);
}

static int conn_hello(struct sync_conn *c, const Citypass__Hello *h)
{
	static const Citypass__Stream streams[2] = {CITYPASS__STREAM__STATISTICS,
	                                            CITYPASS__STREAM__CONSUMPTION};
	struct server_sync *s = c->srv;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__Welcome w = CITYPASS__WELCOME__INIT;
	uint64_t held = 0, acked[2] = {0, 0};
	int first = c->state == SYNC_CONN_AWAIT_HELLO;

	if (strcmp(h->device_id, c->cn) != 0)
		return conn_bad_input(c, "Hello.device_id '%.64s' is not the certificate's CN",
		                      h->device_id);
	for (size_t i = 0; i < h->n_lists; i++) {
		if (h->lists[i]->sector != c->dev.sector)
			continue;
		held = h->lists[i]->version;
		/* a gate holding another format (0: one that predates the field, format 1) takes
		 * a snapshot of the published format, even of the version it holds */
		if (h->lists[i]->format != PROTO_CLIST_FORMAT && held) {
			conn_log(c, LOG_INFO,
			         "holds v%llu in list format %u: a format %u snapshot follows",
			         (unsigned long long)held,
			         h->lists[i]->format ? h->lists[i]->format : 1, PROTO_CLIST_FORMAT);
			held = 0;
		}
	}

	w.server_time = (int64_t)time(NULL);
	w.server_version = s->server_version;
	/* issue 13: this server relays anti-passback grants between the gates of a site */
	w.features =
	        CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE | CITYPASS__FEATURE__FEATURE_KEY_CHAIN;
	c->features = h->features;
	/* issue 11: the gate's card keys at every session, so a gate offline during a
	 * rotation catches up at its next connection */
	Citypass__CardKeys ck = CITYPASS__CARD_KEYS__INIT;
	struct server_card_slot slot;
	const int have_keys = card_keys_of(c, &ck, &slot);
	if (have_keys == 1)
		w.card_keys = &ck;
	/* issue 11: the list key's whole history, for a gate that missed a rotation */
	if (s->chain.n > 0)
		w.key_chain = &s->chain_msg;
	if (s->ca_chain.n > 0)
		w.ca_chain = &s->ca_chain_msg;
	/* issue 17: the sector's retention, which the gate keeps and obeys offline too */
	w.retention_hours = c->dev.retention_h;
	f.body_case = CITYPASS__FRAME__BODY_WELCOME;
	f.welcome = &w;
	const int sent = send_frame(c, &f);
	memset(&slot, 0, sizeof(slot));
	if (sent != 0)
		return conn_close(c, LOG_ERR, "out of memory");

	if (h->health && sync_ingest_health(s, c->cn, h->health) != 0)
		return conn_close(c, LOG_ERR, "out of memory");
	if (h->consumption_purged_unacked)
		conn_log(c, LOG_WARNING,
		         "the gate deleted %llu identifying row(s) at retention before any ack",
		         (unsigned long long)h->consumption_purged_unacked);
	/* A controller whose ack was lost (connection cut after the commit) learns here that
	 * its batch is stored, instead of resending it. A gate numbering its events per
	 * journal epoch (issue 10) resends instead: the resend is deduplicated and acked. */
	for (int i = 0; i < 2 && h->journal_epoch == 0; i++) {
		int rc = s->be.ops->acked(s->be.ctx, c->cn, streams[i], &acked[i]);
		if (rc)
			return conn_end(c, LOG_ERR, CITYPASS__ERROR__CODE__INTERNAL,
			                "reading acknowledged sequences failed (backend error %d)",
			                rc);
		if (acked[i] > hello_acked(h, streams[i])) {
			if (send_ack(c, streams[i], 0, acked[i]) != 0)
				return conn_close(c, LOG_ERR, "out of memory");
		} else if (acked[i] < hello_acked(h, streams[i])) {
			conn_log(c, LOG_WARNING,
			         "controller believes %s seq %llu acknowledged, server holds %llu",
			         i == 0 ? "statistics" : "consumption",
			         (unsigned long long)hello_acked(h, streams[i]),
			         (unsigned long long)acked[i]);
		}
	}

	if (first) {
		struct sync_sector *sec = sync_sector_get(s, c->dev.sector);
		if (!sec)
			return conn_close(c, LOG_ERR, "out of memory");
		c->sector = sec;
		TAILQ_INSERT_TAIL(&sec->conns, c, sector_link);
		sec->n_conns++;
		c->held = held;
		c->state = SYNC_CONN_READY;
		set_timer(c, s->tv_idle);
		s->stats.sessions++;
		if (sync_figures_session(c) != 0)
			conn_log(c, LOG_WARNING,
			         "out of memory: this session is left out of the metrics");
		/* a new version the poll has not seen yet reaches everyone, this one included */
		sync_sector_refresh(s, sec);
		conn_log(c, LOG_INFO,
		         "session: site %u sector %u holds v%llu (newest v%llu), acked "
		         "statistics %llu consumption %llu, software '%.32s'",
		         c->dev.site, c->dev.sector, (unsigned long long)held,
		         (unsigned long long)sec->latest, (unsigned long long)acked[0],
		         (unsigned long long)acked[1], h->software_version);
	} else {
		/* A repeated Hello asks for an update: trust what it says it holds unless
		 * updates are still queued to it. */
		if (!c->q_head)
			c->held = held;
		sync_sector_refresh(s, c->sector);
		conn_log(c, LOG_INFO, "update request: holds v%llu", (unsigned long long)held);
	}
	if (h->health)
		sync_figures_report(c, h->health);
	conn_update(c);
	return 0;
}

/* A batch to store: checked here, committed by the ingest thread (the frame is `taken`). */
static int conn_batch(struct sync_conn *c, Citypass__Frame *f, int *taken)
{
	const Citypass__EventBatch *b = f->event_batch;
	struct server_sync *s = c->srv;
	size_t n = b->n_stats + b->n_consumption;
	char why[256];
	uint64_t acked = 0;
	int rc;

	if (c->state != SYNC_CONN_READY)
		return conn_bad_input(c, "EventBatch before Hello");
	/* DESIGN.md s.5 and issue 10: a gate reports its own usage only, every field within
	 * its domain; a batch with one event outside it is refused whole, nothing stored. */
	rc = sync_validate_batch(&s->be, &c->dev, b, (int64_t)time(NULL), why, sizeof(why));
	if (rc < 0)
		return conn_end(c, LOG_ERR, CITYPASS__ERROR__CODE__INTERNAL,
		                "checking a batch of %zu event(s) failed (backend error %d)", n,
		                rc);
	if (rc > 0) {
		s->stats.refused_batches++;
		return conn_bad_input(c, "EventBatch refused: %s", why);
	}
	/* issue 13: a gate's health rides on a batch (an empty one when nothing else goes) */
	if (b->health && sync_ingest_health(s, c->cn, b->health) != 0)
		return conn_close(c, LOG_ERR, "out of memory");
	if (b->health)
		sync_figures_report(c, b->health); /* issue 15: its backlog, the lists it holds */
	/* An empty batch is the keepalive: answered with the stream's current ack (of the
	 * gate's epoch: nothing to say, 0 — the ack of no row proves the way back). */
	if (n == 0) {
		rc = b->journal_epoch != 0 ? 0
		                           : s->be.ops->acked(s->be.ctx, c->cn, b->stream, &acked);
		if (rc)
			return conn_end(
			        c, LOG_ERR, CITYPASS__ERROR__CODE__INTERNAL,
			        "reading an acknowledged sequence failed (backend error %d)", rc);
		if (send_ack(c, b->stream, b->journal_epoch, acked) != 0)
			return conn_close(c, LOG_ERR, "out of memory");
		return 0;
	}
	/* The commit leaves the loop (sync_ingest.c); the ack follows it, in
	 * sync_conn_batch_done(). */
	if (sync_ingest_submit(s, c, f) != 0)
		return conn_close(c, LOG_ERR, "out of memory");
	*taken = 1;
	c->pending_batches++;
	struct server_sync_gate_stats *g = sync_figures_of(c);
	if (g)
		g->pending_batches++;
	return 0;
}

void sync_conn_batch_done(struct sync_conn *c, const Citypass__EventBatch *b, int rc,
                          uint64_t acked, uint64_t position)
{
	struct server_sync *s = c->srv;
	size_t n = b->n_stats + b->n_consumption;
	struct server_sync_gate_stats *g = sync_figures_of(c);
	c->pending_batches--;
	if (g)
		g->pending_batches--;
	if (c->closed) {
		/* committed or not, the gate learns its ack from its next Hello */
	} else if (rc) {
		conn_end(c, LOG_ERR, CITYPASS__ERROR__CODE__INTERNAL,
		         "storing a batch of %zu event(s) failed (backend error %d)", n, rc);
	} else if (send_ack_at(c, b->stream, b->journal_epoch, acked, position) != 0) {
		/* committed, only now may the controller forget it */
		conn_close(c, LOG_ERR, "out of memory");
	} else {
		s->stats.batches++;
		s->stats.events += n;
		if (g) {
			g->batches++;
			g->events[b->stream == CITYPASS__STREAM__STATISTICS ? 0 : 1] += n;
		}
		conn_log(c, LOG_DEBUG, "batch of %zu %s event(s) stored, acked up to %llu", n,
		         b->stream == CITYPASS__STREAM__STATISTICS ? "statistics" : "consumption",
		         (unsigned long long)acked);
		/* reading paused for the batches in flight resumes; output goes out */
		if (c->state == SYNC_CONN_READY && !event_pending(c->rd, EV_READ, NULL) &&
		    evbuffer_get_length(c->out) < SYNC_OUT_LOW_WATER) {
			event_add(c->rd, NULL);
			event_active(c->rd, EV_READ, 1);
		}
		event_active(c->wr, EV_WRITE, 1);
	}
	sync_conn_unref(c);
}

/*
 * Issue 13: a gate admitted a pass at a site with anti-passback (DESIGN.md s.4): the
 * other connected gates of the same site and sector that take shared grants hear of it at
 * once, so a second pool gate refuses the card a second later. The server keeps nothing
 * and logs no key: the list key crosses, for the window only (DESIGN.md s.5).
 */
static int conn_passback(struct sync_conn *c, const Citypass__Frame *f)
{
	if (c->state != SYNC_CONN_READY)
		return conn_bad_input(c, "PassbackGrant before Hello");
	if (!(c->features & CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE))
		return conn_bad_input(c, "PassbackGrant from a gate that did not announce it");
	unsigned told = 0;
	struct sync_conn *o;
	TAILQ_FOREACH(o, &c->sector->conns, sector_link)
	{
		if (o == c || o->state != SYNC_CONN_READY || o->dev.site != c->dev.site ||
		    !(o->features & CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE))
			continue;
		if (send_frame(o, f) != 0)
			continue; /* out of memory: that gate stays per gate this once */
		/* written from its write callback, as a publication is */
		event_active(o->wr, EV_WRITE, 1);
		told++;
	}
	c->srv->stats.grants_relayed += told;
	conn_log(c, LOG_DEBUG, "anti-passback grant shared with %u gate(s) of site %u", told,
	         c->dev.site);
	return 0;
}

static const char *body_name(Citypass__Frame__BodyCase body)
{
	switch (body) {
	case CITYPASS__FRAME__BODY_HELLO:
		return "Hello";
	case CITYPASS__FRAME__BODY_WELCOME:
		return "Welcome";
	case CITYPASS__FRAME__BODY_LIST_UPDATE:
		return "ListUpdate";
	case CITYPASS__FRAME__BODY_LIST_PUBLISHED:
		return "ListPublished";
	case CITYPASS__FRAME__BODY_CARD_KEYS:
		return "CardKeys";
	case CITYPASS__FRAME__BODY_KEY_CHAIN:
		return "KeyChain";
	case CITYPASS__FRAME__BODY_EVENT_BATCH:
		return "EventBatch";
	case CITYPASS__FRAME__BODY_EVENT_ACK:
		return "EventAck";
	case CITYPASS__FRAME__BODY_ERROR:
		return "Error";
	default:
		return "unknown";
	}
}

static int conn_frame(struct sync_conn *c, Citypass__Frame *f, int *taken)
{
	if (c->state == SYNC_CONN_READY)
		set_timer(c, c->srv->tv_idle);
	switch (f->body_case) {
	case CITYPASS__FRAME__BODY_HELLO:
		return conn_hello(c, f->hello);
	case CITYPASS__FRAME__BODY_EVENT_BATCH:
		return conn_batch(c, f, taken);
	case CITYPASS__FRAME__BODY_PASSBACK_GRANT:
		return conn_passback(c, f);
	case CITYPASS__FRAME__BODY_ERROR:
		return conn_close(c, LOG_WARNING, "controller reported error %d: %.200s",
		                  (int)f->error->code, f->error->message ? f->error->message : "");
	default:
		if (c->state == SYNC_CONN_AWAIT_HELLO)
			return conn_bad_input(c, "%s before Hello", body_name(f->body_case));
		return conn_bad_input(c, "%s is not a message a controller sends",
		                      body_name(f->body_case));
	}
}

/* Handle the frames the decoder holds. Stops (frames stay buffered) when output is
 * piling up: the read side resumes once the controller has read it. */
static int conn_take_frames(struct sync_conn *c)
{
	for (;;) {
		Citypass__Frame *f = NULL;
		int rc;

		if (evbuffer_get_length(c->out) > SYNC_OUT_HIGH_WATER) {
			event_del(c->rd);
			return conn_flush(c);
		}
		/* a gate has one batch per stream in flight; more waits in the decoder until the
		 * ingest thread has answered (sync_conn_batch_done resumes reading) */
		if (c->pending_batches >= SYNC_MAX_PENDING_BATCHES) {
			event_del(c->rd);
			return 0;
		}
		rc = proto_frame_next(c->dec, &f);
		if (rc == 0)
			return 0;
		if (rc < 0)
			return conn_bad_input(c, "bad frame: %s", proto_strerror(rc));
		int taken = 0;
		rc = conn_frame(c, f, &taken);
		if (!taken)
			proto_frame_free_message(f);
		if (rc < 0)
			return -1;
	}
}

static void conn_read(struct sync_conn *c)
{
	uint8_t buf[LINK_TLS_RECORD_MAX];
	char err[128];

	if (conn_take_frames(c) < 0)
		return;
	for (int round = 0; round < SYNC_READ_ROUNDS; round++) {
		long n = link_tls_session_read(&c->tls, buf, sizeof(buf));
		if (n > 0) {
			if (proto_frame_decoder_feed(c->dec, buf, (size_t)n) != 0) {
				conn_close(c, LOG_ERR, "out of memory reading");
				return;
			}
			if (conn_take_frames(c) < 0)
				return;
			if (!event_pending(c->rd, EV_READ, NULL))
				return; /* paused by back-pressure */
			continue;
		}
		if (n == LINK_TLS_WANT_READ)
			goto out;
		if (n == LINK_TLS_WANT_WRITE) {
			event_add(c->wr, NULL);
			goto out;
		}
		if (n == 0) {
			conn_close(c, LOG_INFO, "closed by the controller");
			return;
		}
		conn_close(c, LOG_WARNING, "TLS read failed: %s",
		           link_tls_strerror((int)n, err, sizeof(err)));
		return;
	}
	/* more may be waiting: let the other connections run first */
	event_active(c->rd, EV_READ, 1);
out:
	conn_flush(c);
}

/* --- handshake -------------------------------------------------------------------------- */

/* Issue 15: the device's site and sector by name, as the gate's own lines give them
 * (CITYPASS_SITE, CITYPASS_SECTOR), so that one journalctl filter finds both sides. */
static void conn_place_names(struct sync_conn *c)
{
	const struct server_sync_backend *be = &c->srv->be;
	if (be->ops->place_names && be->ops->place_names(be->ctx, c->dev.site, c->dev.sector,
	                                                 c->site_name, c->sector_name) == 0)
		return;
	snprintf(c->site_name, sizeof(c->site_name), "%u", (unsigned)c->dev.site);
	snprintf(c->sector_name, sizeof(c->sector_name), "%u", (unsigned)c->dev.sector);
}

/* mbedtls_ssl_set_verify callback: the device certificate (depth 0) must name an enrolled,
 * unrevoked device. Runs inside the handshake, so a refused device never gets to send a
 * single message. */
static int conn_verify(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct sync_conn *c = arg;
	struct server_sync *s = c->srv;
	struct server_device_info dev;
	int rc;

	if (depth != 0)
		return 0;
	if (link_tls_cert_cn(crt, c->cn, sizeof(c->cn)) != 0) {
		c->cn[0] = '\0';
		snprintf(c->refusal, sizeof(c->refusal), "device certificate has no usable CN");
		*flags |= MBEDTLS_X509_BADCERT_OTHER;
		return 0;
	}
	if (*flags & MBEDTLS_X509_BADCERT_EXT_KEY_USAGE) {
		snprintf(c->refusal, sizeof(c->refusal),
		         "certificate '%s' is not a gate certificate (no clientAuth "
		         "extendedKeyUsage)",
		         c->cn);
		return 0;
	}
	if (*flags)
		return 0; /* already refused by the chain check: the flags say why */
	memset(&dev, 0, sizeof(dev));
	rc = s->be.ops->device_lookup(s->be.ctx, c->cn, &dev);
	if (rc == SERVER_ERR_NOT_FOUND) {
		snprintf(c->refusal, sizeof(c->refusal), "device is not enrolled");
		*flags |= MBEDTLS_X509_BADCERT_NOT_TRUSTED;
	} else if (rc) {
		snprintf(c->refusal, sizeof(c->refusal), "device lookup failed (backend error %d)",
		         rc);
		*flags |= MBEDTLS_X509_BADCERT_OTHER;
	} else if (dev.revoked) {
		snprintf(c->refusal, sizeof(c->refusal), "device is revoked");
		*flags |= MBEDTLS_X509_BADCERT_REVOKED;
	} else {
		c->dev = dev;
		c->have_dev = 1;
		conn_place_names(c);
	}
	return 0;
}

static void conn_handshake(struct sync_conn *c)
{
	char why[256];
	int rc = link_tls_session_handshake(&c->tls);

	if (rc == LINK_TLS_WANT_READ)
		return;
	if (rc == LINK_TLS_WANT_WRITE) {
		event_add(c->wr, NULL);
		return;
	}
	/* a resumed session (a ticket) comes here through the same conn_verify, on the
	 * certificate the ticket kept: a device revoked since its full handshake is refused */
	if (c->tls.resumed)
		c->srv->stats.resumed++;
	if (rc != 0) {
		c->srv->stats.refused_handshake++;
		if (c->refusal[0]) {
			snprintf(why, sizeof(why), "%s", c->refusal);
		} else if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
			link_tls_verify_reason(link_tls_session_verify_result(&c->tls), why,
			                       sizeof(why));
		} else {
			link_tls_strerror(rc, why, sizeof(why));
		}
		conn_close(c, LOG_WARNING, "TLS handshake refused%s: %s",
		           c->tls.resumed ? " (session resumed from a ticket)" : "", why);
		return;
	}
	if (!c->have_dev) {
		c->srv->stats.refused_handshake++;
		conn_close(c, LOG_WARNING, "TLS handshake refused: no device certificate");
		return;
	}
	c->state = SYNC_CONN_AWAIT_HELLO;
	conn_handshake_over(c);
	set_timer(c, c->srv->tv_hello);
	conn_log(c, LOG_DEBUG, "TLS up (%s, %s%s)", mbedtls_ssl_get_version(&c->tls.ssl),
	         mbedtls_ssl_get_ciphersuite(&c->tls.ssl),
	         c->tls.resumed ? ", resumed from a ticket" : "");
	/* the Hello may already sit in mbedTLS's buffer with nothing left on the socket */
	event_active(c->rd, EV_READ, 1);
}

/* --- events ----------------------------------------------------------------------------- */

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sync_conn *c = arg;
	(void)fd;
	(void)what;
	if (c->state == SYNC_CONN_HANDSHAKE)
		conn_handshake(c);
	else if (c->state != SYNC_CONN_CLOSING)
		conn_read(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct sync_conn *c = arg;
	(void)fd;
	(void)what;
	if (c->state == SYNC_CONN_HANDSHAKE) {
		conn_handshake(c);
		return;
	}
	if (conn_flush(c) < 0)
		return;
	/* back-pressure released: take the frames left in the decoder, read again */
	if (c->state != SYNC_CONN_CLOSING && !event_pending(c->rd, EV_READ, NULL) &&
	    evbuffer_get_length(c->out) < SYNC_OUT_LOW_WATER) {
		event_add(c->rd, NULL);
		event_active(c->rd, EV_READ, 1);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sync_conn *c = arg;
	struct server_sync *s = c->srv;
	(void)fd;
	(void)what;

	switch (c->state) {
	case SYNC_CONN_HANDSHAKE:
		s->stats.timeouts++;
		conn_close(c, LOG_WARNING, "TLS handshake not done within %u ms",
		           s->handshake_timeout_ms);
		break;
	case SYNC_CONN_AWAIT_HELLO:
		s->stats.timeouts++;
		conn_end(c, LOG_WARNING, CITYPASS__ERROR__CODE__BAD_REQUEST,
		         "no Hello within %u ms", s->hello_timeout_ms);
		break;
	case SYNC_CONN_READY:
		s->stats.timeouts++;
		conn_end(c, LOG_WARNING, CITYPASS__ERROR__CODE__BAD_REQUEST,
		         "silent for %u ms (keepalive missed)", s->idle_timeout_ms);
		break;
	case SYNC_CONN_CLOSING:
		conn_close(c, LOG_INFO, "output not drained in time");
		break;
	}
}

int sync_conn_start(struct server_sync *s, int fd, const char *peer)
{
	struct sync_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return SERVER_ERR_NOMEM;
	c->srv = s;
	c->fd = -1;
	c->gate_ix = -1;
	c->id = ++s->next_conn_id;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	TAILQ_INSERT_TAIL(&s->conns, c, all_link);
	s->stats.connections++;
	c->out = evbuffer_new();
	c->dec = proto_frame_decoder_new(s->max_frame);
	c->rd = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wr = event_new(s->base, fd, EV_WRITE, on_write, c);
	c->timer = evtimer_new(s->base, on_timer, c);
	if (!c->out || !c->dec || !c->rd || !c->wr || !c->timer ||
	    link_tls_session_init(&c->tls, s->tls, fd, conn_verify, c) != 0) {
		conn_free(c); /* fd stays with the caller, which closes it */
		return SERVER_ERR_NOMEM;
	}
	c->fd = fd;
	c->state = SYNC_CONN_HANDSHAKE;
	c->in_handshake = 1;
	sync_server_handshake_begins(s);
	event_add(c->rd, NULL);
	set_timer(c, s->tv_handshake);
	conn_log(c, LOG_DEBUG, "accepted");
	return 0;
}

void sync_conn_recheck(struct sync_conn *c)
{
	struct server_sync *s = c->srv;
	struct server_device_info dev;
	int rc;

	if (c->state != SYNC_CONN_READY && c->state != SYNC_CONN_AWAIT_HELLO)
		return;
	memset(&dev, 0, sizeof(dev));
	rc = s->be.ops->device_lookup(s->be.ctx, c->cn, &dev);
	if (rc == 0 && !dev.revoked)
		return;
	if (rc != 0 && rc != SERVER_ERR_NOT_FOUND) {
		conn_log(c, LOG_ERR, "device lookup failed (backend error %d); session kept", rc);
		return;
	}
	s->stats.revoked_sessions++;
	conn_end(c, LOG_WARNING, CITYPASS__ERROR__CODE__BAD_REQUEST, "device %s while connected",
	         rc == 0 ? "revoked" : "no longer enrolled");
}

void sync_conn_shutdown(struct sync_conn *c)
{
	if (c->state == SYNC_CONN_HANDSHAKE) {
		conn_close(c, LOG_INFO, "server stopping");
		return;
	}
	if (c->state == SYNC_CONN_CLOSING)
		return;
	conn_end(c, LOG_INFO, CITYPASS__ERROR__CODE__SHUTTING_DOWN, "server stopping");
}

void sync_conn_destroy(struct sync_conn *c)
{
	conn_free(c);
}
