/*
 * The device CAs a gate follows (ca_follow.h). A CA comes in only through a certificate a
 * CA already trusted signed, never from a file or a message alone: the file kept in the
 * state directory is followed again from the bundle's CA at every start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/pem.h>
#include <mbedtls/pk.h>

#include "ca_follow.h"

static int holds(const mbedtls_x509_crt *anchors, const mbedtls_x509_crt *c)
{
	for (const mbedtls_x509_crt *a = anchors; a && a->raw.len; a = a->next)
		if (a->raw.len == c->raw.len && memcmp(a->raw.p, c->raw.p, c->raw.len) == 0)
			return 1;
	return 0;
}

/* DER of a certificate's public key into buf; its length, or 0. */
static size_t pubkey_der(mbedtls_x509_crt *c, unsigned char *buf, size_t cap)
{
	int n = mbedtls_pk_write_pubkey_der(&c->pk, buf, cap);
	if (n <= 0)
		return 0;
	memmove(buf, buf + cap - (size_t)n, (size_t)n);
	return (size_t)n;
}

static int append_pem(char **kept, size_t *len, const uint8_t *der, size_t der_len)
{
	size_t olen = 0;
	unsigned char pem[6144];
	if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
	                             der, der_len, pem, sizeof(pem), &olen) != 0)
		return -1;
	/* olen counts the terminating NUL */
	char *g = realloc(*kept, *len + olen);
	if (!g)
		return -1;
	memcpy(g + *len, pem, olen);
	*len += olen - 1;
	*kept = g;
	return 0;
}

/* A verification that failed only on dates counts as verified: the gate's trusted clock
 * judges the server's certificate dates at each handshake. Anything else fails closed. */
static int verified(int rc, uint32_t flags)
{
	const uint32_t dates = MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
	return rc == 0 || (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags && !(flags & ~dates));
}

/* 1: added, 0: already an anchor, -1: refused (why). */
static int follow_one(mbedtls_x509_crt *anchors, const struct controller_ca_announcement *a,
                      char **kept, size_t *kept_len, char *why, size_t cap)
{
	mbedtls_x509_crt cross, ca;
	unsigned char k1[256], k2[256];
	uint32_t flags = 0;
	int rc = -1;
	mbedtls_x509_crt_init(&cross);
	mbedtls_x509_crt_init(&ca);
	if (mbedtls_x509_crt_parse_der(&ca, a->ca, a->ca_len) != 0 ||
	    mbedtls_x509_crt_parse_der(&cross, a->cross, a->cross_len) != 0) {
		snprintf(why, cap, "an announced CA certificate does not parse");
		goto out;
	}
	if (holds(anchors, &ca)) {
		rc = 0;
		goto out;
	}
	size_t l1 = pubkey_der(&cross, k1, sizeof(k1)), l2 = pubkey_der(&ca, k2, sizeof(k2));
	if (!ca.ca_istrue || !cross.ca_istrue || ca.subject_raw.len != ca.issuer_raw.len ||
	    memcmp(ca.subject_raw.p, ca.issuer_raw.p, ca.subject_raw.len) != 0 ||
	    cross.subject_raw.len != ca.subject_raw.len ||
	    memcmp(cross.subject_raw.p, ca.subject_raw.p, ca.subject_raw.len) != 0 || !l1 ||
	    l1 != l2 || memcmp(k1, k2, l1) != 0) {
		snprintf(why, cap, "an announced CA and its cross-certificate do not match");
		goto out;
	}
	/* the new CA's self-signature, then the announcement by a CA this gate trusts */
	if (!verified(mbedtls_x509_crt_verify(&ca, &ca, NULL, NULL, &flags, NULL, NULL), flags)) {
		snprintf(why, cap, "an announced CA's own signature does not verify");
		goto out;
	}
	flags = 0;
	if (!verified(mbedtls_x509_crt_verify(&cross, anchors, NULL, NULL, &flags, NULL, NULL),
	              flags)) {
		snprintf(why, cap, "a CA not announced by a CA this gate trusts (flags 0x%x)",
		         (unsigned)flags);
		goto out;
	}
	if (mbedtls_x509_crt_parse_der(anchors, a->ca, a->ca_len) != 0 ||
	    append_pem(kept, kept_len, a->cross, a->cross_len) != 0 ||
	    append_pem(kept, kept_len, a->ca, a->ca_len) != 0) {
		snprintf(why, cap, "out of memory");
		goto out;
	}
	rc = 1;
out:
	mbedtls_x509_crt_free(&cross);
	mbedtls_x509_crt_free(&ca);
	return rc;
}

int ca_follow(mbedtls_x509_crt *anchors, const struct controller_ca_announcement *a, size_t n,
              char **kept, size_t *kept_len, char *why, size_t cap)
{
	int added = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = follow_one(anchors, &a[i], kept, kept_len, why, cap);
		if (rc < 0)
			return -1;
		added += rc;
	}
	return added;
}

int ca_follow_load(mbedtls_x509_crt *anchors, const char *path, char **kept, size_t *kept_len,
                   char *why, size_t cap)
{
	mbedtls_x509_crt pairs;
	if (access(path, F_OK) != 0)
		return 0;
	mbedtls_x509_crt_init(&pairs);
	if (mbedtls_x509_crt_parse_file(&pairs, path) != 0) {
		snprintf(why, cap, "%s does not parse", path);
		mbedtls_x509_crt_free(&pairs);
		return -1;
	}
	int added = 0;
	for (const mbedtls_x509_crt *c = &pairs; c && c->raw.len;
	     c = c->next ? c->next->next : NULL) {
		if (!c->next) {
			snprintf(why, cap, "%s: a cross-certificate without its CA", path);
			added = -1;
			break;
		}
		const struct controller_ca_announcement an = {c->raw.p, c->next->raw.p, c->raw.len,
		                                              c->next->raw.len};
		int rc = follow_one(anchors, &an, kept, kept_len, why, cap);
		if (rc < 0) {
			added = -1;
			break;
		}
		added += rc;
	}
	mbedtls_x509_crt_free(&pairs);
	return added;
}

int ca_follow_save(const char *path, const char *kept, size_t kept_len)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < kept_len) {
		ssize_t w = write(fd, kept + off, kept_len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	int ok = off == kept_len && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}
