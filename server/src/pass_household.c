/*
 * pass_household.c — managing a household at the desk (server/passes.h, issue 18): find
 * and search households, see one with its passes and the quotas it shares, rename it, move
 * a pass in or out, remove it. Each change is one transaction; the list entries it alters
 * are logged by the store's own triggers (a pass's household, a household tag), and the
 * sectors to publish come back in *changed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pass_internal.h"
#include "server/publish.h"

/* A household's name by id, with the sentence for a missing one. */
static int household_name(struct server_store *st, int64_t id, char *name, size_t cap,
                          struct server_why *why)
{
	int rc = st->ops->household_name(st->ctx, id, name, cap);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(why, rc, "household %" PRId64 ": no such household", id);
	if (rc)
		return pass_why_store(why, st, rc, "cannot read the household");
	return 0;
}

int server_household_find(const struct server_desk *d, const char *name,
                          struct server_household *out, struct server_why *why)
{
	struct server_store *st = d->st;
	int rc = st->ops->household_find(st->ctx, name, &out->id);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(why, rc, "household '%s': no such household", name);
	if (rc)
		return pass_why_store(why, st, rc, "cannot read the households");
	return household_name(st, out->id, out->name, sizeof(out->name), why);
}

int pass_household_taken(struct server_store *st, const char *name, struct server_why *why)
{
	int64_t id;
	char held[SERVER_NAME_MAX] = "";
	if (st->ops->household_find(st->ctx, name, &id) == 0)
		(void)st->ops->household_name(st->ctx, id, held, sizeof(held));
	if (held[0] && strcmp(held, name) != 0)
		return server_why_set(why, SERVER_ERR_EXISTS,
		                      "household '%s' already exists as '%s' (household names are "
		                      "compared ignoring case)",
		                      name, held);
	return server_why_set(why, SERVER_ERR_EXISTS, "household '%s' already exists", name);
}

struct search {
	size_t max, n;
	int (*fn)(void *arg, const struct server_household *h);
	void *arg;
};

static int search_one(void *arg, int64_t id, const char *name)
{
	struct search *s = arg;
	struct server_household h = {id, ""};
	snprintf(h.name, sizeof(h.name), "%s", name);
	int rc = s->fn(s->arg, &h);
	if (rc == 0 && s->max && ++s->n >= s->max)
		return 1; /* enough: stop (not an error) */
	return rc;
}

int server_household_search(const struct server_desk *d, const char *part, size_t max,
                            int (*fn)(void *arg, const struct server_household *h), void *arg,
                            struct server_why *why)
{
	struct server_store *st = d->st;
	char key[SERVER_NAME_MAX * 2];
	struct search s = {max, 0, fn, arg};
	if (part && *part)
		server_text_fold(part, key, sizeof(key));
	int rc = st->ops->household_each(st->ctx, part && *part ? key : NULL, search_one, &s);
	if (rc == 1 && s.max && s.n >= s.max)
		return 0;
	if (rc < 0 && rc >= SERVER_ERR_LAST && rc <= SERVER_ERR_FIRST)
		return pass_why_store(why, st, rc, "cannot read the households");
	return rc;
}

int server_household_rename(const struct server_desk *d, int64_t id, const char *name,
                            struct server_why *why)
{
	struct server_store *st = d->st;
	char old[SERVER_NAME_MAX];
	if (!server_name_ok(name))
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "household name '%s': expected 1 to 63 letters, digits, '-', "
		                      "'_' or '.'",
		                      name);
	int rc = pass_begin(st, why);
	if (rc)
		return rc;
	rc = household_name(st, id, old, sizeof(old), why);
	if (rc == 0) {
		rc = st->ops->household_rename(st->ctx, id, name);
		if (rc == SERVER_ERR_EXISTS)
			pass_household_taken(st, name, why);
		else if (rc)
			pass_why_store(why, st, rc, "cannot rename the household");
	}
	return pass_end(st, rc, why);
}

/* --- the sectors a move changes ------------------------------------------------------------ */

struct members {
	struct server_pass *v;
	size_t n, cap;
};

static int member_add(void *arg, const struct server_pass *p)
{
	struct members *m = arg;
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 8;
		struct server_pass *nv = realloc(m->v, ncap * sizeof(*nv));
		if (!nv)
			return SERVER_ERR_NOMEM;
		m->v = nv;
		m->cap = ncap;
	}
	m->v[m->n++] = *p;
	return 0;
}

/* Every pass of the household (any state), in id order. */
static int members_read(struct server_store *st, int64_t household, struct members *m,
                        struct server_why *why)
{
	struct server_pass_filter f = {NULL, household, -1, -1};
	int rc = st->ops->pass_each(st->ctx, &f, member_add, m);
	return rc ? pass_why_store(why, st, rc, "cannot read the household's passes") : 0;
}

/* The members of `household` (0: none) whose shared sums a move changes. */
static int household_sectors(struct server_store *st, int64_t household,
                             struct server_sector_set *set, struct server_why *why)
{
	struct members m = {NULL, 0, 0};
	int rc = household ? members_read(st, household, &m, why) : 0;
	for (size_t i = 0; rc == 0 && i < m.n; i++)
		rc = pass_rights_sectors(st, m.v[i].id, 1, set, why);
	free(m.v);
	return rc;
}

static int tags_draw(struct server_store *st, int64_t pass, int64_t household,
                     struct server_why *why)
{
	struct server_right *r = NULL;
	size_t n = 0;
	int rc = st->ops->rights_of_pass(st->ctx, pass, &r, &n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = server_household_tag(st, household, r[i].sector);
	free(r);
	return rc ? pass_why_store(why, st, rc, "cannot give the household its list tag") : 0;
}

static int move_in_tx(const struct server_desk *d, int64_t pass, int64_t household,
                      struct server_sector_set *set, struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_pass p;
	char to[SERVER_NAME_MAX] = "", from[SERVER_NAME_MAX] = "";
	int rc = server_pass_read(d, pass, &p, why);
	if (rc)
		return rc;
	if (p.state == SERVER_PASS_REVOKED || p.state == SERVER_PASS_REPLACED)
		return server_why_set(why, SERVER_ERR_STATE,
		                      "pass %" PRId64 " is %s: it stays in the household it had",
		                      pass, server_pass_state_name(p.state));
	if (household && (rc = household_name(st, household, to, sizeof(to), why)) != 0)
		return rc;
	if (p.household == household) {
		if (!household)
			return server_why_set(why, SERVER_ERR_INVALID,
			                      "pass %" PRId64 " is in no household", pass);
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "pass %" PRId64 " is already in household '%s'", pass, to);
	}
	if (p.household)
		(void)st->ops->household_name(st->ctx, p.household, from, sizeof(from));
	/* the shared sums of both households change (the pass's uses leave one, join the
	 * other), and every entry of the pass carries the new tag */
	if ((rc = pass_rights_sectors(st, pass, 0, set, why)) != 0 ||
	    (rc = household_sectors(st, p.household, set, why)) != 0 ||
	    (rc = household_sectors(st, household, set, why)) != 0)
		return rc;
	p.household = household;
	rc = st->ops->pass_update(st->ctx, &p);
	if (rc) {
		char what[96];
		snprintf(what, sizeof(what), "cannot move pass %" PRId64, pass);
		return pass_why_store(why, st, rc, what);
	}
	return household ? tags_draw(st, pass, household, why) : 0;
}

int server_household_move(const struct server_desk *d, int64_t pass, int64_t household,
                          struct server_sector_set *changed, struct server_why *why)
{
	struct server_sector_set set = {0};
	int rc = pass_begin(d->st, why);
	if (rc)
		return rc;
	rc = move_in_tx(d, pass, household, &set, why);
	if ((rc = pass_end(d->st, rc, why)) != 0)
		return rc;
	for (size_t i = 0; i < set.n; i++)
		pass_changed_add(changed, set.v[i]);
	return 0;
}

static int remove_in_tx(const struct server_desk *d, int64_t id, struct server_sector_set *set,
                        struct server_why *why)
{
	struct server_store *st = d->st;
	char name[SERVER_NAME_MAX];
	struct members m = {NULL, 0, 0};
	int rc = household_name(st, id, name, sizeof(name), why);
	if (rc == 0)
		rc = members_read(st, id, &m, why);
	char live[96] = "";
	size_t n_live = 0, off = 0;
	for (size_t i = 0; rc == 0 && i < m.n; i++)
		if (m.v[i].state == SERVER_PASS_ACTIVE || m.v[i].state == SERVER_PASS_SUSPENDED) {
			if (n_live++ < 5 && off < sizeof(live))
				off += (size_t)snprintf(live + off, sizeof(live) - off,
				                        "%s%" PRId64, n_live > 1 ? ", " : "",
				                        m.v[i].id);
		}
	if (rc == 0 && n_live)
		rc = server_why_set(why, SERVER_ERR_IN_USE,
		                    "household '%s' still holds %zu live pass%s (%s%s): move them "
		                    "out first",
		                    name, n_live, n_live > 1 ? "es" : "", live,
		                    n_live > 5 ? ", ..." : "");
	/* revoked and replaced passes leave it: their entries (gates still list a revoked
	 * pass, to refuse it) lose the tag */
	for (size_t i = 0; rc == 0 && i < m.n; i++) {
		rc = pass_rights_sectors(st, m.v[i].id, 0, set, why);
		m.v[i].household = 0;
		if (rc == 0 && (rc = st->ops->pass_update(st->ctx, &m.v[i])) != 0)
			pass_why_store(why, st, rc,
			               "cannot take a revoked pass out of the household");
	}
	free(m.v);
	if (rc == 0) {
		rc = st->ops->household_delete(st->ctx, id);
		if (rc == SERVER_ERR_EXISTS) /* a pass of an import not finished yet */
			server_why_set(
			        why, SERVER_ERR_IN_USE,
			        "household '%s' holds passes of an import not finished yet: "
			        "finish it ('citypass-admin pass import'), then move them out",
			        name);
		else if (rc)
			pass_why_store(why, st, rc, "cannot remove the household");
		if (rc == SERVER_ERR_EXISTS)
			rc = SERVER_ERR_IN_USE;
	}
	return rc;
}

int server_household_remove(const struct server_desk *d, int64_t id,
                            struct server_sector_set *changed, struct server_why *why)
{
	struct server_sector_set set = {0};
	int rc = pass_begin(d->st, why);
	if (rc)
		return rc;
	rc = remove_in_tx(d, id, &set, why);
	if ((rc = pass_end(d->st, rc, why)) != 0)
		return rc;
	for (size_t i = 0; i < set.n; i++)
		pass_changed_add(changed, set.v[i]);
	return 0;
}

/* --- the household as the desk shows it --------------------------------------------------- */

static int is_shared_quota(const struct proto_rights_profile *p)
{
	return p->scope == PROTO_SCOPE_HOUSEHOLD && p->period >= PROTO_PERIOD_DAY &&
	       p->period <= PROTO_PERIOD_YEAR;
}

/* The quotas per household of one live member, each counted once per distinct right. */
static int quotas_add(struct server_store *st, const struct server_pass *p,
                      const struct server_periods *per, struct server_household_view *v)
{
	struct server_right *r = NULL;
	size_t n = 0;
	int rc = st->ops->rights_of_pass(st->ctx, p->id, &r, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (!is_shared_quota(&r[i].p))
			continue;
		size_t k = 0;
		while (k < v->n_quotas && !(v->quotas[k].sector == r[i].sector &&
		                            memcmp(&v->quotas[k].p, &r[i].p, sizeof(r[i].p)) == 0))
			k++;
		if (k < v->n_quotas || k == SERVER_HOUSEHOLD_QUOTAS)
			continue;
		uint8_t key[PROTO_LIST_KEY_LEN];
		struct server_list_row row;
		uint32_t used = 0;
		/* the list row's use of a quota per household is the members' sum, as gates
		 * are told it */
		if (st->ops->pass_id_get(st->ctx, p->id, r[i].sector, NULL, key) == 0 &&
		    st->ops->list_row(st->ctx, r[i].sector, key, per, &row) == 0)
			used = row.used;
		v->quotas[k].sector = r[i].sector;
		v->quotas[k].p = r[i].p;
		v->quotas[k].used = used;
		v->n_quotas++;
	}
	free(r);
	return rc;
}

int server_household_read(const struct server_desk *d, int64_t id,
                          struct server_household_view *out, struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_periods per;
	struct members m = {NULL, 0, 0};
	memset(out, 0, sizeof(*out));
	server_periods_at(d->now, &per);
	int rc = st->ops->begin_read(st->ctx);
	if (rc)
		return pass_why_store(why, st, rc, "cannot start a transaction");
	out->h.id = id;
	rc = household_name(st, id, out->h.name, sizeof(out->h.name), why);
	if (rc == 0)
		rc = members_read(st, id, &m, why);
	for (size_t i = 0; rc == 0 && i < m.n; i++)
		if (m.v[i].state == SERVER_PASS_ACTIVE || m.v[i].state == SERVER_PASS_SUSPENDED)
			if ((rc = quotas_add(st, &m.v[i], &per, out)) != 0)
				pass_why_store(why, st, rc, "cannot read the household's quotas");
	st->ops->commit(st->ctx); /* a read: nothing to keep or undo */
	if (rc) {
		free(m.v);
		return rc;
	}
	out->passes = m.v;
	out->n_passes = m.n;
	return 0;
}

void server_household_view_free(struct server_household_view *v)
{
	if (v) {
		free(v->passes);
		v->passes = NULL;
		v->n_passes = 0;
	}
}
