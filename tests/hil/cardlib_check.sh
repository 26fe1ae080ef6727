#!/bin/sh
# The citypass card layout through the real libnfc pn532_uart driver and the bench's
# emulated readers, checked against an independent client (freefare_citypass: libfreefare
# and its own AN10922 on mbedTLS, nothing of cardlib):
#  (a) cardlib personalises a card; libfreefare reads each sector's identifier with that
#      sector's diversified key (EV1 AES, enciphered), and cardlib's gates read and debit it;
#  (b) libfreefare personalises a random-ID card; cardlib reads it (GetCardUID under the
#      sector's UID key), and so does libfreefare;
#  (c) cardlib refuses MIFARE Classic and UID-only tags (NOT_DESFIRE), a blank DESFire
#      (APP_MISSING), a sector the pass does not carry (AUTH), another system's PICC key (CARD_FOREIGN).
# Reader-command counts are printed by cardlib_tool (a count, not a timing).
. "$(dirname "$0")/lib.sh"
: "${CARDLIB_TOOL:?}" "${FREEFARE_CITYPASS:?}"
start_bench --reader desk --reader gate

tool() { # tool READER ARGS... : cardlib_tool at that reader
	r=$1
	shift
	LIBNFC_DEVICE=$(reader "$r") timeout 60 "$CARDLIB_TOOL" "$(reader "$r")" "$@" 2>&1
}
freefare() {
	r=$1
	shift
	LIBNFC_DEVICE=$(reader "$r") timeout 60 "$FREEFARE_CITYPASS" "$(reader "$r")" "$@" 2>&1
}

# (a)
ctl place desk desfire "$BENCH_DIR/a.card" uid=04A1A2A3A4A5A6 picc-aes >/dev/null
out=$(tool desk personalise) || fail "cardlib personalisation: $out"
ctl remove desk >/dev/null
ctl place gate desfire "$BENCH_DIR/a.card" >/dev/null
for slot in 0 1 3; do
	out=$(freefare gate read $slot) || fail "libfreefare reading sector $slot: $out"
	expect_in "$out" "^id pass0042-sector$slot\$" "libfreefare read sector $slot"
done
out=$(tool gate read 1) || fail "cardlib reading sector 1: $out"
expect_in "$out" "^id pass0042-sector1\$" "cardlib read sector 1"
expect_in "$out" "^commands 5\$" "a plain card's tap is 5 reader commands"
echo "plain card, library gate: $(printf '%s\n' "$out" | grep commands)"
out=$(tool gate debit 0) || fail "cardlib debiting an entry: $out"
expect_in "$out" "^value 9\$" "one entry debited of 10"
out=$(tool gate read 0) || fail "cardlib reading sector 0: $out"
expect_in "$out" "^value 9\$" "the debit was committed"
ctl remove gate >/dev/null

# (b)
ctl place desk desfire "$BENCH_DIR/b.card" uid=04B1B2B3B4B5B6 picc-aes random-id >/dev/null
out=$(freefare desk personalise) || fail "libfreefare personalisation: $out"
ctl remove desk >/dev/null
ctl place gate desfire "$BENCH_DIR/b.card" >/dev/null
for slot in 0 1 3; do
	out=$(tool gate read $slot) || fail "cardlib reading sector $slot: $out"
	expect_in "$out" "^id pass0042-sector$slot\$" "cardlib read sector $slot"
	expect_in "$out" "^random-id 1\$" "the card shows a random ID"
done
expect_in "$out" "^commands 8\$" "a random-ID card's tap is 8 reader commands"
echo "random-ID card, bus gate: $(printf '%s\n' "$out" | grep commands)"
out=$(tool gate read 0) || fail "cardlib reading sector 0: $out"
expect_in "$out" "^value 10\$" "the entries libfreefare wrote"
out=$(freefare gate read 3) || fail "libfreefare reading a random-ID card: $out"
expect_in "$out" "GetCardUID" "libfreefare took the UID-key path"

# (c)
out=$(tool gate read 2) && fail "a sector the pass does not carry was read: $out"
expect_in "$out" "error=-212 " "a sector not on the card is AUTH"
ctl place gate classic >/dev/null
out=$(tool gate read 0) && fail "MIFARE Classic was read: $out"
expect_in "$out" "error=-210 " "MIFARE Classic is NOT_DESFIRE"
ctl place gate uid-only >/dev/null
out=$(tool gate read 0) && fail "a UID-only tag was read: $out"
expect_in "$out" "error=-210 " "a UID-only tag is NOT_DESFIRE"
ctl place gate desfire "$BENCH_DIR/blank.card" picc-aes >/dev/null
out=$(tool gate read 0) && fail "a blank card was read: $out"
expect_in "$out" "error=-211 " "a blank DESFire is APP_MISSING"
# a card as NXP ships it (DES PICC key) is issued; another system's card is refused
ctl place gate desfire "$BENCH_DIR/des.card" uid=04D0D0D0D0D0D0 >/dev/null
out=$(tool gate personalise) || fail "a factory DES card was not issued: $out"
cat >"$BENCH_DIR/foreign.card" <<'CARD'
citypass-desfire-image 2
uid 04e0e1e2e3e4e5
random-id 0
picc settings=0f key-type=des key=0123456789abcdef0123456789abcdef key-version=00
end
CARD
ctl place gate desfire "$BENCH_DIR/foreign.card" >/dev/null
out=$(tool gate personalise) && fail "another system's card was issued: $out"
expect_in "$out" "error=-221 " "a PICC key neither factory nor ours is CARD_FOREIGN"
echo "cardlib layout check passed"
