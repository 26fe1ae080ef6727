#!/bin/sh
# citypass-controller's start-up checks and signals: every bad or missing setting of the
# controller's file and of the provisioning bundle is one clear sentence and exit 1 (bad
# usage exit 2); the gpio backend's configuration errors (no such chip, no relay line, a
# line used twice) without hardware; SIGHUP with a broken file keeps the running
# configuration, SIGHUP with a good one restarts on it; SIGTERM stops with exit 0.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
PORT=1 # no server needed to check configurations
enrol pool-1 pool-n pool-1
# shellcheck disable=SC2034 # lib.sh reads it (no server here)
PORT=
good="$T/pool-1.conf"

# expect_start_error NAME EXPECTED_EXIT PATTERN : run on $T/x.conf, check exit and message
expect_start_error() {
	rc=0
	out=$(timeout 20 "$CONTROLLER" --config "$T/x.conf" 2>&1) || rc=$?
	[ "$rc" = "$2" ] || fail "$1: exit $rc, expected $2 ($out)"
	printf '%s\n' "$out" | grep -Eq -- "$3" || fail "$1: expected /$3/ in: $out"
	echo "ok - $1"
}
# variant SED_EXPR : $T/x.conf from the good file
variant() { sed "$1" "$good" >"$T/x.conf"; }

# usage
rc=0; "$CONTROLLER" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "no --config: exit $rc"
rc=0; "$CONTROLLER" --bogus >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown option: exit $rc"
"$CONTROLLER" --help | grep -q -- "--config FILE" || fail "--help"
"$CONTROLLER" --version | grep -q "citypass-controller" || fail "--version"
out=$("$CONTROLLER" --config "$good" --check) || fail "--check on a good file: $out"
echo "ok - usage, --help, --version, --check"

cp "$good" "$T/x.conf"
rm "$T/x.conf"
expect_start_error "missing file" 1 "x.conf: cannot open"
variant '/^reader/d'
expect_start_error "missing reader" 1 "missing key 'reader'"
variant 's/^gate = bench/gate = relay/'
expect_start_error "unknown gate backend" 1 "x.conf:[0-9]+: gate 'relay': expected bench or gpio"
variant 's/^open-ms = .*/open-ms = soon/'
expect_start_error "malformed number" 1 "open-ms 'soon': expected a number from 100 to 60000"
variant '$a colour = blue'
expect_start_error "unknown key" 1 "unknown key 'colour'"
variant 's/^reader = .*/reader = \/dev\/ttyUSB0/'
expect_start_error "connection string" 1 "reader '/dev/ttyUSB0': expected a libnfc connection string"
variant 's/^bundle = .*/bundle = nowhere/'
expect_start_error "missing bundle" 1 "nowhere/device.conf: cannot open"
variant 's|^bench-dir = .*|bench-dir = /nonexistent|'
expect_start_error "bench not there" 1 "gate bench: cannot connect to /nonexistent/control.sock"
# A device missing at start is no configuration error (issue 13): USB devices come late
# or go. The gate starts, says so on its display and in its log, and keeps trying.
expect_degraded_start() { # NAME LOG_PATTERN DISPLAY_PATTERN
	: >"$T/x.log"
	"$CONTROLLER" --config "$T/x.conf" >"$T/x.log" 2>&1 &
	_xp=$!
	CTRL_PIDS="$CTRL_PIDS $_xp"
	wait_for 10 grep -q -- "$2" "$T/x.log" || fail "$1: expected /$2/ in: $(cat "$T/x.log")"
	_want=$3
	_shows() { ctl outputs pool-1 | grep -q -- "$_want"; }
	wait_for 10 _shows || fail "$1: the display never said /$3/: $(ctl outputs pool-1 | tail -n 3)"
	kill "$_xp"
	_rc=0
	wait "$_xp" || _rc=$?
	CTRL_PIDS=$(echo "$CTRL_PIDS" | tr ' ' '\n' | grep -vx "$_xp" | tr '\n' ' ')
	[ "$_rc" = 0 ] || fail "$1: exit $_rc after SIGTERM"
	echo "ok - $1"
}
variant 's|^reader = .*|reader = pn532_uart:/nonexistent/pty|'
expect_degraded_start "reader not there: starts out of service" \
	"reader pn532_uart:/nonexistent/pty: cannot open it" "led=amber display=Hors service"
variant 's|^qr-scanner = .*|qr-scanner = /nonexistent/qr|'
expect_degraded_start "QR scanner not there: starts, the display says so" \
	"qr-scanner /nonexistent/qr: cannot open it" "display=Présentez votre carte (QR hors service)"

# the bundle's device.conf and card-sector.key
cp -r "$T/bundle-pool-1" "$T/bb"
variant 's/^bundle = .*/bundle = bb/'
cp "$T/x.conf" "$T/bb.conf"
bundle_variant() { # bundle_variant FILE SED_EXPR
	cp "$T/bundle-pool-1/$1" "$T/bb/$1"
	sed -i "$2" "$T/bb/$1"
	cp "$T/bb.conf" "$T/x.conf"
}
bundle_variant device.conf 's/^hours = .*/hours = Mon-Fri 9h-12h/'
expect_start_error "bad opening hours" 1 "device.conf:[0-9]+: hours 'Mon-Fri 9h-12h': expected always"
bundle_variant device.conf 's/^hours = .*/hours = Mon-Fri 14:00-12:00/'
expect_start_error "reversed window" 1 "hours 'Mon-Fri 14:00-12:00'"
bundle_variant device.conf 's/^tz = .*/tz = Europe\/Atlantis/'
expect_start_error "unknown zone" 1 "tz 'Europe/Atlantis': not a time zone"
# quota periods are counted in the deployment's zone, which device add writes down
grep -q '^period-tz = [A-Za-z]' "$T/bundle-pool-1/device.conf" ||
	fail "the bundle names no period-tz: $(cat "$T/bundle-pool-1/device.conf")"
bundle_variant device.conf 's/^period-tz = .*/period-tz = Mars\/Olympus/'
expect_start_error "unknown period zone" 1 "period-tz 'Mars/Olympus': not a time zone"
bundle_variant device.conf 's/^expiry-policy = .*/expiry-policy = grace:9999/'
expect_start_error "grace too long" 1 "expiry-policy 'grace:9999'"
bundle_variant device.conf '/^sector =/d'
expect_start_error "missing sector" 1 "device.conf: missing key 'sector'"
bundle_variant device.conf 's/^server = .*/server = localhost/'
expect_start_error "server without port" 1 "server 'localhost': expected HOST:PORT"
bundle_variant device.conf 's/^private-key = .*/private-key = nothing.key/'
expect_start_error "missing key file" 1 "private-key 'nothing.key': cannot read"
cp "$T/bundle-pool-1/device.conf" "$T/bb/device.conf"
bundle_variant card-sector.key 's/^master .*/master 0011/'
expect_start_error "short card key" 1 "card-sector.key:[0-9]+: master: expected 32 hex digits"
bundle_variant card-sector.key 's/^sector .*/sector 3/'
expect_start_error "card key of another sector" 1 "sector 3: device.conf says sector 1"
cp "$T/bundle-pool-1/card-sector.key" "$T/bb/card-sector.key"
# issue 17: the gate certificate phones check must be the CA's, for this key and sector
printf 'not a gate certificate' >"$T/bb/gate.cert"
cp "$T/bb.conf" "$T/x.conf"
expect_start_error "garbage gate certificate" 1 \
	"gate-certificate .*gate.cert: the gate certificate is malformed"
cp "$T/bundle-pool-1/gate.cert" "$T/bb/gate.cert"
printf '\377' | dd of="$T/bb/gate.cert" bs=1 seek=20 conv=notrunc 2>/dev/null
expect_start_error "gate certificate of another key" 1 \
	"gate-certificate .*gate.cert: .*it must be the certificate of private-key"
rm "$T/bb/gate.cert"
"$TOKEN" gate-cert --ca-key "$CITYPASS_DATA/keys/ca.key" --gate-key "$T/bb/device.key" \
	--sector 2 --device-id pool-1 --from 0 --until 4102444800 --out "$T/bb/gate.cert"
expect_start_error "gate certificate of another sector" 1 \
	"gate-certificate .*gate.cert is for sector 2, device.conf says 1"
cp "$T/bundle-pool-1/gate.cert" "$T/bb/gate.cert"
cp "$T/bundle-pool-1/list.pub.pem" "$T/bb/list.pub.pem"
echo "garbage" >"$T/bb/list.pub.pem"
cp "$T/bb.conf" "$T/x.conf"
expect_start_error "unreadable list key" 1 "list-public-key .*list.pub.pem"
cp "$T/bundle-pool-1/list.pub.pem" "$T/bb/list.pub.pem"

# issue 10: --check loads the key for real; secrets and the state directory are guarded
echo "garbage" >"$T/bb/device.key"
cp "$T/bb.conf" "$T/x.conf"
rc=0
out=$(timeout 20 "$CONTROLLER" --config "$T/x.conf" --check 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "--check passed a garbage device.key ($out)"
printf '%s\n' "$out" | grep -q "private-key .*device.key: not a private key" ||
	fail "--check on a garbage key: $out"
echo "ok - --check refuses a garbage device.key"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/bb/device.key" 2>/dev/null
chmod 600 "$T/bb/device.key"
expect_start_error "another device's key" 1 "device.key is not the key of certificate"
cp -p "$T/bundle-pool-1/device.key" "$T/bb/device.key"
chmod 644 "$T/bb/device.key"
expect_start_error "world-readable device key" 1 "device.key is readable by other users \\(mode 0644\\)"
chmod 600 "$T/bb/device.key"
chmod 640 "$T/bb/card-sector.key"
expect_start_error "group-readable card key" 1 "card-sector.key is readable by other users"
chmod 600 "$T/bb/card-sector.key"
mkdir -p "$T/state-open"
chmod 777 "$T/state-open"
sed 's/^state-dir = .*/state-dir = state-open/' "$T/bb.conf" >"$T/x.conf"
expect_start_error "0777 state dir" 1 "state-dir .*state-open is writable by other users \\(mode 0777\\)"

# gpio: configuration errors a machine without the hardware can still check
gpio_variant() {
	sed '/^gate = /d; /^bench-/d' "$good" >"$T/x.conf"
	printf 'gate = gpio\n%s\n' "$1" >>"$T/x.conf"
}
gpio_variant "gpio-relay-line = 17"
expect_start_error "gpio without chip" 1 "gate = gpio needs gpio-chip"
gpio_variant "gpio-chip = gpiochip0"
expect_start_error "gpio without relay line" 1 "gate = gpio needs gpio-relay-line"
gpio_variant "gpio-chip = gpiochip0
gpio-relay-line = 17
gpio-green-line = 17"
expect_start_error "gpio line used twice" 1 "gpio line 17 is used twice"
gpio_variant "gpio-chip = gpiochip0
gpio-relay-line = 4096"
expect_start_error "gpio line out of range" 1 "gpio-relay-line '4096': expected a number"
gpio_variant "gpio-chip = no-such-chip-citypass
gpio-relay-line = 17
gpio-active-low = maybe"
expect_start_error "gpio bad boolean" 1 "gpio-active-low 'maybe': expected yes or no"
gpio_variant "gpio-chip = no-such-chip-citypass
gpio-relay-line = 17"
expect_start_error "gpio chip absent" 1 "gate gpio: gpio-chip 'no-such-chip-citypass': cannot open it"

# signals: SIGHUP with a broken file keeps running; with a good file, restarts on it
cp "$good" "$T/live.conf"
"$CONTROLLER" --config "$T/live.conf" >"$T/ctl-live.log" 2>&1 &
pid=$!
CTRL_PIDS="$CTRL_PIDS $pid"
wait_for 10 grep -q "started" "$T/ctl-live.log" || fail "controller did not start: $(cat "$T/ctl-live.log")"
echo "open-ms = never" >>"$T/live.conf"
kill -HUP $pid
wait_for 10 grep -q "reload refused, keeping the running configuration: .*open-ms 'never'" \
	"$T/ctl-live.log" || fail "a broken reload: $(tail -n 3 "$T/ctl-live.log")"
kill -0 $pid || fail "a broken reload stopped the controller"
# a refused reload says it restarted on the running configuration, never "reloaded"
wait_for 10 grep -q "restarted: device pool-1" "$T/ctl-live.log" ||
	fail "a refused reload does not say it restarted: $(tail -n 3 "$T/ctl-live.log")"
! grep -q "reloaded: device" "$T/ctl-live.log" || fail "a refused reload logged 'reloaded'"
sed -i 's/^open-ms = never$/open-ms = 1500/' "$T/live.conf"
# only what follows this HUP says the good file was applied
from=$(($(wc -l <"$T/ctl-live.log") + 1))
kill -HUP $pid
applied() { tail -n "+$from" "$T/ctl-live.log" | grep -A50 "configuration reloaded from" | grep -q "reloaded: device pool-1"; }
wait_for 10 applied || fail "a good reload: $(tail -n 3 "$T/ctl-live.log")"
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "led=red display=Service indisponible – liste" "decides after the reload (no list: refused)"
echo "ok - SIGHUP: a broken file is refused and logged, a good one is applied"
kill -TERM $pid
rc=0
wait $pid || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM: exit $rc"
CTRL_PIDS=
grep -q "stopped" "$T/ctl-live.log" || fail "SIGTERM: not logged"
echo "ok - SIGTERM stops with exit 0"
echo "controller configuration check passed"
