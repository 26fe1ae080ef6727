/*
 * citypass-test-guard — nothing a test starts outlives it (issue 13, item 6).
 *
 *   citypass-test-guard run --name NAME --build-dir DIR [--grace-ms N] -- COMMAND [ARG...]
 *   citypass-test-guard sweep --build-dir DIR
 *
 * `run` is how ctest starts every test (tests/testing.cmake, citypass_add_test) and how
 * `make demo` and `make bench` start their scripts. It
 *   - runs COMMAND as the leader of a new process group, so one kill reaches what a
 *     script forgot (a non-interactive shell keeps its background jobs in its group);
 *   - is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a process whose parent died
 *     (a double fork, a subshell that exited, `timeout`'s own group) is re-parented here,
 *     not to init, so it stays in the process tree that ctest's timeout kill walks
 *     (kwsys kills the whole tree of a timed-out test, but only the tree) and this guard
 *     still finds it when the test ends;
 *   - when COMMAND ends, finds every process left in its tree, names each one on stderr
 *     (pid, executable, command line), ends it (SIGTERM, then SIGKILL after the grace) and
 *     fails the test (exit 1) even if COMMAND passed;
 *   - on SIGTERM / SIGINT / SIGHUP, passes SIGTERM to the test (its cleanup traps run) and
 *     kills whatever is left after the grace;
 *   - marks the environment of everything the test starts with CITYPASS_TEST=NAME and
 *     CITYPASS_TEST_BUILD=DIR.
 * `sweep` is the ctest fixture's cleanup (test `tests_left_nothing`, run after all the
 * others): any process still carrying CITYPASS_TEST_BUILD=DIR — this build tree's tests,
 * not another worktree's nor a developer's own demo — outlived its test. Each is named
 * with the test it came from, killed, and the sweep fails. It catches what no guard could:
 * a guard killed with SIGKILL (ctest's timeout) cannot report, and a process that left the
 * tree by its own setsid + double fork before the guard adopted it.
 *
 * Exit status of run: COMMAND's (77 passes through for skipped tests), 1 when anything was
 * left behind, 128 + signal when the guard was stopped by one, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENV_NAME  "CITYPASS_TEST"
#define ENV_BUILD "CITYPASS_TEST_BUILD"
#define MAX_PROCS 4096

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	if (sig != SIGALRM) /* SIGALRM only wakes the wait up */
		got_signal = sig;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* --- /proc ----------------------------------------------------------------------------- */

struct proc {
	pid_t pid, ppid;
};

/* Every process of the machine with its parent; n filled. Zombies included. */
static size_t list_procs(struct proc *out, size_t cap)
{
	DIR *d = opendir("/proc");
	size_t n = 0;
	struct dirent *e;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL && n < cap) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[64], buf[512];
		long pid = strtol(e->d_name, NULL, 10);
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		/* "pid (comm) state ppid ...": comm may hold spaces and parentheses */
		const char *p = strrchr(buf, ')');
		char state;
		int ppid;
		if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
			continue;
		out[n].pid = (pid_t)pid;
		out[n].ppid = (pid_t)ppid;
		n++;
	}
	closedir(d);
	return n;
}

/* The descendants of `root` (not root itself), parents before children; count returned. */
static size_t descendants(pid_t root, pid_t *out, size_t cap)
{
	static struct proc all[MAX_PROCS];
	size_t n_all = list_procs(all, MAX_PROCS), n = 0;
	/* breadth first: out[] doubles as the queue */
	for (size_t i = 0; i < n_all && n < cap; i++)
		if (all[i].ppid == root)
			out[n++] = all[i].pid;
	for (size_t q = 0; q < n; q++)
		for (size_t i = 0; i < n_all && n < cap; i++)
			if (all[i].ppid == out[q])
				out[n++] = all[i].pid;
	return n;
}

static void describe(pid_t pid, char *buf, size_t cap)
{
	char path[64], exe[PATH_MAX] = "?", cmd[256] = "";
	/* A process caught inside execve shows its new exe and an empty command line for an
	 * instant (seen on a loaded machine): look again for up to 0.5 s, so that every
	 * leftover is named by what it runs. */
	for (int tries = 0; tries < 50; tries++) {
		if (tries)
			usleep(10000);
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		ssize_t n = readlink(path, exe, sizeof(exe) - 1);
		exe[n > 0 ? n : 1] = '\0';
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break; /* gone */
		ssize_t r = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		for (ssize_t i = 0; i < r - 1; i++)
			if (cmd[i] == '\0')
				cmd[i] = ' ';
		cmd[r > 0 ? r : 0] = '\0';
		if (r > 0)
			break;
	}
	snprintf(buf, cap, "pid %d (%s: %s)", (int)pid, exe, cmd);
}

/* The value of `key` in a process's environment, or "" (not ours to read, or unset). */
static void environ_value(pid_t pid, const char *key, char *val, size_t cap)
{
	static char buf[1 << 17];
	char path[64];
	val[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = 0, r;
	while (n < (ssize_t)sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = '\0';
	size_t klen = strlen(key);
	for (char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			snprintf(val, cap, "%s", p + klen + 1);
			return;
		}
}

/* --- run ------------------------------------------------------------------------------- */

static void reap_all(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/*
 * End every process left below this guard: SIGTERM, then SIGKILL for those still there
 * after grace_ms. Each is named once on stderr when `report` is set. Returns how many
 * there were.
 */
static size_t end_leftovers(const char *name, long grace_ms, bool report)
{
	static pid_t left[MAX_PROCS];
	size_t n = descendants(getpid(), left, MAX_PROCS);
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (report) {
			char what[PATH_MAX + 300];
			describe(left[i], what, sizeof(what));
			fprintf(stderr, "citypass-test-guard: test %s left %s running: ended\n",
			        name, what);
		}
		kill(left[i], SIGTERM);
	}
	long long deadline = now_ms() + grace_ms;
	for (;;) {
		reap_all();
		static pid_t still[MAX_PROCS];
		size_t m = descendants(getpid(), still, MAX_PROCS);
		if (m == 0)
			break;
		if (now_ms() >= deadline) {
			for (size_t i = 0; i < m; i++)
				kill(still[i], SIGKILL);
			sleep_ms(20);
			reap_all();
			if (descendants(getpid(), still, MAX_PROCS) == 0 ||
			    now_ms() >= deadline + 5000)
				break;
			continue;
		}
		sleep_ms(20);
	}
	return n;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"name", required_argument, NULL, 'n'},
	        {"build-dir", required_argument, NULL, 'b'},
	        {"grace-ms", required_argument, NULL, 'g'},
	        {NULL, 0, NULL, 0},
	};
	const char *name = NULL, *build = NULL;
	long grace_ms = 5000;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'b':
			build = optarg;
			break;
		case 'g':
			grace_ms = strtol(optarg, NULL, 10);
			if (grace_ms < 0 || grace_ms > 600000) {
				fprintf(stderr,
				        "citypass-test-guard: --grace-ms '%s': expected 0 "
				        "to 600000\n",
				        optarg);
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (!name || optind >= argc) {
		fprintf(stderr, "usage: citypass-test-guard run --name NAME [--build-dir DIR] "
		                "[--grace-ms N] -- COMMAND [ARG...]\n");
		return 2;
	}
	char real[PATH_MAX];
	setenv(ENV_NAME, name, 1);
	if (build)
		setenv(ENV_BUILD, realpath(build, real) ? real : build, 1);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		fprintf(stderr, "citypass-test-guard: cannot become a subreaper: %s\n",
		        strerror(errno));

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);

	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "citypass-test-guard: fork: %s\n", strerror(errno));
		return 1;
	}
	if (child == 0) {
		setpgid(0, 0);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "citypass-test-guard: cannot run %s: %s\n", argv[optind],
		        strerror(errno));
		_exit(127);
	}
	setpgid(child, child); /* whichever of the two runs first */

	int status = 0, stopped_by = 0;
	long long term_deadline = 0;
	for (;;) {
		if (got_signal && !stopped_by) {
			stopped_by = got_signal;
			fprintf(stderr, "citypass-test-guard: test %s: signal %d, stopping it\n",
			        name, stopped_by);
			kill(child, SIGTERM);
			term_deadline = now_ms() + grace_ms;
		} else if (stopped_by && now_ms() >= term_deadline) {
			/* the test did not end within the grace: its whole group goes */
			kill(-child, SIGKILL);
			kill(child, SIGKILL);
			term_deadline = now_ms() + 1000;
		}
		/* a signal landing between the check above and waitpid is seen within 1 s */
		alarm(1);
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p == child) {
			status = st;
			break;
		}
		if (p < 0 && errno == ECHILD)
			break; /* cannot happen: the child is ours until reaped */
	}
	signal(SIGALRM, SIG_IGN);
	alarm(0);
	/* what the test left: nothing is quietly kept */
	size_t left = end_leftovers(name, grace_ms, !stopped_by);
	if (stopped_by)
		return 128 + stopped_by;
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (left) {
		fprintf(stderr,
		        "citypass-test-guard: FAIL: test %s left %zu process(es) running "
		        "(exit status of the test itself: %d)\n",
		        name, left, rc);
		return 1;
	}
	return rc;
}

/* --- sweep ----------------------------------------------------------------------------- */

static bool is_ancestor(pid_t pid, const struct proc *all, size_t n)
{
	pid_t p = getppid();
	for (int depth = 0; p > 1 && depth < 64; depth++) {
		if (p == pid)
			return true;
		pid_t up = 0;
		for (size_t i = 0; i < n; i++)
			if (all[i].pid == p)
				up = all[i].ppid;
		p = up;
	}
	return false;
}

static int cmd_sweep(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "--build-dir") != 0) {
		fprintf(stderr, "usage: citypass-test-guard sweep --build-dir DIR\n");
		return 2;
	}
	char want[PATH_MAX];
	if (!realpath(argv[2], want))
		snprintf(want, sizeof(want), "%s", argv[2]);
	static struct proc all[MAX_PROCS];
	size_t n = list_procs(all, MAX_PROCS), found = 0;
	for (size_t i = 0; i < n; i++) {
		pid_t pid = all[i].pid;
		if (pid == getpid() || is_ancestor(pid, all, n))
			continue;
		char build[PATH_MAX], test[256], what[PATH_MAX + 300];
		environ_value(pid, ENV_BUILD, build, sizeof(build));
		if (strcmp(build, want) != 0)
			continue;
		environ_value(pid, ENV_NAME, test, sizeof(test));
		describe(pid, what, sizeof(what));
		fprintf(stderr, "tests_left_nothing: %s outlived test %s: killed\n", what,
		        test[0] ? test : "?");
		kill(pid, SIGKILL);
		found++;
	}
	if (found) {
		fprintf(stderr,
		        "tests_left_nothing: FAIL: %zu process(es) of %s outlived their "
		        "test\n",
		        found, want);
		return 1;
	}
	printf("tests_left_nothing: no process of %s outlived its test\n", want);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "sweep") == 0)
		return cmd_sweep(argc - 1, argv + 1);
	fprintf(stderr,
	        "usage: citypass-test-guard run --name NAME [--build-dir DIR] -- COMMAND...\n"
	        "       citypass-test-guard sweep --build-dir DIR\n");
	return 2;
}
