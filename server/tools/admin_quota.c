/*
 * admin_quota.c — citypass-admin quota report: the passes and households past a counted
 * right's limit. Offline gates count locally on top of the last synced total, so a
 * household whose visits were split between an offline and an online déchèterie can go
 * past its quota by what the offline gate's list still allowed (DESIGN.md s.4): bounded,
 * and reported here, once the offline gate's uploads arrived.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "server/publish.h"

static const char quota_help[] =
        "usage: citypass-admin quota report [--sector S]\n"
        "The passes (or households, for a household quota) whose counted uses in the current\n"
        "period exceed their right's limit: sector, pass, holder, household, used, limit,\n"
        "overshoot. Uses counted on a card's value file are not the server's to see.\n";

struct owner_search {
	struct admin *a;
	uint16_t sector;
	const uint8_t *key;
	struct server_pass found;
	int hit;
};

static int match_key(void *arg, const struct server_pass *p)
{
	struct owner_search *s = arg;
	uint8_t key[PROTO_LIST_KEY_LEN];
	if (s->a->st.ops->pass_id_get(s->a->st.ctx, p->id, s->sector, NULL, key) == 0 &&
	    memcmp(key, s->key, sizeof(key)) == 0) {
		s->found = *p;
		s->hit = 1;
		return 1; /* stop */
	}
	return 0;
}

static int report_sector(struct admin *a, const struct server_sector *sec,
                         const struct server_periods *per, unsigned *lines)
{
	struct server_list_row *rows = NULL;
	size_t n = 0;
	int rc = a->st.ops->list_rows(a->st.ctx, sec->number, per, &rows, &n);
	if (rc)
		return admin_refuse("cannot read the rights of sector %s: %s", sec->name,
		                    server_strerror(rc));
	uint32_t seen_households[256];
	size_t n_seen = 0;
	for (size_t i = 0; i < n; i++) {
		const struct server_list_row *r = &rows[i];
		if (r->p.limit == 0 || (r->p.flags & PROTO_PROFILE_ENTRIES_ON_CARD) ||
		    r->used <= r->p.limit || r->state != SERVER_PASS_ACTIVE)
			continue;
		const int household = r->p.scope == PROTO_SCOPE_HOUSEHOLD && r->household_tag;
		if (household) { /* every member carries the household's total: report it once */
			size_t k = 0;
			while (k < n_seen && seen_households[k] != r->household_tag)
				k++;
			if (k < n_seen)
				continue;
			if (n_seen < sizeof(seen_households) / sizeof(seen_households[0]))
				seen_households[n_seen++] = r->household_tag;
		}
		struct owner_search s = {.a = a, .sector = sec->number, .key = r->key};
		struct server_pass_filter f = {.state = -1, .sector = sec->number};
		(void)a->st.ops->pass_each(a->st.ctx, &f, match_key, &s);
		if (*lines == 0)
			printf("%-10s %6s  %-24s %-10s %5s %5s %9s\n", "sector", "pass", "holder",
			       "household", "used", "limit", "overshoot");
		printf("%-10s %6" PRId64 "  %-24s %-10s %5u %5u %9u\n", sec->name,
		       s.hit ? s.found.id : 0, s.hit && s.found.holder[0] ? s.found.holder : "-",
		       household ? "yes" : "-", r->used, r->p.limit, r->used - r->p.limit);
		(*lines)++;
	}
	free(rows);
	return 0;
}

int admin_cmd_quota(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"sector", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	/* argv[0] is "quota", argv[1] the subcommand */
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(quota_help, stdout);
		return 0;
	}
	if (argc < 2)
		return admin_usage("quota ", "missing a quota command (report)");
	if (strcmp(argv[1], "report") != 0)
		return admin_usage("quota ", "unknown quota command '%s' (expected report)",
		                   argv[1]);
	argc--;
	argv++;
	const char *sector_arg = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sector_arg = optarg;
			break;
		case 'h':
			fputs(quota_help, stdout);
			return 0;
		default:
			return admin_usage("quota report ", "unknown option");
		}
	}
	if (optind != argc)
		return admin_usage("quota report ", "unexpected argument '%s'", argv[optind]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_sector one, *all = NULL;
	size_t n = 0;
	if (sector_arg) {
		if (server_sector_find(&a->st, sector_arg, &one) != 0)
			return admin_usage("quota report ", "--sector '%s': no such sector",
			                   sector_arg);
	} else if ((rc = a->st.ops->sector_list(a->st.ctx, &all, &n)) != 0) {
		return admin_refuse("cannot read the sectors: %s", server_strerror(rc));
	}
	int64_t now;
	admin_now(&now);
	struct server_periods per;
	server_periods_at(now, &per);
	unsigned lines = 0;
	for (size_t i = 0; rc == 0 && i < (sector_arg ? 1 : n); i++)
		rc = report_sector(a, sector_arg ? &one : &all[i], &per, &lines);
	free(all);
	if (rc == 0 && lines == 0)
		printf("no pass or household past its limit\n");
	return rc;
}
