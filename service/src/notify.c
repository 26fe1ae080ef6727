/* service/src/notify.c — readiness, status and watchdog for systemd (sd_notify(3)). */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "service/service.h"

static void notify(const char *state)
{
	/* 0 (no NOTIFY_SOCKET) or an error: nothing a daemon could do about it */
	(void)sd_notify(0, state);
}

void service_notify_ready(const char *status)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status ? status : "running");
	notify(buf);
}

void service_notify_reloading(void)
{
	notify("RELOADING=1");
}

void service_notify_stopping(void)
{
	notify("STOPPING=1");
}

void service_notify_status(const char *status)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "STATUS=%s", status);
	notify(buf);
}

uint64_t service_watchdog_usec(void)
{
	uint64_t usec = 0;
	/* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is this process */
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}

static uint64_t mono_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static _Atomic uint64_t last_feed_usec;

void service_watchdog_feed(void)
{
	uint64_t interval = service_watchdog_usec();
	if (interval == 0)
		return;
	uint64_t now = mono_usec(), last = atomic_load(&last_feed_usec);
	/* At most four times per interval, so that a loop calling this at every turn does not
	 * flood systemd. Not twice: the daemons' timers call it every interval / 2, and a
	 * tick that fires a little earlier after the last feed than that one did after its
	 * own would be skipped, leaving a gap of a whole interval — plus any slow callback —
	 * before the next feed, and systemd would kill a daemon that is working. */
	if (last != 0 && now - last < interval / 4)
		return;
	if (atomic_compare_exchange_strong(&last_feed_usec, &last, now))
		notify("WATCHDOG=1");
}
