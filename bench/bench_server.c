/*
 * bench_server.c — the sync server's two budgets of DESIGN.md section 9, each printed
 * beside a baseline measured in the same run:
 *
 * 1. Event ingestion with durable acks, against the raw batched sqlite insert rate, in
 *    alternating phases sized so that each baseline phase takes >= 2 s.
 *    Baseline: the same rows (the rights database's `stats` table layout) inserted by
 *    1 000 per transaction, WAL, synchronous=FULL, no network. Ours: simulated controllers
 *    upload batches of 1 000 over TLS to citypass-server's library on the real sqlite
 *    backend (server_sync_backend_open, a deployment made with citypass-admin), each
 *    batch acknowledged only after its commit. Goal: ratio >= 0.7.
 *
 * 2. The server's push alone: 1 000 controllers connected over TLS hold version N; a new
 *    version appears in the in-memory backend; time until every controller holds it
 *    (ListPublished + delta received). Several rounds; p50 / p99 / max. It measures the
 *    server (polling, pushing, TLS), not the budget's revocation, which bench_revoke times
 *    end to end (citypass-admin, sqlite, the real server binary).
 *
 * 3. With --pg URI (issue 16, item 5): ingestion on PostgreSQL instead, through two real
 *    citypass-server processes on that database (the gates split between them), against
 *    the raw rate of the same engine in the same run: the same rows COPYed into a table of
 *    the same layout (CREATE TABLE ... LIKE stats INCLUDING ALL), 1 000 rows per
 *    transaction, one writer process per instance, on the same server (whose fsync and
 *    synchronous_commit are read back and printed: a bench starts it with both on). The
 *    push part is skipped (it does not touch the store).
 *
 *   bench_server [--admin PATH-TO-citypass-admin] [--controllers N] [--rows N] [--rounds N]
 *                [--pg URI --server PATH-TO-citypass-server [--instances N]]
 * Without --admin the ingestion part is skipped (it needs a real deployment).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "harness.h"

#define BATCH   1000
#define SECTOR  1 /* "pool" in a deployment made by citypass-admin init */
#define WAIT_MS 30000

/* --- helpers ---------------------------------------------------------------------------- */

static int run_cmd(char *const argv[])
{
	pid_t pid = fork();
	int status;
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Step every controller once poll() says it may progress (or every 20 ms). */
static void step_all(struct sim_ctl *c, size_t n, struct pollfd *pfd)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		pfd[i].fd = c[i].closed ? -1 : c[i].fd;
		pfd[i].events = sim_poll_events(&c[i]);
		pfd[i].revents = 0;
	}
	poll(pfd, n, 20);
	for (size_t i = 0; i < n; i++) {
		if (pfd[i].revents || c[i].want_write || c[i].out_len) {
			sim_step(&c[i]);
			m++;
		}
	}
	(void)m;
}

/* --- 1. ingestion ----------------------------------------------------------------------- */

static const char stats_ddl[] =
        "CREATE TABLE stats(device TEXT NOT NULL, seq INTEGER NOT NULL, site INTEGER NOT NULL,"
        " gate INTEGER NOT NULL, sector INTEGER NOT NULL, product INTEGER NOT NULL,"
        " outcome INTEGER NOT NULL, reason INTEGER NOT NULL, quarter_hour INTEGER NOT NULL,"
        " PRIMARY KEY(device, seq)) WITHOUT ROWID;"
        "CREATE INDEX stats_time ON stats(quarter_hour);";

/* The baseline: the same rows straight into the same table, no network, no protocol. */
struct baseline {
	sqlite3 *db;
	sqlite3_stmt *st;
};

static int baseline_open(struct baseline *b, const char *dir)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/baseline.db", dir);
	if (sqlite3_open(path, &b->db) != SQLITE_OK)
		return -1;
	if (sqlite3_exec(b->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
	                 NULL) != SQLITE_OK ||
	    sqlite3_exec(b->db, stats_ddl, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(b->db,
	                       "INSERT INTO stats(device, seq, site, gate, sector, product, "
	                       "outcome, reason, quarter_hour) VALUES(?,?,?,?,?,?,?,?,?)",
	                       -1, &b->st, NULL) != SQLITE_OK)
		return -1;
	return 0;
}

static void baseline_close(struct baseline *b)
{
	sqlite3_finalize(b->st);
	sqlite3_close(b->db);
}

/* Insert sequences first..first+per_dev-1 of each device, BATCH per transaction. */
static double baseline_phase(struct baseline *b, uint64_t first, size_t per_dev, size_t devices)
{
	double t0 = sim_now();
	for (size_t d = 0; d < devices; d++) {
		char dev[32];
		snprintf(dev, sizeof(dev), "gate-%zu", d + 1);
		for (size_t done = 0; done < per_dev; done += BATCH) {
			sqlite3_exec(b->db, "BEGIN", NULL, NULL, NULL);
			for (size_t i = 0; i < BATCH && done + i < per_dev; i++) {
				sqlite3_reset(b->st);
				sqlite3_bind_text(b->st, 1, dev, -1, SQLITE_STATIC);
				sqlite3_bind_int64(b->st, 2, (sqlite3_int64)(first + done + i));
				sqlite3_bind_int64(b->st, 3, 1);
				sqlite3_bind_int64(b->st, 4, (sqlite3_int64)d + 1);
				sqlite3_bind_int64(b->st, 5, SECTOR);
				sqlite3_bind_int64(b->st, 6, 10);
				sqlite3_bind_int(b->st, 7, 1);
				sqlite3_bind_int64(b->st, 8, 0);
				sqlite3_bind_int64(b->st, 9, 1700000100 - 1700000100 % 900);
				if (sqlite3_step(b->st) != SQLITE_DONE)
					return 0;
			}
			if (sqlite3_exec(b->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
				return 0;
		}
	}
	return (double)(per_dev * devices) / (sim_now() - t0);
}

/* Upload sequences first..first+per_dev-1 from every controller, two batches in flight
 * each (a controller with a backlog), until every one is acknowledged. */
static double sync_phase(struct sim_ctl *c, struct pollfd *pfd, size_t devices, uint64_t first,
                         size_t per_dev)
{
	uint64_t next[16], last = first + per_dev - 1;
	double t0 = sim_now();

	for (size_t i = 0; i < devices; i++)
		next[i] = first;
	for (;;) {
		size_t done = 0;
		for (size_t i = 0; i < devices; i++) {
			while (next[i] <= last && next[i] <= c[i].stats_acked + 2 * BATCH) {
				size_t n = last - next[i] + 1 < BATCH ? last - next[i] + 1 : BATCH;
				sim_send_stats(&c[i], next[i], n, 1, SECTOR);
				next[i] += n;
			}
			if (c[i].stats_acked >= last)
				done++;
			if (c[i].closed) {
				fprintf(stderr, "bench: %s closed: %s\n", c[i].id, c[i].why);
				return 0;
			}
		}
		if (done == devices)
			break;
		if (sim_now() - t0 > 300) {
			fprintf(stderr, "bench: ingestion did not finish\n");
			return 0;
		}
		step_all(c, devices, pfd);
	}
	return (double)(per_dev * devices) / (sim_now() - t0);
}

static double median3(double *v)
{
	qsort(v, 3, sizeof(*v), cmp_double);
	return v[1];
}

#define PHASES 3
/* the baseline phase's shortest length: 2 s (DESIGN s.9), less only for the smoke test */
static double MIN_PHASE_S = 2.0;

/*
 * The two measurements alternate (baseline, server, baseline, ...) in PHASES phases of
 * rows / PHASES each, so both meet the same machine load; the ratio is of the medians.
 */
static int ingestion(const char *admin, const char *dir, size_t rows, size_t devices)
{
	char data[600], bundle[640], site_arg[] = "pool-bench", server_arg[] = "127.0.0.1:1";
	static char ca[700], cert[700], key[700];
	struct harness h;
	struct baseline base = {0};
	struct server_sync_backend be = {0}, ingest_be = {0};
	struct sim_ctl *c = calloc(devices, sizeof(*c));
	struct pollfd *pfd = calloc(devices, sizeof(*pfd));
	double base_rate[PHASES], our_rate[PHASES];
	int rc = -1;

	if (!c || !pfd || devices > 16 || harness_init(&h) != 0)
		return -1;
	snprintf(data, sizeof(data), "%s/data", dir);
	{
		char *init[] = {(char *)admin, "--data", data, "init", NULL};
		char *site[] = {(char *)admin, "--data",   data,   "site", "add",
		                site_arg,      "--sector", "pool", NULL};
		/* the simulated gates report product 10: the server stores only products its
		 * rights have (docs/sync-server.md, what a gate may report) */
		char *pass[] = {(char *)admin, "--data",          data,
		                "pass",        "issue",           "--anonymous",
		                "--right",     "pool,product=10", NULL};
		if (run_cmd(init) || run_cmd(site) || run_cmd(pass)) {
			fprintf(stderr, "bench: citypass-admin init / site add failed\n");
			goto out;
		}
	}
	for (size_t i = 0; i < devices; i++) {
		char id[32];
		snprintf(id, sizeof(id), "gate-%zu", i + 1);
		snprintf(bundle, sizeof(bundle), "%s/bundle-%zu", dir, i + 1);
		char *add[] = {(char *)admin, "--data", data,       "device",   "add",   id,
		               "--site",      site_arg, "--server", server_arg, "--out", bundle,
		               NULL};
		if (run_cmd(add)) {
			fprintf(stderr, "bench: citypass-admin device add failed\n");
			goto out;
		}
	}
	if (baseline_open(&base, dir) != 0) {
		fprintf(stderr, "bench: cannot create the baseline database\n");
		goto out;
	}
	/* two connections, as citypass-server opens them: the store's sqlite connection is
	 * for one thread only (opened without sqlite's mutex), and the ingest thread commits
	 * while the loop thread reads. Sharing one made both spin inside sqlite. */
	if (server_sync_backend_open(&be, data, 0, NULL) != 0 ||
	    server_sync_backend_open(&ingest_be, data, 1, NULL) != 0) {
		fprintf(stderr, "bench: cannot open the rights database\n");
		goto out;
	}
	snprintf(ca, sizeof(ca), "%s/keys/ca.crt", data);
	snprintf(cert, sizeof(cert), "%s/keys/server.crt", data);
	snprintf(key, sizeof(key), "%s/keys/server.key", data);
	h.cfg.backend = be;
	h.cfg.ingest_backend = ingest_be;
	h.cfg.ca_path = ca;
	h.cfg.cert_path = cert;
	h.cfg.key_path = key;
	h.cfg.log_level = LOG_WARNING;
	h.quiet = 1;
	if (harness_start(&h) != 0)
		goto out;
	for (size_t i = 0; i < devices; i++) {
		char id[32], dca[700], dcert[700], dkey[700];
		snprintf(id, sizeof(id), "gate-%zu", i + 1);
		snprintf(dca, sizeof(dca), "%s/bundle-%zu/ca.crt", dir, i + 1);
		snprintf(dcert, sizeof(dcert), "%s/bundle-%zu/device.crt", dir, i + 1);
		snprintf(dkey, sizeof(dkey), "%s/bundle-%zu/device.key", dir, i + 1);
		if (sim_init_named(&c[i], id, SECTOR, dca, dcert, dkey, "localhost") != 0)
			goto out;
		c[i].held = ~0ull >> 1;        /* lists are not what this measures */
		c[i].gate = (uint32_t)(i + 1); /* device add numbers the gates in order */
		if (sim_connect(&c[i], h.port) != 0 || sim_send_hello(&c[i], NULL) != 0 ||
		    sim_wait(&c[i], sim_cond_welcomed, WAIT_MS) != 1) {
			fprintf(stderr, "bench: controller %s: %s\n", id, c[i].why);
			goto out;
		}
	}
	/* phases long enough that the ratio is stable: the baseline's phase takes >= 2 s (so
	 * does ours, slower), whatever the machine; the calibration rows are not counted */
	size_t per_dev = rows / devices / PHASES;
	for (uint64_t cal = 1000000000ull;;) {
		double t0 = sim_now();
		if (baseline_phase(&base, cal, per_dev, devices) <= 0)
			goto out;
		cal += per_dev;
		if (sim_now() - t0 >= MIN_PHASE_S)
			break;
		per_dev *= 2;
	}
	for (int p = 0; p < PHASES; p++) {
		uint64_t first = 1 + (uint64_t)p * per_dev;
		base_rate[p] = baseline_phase(&base, first, per_dev, devices);
		our_rate[p] = sync_phase(c, pfd, devices, first, per_dev);
		if (base_rate[p] <= 0 || our_rate[p] <= 0)
			goto out;
	}
	double b = median3(base_rate), o = median3(our_rate);
	printf("ingestion: raw sqlite batched insert %.0f rows/s (WAL, synchronous=FULL, %d per "
	       "transaction); sync server with durable acks %.0f rows/s (%zu controllers over "
	       "TLS, real sqlite backend); medians of %d alternating phases of %zu rows (the "
	       "baseline's >= %.1f s each): ratio %.2f (goal >= 0.70: %s)\n",
	       b, BATCH, o, devices, PHASES, per_dev * devices, MIN_PHASE_S, o / b,
	       o / b >= 0.7 ? "met" : "MISSED");
	rc = 0;
out:
	harness_stop(&h);
	for (size_t i = 0; i < devices; i++)
		if (c[i].tls)
			sim_free(&c[i]);
	if (be.ops)
		be.ops->destroy(be.ctx);
	if (ingest_be.ops)
		ingest_be.ops->destroy(ingest_be.ctx);
	if (base.db)
		baseline_close(&base);
	harness_free(&h);
	free(c);
	free(pfd);
	return rc;
}

/* --- 3. ingestion on PostgreSQL, two real server instances ------------------------------ */

#define MAX_INSTANCES 4

static pid_t g_servers[MAX_INSTANCES];
static char g_dir[64]; /* the run's directory, removed however the run ends */

static void remove_dir(void)
{
	if (!g_dir[0])
		return;
	pid_t pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", g_dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	g_dir[0] = 0;
}

/* SIGTERM to every server this bench started, then reap them. */
static void stop_servers(void)
{
	for (int i = 0; i < MAX_INSTANCES; i++)
		if (g_servers[i] > 0)
			kill(g_servers[i], SIGTERM);
	for (int i = 0; i < MAX_INSTANCES; i++)
		if (g_servers[i] > 0) {
			waitpid(g_servers[i], NULL, 0);
			g_servers[i] = 0;
		}
}

/* Ctrl-C or a stop in the middle: no server outlives the bench (pg_run.sh stops the
 * database after us, and would wait for their connections otherwise). */
static void on_signal(int sig)
{
	stop_servers();
	remove_dir();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* citypass-server --data DATA --listen 127.0.0.1:0, its log in LOG; its port from the
 * line it logs once listening. Returns the pid, or -1. */
static pid_t start_server(const char *server, const char *data, const char *log, unsigned *port)
{
	char listen[] = "127.0.0.1:0";
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		char *argv[] = {(char *)server, "--data", (char *)data, "--listen", listen, NULL};
		execv(server, argv);
		_exit(127);
	}
	for (int t = 0; t < 600; t++) {
		FILE *f = fopen(log, "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f)) {
			const char *p = strstr(line, "127.0.0.1:");
			if (p && strstr(line, "listening") && sscanf(p + 10, "%u", port) == 1) {
				fclose(f);
				return pid;
			}
		}
		if (f)
			fclose(f);
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return -1;
}

static int pg_ok(PGconn *db, PGresult *r, const char *what)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN) {
		PQclear(r);
		return 0;
	}
	fprintf(stderr, "bench: %s: %s", what, PQerrorMessage(db));
	PQclear(r);
	return -1;
}

/* One baseline writer: sequences first..first+per_dev-1 of devices k, k+step, ..., each
 * BATCH rows a transaction, by COPY. Returns 0 or -1. */
static int pg_writer(const char *uri, size_t k, size_t step, size_t devices, uint64_t first,
                     size_t per_dev)
{
	PGconn *db = PQconnectdb(uri);
	char row[160];
	int rc = -1;
	if (PQstatus(db) != CONNECTION_OK) {
		fprintf(stderr, "bench: baseline: %s", PQerrorMessage(db));
		goto out;
	}
	if (pg_ok(db, PQexec(db, "SET synchronous_commit = on"), "baseline"))
		goto out;
	for (size_t d = k; d < devices; d += step) {
		for (size_t done = 0; done < per_dev; done += BATCH) {
			if (pg_ok(db, PQexec(db, "BEGIN"), "baseline BEGIN") ||
			    pg_ok(db,
			          PQexec(db, "COPY bench_raw_stats(device, epoch, seq, site, gate, "
			                     "sector, product, outcome, reason, quarter_hour) FROM "
			                     "STDIN"),
			          "baseline COPY"))
				goto out;
			for (size_t i = 0; i < BATCH && done + i < per_dev; i++) {
				int n = snprintf(row, sizeof(row),
				                 "gate-%zu\t0\t%llu\t1\t%zu\t%d\t10\t1\t0\t%d\n",
				                 d + 1, (unsigned long long)(first + done + i),
				                 d + 1, SECTOR, 1700000100 - 1700000100 % 900);
				if (PQputCopyData(db, row, n) != 1)
					goto out;
			}
			if (PQputCopyEnd(db, NULL) != 1 ||
			    pg_ok(db, PQgetResult(db), "baseline COPY end"))
				goto out;
			PQclear(PQgetResult(db)); /* the NULL that ends the COPY's results */
			if (pg_ok(db, PQexec(db, "COMMIT"), "baseline COMMIT"))
				goto out;
		}
	}
	rc = 0;
out:
	PQfinish(db);
	return rc;
}

/* The baseline phase: one writer process per instance, at once, as the instances write;
 * rows per second over the phase's wall time, or 0. */
static double pg_baseline_phase(const char *uri, size_t writers, uint64_t first, size_t per_dev,
                                size_t devices)
{
	pid_t pid[MAX_INSTANCES];
	int ok = 1;
	double t0 = sim_now();
	fflush(NULL);
	for (size_t k = 0; k < writers; k++) {
		pid[k] = fork();
		if (pid[k] == 0)
			_exit(pg_writer(uri, k, writers, devices, first, per_dev) ? 1 : 0);
		if (pid[k] < 0)
			ok = 0;
	}
	for (size_t k = 0; k < writers; k++) {
		int status;
		if (pid[k] > 0 &&
		    (waitpid(pid[k], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)))
			ok = 0;
	}
	return ok ? (double)(per_dev * devices) / (sim_now() - t0) : 0;
}

/* One value of a query on URI into out (a line of text); 0 or -1. */
static int pg_value(const char *uri, const char *sql, char *out, size_t cap)
{
	PGconn *db = PQconnectdb(uri);
	PGresult *r = PQstatus(db) == CONNECTION_OK ? PQexec(db, sql) : NULL;
	int rc = -1;
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
		rc = 0;
	} else {
		fprintf(stderr, "bench: %s: %s", sql, PQerrorMessage(db));
	}
	PQclear(r);
	PQfinish(db);
	return rc;
}

static int ingestion_pg(const char *admin, const char *server, const char *uri, const char *dir,
                        size_t rows, size_t devices, size_t instances)
{
	char data[600], bundle[640], site_arg[] = "pool-bench", server_arg[] = "127.0.0.1:1";
	char log[700], fsync_s[16] = "", sync_s[16] = "", stored[32] = "";
	unsigned port[MAX_INSTANCES] = {0};
	struct sim_ctl *c = calloc(devices, sizeof(*c));
	struct pollfd *pfd = calloc(devices, sizeof(*pfd));
	double base_rate[PHASES], our_rate[PHASES];
	int rc = -1;

	if (!c || !pfd || devices > 16 || instances < 1 || instances > MAX_INSTANCES)
		goto out;
	snprintf(data, sizeof(data), "%s/data", dir);
	{
		char *init[] = {(char *)admin, "--data",    data, "init",
		                "--store",     (char *)uri, NULL};
		char *site[] = {(char *)admin, "--data",   data,   "site", "add",
		                site_arg,      "--sector", "pool", NULL};
		char *pass[] = {(char *)admin, "--data",          data,
		                "pass",        "issue",           "--anonymous",
		                "--right",     "pool,product=10", NULL};
		if (run_cmd(init) || run_cmd(site) || run_cmd(pass)) {
			fprintf(stderr, "bench: citypass-admin init --store / site add failed\n");
			goto out;
		}
	}
	for (size_t i = 0; i < devices; i++) {
		char id[32];
		snprintf(id, sizeof(id), "gate-%zu", i + 1);
		snprintf(bundle, sizeof(bundle), "%s/bundle-%zu", dir, i + 1);
		char *add[] = {(char *)admin, "--data", data,       "device",   "add",   id,
		               "--site",      site_arg, "--server", server_arg, "--out", bundle,
		               NULL};
		if (run_cmd(add)) {
			fprintf(stderr, "bench: citypass-admin device add failed\n");
			goto out;
		}
	}
	/* the baseline's table: the server's own layout, its keys and indexes */
	{
		PGconn *db = PQconnectdb(uri);
		int bad =
		        PQstatus(db) != CONNECTION_OK ||
		        pg_ok(db,
		              PQexec(db, "CREATE TABLE bench_raw_stats (LIKE stats INCLUDING ALL)"),
		              "baseline table");
		if (PQstatus(db) != CONNECTION_OK)
			fprintf(stderr, "bench: %s", PQerrorMessage(db));
		PQfinish(db);
		if (bad)
			goto out;
	}
	if (pg_value(uri, "SHOW fsync", fsync_s, sizeof(fsync_s)) ||
	    pg_value(uri, "SHOW synchronous_commit", sync_s, sizeof(sync_s)))
		goto out;
	for (size_t k = 0; k < instances; k++) {
		snprintf(log, sizeof(log), "%s/server-%zu.log", dir, k + 1);
		g_servers[k] = start_server(server, data, log, &port[k]);
		if (g_servers[k] < 0) {
			g_servers[k] = 0;
			fprintf(stderr, "bench: citypass-server %zu did not start (its log: %s)\n",
			        k + 1, log);
			goto out;
		}
	}
	for (size_t i = 0; i < devices; i++) {
		char id[32], dca[700], dcert[700], dkey[700];
		snprintf(id, sizeof(id), "gate-%zu", i + 1);
		snprintf(dca, sizeof(dca), "%s/bundle-%zu/ca.crt", dir, i + 1);
		snprintf(dcert, sizeof(dcert), "%s/bundle-%zu/device.crt", dir, i + 1);
		snprintf(dkey, sizeof(dkey), "%s/bundle-%zu/device.key", dir, i + 1);
		if (sim_init_named(&c[i], id, SECTOR, dca, dcert, dkey, "localhost") != 0)
			goto out;
		c[i].held = ~0ull >> 1;
		c[i].gate = (uint32_t)(i + 1);
		/* gate i to instance i mod N: each instance takes its share of the uploads */
		if (sim_connect(&c[i], port[i % instances]) != 0 ||
		    sim_send_hello(&c[i], NULL) != 0 ||
		    sim_wait(&c[i], sim_cond_welcomed, WAIT_MS) != 1) {
			fprintf(stderr, "bench: gate %s: %s\n", id, c[i].why);
			goto out;
		}
	}
	size_t per_dev = rows / devices / PHASES;
	for (uint64_t cal = 1000000000ull;;) {
		double t0 = sim_now();
		if (pg_baseline_phase(uri, instances, cal, per_dev, devices) <= 0)
			goto out;
		cal += per_dev;
		if (sim_now() - t0 >= MIN_PHASE_S)
			break;
		per_dev *= 2;
	}
	for (int p = 0; p < PHASES; p++) {
		uint64_t first = 1 + (uint64_t)p * per_dev;
		base_rate[p] = pg_baseline_phase(uri, instances, first, per_dev, devices);
		our_rate[p] = sync_phase(c, pfd, devices, first, per_dev);
		if (base_rate[p] <= 0 || our_rate[p] <= 0)
			goto out;
	}
	/* every acknowledged row is in the database, once */
	if (pg_value(uri, "SELECT count(*) FROM stats", stored, sizeof(stored)))
		goto out;
	if (strtoull(stored, NULL, 10) != (unsigned long long)PHASES * per_dev * devices) {
		fprintf(stderr,
		        "bench: the servers acknowledged %llu rows, the database holds %s\n",
		        (unsigned long long)PHASES * per_dev * devices, stored);
		goto out;
	}
	double b = median3(base_rate), o = median3(our_rate);
	printf("ingestion on PostgreSQL (fsync %s, synchronous_commit %s): raw COPY %.0f rows/s "
	       "(%zu writer processes at once, %d rows per transaction, a table of the server's "
	       "layout); %zu citypass-server instances with durable acks %.0f rows/s (%zu gates "
	       "over TLS split between them, %s rows stored, each once); medians of %d "
	       "alternating phases of %zu rows (the baseline's >= %.1f s each): ratio %.2f "
	       "(goal >= 0.70: %s)\n",
	       fsync_s, sync_s, b, instances, BATCH, instances, o, devices, stored, PHASES,
	       per_dev * devices, MIN_PHASE_S, o / b, o / b >= 0.7 ? "met" : "MISSED");
	rc = 0;
out:
	for (size_t i = 0; c && i < devices; i++)
		if (c[i].tls)
			sim_free(&c[i]);
	stop_servers();
	if (rc) { /* why: the servers' last words */
		char cmd[200];
		snprintf(cmd, sizeof(cmd), "tail -n 20 %s/server-*.log >&2 2>/dev/null", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench: no server log\n");
	}
	free(c);
	free(pfd);
	return rc;
}

/* --- 2. revocation latency -------------------------------------------------------------- */

static int revocation(size_t n, unsigned rounds)
{
	struct harness h;
	struct sim_ctl *c = calloc(n, sizeof(*c));
	struct pollfd *pfd = calloc(n, sizeof(*pfd));
	double *lat = calloc(n * rounds, sizeof(*lat));
	size_t nlat = 0;
	int rc = -1;

	if (!c || !pfd || !lat || harness_init(&h) != 0)
		return -1;
	h.cfg.log_level = LOG_WARNING;
	h.quiet = 1;
	/* a 1 000-pass list (16 KiB) and the delta revoking one pass (one op) */
	mem_backend_publish(h.mem, SECTOR, 96 + 16 * 1000, 0);
	if (harness_start(&h) != 0)
		goto out;
	fprintf(stderr, "bench: enrolling and connecting %zu controllers...\n", n);
	for (size_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "gate-%zu", i + 1);
		if (harness_controller(&h, &c[i], id, 1 + (uint32_t)(i % 50), SECTOR) != 0 ||
		    sim_connect(&c[i], h.port) != 0 || sim_send_hello(&c[i], NULL) != 0) {
			fprintf(stderr, "bench: controller %zu failed to start\n", i);
			goto out;
		}
		if (i % 50 == 49)
			step_all(c, i + 1, pfd);
	}
	double deadline = sim_now() + 120;
	for (;;) {
		size_t ready = 0;
		for (size_t i = 0; i < n; i++)
			ready += c[i].held == 1;
		if (ready == n)
			break;
		if (sim_now() > deadline) {
			fprintf(stderr, "bench: only %zu of %zu controllers synced\n", ready, n);
			goto out;
		}
		step_all(c, n, pfd);
	}
	for (unsigned r = 0; r < rounds; r++) {
		/* settle, then publish at a random phase of the poll interval */
		for (int k = 0; k < 5 + (int)(r * 7 % 5); k++)
			step_all(c, n, pfd);
		uint64_t v = mem_backend_publish(h.mem, SECTOR, 96 + 16 * 1000, 200 + 17);
		double t0 = sim_now();
		for (;;) {
			size_t got = 0;
			for (size_t i = 0; i < n; i++)
				got += c[i].held >= v;
			if (got == n)
				break;
			if (sim_now() - t0 > 30) {
				fprintf(stderr, "bench: round %u: only %zu of %zu updated\n", r,
				        got, n);
				goto out;
			}
			step_all(c, n, pfd);
		}
		for (size_t i = 0; i < n; i++) {
			if (c[i].bad_updates) {
				fprintf(stderr, "bench: %s received a bad update\n", c[i].id);
				goto out;
			}
			lat[nlat++] = c[i].held_at - t0;
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	double p50 = lat[nlat / 2], p99 = lat[(size_t)((double)nlat * 0.99)], max = lat[nlat - 1];
	printf("server push alone (in-memory backend, a 1 000-pass list, no admin command, no "
	       "database): %zu controllers x %u rounds, poll interval %u ms: p50 %.0f ms, p99 "
	       "%.0f ms, max %.0f ms (not the budget's figure: bench_revoke times the revocation "
	       "end to end)\n",
	       n, rounds, SERVER_SYNC_POLL_INTERVAL_MS, p50 * 1e3, p99 * 1e3, max * 1e3);
	rc = 0;
out:
	harness_stop(&h);
	for (size_t i = 0; i < n; i++)
		if (c[i].tls)
			sim_free(&c[i]);
	harness_free(&h);
	free(c);
	free(pfd);
	free(lat);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"admin", required_argument, NULL, 'a'},
	        {"controllers", required_argument, NULL, 'c'},
	        {"rows", required_argument, NULL, 'r'},
	        {"rounds", required_argument, NULL, 'n'},
	        {"pg", required_argument, NULL, 'p'},
	        {"server", required_argument, NULL, 's'},
	        {"instances", required_argument, NULL, 'i'},
	        {"phase-seconds", required_argument, NULL, 'S'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *admin = NULL, *pg = NULL, *server = NULL;
	size_t controllers = 1000, rows = 240000, devices = 4, instances = 2;
	unsigned rounds = 5;
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "a:c:r:n:p:s:i:h", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			admin = optarg;
			break;
		case 'c':
			controllers = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rows = strtoul(optarg, NULL, 10);
			break;
		case 'n':
			rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			pg = optarg;
			break;
		case 's':
			server = optarg;
			break;
		case 'i':
			instances = strtoul(optarg, NULL, 10);
			break;
		case 'S':
			MIN_PHASE_S = strtod(optarg, NULL);
			break;
		case 'h':
			printf("usage: bench_server [--admin PATH] [--controllers N] [--rows N] "
			       "[--rounds N] [--pg URI --server PATH [--instances N]] "
			       "[--phase-seconds S]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (!(MIN_PHASE_S > 0 && MIN_PHASE_S <= 60)) {
		fprintf(stderr, "bench_server: --phase-seconds: more than 0, at most 60\n");
		return 2;
	}
	if (controllers < 1 || controllers > 2000 || rows < BATCH * devices * PHASES ||
	    rounds < 1 || rounds > 100) {
		fprintf(stderr, "bench_server: controllers 1..2000, rows >= %d, rounds 1..100\n",
		        BATCH * (int)devices * PHASES);
		return 2;
	}
	raise_fd_limit();

	if (pg) {
		/* 8 gates: four per instance, each with two batches in flight */
		devices = 8;
		if (!admin || !server || instances < 1 || instances > MAX_INSTANCES ||
		    rows < BATCH * devices * PHASES) {
			fprintf(stderr,
			        "bench_server: --pg needs --admin and --server, instances "
			        "1..%d, rows >= %d\n",
			        MAX_INSTANCES, BATCH * (int)devices * PHASES);
			return 2;
		}
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		snprintf(g_dir, sizeof(g_dir), "/tmp/citypass-bench-pg-XXXXXX");
		if (!mkdtemp(g_dir))
			return 1;
		if (ingestion_pg(admin, server, pg, g_dir, rows, devices, instances) != 0) {
			fprintf(stderr, "bench: ingestion on PostgreSQL failed\n");
			rc = 1;
		}
		remove_dir();
		return rc;
	}
	if (admin) {
		char dir[] = "/tmp/citypass-bench-server-XXXXXX";
		if (!mkdtemp(dir))
			return 1;
		if (ingestion(admin, dir, rows, devices) != 0) {
			fprintf(stderr, "bench: ingestion measurement failed\n");
			rc = 1;
		}
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench: could not remove %s\n", dir);
	} else {
		printf("ingestion: skipped (give --admin PATH-TO-citypass-admin)\n");
	}
	if (revocation(controllers, rounds) != 0)
		rc = 1;
	return rc;
}
