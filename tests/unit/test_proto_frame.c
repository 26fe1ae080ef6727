/*
 * test_proto_frame.c — framing of the sync link (proto/frame.h): round trips, incremental
 * feeding, refusal of hostile length prefixes, and every protocol rule of
 * proto_frame_validate(), each checked both accepted and refused, and on the wire.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/error.h"
#include "proto/frame.h"

/* ---- sample messages --------------------------------------------------------------- */

static uint8_t chunk_data[PROTO_FRAME_LIST_CHUNK + 1];
static uint8_t sig_data[80];
static uint8_t pseudo_a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static uint8_t pseudo_b[8] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87};

/* Owns every sub-message of one sample frame, so a test can break a field and re-check. */
struct sample {
	Citypass__Frame frame;
	Citypass__Hello hello;
	Citypass__ListHeld held[2];
	Citypass__ListHeld *held_ptrs[2];
	Citypass__Welcome welcome;
	Citypass__ListUpdate update;
	Citypass__ListPublished published;
	Citypass__EventBatch batch;
	Citypass__StatEvent stats[2];
	Citypass__StatEvent *stat_ptrs[2];
	Citypass__ConsumptionEvent cons[2];
	Citypass__ConsumptionEvent *cons_ptrs[2];
	Citypass__EventAck ack;
	Citypass__Error error;
};

enum sample_kind {
	S_HELLO,
	S_WELCOME,
	S_SNAPSHOT,
	S_DELTA,
	S_PUBLISHED,
	S_STATS,
	S_CONSUMPTION,
	S_ACK,
	S_ERROR,
	S_COUNT
};

static Citypass__Frame *sample_make(struct sample *s, enum sample_kind kind)
{
	memset(s, 0, sizeof(*s));
	citypass__frame__init(&s->frame);
	switch (kind) {
	case S_HELLO:
		citypass__hello__init(&s->hello);
		s->hello.device_id = "gate-0042.example.org";
		s->hello.software_version = "citypass 1.0";
		s->hello.stats_acked_seq = 123456789012ull;
		s->hello.consumption_acked_seq = 77;
		for (int i = 0; i < 2; i++) {
			citypass__list_held__init(&s->held[i]);
			s->held[i].sector = (uint32_t)(10 + i);
			s->held[i].version = (uint64_t)(1000 * (i + 1));
			s->held_ptrs[i] = &s->held[i];
		}
		s->hello.n_lists = 2;
		s->hello.lists = s->held_ptrs;
		s->frame.body_case = CITYPASS__FRAME__BODY_HELLO;
		s->frame.hello = &s->hello;
		break;
	case S_WELCOME:
		citypass__welcome__init(&s->welcome);
		s->welcome.server_time = 1735689600;
		s->welcome.server_version = "citypass-server 1.0";
		s->frame.body_case = CITYPASS__FRAME__BODY_WELCOME;
		s->frame.welcome = &s->welcome;
		break;
	case S_SNAPSHOT:
	case S_DELTA:
		citypass__list_update__init(&s->update);
		s->update.sector = 7;
		s->update.kind = kind == S_SNAPSHOT ? CITYPASS__LIST_UPDATE__KIND__SNAPSHOT
		                                    : CITYPASS__LIST_UPDATE__KIND__DELTA;
		s->update.base_version = kind == S_SNAPSHOT ? 0 : 41;
		s->update.version = 42;
		s->update.chunk_index = 2;
		s->update.chunk_count = 3;
		s->update.total_size = 3000;
		s->update.data.data = chunk_data;
		s->update.data.len = 1000;
		s->update.signature.data = sig_data;
		s->update.signature.len = 71;
		s->frame.body_case = CITYPASS__FRAME__BODY_LIST_UPDATE;
		s->frame.list_update = &s->update;
		break;
	case S_PUBLISHED:
		citypass__list_published__init(&s->published);
		s->published.sector = 3;
		s->published.version = 99;
		s->frame.body_case = CITYPASS__FRAME__BODY_LIST_PUBLISHED;
		s->frame.list_published = &s->published;
		break;
	case S_STATS:
		citypass__event_batch__init(&s->batch);
		s->batch.stream = CITYPASS__STREAM__STATISTICS;
		for (int i = 0; i < 2; i++) {
			citypass__stat_event__init(&s->stats[i]);
			s->stats[i].seq = (uint64_t)(500 + i);
			s->stats[i].site = 1;
			s->stats[i].gate = (uint32_t)(2 + i);
			s->stats[i].sector = 7;
			s->stats[i].product = 12;
			s->stats[i].outcome =
			        i ? CITYPASS__OUTCOME__REFUSED : CITYPASS__OUTCOME__GRANTED;
			s->stats[i].reason = (uint32_t)i;
			s->stats[i].quarter_hour = 1735689600 + 900 * i;
			s->stat_ptrs[i] = &s->stats[i];
		}
		s->batch.n_stats = 2;
		s->batch.stats = s->stat_ptrs;
		s->frame.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
		s->frame.event_batch = &s->batch;
		break;
	case S_CONSUMPTION:
		citypass__event_batch__init(&s->batch);
		s->batch.stream = CITYPASS__STREAM__CONSUMPTION;
		for (int i = 0; i < 2; i++) {
			citypass__consumption_event__init(&s->cons[i]);
			s->cons[i].seq = (uint64_t)(900 + i);
			s->cons[i].sector = 7;
			s->cons[i].pseudonym.data = i ? pseudo_b : pseudo_a;
			s->cons[i].pseudonym.len = 8;
			s->cons[i].product = 12;
			s->cons[i].count = (uint32_t)(1 + i);
			s->cons[i].period = 202501;
			s->cons_ptrs[i] = &s->cons[i];
		}
		s->batch.n_consumption = 2;
		s->batch.consumption = s->cons_ptrs;
		s->frame.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
		s->frame.event_batch = &s->batch;
		break;
	case S_ACK:
		citypass__event_ack__init(&s->ack);
		s->ack.stream = CITYPASS__STREAM__CONSUMPTION;
		s->ack.acked_seq = 901;
		s->frame.body_case = CITYPASS__FRAME__BODY_EVENT_ACK;
		s->frame.event_ack = &s->ack;
		break;
	case S_ERROR:
	default:
		citypass__error__init(&s->error);
		s->error.code = CITYPASS__ERROR__CODE__UNKNOWN_SECTOR;
		s->error.message = "sector 99 is not served here";
		s->frame.body_case = CITYPASS__FRAME__BODY_ERROR;
		s->frame.error = &s->error;
		break;
	}
	return &s->frame;
}

static int setup_data(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunk_data); i++)
		chunk_data[i] = (uint8_t)(i * 31 + 7);
	for (size_t i = 0; i < sizeof(sig_data); i++)
		sig_data[i] = (uint8_t)(0x30 + i);
	return 0;
}

/* Encodes msg into a fresh buffer; the length must be exactly proto_frame_encoded_size(). */
static uint8_t *encode_alloc(const Citypass__Frame *msg, size_t *len)
{
	const size_t size = proto_frame_encoded_size(msg);
	uint8_t *buf = malloc(size);
	assert_non_null(buf);
	const long n = proto_frame_encode(msg, 0, buf, size);
	assert_int_equal(n, (long)size);
	*len = size;
	return buf;
}

/* Packs msg with a length prefix but without validating it, as a hostile peer would. */
static uint8_t *pack_raw(const Citypass__Frame *msg, size_t *len)
{
	const size_t n = citypass__frame__get_packed_size(msg);
	uint8_t *buf = malloc(n + 4);
	assert_non_null(buf);
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	assert_int_equal(citypass__frame__pack(msg, buf + 4), n);
	*len = n + 4;
	return buf;
}

static Citypass__Frame *roundtrip(const Citypass__Frame *msg)
{
	size_t len;
	uint8_t *buf = encode_alloc(msg, &len);
	Citypass__Frame *out = (Citypass__Frame *)0x1;
	assert_int_equal(proto_frame_decode(buf, len, 0, &out), 1);
	assert_non_null(out);
	assert_int_equal(out->body_case, msg->body_case);
	free(buf);
	return out;
}

static void assert_bytes_equal(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
	assert_int_equal(a->len, b->len);
	if (a->len)
		assert_memory_equal(a->data, b->data, a->len);
}

/* ---- round trips ------------------------------------------------------------------- */

static void test_roundtrip_hello(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, S_HELLO));
	const Citypass__Hello *h = out->hello;
	assert_string_equal(h->device_id, s.hello.device_id);
	assert_string_equal(h->software_version, s.hello.software_version);
	assert_true(h->stats_acked_seq == s.hello.stats_acked_seq);
	assert_true(h->consumption_acked_seq == s.hello.consumption_acked_seq);
	assert_int_equal(h->n_lists, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(h->lists[i]->sector, s.held[i].sector);
		assert_true(h->lists[i]->version == s.held[i].version);
	}
	proto_frame_free_message(out);
}

static void test_roundtrip_welcome(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, S_WELCOME));
	assert_true(out->welcome->server_time == s.welcome.server_time);
	assert_string_equal(out->welcome->server_version, s.welcome.server_version);
	proto_frame_free_message(out);
}

static void check_list_update_roundtrip(enum sample_kind kind)
{
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, kind));
	const Citypass__ListUpdate *u = out->list_update;
	assert_int_equal(u->sector, s.update.sector);
	assert_int_equal(u->kind, s.update.kind);
	assert_true(u->base_version == s.update.base_version);
	assert_true(u->version == s.update.version);
	assert_int_equal(u->chunk_index, s.update.chunk_index);
	assert_int_equal(u->chunk_count, s.update.chunk_count);
	assert_true(u->total_size == s.update.total_size);
	assert_bytes_equal(&u->data, &s.update.data);
	assert_bytes_equal(&u->signature, &s.update.signature);
	proto_frame_free_message(out);
}

static void test_roundtrip_list_update_snapshot(void **state)
{
	(void)state;
	check_list_update_roundtrip(S_SNAPSHOT);
}

static void test_roundtrip_list_update_delta(void **state)
{
	(void)state;
	check_list_update_roundtrip(S_DELTA);
}

static void test_roundtrip_list_published(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, S_PUBLISHED));
	assert_int_equal(out->list_published->sector, s.published.sector);
	assert_true(out->list_published->version == s.published.version);
	proto_frame_free_message(out);
}

static void test_roundtrip_event_batch_statistics(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, S_STATS));
	const Citypass__EventBatch *b = out->event_batch;
	assert_int_equal(b->stream, CITYPASS__STREAM__STATISTICS);
	assert_int_equal(b->n_consumption, 0);
	assert_int_equal(b->n_stats, 2);
	for (size_t i = 0; i < 2; i++) {
		const Citypass__StatEvent *e = b->stats[i];
		assert_true(e->seq == s.stats[i].seq);
		assert_int_equal(e->site, s.stats[i].site);
		assert_int_equal(e->gate, s.stats[i].gate);
		assert_int_equal(e->sector, s.stats[i].sector);
		assert_int_equal(e->product, s.stats[i].product);
		assert_int_equal(e->outcome, s.stats[i].outcome);
		assert_int_equal(e->reason, s.stats[i].reason);
		assert_true(e->quarter_hour == s.stats[i].quarter_hour);
	}
	proto_frame_free_message(out);
}

static void test_roundtrip_event_batch_consumption(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, S_CONSUMPTION));
	const Citypass__EventBatch *b = out->event_batch;
	assert_int_equal(b->stream, CITYPASS__STREAM__CONSUMPTION);
	assert_int_equal(b->n_stats, 0);
	assert_int_equal(b->n_consumption, 2);
	for (size_t i = 0; i < 2; i++) {
		const Citypass__ConsumptionEvent *e = b->consumption[i];
		assert_true(e->seq == s.cons[i].seq);
		assert_int_equal(e->sector, s.cons[i].sector);
		assert_bytes_equal(&e->pseudonym, &s.cons[i].pseudonym);
		assert_int_equal(e->product, s.cons[i].product);
		assert_int_equal(e->count, s.cons[i].count);
		assert_int_equal(e->period, s.cons[i].period);
	}
	proto_frame_free_message(out);
}

static void test_roundtrip_event_ack(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, S_ACK));
	assert_int_equal(out->event_ack->stream, s.ack.stream);
	assert_true(out->event_ack->acked_seq == s.ack.acked_seq);
	proto_frame_free_message(out);
}

static void test_roundtrip_error(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *out = roundtrip(sample_make(&s, S_ERROR));
	assert_int_equal(out->error->code, s.error.code);
	assert_string_equal(out->error->message, s.error.message);
	proto_frame_free_message(out);
}

static void test_encode_writes_big_endian_prefix(void **state)
{
	(void)state;
	struct sample s;
	const Citypass__Frame *msg = sample_make(&s, S_SNAPSHOT);
	size_t len;
	uint8_t *buf = encode_alloc(msg, &len);
	const size_t payload = len - 4;
	assert_true(payload > 255); /* so that more than one prefix byte is exercised */
	assert_int_equal(buf[0], (payload >> 24) & 0xff);
	assert_int_equal(buf[1], (payload >> 16) & 0xff);
	assert_int_equal(buf[2], (payload >> 8) & 0xff);
	assert_int_equal(buf[3], payload & 0xff);
	assert_int_equal(payload, citypass__frame__get_packed_size(msg));
	free(buf);
}

/* ---- incremental decoding ---------------------------------------------------------- */

/* All sample frames, back to back, and the offset where each one ends. */
struct stream {
	uint8_t *buf;
	size_t len;
	size_t ends[S_COUNT];
	Citypass__Frame__BodyCase cases[S_COUNT];
};

static void stream_build(struct stream *st)
{
	memset(st, 0, sizeof(*st));
	for (int k = 0; k < S_COUNT; k++) {
		struct sample s;
		const Citypass__Frame *msg = sample_make(&s, (enum sample_kind)k);
		size_t n;
		uint8_t *one = encode_alloc(msg, &n);
		st->buf = realloc(st->buf, st->len + n);
		assert_non_null(st->buf);
		memcpy(st->buf + st->len, one, n);
		free(one);
		st->len += n;
		st->ends[k] = st->len;
		st->cases[k] = msg->body_case;
	}
}

static void test_feed_byte_by_byte(void **state)
{
	(void)state;
	struct stream st;
	stream_build(&st);
	struct proto_frame_decoder *dec = proto_frame_decoder_new(0);
	assert_non_null(dec);

	int got = 0;
	for (size_t i = 0; i < st.len; i++) {
		assert_int_equal(proto_frame_decoder_feed(dec, st.buf + i, 1), 0);
		Citypass__Frame *msg = NULL;
		const int rc = proto_frame_next(dec, &msg);
		if (i + 1 == st.ends[got]) {
			/* a message comes out exactly when its last byte arrives */
			assert_int_equal(rc, 1);
			assert_int_equal(msg->body_case, st.cases[got]);
			proto_frame_free_message(msg);
			got++;
			assert_int_equal(proto_frame_decoder_pending(dec), 0);
		} else {
			assert_int_equal(rc, 0);
			assert_null(msg);
			assert_int_equal(proto_frame_decoder_pending(dec),
			                 i + 1 - (got ? st.ends[got - 1] : 0));
		}
	}
	assert_int_equal(got, S_COUNT);
	proto_frame_decoder_free(dec);
	free(st.buf);
}

static void test_feed_several_frames_at_once(void **state)
{
	(void)state;
	struct stream st;
	stream_build(&st);
	struct proto_frame_decoder *dec = proto_frame_decoder_new(0);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, st.buf, st.len), 0);
	assert_int_equal(proto_frame_decoder_pending(dec), st.len);

	for (int k = 0; k < S_COUNT; k++) {
		Citypass__Frame *msg = NULL;
		assert_int_equal(proto_frame_next(dec, &msg), 1);
		assert_int_equal(msg->body_case, st.cases[k]);
		proto_frame_free_message(msg);
		assert_int_equal(proto_frame_decoder_pending(dec), st.len - st.ends[k]);
	}
	Citypass__Frame *msg = (Citypass__Frame *)0x1;
	assert_int_equal(proto_frame_next(dec, &msg), 0);
	assert_null(msg);
	proto_frame_decoder_free(dec);
	free(st.buf);
}

/* Every split point of one frame, including inside the length prefix. */
static void test_frame_split_across_feeds(void **state)
{
	(void)state;
	struct sample s;
	size_t len;
	uint8_t *buf = encode_alloc(sample_make(&s, S_HELLO), &len);
	for (size_t cut = 0; cut <= len; cut++) {
		struct proto_frame_decoder *dec = proto_frame_decoder_new(0);
		assert_non_null(dec);
		Citypass__Frame *msg = NULL;
		assert_int_equal(proto_frame_decoder_feed(dec, buf, cut), 0);
		assert_int_equal(proto_frame_next(dec, &msg), cut == len ? 1 : 0);
		if (cut < len) {
			assert_int_equal(proto_frame_decoder_feed(dec, buf + cut, len - cut), 0);
			assert_int_equal(proto_frame_next(dec, &msg), 1);
		}
		assert_string_equal(msg->hello->device_id, s.hello.device_id);
		proto_frame_free_message(msg);
		assert_int_equal(proto_frame_next(dec, &msg), 0);
		proto_frame_decoder_free(dec);
	}
	free(buf);
}

/* A full 256 KiB chunk arriving in uneven pieces, with the next frame glued to its tail. */
static void test_large_frame_in_pieces(void **state)
{
	(void)state;
	struct sample s;
	Citypass__Frame *msg = sample_make(&s, S_SNAPSHOT);
	s.update.data.len = PROTO_FRAME_LIST_CHUNK;
	s.update.total_size = 3 * PROTO_FRAME_LIST_CHUNK;
	size_t big_len, small_len;
	uint8_t *big = encode_alloc(msg, &big_len);
	uint8_t *small = encode_alloc(sample_make(&s, S_ACK), &small_len);
	uint8_t *all = malloc(big_len + small_len);
	assert_non_null(all);
	memcpy(all, big, big_len);
	memcpy(all + big_len, small, small_len);

	struct proto_frame_decoder *dec = proto_frame_decoder_new(0);
	assert_non_null(dec);
	size_t off = 0, piece = 1;
	int got = 0;
	while (off < big_len + small_len) {
		size_t n = piece;
		if (n > big_len + small_len - off)
			n = big_len + small_len - off;
		assert_int_equal(proto_frame_decoder_feed(dec, all + off, n), 0);
		off += n;
		piece = piece * 3 + 1;
		Citypass__Frame *out = NULL;
		int rc;
		while ((rc = proto_frame_next(dec, &out)) == 1) {
			if (got == 0)
				assert_memory_equal(out->list_update->data.data, chunk_data,
				                    PROTO_FRAME_LIST_CHUNK);
			else
				assert_int_equal(out->body_case, CITYPASS__FRAME__BODY_EVENT_ACK);
			proto_frame_free_message(out);
			got++;
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(got, 2);
	proto_frame_decoder_free(dec);
	free(all);
	free(big);
	free(small);
}

/* ---- hostile length prefixes ------------------------------------------------------- */

static void check_prefix_refused(size_t max, uint32_t prefix)
{
	uint8_t buf[4 + 4096];
	buf[0] = (uint8_t)(prefix >> 24);
	buf[1] = (uint8_t)(prefix >> 16);
	buf[2] = (uint8_t)(prefix >> 8);
	buf[3] = (uint8_t)prefix;
	memset(buf + 4, 0x0a, sizeof(buf) - 4);

	struct proto_frame_decoder *dec = proto_frame_decoder_new(max);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, buf, sizeof(buf)), 0);
	/* nothing after the refused prefix was buffered */
	assert_true(proto_frame_decoder_pending(dec) <= 4);
	assert_int_equal(proto_frame_decoder_feed(dec, buf + 4, sizeof(buf) - 4), 0);
	assert_true(proto_frame_decoder_pending(dec) <= 4);
	Citypass__Frame *msg = (Citypass__Frame *)0x1;
	assert_int_equal(proto_frame_next(dec, &msg), PROTO_ERR_FRAME_TOO_BIG);
	assert_null(msg);
	proto_frame_decoder_free(dec);

	/* the one-shot decoder refuses it from the prefix alone */
	assert_int_equal(proto_frame_decode(buf, 4, max, &msg), PROTO_ERR_FRAME_TOO_BIG);
	assert_null(msg);
}

static void test_prefix_all_ones_refused(void **state)
{
	(void)state;
	check_prefix_refused(PROTO_FRAME_DEFAULT_MAX, 0xffffffffu);
	check_prefix_refused(0, 0xffffffffu);
}

static void test_prefix_max_plus_one_refused(void **state)
{
	(void)state;
	check_prefix_refused(PROTO_FRAME_DEFAULT_MAX, PROTO_FRAME_DEFAULT_MAX + 1);
	check_prefix_refused(0, PROTO_FRAME_DEFAULT_MAX + 1);
	check_prefix_refused(1000, 1001);
}

/* A payload of exactly max bytes passes; one byte less of allowance refuses it. */
static void test_payload_at_max_accepted(void **state)
{
	(void)state;
	struct sample s;
	size_t len;
	uint8_t *buf = encode_alloc(sample_make(&s, S_HELLO), &len);
	const size_t payload = len - 4;

	struct proto_frame_decoder *dec = proto_frame_decoder_new(payload);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, buf, len), 0);
	Citypass__Frame *msg = NULL;
	assert_int_equal(proto_frame_next(dec, &msg), 1);
	proto_frame_free_message(msg);
	proto_frame_decoder_free(dec);

	dec = proto_frame_decoder_new(payload - 1);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, buf, len), 0);
	assert_int_equal(proto_frame_next(dec, &msg), PROTO_ERR_FRAME_TOO_BIG);
	proto_frame_decoder_free(dec);

	assert_int_equal(proto_frame_decode(buf, len, payload, &msg), 1);
	proto_frame_free_message(msg);
	assert_int_equal(proto_frame_decode(buf, len, payload - 1, &msg), PROTO_ERR_FRAME_TOO_BIG);

	/* the sender side applies the same limit */
	uint8_t out[512];
	assert_true(len <= sizeof(out));
	assert_int_equal(proto_frame_encode(&s.frame, payload, out, sizeof(out)), (long)len);
	assert_int_equal(proto_frame_encode(&s.frame, payload - 1, out, sizeof(out)),
	                 PROTO_ERR_FRAME_TOO_BIG);
	free(buf);
}

/* ---- malformed frames -------------------------------------------------------------- */

/* Feeds a good frame then bad bytes: the good one comes out, then the error. */
static void check_stream_error(const uint8_t *bad, size_t bad_len, int want)
{
	struct sample s;
	size_t good_len;
	uint8_t *good = encode_alloc(sample_make(&s, S_WELCOME), &good_len);
	struct proto_frame_decoder *dec = proto_frame_decoder_new(0);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, good, good_len), 0);
	assert_int_equal(proto_frame_decoder_feed(dec, bad, bad_len), 0);

	Citypass__Frame *msg = NULL;
	assert_int_equal(proto_frame_next(dec, &msg), 1);
	assert_int_equal(msg->body_case, CITYPASS__FRAME__BODY_WELCOME);
	proto_frame_free_message(msg);
	msg = (Citypass__Frame *)0x1;
	assert_int_equal(proto_frame_next(dec, &msg), want);
	assert_null(msg);
	proto_frame_decoder_free(dec);

	assert_int_equal(proto_frame_decode(bad, bad_len, 0, &msg), want);
	assert_null(msg);
	free(good);
}

static void test_empty_frame(void **state)
{
	(void)state;
	static const uint8_t empty[] = {0, 0, 0, 0};
	check_stream_error(empty, sizeof(empty), PROTO_ERR_FRAME_EMPTY);
}

static void test_garbage_payload_malformed(void **state)
{
	(void)state;
	/* field 31 with wire type 7, which does not exist */
	static const uint8_t bad_wire_type[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
	check_stream_error(bad_wire_type, sizeof(bad_wire_type), PROTO_ERR_FRAME_MALFORMED);
	/* hello body claims 16 bytes but the payload ends after 2 */
	static const uint8_t truncated_body[] = {0, 0, 0, 4, 0x0a, 0x10, 0x0a, 0x01};
	check_stream_error(truncated_body, sizeof(truncated_body), PROTO_ERR_FRAME_MALFORMED);
	/* a varint that never ends */
	static const uint8_t endless_varint[] = {0, 0, 0, 5, 0x08, 0x80, 0x80, 0x80, 0x80};
	check_stream_error(endless_varint, sizeof(endless_varint), PROTO_ERR_FRAME_MALFORMED);
}

/*
 * Field number 0 and numbers above 2^29 - 1 are not protobuf, even when written in a form
 * that protobuf-c lets through as an unknown field: an event ack with such a field beside
 * its body, and inside its body.
 */
static void test_invalid_field_numbers_malformed(void **state)
{
	(void)state;
	static const uint8_t zero_top[] = {0, 0, 0, 7, 0x32, 0x02, 0x08, 0x01, 0x80, 0x00, 0x00};
	check_stream_error(zero_top, sizeof(zero_top), PROTO_ERR_FRAME_MALFORMED);
	static const uint8_t zero_nested[] = {0, 0, 0, 7, 0x32, 0x05, 0x08, 0x01, 0x80, 0x00, 0x00};
	check_stream_error(zero_nested, sizeof(zero_nested), PROTO_ERR_FRAME_MALFORMED);
	static const uint8_t huge[] = {0,    0,    0,    10,   0x32, 0x02, 0x08,
	                               0x01, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00};
	check_stream_error(huge, sizeof(huge), PROTO_ERR_FRAME_MALFORMED);

	/* the largest valid field number is merely unknown, and ignored */
	static const uint8_t largest[] = {0,    0,    0,    10,   0x32, 0x02, 0x08,
	                                  0x01, 0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00};
	Citypass__Frame *msg = NULL;
	assert_int_equal(proto_frame_decode(largest, sizeof(largest), 0, &msg), 1);
	assert_int_equal(msg->event_ack->stream, CITYPASS__STREAM__STATISTICS);
	proto_frame_free_message(msg);
}

static void test_frame_without_body(void **state)
{
	(void)state;
	/* only an unknown field 8 (varint 1): valid protobuf, none of the bodies */
	static const uint8_t unknown_only[] = {0, 0, 0, 2, 0x40, 0x01};
	check_stream_error(unknown_only, sizeof(unknown_only), PROTO_ERR_FRAME_NO_BODY);

	Citypass__Frame empty = CITYPASS__FRAME__INIT;
	assert_int_equal(proto_frame_validate(&empty), PROTO_ERR_FRAME_NO_BODY);
	uint8_t buf[64];
	assert_int_equal(proto_frame_encode(&empty, 0, buf, sizeof(buf)), PROTO_ERR_FRAME_NO_BODY);

	/* a body case without its message packs to nothing, so it must not pass either */
	Citypass__Frame dangling = CITYPASS__FRAME__INIT;
	dangling.body_case = CITYPASS__FRAME__BODY_WELCOME;
	assert_int_equal(proto_frame_validate(&dangling), PROTO_ERR_FRAME_NO_BODY);
	assert_int_equal(proto_frame_encode(&dangling, 0, buf, sizeof(buf)),
	                 PROTO_ERR_FRAME_NO_BODY);

	/* an empty body is still a body */
	Citypass__Welcome w = CITYPASS__WELCOME__INIT;
	dangling.welcome = &w;
	assert_int_equal(proto_frame_validate(&dangling), 0);
	assert_int_equal(proto_frame_encode(&dangling, 0, buf, sizeof(buf)), 6);
}

static void test_poisoned_decoder_stays_poisoned(void **state)
{
	(void)state;
	static const uint8_t garbage[] = {0, 0, 0, 2, 0xff, 0xff};
	struct sample s;
	size_t good_len;
	uint8_t *good = encode_alloc(sample_make(&s, S_ACK), &good_len);

	struct proto_frame_decoder *dec = proto_frame_decoder_new(0);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, garbage, sizeof(garbage)), 0);
	Citypass__Frame *msg = NULL;
	assert_int_equal(proto_frame_next(dec, &msg), PROTO_ERR_FRAME_MALFORMED);
	for (int i = 0; i < 3; i++) {
		/* good frames after the error do not bring the stream back in step */
		assert_int_equal(proto_frame_decoder_feed(dec, good, good_len), 0);
		msg = (Citypass__Frame *)0x1;
		assert_int_equal(proto_frame_next(dec, &msg), PROTO_ERR_FRAME_MALFORMED);
		assert_null(msg);
	}
	proto_frame_decoder_free(dec);

	/* the same for an error found in the prefix */
	static const uint8_t too_big[] = {0x7f, 0, 0, 0};
	dec = proto_frame_decoder_new(0);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, too_big, sizeof(too_big)), 0);
	assert_int_equal(proto_frame_next(dec, &msg), PROTO_ERR_FRAME_TOO_BIG);
	assert_int_equal(proto_frame_decoder_feed(dec, good, good_len), 0);
	assert_int_equal(proto_frame_next(dec, &msg), PROTO_ERR_FRAME_TOO_BIG);
	assert_int_equal(proto_frame_next(dec, &msg), PROTO_ERR_FRAME_TOO_BIG);
	assert_null(msg);
	proto_frame_decoder_free(dec);
	free(good);
}

static void test_decode_exact_incomplete_and_trailing(void **state)
{
	(void)state;
	struct sample s;
	size_t len;
	uint8_t *good = encode_alloc(sample_make(&s, S_PUBLISHED), &len);
	uint8_t *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, good, len);
	longer[len] = 0;

	Citypass__Frame *msg = NULL;
	assert_int_equal(proto_frame_decode(good, len, 0, &msg), 1);
	assert_int_equal(msg->list_published->version, 99);
	proto_frame_free_message(msg);

	for (size_t n = 0; n < len; n++) {
		msg = (Citypass__Frame *)0x1;
		assert_int_equal(proto_frame_decode(good, n, 0, &msg), 0);
		assert_null(msg);
	}
	msg = (Citypass__Frame *)0x1;
	assert_int_equal(proto_frame_decode(longer, len + 1, 0, &msg), PROTO_ERR_FRAME_INVALID);
	assert_null(msg);
	free(longer);
	free(good);
}

static void test_encode_buffer_too_small(void **state)
{
	(void)state;
	struct sample s;
	const Citypass__Frame *msg = sample_make(&s, S_STATS);
	const size_t size = proto_frame_encoded_size(msg);
	uint8_t *buf = malloc(size + 8);
	assert_non_null(buf);
	memset(buf, 0xaa, size + 8);

	assert_int_equal(proto_frame_encode(msg, 0, buf, size - 1), PROTO_ERR_BUFSIZE);
	assert_int_equal(proto_frame_encode(msg, 0, buf, 3), PROTO_ERR_BUFSIZE);
	assert_int_equal(proto_frame_encode(msg, 0, buf, 0), PROTO_ERR_BUFSIZE);
	assert_int_equal(proto_frame_encode(msg, 0, buf, size), (long)size);
	/* nothing is written past what the return value says */
	for (size_t i = size; i < size + 8; i++)
		assert_int_equal(buf[i], 0xaa);
	free(buf);
}

/* ---- protocol rules ---------------------------------------------------------------- */

/*
 * Checks one message three ways: proto_frame_validate(), proto_frame_encode() (which must
 * refuse to send what the peer would refuse), and the decoder on bytes packed without
 * validation, as a hostile or buggy peer would send them.
 */
static void check_rule(const Citypass__Frame *msg, int want)
{
	assert_int_equal(proto_frame_validate(msg), want);

	const size_t size = proto_frame_encoded_size(msg);
	uint8_t *buf = malloc(size);
	assert_non_null(buf);
	assert_int_equal(proto_frame_encode(msg, 0, buf, size), want == 0 ? (long)size : want);
	free(buf);

	size_t len;
	uint8_t *raw = pack_raw(msg, &len);
	struct proto_frame_decoder *dec = proto_frame_decoder_new(0);
	assert_non_null(dec);
	assert_int_equal(proto_frame_decoder_feed(dec, raw, len), 0);
	Citypass__Frame *out = NULL;
	assert_int_equal(proto_frame_next(dec, &out), want == 0 ? 1 : want);
	proto_frame_free_message(out);
	proto_frame_decoder_free(dec);
	free(raw);
}

#define ACCEPTED(msg) check_rule((msg), 0)
#define REFUSED(msg)  check_rule((msg), PROTO_ERR_FRAME_INVALID)

static void test_rule_batch_streams_not_mixed(void **state)
{
	(void)state;
	struct sample s;
	Citypass__ConsumptionEvent cons = CITYPASS__CONSUMPTION_EVENT__INIT;
	Citypass__ConsumptionEvent *cons_ptr = &cons;
	cons.pseudonym.data = pseudo_b;
	cons.pseudonym.len = 8;
	Citypass__StatEvent stat = CITYPASS__STAT_EVENT__INIT;
	Citypass__StatEvent *stat_ptr = &stat;

	ACCEPTED(sample_make(&s, S_STATS));
	/* a pseudonym smuggled into the statistics stream */
	sample_make(&s, S_STATS);
	s.batch.n_consumption = 1;
	s.batch.consumption = &cons_ptr;
	REFUSED(&s.frame);

	ACCEPTED(sample_make(&s, S_CONSUMPTION));
	sample_make(&s, S_CONSUMPTION);
	s.batch.n_stats = 1;
	s.batch.stats = &stat_ptr;
	REFUSED(&s.frame);

	/* empty batches of either stream are harmless */
	sample_make(&s, S_STATS);
	s.batch.n_stats = 0;
	ACCEPTED(&s.frame);
	sample_make(&s, S_CONSUMPTION);
	s.batch.n_consumption = 0;
	ACCEPTED(&s.frame);
}

static void test_rule_batch_stream_known(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_STATS);
	s.batch.stream = CITYPASS__STREAM__STREAM_UNSPECIFIED;
	REFUSED(&s.frame);
	s.batch.n_stats = 0;
	REFUSED(&s.frame);
	sample_make(&s, S_CONSUMPTION);
	s.batch.stream = (Citypass__Stream)3;
	REFUSED(&s.frame);
}

static void test_rule_quarter_hour(void **state)
{
	(void)state;
	struct sample s;
	static const int64_t good[] = {0, 900, 1735689600, 1735690500, -900};
	static const int64_t bad[] = {1, 899, 901, 1735689601, 1735689600 + 450, -1};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		sample_make(&s, S_STATS);
		s.stats[1].quarter_hour = good[i];
		ACCEPTED(&s.frame);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sample_make(&s, S_STATS);
		s.stats[1].quarter_hour = bad[i];
		REFUSED(&s.frame);
	}
}

static void test_rule_pseudonym_eight_bytes(void **state)
{
	(void)state;
	struct sample s;
	for (size_t len = 0; len <= 9; len++) {
		sample_make(&s, S_CONSUMPTION);
		s.cons[0].pseudonym.len = len;
		if (len == 8)
			ACCEPTED(&s.frame);
		else
			REFUSED(&s.frame);
	}
}

static void test_rule_list_update_kind(void **state)
{
	(void)state;
	struct sample s;
	ACCEPTED(sample_make(&s, S_SNAPSHOT));
	ACCEPTED(sample_make(&s, S_DELTA));
	sample_make(&s, S_SNAPSHOT);
	s.update.kind = CITYPASS__LIST_UPDATE__KIND__KIND_UNSPECIFIED;
	REFUSED(&s.frame);
	s.update.kind = (Citypass__ListUpdate__Kind)3;
	REFUSED(&s.frame);
}

static void test_rule_list_update_chunks(void **state)
{
	(void)state;
	struct sample s;

	sample_make(&s, S_SNAPSHOT);
	s.update.chunk_count = 0;
	s.update.chunk_index = 0;
	s.update.signature.len = 0;
	REFUSED(&s.frame);

	/* a single chunk is index 0 of 1 */
	s.update.chunk_count = 1;
	s.update.signature.len = 70;
	ACCEPTED(&s.frame);

	/* not the last chunk, so without a signature: only the index can be refused */
	sample_make(&s, S_SNAPSHOT); /* index 2 of 3 */
	s.update.signature.len = 0;
	s.update.chunk_index = 1;
	ACCEPTED(&s.frame);
	s.update.chunk_index = 3;
	REFUSED(&s.frame);
	s.update.chunk_index = 0xffffffffu;
	REFUSED(&s.frame);
	s.update.chunk_index = 0;
	ACCEPTED(&s.frame);
}

static void test_rule_list_update_data_size(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_DELTA);
	s.update.total_size = 10u * PROTO_FRAME_LIST_CHUNK;
	s.update.data.len = PROTO_FRAME_LIST_CHUNK;
	ACCEPTED(&s.frame);
	s.update.data.len = PROTO_FRAME_LIST_CHUNK + 1;
	REFUSED(&s.frame);
	s.update.data.len = 0;
	ACCEPTED(&s.frame);
	/* a chunk larger than the whole update */
	s.update.total_size = 999;
	s.update.data.len = 1000;
	REFUSED(&s.frame);
	s.update.total_size = 1000;
	ACCEPTED(&s.frame);
}

static void test_rule_event_sequences_rise(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_STATS); /* 500, 501 */
	s.stats[1].seq = 500;
	REFUSED(&s.frame);
	s.stats[1].seq = 499;
	REFUSED(&s.frame);
	s.stats[1].seq = 900;
	ACCEPTED(&s.frame); /* gaps are fine: refused taps may be kept back */
	s.stats[0].seq = 0;
	REFUSED(&s.frame);

	sample_make(&s, S_CONSUMPTION); /* 900, 901 */
	s.cons[1].seq = 900;
	REFUSED(&s.frame);
	s.cons[1].seq = 901;
	ACCEPTED(&s.frame);
	s.cons[0].seq = 0;
	REFUSED(&s.frame);
	s.cons[0].seq = 900;
	s.cons[1].count = 0; /* nothing consumed is not a consumption */
	REFUSED(&s.frame);
}

static void test_rule_stat_outcome_known(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_STATS);
	s.stats[0].outcome = CITYPASS__OUTCOME__OUTCOME_UNSPECIFIED;
	REFUSED(&s.frame);
	s.stats[0].outcome = (Citypass__Outcome)3;
	REFUSED(&s.frame);
	s.stats[0].outcome = CITYPASS__OUTCOME__REFUSED;
	ACCEPTED(&s.frame);
}

static void test_rule_hello_sectors_unique(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_HELLO);
	s.held[1].sector = s.held[0].sector;
	REFUSED(&s.frame);
	s.held[1].sector = s.held[0].sector + 1;
	ACCEPTED(&s.frame);
}

static void test_rule_list_update_signature(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_SNAPSHOT); /* last chunk, 71-byte signature */
	s.update.signature.len = 72;
	ACCEPTED(&s.frame);
	s.update.signature.len = 73;
	REFUSED(&s.frame);
	/* the last chunk must carry it: a receiver would otherwise wait forever */
	s.update.signature.len = 0;
	REFUSED(&s.frame);

	/* not the last chunk: no signature at all */
	s.update.chunk_index = 1;
	ACCEPTED(&s.frame);
	s.update.signature.len = 1;
	REFUSED(&s.frame);
	s.update.signature.len = 71;
	REFUSED(&s.frame);
}

static void test_rule_list_update_versions(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_SNAPSHOT);
	s.update.base_version = 1;
	REFUSED(&s.frame);
	s.update.base_version = 0;
	ACCEPTED(&s.frame);

	sample_make(&s, S_DELTA); /* 41 -> 42 */
	s.update.base_version = 42;
	REFUSED(&s.frame);
	s.update.base_version = 43;
	REFUSED(&s.frame);
	s.update.base_version = 0;
	ACCEPTED(&s.frame);
	s.update.version = 0;
	REFUSED(&s.frame);
}

static void test_rule_event_ack_stream(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_ACK);
	s.ack.stream = CITYPASS__STREAM__STATISTICS;
	ACCEPTED(&s.frame);
	s.ack.stream = CITYPASS__STREAM__CONSUMPTION;
	ACCEPTED(&s.frame);
	s.ack.stream = CITYPASS__STREAM__STREAM_UNSPECIFIED;
	REFUSED(&s.frame);
	s.ack.stream = (Citypass__Stream)9;
	REFUSED(&s.frame);
}

/* Issue 11: a sector's card keys, in Welcome or alone: AES-128 keys, versions of a byte,
 * a previous key with its version or neither. */
static void test_rule_card_keys(void **state)
{
	(void)state;
	uint8_t key[17] = {1, 2, 3};
	Citypass__CardKeys k = CITYPASS__CARD_KEYS__INIT;
	Citypass__Welcome w = CITYPASS__WELCOME__INIT;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	k.sector = 3;
	k.version = 2;
	k.master.data = key;
	k.master.len = 16;
	f.body_case = CITYPASS__FRAME__BODY_CARD_KEYS;
	f.card_keys = &k;
	ACCEPTED(&f);
	k.previous_version = 1;
	REFUSED(&f); /* a previous version without its key */
	k.previous_master.data = key;
	k.previous_master.len = 16;
	ACCEPTED(&f);
	k.previous_master.len = 17;
	REFUSED(&f);
	k.previous_master.len = 16;
	k.master.len = 15;
	REFUSED(&f);
	k.master.len = 16;
	k.version = 256;
	REFUSED(&f);
	k.version = 2;
	k.sector = 0;
	REFUSED(&f);
	k.sector = 70000;
	REFUSED(&f);
	k.sector = 3;
	/* inside Welcome, the same rules */
	w.server_time = 1;
	w.card_keys = &k;
	f.body_case = CITYPASS__FRAME__BODY_WELCOME;
	f.welcome = &w;
	ACCEPTED(&f);
	k.master.len = 0;
	REFUSED(&f);
}

/* Issue 13: a shared anti-passback grant is an 8-byte list key and nothing else. */
static void test_rule_passback_grant(void **state)
{
	(void)state;
	uint8_t key[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	Citypass__PassbackGrant g = CITYPASS__PASSBACK_GRANT__INIT;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	f.body_case = CITYPASS__FRAME__BODY_PASSBACK_GRANT;
	f.passback_grant = &g;
	g.key.data = key;
	g.key.len = 8;
	ACCEPTED(&f);
	g.key.len = 9; /* a longer "key" could carry a card UID */
	REFUSED(&f);
	g.key.len = 0;
	REFUSED(&f);
	f.passback_grant = NULL;
	assert_int_equal(proto_frame_validate(&f), PROTO_ERR_FRAME_NO_BODY);
}

/* Issue 13: what a newer peer adds to a message an older one knows is ignored — the
 * health, features and positions ride in new fields of old messages. Here a Hello with
 * field 49 (a number no version uses) set, as a field this decoder would not know. */
static void test_unknown_fields_of_a_newer_peer_ignored(void **state)
{
	(void)state;
	Citypass__Hello h = CITYPASS__HELLO__INIT;
	Citypass__GateHealth health = CITYPASS__GATE_HEALTH__INIT;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	h.device_id = "gate-1";
	h.features = CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE;
	health.reader = CITYPASS__GATE_HEALTH__DEVICE__DEVICE_DOWN;
	health.free_disk_bytes = 123456789;
	h.health = &health;
	f.body_case = CITYPASS__FRAME__BODY_HELLO;
	f.hello = &h;
	size_t len;
	uint8_t *raw = pack_raw(&f, &len); /* the length prefix, then Frame{1: Hello{...}} */
	const uint8_t *payload = raw + 4;
	len -= 4;
	/* field 49 (varint 7) appended inside the Hello: tag (49 << 3) = 0x188 */
	uint8_t framed[520] = {0, 0, 0, (uint8_t)(len + 3)};
	assert_true(len + 3 <= sizeof(framed) - 4 && payload[0] == 0x0a && payload[1] < 0x7d);
	memcpy(framed + 4, payload, len);
	framed[5] = (uint8_t)(payload[1] + 3);
	framed[4 + len] = 0x88;
	framed[5 + len] = 0x03;
	framed[6 + len] = 0x07;
	free(raw);
	Citypass__Frame *got = NULL;
	assert_int_equal(proto_frame_decode(framed, len + 7, 0, &got), 1);
	assert_string_equal(got->hello->device_id, "gate-1");
	assert_int_equal(got->hello->features, CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE);
	assert_int_equal(got->hello->health->reader, CITYPASS__GATE_HEALTH__DEVICE__DEVICE_DOWN);
	assert_int_equal(got->hello->health->free_disk_bytes, 123456789);
	assert_int_equal(got->hello->base.n_unknown_fields, 1);
	proto_frame_free_message(got);
}

static void test_rule_hello_device_id(void **state)
{
	(void)state;
	struct sample s;
	sample_make(&s, S_HELLO);
	s.hello.device_id = "g";
	ACCEPTED(&s.frame);
	s.hello.device_id = "";
	REFUSED(&s.frame);
	s.hello.device_id = NULL;
	REFUSED(&s.frame);
}

static void test_rule_free_bodies_accepted(void **state)
{
	(void)state;
	struct sample s;
	ACCEPTED(sample_make(&s, S_WELCOME));
	ACCEPTED(sample_make(&s, S_PUBLISHED));
	ACCEPTED(sample_make(&s, S_ERROR));
	sample_make(&s, S_HELLO);
	s.hello.n_lists = 0;
	ACCEPTED(&s.frame);
}

/* ---- error strings ----------------------------------------------------------------- */

static void test_strerror_frame_errors(void **state)
{
	(void)state;
	static const int errs[] = {
	        PROTO_ERR_FRAME_TOO_BIG, PROTO_ERR_FRAME_EMPTY,   PROTO_ERR_FRAME_MALFORMED,
	        PROTO_ERR_FRAME_NO_BODY, PROTO_ERR_FRAME_INVALID, PROTO_ERR_BUFSIZE,
	        PROTO_ERR_NOMEM,
	};
	const size_t n = sizeof(errs) / sizeof(errs[0]);
	const char *unknown = proto_strerror(-12345);
	for (size_t i = 0; i < n; i++) {
		const char *m = proto_strerror(errs[i]);
		assert_non_null(m);
		assert_true(m[0] != '\0');
		assert_string_not_equal(m, unknown);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(m, proto_strerror(errs[j]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_roundtrip_hello),
	        cmocka_unit_test(test_rule_card_keys),
	        cmocka_unit_test(test_roundtrip_welcome),
	        cmocka_unit_test(test_roundtrip_list_update_snapshot),
	        cmocka_unit_test(test_roundtrip_list_update_delta),
	        cmocka_unit_test(test_roundtrip_list_published),
	        cmocka_unit_test(test_roundtrip_event_batch_statistics),
	        cmocka_unit_test(test_roundtrip_event_batch_consumption),
	        cmocka_unit_test(test_roundtrip_event_ack),
	        cmocka_unit_test(test_roundtrip_error),
	        cmocka_unit_test(test_encode_writes_big_endian_prefix),
	        cmocka_unit_test(test_feed_byte_by_byte),
	        cmocka_unit_test(test_feed_several_frames_at_once),
	        cmocka_unit_test(test_frame_split_across_feeds),
	        cmocka_unit_test(test_large_frame_in_pieces),
	        cmocka_unit_test(test_prefix_all_ones_refused),
	        cmocka_unit_test(test_prefix_max_plus_one_refused),
	        cmocka_unit_test(test_payload_at_max_accepted),
	        cmocka_unit_test(test_empty_frame),
	        cmocka_unit_test(test_garbage_payload_malformed),
	        cmocka_unit_test(test_invalid_field_numbers_malformed),
	        cmocka_unit_test(test_frame_without_body),
	        cmocka_unit_test(test_poisoned_decoder_stays_poisoned),
	        cmocka_unit_test(test_decode_exact_incomplete_and_trailing),
	        cmocka_unit_test(test_encode_buffer_too_small),
	        cmocka_unit_test(test_rule_batch_streams_not_mixed),
	        cmocka_unit_test(test_rule_batch_stream_known),
	        cmocka_unit_test(test_rule_quarter_hour),
	        cmocka_unit_test(test_rule_pseudonym_eight_bytes),
	        cmocka_unit_test(test_rule_list_update_kind),
	        cmocka_unit_test(test_rule_list_update_chunks),
	        cmocka_unit_test(test_rule_list_update_data_size),
	        cmocka_unit_test(test_rule_list_update_signature),
	        cmocka_unit_test(test_rule_event_sequences_rise),
	        cmocka_unit_test(test_rule_stat_outcome_known),
	        cmocka_unit_test(test_rule_hello_sectors_unique),
	        cmocka_unit_test(test_rule_list_update_versions),
	        cmocka_unit_test(test_rule_event_ack_stream),
	        cmocka_unit_test(test_rule_hello_device_id),
	        cmocka_unit_test(test_rule_passback_grant),
	        cmocka_unit_test(test_unknown_fields_of_a_newer_peer_ignored),
	        cmocka_unit_test(test_rule_free_bodies_accepted),
	        cmocka_unit_test(test_strerror_frame_errors),
	};
	return cmocka_run_group_tests(tests, setup_data, NULL);
}
