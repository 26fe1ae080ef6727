/*
 * pass_internal.h — what the files of the pass lifecycle (server/passes.h) share:
 *   desk_words.c   the vocabulary agents type: sectors, states, names, days
 *   pass_rights.c  the --right syntax, rights granted and withdrawn
 *   pass_life.c    households, identifiers, issuing, replacing, revoking; phone credentials
 *   pass_card.c    the card at the desk: personalising, inspecting, taking back
 *   pass_household.c  managing households: find, read, rename, move a pass, remove
 */
#ifndef SERVER_PASS_INTERNAL_H
#define SERVER_PASS_INTERNAL_H

#include "server/passes.h"

/* The sector the gates debit entries on the card's value file for, -1 when none. */
int pass_value_sector(struct server_store *st);

/* Add a sector to the set (once). */
void pass_changed_add(struct server_sector_set *set, uint16_t sector);

/* Add the sectors of pass `pass`'s rights to the set (its entries in those lists change),
 * or, household_only, only those of its quotas per household (the sums its household's
 * members share). 0 or a store error with why. */
int pass_rights_sectors(struct server_store *st, int64_t pass, int household_only,
                        struct server_sector_set *set, struct server_why *why);

/* Entries go on the card's value file only for a card issued in the value sector with a
 * lifetime count: flag them so, and unflag every other right. */
void pass_mark_card_entries(struct server_store *st, struct server_right *r, size_t n, int card);

/* Store rights for pass p (identifiers drawn where missing, household tags): inside the
 * caller's transaction. 0 or a store error with why. */
int pass_rights_store(struct server_store *st, const struct server_pass *p,
                      const struct server_right *r, size_t n, struct server_why *why);

/* Personalise the card in medium->reader for pass `pass` (its identifiers are in the
 * database, inside the caller's transaction), entries on its value file from the value
 * sector's right. 0, or CARD / IN_USE / a store error with why. */
int pass_card_personalise(const struct server_desk *d, int64_t pass,
                          const struct server_pass_medium *medium, const struct server_right *r,
                          size_t nr, int *retaken, struct server_why *why);

/* One operation's transaction: begin it, and end it with rc (0: commit, which may fail;
 * else roll back), why saying what failed. Both return the operation's code. */
int pass_begin(struct server_store *st, struct server_why *why);
int pass_end(struct server_store *st, int rc, struct server_why *why);

/* why = "WHAT: the store's sentence for rc" (sqlite's words included); returns rc. */
int pass_why_store(struct server_why *why, struct server_store *st, int rc, const char *what);
/* EXISTS, and why: "household 'x' already exists", naming the one that differs only in
 * case when that is what took the name (pass_household.c). */
int pass_household_taken(struct server_store *st, const char *name, struct server_why *why);

#endif
