/*
 * server/keys.h — the deployment's key material in DATA/keys/ (docs/admin.md).
 *
 *   list.key / list.pub.pem       ECDSA P-256 list-signing key (proto_key_*)
 *   issuer.key / issuer.pub.pem   ECDSA P-256 issuer of phone credentials (proto_key_*)
 *   ca.key / ca.crt               device CA, self-signed, EC P-256
 *   server.key / server.crt       the sync server's TLS certificate (CN = server name)
 *   card.keys                     card system identifier, application master key, the
 *                                 issuer PICC master key (issuing side only: never in a
 *                                 gate's bundle), and per sector slot its master key at the
 *                                 current version and, during a rotation, the previous one
 * Private files are created 0600 and never overwritten.
 */
#ifndef SERVER_KEYS_H
#define SERVER_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "server/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_CARD_SLOTS  6
#define SERVER_AES_KEY_LEN 16
#define SERVER_SYS_ID_LEN  8

/* A sector slot's card master key: the current version, and the previous one while gates
 * and cards move to the new (keys rotate). */
struct server_card_slot {
	uint8_t master[SERVER_AES_KEY_LEN];
	uint8_t version;
	int has_previous;
	uint8_t previous[SERVER_AES_KEY_LEN];
	uint8_t previous_version;
};

struct server_card_keys {
	uint8_t sys_id[SERVER_SYS_ID_LEN];
	uint8_t key_version; /* of the application master key */
	uint8_t app_master[SERVER_AES_KEY_LEN];
	int has_picc_master; /* deployments made before protected cards have none yet */
	uint8_t picc_master[SERVER_AES_KEY_LEN];
	uint8_t picc_version;
	struct server_card_slot slot[SERVER_CARD_SLOTS];
};

/* Write `len` bytes to a new file with `mode`; SERVER_ERR_EXISTS if it exists. */
int server_file_create(const char *path, const void *data, size_t len, unsigned mode);
/* Replace path with `len` bytes through path.tmp (created, fsynced) and a rename, so that a
 * reader sees the old file or the new one. */
int server_file_replace(const char *path, const void *data, size_t len, unsigned mode);
/* Read a whole file (malloc'd, NUL-terminated beyond len). */
int server_file_read(const char *path, uint8_t **data, size_t *len);

/* Create DATA/keys and every key above. */
int server_keys_create(const char *data_dir, const char *server_name);

int server_card_keys_load(const char *data_dir, struct server_card_keys *out);
/* Replace card.keys with k: a new file (0600) renamed over the old one, fsynced. */
int server_card_keys_save(const char *data_dir, const struct server_card_keys *k);
/* A new issuer PICC master key (version 1) for a deployment that has none, saved. */
int server_card_keys_add_picc_master(const char *data_dir, struct server_card_keys *k);
/* Slot `slot` gets a new master key at version + 1; the current one becomes the previous
 * (the one before it is dropped: gates accept two versions). SERVER_ERR_INVALID at 255. */
int server_card_keys_rotate(const char *data_dir, struct server_card_keys *k, int slot);
/* Slot `slot` forgets its previous master key (every card has moved). */
int server_card_keys_retire(const char *data_dir, struct server_card_keys *k, int slot);

/* What a certificate signed by the device CA may be used for (its extendedKeyUsage). */
enum server_cert_role {
	SERVER_CERT_SERVER = 0, /* the sync server: id-kp-serverAuth only */
	SERVER_CERT_DEVICE = 1, /* a gate controller: id-kp-clientAuth only */
};

/*
 * A new EC P-256 key and a certificate for it signed by the device CA: CN = cn, the
 * role's extendedKeyUsage, valid `days` days. The key goes to key_path (0600), the
 * certificate to crt_path.
 */
int server_cert_issue(const char *data_dir, const char *cn, enum server_cert_role role, int days,
                      const char *key_path, const char *crt_path);

/* What a rotation of the device CA did: CA `from` certified CA `to` (= from + 1). */
struct server_ca_rotation {
	unsigned from, to;
};

/*
 * Rotate the device CA (issue 11, docs/admin.md "Rotating the device CA"): a new CA key
 * and certificate ("citypass device CA N", DATA/keys/ca-chain/FROM.next.crt) and its
 * announcement, FROM.cross.crt — the new CA certified by the current one, which gates
 * check against the anchors they hold before adding the new CA to them. ca.crt becomes
 * the new CA followed by the earlier ones (the server keeps accepting gates they signed);
 * device certificates are issued by the new CA from now on; the server keeps presenting
 * its certificate under the old CA until server_ca_present_newest().
 */
int server_ca_rotate(const char *data_dir, struct server_ca_rotation *out);

/* Reissue the server's certificate under the newest CA (`keys retire --ca`): gates that
 * have not followed the rotations can no longer connect. SERVER_ERR_NOT_FOUND: never
 * rotated. */
int server_ca_present_newest(const char *data_dir, unsigned *current);

/* One rotation as gates receive it (DER): the new CA certified by the old, and the new
 * CA's own certificate. */
struct server_ca_announcement {
	uint8_t *cross, *ca;
	size_t cross_len, ca_len;
};

struct server_ca_chain {
	size_t n;
	struct server_ca_announcement *a; /* oldest first */
};

/* Every rotation of the device CA (n = 0: never rotated). */
int server_ca_chain_load(const char *data_dir, struct server_ca_chain *out);

/* Inline: the sync server (which does not link this library) frees what its backend gives. */
static inline void server_ca_chain_free(struct server_ca_chain *c)
{
	for (size_t i = 0; c && i < c->n; i++) {
		free(c->a[i].cross);
		free(c->a[i].ca);
	}
	if (c) {
		free(c->a);
		c->a = NULL;
		c->n = 0;
	}
}

/* "DATA/keys/NAME" into buf. */
int server_key_path(char *buf, size_t cap, const char *data_dir, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_KEYS_H */
