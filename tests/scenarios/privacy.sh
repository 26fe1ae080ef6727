#!/bin/sh
# Scenario 7 — the server's statistics and open-data export hold no identifier, and small
# cells are suppressed. Two passes (named holders, known UIDs) make 11 grants at pool-n
# and 2 refusals (a library-only card) there, and 3 grants at lib-c.
# Asserts: `stats` (table, CSV, JSON) and `opendata export` contain none of the known
# identifiers — holder names, card UIDs (as written and lower case), per-sector card
# identifiers (read with the gate bundles), list keys of every pass in every sector, pass
# ids as fields (no "pass"/"id"/"holder"/"uid"/"key" column or JSON key) — and the
# open-data CSV has exactly the header `hour,site,service,granted,refused`, the pool cell
# 11 granted published as 11, every cell under 10 (2 refused at the pool, 3 granted and
# 0 refused at the library) written `<10`, and no total column. The server's own
# statistics (not public) still count exactly: pool-n 11/2, lib-c 3/0.
# Issue 17 (item 5): with a counted service too (a waste quota), after the day every file of
# every machine — sqlite files (as rows, and as bytes), logs, configurations, the bench's
# capture — is searched mechanically: no card UID anywhere, holder names only in the pass
# register, and no value shared by one holder's rows in two sectors that other holders'
# rows do not share too; no sector's key at another sector's gate.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN PROBE.
. "$(dirname "$0")/common.sh"
: "${PROBE:?}"

deployment pool,library,waste
adm site add pool-n --sector pool >/dev/null
adm site add lib-c --sector library >/dev/null
adm site add waste-e --sector waste >/dev/null
start_bench pool-1 library-1 waste-1
start_server
enrol pool-g1 pool-n pool-1
enrol lib-g1 lib-c library-1
enrol waste-g1 waste-e waste-1
start_controller pool-1
start_controller library-1
start_controller waste-1
uids="04A1B2C3D4E5F6 04B1B2B3B4B5B6 04C1C2C3C4C5C6"
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool library,quota=24/year waste,quota=24/year)
bea=$(issue_card "$T/bea.card" 04B1B2B3B4B5B6 pool waste,quota=24/year)
cid=$(issue_card "$T/cid.card" 04C1C2C3C4C5C6 library)
[ -n "$ann" ] && [ -n "$bea" ] && [ -n "$cid" ] || fail "passes not issued"
wait_list pool-1 pool
wait_list library-1 library
wait_list waste-1 waste

# a flat chain of decisions; the hour cell is the same for all unless the quarter hour
# changes hour mid-run: then the pool cell may split, which the checks below allow for
i=0
while [ $i -lt 11 ]; do
	i=$((i + 1))
	c=ann
	[ $((i % 2)) = 0 ] && c=bea
	tap_expect pool-1 "relay=open led=green" "pool grant $i" desfire "$T/$c.card"
done
tap_expect pool-1 "relay=closed led=red" "pool refusal 1" desfire "$T/cid.card"
tap_expect pool-1 "relay=closed led=red" "pool refusal 2" desfire "$T/cid.card"
for c in ann cid ann; do tap_expect library-1 "relay=open led=green" "library grant ($c)" desfire "$T/$c.card"; done
# issue 17: a service that counts (a waste quota: identifying rows on the gate and the server)
for c in ann bea ann; do tap_expect waste-1 "relay=open led=green" "waste grant ($c)" desfire "$T/$c.card"; done
all() { [ "$(server_count)" -ge 19 ]; }
wait_for 30 all || fail "server counts $(server_count) decisions, expected 19"
wait_for 30 uses_acked waste-1 || fail "the waste uses were not acknowledged"

# the known identifiers
: >"$T/ids"
for u in $uids; do echo "$u" >>"$T/ids"; echo "$u" | tr 'A-F' 'a-f' >>"$T/ids"; done
for p in "$ann" "$bea" "$cid"; do
	adm pass show "$p" | sed -n 's/^holder: //p' >>"$T/ids"
	adm pass show "$p" --json | grep -o '"list_key":"[0-9a-f]*"' | cut -d'"' -f4 >>"$T/ids"
done
for c in ann bea cid; do
	for b in pool-1 library-1 waste-1; do
		ctl place desk desfire "$T/$c.card" >/dev/null
		"$PROBE" card-read "$(reader desk)" "$T/bundle-$b" 2>/dev/null | sed -n 's/^id //p' >>"$T/ids" || true
		ctl remove desk >/dev/null
	done
done
n=$(grep -c . "$T/ids")
[ "$n" -ge 19 ] || fail "only $n identifiers collected"
adm stats >"$T/stats.txt" 2>&1 || fail "stats"
adm stats --by site,service,outcome,hour --format csv >"$T/stats.csv" 2>&1 || fail "stats csv"
adm stats --by site,service,outcome,hour --json >"$T/stats.json" 2>&1 || fail "stats json"
adm opendata export --out "$T/open.csv" >/dev/null 2>&1 || fail "opendata export"
for f in stats.txt stats.csv stats.json open.csv; do
	hit=$(grep -iF -f "$T/ids" "$T/$f" || true)
	[ -z "$hit" ] || fail "$f holds an identifier: $hit"
	grep -Eiq '"(pass|pass_id|id|holder|uid|list_key|key|household)"|(^|,)(pass|holder|uid|list_key|household)(,|$)' "$T/$f" &&
		fail "$f has an identifying field: $(head -n2 "$T/$f")"
done
echo "ok - stats (table, CSV, JSON) and open data: no holder, UID, card identifier, list key or pass field ($(grep -c . "$T/ids") values checked)"

[ "$(head -n1 "$T/open.csv")" = "hour,site,service,granted,refused" ] || fail "open data header: $(head -n1 "$T/open.csv")"
tail -n +2 "$T/open.csv" | awk -F, 'NF != 5 { exit 1 }' || fail "open data rows are not 5 fields"
# every number published is >= 10; everything under 10 is written <10
tail -n +2 "$T/open.csv" | awk -F, '{ for (i = 4; i <= 5; i++) if ($i != "<10" && ($i !~ /^[0-9]+$/ || $i < 10)) exit 1 }' ||
	fail "a cell under 10 is published: $(cat "$T/open.csv")"
pool_rows=$(grep -c ",pool-n,pool," "$T/open.csv")
if [ "$pool_rows" = 1 ]; then
	grep -q ",pool-n,pool,11,<10$" "$T/open.csv" || fail "pool row: $(grep pool-n "$T/open.csv")"
	echo "ok - open data: pool-n granted 11 published, refused 2 written <10"
else
	echo "ok - open data: the pool taps straddled an hour ($pool_rows rows): no exact-11 check"
fi
grep -q ",lib-c,library,<10,<10$" "$T/open.csv" || fail "library row: $(grep lib-c "$T/open.csv")"
echo "ok - open data: lib-c 3 granted / 0 refused both written <10; no total column"
c=$(stats_csv)
cell() { echo "$c" | awk -F, -v s="$1" -v o="$2" '$1 == s && $3 == o { n += $4 } END { print n + 0 }'; }
[ "$(cell pool-n granted)" = 11 ] && [ "$(cell pool-n refused)" = 2 ] &&
	[ "$(cell lib-c granted)" = 3 ] && [ "$(cell lib-c refused)" = 0 ] || fail "server statistics: $c"
echo "ok - server statistics (internal): pool-n 11/2, lib-c 3/0"

# --- issue 17, item 5: every file of every machine, searched mechanically (not by column
# names): the server's data directory and log, each gate's state directory, configuration
# and log, and the bench's capture of everything said on each reader's serial line.
ctl events >"$T/capture.txt" || fail "bench capture"
stop_controller pool-1
stop_controller library-1
stop_controller waste-1
stop_server
files="$T/files"
find "$CITYPASS_DATA" "$T"/state-* "$T"/bundle-* -type f >"$files"
ls "$T"/ctl-*.log "$T"/*.conf "$T/server.log" "$T/capture.txt" >>"$files"
[ "$(grep -c 'journal.db$' "$files")" = 3 ] || fail "not every gate's journal found: $(cat "$files")"
# hexdump FILE : the file's bytes as one line of lower-case hex (raw identifiers in blobs)
hexdump() { od -An -v -tx1 "$1" | tr -d ' \n'; }
# 1. card UIDs: nowhere, as text or as bytes (the cards show random UIDs: not even the capture)
# (the bench's holders are named after their card's UID, "Holder 04A1...": in the pass
# register, the name is the register's; everywhere else it would be the UID)
sqlite3 "$CITYPASS_DATA/citypass.db" .dump | grep -v '^INSERT INTO passes VALUES' >"$T/server.dump"
while read -r f; do
	for u in $uids; do
		lu=$(echo "$u" | tr 'A-F' 'a-f')
		case $f in
		*/citypass.db) LC_ALL=C grep -qiF "$u" "$T/server.dump" && fail "the server's database holds the UID $u outside the register" ;;
		*) LC_ALL=C grep -qaiF "$u" "$f" && fail "$f holds the UID $u" ;;
		esac
		hexdump "$f" | grep -q "$lu" && fail "$f holds the UID $u as bytes"
	done
done <"$files"
echo "ok - no card UID in any file, log or capture ($(wc -l <"$files") files, as text and bytes)"
# 2. names: only in the pass register (the server's passes table), nowhere else
names="$T/names"
for p in "$ann" "$bea" "$cid"; do adm pass show "$p" | sed -n 's/^holder: //p'; done >"$names"
[ "$(grep -c . "$names")" = 3 ] || fail "holder names: $(cat "$names")"
while read -r f; do
	case $f in */citypass.db) continue ;; esac
	LC_ALL=C grep -qaF -f "$names" "$f" && fail "$f holds a holder's name"
done <"$files"
grep -F -f "$names" "$T/server.dump" && fail "a holder's name outside the pass register"
echo "ok - holder names only in the pass register"
# 3. nothing links one holder's uses across two sectors. For each pass and sector, the
# value that identifies it there (its list key; gates keep no other); for each sqlite file, every
# row of every table (the register's tables excepted: they are the link, by design),
# values as text and blobs as hex; the values of rows naming ann in one sector and of rows
# naming ann in another must have nothing in common that rows of other holders do not share
# too (a product number, a period, a sector number are everybody's).
hexrows() { # DB : the same rows with blobs as hex
	for t in $(sqlite3 "$1" "select name from sqlite_master where type = 'table' and name not in
		('passes', 'pass_ids', 'rights', 'households', 'household_tags', 'pass_imports')"); do
		cols=$(sqlite3 "$1" "select group_concat(case when type = 'BLOB' then 'lower(hex(' || name || '))' else name end, ' || ''|'' || ') from pragma_table_info('$t')")
		sqlite3 "$1" "select $cols from $t" 2>/dev/null || true
	done
}
: >"$T/allrows"
while read -r f; do
	case $f in *.db) hexrows "$f" >>"$T/allrows" ;; esac
done <"$files"
# the list keys of each pass in each sector, lower-case hex
for p in ann bea cid; do
	eval "pid=\$$p"
	for sec in pool library waste; do
		k=$(list_key "$pid" "$sec")
		[ -n "$k" ] && echo "$p $sec $k"
	done
done >"$T/keys"
values_of() { # HOLDER SECTOR : the values of the rows holding that holder's key in that sector
	_k=$(awk -v h="$1" -v s="$2" '$1 == h && $2 == s { print $3 }' "$T/keys")
	[ -n "$_k" ] || return 0
	grep -F "$_k" "$T/allrows" | tr '|' '\n' | grep -v "^$_k$" | sort -u
}
others() { # HOLDER : the values of rows holding any other holder's key
	awk -v h="$1" '$1 != h { print $3 }' "$T/keys" >"$T/okeys"
	grep -F -f "$T/okeys" "$T/allrows" | tr '|' '\n' | sort -u
}
linked=0
for h in ann bea; do
	others "$h" >"$T/generic"
	for a in pool library waste; do
		for b in pool library waste; do
			[ "$a" \< "$b" ] || continue
			values_of "$h" "$a" >"$T/va"
			values_of "$h" "$b" >"$T/vb"
			[ -s "$T/va" ] && [ -s "$T/vb" ] || continue
			# (a Unix time within a year of now shared by chance — two gates acking in
			# the same second, two lists published in the same second and expiring
			# together — is a coincidence of clocks, not an identifier)
			common=$(comm -12 "$T/va" "$T/vb" | comm -23 - "$T/generic" |
				awk -v now="$(date +%s)" '!($0 ~ /^[0-9]+$/ && $0 > now - 31622400 && $0 < now + 31622400)' || true)
			[ -z "$common" ] || fail "$h: rows of $a and of $b share $common"
			linked=$((linked + 1))
		done
	done
done
[ "$linked" -ge 1 ] || fail "no holder had rows in two sectors to compare"
# and no sector's identifying value of a holder is anywhere in another sector's gate
while read -r h sec k; do
	for g in pool-1 library-1 waste-1; do
		case $g in "$sec"-*) continue ;; esac
		for f in $(find "$T/state-$g" -type f) "$T/ctl-$g.log"; do
			LC_ALL=C grep -qaiF "$k" "$f" && fail "$h's $sec list key is in $f"
			hexdump "$f" | grep -q "$k" && fail "$h's $sec list key is in $f as bytes"
		done
	done
done <"$T/keys"
echo "ok - no value links a holder's uses across two sectors ($linked pair(s) of sectors compared), no sector's key at another sector's gate"
echo "scenario privacy passed"
