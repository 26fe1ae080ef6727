/*
 * controller/src/gate_bench.c — the bench gate backend: each change of the outputs is one
 * `gate READER relay=... led=... display=...` line on citypass-hil's control socket
 * (docs/hil.md). One connection is kept; it is re-opened once when the bench has gone
 * away, so a restarted bench is picked up at the next tap.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "controller/gate.h"
#include "controller/log.h"

#define BENCH_ANSWER_TIMEOUT_MS 1000

struct bench_gate {
	struct sockaddr_un addr;
	char reader[CONTROLLER_NAME_MAX];
	int fd;
};

static int bench_connect(struct bench_gate *b)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&b->addr, sizeof(b->addr)) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	b->fd = fd;
	return 0;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read the answer up to its "." line; 0 when it began with "ok". */
static int read_answer(int fd)
{
	char buf[1024];
	size_t len = 0;
	for (;;) {
		if (len >= 2 && (len == 2 ? memcmp(buf, ".\n", 2) == 0
		                          : memcmp(buf + len - 3, "\n.\n", 3) == 0))
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, BENCH_ANSWER_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (len == sizeof(buf) - 1)
			len = 0; /* keep only the tail: the "." line is what ends it */
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
	return strncmp(buf, "ok", 2) == 0 ? 0 : -1;
}

static int bench_set(void *ctx, const struct controller_gate_state *st)
{
	struct bench_gate *b = ctx;
	char line[512];
	int n = snprintf(line, sizeof(line), "gate %s relay=%s led=%s", b->reader,
	                 st->relay_open ? "open" : "closed", controller_led_name(st->led));
	if (st->display && n > 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " display=%s", st->display);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	/* the display text is one line: a newline would end the command */
	for (int i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	for (int attempt = 0; attempt < 2; attempt++) {
		if (b->fd < 0 && bench_connect(b) != 0)
			continue;
		if (write_all(b->fd, line, (size_t)n) == 0 && read_answer(b->fd) == 0)
			return 0;
		close(b->fd);
		b->fd = -1;
	}
	controller_log(LOG_WARNING, "gate bench: cannot report to %s", b->addr.sun_path);
	return -1;
}

static void bench_destroy(void *ctx)
{
	struct bench_gate *b = ctx;
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

static const struct controller_gate_ops bench_ops = {
        .set = bench_set,
        .destroy = bench_destroy,
};

int controller_gate_bench_open(struct controller_gate **out, const char *run_dir,
                               const char *reader, char *err, size_t errlen)
{
	struct controller_gate *g = calloc(1, sizeof(*g));
	struct bench_gate *b = calloc(1, sizeof(*b));
	if (!g || !b) {
		free(g);
		free(b);
		snprintf(err, errlen, "gate bench: out of memory");
		return -1;
	}
	b->fd = -1;
	b->addr.sun_family = AF_UNIX;
	int n = snprintf(b->addr.sun_path, sizeof(b->addr.sun_path), "%s/control.sock", run_dir);
	if (n < 0 || (size_t)n >= sizeof(b->addr.sun_path) || strlen(reader) >= sizeof(b->reader)) {
		snprintf(err, errlen, "gate bench: bench-dir '%s' too long for a socket path",
		         run_dir);
		free(g);
		free(b);
		return -1;
	}
	strcpy(b->reader, reader);
	/* The bench must be there at start-up: a typo in bench-dir is a start-up error. */
	if (bench_connect(b) != 0) {
		snprintf(err, errlen, "gate bench: cannot connect to %s: %s", b->addr.sun_path,
		         strerror(errno));
		free(g);
		free(b);
		return -1;
	}
	g->ops = &bench_ops;
	g->ctx = b;
	snprintf(g->name, sizeof(g->name), "bench");
	*out = g;
	return 0;
}
