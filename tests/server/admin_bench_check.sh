#!/bin/sh
# citypass-admin pass issue/replace --reader on the emulated bench, through the real libnfc
# pn532_uart driver: the card personalised at the desk is read at a gate with nothing but
# the gate's provisioning bundle (card-sector.key), and what it holds is the identifier
# whose list key the database and the published list carry. A card the station cannot
# issue (another system's card) leaves no pass behind. A replacement card carries new
# identifiers and the old card is listed as replaced.
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
gate_read() { # gate_read BUNDLE : the gate reads the card with its bundle only
	LIBNFC_DEVICE=$(reader gate) timeout 60 "$PROBE" card-read "$(reader gate)" "$1" 2>&1
}

adm init --value-sector pool >/dev/null
adm site add pool-n --sector pool >/dev/null
adm site add lib-c --sector library >/dev/null
adm device add gp --site pool-n --server localhost:7443 --out "$BENCH_DIR/bp" >/dev/null
adm device add gl --site lib-c --server localhost:7443 --out "$BENCH_DIR/bl" >/dev/null

# 1. issue on a card
ctl place desk desfire "$BENCH_DIR/a.card" uid=04A1A2A3A4A5A6 >/dev/null
out=$(adm pass issue --holder Bob --right pool,entries=10 --right library --reader "$(reader desk)" 2>&1) ||
	fail "pass issue --reader: $out"
expect_in "$out" "pass 1 issued \\(card\\)" "pass issued on a card"
ctl remove desk >/dev/null
ctl place gate desfire "$BENCH_DIR/a.card" >/dev/null
out=$(gate_read "$BENCH_DIR/bp") || fail "pool gate reading the card: $out"
expect_in "$out" "^list-key $(key_of 1 pool)\$" "the pool gate reads pass 1's pool identifier"
expect_in "$out" "^value 10\$" "10 entries on the card's value file"
out=$(gate_read "$BENCH_DIR/bl") || fail "library gate reading the card: $out"
expect_in "$out" "^list-key $(key_of 1 library)\$" "the library gate reads pass 1's library identifier"
expect_not_in "$out" "^value" "the library gate does not read the value file"
adm list export --sector pool --out "$BENCH_DIR/ex" >/dev/null
L=$(ls "$BENCH_DIR"/ex/sector-1-v*/v*.manifest)
out=$("$PROBE" lookup "$L" "$(key_of 1 pool)") || fail "pass 1 not in the pool list: $out"
expect_in "$out" "^status 0 .*flags 1\$" "listed active, entries on the card"
# the pool key of the bundle does not open the library file: the waste sector's gate
# (another slot) gets AUTH from the card
sed 's/^slot 0$/slot 2/; s/^sector 1$/sector 3/' "$BENCH_DIR/bp/card-sector.key" >"$BENCH_DIR/wrong.key"
mkdir "$BENCH_DIR/bw" && cp "$BENCH_DIR/wrong.key" "$BENCH_DIR/bw/card-sector.key"
out=$(gate_read "$BENCH_DIR/bw") && fail "a sector key opened another sector: $out"
expect_in "$out" "error=-212 " "another sector's file needs its own key"
ctl remove gate >/dev/null
echo "ok - pass issue --reader: card personalised and read back at the gates"

# 2. a card the station cannot issue (another system's, its PICC master key unknown):
# nothing is left behind
cat >"$BENCH_DIR/foreign.card" <<'CARD'
citypass-desfire-image 2
uid 04e0e1e2e3e4e5
random-id 0
picc settings=09 key-type=aes key=5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a key-version=03
end
CARD
ctl place desk desfire "$BENCH_DIR/foreign.card" >/dev/null
out=$(adm pass issue --holder Eve --right pool --reader "$(reader desk)" 2>&1) &&
	fail "another system's card was issued: $out"
expect_in "$out" "card not issued at reader '.*': the card's PICC master key is neither a factory default nor this deployment's" \
	"the refusal names the reader and the cause"
n=$(adm pass list --json | grep -o '"id":' | wc -l)
[ "$n" = 1 ] || fail "a refused issue left a pass ($n passes)"
ctl remove desk >/dev/null
echo "ok - a refused card leaves no pass"

# 3. replacement on a new card
old_pool=$(key_of 1 pool)
ctl place desk desfire "$BENCH_DIR/b.card" uid=04B1B2B3B4B5B6 >/dev/null
out=$(adm pass replace 1 --reason damaged --reader "$(reader desk)" 2>&1) || fail "pass replace: $out"
expect_in "$out" "pass 1 replaced by pass 2" "replaced"
ctl remove desk >/dev/null
ctl place gate desfire "$BENCH_DIR/b.card" >/dev/null
out=$(gate_read "$BENCH_DIR/bp") || fail "reading the new card: $out"
expect_in "$out" "^list-key $(key_of 2 pool)\$" "the new card carries pass 2's identifier"
[ "$(key_of 2 pool)" != "$old_pool" ] || fail "the replacement reused the identifier"
adm list export --sector pool --out "$BENCH_DIR/ex2" >/dev/null
L=$(ls "$BENCH_DIR"/ex2/sector-1-v*/v*.manifest)
out=$("$PROBE" lookup "$L" "$old_pool") || fail "old card not in the list: $out"
expect_in "$out" "^status 2 " "the old card is listed as replaced"
echo "ok - pass replace --reader"
echo "admin bench check passed"
