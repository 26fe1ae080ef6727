/*
 * citypass-server — the sync server daemon (docs/sync-server.md).
 *
 *   citypass-server --data DIR [--listen ADDR:PORT] [options]
 *
 * Serves the gate controllers of the deployment in DIR (the sqlite rights database and
 * DIR/keys/ made by `citypass-admin init`) from one libevent loop. SIGTERM or SIGINT stop
 * it cleanly: every batch acknowledged before is committed, no batch is half stored.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "server/privacy.h"
#include "server/sync.h"
#include "server/sync_backend.h"
#include "server_metrics.h"
#include "service/metrics.h"
#include "service/service.h"

#ifndef CITYPASS_VERSION
#define CITYPASS_VERSION "0.1.0"
#endif

/* IPv6 and IPv4 on one socket; 0.0.0.0 where the machine has no IPv6 (main) */
#define DEFAULT_LISTEN      "[::]:7443"
#define DEFAULT_LISTEN_IPV4 "0.0.0.0:7443"

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: citypass-server --data DIR [--listen ADDR:PORT] [options]\n"
	        "\n"
	        "Sync server of citypass: gate controllers connect over mutually authenticated\n"
	        "TLS, receive their sector's list updates (pushed on publish) and upload usage.\n"
	        "\n"
	        "  -d, --data DIR          deployment data directory (or $CITYPASS_DATA)\n"
	        "  -l, --listen ADDR:PORT  address and port: 192.0.2.1:7443, [2001:db8::1]:7443, "
	        "or\n"
	        "                          [::]:7443 for IPv6 and IPv4 (default %s)\n"
	        "      --ca FILE           device CA certificate (default DIR/keys/ca.crt)\n"
	        "      --cert FILE         server certificate (default DIR/keys/server.crt)\n"
	        "      --key FILE          server private key (default DIR/keys/server.key)\n"
	        "      --crl FILE          CRL of the device CA (PEM; optional)\n"
	        "      --idle-timeout SEC  close a controller silent this long (default %u)\n"
	        "      --hello-timeout SEC handshake and Hello deadline (default %u)\n"
	        "      --poll-ms MS        how often new list versions are looked for (default "
	        "%u)\n"
	        "      --syslog            log to syslog (daemon facility) instead of stderr\n"
	        "      --metrics ADDR:PORT serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	        "                          (a loopback address; default: off)\n"
	        "  -v, --verbose           also log every batch and connection step\n"
	        "  -h, --help              this help\n"
	        "      --version           print the version\n"
	        "\n"
	        "Exit status: 0 stopped by SIGTERM/SIGINT, 1 could not start, 2 bad usage.\n",
	        DEFAULT_LISTEN, SERVER_SYNC_IDLE_TIMEOUT_MS / 1000,
	        SERVER_SYNC_HELLO_TIMEOUT_MS / 1000, SERVER_SYNC_POLL_INTERVAL_MS);
}

/* journald (under systemd) or syslog (--syslog); stderr keeps sync_log's own lines */
static void log_service(void *arg, int priority, const char *line)
{
	(void)arg;
	service_log(priority, NULL, line);
}

/* a line about one gate: its device, site and sector as journald's CITYPASS_DEVICE,
 * CITYPASS_SITE and CITYPASS_SECTOR, like the gate's own lines */
static const char *field(const char *v)
{
	return v && v[0] ? v : NULL;
}

static void log_service_gate(void *arg, int priority, const struct server_sync_gate_ref *gate,
                             const char *line)
{
	(void)arg;
	const struct service_log_fields f = {.device = field(gate->device),
	                                     .site = field(gate->site),
	                                     .sector = field(gate->sector)};
	service_log(priority, &f, line);
}

struct run {
	struct server_sync *srv;
	struct event *sigterm, *sigint, *watchdog, *purge;
	struct service_metrics *metrics;
	struct server_store purge_st; /* issue 17: the retention purge's own connection */
	int purge_open;
};

/* Issue 17: how often the server folds consumption rows past their sector's retention
 * (server/privacy.h); each run takes the rows that would outlive it before the next. */
#define RETENTION_PURGE_EVERY_S 600

static void on_purge(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	(void)fd;
	(void)what;
	uint64_t n = 0;
	char line[200];
	int rc = server_retention_purge(&r->purge_st, (int64_t)time(NULL), RETENTION_PURGE_EVERY_S,
	                                &n);
	if (rc == 0 && n == 0)
		return;
	if (rc)
		snprintf(line, sizeof(line), "retention purge failed: %s (tried again in %d s)",
		         server_store_strerror(&r->purge_st, rc), RETENTION_PURGE_EVERY_S);
	else
		snprintf(line, sizeof(line),
		         "retention: folded %llu consumption row(s) past their sector's retention",
		         (unsigned long long)n);
	service_log(rc ? LOG_WARNING : LOG_INFO, NULL, line);
}

/* systemd's watchdog is fed from the event loop itself: a loop stalled by a slow callback
 * stops feeding it, and systemd restarts the server (citypass-server.service). */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	service_watchdog_feed();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct run *r = arg;
	(void)what;
	/* The loop runs one callback at a time and ingest is synchronous: no batch is in
	 * flight here. Stop drains output, closes everything, and the loop then ends. */
	fprintf(stderr, "citypass-server: %s received, stopping\n",
	        sig == SIGTERM ? "SIGTERM" : "SIGINT");
	service_notify_stopping();
	event_del(r->sigterm);
	event_del(r->sigint);
	if (r->watchdog)
		event_del(r->watchdog);
	if (r->purge)
		event_del(r->purge);
	/* its listener would keep the loop running after the sync server's events are gone */
	service_metrics_free(r->metrics);
	r->metrics = NULL;
	server_sync_stop(r->srv);
}

static int parse_seconds(const char *opt, const char *s, unsigned *out_ms)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v == 0 || v > 86400) {
		fprintf(stderr, "citypass-server: %s '%s': expected seconds from 1 to 86400\n", opt,
		        s);
		return -1;
	}
	*out_ms = (unsigned)v * 1000u;
	return 0;
}

static int key_file(char *buf, size_t cap, const char *data, const char *name)
{
	int n = snprintf(buf, cap, "%s/keys/%s", data, name);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/*
 * One descriptor per connected gate: 10 000 gates (DESIGN.md s.9) do not fit in the soft
 * limit of 1 024 a process usually starts with, and past it accept() fails with EMFILE.
 * The soft limit is raised to the hard one (the systemd unit sets both: LimitNOFILE);
 * where that is refused, the limit that stays is said, since it caps the gates served.
 */
static void raise_open_files_limit(const struct server_sync_config *cfg)
{
	struct rlimit rl;
	char line[200];
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
		return;
	const rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	int prio = LOG_INFO;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
		snprintf(line, sizeof(line), "open files: soft limit raised from %llu to %llu",
		         (unsigned long long)was, (unsigned long long)rl.rlim_max);
	} else {
		prio = LOG_WARNING;
		snprintf(line, sizeof(line),
		         "open files: soft limit %llu kept (%s): about as many gates at most",
		         (unsigned long long)was, strerror(errno));
	}
	if (cfg->log)
		cfg->log(NULL, prio, line);
	else
		fprintf(stderr, "citypass-server: %s\n", line);
}

int main(int argc, char **argv)
{
	enum {
		OPT_CA = 256,
		OPT_CERT,
		OPT_KEY,
		OPT_CRL,
		OPT_IDLE,
		OPT_HELLO,
		OPT_POLL,
		OPT_SYSLOG,
		OPT_METRICS,
		OPT_VERSION
	};
	static const struct option options[] = {
	        {"data", required_argument, NULL, 'd'},
	        {"listen", required_argument, NULL, 'l'},
	        {"ca", required_argument, NULL, OPT_CA},
	        {"cert", required_argument, NULL, OPT_CERT},
	        {"key", required_argument, NULL, OPT_KEY},
	        {"crl", required_argument, NULL, OPT_CRL},
	        {"idle-timeout", required_argument, NULL, OPT_IDLE},
	        {"hello-timeout", required_argument, NULL, OPT_HELLO},
	        {"poll-ms", required_argument, NULL, OPT_POLL},
	        {"syslog", no_argument, NULL, OPT_SYSLOG},
	        {"metrics", required_argument, NULL, OPT_METRICS},
	        {"verbose", no_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, OPT_VERSION},
	        {NULL, 0, NULL, 0},
	};
	const char *data = getenv("CITYPASS_DATA");
	const char *listen = DEFAULT_LISTEN;
	int listen_given = 0;
	const char *ca = NULL, *cert = NULL, *key = NULL;
	char ca_buf[PATH_MAX], cert_buf[PATH_MAX], key_buf[PATH_MAX];
	struct server_sync_config cfg;
	struct server_sync_backend backend, ingest;
	struct event_base *base;
	struct run r = {0};
	int use_syslog = 0, opt, rc;
	const char *metrics_addr = NULL;
	struct server_metrics_ctx mx = {0};

	memset(&cfg, 0, sizeof(cfg));
	while ((opt = getopt_long(argc, argv, "d:l:vh", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			data = optarg;
			break;
		case 'l':
			listen = optarg;
			listen_given = 1;
			break;
		case OPT_CA:
			ca = optarg;
			break;
		case OPT_CERT:
			cert = optarg;
			break;
		case OPT_KEY:
			key = optarg;
			break;
		case OPT_CRL:
			cfg.crl_path = optarg;
			break;
		case OPT_IDLE:
			if (parse_seconds("--idle-timeout", optarg, &cfg.idle_timeout_ms))
				return 2;
			break;
		case OPT_HELLO:
			if (parse_seconds("--hello-timeout", optarg, &cfg.hello_timeout_ms))
				return 2;
			cfg.handshake_timeout_ms = cfg.hello_timeout_ms;
			break;
		case OPT_METRICS:
			metrics_addr = optarg;
			break;
		case OPT_POLL: {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 10 || v > 60000) {
				fprintf(stderr,
				        "citypass-server: --poll-ms '%s': expected milliseconds "
				        "from "
				        "10 to 60000\n",
				        optarg);
				return 2;
			}
			cfg.poll_interval_ms = (unsigned)v;
			break;
		}
		case OPT_SYSLOG:
			use_syslog = 1;
			break;
		case 'v':
			cfg.log_level = LOG_DEBUG;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("citypass-server %s\n", CITYPASS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "citypass-server: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!data || !*data) {
		fprintf(stderr, "citypass-server: no data directory: give --data DIR or set "
		                "CITYPASS_DATA\n");
		return 2;
	}
	if ((!ca && key_file(ca_buf, sizeof(ca_buf), data, "ca.crt")) ||
	    (!cert && key_file(cert_buf, sizeof(cert_buf), data, "server.crt")) ||
	    (!key && key_file(key_buf, sizeof(key_buf), data, "server.key"))) {
		fprintf(stderr, "citypass-server: --data '%s': path too long\n", data);
		return 2;
	}
	cfg.ca_path = ca ? ca : ca_buf;
	cfg.cert_path = cert ? cert : cert_buf;
	cfg.key_path = key ? key : key_buf;
	service_log_open("citypass-server", use_syslog);
	if (service_log_dest() != SERVICE_LOG_STDERR) {
		cfg.log = log_service;
		cfg.log_gate = log_service_gate;
	}
	raise_open_files_limit(&cfg);

	/* issue 16: a database server that does not answer yet (PostgreSQL restarting, the
	 * machines booting in the wrong order) is waited for, with a back-off, saying so;
	 * SIGTERM ends the wait. Anything else (a schema from a newer release) is final. */
	struct server_why open_why;
	unsigned backoff_s = 1;
	for (;;) {
		open_why.text[0] = '\0';
		rc = server_sync_backend_open(&backend, data, 0, &open_why);
		if (rc == 0) {
			/* the ingest thread commits on its own connection (server/sync.h) */
			rc = server_sync_backend_open(&ingest, data, 1, &open_why);
			if (rc)
				backend.ops->destroy(backend.ctx);
		}
		if (rc != SERVER_ERR_UNREACHABLE)
			break;
		fprintf(stderr, "citypass-server: %s: trying again in %u s\n", open_why.text,
		        backoff_s);
		sleep(backoff_s);
		backoff_s = backoff_s >= 30 ? 60 : backoff_s * 2;
	}
	if (rc) {
		fprintf(stderr, "citypass-server: cannot open the rights database in '%s': %s\n",
		        data, open_why.text[0] ? open_why.text : server_strerror(rc));
		return 1;
	}
	cfg.backend = backend;
	cfg.ingest_backend = ingest;
	/* a controller vanishing mid-write must not kill the server (link/src/tls.c also uses
	 * MSG_NOSIGNAL; this covers everything else) */
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (!base) {
		fprintf(stderr, "citypass-server: cannot create the event loop\n");
		backend.ops->destroy(backend.ctx);
		ingest.ops->destroy(ingest.ctx);
		return 1;
	}
	if (!listen_given) {
		/* a kernel without IPv6 (ipv6.disable=1): the default falls back to IPv4 */
		int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			listen = DEFAULT_LISTEN_IPV4;
		else
			close(probe);
	}
	rc = server_sync_new(&r.srv, base, &cfg);
	if (rc == 0)
		rc = server_sync_listen(r.srv, listen);
	if (rc == SERVER_ERR_ARG) {
		fprintf(stderr,
		        "citypass-server: --listen '%s': expected IPV4:PORT or [IPV6]:PORT\n",
		        listen);
		rc = 2;
		goto out;
	}
	if (rc) {
		fprintf(stderr, "citypass-server: cannot start: %s\n", server_strerror(rc));
		rc = 1;
		goto out;
	}
	r.sigterm = evsignal_new(base, SIGTERM, on_signal, &r);
	r.sigint = evsignal_new(base, SIGINT, on_signal, &r);
	if (!r.sigterm || !r.sigint || evsignal_add(r.sigterm, NULL) ||
	    evsignal_add(r.sigint, NULL)) {
		fprintf(stderr, "citypass-server: cannot install signal handlers\n");
		rc = 1;
		goto out;
	}
	if (metrics_addr) {
		char why[300];
		mx.srv = r.srv;
		/* a connection of its own, read only: a scrape never waits on the ingest's */
		mx.st_open = server_store_open(&mx.st, data, 0, NULL) == 0;
		if (service_metrics_listen(&r.metrics, base, metrics_addr, server_metrics_render,
		                           &mx, why, sizeof(why)) != 0) {
			fprintf(stderr, "citypass-server: --metrics: %s\n", why);
			rc = 2;
			goto out;
		}
		/* the port bound (0 asks for a free one): the host part as given */
		char line[400];
		snprintf(line, sizeof(line), "metrics at http://%.*s:%u/metrics",
		         (int)(strrchr(metrics_addr, ':') - metrics_addr), metrics_addr,
		         service_metrics_port(r.metrics));
		if (cfg.log)
			cfg.log(NULL, LOG_INFO, line);
		else
			fprintf(stderr, "citypass-server: %s\n", line);
	}
	uint64_t wd_usec = service_watchdog_usec();
	if (wd_usec > 0) {
		/* twice per interval (service_watchdog_feed lets every tick through) */
		struct timeval tv = {.tv_sec = (time_t)(wd_usec / 2 / 1000000),
		                     .tv_usec = (suseconds_t)(wd_usec / 2 % 1000000)};
		r.watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, &r);
		if (!r.watchdog || event_add(r.watchdog, &tv) != 0) {
			fprintf(stderr, "citypass-server: cannot start the watchdog timer\n");
			rc = 1;
			goto out;
		}
		service_watchdog_feed();
	}
	/* a connection of its own that waits little for a lock: the purge runs on the loop,
	 * and a busy database only delays it to the next run */
	r.purge_open = server_store_open(&r.purge_st, data, 0, NULL) == 0;
	if (r.purge_open) {
		struct timeval tv = {.tv_sec = RETENTION_PURGE_EVERY_S, .tv_usec = 0};
		r.purge_st.ops->busy_timeout(r.purge_st.ctx, 500);
		r.purge = event_new(base, -1, EV_PERSIST, on_purge, &r);
		if (!r.purge || event_add(r.purge, &tv) != 0) {
			fprintf(stderr,
			        "citypass-server: cannot start the retention purge timer\n");
			rc = 1;
			goto out;
		}
		on_purge(-1, 0, &r);
	} else {
		fprintf(stderr, "citypass-server: cannot open the database for the retention "
		                "purge\n");
		rc = 1;
		goto out;
	}
	char status[160];
	snprintf(status, sizeof(status), "serving gates on %s", listen);
	service_notify_ready(status);
	event_base_dispatch(base);
	rc = server_sync_stopped(r.srv) ? 0 : 1;
out:
	if (r.sigterm)
		event_free(r.sigterm);
	if (r.sigint)
		event_free(r.sigint);
	if (r.watchdog)
		event_free(r.watchdog);
	if (r.purge)
		event_free(r.purge);
	if (r.purge_open)
		server_store_close(&r.purge_st);
	service_metrics_free(r.metrics);
	if (mx.st_open)
		mx.st.ops->close(mx.st.ctx);
	server_sync_free(r.srv);
	event_base_free(base);
	backend.ops->destroy(backend.ctx);
	ingest.ops->destroy(ingest.ctx);
	return rc;
}
