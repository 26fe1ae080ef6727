/*
 * cardlib/issue.h — a card's life at the desk (DESIGN.md §3 "The card's life";
 * docs/card-layout.md): issuing a card as a town buys it, looking at one, moving its keys to
 * the current versions, and taking it back.
 *
 * The card as NXP ships it has a PICC master key of zeros (DES; 2K3DES, 3K3DES or AES on
 * some batches) and key settings 0x0F: anyone may format it. Issuing leaves it with
 *   - the citypass application (cardlib/layout.h), every key diversified for this card;
 *   - the PICC master key AES, diversified from the issuer's PICC master (AN10922 with
 *     M = UID || 000000 || system identifier): only the issuing side holds that master, no
 *     gate does;
 *   - PICC key settings 0x09: FormatPICC, CreateApplication, DeleteApplication and the
 *     listings need the PICC master key, which may still change (and so may the settings);
 *   - random ID on, when the keyset says so (one way: a card cannot turn it off).
 *
 * Order, so that a card pulled from the field at any step is either untouched or completely
 * issued, never half (DESFire applies each command whole or not at all): while the PICC
 * master key is still a factory key, the card counts as blank, whatever it holds — anyone
 * could format it, and issuing it again starts with FormatPICC; the last command is the
 * ChangeKey that gives it this issuer's PICC key. Taking a card back changes the PICC key
 * back to DES zeros first and formats after, so a pulled card is again either issued or
 * blank. (The opposite order could leave a random-ID card with this issuer's diversified
 * PICC key and no application: nobody could then learn its UID, and so its key.)
 *
 * Every function selects the card in the reader's field itself and releases it.
 */
#ifndef CARDLIB_ISSUE_H
#define CARDLIB_ISSUE_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/layout.h"
#include "cardlib/reader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PICC key settings after issuing: master key changeable (bit 0), configuration changeable
 * (bit 3); no free listing (bit 1), no free create/delete (bit 2). */
#define CARDLIB_ISSUED_PICC_SETTINGS  0x09
#define CARDLIB_FACTORY_PICC_SETTINGS 0x0F

enum cardlib_card_state {
	CARDLIB_CARD_BLANK = 0, /* a factory PICC master key: as bought, or taken back */
	CARDLIB_CARD_OURS,      /* this issuer's diversified PICC master key */
	CARDLIB_CARD_FOREIGN,   /* a PICC master key that is neither */
};

/* What the card holds in one sector of the keyset (same index as ks->sectors). */
struct cardlib_card_sector {
	int present;     /* the sector's file is on the card */
	int readable;    /* its identifier was read (a key version the keyset knows) */
	uint8_t version; /* the version of the sector's keys on the card */
	int current;     /* that version is the keyset's current one */
	uint8_t id[CARDLIB_LAYOUT_ID_LEN];
};

struct cardlib_card_report {
	enum cardlib_card_state state;
	enum cardlib_key_type picc_key_type; /* BLANK: the type of its factory key */
	int settings_known;
	uint8_t picc_settings; /* when settings_known */
	int random_id;         /* a random ID at anticollision */
	int uid_known;
	uint8_t uid[7]; /* the real UID, when uid_known */
	int has_app;    /* the citypass application is on the card */
	/* FOREIGN, yet a random-ID card carrying the citypass application: none of the
	 * keyset's UID keys (current or previous version) opens it - a retired key version,
	 * or another deployment's card */
	int app_keys_unknown;
	uint8_t app_key_version;
	struct cardlib_card_sector sectors[CARDLIB_LAYOUT_SECTORS_MAX];
	int has_value;
	int32_t value;
	/* reader commands the look took (selections + exchanges) */
	unsigned long commands;
};

/* Look at the card in the field with the issuer's keys: its state, real UID, and what its
 * citypass application holds. Never changes the card. CARDLIB_ERR_NO_CARD,
 * _NOT_DESFIRE, or the reader's error; a foreign card is a report, not an error. */
int cardlib_card_inspect(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                         struct cardlib_card_report *out);

struct cardlib_issue_opts {
	/* CARDLIB_LAYOUT_NO_VALUE, or the entries of the value file (needs ks->value_slot) */
	int32_t initial_entries;
	/* NULL: only a blank card is issued (an issued one is CARDLIB_ERR_CARD_ISSUED). Else
	 * the real UID (7 bytes) of a card of this issuer the caller has checked holds no live
	 * pass (cardlib_card_inspect): it is taken back, then issued. */
	const uint8_t *replace_uid;
};

/*
 * Issue the card in the field with the pass's identifiers. 0 when the card is completely
 * issued. Refusals: CARDLIB_ERR_CARD_FOREIGN (a PICC master key neither factory nor ours),
 * CARDLIB_ERR_CARD_ISSUED (ours, and not the card opts->replace_uid allows), _NOT_DESFIRE,
 * _NO_CARD; a card pulled away gives the reader's error and is left as the header says.
 */
int cardlib_card_issue(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                       const struct cardlib_pass_ids *ids, const struct cardlib_issue_opts *opts);

/*
 * Take back a card of this issuer (the caller has checked the pass it held is revoked or
 * replaced): the PICC master key back to DES zeros, settings 0x0F, everything formatted.
 * Random ID stays on when it was (a card cannot turn it off). uid: the real UID the caller
 * inspected, so that another card put in its place is not wiped (CARDLIB_ERR_CARD_ISSUED).
 * A blank card that still holds an application (taken back halfway) is formatted.
 */
int cardlib_card_recycle(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                         const uint8_t uid[7]);

/*
 * Move every sector whose keys on the card are at the keyset's previous version to the
 * current one (ChangeKey of the read and UID keys with the application master key). A
 * sector at neither version is CARDLIB_ERR_AUTH. *changed gets the number of sectors moved.
 */
int cardlib_card_update_keys(struct cardlib_reader *reader, const struct cardlib_keyset *ks,
                             const uint8_t uid[7], size_t *changed);

/* The PICC master key of the card with this real UID (AN10922, AID 000000). */
int cardlib_issue_picc_key(const struct cardlib_keyset *ks, const uint8_t uid[7],
                           uint8_t out[CARDLIB_AES_KEY_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_ISSUE_H */
