/*
 * holder.c — a holder's access and erasure requests (server/holder.h, docs/privacy.md).
 */
#define _XOPEN_SOURCE 700 /* gmtime_r */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/calendar.h"
#include "server/holder.h"
#include "server/privacy.h"
#include "server/publish.h"

/* The store ops a holder's request needs (issue 17): a store without them (one written
 * before them) refuses the request with a sentence instead of calling NULL. */
static int store_can(const struct server_desk *d, struct server_why *why)
{
	const struct server_store_ops *o = d->st->ops;
	if (o->uses_of_key && o->household_name && o->pass_erase && o->erase_flush)
		return 0;
	return server_why_set(why, SERVER_ERR_INVALID,
	                      "this deployment's store does not implement a holder's requests "
	                      "yet (uses_of_key, household_name, pass_erase, erase_flush: "
	                      "server/store.h)");
}

/* --- the holder's passes ------------------------------------------------------------------ */

struct idset {
	int64_t *v;
	size_t n, cap;
};

static int idset_has(const struct idset *s, int64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == id)
			return 1;
	return 0;
}

static int idset_add(struct idset *s, int64_t id)
{
	if (id <= 0 || idset_has(s, id))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		int64_t *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return SERVER_ERR_NOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = id;
	return 0;
}

struct chain_scan {
	struct idset *set;
	int grew, rc;
};

/* A pass replaced by one of the set, or replacing one (its id is a replaced_by). */
static int chain_visit(void *arg, const struct server_pass *p)
{
	struct chain_scan *c = arg;
	if (idset_has(c->set, p->id))
		return 0;
	if ((p->replaced_by && idset_has(c->set, p->replaced_by))) {
		c->rc = idset_add(c->set, p->id);
		c->grew = 1;
	}
	return c->rc;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int collect(const struct server_desk *d, int64_t pass, struct idset *set,
                   struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_pass p;
	int rc = st->ops->pass_get(st->ctx, pass, &p);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(why, rc, "no pass %" PRId64, pass);
	if (rc)
		return server_why_set(why, rc, "cannot read pass %" PRId64 ": %s", pass,
		                      server_store_strerror(st, rc));
	if ((rc = idset_add(set, pass)) != 0)
		return server_why_set(why, rc, "out of memory");
	/* forward: the passes that replaced it */
	for (int64_t next = p.replaced_by; next > 0 && !idset_has(set, next);) {
		struct server_pass q;
		if (st->ops->pass_get(st->ctx, next, &q) != 0 || (rc = idset_add(set, next)) != 0)
			break;
		next = q.replaced_by;
	}
	/* backward: the passes they replaced (same holder: scan only theirs) */
	struct server_pass_filter f = {p.holder, 0, -1, -1};
	for (;;) {
		struct chain_scan c = {set, 0, 0};
		rc = st->ops->pass_each(st->ctx, &f, chain_visit, &c);
		if (rc)
			return server_why_set(why, rc, "cannot read the passes: %s",
			                      server_store_strerror(st, rc));
		if (!c.grew)
			break;
	}
	qsort(set->v, set->n, sizeof(*set->v), cmp_id);
	return 0;
}

int server_holder_passes(const struct server_desk *d, int64_t pass, int64_t **ids, size_t *n,
                         struct server_why *why)
{
	struct idset set = {NULL, 0, 0};
	int rc = collect(d, pass, &set, why);
	if (rc) {
		free(set.v);
		return rc;
	}
	*ids = set.v;
	*n = set.n;
	return 0;
}

/* --- words and dates ---------------------------------------------------------------------- */

static const char *iso_time(int64_t t, char *buf, size_t cap)
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, cap, "%" PRId64, t);
	return buf;
}

static const char *iso_day(int32_t day, char *buf, size_t cap)
{
	int32_t y;
	unsigned m, md;
	proto_civil_from_days(day, &y, &m, &md);
	snprintf(buf, cap, "%04d-%02u-%02u", (int)y, m, md);
	return buf;
}

static const char *period_name(int period)
{
	static const char *const names[] = {"none", "lifetime", "day", "week", "month", "year"};
	return period >= 0 && period <= 5 ? names[period] : "unknown";
}

/* When a counted use of `period_no` is deleted: the first day of a later period (the
 * daily expiry runs at the first publish of that day), in buf; "" for a lifetime count. */
static void count_deleted(int period, int64_t period_no, int32_t today, char *buf, size_t cap)
{
	buf[0] = 0;
	if (period < PROTO_PERIOD_DAY || period > PROTO_PERIOD_YEAR) {
		if (period == PROTO_PERIOD_NONE) /* no right counts it: the next expiry */
			iso_day(today, buf, cap);
		return;
	}
	for (int32_t day = today; day < today + 400; day++)
		if (proto_period_number((uint8_t)period, day) > period_no) {
			iso_day(day, buf, cap);
			return;
		}
}

/* --- export ------------------------------------------------------------------------------- */

static void sector_add(struct server_sector_set *s, uint16_t sector)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == sector)
			return;
	if (s->n < SERVER_CARD_SLOTS)
		s->v[s->n++] = sector;
}

struct ex {
	const struct server_desk *d;
	struct server_sector_set sectors; /* where the holder has an identifier */
	FILE *json, *page;
	int32_t today;
	struct server_sector *sec;
	size_t n_sec;
	struct server_retention *ret;
	/* per use */
	const struct server_right *rights;
	size_t n_rights;
	int first_use;
	uint64_t uses;
};

static void jkey(struct ex *x, const char *k, const char *v, int comma)
{
	if (!x->json)
		return;
	fprintf(x->json, "%s\"%s\":", comma ? "," : "", k);
	if (v)
		server_json_string(x->json, v);
	else
		fputs("null", x->json);
}

static void ptext(struct ex *x, const char *s)
{
	if (x->page)
		server_html_text(x->page, s);
}

static void prow(struct ex *x, const char *label, const char *value)
{
	if (!x->page)
		return;
	fputs("<tr><th>", x->page);
	server_html_text(x->page, label);
	fputs("</th><td>", x->page);
	server_html_text(x->page, value);
	fputs("</td></tr>\n", x->page);
}

static const struct server_retention *ret_of(const struct ex *x, uint16_t sector)
{
	for (size_t i = 0; i < x->n_sec; i++)
		if (x->ret[i].sector == sector)
			return &x->ret[i];
	return NULL;
}

static int use_visit(void *arg, const struct server_use *u)
{
	struct ex *x = arg;
	const struct server_retention *r = ret_of(x, u->sector);
	int period = PROTO_PERIOD_NONE;
	for (size_t i = 0; i < x->n_rights; i++)
		if (x->rights[i].sector == u->sector && x->rights[i].p.product == u->product)
			period = x->rights[i].p.period;
	char stored[32] = "", detail[32] = "", gone[16];
	const int folded = u->device[0] == 0;
	if (!folded) {
		iso_time(u->stored_at, stored, sizeof(stored));
		iso_time(u->stored_at + (int64_t)(r ? r->hours : 0) * 3600, detail, sizeof(detail));
	}
	count_deleted(period, u->period, x->today, gone, sizeof(gone));
	x->uses++;
	if (x->json) {
		fprintf(x->json,
		        "%s{\"product\":%" PRIu32 ",\"count\":%" PRIu32
		        ",\"period\":\"%s\",\"period_number\":%" PRId64,
		        x->first_use ? "" : ",", u->product, u->count, period_name(period),
		        u->period);
		x->first_use = 0;
		jkey(x, "reported_by_gate", folded ? NULL : u->device, 1);
		jkey(x, "stored_at", folded ? NULL : stored, 1);
		jkey(x, "gate_and_time_deleted_at", folded ? NULL : detail, 1);
		jkey(x, "count_deleted_on", gone[0] ? gone : NULL, 1);
		fputc('}', x->json);
	}
	if (x->page) {
		char line[512];
		snprintf(line, sizeof(line),
		         "product %" PRIu32 ", %" PRIu32 " use(s) in %s %" PRId64 "%s%s%s%s%s; the "
		         "count is deleted %s%s",
		         u->product, u->count, period_name(period), u->period,
		         folded ? "" : ", reported by gate ", folded ? "" : u->device,
		         folded ? "" : " on ", folded ? "" : stored,
		         folded ? "" : " (gate and time deleted at the sector's retention)",
		         gone[0] ? "on " : "while a right counts it", gone);
		fputs("<li>", x->page);
		ptext(x, line);
		fputs("</li>\n", x->page);
	}
	return 0;
}

static int export_pass(struct ex *x, int64_t id, int first)
{
	struct server_store *st = x->d->st;
	struct server_pass p;
	char buf[64], hh[SERVER_NAME_MAX] = "";
	int rc = st->ops->pass_get(st->ctx, id, &p);
	if (rc)
		return rc;
	if (p.household && (rc = st->ops->household_name(st->ctx, p.household, hh, sizeof(hh))) &&
	    rc != SERVER_ERR_NOT_FOUND)
		return rc;
	struct server_right *rights = NULL;
	size_t n_rights = 0;
	if ((rc = st->ops->rights_of_pass(st->ctx, id, &rights, &n_rights)) != 0)
		return rc;
	if (x->json) {
		fprintf(x->json, "%s{\"id\":%" PRId64, first ? "" : ",", id);
		jkey(x, "holder", p.holder[0] ? p.holder : NULL, 1);
		jkey(x, "household", p.household ? hh : NULL, 1);
		jkey(x, "state", server_pass_state_name(p.state), 1);
		jkey(x, "reason", p.reason, 1);
		jkey(x, "medium", p.medium, 1);
		jkey(x, "created_at", iso_time(p.created, buf, sizeof(buf)), 1);
		if (p.replaced_by)
			fprintf(x->json, ",\"replaced_by\":%" PRId64, p.replaced_by);
		else
			fputs(",\"replaced_by\":null", x->json);
		fputs(",\"sectors\":[", x->json);
	}
	if (x->page) {
		snprintf(buf, sizeof(buf), "Pass %" PRId64, id);
		fputs("<h2>", x->page);
		ptext(x, buf);
		fputs("</h2>\n<table>\n", x->page);
		prow(x, "holder", p.holder[0] ? p.holder : "(anonymous)");
		prow(x, "household", p.household ? hh : "(none)");
		prow(x, "state", server_pass_state_name(p.state));
		prow(x, "reason", p.reason);
		prow(x, "medium", p.medium);
		prow(x, "created", iso_time(p.created, buf, sizeof(buf)));
		fputs("</table>\n", x->page);
	}
	int n_out = 0;
	for (size_t s = 0; s < x->n_sec && rc == 0; s++) {
		const uint16_t sector = x->sec[s].number;
		uint8_t ident[SERVER_PASS_ID_LEN], key[PROTO_LIST_KEY_LEN];
		const struct server_right *right = NULL;
		for (size_t i = 0; i < n_rights; i++)
			if (rights[i].sector == sector)
				right = &rights[i];
		int have_id = st->ops->pass_id_get(st->ctx, id, sector, ident, key) == 0;
		if (!have_id && !right)
			continue;
		if (have_id)
			sector_add(&x->sectors, sector);
		char ih[2 * SERVER_PASS_ID_LEN + 1] = "", kh[2 * PROTO_LIST_KEY_LEN + 1] = "";
		char desc[256] = "";
		for (size_t i = 0; have_id && i < sizeof(ident); i++)
			sprintf(ih + 2 * i, "%02x", ident[i]);
		for (size_t i = 0; have_id && i < sizeof(key); i++)
			sprintf(kh + 2 * i, "%02x", key[i]);
		if (right)
			server_right_describe(&right->p, desc, sizeof(desc));
		if (x->json) {
			fprintf(x->json, "%s{", n_out ? "," : "");
			jkey(x, "sector", x->sec[s].name, 0);
			jkey(x, "identifier", have_id ? ih : NULL, 1);
			jkey(x, "list_key", have_id ? kh : NULL, 1);
			jkey(x, "right", right ? desc : NULL, 1);
			fputs(",\"uses\":[", x->json);
		}
		if (x->page) {
			char h[200];
			snprintf(h, sizeof(h), "Sector %s", x->sec[s].name);
			fputs("<h3>", x->page);
			ptext(x, h);
			fputs("</h3>\n<table>\n", x->page);
			prow(x, "identifier (on the card or in the phone's credential)",
			     have_id ? ih : "(none)");
			prow(x, "list key (what the sector's gates know)", have_id ? kh : "(none)");
			prow(x, "right", right ? desc : "(none)");
			fputs("</table>\n<ul>\n", x->page);
		}
		n_out++;
		x->rights = rights;
		x->n_rights = n_rights;
		x->first_use = 1;
		if (have_id)
			rc = st->ops->uses_of_key(st->ctx, sector, key, use_visit, x);
		if (x->json)
			fputs("]}", x->json);
		if (x->page)
			fputs("</ul>\n", x->page);
	}
	free(rights);
	if (x->json)
		fputs("]}", x->json);
	return rc;
}

/* What is kept outside the server's database, said the same way in the export and after an
 * erasure: one sentence each, with until when. */
static int in_set(const struct server_sector_set *s, uint16_t sector)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == sector)
			return 1;
	return 0;
}

static void elsewhere(const struct server_desk *d, struct server_retention *ret, size_t n,
                      const struct server_sector_set *sectors,
                      int each(void *arg, const char *sentence), void *arg)
{
	char s[512], t[32];
	for (size_t i = 0; i < n; i++) {
		if (!in_set(sectors, ret[i].sector))
			continue;
		snprintf(s, sizeof(s),
		         "the journals of the %s gates keep this holder's uses (list key and time) "
		         "at most %" PRIu32 " hours, until %s at the latest",
		         ret[i].name, ret[i].hours,
		         iso_time(d->now + (int64_t)ret[i].hours * 3600, t, sizeof(t)));
		each(arg, s);
	}
	each(arg, "the card keeps its per-sector identifiers until it is taken back and wiped "
	          "('citypass-admin card recycle'); a phone keeps its credentials until they "
	          "expire or the wallet is deleted");
	each(arg, "backups taken before today keep what they held until the operator deletes "
	          "them; restoring one brings the holder back, to be erased again");
	each(arg, "statistics and open data keep no identifier: nothing in them is about this "
	          "holder");
}

static int json_sentence(void *arg, const char *s)
{
	struct ex *x = arg;
	if (x->json) {
		fputs(x->first_use ? "" : ",", x->json);
		server_json_string(x->json, s);
	}
	if (x->page) {
		fputs("<li>", x->page);
		ptext(x, s);
		fputs("</li>\n", x->page);
	}
	x->first_use = 0;
	return 0;
}

static int load_sectors(const struct server_desk *d, struct ex *x)
{
	int rc = d->st->ops->sector_list(d->st->ctx, &x->sec, &x->n_sec);
	if (rc)
		return rc;
	x->ret = calloc(x->n_sec ? x->n_sec : 1, sizeof(*x->ret));
	if (!x->ret)
		return SERVER_ERR_NOMEM;
	for (size_t i = 0; i < x->n_sec && rc == 0; i++)
		rc = server_retention_get(d->st, x->sec[i].number, &x->ret[i]);
	return rc;
}

int server_holder_export(const struct server_desk *d, int64_t pass, FILE *json, FILE *page,
                         struct server_why *why)
{
	struct server_store *st = d->st;
	struct ex x;
	memset(&x, 0, sizeof(x));
	x.d = d;
	x.json = json;
	x.page = page;
	struct proto_civil_time civ;
	x.today = proto_civil_local(d->now, &civ) == 0 ? civ.day : (int32_t)(d->now / 86400);
	struct idset set = {NULL, 0, 0};
	char t[32];
	int rc = store_can(d, why);
	if (rc)
		return rc;
	rc = st->ops->begin_read(st->ctx);
	if (rc)
		return server_why_set(why, rc, "cannot read the database: %s",
		                      server_store_strerror(st, rc));
	if ((rc = collect(d, pass, &set, why)) != 0)
		goto out;
	if ((rc = load_sectors(d, &x)) != 0) {
		server_why_set(why, rc, "cannot read the sectors: %s",
		               server_store_strerror(st, rc));
		goto out;
	}
	if (json)
		fprintf(json, "{\"request\":\"GDPR art. 15\",\"generated_at\":\"%s\",\"passes\":[",
		        iso_time(d->now, t, sizeof(t)));
	if (page) {
		fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		      "<title>What citypass keeps about you</title></head><body>\n"
		      "<h1>What citypass keeps about you</h1>\n<p>",
		      page);
		ptext(&x, "Generated ");
		ptext(&x, iso_time(d->now, t, sizeof(t)));
		ptext(&x, " from the server's database (GDPR art. 15).");
		fputs("</p>\n", page);
	}
	for (size_t i = 0; i < set.n && rc == 0; i++)
		if ((rc = export_pass(&x, set.v[i], i == 0)) != 0)
			server_why_set(why, rc, "cannot read pass %" PRId64 ": %s", set.v[i],
			               server_store_strerror(st, rc));
	if (rc)
		goto out;
	if (json)
		fputs("],\"kept_elsewhere\":[", json);
	if (page)
		fputs("<h2>Kept elsewhere</h2>\n<ul>\n", page);
	x.first_use = 1;
	elsewhere(d, x.ret, x.n_sec, &x.sectors, json_sentence, &x);
	if (json)
		fputs("]}\n", json);
	if (page)
		fputs("</ul>\n</body></html>\n", page);
	if ((json && ferror(json)) || (page && ferror(page)))
		rc = server_why_set(why, SERVER_ERR_IO, "cannot write the export");
out:
	st->ops->commit(st->ctx);
	free(set.v);
	free(x.sec);
	free(x.ret);
	return rc;
}

/* --- erase -------------------------------------------------------------------------------- */

static int count_use(void *arg, const struct server_use *u)
{
	(void)u;
	++*(uint64_t *)arg;
	return 0;
}

static int kept_sentence(void *arg, const char *s)
{
	if (arg)
		fprintf(arg, "kept: %s\n", s);
	return 0;
}

int server_holder_erase(const struct server_desk *d, int64_t pass,
                        struct server_holder_erasure *out, FILE *kept, struct server_why *why)
{
	struct server_store *st = d->st;
	struct ex x;
	struct idset set = {NULL, 0, 0};
	memset(&x, 0, sizeof(x));
	memset(out, 0, sizeof(*out));
	int rc = store_can(d, why);
	if (rc)
		return rc;
	rc = st->ops->begin(st->ctx);
	if (rc)
		return server_why_set(why, rc, "cannot start a transaction: %s",
		                      server_store_strerror(st, rc));
	if ((rc = collect(d, pass, &set, why)) != 0)
		goto fail;
	if ((rc = load_sectors(d, &x)) != 0) {
		server_why_set(why, rc, "cannot read the sectors: %s",
		               server_store_strerror(st, rc));
		goto fail;
	}
	for (size_t i = 0; i < set.n && rc == 0; i++) {
		struct server_pass p;
		if ((rc = st->ops->pass_get(st->ctx, set.v[i], &p)) != 0)
			break;
		for (size_t s = 0; s < x.n_sec && rc == 0; s++) {
			uint8_t key[PROTO_LIST_KEY_LEN];
			if (st->ops->pass_id_get(st->ctx, p.id, x.sec[s].number, NULL, key) != 0)
				continue;
			sector_add(&out->rebuilt, x.sec[s].number);
			rc = st->ops->uses_of_key(st->ctx, x.sec[s].number, key, count_use,
			                          &out->uses);
		}
		int gone = 0;
		if (rc == 0)
			rc = st->ops->pass_erase(st->ctx, p.id, &gone);
		if (rc == 0 && p.household) /* the last of its passes says */
			out->household_kept = !gone;
		out->passes++;
	}
	if (rc) {
		server_why_set(why, rc, "cannot erase pass %" PRId64 ": %s", pass,
		               server_store_strerror(st, rc));
		goto fail;
	}
	if ((rc = st->ops->commit(st->ctx)) != 0) {
		server_why_set(why, rc, "cannot commit the erasure: %s; nothing was erased",
		               server_store_strerror(st, rc));
		goto fail;
	}
	/* the published versions hold the passes' list keys: each sector is rebuilt and only
	 * the new version kept, its files written anew */
	for (size_t i = 0; i < out->rebuilt.n; i++) {
		struct server_publish_opts o;
		struct server_publish_result r;
		memset(&o, 0, sizeof(o));
		o.now = d->now;
		char v[32];
		o.validity_s = st->ops->meta_get(st->ctx, "list_validity", v, sizeof(v)) == 0
		                       ? atoll(v)
		                       : SERVER_LIST_VALIDITY_DEFAULT;
		o.keep = 1;
		o.full = 1;
		if ((rc = server_publish_sector(st, d->data, out->rebuilt.v[i], &o, &r)) != 0) {
			server_why_set(
			        why, rc,
			        "the holder is erased from the register, but the list of sector "
			        "%u was not rebuilt: %s (run the erase again: it rebuilds it)",
			        out->rebuilt.v[i], server_strerror(rc));
			goto done;
		}
	}
	out->flushed = st->ops->erase_flush(st->ctx) == 0;
	if (kept) {
		if (out->household_kept)
			kept_sentence(kept,
			              "the household's name, as other passes still belong to it");
		elsewhere(d, x.ret, x.n_sec, &out->rebuilt, kept_sentence, kept);
	}
done:
	free(set.v);
	free(x.sec);
	free(x.ret);
	return rc;
fail:
	st->ops->rollback(st->ctx);
	goto done;
}
