/*
 * keys.c — create and load the deployment's key material (server/keys.h): the key files,
 * the card keys and the list key. The device CA and its certificates are certs.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "cardlib/token.h"
#include "proto/sign.h"
#include "server/keys.h"
#include "keys_internal.h"

int keys_rng_init(struct rng *r)
{
	static const unsigned char pers[] = "citypass-admin keys";
	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
	if (mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy, pers,
	                          sizeof(pers) - 1) != 0)
		return SERVER_ERR_CRYPTO;
	return 0;
}

void keys_rng_free(struct rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

int server_key_path(char *buf, size_t cap, const char *data_dir, const char *name)
{
	int n = snprintf(buf, cap, "%s/keys/%s", data_dir, name);
	return n < 0 || (size_t)n >= cap ? SERVER_ERR_ARG : 0;
}

int server_file_create(const char *path, const void *data, size_t len, unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		return errno == EEXIST ? SERVER_ERR_EXISTS : SERVER_ERR_IO;
	const uint8_t *p = data;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			unlink(path);
			return SERVER_ERR_IO;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
		close(fd);
		unlink(path);
		return SERVER_ERR_IO;
	}
	return close(fd) == 0 ? 0 : SERVER_ERR_IO;
}

int server_file_replace(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return SERVER_ERR_ARG;
	unlink(tmp); /* a crash's leftover: path itself is still whole */
	int rc = server_file_create(tmp, data, len, mode);
	if (rc == 0 && rename(tmp, path) != 0) {
		unlink(tmp);
		rc = SERVER_ERR_IO;
	}
	return rc;
}

int server_file_read(const char *path, uint8_t **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? SERVER_ERR_NOT_FOUND : SERVER_ERR_IO;
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (cap - n < 4096) {
			size_t ncap = cap ? cap * 2 : 8192;
			uint8_t *nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return SERVER_ERR_NOMEM;
			}
			buf = nb;
			cap = ncap;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		return SERVER_ERR_IO;
	}
	buf[n] = 0;
	*data = buf;
	*len = n;
	return 0;
}

/* --- list, issuer and card keys ---------------------------------------------------------- */

static int hex_encode(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = 0;
	return 0;
}

static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return s[2 * n] == 0 || s[2 * n] == '\n' || s[2 * n] == ' ' ? 0 : -1;
}

/*
 * card.keys, text (docs/admin.md):
 *   system-id HEX16 / key-version N / app-master HEX32 / picc-master HEX32 /
 *   picc-version N / slot-master S HEX32 [version V [previous HEX32 W]]
 * A slot-master line without a version (deployments made before key rotation) has the
 * application master's key-version.
 */
static int card_keys_text(const struct server_card_keys *k, char *text, size_t cap)
{
	char hex[2 * SERVER_AES_KEY_LEN + 1], prev[2 * SERVER_AES_KEY_LEN + 1];
	size_t off = 0;
	hex_encode(k->sys_id, sizeof(k->sys_id), hex);
	off += (size_t)snprintf(text + off, cap - off,
	                        "# citypass card keys (docs/admin.md) - secret\n"
	                        "system-id %s\nkey-version %u\n",
	                        hex, k->key_version);
	hex_encode(k->app_master, sizeof(k->app_master), hex);
	off += (size_t)snprintf(text + off, cap - off, "app-master %s\n", hex);
	if (k->has_picc_master) {
		hex_encode(k->picc_master, sizeof(k->picc_master), hex);
		off += (size_t)snprintf(text + off, cap - off, "picc-master %s\npicc-version %u\n",
		                        hex, k->picc_version);
	}
	for (int s = 0; s < SERVER_CARD_SLOTS && off < cap; s++) {
		const struct server_card_slot *sl = &k->slot[s];
		hex_encode(sl->master, SERVER_AES_KEY_LEN, hex);
		off += (size_t)snprintf(text + off, cap - off, "slot-master %d %s version %u", s,
		                        hex, sl->version);
		if (sl->has_previous) {
			hex_encode(sl->previous, SERVER_AES_KEY_LEN, prev);
			off += (size_t)snprintf(text + off, cap - off, " previous %s %u", prev,
			                        sl->previous_version);
		}
		off += (size_t)snprintf(text + off, cap - off, "\n");
	}
	mbedtls_platform_zeroize(hex, sizeof(hex));
	mbedtls_platform_zeroize(prev, sizeof(prev));
	return off < cap ? (int)off : -1;
}

static int card_keys_create(const char *path, struct rng *r)
{
	struct server_card_keys k;
	char text[2048];
	memset(&k, 0, sizeof(k));
	k.key_version = 1;
	k.has_picc_master = 1;
	k.picc_version = 1;
	if (mbedtls_ctr_drbg_random(&r->drbg, k.sys_id, sizeof(k.sys_id)) != 0 ||
	    mbedtls_ctr_drbg_random(&r->drbg, k.app_master, sizeof(k.app_master)) != 0 ||
	    mbedtls_ctr_drbg_random(&r->drbg, k.picc_master, sizeof(k.picc_master)) != 0)
		return SERVER_ERR_CRYPTO;
	for (int s = 0; s < SERVER_CARD_SLOTS; s++) {
		k.slot[s].version = 1;
		if (mbedtls_ctr_drbg_random(&r->drbg, k.slot[s].master, SERVER_AES_KEY_LEN) != 0)
			return SERVER_ERR_CRYPTO;
	}
	int n = card_keys_text(&k, text, sizeof(text));
	int rc = n < 0 ? SERVER_ERR_INVALID : server_file_create(path, text, (size_t)n, 0600);
	mbedtls_platform_zeroize(text, sizeof(text));
	mbedtls_platform_zeroize(&k, sizeof(k));
	return rc;
}

int server_card_keys_load(const char *data_dir, struct server_card_keys *out)
{
	char path[PATH_MAX], line[320];
	int rc = server_key_path(path, sizeof(path), data_dir, "card.keys");
	if (rc)
		return rc;
	FILE *f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? SERVER_ERR_NOT_FOUND : SERVER_ERR_IO;
	memset(out, 0, sizeof(*out));
	unsigned seen = 0, versioned = 0;
	rc = 0;
	while (fgets(line, sizeof(line), f)) {
		char hex[80], prev[80];
		unsigned v, pv;
		int slot, n = 0;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "system-id %64s", hex) == 1) {
			rc |= hex_decode(hex, out->sys_id, sizeof(out->sys_id));
			seen |= 1;
		} else if (sscanf(line, "key-version %u", &v) == 1 && v <= 255) {
			out->key_version = (uint8_t)v;
			seen |= 2;
		} else if (sscanf(line, "app-master %64s", hex) == 1) {
			rc |= hex_decode(hex, out->app_master, SERVER_AES_KEY_LEN);
			seen |= 4;
		} else if (sscanf(line, "picc-master %64s", hex) == 1) {
			rc |= hex_decode(hex, out->picc_master, SERVER_AES_KEY_LEN);
			out->has_picc_master = 1;
		} else if (sscanf(line, "picc-version %u", &v) == 1 && v <= 255) {
			out->picc_version = (uint8_t)v;
		} else if (sscanf(line, "slot-master %d %64s%n", &slot, hex, &n) == 2 &&
		           slot >= 0 && slot < SERVER_CARD_SLOTS) {
			struct server_card_slot *sl = &out->slot[slot];
			rc |= hex_decode(hex, sl->master, SERVER_AES_KEY_LEN);
			seen |= 8u << slot;
			const char *rest = line + n;
			int m = sscanf(rest, " version %u previous %64s %u", &v, prev, &pv);
			if (m >= 1) {
				if (v > 255 || m == 2 || (m == 3 && pv > 255))
					rc = -1;
				sl->version = (uint8_t)v;
				versioned |= 1u << slot;
			}
			if (m == 3) {
				rc |= hex_decode(prev, sl->previous, SERVER_AES_KEY_LEN);
				sl->has_previous = 1;
				sl->previous_version = (uint8_t)pv;
			}
			mbedtls_platform_zeroize(prev, sizeof(prev));
		} else {
			rc = -1;
		}
		mbedtls_platform_zeroize(hex, sizeof(hex));
	}
	fclose(f);
	mbedtls_platform_zeroize(line, sizeof(line));
	if (rc || seen != (1u | 2u | 4u | (((1u << SERVER_CARD_SLOTS) - 1) << 3)))
		return SERVER_ERR_INVALID;
	for (int s = 0; s < SERVER_CARD_SLOTS; s++)
		if (!(versioned & (1u << s)))
			out->slot[s].version = out->key_version;
	return 0;
}

int server_card_keys_save(const char *data_dir, const struct server_card_keys *k)
{
	char path[PATH_MAX], tmp[PATH_MAX], text[2048];
	int rc = server_key_path(path, sizeof(path), data_dir, "card.keys");
	if (rc)
		return rc;
	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		return SERVER_ERR_ARG;
	const int n = card_keys_text(k, text, sizeof(text));
	if (n < 0)
		return SERVER_ERR_INVALID;
	unlink(tmp); /* a leftover of a crash: card.keys itself is still whole */
	rc = server_file_create(tmp, text, (size_t)n, 0600);
	mbedtls_platform_zeroize(text, sizeof(text));
	if (rc)
		return rc;
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return SERVER_ERR_IO;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/keys", data_dir);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	return 0;
}

static int random_key(uint8_t out[SERVER_AES_KEY_LEN])
{
	struct rng r;
	int rc = keys_rng_init(&r);
	if (rc == 0 && mbedtls_ctr_drbg_random(&r.drbg, out, SERVER_AES_KEY_LEN) != 0)
		rc = SERVER_ERR_CRYPTO;
	keys_rng_free(&r);
	return rc;
}

int server_card_keys_add_picc_master(const char *data_dir, struct server_card_keys *k)
{
	if (k->has_picc_master)
		return 0;
	int rc = random_key(k->picc_master);
	if (rc)
		return rc;
	k->has_picc_master = 1;
	k->picc_version = 1;
	return server_card_keys_save(data_dir, k);
}

int server_card_keys_rotate(const char *data_dir, struct server_card_keys *k, int slot)
{
	if (slot < 0 || slot >= SERVER_CARD_SLOTS)
		return SERVER_ERR_ARG;
	struct server_card_slot *sl = &k->slot[slot];
	if (sl->version == 255)
		return SERVER_ERR_INVALID;
	uint8_t fresh[SERVER_AES_KEY_LEN];
	int rc = random_key(fresh);
	if (rc)
		return rc;
	memcpy(sl->previous, sl->master, SERVER_AES_KEY_LEN);
	sl->previous_version = sl->version;
	sl->has_previous = 1;
	memcpy(sl->master, fresh, SERVER_AES_KEY_LEN);
	sl->version++;
	mbedtls_platform_zeroize(fresh, sizeof(fresh));
	return server_card_keys_save(data_dir, k);
}

int server_card_keys_retire(const char *data_dir, struct server_card_keys *k, int slot)
{
	if (slot < 0 || slot >= SERVER_CARD_SLOTS)
		return SERVER_ERR_ARG;
	struct server_card_slot *sl = &k->slot[slot];
	if (!sl->has_previous)
		return SERVER_ERR_NOT_FOUND;
	mbedtls_platform_zeroize(sl->previous, sizeof(sl->previous));
	sl->has_previous = 0;
	sl->previous_version = 0;
	return server_card_keys_save(data_dir, k);
}

static int list_key_create(const char *data_dir)
{
	char priv[PATH_MAX], pub[PATH_MAX];
	struct proto_key *k = NULL;
	int rc = server_key_path(priv, sizeof(priv), data_dir, "list.key");
	rc = rc ? rc : server_key_path(pub, sizeof(pub), data_dir, "list.pub.pem");
	if (rc)
		return rc;
	if (proto_key_generate(&k) != 0)
		return SERVER_ERR_CRYPTO;
	rc = proto_key_write_private_pem(k, priv) == 0 && proto_key_write_public_pem(k, pub) == 0
	             ? 0
	             : SERVER_ERR_IO;
	proto_key_free(k);
	return rc;
}

static int issuer_key_create(const char *data_dir)
{
	char priv[PATH_MAX], pub[PATH_MAX], pem[1024];
	struct proto_key *k = NULL;
	int rc = server_key_path(priv, sizeof(priv), data_dir, "issuer.key");
	rc = rc ? rc : server_key_path(pub, sizeof(pub), data_dir, "issuer.pub.pem");
	if (rc)
		return rc;
	if (proto_key_generate(&k) != 0)
		return SERVER_ERR_CRYPTO;
	rc = proto_key_private_pem(k, pem, sizeof(pem)) == 0 ? 0 : SERVER_ERR_CRYPTO;
	if (rc == 0)
		rc = server_file_create(priv, pem, strlen(pem), 0600);
	if (rc == 0)
		rc = proto_key_public_pem(k, pem, sizeof(pem)) == 0 ? 0 : SERVER_ERR_CRYPTO;
	if (rc == 0)
		rc = server_file_create(pub, pem, strlen(pem), 0644);
	mbedtls_platform_zeroize(pem, sizeof(pem));
	proto_key_free(k);
	return rc;
}

int server_keys_create(const char *data_dir, const char *server_name)
{
	char dir[PATH_MAX], key[PATH_MAX], crt[PATH_MAX];
	struct rng r;
	int rc;
	if (!keys_cn_ok(server_name))
		return SERVER_ERR_ARG;
	if (snprintf(dir, sizeof(dir), "%s/keys", data_dir) >= (int)sizeof(dir))
		return SERVER_ERR_ARG;
	if (mkdir(dir, 0700) != 0)
		return errno == EEXIST ? SERVER_ERR_EXISTS : SERVER_ERR_IO;
	if ((rc = keys_rng_init(&r)) != 0) {
		keys_rng_free(&r);
		return rc;
	}
	rc = list_key_create(data_dir);
	if (rc == 0)
		rc = issuer_key_create(data_dir);
	if (rc == 0)
		rc = keys_ca_create(data_dir, &r);
	if (rc == 0) {
		server_key_path(key, sizeof(key), data_dir, "server.key");
		server_key_path(crt, sizeof(crt), data_dir, "server.crt");
		rc = server_cert_issue(data_dir, server_name, SERVER_CERT_SERVER, 5 * 365, key,
		                       crt);
	}
	if (rc == 0) {
		server_key_path(key, sizeof(key), data_dir, "card.keys");
		rc = card_keys_create(key, &r);
	}
	keys_rng_free(&r);
	return rc;
}
