/*
 * card_image.h — the persistent state of a virtual DESFire card and its image file (private).
 *
 * This is everything a real card keeps in EEPROM: UID, configuration, the PICC master key,
 * the applications with their keys and files. Sessions, selections and open transactions
 * are volatile and live in desfire_card.c. The file format is documented in
 * docs/hil-desfire-card.md; card_image.c is its only reader and writer.
 */
#ifndef HIL_CARD_IMAGE_H
#define HIL_CARD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define HIL_DF_UID_LEN   7
#define HIL_DF_MAX_APPS  28 /* a DESFire EV1 limit, kept for the EV2 emulation */
#define HIL_DF_MAX_FILES 32 /* file numbers 0..31 per application */
#define HIL_DF_MAX_KEYS  14
/* Free memory of an 8 KiB DESFire right after FormatPICC, as GetFreeMemory reports it. */
#define HIL_DF_CAPACITY 7936u
#define HIL_DF_BLOCK    32u /* files are allocated in blocks of 32 bytes */

/* Crypto of a key set, as in the high bits of CreateApplication's second key-settings byte
 * and of ChangeKey's key number at PICC level. */
#define HIL_DF_KEY_DES    0x00 /* DES or 2K3DES, 16 bytes (K1 == K2 for single DES) */
#define HIL_DF_KEY_3K3DES 0x40 /* 3K3DES, 24 bytes */
#define HIL_DF_KEY_AES    0x80
#define HIL_DF_KEY_MAX    24 /* bytes of the longest key (3K3DES) */
#define HIL_DF_DFNAME_MAX 16 /* ISO 7816-4 DF names of applications */
#define HIL_DF_ATS_MAX    20

/* File types, as GetFileSettings reports them. */
#define HIL_DF_FILE_STD    0x00
#define HIL_DF_FILE_BACKUP 0x01
#define HIL_DF_FILE_VALUE  0x02
#define HIL_DF_FILE_LINEAR 0x03
#define HIL_DF_FILE_CYCLIC 0x04

#define HIL_DF_COMM_PLAIN 0x00
#define HIL_DF_COMM_MAC   0x01
#define HIL_DF_COMM_FULL  0x03

struct hil_df_key {
	uint8_t value[HIL_DF_KEY_MAX]; /* 16 bytes used, 24 for 3K3DES; the rest zero */
	uint8_t version;               /* AES keys; DES keys carry theirs in the parity bits */
};

struct hil_df_file {
	uint8_t present;
	uint8_t type;    /* HIL_DF_FILE_* */
	uint8_t comm;    /* HIL_DF_COMM_*, as given at creation (0x02 reads as plain) */
	uint16_t access; /* nibbles from the top: read, write, read&write, change */
	uint16_t fid;    /* ISO file identifier, when has_fid */
	uint8_t has_fid;
	/* standard and backup data files: size bytes of committed data */
	uint32_t size;
	uint8_t *data;
	/* record files: data holds nrecords records of record_size bytes, oldest first */
	uint32_t record_size, max_records, nrecords;
	/* value file */
	int32_t lower, upper, value;
	int32_t limited_value; /* what LimitedCredit may still add */
	uint8_t limited;       /* bit 0: LimitedCredit enabled */
};

struct hil_df_app {
	uint32_t aid;
	uint8_t settings; /* key settings byte */
	uint8_t nkeys;
	uint8_t key_type; /* HIL_DF_KEY_DES, _3K3DES or _AES, for every key of the application */
	uint16_t fid;     /* ISO DF identifier, when has_fid */
	uint8_t has_fid;
	uint8_t df_name[HIL_DF_DFNAME_MAX];
	uint8_t df_name_len;
	struct hil_df_key keys[HIL_DF_MAX_KEYS];
	struct hil_df_file files[HIL_DF_MAX_FILES];
};

struct hil_df_picc {
	uint8_t uid[HIL_DF_UID_LEN];
	uint8_t random_id;
	uint8_t settings; /* PICC master key settings */
	uint8_t key_type; /* HIL_DF_KEY_DES, _3K3DES or _AES */
	struct hil_df_key key;
	/* SetConfiguration: the ATS (TL first; the factory one when ats_len is 0) and the key
	 * new applications' keys start with */
	uint8_t ats[HIL_DF_ATS_MAX];
	uint8_t ats_len;
	struct hil_df_key default_key;
	size_t napps;
	struct hil_df_app apps[HIL_DF_MAX_APPS];
};

/* A card as NXP ships it (PICC key DES 00*8 or, if aes_key, AES 00*16; settings 0x0F). */
void hil_df_picc_factory(struct hil_df_picc *picc, const uint8_t uid[HIL_DF_UID_LEN], int random_id,
                         int aes_key);
/* Releases file contents; the struct may then be reused or discarded. */
void hil_df_picc_free(struct hil_df_picc *picc);
/* Removes every application (FormatPICC). */
void hil_df_picc_format(struct hil_df_picc *picc);
void hil_df_file_clear(struct hil_df_file *file);

/* Bytes taken by files, in 32-byte blocks; GetFreeMemory reports the capacity minus this. */
uint32_t hil_df_picc_used(const struct hil_df_picc *picc);
uint32_t hil_df_file_footprint(const struct hil_df_file *file);

/* 0, or HIL_DESFIRE_EIO (errno tells why; ENOENT: no image yet), HIL_DESFIRE_EIMAGE,
 * HIL_DESFIRE_EFORMAT, HIL_DESFIRE_ENOMEM. On failure *picc is left empty (freeable). */
int hil_df_image_load(const char *path, struct hil_df_picc *picc);
/* Writes a temporary file beside path, fsyncs it, renames it over path and fsyncs the
 * directory: a crash leaves either the old image or the new one. */
int hil_df_image_save(const char *path, const struct hil_df_picc *picc);

#endif /* HIL_CARD_IMAGE_H */
