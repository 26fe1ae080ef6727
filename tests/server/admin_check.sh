#!/bin/sh
# citypass-admin end to end, without hardware: every command, each bad input as its own case
# (exit status and a message naming the value), refusals that leave nothing behind, lists
# verified by openssl and citypass-list, revocation in the next version, a delta that a gate
# applies to get exactly the next snapshot, phone credentials through citypass-token, the
# sync backend's view (device lookup, revoked devices, deduplicated ingestion), statistics
# and the open-data export with small counts suppressed. Under tests/support/pg_run.sh
# (CITYPASS_TEST_PG set) the same on a PostgreSQL store (issue 16).
# Env: ADMIN PROBE CITYPASS_LIST CITYPASS_TOKEN OPENSSL (tests/server/CMakeLists.txt).
set -eu
: "${ADMIN:?}" "${PROBE:?}" "${CITYPASS_LIST:?}" "${CITYPASS_TOKEN:?}"
OPENSSL=${OPENSSL:-openssl}
W=$(mktemp -d "${TMPDIR:-/tmp}/citypass-admin-test-XXXXXX")
. "$(dirname "$0")/../support/procs.sh" # the one exit convention
cleanup() { rm -rf "$W"; }
on_exit cleanup
export CITYPASS_DATA="$W/data"
unset CITYPASS_NOW
CASES=0

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# case NAME EXPECTED_EXIT PATTERN CMD... : run, check the exit status and that stdout+stderr
# match PATTERN (grep -E; '' for any)
case_() {
	name=$1 want=$2 pat=$3
	shift 3
	set +e
	out=$("$@" 2>&1)
	got=$?
	set -e
	CASES=$((CASES + 1))
	[ "$got" -eq "$want" ] || fail "$name: exit $got, expected $want; output:
$out"
	if [ -n "$pat" ]; then
		printf '%s\n' "$out" | grep -Eq -- "$pat" ||
			fail "$name: output lacks /$pat/:
$out"
	fi
	echo "ok $CASES - $name"
}

adm() { "$ADMIN" "$@"; }
# the pass number the last case's output gave ("pass N issued")
issued() { printf '%s\n' "$out" | sed -n 's/^pass \([0-9]*\) issued.*/\1/p' | head -n1; }
db_count() { # passes in the database, through the CLI
	adm pass list --json | grep -o '"id":' | wc -l
}

# --- usage of the tool itself ----------------------------------------------------------------
case_ "help" 0 "usage: citypass-admin" adm --help
case_ "version" 0 "citypass-admin [0-9]" adm --version
case_ "no command" 2 "missing a command" adm
case_ "unknown command" 2 "unknown command 'frobnicate'" adm frobnicate
case_ "unknown global option" 2 "option '--bogus'" adm --bogus init
case_ "no data dir" 2 "no data directory" env -u CITYPASS_DATA "$ADMIN" pass list
case_ "missing deployment" 1 "no deployment in '$W/none'" adm --data "$W/none" pass list
for c in init "sector" "site" "device" "household" "pass" "rights" "list" "stats" "opendata"; do
	case_ "$c --help" 0 "usage: citypass-admin" adm $c --help
done
for c in "site add" "device add" "pass issue" "pass show" "pass list" "pass revoke" \
	"pass replace" "rights grant" "rights revoke" "list publish" "list export" \
	"opendata export" "device revoke"; do
	case_ "$c --help" 0 "usage: citypass-admin" adm $c --help
done

# --- init ------------------------------------------------------------------------------------
case_ "init: bad --tz" 2 "--tz 'Mars/Olympus'" adm init --tz Mars/Olympus
case_ "init: bad --list-validity-days" 2 "--list-validity-days '0'" adm init --list-validity-days 0
case_ "init: non-numeric --keep" 2 "--keep 'many'" adm init --keep many
case_ "init: bad --credential-days" 2 "--credential-days '99999'" adm init --credential-days 99999
case_ "init: bad sector name" 2 "'po ol' is not a sector name" adm init --sectors "po ol,bus"
case_ "init: too many sectors" 2 "at most 6 sectors" adm init --sectors a,b,c,d,e,f,g
case_ "init: duplicate sector" 2 "'bus' is given twice" adm init --sectors bus,bus
case_ "init: value sector not a sector" 2 "--value-sector 'gym'" adm init --value-sector gym
case_ "init: bad server name" 2 "--server-name 'bad host'" adm init --server-name "bad host"
case_ "init: stray argument" 2 "unexpected argument 'now'" adm init now
[ ! -e "$W/data/citypass.db" ] || fail "a refused init left a database"
case_ "init" 0 "4 sectors" adm init --server-name localhost --value-sector pool \
	${CITYPASS_TEST_PG:+--store "$CITYPASS_TEST_PG"}
case_ "init: refuses an existing deployment" 1 "refusing to overwrite" adm init
for f in list.key issuer.key ca.key server.key card.keys; do
	[ "$(stat -c %a "$W/data/keys/$f")" = 600 ] || fail "keys/$f is not 0600"
done
"$OPENSSL" verify -CAfile "$W/data/keys/ca.crt" "$W/data/keys/server.crt" >/dev/null ||
	fail "server certificate not signed by the CA"
"$OPENSSL" x509 -in "$W/data/keys/server.crt" -noout -subject | grep -q "CN = localhost" ||
	fail "server certificate CN"
case_ "sector list" 0 "waste +slot 2" adm sector list
case_ "sector list --json" 0 '"name":"bus","slot":3' adm sector list --json
case_ "sector: unknown subcommand" 2 "unknown sector command 'add'" adm sector add gym

# --- sites -----------------------------------------------------------------------------------
case_ "site add: no name" 2 "missing the site NAME" adm site add --sector pool
case_ "site add: bad name" 2 "site name 'a b'" adm site add "a b" --sector pool
case_ "site add: no sector" 2 "missing --sector" adm site add pool-n
case_ "site add: unknown sector" 2 "--sector 'gym': no such sector" adm site add pool-n --sector gym
case_ "site add: bad hours" 2 "--hours 'Mon-Fri 9-17'" adm site add pool-n --sector pool --hours "Mon-Fri 9-17"
case_ "site add: hours end before start" 2 "--hours 'Mon 18:00-09:00'" adm site add pool-n --sector pool --hours "Mon 18:00-09:00"
case_ "site add: bad tz" 2 "--tz 'Nowhere'" adm site add pool-n --sector pool --tz Nowhere
case_ "site add: bad antipassback" 2 "--antipassback '-5'" adm site add pool-n --sector pool --antipassback -5
case_ "site add: antipassback too large" 2 "--antipassback '1441'" adm site add pool-n --sector pool --antipassback 1441
case_ "site add: bad expiry policy" 2 "--expiry-policy 'open'" adm site add pool-n --sector pool --expiry-policy open
case_ "site add: bad grace" 2 "--expiry-policy 'grace:0'" adm site add pool-n --sector pool --expiry-policy grace:0
case_ "site add: unknown option" 2 "option '--colour'" adm site add pool-n --sector pool --colour red
case_ "site add" 0 "site 1 pool-n" adm site add pool-n --sector pool \
	--hours "Mon-Fri 09:00-12:00,14:00-19:00;Sat 10:00-18:00" --antipassback 30
case_ "site add: duplicate" 1 "site 'pool-n' already exists" adm site add pool-n --sector pool
case_ "site add waste" 0 "site 2 dech-est" adm site add dech-est --sector waste --expiry-policy grace:48
case_ "site add waste 2" 0 "site 3 dech-ouest" adm site add dech-ouest --sector 3 --tz Europe/Paris
case_ "site list" 0 "dech-est" adm site list
case_ "site list --json" 0 '"antipassback_min":30' adm site list --json

# --- devices ---------------------------------------------------------------------------------
case_ "device add: no name" 2 "missing the device NAME" adm device add --site pool-n --server h:1 --out "$W/x"
case_ "device add: bad name" 2 "device name 'g/1'" adm device add g/1 --site pool-n --server h:1 --out "$W/x"
case_ "device add: no site" 2 "missing --site" adm device add g1 --server h:1 --out "$W/x"
case_ "device add: no server" 2 "missing --server" adm device add g1 --site pool-n --out "$W/x"
case_ "device add: bad server" 2 "--server 'localhost'" adm device add g1 --site pool-n --server localhost --out "$W/x"
case_ "device add: bad port" 2 "--server 'h:70000'" adm device add g1 --site pool-n --server h:70000 --out "$W/x"
case_ "device add: no out" 2 "missing --out" adm device add g1 --site pool-n --server h:1
case_ "device add: unknown site" 1 "--site 'nope': no such site" adm device add g1 --site nope --server h:1 --out "$W/x"
mkdir "$W/exists"
case_ "device add: out exists" 1 "--out '$W/exists' already exists" adm device add g1 --site pool-n --server h:1 --out "$W/exists"
[ ! -e "$W/x" ] || fail "a refused device add left a bundle"
case_ "device add" 0 "device g1 \\(gate 1\\)" adm device add g1 --site pool-n --server localhost:7443 --out "$W/b1"
case_ "device add: duplicate" 1 "device 'g1' already exists" adm device add g1 --site pool-n --server h:1 --out "$W/b1b"
[ ! -e "$W/b1b" ] || fail "a refused device add left a bundle"
case_ "device add waste" 0 "gate 2" adm device add w1 --site dech-est --server localhost:7443 --out "$W/bw"
for f in device.crt device.key ca.crt list.pub.pem issuer.pub.pem card-sector.key device.conf gate.cert; do
	[ -f "$W/b1/$f" ] || fail "bundle lacks $f"
done
[ "$(stat -c %a "$W/b1/device.key")" = 600 ] || fail "device.key is not 0600"
[ "$(stat -c %a "$W/b1/card-sector.key")" = 600 ] || fail "card-sector.key is not 0600"
"$OPENSSL" verify -CAfile "$W/b1/ca.crt" "$W/b1/device.crt" >/dev/null || fail "device cert"
"$OPENSSL" x509 -in "$W/b1/device.crt" -noout -subject | grep -q "CN = g1" || fail "device CN"
# the roles, told apart by extendedKeyUsage and checked by openssl itself (issue 10): a gate
# certificate is for TLS clients only, the server's for TLS servers only
"$OPENSSL" x509 -in "$W/b1/device.crt" -noout -text | grep -A1 "Extended Key Usage" |
	grep -qx " *TLS Web Client Authentication" || fail "device certificate is not clientAuth only"
"$OPENSSL" x509 -in "$W/data/keys/server.crt" -noout -text | grep -A1 "Extended Key Usage" |
	grep -qx " *TLS Web Server Authentication" || fail "server certificate is not serverAuth only"
"$OPENSSL" verify -purpose sslserver -CAfile "$W/b1/ca.crt" "$W/b1/device.crt" >/dev/null 2>&1 &&
	fail "openssl accepts the gate certificate as a TLS server's"
"$OPENSSL" verify -purpose sslserver -CAfile "$W/b1/ca.crt" "$W/data/keys/server.crt" >/dev/null ||
	fail "openssl refuses the server certificate for a TLS server"
grep -q '^server-name = localhost$' "$W/b1/device.conf" || fail "device.conf does not pin the server name"
# the gate certificate phones check (issue 17, docs/phone-tokens.md s.3.1), by openssl: the
# CA's signature over "CITYPASS-GATE-CERT-V1" and the first 68 bytes, the CA's key id, the
# device key's compressed point, the sector, SHA-256(device id)[0..8]
grep -q '^gate-certificate = gate.cert$' "$W/b1/device.conf" || fail "device.conf names no gate certificate"
gc=$(xxd -p "$W/b1/gate.cert" | tr -d '\n')
"$OPENSSL" x509 -in "$W/b1/ca.crt" -pubkey -noout >"$W/ca.pub"
{ printf 'CITYPASS-GATE-CERT-V1'; head -c 68 "$W/b1/gate.cert"; } >"$W/gc.msg"
tail -c +70 "$W/b1/gate.cert" >"$W/gc.sig"
"$OPENSSL" dgst -sha256 -verify "$W/ca.pub" -signature "$W/gc.sig" "$W/gc.msg" | grep -qx 'Verified OK' ||
	fail "openssl does not verify the device CA's signature on gate.cert"
[ "$(echo "$gc" | cut -c121-136)" = "$("$OPENSSL" pkey -pubin -in "$W/ca.pub" -outform DER | sha256sum | cut -c1-16)" ] ||
	fail "gate.cert does not name the device CA's key id"
[ "$(echo "$gc" | cut -c23-88)" = "$("$OPENSSL" ec -in "$W/b1/device.key" -pubout -conv_form compressed -outform DER 2>/dev/null | tail -c 33 | xxd -p | tr -d '\n')" ] ||
	fail "gate.cert does not certify device.key"
[ "$(echo "$gc" | cut -c1-22)" = "010001$(printf g1 | sha256sum | cut -c1-16)" ] ||
	fail "gate.cert: version, sector 1 and gate id: $(echo "$gc" | cut -c1-22)"
case_ "device add: the server's name" 1 "device name 'localhost' is the sync server's name" \
	adm device add localhost --site pool-n --server h:1 --out "$W/bsrv"
[ ! -e "$W/bsrv" ] || fail "a refused device add left a bundle"
grep -q '^sector = 1$' "$W/b1/device.conf" || fail "device.conf sector"
grep -q '^antipassback-minutes = 30$' "$W/b1/device.conf" || fail "device.conf antipassback"
grep -q '^expiry-policy = grace:48$' "$W/bw/device.conf" || fail "device.conf policy"
# only its sector's card key: the pool key is slot 0's, and no other slot's key is there
pool_key=$(sed -n 's/^slot-master 0 \([0-9a-f]*\).*/\1/p' "$W/data/keys/card.keys")
grep -q "^master $pool_key\$" "$W/b1/card-sector.key" || fail "bundle card key is not slot 0's"
[ "$(grep -c '^master ' "$W/b1/card-sector.key")" = 1 ] || fail "bundle holds more than one key"
for s in 1 2 3 4 5; do
	k=$(sed -n "s/^slot-master $s \\([0-9a-f]*\\).*/\\1/p" "$W/data/keys/card.keys")
	! grep -q "$k" "$W/b1"/* || fail "bundle holds slot $s's key"
done
! grep -q "$(sed -n 's/^app-master //p' "$W/data/keys/card.keys")" "$W/b1"/* ||
	fail "bundle holds the application master key"
# the issuer PICC master key exists from init on, and no gate ever gets it
picc=$(sed -n 's/^picc-master //p' "$W/data/keys/card.keys")
[ ${#picc} = 32 ] || fail "init made no issuer PICC master key"
! grep -q "$picc" "$W/b1"/* || fail "bundle holds the issuer PICC master key"
case_ "device show" 0 "device g1 gate 1 site 1 sector 1 active" adm device show g1
case_ "sync backend: device lookup" 0 "device g1 site 1 sector 1 revoked 0 latest 1" "$PROBE" device "$W/data" g1
case_ "device revoke: unknown" 1 "device 'g9': no such device" adm device revoke g9
case_ "device revoke: no name" 2 "missing the device NAME" adm device revoke
case_ "device revoke" 0 "device w1 revoked" adm device revoke w1
case_ "device revoke: twice" 1 "already revoked" adm device revoke w1
case_ "sync backend: revoked device" 0 "revoked 1" "$PROBE" device "$W/data" w1

# --- households and passes -------------------------------------------------------------------
case_ "household add: no name" 2 "missing the household NAME" adm household add
case_ "household add: bad name" 2 "household name 'a;b'" adm household add "a;b"
case_ "household add" 0 "household 1 dupont" adm household add dupont
case_ "household add: duplicate" 1 "household 'dupont' already exists" adm household add dupont

case_ "pass issue: no holder" 2 "give --holder NAME or --anonymous" adm pass issue
case_ "pass issue: holder and anonymous" 2 "--holder 'Al' and --anonymous" adm pass issue --holder Al --anonymous
case_ "pass issue: unknown household" 1 "--household 'martin': no such household" adm pass issue --holder Al --household martin
case_ "pass issue: unknown sector" 2 "--right 'gym': no such sector 'gym'" adm pass issue --anonymous --right gym
case_ "pass issue: bad key" 2 "unknown key 'colour'" adm pass issue --anonymous --right pool,colour=red
case_ "pass issue: not key=value" 2 "'entries' is not KEY=VALUE" adm pass issue --anonymous --right pool,entries
case_ "pass issue: bad entries" 2 "entries '0'" adm pass issue --anonymous --right pool,entries=0
case_ "pass issue: entries too many" 2 "entries '256'" adm pass issue --anonymous --right pool,entries=256
case_ "pass issue: bad quota" 2 "quota '24/decade'" adm pass issue --anonymous --right waste,quota=24/decade
case_ "pass issue: bad quota scope" 2 "quota '24/year/street'" adm pass issue --anonymous --right waste,quota=24/year/street
case_ "pass issue: entries and quota" 2 "not both" adm pass issue --anonymous --right pool,entries=3,quota=1/day
case_ "pass issue: bad date" 2 "from '2026-02-30'" adm pass issue --anonymous --right pool,from=2026-02-30
case_ "pass issue: from after to" 2 "from is after to" adm pass issue --anonymous --right pool,from=2026-06-01,to=2026-01-01
case_ "pass issue: bad fare" 2 "fare 'cheap'" adm pass issue --anonymous --right bus,fare=cheap
case_ "pass issue: bad product" 2 "product 'x'" adm pass issue --anonymous --right bus,product=x
case_ "pass issue: two rights one sector" 2 "one right per sector" adm pass issue --anonymous --right bus --right bus,fare=free
case_ "pass issue: reader and phone" 2 "exclude each other" adm pass issue --anonymous --reader pn532_uart:/x --phone-key pool=/x --out "$W/c"
case_ "pass issue: phone without out" 2 "needs --out" adm pass issue --anonymous --phone-key pool=/x
case_ "pass issue: bad phone-key" 2 "--phone-key 'pool': expected SECTOR=FILE" adm pass issue --anonymous --phone-key pool --out "$W/c"
case_ "pass issue: phone-key unknown sector" 2 "no such sector 'gym'" adm pass issue --anonymous --phone-key gym=/x --out "$W/c"
case_ "pass issue: phone-key missing file" 2 "cannot read '$W/none.pem'" adm pass issue --anonymous --phone-key pool=$W/none.pem --out "$W/c"
case_ "pass issue: out without phone" 2 "--out '$W/c' is only for --phone-key" adm pass issue --anonymous --out "$W/c"
echo "not a key" >"$W/bad.pem"
case_ "pass issue: phone-key not a key" 1 "not a P-256 public key" adm pass issue --anonymous --right pool --phone-key pool="$W/bad.pem" --out "$W/c"
case_ "pass issue: reader absent" 1 "card not issued at reader 'pn532_uart:$W/no-reader'" adm pass issue --anonymous --right pool --reader "pn532_uart:$W/no-reader"
[ "$(db_count)" = 0 ] || fail "a refused pass issue left a pass"
[ ! -e "$W/c/sector-1.cred" ] || fail "a refused pass issue left a credential"
# issue 10: a name that is not UTF-8 is refused at the door, and one already in the
# database (written by another tool) is still exported as valid JSON; --hours is never cut
case_ "pass issue: holder not UTF-8" 2 "--holder: byte 5 is not UTF-8" \
	adm pass issue --holder "$(printf 'Zo\303\251\377')" --right pool
case_ "site add: --hours too long" 2 "--hours: 300 characters, at most 255" \
	adm site add long-hours --sector pool --hours "$(printf 'Mon 09:00-10:00;%.0s' $(seq 1 20) | cut -c1-300)"
# issue 10: nothing of a refused issue is left, nor announced — no empty --out directory,
# no "published ... version N" for a transaction rolled back
[ ! -e "$W/c" ] || fail "a refused phone issue left its --out directory"
out=$(adm pass issue --anonymous --right pool --phone-key pool="$W/bad.pem" --out "$W/c" 2>&1 || true)
printf '%s\n' "$out" | grep -q "published" && fail "a rolled-back issue announced a publication: $out"
[ ! -e "$W/c" ] || fail "a refused phone issue left its --out directory"
"$CITYPASS_LIST" show "$W/data" >/dev/null 2>&1 || true
case_ "pass issue (household, quota)" 0 "pass [0-9]+ issued \\(none\\)" adm pass issue --holder "Alice Dupont" \
	--household dupont --right pool,entries=10 --right waste,quota=24/year/household,product=7
p1=$(issued)
case_ "pass issue (household member)" 0 "pass [0-9]+ issued" adm pass issue --holder "Bruno Dupont" \
	--household dupont --right waste,quota=24/year/household,product=7
p2=$(issued)
case_ "pass issue (anonymous, subscription)" 0 "pass [0-9]+ issued" adm pass issue --anonymous \
	--right bus,fare=concession,from=2026-01-01,to=2026-12-31
p3=$(issued)
# sqlite numbers them 1, 2, 3; PostgreSQL skips the numbers refused issues drew (its
# identity values are not given back by a rollback), and never reuses one
[ -n "${CITYPASS_TEST_PG:-}" ] || [ "$p1 $p2 $p3" = "1 2 3" ] || fail "passes numbered $p1 $p2 $p3"
case_ "pass show" 0 "quota 24 per year per household" adm pass show "$p1"
case_ "pass show --json" 0 '"holder":null' adm pass show "$p3" --json
case_ "pass show: bad id" 2 "pass ID 'abc'" adm pass show abc
case_ "pass show: zero id" 2 "pass ID '0'" adm pass show 0
case_ "pass show: unknown" 1 "pass 99: no such pass" adm pass show 99
case_ "pass show: no id" 2 "missing the pass ID" adm pass show
case_ "pass list" 0 "Alice Dupont" adm pass list
case_ "pass list --json" 0 "\"id\":$p3" adm pass list --json
# a holder name that is not UTF-8, written by another tool: still valid JSON (issue 10),
# checked by Python's json module, an independent parser (PostgreSQL refuses such text
# itself: a UTF-8 database holds none)
if [ -z "${CITYPASS_TEST_PG:-}" ] && command -v sqlite3 >/dev/null && command -v python3 >/dev/null; then
	old_holder=$(sqlite3 "$W/data/citypass.db" "select hex(holder) from passes where id = 1")
	sqlite3 "$W/data/citypass.db" "update passes set holder = cast(x'5a6fff80c3' as text) where id = 1"
	adm pass list --json | python3 -c 'import json, sys; json.load(sys.stdin)' ||
		fail "pass list --json is not valid JSON with a non-UTF-8 name"
	adm pass list --json | grep -q '"Zo\\ufffd\\ufffd\\ufffd"' || fail "invalid bytes not shown as U+FFFD"
	sqlite3 "$W/data/citypass.db" "update passes set holder = cast(x'$old_holder' as text) where id = 1"
	echo "ok - pass list --json stays valid JSON with a non-UTF-8 name"
fi
case_ "pass list --household" 0 "Bruno" adm pass list --household dupont
case_ "pass list --sector bus" 0 "anonymous" adm pass list --sector bus
case_ "pass list: bad state" 2 "--state 'lost'" adm pass list --state lost
case_ "pass list: unknown household" 1 "--household 'x'" adm pass list --household x
case_ "pass list: unknown sector" 2 "--sector 'gym'" adm pass list --sector gym
[ "$(adm pass list --sector bus --json | grep -o '"id":' | wc -l)" = 1 ] || fail "sector filter"

# identifiers: 16 random bytes per sector, keys differ across sectors
k_pool=$(adm pass show "$p1" --json | sed -n 's/.*"sector":"pool"[^}]*"list_key":"\([0-9a-f]*\)".*/\1/p')
k_waste=$(adm pass show "$p1" --json | sed -n 's/.*"sector":"waste"[^}]*"list_key":"\([0-9a-f]*\)".*/\1/p')
k2_waste=$(adm pass show "$p2" --json | sed -n 's/.*"sector":"waste"[^}]*"list_key":"\([0-9a-f]*\)".*/\1/p')
[ ${#k_pool} = 16 ] && [ ${#k_waste} = 16 ] || fail "list keys: '$k_pool' '$k_waste'"
[ "$k_pool" != "$k_waste" ] || fail "one list key in two sectors"

# --- lists: export, openssl, citypass-list ---------------------------------------------------
case_ "list export: no sector" 2 "missing --sector" adm list export --out "$W/ex"
case_ "list export: no out" 2 "missing --out" adm list export --sector pool
case_ "list export: unknown sector" 2 "--sector 'gym': no such sector" adm list export --sector gym --out "$W/ex"
case_ "list export: bad version" 2 "--version 'latest'" adm list export --sector pool --out "$W/ex" --version latest
case_ "list export: missing version" 1 "no list version 42" adm list export --sector pool --out "$W/ex" --version 42
case_ "list export" 0 "sector-1-v2" adm list export --sector pool --out "$W/ex"
case_ "list export: refuses to overwrite" 1 "cannot export" adm list export --sector pool --out "$W/ex"
X="$W/ex/sector-1-v2"
case_ "openssl verifies the exported manifest" 0 "Verified OK" "$OPENSSL" dgst -sha256 -verify "$X/list.pub.pem" \
	-signature "$X/v2.manifest.sig" "$X/v2.manifest"
case_ "sha256sum checks every file it names" 0 "" sh -c "cd '$X' && sha256sum -c --quiet v2.manifest"
cp "$X/v2.manifest" "$W/manifest.orig"
printf 'x' >>"$X/v2.manifest"
case_ "openssl refuses a modified manifest" 1 "Verification failure" "$OPENSSL" dgst -sha256 -verify "$X/list.pub.pem" \
	-signature "$X/v2.manifest.sig" "$X/v2.manifest"
cp "$W/manifest.orig" "$X/v2.manifest"
dat=$(ls "$X"/c000-v*.dat)
printf 'x' >>"$dat"
case_ "sha256sum refuses a modified chunk" 1 "FAILED" sh -c "cd '$X' && sha256sum -c --quiet v2.manifest"
case_ "list export: key id" 0 "" "$CITYPASS_LIST" keyid --pub "$X/list.pub.pem"
keyid=$("$CITYPASS_LIST" keyid --pub "$X/list.pub.pem")
oid=$("$OPENSSL" pkey -pubin -in "$X/list.pub.pem" -outform DER | "$OPENSSL" dgst -sha256 -r | cut -c1-16)
[ "$keyid" = "$oid" ] || fail "key id $keyid, openssl says $oid"

case_ "list publish: unknown sector" 2 "--sector 'gym'" adm list publish --sector gym
case_ "list publish: stray argument" 2 "unexpected argument 'now'" adm list publish now
case_ "list publish (one sector)" 0 "sector waste list version 4" adm list publish --sector waste
case_ "list publish (all)" 0 "sector bus list version 3" adm list publish

# --- revocation in the next version, and the delta a gate applies ----------------------------
# export DIR: the newest waste list into DIR, its path in $L (and its delta in $L.d)
export_waste() {
	adm list export --sector waste --out "$1" >/dev/null
	L=$(ls "$1"/sector-3-v*/v*.manifest)
}
export_waste "$W/w3"
L3=$L
case_ "before revocation: active" 0 "^status 0 .*household [1-9]" "$PROBE" lookup "$L3" "$k_waste"
case_ "pass revoke: no reason" 2 "missing --reason" adm pass revoke "$p1"
case_ "pass revoke: bad id" 2 "pass ID 'x1'" adm pass revoke x1 --reason lost
case_ "pass revoke: unknown" 1 "pass 77: no such pass" adm pass revoke 77 --reason lost
case_ "pass revoke" 0 "pass $p1 revoked: lost" adm pass revoke "$p1" --reason lost
case_ "pass revoke: twice" 1 "pass $p1 is already revoked" adm pass revoke "$p1" --reason lost
case_ "pass show: revoked" 0 "state: revoked - lost" adm pass show "$p1"
export_waste "$W/w4"
L4=$L
v3=$(echo "$L3" | sed 's/.*\/v\([0-9]*\)\.manifest$/\1/')
v4=$(echo "$L4" | sed 's/.*\/v\([0-9]*\)\.manifest$/\1/')
[ "$v4" = $((v3 + 1)) ] || fail "revocation did not publish the next version ($v3 -> $v4)"
P4="$(dirname "$L4")/list.pub.pem"
case_ "citypass-list verifies the new version" 0 "" "$CITYPASS_LIST" verify "$L4" --pub "$P4" \
	--sector 3 --held "$v3"
case_ "citypass-list refuses it as a rollback" 1 "" "$CITYPASS_LIST" verify "$L4" --pub "$P4" \
	--sector 3 --held "$v4"
case_ "citypass-list show" 0 "version +$v4" "$CITYPASS_LIST" show "$L4"
case_ "revocation in the next version" 0 "^status 1 " "$PROBE" lookup "$L4" "$k_waste"
case_ "household member still active" 0 "^status 0 " "$PROBE" lookup "$L4" "$k2_waste"
D4="$(dirname "$L4")/v$v4.delta"
case_ "delta N -> N+1 applies" 0 "applied: version $v4, 1 chunk" "$PROBE" delta-apply "$L3" \
	"$D4" "$L4.sig" "$P4" "$W/applied"
cmp "$W/applied/v$v4.manifest" "$L4" || fail "the applied delta does not give the published manifest"
for f in "$W"/applied/c*; do
	cmp "$f" "$(dirname "$L4")/$(basename "$f")" || fail "the applied delta's $(basename "$f")"
done
case_ "delta: refused on the wrong base" 1 "delta refused" "$PROBE" delta-apply "$L4" \
	"$D4" "$L4.sig" "$P4" "$W/applied2"

# --- consumption feeds the household quota ---------------------------------------------------
year=$(TZ=Europe/Paris date +%Y)
case_ "ingest consumption" 0 "acked 1" "$PROBE" ingest "$W/data" w1 consumption 1 3 "$k2_waste" 7 3 "$year"
case_ "ingest consumption (duplicate)" 0 "acked 1" "$PROBE" ingest "$W/data" w1 consumption 1 3 "$k2_waste" 7 3 "$year"
adm list publish --sector waste >/dev/null 2>&1
export_waste "$W/w5"
case_ "quota used in the next list" 0 "^status 0 profile [0-9]+ used 3 " "$PROBE" lookup "$L" "$k2_waste"

# --- rights ----------------------------------------------------------------------------------
case_ "rights: no subcommand" 2 "missing a rights command" adm rights
case_ "rights: unknown subcommand" 2 "unknown rights command 'give'" adm rights give 2
case_ "rights grant: no id" 2 "missing the pass ID" adm rights grant --right pool
case_ "rights grant: no right" 2 "missing --right" adm rights grant "$p2"
case_ "rights grant: bad right" 2 "entries 'ten'" adm rights grant "$p2" --right pool,entries=ten
case_ "rights grant: revoked pass" 1 "pass $p1 is revoked" adm rights grant "$p1" --right library
case_ "rights grant: unknown pass" 1 "pass 50: no such pass" adm rights grant 50 --right library
case_ "rights grant" 0 "1 right\\(s\\) granted" adm rights grant "$p2" --right library,from=2026-09-01,to=2027-08-31
case_ "rights grant replaces" 0 "granted" adm rights grant "$p2" --right library,fare=free
case_ "pass show: replaced right" 0 "library +product 1, fare free" adm pass show "$p2"
case_ "rights revoke: no sector" 2 "missing --sector" adm rights revoke "$p2"
case_ "rights revoke: unknown sector" 2 "--sector 'gym'" adm rights revoke "$p2" --sector gym
case_ "rights revoke: none held" 1 "holds no right in sector bus" adm rights revoke "$p2" --sector bus
case_ "rights revoke" 0 "right in sector library revoked" adm rights revoke "$p2" --sector library

# --- replacement -----------------------------------------------------------------------------
case_ "pass replace: no id" 2 "missing the pass ID" adm pass replace
case_ "pass replace: with rights" 2 "keeps the holder" adm pass replace "$p2" --right pool
# a revoked (lost) pass may be replaced later at the desk: here only the absent reader refuses
case_ "pass replace: revoked pass accepted, reader absent" 1 "card not issued" \
	adm pass replace "$p1" --reader "pn532_uart:$W/no-reader"
case_ "pass replace: reader absent" 1 "card not issued" adm pass replace "$p2" --reader "pn532_uart:$W/no-reader"
case_ "pass show: not replaced after a refusal" 0 "state: active" adm pass show "$p2"
case_ "pass replace" 0 "pass $p2 replaced by pass [0-9]+" adm pass replace "$p2" --reason damaged
p4=$(printf '%s\n' "$out" | sed -n 's/.*replaced by pass \([0-9]*\).*/\1/p' | head -n1)
case_ "pass show: replaced" 0 "replaced by: pass $p4" adm pass show "$p2"
case_ "pass show: the new pass keeps the rights" 0 "quota 24 per year per household" adm pass show "$p4"
export_waste "$W/w6"
case_ "replaced pass listed as replaced" 0 "^status 2 " "$PROBE" lookup "$L" "$k2_waste"
k4_waste=$(adm pass show "$p4" --json | sed -n 's/.*"sector":"waste"[^}]*"list_key":"\([0-9a-f]*\)".*/\1/p')
case_ "new pass listed active" 0 "^status 0 " "$PROBE" lookup "$L" "$k4_waste"
[ "$k4_waste" != "$k2_waste" ] || fail "the new pass reuses the old identifier"
case_ "pass replace: twice" 1 "pass $p2 is already replaced \\(by pass $p4\\)" adm pass replace "$p2"

# --- phone credentials -----------------------------------------------------------------------
req1=$("$CITYPASS_TOKEN" enrol --wallet "$W/wallet" --sector 1)
req3=$("$CITYPASS_TOKEN" enrol --wallet "$W/wallet" --sector 3)
case_ "pass issue --phone-key" 0 "pass [0-9]+ issued \\(phone\\)" adm pass issue --holder Carol \
	--right pool --right waste,quota=24/year --phone-key pool="$req1" --phone-key waste="$req3" --out "$W/creds"
p5=$(issued)
case_ "pass issue --phone-key: credential exists" 1 "cannot write .*sector-1.cred" adm pass issue --holder Carol \
	--right pool --phone-key pool="$req1" --out "$W/creds"
[ "$(db_count)" = 5 ] || fail "a refused phone issue left a pass"
case_ "citypass-token installs the credential" 0 "valid" "$CITYPASS_TOKEN" install --wallet "$W/wallet" --credential "$W/creds/sector-1.cred"
case_ "citypass-token installs the waste credential" 0 "valid" "$CITYPASS_TOKEN" install --wallet "$W/wallet" --credential "$W/creds/sector-3.cred"
from=$("$CITYPASS_TOKEN" install --wallet "$W/wallet" --credential "$W/creds/sector-1.cred" | sed -n 's/.*valid \([0-9]*\) to \([0-9]*\).*/\1 \2/p')
set -- $from
[ $(($1 % 86400)) = 0 ] && [ $(($2 % 86400)) = 0 ] || fail "credential validity not whole days: $from"
qr=$("$CITYPASS_TOKEN" show-qr --wallet "$W/wallet" --sector 3)
k5_waste=$(adm pass show "$p5" --json | sed -n 's/.*"sector":"waste"[^}]*"list_key":"\([0-9a-f]*\)".*/\1/p')
case_ "a gate reads the phone's QR as pass 5" 0 "list-key $k5_waste" "$PROBE" qr-verify "$W/data/keys/issuer.pub.pem" 3 "$qr"
case_ "the pool QR is not the waste one" 1 "refused" "$PROBE" qr-verify "$W/data/keys/issuer.pub.pem" 1 "$qr"
req2=$("$CITYPASS_TOKEN" enrol --wallet "$W/wallet2" --sector 2)
case_ "pass issue --phone-key FILE (sector from the name)" 0 "sector library: .*sector-2.cred" adm pass issue \
	--anonymous --right library --phone-key "$req2" --out "$W/creds2"
cp "$req2" "$W/sector-9.request.pem"
case_ "pass issue --phone-key: unknown sector number" 2 "no sector number 9" adm pass issue --anonymous \
	--phone-key "$W/sector-9.request.pem" --out "$W/creds9"

# --- statistics and open data ----------------------------------------------------------------
qh=$(( $(date +%s) / 900 * 900 ))
case_ "ingest statistics" 0 "acked 12" "$PROBE" ingest "$W/data" g1 stats 1 12 1 1 1 1 1 "$qh"
case_ "ingest statistics (overlap)" 0 "acked 15" "$PROBE" ingest "$W/data" g1 stats 10 6 1 1 1 1 1 "$qh"
case_ "ingest refusals" 0 "acked 18" "$PROBE" ingest "$W/data" g1 stats 16 3 1 1 1 1 2 "$qh"
case_ "acked" 0 "acked 18" "$PROBE" acked "$W/data" g1 stats
case_ "stats" 0 "pool-n +pool +granted +15" adm stats
case_ "stats --by site" 0 "pool-n +18" adm stats --by site
case_ "stats csv" 0 "^pool,granted,15$" adm stats --by service,outcome --format csv
case_ "stats json" 0 '"outcome":"refused","count":3' adm stats --json
case_ "stats: bad --by" 2 "--by: 'gate' is not" adm stats --by gate
case_ "stats: bad --format" 2 "--format 'xml'" adm stats --format xml
case_ "stats: bad --from" 2 "--from '2026-13-01'" adm stats --from 2026-13-01
case_ "stats: from after to" 2 "--from is after --to" adm stats --from 2026-05-02 --to 2026-05-01
case_ "stats: empty range" 0 "count" adm stats --from 2000-01-01 --to 2000-01-02
# issue 14: a clone refused at a gate is counted under its own reason, not unknown_pass
case_ "ingest clone refusals" 0 "acked 20" "$PROBE" ingest "$W/data" g1 stats 19 2 1 1 1 0 2 "$qh" 50
case_ "acked" 0 "acked 20" "$PROBE" acked "$W/data" g1 stats
case_ "stats --by reason" 0 "^refused,clone_suspected,2$" adm stats --by outcome,reason --format csv
case_ "stats --by reason (table)" 0 "clone_suspected +2" adm stats --by reason
case_ "stats --by reason (json)" 0 '"reason":"clone_suspected","count":2' adm stats --by reason --json
case_ "opendata export" 0 ",pool-n,pool,15,<10$" adm opendata export
case_ "opendata export --out" 0 "" adm opendata export --out "$W/open.csv"
head -1 "$W/open.csv" | grep -qx "hour,site,service,granted,refused" || fail "opendata header"
! grep -q ",[0-9]\$\|,[0-9]," "$W/open.csv" || fail "a count under 10 was published"
case_ "opendata: refuses to overwrite" 1 "cannot create" adm opendata export --out "$W/open.csv"
case_ "opendata: no subcommand" 2 "missing an opendata command" adm opendata
case_ "opendata: bad --to" 2 "--to 'tomorrow'" adm opendata export --to tomorrow
case_ "opendata: --by not allowed" 2 "--by is for stats" adm opendata export --by site

# --- quota report (the overshoot itself is exercised by tests/scenarios/quota.sh) -----------
case_ "quota: no subcommand" 2 "missing a quota command" adm quota
case_ "quota: unknown subcommand" 2 "unknown quota command 'frob'" adm quota frob
case_ "quota report: bad sector" 2 "--sector 'nowhere': no such sector" adm quota report --sector nowhere
case_ "quota report: extra argument" 2 "unexpected argument 'x'" adm quota report x
case_ "quota report: nothing over" 0 "no pass or household past its limit" adm quota report

# --- households (issue 18): list, show, rename, move, remove; search ignoring case/accents ---
# here: dupont holds p1 (revoked), p2 (replaced) and p4 (active, its 3 waste uses carried)
for c in list show rename move remove; do
	case_ "household $c --help" 0 "usage: citypass-admin household" adm household $c --help
done
case_ "household: unknown subcommand" 2 "unknown household command 'merge'" adm household merge a b
case_ "household list" 0 "^[0-9]+	dupont$" adm household list
case_ "household list --name (any case)" 0 "	dupont$" adm household list --name DuP
[ -z "$(adm household list --name zzz)" ] || fail "household list --name zzz listed something"
case_ "household list --json" 0 '"name": "dupont"' adm household list --json
case_ "household list: stray argument" 2 "unexpected argument 'x'" adm household list x
case_ "household show: members" 0 "pass	$p4	active	Bruno Dupont" adm household show dupont
case_ "household show: quota use" 0 "quota	waste	product 7	24 per year: 3 used, 21 left" adm household show dupont
case_ "household show --json" 0 '"used": 3, "left": 21' adm household show dupont --json
case_ "household show: unknown" 1 "household 'x': no such household" adm household show x
case_ "household show: bad name" 2 "household name 'a b'" adm household show "a b"
case_ "household show: no name" 2 "missing the household NAME" adm household show
case_ "household rename" 0 "renamed: dupont -> dupont-durand" adm household rename dupont dupont-durand
case_ "household rename: old name gone" 1 "household 'dupont': no such household" adm household rename dupont x
case_ "household add martin" 0 "household [0-9]+ martin" adm household add martin
case_ "household rename: name taken" 1 "household 'martin' already exists" adm household rename dupont-durand martin
case_ "household rename: bad new name" 2 "new household name 'a;b'" adm household rename martin "a;b"
case_ "household rename: one name" 2 "missing the household NAME and its NEW-NAME" adm household rename martin
case_ "pass issue (Hélène, in martin)" 0 "pass [0-9]+ issued" adm pass issue --holder "Hélène Œuvray" \
	--household martin --right waste,quota=24/year/household,product=7
p7=$(issued)
export_waste "$W/h1"
k7_waste=$(adm pass show "$p7" --json | sed -n 's/.*"sector":"waste"[^}]*"list_key":"\([0-9a-f]*\)".*/\1/p')
case_ "martin's quota unused" 0 "^status 0 profile [0-9]+ used 0 " "$PROBE" lookup "$L" "$k7_waste"
case_ "household move: no pass" 2 "missing the PASS number" adm household move --to martin
case_ "household move: bad pass" 2 "pass 'x': expected a pass number" adm household move x --to martin
case_ "household move: neither --to nor --out" 2 "give --to NAME" adm household move "$p4"
case_ "household move: both --to and --out" 2 "give --to NAME" adm household move "$p4" --to martin --out
case_ "household move: unknown household" 1 "household 'nobody': no such household" adm household move "$p4" --to nobody
case_ "household move: unknown pass" 1 "pass 999: no such pass" adm household move 999 --to martin
case_ "household move: revoked pass" 1 "pass $p1 is revoked" adm household move "$p1" --to martin
case_ "household move: already there" 1 "pass $p7 is already in household 'martin'" adm household move "$p7" --to martin
case_ "household move: in" 0 "published sector 3 list version" adm household move "$p4" --to martin
case_ "household show: moved in" 0 "pass	$p4	active" adm household show martin
# the uses counted this period follow the pass: martin's shared sum now holds p4's 3,
# republished for every member (p7's entry too), both under martin's tag
export_waste "$W/h2"
case_ "member's entry carries the shared sum" 0 "^status 0 profile [0-9]+ used 3 " "$PROBE" lookup "$L" "$k7_waste"
t4=$("$PROBE" lookup "$L" "$k4_waste" | sed -n 's/.* household \([0-9]*\) .*/\1/p')
t7=$("$PROBE" lookup "$L" "$k7_waste" | sed -n 's/.* household \([0-9]*\) .*/\1/p')
[ -n "$t4" ] && [ "$t4" != 0 ] && [ "$t4" = "$t7" ] || fail "household tags after the move: '$t4' '$t7'"
echo "ok - both members listed under one household tag"
case_ "household show: shared use" 0 "24 per year: 3 used, 21 left" adm household show martin
case_ "household remove: live passes" 1 "household 'martin' still holds 2 live passes \\($p4, $p7\\)" adm household remove martin
case_ "household move: out" 0 "pass $p4 moved out of its household" adm household move "$p4" --out
case_ "household move: out twice" 1 "pass $p4 is in no household" adm household move "$p4" --out
export_waste "$W/h3"
case_ "the uses left with the pass" 0 "^status 0 profile [0-9]+ used 0 " "$PROBE" lookup "$L" "$k7_waste"
case_ "the pass keeps its own uses" 0 "^status 0 profile [0-9]+ used 3 period [0-9]+ household 0 " "$PROBE" lookup "$L" "$k4_waste"
# dupont-durand now holds only p1 (revoked) and p2 (replaced): it can go
case_ "household remove: unknown" 1 "household 'nobody': no such household" adm household remove nobody
case_ "household remove: bad name" 2 "household name 'a;b'" adm household remove "a;b"
case_ "household remove" 0 "household [0-9]+ dupont-durand removed" adm household remove dupont-durand
case_ "household remove: gone" 1 "no such household" adm household show dupont-durand
pass_show_p1=$(adm pass show "$p1")
! printf '%s\n' "$pass_show_p1" | grep -q "^household:" || fail "a removed household's revoked pass still names it"
echo "ok - the revoked pass left the removed household"
# search ignores case and accents (the folded holder name kept by the store)
case_ "pass list --holder (lower case)" 0 "Bruno Dupont" adm pass list --holder "bruno dupont"
case_ "pass list --holder (no accents)" 0 "Hélène Œuvray" adm pass list --holder "helene oeuvray"
case_ "pass list --holder (upper case, accents)" 0 "Hélène Œuvray" adm pass list --holder "HÉLÈNE"
[ -z "$(adm pass list --holder "helena")" ] || fail "pass list --holder helena found someone"
echo "ok - pass list --holder helena finds nobody"

echo "admin CLI check passed: $CASES cases"
