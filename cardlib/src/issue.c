/*
 * issue.c — a card's life at the desk (cardlib/issue.h): recognising a card as bought, as
 * issued by us or as another system's; issuing; looking; moving keys; taking back.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "cardlib/diversify.h"
#include "cardlib/error.h"
#include "cardlib/issue.h"
#include "layout_internal.h"

#define REAL_UID_LEN 7
#define AMK_NO       0
/* Application key settings: AMK changeable (bit 0), no free directory listing (bit 1: a
 * stranger learns nothing of which sectors a card carries), no free create/delete (bit 2),
 * configuration changeable (bit 3); the AMK changes the other keys (bits 7-4 = 0). */
#define APP_KEY_SETTINGS 0x09
/* How cardlib authenticates with AES keys at the desk: the default of DESIGN.md §3. */
#define DESK_AUTH CARDLIB_AUTH_EV2

static const uint8_t zero_key[CARDLIB_KEY_MAX];

/* The card in the field, opened, and what is known of it so far. */
struct desk {
	struct cardlib_reader *reader;
	struct cardlib_desfire *d;
	struct cardlib_target_info info;
	const struct cardlib_keyset *ks;
	enum cardlib_card_state state;
	struct cardlib_key factory; /* BLANK: the factory key that opened the PICC level */
	int uid_known;
	uint8_t uid[REAL_UID_LEN];
	int settings_known;
	uint8_t settings;
	int app_keys_unknown; /* FOREIGN, yet a citypass application none of our keys opens */
};

/* ---- keys ------------------------------------------------------------------------------ */

int cardlib_issue_picc_key(const struct cardlib_keyset *ks, const uint8_t uid[7],
                           uint8_t out[CARDLIB_AES_KEY_LEN])
{
	if (!ks || !uid || !out)
		return CARDLIB_ERR_ARG;
	return cardlib_diversify_card_key(ks->picc_master, uid, REAL_UID_LEN, 0x000000,
	                                  ks->sys.sys_id, ks->sys.sys_id_len, out);
}

/* Factory keys are zeros of some type; each type has its authentication. */
static enum cardlib_auth_kind auth_kind_of(enum cardlib_key_type type)
{
	return type == CARDLIB_KEY_DES      ? CARDLIB_AUTH_LEGACY
	       : type == CARDLIB_KEY_3K3DES ? CARDLIB_AUTH_ISO
	                                    : DESK_AUTH;
}

static int auth_picc_with(struct desk *k, const struct cardlib_key *key)
{
	return layout_auth_error(
	        cardlib_desfire_authenticate_key(k->d, auth_kind_of(key->type), 0, key));
}

static int auth_factory(struct desk *k, enum cardlib_key_type type)
{
	cardlib_key_make(&k->factory, type, zero_key, type == CARDLIB_KEY_3K3DES ? 24 : 16, 0);
	return auth_picc_with(k, &k->factory);
}

/* Authenticate the PICC level with this issuer's key of the card (its real UID known). */
static int auth_ours(struct desk *k)
{
	uint8_t key[CARDLIB_AES_KEY_LEN];
	int rc = cardlib_issue_picc_key(k->ks, k->uid, key);
	if (rc == 0)
		rc = layout_auth_error(cardlib_desfire_authenticate(k->d, DESK_AUTH, 0, key));
	mbedtls_platform_zeroize(key, sizeof(key));
	return rc;
}

/* The real UID of a random-ID card through the citypass application: any sector's UID key
 * (not diversified) at the current or previous version, then GetCardUID (DESIGN.md §3).
 * Leaves the application selected. */
static int uid_through_app(struct desk *k)
{
	const struct cardlib_keyset *ks = k->ks;
	int rc = cardlib_desfire_select_application(k->d, ks->sys.aid);
	if (rc)
		return rc;
	rc = CARDLIB_ERR_AUTH;
	for (size_t i = 0; rc == CARDLIB_ERR_AUTH && i < ks->n_sectors; i++) {
		const struct cardlib_layout_sector *s = &ks->sectors[i];
		for (int prev = 0; rc == CARDLIB_ERR_AUTH && prev <= s->has_previous; prev++) {
			uint8_t key[CARDLIB_AES_KEY_LEN];
			rc = cardlib_layout_uid_key(&ks->sys, prev ? s->previous : s->master, key);
			if (rc == 0)
				rc = layout_auth_error(cardlib_desfire_authenticate(
				        k->d, DESK_AUTH, CARDLIB_LAYOUT_UID_KEY(s->slot), key));
			mbedtls_platform_zeroize(key, sizeof(key));
		}
	}
	size_t len = 0;
	uint8_t uid[CARDLIB_UID_MAX];
	if (rc == 0)
		rc = cardlib_desfire_get_card_uid(k->d, uid, &len);
	if (rc == 0 && len != REAL_UID_LEN)
		rc = CARDLIB_ERR_LAYOUT;
	if (rc == 0) {
		memcpy(k->uid, uid, REAL_UID_LEN);
		k->uid_known = 1;
	}
	return rc;
}

/* With a session in force, the real UID (GetCardUID, whatever the anticollision showed). */
static int uid_from_session(struct desk *k)
{
	uint8_t uid[CARDLIB_UID_MAX];
	size_t len = 0;
	int rc = cardlib_desfire_get_card_uid(k->d, uid, &len);
	if (rc == 0 && len != REAL_UID_LEN)
		rc = CARDLIB_ERR_NOT_DESFIRE;
	if (rc == 0) {
		memcpy(k->uid, uid, REAL_UID_LEN);
		k->uid_known = 1;
	}
	return rc;
}

/* ---- recognising the card ------------------------------------------------------------- */

/*
 * Select the card and find out whose PICC master key it has, leaving the PICC level
 * authenticated with it when it is a factory key or ours (FOREIGN: no session). Costs: a
 * factory card answers GetKeySettings freely and opens at the first try; our cards list
 * nothing freely, so the factory keys are tried (two exchanges each) before ours.
 */
static int desk_open(struct desk *k, struct cardlib_reader *reader, const struct cardlib_keyset *ks)
{
	memset(k, 0, sizeof(*k));
	k->reader = reader;
	k->ks = ks;
	int rc = layout_select_card(reader, &k->d, &k->info);
	if (rc)
		return rc;
	if (k->info.uid_len == REAL_UID_LEN) {
		memcpy(k->uid, k->info.uid, REAL_UID_LEN);
		k->uid_known = 1;
	}
	rc = cardlib_desfire_select_application(k->d, 0);
	if (rc)
		return rc;
	uint8_t keys = 0;
	rc = cardlib_desfire_get_key_settings(k->d, &k->settings, &keys);
	if (rc == 0) {
		k->settings_known = 1;
		rc = auth_factory(k, (enum cardlib_key_type)(keys & 0xC0));
	} else if (rc == CARDLIB_ERR_AUTH || rc == CARDLIB_ERR_PERMISSION) {
		static const enum cardlib_key_type types[] = {CARDLIB_KEY_DES, CARDLIB_KEY_AES,
		                                              CARDLIB_KEY_3K3DES};
		rc = CARDLIB_ERR_AUTH;
		for (size_t i = 0; rc == CARDLIB_ERR_AUTH && i < 3; i++)
			rc = auth_factory(k, types[i]);
	}
	if (rc == 0) {
		k->state = CARDLIB_CARD_BLANK;
		return uid_from_session(k);
	}
	if (rc != CARDLIB_ERR_AUTH)
		return rc;
	/* not a factory key: ours? */
	if (!k->uid_known) {
		rc = uid_through_app(k);
		if (rc == CARDLIB_ERR_APP_MISSING || rc == CARDLIB_ERR_AUTH) {
			k->state = CARDLIB_CARD_FOREIGN;
			k->app_keys_unknown = rc == CARDLIB_ERR_AUTH;
			return 0;
		}
		if (rc)
			return rc;
		rc = cardlib_desfire_select_application(k->d, 0);
		if (rc)
			return rc;
	}
	rc = auth_ours(k);
	if (rc == CARDLIB_ERR_AUTH) {
		k->state = CARDLIB_CARD_FOREIGN;
		return 0;
	}
	if (rc == 0)
		k->state = CARDLIB_CARD_OURS;
	return rc;
}

static void desk_close(struct desk *k)
{
	if (k->d)
		layout_end_session(k->reader, k->d);
	else
		cardlib_reader_release(k->reader);
	mbedtls_platform_zeroize(k, sizeof(*k));
}

/* Re-authenticate the PICC level with the key that opened it. */
static int desk_reauth(struct desk *k)
{
	int rc = cardlib_desfire_select_application(k->d, 0);
	if (rc)
		return rc;
	return k->state == CARDLIB_CARD_OURS ? auth_ours(k) : auth_picc_with(k, &k->factory);
}

/* ---- taking back ------------------------------------------------------------------------ */

/* From OURS (authenticated) to BLANK: the PICC key back to DES zeros first, so that a card
 * pulled at any later step is a blank card anyone may format (issue.h). */
static int give_back_picc_key(struct desk *k)
{
	struct cardlib_key des0;
	cardlib_key_make(&des0, CARDLIB_KEY_DES, zero_key, 16, 0);
	/* ChangeKey to another key type under EV1 AES secure messaging (libfreefare's way, and
	 * the bench's libfreefare-checked one); cardlib's EV2 sessions change AES keys only */
	uint8_t key[CARDLIB_AES_KEY_LEN];
	int rc = cardlib_issue_picc_key(k->ks, k->uid, key);
	if (rc == 0)
		rc = layout_auth_error(
		        cardlib_desfire_authenticate(k->d, CARDLIB_AUTH_EV1, 0, key));
	mbedtls_platform_zeroize(key, sizeof(key));
	if (rc == 0)
		rc = cardlib_desfire_change_key_ex(k->d, 0, &des0, NULL);
	if (rc)
		return rc;
	k->state = CARDLIB_CARD_BLANK;
	k->factory = des0;
	return auth_picc_with(k, &k->factory);
}

/* A blank card, authenticated: factory settings and nothing on it. */
static int wipe_blank(struct desk *k)
{
	int rc = 0;
	if (!k->settings_known || k->settings != CARDLIB_FACTORY_PICC_SETTINGS)
		rc = cardlib_desfire_change_key_settings(k->d, CARDLIB_FACTORY_PICC_SETTINGS);
	if (rc == 0)
		rc = cardlib_desfire_format_picc(k->d);
	return rc;
}

int cardlib_card_recycle(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                         const uint8_t uid[7])
{
	if (!reader || !cardlib_keyset_valid(ks))
		return CARDLIB_ERR_ARG;
	struct desk k;
	int rc = desk_open(&k, reader, ks);
	if (rc == 0 && k.state == CARDLIB_CARD_FOREIGN)
		rc = CARDLIB_ERR_CARD_FOREIGN;
	if (rc == 0 && k.state == CARDLIB_CARD_OURS) {
		if (!uid || memcmp(uid, k.uid, REAL_UID_LEN) != 0)
			rc = CARDLIB_ERR_CARD_ISSUED; /* not the card the agent looked at */
		else
			rc = give_back_picc_key(&k);
	}
	if (rc == 0)
		rc = wipe_blank(&k);
	desk_close(&k);
	return rc;
}

/* ---- issuing ----------------------------------------------------------------------------- */

/* The citypass application on a formatted card, under the PICC session: every key starts at
 * AES zeros and is changed last, the application master key very last. */
static int write_application(struct desk *k, const struct cardlib_pass_ids *ids,
                             int32_t initial_entries)
{
	const struct cardlib_keyset *ks = k->ks;
	uint8_t keys[1 + 2 * CARDLIB_LAYOUT_SECTORS_MAX][CARDLIB_AES_KEY_LEN];
	uint8_t versions[1 + 2 * CARDLIB_LAYOUT_SECTORS_MAX];
	uint8_t n_keys = 0;
	struct cardlib_desfire *d = k->d;
	int rc = cardlib_layout_card_keys(ks, k->uid, keys, &n_keys);
	memset(versions, ks->key_version, sizeof(versions));
	for (size_t i = 0; i < ks->n_sectors; i++) {
		versions[CARDLIB_LAYOUT_READ_KEY(ks->sectors[i].slot)] = ks->sectors[i].version;
		versions[CARDLIB_LAYOUT_UID_KEY(ks->sectors[i].slot)] = ks->sectors[i].version;
	}
	if (rc == 0)
		rc = cardlib_desfire_create_application(d, ks->sys.aid, APP_KEY_SETTINGS, n_keys);
	if (rc == 0)
		rc = cardlib_desfire_select_application(d, ks->sys.aid);
	if (rc == 0)
		rc = layout_auth_error(
		        cardlib_desfire_authenticate(d, DESK_AUTH, AMK_NO, zero_key));
	for (size_t i = 0; rc == 0 && i < ks->n_sectors; i++) {
		uint8_t s = ks->sectors[i].slot;
		uint16_t access =
		        CARDLIB_ACCESS(CARDLIB_LAYOUT_READ_KEY(s), AMK_NO, CARDLIB_AR_DENY, AMK_NO);
		rc = cardlib_desfire_create_std_data_file(d, CARDLIB_LAYOUT_FILE(s),
		                                          CARDLIB_COMM_FULL, access,
		                                          CARDLIB_LAYOUT_ID_LEN);
		if (rc == 0)
			rc = cardlib_desfire_write_data(d, CARDLIB_LAYOUT_FILE(s), 0, ids->id[i],
			                                CARDLIB_LAYOUT_ID_LEN, CARDLIB_COMM_FULL);
	}
	if (rc == 0 && initial_entries != CARDLIB_LAYOUT_NO_VALUE) {
		/* Debit is granted by the read right; Credit by read&write only (the AMK) */
		uint16_t access = CARDLIB_ACCESS(CARDLIB_LAYOUT_READ_KEY(ks->value_slot),
		                                 CARDLIB_AR_DENY, AMK_NO, AMK_NO);
		rc = cardlib_desfire_create_value_file(
		        d, CARDLIB_LAYOUT_VALUE_FILE, CARDLIB_COMM_FULL, access, 0,
		        CARDLIB_LAYOUT_ENTRIES_MAX, initial_entries, 0);
	}
	/* the AMK last: changing the session's own key ends the session */
	for (uint8_t n = 1; rc == 0 && n < n_keys; n++)
		rc = cardlib_desfire_change_key(d, n, keys[n], versions[n], zero_key);
	if (rc == 0)
		rc = cardlib_desfire_change_key(d, AMK_NO, keys[AMK_NO], ks->key_version, zero_key);
	mbedtls_platform_zeroize(keys, sizeof(keys));
	return rc;
}

/* The PICC level of an issued card: settings, random ID, and, last, the PICC master key. */
static int protect_picc(struct desk *k)
{
	const struct cardlib_keyset *ks = k->ks;
	int rc = desk_reauth(k);
	if (rc == 0)
		rc = cardlib_desfire_change_key_settings(k->d, CARDLIB_ISSUED_PICC_SETTINGS);
	/* a random-ID card shows a 4-byte UID at anticollision; random ID is one way */
	if (rc == 0 && ks->random_id && k->info.uid_len == REAL_UID_LEN)
		rc = cardlib_desfire_set_configuration(k->d, CARDLIB_CONFIG_RANDOM_ID);
	if (rc == 0) {
		struct cardlib_key picc;
		uint8_t key[CARDLIB_AES_KEY_LEN];
		rc = cardlib_issue_picc_key(ks, k->uid, key);
		if (rc == 0)
			rc = cardlib_key_make(&picc, CARDLIB_KEY_AES, key, sizeof(key),
			                      ks->picc_version);
		if (rc == 0)
			rc = cardlib_desfire_change_key_ex(k->d, 0, &picc, NULL);
		mbedtls_platform_zeroize(key, sizeof(key));
		mbedtls_platform_zeroize(&picc, sizeof(picc));
	}
	return rc;
}

int cardlib_card_issue(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                       const struct cardlib_pass_ids *ids, const struct cardlib_issue_opts *opts)
{
	if (!reader || !cardlib_keyset_valid(ks) || !ids || !opts ||
	    (opts->initial_entries != CARDLIB_LAYOUT_NO_VALUE &&
	     (ks->value_slot < 0 || opts->initial_entries < 0 ||
	      opts->initial_entries > CARDLIB_LAYOUT_ENTRIES_MAX)))
		return CARDLIB_ERR_ARG;
	struct desk k;
	int rc = desk_open(&k, reader, ks);
	if (rc == 0 && k.state == CARDLIB_CARD_FOREIGN)
		rc = CARDLIB_ERR_CARD_FOREIGN;
	if (rc == 0 && k.state == CARDLIB_CARD_OURS) {
		if (!opts->replace_uid || memcmp(opts->replace_uid, k.uid, REAL_UID_LEN) != 0)
			rc = CARDLIB_ERR_CARD_ISSUED;
		else
			rc = give_back_picc_key(&k);
	}
	/* from here on the card is blank, authenticated with its factory key */
	if (rc == 0)
		rc = cardlib_desfire_format_picc(k.d);
	if (rc == 0) /* FormatPICC ends the session */
		rc = desk_reauth(&k);
	if (rc == 0)
		rc = write_application(&k, ids, opts->initial_entries);
	if (rc == 0)
		rc = protect_picc(&k);
	desk_close(&k);
	return rc;
}

/* ---- looking ------------------------------------------------------------------------------ */

/* The version of key_no in the selected application: GetKeyVersion needs no key. */
static int key_version(struct cardlib_desfire *d, uint8_t key_no, uint8_t *version)
{
	return cardlib_desfire_get_key_version(d, key_no, version);
}

/* Which master of sector s made a key of version v: current 0, previous 1, unknown -1. */
static int which_master(const struct cardlib_layout_sector *s, uint8_t v)
{
	if (v == s->version)
		return 0;
	if (s->has_previous && v == s->previous_version)
		return 1;
	return -1;
}

static int read_sector(struct desk *k, size_t i, struct cardlib_card_sector *out,
                       struct cardlib_card_report *rep)
{
	const struct cardlib_layout_sector *s = &k->ks->sectors[i];
	uint8_t v = 0, key[CARDLIB_AES_KEY_LEN];
	int rc = key_version(k->d, CARDLIB_LAYOUT_READ_KEY(s->slot), &v);
	if (rc)
		return rc == CARDLIB_ERR_CARD_STATUS ? 0 : rc; /* no such key: not on the card */
	out->version = v;
	const int m = which_master(s, v);
	out->current = m == 0;
	if (m < 0 || !k->uid_known)
		return 0;
	rc = cardlib_layout_read_key(&k->ks->sys, m ? s->previous : s->master, k->uid, REAL_UID_LEN,
	                             key);
	if (rc == 0)
		rc = layout_auth_error(cardlib_desfire_authenticate(
		        k->d, DESK_AUTH, CARDLIB_LAYOUT_READ_KEY(s->slot), key));
	mbedtls_platform_zeroize(key, sizeof(key));
	if (rc == CARDLIB_ERR_AUTH)
		return 0; /* a key of that version, not of this card: not ours */
	if (rc == 0)
		rc = cardlib_desfire_read_data(k->d, CARDLIB_LAYOUT_FILE(s->slot), 0,
		                               CARDLIB_LAYOUT_ID_LEN, CARDLIB_COMM_FULL, out->id);
	if (rc == CARDLIB_ERR_FILE_MISSING || rc == CARDLIB_ERR_PERMISSION)
		return 0;
	if (rc)
		return rc;
	out->present = out->readable = 1;
	if ((int)s->slot == k->ks->value_slot) {
		rc = cardlib_desfire_get_value(k->d, CARDLIB_LAYOUT_VALUE_FILE, CARDLIB_COMM_FULL,
		                               &rep->value);
		if (rc == 0)
			rep->has_value = 1;
		else if (rc == CARDLIB_ERR_FILE_MISSING)
			rc = 0;
	}
	return rc;
}

int cardlib_card_inspect(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                         struct cardlib_card_report *out)
{
	if (!reader || !cardlib_keyset_valid(ks) || !out)
		return CARDLIB_ERR_ARG;
	memset(out, 0, sizeof(*out));
	const unsigned long before = reader->stats.selects + reader->stats.exchanges;
	struct desk k;
	int rc = desk_open(&k, reader, ks);
	if (rc == 0) {
		out->state = k.state;
		out->picc_key_type = k.factory.type;
		out->settings_known = k.settings_known;
		out->picc_settings = k.settings;
		out->random_id = k.info.uid_len != REAL_UID_LEN;
		out->uid_known = k.uid_known;
		out->app_keys_unknown = k.app_keys_unknown;
		memcpy(out->uid, k.uid, REAL_UID_LEN);
		rc = cardlib_desfire_select_application(k.d, ks->sys.aid);
		if (rc == CARDLIB_ERR_APP_MISSING) {
			rc = 0;
		} else if (rc == 0) {
			out->has_app = 1;
			rc = key_version(k.d, AMK_NO, &out->app_key_version);
			for (size_t i = 0; rc == 0 && i < ks->n_sectors; i++)
				rc = read_sector(&k, i, &out->sectors[i], out);
		}
	}
	desk_close(&k);
	out->commands = reader->stats.selects + reader->stats.exchanges - before;
	return rc;
}

/* ---- moving keys -------------------------------------------------------------------------- */

int cardlib_card_update_keys(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                             const uint8_t uid[7], size_t *changed)
{
	if (!reader || !cardlib_keyset_valid(ks) || !uid || !changed)
		return CARDLIB_ERR_ARG;
	*changed = 0;
	struct desk k;
	memset(&k, 0, sizeof(k));
	k.reader = reader;
	k.ks = ks;
	int rc = layout_select_card(reader, &k.d, &k.info);
	if (rc == 0) {
		memcpy(k.uid, uid, REAL_UID_LEN);
		k.uid_known = 1;
		rc = cardlib_desfire_select_application(k.d, ks->sys.aid);
	}
	uint8_t amk[CARDLIB_AES_KEY_LEN];
	if (rc == 0)
		rc = cardlib_layout_read_key(&ks->sys, ks->app_master, uid, REAL_UID_LEN, amk);
	for (size_t i = 0; rc == 0 && i < ks->n_sectors; i++) {
		const struct cardlib_layout_sector *s = &ks->sectors[i];
		int moved = 0;
		/* the read key and the UID key move apart: a card pulled between the two has
		 * them at different versions, and the next visit finishes the move */
		for (int which = 0; rc == 0 && which < 2; which++) {
			const uint8_t no = which ? CARDLIB_LAYOUT_UID_KEY(s->slot)
			                         : CARDLIB_LAYOUT_READ_KEY(s->slot);
			uint8_t v = 0, oldk[CARDLIB_AES_KEY_LEN], newk[CARDLIB_AES_KEY_LEN];
			rc = key_version(k.d, no, &v);
			if (rc)
				break;
			const int m = which_master(s, v);
			if (m == 0)
				continue;
			if (m < 0) {
				rc = CARDLIB_ERR_AUTH; /* a version this keyset no longer knows */
				break;
			}
			if (which) {
				rc = cardlib_layout_uid_key(&ks->sys, s->previous, oldk);
				if (rc == 0)
					rc = cardlib_layout_uid_key(&ks->sys, s->master, newk);
			} else {
				rc = cardlib_layout_read_key(&ks->sys, s->previous, uid,
				                             REAL_UID_LEN, oldk);
				if (rc == 0)
					rc = cardlib_layout_read_key(&ks->sys, s->master, uid,
					                             REAL_UID_LEN, newk);
			}
			if (rc == 0)
				rc = layout_auth_error(
				        cardlib_desfire_authenticate(k.d, DESK_AUTH, AMK_NO, amk));
			if (rc == 0)
				rc = cardlib_desfire_change_key(k.d, no, newk, s->version, oldk);
			mbedtls_platform_zeroize(oldk, sizeof(oldk));
			mbedtls_platform_zeroize(newk, sizeof(newk));
			moved = 1;
		}
		if (rc == 0 && moved)
			(*changed)++;
	}
	mbedtls_platform_zeroize(amk, sizeof(amk));
	desk_close(&k);
	return rc;
}
