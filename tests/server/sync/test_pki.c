/*
 * test_pki.c — see test_pki.h. EC P-256 keys, SHA-256 signatures, 10-year validity.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "test_pki.h"

static int write_file(const char *path, const unsigned char *pem)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	size_t len = strlen((const char *)pem);
	int ok = fwrite(pem, 1, len, f) == len;
	ok &= fclose(f) == 0;
	chmod(path, 0600);
	return ok ? 0 : -1;
}

struct rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

static int rng_init(struct rng *r)
{
	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
	return mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
	                             (const unsigned char *)"pki", 3);
}

static void rng_free(struct rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

static int gen_key(struct rng *r, const char *path)
{
	mbedtls_pk_context key;
	unsigned char pem[2048];
	int rc;

	mbedtls_pk_init(&key);
	rc = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (!rc)
		rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key),
		                         mbedtls_ctr_drbg_random, &r->drbg);
	if (!rc)
		rc = mbedtls_pk_write_key_pem(&key, pem, sizeof(pem));
	if (!rc)
		rc = write_file(path, pem);
	mbedtls_pk_free(&key);
	return rc ? -1 : 0;
}

/* extendedKeyUsage values (DER), as citypass-admin writes them (server/src/keys.c). */
static int set_purpose(mbedtls_x509write_cert *crt, enum pki_purpose purpose)
{
	static const unsigned char eku[2][12] = {
	        {0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01},
	        {0x30, 0x0A, 0x06, 0x08, 0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02},
	};
	if (purpose == PKI_PURPOSE_NONE)
		return 0;
	return mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
	                                           MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
	                                           0, eku[purpose == PKI_PURPOSE_CLIENT],
	                                           sizeof(eku[0]));
}

/* Sign subject_key's certificate with issuer_key. issuer_name NULL: self-signed CA. */
static int issue_until(struct rng *r, const char *subject_key_path, const char *subject,
                       const char *issuer_key_path, const char *issuer, int is_ca,
                       enum pki_purpose purpose, const char *not_after, const char *out)
{
	static unsigned serial_counter = 1;
	mbedtls_pk_context skey, ikey;
	mbedtls_x509write_cert crt;
	mbedtls_mpi serial;
	unsigned char pem[4096];
	int rc;

	mbedtls_pk_init(&skey);
	mbedtls_pk_init(&ikey);
	mbedtls_x509write_crt_init(&crt);
	mbedtls_mpi_init(&serial);
	rc = mbedtls_pk_parse_keyfile(&skey, subject_key_path, NULL);
	if (!rc)
		rc = mbedtls_pk_parse_keyfile(&ikey, issuer_key_path, NULL);
	if (!rc)
		rc = mbedtls_mpi_lset(&serial,
		                      (mbedtls_mpi_sint)(serial_counter++ +
		                                         1000u * (unsigned)getpid() % 100000u));
	if (rc)
		goto out;
	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, &skey);
	mbedtls_x509write_crt_set_issuer_key(&crt, &ikey);
	rc = mbedtls_x509write_crt_set_subject_name(&crt, subject);
	if (!rc)
		rc = mbedtls_x509write_crt_set_issuer_name(&crt, issuer);
	if (!rc)
		rc = mbedtls_x509write_crt_set_serial(&crt, &serial);
	if (!rc)
		rc = mbedtls_x509write_crt_set_validity(&crt, "20200101000000",
		                                        not_after ? not_after : "20400101000000");
	if (!rc)
		rc = mbedtls_x509write_crt_set_basic_constraints(&crt, is_ca, is_ca ? 0 : -1);
	if (!rc && is_ca)
		rc = mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN |
		                                                       MBEDTLS_X509_KU_CRL_SIGN);
	if (!rc)
		rc = set_purpose(&crt, purpose);
	if (!rc)
		rc = mbedtls_x509write_crt_pem(&crt, pem, sizeof(pem), mbedtls_ctr_drbg_random,
		                               &r->drbg);
	if (!rc)
		rc = write_file(out, pem);
out:
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&crt);
	mbedtls_pk_free(&ikey);
	mbedtls_pk_free(&skey);
	return rc ? -1 : 0;
}

static int issue(struct rng *r, const char *subject_key_path, const char *subject,
                 const char *issuer_key_path, const char *issuer, int is_ca,
                 enum pki_purpose purpose, const char *out)
{
	return issue_until(r, subject_key_path, subject, issuer_key_path, issuer, is_ca, purpose,
	                   NULL, out);
}

static void paths(struct test_pki *p)
{
	snprintf(p->ca_cert, sizeof(p->ca_cert), "%s/%s-ca.crt", p->dir, p->tag);
	snprintf(p->ca_key, sizeof(p->ca_key), "%s/%s-ca.key", p->dir, p->tag);
	snprintf(p->server_cert, sizeof(p->server_cert), "%s/%s-server.crt", p->dir, p->tag);
	snprintf(p->server_key, sizeof(p->server_key), "%s/%s-server.key", p->dir, p->tag);
	snprintf(p->device_key, sizeof(p->device_key), "%s/%s-device.key", p->dir, p->tag);
}

int pki_create_in(struct test_pki *p, const char *dir, const char *tag)
{
	struct rng r;
	char ca_name[128];
	int rc;

	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(p->tag, sizeof(p->tag), "%s", tag);
	paths(p);
	snprintf(ca_name, sizeof(ca_name), "CN=citypass test CA %s,O=citypass", tag);
	if (rng_init(&r) != 0) {
		rng_free(&r);
		return -1;
	}
	rc = gen_key(&r, p->ca_key);
	if (!rc)
		rc = issue(&r, p->ca_key, ca_name, p->ca_key, ca_name, 1, PKI_PURPOSE_NONE,
		           p->ca_cert);
	if (!rc)
		rc = gen_key(&r, p->server_key);
	if (!rc)
		rc = issue(&r, p->server_key, "CN=localhost,O=citypass", p->ca_key, ca_name, 0,
		           PKI_PURPOSE_SERVER, p->server_cert);
	if (!rc)
		rc = gen_key(&r, p->device_key);
	rng_free(&r);
	return rc;
}

int pki_create(struct test_pki *p, const char *tag)
{
	const char *tmp = getenv("TMPDIR");
	char dir[PKI_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/citypass-sync-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	return pki_create_in(p, dir, tag);
}

int pki_device(const struct test_pki *p, const char *cn, char *cert)
{
	return pki_device_purpose(p, cn, PKI_PURPOSE_CLIENT, cert);
}

/* A device certificate of p's CA for `cn`, written to the path in cert; not_after NULL: the
 * default validity. */
static int issue_device(const struct test_pki *p, const char *cn, enum pki_purpose purpose,
                        const char *not_after, const char *cert)
{
	struct rng r;
	char subject[128], ca_name[128];
	int rc;

	snprintf(subject, sizeof(subject), "CN=%s,O=citypass", cn);
	snprintf(ca_name, sizeof(ca_name), "CN=citypass test CA %s,O=citypass", p->tag);
	if (rng_init(&r) != 0) {
		rng_free(&r);
		return -1;
	}
	rc = issue_until(&r, p->device_key, subject, p->ca_key, ca_name, 0, purpose, not_after,
	                 cert);
	rng_free(&r);
	return rc;
}

int pki_device_purpose(const struct test_pki *p, const char *cn, enum pki_purpose purpose,
                       char *cert)
{
	snprintf(cert, PKI_PATH_MAX, "%s/%s-dev-%s-%d.crt", p->dir, p->tag, cn, (int)purpose);
	return issue_device(p, cn, purpose, NULL, cert);
}

int pki_device_until(const struct test_pki *p, const char *cn, time_t not_after, char *cert)
{
	char until[16];
	struct tm tm;

	snprintf(cert, PKI_PATH_MAX, "%s/%s-dev-%s-until.crt", p->dir, p->tag, cn);
	if (!gmtime_r(&not_after, &tm) || strftime(until, sizeof(until), "%Y%m%d%H%M%S", &tm) != 14)
		return -1;
	return issue_device(p, cn, PKI_PURPOSE_CLIENT, until, cert);
}

void pki_remove(struct test_pki *p)
{
	DIR *d = opendir(p->dir);
	struct dirent *e;
	char path[PKI_PATH_MAX * 2];

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", p->dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(p->dir);
}
