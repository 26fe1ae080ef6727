/*
 * controller/log.h — the daemon's log: journald when systemd runs the gate (with the gate's
 * device, site and sector as fields, and a tap's outcome and reason), else stderr
 * (default) or syslog (daemon facility). Thread-safe (one write per line); the sync
 * thread's lines come through here too. No line names a card or a pass (DESIGN.md s.5).
 */
#ifndef CONTROLLER_LOG_H
#define CONTROLLER_LOG_H

#include <stdbool.h>
#include <syslog.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Choose the destination; ident is the program name. */
void controller_log_init(const char *ident, bool use_syslog);
/* The gate's identity, sent with every line from now on; call it while no other thread
 * logs (at start and at a reload, before the sync thread starts). */
void controller_log_context(const char *device, const char *site, const char *sector);
/* prio: LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG. */
void controller_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A tap's line: outcome ("granted", "refused", "not_decided") and the engine's reason
 * (NULL: none) go to journald as CITYPASS_OUTCOME and CITYPASS_REASON. */
void controller_log_tap(int prio, const char *outcome, const char *reason, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_LOG_H */
