/*
 * sync_session_internal.h — the sync session's state, shared by its two files
 * (controller/sync_session.h):
 *   sync_session.c  the state machine: Hello, Welcome, frames from the server, the API
 *   sync_upload.c   the journal's two streams as batches, keepalives and health reports
 * Private to controller_core.
 */
#ifndef CONTROLLER_SYNC_SESSION_INTERNAL_H
#define CONTROLLER_SYNC_SESSION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "citypass.pb-c.h"
#include "controller/sync_session.h"

/* One batch stays well under the 1 MiB frame limit (a statistic encodes in ~40 bytes). */
#define SYNC_BATCH_CAP 8192u

enum { STREAM_STATS = 0, STREAM_CONSUMPTION = 1 };

struct sync_stream {
	uint64_t inflight_last; /* last seq of the batch in flight, 0 when none */
	int64_t inflight_epoch; /* its journal epoch */
};

struct sync_update {
	int active;
	uint32_t sector, kind, next_chunk, chunk_count;
	uint64_t base_version, version, total_size;
	uint8_t *buf;
	size_t len, cap;
};

struct controller_sync_session {
	struct controller_sync_session_config cfg;
	char *server, *device_id, *software_version;
	enum controller_sync_session_state state;
	char why[320];

	/* this connection's */
	struct proto_frame_decoder *dec;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	uint64_t frames_queued;
	struct sync_stream streams[2];
	struct sync_update upd;
	int healthy;              /* reached Welcome and nothing went wrong */
	uint32_t server_features; /* Welcome.features */

	/* across connections */
	int want_snapshot;       /* an update was refused: Hello claims no list next time */
	uint64_t published;      /* newest version the server announced */
	uint64_t hello_held;     /* the version the server believes this gate holds */
	double last_rx;          /* monotonic seconds of the last frame received */
	int health_due;          /* issue 13: report at the next chance */
	uint64_t health_backlog; /* the journal backlog in the last report */
	double health_sent;      /* monotonic seconds of the last report */
	struct controller_sync_status status;
};

/* Monotonic seconds. */
double sess_mono_now(void);
/* One line to the configured log ("sync: ..."). */
void sess_log(struct controller_sync_session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* End the session with a reason (the first one is kept). Returns -1. */
int sess_end(struct controller_sync_session *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* 1 in state READY. */
int sess_ready(const struct controller_sync_session *s);
/* Append one frame to the output: 0 or a negative controller/proto error. */
int sess_queue_frame(struct controller_sync_session *s, const Citypass__Frame *f);

/* Issue 13: fill the gate's health report (GateHealth) now; its caller owns `h`. */
void sess_fill_health(struct controller_sync_session *s, Citypass__GateHealth *h);
/* Send what the journal holds (one batch in flight per stream); with keepalive and nothing
 * to send, an empty statistics batch. 0, or -1 once the session ended. */
int sess_upload(struct controller_sync_session *s, int keepalive);

#endif /* CONTROLLER_SYNC_SESSION_INTERNAL_H */
