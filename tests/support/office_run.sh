#!/bin/sh
# office_run.sh — a back office to test against (issue 18; the contract with the browser
# tests is /work/coord/office-interface.md, summarised in docs/office.md).
#
#   office_run.sh start STATE_DIR   a deployment in STATE_DIR/data (sectors pool and library,
#                                   a pass with a pool right, one with a library right),
#                                   a test CA and the office's certificate (openssl), the
#                                   accounts admin, agent-piscine (pool), agent-biblio
#                                   (library) with random passwords, and citypass-office
#                                   listening on a free port of 127.0.0.1. Prints KEY=VALUE
#                                   lines: URL, CA, SPKI, DATA, LOGIN=... PASSWORD=... (one
#                                   per account, admin first), PASS_POOL, PASS_LIBRARY.
#                                   With the bench (citypass-hil built; OFFICE_BENCH=0 leaves
#                                   it out): an emulated PN532 as the desk reader of desk
#                                   "guichet-1", and the lines HIL (the binary), BENCH (its
#                                   run dir: `$HIL ctl --run-dir $BENCH place desk desfire
#                                   FILE` puts a card on the desk reader) and DESK=guichet-1.
#                                   The same lines are kept in STATE_DIR/office.env.
#   office_run.sh stop STATE_DIR    stops what it started (STATE_DIR/office.pid, hil.pid).
#
# Env: BUILD (default: the source tree's build/), or ADMIN, OFFICE and HIL for the
# binaries; OFFICE_ARGS: more options for 'citypass-office serve' (e.g. --login-rate 5).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ADMIN=${ADMIN:-$BUILD/server/citypass-admin}
OFFICE=${OFFICE:-$BUILD/office/citypass-office}
HIL=${HIL:-$BUILD/hil/citypass-hil}
cmd=${1:-}
S=${2:-}
[ -n "$cmd" ] && [ -n "$S" ] || {
	echo "usage: office_run.sh start|stop STATE_DIR" >&2
	exit 2
}

stop() {
	stop_pid office.pid citypass-office
	stop_pid hil.pid citypass-hil
}

stop_pid() { # FILE NAME
	[ -f "$S/$1" ] || return 0
	pid=$(cat "$S/$1")
	if kill "$pid" 2>/dev/null; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "office_run.sh: $2 (pid $pid) ignored SIGTERM: SIGKILL" >&2
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$S/$1"
}

case $cmd in
stop)
	stop
	exit 0
	;;
start) ;;
*)
	echo "office_run.sh: unknown command '$cmd' (start or stop)" >&2
	exit 2
	;;
esac

for b in "$ADMIN" "$OFFICE"; do
	[ -x "$b" ] || { echo "office_run.sh: $b is missing: build first" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "office_run.sh: openssl is needed" >&2; exit 1; }
mkdir -p "$S"
[ ! -e "$S/data" ] || { echo "office_run.sh: $S/data exists already" >&2; exit 1; }
D=$S/data
export CITYPASS_DATA="$D"
log=$S/setup.log
"$ADMIN" init --sectors pool,library --value-sector pool >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
year=$(date +%Y)
pass_of() { sed -n 's/^pass \([0-9]*\) issued.*/\1/p'; }
PASS_POOL=$("$ADMIN" pass issue --holder "Alice Martin" \
	--right "pool,from=$year-01-01,to=$year-12-31,quota=24/year" 2>>"$log" | pass_of)
PASS_LIBRARY=$("$ADMIN" pass issue --holder "Bruno Leroy" --right library 2>>"$log" | pass_of)
[ -n "$PASS_POOL" ] && [ -n "$PASS_LIBRARY" ] || { cat "$log" >&2; exit 1; }

# a CA of the test's own, and the office's certificate for 127.0.0.1 and localhost
T=$S/tls
mkdir -p "$T"
(
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=citypass test CA" -keyout "$T/ca.key" -out "$T/ca.pem"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=localhost" -keyout "$T/office.key" -out "$T/office.csr"
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$T/ext"
	openssl x509 -req -in "$T/office.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
		-CAcreateserial -days 2 -extfile "$T/ext" -out "$T/office.pem"
) >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
SPKI=$(openssl x509 -in "$T/office.pem" -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha256 -binary | openssl enc -base64)

accounts=
add_account() { # LOGIN ROLE [SECTOR]
	pw=$(openssl rand -hex 12)
	if [ -n "${3:-}" ]; then
		echo "$pw" | "$OFFICE" account add --login "$1" --role "$2" --sector "$3" >>"$log" 2>&1
	else
		echo "$pw" | "$OFFICE" account add --login "$1" --role "$2" >>"$log" 2>&1
	fi || { cat "$log" >&2; exit 1; }
	accounts="$accounts
LOGIN=$1 PASSWORD=$pw"
}
add_account admin admin
add_account agent-piscine agent pool
add_account agent-biblio agent library

# the bench's emulated PN532 as the desk reader (libnfc's own pn532_uart driver)
export LIBNFC_AUTO_SCAN=false
unset LIBNFC_DEVICE LIBNFC_DEFAULT_DEVICE
bench_lines=
readers=
if [ "${OFFICE_BENCH:-1}" = 1 ] && [ -x "$HIL" ]; then
	B=$S/bench
	mkdir -p "$B"
	"$HIL" run --run-dir "$B" --reader desk >"$S/hil.log" 2>&1 </dev/null &
	echo $! >"$S/hil.pid"
	"$HIL" ctl --run-dir "$B" --wait 10 status >/dev/null 2>&1 ||
		{ echo "office_run.sh: the bench did not start:" >&2; cat "$S/hil.log" >&2; stop; exit 1; }
	readers="--reader guichet-1=pn532_uart:$B/readers/desk"
	bench_lines="HIL=$HIL
BENCH=$B
DESK=guichet-1"
fi

rm -f "$S/office.port"
# the office's temporary files (a phone's request on its way) in the state directory
mkdir -p "$S/tmp"
# shellcheck disable=SC2086 # OFFICE_ARGS is a list of options
TMPDIR="$S/tmp" "$OFFICE" serve --listen 127.0.0.1:0 --port-file "$S/office.port" --cert "$T/office.pem" \
	--key "$T/office.key" $readers ${OFFICE_ARGS:-} >"$S/office.log" 2>&1 </dev/null &
echo $! >"$S/office.pid"
i=0
while [ ! -s "$S/office.port" ]; do
	if ! kill -0 "$(cat "$S/office.pid")" 2>/dev/null; then
		echo "office_run.sh: citypass-office exited:" >&2
		cat "$S/office.log" >&2
		rm -f "$S/office.pid"
		stop
		exit 1
	fi
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "office_run.sh: citypass-office did not listen in 30 s" >&2; stop; exit 1; }
	sleep 0.1
done
{
	echo "URL=https://127.0.0.1:$(cat "$S/office.port")"
	echo "CA=$T/ca.pem"
	echo "SPKI=$SPKI"
	echo "DATA=$D"
	echo "${accounts#?}"
	echo "PASS_POOL=$PASS_POOL"
	echo "PASS_LIBRARY=$PASS_LIBRARY"
	[ -z "$bench_lines" ] || echo "$bench_lines"
} >"$S/office.env"
cat "$S/office.env"
