#!/bin/sh
# A holder's access and erasure requests with the real citypass-admin (issue 17, item 3;
# docs/privacy.md). A holder whose name holds quotes, a backslash, control characters,
# markup and non-ASCII letters, with a household, two passes (one replaced by the other),
# phone identifiers in two sectors and uses kept under them:
#   export  JSON that jq (an independent parser) reads back to the exact name, every pass,
#           identifier, list key and use with the date it is deleted; an HTML page where the
#           markup is text
#   erase   says what it removed and what is kept and until when; afterwards the database's
#           files (the sqlite file and its log, read as bytes) hold neither the name, nor the
#           household's, nor any identifier or list key of the holder; statistics unchanged;
#           another holder untouched
# Under tests/support/pg_run.sh (CITYPASS_TEST_PG set, issue 16) the same on a PostgreSQL
# store; what is searched after the erasure is then the database's whole content as
# pg_dump writes it (the write-ahead log is PostgreSQL's own: docs/postgresql.md).
# Env: ADMIN PROBE CITYPASS_TOKEN (tests/server/CMakeLists.txt).
set -eu
: "${ADMIN:?}" "${PROBE:?}" "${CITYPASS_TOKEN:?}"
W=$(mktemp -d "${TMPDIR:-/tmp}/citypass-holder-XXXXXX")
. "$(dirname "$0")/../support/procs.sh" # the one exit convention
READER=
cleanup() {
	exec 3>&-
	[ -z "$READER" ] || stop_procs $READER
	rm -rf "$W"
}
on_exit cleanup
export CITYPASS_DATA="$W/data"
unset CITYPASS_NOW
command -v jq >/dev/null || { echo "FAIL: jq is missing (scripts/install-deps.sh)" >&2; exit 1; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() { echo "ok - $*"; }
adm() { "$ADMIN" "$@"; }

adm init --sectors pool,waste,bus ${CITYPASS_TEST_PG:+--store "$CITYPASS_TEST_PG"} >/dev/null 2>&1 ||
	fail "init"
adm household add lefebvre-zoe >/dev/null || fail "household add"
# quotes, a backslash, a tab, a bell, an escape, markup, an apostrophe, non-ASCII
NAME=$(printf 'Zoë "Q" \\ Lefèbvre\t\007\033<b>&amp;</b> O'"'"'Brien 株式 ✓')
req1=$("$CITYPASS_TOKEN" enrol --wallet "$W/wallet" --sector 1)
req2=$("$CITYPASS_TOKEN" enrol --wallet "$W/wallet" --sector 2)
out=$(adm pass issue --holder "$NAME" --household lefebvre-zoe --right pool \
	--right waste,quota=24/year --phone-key pool="$req1" --phone-key waste="$req2" \
	--out "$W/creds" 2>&1) || fail "pass issue: $out"
p1=$(echo "$out" | sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
out=$(adm pass replace "$p1" --reason lost --phone-key pool="$req1" \
	--phone-key waste="$req2" --out "$W/creds2" 2>&1) || fail "pass replace: $out"
p2=$(echo "$out" | sed -n 's/^pass [0-9]* replaced by pass \([0-9]*\).*/\1/p')
[ -n "$p1" ] && [ -n "$p2" ] || fail "no pass numbers in: $out"
other=$(adm pass issue --holder "Someone Else" --right waste,quota=24/year 2>&1 |
	sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
key_of() { adm pass show "$1" --json | sed -n 's/.*"sector":"waste"[^}]*"list_key":"\([0-9a-f]*\)".*/\1/p'; }
k1=$(key_of "$p1") k2=$(key_of "$p2") ko=$(key_of "$other")
year=$(date +%Y)
"$PROBE" ingest "$W/data" w1 consumption 1 2 "$k1" 1 1 "$year" >/dev/null || fail "ingest 1"
"$PROBE" ingest "$W/data" w1 consumption 2 2 "$k2" 1 2 "$year" >/dev/null || fail "ingest 2"
"$PROBE" ingest "$W/data" w1 consumption 3 2 "$ko" 1 1 "$year" >/dev/null || fail "ingest 3"
qh=$(($(date +%s) / 900 * 900))
"$PROBE" ingest "$W/data" w1 stats 1 5 1 1 2 7 1 "$qh" >/dev/null || fail "ingest stats"
stats_before=$(adm stats --format csv)

# --- export
code=0
out=$(adm holder export --pass "$p2" --out "$W/exp" 2>&1) || code=$?
[ "$code" = 1 ] && echo "$out" | grep -q "cannot write .*holder-$p2.json: No such file" ||
	fail "export into a missing directory: exit $code, $out"
mkdir "$W/exp"
adm holder export --pass "$p2" --out "$W/exp" >/dev/null || fail "holder export"
J="$W/exp/holder-$p2.json"
jq -e . "$J" >/dev/null || fail "the export is not JSON (jq)"
[ "$(jq -j '.passes[0].holder' "$J")" = "$NAME" ] || fail "jq reads back another name: $(jq '.passes[0].holder' "$J")"
ok "export: JSON that jq reads back to the exact name"
[ "$(jq -r '[.passes[].id] | map(tostring) | join(",")' "$J")" = "$p1,$p2" ] ||
	fail "export: the passes are not both of the holder's: $(jq -c '[.passes[].id]' "$J")"
[ "$(jq -r '.passes[1].household' "$J")" = lefebvre-zoe ] || fail "export: household"
[ "$(jq -r '.passes[0].replaced_by' "$J")" = "$p2" ] || fail "export: replacement"
[ "$(jq -r '[.passes[].sectors[] | select(.sector == "waste") | .list_key] | join(",")' "$J")" = "$k1,$k2" ] ||
	fail "export: the waste list keys"
[ "$(jq -r '[.passes[].sectors[].uses[].count] | add' "$J")" = 3 ] || fail "export: uses"
jq -e '.passes[1].sectors[] | select(.sector == "waste") | .uses[0] |
	.reported_by_gate == "w1" and (.gate_and_time_deleted_at | test("^[0-9]{4}-")) and
	.count_deleted_on == "'"$((year + 1))"'-01-01"' "$J" >/dev/null ||
	fail "export: a use's dates: $(jq -c '.passes[1].sectors' "$J")"
jq -e '.kept_elsewhere | map(select(test("journals of the waste gates"))) | length == 1' "$J" >/dev/null ||
	fail "export: what the gates keep"
grep -q "$ko" "$J" && fail "export: another holder's list key is in it"
ok "export: both passes, household, identifiers, uses with their deletion dates, gates"
H="$W/exp/holder-$p2.html"
grep -q '<b>' "$H" && fail "the page carries the name's markup as markup"
grep -q '&lt;b&gt;&amp;amp;&lt;/b&gt;' "$H" || fail "the page lacks the escaped name"
LC_ALL=C grep -q "$(printf '[\001-\010\013\014\016-\037]')" "$H" && fail "the page carries control characters"
ok "export: a page where the name's markup and control characters are text"

# --- erase, with another program holding the database open (as citypass-server does): the
# log then outlives citypass-admin, and what the erasure overwrote must not stay in it nor in
# the database file behind it
if [ -z "${CITYPASS_TEST_PG:-}" ]; then
	mkfifo "$W/reader.in"
	sqlite3 "$W/data/citypass.db" <"$W/reader.in" >/dev/null &
	READER=$!
	exec 3>"$W/reader.in"
	echo 'select count(*) from passes;' >&3
	sleep 0.5
fi
out=$(adm holder erase --pass "$p1" 2>&1) || fail "holder erase: $out"
echo "$out" | grep -q "erased 2 pass(es) of the holder of pass $p1 and 2 use(s)" || fail "erase said: $out"
echo "$out" | grep -q "^kept: the journals of the waste gates keep this holder's uses .* until 20" ||
	fail "erase does not say what the gates keep: $out"
echo "$out" | grep -q "^kept: backups" || fail "erase does not speak of backups: $out"
ok "erase: says what it removed and what is kept, until when"
adm pass show "$p1" >/dev/null 2>&1 && fail "pass $p1 still shows"
adm pass show "$p2" >/dev/null 2>&1 && fail "pass $p2 still shows"
adm pass show "$other" >/dev/null || fail "another holder's pass went"
# the files, as bytes: the name (and a piece of it without the control characters), the
# household's name, every identifier and list key the export named
needles="$W/needles"
: >"$needles"
printf '%s' "$NAME" >"$needles.name"
printf 'Lef\303\250bvre' >"$needles.part"
printf 'lefebvre-zoe' >"$needles.hh"
for hex in $(jq -r '.passes[].sectors[] | .identifier, .list_key' "$J"); do
	echo "$hex" >>"$needles"
done
# two passes, an identifier and a list key in each of the three sectors
[ "$(wc -l <"$needles")" = 12 ] || fail "expected 12 identifiers and keys, got $(wc -l <"$needles")"
files="$W/data/citypass.db $W/data/citypass.db-wal"
if [ -n "${CITYPASS_TEST_PG:-}" ]; then
	"${PG_BIN:-/usr/lib/postgresql/15/bin}/pg_dump" -d "$CITYPASS_TEST_PG" >"$W/dump.sql" ||
		fail "pg_dump"
	# the search finds what is there: another holder's name
	grep -q "Someone Else" "$W/dump.sql" || fail "the dump lacks another holder's name"
	grep -q "$ko" "$W/dump.sql" || fail "the dump lacks another holder's list key"
	files=$W/dump.sql
fi
for f in $files; do
	[ -f "$f" ] || continue
	for n in "$needles.name" "$needles.part" "$needles.hh"; do
		LC_ALL=C grep -qaF -f "$n" "$f" && fail "$(basename "$f") still holds $(cat "$n")"
	done
	# a file's bytes as hex; the dump writes bytea as hex text already
	if [ "$f" = "$W/dump.sql" ]; then tr -d '\n' <"$f" | tr 'A-F' 'a-f' >"$W/hex"; else
		xxd -p "$f" | tr -d '\n' >"$W/hex"; fi
	while read -r hex; do
		grep -q "$hex" "$W/hex" && fail "$(basename "$f") still holds $hex"
	done <"$needles"
done
ok "erase: the database's files hold no name, household, identifier or list key of the holder"
exec 3>&- # sqlite3 reads its end of input and exits
[ -z "$READER" ] || stop_procs $READER
READER=
[ "$(adm stats --format csv)" = "$stats_before" ] || fail "statistics changed"
ok "erase: statistics unchanged"
adm holder export --pass "$other" | jq -e '.passes[0].sectors[] | select(.sector == "waste") | .uses[0].count == 1' >/dev/null ||
	fail "another holder's use went"
ok "erase: another holder keeps their pass and their use"
code=0
adm holder erase --pass "$p2" >/dev/null 2>&1 || code=$?
[ "$code" = 1 ] || fail "erasing an erased pass: exit $code"
