#!/bin/sh
# List-signing key rotation through real gates (DESIGN.md §3, issue 11; TUF's root
# rotation): `keys rotate --list-key` announces a new key under the old one; a connected gate
# follows the statement over the sync link and installs the lists the new key signs; a gate
# offline through two rotations follows both when it comes back, from its enrolment bundle's
# key; a restart offline keeps what was followed; a chain file tampered with on disk is not
# believed; and once a gate holds a list under the newest key, a list signed by the old key
# (stolen, put back on the server) is refused. The statements are checked with openssl.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1 pool-2
start_server
enrol pool-1 pool-n pool-1
enrol pool-2 pool-n pool-2
start_controller pool-1
a=$(issue_card "$T/a.card" 04A1A2A3A4A5A6 pool)
b=$(issue_card "$T/b.card" 04B1B2B3B4B5B6 pool)
c=$(issue_card "$T/c.card" 04C1C2C3C4C5C6 pool)
wait_list pool-1 pool
out=$(tap pool-1 desfire "$T/a.card")
expect "$out" "relay=open led=green" "card A before any rotation"
K=$CITYPASS_DATA/keys
cp "$K/list.pub.pem" "$T/k0.pub.pem"

# --- rotation 1, pool-1 connected, pool-2 not running --------------------------------
out=$(adm keys rotate --list-key 2>&1) || fail "keys rotate --list-key: $out"
expect "$out" "replaces .* \\(statement 1\\)" "the rotation says which key replaces which"
# an independent verifier: both signatures of the statement, with openssl alone
openssl dgst -sha256 -verify "$T/k0.pub.pem" -signature "$K/list-chain/1.old.sig" \
	"$K/list-chain/1.txt" >/dev/null || fail "statement 1 is not signed by the old key"
openssl dgst -sha256 -verify "$K/list.pub.pem" -signature "$K/list-chain/1.new.sig" \
	"$K/list-chain/1.txt" >/dev/null || fail "statement 1 is not signed by the new key"
cmp -s "$T/k0.pub.pem" "$K/list.pub.pem" && fail "list.pub.pem did not change"
echo "ok - statement 1 verifies with openssl under the old and the new key"
wait_for 15 grep -q "list key: 1 rotation(s) followed" "$T/ctl-pool-1.log" ||
	fail "pool-1 did not follow the rotation: $(tail -5 "$T/ctl-pool-1.log")"
[ -s "$T/state-pool-1/list-keys.chain" ] || fail "pool-1 did not keep the chain"
adm pass revoke "$a" --reason stolen >/dev/null 2>&1 || fail "revoke A"
wait_list pool-1 pool
out=$(tap pool-1 desfire "$T/a.card")
expect "$out" "led=red" "card A revoked, under a list signed by the new key"
# the list the gate holds is the new key's, checked with openssl in the gate's store
v=$(list_version pool-1)
openssl dgst -sha256 -verify "$K/list.pub.pem" -signature "$T/state-pool-1/lists/v$v.manifest.sig" \
	"$T/state-pool-1/lists/v$v.manifest" >/dev/null || fail "pool-1's list v$v is not the new key's"
echo "ok - pool-1 follows rotation 1 and holds a list signed by the new key"

# --- rotation 2; keep the key it replaces, as a thief would --------------------------
cp "$K/list.key" "$T/stolen-k1.key"
out=$(adm keys rotate --list-key 2>&1) || fail "second rotation: $out"
expect "$out" "\\(statement 2\\)" "the second rotation is statement 2"
wait_for 15 grep -q "list key: 1 rotation(s) followed" "$T/ctl-pool-1.log" &&
	wait_for 15 sh -c "[ \$(grep -c 'list key: 1 rotation(s) followed' '$T/ctl-pool-1.log') -ge 2 ]" ||
	fail "pool-1 did not follow rotation 2"
wait_list pool-1 pool

# --- pool-2 was away for both: it follows them from its bundle's key ----------------
start_controller pool-2
wait_for 15 grep -q "list key: 2 rotation(s) followed" "$T/ctl-pool-2.log" ||
	fail "pool-2 did not follow two rotations: $(tail -5 "$T/ctl-pool-2.log")"
wait_list pool-2 pool
out=$(tap pool-2 desfire "$T/b.card")
expect "$out" "relay=open led=green" "pool-2, back after two rotations, card B"
out=$(tap pool-2 desfire "$T/a.card")
expect "$out" "led=red" "pool-2 knows card A is revoked"
echo "ok - a gate offline through two rotations follows both from its bundle's key"

# --- a stolen old key, put back on the server, signs the next list: refused ----------
cp "$K/list.key" "$T/k2.key"
cp "$T/stolen-k1.key" "$K/list.key"
held=$(list_version pool-1)
adm pass revoke "$b" --reason lost >/dev/null 2>&1 || fail "revoke B"
wait_for 15 grep -q "refused: list signed with a key id we do not hold\|refused: .*key" "$T/ctl-pool-1.log" ||
	fail "pool-1 did not refuse a list signed by the retired key: $(tail -5 "$T/ctl-pool-1.log")"
[ "$(list_version pool-1)" = "$held" ] || fail "pool-1 installed a list signed by the retired key"
out=$(tap pool-1 desfire "$T/b.card")
expect "$out" "relay=open led=green" "the retired key's list was not installed (B still valid)"
cp "$T/k2.key" "$K/list.key"
adm list publish --sector pool >/dev/null 2>&1 || fail "publish under k2"
wait_list pool-1 pool
out=$(tap pool-1 desfire "$T/b.card")
expect "$out" "led=red" "under the current key again, B's revocation arrives"
echo "ok - a list signed by a key rotated away is refused"

# --- restart offline: the chain followed is kept; a tampered chain file is not believed
stop_server
stop_controller pool-1
start_controller pool-1
out=$(tap pool-1 desfire "$T/c.card")
expect "$out" "relay=open led=green" "pool-1 restarted offline decides from its list (new key)"
stop_controller pool-2
printf 'not a chain' >"$T/state-pool-2/list-keys.chain"
start_controller pool-2
wait_for 10 grep -q "list-keys.chain: .*moved to" "$T/ctl-pool-2.log" ||
	fail "a tampered chain file was not set aside: $(tail -5 "$T/ctl-pool-2.log")"
out=$(tap pool-2 desfire "$T/c.card")
expect "$out" "led=red" "offline, without its chain, pool-2 cannot trust its list"
start_server
wait_for 15 sh -c "[ \$(grep -c 'list key: 2 rotation(s) followed' '$T/ctl-pool-2.log') -ge 2 ]" ||
	fail "pool-2 did not follow the chain again from the server"
wait_list pool-2 pool
out=$(tap pool-2 desfire "$T/c.card")
expect "$out" "relay=open led=green" "pool-2 recovers its chain and list from the server"
echo "list key rotation check passed"
