/*
 * admin_pass.c — citypass-admin pass … and rights …: passes, their per-sector identifiers,
 * rights, and the medium that carries them (a card personalised through a reader, or phone
 * credentials). docs/admin.md, "Passes and rights".
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "admin.h"
#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "server/keys.h"

#define MAX_RIGHTS SERVER_CARD_SLOTS
#define MAX_PHONES SERVER_CARD_SLOTS
#define ID_RETRIES 16

static const char pass_help[] =
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
        "the credentials go to DIR/sector-N.cred.\n"
        "STATE: active, revoked, replaced, suspended.\n";

static const char rights_help[] =
        "usage: citypass-admin rights grant ID --right SPEC [--right SPEC]...\n"
        "       citypass-admin rights revoke ID --sector S\n"
        "SPEC as in 'pass issue --help'. A grant replaces the pass's right in that sector.\n";

/* --- rights ------------------------------------------------------------------------------ */

static int parse_period(const char *s, size_t n, uint8_t *period)
{
	static const struct {
		const char *name;
		uint8_t p;
	} t[] = {{"day", PROTO_PERIOD_DAY},
	         {"week", PROTO_PERIOD_WEEK},
	         {"month", PROTO_PERIOD_MONTH},
	         {"year", PROTO_PERIOD_YEAR}};
	for (size_t i = 0; i < 4; i++)
		if (strlen(t[i].name) == n && strncmp(s, t[i].name, n) == 0) {
			*period = t[i].p;
			return 0;
		}
	return -1;
}

__attribute__((format(printf, 3, 4))) static int right_error(char *err, size_t cap, const char *fmt,
                                                             ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

int admin_right_parse(struct admin *a, const char *spec, struct server_right *r, char *err,
                      size_t cap)
{
	char buf[256];
	memset(r, 0, sizeof(*r));
	if (strlen(spec) >= sizeof(buf))
		return right_error(err, cap, "'%s': too long", spec);
	snprintf(buf, sizeof(buf), "%s", spec);
	char *save = NULL, *tok = strtok_r(buf, ",", &save);
	if (!tok)
		return right_error(err, cap, "'%s': expected SECTOR[,KEY=VALUE]...", spec);
	struct server_sector sec;
	if (admin_find_sector(a, tok, &sec) != 0)
		return right_error(err, cap,
		                   "'%s': no such sector '%s' (see 'citypass-admin "
		                   "sector list')",
		                   spec, tok);
	r->sector = sec.number;
	r->p.product = 1;
	r->p.valid_from = PROTO_DAY_UNBOUNDED_FROM;
	r->p.valid_to = PROTO_DAY_UNBOUNDED_TO;
	int counters = 0;
	while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
		char *eq = strchr(tok, '=');
		if (!eq)
			return right_error(err, cap, "'%s': '%s' is not KEY=VALUE", spec, tok);
		*eq = 0;
		const char *k = tok, *v = eq + 1;
		uint64_t n;
		int64_t day;
		if (strcmp(k, "product") == 0) {
			if (admin_parse_u64(v, 65535, &n) || n == 0)
				return right_error(err, cap,
				                   "'%s': product '%s': expected a "
				                   "number from 1 to 65535",
				                   spec, v);
			r->p.product = (uint16_t)n;
		} else if (strcmp(k, "from") == 0 || strcmp(k, "to") == 0) {
			if (admin_parse_date(v, &day) || day < 1 || day >= PROTO_DAY_UNBOUNDED_TO)
				return right_error(err, cap,
				                   "'%s': %s '%s': expected a date "
				                   "YYYY-MM-DD",
				                   spec, k, v);
			if (k[0] == 'f')
				r->p.valid_from = (uint16_t)day;
			else
				r->p.valid_to = (uint16_t)day;
		} else if (strcmp(k, "entries") == 0) {
			if (admin_parse_u64(v, 255, &n) || n == 0)
				return right_error(err, cap,
				                   "'%s': entries '%s': expected a "
				                   "number from 1 to 255",
				                   spec, v);
			r->p.limit = (uint8_t)n;
			r->p.period = PROTO_PERIOD_LIFETIME;
			counters++;
		} else if (strcmp(k, "quota") == 0) {
			char q[64];
			snprintf(q, sizeof(q), "%s", v);
			char *s1 = strchr(q, '/');
			char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
			if (s1)
				*s1 = 0;
			size_t plen = s1 ? (s2 ? (size_t)(s2 - s1 - 1) : strlen(s1 + 1)) : 0;
			if (!s1 || admin_parse_u64(q, 255, &n) || n == 0 ||
			    parse_period(s1 + 1, plen, &r->p.period) ||
			    (s2 && strcmp(s2 + 1, "household") != 0 && strcmp(s2 + 1, "pass") != 0))
				return right_error(err, cap,
				                   "'%s': quota '%s': expected "
				                   "N/day|week|month|year[/household] with N "
				                   "from 1 to 255",
				                   spec, v);
			r->p.limit = (uint8_t)n;
			r->p.scope = s2 && strcmp(s2 + 1, "household") == 0 ? PROTO_SCOPE_HOUSEHOLD
			                                                    : PROTO_SCOPE_PASS;
			counters++;
		} else if (strcmp(k, "fare") == 0) {
			static const char *const fares[] = {"standard", "resident", "concession",
			                                    "free"};
			int f = -1;
			for (int i = 0; i < 4; i++)
				if (strcmp(v, fares[i]) == 0)
					f = i;
			if (f < 0)
				return right_error(err, cap,
				                   "'%s': fare '%s': expected standard, "
				                   "resident, concession or free",
				                   spec, v);
			r->p.fare = (uint8_t)f;
		} else {
			return right_error(err, cap,
			                   "'%s': unknown key '%s' (expected product, "
			                   "from, to, entries, quota, fare)",
			                   spec, k);
		}
	}
	if (counters > 1)
		return right_error(err, cap, "'%s': give entries or quota, not both", spec);
	if (r->p.valid_from != PROTO_DAY_UNBOUNDED_FROM &&
	    r->p.valid_to != PROTO_DAY_UNBOUNDED_TO && r->p.valid_from > r->p.valid_to)
		return right_error(err, cap, "'%s': from is after to", spec);
	return 0;
}

/* One --right SPEC; prints the usage error itself and returns EXIT_USAGE. */
static int parse_right(struct admin *a, const char *cmd, const char *spec, struct server_right *r)
{
	char err[512];
	if (admin_right_parse(a, spec, r, err, sizeof(err)) != 0)
		return admin_usage(cmd, "--right %s", err);
	return 0;
}

static void describe_right(const struct proto_rights_profile *p, char *out, size_t cap)
{
	static const char *const periods[] = {"", "lifetime", "day", "week", "month", "year"};
	static const char *const fares[] = {"standard", "resident", "concession", "free"};
	size_t off = (size_t)snprintf(out, cap, "product %u", p->product);
	char d[16];
	if (p->valid_from != PROTO_DAY_UNBOUNDED_FROM || p->valid_to != PROTO_DAY_UNBOUNDED_TO) {
		time_t t = (time_t)p->valid_from * 86400;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(d, sizeof(d), "%Y-%m-%d", &tm);
		off += (size_t)snprintf(out + off, cap - off, ", from %s",
		                        p->valid_from ? d : "(any)");
		t = (time_t)p->valid_to * 86400;
		gmtime_r(&t, &tm);
		strftime(d, sizeof(d), "%Y-%m-%d", &tm);
		off += (size_t)snprintf(out + off, cap - off, " to %s",
		                        p->valid_to != PROTO_DAY_UNBOUNDED_TO ? d : "(any)");
	}
	if (p->period == PROTO_PERIOD_LIFETIME)
		off += (size_t)snprintf(out + off, cap - off, ", %u entries%s", p->limit,
		                        p->flags & PROTO_PROFILE_ENTRIES_ON_CARD ? " on the card"
		                                                                 : "");
	else if (p->period >= PROTO_PERIOD_DAY && p->period <= PROTO_PERIOD_YEAR)
		off += (size_t)snprintf(out + off, cap - off, ", quota %u per %s per %s", p->limit,
		                        periods[p->period],
		                        p->scope == PROTO_SCOPE_HOUSEHOLD ? "household" : "pass");
	snprintf(out + off, cap - off, ", fare %s", fares[p->fare & 3]);
}

/* --- identifiers and households ---------------------------------------------------------- */

static int random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Random bytes from a pool drawn 4 KiB at a time (an import draws millions of ids). */
static int pooled_random(void *buf, size_t n)
{
	static uint8_t pool[4096];
	static size_t left;
	if (n > sizeof(pool))
		return random_bytes(buf, n);
	if (left < n) {
		if (random_bytes(pool, sizeof(pool)) != 0)
			return -1;
		left = sizeof(pool);
	}
	memcpy(buf, pool + sizeof(pool) - left, n);
	memset(pool + sizeof(pool) - left, 0, n);
	left -= n;
	return 0;
}

int admin_assign_id(struct admin *a, int64_t pass, uint16_t sector)
{
	int rc = SERVER_ERR_EXISTS;
	for (int t = 0; t < ID_RETRIES && rc == SERVER_ERR_EXISTS; t++) {
		uint8_t id[SERVER_PASS_ID_LEN], key[PROTO_LIST_KEY_LEN];
		if (pooled_random(id, sizeof(id)) != 0)
			return SERVER_ERR_CRYPTO;
		proto_list_key(sector, id, sizeof(id), key);
		rc = a->st.ops->pass_id_add(a->st.ctx, pass, sector, id, key);
	}
	return rc;
}

static int assign_ids(struct admin *a, int64_t pass)
{
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = a->st.ops->sector_list(a->st.ctx, &v, &n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = admin_assign_id(a, pass, v[i].number);
	free(v);
	return rc;
}

int admin_household_tag(struct admin *a, int64_t household, uint16_t sector)
{
	uint32_t tag;
	int rc = a->st.ops->household_tag_get(a->st.ctx, household, sector, &tag);
	if (rc != SERVER_ERR_NOT_FOUND)
		return rc;
	rc = SERVER_ERR_EXISTS;
	for (int t = 0; t < ID_RETRIES && rc == SERVER_ERR_EXISTS; t++) {
		if (pooled_random(&tag, sizeof(tag)) != 0)
			return SERVER_ERR_CRYPTO;
		tag &= PROTO_LIST_HOUSEHOLD_MAX;
		if (tag == 0)
			continue;
		rc = a->st.ops->household_tag_add(a->st.ctx, household, sector, tag);
	}
	return rc;
}

static int value_sector(struct admin *a)
{
	char vs[16];
	if (a->st.ops->meta_get(a->st.ctx, "value_sector", vs, sizeof(vs)) != 0)
		return -1;
	return atoi(vs);
}

/* Store rights (one per sector) and publish their sectors. */
static int set_rights(struct admin *a, const struct server_pass *p, struct server_right *r,
                      size_t n)
{
	for (size_t i = 0; i < n; i++) {
		r[i].pass = p->id;
		/* an imported pass has identifiers only in the sectors of its rights
		 * (admin_import.c) */
		int rc = a->st.ops->pass_id_get(a->st.ctx, p->id, r[i].sector, NULL, NULL);
		if (rc == SERVER_ERR_NOT_FOUND)
			rc = admin_assign_id(a, p->id, r[i].sector);
		rc = rc ? rc : a->st.ops->right_set(a->st.ctx, &r[i]);
		if (rc == 0 && p->household)
			rc = admin_household_tag(a, p->household, r[i].sector);
		if (rc)
			return admin_refuse("cannot store the right in sector %u: %s", r[i].sector,
			                    server_strerror(rc));
	}
	return 0;
}

static int publish_rights_of(struct admin *a, int64_t pass)
{
	struct server_right *r = NULL;
	size_t n = 0;
	int rc = a->st.ops->rights_of_pass(a->st.ctx, pass, &r, &n);
	if (rc)
		return admin_refuse("cannot read the rights of pass %" PRId64 ": %s", pass,
		                    server_strerror(rc));
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = admin_publish(a, r[i].sector, NULL);
	free(r);
	return rc;
}

/* --- media: card and phone ---------------------------------------------------------------- */

/* The card: entries on its value file come from the value sector's right, when the card
 * carries them (mark_card_entries); the card work is admin_card.c's. */
static int personalise_card(struct admin *a, int64_t pass, const char *conn,
                            const struct server_right *r, size_t nr)
{
	int32_t entries = 0;
	const int vsec = value_sector(a);
	for (size_t j = 0; j < nr; j++)
		if (r[j].sector == vsec && (r[j].p.flags & PROTO_PROFILE_ENTRIES_ON_CARD))
			entries = r[j].p.limit;
	return admin_card_issue(a, pass, conn, entries);
}

struct phone_req {
	struct server_sector sector;
	const char *file;
};

static int parse_phone_key(struct admin *a, const char *cmd, const char *arg, struct phone_req *p)
{
	const char *eq = strchr(arg, '=');
	char name[SERVER_NAME_MAX];
	if (!eq) {
		/* A bare FILE named as citypass-token names requests: sector-N.request.pem */
		const char *base = strrchr(arg, '/');
		unsigned num;
		int end = 0;
		base = base ? base + 1 : arg;
		if (sscanf(base, "sector-%5u.request.pem%n", &num, &end) == 1 && base[end] == 0 &&
		    num <= UINT16_MAX) {
			snprintf(name, sizeof(name), "%u", num);
			if (admin_find_sector(a, name, &p->sector) != 0)
				return admin_usage(cmd, "--phone-key '%s': no sector number %u",
				                   arg, num);
			p->file = arg;
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
	if (admin_find_sector(a, name, &p->sector) != 0)
		return admin_usage(cmd, "--phone-key '%s': no such sector '%s'", arg, name);
	p->file = eq + 1;
	return 0;
}

/* Issue and write the credentials; on failure removes what it wrote. */
static int issue_credentials(struct admin *a, int64_t pass, const struct phone_req *pr, size_t n,
                             const char *out)
{
	char path[PATH_MAX];
	struct proto_key *issuer = NULL;
	char written[MAX_PHONES][PATH_MAX];
	size_t nw = 0;
	int64_t now;
	admin_now(&now);
	char buf[32];
	int64_t days = 365;
	if (a->st.ops->meta_get(a->st.ctx, "credential_days", buf, sizeof(buf)) == 0)
		days = strtoll(buf, NULL, 10);
	/* Whole days (UTC): a validity period is then a cohort, not a link between sectors
	 * (docs/phone-tokens.md, s.5). */
	int64_t from = now - now % 86400, until = from + days * 86400;
	server_key_path(path, sizeof(path), a->data, "issuer.key");
	int rc = proto_key_load(&issuer, path);
	if (rc)
		return admin_refuse("cannot load the issuer key: %s", proto_strerror(rc));
	int made_out = mkdir(out, 0700) == 0;
	if (!made_out && errno != EEXIST) {
		proto_key_free(issuer);
		return admin_refuse("cannot create --out '%s': %s", out, strerror(errno));
	}
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct proto_key *phone = NULL;
		uint8_t id[SERVER_PASS_ID_LEN], cred[CARDLIB_TOKEN_CRED_MAX];
		rc = proto_key_load(&phone, pr[i].file);
		if (rc) {
			ret = admin_refuse("--phone-key '%s': not a P-256 public key PEM: %s",
			                   pr[i].file, proto_strerror(rc));
			break;
		}
		int len = a->st.ops->pass_id_get(a->st.ctx, pass, pr[i].sector.number, id, NULL);
		if (len == 0)
			len = cardlib_token_issue(issuer, pr[i].sector.number, id, phone, from,
			                          until, cred, sizeof(cred));
		proto_key_free(phone);
		mbedtls_platform_zeroize(id, sizeof(id));
		if (len < 0) {
			ret = admin_refuse("cannot issue the credential of sector %s: %s",
			                   pr[i].sector.name, cardlib_strerror(len));
			break;
		}
		snprintf(written[nw], PATH_MAX, "%s/sector-%u.cred", out, pr[i].sector.number);
		rc = server_file_create(written[nw], cred, (size_t)len, 0600);
		if (rc) {
			ret = admin_refuse("cannot write '%s': %s", written[nw],
			                   rc == SERVER_ERR_EXISTS ? "it exists"
			                                           : server_strerror(rc));
			break;
		}
		nw++;
	}
	proto_key_free(issuer);
	if (ret) {
		for (size_t i = 0; i < nw; i++)
			unlink(written[i]);
		if (made_out) /* nothing of a refused issue is left behind (issue 10) */
			rmdir(out);
		return ret;
	}
	for (size_t i = 0; i < nw; i++)
		printf("credential for sector %s: %s\n", pr[i].sector.name, written[i]);
	return 0;
}

/* --- pass issue / replace ------------------------------------------------------------------ */

struct issue_opts {
	const char *holder, *household, *reader, *out, *reason;
	int anonymous;
	struct server_right rights[MAX_RIGHTS];
	size_t n_rights;
	struct phone_req phones[MAX_PHONES];
	size_t n_phones;
	int64_t counters_from; /* pass replace: the old pass, whose counted uses carry over */
};

static int parse_issue(struct admin *a, const char *cmd, int argc, char **argv,
                       struct issue_opts *o, int replace, const char **id_arg)
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
	const char *right_args[MAX_RIGHTS + 1], *phone_args[MAX_PHONES + 1];
	size_t nra = 0, npa = 0;
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
			if (nra == MAX_RIGHTS)
				return admin_usage(cmd,
				                   "--right: at most %d rights (one per sector)",
				                   MAX_RIGHTS);
			right_args[nra++] = optarg;
			break;
		case 'R':
			o->reader = optarg;
			break;
		case 'p':
			if (npa == MAX_PHONES)
				return admin_usage(cmd, "--phone-key: at most %d", MAX_PHONES);
			phone_args[npa++] = optarg;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'x':
			o->reason = optarg;
			break;
		case 'h':
			fputs(pass_help, stdout);
			return -1;
		default:
			if (optopt)
				return admin_usage(cmd, "option '-%c' is not known", optopt);
			return admin_usage(cmd, "option '%s' is not known or lacks its value",
			                   argv[optind - 1]);
		}
	}
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
		if (o->holder && (!*o->holder || strlen(o->holder) >= SERVER_TEXT_MAX))
			return admin_usage(cmd, "--holder '%s': expected 1 to 255 characters",
			                   o->holder);
		for (const unsigned char *q = (const unsigned char *)(o->holder ? o->holder : "");
		     *q;) {
			size_t n = admin_utf8_len(q);
			if (n == 0)
				return admin_usage(
				        cmd,
				        "--holder: byte %zu is not UTF-8 text (names are "
				        "stored and exported as UTF-8)",
				        (size_t)(q - (const unsigned char *)o->holder) + 1);
			q += n;
		}
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
	int rc = admin_open(a);
	if (rc)
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
		if (access(o->phones[i].file, R_OK) != 0)
			return admin_usage(cmd, "--phone-key '%s': cannot read '%s': %s",
			                   phone_args[i], o->phones[i].file, strerror(errno));
	}
	o->n_phones = npa;
	return 0;
}

/* Entries on the card for a card issued in the value sector. */
static void mark_card_entries(struct admin *a, struct server_right *r, size_t n, int card)
{
	int vs = value_sector(a);
	for (size_t i = 0; i < n; i++) {
		r[i].p.flags &= (uint8_t)~PROTO_PROFILE_ENTRIES_ON_CARD;
		if (card && vs >= 0 && r[i].sector == vs && r[i].p.period == PROTO_PERIOD_LIFETIME)
			r[i].p.flags |= PROTO_PROFILE_ENTRIES_ON_CARD;
	}
}

/* A replacement keeps the uses already counted: per sector, the old card's counted uses
 * (consumption rows under its list key) move to the new card's list key, so a per-pass
 * quota or phone-entry counter does not restart at zero. */
static int carry_counters(struct admin *a, int64_t from, int64_t to, const struct issue_opts *o)
{
	for (size_t i = 0; i < o->n_rights; i++) {
		uint8_t old_key[PROTO_LIST_KEY_LEN], new_key[PROTO_LIST_KEY_LEN];
		const uint16_t sector = o->rights[i].sector;
		if (a->st.ops->pass_id_get(a->st.ctx, from, sector, NULL, old_key) != 0)
			continue; /* the old pass had no identifier in this sector */
		int rc = a->st.ops->pass_id_get(a->st.ctx, to, sector, NULL, new_key);
		if (rc == 0)
			rc = a->st.ops->consumption_rekey(a->st.ctx, sector, old_key, new_key);
		if (rc)
			return admin_refuse("cannot carry the counters of pass %" PRId64 ": %s",
			                    from, server_strerror(rc));
	}
	return 0;
}

/* Everything after the pass row exists: identifiers, rights, medium, lists. */
static int finish_pass(struct admin *a, struct server_pass *p, struct issue_opts *o)
{
	int rc = assign_ids(a, p->id);
	if (rc)
		return admin_refuse("cannot draw the pass's identifiers: %s", server_strerror(rc));
	mark_card_entries(a, o->rights, o->n_rights, o->reader != NULL);
	if ((rc = set_rights(a, p, o->rights, o->n_rights)) != 0)
		return rc;
	if (o->counters_from && (rc = carry_counters(a, o->counters_from, p->id, o)) != 0)
		return rc;
	if (o->reader && (rc = personalise_card(a, p->id, o->reader, o->rights, o->n_rights)) != 0)
		return rc;
	if (o->n_phones && (rc = issue_credentials(a, p->id, o->phones, o->n_phones, o->out)) != 0)
		return rc;
	return 0;
}

static int pass_issue(struct admin *a, int argc, char **argv)
{
	struct issue_opts o;
	memset(&o, 0, sizeof(o));
	int rc = parse_issue(a, "pass issue ", argc, argv, &o, 0, NULL);
	if (rc)
		return rc < 0 ? 0 : rc;
	struct server_pass p;
	memset(&p, 0, sizeof(p));
	if (o.holder)
		snprintf(p.holder, sizeof(p.holder), "%s", o.holder);
	if (o.household && a->st.ops->household_find(a->st.ctx, o.household, &p.household) != 0)
		return admin_refuse("--household '%s': no such household (create it with "
		                    "'citypass-admin household add')",
		                    o.household);
	p.state = SERVER_PASS_ACTIVE;
	snprintf(p.medium, sizeof(p.medium), "%s",
	         o.reader     ? "card"
	         : o.n_phones ? "phone"
	                      : "none");
	admin_now(&p.created);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->pass_add(a->st.ctx, &p);
	if (rc) {
		admin_rollback(a);
		return admin_refuse("cannot create the pass: %s", server_strerror(rc));
	}
	rc = finish_pass(a, &p, &o);
	if (rc == 0)
		rc = admin_commit(a);
	else
		admin_rollback(a);
	if (rc) {
		fprintf(stderr, "citypass-admin: the pass was not issued\n");
		return rc;
	}
	printf("pass %" PRId64 " issued (%s)\n", p.id, p.medium);
	return publish_rights_of(a, p.id);
}

static int parse_pass_id(const char *cmd, const char *s, int64_t *id)
{
	uint64_t v;
	if (admin_parse_u64(s, INT64_MAX, &v) || v == 0)
		return admin_usage(cmd, "pass ID '%s': expected a pass number, 1 or more", s);
	*id = (int64_t)v;
	return 0;
}

static int load_pass(struct admin *a, int64_t id, struct server_pass *p)
{
	int rc = a->st.ops->pass_get(a->st.ctx, id, p);
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("pass %" PRId64 ": no such pass", id);
	if (rc)
		return admin_refuse("cannot read pass %" PRId64 ": %s", id, server_strerror(rc));
	return 0;
}

static int pass_replace(struct admin *a, int argc, char **argv)
{
	struct issue_opts o;
	const char *id_arg = NULL;
	int64_t id = 0;
	memset(&o, 0, sizeof(o));
	int rc = parse_issue(a, "pass replace ", argc, argv, &o, 1, &id_arg);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = parse_pass_id("pass replace ", id_arg, &id)) != 0)
		return rc;
	struct server_pass old, p;
	if ((rc = load_pass(a, id, &old)) != 0)
		return rc;
	/* A lost card is revoked at once and replaced when the citizen comes to the desk: a
	 * revoked pass can be replaced, a replaced one cannot (its rights moved already). */
	if (old.state == SERVER_PASS_REPLACED)
		return admin_refuse("pass %" PRId64 " is already replaced (by pass %" PRId64
		                    "): replace that one",
		                    id, old.replaced_by);
	struct server_right *r = NULL;
	size_t nr = 0;
	if ((rc = a->st.ops->rights_of_pass(a->st.ctx, id, &r, &nr)) != 0)
		return admin_refuse("cannot read the rights of pass %" PRId64, id);
	for (size_t i = 0; i < nr && i < MAX_RIGHTS; i++)
		o.rights[i] = r[i];
	o.n_rights = nr < MAX_RIGHTS ? nr : MAX_RIGHTS;
	free(r);
	o.counters_from = id;
	p = old;
	p.id = 0;
	p.replaced_by = 0;
	if (p.state == SERVER_PASS_REVOKED) /* the old card was blocked; the new one is good */
		p.state = SERVER_PASS_ACTIVE;
	p.reason[0] = 0;
	snprintf(p.medium, sizeof(p.medium), "%s",
	         o.reader     ? "card"
	         : o.n_phones ? "phone"
	                      : "none");
	admin_now(&p.created);
	/* One transaction: the new pass, its rights, and the old one marked replaced. */
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->pass_add(a->st.ctx, &p);
	if (rc == 0) {
		old.state = SERVER_PASS_REPLACED;
		old.replaced_by = p.id;
		snprintf(old.reason, sizeof(old.reason), "%s", o.reason ? o.reason : "replaced");
		rc = a->st.ops->pass_update(a->st.ctx, &old);
	}
	if (rc) {
		admin_rollback(a);
		return admin_refuse("cannot replace pass %" PRId64 ": %s", id, server_strerror(rc));
	}
	rc = finish_pass(a, &p, &o);
	if (rc == 0)
		rc = admin_commit(a);
	else
		admin_rollback(a);
	if (rc) {
		fprintf(stderr, "citypass-admin: pass %" PRId64 " was not replaced\n", id);
		return rc;
	}
	printf("pass %" PRId64 " replaced by pass %" PRId64 " (%s)\n", id, p.id, p.medium);
	return publish_rights_of(a, p.id);
}

/* --- show / list / revoke ------------------------------------------------------------------ */

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
	printf(",\"state\":\"%s\",\"reason\":", admin_state_name(p->state));
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
			for (size_t i = 0; i < n; i++) {
				char sec[SERVER_NAME_MAX], hex[17] = "", d[256];
				uint8_t key[PROTO_LIST_KEY_LEN];
				admin_sector_name(a, r[i].sector, sec, sizeof(sec));
				if (a->st.ops->pass_id_get(a->st.ctx, p->id, r[i].sector, NULL,
				                           key) == 0)
					admin_hex(key, sizeof(key), hex);
				describe_right(&r[i].p, d, sizeof(d));
				printf("%s{\"sector\":", i ? "," : "");
				admin_json_string(stdout, sec);
				printf(",\"product\":%u,\"valid_from_day\":%u,\"valid_to_day\":%u,"
				       "\"limit\":%u,\"period\":%u,\"scope\":%u,\"fare\":%u,"
				       "\"entries_on_card\":%s,\"list_key\":\"%s\",\"text\":",
				       r[i].p.product, r[i].p.valid_from, r[i].p.valid_to,
				       r[i].p.limit, r[i].p.period, r[i].p.scope, r[i].p.fare,
				       r[i].p.flags & 1 ? "true" : "false", hex);
				admin_json_string(stdout, d);
				printf("}");
			}
			free(r);
		}
		printf("]");
	}
	printf("}");
}

static int pass_show(struct admin *a, int argc, char **argv)
{
	int json = 0;
	const char *id_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(pass_help, stdout);
			return 0;
		} else if (!id_arg && argv[i][0] != '-') {
			id_arg = argv[i];
		} else {
			return admin_usage("pass show ", "unexpected argument '%s'", argv[i]);
		}
	}
	int64_t id = 0;
	int rc;
	if (!id_arg)
		return admin_usage("pass show ", "missing the pass ID");
	if ((rc = parse_pass_id("pass show ", id_arg, &id)) != 0)
		return rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct server_pass p;
	if ((rc = load_pass(a, id, &p)) != 0)
		return rc;
	if (json) {
		print_pass_json(a, &p, 1);
		printf("\n");
		return 0;
	}
	printf("pass %" PRId64 "\nholder: %s\n", p.id, p.holder[0] ? p.holder : "(anonymous)");
	if (p.household)
		printf("household: %" PRId64 "\n", p.household);
	printf("state: %s%s%s\n", admin_state_name(p.state), p.reason[0] ? " - " : "", p.reason);
	if (p.replaced_by)
		printf("replaced by: pass %" PRId64 "\n", p.replaced_by);
	printf("medium: %s\n", p.medium);
	struct server_right *r = NULL;
	size_t n = 0;
	if (a->st.ops->rights_of_pass(a->st.ctx, p.id, &r, &n) != 0)
		return admin_refuse("cannot read the rights of pass %" PRId64, id);
	printf("rights:%s\n", n ? "" : " none");
	for (size_t i = 0; i < n; i++) {
		char sec[SERVER_NAME_MAX], hex[17] = "?", d[256];
		uint8_t key[PROTO_LIST_KEY_LEN];
		admin_sector_name(a, r[i].sector, sec, sizeof(sec));
		if (a->st.ops->pass_id_get(a->st.ctx, p.id, r[i].sector, NULL, key) == 0)
			admin_hex(key, sizeof(key), hex);
		describe_right(&r[i].p, d, sizeof(d));
		printf("  %-10s %s (list key %s)\n", sec, d, hex);
	}
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
		printf("%-8" PRId64 " %-10s %-6s %-24s %s\n", p->id, admin_state_name(p->state),
		       p->medium, p->holder[0] ? p->holder : "(anonymous)", hh);
	}
	c->n++;
	return 0;
}

static int pass_list(struct admin *a, int argc, char **argv)
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
			f.state = admin_state_parse(optarg);
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
			fputs(pass_help, stdout);
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
		if (admin_find_sector(a, sector, &s) != 0)
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
		return admin_refuse("cannot list passes: %s", server_strerror(rc));
	return 0;
}

static int pass_revoke(struct admin *a, int argc, char **argv)
{
	const char *id_arg = NULL, *reason = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc) {
			reason = argv[++i];
		} else if (strncmp(argv[i], "--reason=", 9) == 0) {
			reason = argv[i] + 9;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(pass_help, stdout);
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
	struct server_pass p;
	if ((rc = load_pass(a, id, &p)) != 0)
		return rc;
	if (p.state == SERVER_PASS_REVOKED || p.state == SERVER_PASS_REPLACED)
		return admin_refuse("pass %" PRId64 " is already %s", id,
		                    admin_state_name(p.state));
	p.state = SERVER_PASS_REVOKED;
	snprintf(p.reason, sizeof(p.reason), "%s", reason);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	rc = a->st.ops->pass_update(a->st.ctx, &p);
	if (rc) {
		admin_rollback(a);
		return admin_refuse("cannot revoke pass %" PRId64 ": %s", id, server_strerror(rc));
	}
	if ((rc = admin_commit(a)) != 0)
		return rc;
	printf("pass %" PRId64 " revoked: %s\n", id, reason);
	return publish_rights_of(a, id);
}

int admin_cmd_pass(struct admin *a, int argc, char **argv)
{
	if (argc < 2)
		return admin_usage("pass ", "missing a pass command (issue, show, list, revoke, "
		                            "replace, import)");
	const char *c = argv[1];
	if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0) {
		fputs(pass_help, stdout);
		return 0;
	}
	if (strcmp(c, "issue") == 0)
		return pass_issue(a, argc - 1, argv + 1);
	if (strcmp(c, "show") == 0)
		return pass_show(a, argc - 1, argv + 1);
	if (strcmp(c, "list") == 0)
		return pass_list(a, argc - 1, argv + 1);
	if (strcmp(c, "revoke") == 0)
		return pass_revoke(a, argc - 1, argv + 1);
	if (strcmp(c, "replace") == 0)
		return pass_replace(a, argc - 1, argv + 1);
	if (strcmp(c, "import") == 0)
		return admin_pass_import(a, argc - 1, argv + 1);
	return admin_usage("pass ",
	                   "unknown pass command '%s' (expected issue, show, list, "
	                   "revoke, replace, import)",
	                   c);
}

/* --- rights grant / revoke ----------------------------------------------------------------- */

int admin_cmd_rights(struct admin *a, int argc, char **argv)
{
	if (argc < 2)
		return admin_usage("rights ", "missing a rights command (grant, revoke)");
	const char *c = argv[1];
	if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0) {
		fputs(rights_help, stdout);
		return 0;
	}
	int grant = strcmp(c, "grant") == 0;
	if (!grant && strcmp(c, "revoke") != 0)
		return admin_usage("rights ",
		                   "unknown rights command '%s' (expected grant or "
		                   "revoke)",
		                   c);
	const char *cmd = grant ? "rights grant " : "rights revoke ";
	const char *id_arg = NULL, *sector = NULL, *specs[MAX_RIGHTS];
	size_t ns = 0;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(rights_help, stdout);
			return 0;
		} else if (grant && strcmp(argv[i], "--right") == 0 && i + 1 < argc) {
			if (ns == MAX_RIGHTS)
				return admin_usage(cmd, "--right: at most %d", MAX_RIGHTS);
			specs[ns++] = argv[++i];
		} else if (!grant && strcmp(argv[i], "--sector") == 0 && i + 1 < argc) {
			sector = argv[++i];
		} else if (!id_arg && argv[i][0] != '-') {
			id_arg = argv[i];
		} else {
			return admin_usage(cmd, "unexpected argument '%s'", argv[i]);
		}
	}
	int64_t id = 0;
	int rc;
	if (!id_arg)
		return admin_usage(cmd, "missing the pass ID");
	if ((rc = parse_pass_id(cmd, id_arg, &id)) != 0)
		return rc;
	if (grant && ns == 0)
		return admin_usage(cmd, "missing --right SPEC");
	if (!grant && !sector)
		return admin_usage(cmd, "missing --sector S");
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct server_right r[MAX_RIGHTS];
	struct server_sector sec;
	for (size_t i = 0; i < ns; i++)
		if ((rc = parse_right(a, cmd, specs[i], &r[i])) != 0)
			return rc;
	if (!grant && admin_find_sector(a, sector, &sec) != 0)
		return admin_usage(cmd, "--sector '%s': no such sector", sector);
	struct server_pass p;
	if ((rc = load_pass(a, id, &p)) != 0)
		return rc;
	if (grant && (p.state == SERVER_PASS_REVOKED || p.state == SERVER_PASS_REPLACED))
		return admin_refuse("pass %" PRId64 " is %s: rights go to an active pass", id,
		                    admin_state_name(p.state));
	/* Entries granted after issue are counted by the server: the card is not rewritten. */
	mark_card_entries(a, r, ns, 0);
	if ((rc = admin_begin(a)) != 0)
		return rc;
	if (grant) {
		rc = set_rights(a, &p, r, ns);
	} else {
		int src = a->st.ops->right_delete(a->st.ctx, id, sec.number);
		if (src == SERVER_ERR_NOT_FOUND)
			rc = admin_refuse("pass %" PRId64 " holds no right in sector %s", id,
			                  sec.name);
		else if (src)
			rc = admin_refuse("cannot revoke the right: %s", server_strerror(src));
	}
	if (rc) {
		admin_rollback(a);
		return rc;
	}
	if ((rc = admin_commit(a)) != 0)
		return rc;
	if (grant)
		printf("pass %" PRId64 ": %zu right(s) granted\n", id, ns);
	else
		printf("pass %" PRId64 ": right in sector %s revoked\n", id, sec.name);
	if (!grant)
		return admin_publish(a, sec.number, NULL);
	for (size_t i = 0; i < ns && rc == 0; i++)
		rc = admin_publish(a, r[i].sector, NULL);
	return rc;
}
