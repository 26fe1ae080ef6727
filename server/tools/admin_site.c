/*
 * admin_site.c — citypass-admin sector list, site add|list: the deployment's sectors and
 * its sites (opening hours, anti-passback, list-expiry policy).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "admin.h"
#include "server/keys.h"
#include "proto/calendar.h"
#include "proto/clist.h"
#include "proto/device_conf.h"
#include "proto/hours.h"
#include "server/privacy.h"
#include "server/publish.h"

/* --- sector list ------------------------------------------------------------------------- */

const char admin_sector_help[] =
        "usage: citypass-admin sector list [--json]\n"
        "       citypass-admin sector set SECTOR [--kind transport|access] [--retention D]\n"
        "The service sectors made by init: number, name, card slot, kind of service and how\n"
        "long their identifying rows are kept, on the gates and on the server (docs/privacy.md).\n"
        "  --kind K        transport (validations: 48 hours at most, CNIL AU-015 art. 4) or\n"
        "                  access (pool, library, waste centre: 3 months at most)\n"
        "  --retention D   hours ('36h' or '36') or days ('30d'), at most the kind's ceiling;\n"
        "                  'default': the kind's ceiling\n";

int admin_sector_list(struct admin *a, int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(admin_sector_help, stdout);
		return 0;
	}
	if (argc > 1 + json)
		return admin_usage("sector ", "unexpected argument '%s'", argv[1 + json]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_sector *v = NULL;
	size_t n = 0;
	if ((rc = a->st.ops->sector_list(a->st.ctx, &v, &n)) != 0)
		return admin_refuse("cannot read the sectors: %s",
		                    server_store_strerror(&a->st, rc));
	if (json)
		printf("[");
	for (size_t i = 0; i < n; i++) {
		struct server_retention r;
		if ((rc = server_retention_get(&a->st, v[i].number, &r)) != 0) {
			free(v);
			return admin_refuse("cannot read sector %s's retention: %s", v[i].name,
			                    server_store_strerror(&a->st, rc));
		}
		if (json) {
			printf("%s{\"number\":%u,\"name\":", i ? "," : "", v[i].number);
			admin_json_string(stdout, v[i].name);
			printf(",\"slot\":%u,\"kind\":\"%s\",\"retention_hours\":%u}", v[i].slot,
			       server_kind_name(r.kind), r.hours);
		} else {
			printf("%-6u %-16s slot %u  %-9s retention %uh%s\n", v[i].number, v[i].name,
			       v[i].slot, server_kind_name(r.kind), r.hours,
			       r.configured ? "" : " (default)");
		}
	}
	if (json)
		printf("]\n");
	free(v);
	return 0;
}

/* "36h", "36" (hours), "30d" (days): hours in *h, 1 .. 10 years. */
static int parse_duration_h(const char *s, uint32_t *h)
{
	char buf[24];
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n + 1);
	uint64_t mult = 1, v;
	if (buf[n - 1] == 'h' || buf[n - 1] == 'd') {
		mult = buf[n - 1] == 'd' ? 24 : 1;
		buf[n - 1] = 0;
	}
	if (admin_parse_u64(buf, 3650 * 24, &v) != 0 || v == 0 || v * mult > 3650 * 24)
		return -1;
	*h = (uint32_t)(v * mult);
	return 0;
}

int admin_sector_set(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"kind", required_argument, NULL, 'k'},
	        {"retention", required_argument, NULL, 'r'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int kind = -1, c, given = 0;
	uint32_t hours = 0;
	admin_getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if ((kind = server_kind_parse(optarg)) < 0)
				return admin_usage("sector ",
				                   "--kind '%s': expected 'transport' or 'access'",
				                   optarg);
			given = 1;
			break;
		case 'r':
			if (strcmp(optarg, "default") == 0)
				hours = 0;
			else if (parse_duration_h(optarg, &hours) != 0)
				return admin_usage(
				        "sector ",
				        "--retention '%s': expected hours ('48h' or '48') "
				        "or days ('30d'), at least 1 hour, or 'default'",
				        optarg);
			given = 1;
			break;
		case 'h':
			fputs(admin_sector_help, stdout);
			return 0;
		default:
			return admin_bad_option("sector set ", argv);
		}
	}
	if (optind >= argc)
		return admin_usage("sector ", "missing the SECTOR (name or number)");
	if (optind + 1 < argc)
		return admin_usage("sector ", "unexpected argument '%s'", argv[optind + 1]);
	if (!given)
		return admin_usage("sector ", "nothing to set: give --kind or --retention");
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_sector sec;
	if (server_sector_find(&a->st, argv[optind], &sec) != 0) {
		char names[256];
		admin_sector_names(a, names, sizeof(names));
		return admin_usage("sector ", "'%s': no such sector (expected one of: %s)",
		                   argv[optind], names);
	}
	if ((rc = admin_begin(a)) != 0)
		return rc;
	struct server_why why;
	if (server_retention_set(&a->st, sec.number, kind, hours, &why) != 0) {
		admin_rollback(a);
		return admin_refuse("%s", why.text);
	}
	if ((rc = admin_commit(a)) != 0)
		return rc;
	struct server_retention r;
	if (server_retention_get(&a->st, sec.number, &r) != 0)
		return admin_refuse("cannot read sector %s back", sec.name);
	printf("sector %u %s: %s, identifying rows kept %u hours%s (gates learn it at their next "
	       "session)\n",
	       r.sector, r.name, server_kind_name(r.kind), r.hours,
	       r.configured ? "" : " (the kind's default)");
	return 0;
}

/* --- sites ------------------------------------------------------------------------------- */

const char admin_site_help[] =
        "usage: citypass-admin site add NAME --sector S [--hours H] [--tz ZONE]\n"
        "                         [--antipassback MIN] [--expiry-policy P]\n"
        "       citypass-admin site list [--json]\n"
        "  --sector S          the service sector of the site's gates (name or number)\n"
        "  --hours H           opening hours: 'always' (default) or rules separated by ';',\n"
        "                      each DAYS HH:MM-HH:MM[,HH:MM-HH:MM], DAYS = Mon..Sun or a range\n"
        "                      such as Mon-Fri; e.g. 'Mon-Fri 09:00-12:00,14:00-19:00;Sat "
        "10:00-18:00'\n"
        "  --tz ZONE           the site's time zone (default: the deployment's)\n"
        "  --antipassback MIN  minutes before the same pass may enter again, 0..1440 (default 0)\n"
        "  --expiry-policy P   when the gate's list has expired: 'refuse' (default) or\n"
        "                      'grace:HOURS' (keep deciding for HOURS more, 1..720)\n";

/* Opening hours as documented in admin_site_help, read as the gate will (proto/hours.h):
 * 1 if valid. */
static int hours_ok(const char *h)
{
	struct proto_hours parsed;
	return proto_hours_parse(h, &parsed, NULL, 0) == 0;
}

/* the one reader of the policy, device.conf's (proto/device_conf.h) */
static int expiry_policy_ok(const char *s)
{
	enum proto_expiry_mode mode;
	uint16_t hours;
	return proto_expiry_parse(s, &mode, &hours) == 0;
}

int admin_site_add(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"sector", required_argument, NULL, 's'},
	        {"hours", required_argument, NULL, 'H'},
	        {"tz", required_argument, NULL, 'z'},
	        {"antipassback", required_argument, NULL, 'a'},
	        {"expiry-policy", required_argument, NULL, 'e'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *sector = NULL, *hours = "always", *tz = NULL, *policy = "refuse";
	uint64_t apb = 0;
	int c;
	admin_getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sector = optarg;
			break;
		case 'H':
			hours = optarg;
			break;
		case 'z':
			tz = optarg;
			break;
		case 'a':
			if (admin_parse_u64(optarg, 1440, &apb))
				return admin_usage("site add ",
				                   "--antipassback '%s': expected "
				                   "minutes from 0 to 1440",
				                   optarg);
			break;
		case 'e':
			policy = optarg;
			break;
		case 'h':
			fputs(admin_site_help, stdout);
			return 0;
		default:
			return admin_bad_option("site add ", argv);
		}
	}
	if (optind >= argc)
		return admin_usage("site add ", "missing the site NAME");
	const char *name = argv[optind];
	if (optind + 1 < argc)
		return admin_usage("site add ", "unexpected argument '%s'", argv[optind + 1]);
	if (!server_name_ok(name))
		return admin_usage("site add ",
		                   "site name '%s': expected 1 to 63 letters, digits, "
		                   "'-', '_' or '.'",
		                   name);
	if (!sector)
		return admin_usage("site add ", "missing --sector");
	if (strlen(hours) >= SERVER_TEXT_MAX) /* never cut silently (issue 10) */
		return admin_usage("site add ",
		                   "--hours: %zu characters, at most %d (write fewer rules, or "
		                   "ranges such as Mon-Fri)",
		                   strlen(hours), SERVER_TEXT_MAX - 1);
	if (!hours_ok(hours))
		return admin_usage("site add ",
		                   "--hours '%s': expected 'always' or rules like "
		                   "'Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00'",
		                   hours);
	if (tz && !admin_tz_ok(tz))
		return admin_usage("site add ",
		                   "--tz '%s': expected an IANA time zone such as "
		                   "Europe/Paris",
		                   tz);
	if (!expiry_policy_ok(policy))
		return admin_usage("site add ",
		                   "--expiry-policy '%s': expected 'refuse' or "
		                   "'grace:HOURS' with HOURS from 1 to 720",
		                   policy);
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_site s;
	memset(&s, 0, sizeof(s));
	struct server_sector sec;
	if (server_sector_find(&a->st, sector, &sec) != 0) {
		char names[256];
		admin_sector_names(a, names, sizeof(names));
		return admin_usage("site add ",
		                   "--sector '%s': no such sector (expected one of: "
		                   "%s)",
		                   sector, names);
	}
	snprintf(s.name, sizeof(s.name), "%s", name);
	s.sector = sec.number;
	snprintf(s.hours, sizeof(s.hours), "%s", hours);
	if (tz)
		snprintf(s.tz, sizeof(s.tz), "%s", tz);
	else if (a->st.ops->meta_get(a->st.ctx, "tz", s.tz, sizeof(s.tz)) != 0)
		snprintf(s.tz, sizeof(s.tz), "UTC");
	s.antipassback_min = (uint32_t)apb;
	snprintf(s.expiry_policy, sizeof(s.expiry_policy), "%s", policy);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->site_add(a->st.ctx, &s);
	if (rc) {
		admin_rollback(a);
		if (rc == SERVER_ERR_EXISTS)
			return admin_refuse("site '%s' already exists", name);
		return admin_refuse("cannot add site '%s': %s", name, server_strerror(rc));
	}
	if ((rc = admin_commit(a)) != 0)
		return rc;
	printf("site %u %s (sector %s)\n", s.id, s.name, sec.name);
	return 0;
}

static int print_site(struct admin *a, const struct server_site *s, int json, int first)
{
	char sec[SERVER_NAME_MAX];
	server_sector_name(&a->st, s->sector, sec, sizeof(sec));
	if (!json) {
		printf("%-4u %-20s %-10s apb=%umin expiry=%s tz=%s hours=%s\n", s->id, s->name, sec,
		       s->antipassback_min, s->expiry_policy, s->tz, s->hours);
		return 0;
	}
	printf("%s{\"id\":%u,\"name\":", first ? "" : ",", s->id);
	admin_json_string(stdout, s->name);
	printf(",\"sector\":");
	admin_json_string(stdout, sec);
	printf(",\"hours\":");
	admin_json_string(stdout, s->hours);
	printf(",\"tz\":");
	admin_json_string(stdout, s->tz);
	printf(",\"antipassback_min\":%u,\"expiry_policy\":", s->antipassback_min);
	admin_json_string(stdout, s->expiry_policy);
	printf("}");
	return 0;
}

int admin_site_list(struct admin *a, int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	if (argc > 1 + json)
		return admin_usage("site ", "unexpected argument '%s'", argv[1 + json]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	if (json)
		printf("[");
	for (uint32_t id = 1, n = 0;; id++) {
		struct server_site s;
		rc = a->st.ops->site_get(a->st.ctx, id, &s);
		if (rc == SERVER_ERR_NOT_FOUND)
			break; /* site ids are dense: sites are never deleted */
		if (rc)
			return admin_refuse("cannot read the sites: %s", server_strerror(rc));
		print_site(a, &s, json, n++ == 0);
	}
	if (json)
		printf("]\n");
	return 0;
}
