/*
 * sync_probe — one simulated controller provisioned from a real device bundle (made by
 * `citypass-admin device add`), for the end-to-end check against citypass-server on the
 * sqlite rights database (e2e_sqlite.sh). Lists it receives are verified the way a gate
 * does: snapshots with proto_clist_stream_open() and every chunk checked, deltas applied
 * with proto_clist_delta_apply() to the list it holds, both against the bundle's
 * list.pub.pem.
 *
 *   sync_probe --port P --bundle DIR [--events N] [--first-seq S] [--wait-push SEC]
 *              [--ack-wait SEC] [--batches K [--pause-ms MS]]
 *              [--expect-refused]
 *              [--forge-stat SITE,GATE,SECTOR,PRODUCT,OUTCOME,REASON,QUARTER_HOUR]...
 *              [--forge-use SECTOR,KEYHEX16,PRODUCT,COUNT,PERIOD]...
 * Prints "held V snapshots S deltas D acked A" (and "ready held V" before waiting for a
 * push). Exit 0 when everything asked for happened, 1 otherwise.
 * --forge-stat / --forge-use send one batch of those events (sequences from --first-seq)
 * as a stolen gate would, and print "acked A" or "closed: ERROR MESSAGE" (exit 0 either
 * way: the caller judges).
 */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/clist.h"
#include "proto/device_conf.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "sim_controller.h"

/* The list held: its manifest (and that manifest's hash) and every chunk's entries. */
struct probe {
	struct proto_keyring *ring;
	struct proto_clist_manifest m;
	uint8_t manifest_hash[PROTO_HASH_LEN];
	uint8_t **dat;
	uint32_t *n;
};

static struct probe P;

static void drop_held(void)
{
	for (uint32_t j = 0; P.dat && j < P.m.n_chunks; j++)
		free(P.dat[j]);
	free(P.dat);
	free(P.n);
	proto_clist_manifest_free(&P.m);
	P.dat = NULL;
	P.n = NULL;
}

/* The bundle's device.conf, read by its one reader (proto/device_conf.h), as a gate reads it. */
static int conf_load(const char *path, struct proto_device_conf *d)
{
	static char text[PROTO_DEVICE_CONF_TEXT_MAX];
	char err[300] = "";
	unsigned line = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (n == sizeof(text) ||
	    proto_device_conf_parse(text, n, d, NULL, err, sizeof(err), &line)) {
		fprintf(stderr, "sync_probe: %s:%u: %s\n", path, line, err);
		return -1;
	}
	return 0;
}

static int read_held(void *ctx, uint32_t j, uint8_t **dat, uint32_t *n, const uint8_t **idx,
                     size_t *idx_len)
{
	(void)idx; /* every leaf hashed again */
	(void)idx_len;
	(void)ctx;
	size_t len = (size_t)P.n[j] * PROTO_CLIST_ENTRY_SIZE;
	*dat = malloc(len ? len : 1);
	if (!*dat)
		return PROTO_ERR_NOMEM;
	memcpy(*dat, P.dat[j], len);
	*n = P.n[j];
	return 0;
}

static int take_snapshot(const struct proto_list_policy *pol, const Citypass__ListUpdate *u,
                         const uint8_t *data, size_t len)
{
	struct proto_clist_stream st;
	struct proto_clist_manifest m;
	struct proto_clist_head h;
	int rc = proto_clist_stream_open(data, len, u->signature.data, u->signature.len, pol, &st,
	                                 &m, &h);
	if (rc) {
		fprintf(stderr, "sync_probe: snapshot refused: %s\n", proto_strerror(rc));
		proto_clist_head_free(&h); /* filled for an expired or older version */
		proto_clist_manifest_free(&m);
		return -1;
	}
	uint8_t **dat = calloc(m.n_chunks, sizeof(*dat));
	uint32_t *n = calloc(m.n_chunks, sizeof(*n));
	size_t cursor = 0;
	rc = dat && n ? 0 : PROTO_ERR_NOMEM;
	for (uint32_t j = 0; rc == 0 && j < m.n_chunks; j++) {
		const uint8_t *idx, *d;
		size_t il;
		rc = proto_clist_stream_chunk(&st, &m, &h, &cursor, j, &idx, &il, &d, &n[j]);
		if (rc == 0 && !(dat[j] = malloc((size_t)n[j] * PROTO_CLIST_ENTRY_SIZE + 1)))
			rc = PROTO_ERR_NOMEM;
		if (rc == 0)
			memcpy(dat[j], d, (size_t)n[j] * PROTO_CLIST_ENTRY_SIZE);
	}
	proto_clist_head_free(&h);
	if (rc) {
		fprintf(stderr, "sync_probe: snapshot refused: %s\n", proto_strerror(rc));
		for (uint32_t j = 0; dat && j < m.n_chunks; j++)
			free(dat[j]);
		free(dat);
		free(n);
		proto_clist_manifest_free(&m);
		return -1;
	}
	drop_held();
	P.m = m;
	P.dat = dat;
	P.n = n;
	proto_sha256(st.manifest, st.manifest_len, P.manifest_hash);
	return 0;
}

static int verify_update(struct sim_ctl *c, const Citypass__ListUpdate *u, const uint8_t *data,
                         size_t len)
{
	struct proto_list_policy pol = {
	        .sector = c->sector, .held_version = c->held, .now = time(NULL), .keys = P.ring};

	if (u->kind == CITYPASS__LIST_UPDATE__KIND__SNAPSHOT)
		return take_snapshot(&pol, u, data, len);
	if (!P.dat)
		return -1;
	struct proto_clist_applied ap;
	int rc = proto_clist_delta_apply(&P.m, P.manifest_hash, read_held, NULL, data, len,
	                                 u->signature.data, u->signature.len, &pol, &ap);
	if (rc != 0) {
		fprintf(stderr, "sync_probe: delta refused: %s\n", proto_strerror(rc));
		return -1;
	}
	for (uint32_t i = 0; i < ap.n_changed; i++) {
		uint32_t j = ap.changed[i];
		free(P.dat[j]);
		P.dat[j] = ap.chunks[i].dat;
		P.n[j] = ap.chunks[i].n;
		ap.chunks[i].dat = NULL;
	}
	proto_sha256(ap.manifest_bytes, ap.manifest_len, P.manifest_hash);
	proto_clist_manifest_free(&P.m);
	P.m = ap.manifest;
	ap.manifest.chunks = NULL;
	proto_clist_applied_free(&ap);
	return 0;
}

#define FORGE_MAX 16
static Citypass__StatEvent forged_stats[FORGE_MAX];
static Citypass__ConsumptionEvent forged_uses[FORGE_MAX];
static uint8_t forged_keys[FORGE_MAX][8];
static size_t n_forged_stats, n_forged_uses;

static int forge_stat(const char *arg)
{
	unsigned long long v[7];
	if (n_forged_stats == FORGE_MAX || sscanf(arg, "%llu,%llu,%llu,%llu,%llu,%llu,%llu", &v[0],
	                                          &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) != 7)
		return -1;
	Citypass__StatEvent *e = &forged_stats[n_forged_stats++];
	citypass__stat_event__init(e);
	e->site = (uint32_t)v[0];
	e->gate = (uint32_t)v[1];
	e->sector = (uint32_t)v[2];
	e->product = (uint32_t)v[3];
	e->outcome = (Citypass__Outcome)v[4];
	e->reason = (uint32_t)v[5];
	e->quarter_hour = (int64_t)v[6];
	return 0;
}

static int forge_use(const char *arg)
{
	unsigned long long v[4];
	char hex[17];
	if (n_forged_uses == FORGE_MAX ||
	    sscanf(arg, "%llu,%16[0-9a-fA-F],%llu,%llu,%llu", &v[0], hex, &v[1], &v[2], &v[3]) !=
	            5 ||
	    strlen(hex) != 16)
		return -1;
	size_t i = n_forged_uses++;
	for (int k = 0; k < 8; k++) {
		unsigned b;
		sscanf(hex + 2 * k, "%2x", &b);
		forged_keys[i][k] = (uint8_t)b;
	}
	Citypass__ConsumptionEvent *e = &forged_uses[i];
	citypass__consumption_event__init(e);
	e->sector = (uint32_t)v[0];
	e->pseudonym.data = forged_keys[i];
	e->pseudonym.len = 8;
	e->product = (uint32_t)v[1];
	e->count = (uint32_t)v[2];
	e->period = (uint32_t)v[3];
	return 0;
}

static uint64_t want_forged_ack;
static int cond_forged(const struct sim_ctl *c)
{
	return c->closed || (n_forged_stats ? c->stats_acked : c->cons_acked) >= want_forged_ack;
}

/* Send the forged batch (statistics or consumption), report what the server did. */
static void send_forged(struct sim_ctl *c, uint64_t first)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__EventBatch b = CITYPASS__EVENT_BATCH__INIT;
	Citypass__StatEvent *sp[FORGE_MAX];
	Citypass__ConsumptionEvent *up[FORGE_MAX];
	for (size_t i = 0; i < n_forged_stats; i++) {
		forged_stats[i].seq = first + i;
		sp[i] = &forged_stats[i];
	}
	for (size_t i = 0; i < n_forged_uses; i++) {
		forged_uses[i].seq = first + i;
		up[i] = &forged_uses[i];
	}
	if (n_forged_stats) {
		b.stream = CITYPASS__STREAM__STATISTICS;
		b.stats = sp;
		b.n_stats = n_forged_stats;
	} else {
		b.stream = CITYPASS__STREAM__CONSUMPTION;
		b.consumption = up;
		b.n_consumption = n_forged_uses;
	}
	f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
	f.event_batch = &b;
	want_forged_ack = first + (n_forged_stats ? n_forged_stats : n_forged_uses) - 1;
	if (sim_send_frame(c, &f) != 0) {
		printf("closed: the framing layer refused to send it\n");
		return;
	}
	if (sim_wait(c, cond_forged, 10000) == 1 && !c->closed)
		printf("acked %llu\n",
		       (unsigned long long)(n_forged_stats ? c->stats_acked : c->cons_acked));
	else
		printf("closed: %s\n", c->last_error_msg[0] ? c->last_error_msg : c->why);
}

static uint64_t want_held, want_acked;
static unsigned ack_wait_s = 10; /* --ack-wait: how long a batch may take to be acknowledged */
static int cond_synced(const struct sim_ctl *c)
{
	return c->welcomed && c->held >= want_held && c->stats_acked >= want_acked;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"port", required_argument, NULL, 'p'},
	        {"bundle", required_argument, NULL, 'b'},
	        {"events", required_argument, NULL, 'e'},
	        {"first-seq", required_argument, NULL, 'f'},
	        {"wait-push", required_argument, NULL, 'w'},
	        {"expect-refused", no_argument, NULL, 'r'},
	        {"forge-stat", required_argument, NULL, 's'},
	        {"forge-use", required_argument, NULL, 'u'},
	        {"ack-wait", required_argument, NULL, 'a'},
	        {"batches", required_argument, NULL, 'B'},
	        {"pause-ms", required_argument, NULL, 'P'},
	        {NULL, 0, NULL, 0},
	};
	const char *bundle = NULL;
	unsigned port = 0, wait_push = 0;
	size_t events = 0;
	unsigned batches = 1, pause_ms = 0;
	uint64_t first = 1;
	int expect_refused = 0, opt;
	char conf[600], ca[600], cert[600], key[600], pub[600];
	struct sim_ctl c;
	struct proto_key *k = NULL;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			port = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			bundle = optarg;
			break;
		case 'e':
			events = strtoul(optarg, NULL, 10);
			break;
		case 'f':
			first = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			wait_push = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			expect_refused = 1;
			break;
		case 's':
			if (forge_stat(optarg) != 0)
				return 2;
			break;
		case 'u':
			if (forge_use(optarg) != 0)
				return 2;
			break;
		case 'a':
			ack_wait_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'B':
			batches = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			pause_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (!bundle || !port)
		return 2;
	snprintf(conf, sizeof(conf), "%s/device.conf", bundle);
	snprintf(ca, sizeof(ca), "%s/ca.crt", bundle);
	snprintf(cert, sizeof(cert), "%s/device.crt", bundle);
	snprintf(key, sizeof(key), "%s/device.key", bundle);
	snprintf(pub, sizeof(pub), "%s/list.pub.pem", bundle);
	static struct proto_device_conf d;
	if (conf_load(conf, &d) != 0)
		return 2;
	const char *id = d.device_id;
	uint16_t sector = d.sector;
	uint32_t site = d.site;

	P.ring = proto_keyring_new();
	if (!P.ring || proto_key_load_public(&k, pub) != 0 || proto_keyring_add(P.ring, k) != 0) {
		proto_key_free(k);
		return 1;
	}
	proto_key_free(k); /* the ring keeps its own copy */
	const char *server_name = d.server_name[0] ? d.server_name : "localhost";
	if (sim_init_named(&c, id, sector, ca, cert, key, server_name) != 0) {
		proto_keyring_free(P.ring);
		return 1;
	}
	c.check_update = verify_update;
	c.gate = d.gate;
	if (sim_connect(&c, port) != 0 || sim_send_hello(&c, NULL) != 0) {
		sim_free(&c);
		proto_keyring_free(P.ring);
		return 1;
	}
	want_held = 1;
	want_acked = 0;
	int r = sim_wait(&c, cond_synced, 10000);
	int ok = 0;
	if (expect_refused) {
		printf("%s: %s\n", c.welcomed ? "welcomed" : "refused", c.why);
		ok = !c.welcomed;
		goto out;
	}
	if (r != 1) {
		fprintf(stderr, "sync_probe: no session / list: %s\n", c.why);
		goto out;
	}
	if (n_forged_stats || n_forged_uses) {
		send_forged(&c, first);
		ok = 1;
		goto out;
	}
	/* --batches: one after the other in this one session, --pause-ms apart (the session
	 * kept alive meanwhile: a close by the server fails the probe) */
	for (unsigned b = 0; events && b < batches; b++) {
		uint64_t from = first + (uint64_t)b * events;
		sim_send_stats(&c, from, events, site, sector);
		want_acked = from + events - 1;
		if (sim_wait(&c, cond_synced, (int)ack_wait_s * 1000) != 1) {
			fprintf(stderr, "sync_probe: batch %u not acknowledged: %s\n", b + 1,
			        c.why);
			goto out;
		}
		if (pause_ms && sim_wait(&c, sim_cond_closed, (int)pause_ms) != 0) {
			fprintf(stderr, "sync_probe: the server closed the session: %s\n", c.why);
			goto out;
		}
	}
	if (wait_push) {
		printf("ready held %llu\n", (unsigned long long)c.held);
		fflush(stdout);
		want_held = c.held + 1;
		if (sim_wait(&c, cond_synced, (int)wait_push * 1000) != 1) {
			fprintf(stderr, "sync_probe: no push: %s\n", c.why);
			goto out;
		}
		printf("pushed held %llu published %u\n", (unsigned long long)c.held, c.published);
	}
	printf("held %llu snapshots %u deltas %u acked %llu bad %u\n", (unsigned long long)c.held,
	       c.snapshots, c.deltas, (unsigned long long)c.stats_acked, c.bad_updates);
	ok = c.bad_updates == 0;
out:
	sim_free(&c);
	drop_held();
	proto_keyring_free(P.ring);
	return ok ? 0 : 1;
}
