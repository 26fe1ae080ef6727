#!/bin/sh
# libnfc's own nfc-list, against an emulated reader, identifies the virtual card as a
# DESFire (ISO 14443-4, SAK 20) with the UID and ATS the bench gave it, sees no target once
# it is removed, and sees a MIFARE Classic for what it is (SAK 08, not ISO 14443-4).
. "$(dirname "$0")/lib.sh"
start_bench --reader r1

ctl place r1 desfire "$BENCH_DIR/alice.card" uid=04A1B2C3D4E5F6
out=$(LIBNFC_DEVICE=$(reader r1) timeout 30 nfc-list -v 2>&1) || fail "nfc-list failed: $out"
expect_in "$out" '1 ISO14443A passive target\(s\) found' "one type A target"
expect_in "$out" 'UID \(NFCID1\): 04 +a1 +b2 +c3 +d4 +e5 +f6' "the configured UID"
expect_in "$out" 'SAK \(SEL_RES\): 20' "SAK of a DESFire"
expect_in "$out" 'Compliant with ISO/IEC 14443-4' "ISO 14443-4"
expect_in "$out" 'ATS: 75 +77 +81 +02 +80' "the ATS of a DESFire EV2"
expect_in "$out" 'MIFARE DESFire' "libnfc's fingerprint says DESFire"

ctl remove r1
out=$(LIBNFC_DEVICE=$(reader r1) timeout 30 nfc-list -v 2>&1) || fail "nfc-list failed: $out"
expect_not_in "$out" 'ISO/IEC 14443A \(106 kbps\) target' "no target after removal"

ctl place r1 classic uid=5A6B7C8D
out=$(LIBNFC_DEVICE=$(reader r1) timeout 30 nfc-list -v 2>&1) || fail "nfc-list failed: $out"
expect_in "$out" 'UID \(NFCID1\): 5a +6b +7c +8d' "the Classic's UID"
expect_in "$out" 'SAK \(SEL_RES\): 08' "SAK of a MIFARE Classic 1K"
expect_not_in "$out" 'Compliant with ISO/IEC 14443-4' "a Classic is not ISO 14443-4"

ctl place r1 uid-only uid=04112233445566
out=$(LIBNFC_DEVICE=$(reader r1) timeout 30 nfc-list -v 2>&1) || fail "nfc-list failed: $out"
expect_in "$out" 'SAK \(SEL_RES\): 00' "SAK of a UID-only tag"
# a random-ID card: an anonymous 08.. UID, and another one at each new session
: "${APDU_CLIENT:?}"
ctl place r1 desfire "$BENCH_DIR/rid.card" uid=04A1B2C3D4E5F7 random-id
out=$(LIBNFC_DEVICE=$(reader r1) timeout 30 nfc-list -v 2>&1) || fail "nfc-list failed: $out"
expect_in "$out" 'UID \(NFCID3\): 08 ' "a random UID starts with 08"
expect_not_in "$out" 'a1 +b2 +c3 +d4 +e5 +f7' "the real UID stays hidden"
# GetVersion, ISO-wrapped: the card exchanged frames, so it draws a new UID when it leaves
first=$("$APDU_CLIENT" "$(reader r1)" 9060000000 | sed -n 's/^uid //p')
second=$("$APDU_CLIENT" "$(reader r1)" 9060000000 | sed -n 's/^uid //p')
case "$first" in 08??????) ;; *) fail "random UID was '$first'" ;; esac
[ "$first" != "$second" ] || fail "the random UID did not change between sessions ($first)"
echo "nfc-list check passed"
