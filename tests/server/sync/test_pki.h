/*
 * test_pki.h — certificates made at test time with mbedTLS x509write, in a temporary
 * directory removed afterwards (never committed): a deployment CA, the server's
 * certificate (CN localhost) and device certificates (CN = device id).
 */
#ifndef TEST_PKI_H
#define TEST_PKI_H

#include <stddef.h>
#include <time.h>

#define PKI_PATH_MAX 512

struct test_pki {
	char dir[200];
	char ca_cert[PKI_PATH_MAX];
	char ca_key[PKI_PATH_MAX];
	char server_cert[PKI_PATH_MAX];
	char server_key[PKI_PATH_MAX];
	char device_key[PKI_PATH_MAX]; /* one key shared by every device certificate: fast */
	char tag[16];                  /* distinguishes the files of two CAs in one dir */
};

/* A fresh CA with its server certificate in a new directory under $TMPDIR (or /tmp).
 * Returns 0 or -1. */
int pki_create(struct test_pki *p, const char *tag);
/* A second CA in the same directory as `base` (for "unknown CA" tests). */
int pki_create_in(struct test_pki *p, const char *dir, const char *tag);

/* The extendedKeyUsage a test certificate carries. */
enum pki_purpose {
	PKI_PURPOSE_NONE,   /* no extension (the CA; or a certificate of no stated role) */
	PKI_PURPOSE_SERVER, /* id-kp-serverAuth: the sync server */
	PKI_PURPOSE_CLIENT, /* id-kp-clientAuth: a gate */
};

/* Issue a device certificate (clientAuth) with subject CN `cn` signed by p's CA. Writes
 * its path to cert (PKI_PATH_MAX); the key is p->device_key. Returns 0 or -1. */
int pki_device(const struct test_pki *p, const char *cn, char *cert);
/* The same with another purpose (role tests). */
int pki_device_purpose(const struct test_pki *p, const char *cn, enum pki_purpose purpose,
                       char *cert);

/* A gate certificate (clientAuth) whose validity ends at not_after (UTC, to the second). */
int pki_device_until(const struct test_pki *p, const char *cn, time_t not_after, char *cert);

/* Remove the directory and everything in it. */
void pki_remove(struct test_pki *p);

#endif
