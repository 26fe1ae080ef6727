/*
 * server/passes.h — a pass's life at the desk, as a library: households, issuing a pass (on a
 * card through a reader, on a phone, or awaiting its medium), replacing and revoking it,
 * granting and withdrawing rights, and taking a card back. citypass-admin and the agents'
 * web back office (DESIGN §12) call the same functions (docs/admin.md, "Passes and rights").
 *
 * Every operation that changes the database is one store transaction: it commits whole or
 * leaves the database as it was. It returns 0 or a negative SERVER_ERR_* (server/error.h)
 * with, in *why, the sentence the agent reads ("pass 12 is already revoked"); a failure of
 * the database carries sqlite's own words at its end. Nothing here prints.
 *
 * Lists are not published inside an operation (the publisher runs its own transactions,
 * after the change is committed): an operation says in *changed which sectors' lists its
 * change touches, and the caller publishes them (server/publish.h) or leaves that to a later
 * `list publish`.
 *
 * Renewing a right is granting it again with new dates: a pass holds one right per sector,
 * and a grant replaces the sector's.
 */
#ifndef SERVER_PASSES_H
#define SERVER_PASSES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cardlib/issue.h"
#include "server/error.h"
#include "server/keys.h"
#include "server/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What every operation works on: the deployment's open store, its data directory (the key
 * files: card keys, the issuer key) and the time of the operation (Unix seconds). */
struct server_desk {
	struct server_store *st;
	const char *data;
	int64_t now;
};

/* The sectors whose lists an operation changed: publish these. */
struct server_sector_set {
	size_t n;
	uint16_t v[SERVER_CARD_SLOTS];
};

/* --- the vocabulary agents type ---------------------------------------------------------- */

/* A sector by name or number: 0, or SERVER_ERR_NOT_FOUND (or a store error). */
int server_sector_find(struct server_store *st, const char *s, struct server_sector *out);
/* The sector's name, or its number as text when it has none. */
void server_sector_name(struct server_store *st, uint16_t number, char *out, size_t cap);
/* "active", "revoked", "replaced", "suspended" ("unknown" otherwise), and back (-1). */
const char *server_pass_state_name(int state);
int server_pass_state_parse(const char *s);
/* A name agents type (sector, site, household, device): letters, digits, '-', '_', '.',
 * 1 to 63 characters. 1 when it is one. */
int server_name_ok(const char *s);
/* Bytes of the well-formed UTF-8 character at p (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), 0 when it is not one. */
size_t server_utf8_len(const unsigned char *p);
/* Text as a JSON string (RFC 8259), quotes included: what is not UTF-8 becomes U+FFFD,
 * never invalid JSON. And as HTML text (& < > " ' escaped, control characters and
 * non-UTF-8 bytes shown as U+FFFD). */
void server_json_string(FILE *f, const char *s);
void server_html_text(FILE *f, const char *s);
/*
 * Text as a search compares it: ASCII letters in lower case, the Latin letters of French
 * names (and their neighbours, U+00C0 to U+017F) without their accent ("Hélène" is
 * "helene", "Œuvray" is "oeuvray"), combining accents dropped, the typographic apostrophe
 * as "'"; anything else as it is. Whole characters only, out NUL-terminated: its length.
 * The store keeps each holder's name so folded (server/store.h, pass_each), so that a
 * search costs one comparison per pass, as an exact one did.
 */
size_t server_text_fold(const char *s, char *out, size_t cap);
/* YYYY-MM-DD to a day number (days since 1970-01-01), 1970 to 2149: 0 or -1. */
int server_day_parse(const char *s, int64_t *day);

/*
 * A right in the --right syntax: SECTOR[,KEY=VALUE]... with product=N, from=DAY, to=DAY,
 * entries=N, quota=N/PERIOD[/household|/pass], fare=NAME (docs/admin.md). 0, or
 * SERVER_ERR_INVALID (or NOT_FOUND for an unknown sector) with why = "'SPEC': what is wrong".
 */
int server_right_parse(struct server_store *st, const char *spec, struct server_right *r,
                       struct server_why *why);
/* A right in words ("product 1, from 2026-01-01 to 2026-12-31, quota 24 per year per
 * household, fare resident"). */
void server_right_describe(const struct proto_rights_profile *p, char *out, size_t cap);

/* --- households ---------------------------------------------------------------------------- */

/* A new household (name as server_name_ok): 0 and *id, or EXISTS, INVALID. */
int server_household_add(const struct server_desk *d, const char *name, int64_t *id,
                         struct server_why *why);

/*
 * Managing a household (docs/admin.md, "Households"). Its tag in a sector's list is its
 * number there (server_household_tag), never its name: renaming changes no list. Moving a
 * pass in or out changes the pass's entries (their household tag) and, for a quota per
 * household, the entries of every member of both households (their shared sum): *changed
 * names those sectors. Counted uses stay with the pass that made them: a pass moving in
 * brings its uses of the current period into the household's sum, a pass moving out takes
 * them along (docs/admin.md says why).
 */
struct server_household {
	int64_t id;
	char name[SERVER_NAME_MAX];
};

/* By name, ignoring case (names are unique so, schema 9; an older pair: the exact one);
 * out->name is the name as stored. 0, or NOT_FOUND with why "household 'x': no such
 * household". */
int server_household_find(const struct server_desk *d, const char *name,
                          struct server_household *out, struct server_why *why);
/* Households whose folded name (server_text_fold) holds the folded `part` (NULL or "":
 * all), in name order, at most `max` (0: no limit); fn's non-zero return stops. */
int server_household_search(const struct server_desk *d, const char *part, size_t max,
                            int (*fn)(void *arg, const struct server_household *h), void *arg,
                            struct server_why *why);
/* Rename: INVALID (the name), EXISTS (taken, in any case but its own), NOT_FOUND. */
int server_household_rename(const struct server_desk *d, int64_t id, const char *name,
                            struct server_why *why);
/* Move pass `pass` into household `household` (0: out of its household). NOT_FOUND (pass
 * or household), STATE (a revoked or replaced pass stays where it was), INVALID (already
 * there). */
int server_household_move(const struct server_desk *d, int64_t pass, int64_t household,
                          struct server_sector_set *changed, struct server_why *why);
/* Remove a household no live pass is in: its revoked and replaced passes leave it (their
 * list entries lose its tag: *changed), its tags go, then the household. IN_USE when an
 * active or suspended pass is still in it, NOT_FOUND. */
int server_household_remove(const struct server_desk *d, int64_t id,
                            struct server_sector_set *changed, struct server_why *why);

/* A quota the household shares, as a member's right states it, and its use in the current
 * period (the sum over every member, as gates are told). */
struct server_household_quota {
	uint16_t sector;
	struct proto_rights_profile p;
	uint32_t used;
};
#define SERVER_HOUSEHOLD_QUOTAS 16

/* A household as the desk shows it: its passes (every state, in id order; malloc'd) and the
 * quotas per household its live members hold (one line per distinct right, at most
 * SERVER_HOUSEHOLD_QUOTAS). */
struct server_household_view {
	struct server_household h;
	struct server_pass *passes;
	size_t n_passes;
	struct server_household_quota quotas[SERVER_HOUSEHOLD_QUOTAS];
	size_t n_quotas;
};
/* Read it in one snapshot: 0, or NOT_FOUND. Free with server_household_view_free. */
int server_household_read(const struct server_desk *d, int64_t id,
                          struct server_household_view *out, struct server_why *why);
void server_household_view_free(struct server_household_view *v);

/* --- passes -------------------------------------------------------------------------------- */

/* A phone's request for a sector's credential: the P-256 public key PEM of
 * 'citypass-token enrol'. */
struct server_phone_request {
	uint16_t sector;
	const char *pem_path;
};

/*
 * The medium a new pass goes on: a card in `reader` (the caller opened it: a libnfc reader
 * for the CLI, the desk's for the back office; `reader_name` names it in sentences), or
 * phone credentials written to out_dir/sector-N.cred (made 0700 if missing, removed again
 * when the operation fails), or neither (the pass awaits its medium).
 */
struct server_pass_medium {
	struct cardlib_reader *reader;
	const char *reader_name;
	const struct server_phone_request *phones;
	size_t n_phones;
	const char *out_dir;
};

/* What a new pass is: holder (NULL or "": anonymous, else 1 to 255 bytes of UTF-8), the
 * household's name (NULL: none; it must exist), its rights (one per sector). */
struct server_pass_order {
	const char *holder;
	const char *household;
	const struct server_right *rights;
	size_t n_rights;
	struct server_pass_medium medium;
};

/* What issuing (or replacing) made. */
struct server_issued {
	struct server_pass pass;          /* the new pass as stored */
	struct server_sector_set changed; /* the lists to publish */
	int card_retaken;                 /* the card held no pass of ours (an issue interrupted
	                                     after the card was finished): taken back and issued */
};

/*
 * Issue a pass: the pass, its identifier in every sector, its rights, and its medium (the
 * card personalised, the credentials written) in one transaction; a card or phone that
 * fails leaves no pass. Refusals: INVALID (holder, rights
 * naming a sector twice, a card and a phone at once), NOT_FOUND (household), CARD (the
 * card or reader: cardlib's sentence), IN_USE (the card holds a pass), CRYPTO, IO.
 */
int server_pass_issue(const struct server_desk *d, const struct server_pass_order *o,
                      struct server_issued *out, struct server_why *why);

/*
 * Replace pass `old_id` by a new pass on `medium` keeping its holder, household and rights
 * (and the uses already counted under them), the old one marked replaced (with `reason`,
 * "replaced" when NULL or empty) in the same transaction. A revoked pass can be replaced
 * (a lost card is revoked at once, replaced at the desk later); a replaced one cannot
 * (STATE). NOT_FOUND: no such pass.
 */
int server_pass_replace(const struct server_desk *d, int64_t old_id, const char *reason,
                        const struct server_pass_medium *medium, struct server_issued *out,
                        struct server_why *why);

/* Revoke a pass (lost, stolen, moved away): reason 1 to 255 bytes. STATE when it is already
 * revoked or replaced, NOT_FOUND. */
int server_pass_revoke(const struct server_desk *d, int64_t id, const char *reason,
                       struct server_sector_set *changed, struct server_why *why);

/* Read a pass: 0, or NOT_FOUND with why "pass N: no such pass". */
int server_pass_read(const struct server_desk *d, int64_t id, struct server_pass *out,
                     struct server_why *why);

/* --- rights -------------------------------------------------------------------------------- */

/* Grant rights to an active (or suspended) pass, each replacing the pass's right in its
 * sector: STATE for a revoked or replaced pass, INVALID for a sector named twice. Entries
 * granted after issue are counted by the server (the card is not rewritten). */
int server_rights_grant(const struct server_desk *d, int64_t pass, const struct server_right *r,
                        size_t n, struct server_sector_set *changed, struct server_why *why);
/* Withdraw the pass's right in a sector: NOT_FOUND when it holds none (or no such pass). */
int server_rights_withdraw(const struct server_desk *d, int64_t pass, uint16_t sector,
                           struct server_sector_set *changed, struct server_why *why);

/* --- identifiers (issue and bulk import) ------------------------------------------------- */

/* A new random identifier of the pass in a sector (and its list key), drawn again when
 * taken: 0 or a store error. Inside the caller's transaction. */
int server_pass_id_assign(struct server_store *st, int64_t pass, uint16_t sector);
/* The household's tag in a sector, drawn when it has none. Inside the caller's transaction. */
int server_household_tag(struct server_store *st, int64_t household, uint16_t sector);
/* The same for a household known to have none there (one this transaction created): drawn
 * without looking first. */
int server_household_tag_draw(struct server_store *st, int64_t household, uint16_t sector);

/* --- cards --------------------------------------------------------------------------------- */

/* What a card in a reader is for this deployment (server_card_inspect). */
struct server_card_info {
	struct cardlib_card_report report; /* cardlib's reading of the card */
	size_t moved;                      /* sectors moved to the current key version */
	int has_pass;                      /* the card's pass is in the database: */
	struct server_pass pass;
	/* the deployment's sectors in card order (sectors[i] is the report's sectors[i]), and
	 * each one's current key version, previous one (has_previous) */
	size_t n_sectors;
	struct server_sector sectors[SERVER_CARD_SLOTS];
	uint8_t version[SERVER_CARD_SLOTS], previous_version[SERVER_CARD_SLOTS];
	int has_previous[SERVER_CARD_SLOTS];
};

/* Read the card in `reader` and find its pass (from the identifiers the card gives: nothing
 * to type). update_keys: first move keys left at the previous version to the current one
 * (INVALID when the card is not ours). CARD when the card cannot be read. */
int server_card_inspect(const struct server_desk *d, struct cardlib_reader *reader,
                        const char *reader_name, int update_keys, struct server_card_info *out,
                        struct server_why *why);

/* Take back a card issued here whose pass is revoked or replaced (or that holds no pass
 * of ours): its PICC master key back to the factory key, formatted, ready to be issued
 * again. IN_USE when its pass is live; CARD for another system's card or a reader fault.
 * *random_id: whether the card keeps random ID on. */
int server_card_recycle(const struct server_desk *d, struct cardlib_reader *reader,
                        const char *reader_name, int *random_id, struct server_why *why);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_PASSES_H */
