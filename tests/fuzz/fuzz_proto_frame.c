/*
 * fuzz_proto_frame.c — the sync-link frame decoder on hostile bytes.
 *
 * The input goes to an incremental decoder in three pieces (the first byte picks where it
 * is cut, so the fuzzer also explores prefixes split across reads) and to the one-shot
 * proto_frame_decode(). Beyond "no crash, no leak", it checks what the callers rely on:
 * whatever is decoded passes proto_frame_validate() and re-encodes, and an error sticks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proto/error.h"
#include "proto/frame.h"

/* Small enough that the fuzzer reaches the limit; big enough for real list chunks. */
#define FUZZ_MAX_PAYLOAD (64u * 1024u)

static void fail(const char *what, int rc)
{
	fprintf(stderr, "fuzz_proto_frame: %s (rc %d: %s)\n", what, rc, proto_strerror(rc));
	abort();
}

/* A decoded message must be something we would also send, and survive the trip back. */
static void check_message(const Citypass__Frame *msg, size_t max_payload)
{
	int rc = proto_frame_validate(msg);
	if (rc != 0)
		fail("decoded message does not validate", rc);

	const size_t size = proto_frame_encoded_size(msg);
	uint8_t *buf = malloc(size);
	if (!buf)
		return;
	const long n = proto_frame_encode(msg, max_payload, buf, size);
	if (n < 0 || (size_t)n != size)
		fail("decoded message does not re-encode", (int)n);
	Citypass__Frame *again = NULL;
	rc = proto_frame_decode(buf, size, max_payload, &again);
	if (rc != 1 || again->body_case != msg->body_case)
		fail("re-encoded message does not decode", rc);
	proto_frame_free_message(again);
	free(buf);
}

/* Returns 0 when more bytes are needed, or the decoder's error. */
static int drain(struct proto_frame_decoder *dec)
{
	Citypass__Frame *msg;
	int rc;
	while ((rc = proto_frame_next(dec, &msg)) == 1) {
		check_message(msg, FUZZ_MAX_PAYLOAD);
		proto_frame_free_message(msg);
	}
	if (rc < 0) {
		const int again = proto_frame_next(dec, &msg);
		if (again != rc || msg != NULL)
			fail("decoder error did not stick", again);
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Cut points strictly inside the input even when the first byte is 0, as in seeds. */
	const uint8_t pick = size ? data[0] : 0;
	const size_t cut1 = size * (1u + (pick & 0x0fu)) / 17u;
	const size_t cut2 = cut1 + (size - cut1) * (1u + (pick >> 4)) / 17u;
	const size_t cuts[] = {0, cut1, cut2, size};

	struct proto_frame_decoder *dec = proto_frame_decoder_new(FUZZ_MAX_PAYLOAD);
	if (dec) {
		for (size_t i = 0; i + 1 < sizeof(cuts) / sizeof(cuts[0]); i++) {
			const int rc = proto_frame_decoder_feed(dec, data + cuts[i],
			                                        cuts[i + 1] - cuts[i]);
			if (rc < 0 || drain(dec) < 0)
				break;
		}
		proto_frame_decoder_free(dec);
	}

	Citypass__Frame *msg = NULL;
	const int rc = proto_frame_decode(data, size, 0, &msg);
	if (rc == 1) {
		check_message(msg, 0);
		proto_frame_free_message(msg);
	} else if (msg != NULL) {
		fail("decode failed but returned a message", rc);
	}
	return 0;
}

/* ---- seeds ------------------------------------------------------------------------- */

static uint8_t seed_chunk[2048];
static uint8_t seed_sig[72];
static uint8_t seed_pseudonym[3][8] = {
        {1, 2, 3, 4, 5, 6, 7, 8},
        {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe},
        {0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0},
};

/* One valid frame of each kind and variant; idx selects which. */
static size_t seed_encode(unsigned idx, uint8_t *out, size_t cap)
{
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	Citypass__Hello hello = CITYPASS__HELLO__INIT;
	Citypass__ListHeld held[3];
	Citypass__ListHeld *held_ptrs[3];
	Citypass__Welcome welcome = CITYPASS__WELCOME__INIT;
	Citypass__ListUpdate update = CITYPASS__LIST_UPDATE__INIT;
	Citypass__ListPublished published = CITYPASS__LIST_PUBLISHED__INIT;
	Citypass__EventBatch batch = CITYPASS__EVENT_BATCH__INIT;
	Citypass__StatEvent stats[3];
	Citypass__StatEvent *stat_ptrs[3];
	Citypass__ConsumptionEvent cons[3];
	Citypass__ConsumptionEvent *cons_ptrs[3];
	Citypass__EventAck ack = CITYPASS__EVENT_ACK__INIT;
	Citypass__Error error = CITYPASS__ERROR__INIT;

	for (unsigned i = 0; i < 3; i++) {
		citypass__list_held__init(&held[i]);
		held[i].sector = 1 + i;
		held[i].version = 100u * (i + 1);
		held_ptrs[i] = &held[i];
		citypass__stat_event__init(&stats[i]);
		stats[i].seq = 1000 + i;
		stats[i].site = 4;
		stats[i].gate = 2 + i;
		stats[i].sector = 1;
		stats[i].product = 17;
		stats[i].outcome = i == 1 ? CITYPASS__OUTCOME__REFUSED : CITYPASS__OUTCOME__GRANTED;
		stats[i].reason = i;
		stats[i].quarter_hour = 1735689600 + 900 * (int64_t)i;
		stat_ptrs[i] = &stats[i];
		citypass__consumption_event__init(&cons[i]);
		cons[i].seq = 2000 + i;
		cons[i].sector = 1;
		cons[i].pseudonym.data = seed_pseudonym[i];
		cons[i].pseudonym.len = 8;
		cons[i].product = 17;
		cons[i].count = 1 + i;
		cons[i].period = 202501;
		cons_ptrs[i] = &cons[i];
	}

	switch (idx) {
	case 0:
	case 1:
		hello.device_id = "gate-0001.example.org";
		hello.software_version = "citypass 1.0";
		hello.stats_acked_seq = 999;
		hello.consumption_acked_seq = idx ? 0 : 1999;
		hello.n_lists = idx ? 1 : 3;
		hello.lists = held_ptrs;
		f.body_case = CITYPASS__FRAME__BODY_HELLO;
		f.hello = &hello;
		break;
	case 2:
		welcome.server_time = 1735689600;
		welcome.server_version = "citypass-server 1.0";
		f.body_case = CITYPASS__FRAME__BODY_WELCOME;
		f.welcome = &welcome;
		break;
	case 3: /* snapshot, first of two chunks */
	case 4: /* snapshot, last chunk with its signature */
	case 5: /* single-chunk delta */
		update.sector = 1;
		update.kind = idx == 5 ? CITYPASS__LIST_UPDATE__KIND__DELTA
		                       : CITYPASS__LIST_UPDATE__KIND__SNAPSHOT;
		update.base_version = idx == 5 ? 100 : 0;
		update.version = 101;
		update.chunk_count = idx == 5 ? 1 : 2;
		update.chunk_index = idx == 3 ? 0 : update.chunk_count - 1;
		update.total_size = idx == 5 ? 300 : 2 * sizeof(seed_chunk);
		update.data.data = seed_chunk;
		update.data.len = idx == 5 ? 300 : sizeof(seed_chunk);
		if (idx != 3) {
			update.signature.data = seed_sig;
			update.signature.len = idx == 4 ? 72 : 70;
		}
		f.body_case = CITYPASS__FRAME__BODY_LIST_UPDATE;
		f.list_update = &update;
		break;
	case 6:
		published.sector = 1;
		published.version = 102;
		f.body_case = CITYPASS__FRAME__BODY_LIST_PUBLISHED;
		f.list_published = &published;
		break;
	case 7:
		batch.stream = CITYPASS__STREAM__STATISTICS;
		batch.n_stats = 3;
		batch.stats = stat_ptrs;
		f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
		f.event_batch = &batch;
		break;
	case 8:
		batch.stream = CITYPASS__STREAM__CONSUMPTION;
		batch.n_consumption = 3;
		batch.consumption = cons_ptrs;
		f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
		f.event_batch = &batch;
		break;
	case 9:
	case 10:
		ack.stream =
		        idx == 9 ? CITYPASS__STREAM__STATISTICS : CITYPASS__STREAM__CONSUMPTION;
		ack.acked_seq = idx == 9 ? 1002 : 2002;
		f.body_case = CITYPASS__FRAME__BODY_EVENT_ACK;
		f.event_ack = &ack;
		break;
	default:
		error.code = CITYPASS__ERROR__CODE__NO_LIST;
		error.message = "no list for sector 9";
		f.body_case = CITYPASS__FRAME__BODY_ERROR;
		f.error = &error;
		break;
	}

	const long n = proto_frame_encode(&f, 0, out, cap);
	if (n < 0)
		fail("seed does not encode", (int)n);
	return (size_t)n;
}

#define SEED_KINDS 12u

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	static uint8_t all[SEED_KINDS * (sizeof(seed_chunk) + 256)];
	size_t all_len = 0;
	size_t starts[SEED_KINDS + 1];

	for (size_t i = 0; i < sizeof(seed_chunk); i++)
		seed_chunk[i] = (uint8_t)(i * 7 + 3);
	/* shaped like DER: SEQUENCE { INTEGER, INTEGER } */
	for (size_t i = 0; i < sizeof(seed_sig); i++)
		seed_sig[i] = (uint8_t)(0xa5 ^ i);
	seed_sig[0] = 0x30;
	seed_sig[1] = 70;

	for (unsigned k = 0; k < SEED_KINDS; k++) {
		starts[k] = all_len;
		all_len += seed_encode(k, all + all_len, sizeof(all) - all_len);
		emit(all + starts[k], all_len - starts[k], ctx);
	}
	starts[SEED_KINDS] = all_len;

	/* every frame back to back, as one read of a busy connection */
	emit(all, all_len, ctx);
	/* a session's opening, and a controller's upload with its acks */
	emit(all, starts[3], ctx);
	emit(all + starts[7], starts[11] - starts[7], ctx);
	/* a frame split mid-way: the decoder must wait, not fail */
	emit(all + starts[2], (starts[4] - starts[2]) - 5, ctx);
	/* a good frame, then one with a refused prefix */
	uint8_t tail[64];
	const size_t ack_len = starts[10] - starts[9];
	memcpy(tail, all + starts[9], ack_len);
	memcpy(tail + ack_len, "\xff\xff\xff\xff\x0a\x00", 6);
	emit(tail, ack_len + 6, ctx);
}
