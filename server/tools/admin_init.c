/*
 * admin_init.c — citypass-admin init: a deployment's database and every key, made in a scratch
 * directory and moved in (docs/admin.md, "init").
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
#include "server/privacy.h"
#include "server/publish.h"

/* --- init -------------------------------------------------------------------------------- */

const char admin_init_help[] =
        "usage: citypass-admin [--data DIR] init [OPTIONS]\n"
        "Create the database and all key material in the data directory; refuses to touch an\n"
        "existing deployment.\n"
        "  --server-name HOST      the sync server's host name (certificate CN; default "
        "localhost)\n"
        "  --sectors LIST          service sectors, comma-separated, numbered 1.. in order and\n"
        "                          given card slots 0..5 (default pool,library,waste,bus)\n"
        "                          a sector named bus is transport (identifying rows kept 48\n"
        "                          hours), the others access control (90 days): 'sector set'\n"
        "  --value-sector NAME     the sector whose gates debit entries on the card's value file\n"
        "  --tz ZONE               time zone of day numbers and periods (default Europe/Paris)\n"
        "  --list-validity-days N  list expiry after issue, 1..365 days (default 7)\n"
        "  --keep N                snapshots and deltas kept per sector, 1..1000 (default 30)\n"
        "  --credential-days N     phone credential validity, 1..3660 days (default 365)\n"
        "  --random-id on|off      issued cards show a new random UID at every tap, so that no\n"
        "                          reader in town can follow a citizen by UID (default on)\n"
        "  --store URI             keep the rights database in PostgreSQL (postgresql://...,\n"
        "                          a libpq URI; the database must exist and hold no\n"
        "                          deployment) instead of sqlite in the data directory, so\n"
        "                          that several servers can share it (docs/postgresql.md)\n";

int admin_tz_ok(const char *tz)
{
	char path[PATH_MAX];
	struct stat sb;
	if (!*tz || strstr(tz, "..") || tz[0] == '/')
		return 0;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
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
		/* issue 17: the default sectors' kinds (docs/privacy.md): the bus is transport,
		 * whose validations CNIL's AU-015 keeps 48 hours at most */
		if (rc == 0 && strcmp(sectors[i], "bus") == 0)
			rc = server_retention_set(st, s.number, SERVER_KIND_TRANSPORT, 0, NULL);
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

int admin_init(struct admin *a, int argc, char **argv)
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
	        {"store", required_argument, NULL, 'P'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *server_name = "localhost", *sectors = "pool,library,waste,bus";
	const char *value_sector = NULL, *tz = "Europe/Paris";
	uint64_t validity = 7, keep = 30, cred_days = 365;
	const char *random_id = "1";
	const char *store = NULL; /* a PostgreSQL URI (issue 16), or sqlite */
	int c;
	admin_getopt_reset();
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
		case 'P':
			if (!server_store_is_pg_uri(optarg) ||
			    strlen(optarg) >= SERVER_STORE_URI_MAX || strpbrk(optarg, "\r\n"))
				return admin_usage("init ", "--store: expected a PostgreSQL URI "
				                            "(postgresql://host/database)");
			store = optarg;
			break;
		case 'h':
			fputs(admin_init_help, stdout);
			return 0;
		default:
			return admin_bad_option("init ", argv);
		}
	}
	if (optind < argc)
		return admin_usage("init ", "unexpected argument '%s'", argv[optind]);
	if (!a->data)
		return admin_usage("init ", "no data directory: give --data DIR or set "
		                            "CITYPASS_DATA");
	if (!admin_tz_ok(tz))
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
	snprintf(path, sizeof(path), "%s/%s", a->data, SERVER_STORE_FILE);
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
	struct server_why why = {""};
	if (rc == 0 && store)
		rc = server_store_set_uri(tmp, store);
	if (rc == 0)
		rc = server_store_open(&st, tmp, 1, &why);
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
		const char *db = store ? SERVER_STORE_FILE : SERVER_DB_FILE;
		snprintf(from, sizeof(from), "%s/%s", tmp, db);
		snprintf(path, sizeof(path), "%s/%s", a->data, db);
		rc = rename(from, path) == 0 ? 0 : SERVER_ERR_IO;
		if (rc) {
			snprintf(path, sizeof(path), "%s/keys", a->data);
			admin_remove_tree(path);
		}
	}
	admin_remove_tree(tmp);
	if (rc && store && rc != SERVER_ERR_EXISTS && rc != SERVER_ERR_UNREACHABLE &&
	    rc != SERVER_ERR_SCHEMA_NEWER)
		/* the schema may be made already: the database is not ours to drop */
		return admin_refuse("init failed: %s; the data directory was left as it was, the "
		                    "database may hold a partial deployment (drop its tables "
		                    "before trying again)",
		                    *why.text ? why.text : server_strerror(rc));
	if (rc)
		return admin_refuse("init failed: %s; nothing was created",
		                    *why.text ? why.text : server_strerror(rc));
	printf("deployment created in %s: %zu sectors (", a->data, n);
	for (size_t i = 0; i < n; i++)
		printf("%s%s=%zu", i ? ", " : "", names[i], i + 1);
	printf("), server certificate for %s\n", server_name);
	return 0;
}
