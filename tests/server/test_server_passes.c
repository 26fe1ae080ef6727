/*
 * test_server_passes — the pass lifecycle as a library (server/passes.h) against a real
 * store in a temporary directory (sqlite, or PostgreSQL under tests/support/pg_run.sh:
 * store_fixture.h, issue 16): households, issue, revoke, replace, rights granted
 * and withdrawn, each operation's success and each refusal it makes (with its code and its
 * sentence, and the database left as it was), a pass issued on the bench's virtual card
 * through a loopback reader (the reader the web back office will pass at the desk), the card
 * taken back only once its pass is dead, phone credentials, the database's own words
 * (sqlite's or PostgreSQL's) carried up to the sentence, and the server's error range.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cardlib/reader.h"
#include "hil/desfire.h"
#include "hil_field.h"
#include "proto/sign.h"
#include "server/error.h"
#include "server/keys.h"
#include "server/passes.h"
#include "server/store.h"
#include "store_fixture.h"

#define NOW 1790000000 /* 2026-09-21 */

enum { POOL = 1, LIBRARY = 2, WASTE = 3 };

struct fx {
	char dir[64], image[96], db[STORE_FIXTURE_DB_MAX];
	struct server_store st;
	struct server_desk desk;
	struct hil_field hf;
	struct cardlib_reader *reader;
	struct server_why why;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-passes-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->image, sizeof(f->image), "%s/card.img", f->dir);
	setenv("TZ", "Europe/Paris", 1);
	if (server_keys_create(f->dir, "localhost") != 0 ||
	    store_fixture_open(f->dir, f->db, sizeof(f->db), &f->st) != 0)
		return -1;
	struct server_sector s[] = {
	        {POOL, "pool", 0}, {LIBRARY, "library", 1}, {WASTE, "waste", 2}};
	for (size_t i = 0; i < 3; i++)
		if (f->st.ops->sector_add(f->st.ctx, &s[i]) != 0)
			return -1;
	/* the pool's gates debit entries on the card, as init --value-sector pool makes it */
	if (f->st.ops->meta_set(f->st.ctx, "value_sector", "1") != 0 ||
	    f->st.ops->meta_set(f->st.ctx, "random_id", "1") != 0)
		return -1;
	f->desk = (struct server_desk){&f->st, f->dir, NOW};
	const struct cardlib_loopback_peer peer = hil_field_peer(&f->hf);
	if (cardlib_loopback_new(&f->reader, &peer, 0) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cardlib_reader_free(f->reader);
	hil_field_clear(&f->hf);
	server_store_close(&f->st);
	store_fixture_drop(f->db);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* --- helpers ---------------------------------------------------------------------------- */

static struct server_right right_of(struct fx *f, const char *spec)
{
	struct server_right r;
	int rc = server_right_parse(&f->st, spec, &r, &f->why);
	if (rc)
		fail_msg("%s: %s", spec, f->why.text);
	return r;
}

static int count_passes_cb(void *arg, const struct server_pass *p)
{
	(void)p;
	(*(size_t *)arg)++;
	return 0;
}

static size_t count_passes(struct fx *f)
{
	struct server_pass_filter all = {NULL, 0, -1, -1};
	size_t n = 0;
	assert_int_equal(f->st.ops->pass_each(f->st.ctx, &all, count_passes_cb, &n), 0);
	return n;
}

/* Issue a pass awaiting its medium with the given rights: its id. */
static int64_t issue(struct fx *f, const char *holder, const char *household,
                     const struct server_right *r, size_t n)
{
	struct server_pass_order o = {
	        .holder = holder, .household = household, .rights = r, .n_rights = n};
	struct server_issued out;
	int rc = server_pass_issue(&f->desk, &o, &out, &f->why);
	if (rc)
		fail_msg("issue: %s", f->why.text);
	return out.pass.id;
}

static struct server_pass get(struct fx *f, int64_t id)
{
	struct server_pass p;
	assert_int_equal(server_pass_read(&f->desk, id, &p, &f->why), 0);
	return p;
}

static size_t rights_count(struct fx *f, int64_t id)
{
	struct server_right *r = NULL;
	size_t n = 0;
	assert_int_equal(f->st.ops->rights_of_pass(f->st.ctx, id, &r, &n), 0);
	free(r);
	return n;
}

static void assert_why(struct fx *f, const char *needle)
{
	if (!strstr(f->why.text, needle))
		fail_msg("expected '%s' in '%s'", needle, f->why.text);
}

/* A factory-fresh DESFire card (PICC key DES zeros) in the desk reader's field. */
static void place_blank_card(struct fx *f)
{
	hil_field_clear(&f->hf);
	unlink(f->image);
	struct hil_desfire_config cfg = {.uid = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}};
	struct hil_desfire_card *card = NULL;
	assert_int_equal(hil_desfire_card_open(&card, f->image, &cfg), 0);
	hil_field_place(&f->hf, hil_desfire_card_target(card));
}

/* --- the vocabulary ----------------------------------------------------------------------- */

static void test_right_parse(void **state)
{
	struct fx *f = *state;
	struct server_right r = right_of(f, "waste,quota=24/year/household,fare=resident");
	assert_int_equal(r.sector, WASTE);
	assert_int_equal(r.p.limit, 24);
	assert_int_equal(r.p.period, PROTO_PERIOD_YEAR);
	assert_int_equal(r.p.scope, PROTO_SCOPE_HOUSEHOLD);
	assert_int_equal(r.p.fare, 1);
	r = right_of(f, "2,from=2026-09-01,to=2027-06-30,product=7");
	assert_int_equal(r.sector, LIBRARY);
	assert_int_equal(r.p.product, 7);
	assert_true(r.p.valid_from < r.p.valid_to);
	char text[256];
	server_right_describe(&r.p, text, sizeof(text));
	assert_string_equal(text, "product 7, from 2026-09-01 to 2027-06-30, fare standard");

	static const struct {
		const char *spec, *why;
		int code;
	} bad[] = {
	        {"gym", "no such sector 'gym'", SERVER_ERR_NOT_FOUND},
	        {"pool,entries=0", "entries '0': expected a number from 1 to 255",
	         SERVER_ERR_INVALID},
	        {"pool,entries=10,quota=2/day", "give entries or quota, not both",
	         SERVER_ERR_INVALID},
	        {"pool,from=2027-01-01,to=2026-01-01", "from is after to", SERVER_ERR_INVALID},
	        {"pool,quota=3/fortnight", "quota '3/fortnight'", SERVER_ERR_INVALID},
	        {"pool,colour=red", "unknown key 'colour'", SERVER_ERR_INVALID},
	        {"pool,from=2026-02-30", "from '2026-02-30': expected a date", SERVER_ERR_INVALID},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(server_right_parse(&f->st, bad[i].spec, &r, &f->why), bad[i].code);
		assert_why(f, bad[i].why);
	}
}

/* --- households --------------------------------------------------------------------------- */

static void test_household(void **state)
{
	struct fx *f = *state;
	int64_t id = 0, again = 0;
	assert_int_equal(server_household_add(&f->desk, "dupont", &id, &f->why), 0);
	assert_true(id > 0);
	assert_int_equal(server_household_add(&f->desk, "dupont", &again, &f->why),
	                 SERVER_ERR_EXISTS);
	assert_why(f, "household 'dupont' already exists");
	assert_int_equal(server_household_add(&f->desk, "du pont", &again, &f->why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(server_household_add(&f->desk, "", &again, &f->why), SERVER_ERR_INVALID);

	/* a pass of the household gets the household's tag in the sectors of its rights */
	struct server_right r = right_of(f, "waste,quota=24/year/household");
	int64_t pass = issue(f, "Ann", "dupont", &r, 1);
	assert_int_equal(get(f, pass).household, id);
	uint32_t tag = 0;
	assert_int_equal(f->st.ops->household_tag_get(f->st.ctx, id, WASTE, &tag), 0);
	assert_true(tag != 0);
	/* a second member shares it */
	issue(f, "Bob", "dupont", &r, 1);
	uint32_t tag2 = 0;
	assert_int_equal(f->st.ops->household_tag_get(f->st.ctx, id, WASTE, &tag2), 0);
	assert_int_equal(tag, tag2);
}

/* --- managing households (issue 18) ------------------------------------------------------ */

static int64_t household_new(struct fx *f, const char *name)
{
	int64_t id = 0;
	if (server_household_add(&f->desk, name, &id, &f->why) != 0)
		fail_msg("household add: %s", f->why.text);
	return id;
}

static int has_sector(const struct server_sector_set *s, uint16_t sector)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == sector)
			return 1;
	return 0;
}

struct names {
	char v[8][SERVER_NAME_MAX];
	size_t n;
};

static int name_cb(void *arg, const struct server_household *h)
{
	struct names *n = arg;
	if (n->n < 8)
		snprintf(n->v[n->n++], SERVER_NAME_MAX, "%s", h->name);
	return 0;
}

static void test_household_find_rename(void **state)
{
	struct fx *f = *state;
	int64_t id = household_new(f, "Dupont-12"), other = household_new(f, "martin");
	household_new(f, "dupontel");
	struct server_household h;
	assert_int_equal(server_household_find(&f->desk, "Dupont-12", &h, &f->why), 0);
	assert_int_equal(h.id, id);
	assert_int_equal(server_household_find(&f->desk, "nobody", &h, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_why(f, "household 'nobody': no such household");

	/* search ignores case, in name order, at most max */
	struct names n = {.n = 0};
	assert_int_equal(server_household_search(&f->desk, "DUPONT", 0, name_cb, &n, &f->why), 0);
	assert_int_equal(n.n, 2);
	assert_string_equal(n.v[0], "Dupont-12");
	assert_string_equal(n.v[1], "dupontel");
	n.n = 0;
	assert_int_equal(server_household_search(&f->desk, "dupont", 1, name_cb, &n, &f->why), 0);
	assert_int_equal(n.n, 1);
	n.n = 0;
	assert_int_equal(server_household_search(&f->desk, NULL, 0, name_cb, &n, &f->why), 0);
	assert_int_equal(n.n, 3);

	assert_int_equal(server_household_rename(&f->desk, id, "durand", &f->why), 0);
	assert_int_equal(server_household_find(&f->desk, "durand", &h, &f->why), 0);
	assert_int_equal(h.id, id);
	assert_int_equal(server_household_find(&f->desk, "Dupont-12", &h, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_int_equal(server_household_rename(&f->desk, id, "martin", &f->why),
	                 SERVER_ERR_EXISTS);
	assert_why(f, "household 'martin' already exists");
	assert_int_equal(server_household_rename(&f->desk, id, "du rand", &f->why),
	                 SERVER_ERR_INVALID);
	assert_why(f, "household name 'du rand'");
	assert_int_equal(server_household_rename(&f->desk, 999, "x", &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_why(f, "household 999: no such household");
	/* the refusals changed nothing, on either backend (PostgreSQL's transaction goes on
	 * after the refused name: no unique violation) */
	assert_int_equal(server_household_find(&f->desk, "martin", &h, &f->why), 0);
	assert_int_equal(h.id, other);
	assert_int_equal(server_household_rename(&f->desk, other, "martin-2", &f->why), 0);
}

/* Run SQL on the (closed) store's database, whichever backend holds it: the tests of the
 * upgrades take a database back to an older schema's shape with it. */
static void rewrite_closed_store(struct fx *f, const char *pg_sql, const char *sqlite_sql)
{
	if (store_fixture_pg_dir()) {
		assert_int_equal(store_fixture_pg_run(f->db, pg_sql), 0);
		return;
	}
	char path[128];
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/%s", f->dir, SERVER_DB_FILE);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sqlite_sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* "Dupont" and "dupont" are one household: a second one would be a second shared quota
 * for the same family. Added, renamed or named at issue in any case, on both backends. */
static void test_household_names_ignore_case(void **state)
{
	struct fx *f = *state;
	int64_t id = household_new(f, "Dupont"), other = household_new(f, "martin"), again = 0;
	assert_int_equal(server_household_add(&f->desk, "dupont", &again, &f->why),
	                 SERVER_ERR_EXISTS);
	assert_why(f, "household 'dupont' already exists as 'Dupont' (household names are "
	              "compared ignoring case)");
	struct server_household h;
	assert_int_equal(server_household_find(&f->desk, "DUPONT", &h, &f->why), 0);
	assert_int_equal(h.id, id);
	assert_string_equal(h.name, "Dupont"); /* as stored */
	struct server_right r = right_of(f, "waste,quota=24/year/household");
	assert_int_equal(get(f, issue(f, "Ann", "dupont", &r, 1)).household, id);
	assert_int_equal(server_household_rename(&f->desk, other, "DUPONT", &f->why),
	                 SERVER_ERR_EXISTS);
	assert_why(f, "household 'DUPONT' already exists as 'Dupont'");
	/* its own name in another case is no conflict */
	assert_int_equal(server_household_rename(&f->desk, id, "dupont", &f->why), 0);
	assert_int_equal(server_household_find(&f->desk, "Dupont", &h, &f->why), 0);
	assert_int_equal(h.id, id);
	assert_string_equal(h.name, "dupont");
	/* the refusals changed nothing */
	assert_int_equal(server_household_find(&f->desk, "MARTIN", &h, &f->why), 0);
	assert_int_equal(h.id, other);
	assert_string_equal(h.name, "martin");
}

/* A database from before the rule may hold such a pair: the upgrade keeps both, a lookup
 * finds the exact name, and no third spelling can be added. */
static void test_household_pair_before_the_rule(void **state)
{
	struct fx *f = *state;
	int64_t upper = household_new(f, "Dupont");
	server_store_close(&f->st);
	rewrite_closed_store(f,
	                     "DROP INDEX households_folded;"
	                     "INSERT INTO households(name) VALUES('dupont');"
	                     "DELETE FROM citypass_schema; INSERT INTO citypass_schema VALUES(7)",
	                     STORE_FIXTURE_SQLITE_SCHEMA_8
	                     "INSERT INTO households(name) VALUES('dupont');");
	struct server_why why = {""};
	if (server_store_open(&f->st, f->dir, 0, &why) != 0)
		fail_msg("reopen before the rule: %s", why.text);
	struct server_household h, l;
	assert_int_equal(server_household_find(&f->desk, "Dupont", &h, &f->why), 0);
	assert_int_equal(h.id, upper);
	assert_int_equal(server_household_find(&f->desk, "dupont", &l, &f->why), 0);
	assert_true(l.id != upper);
	assert_string_equal(l.name, "dupont");
	int64_t id = 0;
	assert_int_equal(server_household_add(&f->desk, "DUPONT", &id, &f->why), SERVER_ERR_EXISTS);
	/* the upgrade made the index every lookup in lower case goes through (an import names
	 * a household on every line: a scan each would make it quadratic) */
	assert_int_equal(store_fixture_value(f->dir, f->db,
	                                     store_fixture_pg_dir()
	                                             ? "SELECT count(*) FROM pg_indexes"
	                                               " WHERE indexname = 'households_folded'"
	                                             : "SELECT count(*) FROM sqlite_master"
	                                               " WHERE name = 'households_folded'"),
	                 1);
}

static void test_household_move(void **state)
{
	struct fx *f = *state;
	int64_t a = household_new(f, "dupont"), b = household_new(f, "martin");
	struct server_right waste = right_of(f, "waste,quota=24/year/household");
	struct server_right lib = right_of(f, "library");
	int64_t ann = issue(f, "Ann", "dupont", &waste, 1);
	int64_t bob = issue(f, "Bob", "martin", &waste, 1);
	int64_t cid = issue(f, "Cid", NULL, &lib, 1);
	struct server_sector_set changed = {0};

	/* a pass with a library right only, into a household sharing a waste quota: its
	 * library entry gets the tag, and martin's members' waste sums are republished */
	assert_int_equal(server_household_move(&f->desk, cid, b, &changed, &f->why), 0);
	assert_int_equal(get(f, cid).household, b);
	assert_true(has_sector(&changed, LIBRARY));
	assert_true(has_sector(&changed, WASTE));
	uint32_t tag = 0;
	assert_int_equal(f->st.ops->household_tag_get(f->st.ctx, b, LIBRARY, &tag), 0);
	assert_true(tag != 0);

	/* from one household into another: both households' sums change */
	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_household_move(&f->desk, ann, b, &changed, &f->why), 0);
	assert_int_equal(get(f, ann).household, b);
	assert_true(has_sector(&changed, WASTE));
	assert_false(has_sector(&changed, POOL));
	struct server_household_view v;
	assert_int_equal(server_household_read(&f->desk, b, &v, &f->why), 0);
	assert_string_equal(v.h.name, "martin");
	assert_int_equal(v.n_passes, 3);
	assert_int_equal(v.passes[0].id, ann);
	assert_int_equal(v.passes[1].id, bob);
	/* two members hold the same quota: one line */
	assert_int_equal(v.n_quotas, 1);
	assert_int_equal(v.quotas[0].sector, WASTE);
	assert_int_equal(v.quotas[0].p.limit, 24);
	assert_int_equal(v.quotas[0].used, 0);
	server_household_view_free(&v);
	assert_int_equal(server_household_read(&f->desk, a, &v, &f->why), 0);
	assert_int_equal(v.n_passes, 0);
	assert_int_equal(v.n_quotas, 0);
	server_household_view_free(&v);

	/* out, and the refusals */
	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_household_move(&f->desk, ann, 0, &changed, &f->why), 0);
	assert_int_equal(get(f, ann).household, 0);
	assert_true(has_sector(&changed, WASTE));
	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_household_move(&f->desk, ann, 0, &changed, &f->why),
	                 SERVER_ERR_INVALID);
	assert_why(f, "is in no household");
	assert_int_equal(server_household_move(&f->desk, bob, b, &changed, &f->why),
	                 SERVER_ERR_INVALID);
	assert_why(f, "is already in household 'martin'");
	assert_int_equal(server_household_move(&f->desk, bob, 999, &changed, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_why(f, "household 999: no such household");
	assert_int_equal(server_household_move(&f->desk, 999, b, &changed, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_why(f, "pass 999: no such pass");
	assert_int_equal(server_pass_revoke(&f->desk, bob, "lost", &changed, &f->why), 0);
	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_household_move(&f->desk, bob, a, &changed, &f->why),
	                 SERVER_ERR_STATE);
	assert_why(f, "is revoked");
	assert_int_equal(get(f, bob).household, b);
	assert_int_equal(changed.n, 0); /* nothing to publish after a refusal */
}

static void test_household_remove(void **state)
{
	struct fx *f = *state;
	int64_t a = household_new(f, "dupont");
	struct server_right waste = right_of(f, "waste,quota=24/year/household");
	int64_t ann = issue(f, "Ann", "dupont", &waste, 1);
	int64_t bob = issue(f, "Bob", "dupont", &waste, 1);
	struct server_sector_set changed = {0};
	assert_int_equal(server_household_remove(&f->desk, a, &changed, &f->why),
	                 SERVER_ERR_IN_USE);
	char want[96];
	snprintf(want, sizeof(want), "still holds 2 live passes (%" PRId64 ", %" PRId64 ")", ann,
	         bob);
	assert_why(f, want);
	assert_int_equal(changed.n, 0);
	assert_int_equal(get(f, ann).household, a);

	/* a revoked member does not keep it alive: it leaves it, its entry republished */
	assert_int_equal(server_pass_revoke(&f->desk, ann, "moved away", &changed, &f->why), 0);
	assert_int_equal(server_household_move(&f->desk, bob, 0, &changed, &f->why), 0);
	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_household_remove(&f->desk, a, &changed, &f->why), 0);
	assert_true(has_sector(&changed, WASTE));
	assert_int_equal(get(f, ann).household, 0);
	struct server_household h;
	assert_int_equal(server_household_find(&f->desk, "dupont", &h, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	uint32_t tag;
	assert_int_equal(f->st.ops->household_tag_get(f->st.ctx, a, WASTE, &tag),
	                 SERVER_ERR_NOT_FOUND);
	assert_int_equal(server_household_remove(&f->desk, a, &changed, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	/* the name is free again */
	household_new(f, "dupont");
}

/* --- search: case and accents ignored ----------------------------------------------------- */

static void test_text_fold(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} v[] = {
	        {"Dupont", "dupont"},
	        {"Hélène", "helene"},
	        {"HÉLÈNE", "helene"},
	        {"Œuvray-Çaçà", "oeuvray-caca"},
	        {"N\xe2\x80\x99"
	         "Diaye",
	         "n'diaye"},                          /* typographic apostrophe */
	        {"He\xcc\x81le\xcc\x80ne", "helene"}, /* decomposed (NFD) accents */
	        {"Łódź Straße", "lodz strasse"},
	        {"Zoë × 2", "zoe × 2"}, /* no letter: kept */
	        {"Ωmega", "Ωmega"},     /* beyond Latin: as it is */
	        {"bad\xff", "bad\xff"}, /* not UTF-8: byte for byte */
	};
	char out[64];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		server_text_fold(v[i].in, out, sizeof(out));
		assert_string_equal(out, v[i].out);
	}
	/* whole characters only: "é" folds to one byte, "œ" to two, never half of them */
	assert_int_equal(server_text_fold("aœ", out, 3), 1);
	assert_string_equal(out, "a");
}

struct found {
	int64_t ids[8];
	size_t n;
};

static int found_cb(void *arg, const struct server_pass *p)
{
	struct found *f = arg;
	if (f->n < 8)
		f->ids[f->n++] = p->id;
	return 0;
}

static size_t holder_search(struct fx *f, const char *text, int64_t *first)
{
	struct server_pass_filter flt = {text, 0, -1, -1};
	struct found fd = {.n = 0};
	assert_int_equal(f->st.ops->pass_each(f->st.ctx, &flt, found_cb, &fd), 0);
	if (first)
		*first = fd.n ? fd.ids[0] : 0;
	return fd.n;
}

static void test_holder_search(void **state)
{
	struct fx *f = *state;
	struct server_right r = right_of(f, "pool");
	int64_t helene = issue(f, "Hélène Dupont", NULL, &r, 1);
	issue(f, "Marc Durand", NULL, &r, 1);
	int64_t id = 0;
	assert_int_equal(holder_search(f, "helene", &id), 1);
	assert_int_equal(id, helene);
	assert_int_equal(holder_search(f, "DUPONT", &id), 1);
	assert_int_equal(holder_search(f, "hÉlÈne d", &id), 1);
	assert_int_equal(holder_search(f, "du", NULL), 2);
	assert_int_equal(holder_search(f, "helena", NULL), 0);
	/* a holder renamed (a replacement keeps the name; an update rewrites its key) */
	struct server_pass p = get(f, helene);
	snprintf(p.holder, sizeof(p.holder), "Zoé Martin");
	assert_int_equal(f->st.ops->pass_update(f->st.ctx, &p), 0);
	assert_int_equal(holder_search(f, "helene", NULL), 0);
	assert_int_equal(holder_search(f, "zoe", &id), 1);
	assert_int_equal(id, helene);
}

/* A database of schema 6 (before the folded names) is brought to 7 with every holder's
 * key filled: found by a search that ignores accents at once. */
static void test_holder_key_migration(void **state)
{
	struct fx *f = *state;
	struct server_right r = right_of(f, "pool");
	int64_t helene = issue(f, "Hélène Dupont", NULL, &r, 1);
	server_store_close(&f->st);
	if (store_fixture_pg_dir()) {
		/* more passes than one chunk of the migration (1 000), names needing quoting */
		assert_int_equal(
		        store_fixture_pg_run(f->db,
		                             "INSERT INTO passes(holder, state, reason, medium,"
		                             " created) SELECT 'Zoé \"O''Brien\", {' || g,"
		                             " 0, '', 'none', 0 FROM generate_series(1, 2500) g"),
		        0);
	}
	rewrite_closed_store(f,
	                     "ALTER TABLE passes DROP COLUMN holder_key;"
	                     "DROP INDEX households_folded;"
	                     "DELETE FROM citypass_schema; INSERT INTO citypass_schema VALUES(6)",
	                     STORE_FIXTURE_SQLITE_SCHEMA_7
	                     "ALTER TABLE passes DROP COLUMN holder_key;"
	                     "PRAGMA user_version=6");
	struct server_why why = {""};
	if (server_store_open(&f->st, f->dir, 0, &why) != 0)
		fail_msg("reopen at schema 6: %s", why.text);
	int64_t id = 0;
	assert_int_equal(holder_search(f, "helene", &id), 1);
	assert_int_equal(id, helene);
	if (store_fixture_pg_dir()) { /* the last chunk's passes too, their names intact */
		assert_int_equal(holder_search(f, "zoe \"o'brien\", {2500", &id), 1);
		struct server_pass p = get(f, id);
		assert_string_equal(p.holder, "Zoé \"O'Brien\", {2500");
		assert_int_equal(holder_search(f, "zoe \"o'brien\", {1", &id), 8); /* the first */
		assert_int_equal(holder_search(f, "zoe \"o'brien\", {1000", &id),
		                 1); /* a chunk's end */
		assert_int_equal(holder_search(f, "zoe \"o'brien\", {1001", &id), 1);
	}
}

/* --- issue -------------------------------------------------------------------------------- */

static void test_issue(void **state)
{
	struct fx *f = *state;
	struct server_right r[2] = {right_of(f, "pool,entries=10"), right_of(f, "library")};
	struct server_pass_order o = {.holder = "Léa Martin", .rights = r, .n_rights = 2};
	struct server_issued out;
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), 0);
	assert_int_equal(out.pass.state, SERVER_PASS_ACTIVE);
	assert_string_equal(out.pass.medium, "none");
	assert_int_equal(out.pass.created, NOW);
	assert_int_equal(out.changed.n, 2);
	assert_int_equal(out.changed.v[0], POOL);
	assert_int_equal(out.changed.v[1], LIBRARY);
	struct server_pass p = get(f, out.pass.id);
	assert_string_equal(p.holder, "Léa Martin");
	assert_int_equal(rights_count(f, p.id), 2);
	/* an identifier in every sector, with its list key: a card carries them all */
	for (uint16_t s = POOL; s <= WASTE; s++)
		assert_int_equal(f->st.ops->pass_id_get(f->st.ctx, p.id, s, NULL, NULL), 0);
	/* entries go on the card only for a card: this pass has none, the server counts them */
	struct server_right *rr = NULL;
	size_t n = 0;
	assert_int_equal(f->st.ops->rights_of_pass(f->st.ctx, p.id, &rr, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_false(rr[i].p.flags & PROTO_PROFILE_ENTRIES_ON_CARD);
	free(rr);
	/* anonymous */
	o.holder = NULL;
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), 0);
	assert_string_equal(get(f, out.pass.id).holder, "");
}

static void test_issue_refusals(void **state)
{
	struct fx *f = *state;
	struct server_right r[2] = {right_of(f, "pool"), right_of(f, "pool,product=2")};
	struct server_issued out;
	const size_t before = count_passes(f);

	struct server_pass_order o = {
	        .holder = "Al", .household = "martin", .rights = r, .n_rights = 1};
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_NOT_FOUND);
	assert_why(f, "--household 'martin': no such household");

	o.household = NULL;
	o.n_rights = 2; /* one right per sector */
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_INVALID);
	assert_why(f, "one right per sector");

	o.n_rights = 1;
	o.holder = "Al\xff"; /* names are stored and exported as UTF-8 */
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_INVALID);
	assert_why(f, "byte 3 is not UTF-8");

	o.holder = "Al";
	struct server_phone_request ph = {POOL, "/nonexistent.pem"};
	o.medium = (struct server_pass_medium){.reader = f->reader,
	                                       .reader_name = "desk",
	                                       .phones = &ph,
	                                       .n_phones = 1,
	                                       .out_dir = f->dir};
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_INVALID);
	assert_why(f, "one medium per pass");

	/* a phone request that is not a key: refused inside the transaction, nothing kept */
	char out_dir[128];
	snprintf(out_dir, sizeof(out_dir), "%s/creds", f->dir);
	o.medium = (struct server_pass_medium){.phones = &ph, .n_phones = 1, .out_dir = out_dir};
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_INVALID);
	assert_why(f, "not a P-256 public key PEM");
	struct stat sb;
	assert_int_not_equal(stat(out_dir, &sb), 0); /* the directory it made is gone */

	assert_int_equal(count_passes(f), before);
}

/* --- revoke ------------------------------------------------------------------------------- */

static void test_revoke(void **state)
{
	struct fx *f = *state;
	struct server_right r[2] = {right_of(f, "pool"), right_of(f, "waste,quota=2/week")};
	int64_t id = issue(f, "Ann", NULL, r, 2);
	struct server_sector_set changed = {0};
	assert_int_equal(server_pass_revoke(&f->desk, id, "lost", &changed, &f->why), 0);
	struct server_pass p = get(f, id);
	assert_int_equal(p.state, SERVER_PASS_REVOKED);
	assert_string_equal(p.reason, "lost");
	/* the lists of the pass's sectors change */
	assert_int_equal(changed.n, 2);

	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_pass_revoke(&f->desk, id, "stolen", &changed, &f->why),
	                 SERVER_ERR_STATE);
	assert_why(f, "is already revoked");
	assert_int_equal(changed.n, 0);
	assert_string_equal(get(f, id).reason, "lost"); /* the first reason stays */

	assert_int_equal(server_pass_revoke(&f->desk, 999, "lost", &changed, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_why(f, "pass 999: no such pass");

	int64_t other = issue(f, "Bob", NULL, r, 1);
	assert_int_equal(server_pass_revoke(&f->desk, other, "", &changed, &f->why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(get(f, other).state, SERVER_PASS_ACTIVE);
}

/* --- rights ------------------------------------------------------------------------------- */

static void test_rights(void **state)
{
	struct fx *f = *state;
	struct server_right pool = right_of(f, "pool,to=2026-12-31");
	int64_t id = issue(f, "Ann", NULL, &pool, 1);
	struct server_sector_set changed = {0};

	/* renewing is granting again with new dates: the sector's right is replaced */
	struct server_right renew[2] = {right_of(f, "pool,to=2027-12-31"), right_of(f, "library")};
	assert_int_equal(server_rights_grant(&f->desk, id, renew, 2, &changed, &f->why), 0);
	assert_int_equal(changed.n, 2);
	assert_int_equal(rights_count(f, id), 2);
	struct server_right *rv = NULL;
	size_t n = 0;
	assert_int_equal(f->st.ops->rights_of_pass(f->st.ctx, id, &rv, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (rv[i].sector == POOL)
			assert_int_equal(rv[i].p.valid_to, renew[0].p.valid_to);
	free(rv);

	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_rights_withdraw(&f->desk, id, LIBRARY, &changed, &f->why), 0);
	assert_int_equal(changed.n, 1);
	assert_int_equal(changed.v[0], LIBRARY);
	assert_int_equal(rights_count(f, id), 1);
	assert_int_equal(server_rights_withdraw(&f->desk, id, LIBRARY, &changed, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_why(f, "holds no right in sector library");

	/* two rights for one sector in one grant */
	struct server_right twice[2] = {right_of(f, "waste"), right_of(f, "waste,product=2")};
	assert_int_equal(server_rights_grant(&f->desk, id, twice, 2, &changed, &f->why),
	                 SERVER_ERR_INVALID);
	assert_int_equal(rights_count(f, id), 1);

	assert_int_equal(server_rights_grant(&f->desk, 4242, renew, 1, &changed, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	assert_why(f, "pass 4242: no such pass");

	/* rights go to an active pass */
	assert_int_equal(server_pass_revoke(&f->desk, id, "moved away", &changed, &f->why), 0);
	memset(&changed, 0, sizeof(changed));
	assert_int_equal(server_rights_grant(&f->desk, id, &renew[1], 1, &changed, &f->why),
	                 SERVER_ERR_STATE);
	assert_why(f, "is revoked: rights go to an active pass");
	assert_int_equal(changed.n, 0);
	assert_int_equal(rights_count(f, id), 1);
}

/* --- replace ------------------------------------------------------------------------------ */

static void test_replace(void **state)
{
	struct fx *f = *state;
	int64_t hh;
	assert_int_equal(server_household_add(&f->desk, "petit", &hh, &f->why), 0);
	struct server_right r[2] = {right_of(f, "pool"), right_of(f, "waste,quota=24/year")};
	int64_t id = issue(f, "Ann", "petit", r, 2);
	/* a lost card is revoked at once, replaced at the desk later */
	struct server_sector_set changed = {0};
	assert_int_equal(server_pass_revoke(&f->desk, id, "lost", &changed, &f->why), 0);
	uint8_t old_key[PROTO_LIST_KEY_LEN], new_key[PROTO_LIST_KEY_LEN];
	assert_int_equal(f->st.ops->pass_id_get(f->st.ctx, id, WASTE, NULL, old_key), 0);

	struct server_pass_medium none = {0};
	struct server_issued out;
	assert_int_equal(server_pass_replace(&f->desk, id, NULL, &none, &out, &f->why), 0);
	struct server_pass old = get(f, id), p = get(f, out.pass.id);
	assert_int_equal(old.state, SERVER_PASS_REPLACED);
	assert_int_equal(old.replaced_by, p.id);
	assert_string_equal(old.reason, "replaced");
	assert_int_equal(p.state, SERVER_PASS_ACTIVE); /* the new card is good */
	assert_string_equal(p.holder, "Ann");
	assert_int_equal(p.household, hh);
	assert_int_equal(rights_count(f, p.id), 2);
	assert_int_equal(out.changed.n, 2);
	/* a new identifier: the old card's list key is not the new one's */
	assert_int_equal(f->st.ops->pass_id_get(f->st.ctx, p.id, WASTE, NULL, new_key), 0);
	assert_memory_not_equal(old_key, new_key, sizeof(old_key));

	/* a replaced pass is not replaced again: its rights moved already */
	const size_t before = count_passes(f);
	assert_int_equal(server_pass_replace(&f->desk, id, "again", &none, &out, &f->why),
	                 SERVER_ERR_STATE);
	assert_why(f, "is already replaced (by pass");
	assert_int_equal(count_passes(f), before);
	assert_int_equal(server_pass_replace(&f->desk, 777, NULL, &none, &out, &f->why),
	                 SERVER_ERR_NOT_FOUND);
	/* nor revoked */
	assert_int_equal(server_pass_revoke(&f->desk, id, "lost", &changed, &f->why),
	                 SERVER_ERR_STATE);
	assert_why(f, "is already replaced");
}

/* --- the card at the desk ----------------------------------------------------------------- */

static void test_card_issue_and_recycle(void **state)
{
	struct fx *f = *state;
	place_blank_card(f);
	struct server_right r[2] = {right_of(f, "pool,entries=10"), right_of(f, "library")};
	struct server_pass_order o = {.holder = "Ann", .rights = r, .n_rights = 2};
	o.medium = (struct server_pass_medium){.reader = f->reader, .reader_name = "desk 1"};
	struct server_issued out;
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), 0);
	assert_string_equal(out.pass.medium, "card");
	assert_false(out.card_retaken);
	/* the pool's entries went on the card's value file */
	struct server_right *rv = NULL;
	size_t n = 0;
	assert_int_equal(f->st.ops->rights_of_pass(f->st.ctx, out.pass.id, &rv, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(!!(rv[i].p.flags & PROTO_PROFILE_ENTRIES_ON_CARD),
		                 rv[i].sector == POOL);
	free(rv);

	/* the desk reads which pass the card holds: nothing to type */
	struct server_card_info info;
	assert_int_equal(server_card_inspect(&f->desk, f->reader, "desk 1", 0, &info, &f->why), 0);
	assert_int_equal(info.report.state, CARDLIB_CARD_OURS);
	assert_true(info.has_pass);
	assert_int_equal(info.pass.id, out.pass.id);
	assert_true(info.report.has_value);
	assert_int_equal(info.report.value, 10);
	assert_int_equal(info.n_sectors, 3);

	/* the card holds a live pass: it takes no second one, and no pass is left behind */
	const size_t before = count_passes(f);
	o.holder = "Bob";
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_IN_USE);
	assert_why(f, "card not issued at reader 'desk 1': it holds pass");
	assert_int_equal(count_passes(f), before);

	/* nor is it taken back while its pass lives */
	int random_id = 0;
	assert_int_equal(server_card_recycle(&f->desk, f->reader, "desk 1", &random_id, &f->why),
	                 SERVER_ERR_IN_USE);
	assert_why(f, "must be revoked ('pass revoke') or replaced");
	struct server_sector_set changed = {0};
	assert_int_equal(
	        server_pass_revoke(&f->desk, info.pass.id, "moved away", &changed, &f->why), 0);
	assert_int_equal(server_card_recycle(&f->desk, f->reader, "desk 1", &random_id, &f->why),
	                 0);
	assert_true(random_id);
	assert_int_equal(server_card_inspect(&f->desk, f->reader, "desk 1", 0, &info, &f->why), 0);
	assert_int_equal(info.report.state, CARDLIB_CARD_BLANK);
	assert_false(info.has_pass);

	/* taken back, it is issued again */
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), 0);
	assert_string_equal(out.pass.medium, "card");
}

static void test_card_absent(void **state)
{
	struct fx *f = *state;
	hil_field_clear(&f->hf); /* nothing on the reader */
	struct server_right r = right_of(f, "pool");
	struct server_pass_order o = {.holder = "Ann", .rights = &r, .n_rights = 1};
	o.medium = (struct server_pass_medium){.reader = f->reader, .reader_name = "desk 2"};
	struct server_issued out;
	const size_t before = count_passes(f);
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_CARD);
	assert_why(f, "card not issued at reader 'desk 2': ");
	assert_int_equal(count_passes(f), before); /* the pass went with the card */
	struct server_card_info info;
	assert_int_equal(server_card_inspect(&f->desk, f->reader, "desk 2", 0, &info, &f->why),
	                 SERVER_ERR_CARD);
}

/* --- phones ------------------------------------------------------------------------------- */

static void test_phone(void **state)
{
	struct fx *f = *state;
	char pem[128], out_dir[128], cred[160];
	struct proto_key *phone = NULL;
	snprintf(pem, sizeof(pem), "%s/sector-1.request.pem", f->dir);
	snprintf(out_dir, sizeof(out_dir), "%s/phone", f->dir);
	assert_int_equal(proto_key_generate(&phone), 0);
	assert_int_equal(proto_key_write_public_pem(phone, pem), 0);
	proto_key_free(phone);
	struct server_right r = right_of(f, "pool");
	struct server_phone_request req = {POOL, pem};
	struct server_pass_order o = {.holder = "Ann", .rights = &r, .n_rights = 1};
	o.medium = (struct server_pass_medium){.phones = &req, .n_phones = 1, .out_dir = out_dir};
	struct server_issued out;
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), 0);
	assert_string_equal(out.pass.medium, "phone");
	snprintf(cred, sizeof(cred), "%s/sector-1.cred", out_dir);
	struct stat sb;
	assert_int_equal(stat(cred, &sb), 0);
	assert_true(sb.st_size > 0);
	/* the credential exists: a second issue to the same place is refused, whole */
	const size_t before = count_passes(f);
	assert_int_equal(server_pass_issue(&f->desk, &o, &out, &f->why), SERVER_ERR_EXISTS);
	assert_why(f, "it exists");
	assert_int_equal(count_passes(f), before);
}

/* --- errors ------------------------------------------------------------------------------- */

/* A failure of the database reaches the agent's sentence in the database's own words. */
static void test_database_words(void **state)
{
	struct fx *f = *state;
	struct server_right r = right_of(f, "pool");
	int64_t id = issue(f, "Ann", NULL, &r, 1);
	/* a function nobody has: every update of a pass fails in the database */
	if (store_fixture_pg_dir()) {
		assert_int_equal(
		        store_fixture_pg_run(f->db,
		                             "CREATE FUNCTION broken() RETURNS trigger AS $$BEGIN "
		                             "PERFORM citypass_no_such_function(); RETURN NEW; END"
		                             "$$ LANGUAGE plpgsql;"
		                             "CREATE TRIGGER broken BEFORE UPDATE ON passes FOR "
		                             "EACH ROW EXECUTE FUNCTION broken()"),
		        0);
	} else {
		char path[128];
		sqlite3 *db = NULL;
		snprintf(path, sizeof(path), "%s/%s", f->dir, SERVER_DB_FILE);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db,
		                              "CREATE TRIGGER broken BEFORE UPDATE ON passes BEGIN "
		                              "SELECT citypass_no_such_function(); END;",
		                              NULL, NULL, NULL),
		                 SQLITE_OK);
		sqlite3_close(db);
	}
	struct server_sector_set changed = {0};
	assert_int_equal(server_pass_revoke(&f->desk, id, "lost", &changed, &f->why),
	                 SERVER_ERR_IO);
	assert_why(f, "cannot revoke pass");
	assert_why(f, store_fixture_pg_dir() ? "function citypass_no_such_function() does not exist"
	                                     : "no such function: citypass_no_such_function");
	assert_int_equal(get(f, id).state, SERVER_PASS_ACTIVE); /* rolled back */
}

static void test_error_range(void **state)
{
	(void)state;
	static const int codes[] = {
	        SERVER_ERR_ARG,          SERVER_ERR_NOMEM,       SERVER_ERR_IO,
	        SERVER_ERR_NOT_FOUND,    SERVER_ERR_REVOKED,     SERVER_ERR_INVALID,
	        SERVER_ERR_EXISTS,       SERVER_ERR_CRYPTO,      SERVER_ERR_BUSY,
	        SERVER_ERR_STATE,        SERVER_ERR_CARD,        SERVER_ERR_IN_USE,
	        SERVER_ERR_SCHEMA_NEWER, SERVER_ERR_UNREACHABLE, SERVER_ERR_RETENTION,
	};
	const size_t n = sizeof(codes) / sizeof(codes[0]);
	for (size_t i = 0; i < n; i++) {
		/* proto -1..-99, controller -100..-199, cardlib -200..-299: the server's own */
		assert_true(codes[i] <= SERVER_ERR_FIRST && codes[i] >= SERVER_ERR_LAST);
		assert_string_not_equal(server_strerror(codes[i]), "unknown error");
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(codes[i], codes[j]);
			assert_string_not_equal(server_strerror(codes[i]),
			                        server_strerror(codes[j]));
		}
	}
	assert_string_equal(server_strerror(-3), "unknown error"); /* proto's IO is not ours */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_right_parse, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_household, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_household_find_rename, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_household_names_ignore_case, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_household_pair_before_the_rule, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_household_move, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_household_remove, setup, teardown),
	        cmocka_unit_test(test_text_fold),
	        cmocka_unit_test_setup_teardown(test_holder_search, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_holder_key_migration, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_issue, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_issue_refusals, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rights, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_card_issue_and_recycle, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_card_absent, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_phone, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_database_words, setup, teardown),
	        cmocka_unit_test(test_error_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
