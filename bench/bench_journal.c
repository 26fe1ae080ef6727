/*
 * bench_journal — the controller's offline journal against raw sqlite on the same disk.
 *
 *     bench_journal [--decisions N] [--upload N] [--dir DIR]
 *
 * Every row is our figure beside a baseline measured in the same run, and the ratio
 * ours / baseline (for rates, higher is better). The baselines are what sqlite itself can
 * do with the same durability: a table of the same statistics columns in WAL mode with
 * synchronous=FULL,
 *   - durable append: one INSERT committed per row (a prepared statement, autocommit),
 *     against controller_journal_append(), which commits each decision the same way
 *     (a statistics row, plus a consumption row for one decision in ten);
 *   - upload: one `SELECT ... ORDER BY seq` scan of every row, against fetching batches
 *     of 1 000 with controller_journal_fetch_stats() and acknowledging each batch
 *     (which deletes it durably) — what an upload after a long outage does.
 * Nothing here asserts a timing; DESIGN.md s.9 gives the budget.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "controller/error.h"
#include "controller/journal.h"

#define DEFAULT_DECISIONS 5000u
#define DEFAULT_UPLOAD    200000u
#define UPLOAD_BATCH      1000u
#define APPEND_CHUNK      10000u
#define T0                1780000000

static char g_dir[4096];
static int g_dir_ours;

static void cleanup(void)
{
	if (!g_dir[0])
		return;
	static const char *const names[] = {"ours.db", "ours.db-wal", "ours.db-shm",
	                                    "base.db", "base.db-wal", "base.db-shm",
	                                    "up.db",   "up.db-wal",   "up.db-shm"};
	char p[4200];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", g_dir, names[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			fprintf(stderr, "bench_journal: cannot remove %s: %s\n", p,
			        strerror(errno));
	}
	if (g_dir_ours && rmdir(g_dir) != 0)
		fprintf(stderr, "bench_journal: cannot remove %s: %s\n", g_dir, strerror(errno));
	g_dir[0] = '\0';
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench_journal: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	cleanup();
	exit(1);
}

static void path_in_dir(char *out, size_t cap, const char *name)
{
	int n = snprintf(out, cap, "%s/%s", g_dir, name);
	if (n < 0 || (size_t)n >= cap)
		die("path too long: %s/%s", g_dir, name);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the table ------------------------------------------------------------------------ */

#define MAX_ROWS 8
#define CELL     32

struct row {
	char metric[64], ours[CELL], base[CELL], ratio[CELL];
};

static struct row g_rows[MAX_ROWS];
static size_t g_nrows;

static void row_rate(const char *metric, double ours, double base)
{
	if (g_nrows == MAX_ROWS)
		die("too many table rows");
	struct row *r = &g_rows[g_nrows++];
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->ours, CELL, "%.0f /s", ours);
	snprintf(r->base, CELL, "%.0f /s", base);
	snprintf(r->ratio, CELL, "%.3f", base > 0 ? ours / base : 0.0);
}

static void dashes(int n)
{
	for (int i = 0; i < n; i++)
		putchar('-');
}

static void print_table(void)
{
	int wm = 6, wo = 8, wb = 8, wr = 5;
	for (size_t i = 0; i < g_nrows; i++) {
		int l;
		if ((l = (int)strlen(g_rows[i].metric)) > wm)
			wm = l;
		if ((l = (int)strlen(g_rows[i].ours)) > wo)
			wo = l;
		if ((l = (int)strlen(g_rows[i].base)) > wb)
			wb = l;
		if ((l = (int)strlen(g_rows[i].ratio)) > wr)
			wr = l;
	}
	printf("| %-*s | %*s | %*s | %*s |\n", wm, "metric", wo, "citypass", wb, "baseline", wr,
	       "ratio");
	printf("|-");
	dashes(wm);
	printf("-|-");
	dashes(wo);
	printf(":|-");
	dashes(wb);
	printf(":|-");
	dashes(wr);
	printf(":|\n");
	for (size_t i = 0; i < g_nrows; i++)
		printf("| %-*s | %*s | %*s | %*s |\n", wm, g_rows[i].metric, wo, g_rows[i].ours, wb,
		       g_rows[i].base, wr, g_rows[i].ratio);
}

/* --- workloads ------------------------------------------------------------------------ */

static struct controller_event decision(uint32_t n)
{
	struct controller_event ev = {.at = T0 + n,
	                              .site = 1 + n % 4,
	                              .gate = n % 16,
	                              .sector = 7,
	                              .product = (uint16_t)(10 + n % 3),
	                              .granted = n % 9 != 0,
	                              .reason = n % 9 ? 0 : 11};
	if (n % 10 == 0) {
		ev.consumes = true;
		memcpy(ev.key, &n, sizeof(n));
		ev.period = 5;
		ev.period_number = 2026;
		ev.count = 1;
	}
	return ev;
}

static sqlite3 *base_open(const char *name)
{
	char p[4200];
	path_in_dir(p, sizeof(p), name);
	sqlite3 *db;
	if (sqlite3_open(p, &db) != SQLITE_OK)
		die("sqlite open %s", p);
	if (sqlite3_exec(
	            db,
	            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	            "CREATE TABLE IF NOT EXISTS stat(seq INTEGER PRIMARY KEY, quarter_hour INT,"
	            " site INT, gate INT, sector INT, product INT, granted INT, reason INT);",
	            NULL, NULL, NULL) != SQLITE_OK)
		die("sqlite setup: %s", sqlite3_errmsg(db));
	return db;
}

static void base_insert(sqlite3 *db, sqlite3_stmt *s, const struct controller_event *ev)
{
	sqlite3_bind_int64(s, 1, ev->at - ev->at % 900);
	sqlite3_bind_int64(s, 2, ev->site);
	sqlite3_bind_int64(s, 3, ev->gate);
	sqlite3_bind_int(s, 4, ev->sector);
	sqlite3_bind_int(s, 5, ev->product);
	sqlite3_bind_int(s, 6, ev->granted);
	sqlite3_bind_int(s, 7, ev->reason);
	if (sqlite3_step(s) != SQLITE_DONE)
		die("insert: %s", sqlite3_errmsg(db));
	sqlite3_reset(s);
}

/*
 * Durable appends, ours and the baseline interleaved in rounds of ROUND so that both see
 * the same disk: on a virtual machine fsync latency drifts by an order of magnitude over
 * seconds, and two back-to-back blocks would measure the drift, not the code.
 */
#define ROUND 100u

static void durable_appends(uint32_t n, double *ours_rate, double *base_rate)
{
	char p[4200];
	path_in_dir(p, sizeof(p), "ours.db");
	struct controller_journal *j;
	int rc = controller_journal_open(&j, p);
	if (rc)
		die("journal open: %s", controller_strerror(rc));
	sqlite3 *db = base_open("base.db");
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "INSERT INTO stat VALUES(NULL,?,?,?,?,?,?,?)", -1, &s, NULL) !=
	    SQLITE_OK)
		die("prepare: %s", sqlite3_errmsg(db));
	double t_ours = 0, t_base = 0;
	for (uint32_t done = 0; done < n; done += ROUND) {
		uint32_t k = n - done < ROUND ? n - done : ROUND;
		double t = now_s();
		for (uint32_t i = 0; i < k; i++) {
			struct controller_event ev = decision(done + i);
			if ((rc = controller_journal_append(j, &ev, NULL)))
				die("append: %s", controller_strerror(rc));
		}
		t_ours += now_s() - t;
		t = now_s();
		for (uint32_t i = 0; i < k; i++) {
			struct controller_event ev = decision(done + i);
			base_insert(db, s, &ev);
		}
		t_base += now_s() - t;
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	controller_journal_close(j);
	*ours_rate = n / t_ours;
	*base_rate = n / t_base;
}

static double ours_upload(uint32_t n)
{
	char p[4200];
	path_in_dir(p, sizeof(p), "up.db");
	struct controller_journal *j;
	int rc = controller_journal_open(&j, p);
	if (rc)
		die("journal open: %s", controller_strerror(rc));
	struct controller_event *ev = malloc(APPEND_CHUNK * sizeof(*ev));
	struct controller_stat_row *rows = malloc(UPLOAD_BATCH * sizeof(*rows));
	if (!ev || !rows)
		die("out of memory");
	for (uint32_t done = 0; done < n; done += APPEND_CHUNK) {
		uint32_t k = n - done < APPEND_CHUNK ? n - done : APPEND_CHUNK;
		for (uint32_t i = 0; i < k; i++)
			ev[i] = decision(done + i);
		if ((rc = controller_journal_append_many(j, ev, k)))
			die("append: %s", controller_strerror(rc));
	}
	uint64_t got = 0;
	size_t m;
	double t = now_s();
	do {
		if ((rc = controller_journal_fetch_stats(j, rows, UPLOAD_BATCH, &m)))
			die("fetch: %s", controller_strerror(rc));
		got += m;
		if (m &&
		    (rc = controller_journal_ack(j, CONTROLLER_STREAM_STATS, rows[m - 1].seq, T0)))
			die("ack: %s", controller_strerror(rc));
	} while (m);
	t = now_s() - t;
	if (got != n)
		die("uploaded %" PRIu64 " of %" PRIu32 " rows", got, n);
	free(ev);
	free(rows);
	controller_journal_close(j);
	return n / t;
}

static double base_scan(void)
{
	sqlite3 *db = base_open("base.db");
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, "SELECT * FROM stat ORDER BY seq", -1, &s, NULL) != SQLITE_OK)
		die("prepare: %s", sqlite3_errmsg(db));
	/* scan the baseline table grown to the upload size */
	uint64_t rows = 0, sum = 0;
	double t = now_s();
	while (sqlite3_step(s) == SQLITE_ROW) {
		rows++;
		sum += (uint64_t)sqlite3_column_int64(s, 0) + (uint64_t)sqlite3_column_int64(s, 7);
	}
	t = now_s() - t;
	sqlite3_finalize(s);
	sqlite3_close(db);
	if (!rows || sum == 0)
		die("empty baseline scan");
	return rows / t;
}

static void base_grow(uint32_t n)
{
	sqlite3 *db = base_open("base.db");
	sqlite3_stmt *s;
	sqlite3_exec(db, "DELETE FROM stat; BEGIN", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(db, "INSERT INTO stat VALUES(NULL,?,?,?,?,?,?,?)", -1, &s, NULL) !=
	    SQLITE_OK)
		die("prepare: %s", sqlite3_errmsg(db));
	for (uint32_t i = 0; i < n; i++) {
		struct controller_event ev = decision(i);
		base_insert(db, s, &ev);
	}
	sqlite3_finalize(s);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		die("commit: %s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* --- main ----------------------------------------------------------------------------- */

static uint32_t parse_count(const char *s, const char *name)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *s == '\0' || *s == '-' || *end != '\0' || v == 0 || v > 100000000ULL) {
		fprintf(stderr,
		        "bench_journal: %s '%s': expected a whole number from 1 to 100000000\n",
		        name, s);
		exit(2);
	}
	return (uint32_t)v;
}

static void usage(void)
{
	fputs("usage: bench_journal [--decisions N] [--upload N] [--dir DIR]\n"
	      "  --decisions N  durable appends, one commit each (default 5000)\n"
	      "  --upload N     rows uploaded in batches of 1000 (default 200000)\n"
	      "  --dir DIR      an empty directory on the disk to measure (default: a fresh\n"
	      "                 directory under $TMPDIR or /tmp, removed at the end)\n",
	      stdout);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"decisions", required_argument, NULL, 'd'},
	                                     {"upload", required_argument, NULL, 'u'},
	                                     {"dir", required_argument, NULL, 'D'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	uint32_t decisions = DEFAULT_DECISIONS, upload = DEFAULT_UPLOAD;
	const char *dir = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			decisions = parse_count(optarg, "--decisions");
			break;
		case 'u':
			upload = parse_count(optarg, "--upload");
			break;
		case 'D':
			dir = optarg;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (dir) {
		if (strlen(dir) >= sizeof(g_dir))
			die("--dir path too long");
		snprintf(g_dir, sizeof(g_dir), "%s", dir);
	} else {
		const char *tmp = getenv("TMPDIR");
		snprintf(g_dir, sizeof(g_dir), "%s/citypass-bench-journal.XXXXXX",
		         tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(g_dir))
			die("mkdtemp: %s", strerror(errno));
		g_dir_ours = 1;
	}
	printf("bench_journal: %" PRIu32 " durable decisions, %" PRIu32
	       " rows uploaded; %ld CPUs; sqlite %s; dir %s\n\n",
	       decisions, upload, sysconf(_SC_NPROCESSORS_ONLN), sqlite3_libversion(), g_dir);

	double oa, ba;
	durable_appends(decisions, &oa, &ba);
	row_rate("durable append (commit per decision)", oa, ba);
	base_grow(upload);
	double ou = ours_upload(upload), bs = base_scan();
	row_rate("upload: fetch 1000 + durable ack", ou, bs);
	print_table();
	printf("\nratio = citypass / baseline (rates: higher is better). The append baseline\n"
	       "writes one row per commit; ours also writes a consumption row for one decision\n"
	       "in ten. The upload baseline is a bare read-only scan with no deletion.\n");
	printf("1 M events offline at the measured durable rate: %.0f s of taps to fill; "
	       "uploaded in %.1f s\n",
	       1e6 / oa, 1e6 / ou);
	cleanup();
	return 0;
}
