/*
 * admin_privacy.c — citypass-admin privacy register|purge: the record of processing
 * generated from the deployment's settings, and the server's retention purge now
 * (server/privacy.h; citypass-server runs the purge on its own every few minutes).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "server/privacy.h"

static const char privacy_help[] =
        "usage: citypass-admin privacy register\n"
        "       citypass-admin privacy purge\n"
        "  register   print the record of processing (GDPR art. 30) as Markdown, from this\n"
        "             deployment's own settings: each processing, its purpose, data, place,\n"
        "             readers and retention, the retention per sector\n"
        "  purge      fold the consumption rows older than their sector's retention now\n"
        "             (citypass-server does it every 10 minutes): the counts a right needs\n"
        "             stay, the gate, sequence and time of each use go\n"
        "The retention of each sector: 'citypass-admin sector list|set' (docs/privacy.md).\n";

static int privacy_purge(struct admin *a, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return admin_usage("privacy ", "unexpected argument '%s'", argv[1]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	int64_t now;
	if (admin_now(&now) != 0)
		return admin_refuse("CITYPASS_NOW is not a Unix time");
	uint64_t n = 0;
	if ((rc = server_retention_purge(&a->st, now, 0, &n)) != 0)
		return admin_refuse("the retention purge failed: %s; nothing was changed",
		                    server_store_strerror(&a->st, rc));
	printf("folded %" PRIu64 " consumption row(s) past their sector's retention\n", n);
	return 0;
}

static int privacy_register(struct admin *a, int argc, char **argv)
{
	if (argc > 1)
		return admin_usage("privacy ", "unexpected argument '%s'", argv[1]);
	int rc = admin_open(a);
	if (rc)
		return rc;
	if ((rc = server_privacy_register(&a->st, stdout)) != 0)
		return admin_refuse("cannot read the deployment's settings: %s",
		                    server_store_strerror(&a->st, rc));
	if (fflush(stdout) != 0 || ferror(stdout))
		return admin_refuse("cannot write the register to the standard output");
	return 0;
}

int admin_cmd_privacy(struct admin *a, int argc, char **argv)
{
	if (argc < 2)
		return admin_usage("privacy ", "missing a privacy command (register or purge)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(privacy_help, stdout);
		return 0;
	}
	if (strcmp(argv[1], "register") == 0)
		return privacy_register(a, argc - 1, argv + 1);
	if (strcmp(argv[1], "purge") == 0)
		return privacy_purge(a, argc - 1, argv + 1);
	return admin_usage("privacy ", "unknown privacy command '%s' (expected register or purge)",
	                   argv[1]);
}
