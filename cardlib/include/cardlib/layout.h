/*
 * cardlib/layout.h — the citypass card: what is written on a DESFire card, and how a gate
 * reads its own sector of it (DESIGN.md s.3).
 *
 * One application, CARDLIB_LAYOUT_AID. Inside it, per service sector carried by the card,
 * one std data file holding the pass's 16-byte pseudonymous identifier for that sector,
 * enciphered (CARDLIB_COMM_FULL) and readable only with that sector's read key; and,
 * optionally, one value file of entry tickets, debited with the key of the sector whose
 * gates sell the entries and credited only with the application master key.
 *
 * Sectors are data: the issuer's keyset lists the sectors a card carries, each by its slot
 * (0 to CARDLIB_LAYOUT_SECTORS_MAX - 1). Which slot is the pool and which the library is
 * the deployment's configuration, not cardlib's.
 *
 * Key-slot plan (an AES application holds at most 14 keys, numbered 0 to 13):
 *
 *   key 0          application master key, diversified (AN10922) from the issuer's
 *                  application master: ChangeKey, creates files, writes identifiers,
 *                  credits the value file
 *   key 1 + 2s     sector s read key, diversified from the sector master: reads file 1 + s,
 *                  and (for the value sector) reads and debits the value file
 *   key 2 + 2s     sector s UID key: NOT diversified (a gate cannot diversify before it
 *                  knows the UID), derived from the sector master with the label M =
 *                  00 'U' 'I' 'D' 'K' 'E' 'Y' || AID || system identifier. It grants nothing
 *                  but GetCardUID (any authentication does) on random-ID cards. The label
 *                  has the length of a UID and starts with 00, which is no ISO/IEC 7816-6
 *                  manufacturer code, so no card's read key equals a UID key.
 *   key 13         not created
 *
 * So a card carries at most 6 sectors (slots 0..5); the application gets 1 + 2 (s_max + 1)
 * keys. Slots below s_max that the card does not carry get the card's application master
 * key, so no key of the application is left at its default (a zero key would let anyone
 * run GetCardUID). A gate holds only its sector's master key, from which it derives both
 * keys it needs; a stolen gate yields neither another sector's keys nor any card's AMK.
 *
 * Files: std data file 1 + s (16 bytes, enciphered; read: key 1 + 2s, write: key 0,
 * read&write: never, change: key 0); value file CARDLIB_LAYOUT_VALUE_FILE (enciphered;
 * read: the value sector's read key, which also allows Debit; write: never; read&write:
 * key 0, i.e. Credit; change: key 0; limits 0 .. CARDLIB_LAYOUT_ENTRIES_MAX).
 *
 * What a tap costs, in reader commands (selection + exchanges; DESIGN.md s.9):
 *   plain card      selection, SelectApplication, authenticate (2), ReadData        = 5
 *   random-ID card  selection, SelectApplication, authenticate UID key (2),
 *                   GetCardUID, authenticate read key (2), ReadData                 = 8
 *   + GetValue when the gate's sector holds the value file, + Debit and Commit for an entry.
 * An authentication is two exchanges (EV2First and EV1 alike), so the random-ID path is
 * 8, one over the 7 of DESIGN.md s.9.
 *
 * The PICC master key, and the card's whole life (cardlib/issue.h, docs/card-layout.md):
 * cards come as NXP ships them (PICC master key DES 00*8, or 2K3DES/3K3DES/AES zeros,
 * settings 0x0F); issuing leaves the PICC master key diversified from the issuer's PICC
 * master (AN10922, AID 000000), settings 0x09 (FormatPICC, CreateApplication,
 * DeleteApplication and listings need that key) and, as the deployment chooses, random ID.
 *
 * Key versions: every key carries one. The application master key has the keyset's
 * key_version; a sector's two keys have that sector's version, which `keys rotate` raises.
 * A gate holds its sector's current and previous master and opens cards of either version
 * (the previous costs a failed authentication more); a card moves to the current version
 * at a desk (cardlib_card_update_keys).
 */
#ifndef CARDLIB_LAYOUT_H
#define CARDLIB_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/desfire.h"
#include "cardlib/diversify.h"
#include "cardlib/reader.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Not in the 0xFnnnnn range that AN10787 (MAD) reserves for registered function clusters:
 * a private AID. A deployment that registers with MAD would use an F-prefixed one. */
#define CARDLIB_LAYOUT_AID         0xC17A55u
#define CARDLIB_LAYOUT_SECTORS_MAX 6
#define CARDLIB_LAYOUT_ID_LEN      16
#define CARDLIB_LAYOUT_VALUE_FILE  0x10
#define CARDLIB_LAYOUT_ENTRIES_MAX 1000
#define CARDLIB_LAYOUT_NO_VALUE    (-1)

/* Key numbers and file number of sector slot s. */
#define CARDLIB_LAYOUT_READ_KEY(s) ((uint8_t)(1 + 2 * (s)))
#define CARDLIB_LAYOUT_UID_KEY(s)  ((uint8_t)(2 + 2 * (s)))
#define CARDLIB_LAYOUT_FILE(s)     ((uint8_t)(1 + (s)))

/* The deployment's identity in every diversification: AID and system identifier. */
struct cardlib_layout_system {
	uint32_t aid; /* CARDLIB_LAYOUT_AID unless the deployment chose another */
	uint8_t sys_id[CARDLIB_DIVERSIFY_SYS_MAX];
	size_t sys_id_len; /* 0 to CARDLIB_DIVERSIFY_SYS_MAX */
};

struct cardlib_layout_sector {
	uint8_t slot;                        /* 0 .. CARDLIB_LAYOUT_SECTORS_MAX - 1 */
	uint8_t master[CARDLIB_AES_KEY_LEN]; /* the sector master key, current version */
	uint8_t version;                     /* its key version, written with the card keys */
	int has_previous;                    /* during a rotation: the version before */
	uint8_t previous[CARDLIB_AES_KEY_LEN];
	uint8_t previous_version;
};

/* What the issuer (personalisation station) holds. */
struct cardlib_keyset {
	struct cardlib_layout_system sys;
	uint8_t app_master[CARDLIB_AES_KEY_LEN];  /* diversified into key 0 */
	uint8_t key_version;                      /* of the application master key */
	uint8_t picc_master[CARDLIB_AES_KEY_LEN]; /* diversified into the PICC master key */
	uint8_t picc_version;                     /* of the PICC master key */
	int random_id;                            /* issuing turns random ID on */
	size_t n_sectors;                         /* 1 .. CARDLIB_LAYOUT_SECTORS_MAX */
	struct cardlib_layout_sector sectors[CARDLIB_LAYOUT_SECTORS_MAX];
	int value_slot; /* the sector whose gates debit entries, or -1 (no value file) */
};

/* The pass's identifiers, in the order of keyset->sectors. */
struct cardlib_pass_ids {
	uint8_t id[CARDLIB_LAYOUT_SECTORS_MAX][CARDLIB_LAYOUT_ID_LEN];
};

/* What a gate holds: its sector's master key, and the previous one during a rotation. */
struct cardlib_sector_key {
	struct cardlib_layout_system sys;
	uint8_t slot;
	uint8_t master[CARDLIB_AES_KEY_LEN];
	uint8_t version;
	int has_previous;
	uint8_t previous[CARDLIB_AES_KEY_LEN];
	uint8_t previous_version;
	int reads_value;             /* 1: this sector's gates read (and debit) the value file */
	enum cardlib_auth_kind auth; /* CARDLIB_AUTH_EV2 by default */
};

/* What one tap told the gate. The real UID is for diversification only: a gate never
 * stores or uploads it (DESIGN.md s.3). */
struct cardlib_card_read {
	uint8_t id[CARDLIB_LAYOUT_ID_LEN];
	int has_value; /* the value file was read (reads_value and the card has one) */
	int32_t value;
	uint8_t uid[CARDLIB_UID_MAX];
	size_t uid_len;
	int random_id;       /* the card showed a random ID at anticollision */
	uint8_t key_version; /* of the sector key that opened the card */
	int previous_key;    /* the previous version opened it: the card awaits a desk visit */
};

/* The gate key of keyset->sectors[index]. 0 or CARDLIB_ERR_ARG. */
int cardlib_keyset_sector_key(const struct cardlib_keyset *ks, size_t index,
                              struct cardlib_sector_key *out);

/* The two keys of a sector on the card with this real UID (AN10922). */
int cardlib_layout_read_key(const struct cardlib_layout_system *sys,
                            const uint8_t master[CARDLIB_AES_KEY_LEN], const uint8_t *uid,
                            size_t uid_len, uint8_t out[CARDLIB_AES_KEY_LEN]);
int cardlib_layout_uid_key(const struct cardlib_layout_system *sys,
                           const uint8_t master[CARDLIB_AES_KEY_LEN],
                           uint8_t out[CARDLIB_AES_KEY_LEN]);

/* Every key of the citypass application on the card with this real UID (7 bytes), by key
 * number, at the keyset's current versions; *n_keys gets how many the application has
 * (1 + 2 (highest slot + 1)). For issuing and inspection; the caller wipes the keys. */
int cardlib_layout_card_keys(const struct cardlib_keyset *ks, const uint8_t uid[7],
                             uint8_t keys[][CARDLIB_AES_KEY_LEN], uint8_t *n_keys);
/* 1 when the keyset is usable (slots distinct and in range, the value slot among them). */
int cardlib_keyset_valid(const struct cardlib_keyset *ks);

/*
 * One tap at a gate of one sector, kept open so that the gate can decide, then debit an
 * entry in the same session. Refusals: CARDLIB_ERR_NO_CARD, _NOT_DESFIRE (Classic,
 * UID-only), _APP_MISSING (no citypass application), _AUTH (keys that are not this card's,
 * or a sector the card does not carry), _LAYOUT (the application lacks the sector's file),
 * and the transport and integrity errors of cardlib/desfire.h.
 */
struct cardlib_card;

int cardlib_card_open_sector(struct cardlib_card **out, struct cardlib_reader *reader,
                             const struct cardlib_sector_key *key, struct cardlib_card_read *read);
/* Debit one entry and commit: *remaining gets what is left. CARDLIB_ERR_VALUE_EXHAUSTED
 * when no entry is left (nothing is sent then), CARDLIB_ERR_LAYOUT when the sector does not
 * read the value or the card has no value file. */
int cardlib_card_debit_entry(struct cardlib_card *card, int32_t *remaining);
/*
 * The same in two steps, so that nothing irreversible happens to the card before the gate
 * has made its decision durable: begin sends the Debit, which the card holds uncommitted
 * (*remaining: what is left once committed; same refusals as debit_entry); commit sends
 * CommitTransaction; abort sends AbortTransaction. A card that leaves the field, is
 * deselected or selects another application drops an uncommitted debit by itself (DESFire
 * transaction semantics), so abort is a courtesy, never the only guard.
 */
int cardlib_card_debit_begin(struct cardlib_card *card, int32_t *remaining);
int cardlib_card_debit_commit(struct cardlib_card *card);
int cardlib_card_debit_abort(struct cardlib_card *card);
/* Ends the session and releases the target. NULL is allowed. */
void cardlib_card_close(struct cardlib_card *card);

/* open_sector + close: a gate that only checks the identifier. */
int cardlib_card_read_sector(struct cardlib_reader *reader, const struct cardlib_sector_key *key,
                             struct cardlib_card_read *out);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_LAYOUT_H */
