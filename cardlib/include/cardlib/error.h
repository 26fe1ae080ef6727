/*
 * cardlib/error.h — why cardlib refused a card, a phone or a call.
 *
 * Every function returns 0 (or a length) on success and one of these negative codes
 * otherwise: one code per cause, so a gate can show the right message and the journal the
 * right reason. cardlib_strerror() gives a sentence.
 */
#ifndef CARDLIB_ERROR_H
#define CARDLIB_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum cardlib_error {
	CARDLIB_OK = 0,

	/* the call or the machine */
	CARDLIB_ERR_ARG = -1,     /* invalid argument */
	CARDLIB_ERR_NOMEM = -2,   /* out of memory */
	CARDLIB_ERR_IO = -3,      /* the reader failed (libnfc error, device gone) */
	CARDLIB_ERR_TIMEOUT = -4, /* the card or phone did not answer in time */
	CARDLIB_ERR_NO_CARD = -5, /* nothing in the field */
	CARDLIB_ERR_CRYPTO = -6,  /* mbedTLS failed (RNG, key) */

	/* cards */
	CARDLIB_ERR_NOT_DESFIRE = -10,     /* MIFARE Classic, UID-only, unknown ATS */
	CARDLIB_ERR_APP_MISSING = -11,     /* no citypass application on the card */
	CARDLIB_ERR_AUTH = -12,            /* authentication failed: wrong or unknown key */
	CARDLIB_ERR_MAC = -13,             /* a response's MAC or CRC does not verify */
	CARDLIB_ERR_TRUNCATED = -14,       /* a response shorter than its command requires */
	CARDLIB_ERR_OVERSIZED = -15,       /* a response longer than its command allows */
	CARDLIB_ERR_VALUE_EXHAUSTED = -16, /* the value file cannot be debited further */
	CARDLIB_ERR_PERMISSION = -17,      /* the card refused: access rights (9D, or AE
	                                    * authenticated with a key they do not name) */
	CARDLIB_ERR_FILE_MISSING = -18,    /* no such file in the application (F0) */
	CARDLIB_ERR_CARD_STATUS = -19,     /* another DESFire error status */
	CARDLIB_ERR_LAYOUT = -20,          /* the card's content is not a citypass layout */
	CARDLIB_ERR_CARD_FOREIGN = -21,    /* PICC master key neither factory nor ours */
	CARDLIB_ERR_CARD_ISSUED = -22,     /* already issued by us (or not the card expected) */

	/* phones */
	CARDLIB_ERR_NOT_CITYPASS = -30,   /* an ISO 14443-4 target without the citypass AID */
	CARDLIB_ERR_CRED_FORMAT = -31,    /* the credential is malformed */
	CARDLIB_ERR_CRED_SIGNATURE = -32, /* the credential's issuer signature does not verify */
	CARDLIB_ERR_CRED_EXPIRED = -33,   /* outside the credential's validity period */
	CARDLIB_ERR_CRED_SECTOR = -34,    /* a credential for another service sector */
	CARDLIB_ERR_PROOF = -35,          /* the phone's signature over the challenge fails */
	CARDLIB_ERR_QR_FORMAT = -36,      /* not a citypass QR code, or malformed */
	CARDLIB_ERR_QR_WINDOW = -37,      /* the QR code's time is outside its 30 s window */
	CARDLIB_ERR_QR_REPLAY = -38,      /* the QR code was already used */
};

const char *cardlib_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_ERROR_H */
