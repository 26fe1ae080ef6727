/*
 * admin_card.c — citypass-admin's side of a card's life at the desk (docs/admin.md "Cards"):
 * issuing a pass on a card as a town buys it (called by pass issue/replace), `card inspect`
 * (which pass a card holds, its state, rights and keys — and moving old keys to the current
 * version) and `card recycle` (taking a card back). The card work itself is cardlib's
 * (cardlib/issue.h); this file turns the deployment's keys and database into a keyset and
 * the outcomes into sentences for the agent.
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

static const char card_help[] =
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

static int meta_int(struct admin *a, const char *key, int dflt)
{
	char buf[16];
	if (a->st.ops->meta_get(a->st.ctx, key, buf, sizeof(buf)) != 0)
		return dflt;
	return atoi(buf);
}

/*
 * The issuing side's keyset: every sector of the deployment, its masters at the current and
 * previous versions, the application and PICC masters, random ID as init chose. A
 * deployment made before cards were protected gets its issuer PICC master key now.
 * sectors/n receive the deployment's sectors (ks->sectors[i] is sectors[i]).
 */
static int load_keyset(struct admin *a, struct cardlib_keyset *ks, struct server_sector **sectors,
                       size_t *n)
{
	struct server_card_keys ck;
	int rc = server_card_keys_load(a->data, &ck);
	if (rc)
		return admin_refuse("cannot load the card keys: %s", server_strerror(rc));
	if (!ck.has_picc_master && (rc = server_card_keys_add_picc_master(a->data, &ck)) != 0) {
		mbedtls_platform_zeroize(&ck, sizeof(ck));
		return admin_refuse("cannot create the issuer PICC master key: %s",
		                    server_strerror(rc));
	}
	if ((rc = a->st.ops->sector_list(a->st.ctx, sectors, n)) != 0) {
		mbedtls_platform_zeroize(&ck, sizeof(ck));
		return admin_refuse("cannot read the sectors");
	}
	memset(ks, 0, sizeof(*ks));
	ks->sys.aid = CARDLIB_LAYOUT_AID;
	memcpy(ks->sys.sys_id, ck.sys_id, SERVER_SYS_ID_LEN);
	ks->sys.sys_id_len = SERVER_SYS_ID_LEN;
	memcpy(ks->app_master, ck.app_master, sizeof(ks->app_master));
	ks->key_version = ck.key_version;
	memcpy(ks->picc_master, ck.picc_master, sizeof(ks->picc_master));
	ks->picc_version = ck.picc_version;
	ks->random_id = meta_int(a, "random_id", 1);
	ks->value_slot = -1;
	const int vsec = meta_int(a, "value_sector", -1);
	for (size_t i = 0; i < *n && i < CARDLIB_LAYOUT_SECTORS_MAX; i++) {
		const struct server_card_slot *sl = &ck.slot[(*sectors)[i].slot];
		struct cardlib_layout_sector *s = &ks->sectors[i];
		s->slot = (*sectors)[i].slot;
		memcpy(s->master, sl->master, CARDLIB_AES_KEY_LEN);
		s->version = sl->version;
		s->has_previous = sl->has_previous;
		memcpy(s->previous, sl->previous, CARDLIB_AES_KEY_LEN);
		s->previous_version = sl->previous_version;
		if ((*sectors)[i].number == vsec)
			ks->value_slot = s->slot;
		ks->n_sectors = i + 1;
	}
	mbedtls_platform_zeroize(&ck, sizeof(ck));
	return 0;
}

static void reader_cost(const struct cardlib_reader *r, const char *what)
{
	fprintf(stderr, "%s in %lu reader commands (%lu bytes out, %lu in)\n", what,
	        r->stats.selects + r->stats.exchanges, r->stats.tx_bytes, r->stats.rx_bytes);
}

/* The pass a card of this deployment holds, found from the identifiers it gave: 0 and
 * *pass, or NOT_FOUND (an orphan: a card finished by an issue the database rolled back). */
static int pass_of_card(struct admin *a, const struct cardlib_card_report *rep,
                        const struct server_sector *sectors, size_t n, int64_t *pass)
{
	for (size_t i = 0; i < n && i < CARDLIB_LAYOUT_SECTORS_MAX; i++) {
		if (!rep->sectors[i].readable)
			continue;
		int rc = a->st.ops->pass_id_find(a->st.ctx, sectors[i].number, rep->sectors[i].id,
		                                 pass);
		if (rc != SERVER_ERR_NOT_FOUND)
			return rc;
	}
	return SERVER_ERR_NOT_FOUND;
}

/* --- issuing ------------------------------------------------------------------------------ */

int admin_card_issue(struct admin *a, int64_t pass, const char *conn, int32_t entries_if_value)
{
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = load_keyset(a, &ks, &v, &n);
	if (rc)
		return rc;
	memset(&ids, 0, sizeof(ids));
	for (size_t i = 0; i < ks.n_sectors && rc == 0; i++)
		rc = a->st.ops->pass_id_get(a->st.ctx, pass, v[i].number, ids.id[i], NULL);
	if (rc) {
		free(v);
		mbedtls_platform_zeroize(&ks, sizeof(ks));
		return admin_refuse("cannot read the pass's identifiers: %s", server_strerror(rc));
	}
	struct cardlib_reader *reader = NULL;
	struct cardlib_card_report rep;
	struct cardlib_issue_opts opts = {
	        .initial_entries = ks.value_slot >= 0 ? entries_if_value : CARDLIB_LAYOUT_NO_VALUE};
	int ret = 0;
	rc = cardlib_nfc_open(&reader, conn);
	if (rc == 0)
		rc = cardlib_card_inspect(reader, &ks, &rep);
	if (rc == 0 && rep.state == CARDLIB_CARD_FOREIGN)
		rc = CARDLIB_ERR_CARD_FOREIGN;
	if (rc == 0 && rep.state == CARDLIB_CARD_OURS) {
		int64_t holder = 0;
		int src = pass_of_card(a, &rep, v, n, &holder);
		if (src == 0) {
			struct server_pass p;
			const char *state = a->st.ops->pass_get(a->st.ctx, holder, &p) == 0
			                            ? admin_state_name(p.state)
			                            : "unknown";
			ret = admin_refuse(
			        "card not issued at reader '%s': it holds pass %" PRId64
			        " (%s); a card is taken back with 'citypass-admin card "
			        "recycle --reader %s' once its pass is revoked or replaced",
			        conn, holder, state, conn);
		} else if (src != SERVER_ERR_NOT_FOUND) {
			ret = admin_refuse("cannot look up the card's pass: %s",
			                   server_strerror(src));
		} else {
			/* a card an earlier issue finished after its pass was rolled back */
			fprintf(stderr, "the card holds no pass of this deployment (an interrupted "
			                "issue): it is taken back and issued again\n");
			opts.replace_uid = rep.uid;
		}
	}
	if (rc == 0 && ret == 0) {
		rc = cardlib_card_issue(reader, &ks, &ids, &opts);
		if (rc == 0)
			reader_cost(reader, "card issued");
	}
	if (rc && ret == 0)
		ret = admin_refuse("card not issued at reader '%s': %s", conn,
		                   cardlib_strerror(rc));
	cardlib_reader_free(reader);
	free(v);
	mbedtls_platform_zeroize(&ks, sizeof(ks));
	mbedtls_platform_zeroize(&ids, sizeof(ids));
	return ret;
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

static void print_report_text(struct admin *a, const struct cardlib_card_report *r,
                              const struct server_sector *sectors, size_t n,
                              const struct cardlib_keyset *ks, int64_t pass, int have_pass)
{
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
	if (have_pass) {
		struct server_pass p;
		if (a->st.ops->pass_get(a->st.ctx, pass, &p) == 0)
			printf("pass %" PRId64 ": %s, %s%s%s\n", p.id,
			       p.holder[0] ? p.holder : "(anonymous)", admin_state_name(p.state),
			       p.reason[0] ? " - " : "", p.reason);
	} else {
		printf("pass: none in this deployment's database\n");
	}
	int stale = 0;
	for (size_t i = 0; i < n && i < ks->n_sectors; i++) {
		const struct cardlib_card_sector *s = &r->sectors[i];
		const struct cardlib_layout_sector *k = &ks->sectors[i];
		char right[96] = "no right";
		if (have_pass) {
			struct server_right *rr = NULL;
			size_t nr = 0;
			if (a->st.ops->rights_of_pass(a->st.ctx, pass, &rr, &nr) == 0) {
				for (size_t j = 0; j < nr; j++)
					if (rr[j].sector == sectors[i].number)
						snprintf(right, sizeof(right), "right: product %u",
						         rr[j].p.product);
				free(rr);
			}
		}
		if (!s->version && !s->readable) {
			printf("  %-10s not on the card\n", sectors[i].name);
			continue;
		}
		stale |= !s->current;
		printf("  %-10s keys v%u (%s), %s, %s\n", sectors[i].name, s->version,
		       s->current ? "current"
		       : k->has_previous && s->version == k->previous_version
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

static void print_report_json(struct admin *a, const struct cardlib_card_report *r,
                              const struct server_sector *sectors, size_t n,
                              const struct cardlib_keyset *ks, int64_t pass, int have_pass)
{
	static const char *const states[] = {"blank", "ours", "foreign"};
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
	if (have_pass) {
		struct server_pass p;
		printf("%" PRId64, pass);
		if (a->st.ops->pass_get(a->st.ctx, pass, &p) == 0)
			printf(",\"pass_state\":\"%s\"", admin_state_name(p.state));
	} else {
		printf("null");
	}
	if (r->has_value)
		printf(",\"entries\":%d", (int)r->value);
	printf(",\"sectors\":[");
	int stale = 0, first = 1;
	for (size_t i = 0; i < n && i < ks->n_sectors; i++) {
		const struct cardlib_card_sector *s = &r->sectors[i];
		if (!s->version && !s->readable)
			continue;
		stale |= !s->current;
		printf("%s{\"sector\":", first ? "" : ",");
		admin_json_string(stdout, sectors[i].name);
		printf(",\"key_version\":%u,\"current_version\":%u,\"current\":%s,"
		       "\"readable\":%s}",
		       s->version, ks->sectors[i].version, s->current ? "true" : "false",
		       s->readable ? "true" : "false");
		first = 0;
	}
	printf("],\"keys_current\":%s}\n", stale ? "false" : "true");
}

static int card_inspect(struct admin *a, const char *conn, int json, int update)
{
	struct cardlib_keyset ks;
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = load_keyset(a, &ks, &v, &n);
	if (rc)
		return rc;
	struct cardlib_reader *reader = NULL;
	struct cardlib_card_report rep;
	int ret = 0;
	rc = cardlib_nfc_open(&reader, conn);
	if (rc == 0)
		rc = cardlib_card_inspect(reader, &ks, &rep);
	if (rc == 0 && update && rep.state == CARDLIB_CARD_OURS && rep.uid_known) {
		size_t moved = 0;
		rc = cardlib_card_update_keys(reader, &ks, rep.uid, &moved);
		if (rc == 0) {
			fprintf(stderr, "%zu sector(s) moved to the current key version\n", moved);
			rc = cardlib_card_inspect(reader, &ks, &rep);
		}
	} else if (rc == 0 && update) {
		ret = admin_refuse("--update-keys: the card is not issued by this deployment");
	}
	if (rc) {
		ret = admin_refuse("cannot read the card at reader '%s': %s", conn,
		                   cardlib_strerror(rc));
	} else if (ret == 0) {
		int64_t pass = 0;
		int have = rep.has_app && pass_of_card(a, &rep, v, n, &pass) == 0;
		if (json)
			print_report_json(a, &rep, v, n, &ks, pass, have);
		else
			print_report_text(a, &rep, v, n, &ks, pass, have);
	}
	cardlib_reader_free(reader);
	free(v);
	mbedtls_platform_zeroize(&ks, sizeof(ks));
	return ret;
}

/* --- recycle ------------------------------------------------------------------------------ */

static int card_recycle(struct admin *a, const char *conn)
{
	struct cardlib_keyset ks;
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = load_keyset(a, &ks, &v, &n);
	if (rc)
		return rc;
	struct cardlib_reader *reader = NULL;
	struct cardlib_card_report rep;
	int ret = 0;
	rc = cardlib_nfc_open(&reader, conn);
	if (rc == 0)
		rc = cardlib_card_inspect(reader, &ks, &rep);
	if (rc == 0 && rep.state == CARDLIB_CARD_FOREIGN)
		rc = CARDLIB_ERR_CARD_FOREIGN;
	if (rc == 0 && rep.state == CARDLIB_CARD_OURS) {
		int64_t pass = 0;
		struct server_pass p;
		int src = pass_of_card(a, &rep, v, n, &pass);
		if (src == 0 && (src = a->st.ops->pass_get(a->st.ctx, pass, &p)) == 0 &&
		    p.state != SERVER_PASS_REVOKED && p.state != SERVER_PASS_REPLACED)
			ret = admin_refuse(
			        "card not recycled: it holds pass %" PRId64
			        " (%s), which must be revoked ('pass revoke') or replaced "
			        "('pass replace') first",
			        pass, admin_state_name(p.state));
		else if (src && src != SERVER_ERR_NOT_FOUND)
			ret = admin_refuse("cannot look up the card's pass: %s",
			                   server_strerror(src));
	}
	if (rc == 0 && ret == 0) {
		rc = cardlib_card_recycle(reader, &ks, rep.uid_known ? rep.uid : NULL);
		if (rc == 0) {
			reader_cost(reader, "card recycled");
			printf("card recycled: factory PICC key, formatted, ready to be issued "
			       "again%s\n",
			       rep.random_id ? " (random ID stays on)" : "");
		}
	}
	if (rc && ret == 0)
		ret = admin_refuse("card not recycled at reader '%s': %s", conn,
		                   cardlib_strerror(rc));
	cardlib_reader_free(reader);
	free(v);
	mbedtls_platform_zeroize(&ks, sizeof(ks));
	return ret;
}

/* --- dispatch ----------------------------------------------------------------------------- */

int admin_cmd_card(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"reader", required_argument, NULL, 'r'},
	        {"json", no_argument, NULL, 'j'},
	        {"update-keys", no_argument, NULL, 'u'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	if (argc < 2)
		return admin_usage("card ", "missing a card command (inspect, recycle)");
	const char *sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		fputs(card_help, stdout);
		return 0;
	}
	const int inspect = strcmp(sub, "inspect") == 0;
	if (!inspect && strcmp(sub, "recycle") != 0)
		return admin_usage("card ",
		                   "unknown card command '%s' (expected inspect or recycle)", sub);
	const char *cmd = inspect ? "card inspect " : "card recycle ";
	const char *conn = NULL;
	int json = 0, update = 0, c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			conn = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'u':
			update = 1;
			break;
		case 'h':
			fputs(card_help, stdout);
			return 0;
		default:
			return admin_usage(cmd, "option '%s' is not known or lacks its value",
			                   argv[optind]);
		}
	}
	if (optind + 1 < argc)
		return admin_usage(cmd, "unexpected argument '%s'", argv[optind + 1]);
	if (!conn)
		return admin_usage(cmd, "missing --reader CONNSTRING");
	if (!inspect && (json || update))
		return admin_usage(cmd, "--json and --update-keys are for 'card inspect'");
	int rc = admin_open(a);
	if (rc)
		return rc;
	return inspect ? card_inspect(a, conn, json, update) : card_recycle(a, conn);
}
