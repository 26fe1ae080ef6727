/*
 * bench_gate — a gate's list at 10 M passes (DESIGN.md s.9 "list on a gate"), without a
 * 10 M-pass rights database behind it: a signed format 2 list of N passes built in process
 * (tests/support/list_fixture.c, as the server builds one), installed by the controller's
 * list store (controller_list_store, the code citypass-controller runs) in a real state
 * directory; then one-pass deltas installed (time, bytes written: <= 20 ms, <= 1 MiB); the
 * store's size on disk (<= 1.1 x one list); and the start: `citypass-controller
 * --check-state` exec'd on that state (the list's signature and every chunk index checked,
 * the journal opened), warm and with the store's files evicted from the page cache
 * (<= 0.5 s at 10 M). Then DESIGN s.9's two size budgets for format 2, stated at 5 M (scaled
 * from N when N is not 5 M): bytes per pass of the version the gate holds (<= 16 B) and the
 * store on disk (<= 80 MiB); and the daily delta at 0.1 % churn, made as the server makes
 * it (<= 256 KiB, signature included). That delta is installed by the store after the
 * one-pass deltas (its time and bytes written: no budget), so the store measured on disk
 * and started is the version it made.
 *
 *   bench_gate --admin PATH --controller PATH [--passes N] [--deltas K]
 * citypass-admin makes the device bundle the controller's configuration names; its list key
 * is replaced by the fixture's.
 */
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"
#include "controller/error.h"
#include "controller/list_store.h"
#include "list_fixture.h"
#include "proto/clist.h"
#include "proto/sign.h"

#define SECTOR 1 /* pool, in a deployment made by citypass-admin init */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Bytes the directory's files take on disk, and evict them from the page cache. */
static uint64_t dir_bytes(const char *path, int evict)
{
	DIR *d = opendir(path);
	uint64_t n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		char p[1200];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (e->d_name[0] == '.' || stat(p, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		n += (uint64_t)st.st_blocks * 512;
		if (evict) {
			int fd = open(p, O_RDONLY);
			if (fd >= 0) {
				(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
				close(fd);
			}
		}
	}
	if (d)
		closedir(d);
	return n;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* The baseline of an install's cost on this disk: one small file replaced atomically
 * (write 4 KiB, fsync, rename, fsync the directory), as a gate's CURRENT pointer is. */
static double atomic_replace_s(const char *dir)
{
	char tmp[200], dst[200];
	static char buf[4096];
	snprintf(tmp, sizeof(tmp), "%s/baseline.tmp", dir);
	snprintf(dst, sizeof(dst), "%s/baseline", dir);
	double t0 = now_s();
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) || fsync(fd) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (rename(tmp, dst) != 0)
		return -1;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return -1;
	(void)fsync(dfd);
	close(dfd);
	return now_s() - t0;
}

/* Bytes of every file of version `version` in the store (its head, manifest, signature,
 * and each chunk's .idx and .dat, by the names its manifest gives): what a gate holds of
 * the list, without CURRENT (a pointer, not the list) or the floor (beside the store). */
static uint64_t version_bytes(const char *store, const struct proto_clist_manifest *m,
                              unsigned *files)
{
	char name[PROTO_CLIST_NAME_MAX], p[1200];
	struct stat st;
	uint64_t n = 0;
	*files = 0;
	for (uint32_t i = 0; i < 3 + 2 * m->n_chunks; i++) {
		if (i == 0)
			proto_clist_name_head(name, m->version);
		else if (i == 1)
			proto_clist_name_manifest(name, m->version);
		else if (i == 2)
			proto_clist_name_sig(name, m->version);
		else
			proto_clist_name_chunk(name, (i - 3) / 2, m->chunks[(i - 3) / 2].since,
			                       (int)((i - 3) % 2 == 0));
		snprintf(p, sizeof(p), "%s/%s", store, name);
		if (stat(p, &st) != 0)
			return 0; /* a file missing: no figure rather than a wrong one */
		n += (uint64_t)st.st_size;
		(*files)++;
	}
	return n;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* A day's churn, 0.1 % of the passes, in bench_list's mix (churn_entries): a third removed,
 * a third changed (a revocation, a counter update or a product change, in turn), the rest
 * new passes. */
struct churn {
	size_t adds, changes, removes;
	struct v2list next;
	uint8_t *delta;
	size_t delta_len;
};

static int churn_delta(const struct list_fixture *f, const struct v2list *cur,
                       const struct proto_list_entry *e, size_t passes, struct churn *c)
{
	size_t total = passes / 1000;
	c->removes = total / 3;
	c->changes = total / 3;
	c->adds = total - c->removes - c->changes;
	struct v2change *ch = calloc(total, sizeof(*ch));
	uint8_t *mark = calloc(passes, 1);
	struct proto_list_entry *added = calloc(c->adds ? c->adds : 1, sizeof(*added));
	if (!ch || !mark || !added) {
		free(ch);
		free(mark);
		free(added);
		return -1;
	}
	uint64_t rng = 0xde17a;
	size_t k = 0;
	while (k < c->removes + c->changes) {
		size_t i = (size_t)(splitmix64(&rng) % passes);
		if (mark[i])
			continue;
		mark[i] = 1;
		ch[k].e = e[i];
		if (k < c->removes) {
			ch[k].op = PROTO_CLIST_OP_REMOVE;
		} else {
			ch[k].op = PROTO_CLIST_OP_CHANGE;
			if (k % 3 == 0) {
				ch[k].e.status = PROTO_STATUS_REVOKED;
			} else if (k % 3 == 1) {
				ch[k].e.used_period = (uint8_t)(ch[k].e.used_period + 1);
			} else { /* to a profile without a household */
				ch[k].e.profile = ch[k].e.profile == 0 ? 1 : 0;
				ch[k].e.household = 0;
				ch[k].e.used = 0;
				ch[k].e.used_period = 0;
			}
		}
		k++;
	}
	/* "pass-2-<i>": identifiers the list does not hold ("pass-1-<i>") */
	fixture_entries(added, c->adds, 2);
	for (size_t i = 0; i < c->adds; i++)
		ch[k++] = (struct v2change){.op = PROTO_CLIST_OP_ADD, .e = added[i]};
	fixture_v2_next(f, cur, ch, total, &c->next, &c->delta, &c->delta_len);
	free(ch);
	free(mark);
	free(added);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"admin", required_argument, NULL, 'a'},
	        {"controller", required_argument, NULL, 'c'},
	        {"passes", required_argument, NULL, 'p'},
	        {"deltas", required_argument, NULL, 'd'},
	        {NULL, 0, NULL, 0},
	};
	const char *admin = NULL, *controller = NULL;
	size_t passes = 10000000;
	int deltas = 10, opt;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		if (opt == 'a')
			admin = optarg;
		else if (opt == 'c')
			controller = optarg;
		else if (opt == 'p')
			passes = strtoul(optarg, NULL, 10);
		else if (opt == 'd')
			deltas = atoi(optarg);
		else
			return 2;
	}
	if (!admin || !controller || passes < 1000 || deltas < 1 || deltas > 100) {
		fprintf(stderr, "usage: bench_gate --admin PATH --controller PATH [--passes N >= "
		                "1000] [--deltas 1..100]\n");
		return 2;
	}
	char dir[] = "/tmp/citypass-bench-gate-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char data[128], bundle[128], pub[160], store[160], conf[160], cmd[600];
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(bundle, sizeof(bundle), "%s/bundle", dir);
	snprintf(pub, sizeof(pub), "%s/list.pub.pem", bundle);
	snprintf(store, sizeof(store), "%s/state/lists", dir);
	snprintf(conf, sizeof(conf), "%s/gate.conf", dir);
	int rc = 1;
	struct controller_list_store *s = NULL;
	struct list_fixture f;
	fixture_init(&f);
	struct proto_list_entry *e = calloc(passes, sizeof(*e));
	char *init[] = {(char *)admin, "--data", data, "init", "--server-name", "localhost", NULL};
	char *site[] = {(char *)admin, "--data",   data,   "site", "add",
	                "pool-bench",  "--sector", "pool", NULL};
	char *dev[] = {(char *)admin, "--data", data,         "device",   "add",
	               "gate-1",      "--site", "pool-bench", "--server", "127.0.0.1:1",
	               "--out",       bundle,   NULL};
	if (!e || bench_run(init, NULL) || bench_run(site, NULL) || bench_run(dev, NULL) ||
	    unlink(pub) != 0 || proto_key_write_public_pem(f.signer, pub) != 0) {
		fprintf(stderr, "bench_gate: cannot make the device bundle\n");
		goto out;
	}
	FILE *cf = fopen(conf, "w");
	if (!cf)
		goto out;
	fprintf(cf,
	        "bundle = %s\nreader = pn532_uart:/dev/null\nstate-dir = %s/state\n"
	        "gate = bench\nbench-dir = %s\nbench-reader = gate-1\n",
	        bundle, dir, dir);
	fclose(cf);

	fprintf(stderr, "bench_gate: building a list of %zu passes...\n", passes);
	fixture_entries(e, passes, 1);
	struct v2list cur;
	fixture_v2_build(&f, SECTOR, 1, proto_clist_bits_for(passes), e, passes, &cur);
	size_t one_list = cur.stream_len;

	char state[160];
	snprintf(state, sizeof(state), "%s/state", dir);
	mkdir(state, 0700);
	int orc = controller_list_store_open(&s, store, SECTOR, f.ring, FIXTURE_ISSUED);
	if (orc != 0) {
		fprintf(stderr, "bench_gate: cannot open the store %s: %s\n", store,
		        controller_strerror(orc));
		goto out;
	}
	double t0 = now_s();
	int irc = controller_list_store_install_snapshot(s, cur.stream, cur.stream_len, cur.sig,
	                                                 cur.sig_len, FIXTURE_ISSUED);
	double snap_s = now_s() - t0;
	if (irc) {
		fprintf(stderr, "bench_gate: snapshot refused: %s\n", controller_strerror(irc));
		goto out;
	}
	double inst[100], written[100];
	for (int d = 0; d < deltas; d++) {
		/* revoke one pass, somewhere else each time */
		struct v2change ch = {.op = PROTO_CLIST_OP_CHANGE};
		ch.e = e[((size_t)d * 2654435761u) % passes];
		ch.e.status = PROTO_STATUS_REVOKED;
		struct v2list next;
		uint8_t *delta = NULL;
		size_t delta_len = 0;
		fixture_v2_next(&f, &cur, &ch, 1, &next, &delta, &delta_len);
		t0 = now_s();
		irc = controller_list_store_apply_delta(s, delta, delta_len, next.sig, next.sig_len,
		                                        FIXTURE_ISSUED);
		inst[d] = now_s() - t0;
		free(delta);
		fixture_v2_free(&cur);
		cur = next;
		if (irc) {
			fprintf(stderr, "bench_gate: delta refused: %s\n",
			        controller_strerror(irc));
			goto out;
		}
		struct controller_list_store_stats st;
		controller_list_store_stats(s, &st);
		written[d] = (double)st.bytes_written;
	}
	/* The daily delta (DESIGN s.9: at 0.1 % churn), made as the server makes one: the next
	 * version derived from the installed one, signed, and the per-chunk operations. */
	struct churn ch;
	if (churn_delta(&f, &cur, e, passes, &ch) != 0) {
		fprintf(stderr, "bench_gate: cannot make the churn delta\n");
		goto out;
	}
	t0 = now_s();
	irc = controller_list_store_apply_delta(s, ch.delta, ch.delta_len, ch.next.sig,
	                                        ch.next.sig_len, FIXTURE_ISSUED);
	double churn_s = now_s() - t0;
	free(ch.delta);
	fixture_v2_free(&cur);
	cur = ch.next;
	if (irc) {
		fprintf(stderr, "bench_gate: churn delta refused: %s\n", controller_strerror(irc));
		goto out;
	}
	struct controller_list_store_stats churn_st;
	controller_list_store_stats(s, &churn_st);
	controller_list_store_close(s);
	s = NULL;
	uint64_t on_disk = dir_bytes(store, 0);
	unsigned list_files = 0;
	uint64_t list_size = version_bytes(store, &cur.m, &list_files);

	double warm[5], cold[5];
	char *check[] = {(char *)controller, "--config", conf, "--check-state", NULL};
	for (int i = 0; i < 5; i++) {
		t0 = now_s();
		if (bench_run(check, NULL) != 0) {
			fprintf(stderr, "bench_gate: citypass-controller --check-state failed\n");
			goto out;
		}
		warm[i] = now_s() - t0;
		dir_bytes(store, 1);
		t0 = now_s();
		if (bench_run(check, NULL) != 0)
			goto out;
		cold[i] = now_s() - t0;
	}
	double base[10];
	for (int i = 0; i < 10; i++)
		base[i] = atomic_replace_s(dir);
	double b50 = median(base, 10);
	double i50 = median(inst, deltas), imax = inst[deltas - 1];
	double w50 = median(written, deltas), wmax = written[deltas - 1];
	double wm = median(warm, 5), cm = median(cold, 5);
	printf("\n== a gate's list at %zu passes (bench_gate) ==\n", passes);
	printf("snapshot install: %.0f ms, %.1f MiB\n", snap_s * 1e3, (double)one_list / 1048576);
	printf("one-pass delta install (controller_list_store_apply_delta, %d deltas): p50 %.1f "
	       "ms, max %.1f ms (budget <= 20 ms: %s); written p50 %.0f KiB, max %.0f KiB "
	       "(budget <= 1024 KiB: %s)\n",
	       deltas, i50 * 1e3, imax * 1e3, imax <= 0.020 ? "met" : "MISSED", w50 / 1024,
	       wmax / 1024, wmax <= 1048576 ? "met" : "MISSED");
	printf("  baseline, this disk: one 4 KiB file replaced atomically (write, fsync, rename, "
	       "fsync the directory), median of 10: %.1f ms; the install / baseline: %.1f\n",
	       b50 * 1e3, b50 > 0 ? i50 / b50 : 0);
	printf("store on disk: %.1f MiB for a list of %.1f MiB: %.2f x one list (budget <= 1.10: "
	       "%s)\n",
	       (double)on_disk / 1048576, (double)one_list / 1048576,
	       (double)on_disk / (double)one_list,
	       (double)on_disk <= 1.1 * (double)one_list ? "met" : "MISSED");
	printf("exec of citypass-controller --check-state to decision-ready, signature checked "
	       "(median of 5): %.0f ms warm, %.0f ms with the store evicted from the page cache "
	       "(budget <= 500 ms at 10 M: %s)\n",
	       wm * 1e3, cm * 1e3, cm <= 0.5 && wm <= 0.5 ? "met" : "MISSED");
	/* DESIGN s.9 states these at 5 M passes: at another size the store and the day's delta
	 * are scaled linearly, fixed parts (head, signature, per-chunk records, 4 KiB blocks)
	 * with them, so that below ~100 000 passes the scaled figures overstate. */
	double to5m = 5e6 / (double)passes;
	double per_pass = (double)list_size / (double)passes;
	double disk5m = (double)on_disk * to5m;
	printf("list a gate holds, format 2: %.2f B per pass (%u files of version %llu: head, "
	       "manifest, signature, every chunk's .idx and .dat; %.1f MiB) (budget <= 16 B: "
	       "%s); store on disk at 5 M passes%s: %.1f MiB (budget <= 80 MiB: %s)\n",
	       per_pass, list_files, (unsigned long long)cur.version, (double)list_size / 1048576,
	       list_size && per_pass <= 16.0 ? "met" : "MISSED",
	       passes == 5000000 ? "" : " (scaled from the store above)", disk5m / 1048576,
	       disk5m <= 80.0 * 1048576 ? "met" : "MISSED");
	double sent = (double)(ch.delta_len + cur.sig_len), sent5m = sent * to5m;
	printf("daily delta at 0.1 %% churn (%zu adds, %zu changes, %zu removes), as the server "
	       "derives it: %.1f KiB sent (%zu B of delta + its %zu B manifest signature)",
	       ch.adds, ch.changes, ch.removes, sent / 1024, ch.delta_len, cur.sig_len);
	if (passes != 5000000)
		printf(", %.1f KiB scaled linearly to 5 M", sent5m / 1024);
	printf(" (budget <= 256 KiB at 5 M: %s)\n", sent5m <= 256.0 * 1024 ? "met" : "MISSED");
	printf("  its install (controller_list_store_apply_delta): %.0f ms, %.1f MiB written: "
	       "rewrites %u of %u chunks (no budget: a 0.1 %% churn touches nearly every "
	       "chunk)\n",
	       churn_s * 1e3, (double)churn_st.bytes_written / 1048576,
	       cur.m.n_chunks - churn_st.chunks_reused, cur.m.n_chunks);
	fixture_v2_free(&cur);
	rc = 0;
out:
	if (s)
		controller_list_store_close(s);
	free(e);
	fixture_free(&f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_gate: could not remove %s\n", dir);
	return rc;
}
