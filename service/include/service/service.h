/*
 * service/service.h — what a citypass daemon tells the machine it runs on: its service
 * manager (systemd's readiness, status and watchdog, DESIGN.md s.10) and its log
 * (journald with structured fields, syslog, or stderr).
 *
 * Every call is harmless where there is no systemd: notifications go nowhere when
 * NOTIFY_SOCKET is unset, and the log falls back to stderr. Thread-safe: the controller's
 * reader and sync threads both log and the reader thread feeds the watchdog.
 */
#ifndef SERVICE_SERVICE_H
#define SERVICE_SERVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- the log ------------------------------------------------------------------------------ */

enum service_log_dest {
	SERVICE_LOG_STDERR,  /* a line per call: "<UTC time> <ident>: <priority>: <message>" */
	SERVICE_LOG_SYSLOG,  /* syslog(3), daemon facility */
	SERVICE_LOG_JOURNAL, /* journald's native protocol, with the fields below */
};

/* Structured fields of one line, sent to journald as CITYPASS_DEVICE, CITYPASS_SITE,
 * CITYPASS_SECTOR, CITYPASS_OUTCOME and CITYPASS_REASON (NULL: not sent). By design there
 * is no field for a card or a pass: a log line never identifies a holder (DESIGN.md s.5). */
struct service_log_fields {
	const char *device;
	const char *site;
	const char *sector;
	const char *outcome;
	const char *reason;
};

/* Chooses the destination: journald when systemd connected stderr to the journal (its
 * JOURNAL_STREAM names stderr's device and inode), else syslog when want_syslog, else
 * stderr. ident names the program in every line. Call again to change it. */
void service_log_open(const char *ident, bool want_syslog);
enum service_log_dest service_log_dest(void);
/* One line; prio is a syslog(3) priority. A journald that went away: the line goes to
 * stderr (never lost silently). */
void service_log(int prio, const struct service_log_fields *fields, const char *msg);
const char *service_priority_name(int prio);

/* --- the service manager -------------------------------------------------------------------- */

/* READY=1 with a one-line status: the daemon serves (Type=notify units wait for it). */
void service_notify_ready(const char *status);
/* RELOADING=1: a reload began; the next service_notify_ready ends it. */
void service_notify_reloading(void);
/* STOPPING=1: a clean stop began. */
void service_notify_stopping(void);
/* STATUS=: what `systemctl status` shows. */
void service_notify_status(const char *status);

/* The watchdog interval systemd asks for (WatchdogSec=), in microseconds; 0 when none. */
uint64_t service_watchdog_usec(void);
/* WATCHDOG=1, at most four times per interval however often it is called: the daemon calls it
 * from the loop whose liveness it proves (a stuck loop stops feeding, systemd restarts). */
void service_watchdog_feed(void);

#ifdef __cplusplus
}
#endif

#endif /* SERVICE_SERVICE_H */
