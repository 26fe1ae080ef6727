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
#include "server/reports.h"
#include "server/publish.h"

static const char quota_help[] =
        "usage: citypass-admin quota report [--sector S]\n"
        "The passes (or households, for a household quota) whose counted uses in the current\n"
        "period exceed their right's limit: sector, pass, holder, household, used, limit,\n"
        "overshoot. Uses counted on a card's value file are not the server's to see.\n";

static int print_line(void *arg, const struct server_quota_line *l)
{
	unsigned *lines = arg;
	if (*lines == 0)
		printf("%-10s %6s  %-24s %-10s %5s %5s %9s\n", "sector", "pass", "holder",
		       "household", "used", "limit", "overshoot");
	printf("%-10s %6" PRId64 "  %-24s %-10s %5u %5u %9u\n", l->sector.name, l->pass,
	       l->pass && l->holder[0] ? l->holder : "-", l->household ? "yes" : "-", l->used,
	       l->limit, l->used - l->limit);
	(*lines)++;
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
	struct server_sector one;
	if (sector_arg && server_sector_find(&a->st, sector_arg, &one) != 0)
		return admin_usage("quota report ", "--sector '%s': no such sector", sector_arg);
	int64_t now;
	admin_now(&now);
	unsigned lines = 0;
	rc = server_quota_overshoot(&a->st, now, sector_arg ? &one : NULL, print_line, &lines);
	if (rc)
		return admin_refuse("cannot read the rights: %s", server_strerror(rc));
	if (lines == 0)
		printf("no pass or household past its limit\n");
	return rc;
}
