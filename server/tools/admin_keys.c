/*
 * admin_keys.c — citypass-admin keys …: card key versions (docs/admin.md "Key rotation").
 *
 *   keys show                 the versions of every card key (never the keys)
 *   keys rotate --sector S    a new master key for sector S's card keys; the old one stays
 *                             as the previous version, which gates keep accepting
 *   keys retire --sector S    forget the previous version once cards have moved
 *   keys rotate --list-key    a new list-signing key, announced under the old one
 *   keys rotate --ca          a new device CA, certified by the old one
 *
 * Gates get the new and the previous key in their bundle and over the sync link (the server
 * reads card.keys at each session and when told the keys changed). Cards move to the new
 * version at a desk: `card inspect --reader R --update-keys`.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "admin.h"
#include "server/keys.h"
#include "server/list_keys.h"

static const char keys_help[] =
        "usage: citypass-admin keys show [--json]\n"
        "       citypass-admin keys rotate --sector S\n"
        "       citypass-admin keys rotate --list-key\n"
        "       citypass-admin keys rotate --ca\n"
        "       citypass-admin keys retire --ca\n"
        "       citypass-admin keys retire --sector S\n"
        "rotate: a new version of sector S's card master key. Gates accept the new and the\n"
        "  previous version until it is retired; a card moves to the new version at a desk\n"
        "  ('card inspect --reader R --update-keys'). At most two versions live at once:\n"
        "  rotating again drops the oldest, whose cards gates then refuse.\n"
        "retire: gates stop accepting the previous version of sector S.\n"
        "rotate --list-key: a new list-signing key, announced by a statement signed by the\n"
        "  old key and the new one (DATA/keys/list-chain/N.txt); every sector is published\n"
        "  again under the new key. Gates follow the statement over the sync link and from\n"
        "  then on refuse lists signed by a key it did not announce.\n"
        "rotate --ca: a new device CA, certified by the current one (DATA/keys/ca-chain/\n"
        "  N.cross.crt), which signs device certificates from now on. Restart\n"
        "  citypass-server: gates accept the new CA through the old one and keep it.\n"
        "retire --ca: the server's certificate is reissued by the newest CA (once every\n"
        "  gate followed: 'device list'). Restart citypass-server.\n";

/* Tell the sync server that card keys changed: it sends gates their sector's keys again. */
static int note_change(struct admin *a)
{
	char v[32];
	int64_t now = 0;
	admin_now(&now);
	snprintf(v, sizeof(v), "%" PRId64, now);
	int rc = admin_begin(a);
	if (rc)
		return rc;
	rc = a->st.ops->meta_set(a->st.ctx, "card_keys_changed", v);
	if (rc) {
		admin_rollback(a);
		return admin_refuse("cannot record the change: %s", server_strerror(rc));
	}
	return admin_commit(a);
}

static int keys_show(struct admin *a, int json)
{
	struct server_card_keys ck;
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = server_card_keys_load(a->data, &ck);
	if (rc)
		return admin_refuse("cannot load the card keys: %s", server_strerror(rc));
	if (a->st.ops->sector_list(a->st.ctx, &v, &n) != 0) {
		mbedtls_platform_zeroize(&ck, sizeof(ck));
		return admin_refuse("cannot read the sectors");
	}
	if (json)
		printf("{\"application_master\":%u,\"picc_master\":", ck.key_version);
	else
		printf("application master key: version %u\nPICC master key (issuer): ",
		       ck.key_version);
	if (json)
		printf(ck.has_picc_master ? "%u" : "null", ck.picc_version);
	else if (ck.has_picc_master)
		printf("version %u\n", ck.picc_version);
	else
		printf("none yet (created at the first card issued)\n");
	if (json)
		printf(",\"sectors\":[");
	for (size_t i = 0; i < n; i++) {
		const struct server_card_slot *sl = &ck.slot[v[i].slot];
		if (json) {
			printf("%s{\"sector\":", i ? "," : "");
			admin_json_string(stdout, v[i].name);
			printf(",\"version\":%u,\"previous\":", sl->version);
			printf(sl->has_previous ? "%u}" : "null}", sl->previous_version);
		} else if (sl->has_previous) {
			printf("sector %-10s version %u (previous %u still accepted)\n", v[i].name,
			       sl->version, sl->previous_version);
		} else {
			printf("sector %-10s version %u\n", v[i].name, sl->version);
		}
	}
	if (json)
		printf("]}\n");
	free(v);
	mbedtls_platform_zeroize(&ck, sizeof(ck));
	return 0;
}

static int keys_change(struct admin *a, const char *sector, int rotate)
{
	struct server_sector sec;
	if (server_sector_find(&a->st, sector, &sec) != 0)
		return admin_usage(
		        rotate ? "keys rotate " : "keys retire ",
		        "--sector '%s': no such sector (see 'citypass-admin sector list')", sector);
	struct server_card_keys ck;
	int rc = server_card_keys_load(a->data, &ck);
	if (rc)
		return admin_refuse("cannot load the card keys: %s", server_strerror(rc));
	const struct server_card_slot *sl = &ck.slot[sec.slot];
	const uint8_t dropped = sl->has_previous ? sl->previous_version : 0;
	rc = rotate ? server_card_keys_rotate(a->data, &ck, sec.slot)
	            : server_card_keys_retire(a->data, &ck, sec.slot);
	const uint8_t version = sl->version, previous = sl->previous_version;
	mbedtls_platform_zeroize(&ck, sizeof(ck));
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("sector %s has no previous key version to retire", sec.name);
	if (rc == SERVER_ERR_INVALID)
		return admin_refuse("sector %s is at key version 255, the last one", sec.name);
	if (rc)
		return admin_refuse("cannot change the card keys: %s", server_strerror(rc));
	if ((rc = note_change(a)) != 0)
		return rc;
	if (rotate) {
		printf("sector %s: card keys version %u; version %u still accepted by gates until "
		       "'keys retire --sector %s'\n",
		       sec.name, version, previous, sec.name);
		if (dropped)
			fprintf(stderr,
			        "version %u is no longer accepted: cards still at it need a new "
			        "card\n",
			        dropped);
	} else {
		printf("sector %s: only card keys version %u are accepted now\n", sec.name,
		       version);
	}
	return 0;
}

static void hex_id(const uint8_t id[PROTO_KEY_ID_LEN], char out[2 * PROTO_KEY_ID_LEN + 1])
{
	for (size_t i = 0; i < PROTO_KEY_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* The list-signing key: rotate, then publish every sector under the new key. The statement
 * is on disk before any list the new key signs, so the server sends it first. */
static int list_key_rotate(struct admin *a)
{
	struct server_list_rotation r;
	int rc = server_list_key_rotate(a->data, &r);
	if (rc == SERVER_ERR_INVALID)
		return admin_refuse("DATA/keys/list-chain is damaged (a statement unreadable or "
		                    "missing a signature): restore it from the backup");
	if (rc)
		return admin_refuse("cannot rotate the list-signing key: %s", server_strerror(rc));
	char from[2 * PROTO_KEY_ID_LEN + 1], to[2 * PROTO_KEY_ID_LEN + 1];
	hex_id(r.from, from);
	hex_id(r.to, to);
	if (r.finished_interrupted)
		printf("an interrupted rotation was finished: ");
	printf("list-signing key %s replaces %s (statement %u)\n", to, from, (unsigned)r.number);
	printf("check it: cd %s/keys/list-chain && openssl dgst -sha256 -verify %u.old.pub.pem "
	       "-signature %u.old.sig %u.txt && openssl dgst -sha256 -verify ../list.pub.pem "
	       "-signature %u.new.sig %u.txt\n",
	       a->data, (unsigned)r.number, (unsigned)r.number, (unsigned)r.number,
	       (unsigned)r.number, (unsigned)r.number);
	struct server_sector *v = NULL;
	size_t n = 0;
	if (a->st.ops->sector_list(a->st.ctx, &v, &n) != 0)
		return admin_refuse("the key rotated, but the sectors cannot be read: run "
		                    "'citypass-admin list publish' for each sector");
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = admin_publish(a, v[i].number, NULL);
	free(v);
	return rc;
}

static int ca_rotate(struct admin *a)
{
	struct server_ca_rotation r;
	int rc = server_ca_rotate(a->data, &r);
	if (rc)
		return admin_refuse("cannot rotate the device CA: %s", server_strerror(rc));
	printf("device CA %u announced by CA %u; restart citypass-server: every gate learns it "
	       "at its next session. Once 'device list' shows them all on CA %u, run 'keys retire "
	       "--ca'\n",
	       r.to, r.from, r.to);
	printf("check it: cd %s/keys/ca-chain && openssl verify -CAfile %u.ca.crt %u.cross.crt\n",
	       a->data, r.from, r.from);
	return 0;
}

static int ca_retire(struct admin *a)
{
	unsigned n = 0;
	int rc = server_ca_present_newest(a->data, &n);
	if (rc == SERVER_ERR_NOT_FOUND)
		return admin_refuse("the device CA was never rotated: nothing to retire");
	if (rc)
		return admin_refuse("cannot reissue the server's certificate: %s",
		                    server_strerror(rc));
	printf("the server's certificate is now issued by device CA %u; restart citypass-server. "
	       "Gates that did not follow the rotation can no longer connect\n",
	       n);
	return 0;
}

int admin_cmd_keys(struct admin *a, int argc, char **argv)
{
	static const struct option opts[] = {
	        {"sector", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
	        {"list-key", no_argument, NULL, 'l'},     {"ca", no_argument, NULL, 'c'},
	        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	if (argc < 2)
		return admin_usage("keys ", "missing a keys command (show, rotate, retire)");
	const char *sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		fputs(keys_help, stdout);
		return 0;
	}
	const int show = strcmp(sub, "show") == 0, rotate = strcmp(sub, "rotate") == 0;
	if (!show && !rotate && strcmp(sub, "retire") != 0)
		return admin_usage(
		        "keys ", "unknown keys command '%s' (expected show, rotate, retire)", sub);
	char cmd[16];
	snprintf(cmd, sizeof(cmd), "keys %s ", sub);
	const char *sector = NULL;
	int json = 0, list_key = 0, ca = 0, c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sector = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'l':
			list_key = 1;
			break;
		case 'c':
			ca = 1;
			break;
		case 'h':
			fputs(keys_help, stdout);
			return 0;
		default:
			return admin_usage(cmd, "option '%s' is not known or lacks its value",
			                   argv[optind]);
		}
	}
	if (optind + 1 < argc)
		return admin_usage(cmd, "unexpected argument '%s'", argv[optind + 1]);
	if (show && sector)
		return admin_usage(cmd, "--sector is for rotate and retire");
	if (!show && json)
		return admin_usage(cmd, "--json is for 'keys show'");
	if (list_key && (!rotate || sector || ca))
		return admin_usage(cmd, "--list-key is for 'keys rotate', alone");
	if (ca && (show || sector))
		return admin_usage(cmd, "--ca is for 'keys rotate' and 'keys retire', alone");
	if (!show && !sector && !list_key && !ca)
		return admin_usage(cmd, "missing --sector S (or, to rotate, --list-key or --ca)");
	int rc = admin_open(a);
	if (rc)
		return rc;
	if (list_key)
		return list_key_rotate(a);
	if (ca && rotate)
		return ca_rotate(a);
	if (ca)
		return ca_retire(a);
	return show ? keys_show(a, json) : keys_change(a, sector, rotate);
}
