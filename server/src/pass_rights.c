/*
 * pass_rights.c — a pass's rights (server/passes.h): the --right syntax agents type, a
 * right in words, and rights granted or withdrawn, each in one transaction.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pass_internal.h"

static int parse_period(const char *s, size_t n, uint8_t *period)
{
	static const struct {
		const char *name;
		uint8_t p;
	} t[] = {{"day", PROTO_PERIOD_DAY},
	         {"week", PROTO_PERIOD_WEEK},
	         {"month", PROTO_PERIOD_MONTH},
	         {"year", PROTO_PERIOD_YEAR}};
	for (size_t i = 0; i < 4; i++)
		if (strlen(t[i].name) == n && strncmp(s, t[i].name, n) == 0) {
			*period = t[i].p;
			return 0;
		}
	return -1;
}

/* A decimal number from 1 to max, nothing else (no sign, no spaces). */
static int parse_count(const char *s, unsigned long max, unsigned long *out)
{
	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 19)
		return -1;
	*out = strtoul(s, NULL, 10);
	return *out >= 1 && *out <= max ? 0 : -1;
}

/* One KEY=VALUE of a right; *counters counts entries and quota. */
static int right_key(struct server_right *r, const char *spec, const char *k, const char *v,
                     int *counters, struct server_why *why)
{
	unsigned long n;
	int64_t day;
	if (strcmp(k, "product") == 0) {
		if (parse_count(v, 65535, &n))
			return server_why_set(
			        why, SERVER_ERR_INVALID,
			        "'%s': product '%s': expected a number from 1 to 65535", spec, v);
		r->p.product = (uint16_t)n;
	} else if (strcmp(k, "from") == 0 || strcmp(k, "to") == 0) {
		if (server_day_parse(v, &day) || day < 1 || day >= PROTO_DAY_UNBOUNDED_TO)
			return server_why_set(why, SERVER_ERR_INVALID,
			                      "'%s': %s '%s': expected a date YYYY-MM-DD", spec, k,
			                      v);
		if (k[0] == 'f')
			r->p.valid_from = (uint16_t)day;
		else
			r->p.valid_to = (uint16_t)day;
	} else if (strcmp(k, "entries") == 0) {
		if (parse_count(v, 255, &n))
			return server_why_set(why, SERVER_ERR_INVALID,
			                      "'%s': entries '%s': expected a number from 1 to 255",
			                      spec, v);
		r->p.limit = (uint8_t)n;
		r->p.period = PROTO_PERIOD_LIFETIME;
		(*counters)++;
	} else if (strcmp(k, "quota") == 0) {
		char q[64];
		snprintf(q, sizeof(q), "%s", v);
		char *s1 = strchr(q, '/');
		char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
		if (s1)
			*s1 = 0;
		size_t plen = s1 ? (s2 ? (size_t)(s2 - s1 - 1) : strlen(s1 + 1)) : 0;
		if (!s1 || parse_count(q, 255, &n) || parse_period(s1 + 1, plen, &r->p.period) ||
		    (s2 && strcmp(s2 + 1, "household") != 0 && strcmp(s2 + 1, "pass") != 0))
			return server_why_set(
			        why, SERVER_ERR_INVALID,
			        "'%s': quota '%s': expected "
			        "N/day|week|month|year[/household] with N from 1 to 255",
			        spec, v);
		r->p.limit = (uint8_t)n;
		r->p.scope = s2 && strcmp(s2 + 1, "household") == 0 ? PROTO_SCOPE_HOUSEHOLD
		                                                    : PROTO_SCOPE_PASS;
		(*counters)++;
	} else if (strcmp(k, "fare") == 0) {
		static const char *const fares[] = {"standard", "resident", "concession", "free"};
		int f = -1;
		for (int i = 0; i < 4; i++)
			if (strcmp(v, fares[i]) == 0)
				f = i;
		if (f < 0)
			return server_why_set(why, SERVER_ERR_INVALID,
			                      "'%s': fare '%s': expected standard, resident, "
			                      "concession or free",
			                      spec, v);
		r->p.fare = (uint8_t)f;
	} else {
		return server_why_set(
		        why, SERVER_ERR_INVALID,
		        "'%s': unknown key '%s' (expected product, from, to, entries, "
		        "quota, fare)",
		        spec, k);
	}
	return 0;
}

int server_right_parse(struct server_store *st, const char *spec, struct server_right *r,
                       struct server_why *why)
{
	char buf[256];
	memset(r, 0, sizeof(*r));
	if (strlen(spec) >= sizeof(buf))
		return server_why_set(why, SERVER_ERR_INVALID, "'%s': too long", spec);
	snprintf(buf, sizeof(buf), "%s", spec);
	char *save = NULL, *tok = strtok_r(buf, ",", &save);
	if (!tok)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "'%s': expected SECTOR[,KEY=VALUE]...", spec);
	struct server_sector sec;
	int rc = server_sector_find(st, tok, &sec);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(
		        why, rc, "'%s': no such sector '%s' (see 'citypass-admin sector list')",
		        spec, tok);
	if (rc)
		return pass_why_store(why, st, rc, "cannot read the sectors");
	r->sector = sec.number;
	r->p.product = 1;
	r->p.valid_from = PROTO_DAY_UNBOUNDED_FROM;
	r->p.valid_to = PROTO_DAY_UNBOUNDED_TO;
	int counters = 0;
	while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
		char *eq = strchr(tok, '=');
		if (!eq)
			return server_why_set(why, SERVER_ERR_INVALID,
			                      "'%s': '%s' is not KEY=VALUE", spec, tok);
		*eq = 0;
		if ((rc = right_key(r, spec, tok, eq + 1, &counters, why)) != 0)
			return rc;
	}
	if (counters > 1)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "'%s': give entries or quota, not both", spec);
	if (r->p.valid_from != PROTO_DAY_UNBOUNDED_FROM &&
	    r->p.valid_to != PROTO_DAY_UNBOUNDED_TO && r->p.valid_from > r->p.valid_to)
		return server_why_set(why, SERVER_ERR_INVALID, "'%s': from is after to", spec);
	return 0;
}

static void day_text(uint16_t day, char *d, size_t cap)
{
	time_t t = (time_t)day * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(d, cap, "%Y-%m-%d", &tm);
}

void server_right_describe(const struct proto_rights_profile *p, char *out, size_t cap)
{
	static const char *const periods[] = {"", "lifetime", "day", "week", "month", "year"};
	static const char *const fares[] = {"standard", "resident", "concession", "free"};
	size_t off = (size_t)snprintf(out, cap, "product %u", p->product);
	char d[16];
	if (p->valid_from != PROTO_DAY_UNBOUNDED_FROM || p->valid_to != PROTO_DAY_UNBOUNDED_TO) {
		day_text(p->valid_from, d, sizeof(d));
		off += (size_t)snprintf(out + off, cap - off, ", from %s",
		                        p->valid_from ? d : "(any)");
		day_text(p->valid_to, d, sizeof(d));
		off += (size_t)snprintf(out + off, cap - off, " to %s",
		                        p->valid_to != PROTO_DAY_UNBOUNDED_TO ? d : "(any)");
	}
	if (p->period == PROTO_PERIOD_LIFETIME)
		off += (size_t)snprintf(out + off, cap - off, ", %u entries%s", p->limit,
		                        p->flags & PROTO_PROFILE_ENTRIES_ON_CARD ? " on the card"
		                                                                 : "");
	else if (p->period >= PROTO_PERIOD_DAY && p->period <= PROTO_PERIOD_YEAR)
		off += (size_t)snprintf(out + off, cap - off, ", quota %u per %s per %s", p->limit,
		                        periods[p->period],
		                        p->scope == PROTO_SCOPE_HOUSEHOLD ? "household" : "pass");
	snprintf(out + off, cap - off, ", fare %s", fares[p->fare & 3]);
}

void pass_mark_card_entries(struct server_store *st, struct server_right *r, size_t n, int card)
{
	int vs = pass_value_sector(st);
	for (size_t i = 0; i < n; i++) {
		r[i].p.flags &= (uint8_t)~PROTO_PROFILE_ENTRIES_ON_CARD;
		if (card && vs >= 0 && r[i].sector == vs && r[i].p.period == PROTO_PERIOD_LIFETIME)
			r[i].p.flags |= PROTO_PROFILE_ENTRIES_ON_CARD;
	}
}

int pass_rights_store(struct server_store *st, const struct server_pass *p,
                      const struct server_right *rights, size_t n, struct server_why *why)
{
	for (size_t i = 0; i < n; i++) {
		struct server_right r = rights[i];
		r.pass = p->id;
		/* an imported pass has identifiers only in the sectors of its rights */
		int rc = st->ops->pass_id_get(st->ctx, p->id, r.sector, NULL, NULL);
		if (rc == SERVER_ERR_NOT_FOUND)
			rc = server_pass_id_assign(st, p->id, r.sector);
		rc = rc ? rc : st->ops->right_set(st->ctx, &r);
		if (rc == 0 && p->household)
			rc = server_household_tag(st, p->household, r.sector);
		if (rc) {
			char what[64];
			snprintf(what, sizeof(what), "cannot store the right in sector %u",
			         r.sector);
			return pass_why_store(why, st, rc, what);
		}
	}
	return 0;
}

/* One sector per right: a pass holds one right per sector. */
static int sectors_distinct(const struct server_right *r, size_t n, struct server_why *why)
{
	if (n > SERVER_CARD_SLOTS)
		return server_why_set(why, SERVER_ERR_INVALID, "at most %d rights (one per sector)",
		                      SERVER_CARD_SLOTS);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (r[i].sector == r[j].sector)
				return server_why_set(
				        why, SERVER_ERR_INVALID,
				        "a pass holds one right per sector, and sector %u "
				        "is given twice",
				        r[i].sector);
	return 0;
}

int server_rights_grant(const struct server_desk *d, int64_t pass, const struct server_right *r,
                        size_t n, struct server_sector_set *changed, struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_right v[SERVER_CARD_SLOTS];
	struct server_pass p;
	int rc = sectors_distinct(r, n, why);
	if (rc == 0)
		rc = server_pass_read(d, pass, &p, why);
	if (rc)
		return rc;
	if (p.state == SERVER_PASS_REVOKED || p.state == SERVER_PASS_REPLACED)
		return server_why_set(why, SERVER_ERR_STATE,
		                      "pass %" PRId64 " is %s: rights go to an active pass", pass,
		                      server_pass_state_name(p.state));
	memcpy(v, r, n * sizeof(*r));
	/* Entries granted after issue are counted by the server: the card is not rewritten. */
	pass_mark_card_entries(st, v, n, 0);
	if ((rc = pass_begin(st, why)) != 0)
		return rc;
	rc = pass_rights_store(st, &p, v, n, why);
	if ((rc = pass_end(st, rc, why)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		pass_changed_add(changed, v[i].sector);
	return 0;
}

int server_rights_withdraw(const struct server_desk *d, int64_t pass, uint16_t sector,
                           struct server_sector_set *changed, struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_pass p;
	int rc = server_pass_read(d, pass, &p, why);
	if (rc)
		return rc;
	if ((rc = pass_begin(st, why)) != 0)
		return rc;
	rc = st->ops->right_delete(st->ctx, pass, sector);
	if (rc == SERVER_ERR_NOT_FOUND) {
		char name[SERVER_NAME_MAX];
		server_sector_name(st, sector, name, sizeof(name));
		server_why_set(why, rc, "pass %" PRId64 " holds no right in sector %s", pass, name);
	} else if (rc) {
		pass_why_store(why, st, rc, "cannot revoke the right");
	}
	if ((rc = pass_end(st, rc, why)) != 0)
		return rc;
	pass_changed_add(changed, sector);
	return 0;
}
