/*
 * frame.c — length-prefixed protobuf frames of the sync link (proto/frame.h).
 *
 * The decoder never trusts a length prefix with memory: feed() checks each prefix as soon
 * as its fourth byte arrives and stops buffering at the first bad one, so a peer can make
 * it hold at most the frames it really sent, each no larger than the maximum payload.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/error.h"
#include "proto/frame.h"
#include "proto/rotation.h"

/* DER ECDSA P-256 signature: SEQUENCE of two INTEGERs of at most 33 bytes each. */
#define SIGNATURE_MAX 72
/* ConsumptionEvent.pseudonym is a list key (8 bytes), never anything longer. */
#define PSEUDONYM_SIZE 8
/* Statistics are truncated to the quarter hour so that no event can be singled out. */
#define QUARTER_HOUR 900
/*
 * A drained decoder keeps a buffer up to this size; a bigger one (left by a large list
 * chunk) is released so thousands of idle server connections do not each hold 1 MiB.
 */
#define IDLE_BUFFER_KEEP (64u * 1024u)
#define INITIAL_BUFFER   256u
/* Largest field number the protobuf wire format allows. */
#define FIELD_NUMBER_MAX 0x1fffffffu

struct proto_frame_decoder {
	uint8_t *buf;
	size_t cap;
	size_t head;      /* first byte not yet decoded */
	size_t tail;      /* one past the last byte buffered */
	size_t frame_end; /* where the first frame whose prefix feed() has not checked starts */
	size_t max_payload;
	bool refusing; /* feed() saw a bad prefix: what follows it is out of step */
	int err;       /* sticky: once next() failed, the stream is lost */
};

/*
 * A prefix is 32 bits, so no larger limit means anything; the SIZE_MAX bound keeps
 * offset + header + payload from wrapping on 32-bit targets.
 */
static size_t effective_max(size_t max_payload)
{
	if (max_payload == 0)
		return PROTO_FRAME_DEFAULT_MAX;
	if (max_payload > UINT32_MAX)
		max_payload = UINT32_MAX;
	if (max_payload > SIZE_MAX / 4)
		max_payload = SIZE_MAX / 4;
	return max_payload;
}

static uint32_t read_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void write_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int check_length(uint32_t len, size_t max_payload)
{
	if (len == 0)
		return PROTO_ERR_FRAME_EMPTY;
	if (len > max_payload)
		return PROTO_ERR_FRAME_TOO_BIG;
	return 0;
}

/* ---- protocol rules ---------------------------------------------------------------- */

/* protobuf-c would dereference these when packing; a sender must not get that far. */
static bool bytes_ok(const ProtobufCBinaryData *b)
{
	return b->len == 0 || b->data != NULL;
}

static bool array_ok(const void *array, size_t n)
{
	return n == 0 || array != NULL;
}

static int validate_hello(const Citypass__Hello *h)
{
	/* The server matches device_id against the certificate; empty would match nothing. */
	if (!h->device_id || h->device_id[0] == '\0')
		return PROTO_ERR_FRAME_INVALID;
	if (!array_ok(h->lists, h->n_lists))
		return PROTO_ERR_FRAME_INVALID;
	for (size_t i = 0; i < h->n_lists; i++) {
		if (!h->lists[i])
			return PROTO_ERR_FRAME_INVALID;
		/* one version per sector: two would leave the server guessing which is held */
		for (size_t j = 0; j < i; j++)
			if (h->lists[j]->sector == h->lists[i]->sector)
				return PROTO_ERR_FRAME_INVALID;
	}
	return 0;
}

static int validate_list_update(const Citypass__ListUpdate *u)
{
	const bool last = u->chunk_count >= 1 && u->chunk_index == u->chunk_count - 1;

	switch (u->kind) {
	case CITYPASS__LIST_UPDATE__KIND__SNAPSHOT:
		if (u->base_version != 0)
			return PROTO_ERR_FRAME_INVALID;
		break;
	case CITYPASS__LIST_UPDATE__KIND__DELTA:
		/* A delta that does not move forward would let a peer roll a list back. */
		if (u->base_version >= u->version)
			return PROTO_ERR_FRAME_INVALID;
		break;
	default:
		return PROTO_ERR_FRAME_INVALID;
	}
	if (u->chunk_count < 1 || u->chunk_index >= u->chunk_count)
		return PROTO_ERR_FRAME_INVALID;
	if (!bytes_ok(&u->data) || u->data.len > PROTO_FRAME_LIST_CHUNK)
		return PROTO_ERR_FRAME_INVALID;
	if (!bytes_ok(&u->signature) || u->signature.len > SIGNATURE_MAX)
		return PROTO_ERR_FRAME_INVALID;
	/* The signature covers the assembled file: it comes with the last chunk, and only
	 * there, so a receiver knows the update is complete when it sees it. */
	if ((u->signature.len > 0) != last)
		return PROTO_ERR_FRAME_INVALID;
	if (u->data.len > u->total_size)
		return PROTO_ERR_FRAME_INVALID;
	return 0;
}

/*
 * The server deduplicates on (device, stream, seq) and acknowledges "everything up to
 * seq": that only holds if sequences start at 1 and rise strictly within a batch.
 */
static bool seq_follows(uint64_t seq, uint64_t previous)
{
	return seq > previous;
}

static int validate_stats(const Citypass__EventBatch *b)
{
	if (!array_ok(b->stats, b->n_stats))
		return PROTO_ERR_FRAME_INVALID;
	for (size_t i = 0; i < b->n_stats; i++) {
		const Citypass__StatEvent *e = b->stats[i];
		if (!e || e->quarter_hour % QUARTER_HOUR != 0)
			return PROTO_ERR_FRAME_INVALID;
		if (!seq_follows(e->seq, i ? b->stats[i - 1]->seq : 0))
			return PROTO_ERR_FRAME_INVALID;
		if (e->outcome != CITYPASS__OUTCOME__GRANTED &&
		    e->outcome != CITYPASS__OUTCOME__REFUSED)
			return PROTO_ERR_FRAME_INVALID;
	}
	return 0;
}

static int validate_consumption(const Citypass__EventBatch *b)
{
	if (!array_ok(b->consumption, b->n_consumption))
		return PROTO_ERR_FRAME_INVALID;
	for (size_t i = 0; i < b->n_consumption; i++) {
		const Citypass__ConsumptionEvent *e = b->consumption[i];
		if (!e || !bytes_ok(&e->pseudonym) || e->pseudonym.len != PSEUDONYM_SIZE)
			return PROTO_ERR_FRAME_INVALID;
		if (!seq_follows(e->seq, i ? b->consumption[i - 1]->seq : 0) || e->count == 0)
			return PROTO_ERR_FRAME_INVALID;
	}
	return 0;
}

/*
 * DESIGN.md section 5: statistics carry no identifier at all. A batch mixing the streams
 * could smuggle pseudonyms into the statistics store, so a mix is refused outright.
 */
static int validate_event_batch(const Citypass__EventBatch *b)
{
	switch (b->stream) {
	case CITYPASS__STREAM__STATISTICS:
		if (b->n_consumption != 0)
			return PROTO_ERR_FRAME_INVALID;
		return validate_stats(b);
	case CITYPASS__STREAM__CONSUMPTION:
		if (b->n_stats != 0)
			return PROTO_ERR_FRAME_INVALID;
		return validate_consumption(b);
	default:
		return PROTO_ERR_FRAME_INVALID;
	}
}

static int validate_event_ack(const Citypass__EventAck *a)
{
	if (a->stream != CITYPASS__STREAM__STATISTICS && a->stream != CITYPASS__STREAM__CONSUMPTION)
		return PROTO_ERR_FRAME_INVALID;
	return 0;
}

/* Issue 11: a sector's card key, current and (optional) previous, AES-128 each. */
static int validate_card_keys(const Citypass__CardKeys *k)
{
	if (!k || k->sector == 0 || k->sector > UINT16_MAX || k->version > 255 ||
	    k->previous_version > 255 || !bytes_ok(&k->master) || k->master.len != 16 ||
	    !bytes_ok(&k->previous_master) ||
	    (k->previous_master.len != 0 && k->previous_master.len != 16) ||
	    (k->previous_master.len == 0 && k->previous_version != 0))
		return PROTO_ERR_FRAME_INVALID;
	return 0;
}

/* Issue 11: the list key's rotation statements (proto/rotation.h), bounded in number and
 * size here; their meaning and signatures are the receiver's key chain's to check. */
static int validate_key_chain(const Citypass__KeyChain *k)
{
	if (!k || k->n_statements > PROTO_KEY_CHAIN_MAX)
		return PROTO_ERR_FRAME_INVALID;
	for (size_t i = 0; i < k->n_statements; i++) {
		const Citypass__KeyStatement *st = k->statements[i];
		if (!st || !bytes_ok(&st->text) || st->text.len == 0 ||
		    st->text.len > PROTO_ROTATION_TEXT_MAX || !bytes_ok(&st->old_signature) ||
		    st->old_signature.len == 0 || st->old_signature.len > SIGNATURE_MAX ||
		    !bytes_ok(&st->new_signature) || st->new_signature.len == 0 ||
		    st->new_signature.len > SIGNATURE_MAX)
			return PROTO_ERR_FRAME_INVALID;
	}
	return 0;
}

/* Issue 11: the device CA's rotations: bounded here, verified by the gate. */
static int validate_ca_chain(const Citypass__CaChain *c)
{
	if (c->n_announcements > PROTO_KEY_CHAIN_MAX)
		return PROTO_ERR_FRAME_INVALID;
	for (size_t i = 0; i < c->n_announcements; i++) {
		const Citypass__CaAnnouncement *a = c->announcements[i];
		if (!a || !bytes_ok(&a->cross_certificate) || a->cross_certificate.len == 0 ||
		    a->cross_certificate.len > 4096 || !bytes_ok(&a->ca_certificate) ||
		    a->ca_certificate.len == 0 || a->ca_certificate.len > 4096)
			return PROTO_ERR_FRAME_INVALID;
	}
	return 0;
}

/* A body case whose pointer is NULL packs to nothing, so it counts as no body. */
int proto_frame_validate(const Citypass__Frame *msg)
{
	if (!msg || msg->base.descriptor != &citypass__frame__descriptor)
		return PROTO_ERR_ARG;

	switch (msg->body_case) {
	case CITYPASS__FRAME__BODY_HELLO:
		return msg->hello ? validate_hello(msg->hello) : PROTO_ERR_FRAME_NO_BODY;
	case CITYPASS__FRAME__BODY_WELCOME:
		if (!msg->welcome)
			return PROTO_ERR_FRAME_NO_BODY;
		if (msg->welcome->card_keys && validate_card_keys(msg->welcome->card_keys) != 0)
			return PROTO_ERR_FRAME_INVALID;
		if (msg->welcome->ca_chain && validate_ca_chain(msg->welcome->ca_chain) != 0)
			return PROTO_ERR_FRAME_INVALID;
		return msg->welcome->key_chain ? validate_key_chain(msg->welcome->key_chain) : 0;
	case CITYPASS__FRAME__BODY_LIST_UPDATE:
		return msg->list_update ? validate_list_update(msg->list_update)
		                        : PROTO_ERR_FRAME_NO_BODY;
	case CITYPASS__FRAME__BODY_LIST_PUBLISHED:
		return msg->list_published ? 0 : PROTO_ERR_FRAME_NO_BODY;
	case CITYPASS__FRAME__BODY_EVENT_BATCH:
		return msg->event_batch ? validate_event_batch(msg->event_batch)
		                        : PROTO_ERR_FRAME_NO_BODY;
	case CITYPASS__FRAME__BODY_EVENT_ACK:
		return msg->event_ack ? validate_event_ack(msg->event_ack)
		                      : PROTO_ERR_FRAME_NO_BODY;
	case CITYPASS__FRAME__BODY_ERROR:
		return msg->error ? 0 : PROTO_ERR_FRAME_NO_BODY;
	case CITYPASS__FRAME__BODY_PASSBACK_GRANT:
		/* a list key and nothing else: no other identifier can ride along */
		if (!msg->passback_grant)
			return PROTO_ERR_FRAME_NO_BODY;
		return bytes_ok(&msg->passback_grant->key) &&
		                       msg->passback_grant->key.len == PSEUDONYM_SIZE
		               ? 0
		               : PROTO_ERR_FRAME_INVALID;
	case CITYPASS__FRAME__BODY_CARD_KEYS:
		return msg->card_keys ? validate_card_keys(msg->card_keys)
		                      : PROTO_ERR_FRAME_NO_BODY;
	case CITYPASS__FRAME__BODY_KEY_CHAIN:
		return msg->key_chain ? validate_key_chain(msg->key_chain)
		                      : PROTO_ERR_FRAME_NO_BODY;
	default:
		return PROTO_ERR_FRAME_NO_BODY;
	}
}

/* ---- decoding ---------------------------------------------------------------------- */

/*
 * protobuf-c 1.4.1 refuses field number 0 written as one byte but keeps it as an unknown
 * field when written in several (0x80 0x00), and likewise numbers above the wire format's
 * 2^29 - 1. Both are invalid protobuf, and once re-encoded they no longer decode, so such a
 * frame is refused as malformed rather than passed on. Found by fuzz_proto_frame.
 */
static bool field_numbers_ok(const ProtobufCMessage *m)
{
	for (unsigned i = 0; i < m->n_unknown_fields; i++) {
		const uint32_t tag = m->unknown_fields[i].tag;
		if (tag == 0 || tag > FIELD_NUMBER_MAX)
			return false;
	}

	/* Walk the sub-messages through the descriptor, so that new schema fields are covered. */
	const ProtobufCMessageDescriptor *desc = m->descriptor;
	const char *const base = (const char *)m;
	for (unsigned f = 0; f < desc->n_fields; f++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[f];
		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			const size_t n = *(const size_t *)(base + fd->quantifier_offset);
			ProtobufCMessage *const *subs =
			        *(ProtobufCMessage *const *const *)(base + fd->offset);
			for (size_t i = 0; i < n; i++)
				if (subs[i] && !field_numbers_ok(subs[i]))
					return false;
			continue;
		}
		/* another member of the oneof may share this storage */
		if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + fd->quantifier_offset) != fd->id)
			continue;
		const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + fd->offset);
		if (sub && !field_numbers_ok(sub))
			return false;
	}
	return true;
}

static int unpack_payload(const uint8_t *payload, size_t len, Citypass__Frame **out)
{
	/* protobuf-c returns NULL for out-of-memory too; both end the connection anyway. */
	Citypass__Frame *msg = citypass__frame__unpack(NULL, len, payload);
	if (!msg)
		return PROTO_ERR_FRAME_MALFORMED;
	if (!field_numbers_ok(&msg->base)) {
		citypass__frame__free_unpacked(msg, NULL);
		return PROTO_ERR_FRAME_MALFORMED;
	}
	const int rc = proto_frame_validate(msg);
	if (rc < 0) {
		citypass__frame__free_unpacked(msg, NULL);
		return rc;
	}
	*out = msg;
	return 1;
}

int proto_frame_decode(const uint8_t *buf, size_t len, size_t max_payload, Citypass__Frame **out)
{
	if (!out)
		return PROTO_ERR_ARG;
	*out = NULL;
	if (!buf && len)
		return PROTO_ERR_ARG;
	if (len < PROTO_FRAME_HEADER_SIZE)
		return 0;

	const uint8_t *cur = buf;
	const uint8_t *const end = buf + len;
	const uint32_t n = read_be32(cur);
	cur += PROTO_FRAME_HEADER_SIZE;
	const int rc = check_length(n, effective_max(max_payload));
	if (rc < 0)
		return rc;
	if ((size_t)(end - cur) < n)
		return 0;
	if ((size_t)(end - cur) > n)
		return PROTO_ERR_FRAME_INVALID;
	return unpack_payload(cur, n, out);
}

struct proto_frame_decoder *proto_frame_decoder_new(size_t max_payload)
{
	struct proto_frame_decoder *dec = calloc(1, sizeof(*dec));
	if (!dec)
		return NULL;
	dec->max_payload = effective_max(max_payload);
	return dec;
}

static void release_buffer(struct proto_frame_decoder *dec)
{
	free(dec->buf);
	dec->buf = NULL;
	dec->cap = 0;
	dec->head = dec->tail = dec->frame_end = 0;
}

void proto_frame_decoder_free(struct proto_frame_decoder *dec)
{
	if (!dec)
		return;
	free(dec->buf);
	free(dec);
}

size_t proto_frame_decoder_pending(const struct proto_frame_decoder *dec)
{
	return dec ? dec->tail - dec->head : 0;
}

/*
 * Make room for len more bytes. Only bytes the peer really sent ever need room, and the
 * growth is capped so that a single frame never costs more than max payload + header.
 */
static int reserve(struct proto_frame_decoder *dec, size_t len)
{
	if (dec->cap - dec->tail >= len)
		return 0;
	if (dec->head > 0) {
		memmove(dec->buf, dec->buf + dec->head, dec->tail - dec->head);
		dec->tail -= dec->head;
		dec->frame_end -= dec->head;
		dec->head = 0;
		if (dec->cap - dec->tail >= len)
			return 0;
	}
	if (len > SIZE_MAX - dec->tail)
		return PROTO_ERR_NOMEM;
	const size_t need = dec->tail + len;
	const size_t limit = need > dec->max_payload + PROTO_FRAME_HEADER_SIZE
	                             ? need
	                             : dec->max_payload + PROTO_FRAME_HEADER_SIZE;
	size_t cap = dec->cap ? dec->cap : INITIAL_BUFFER;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : 2 * cap;
	if (cap > limit)
		cap = limit;
	uint8_t *buf = realloc(dec->buf, cap);
	if (!buf)
		return PROTO_ERR_NOMEM;
	dec->buf = buf;
	dec->cap = cap;
	return 0;
}

int proto_frame_decoder_feed(struct proto_frame_decoder *dec, const uint8_t *data, size_t len)
{
	if (!dec || (!data && len))
		return PROTO_ERR_ARG;
	if (len == 0)
		return 0;

	const uint8_t *cur = data;
	const uint8_t *const end = data + len;
	while (cur < end && !dec->refusing) {
		const bool in_payload = dec->tail < dec->frame_end;
		const size_t want = in_payload
		                            ? dec->frame_end - dec->tail
		                            : dec->frame_end + PROTO_FRAME_HEADER_SIZE - dec->tail;
		const size_t take = want < (size_t)(end - cur) ? want : (size_t)(end - cur);
		const int rc = reserve(dec, take);
		if (rc < 0)
			return rc;
		memcpy(dec->buf + dec->tail, cur, take);
		dec->tail += take;
		cur += take;
		if (in_payload || dec->tail != dec->frame_end + PROTO_FRAME_HEADER_SIZE)
			continue;
		const uint32_t n = read_be32(dec->buf + dec->frame_end);
		if (check_length(n, dec->max_payload) < 0)
			dec->refusing = true; /* next() reports it once it gets there */
		else
			dec->frame_end += PROTO_FRAME_HEADER_SIZE + (size_t)n;
	}
	return 0;
}

static int poison(struct proto_frame_decoder *dec, int err)
{
	dec->err = err;
	dec->refusing = true;
	release_buffer(dec);
	return err;
}

int proto_frame_next(struct proto_frame_decoder *dec, Citypass__Frame **out)
{
	if (!dec || !out)
		return PROTO_ERR_ARG;
	*out = NULL;
	if (dec->err)
		return dec->err;
	if (dec->tail - dec->head < PROTO_FRAME_HEADER_SIZE)
		return 0;

	const uint8_t *cur = dec->buf + dec->head;
	const uint8_t *const end = dec->buf + dec->tail;
	const uint32_t n = read_be32(cur);
	cur += PROTO_FRAME_HEADER_SIZE;
	int rc = check_length(n, dec->max_payload);
	if (rc < 0)
		return poison(dec, rc);
	if ((size_t)(end - cur) < n)
		return 0;
	rc = unpack_payload(cur, n, out);
	if (rc < 0)
		return poison(dec, rc);

	dec->head += PROTO_FRAME_HEADER_SIZE + (size_t)n;
	if (dec->head == dec->tail) {
		if (dec->cap > IDLE_BUFFER_KEEP)
			release_buffer(dec);
		else
			dec->head = dec->tail = dec->frame_end = 0;
	}
	return 1;
}

void proto_frame_free_message(Citypass__Frame *msg)
{
	if (msg)
		citypass__frame__free_unpacked(msg, NULL);
}

/* ---- encoding ---------------------------------------------------------------------- */

size_t proto_frame_encoded_size(const Citypass__Frame *msg)
{
	if (!msg)
		return 0;
	return PROTO_FRAME_HEADER_SIZE + citypass__frame__get_packed_size(msg);
}

long proto_frame_encode(const Citypass__Frame *msg, size_t max_payload, uint8_t *buf, size_t cap)
{
	const int rc = proto_frame_validate(msg);
	if (rc < 0)
		return rc;
	if (!buf && cap)
		return PROTO_ERR_ARG;

	const size_t len = citypass__frame__get_packed_size(msg);
	if (len > effective_max(max_payload) || len > (size_t)LONG_MAX - PROTO_FRAME_HEADER_SIZE)
		return PROTO_ERR_FRAME_TOO_BIG;
	if (cap < PROTO_FRAME_HEADER_SIZE || cap - PROTO_FRAME_HEADER_SIZE < len)
		return PROTO_ERR_BUFSIZE;

	write_be32(buf, (uint32_t)len);
	if (citypass__frame__pack(msg, buf + PROTO_FRAME_HEADER_SIZE) != len)
		return PROTO_ERR_ARG; /* msg changed under us: the caller broke the contract */
	return (long)(PROTO_FRAME_HEADER_SIZE + len);
}
