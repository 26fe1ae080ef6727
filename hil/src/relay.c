/*
 * A target played by another process over a Unix socket (hil/relay.h). The emulated
 * PN532 calls transceive() synchronously, as the real chip waits for the card, so each
 * exchange blocks for at most HIL_RELAY_TIMEOUT_MS: a dead peer costs the reader one
 * timeout, as a phone pulled out of the field does.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hil/relay.h"

struct relay {
	int fd;
	int gone;
	struct hil_target_info info;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_msg(struct relay *r, char type, const uint8_t *data, size_t len)
{
	uint8_t buf[3 + HIL_APDU_MAX];
	if (r->gone || len > HIL_APDU_MAX)
		return -1;
	buf[0] = (uint8_t)type;
	buf[1] = (uint8_t)(len >> 8);
	buf[2] = (uint8_t)len;
	if (len)
		memcpy(buf + 3, data, len);
	size_t off = 0, total = 3 + len;
	while (off < total) {
		ssize_t w = send(r->fd, buf + off, total - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r->gone = 1;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/* Read exactly n bytes before the deadline. */
static int read_exact(struct relay *r, uint8_t *buf, size_t n, long long deadline)
{
	size_t off = 0;
	while (off < n) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = {.fd = r->fd, .events = POLLIN};
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return -1;
		ssize_t got = recv(r->fd, buf + off, n - off, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			r->gone = 1;
			return -1;
		}
		off += (size_t)got;
	}
	return 0;
}

/* Receive one message; returns its payload length, or -1 (timeout, hang-up, oversize). */
static int recv_msg(struct relay *r, char *type, uint8_t *out, size_t cap)
{
	uint8_t hdr[3];
	long long deadline = now_ms() + HIL_RELAY_TIMEOUT_MS;
	if (r->gone || read_exact(r, hdr, 3, deadline) != 0)
		return -1;
	size_t len = (size_t)hdr[1] << 8 | hdr[2];
	if (len > cap) {
		/* a peer that breaks the protocol leaves the field */
		r->gone = 1;
		return -1;
	}
	if (read_exact(r, out, len, deadline) != 0) {
		r->gone = 1; /* out of step: cannot recover the stream */
		return -1;
	}
	*type = (char)hdr[0];
	return (int)len;
}

static void relay_info(void *ctx, struct hil_target_info *info)
{
	struct relay *r = ctx;
	*info = r->info;
}

static void relay_activate(void *ctx)
{
	(void)send_msg(ctx, 'A', NULL, 0);
}

static int relay_transceive(void *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
                            size_t out_cap)
{
	struct relay *r = ctx;
	char type;
	if (send_msg(r, 'X', in, in_len) != 0)
		return HIL_TARGET_GONE;
	int n = recv_msg(r, &type, out, out_cap);
	if (n < 0)
		return r->gone ? HIL_TARGET_GONE : HIL_TARGET_SILENT;
	if (type == 'S')
		return HIL_TARGET_SILENT;
	if (type != 'X') {
		r->gone = 1;
		return HIL_TARGET_GONE;
	}
	return n;
}

static void relay_deactivate(void *ctx)
{
	(void)send_msg(ctx, 'D', NULL, 0);
}

static void relay_destroy(void *ctx)
{
	struct relay *r = ctx;
	close(r->fd);
	free(r);
}

static const struct hil_target_ops relay_ops = {
        .info = relay_info,
        .activate = relay_activate,
        .transceive = relay_transceive,
        .deactivate = relay_deactivate,
        .destroy = relay_destroy,
};

/* Parse the peer's identification: ATQA(2) SAK UIDLEN UID ATSLEN ATS. */
static int parse_info(const uint8_t *p, size_t n, struct hil_target_info *info)
{
	memset(info, 0, sizeof(*info));
	if (n < 4)
		return -1;
	info->atqa[0] = p[0];
	info->atqa[1] = p[1];
	info->sak = p[2];
	size_t uid_len = p[3];
	if (!(uid_len == 4 || uid_len == 7 || uid_len == 10) || n < 4 + uid_len + 1)
		return -1;
	memcpy(info->uid, p + 4, uid_len);
	info->uid_len = (uint8_t)uid_len;
	size_t ats_len = p[4 + uid_len];
	if (ats_len > HIL_ATS_MAX || n != 4 + uid_len + 1 + ats_len)
		return -1;
	memcpy(info->ats, p + 5 + uid_len, ats_len);
	info->ats_len = (uint8_t)ats_len;
	return 0;
}

int hil_relay_target_connect(const char *socket_path, struct hil_target *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, socket_path);
	struct relay *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = errno;
		if (r->fd >= 0)
			close(r->fd);
		free(r);
		return -err;
	}
	uint8_t buf[64];
	char type;
	int n;
	if (send_msg(r, 'I', NULL, 0) != 0 || (n = recv_msg(r, &type, buf, sizeof(buf))) < 0 ||
	    type != 'I' || parse_info(buf, (size_t)n, &r->info) != 0) {
		relay_destroy(r);
		return -EPROTO;
	}
	out->ops = &relay_ops;
	out->ctx = r;
	return 0;
}
