/*
 * tls.c — mbedTLS 2.28 over a non-blocking socket through mbedtls_ssl_set_bio(), for both
 * ends of the sync link (link/tls.h).
 *
 * Our own send/recv rather than mbedtls_net_send(): that one write()s, and a peer that
 * resets the connection would raise SIGPIPE in the whole process (the server, or a gate
 * whose reader thread would die with it). send(MSG_NOSIGNAL) keeps a dying peer a
 * per-connection error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "link/tls.h"

struct link_tls_ctx {
	enum link_tls_role role;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca;
	mbedtls_x509_crt own;
	mbedtls_x509_crl crl;
	mbedtls_pk_context key;
	mbedtls_ssl_config conf;
	mbedtls_ssl_ticket_context tickets;
	int have_crl;
	char server_name[256];
};

static const char default_personalisation[] = "citypass-sync";

/*
 * The key exchange's curves, the server's choice in this order. mbedTLS 2.28's default puts
 * secp521r1 first: an ECDHE that costs each side 3.8 ms where P-256, the curve of every
 * citypass certificate, costs 1.6 (x25519 1.9) — most of a full handshake's difference in a
 * reconnect storm of 10 000 gates (docs/sync-server.md). The others stay for peers that
 * offer nothing else.
 */
static const mbedtls_ecp_group_id link_tls_curves[] = {
        MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP384R1,
        MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE};

static int bio_send(void *arg, const unsigned char *buf, size_t len)
{
	int fd = *(int *)arg;
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	if (errno == EPIPE || errno == ECONNRESET)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *arg, unsigned char *buf, size_t len)
{
	int fd = *(int *)arg;
	ssize_t n = recv(fd, buf, len, 0);
	if (n >= 0)
		return (int)n; /* 0: EOF, which mbedTLS reports as MBEDTLS_ERR_SSL_CONN_EOF */
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (errno == ECONNRESET || errno == EPIPE)
		return MBEDTLS_ERR_NET_CONN_RESET;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

static void say(char *err, size_t cap, const char *what, const char *path, int rc)
{
	char why[128];
	if (!err || cap == 0)
		return;
	mbedtls_strerror(rc, why, sizeof(why));
	snprintf(err, cap, "%s %s: %s", what, path ? path : "(none)", why);
}

int link_tls_ctx_new(struct link_tls_ctx **out, const struct link_tls_params *p, char *err,
                     size_t err_cap)
{
	struct link_tls_ctx *c;
	const char *pers;
	int rc;

	if (!out || !p || !p->ca_path || !p->cert_path || !p->key_path)
		return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
	c = calloc(1, sizeof(*c));
	if (!c)
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_x509_crt_init(&c->ca);
	mbedtls_x509_crt_init(&c->own);
	mbedtls_x509_crl_init(&c->crl);
	mbedtls_pk_init(&c->key);
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_ssl_ticket_init(&c->tickets);

	pers = p->personalisation ? p->personalisation : default_personalisation;
	rc = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
	                           (const unsigned char *)pers, strlen(pers));
	if (rc) {
		say(err, err_cap, "seeding the RNG for", "TLS", rc);
		goto fail;
	}
	rc = mbedtls_x509_crt_parse_file(&c->ca, p->ca_path);
	if (rc) {
		say(err, err_cap, "reading CA certificate", p->ca_path, rc);
		goto fail;
	}
	rc = mbedtls_x509_crt_parse_file(&c->own, p->cert_path);
	if (rc) {
		say(err, err_cap, "reading certificate", p->cert_path, rc);
		goto fail;
	}
	rc = mbedtls_pk_parse_keyfile(&c->key, p->key_path, NULL);
	if (rc) {
		say(err, err_cap, "reading private key", p->key_path, rc);
		goto fail;
	}
	if (p->crl_path) {
		rc = mbedtls_x509_crl_parse_file(&c->crl, p->crl_path);
		if (rc) {
			say(err, err_cap, "reading CRL", p->crl_path, rc);
			goto fail;
		}
		c->have_crl = 1;
	}
	rc = mbedtls_ssl_config_defaults(&c->conf,
	                                 p->role == LINK_TLS_SERVER ? MBEDTLS_SSL_IS_SERVER
	                                                            : MBEDTLS_SSL_IS_CLIENT,
	                                 MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc) {
		say(err, err_cap, "configuring", "TLS", rc);
		goto fail;
	}
	/* DESIGN.md section 3: TLS 1.2 or newer (2.28 speaks 1.2 only), mutual authentication. */
	mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	                             MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_curves(&c->conf, link_tls_curves);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, c->have_crl ? &c->crl : NULL);
	rc = mbedtls_ssl_conf_own_cert(&c->conf, &c->own, &c->key);
	if (rc) {
		say(err, err_cap, "using certificate", p->cert_path, rc);
		goto fail;
	}
	if (p->role == LINK_TLS_SERVER && p->ticket_lifetime_s) {
		/* AES-256-GCM sealed tickets; the module renews its key every lifetime and
		 * still opens the previous key's tickets */
		rc = mbedtls_ssl_ticket_setup(&c->tickets, mbedtls_ctr_drbg_random, &c->drbg,
		                              MBEDTLS_CIPHER_AES_256_GCM, p->ticket_lifetime_s);
		if (rc) {
			say(err, err_cap, "setting up session tickets for", "TLS", rc);
			goto fail;
		}
		mbedtls_ssl_conf_session_tickets_cb(&c->conf, mbedtls_ssl_ticket_write,
		                                    mbedtls_ssl_ticket_parse, &c->tickets);
	}
	if (p->role == LINK_TLS_CLIENT)
		mbedtls_ssl_conf_session_tickets(&c->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	if (p->server_name)
		snprintf(c->server_name, sizeof(c->server_name), "%s", p->server_name);
	c->role = p->role;
	*out = c;
	return 0;
fail:
	link_tls_ctx_free(c);
	return rc;
}

void link_tls_ctx_free(struct link_tls_ctx *c)
{
	if (!c)
		return;
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_ssl_ticket_free(&c->tickets);
	mbedtls_pk_free(&c->key);
	mbedtls_x509_crl_free(&c->crl);
	mbedtls_x509_crt_free(&c->own);
	mbedtls_x509_crt_free(&c->ca);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
	free(c);
}

mbedtls_x509_crt *link_tls_ctx_anchors(struct link_tls_ctx *c)
{
	return &c->ca;
}

int link_tls_ctx_random(struct link_tls_ctx *c, void *buf, size_t len)
{
	return mbedtls_ctr_drbg_random(&c->drbg, buf, len);
}

int link_tls_cert_has_purpose(const mbedtls_x509_crt *crt, enum link_tls_role role)
{
	const char *oid =
	        role == LINK_TLS_SERVER ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH;
	size_t len = role == LINK_TLS_SERVER ? MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)
	                                     : MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH);
	if (!(crt->ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE))
		return 0;
	return mbedtls_x509_crt_check_extended_key_usage(crt, oid, len) == 0;
}

/* Every session's verify callback: the peer's own certificate (depth 0) must be issued
 * for the peer's role, then the caller's check (enrolment, on the server) runs. */
static int session_verify(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct link_tls_session *s = arg;
	if (depth == 0) {
		s->peer_checked = 1;
		if (!link_tls_cert_has_purpose(crt, s->peer_role))
			*flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
	}
	return s->verify ? s->verify(s->verify_arg, crt, depth, flags) : 0;
}

int link_tls_session_init(struct link_tls_session *s, struct link_tls_ctx *ctx, int fd,
                          link_tls_verify_fn verify, void *verify_arg)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->fd = fd;
	s->peer_role = ctx->role == LINK_TLS_SERVER ? LINK_TLS_CLIENT : LINK_TLS_SERVER;
	s->verify = verify;
	s->verify_arg = verify_arg;
	mbedtls_ssl_init(&s->ssl);
	rc = mbedtls_ssl_setup(&s->ssl, &ctx->conf);
	if (rc)
		return rc;
	if (ctx->server_name[0]) {
		rc = mbedtls_ssl_set_hostname(&s->ssl, ctx->server_name);
		if (rc)
			return rc;
	}
	mbedtls_ssl_set_verify(&s->ssl, session_verify, s);
	mbedtls_ssl_set_bio(&s->ssl, &s->fd, bio_send, bio_recv, NULL);
	return 0;
}

void link_tls_session_free(struct link_tls_session *s)
{
	mbedtls_ssl_free(&s->ssl);
	s->ready = 0;
}

/*
 * A resumed session: the peer proved it holds the session a full handshake verified, but
 * what can have changed since is checked again — the certificate's dates (against this
 * host's clock; the caller's callback may judge them by its own, as in a full handshake),
 * the CRL loaded, the certificate's purpose — then the caller's own check (a device
 * revoked since, on the server). The chain is not verified again: the anchors of this
 * configuration are those that verified it, and the ticket's seal is this process's.
 */
static int session_check_resumed(struct link_tls_session *s)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&s->ssl);
	uint32_t flags = 0;

	s->resumed = 1;
	if (!peer) {
		/* mbedTLS built without MBEDTLS_SSL_KEEP_PEER_CERTIFICATE: nothing to check */
		s->resumed_flags = MBEDTLS_X509_BADCERT_MISSING;
		return MBEDTLS_ERR_X509_CERT_VERIFY_FAILED;
	}
	if (mbedtls_x509_time_is_past(&peer->valid_to))
		flags |= MBEDTLS_X509_BADCERT_EXPIRED;
	if (mbedtls_x509_time_is_future(&peer->valid_from))
		flags |= MBEDTLS_X509_BADCERT_FUTURE;
	if (s->ctx->have_crl && mbedtls_x509_crt_is_revoked(peer, &s->ctx->crl))
		flags |= MBEDTLS_X509_BADCERT_REVOKED;
	/* the callbacks take a mutable certificate; none of them changes it */
	if (session_verify(s, (mbedtls_x509_crt *)peer, 0, &flags) != 0 && !flags)
		flags = MBEDTLS_X509_BADCERT_OTHER;
	s->resumed_flags = flags;
	return flags ? MBEDTLS_ERR_X509_CERT_VERIFY_FAILED : 0;
}

int link_tls_session_handshake(struct link_tls_session *s)
{
	int rc = mbedtls_ssl_handshake(&s->ssl);
	if (rc == 0 && !s->peer_checked)
		rc = session_check_resumed(s);
	if (rc == 0)
		s->ready = 1;
	return rc;
}

uint32_t link_tls_session_verify_result(const struct link_tls_session *s)
{
	return s->resumed ? s->resumed_flags : mbedtls_ssl_get_verify_result(&s->ssl);
}

void link_tls_ticket_init(struct link_tls_ticket *t)
{
	mbedtls_ssl_session_init(&t->session);
	t->have = 0;
}

void link_tls_ticket_free(struct link_tls_ticket *t)
{
	mbedtls_ssl_session_free(&t->session);
	link_tls_ticket_init(t);
}

int link_tls_ticket_keep(struct link_tls_ticket *t, const struct link_tls_session *s)
{
	/* a resumed session keeps the ticket it came with (mbedTLS issues no new one then),
	 * which is the one already held */
	int rc = mbedtls_ssl_get_session(&s->ssl, &t->session);
	if (rc) {
		link_tls_ticket_free(t);
		return rc;
	}
	t->have = t->session.ticket != NULL && t->session.ticket_len > 0;
	if (!t->have)
		link_tls_ticket_free(t);
	return 0;
}

int link_tls_session_offer_ticket(struct link_tls_session *s, const struct link_tls_ticket *t)
{
	return t->have ? mbedtls_ssl_set_session(&s->ssl, &t->session) : 0;
}

long link_tls_session_read(struct link_tls_session *s, uint8_t *buf, size_t cap)
{
	int rc = mbedtls_ssl_read(&s->ssl, buf, cap);
	if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == MBEDTLS_ERR_SSL_CONN_EOF)
		return 0;
	if (rc == 0)
		return 0;
	return rc;
}

long link_tls_session_write(struct link_tls_session *s, const uint8_t *buf, size_t len)
{
	size_t n = s->pending_write ? s->pending_write
	                            : (len > LINK_TLS_RECORD_MAX ? LINK_TLS_RECORD_MAX : len);
	int rc;

	if (n > len)
		return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
	rc = mbedtls_ssl_write(&s->ssl, buf, n);
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
		s->pending_write = n;
		return rc;
	}
	s->pending_write = 0;
	return rc;
}

size_t link_tls_session_pending(const struct link_tls_session *s)
{
	return mbedtls_ssl_get_bytes_avail(&s->ssl);
}

void link_tls_session_close_notify(struct link_tls_session *s)
{
	if (s->ready)
		(void)mbedtls_ssl_close_notify(&s->ssl);
}

int link_tls_cert_cn(const mbedtls_x509_crt *crt, char *cn, size_t cap)
{
	const mbedtls_x509_name *n;

	for (n = &crt->subject; n; n = n->next) {
		if (!n->oid.p || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		if (n->val.len == 0 || n->val.len >= cap || memchr(n->val.p, 0, n->val.len))
			return -1;
		memcpy(cn, n->val.p, n->val.len);
		cn[n->val.len] = '\0';
		return 0;
	}
	return -1;
}

int64_t link_tls_time_unix(const mbedtls_x509_time *t)
{
	struct tm tm = {0};
	tm.tm_year = t->year - 1900;
	tm.tm_mon = t->mon - 1;
	tm.tm_mday = t->day;
	tm.tm_hour = t->hour;
	tm.tm_min = t->min;
	tm.tm_sec = t->sec;
	return (int64_t)timegm(&tm);
}

const char *link_tls_strerror(int err, char *buf, size_t cap)
{
	mbedtls_strerror(err, buf, cap);
	return buf;
}

void link_tls_verify_reason(uint32_t flags, char *buf, size_t cap)
{
	int n = mbedtls_x509_crt_verify_info(buf, cap, "", flags);
	/* verify_info ends every reason with a newline: keep the log to one line */
	for (int i = 0; n > 0 && i < n && buf[i]; i++)
		if (buf[i] == '\n')
			buf[i] = (buf[i + 1] ? ';' : '\0');
	if (n <= 0 && cap)
		snprintf(buf, cap, "certificate refused (flags 0x%x)", (unsigned)flags);
}
