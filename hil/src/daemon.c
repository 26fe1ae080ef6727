/*
 * citypass-hil — the hardware-in-the-loop bench (DESIGN.md section 7).
 *
 *   citypass-hil run --run-dir DIR --reader NAME [--reader NAME…] [--baud N]
 *                    [--card-time-us N]
 *   citypass-hil ctl --run-dir DIR [--wait SECONDS] COMMAND…
 *
 * `run` creates one emulated PN532 per reader, each on its own pseudo-terminal linked at
 * DIR/readers/NAME (what libnfc's pn532_uart driver opens), a virtual QR scanner per reader
 * at DIR/qr/NAME (a line-oriented serial port), and a control socket DIR/control.sock. It
 * logs every event with a monotonic timestamp to DIR/events.log. `ctl` sends one command to
 * the control socket and prints the answer (docs/hil.md lists the commands).
 *
 * One thread, one poll() loop: libnfc needs nothing faster, and a single thread keeps the
 * event order in the log the order things happened.
 */
/* posix_openpt and friends (XSI), accept4 (Linux) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE   2
#define RING_LINES   8192
#define MAX_CLIENTS  16

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

long long bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_event(struct bench *b, const char *reader, const char *fmt, ...)
{
	char text[512], line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* one event, one line: a display text with a newline must not forge another event */
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	int n = snprintf(line, sizeof(line), "%lld %s %s", bench_now_us(), reader ? reader : "-",
	                 text);
	if (n < 0)
		return;
	if (b->log_fd >= 0) {
		line[sizeof(line) - 2] = '\0';
		size_t len = strlen(line);
		line[len] = '\n';
		(void)!write(b->log_fd, line, len + 1);
		line[len] = '\0';
	}
	char *copy = strdup(line);
	if (!copy)
		return;
	if (b->ring_len == b->ring_cap) {
		free(b->ring[b->ring_start]);
		b->ring[b->ring_start] = copy;
		b->ring_start = (b->ring_start + 1) % b->ring_cap;
	} else {
		b->ring[(b->ring_start + b->ring_len++) % b->ring_cap] = copy;
	}
}

struct reader *bench_find_reader(struct bench *b, const char *name)
{
	for (size_t i = 0; i < b->n_readers; i++)
		if (strcmp(b->readers[i].name, name) == 0)
			return &b->readers[i];
	return NULL;
}

/* --- wire-time model and output ---------------------------------------------------- */

/* Microseconds a UART at `baud` needs for n bytes (start + 8 data + stop bits). */
static long long wire_us(const struct bench *b, size_t n)
{
	return b->baud > 0 ? (long long)n * 10 * 1000000 / b->baud : 0;
}

static struct bench *the_bench;

/* Called by the emulator, from within hil_pn532_feed(). */
static void reader_write(void *ctx, const uint8_t *data, size_t len)
{
	struct reader *r = ctx;
	struct bench *b = the_bench;
	long long now = bench_now_us();
	uint8_t noise[1024];
	if (r->fault == FAULT_SILENT || r->master < 0)
		return;
	if (r->fault == FAULT_GARBAGE) {
		/* as many bytes of noise as the chip meant to send (xorshift32): never the
		 * 00 00 FF of a frame start for long, so the host reads nothing it can use */
		if (len > sizeof(noise))
			len = sizeof(noise);
		for (size_t i = 0; i < len; i++) {
			r->noise ^= r->noise << 13;
			r->noise ^= r->noise >> 17;
			r->noise ^= r->noise << 5;
			noise[i] = (uint8_t)(r->noise | 0x01); /* never 00 */
		}
		data = noise;
	}
	/* The chip could only start once the host's bytes had crossed the line, and the
	 * answer to an exchange waits for the card as well. */
	long long start = now + wire_us(b, r->in_pending);
	r->in_pending = 0;
	struct hil_pn532_stats st;
	hil_pn532_get_stats(r->chip, &st);
	if (st.exchanges != r->exchanges_seen) {
		r->exchanges_seen = st.exchanges;
		start += b->card_time_us;
	}
	if (start < r->line_free_us)
		start = r->line_free_us;
	long long due = start + wire_us(b, len);
	r->line_free_us = due;

	struct out_chunk *c = malloc(sizeof(*c) + len);
	if (!c) {
		bench_event(b, r->name, "error out of memory, reply dropped");
		return;
	}
	c->due_us = due;
	c->len = len;
	c->next = NULL;
	memcpy(c->data, data, len);
	if (r->out_tail)
		r->out_tail->next = c;
	else
		r->out_head = c;
	r->out_tail = c;
}

/* A polling client repeats one command thousands of times a second (nfc-poll's presence
 * check): the log keeps the first and says how often it repeated. */
static long long reader_now_ms(void *ctx)
{
	(void)ctx;
	return bench_now_us() / 1000;
}

static void reader_log(void *ctx, const char *line)
{
	struct reader *r = ctx;
	if (strcmp(line, r->last_log) == 0) {
		r->last_log_repeats++;
		return;
	}
	if (r->last_log_repeats)
		bench_event(the_bench, r->name, "pn532 (last command repeated %lu times)",
		            r->last_log_repeats);
	r->last_log_repeats = 0;
	snprintf(r->last_log, sizeof(r->last_log), "%s", line);
	bench_event(the_bench, r->name, "pn532 %s", line);
}

/* Send whatever is due; returns the time of the next chunk, or -1. */
static long long reader_flush(struct reader *r)
{
	long long now = bench_now_us();
	if (r->master < 0)
		return -1;
	while (r->out_head && r->out_head->due_us <= now) {
		struct out_chunk *c = r->out_head;
		size_t off = 0;
		while (off < c->len) {
			ssize_t w = write(r->master, c->data + off, c->len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break; /* the pty buffer is 4 KiB; libnfc always drains it */
			off += (size_t)w;
		}
		r->out_head = c->next;
		if (!r->out_head)
			r->out_tail = NULL;
		free(c);
	}
	return r->out_head ? r->out_head->due_us : -1;
}

int bench_qr_send(struct bench *b, struct reader *r, const char *line, size_t len)
{
	if (r->qr_master < 0) {
		errno = ENODEV;
		return -1;
	}
	if (b->baud <= 0) {
		ssize_t w = write(r->qr_master, line, len);
		return w == (ssize_t)len ? 0 : -1;
	}
	/* The controller acts on a line once its last byte is in: the line goes whole, when
	 * that byte would have crossed the wire. */
	struct out_chunk *c = malloc(sizeof(*c) + len);
	if (!c)
		return -1;
	long long start = bench_now_us();
	if (start < r->qr_line_free_us)
		start = r->qr_line_free_us;
	c->due_us = start + wire_us(b, len);
	r->qr_line_free_us = c->due_us;
	c->len = len;
	c->next = NULL;
	memcpy(c->data, line, len);
	if (r->qr_tail)
		r->qr_tail->next = c;
	else
		r->qr_head = c;
	r->qr_tail = c;
	return 0;
}

/* Send the scanner lines that are due; returns the time of the next one, or -1. */
static long long qr_flush(struct reader *r)
{
	long long now = bench_now_us();
	while (r->qr_head && r->qr_head->due_us <= now) {
		struct out_chunk *c = r->qr_head;
		if (r->qr_master >= 0 && write(r->qr_master, c->data, c->len) != (ssize_t)c->len)
			bench_event(the_bench, r->name, "error scanner line not written: %s",
			            strerror(errno));
		r->qr_head = c->next;
		if (!r->qr_head)
			r->qr_tail = NULL;
		free(c);
	}
	return r->qr_head ? r->qr_head->due_us : -1;
}

/* --- pseudo-terminals -------------------------------------------------------------- */

/*
 * HIL-NOTES.md: raw mode, and our own handle on the slave kept open — otherwise each
 * close() by libnfc hangs up the line and the next open reads EIO.
 */
static int open_pty(int *master, int *slave, const char *link)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
		if (m >= 0)
			close(m);
		return -1;
	}
	const char *name = ptsname(m);
	int s = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
	struct termios t;
	if (s < 0 || tcgetattr(s, &t) != 0) {
		close(m);
		if (s >= 0)
			close(s);
		return -1;
	}
	cfmakeraw(&t);
	cfsetspeed(&t, B115200);
	tcsetattr(s, TCSANOW, &t);
	if (tcgetattr(m, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(m, TCSANOW, &t);
	}
	unlink(link);
	if (symlink(name, link) != 0) {
		close(m);
		close(s);
		return -1;
	}
	fcntl(m, F_SETFL, fcntl(m, F_GETFL) | O_NONBLOCK);
	*master = m;
	*slave = s;
	return 0;
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

static int valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= BENCH_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!(*s == '-' || *s == '_' || (*s >= '0' && *s <= '9') ||
		      (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

static int new_chip(struct reader *r)
{
	struct hil_pn532_io io = {
	        .write = reader_write, .log = reader_log, .now_ms = reader_now_ms, .ctx = r};
	r->chip = hil_pn532_new(&io);
	r->in_pending = 0;
	r->line_free_us = 0;
	r->exchanges_seen = 0;
	r->last_log[0] = '\0';
	r->last_log_repeats = 0;
	return r->chip ? 0 : -1;
}

static void drop_output(struct reader *r)
{
	while (r->out_head) {
		struct out_chunk *c = r->out_head;
		r->out_head = c->next;
		free(c);
	}
	r->out_tail = NULL;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int bench_unplug_reader(struct bench *b, struct reader *r)
{
	(void)b;
	if (r->master < 0) {
		errno = EALREADY;
		return -1;
	}
	hil_pn532_free(r->chip); /* the card in its field goes with it */
	r->chip = NULL;
	drop_output(r);
	close_fd(&r->master);
	close_fd(&r->slave);
	unlink(r->link);
	snprintf(r->target_desc, sizeof(r->target_desc), "none");
	return 0;
}

int bench_plug_reader(struct bench *b, struct reader *r)
{
	(void)b;
	if (r->master >= 0) {
		errno = EALREADY;
		return -1;
	}
	if (open_pty(&r->master, &r->slave, r->link) != 0)
		return -1;
	if (new_chip(r) != 0) {
		close_fd(&r->master);
		close_fd(&r->slave);
		unlink(r->link);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int bench_unplug_scanner(struct bench *b, struct reader *r)
{
	(void)b;
	if (r->qr_master < 0) {
		errno = EALREADY;
		return -1;
	}
	close_fd(&r->qr_master);
	close_fd(&r->qr_slave);
	unlink(r->qr_link);
	while (r->qr_head) {
		struct out_chunk *c = r->qr_head;
		r->qr_head = c->next;
		free(c);
	}
	r->qr_tail = NULL;
	return 0;
}

int bench_plug_scanner(struct bench *b, struct reader *r)
{
	(void)b;
	if (r->qr_master >= 0) {
		errno = EALREADY;
		return -1;
	}
	return open_pty(&r->qr_master, &r->qr_slave, r->qr_link);
}

static int reader_create(struct bench *b, const char *name)
{
	struct reader *r = &b->readers[b->n_readers];
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	/* both fit: run_dir and name are bounded (BENCH_RUN_DIR_MAX, BENCH_NAME_MAX) */
	char link[sizeof(r->link)], qr_link[sizeof(r->qr_link)];
	snprintf(link, sizeof(link), "%s/readers/%s", b->run_dir, name);
	snprintf(qr_link, sizeof(qr_link), "%s/qr/%s", b->run_dir, name);
	memcpy(r->link, link, sizeof(link));
	memcpy(r->qr_link, qr_link, sizeof(qr_link));
	r->master = r->slave = r->qr_master = r->qr_slave = -1;
	r->noise = 0x2545F491u;
	if (open_pty(&r->master, &r->slave, r->link) != 0) {
		fprintf(stderr, "citypass-hil: cannot create the pty for reader %s: %s\n", name,
		        strerror(errno));
		return -1;
	}
	if (open_pty(&r->qr_master, &r->qr_slave, r->qr_link) != 0) {
		fprintf(stderr, "citypass-hil: cannot create the QR scanner pty for %s: %s\n", name,
		        strerror(errno));
		return -1;
	}
	if (new_chip(r) != 0) {
		fprintf(stderr, "citypass-hil: out of memory\n");
		return -1;
	}
	snprintf(r->target_desc, sizeof(r->target_desc), "none");
	snprintf(r->gate.relay, sizeof(r->gate.relay), "closed");
	snprintf(r->gate.led, sizeof(r->gate.led), "off");
	b->n_readers++;
	bench_event(b, name, "reader ready tty=%s qr=%s", r->link, r->qr_link);
	return 0;
}

static void reader_destroy(struct reader *r)
{
	hil_pn532_free(r->chip);
	drop_output(r);
	while (r->qr_head) {
		struct out_chunk *c = r->qr_head;
		r->qr_head = c->next;
		free(c);
	}
	close_fd(&r->master);
	close_fd(&r->slave);
	close_fd(&r->qr_master);
	close_fd(&r->qr_slave);
	unlink(r->link);
	unlink(r->qr_link);
}

/* --- control socket ----------------------------------------------------------------- */

struct client {
	int fd;
	char buf[4096];
	size_t len;
};

static int listen_control(struct bench *b)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", b->run_dir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		fprintf(stderr, "citypass-hil: run directory path too long for a socket: %s\n",
		        b->run_dir);
		return -1;
	}
	unlink(sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0) {
		fprintf(stderr, "citypass-hil: cannot listen on %s: %s\n", sa.sun_path,
		        strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Handle complete lines; returns -1 when the client must be dropped. */
static int client_input(struct bench *b, struct client *c)
{
	ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	char *start = c->buf, *nl;
	while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->buf))) != NULL) {
		*nl = '\0';
		if (nl > start && nl[-1] == '\r')
			nl[-1] = '\0';
		control_handle_line(b, c->fd, start);
		start = nl + 1;
	}
	c->len -= (size_t)(start - c->buf);
	memmove(c->buf, start, c->len);
	if (c->len == sizeof(c->buf) - 1) {
		dprintf(c->fd, "error: command line longer than %zu bytes\n.\n",
		        sizeof(c->buf) - 2);
		return -1;
	}
	return 0;
}

/* --- run ---------------------------------------------------------------------------- */

static int parse_long(const char *s, const char *what, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr,
		        "citypass-hil: %s '%s' is not valid: expected a number from %ld to %ld\n",
		        what, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

static const char run_usage[] =
        "usage: citypass-hil run --run-dir DIR --reader NAME [--reader NAME...]\n"
        "                        [--baud N] [--card-time-us N]\n"
        "  --run-dir DIR       where readers/NAME, qr/NAME, control.sock and events.log go\n"
        "  --reader NAME       an emulated PN532 (letters, digits, - and _), up to 16\n"
        "  --baud N            model a UART at N baud: every byte is delayed as on the wire\n"
        "  --card-time-us N    model the card's processing time for each exchange\n";

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"run-dir", required_argument, NULL, 'd'},
	        {"reader", required_argument, NULL, 'r'},
	        {"baud", required_argument, NULL, 'b'},
	        {"card-time-us", required_argument, NULL, 'c'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	static struct bench bench;
	struct bench *b = &bench;
	const char *names[BENCH_MAX_READERS];
	size_t n_names = 0;
	int c;
	b->log_fd = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (strlen(optarg) > BENCH_RUN_DIR_MAX || optarg[0] == '\0') {
				fprintf(stderr,
				        "citypass-hil: --run-dir '%s' is not valid: expected "
				        "a path of 1 to %d characters (the control socket's "
				        "path must fit a Unix socket address)\n",
				        optarg, BENCH_RUN_DIR_MAX);
				return EXIT_USAGE;
			}
			snprintf(b->run_dir, sizeof(b->run_dir), "%s", optarg);
			break;
		case 'r':
			if (!valid_name(optarg)) {
				fprintf(stderr,
				        "citypass-hil: reader name '%s' is not valid: expected "
				        "1-31 letters, digits, '-' or '_'\n",
				        optarg);
				return EXIT_USAGE;
			}
			if (n_names == BENCH_MAX_READERS) {
				fprintf(stderr, "citypass-hil: at most %d readers\n",
				        BENCH_MAX_READERS);
				return EXIT_USAGE;
			}
			names[n_names++] = optarg;
			break;
		case 'b':
			if (parse_long(optarg, "--baud", 300, 4000000, &b->baud))
				return EXIT_USAGE;
			break;
		case 'c':
			if (parse_long(optarg, "--card-time-us", 0, 10000000, &b->card_time_us))
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			fputs(run_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!b->run_dir[0] || n_names == 0 || optind != argc) {
		fputs(run_usage, stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < n_names; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0) {
				fprintf(stderr, "citypass-hil: reader '%s' named twice\n",
				        names[i]);
				return EXIT_USAGE;
			}

	/* a local copy: gcc cannot bound a string inside the static bench, and warns */
	char dir[BENCH_RUN_DIR_MAX + 1];
	memcpy(dir, b->run_dir, sizeof(dir));
	char path[BENCH_RUN_DIR_MAX + 32];
	snprintf(path, sizeof(path), "%s/readers", dir);
	if (make_dir(dir) || make_dir(path)) {
		fprintf(stderr, "citypass-hil: cannot create %s: %s\n", path, strerror(errno));
		return EXIT_REFUSED;
	}
	snprintf(path, sizeof(path), "%s/qr", dir);
	make_dir(path);
	snprintf(path, sizeof(path), "%s/events.log", dir);
	b->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (b->log_fd < 0) {
		fprintf(stderr, "citypass-hil: cannot open %s: %s\n", path, strerror(errno));
		return EXIT_REFUSED;
	}
	b->ring_cap = RING_LINES;
	b->ring = calloc(b->ring_cap, sizeof(*b->ring));
	if (!b->ring)
		return EXIT_REFUSED;
	the_bench = b;

	/* the wire model's deadlines are microseconds apart: no timer slack on them */
	if (b->baud > 0)
		(void)prctl(PR_SET_TIMERSLACK, 1UL);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = 0;
	for (size_t i = 0; i < n_names && rc == 0; i++)
		rc = reader_create(b, names[i]);
	if (rc == 0 && (b->listen_fd = listen_control(b)) < 0)
		rc = -1;
	if (rc != 0) {
		for (size_t i = 0; i < b->n_readers; i++)
			reader_destroy(&b->readers[i]);
		return EXIT_REFUSED;
	}
	bench_event(b, NULL, "bench started readers=%zu baud=%ld card_time_us=%ld pid=%ld",
	            b->n_readers, b->baud, b->card_time_us, (long)getpid());

	struct client clients[MAX_CLIENTS];
	size_t n_clients = 0;
	while (!b->stop && !got_signal) {
		struct pollfd pfd[1 + BENCH_MAX_READERS + MAX_CLIENTS];
		size_t n = 0;
		long long next_due = -1;
		pfd[n++] = (struct pollfd){.fd = b->listen_fd, .events = POLLIN};
		for (size_t i = 0; i < b->n_readers; i++) {
			long long qr_due = qr_flush(&b->readers[i]);
			if (qr_due >= 0 && (next_due < 0 || qr_due < next_due))
				next_due = qr_due;
			if (b->readers[i].master < 0) { /* unplugged: keep the slot, poll nothing */
				pfd[n++] = (struct pollfd){.fd = -1};
				continue;
			}
			long long poll_ms = hil_pn532_tick(b->readers[i].chip);
			if (poll_ms >= 0) {
				long long at = bench_now_us() + poll_ms * 1000;
				if (next_due < 0 || at < next_due)
					next_due = at;
			}
			long long due = reader_flush(&b->readers[i]);
			if (due >= 0 && (next_due < 0 || due < next_due))
				next_due = due;
			pfd[n++] = (struct pollfd){.fd = b->readers[i].master, .events = POLLIN};
		}
		for (size_t i = 0; i < n_clients; i++)
			pfd[n++] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
		/* To the microsecond: poll()'s milliseconds put up to 1 ms of the bench's own
		 * making on every chunk a modelled UART sends (a tap is some twenty of them), and
		 * the tap benchmark would charge it to the controller. */
		struct timespec ts, *timeout = NULL;
		if (next_due >= 0) {
			long long wait = next_due - bench_now_us();
			if (wait < 0)
				wait = 0;
			ts.tv_sec = (time_t)(wait / 1000000);
			ts.tv_nsec = (long)(wait % 1000000) * 1000;
			timeout = &ts;
		}
		int pr = ppoll(pfd, n, timeout, NULL);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		size_t k = 1;
		for (size_t i = 0; i < b->n_readers; i++, k++) {
			struct reader *r = &b->readers[i];
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			uint8_t buf[1024];
			if (r->master < 0) /* unplugged by a control command of this round */
				continue;
			ssize_t got = read(r->master, buf, sizeof(buf));
			/* EIO: nobody has the slave open but us; POLLHUP then repeats until a
			 * host opens it, so back off briefly */
			if (got <= 0) {
				if (got < 0 && errno == EIO)
					usleep(1000);
				continue;
			}
			if (r->fault == FAULT_SILENT)
				continue; /* a hung chip: the host's bytes go nowhere */
			r->in_pending += (size_t)got;
			hil_pn532_feed(r->chip, buf, (size_t)got);
		}
		for (size_t i = 0; i < n_clients; i++, k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (client_input(b, &clients[i]) != 0) {
				close(clients[i].fd);
				clients[i] = clients[--n_clients];
				/* the poll slots no longer match the clients: next round */
				break;
			}
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0 && n_clients == MAX_CLIENTS) {
				dprintf(fd, "error: too many control clients\n.\n");
				close(fd);
			} else if (fd >= 0) {
				clients[n_clients++] = (struct client){.fd = fd};
			}
		}
	}
	bench_event(b, NULL, "bench stopping%s", got_signal ? " on signal" : "");
	for (size_t i = 0; i < n_clients; i++)
		close(clients[i].fd);
	for (size_t i = 0; i < b->n_readers; i++)
		reader_destroy(&b->readers[i]);
	close(b->listen_fd);
	snprintf(path, sizeof(path), "%s/control.sock", dir);
	unlink(path);
	for (size_t i = 0; i < b->ring_len; i++)
		free(b->ring[(b->ring_start + i) % b->ring_cap]);
	free(b->ring);
	close(b->log_fd);
	return 0;
}

/* --- ctl ---------------------------------------------------------------------------- */

static const char ctl_usage[] =
        "usage: citypass-hil ctl --run-dir DIR [--wait SECONDS] [--within SECONDS] COMMAND "
        "[ARG...]\n"
        "Sends one command to a running bench and prints its answer; exit 0 if it succeeded,\n"
        "1 if the bench refused it, 2 on bad usage or when no bench answers.\n"
        "Commands (docs/hil.md):\n"
        "  status | now | events [since=US] | outputs READER [since=US]\n"
        "  place READER desfire IMAGE [uid=HEX14] [random-id] [picc-aes]\n"
        "  place READER classic [uid=HEX8] | place READER uid-only [uid=HEX14]\n"
        "  place READER external SOCKET | remove READER\n"
        "  qr READER TEXT | gate READER [relay=open|closed] [led=COLOUR] [display=TEXT]\n"
        "  unplug READER [reader|scanner] | plug READER [reader|scanner]\n"
        "  fault READER none|garbage|silent\n"
        "  quit\n"
        "  tap READER WHAT... | scan READER TEXT  (place WHAT, or scan TEXT, then wait here\n"
        "      for the gate's decision after it and print its gate line; --within SECONDS,\n"
        "      15 by default)\n";

static int connect_control(const char *run_dir, double wait_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", run_dir);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -1;
	long long deadline = bench_now_us() + (long long)(wait_s * 1e6);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		if (bench_now_us() >= deadline)
			return -1;
		usleep(20000);
	}
}

/* The command line sent to the bench: verb (when not NULL) and the words, one space
 * apart, then a newline; its length, or -1 (said on stderr) when it does not fit or a word
 * holds a newline. */
static int ctl_line(char *line, size_t cap, const char *verb, char **argv, int argc)
{
	size_t len = 0;
	const int from = verb ? -1 : 0;
	for (int i = from; i < argc; i++) {
		const char *w = i < 0 ? verb : argv[i];
		int n = snprintf(line + len, cap - len, "%s%s", i > from ? " " : "", w);
		if (n < 0 || (size_t)n >= cap - len - 1 || strchr(w, '\n')) {
			fprintf(stderr, "citypass-hil: command too long or contains a newline\n");
			return -1;
		}
		len += (size_t)n;
	}
	line[len++] = '\n';
	line[len] = '\0';
	return (int)len;
}

/* One request on a connection of its own; its answer's payload lines into out (NUL
 * terminated, cut at cap). Returns 0 (ok), EXIT_REFUSED (the first line in out) or
 * EXIT_USAGE (no bench). */
static int ctl_request(const char *run_dir, double wait_s, const char *line, char *out, size_t cap)
{
	out[0] = '\0';
	int fd = connect_control(run_dir, wait_s);
	if (fd < 0) {
		snprintf(out, cap, "no bench answers at %s/control.sock: %s", run_dir,
		         strerror(errno));
		return EXIT_USAGE;
	}
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len) {
		snprintf(out, cap, "cannot send to the bench: %s", strerror(errno));
		close(fd);
		return EXIT_USAGE;
	}
	FILE *in = fdopen(fd, "r");
	char ans[4096];
	size_t used = 0;
	int first = 1, status = EXIT_USAGE;
	while (in && fgets(ans, sizeof(ans), in)) {
		if (strcmp(ans, ".\n") == 0)
			break;
		const char *text = ans;
		if (first) {
			first = 0;
			status = strncmp(ans, "ok", 2) == 0 ? 0 : EXIT_REFUSED;
			if (status == 0)
				text = ans[2] == ' ' ? ans + 3 : ans + 2;
		}
		int n = snprintf(out + used, cap - used, "%s", text);
		if (n > 0)
			used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
	}
	if (in)
		fclose(in);
	else
		close(fd);
	if (first)
		snprintf(out, cap, "the bench closed the connection without answering");
	return status;
}

/*
 * ctl tap READER WHAT... / ctl scan READER TEXT: the placement (or the scan) and the wait
 * for the gate's decision in one process, which sleeps while the controller works. The
 * shell's loop around `place` used to fork date, sleep and another ctl in the middle of
 * the tap: on a 2-core machine that took the CPU the controller and the emulated chip
 * needed, and bench_tap charged it to the controller. The first look is after 100 ms (a
 * tap at 115 200 baud takes 30-80), then every 20 ms: one short request each.
 */
static int ctl_tap(const char *run_dir, double wait_s, long within_s, const char *verb, char **argv,
                   int argc)
{
	char line[4096], ans[16384];
	if (ctl_line(line, sizeof(line), strcmp(verb, "scan") == 0 ? "qr" : "place", argv, argc) <
	    0)
		return EXIT_USAGE;
	const long long since = bench_now_us();
	int rc = ctl_request(run_dir, wait_s, line, ans, sizeof(ans));
	if (rc != 0) {
		fprintf(stderr, "citypass-hil: %s", ans);
		return rc;
	}
	char query[256];
	int n = snprintf(query, sizeof(query), "outputs %s since=%lld\n", argv[0], since);
	if (n < 0 || (size_t)n >= sizeof(query)) {
		fprintf(stderr, "citypass-hil: reader name too long\n");
		return EXIT_USAGE;
	}
	const long long deadline = since + within_s * 1000000LL;
	long long pause_us = 100000;
	for (;;) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = pause_us * 1000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		pause_us = 20000;
		rc = ctl_request(run_dir, wait_s, query, ans, sizeof(ans));
		if (rc != 0) {
			fprintf(stderr, "citypass-hil: %s", ans);
			return rc;
		}
		/* the first decision: a gate line lighting the LED green, red or amber */
		for (char *l = ans, *e; *l; l = e + 1) {
			e = strchr(l, '\n');
			if (!e)
				break;
			*e = '\0';
			if (strstr(l, " led=green") || strstr(l, " led=red") ||
			    strstr(l, " led=amber")) {
				printf("%s\n", l);
				return 0;
			}
		}
		if (bench_now_us() >= deadline) {
			fprintf(stderr, "citypass-hil: no gate decision at %s within %ld s\n",
			        argv[0], within_s);
			return EXIT_REFUSED;
		}
	}
}

static int cmd_ctl(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"run-dir", required_argument, NULL, 'd'},
	        {"wait", required_argument, NULL, 'w'},
	        {"within", required_argument, NULL, 'i'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *run_dir = getenv("CITYPASS_HIL_DIR");
	long wait_s = 0, within_s = 15;
	int c;
	optind = 1;
	/* '+': stop at the first non-option, so a display text may start with '-' */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			run_dir = optarg;
			break;
		case 'w':
			if (parse_long(optarg, "--wait", 0, 600, &wait_s))
				return EXIT_USAGE;
			break;
		case 'i':
			if (parse_long(optarg, "--within", 1, 600, &within_s))
				return EXIT_USAGE;
			break;
		case 'h':
			fputs(ctl_usage, stdout);
			return 0;
		default:
			fputs(ctl_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!run_dir || optind >= argc) {
		fputs(ctl_usage, stderr);
		return EXIT_USAGE;
	}
	if ((strcmp(argv[optind], "tap") == 0 || strcmp(argv[optind], "scan") == 0)) {
		if (argc - optind < 3) {
			fputs(ctl_usage, stderr);
			return EXIT_USAGE;
		}
		return ctl_tap(run_dir, (double)wait_s, within_s, argv[optind], argv + optind + 1,
		               argc - optind - 1);
	}
	char line[4096];
	const int n = ctl_line(line, sizeof(line), NULL, argv + optind, argc - optind);
	if (n < 0)
		return EXIT_USAGE;
	const size_t len = (size_t)n;
	int fd = connect_control(run_dir, (double)wait_s);
	if (fd < 0) {
		fprintf(stderr, "citypass-hil: no bench answers at %s/control.sock: %s\n", run_dir,
		        strerror(errno));
		return EXIT_USAGE;
	}
	if (write(fd, line, len) != (ssize_t)len) {
		fprintf(stderr, "citypass-hil: cannot send to the bench: %s\n", strerror(errno));
		close(fd);
		return EXIT_USAGE;
	}
	/* The answer: lines, then a line holding a single '.'. The first line starts with
	 * "ok" or "error:". */
	FILE *in = fdopen(fd, "r");
	char ans[4096];
	int first = 1, status = EXIT_USAGE;
	while (in && fgets(ans, sizeof(ans), in)) {
		if (strcmp(ans, ".\n") == 0)
			break;
		if (first) {
			first = 0;
			if (strncmp(ans, "ok", 2) == 0) {
				status = 0;
				if (ans[2] == '\n')
					continue;
				fputs(ans[2] == ' ' ? ans + 3 : ans, stdout);
				continue;
			}
			status = EXIT_REFUSED;
			fputs(ans, stderr);
			continue;
		}
		fputs(ans, status == 0 ? stdout : stderr);
	}
	if (in)
		fclose(in);
	else
		close(fd);
	if (first)
		fprintf(stderr,
		        "citypass-hil: the bench closed the connection without answering\n");
	return status;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
		return cmd_ctl(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(run_usage, stdout);
		fputs(ctl_usage, stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		puts("citypass-hil 0.1.0");
		return 0;
	}
	fprintf(stderr, "usage: citypass-hil run|ctl ... (citypass-hil --help)\n");
	return EXIT_USAGE;
}
