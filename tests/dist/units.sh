#!/bin/sh
# The systemd units shipped in dist/systemd (issue 15, item 2): `systemd-analyze verify`
# accepts them (the controller's as an instance, citypass-controller@pool-1, with the
# drop-in its generator writes: the devices of that gate's configuration and no other; the
# office's alone and with each desk-reader drop-in an administrator copies from it), and
# `systemd-analyze security --offline` rates each exposure at most MAX_EXPOSURE (out of
# 10; systemd calls up to 2.0 "OK"). The units name the installed programs: here they name
# the built ones, through the same @CITYPASS_BINDIR@ the install rules fill in.
# --man=no: the units' Documentation=man:... pages are installed by the packages, not on
# this machine (dist_deb checks them there).
# Env: SERVER CONTROLLER ADMIN OFFICE DIST (the dist/ source directory).
set -eu
. "$(dirname "$0")/../support/procs.sh"
: "${SERVER:?}" "${CONTROLLER:?}" "${ADMIN:?}" "${OFFICE:?}" "${DIST:?}"
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
T=$(mktemp -d "${TMPDIR:-/tmp}/cpu-XXXXXX")
cleanup() { rm -rf "$T"; }
on_exit cleanup
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (Debian's systemd)"

mkdir "$T/bin"
ln -s "$SERVER" "$T/bin/citypass-server"
ln -s "$CONTROLLER" "$T/bin/citypass-controller"
ln -s "$OFFICE" "$T/bin/citypass-office"
for u in citypass-server.service citypass-controller@.service citypass-controller-generator \
	citypass-office.service; do
	sed "s|@CITYPASS_BINDIR@|$T/bin|g" "$DIST/systemd/$u.in" >"$T/$u"
	! grep -n "@[A-Z_]*@" "$T/$u" || fail "$u: a placeholder is left"
done
cp "$T/citypass-controller@.service" "$T/citypass-controller@pool-1.service"

# --- the controller's devices: its own, named by its configuration, no class ---------------
# the unit itself allows none: a DeviceAllow= there would hold for every instance
! grep -n '^DeviceAllow=' "$T/citypass-controller@.service" ||
	fail "citypass-controller@.service allows devices to every instance (above); they belong in the generated drop-in"
# three gates' files, as an operator writes them in /etc/citypass/controller
export CITYPASS_DATA="$T/data"
if ! "$ADMIN" init --server-name 127.0.0.1 --sectors pool >/dev/null 2>"$T/admin.log" ||
	! "$ADMIN" site add pool-n --sector pool >/dev/null 2>>"$T/admin.log"; then
	fail "init: $(cat "$T/admin.log")"
fi
mkdir "$T/conf"
for g in pool-1 pool-2 pool-3; do
	"$ADMIN" device add "$g" --site pool-n --server 127.0.0.1:7443 --out "$T/conf/bundle-$g" \
		>/dev/null 2>>"$T/admin.log" || fail "device add $g: $(cat "$T/admin.log")"
done
cat >"$T/conf/pool-1.conf" <<CONF
bundle = bundle-pool-1
reader = pn532_uart:/dev/ttyUSB0:115200
qr-scanner = /dev/ttyACM0
state-dir = $T/state-1
gate = gpio
gpio-chip = gpiochip0
gpio-relay-line = 17
CONF
cat >"$T/conf/pool-2.conf" <<CONF
bundle = bundle-pool-2
reader = pn53x_usb:001:004
state-dir = $T/state-2
gate = bench
bench-dir = $T/bench
bench-reader = pool-2
CONF
sed 's|^reader = .*|reader = pn71xx:/dev/whatever|; s|pool-1|pool-3|g; s|state-1|state-3|' \
	"$T/conf/pool-1.conf" >"$T/conf/pool-3.conf"
mkdir "$T/gen" "$T/gen-early" "$T/gen-late"
err=$(CITYPASS_CONTROLLER_CONF_DIR="$T/conf" sh "$T/citypass-controller-generator" \
	"$T/gen" "$T/gen-early" "$T/gen-late" 2>&1) || fail "the generator failed: $err"
allowed() { sed -n 's/^DeviceAllow=//p' "$T/gen/citypass-controller@$1.service.d/50-devices.conf" | sort | tr '\n' ' '; }
[ "$(allowed pool-1)" = "/dev/gpiochip0 rw /dev/ttyACM0 rw /dev/ttyUSB0 rw " ] ||
	fail "pool-1 (a serial reader, a scanner, a GPIO chip) may open: $(allowed pool-1)"
echo "ok - generator: a serial reader's gate may open its reader, its scanner and its GPIO chip, nothing else"
[ "$(allowed pool-2)" = "char-usb_device rw " ] || fail "pool-2 (a USB reader) may open: $(allowed pool-2)"
echo "ok - generator: a libusb reader (renumbered at each replug) gets the USB class only"
[ ! -e "$T/gen/citypass-controller@pool-3.service.d" ] || fail "pool-3 (a reader whose device cannot be told) got a drop-in"
printf '%s\n' "$err" | grep -q "pool-3.conf: reader 'pn71xx:/dev/whatever': cannot tell which device" ||
	fail "the generator did not say why pool-3 has no device: $err"
echo "ok - generator: a configuration it cannot read opens no device, and it says why"
# the instance verified and rated below with its generated drop-in, as systemd loads it
cp -r "$T/gen/citypass-controller@pool-1.service.d" "$T/"

# check UNIT [WHAT] : verified without a warning, exposure at most MAX_EXPOSURE
check() {
	out=$(cd "$T" && systemd-analyze verify --man=no "./$1" 2>&1) || fail "verify $1${2:-}: $out"
	[ -z "$out" ] || fail "verify $1${2:-} warns: $out"
	echo "ok - systemd-analyze verify $1${2:-}"
	out=$(cd "$T" && systemd-analyze security --offline=true "./$1" 2>&1) || true
	score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	[ -n "$score" ] || fail "security $1${2:-}: no score in: $(printf '%s\n' "$out" | tail -n 3)"
	awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' ||
		fail "security $1${2:-}: exposure $score > $MAX_EXPOSURE: $(printf '%s\n' "$out" | grep '✗')"
	echo "ok - systemd-analyze security $1${2:-}: exposure $score (at most $MAX_EXPOSURE)"
}
for u in citypass-server.service citypass-controller@pool-1.service citypass-office.service; do
	check "$u"
done

# --- the office's desk readers: the unit opens no device; an administrator's drop-in
# (dist/systemd/citypass-office-reader-*.conf, installed as examples) opens its reader's ---
! grep -n '^DeviceAllow=' "$T/citypass-office.service" ||
	fail "citypass-office.service allows a device (above): a desk reader is the drop-in's"
grep -q '^PrivateDevices=yes' "$T/citypass-office.service" || fail "citypass-office.service: no PrivateDevices=yes"
# office_acl : the devices systemd lets the office open (ProtectClock= adds char-rtc r)
office_acl() {
	(cd "$T" && systemd-analyze security --offline=true ./citypass-office.service 2>&1) |
		sed -n 's/.*device ACL with some special devices: *//p' | tr ' ' '\n' |
		grep -v '^char-rtc:r$' | grep -v '^[0-9.]*$' | sort | tr '\n' ' ' || true
}
[ -z "$(office_acl)" ] || fail "the office alone may open: $(office_acl)"
mkdir "$T/citypass-office.service.d"
sed 's|^DeviceAllow=/dev/serial/by-id/.*|DeviceAllow=/dev/ttyUSB0 rw|' \
	"$DIST/systemd/citypass-office-reader-serial.conf" >"$T/citypass-office.service.d/desk-reader.conf"
check citypass-office.service " with the serial desk reader's drop-in"
[ "$(office_acl)" = "/dev/ttyUSB0:rw " ] || fail "with the serial reader's drop-in the office may open: $(office_acl)"
cp "$DIST/systemd/citypass-office-reader-usb.conf" "$T/citypass-office.service.d/desk-reader.conf"
check citypass-office.service " with the USB desk reader's drop-in"
[ "$(office_acl)" = "char-usb_device:rw " ] || fail "with the USB reader's drop-in the office may open: $(office_acl)"
rm -r "$T/citypass-office.service.d"
echo "ok - office: no device of its own; a desk reader's drop-in opens that reader and nothing else"

# the sandbox a reviewer looks for, stated in the files themselves
for u in citypass-server.service citypass-controller@.service citypass-office.service; do
	for k in Type=notify WatchdogSec= NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
		"CapabilityBoundingSet=\$" User=citypass; do
		grep -q "^$k" "$T/$u" || fail "$u: no $k"
	done
done
grep -q "^DevicePolicy=closed" "$T/citypass-controller@.service" ||
	fail "the controller may open any device"
# systemd's own reading of the instance: its devices, no class (ProtectClock= adds char-rtc r)
acl=$(cd "$T" && systemd-analyze security --offline=true ./citypass-controller@pool-1.service 2>&1 |
	sed -n 's/.*device ACL with some special devices: //p')
case " $acl " in *" /dev/ttyUSB0:rw "*) ;; *) fail "systemd does not see pool-1's reader allowed: '$acl'" ;; esac
# shellcheck disable=SC2086 # one device per word
printf '%s\n' $acl | grep -v '^char-rtc:r$' | grep -q '^char-' &&
	fail "systemd sees a device class allowed to pool-1: '$acl'"
# the office opens the server's data directory (office.db beside the rights): its user
grep -q '^StateDirectory=citypass$' "$T/citypass-office.service" ||
	fail "citypass-office.service does not use the server's data directory"
echo "ok - all units: notify, watchdog, a system user, no capability, a strict sandbox"
echo "systemd units check passed"
