/*
 * sync_admit.c — connections taken from the listener and admitted to their TLS handshake.
 *
 * A reconnect storm (a network cut healed, a server restart) brings every gate at once. At
 * most max_handshakes handshakes run at a time, so that each finishes within its deadline
 * instead of all sharing the loop and all missing it. The others are accepted at once and
 * wait here, in the order they came, their deadline not started: left in the kernel's
 * accept queue instead, they overflowed it (4 096) and their TCP retries (1, 3, 7, 15 s...)
 * left the server idle while thousands waited (docs/sync-server.md, "Reconnect storms").
 * A peer that left while it waited (a gate's own setup timeout, 15 s, closes it) is closed
 * without a handshake, which would cost the server its elliptic-curve work for nobody.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "sync_internal.h"

struct sync_waiting {
	TAILQ_ENTRY(sync_waiting) link;
	evutil_socket_t fd;
	char peer[64];
};

/* The listener takes connections again unless the waiting queue is full or it rests. */
static void accept_resume(struct server_sync *s)
{
	if (s->listener && !s->stopping && !s->accept_paused && !s->accept_resting)
		evconnlistener_enable(s->listener);
}

static void accept_retry(evutil_socket_t fd, short what, void *arg)
{
	struct server_sync *s = arg;
	(void)fd;
	(void)what;
	s->accept_resting = 0;
	accept_resume(s);
}

/* The peer closed or reset its side while it waited: no handshake can finish. Its
 * ClientHello may still be unread: POLLRDHUP tells the end of the stream behind it. */
static int peer_left(evutil_socket_t fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static void start(struct server_sync *s, evutil_socket_t fd, const char *peer)
{
	if (sync_conn_start(s, fd, peer) != 0) {
		sync_log(s, LOG_ERR, "conn from %s: out of memory, closed", peer);
		evutil_closesocket(fd);
	}
}

/* Runs from the loop (never inside the closing of the connection that freed a slot). */
static void admit_waiting(evutil_socket_t unused, short what, void *arg)
{
	struct server_sync *s = arg;
	struct sync_waiting *w;
	(void)unused;
	(void)what;
	while (!s->stopping && s->stats.handshakes < s->max_handshakes &&
	       (w = TAILQ_FIRST(&s->waiting)) != NULL) {
		TAILQ_REMOVE(&s->waiting, w, link);
		s->stats.waiting--;
		if (peer_left(w->fd)) {
			s->stats.left_waiting++;
			sync_log(s, LOG_DEBUG, "conn from %s: left while waiting for a handshake",
			         w->peer);
			evutil_closesocket(w->fd);
		} else {
			start(s, w->fd, w->peer);
		}
		free(w);
	}
	if (s->accept_paused && s->stats.waiting < s->max_waiting) {
		s->accept_paused = 0;
		accept_resume(s);
	}
}

int sync_admit_init(struct server_sync *s)
{
	TAILQ_INIT(&s->waiting);
	s->accept_retry_ev = evtimer_new(s->base, accept_retry, s);
	s->admit_ev = event_new(s->base, -1, 0, admit_waiting, s);
	return s->accept_retry_ev && s->admit_ev ? 0 : SERVER_ERR_NOMEM;
}

static void peer_name(const struct sockaddr *sa, int len, char *out, size_t cap)
{
	snprintf(out, cap, "?");
	if (sa && sa->sa_family == AF_INET && len >= (int)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(in->sin_port));
	} else if (sa && sa->sa_family == AF_INET6 && len >= (int)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		char ip[INET6_ADDRSTRLEN];
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			/* an IPv4 gate on the [::] socket: named as IPv4, like on 0.0.0.0 */
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], ip, sizeof(ip));
			snprintf(out, cap, "%s:%u", ip, ntohs(in6->sin6_port));
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
			snprintf(out, cap, "[%s]:%u", ip, ntohs(in6->sin6_port));
		}
	}
}

void sync_admit_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                       void *arg)
{
	struct server_sync *s = arg;
	char peer[64];
	(void)l;

	peer_name(sa, len, peer, sizeof(peer));
	s->stats.accepted++;
	/* Pushes are small and latency matters more than packet count (DESIGN.md s.9). */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->stats.handshakes < s->max_handshakes && TAILQ_EMPTY(&s->waiting)) {
		start(s, fd, peer);
		return;
	}
	struct sync_waiting *w = calloc(1, sizeof(*w));
	if (!w) {
		sync_log(s, LOG_ERR, "conn from %s: out of memory, closed", peer);
		evutil_closesocket(fd);
		return;
	}
	w->fd = fd;
	snprintf(w->peer, sizeof(w->peer), "%s", peer);
	TAILQ_INSERT_TAIL(&s->waiting, w, link);
	s->stats.waited++;
	if (++s->stats.waiting > s->stats.waiting_peak)
		s->stats.waiting_peak = s->stats.waiting;
	if (s->stats.waiting >= s->max_waiting && !s->accept_paused) {
		/* beyond, the kernel's accept queue holds them (and each waiting one a
		 * descriptor: the queue must not take those the sessions need) */
		evconnlistener_disable(s->listener);
		s->accept_paused = 1;
		s->stats.accept_pauses++;
	}
}

void sync_admit_accept_error(struct evconnlistener *l, void *arg)
{
	struct server_sync *s = arg;
	int err = EVUTIL_SOCKET_ERROR();
	(void)l;
	/* EMFILE and friends: keep serving the connections we have. The connection left in
	 * the queue would wake the listener again at once (a loop spinning on accept and
	 * logging): it rests a second, the gates waiting in the queue meanwhile. */
	sync_log(s, LOG_WARNING, "accept failed: %s; accepting again in 1 s",
	         evutil_socket_error_to_string(err));
	if (s->listener && !s->accept_resting) {
		evconnlistener_disable(s->listener);
		s->accept_resting = 1;
		struct timeval one_s = {1, 0};
		event_add(s->accept_retry_ev, &one_s);
	}
}

void sync_server_handshake_begins(struct server_sync *s)
{
	if (++s->stats.handshakes > s->stats.handshakes_peak)
		s->stats.handshakes_peak = s->stats.handshakes;
}

void sync_server_handshake_ends(struct server_sync *s)
{
	s->stats.handshakes--;
	if (!TAILQ_EMPTY(&s->waiting) && !s->stopping)
		event_active(s->admit_ev, EV_TIMEOUT, 1);
}

void sync_admit_stop(struct server_sync *s)
{
	struct sync_waiting *w;
	if (s->accept_retry_ev)
		event_del(s->accept_retry_ev);
	if (s->admit_ev)
		event_del(s->admit_ev);
	while ((w = TAILQ_FIRST(&s->waiting)) != NULL) { /* they dial again, elsewhere or later */
		TAILQ_REMOVE(&s->waiting, w, link);
		evutil_closesocket(w->fd);
		free(w);
	}
	s->stats.waiting = 0;
}

void sync_admit_free(struct server_sync *s)
{
	sync_admit_stop(s);
	if (s->accept_retry_ev)
		event_free(s->accept_retry_ev);
	if (s->admit_ev)
		event_free(s->admit_ev);
}
