/*
 * admin.h — shared by the files of citypass-admin (private to the tool).
 */
#ifndef CITYPASS_ADMIN_H
#define CITYPASS_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/passes.h"
#include "server/store.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE   2

/* The data directory and the open store of one command. */
struct admin {
	const char *data;
	struct server_store st;
	struct server_desk desk; /* the library's view of st, data and the command's time */
	int open;
	int no_publish;
	int full_publish; /* list publish --full */
};

/* Messages: "citypass-admin: ..." on stderr; usage errors add the --help hint. */
__attribute__((format(printf, 2, 3))) int admin_usage(const char *cmd, const char *fmt, ...);
__attribute__((format(printf, 1, 2))) int admin_refuse(const char *fmt, ...);

/* Open the store of a.data (refuses a missing deployment clearly). */
int admin_open(struct admin *a);
void admin_close(struct admin *a);

/* Begin / commit with a readable refusal; rollback is silent. */
int admin_begin(struct admin *a);
int admin_commit(struct admin *a);
void admin_rollback(struct admin *a);

/* Publish a sector's next list from the changes logged (unless --no-publish): after the
 * command's transaction committed, never inside it (the publisher runs its own). */
int admin_publish(struct admin *a, uint16_t sector, uint64_t *version);
/* ... every sector an operation of the library changed. */
int admin_publish_changed(struct admin *a, const struct server_sector_set *changed);

/* Parsing, each returning 0 or -1 (the caller names the value in its message). */
int admin_parse_u64(const char *s, uint64_t max, uint64_t *out);
int admin_now(int64_t *now); /* CITYPASS_NOW (tests) or the clock */
/* citypass-admin pass import (admin_import.c). */
int admin_pass_import(struct admin *a, int argc, char **argv);

/* Shared by the commands' files. */
void admin_getopt_reset(void); /* before a subcommand's own getopt_long */
int admin_bad_option(const char *cmd, char **argv);
void admin_sector_names(struct admin *a, char *out, size_t cap); /* "pool, library" */
int admin_tz_ok(const char *tz);                                 /* an IANA zone file */
int admin_copy_key_file(const char *data, const char *name, const char *dir, const char *as);
void admin_remove_tree(const char *path); /* what a failed command wrote */

/* Output. */
void admin_json_string(FILE *f, const char *s);
void admin_hex(const uint8_t *b, size_t n, char *out);

/* Commands (return an exit status), each called with argv[0] its subcommand's name (the
 * command's own for a command without subcommands); the table is citypass_admin.c's. */
int admin_init(struct admin *a, int argc, char **argv);        /* admin_init.c */
int admin_migrate(struct admin *a, int argc, char **argv);     /* admin_migrate.c */
int admin_sector_list(struct admin *a, int argc, char **argv); /* admin_site.c */
int admin_sector_set(struct admin *a, int argc, char **argv);
int admin_cmd_privacy(struct admin *a, int argc, char **argv);   /* admin_privacy.c */
int admin_holder_export(struct admin *a, int argc, char **argv); /* admin_holder.c */
int admin_holder_erase(struct admin *a, int argc, char **argv);
extern const char admin_holder_help[];
int admin_site_add(struct admin *a, int argc, char **argv);
int admin_site_list(struct admin *a, int argc, char **argv);
int admin_device_add(struct admin *a, int argc, char **argv); /* admin_device_add.c */
int admin_device_revoke(struct admin *a, int argc, char **argv);
int admin_device_show(struct admin *a, int argc, char **argv);
int admin_list_publish(struct admin *a, int argc, char **argv); /* admin_list.c */
int admin_list_export(struct admin *a, int argc, char **argv);
int admin_pass_issue(struct admin *a, int argc, char **argv);
int admin_pass_show(struct admin *a, int argc, char **argv);
int admin_pass_list(struct admin *a, int argc, char **argv);
int admin_pass_revoke(struct admin *a, int argc, char **argv);
int admin_pass_replace(struct admin *a, int argc, char **argv);
int admin_household_add(struct admin *a, int argc, char **argv); /* admin_household.c */
int admin_household_list(struct admin *a, int argc, char **argv);
int admin_household_show(struct admin *a, int argc, char **argv);
int admin_household_rename(struct admin *a, int argc, char **argv);
int admin_household_move(struct admin *a, int argc, char **argv);
int admin_household_remove(struct admin *a, int argc, char **argv);
extern const char admin_household_help[];
int admin_rights_grant(struct admin *a, int argc, char **argv);
int admin_rights_revoke(struct admin *a, int argc, char **argv);
int admin_card_inspect(struct admin *a, int argc, char **argv);
int admin_card_recycle(struct admin *a, int argc, char **argv);
int admin_cmd_stats(struct admin *a, int argc, char **argv);
int admin_cmd_opendata(struct admin *a, int argc, char **argv);
int admin_cmd_quota(struct admin *a, int argc, char **argv);
int admin_cmd_keys(struct admin *a, int argc, char **argv);
int admin_cmd_device_list(struct admin *a, int argc, char **argv); /* admin_device.c */
int admin_cmd_backup(struct admin *a, int argc, char **argv);      /* admin_backup.c */
int admin_cmd_restore(struct admin *a, int argc, char **argv);
extern const char admin_pass_help[], admin_rights_help[], admin_card_help[], admin_init_help[],
        admin_migrate_help[], admin_sector_help[], admin_site_help[], admin_device_help[],
        admin_list_help[];

struct cardlib_reader;
/* "WHAT in N reader commands (B bytes out, B in)" on stderr: what a card operation cost. */
void admin_reader_cost(const struct cardlib_reader *r, const char *what);
struct server_card_keys;
/* The text of a gate bundle's card-sector.key: the sector's master key(s) only. Its length,
 * or -1 when cap is too small. */
int admin_card_sector_key_text(const struct server_card_keys *ck, uint16_t sector, uint8_t slot,
                               int reads_value, char *text, size_t cap);

#endif /* CITYPASS_ADMIN_H */
