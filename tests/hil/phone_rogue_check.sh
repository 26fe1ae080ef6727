#!/bin/sh
# Rogue readers at a phone (issue 17, docs/phone-tokens.md s.3 and s.5), through the real
# libnfc driver and citypass-token hce:
#  1. a reader without any device key (apdu_client: plain libnfc, no cardlib) selects the
#     phone twice, sends the challenges it can make (a real gate's certificate, copied, with
#     a signature of its own; the format-1 challenge): it gets a fresh random nonce per
#     selection, a fresh random UID per placement, and bare status words, the same for
#     every phone — nothing stable, nothing of the credential;
#  2. a reader holding a gate key certified by another deployment's CA (cardlib's reader,
#     a well-formed exchange) is refused twice with a bare 69 82;
#  3. a real gate of the deployment still gets the identifier;
#  4. openssl alone checks the real gate's exchange as the phone saw it (hce --trace): the
#     CA's signature on the gate certificate, the gate's signature over the challenge, and
#     the phone's proof — cardlib is not the only judge of its own crypto.
. "$(dirname "$0")/lib.sh"
: "${CITYPASS_TOKEN:?}" "${PHONE_GATE:?}" "${APDU_CLIENT:?}"
start_bench --reader pool
D=$BENCH_DIR
W="$D/wallet"
ID=0123456789abcdef0123456789abcdef
ossl_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1"; }
ossl_key "$D/issuer.pem"
openssl pkey -in "$D/issuer.pem" -pubout -out "$D/issuer.pub.pem"
for ca in ca other-ca; do
	ossl_key "$D/$ca.key"
	openssl req -new -x509 -key "$D/$ca.key" -subj "/CN=$ca/O=citypass" -days 30 \
		-out "$D/$ca.crt" 2>/dev/null
done
now=$(date +%s)
from=$((now / 86400 * 86400 - 86400))
until=$((from + 30 * 86400))
req=$("$CITYPASS_TOKEN" enrol --wallet "$W" --sector 1)
"$CITYPASS_TOKEN" issue --issuer-key "$D/issuer.pem" --request "$req" --id $ID --sector 1 \
	--from $from --until $until --out "$D/cred"
"$CITYPASS_TOKEN" install --wallet "$W" --credential "$D/cred" --gate-ca "$D/ca.crt" >/dev/null
for g in gate rogue; do
	ossl_key "$D/$g.key"
	ca=ca
	[ $g = rogue ] && ca=other-ca
	"$CITYPASS_TOKEN" gate-cert --ca-key "$D/$ca.key" --gate-key "$D/$g.key" --sector 1 \
		--device-id "$g-1" --from $from --until $until --out "$D/$g.cert"
done

"$CITYPASS_TOKEN" hce --wallet "$W" --socket "$D/phone.sock" --trace "$D/trace" &
PEER_PIDS=$!
i=0
until [ -S "$D/phone.sock" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "citypass-token hce did not start"; sleep 0.05
done

hex() { xxd -p "$1" | tr -d '\n'; }
cred_hex=$(hex "$D/cred")
# the phone key's X coordinate (the credential carries the compressed point)
point_hex=$(openssl pkey -pubin -in "$req" -outform DER | tail -c 64 | head -c 32 | xxd -p | tr -d '\n')

# 1. no device key: two selections, each in its own placement of the phone
cert_hex=$(hex "$D/gate.cert")
cl=$(wc -c <"$D/gate.cert")
sig=3006020101020101 # a canonical DER signature of nobody's
body="$(printf '%032x' 7)$(printf '%016x' "$now")$(printf '%02x' "$cl")$cert_hex"08$sig
ch="808802""00$(printf '%02x' $((${#body} / 2)))${body}00"
ch_v1=8088010022"0001$(printf '%064x' 9)"00
select=00a4040009f0434954595041535300 # F0 'CITYPASS', Le
for round in 1 2; do
	ctl place pool external "$D/phone.sock" >/dev/null
	"$APDU_CLIENT" "$(reader pool)" "$select" "$ch_v1" "$ch" "$ch" >"$D/rogue$round" ||
		fail "rogue reader $round: $(cat "$D/rogue$round")"
	ctl remove pool >/dev/null
done
for round in 1 2; do
	out=$(cat "$D/rogue$round")
	expect_in "$out" '^resp [0-9a-f]{32}9000 ' "round $round: SELECT answers a 16-byte nonce"
	[ "$(sed -n 3p "$D/rogue$round" | cut -d' ' -f2)" = 6b00 ] ||
		fail "round $round: the format-1 challenge got: $out"
	[ "$(sed -n 4p "$D/rogue$round" | cut -d' ' -f2)" = 6982 ] ||
		fail "round $round: a challenge without the gate's key got: $out"
	[ "$(sed -n 5p "$D/rogue$round" | cut -d' ' -f2)" = 6985 ] ||
		fail "round $round: a second challenge on the spent nonce got: $out"
	for secret in "$ID" "$cred_hex" "$point_hex"; do
		expect_not_in "$out" "$(printf '%s' "$secret" | cut -c1-16)" \
			"round $round: the rogue reader saw part of the credential"
	done
done
# nothing stable across the two selections: what differs is fresh, the rest is the same
# for every citypass phone (status words)
u1=$(sed -n 1p "$D/rogue1") u2=$(sed -n 1p "$D/rogue2")
n1=$(sed -n 2p "$D/rogue1" | cut -c6-37) n2=$(sed -n 2p "$D/rogue2" | cut -c6-37)
[ "$u1" != "$u2" ] || fail "the same UID in two placements: $u1"
[ "$n1" != "$n2" ] || fail "the same SELECT nonce in two selections: $n1"
strip() { sed -e 1d -e 's/ us=.*//' -e 's/^resp [0-9a-f]\{32\}9000$/resp NONCE9000/' "$1"; }
[ "$(strip "$D/rogue1")" = "$(strip "$D/rogue2")" ] ||
	fail "the two selections differ beyond the fresh values:
$(strip "$D/rogue1")
---
$(strip "$D/rogue2")"
echo "ok - a reader without a key got fresh nonces and bare status words, nothing stable"

# 2. a gate key under another deployment's CA: a well-formed exchange, refused, twice
for round in 1 2; do
	ctl place pool external "$D/phone.sock" >/dev/null
	if out=$("$PHONE_GATE" nfc "$(reader pool)" "$D/issuer.pub.pem" "$D/rogue.cert" "$D/rogue.key"); then
		fail "another deployment's gate got: $out"
	fi
	ctl remove pool >/dev/null
	expect_in "$out" '^refused: the phone did not accept this reader as a gate' \
		"another deployment's gate refused ($round)"
done
# as the phone answered them (its trace): a bare 69 82, after a SELECT nonce
[ "$(grep -c '^< 6982$' "$D/trace")" -eq 4 ] ||
	fail "the phone answered the rogue challenges otherwise: $(grep '^<' "$D/trace")"
expect_not_in "$(cat "$D/trace")" "$(printf '%s' "$cred_hex" | cut -c1-16)" \
	"the credential left the phone before a real gate asked"
echo "ok - a gate certified by another deployment's CA got 69 82 and nothing else, twice"

# 3. a real gate of the deployment
ctl place pool external "$D/phone.sock" >/dev/null
out=$("$PHONE_GATE" nfc "$(reader pool)" "$D/issuer.pub.pem" "$D/gate.cert" "$D/gate.key") ||
	fail "the real gate was refused: $out"
ctl remove pool >/dev/null
[ "$out" = "id $ID" ] || fail "the real gate got: $out"
echo "ok - a real gate still admits the phone"

# 4. openssl checks the real gate's exchange (the trace's last four lines)
tail -n 4 "$D/trace" >"$D/tap"
[ "$(sed -n 1p "$D/tap" | cut -c1-12)" = "> 00a4040009" ] || fail "trace: $(cat "$D/tap")"
nonce_p=$(sed -n 2p "$D/tap" | cut -c3-34)
c=$(sed -n 3p "$D/tap" | cut -c3-)
a=$(sed -n 4p "$D/tap" | cut -c3-)
bin() { printf '%s' "$1" | xxd -r -p; }
nonce_r=$(printf '%s' "$c" | cut -c11-42)
t=$(printf '%s' "$c" | cut -c43-58)
cl=$((0x$(printf '%s' "$c" | cut -c59-60)))
cert=$(printf '%s' "$c" | cut -c61-$((60 + 2 * cl)))
sl=$((0x$(printf '%s' "$c" | cut -c$((61 + 2 * cl))-$((62 + 2 * cl)))))
gsig=$(printf '%s' "$c" | cut -c$((63 + 2 * cl))-$((62 + 2 * cl + 2 * sl)))
[ "$cert" = "$cert_hex" ] || fail "the challenge does not carry the gate certificate"
[ "$t" = "$(printf '%016x' $((0x$t)))" ] && [ $((0x$t - now)) -lt 600 ] ||
	fail "the challenge's time $t is not the gate's clock"
sector=$(printf '%s' "$cert" | cut -c3-6)
gate_id=$(printf '%s' "$cert" | cut -c7-22)
[ "$gate_id" = "$(printf 'gate-1' | sha256sum | cut -c1-16)" ] ||
	fail "gate id $gate_id is not SHA-256(device id)[0..8]"
# the CA's signature on the certificate, its key id, the gate's point
openssl x509 -in "$D/ca.crt" -pubkey -noout >"$D/ca.pub"
{ printf 'CITYPASS-GATE-CERT-V1'; bin "$(printf '%s' "$cert" | cut -c1-136)"; } >"$D/cmsg"
bin "$(printf '%s' "$cert" | cut -c139-)" >"$D/csig"
openssl dgst -sha256 -verify "$D/ca.pub" -signature "$D/csig" "$D/cmsg" | grep -qx 'Verified OK' ||
	fail "openssl does not verify the CA's signature on the gate certificate"
[ "$(printf '%s' "$cert" | cut -c121-136)" = "$(openssl pkey -pubin -in "$D/ca.pub" -outform DER | sha256sum | cut -c1-16)" ] ||
	fail "the certificate's CA key id is not openssl's SPKI hash"
[ "$(printf '%s' "$cert" | cut -c23-88)" = "$(openssl ec -in "$D/gate.key" -pubout -conv_form compressed -outform DER 2>/dev/null | tail -c 33 | xxd -p | tr -d '\n')" ] ||
	fail "the certificate does not name the gate's key"
# the gate's signature over its challenge
openssl pkey -in "$D/gate.key" -pubout -out "$D/gate.pub"
{
	printf 'CITYPASS-GATE-V1'
	bin "$nonce_p$nonce_r$t$sector$gate_id"
	bin "$cert" | openssl dgst -sha256 -binary
} >"$D/gmsg"
bin "$gsig" >"$D/gsig"
openssl dgst -sha256 -verify "$D/gate.pub" -signature "$D/gsig" "$D/gmsg" | grep -qx 'Verified OK' ||
	fail "openssl does not verify the gate's signature over its challenge"
cp "$D/gmsg" "$D/gbad"
printf '\001' | dd of="$D/gbad" bs=1 seek=20 conv=notrunc 2>/dev/null
if openssl dgst -sha256 -verify "$D/gate.pub" -signature "$D/gsig" "$D/gbad" >/dev/null 2>&1; then
	fail "openssl verifies the gate's signature over another nonce"
fi
# the phone's proof: over nonce_p ‖ nonce_r ‖ gate id ‖ time ‖ sector ‖ SHA-256(credential)
crl=$((0x$(printf '%s' "$a" | cut -c1-2)))
[ "$(printf '%s' "$a" | cut -c3-$((2 + 2 * crl)))" = "$cred_hex" ] || fail "answer: $a"
pl=$((0x$(printf '%s' "$a" | cut -c$((3 + 2 * crl))-$((4 + 2 * crl)))))
bin "$(printf '%s' "$a" | cut -c$((5 + 2 * crl))-$((4 + 2 * crl + 2 * pl)))" >"$D/psig"
{
	printf 'CITYPASS-NFC-V2'
	bin "$nonce_p$nonce_r$gate_id$t$sector"
	openssl dgst -sha256 -binary "$D/cred"
} >"$D/pmsg"
openssl dgst -sha256 -verify "$req" -signature "$D/psig" "$D/pmsg" | grep -qx 'Verified OK' ||
	fail "openssl does not verify the phone's proof"
echo "ok - openssl verifies the gate certificate, the gate's challenge signature and the proof"
echo "phone rogue check passed"
