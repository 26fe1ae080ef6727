#!/bin/sh
# cardlib's 2K3DES and 3K3DES CBC and CMAC (cards' DES keys, ISO sessions) against openssl's
# own implementations, on random keys and messages: des_vectors prints what cardlib
# computes, openssl recomputes each line. Usage: openssl_des_check.sh DES_VECTORS OPENSSL
set -eu
vectors=$1
openssl=$2
n=0
tmp=$(mktemp)
. "$(dirname "$0")/../support/procs.sh" # the one exit convention
cleanup() { rm -f "$tmp"; }
on_exit cleanup
"$vectors" 16 >"$tmp"
while read -r kind cipher key a b c; do
	case $kind in
	cbc)
		got=$(printf '%s' "$b" | xxd -r -p |
			"$openssl" enc -"$cipher"-cbc -K "$key" -iv "$a" -nopad | xxd -p | tr -d '\n')
		want=$c
		;;
	cmac)
		[ "$a" = - ] && a=
		got=$(printf '%s' "$a" | xxd -r -p |
			"$openssl" mac -cipher "$(echo "$cipher" | tr a-z A-Z)-CBC" \
				-macopt "hexkey:$key" CMAC | tr A-Z a-z)
		want=$b
		;;
	*)
		echo "FAIL: unexpected line: $kind" >&2
		exit 1
		;;
	esac
	if [ "$got" != "$want" ]; then
		echo "FAIL: $kind $cipher key $key: cardlib $want, openssl $got" >&2
		exit 1
	fi
	n=$((n + 1))
done <"$tmp"
[ "$n" -eq 64 ] || { echo "FAIL: $n lines checked, 64 expected" >&2; exit 1; }
echo "openssl DES check passed ($n vectors)"
