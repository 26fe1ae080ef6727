/*
 * admin_pass.c — citypass-admin pass … and rights …: the arguments agents type, turned into
 * calls of the pass lifecycle library (server/passes.h), and its answers printed.
 * docs/admin.md, "Passes and rights".
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "cardlib/error.h"
#include "cardlib/reader.h"
#include "server/passes.h"

#define MAX_RIGHTS SERVER_CARD_SLOTS
#define MAX_PHONES SERVER_CARD_SLOTS

const char admin_pass_help[] =
        "usage: citypass-admin pass issue (--holder NAME | --anonymous) [--household NAME]\n"
        "                       [--right SPEC]... [--reader CONNSTRING |\n"
        "                        --phone-key [SECTOR=]FILE... --out DIR]\n"
        "       citypass-admin pass show ID [--json]\n"
        "       citypass-admin pass list [--holder TEXT] [--household NAME] [--state STATE]\n"
        "                       [--sector S] [--json]\n"
        "       citypass-admin pass revoke ID --reason TEXT\n"
        "       citypass-admin pass replace ID [--reason TEXT] [--reader CONNSTRING |\n"
        "                       --phone-key [SECTOR=]FILE... --out DIR]\n"
        "       citypass-admin pass import FILE.csv [--check]   (see 'pass import --help')\n"
        "\n"
        "SPEC (also for 'rights grant'): SECTOR[,KEY=VALUE]... with keys\n"
        "  product=N         product code 1..65535 (default 1)\n"
        "  from=YYYY-MM-DD   first valid day     to=YYYY-MM-DD  last valid day (subscription)\n"
        "  entries=N         N entries, 1..255 (on the card's value file for a card issued in\n"
        "                    the value sector, else counted by the server)\n"
        "  quota=N/PERIOD[/household]  N uses per day|week|month|year, per pass (default) or\n"
        "                    shared by the household across every site of the sector\n"
        "  fare=standard|resident|concession|free\n"
        "A pass holds at most one right per sector: a new right replaces the old one.\n"
        "--reader: issue the pass on the card in that libnfc reader: a card as NXP ships it\n"
        "(or one of this deployment's holding no pass), protected on the way (docs/admin.md,\n"
        "\"Cards\"). --phone-key: the phone's request PEM for that sector\n"
        "('citypass-token enrol'; SECTOR= may be left out for its sector-N.request.pem);\n"
        "the credentials go to DIR/sector-N.cred, the device CA phones check gates with to\n"
        "DIR/gate-ca.crt.\n"
        "STATE: active, revoked, replaced, suspended.\n";

const char admin_rights_help[] =
        "usage: citypass-admin rights grant ID --right SPEC [--right SPEC]...\n"
        "       citypass-admin rights revoke ID --sector S\n"
        "SPEC as in 'pass issue --help'. A grant replaces the pass's right in that sector.\n";

/* One --right SPEC; prints the usage error itself and returns EXIT_USAGE. */
static int parse_right(struct admin *a, const char *cmd, const char *spec, struct server_right *r)
{
	struct server_why why;
	if (server_right_parse(&a->st, spec, r, &why) != 0)
		return admin_usage(cmd, "--right %s", why.text);
	return 0;
}

static int parse_pass_id(const char *cmd, const char *s, int64_t *id)
{
	uint64_t v;
	if (admin_parse_u64(s, INT64_MAX, &v) || v == 0)
		return admin_usage(cmd, "pass ID '%s': expected a pass number, 1 or more", s);
	*id = (int64_t)v;
	return 0;
}

/* --- the medium: a reader's card or phone requests ---------------------------------------- */

static int parse_phone_key(struct admin *a, const char *cmd, const char *arg,
                           struct server_phone_request *p)
{
	const char *eq = strchr(arg, '=');
	char name[SERVER_NAME_MAX];
	struct server_sector sec;
	if (!eq) {
		/* A bare FILE named as citypass-token names requests: sector-N.request.pem */
		const char *base = strrchr(arg, '/');
		unsigned num;
		int end = 0;
		base = base ? base + 1 : arg;
		if (sscanf(base, "sector-%5u.request.pem%n", &num, &end) == 1 && base[end] == 0 &&
		    num <= UINT16_MAX) {
			snprintf(name, sizeof(name), "%u", num);
			if (server_sector_find(&a->st, name, &sec) != 0)
				return admin_usage(cmd, "--phone-key '%s': no sector number %u",
				                   arg, num);
			p->sector = sec.number;
			p->pem_path = arg;
			return 0;
		}
	}
	if (!eq || eq == arg || !eq[1] || (size_t)(eq - arg) >= sizeof(name))
		return admin_usage(cmd,
		                   "--phone-key '%s': expected SECTOR=FILE (the request PEM "
		                   "of 'citypass-token enrol')",
		                   arg);
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = 0;
	if (server_sector_find(&a->st, name, &sec) != 0)
		return admin_usage(cmd, "--phone-key '%s': no such sector '%s'", arg, name);
	p->sector = sec.number;
	p->pem_path = eq + 1;
	return 0;
}

struct issue_opts {
	const char *holder, *household, *reader, *out, *reason;
	int anonymous;
	struct server_right rights[MAX_RIGHTS];
	size_t n_rights;
	struct server_phone_request phones[MAX_PHONES];
	size_t n_phones;
};

static int check_holder(const char *cmd, const char *holder)
{
	if (!*holder || strlen(holder) >= SERVER_TEXT_MAX)
		return admin_usage(cmd, "--holder '%s': expected 1 to 255 characters", holder);
	for (const unsigned char *q = (const unsigned char *)holder; *q;) {
		size_t n = server_utf8_len(q);
		if (n == 0)
			return admin_usage(cmd,
			                   "--holder: byte %zu is not UTF-8 text (names are "
			                   "stored and exported as UTF-8)",
			                   (size_t)(q - (const unsigned char *)holder) + 1);
		q += n;
	}
	return 0;
}

/* What 'pass issue' and 'pass replace' take; -1 after --help. */
static int parse_issue_args(const char *cmd, int argc, char **argv, struct issue_opts *o,
                            const char **right_args, size_t *nra, const char **phone_args,
                            size_t *npa)
{
	static const struct option opts[] = {
	        {"holder", required_argument, NULL, 'H'},
	        {"anonymous", no_argument, NULL, 'A'},
	        {"household", required_argument, NULL, 'F'},
	        {"right", required_argument, NULL, 'r'},
	        {"reader", required_argument, NULL, 'R'},
	        {"phone-key", required_argument, NULL, 'p'},
	        {"out", required_argument, NULL, 'o'},
	        {"reason", required_argument, NULL, 'x'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			o->holder = optarg;
			break;
		case 'A':
			o->anonymous = 1;
			break;
		case 'F':
			o->household = optarg;
			break;
		case 'r':
			if (*nra == MAX_RIGHTS)
				return admin_usage(cmd,
				                   "--right: at most %d rights (one per sector)",
				                   MAX_RIGHTS);
			right_args[(*nra)++] = optarg;
			break;
		case 'R':
			o->reader = optarg;
			break;
		case 'p':
			if (*npa == MAX_PHONES)
				return admin_usage(cmd, "--phone-key: at most %d", MAX_PHONES);
			phone_args[(*npa)++] = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'x':
			o->reason = optarg;
			break;
		case 'h':
			fputs(admin_pass_help, stdout);
			return -1;
		default:
			if (optopt)
				return admin_usage(cmd, "option '-%c' is not known", optopt);
			return admin_usage(cmd, "option '%s' is not known or lacks its value",
			                   argv[optind - 1]);
		}
	}
	return 0;
}

static int parse_issue(struct admin *a, const char *cmd, int argc, char **argv,
                       struct issue_opts *o, int replace, const char **id_arg)
{
	const char *right_args[MAX_RIGHTS + 1], *phone_args[MAX_PHONES + 1];
	size_t nra = 0, npa = 0;
	int rc = parse_issue_args(cmd, argc, argv, o, right_args, &nra, phone_args, &npa);
	if (rc)
		return rc;
	if (replace) {
		if (optind >= argc)
			return admin_usage(cmd, "missing the pass ID");
		*id_arg = argv[optind++];
		if (o->holder || o->anonymous || o->household || nra)
			return admin_usage(cmd, "a replacement keeps the holder, household and "
			                        "rights: give none of --holder, --anonymous, "
			                        "--household, --right");
	} else {
		if (o->reason)
			return admin_usage(cmd, "--reason is for revoke and replace");
		if (!o->holder && !o->anonymous)
			return admin_usage(cmd, "give --holder NAME or --anonymous");
		if (o->holder && o->anonymous)
			return admin_usage(cmd, "--holder '%s' and --anonymous exclude each other",
			                   o->holder);
		if (o->holder && (rc = check_holder(cmd, o->holder)) != 0)
			return rc;
	}
	if (optind < argc)
		return admin_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (o->reader && npa)
		return admin_usage(cmd, "--reader and --phone-key exclude each other (one medium "
		                        "per pass)");
	if (npa && !o->out)
		return admin_usage(cmd, "--phone-key needs --out DIR for the credentials");
	if (o->out && !npa)
		return admin_usage(cmd, "--out '%s' is only for --phone-key", o->out);
	if ((rc = admin_open(a)) != 0)
		return rc;
	for (size_t i = 0; i < nra; i++) {
		if ((rc = parse_right(a, cmd, right_args[i], &o->rights[i])) != 0)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (o->rights[j].sector == o->rights[i].sector)
				return admin_usage(cmd,
				                   "--right '%s': a pass holds one right per "
				                   "sector, and this sector has one already",
				                   right_args[i]);
	}
	o->n_rights = nra;
	for (size_t i = 0; i < npa; i++) {
		if ((rc = parse_phone_key(a, cmd, phone_args[i], &o->phones[i])) != 0)
			return rc;
		if (access(o->phones[i].pem_path, R_OK) != 0)
			return admin_usage(cmd, "--phone-key '%s': cannot read '%s': %s",
			                   phone_args[i], o->phones[i].pem_path, strerror(errno));
	}
	o->n_phones = npa;
	return 0;
}

/* The medium of an issue: the reader opened (the refusal printed when it cannot be). */
static int open_medium(const struct issue_opts *o, struct server_pass_medium *m)
{
	memset(m, 0, sizeof(*m));
	m->phones = o->phones;
	m->n_phones = o->n_phones;
	m->out_dir = o->out;
	m->reader_name = o->reader;
	if (!o->reader)
		return 0;
	int rc = cardlib_nfc_open(&m->reader, o->reader);
	if (rc)
		return admin_refuse("card not issued at reader '%s': %s", o->reader,
		                    cardlib_strerror(rc));
	return 0;
}

/* What an issue or a replacement made, printed. */
static void print_issued(struct admin *a, const struct server_pass_medium *m,
                         const struct server_issued *r)
{
	if (r->card_retaken)
		fprintf(stderr, "the card held no pass of this deployment (an interrupted issue): "
		                "it was taken back and issued again\n");
	if (m->reader)
		admin_reader_cost(m->reader, "card issued");
	for (size_t i = 0; i < m->n_phones; i++) {
		char sec[SERVER_NAME_MAX];
		server_sector_name(&a->st, m->phones[i].sector, sec, sizeof(sec));
		printf("credential for sector %s: %s/sector-%u.cred\n", sec, m->out_dir,
		       m->phones[i].sector);
	}
}

int admin_pass_issue(struct admin *a, int argc, char **argv)
{
	struct issue_opts o;
	struct server_pass_medium m;
	struct server_issued r;
	struct server_why why;
	memset(&o, 0, sizeof(o));
	int rc = parse_issue(a, "pass issue ", argc, argv, &o, 0, NULL);
	if (rc)
		return rc < 0 ? 0 : rc;
	struct server_pass_order order = {.holder = o.holder,
	                                  .household = o.household,
	                                  .rights = o.rights,
	                                  .n_rights = o.n_rights};
	if ((rc = open_medium(&o, &m)) == 0) {
		order.medium = m;
		rc = server_pass_issue(&a->desk, &order, &r, &why);
		if (rc)
			admin_refuse("%s", why.text);
		else
			print_issued(a, &m, &r);
		rc = rc ? EXIT_REFUSED : 0;
	}
	cardlib_reader_free(m.reader);
	if (rc) {
		fprintf(stderr, "citypass-admin: the pass was not issued\n");
		return rc;
	}
	printf("pass %" PRId64 " issued (%s)\n", r.pass.id, r.pass.medium);
	return admin_publish_changed(a, &r.changed);
}

int admin_pass_replace(struct admin *a, int argc, char **argv)
{
	struct issue_opts o;
	struct server_pass_medium m;
	struct server_issued r;
	struct server_why why;
	const char *id_arg = NULL;
	int64_t id = 0;
	memset(&o, 0, sizeof(o));
	int rc = parse_issue(a, "pass replace ", argc, argv, &o, 1, &id_arg);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = parse_pass_id("pass replace ", id_arg, &id)) != 0)
		return rc;
	struct server_pass old;
	/* a pass that cannot be replaced is refused before the reader is opened */
	if (server_pass_read(&a->desk, id, &old, &why) != 0)
		return admin_refuse("%s", why.text);
	if ((rc = open_medium(&o, &m)) == 0) {
		rc = server_pass_replace(&a->desk, id, o.reason, &m, &r, &why);
		if (rc)
			admin_refuse("%s", why.text);
		else
			print_issued(a, &m, &r);
		rc = rc ? EXIT_REFUSED : 0;
	}
	cardlib_reader_free(m.reader);
	if (rc) {
		fprintf(stderr, "citypass-admin: pass %" PRId64 " was not replaced\n", id);
		return rc;
	}
	printf("pass %" PRId64 " replaced by pass %" PRId64 " (%s)\n", id, r.pass.id,
	       r.pass.medium);
	return admin_publish_changed(a, &r.changed);
}

/* --- show / list / revoke ------------------------------------------------------------------ */

static void print_right_json(struct admin *a, const struct server_right *r, int first)
{
	char sec[SERVER_NAME_MAX], hex[17] = "", d[256];
	uint8_t key[PROTO_LIST_KEY_LEN];
	server_sector_name(&a->st, r->sector, sec, sizeof(sec));
	if (a->st.ops->pass_id_get(a->st.ctx, r->pass, r->sector, NULL, key) == 0)
		admin_hex(key, sizeof(key), hex);
	server_right_describe(&r->p, d, sizeof(d));
	printf("%s{\"sector\":", first ? "" : ",");
	admin_json_string(stdout, sec);
	printf(",\"product\":%u,\"valid_from_day\":%u,\"valid_to_day\":%u,"
	       "\"limit\":%u,\"period\":%u,\"scope\":%u,\"fare\":%u,"
	       "\"entries_on_card\":%s,\"list_key\":\"%s\",\"text\":",
	       r->p.product, r->p.valid_from, r->p.valid_to, r->p.limit, r->p.period, r->p.scope,
	       r->p.fare, r->p.flags & 1 ? "true" : "false", hex);
	admin_json_string(stdout, d);
	printf("}");
}

static void print_pass_json(struct admin *a, const struct server_pass *p, int with_rights)
{
	printf("{\"id\":%" PRId64 ",\"holder\":", p->id);
	if (p->holder[0])
		admin_json_string(stdout, p->holder);
	else
		printf("null");
	printf(",\"household\":");
	if (p->household)
		printf("%" PRId64, p->household);
	else
		printf("null");
	printf(",\"state\":\"%s\",\"reason\":", server_pass_state_name(p->state));
	admin_json_string(stdout, p->reason);
	printf(",\"medium\":");
	admin_json_string(stdout, p->medium);
	printf(",\"created\":%" PRId64, p->created);
	if (p->replaced_by)
		printf(",\"replaced_by\":%" PRId64, p->replaced_by);
	if (with_rights) {
		struct server_right *r = NULL;
		size_t n = 0;
		printf(",\"rights\":[");
		if (a->st.ops->rights_of_pass(a->st.ctx, p->id, &r, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				print_right_json(a, &r[i], i == 0);
			free(r);
		}
		printf("]");
	}
	printf("}");
}

static void print_pass_text(struct admin *a, const struct server_pass *p,
                            const struct server_right *r, size_t n)
{
	printf("pass %" PRId64 "\nholder: %s\n", p->id, p->holder[0] ? p->holder : "(anonymous)");
	if (p->household)
		printf("household: %" PRId64 "\n", p->household);
	printf("state: %s%s%s\n", server_pass_state_name(p->state), p->reason[0] ? " - " : "",
	       p->reason);
	if (p->replaced_by)
		printf("replaced by: pass %" PRId64 "\n", p->replaced_by);
	printf("medium: %s\n", p->medium);
	printf("rights:%s\n", n ? "" : " none");
	for (size_t i = 0; i < n; i++) {
		char sec[SERVER_NAME_MAX], hex[17] = "?", d[256];
		uint8_t key[PROTO_LIST_KEY_LEN];
		server_sector_name(&a->st, r[i].sector, sec, sizeof(sec));
		if (a->st.ops->pass_id_get(a->st.ctx, p->id, r[i].sector, NULL, key) == 0)
			admin_hex(key, sizeof(key), hex);
		server_right_describe(&r[i].p, d, sizeof(d));
		printf("  %-10s %s (list key %s)\n", sec, d, hex);
	}
}

int admin_pass_show(struct admin *a, int argc, char **argv)
{
	int json = 0;
	const char *id_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(admin_pass_help, stdout);
			return 0;
		} else if (!id_arg && argv[i][0] != '-') {
			id_arg = argv[i];
		} else {
			return admin_usage("pass show ", "unexpected argument '%s'", argv[i]);
		}
	}
	int64_t id = 0;
	int rc;
	struct server_why why;
	if (!id_arg)
		return admin_usage("pass show ", "missing the pass ID");
	if ((rc = parse_pass_id("pass show ", id_arg, &id)) != 0)
		return rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct server_pass p;
	if (server_pass_read(&a->desk, id, &p, &why) != 0)
		return admin_refuse("%s", why.text);
	if (json) {
		print_pass_json(a, &p, 1);
		printf("\n");
		return 0;
	}
	struct server_right *r = NULL;
	size_t n = 0;
	if (a->st.ops->rights_of_pass(a->st.ctx, p.id, &r, &n) != 0)
		return admin_refuse("cannot read the rights of pass %" PRId64, id);
	print_pass_text(a, &p, r, n);
	free(r);
	return 0;
}

struct list_ctx {
	struct admin *a;
	int json;
	size_t n;
};

static int list_one(void *arg, const struct server_pass *p)
{
	struct list_ctx *c = arg;
	if (c->json) {
		printf("%s", c->n ? "," : "");
		print_pass_json(c->a, p, 0);
	} else {
		char hh[32] = "";
		if (p->household)
			snprintf(hh, sizeof(hh), "household %" PRId64, p->household);
		printf("%-8" PRId64 " %-10s %-6s %-24s %s\n", p->id,
		       server_pass_state_name(p->state), p->medium,
		       p->holder[0] ? p->holder : "(anonymous)", hh);
	}
	c->n++;
	return 0;
}

int admin_pass_list(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"holder", required_argument, NULL, 'H'},
	        {"household", required_argument, NULL, 'F'},
	        {"state", required_argument, NULL, 's'},
	        {"sector", required_argument, NULL, 'S'},
	        {"json", no_argument, NULL, 'j'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct server_pass_filter f = {NULL, 0, -1, -1};
	const char *household = NULL, *sector = NULL;
	int json = 0, c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			f.holder = optarg;
			break;
		case 'F':
			household = optarg;
			break;
		case 's':
			f.state = server_pass_state_parse(optarg);
			if (f.state < 0)
				return admin_usage("pass list ",
				                   "--state '%s': expected active, "
				                   "revoked, replaced or suspended",
				                   optarg);
			break;
		case 'S':
			sector = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(admin_pass_help, stdout);
			return 0;
		default:
			return admin_usage("pass list ",
			                   "option '%s' is not known or lacks its value",
			                   argv[optind - 1]);
		}
	}
	if (optind < argc)
		return admin_usage("pass list ", "unexpected argument '%s'", argv[optind]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	if (household && a->st.ops->household_find(a->st.ctx, household, &f.household) != 0)
		return admin_refuse("--household '%s': no such household", household);
	if (sector) {
		struct server_sector s;
		if (server_sector_find(&a->st, sector, &s) != 0)
			return admin_usage("pass list ", "--sector '%s': no such sector", sector);
		f.sector = s.number;
	}
	struct list_ctx lc = {a, json, 0};
	if (json)
		printf("[");
	rc = a->st.ops->pass_each(a->st.ctx, &f, list_one, &lc);
	if (json)
		printf("]\n");
	if (rc)
		return admin_refuse("cannot list passes: %s", server_store_strerror(&a->st, rc));
	return 0;
}

int admin_pass_revoke(struct admin *a, int argc, char **argv)
{
	const char *id_arg = NULL, *reason = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
			reason = argv[++i];
		} else if (strncmp(argv[i], "--reason=", 9) == 0) {
			reason = argv[i] + 9;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(admin_pass_help, stdout);
			return 0;
		} else if (!id_arg && argv[i][0] != '-') {
			id_arg = argv[i];
		} else {
			return admin_usage("pass revoke ", "unexpected argument '%s'", argv[i]);
		}
	}
	int64_t id = 0;
	int rc;
	if (!id_arg)
		return admin_usage("pass revoke ", "missing the pass ID");
	if ((rc = parse_pass_id("pass revoke ", id_arg, &id)) != 0)
		return rc;
	if (!reason || !*reason)
		return admin_usage("pass revoke ", "missing --reason TEXT (lost, stolen, moved "
		                                   "away...)");
	if (strlen(reason) >= SERVER_TEXT_MAX)
		return admin_usage("pass revoke ", "--reason: at most 255 characters");
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct server_sector_set changed = {0};
	struct server_why why;
	if (server_pass_revoke(&a->desk, id, reason, &changed, &why) != 0)
		return admin_refuse("%s", why.text);
	printf("pass %" PRId64 " revoked: %s\n", id, reason);
	return admin_publish_changed(a, &changed);
}

/* --- rights grant / revoke ----------------------------------------------------------------- */

/* The arguments of 'rights grant|revoke': ID, then --right SPEC... or --sector S. */
static int rights_args(const char *cmd, int grant, int argc, char **argv, const char **id_arg,
                       const char **specs, size_t *ns, const char **sector)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(admin_rights_help, stdout);
			return -1;
		} else if (grant && strcmp(argv[i], "--right") == 0 && i + 1 < argc) {
			if (*ns == MAX_RIGHTS)
				return admin_usage(cmd, "--right: at most %d", MAX_RIGHTS);
			specs[(*ns)++] = argv[++i];
		} else if (!grant && strcmp(argv[i], "--sector") == 0 && i + 1 < argc) {
			*sector = argv[++i];
		} else if (!*id_arg && argv[i][0] != '-') {
			*id_arg = argv[i];
		} else {
			return admin_usage(cmd, "unexpected argument '%s'", argv[i]);
		}
	}
	if (!*id_arg)
		return admin_usage(cmd, "missing the pass ID");
	if (grant && *ns == 0)
		return admin_usage(cmd, "missing --right SPEC");
	if (!grant && !*sector)
		return admin_usage(cmd, "missing --sector S");
	return 0;
}

static int rights_change(struct admin *a, int argc, char **argv, int grant)
{
	const char *cmd = grant ? "rights grant " : "rights revoke ";
	const char *id_arg = NULL, *sector = NULL, *specs[MAX_RIGHTS];
	size_t ns = 0;
	int64_t id = 0;
	int rc = rights_args(cmd, grant, argc, argv, &id_arg, specs, &ns, &sector);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = parse_pass_id(cmd, id_arg, &id)) != 0)
		return rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct server_right r[MAX_RIGHTS];
	struct server_sector sec;
	for (size_t i = 0; i < ns; i++)
		if ((rc = parse_right(a, cmd, specs[i], &r[i])) != 0)
			return rc;
	if (!grant && server_sector_find(&a->st, sector, &sec) != 0)
		return admin_usage(cmd, "--sector '%s': no such sector", sector);
	struct server_sector_set changed = {0};
	struct server_why why;
	rc = grant ? server_rights_grant(&a->desk, id, r, ns, &changed, &why)
	           : server_rights_withdraw(&a->desk, id, sec.number, &changed, &why);
	if (rc)
		return admin_refuse("%s", why.text);
	if (grant)
		printf("pass %" PRId64 ": %zu right(s) granted\n", id, ns);
	else
		printf("pass %" PRId64 ": right in sector %s revoked\n", id, sec.name);
	return admin_publish_changed(a, &changed);
}

int admin_rights_grant(struct admin *a, int argc, char **argv)
{
	return rights_change(a, argc, argv, 1);
}

int admin_rights_revoke(struct admin *a, int argc, char **argv)
{
	return rights_change(a, argc, argv, 0);
}
