/*
 * admin_report.c — citypass-admin stats and opendata export, from the statistics stream
 * (which carries no identifier: DESIGN.md s.5). docs/admin.md, "Statistics and open data".
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "proto/reason.h"
#include "server/reports.h"

/* the dimensions of --by are the library's (server/reports.h) */
enum dim {
	DIM_SITE = SERVER_STAT_SITE,
	DIM_SERVICE = SERVER_STAT_SERVICE,
	DIM_OUTCOME = SERVER_STAT_OUTCOME,
	DIM_HOUR = SERVER_STAT_HOUR,
	DIM_REASON = SERVER_STAT_REASON,
};

static const char *outcome_name(int o)
{
	return o == CITYPASS__OUTCOME__GRANTED   ? "granted"
	       : o == CITYPASS__OUTCOME__REFUSED ? "refused"
	                                         : "unspecified";
}

/* The gate's reason, by the name the gates log it under (proto/reason.h); a number no
 * version knows (an older database's) by its number. */
static void reason_text(uint32_t reason, char *out, size_t cap)
{
	const char *name = proto_reason_name(reason);
	if (name)
		snprintf(out, cap, "%s", name);
	else
		snprintf(out, cap, "reason-%u", reason);
}

static void hour_text(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M%z", &tm);
}

static void site_text(struct admin *a, uint32_t id, char *out, size_t cap)
{
	struct server_site s;
	if (a->st.ops->site_get(a->st.ctx, id, &s) == 0)
		snprintf(out, cap, "%s", s.name);
	else
		snprintf(out, cap, "site-%u", id);
}

/* Local midnight of a YYYY-MM-DD date, in the deployment's zone. */
static int parse_day_start(const char *s, int64_t *t)
{
	int64_t day;
	if (server_day_parse(s, &day) != 0)
		return -1;
	time_t u = (time_t)day * 86400;
	struct tm tm;
	gmtime_r(&u, &tm);
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	*t = (int64_t)mktime(&tm);
	return 0;
}

struct report_opts {
	int64_t from, to;
	unsigned dims;
	int format; /* 0 table, 1 csv, 2 json */
	const char *out;
};

static int parse_report(const char *cmd, int argc, char **argv, struct report_opts *o, int stats,
                        const char *help)
{
	static const struct option opts[] = {
	        {"from", required_argument, NULL, 'f'}, {"to", required_argument, NULL, 't'},
	        {"by", required_argument, NULL, 'b'},   {"format", required_argument, NULL, 'F'},
	        {"json", no_argument, NULL, 'j'},       {"out", required_argument, NULL, 'o'},
	        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	int c;
	o->from = 0;
	o->to = INT64_MAX;
	o->dims = DIM_SITE | DIM_SERVICE | DIM_OUTCOME | DIM_HOUR;
	o->format = stats ? 0 : 1;
	o->out = NULL;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
		case 't': {
			int64_t t;
			if (parse_day_start(optarg, &t) != 0)
				return admin_usage(cmd, "--%s '%s': expected a date YYYY-MM-DD",
				                   c == 'f' ? "from" : "to", optarg);
			if (c == 'f')
				o->from = t;
			else
				o->to = t + 86400; /* the whole last day */
			break;
		}
		case 'b': {
			if (!stats)
				return admin_usage(cmd, "--by is for stats");
			char buf[128];
			snprintf(buf, sizeof(buf), "%s", optarg);
			o->dims = 0;
			for (char *s = NULL, *tok = strtok_r(buf, ",", &s); tok;
			     tok = strtok_r(NULL, ",", &s)) {
				if (strcmp(tok, "site") == 0)
					o->dims |= DIM_SITE;
				else if (strcmp(tok, "service") == 0)
					o->dims |= DIM_SERVICE;
				else if (strcmp(tok, "outcome") == 0)
					o->dims |= DIM_OUTCOME;
				else if (strcmp(tok, "hour") == 0)
					o->dims |= DIM_HOUR;
				else if (strcmp(tok, "reason") == 0)
					o->dims |= DIM_REASON;
				else
					return admin_usage(cmd,
					                   "--by: '%s' is not site, service, "
					                   "outcome, hour or reason",
					                   tok);
			}
			if (!o->dims)
				return admin_usage(cmd,
				                   "--by '%s': expected site, service, outcome, "
				                   "hour or reason, comma-separated",
				                   optarg);
			break;
		}
		case 'F':
			if (!stats)
				return admin_usage(cmd, "--format is for stats (open data is CSV)");
			if (strcmp(optarg, "table") == 0)
				o->format = 0;
			else if (strcmp(optarg, "csv") == 0)
				o->format = 1;
			else if (strcmp(optarg, "json") == 0)
				o->format = 2;
			else
				return admin_usage(
				        cmd, "--format '%s': expected table, csv or json", optarg);
			break;
		case 'j':
			if (!stats)
				return admin_usage(cmd, "--json is for stats (open data is CSV)");
			o->format = 2;
			break;
		case 'o':
			if (stats)
				return admin_usage(cmd, "--out is for opendata export");
			o->out = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return admin_usage(cmd, "option '%s' is not known or lacks its value",
			                   argv[optind - 1]);
		}
	}
	if (optind < argc)
		return admin_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (o->from >= o->to)
		return admin_usage(cmd, "--from is after --to");
	return 0;
}

static const char stats_help[] =
        "usage: citypass-admin stats [--from DATE] [--to DATE] [--by DIMS]\n"
        "                            [--format table|csv|json | --json]\n"
        "Counts of gate decisions from the statistics stream (no identifiers), grouped by DIMS:\n"
        "site, service, outcome, hour, reason, comma-separated (default site, service, outcome,\n"
        "hour). reason is why the gate decided so (ok, unknown_pass, clone_suspected, ...:\n"
        "docs/admin.md). Dates YYYY-MM-DD in the deployment's time zone, both days included.\n";

int admin_cmd_stats(struct admin *a, int argc, char **argv)
{
	struct report_opts o;
	int rc = parse_report("stats ", argc, argv, &o, 1, stats_help);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct server_stat_sum *v = NULL;
	size_t nv = 0;
	rc = server_stats_sum(&a->st, o.from, o.to, o.dims, &v, &nv);
	if (rc)
		return admin_refuse("cannot read the statistics: %s", server_strerror(rc));
	if (o.format == 1) {
		const char *sep = "";
		if (o.dims & DIM_HOUR)
			printf("%shour", sep), sep = ",";
		if (o.dims & DIM_SITE)
			printf("%ssite", sep), sep = ",";
		if (o.dims & DIM_SERVICE)
			printf("%sservice", sep), sep = ",";
		if (o.dims & DIM_OUTCOME)
			printf("%soutcome", sep), sep = ",";
		if (o.dims & DIM_REASON)
			printf("%sreason", sep), sep = ",";
		printf("%scount\n", sep);
	} else if (o.format == 2) {
		printf("[");
	} else {
		if (o.dims & DIM_HOUR)
			printf("%-24s", "hour");
		if (o.dims & DIM_SITE)
			printf("%-20s", "site");
		if (o.dims & DIM_SERVICE)
			printf("%-12s", "service");
		if (o.dims & DIM_OUTCOME)
			printf("%-12s", "outcome");
		if (o.dims & DIM_REASON)
			printf("%-22s", "reason");
		printf("%10s\n", "count");
	}
	for (size_t i = 0; i < nv; i++) {
		const struct server_stat_sum *r = &v[i];
		char hour[40], site[SERVER_NAME_MAX], sec[SERVER_NAME_MAX], why[32];
		hour_text(r->hour, hour, sizeof(hour));
		site_text(a, r->site, site, sizeof(site));
		server_sector_name(&a->st, (uint16_t)r->sector, sec, sizeof(sec));
		reason_text(r->reason, why, sizeof(why));
		if (o.format == 2) {
			const char *sep = "";
			printf("%s{", i ? "," : "");
			if (o.dims & DIM_HOUR)
				printf("%s\"hour\":\"%s\"", sep, hour), sep = ",";
			if (o.dims & DIM_SITE) {
				printf("%s\"site\":", sep);
				admin_json_string(stdout, site);
				sep = ",";
			}
			if (o.dims & DIM_SERVICE) {
				printf("%s\"service\":", sep);
				admin_json_string(stdout, sec);
				sep = ",";
			}
			if (o.dims & DIM_OUTCOME)
				printf("%s\"outcome\":\"%s\"", sep, outcome_name(r->outcome)),
				        sep = ",";
			if (o.dims & DIM_REASON)
				printf("%s\"reason\":\"%s\"", sep, why), sep = ",";
			printf("%s\"count\":%" PRIu64 "}", sep, r->count);
		} else if (o.format == 1) {
			const char *sep = "";
			if (o.dims & DIM_HOUR)
				printf("%s%s", sep, hour), sep = ",";
			if (o.dims & DIM_SITE)
				printf("%s%s", sep, site), sep = ",";
			if (o.dims & DIM_SERVICE)
				printf("%s%s", sep, sec), sep = ",";
			if (o.dims & DIM_OUTCOME)
				printf("%s%s", sep, outcome_name(r->outcome)), sep = ",";
			if (o.dims & DIM_REASON)
				printf("%s%s", sep, why), sep = ",";
			printf("%s%" PRIu64 "\n", sep, r->count);
		} else {
			if (o.dims & DIM_HOUR)
				printf("%-24s", hour);
			if (o.dims & DIM_SITE)
				printf("%-20s", site);
			if (o.dims & DIM_SERVICE)
				printf("%-12s", sec);
			if (o.dims & DIM_OUTCOME)
				printf("%-12s", outcome_name(r->outcome));
			if (o.dims & DIM_REASON)
				printf("%-22s", why);
			printf("%10" PRIu64 "\n", r->count);
		}
	}
	if (o.format == 2)
		printf("]\n");
	free(v);
	return 0;
}

static const char opendata_help[] =
        "usage: citypass-admin opendata export [--from DATE] [--to DATE] [--out FILE]\n"
        "CSV, one row per hour x site x service that saw any decision:\n"
        "  hour,site,service,granted,refused\n"
        "A count under 10 (0 included) is written '<10'; no total column is published, so a\n"
        "suppressed cell cannot be recovered by subtraction. Default output: stdout.\n";

int admin_cmd_opendata(struct admin *a, int argc, char **argv)
{
	if (argc < 2)
		return admin_usage("opendata ", "missing an opendata command (export)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(opendata_help, stdout);
		return 0;
	}
	if (strcmp(argv[1], "export") != 0)
		return admin_usage("opendata ", "unknown opendata command '%s' (expected export)",
		                   argv[1]);
	struct report_opts o;
	int rc = parse_report("opendata export ", argc - 1, argv + 1, &o, 0, opendata_help);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	/* Write to a temporary file and rename: a failed export leaves no partial file. */
	char tmp[4200];
	FILE *f = stdout;
	if (o.out) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", o.out);
		f = fopen(tmp, "wx");
		if (!f)
			return admin_refuse("cannot create '%s'", tmp);
	}
	rc = server_opendata_write(&a->st, o.from, o.to, f);
	if (rc && !o.out)
		return admin_refuse("cannot read the statistics: %s", server_strerror(rc));
	if (o.out) {
		int bad = rc | ferror(f) | fflush(f);
		bad |= fclose(f);
		/* link() refuses an existing file, where rename() would replace it */
		if (bad || link(tmp, o.out) != 0) {
			remove(tmp);
			return admin_refuse("cannot create '%s': %s", o.out,
			                    bad ? "write error" : strerror(errno));
		}
		remove(tmp);
	}
	return 0;
}
