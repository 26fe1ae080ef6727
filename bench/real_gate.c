/* bench/real_gate.c — one real citypass-controller among a bench's gates (real_gate.h). */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "real_gate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_proc.h"
#include "sim_controller.h"

int real_gate_enrol(const char *admin, const char *data, const char *dir, const char *site)
{
	char bundle[900], out[900];
	snprintf(bundle, sizeof(bundle), "%s/bundle-real", dir);
	if (access(bundle, F_OK) == 0)
		return 0;
	snprintf(out, sizeof(out), "%s/admin-real.out", dir);
	/* the address is the bundle's placeholder: each run points its copy at the server */
	char *add[] = {(char *)admin,  "--data", (char *)data, "device",   "add",
	               REAL_GATE_NAME, "--site", (char *)site, "--server", "127.0.0.1:1",
	               "--out",        bundle,   NULL};
	if (bench_run(add, out) != 0) {
		fprintf(stderr, "bench: device add %s failed (%s)\n", REAL_GATE_NAME, out);
		return -1;
	}
	return 0;
}

/* The bundle's device.conf with its server line replaced. */
static int point_bundle(const char *conf, unsigned port)
{
	FILE *f = fopen(conf, "r");
	if (!f)
		return -1;
	char text[8192];
	size_t len = 0, n;
	char line[1024];
	int found = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "server =", 8) == 0) {
			snprintf(line, sizeof(line), "server = 127.0.0.1:%u\n", port);
			found = 1;
		}
		n = strlen(line);
		if (len + n >= sizeof(text)) {
			fclose(f);
			return -1;
		}
		memcpy(text + len, line, n);
		len += n;
	}
	fclose(f);
	if (!found || !(f = fopen(conf, "w")))
		return -1;
	int rc = fwrite(text, 1, len, f) == len ? 0 : -1;
	return fclose(f) == 0 ? rc : -1;
}

/* The bench's control socket, as far as a gate backend uses it: each line it sends is a
 * `gate` command, answered "ok" and the "." line that ends an answer (docs/hil.md). */
static void *serve_control(void *arg)
{
	struct real_gate *g = arg;
	struct pollfd p[2 + 4];
	int client[4] = {-1, -1, -1, -1};
	for (;;) {
		p[0] = (struct pollfd){.fd = g->stop_pipe[0], .events = POLLIN};
		p[1] = (struct pollfd){.fd = g->control_fd, .events = POLLIN};
		for (int i = 0; i < 4; i++)
			p[2 + i] = (struct pollfd){.fd = client[i], .events = POLLIN};
		if (poll(p, 6, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		if (p[1].revents & POLLIN) {
			int fd = accept4(g->control_fd, NULL, NULL, SOCK_CLOEXEC);
			int i = 0;
			while (fd >= 0 && i < 4 && client[i] >= 0)
				i++;
			if (fd >= 0 && i < 4)
				client[i] = fd;
			else if (fd >= 0)
				close(fd);
		}
		for (int i = 0; i < 4; i++) {
			if (client[i] < 0 || !p[2 + i].revents)
				continue;
			char buf[1024];
			ssize_t n = read(client[i], buf, sizeof(buf));
			if (n <= 0) {
				close(client[i]);
				client[i] = -1;
				continue;
			}
			for (ssize_t k = 0; k < n; k++)
				if (buf[k] == '\n' &&
				    send(client[i], "ok\n.\n", 5, MSG_NOSIGNAL) != 5)
					break;
		}
	}
	for (int i = 0; i < 4; i++)
		if (client[i] >= 0)
			close(client[i]);
	return NULL;
}

static int control_open(struct real_gate *g)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s/control.sock", g->dir);
	if (n < 0 || (size_t)n >= sizeof(a.sun_path)) {
		fprintf(stderr, "bench: %s too long for a socket path\n", g->dir);
		return -1;
	}
	g->control_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (g->control_fd < 0 || bind(g->control_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(g->control_fd, 4) != 0 || pipe2(g->stop_pipe, O_CLOEXEC) != 0) {
		fprintf(stderr, "bench: cannot serve %s: %s\n", a.sun_path, strerror(errno));
		return -1;
	}
	if (pthread_create(&g->control, NULL, serve_control, g) != 0)
		return -1;
	g->serving = 1;
	return 0;
}

static void control_close(struct real_gate *g)
{
	if (g->serving) {
		if (write(g->stop_pipe[1], "x", 1) != 1)
			pthread_cancel(g->control);
		pthread_join(g->control, NULL);
		g->serving = 0;
	}
	if (g->control_fd >= 0)
		close(g->control_fd);
	for (int i = 0; i < 2; i++)
		if (g->stop_pipe[i] >= 0)
			close(g->stop_pipe[i]);
	g->control_fd = g->stop_pipe[0] = g->stop_pipe[1] = -1;
}

int real_gate_start(struct real_gate *g, const char *controller, const char *dir, unsigned port)
{
	memset(g, 0, sizeof(*g));
	g->control_fd = g->stop_pipe[0] = g->stop_pipe[1] = -1;
	g->started = 1;
	snprintf(g->dir, sizeof(g->dir), "%s/real", dir);
	snprintf(g->log, sizeof(g->log), "%s/controller.log", g->dir);
	char bundle[900], from[900], conf[1000], out[900];
	snprintf(bundle, sizeof(bundle), "%s/bundle", g->dir);
	snprintf(from, sizeof(from), "%s/bundle-real", dir);
	snprintf(out, sizeof(out), "%s/real.out", dir);
	/* a fresh state each run: the snapshot, then the deltas of this run's revocations.
	 * The last run's list store is removed when it stops (real_gate_stop), not here: on
	 * an ext4 without a journal (this bench machine's) an inode deleted in the last 5 s,
	 * or 300 s while its table block is dirty, is skipped at each file creation, one by
	 * one (ext4's recently_deleted); 500 files deleted here made each install of this
	 * run 2 ms slower in the kernel, which no gate in the field pays. */
	char *rm[] = {"rm", "-rf", g->dir, NULL};
	char *cp[] = {"cp", "-r", from, bundle, NULL};
	if (bench_run(rm, out) != 0 || mkdir(g->dir, 0700) != 0 || bench_run(cp, out) != 0) {
		fprintf(stderr, "bench: cannot prepare %s (%s)\n", g->dir, out);
		return -1;
	}
	snprintf(conf, sizeof(conf), "%s/device.conf", bundle);
	if (point_bundle(conf, port) != 0) {
		fprintf(stderr, "bench: cannot point %s at the server\n", conf);
		return -1;
	}
	snprintf(conf, sizeof(conf), "%s/gate.conf", g->dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	/* no reader (its loop retries with its backoff), its relay reported to the control
	 * socket served here: it only syncs */
	fprintf(f,
	        "bundle = %s\nreader = pn532_uart:/dev/null\nstate-dir = %s/state\n"
	        "gate = bench\nbench-dir = %s\nbench-reader = %s\nlog = stderr\n",
	        bundle, g->dir, g->dir, REAL_GATE_NAME);
	if (fclose(f) != 0)
		return -1;
	if (control_open(g) != 0)
		return -1;
	char *argv[] = {(char *)controller, "--config", conf, NULL};
	g->pid = bench_spawn(argv, g->log);
	if (g->pid < 0) {
		g->pid = 0;
		return -1;
	}
	return 0;
}

/* "list delta installed: version 4 -> 5 in 9.8 ms (12345 bytes in 3 files written, ...": the
 * list store's part, logged by the controller's install callback before the line below. */
static void store_line(struct real_gate *g, const char *p)
{
	uint64_t from, to;
	double ms;
	if (sscanf(p, "version %" SCNu64 " -> %" SCNu64 " in %lf ms", &from, &to, &ms) == 3)
		g->store_pending_ms = ms;
}

/* "sync: installed delta v5 (233 bytes, 1 chunk) in 12.3 ms, 2.1 ms of it recording ...":
 * the whole update inside the controller. */
static void sync_line(struct real_gate *g, const char *p, int snapshot)
{
	uint64_t v;
	double ms, pos;
	const char *in = strstr(p, ") in ");
	if (sscanf(p, "v%" SCNu64, &v) != 1 || !in ||
	    sscanf(in, ") in %lf ms, %lf ms", &ms, &pos) != 2) {
		g->unparsed++; /* the bench would wait for a version it cannot read */
		return;
	}
	g->held = v;
	g->held_at = sim_now();
	g->last_ms = ms;
	g->last_position_ms = pos;
	g->last_store_ms = g->store_pending_ms;
	g->store_pending_ms = 0;
	g->snapshots += snapshot;
}

static void take_line(struct real_gate *g, const char *line)
{
	const char *p;
	if ((p = strstr(line, "list delta installed: ")))
		store_line(g, p + strlen("list delta installed: "));
	else if ((p = strstr(line, "list snapshot installed: ")))
		store_line(g, p + strlen("list snapshot installed: "));
	else if ((p = strstr(line, "sync: installed delta ")))
		sync_line(g, p + strlen("sync: installed delta "), 0);
	else if ((p = strstr(line, "sync: installed snapshot ")))
		sync_line(g, p + strlen("sync: installed snapshot "), 1);
	else if (strstr(line, "list delta refused: ") || strstr(line, "list snapshot refused: "))
		g->refused++;
}

int real_gate_poll(struct real_gate *g)
{
	FILE *f = fopen(g->log, "r");
	if (f && fseek(f, g->log_at, SEEK_SET) == 0) {
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
			g->log_at += (long)n;
			for (size_t i = 0; i < n; i++) {
				if (buf[i] != '\n') {
					if (g->partial_len + 1 < sizeof(g->partial))
						g->partial[g->partial_len++] = buf[i];
					continue;
				}
				g->partial[g->partial_len] = 0;
				take_line(g, g->partial);
				g->partial_len = 0;
			}
		}
	}
	if (f)
		fclose(f);
	if (g->pid > 0 && waitpid(g->pid, NULL, WNOHANG) == g->pid) {
		g->pid = 0;
		snprintf(g->why, sizeof(g->why), "exited");
	} else if (g->refused) {
		snprintf(g->why, sizeof(g->why), "refused an update");
	} else if (g->unparsed) {
		snprintf(g->why, sizeof(g->why), "logged an install the bench cannot read");
	}
	return g->why[0] ? -1 : 0;
}

uint64_t real_gate_written(const struct real_gate *g)
{
	char path[64], line[128];
	uint64_t n = UINT64_MAX;
	snprintf(path, sizeof(path), "/proc/%d/io", (int)g->pid);
	FILE *f = g->pid > 0 ? fopen(path, "r") : NULL;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "write_bytes: %" SCNu64, &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static int real_gate_end(struct real_gate *g)
{
	if (g->pid <= 0)
		return -1;
	kill(g->pid, SIGTERM);
	int status = 0;
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(g->pid, &status, WNOHANG);
		if (r == g->pid) {
			g->pid = 0;
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
		}
		if (r < 0 && errno != EINTR)
			break;
		usleep(10000);
	}
	kill(g->pid, SIGKILL);
	waitpid(g->pid, NULL, 0);
	g->pid = 0;
	return -1;
}

int real_gate_stop(struct real_gate *g)
{
	if (!g->started)
		return -1;
	int rc = real_gate_end(g);
	control_close(g);
	g->started = 0;
	/* its list store (a full list, tens of MiB) is not kept: the next run takes a
	 * snapshot; its log and configuration are, for reading after the run */
	char state[900], out[900];
	snprintf(state, sizeof(state), "%s/state", g->dir);
	snprintf(out, sizeof(out), "%s/rm.out", g->dir);
	char *rm[] = {"rm", "-rf", state, NULL};
	if (bench_run(rm, out) != 0)
		rc = -1;
	return rc;
}
