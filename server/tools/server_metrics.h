/* server_metrics.h — citypass-server's /metrics (server_metrics.c; private to the tool). */
#ifndef CITYPASS_SERVER_METRICS_H
#define CITYPASS_SERVER_METRICS_H

#include "server/store.h"

struct server_sync;
struct service_metrics_writer;

struct server_metrics_ctx {
	struct server_sync *srv;
	struct server_store st; /* a read-only connection of the metrics' own */
	int st_open;
};

/* service_metrics_render_fn over a server_metrics_ctx */
void server_metrics_render(void *ctx, struct service_metrics_writer *w);

#endif
