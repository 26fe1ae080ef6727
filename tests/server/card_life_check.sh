#!/bin/sh
# A card's life at the desk, through citypass-admin, Debian's unmodified libnfc pn532_uart
# driver and the bench (DESIGN.md §3 "The card's life"):
#  1. a card as NXP ships it (PICC master key DES zeros) is issued and read at a gate;
#  2. after issuing, the public default keys format nothing (libfreefare's
#     mifare-desfire-format refused, the card unchanged) and a libnfc client sees a new
#     random UID at every selection;
#  3. card inspect names the pass from the card alone; card recycle is refused while the
#     pass is live, takes the card back once it is revoked, and the card is issued again;
#  4. keys rotate: a gate holding the new bundle reads cards of both versions, the desk
#     moves the card (card inspect --update-keys), retire;
#  5. the card pulled away at every exchange of pass issue and card recycle: the database
#     holds the pass only if the card was completely issued, and the card is blank or
#     completely issued, never half; each time, the next issue finishes the job;
#  6. init --random-id off keeps the UID.
# Env: ADMIN PROBE HIL (tests/server/CMakeLists.txt).
. "$(dirname "$0")/../hil/lib.sh"
: "${ADMIN:?}" "${PROBE:?}"
start_bench --reader desk --reader gate
export CITYPASS_DATA="$BENCH_DIR/data"
unset CITYPASS_NOW

adm() { timeout 60 "$ADMIN" "$@"; }
key_of() { # key_of PASS SECTOR_NAME
	adm pass show "$1" --json | sed -n "s/.*\"sector\":\"$2\"[^}]*\"list_key\":\"\\([0-9a-f]*\\)\".*/\\1/p"
}
gate_read() { # gate_read BUNDLE : a gate reads the card at the gate reader with its bundle
	LIBNFC_DEVICE=$(reader gate) timeout 60 "$PROBE" card-read "$(reader gate)" "$1" 2>&1
}
at_desk() { ctl remove gate >/dev/null; ctl place desk desfire "$1" >/dev/null; }
at_gate() { ctl remove desk >/dev/null; ctl place gate desfire "$1" >/dev/null; }
passes() { adm pass list --json | grep -o '"id":' | wc -l; }

adm init --value-sector pool >/dev/null
adm site add pool-n --sector pool >/dev/null
adm device add gp --site pool-n --server localhost:7443 --out "$BENCH_DIR/bp" >/dev/null
card="$BENCH_DIR/citizen.card"

# 1. issue a factory-fresh card
ctl place desk desfire "$card" uid=04C0C1C2C3C4C5 >/dev/null
out=$(adm pass issue --holder Zoe --right pool,entries=5 --reader "$(reader desk)" 2>&1) ||
	fail "pass issue on a factory card: $out"
expect_in "$out" "card issued in [0-9]+ reader commands" "the cost of issuing is reported"
expect_in "$out" "pass 1 issued \\(card\\)" "pass 1 issued"
grep -q '^picc settings=09 key-type=aes ' "$card" || fail "the PICC master key is not our AES key: $(grep '^picc' "$card")"
grep -q '^random-id 1$' "$card" || fail "random ID is not on"
at_gate "$card"
out=$(gate_read "$BENCH_DIR/bp") || fail "gate reading the issued card: $out"
expect_in "$out" "^list-key $(key_of 1 pool)\$" "the gate reads pass 1's identifier"
expect_in "$out" "^value 5\$" "5 entries on the card"
echo "ok - a factory-fresh card issued"

# 2. what the public keys can do to it now: nothing
before=$(sha256sum <"$card")
out=$(LIBNFC_DEVICE=$(reader gate) timeout 60 mifare-desfire-format -y 2>&1) &&
	fail "libfreefare formatted an issued card with the default key: $out"
[ "$(sha256sum <"$card")" = "$before" ] || fail "the refused format changed the card"
# a libnfc client: a new random UID at every selection, never the real one
: "${APDU_CLIENT:?}"
u1=$("$APDU_CLIENT" "$(reader gate)" 9060000000 | sed -n 's/^uid //p')
u2=$("$APDU_CLIENT" "$(reader gate)" 9060000000 | sed -n 's/^uid //p')
case "$u1$u2" in 08??????08??????) ;; *) fail "not random UIDs: '$u1' '$u2'" ;; esac
[ "$u1" != "$u2" ] || fail "the same random UID twice ($u1)"
echo "ok - the default keys format nothing; a new random UID at each selection"

# 3. inspect, recycle, issue again
at_desk "$card"
out=$(adm card inspect --reader "$(reader desk)" 2>&1) || fail "card inspect: $out"
expect_in "$out" "^card: issued by this deployment" "inspect: ours"
expect_in "$out" "^pass 1: Zoe, active" "inspect names the pass"
expect_in "$out" "^real UID: 04c0c1c2c3c4c5" "inspect learns the real UID"
expect_in "$out" "^keys: current" "keys current"
out=$(adm card inspect --reader "$(reader desk)" --json) || fail "card inspect --json: $out"
expect_in "$out" '"state":"ours".*"pass":1,"pass_state":"active".*"keys_current":true' "inspect --json"
out=$(adm card recycle --reader "$(reader desk)" 2>&1) && fail "recycled a live pass's card: $out"
expect_in "$out" "holds pass 1 \\(active\\), which must be revoked" "recycle refused while the pass is live"
adm pass revoke 1 --reason "moved away" >/dev/null 2>&1
out=$(adm card recycle --reader "$(reader desk)" 2>&1) || fail "card recycle: $out"
expect_in "$out" "card recycled" "recycled"
grep -q '^picc settings=0f key-type=des key=0\{32\} ' "$card" || fail "recycled card is not factory: $(grep '^picc' "$card")"
grep -q '^app ' "$card" && fail "the recycled card still holds an application"
out=$(adm card inspect --reader "$(reader desk)") || fail "inspect a recycled card: $out"
expect_in "$out" "^card: blank" "a recycled card is blank"
out=$(adm pass issue --holder Yan --right pool --reader "$(reader desk)" 2>&1) || fail "issue a recycled card: $out"
expect_in "$out" "pass 2 issued" "the recycled card carries pass 2"
at_gate "$card"
out=$(gate_read "$BENCH_DIR/bp") || fail "gate reading the re-issued card: $out"
expect_in "$out" "^list-key $(key_of 2 pool)\$" "pass 2 on the card"
echo "ok - inspect, recycle, issue again"

# 4. key rotation: old cards still open, the desk moves them
out=$(adm keys rotate --sector pool 2>&1) || fail "keys rotate: $out"
expect_in "$out" "version 2; version 1 still accepted" "rotated"
out=$(adm keys show) || fail "keys show"
expect_in "$out" "sector pool +version 2 \\(previous 1 still accepted\\)" "keys show"
adm device add gp2 --site pool-n --server localhost:7443 --out "$BENCH_DIR/bp2" >/dev/null
grep -q '^previous-key-version 1$' "$BENCH_DIR/bp2/card-sector.key" || fail "the new bundle lacks the previous key"
out=$(gate_read "$BENCH_DIR/bp2") || fail "new gate reading a version-1 card: $out"
expect_in "$out" "^key-version 1 previous\$" "opened with the previous version"
at_desk "$card"
out=$(adm card inspect --reader "$(reader desk)") || fail "inspect: $out"
expect_in "$out" "keys v1 \\(previous: to update\\)" "inspect offers the update"
out=$(adm card inspect --reader "$(reader desk)" --update-keys 2>&1) || fail "--update-keys: $out"
expect_in "$out" "1 sector\\(s\\) moved to the current key version" "moved"
expect_in "$out" "^keys: current" "keys current after the update"
at_gate "$card"
out=$(gate_read "$BENCH_DIR/bp2") || fail "gate reading the moved card: $out"
expect_in "$out" "^key-version 2\$" "opened with the current version"
out=$(gate_read "$BENCH_DIR/bp") && fail "a gate with only version 1 read a moved card: $out"
out=$(adm keys retire --sector pool 2>&1) || fail "keys retire: $out"
expect_in "$out" "only card keys version 2" "retired"
echo "ok - key rotation"

# 5. pulled away at every exchange: count the exchanges of a whole issue first
pull_issue() { # pull_issue CARD N : issue with the card pulled during its Nth exchange
	ctl remove desk >/dev/null
	ctl place desk desfire "$1" pull-after="$2" >/dev/null
	adm pass issue --anonymous --right pool --reader "$(reader desk)" >"$BENCH_DIR/out" 2>&1
}
img="$BENCH_DIR/pulled.card"
rm -f "$img"
ctl remove gate >/dev/null
ctl place desk desfire "$img" uid=04D0D1D2D3D4D5 >/dev/null
before=$(ctl status | sed -n 's/^reader desk .* exchanges=\([0-9]*\).*/\1/p')
pass_n=$(passes)
adm pass issue --anonymous --right pool --reader "$(reader desk)" >/dev/null 2>&1 || fail "reference issue"
total=$(( $(ctl status | sed -n 's/^reader desk .* exchanges=\([0-9]*\).*/\1/p') - before ))
[ "$total" -gt 20 ] || fail "an issue took only $total exchanges"
n=1
blank=0
issued=0
while [ "$n" -le "$total" ]; do
	rm -f "$img"
	ctl remove desk >/dev/null
	ctl place desk desfire "$img" uid=04D0D1D2D3D4D5 >/dev/null
	ctl remove desk >/dev/null
	pass_n=$(passes)
	if pull_issue "$img" "$n"; then
		# the card left during the very last exchanges after the desk heard "done": fine
		pass_n=$((pass_n + 1))
	fi
	[ "$(passes)" = "$pass_n" ] || fail "pulled at exchange $n: the database changed ($(cat "$BENCH_DIR/out"))"
	if grep -q '^picc settings=09 key-type=aes ' "$img"; then
		# ours: it must be complete
		grep -q '^random-id 1$' "$img" || fail "pulled at $n: our PICC key but no random ID"
		grep -q '^file no=1 type=std' "$img" || fail "pulled at $n: our PICC key but no pool file"
		issued=$((issued + 1))
	elif grep -q '^picc [^ ]* key-type=des key=0\{32\} ' "$img"; then
		blank=$((blank + 1))
	else
		fail "pulled at exchange $n: neither blank nor issued: $(grep '^picc' "$img")"
	fi
	# the next attempt finishes the card, and the gate reads it
	ctl remove desk >/dev/null
	ctl place desk desfire "$img" >/dev/null
	out=$(adm pass issue --anonymous --right pool --reader "$(reader desk)" 2>&1) ||
		fail "issuing again after a pull at $n: $out"
	id=$(echo "$out" | sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
	at_gate "$img"
	out=$(gate_read "$BENCH_DIR/bp2") || fail "gate after a pull at $n: $out"
	expect_in "$out" "^list-key $(key_of "$id" pool)\$" "the card carries the pass the database holds"
	ctl remove gate >/dev/null
	n=$((n + 1))
done
[ "$blank" -gt 0 ] && [ "$issued" -gt 0 ] || fail "pulls left $blank blank and $issued issued cards"
echo "ok - pass issue pulled at each of its $total exchanges: $blank blank, $issued issued, never half"

# card recycle pulled at every exchange: the card stays issued or ends blank
adm pass revoke "$id" --reason lost >/dev/null 2>&1
cp "$img" "$BENCH_DIR/issued.card"
ctl place desk desfire "$img" >/dev/null
before=$(ctl status | sed -n 's/^reader desk .* exchanges=\([0-9]*\).*/\1/p')
adm card recycle --reader "$(reader desk)" >/dev/null 2>&1 || fail "reference recycle"
total=$(( $(ctl status | sed -n 's/^reader desk .* exchanges=\([0-9]*\).*/\1/p') - before ))
n=1
while [ "$n" -le "$total" ]; do
	cp "$BENCH_DIR/issued.card" "$img"
	ctl remove desk >/dev/null
	ctl place desk desfire "$img" pull-after="$n" >/dev/null
	adm card recycle --reader "$(reader desk)" >/dev/null 2>&1 && fail "recycle pulled at $n succeeded"
	if ! grep -q '^picc settings=09 key-type=aes ' "$img" &&
		! grep -q '^picc [^ ]* key-type=des key=0\{32\} ' "$img"; then
		fail "recycle pulled at $n: $(grep '^picc' "$img")"
	fi
	ctl remove desk >/dev/null
	ctl place desk desfire "$img" >/dev/null
	out=$(adm card recycle --reader "$(reader desk)" 2>&1) || fail "recycling again after $n: $out"
	grep -q '^app ' "$img" && fail "recycle after a pull at $n left an application"
	n=$((n + 1))
done
echo "ok - card recycle pulled at each of its $total exchanges"

# 6. a deployment without random ID keeps the card's UID
export CITYPASS_DATA="$BENCH_DIR/data2"
adm init --random-id off >/dev/null
out=$(adm init --random-id maybe 2>&1) && fail "init accepted --random-id maybe"
expect_in "$out" "--random-id 'maybe': expected on or off" "a clear usage error"
rm -f "$img"
ctl remove desk >/dev/null
ctl place desk desfire "$img" uid=04E0E1E2E3E4E5 >/dev/null
adm pass issue --anonymous --reader "$(reader desk)" >/dev/null 2>&1 || fail "issue without random ID"
grep -q '^random-id 0$' "$img" || fail "random ID turned on with --random-id off"
grep -q '^picc settings=09 key-type=aes ' "$img" || fail "not protected"
echo "card life check passed"
