/*
 * admin_migrate.c — citypass-admin migrate --to postgresql://…: a sqlite deployment moved
 * into PostgreSQL (issue 16; server/src/store_migrate.c, docs/postgresql.md).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"

const char admin_migrate_help[] =
        "usage: citypass-admin [--data DIR] migrate --to URI\n"
        "Move the deployment's rights database from sqlite (DIR/citypass.db) into the\n"
        "PostgreSQL database URI (postgresql://..., which must hold no deployment), so that\n"
        "several servers can share it. Stop citypass-server first. Every row is copied in one\n"
        "transaction; then DIR/store.conf names the database and DIR/citypass.db is kept as\n"
        "DIR/citypass.db.migrated. Keys stay in DIR (docs/postgresql.md).\n";

int admin_migrate(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"to", required_argument, NULL, 't'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *to = NULL;
	int c;
	admin_getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'h':
			fputs(admin_migrate_help, stdout);
			return 0;
		default:
			return admin_bad_option("migrate ", argv);
		}
	}
	if (optind < argc)
		return admin_usage("migrate ", "unexpected argument '%s'", argv[optind]);
	if (!to || !server_store_is_pg_uri(to))
		return admin_usage("migrate ", "--to: expected a PostgreSQL URI "
		                               "(postgresql://host/database)");
	if (!a->data)
		return admin_usage("migrate ", "no data directory: give --data DIR or set "
		                               "CITYPASS_DATA");
	struct server_why why = {""};
	uint64_t rows = 0;
	int rc = server_store_migrate_to_pg(a->data, to, &rows, &why);
	if (rc)
		return admin_refuse("migrate: %s", *why.text ? why.text : server_strerror(rc));
	printf("moved %" PRIu64 " rows of %s's database into PostgreSQL; %s/%s names it from now "
	       "on, and the sqlite file is kept as %s/%s.migrated\n",
	       rows, a->data, a->data, SERVER_STORE_FILE, a->data, SERVER_DB_FILE);
	return 0;
}
