/*
 * admin.h — shared by the files of citypass-admin (private to the tool).
 */
#ifndef CITYPASS_ADMIN_H
#define CITYPASS_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "server/store.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE   2

/* The data directory and the open store of one command. */
struct admin {
	const char *data;
	struct server_store st;
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

/* Bytes of the well-formed UTF-8 character at p, 0 when it is not one. */
size_t admin_utf8_len(const unsigned char *p);

/* Parsing, each returning 0 or -1 (the caller names the value in its message). */
int admin_parse_u64(const char *s, uint64_t max, uint64_t *out);
int admin_parse_date(const char *s, int64_t *day); /* YYYY-MM-DD -> day number */
/* A sector by name or number. */
int admin_find_sector(struct admin *a, const char *s, struct server_sector *out);
int admin_sector_name(struct admin *a, uint16_t number, char *out, size_t cap);
int admin_now(int64_t *now); /* CITYPASS_NOW (tests) or the clock */
/* A right in the --right syntax (admin_pass.c): 0, or -1 with err = "'SPEC': what is wrong". */
int admin_right_parse(struct admin *a, const char *spec, struct server_right *r, char *err,
                      size_t cap);

/* A name agents type (sector, site, household): letters, digits, '-', '_', '.', 1 to 63. */
int admin_name_ok(const char *s);
/* A new identifier of a pass in a sector (admin_pass.c), and a household's tag in a sector,
 * drawn when it has none: 0 or a store error. */
int admin_assign_id(struct admin *a, int64_t pass, uint16_t sector);
int admin_household_tag(struct admin *a, int64_t household, uint16_t sector);
/* citypass-admin pass import (admin_import.c). */
int admin_pass_import(struct admin *a, int argc, char **argv);

/* Output. */
void admin_json_string(FILE *f, const char *s);
void admin_hex(const uint8_t *b, size_t n, char *out);
const char *admin_state_name(int state);
int admin_state_parse(const char *s);

/* Commands (return an exit status). */
int admin_cmd_pass(struct admin *a, int argc, char **argv);
int admin_cmd_rights(struct admin *a, int argc, char **argv);
int admin_cmd_stats(struct admin *a, int argc, char **argv);
int admin_cmd_opendata(struct admin *a, int argc, char **argv);
int admin_cmd_quota(struct admin *a, int argc, char **argv);
int admin_cmd_card(struct admin *a, int argc, char **argv);
int admin_cmd_keys(struct admin *a, int argc, char **argv);
int admin_cmd_device_list(struct admin *a, int argc, char **argv); /* admin_device.c */
int admin_cmd_backup(struct admin *a, int argc, char **argv);      /* admin_backup.c */
int admin_cmd_restore(struct admin *a, int argc, char **argv);

/* Cards (admin_card.c). Issue pass `pass` on the card at reader conn (a card as bought, or
 * one of ours that holds no pass), with `entries` on the value file when the deployment
 * has a value sector: 0 or an exit status, the refusal printed. */
int admin_card_issue(struct admin *a, int64_t pass, const char *conn, int32_t entries);
struct server_card_keys;
/* The text of a gate bundle's card-sector.key: the sector's master key(s) only. Its length,
 * or -1 when cap is too small. */
int admin_card_sector_key_text(const struct server_card_keys *ck, uint16_t sector, uint8_t slot,
                               int reads_value, char *text, size_t cap);

#endif /* CITYPASS_ADMIN_H */
