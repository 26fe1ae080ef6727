/*
 * admin_import.c — citypass-admin pass import FILE.csv: passes in bulk, as a town migrating
 * from its current card system brings them (docs/admin.md, "Bulk import").
 *
 * The file is read twice. First every line is checked and nothing is written while one is
 * wrong. Then the passes go in, in transactions that hold the write lock TX_SECONDS at
 * most, their commit included (admin_pace.h: the sync server's ingestion goes on), under
 * one import that keeps them out of lists and of 'pass list' until its last line is in
 * (server/store.h, import_*): the whole file goes in, or nothing shows. Each line has a key
 * (SHA-256 of its id column, or of the file's hash and the line's place in it), so that running the
 * file again, after an interruption or by mistake, creates nothing twice.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "admin_csv.h"
#include "admin_pace.h"
#include "proto/clist.h"
#include "server/keys.h"

#define BATCH (1u << 20) /* lines per transaction at most */
/* and seconds, commit included: the write lock is held that long (admin_pace.h) */
#define TX_SECONDS 0.5
/* Between two transactions the write lock is left free this long, so that a writer waiting
 * for it (the sync server's ingestion, an agent's command: their store tries every
 * millisecond) takes it; the next BEGIN, at once, took it back within microseconds and a
 * waiter could wait 10 s, until a checkpoint happened to leave a gap (1 % of the import's
 * time at 0.5 s a transaction). */
#define GAP_MS      5
#define SHOW_ERRORS 20
#define MEMO_SLOTS  4096u /* distinct rights fields parsed once */
#define MAX_RIGHTS  SERVER_CARD_SLOTS
/* the database pages an import keeps in memory: its inserts land at random places of the
 * identifier indexes, which a small cache writes out again and again */
#define IMPORT_CACHE_MIB 512u
/* and the log it lets grow between two copies into the database (sqlite's default: 4 MiB):
 * a page that many transactions wrote is copied once (at 5 M passes, 1 GiB instead of 256
 * MiB halved the time spent copying) */
#define IMPORT_WAL_MIB 1024u

static const char import_help[] =
        "usage: citypass-admin pass import FILE.csv [--check]\n"
        "Passes in bulk: a header line naming the columns holder, household, rights (and\n"
        "optionally id, the pass's reference in the system it comes from), then one pass a\n"
        "line, fields quoted as RFC 4180 says (\"...\" for a field holding a comma, \"\" for a\n"
        "quote in it). An empty holder makes an anonymous pass; a household is created when\n"
        "it does not exist; rights are --right SPECs ('pass issue --help') separated by ';'.\n"
        "Every line is checked first and the file goes in whole or not at all; running it\n"
        "again creates nothing twice (a line is known by its id, or by its place in the\n"
        "file). The passes await their card or phone ('pass replace ID --reader ...').\n"
        "--check: check the file only.\n";

/* --- the lines ------------------------------------------------------------------------------ */

struct rights_set {
	size_t n;
	struct server_right r[MAX_RIGHTS];
};

struct memo_slot {
	char *field;
	struct rights_set set;
};

struct import {
	struct admin *a;
	const char *file;
	int col_holder, col_household, col_rights, col_id;
	unsigned ncols;
	uint8_t file_sha[32];
	struct memo_slot *memo; /* MEMO_SLOTS, open addressing */
	size_t memo_used;
	unsigned long errors;
	struct server_sector *sectors;
	size_t n_sectors;
	uint32_t *created_in; /* per sector of `sectors`: rights created */
	struct id_seen {
		uint8_t k[12];
		uint32_t line;
	} * ids;
	size_t n_ids, cap_ids;
	char err[600];
};

__attribute__((format(printf, 3, 4))) static void line_error(struct import *im, unsigned long line,
                                                             const char *fmt, ...)
{
	if (++im->errors <= SHOW_ERRORS) {
		char msg[700];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		fprintf(stderr, "citypass-admin: %s line %lu: %s\n", im->file, line, msg);
	}
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* A rights field: SPEC;SPEC;... each in the --right syntax, one per sector. The same field
 * (most lines of a file share a handful) is parsed once. 0, or -1 with im->err. */
static int parse_rights(struct import *im, const char *field, const struct rights_set **out)
{
	size_t slot = (size_t)(fnv(field) % MEMO_SLOTS);
	for (size_t probe = 0; probe < MEMO_SLOTS; probe++) {
		struct memo_slot *m = &im->memo[(slot + probe) % MEMO_SLOTS];
		if (!m->field)
			break;
		if (strcmp(m->field, field) == 0) {
			*out = &m->set;
			return 0;
		}
	}
	static struct rights_set scratch;
	struct rights_set *set = &scratch;
	memset(set, 0, sizeof(*set));
	char buf[ADMIN_CSV_FIELD_MAX + 1];
	snprintf(buf, sizeof(buf), "%s", field);
	char *save = NULL;
	for (char *spec = strtok_r(buf, ";", &save); spec; spec = strtok_r(NULL, ";", &save)) {
		while (*spec == ' ')
			spec++;
		size_t l = strlen(spec);
		while (l > 0 && spec[l - 1] == ' ')
			spec[--l] = 0;
		if (l == 0)
			continue;
		if (set->n == MAX_RIGHTS) {
			snprintf(im->err, sizeof(im->err), "rights: more than %d (one per sector)",
			         MAX_RIGHTS);
			return -1;
		}
		struct server_why why;
		struct server_right *r = &set->r[set->n];
		if (server_right_parse(&im->a->st, spec, r, &why) != 0) {
			snprintf(im->err, sizeof(im->err), "rights %s", why.text);
			return -1;
		}
		r->p.flags &= (uint8_t)~PROTO_PROFILE_ENTRIES_ON_CARD; /* no card yet */
		for (size_t j = 0; j < set->n; j++)
			if (set->r[j].sector == r->sector) {
				snprintf(im->err, sizeof(im->err),
				         "rights '%s': a pass holds one right per sector, and "
				         "sector "
				         "%u has one already on this line",
				         spec, r->sector);
				return -1;
			}
		set->n++;
	}
	*out = set;
	if (im->memo_used * 2 < MEMO_SLOTS) { /* keep it: most files use a few rights fields */
		for (size_t probe = 0;; probe++) {
			struct memo_slot *m = &im->memo[(slot + probe) % MEMO_SLOTS];
			if (m->field)
				continue;
			if ((m->field = strdup(field)) != NULL) {
				m->set = *set;
				*out = &m->set;
				im->memo_used++;
			}
			break;
		}
	}
	return 0;
}

/* Text a person typed: at most 255 bytes of UTF-8 without control characters. */
static const char *text_problem(const char *s)
{
	if (strlen(s) >= SERVER_TEXT_MAX)
		return "expected at most 255 bytes";
	for (const unsigned char *q = (const unsigned char *)s; *q;) {
		if (*q < 0x20 || *q == 0x7f)
			return "holds a control character (a line break, a tab...)";
		size_t n = server_utf8_len(q);
		if (n == 0)
			return "is not UTF-8 text (names are stored and exported as UTF-8)";
		q += n;
	}
	return NULL;
}

/* The key of a pass known by its id: whatever file brings it, it is created once. */
static void id_key(const char *id, uint8_t key[32])
{
	static const char dom[] = "citypass import id";
	mbedtls_sha256_context h;
	mbedtls_sha256_init(&h);
	(void)mbedtls_sha256_starts_ret(&h, 0);
	(void)mbedtls_sha256_update_ret(&h, (const unsigned char *)dom, sizeof(dom));
	(void)mbedtls_sha256_update_ret(&h, (const unsigned char *)id, strlen(id));
	(void)mbedtls_sha256_finish_ret(&h, key);
	mbedtls_sha256_free(&h);
}

static int read_header(struct import *im, struct admin_csv *c)
{
	unsigned long line;
	int rc = admin_csv_record(c, &line);
	if (rc <= 0) {
		if (rc == 0)
			return admin_refuse("%s: empty (expected a header line: holder,household,"
			                    "rights)",
			                    im->file);
		return admin_refuse("%s line %lu: %s", im->file, line, c->err);
	}
	im->col_holder = im->col_household = im->col_rights = im->col_id = -1;
	im->ncols = c->n;
	for (unsigned i = 0; i < c->n; i++) {
		const char *h = admin_csv_field(c, (int)i);
		int *col = strcmp(h, "holder") == 0      ? &im->col_holder
		           : strcmp(h, "household") == 0 ? &im->col_household
		           : strcmp(h, "rights") == 0    ? &im->col_rights
		           : strcmp(h, "id") == 0        ? &im->col_id
		                                         : NULL;
		if (!col)
			return admin_refuse(
			        "%s line %lu: unknown column '%s' in the header "
			        "(expected holder, household, rights and optionally id)",
			        im->file, line, h);
		if (*col >= 0)
			return admin_refuse("%s line %lu: column '%s' appears twice in the header",
			                    im->file, line, h);
		*col = (int)i;
	}
	if (im->col_holder < 0 || im->col_household < 0 || im->col_rights < 0)
		return admin_refuse("%s line %lu: the header must name the columns holder, "
		                    "household and rights",
		                    im->file, line);
	return 0;
}

/* A value as an error message shows it: the first 40 characters, a byte that is not
 * printable UTF-8 as \xHH (a terminal shows the message, not what the file held). */
static const char *shown(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	unsigned chars = 0;
	for (const unsigned char *q = (const unsigned char *)s; *q && o + 8 < cap; chars++) {
		if (chars == 40) {
			o += (size_t)snprintf(out + o, cap - o, "...");
			break;
		}
		size_t n = *q >= 0x20 && *q != 0x7f ? server_utf8_len(q) : 0;
		if (n == 0) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02X", *q);
			q++;
			continue;
		}
		memcpy(out + o, q, n);
		o += n;
		q += n;
	}
	out[o] = 0;
	return out;
}

/* Check one line; 0 or -1 (reported). */
static int check_line(struct import *im, const struct admin_csv *c, unsigned long line)
{
	if (c->n != im->ncols) {
		line_error(im, line, "%u field(s), the header has %u", c->n, im->ncols);
		return -1;
	}
	char v[200];
	const char *holder = admin_csv_field(c, im->col_holder);
	const char *household = admin_csv_field(c, im->col_household);
	const char *why = text_problem(holder);
	if (why) {
		line_error(im, line, "holder '%s': %s", shown(holder, v, sizeof(v)), why);
		return -1;
	}
	if (*household && !server_name_ok(household)) {
		line_error(im, line,
		           "household '%s': expected 1 to 63 letters, digits, '-', '_' or '.'",
		           shown(household, v, sizeof(v)));
		return -1;
	}
	const struct rights_set *set;
	if (parse_rights(im, admin_csv_field(c, im->col_rights), &set) != 0) {
		line_error(im, line, "%s", im->err);
		return -1;
	}
	if (im->col_id >= 0) {
		const char *id = admin_csv_field(c, im->col_id);
		if (!*id || (why = text_problem(id)) != NULL) {
			line_error(im, line, "id '%s': %s", shown(id, v, sizeof(v)),
			           *id ? why : "is empty");
			return -1;
		}
		if (im->n_ids == im->cap_ids) {
			size_t cap = im->cap_ids ? 2 * im->cap_ids : 4096;
			void *n = realloc(im->ids, cap * sizeof(*im->ids));
			if (!n) {
				line_error(im, line, "out of memory");
				return -1;
			}
			im->ids = n;
			im->cap_ids = cap;
		}
		uint8_t key[32];
		id_key(id, key);
		memcpy(im->ids[im->n_ids].k, key, sizeof(im->ids[0].k));
		im->ids[im->n_ids++].line = (uint32_t)line;
	}
	return 0;
}

static int id_cmp(const void *x, const void *y)
{
	const struct id_seen *a = x, *b = y;
	int c = memcmp(a->k, b->k, sizeof(a->k));
	return c ? c : (a->line > b->line) - (a->line < b->line);
}

static void hash_block(void *ctx, const unsigned char *p, size_t n)
{
	(void)mbedtls_sha256_update_ret(ctx, p, n);
}

/* The first reading: every line checked, the file hashed. */
static int check_file(struct import *im, FILE *f, unsigned long *lines)
{
	struct admin_csv *c = calloc(1, sizeof(*c));
	mbedtls_sha256_context h;
	if (!c)
		return admin_refuse("out of memory");
	mbedtls_sha256_init(&h);
	(void)mbedtls_sha256_starts_ret(&h, 0);
	admin_csv_init(c, f);
	c->on_read = hash_block;
	c->on_read_ctx = &h;
	int rc = read_header(im, c);
	unsigned long line = 0;
	*lines = 0;
	while (rc == 0) {
		int r = admin_csv_record(c, &line);
		if (r == 0)
			break;
		if (r < 0) { /* the reading cannot go on past a broken record */
			line_error(im, line, "%s", c->err);
			break;
		}
		(*lines)++;
		(void)check_line(im, c, line);
	}
	if (rc == 0 && im->n_ids > 1) {
		qsort(im->ids, im->n_ids, sizeof(*im->ids), id_cmp);
		for (size_t i = 1; i < im->n_ids; i++)
			if (memcmp(im->ids[i].k, im->ids[i - 1].k, sizeof(im->ids[0].k)) == 0)
				line_error(im, im->ids[i].line, "the same id as line %" PRIu32,
				           im->ids[i - 1].line);
	}
	free(im->ids);
	im->ids = NULL;
	(void)mbedtls_sha256_finish_ret(&h, im->file_sha);
	mbedtls_sha256_free(&h);
	admin_csv_free(c);
	free(c);
	if (rc)
		return rc;
	if (ferror(f))
		return admin_refuse("cannot read %s: %s", im->file, strerror(errno));
	if (im->errors) {
		if (im->errors > SHOW_ERRORS)
			fprintf(stderr, "citypass-admin: ... and %lu more\n",
			        im->errors - SHOW_ERRORS);
		return admin_refuse("%s: %lu line(s) are wrong: nothing was imported", im->file,
		                    im->errors);
	}
	return 0;
}

/* --- the second reading: the passes go in ------------------------------------------------------
 */

/* The passes this import lists in each sector. */
static void count_sectors(struct import *im, const struct rights_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		for (size_t s = 0; s < im->n_sectors; s++)
			if (im->sectors[s].number == set->r[i].sector)
				im->created_in[s]++;
}

struct counts {
	unsigned long created, known, households;
};

/* The last household looked up: a family's members usually come on consecutive lines. */
struct household_cache {
	int64_t id;
	char name[SERVER_NAME_MAX];
};

/* One line of the file, in the batch's transaction. */
static int add_line(struct import *im, int64_t import_id, const struct admin_csv *c, int64_t now,
                    struct household_cache *hh, struct counts *n)
{
	struct admin *a = im->a;
	uint8_t key[32];
	const struct rights_set *set;
	if (parse_rights(im, admin_csv_field(c, im->col_rights), &set) != 0)
		return SERVER_ERR_INVALID; /* checked by the first reading */
	int rc;
	if (im->col_id >= 0) {
		int64_t pass;
		id_key(admin_csv_field(c, im->col_id), key);
		rc = a->st.ops->import_key_get(a->st.ctx, import_id, key, &pass);
		if (rc == 0) { /* a file before this one brought it */
			n->known++;
			return 0;
		}
		if (rc != SERVER_ERR_NOT_FOUND)
			return rc;
	}
	struct server_pass p;
	memset(&p, 0, sizeof(p));
	snprintf(p.holder, sizeof(p.holder), "%s", admin_csv_field(c, im->col_holder));
	const char *household = admin_csv_field(c, im->col_household);
	int fresh = 0; /* the household is this line's: it has no tag yet */
	if (*household) {
		if (strcmp(household, hh->name) == 0) { /* a family's members come together */
			p.household = hh->id;
		} else {
			/* most of a file's households are new: added first, looked up if known */
			rc = a->st.ops->household_add(a->st.ctx, household, &p.household);
			fresh = rc == 0;
			n->households += rc == 0;
			if (rc == SERVER_ERR_EXISTS)
				rc = a->st.ops->household_find(a->st.ctx, household, &p.household);
			if (rc)
				return rc;
			snprintf(hh->name, sizeof(hh->name), "%s", household);
			hh->id = p.household;
		}
	}
	p.state = SERVER_PASS_ACTIVE;
	snprintf(p.medium, sizeof(p.medium), "none");
	p.created = now;
	p.import_id = import_id;
	if ((rc = a->st.ops->pass_add(a->st.ctx, &p)) != 0)
		return rc;
	/* identifiers in the sectors of its rights only: the pass awaits its card, which
	 * 'pass replace' issues as a new pass with identifiers in every sector */
	for (size_t i = 0; i < set->n && rc == 0; i++) {
		struct server_right r = set->r[i];
		r.pass = p.id;
		rc = server_pass_id_assign(&a->st, p.id, r.sector);
		rc = rc ? rc : a->st.ops->right_add(a->st.ctx, &r);
		if (rc == 0 && p.household)
			rc = fresh ? server_household_tag_draw(&a->st, p.household, r.sector)
			           : server_household_tag(&a->st, p.household, r.sector);
	}
	count_sectors(im, set);
	if (rc == 0 && im->col_id >= 0)
		rc = a->st.ops->import_key_add(a->st.ctx, key, p.id);
	if (rc == 0)
		n->created++;
	return rc;
}

/* A sector is rebuilt whole when the import brought at least half of its passes (a delta
 * would be as large as the list); else the new passes go out as a delta. */
static size_t sectors_to_rebuild(struct import *im, uint16_t *out)
{
	size_t n = 0;
	for (size_t s = 0; s < im->n_sectors; s++) {
		if (!im->created_in[s])
			continue;
		struct server_list_version v;
		struct proto_clist_head h;
		uint64_t listed = 0;
		if (im->a->st.ops->list_version_get(im->a->st.ctx, im->sectors[s].number, 0, &v) ==
		    0) {
			if (proto_clist_head_parse(v.head, v.head_len, &h) == 0) {
				listed = h.entry_count;
				proto_clist_head_free(&h);
			}
			server_list_version_free(&v);
		}
		if ((uint64_t)im->created_in[s] * 2 >= listed)
			out[n++] = im->sectors[s].number;
	}
	return n;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int import_file(struct import *im, FILE *f, unsigned long lines)
{
	struct admin *a = im->a;
	int64_t now, import_id = 0;
	uint64_t done_lines = 0;
	int done = 0;
	admin_now(&now);
	int rc = admin_begin(a);
	if (rc)
		return rc;
	rc = a->st.ops->import_open(a->st.ctx, im->file_sha, now, &import_id, &done_lines, &done);
	rc = rc ? rc : a->st.ops->commit(a->st.ctx);
	if (rc) {
		admin_rollback(a);
		return admin_refuse("cannot start the import: %s", server_strerror(rc));
	}
	if (done) {
		printf("%s was imported already (import %" PRId64 "): nothing to do\n", im->file,
		       import_id);
		return 0;
	}
	struct admin_csv *c = calloc(1, sizeof(*c));
	if (!c)
		return admin_refuse("out of memory");
	admin_csv_init(c, f);
	unsigned long line = 0;
	uint64_t record = 0;
	struct counts n = {0, 0, 0};
	struct household_cache hh = {0, ""};
	int r = admin_csv_record(c, &line); /* the header */
	/* an interrupted run of this file committed its first lines: they are not read again,
	 * but their sectors are still to publish */
	while (r > 0 && record < done_lines && (r = admin_csv_record(c, &line)) > 0) {
		const struct rights_set *set;
		record++;
		n.known++;
		if (parse_rights(im, admin_csv_field(c, im->col_rights), &set) == 0)
			count_sectors(im, set);
	}
	struct admin_pace pace;
	admin_pace_init(&pace, TX_SECONDS);
	int committed = 0;
	while (rc == 0 && r > 0) {
		if (committed) {
			const struct timespec gap = {0, GAP_MS * 1000000L};
			nanosleep(&gap, NULL);
		}
		/* the log copied into the database between transactions, not in a commit */
		if (a->st.ops->bulk_checkpoint && (rc = a->st.ops->bulk_checkpoint(a->st.ctx)) != 0)
			break;
		if ((rc = admin_begin(a)) != 0)
			break;
		hh.name[0] = 0; /* a household made by a batch that failed is gone */
		double start = now_s();
		unsigned i = 0;
		for (; rc == 0; i++) {
			if (i % 64 == 63 &&
			    (i >= BATCH || admin_pace_full(&pace, i, now_s() - start)))
				break;
			if ((r = admin_csv_record(c, &line)) <= 0)
				break;
			record++;
			rc = add_line(im, import_id, c, now, &hh, &n);
		}
		if (rc == 0 && r < 0)
			rc = SERVER_ERR_IO; /* the file changed under us */
		if (rc == 0)
			rc = a->st.ops->import_progress(a->st.ctx, import_id, record);
		double commit = now_s();
		if (rc == 0 && (rc = a->st.ops->commit(a->st.ctx)) == 0) {
			admin_pace_committed(&pace, i, now_s() - commit);
			committed = 1;
		}
		if (rc)
			admin_rollback(a);
	}
	/* the last line is in: the passes show, all at once, in a transaction of its own that
	 * is durable, and makes every line's durable (the lines' were not, store.h bulk) */
	if (rc == 0 && a->st.ops->bulk_end)
		a->st.ops->bulk_end(a->st.ctx);
	if (rc == 0 && (rc = admin_begin(a)) == 0) {
		uint16_t *rebuild = calloc(im->n_sectors + 1, sizeof(*rebuild));
		size_t nr = rebuild ? sectors_to_rebuild(im, rebuild) : 0;
		rc = rebuild ? a->st.ops->import_done(a->st.ctx, import_id, rebuild, nr)
		             : SERVER_ERR_NOMEM;
		free(rebuild);
		rc = rc ? rc : a->st.ops->commit(a->st.ctx);
		if (rc)
			admin_rollback(a);
	}
	admin_csv_free(c);
	free(c);
	if (rc) {
		fprintf(stderr,
		        "citypass-admin: %s line %lu: %s\n"
		        "citypass-admin: the import stopped before line %lu; none of its passes is "
		        "listed: run the same command again to finish it\n",
		        im->file, line,
		        r < 0 ? "the file changed during the import" : server_strerror(rc), line);
		return EXIT_REFUSED;
	}
	(void)lines;
	printf("imported %s: %lu pass(es) created, %lu already imported, %lu household(s) "
	       "created\n",
	       im->file, n.created, n.known, n.households);
	return 0;
}

int admin_pass_import(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"check", no_argument, NULL, 'c'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int check_only = 0, ch;
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'c') {
			check_only = 1;
		} else if (ch == 'h') {
			fputs(import_help, stdout);
			return 0;
		} else {
			return admin_usage("pass import ", "option '%s' is not known",
			                   argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return admin_usage("pass import ", "missing the FILE.csv to import");
	if (optind + 1 < argc)
		return admin_usage("pass import ", "unexpected argument '%s'", argv[optind + 1]);
	struct import im;
	memset(&im, 0, sizeof(im));
	im.a = a;
	im.file = argv[optind];
	FILE *f = fopen(im.file, "rb");
	if (!f)
		return admin_refuse("cannot open %s: %s", im.file, strerror(errno));
	int rc = admin_open(a);
	im.memo = calloc(MEMO_SLOTS, sizeof(*im.memo));
	if (rc == 0 && !im.memo)
		rc = admin_refuse("out of memory");
	if (rc == 0 && (rc = a->st.ops->sector_list(a->st.ctx, &im.sectors, &im.n_sectors)) != 0)
		rc = admin_refuse("cannot read the sectors: %s", server_strerror(rc));
	if (rc == 0 && !(im.created_in = calloc(im.n_sectors + 1, sizeof(uint32_t))))
		rc = admin_refuse("out of memory");
	unsigned long lines = 0;
	if (rc == 0 && a->st.ops->bulk)
		a->st.ops->bulk(a->st.ctx, IMPORT_CACHE_MIB, IMPORT_WAL_MIB);
	if (rc == 0)
		rc = check_file(&im, f, &lines);
	if (rc == 0 && check_only)
		printf("%s: %lu line(s), all correct\n", im.file, lines);
	else if (rc == 0 && fseek(f, 0, SEEK_SET) != 0)
		rc = admin_refuse("cannot read %s again: %s", im.file, strerror(errno));
	else if (rc == 0)
		rc = import_file(&im, f, lines);
	fclose(f);
	/* publish what the import brought (after its commits, like every command) */
	for (size_t s = 0; rc == 0 && !check_only && s < im.n_sectors; s++)
		if (im.created_in[s])
			rc = admin_publish(a, im.sectors[s].number, NULL);
	for (size_t i = 0; im.memo && i < MEMO_SLOTS; i++)
		free(im.memo[i].field);
	free(im.memo);
	free(im.sectors);
	free(im.created_in);
	return rc;
}
