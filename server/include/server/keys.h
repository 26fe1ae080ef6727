/*
 * server/keys.h — the deployment's key material in DATA/keys/ (docs/admin.md).
 *
 *   list.key / list.pub.pem       ECDSA P-256 list-signing key (proto_key_*)
 *   issuer.key / issuer.pub.pem   ECDSA P-256 issuer of phone credentials (cardlib_token_key_*)
 *   ca.key / ca.crt               device CA, self-signed, EC P-256
 *   server.key / server.crt       the sync server's TLS certificate (CN = server name)
 *   card.keys                     card system identifier, key version, application master
 *                                 key and one master key per sector slot (AES-128)
 * Private files are created 0600 and never overwritten.
 */
#ifndef SERVER_KEYS_H
#define SERVER_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "server/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_CARD_SLOTS  6
#define SERVER_AES_KEY_LEN 16
#define SERVER_SYS_ID_LEN  8

struct server_card_keys {
	uint8_t sys_id[SERVER_SYS_ID_LEN];
	uint8_t key_version;
	uint8_t app_master[SERVER_AES_KEY_LEN];
	uint8_t slot_master[SERVER_CARD_SLOTS][SERVER_AES_KEY_LEN];
};

/* Write `len` bytes to a new file with `mode`; SERVER_ERR_EXISTS if it exists. */
int server_file_create(const char *path, const void *data, size_t len, unsigned mode);
/* Read a whole file (malloc'd, NUL-terminated beyond len). */
int server_file_read(const char *path, uint8_t **data, size_t *len);

/* Create DATA/keys and every key above. */
int server_keys_create(const char *data_dir, const char *server_name);

int server_card_keys_load(const char *data_dir, struct server_card_keys *out);

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

/* "DATA/keys/NAME" into buf. */
int server_key_path(char *buf, size_t cap, const char *data_dir, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* SERVER_KEYS_H */
