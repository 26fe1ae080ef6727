/*
 * sync_client.c — the gate's side of the sync link (controller/sync_client.h,
 * docs/controller.md "The sync client").
 *
 * One thread, one event_base, one connection at a time. TLS is the link's (link/tls.h),
 * the same sessions over a non-blocking socket as the server's (Debian 12's libevent has no
 * mbedTLS bufferevent). Other threads reach the loop only through a pipe: one byte 'k' (kick) or
 * 'q' (stop), so no libevent threading support is needed.
 *
 * Session: TCP connect → TLS handshake (server verified against the deployment CA) →
 * Hello → Welcome (clock skew) → then, in any order, EventAck / ListUpdate chunks /
 * ListPublished / Error from the server, while at most one EventBatch per stream is in
 * flight. Anything the server sends that breaks the protocol closes the connection with a
 * logged reason; a reconnect follows after an exponential backoff with full jitter.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <mbedtls/net_sockets.h>

#include "controller/error.h"
#include "controller/journal.h"
#include "controller/sync_client.h"
#include "ca_follow.h"
#include "controller/timekeeper.h"
#include "link/tls.h"
#include "proto/error.h"
#include "proto/frame.h"

/* Connect + handshake + Welcome must all happen within this (the server allows 10 s for
 * the handshake and 10 s for Hello). */
#define SYNC_SESSION_SETUP_MS 15000u
/* Largest update assembled: 5 M passes at 16 bytes is 80 MiB (DESIGN.md s.9). */
#define SYNC_UPDATE_MAX (256u * 1024u * 1024u)
/* One batch stays well under the 1 MiB frame limit (a statistic encodes in ~40 bytes). */
#define SYNC_BATCH_CAP 8192u
/* A server silent this many keepalive periods is taken for gone. */
#define SYNC_SILENT_PERIODS 3
/* Issue 13: a gate's health goes at Hello, when it changed, and at least this often. */
#define SYNC_HEALTH_EVERY_S 300
/* Grants waiting for the sync thread (a burst at a busy gate); more are dropped. */
#define SYNC_GRANTS_MAX 64

enum sync_state {
	SYNC_IDLE,       /* no connection; a reconnect timer may be pending */
	SYNC_CONNECTING, /* TCP connect in progress */
	SYNC_HANDSHAKE,  /* TLS handshake */
	SYNC_HELLO,      /* Hello sent, waiting for Welcome */
	SYNC_READY,      /* session up */
};

struct sync_stream {
	uint64_t inflight_last; /* last seq of the batch in flight, 0 when none */
	int64_t inflight_epoch; /* its journal epoch */
};

struct sync_update {
	int active;
	uint32_t sector, kind, next_chunk, chunk_count;
	uint64_t base_version, version, total_size;
	uint8_t *buf;
	size_t len, cap;
};

struct controller_sync {
	/* configuration, copied */
	struct controller_sync_config cfg;
	char *server, *server_name, *ca_path, *cert_path, *key_path, *device_id, *software_version,
	        *journal_path, *ca_followed_path;
	char *ca_kept; /* issue 11: the device CAs followed, as kept on disk (PEM pairs) */
	size_t ca_kept_len;
	char host[256], port[16];
	int host_is_name;

	/* TLS material, loaded once; a session per connection */
	struct link_tls_ctx *tls;
	struct link_tls_session sess;
	int sess_live;

	/* thread and loop */
	pthread_t thread;
	int thread_started;
	struct event_base *base;
	int pipe_rd, pipe_wr;
	struct event *pipe_ev, *rd_ev, *wr_ev, *retry_ev, *keepalive_ev, *setup_ev, *kick_ev;
	struct controller_journal *journal;
	int init_rc, init_done;
	pthread_mutex_t init_lock;
	pthread_cond_t init_cond;

	/* connection */
	enum sync_state state;
	int fd;
	struct proto_frame_decoder *dec;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	struct sync_stream streams[2];
	struct sync_update upd;
	int want_snapshot;   /* an update was refused: Hello claims no list next time */
	unsigned attempts;   /* reconnects since the last healthy session */
	int healthy;         /* this session reached Welcome and nothing went wrong */
	int stopping;        /* the loop has ended: no more reconnects */
	uint64_t published;  /* newest version the server announced */
	uint64_t hello_held; /* the version the server believes this gate holds */
	double last_rx;      /* monotonic seconds of the last frame received */

	/* issue 13: health reports and shared anti-passback grants */
	uint32_t server_features; /* Welcome.features of this session */
	int health_due;           /* report at the next chance (set on the sync thread) */
	uint64_t health_backlog;  /* the journal backlog in the last report */
	double health_sent;       /* monotonic seconds of the last report */

	/* status, read by other threads; and what they hand to this one */
	pthread_mutex_t lock;
	struct controller_sync_status status;
	int health_changed; /* under lock: another thread asked for a report */
	uint8_t grants[SYNC_GRANTS_MAX][PROTO_LIST_KEY_LEN]; /* under lock */
	size_t n_grants;
};

/* --- small helpers ---------------------------------------------------------------------- */

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sync_log(struct controller_sync *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void sync_log(struct controller_sync *s, const char *fmt, ...)
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

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void set_connected(struct controller_sync *s, int connected)
{
	pthread_mutex_lock(&s->lock);
	s->status.connected = connected;
	pthread_mutex_unlock(&s->lock);
}

static void timer_ms(struct event *ev, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)(ms % 1000u) * 1000};
	event_add(ev, &tv);
}

/* --- configuration and TLS material ----------------------------------------------------- */

static int split_server(struct controller_sync *s)
{
	const char *colon = strrchr(s->server, ':');
	size_t hl;
	struct in_addr a;
	char *end;
	unsigned long port;

	if (!colon || colon == s->server)
		return CONTROLLER_ERR_ARG;
	hl = (size_t)(colon - s->server);
	if (hl >= sizeof(s->host))
		return CONTROLLER_ERR_ARG;
	memcpy(s->host, s->server, hl);
	s->host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
		return CONTROLLER_ERR_ARG;
	snprintf(s->port, sizeof(s->port), "%lu", port);
	s->host_is_name = inet_pton(AF_INET, s->host, &a) != 1;
	return 0;
}

/*
 * The server's certificate must be issued for a TLS server (extendedKeyUsage serverAuth):
 * the device CA also signs every gate, and a gate's certificate (clientAuth) must never
 * pass for the server, whatever name or address it is reached by (issue 10). The link
 * checks the purpose of every peer (link_tls_cert_has_purpose); this adds the gate's clock.
 */
static int verify_server(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct controller_sync *s = arg;
	(void)depth;
	/* Validity dates are judged by the gate's trusted clock, not its wall clock alone
	 * (issue 10, docs/controller.md "Clock"): a clock behind must not refuse the server
	 * for "validity starts in the future" (the gate would never sync, and its list never
	 * expire), a clock ahead must not find it expired. Expired: before the trusted floor
	 * (the last server time, signed list times, the device certificate's start); not yet
	 * valid: after the decision clock. */
	if (s->cfg.clock) {
		*flags &= ~(uint32_t)(MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
		if (link_tls_time_unix(&crt->valid_to) < controller_timekeeper_floor(s->cfg.clock))
			*flags |= MBEDTLS_X509_BADCERT_EXPIRED;
		if (link_tls_time_unix(&crt->valid_from) > controller_timekeeper_now(s->cfg.clock))
			*flags |= MBEDTLS_X509_BADCERT_FUTURE;
	}
	return 0;
}

static int load_tls(struct controller_sync *s)
{
	/* The name the server certificate must carry: the one pinned in the bundle, else the
	 * host when it is a name (mbedTLS 2.28 compares CN / dNSName only, never iPAddress
	 * SANs, so an address alone names nobody: docs/controller.md). */
	const struct link_tls_params p = {
	        .role = LINK_TLS_CLIENT,
	        .ca_path = s->ca_path,
	        .cert_path = s->cert_path,
	        .key_path = s->key_path,
	        .server_name = s->server_name    ? s->server_name
	                       : s->host_is_name ? s->host
	                                         : NULL,
	        .personalisation = "citypass-sync-client",
	};
	char why[400];
	int rc = link_tls_ctx_new(&s->tls, &p, why, sizeof(why));

	if (rc) {
		sync_log(s, "sync: %s", why);
		return CONTROLLER_ERR_IO;
	}
	if (s->ca_followed_path) {
		/* the CAs followed since enrolment, each followed again from the bundle's */
		char cwhy[200] = "";
		int n = ca_follow_load(link_tls_ctx_anchors(s->tls), s->ca_followed_path,
		                       &s->ca_kept, &s->ca_kept_len, cwhy, sizeof(cwhy));
		if (n < 0) {
			char aside[4200];
			snprintf(aside, sizeof(aside), "%s.refused", s->ca_followed_path);
			(void)rename(s->ca_followed_path, aside);
			sync_log(s, "sync: device CA: %s: not believed (moved to %s)", cwhy, aside);
		} else if (n > 0) {
			sync_log(s, "sync: device CA: %d CA(s) followed since enrolment", n);
		}
	}
	return 0;
}

/* --- connection lifetime ---------------------------------------------------------------- */

static void schedule_reconnect(struct controller_sync *s);

static void conn_close(struct controller_sync *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Close the connection (if any), log why, and plan the next attempt. */
static void conn_close(struct controller_sync *s, const char *fmt, ...)
{
	char why[320];
	va_list ap;
	int was_ready = s->state == SYNC_READY;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	sync_log(s, "sync: connection to %s closed: %s", s->server, why);

	event_del(s->rd_ev);
	event_del(s->wr_ev);
	event_del(s->keepalive_ev);
	event_del(s->setup_ev);
	if (s->sess_live) {
		if (was_ready)
			link_tls_session_close_notify(&s->sess);
		link_tls_session_free(&s->sess);
		s->sess_live = 0;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	proto_frame_decoder_free(s->dec);
	s->dec = NULL;
	s->out_len = s->out_off = 0;
	memset(s->streams, 0, sizeof(s->streams));
	free(s->upd.buf);
	memset(&s->upd, 0, sizeof(s->upd));
	s->state = SYNC_IDLE;
	set_connected(s, 0);
	if (s->healthy)
		s->attempts = 0;
	s->healthy = 0;
	schedule_reconnect(s);
}

/* Exponential backoff with full jitter: the n-th retry waits a uniform delay in
 * [min, min(max, min * 2^n)], so a thousand gates cut off together do not return in step. */
static void schedule_reconnect(struct controller_sync *s)
{
	uint64_t cap = s->cfg.reconnect_min_ms;
	uint32_t r = 0;
	unsigned delay;

	if (s->stopping)
		return;
	for (unsigned i = 0; i < s->attempts && cap < s->cfg.reconnect_max_ms; i++)
		cap *= 2;
	if (cap > s->cfg.reconnect_max_ms)
		cap = s->cfg.reconnect_max_ms;
	if (link_tls_ctx_random(s->tls, &r, sizeof(r)) != 0)
		r = (uint32_t)rand();
	delay = s->cfg.reconnect_min_ms +
	        (unsigned)(r % (uint32_t)(cap - s->cfg.reconnect_min_ms + 1));
	s->attempts++;
	pthread_mutex_lock(&s->lock);
	s->status.reconnects++;
	pthread_mutex_unlock(&s->lock);
	timer_ms(s->retry_ev, delay);
}

static int queue_frame(struct controller_sync *s, const Citypass__Frame *f)
{
	size_t need = proto_frame_encoded_size(f);
	long n;

	if (s->out_off == s->out_len && s->sess.pending_write == 0)
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
	event_add(s->wr_ev, NULL);
	/* every frame sent resets the keepalive: the server's idle timer counts from it */
	if (s->state == SYNC_READY)
		timer_ms(s->keepalive_ev, s->cfg.keepalive_s * 1000u);
	return 0;
}

/* Issue 13: the report the office sees (GateHealth); its caller owns `h`. */
static void fill_health(struct controller_sync *s, Citypass__GateHealth *h)
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
	if (controller_journal_stats(s->journal, &js) == 0)
		h->journal_backlog = js.stat_pending + js.consumption_pending;
	s->health_backlog = h->journal_backlog;
	s->health_due = 0;
	s->health_sent = mono_now();
	pthread_mutex_lock(&s->lock);
	s->status.health_reports++;
	pthread_mutex_unlock(&s->lock);
}

static int send_hello(struct controller_sync *s)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__Hello h = CITYPASS__HELLO__INIT;
	Citypass__ListHeld held = CITYPASS__LIST_HELD__INIT;
	Citypass__ListHeld *lists[1] = {&held};
	struct controller_journal_stats js;
	int rc;

	rc = controller_journal_stats(s->journal, &js);
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
	h.journal_epoch = (uint64_t)controller_journal_epoch(s->journal);
	h.consumption_purged_unacked = js.consumption_purged_unacked;
	Citypass__GateHealth health;
	if (s->cfg.health) {
		fill_health(s, &health);
		h.health = &health;
	}
	if (s->cfg.share_passback)
		h.features |= CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE;
	if (s->cfg.key_chain)
		h.features |= CITYPASS__FEATURE__FEATURE_KEY_CHAIN;
	f.body_case = CITYPASS__FRAME__BODY_HELLO;
	f.hello = &h;
	sync_log(s,
	         "sync: Hello as %s, sector %u holds v%llu, acked statistics %llu consumption %llu",
	         s->device_id, (unsigned)held.sector, (unsigned long long)held.version,
	         (unsigned long long)js.stat_acked, (unsigned long long)js.consumption_acked);
	return queue_frame(s, &f);
}

/* --- upload ----------------------------------------------------------------------------- */

/* Queue one batch of stream 0 (statistics) or 1 (consumption); on success its last
 * sequence is in flight until the server's EventAck. */
static int queue_batch(struct controller_sync *s, Citypass__EventBatch *b, int stream,
                       uint64_t last_seq, int *sent)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
	f.event_batch = b;
	int rc = queue_frame(s, &f);
	if (rc == 0) {
		s->streams[stream].inflight_last = last_seq;
		s->streams[stream].inflight_epoch = (int64_t)b->journal_epoch;
		*sent = 1;
	}
	return rc;
}

/* A batch holds one journal epoch (the server acknowledges per epoch): the rows up to the
 * first of another epoch, which goes in the next batch. */
#define SAME_EPOCH_PREFIX(rows, n)                                                                 \
	do {                                                                                       \
		for (size_t k_ = 1; k_ < (n); k_++)                                                \
			if ((rows)[k_].epoch != (rows)[0].epoch) {                                 \
				(n) = k_;                                                          \
				break;                                                             \
			}                                                                          \
	} while (0)

static int send_stats(struct controller_sync *s, int *sent)
{
	struct controller_stat_row *rows;
	Citypass__StatEvent *ev = NULL, **evp = NULL;
	Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
	size_t n = 0, max = s->cfg.batch_max;
	int rc;

	rows = calloc(max, sizeof(*rows));
	if (!rows)
		return CONTROLLER_ERR_NOMEM;
	rc = controller_journal_fetch_stats(s->journal, rows, max, &n);
	if (rc || n == 0)
		goto out;
	SAME_EPOCH_PREFIX(rows, n);
	ev = calloc(n, sizeof(*ev));
	evp = calloc(n, sizeof(*evp));
	if (!ev || !evp) {
		rc = CONTROLLER_ERR_NOMEM;
		goto out;
	}
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
	b.stream = CITYPASS__STREAM__STATISTICS;
	b.n_stats = n;
	b.stats = evp;
	b.journal_epoch = (uint64_t)rows[0].epoch;
	Citypass__GateHealth health;
	if (s->health_due && s->cfg.health) {
		fill_health(s, &health);
		b.health = &health;
	}
	if (clamped)
		sync_log(s,
		         "sync: %zu statistic(s) stamped in the future (clock ahead while "
		         "offline) sent with the current quarter hour",
		         clamped);
	rc = queue_batch(s, &b, 0, rows[n - 1].seq, sent);
out:
	free(evp);
	free(ev);
	free(rows);
	return rc;
}

static int send_consumption(struct controller_sync *s, int *sent)
{
	struct controller_consumption_row *rows;
	Citypass__ConsumptionEvent *ev = NULL, **evp = NULL;
	Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
	size_t n = 0, max = s->cfg.batch_max;
	int rc;

	rows = calloc(max, sizeof(*rows));
	if (!rows)
		return CONTROLLER_ERR_NOMEM;
	rc = controller_journal_fetch_consumption(s->journal, rows, max, &n);
	if (rc || n == 0)
		goto out;
	SAME_EPOCH_PREFIX(rows, n);
	ev = calloc(n, sizeof(*ev));
	evp = calloc(n, sizeof(*evp));
	if (!ev || !evp) {
		rc = CONTROLLER_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		Citypass__ConsumptionEvent e = CITYPASS__CONSUMPTION_EVENT__INIT;
		e.seq = rows[i].seq;
		e.sector = s->cfg.sector;
		e.pseudonym.data = rows[i].key;
		e.pseudonym.len = PROTO_LIST_KEY_LEN;
		e.product = rows[i].product;
		e.count = rows[i].count;
		e.period = (uint32_t)rows[i].period_number;
		ev[i] = e;
		evp[i] = &ev[i];
	}
	b.stream = CITYPASS__STREAM__CONSUMPTION;
	b.n_consumption = n;
	b.consumption = evp;
	b.journal_epoch = (uint64_t)rows[0].epoch;
	rc = queue_batch(s, &b, 1, rows[n - 1].seq, sent);
out:
	free(evp);
	free(ev);
	free(rows);
	return rc;
}

/* Send what the journal holds, one batch in flight per stream (the next one goes when the
 * ack of this one has been written to the journal, so fetch never returns rows in flight).
 * With keepalive set and nothing to send, send an empty statistics batch. */
static void upload(struct controller_sync *s, int keepalive)
{
	int sent = 0, rc = 0;

	if (s->state != SYNC_READY)
		return;
	if (!s->streams[0].inflight_last)
		rc = send_stats(s, &sent);
	if (rc == 0 && !s->streams[1].inflight_last)
		rc = send_consumption(s, &sent);
	if (rc) {
		conn_close(s, "upload failed: %s", controller_strerror(rc));
		return;
	}
	/* a health report due goes in an empty statistics batch (an older server takes it
	 * for a keepalive and ignores the field), unless a statistics batch is in flight: the
	 * next one carries it */
	const int report = s->health_due && s->cfg.health && !s->streams[0].inflight_last;
	if ((keepalive && !sent && !s->streams[0].inflight_last && !s->streams[1].inflight_last) ||
	    report) {
		Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
		Citypass__Frame f = CITYPASS__FRAME__INIT;
		Citypass__GateHealth health;
		b.stream = CITYPASS__STREAM__STATISTICS;
		b.journal_epoch = (uint64_t)controller_journal_epoch(s->journal);
		if (report) {
			fill_health(s, &health);
			b.health = &health;
		}
		f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
		f.event_batch = &b;
		if ((rc = queue_frame(s, &f)) != 0)
			conn_close(s, "keepalive failed: %s", controller_strerror(rc));
	}
}

/* --- messages from the server ----------------------------------------------------------- */

/* Issue 11: the card keys of the gate's sector (Welcome, or pushed after a rotation). The
 * frame decoder checked their shape; a sector other than the gate's is bad input. */
static int on_card_keys(struct controller_sync *s, const Citypass__CardKeys *k)
{
	if (k->sector != s->cfg.sector) {
		conn_close(s, "bad input from server: card keys of sector %u (the gate is %u's)",
		           (unsigned)k->sector, (unsigned)s->cfg.sector);
		return -1;
	}
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
static int on_key_chain(struct controller_sync *s, const Citypass__KeyChain *k)
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

/* Issue 11: the device CA's rotations (Welcome): a CA certified by one this gate trusts
 * becomes an anchor for the next handshakes, kept on disk first. A refusal is logged, not
 * fatal: the session in progress was authenticated by an anchor already held. */
static void on_ca_chain(struct controller_sync *s, const Citypass__CaChain *c)
{
	if (!s->ca_followed_path || c->n_announcements == 0)
		return;
	struct ca_announcement *a = calloc(c->n_announcements, sizeof(*a));
	if (!a)
		return;
	for (size_t i = 0; i < c->n_announcements; i++) {
		const Citypass__CaAnnouncement *m = c->announcements[i];
		a[i] = (struct ca_announcement){m->cross_certificate.data, m->ca_certificate.data,
		                                m->cross_certificate.len, m->ca_certificate.len};
	}
	char why[200] = "";
	int n = ca_follow(link_tls_ctx_anchors(s->tls), a, c->n_announcements, &s->ca_kept,
	                  &s->ca_kept_len, why, sizeof(why));
	free(a);
	if (n > 0 && ca_follow_save(s->ca_followed_path, s->ca_kept, s->ca_kept_len) != 0)
		sync_log(s, "sync: device CA: cannot keep %s: %s", s->ca_followed_path,
		         strerror(errno));
	if (n > 0)
		sync_log(s, "sync: device CA: %d rotation(s) followed", n);
	if (n < 0)
		sync_log(s, "sync: device CA: an announcement refused: %s", why);
}

/* Issue 13: another gate of the site admitted this pass: remembered at this gate's time
 * (the frame left that gate within the second), for the window only. */
static int on_passback(struct controller_sync *s, const Citypass__PassbackGrant *g)
{
	if (!s->cfg.share_passback) {
		conn_close(s, "bad input from server: a shared grant this gate did not ask for");
		return -1;
	}
	int rc = controller_journal_remember_grant(s->journal, g->key.data,
	                                           controller_timekeeper_now(s->cfg.clock));
	if (rc)
		sync_log(s, "sync: a grant shared by another gate not remembered: %s",
		         controller_strerror(rc));
	pthread_mutex_lock(&s->lock);
	s->status.grants_heard++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Send the grants other threads handed over, if the server shares them; else they go:
 * a grant is worth its first seconds only. */
static void send_grants(struct controller_sync *s)
{
	uint8_t keys[SYNC_GRANTS_MAX][PROTO_LIST_KEY_LEN];
	size_t n;
	pthread_mutex_lock(&s->lock);
	n = s->n_grants;
	memcpy(keys, s->grants, n * PROTO_LIST_KEY_LEN);
	s->n_grants = 0;
	pthread_mutex_unlock(&s->lock);
	if (s->state != SYNC_READY ||
	    !(s->server_features & CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE))
		return;
	for (size_t i = 0; i < n; i++) {
		Citypass__Frame f = CITYPASS__FRAME__INIT;
		Citypass__PassbackGrant g = CITYPASS__PASSBACK_GRANT__INIT;
		g.key.data = keys[i];
		g.key.len = PROTO_LIST_KEY_LEN;
		f.body_case = CITYPASS__FRAME__BODY_PASSBACK_GRANT;
		f.passback_grant = &g;
		int rc = queue_frame(s, &f);
		if (rc) {
			conn_close(s, "sharing a grant failed: %s", controller_strerror(rc));
			return;
		}
		pthread_mutex_lock(&s->lock);
		s->status.grants_shared++;
		pthread_mutex_unlock(&s->lock);
	}
}

static int on_welcome(struct controller_sync *s, const Citypass__Welcome *w)
{
	int64_t skew = w->server_time - (int64_t)time(NULL);
	/* the server's time is the gate's from now on (issue 10): kept across restarts as
	 * the floor a clock behind cannot go under */
	controller_timekeeper_server_time(s->cfg.clock, w->server_time);
	if (s->cfg.clock && w->server_time > 0)
		(void)controller_journal_set_time_floor(s->journal, w->server_time);

	if (s->state != SYNC_HELLO) {
		conn_close(s, "bad input from server: Welcome outside the session start");
		return -1;
	}
	s->state = SYNC_READY;
	s->healthy = 1;
	s->server_features = w->features;
	event_del(s->setup_ev);
	pthread_mutex_lock(&s->lock);
	s->status.connected = 1;
	s->status.clock_skew_s = skew;
	pthread_mutex_unlock(&s->lock);
	sync_log(s, "sync: connected to %s (server '%.64s'), clock skew %lld s", s->server,
	         w->server_version, (long long)skew);
	if (w->card_keys && on_card_keys(s, w->card_keys) != 0)
		return -1;
	if (w->key_chain)
		on_key_chain(s, w->key_chain);
	if (w->ca_chain)
		on_ca_chain(s, w->ca_chain);
	timer_ms(s->keepalive_ev, s->cfg.keepalive_s * 1000u);
	upload(s, 0);
	return s->state == SYNC_READY ? 0 : -1;
}

static int on_ack(struct controller_sync *s, const Citypass__EventAck *a)
{
	int is_stats = a->stream == CITYPASS__STREAM__STATISTICS;
	struct sync_stream *st = &s->streams[is_stats ? 0 : 1];
	enum controller_stream stream =
	        is_stats ? CONTROLLER_STREAM_STATS : CONTROLLER_STREAM_CONSUMPTION;
	int64_t epoch = (int64_t)a->journal_epoch;
	int rc;

	if (a->journal_epoch > INT64_MAX) {
		conn_close(s, "bad input from server: ack of journal epoch %llu",
		           (unsigned long long)a->journal_epoch);
		return -1;
	}
	if (epoch == 0 && st->inflight_last && st->inflight_epoch != 0) {
		/* a server from before epochs acknowledges by sequence alone */
		epoch = st->inflight_epoch;
	}
	/* Acks are per journal epoch (issue 10): an ack above what this journal issued in
	 * that epoch is normal after a restore from an older copy (the server holds rows the
	 * copy never had) and touches no row of any other epoch. */
	rc = controller_journal_ack_epoch(s->journal, stream, epoch, a->acked_seq,
	                                  controller_timekeeper_now(s->cfg.clock), NULL);
	if (rc) {
		conn_close(s, "%s ack %llu (epoch %lld) not recorded by the journal: %s",
		           is_stats ? "statistics" : "consumption",
		           (unsigned long long)a->acked_seq, (long long)epoch,
		           controller_strerror(rc));
		return -1;
	}
	/* issue 13: where the server holds these uses; a list at or past it counts them */
	if (!is_stats && a->position &&
	    (rc = controller_journal_ack_position(s->journal, epoch, a->acked_seq, a->position))) {
		conn_close(s, "consumption ack position %llu not recorded: %s",
		           (unsigned long long)a->position, controller_strerror(rc));
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	if (is_stats && a->acked_seq > s->status.stats_acked)
		s->status.stats_acked = a->acked_seq;
	if (!is_stats && a->acked_seq > s->status.consumption_acked)
		s->status.consumption_acked = a->acked_seq;
	pthread_mutex_unlock(&s->lock);
	if (st->inflight_last && epoch == st->inflight_epoch && a->acked_seq >= st->inflight_last) {
		sync_log(s, "sync: %s acked up to %llu", is_stats ? "statistics" : "consumption",
		         (unsigned long long)a->acked_seq);
		st->inflight_last = 0;
		/* issue 13: the office saw a backlog; once it is all acked, say so at once
		 * (not at the next 5-minute report) */
		struct controller_journal_stats js;
		if (s->health_backlog && !s->streams[0].inflight_last &&
		    !s->streams[1].inflight_last &&
		    controller_journal_stats(s->journal, &js) == 0 &&
		    js.stat_pending + js.consumption_pending == 0)
			s->health_due = 1;
		upload(s, 0);
	}
	return s->state == SYNC_READY ? 0 : -1;
}

static int update_bad(struct controller_sync *s, const char *why)
{
	conn_close(s, "bad input from server: ListUpdate %s", why);
	return -1;
}

static int on_update(struct controller_sync *s, const Citypass__ListUpdate *u)
{
	struct sync_update *a = &s->upd;
	int rc;

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
		if (!g) {
			conn_close(s, "out of memory assembling an update");
			return -1;
		}
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
	/* Issue 13: which of this gate's acked uses the new version holds (0: the server does
	 * not say; the time rule counts then). Recorded before the install, so a decision
	 * never sees the new list without it: the position names its version, and a list
	 * held with another version falls back to the time rule. */
	rc = controller_journal_set_list_position(s->journal, a->version, u->consumption_position);
	if (rc)
		sync_log(s, "sync: the list's usage position not recorded: %s",
		         controller_strerror(rc));
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
		conn_close(s, "%s v%llu (base v%llu, %zu bytes) refused: %s",
		           a->kind == CITYPASS__LIST_UPDATE__KIND__SNAPSHOT ? "snapshot" : "delta",
		           (unsigned long long)a->version, (unsigned long long)a->base_version,
		           a->len, controller_strerror(rc));
		return -1;
	}
	s->want_snapshot = 0;
	s->hello_held = a->version;
	s->health_due = 1; /* issue 13: the office sees the new version at once */
	sync_log(s, "sync: installed %s v%llu (%zu bytes, %u chunk%s)",
	         a->kind == CITYPASS__LIST_UPDATE__KIND__SNAPSHOT ? "snapshot" : "delta",
	         (unsigned long long)a->version, a->len, (unsigned)a->chunk_count,
	         a->chunk_count == 1 ? "" : "s");
	free(a->buf);
	memset(a, 0, sizeof(*a));
	upload(s, 0);
	return s->state == SYNC_READY ? 0 : -1;
}

static int on_frame(struct controller_sync *s, const Citypass__Frame *f)
{
	pthread_mutex_lock(&s->lock);
	s->status.last_contact = (int64_t)time(NULL);
	pthread_mutex_unlock(&s->lock);
	s->last_rx = mono_now();

	if (f->body_case == CITYPASS__FRAME__BODY_ERROR) {
		if (f->error->code != CITYPASS__ERROR__CODE__SHUTTING_DOWN)
			s->healthy = 0; /* back off as after a failure */
		conn_close(s, "server error %d: %.200s", (int)f->error->code, f->error->message);
		return -1;
	}
	if (f->body_case == CITYPASS__FRAME__BODY_WELCOME)
		return on_welcome(s, f->welcome);
	if (s->state != SYNC_READY) {
		conn_close(s, "bad input from server: frame %d before Welcome", (int)f->body_case);
		return -1;
	}
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
		sync_log(s, "sync: sector %u v%llu published", (unsigned)f->list_published->sector,
		         (unsigned long long)f->list_published->version);
		return 0;
	default:
		conn_close(s, "bad input from server: a controller's message (frame %d)",
		           (int)f->body_case);
		return -1;
	}
}

/* --- socket I/O ------------------------------------------------------------------------- */

static void flush_out(struct controller_sync *s)
{
	char why[128];

	while (s->out_off < s->out_len) {
		long rc = link_tls_session_write(&s->sess, s->out + s->out_off,
		                                 s->out_len - s->out_off);
		if (rc == LINK_TLS_WANT_WRITE || rc == LINK_TLS_WANT_READ) {
			/* the link re-sends the same record when writable */
			event_add(s->wr_ev, NULL);
			return;
		}
		if (rc < 0) {
			conn_close(s, "TLS write failed: %s",
			           link_tls_strerror((int)rc, why, sizeof(why)));
			return;
		}
		s->out_off += (size_t)rc;
	}
	s->out_off = s->out_len = 0;
}

static void read_frames(struct controller_sync *s)
{
	uint8_t buf[LINK_TLS_RECORD_MAX];
	char why[128];

	for (;;) {
		Citypass__Frame *f = NULL;
		long n = link_tls_session_read(&s->sess, buf, sizeof(buf));
		int rc;
		if (n == LINK_TLS_WANT_READ || n == LINK_TLS_WANT_WRITE)
			return;
		if (n == 0) {
			conn_close(s, "closed by the server");
			return;
		}
		if (n < 0) {
			conn_close(s, "TLS read failed: %s",
			           link_tls_strerror((int)n, why, sizeof(why)));
			return;
		}
		if (proto_frame_decoder_feed(s->dec, buf, (size_t)n) != 0) {
			conn_close(s, "out of memory reading a frame");
			return;
		}
		while ((rc = proto_frame_next(s->dec, &f)) == 1) {
			int r = on_frame(s, f);
			proto_frame_free_message(f);
			if (r != 0)
				return; /* closed */
		}
		if (rc < 0) {
			conn_close(s, "bad input from server: %s", proto_strerror(rc));
			return;
		}
	}
}

static void step_handshake(struct controller_sync *s)
{
	char why[200];
	int rc = link_tls_session_handshake(&s->sess);

	if (rc == LINK_TLS_WANT_READ)
		return; /* the persistent read event calls again */
	if (rc == LINK_TLS_WANT_WRITE) {
		event_add(s->wr_ev, NULL);
		return;
	}
	if (rc != 0) {
		uint32_t flags = mbedtls_ssl_get_verify_result(&s->sess.ssl);
		if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 &&
		    flags != (uint32_t)-1) {
			link_tls_verify_reason(flags, why, sizeof(why));
			conn_close(s, "server certificate refused: %s", why);
		} else if (s->sess.ssl.state > MBEDTLS_SSL_CLIENT_CERTIFICATE &&
		           (rc == MBEDTLS_ERR_NET_CONN_RESET || rc == MBEDTLS_ERR_SSL_CONN_EOF ||
		            rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)) {
			/* The server checks our certificate and its enrolment inside the
			 * handshake and drops us without saying why (docs/sync-server.md,
			 * Admission): all the gate can tell is when it happened. */
			conn_close(
			        s,
			        "TLS handshake refused by the server after our certificate (device "
			        "not enrolled or revoked, or certificate not from the deployment "
			        "CA; the server's log names which): %s",
			        link_tls_strerror(rc, why, sizeof(why)));
		} else {
			conn_close(s, "TLS handshake failed: %s",
			           link_tls_strerror(rc, why, sizeof(why)));
		}
		return;
	}
	s->state = SYNC_HELLO;
	sync_log(s, "sync: TLS up with %s (%s, %s)", s->server,
	         mbedtls_ssl_get_version(&s->sess.ssl), mbedtls_ssl_get_ciphersuite(&s->sess.ssl));
	rc = send_hello(s);
	if (rc) {
		conn_close(s, "Hello failed: %s", controller_strerror(rc));
		return;
	}
	flush_out(s);
}

static void tcp_connected(struct controller_sync *s)
{
	int err = 0, rc;
	socklen_t len = sizeof(err);
	char why[128];

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		conn_close(s, "connect failed: %s", strerror(err));
		return;
	}
	s->sess_live = 1;
	rc = link_tls_session_init(&s->sess, s->tls, s->fd, verify_server, s);
	if (rc) {
		conn_close(s, "TLS setup failed: %s", link_tls_strerror(rc, why, sizeof(why)));
		return;
	}
	s->state = SYNC_HANDSHAKE;
	event_add(s->rd_ev, NULL);
	step_handshake(s);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	(void)fd;
	(void)what;

	if (s->state == SYNC_HANDSHAKE)
		step_handshake(s);
	else if (s->state == SYNC_HELLO || s->state == SYNC_READY)
		read_frames(s);
	if ((s->state == SYNC_HELLO || s->state == SYNC_READY) && s->out_len > s->out_off)
		flush_out(s);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	(void)fd;
	(void)what;

	if (s->state == SYNC_CONNECTING)
		tcp_connected(s);
	else if (s->state == SYNC_HANDSHAKE)
		step_handshake(s);
	else if (s->state == SYNC_HELLO || s->state == SYNC_READY)
		flush_out(s);
}

static void start_connect(struct controller_sync *s)
{
	struct addrinfo hints, *res = NULL, *ai;
	int rc, fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* blocking name resolution, on the sync thread only: the reader never waits on it */
	rc = getaddrinfo(s->host, s->port, &hints, &res);
	if (rc != 0) {
		conn_close(s, "resolving %s: %s", s->host, gai_strerror(rc));
		return;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		            ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		conn_close(s, "connect to %s failed: %s", s->server, strerror(errno));
		return;
	}
	{
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	s->fd = fd;
	s->dec = proto_frame_decoder_new(0);
	if (!s->dec) {
		conn_close(s, "out of memory");
		return;
	}
	event_assign(s->rd_ev, s->base, fd, EV_READ | EV_PERSIST, on_readable, s);
	event_assign(s->wr_ev, s->base, fd, EV_WRITE, on_writable, s);
	s->state = SYNC_CONNECTING;
	timer_ms(s->setup_ev, SYNC_SESSION_SETUP_MS);
	event_add(s->wr_ev, NULL);
}

/* --- timers and the control pipe -------------------------------------------------------- */

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_connect(arg);
}

static void on_setup_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	(void)fd;
	(void)what;
	if (s->state != SYNC_READY && s->state != SYNC_IDLE)
		conn_close(s, "no session within %u ms", SYNC_SESSION_SETUP_MS);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	(void)fd;
	(void)what;

	if (s->state != SYNC_READY)
		return;
	if (mono_now() - s->last_rx > (double)SYNC_SILENT_PERIODS * s->cfg.keepalive_s) {
		conn_close(s, "server silent for %u s", SYNC_SILENT_PERIODS * s->cfg.keepalive_s);
		return;
	}
	if (s->cfg.health && mono_now() - s->health_sent >= SYNC_HEALTH_EVERY_S)
		s->health_due = 1;
	upload(s, 1);
	/* queue_frame re-armed the timer if anything went out; else wait a period more */
	if (s->state == SYNC_READY && !event_pending(s->keepalive_ev, EV_TIMEOUT, NULL))
		timer_ms(s->keepalive_ev, s->cfg.keepalive_s * 1000u);
	if (s->state == SYNC_READY)
		flush_out(s);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	(void)fd;
	(void)what;
	/* The store found a damaged file and now claims no list: a repeated Hello asks the
	 * server for a snapshot (docs/sync-server.md) without waiting for the next session. */
	if (s->state == SYNC_READY && !s->upd.active && s->hello_held != 0 &&
	    s->cfg.held_version(s->cfg.ctx) == 0 && send_hello(s) != 0) {
		conn_close(s, "Hello failed: out of memory");
		return;
	}
	upload(s, 0);
	if (s->state == SYNC_READY)
		flush_out(s);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	char buf[64];
	ssize_t n;
	int kick = 0;
	(void)what;

	int grants = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == 'q') {
				event_base_loopbreak(s->base);
				return;
			}
			if (buf[i] == 'g')
				grants = 1;
			else
				kick = 1;
		}
	}
	pthread_mutex_lock(&s->lock);
	if (s->health_changed)
		s->health_due = 1;
	s->health_changed = 0;
	pthread_mutex_unlock(&s->lock);
	/* a shared grant goes at once: a second pool gate must know it within the second */
	if (grants) {
		send_grants(s);
		if (s->state == SYNC_READY)
			flush_out(s);
	}
	/* coalesce a burst of kicks into one upload, a few ms later: "soon", not per tap */
	if (kick && !event_pending(s->kick_ev, EV_TIMEOUT, NULL))
		timer_ms(s->kick_ev, 5);
}

/* --- the thread ------------------------------------------------------------------------- */

static void init_done(struct controller_sync *s, int rc)
{
	pthread_mutex_lock(&s->init_lock);
	s->init_rc = rc;
	s->init_done = 1;
	pthread_cond_signal(&s->init_cond);
	pthread_mutex_unlock(&s->init_lock);
}

static void *sync_main(void *arg)
{
	struct controller_sync *s = arg;
	int rc = controller_journal_open(&s->journal, s->journal_path);

	if (rc) {
		sync_log(s, "sync: opening journal %s: %s", s->journal_path,
		         controller_strerror(rc));
		init_done(s, rc);
		return NULL;
	}
	init_done(s, 0);
	start_connect(s);
	event_base_dispatch(s->base);

	s->stopping = 1;
	if (s->state != SYNC_IDLE) {
		s->healthy = 0;
		conn_close(s, "stopping");
	}
	event_del(s->retry_ev);
	controller_journal_close(s->journal);
	s->journal = NULL;
	return NULL;
}

static void sync_free(struct controller_sync *s)
{
	struct event *evs[] = {s->pipe_ev,      s->rd_ev,    s->wr_ev,  s->retry_ev,
	                       s->keepalive_ev, s->setup_ev, s->kick_ev};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (s->base)
		event_base_free(s->base);
	if (s->pipe_rd >= 0)
		close(s->pipe_rd);
	if (s->pipe_wr >= 0)
		close(s->pipe_wr);
	link_tls_ctx_free(s->tls);
	free(s->out);
	free(s->upd.buf);
	free(s->server);
	free(s->server_name);
	free(s->ca_path);
	free(s->ca_followed_path);
	free(s->ca_kept);
	free(s->cert_path);
	free(s->key_path);
	free(s->device_id);
	free(s->software_version);
	free(s->journal_path);
	pthread_cond_destroy(&s->init_cond);
	pthread_mutex_destroy(&s->init_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int valid_config(const struct controller_sync_config *c)
{
	return c->server && c->ca_path && c->cert_path && c->key_path && c->device_id &&
	       c->device_id[0] && c->journal_path && c->held_version && c->install &&
	       c->batch_max > 0 && c->reconnect_min_ms > 0 &&
	       c->reconnect_max_ms >= c->reconnect_min_ms && c->keepalive_s > 0;
}

int controller_sync_start(struct controller_sync **out, const struct controller_sync_config *cfg)
{
	struct controller_sync *s;
	int fds[2], rc;

	if (!out || !cfg || !valid_config(cfg))
		return CONTROLLER_ERR_ARG;
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return CONTROLLER_ERR_NOMEM;
	s->cfg = *cfg;
	s->fd = s->pipe_rd = s->pipe_wr = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->init_lock, NULL);
	pthread_cond_init(&s->init_cond, NULL);
	if (s->cfg.batch_max > SYNC_BATCH_CAP)
		s->cfg.batch_max = SYNC_BATCH_CAP;
	if (s->cfg.keepalive_s > 60)
		s->cfg.keepalive_s = 60; /* docs/sync-server.md: a third of the 180 s idle limit */

	s->server = strdup(cfg->server);
	s->ca_path = strdup(cfg->ca_path);
	s->cert_path = strdup(cfg->cert_path);
	s->key_path = strdup(cfg->key_path);
	s->device_id = strdup(cfg->device_id);
	s->software_version = strdup(cfg->software_version ? cfg->software_version : "");
	s->journal_path = dup_or_null(cfg->journal_path);
	if (cfg->ca_followed_path && !(s->ca_followed_path = strdup(cfg->ca_followed_path))) {
		rc = CONTROLLER_ERR_NOMEM;
		goto fail;
	}
	if (cfg->server_name && cfg->server_name[0] &&
	    !(s->server_name = strdup(cfg->server_name))) {
		rc = CONTROLLER_ERR_NOMEM;
		goto fail;
	}
	if (!s->server || !s->ca_path || !s->cert_path || !s->key_path || !s->device_id ||
	    !s->software_version || !s->journal_path) {
		rc = CONTROLLER_ERR_NOMEM;
		goto fail;
	}
	if ((rc = split_server(s)) != 0) {
		sync_log(s, "sync: server '%s' is not HOST:PORT", cfg->server);
		goto fail;
	}
	if ((rc = load_tls(s)) != 0)
		goto fail;

	if (pipe(fds) != 0) {
		rc = CONTROLLER_ERR_IO;
		goto fail;
	}
	s->pipe_rd = fds[0];
	s->pipe_wr = fds[1];
	for (int i = 0; i < 2; i++)
		if (fcntl(fds[i], F_SETFL, O_NONBLOCK) != 0 ||
		    fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
			rc = CONTROLLER_ERR_IO;
			goto fail;
		}
	s->base = event_base_new();
	if (!s->base) {
		rc = CONTROLLER_ERR_NOMEM;
		goto fail;
	}
	s->pipe_ev = event_new(s->base, s->pipe_rd, EV_READ | EV_PERSIST, on_pipe, s);
	s->rd_ev = event_new(s->base, -1, 0, on_readable, s);
	s->wr_ev = event_new(s->base, -1, 0, on_writable, s);
	s->retry_ev = event_new(s->base, -1, 0, on_retry, s);
	s->keepalive_ev = event_new(s->base, -1, 0, on_keepalive, s);
	s->setup_ev = event_new(s->base, -1, 0, on_setup_timeout, s);
	s->kick_ev = event_new(s->base, -1, 0, on_kick, s);
	if (!s->pipe_ev || !s->rd_ev || !s->wr_ev || !s->retry_ev || !s->keepalive_ev ||
	    !s->setup_ev || !s->kick_ev) {
		rc = CONTROLLER_ERR_NOMEM;
		goto fail;
	}
	event_add(s->pipe_ev, NULL);

	if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
		rc = CONTROLLER_ERR_IO;
		goto fail;
	}
	s->thread_started = 1;
	pthread_mutex_lock(&s->init_lock);
	while (!s->init_done)
		pthread_cond_wait(&s->init_cond, &s->init_lock);
	rc = s->init_rc;
	pthread_mutex_unlock(&s->init_lock);
	if (rc) {
		pthread_join(s->thread, NULL);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	sync_free(s);
	return rc;
}

static void wake(struct controller_sync *s, char c)
{
	/* a full pipe already holds a wake-up: nothing is lost */
	(void)!write(s->pipe_wr, &c, 1);
}

void controller_sync_health_changed(struct controller_sync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->health_changed = 1;
	pthread_mutex_unlock(&s->lock);
	wake(s, 'h');
}

void controller_sync_share_grant(struct controller_sync *s, const uint8_t key[8])
{
	if (!s || !s->cfg.share_passback)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->n_grants < SYNC_GRANTS_MAX)
		memcpy(s->grants[s->n_grants++], key, PROTO_LIST_KEY_LEN);
	pthread_mutex_unlock(&s->lock);
	wake(s, 'g');
}

void controller_sync_kick(struct controller_sync *s)
{
	if (s)
		(void)!write(s->pipe_wr, "k", 1); /* a full pipe already holds a kick */
}

void controller_sync_get_status(struct controller_sync *s, struct controller_sync_status *st)
{
	if (!s || !st)
		return;
	pthread_mutex_lock(&s->lock);
	*st = s->status;
	pthread_mutex_unlock(&s->lock);
}

void controller_sync_stop(struct controller_sync *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		/* retry until the byte is in: a pipe full of kicks must not lose the stop */
		while (write(s->pipe_wr, "q", 1) != 1) {
			if (errno != EAGAIN && errno != EINTR)
				break;
			usleep(1000);
		}
		pthread_join(s->thread, NULL);
	}
	sync_free(s);
}
