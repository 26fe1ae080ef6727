/*
 * freefare_ops — the independent DESFire client of the bench tests, written against
 * libfreefare 0.4.0 (it shares nothing with the virtual card, nor with cardlib).
 *
 *   freefare_ops CONNSTRING personalise   format the card, create an AES application,
 *                                         change a key, write an enciphered file, credit
 *                                         and debit a value file
 *   freefare_ops CONNSTRING check         on a card personalised earlier (at any reader):
 *                                         read it back, refuse a wrong key, and check that
 *                                         an uncommitted debit is lost
 *
 * Exit 0 when every step did what DESFire specifies, 1 otherwise, with the failing step on
 * stderr. libfreefare waits forever on a silent card: run it under timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freefare.h>
#include <nfc/nfc.h>

#define AID        0x0C17A5
#define DATA_FILE  1
#define VALUE_FILE 2

static const uint8_t zero_key[16];
static const uint8_t key1_bytes[16] = {0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87,
                                       0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f};
static const uint8_t wrong_key[16] = {0xde, 0xad, 0xbe, 0xef};
static const char payload[] = "citypass bench: written enciphered";

static int step(int ok, const char *what, MifareTag tag)
{
	if (!ok) {
		fprintf(stderr, "freefare_ops: %s failed: %s\n", what,
		        tag ? freefare_strerror(tag) : "no tag");
		return 0;
	}
	printf("ok %s\n", what);
	return 1;
}

static int auth_aes(MifareTag tag, uint8_t key_no, const uint8_t *bytes, uint8_t version)
{
	MifareDESFireKey k = mifare_desfire_aes_key_new_with_version((uint8_t *)bytes, version);
	int rc = mifare_desfire_authenticate(tag, key_no, k);
	mifare_desfire_key_free(k);
	return rc;
}

static int personalise(MifareTag tag)
{
	MifareDESFireAID aid = mifare_desfire_aid_new(AID);
	/* libfreefare 0.4.0 deciphers into the caller's buffer whole AES blocks, CRC and
	 * padding included: room for more than the file's length (found under ASan) */
	uint8_t back[sizeof(payload) + 64];
	int32_t value = -1;
	int ok =
	        step(mifare_desfire_connect(tag) == 0, "connect", tag) &&
	        /* the bench's cards ship with an AES PICC master key of zeros (picc-aes) */
	        step(auth_aes(tag, 0, zero_key, 0) == 0, "authenticate PICC master key (AES)",
	             tag) &&
	        step(mifare_desfire_format_picc(tag) == 0, "format PICC", tag) &&
	        step(auth_aes(tag, 0, zero_key, 0) == 0, "re-authenticate after format", tag) &&
	        step(mifare_desfire_create_application_aes(tag, aid, 0x0F, 2) == 0,
	             "create AES application with 2 keys", tag) &&
	        step(mifare_desfire_select_application(tag, aid) == 0, "select application", tag) &&
	        step(auth_aes(tag, 0, zero_key, 0) == 0, "authenticate EV1 AES, key 0", tag);
	if (ok) {
		MifareDESFireKey new_key =
		        mifare_desfire_aes_key_new_with_version((uint8_t *)key1_bytes, 0x01);
		MifareDESFireKey old_key = mifare_desfire_aes_key_new((uint8_t *)zero_key);
		ok = step(mifare_desfire_change_key(tag, 1, new_key, old_key) == 0, "change key 1",
		          tag);
		mifare_desfire_key_free(new_key);
		mifare_desfire_key_free(old_key);
	}
	uint8_t version = 0xff;
	ok = ok &&
	     step(mifare_desfire_get_key_version(tag, 1, &version) == 0 && version == 0x01,
	          "key 1 has version 1", tag) &&
	     step(mifare_desfire_create_std_data_file(
	                  tag, DATA_FILE, MDCM_ENCIPHERED,
	                  MDAR(MDAR_KEY1, MDAR_KEY0, MDAR_KEY0, MDAR_KEY0), 64) == 0,
	          "create enciphered data file", tag) &&
	     step(mifare_desfire_write_data(tag, DATA_FILE, 0, sizeof(payload), payload) ==
	                  (ssize_t)sizeof(payload),
	          "write enciphered data", tag) &&
	     step(mifare_desfire_create_value_file(tag, VALUE_FILE, MDCM_ENCIPHERED,
	                                           MDAR(MDAR_KEY1, MDAR_KEY0, MDAR_KEY0, MDAR_KEY0),
	                                           0, 1000, 10, 0) == 0,
	          "create value file (10)", tag) &&
	     step(mifare_desfire_credit(tag, VALUE_FILE, 5) == 0, "credit 5", tag) &&
	     step(mifare_desfire_commit_transaction(tag) == 0, "commit", tag) &&
	     step(mifare_desfire_debit(tag, VALUE_FILE, 3) == 0, "debit 3", tag) &&
	     step(mifare_desfire_commit_transaction(tag) == 0, "commit", tag) &&
	     step(mifare_desfire_get_value(tag, VALUE_FILE, &value) == 0 && value == 12,
	          "value is 12", tag) &&
	     /* read back with the changed key */
	     step(auth_aes(tag, 1, key1_bytes, 1) == 0, "authenticate with the new key 1", tag) &&
	     step(mifare_desfire_read_data(tag, DATA_FILE, 0, sizeof(payload), back) ==
	                          (ssize_t)sizeof(payload) &&
	                  memcmp(back, payload, sizeof(payload)) == 0,
	          "read back enciphered data", tag);
	mifare_desfire_disconnect(tag);
	free(aid);
	return ok;
}

static int check(MifareTag tag)
{
	MifareDESFireAID aid = mifare_desfire_aid_new(AID);
	/* libfreefare 0.4.0 deciphers into the caller's buffer whole AES blocks, CRC and
	 * padding included: room for more than the file's length (found under ASan) */
	uint8_t back[sizeof(payload) + 64];
	int32_t value = -1;
	int ok =
	        step(mifare_desfire_connect(tag) == 0, "connect", tag) &&
	        step(mifare_desfire_select_application(tag, aid) == 0, "select application", tag) &&
	        step(auth_aes(tag, 1, wrong_key, 1) < 0, "a wrong key 1 is refused", tag) &&
	        step(auth_aes(tag, 1, key1_bytes, 1) == 0, "authenticate with key 1", tag) &&
	        step(mifare_desfire_read_data(tag, DATA_FILE, 0, sizeof(payload), back) ==
	                             (ssize_t)sizeof(payload) &&
	                     memcmp(back, payload, sizeof(payload)) == 0,
	             "the data written at the other reader", tag) &&
	        step(mifare_desfire_get_value(tag, VALUE_FILE, &value) == 0 && value == 12,
	             "value is still 12", tag) &&
	        /* key 1 may read but not write: a debit needs key 0 */
	        step(mifare_desfire_debit(tag, VALUE_FILE, 1) < 0, "key 1 may not debit", tag) &&
	        step(auth_aes(tag, 0, zero_key, 0) == 0, "authenticate with key 0", tag) &&
	        step(mifare_desfire_debit(tag, VALUE_FILE, 4) == 0, "debit 4, not committed", tag);
	mifare_desfire_disconnect(tag); /* deselect: the open transaction is aborted */
	ok = ok && step(mifare_desfire_connect(tag) == 0, "reconnect", tag) &&
	     step(mifare_desfire_select_application(tag, aid) == 0, "select application", tag) &&
	     step(auth_aes(tag, 1, key1_bytes, 1) == 0, "authenticate with key 1", tag) &&
	     step(mifare_desfire_get_value(tag, VALUE_FILE, &value) == 0 && value == 12,
	          "the uncommitted debit was lost", tag);
	mifare_desfire_disconnect(tag);
	free(aid);
	return ok;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "personalise") && strcmp(argv[2], "check"))) {
		fprintf(stderr, "usage: freefare_ops CONNSTRING personalise|check\n");
		return 2;
	}
	nfc_context *ctx = NULL;
	nfc_init(&ctx);
	nfc_device *dev = ctx ? nfc_open(ctx, argv[1]) : NULL;
	if (!dev) {
		fprintf(stderr, "freefare_ops: cannot open %s\n", argv[1]);
		if (ctx)
			nfc_exit(ctx);
		return 1;
	}
	MifareTag *tags = freefare_get_tags(dev);
	int ok = 0;
	if (!tags || !tags[0]) {
		fprintf(stderr, "freefare_ops: no tag on the reader\n");
	} else if (freefare_get_tag_type(tags[0]) != DESFIRE) {
		fprintf(stderr, "freefare_ops: the tag is not a DESFire\n");
	} else {
		ok = strcmp(argv[2], "personalise") == 0 ? personalise(tags[0]) : check(tags[0]);
	}
	if (tags)
		freefare_free_tags(tags);
	nfc_close(dev);
	nfc_exit(ctx);
	return ok ? 0 : 1;
}
