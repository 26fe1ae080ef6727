/* service/src/metrics.c — the Prometheus text endpoint (service/metrics.h). */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>

#include "link/addr.h"
#include "service/metrics.h"

struct service_metrics {
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	service_metrics_render_fn render;
	void *ctx;
	unsigned port;
};

struct service_metrics_writer {
	struct evbuffer *out;
};

/* --- the text format ----------------------------------------------------------------------- */

void service_metrics_family(struct service_metrics_writer *w, const char *name, const char *type,
                            const char *help)
{
	evbuffer_add_printf(w->out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and line feed escaped (exposition format). */
static void add_escaped(struct evbuffer *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*v == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*v == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, v, 1);
	}
}

static void add_value(struct evbuffer *out, double value)
{
	if (isnan(value))
		evbuffer_add_printf(out, "NaN\n");
	else if (isinf(value))
		evbuffer_add_printf(out, "%s\n", value > 0 ? "+Inf" : "-Inf");
	else if (value == (double)(int64_t)value && fabs(value) < 9e15)
		evbuffer_add_printf(out, "%lld\n", (long long)value);
	else
		evbuffer_add_printf(out, "%.9g\n", value);
}

void service_metrics_sample(struct service_metrics_writer *w, const char *name,
                            const char *const *labels, double value)
{
	evbuffer_add_printf(w->out, "%s", name);
	if (labels && labels[0]) {
		evbuffer_add(w->out, "{", 1);
		for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
			evbuffer_add_printf(w->out, "%s%s=\"", i ? "," : "", labels[i]);
			add_escaped(w->out, labels[i + 1]);
			evbuffer_add(w->out, "\"", 1);
		}
		evbuffer_add(w->out, "}", 1);
	}
	evbuffer_add(w->out, " ", 1);
	add_value(w->out, value);
}

void service_histogram_init(struct service_histogram *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	if (n > SERVICE_HISTOGRAM_MAX_BUCKETS)
		n = SERVICE_HISTOGRAM_MAX_BUCKETS;
	h->n = n;
	memcpy(h->bounds, bounds, n * sizeof(*bounds));
}

void service_histogram_observe(struct service_histogram *h, double value)
{
	size_t i = 0;
	while (i < h->n && value > h->bounds[i])
		i++;
	atomic_fetch_add(&h->buckets[i], 1);
	atomic_fetch_add(&h->count, 1);
	if (value > 0)
		atomic_fetch_add(&h->sum_micro, (uint64_t)(value * 1e6));
}

void service_metrics_histogram(struct service_metrics_writer *w, const char *name, const char *help,
                               struct service_histogram *h)
{
	char sample[160], le[32];
	service_metrics_family(w, name, "histogram", help);
	snprintf(sample, sizeof(sample), "%s_bucket", name);
	uint64_t cumulative = 0;
	for (size_t i = 0; i <= h->n; i++) {
		cumulative += atomic_load(&h->buckets[i]);
		if (i < h->n)
			snprintf(le, sizeof(le), "%g", h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		const char *labels[] = {"le", le, NULL};
		service_metrics_sample(w, sample, labels, (double)cumulative);
	}
	snprintf(sample, sizeof(sample), "%s_sum", name);
	service_metrics_sample(w, sample, NULL, (double)atomic_load(&h->sum_micro) / 1e6);
	snprintf(sample, sizeof(sample), "%s_count", name);
	/* the +Inf bucket and the count are the same number, read once */
	service_metrics_sample(w, sample, NULL, (double)cumulative);
}

/* --- the endpoint -------------------------------------------------------------------------- */

static void on_request(struct evhttp_request *req, void *arg)
{
	struct service_metrics *m = arg;
	const char *uri = evhttp_request_get_uri(req);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evhttp_send_error(req, 405, "only GET");
		return;
	}
	if (!uri || (strcmp(uri, "/metrics") != 0 && strncmp(uri, "/metrics?", 9) != 0)) {
		evhttp_send_error(req, HTTP_NOTFOUND, "the metrics are at /metrics");
		return;
	}
	struct evbuffer *body = evbuffer_new();
	if (!body) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	struct service_metrics_writer w = {body};
	m->render(m->ctx, &w);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

static int loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return 0;
}

/* "1.2.3.4:P" or "[v6]:P" (link/addr.h), P from 0 (any free port) to 65535 (libevent's own
 * parser refuses port 0). */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct link_addr a;
	if (link_addr_parse(s, LINK_ADDR_NUMERIC | LINK_ADDR_ANY_PORT, &a) != 0)
		return -1;
	return link_addr_sockaddr(&a, ss, len);
}

int service_metrics_listen(struct service_metrics **out, struct event_base *base,
                           const char *addr_port, service_metrics_render_fn render, void *ctx,
                           char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	*out = NULL;
	if (parse_addr(addr_port, &ss, &len) != 0) {
		snprintf(why, whylen,
		         "metrics address '%s': expected ADDR:PORT (127.0.0.1:9464, "
		         "[::1]:9464)",
		         addr_port);
		return -1;
	}
	if (!loopback(&ss)) {
		snprintf(why, whylen,
		         "metrics address '%s': not a loopback address (the figures "
		         "describe the deployment: put a reverse proxy in front to "
		         "publish them)",
		         addr_port);
		return -1;
	}
	struct service_metrics *m = calloc(1, sizeof(*m));
	if (!m || !(m->http = evhttp_new(base))) {
		free(m);
		snprintf(why, whylen, "metrics: out of memory");
		return -1;
	}
	m->render = render;
	m->ctx = ctx;
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
	evhttp_set_gencb(m->http, on_request, m);
	evhttp_set_timeout(m->http, 10);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0 ||
	    !(m->sock = evhttp_accept_socket_with_handle(m->http, fd))) {
		snprintf(why, whylen, "metrics address '%s': cannot listen: %s", addr_port,
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		if (fd >= 0)
			evutil_closesocket(fd);
		evhttp_free(m->http);
		free(m);
		return -1;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
		m->port = ntohs(bound.ss_family == AF_INET6
		                        ? ((struct sockaddr_in6 *)&bound)->sin6_port
		                        : ((struct sockaddr_in *)&bound)->sin_port);
	*out = m;
	return 0;
}

unsigned service_metrics_port(const struct service_metrics *m)
{
	return m ? m->port : 0;
}

void service_metrics_free(struct service_metrics *m)
{
	if (!m)
		return;
	evhttp_free(m->http); /* closes the bound socket too */
	free(m);
}
