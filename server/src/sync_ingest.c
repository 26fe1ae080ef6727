/*
 * sync_ingest.c — event batches are committed by a worker thread, never on the event loop.
 *
 * A commit is an fsync, and a writer may find the database locked by another one (an agent
 * publishing, an import): on the loop, either would stall every gate the server serves.
 * The loop checks a batch (sync_validate_batch) and hands it here with the frame that
 * carries it; the worker commits what is queued in one transaction (group commit: one
 * fsync for the batches of many gates), retries for as long as the database is busy
 * (SERVER_ERR_BUSY: never an error a gate sees), and hands each result back through a
 * pipe the loop watches. The loop then acknowledges: acknowledged = committed, as before
 * (DESIGN.md s.5). A connection closed meanwhile keeps its structure until its batches
 * are done (conn_unref); their rows are committed, and the gate learns its ack from the
 * next Hello.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "proto/frame.h"
#include "sync_internal.h"

/* Batches committed together at most, and the longest pause between two tries while the
 * database is locked by another writer. Each try itself waits up to a second, trying for
 * the lock every millisecond (store_sync.c): pausing longer between tries missed the gaps
 * an import leaves between its transactions (admin_import.c). */
#define INGEST_GROUP_MAX     256
#define INGEST_BUSY_PAUSE_MS 10

struct ingest_job {
	struct sync_conn *conn;
	Citypass__Frame *frame; /* owns the batch */
	int rc;
	uint64_t acked;
	uint64_t position; /* issue 13: where a consumption batch's uses sit */
	struct ingest_job *next;
};

/* Issue 13: a gate's health report, stored by the worker (nothing is answered). */
struct health_job {
	struct server_gate_report report;
	Citypass__GateHealth health;
	struct health_job *next;
};

/* Reports waiting, at most: beyond, a gate's report is dropped (it comes again). */
#define HEALTH_QUEUE_MAX 16384

struct sync_ingest {
	struct server_sync *srv;
	struct server_sync_backend be; /* the worker's own connection to the database */
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ingest_job *todo_head, *todo_tail; /* loop -> worker */
	struct ingest_job *done_head, *done_tail; /* worker -> loop */
	struct health_job *health_head;           /* loop -> worker, stored in any order */
	size_t health_queued;
	size_t queued;
	int stop;
	int pipe_rd, pipe_wr;
	struct event *done_ev;
	uint64_t groups, busy_retries;
};

static void push(struct ingest_job **head, struct ingest_job **tail, struct ingest_job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Issue 13: where each committed consumption batch's uses sit (EventAck.position): read
 * after the commit, a list published from then on counts them iff its position is at or
 * above. Unknown (0) when the backend cannot say. */
static void positions(struct sync_ingest *in, struct ingest_job *group, size_t n)
{
	const struct server_sync_backend *be = &in->be;
	for (struct ingest_job *j = group; n-- && j; j = j->next) {
		const Citypass__EventBatch *b = j->frame->event_batch;
		j->position = 0;
		if (j->rc || b->stream != CITYPASS__STREAM__CONSUMPTION || !be->ops->usage_position)
			continue;
		if (be->ops->usage_position(be->ctx, j->conn->cn, b->journal_epoch, j->acked,
		                            &j->position) != 0)
			j->position = 0;
	}
}

/* Commit a group: all of it in one transaction when the backend can, else batch by batch.
 * A busy database is waited out; only a real failure reaches a job's rc. */
static uint64_t commit_group(struct sync_ingest *in, struct ingest_job *group, size_t n)
{
	const struct server_sync_backend *be = &in->be;
	uint64_t busy = 0;
	for (;;) {
		int rc;
		if (be->ops->ingest_group && n > 1) {
			const Citypass__EventBatch *batches[INGEST_GROUP_MAX];
			const char *devices[INGEST_GROUP_MAX];
			uint64_t acked[INGEST_GROUP_MAX];
			struct ingest_job *j = group;
			for (size_t i = 0; i < n; i++, j = j->next) {
				batches[i] = j->frame->event_batch;
				devices[i] = j->conn->cn;
			}
			rc = be->ops->ingest_group(be->ctx, devices, batches, n, acked);
			if (rc == 0) {
				j = group;
				for (size_t i = 0; i < n; i++, j = j->next) {
					j->rc = 0;
					j->acked = acked[i];
				}
				positions(in, group, n);
				return busy;
			}
			if (rc != SERVER_ERR_BUSY)
				break; /* one batch the database refused: find it, alone */
		} else {
			break;
		}
		pthread_mutex_lock(&in->lock);
		int stop = in->stop;
		pthread_mutex_unlock(&in->lock);
		if (stop) {
			for (struct ingest_job *j = group; n--; j = j->next)
				j->rc = SERVER_ERR_BUSY;
			return busy;
		}
		busy++;
		sleep_ms(INGEST_BUSY_PAUSE_MS);
	}
	const size_t count = n;
	for (struct ingest_job *j = group; n--; j = j->next) {
		for (;;) {
			j->rc = be->ops->ingest(be->ctx, j->conn->cn, j->frame->event_batch,
			                        &j->acked);
			if (j->rc != SERVER_ERR_BUSY)
				break;
			pthread_mutex_lock(&in->lock);
			int stop = in->stop;
			pthread_mutex_unlock(&in->lock);
			if (stop)
				break;
			busy++;
			sleep_ms(INGEST_BUSY_PAUSE_MS);
		}
	}
	positions(in, group, count);
	return busy;
}

/* Issue 13: store the health reports queued (one transaction); a database busy for long
 * or failing drops them (the gates report again within minutes). */
static void store_health(struct sync_ingest *in, struct health_job *list)
{
	const struct server_sync_backend *be = &in->be;
	struct server_gate_report reports[256];
	while (list) {
		size_t n = 0;
		struct health_job *first = list;
		while (list && n < sizeof(reports) / sizeof(reports[0])) {
			reports[n] = list->report;
			reports[n].health = &list->health;
			n++;
			list = list->next;
		}
		int rc = SERVER_ERR_BUSY;
		for (unsigned wait = 10;
		     be->ops->gate_health && rc == SERVER_ERR_BUSY && wait <= 640; wait *= 2) {
			rc = be->ops->gate_health(be->ctx, reports, n);
			if (rc == SERVER_ERR_BUSY)
				sleep_ms(wait);
		}
		while (first != list) {
			struct health_job *next = first->next;
			free(first);
			first = next;
		}
	}
}

static void *worker(void *arg)
{
	struct sync_ingest *in = arg;
	pthread_mutex_lock(&in->lock);
	for (;;) {
		while (!in->todo_head && !in->health_head && !in->stop)
			pthread_cond_wait(&in->cond, &in->lock);
		if (in->stop && !in->todo_head)
			break;
		if (!in->todo_head) { /* health reports only */
			struct health_job *h = in->health_head;
			in->health_head = NULL;
			in->health_queued = 0;
			pthread_mutex_unlock(&in->lock);
			store_health(in, h);
			pthread_mutex_lock(&in->lock);
			continue;
		}
		/* take what is queued, up to a group */
		struct ingest_job *group = in->todo_head, *last = group;
		size_t n = 1;
		while (last->next && n < INGEST_GROUP_MAX) {
			last = last->next;
			n++;
		}
		in->todo_head = last->next;
		if (!in->todo_head)
			in->todo_tail = NULL;
		last->next = NULL;
		in->queued -= n;
		pthread_mutex_unlock(&in->lock);

		uint64_t busy = commit_group(in, group, n);

		pthread_mutex_lock(&in->lock);
		in->groups++;
		in->busy_retries += busy;
		for (struct ingest_job *j = group, *next; j; j = next) {
			next = j->next;
			push(&in->done_head, &in->done_tail, j);
		}
		pthread_mutex_unlock(&in->lock);
		/* wake the loop; a full pipe already holds a wake-up */
		(void)!write(in->pipe_wr, "d", 1);
		/* the health reports that came meanwhile: never starved by a stream of batches */
		pthread_mutex_lock(&in->lock);
		struct health_job *h = in->health_head;
		in->health_head = NULL;
		in->health_queued = 0;
		pthread_mutex_unlock(&in->lock);
		store_health(in, h);
		pthread_mutex_lock(&in->lock);
	}
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

/* On the loop: hand each committed batch back to its connection. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct sync_ingest *in = arg;
	char buf[256];
	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&in->lock);
	struct ingest_job *j = in->done_head;
	in->done_head = in->done_tail = NULL;
	pthread_mutex_unlock(&in->lock);
	while (j) {
		struct ingest_job *next = j->next;
		sync_conn_batch_done(j->conn, j->frame->event_batch, j->rc, j->acked, j->position);
		proto_frame_free_message(j->frame);
		free(j);
		j = next;
	}
}

int sync_ingest_start(struct server_sync *s, const struct server_sync_backend *be)
{
	struct sync_ingest *in = calloc(1, sizeof(*in));
	int fds[2];
	if (!in)
		return SERVER_ERR_NOMEM;
	if (pipe(fds) != 0) {
		free(in);
		return SERVER_ERR_IO;
	}
	in->srv = s;
	in->be = *be;
	in->pipe_rd = fds[0];
	in->pipe_wr = fds[1];
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	in->done_ev = event_new(s->base, fds[0], EV_READ | EV_PERSIST, on_done, in);
	if (!in->done_ev || event_add(in->done_ev, NULL) != 0 ||
	    pthread_create(&in->thread, NULL, worker, in) != 0) {
		s->ingest = in;
		sync_ingest_free(s);
		return SERVER_ERR_NOMEM;
	}
	in->started = 1;
	s->ingest = in;
	return 0;
}

int sync_ingest_submit(struct server_sync *s, struct sync_conn *c, Citypass__Frame *f)
{
	struct sync_ingest *in = s->ingest;
	struct ingest_job *j = calloc(1, sizeof(*j));
	if (!j)
		return SERVER_ERR_NOMEM;
	j->conn = sync_conn_ref(c);
	j->frame = f;
	pthread_mutex_lock(&in->lock);
	push(&in->todo_head, &in->todo_tail, j);
	in->queued++;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

int sync_ingest_health(struct server_sync *s, const char *device_id, const Citypass__GateHealth *h)
{
	struct sync_ingest *in = s->ingest;
	if (!in || !h)
		return 0;
	struct health_job *j = calloc(1, sizeof(*j));
	if (!j)
		return SERVER_ERR_NOMEM;
	snprintf(j->report.device_id, sizeof(j->report.device_id), "%s", device_id);
	j->report.at = (int64_t)time(NULL);
	j->health = *h;
	/* only the known fields travel on: the frame, and what protobuf-c kept, are freed */
	j->health.base.n_unknown_fields = 0;
	j->health.base.unknown_fields = NULL;
	pthread_mutex_lock(&in->lock);
	if (in->health_queued >= HEALTH_QUEUE_MAX) {
		pthread_mutex_unlock(&in->lock);
		free(j);
		return 0;
	}
	j->next = in->health_head;
	in->health_head = j;
	in->health_queued++;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

void sync_ingest_stop(struct server_sync *s)
{
	struct sync_ingest *in = s->ingest;
	if (!in)
		return;
	/* a stopped server holds no event: event_base_dispatch() may return */
	if (in->done_ev)
		event_del(in->done_ev);
	if (!in->started)
		return;
	/* the group being committed finishes (committed or rolled back); what is still queued
	 * is dropped unacknowledged: the gates send it again */
	pthread_mutex_lock(&in->lock);
	in->stop = 1;
	struct ingest_job *j = in->todo_head;
	in->todo_head = in->todo_tail = NULL;
	in->queued = 0;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->lock);
	pthread_join(in->thread, NULL);
	in->started = 0;
	while (in->health_head) {
		struct health_job *next = in->health_head->next;
		free(in->health_head);
		in->health_head = next;
	}
	in->health_queued = 0;
	while (j) {
		struct ingest_job *next = j->next;
		sync_conn_unref(j->conn);
		proto_frame_free_message(j->frame);
		free(j);
		j = next;
	}
	/* the results of the last group: their connections learn them from the next Hello */
	pthread_mutex_lock(&in->lock);
	j = in->done_head;
	in->done_head = in->done_tail = NULL;
	pthread_mutex_unlock(&in->lock);
	while (j) {
		struct ingest_job *next = j->next;
		sync_conn_unref(j->conn);
		proto_frame_free_message(j->frame);
		free(j);
		j = next;
	}
}

void sync_ingest_free(struct server_sync *s)
{
	struct sync_ingest *in = s->ingest;
	if (!in)
		return;
	sync_ingest_stop(s);
	if (in->done_ev)
		event_free(in->done_ev);
	close(in->pipe_rd);
	close(in->pipe_wr);
	pthread_cond_destroy(&in->cond);
	pthread_mutex_destroy(&in->lock);
	free(in);
	s->ingest = NULL;
}

void sync_ingest_counters(const struct server_sync *s, uint64_t *groups, uint64_t *busy)
{
	struct sync_ingest *in = s->ingest;
	*groups = *busy = 0;
	if (in) {
		/* written by the worker, read here: a slightly old value is fine for counters */
		pthread_mutex_lock(&in->lock);
		*groups = in->groups;
		*busy = in->busy_retries;
		pthread_mutex_unlock(&in->lock);
	}
}

size_t sync_ingest_queued(const struct server_sync *s)
{
	struct sync_ingest *in = s->ingest;
	if (!in)
		return 0;
	pthread_mutex_lock(&in->lock);
	size_t n = in->queued;
	pthread_mutex_unlock(&in->lock);
	return n;
}
