#!/bin/sh
# What one stolen gate can make the server store (issue 10, items 5 and 6, and item 8's
# "the server's refusal of statistics claiming another site"). A waste-centre gate's
# bundle drives sync_probe, a TLS client that sends whatever batch it is told, against the
# real citypass-server on a real deployment. Every statistic field outside its domain
# (another site, another gate, an unknown product, an unknown reason, a grant with a
# reason, a quarter hour that is a card UID times 900) and every consumption that is not
# one witnessed use of a known counted right is refused whole, and nothing of it is
# stored; an honest report is acknowledged. The uses a revoked gate reported are
# discarded with `device revoke --discard-usage`.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN PROBE.
. "$(dirname "$0")/lib.sh"
: "${PROBE:?}"

deployment pool,waste
adm site add pool-n --sector pool >/dev/null
adm site add waste-a --sector waste >/dev/null
start_server
enrol waste-9 waste-a waste-9 # the stolen gate: site 2, gate 1, sector 2
db() { sql "$CITYPASS_DATA/citypass.db" "$1"; }
alice=$(adm pass issue --holder Alice --right waste,quota=2/year 2>/dev/null |
	sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
[ -n "$alice" ] || fail "pass issue"
key=$(db "select lower(hex(listkey)) from pass_ids where pass = $alice and sector = 2")
[ ${#key} = 16 ] || fail "no list key for the pass"
qh=$(($(date +%s) / 900 * 900))
year=$(date +%Y)
seq=1
# probe ARGS... : one forged batch from the stolen bundle; prints acked N / closed: WHY
probe() {
	timeout 30 "$PROBE" --port "$PORT" --bundle "$T/bundle-waste-9" --first-seq "$seq" "$@"
}
stats() { db "select count(*) from stats"; }
uses() { db "select count(*) from consumption"; }

# refused ARGS... -- PATTERN : the batch is refused naming PATTERN, nothing stored
refused() {
	_pat=$1
	shift
	_s=$(stats) _u=$(uses)
	_out=$(probe "$@")
	printf '%s\n' "$_out" | grep -q "^closed: .*$_pat" ||
		fail "forged batch ($*) not refused for /$_pat/: $_out"
	[ "$(stats)" = "$_s" ] && [ "$(uses)" = "$_u" ] || fail "forged batch ($*) was stored"
	echo "ok - refused: $_pat"
}

uid=1310847006344438 # 04A1B2C3D4E5F6, a 7-byte card UID
# statistics: site 2, gate 1, sector 2; product 1 exists (the waste right), outcome 1/2
refused "site 1, the device is at site 2" --forge-stat "1,1,2,1,1,0,$qh"
refused "gate 7, the device is gate 1" --forge-stat "2,7,2,1,1,0,$qh"
refused "sector 1, the device serves 2" --forge-stat "2,1,1,1,1,0,$qh"
refused "product 2712847316 is not a product of sector 2" --forge-stat "2,1,2,2712847316,1,0,$qh"
refused "reason 3285509622 is not a known reason" --forge-stat "2,1,2,1,2,3285509622,$qh"
refused "outcome granted with reason 3" --forge-stat "2,1,2,1,1,3,$qh"
refused "a grant without a product" --forge-stat "2,1,2,0,1,0,$qh"
refused "quarter hour $((uid * 900)) is not a time" --forge-stat "2,1,2,1,1,0,$((uid * 900))"
refused "quarter hour 900 is not a time" --forge-stat "2,1,2,1,2,2,900"
# consumption: one witnessed use of a known counted right, in a period that has begun
refused "count 4000000000" --forge-use "2,$key,1,4000000000,$year"
refused "count 2 " --forge-use "2,$key,1,2,$year"
refused "no pass of sector 2 with a counted right" --forge-use "2,04a1b2c3d4e5f600,1,1,$year"
refused "product 9, the pass's counted right is product 1" --forge-use "2,$key,9,1,$year"
refused "period $((year + 5)) is after the current one" --forge-use "2,$key,1,1,$((year + 5))"
refused "sector 1, the device serves 2" --forge-use "1,$key,1,1,$year"

# what an honest gate reports is stored
out=$(probe --forge-stat "2,1,2,1,1,0,$qh" --forge-stat "2,1,2,0,2,2,$qh")
expect "$out" "^acked $((seq + 1))$" "an honest statistics batch is acknowledged"
[ "$(stats)" = 2 ] || fail "the honest statistics were not stored ($(stats) rows)"
seq=3
out=$(probe --forge-use "2,$key,1,1,$year")
expect "$out" "^acked 3$" "one witnessed use is acknowledged"
[ "$(uses)" = 1 ] || fail "the use was not stored"
[ "$(db "select device from consumption")" = waste-9 ] || fail "the use is not attributed to its gate"

# the gate is found stolen: revoked, and what it reported no longer counts
out=$(adm device revoke waste-9 --discard-usage 2>&1) || fail "device revoke --discard-usage: $out"
expect "$out" "1 reported use\\(s\\) discarded" "a revoked gate's reported uses are discarded"
[ "$(uses)" = 0 ] || fail "the revoked gate's uses still count"
out=$(probe --forge-use "2,$key,1,1,$year" 2>&1 || true)
[ "$(uses)" = 0 ] || fail "a revoked gate could still report"
echo "ok - a revoked gate is refused"
echo "forged uploads check passed"
