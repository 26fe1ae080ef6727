/*
 * sync_client.c — the gate's side of the sync link (controller/sync_client.h,
 * docs/controller.md "The sync client").
 *
 * The thread, the socket and the back-off; the protocol is the session's
 * (controller/sync_session.h: frames in, frames out, no socket), the TLS the link's
 * (link/tls.h, the same code as the server's end; Debian 12's libevent has no mbedTLS
 * bufferevent). One thread, one event_base, one connection at a time: TCP connect → TLS
 * handshake (server verified against the deployment CA) → the session, fed what TLS
 * decrypts and drained into TLS. Whatever ends a connection (the session's reason, a TLS
 * or socket error, a timer) is logged, and a reconnect follows after an exponential
 * backoff with full jitter. A gate may list several servers (issue 16: instances on one
 * PostgreSQL): a connection that fails or ends moves to the next one in the list, the
 * back-off grows only when a whole round of them failed, and the gate stays with the one
 * that answers (docs/controller.md "Several servers"). Other threads reach the loop only through a
 * pipe: one byte 'k' (kick), 'h' (health), 'g' (grants) or 'q' (stop), so no libevent threading
 * support is needed.
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
#include "controller/sync_session.h"
#include "controller/timekeeper.h"
#include "ca_follow.h"
#include "link/addr.h"
#include "link/tls.h"
#include "proto/device_conf.h"

/* Connect + handshake + Welcome must all happen within this (the server allows 10 s for
 * the handshake and 10 s for Hello). */
#define SYNC_SESSION_SETUP_MS 15000u
/* docs/sync-server.md: keepalives at most a third of the server's 180 s idle limit. */
#define SYNC_KEEPALIVE_MAX_S 60u
/* Grants waiting for the sync thread (a burst at a busy gate); more are dropped. */
#define SYNC_GRANTS_MAX 64

enum sync_state {
	SYNC_IDLE,       /* no connection; a reconnect timer may be pending */
	SYNC_CONNECTING, /* TCP connect in progress */
	SYNC_HANDSHAKE,  /* TLS handshake */
	SYNC_SESSION,    /* TLS up: the session runs (controller_sync_session_state says where) */
};

struct controller_sync {
	/* configuration, copied */
	struct controller_sync_config cfg;
	char *server, *server_name, *ca_path, *cert_path, *key_path, *journal_path,
	        *ca_followed_path;
	char *ca_kept; /* issue 11: the device CAs followed, as kept on disk (PEM pairs) */
	size_t ca_kept_len;
	/* issue 16: the servers, in the configured order; cur is the one tried or served by
	 * now, tried the servers of this round (it grows back from 1 after a session) */
	struct link_addr addrs[PROTO_DEVICE_SERVERS_MAX];
	size_t n_addrs, cur, tried;
	char peer[LINK_ADDR_TEXT_MAX + 1]; /* addrs[cur] as text, for the log */
	char port[16];

	/* TLS material, loaded once; a TLS session per connection */
	struct link_tls_ctx *tls;
	struct link_tls_session tls_sess;
	int tls_live;
	/* the server's session ticket, offered at the next connection: after a network cut a
	 * thousand gates come back without a full handshake each (docs/controller.md) */
	struct link_tls_ticket ticket;

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
	struct controller_sync_session *session; /* the protocol, across connections */
	uint64_t frames_seen; /* controller_sync_session_frames_queued at the last look */
	unsigned attempts;    /* failed rounds of every server since the last healthy session */
	int stopping;         /* the loop has ended: no more reconnects */

	/* status, read by other threads; and what they hand to this one */
	pthread_mutex_t lock;
	struct controller_sync_status status;
	int health_changed; /* under lock: another thread asked for a report */
	uint8_t grants[SYNC_GRANTS_MAX][PROTO_LIST_KEY_LEN]; /* under lock */
	size_t n_grants;
};

/* --- small helpers ---------------------------------------------------------------------- */

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

/* What the session knows, published for other threads (reconnects are counted here). */
static void publish_status(struct controller_sync *s)
{
	struct controller_sync_status st;
	controller_sync_session_status(s->session, &st);
	pthread_mutex_lock(&s->lock);
	st.reconnects = s->status.reconnects;
	s->status = st;
	pthread_mutex_unlock(&s->lock);
}

static void timer_ms(struct event *ev, unsigned ms)
{
	struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)(ms % 1000u) * 1000};
	event_add(ev, &tv);
}

/* --- configuration and TLS material ----------------------------------------------------- */

/* "host:port", "[2001:db8::1]:7443", or several separated by commas (link/addr.h): the
 * brackets only delimit the address from its port */
static int split_servers(struct controller_sync *s)
{
	if (link_addr_list_parse(s->server, 0, s->addrs, PROTO_DEVICE_SERVERS_MAX, &s->n_addrs,
	                         NULL) != 0)
		return CONTROLLER_ERR_ARG;
	return 0;
}

/* addrs[i] as the operator wrote it, and its port for getaddrinfo */
static void select_server(struct controller_sync *s, size_t i)
{
	const struct link_addr *a = &s->addrs[i];
	s->cur = i;
	snprintf(s->peer, sizeof(s->peer), a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", a->host,
	         (unsigned)a->port);
	snprintf(s->port, sizeof(s->port), "%u", (unsigned)a->port);
	(void)controller_sync_session_set_server(s->session, s->peer);
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
	 * host when it is a name, set per connection (tcp_connected) since each server of a
	 * list has its own (mbedTLS 2.28 compares CN / dNSName only, never iPAddress SANs, so
	 * an address alone names nobody: docs/controller.md). */
	const struct link_tls_params p = {
	        .role = LINK_TLS_CLIENT,
	        .ca_path = s->ca_path,
	        .cert_path = s->cert_path,
	        .key_path = s->key_path,
	        .server_name = s->server_name,
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

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	sync_log(s, "sync: connection to %s closed: %s", s->peer, why);

	event_del(s->rd_ev);
	event_del(s->wr_ev);
	event_del(s->keepalive_ev);
	event_del(s->setup_ev);
	if (s->tls_live) {
		link_tls_session_close_notify(&s->tls_sess); /* once the handshake was done */
		link_tls_session_free(&s->tls_sess);
		s->tls_live = 0;
	}
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	/* Ended in the handshake or before the Welcome (a resumed session of a device revoked
	 * since is closed right after the handshake): the next handshake is a full one, whose
	 * refusal tells the gate more. */
	if (s->state == SYNC_HANDSHAKE ||
	    controller_sync_session_state(s->session) == CONTROLLER_SYNC_SESSION_HELLO)
		link_tls_ticket_free(&s->ticket);
	if (controller_sync_session_healthy(s->session)) {
		/* a session was served: a new round, from this server on */
		s->attempts = 0;
		s->tried = 0;
	}
	controller_sync_session_reset(s->session);
	s->state = SYNC_IDLE;
	publish_status(s);
	schedule_reconnect(s);
}

/*
 * Exponential backoff with full jitter: the n-th retry waits a uniform delay in
 * [min, min(max, min * 2^n)], so a thousand gates cut off together do not return in step.
 * With several servers (issue 16), n counts whole rounds: a server that failed hands over
 * to the next one of the list after the current delay, and the delay grows only once every
 * server was tried and none served. The next round starts again from the server after
 * the last one tried, so a gate stays with the instance that answers and goes back to a
 * revived one only when its own fails.
 */
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
	if (++s->tried >= s->n_addrs) {
		s->tried = 0;
		s->attempts++;
	}
	if (s->n_addrs > 1) {
		select_server(s, (s->cur + 1) % s->n_addrs);
		sync_log(s, "sync: trying %s next (server %zu of %zu) in %u ms", s->peer,
		         s->cur + 1, s->n_addrs, delay);
	}
	pthread_mutex_lock(&s->lock);
	s->status.reconnects++;
	pthread_mutex_unlock(&s->lock);
	timer_ms(s->retry_ev, delay);
}

/* Issue 11: the device CA's rotations announced in Welcome: a CA certified by one this gate
 * trusts becomes an anchor for the next handshakes, kept on disk first. A refusal is
 * logged, not fatal: the session in progress was authenticated by an anchor already held. */
static void follow_ca(void *arg, const struct controller_ca_announcement *a, size_t n)
{
	struct controller_sync *s = arg;
	char why[200] = "";
	int k = ca_follow(link_tls_ctx_anchors(s->tls), a, n, &s->ca_kept, &s->ca_kept_len, why,
	                  sizeof(why));

	if (k > 0 && ca_follow_save(s->ca_followed_path, s->ca_kept, s->ca_kept_len) != 0)
		sync_log(s, "sync: device CA: cannot keep %s: %s", s->ca_followed_path,
		         strerror(errno));
	if (k > 0)
		sync_log(s, "sync: device CA: %d rotation(s) followed", k);
	if (k < 0)
		sync_log(s, "sync: device CA: an announcement refused: %s", why);
}

/* --- socket I/O ------------------------------------------------------------------------- */

static void flush_out(struct controller_sync *s)
{
	const uint8_t *p;
	size_t len;
	char why[128];

	while ((p = controller_sync_session_output(s->session, &len)) != NULL && len > 0) {
		long rc = link_tls_session_write(&s->tls_sess, p, len);
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
		controller_sync_session_sent(s->session, (size_t)rc);
	}
}

/*
 * After the session ran (rc: what it returned): an ended session closes the connection
 * with its reason; else publish what it knows, re-arm the keepalive when a frame was
 * queued (the server's idle timer counts from the last frame) or none is pending (Welcome,
 * a keepalive just fired), and send what is queued.
 */
static void after_session(struct controller_sync *s, int rc)
{
	if (rc != 0) {
		conn_close(s, "%s", controller_sync_session_why(s->session));
		return;
	}
	publish_status(s);
	if (controller_sync_session_state(s->session) == CONTROLLER_SYNC_SESSION_READY) {
		uint64_t queued = controller_sync_session_frames_queued(s->session);
		event_del(s->setup_ev);
		if (queued != s->frames_seen || !event_pending(s->keepalive_ev, EV_TIMEOUT, NULL))
			timer_ms(s->keepalive_ev, s->cfg.keepalive_s * 1000u);
		s->frames_seen = queued;
	}
	flush_out(s);
}

/* Feed the session what TLS has decrypted, until the socket is drained. 0 while the
 * connection stays, -1 once closed. */
static int read_frames(struct controller_sync *s)
{
	uint8_t buf[LINK_TLS_RECORD_MAX];
	char why[128];

	for (;;) {
		long n = link_tls_session_read(&s->tls_sess, buf, sizeof(buf));
		if (n == LINK_TLS_WANT_READ || n == LINK_TLS_WANT_WRITE)
			return 0;
		if (n == 0) {
			conn_close(s, "closed by the server");
			return -1;
		}
		if (n < 0) {
			conn_close(s, "TLS read failed: %s",
			           link_tls_strerror((int)n, why, sizeof(why)));
			return -1;
		}
		if (controller_sync_session_feed(s->session, buf, (size_t)n) != 0) {
			after_session(s, -1);
			return -1;
		}
	}
}

static void step_handshake(struct controller_sync *s)
{
	char why[200];
	int rc = link_tls_session_handshake(&s->tls_sess);

	if (rc == LINK_TLS_WANT_READ)
		return; /* the persistent read event calls again */
	if (rc == LINK_TLS_WANT_WRITE) {
		event_add(s->wr_ev, NULL);
		return;
	}
	if (rc != 0) {
		uint32_t flags = link_tls_session_verify_result(&s->tls_sess);
		if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 &&
		    flags != (uint32_t)-1) {
			link_tls_verify_reason(flags, why, sizeof(why));
			conn_close(s, "server certificate refused: %s", why);
		} else if (s->tls_sess.ssl.state > MBEDTLS_SSL_CLIENT_CERTIFICATE &&
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
	if (link_tls_ticket_keep(&s->ticket, &s->tls_sess) != 0)
		sync_log(s, "sync: the session's ticket could not be kept (out of memory): the "
		            "next connection makes a full handshake");
	s->state = SYNC_SESSION;
	sync_log(s, "sync: TLS up with %s (%s, %s%s)", s->peer,
	         mbedtls_ssl_get_version(&s->tls_sess.ssl),
	         mbedtls_ssl_get_ciphersuite(&s->tls_sess.ssl),
	         s->tls_sess.resumed ? ", resumed from a ticket" : "");
	after_session(s, controller_sync_session_begin(s->session));
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
	s->tls_live = 1;
	rc = link_tls_session_init(&s->tls_sess, s->tls, s->fd, verify_server, s);
	if (rc == 0)
		rc = link_tls_session_offer_ticket(&s->tls_sess, &s->ticket);
	/* no name pinned: the certificate must carry this server's host name, when it is one
	 * (load_tls) */
	if (rc == 0 && !s->server_name && s->addrs[s->cur].family == AF_UNSPEC)
		rc = mbedtls_ssl_set_hostname(&s->tls_sess.ssl, s->addrs[s->cur].host);
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
	else if (s->state == SYNC_SESSION && read_frames(s) == 0)
		after_session(s, 0);
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
	else if (s->state == SYNC_SESSION)
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
	rc = getaddrinfo(s->addrs[s->cur].host, s->port, &hints, &res);
	if (rc != 0) {
		conn_close(s, "resolving %s: %s", s->addrs[s->cur].host, gai_strerror(rc));
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
		conn_close(s, "connect to %s failed: %s", s->peer, strerror(errno));
		return;
	}
	{
		int one = 1;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	s->fd = fd;
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
	if (s->state != SYNC_IDLE &&
	    controller_sync_session_state(s->session) != CONTROLLER_SYNC_SESSION_READY)
		conn_close(s, "no session within %u ms", SYNC_SESSION_SETUP_MS);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	(void)fd;
	(void)what;

	if (s->state == SYNC_SESSION)
		after_session(s, controller_sync_session_keepalive(s->session));
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	(void)fd;
	(void)what;

	if (s->state == SYNC_SESSION)
		after_session(s, controller_sync_session_kick(s->session));
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct controller_sync *s = arg;
	uint8_t keys[SYNC_GRANTS_MAX][PROTO_LIST_KEY_LEN];
	size_t n_keys;
	char buf[64];
	ssize_t n;
	int kick = 0, grants = 0;
	(void)what;

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
		controller_sync_session_health_changed(s->session);
	s->health_changed = 0;
	/* only with a 'g' read: a grant queued after it comes with its own 'g' */
	n_keys = grants ? s->n_grants : 0;
	memcpy(keys, s->grants, n_keys * PROTO_LIST_KEY_LEN);
	if (grants)
		s->n_grants = 0;
	pthread_mutex_unlock(&s->lock);
	/* a shared grant goes at once: a second pool gate must know it within the second
	 * (offline, or to a server that does not share them, it is dropped: a grant is worth
	 * its first seconds only) */
	if (grants && s->state == SYNC_SESSION)
		after_session(
		        s, controller_sync_session_share_grants(
		                   s->session, (const uint8_t(*)[PROTO_LIST_KEY_LEN])keys, n_keys));
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

/* The session over this thread's own journal connection, with the caller's callbacks. */
static int session_new(struct controller_sync *s)
{
	const struct controller_sync_config *c = &s->cfg;
	const struct controller_sync_session_config sc = {
	        .server = s->peer,
	        .device_id = c->device_id,
	        .sector = c->sector,
	        .software_version = c->software_version,
	        .batch_max = c->batch_max,
	        .keepalive_s = c->keepalive_s,
	        .journal = s->journal,
	        .clock = c->clock,
	        .share_passback = c->share_passback,
	        .held_version = c->held_version,
	        .held_format = c->held_format,
	        .install = c->install,
	        .card_keys = c->card_keys,
	        .key_chain = c->key_chain,
	        .health = c->health,
	        .log = c->log,
	        .ctx = c->ctx,
	        /* without a place to keep them, announcements are ignored (sync_client.h) */
	        .ca_chain = s->ca_followed_path ? follow_ca : NULL,
	        .ca_ctx = s,
	};
	return controller_sync_session_new(&s->session, &sc);
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
	if ((rc = session_new(s)) != 0) {
		controller_journal_close(s->journal);
		s->journal = NULL;
		init_done(s, rc);
		return NULL;
	}
	init_done(s, 0);
	start_connect(s);
	event_base_dispatch(s->base);

	s->stopping = 1;
	if (s->state != SYNC_IDLE)
		conn_close(s, "stopping");
	event_del(s->retry_ev);
	controller_sync_session_free(s->session);
	s->session = NULL;
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
	link_tls_ticket_free(&s->ticket);
	link_tls_ctx_free(s->tls);
	free(s->server);
	free(s->server_name);
	free(s->ca_path);
	free(s->ca_followed_path);
	free(s->ca_kept);
	free(s->cert_path);
	free(s->key_path);
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
	link_tls_ticket_init(&s->ticket);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->init_lock, NULL);
	pthread_cond_init(&s->init_cond, NULL);
	if (s->cfg.keepalive_s > SYNC_KEEPALIVE_MAX_S)
		s->cfg.keepalive_s = SYNC_KEEPALIVE_MAX_S;

	s->server = strdup(cfg->server);
	s->ca_path = strdup(cfg->ca_path);
	s->cert_path = strdup(cfg->cert_path);
	s->key_path = strdup(cfg->key_path);
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
	if (!s->server || !s->ca_path || !s->cert_path || !s->key_path || !s->journal_path) {
		rc = CONTROLLER_ERR_NOMEM;
		goto fail;
	}
	if ((rc = split_servers(s)) != 0) {
		sync_log(s, "sync: server '%s' is not HOST:PORT (or several separated by commas)",
		         cfg->server);
		goto fail;
	}
	select_server(s, 0); /* the first of the list first */
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
