/*
 * sim_controller.c — see sim_controller.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mem_backend.h"
#include "proto/error.h"
#include "proto/frame.h"
#include "sim_controller.h"

double sim_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int sim_init(struct sim_ctl *c, const char *id, uint16_t sector, const char *ca, const char *cert,
             const char *key)
{
	return sim_init_named(c, id, sector, ca, cert, key, NULL);
}

int sim_init_named(struct sim_ctl *c, const char *id, uint16_t sector, const char *ca,
                   const char *cert, const char *key, const char *server_name)
{
	char err[256];
	struct link_tls_params p = {
	        .role = LINK_TLS_CLIENT,
	        .ca_path = ca,
	        .cert_path = cert,
	        .key_path = key,
	        .server_name = server_name ? server_name : "localhost",
	};

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	link_tls_ticket_init(&c->ticket);
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->sector = sector;
	if (link_tls_ctx_new(&c->tls, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "sim %s: %s\n", id, err);
		return -1;
	}
	return 0;
}

static void sim_reset_conn(struct sim_ctl *c)
{
	if (c->fd >= 0) {
		link_tls_session_free(&c->sess);
		close(c->fd);
	}
	c->fd = -1;
	proto_frame_decoder_free(c->dec);
	c->dec = NULL;
	c->out_len = 0;
	c->asm_len = 0;
	c->asm_next = 0;
	c->handshaken = 0;
	c->want_write = 0;
}

void sim_free(struct sim_ctl *c)
{
	sim_reset_conn(c);
	free(c->out);
	free(c->asm_buf);
	link_tls_ticket_free(&c->ticket);
	link_tls_ctx_free(c->tls);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void sim_disconnect(struct sim_ctl *c)
{
	sim_reset_conn(c);
	c->closed = 1;
	snprintf(c->why, sizeof(c->why), "disconnected by the test");
}

int sim_connect_fd(struct sim_ctl *c, int fd)
{
	sim_reset_conn(c);
	c->closed = 0;
	c->why[0] = '\0';
	c->welcomed = 0;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->fd = fd;
	c->dec = proto_frame_decoder_new(0);
	c->resumed = 0;
	if (!c->dec || link_tls_session_init(&c->sess, c->tls, fd, NULL, NULL) != 0 ||
	    link_tls_session_offer_ticket(&c->sess, &c->ticket) != 0) {
		close(fd);
		c->fd = -1;
		return -1;
	}
	c->want_write = 1; /* the ClientHello, once the socket is writable (connected) */
	return 0;
}

/* A TCP connection to the loopback's port; `nonblock`: connect() may still be under way. */
static int dial_loopback(struct sim_ctl *c, unsigned port, int nonblock)
{
	struct sockaddr_in sin;
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 &&
	    !(nonblock && errno == EINPROGRESS)) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return sim_connect_fd(c, fd);
}

/* loopback: the blocking connect returns at once */
int sim_connect(struct sim_ctl *c, unsigned port)
{
	return dial_loopback(c, port, 0);
}

int sim_dial(struct sim_ctl *c, unsigned port)
{
	return dial_loopback(c, port, 1);
}

static void sim_fail(struct sim_ctl *c, const char *what, int rc)
{
	char err[128];
	if (c->closed)
		return;
	c->closed = 1;
	if (rc)
		snprintf(c->why, sizeof(c->why), "%s: %s", what,
		         link_tls_strerror(rc, err, sizeof(err)));
	else
		snprintf(c->why, sizeof(c->why), "%s", what);
}

int sim_send_raw(struct sim_ctl *c, const uint8_t *bytes, size_t len)
{
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		uint8_t *g = realloc(c->out, cap);
		if (!g)
			return -1;
		c->out = g;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, bytes, len);
	c->out_len += len;
	return 0;
}

int sim_send_frame(struct sim_ctl *c, const Citypass__Frame *f)
{
	size_t size = proto_frame_encoded_size(f);
	uint8_t *buf = malloc(size);
	long n;
	int rc;

	if (!buf)
		return -1;
	n = proto_frame_encode(f, 0, buf, size);
	rc = n < 0 ? -1 : sim_send_raw(c, buf, (size_t)n);
	free(buf);
	return rc;
}

int sim_send_hello(struct sim_ctl *c, const char *device_id)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__Hello h = CITYPASS__HELLO__INIT;
	Citypass__ListHeld held = CITYPASS__LIST_HELD__INIT;
	Citypass__ListHeld *lists[1] = {&held};

	held.sector = c->sector;
	held.version = c->held;
	held.format = 2; /* docs/list-format.md: what this server publishes */
	h.device_id = (char *)(device_id ? device_id : c->id);
	h.lists = lists;
	h.n_lists = 1;
	h.stats_acked_seq = c->stats_acked;
	h.consumption_acked_seq = c->cons_acked;
	h.software_version = "sim-controller";
	f.body_case = CITYPASS__FRAME__BODY_HELLO;
	f.hello = &h;
	return sim_send_frame(c, &f);
}

int sim_send_stats(struct sim_ctl *c, uint64_t first_seq, size_t count, uint32_t site,
                   uint16_t sector)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
	Citypass__StatEvent *ev = calloc(count ? count : 1, sizeof(*ev));
	Citypass__StatEvent **ptrs = calloc(count ? count : 1, sizeof(*ptrs));
	int rc = -1;

	const int64_t qh = (int64_t)time(NULL) - (int64_t)time(NULL) % 900;
	if (!ev || !ptrs)
		goto out;
	for (size_t i = 0; i < count; i++) {
		citypass__stat_event__init(&ev[i]);
		ev[i].seq = first_seq + i;
		ev[i].site = site;
		ev[i].gate = c->gate ? c->gate : 1;
		ev[i].sector = sector;
		ev[i].product = 10;
		ev[i].outcome = (i % 7) ? CITYPASS__OUTCOME__GRANTED : CITYPASS__OUTCOME__REFUSED;
		ev[i].reason = (i % 7) ? 0 : 2; /* granted: 0; refused: unknown pass */
		ev[i].quarter_hour = qh; /* now: the server refuses a time before enrolment */
		ptrs[i] = &ev[i];
	}
	b.stream = CITYPASS__STREAM__STATISTICS;
	b.stats = ptrs;
	b.n_stats = count;
	f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
	f.event_batch = &b;
	rc = sim_send_frame(c, &f);
out:
	free(ev);
	free(ptrs);
	return rc;
}

static void sim_list_update(struct sim_ctl *c, const Citypass__ListUpdate *u)
{
	int is_delta = u->kind == CITYPASS__LIST_UPDATE__KIND__DELTA;

	if (u->chunk_index != c->asm_next) {
		c->bad_updates++;
		c->asm_next = 0;
		c->asm_len = 0;
		return;
	}
	if (c->asm_len + u->data.len > c->asm_cap) {
		size_t cap = c->asm_len + u->data.len;
		uint8_t *g = realloc(c->asm_buf, cap);
		if (!g) {
			c->bad_updates++;
			return;
		}
		c->asm_buf = g;
		c->asm_cap = cap;
	}
	if (u->data.len)
		memcpy(c->asm_buf + c->asm_len, u->data.data, u->data.len);
	c->asm_len += u->data.len;
	c->asm_next++;
	if (c->asm_next < u->chunk_count)
		return;
	/* complete: check it as a controller would (here: against the backend's pattern) */
	int content_ok = c->check_update
	                         ? c->check_update(c, u, c->asm_buf, c->asm_len) == 0
	                         : mem_blob_matches((uint16_t)u->sector, is_delta, u->version,
	                                            c->asm_buf, c->asm_len, (size_t)u->total_size);
	if (c->asm_len != u->total_size || u->signature.len == 0 || !content_ok ||
	    u->sector != c->sector || (is_delta && u->base_version != c->held) ||
	    u->version <= c->held) {
		c->bad_updates++;
	} else {
		c->held = u->version;
		c->held_at = sim_now();
		if (is_delta)
			c->deltas++;
		else
			c->snapshots++;
	}
	c->asm_next = 0;
	c->asm_len = 0;
}

static void sim_handle(struct sim_ctl *c, const Citypass__Frame *f)
{
	switch (f->body_case) {
	case CITYPASS__FRAME__BODY_WELCOME:
		c->welcomed = 1;
		c->server_time = f->welcome->server_time;
		break;
	case CITYPASS__FRAME__BODY_LIST_UPDATE:
		sim_list_update(c, f->list_update);
		break;
	case CITYPASS__FRAME__BODY_LIST_PUBLISHED:
		c->published++;
		c->last_published = f->list_published->version;
		break;
	case CITYPASS__FRAME__BODY_EVENT_ACK:
		c->acks++;
		if (f->event_ack->stream == CITYPASS__STREAM__STATISTICS) {
			if (f->event_ack->acked_seq > c->stats_acked)
				c->stats_acked = f->event_ack->acked_seq;
		} else if (f->event_ack->acked_seq > c->cons_acked) {
			c->cons_acked = f->event_ack->acked_seq;
		}
		break;
	case CITYPASS__FRAME__BODY_ERROR:
		c->errors++;
		c->last_error = (int)f->error->code;
		snprintf(c->last_error_msg, sizeof(c->last_error_msg), "%s",
		         f->error->message ? f->error->message : "");
		break;
	default:
		c->bad_updates++;
		break;
	}
}

int sim_step(struct sim_ctl *c)
{
	uint8_t buf[LINK_TLS_RECORD_MAX];

	if (c->closed || c->fd < 0)
		return -1;
	c->want_write = 0;
	if (!c->handshaken) {
		int rc = link_tls_session_handshake(&c->sess);
		if (rc == LINK_TLS_WANT_WRITE)
			c->want_write = 1;
		if (rc == LINK_TLS_WANT_READ || rc == LINK_TLS_WANT_WRITE)
			return 0;
		if (rc) {
			sim_fail(c, "handshake failed", rc);
			return -1;
		}
		c->handshaken = 1;
		c->resumed = c->sess.resumed;
		if (link_tls_ticket_keep(&c->ticket, &c->sess) != 0) {
			sim_fail(c, "keeping the session ticket failed", 0);
			return -1;
		}
	}
	while (c->out_len > 0) {
		long w = link_tls_session_write(&c->sess, c->out, c->out_len);
		if (w > 0) {
			memmove(c->out, c->out + w, c->out_len - (size_t)w);
			c->out_len -= (size_t)w;
			continue;
		}
		if (w == LINK_TLS_WANT_WRITE || w == LINK_TLS_WANT_READ) {
			c->want_write = 1;
			break;
		}
		sim_fail(c, "write failed", (int)w);
		return -1;
	}
	for (;;) {
		long n = link_tls_session_read(&c->sess, buf, sizeof(buf));
		if (n == LINK_TLS_WANT_READ || n == LINK_TLS_WANT_WRITE)
			break;
		if (n == 0) {
			sim_fail(c, "closed by the server", 0);
			return -1;
		}
		if (n < 0) {
			sim_fail(c, "read failed", (int)n);
			return -1;
		}
		if (proto_frame_decoder_feed(c->dec, buf, (size_t)n) != 0)
			return -1;
		for (;;) {
			Citypass__Frame *f = NULL;
			int rc = proto_frame_next(c->dec, &f);
			if (rc == 0)
				break;
			if (rc < 0) {
				sim_fail(c, proto_strerror(rc), 0);
				return -1;
			}
			sim_handle(c, f);
			proto_frame_free_message(f);
		}
	}
	return 0;
}

short sim_poll_events(const struct sim_ctl *c)
{
	/* output queued before the handshake is done waits for it: asking for POLLOUT then
	 * would wake the caller at once, again and again (10 000 gates mid-handshake) */
	return (short)(POLLIN | (c->want_write || (c->handshaken && c->out_len) ? POLLOUT : 0));
}

int sim_wait(struct sim_ctl *c, int (*cond)(const struct sim_ctl *), int timeout_ms)
{
	double deadline = sim_now() + timeout_ms / 1000.0;

	for (;;) {
		int alive = sim_step(c) == 0;
		if (cond(c))
			return 1;
		if (!alive)
			return -1;
		double left = deadline - sim_now();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = c->fd, .events = sim_poll_events(c)};
		int ms = (int)(left * 1000.0) + 1;
		poll(&pfd, 1, ms > 50 ? 50 : ms);
	}
}

int sim_cond_handshaken(const struct sim_ctl *c)
{
	return c->handshaken;
}

int sim_cond_welcomed(const struct sim_ctl *c)
{
	return c->welcomed;
}

int sim_cond_closed(const struct sim_ctl *c)
{
	return c->closed;
}

static uint64_t session_target;
static int cond_target(const struct sim_ctl *c)
{
	return c->welcomed && c->held >= session_target;
}

int sim_session(struct sim_ctl *c, unsigned port, uint64_t version, int timeout_ms)
{
	if (sim_connect(c, port) != 0 || sim_send_hello(c, NULL) != 0)
		return -1;
	session_target = version;
	return sim_wait(c, cond_target, timeout_ms) == 1 ? 0 : -1;
}
