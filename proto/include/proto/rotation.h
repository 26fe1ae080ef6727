/*
 * proto/rotation.h — the list-signing key rotates without a visit to any gate (DESIGN.md s.3,
 * TUF's root rotation).
 *
 * A rotation statement announces the key that signs lists from now on. It is a short
 * canonical text, signed twice, both signatures detached DER ECDSA P-256 over SHA-256:
 *
 *     citypass key rotation 1
 *     kind list
 *     number N
 *     from <key id of the key it replaces, 16 lowercase hex digits>
 *     to <key id of the new key>
 *     -----BEGIN PUBLIC KEY-----            the new key, as `openssl pkey -pubout` writes it
 *     ...
 *     -----END PUBLIC KEY-----
 *
 * by the key it replaces (the announcement: only the holder of the trusted key can name
 * its successor) and by the new key (the successor accepts: nobody can announce a key
 * whose holder did not sign). An auditor checks both with openssl alone:
 *     openssl dgst -sha256 -verify old.pub.pem -signature N.old.sig N.txt
 *     openssl dgst -sha256 -verify new.pub.pem -signature N.new.sig N.txt
 *
 * A key chain starts at a root a verifier already trusts (a gate: the list key of its
 * enrolment bundle) and grows one statement at a time, each announced by the chain's newest
 * key and numbered one above the statement before. Numbers only rise: a second statement
 * with a number the chain already passed is never followed, so an old key cannot be brought
 * back, and a key nobody announced (a stolen one signing for itself) cannot come in.
 */
#ifndef PROTO_ROTATION_H
#define PROTO_ROTATION_H

#include <stddef.h>
#include <stdint.h>

#include "proto/sign.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A statement's text is a few lines and one PEM public key. */
#define PROTO_ROTATION_TEXT_MAX 512
/* Statements a chain holds at most (one rotation a year lasts long past any gate). */
#define PROTO_KEY_CHAIN_MAX 64

/* One statement, as it travels and as it is kept: the text and its two signatures. */
struct proto_rotation_signed {
	const uint8_t *text;
	size_t text_len;
	const uint8_t *old_sig; /* by the key replaced */
	size_t old_sig_len;
	const uint8_t *new_sig; /* by the key announced */
	size_t new_sig_len;
};

/* What a statement says, once parsed. */
struct proto_rotation {
	uint32_t number; /* >= 1 */
	uint8_t from[PROTO_KEY_ID_LEN];
	uint8_t to[PROTO_KEY_ID_LEN];
	struct proto_key *key; /* the announced public key (owned; its id is `to`) */
};

/* The statement text for `number` from old_key to new_key, into text (NUL-terminated). */
int proto_rotation_write(uint32_t number, const struct proto_key *old_key,
                         const struct proto_key *new_key, char *text, size_t cap, size_t *len);

/* Parse a statement's text; anything but its one canonical spelling is refused
 * (PROTO_ERR_ROTATION_FORMAT), as is a key whose id is not the `to` line. */
int proto_rotation_parse(const uint8_t *text, size_t len, struct proto_rotation *out);
void proto_rotation_clear(struct proto_rotation *r);

/* A chain of trusted list keys, from a root to its newest key. */
struct proto_key_chain;

/* A chain holding only `root` (a public key; the chain takes ownership, also on failure). */
int proto_key_chain_new(struct proto_key_chain **out, struct proto_key *root);
void proto_key_chain_free(struct proto_key_chain *c);

/*
 * Follow what a server sends: the whole chain of statements since the deployment's first
 * key, oldest first. Statements up to the last one that announces a key this chain already
 * holds are skipped (a gate enrolled after a rotation has that key as its root); each one
 * after it must be announced by the chain's newest key, numbered one above the previous,
 * and carry both valid signatures. On the first that fails, the chain keeps what it
 * followed before it and the error says why: PROTO_ERR_ROTATION_UNANNOUNCED (its `from` is
 * not the newest key held), _NUMBER, _SIGNATURE, _FORMAT. *added: statements followed.
 */
int proto_key_chain_follow(struct proto_key_chain *c, const struct proto_rotation_signed *s,
                           size_t n, size_t *added);

/* Keys held, root first; key i in [0, length). */
size_t proto_key_chain_length(const struct proto_key_chain *c);
const struct proto_key *proto_key_chain_key(const struct proto_key_chain *c, size_t i);
/* The statement that brought key i (i >= 1) in, as followed (for keeping it on disk). */
const struct proto_rotation_signed *proto_key_chain_statement(const struct proto_key_chain *c,
                                                              size_t i);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_ROTATION_H */
