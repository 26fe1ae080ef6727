/*
 * controller/timekeeper.h — what time it is at a gate whose clock may be wrong (issue 10,
 * docs/controller.md "Clock").
 *
 * The gate's wall clock decides list expiry, QR windows, anti-passback, quarter hours and
 * retention; a clock behind kept a revoked pass's list alive, a clock ahead refused
 * everything for ever. Three sources are trusted, none of them the wall clock:
 *   - the server's time, stated in every Welcome (the session is authenticated), carried
 *     forward by the monotonic clock: while the gate has heard from the server since it
 *     started, that *is* the time, whatever the wall clock says;
 *   - signed times the real time cannot be before (the held list's issue time, the device
 *     certificate's start), and the last trusted time persisted in the journal, each
 *     carried forward by the monotonic clock: a floor.
 * now():   anchored → server time + elapsed; else max(wall clock, floor).
 * floor(): the trusted lower bound alone (never raised by the wall clock): what may
 *          delete unacknowledged data (retention) — a clock that jumps forward purges
 *          nothing.
 * Thread-safe (one mutex): the reader thread decides, the sync thread anchors and installs.
 */
#ifndef CONTROLLER_TIMEKEEPER_H
#define CONTROLLER_TIMEKEEPER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct controller_timekeeper;

/* A timekeeper whose floor starts at `floor` (Unix seconds; 0 none). NULL on no memory. */
struct controller_timekeeper *controller_timekeeper_new(int64_t floor);
void controller_timekeeper_free(struct controller_timekeeper *tk);

/* The server said it is `server_time` (a Welcome): anchors now() and raises the floor. */
void controller_timekeeper_server_time(struct controller_timekeeper *tk, int64_t server_time);
/* A signed time the real time is at least (a list's issue time): raises the floor. */
void controller_timekeeper_at_least(struct controller_timekeeper *tk, int64_t t);

/* The time decisions use (see above). */
int64_t controller_timekeeper_now(struct controller_timekeeper *tk);
/* The trusted lower bound. */
int64_t controller_timekeeper_floor(struct controller_timekeeper *tk);
/* Wall clock minus now(): the skew the gate's clock has (0 when not anchored and ahead). */
int64_t controller_timekeeper_skew(struct controller_timekeeper *tk);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_TIMEKEEPER_H */
