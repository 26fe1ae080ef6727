#!/bin/sh
# libfreefare 0.4.0 drives the virtual card's DES, 2K3DES and 3K3DES keys, legacy and ISO
# authentication, backup and record files, ChangeFileSettings and GetDFNames
# (freefare_keytypes.c), on a factory-fresh card through the unmodified libnfc driver.
# Lengths of MACed data in legacy sessions avoid 7 and 0 modulo 8: libfreefare 0.4.0 checks
# a legacy MAC over the data padded as if a CRC followed it, one block too many there.
. "$(dirname "$0")/lib.sh"
: "${FREEFARE_KEYTYPES:?}"
start_bench --reader r1
ctl place r1 desfire "$BENCH_DIR/k.card" uid=04E1E2E3E4E5E6 >/dev/null
out=$(LIBNFC_DEVICE=$(reader r1) timeout 60 "$FREEFARE_KEYTYPES" "$(reader r1)" 2>&1) ||
	fail "freefare_keytypes: $out"
grep -q '^app aid=3d0e51 settings=0f keys=3 key-type=3k3des$' "$BENCH_DIR/k.card" ||
	fail "the 3K3DES application is not on the card"
echo "libfreefare key types check passed"
