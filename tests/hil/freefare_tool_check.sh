#!/bin/sh
# freefare_tool_check.sh PROGRAM — one of the DESFire programs Debian ships in
# libfreefare-bin (libfreefare 0.4.0, an independent DESFire client) runs against a
# factory-fresh virtual card through the emulated reader and the unmodified libnfc driver,
# and does to the card what it does to a real one: each case checks the effect on the card
# (its image, or what another libnfc client then sees), not only the exit status.
. "$(dirname "$0")/lib.sh"
prog=${1:?usage: freefare_tool_check.sh PROGRAM}
start_bench --reader r1
img="$BENCH_DIR/card.img"
ctl place r1 desfire "$img" uid=04F1F2F3F4F5F6 >/dev/null
export LIBNFC_DEVICE="$(reader r1)"

# run PROGRAM ARGS... : under timeout (libfreefare waits forever on a silent card)
run() {
	out=$(timeout 60 "$@" </dev/null 2>&1) || fail "$* failed: $out"
}
# the card image holds (or not) a line matching a pattern
image_has() { grep -Eq -- "$1" "$img" || fail "$2 (pattern '$1' not in the card image)"; }
image_lacks() { if grep -Eq -- "$1" "$img"; then fail "$2 ('$1' in the card image)"; fi; }

ndef_app='^app aid=000001 settings=0f keys=1 key-type=des fid=e110 dfname=d2760000850101$'
case "$prog" in
mifare-desfire-info)
	run mifare-desfire-info
	expect_in "$out" 'UID: +0x04f1f2f3f4f5f6' "the card's UID"
	expect_in "$out" 'Master Key settings \(0x0f\)' "factory key settings"
	expect_in "$out" 'Free memory: +7936 bytes' "GetFreeMemory of an empty 8 KiB card"
	;;
mifare-desfire-format)
	run mifare-desfire-create-ndef -y
	image_has '^app aid=000001' "an application to format away"
	run mifare-desfire-format -y
	image_lacks '^app ' "FormatPICC left no application"
	;;
mifare-desfire-create-ndef)
	# NFC Forum Type 4 mapping v2: a DES application with an ISO DF name, two ISO files
	run mifare-desfire-create-ndef -y
	image_has "$ndef_app" "the NDEF application (DES key, ISO FID E110, DF name)"
	image_has '^file no=1 type=std comm=0 access=e000 fid=e103 size=15 data=000f20003b00340406e104' \
		"the capability container written"
	image_has '^file no=2 type=std comm=0 access=eee0 fid=e104 size=7680' "the NDEF file"
	;;
mifare-desfire-write-ndef | mifare-desfire-read-ndef)
	run mifare-desfire-create-ndef -y
	# an NDEF text record "Hello bench"
	printf '\321\001\017T\002enHello bench' >"$BENCH_DIR/ndef.in"
	run mifare-desfire-write-ndef -y -i "$BENCH_DIR/ndef.in"
	image_has '^file no=2 type=std .* data=0012d1010f5402656e48656c6c6f2062656e6368' \
		"NLEN and the record written in the NDEF file"
	run mifare-desfire-read-ndef -y -o "$BENCH_DIR/ndef.out"
	cmp -s "$BENCH_DIR/ndef.in" "$BENCH_DIR/ndef.out" || fail "the NDEF message read back differs"
	;;
mifare-desfire-access)
	# DES application, DES authentication at both levels, an enciphered (DES) file written
	# and read back, then FormatPICC: any refusal makes the program fail
	run mifare-desfire-access
	image_lacks '^app ' "the program formats the card at its end"
	image_has '^picc settings=0f key-type=des key=0{32} ' "the PICC master key untouched"
	;;
mifare-desfire-ev1-configure-ats)
	run mifare-desfire-ev1-configure-ats -y
	image_has '^picc .* ats=[0-9a-f]+ ' "SetConfiguration option 02 stored an ATS"
	# nfc-list prints the ATS without its TL byte, bytes separated by two spaces
	ats=$(sed -n 's/^picc .* ats=..\([0-9a-f]*\) .*/\1/p' "$img" | sed 's/../& +/g; s/ +$//')
	run nfc-list -v
	expect_in "$out" "ATS: +$ats" "nfc-list sees the ATS the card was given"
	;;
mifare-desfire-ev1-configure-default-key)
	# the program itself checks that a new application's key has the new default key and
	# version, then sets the default key back to zeros and formats
	run mifare-desfire-ev1-configure-default-key -y
	image_has '^picc .* default-key=0{48} default-key-version=00$' "the default key restored"
	image_lacks '^app ' "formatted at the end"
	;;
mifare-desfire-ev1-configure-random-uid)
	run mifare-desfire-ev1-configure-random-uid -y
	image_has '^random-id 1$' "SetConfiguration turned random ID on"
	ctl remove r1 >/dev/null
	ctl place r1 desfire "$img" >/dev/null
	run nfc-list -v
	expect_in "$out" 'UID \(NFCID3\): 08 ' "the card now shows a random UID"
	expect_not_in "$out" 'f1 +f2 +f3 +f4 +f5 +f6' "the real UID stays hidden"
	;;
*)
	fail "unknown program $prog"
	;;
esac
echo "$prog check passed"
