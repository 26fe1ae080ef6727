/*
 * notify_listen — stands in for systemd's notification socket in the tests (sd_notify(3)):
 * binds a unix datagram socket at PATH and appends every message it receives to OUT, one
 * line per assignment ("READY=1", "WATCHDOG=1", ...), each prefixed by the receive time in
 * milliseconds since the listener started. Ends on SIGTERM or after SECONDS (default 300),
 * so that it never outlives a test that forgot it.
 *
 * usage: notify_listen PATH OUT [SECONDS]
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: notify_listen PATH OUT [SECONDS]\n");
		return 2;
	}
	long seconds = argc == 4 ? strtol(argv[3], NULL, 10) : 300;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify_listen: %s: path too long for a unix socket\n", argv[1]);
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	FILE *out = fopen(argv[2], "a");
	if (!out) {
		fprintf(stderr, "notify_listen: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unlink(argv[1]);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "notify_listen: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct sigaction act = {.sa_handler = on_term};
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	const long long t0 = mono_ms(), end = t0 + seconds * 1000;
	char buf[4096];
	while (!stop && mono_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 200) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		long long at = mono_ms() - t0;
		for (char *save = NULL, *line = strtok_r(buf, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			fprintf(out, "%lld %s\n", at, line);
		fflush(out);
	}
	fclose(out);
	close(fd);
	unlink(argv[1]);
	return 0;
}
