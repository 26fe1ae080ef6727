/*
 * controller/log.h — the daemon's log: stderr (default) or syslog (daemon facility).
 * Thread-safe (one write per line); the sync thread's lines come through here too.
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
/* prio: LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG. */
void controller_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_LOG_H */
