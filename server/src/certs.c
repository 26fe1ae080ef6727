/*
 * certs.c — the device CA and the certificates it signs (server/keys.h): the sync server's
 * and each gate's, with their roles (issue 10), and the CA's rotation (issue 11).
 *
 * Certificates are written with mbedTLS 2.28's x509write (no subjectAltName writer in
 * 2.28: the server certificate names its host in the CN only).
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
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "keys_internal.h"
#include "server/keys.h"

/* --- EC keys and certificates ------------------------------------------------------------ */

static int ec_generate(mbedtls_pk_context *pk, struct rng *r)
{
	if (mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0)
		return SERVER_ERR_CRYPTO;
	if (mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
	                        mbedtls_ctr_drbg_random, &r->drbg) != 0)
		return SERVER_ERR_CRYPTO;
	return 0;
}

static int ec_write_private(mbedtls_pk_context *pk, const char *path)
{
	unsigned char pem[1024];
	if (mbedtls_pk_write_key_pem(pk, pem, sizeof(pem)) != 0)
		return SERVER_ERR_CRYPTO;
	int rc = server_file_create(path, pem, strlen((char *)pem), 0600);
	mbedtls_platform_zeroize(pem, sizeof(pem));
	return rc;
}

static void validity_string(time_t t, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 32, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * extendedKeyUsage (RFC 5280 s.4.2.1.12) telling the two roles apart: the sync server's
 * certificate is for TLS servers only, a gate's for TLS clients only. Both ends refuse a
 * peer certificate without the right purpose, so a gate's stolen bundle cannot serve as
 * the server (issue 10). The value is DER: SEQUENCE { OID id-kp-serverAuth | clientAuth }.
 */
static int set_role(mbedtls_x509write_cert *crt, enum server_cert_role role)
{
	static const unsigned char server_auth[] = {0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06,
	                                            0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
	static const unsigned char client_auth[] = {0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06,
	                                            0x01, 0x05, 0x05, 0x07, 0x03, 0x02};
	const unsigned char *v = role == SERVER_CERT_SERVER ? server_auth : client_auth;
	return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
	                                           MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
	                                           0, v, sizeof(server_auth));
}

/* Write a certificate for `subject` signed by `issuer` (the same key when self-signed).
 * role < 0: the CA. */
static int write_cert(mbedtls_pk_context *subject, mbedtls_pk_context *issuer,
                      const char *subject_name, const char *issuer_name, int role, int days,
                      struct rng *r, const char *path)
{
	const int is_ca = role < 0;
	/* a CA signs gates and the server directly (path length 0); a cross-certificate
	 * (role -2, a CA certified by its predecessor) may have later CAs below it */
	const int pathlen = role == -2 ? -1 : 0;
	mbedtls_x509write_cert crt;
	mbedtls_mpi serial;
	unsigned char buf[4096];
	unsigned char sn[16];
	char from[32], to[32];
	int rc = SERVER_ERR_CRYPTO;

	mbedtls_x509write_crt_init(&crt);
	mbedtls_mpi_init(&serial);
	time_t now = time(NULL);
	validity_string(now - 3600, from);
	validity_string(now + (time_t)days * 86400, to);
	if (mbedtls_ctr_drbg_random(&r->drbg, sn, sizeof(sn)) != 0)
		goto out;
	sn[0] &= 0x7F; /* a positive serial (RFC 5280 s.4.1.2.2) */
	sn[0] |= 0x01;
	if (mbedtls_mpi_read_binary(&serial, sn, sizeof(sn)) != 0)
		goto out;
	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, subject);
	mbedtls_x509write_crt_set_issuer_key(&crt, issuer);
	if (mbedtls_x509write_crt_set_serial(&crt, &serial) != 0 ||
	    mbedtls_x509write_crt_set_validity(&crt, from, to) != 0 ||
	    mbedtls_x509write_crt_set_subject_name(&crt, subject_name) != 0 ||
	    mbedtls_x509write_crt_set_issuer_name(&crt, issuer_name) != 0 ||
	    mbedtls_x509write_crt_set_basic_constraints(&crt, is_ca, is_ca ? pathlen : -1) != 0 ||
	    mbedtls_x509write_crt_set_subject_key_identifier(&crt) != 0 ||
	    mbedtls_x509write_crt_set_authority_key_identifier(&crt) != 0)
		goto out;
	unsigned int usage = is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
	                           : MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
	if (mbedtls_x509write_crt_set_key_usage(&crt, usage) != 0)
		goto out;
	if (!is_ca && set_role(&crt, (enum server_cert_role)role) != 0)
		goto out;
	if (mbedtls_x509write_crt_pem(&crt, buf, sizeof(buf), mbedtls_ctr_drbg_random, &r->drbg) !=
	    0)
		goto out;
	rc = server_file_create(path, buf, strlen((char *)buf), 0644);
out:
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&crt);
	return rc;
}

/* The first CA's distinguished name as written in its certificate; CA n > 1 (after n - 1
 * rotations) is "citypass device CA n": distinct names let a verifier build the path
 * through the cross-certificates. */
#define CA_NAME "CN=citypass device CA,O=citypass"

static void ca_name(unsigned n, char *buf, size_t cap)
{
	if (n <= 1)
		snprintf(buf, cap, "%s", CA_NAME);
	else
		snprintf(buf, cap, "CN=citypass device CA %u,O=citypass", n);
}

static int cross_path(char *buf, size_t cap, const char *data_dir, unsigned n)
{
	int w = snprintf(buf, cap, "%s/keys/ca-chain/%u.cross.crt", data_dir, n);
	return w < 0 || (size_t)w >= cap ? SERVER_ERR_ARG : 0;
}

/* The current CA's number: 1 + the rotations committed (ca-chain/N.cross.crt). */
static unsigned ca_current(const char *data_dir)
{
	char path[PATH_MAX];
	unsigned n = 1;
	while (n < 1000 && cross_path(path, sizeof(path), data_dir, n) == 0 &&
	       access(path, F_OK) == 0)
		n++;
	return n;
}

/* Check a CN fits a distinguished name without escaping. */
int keys_cn_ok(const char *cn)
{
	if (!*cn || strlen(cn) > 64)
		return 0;
	for (const char *p = cn; *p; p++)
		if (*p == ',' || *p == '=' || *p == '+' || *p == '\\' || *p == '"' || *p < 0x20)
			return 0;
	return 1;
}

int server_cert_issue(const char *data_dir, const char *cn, enum server_cert_role role, int days,
                      const char *key_path, const char *crt_path)
{
	char ca_key[PATH_MAX], name[128];
	struct rng r;
	mbedtls_pk_context ca, pk;
	int rc;

	if (!keys_cn_ok(cn) || days <= 0 ||
	    (role != SERVER_CERT_SERVER && role != SERVER_CERT_DEVICE))
		return SERVER_ERR_ARG;
	if ((rc = server_key_path(ca_key, sizeof(ca_key), data_dir, "ca.key")) != 0)
		return rc;
	mbedtls_pk_init(&ca);
	mbedtls_pk_init(&pk);
	if ((rc = keys_rng_init(&r)) != 0)
		goto out;
	if (mbedtls_pk_parse_keyfile(&ca, ca_key, NULL) != 0) {
		rc = SERVER_ERR_CRYPTO;
		goto out;
	}
	if ((rc = ec_generate(&pk, &r)) != 0)
		goto out;
	snprintf(name, sizeof(name), "CN=%s,O=citypass", cn);
	if ((rc = ec_write_private(&pk, key_path)) != 0)
		goto out;
	char issuer[128];
	ca_name(ca_current(data_dir), issuer, sizeof(issuer));
	rc = write_cert(&pk, &ca, name, issuer, (int)role, days, &r, crt_path);
	if (rc)
		unlink(key_path);
out:
	mbedtls_pk_free(&pk);
	mbedtls_pk_free(&ca);
	keys_rng_free(&r);
	return rc;
}

int keys_ca_create(const char *data_dir, struct rng *r)
{
	char key[PATH_MAX], crt[PATH_MAX];
	mbedtls_pk_context pk;
	int rc = server_key_path(key, sizeof(key), data_dir, "ca.key");
	rc = rc ? rc : server_key_path(crt, sizeof(crt), data_dir, "ca.crt");
	if (rc)
		return rc;
	mbedtls_pk_init(&pk);
	rc = ec_generate(&pk, r);
	if (rc == 0)
		rc = ec_write_private(&pk, key);
	if (rc == 0)
		rc = write_cert(&pk, &pk, CA_NAME, CA_NAME, -1, 20 * 365, r, crt);
	mbedtls_pk_free(&pk);
	return rc;
}

/* --- the CA's rotation (issue 11) ------------------------------------------------------- */

static int read_all(const char *path, uint8_t **data, size_t *len)
{
	int rc = server_file_read(path, data, len);
	return rc == SERVER_ERR_NOT_FOUND ? SERVER_ERR_IO : rc;
}

/* Append the file at `from` to the open buffer (*buf, *len), growing it. */
static int append_file(char **buf, size_t *len, const char *from)
{
	uint8_t *d = NULL;
	size_t n = 0;
	int rc = read_all(from, &d, &n);
	if (rc)
		return rc;
	char *g = realloc(*buf, *len + n + 1);
	if (!g) {
		free(d);
		return SERVER_ERR_NOMEM;
	}
	memcpy(g + *len, d, n);
	*len += n;
	g[*len] = 0;
	*buf = g;
	free(d);
	return 0;
}

/* The CN of the server certificate in use (the name gates pin). */
static int server_cn(const char *crt_path, char *cn, size_t cap)
{
	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	int rc = mbedtls_x509_crt_parse_file(&crt, crt_path) == 0 ? SERVER_ERR_INVALID
	                                                          : SERVER_ERR_CRYPTO;
	for (const mbedtls_x509_name *n = &crt.subject; rc == SERVER_ERR_INVALID && n; n = n->next)
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 && n->val.len < cap) {
			memcpy(cn, n->val.p, n->val.len);
			cn[n->val.len] = 0;
			rc = 0;
		}
	mbedtls_x509_crt_free(&crt);
	return rc;
}

/* server.crt (and its key) reissued under the current CA, same CN: the retirement of the
 * earlier CAs as the server's issuer. */
static int server_reissue(const char *data_dir)
{
	char key[PATH_MAX], crt[PATH_MAX], nkey[PATH_MAX], ncrt[PATH_MAX], cn[80];
	int rc = server_key_path(key, sizeof(key), data_dir, "server.key");
	rc = rc ? rc : server_key_path(crt, sizeof(crt), data_dir, "server.crt");
	rc = rc ? rc : server_key_path(nkey, sizeof(nkey), data_dir, "server.key.next");
	rc = rc ? rc : server_key_path(ncrt, sizeof(ncrt), data_dir, "server.crt.next");
	rc = rc ? rc : server_cn(crt, cn, sizeof(cn));
	if (rc)
		return rc;
	unlink(nkey);
	unlink(ncrt);
	rc = server_cert_issue(data_dir, cn, SERVER_CERT_SERVER, 5 * 365, nkey, ncrt);
	/* the key first: a crash between the renames leaves the new key with the old
	 * certificate, which the server refuses at start with a sentence; running the command
	 * again redoes both */
	if (rc == 0 && rename(nkey, key) != 0)
		rc = SERVER_ERR_IO;
	if (rc == 0 && rename(ncrt, crt) != 0)
		rc = SERVER_ERR_IO;
	unlink(nkey);
	unlink(ncrt);
	return rc;
}

int server_ca_present_newest(const char *data_dir, unsigned *current)
{
	if (!data_dir)
		return SERVER_ERR_ARG;
	const unsigned n = ca_current(data_dir);
	if (current)
		*current = n;
	return n < 2 ? SERVER_ERR_NOT_FOUND : server_reissue(data_dir);
}

int server_ca_chain_load(const char *data_dir, struct server_ca_chain *out)
{
	char path[PATH_MAX];
	if (!data_dir || !out)
		return SERVER_ERR_ARG;
	memset(out, 0, sizeof(*out));
	const unsigned n = ca_current(data_dir);
	if (n < 2)
		return 0;
	out->a = calloc(n - 1, sizeof(*out->a));
	if (!out->a)
		return SERVER_ERR_NOMEM;
	for (unsigned i = 1; i < n; i++) {
		struct server_ca_announcement *an = &out->a[out->n++];
		for (int k = 0; k < 2; k++) {
			mbedtls_x509_crt c;
			mbedtls_x509_crt_init(&c);
			int w = k == 0 ? cross_path(path, sizeof(path), data_dir, i)
			               : snprintf(path, sizeof(path),
			                          "%s/keys/ca-chain/%u.next.crt", data_dir,
			                          i) >= (int)sizeof(path);
			int rc = w == 0 && mbedtls_x509_crt_parse_file(&c, path) == 0
			                 ? 0
			                 : SERVER_ERR_INVALID;
			uint8_t **der = k == 0 ? &an->cross : &an->ca;
			size_t *len = k == 0 ? &an->cross_len : &an->ca_len;
			if (rc == 0 && (*der = malloc(c.raw.len)) != NULL) {
				memcpy(*der, c.raw.p, c.raw.len);
				*len = c.raw.len;
			} else if (rc == 0) {
				rc = SERVER_ERR_NOMEM;
			}
			mbedtls_x509_crt_free(&c);
			if (rc) {
				server_ca_chain_free(out);
				return rc;
			}
		}
	}
	return 0;
}

int server_ca_rotate(const char *data_dir, struct server_ca_rotation *out)
{
	char dir[PATH_MAX], key[PATH_MAX], crt[PATH_MAX], nkey[PATH_MAX], ncrt[PATH_MAX];
	char cross[PATH_MAX], old_name[128], new_name[128];
	struct rng r;
	mbedtls_pk_context old_ca, new_ca;
	if (!data_dir || !out)
		return SERVER_ERR_ARG;
	memset(out, 0, sizeof(*out));
	const unsigned n = ca_current(data_dir);
	if (snprintf(dir, sizeof(dir), "%s/keys/ca-chain", data_dir) >= (int)sizeof(dir))
		return SERVER_ERR_ARG;
	int rc = server_key_path(key, sizeof(key), data_dir, "ca.key");
	rc = rc ? rc : server_key_path(crt, sizeof(crt), data_dir, "ca.crt");
	rc = rc ? rc : server_key_path(nkey, sizeof(nkey), data_dir, "ca.key.next");
	rc = rc ? rc : server_key_path(ncrt, sizeof(ncrt), data_dir, "ca.crt.next");
	rc = rc ? rc : cross_path(cross, sizeof(cross), data_dir, n);
	if (rc)
		return rc;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return SERVER_ERR_IO;
	char ctmp[PATH_MAX + 8];
	snprintf(ctmp, sizeof(ctmp), "%s.tmp", cross);
	mbedtls_pk_init(&old_ca);
	mbedtls_pk_init(&new_ca);
	if ((rc = keys_rng_init(&r)) != 0)
		goto out;
	if (mbedtls_pk_parse_keyfile(&old_ca, key, NULL) != 0) {
		rc = SERVER_ERR_CRYPTO;
		goto out;
	}
	ca_name(n, old_name, sizeof(old_name));
	ca_name(n + 1, new_name, sizeof(new_name));
	unlink(nkey);
	unlink(ncrt);
	unlink(ctmp);
	/* 1. the new CA's key and self-signed certificate, beside the current ones */
	rc = ec_generate(&new_ca, &r);
	rc = rc ? rc : ec_write_private(&new_ca, nkey);
	rc = rc ? rc : write_cert(&new_ca, &new_ca, new_name, new_name, -1, 20 * 365, &r, ncrt);
	/* 2. the announcement: the new CA certified by the current one */
	rc = rc ? rc : write_cert(&new_ca, &old_ca, new_name, old_name, -2, 20 * 365, &r, ctmp);
	/* 3. ca.crt becomes the new CA followed by every earlier one: the server goes on
	 * accepting gates whose certificates an earlier CA signed */
	char *bundle = NULL;
	size_t blen = 0;
	rc = rc ? rc : append_file(&bundle, &blen, ncrt);
	rc = rc ? rc : append_file(&bundle, &blen, crt);
	/* the CAs before, as they were, for whoever checks the announcement with openssl */
	char before[PATH_MAX + 16];
	snprintf(before, sizeof(before), "%s/%u.ca.crt", dir, n);
	if (rc == 0) {
		uint8_t *d = NULL;
		size_t dl = 0;
		rc = read_all(crt, &d, &dl);
		rc = rc ? rc : server_file_replace(before, (const char *)d, dl, 0644);
		free(d);
	}
	/* 4. the new CA's own certificate, sent with the announcement: what a gate adds to
	 * its anchors once the cross-certificate verifies */
	if (rc == 0) {
		char next[PATH_MAX + 16];
		snprintf(next, sizeof(next), "%s/%u.next.crt", dir, n);
		uint8_t *d = NULL;
		size_t dl = 0;
		rc = read_all(ncrt, &d, &dl);
		rc = rc ? rc : server_file_replace(next, (const char *)d, dl, 0644);
		free(d);
	}
	/* 5. the commit point: N.cross.crt exists, the CA is number n + 1 from now on */
	if (rc == 0 && rename(ctmp, cross) != 0)
		rc = SERVER_ERR_IO;
	if (rc == 0) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			(void)fsync(fd);
			close(fd);
		}
		if (rename(nkey, key) != 0)
			rc = SERVER_ERR_IO;
	}
	rc = rc ? rc : server_file_replace(crt, bundle, blen, 0644);
	free(bundle);
	if (rc == 0) {
		out->from = n;
		out->to = n + 1;
	}
out:
	unlink(ctmp);
	unlink(ncrt);
	if (rc)
		unlink(nkey);
	mbedtls_pk_free(&old_ca);
	mbedtls_pk_free(&new_ca);
	keys_rng_free(&r);
	return rc;
}
