/*
 * cardlib/token.h — phone tokens: per-sector credentials, NFC (HCE) proof, rotating QR.
 *
 * No shared secret: for each service sector the phone holds its own ECDSA P-256 key pair,
 * and the issuer signs a credential binding that key to the pass's pseudonymous identifier
 * for that sector and a validity period. A gate holds only the issuer's public key(s).
 * Two credentials of one pass share no per-pass value, so services cannot link them
 * (DESIGN.md s.3). Byte formats, APDUs and the QR line: docs/phone-tokens.md.
 *
 * Not thread-safe: the module's random generator is shared (one thread per process, as
 * for libnfc).
 */
#ifndef CARDLIB_TOKEN_H
#define CARDLIB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "cardlib/reader.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CARDLIB_TOKEN_VERSION    0x01
#define CARDLIB_TOKEN_ID_LEN     16 /* the pass's identifier for one sector */
#define CARDLIB_TOKEN_KEY_ID_LEN 8  /* PROTO_KEY_ID_LEN: SHA-256(issuer SPKI DER)[0..8] */
#define CARDLIB_TOKEN_POINT_MAX  65 /* uncompressed P-256 point; compressed is 33 */
#define CARDLIB_TOKEN_SIG_MAX    72 /* DER ECDSA-Sig-Value, P-256 */
#define CARDLIB_TOKEN_HASH_LEN   32
/* The longest encoded credential: 2 + 2 + 16 + 65 + 8 + 8 + 8 + 1 + 72. */
#define CARDLIB_TOKEN_CRED_MAX    182
#define CARDLIB_TOKEN_GATE_ID_LEN 8

/* The citypass proprietary AID the phone registers for HCE: F0 'CITYPASS'. */
#define CARDLIB_TOKEN_AID_LEN 9
extern const uint8_t cardlib_token_aid[CARDLIB_TOKEN_AID_LEN];

/* QR: time step length and the text line's prefix. */
#define CARDLIB_QR_STEP_S 30
#define CARDLIB_QR_PREFIX "CP1."
/* The longest QR line (without NUL): prefix + base64url of the largest payload. */
#define CARDLIB_QR_LINE_MAX 360

/* --- keys ---------------------------------------------------------------------------- */

/*
 * The phone's per-sector keys and the issuer's are proto's P-256 keys (proto/sign.h:
 * proto_key_generate, proto_key_load, proto_key_point, proto_key_id ...), and the issuer
 * keys a gate trusts a proto_keyring (proto_keyring_add keeps its own copy of the public
 * half). One home for keys, keyrings and the canonical-DER check (issue 14).
 */
struct proto_key;
struct proto_keyring;

/* --- credentials ---------------------------------------------------------------------- */

struct cardlib_token_credential {
	uint8_t version;
	uint16_t sector;
	uint8_t identifier[CARDLIB_TOKEN_ID_LEN];
	uint8_t phone_key[CARDLIB_TOKEN_POINT_MAX]; /* SEC1 point, as encoded */
	size_t phone_key_len;                       /* 33 or 65 */
	int64_t valid_from;                         /* Unix seconds, inclusive */
	int64_t valid_until;                        /* Unix seconds, exclusive */
	uint8_t issuer_key_id[CARDLIB_TOKEN_KEY_ID_LEN];
	uint8_t signature[CARDLIB_TOKEN_SIG_MAX]; /* issuer's DER signature */
	size_t signature_len;
};

/*
 * Sign a credential with the issuer's private key (the server's side). phone_key is the
 * phone's public key for this sector. Writes the encoding into out; its length, or an
 * error (CARDLIB_ERR_ARG for an impossible period or a key that is not private).
 */
int cardlib_token_issue(const struct proto_key *issuer, uint16_t sector,
                        const uint8_t identifier[CARDLIB_TOKEN_ID_LEN],
                        const struct proto_key *phone_key, int64_t valid_from, int64_t valid_until,
                        uint8_t *out, size_t cap);

/* Strict decoding: exact length, known version, valid fields. CARDLIB_ERR_CRED_FORMAT. */
int cardlib_token_credential_decode(struct cardlib_token_credential *c, const uint8_t *buf,
                                    size_t len);
/* The encoding of c into out: its length. */
int cardlib_token_credential_encode(const struct cardlib_token_credential *c, uint8_t *out,
                                    size_t cap);

/*
 * Everything a gate checks on a credential, in this order: format (CRED_FORMAT), issuer
 * key known and signature valid (CRED_SIGNATURE), sector (CRED_SECTOR), valid_from <= now
 * < valid_until (CRED_EXPIRED). On success *c (if not NULL) holds the decoded credential.
 */
int cardlib_token_credential_verify(const uint8_t *buf, size_t len,
                                    const struct proto_keyring *issuers, uint16_t sector,
                                    int64_t now, struct cardlib_token_credential *c);

/* --- gates: the reader proves it is a gate of this deployment (issue 17) --------------- */

/*
 * A gate certificate: the deployment's device CA says "the holder of this key is gate G
 * of sector S, from T1 until T2" in a compact form (at most CARDLIB_GATE_CERT_MAX bytes)
 * that travels in the challenge APDU, where an X.509 certificate would not fit. Written by
 * `citypass-admin device add` for the gate's own device key (the key its sync TLS uses);
 * phones hold the CA's public key(s) since enrolment. docs/phone-tokens.md s.3.
 */
#define CARDLIB_GATE_CERT_VERSION 0x01
#define CARDLIB_GATE_POINT_LEN    33 /* compressed P-256 point */
/* 1 + 2 + 8 + 33 + 8 + 8 + 8 + 1 + 72 */
#define CARDLIB_GATE_CERT_MAX 141
/* A gate's challenge time is accepted by a phone within this many seconds of its clock. */
#define CARDLIB_GATE_TIME_SKEW_S 300

struct cardlib_gate_cert {
	uint8_t version;
	uint16_t sector;
	uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN];
	uint8_t gate_key[CARDLIB_GATE_POINT_LEN]; /* SEC1 compressed point */
	int64_t valid_from;                       /* Unix seconds, inclusive */
	int64_t valid_until;                      /* Unix seconds, exclusive */
	uint8_t ca_key_id[CARDLIB_TOKEN_KEY_ID_LEN];
	uint8_t signature[CARDLIB_TOKEN_SIG_MAX]; /* the CA's DER signature */
	size_t signature_len;
};

/* A gate's 8-byte id from its device id (the certificate CN): SHA-256(device id)[0..8]. */
void cardlib_gate_id(const char *device_id, uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN]);

/*
 * Sign a gate certificate with the device CA's private key (the server's side) for
 * gate_key's public half. Its length, or CARDLIB_ERR_ARG (impossible period, a CA key that
 * is not private, cap too small) / _CRYPTO.
 */
int cardlib_gate_cert_issue(const struct proto_key *ca, uint16_t sector,
                            const uint8_t gate_id[CARDLIB_TOKEN_GATE_ID_LEN],
                            const struct proto_key *gate_key, int64_t valid_from,
                            int64_t valid_until, uint8_t *out, size_t cap);
/* Strict decoding (exact length, known version, compressed point, canonical DER):
 * 0 or CARDLIB_ERR_GATE_CERT. */
int cardlib_gate_cert_decode(struct cardlib_gate_cert *c, const uint8_t *buf, size_t len);
/* The encoding of c into out: its length, or CARDLIB_ERR_ARG. */
int cardlib_gate_cert_encode(const struct cardlib_gate_cert *c, uint8_t *out, size_t cap);
/*
 * What a phone checks on a gate certificate: it decodes, its CA key id is in cas and the
 * CA's signature verifies, valid_from <= now < valid_until. 0, or CARDLIB_ERR_GATE_CERT.
 */
int cardlib_gate_cert_verify(const uint8_t *buf, size_t len, const struct proto_keyring *cas,
                             int64_t now, struct cardlib_gate_cert *out);

/* A gate's side of the exchange: its certificate and the private key it certifies. */
struct cardlib_gate;

/*
 * Checks that cert decodes and names key's public half (CARDLIB_ERR_GATE_CERT otherwise);
 * keeps copies of both.
 */
int cardlib_gate_new(struct cardlib_gate **out, const uint8_t *cert, size_t cert_len,
                     const struct proto_key *key);
/* The sector and the gate id the certificate names. */
uint16_t cardlib_gate_sector(const struct cardlib_gate *g);
const uint8_t *cardlib_gate_gate_id(const struct cardlib_gate *g);
/* The certificate's validity period (a gate warns before it ends). */
void cardlib_gate_validity(const struct cardlib_gate *g, int64_t *from, int64_t *until);
void cardlib_gate_free(struct cardlib_gate *g);

/* --- NFC: the phone side (HCE) -------------------------------------------------------- */

struct cardlib_phone;

int cardlib_phone_new(struct cardlib_phone **out);
/*
 * Give the phone a sector: its credential and the private key the credential binds
 * (checked: CARDLIB_ERR_CRED_FORMAT if the credential does not name this key). A second
 * credential for the same sector replaces the first. The phone keeps copies.
 */
int cardlib_phone_add_sector(struct cardlib_phone *p, const uint8_t *cred, size_t cred_len,
                             const struct proto_key *sector_key);
/*
 * Trust a device CA (its public key): the phone answers only a reader whose gate
 * certificate this CA signed (any of the CAs given: the CA rotates). The phone keeps a copy.
 * A phone without any CA answers no challenge at all.
 */
int cardlib_phone_add_gate_ca(struct cardlib_phone *p, const struct proto_key *ca);
/* The phone's clock for a gate's time and certificate (default: the wall clock). */
void cardlib_phone_set_clock(struct cardlib_phone *p, int64_t (*now)(void *ctx), void *ctx);
/*
 * Answer one command APDU as the phone: the response length (data + SW1 SW2, at most cap,
 * cap >= 2 required), or CARDLIB_ERR_ARG / _NOMEM / _CRYPTO. Malformed or unknown
 * commands get an ISO 7816-4 status word, never a crash. Before a reader has proved it is
 * a gate of a CA the phone trusts, the only data it gets is the SELECT's fresh nonce.
 */
int cardlib_phone_handle_apdu(struct cardlib_phone *p, const uint8_t *apdu, size_t len,
                              uint8_t *out, size_t cap);
/* The reader released the phone: forget the selection. */
void cardlib_phone_deselect(struct cardlib_phone *p);
void cardlib_phone_free(struct cardlib_phone *p);

/* --- NFC: the reader side ------------------------------------------------------------- */

/*
 * With a phone selected on reader (ISO 14443-4): SELECT the citypass AID (the phone
 * answers a fresh nonce), send a fresh challenge signed by gate (its certificate names the
 * sector and the gate id; the reader's wall time), and verify the answer. On success (0)
 * identifier holds the pass's identifier for the gate's sector and *cred (if not NULL) the
 * credential. CARDLIB_ERR_NOT_CITYPASS, _GATE_REFUSED (the phone did not accept this gate),
 * _TRUNCATED, _OVERSIZED, _CRED_*, _PROOF, or the reader's error.
 */
int cardlib_phone_read(struct cardlib_reader *reader, const struct cardlib_gate *gate,
                       const struct proto_keyring *issuers,
                       uint8_t identifier[CARDLIB_TOKEN_ID_LEN],
                       struct cardlib_token_credential *cred);

/* --- QR ------------------------------------------------------------------------------- */

/*
 * The QR text line for now (the phone's clock): "CP1." + base64url, NUL-terminated in
 * line (cap >= CARDLIB_QR_LINE_MAX + 1 is always enough). Its length.
 */
int cardlib_qr_encode(const uint8_t *cred, size_t cred_len, const struct proto_key *key,
                      int64_t now, char *line, size_t cap);

/*
 * Replay cache: remembers (sector, identifier, time step) of accepted QR codes until the
 * step can no longer pass the window check. Bounded: capacity entries; when every entry is
 * still live a new code is refused with CARDLIB_ERR_NOMEM (fail closed).
 */
struct cardlib_qr_replay_cache;

int cardlib_qr_replay_cache_new(struct cardlib_qr_replay_cache **out, size_t capacity);
void cardlib_qr_replay_cache_free(struct cardlib_qr_replay_cache *cache);
/* Live entries at now (expired ones are dropped). */
size_t cardlib_qr_replay_cache_count(struct cardlib_qr_replay_cache *cache, int64_t now);

/*
 * Decode and verify a scanned line at the gate's wall clock now: format (QR_FORMAT),
 * credential as cardlib_token_credential_verify, window (QR_WINDOW), the phone's signature
 * (PROOF), then the replay cache if not NULL (QR_REPLAY), which records the code only when
 * everything else passed. A trailing CR and/or LF (scanners add them) is ignored.
 */
int cardlib_qr_verify(const char *line, size_t len, const struct proto_keyring *issuers,
                      uint16_t sector, int64_t now, struct cardlib_qr_replay_cache *cache,
                      uint8_t identifier[CARDLIB_TOKEN_ID_LEN],
                      struct cardlib_token_credential *cred);

/*
 * The time step a citypass QR line carries, and the last wall second at which it can still
 * pass the window check — how long a replay cache kept elsewhere must remember it (a gate
 * keeps the codes it accepted in its journal, across restarts). Nothing is verified: call
 * it on a line cardlib_qr_verify accepted. 0, or CARDLIB_ERR_QR_FORMAT.
 */
int cardlib_qr_step(const char *line, size_t len, uint32_t *step, int64_t *expires);

/* --- testing ---------------------------------------------------------------------------- */

/*
 * Test-only: replace the module's random source (challenge nonces, key generation,
 * signing) by fn(ctx, buf, len) returning 0 on success; NULL restores the ctr_drbg.
 */
void cardlib_token_set_random_for_testing(int (*fn)(void *ctx, unsigned char *buf, size_t len),
                                          void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_TOKEN_H */
