/*
 * link/tls.h — the sync link's TLS, for both ends: mbedTLS 2.28 sessions over a non-blocking
 * socket, driven by an event loop (docs/link.md).
 *
 * Debian 12's libevent has no mbedTLS bufferevent, so each session plugs its own send and
 * recv into mbedtls_ssl_set_bio() and the caller (the sync server's libevent loop, the gate's
 * sync thread, or a test's poll loop) re-calls the operation when the socket is ready. One
 * configuration (link_tls_ctx) holds what every session of a process shares: the RNG, the
 * CA the peer must chain to, the own certificate and key, TLS 1.2 with mutual
 * authentication (DESIGN.md section 3).
 *
 * Every function returns 0 (or a byte count), LINK_TLS_WANT_READ / LINK_TLS_WANT_WRITE (call
 * again once the socket is readable / writable), or a negative mbedTLS error code
 * (link_tls_strerror names it). mbedTLS's codes (-0x0001 to -0x7FFF) are the link's own
 * error space: the link adds none.
 */
#ifndef LINK_TLS_H
#define LINK_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LINK_TLS_WANT_READ  MBEDTLS_ERR_SSL_WANT_READ
#define LINK_TLS_WANT_WRITE MBEDTLS_ERR_SSL_WANT_WRITE

/* Largest plaintext one link_tls_session_write() moves (one TLS record). */
#define LINK_TLS_RECORD_MAX 16384

/* Shared configuration of many sessions: RNG, trusted CA, own certificate and key. */
struct link_tls_ctx;

enum link_tls_role {
	LINK_TLS_SERVER,
	LINK_TLS_CLIENT,
};

struct link_tls_params {
	enum link_tls_role role;
	const char *ca_path;   /* PEM: the deployment CA the peer's certificate must chain to */
	const char *cert_path; /* PEM: own certificate */
	const char *key_path;  /* PEM: own private key */
	const char *crl_path;  /* PEM CRL of the CA, or NULL */
	/* Client: the name the server certificate must carry (CN or SAN), or NULL to skip. */
	const char *server_name;
	/* Personalisation string of the RNG (which end drew it, in a dump); NULL: a default. */
	const char *personalisation;
	/* Server: issue session tickets (RFC 5077) that resume a session for this long after
	 * its full handshake, so that a gate dialling again costs no elliptic-curve operation;
	 * their keys live in memory only and are renewed every lifetime. 0: no tickets. */
	uint32_t ticket_lifetime_s;
};

/* Load certificates and seed the RNG. Returns 0 or a negative mbedTLS error; err (if not
 * NULL) receives a sentence naming the file that failed. */
int link_tls_ctx_new(struct link_tls_ctx **out, const struct link_tls_params *params, char *err,
                     size_t err_cap);
void link_tls_ctx_free(struct link_tls_ctx *ctx);

/* The trusted CA chain the configuration verifies peers against. Certificates appended to
 * it (mbedtls_x509_crt_parse_der) are anchors from the next handshake on: how a gate
 * follows the device CA's rotations (controller/src/ca_follow.h). */
mbedtls_x509_crt *link_tls_ctx_anchors(struct link_tls_ctx *ctx);

/* len bytes from the configuration's DRBG (e.g. reconnect jitter): 0 or an mbedTLS error. */
int link_tls_ctx_random(struct link_tls_ctx *ctx, void *buf, size_t len);

/*
 * Called for every certificate of the peer's chain once mbedTLS has checked it against
 * the CA (see mbedtls_ssl_set_verify): depth 0 is the peer's own certificate. Setting a
 * bit in *flags refuses the handshake; clearing one forgives it (a gate judges validity
 * dates by its own trusted clock).
 */
typedef int (*link_tls_verify_fn)(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags);

struct link_tls_session {
	mbedtls_ssl_context ssl;
	struct link_tls_ctx *ctx;
	int fd;
	/* the peer's certificate must carry the purpose of its role (link_tls_cert_has_purpose),
	 * then the caller's own check runs */
	enum link_tls_role peer_role;
	link_tls_verify_fn verify;
	void *verify_arg;
	/* mbedtls_ssl_write() must be re-called with the same length after WANT_WRITE. */
	size_t pending_write;
	int ready;              /* handshake done */
	int peer_checked;       /* the peer's certificate went through the verify callback */
	int resumed;            /* the handshake resumed a session from a ticket */
	uint32_t resumed_flags; /* why the peer of a resumed session was refused */
};

/*
 * A client's session ticket, kept from one connection to offer at the next: a server that
 * sealed it resumes the session without a certificate exchange. The verify callback still
 * runs on a resumed session (link_tls_session_handshake), on the peer's certificate kept in
 * the ticket.
 */
struct link_tls_ticket {
	mbedtls_ssl_session session;
	int have;
};

void link_tls_ticket_init(struct link_tls_ticket *t);
/* Forget the ticket (the next handshake is a full one); the struct can be reused. */
void link_tls_ticket_free(struct link_tls_ticket *t);
/* After a completed handshake (client): keep the session's ticket, if the server gave one.
 * 0 or a negative mbedTLS error. */
int link_tls_ticket_keep(struct link_tls_ticket *t, const struct link_tls_session *s);
/* Before the handshake (client): offer the ticket kept, if any. 0 or an mbedTLS error. */
int link_tls_session_offer_ticket(struct link_tls_session *s, const struct link_tls_ticket *t);

/* Prepare a session on a connected non-blocking socket (not owned: the caller closes it).
 * Call link_tls_session_free() afterwards whatever it returned. */
int link_tls_session_init(struct link_tls_session *s, struct link_tls_ctx *ctx, int fd,
                          link_tls_verify_fn verify, void *verify_arg);
void link_tls_session_free(struct link_tls_session *s);

/*
 * Advance the handshake: 0 once complete. A resumed session skips the certificate exchange
 * and with it mbedTLS's verification: the peer's certificate from the ticket then goes
 * through the same verify callback, at depth 0, with the flags of what can have changed
 * since the full handshake (its dates, the CRL); a refusal returns
 * MBEDTLS_ERR_X509_CERT_VERIFY_FAILED (link_tls_session_verify_result says why).
 */
int link_tls_session_handshake(struct link_tls_session *s);

/* The verification flags of the peer's certificate: mbedTLS's after a full handshake,
 * those of the check above after a resumption. */
uint32_t link_tls_session_verify_result(const struct link_tls_session *s);

/* Read plaintext: bytes read (> 0), 0 when the peer closed (close_notify or EOF), WANT_*,
 * or an error. */
long link_tls_session_read(struct link_tls_session *s, uint8_t *buf, size_t cap);

/* Write up to LINK_TLS_RECORD_MAX bytes of buf: bytes consumed (> 0), WANT_*, or an error.
 * After WANT_*, call again with the same buffer front (at least as many bytes). */
long link_tls_session_write(struct link_tls_session *s, const uint8_t *buf, size_t len);

/* Plaintext already decrypted and waiting inside mbedTLS. */
size_t link_tls_session_pending(const struct link_tls_session *s);

/* Send close_notify (best effort, non-blocking) once the handshake was done. */
void link_tls_session_close_notify(struct link_tls_session *s);

/* The CN of a certificate's subject, NUL-terminated. Returns 0, or -1 when it has none or
 * it does not fit in cap (or contains a NUL byte). */
int link_tls_cert_cn(const mbedtls_x509_crt *crt, char *cn, size_t cap);

/*
 * 1 when the certificate carries an extendedKeyUsage extension that lists the purpose of
 * `role` (LINK_TLS_SERVER: id-kp-serverAuth, LINK_TLS_CLIENT: id-kp-clientAuth), else 0.
 * mbedTLS alone accepts a certificate without the extension for any purpose; the device
 * CA signs both the server and the gates, so the purpose is what tells them apart.
 */
int link_tls_cert_has_purpose(const mbedtls_x509_crt *crt, enum link_tls_role role);

/* A certificate time (UTC) as Unix seconds. */
int64_t link_tls_time_unix(const mbedtls_x509_time *t);

/* A sentence for an mbedTLS error code, written into buf; returns buf. */
const char *link_tls_strerror(int err, char *buf, size_t cap);

/* A sentence for X.509 verification flags on one line, e.g. "The certificate has been
 * revoked (is on a CRL)"; several reasons are joined by ';'. */
void link_tls_verify_reason(uint32_t flags, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* LINK_TLS_H */
