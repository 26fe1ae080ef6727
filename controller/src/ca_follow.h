/*
 * ca_follow.h — the device CAs a gate trusts for the server (issue 11, docs/controller.md
 * "The device CA"): the CA of its enrolment bundle, and each CA announced after it by a
 * certificate an anchor it already holds signed (the cross-certificate). Internal to the
 * sync client.
 */
#ifndef CONTROLLER_CA_FOLLOW_H
#define CONTROLLER_CA_FOLLOW_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/x509_crt.h>

#include "controller/sync_session.h" /* struct controller_ca_announcement: one rotation */

/*
 * Follow announcements, oldest first: each whose CA is not yet an anchor must be a
 * self-signed CA certificate, its cross-certificate must name the same subject and key,
 * be a CA certificate, and verify against `anchors` (dates aside: the gate's clock is
 * judged elsewhere); the new CA is then added to `anchors` and its pair appended to
 * `*kept` (PEM, cross then CA: what ca_follow_load reads back). Returns the count added,
 * or -1 at the first announcement refused (why says which and why; those before it stay).
 */
int ca_follow(mbedtls_x509_crt *anchors, const struct controller_ca_announcement *a, size_t n,
              char **kept, size_t *kept_len, char *why, size_t cap);

/* Read `path` (pairs as ca_follow keeps them) and follow them again from `anchors`: a file
 * that does not follow is not believed (why says so); its pairs that did are kept. Returns
 * the count added, 0 when there is no file, -1 when some pair was refused. */
int ca_follow_load(mbedtls_x509_crt *anchors, const char *path, char **kept, size_t *kept_len,
                   char *why, size_t cap);

/* Write kept (PEM pairs) to path through a temp file, fsynced: 0 or -1 (errno). */
int ca_follow_save(const char *path, const char *kept, size_t kept_len);

#endif /* CONTROLLER_CA_FOLLOW_H */
