/* service/src/log.c — one log line to journald (with fields), syslog or stderr. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* CODE_FILE/CODE_LINE would name this file for every line: not worth sending */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "service/service.h"

static _Atomic enum service_log_dest log_dest = SERVICE_LOG_STDERR;
static const char *_Atomic log_ident = "citypass";

/* systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected to the journal; a
 * stderr redirected elsewhere since (a shell, a test) no longer matches and keeps its
 * text lines (systemd.exec(5), "JOURNAL_STREAM"). */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	char tail;
	struct stat st;

	if (!js || sscanf(js, "%ju:%ju%c", &dev, &ino, &tail) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void service_log_open(const char *ident, bool want_syslog)
{
	enum service_log_dest dest = SERVICE_LOG_STDERR;

	if (stderr_is_journal())
		dest = SERVICE_LOG_JOURNAL;
	else if (want_syslog)
		dest = SERVICE_LOG_SYSLOG;
	if (atomic_load(&log_dest) == SERVICE_LOG_SYSLOG && dest != SERVICE_LOG_SYSLOG)
		closelog();
	atomic_store(&log_ident, ident);
	atomic_store(&log_dest, dest);
	if (dest == SERVICE_LOG_SYSLOG)
		openlog(ident, LOG_PID, LOG_DAEMON);
}

enum service_log_dest service_log_dest(void)
{
	return atomic_load(&log_dest);
}

const char *service_priority_name(int prio)
{
	switch (prio) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_DEBUG:
		return "debug";
	default:
		return "info";
	}
}

static void log_stderr(int prio, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* one fprintf: stdio locks the stream, so lines of two threads never interleave */
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: %s: %s\n", tm.tm_year + 1900,
	        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
	        atomic_load(&log_ident), service_priority_name(prio), msg);
}

/* journald's native protocol: one iovec per FIELD=value; the fields a line lacks are left
 * out rather than sent empty. */
static int log_journal(int prio, const struct service_log_fields *f, const char *msg)
{
	char fields[7][320];
	struct iovec iov[8];
	int n = 0;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		snprintf(fields[n], sizeof(fields[n]), __VA_ARGS__);                               \
		iov[n].iov_base = fields[n];                                                       \
		iov[n].iov_len = strlen(fields[n]);                                                \
		n++;                                                                               \
	} while (0)
	ADD("PRIORITY=%d", prio & LOG_PRIMASK);
	ADD("SYSLOG_IDENTIFIER=%s", atomic_load(&log_ident));
	if (f && f->device)
		ADD("CITYPASS_DEVICE=%s", f->device);
	if (f && f->site)
		ADD("CITYPASS_SITE=%s", f->site);
	if (f && f->sector)
		ADD("CITYPASS_SECTOR=%s", f->sector);
	if (f && f->outcome)
		ADD("CITYPASS_OUTCOME=%s", f->outcome);
	if (f && f->reason)
		ADD("CITYPASS_REASON=%s", f->reason);
#undef ADD
	/* MESSAGE unbounded: a long sentence is never cut */
	size_t len = strlen("MESSAGE=") + strlen(msg);
	char *m = malloc(len + 1);
	if (!m)
		return -1;
	snprintf(m, len + 1, "MESSAGE=%s", msg);
	iov[n].iov_base = m;
	iov[n].iov_len = len;
	int rc = sd_journal_sendv(iov, n + 1);
	free(m);
	return rc;
}

void service_log(int prio, const struct service_log_fields *fields, const char *msg)
{
	switch (atomic_load(&log_dest)) {
	case SERVICE_LOG_JOURNAL:
		if (log_journal(prio, fields, msg) >= 0)
			return;
		break; /* journald gone: stderr still reaches someone */
	case SERVICE_LOG_SYSLOG:
		syslog(prio, "%s", msg);
		return;
	case SERVICE_LOG_STDERR:
		break;
	}
	log_stderr(prio, msg);
}
