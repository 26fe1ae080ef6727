/*
 * admin_household.c — citypass-admin household add|list|show|rename|move|remove, over the
 * pass-lifecycle library's households (server/passes.h; docs/admin.md, "Households"). A
 * move or a removal publishes the sectors whose list entries it changed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

const char admin_household_help[] =
        "usage: citypass-admin household add NAME\n"
        "       citypass-admin household list [--name TEXT] [--json]\n"
        "       citypass-admin household show NAME [--json]\n"
        "       citypass-admin household rename NAME NEW-NAME\n"
        "       citypass-admin household move PASS (--to NAME | --out)\n"
        "       citypass-admin household remove NAME\n"
        "A household groups passes whose quotas are shared (scope household). Give it to 'pass\n"
        "issue --household NAME', or move a pass in with 'household move'. NAME: 1 to 63\n"
        "letters, digits, '-', '_' or '.', unique ignoring case ('dupont' finds 'Dupont', and\n"
        "cannot be added beside it). list --name finds the households whose name holds\n"
        "TEXT, ignoring case. show: its passes and the quotas it shares, with their use this\n"
        "period. A pass moving in brings the uses it counted this period into the household's\n"
        "sum; moving out, it takes them along. remove: only a household no active or suspended\n"
        "pass is in (its revoked and replaced passes leave it).\n";

static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(admin_household_help, stdout);
			return 1;
		}
	return 0;
}

static int name_arg(const char *cmd, const char *what, const char *s)
{
	if (!server_name_ok(s))
		return admin_usage(
		        cmd, "%s '%s': expected 1 to 63 letters, digits, '-', '_' or '.'", what, s);
	return 0;
}

/* The positional arguments of a subcommand: exactly `n`, none starting with '-' unless in
 * `flags` (handled by the caller). */
static int positional(const char *cmd, int argc, char **argv, int n, const char **out,
                      const char *missing)
{
	int k = 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			return admin_usage(cmd, "option '%s' is not known", argv[i]);
		if (k == n)
			return admin_usage(cmd, "unexpected argument '%s'", argv[i]);
		out[k++] = argv[i];
	}
	if (k < n)
		return admin_usage(cmd, "missing %s", missing);
	return 0;
}

int admin_household_add(struct admin *a, int argc, char **argv)
{
	const char *name = NULL;
	if (wants_help(argc, argv))
		return 0;
	int rc = positional("household add ", argc, argv, 1, &name, "the household NAME");
	if (rc == 0)
		rc = name_arg("household add ", "household name", name);
	if (rc == 0)
		rc = admin_open(a);
	if (rc)
		return rc;
	int64_t id;
	struct server_why why;
	if (server_household_add(&a->desk, name, &id, &why) != 0)
		return admin_refuse("%s", why.text);
	printf("household %" PRId64 " %s\n", id, name);
	return 0;
}

struct list_out {
	int json;
	size_t n;
};

static int list_one(void *arg, const struct server_household *h)
{
	struct list_out *o = arg;
	if (o->json) {
		printf("%s{\"id\": %" PRId64 ", \"name\": ", o->n ? ", " : "", h->id);
		admin_json_string(stdout, h->name);
		putchar('}');
	} else {
		printf("%" PRId64 "\t%s\n", h->id, h->name);
	}
	o->n++;
	return 0;
}

int admin_household_list(struct admin *a, int argc, char **argv)
{
	const char *part = NULL;
	struct list_out o = {0, 0};
	if (wants_help(argc, argv))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o.json = 1;
		else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
			part = argv[++i];
		else if (strncmp(argv[i], "--name=", 7) == 0)
			part = argv[i] + 7;
		else
			return admin_usage("household list ", "unexpected argument '%s'", argv[i]);
	}
	if (part && strlen(part) >= SERVER_NAME_MAX)
		return admin_usage("household list ", "--name: at most 63 characters");
	int rc = admin_open(a);
	if (rc)
		return rc;
	struct server_why why = {""};
	if (o.json)
		putchar('[');
	rc = server_household_search(&a->desk, part, 0, list_one, &o, &why);
	if (o.json)
		puts("]");
	if (rc)
		return admin_refuse("%s", why.text);
	return 0;
}

/* "24 per year: 5 used, 19 left" */
static void quota_line(struct admin *a, const struct server_household_quota *q, int json)
{
	static const char *const periods[] = {"", "lifetime", "day", "week", "month", "year"};
	char sec[SERVER_NAME_MAX];
	server_sector_name(&a->st, q->sector, sec, sizeof(sec));
	uint32_t left = q->used >= q->p.limit ? 0 : q->p.limit - q->used;
	if (json) {
		printf("{\"sector\": ");
		admin_json_string(stdout, sec);
		printf(", \"product\": %u, \"limit\": %u, \"period\": \"%s\", \"used\": %u, "
		       "\"left\": %u}",
		       q->p.product, q->p.limit, periods[q->p.period], q->used, left);
	} else {
		printf("quota\t%s\tproduct %u\t%u per %s: %u used, %u left\n", sec, q->p.product,
		       q->p.limit, periods[q->p.period], q->used, left);
	}
}

int admin_household_show(struct admin *a, int argc, char **argv)
{
	const char *name = NULL;
	int json = 0;
	if (wants_help(argc, argv))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else
			return admin_usage("household show ", "unexpected argument '%s'", argv[i]);
	}
	if (!name)
		return admin_usage("household show ", "missing the household NAME");
	int rc = name_arg("household show ", "household name", name);
	if (rc == 0)
		rc = admin_open(a);
	if (rc)
		return rc;
	struct server_household h;
	struct server_household_view v;
	struct server_why why;
	if (server_household_find(&a->desk, name, &h, &why) != 0 ||
	    server_household_read(&a->desk, h.id, &v, &why) != 0)
		return admin_refuse("%s", why.text);
	if (json) {
		printf("{\"id\": %" PRId64 ", \"name\": ", v.h.id);
		admin_json_string(stdout, v.h.name);
		printf(", \"passes\": [");
		for (size_t i = 0; i < v.n_passes; i++) {
			printf("%s{\"id\": %" PRId64 ", \"holder\": ", i ? ", " : "",
			       v.passes[i].id);
			admin_json_string(stdout, v.passes[i].holder);
			printf(", \"state\": \"%s\"}", server_pass_state_name(v.passes[i].state));
		}
		printf("], \"quotas\": [");
		for (size_t i = 0; i < v.n_quotas; i++) {
			printf("%s", i ? ", " : "");
			quota_line(a, &v.quotas[i], 1);
		}
		puts("]}");
	} else {
		printf("household %" PRId64 " %s: %zu pass%s\n", v.h.id, v.h.name, v.n_passes,
		       v.n_passes == 1 ? "" : "es");
		for (size_t i = 0; i < v.n_passes; i++)
			printf("pass\t%" PRId64 "\t%s\t%s\n", v.passes[i].id,
			       server_pass_state_name(v.passes[i].state),
			       v.passes[i].holder[0] ? v.passes[i].holder : "(anonymous)");
		for (size_t i = 0; i < v.n_quotas; i++)
			quota_line(a, &v.quotas[i], 0);
	}
	server_household_view_free(&v);
	return 0;
}

int admin_household_rename(struct admin *a, int argc, char **argv)
{
	const char *names[2] = {NULL, NULL};
	if (wants_help(argc, argv))
		return 0;
	int rc = positional("household rename ", argc, argv, 2, names,
	                    "the household NAME and its NEW-NAME");
	if (rc == 0)
		rc = name_arg("household rename ", "household name", names[0]);
	if (rc == 0)
		rc = name_arg("household rename ", "new household name", names[1]);
	if (rc == 0)
		rc = admin_open(a);
	if (rc)
		return rc;
	struct server_household h;
	struct server_why why;
	if (server_household_find(&a->desk, names[0], &h, &why) != 0 ||
	    server_household_rename(&a->desk, h.id, names[1], &why) != 0)
		return admin_refuse("%s", why.text);
	/* a household's list tag is its number, not its name: no list changes */
	printf("household %" PRId64 " renamed: %s -> %s\n", h.id, names[0], names[1]);
	return 0;
}

int admin_household_move(struct admin *a, int argc, char **argv)
{
	const char *pass_arg = NULL, *to = NULL;
	int out = 0;
	if (wants_help(argc, argv))
		return 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			to = argv[++i];
		else if (strncmp(argv[i], "--to=", 5) == 0)
			to = argv[i] + 5;
		else if (strcmp(argv[i], "--out") == 0)
			out = 1;
		else if (!pass_arg && argv[i][0] != '-')
			pass_arg = argv[i];
		else
			return admin_usage("household move ", "unexpected argument '%s'", argv[i]);
	}
	uint64_t v;
	if (!pass_arg)
		return admin_usage("household move ", "missing the PASS number");
	if (admin_parse_u64(pass_arg, INT64_MAX, &v) || v == 0)
		return admin_usage("household move ",
		                   "pass '%s': expected a pass number, 1 or more", pass_arg);
	if (!!to == out)
		return admin_usage("household move ",
		                   "give --to NAME (into a household) or --out (out of its own)");
	int rc = to ? name_arg("household move ", "--to", to) : 0;
	if (rc == 0)
		rc = admin_open(a);
	if (rc)
		return rc;
	struct server_household h = {0, ""};
	struct server_sector_set changed = {0};
	struct server_why why;
	if ((to && server_household_find(&a->desk, to, &h, &why) != 0) ||
	    server_household_move(&a->desk, (int64_t)v, h.id, &changed, &why) != 0)
		return admin_refuse("%s", why.text);
	if (to)
		printf("pass %" PRIu64 " moved into household %s\n", v, to);
	else
		printf("pass %" PRIu64 " moved out of its household\n", v);
	return admin_publish_changed(a, &changed);
}

int admin_household_remove(struct admin *a, int argc, char **argv)
{
	const char *name = NULL;
	if (wants_help(argc, argv))
		return 0;
	int rc = positional("household remove ", argc, argv, 1, &name, "the household NAME");
	if (rc == 0)
		rc = name_arg("household remove ", "household name", name);
	if (rc == 0)
		rc = admin_open(a);
	if (rc)
		return rc;
	struct server_household h;
	struct server_sector_set changed = {0};
	struct server_why why;
	if (server_household_find(&a->desk, name, &h, &why) != 0 ||
	    server_household_remove(&a->desk, h.id, &changed, &why) != 0)
		return admin_refuse("%s", why.text);
	printf("household %" PRId64 " %s removed\n", h.id, name);
	return admin_publish_changed(a, &changed);
}
