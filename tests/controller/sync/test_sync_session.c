/*
 * test_sync_session.c — the gate's sync session (controller/sync_session.h) in-process,
 * without a socket, a thread or TLS: the test plays the server, encoding its frames with
 * proto/frame.h and feeding their bytes to the session, and decodes what the session
 * queued (as libevent's bufferevent pairs test a protocol). The journal is the real one,
 * in a temporary directory: acknowledgements are checked where the gate keeps them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "controller/error.h"
#include "controller/journal.h"
#include "controller/sync_session.h"
#include "proto/error.h"
#include "proto/frame.h"

#define SECTOR 7
#define DEVICE "gate-test-1"

/* --- the gate's side: callbacks that record what they were given ----------------------- */

struct rec {
	uint64_t held;  /* what held_version() answers */
	int install_rc; /* what install() returns */
	unsigned installs;
	enum controller_update_kind kind;
	uint8_t data[64];
	size_t len;
	uint8_t sig[72];
	size_t sig_len;
	unsigned card_keys;
	uint8_t card_version, master[16];
	unsigned key_chains;
	size_t statements;
	uint8_t first_text[32];
	size_t first_text_len;
	unsigned ca_chains;
	size_t announcements;
	uint8_t first_cross[32];
	size_t first_cross_len;
};

static uint64_t rec_held(void *ctx)
{
	return ((struct rec *)ctx)->held;
}

static int rec_install(void *ctx, enum controller_update_kind kind, const uint8_t *data, size_t len,
                       const uint8_t *sig, size_t sig_len)
{
	struct rec *r = ctx;
	r->installs++;
	r->kind = kind;
	r->len = len < sizeof(r->data) ? len : sizeof(r->data);
	memcpy(r->data, data, r->len);
	r->sig_len = sig_len < sizeof(r->sig) ? sig_len : sizeof(r->sig);
	memcpy(r->sig, sig, r->sig_len);
	return r->install_rc;
}

static void rec_card_keys(void *ctx, const struct controller_card_keys *k)
{
	struct rec *r = ctx;
	r->card_keys++;
	r->card_version = k->version;
	memcpy(r->master, k->master, 16);
}

static void rec_key_chain(void *ctx, const struct proto_rotation_signed *st, size_t n)
{
	struct rec *r = ctx;
	r->key_chains++;
	r->statements = n;
	r->first_text_len = st[0].text_len < sizeof(r->first_text) ? st[0].text_len : 0;
	memcpy(r->first_text, st[0].text, r->first_text_len);
}

static void rec_ca_chain(void *ctx, const struct controller_ca_announcement *a, size_t n)
{
	struct rec *r = ctx;
	r->ca_chains++;
	r->announcements = n;
	r->first_cross_len = a[0].cross_len < sizeof(r->first_cross) ? a[0].cross_len : 0;
	memcpy(r->first_cross, a[0].cross, r->first_cross_len);
}

static void rec_log(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "[session] %s\n", line);
}

/* --- one test's world ------------------------------------------------------------------- */

struct env {
	char dir[64];
	char path[96];
	struct controller_journal *j;
	struct controller_sync_session *s;
	struct proto_frame_decoder *from_gate; /* the server's view of what the gate sent */
	struct rec rec;
};

static struct env *env_new(int share_passback)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/ctl-session-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/journal.db", e->dir);
	assert_int_equal(controller_journal_open(&e->j, e->path), 0);
	e->from_gate = proto_frame_decoder_new(0);
	assert_non_null(e->from_gate);
	const struct controller_sync_session_config cfg = {
	        .server = "test-server:4443",
	        .device_id = DEVICE,
	        .sector = SECTOR,
	        .software_version = "test",
	        .batch_max = 2, /* three rows make two batches */
	        .keepalive_s = 30,
	        .journal = e->j,
	        .share_passback = share_passback,
	        .held_version = rec_held,
	        .install = rec_install,
	        .card_keys = rec_card_keys,
	        .key_chain = rec_key_chain,
	        .log = rec_log,
	        .ctx = &e->rec,
	        .ca_chain = rec_ca_chain,
	        .ca_ctx = &e->rec,
	};
	assert_int_equal(controller_sync_session_new(&e->s, &cfg), 0);
	return e;
}

static int setup(void **state)
{
	*state = env_new(0);
	return 0;
}

static int setup_passback(void **state)
{
	*state = env_new(1);
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	controller_sync_session_free(e->s);
	proto_frame_decoder_free(e->from_gate);
	controller_journal_close(e->j);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

/* The server sends f: the session's answer (0 or -1). */
static int server_sends(struct env *e, const Citypass__Frame *f)
{
	size_t cap = proto_frame_encoded_size(f);
	uint8_t *buf = malloc(cap);
	assert_non_null(buf);
	long n = proto_frame_encode(f, 0, buf, cap);
	assert_true(n > 0);
	int rc = controller_sync_session_feed(e->s, buf, (size_t)n);
	free(buf);
	return rc;
}

/* The next frame the gate sent (the caller frees it), or NULL when it sent nothing more. */
static Citypass__Frame *gate_sent(struct env *e)
{
	Citypass__Frame *f = NULL;
	size_t len;
	const uint8_t *p = controller_sync_session_output(e->s, &len);
	if (len) {
		assert_int_equal(proto_frame_decoder_feed(e->from_gate, p, len), 0);
		controller_sync_session_sent(e->s, len);
	}
	int rc = proto_frame_next(e->from_gate, &f);
	assert_true(rc >= 0);
	return rc == 1 ? f : NULL;
}

static void assert_gate_sent_nothing(struct env *e)
{
	Citypass__Frame *f = gate_sent(e);
	if (f) {
		fprintf(stderr, "unexpected frame %d from the gate\n", (int)f->body_case);
		proto_frame_free_message(f);
		fail();
	}
}

static void assert_ended(struct env *e, const char *why)
{
	assert_int_equal(controller_sync_session_state(e->s), CONTROLLER_SYNC_SESSION_ENDED);
	if (!strstr(controller_sync_session_why(e->s), why)) {
		fprintf(stderr, "why: '%s', expected '%s'\n", controller_sync_session_why(e->s),
		        why);
		fail();
	}
}

/* begin() and the Hello it queued, checked; the Hello's list version is returned. */
static uint64_t begin_hello(struct env *e)
{
	assert_int_equal(controller_sync_session_begin(e->s), 0);
	assert_int_equal(controller_sync_session_state(e->s), CONTROLLER_SYNC_SESSION_HELLO);
	Citypass__Frame *f = gate_sent(e);
	assert_non_null(f);
	assert_int_equal(f->body_case, CITYPASS__FRAME__BODY_HELLO);
	assert_string_equal(f->hello->device_id, DEVICE);
	assert_int_equal(f->hello->n_lists, 1);
	assert_int_equal(f->hello->lists[0]->sector, SECTOR);
	uint64_t held = f->hello->lists[0]->version;
	assert_int_equal(f->hello->journal_epoch, (uint64_t)controller_journal_epoch(e->j));
	proto_frame_free_message(f);
	assert_gate_sent_nothing(e);
	return held;
}

static int send_welcome(struct env *e, Citypass__Welcome *w)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	f.body_case = CITYPASS__FRAME__BODY_WELCOME;
	f.welcome = w;
	return server_sends(e, &f);
}

static void welcome(struct env *e, uint32_t features)
{
	Citypass__Welcome w = CITYPASS__WELCOME__INIT;
	w.server_time = (int64_t)time(NULL) + 100;
	w.server_version = (char *)"test";
	w.features = features;
	(void)begin_hello(e);
	assert_int_equal(send_welcome(e, &w), 0);
	assert_int_equal(controller_sync_session_state(e->s), CONTROLLER_SYNC_SESSION_READY);
}

static int send_ack(struct env *e, Citypass__Stream stream, uint64_t seq)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__EventAck a = CITYPASS__EVENT_ACK__INIT;
	a.stream = stream;
	a.acked_seq = seq;
	a.journal_epoch = (uint64_t)controller_journal_epoch(e->j);
	f.body_case = CITYPASS__FRAME__BODY_EVENT_ACK;
	f.event_ack = &a;
	return server_sends(e, &f);
}

static int send_chunk(struct env *e, uint32_t index, uint32_t count, const uint8_t *data,
                      size_t len, size_t total, uint64_t version)
{
	static const uint8_t sig[8] = {0x30, 0x06, 1, 2, 3, 4, 5, 6};
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__ListUpdate u = CITYPASS__LIST_UPDATE__INIT;
	u.sector = SECTOR;
	u.kind = CITYPASS__LIST_UPDATE__KIND__SNAPSHOT;
	u.version = version;
	u.chunk_index = index;
	u.chunk_count = count;
	u.total_size = total;
	u.data.data = (uint8_t *)data;
	u.data.len = len;
	if (index + 1 == count) {
		u.signature.data = (uint8_t *)sig;
		u.signature.len = sizeof(sig);
	}
	f.body_case = CITYPASS__FRAME__BODY_LIST_UPDATE;
	f.list_update = &u;
	return server_sends(e, &f);
}

static void append_stats(struct env *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct controller_event ev = {
		        .at = (int64_t)time(NULL),
		        .site = 3,
		        .gate = 1,
		        .sector = SECTOR,
		        .product = 1,
		        .granted = true,
		};
		assert_int_equal(controller_journal_append(e->j, &ev, NULL), 0);
	}
}

/* --- hello / welcome -------------------------------------------------------------------- */

static void test_hello_then_welcome(void **state)
{
	struct env *e = *state;
	struct controller_sync_status st;

	e->rec.held = 41;
	assert_int_equal(begin_hello(e), 41);
	controller_sync_session_status(e->s, &st);
	assert_int_equal(st.connected, 0);

	Citypass__Welcome w = CITYPASS__WELCOME__INIT;
	w.server_time = (int64_t)time(NULL) + 100;
	w.server_version = (char *)"test";
	assert_int_equal(send_welcome(e, &w), 0);
	assert_int_equal(controller_sync_session_state(e->s), CONTROLLER_SYNC_SESSION_READY);
	assert_int_equal(controller_sync_session_healthy(e->s), 1);
	controller_sync_session_status(e->s, &st);
	assert_int_equal(st.connected, 1);
	assert_true(st.clock_skew_s >= 99 && st.clock_skew_s <= 101);
	assert_true(st.last_contact > 0);
	/* an empty journal: nothing to upload, and no keepalive unless asked */
	assert_gate_sent_nothing(e);
	assert_int_equal(controller_sync_session_keepalive(e->s), 0);
	Citypass__Frame *f = gate_sent(e);
	assert_non_null(f);
	assert_int_equal(f->body_case, CITYPASS__FRAME__BODY_EVENT_BATCH);
	assert_int_equal(f->event_batch->n_stats, 0);
	proto_frame_free_message(f);

	/* a second Welcome is not a session start */
	assert_int_equal(send_welcome(e, &w), -1);
	assert_ended(e, "Welcome outside the session start");
}

static void test_frame_before_welcome_ends(void **state)
{
	struct env *e = *state;
	(void)begin_hello(e);
	assert_int_equal(send_ack(e, CITYPASS__STREAM__STATISTICS, 1), -1);
	assert_ended(e, "before Welcome");
	/* nothing more is read once it ended */
	Citypass__Welcome w = CITYPASS__WELCOME__INIT;
	assert_int_equal(send_welcome(e, &w), -1);
	assert_ended(e, "before Welcome");
	/* reset() is a new start: the next connection begins with a Hello */
	controller_sync_session_reset(e->s);
	assert_int_equal(controller_sync_session_state(e->s), CONTROLLER_SYNC_SESSION_IDLE);
	welcome(e, 0);
}

/* --- list updates ----------------------------------------------------------------------- */

static void test_update_assembled_and_installed(void **state)
{
	struct env *e = *state;
	const uint8_t a[5] = "abcde", b[3] = "fgh";

	welcome(e, 0);
	/* two chunks, split across feeds at every byte boundary the decoder sees */
	assert_int_equal(send_chunk(e, 0, 2, a, sizeof(a), 8, 5), 0);
	assert_int_equal(e->rec.installs, 0); /* not before the last chunk */
	assert_int_equal(send_chunk(e, 1, 2, b, sizeof(b), 8, 5), 0);
	assert_int_equal(e->rec.installs, 1);
	assert_int_equal(e->rec.kind, CONTROLLER_UPDATE_SNAPSHOT);
	assert_int_equal(e->rec.len, 8);
	assert_memory_equal(e->rec.data, "abcdefgh", 8);
	assert_int_equal(e->rec.sig_len, 8);
	assert_int_equal(e->rec.sig[0], 0x30);
	assert_int_equal(controller_sync_session_state(e->s), CONTROLLER_SYNC_SESSION_READY);
}

static void test_update_chunk_out_of_order_ends(void **state)
{
	struct env *e = *state;
	const uint8_t a[5] = "abcde";

	welcome(e, 0);
	assert_int_equal(send_chunk(e, 0, 3, a, sizeof(a), 15, 5), 0);
	assert_int_equal(send_chunk(e, 2, 3, a, sizeof(a), 15, 5), -1);
	assert_ended(e, "ListUpdate chunk out of order");
	assert_int_equal(e->rec.installs, 0);
}

static void test_update_larger_than_announced_ends(void **state)
{
	struct env *e = *state;
	const uint8_t a[5] = "abcde";

	welcome(e, 0);
	assert_int_equal(send_chunk(e, 0, 2, a, sizeof(a), 6, 5), 0);
	assert_int_equal(send_chunk(e, 1, 2, a, sizeof(a), 6, 5), -1);
	assert_ended(e, "larger than its total_size");
	assert_int_equal(e->rec.installs, 0);
}

static void test_refused_update_wants_a_snapshot(void **state)
{
	struct env *e = *state;
	const uint8_t a[4] = "list";

	e->rec.held = 4;
	welcome(e, 0);
	e->rec.install_rc = PROTO_ERR_LIST_SIGNATURE;
	assert_int_equal(send_chunk(e, 0, 1, a, sizeof(a), 4, 5), -1);
	assert_ended(e, "refused: ");
	assert_int_equal(controller_sync_session_healthy(e->s), 0); /* the back-off grows */
	/* the next session claims no list, so that the server sends a snapshot */
	controller_sync_session_reset(e->s);
	assert_int_equal(begin_hello(e), 0);
}

/* --- events and their acknowledgements --------------------------------------------------- */

static void test_batches_and_acks(void **state)
{
	struct env *e = *state;
	struct controller_journal_stats js;
	struct controller_sync_status st;
	Citypass__Frame *f;

	append_stats(e, 3);
	welcome(e, 0);
	/* batch_max 2: the first two rows, one batch in flight */
	f = gate_sent(e);
	assert_non_null(f);
	assert_int_equal(f->body_case, CITYPASS__FRAME__BODY_EVENT_BATCH);
	assert_int_equal(f->event_batch->stream, CITYPASS__STREAM__STATISTICS);
	assert_int_equal(f->event_batch->n_stats, 2);
	assert_int_equal(f->event_batch->stats[0]->seq, 1);
	assert_int_equal(f->event_batch->stats[1]->seq, 2);
	assert_int_equal(f->event_batch->journal_epoch, (uint64_t)controller_journal_epoch(e->j));
	proto_frame_free_message(f);
	assert_gate_sent_nothing(e);
	/* a kick while it is in flight sends nothing more: the journal would return the same
	 * rows */
	assert_int_equal(controller_sync_session_kick(e->s), 0);
	assert_gate_sent_nothing(e);

	/* the ack advances the journal's acknowledged sequence, and the next batch goes */
	assert_int_equal(send_ack(e, CITYPASS__STREAM__STATISTICS, 2), 0);
	assert_int_equal(controller_journal_stats(e->j, &js), 0);
	assert_int_equal(js.stat_acked, 2);
	assert_int_equal(js.stat_pending, 1);
	controller_sync_session_status(e->s, &st);
	assert_int_equal(st.stats_acked, 2);
	f = gate_sent(e);
	assert_non_null(f);
	assert_int_equal(f->event_batch->n_stats, 1);
	assert_int_equal(f->event_batch->stats[0]->seq, 3);
	proto_frame_free_message(f);
	assert_gate_sent_nothing(e);

	/* an old ack (a duplicate of the first) moves nothing back, and releases nothing: the
	 * batch of row 3 stays in flight, row 3 stays in the journal */
	assert_int_equal(send_ack(e, CITYPASS__STREAM__STATISTICS, 2), 0);
	assert_int_equal(send_ack(e, CITYPASS__STREAM__STATISTICS, 1), 0);
	assert_int_equal(controller_sync_session_state(e->s), CONTROLLER_SYNC_SESSION_READY);
	assert_int_equal(controller_journal_stats(e->j, &js), 0);
	assert_int_equal(js.stat_pending, 1);
	controller_sync_session_status(e->s, &st);
	assert_int_equal(st.stats_acked, 2);
	append_stats(e, 1); /* row 4 waits behind the batch in flight */
	assert_int_equal(controller_sync_session_kick(e->s), 0);
	assert_gate_sent_nothing(e);

	/* its own ack releases it: row 4 goes */
	assert_int_equal(send_ack(e, CITYPASS__STREAM__STATISTICS, 3), 0);
	assert_int_equal(controller_journal_stats(e->j, &js), 0);
	assert_int_equal(js.stat_acked, 3);
	f = gate_sent(e);
	assert_non_null(f);
	assert_int_equal(f->event_batch->n_stats, 1);
	assert_int_equal(f->event_batch->stats[0]->seq, 4);
	proto_frame_free_message(f);
}

static void test_ack_of_an_impossible_epoch_ends(void **state)
{
	struct env *e = *state;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__EventAck a = CITYPASS__EVENT_ACK__INIT;
	struct controller_journal_stats js;

	append_stats(e, 1);
	welcome(e, 0);
	Citypass__Frame *out = gate_sent(e);
	assert_non_null(out);
	proto_frame_free_message(out);
	/* epochs are the journal's signed 64-bit ids: above INT64_MAX names none */
	a.stream = CITYPASS__STREAM__STATISTICS;
	a.acked_seq = 1;
	a.journal_epoch = (uint64_t)INT64_MAX + 1;
	f.body_case = CITYPASS__FRAME__BODY_EVENT_ACK;
	f.event_ack = &a;
	assert_int_equal(server_sends(e, &f), -1);
	assert_ended(e, "ack of journal epoch");
	assert_int_equal(controller_journal_stats(e->j, &js), 0);
	assert_int_equal(js.stat_acked, 0);
}

/* --- bad input and the server's own error ----------------------------------------------- */

static void test_malformed_frame_ends(void **state)
{
	struct env *e = *state;
	/* a length prefix of 3, then three bytes that are no protobuf message (field 0) */
	static const uint8_t junk[] = {0, 0, 0, 3, 0x00, 0xff, 0xff};

	welcome(e, 0);
	assert_int_equal(controller_sync_session_feed(e->s, junk, sizeof(junk)), -1);
	assert_ended(e, "bad input from server: ");
	/* the reason names the decoder's cause */
	assert_non_null(strstr(controller_sync_session_why(e->s),
	                       proto_strerror(PROTO_ERR_FRAME_MALFORMED)));
}

static void test_oversized_frame_ends(void **state)
{
	struct env *e = *state;
	/* a length prefix above the 1 MiB limit ends it before any payload arrives */
	static const uint8_t prefix[] = {0x7f, 0, 0, 0};

	welcome(e, 0);
	assert_int_equal(controller_sync_session_feed(e->s, prefix, sizeof(prefix)), -1);
	assert_ended(e, proto_strerror(PROTO_ERR_FRAME_TOO_BIG));
}

static void test_server_error_ends(void **state)
{
	struct env *e = *state;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__Error err = CITYPASS__ERROR__INIT;
	err.code = CITYPASS__ERROR__CODE__BAD_REQUEST;
	err.message = (char *)"you sent nonsense";
	f.body_case = CITYPASS__FRAME__BODY_ERROR;
	f.error = &err;

	welcome(e, 0);
	assert_int_equal(server_sends(e, &f), -1);
	assert_ended(e, "you sent nonsense");
	assert_int_equal(controller_sync_session_healthy(e->s), 0); /* backs off as a failure */

	/* a server shutting down is no failure of this gate: the back-off starts again low */
	controller_sync_session_reset(e->s);
	welcome(e, 0);
	err.code = CITYPASS__ERROR__CODE__SHUTTING_DOWN;
	assert_int_equal(server_sends(e, &f), -1);
	assert_ended(e, "server error");
	assert_int_equal(controller_sync_session_healthy(e->s), 1);
}

/* --- keys and CAs routed to their callbacks -------------------------------------------- */

static void test_welcome_routes_keys_and_cas(void **state)
{
	struct env *e = *state;
	uint8_t master[16], text[] = "rotation 1", sig1[8] = {1}, sig2[8] = {2};
	uint8_t cross[] = "cross-der", ca[] = "ca-der";
	memset(master, 0xa5, sizeof(master));

	Citypass__CardKeys ck = CITYPASS__CARD_KEYS__INIT;
	ck.sector = SECTOR;
	ck.version = 3;
	ck.master = (ProtobufCBinaryData){sizeof(master), master};
	Citypass__KeyStatement ks = CITYPASS__KEY_STATEMENT__INIT;
	ks.text = (ProtobufCBinaryData){sizeof(text) - 1, text};
	ks.old_signature = (ProtobufCBinaryData){sizeof(sig1), sig1};
	ks.new_signature = (ProtobufCBinaryData){sizeof(sig2), sig2};
	Citypass__KeyStatement *kss[1] = {&ks};
	Citypass__KeyChain kc = CITYPASS__KEY_CHAIN__INIT;
	kc.n_statements = 1;
	kc.statements = kss;
	Citypass__CaAnnouncement an = CITYPASS__CA_ANNOUNCEMENT__INIT;
	an.cross_certificate = (ProtobufCBinaryData){sizeof(cross) - 1, cross};
	an.ca_certificate = (ProtobufCBinaryData){sizeof(ca) - 1, ca};
	Citypass__CaAnnouncement *ans[1] = {&an};
	Citypass__CaChain cc = CITYPASS__CA_CHAIN__INIT;
	cc.n_announcements = 1;
	cc.announcements = ans;
	Citypass__Welcome w = CITYPASS__WELCOME__INIT;
	w.server_time = (int64_t)time(NULL);
	w.server_version = (char *)"test";
	w.card_keys = &ck;
	w.key_chain = &kc;
	w.ca_chain = &cc;

	(void)begin_hello(e);
	assert_int_equal(send_welcome(e, &w), 0);
	assert_int_equal(e->rec.card_keys, 1);
	assert_int_equal(e->rec.card_version, 3);
	assert_memory_equal(e->rec.master, master, 16);
	assert_int_equal(e->rec.key_chains, 1);
	assert_int_equal(e->rec.statements, 1);
	assert_int_equal(e->rec.first_text_len, sizeof(text) - 1);
	assert_memory_equal(e->rec.first_text, text, sizeof(text) - 1);
	assert_int_equal(e->rec.ca_chains, 1);
	assert_int_equal(e->rec.announcements, 1);
	assert_int_equal(e->rec.first_cross_len, sizeof(cross) - 1);
	assert_memory_equal(e->rec.first_cross, cross, sizeof(cross) - 1);

	/* pushed after a rotation, outside Welcome: the same callbacks */
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	f.body_case = CITYPASS__FRAME__BODY_KEY_CHAIN;
	f.key_chain = &kc;
	assert_int_equal(server_sends(e, &f), 0);
	assert_int_equal(e->rec.key_chains, 2);
	ck.version = 4;
	f.body_case = CITYPASS__FRAME__BODY_CARD_KEYS;
	f.card_keys = &ck;
	assert_int_equal(server_sends(e, &f), 0);
	assert_int_equal(e->rec.card_keys, 2);
	assert_int_equal(e->rec.card_version, 4);

	/* another sector's keys are bad input: never handed to the gate */
	ck.sector = SECTOR + 1;
	assert_int_equal(server_sends(e, &f), -1);
	assert_ended(e, "card keys of sector 8");
	assert_int_equal(e->rec.card_keys, 2);
}

/* --- shared anti-passback grants ------------------------------------------------------- */

static void test_grant_not_asked_for_ends(void **state)
{
	struct env *e = *state;
	uint8_t key[PROTO_LIST_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__PassbackGrant g = CITYPASS__PASSBACK_GRANT__INIT;
	g.key = (ProtobufCBinaryData){sizeof(key), key};
	f.body_case = CITYPASS__FRAME__BODY_PASSBACK_GRANT;
	f.passback_grant = &g;

	welcome(e, CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE);
	/* this gate does not share grants: it sends none and takes none */
	assert_int_equal(controller_sync_session_share_grants(e->s, &key, 1), 0);
	assert_gate_sent_nothing(e);
	assert_int_equal(server_sends(e, &f), -1);
	assert_ended(e, "a shared grant this gate did not ask for");
}

static void test_grants_shared_both_ways(void **state)
{
	struct env *e = *state;
	uint8_t key[PROTO_LIST_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct controller_sync_status st;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__PassbackGrant g = CITYPASS__PASSBACK_GRANT__INIT;
	g.key = (ProtobufCBinaryData){sizeof(key), key};
	f.body_case = CITYPASS__FRAME__BODY_PASSBACK_GRANT;
	f.passback_grant = &g;

	welcome(e, CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE);
	assert_int_equal(controller_sync_session_share_grants(e->s, &key, 1), 0);
	Citypass__Frame *out = gate_sent(e);
	assert_non_null(out);
	assert_int_equal(out->body_case, CITYPASS__FRAME__BODY_PASSBACK_GRANT);
	assert_memory_equal(out->passback_grant->key.data, key, sizeof(key));
	proto_frame_free_message(out);
	assert_int_equal(server_sends(e, &f), 0);
	controller_sync_session_status(e->s, &st);
	assert_int_equal(st.grants_shared, 1);
	assert_int_equal(st.grants_heard, 1);
	int64_t at = 0; /* remembered at this gate's time */
	assert_int_equal(controller_journal_last_grant(e->j, key, &at), 0);
	assert_true(at > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_hello_then_welcome, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_frame_before_welcome_ends, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_update_assembled_and_installed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_update_chunk_out_of_order_ends, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_update_larger_than_announced_ends, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_refused_update_wants_a_snapshot, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_batches_and_acks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_ack_of_an_impossible_epoch_ends, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_malformed_frame_ends, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_oversized_frame_ends, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_server_error_ends, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_welcome_routes_keys_and_cas, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_grant_not_asked_for_ends, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_grants_shared_both_ways, setup_passback,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
