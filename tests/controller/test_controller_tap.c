/*
 * test_controller_tap.c — one tap (controller/tap.h) in-process: cardlib's reader side over
 * the loopback backend, whose field holds the bench's virtual DESFire card (hil/desfire.h,
 * the card side written independently from the specification: the two share no protocol
 * code), a real signed list in a real list store, a real sqlite journal, the trusted clock,
 * and a gate whose ops record every command.
 *
 * The order "debit before journal, journal before gate, fail closed" is asserted here, in
 * C, as it happens:
 *   - the field watches each DESFire command and notes what the journal holds at that
 *     instant (through a second, read-only sqlite connection: what is durable): no row at
 *     the Debit, the row (pending) at the CommitTransaction;
 *   - the gate's recorder notes what the journal holds when it is told to open: the row,
 *     granted, settled;
 *   - a journal that cannot be written (another connection holds its write lock): the gate
 *     stays closed, the Debit is aborted, the card keeps its entry; a grant with nothing
 *     on the card (a quota) opens nothing either;
 *   - a card pulled away at every single exchange of a tap: the gate never opens, nothing
 *     stays in the journal, the card keeps its entry; a card whose commit went through but
 *     whose answer was lost is admitted on its return without a second debit;
 *   - a revoked pass: refused, journalled with reason revoked;
 *   - clones (MIFARE Classic, UID-only tag, a DESFire without the application) refused and
 *     journalled as clone_suspected, a card of another deployment as card_auth_failed,
 *     QR codes replayed, stale, expired or of an unknown issuer each with their own reason
 *     (issue 14: they were all unknown_pass).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cardlib/error.h"
#include "cardlib/issue.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "controller/config.h"
#include "controller/journal.h"
#include "controller/list_store.h"
#include "controller/tap.h"
#include "controller/timekeeper.h"
#include "hil/desfire.h"
#include "hil_field.h"
#include "list_fixture.h"
#include "proto/reason.h"

#define NOW (FIXTURE_ISSUED + 3600) /* inside the fixture list's validity */

/* DESFire native command codes (NXP DESFire EV2 datasheet; ISO-wrapped as 90 CMD 00 00). */
#define CMD_DEBIT  0xDC
#define CMD_COMMIT 0xC7
#define CMD_ABORT  0xA7

enum { POOL = 0, LIBRARY = 1 }; /* card slots */

static const uint8_t uid_a[7] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};

/* ---- what the journal holds, seen from another connection --------------------------------- */

struct journal_view {
	int rows;    /* statistics rows */
	int pending; /* of which pending (a debit awaiting its commit) */
	int granted; /* of which granted and settled */
};

/* ---- one event of a tap, in the order it happened -------------------------------------- */

enum ev_kind { EV_COMMAND, EV_GATE };

struct event {
	enum ev_kind kind;
	uint8_t cmd; /* EV_COMMAND: the DESFire command */
	struct controller_gate_state st;
	char display[CONTROLLER_MESSAGE_MAX + 40];
	struct journal_view journal; /* at that instant */
};

#define EVENTS_MAX 256

struct env {
	char dir[64], store_dir[96], journal_path[96], image[96];
	struct list_fixture fx;
	struct controller_list_store *store;
	struct controller_journal *journal;
	sqlite3 *ro; /* read-only: what is committed */
	struct controller_timekeeper *clock;
	struct controller_config cfg;
	struct controller_gate gate;
	struct controller_tap *tap;
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids_active, ids_revoked, ids_quota, ids_stranger;
	/* phones: the deployment's issuer, one phone's key, its pass identifier (listed) */
	struct proto_key *issuer, *phone;
	struct proto_keyring *issuers;
	uint8_t phone_id[CARDLIB_TOKEN_ID_LEN];

	/* the field: the bench's target, watched */
	struct hil_field hf;
	struct cardlib_loopback_peer inner;
	struct cardlib_reader *reader;
	unsigned exchanges; /* since the last reset */
	unsigned pull_at;   /* 1-based exchange at which the card leaves the field; 0 never */
	bool deliver;       /* ... after the card got the command (its answer is lost) */
	bool gone;

	struct event ev[EVENTS_MAX];
	size_t n_ev;
};

static struct journal_view journal_view(struct env *e)
{
	struct journal_view v = {0, 0, 0};
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(e->ro,
	                                    "SELECT count(*), coalesce(sum(pending), 0),"
	                                    " coalesce(sum(granted AND NOT pending), 0) FROM stat",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v.rows = sqlite3_column_int(st, 0);
	v.pending = sqlite3_column_int(st, 1);
	v.granted = sqlite3_column_int(st, 2);
	sqlite3_finalize(st);
	return v;
}

/* The reason of the last statistics row (-1 when none). */
static int last_reason(struct env *e)
{
	sqlite3_stmt *st = NULL;
	int reason = -1;
	assert_int_equal(sqlite3_prepare_v2(e->ro,
	                                    "SELECT reason FROM stat ORDER BY seq DESC LIMIT 1", -1,
	                                    &st, NULL),
	                 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		reason = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return reason;
}

static struct event *new_event(struct env *e, enum ev_kind kind)
{
	assert_true(e->n_ev < EVENTS_MAX);
	struct event *ev = &e->ev[e->n_ev++];
	memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->journal = journal_view(e);
	return ev;
}

/* ---- the gate: a recorder ---------------------------------------------------------------------
 */

static int gate_set(void *ctx, const struct controller_gate_state *st)
{
	struct env *e = ctx;
	struct event *ev = new_event(e, EV_GATE);
	ev->st = *st;
	snprintf(ev->display, sizeof(ev->display), "%s", st->display ? st->display : "");
	ev->st.display = ev->display;
	return 0;
}

static const struct controller_gate_ops recorder_ops = {.set = gate_set, .destroy = NULL};

/* ---- the field: the bench's card, watched, and pulled away on demand ------------------------ */

static uint8_t desfire_command(const uint8_t *tx, size_t n)
{
	if (n >= 5 && tx[0] == 0x90) /* ISO 7816-4 wrapping: 90 CMD 00 00 Lc ... */
		return tx[1];
	return n ? tx[0] : 0;
}

static int spy_info(void *ctx, struct cardlib_target_info *info)
{
	struct env *e = ctx;
	return e->gone ? 0 : e->inner.info(e->inner.ctx, info);
}

static int spy_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap)
{
	struct env *e = ctx;
	if (e->gone)
		return CARDLIB_ERR_NO_CARD;
	struct event *ev = new_event(e, EV_COMMAND);
	ev->cmd = desfire_command(tx, tx_len);
	if (++e->exchanges == e->pull_at) {
		if (e->deliver)
			(void)e->inner.exchange(e->inner.ctx, tx, tx_len, rx, rx_cap);
		/* out of the field: the card drops what it holds uncommitted */
		e->inner.release(e->inner.ctx);
		e->gone = true;
		return CARDLIB_ERR_TIMEOUT;
	}
	return e->inner.exchange(e->inner.ctx, tx, tx_len, rx, rx_cap);
}

static void spy_release(void *ctx)
{
	struct env *e = ctx;
	if (!e->gone)
		e->inner.release(e->inner.ctx);
}

static void reset_watch(struct env *e)
{
	e->n_ev = 0;
	e->exchanges = 0;
	e->pull_at = 0;
	e->deliver = false;
	e->gone = false;
}

/* ---- cards -------------------------------------------------------------------------------------
 */

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
	const uint8_t slots[] = {POOL, LIBRARY};
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

/* The pool sector's list key of a pass (what the gate looks up). */
static void list_key_of(const struct cardlib_pass_ids *ids, uint8_t key[PROTO_LIST_KEY_LEN])
{
	proto_list_key(FIXTURE_SECTOR, ids->id[0], CARDLIB_LAYOUT_ID_LEN, key);
}

/* The card of image e->image in the field (created factory-fresh when it does not exist). */
static void place_card_image(struct env *e)
{
	hil_field_clear(&e->hf);
	struct hil_desfire_config cfg = {.random_id = 0, .picc_key_aes = 1};
	memcpy(cfg.uid, uid_a, 7);
	struct hil_desfire_card *card = NULL;
	assert_int_equal(hil_desfire_card_open(&card, e->image, &cfg), 0);
	hil_field_place(&e->hf, hil_desfire_card_target(card));
	e->gone = false;
}

/* A card issued to `ids` with keyset `ks`, `entries` on it, in the field. */
static void issued_card(struct env *e, const struct cardlib_keyset *ks,
                        const struct cardlib_pass_ids *ids, int32_t entries)
{
	unlink(e->image);
	place_card_image(e);
	const struct cardlib_issue_opts opts = {.initial_entries = entries};
	assert_int_equal(cardlib_card_issue(e->reader, ks, ids, &opts), 0);
	reset_watch(e);
}

/* The entries on the card in the field, read as the gate would (after the tap). */
static int32_t card_entries(struct env *e)
{
	struct cardlib_card_read rd;
	struct cardlib_sector_key key;
	e->gone = false;
	e->pull_at = 0;
	assert_int_equal(cardlib_keyset_sector_key(&e->ks, 0, &key), 0);
	assert_int_equal(cardlib_card_read_sector(e->reader, &key, &rd), 0);
	assert_true(rd.has_value);
	return rd.value;
}

/* ---- one tap, as the reader loop hands it over ------------------------------------------------
 */

static struct controller_tap_result tap(struct env *e)
{
	struct cardlib_target_info info;
	struct controller_tap_result res;
	e->n_ev = 0;
	e->exchanges = 0;
	assert_int_equal(cardlib_reader_select(e->reader, &info), 1);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* the reader loop's clock: the log's tap-to-gate */
	controller_tap_target(e->tap, e->reader, &info,
	                      (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, &res);
	return res;
}

static size_t find(const struct env *e, enum ev_kind kind, uint8_t cmd, size_t from)
{
	for (size_t i = from; i < e->n_ev; i++)
		if (e->ev[i].kind == kind && (kind != EV_COMMAND || e->ev[i].cmd == cmd))
			return i;
	return SIZE_MAX;
}

/* The command of the k-th exchange (1-based) of the last tap, 0 when there was none. */
static uint8_t command_at(const struct env *e, unsigned k)
{
	for (size_t i = 0; i < e->n_ev; i++)
		if (e->ev[i].kind == EV_COMMAND && --k == 0)
			return e->ev[i].cmd;
	return 0;
}

static size_t gate_opened(const struct env *e)
{
	for (size_t i = 0; i < e->n_ev; i++)
		if (e->ev[i].kind == EV_GATE && e->ev[i].st.relay_open)
			return i;
	return SIZE_MAX;
}

/* The last thing the gate was told. */
static const struct event *last_gate(const struct env *e)
{
	for (size_t i = e->n_ev; i-- > 0;)
		if (e->ev[i].kind == EV_GATE)
			return &e->ev[i];
	fail_msg("the gate was told nothing");
	return NULL;
}

/* ---- fixture
 * -------------------------------------------------------------------------------------- */

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	snprintf(e->dir, sizeof(e->dir), "/tmp/test_controller_tap_XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->store_dir, sizeof(e->store_dir), "%s/lists", e->dir);
	snprintf(e->journal_path, sizeof(e->journal_path), "%s/journal.db", e->dir);
	snprintf(e->image, sizeof(e->image), "%s/card", e->dir);

	/* the deployment: keys, four passes (one active with entries on the card, one
	 * revoked, one with a yearly quota counted by the gates, and one issued but not in
	 * the list) */
	make_keyset(&e->ks, 1);
	make_ids(&e->ids_active, 0x5A);
	make_ids(&e->ids_revoked, 0x3C);
	make_ids(&e->ids_quota, 0x21);
	make_ids(&e->ids_stranger, 0x77);
	fixture_init(&e->fx);
	assert_int_equal(proto_key_generate(&e->issuer), 0);
	assert_int_equal(proto_key_generate(&e->phone), 0);
	assert_non_null(e->issuers = proto_keyring_new());
	assert_int_equal(proto_keyring_add(e->issuers, e->issuer), 0);
	memset(e->phone_id, 0x6B, sizeof(e->phone_id));
	struct proto_list_entry entries[4];
	memset(entries, 0, sizeof(entries));
	list_key_of(&e->ids_active, entries[0].key);
	entries[0].profile = 1; /* 10 entries, on the card */
	entries[0].status = PROTO_STATUS_ACTIVE;
	list_key_of(&e->ids_revoked, entries[1].key);
	entries[1].profile = 1;
	entries[1].status = PROTO_STATUS_REVOKED;
	list_key_of(&e->ids_quota, entries[2].key);
	entries[2].profile = 2; /* 24 a year: journalled, nothing on the card */
	entries[2].status = PROTO_STATUS_ACTIVE;
	proto_list_key(FIXTURE_SECTOR, e->phone_id, sizeof(e->phone_id), entries[3].key);
	entries[3].profile = 2;
	entries[3].status = PROTO_STATUS_ACTIVE;
	struct v2list list;
	fixture_v2_build(&e->fx, FIXTURE_SECTOR, 1, 0, entries, 4, &list);
	assert_int_equal(controller_list_store_open(&e->store, e->store_dir, FIXTURE_SECTOR,
	                                            e->fx.ring, NOW),
	                 0);
	assert_int_equal(controller_list_store_install_snapshot(e->store, list.stream,
	                                                        list.stream_len, list.sig,
	                                                        list.sig_len, NOW),
	                 0);
	fixture_v2_free(&list);

	assert_int_equal(controller_journal_open(&e->journal, e->journal_path), 0);
	assert_int_equal(sqlite3_open_v2(e->journal_path, &e->ro, SQLITE_OPEN_READONLY, NULL),
	                 SQLITE_OK);
	e->clock = controller_timekeeper_new(0);
	assert_non_null(e->clock);
	controller_timekeeper_server_time(e->clock, NOW); /* the clock the tap decides by */

	struct controller_config *cfg = &e->cfg;
	snprintf(cfg->device_id, sizeof(cfg->device_id), "pool-gate-1");
	cfg->site = 1;
	cfg->gate = 1;
	cfg->sector = FIXTURE_SECTOR;
	snprintf(cfg->tz, sizeof(cfg->tz), "UTC");
	cfg->stale.mode = CONTROLLER_STALE_REFUSE_ALL;
	cfg->log_verbose = true;
	assert_int_equal(cardlib_keyset_sector_key(&e->ks, 0, &cfg->card_key), 0);

	e->gate.ops = &recorder_ops;
	e->gate.ctx = e;
	snprintf(e->gate.name, sizeof(e->gate.name), "recorder");

	const struct controller_tap_params p = {
	        .cfg = cfg,
	        .store = e->store,
	        .journal = e->journal,
	        .clock = e->clock,
	        .gate = &e->gate,
	        .nfc_issuers = e->issuers,
	        .qr_issuers = e->issuers,
	};
	char err[256];
	assert_int_equal(controller_tap_open(&e->tap, &p, err, sizeof(err)), 0);
	/* the purge and the time floor are written now, while nobody waits, as the reader
	 * loop does on an empty field: a tap then writes only its decision */
	controller_tap_housekeeping(e->tap);

	e->inner = hil_field_peer(&e->hf);
	const struct cardlib_loopback_peer spy = {
	        .info = spy_info, .exchange = spy_exchange, .release = spy_release, .ctx = e};
	assert_int_equal(cardlib_loopback_new(&e->reader, &spy, NOW), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	hil_field_clear(&e->hf);
	cardlib_reader_free(e->reader);
	controller_tap_close(e->tap);
	controller_timekeeper_free(e->clock);
	sqlite3_close(e->ro);
	controller_journal_close(e->journal);
	controller_list_store_close(e->store);
	fixture_free(&e->fx);
	proto_keyring_free(e->issuers);
	proto_key_free(e->issuer);
	proto_key_free(e->phone);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	return 0;
}

/* ---- tests
 * ------------------------------------------------------------------------------------------ */

/* Debit (uncommitted) before the journal; the journal row before the commit; the commit and
 * the settled row before the gate opens. */
static void test_debit_then_journal_then_gate(void **state)
{
	struct env *e = *state;
	issued_card(e, &e->ks, &e->ids_active, 3);

	struct controller_tap_result res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_GRANTED);
	assert_int_equal(res.reason, CONTROLLER_REASON_OK);

	size_t debit = find(e, EV_COMMAND, CMD_DEBIT, 0);
	size_t commit = find(e, EV_COMMAND, CMD_COMMIT, 0);
	size_t open = gate_opened(e);
	assert_true(debit != SIZE_MAX);
	assert_true(commit != SIZE_MAX);
	assert_true(open != SIZE_MAX);
	assert_true(debit < commit);
	assert_true(commit < open);
	/* the Debit reaches the card before anything is journalled */
	assert_int_equal(e->ev[debit].journal.rows, 0);
	/* the decision is durable (pending) before the card commits */
	assert_int_equal(e->ev[commit].journal.rows, 1);
	assert_int_equal(e->ev[commit].journal.pending, 1);
	/* the gate opens on a journalled, settled grant, and only once */
	assert_int_equal(e->ev[open].journal.rows, 1);
	assert_int_equal(e->ev[open].journal.granted, 1);
	assert_int_equal(e->ev[open].journal.pending, 0);
	assert_int_equal(e->ev[open].st.led, CONTROLLER_LED_GREEN);
	assert_string_equal(e->ev[open].display, "Bienvenue – 2 entrées restantes");
	assert_int_equal(find(e, EV_GATE, 0, open + 1), SIZE_MAX);
	assert_int_equal(find(e, EV_COMMAND, CMD_ABORT, 0), SIZE_MAX);
	assert_int_equal(card_entries(e), 2);
	assert_int_equal(last_reason(e), CONTROLLER_REASON_OK);
}

/* A journal that cannot be written: the gate stays closed, the Debit is aborted, the card
 * keeps its entry; once the journal is back, the next tap takes it. */
static void test_journal_fails_gate_stays_closed(void **state)
{
	struct env *e = *state;
	issued_card(e, &e->ks, &e->ids_active, 3);

	/* another connection holds the journal's write lock: every append fails (busy) */
	sqlite3 *blocker = NULL;
	assert_int_equal(sqlite3_open(e->journal_path, &blocker), SQLITE_OK);
	assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	struct controller_tap_result res = tap(e);
	assert_int_equal(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(blocker);

	assert_int_equal(res.outcome, CONTROLLER_TAP_OUT_OF_SERVICE);
	assert_int_equal(gate_opened(e), SIZE_MAX);
	const struct event *shown = last_gate(e);
	assert_false(shown->st.relay_open);
	assert_int_equal(shown->st.led, CONTROLLER_LED_AMBER);
	assert_string_equal(shown->display, "Service indisponible");
	assert_true(find(e, EV_COMMAND, CMD_DEBIT, 0) != SIZE_MAX);
	assert_int_equal(find(e, EV_COMMAND, CMD_COMMIT, 0), SIZE_MAX);
	assert_true(find(e, EV_COMMAND, CMD_ABORT, 0) != SIZE_MAX);
	assert_int_equal(journal_view(e).rows, 0);
	assert_int_equal(card_entries(e), 3);

	/* the journal back: the entry the citizen kept is taken now */
	reset_watch(e);
	res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_GRANTED);
	assert_int_equal(card_entries(e), 2);
	assert_int_equal(journal_view(e).granted, 1);
}

/* A grant with nothing on the card (a quota the journal counts): the journal fails, the
 * gate stays closed; back, the grant is journalled before the gate opens. */
static void test_journal_fails_without_debit(void **state)
{
	struct env *e = *state;
	issued_card(e, &e->ks, &e->ids_quota, CARDLIB_LAYOUT_NO_VALUE);
	sqlite3 *blocker = NULL;
	assert_int_equal(sqlite3_open(e->journal_path, &blocker), SQLITE_OK);
	assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	struct controller_tap_result res = tap(e);
	assert_int_equal(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(blocker);
	assert_int_equal(res.outcome, CONTROLLER_TAP_OUT_OF_SERVICE);
	assert_int_equal(gate_opened(e), SIZE_MAX);
	assert_string_equal(last_gate(e)->display, "Service indisponible");
	assert_int_equal(journal_view(e).rows, 0);

	reset_watch(e);
	res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_GRANTED);
	size_t open = gate_opened(e);
	assert_true(open != SIZE_MAX);
	assert_int_equal(e->ev[open].journal.granted, 1);
	assert_string_equal(e->ev[open].display, "Bienvenue – 23 passages restants cette année");
	assert_int_equal(find(e, EV_COMMAND, CMD_DEBIT, 0), SIZE_MAX);
}

/* The card pulled away at each exchange of a tap in turn: never an open gate, never a row
 * left in the journal, never an entry taken. */
static void test_card_pulled_at_every_exchange(void **state)
{
	struct env *e = *state;
	issued_card(e, &e->ks, &e->ids_active, 3);
	/* how many exchanges a whole tap takes (and one entry) */
	struct controller_tap_result res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_GRANTED);
	const unsigned whole = e->exchanges;
	assert_true(whole >= 4);
	int32_t entries = card_entries(e);
	assert_int_equal(entries, 2);
	const int granted_before = journal_view(e).granted;

	for (unsigned k = 1; k <= whole; k++) {
		reset_watch(e);
		e->pull_at = k;
		res = tap(e);
		print_message("pulled at exchange %u of %u (command %02X): %s\n", k, whole,
		              command_at(e, k), controller_tap_outcome_name(res.outcome));
		assert_true(res.outcome == CONTROLLER_TAP_READ_AGAIN ||
		            res.outcome == CONTROLLER_TAP_NONE);
		assert_int_equal(gate_opened(e), SIZE_MAX);
		struct journal_view v = journal_view(e);
		assert_int_equal(v.rows, granted_before);
		assert_int_equal(v.pending, 0);
		place_card_image(e); /* back in the field */
		assert_int_equal(card_entries(e), entries);
	}
}

/* The commit reached the card but its answer was lost: the tap is refused and its row
 * withdrawn; back within minutes with one entry less, the card is admitted without a
 * second debit (docs/controller.md, "Entries on the card"). */
static void test_commit_answer_lost(void **state)
{
	struct env *e = *state;
	issued_card(e, &e->ks, &e->ids_active, 3);
	struct controller_tap_result res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_GRANTED);
	const unsigned whole = e->exchanges;
	unsigned n = 1; /* the commit is the n-th exchange */
	while (n <= whole && command_at(e, n) != CMD_COMMIT)
		n++;
	assert_true(n <= whole);
	assert_int_equal(card_entries(e), 2);

	reset_watch(e);
	e->pull_at = n;
	e->deliver = true;
	res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_READ_AGAIN);
	assert_int_equal(gate_opened(e), SIZE_MAX);
	assert_int_equal(journal_view(e).rows, 1); /* the first tap's only */
	place_card_image(e);
	assert_int_equal(card_entries(e), 1); /* the card did commit */

	reset_watch(e);
	res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_GRANTED);
	assert_int_equal(find(e, EV_COMMAND, CMD_DEBIT, 0), SIZE_MAX); /* no second debit */
	assert_int_equal(card_entries(e), 1);
	assert_int_equal(journal_view(e).granted, 2);
}

/* A revoked pass: refused and journalled with its reason; nothing debited. */
static void test_revoked_refused_with_its_reason(void **state)
{
	struct env *e = *state;
	issued_card(e, &e->ks, &e->ids_revoked, 3);
	struct controller_tap_result res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_REFUSED);
	assert_int_equal(res.reason, CONTROLLER_REASON_REVOKED);
	assert_int_equal(gate_opened(e), SIZE_MAX);
	const struct event *shown = last_gate(e);
	assert_int_equal(shown->st.led, CONTROLLER_LED_RED);
	assert_string_equal(shown->display, "Carte révoquée");
	/* journalled before the gate was told */
	assert_int_equal(shown->journal.rows, 1);
	assert_int_equal(last_reason(e), CONTROLLER_REASON_REVOKED);
	assert_int_equal(find(e, EV_COMMAND, CMD_DEBIT, 0), SIZE_MAX);
	assert_int_equal(card_entries(e), 3);
}

/* A card of this deployment whose pass is not in the list: unknown_pass, as before. */
static void test_unknown_pass(void **state)
{
	struct env *e = *state;
	issued_card(e, &e->ks, &e->ids_stranger, 3);
	struct controller_tap_result res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_REFUSED);
	assert_int_equal(res.reason, CONTROLLER_REASON_UNKNOWN_PASS);
	assert_int_equal(last_reason(e), CONTROLLER_REASON_UNKNOWN_PASS);
	assert_string_equal(last_gate(e)->display, "Carte inconnue");
}

/* Refused before any lookup, journalled with the reason `want` and "Carte non reconnue". */
static void assert_medium_refused(struct env *e, enum controller_reason want)
{
	reset_watch(e);
	int rows = journal_view(e).rows;
	struct controller_tap_result res = tap(e);
	assert_int_equal(res.outcome, CONTROLLER_TAP_REFUSED);
	assert_string_equal(controller_reason_name(res.reason), controller_reason_name(want));
	assert_int_equal(gate_opened(e), SIZE_MAX);
	const struct event *shown = last_gate(e);
	assert_int_equal(shown->st.led, CONTROLLER_LED_RED);
	assert_string_equal(shown->display, "Carte non reconnue");
	assert_int_equal(shown->journal.rows, rows + 1); /* journalled before the gate */
	assert_int_equal(last_reason(e), want);
}

/* Issue 14: clones and cards that cannot prove our keys keep their cause in statistics. */
static void test_clones_refused_with_their_reason(void **state)
{
	struct env *e = *state;
	/* MIFARE Classic with a UID: not ISO 14443-4 */
	struct hil_target t;
	const uint8_t uid4[4] = {0x04, 0xA1, 0xB2, 0xC3};
	assert_int_equal(hil_classic1k_target_new(&t, uid4), 0);
	hil_field_place(&e->hf, t);
	assert_medium_refused(e, CONTROLLER_REASON_CLONE_SUSPECTED);
	/* a UID-only tag showing a citizen's UID */
	assert_int_equal(hil_uid_only_target_new(&t, uid_a), 0);
	hil_field_place(&e->hf, t);
	assert_medium_refused(e, CONTROLLER_REASON_CLONE_SUSPECTED);
	/* a blank DESFire with the same UID: no citypass application */
	unlink(e->image);
	place_card_image(e);
	assert_medium_refused(e, CONTROLLER_REASON_CLONE_SUSPECTED);
	/* a card with the application, issued by someone without this deployment's keys */
	struct cardlib_keyset forger;
	make_keyset(&forger, 2);
	issued_card(e, &forger, &e->ids_active, 3);
	assert_medium_refused(e, CONTROLLER_REASON_CARD_AUTH_FAILED);
	/* every one counted, none as unknown_pass */
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(e->ro,
	                                    "SELECT reason, count(*) FROM stat GROUP BY reason"
	                                    " ORDER BY reason",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), CONTROLLER_REASON_CLONE_SUSPECTED);
	assert_int_equal(sqlite3_column_int(st, 1), 3);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), CONTROLLER_REASON_CARD_AUTH_FAILED);
	assert_int_equal(sqlite3_column_int(st, 1), 1);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	/* and what the sync client uploads carries the same cause */
	struct controller_stat_row rows[8];
	size_t n = 0;
	assert_int_equal(controller_journal_fetch_stats(e->journal, rows, 8, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(rows[0].reason, CONTROLLER_REASON_CLONE_SUSPECTED);
	assert_false(rows[0].granted);
	assert_int_equal(rows[3].reason, CONTROLLER_REASON_CARD_AUTH_FAILED);
}

/* A QR code shown at `at` by the phone, its credential issued by `issuer` for
 * [from, until). */
static void qr_code(struct env *e, const struct proto_key *issuer, int64_t from, int64_t until,
                    int64_t at, char line[CARDLIB_QR_LINE_MAX + 1])
{
	uint8_t cred[CARDLIB_TOKEN_CRED_MAX];
	int n = cardlib_token_issue(issuer, FIXTURE_SECTOR, e->phone_id, e->phone, from, until,
	                            cred, sizeof(cred));
	assert_true(n > 0);
	assert_true(cardlib_qr_encode(cred, (size_t)n, e->phone, at, line,
	                              CARDLIB_QR_LINE_MAX + 1) > 0);
}

static struct controller_tap_result scan(struct env *e, const char *line)
{
	struct controller_tap_result res;
	e->n_ev = 0;
	controller_tap_qr(e->tap, line, strlen(line), 0, &res);
	return res;
}

/* The QR scanner's line goes through the same seam: granted once, then its screenshot
 * refused as qr_replayed; a code outside its window, an expired credential, a credential
 * of an unknown issuer each refused with a reason of its own (issue 14); a barcode that
 * is no citypass code decides nothing. Each refusal journalled before the gate is told. */
static void test_qr_codes_and_their_reasons(void **state)
{
	struct env *e = *state;
	char line[CARDLIB_QR_LINE_MAX + 1];
	const int64_t day = 86400;
	qr_code(e, e->issuer, NOW - day, NOW + day, NOW, line);
	struct controller_tap_result res = scan(e, line);
	assert_int_equal(res.outcome, CONTROLLER_TAP_GRANTED);
	size_t open = gate_opened(e);
	assert_true(open != SIZE_MAX);
	assert_int_equal(e->ev[open].journal.granted, 1);

	static const struct {
		int64_t from, until, at;
		bool stranger; /* issued by a key the gate does not trust */
		enum controller_reason reason;
		const char *display;
	} refusals[] = {
	        {NOW - 86400, NOW + 86400, NOW, false, CONTROLLER_REASON_QR_REPLAYED,
	         "Code QR déjà utilisé"},
	        {NOW - 86400, NOW + 86400, NOW - 300, false, CONTROLLER_REASON_QR_OUTSIDE_WINDOW,
	         "Code QR périmé – actualisez-le"},
	        {NOW - 2 * 86400, NOW - 86400, NOW, false, CONTROLLER_REASON_CREDENTIAL_EXPIRED,
	         "Pass expiré – renouvelez-le"},
	        {NOW - 86400, NOW + 86400, NOW, true, CONTROLLER_REASON_CREDENTIAL_INVALID,
	         "Pass non valide"},
	};
	struct proto_key *stranger = NULL;
	assert_int_equal(proto_key_generate(&stranger), 0);
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		if (refusals[i].reason != CONTROLLER_REASON_QR_REPLAYED)
			qr_code(e, refusals[i].stranger ? stranger : e->issuer, refusals[i].from,
			        refusals[i].until, refusals[i].at, line);
		int rows = journal_view(e).rows;
		res = scan(e, line);
		assert_int_equal(res.outcome, CONTROLLER_TAP_REFUSED);
		assert_string_equal(controller_reason_name(res.reason),
		                    controller_reason_name(refusals[i].reason));
		assert_int_equal(gate_opened(e), SIZE_MAX);
		const struct event *shown = last_gate(e);
		assert_string_equal(shown->display, refusals[i].display);
		assert_int_equal(shown->journal.rows, rows + 1);
		assert_int_equal(last_reason(e), refusals[i].reason);
	}
	proto_key_free(stranger);

	/* any barcode: not a pass, no decision */
	int rows = journal_view(e).rows;
	res = scan(e, "4006381333931");
	assert_int_equal(res.outcome, CONTROLLER_TAP_NONE);
	assert_int_equal(gate_opened(e), SIZE_MAX);
	assert_string_equal(last_gate(e)->display, "Code QR non reconnu");
	assert_int_equal(journal_view(e).rows, rows);
}

/* The reasons' names are the server's (one table, proto/reason.h). */
static int consumption_rows(struct env *e)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(
	        sqlite3_prepare_v2(e->ro, "SELECT count(*) FROM consumption", -1, &st, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Issue 17: the sector's retention, as the server stated it and the journal keeps it, is
 * obeyed by the gate's own purge with no link at all (the clock injected: the trusted
 * floor moves), and the stricter of it and retention-days wins; statistics stay. */
static void test_sector_retention_purges_offline(void **state)
{
	struct env *e = *state;
	const int64_t H = 3600;
	issued_card(e, &e->ks, &e->ids_quota, CARDLIB_LAYOUT_NO_VALUE);
	assert_int_equal(tap(e).outcome, CONTROLLER_TAP_GRANTED);
	assert_int_equal(consumption_rows(e), 1);
	/* no sector retention heard: retention-days (90) alone, the use stays after 2 days */
	controller_timekeeper_server_time(e->clock, NOW + 48 * H);
	controller_tap_housekeeping(e->tap);
	assert_int_equal(consumption_rows(e), 1);
	/* a transport sector's 48 hours (as a Welcome brings it): the use is gone before it
	 * turns 48 hours old, unacknowledged, and counted as such */
	assert_int_equal(controller_journal_set_sector_retention(e->journal, 72), 0);
	controller_timekeeper_server_time(e->clock, NOW + 50 * H);
	controller_tap_housekeeping(e->tap);
	assert_int_equal(consumption_rows(e), 1); /* 72 hours: not yet */
	assert_int_equal(controller_journal_set_sector_retention(e->journal, 48), 0);
	controller_timekeeper_server_time(e->clock, NOW + 52 * H);
	controller_tap_housekeeping(e->tap);
	assert_int_equal(consumption_rows(e), 0);
	struct controller_journal_stats js;
	assert_int_equal(controller_journal_stats(e->journal, &js), 0);
	assert_int_equal(js.consumption_purged_unacked, 1);
	assert_int_equal(journal_view(e).rows, 1); /* the statistics row waits for its ack */
}

/* Issue 17: a gate configured stricter than its sector keeps its own, shorter retention. */
static void test_local_retention_stricter_than_sector(void **state)
{
	struct env *e = *state;
	const int64_t H = 3600;
	e->cfg.retention_days = 1;
	assert_int_equal(controller_journal_set_sector_retention(e->journal, 48), 0);
	issued_card(e, &e->ks, &e->ids_quota, CARDLIB_LAYOUT_NO_VALUE);
	assert_int_equal(tap(e).outcome, CONTROLLER_TAP_GRANTED);
	controller_timekeeper_server_time(e->clock, NOW + 22 * H);
	controller_tap_housekeeping(e->tap);
	assert_int_equal(consumption_rows(e), 1);
	controller_timekeeper_server_time(e->clock, NOW + 24 * H);
	controller_tap_housekeeping(e->tap);
	assert_int_equal(consumption_rows(e), 0);
}

static void test_reason_names(void **state)
{
	(void)state;
	assert_string_equal(controller_reason_name(CONTROLLER_REASON_CLONE_SUSPECTED),
	                    "clone_suspected");
	assert_string_equal(controller_reason_name(CONTROLLER_REASON_CARD_AUTH_FAILED),
	                    "card_auth_failed");
	assert_string_equal(controller_reason_name(CONTROLLER_REASON_QR_REPLAYED), "qr_replayed");
	assert_int_equal(CONTROLLER_REASON_CLONE_SUSPECTED, 50); /* issue 14's range */
	assert_true(proto_reason_known(CONTROLLER_REASON_QR_OUTSIDE_WINDOW));
	assert_false(proto_reason_known(15));
	assert_false(proto_reason_known(57));
	assert_string_equal(controller_reason_name((enum controller_reason)15), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_debit_then_journal_then_gate, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_fails_gate_stays_closed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_journal_fails_without_debit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_card_pulled_at_every_exchange, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_commit_answer_lost, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_revoked_refused_with_its_reason, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_unknown_pass, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_clones_refused_with_their_reason, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_qr_codes_and_their_reasons, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sector_retention_purges_offline, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_local_retention_stricter_than_sector, setup,
	                                        teardown),
	        cmocka_unit_test(test_reason_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
