/*
 * bench/real_gate.h — one real citypass-controller among a bench's gates (issue 12, item
 * 6: "the install time of a real citypass-controller"). The bench's other gates are
 * protocol clients; this one is the daemon a town runs, with its own device certificate,
 * state directory and journal, connected to the bench's server. What it did is read back
 * from its own log lines, as an operator would read them: the version it holds, when it
 * took it, and how long each update took inside it (the usage position's journal commit
 * and the list store's install, controller/src/sync_session.c on_update).
 */
#ifndef CITYPASS_BENCH_REAL_GATE_H
#define CITYPASS_BENCH_REAL_GATE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define REAL_GATE_NAME "gate-real"

struct real_gate {
	pid_t pid;
	/* its relay's side of the bench control socket (docs/hil.md): every `gate` line
	 * answered "ok", from a thread of the bench */
	int control_fd, stop_pipe[2];
	int serving, started;
	pthread_t control;
	char dir[800]; /* its configuration, bundle copy, state and log */
	char log[900];
	long log_at; /* how far the log has been read */
	char partial[1024];
	size_t partial_len;
	/* from its lines */
	uint64_t held;  /* the version it holds, 0 before its first install */
	double held_at; /* sim_now() when the line saying so was read */
	unsigned snapshots, refused;
	unsigned unparsed; /* "sync: installed" lines not as this file reads them */
	char why[64];      /* what went wrong, for the bench's message */
	double last_ms, last_position_ms, last_store_ms; /* the last update's */
	double store_pending_ms; /* the store's line comes first, then the session's */
};

/* Enrols REAL_GATE_NAME on the deployment's site once (kept with a cached deployment):
 * `citypass-admin device add`, its bundle in DIR/bundle-real. 0 or -1. */
int real_gate_enrol(const char *admin, const char *data, const char *dir, const char *site);

/* Starts the controller on a fresh state directory under DIR/real, its bundle pointed at
 * 127.0.0.1:PORT. It has no reader (pn532_uart:/dev/null: it retries with its backoff)
 * and decides nothing; it syncs. Its gate backend is the bench's (gate = bench): the
 * control socket it reports its relay to is served here. 0 or -1. */
int real_gate_start(struct real_gate *g, const char *controller, const char *dir, unsigned port);

/* Reads the lines the controller logged since the last call: 0, or -1 when the
 * controller has exited, refused an update, or logged an install this file cannot read
 * (g->why says which). */
int real_gate_poll(struct real_gate *g);

/* The bytes the controller's process has written to storage so far (/proc/PID/io
 * write_bytes: its store, its journal and its log alike), or UINT64_MAX. */
uint64_t real_gate_written(const struct real_gate *g);

/* SIGTERM, then its exit: 0 when it stopped cleanly within 10 s (killed otherwise); the
 * control socket closed. Safe on a gate never started, or whose start failed. */
int real_gate_stop(struct real_gate *g);

#endif
