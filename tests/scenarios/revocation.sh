#!/bin/sh
# Scenario 1 — revocation. Three controllers of the pool sector online, a fourth stopped.
# From the `pass revoke` command, each online gate must hold the new list version within
# 2 s (polled every 50 ms against a deadline; the time is printed), and refuse the card
# ("Carte révoquée"). The stopped gate, restarted, syncs and refuses too.
# Server side: pass show says revoked, the exported list carries status 1 for the pass,
# the list verifies with openssl-compatible citypass-list, and the statistics count the
# refusals. Env: ADMIN SERVER HIL CONTROLLER TOKEN PROBE LISTTOOL.
. "$(dirname "$0")/common.sh"
: "${PROBE:?}" "${LISTTOOL:?}"
LIMIT_MS=${REVOCATION_LIMIT_MS:-2000}

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1 pool-2 pool-3 pool-4
start_server
for g in 1 2 3 4; do enrol "pool-g$g" pool-n "pool-$g"; done
for g in 1 2 3 4; do start_controller "pool-$g"; done
ann=$(issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool)
[ -n "$ann" ] || fail "pass not issued"
for g in 1 2 3 4; do wait_list "pool-$g" pool; done
tap_expect pool-1 "relay=open led=green" "before revocation: granted at pool-1" desfire "$T/ann.card"
tap_expect pool-4 "relay=open led=green" "before revocation: granted at pool-4" desfire "$T/ann.card"

# pool-4 goes offline for the revocation
stop_controller pool-4
old=$(list_version pool-1)
t0=$(ms)
adm pass revoke "$ann" --reason lost >/dev/null 2>&1 || fail "pass revoke"
want=$(server_version pool)
[ "$want" -gt "$old" ] || fail "revoke published no new version (v$want, held v$old)"
pending="pool-1 pool-2 pool-3"
deadline=$((t0 + LIMIT_MS + 3000)) # keep polling past the limit to report the real time
while [ -n "$pending" ] && [ "$(ms)" -lt $deadline ]; do
	left=
	for r in $pending; do
		if [ "$(list_version "$r")" = "$want" ]; then
			eval "got_$(echo "$r" | tr - _)=$(($(ms) - t0))"
		else
			left="$left $r"
		fi
	done
	pending=$left
	[ -n "$pending" ] && sleep 0.05
done
[ -z "$pending" ] || fail "online gates without list v$want after $((LIMIT_MS + 3000)) ms:$pending"
for r in pool-1 pool-2 pool-3; do
	d=$(eval "echo \$got_$(echo "$r" | tr - _)")
	[ "$d" -le "$LIMIT_MS" ] || fail "$r held list v$want only $d ms after the revoke (limit $LIMIT_MS ms)"
	echo "ok - $r holds list v$want $d ms after the revoke command (<= $LIMIT_MS ms)"
done
[ "$(list_version pool-4)" = "$old" ] || fail "the stopped pool-4 changed its list"
for r in pool-1 pool-2 pool-3; do
	tap_expect "$r" "relay=closed led=red display=Carte révoquée" "revoked card refused at $r" desfire "$T/ann.card"
done

# the offline gate at its next sync
start_controller pool-4
wait_list pool-4 pool
tap_expect pool-4 "relay=closed led=red display=Carte révoquée" "revoked card refused at pool-4 after its restart and sync" desfire "$T/ann.card"

# server records
adm pass show "$ann" | grep -q "^state: revoked - lost" || fail "pass show: $(adm pass show "$ann")"
echo "ok - pass show: revoked - lost"
f=$(list_file pool "$T/ex")
case $f in *"/v$want.manifest") ;; *) fail "exported newest list $f, expected v$want" ;; esac
"$LISTTOOL" verify "$f" --pub "$(dirname "$f")/list.pub.pem" --sig "$f.sig" --sector 1 >/dev/null 2>&1 ||
	fail "the published list does not verify"
"$PROBE" lookup "$f" "$(list_key "$ann" pool)" | grep -q "^status 1 " ||
	fail "list v$want: $("$PROBE" lookup "$f" "$(list_key "$ann" pool)")"
echo "ok - published list v$want verifies and carries the pass with status revoked"
refused() { [ "$(server_count refused)" -ge 4 ]; }
wait_for 20 refused || fail "server counts $(server_count refused) refusals, expected 4"
[ "$(server_count granted)" = 2 ] || fail "server counts $(server_count granted) grants, expected 2"
echo "ok - server statistics: 2 granted, 4 refused"
echo "scenario revocation passed"
