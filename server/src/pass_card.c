/*
 * pass_card.c — the card at the desk (server/passes.h, docs/admin.md "Cards"): personalising
 * a card as a town buys it for a pass being issued, reading which pass a card holds, and
 * taking a card back. The card work itself is cardlib's (cardlib/issue.h), through a reader
 * the caller opened: a libnfc reader for citypass-admin, the desk's for the back office, a
 * loopback to the bench's virtual card in tests. This file turns the deployment's keys and
 * database into a keyset, and cardlib's outcomes into refusals.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/platform_util.h>

#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "pass_internal.h"

static int meta_int(struct server_store *st, const char *key, int dflt)
{
	char buf[16];
	if (st->ops->meta_get(st->ctx, key, buf, sizeof(buf)) != 0)
		return dflt;
	return atoi(buf);
}

/*
 * The issuing side's keyset: every sector of the deployment, its masters at the current and
 * previous versions, the application and PICC masters, random ID as init chose. A
 * deployment made before cards were protected gets its issuer PICC master key now.
 * sectors/n receive the deployment's sectors (ks->sectors[i] is sectors[i]).
 */
static int load_keyset(const struct server_desk *d, struct cardlib_keyset *ks,
                       struct server_sector **sectors, size_t *n, struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_card_keys ck;
	int rc = server_card_keys_load(d->data, &ck);
	if (rc)
		return server_why_set(why, rc, "cannot load the card keys: %s",
		                      server_strerror(rc));
	if (!ck.has_picc_master && (rc = server_card_keys_add_picc_master(d->data, &ck)) != 0) {
		mbedtls_platform_zeroize(&ck, sizeof(ck));
		return server_why_set(why, rc, "cannot create the issuer PICC master key: %s",
		                      server_strerror(rc));
	}
	if ((rc = st->ops->sector_list(st->ctx, sectors, n)) != 0) {
		mbedtls_platform_zeroize(&ck, sizeof(ck));
		return pass_why_store(why, st, rc, "cannot read the sectors");
	}
	memset(ks, 0, sizeof(*ks));
	ks->sys.aid = CARDLIB_LAYOUT_AID;
	memcpy(ks->sys.sys_id, ck.sys_id, SERVER_SYS_ID_LEN);
	ks->sys.sys_id_len = SERVER_SYS_ID_LEN;
	memcpy(ks->app_master, ck.app_master, sizeof(ks->app_master));
	ks->key_version = ck.key_version;
	memcpy(ks->picc_master, ck.picc_master, sizeof(ks->picc_master));
	ks->picc_version = ck.picc_version;
	ks->random_id = meta_int(st, "random_id", 1);
	ks->value_slot = -1;
	const int vsec = meta_int(st, "value_sector", -1);
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

/* The pass a card of this deployment holds, found from the identifiers it gave: 0 and
 * *pass, or NOT_FOUND (an orphan: a card finished by an issue the database rolled back). */
static int pass_of_card(struct server_store *st, const struct cardlib_card_report *rep,
                        const struct server_sector *sectors, size_t n, int64_t *pass)
{
	for (size_t i = 0; i < n && i < CARDLIB_LAYOUT_SECTORS_MAX; i++) {
		if (!rep->sectors[i].readable)
			continue;
		int rc =
		        st->ops->pass_id_find(st->ctx, sectors[i].number, rep->sectors[i].id, pass);
		if (rc != SERVER_ERR_NOT_FOUND)
			return rc;
	}
	return SERVER_ERR_NOT_FOUND;
}

/* A card the desk may issue: blank, or ours holding no pass (*retake: its UID, to take it
 * back first). IN_USE when it holds a pass, CARD for another system's. */
static int card_issuable(struct server_store *st, const struct cardlib_card_report *rep,
                         const struct server_sector *v, size_t n, const char *reader,
                         const uint8_t **retake, struct server_why *why)
{
	int64_t holder = 0;
	*retake = NULL;
	if (rep->state == CARDLIB_CARD_FOREIGN)
		return server_why_set(why, SERVER_ERR_CARD, "card not issued at reader '%s': %s",
		                      reader, cardlib_strerror(CARDLIB_ERR_CARD_FOREIGN));
	if (rep->state != CARDLIB_CARD_OURS)
		return 0;
	int rc = pass_of_card(st, rep, v, n, &holder);
	if (rc == 0) {
		struct server_pass p;
		const char *state = st->ops->pass_get(st->ctx, holder, &p) == 0
		                            ? server_pass_state_name(p.state)
		                            : "unknown";
		return server_why_set(why, SERVER_ERR_IN_USE,
		                      "card not issued at reader '%s': it holds pass %" PRId64
		                      " (%s); a card is taken back with 'citypass-admin card "
		                      "recycle --reader %s' once its pass is revoked or replaced",
		                      reader, holder, state, reader);
	}
	if (rc != SERVER_ERR_NOT_FOUND)
		return pass_why_store(why, st, rc, "cannot look up the card's pass");
	/* a card an earlier issue finished after its pass was rolled back */
	*retake = rep->uid;
	return 0;
}

int pass_card_personalise(const struct server_desk *d, int64_t pass,
                          const struct server_pass_medium *medium, const struct server_right *r,
                          size_t nr, int *retaken, struct server_why *why)
{
	struct server_store *st = d->st;
	const char *reader = medium->reader_name ? medium->reader_name : "desk";
	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = load_keyset(d, &ks, &v, &n, why);
	if (rc)
		return rc;
	/* entries on the value file come from the value sector's right, when the card
	 * carries them (pass_mark_card_entries) */
	int32_t entries = 0;
	const int vsec = pass_value_sector(st);
	for (size_t j = 0; j < nr; j++)
		if (r[j].sector == vsec && (r[j].p.flags & PROTO_PROFILE_ENTRIES_ON_CARD))
			entries = r[j].p.limit;
	memset(&ids, 0, sizeof(ids));
	for (size_t i = 0; i < ks.n_sectors && rc == 0; i++)
		rc = st->ops->pass_id_get(st->ctx, pass, v[i].number, ids.id[i], NULL);
	if (rc)
		pass_why_store(why, st, rc, "cannot read the pass's identifiers");
	struct cardlib_card_report rep;
	struct cardlib_issue_opts opts = {
	        .initial_entries = ks.value_slot >= 0 ? entries : CARDLIB_LAYOUT_NO_VALUE};
	int crc = 0;
	if (rc == 0)
		crc = cardlib_card_inspect(medium->reader, &ks, &rep);
	if (rc == 0 && crc == 0)
		rc = card_issuable(st, &rep, v, n, reader, &opts.replace_uid, why);
	if (rc == 0 && crc == 0) {
		crc = cardlib_card_issue(medium->reader, &ks, &ids, &opts);
		*retaken = crc == 0 && opts.replace_uid != NULL;
	}
	if (rc == 0 && crc)
		rc = server_why_set(why, SERVER_ERR_CARD, "card not issued at reader '%s': %s",
		                    reader, cardlib_strerror(crc));
	free(v);
	mbedtls_platform_zeroize(&ks, sizeof(ks));
	mbedtls_platform_zeroize(&ids, sizeof(ids));
	return rc;
}

int server_card_inspect(const struct server_desk *d, struct cardlib_reader *reader,
                        const char *reader_name, int update_keys, struct server_card_info *out,
                        struct server_why *why)
{
	struct server_store *st = d->st;
	struct cardlib_keyset ks;
	struct server_sector *v = NULL;
	size_t n = 0;
	memset(out, 0, sizeof(*out));
	int rc = load_keyset(d, &ks, &v, &n, why);
	if (rc)
		return rc;
	struct cardlib_card_report *rep = &out->report;
	int crc = cardlib_card_inspect(reader, &ks, rep);
	if (crc == 0 && update_keys && rep->state == CARDLIB_CARD_OURS && rep->uid_known) {
		crc = cardlib_card_update_keys(reader, &ks, rep->uid, &out->moved);
		if (crc == 0)
			crc = cardlib_card_inspect(reader, &ks, rep);
	} else if (crc == 0 && update_keys) {
		rc = server_why_set(why, SERVER_ERR_INVALID,
		                    "--update-keys: the card is not issued by this deployment");
	}
	if (crc)
		rc = server_why_set(why, SERVER_ERR_CARD, "cannot read the card at reader '%s': %s",
		                    reader_name ? reader_name : "desk", cardlib_strerror(crc));
	if (rc == 0) {
		int64_t pass = 0;
		int src = rep->has_app ? pass_of_card(st, rep, v, n, &pass) : SERVER_ERR_NOT_FOUND;
		if (src == 0)
			src = server_pass_read(d, pass, &out->pass, why);
		else if (src != SERVER_ERR_NOT_FOUND)
			pass_why_store(why, st, src, "cannot look up the card's pass");
		out->has_pass = src == 0;
		if (src != 0 && src != SERVER_ERR_NOT_FOUND)
			rc = src;
		for (size_t i = 0; i < n && i < ks.n_sectors && i < SERVER_CARD_SLOTS; i++) {
			out->sectors[i] = v[i];
			out->version[i] = ks.sectors[i].version;
			out->previous_version[i] = ks.sectors[i].previous_version;
			out->has_previous[i] = ks.sectors[i].has_previous;
			out->n_sectors = i + 1;
		}
	}
	free(v);
	mbedtls_platform_zeroize(&ks, sizeof(ks));
	return rc;
}

int server_card_recycle(const struct server_desk *d, struct cardlib_reader *reader,
                        const char *reader_name, int *random_id, struct server_why *why)
{
	struct server_store *st = d->st;
	const char *name = reader_name ? reader_name : "desk";
	struct cardlib_keyset ks;
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = load_keyset(d, &ks, &v, &n, why);
	if (rc)
		return rc;
	struct cardlib_card_report rep;
	int crc = cardlib_card_inspect(reader, &ks, &rep);
	if (crc == 0 && rep.state == CARDLIB_CARD_FOREIGN)
		crc = CARDLIB_ERR_CARD_FOREIGN;
	if (crc == 0 && rep.state == CARDLIB_CARD_OURS) {
		int64_t pass = 0;
		struct server_pass p;
		int src = pass_of_card(st, &rep, v, n, &pass);
		if (src == 0 && (src = st->ops->pass_get(st->ctx, pass, &p)) == 0 &&
		    p.state != SERVER_PASS_REVOKED && p.state != SERVER_PASS_REPLACED)
			rc = server_why_set(
			        why, SERVER_ERR_IN_USE,
			        "card not recycled: it holds pass %" PRId64
			        " (%s), which must be revoked ('pass revoke') or replaced "
			        "('pass replace') first",
			        pass, server_pass_state_name(p.state));
		else if (src && src != SERVER_ERR_NOT_FOUND)
			rc = pass_why_store(why, st, src, "cannot look up the card's pass");
	}
	if (crc == 0 && rc == 0) {
		crc = cardlib_card_recycle(reader, &ks, rep.uid_known ? rep.uid : NULL);
		if (random_id)
			*random_id = rep.random_id;
	}
	if (crc && rc == 0)
		rc = server_why_set(why, SERVER_ERR_CARD, "card not recycled at reader '%s': %s",
		                    name, cardlib_strerror(crc));
	free(v);
	mbedtls_platform_zeroize(&ks, sizeof(ks));
	return rc;
}
