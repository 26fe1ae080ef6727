/*
 * test_controller_crash.c — kill -9 at random moments, restart, check nothing broke.
 *
 * Two loops of at least 200 SIGKILLs each (CONTROLLER_CRASH_ITERATIONS overrides; the
 * seed is printed and CONTROLLER_CRASH_SEED replays a run):
 *
 *   list store — a child installs version after version (snapshots and deltas alternate)
 *   and reports each success on a pipe; the parent kills it after a random delay, reopens
 *   the store, and checks that it opened without falling back or finding damage, that the
 *   version on disk (manifest, signature, every chunk) verifies with proto alone, and that
 *   its version is the last one reported or the one being installed.
 *
 *   journal — a child appends taps (each durable before it reports the sequence), and now
 *   and then uploads a batch to a simulated server (the pipe) and acknowledges it. After
 *   each kill the parent checks that sequences are contiguous, that no acknowledged row
 *   reappears, that no reported row is lost, and that every acknowledged row had reached
 *   the server. At the end it drains the journal: the server then holds exactly one copy
 *   of every tap.
 *
 * A SIGKILL leaves the page cache intact, so this proves atomicity against process death
 * (the store's rename protocol, sqlite's transactions), not against power loss; the
 * fsyncs that cover power loss are in the code paths exercised here.
 *
 * The children sign with a key whose DRBG state they inherited from the parent: fine for
 * a throwaway test key, never for a real one.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "controller/error.h"
#include "controller/journal.h"
#include "controller/list_store.h"
#include "list_fixture.h"
#include "proto/error.h"

#define DEFAULT_ITERATIONS 200
#define MAX_DELAY_US       60000 /* an install writes ~10 files, each fsync'd: slower under ASan */
#define PASSES             200
#define NOW                (FIXTURE_ISSUED + 60)

/* --- randomness and child plumbing ---------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double elapsed_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static int iterations(void)
{
	const char *s = getenv("CONTROLLER_CRASH_ITERATIONS");
	int n = s ? atoi(s) : 0;
	return n > 0 ? n : DEFAULT_ITERATIONS;
}

static void seed_rng(void)
{
	const char *s = getenv("CONTROLLER_CRASH_SEED");
	rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	print_message("crash seed: CONTROLLER_CRASH_SEED=%llu\n", (unsigned long long)rng_state);
}

/* One report from child to parent: a kind and two numbers, written atomically. */
struct report {
	char kind; /* 'V' version installed, 'A' appended, 'S' sent first..last, 'K' acked, 'E' */
	uint64_t a, b;
};

static int report_fd = -1;

static void report(char kind, uint64_t a, uint64_t b)
{
	struct report r = {kind, a, b};
	if (write(report_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		_exit(4);
}

__attribute__((noreturn)) static void child_fail(uint64_t where, int rc)
{
	report('E', where, (uint64_t)(int64_t)rc);
	_exit(3);
}

/* A check of cmocka's failing in a child longjmps back to cmocka's runner *in the child*,
 * which then runs the next test there, unseen, until its parent's SIGKILL: the failure was
 * lost and the escaped child left its directories in /tmp. Every test begins with this: a
 * child that escaped tells its parent, whose test then fails (cmocka's message, printed
 * unbuffered by main, says which check). */
static void fail_if_escaped_child(void)
{
	if (report_fd >= 0)
		child_fail(UINT64_MAX, 0);
}

typedef void (*child_fn)(void *ctx);

/* Fork `fn`, SIGKILL it after a random delay, and return the reports it managed to send. */
static size_t run_and_kill(child_fn fn, void *ctx, struct report *out, size_t cap)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		report_fd = fds[1];
		fn(ctx);
		_exit(0);
	}
	close(fds[1]);
	struct timespec d = {0, (long)(rng_next() % MAX_DELAY_US) * 1000};
	nanosleep(&d, NULL);
	kill(pid, SIGKILL);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	size_t n = 0;
	struct report r;
	while (read(fds[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
		if (r.kind == 'E' && r.a == UINT64_MAX)
			fail_msg("a check failed in a child (cmocka's message above)");
		if (r.kind == 'E')
			fail_msg("child failed at step %llu: %s", (unsigned long long)r.a,
			         proto_strerror((int)(int64_t)r.b));
		if (n < cap)
			out[n++] = r;
	}
	close(fds[0]);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	return n;
}

static void rm_rf(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Each test's scratch directory is made by a setup and removed by a teardown: cmocka runs
 * the teardown after a failed check too (the test body is left by longjmp, so a removal at
 * its end would be skipped and the directory left in TMPDIR). */
static int scratch_setup(void **state)
{
	*state = NULL;
	if (report_fd >= 0) /* an escaped child: the test's first line ends it */
		return 0;
	const char *tmp = getenv("TMPDIR");
	char *dir = malloc(64);
	if (!dir)
		return -1;
	if (snprintf(dir, 64, "%s/ctl-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp") >= 64 ||
	    !mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int scratch_teardown(void **state)
{
	char *dir = *state;
	if (report_fd >= 0 || !dir) /* never the parent's directory from an escaped child */
		return 0;
	rm_rf(dir);
	free(dir);
	return 0;
}

/* --- list store ----------------------------------------------------------------------- */

struct store_ctx {
	struct list_fixture fx;
	char dir[96];
};

/* Version v as a snapshot: the same passes, counters moving with the version. */
static void build_version(const struct list_fixture *fx, uint64_t v, struct v2list *out)
{
	struct proto_list_entry e[PASSES];
	fixture_entries(e, PASSES, 1);
	for (size_t i = 0; i < PASSES; i++)
		e[i].used = (uint8_t)((e[i].used + v * (i % 3)) % 200);
	fixture_v2_build(fx, FIXTURE_SECTOR, v, 1, e, PASSES, out);
}

static void manifest_path(const struct store_ctx *c, uint64_t v, char *out, size_t cap)
{
	snprintf(out, cap, "%s/v%llu.manifest", c->dir, (unsigned long long)v);
}

/* Snapshots and deltas alternate; a delta changes a few passes' counters of the version the
 * store holds, read back from its own files. */
static void store_child(void *arg)
{
	struct store_ctx *c = arg;
	struct controller_list_store *s;
	int rc = controller_list_store_open(&s, c->dir, FIXTURE_SECTOR, c->fx.ring, NOW);
	if (rc)
		child_fail(0, rc);
	for (;;) {
		uint64_t v = controller_list_store_version(s);
		struct v2list next;
		if (v && (v & 1)) {
			char p[128];
			struct v2list cur;
			manifest_path(c, v, p, sizeof(p));
			fixture_v2_load(p, &cur);
			struct v2change ch[3];
			for (int k = 0; k < 3; k++) {
				uint32_t j = (uint32_t)((v + (uint64_t)k) % cur.m.n_chunks);
				const struct proto_clist_chunk_data *d = &cur.chunks[j];
				ch[k].op = PROTO_CLIST_OP_CHANGE;
				/* three distinct passes, also when the list has fewer than three
				 * chunks (a pass changed twice in one delta is refused) */
				proto_clist_entry_decode(
				        d->dat + (size_t)((v * 7 + (uint64_t)k) % d->n) *
				                         PROTO_CLIST_ENTRY_SIZE,
				        &ch[k].e);
				ch[k].e.used = (uint8_t)((ch[k].e.used + 1) % 200);
			}
			uint8_t *delta = NULL;
			size_t len = 0;
			fixture_v2_next(&c->fx, &cur, ch, 3, &next, &delta, &len);
			rc = controller_list_store_apply_delta(s, delta, len, next.sig,
			                                       next.sig_len, NOW);
			free(delta);
			fixture_v2_free(&cur);
		} else {
			build_version(&c->fx, v + 1, &next);
			rc = controller_list_store_install_snapshot(s, next.stream, next.stream_len,
			                                            next.sig, next.sig_len, NOW);
		}
		fixture_v2_free(&next);
		if (rc)
			child_fail(v + 1, rc);
		report('V', v + 1, 0);
	}
}

/* Check the version CURRENT names with nothing but proto: its signature and every file. */
static void verify_on_disk(struct store_ctx *c, uint64_t version)
{
	char p[128];
	struct proto_clist_dir d;
	manifest_path(c, version, p, sizeof(p));
	assert_int_equal(proto_clist_dir_open(&d, p, NULL), 0);
	struct proto_list_policy pol = {FIXTURE_SECTOR, 0, NOW, c->fx.ring};
	assert_int_equal(proto_clist_dir_verify(&d, &pol, 1), 0);
	assert_int_equal(d.h.version, version);
	proto_clist_dir_close(&d);
}

static void test_list_store_survives_sigkill(void **state)
{
	const char *root = *state;
	fail_if_escaped_child();
	struct store_ctx c;
	fixture_init(&c.fx);
	snprintf(c.dir, sizeof(c.dir), "%s/lists", root);
	seed_rng();
	uint64_t held = 0;
	int n = iterations(), mid_update = 0;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct report reports[4096];
	for (int i = 0; i < n; i++) {
		size_t k = run_and_kill(store_child, &c, reports, 4096);
		uint64_t reported = held;
		for (size_t r = 0; r < k; r++)
			if (reports[r].kind == 'V')
				reported = reports[r].a;
		struct controller_list_store *s;
		assert_int_equal(
		        controller_list_store_open(&s, c.dir, FIXTURE_SECTOR, c.fx.ring, NOW), 0);
		uint64_t v = controller_list_store_version(s);
		/* a kill must never leave something the store cannot use, nor damaged files */
		struct controller_list_info info;
		controller_list_store_info(s, &info);
		if (controller_list_store_fell_back(s) || info.damaged)
			fail_msg("iteration %d: store unusable after a kill (held v%llu, now "
			         "v%llu, %s)",
			         i, (unsigned long long)held, (unsigned long long)v,
			         controller_strerror(controller_list_store_open_error(s)));
		/* the old or the new version, never anything else */
		if (v != reported && v != reported + 1)
			fail_msg("iteration %d: store holds v%llu, last reported v%llu", i,
			         (unsigned long long)v, (unsigned long long)reported);
		mid_update += v == reported + 1; /* killed after the commit, before the report */
		if (v) {
			assert_true(info.held);
			verify_on_disk(&c, v);
		}
		held = v;
		controller_list_store_close(s);
	}
	print_message("list store: %d kills in %.1f s, final version %llu, %d kills between "
	              "commit and report\n",
	              n, elapsed_since(&t0), (unsigned long long)held, mid_update);
	assert_true(held > 0);
	fixture_free(&c.fx);
}

/* --- journal -------------------------------------------------------------------------- */

struct journal_ctx {
	char path[96];
};

static void journal_child(void *arg)
{
	struct journal_ctx *c = arg;
	struct controller_journal *j;
	int rc = controller_journal_open(&j, c->path);
	if (rc)
		child_fail(0, rc);
	struct controller_stat_row rows[16];
	for (uint64_t i = 1;; i++) {
		struct controller_event ev = {.at = NOW + (int64_t)i,
		                              .site = 1,
		                              .gate = 2,
		                              .sector = 7,
		                              .product = 10,
		                              .granted = true};
		if (i % 3 == 0) {
			ev.consumes = true;
			memset(ev.key, (int)(i & 0xFF), sizeof(ev.key));
			ev.period = PROTO_PERIOD_YEAR;
			ev.period_number = 2026;
		}
		struct controller_journal_seq seq;
		if ((rc = controller_journal_append(j, &ev, &seq)))
			child_fail(i, rc);
		report('A', seq.stat, 0);
		if (i % 5)
			continue;
		size_t n;
		if ((rc = controller_journal_fetch_stats(j, rows, 16, &n)))
			child_fail(i, rc);
		if (!n)
			continue;
		report('S', rows[0].seq, rows[n - 1].seq); /* the server has committed them */
		if ((rc = controller_journal_ack(j, CONTROLLER_STREAM_STATS, rows[n - 1].seq, NOW)))
			child_fail(i, rc);
		report('K', rows[n - 1].seq, 0);
	}
}

struct server {
	uint8_t *have; /* have[seq]: the server committed this sequence */
	size_t cap;
};

static void server_take(struct server *srv, uint64_t first, uint64_t last)
{
	if (last >= srv->cap) {
		size_t cap = (size_t)last * 2 + 1024;
		srv->have = realloc(srv->have, cap);
		assert_non_null(srv->have);
		memset(srv->have + srv->cap, 0, cap - srv->cap);
		srv->cap = cap;
	}
	for (uint64_t s = first; s <= last; s++)
		srv->have[s] = 1; /* deduplicated on (device, sequence) */
}

static void check_journal(struct journal_ctx *c, struct server *srv, uint64_t appended,
                          uint64_t acked, uint64_t *max_seq)
{
	struct controller_journal *j;
	assert_int_equal(controller_journal_open(&j, c->path), 0);
	struct controller_journal_stats st;
	assert_int_equal(controller_journal_stats(j, &st), 0);
	/* no acknowledged row reappears; every acknowledged row reached the server */
	assert_true(st.stat_acked >= acked);
	for (uint64_t s = 1; s <= st.stat_acked; s++)
		assert_true(s < srv->cap && srv->have[s]);
	/* what is left is contiguous, starts right after the ack, and holds every tap
	 * reported (plus at most the one committed as the child died) */
	size_t cap = (size_t)st.stat_pending + 1, n;
	struct controller_stat_row *rows = calloc(cap, sizeof(*rows));
	assert_non_null(rows);
	assert_int_equal(controller_journal_fetch_stats(j, rows, cap, &n), 0);
	assert_int_equal(n, st.stat_pending);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(rows[i].seq, st.stat_acked + 1 + i);
	uint64_t last = n ? rows[n - 1].seq : st.stat_acked;
	if (last < appended || last > appended + 1)
		fail_msg("journal ends at %llu, last reported append %llu",
		         (unsigned long long)last, (unsigned long long)appended);
	*max_seq = last;
	free(rows);
	controller_journal_close(j);
}

static void test_journal_survives_sigkill(void **state)
{
	fail_if_escaped_child();
	struct journal_ctx c;
	snprintf(c.path, sizeof(c.path), "%s/journal.db", (const char *)*state);
	seed_rng();
	struct server srv = {NULL, 0};
	uint64_t appended = 0, acked = 0, max_seq = 0;
	int n = iterations();
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	static struct report reports[1 << 16];
	for (int i = 0; i < n; i++) {
		size_t k = run_and_kill(journal_child, &c, reports, 1 << 16);
		for (size_t r = 0; r < k; r++) {
			if (reports[r].kind == 'A')
				appended = reports[r].a;
			else if (reports[r].kind == 'S')
				server_take(&srv, reports[r].a, reports[r].b);
			else if (reports[r].kind == 'K')
				acked = reports[r].a;
		}
		check_journal(&c, &srv, appended, acked, &max_seq);
		appended = max_seq; /* a tap committed unreported still is a tap */
	}
	/* the network comes back: upload everything left */
	struct controller_journal *j;
	assert_int_equal(controller_journal_open(&j, c.path), 0);
	struct controller_stat_row rows[256];
	size_t got;
	do {
		assert_int_equal(controller_journal_fetch_stats(j, rows, 256, &got), 0);
		if (got) {
			server_take(&srv, rows[0].seq, rows[got - 1].seq);
			assert_int_equal(controller_journal_ack(j, CONTROLLER_STREAM_STATS,
			                                        rows[got - 1].seq, NOW),
			                 0);
		}
	} while (got);
	controller_journal_close(j);
	uint64_t on_server = 0;
	for (size_t s = 1; s < srv.cap; s++)
		on_server += srv.have[s];
	print_message("journal: %d kills in %.1f s, %llu taps, %llu on the server\n", n,
	              elapsed_since(&t0), (unsigned long long)max_seq,
	              (unsigned long long)on_server);
	assert_int_equal(on_server, max_seq);
	for (uint64_t s = 1; s <= max_seq; s++)
		assert_true(srv.have[s]);
	assert_true(max_seq > 0);
	free(srv.have);
}

int main(void)
{
	/* a child's failed check is printed before its parent kills it */
	setvbuf(stdout, NULL, _IONBF, 0);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_list_store_survives_sigkill, scratch_setup,
	                                        scratch_teardown),
	        cmocka_unit_test_setup_teardown(test_journal_survives_sigkill, scratch_setup,
	                                        scratch_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
