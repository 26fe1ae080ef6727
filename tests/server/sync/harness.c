/*
 * harness.c — see harness.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "harness.h"

static void capture(void *arg, int priority, const char *line)
{
	struct harness *h = arg;
	size_t len = strlen(line);

	if (!h->quiet || priority <= LOG_ERR)
		fprintf(stderr, "[server] %s\n", line);
	pthread_mutex_lock(&h->log_lock);
	if (h->log_len + len + 2 > h->log_cap) {
		size_t cap = h->log_cap ? h->log_cap * 2 : 65536;
		while (cap < h->log_len + len + 2)
			cap *= 2;
		char *g = realloc(h->log, cap);
		if (g) {
			h->log = g;
			h->log_cap = cap;
		}
	}
	if (h->log_len + len + 2 <= h->log_cap) {
		memcpy(h->log + h->log_len, line, len);
		h->log_len += len;
		h->log[h->log_len++] = '\n';
		h->log[h->log_len] = '\0';
	}
	pthread_mutex_unlock(&h->log_lock);
}

int harness_log_has(struct harness *h, const char *needle, int timeout_ms)
{
	double deadline = sim_now() + timeout_ms / 1000.0;
	for (;;) {
		pthread_mutex_lock(&h->log_lock);
		int found = h->log && strstr(h->log, needle) != NULL;
		pthread_mutex_unlock(&h->log_lock);
		if (found)
			return 1;
		if (sim_now() >= deadline)
			return 0;
		usleep(5000);
	}
}

int harness_init(struct harness *h)
{
	static int threads_ready;

	memset(h, 0, sizeof(*h));
	if (!threads_ready) {
		if (evthread_use_pthreads() != 0)
			return -1;
		threads_ready = 1;
	}
	pthread_mutex_init(&h->log_lock, NULL);
	if (pki_create(&h->pki, "main") != 0)
		return -1;
	h->mem = mem_backend_new();
	if (!h->mem)
		return -1;
	mem_backend_ops(h->mem, &h->cfg.backend);
	h->cfg.ca_path = h->pki.ca_cert;
	h->cfg.cert_path = h->pki.server_cert;
	h->cfg.key_path = h->pki.server_key;
	h->cfg.log = capture;
	h->cfg.log_arg = h;
	h->cfg.log_level = LOG_DEBUG;
	h->cfg.poll_interval_ms = 50;
	return 0;
}

static void *loop_main(void *arg)
{
	struct harness *h = arg;
	event_base_dispatch(h->base);
	return NULL;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	(void)fd;
	(void)what;
	server_sync_stop(h->srv);
	struct timeval tv = {0, 10000};
	event_add(h->watch_ev, &tv);
}

/* the loop ends when the server has closed everything */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct harness *h = arg;
	(void)fd;
	(void)what;
	if (server_sync_stopped(h->srv)) {
		event_del(h->watch_ev);
		event_base_loopexit(h->base, NULL);
	}
}

int harness_start(struct harness *h)
{
	h->base = event_base_new();
	if (!h->base)
		return -1;
	if (server_sync_new(&h->srv, h->base, &h->cfg) != 0)
		return -1;
	if (server_sync_listen(h->srv, "127.0.0.1:0") != 0)
		return -1;
	h->port = server_sync_port(h->srv);
	h->stop_ev = event_new(h->base, -1, 0, on_stop, h);
	h->watch_ev = event_new(h->base, -1, EV_PERSIST, on_watch, h);
	if (!h->stop_ev || !h->watch_ev)
		return -1;
	if (pthread_create(&h->thread, NULL, loop_main, h) != 0)
		return -1;
	h->running = 1;
	return 0;
}

struct call {
	struct harness *h;
	void (*fn)(struct server_sync *, void *);
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void on_call(evutil_socket_t fd, short what, void *arg)
{
	struct call *c = arg;
	(void)fd;
	(void)what;
	c->fn(c->h->srv, c->arg);
	pthread_mutex_lock(&c->lock);
	c->done = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void harness_call(struct harness *h, void (*fn)(struct server_sync *, void *), void *arg)
{
	struct call c = {.h = h, .fn = fn, .arg = arg};
	struct timeval now = {0, 0};

	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	event_base_once(h->base, -1, EV_TIMEOUT, on_call, &c, &now);
	pthread_mutex_lock(&c.lock);
	while (!c.done)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
}

static void do_adopt(struct server_sync *s, void *arg)
{
	int *fd = arg;
	if (server_sync_adopt(s, *fd, "socketpair") != 0)
		*fd = -1;
}

int harness_adopt(struct harness *h, int fd)
{
	harness_call(h, do_adopt, &fd);
	return fd < 0 ? -1 : 0;
}

static void do_stats(struct server_sync *s, void *arg)
{
	server_sync_get_stats(s, arg);
}

void harness_stats(struct harness *h, struct server_sync_stats *out)
{
	if (h->running)
		harness_call(h, do_stats, out);
	else
		*out = h->final_stats;
}

void harness_stop(struct harness *h)
{
	if (!h->running)
		return;
	event_active(h->stop_ev, EV_TIMEOUT, 1);
	pthread_join(h->thread, NULL);
	h->running = 0;
	server_sync_get_stats(h->srv, &h->final_stats);
}

void harness_free(struct harness *h)
{
	harness_stop(h);
	server_sync_free(h->srv);
	if (h->stop_ev)
		event_free(h->stop_ev);
	if (h->watch_ev)
		event_free(h->watch_ev);
	if (h->base)
		event_base_free(h->base);
	mem_backend_free(h->mem);
	pki_remove(&h->pki);
	free(h->log);
	pthread_mutex_destroy(&h->log_lock);
	memset(h, 0, sizeof(*h));
}

int harness_controller(struct harness *h, struct sim_ctl *c, const char *cn, uint32_t site,
                       uint16_t sector)
{
	char cert[PKI_PATH_MAX];
	if (pki_device(&h->pki, cn, cert) != 0)
		return -1;
	if (site != 0)
		mem_backend_add_device(h->mem, cn, site, sector);
	return sim_init(c, cn, sector, h->pki.ca_cert, cert, h->pki.device_key);
}
