/*
 * admin_backup.c — citypass-admin backup and restore (server/backup.h, docs/backup.md).
 *
 * A restored deployment is an older one: the gates may hold lists published after the
 * backup, and would refuse the restored server's next versions as rollbacks. So restore
 * raises every sector's version floor by SERVER_LIST_RESTORE_GAP and publishes a full list
 * above it at once: the gates take it as an ordinary newer snapshot, with no re-enrolment.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "admin.h"
#include "server/backup.h"
#include "server/error.h"
#include "server/publish.h"

#define PASSPHRASE_MAX 1024

static const char backup_help[] =
        "usage: citypass-admin [--data DIR] backup --out FILE [--passphrase-file FILE]\n"
        "\n"
        "Writes the whole deployment (the rights database, copied consistently while the\n"
        "server runs, and every key) to FILE, encrypted with a passphrase (Argon2id,\n"
        "AES-256-GCM). Keep the file and the passphrase apart: together they are every key\n"
        "of the deployment.\n"
        "  --out FILE              the backup to write (never overwritten)\n"
        "  --passphrase-file FILE  read the passphrase (first line) from FILE; without it,\n"
        "                          it is asked twice on the terminal\n";

static const char restore_help[] =
        "usage: citypass-admin --data NEWDIR restore --in FILE [--passphrase-file FILE]\n"
        "\n"
        "Restores a backup into NEWDIR, which must not exist or be empty, then publishes\n"
        "every sector's list above any version the old server may have sent since the\n"
        "backup, so that the gates take the next list without re-enrolment. Start\n"
        "citypass-server on NEWDIR afterwards. Changes made after the backup (passes,\n"
        "rights, devices) and usage uploaded after it are not in it.\n"
        "  --in FILE               the backup to read\n"
        "  --passphrase-file FILE  read the passphrase (first line) from FILE; without it,\n"
        "                          it is asked on the terminal\n";

/* The first line of path, without its end of line; -1 with a message printed. */
static int passphrase_from_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		admin_refuse("--passphrase-file '%s': %s", path, strerror(errno));
		return -1;
	}
	int ok = fgets(out, (int)cap, f) != NULL;
	fclose(f);
	if (!ok) {
		admin_refuse("--passphrase-file '%s': empty file", path);
		return -1;
	}
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

/* Asked on the terminal without echo; confirm: asked twice. */
static int passphrase_from_tty(char *out, size_t cap, int confirm)
{
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty) {
		admin_refuse("no terminal to ask the passphrase on: give --passphrase-file FILE");
		return -1;
	}
	struct termios old, quiet;
	int fd = fileno(tty), rc = -1;
	if (tcgetattr(fd, &old) != 0) {
		fclose(tty);
		admin_refuse("no terminal to ask the passphrase on: give --passphrase-file FILE");
		return -1;
	}
	quiet = old;
	quiet.c_lflag &= (tcflag_t)~ECHO;
	char again[PASSPHRASE_MAX];
	tcsetattr(fd, TCSAFLUSH, &quiet);
	fputs("passphrase: ", tty);
	fflush(tty);
	if (fgets(out, (int)cap, tty)) {
		out[strcspn(out, "\r\n")] = '\0';
		rc = 0;
		if (confirm) {
			fputs("\nagain: ", tty);
			fflush(tty);
			if (!fgets(again, sizeof(again), tty))
				rc = -1;
			again[strcspn(again, "\r\n")] = '\0';
			if (rc == 0 && strcmp(out, again) != 0) {
				fputs("\n", tty);
				admin_refuse("the two passphrases differ");
				rc = -2;
			}
		}
	}
	fputs("\n", tty);
	tcsetattr(fd, TCSAFLUSH, &old);
	fclose(tty);
	mbedtls_platform_zeroize(again, sizeof(again));
	if (rc == -1)
		admin_refuse("no passphrase read from the terminal");
	return rc == 0 ? 0 : -1;
}

static int get_passphrase(const char *file, char *out, size_t cap, int confirm)
{
	return file ? passphrase_from_file(file, out, cap) : passphrase_from_tty(out, cap, confirm);
}

int admin_cmd_backup(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
	                                     {"passphrase-file", required_argument, NULL, 'p'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *out = NULL, *pfile = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			out = optarg;
			break;
		case 'p':
			pfile = optarg;
			break;
		case 'h':
			fputs(backup_help, stdout);
			return 0;
		default:
			return admin_usage("backup ", "unknown option");
		}
	}
	if (optind < argc)
		return admin_usage("backup ", "unexpected argument '%s'", argv[optind]);
	if (!out)
		return admin_usage("backup ", "missing --out FILE");
	if (!a->data)
		return admin_usage("backup ", "no data directory: give --data DIR or set "
		                              "CITYPASS_DATA");
	char pass[PASSPHRASE_MAX], why[600];
	if (get_passphrase(pfile, pass, sizeof(pass), 1) != 0)
		return EXIT_REFUSED;
	struct server_backup_stats st;
	int rc = server_backup_write(a->data, out, pass, NULL, &st, why, sizeof(why));
	mbedtls_platform_zeroize(pass, sizeof(pass));
	if (rc)
		return admin_refuse("backup: %s", why);
	printf("backup of %s written to %s: %u files, %" PRIu64 " bytes", a->data, out, st.files,
	       st.bytes);
	if (st.skipped)
		printf(" (%u entries that are neither files nor directories left out)", st.skipped);
	printf("\n");
	return 0;
}

/* Every sector's next list above anything the old server may have published. */
static int publish_above(struct admin *a)
{
	if (admin_open(a) != 0)
		return EXIT_REFUSED;
	struct server_sector *secs = NULL;
	size_t n = 0;
	int rc = a->st.ops->sector_list(a->st.ctx, &secs, &n);
	if (rc)
		return admin_refuse("restored, but the sectors cannot be read: %s",
		                    server_strerror(rc));
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		uint64_t latest = 0;
		char key[32], val[32];
		snprintf(key, sizeof(key), "list_floor.%u", (unsigned)secs[i].number);
		rc = admin_begin(a);
		if (rc) {
			ret = rc;
			break;
		}
		rc = a->st.ops->list_latest(a->st.ctx, secs[i].number, &latest);
		if (rc == 0) {
			snprintf(val, sizeof(val), "%" PRIu64, latest + SERVER_LIST_RESTORE_GAP);
			rc = a->st.ops->meta_set(a->st.ctx, key, val);
		}
		if (rc) {
			admin_rollback(a);
			ret = admin_refuse("restored, but the version floor of sector %s cannot be "
			                   "set: %s",
			                   secs[i].name, server_strerror(rc));
			break;
		}
		ret = admin_commit(a);
		a->full_publish = 1; /* a snapshot: the gates' lists since the backup are unknown */
		uint64_t v = 0;
		if (ret == 0)
			ret = admin_publish(a, secs[i].number, &v);
	}
	free(secs);
	return ret;
}

int admin_cmd_restore(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {{"in", required_argument, NULL, 'i'},
	                                     {"passphrase-file", required_argument, NULL, 'p'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *in = NULL, *pfile = NULL;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			in = optarg;
			break;
		case 'p':
			pfile = optarg;
			break;
		case 'h':
			fputs(restore_help, stdout);
			return 0;
		default:
			return admin_usage("restore ", "unknown option");
		}
	}
	if (optind < argc)
		return admin_usage("restore ", "unexpected argument '%s'", argv[optind]);
	if (!in)
		return admin_usage("restore ", "missing --in FILE");
	if (!a->data)
		return admin_usage("restore ", "no data directory to restore into: give --data "
		                               "NEWDIR or set CITYPASS_DATA");
	char pass[PASSPHRASE_MAX], why[600];
	if (get_passphrase(pfile, pass, sizeof(pass), 0) != 0)
		return EXIT_REFUSED;
	struct server_backup_stats st;
	int rc = server_backup_restore(in, a->data, pass, &st, why, sizeof(why));
	mbedtls_platform_zeroize(pass, sizeof(pass));
	if (rc)
		return admin_refuse("restore: %s: nothing was written to %s", why, a->data);
	fprintf(stderr, "restored %u files (%" PRIu64 " bytes) into %s\n", st.files, st.bytes,
	        a->data);
	return publish_above(a);
}
