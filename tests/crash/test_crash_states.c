/*
 * test_crash_states — power cuts, proven by exploring them (issue 13, item 3).
 *
 * A workload runs the gate's journal as the reader loop and the sync thread do — decisions
 * appended, a card debit pending then settled, one withdrawn, acks of both streams, a WAL
 * checkpoint, the close — and a list install, while the file-system operations are
 * recorded (crash_record.h: a sqlite VFS shim, an interposer for the list files). Every
 * state a power cut could leave is then materialised (crash_states.c), and the real
 * citypass-controller is started on each (`--check-state`: the list store opened with its
 * fallback, the journal recovered and migrated, interrupted debits settled). Criteria, for
 * a crash after the workload learned that a call returned (its mark):
 *   - the controller starts, with a valid list: the old or the new version (the new one
 *     once its install returned), never none; and every pass of every version looked up
 *     in the store as the state holds it gets exactly that version's answer (nothing
 *     decided from an unverified byte, no valid pass refused for a damaged leaf). The list
 *     workload: format 2 version 1 held, a delta to 2, a snapshot of 3, signed by the
 *     fixture's key, which the gate's bundle trusts here;
 *   - no decision that opened a gate is lost: every append that returned is there, or was
 *     acknowledged (and so deleted) by an ack that returned;
 *   - no acknowledged event comes back: no statistic at or below an ack that returned;
 *     no use acknowledged by an ack that returned is unacknowledged again;
 *   - nothing is counted twice: a decision withdrawn (the card's commit failed) that
 *     returned is not there.
 * Prints the number of states explored and of violations (the goal: 0).
 *
 * Usage: test_crash_states   env: ADMIN CONTROLLER (the real binaries)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "controller/error.h"
#include "controller/journal.h"
#include "controller/list_store.h"
#include "crash_record.h"
#include "list_fixture.h"
#include "proto/error.h"

#define MAX_MARKS 128

enum mark_kind {
	M_APPEND,     /* a decision durable: (epoch, seq) */
	M_ACK_STATS,  /* statistics of epoch up to seq acknowledged */
	M_ACKING,     /* ... about to be: from here they may be gone (the server has them) */
	M_ACK_USES,   /* uses of epoch up to seq acknowledged */
	M_WITHDRAWN,  /* a pending decision withdrawn (its card did not commit) */
	M_LIST_BEGIN, /* a list install called (from here the new version may be in use) */
	M_LIST,       /* a list version installed (returned) */
	M_OTHER,
};

struct mark {
	enum mark_kind kind;
	int64_t epoch;
	uint64_t seq;
	uint64_t version;
	char what[64];
};

static struct mark marks[MAX_MARKS];
static size_t n_marks;
static char root[256];      /* the temp directory */
static char state_dir[512]; /* what the workload writes (recorded) */
static char base_dir[512];  /* its copy before the workload */
static char crash_dir[512]; /* each state, materialised */
static const char *controller;

/* The list workload (issue 13, item 3): the gate's sector, the deployment's list key is
 * the fixture's (its public half written into the bundle), versions 1 (in the base), 2 (a
 * delta) and 3 (a snapshot). The expected content of each version, to look every pass up
 * in each state. */
#define LIST_SECTOR 1 /* pool, the first sector of `init --sectors pool` */
#define LIST_BITS   2 /* 4 chunks */
#define LIST_PASSES 600
#define LIST_NOW    (FIXTURE_ISSUED + 60) /* the workload's clock: the lists are valid */
static struct list_fixture fx;
static struct v2list lv[4];
static uint8_t *ldelta[4];
static size_t ldelta_len[4];
static struct proto_list_entry lexp[4][LIST_PASSES + 1]; /* each version's passes, sorted */
static size_t lexp_n[4];
static uint64_t list_old = 1;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "test_crash_states: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void mark(enum mark_kind kind, int64_t epoch, uint64_t seq, const char *what)
{
	if (n_marks == MAX_MARKS)
		die("too many marks");
	int m = crash_record_mark();
	if (m != (int)n_marks)
		die("marks out of step");
	marks[n_marks] = (struct mark){.kind = kind, .epoch = epoch, .seq = seq};
	snprintf(marks[n_marks].what, sizeof(marks[n_marks].what), "%s", what);
	n_marks++;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* --- the deployment the controller starts with ------------------------------------------- */

static void deployment(void)
{
	const char *admin = getenv("ADMIN");
	if (!admin || !controller)
		die("ADMIN and CONTROLLER must name the real binaries");
	if (sh("CITYPASS_DATA=%s/data %s init --server-name 127.0.0.1 --sectors pool >/dev/null &&"
	       " CITYPASS_DATA=%s/data %s site add pool-n --sector pool >/dev/null &&"
	       " CITYPASS_DATA=%s/data %s device add gate-1 --site pool-n --server 127.0.0.1:1"
	       " --out %s/bundle >/dev/null",
	       root, admin, root, admin, root, admin, root) != 0)
		die("citypass-admin could not make the deployment");
	/* the lists of this test are signed by the fixture's key: the gate trusts it */
	char pub[600];
	snprintf(pub, sizeof(pub), "%s/bundle/list.pub.pem", root);
	if (access(pub, F_OK) != 0)
		die("%s: not in the bundle", pub);
	if (unlink(pub) != 0 || proto_key_write_public_pem(fx.signer, pub) != 0)
		die("cannot write %s", pub);
	char conf[600];
	snprintf(conf, sizeof(conf), "%s/gate.conf", root);
	FILE *f = fopen(conf, "w");
	if (!f)
		die("%s: %s", conf, strerror(errno));
	/* state-dir: each crash state in turn; nothing else is opened by --check-state */
	fprintf(f,
	        "bundle = bundle\nreader = pn532_uart:%s/no-reader\nstate-dir = %s\n"
	        "gate = bench\nbench-dir = %s\nbench-reader = gate-1\n",
	        root, crash_dir, root);
	fclose(f);
}

/* --- the workload ----------------------------------------------------------------------- */

static struct controller_event decision(uint8_t pass, bool consumes, bool pending)
{
	struct controller_event ev = {.at = 1780000000 + pass,
	                              .site = 1,
	                              .gate = 1,
	                              .sector = 1,
	                              .product = 1,
	                              .granted = true,
	                              .reason = 0};
	memset(ev.key, pass, sizeof(ev.key));
	if (consumes) {
		ev.consumes = true;
		ev.period = PROTO_PERIOD_YEAR;
		ev.period_number = 2026;
		ev.count = 1;
	}
	ev.remember_grant = !pending;
	ev.pending = pending;
	return ev;
}

static void journal_workload(void)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/journal.db", state_dir);
	struct controller_journal *j = NULL;
	if (controller_journal_open(&j, path) != 0)
		die("journal open");
	const int64_t epoch = controller_journal_epoch(j);
	struct controller_journal_seq seq;
	char what[64];

	/* decisions, two of them counted uses */
	for (uint8_t p = 1; p <= 4; p++) {
		struct controller_event ev = decision(p, p % 2 == 0, false);
		if (controller_journal_append(j, &ev, &seq) != 0)
			die("append");
		snprintf(what, sizeof(what), "decision %u appended", (unsigned)seq.stat);
		mark(M_APPEND, epoch, seq.stat, what);
	}
	/* the sync thread's acks (its own connection in the daemon: here the same one) */
	mark(M_ACKING, epoch, 2, "acking statistics up to 2");
	if (controller_journal_ack_epoch(j, CONTROLLER_STREAM_STATS, epoch, 2, 1780000100, NULL))
		die("ack statistics");
	mark(M_ACK_STATS, epoch, 2, "statistics acked up to 2");
	if (controller_journal_ack_epoch(j, CONTROLLER_STREAM_CONSUMPTION, epoch, 1, 1780000100,
	                                 NULL) ||
	    controller_journal_ack_position(j, epoch, 1, 17))
		die("ack uses");
	mark(M_ACK_USES, epoch, 1, "uses acked up to 1");

	/* a card debit: pending, then its commit answered */
	struct controller_event debit = decision(5, false, true);
	if (controller_journal_append(j, &debit, &seq) != 0)
		die("append pending");
	const uint64_t debit_seq = seq.stat;
	mark(M_APPEND, epoch, debit_seq, "debit decision pending");
	if (controller_journal_settle(j, debit_seq, &debit, true) != 0)
		die("settle");
	mark(M_OTHER, epoch, debit_seq, "debit settled");
	/* a card debit whose commit failed: withdrawn */
	struct controller_event lost = decision(6, false, true);
	if (controller_journal_append(j, &lost, &seq) != 0)
		die("append pending 2");
	const uint64_t lost_seq = seq.stat;
	if (controller_journal_settle(j, lost_seq, &lost, false) != 0)
		die("withdraw");
	mark(M_WITHDRAWN, epoch, lost_seq, "decision withdrawn");

	/* more decisions, then the WAL copied into the database, then one more */
	for (uint8_t p = 7; p <= 8; p++) {
		struct controller_event ev = decision(p, true, false);
		if (controller_journal_append(j, &ev, &seq) != 0)
			die("append");
		snprintf(what, sizeof(what), "decision %u appended", (unsigned)seq.stat);
		mark(M_APPEND, epoch, seq.stat, what);
	}
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK)
		die("checkpoint: %s", sqlite3_errmsg(db));
	sqlite3_close(db);
	mark(M_OTHER, 0, 0, "checkpoint");
	struct controller_event ev = decision(9, false, false);
	if (controller_journal_append(j, &ev, &seq) != 0)
		die("append");
	mark(M_APPEND, epoch, seq.stat, "decision after the checkpoint");
	mark(M_ACKING, epoch, seq.stat, "acking every statistic");
	if (controller_journal_ack_epoch(j, CONTROLLER_STREAM_STATS, epoch, seq.stat, 1780000200,
	                                 NULL))
		die("ack all");
	snprintf(what, sizeof(what), "statistics acked up to %u", (unsigned)seq.stat);
	mark(M_ACK_STATS, epoch, seq.stat, what);
	controller_journal_close(j);
	mark(M_OTHER, 0, 0, "journal closed");
}

/* --- the list install ------------------------------------------------------------------ */

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(((const struct proto_list_entry *)a)->key,
	              ((const struct proto_list_entry *)b)->key, PROTO_LIST_KEY_LEN);
}

/* Version v of the expected content: version v-1's with these changes. */
static void expect_next(int v, const struct v2change *c, size_t n)
{
	memcpy(lexp[v], lexp[v - 1], sizeof(lexp[v]));
	lexp_n[v] = lexp_n[v - 1];
	for (size_t i = 0; i < n; i++) {
		struct proto_list_entry *e =
		        bsearch(&c[i].e, lexp[v], lexp_n[v], sizeof(lexp[v][0]), entry_cmp);
		if (c[i].op == PROTO_CLIST_OP_ADD && !e && lexp_n[v] <= LIST_PASSES)
			lexp[v][lexp_n[v]++] = c[i].e;
		else if (c[i].op == PROTO_CLIST_OP_CHANGE && e)
			*e = c[i].e;
		else if (c[i].op == PROTO_CLIST_OP_REMOVE && e)
			*e = lexp[v][--lexp_n[v]];
		else
			die("list change %zu of version %d does not apply", i, v);
		qsort(lexp[v], lexp_n[v], sizeof(lexp[v][0]), entry_cmp);
	}
}

/* Versions 1..3: v2 counts a use, revokes a pass, adds one and removes one; v3 counts
 * another use (reaching the gate as a snapshot: a gate too far behind gets one). */
static void lists_build(void)
{
	static struct proto_list_entry e[LIST_PASSES];
	fixture_entries(e, LIST_PASSES, 1);
	fixture_v2_build(&fx, LIST_SECTOR, 1, LIST_BITS, e, LIST_PASSES, &lv[1]);
	memcpy(lexp[1], e, sizeof(e));
	lexp_n[1] = LIST_PASSES;
	struct proto_list_entry added;
	fixture_entries(&added, 1, 9);
	struct v2change c2[4] = {
	        {PROTO_CLIST_OP_CHANGE, e[101]},
	        {PROTO_CLIST_OP_CHANGE, e[350]},
	        {PROTO_CLIST_OP_ADD, added},
	        {PROTO_CLIST_OP_REMOVE, e[500]},
	};
	c2[0].e.used++;
	c2[1].e.status = PROTO_STATUS_REVOKED;
	fixture_v2_next(&fx, &lv[1], c2, 4, &lv[2], &ldelta[2], &ldelta_len[2]);
	expect_next(2, c2, 4);
	struct v2change c3 = {PROTO_CLIST_OP_CHANGE, e[202]};
	c3.e.used += 2;
	fixture_v2_next(&fx, &lv[2], &c3, 1, &lv[3], &ldelta[3], &ldelta_len[3]);
	expect_next(3, &c3, 1);
}

static void list_mark(enum mark_kind kind, uint64_t version, const char *what)
{
	mark(kind, 0, 0, what);
	marks[n_marks - 1].version = version;
}

static void list_workload(const char *dir)
{
	struct controller_list_store *s = NULL;
	if (controller_list_store_open(&s, dir, LIST_SECTOR, fx.ring, LIST_NOW) != 0 ||
	    controller_list_store_version(s) != 1)
		die("the list store does not hold version 1");
	list_mark(M_LIST_BEGIN, 2, "installing list v2 (delta)");
	int rc = controller_list_store_apply_delta(s, ldelta[2], ldelta_len[2], lv[2].sig,
	                                           lv[2].sig_len, LIST_NOW);
	if (rc != 0)
		die("delta v2: %s", controller_strerror(rc));
	list_mark(M_LIST, 2, "list v2 installed");
	list_mark(M_LIST_BEGIN, 3, "installing list v3 (snapshot)");
	rc = controller_list_store_install_snapshot(s, lv[3].stream, lv[3].stream_len, lv[3].sig,
	                                            lv[3].sig_len, LIST_NOW);
	if (rc != 0)
		die("snapshot v3: %s", controller_strerror(rc));
	list_mark(M_LIST, 3, "list v3 installed");
	controller_list_store_close(s);
}

/* Every pass of every version looked up in the store as the state holds it: the answer is
 * version `version`'s, byte for byte, or the tap is refused (LIST_DAMAGED) — never a
 * decision from a byte the signature does not cover. Returns the wrong answers (and counts
 * the refusals: a valid list must not refuse either). */
static long lookups(const char *dir, uint64_t version, long *refused)
{
	*refused = 0;
	if (version < 1 || version > 3)
		return 0;
	struct controller_list_store *s = NULL;
	if (controller_list_store_open(&s, dir, LIST_SECTOR, fx.ring, LIST_NOW) != 0)
		return 1;
	long wrong = 0;
	if (controller_list_store_version(s) != version)
		wrong++;
	/* the union of every version's keys: present in one, absent from another */
	for (int v = 1; v <= 3 && !wrong; v++) {
		for (size_t i = 0; i < lexp_n[v]; i++) {
			struct controller_pass p;
			int rc = controller_list_store_lookup(s, lexp[v][i].key, &p);
			if (rc == CONTROLLER_ERR_LIST_DAMAGED) {
				(*refused)++;
				continue;
			}
			const struct proto_list_entry *want =
			        bsearch(&lexp[v][i], lexp[version], lexp_n[version],
			                sizeof(lexp[0][0]), entry_cmp);
			if (rc != 0 || p.found != (want != NULL) ||
			    (want &&
			     (p.entry.status != want->status || p.entry.used != want->used ||
			      p.entry.profile != want->profile ||
			      p.entry.household != want->household)))
				wrong++;
		}
	}
	controller_list_store_close(s);
	return wrong;
}

/* --- checking one state ----------------------------------------------------------------- */

struct tally {
	long states;
	long violations;
	long list_states; /* crashes during a list install */
};

static const char *state_lists(const char *dir)
{
	static char p[600];
	snprintf(p, sizeof(p), "%s/lists", dir);
	return p;
}

static int violation(struct tally *t, const struct crash_state *st, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int violation(struct tally *t, const struct crash_state *st, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (t->violations < 20)
		fprintf(stderr, "VIOLATION: crash after op %zu (%s %zu): %s\n", st->crash_at,
		        st->how, st->variant, msg);
	t->violations++;
	return 0;
}

static int row_present(sqlite3 *db, const char *table, int64_t epoch, uint64_t seq)
{
	char q[160];
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE epoch = %lld AND seq = %llu", table,
	         (long long)epoch, (unsigned long long)seq);
	sqlite3_stmt *s;
	int n = -1;
	if (sqlite3_prepare_v2(db, q, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n;
}

static int count(sqlite3 *db, const char *q)
{
	sqlite3_stmt *s;
	int n = -1;
	if (sqlite3_prepare_v2(db, q, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return n;
}

static int check_state(void *ctx, const struct crash_state *st, const char *dir)
{
	struct tally *t = ctx;
	t->states++;
	const size_t reached = crash_marks_before(crash_record_log(), st->crash_at);

	/* the real controller, started on this state */
	char out[1024] = "";
	char cmd[1400];
	snprintf(cmd, sizeof(cmd), "%s --config %s/gate.conf --check-state 2>%s/check.err",
	         controller, root, root);
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(out, sizeof(out), p))
		out[0] = '\0';
	int rc = p ? pclose(p) : -1;
	if (rc != 0 || strncmp(out, "state ok:", 9) != 0) {
		char err[512] = "";
		char errp[600];
		snprintf(errp, sizeof(errp), "%s/check.err", root);
		FILE *e = fopen(errp, "r");
		if (e) {
			size_t n = fread(err, 1, sizeof(err) - 1, e);
			err[n] = '\0';
			fclose(e);
		}
		return violation(t, st, "the controller did not start: %s", err);
	}
	unsigned long long version = 0;
	const char *v = strstr(out, "list version ");
	if (v)
		version = strtoull(v + 13, NULL, 10);
	/* the list: the last one installed, or the one being installed */
	uint64_t held = list_old, installing = 0;
	for (size_t m = 0; m < reached; m++) {
		if (marks[m].kind == M_LIST_BEGIN)
			installing = marks[m].version;
		else if (marks[m].kind == M_LIST)
			held = marks[m].version, installing = 0;
	}
	t->list_states += installing != 0;
	if (version != held && (!installing || version != installing))
		violation(t, st, "holds list version %llu (installed v%llu%s%llu)", version,
		          (unsigned long long)held, installing ? ", installing v" : "",
		          (unsigned long long)installing);
	else if (strstr(out, "fell back"))
		violation(t, st, "the list on disk was not used (fell back): %s", out);
	long refused = 0, wrong = lookups(state_lists(dir), version, &refused);
	if (wrong)
		violation(t, st, "%ld lookup(s) of list v%llu answered wrong", wrong, version);
	if (refused)
		violation(t, st, "%ld lookup(s) of list v%llu refused (damaged)", refused, version);

	char path[600];
	snprintf(path, sizeof(path), "%s/journal.db", dir);
	sqlite3 *db;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return violation(t, st, "journal unreadable after the start");
	}
	for (size_t m = 0; m < reached; m++) {
		const struct mark *k = &marks[m];
		if (k->kind == M_APPEND) {
			bool acked = false, withdrawn = false;
			for (size_t a = 0; a < reached; a++) {
				acked |= (marks[a].kind == M_ACK_STATS ||
				          marks[a].kind == M_ACKING) &&
				         marks[a].epoch == k->epoch && marks[a].seq >= k->seq;
				withdrawn |= marks[a].kind == M_WITHDRAWN && marks[a].seq == k->seq;
			}
			if (!acked && !withdrawn && row_present(db, "stat", k->epoch, k->seq) != 1)
				violation(t, st, "%s, then lost", k->what);
		} else if (k->kind == M_ACK_STATS) {
			char q[160];
			snprintf(q, sizeof(q),
			         "SELECT count(*) FROM stat WHERE epoch = %lld AND seq <= %llu",
			         (long long)k->epoch, (unsigned long long)k->seq);
			int n = count(db, q);
			if (n != 0)
				violation(t, st, "%s, then %d of them came back", k->what, n);
		} else if (k->kind == M_ACK_USES) {
			char q[200];
			snprintf(q, sizeof(q),
			         "SELECT count(*) FROM consumption WHERE epoch = %lld AND seq <= "
			         "%llu"
			         " AND acked_at IS NULL",
			         (long long)k->epoch, (unsigned long long)k->seq);
			int n = count(db, q);
			if (n != 0)
				violation(t, st, "%s, then %d of them unacknowledged again",
				          k->what, n);
		} else if (k->kind == M_WITHDRAWN) {
			if (row_present(db, "stat", k->epoch, k->seq) != 0)
				violation(t, st, "%s, then counted", k->what);
		}
	}
	sqlite3_close(db);
	return 0;
}

/* --- main ----------------------------------------------------------------------------------- */

/* The exploration, in a child of main(): its temp directory is removed by the parent
 * however the child ends (die(), a sanitizer's abort, a crash, a signal). */
static int explore(void)
{
	snprintf(state_dir, sizeof(state_dir), "%s/state", root);
	snprintf(base_dir, sizeof(base_dir), "%s/base", root);
	snprintf(crash_dir, sizeof(crash_dir), "%s/crash", root);
	fixture_init(&fx);
	lists_build();
	deployment();

	/* the state before the workload: a journal as a first start leaves it, no list yet */
	if (mkdir(state_dir, 0700) != 0 || mkdir(base_dir, 0700) != 0)
		die("mkdir: %s", strerror(errno));
	char path[600];
	snprintf(path, sizeof(path), "%s/journal.db", state_dir);
	struct controller_journal *j = NULL;
	if (controller_journal_open(&j, path) != 0)
		die("journal");
	controller_journal_close(j);
	snprintf(path, sizeof(path), "%s/lists", state_dir);
	mkdir(path, 0700);
	/* ... and list version 1, installed as the sync client does */
	struct controller_list_store *ls = NULL;
	if (controller_list_store_open(&ls, path, LIST_SECTOR, fx.ring, LIST_NOW) != 0 ||
	    controller_list_store_install_snapshot(ls, lv[1].stream, lv[1].stream_len, lv[1].sig,
	                                           lv[1].sig_len, LIST_NOW) != 0)
		die("cannot install list v1");
	controller_list_store_close(ls);
	if (sh("cp -a %s/. %s/", state_dir, base_dir) != 0)
		die("cp");

	if (crash_vfs_register() != 0)
		die("cannot register the recording VFS");
	crash_record_start(state_dir);
	journal_workload();
	list_workload(path);
	crash_record_stop();
	const struct crash_log *log = crash_record_log();
	printf("workload: %zu file-system operations recorded, %zu marks\n", log->n, n_marks);
	if (getenv("CRASH_DUMP")) { /* the log, to read a violation against */
		static const char *const kinds[] = {"create", "write",  "truncate", "sync", "mkdir",
		                                    "unlink", "rename", "dirsync",  "mark"};
		for (size_t i = 0; i < log->n; i++) {
			const struct crash_op *op = &log->ops[i];
			printf("%4zu %-8s file %2d %s%s%s off %lld len %zu%s%s\n", i,
			       kinds[op->kind], op->file, op->path, op->path2[0] ? " -> " : "",
			       op->path2, (long long)op->off, op->len,
			       op->kind == CRASH_MARK ? " " : "",
			       op->kind == CRASH_MARK ? marks[op->mark].what : "");
		}
	}

	struct tally t = {0, 0, 0};
	long n = crash_states_explore(log, base_dir, crash_dir, check_state, &t);
	if (n < 0)
		die("exploring the states failed");
	printf("crash states explored: %ld (%ld of them during a list install), violations: %ld\n",
	       t.states, t.list_states, t.violations);
	crash_record_reset();
	for (int v = 1; v <= 3; v++) {
		fixture_v2_free(&lv[v]);
		free(ldelta[v]);
	}
	fixture_free(&fx);
	return t.violations == 0 ? 0 : 1;
}

static volatile sig_atomic_t child_pid;

/* SIGTERM/SIGINT/SIGHUP (a test timeout, ^C): passed to the child, then cleaned up as any end */
static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

/* A run killed with SIGKILL (ctest's timeout kills the test's whole tree so) cannot clean
 * up: its directory is removed by the next run. Each run holds a lock on its directory's
 * .owner while it lives; a directory whose .owner nobody holds is a dead run's. Runs of
 * other trees sharing TMPDIR hold theirs, and are left alone. */
static void sweep_dead_runs(const char *tmp)
{
	DIR *d = opendir(tmp);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char owner[600];
		if (strncmp(e->d_name, "crash-", 6) != 0)
			continue;
		snprintf(owner, sizeof(owner), "%s/%s/.owner", tmp, e->d_name);
		int fd = open(owner, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* not one of ours, or a run just starting */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			fprintf(stderr, "test_crash_states: removing %s/%s, left by a killed run\n",
			        tmp, e->d_name);
			sh("rm -rf '%s/%s'", tmp, e->d_name);
		}
		close(fd);
	}
	if (d)
		closedir(d);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	controller = getenv("CONTROLLER");
	sweep_dead_runs(tmp);
	snprintf(root, sizeof(root), "%s/crash-XXXXXX", tmp);
	if (!mkdtemp(root))
		die("mkdtemp: %s", strerror(errno));
	/* locked before it is named .owner: a sweep never sees it unlocked while this lives */
	char owner[300], owner_tmp[300];
	snprintf(owner, sizeof(owner), "%s/.owner", root);
	snprintf(owner_tmp, sizeof(owner_tmp), "%s/.owner.new", root);
	int owner_fd = open(owner_tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (owner_fd < 0 || flock(owner_fd, LOCK_EX) != 0 || rename(owner_tmp, owner) != 0) {
		int err = errno;
		sh("rm -rf '%s'", root);
		die("%s: %s", owner, strerror(err));
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		sh("rm -rf '%s'", root);
		die("fork: %s", strerror(errno));
	}
	if (pid == 0)
		exit(explore());

	child_pid = pid;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!getenv("KEEP_TMP"))
		sh("rm -rf '%s'", root);
	else
		printf("kept %s\n", root);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "test_crash_states: the exploration ended by signal %d\n",
		        WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
