/*
 * test_service_watchdog — service_watchdog_feed (service/service.h) against a notification
 * socket of the test's own (sd_notify(3): NOTIFY_SOCKET, WATCHDOG_USEC): a feed is sent,
 * a second one at once is held back (a loop feeding at every turn does not flood systemd),
 * and a feed a little less than half an interval after the last one is sent — the daemons'
 * timers tick every half interval, and a throttle of half an interval skipped such a tick,
 * leaving a whole interval, plus any slow callback, before the next feed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "service/service.h"

#define INTERVAL_US 400000

struct fx {
	char dir[96], path[128];
	int fd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/citypass-wd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/notify.sock", f->dir);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(f->path) >= sizeof(a.sun_path))
		return -1;
	memcpy(a.sun_path, f->path, strlen(f->path) + 1);
	f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		return -1;
	setenv("NOTIFY_SOCKET", f->path, 1);
	char us[32];
	snprintf(us, sizeof(us), "%d", INTERVAL_US);
	setenv("WATCHDOG_USEC", us, 1);
	unsetenv("WATCHDOG_PID");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	close(f->fd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* The WATCHDOG=1 messages waiting on the socket, read without blocking. */
static int feeds_received(struct fx *f)
{
	char buf[256];
	int n = 0;
	ssize_t r;
	while ((r = recv(f->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[r] = 0;
		n += strstr(buf, "WATCHDOG=1") != NULL;
	}
	return n;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void test_feeds_every_half_interval(void **state)
{
	struct fx *f = *state;
	assert_int_equal(service_watchdog_usec(), INTERVAL_US);
	service_watchdog_feed();
	assert_int_equal(feeds_received(f), 1);
	service_watchdog_feed(); /* at once: held back */
	assert_int_equal(feeds_received(f), 0);
	/* 0.375 of an interval on (at least: a sleep never ends early): a timer tick come a
	 * little early must feed. A loaded machine may oversleep past half an interval, where
	 * the feed is due anyway; it never makes this check fail. */
	sleep_us(INTERVAL_US * 3 / 8);
	service_watchdog_feed();
	assert_int_equal(feeds_received(f), 1);
}

static void test_no_watchdog_no_feed(void **state)
{
	struct fx *f = *state;
	unsetenv("WATCHDOG_USEC");
	assert_int_equal(service_watchdog_usec(), 0);
	service_watchdog_feed();
	assert_int_equal(feeds_received(f), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_feeds_every_half_interval, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_watchdog_no_feed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
