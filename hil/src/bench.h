/*
 * bench.h — the citypass-hil daemon's pieces, shared between its source files.
 */
#ifndef HIL_BENCH_H
#define HIL_BENCH_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "hil/pn532.h"

#define BENCH_MAX_READERS 16
#define BENCH_NAME_MAX    32

/* Bytes for the host, held back until the modelled UART has sent them. */
struct out_chunk {
	long long due_us;
	size_t len;
	struct out_chunk *next;
	uint8_t data[];
};

struct gate_state {
	char relay[16];
	char led[16];
	char display[128];
};

/* What an emulated reader does with the host's frames (`fault` command). */
enum reader_fault {
	FAULT_NONE,
	FAULT_GARBAGE, /* every byte it sends is noise: a broken or wrong device on the line */
	FAULT_SILENT,  /* it answers nothing at all, not even an ACK: a chip that hung */
};

struct reader {
	char name[BENCH_NAME_MAX];
	int master;              /* our end of the reader's pty; -1 while unplugged */
	int slave;               /* kept open: libnfc's close must not hang up the line */
	char link[160];          /* RUNDIR/readers/NAME -> /dev/pts/N */
	int qr_master, qr_slave; /* -1 while the scanner is unplugged */
	char qr_link[160];
	struct out_chunk *qr_head, *qr_tail; /* scanner lines held back by the wire model */
	long long qr_line_free_us;
	enum reader_fault fault;
	uint32_t noise; /* FAULT_GARBAGE's generator state */
	struct hil_pn532 *chip;
	char target_desc[160];
	/* wire-time model */
	size_t in_pending;      /* host bytes read since the chip last answered */
	long long line_free_us; /* when the modelled UART is free to send again */
	unsigned long exchanges_seen;
	struct out_chunk *out_head, *out_tail;
	struct gate_state gate;
	char last_log[128]; /* the emulator's last log line, to fold repeats */
	unsigned long last_log_repeats;
};

/* A Unix socket path holds 108 bytes: RUNDIR/control.sock must fit. */
#define BENCH_RUN_DIR_MAX 92

struct bench {
	char run_dir[BENCH_RUN_DIR_MAX + 1];
	long baud;         /* 0: no wire-time model */
	long card_time_us; /* per card exchange, added to the wire time */
	struct reader readers[BENCH_MAX_READERS];
	size_t n_readers;
	int listen_fd;
	int stop;
	int log_fd; /* RUNDIR/events.log */
	/* the last lines of the event log, for `events` */
	char **ring;
	size_t ring_cap, ring_start, ring_len;
};

long long bench_now_us(void);
/* Append "<monotonic us> <reader or -> <text>" to the event log. */
void bench_event(struct bench *b, const char *reader, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

struct reader *bench_find_reader(struct bench *b, const char *name);

/* Take a reader's pty (and its chip, and the card on it) or its QR scanner's pty away, as
 * a USB device unplugged: the ends are closed, the link removed. Plug creates them anew (a
 * new pty, so a replaced device: whoever had the old one open must open the link again).
 * 0, or -1 with errno. */
int bench_unplug_reader(struct bench *b, struct reader *r);
int bench_plug_reader(struct bench *b, struct reader *r);
int bench_unplug_scanner(struct bench *b, struct reader *r);
int bench_plug_scanner(struct bench *b, struct reader *r);

/* The scanner reads a line: its bytes reach the QR pty as a UART at --baud would deliver
 * them (at once without --baud). 0, or -1 with errno. */
int bench_qr_send(struct bench *b, struct reader *r, const char *line, size_t len);

/* control.c: one command line in, the answer written to fd. */
void control_handle_line(struct bench *b, int fd, char *line);

#endif
