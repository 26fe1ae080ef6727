#!/bin/sh
# The systemd units shipped in dist/systemd (issue 15, item 2): `systemd-analyze verify`
# accepts both (the controller's as an instance, citypass-controller@pool-1), and
# `systemd-analyze security --offline` rates each exposure at most MAX_EXPOSURE (out of
# 10; systemd calls up to 2.0 "OK"). The units name the installed programs: here they name
# the built ones, through the same @CITYPASS_BINDIR@ the install rules fill in.
# --man=no: the units' Documentation=man:... pages are installed by the packages, not on
# this machine (dist_deb checks them there).
# Env: SERVER CONTROLLER DIST (the dist/ source directory).
set -eu
. "$(dirname "$0")/../support/procs.sh"
: "${SERVER:?}" "${CONTROLLER:?}" "${DIST:?}"
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
T=$(mktemp -d "${TMPDIR:-/tmp}/cpu-XXXXXX")
cleanup() { rm -rf "$T"; }
on_exit cleanup
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (Debian's systemd)"

mkdir "$T/bin"
ln -s "$SERVER" "$T/bin/citypass-server"
ln -s "$CONTROLLER" "$T/bin/citypass-controller"
for u in citypass-server.service citypass-controller@.service; do
	sed "s|@CITYPASS_BINDIR@|$T/bin|g" "$DIST/systemd/$u.in" >"$T/$u"
	! grep -n "@[A-Z_]*@" "$T/$u" || fail "$u: a placeholder is left"
done
cp "$T/citypass-controller@.service" "$T/citypass-controller@pool-1.service"

for u in citypass-server.service citypass-controller@pool-1.service; do
	out=$(cd "$T" && systemd-analyze verify --man=no "./$u" 2>&1) || fail "verify $u: $out"
	[ -z "$out" ] || fail "verify $u warns: $out"
	echo "ok - systemd-analyze verify $u"
	out=$(cd "$T" && systemd-analyze security --offline=true "./$u" 2>&1) || true
	score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	[ -n "$score" ] || fail "security $u: no score in: $(printf '%s\n' "$out" | tail -n 3)"
	awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' ||
		fail "security $u: exposure $score > $MAX_EXPOSURE: $(printf '%s\n' "$out" | grep '✗')"
	echo "ok - systemd-analyze security $u: exposure $score (at most $MAX_EXPOSURE)"
done

# the sandbox a reviewer looks for, stated in the files themselves
for u in citypass-server.service citypass-controller@.service; do
	for k in Type=notify WatchdogSec= NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
		"CapabilityBoundingSet=\$" User=citypass; do
		grep -q "^$k" "$T/$u" || fail "$u: no $k"
	done
done
grep -q "^DevicePolicy=closed" "$T/citypass-controller@.service" ||
	fail "the controller may open any device"
echo "ok - both units: notify, watchdog, a system user, no capability, a strict sandbox"
echo "systemd units check passed"
