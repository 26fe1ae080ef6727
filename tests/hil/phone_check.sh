#!/bin/sh
# A phone at the gate, through the real libnfc driver: citypass-token plays the HCE phone
# behind the bench's external-target socket, cardlib's reader (a gate of the phone's
# deployment: its gate certificate signed by the device CA the wallet holds) gets the
# pass's identifier for the gate's sector only; a sector the phone does not hold is
# refused; and the QR route: citypass-token's code read by the bench's scanner port is
# accepted once, then refused as replayed. The issuer key, the device CA and the gates'
# keys are made by openssl, independently of cardlib. (Rogue readers: phone_rogue_check.sh.)
. "$(dirname "$0")/lib.sh"
: "${CITYPASS_TOKEN:?}" "${PHONE_GATE:?}"
start_bench --reader pool
W="$BENCH_DIR/wallet"
openssl ecparam -name prime256v1 -genkey -noout -out "$BENCH_DIR/issuer.pem"
openssl pkey -in "$BENCH_DIR/issuer.pem" -pubout -out "$BENCH_DIR/issuer.pub.pem"
openssl ecparam -name prime256v1 -genkey -noout -out "$BENCH_DIR/ca.key"
openssl req -new -x509 -key "$BENCH_DIR/ca.key" -subj "/CN=citypass device CA/O=citypass" \
	-days 30 -out "$BENCH_DIR/ca.crt" 2>/dev/null
now=$(date +%s)
from=$((now / 86400 * 86400 - 86400))
until=$((from + 30 * 86400))
for sector in 1 2; do
	req=$("$CITYPASS_TOKEN" enrol --wallet "$W" --sector $sector)
	"$CITYPASS_TOKEN" issue --issuer-key "$BENCH_DIR/issuer.pem" --request "$req" \
		--id "0000000000000000000000000000000$sector" --sector $sector \
		--from $from --until $until --out "$BENCH_DIR/cred-$sector"
	"$CITYPASS_TOKEN" install --wallet "$W" --credential "$BENCH_DIR/cred-$sector" \
		--gate-ca "$BENCH_DIR/ca.crt"
	# a gate of that sector: its device key, and the CA's gate certificate for it
	openssl ecparam -name prime256v1 -genkey -noout -out "$BENCH_DIR/gate-$sector.key"
	"$CITYPASS_TOKEN" gate-cert --ca-key "$BENCH_DIR/ca.key" --gate-key "$BENCH_DIR/gate-$sector.key" \
		--sector $sector --device-id "gate-$sector" --from $from --until $until \
		--out "$BENCH_DIR/gate-$sector.cert"
done
openssl ecparam -name prime256v1 -genkey -noout -out "$BENCH_DIR/gate-3.key"
"$CITYPASS_TOKEN" gate-cert --ca-key "$BENCH_DIR/ca.key" --gate-key "$BENCH_DIR/gate-3.key" \
	--sector 3 --device-id gate-3 --from $from --until $until --out "$BENCH_DIR/gate-3.cert"
gate() { echo "$BENCH_DIR/gate-$1.cert $BENCH_DIR/gate-$1.key"; }

"$CITYPASS_TOKEN" hce --wallet "$W" --socket "$BENCH_DIR/phone.sock" &
PEER_PIDS=$!
i=0
until [ -S "$BENCH_DIR/phone.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "citypass-token hce did not start"; sleep 0.05
done
ctl place pool external "$BENCH_DIR/phone.sock"
# shellcheck disable=SC2046
out=$("$PHONE_GATE" nfc "$(reader pool)" "$BENCH_DIR/issuer.pub.pem" $(gate 1)) || fail "tap: $out"
[ "$out" = "id 00000000000000000000000000000001" ] || fail "sector 1 tap gave: $out"
# shellcheck disable=SC2046
out=$("$PHONE_GATE" nfc "$(reader pool)" "$BENCH_DIR/issuer.pub.pem" $(gate 2)) || fail "tap: $out"
[ "$out" = "id 00000000000000000000000000000002" ] || fail "sector 2 tap gave: $out"
# shellcheck disable=SC2046
if out=$("$PHONE_GATE" nfc "$(reader pool)" "$BENCH_DIR/issuer.pub.pem" $(gate 3)); then
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
