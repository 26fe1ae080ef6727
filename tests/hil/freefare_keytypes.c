/*
 * freefare_keytypes — libfreefare 0.4.0 (the independent DESFire client of the bench tests)
 * drives what the virtual card gained for real cards' sake: DES, 2K3DES and 3K3DES keys,
 * legacy (0A) and ISO (1A) authentication, ChangeKey of each type, backup data files,
 * linear and cyclic record files, ChangeFileSettings, GetDFNames, and the status a card
 * gives when the session's key is not the one a file names (AUTHENTICATION_ERROR, AE).
 *
 *   freefare_keytypes CONNSTRING     on a factory-fresh card (PICC master key DES zeros)
 *
 * Exit 0 when every step did what DESFire specifies, 1 otherwise, the failing step on
 * stderr. libfreefare waits forever on a silent card: run it under timeout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freefare.h>
#include <nfc/nfc.h>

#define AID_DES    0x0D0E51
#define AID_3K3DES 0x3D0E51
#define AID_ISO    0x1D0E51

static uint8_t zero[24];
static uint8_t des_key[8] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
static uint8_t tdes_key[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                               0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
static uint8_t k3_key[24] = {0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80,
                             0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x00,
                             0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};

static int step(int ok, const char *what, MifareTag tag)
{
	if (!ok) {
		fprintf(stderr, "freefare_keytypes: %s failed: %s (card status %02x)\n", what,
		        freefare_strerror(tag), mifare_desfire_last_picc_error(tag));
		return 0;
	}
	printf("ok %s\n", what);
	return 1;
}

/* Authenticate with a key object, freed afterwards. iso: 1A instead of 0A for DES keys. */
static int auth(MifareTag tag, uint8_t no, MifareDESFireKey k, int iso)
{
	int rc = iso ? mifare_desfire_authenticate_iso(tag, no, k)
	             : mifare_desfire_authenticate(tag, no, k);
	mifare_desfire_key_free(k);
	return rc;
}

static int change(MifareTag tag, uint8_t no, MifareDESFireKey new_key, MifareDESFireKey old_key)
{
	int rc = mifare_desfire_change_key(tag, no, new_key, old_key);
	mifare_desfire_key_free(new_key);
	if (old_key)
		mifare_desfire_key_free(old_key);
	return rc;
}

static int select_aid(MifareTag tag, uint32_t id)
{
	MifareDESFireAID aid = id ? mifare_desfire_aid_new(id) : NULL;
	int rc = mifare_desfire_select_application(tag, aid);
	free(aid);
	return rc;
}

/* PICC master key: DES zeros -> 3K3DES (ISO auth) -> 2K3DES -> DES zeros again. */
static int picc_key_types(MifareTag tag)
{
	return step(select_aid(tag, 0) == 0, "select PICC", tag) &&
	       step(auth(tag, 0, mifare_desfire_des_key_new(zero), 0) == 0,
	            "legacy authentication, factory DES key", tag) &&
	       step(mifare_desfire_format_picc(tag) == 0, "format", tag) &&
	       step(auth(tag, 0, mifare_desfire_des_key_new(zero), 1) == 0,
	            "ISO authentication, factory DES key", tag) &&
	       step(change(tag, 0, mifare_desfire_3k3des_key_new_with_version(k3_key), NULL) == 0,
	            "PICC master key to 3K3DES", tag) &&
	       step(auth(tag, 0, mifare_desfire_3k3des_key_new(k3_key), 0) == 0,
	            "ISO authentication, 3K3DES PICC key", tag) &&
	       step(change(tag, 0, mifare_desfire_3des_key_new_with_version(tdes_key), NULL) == 0,
	            "PICC master key to 2K3DES", tag) &&
	       step(auth(tag, 0, mifare_desfire_3des_key_new(tdes_key), 0) == 0,
	            "legacy authentication, 2K3DES PICC key", tag) &&
	       step(change(tag, 0, mifare_desfire_des_key_new_with_version(zero), NULL) == 0,
	            "PICC master key back to DES zeros", tag) &&
	       step(auth(tag, 0, mifare_desfire_des_key_new(zero), 0) == 0,
	            "legacy authentication, DES zeros again", tag);
}

/* A DES application: legacy sessions, MACed (4-byte MAC) and enciphered files, a key of
 * another type refused, ISO authentication with a DES key (CMAC over 8-byte blocks). */
static int des_application(MifareTag tag)
{
	MifareDESFireAID aid = mifare_desfire_aid_new(AID_DES);
	static const char text[] = "legacy MAC!"; /* 12 bytes: see freefare_keytypes_check.sh */
	uint8_t back[64];
	int ok = step(mifare_desfire_create_application(tag, aid, 0x0F, 2) == 0,
	              "create DES application, 2 keys", tag) &&
	         step(select_aid(tag, AID_DES) == 0, "select DES application", tag) &&
	         step(auth(tag, 0, mifare_desfire_des_key_new(zero), 0) == 0,
	              "legacy authentication, key 0", tag) &&
	         step(change(tag, 1, mifare_desfire_des_key_new_with_version(des_key),
	                     mifare_desfire_des_key_new(zero)) == 0,
	              "ChangeKey key 1 (another key, legacy session)", tag) &&
	         step(mifare_desfire_create_std_data_file(tag, 1, MDCM_MACED, MDAR(1, 1, 1, 0),
	                                                  32) == 0,
	              "create MACed file", tag) &&
	         step(mifare_desfire_create_std_data_file(tag, 2, MDCM_ENCIPHERED, MDAR(1, 1, 1, 0),
	                                                  32) == 0,
	              "create enciphered file", tag) &&
	         step(auth(tag, 1, mifare_desfire_des_key_new(des_key), 0) == 0,
	              "legacy authentication, key 1", tag) &&
	         step(mifare_desfire_write_data(tag, 1, 0, sizeof(text), text) ==
	                      (ssize_t)sizeof(text),
	              "write MACed data (legacy MAC)", tag) &&
	         step(mifare_desfire_read_data(tag, 1, 0, sizeof(text), back) ==
	                              (ssize_t)sizeof(text) &&
	                      memcmp(back, text, sizeof(text)) == 0,
	              "read MACed data back", tag) &&
	         step(mifare_desfire_write_data(tag, 2, 0, sizeof(text), text) ==
	                      (ssize_t)sizeof(text),
	              "write enciphered data (legacy)", tag) &&
	         step(auth(tag, 1, mifare_desfire_des_key_new(des_key), 1) == 0,
	              "ISO authentication with a DES key", tag) &&
	         step(mifare_desfire_read_data(tag, 2, 0, sizeof(text), back) ==
	                              (ssize_t)sizeof(text) &&
	                      memcmp(back, text, sizeof(text)) == 0,
	              "read enciphered data back (ISO, CRC32, 8-byte blocks)", tag) &&
	         step(mifare_desfire_read_data(tag, 1, 0, sizeof(text), back) ==
	                      (ssize_t)sizeof(text),
	              "read MACed data (ISO, DES CMAC)", tag) &&
	         step(auth(tag, 0, mifare_desfire_aes_key_new(zero), 0) < 0 &&
	                      mifare_desfire_last_picc_error(tag) == AUTHENTICATION_ERROR,
	              "an AES key refused by a DES application (AE)", tag);
	free(aid);
	return ok;
}

/* A 3K3DES application: ISO sessions with 16-byte randoms, ChangeKey of a 24-byte key,
 * backup and record files, ChangeFileSettings, and the AE of a key the file does not name. */
static int k3_application(MifareTag tag)
{
	MifareDESFireAID aid = mifare_desfire_aid_new(AID_3K3DES);
	static const char v1[] = "first", v2[] = "second";
	uint8_t back[128];
	struct mifare_desfire_file_settings fs;
	int ok =
	        step(select_aid(tag, 0) == 0, "select PICC", tag) &&
	        step(auth(tag, 0, mifare_desfire_des_key_new(zero), 0) == 0, "PICC key", tag) &&
	        step(mifare_desfire_create_application_3k3des(tag, aid, 0x0F, 3) == 0,
	             "create 3K3DES application, 3 keys", tag) &&
	        step(select_aid(tag, AID_3K3DES) == 0, "select 3K3DES application", tag) &&
	        step(auth(tag, 0, mifare_desfire_3k3des_key_new(zero), 0) == 0,
	             "ISO authentication, 3K3DES key 0", tag) &&
	        step(change(tag, 1, mifare_desfire_3k3des_key_new_with_version(k3_key),
	                    mifare_desfire_3k3des_key_new(zero)) == 0,
	             "ChangeKey 3K3DES key 1", tag) &&
	        step(mifare_desfire_create_backup_data_file(tag, 1, MDCM_ENCIPHERED,
	                                                    MDAR(1, 1, 1, 1), 16) == 0,
	             "create backup data file", tag) &&
	        step(mifare_desfire_create_linear_record_file(tag, 2, MDCM_MACED, MDAR(1, 1, 1, 0),
	                                                      8, 2) == 0,
	             "create linear record file (2 records)", tag) &&
	        step(mifare_desfire_create_cyclic_record_file(tag, 3, MDCM_PLAIN, MDAR(1, 1, 1, 0),
	                                                      4, 3) == 0,
	             "create cyclic record file (3 records, 2 kept)", tag) &&
	        step(auth(tag, 1, mifare_desfire_3k3des_key_new(k3_key), 0) == 0,
	             "ISO authentication with the new key 1", tag) &&
	        /* a backup file shows a write only after CommitTransaction */
	        step(mifare_desfire_write_data(tag, 1, 0, sizeof(v1), v1) == (ssize_t)sizeof(v1),
	             "write backup file", tag) &&
	        step(mifare_desfire_read_data(tag, 1, 0, sizeof(v1), back) == (ssize_t)sizeof(v1) &&
	                     memcmp(back, "\0\0\0\0\0", sizeof(v1)) == 0,
	             "before commit the backup file still reads zeros", tag) &&
	        step(mifare_desfire_commit_transaction(tag) == 0, "commit", tag) &&
	        step(mifare_desfire_read_data(tag, 1, 0, sizeof(v1), back) == (ssize_t)sizeof(v1) &&
	                     memcmp(back, v1, sizeof(v1)) == 0,
	             "after commit it reads the write", tag) &&
	        step(mifare_desfire_write_data(tag, 1, 0, sizeof(v2), v2) == (ssize_t)sizeof(v2),
	             "write again", tag) &&
	        step(mifare_desfire_abort_transaction(tag) == 0, "abort", tag) &&
	        step(mifare_desfire_read_data(tag, 1, 0, sizeof(v1), back) == (ssize_t)sizeof(v1) &&
	                     memcmp(back, v1, sizeof(v1)) == 0,
	             "an aborted write is lost", tag) &&
	        /* records */
	        step(mifare_desfire_write_record(tag, 2, 0, 8, "record-1") == 8, "write record 1",
	             tag) &&
	        step(mifare_desfire_commit_transaction(tag) == 0, "commit", tag) &&
	        step(mifare_desfire_write_record(tag, 2, 0, 8, "record-2") == 8, "write record 2",
	             tag) &&
	        step(mifare_desfire_commit_transaction(tag) == 0, "commit", tag) &&
	        step(mifare_desfire_write_record(tag, 2, 0, 8, "record-3") < 0 &&
	                     mifare_desfire_last_picc_error(tag) == BOUNDARY_ERROR,
	             "a full linear record file takes no third record (BE)", tag) &&
	        step(auth(tag, 1, mifare_desfire_3k3des_key_new(k3_key), 1) == 0,
	             "authenticate again after the error", tag) &&
	        step(mifare_desfire_read_records(tag, 2, 0, 0, back) == 16 &&
	                     memcmp(back, "record-1record-2", 16) == 0,
	             "read every record, oldest first", tag) &&
	        step(mifare_desfire_read_records(tag, 2, 0, 1, back) == 8 &&
	                     memcmp(back, "record-2", 8) == 0,
	             "read the newest record", tag);
	for (int i = 0; ok && i < 3; i++) {
		char rec[5];
		snprintf(rec, sizeof(rec), "cyc%d", i);
		ok = step(mifare_desfire_write_record(tag, 3, 0, 4, rec) == 4,
		          "write cyclic record", tag) &&
		     step(mifare_desfire_commit_transaction(tag) == 0, "commit", tag);
	}
	ok = ok &&
	     step(mifare_desfire_read_records(tag, 3, 0, 0, back) == 8 &&
	                  memcmp(back, "cyc1cyc2", 8) == 0,
	          "the cyclic file keeps the 2 newest records", tag) &&
	     step(mifare_desfire_clear_record_file(tag, 2) == 0, "clear record file", tag) &&
	     step(mifare_desfire_commit_transaction(tag) == 0, "commit", tag) &&
	     step(mifare_desfire_get_file_settings(tag, 2, &fs) == 0 &&
	                  fs.settings.linear_record_file.current_number_of_records == 0 &&
	                  fs.settings.linear_record_file.max_number_of_records == 2,
	          "no record left", tag) &&
	     /* ChangeFileSettings, enciphered because the change right is key 1 */
	     step(mifare_desfire_change_file_settings(tag, 1, MDCM_PLAIN, MDAR(2, 2, 1, 1)) == 0,
	          "change the backup file's settings", tag) &&
	     step(mifare_desfire_get_file_settings(tag, 1, &fs) == 0 &&
	                  fs.communication_settings == MDCM_PLAIN &&
	                  fs.access_rights == MDAR(2, 2, 1, 1),
	          "its new settings", tag) &&
	     /* key 0 is authenticated; the file names keys 2 and 1 only */
	     step(auth(tag, 0, mifare_desfire_3k3des_key_new(zero), 0) == 0, "key 0", tag) &&
	     step(mifare_desfire_read_data_ex(tag, 1, 0, 1, back, MDCM_PLAIN) < 0 &&
	                  mifare_desfire_last_picc_error(tag) == AUTHENTICATION_ERROR,
	          "a key the file does not name: AUTHENTICATION_ERROR (AE)", tag);
	free(aid);
	return ok;
}

/* GetDFNames lists the applications created with an ISO DF name. */
static int df_names(MifareTag tag)
{
	MifareDESFireAID aid = mifare_desfire_aid_new(AID_ISO);
	uint8_t name[] = {0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01};
	MifareDESFireDF *dfs = NULL;
	size_t n = 0;
	int ok = step(select_aid(tag, 0) == 0, "select PICC", tag) &&
	         step(auth(tag, 0, mifare_desfire_des_key_new(zero), 0) == 0, "PICC key", tag) &&
	         step(mifare_desfire_create_application_aes_iso(tag, aid, 0x0F, 1, 0, 0xE110, name,
	                                                        sizeof(name)) == 0,
	              "create an application with ISO DF name", tag) &&
	         step(mifare_desfire_get_df_names(tag, &dfs, &n) == 0 && n == 1 &&
	                      dfs[0].aid == AID_ISO && dfs[0].fid == 0xE110 &&
	                      dfs[0].df_name_len == sizeof(name) &&
	                      memcmp(dfs[0].df_name, name, sizeof(name)) == 0,
	              "GetDFNames", tag);
	free(dfs);
	free(aid);
	return ok;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: freefare_keytypes CONNSTRING\n");
		return 2;
	}
	nfc_context *ctx = NULL;
	nfc_init(&ctx);
	nfc_device *dev = ctx ? nfc_open(ctx, argv[1]) : NULL;
	if (!dev) {
		fprintf(stderr, "freefare_keytypes: cannot open %s\n", argv[1]);
		if (ctx)
			nfc_exit(ctx);
		return 1;
	}
	MifareTag *tags = freefare_get_tags(dev);
	int ok = 0;
	if (!tags || !tags[0] || freefare_get_tag_type(tags[0]) != DESFIRE) {
		fprintf(stderr, "freefare_keytypes: no DESFire on the reader\n");
	} else {
		MifareTag tag = tags[0];
		ok = step(mifare_desfire_connect(tag) == 0, "connect", tag) &&
		     picc_key_types(tag) && des_application(tag) && k3_application(tag) &&
		     df_names(tag);
		mifare_desfire_disconnect(tag);
	}
	if (tags)
		freefare_free_tags(tags);
	nfc_close(dev);
	nfc_exit(ctx);
	return ok ? 0 : 1;
}
