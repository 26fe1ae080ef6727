/*
 * tls.h — mbedTLS 2.28 sessions over a non-blocking socket, driven by an event loop.
 *
 * Debian 12's libevent has no mbedTLS bufferevent, so each session plugs its own send and
 * recv into mbedtls_ssl_set_bio() and the caller (the sync server's libevent loop, or a
 * test's poll loop) re-calls the operation when the socket is ready. Both ends of the sync
 * link use it: the server, and the simulated controllers of the tests and benchmarks.
 *
 * Every function returns 0 (or a byte count), TLS_WANT_READ / TLS_WANT_WRITE (call again
 * once the socket is readable / writable), or a negative mbedTLS error code. Private to
 * the server library; tests reach it through the server/src include path.
 */
#ifndef SERVER_TLS_H
#define SERVER_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ssl.h>

#define TLS_WANT_READ  MBEDTLS_ERR_SSL_WANT_READ
#define TLS_WANT_WRITE MBEDTLS_ERR_SSL_WANT_WRITE

/* Largest plaintext one tls_session_write() moves (one TLS record). */
#define TLS_RECORD_MAX 16384

/* Shared configuration of many sessions: RNG, trusted CA, own certificate and key. */
struct tls_ctx;

enum tls_role {
	TLS_ROLE_SERVER,
	TLS_ROLE_CLIENT,
};

struct tls_ctx_params {
	enum tls_role role;
	const char *ca_path;   /* PEM: the deployment CA the peer's certificate must chain to */
	const char *cert_path; /* PEM: own certificate */
	const char *key_path;  /* PEM: own private key */
	const char *crl_path;  /* PEM CRL of the CA, or NULL */
	/* Client: the name the server certificate must carry (CN or SAN), or NULL to skip. */
	const char *server_name;
};

/* Load certificates and seed the RNG. Returns 0 or a negative mbedTLS error; err (if not
 * NULL) receives a sentence naming the file that failed. */
int tls_ctx_new(struct tls_ctx **out, const struct tls_ctx_params *params, char *err,
                size_t err_cap);
void tls_ctx_free(struct tls_ctx *ctx);

/*
 * Called for every certificate of the peer's chain once mbedTLS has checked it against
 * the CA (see mbedtls_ssl_set_verify): depth 0 is the peer's own certificate. Setting a
 * bit in *flags refuses the handshake.
 */
typedef int (*tls_verify_fn)(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags);

struct tls_session {
	mbedtls_ssl_context ssl;
	int fd;
	/* the peer's certificate must carry the purpose of its role (tls_cert_has_purpose),
	 * then the caller's own check runs */
	enum tls_role peer_role;
	tls_verify_fn verify;
	void *verify_arg;
	/* mbedtls_ssl_write() must be re-called with the same length after WANT_WRITE. */
	size_t pending_write;
	int ready; /* handshake done */
};

/* Prepare a session on a connected non-blocking socket (not owned: the caller closes it). */
int tls_session_init(struct tls_session *s, struct tls_ctx *ctx, int fd, tls_verify_fn verify,
                     void *verify_arg);
void tls_session_free(struct tls_session *s);

/* Advance the handshake: 0 once complete. */
int tls_session_handshake(struct tls_session *s);

/* Read plaintext: bytes read (> 0), 0 when the peer closed (close_notify or EOF), WANT_*,
 * or an error. */
long tls_session_read(struct tls_session *s, uint8_t *buf, size_t cap);

/* Write up to TLS_RECORD_MAX bytes of buf: bytes consumed (> 0), WANT_*, or an error.
 * After WANT_*, call again with the same buffer front (at least as many bytes). */
long tls_session_write(struct tls_session *s, const uint8_t *buf, size_t len);

/* Plaintext already decrypted and waiting inside mbedTLS. */
size_t tls_session_pending(const struct tls_session *s);

/* Send close_notify (best effort, non-blocking). */
void tls_session_close_notify(struct tls_session *s);

/* The CN of a certificate's subject, NUL-terminated. Returns 0, or -1 when it has none or
 * it does not fit in cap (or contains a NUL byte). */
int tls_cert_cn(const mbedtls_x509_crt *crt, char *cn, size_t cap);

/*
 * 1 when the certificate carries an extendedKeyUsage extension that lists the purpose of
 * `role` (TLS_ROLE_SERVER: id-kp-serverAuth, TLS_ROLE_CLIENT: id-kp-clientAuth), else 0.
 * mbedTLS alone accepts a certificate without the extension for any purpose; the device
 * CA signs both the server and the gates, so the purpose is what tells them apart.
 */
int tls_cert_has_purpose(const mbedtls_x509_crt *crt, enum tls_role role);

/* A sentence for an mbedTLS error code, written into buf; returns buf. */
const char *tls_strerror(int err, char *buf, size_t cap);

/* A sentence for X.509 verification flags, e.g. "certificate revoked". */
void tls_verify_reason(uint32_t flags, char *buf, size_t cap);

#endif /* SERVER_TLS_H */
