#!/bin/sh
# libfreefare, the independent DESFire client, personalises a virtual card through one
# emulated reader (format, AES application, EV1 AES authentication, ChangeKey, enciphered
# file, value file credit/debit/commit), and the same card, tapped at another reader,
# reads back what was written, refuses a wrong key and loses an uncommitted debit.
. "$(dirname "$0")/lib.sh"
: "${FREEFARE_OPS:?}"
start_bench --reader desk --reader gate
ctl place desk desfire "$BENCH_DIR/dora.card" uid=04D0D1D2D3D4D5 picc-aes
LIBNFC_DEVICE=$(reader desk) timeout 60 "$FREEFARE_OPS" "$(reader desk)" personalise ||
	fail "personalisation through libfreefare"
ctl remove desk
ctl place gate desfire "$BENCH_DIR/dora.card"
LIBNFC_DEVICE=$(reader gate) timeout 60 "$FREEFARE_OPS" "$(reader gate)" check ||
	fail "the card read at another reader"
echo "libfreefare check passed"
