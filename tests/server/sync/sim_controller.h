/*
 * sim_controller.h — a simulated gate controller for the sync server's tests and
 * benchmarks: mbedTLS client with a device certificate over a non-blocking socket (the
 * link's TLS, link/tls.h, as the server and the real gate use it), the framing of proto/frame.h,
 * and the state a real controller keeps (list version held, acknowledged sequences). Stepped by
 * poll(): one controller alone with sim_wait(), a thousand at once by the benchmark's own poll
 * loop.
 */
#ifndef TEST_SIM_CONTROLLER_H
#define TEST_SIM_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "citypass.pb-c.h"
#include "link/tls.h"

struct proto_frame_decoder;

struct sim_ctl {
	char id[64];
	uint16_t sector;
	uint32_t gate; /* the gate number its statistics carry (0: 1) */
	struct link_tls_ctx *tls;
	struct link_tls_session sess;
	/* the server's session ticket, offered at the next connection as a gate does (forget
	 * it with link_tls_ticket_free for a full handshake) */
	struct link_tls_ticket ticket;
	int resumed; /* the last handshake resumed a session from the ticket */
	int fd;
	int handshaken;
	int closed; /* the server closed, or an error: see why */
	char why[160];
	int want_write;
	struct proto_frame_decoder *dec;
	uint8_t *out;
	size_t out_len, out_cap;

	/* what the server told it */
	int welcomed;
	int64_t server_time;
	uint64_t held; /* list version of its sector */
	unsigned snapshots, deltas;
	unsigned published; /* ListPublished received */
	uint64_t last_published;
	uint64_t stats_acked, cons_acked;
	unsigned acks;
	unsigned errors;
	int last_error;
	char last_error_msg[160];
	unsigned bad_updates; /* content or chain check failed */
	double held_at;       /* monotonic seconds when `held` last changed */

	/* Checks a complete update (data assembled from its chunks) instead of the in-memory
	 * backend's byte pattern: 0 accepts it, anything else counts as a bad update. */
	int (*check_update)(struct sim_ctl *c, const Citypass__ListUpdate *last,
	                    const uint8_t *data, size_t len);
	void *check_arg;

	/* update being assembled */
	uint8_t *asm_buf;
	size_t asm_len, asm_cap;
	uint32_t asm_next;
};

double sim_now(void);

/* TLS material for a controller. server_name NULL skips the server name check. Returns 0
 * or -1. */
int sim_init(struct sim_ctl *c, const char *id, uint16_t sector, const char *ca, const char *cert,
             const char *key);
/* The same, the server certificate's CN checked against server_name (a bundle's
 * server-name); NULL: "localhost" as sim_init. */
int sim_init_named(struct sim_ctl *c, const char *id, uint16_t sector, const char *ca,
                   const char *cert, const char *key, const char *server_name);
void sim_free(struct sim_ctl *c);

/* Connect to 127.0.0.1:port (or take a connected socket) and start the handshake. */
int sim_connect(struct sim_ctl *c, unsigned port);
int sim_connect_fd(struct sim_ctl *c, int fd);
/* The same without waiting for TCP's handshake, as citypass-controller dials (a
 * non-blocking connect): when the server's accept queue is full the kernel retries the
 * SYN, and a blocking connect would hold every other simulated gate for a second or more.
 * A refused connection shows up at the next sim_step as closed. Returns 0 or -1. */
int sim_dial(struct sim_ctl *c, unsigned port);
/* Close the socket abruptly (no close_notify), keeping the controller's state. */
void sim_disconnect(struct sim_ctl *c);

/* Advance without blocking: handshake, write, read and handle frames. 0, or -1 once
 * closed. */
int sim_step(struct sim_ctl *c);
/* poll() events this controller waits for. */
short sim_poll_events(const struct sim_ctl *c);

/* Step until cond(c) holds (1), the timeout passes (0) or the connection closes (-1 when
 * cond still does not hold). */
int sim_wait(struct sim_ctl *c, int (*cond)(const struct sim_ctl *), int timeout_ms);
int sim_cond_handshaken(const struct sim_ctl *c);
int sim_cond_welcomed(const struct sim_ctl *c);
int sim_cond_closed(const struct sim_ctl *c);

/* Queue messages (sent by the next steps). */
int sim_send_frame(struct sim_ctl *c, const Citypass__Frame *f);
int sim_send_hello(struct sim_ctl *c, const char *device_id);
int sim_send_stats(struct sim_ctl *c, uint64_t first_seq, size_t count, uint32_t site,
                   uint16_t sector);
int sim_send_raw(struct sim_ctl *c, const uint8_t *bytes, size_t len);

/* Hello, then wait for Welcome and for the list to reach `version` (0: do not wait). */
int sim_session(struct sim_ctl *c, unsigned port, uint64_t version, int timeout_ms);

#endif
