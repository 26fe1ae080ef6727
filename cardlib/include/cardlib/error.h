/*
 * cardlib/error.h — why cardlib refused a card, a phone or a call.
 *
 * Every function returns 0 (or a length) on success and one of these negative codes
 * otherwise: one code per cause, so a gate can show the right message and the journal the
 * right reason. cardlib_strerror() gives a sentence.
 *
 * The parts' codes never overlap (issue 14), so a code names its part wherever it ends up:
 * proto -1 to -99, controller -100 to -199, cardlib -200 to -299 (CARDLIB_ERR_FIRST to
 * CARDLIB_ERR_LAST).
 */
#ifndef CARDLIB_ERROR_H
#define CARDLIB_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define CARDLIB_ERR_FIRST (-200)
#define CARDLIB_ERR_LAST  (-299)

enum cardlib_error {
	CARDLIB_OK = 0,

	/* the call or the machine */
	CARDLIB_ERR_ARG = -201,     /* invalid argument */
	CARDLIB_ERR_NOMEM = -202,   /* out of memory */
	CARDLIB_ERR_IO = -203,      /* the reader failed (libnfc error, device gone) */
	CARDLIB_ERR_TIMEOUT = -204, /* the card or phone did not answer in time */
	CARDLIB_ERR_NO_CARD = -205, /* nothing in the field */
	CARDLIB_ERR_CRYPTO = -206,  /* mbedTLS failed (RNG, key) */

	/* cards */
	CARDLIB_ERR_NOT_DESFIRE = -210,     /* MIFARE Classic, UID-only, unknown ATS */
	CARDLIB_ERR_APP_MISSING = -211,     /* no citypass application on the card */
	CARDLIB_ERR_AUTH = -212,            /* authentication failed: wrong or unknown key */
	CARDLIB_ERR_MAC = -213,             /* a response's MAC or CRC does not verify */
	CARDLIB_ERR_TRUNCATED = -214,       /* a response shorter than its command requires */
	CARDLIB_ERR_OVERSIZED = -215,       /* a response longer than its command allows */
	CARDLIB_ERR_VALUE_EXHAUSTED = -216, /* the value file cannot be debited further */
	CARDLIB_ERR_PERMISSION = -217,      /* the card refused: access rights (9D, or AE
	                                     * authenticated with a key they do not name) */
	CARDLIB_ERR_FILE_MISSING = -218,    /* no such file in the application (F0) */
	CARDLIB_ERR_CARD_STATUS = -219,     /* another DESFire error status */
	CARDLIB_ERR_LAYOUT = -220,          /* the card's content is not a citypass layout */
	CARDLIB_ERR_CARD_FOREIGN = -221,    /* PICC master key neither factory nor ours */
	CARDLIB_ERR_CARD_ISSUED = -222,     /* already issued by us (or not the card expected) */

	/* phones */
	CARDLIB_ERR_NOT_CITYPASS = -230,   /* an ISO 14443-4 target without the citypass AID */
	CARDLIB_ERR_CRED_FORMAT = -231,    /* the credential is malformed */
	CARDLIB_ERR_CRED_SIGNATURE = -232, /* the credential's issuer signature does not verify */
	CARDLIB_ERR_CRED_EXPIRED = -233,   /* outside the credential's validity period */
	CARDLIB_ERR_CRED_SECTOR = -234,    /* a credential for another service sector */
	CARDLIB_ERR_PROOF = -235,          /* the phone's signature over the challenge fails */
	CARDLIB_ERR_QR_FORMAT = -236,      /* not a citypass QR code, or malformed */
	CARDLIB_ERR_QR_WINDOW = -237,      /* the QR code's time is outside its 30 s window */
	CARDLIB_ERR_QR_REPLAY = -238,      /* the QR code was already used */
	CARDLIB_ERR_GATE_CERT = -239,      /* a gate certificate malformed, or not the CA's */
	CARDLIB_ERR_GATE_REFUSED = -240,   /* the phone did not accept this reader as a gate */
};

const char *cardlib_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* CARDLIB_ERROR_H */
