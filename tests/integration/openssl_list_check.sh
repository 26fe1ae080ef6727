#!/bin/sh
# Independent check of the list format with openssl and sha256sum alone (DESIGN.md s.3,
# docs/list-format.md, "Checking a list with standard tools"):
#  1. a list published by citypass: openssl verifies the manifest's signature and
#     sha256sum -c finds every file it names intact;
#  2. one byte changed in a chunk, in the manifest, or another key: refused;
#  3. the key id in the head is what openssl's view of the public key gives;
#  4. the other way round: a manifest signed by openssl with an openssl-made key verifies
#     with citypass, and a tampered chunk is refused naming the cause;
#  5. format 1 (one file, one signature), which gates still read, verifies as before.
# Usage: openssl_list_check.sh CITYPASS_LIST OPENSSL
set -eu
tool=$1
openssl=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/citypass-openssl-XXXXXX")
. "$(dirname "$0")/../support/procs.sh" # the one exit convention
cleanup() { rm -rf "$dir"; }
on_exit cleanup
cd "$dir"

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# 1. citypass signs, openssl and sha256sum verify (40 000 passes: two chunks)
"$tool" keygen --private list.key.pem --public list.pub.pem
"$tool" sample --key list.key.pem --out pool --sector 1 --passes 40000 --version 3
[ "$(ls pool/c*.dat | wc -l)" = 2 ] || fail "expected 2 chunks, got: $(ls pool)"
"$openssl" dgst -sha256 -verify list.pub.pem -signature pool/v3.manifest.sig pool/v3.manifest |
	grep -qx 'Verified OK' || fail "openssl does not verify a citypass manifest"
(cd pool && sha256sum -c --quiet v3.manifest) || fail "sha256sum does not check the files"

# 2. one byte changed in a chunk, or the manifest, or another key: refused
cp -r pool tampered
dat=$(ls tampered/c001-*.dat)
printf '\001' | dd of="$dat" bs=1 seek=1000 conv=notrunc 2>/dev/null
cmp -s pool/"$(basename "$dat")" "$dat" && fail "tampering did not change the chunk"
if (cd tampered && sha256sum -c --quiet v3.manifest) >/dev/null 2>&1; then
	fail "sha256sum accepted a tampered chunk"
fi
cp pool/v3.manifest m.tampered
sed -i '2s/^./0/;2s/^0/1/' m.tampered
cmp -s pool/v3.manifest m.tampered && fail "tampering did not change the manifest"
if "$openssl" dgst -sha256 -verify list.pub.pem -signature pool/v3.manifest.sig m.tampered \
	>/dev/null 2>&1; then
	fail "openssl verified a tampered manifest"
fi
"$tool" keygen --private other.key.pem --public other.pub.pem
if "$openssl" dgst -sha256 -verify other.pub.pem -signature pool/v3.manifest.sig pool/v3.manifest \
	>/dev/null 2>&1; then
	fail "openssl verified a manifest against the wrong key"
fi

# 3. key id = first 8 bytes of SHA-256 over the SubjectPublicKeyInfo DER
want=$("$openssl" pkey -pubin -in list.pub.pem -outform DER | "$openssl" dgst -sha256 -r | cut -c1-16)
got=$("$tool" keyid --pub list.pub.pem)
[ "$want" = "$got" ] || fail "key id: openssl says $want, citypass-list says $got"
"$tool" show pool/v3.manifest --json | grep -q "\"key_id\":\"$want\"" ||
	fail "the head does not carry key id $want"

# 4. openssl makes the key and signs the manifest; citypass verifies every file
"$openssl" ecparam -name prime256v1 -genkey -noout -out ossl.key.pem
"$openssl" pkey -in ossl.key.pem -pubout -out ossl.pub.pem
"$tool" sample --key ossl.key.pem --out lib --sector 2 --passes 500
"$openssl" dgst -sha256 -sign ossl.key.pem -out lib/v1.manifest.osig lib/v1.manifest
"$tool" verify lib/v1.manifest --pub ossl.pub.pem --sig lib/v1.manifest.osig ||
	fail "citypass refused a manifest signed by openssl"
cp -r lib lib-tampered
printf '\002' | dd of="$(ls lib-tampered/c000-*.dat)" bs=1 seek=200 conv=notrunc 2>/dev/null
set +e
"$tool" verify lib-tampered/v1.manifest --pub ossl.pub.pem --sig lib/v1.manifest.osig 2>err.txt
rc=$?
set -e
[ $rc -eq 1 ] || fail "citypass accepted a tampered chunk (exit $rc)"
grep -q 'does not match its signed hash' err.txt || fail "refusal does not name the cause: $(cat err.txt)"

# 5. format 1: one file, its detached signature
"$tool" sample --key list.key.pem --out old.cpl --format 1 --sector 1 --passes 2000 --version 2
"$openssl" dgst -sha256 -verify list.pub.pem -signature old.cpl.sig old.cpl |
	grep -qx 'Verified OK' || fail "openssl does not verify a format 1 list"
"$tool" verify old.cpl --pub list.pub.pem --sig old.cpl.sig >/dev/null ||
	fail "citypass refused a format 1 list"

echo "openssl check: 5 groups passed"
