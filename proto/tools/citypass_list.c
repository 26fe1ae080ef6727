/*
 * citypass-list — inspect, verify and (for tests and demos) make signed allow-lists.
 *
 * Auditors verify a published list with openssl and sha256sum alone (docs/list-format.md);
 * this tool says more: the head, the key id, and the exact reason a list is refused. It
 * reads format 2 (a version's manifest and the files beside it) and format 1 (one file and
 * its signature). Exit 0 on success, 1 when a list or key is refused, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "proto/clist.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE   2

static const char usage_text[] =
        "usage: citypass-list COMMAND [OPTIONS]\n"
        "\n"
        "LIST is a format 2 manifest (vV.manifest, its files beside it) or a format 1 file.\n"
        "commands:\n"
        "  show LIST [--json]                       print a list's head\n"
        "  verify LIST --pub PEM [--sig SIG] [--sector N] [--now UNIX] [--held VERSION]\n"
        "                                           verify as a gate would (every chunk of a\n"
        "                                           format 2 list), say why if refused\n"
        "  lookup LIST KEYHEX                       a pass's entry, found as a gate finds it\n"
        "  keyid --pub PEM                          print the key id lists carry (16 hex digits)\n"
        "  keygen --private FILE --public FILE      create an ECDSA P-256 list-signing key\n"
        "  sign --key PEM --out SIG FILE            detached DER signature of FILE\n"
        "  sample --key PEM --out DIR [--sector N] [--passes N] [--version N] [--valid-days N]\n"
        "         [--format 1|2]                    build and sign a list of synthetic passes\n"
        "                                           (tests, demos): format 2 writes DIR/vN.*\n"
        "                                           and chunk files; format 1 writes the file\n"
        "                                           DIR and DIR.sig\n"
        "  to-format1 LIST --key PEM --out FILE     the same passes as one format 1 file and\n"
        "                                           FILE.sig, signed with PEM (tests of a gate\n"
        "                                           upgrading from format 1)\n"
        "\n"
        "options:\n"
        "  -h, --help     this text\n"
        "  --version      print the version (after a command: the list version, for sample)\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "citypass-list: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'citypass-list --help'.\n");
	return EXIT_USAGE;
}

static int refused(const char *what, const char *path, int rc)
{
	fprintf(stderr, "citypass-list: %s %s: %s\n", what, path, proto_strerror(rc));
	return EXIT_REFUSED;
}

static int parse_u64(const char *s, const char *name, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *s == '\0' || *s == '-' || *end != '\0' || v > max) {
		fprintf(stderr,
		        "citypass-list: %s '%s' is not valid: expected a whole number from 0 to "
		        "%" PRIu64 "\n",
		        name, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	while (buf) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n < cap)
			break;
		uint8_t *nb = realloc(buf, cap *= 2);
		if (!nb)
			free(buf);
		buf = nb;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(data, 1, len, f);
	if (fclose(f) != 0 || w != len)
		return -1;
	return 0;
}

static void hex(char *out, const uint8_t *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

enum {
	OPT_PUB = 256,
	OPT_SIG,
	OPT_SECTOR,
	OPT_NOW,
	OPT_HELD,
	OPT_JSON,
	OPT_PRIVATE,
	OPT_PUBLIC,
	OPT_KEY,
	OPT_OUT,
	OPT_PASSES,
	OPT_VERSION_NUM,
	OPT_VALID_DAYS,
	OPT_PRINT_VERSION,
	OPT_FORMAT,
};

struct args {
	const char *pub, *sig, *private_path, *public_path, *key, *out;
	uint64_t sector, now, held, passes, version, valid_days, format;
	int have_sector, have_now, json;
	const char *file, *arg2;
};

/* A format 2 list is named by its manifest; anything else is taken as format 1. */
static int is_manifest(const char *path)
{
	size_t n = strlen(path);
	return n > 9 && strcmp(path + n - 9, ".manifest") == 0;
}

static struct proto_keyring *ring_of(const char *pub)
{
	struct proto_key *key;
	int rc = proto_key_load_public(&key, pub);
	if (rc) {
		refused("cannot use public key", pub, rc);
		return NULL;
	}
	struct proto_keyring *ring = proto_keyring_new();
	if (!ring || proto_keyring_add(ring, key) != 0) {
		proto_key_free(key);
		proto_keyring_free(ring);
		refused("cannot use public key", pub, PROTO_ERR_NOMEM);
		return NULL;
	}
	proto_key_free(key); /* the ring keeps its own copy */
	return ring;
}

static int show_v2(const struct args *a)
{
	struct proto_clist_dir d;
	int rc = proto_clist_dir_open(&d, a->file, a->sig);
	if (rc)
		return refused("cannot read list", a->file, rc);
	const struct proto_clist_head *h = &d.h;
	char kid[2 * PROTO_KEY_ID_LEN + 1], prev[2 * PROTO_HASH_LEN + 1],
	        hash[2 * PROTO_HASH_LEN + 1];
	uint8_t mh[PROTO_HASH_LEN];
	proto_sha256(d.manifest, d.manifest_len, mh);
	hex(kid, h->key_id, PROTO_KEY_ID_LEN);
	hex(prev, h->prev_manifest, PROTO_HASH_LEN);
	hex(hash, mh, PROTO_HASH_LEN);
	if (a->json)
		printf("{\"format\":%u,\"sector\":%u,\"version\":%" PRIu64 ",\"issued_at\":%" PRId64
		       ",\"expires_at\":%" PRId64 ",\"key_id\":\"%s\",\"entries\":%" PRIu32
		       ",\"profiles\":%u,\"chunks\":%" PRIu32 ",\"prev_manifest\":\"%s\","
		       "\"manifest_sha256\":\"%s\"}\n",
		       h->format, h->sector, h->version, h->issued_at, h->expires_at, kid,
		       h->entry_count, h->profile_count, d.m.n_chunks, prev, hash);
	else
		printf("format      %u\nsector      %u\nversion     %" PRIu64
		       "\nissued_at   %" PRId64 "\nexpires_at  %" PRId64
		       "\nkey_id      %s\nentries     %" PRIu32
		       "\nprofiles    %u\nchunks      %" PRIu32
		       "\nprev        %s\nmanifest    %s\n",
		       h->format, h->sector, h->version, h->issued_at, h->expires_at, kid,
		       h->entry_count, h->profile_count, d.m.n_chunks, prev, hash);
	proto_clist_dir_close(&d);
	return 0;
}

static int cmd_show(const struct args *a)
{
	if (is_manifest(a->file))
		return show_v2(a);
	struct proto_list *l;
	int rc = proto_list_open_file(&l, a->file);
	if (rc)
		return refused("cannot read list", a->file, rc);
	const struct proto_list_header *h = proto_list_header(l);
	char kid[2 * PROTO_KEY_ID_LEN + 1], prev[2 * PROTO_HASH_LEN + 1],
	        hash[2 * PROTO_HASH_LEN + 1];
	hex(kid, h->key_id, PROTO_KEY_ID_LEN);
	hex(prev, h->prev_hash, PROTO_HASH_LEN);
	hex(hash, proto_list_hash(l), PROTO_HASH_LEN);
	if (a->json)
		printf("{\"format\":%u,\"sector\":%u,\"version\":%" PRIu64 ",\"issued_at\":%" PRId64
		       ",\"expires_at\":%" PRId64 ",\"key_id\":\"%s\",\"entries\":%" PRIu32
		       ",\"profiles\":%u,\"prev_hash\":\"%s\",\"sha256\":\"%s\"}\n",
		       h->format, h->sector, h->version, h->issued_at, h->expires_at, kid,
		       h->entry_count, h->profile_count, prev, hash);
	else
		printf("format      %u\nsector      %u\nversion     %" PRIu64
		       "\nissued_at   %" PRId64 "\nexpires_at  %" PRId64
		       "\nkey_id      %s\nentries     %" PRIu32
		       "\nprofiles    %u\nprev_hash   %s\nsha256      %s\n",
		       h->format, h->sector, h->version, h->issued_at, h->expires_at, kid,
		       h->entry_count, h->profile_count, prev, hash);
	proto_list_close(l);
	return 0;
}

static int verify_v2(const struct args *a, struct proto_keyring *ring)
{
	struct proto_clist_dir d;
	int rc = proto_clist_dir_open(&d, a->file, a->sig);
	if (rc)
		return refused("cannot read list", a->file, rc);
	struct proto_list_policy policy = {
	        .sector = a->have_sector ? (uint16_t)a->sector : d.h.sector,
	        .held_version = a->held,
	        .now = a->have_now ? (int64_t)a->now : (int64_t)time(NULL),
	        .keys = ring,
	};
	int exit_code = 0;
	rc = proto_clist_dir_verify(&d, &policy, 1);
	if (rc)
		exit_code = refused("refused list", a->file, rc);
	else
		printf("%s: valid: sector %u, version %" PRIu64 ", %" PRIu32 " passes in %" PRIu32
		       " chunks\n",
		       a->file, d.h.sector, d.h.version, d.h.entry_count, d.m.n_chunks);
	proto_clist_dir_close(&d);
	return exit_code;
}

static int cmd_verify(const struct args *a)
{
	if (!a->pub || (!a->sig && !is_manifest(a->file)))
		return usage_error("%s needs --pub PEM (and --sig SIG for a format 1 list)",
		                   "verify");
	struct proto_keyring *ring = ring_of(a->pub);
	if (!ring)
		return EXIT_REFUSED;
	if (is_manifest(a->file)) {
		int rc = verify_v2(a, ring);
		proto_keyring_free(ring);
		return rc;
	}
	size_t sig_len = 0;
	uint8_t *sig = read_file(a->sig, &sig_len);
	struct proto_list *l = NULL;
	int exit_code = 0, rc;
	if (!sig) {
		fprintf(stderr, "citypass-list: cannot read signature %s: %s\n", a->sig,
		        strerror(errno));
		exit_code = EXIT_REFUSED;
	} else if ((rc = proto_list_open_file(&l, a->file)) != 0) {
		exit_code = refused("cannot read list", a->file, rc);
	} else {
		const struct proto_list_header *h = proto_list_header(l);
		struct proto_list_policy policy = {
		        .sector = a->have_sector ? (uint16_t)a->sector : h->sector,
		        .held_version = a->held,
		        .now = a->have_now ? (int64_t)a->now : (int64_t)time(NULL),
		        .keys = ring,
		};
		rc = proto_list_verify(l, sig, sig_len, &policy);
		if (rc == 0)
			rc = proto_list_check_entries(l);
		if (rc)
			exit_code = refused("refused list", a->file, rc);
		else
			printf("%s: valid: sector %u, version %" PRIu64 ", %" PRIu32 " passes\n",
			       a->file, h->sector, h->version, h->entry_count);
	}
	proto_list_close(l);
	free(sig);
	proto_keyring_free(ring);
	return exit_code;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int cmd_lookup(const struct args *a)
{
	uint8_t key[PROTO_LIST_KEY_LEN];
	if (!a->arg2 || unhex(a->arg2, key, sizeof(key)) != 0)
		return usage_error("lookup needs LIST and a key of %d hex digits",
		                   2 * PROTO_LIST_KEY_LEN);
	struct proto_list_entry e;
	struct proto_rights_profile p;
	int rc;
	if (is_manifest(a->file)) {
		struct proto_clist_dir d;
		rc = proto_clist_dir_open(&d, a->file, a->sig);
		if (rc)
			return refused("cannot read list", a->file, rc);
		rc = proto_clist_dir_lookup(&d, key, &e, &p);
		proto_clist_dir_close(&d);
	} else {
		struct proto_list *l = NULL;
		rc = proto_list_open_file(&l, a->file);
		if (rc)
			return refused("cannot read list", a->file, rc);
		rc = proto_list_lookup(l, key, &e, &p);
		proto_list_close(l);
	}
	if (rc == PROTO_ERR_LIST_NOT_FOUND) {
		printf("absent\n");
		return EXIT_REFUSED;
	}
	if (rc)
		return refused("cannot search list", a->file, rc);
	printf("status %u profile %u used %u period %u household %u limit %u period-kind %u "
	       "scope %u flags %u\n",
	       e.status, e.profile, e.used, e.used_period, e.household, p.limit, p.period, p.scope,
	       p.flags);
	return 0;
}

static int cmd_keyid(const struct args *a)
{
	if (!a->pub)
		return usage_error("%s needs --pub PEM", "keyid");
	struct proto_key *key;
	int rc = proto_key_load_public(&key, a->pub);
	if (rc)
		return refused("cannot use public key", a->pub, rc);
	uint8_t id[PROTO_KEY_ID_LEN];
	char out[2 * PROTO_KEY_ID_LEN + 1];
	proto_key_id(key, id);
	hex(out, id, sizeof(id));
	printf("%s\n", out);
	proto_key_free(key);
	return 0;
}

static int cmd_keygen(const struct args *a)
{
	if (!a->private_path || !a->public_path)
		return usage_error("%s needs --private FILE and --public FILE", "keygen");
	struct proto_key *key;
	int rc = proto_key_generate(&key);
	if (rc)
		return refused("cannot generate", "key", rc);
	rc = proto_key_write_private_pem(key, a->private_path);
	if (rc) {
		fprintf(stderr,
		        "citypass-list: cannot create %s: %s (an existing file is never "
		        "overwritten)\n",
		        a->private_path, strerror(errno));
	} else if ((rc = proto_key_write_public_pem(key, a->public_path)) != 0) {
		fprintf(stderr, "citypass-list: cannot create %s: %s\n", a->public_path,
		        strerror(errno));
		remove(a->private_path);
	}
	proto_key_free(key);
	return rc ? EXIT_REFUSED : 0;
}

static int sign_to(const struct proto_key *key, const uint8_t *data, size_t len, const char *path)
{
	uint8_t sig[PROTO_SIG_MAX];
	size_t sig_len;
	int rc = proto_sign(key, data, len, sig, &sig_len);
	if (rc)
		return refused("cannot sign for", path, rc);
	if (write_file(path, sig, sig_len) != 0) {
		fprintf(stderr, "citypass-list: cannot write %s: %s\n", path, strerror(errno));
		return EXIT_REFUSED;
	}
	return 0;
}

static int cmd_sign(const struct args *a)
{
	if (!a->key || !a->out)
		return usage_error("%s needs --key PEM and --out SIG", "sign");
	struct proto_key *key;
	int rc = proto_key_load_private(&key, a->key);
	if (rc)
		return refused("cannot use private key", a->key, rc);
	size_t len;
	uint8_t *data = read_file(a->file, &len);
	if (!data) {
		fprintf(stderr, "citypass-list: cannot read %s: %s\n", a->file, strerror(errno));
		proto_key_free(key);
		return EXIT_REFUSED;
	}
	rc = sign_to(key, data, len, a->out);
	free(data);
	proto_key_free(key);
	return rc;
}

static int write_in(const char *dir, const char *name, const uint8_t *data, size_t len)
{
	char path[4096 + PROTO_CLIST_NAME_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (write_file(path, data, len) != 0) {
		fprintf(stderr, "citypass-list: cannot write %s: %s\n", path, strerror(errno));
		return EXIT_REFUSED;
	}
	return 0;
}

static int write_v2(const char *dir, const struct proto_clist_built *b)
{
	char name[PROTO_CLIST_NAME_MAX];
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "citypass-list: cannot create %s: %s\n", dir, strerror(errno));
		return EXIT_REFUSED;
	}
	uint64_t v = b->head.version;
	proto_clist_name_manifest(name, v);
	int rc = write_in(dir, name, b->manifest_bytes, b->manifest_len);
	proto_clist_name_sig(name, v);
	rc = rc ? rc : write_in(dir, name, b->sig, b->sig_len);
	proto_clist_name_head(name, v);
	rc = rc ? rc : write_in(dir, name, b->head_bytes, b->head_len);
	for (uint32_t j = 0; rc == 0 && j < b->manifest.n_chunks; j++) {
		proto_clist_name_chunk(name, j, b->manifest.chunks[j].since, 1);
		rc = write_in(dir, name, b->chunks[j].idx, b->chunks[j].idx_len);
		proto_clist_name_chunk(name, j, b->manifest.chunks[j].since, 0);
		rc = rc ? rc
		        : write_in(dir, name, b->chunks[j].dat,
		                   (size_t)b->chunks[j].n * PROTO_CLIST_ENTRY_SIZE);
	}
	return rc;
}

static int cmd_sample(const struct args *a)
{
	if (!a->key || !a->out)
		return usage_error("%s needs --key PEM and --out DIR", "sample");
	if (a->format != 1 && a->format != 2)
		return usage_error("--format %" PRIu64 ": expected 1 or 2", a->format);
	struct proto_key *key;
	int rc = proto_key_load_private(&key, a->key);
	if (rc)
		return refused("cannot use private key", a->key, rc);
	const int64_t now = (int64_t)time(NULL);
	const uint16_t today = (uint16_t)(now / 86400);
	const struct proto_rights_profile profiles[] = {
	        {.product = 1, .valid_from = today, .valid_to = (uint16_t)(today + 365)},
	        {.product = 2,
	         .limit = 10,
	         .period = PROTO_PERIOD_LIFETIME,
	         .flags = PROTO_PROFILE_ENTRIES_ON_CARD,
	         .valid_to = PROTO_DAY_UNBOUNDED_TO},
	        {.product = 3,
	         .limit = 24,
	         .period = PROTO_PERIOD_YEAR,
	         .scope = PROTO_SCOPE_HOUSEHOLD,
	         .valid_to = PROTO_DAY_UNBOUNDED_TO},
	};
	struct proto_list_entry *entries = calloc(a->passes ? a->passes : 1, sizeof(*entries));
	if (!entries) {
		proto_key_free(key);
		return refused("cannot build", a->out, PROTO_ERR_NOMEM);
	}
	for (uint64_t i = 0; i < a->passes; i++) {
		char id[32];
		int n = snprintf(id, sizeof(id), "sample-pass-%" PRIu64, i);
		proto_list_key((uint16_t)a->sector, (const uint8_t *)id, (size_t)n, entries[i].key);
		entries[i].profile = (uint16_t)(i % 3);
		entries[i].household = (uint32_t)(i % 3 == 2 ? 1 + i / 2 : 0);
	}
	int exit_code = 0;
	if (a->format == 2) {
		struct proto_clist_params params = {
		        .sector = (uint16_t)a->sector,
		        .version = a->version,
		        .issued_at = now,
		        .expires_at = now + (int64_t)a->valid_days * 86400,
		        .bits = proto_clist_bits_for(a->passes),
		};
		struct proto_clist_built b;
		rc = proto_clist_build(&params, key, profiles, 3, entries, a->passes, &b);
		if (rc)
			exit_code = refused("cannot build", a->out, rc);
		else
			exit_code = write_v2(a->out, &b);
		if (rc == 0)
			proto_clist_built_free(&b);
	} else {
		struct proto_list_params params = {
		        .sector = (uint16_t)a->sector,
		        .version = a->version,
		        .issued_at = now,
		        .expires_at = now + (int64_t)a->valid_days * 86400,
		};
		uint8_t *buf = NULL;
		size_t len = 0;
		rc = proto_list_build(&params, key, profiles, 3, entries, a->passes, &buf, &len);
		if (rc) {
			exit_code = refused("cannot build", a->out, rc);
		} else if (write_file(a->out, buf, len) != 0) {
			fprintf(stderr, "citypass-list: cannot write %s: %s\n", a->out,
			        strerror(errno));
			exit_code = EXIT_REFUSED;
		} else {
			char sig_path[4096];
			snprintf(sig_path, sizeof(sig_path), "%s.sig", a->out);
			exit_code = sign_to(key, buf, len, sig_path);
		}
		free(buf);
	}
	free(entries);
	proto_key_free(key);
	return exit_code;
}

/* Every entry of a format 2 version as a format 1 file, signed with --key. */
static int cmd_to_format1(const struct args *a)
{
	if (!a->key || !a->out || !is_manifest(a->file))
		return usage_error("%s needs a format 2 LIST, --key PEM and --out FILE",
		                   "to-format1");
	struct proto_key *key;
	int rc = proto_key_load_private(&key, a->key);
	if (rc)
		return refused("cannot use private key", a->key, rc);
	struct proto_clist_dir d;
	rc = proto_clist_dir_open(&d, a->file, a->sig);
	if (rc) {
		proto_key_free(key);
		return refused("cannot read list", a->file, rc);
	}
	struct proto_list_entry *e = calloc(d.h.entry_count ? d.h.entry_count : 1, sizeof(*e));
	size_t n = 0;
	rc = e ? 0 : PROTO_ERR_NOMEM;
	for (uint32_t j = 0; rc == 0 && j < d.m.n_chunks; j++) {
		uint8_t *dat = NULL;
		size_t len = 0;
		rc = proto_clist_dir_file(&d, j, 0, &dat, &len);
		for (size_t i = 0; rc == 0 && i < len / PROTO_CLIST_ENTRY_SIZE; i++) {
			if (n == d.h.entry_count) {
				rc = PROTO_ERR_LIST_COUNT;
				break;
			}
			proto_clist_entry_decode(dat + i * PROTO_CLIST_ENTRY_SIZE, &e[n++]);
		}
		free(dat);
	}
	struct proto_list_params params = {
	        .sector = d.h.sector,
	        .version = d.h.version,
	        .issued_at = d.h.issued_at,
	        .expires_at = d.h.expires_at,
	};
	uint8_t *buf = NULL;
	size_t len = 0;
	if (rc == 0)
		rc = proto_list_build(&params, key, d.h.profiles, d.h.profile_count, e, n, &buf,
		                      &len);
	int exit_code = 0;
	if (rc) {
		exit_code = refused("cannot convert", a->file, rc);
	} else if (write_file(a->out, buf, len) != 0) {
		fprintf(stderr, "citypass-list: cannot write %s: %s\n", a->out, strerror(errno));
		exit_code = EXIT_REFUSED;
	} else {
		char sig_path[4096];
		snprintf(sig_path, sizeof(sig_path), "%s.sig", a->out);
		exit_code = sign_to(key, buf, len, sig_path);
	}
	free(buf);
	free(e);
	proto_clist_dir_close(&d);
	proto_key_free(key);
	return exit_code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, OPT_PRINT_VERSION},
	        {"pub", required_argument, NULL, OPT_PUB},
	        {"sig", required_argument, NULL, OPT_SIG},
	        {"sector", required_argument, NULL, OPT_SECTOR},
	        {"now", required_argument, NULL, OPT_NOW},
	        {"held", required_argument, NULL, OPT_HELD},
	        {"json", no_argument, NULL, OPT_JSON},
	        {"private", required_argument, NULL, OPT_PRIVATE},
	        {"public", required_argument, NULL, OPT_PUBLIC},
	        {"key", required_argument, NULL, OPT_KEY},
	        {"out", required_argument, NULL, OPT_OUT},
	        {"passes", required_argument, NULL, OPT_PASSES},
	        {"list-version", required_argument, NULL, OPT_VERSION_NUM},
	        {"valid-days", required_argument, NULL, OPT_VALID_DAYS},
	        {"format", required_argument, NULL, OPT_FORMAT},
	        {NULL, 0, NULL, 0},
	};
	struct args a = {.passes = 1000, .version = 1, .valid_days = 7, .sector = 1, .format = 2};
	/* Before a command, --version prints the tool's version; after one it is the list
	 * version (sample --version N writes version N): the command comes first, and the
	 * options after it are parsed on their own. */
	const char *cmd = NULL;
	if (argc >= 2 && argv[1][0] != '-') {
		cmd = argv[1];
		argc--;
		argv++;
	}
	const int after_command = cmd != NULL;
	struct option cmd_opts[sizeof(opts) / sizeof(opts[0])];
	memcpy(cmd_opts, opts, sizeof(opts));
	cmd_opts[1].has_arg = required_argument;
	int c;
	while ((c = getopt_long(argc, argv, "h", after_command ? cmd_opts : opts, NULL)) != -1) {
		int bad = 0;
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case OPT_PRINT_VERSION:
			if (after_command) {
				if (!optarg)
					return usage_error("%s",
					                   "--version needs a list version here");
				bad = parse_u64(optarg, "--version", UINT64_MAX, &a.version);
				break;
			}
			puts("citypass-list 0.1.0");
			return 0;
		case OPT_FORMAT:
			bad = parse_u64(optarg, "--format", 2, &a.format);
			break;
		case OPT_PUB:
			a.pub = optarg;
			break;
		case OPT_SIG:
			a.sig = optarg;
			break;
		case OPT_SECTOR:
			bad = parse_u64(optarg, "--sector", UINT16_MAX, &a.sector);
			a.have_sector = 1;
			break;
		case OPT_NOW:
			bad = parse_u64(optarg, "--now", INT64_MAX, &a.now);
			a.have_now = 1;
			break;
		case OPT_HELD:
			bad = parse_u64(optarg, "--held", UINT64_MAX, &a.held);
			break;
		case OPT_JSON:
			a.json = 1;
			break;
		case OPT_PRIVATE:
			a.private_path = optarg;
			break;
		case OPT_PUBLIC:
			a.public_path = optarg;
			break;
		case OPT_KEY:
			a.key = optarg;
			break;
		case OPT_OUT:
			a.out = optarg;
			break;
		case OPT_PASSES:
			bad = parse_u64(optarg, "--passes", PROTO_LIST_MAX_ENTRIES, &a.passes);
			break;
		case OPT_VERSION_NUM:
			bad = parse_u64(optarg, "--list-version", UINT64_MAX, &a.version);
			break;
		case OPT_VALID_DAYS:
			bad = parse_u64(optarg, "--valid-days", 3650, &a.valid_days);
			break;
		default:
			fputs("Try 'citypass-list --help'.\n", stderr);
			return EXIT_USAGE;
		}
		if (bad)
			return EXIT_USAGE;
	}
	if (!cmd)
		return usage_error("%s", optind < argc ? "options come after the command"
		                                       : "missing command");
	static const struct {
		const char *name;
		int (*fn)(const struct args *);
		int files;
	} cmds[] = {
	        {"show", cmd_show, 1},     {"verify", cmd_verify, 1},
	        {"keyid", cmd_keyid, 0},   {"keygen", cmd_keygen, 0},
	        {"sign", cmd_sign, 1},     {"sample", cmd_sample, 0},
	        {"lookup", cmd_lookup, 2}, {"to-format1", cmd_to_format1, 1},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(cmd, cmds[i].name) != 0)
			continue;
		if (argc - optind != cmds[i].files) {
			if (cmds[i].files == 0)
				return usage_error("unexpected argument '%s'", argv[optind]);
			return usage_error("'%s' needs exactly %d argument%s", cmd, cmds[i].files,
			                   cmds[i].files > 1 ? "s" : "");
		}
		if (cmds[i].files >= 1)
			a.file = argv[optind];
		if (cmds[i].files == 2)
			a.arg2 = argv[optind + 1];
		return cmds[i].fn(&a);
	}
	return usage_error("unknown command '%s': expected show, verify, lookup, keyid, keygen, "
	                   "sign, sample or to-format1",
	                   cmd);
}
