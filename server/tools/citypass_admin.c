/*
 * citypass-admin — the agents' CLI over the rights database (docs/admin.md).
 *
 * This file: the command dispatcher, shared helpers, and the deployment commands (init,
 * sector list, site, device, household, list publish/export). Passes and rights are in
 * admin_pass.c, statistics and open data in admin_report.c. Every command runs in one
 * transaction: a refusal leaves the database as it was. Exit 0 done, 1 refused, 2 bad usage.
 */
/* nftw() is XSI. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
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
#include "server/publish.h"

#define VERSION "0.1.0"

static const char main_help[] =
        "usage: citypass-admin [--data DIR] COMMAND [ARGS]\n"
        "\n"
        "The data directory is --data DIR or $CITYPASS_DATA.\n"
        "\n"
        "commands:\n"
        "  init            create the database and all key material\n"
        "  sector list     the deployment's service sectors\n"
        "  site add|list   sites (opening hours, anti-passback, list-expiry policy)\n"
        "  device add|revoke|show|list  gate controllers, their bundles and their health\n"
        "  household add           households (quotas shared by their passes)\n"
        "  pass issue|show|list|revoke|replace   passes, on a card or a phone\n"
        "  rights grant|revoke     a pass's right in a sector\n"
        "  list publish|export     signed lists\n"
        "  stats           usage counts (table, CSV, JSON)\n"
        "  opendata export open-data CSV, small counts suppressed\n"
        "  quota report    passes and households past a counted right's limit\n"
        "  card inspect|recycle    the card in a reader: which pass, its keys; take it back\n"
        "  keys show|rotate|retire card key versions\n"
        "  backup          the whole deployment in one encrypted file (server running)\n"
        "  restore         a backup into a new data directory, lists republished above it\n"
        "\n"
        "Each command has --help. Exit status: 0 done, 1 refused, 2 bad usage.\n"
        "options:\n"
        "  --data DIR      data directory\n"
        "  --no-publish    change the database without publishing lists (run 'list publish'\n"
        "                  later)\n"
        "  -h, --help      this text\n"
        "  --version       print the version\n";

/* --- messages ---------------------------------------------------------------------------- */

int admin_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "citypass-admin: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'citypass-admin %s--help'.\n", cmd ? cmd : "");
	return EXIT_USAGE;
}

int admin_refuse(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "citypass-admin: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return EXIT_REFUSED;
}

/* --- store ------------------------------------------------------------------------------- */

int admin_open(struct admin *a)
{
	if (!a->data)
		return admin_usage(NULL, "no data directory: give --data DIR or set CITYPASS_DATA");
	int rc = server_store_open_sqlite(&a->st, a->data, 0);
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("no deployment in '%s' (expected a directory made by "
		                    "'citypass-admin init')",
		                    a->data);
	if (rc)
		return admin_refuse("cannot open the database in '%s': %s", a->data,
		                    server_strerror(rc));
	a->open = 1;
	a->desk.st = &a->st;
	a->desk.data = a->data;
	if (admin_now(&a->desk.now) != 0) /* refused by the commands that publish */
		a->desk.now = (int64_t)time(NULL);
	char tz[SERVER_NAME_MAX];
	if (a->st.ops->meta_get(a->st.ctx, "tz", tz, sizeof(tz)) == 0) {
		setenv("TZ", tz, 1);
		tzset();
	}
	return 0;
}

void admin_close(struct admin *a)
{
	if (a->open)
		server_store_close(&a->st);
	a->open = 0;
}

int admin_begin(struct admin *a)
{
	int rc = a->st.ops->begin(a->st.ctx);
	return rc ? admin_refuse("cannot start a transaction: %s",
	                         server_store_strerror(&a->st, rc))
	          : 0;
}

int admin_commit(struct admin *a)
{
	int rc = a->st.ops->commit(a->st.ctx);
	if (rc) {
		a->st.ops->rollback(a->st.ctx);
		return admin_refuse("cannot commit: %s; nothing was changed",
		                    server_store_strerror(&a->st, rc));
	}
	return 0;
}

void admin_rollback(struct admin *a)
{
	a->st.ops->rollback(a->st.ctx);
}

static int64_t meta_int(struct admin *a, const char *key, int64_t dflt)
{
	char buf[64];
	if (a->st.ops->meta_get(a->st.ctx, key, buf, sizeof(buf)) != 0)
		return dflt;
	return strtoll(buf, NULL, 10);
}

int admin_publish(struct admin *a, uint16_t sector, uint64_t *version)
{
	if (a->no_publish)
		return 0;
	struct server_publish_opts o;
	memset(&o, 0, sizeof(o));
	if (admin_now(&o.now) != 0)
		return admin_refuse("CITYPASS_NOW is not a Unix time");
	o.validity_s = meta_int(a, "list_validity", SERVER_LIST_VALIDITY_DEFAULT);
	o.keep = (unsigned)meta_int(a, "keep", SERVER_KEEP_DEFAULT);
	o.full = a->full_publish;
	struct server_publish_result r;
	int rc = server_publish_sector(&a->st, a->data, sector, &o, &r);
	if (rc)
		return admin_refuse("the change is saved, but the list of sector %u was not "
		                    "published: %s (run 'citypass-admin list publish' again)",
		                    sector, server_strerror(rc));
	if (version)
		*version = r.version;
	/* printed once the version is committed: never for a transaction rolled back (the
	 * publisher runs after the command's own commit and commits its own) */
	if (r.full)
		fprintf(stderr,
		        "published sector %u list version %" PRIu64 " (%" PRIu32
		        " passes, rebuilt: "
		        "gates take a snapshot)\n",
		        sector, r.version, r.entries);
	else
		fprintf(stderr,
		        "published sector %u list version %" PRIu64 " (%" PRIu32 " passes, %" PRIu32
		        " chunk(s) rewritten, delta of %zu bytes)\n",
		        sector, r.version, r.entries, r.changed_chunks, r.delta_len);
	return 0;
}

int admin_publish_changed(struct admin *a, const struct server_sector_set *changed)
{
	int rc = 0;
	for (size_t i = 0; i < changed->n && rc == 0; i++)
		rc = admin_publish(a, changed->v[i], NULL);
	return rc;
}

/* --- parsing ----------------------------------------------------------------------------- */

int admin_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

int admin_now(int64_t *now)
{
	const char *s = getenv("CITYPASS_NOW");
	if (s && *s) {
		uint64_t v;
		if (admin_parse_u64(s, INT64_MAX, &v) != 0)
			return -1;
		*now = (int64_t)v;
		return 0;
	}
	*now = (int64_t)time(NULL);
	return 0;
}

/* A comma-separated list of the sectors' names, for messages. */
static void sector_names(struct admin *a, char *out, size_t cap)
{
	struct server_sector *v = NULL;
	size_t n = 0;
	out[0] = 0;
	if (a->st.ops->sector_list(a->st.ctx, &v, &n) != 0)
		return;
	size_t off = 0;
	for (size_t i = 0; i < n && off < cap; i++)
		off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? ", " : "", v[i].name);
	free(v);
}

/* --- output ------------------------------------------------------------------------------ */

/* A JSON string (RFC 8259): text that is not UTF-8 (written into the database before the
 * CLI checked its input, or by another tool) becomes U+FFFD, never invalid JSON. */
void admin_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = server_utf8_len(p);
		if (n == 0) {
			fputs("\\ufffd", f);
			p++;
			continue;
		}
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7F)
			fprintf(f, "\\u%04x", *p);
		else
			fwrite(p, 1, n, f);
		p += n;
	}
	fputc('"', f);
}

void admin_hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = 0;
}

/* Reinitialise getopt for a subcommand's own options. */
static void getopt_reset(void)
{
	optind = 0;
	opterr = 0;
}

static int bad_option(const char *cmd, char **argv)
{
	if (optopt)
		return admin_usage(cmd, "option '-%c' is not known or lacks its value", optopt);
	return admin_usage(cmd, "option '%s' is not known or lacks its value", argv[optind - 1]);
}

/* --- init -------------------------------------------------------------------------------- */

static const char init_help[] =
        "usage: citypass-admin [--data DIR] init [OPTIONS]\n"
        "Create the database and all key material in the data directory; refuses to touch an\n"
        "existing deployment.\n"
        "  --server-name HOST      the sync server's host name (certificate CN; default "
        "localhost)\n"
        "  --sectors LIST          service sectors, comma-separated, numbered 1.. in order and\n"
        "                          given card slots 0..5 (default pool,library,waste,bus)\n"
        "  --value-sector NAME     the sector whose gates debit entries on the card's value file\n"
        "  --tz ZONE               time zone of day numbers and periods (default Europe/Paris)\n"
        "  --list-validity-days N  list expiry after issue, 1..365 days (default 7)\n"
        "  --keep N                snapshots and deltas kept per sector, 1..1000 (default 30)\n"
        "  --credential-days N     phone credential validity, 1..3660 days (default 365)\n"
        "  --random-id on|off      issued cards show a new random UID at every tap, so that no\n"
        "                          reader in town can follow a citizen by UID (default on)\n";

static int tz_ok(const char *tz)
{
	char path[PATH_MAX];
	struct stat sb;
	if (!*tz || strstr(tz, "..") || tz[0] == '/')
		return 0;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int init_fill(struct server_store *st, const char *dir, char sectors[][SERVER_NAME_MAX],
                     size_t n, const char *value_sector, const char *const *meta,
                     const struct server_publish_opts *po)
{
	int rc = st->ops->begin(st->ctx);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct server_sector s;
		memset(&s, 0, sizeof(s));
		s.number = (uint16_t)(i + 1);
		s.slot = (uint8_t)i;
		snprintf(s.name, sizeof(s.name), "%s", sectors[i]);
		rc = st->ops->sector_add(st->ctx, &s);
		if (rc == 0 && value_sector && strcmp(value_sector, sectors[i]) == 0) {
			char v[8];
			snprintf(v, sizeof(v), "%u", s.number);
			rc = st->ops->meta_set(st->ctx, "value_sector", v);
		}
	}
	for (size_t i = 0; rc == 0 && meta[i]; i += 2)
		rc = st->ops->meta_set(st->ctx, meta[i], meta[i + 1]);
	if (rc == 0)
		rc = st->ops->commit(st->ctx);
	if (rc)
		st->ops->rollback(st->ctx);
	/* Version 1 of every sector's list, empty: a gate enrolled before any pass is issued
	 * still gets a valid signed list. (The publisher runs its own transactions; a failure
	 * here leaves the scratch directory, which init removes.) */
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = server_publish_sector(st, dir, (uint16_t)(i + 1), po, NULL);
	return rc;
}

static int cmd_init(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"server-name", required_argument, NULL, 's'},
	        {"sectors", required_argument, NULL, 'S'},
	        {"value-sector", required_argument, NULL, 'v'},
	        {"tz", required_argument, NULL, 'z'},
	        {"list-validity-days", required_argument, NULL, 'l'},
	        {"keep", required_argument, NULL, 'k'},
	        {"credential-days", required_argument, NULL, 'c'},
	        {"random-id", required_argument, NULL, 'R'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *server_name = "localhost", *sectors = "pool,library,waste,bus";
	const char *value_sector = NULL, *tz = "Europe/Paris";
	uint64_t validity = 7, keep = 30, cred_days = 365;
	const char *random_id = "1";
	int c;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			server_name = optarg;
			break;
		case 'S':
			sectors = optarg;
			break;
		case 'v':
			value_sector = optarg;
			break;
		case 'z':
			tz = optarg;
			break;
		case 'l':
			if (admin_parse_u64(optarg, 365, &validity) || validity == 0)
				return admin_usage("init ",
				                   "--list-validity-days '%s': expected "
				                   "a number of days from 1 to 365",
				                   optarg);
			break;
		case 'k':
			if (admin_parse_u64(optarg, 1000, &keep) || keep == 0)
				return admin_usage("init ",
				                   "--keep '%s': expected a number from 1 to 1000",
				                   optarg);
			break;
		case 'c':
			if (admin_parse_u64(optarg, 3660, &cred_days) || cred_days == 0)
				return admin_usage("init ",
				                   "--credential-days '%s': expected a "
				                   "number of days from 1 to 3660",
				                   optarg);
			break;
		case 'R':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				return admin_usage("init ", "--random-id '%s': expected on or off",
				                   optarg);
			random_id = optarg[1] == 'n' ? "1" : "0";
			break;
		case 'h':
			fputs(init_help, stdout);
			return 0;
		default:
			return bad_option("init ", argv);
		}
	}
	if (optind < argc)
		return admin_usage("init ", "unexpected argument '%s'", argv[optind]);
	if (!a->data)
		return admin_usage("init ", "no data directory: give --data DIR or set "
		                            "CITYPASS_DATA");
	if (!tz_ok(tz))
		return admin_usage("init ",
		                   "--tz '%s': expected an IANA time zone such as "
		                   "Europe/Paris",
		                   tz);
	char names[SERVER_CARD_SLOTS][SERVER_NAME_MAX];
	size_t n = 0;
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", sectors);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!server_name_ok(tok))
			return admin_usage("init ",
			                   "--sectors: '%s' is not a sector name (letters, "
			                   "digits, '-', '_', '.')",
			                   tok);
		if (n == SERVER_CARD_SLOTS)
			return admin_usage("init ",
			                   "--sectors '%s': at most %d sectors (a card "
			                   "has 6 slots)",
			                   sectors, SERVER_CARD_SLOTS);
		for (size_t i = 0; i < n; i++)
			if (strcmp(names[i], tok) == 0)
				return admin_usage("init ", "--sectors: '%s' is given twice", tok);
		snprintf(names[n++], SERVER_NAME_MAX, "%s", tok);
	}
	if (n == 0)
		return admin_usage("init ", "--sectors '%s': expected at least one sector name",
		                   sectors);
	if (value_sector) {
		int found = 0;
		for (size_t i = 0; i < n; i++)
			found |= strcmp(names[i], value_sector) == 0;
		if (!found)
			return admin_usage("init ",
			                   "--value-sector '%s': expected one of --sectors",
			                   value_sector);
	}
	for (const char *p = server_name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return admin_usage("init ", "--server-name '%s': expected a host name",
			                   server_name);
	if (!*server_name || strlen(server_name) > 63)
		return admin_usage("init ", "--server-name '%s': expected a host name",
		                   server_name);

	/* Refuse an existing deployment before creating anything. */
	char path[PATH_MAX], tmp[2048], from[PATH_MAX];
	struct stat sb;
	if (strlen(a->data) > 1900)
		return admin_usage("init ", "--data: the path is too long");
	snprintf(path, sizeof(path), "%s/%s", a->data, SERVER_DB_FILE);
	if (stat(path, &sb) == 0)
		return admin_refuse(
		        "'%s' already holds a deployment (%s): refusing to overwrite it", a->data,
		        path);
	snprintf(path, sizeof(path), "%s/keys", a->data);
	if (stat(path, &sb) == 0)
		return admin_refuse(
		        "'%s' already holds key material (%s): refusing to overwrite it", a->data,
		        path);
	if (mkdir(a->data, 0700) != 0 && errno != EEXIST)
		return admin_refuse("cannot create the data directory '%s': %s", a->data,
		                    strerror(errno));
	/* Everything is made in a scratch directory, then moved in: a failure leaves nothing. */
	snprintf(tmp, sizeof(tmp), "%s/.init-%ld", a->data, (long)getpid());
	if (mkdir(tmp, 0700) != 0)
		return admin_refuse("cannot create '%s': %s", tmp, strerror(errno));
	int rc = server_keys_create(tmp, server_name);
	struct server_store st = {0};
	if (rc == 0)
		rc = server_store_open_sqlite(&st, tmp, 1);
	if (rc == 0) {
		char v_valid[24], v_keep[24], v_cred[24], v_now[24], v_schema[8];
		int64_t now;
		admin_now(&now);
		snprintf(v_valid, sizeof(v_valid), "%" PRIu64, validity * 86400);
		snprintf(v_keep, sizeof(v_keep), "%" PRIu64, keep);
		snprintf(v_cred, sizeof(v_cred), "%" PRIu64, cred_days);
		snprintf(v_now, sizeof(v_now), "%" PRId64, now);
		snprintf(v_schema, sizeof(v_schema), "%d", SERVER_STORE_SCHEMA_VERSION);
		const char *meta[] = {"server_name",
		                      server_name,
		                      "tz",
		                      tz,
		                      "list_validity",
		                      v_valid,
		                      "keep",
		                      v_keep,
		                      "credential_days",
		                      v_cred,
		                      "created",
		                      v_now,
		                      "schema",
		                      v_schema,
		                      "random_id",
		                      random_id,
		                      NULL};
		struct server_publish_opts po = {now, (int64_t)validity * 86400, (unsigned)keep, 0,
		                                 0};
		setenv("TZ", tz, 1);
		tzset();
		rc = init_fill(&st, tmp, names, n, value_sector, meta, &po);
		server_store_close(&st);
	}
	if (rc == 0) {
		snprintf(from, sizeof(from), "%s/keys", tmp);
		snprintf(path, sizeof(path), "%s/keys", a->data);
		rc = rename(from, path) == 0 ? 0 : SERVER_ERR_IO;
	}
	if (rc == 0) {
		snprintf(from, sizeof(from), "%s/%s", tmp, SERVER_DB_FILE);
		snprintf(path, sizeof(path), "%s/%s", a->data, SERVER_DB_FILE);
		rc = rename(from, path) == 0 ? 0 : SERVER_ERR_IO;
		if (rc) {
			snprintf(path, sizeof(path), "%s/keys", a->data);
			nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
		}
	}
	nftw(tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	if (rc)
		return admin_refuse("init failed: %s; nothing was created", server_strerror(rc));
	printf("deployment created in %s: %zu sectors (", a->data, n);
	for (size_t i = 0; i < n; i++)
		printf("%s%s=%zu", i ? ", " : "", names[i], i + 1);
	printf("), server certificate for %s\n", server_name);
	return 0;
}

/* --- sector list ------------------------------------------------------------------------- */

static const char sector_help[] = "usage: citypass-admin sector list [--json]\n"
                                  "The service sectors made by init: number, name, card slot.\n";

static int sector_list(struct admin *a, int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(sector_help, stdout);
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
		if (json) {
			printf("%s{\"number\":%u,\"name\":", i ? "," : "", v[i].number);
			admin_json_string(stdout, v[i].name);
			printf(",\"slot\":%u}", v[i].slot);
		} else {
			printf("%-6u %-16s slot %u\n", v[i].number, v[i].name, v[i].slot);
		}
	}
	if (json)
		printf("]\n");
	free(v);
	return 0;
}

/* --- sites ------------------------------------------------------------------------------- */

static const char site_help[] =
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

static int day_index(const char *s)
{
	static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
	for (int i = 0; i < 7; i++)
		if (strncmp(s, days[i], 3) == 0)
			return i;
	return -1;
}

static int parse_hhmm(const char *s, int *min)
{
	if (!(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] == ':' &&
	      s[3] >= '0' && s[3] <= '9' && s[4] >= '0' && s[4] <= '9'))
		return -1;
	int h = (s[0] - '0') * 10 + s[1] - '0', m = (s[3] - '0') * 10 + s[4] - '0';
	if (h > 24 || m > 59 || (h == 24 && m != 0))
		return -1;
	*min = h * 60 + m;
	return 0;
}

/* Opening hours as documented in site_help: 1 if valid. */
static int hours_ok(const char *h)
{
	if (strcmp(h, "always") == 0)
		return 1;
	const char *p = h;
	for (;;) {
		int d0 = day_index(p), d1;
		if (d0 < 0)
			return 0;
		p += 3;
		d1 = d0;
		if (*p == '-') {
			d1 = day_index(p + 1);
			if (d1 < d0)
				return 0;
			p += 4;
		}
		if (*p++ != ' ')
			return 0;
		int last = -1;
		for (;;) {
			int a, b;
			if (parse_hhmm(p, &a) || p[5] != '-' || parse_hhmm(p + 6, &b) || a >= b ||
			    a < last)
				return 0;
			last = b;
			p += 11;
			if (*p != ',')
				break;
			p++;
		}
		if (*p == 0)
			return 1;
		if (*p++ != ';')
			return 0;
		while (*p == ' ')
			p++;
	}
}

static int expiry_policy_ok(const char *s)
{
	uint64_t h;
	if (strcmp(s, "refuse") == 0)
		return 1;
	return strncmp(s, "grace:", 6) == 0 && admin_parse_u64(s + 6, 720, &h) == 0 && h > 0;
}

static int site_add(struct admin *a, int argc, char **argv)
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
	getopt_reset();
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
			fputs(site_help, stdout);
			return 0;
		default:
			return bad_option("site add ", argv);
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
	if (tz && !tz_ok(tz))
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
		sector_names(a, names, sizeof(names));
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

static int site_list(struct admin *a, int argc, char **argv)
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

/* --- devices ----------------------------------------------------------------------------- */

static const char device_help[] =
        "usage: citypass-admin device add NAME --site SITE --server HOST:PORT --out DIR\n"
        "       citypass-admin device revoke NAME [--discard-usage]\n"
        "       citypass-admin device show NAME\n"
        "       citypass-admin device list [--json] [--silent-after MINUTES]\n"
        "Enrol a gate controller: writes its provisioning bundle DIR (certificate and key, the\n"
        "device CA, the list and issuer public keys, its sector's card key only, device.conf).\n"
        "DIR must not exist. NAME becomes the certificate CN and the device id.\n"
        "revoke: the sync server refuses the device from then on; --discard-usage also\n"
        "forgets every use it reported (a stolen gate's reports stop counting against\n"
        "quotas and entries) and publishes its sector's list.\n";

static int copy_key_file(const char *data, const char *name, const char *dir, const char *as)
{
	char from[PATH_MAX], to[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	server_key_path(from, sizeof(from), data, name);
	snprintf(to, sizeof(to), "%s/%s", dir, as);
	int rc = server_file_read(from, &buf, &len);
	if (rc == 0)
		rc = server_file_create(to, buf, len, 0644);
	free(buf);
	return rc;
}

static int write_bundle(struct admin *a, const struct server_device *d,
                        const struct server_site *site, const struct server_sector *sec,
                        const char *server, const char *dir)
{
	char key[PATH_MAX], crt[PATH_MAX], text[2048];
	struct server_card_keys ck;
	snprintf(key, sizeof(key), "%s/device.key", dir);
	snprintf(crt, sizeof(crt), "%s/device.crt", dir);
	int rc = server_cert_issue(a->data, d->id, SERVER_CERT_DEVICE, 5 * 365, key, crt);
	if (rc == 0)
		rc = copy_key_file(a->data, "ca.crt", dir, "ca.crt");
	if (rc == 0)
		rc = copy_key_file(a->data, "list.pub.pem", dir, "list.pub.pem");
	if (rc == 0)
		rc = copy_key_file(a->data, "issuer.pub.pem", dir, "issuer.pub.pem");
	if (rc == 0)
		rc = server_card_keys_load(a->data, &ck);
	if (rc)
		return rc;
	char vs[16] = "", server_name[SERVER_NAME_MAX] = "";
	a->st.ops->meta_get(a->st.ctx, "value_sector", vs, sizeof(vs));
	/* The server's identity, pinned in the bundle: the gate checks the server
	 * certificate's CN against it however `server` addresses it (issue 10). */
	if (a->st.ops->meta_get(a->st.ctx, "server_name", server_name, sizeof(server_name)) != 0)
		return SERVER_ERR_INVALID;
	/* only this sector's master (and the previous one during a rotation): never the
	 * application master, the issuer PICC master or another sector's key */
	int n = admin_card_sector_key_text(&ck, sec->number, sec->slot,
	                                   vs[0] && (uint16_t)atoi(vs) == sec->number, text,
	                                   sizeof(text));
	mbedtls_platform_zeroize(&ck, sizeof(ck));
	snprintf(key, sizeof(key), "%s/card-sector.key", dir);
	rc = n < 0 ? SERVER_ERR_INVALID : server_file_create(key, text, (size_t)n, 0600);
	mbedtls_platform_zeroize(text, sizeof(text));
	if (rc)
		return rc;
	/* quota periods are numbered in this zone, the server's (proto/calendar.h); a TZ that
	 * names no zone file leaves the gate counting in its site's, as before period-tz */
	char period_tz[SERVER_NAME_MAX];
	if (proto_zone_process_name(period_tz, sizeof(period_tz)) != 0)
		snprintf(period_tz, sizeof(period_tz), "%s", site->tz);
	n = snprintf(text, sizeof(text),
	             "# citypass controller provisioning (docs/admin.md)\n"
	             "device-id = %s\ngate = %u\nsite = %u\nsite-name = %s\nsector = %u\n"
	             "sector-name = %s\nserver = %s\nserver-name = %s\ntz = %s\nperiod-tz = %s\n"
	             "hours = %s\n"
	             "antipassback-minutes = %u\nexpiry-policy = %s\n"
	             "certificate = device.crt\nprivate-key = device.key\nca = ca.crt\n"
	             "list-public-key = list.pub.pem\nissuer-public-key = issuer.pub.pem\n"
	             "card-key = card-sector.key\n",
	             d->id, d->gate, site->id, site->name, sec->number, sec->name, server,
	             server_name, site->tz, period_tz, site->hours, site->antipassback_min,
	             site->expiry_policy);
	snprintf(key, sizeof(key), "%s/device.conf", dir);
	return server_file_create(key, text, (size_t)n, 0644);
}

static int server_addr_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;
	if (!colon || colon == s || (size_t)(colon - s) > 253)
		return 0;
	if (admin_parse_u64(colon + 1, 65535, &port) || port == 0)
		return 0;
	for (const char *p = s; p < colon; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '[' ||
		      *p == ']' || *p == ':'))
			return 0;
	return 1;
}

static int device_add(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"site", required_argument, NULL, 's'}, {"server", required_argument, NULL, 'S'},
	        {"out", required_argument, NULL, 'o'},  {"name", required_argument, NULL, 'n'},
	        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	const char *site = NULL, *server = NULL, *out = NULL, *name = NULL;
	int c;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			site = optarg;
			break;
		case 'S':
			server = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			fputs(device_help, stdout);
			return 0;
		default:
			return bad_option("device add ", argv);
		}
	}
	if (!name && optind < argc)
		name = argv[optind++];
	if (optind < argc)
		return admin_usage("device add ", "unexpected argument '%s'", argv[optind]);
	if (!name)
		return admin_usage("device add ", "missing the device NAME");
	if (!server_name_ok(name))
		return admin_usage("device add ",
		                   "device name '%s': expected 1 to 63 letters, "
		                   "digits, '-', '_' or '.'",
		                   name);
	if (!site)
		return admin_usage("device add ", "missing --site");
	if (!server)
		return admin_usage("device add ", "missing --server HOST:PORT");
	if (!server_addr_ok(server))
		return admin_usage("device add ",
		                   "--server '%s': expected HOST:PORT with a port "
		                   "from 1 to 65535",
		                   server);
	if (!out)
		return admin_usage("device add ", "missing --out DIR");
	struct stat sb;
	if (stat(out, &sb) == 0)
		return admin_refuse("--out '%s' already exists: refusing to overwrite a bundle",
		                    out);
	int rc = admin_open(a);
	if (rc)
		return rc;
	char server_name[SERVER_NAME_MAX] = "";
	if (a->st.ops->meta_get(a->st.ctx, "server_name", server_name, sizeof(server_name)) == 0 &&
	    strcasecmp(server_name, name) == 0)
		return admin_refuse("device name '%s' is the sync server's name: a gate's "
		                    "certificate must never bear it",
		                    name);
	struct server_site s;
	if (a->st.ops->site_find(a->st.ctx, site, &s) != 0)
		return admin_refuse("--site '%s': no such site (see 'citypass-admin site list')",
		                    site);
	struct server_sector sec;
	char num[8];
	snprintf(num, sizeof(num), "%u", s.sector);
	if (server_sector_find(&a->st, num, &sec) != 0)
		return admin_refuse("site '%s' names a missing sector %u", site, s.sector);
	struct server_device d;
	memset(&d, 0, sizeof(d));
	snprintf(d.id, sizeof(d.id), "%s", name);
	d.site = s.id;
	d.sector = s.sector;
	admin_now(&d.created);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->device_add(a->st.ctx, &d);
	if (rc) {
		admin_rollback(a);
		if (rc == SERVER_ERR_EXISTS)
			return admin_refuse("device '%s' already exists", name);
		return admin_refuse("cannot add device '%s': %s", name, server_strerror(rc));
	}
	if (mkdir(out, 0700) != 0) {
		admin_rollback(a);
		return admin_refuse("cannot create --out '%s': %s", out, strerror(errno));
	}
	rc = write_bundle(a, &d, &s, &sec, server, out);
	if (rc == 0)
		rc = a->st.ops->commit(a->st.ctx);
	if (rc) {
		admin_rollback(a);
		nftw(out, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
		return admin_refuse("cannot enrol device '%s': %s; nothing was written", name,
		                    server_strerror(rc));
	}
	printf("device %s (gate %u) at site %s, sector %s: bundle in %s\n", d.id, d.gate, s.name,
	       sec.name, out);
	return 0;
}

static int device_revoke_or_show(struct admin *a, int argc, char **argv, int show)
{
	const char *cmd = show ? "device show " : "device revoke ";
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(device_help, stdout);
		return 0;
	}
	int discard = 0;
	if (!show && argc > 2 && strcmp(argv[2], "--discard-usage") == 0) {
		discard = 1;
		argc--;
	}
	if (argc < 2)
		return admin_usage(cmd, "missing the device NAME");
	if (argc > 2)
		return admin_usage(cmd, "unexpected argument '%s'", argv[2]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_device d;
	rc = a->st.ops->device_find(a->st.ctx, argv[1], &d);
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("device '%s': no such device", argv[1]);
	if (rc)
		return admin_refuse("cannot read device '%s': %s", argv[1], server_strerror(rc));
	if (show) {
		printf("device %s gate %u site %u sector %u %s\n", d.id, d.gate, d.site, d.sector,
		       d.revoked ? "revoked" : "active");
		return 0;
	}
	if (d.revoked)
		return admin_refuse("device '%s' is already revoked", argv[1]);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->device_revoke(a->st.ctx, argv[1]);
	uint64_t discarded = 0;
	if (rc == 0 && discard)
		rc = a->st.ops->consumption_discard(a->st.ctx, argv[1], &discarded);
	if (rc) {
		admin_rollback(a);
		return admin_refuse("cannot revoke device '%s': %s", argv[1], server_strerror(rc));
	}
	if ((rc = admin_commit(a)) != 0)
		return rc;
	printf("device %s revoked: the sync server refuses it from its next connection\n", argv[1]);
	if (discard)
		printf("device %s: %" PRIu64 " reported use(s) discarded\n", argv[1], discarded);
	/* the discarded uses change the counts the sector's list shows (the change log has
	 * their keys): published once the revocation is committed */
	return discard ? admin_publish(a, d.sector, NULL) : 0;
}

static int device_revoke(struct admin *a, int argc, char **argv)
{
	return device_revoke_or_show(a, argc, argv, 0);
}

static int device_show(struct admin *a, int argc, char **argv)
{
	return device_revoke_or_show(a, argc, argv, 1);
}

/* --- households -------------------------------------------------------------------------- */

static const char household_help[] =
        "usage: citypass-admin household add NAME\n"
        "A household groups passes whose quotas are shared (scope household). Give it to 'pass\n"
        "issue --household NAME'.\n";

static int household_add(struct admin *a, int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(household_help, stdout);
		return 0;
	}
	if (argc < 2)
		return admin_usage("household ", "missing the household NAME");
	if (argc > 2)
		return admin_usage("household ", "unexpected argument '%s'", argv[2]);
	if (!server_name_ok(argv[1]))
		return admin_usage("household ",
		                   "household name '%s': expected 1 to 63 letters, "
		                   "digits, '-', '_' or '.'",
		                   argv[1]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	int64_t id;
	struct server_why why;
	if (server_household_add(&a->desk, argv[1], &id, &why) != 0)
		return admin_refuse("%s", why.text);
	printf("household %" PRId64 " %s\n", id, argv[1]);
	return 0;
}

/* --- lists ------------------------------------------------------------------------------- */

static const char list_help[] =
        "usage: citypass-admin list publish [--sector S] [--full]\n"
        "       citypass-admin list export --sector S --out DIR [--version N]\n"
        "publish: the next version of every sector's list (or one sector's), from the changes\n"
        "logged since the last one; --full rebuilds every chunk (gates then take a snapshot).\n"
        "export: writes every file of the version (newest unless --version) to\n"
        "DIR/sector-NUM-vVERSION/ with list.pub.pem, so that anyone can check it there with\n"
        "  openssl dgst -sha256 -verify list.pub.pem -signature vV.manifest.sig vV.manifest\n"
        "  sha256sum -c vV.manifest\n"
        "and the delta from the previous version when kept (vV.delta).\n";

static int list_publish(struct admin *a, int argc, char **argv)
{
	const char *sector = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(list_help, stdout);
			return 0;
		} else if (strcmp(argv[i], "--sector") == 0 && i + 1 < argc) {
			sector = argv[++i];
		} else if (strcmp(argv[i], "--full") == 0) {
			a->full_publish = 1;
		} else {
			return admin_usage("list publish ", "unexpected argument '%s'", argv[i]);
		}
	}
	a->no_publish = 0; /* publishing is the point of this command */
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_sector one, *v = NULL;
	size_t n = 0;
	if (sector) {
		if (server_sector_find(&a->st, sector, &one) != 0) {
			char names[256];
			sector_names(a, names, sizeof(names));
			return admin_usage("list publish ",
			                   "--sector '%s': no such sector "
			                   "(expected one of: %s)",
			                   sector, names);
		}
		v = &one;
		n = 1;
	} else if (a->st.ops->sector_list(a->st.ctx, &v, &n) != 0) {
		return admin_refuse("cannot read the sectors");
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint64_t ver;
		rc = admin_publish(a, v[i].number, &ver);
		if (rc == 0)
			printf("sector %s list version %" PRIu64 "\n", v[i].name, ver);
	}
	if (v != &one)
		free(v);
	return rc;
}

static int write_out(const char *dir, const char *name, const uint8_t *b, size_t n)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return server_file_create(path, b, n, 0644);
}

static int rm_export(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Every file of a published version into dir (made here, so that a failure removes it). */
static int export_version(struct admin *a, uint16_t sector, const struct server_list_version *v,
                          const char *dir)
{
	struct proto_clist_manifest m;
	char name[PROTO_CLIST_NAME_MAX];
	if (proto_clist_manifest_parse(v->manifest, v->manifest_len, &m) != 0)
		return SERVER_ERR_IO;
	proto_clist_name_manifest(name, v->version);
	int rc = write_out(dir, name, v->manifest, v->manifest_len);
	if (rc == 0) {
		proto_clist_name_sig(name, v->version);
		rc = write_out(dir, name, v->sig, v->sig_len);
	}
	if (rc == 0) {
		proto_clist_name_head(name, v->version);
		rc = write_out(dir, name, v->head, v->head_len);
	}
	for (uint32_t j = 0; rc == 0 && j < m.n_chunks; j++) {
		for (int idx = 0; rc == 0 && idx < 2; idx++) {
			uint8_t *data = NULL;
			size_t len = 0;
			rc = a->st.ops->list_file_get(a->st.ctx, sector, j, m.chunks[j].since, idx,
			                              &data, &len);
			proto_clist_name_chunk(name, j, m.chunks[j].since, idx);
			if (rc == 0)
				rc = write_out(dir, name, data, len);
			free(data);
		}
	}
	proto_clist_manifest_free(&m);
	return rc;
}

static int list_export(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"sector", required_argument, NULL, 's'},
	        {"out", required_argument, NULL, 'o'},
	        {"version", required_argument, NULL, 'v'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *sector = NULL, *out = NULL;
	uint64_t version = 0;
	int c;
	getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sector = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'v':
			if (admin_parse_u64(optarg, INT64_MAX, &version) || version == 0)
				return admin_usage("list export ",
				                   "--version '%s': expected a list "
				                   "version, 1 or more",
				                   optarg);
			break;
		case 'h':
			fputs(list_help, stdout);
			return 0;
		default:
			return bad_option("list export ", argv);
		}
	}
	if (optind < argc)
		return admin_usage("list export ", "unexpected argument '%s'", argv[optind]);
	if (!sector)
		return admin_usage("list export ", "missing --sector");
	if (!out)
		return admin_usage("list export ", "missing --out DIR");
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_sector sec;
	if (server_sector_find(&a->st, sector, &sec) != 0) {
		char names[256];
		sector_names(a, names, sizeof(names));
		return admin_usage("list export ",
		                   "--sector '%s': no such sector (expected one "
		                   "of: %s)",
		                   sector, names);
	}
	struct server_list_version v;
	struct server_stored_list d = {0};
	rc = a->st.ops->list_version_get(a->st.ctx, sec.number, version, &v);
	if (rc == SERVER_ERR_NOT_FOUND && version == 0)
		return admin_refuse("sector %s has no published list yet (run 'list publish')",
		                    sec.name);
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("sector %s has no list version %" PRIu64 " (not published, or "
		                    "no longer kept)",
		                    sec.name, version);
	if (rc)
		return admin_refuse("cannot read the list: %s", server_strerror(rc));
	version = v.version;
	int has_delta =
	        version > 1 && a->st.ops->delta_get(a->st.ctx, sec.number, version - 1, &d) == 0;
	char dir[PATH_MAX], name[96];
	if (mkdir(out, 0755) != 0 && errno != EEXIST) {
		server_list_version_free(&v);
		server_stored_list_free(&d);
		return admin_refuse("cannot create --out '%s': %s", out, strerror(errno));
	}
	snprintf(dir, sizeof(dir), "%s/sector-%u-v%" PRIu64, out, sec.number, version);
	if (mkdir(dir, 0755) != 0) {
		rc = errno == EEXIST ? SERVER_ERR_EXISTS : SERVER_ERR_IO;
		server_list_version_free(&v);
		server_stored_list_free(&d);
		return admin_refuse("cannot export to '%s': %s", dir,
		                    rc == SERVER_ERR_EXISTS ? "it exists already"
		                                            : strerror(errno));
	}
	rc = export_version(a, sec.number, &v, dir);
	if (rc == 0 && has_delta) {
		snprintf(name, sizeof(name), "v%" PRIu64 ".delta", version);
		rc = write_out(dir, name, d.data, d.len);
	}
	if (rc == 0)
		rc = copy_key_file(a->data, "list.pub.pem", dir, "list.pub.pem");
	server_list_version_free(&v);
	server_stored_list_free(&d);
	if (rc) {
		nftw(dir, rm_export, 8, FTW_DEPTH | FTW_PHYS);
		return admin_refuse("cannot export to '%s': %s", dir, server_strerror(rc));
	}
	/* what an auditor runs, with nothing of ours (docs/list-format.md) */
	printf("%s\n", dir);
	printf("  cd %s && openssl dgst -sha256 -verify list.pub.pem -signature v%" PRIu64
	       ".manifest.sig v%" PRIu64 ".manifest && sha256sum -c --quiet v%" PRIu64
	       ".manifest\n",
	       dir, version, version, version);
	return 0;
}

/* --- the commands ------------------------------------------------------------------------ */

/* One line per command: the CLI is this table. A command without subcommands (sub NULL)
 * takes its own arguments; the help of a command is its first line's. */
static const struct admin_command {
	const char *name, *sub;
	int (*handler)(struct admin *a, int argc, char **argv);
	const char *help;
} commands[] = {
        {"init", NULL, cmd_init, init_help},
        {"sector", "list", sector_list, sector_help},
        {"site", "add", site_add, site_help},
        {"site", "list", site_list, site_help},
        {"device", "add", device_add, device_help},
        {"device", "revoke", device_revoke, device_help},
        {"device", "show", device_show, device_help},
        {"device", "list", admin_cmd_device_list, device_help}, /* the gates' health */
        {"household", "add", household_add, household_help},
        {"pass", "issue", admin_pass_issue, admin_pass_help},
        {"pass", "show", admin_pass_show, admin_pass_help},
        {"pass", "list", admin_pass_list, admin_pass_help},
        {"pass", "revoke", admin_pass_revoke, admin_pass_help},
        {"pass", "replace", admin_pass_replace, admin_pass_help},
        {"pass", "import", admin_pass_import, admin_pass_help},
        {"rights", "grant", admin_rights_grant, admin_rights_help},
        {"rights", "revoke", admin_rights_revoke, admin_rights_help},
        {"list", "publish", list_publish, list_help},
        {"list", "export", list_export, list_help},
        {"stats", NULL, admin_cmd_stats, NULL},
        {"opendata", NULL, admin_cmd_opendata, NULL},
        {"quota", NULL, admin_cmd_quota, NULL},
        {"card", "inspect", admin_card_inspect, admin_card_help},
        {"card", "recycle", admin_card_recycle, admin_card_help},
        {"keys", NULL, admin_cmd_keys, NULL},
        {"backup", NULL, admin_cmd_backup, NULL},
        {"restore", NULL, admin_cmd_restore, NULL},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The subcommands of `name`, for messages: "add, revoke, show or list". */
static void sub_names(const char *name, char *out, size_t cap)
{
	size_t n = 0, k = 0, off = 0;
	for (size_t i = 0; i < N_COMMANDS; i++)
		n += strcmp(commands[i].name, name) == 0;
	out[0] = 0;
	for (size_t i = 0; i < N_COMMANDS && off < cap; i++)
		if (strcmp(commands[i].name, name) == 0)
			off += (size_t)snprintf(out + off, cap - off, "%s%s",
			                        k++ == 0 ? ""
			                        : k == n ? " or "
			                                 : ", ",
			                        commands[i].sub);
}

/* argv[0] is the command's name. */
static int run_command(struct admin *a, int argc, char **argv)
{
	const struct admin_command *first = NULL;
	char cmd[32], subs[128];
	for (size_t i = 0; i < N_COMMANDS && !first; i++)
		if (strcmp(commands[i].name, argv[0]) == 0)
			first = &commands[i];
	if (!first)
		return admin_usage(NULL, "unknown command '%s'", argv[0]);
	if (!first->sub)
		return first->handler(a, argc, argv);
	snprintf(cmd, sizeof(cmd), "%s ", first->name);
	sub_names(first->name, subs, sizeof(subs));
	if (argc < 2)
		return admin_usage(cmd, "missing a %s command (%s)", first->name, subs);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(first->help, stdout);
		return 0;
	}
	for (const struct admin_command *c = first; c < commands + N_COMMANDS; c++)
		if (strcmp(c->name, first->name) == 0 && strcmp(c->sub, argv[1]) == 0)
			return c->handler(a, argc - 1, argv + 1);
	return admin_usage(cmd, "unknown %s command '%s' (expected %s)", first->name, argv[1],
	                   subs);
}

int main(int argc, char **argv)
{
	struct admin a;
	memset(&a, 0, sizeof(a));
	a.data = getenv("CITYPASS_DATA");
	if (a.data && !*a.data)
		a.data = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(main_help, stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("citypass-admin " VERSION "\n");
			return 0;
		} else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
			a.data = argv[++i];
		} else if (strncmp(argv[i], "--data=", 7) == 0) {
			a.data = argv[i] + 7;
		} else if (strcmp(argv[i], "--no-publish") == 0) {
			a.no_publish = 1;
		} else {
			return admin_usage(NULL, "option '%s' is not known or lacks its value",
			                   argv[i]);
		}
	}
	if (i >= argc)
		return admin_usage(NULL, "missing a command");
	int rc = run_command(&a, argc - i, argv + i);
	admin_close(&a);
	return rc;
}
