/*
 * The bench's control commands (docs/hil.md). Every answer is "ok[ text]" or
 * "error: <what was wrong>", then payload lines, then a line with a single ".".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "hil/relay.h"
#include "targets.h"

static void reply_error(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reply_error(int fd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(fd, "error: %s\n.\n", msg);
}

static void reply_ok(int fd, const char *text)
{
	dprintf(fd, text ? "ok %s\n.\n" : "ok\n.\n", text);
}

/* Split off the next space-separated word; *rest points after it (or at ""). */
static char *next_word(char **rest)
{
	char *s = *rest;
	while (*s == ' ')
		s++;
	if (!*s) {
		*rest = s;
		return NULL;
	}
	char *w = s;
	while (*s && *s != ' ')
		s++;
	if (*s)
		*s++ = '\0';
	*rest = s;
	return w;
}

/* A decimal count, 1 to 1 000 000. */
static int parse_count(const char *s, long *out)
{
	char *end;
	errno = 0;
	const long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 1000000)
		return -1;
	*out = v;
	return 0;
}

static int parse_hex(const char *s, uint8_t *out, size_t want)
{
	if (strlen(s) != 2 * want)
		return -1;
	for (size_t i = 0; i < want; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static long long parse_since(const char *w)
{
	if (!w)
		return 0;
	if (strncmp(w, "since=", 6) != 0)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(w + 6, &end, 10);
	return errno || *end || v < 0 ? -1 : v;
}

static void cmd_place(struct bench *b, int fd, char *rest)
{
	char *name = next_word(&rest), *kind = next_word(&rest);
	struct reader *r = name ? bench_find_reader(b, name) : NULL;
	if (!name || !kind) {
		reply_error(fd, "usage: place READER desfire|classic|uid-only|external ...");
		return;
	}
	if (!r) {
		reply_error(fd, "no reader named '%s'", name);
		return;
	}
	if (!r->chip) {
		reply_error(fd, "place: reader %s is unplugged (plug %s first)", name, name);
		return;
	}
	struct hil_target t;
	char desc[160];
	char *w;
	if (strcmp(kind, "desfire") == 0) {
		char *image = next_word(&rest);
		struct bench_desfire_opts o = {0};
		if (!image) {
			reply_error(fd, "place %s desfire: missing the card image path", name);
			return;
		}
		while ((w = next_word(&rest)) != NULL) {
			if (strncmp(w, "uid=", 4) == 0 && parse_hex(w + 4, o.uid, 7) == 0) {
				o.have_uid = 1;
			} else if (strcmp(w, "random-id") == 0) {
				o.random_id = 1;
			} else if (strcmp(w, "picc-aes") == 0) {
				o.picc_key_aes = 1;
			} else if (strncmp(w, "pull-after=", 11) == 0 &&
			           parse_count(w + 11, &o.pull_after) == 0) {
				continue;
			} else {
				reply_error(fd,
				            "place %s desfire: '%s' is not valid: expected "
				            "uid=<14 hex digits>, random-id, picc-aes or "
				            "pull-after=<exchanges, 1 or more>",
				            name, w);
				return;
			}
		}
		char err[200];
		if (bench_desfire_target(image, &o, &t, err, sizeof(err)) != 0) {
			reply_error(fd, "place %s desfire %s: %s", name, image, err);
			return;
		}
		snprintf(desc, sizeof(desc), "desfire %s%s%s", image,
		         o.random_id ? " random-id" : "", o.pull_after ? " pulled" : "");
	} else if (strcmp(kind, "classic") == 0 || strcmp(kind, "uid-only") == 0) {
		int classic = kind[0] == 'c';
		uint8_t uid[7] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
		size_t uid_len = classic ? 4 : 7;
		if (classic)
			memcpy(uid, "\x5a\x6b\x7c\x8d", 4);
		if ((w = next_word(&rest)) != NULL &&
		    (strncmp(w, "uid=", 4) != 0 || parse_hex(w + 4, uid, uid_len) != 0)) {
			reply_error(fd,
			            "place %s %s: '%s' is not valid: expected uid=<%zu hex digits>",
			            name, kind, w, 2 * uid_len);
			return;
		}
		if (bench_clone_target(classic, uid, &t) != 0) {
			reply_error(fd, "place %s %s: out of memory", name, kind);
			return;
		}
		snprintf(desc, sizeof(desc), "%s", kind);
	} else if (strcmp(kind, "external") == 0) {
		char *path = next_word(&rest);
		if (!path) {
			reply_error(fd, "place %s external: missing the peer's socket path", name);
			return;
		}
		int rc = hil_relay_target_connect(path, &t);
		if (rc != 0) {
			reply_error(fd, "place %s external %s: %s", name, path,
			            rc == -EPROTO ? "the peer did not identify itself"
			                          : strerror(-rc));
			return;
		}
		snprintf(desc, sizeof(desc), "external %s", path);
	} else {
		reply_error(fd,
		            "place %s: unknown target kind '%s': expected desfire, classic, "
		            "uid-only or external",
		            name, kind);
		return;
	}
	/* the arrival is logged before the chip sees the card: a pending InAutoPoll answers
	 * inside set_target, and bench_tap counts that answer's bytes from the arrival on */
	snprintf(r->target_desc, sizeof(r->target_desc), "%s", desc);
	bench_event(b, r->name, "placed %s", desc);
	hil_pn532_set_target(r->chip, &t);
	reply_ok(fd, NULL);
}

static void cmd_remove(struct bench *b, int fd, char *rest)
{
	char *name = next_word(&rest);
	struct reader *r = name ? bench_find_reader(b, name) : NULL;
	if (!r) {
		reply_error(fd, "remove: no reader named '%s'", name ? name : "");
		return;
	}
	if (r->chip) /* unplugged: the card went with the reader */
		hil_pn532_set_target(r->chip, NULL);
	bench_event(b, r->name, "removed %s", r->target_desc);
	snprintf(r->target_desc, sizeof(r->target_desc), "none");
	reply_ok(fd, NULL);
}

static void cmd_qr(struct bench *b, int fd, char *rest)
{
	char *name = next_word(&rest);
	struct reader *r = name ? bench_find_reader(b, name) : NULL;
	if (!r) {
		reply_error(fd, "qr: no reader named '%s'", name ? name : "");
		return;
	}
	while (*rest == ' ')
		rest++;
	if (!*rest) {
		reply_error(fd, "qr %s: missing the text the scanner reads", name);
		return;
	}
	if (r->qr_master < 0) {
		reply_error(fd, "qr %s: the scanner is unplugged (plug %s scanner first)", name,
		            name);
		return;
	}
	/* a scanner in keyboard-line mode: the code's text, then CR LF */
	size_t len = strlen(rest);
	char line[4100];
	if (len > sizeof(line) - 2) {
		reply_error(fd, "qr %s: a line of %zu characters: at most %zu", name, len,
		            sizeof(line) - 2);
		return;
	}
	memcpy(line, rest, len);
	memcpy(line + len, "\r\n", 2);
	/* the event first: it is when the scanner starts sending (the tap's start) */
	bench_event(b, r->name, "qr %zu chars", len);
	if (bench_qr_send(b, r, line, len + 2) != 0) {
		reply_error(fd, "qr %s: cannot write to the scanner line: %s", name,
		            strerror(errno));
		return;
	}
	reply_ok(fd, NULL);
}

/* unplug|plug READER [reader|scanner]: both devices when neither is named. */
static void cmd_plug(struct bench *b, int fd, char *rest, int plug)
{
	const char *verb = plug ? "plug" : "unplug";
	char *name = next_word(&rest), *which = next_word(&rest);
	struct reader *r = name ? bench_find_reader(b, name) : NULL;
	if (!r) {
		reply_error(fd, "%s: no reader named '%s'", verb, name ? name : "");
		return;
	}
	int reader = !which || strcmp(which, "reader") == 0;
	int scanner = !which || strcmp(which, "scanner") == 0;
	if ((!reader && !scanner) || next_word(&rest)) {
		reply_error(fd, "%s %s: expected 'reader', 'scanner' or nothing (both)", verb,
		            name);
		return;
	}
	int was_reader = r->master >= 0, was_scanner = r->qr_master >= 0;
	if (reader && was_reader != plug &&
	    (plug ? bench_plug_reader(b, r) : bench_unplug_reader(b, r)) != 0) {
		reply_error(fd, "%s %s reader: %s", verb, name, strerror(errno));
		return;
	}
	if (scanner && was_scanner != plug &&
	    (plug ? bench_plug_scanner(b, r) : bench_unplug_scanner(b, r)) != 0) {
		reply_error(fd, "%s %s scanner: %s", verb, name, strerror(errno));
		return;
	}
	if (reader && was_reader != plug)
		bench_event(b, r->name, "%s reader%s%s", plug ? "plugged" : "unplugged",
		            plug ? " tty=" : "", plug ? r->link : "");
	if (scanner && was_scanner != plug)
		bench_event(b, r->name, "%s scanner%s%s", plug ? "plugged" : "unplugged",
		            plug ? " qr=" : "", plug ? r->qr_link : "");
	reply_ok(fd, NULL);
}

/* fault READER none|garbage|silent: what the emulated chip sends the host. */
static void cmd_fault(struct bench *b, int fd, char *rest)
{
	char *name = next_word(&rest), *what = next_word(&rest);
	struct reader *r = name ? bench_find_reader(b, name) : NULL;
	if (!r) {
		reply_error(fd, "fault: no reader named '%s'", name ? name : "");
		return;
	}
	enum reader_fault f;
	if (what && strcmp(what, "none") == 0)
		f = FAULT_NONE;
	else if (what && strcmp(what, "garbage") == 0)
		f = FAULT_GARBAGE;
	else if (what && strcmp(what, "silent") == 0)
		f = FAULT_SILENT;
	else {
		reply_error(fd, "fault %s: '%s' is not valid: expected none, garbage or silent",
		            name, what ? what : "");
		return;
	}
	r->fault = f;
	bench_event(b, r->name, "fault %s", what);
	reply_ok(fd, NULL);
}

/* The controller's `bench` gate backend reports what it drives. */
static void cmd_gate(struct bench *b, int fd, char *rest)
{
	char *name = next_word(&rest);
	struct reader *r = name ? bench_find_reader(b, name) : NULL;
	if (!r) {
		reply_error(fd, "gate: no reader named '%s'", name ? name : "");
		return;
	}
	struct gate_state g = r->gate;
	char *w;
	while (*rest == ' ')
		rest++;
	while (*rest) {
		if (strncmp(rest, "display=", 8) == 0) { /* the rest of the line */
			snprintf(g.display, sizeof(g.display), "%s", rest + 8);
			break;
		}
		w = next_word(&rest);
		if (strcmp(w, "relay=open") == 0 || strcmp(w, "relay=closed") == 0) {
			snprintf(g.relay, sizeof(g.relay), "%s", w + 6);
		} else if (strncmp(w, "led=", 4) == 0 && strlen(w + 4) < sizeof(g.led) && w[4]) {
			snprintf(g.led, sizeof(g.led), "%s", w + 4);
		} else {
			reply_error(fd,
			            "gate %s: '%s' is not valid: expected relay=open|closed, "
			            "led=COLOUR or display=TEXT (last)",
			            name, w);
			return;
		}
		while (*rest == ' ')
			rest++;
	}
	r->gate = g;
	bench_event(b, r->name, "gate relay=%s led=%s display=%s", g.relay, g.led, g.display);
	reply_ok(fd, NULL);
}

/* Lines of the event log after `since`, optionally for one reader's gate outputs only. */
static void list_events(struct bench *b, int fd, long long since, const char *reader,
                        const char *prefix)
{
	dprintf(fd, "ok\n");
	for (size_t i = 0; i < b->ring_len; i++) {
		const char *line = b->ring[(b->ring_start + i) % b->ring_cap];
		long long t = strtoll(line, NULL, 10);
		if (t <= since)
			continue;
		if (reader) {
			const char *sp = strchr(line, ' ');
			size_t n = strlen(reader);
			if (!sp || strncmp(sp + 1, reader, n) != 0 || sp[1 + n] != ' ' ||
			    strncmp(sp + 2 + n, prefix, strlen(prefix)) != 0)
				continue;
		}
		dprintf(fd, "%s\n", line);
	}
	dprintf(fd, ".\n");
}

static void cmd_status(struct bench *b, int fd)
{
	dprintf(fd, "ok\n");
	static const char *const faults[] = {"none", "garbage", "silent"};
	for (size_t i = 0; i < b->n_readers; i++) {
		struct reader *r = &b->readers[i];
		struct hil_pn532_stats st;
		hil_pn532_get_stats(r->chip, &st);
		dprintf(fd,
		        "reader %s tty=%s qr=%s frames=%lu bad=%lu commands=%lu exchanges=%lu "
		        "relay=%s led=%s target=%s fault=%s\n",
		        r->name, r->master >= 0 ? r->link : "unplugged",
		        r->qr_master >= 0 ? r->qr_link : "unplugged", st.frames_in, st.frames_bad,
		        st.commands, st.exchanges, r->gate.relay, r->gate.led, r->target_desc,
		        faults[r->fault]);
	}
	dprintf(fd, ".\n");
}

void control_handle_line(struct bench *b, int fd, char *line)
{
	char *rest = line;
	char *cmd = next_word(&rest);
	if (!cmd) {
		reply_error(fd, "empty command");
	} else if (strcmp(cmd, "status") == 0) {
		cmd_status(b, fd);
	} else if (strcmp(cmd, "now") == 0) {
		dprintf(fd, "ok %lld\n.\n", bench_now_us());
	} else if (strcmp(cmd, "place") == 0) {
		cmd_place(b, fd, rest);
	} else if (strcmp(cmd, "remove") == 0) {
		cmd_remove(b, fd, rest);
	} else if (strcmp(cmd, "qr") == 0) {
		cmd_qr(b, fd, rest);
	} else if (strcmp(cmd, "gate") == 0) {
		cmd_gate(b, fd, rest);
	} else if (strcmp(cmd, "unplug") == 0 || strcmp(cmd, "plug") == 0) {
		cmd_plug(b, fd, rest, cmd[0] == 'p');
	} else if (strcmp(cmd, "fault") == 0) {
		cmd_fault(b, fd, rest);
	} else if (strcmp(cmd, "events") == 0 || strcmp(cmd, "outputs") == 0) {
		int outputs = cmd[0] == 'o';
		char *reader = outputs ? next_word(&rest) : NULL;
		long long since = parse_since(next_word(&rest));
		if (outputs && (!reader || !bench_find_reader(b, reader)))
			reply_error(fd, "outputs: no reader named '%s'", reader ? reader : "");
		else if (since < 0)
			reply_error(fd, "%s: expected since=<microseconds>", cmd);
		else
			list_events(b, fd, since, reader, "gate ");
	} else if (strcmp(cmd, "quit") == 0) {
		b->stop = 1;
		reply_ok(fd, NULL);
	} else {
		reply_error(fd, "unknown command '%s' (citypass-hil ctl --help lists them)", cmd);
	}
}
