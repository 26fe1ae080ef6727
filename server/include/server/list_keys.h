/*
 * server/list_keys.h — rotating the list-signing key, and the chain of statements that lets
 * every gate follow it without a visit (proto/rotation.h, docs/admin.md "Rotating the
 * list-signing key").
 *
 * DATA/keys/list-chain/ holds, for every rotation N (1, 2, …):
 *     N.txt          the statement (proto/rotation.h)
 *     N.old.sig      its signature by the key replaced (DER, openssl dgst -sha256 -sign)
 *     N.new.sig      its signature by the key announced
 *     N.old.pub.pem  the key replaced, so that an auditor checks N.old.sig with openssl
 * and DATA/keys/list.key, list.pub.pem are always the newest key. N.txt is written last:
 * its presence is the rotation's commit point, and a rotation interrupted after it is
 * finished by the next `keys rotate --list-key` (list.key.next renamed over list.key).
 */
#ifndef SERVER_LIST_KEYS_H
#define SERVER_LIST_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/rotation.h"
#include "server/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The statements of DATA/keys/list-chain/, oldest first. */
struct server_list_chain {
	size_t n;
	struct proto_rotation_signed *s; /* n statements; their bytes are owned by the chain */
};

/* Read the chain (n = 0 when the key never rotated). A gap in the numbering, a statement
 * that does not parse or a missing signature is SERVER_ERR_INVALID. */
int server_list_chain_load(const char *data_dir, struct server_list_chain *out);

/* Inline: the sync server (which does not link the rights database's library) frees the
 * chains its backend gives it. */
static inline void server_list_chain_free(struct server_list_chain *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free((void *)c->s[i].text);
		free((void *)c->s[i].old_sig);
		free((void *)c->s[i].new_sig);
	}
	free(c->s);
	c->s = NULL;
	c->n = 0;
}

/* What a rotation did. */
struct server_list_rotation {
	uint32_t number;                /* of the statement written */
	uint8_t from[PROTO_KEY_ID_LEN]; /* the key replaced */
	uint8_t to[PROTO_KEY_ID_LEN];   /* the key that signs lists from now on */
	int finished_interrupted;       /* 1: no new key; an interrupted rotation was finished */
};

/* Make a new list-signing key, announce it under the current one (statement N+1, signed by
 * both), and make it the current key. Lists must then be published again (every sector)
 * so that gates hold lists signed by the new key. */
int server_list_key_rotate(const char *data_dir, struct server_list_rotation *out);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_LIST_KEYS_H */
