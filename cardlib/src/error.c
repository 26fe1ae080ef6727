#include "cardlib/error.h"

const char *cardlib_strerror(int err)
{
	switch (err) {
	case CARDLIB_OK:
		return "success";
	case CARDLIB_ERR_ARG:
		return "invalid argument";
	case CARDLIB_ERR_NOMEM:
		return "out of memory";
	case CARDLIB_ERR_IO:
		return "reader input/output error";
	case CARDLIB_ERR_TIMEOUT:
		return "the card or phone did not answer in time";
	case CARDLIB_ERR_NO_CARD:
		return "no card in the field";
	case CARDLIB_ERR_CRYPTO:
		return "cryptographic operation failed";
	case CARDLIB_ERR_NOT_DESFIRE:
		return "not a MIFARE DESFire card";
	case CARDLIB_ERR_APP_MISSING:
		return "the card has no citypass application";
	case CARDLIB_ERR_AUTH:
		return "card authentication failed";
	case CARDLIB_ERR_MAC:
		return "the card's answer failed its integrity check";
	case CARDLIB_ERR_TRUNCATED:
		return "the card's answer is truncated";
	case CARDLIB_ERR_OVERSIZED:
		return "the card's answer is too long";
	case CARDLIB_ERR_VALUE_EXHAUSTED:
		return "no value left on the card";
	case CARDLIB_ERR_PERMISSION:
		return "the card refused the operation (access rights)";
	case CARDLIB_ERR_FILE_MISSING:
		return "the card lacks a file of the citypass layout";
	case CARDLIB_ERR_CARD_STATUS:
		return "the card answered with an error status";
	case CARDLIB_ERR_LAYOUT:
		return "the card's content is not a citypass layout";
	case CARDLIB_ERR_CARD_FOREIGN:
		return "the card's PICC master key is neither a factory default nor this "
		       "deployment's: "
		       "it belongs to another system";
	case CARDLIB_ERR_CARD_ISSUED:
		return "the card is already issued by this deployment (take it back with 'card "
		       "recycle' first)";
	case CARDLIB_ERR_NOT_CITYPASS:
		return "not a citypass phone";
	case CARDLIB_ERR_CRED_FORMAT:
		return "the phone credential is malformed";
	case CARDLIB_ERR_CRED_SIGNATURE:
		return "the phone credential is not signed by the issuer";
	case CARDLIB_ERR_CRED_EXPIRED:
		return "the phone credential is not valid at this time";
	case CARDLIB_ERR_CRED_SECTOR:
		return "the phone credential is for another service";
	case CARDLIB_ERR_PROOF:
		return "the phone's proof of possession does not verify";
	case CARDLIB_ERR_QR_FORMAT:
		return "not a citypass QR code";
	case CARDLIB_ERR_QR_WINDOW:
		return "the QR code is outside its time window";
	case CARDLIB_ERR_QR_REPLAY:
		return "the QR code was already used";
	case CARDLIB_ERR_GATE_CERT:
		return "the gate certificate is malformed, expired or not signed by the device CA";
	case CARDLIB_ERR_GATE_REFUSED:
		return "the phone did not accept this reader as a gate of its deployment";
	}
	return "unknown cardlib error";
}
