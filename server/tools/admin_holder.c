/*
 * admin_holder.c — citypass-admin holder export|erase: a holder's access and erasure
 * requests (GDPR art. 15 and 17), over the server library's server/holder.h.
 */
#define _XOPEN_SOURCE 700 /* open_memstream */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "server/holder.h"

const char admin_holder_help[] =
        "usage: citypass-admin holder export --pass N [--out DIR]\n"
        "       citypass-admin holder erase --pass N\n"
        "The holder of pass N: that pass and every pass it replaced or was replaced by.\n"
        "  export   everything the server keeps about them (register, household, rights,\n"
        "           card or phone identifiers, the uses still kept with the date each is\n"
        "           deleted, what is kept elsewhere): as JSON on the standard output, or\n"
        "           with --out DIR as DIR/holder-N.json and the readable DIR/holder-N.html\n"
        "  erase    remove all of it from the server (lists rebuilt without them, older list\n"
        "           versions dropped: gates take a snapshot), and say what is kept and until\n"
        "           when (the card, the gates' journals, backups)\n";

static int parse(const char *cmd, int argc, char **argv, int64_t *pass, const char **out,
                 int allow_out)
{
	static const struct option opts[] = {
	        {"pass", required_argument, NULL, 'p'},
	        {"out", required_argument, NULL, 'o'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;
	uint64_t v;
	*pass = 0;
	admin_getopt_reset();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (admin_parse_u64(optarg, INT64_MAX, &v) != 0 || v == 0)
				return admin_usage(cmd, "--pass '%s': expected a pass number",
				                   optarg);
			*pass = (int64_t)v;
			break;
		case 'o':
			if (!allow_out)
				return admin_usage(cmd, "--out: only 'holder export' writes files");
			*out = optarg;
			break;
		case 'h':
			fputs(admin_holder_help, stdout);
			return -1;
		default:
			return admin_bad_option(cmd, argv);
		}
	}
	if (optind < argc)
		return admin_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!*pass)
		return admin_usage(cmd, "missing --pass N");
	return 0;
}

static FILE *open_out(const char *dir, int64_t pass, const char *ext, char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/holder-%" PRId64 ".%s", dir, pass, ext);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return fopen(path, "w");
}

int admin_holder_export(struct admin *a, int argc, char **argv)
{
	int64_t pass;
	const char *dir = NULL;
	int rc = parse("holder ", argc, argv, &pass, &dir, 1);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	if (admin_now(&a->desk.now) != 0)
		return admin_refuse("CITYPASS_NOW is not a Unix time");
	struct server_why why;
	if (!dir) {
		if (server_holder_export(&a->desk, pass, stdout, NULL, &why) != 0)
			return admin_refuse("%s", why.text);
		return fflush(stdout) == 0 ? 0 : admin_refuse("cannot write the standard output");
	}
	char jpath[PATH_MAX], hpath[PATH_MAX];
	FILE *j = open_out(dir, pass, "json", jpath, sizeof(jpath));
	if (!j)
		return admin_refuse("--out '%s': cannot write %s: %s", dir, jpath, strerror(errno));
	FILE *h = open_out(dir, pass, "html", hpath, sizeof(hpath));
	if (!h) {
		int e = errno;
		fclose(j);
		remove(jpath);
		return admin_refuse("--out '%s': cannot write %s: %s", dir, hpath, strerror(e));
	}
	rc = server_holder_export(&a->desk, pass, j, h, &why);
	int werr = fclose(j) != 0;
	werr |= fclose(h) != 0;
	if (rc || werr) {
		remove(jpath);
		remove(hpath);
		return rc ? admin_refuse("%s", why.text)
		          : admin_refuse("--out '%s': writing the export failed", dir);
	}
	printf("wrote %s and %s\n", jpath, hpath);
	return 0;
}

int admin_holder_erase(struct admin *a, int argc, char **argv)
{
	int64_t pass;
	const char *dir = NULL;
	int rc = parse("holder ", argc, argv, &pass, &dir, 0);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	if (admin_now(&a->desk.now) != 0)
		return admin_refuse("CITYPASS_NOW is not a Unix time");
	struct server_why why;
	struct server_holder_erasure e;
	/* the sentences of what is kept come after the summary: gathered first */
	char *kept = NULL;
	size_t kept_len = 0;
	FILE *k = open_memstream(&kept, &kept_len);
	if (!k)
		return admin_refuse("out of memory");
	rc = server_holder_erase(&a->desk, pass, &e, k, &why);
	fclose(k);
	if (rc && e.passes == 0) {
		free(kept);
		return admin_refuse("%s", why.text);
	}
	printf("erased %zu pass(es) of the holder of pass %" PRId64 " and %" PRIu64
	       " use(s) kept under them; %zu sector list(s) rebuilt without them\n",
	       e.passes, pass, e.uses, e.rebuilt.n);
	fputs(kept ? kept : "", stdout);
	free(kept);
	if (rc)
		return admin_refuse("%s", why.text);
	if (!e.flushed)
		return admin_refuse("erased, but another program (citypass-server) still reads an "
		                    "older copy of the database: run 'holder erase --pass %" PRId64
		                    "' again later to clear it from the files",
		                    pass);
	return 0;
}
