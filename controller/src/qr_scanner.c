/*
 * controller/src/qr_scanner.c — the scanner thread (reader_internal.h): the QR scanner's
 * serial line, the gate's timers, and the watchdog of the reader thread.
 *
 * Its own thread, so that a QR code is decided the moment its line ends, whatever the
 * reader is doing (the reader thread sits in the PN532's own poll, up to 300 ms). The
 * line is a device that comes and goes (issue 13, item 1): a hangup (its pty closed, the
 * USB scanner pulled), an error or end of file closes it and it is opened again after
 * 100 ms, doubling up to 1 s — it used to be read again at once, for ever (poll said
 * POLLHUP, read said 0: 60-100 % of a core). A path that now names another device (a
 * scanner replaced) is opened anew too.
 */
#define _GNU_SOURCE /* O_CLOEXEC, execv */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cardlib/error.h"
#include "controller/error.h"
#include "controller/log.h"
#include "controller/timekeeper.h"
#include "proto/list.h"
#include "reader_internal.h"

#define REOPEN_MIN_MS 100
#define REOPEN_MAX_MS 1000
#define CHECK_PATH_MS 1000 /* how often the line's path is compared with the open device */
#define WATCH_MS      250  /* the watchdog looks at the reader thread this often */

/* --- a line ------------------------------------------------------------------------------- */

/* Each line is a tap (controller/tap.h): verified, decided, journalled, shown. */
static void qr_line(struct controller_reader_loop *l, const char *line, size_t len)
{
	controller_tap_qr(l->tap, line, len, reader_mono_ms(), NULL);
}

static void qr_bytes(struct controller_reader_loop *l, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = buf[i];
		if (c == '\n') {
			if (!l->qr_overlong) {
				size_t len = l->qr_len;
				while (len > 0 && l->qr_buf[len - 1] == '\r')
					len--;
				l->qr_buf[len] = '\0';
				qr_line(l, l->qr_buf, len);
			} else {
				controller_log(LOG_NOTICE, "QR scanner: line too long, ignored");
			}
			l->qr_len = 0;
			l->qr_overlong = false;
		} else if (l->qr_len < sizeof(l->qr_buf) - 1) {
			l->qr_buf[l->qr_len++] = c;
		} else {
			l->qr_overlong = true;
		}
	}
}

/* --- the line ----------------------------------------------------------------------------------
 */

static int line_open(const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct termios tio;
	if (tcgetattr(fd, &tio) == 0) { /* a serial line: raw, the scanner's lines as sent */
		cfmakeraw(&tio);
		tio.c_cflag |= CLOCAL | CREAD;
		(void)tcsetattr(fd, TCSANOW, &tio);
	}
	return fd;
}

static void line_lost(struct controller_reader_loop *l, const char *what, int err)
{
	if (!l->qr_failed_logged)
		controller_log(LOG_ERR,
		               "qr-scanner %s: %s%s%s: opening it again every %d ms at most",
		               l->cfg->qr_scanner, what, err ? ": " : "", err ? strerror(err) : "",
		               REOPEN_MAX_MS);
	l->qr_failed_logged = true;
	if (l->qr_fd >= 0)
		close(l->qr_fd);
	l->qr_fd = -1;
	l->qr_len = 0;
	l->qr_overlong = false;
	panel_scanner(&l->panel, false);
	l->qr_reopen_at_ms = reader_mono_ms() + l->qr_reopen_delay_ms;
	l->qr_reopen_delay_ms *= 2;
	if (l->qr_reopen_delay_ms > REOPEN_MAX_MS)
		l->qr_reopen_delay_ms = REOPEN_MAX_MS;
}

static void line_try_open(struct controller_reader_loop *l)
{
	l->qr_fd = line_open(l->cfg->qr_scanner);
	if (l->qr_fd < 0) {
		line_lost(l, "cannot open it", errno);
		return;
	}
	if (l->qr_failed_logged)
		controller_log(LOG_NOTICE, "qr-scanner %s: open again: back in service",
		               l->cfg->qr_scanner);
	l->qr_failed_logged = false;
	l->qr_reopen_delay_ms = REOPEN_MIN_MS;
	l->qr_checked_at_ms = reader_mono_ms();
	panel_scanner(&l->panel, true);
}

/* Everything the line holds now; the line is closed when it hung up or failed. */
static void line_read(struct controller_reader_loop *l)
{
	for (;;) {
		char buf[256];
		ssize_t n = read(l->qr_fd, buf, sizeof(buf));
		if (n > 0) {
			qr_bytes(l, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* 0: end of file (hung up); EIO: a pty whose other end closed, a USB device
		 * gone. Reading again would return the same at once: close and retry later. */
		line_lost(l, n == 0 ? "hung up" : "read failed", n == 0 ? 0 : errno);
		return;
	}
}

/* A scanner replaced under the same path (another pty, another USB device): the old one
 * may never say anything again. */
static void line_check_path(struct controller_reader_loop *l)
{
	struct stat now, open_st;
	if (stat(l->cfg->qr_scanner, &now) != 0 || fstat(l->qr_fd, &open_st) != 0 ||
	    now.st_rdev != open_st.st_rdev || now.st_ino != open_st.st_ino)
		line_lost(l, "replaced or removed", 0);
}

/* --- the watchdog -------------------------------------------------------------------------------
 */

/* Every descriptor but stdio closed at exec: the new image opens its own. */
static void cloexec_all(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (fd > 2 && fd != dirfd(d))
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	closedir(d);
}

/*
 * libnfc 1.8.0 waits for an InAutoPoll's ACK and answer with no timeout (and retries a
 * select interrupted by a signal): a PN532 that stops answering mid-command (a brown-out,
 * a chip that hung, noise shorter than an ACK) would hold the reader thread for ever. Its
 * abort pipe is no way out (it leaks a descriptor per use, and cannot interrupt the ACK
 * wait). Nothing of the decision state lives only in memory — every decision is in the
 * journal before the gate acts, the list is on disk — so the way out is a clean slate: the
 * controller executes itself again, as systemd would restart it, and opens the reader anew.
 */
static void watchdog(struct controller_reader_loop *l)
{
	int64_t since = atomic_load(&l->busy_since_ms);
	int64_t limit = atomic_load(&l->busy_limit_ms);
	if (!since || reader_mono_ms() - since < limit)
		return;
	if (*l->stop) {
		controller_log(LOG_WARNING,
		               "reader %s: no answer for %" PRId64 " ms while stopping: "
		               "exiting now",
		               l->cfg->reader, reader_mono_ms() - since);
		_exit(0);
	}
	controller_log(LOG_ERR,
	               "reader %s: no answer for %" PRId64 " ms (the chip stopped answering "
	               "inside a command libnfc waits on for ever): the controller starts again",
	               l->cfg->reader, reader_mono_ms() - since);
	if (!l->p.argv) {
		controller_log(LOG_ERR, "no command line to start again with: exiting");
		_exit(1);
	}
	cloexec_all();
	execv("/proc/self/exe", l->p.argv);
	controller_log(LOG_ERR, "cannot start again: %s: exiting", strerror(errno));
	_exit(1);
}

/* --- the thread ----------------------------------------------------------------------------------
 */

static void *scanner_main(void *arg)
{
	struct controller_reader_loop *l = arg;
	const bool configured = l->cfg->qr_scanner[0] != '\0';
	while (!*l->stop && !*l->reload) {
		int64_t now = reader_mono_ms();
		if (configured && l->qr_fd < 0 && now >= l->qr_reopen_at_ms)
			line_try_open(l);
		if (configured && l->qr_fd >= 0 && now - l->qr_checked_at_ms >= CHECK_PATH_MS) {
			l->qr_checked_at_ms = now;
			line_check_path(l);
		}
		/* sleep until the next thing to do: a decision's display ends, the line is due
		 * to be opened again, the watchdog's look; or the line speaks */
		int64_t wait = WATCH_MS, left = panel_tick(&l->panel);
		if (left >= 0 && left < wait)
			wait = left;
		if (configured && l->qr_fd < 0 && l->qr_reopen_at_ms - now < wait)
			wait = l->qr_reopen_at_ms - now;
		if (wait < 0)
			wait = 0;
		struct pollfd p = {.fd = l->qr_fd, .events = POLLIN};
		int n = poll(&p, 1, (int)wait);
		if (n > 0 && l->qr_fd >= 0) {
			if (p.revents & POLLIN) /* what it still holds, even after a hangup */
				line_read(l);
			/* a hangup stays: polling again would return at once, for ever */
			if (l->qr_fd >= 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
				line_lost(l, "hung up", 0);
		}
		panel_tick(&l->panel);
		watchdog(l);
	}
	return NULL;
}

int qr_scanner_start(struct controller_reader_loop *l)
{
	/* signals stay with the main thread (the reader), as for the sync thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&l->scanner_thread, NULL, scanner_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	l->scanner_running = rc == 0;
	return rc == 0 ? 0 : -1;
}

void qr_scanner_join(struct controller_reader_loop *l)
{
	if (!l->scanner_running)
		return;
	pthread_join(l->scanner_thread, NULL);
	l->scanner_running = false;
	if (l->qr_fd >= 0)
		close(l->qr_fd);
	l->qr_fd = -1;
}
