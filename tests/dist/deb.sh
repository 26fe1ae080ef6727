#!/bin/sh
# The Debian packages (issue 15, item 1): built from this tree with dpkg-buildpackage by
# scripts/deb.sh (lintian: no error, no warning), installed on this machine with dpkg -i,
# the installed programs run (a deployment made and served by /usr/bin's binaries, the back
# office serving it, a gate configuration checked), then purged: no file of theirs is left.
# Needs root (dpkg), else skipped (77);
# refuses to run where citypass is already installed (it would remove it).
# The system users the packages create are kept by a purge, as Debian does for every
# system user (files may still be theirs); the test removes the ones it made.
# Env: BUILD_DIR SOURCE_DIR.
set -eu
. "$(dirname "$0")/../support/procs.sh"
: "${BUILD_DIR:?}" "${SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: dpkg -i needs root" >&2; exit 77; }
PKGS="citypass-server citypass-controller citypass-office citypass-tools"
# one install at a time on a machine (two build trees' test runs would purge each other's)
exec 9>/var/lock/citypass-dist-deb.lock
flock -w 1500 9 || fail "another dist_deb holds /var/lock/citypass-dist-deb.lock for 25 min"
for p in $PKGS; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then
		fail "$p is already installed on this machine: the test would remove it"
	fi
done
T=$(mktemp -d "${TMPDIR:-/tmp}/cpdeb-XXXXXX")
SRV=
OFF=
USERS_BEFORE=$(getent passwd citypass citypass-gate | cut -d: -f1 | tr '\n' ' ')
cleanup() {
	stop_procs $OFF $SRV
	dpkg --purge $PKGS >/dev/null 2>&1 || true
	for u in citypass citypass-gate; do
		case " $USERS_BEFORE " in *" $u "*) ;; *) userdel "$u" >/dev/null 2>&1 || true ;; esac
	done
	rm -rf "$T"
}
on_exit cleanup

debs=$(JOBS=${JOBS:-2} sh "$SOURCE_DIR/scripts/deb.sh" "$BUILD_DIR/deb-test") || fail "scripts/deb.sh"
main=""
for p in $PKGS; do
	d=$(printf '%s\n' $debs | grep "/${p}_[^/]*\.deb$") || fail "no $p package built"
	main="$main $d"
done
echo "ok - make deb: $PKGS built, lintian reports no error nor warning"

out=$(dpkg -i $main 2>&1) || fail "dpkg -i: $out"
for f in /usr/bin/citypass-server /usr/bin/citypass-controller /usr/bin/citypass-admin \
	/usr/bin/citypass-list /usr/bin/citypass-token /lib/systemd/system/citypass-server.service \
	"/lib/systemd/system/citypass-controller@.service" /lib/udev/rules.d/60-citypass-gpio.rules \
	/lib/systemd/system-generators/citypass-controller-generator \
	/usr/lib/sysusers.d/citypass-server.conf /usr/lib/sysusers.d/citypass-controller.conf \
	/usr/bin/citypass-office /lib/systemd/system/citypass-office.service \
	/usr/lib/sysusers.d/citypass-office.conf \
	/usr/share/doc/citypass-office/examples/citypass-office-reader-serial.conf \
	/usr/share/doc/citypass-office/examples/citypass-office-reader-usb.conf; do
	[ -e "$f" ] || fail "not installed: $f"
done
if command -v systemd-sysusers >/dev/null; then
	getent passwd citypass >/dev/null || fail "no system user citypass"
	getent passwd citypass-gate >/dev/null || fail "no system user citypass-gate"
fi
for m in man8/citypass-server.8 man8/citypass-controller.8 man8/citypass-office.8 man1/citypass-admin.1 \
	man1/citypass-list.1 man1/citypass-token.1; do
	[ -f "/usr/share/man/$m.gz" ] || fail "no man page /usr/share/man/$m.gz"
	man -l "/usr/share/man/$m.gz" >/dev/null 2>&1 || fail "man -l /usr/share/man/$m.gz"
done
# installed, not enabled (docs/packaging.md): no unit of ours is wanted by any target
wanted=$(ls /etc/systemd/system/*.wants/citypass-* 2>/dev/null || true)
[ -z "$wanted" ] || fail "enabled by the install: $wanted"
echo "ok - dpkg -i: programs, units (none enabled), udev rule, man pages, system users"

# the installed programs, not the build's
export CITYPASS_DATA="$T/data"
/usr/bin/citypass-admin --version | grep -q "citypass-admin" || fail "citypass-admin --version"
/usr/bin/citypass-admin init --server-name 127.0.0.1 --sectors pool >/dev/null 2>"$T/init.log" ||
	fail "installed citypass-admin init: $(cat "$T/init.log")"
/usr/bin/citypass-server --data "$CITYPASS_DATA" --listen 127.0.0.1:0 >"$T/server.log" 2>&1 &
SRV=$!
i=0
until grep -q "listening on 127.0.0.1:" "$T/server.log"; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "installed citypass-server: $(cat "$T/server.log")"
	sleep 0.1
done
stop_procs $SRV
SRV=
/usr/bin/citypass-list --help >/dev/null || fail "citypass-list --help"
/usr/bin/citypass-token --help >/dev/null || fail "citypass-token --help"
/usr/bin/citypass-controller --help | grep -q -- "--config" || fail "citypass-controller --help"
/usr/bin/citypass-office --help | grep -q -- "--reader DESK=CONNSTRING" || fail "citypass-office --help"
# the installed office on that deployment: the first administrator, then serving over HTTPS
echo "a-long-enough-password" | /usr/bin/citypass-office account add --login marie --role admin \
	>/dev/null 2>"$T/office.log" || fail "installed citypass-office account add: $(cat "$T/office.log")"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
	-keyout "$T/office.key" -out "$T/office.pem" >/dev/null 2>&1 || fail "openssl: no test certificate"
/usr/bin/citypass-office serve --listen 127.0.0.1:0 --port-file "$T/office.port" \
	--cert "$T/office.pem" --key "$T/office.key" >"$T/office.log" 2>&1 &
OFF=$!
i=0
until [ -s "$T/office.port" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "installed citypass-office: $(cat "$T/office.log")"
	sleep 0.1
done
curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$(cat "$T/office.port")/" >"$T/code" 2>&1 || true
case $(cat "$T/code") in 200 | 30[0-9]) ;; *) fail "installed citypass-office answered $(cat "$T/code")" ;; esac
stop_procs $OFF
OFF=
# the installed generator, through the installed controller: a gate's own reader
mkdir "$T/conf" "$T/gen"
/usr/bin/citypass-admin site add pool-n --sector pool >/dev/null 2>>"$T/init.log" &&
	/usr/bin/citypass-admin device add pool-1 --site pool-n --server 127.0.0.1:7443 \
		--out "$T/conf/bundle-pool-1" >/dev/null 2>>"$T/init.log" || fail "device add: $(cat "$T/init.log")"
printf 'bundle = bundle-pool-1\nreader = pn532_uart:/dev/ttyUSB0\nstate-dir = %s/state\ngate = bench\nbench-dir = %s/b\nbench-reader = pool-1\n' \
	"$T" "$T" >"$T/conf/pool-1.conf"
CITYPASS_CONTROLLER_CONF_DIR="$T/conf" /lib/systemd/system-generators/citypass-controller-generator \
	"$T/gen" "$T/gen" "$T/gen" || fail "the installed generator failed"
grep -qx 'DeviceAllow=/dev/ttyUSB0 rw' "$T/gen/citypass-controller@pool-1.service.d/50-devices.conf" ||
	fail "the installed generator did not allow pool-1's reader"
echo "ok - the installed programs run: a deployment made and served, its back office, a gate's devices allowed"

dpkg --purge $PKGS >/dev/null 2>&1 || fail "dpkg --purge"
for p in $PKGS; do
	! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed || fail "$p still installed"
done
left=$(ls -d /usr/bin/citypass-* /lib/systemd/system/citypass-* /lib/udev/rules.d/*citypass* \
	/lib/systemd/system-generators/citypass-* \
	/usr/lib/sysusers.d/citypass-* /usr/share/doc/citypass-* /usr/share/man/man?/citypass-* \
	/var/lib/systemd/deb-systemd-helper-enabled/*citypass* \
	/var/lib/systemd/deb-systemd-helper-masked/*citypass* 2>/dev/null || true)
[ -z "$left" ] || fail "left after the purge: $left"
echo "ok - dpkg --purge leaves no file of the packages"
echo "Debian packages check passed"
