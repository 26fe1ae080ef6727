/*
 * phone_gate — the gate side of a phone tap, for the bench tests: cardlib's reader over
 * the real libnfc driver (cardlib_nfc_open), or a QR line from the bench's scanner port.
 *
 *   phone_gate nfc CONNSTRING ISSUER_PUB_PEM GATE_CERT GATE_KEY_PEM
 *   phone_gate qr SCANNER_TTY ISSUER_PUB_PEM SECTOR COUNT
 *
 * nfc: one tap as the gate GATE_CERT names (its sector), signing the challenge with
 * GATE_KEY_PEM; prints "id HEX" or "refused: SENTENCE" (exit 1).
 * qr: reads COUNT lines from the scanner port and verifies each with one replay cache, as a
 * gate does; prints "id HEX" or "refused: SENTENCE" per line; exit 0 when all lines were read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cardlib/error.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "proto/sign.h"

static void print_id(const uint8_t id[CARDLIB_TOKEN_ID_LEN])
{
	printf("id ");
	for (size_t i = 0; i < CARDLIB_TOKEN_ID_LEN; i++)
		printf("%02x", id[i]);
	printf("\n");
	fflush(stdout);
}

static int tap(const char *conn, const struct proto_keyring *ring, const char *cert_path,
               const char *key_path)
{
	uint8_t cert[CARDLIB_GATE_CERT_MAX + 1];
	size_t cert_len = 0;
	FILE *f = fopen(cert_path, "rb");
	if (f) {
		cert_len = fread(cert, 1, sizeof(cert), f);
		fclose(f);
	}
	struct proto_key *key = NULL;
	struct cardlib_gate *gate = NULL;
	int rc = f && proto_key_load(&key, key_path) == 0
	                 ? cardlib_gate_new(&gate, cert, cert_len, key)
	                 : CARDLIB_ERR_ARG;
	proto_key_free(key);
	if (rc) {
		fprintf(stderr, "phone_gate: gate certificate %s with key %s: %s\n", cert_path,
		        key_path, cardlib_strerror(rc));
		return 2;
	}
	struct cardlib_reader *r = NULL;
	rc = cardlib_nfc_open(&r, conn);
	if (rc) {
		fprintf(stderr, "phone_gate: cannot open %s: %s\n", conn, cardlib_strerror(rc));
		cardlib_gate_free(gate);
		return 2;
	}
	struct cardlib_target_info info;
	uint8_t id[CARDLIB_TOKEN_ID_LEN];
	rc = cardlib_reader_select(r, &info);
	if (rc == 1)
		rc = cardlib_phone_read(r, gate, ring, id, NULL);
	else if (rc == 0)
		rc = CARDLIB_ERR_NO_CARD;
	if (rc == 0)
		print_id(id);
	else
		printf("refused: %s\n", cardlib_strerror(rc));
	cardlib_reader_release(r);
	cardlib_reader_free(r);
	cardlib_gate_free(gate);
	return rc == 0 ? 0 : 1;
}

static int scan(const char *tty, const struct proto_keyring *ring, uint16_t sector, int count)
{
	FILE *f = fopen(tty, "r");
	if (!f) {
		perror("phone_gate: scanner port");
		return 2;
	}
	struct cardlib_qr_replay_cache *cache = NULL;
	if (cardlib_qr_replay_cache_new(&cache, 1024) != 0) {
		fclose(f);
		return 2;
	}
	char line[1024];
	int seen = 0;
	while (seen < count && fgets(line, sizeof(line), f)) {
		uint8_t id[CARDLIB_TOKEN_ID_LEN];
		int rc = cardlib_qr_verify(line, strlen(line), ring, sector, (int64_t)time(NULL),
		                           cache, id, NULL);
		if (rc == 0)
			print_id(id);
		else
			printf("refused: %s\n", cardlib_strerror(rc));
		fflush(stdout);
		seen++;
	}
	cardlib_qr_replay_cache_free(cache);
	fclose(f);
	return seen == count ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc != 6 || (strcmp(argv[1], "nfc") && strcmp(argv[1], "qr"))) {
		fprintf(stderr, "usage: phone_gate nfc CONNSTRING ISSUER_PUB GATE_CERT GATE_KEY\n"
		                "       phone_gate qr SCANNER_TTY ISSUER_PUB SECTOR COUNT\n");
		return 2;
	}
	struct proto_key *issuer = NULL;
	struct proto_keyring *ring = NULL;
	if (proto_key_load(&issuer, argv[3]) != 0 || !(ring = proto_keyring_new()) ||
	    proto_keyring_add(ring, issuer) != 0) {
		fprintf(stderr, "phone_gate: cannot use issuer key %s\n", argv[3]);
		return 2;
	}
	int rc = !strcmp(argv[1], "nfc")
	                 ? tap(argv[2], ring, argv[4], argv[5])
	                 : scan(argv[2], ring, (uint16_t)atoi(argv[4]), atoi(argv[5]));
	proto_keyring_free(ring);
	proto_key_free(issuer);
	return rc;
}
