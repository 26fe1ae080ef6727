/*
 * controller/src/timekeeper.c — see controller/timekeeper.h.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "controller/timekeeper.h"

struct controller_timekeeper {
	pthread_mutex_t lock;
	/* trusted lower bound `floor` at monotonic second `floor_mono` */
	int64_t floor, floor_mono;
	/* the server's time `server` at monotonic second `server_mono` */
	bool anchored;
	int64_t server, server_mono;
};

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

struct controller_timekeeper *controller_timekeeper_new(int64_t floor)
{
	struct controller_timekeeper *tk = calloc(1, sizeof(*tk));
	if (!tk)
		return NULL;
	pthread_mutex_init(&tk->lock, NULL);
	tk->floor = floor;
	tk->floor_mono = mono_s();
	return tk;
}

void controller_timekeeper_free(struct controller_timekeeper *tk)
{
	if (!tk)
		return;
	pthread_mutex_destroy(&tk->lock);
	free(tk);
}

/* Caller holds the lock. */
static int64_t floor_locked(const struct controller_timekeeper *tk, int64_t mono)
{
	int64_t f = tk->floor + (mono - tk->floor_mono);
	if (tk->anchored && tk->server + (mono - tk->server_mono) > f)
		f = tk->server + (mono - tk->server_mono);
	return f;
}

static void raise_floor_locked(struct controller_timekeeper *tk, int64_t t, int64_t mono)
{
	if (t > floor_locked(tk, mono)) {
		tk->floor = t;
		tk->floor_mono = mono;
	}
}

void controller_timekeeper_server_time(struct controller_timekeeper *tk, int64_t server_time)
{
	if (!tk)
		return;
	int64_t mono = mono_s();
	pthread_mutex_lock(&tk->lock);
	tk->anchored = true;
	tk->server = server_time;
	tk->server_mono = mono;
	raise_floor_locked(tk, server_time, mono);
	pthread_mutex_unlock(&tk->lock);
}

void controller_timekeeper_at_least(struct controller_timekeeper *tk, int64_t t)
{
	if (!tk)
		return;
	int64_t mono = mono_s();
	pthread_mutex_lock(&tk->lock);
	raise_floor_locked(tk, t, mono);
	pthread_mutex_unlock(&tk->lock);
}

int64_t controller_timekeeper_now(struct controller_timekeeper *tk)
{
	int64_t wall = (int64_t)time(NULL);
	if (!tk)
		return wall;
	int64_t mono = mono_s();
	pthread_mutex_lock(&tk->lock);
	int64_t t;
	if (tk->anchored) {
		t = tk->server + (mono - tk->server_mono);
	} else {
		int64_t f = floor_locked(tk, mono);
		t = wall > f ? wall : f;
	}
	pthread_mutex_unlock(&tk->lock);
	return t;
}

int64_t controller_timekeeper_floor(struct controller_timekeeper *tk)
{
	if (!tk)
		return (int64_t)time(NULL);
	int64_t mono = mono_s();
	pthread_mutex_lock(&tk->lock);
	int64_t f = floor_locked(tk, mono);
	pthread_mutex_unlock(&tk->lock);
	return f;
}

int64_t controller_timekeeper_skew(struct controller_timekeeper *tk)
{
	return (int64_t)time(NULL) - controller_timekeeper_now(tk);
}
