#!/bin/sh
# Independent check of the list signature format with openssl alone (DESIGN.md s.3):
#  1. a list published by citypass verifies with `openssl dgst -sha256 -verify`;
#  2. a list altered by one byte, or checked against another key, does not;
#  3. the key id in the list header is what openssl's view of the public key gives;
#  4. the other way round: a list signed by openssl with an openssl-made key verifies with
#     citypass, and a tampered one is refused.
# Usage: openssl_list_check.sh CITYPASS_LIST OPENSSL
set -eu
tool=$1
openssl=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/citypass-openssl-XXXXXX")
trap 'rm -rf "$dir"' EXIT
cd "$dir"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# 1. citypass signs, openssl verifies
"$tool" keygen --private list.key.pem --public list.pub.pem
"$tool" sample --key list.key.pem --out pool.cpl --sector 1 --passes 2000 --list-version 3
"$openssl" dgst -sha256 -verify list.pub.pem -signature pool.cpl.sig pool.cpl |
	grep -qx 'Verified OK' || fail "openssl does not verify a citypass list"

# 2. one byte changed, or another key: openssl refuses
cp pool.cpl tampered.cpl
printf '\001' | dd of=tampered.cpl bs=1 seek=1000 conv=notrunc 2>/dev/null
cmp -s pool.cpl tampered.cpl && fail "tampering did not change the file"
if "$openssl" dgst -sha256 -verify list.pub.pem -signature pool.cpl.sig tampered.cpl >/dev/null 2>&1; then
	fail "openssl verified a tampered list"
fi
"$tool" keygen --private other.key.pem --public other.pub.pem
if "$openssl" dgst -sha256 -verify other.pub.pem -signature pool.cpl.sig pool.cpl >/dev/null 2>&1; then
	fail "openssl verified a list against the wrong key"
fi

# 3. key id = first 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER
want=$("$openssl" pkey -pubin -in list.pub.pem -outform DER | "$openssl" dgst -sha256 -r | cut -c1-16)
got=$("$tool" keyid --pub list.pub.pem)
[ "$want" = "$got" ] || fail "key id: openssl says $want, citypass-list says $got"
"$tool" show pool.cpl --json | grep -q "\"key_id\":\"$want\"" ||
	fail "the list header does not carry key id $want"

# 4. openssl makes the key and signs; citypass verifies
"$openssl" ecparam -name prime256v1 -genkey -noout -out ossl.key.pem
"$openssl" pkey -in ossl.key.pem -pubout -out ossl.pub.pem
"$tool" sample --key ossl.key.pem --out lib.cpl --sector 2 --passes 500
"$openssl" dgst -sha256 -sign ossl.key.pem -out lib.cpl.osig lib.cpl
"$tool" verify lib.cpl --pub ossl.pub.pem --sig lib.cpl.osig ||
	fail "citypass refused a list signed by openssl"
cp lib.cpl lib-tampered.cpl
printf '\002' | dd of=lib-tampered.cpl bs=1 seek=200 conv=notrunc 2>/dev/null
set +e
"$tool" verify lib-tampered.cpl --pub ossl.pub.pem --sig lib.cpl.osig 2>err.txt
rc=$?
set -e
[ $rc -eq 1 ] || fail "citypass accepted a tampered list (exit $rc)"
grep -q 'signature does not verify' err.txt || fail "refusal does not name the cause: $(cat err.txt)"

echo "openssl check: 4 groups passed"
