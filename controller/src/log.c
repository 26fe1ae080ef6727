/* controller/src/log.c — the daemon's lines, with the gate's identity as journald fields
 * (service/service.h chooses journald, syslog or stderr). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "controller/log.h"
#include "service/service.h"

/* Set while no other thread logs (before the sync thread starts, controller/log.h). */
static char ctx_device[64], ctx_site[96], ctx_sector[96];

void controller_log_init(const char *ident, bool use_syslog)
{
	service_log_open(ident, use_syslog);
}

void controller_log_context(const char *device, const char *site, const char *sector)
{
	snprintf(ctx_device, sizeof(ctx_device), "%s", device ? device : "");
	snprintf(ctx_site, sizeof(ctx_site), "%s", site ? site : "");
	snprintf(ctx_sector, sizeof(ctx_sector), "%s", sector ? sector : "");
}

static void vlog(int prio, const char *outcome, const char *reason, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	struct service_log_fields f = {
	        .device = ctx_device[0] ? ctx_device : NULL,
	        .site = ctx_site[0] ? ctx_site : NULL,
	        .sector = ctx_sector[0] ? ctx_sector : NULL,
	        .outcome = outcome,
	        .reason = reason,
	};
	service_log(prio, &f, msg);
}

void controller_log(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(prio, NULL, NULL, fmt, ap);
	va_end(ap);
}

void controller_log_tap(int prio, const char *outcome, const char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(prio, outcome, reason, fmt, ap);
	va_end(ap);
}
