#!/bin/sh
# Independent check of the phone-token formats with openssl alone (docs/phone-tokens.md):
#  1. a credential issued by citypass-token with an openssl-made issuer key: its issuer
#     signature verifies with `openssl dgst -sha256 -verify` over
#     "CITYPASS-CRED-V1" ‖ the signed part, and the key id is openssl's SPKI hash;
#  2. one byte changed: openssl refuses;
#  3. a QR line from show-qr: its proof verifies with the phone's public key (the
#     credential request) over "CITYPASS-QR-V1" ‖ step ‖ sector ‖ SHA-256(credential).
# Usage: openssl_token_check.sh CITYPASS_TOKEN OPENSSL
set -eu
tool=$1
openssl=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/citypass-token-XXXXXX")
. "$(dirname "$0")/../support/procs.sh" # the one exit convention
cleanup() { rm -rf "$dir"; }
on_exit cleanup
cd "$dir"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# byte N of FILE, as a decimal number
byte() {
	od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '
}

"$openssl" ecparam -name prime256v1 -genkey -noout -out issuer.pem
"$openssl" ec -in issuer.pem -pubout -out issuer.pub.pem 2>/dev/null
"$tool" enrol --wallet w --sector 3 >/dev/null
from=1767225600
until=$((from + 365 * 86400))
"$tool" issue --issuer-key issuer.pem --request w/sector-3.request.pem \
	--id 0123456789abcdef0123456789abcdef --sector 3 --from $from --until $until \
	--out pass.cred
"$tool" install --wallet w --credential pass.cred >/dev/null

# 1. the issuer signature and the key id
L=$(byte pass.cred 1)
signed=$((20 + L + 24))
S=$(byte pass.cred $signed)
printf 'CITYPASS-CRED-V1' >msg
head -c $signed pass.cred >>msg
tail -c +$((signed + 2)) pass.cred >sig.der
[ "$(wc -c <sig.der)" -eq "$S" ] || fail "signature length byte $S does not match the file"
"$openssl" dgst -sha256 -verify issuer.pub.pem -signature sig.der msg | grep -qx 'Verified OK' ||
	fail "openssl does not verify the credential's issuer signature"
kid=$("$openssl" pkey -pubin -in issuer.pub.pem -outform DER | sha256sum | cut -c1-16)
got=$(od -An -tx1 -j $((20 + L + 16)) -N8 pass.cred | tr -d ' \n')
[ "$kid" = "$got" ] || fail "issuer key id $got, openssl says $kid"

# 2. tampered
cp msg bad
printf '\002' | dd of=bad bs=1 seek=20 conv=notrunc 2>/dev/null
cmp -s msg bad && fail "tampering did not change the message"
if "$openssl" dgst -sha256 -verify issuer.pub.pem -signature sig.der bad >/dev/null 2>&1; then
	fail "openssl verifies a tampered credential"
fi

# 3. the QR proof
t=$((from + 1000))
line=$("$tool" show-qr --wallet w --sector 3 --time $t)
case $line in CP1.*) ;; *) fail "QR line does not start with CP1.: $line" ;; esac
b64=$(printf '%s' "${line#CP1.}" | tr -- '-_' '+/')
while [ $(($(printf '%s' "$b64" | wc -c) % 4)) -ne 0 ]; do b64="$b64="; done
printf '%s' "$b64" | "$openssl" base64 -d -A >payload
C=$(byte payload 5)
tail -c +7 payload | head -c "$C" >qr.cred
cmp -s qr.cred pass.cred || fail "the QR payload does not carry the credential"
tail -c +$((8 + C)) payload >qr.sig
step=$(od -An -tu1 -j1 -N4 payload | awk '{print ($1*16777216)+($2*65536)+($3*256)+$4}')
[ "$step" -eq $((t / 30)) ] || fail "QR step $step, expected $((t / 30))"
printf 'CITYPASS-QR-V1' >qmsg
head -c 5 payload | tail -c 4 >>qmsg
printf '\000\003' >>qmsg
"$openssl" dgst -sha256 -binary pass.cred >>qmsg
"$openssl" dgst -sha256 -verify w/sector-3.request.pem -signature qr.sig qmsg |
	grep -qx 'Verified OK' || fail "openssl does not verify the QR proof"
echo "openssl_token_check: credential, key id and QR proof verified by openssl"
