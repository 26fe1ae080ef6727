/*
 * citypass-controller — the gate controller daemon (docs/controller.md, "Operations").
 *
 * Two threads: this one is the reader thread (libnfc, QR line, decisions, its own journal
 * connection, the gate); the sync client runs its own (controller/sync_client.h) and
 * installs list updates under the store's write lock. SIGTERM/SIGINT stop cleanly; SIGHUP
 * re-reads the configuration: if it is valid everything is restarted with it, else the
 * error is logged and the running configuration kept.
 *
 * Exit status: 0 stopped by a signal, 1 could not start (one sentence on stderr / syslog),
 * 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "controller/config.h"
#include "controller/devices.h"
#include "controller/error.h"
#include "controller/gate.h"
#include "controller/journal.h"
#include "controller/list_keys.h"
#include "controller/list_store.h"
#include "controller/log.h"
#include "controller/metrics.h"
#include "controller/reader_loop.h"
#include "controller/sync_client.h"
#include "controller/timekeeper.h"
#include "proto/error.h"
#include "proto/sign.h"
#include "service/service.h"

#define CONTROLLER_VERSION "0.1.0"

static volatile sig_atomic_t stop_requested, reload_requested;
/* --check-state: open the gate's state as a start does, say what it holds, stop there */
static bool check_state_only;
static char **daemon_argv; /* the reader's watchdog starts the daemon again with it */

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
}

/* What the sync thread shares with the reader thread. */
struct shared {
	struct controller_config *cfg; /* card_key changes under lock (issue 11) */
	struct controller_list_store *store;
	pthread_rwlock_t lock;
	struct controller_sync *sync;
	struct controller_timekeeper *clock;
	struct controller_reader_loop *loop; /* issue 13: the devices' state for the health */
	const char *state_dir;
	struct controller_list_keys *list_keys; /* issue 11: the list key's rotations followed */
};

/* The keys the next update may be signed by: the newest, and the held list's own while it
 * is older (controller/list_keys.h). On the sync thread, or before it starts. */
static void trust_update(struct shared *s)
{
	struct controller_list_info li;
	controller_list_store_info(s->store, &li);
	controller_list_store_set_keys(
	        s->store, controller_list_keys_for(s->list_keys, li.held ? li.key_id : NULL));
}

/* The real time is at least the device certificate's start: it was signed at enrolment
 * (a floor for a gate whose clock is behind and has never synced: issue 10). */
static int64_t certificate_start(const char *path)
{
	mbedtls_x509_crt crt;
	int64_t t = 0;
	mbedtls_x509_crt_init(&crt);
	if (mbedtls_x509_crt_parse_file(&crt, path) == 0) {
		struct tm tm = {0};
		tm.tm_year = crt.valid_from.year - 1900;
		tm.tm_mon = crt.valid_from.mon - 1;
		tm.tm_mday = crt.valid_from.day;
		tm.tm_hour = crt.valid_from.hour;
		tm.tm_min = crt.valid_from.min;
		tm.tm_sec = crt.valid_from.sec;
		t = (int64_t)timegm(&tm);
	}
	mbedtls_x509_crt_free(&crt);
	return t;
}

/* Called on the thread that installs (or before the sync thread starts): the store is
 * only written there, so reading it needs no lock. */
static void held_list_time(struct shared *s)
{
	struct controller_list_info info;
	controller_list_store_info(s->store, &info);
	if (info.held) /* signed: the real time is at least its issue time */
		controller_timekeeper_at_least(s->clock, info.issued_at);
}

/* The store is only written by the sync thread (this callback and install), so reading
 * it here needs no lock; the reader thread's lookups take the lock's read side. */
static uint64_t held_version(void *ctx)
{
	struct shared *s = ctx;
	uint64_t v;
	unsigned format;
	controller_list_store_hello(s->store, &v, &format);
	return v;
}

static unsigned held_format(void *ctx)
{
	struct shared *s = ctx;
	uint64_t v;
	unsigned format;
	controller_list_store_hello(s->store, &v, &format);
	return format;
}

static int install(void *ctx, enum controller_update_kind kind, const uint8_t *data, size_t len,
                   const uint8_t *sig, size_t sig_len)
{
	struct shared *s = ctx;
	int64_t now = controller_timekeeper_now(s->clock);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* The store prepares and commits the new version aside, then takes the lock for
	 * writing only for the instant it swaps it in: taps never wait for an install. */
	uint64_t before = controller_list_store_version(s->store);
	int rc = kind == CONTROLLER_UPDATE_DELTA
	                 ? controller_list_store_apply_delta(s->store, data, len, sig, sig_len, now)
	                 : controller_list_store_install_snapshot(s->store, data, len, sig, sig_len,
	                                                          now);
	uint64_t after = controller_list_store_version(s->store);
	if (rc == 0) {
		held_list_time(s);
		/* a list under the newest key is held: an older key is refused from now on */
		trust_update(s);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	struct controller_list_store_stats st;
	controller_list_store_stats(s->store, &st);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	if (rc == 0)
		controller_log(LOG_INFO,
		               "list %s installed: version %" PRIu64 " -> %" PRIu64
		               " in %.1f ms (%" PRIu64
		               " bytes in %u files written, %u chunks kept)",
		               kind == CONTROLLER_UPDATE_DELTA ? "delta" : "snapshot", before,
		               after, ms, st.bytes_written, st.files_written, st.chunks_reused);
	else
		controller_log(LOG_WARNING, "list %s refused: %s",
		               kind == CONTROLLER_UPDATE_DELTA ? "delta" : "snapshot",
		               controller_strerror(rc));
	return rc;
}

/* Issue 11: the list key's rotation statements, followed from the keys held and kept in
 * the state directory before any list under the new key comes (controller/list_keys.h). */
static void key_chain(void *ctx, const struct proto_rotation_signed *st, size_t n)
{
	struct shared *s = ctx;
	size_t added = 0;
	int rc = controller_list_keys_follow(s->list_keys, st, n, &added);
	if (added) {
		uint8_t id[PROTO_KEY_ID_LEN];
		controller_list_keys_newest(s->list_keys, id);
		controller_log(LOG_NOTICE,
		               "list key: %zu rotation(s) followed; lists are now signed by key "
		               "%02x%02x%02x%02x%02x%02x%02x%02x",
		               added, id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7]);
		trust_update(s);
	}
	if (rc)
		controller_log(LOG_ERR,
		               "list key: a rotation statement from the server was refused: %s "
		               "(the gate keeps the keys it trusts)",
		               controller_strerror(rc));
}

/* Issue 11: the server's card keys for this sector (at every session; pushed after a
 * rotation). A change replaces the reader's key under the store lock and is kept in the
 * state directory, so that a restart offline still opens the new cards. */
static void card_keys(void *ctx, const struct controller_card_keys *k)
{
	struct shared *s = ctx;
	struct controller_config *cfg = s->cfg;
	struct cardlib_sector_key next;
	pthread_rwlock_rdlock(&s->lock);
	next = cfg->card_key;
	pthread_rwlock_unlock(&s->lock);
	const int same = next.version == k->version && !memcmp(next.master, k->master, 16) &&
	                 next.has_previous == k->has_previous &&
	                 (!k->has_previous || (next.previous_version == k->previous_version &&
	                                       !memcmp(next.previous, k->previous, 16)));
	if (!same) {
		next.version = k->version;
		memcpy(next.master, k->master, 16);
		next.has_previous = k->has_previous;
		next.previous_version = k->has_previous ? k->previous_version : 0;
		memset(next.previous, 0, sizeof(next.previous));
		if (k->has_previous)
			memcpy(next.previous, k->previous, 16);
		if (controller_card_key_save(cfg, &next) != 0)
			controller_log(LOG_WARNING, "card keys: cannot keep them in %s: %s",
			               cfg->state_dir, strerror(errno));
		pthread_rwlock_wrlock(&s->lock);
		cfg->card_key = next;
		pthread_rwlock_unlock(&s->lock);
		if (k->has_previous)
			controller_log(
			        LOG_NOTICE,
			        "card keys: version %u, and version %u for cards not yet moved",
			        k->version, k->previous_version);
		else
			controller_log(LOG_NOTICE, "card keys: version %u only", k->version);
	}
	mbedtls_platform_zeroize(&next, sizeof(next));
}

static void sync_log(void *ctx, const char *line)
{
	(void)ctx;
	controller_log(LOG_INFO, "%s", line); /* the session's lines begin with "sync:" */
}

/* The reader and scanner now, readable from any thread (health report and metrics). */
static void devices_now(void *ctx, int *reader_up, int *scanner_configured, int *scanner_up)
{
	struct shared *s = ctx;
	bool r = false, c = false, q = false;
	if (s->loop)
		controller_reader_loop_devices(s->loop, &r, &c, &q);
	*reader_up = r;
	*scanner_configured = c;
	*scanner_up = q;
}

/* The machine now: free bytes where the journal and lists are (-1: unknown) and the system
 * clock minus the trusted time; readable from any thread (health report and metrics). */
static void host_now(void *ctx, int64_t *free_disk_bytes, int64_t *clock_skew_s)
{
	struct shared *s = ctx;
	struct statvfs fs;
	*free_disk_bytes = statvfs(s->state_dir, &fs) == 0
	                           ? (int64_t)((uint64_t)fs.f_bavail * fs.f_frsize)
	                           : -1;
	*clock_skew_s = controller_timekeeper_skew(s->clock);
}

/* Issue 13: what the office sees of this gate (sync thread). */
static void health(void *ctx, struct controller_gate_health *out)
{
	struct shared *s = ctx;
	int reader, scanner_configured, scanner;
	devices_now(ctx, &reader, &scanner_configured, &scanner);
	out->reader = reader ? CONTROLLER_DEVICE_OK : CONTROLLER_DEVICE_DOWN;
	out->scanner = !scanner_configured ? CONTROLLER_DEVICE_NOT_CONFIGURED
	               : scanner           ? CONTROLLER_DEVICE_OK
	                                   : CONTROLLER_DEVICE_DOWN;
	/* the sync thread is the store's only writer: no lock needed to read it here */
	struct controller_list_info info;
	controller_list_store_info(s->store, &info);
	out->list_version = info.version;
	out->list_issued_at = info.held ? info.issued_at : 0;
	int64_t free_bytes;
	host_now(ctx, &free_bytes, &out->clock_skew_s);
	if (free_bytes >= 0)
		out->free_disk_bytes = (uint64_t)free_bytes;
	controller_metrics_health(out);
}

static void devices_changed(void *ctx)
{
	struct shared *s = ctx;
	if (s->sync)
		controller_sync_health_changed(s->sync);
}

static void granted(void *ctx, const uint8_t key[8])
{
	struct shared *s = ctx;
	if (s->sync)
		controller_sync_share_grant(s->sync, key);
}

static void kick(void *ctx)
{
	struct shared *s = ctx;
	if (s->sync)
		controller_sync_kick(s->sync);
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * One life of the daemon with one configuration: 0 when stopped, 1 when it could not
 * start. Returns on SIGTERM or SIGHUP (reload_requested then stays set for the caller).
 */
/* how: "started", "reloaded" or, after a refused reload, "restarted" on the running
 * configuration: the log tells an operator which configuration the gate now runs. */
static int run(struct controller_config *cfg, const char *how)
{
	char err[CONTROLLER_ERROR_MAX] = "";
	char path[CONTROLLER_PATH_MAX + 32];
	struct shared sh;
	memset(&sh, 0, sizeof(sh));
	sh.cfg = cfg;
	struct controller_journal *journal = NULL;
	struct controller_gate *gate = NULL;
	struct controller_reader_loop *loop = NULL;
	struct controller_metrics_server *metrics = NULL;
	int ret = 1, rc;
	bool lock_ready = false;

	/* every line from here names the gate (journald fields, controller/log.h) */
	controller_log_context(cfg->device_id, cfg->site_name, cfg->sector_name);
	/* The site's zone becomes the process's, once, before any thread starts: the reader
	 * loop then breaks time down with localtime_r and never writes the environment. */
	if (setenv("TZ", cfg->tz, 1) != 0) {
		snprintf(err, sizeof(err), "tz %s: cannot set it", cfg->tz);
		goto out;
	}
	tzset();
	if (make_dir(cfg->state_dir) != 0) {
		snprintf(err, sizeof(err), "state-dir %s: cannot create it: %s", cfg->state_dir,
		         strerror(errno));
		goto out;
	}
	rc = controller_list_keys_open(&sh.list_keys, cfg->list_key_path, cfg->state_dir, err,
	                               sizeof(err));
	if (rc != 0)
		goto out;
	if (err[0]) {
		controller_log(LOG_WARNING, "list key: %s", err);
		err[0] = 0;
	}
	sh.clock = controller_timekeeper_new(certificate_start(cfg->cert_path));
	if (!sh.clock) {
		snprintf(err, sizeof(err), "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/lists", cfg->state_dir);
	/* any key of the chain at open: the list held may predate a rotation followed since */
	rc = controller_list_store_open(&sh.store, path, cfg->sector,
	                                controller_list_keys_all(sh.list_keys),
	                                controller_timekeeper_now(sh.clock));
	if (rc != 0) {
		snprintf(err, sizeof(err), "list store %s: %s", path, controller_strerror(rc));
		goto out;
	}
	struct controller_list_info li;
	controller_list_store_info(sh.store, &li);
	if (controller_list_store_fell_back(sh.store))
		controller_log(LOG_WARNING,
		               "list store %s: the list on disk was not used (%s): asking the "
		               "server for a snapshot",
		               path,
		               controller_strerror(controller_list_store_open_error(sh.store)));
	controller_log(LOG_NOTICE,
	               "list store %s: version %" PRIu64 " (format %u, %" PRIu32 " passes)%s", path,
	               li.version, li.held ? li.format : 0, li.entries,
	               li.damaged ? ", damaged files found: asking for a snapshot" : "");
	if (pthread_rwlock_init(&sh.lock, NULL) != 0) {
		snprintf(err, sizeof(err), "cannot create the list lock");
		goto out;
	}
	lock_ready = true;
	controller_list_store_set_lock(sh.store, &sh.lock);
	trust_update(&sh); /* from here on: the newest key, and the held list's own */
	char journal_path[CONTROLLER_PATH_MAX + 32];
	snprintf(journal_path, sizeof(journal_path), "%s/journal.db", cfg->state_dir);
	char why[200];
	rc = controller_journal_open_why(&journal, journal_path, why, sizeof(why));
	if (rc != 0) {
		/* sqlite's cause, not only "journal database error" (issue 14) */
		snprintf(err, sizeof(err), "journal %s: %s%s%s", journal_path,
		         controller_strerror(rc), why[0] ? ": " : "", why);
		goto out;
	}
	int64_t kept_floor = 0;
	if (controller_journal_time_floor(journal, &kept_floor) == 0)
		controller_timekeeper_at_least(sh.clock, kept_floor);
	held_list_time(&sh);
	if (controller_timekeeper_skew(sh.clock) < -300)
		controller_log(LOG_WARNING,
		               "clock: the system clock is %lld s behind the last trusted time: "
		               "deciding at the trusted time until the server states its own",
		               (long long)-controller_timekeeper_skew(sh.clock));
	uint64_t orphans = 0;
	rc = controller_journal_settle_orphans(journal, &orphans);
	if (rc != 0) {
		snprintf(err, sizeof(err), "journal %s: %s", journal_path,
		         controller_journal_strerror(journal, rc));
		goto out;
	}
	if (orphans)
		controller_log(LOG_WARNING,
		               "journal: %" PRIu64 " card debit(s) interrupted between the journal "
		               "and the card's commit: counted as granted",
		               orphans);
	if (check_state_only) {
		struct controller_journal_stats js;
		rc = controller_journal_stats(journal, &js);
		if (rc != 0) {
			snprintf(err, sizeof(err), "journal %s: %s", journal_path,
			         controller_strerror(rc));
			goto out;
		}
		printf("state ok: list version %" PRIu64 "%s; journal: %" PRIu64
		       " statistic(s), %" PRIu64 " use(s) unacknowledged\n",
		       controller_list_store_version(sh.store),
		       controller_list_store_fell_back(sh.store) ? " (fell back)" : "",
		       js.stat_pending, js.consumption_pending);
		ret = 0;
		goto out;
	}
	if (controller_gate_open(&gate, cfg, err, sizeof(err)) != 0)
		goto out;
	struct controller_reader_loop_params lp = {
	        .cfg = cfg,
	        .store = sh.store,
	        .store_lock = &sh.lock,
	        .journal = journal,
	        .gate = gate,
	        .clock = sh.clock,
	        .journal_written = kick,
	        .devices_changed = devices_changed,
	        .granted = granted,
	        .ctx = &sh,
	        .argv = daemon_argv,
	};
	if (controller_reader_loop_open(&loop, &lp, err, sizeof(err)) != 0)
		goto out;
	sh.loop = loop;
	sh.state_dir = cfg->state_dir;

	char ca_followed[CONTROLLER_PATH_MAX + 32];
	snprintf(ca_followed, sizeof(ca_followed), "%s/ca-followed.pem", cfg->state_dir);
	struct controller_sync_config sc = {
	        .server = cfg->server,
	        .server_name = cfg->server_name,
	        .ca_path = cfg->ca_path,
	        .ca_followed_path = ca_followed,
	        .cert_path = cfg->cert_path,
	        .key_path = cfg->key_path,
	        .device_id = cfg->device_id,
	        .sector = cfg->sector,
	        .software_version = "citypass-controller " CONTROLLER_VERSION,
	        .journal_path = journal_path,
	        .batch_max = cfg->batch_max,
	        .reconnect_min_ms = cfg->reconnect_min_ms,
	        .reconnect_max_ms = cfg->reconnect_max_ms,
	        .keepalive_s = cfg->keepalive_s,
	        .held_version = held_version,
	        .held_format = held_format,
	        .install = install,
	        .card_keys = card_keys,
	        .key_chain = key_chain,
	        .clock = sh.clock,
	        .health = health,
	        .share_passback = cfg->policy.antipassback_minutes > 0,
	        .log = sync_log,
	        .ctx = &sh,
	};
	/* The sync thread inherits this mask: signals are for the reader thread only. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = controller_sync_start(&sh.sync, &sc);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, sizeof(err), "sync client: %s", controller_strerror(rc));
		sh.sync = NULL;
		goto out;
	}
	if (cfg->metrics[0]) {
		const struct controller_metrics_params mp = {
		        .addr = cfg->metrics,
		        .journal_path = journal_path,
		        .device = cfg->device_id,
		        .site = cfg->site_name,
		        .sector = cfg->sector_name,
		        .devices = devices_now,
		        .host = host_now,
		        .ctx = &sh,
		};
		char mwhy[300];
		/* like the sync thread, it inherits a mask: signals are for the reader thread */
		sigset_t all2, old2;
		sigfillset(&all2);
		pthread_sigmask(SIG_BLOCK, &all2, &old2);
		rc = controller_metrics_start(&metrics, &mp, mwhy, sizeof(mwhy));
		pthread_sigmask(SIG_SETMASK, &old2, NULL);
		if (rc != 0) {
			snprintf(err, sizeof(err), "metrics: %s", mwhy);
			goto out;
		}
		controller_log(LOG_INFO, "metrics at http://%.*s:%u/metrics",
		               (int)(strrchr(cfg->metrics, ':') - cfg->metrics), cfg->metrics,
		               controller_metrics_port(metrics));
	}
	controller_log(LOG_NOTICE,
	               "%s: device %s, site %u (%s), gate %u, sector %u (%s), reader %s, "
	               "gate backend %s, server %s",
	               how, cfg->device_id, (unsigned)cfg->site, cfg->site_name,
	               (unsigned)cfg->gate, (unsigned)cfg->sector, cfg->sector_name, cfg->reader,
	               gate->name, cfg->server);
	char status[CONTROLLER_NAME_MAX * 2 + CONTROLLER_PATH_MAX + 64];
	snprintf(status, sizeof(status), "%s: device %s, sector %s, server %s", how, cfg->device_id,
	         cfg->sector_name, cfg->server);
	service_notify_ready(status);
	controller_reader_loop_run(loop, &stop_requested, &reload_requested);
	if (stop_requested)
		service_notify_stopping();
	else if (reload_requested)
		service_notify_reloading();
	ret = 0;
out:
	if (ret != 0)
		controller_log(LOG_ERR, "cannot start: %s", err);
	controller_metrics_stop(metrics);
	controller_sync_stop(sh.sync);
	controller_reader_loop_close(loop);
	controller_gate_close(gate);
	if (journal && sh.clock) /* the next start begins from here */
		(void)controller_journal_set_time_floor(journal,
		                                        controller_timekeeper_floor(sh.clock));
	controller_journal_close(journal);
	controller_timekeeper_free(sh.clock);
	controller_list_store_close(sh.store);
	if (lock_ready)
		pthread_rwlock_destroy(&sh.lock);
	controller_list_keys_close(sh.list_keys); /* after the store: it holds its rings */
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: citypass-controller --config FILE [--check | --check-state]\n"
	           "\n"
	           "Gate controller of citypass: reads cards, phones and QR codes at one reader,\n"
	           "decides offline from the signed list, journals every decision, drives the\n"
	           "gate, and syncs with citypass-server (docs/controller.md).\n"
	           "\n"
	           "  -c, --config FILE   the controller's configuration (key = value lines)\n"
	           "      --check         load and check the configuration, then exit\n"
	           "      --check-state   open the state directory as a start does (the list\n"
	           "                      store, the journal), print what it holds, exit\n"
	           "      --device-policy print the systemd drop-in allowing the devices this\n"
	           "                      configuration opens (reader, QR scanner, GPIO chip),\n"
	           "                      then exit (dist/systemd/citypass-controller-generator)\n"
	           "  -h, --help          this help\n"
	           "      --version       print the version\n"
	           "\n"
	           "Signals: SIGTERM/SIGINT stop, SIGHUP reloads the configuration.\n"
	           "Exit status: 0 stopped (or --check passed), 1 could not start, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"check", no_argument, NULL, 'k'},
	        {"check-state", no_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {"device-policy", no_argument, NULL, 'D'},
	        {"version", no_argument, NULL, 'V'},
	        {NULL, 0, NULL, 0},
	};
	const char *config_path = getenv("CITYPASS_CONTROLLER_CONFIG");
	daemon_argv = argv;
	bool check_only = false, device_policy = false;
	int c;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 's':
			check_state_only = true;
			break;
		case 'D':
			device_policy = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("citypass-controller %s\n", CONTROLLER_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || !config_path) {
		fprintf(stderr, "citypass-controller: %s\n",
		        optind != argc ? "unexpected argument" : "--config FILE is required");
		usage(stderr);
		return 2;
	}

	static struct controller_config cfg, next;
	char err[CONTROLLER_ERROR_MAX];
	if (controller_config_load(config_path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "citypass-controller: %s\n", err);
		return 1;
	}
	if (device_policy) {
		static char text[4096];
		int rc = controller_device_policy(&cfg, text, sizeof(text), err, sizeof(err));
		controller_config_wipe(&cfg);
		if (rc != 0) {
			fprintf(stderr, "citypass-controller: %s: %s\n", config_path, err);
			return 1;
		}
		fputs(text, stdout);
		return 0;
	}
	if (check_only) {
		printf("configuration ok: device %s, sector %u, gate backend %s\n", cfg.device_id,
		       (unsigned)cfg.sector,
		       cfg.gate_kind == CONTROLLER_GATE_GPIO ? "gpio" : "bench");
		controller_config_wipe(&cfg);
		return 0;
	}
	controller_log_init("citypass-controller", cfg.log_syslog);
	/* libnfc logs every failed open itself, once a second while a reader is unplugged:
	 * the daemon says it once (docs/controller.md). An operator's own level wins. Before
	 * any thread: libnfc reads the environment (HIL-NOTES.md, pitfall 2). */
	setenv("LIBNFC_LOG_LEVEL", "0", 0);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = run(&cfg, "started");
	while (rc == 0 && !stop_requested && reload_requested) {
		const char *how = "reloaded";
		reload_requested = 0;
		if (controller_config_load(config_path, &next, err, sizeof(err)) != 0) {
			controller_log(LOG_ERR,
			               "reload refused, keeping the running configuration: %s",
			               err);
			how = "restarted";
		} else {
			controller_config_wipe(&cfg);
			cfg = next;
			controller_config_wipe(&next);
			controller_log_init("citypass-controller", cfg.log_syslog);
			controller_log(LOG_NOTICE, "configuration reloaded from %s", config_path);
		}
		rc = run(&cfg, how);
		/* a reload that cannot start (reader gone...) ends the daemon: exit 1 */
	}
	controller_config_wipe(&cfg);
	if (rc == 0)
		controller_log(LOG_NOTICE, "stopped");
	return rc;
}
