/*
 * The citypass card layout (cardlib/layout.h): its keys, and one gate's tap. Issuing and
 * the rest of the card's life are in issue.c.
 */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "cardlib/diversify.h"
#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "layout_internal.h"

#define REAL_UID_LEN 7

/* layout.h: the UID key's label stands where a UID would; 00 is no manufacturer code. */
static const uint8_t uid_key_label[REAL_UID_LEN] = {0x00, 'U', 'I', 'D', 'K', 'E', 'Y'};

struct cardlib_card {
	struct cardlib_reader *reader;
	struct cardlib_desfire *d;
	struct cardlib_sector_key key;
	int uid_key_previous; /* the previous version's UID key opened a random-ID card */
	int has_value;
	int32_t value;
};

/* ---- keys ------------------------------------------------------------------------------ */

static int system_valid(const struct cardlib_layout_system *sys)
{
	return sys && sys->aid != 0 && sys->aid <= 0xFFFFFFu &&
	       sys->sys_id_len <= CARDLIB_DIVERSIFY_SYS_MAX;
}

int cardlib_layout_read_key(const struct cardlib_layout_system *sys,
                            const uint8_t master[CARDLIB_AES_KEY_LEN], const uint8_t *uid,
                            size_t uid_len, uint8_t out[CARDLIB_AES_KEY_LEN])
{
	if (!system_valid(sys) || uid_len != REAL_UID_LEN)
		return CARDLIB_ERR_ARG;
	return cardlib_diversify_card_key(master, uid, uid_len, sys->aid, sys->sys_id,
	                                  sys->sys_id_len, out);
}

int cardlib_layout_uid_key(const struct cardlib_layout_system *sys,
                           const uint8_t master[CARDLIB_AES_KEY_LEN],
                           uint8_t out[CARDLIB_AES_KEY_LEN])
{
	if (!system_valid(sys))
		return CARDLIB_ERR_ARG;
	return cardlib_diversify_card_key(master, uid_key_label, sizeof(uid_key_label), sys->aid,
	                                  sys->sys_id, sys->sys_id_len, out);
}

int cardlib_keyset_valid(const struct cardlib_keyset *ks)
{
	if (!ks || !system_valid(&ks->sys) || ks->n_sectors == 0 ||
	    ks->n_sectors > CARDLIB_LAYOUT_SECTORS_MAX)
		return 0;
	unsigned seen = 0;
	int value_found = ks->value_slot < 0;
	for (size_t i = 0; i < ks->n_sectors; i++) {
		unsigned s = ks->sectors[i].slot;
		if (s >= CARDLIB_LAYOUT_SECTORS_MAX || (seen & (1u << s)))
			return 0;
		seen |= 1u << s;
		if ((int)s == ks->value_slot)
			value_found = 1;
	}
	return value_found;
}

int cardlib_keyset_sector_key(const struct cardlib_keyset *ks, size_t index,
                              struct cardlib_sector_key *out)
{
	if (!cardlib_keyset_valid(ks) || index >= ks->n_sectors || !out)
		return CARDLIB_ERR_ARG;
	const struct cardlib_layout_sector *s = &ks->sectors[index];
	memset(out, 0, sizeof(*out));
	out->sys = ks->sys;
	out->slot = s->slot;
	memcpy(out->master, s->master, CARDLIB_AES_KEY_LEN);
	out->version = s->version;
	out->has_previous = s->has_previous;
	memcpy(out->previous, s->previous, CARDLIB_AES_KEY_LEN);
	out->previous_version = s->previous_version;
	out->reads_value = ks->value_slot == (int)out->slot;
	out->auth = CARDLIB_AUTH_EV2;
	return 0;
}

int cardlib_layout_card_keys(const struct cardlib_keyset *ks, const uint8_t uid[7],
                             uint8_t keys[][CARDLIB_AES_KEY_LEN], uint8_t *n_keys)
{
	if (!cardlib_keyset_valid(ks) || !uid || !keys || !n_keys)
		return CARDLIB_ERR_ARG;
	uint8_t max_slot = 0;
	for (size_t i = 0; i < ks->n_sectors; i++)
		if (ks->sectors[i].slot > max_slot)
			max_slot = ks->sectors[i].slot;
	*n_keys = (uint8_t)(1 + 2 * (max_slot + 1));
	int rc = cardlib_layout_read_key(&ks->sys, ks->app_master, uid, REAL_UID_LEN, keys[0]);
	for (uint8_t k = 1; rc == 0 && k < *n_keys; k++) /* slots the card does not carry */
		memcpy(keys[k], keys[0], CARDLIB_AES_KEY_LEN);
	for (size_t i = 0; rc == 0 && i < ks->n_sectors; i++) {
		const struct cardlib_layout_sector *s = &ks->sectors[i];
		rc = cardlib_layout_read_key(&ks->sys, s->master, uid, REAL_UID_LEN,
		                             keys[CARDLIB_LAYOUT_READ_KEY(s->slot)]);
		if (rc == 0)
			rc = cardlib_layout_uid_key(&ks->sys, s->master,
			                            keys[CARDLIB_LAYOUT_UID_KEY(s->slot)]);
	}
	return rc;
}

int layout_select_card(struct cardlib_reader *reader, struct cardlib_desfire **d,
                       struct cardlib_target_info *info)
{
	int rc = cardlib_reader_select(reader, info);
	if (rc == 0)
		return CARDLIB_ERR_NO_CARD;
	if (rc < 0)
		return rc;
	rc = cardlib_desfire_open(d, reader, info);
	if (rc < 0)
		cardlib_reader_release(reader);
	return rc;
}

void layout_end_session(struct cardlib_reader *reader, struct cardlib_desfire *d)
{
	cardlib_desfire_close(d);
	cardlib_reader_release(reader);
}

int layout_auth_error(int rc)
{
	return rc == CARDLIB_ERR_PERMISSION || rc == CARDLIB_ERR_CARD_STATUS ? CARDLIB_ERR_AUTH
	                                                                     : rc;
}

/* ---- a gate's tap ---------------------------------------------------------------------- */

static int sector_key_valid(const struct cardlib_sector_key *key)
{
	return key && system_valid(&key->sys) && key->slot < CARDLIB_LAYOUT_SECTORS_MAX &&
	       (key->auth == CARDLIB_AUTH_EV2 || key->auth == CARDLIB_AUTH_EV1);
}

/* The real UID: the anticollision one, or GetCardUID under the sector's UID key when the
 * card shows a random ID (layout.h: one more authentication). */
static int real_uid(struct cardlib_card *c, const struct cardlib_target_info *info,
                    struct cardlib_card_read *read)
{
	read->random_id = info->uid_len != REAL_UID_LEN;
	if (!read->random_id) {
		memcpy(read->uid, info->uid, REAL_UID_LEN);
		read->uid_len = REAL_UID_LEN;
		return 0;
	}
	uint8_t uid_key[CARDLIB_AES_KEY_LEN];
	int rc = CARDLIB_ERR_AUTH;
	/* the current version first; the previous one while a rotation goes on */
	for (int prev = 0; rc == CARDLIB_ERR_AUTH && prev <= c->key.has_previous; prev++) {
		rc = cardlib_layout_uid_key(&c->key.sys, prev ? c->key.previous : c->key.master,
		                            uid_key);
		if (rc == 0)
			rc = layout_auth_error(cardlib_desfire_authenticate(
			        c->d, c->key.auth, CARDLIB_LAYOUT_UID_KEY(c->key.slot), uid_key));
		if (rc == 0)
			c->uid_key_previous = prev;
	}
	mbedtls_platform_zeroize(uid_key, sizeof(uid_key));
	if (rc == 0)
		rc = cardlib_desfire_get_card_uid(c->d, read->uid, &read->uid_len);
	if (rc == 0 && read->uid_len != REAL_UID_LEN)
		rc = CARDLIB_ERR_LAYOUT;
	return rc;
}

/* Authenticated, a file refused is a card laid out otherwise. */
static int file_error(int rc)
{
	return rc == CARDLIB_ERR_FILE_MISSING || rc == CARDLIB_ERR_PERMISSION ? CARDLIB_ERR_LAYOUT
	                                                                      : rc;
}

static int read_sector_files(struct cardlib_card *c, struct cardlib_card_read *read)
{
	uint8_t read_key[CARDLIB_AES_KEY_LEN];
	int rc = CARDLIB_ERR_AUTH;
	/* The version that opened a random-ID card's UID key first (a card moved to the new
	 * version at a desk has both keys at it, unless it was pulled between the two
	 * ChangeKeys); the current version first on other cards. */
	const int first = read->random_id ? c->uid_key_previous : 0;
	for (int i = 0; rc == CARDLIB_ERR_AUTH && i <= c->key.has_previous; i++) {
		const int prev = i ? !first : first;
		rc = cardlib_layout_read_key(&c->key.sys, prev ? c->key.previous : c->key.master,
		                             read->uid, read->uid_len, read_key);
		if (rc == 0)
			rc = layout_auth_error(cardlib_desfire_authenticate(
			        c->d, c->key.auth, CARDLIB_LAYOUT_READ_KEY(c->key.slot), read_key));
		if (rc == 0) {
			read->previous_key = prev;
			read->key_version = prev ? c->key.previous_version : c->key.version;
		}
	}
	mbedtls_platform_zeroize(read_key, sizeof(read_key));
	if (rc == 0)
		rc = file_error(cardlib_desfire_read_data(c->d, CARDLIB_LAYOUT_FILE(c->key.slot), 0,
		                                          CARDLIB_LAYOUT_ID_LEN, CARDLIB_COMM_FULL,
		                                          read->id));
	if (rc == 0 && c->key.reads_value) {
		rc = cardlib_desfire_get_value(c->d, CARDLIB_LAYOUT_VALUE_FILE, CARDLIB_COMM_FULL,
		                               &read->value);
		if (rc == CARDLIB_ERR_FILE_MISSING) { /* a card without entry tickets */
			read->value = 0;
			rc = 0;
		} else if (rc == 0) {
			read->has_value = 1;
		} else {
			rc = file_error(rc);
		}
	}
	return rc;
}

int cardlib_card_open_sector(struct cardlib_card **out, struct cardlib_reader *reader,
                             const struct cardlib_sector_key *key, struct cardlib_card_read *read)
{
	if (!out || !reader || !sector_key_valid(key) || !read)
		return CARDLIB_ERR_ARG;
	*out = NULL;
	memset(read, 0, sizeof(*read));
	struct cardlib_card *c = calloc(1, sizeof(*c));
	if (!c)
		return CARDLIB_ERR_NOMEM;
	c->reader = reader;
	c->key = *key;

	struct cardlib_target_info info;
	int rc = layout_select_card(reader, &c->d, &info);
	if (rc < 0) {
		c->d = NULL;
		cardlib_card_close(c);
		return rc;
	}
	rc = cardlib_desfire_select_application(c->d, key->sys.aid);
	if (rc == 0)
		rc = real_uid(c, &info, read);
	if (rc == 0)
		rc = read_sector_files(c, read);
	if (rc < 0) {
		cardlib_card_close(c);
		memset(read, 0, sizeof(*read));
		return rc;
	}
	c->has_value = read->has_value;
	c->value = read->value;
	*out = c;
	return 0;
}

int cardlib_card_debit_begin(struct cardlib_card *c, int32_t *remaining)
{
	if (!c || !remaining)
		return CARDLIB_ERR_ARG;
	if (!c->key.reads_value || !c->has_value)
		return CARDLIB_ERR_LAYOUT;
	if (c->value <= 0) /* the card would refuse it (BE): spare the exchange */
		return CARDLIB_ERR_VALUE_EXHAUSTED;
	int rc = cardlib_desfire_debit(c->d, CARDLIB_LAYOUT_VALUE_FILE, CARDLIB_COMM_FULL, 1);
	if (rc < 0)
		return rc;
	*remaining = c->value - 1;
	return 0;
}

int cardlib_card_debit_commit(struct cardlib_card *c)
{
	if (!c || !c->d)
		return CARDLIB_ERR_ARG;
	int rc = cardlib_desfire_commit(c->d);
	if (rc < 0)
		return rc;
	c->value--;
	return 0;
}

int cardlib_card_debit_abort(struct cardlib_card *c)
{
	if (!c || !c->d)
		return CARDLIB_ERR_ARG;
	return cardlib_desfire_abort(c->d);
}

int cardlib_card_debit_entry(struct cardlib_card *c, int32_t *remaining)
{
	int32_t left = 0;
	int rc = cardlib_card_debit_begin(c, &left);
	if (rc == 0)
		rc = cardlib_card_debit_commit(c);
	if (rc < 0)
		return rc;
	*remaining = left;
	return 0;
}

void cardlib_card_close(struct cardlib_card *c)
{
	if (!c)
		return;
	if (c->d)
		layout_end_session(c->reader, c->d);
	mbedtls_platform_zeroize(c, sizeof(*c));
	free(c);
}

int cardlib_card_read_sector(struct cardlib_reader *reader, const struct cardlib_sector_key *key,
                             struct cardlib_card_read *out)
{
	struct cardlib_card *c = NULL;
	int rc = cardlib_card_open_sector(&c, reader, key, out);
	cardlib_card_close(c);
	return rc;
}
