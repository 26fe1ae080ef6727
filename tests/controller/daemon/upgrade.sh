#!/bin/sh
# A gate holding today's format upgrades over the sync link, without a visit
# (docs/list-format.md, "Upgrading a gate"): the real citypass-controller is started on a
# format 1 store (v<N>.cpl + v<N>.sig + CURRENT "citypass list store 1", the files gates kept
# before format 2), decides from it with the server down, then syncs: the server sends a
# format 2 snapshot of the version it holds, the gate installs it, removes the format 1
# files, and takes deltas from then on.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN LISTTOOL.
. "$(dirname "$0")/lib.sh"
: "${LISTTOOL:?}"

deployment pool --value-sector pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
bob=$(issue_card "$T/bob.card" 04B1B2B3B4B5B6 pool)
adm pass revoke "$bob" --reason lost >/dev/null 2>&1 || fail "revoke bob"
v=$(server_version pool)

# the gate's store as the previous software left it: format 1, the same passes, signed
# with the deployment's list key
adm list export --sector pool --out "$T/exp" >/dev/null 2>&1 || fail "list export"
L="$T/state-pool-1/lists"
mkdir -p "$L" && chmod 700 "$T/state-pool-1"
"$LISTTOOL" to-format1 "$T/exp/sector-1-v$v/v$v.manifest" --key "$CITYPASS_DATA/keys/list.key" \
	--out "$L/v$v.cpl" >/dev/null || fail "to-format1"
mv "$L/v$v.cpl.sig" "$L/v$v.sig"
printf 'citypass list store 1\nversion %s\nsha256 %s\n' "$v" \
	"$(sha256sum "$L/v$v.cpl" | cut -d' ' -f1)" >"$L/CURRENT"

# offline: the new controller decides from the format 1 list
stop_server
start_controller pool-1
grep -q "version $v (format 1" "$T/ctl-pool-1.log" || fail "not opened as format 1: $(cat "$T/ctl-pool-1.log")"
expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green" "format 1, offline: ann admitted"
expect "$(tap pool-1 desfire "$T/bob.card")" "display=Carte révoquée" "format 1, offline: bob refused as revoked"

# online: a format 2 snapshot of the same version replaces it
start_server
format2() { grep -q "^citypass list store 2" "$L/CURRENT"; }
wait_for 20 format2 || fail "the gate did not take format 2: $(cat "$L/CURRENT"); $(tail -n 5 "$T/ctl-pool-1.log")"
[ "$(list_version pool-1)" = "$v" ] || fail "format 2 store holds v$(list_version pool-1), expected v$v"
[ ! -e "$L/v$v.cpl" ] || fail "the format 1 file is still there"
grep -q "a format 2 snapshot follows" "$T/server.log" || fail "the server did not see format 1 in the Hello"
(cd "$L" && openssl dgst -sha256 -verify "$T/bundle-pool-1/list.pub.pem" -signature "v$v.manifest.sig" \
	"v$v.manifest" >/dev/null && sha256sum -c --quiet "v$v.manifest") || fail "the new store does not verify"
echo "ok - upgraded to format 2 over the sync link (v$v)"
expect "$(tap pool-1 desfire "$T/ann.card")" "relay=open led=green" "format 2: ann admitted"

# and deltas from then on
ann=1
adm pass revoke "$ann" --reason stolen >/dev/null 2>&1 || fail "revoke ann"
wait_list pool-1 pool
# the new CURRENT is on disk a moment before the controller logs the install
wait_for 10 grep -q "list delta installed" "$T/ctl-pool-1.log" || fail "no delta installed after the upgrade"
expect "$(tap pool-1 desfire "$T/ann.card")" "display=Carte révoquée" "the revocation arrived as a delta"
echo "controller upgrade check passed"
