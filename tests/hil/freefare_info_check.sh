#!/bin/sh
# libfreefare's mifare-desfire-info (an independent DESFire client) reads the virtual
# card's version and free memory through the emulated reader.
. "$(dirname "$0")/lib.sh"
start_bench --reader r1
ctl place r1 desfire "$BENCH_DIR/carol.card" uid=04AABBCCDDEEFF
# libfreefare waits forever on a silent card: always under timeout
out=$(LIBNFC_DEVICE=$(reader r1) timeout 60 mifare-desfire-info 2>&1) ||
	fail "mifare-desfire-info failed: $out"
expect_in "$out" 'UID: +0x04aabbccddeeff' "the card's UID"
expect_in "$out" 'Vendor ID: +0x04' "NXP's vendor id from GetVersion"
expect_in "$out" 'Free memory: +[0-9]+ bytes' "free memory from GetFreeMemory"
echo "mifare-desfire-info check passed"
