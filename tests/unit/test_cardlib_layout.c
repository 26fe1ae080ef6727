/*
 * test_cardlib_layout.c — the citypass card layout (cardlib/layout.h) end to end: cardlib's
 * reader side over the loopback backend, connected in-process to the bench's virtual
 * DESFire card (hil/desfire.h), which implements the card side independently.
 *
 * Personalise, then read each sector with only that sector's key; no other sector's key
 * reads it; the reader commands of a tap (selection + exchanges, a count and not a timing)
 * for a plain and a random-ID card; entries debited until exhausted; Classic and UID-only
 * tags, unknown keys, a blank card and a DES PICC key refused with their own error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cardlib/desfire.h"
#include "cardlib/error.h"
#include "cardlib/issue.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "hil/desfire.h"
#include "hil_field.h"

/* ---- a field holding one bench target, as a loopback peer ------------------------------ */

struct field {
	struct hil_field hf;
	char dir[64];
	char image[96];
	struct cardlib_reader *reader;
};

static void field_clear(struct field *f)
{
	hil_field_clear(&f->hf);
}

/* A virtual DESFire card in the field, factory-fresh with an AES PICC master key. */
static void place_desfire(struct field *f, const uint8_t uid[7], int random_id, int picc_aes)
{
	field_clear(f);
	unlink(f->image);
	struct hil_desfire_config cfg = {.random_id = random_id, .picc_key_aes = picc_aes};
	memcpy(cfg.uid, uid, 7);
	struct hil_desfire_card *card = NULL;
	assert_int_equal(hil_desfire_card_open(&card, f->image, &cfg), 0);
	hil_field_place(&f->hf, hil_desfire_card_target(card));
}

static int setup(void **state)
{
	struct field *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_cardlib_layout_XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->image, sizeof(f->image), "%s/card", f->dir);
	struct cardlib_loopback_peer peer = hil_field_peer(&f->hf);
	assert_int_equal(cardlib_loopback_new(&f->reader, &peer, 1700000000), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct field *f = *state;
	field_clear(f);
	cardlib_reader_free(f->reader);
	unlink(f->image);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- the deployment of the tests ------------------------------------------------------- */

static const uint8_t uid_a[7] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
static const uint8_t uid_b[7] = {0x04, 0xA0, 0xB1, 0xC2, 0xD3, 0xE4, 0xF5};

enum { POOL = 0, LIBRARY = 1, BUS = 3 }; /* slots; slot 2 is not on the cards */

static void make_keyset(struct cardlib_keyset *ks, uint8_t seed)
{
	memset(ks, 0, sizeof(*ks));
	ks->sys.aid = CARDLIB_LAYOUT_AID;
	memcpy(ks->sys.sys_id, "citypass-test", 13);
	ks->sys.sys_id_len = 13;
	for (int i = 0; i < CARDLIB_AES_KEY_LEN; i++) {
		ks->app_master[i] = (uint8_t)(seed + i);
		ks->picc_master[i] = (uint8_t)(seed * 3 + 0x80 + i);
	}
	ks->key_version = 1;
	const uint8_t slots[] = {POOL, LIBRARY, BUS};
	ks->n_sectors = sizeof(slots);
	for (size_t s = 0; s < ks->n_sectors; s++) {
		ks->sectors[s].slot = slots[s];
		for (int i = 0; i < CARDLIB_AES_KEY_LEN; i++)
			ks->sectors[s].master[i] = (uint8_t)(seed * 7 + 0x40 * (s + 1) + i);
	}
	ks->value_slot = POOL;
}

static void make_ids(struct cardlib_pass_ids *ids, uint8_t seed)
{
	for (size_t s = 0; s < CARDLIB_LAYOUT_SECTORS_MAX; s++)
		for (size_t i = 0; i < CARDLIB_LAYOUT_ID_LEN; i++)
			ids->id[s][i] = (uint8_t)(seed ^ (s << 4) ^ i);
}

static int issue(struct cardlib_reader *r, const struct cardlib_keyset *ks,
                 const struct cardlib_pass_ids *ids, int32_t entries)
{
	const struct cardlib_issue_opts opts = {.initial_entries = entries};
	return cardlib_card_issue(r, ks, ids, &opts);
}

static unsigned long commands(const struct cardlib_reader *r)
{
	return r->stats.selects + r->stats.exchanges;
}

/* A personalised card in the field: keyset seed 1, pass seed 0x5A, entries as asked. */
static void personalised_card(struct field *f, struct cardlib_keyset *ks,
                              struct cardlib_pass_ids *ids, int random_id, int32_t entries)
{
	make_keyset(ks, 1);
	make_ids(ids, 0x5A);
	place_desfire(f, uid_a, random_id, 1);
	assert_int_equal(issue(f->reader, ks, ids, entries), 0);
}

/* A session of cardlib's DESFire layer on a plain card (uid_a), authenticated with a
 * sector's read key: to ask the card itself what it allows. */
static struct cardlib_desfire *raw_session(struct field *f, const struct cardlib_sector_key *k)
{
	struct cardlib_target_info info;
	struct cardlib_desfire *d = NULL;
	uint8_t key[CARDLIB_AES_KEY_LEN];
	assert_int_equal(cardlib_reader_select(f->reader, &info), 1);
	assert_int_equal(cardlib_desfire_open(&d, f->reader, &info), 0);
	assert_int_equal(cardlib_desfire_select_application(d, k->sys.aid), 0);
	assert_int_equal(cardlib_layout_read_key(&k->sys, k->master, uid_a, 7, key), 0);
	assert_int_equal(cardlib_desfire_authenticate(d, CARDLIB_AUTH_EV2,
	                                              CARDLIB_LAYOUT_READ_KEY(k->slot), key),
	                 0);
	return d;
}

static void end_raw_session(struct field *f, struct cardlib_desfire *d)
{
	cardlib_desfire_close(d);
	cardlib_reader_release(f->reader);
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_each_sector_reads_its_own_identifier(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	personalised_card(f, &ks, &ids, 0, 10);
	for (size_t s = 0; s < ks.n_sectors; s++) {
		struct cardlib_sector_key key;
		struct cardlib_card_read read;
		assert_int_equal(cardlib_keyset_sector_key(&ks, s, &key), 0);
		assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
		assert_memory_equal(read.id, ids.id[s], CARDLIB_LAYOUT_ID_LEN);
		assert_int_equal(read.uid_len, 7);
		assert_memory_equal(read.uid, uid_a, 7);
		assert_false(read.random_id);
		assert_int_equal(read.has_value, ks.sectors[s].slot == POOL);
		if (read.has_value)
			assert_int_equal(read.value, 10);
		/* EV1 AES, the fallback, reads the same */
		key.auth = CARDLIB_AUTH_EV1;
		memset(&read, 0, sizeof(read));
		assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
		assert_memory_equal(read.id, ids.id[s], CARDLIB_LAYOUT_ID_LEN);
	}
}

static void test_another_sectors_key_cannot_read(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	personalised_card(f, &ks, &ids, 0, CARDLIB_LAYOUT_NO_VALUE);
	struct cardlib_sector_key pool, library;
	struct cardlib_card_read read;
	assert_int_equal(cardlib_keyset_sector_key(&ks, 0, &pool), 0);
	assert_int_equal(cardlib_keyset_sector_key(&ks, 1, &library), 0);

	/* the pool gate tries the library's slot with the only master it holds */
	struct cardlib_sector_key k = pool;
	k.slot = LIBRARY;
	assert_int_equal(cardlib_card_read_sector(f->reader, &k, &read), CARDLIB_ERR_AUTH);
	/* a slot the card does not carry (its key is the card's AMK), and one beyond its keys */
	k.slot = 2;
	assert_int_equal(cardlib_card_read_sector(f->reader, &k, &read), CARDLIB_ERR_AUTH);
	k.slot = 5;
	assert_int_equal(cardlib_card_read_sector(f->reader, &k, &read), CARDLIB_ERR_AUTH);

	/* authenticated as the pool, the card itself refuses the library's file */
	uint8_t id[CARDLIB_LAYOUT_ID_LEN];
	struct cardlib_desfire *d = raw_session(f, &pool);
	assert_int_equal(cardlib_desfire_read_data(d, CARDLIB_LAYOUT_FILE(LIBRARY), 0,
	                                           CARDLIB_LAYOUT_ID_LEN, CARDLIB_COMM_FULL, id),
	                 CARDLIB_ERR_PERMISSION);
	end_raw_session(f, d);

	/* and the library gate still reads its own */
	assert_int_equal(cardlib_card_read_sector(f->reader, &library, &read), 0);
	assert_memory_equal(read.id, ids.id[1], CARDLIB_LAYOUT_ID_LEN);
}

static void test_plain_card_tap_is_5_reader_commands(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	personalised_card(f, &ks, &ids, 0, 10);
	struct cardlib_sector_key key;
	struct cardlib_card_read read;
	assert_int_equal(cardlib_keyset_sector_key(&ks, 1, &key), 0); /* library: no value */
	cardlib_reader_reset_stats(f->reader);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
	print_message("plain card: %lu selects + %lu exchanges, %lu bytes out, %lu in\n",
	              f->reader->stats.selects, f->reader->stats.exchanges,
	              f->reader->stats.tx_bytes, f->reader->stats.rx_bytes);
	assert_true(commands(f->reader) <= 5);
	assert_memory_equal(read.id, ids.id[1], CARDLIB_LAYOUT_ID_LEN);
	/* the value sector's gate pays one GetValue more */
	assert_int_equal(cardlib_keyset_sector_key(&ks, 0, &key), 0);
	cardlib_reader_reset_stats(f->reader);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
	assert_true(commands(f->reader) <= 6);
}

/* DESIGN.md s.9 budgets 7; two authentications of two exchanges each make it 8 (layout.h). */
static void test_random_id_card_tap_is_8_reader_commands(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	personalised_card(f, &ks, &ids, 1, CARDLIB_LAYOUT_NO_VALUE);
	struct cardlib_sector_key key;
	struct cardlib_card_read read;
	assert_int_equal(cardlib_keyset_sector_key(&ks, 2, &key), 0);
	cardlib_reader_reset_stats(f->reader);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
	print_message("random-ID card: %lu selects + %lu exchanges, %lu bytes out, %lu in\n",
	              f->reader->stats.selects, f->reader->stats.exchanges,
	              f->reader->stats.tx_bytes, f->reader->stats.rx_bytes);
	assert_true(commands(f->reader) <= 8);
	assert_true(read.random_id);
	assert_int_equal(read.uid_len, 7);
	assert_memory_equal(read.uid, uid_a, 7);
	assert_memory_equal(read.id, ids.id[2], CARDLIB_LAYOUT_ID_LEN);
	/* a new random ID at the next tap, the same real UID behind it */
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
	assert_memory_equal(read.uid, uid_a, 7);
}

static void test_entries_debited_until_exhausted(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	personalised_card(f, &ks, &ids, 0, 3);
	struct cardlib_sector_key pool, library;
	assert_int_equal(cardlib_keyset_sector_key(&ks, 0, &pool), 0);
	assert_int_equal(cardlib_keyset_sector_key(&ks, 1, &library), 0);
	for (int32_t left = 3; left > 0; left--) {
		struct cardlib_card *c = NULL;
		struct cardlib_card_read read;
		int32_t remaining = -1;
		assert_int_equal(cardlib_card_open_sector(&c, f->reader, &pool, &read), 0);
		assert_true(read.has_value);
		assert_int_equal(read.value, left);
		cardlib_reader_reset_stats(f->reader);
		assert_int_equal(cardlib_card_debit_entry(c, &remaining), 0);
		assert_int_equal(commands(f->reader), 2); /* Debit, CommitTransaction */
		assert_int_equal(remaining, left - 1);
		cardlib_card_close(c);
	}
	struct cardlib_card *c = NULL;
	struct cardlib_card_read read;
	int32_t remaining = -1;
	assert_int_equal(cardlib_card_open_sector(&c, f->reader, &pool, &read), 0);
	assert_int_equal(read.value, 0);
	assert_int_equal(cardlib_card_debit_entry(c, &remaining), CARDLIB_ERR_VALUE_EXHAUSTED);
	cardlib_card_close(c);
	/* and the card agrees: its lower limit refuses a debit */
	struct cardlib_desfire *d = raw_session(f, &pool);
	assert_int_equal(cardlib_desfire_debit(d, CARDLIB_LAYOUT_VALUE_FILE, CARDLIB_COMM_FULL, 1),
	                 CARDLIB_ERR_VALUE_EXHAUSTED);
	end_raw_session(f, d);
	/* the library's gates sell no entries */
	assert_int_equal(cardlib_card_open_sector(&c, f->reader, &library, &read), 0);
	assert_int_equal(cardlib_card_debit_entry(c, &remaining), CARDLIB_ERR_LAYOUT);
	cardlib_card_close(c);
}

static void test_classic_and_uid_only_are_not_desfire(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	struct cardlib_sector_key key;
	struct cardlib_card_read read;
	make_keyset(&ks, 1);
	make_ids(&ids, 0x5A);
	assert_int_equal(cardlib_keyset_sector_key(&ks, 0, &key), 0);
	static const uint8_t uid4[4] = {0xDE, 0xAD, 0xBE, 0xEF};

	field_clear(f);
	struct hil_target t;
	assert_int_equal(hil_classic1k_target_new(&t, uid4), 0);
	hil_field_place(&f->hf, t);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), CARDLIB_ERR_NOT_DESFIRE);
	assert_int_equal(issue(f->reader, &ks, &ids, 10), CARDLIB_ERR_NOT_DESFIRE);

	field_clear(f);
	assert_int_equal(hil_uid_only_target_new(&t, uid_b), 0);
	hil_field_place(&f->hf, t);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), CARDLIB_ERR_NOT_DESFIRE);
	assert_int_equal(issue(f->reader, &ks, &ids, 10), CARDLIB_ERR_NOT_DESFIRE);

	field_clear(f);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), CARDLIB_ERR_NO_CARD);
}

static void test_unknown_keys_are_auth(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks, other;
	struct cardlib_pass_ids ids;
	struct cardlib_sector_key key;
	struct cardlib_card_read read;
	personalised_card(f, &ks, &ids, 0, 10);
	make_keyset(&other, 2); /* another deployment's masters, same AID and slots */
	assert_int_equal(cardlib_keyset_sector_key(&other, 0, &key), 0);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), CARDLIB_ERR_AUTH);
	/* the right master under another system identifier diversifies other keys */
	assert_int_equal(cardlib_keyset_sector_key(&ks, 0, &key), 0);
	key.sys.sys_id[0] ^= 1;
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), CARDLIB_ERR_AUTH);
	/* another issuer cannot issue it again: its PICC master key is the first issuer's */
	assert_int_equal(issue(f->reader, &other, &ids, 5), CARDLIB_ERR_CARD_FOREIGN);
	assert_int_equal(cardlib_keyset_sector_key(&ks, 0, &key), 0);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
	/* a random-ID card with unknown keys fails at the UID key */
	personalised_card(f, &ks, &ids, 1, 10);
	assert_int_equal(cardlib_keyset_sector_key(&other, 0, &key), 0);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), CARDLIB_ERR_AUTH);
}

static void test_blank_card_and_des_picc(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	struct cardlib_sector_key key;
	struct cardlib_card_read read;
	make_keyset(&ks, 1);
	make_ids(&ids, 0x5A);
	assert_int_equal(cardlib_keyset_sector_key(&ks, 0, &key), 0);
	place_desfire(f, uid_b, 0, 1);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), CARDLIB_ERR_APP_MISSING);
	/* as NXP ships them: DES PICC master key (test_cardlib_issue.c for the rest) */
	place_desfire(f, uid_b, 0, 0);
	assert_int_equal(issue(f->reader, &ks, &ids, 10), 0);
	assert_int_equal(cardlib_card_read_sector(f->reader, &key, &read), 0);
}

static void test_keyset_refusals(void **state)
{
	struct field *f = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	make_keyset(&ks, 1);
	make_ids(&ids, 0x5A);
	struct cardlib_keyset bad = ks;
	bad.sectors[1].slot = POOL; /* twice the same slot */
	assert_int_equal(issue(f->reader, &bad, &ids, 1), CARDLIB_ERR_ARG);
	bad = ks;
	bad.sectors[0].slot = CARDLIB_LAYOUT_SECTORS_MAX;
	assert_int_equal(issue(f->reader, &bad, &ids, 1), CARDLIB_ERR_ARG);
	bad = ks;
	bad.value_slot = -1; /* entries but no sector to debit them */
	assert_int_equal(issue(f->reader, &bad, &ids, 1), CARDLIB_ERR_ARG);
	assert_int_equal(issue(f->reader, &ks, &ids, CARDLIB_LAYOUT_ENTRIES_MAX + 1),
	                 CARDLIB_ERR_ARG);
	/* the two keys of a sector differ, and depend on the UID only for the read key */
	uint8_t r1[16], r2[16], u1[16];
	assert_int_equal(cardlib_layout_read_key(&ks.sys, ks.sectors[0].master, uid_a, 7, r1), 0);
	assert_int_equal(cardlib_layout_read_key(&ks.sys, ks.sectors[0].master, uid_b, 7, r2), 0);
	assert_int_equal(cardlib_layout_uid_key(&ks.sys, ks.sectors[0].master, u1), 0);
	assert_memory_not_equal(r1, r2, 16);
	assert_memory_not_equal(r1, u1, 16);
	assert_int_equal(cardlib_layout_read_key(&ks.sys, ks.sectors[0].master, uid_a, 4, r1),
	                 CARDLIB_ERR_ARG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_each_sector_reads_its_own_identifier, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_another_sectors_key_cannot_read, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_plain_card_tap_is_5_reader_commands, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_random_id_card_tap_is_8_reader_commands, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_entries_debited_until_exhausted, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_classic_and_uid_only_are_not_desfire, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_unknown_keys_are_auth, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_blank_card_and_des_picc, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_keyset_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
