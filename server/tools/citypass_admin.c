/*
 * citypass-admin — the agents' CLI over the rights database (docs/admin.md).
 *
 * This file: the table of commands {command, subcommand, handler, help} and its dispatcher,
 * the helpers the commands' files share. Each command's file parses its arguments, calls the
 * server library and prints: passes and rights admin_pass.c (over server/passes.h),
 * households admin_household.c, cards admin_card.c, init admin_init.c, sectors and sites
 * admin_site.c, devices admin_device_add.c and admin_device.c, lists admin_list.c,
 * statistics and open data admin_report.c, quotas admin_quota.c, keys admin_keys.c, bulk import
 * admin_import.c. Every command runs in one transaction: a refusal leaves the database as
 * it was. Exit 0 done, 1 refused, 2 bad usage.
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
        "  sector list|set the deployment's service sectors, their kind and retention\n"
        "  site add|list   sites (opening hours, anti-passback, list-expiry policy)\n"
        "  device add|revoke|show|list  gate controllers, their bundles and their health\n"
        "  household add|list|show|rename|move|remove  households (quotas shared by their\n"
        "                  passes): their passes and quota use, a pass moved in or out\n"
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
        "  holder export|erase     what the server keeps about a pass's holder; erase it\n"
        "  privacy register|purge  the record of processing (Markdown, from this deployment's\n"
        "                  settings); fold the usage rows past their sector's retention now\n"
        "  migrate --to URI  move the database from sqlite into PostgreSQL\n"
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
	struct server_why why = {""};
	int rc = server_store_open(&a->st, a->data, 0, &why);
	if (rc == SERVER_ERR_NOT_FOUND && !*why.text)
		return admin_refuse("no deployment in '%s' (expected a directory made by "
		                    "'citypass-admin init')",
		                    a->data);
	if (rc)
		return admin_refuse("cannot open the database in '%s': %s", a->data,
		                    *why.text ? why.text : server_strerror(rc));
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
void admin_sector_names(struct admin *a, char *out, size_t cap)
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

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void admin_remove_tree(const char *path)
{
	nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* --- output ------------------------------------------------------------------------------ */

/* A JSON string (RFC 8259): the server library's writer (server/passes.h). */
void admin_json_string(FILE *f, const char *s)
{
	server_json_string(f, s);
}

void admin_hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = 0;
}

/* Reinitialise getopt for a subcommand's own options. */
void admin_getopt_reset(void)
{
	optind = 0;
	opterr = 0;
}

int admin_bad_option(const char *cmd, char **argv)
{
	if (optopt)
		return admin_usage(cmd, "option '-%c' is not known or lacks its value", optopt);
	return admin_usage(cmd, "option '%s' is not known or lacks its value", argv[optind - 1]);
}

/* --- the commands ------------------------------------------------------------------------ */

/* One line per command: the CLI is this table. A command without subcommands (sub NULL)
 * takes its own arguments; the help of a command is its first line's. */
static const struct admin_command {
	const char *name, *sub;
	int (*handler)(struct admin *a, int argc, char **argv);
	const char *help;
} commands[] = {
        {"init", NULL, admin_init, admin_init_help},
        {"sector", "list", admin_sector_list, admin_sector_help},
        {"sector", "set", admin_sector_set, admin_sector_help},
        {"site", "add", admin_site_add, admin_site_help},
        {"site", "list", admin_site_list, admin_site_help},
        {"device", "add", admin_device_add, admin_device_help},
        {"device", "revoke", admin_device_revoke, admin_device_help},
        {"device", "show", admin_device_show, admin_device_help},
        {"device", "list", admin_cmd_device_list, admin_device_help}, /* the gates' health */
        {"household", "add", admin_household_add, admin_household_help},
        {"household", "list", admin_household_list, admin_household_help},
        {"household", "show", admin_household_show, admin_household_help},
        {"household", "rename", admin_household_rename, admin_household_help},
        {"household", "move", admin_household_move, admin_household_help},
        {"household", "remove", admin_household_remove, admin_household_help},
        {"pass", "issue", admin_pass_issue, admin_pass_help},
        {"pass", "show", admin_pass_show, admin_pass_help},
        {"pass", "list", admin_pass_list, admin_pass_help},
        {"pass", "revoke", admin_pass_revoke, admin_pass_help},
        {"pass", "replace", admin_pass_replace, admin_pass_help},
        {"pass", "import", admin_pass_import, admin_pass_help},
        {"rights", "grant", admin_rights_grant, admin_rights_help},
        {"rights", "revoke", admin_rights_revoke, admin_rights_help},
        {"list", "publish", admin_list_publish, admin_list_help},
        {"list", "export", admin_list_export, admin_list_help},
        {"stats", NULL, admin_cmd_stats, NULL},
        {"opendata", NULL, admin_cmd_opendata, NULL},
        {"quota", NULL, admin_cmd_quota, NULL},
        {"card", "inspect", admin_card_inspect, admin_card_help},
        {"card", "recycle", admin_card_recycle, admin_card_help},
        {"keys", NULL, admin_cmd_keys, NULL},
        {"backup", NULL, admin_cmd_backup, NULL},
        {"restore", NULL, admin_cmd_restore, NULL},
        {"privacy", NULL, admin_cmd_privacy, NULL},
        {"holder", "export", admin_holder_export, admin_holder_help},
        {"holder", "erase", admin_holder_erase, admin_holder_help},
        {"migrate", NULL, admin_migrate, admin_migrate_help},
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
