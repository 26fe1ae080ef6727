/*
 * relay_peer — a test peer for the bench's external targets (docs/hil.md): an ISO 14443-4
 * "phone" that answers every APDU with the APDU reversed followed by 90 00, and logs what
 * it saw. Used to check the relay mechanism itself, independently of citypass-token.
 *
 *   relay_peer SOCKET [--uid HEX8] [--silent-after N] [--hang-up-after N]
 *   relay_peer SOCKET --forward PEER_SOCKET [--tamper]
 *   relay_peer --exchange SOCKET LEN
 *
 * With --forward it is a man in the middle: it passes every message on to another peer
 * (the real phone) and its answers back, flipping the last data byte of every answer with
 * --tamper. The reader side cannot tell it is there; only the protocol above can (a
 * signature or MAC over the exchange), which is what the tests using it check.
 *
 * --exchange is the client side of the same socket, without the bench: it sends one APDU
 * of LEN bytes (0 to 600, the most a peer takes) and prints the length of the answer, so a
 * test can reach the limits that no PN532 frame carries.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static int read_exact(int fd, unsigned char *buf, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t r = read(fd, buf + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

/* The header and the payload go out in one writev, so no staging buffer can be too small:
 * an answer is up to two bytes longer than the 600-byte APDU it reverses (the status
 * word), which overflowed the 603-byte copy this replaced. */
static int send_msg(int fd, char type, const unsigned char *p, size_t n)
{
	if (n > 0xFFFF)
		return -1; /* the length field is two bytes */
	unsigned char hdr[3] = {(unsigned char)type, (unsigned char)(n >> 8), (unsigned char)n};
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)p, n}};
	return writev(fd, iov, n ? 2 : 1) == (ssize_t)(sizeof(hdr) + n) ? 0 : -1;
}

/* Man in the middle: every message from the bench goes to the real peer; every answer
 * comes back, tampered with on request. */
static void mitm(int bench_fd, const char *peer_path, int tamper)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", peer_path);
	int peer = socket(AF_UNIX, SOCK_STREAM, 0);
	if (peer < 0 || connect(peer, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("relay_peer: connect to the real peer");
		if (peer >= 0)
			close(peer);
		return;
	}
	unsigned char hdr[3], p[600];
	while (read_exact(bench_fd, hdr, 3) == 0) {
		size_t n = (size_t)hdr[1] << 8 | hdr[2];
		if (n > sizeof(p) || read_exact(bench_fd, p, n) != 0)
			break;
		printf("relayed %c %zu bytes\n", hdr[0], n);
		fflush(stdout);
		if (send_msg(peer, (char)hdr[0], p, n) != 0)
			break;
		if (hdr[0] != 'I' && hdr[0] != 'X')
			continue; /* A and D get no answer */
		if (read_exact(peer, hdr, 3) != 0)
			break;
		n = (size_t)hdr[1] << 8 | hdr[2];
		if (n > sizeof(p) || read_exact(peer, p, n) != 0)
			break;
		if (tamper && hdr[0] == 'X' && n > 2)
			p[n - 3] ^= 0x01; /* the last data byte, before the status word */
		if (send_msg(bench_fd, (char)hdr[0], p, n) != 0)
			break;
	}
	close(peer);
}

/* One APDU of n bytes to the peer listening on path; the answer's length on stdout. */
static int exchange(const char *path, const char *len)
{
	char *end;
	long n = strtol(len, &end, 10);
	if (*len == '\0' || *end != '\0' || n < 0 || n > 600) {
		fprintf(stderr, "relay_peer: --exchange LEN '%s': expected 0 to 600\n", len);
		return 2;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("relay_peer: --exchange: connect");
		if (fd >= 0)
			close(fd);
		return 1;
	}
	unsigned char apdu[600], hdr[3], answer[0xFFFF];
	for (long k = 0; k < n; k++)
		apdu[k] = (unsigned char)k;
	int rc = 1;
	if (send_msg(fd, 'X', apdu, (size_t)n) == 0 && read_exact(fd, hdr, 3) == 0) {
		size_t an = (size_t)hdr[1] << 8 | hdr[2];
		if (read_exact(fd, answer, an) == 0) {
			printf("answer %c %zu bytes\n", hdr[0], an);
			rc = 0;
		}
	}
	if (rc)
		fprintf(stderr, "relay_peer: --exchange: no answer from %s\n", path);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--exchange"))
		return exchange(argv[2], argv[3]);
	unsigned char uid[4] = {0x08, 0x12, 0x34, 0x56};
	long silent_after = -1, hang_up_after = -1;
	const char *forward = NULL;
	int tamper = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: relay_peer SOCKET [--uid HEX8] [--silent-after N] "
		                "[--hang-up-after N]\n");
		return 2;
	}
	for (int i = 2; i < argc; i += 2) {
		if (!strcmp(argv[i], "--tamper")) {
			tamper = 1;
			i--;
			continue;
		}
		if (i + 1 >= argc)
			return 2;
		if (!strcmp(argv[i], "--forward")) {
			forward = argv[i + 1];
		} else if (!strcmp(argv[i], "--uid")) {
			for (int k = 0; k < 4; k++) {
				unsigned v;
				if (sscanf(argv[i + 1] + 2 * k, "%2x", &v) != 1)
					return 2;
				uid[k] = (unsigned char)v;
			}
		} else if (!strcmp(argv[i], "--silent-after")) {
			silent_after = atol(argv[i + 1]);
		} else if (!strcmp(argv[i], "--hang-up-after")) {
			hang_up_after = atol(argv[i + 1]);
		} else {
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	unlink(sa.sun_path);
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1)) {
		perror("relay_peer: listen");
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	long exchanges = 0;
	for (;;) {
		int fd = accept(ls, NULL, NULL);
		if (fd < 0)
			continue;
		unsigned char hdr[3], p[600];
		if (forward) {
			mitm(fd, forward, tamper);
			close(fd);
			continue;
		}
		while (read_exact(fd, hdr, 3) == 0) {
			size_t n = (size_t)hdr[1] << 8 | hdr[2];
			if (n > sizeof(p) || read_exact(fd, p, n) != 0)
				break;
			if (hdr[0] == 'I') {
				/* ATQA 00 04 (4-byte UID), SAK 0x20 (ISO 14443-4), ATS of an HCE
				 * phone */
				unsigned char info[] = {0x00,   0x04,   0x20,   4,   uid[0],
				                        uid[1], uid[2], uid[3], 5,   0x05,
				                        0x78,   0x80,   0x70,   0x02};
				send_msg(fd, 'I', info, sizeof(info));
			} else if (hdr[0] == 'X') {
				exchanges++;
				printf("apdu %zu bytes\n", n);
				fflush(stdout);
				if (hang_up_after >= 0 && exchanges > hang_up_after)
					break;
				if (silent_after >= 0 && exchanges > silent_after) {
					send_msg(fd, 'S', NULL, 0);
					continue;
				}
				unsigned char r[602];
				for (size_t k = 0; k < n; k++)
					r[k] = p[n - 1 - k];
				r[n] = 0x90;
				r[n + 1] = 0x00;
				send_msg(fd, 'X', r, n + 2);
			} else {
				printf("%c\n", hdr[0]);
				fflush(stdout);
			}
		}
		close(fd);
	}
}
