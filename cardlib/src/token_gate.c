/*
 * Gate certificates and a gate's signature over its challenge (issue 17, DESIGN.md s.5: a
 * phone reveals a sector identifier only to a reader that proved it is a gate of this
 * deployment). The byte formats are docs/phone-tokens.md s.3; the phone's checks are in
 * token.c beside the rest of the NFC exchange.
 *
 * Why a compact certificate and not the gate's X.509 one: the gate's device.crt is about
 * 500 bytes of DER and would need two more chained APDUs per tap (about 45 ms more wire
 * time at 115 200 baud), and every phone would parse X.509. The compact certificate is
 * the same statement by the same CA key over the same device key, in at most 141 bytes, so
 * the whole challenge still fits one short APDU.
 */
#include <stdlib.h>
#include <string.h>

#include "cardlib/error.h"
#include "cardlib/token.h"
#include "proto/error.h"
#include "proto/sign.h"
#include "token_internal.h"

void cardlib_gate_id(const char *device_id, uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN])
{
	uint8_t h[32];
	token_sha256((const uint8_t *)device_id, strlen(device_id), h);
	memcpy(gate_id, h, CARDLIB_TOKEN_GATE_ID_LEN);
}

/* --- the certificate ----------------------------------------------------------------------- */

static int gcert_fields_valid(const struct cardlib_gate_cert *c)
{
	return c->version == CARDLIB_GATE_CERT_VERSION &&
	       (c->gate_key[0] == 0x02 || c->gate_key[0] == 0x03) && c->valid_from >= 0 &&
	       c->valid_until > c->valid_from;
}

static void gcert_write_signed(const struct cardlib_gate_cert *c, uint8_t out[GCERT_SIGNED_LEN])
{
	out[0] = c->version;
	token_put_be16(out + GCERT_OFF_SECTOR, c->sector);
	memcpy(out + GCERT_OFF_GATE_ID, c->gate_id, CARDLIB_TOKEN_GATE_ID_LEN);
	memcpy(out + GCERT_OFF_KEY, c->gate_key, CARDLIB_GATE_POINT_LEN);
	token_put_be64(out + GCERT_OFF_FROM, c->valid_from);
	token_put_be64(out + GCERT_OFF_UNTIL, c->valid_until);
	memcpy(out + GCERT_OFF_CA_ID, c->ca_key_id, CARDLIB_TOKEN_KEY_ID_LEN);
}

static void gcert_signed_hash(const uint8_t *signed_part, uint8_t h[32])
{
	const struct token_part p = {signed_part, GCERT_SIGNED_LEN};
	token_domain_hash(TOKEN_DOMAIN_GATE_CERT, &p, 1, h);
}

int cardlib_gate_cert_encode(const struct cardlib_gate_cert *c, uint8_t *out, size_t cap)
{
	if (!c || !out || !gcert_fields_valid(c) || c->signature_len > CARDLIB_TOKEN_SIG_MAX)
		return CARDLIB_ERR_ARG;
	const size_t total = GCERT_SIGNED_LEN + 1 + c->signature_len;
	if (cap < total)
		return CARDLIB_ERR_ARG;
	gcert_write_signed(c, out);
	out[GCERT_SIGNED_LEN] = (uint8_t)c->signature_len;
	memcpy(out + GCERT_SIGNED_LEN + 1, c->signature, c->signature_len);
	return (int)total;
}

int cardlib_gate_cert_decode(struct cardlib_gate_cert *c, const uint8_t *buf, size_t len)
{
	if (!c || (!buf && len))
		return CARDLIB_ERR_ARG;
	memset(c, 0, sizeof(*c));
	if (len < GCERT_SIGNED_LEN + 1 || len > CARDLIB_GATE_CERT_MAX)
		return CARDLIB_ERR_GATE_CERT;
	const size_t S = buf[GCERT_SIGNED_LEN];
	if (len != GCERT_SIGNED_LEN + 1 + S ||
	    !proto_sig_is_canonical(buf + GCERT_SIGNED_LEN + 1, S))
		return CARDLIB_ERR_GATE_CERT;
	c->version = buf[0];
	c->sector = token_get_be16(buf + GCERT_OFF_SECTOR);
	memcpy(c->gate_id, buf + GCERT_OFF_GATE_ID, CARDLIB_TOKEN_GATE_ID_LEN);
	memcpy(c->gate_key, buf + GCERT_OFF_KEY, CARDLIB_GATE_POINT_LEN);
	c->valid_from = token_get_be64(buf + GCERT_OFF_FROM);
	c->valid_until = token_get_be64(buf + GCERT_OFF_UNTIL);
	memcpy(c->ca_key_id, buf + GCERT_OFF_CA_ID, CARDLIB_TOKEN_KEY_ID_LEN);
	memcpy(c->signature, buf + GCERT_SIGNED_LEN + 1, S);
	c->signature_len = S;
	if (!gcert_fields_valid(c)) {
		memset(c, 0, sizeof(*c));
		return CARDLIB_ERR_GATE_CERT;
	}
	return CARDLIB_OK;
}

int cardlib_gate_cert_issue(const struct proto_key *ca, uint16_t sector,
                            const uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN],
                            const struct proto_key *gate_key, int64_t valid_from,
                            int64_t valid_until, uint8_t *out, size_t cap)
{
	if (!ca || !gate_id || !gate_key || !out || !proto_key_is_private(ca))
		return CARDLIB_ERR_ARG;
	struct cardlib_gate_cert c = {.version = CARDLIB_GATE_CERT_VERSION,
	                              .sector = sector,
	                              .valid_from = valid_from,
	                              .valid_until = valid_until};
	memcpy(c.gate_id, gate_id, CARDLIB_TOKEN_GATE_ID_LEN);
	int rc = token_from_proto(proto_key_point(gate_key, c.gate_key));
	if (rc != 0)
		return rc;
	proto_key_id(ca, c.ca_key_id);
	if (!gcert_fields_valid(&c))
		return CARDLIB_ERR_ARG;
	uint8_t signed_part[GCERT_SIGNED_LEN], h[32];
	gcert_write_signed(&c, signed_part);
	gcert_signed_hash(signed_part, h);
	rc = token_key_sign_hash(ca, h, c.signature, &c.signature_len);
	if (rc != 0)
		return rc;
	return cardlib_gate_cert_encode(&c, out, cap);
}

int cardlib_gate_cert_verify(const uint8_t *buf, size_t len, const struct proto_keyring *cas,
                             int64_t now, struct cardlib_gate_cert *out)
{
	if (!cas)
		return CARDLIB_ERR_ARG;
	struct cardlib_gate_cert c;
	int rc = cardlib_gate_cert_decode(&c, buf, len);
	if (rc != 0)
		return rc;
	const struct proto_key *ca = proto_keyring_find(cas, c.ca_key_id);
	uint8_t h[32];
	gcert_signed_hash(buf, h);
	if (!ca || !token_key_verify_hash(ca, h, c.signature, c.signature_len))
		return CARDLIB_ERR_GATE_CERT;
	if (now < c.valid_from || now >= c.valid_until)
		return CARDLIB_ERR_GATE_CERT;
	if (out)
		*out = c;
	return CARDLIB_OK;
}

void token_gate_challenge_hash(const uint8_t nonce_p[APDU_NONCE_LEN],
                               const uint8_t nonce_r[APDU_NONCE_LEN], int64_t time,
                               const uint8_t *cert, size_t cert_len, uint16_t sector,
                               const uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN], uint8_t h[32])
{
	uint8_t t[8], sec[2], cert_hash[32];
	token_put_be64(t, time);
	token_put_be16(sec, sector);
	token_sha256(cert, cert_len, cert_hash);
	const struct token_part parts[] = {
	        {nonce_p, APDU_NONCE_LEN},
	        {nonce_r, APDU_NONCE_LEN},
	        {t, 8},
	        {sec, 2},
	        {gate_id, CARDLIB_TOKEN_GATE_ID_LEN},
	        {cert_hash, 32},
	};
	token_domain_hash(TOKEN_DOMAIN_GATE, parts, sizeof(parts) / sizeof(parts[0]), h);
}

/* --- a gate's side ------------------------------------------------------------------------- */

struct cardlib_gate {
	uint8_t cert[CARDLIB_GATE_CERT_MAX];
	size_t cert_len;
	struct cardlib_gate_cert c;
	struct proto_key *key;
};

int cardlib_gate_new(struct cardlib_gate **out, const uint8_t *cert, size_t cert_len,
                     const struct proto_key *key)
{
	if (!out || !cert || !key || !proto_key_is_private(key))
		return CARDLIB_ERR_ARG;
	*out = NULL;
	struct cardlib_gate *g = calloc(1, sizeof(*g));
	if (!g)
		return CARDLIB_ERR_NOMEM;
	int rc = cardlib_gate_cert_decode(&g->c, cert, cert_len);
	uint8_t point[CARDLIB_GATE_POINT_LEN];
	if (rc == 0)
		rc = token_from_proto(proto_key_point(key, point));
	/* the certificate must name this very key: a gate signing with another key would be
	 * refused by every phone, better said at start-up */
	if (rc == 0 && memcmp(point, g->c.gate_key, sizeof(point)) != 0)
		rc = CARDLIB_ERR_GATE_CERT;
	if (rc == 0)
		rc = token_from_proto(proto_key_copy(&g->key, key));
	if (rc != 0) {
		cardlib_gate_free(g);
		return rc;
	}
	memcpy(g->cert, cert, cert_len);
	g->cert_len = cert_len;
	*out = g;
	return CARDLIB_OK;
}

uint16_t cardlib_gate_sector(const struct cardlib_gate *g)
{
	return g->c.sector;
}

const uint8_t *cardlib_gate_gate_id(const struct cardlib_gate *g)
{
	return g->c.gate_id;
}

void cardlib_gate_validity(const struct cardlib_gate *g, int64_t *from, int64_t *until)
{
	*from = g->c.valid_from;
	*until = g->c.valid_until;
}

void cardlib_gate_free(struct cardlib_gate *g)
{
	if (!g)
		return;
	proto_key_free(g->key);
	free(g);
}

const uint8_t *token_gate_cert_bytes(const struct cardlib_gate *g, size_t *len)
{
	*len = g->cert_len;
	return g->cert;
}

int token_gate_sign(const struct cardlib_gate *g, const uint8_t h[32],
                    uint8_t sig[CARDLIB_TOKEN_SIG_MAX], size_t *sig_len)
{
	return token_key_sign_hash(g->key, h, sig, sig_len);
}
