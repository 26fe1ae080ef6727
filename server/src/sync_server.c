/*
 * sync_server.c — the sync server: listening, the sectors and their controllers, polling
 * the backend for new list versions, stopping, logging.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "link/addr.h"
#include "sync_internal.h"

#ifndef CITYPASS_VERSION
#define CITYPASS_VERSION "0.1.0"
#endif

static const char *priority_name(int priority)
{
	switch (priority) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void sync_log(struct server_sync *s, int priority, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (priority > s->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->log) {
		s->log(s->log_arg, priority, line);
		return;
	}
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s citypass-server %s: %s\n", stamp, priority_name(priority), line);
}

static struct timeval ms_to_tv(unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

/* libevent's common timeouts keep thousands of identical timers in a queue instead of the
 * heap: resetting the idle timer on every frame stays O(1). */
static const struct timeval *common_timeout(struct event_base *base, unsigned ms)
{
	struct timeval tv = ms_to_tv(ms);
	const struct timeval *common = event_base_init_common_timeout(base, &tv);
	return common;
}

/* --- sectors ---------------------------------------------------------------------------- */

struct sync_sector *sync_sector_get(struct server_sync *s, uint16_t sector)
{
	struct sync_sector **grown, *sec;

	for (size_t i = 0; i < s->n_sectors; i++)
		if (s->sectors[i]->sector == sector)
			return s->sectors[i];
	sec = calloc(1, sizeof(*sec));
	if (!sec)
		return NULL;
	grown = realloc(s->sectors, (s->n_sectors + 1) * sizeof(*grown));
	if (!grown) {
		free(sec);
		return NULL;
	}
	s->sectors = grown;
	sec->sector = sector;
	TAILQ_INIT(&sec->conns);
	sync_cache_init(&sec->cache, sector);
	s->sectors[s->n_sectors++] = sec;
	return sec;
}

void sync_sector_refresh(struct server_sync *s, struct sync_sector *sec)
{
	uint64_t latest = 0;
	unsigned notified = 0;
	int rc = s->be.ops->list_latest(s->be.ctx, sec->sector, &latest);

	if (rc) {
		sync_log(s, LOG_ERR, "sector %u: asking the newest list version failed (error %d)",
		         sec->sector, rc);
		return;
	}
	if (!sec->polled) {
		/* first look at this sector (its first controller's Hello): nothing to push */
		sec->polled = 1;
		sec->latest = latest;
		return;
	}
	if (latest <= sec->latest)
		return;
	sec->latest = latest;
	clock_gettime(CLOCK_MONOTONIC, &sec->noticed); /* issue 15: the push latency's start */
	s->stats.published++;

	struct sync_conn *c = TAILQ_FIRST(&sec->conns), *next;
	for (; c; c = next) {
		/* captured first: notifying may close c and unlink it */
		next = TAILQ_NEXT(c, sector_link);
		if (sync_conn_notify(c, latest) == 0)
			notified++;
	}
	sync_log(s, LOG_INFO, "sector %u: version %llu published, %u controller(s) notified",
	         sec->sector, (unsigned long long)latest, notified);
}

/* Issue 11: an agent rotated or retired a card key version: every connected gate gets its
 * sector's keys now (a gate connecting later gets them in its Welcome). */
static void refresh_card_keys(struct server_sync *s)
{
	int64_t stamp = 0;
	if (!s->be.ops->card_keys_stamp || s->be.ops->card_keys_stamp(s->be.ctx, &stamp) != 0)
		return;
	if (!s->card_keys_polled || stamp == s->card_keys_stamp) {
		s->card_keys_polled = 1;
		s->card_keys_stamp = stamp;
		return;
	}
	s->card_keys_stamp = stamp;
	unsigned sent = 0;
	struct sync_conn *c, *next;
	for (c = TAILQ_FIRST(&s->conns); c; c = next) {
		next = TAILQ_NEXT(c, all_link);
		if (sync_conn_send_card_keys(c) == 0)
			sent++;
	}
	sync_log(s, LOG_INFO, "card keys changed: sent to %u controller(s)", sent);
}

static void chain_msg_free(struct server_sync *s)
{
	free(s->chain_msgs);
	free(s->chain_ptrs);
	s->chain_msgs = NULL;
	s->chain_ptrs = NULL;
	server_list_chain_free(&s->chain);
	citypass__key_chain__init(&s->chain_msg);
}

/* Issue 11: the list key rotated (a new statement in DATA/keys/list-chain): every gate that
 * follows chains gets them now, before the lists the new key signs (refreshed right after
 * this in the same poll); a gate connecting later gets them in its Welcome. */
static void refresh_key_chain(struct server_sync *s, int push)
{
	struct server_list_chain c;
	if (!s->be.ops->list_chain)
		return;
	int rc = s->be.ops->list_chain(s->be.ctx, &c);
	if (rc) {
		sync_log(s, LOG_ERR,
		         "list key chain unreadable (error %d): gates keep the key they hold", rc);
		return;
	}
	if (c.n == s->chain.n) {
		server_list_chain_free(&c);
		return;
	}
	Citypass__KeyStatement *msgs = calloc(c.n ? c.n : 1, sizeof(*msgs));
	Citypass__KeyStatement **ptrs = calloc(c.n ? c.n : 1, sizeof(*ptrs));
	if (!msgs || !ptrs) {
		free(msgs);
		free(ptrs);
		server_list_chain_free(&c);
		return;
	}
	chain_msg_free(s);
	s->chain = c;
	for (size_t i = 0; i < c.n; i++) {
		citypass__key_statement__init(&msgs[i]);
		msgs[i].text.data = (uint8_t *)c.s[i].text;
		msgs[i].text.len = c.s[i].text_len;
		msgs[i].old_signature.data = (uint8_t *)c.s[i].old_sig;
		msgs[i].old_signature.len = c.s[i].old_sig_len;
		msgs[i].new_signature.data = (uint8_t *)c.s[i].new_sig;
		msgs[i].new_signature.len = c.s[i].new_sig_len;
		ptrs[i] = &msgs[i];
	}
	s->chain_msgs = msgs;
	s->chain_ptrs = ptrs;
	s->chain_msg.n_statements = c.n;
	s->chain_msg.statements = ptrs;
	if (!push)
		return;
	unsigned sent = 0;
	struct sync_conn *conn, *next;
	for (conn = TAILQ_FIRST(&s->conns); conn; conn = next) {
		next = TAILQ_NEXT(conn, all_link);
		if (sync_conn_send_key_chain(conn) == 0)
			sent++;
	}
	sync_log(s, LOG_INFO, "list key rotated (%zu statement(s)): sent to %u controller(s)", c.n,
	         sent);
}

/* Issue 11: the device CA's rotations, once at start (a CA rotation is followed by a
 * restart: the server's own trust anchors change too). */
static void load_ca_chain(struct server_sync *s)
{
	citypass__ca_chain__init(&s->ca_chain_msg);
	if (!s->be.ops->ca_chain)
		return;
	int rc = s->be.ops->ca_chain(s->be.ctx, &s->ca_chain);
	if (rc) {
		sync_log(s, LOG_ERR, "device CA chain unreadable (error %d): not sent to gates",
		         rc);
		return;
	}
	const size_t n = s->ca_chain.n;
	s->ca_msgs = calloc(n ? n : 1, sizeof(*s->ca_msgs));
	s->ca_ptrs = calloc(n ? n : 1, sizeof(*s->ca_ptrs));
	if (!s->ca_msgs || !s->ca_ptrs) {
		server_ca_chain_free(&s->ca_chain);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		citypass__ca_announcement__init(&s->ca_msgs[i]);
		s->ca_msgs[i].cross_certificate.data = s->ca_chain.a[i].cross;
		s->ca_msgs[i].cross_certificate.len = s->ca_chain.a[i].cross_len;
		s->ca_msgs[i].ca_certificate.data = s->ca_chain.a[i].ca;
		s->ca_msgs[i].ca_certificate.len = s->ca_chain.a[i].ca_len;
		s->ca_ptrs[i] = &s->ca_msgs[i];
	}
	s->ca_chain_msg.n_announcements = n;
	s->ca_chain_msg.announcements = s->ca_ptrs;
}

static void changes_listen(struct server_sync *s);

static void poll_published(evutil_socket_t fd, short what, void *arg)
{
	struct server_sync *s = arg;
	(void)fd;
	(void)what;
	refresh_key_chain(s, 1);
	for (size_t i = 0; i < s->n_sectors; i++)
		if (s->sectors[i]->n_conns > 0)
			sync_sector_refresh(s, s->sectors[i]);
	refresh_card_keys(s);
	if (!s->changes_ev && !s->stopping)
		changes_listen(s); /* again, after a lost listening connection */
}

static void on_changes(evutil_socket_t fd, short what, void *arg);

/* Listen to the backend's announcements when it has them: the poll becomes a backstop. */
static void changes_listen(struct server_sync *s)
{
	int fd = -1;
	if (s->changes_ev || !s->be.ops->changes_fd || s->be.ops->changes_fd(s->be.ctx, &fd) != 0)
		return;
	s->changes_ev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_changes, s);
	if (!s->changes_ev || event_add(s->changes_ev, NULL) != 0) {
		if (s->changes_ev)
			event_free(s->changes_ev);
		s->changes_ev = NULL;
		return;
	}
	unsigned ms = s->poll_interval_ms > SERVER_SYNC_NOTIFIED_POLL_MS
	                      ? s->poll_interval_ms
	                      : SERVER_SYNC_NOTIFIED_POLL_MS;
	struct timeval tv = ms_to_tv(ms);
	event_add(s->poll_ev, &tv);
	sync_log(s, LOG_INFO, "the database announces publications: pushing them as they come");
}

static void on_changes(evutil_socket_t fd, short what, void *arg)
{
	struct server_sync *s = arg;
	(void)fd;
	(void)what;
	int rc = s->be.ops->changes_drain(s->be.ctx);
	if (rc > 0) {
		poll_published(-1, 0, s);
	} else if (rc < 0) {
		/* the listening connection is gone: poll again until it is back */
		sync_log(s, LOG_WARNING,
		         "the database's announcements stopped (error %d): polling every %u ms "
		         "until they are back",
		         rc, s->poll_interval_ms);
		event_free(s->changes_ev);
		s->changes_ev = NULL;
		struct timeval tv = ms_to_tv(s->poll_interval_ms);
		event_add(s->poll_ev, &tv);
	}
}

/* Revocation is checked at every handshake; this also ends sessions already open. One
 * indexed lookup per connected device every few seconds. */
static void recheck_devices(evutil_socket_t fd, short what, void *arg)
{
	struct server_sync *s = arg;
	struct sync_conn *c, *next;
	(void)fd;
	(void)what;
	for (c = TAILQ_FIRST(&s->conns); c; c = next) {
		next = TAILQ_NEXT(c, all_link);
		sync_conn_recheck(c);
	}
}

void server_sync_check_published(struct server_sync *s)
{
	if (s && !s->stopping)
		poll_published(-1, 0, s);
}

/* --- lifecycle -------------------------------------------------------------------------- */

int server_sync_new(struct server_sync **out, struct event_base *base,
                    const struct server_sync_config *cfg)
{
	struct server_sync *s;
	char err[256] = "";
	int rc;

	if (!out || !base || !cfg || !cfg->backend.ops || !cfg->ca_path || !cfg->cert_path ||
	    !cfg->key_path)
		return SERVER_ERR_ARG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return SERVER_ERR_NOMEM;
	s->base = base;
	s->be = cfg->backend;
	s->log = cfg->log;
	s->log_gate = cfg->log_gate;
	s->log_arg = cfg->log_arg;
	s->log_level = cfg->log_level ? cfg->log_level : LOG_INFO;
	s->handshake_timeout_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms
	                                                    : SERVER_SYNC_HANDSHAKE_TIMEOUT_MS;
	s->hello_timeout_ms =
	        cfg->hello_timeout_ms ? cfg->hello_timeout_ms : SERVER_SYNC_HELLO_TIMEOUT_MS;
	s->idle_timeout_ms =
	        cfg->idle_timeout_ms ? cfg->idle_timeout_ms : SERVER_SYNC_IDLE_TIMEOUT_MS;
	s->poll_interval_ms =
	        cfg->poll_interval_ms ? cfg->poll_interval_ms : SERVER_SYNC_POLL_INTERVAL_MS;
	s->stop_drain_ms = cfg->stop_drain_ms ? cfg->stop_drain_ms : SERVER_SYNC_STOP_DRAIN_MS;
	s->max_chain = cfg->max_chain ? cfg->max_chain : SERVER_SYNC_MAX_CHAIN;
	s->max_handshakes = cfg->max_handshakes ? cfg->max_handshakes : SERVER_SYNC_MAX_HANDSHAKES;
	s->max_waiting = cfg->max_waiting ? cfg->max_waiting : SERVER_SYNC_MAX_WAITING;
	s->device_recheck_ms =
	        cfg->device_recheck_ms ? cfg->device_recheck_ms : SERVER_SYNC_DEVICE_RECHECK_MS;
	if (s->max_chain > SYNC_CACHE_DELTAS)
		s->max_chain = SYNC_CACHE_DELTAS;
	s->max_frame = cfg->max_frame;
	snprintf(s->server_version, sizeof(s->server_version), "%s",
	         cfg->server_version ? cfg->server_version : "citypass-server " CITYPASS_VERSION);
	TAILQ_INIT(&s->conns);

	struct link_tls_params tp = {
	        .role = LINK_TLS_SERVER,
	        .ca_path = cfg->ca_path,
	        .cert_path = cfg->cert_path,
	        .key_path = cfg->key_path,
	        .crl_path = cfg->crl_path,
	        .ticket_lifetime_s = cfg->ticket_lifetime_s ? cfg->ticket_lifetime_s
	                                                    : SERVER_SYNC_TICKET_LIFETIME_S,
	};
	rc = link_tls_ctx_new(&s->tls, &tp, err, sizeof(err));
	if (rc) {
		sync_log(s, LOG_ERR, "TLS setup failed: %s", err);
		free(s);
		return SERVER_ERR_CRYPTO;
	}
	s->tv_handshake = common_timeout(base, s->handshake_timeout_ms);
	s->tv_hello = common_timeout(base, s->hello_timeout_ms);
	s->tv_idle = common_timeout(base, s->idle_timeout_ms);
	s->poll_ev = event_new(base, -1, EV_PERSIST, poll_published, s);
	s->recheck_ev = event_new(base, -1, EV_PERSIST, recheck_devices, s);
	if (!s->tv_handshake || !s->tv_hello || !s->tv_idle || !s->poll_ev || !s->recheck_ev ||
	    sync_admit_init(s) != 0) {
		server_sync_free(s);
		return SERVER_ERR_NOMEM;
	}
	rc = sync_ingest_start(s, cfg->ingest_backend.ops ? &cfg->ingest_backend : &cfg->backend);
	if (rc) {
		sync_log(s, LOG_ERR, "cannot start the ingest thread (error %d)", rc);
		server_sync_free(s);
		return rc;
	}
	refresh_key_chain(s, 0);
	load_ca_chain(s);
	struct timeval poll_tv = ms_to_tv(s->poll_interval_ms);
	event_add(s->poll_ev, &poll_tv);
	changes_listen(s);
	struct timeval recheck_tv = ms_to_tv(s->device_recheck_ms);
	event_add(s->recheck_ev, &recheck_tv);
	*out = s;
	return 0;
}

int server_sync_listen(struct server_sync *s, const char *addr_port)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	struct link_addr a;

	if (!s || !addr_port || s->listener || s->stopping)
		return SERVER_ERR_ARG;
	/* "1.2.3.4:P" or "[v6]:P" (link/addr.h), P from 0: any free port */
	if (link_addr_parse(addr_port, LINK_ADDR_NUMERIC | LINK_ADDR_ANY_PORT, &a) != 0 ||
	    link_addr_sockaddr(&a, &ss, &len) != 0)
		return SERVER_ERR_ARG;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, zero = 0;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::] takes IPv4 gates too, whatever the system's default (net.ipv6.bindv6only): one
	 * listener serves both families; a specific v6 address serves IPv6 only anyway */
	if (fd >= 0 && ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
		sync_log(s, LOG_ERR, "cannot listen on %s: %s", addr_port, strerror(errno));
		if (fd >= 0)
			close(fd);
		return SERVER_ERR_IO;
	}
	s->listener =
	        evconnlistener_new(s->base, sync_admit_accept, s, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!s->listener) {
		sync_log(s, LOG_ERR, "cannot listen on %s: out of memory", addr_port);
		close(fd);
		return SERVER_ERR_IO;
	}
	evconnlistener_set_error_cb(s->listener, sync_admit_accept_error);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
		s->port = ntohs(bound.ss_family == AF_INET6
		                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
		                        : ((struct sockaddr_in *)&bound)->sin_port);
	if (ss.ss_family == AF_INET6)
		sync_log(s, LOG_INFO, "listening on [%s]:%u", a.host, s->port);
	else
		sync_log(s, LOG_INFO, "listening on %s:%u", a.host, s->port);
	return 0;
}

unsigned server_sync_port(const struct server_sync *s)
{
	return s ? s->port : 0;
}

int server_sync_adopt(struct server_sync *s, int fd, const char *peer)
{
	if (!s || fd < 0 || s->stopping)
		return SERVER_ERR_ARG;
	if (evutil_make_socket_nonblocking(fd) != 0)
		return SERVER_ERR_IO;
	s->stats.accepted++;
	return sync_conn_start(s, fd, peer ? peer : "adopted") == 0 ? 0 : SERVER_ERR_NOMEM;
}

static void log_summary(struct server_sync *s)
{
	sync_log(s, LOG_INFO,
	         "stopped: %llu connection(s) accepted, %llu session(s), %llu TLS session(s) "
	         "resumed, %llu batch(es) / %llu event(s) acknowledged, %llu update(s) sent, "
	         "%llu refused handshake(s), %llu closed for bad input, %llu timeout(s)",
	         (unsigned long long)s->stats.accepted, (unsigned long long)s->stats.sessions,
	         (unsigned long long)s->stats.resumed, (unsigned long long)s->stats.batches,
	         (unsigned long long)s->stats.events, (unsigned long long)s->stats.updates,
	         (unsigned long long)s->stats.refused_handshake,
	         (unsigned long long)s->stats.closed_bad_input,
	         (unsigned long long)s->stats.timeouts);
}

void sync_server_conn_gone(struct server_sync *s)
{
	if (s->stopping && !s->stopped && TAILQ_EMPTY(&s->conns)) {
		s->stopped = 1;
		log_summary(s);
	}
}

void server_sync_stop(struct server_sync *s)
{
	struct sync_conn *c, *next;

	if (!s || s->stopping)
		return;
	s->stopping = 1;
	sync_log(s, LOG_INFO, "stopping: %u connection(s) to close", s->stats.connections);
	if (s->listener) {
		evconnlistener_free(s->listener);
		s->listener = NULL;
	}
	event_del(s->poll_ev);
	event_del(s->recheck_ev);
	sync_admit_stop(s);
	if (s->changes_ev)
		event_del(s->changes_ev);
	/* the transaction under way ends; queued batches go unacknowledged (sent again) */
	sync_ingest_stop(s);
	for (c = TAILQ_FIRST(&s->conns); c; c = next) {
		next = TAILQ_NEXT(c, all_link);
		sync_conn_shutdown(c);
	}
	sync_server_conn_gone(s);
}

int server_sync_stopped(const struct server_sync *s)
{
	return s ? s->stopped : 1;
}

void server_sync_get_stats(const struct server_sync *s, struct server_sync_stats *out)
{
	if (s && out) {
		*out = s->stats;
		sync_ingest_counters(s, &out->ingest_groups, &out->ingest_busy);
	}
}

void server_sync_free(struct server_sync *s)
{
	struct sync_conn *c;

	if (!s)
		return;
	s->stopping = 1;
	s->stopped = 1;      /* no summary from conn_gone: free is not a stop */
	sync_ingest_free(s); /* gives back the connections' references first */
	while ((c = TAILQ_FIRST(&s->conns)) != NULL)
		sync_conn_destroy(c);
	if (s->listener)
		evconnlistener_free(s->listener);
	if (s->poll_ev)
		event_free(s->poll_ev);
	if (s->recheck_ev)
		event_free(s->recheck_ev);
	sync_admit_free(s);
	if (s->changes_ev)
		event_free(s->changes_ev);
	for (size_t i = 0; i < s->n_sectors; i++) {
		sync_cache_clear(&s->sectors[i]->cache);
		free(s->sectors[i]);
	}
	free(s->sectors);
	chain_msg_free(s);
	sync_figures_free(s);
	free(s->ca_msgs);
	free(s->ca_ptrs);
	server_ca_chain_free(&s->ca_chain);
	link_tls_ctx_free(s->tls);
	free(s);
}
