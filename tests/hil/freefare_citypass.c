/*
 * freefare_citypass — the citypass card layout (cardlib/layout.h) exercised by an
 * independent client: libfreefare 0.4.0 for DESFire, mbedTLS for the AN10922 key
 * diversification, and nothing of cardlib (neither its code nor its headers). The layout
 * constants below are transcribed from the plan documented in cardlib/layout.h, so a
 * layout that drifted from its documentation fails here.
 *
 *   freefare_citypass CONNSTRING read SLOT       EV1 AES authentication with the sector's
 *                                                diversified read key, read the identifier
 *                                                enciphered, check it; check that this key
 *                                                cannot read another sector's file
 *   freefare_citypass CONNSTRING personalise     write the bench pass (below) on a card whose
 *                                                PICC master key is AES 00*16
 *
 * The bench deployment shared with tests/hil/cardlib_tool.c: system identifier
 * "citypass-hil", application master A0..AF, sector slot s master (s+1)0..(s+1)F, slots 0
 * (entries), 1 and 3 on the card, identifier of slot s "pass0042-sector" s.
 * Exit 0 when every step did what the layout says, 1 otherwise. libfreefare waits forever
 * on a silent card: run it under timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freefare.h>
#include <mbedtls/cipher.h>
#include <mbedtls/cmac.h>
#include <nfc/nfc.h>

/* cardlib/layout.h, transcribed */
#define AID             0xC17A55u
#define READ_KEY(s)     (1 + 2 * (s))
#define UID_KEY(s)      (2 + 2 * (s))
#define ID_FILE(s)      (1 + (s))
#define VALUE_FILE      0x10
#define APP_SETTINGS    0x09
#define ENTRIES_MAX     1000
#define KEY_VERSION     1
#define ID_LEN          16
#define N_SLOTS_ON_CARD 3

static const int slots_on_card[N_SLOTS_ON_CARD] = {0, 1, 3};
static const int value_slot = 0;
static const int32_t initial_entries = 10;
static const char sys_id[] = "citypass-hil";
static const uint8_t uid_key_label[7] = {0x00, 'U', 'I', 'D', 'K', 'E', 'Y'};
static uint8_t zero_key[16];

static void app_master(uint8_t k[16])
{
	for (int i = 0; i < 16; i++)
		k[i] = (uint8_t)(0xA0 + i);
}

static void sector_master(int slot, uint8_t k[16])
{
	for (int i = 0; i < 16; i++)
		k[i] = (uint8_t)(0x10 * (slot + 1) + i);
}

static void sector_id(int slot, uint8_t id[ID_LEN])
{
	memcpy(id, "pass0042-sector", 15);
	id[15] = (uint8_t)('0' + slot);
}

/*
 * AN10922 s.2.2: CMAC over 0x01 || M padded to 32 bytes, K2 when padded. For 16 < |D| < 32
 * that is exactly RFC 4493's CMAC of D (mbedTLS pads the last block and takes K2), which is
 * the only case this program needs: it refuses the others.
 */
static int an10922(const uint8_t master[16], const uint8_t *m, size_t m_len, uint8_t out[16])
{
	uint8_t d[32];
	if (m_len + 1 <= 16 || m_len + 1 >= 32)
		return -1;
	d[0] = 0x01;
	memcpy(d + 1, m, m_len);
	return mbedtls_cipher_cmac(mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_128_ECB),
	                           master, 128, d, m_len + 1, out);
}

/* M = UID-or-label (7) || AID (LSB first) || system identifier */
static int card_key(const uint8_t master[16], const uint8_t first7[7], uint8_t out[16])
{
	uint8_t m[7 + 3 + sizeof(sys_id) - 1];
	memcpy(m, first7, 7);
	m[7] = (uint8_t)AID;
	m[8] = (uint8_t)(AID >> 8);
	m[9] = (uint8_t)(AID >> 16);
	memcpy(m + 10, sys_id, sizeof(sys_id) - 1);
	return an10922(master, m, sizeof(m), out);
}

/* The published AN10922 s.2.2.1 example, so that a wrong an10922() cannot agree with a
 * wrong cardlib. */
static int an10922_self_test(void)
{
	static const uint8_t master[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	                                   0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
	static const uint8_t m[] = {0x04, 0x78, 0x2E, 0x21, 0x80, 0x1D, 0x80, 0x30, 0x42,
	                            0xF5, 0x4E, 0x58, 0x50, 0x20, 0x41, 0x62, 0x75};
	static const uint8_t want[16] = {0xA8, 0xDD, 0x63, 0xA3, 0xB8, 0x9D, 0x54, 0xB3,
	                                 0x7C, 0xA8, 0x02, 0x47, 0x3F, 0xDA, 0x91, 0x75};
	uint8_t got[16];
	return an10922(master, m, sizeof(m), got) == 0 && memcmp(got, want, 16) == 0;
}

static int step(int ok, const char *what, MifareTag tag)
{
	if (!ok) {
		fprintf(stderr, "freefare_citypass: %s failed: %s\n", what,
		        tag ? freefare_strerror(tag) : "");
		return 0;
	}
	printf("ok %s\n", what);
	return 1;
}

static int auth_aes(MifareTag tag, uint8_t key_no, const uint8_t bytes[16])
{
	MifareDESFireKey k = mifare_desfire_aes_key_new((uint8_t *)bytes);
	int rc = mifare_desfire_authenticate(tag, key_no, k);
	mifare_desfire_key_free(k);
	return rc;
}

static int change_key(MifareTag tag, uint8_t key_no, const uint8_t new_bytes[16])
{
	MifareDESFireKey nk =
	        mifare_desfire_aes_key_new_with_version((uint8_t *)new_bytes, KEY_VERSION);
	MifareDESFireKey ok = mifare_desfire_aes_key_new(zero_key);
	int rc = mifare_desfire_change_key(tag, key_no, nk, ok);
	mifare_desfire_key_free(nk);
	mifare_desfire_key_free(ok);
	return rc;
}

static int hex_uid(const char *hex, uint8_t uid[7])
{
	if (!hex || strlen(hex) != 14)
		return 0;
	for (int i = 0; i < 7; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return 0;
		uid[i] = (uint8_t)v;
	}
	return 1;
}

/* The real UID: the tag's, or GetCardUID under the sector's UID key on a random-ID card. */
static int real_uid(MifareTag tag, int slot, uint8_t uid[7])
{
	char *hex = freefare_get_tag_uid(tag);
	int ok = hex_uid(hex, uid);
	free(hex);
	if (ok)
		return step(1, "7-byte UID from anticollision", tag);
	uint8_t master[16], uid_key[16];
	char *real = NULL;
	sector_master(slot, master);
	ok = step(card_key(master, uid_key_label, uid_key) == 0, "derive UID key", NULL) &&
	     step(auth_aes(tag, UID_KEY(slot), uid_key) == 0, "authenticate with the UID key",
	          tag) &&
	     step(mifare_desfire_get_card_uid(tag, &real) == 0 && hex_uid(real, uid),
	          "GetCardUID (random-ID card)", tag);
	free(real);
	return ok;
}

static int read_sector(MifareTag tag, int slot)
{
	MifareDESFireAID aid = mifare_desfire_aid_new(AID);
	uint8_t uid[7], master[16], key[16], want[ID_LEN];
	/* libfreefare 0.4.0 deciphers whole blocks, CRC and padding included, into the buffer */
	uint8_t back[ID_LEN + 64];
	int other = slot == 1 ? 0 : 1;
	sector_master(slot, master);
	sector_id(slot, want);
	int ok =
	        step(mifare_desfire_connect(tag) == 0, "connect", tag) &&
	        step(mifare_desfire_select_application(tag, aid) == 0, "select application", tag) &&
	        real_uid(tag, slot, uid) &&
	        step(card_key(master, uid, key) == 0, "diversify read key (AN10922)", NULL) &&
	        step(auth_aes(tag, READ_KEY(slot), key) == 0,
	             "authenticate EV1 AES with the diversified read key", tag) &&
	        step(mifare_desfire_read_data_ex(tag, ID_FILE(slot), 0, ID_LEN, back,
	                                         MDCM_ENCIPHERED) == ID_LEN &&
	                     memcmp(back, want, ID_LEN) == 0,
	             "read the sector identifier enciphered", tag) &&
	        step(mifare_desfire_read_data_ex(tag, ID_FILE(other), 0, ID_LEN, back,
	                                         MDCM_ENCIPHERED) < 0,
	             "another sector's identifier is refused", tag);
	if (ok)
		printf("id %.16s\n", (const char *)back);
	mifare_desfire_disconnect(tag);
	free(aid);
	return ok;
}

static int write_application(MifareTag tag, const uint8_t uid[7])
{
	MifareDESFireAID aid = mifare_desfire_aid_new(AID);
	uint8_t master[16], amk[16], key[16], id[ID_LEN];
	const uint8_t n_keys = 1 + 2 * (3 + 1); /* highest slot on the card: 3 */
	app_master(master);
	int ok = step(card_key(master, uid, amk) == 0, "diversify application master key", NULL) &&
	         step(mifare_desfire_create_application_aes(tag, aid, APP_SETTINGS, n_keys) == 0,
	              "create the citypass application", tag) &&
	         step(mifare_desfire_select_application(tag, aid) == 0, "select it", tag) &&
	         step(auth_aes(tag, 0, zero_key) == 0, "authenticate key 0", tag);
	for (int i = 0; ok && i < N_SLOTS_ON_CARD; i++) {
		int s = slots_on_card[i];
		sector_id(s, id);
		ok = step(mifare_desfire_create_std_data_file(
		                  tag, ID_FILE(s), MDCM_ENCIPHERED,
		                  MDAR(READ_KEY(s), MDAR_KEY0, MDAR_DENY, MDAR_KEY0), ID_LEN) == 0,
		          "create identifier file", tag) &&
		     step(mifare_desfire_write_data_ex(tag, ID_FILE(s), 0, ID_LEN, id,
		                                       MDCM_ENCIPHERED) == ID_LEN,
		          "write identifier", tag);
	}
	ok = ok && step(mifare_desfire_create_value_file(
	                        tag, VALUE_FILE, MDCM_ENCIPHERED,
	                        MDAR(READ_KEY(value_slot), MDAR_DENY, MDAR_KEY0, MDAR_KEY0), 0,
	                        ENTRIES_MAX, initial_entries, 0) == 0,
	                "create entries value file", tag);
	/* unused slots get the AMK; sector slots their read and UID keys; key 0 last */
	for (uint8_t k = 1; ok && k < n_keys; k++) {
		memcpy(key, amk, 16);
		for (int i = 0; i < N_SLOTS_ON_CARD; i++) {
			int s = slots_on_card[i];
			sector_master(s, master);
			if (k == READ_KEY(s))
				ok = card_key(master, uid, key) == 0;
			else if (k == UID_KEY(s))
				ok = card_key(master, uid_key_label, key) == 0;
		}
		ok = ok && step(change_key(tag, k, key) == 0, "change key", tag);
	}
	ok = ok && step(change_key(tag, 0, amk) == 0, "change application master key", tag);
	free(aid);
	return ok;
}

static int personalise(MifareTag tag)
{
	uint8_t uid[7];
	char *hex = NULL;
	int ok = step(mifare_desfire_connect(tag) == 0, "connect", tag) &&
	         step(auth_aes(tag, 0, zero_key) == 0, "authenticate PICC master key (AES)", tag) &&
	         step(mifare_desfire_get_card_uid(tag, &hex) == 0 && hex_uid(hex, uid),
	              "GetCardUID", tag) &&
	         step(mifare_desfire_format_picc(tag) == 0, "format PICC", tag) &&
	         step(auth_aes(tag, 0, zero_key) == 0, "re-authenticate after format", tag) &&
	         write_application(tag, uid);
	free(hex);
	mifare_desfire_disconnect(tag);
	return ok;
}

int main(int argc, char **argv)
{
	int slot = -1;
	if (argc == 4 && strcmp(argv[2], "read") == 0)
		slot = atoi(argv[3]);
	if (!((argc == 3 && strcmp(argv[2], "personalise") == 0) ||
	      (argc == 4 && slot >= 0 && slot <= 5))) {
		fprintf(stderr, "usage: freefare_citypass CONNSTRING personalise|read SLOT\n");
		return 2;
	}
	if (!step(an10922_self_test(), "AN10922 s.2.2.1 example", NULL))
		return 1;
	nfc_context *ctx = NULL;
	nfc_init(&ctx);
	nfc_device *dev = ctx ? nfc_open(ctx, argv[1]) : NULL;
	if (!dev) {
		fprintf(stderr, "freefare_citypass: cannot open %s\n", argv[1]);
		if (ctx)
			nfc_exit(ctx);
		return 1;
	}
	MifareTag *tags = freefare_get_tags(dev);
	int ok = 0;
	if (!tags || !tags[0])
		fprintf(stderr, "freefare_citypass: no tag on the reader\n");
	else if (freefare_get_tag_type(tags[0]) != DESFIRE)
		fprintf(stderr, "freefare_citypass: the tag is not a DESFire\n");
	else
		ok = slot < 0 ? personalise(tags[0]) : read_sector(tags[0], slot);
	if (tags)
		freefare_free_tags(tags);
	nfc_close(dev);
	nfc_exit(ctx);
	return ok ? 0 : 1;
}
