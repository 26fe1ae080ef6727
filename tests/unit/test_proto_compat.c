/*
 * test_proto_compat.c — old and new peers on the sync link (issue 13, item 2: "unknown
 * fields from a newer gate are ignored by an older server, and the reverse").
 *
 * The older peer is the schema as it was before issue 13 (compat/citypass_before_13.proto,
 * package citypass_old), compiled beside the current one: each message goes through the
 * other side's real protobuf-c decoder. A newer gate's Hello and keepalive batch carry
 * GateHealth and features an older server does not know: they decode, its own fields
 * intact, the new ones kept aside unread. An older server's Welcome announces no feature,
 * so a newer gate shares no grant with it; an older gate's Hello announces none, so a newer
 * server relays none to it (a body it does not know would close its link). The new fields
 * of acks and list updates are ignored by an older gate likewise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "citypass.pb-c.h"
#include "citypass_before_13.pb-c.h"

static uint8_t *pack_new(const Citypass__Frame *f, size_t *len)
{
	*len = citypass__frame__get_packed_size(f);
	uint8_t *b = malloc(*len ? *len : 1);
	assert_non_null(b);
	assert_int_equal(citypass__frame__pack(f, b), *len);
	return b;
}

static uint8_t *pack_old(const CitypassOld__Frame *f, size_t *len)
{
	*len = citypass_old__frame__get_packed_size(f);
	uint8_t *b = malloc(*len ? *len : 1);
	assert_non_null(b);
	assert_int_equal(citypass_old__frame__pack(f, b), *len);
	return b;
}

static void test_newer_gate_older_server(void **state)
{
	(void)state;
	Citypass__GateHealth health = CITYPASS__GATE_HEALTH__INIT;
	health.reader = CITYPASS__GATE_HEALTH__DEVICE__DEVICE_DOWN;
	health.journal_backlog = 12;
	Citypass__ListHeld held = CITYPASS__LIST_HELD__INIT;
	held.sector = 3;
	held.version = 17;
	Citypass__ListHeld *lists[] = {&held};
	Citypass__Hello h = CITYPASS__HELLO__INIT;
	h.device_id = "pool-1";
	h.n_lists = 1;
	h.lists = lists;
	h.journal_epoch = 99;
	h.health = &health;
	h.features = CITYPASS__FEATURE__FEATURE_PASSBACK_SHARE;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	f.body_case = CITYPASS__FRAME__BODY_HELLO;
	f.hello = &h;
	size_t len;
	uint8_t *b = pack_new(&f, &len);
	CitypassOld__Frame *old = citypass_old__frame__unpack(NULL, len, b);
	assert_non_null(old);
	assert_int_equal(old->body_case, CITYPASS_OLD__FRAME__BODY_HELLO);
	assert_string_equal(old->hello->device_id, "pool-1");
	assert_int_equal(old->hello->n_lists, 1);
	assert_int_equal(old->hello->lists[0]->version, 17);
	assert_int_equal(old->hello->journal_epoch, 99);
	assert_int_equal(old->hello->base.n_unknown_fields, 2); /* health, features: unread */
	citypass_old__frame__free_unpacked(old, NULL);
	free(b);

	/* the health report on an empty statistics batch: an older server's keepalive */
	Citypass__EventBatch eb = CITYPASS__EVENT_BATCH__INIT;
	eb.stream = CITYPASS__STREAM__STATISTICS;
	eb.journal_epoch = 99;
	eb.health = &health;
	f.body_case = CITYPASS__FRAME__BODY_EVENT_BATCH;
	f.event_batch = &eb;
	b = pack_new(&f, &len);
	old = citypass_old__frame__unpack(NULL, len, b);
	assert_non_null(old);
	assert_int_equal(old->body_case, CITYPASS_OLD__FRAME__BODY_EVENT_BATCH);
	assert_int_equal(old->event_batch->stream, CITYPASS_OLD__STREAM__STATISTICS);
	assert_int_equal(old->event_batch->n_stats, 0);
	assert_int_equal(old->event_batch->journal_epoch, 99);
	citypass_old__frame__free_unpacked(old, NULL);
	free(b);

	/* an older server's Welcome: no feature announced, so no grant is sent to it */
	CitypassOld__Welcome w = CITYPASS_OLD__WELCOME__INIT;
	w.server_time = 1780000000;
	CitypassOld__Frame of = CITYPASS_OLD__FRAME__INIT;
	of.body_case = CITYPASS_OLD__FRAME__BODY_WELCOME;
	of.welcome = &w;
	b = pack_old(&of, &len);
	Citypass__Frame *now = citypass__frame__unpack(NULL, len, b);
	assert_non_null(now);
	assert_int_equal(now->welcome->server_time, 1780000000);
	assert_int_equal(now->welcome->features, 0);
	citypass__frame__free_unpacked(now, NULL);
	free(b);
}

static void test_older_gate_newer_server(void **state)
{
	(void)state;
	/* an older gate's Hello: no health (the office sees "never heard"), no feature (no
	 * grant is relayed to it) */
	CitypassOld__Hello h = CITYPASS_OLD__HELLO__INIT;
	h.device_id = "pool-2";
	h.journal_epoch = 5;
	CitypassOld__Frame of = CITYPASS_OLD__FRAME__INIT;
	of.body_case = CITYPASS_OLD__FRAME__BODY_HELLO;
	of.hello = &h;
	size_t len;
	uint8_t *b = pack_old(&of, &len);
	Citypass__Frame *now = citypass__frame__unpack(NULL, len, b);
	assert_non_null(now);
	assert_string_equal(now->hello->device_id, "pool-2");
	assert_null(now->hello->health);
	assert_int_equal(now->hello->features, 0);
	citypass__frame__free_unpacked(now, NULL);
	free(b);

	/* a newer server's ack and list chunk: their positions unread by an older gate */
	Citypass__EventAck a = CITYPASS__EVENT_ACK__INIT;
	a.stream = CITYPASS__STREAM__CONSUMPTION;
	a.acked_seq = 41;
	a.journal_epoch = 5;
	a.position = 1234;
	Citypass__Frame f = CITYPASS__FRAME__INIT;
	f.body_case = CITYPASS__FRAME__BODY_EVENT_ACK;
	f.event_ack = &a;
	b = pack_new(&f, &len);
	CitypassOld__Frame *old = citypass_old__frame__unpack(NULL, len, b);
	assert_non_null(old);
	assert_int_equal(old->event_ack->acked_seq, 41);
	assert_int_equal(old->event_ack->journal_epoch, 5);
	citypass_old__frame__free_unpacked(old, NULL);
	free(b);

	uint8_t chunk[3] = {1, 2, 3}, sig[8] = {0x30};
	Citypass__ListUpdate u = CITYPASS__LIST_UPDATE__INIT;
	u.sector = 3;
	u.kind = CITYPASS__LIST_UPDATE__KIND__DELTA;
	u.base_version = 6;
	u.version = 7;
	u.chunk_count = 1;
	u.total_size = 3;
	u.data.data = chunk;
	u.data.len = 3;
	u.signature.data = sig;
	u.signature.len = sizeof(sig);
	u.consumption_position = 1234;
	f.body_case = CITYPASS__FRAME__BODY_LIST_UPDATE;
	f.list_update = &u;
	b = pack_new(&f, &len);
	old = citypass_old__frame__unpack(NULL, len, b);
	assert_non_null(old);
	assert_int_equal(old->list_update->version, 7);
	assert_int_equal(old->list_update->data.len, 3);
	assert_int_equal(old->list_update->signature.len, sizeof(sig));
	citypass_old__frame__free_unpacked(old, NULL);
	free(b);

	/* what a newer server must never send an older gate: a body it does not know */
	Citypass__PassbackGrant g = CITYPASS__PASSBACK_GRANT__INIT;
	uint8_t key[8] = {7};
	g.key.data = key;
	g.key.len = 8;
	f.body_case = CITYPASS__FRAME__BODY_PASSBACK_GRANT;
	f.passback_grant = &g;
	b = pack_new(&f, &len);
	old = citypass_old__frame__unpack(NULL, len, b);
	assert_non_null(old);
	assert_int_equal(old->body_case, CITYPASS_OLD__FRAME__BODY__NOT_SET); /* NO_BODY there */
	citypass_old__frame__free_unpacked(old, NULL);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_newer_gate_older_server),
	        cmocka_unit_test(test_older_gate_newer_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
