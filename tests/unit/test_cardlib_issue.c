/*
 * test_cardlib_issue.c — a card's life at the desk (cardlib/issue.h), in-process against the
 * bench's virtual card (hil/desfire.h, written independently and checked against
 * libfreefare): issuing cards as NXP ships them (PICC master key DES, AES or 3K3DES zeros),
 * what issuing protects, refusals, inspection, taking back, key versions, and a card pulled
 * from the field after every single exchange of issuing, taking back and moving keys.
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

static const uint8_t uid_a[7] = {0x04, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60};
static const uint8_t zero[24];

/* ---- a field whose card can be pulled away ------------------------------------------------ */

/* The bench's card in a field, behind a peer that lets `budget` exchanges through and then
 * pulls the card: the exchange that spends the budget reaches the card (which executes it,
 * whole: DESFire commands are atomic) but its answer is lost, and the field is empty after. */
struct world {
	struct hil_field hf;
	struct cardlib_loopback_peer inner;
	long budget; /* < 0: no pull */
	int pulled;
	char dir[64], image[96];
	struct cardlib_reader *reader;
};

static int tear_info(void *ctx, struct cardlib_target_info *info)
{
	struct world *w = ctx;
	return w->pulled ? 0 : w->inner.info(w->inner.ctx, info);
}

static int tear_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t cap)
{
	struct world *w = ctx;
	if (w->pulled)
		return CARDLIB_ERR_TIMEOUT;
	int n = w->inner.exchange(w->inner.ctx, tx, tx_len, rx, cap);
	if (w->budget >= 0 && --w->budget < 0) {
		w->pulled = 1;
		w->inner.release(w->inner.ctx); /* out of the field: the card forgets its session */
		return CARDLIB_ERR_TIMEOUT;
	}
	return n;
}

static void tear_release(void *ctx)
{
	struct world *w = ctx;
	w->inner.release(w->inner.ctx);
}

/* A factory-fresh card in the field (PICC key DES zeros, or AES zeros with picc_aes). */
static void place(struct world *w, const uint8_t uid[7], int picc_aes)
{
	hil_field_clear(&w->hf);
	unlink(w->image);
	struct hil_desfire_config cfg = {.picc_key_aes = picc_aes};
	memcpy(cfg.uid, uid, 7);
	struct hil_desfire_card *card = NULL;
	assert_int_equal(hil_desfire_card_open(&card, w->image, &cfg), 0);
	hil_field_place(&w->hf, hil_desfire_card_target(card));
	w->budget = -1;
	w->pulled = 0;
}

/* The agent puts the pulled card back on the reader. */
static void put_back(struct world *w)
{
	w->budget = -1;
	w->pulled = 0;
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	assert_non_null(w);
	snprintf(w->dir, sizeof(w->dir), "/tmp/test_cardlib_issue_XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(w->image, sizeof(w->image), "%s/card.img", w->dir);
	w->inner = hil_field_peer(&w->hf);
	const struct cardlib_loopback_peer peer = {
	        .info = tear_info, .exchange = tear_exchange, .release = tear_release, .ctx = w};
	assert_int_equal(cardlib_loopback_new(&w->reader, &peer, 0), 0);
	w->budget = -1;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	cardlib_reader_free(w->reader);
	hil_field_clear(&w->hf);
	unlink(w->image);
	rmdir(w->dir);
	free(w);
	return 0;
}

/* ---- keys and passes ----------------------------------------------------------------------- */

enum { POOL = 0, LIBRARY = 1 };

static void make_keyset(struct cardlib_keyset *ks, uint8_t seed, int random_id)
{
	memset(ks, 0, sizeof(*ks));
	ks->sys.aid = CARDLIB_LAYOUT_AID;
	memcpy(ks->sys.sys_id, "issue-test", 10);
	ks->sys.sys_id_len = 10;
	for (int i = 0; i < 16; i++) {
		ks->app_master[i] = (uint8_t)(seed + i);
		ks->picc_master[i] = (uint8_t)(seed * 5 + 0x90 + i);
	}
	ks->key_version = 1;
	ks->picc_version = 1;
	ks->random_id = random_id;
	ks->n_sectors = 2;
	for (size_t s = 0; s < 2; s++) {
		ks->sectors[s].slot = (uint8_t)s;
		ks->sectors[s].version = 1;
		for (int i = 0; i < 16; i++)
			ks->sectors[s].master[i] = (uint8_t)(seed * 3 + 0x40 * (s + 1) + i);
	}
	ks->value_slot = POOL;
}

/* Sector `index` gets a new master at version + 1, the old one kept as previous. */
static void rotate(struct cardlib_keyset *ks, size_t index)
{
	struct cardlib_layout_sector *s = &ks->sectors[index];
	memcpy(s->previous, s->master, 16);
	s->previous_version = s->version;
	s->has_previous = 1;
	s->version++;
	for (int i = 0; i < 16; i++) /* never an earlier version's key again */
		s->master[i] = (uint8_t)(s->master[i] * 7 + s->version);
}

static void make_ids(struct cardlib_pass_ids *ids, uint8_t seed)
{
	for (size_t s = 0; s < CARDLIB_LAYOUT_SECTORS_MAX; s++)
		for (size_t i = 0; i < CARDLIB_LAYOUT_ID_LEN; i++)
			ids->id[s][i] = (uint8_t)(seed ^ (s << 4) ^ i);
}

static int issue(struct world *w, const struct cardlib_keyset *ks,
                 const struct cardlib_pass_ids *ids, const uint8_t *replace_uid)
{
	const struct cardlib_issue_opts opts = {.initial_entries = 10, .replace_uid = replace_uid};
	return cardlib_card_issue(w->reader, ks, ids, &opts);
}

/* A gate of sector `index` reads the card: 0 and the identifier is ids', or an error. */
static int gate_reads(struct world *w, const struct cardlib_keyset *ks, size_t index,
                      const struct cardlib_pass_ids *ids, struct cardlib_card_read *out)
{
	struct cardlib_sector_key key;
	struct cardlib_card_read read;
	assert_int_equal(cardlib_keyset_sector_key(ks, index, &key), 0);
	int rc = cardlib_card_read_sector(w->reader, &key, &read);
	if (rc == 0)
		assert_memory_equal(read.id, ids->id[index], CARDLIB_LAYOUT_ID_LEN);
	if (out)
		*out = read;
	return rc;
}

/* A raw DESFire session on the card in the field, at PICC level. */
static struct cardlib_desfire *raw(struct world *w, struct cardlib_target_info *info)
{
	struct cardlib_desfire *d = NULL;
	assert_int_equal(cardlib_reader_select(w->reader, info), 1);
	assert_int_equal(cardlib_desfire_open(&d, w->reader, info), 0);
	assert_int_equal(cardlib_desfire_select_application(d, 0), 0);
	return d;
}

static void raw_end(struct world *w, struct cardlib_desfire *d)
{
	cardlib_desfire_close(d);
	cardlib_reader_release(w->reader);
}

/* ---- issuing -------------------------------------------------------------------------------- */

static void test_issue_each_factory_key_type(void **state)
{
	struct world *w = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	struct cardlib_card_report rep;
	make_keyset(&ks, 1, 0);
	make_ids(&ids, 0x11);
	for (int type = 0; type < 3; type++) {
		place(w, uid_a, type == 1);
		if (type == 2) { /* a batch shipped with 3K3DES zeros */
			struct cardlib_target_info info;
			struct cardlib_desfire *d = raw(w, &info);
			struct cardlib_key des0, k3;
			cardlib_key_make(&des0, CARDLIB_KEY_DES, zero, 16, 0);
			cardlib_key_make(&k3, CARDLIB_KEY_3K3DES, zero, 24, 0);
			assert_int_equal(
			        cardlib_desfire_authenticate_key(d, CARDLIB_AUTH_LEGACY, 0, &des0),
			        0);
			assert_int_equal(cardlib_desfire_change_key_ex(d, 0, &k3, NULL), 0);
			raw_end(w, d);
		}
		assert_int_equal(cardlib_card_inspect(w->reader, &ks, &rep), 0);
		assert_int_equal(rep.state, CARDLIB_CARD_BLANK);
		assert_int_equal(rep.picc_key_type, type == 0   ? CARDLIB_KEY_DES
		                                    : type == 1 ? CARDLIB_KEY_AES
		                                                : CARDLIB_KEY_3K3DES);
		assert_int_equal(issue(w, &ks, &ids, NULL), 0);
		assert_int_equal(gate_reads(w, &ks, POOL, &ids, NULL), 0);
		assert_int_equal(gate_reads(w, &ks, LIBRARY, &ids, NULL), 0);
		assert_int_equal(cardlib_card_inspect(w->reader, &ks, &rep), 0);
		assert_int_equal(rep.state, CARDLIB_CARD_OURS);
		assert_true(rep.has_app && rep.has_value && rep.value == 10);
		assert_memory_equal(rep.uid, uid_a, 7);
		for (size_t s = 0; s < 2; s++) {
			assert_true(rep.sectors[s].readable && rep.sectors[s].current);
			assert_memory_equal(rep.sectors[s].id, ids.id[s], 16);
		}
	}
}

/* After issuing, the public default keys open and format nothing, nothing can be created or
 * listed without the card's own PICC key, and the card shows a new random UID each time. */
static void test_issued_card_is_protected(void **state)
{
	struct world *w = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	make_keyset(&ks, 1, 1);
	make_ids(&ids, 0x22);
	place(w, uid_a, 0);
	assert_int_equal(issue(w, &ks, &ids, NULL), 0);

	struct cardlib_target_info info;
	struct cardlib_desfire *d = raw(w, &info);
	struct cardlib_key des0, aes0, k30;
	cardlib_key_make(&des0, CARDLIB_KEY_DES, zero, 16, 0);
	cardlib_key_make(&aes0, CARDLIB_KEY_AES, zero, 16, 0);
	cardlib_key_make(&k30, CARDLIB_KEY_3K3DES, zero, 24, 0);
	assert_int_equal(cardlib_desfire_authenticate_key(d, CARDLIB_AUTH_LEGACY, 0, &des0),
	                 CARDLIB_ERR_AUTH);
	assert_int_equal(cardlib_desfire_authenticate_key(d, CARDLIB_AUTH_ISO, 0, &des0),
	                 CARDLIB_ERR_AUTH);
	assert_int_equal(cardlib_desfire_authenticate_key(d, CARDLIB_AUTH_EV2, 0, &aes0),
	                 CARDLIB_ERR_AUTH);
	assert_int_equal(cardlib_desfire_authenticate_key(d, CARDLIB_AUTH_EV1, 0, &aes0),
	                 CARDLIB_ERR_AUTH);
	assert_int_equal(cardlib_desfire_authenticate_key(d, CARDLIB_AUTH_ISO, 0, &k30),
	                 CARDLIB_ERR_AUTH);
	/* without the card's PICC key: no format, no new application, no listing */
	assert_int_equal(cardlib_desfire_format_picc(d), CARDLIB_ERR_AUTH);
	assert_int_equal(cardlib_desfire_create_application(d, 0x424242, 0x0F, 1),
	                 CARDLIB_ERR_AUTH);
	size_t n = 0;
	assert_int_equal(cardlib_desfire_get_application_ids(d, NULL, 0, &n), CARDLIB_ERR_AUTH);
	uint8_t settings, keys;
	assert_int_equal(cardlib_desfire_get_key_settings(d, &settings, &keys), CARDLIB_ERR_AUTH);
	/* with it: settings 09, an AES key at the issuer's PICC key version */
	uint8_t picc[16];
	assert_int_equal(cardlib_issue_picc_key(&ks, uid_a, picc), 0);
	assert_int_equal(cardlib_desfire_authenticate(d, CARDLIB_AUTH_EV2, 0, picc), 0);
	assert_int_equal(cardlib_desfire_get_key_settings(d, &settings, &keys), 0);
	assert_int_equal(settings, CARDLIB_ISSUED_PICC_SETTINGS);
	assert_int_equal(keys, 0x81);
	uint8_t version = 0;
	assert_int_equal(cardlib_desfire_get_key_version(d, 0, &version), 0);
	assert_int_equal(version, ks.picc_version);
	raw_end(w, d);
	/* random ID: an anonymous UID, another one at each session */
	uint8_t first[4];
	d = raw(w, &info);
	assert_int_equal(info.uid_len, 4);
	assert_int_equal(info.uid[0], 0x08);
	memcpy(first, info.uid, 4);
	raw_end(w, d);
	d = raw(w, &info);
	assert_int_equal(info.uid_len, 4);
	assert_memory_not_equal(first, info.uid, 4);
	raw_end(w, d);
	/* and the gates still read it, through GetCardUID */
	struct cardlib_card_read read;
	assert_int_equal(gate_reads(w, &ks, POOL, &ids, &read), 0);
	assert_true(read.random_id);
	assert_memory_equal(read.uid, uid_a, 7);

	/* a deployment with random ID off keeps the card's UID */
	make_keyset(&ks, 1, 0);
	place(w, uid_a, 0);
	assert_int_equal(issue(w, &ks, &ids, NULL), 0);
	d = raw(w, &info);
	assert_int_equal(info.uid_len, 7);
	raw_end(w, d);
}

static void test_refusals(void **state)
{
	struct world *w = *state;
	struct cardlib_keyset ks, other;
	struct cardlib_pass_ids ids, ids2;
	make_keyset(&ks, 1, 1);
	make_keyset(&other, 9, 1);
	make_ids(&ids, 0x33);
	make_ids(&ids2, 0x44);
	place(w, uid_a, 0);
	assert_int_equal(issue(w, &ks, &ids, NULL), 0);
	/* ours: not again unless the caller names it (checked: it holds no live pass) */
	assert_int_equal(issue(w, &ks, &ids2, NULL), CARDLIB_ERR_CARD_ISSUED);
	static const uint8_t other_uid[7] = {0x04, 1, 2, 3, 4, 5, 6};
	assert_int_equal(issue(w, &ks, &ids2, other_uid), CARDLIB_ERR_CARD_ISSUED);
	assert_int_equal(gate_reads(w, &ks, POOL, &ids, NULL), 0);
	/* another deployment's card */
	assert_int_equal(issue(w, &other, &ids2, NULL), CARDLIB_ERR_CARD_FOREIGN);
	assert_int_equal(cardlib_card_recycle(w->reader, &other, uid_a), CARDLIB_ERR_CARD_FOREIGN);
	struct cardlib_card_report rep;
	assert_int_equal(cardlib_card_inspect(w->reader, &other, &rep), 0);
	assert_int_equal(rep.state, CARDLIB_CARD_FOREIGN);
	assert_false(rep.uid_known); /* random ID, and none of its keys open it */
	/* named: taken back and issued again, in one go */
	assert_int_equal(issue(w, &ks, &ids2, uid_a), 0);
	assert_int_equal(gate_reads(w, &ks, POOL, &ids2, NULL), 0);
	/* the field empty */
	hil_field_clear(&w->hf);
	assert_int_equal(issue(w, &ks, &ids, NULL), CARDLIB_ERR_NO_CARD);
	struct cardlib_keyset bad = ks;
	bad.n_sectors = 0;
	assert_int_equal(issue(w, &bad, &ids, NULL), CARDLIB_ERR_ARG);
}

static void test_recycle(void **state)
{
	struct world *w = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	struct cardlib_card_report rep;
	make_keyset(&ks, 1, 1);
	make_ids(&ids, 0x55);
	place(w, uid_a, 0);
	assert_int_equal(issue(w, &ks, &ids, NULL), 0);
	static const uint8_t other_uid[7] = {0x04, 9, 9, 9, 9, 9, 9};
	assert_int_equal(cardlib_card_recycle(w->reader, &ks, other_uid), CARDLIB_ERR_CARD_ISSUED);
	assert_int_equal(cardlib_card_recycle(w->reader, &ks, uid_a), 0);
	assert_int_equal(cardlib_card_inspect(w->reader, &ks, &rep), 0);
	assert_int_equal(rep.state, CARDLIB_CARD_BLANK);
	assert_int_equal(rep.picc_key_type, CARDLIB_KEY_DES);
	assert_true(rep.settings_known);
	assert_int_equal(rep.picc_settings, CARDLIB_FACTORY_PICC_SETTINGS);
	assert_false(rep.has_app);
	assert_true(rep.random_id); /* for good */
	assert_int_equal(gate_reads(w, &ks, POOL, &ids, NULL), CARDLIB_ERR_APP_MISSING);
	/* the public key formats it, as any blank card */
	struct cardlib_target_info info;
	struct cardlib_desfire *d = raw(w, &info);
	struct cardlib_key des0;
	cardlib_key_make(&des0, CARDLIB_KEY_DES, zero, 16, 0);
	assert_int_equal(cardlib_desfire_authenticate_key(d, CARDLIB_AUTH_LEGACY, 0, &des0), 0);
	assert_int_equal(cardlib_desfire_format_picc(d), 0);
	raw_end(w, d);
	/* and it is issued again */
	make_ids(&ids, 0x66);
	assert_int_equal(issue(w, &ks, &ids, NULL), 0);
	assert_int_equal(gate_reads(w, &ks, LIBRARY, &ids, NULL), 0);
}

/* ---- key versions ------------------------------------------------------------------------- */

static void check_rotation(struct world *w, int random_id)
{
	struct cardlib_keyset ks, old;
	struct cardlib_pass_ids ids;
	struct cardlib_card_read read;
	struct cardlib_card_report rep;
	make_keyset(&ks, 1, random_id);
	make_ids(&ids, 0x77);
	place(w, uid_a, 0);
	assert_int_equal(issue(w, &ks, &ids, NULL), 0);
	old = ks;
	rotate(&ks, POOL);
	/* a gate with the new bundle (new + previous) reads the card still at the old version */
	cardlib_reader_reset_stats(w->reader);
	assert_int_equal(gate_reads(w, &ks, POOL, &ids, &read), 0);
	assert_true(read.previous_key);
	assert_int_equal(read.key_version, 1);
	/* the old card's keys are stale at the desk */
	assert_int_equal(cardlib_card_inspect(w->reader, &ks, &rep), 0);
	assert_false(rep.sectors[POOL].current);
	assert_int_equal(rep.sectors[POOL].version, 1);
	assert_true(rep.sectors[POOL].readable);
	assert_true(rep.sectors[LIBRARY].current);
	size_t moved = 0;
	assert_int_equal(cardlib_card_update_keys(w->reader, &ks, uid_a, &moved), 0);
	assert_int_equal(moved, 1);
	assert_int_equal(cardlib_card_update_keys(w->reader, &ks, uid_a, &moved), 0);
	assert_int_equal(moved, 0);
	assert_int_equal(cardlib_card_inspect(w->reader, &ks, &rep), 0);
	assert_true(rep.sectors[POOL].current);
	assert_int_equal(rep.sectors[POOL].version, 2);
	/* moved: the current key opens it at once; a gate with only the old key no longer */
	assert_int_equal(gate_reads(w, &ks, POOL, &ids, &read), 0);
	assert_false(read.previous_key);
	assert_int_equal(read.key_version, 2);
	assert_int_equal(gate_reads(w, &old, POOL, &ids, NULL), CARDLIB_ERR_AUTH);
	/* the other sector did not move */
	assert_int_equal(gate_reads(w, &old, LIBRARY, &ids, NULL), 0);
	/* a new card is issued at the new version; an old gate cannot read it */
	place(w, uid_a, 0);
	assert_int_equal(issue(w, &ks, &ids, NULL), 0);
	assert_int_equal(gate_reads(w, &ks, POOL, &ids, &read), 0);
	assert_false(read.previous_key);
	assert_int_equal(gate_reads(w, &old, POOL, &ids, NULL), CARDLIB_ERR_AUTH);
	/* rotated twice, version 1 is gone: a card still at 1 is refused at the gate and the
	 * desk cannot move it (it needs a new card) */
	place(w, uid_a, 0);
	assert_int_equal(issue(w, &old, &ids, NULL), 0);
	rotate(&ks, POOL);
	assert_int_equal(gate_reads(w, &ks, POOL, &ids, NULL), CARDLIB_ERR_AUTH);
	assert_int_equal(cardlib_card_update_keys(w->reader, &ks, uid_a, &moved), CARDLIB_ERR_AUTH);
}

static void test_key_rotation(void **state)
{
	check_rotation(*state, 0);
}

static void test_key_rotation_random_id(void **state)
{
	check_rotation(*state, 1);
}

/* ---- the card pulled away at every step ------------------------------------------------------ */

/* Exchanges the whole operation takes on a fresh card (the budget to pull before). */
static long exchanges_of(struct world *w, int (*op)(struct world *, void *), void *arg)
{
	cardlib_reader_reset_stats(w->reader);
	assert_int_equal(op(w, arg), 0);
	return (long)w->reader->stats.exchanges;
}

struct issue_arg {
	struct cardlib_keyset *ks;
	struct cardlib_pass_ids *ids;
	const uint8_t *replace_uid;
};

static int op_issue(struct world *w, void *arg)
{
	struct issue_arg *a = arg;
	return issue(w, a->ks, a->ids, a->replace_uid);
}

static int op_recycle(struct world *w, void *arg)
{
	return cardlib_card_recycle(w->reader, arg, uid_a);
}

/* After a pull, the card is blank (a factory PICC key: anyone may format it, the issuing
 * side takes it as bought) or completely issued (ours, every sector and the value read,
 * settings and random ID done); never anything else. */
static void assert_blank_or_issued(struct world *w, const struct cardlib_keyset *ks,
                                   const struct cardlib_pass_ids *ids, long k, int *issued)
{
	struct cardlib_card_report rep;
	assert_int_equal(cardlib_card_inspect(w->reader, ks, &rep), 0);
	if (rep.state == CARDLIB_CARD_BLANK) {
		*issued = 0;
		return;
	}
	if (rep.state != CARDLIB_CARD_OURS)
		fail_msg("pulled after %ld exchanges: the card is neither blank nor ours", k);
	*issued = 1;
	assert_true(rep.has_app && rep.has_value && rep.value == 10);
	for (size_t s = 0; s < ks->n_sectors; s++) {
		assert_true(rep.sectors[s].readable);
		assert_memory_equal(rep.sectors[s].id, ids->id[s], 16);
	}
	assert_true(rep.random_id == (ks->random_id != 0));
}

static void test_pull_during_issue(void **state)
{
	struct world *w = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	make_keyset(&ks, 1, 1);
	make_ids(&ids, 0x88);
	struct issue_arg arg = {&ks, &ids, NULL};
	place(w, uid_a, 0);
	const long total = exchanges_of(w, op_issue, &arg);
	assert_true(total > 20);
	int seen_blank = 0, seen_issued = 0;
	for (long k = 0; k < total; k++) {
		place(w, uid_a, 0);
		w->budget = k;
		assert_int_not_equal(issue(w, &ks, &ids, NULL), 0);
		put_back(w);
		int issued = 0;
		assert_blank_or_issued(w, &ks, &ids, k, &issued);
		seen_blank |= !issued;
		seen_issued |= issued;
		/* whatever the state, issuing again finishes the card (an issued one is taken
		 * back first: the pass it holds was never committed) */
		assert_int_equal(issue(w, &ks, &ids, issued ? uid_a : NULL), 0);
		assert_int_equal(gate_reads(w, &ks, POOL, &ids, NULL), 0);
	}
	/* the last command is what makes the card ours: pulled as it runs, the card is done
	 * but the desk never heard so */
	assert_true(seen_blank && seen_issued);
}

static void test_pull_during_recycle(void **state)
{
	struct world *w = *state;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	make_keyset(&ks, 1, 1);
	make_ids(&ids, 0x99);
	struct issue_arg arg = {&ks, &ids, NULL};
	place(w, uid_a, 0);
	assert_int_equal(op_issue(w, &arg), 0);
	const long total = exchanges_of(w, op_recycle, &ks);
	for (long k = 0; k < total; k++) {
		place(w, uid_a, 0);
		assert_int_equal(op_issue(w, &arg), 0);
		w->budget = k;
		assert_int_not_equal(cardlib_card_recycle(w->reader, &ks, uid_a), 0);
		put_back(w);
		int issued = 0;
		assert_blank_or_issued(w, &ks, &ids, k, &issued);
		/* recycling again finishes the job, from either state */
		assert_int_equal(cardlib_card_recycle(w->reader, &ks, uid_a), 0);
		struct cardlib_card_report rep;
		assert_int_equal(cardlib_card_inspect(w->reader, &ks, &rep), 0);
		assert_int_equal(rep.state, CARDLIB_CARD_BLANK);
		assert_false(rep.has_app);
	}
}

static void test_pull_during_key_update(void **state)
{
	struct world *w = *state;
	struct cardlib_keyset ks, old;
	struct cardlib_pass_ids ids;
	make_keyset(&ks, 1, 1);
	make_ids(&ids, 0xAA);
	old = ks;
	rotate(&ks, POOL);
	rotate(&ks, LIBRARY);
	struct issue_arg arg = {&old, &ids, NULL};
	size_t moved = 0;
	place(w, uid_a, 0);
	assert_int_equal(op_issue(w, &arg), 0);
	cardlib_reader_reset_stats(w->reader);
	assert_int_equal(cardlib_card_update_keys(w->reader, &ks, uid_a, &moved), 0);
	const long total = (long)w->reader->stats.exchanges;
	for (long k = 0; k < total; k++) {
		place(w, uid_a, 0);
		assert_int_equal(op_issue(w, &arg), 0);
		w->budget = k;
		assert_int_not_equal(cardlib_card_update_keys(w->reader, &ks, uid_a, &moved), 0);
		put_back(w);
		/* every gate of the new bundle still opens the card, whichever keys moved */
		assert_int_equal(gate_reads(w, &ks, POOL, &ids, NULL), 0);
		assert_int_equal(gate_reads(w, &ks, LIBRARY, &ids, NULL), 0);
		assert_int_equal(cardlib_card_update_keys(w->reader, &ks, uid_a, &moved), 0);
		struct cardlib_card_read read;
		assert_int_equal(gate_reads(w, &ks, POOL, &ids, &read), 0);
		assert_false(read.previous_key);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_issue_each_factory_key_type, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_issued_card_is_protected, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_recycle, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_key_rotation, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_key_rotation_random_id, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pull_during_issue, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pull_during_recycle, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pull_during_key_update, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
