#!/bin/sh
# A phone at the gate, through the real libnfc driver: citypass-token plays the HCE phone
# behind the bench's external-target socket, cardlib's reader gets the pass's identifier for
# the gate's sector only; a sector the phone does not hold is refused; and the QR route:
# citypass-token's code read by the bench's scanner port is accepted once, then refused as
# replayed. The issuer key is made by openssl, independently of cardlib.
. "$(dirname "$0")/lib.sh"
: "${CITYPASS_TOKEN:?}" "${PHONE_GATE:?}"
start_bench --reader pool
W="$BENCH_DIR/wallet"
openssl ecparam -name prime256v1 -genkey -noout -out "$BENCH_DIR/issuer.pem"
openssl pkey -in "$BENCH_DIR/issuer.pem" -pubout -out "$BENCH_DIR/issuer.pub.pem"
now=$(date +%s)
from=$((now / 86400 * 86400 - 86400))
until=$((from + 30 * 86400))
for sector in 1 2; do
	req=$("$CITYPASS_TOKEN" enrol --wallet "$W" --sector $sector)
	"$CITYPASS_TOKEN" issue --issuer-key "$BENCH_DIR/issuer.pem" --request "$req" \
		--id "0000000000000000000000000000000$sector" --sector $sector \
		--from $from --until $until --out "$BENCH_DIR/cred-$sector"
	"$CITYPASS_TOKEN" install --wallet "$W" --credential "$BENCH_DIR/cred-$sector"
done

"$CITYPASS_TOKEN" hce --wallet "$W" --socket "$BENCH_DIR/phone.sock" &
PEER_PIDS=$!
i=0
until [ -S "$BENCH_DIR/phone.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "citypass-token hce did not start"; sleep 0.05
done
ctl place pool external "$BENCH_DIR/phone.sock"
out=$("$PHONE_GATE" nfc "$(reader pool)" "$BENCH_DIR/issuer.pub.pem" 1) || fail "tap: $out"
[ "$out" = "id 00000000000000000000000000000001" ] || fail "sector 1 tap gave: $out"
out=$("$PHONE_GATE" nfc "$(reader pool)" "$BENCH_DIR/issuer.pub.pem" 2) || fail "tap: $out"
[ "$out" = "id 00000000000000000000000000000002" ] || fail "sector 2 tap gave: $out"
if out=$("$PHONE_GATE" nfc "$(reader pool)" "$BENCH_DIR/issuer.pub.pem" 3); then
	fail "a sector the phone does not hold was accepted: $out"
fi
expect_in "$out" 'refused: the phone credential is for another service' "sector 3 refused"
ctl remove pool

# QR: the scanner carries the code as one line; the second scan of the same code is a replay
qr=$("$CITYPASS_TOKEN" show-qr --wallet "$W" --sector 1)
"$PHONE_GATE" qr "$BENCH_DIR/qr/pool" "$BENCH_DIR/issuer.pub.pem" 1 2 >"$BENCH_DIR/qr.out" &
gate=$!
sleep 0.3
ctl qr pool "$qr"
ctl qr pool "$qr"
wait $gate || fail "the gate did not read two scans: $(cat "$BENCH_DIR/qr.out")"
[ "$(sed -n 1p "$BENCH_DIR/qr.out")" = "id 00000000000000000000000000000001" ] ||
	fail "first scan: $(cat "$BENCH_DIR/qr.out")"
[ "$(sed -n 2p "$BENCH_DIR/qr.out")" = "refused: the QR code was already used" ] ||
	fail "second scan: $(cat "$BENCH_DIR/qr.out")"
echo "phone check passed"
