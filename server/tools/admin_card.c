/*
 * admin_card.c — citypass-admin card inspect|recycle (docs/admin.md "Cards"): the reader
 * opened from its libnfc connection string, the library's card operations called
 * (server/passes.h: server_card_inspect, server_card_recycle) and their answers printed;
 * and the sector key text of a gate's bundle.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "admin.h"
#include "cardlib/error.h"
#include "cardlib/issue.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "proto/bundle.h"
#include "proto/list.h"
#include "server/keys.h"
#include "server/passes.h"

const char admin_card_help[] =
        "usage: citypass-admin card inspect --reader CONNSTRING [--update-keys] [--json]\n"
        "       citypass-admin card recycle --reader CONNSTRING\n"
        "inspect: which pass the card in the reader holds (found from the card itself: no\n"
        "  identifier to type), its state and rights, the card's PICC state (blank as bought,\n"
        "  issued here, another system's), random ID, and whether its keys are at the current\n"
        "  versions. --update-keys moves keys left at the previous version (after 'keys\n"
        "  rotate') to the current one.\n"
        "recycle: take back a card issued here whose pass is revoked or replaced: its PICC\n"
        "  master key back to the factory DES key, formatted, ready to be issued again.\n"
        "CONNSTRING is a libnfc connection string, e.g. pn532_uart:/dev/ttyUSB0.\n";

/* --- the deployment's keyset ------------------------------------------------------------- */

int admin_card_sector_key_text(const struct server_card_keys *ck, uint16_t sector, uint8_t slot,
                               int reads_value, char *text, size_t cap)
{
	const struct server_card_slot *sl = &ck->slot[slot];
	struct proto_card_key k = {.aid = CARDLIB_LAYOUT_AID,
	                           .sys_id_len = SERVER_SYS_ID_LEN,
	                           .sector = sector,
	                           .slot = slot,
	                           .version = sl->version,
	                           .reads_value = reads_value,
	                           .has_previous = sl->has_previous,
	                           .previous_version = sl->previous_version};
	memcpy(k.sys_id, ck->sys_id, SERVER_SYS_ID_LEN);
	memcpy(k.master, sl->master, SERVER_AES_KEY_LEN);
	memcpy(k.previous, sl->previous, SERVER_AES_KEY_LEN);
	int n = proto_card_key_write(&k, NULL, text, cap); /* the format's one writer */
	mbedtls_platform_zeroize(&k, sizeof(k));
	return n < 0 ? -1 : n;
}

void admin_reader_cost(const struct cardlib_reader *r, const char *what)
{
	fprintf(stderr, "%s in %lu reader commands (%lu bytes out, %lu in)\n", what,
	        r->stats.selects + r->stats.exchanges, r->stats.tx_bytes, r->stats.rx_bytes);
}

/* --- inspect ------------------------------------------------------------------------------ */

static const char *picc_state_text(const struct cardlib_card_report *r)
{
	switch (r->state) {
	case CARDLIB_CARD_BLANK:
		return r->has_app ? "blank (factory PICC key; an unfinished issue left data on it)"
		                  : "blank (factory PICC key)";
	case CARDLIB_CARD_OURS:
		return "issued by this deployment";
	default:
		return r->app_keys_unknown
		               ? "a citypass card whose keys this deployment no longer accepts (a "
		                 "retired key version, or another deployment's): it needs a new "
		                 "card"
		               : "another system's (unknown PICC master key)";
	}
}

static void print_report_text(struct admin *a, const struct server_card_info *c)
{
	const struct cardlib_card_report *r = &c->report;
	char uid[15] = "?";
	if (r->uid_known)
		admin_hex(r->uid, 7, uid);
	printf("card: %s\nrandom ID: %s\nreal UID: %s\n", picc_state_text(r),
	       r->random_id ? "on" : "off", r->uid_known ? uid : "unknown");
	if (r->state == CARDLIB_CARD_FOREIGN)
		return;
	if (!r->has_app) {
		printf("citypass application: none\n");
		return;
	}
	if (c->has_pass)
		printf("pass %" PRId64 ": %s, %s%s%s\n", c->pass.id,
		       c->pass.holder[0] ? c->pass.holder : "(anonymous)",
		       server_pass_state_name(c->pass.state), c->pass.reason[0] ? " - " : "",
		       c->pass.reason);
	else
		printf("pass: none in this deployment's database\n");
	int stale = 0;
	for (size_t i = 0; i < c->n_sectors; i++) {
		const struct cardlib_card_sector *s = &r->sectors[i];
		char right[96] = "no right";
		if (c->has_pass) {
			struct server_right *rr = NULL;
			size_t nr = 0;
			if (a->st.ops->rights_of_pass(a->st.ctx, c->pass.id, &rr, &nr) == 0) {
				for (size_t j = 0; j < nr; j++)
					if (rr[j].sector == c->sectors[i].number)
						snprintf(right, sizeof(right), "right: product %u",
						         rr[j].p.product);
				free(rr);
			}
		}
		if (!s->version && !s->readable) {
			printf("  %-10s not on the card\n", c->sectors[i].name);
			continue;
		}
		stale |= !s->current;
		printf("  %-10s keys v%u (%s), %s, %s\n", c->sectors[i].name, s->version,
		       s->current ? "current"
		       : c->has_previous[i] && s->version == c->previous_version[i]
		               ? "previous: to update"
		               : "unknown version",
		       s->readable ? "identifier read" : "identifier not readable", right);
	}
	if (r->has_value)
		printf("entries on the card: %d\n", (int)r->value);
	if (stale)
		printf("some keys are at the previous version: 'citypass-admin card inspect "
		       "--reader ... --update-keys' moves them to the current one\n");
	else
		printf("keys: current\n");
}

static void print_report_json(const struct server_card_info *c)
{
	static const char *const states[] = {"blank", "ours", "foreign"};
	const struct cardlib_card_report *r = &c->report;
	char uid[15] = "";
	if (r->uid_known)
		admin_hex(r->uid, 7, uid);
	printf("{\"state\":\"%s\",\"random_id\":%s,\"uid\":", states[r->state],
	       r->random_id ? "true" : "false");
	if (r->uid_known)
		printf("\"%s\"", uid);
	else
		printf("null");
	printf(",\"application\":%s,\"pass\":", r->has_app ? "true" : "false");
	if (c->has_pass) {
		printf("%" PRId64 ",\"pass_state\":\"%s\"", c->pass.id,
		       server_pass_state_name(c->pass.state));
	} else {
		printf("null");
	}
	if (r->has_value)
		printf(",\"entries\":%d", (int)r->value);
	printf(",\"sectors\":[");
	int stale = 0, first = 1;
	for (size_t i = 0; i < c->n_sectors; i++) {
		const struct cardlib_card_sector *s = &r->sectors[i];
		if (!s->version && !s->readable)
			continue;
		stale |= !s->current;
		printf("%s{\"sector\":", first ? "" : ",");
		admin_json_string(stdout, c->sectors[i].name);
		printf(",\"key_version\":%u,\"current_version\":%u,\"current\":%s,"
		       "\"readable\":%s}",
		       s->version, c->version[i], s->current ? "true" : "false",
		       s->readable ? "true" : "false");
		first = 0;
	}
	printf("],\"keys_current\":%s}\n", stale ? "false" : "true");
}

/* The card subcommands' options: --reader, and for inspect --json, --update-keys. */
static int card_args(const char *cmd, int inspect, int argc, char **argv, const char **conn,
                     int *json, int *update)
{
	static const struct option opts[] = {
	        {"reader", required_argument, NULL, 'r'},
	        {"json", no_argument, NULL, 'j'},
	        {"update-keys", no_argument, NULL, 'u'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			*conn = optarg;
			break;
		case 'j':
			*json = 1;
			break;
		case 'u':
			*update = 1;
			break;
		case 'h':
			fputs(admin_card_help, stdout);
			return -1;
		default:
			return admin_usage(cmd, "option '%s' is not known or lacks its value",
			                   argv[optind - 1]);
		}
	}
	if (optind < argc)
		return admin_usage(cmd, "unexpected argument '%s'", argv[optind]);
	if (!*conn)
		return admin_usage(cmd, "missing --reader CONNSTRING");
	if (!inspect && (*json || *update))
		return admin_usage(cmd, "--json and --update-keys are for 'card inspect'");
	return 0;
}

int admin_card_inspect(struct admin *a, int argc, char **argv)
{
	const char *conn = NULL;
	int json = 0, update = 0;
	int rc = card_args("card inspect ", 1, argc, argv, &conn, &json, &update);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct cardlib_reader *reader = NULL;
	struct server_card_info info;
	struct server_why why;
	if ((rc = cardlib_nfc_open(&reader, conn)) != 0)
		return admin_refuse("cannot read the card at reader '%s': %s", conn,
		                    cardlib_strerror(rc));
	rc = server_card_inspect(&a->desk, reader, conn, update, &info, &why);
	cardlib_reader_free(reader);
	if (rc)
		return admin_refuse("%s", why.text);
	if (update)
		fprintf(stderr, "%zu sector(s) moved to the current key version\n", info.moved);
	if (json)
		print_report_json(&info);
	else
		print_report_text(a, &info);
	return 0;
}

int admin_card_recycle(struct admin *a, int argc, char **argv)
{
	const char *conn = NULL;
	int json = 0, update = 0;
	int rc = card_args("card recycle ", 0, argc, argv, &conn, &json, &update);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = admin_open(a)) != 0)
		return rc;
	struct cardlib_reader *reader = NULL;
	struct server_why why;
	int random_id = 0;
	if ((rc = cardlib_nfc_open(&reader, conn)) != 0)
		return admin_refuse("card not recycled at reader '%s': %s", conn,
		                    cardlib_strerror(rc));
	rc = server_card_recycle(&a->desk, reader, conn, &random_id, &why);
	if (rc == 0)
		admin_reader_cost(reader, "card recycled");
	cardlib_reader_free(reader);
	if (rc)
		return admin_refuse("%s", why.text);
	printf("card recycled: factory PICC key, formatted, ready to be issued again%s\n",
	       random_id ? " (random ID stays on)" : "");
	return 0;
}
