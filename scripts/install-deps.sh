#!/bin/sh
# Install the Debian 12 packages citypass needs to build, test and run its bench.
# Called by `make test`, `make demo` and `make bench`, so a fresh machine needs nothing
# done by hand. Installs only what is missing; does nothing when all is there.
#
# Usage: scripts/install-deps.sh [--check]
#   --check   only report missing packages (exit 1 if any), install nothing.
set -eu

# Build and runtime libraries (pkg-config names in CMakeLists.txt), test tools, and the
# independent reference clients the tests run against our code (nfc-list, libfreefare's
# tools, openssl). libgpiod-dev is for the controller's gpio gate backend; libfaketime
# gives a controller a wrong system clock in the clock tests (issue 10); libsystemd-dev
# lets the daemons talk to systemd (readiness, watchdog, journald: service/); libargon2-dev
# derives a backup's key from its passphrase, and the argon2 tool checks that derivation.
# libpq-dev is the PostgreSQL store's client (issue 16); postgresql is the server the tests
# start for themselves (tests/support/pg_run.sh: initdb in a temporary directory). jq is
# the independent JSON parser that reads a holder's export back (issue 17). The back
# office's browser tests (issue 18, tests/browser/) drive Debian's chromium and Firefox ESR
# headless with puppeteer-core from npm (npm's registry, never a browser download: the
# tests connect to /usr/bin/chromium and /usr/bin/firefox-esr); certutil (libnss3-tools)
# makes the test's CA a trust anchor of Firefox's temporary profile; xmllint
# (libxml2-utils) is the independent XML parser that reads the server-drawn SVG charts back. libssl-dev is the back office's HTTPS (libevent's OpenSSL
# bufferevent, docs/office.md; issue 18), and libqrencode-dev draws the QR code a phone's
# wallet scans there.
PACKAGES="
cmake
make
gcc
pkg-config
libnfc-dev
libnfc-bin
libnfc-examples
libmbedtls-dev
libsqlite3-dev
sqlite3
libevent-dev
libprotobuf-c-dev
protobuf-c-compiler
libcmocka-dev
openssl
xxd
libfreefare-dev
libfreefare-bin
libgpiod-dev
libfaketime
curl
libargon2-dev
help2man
debhelper
lintian
fakeroot
argon2
libsystemd-dev
libpq-dev
postgresql
jq
chromium
firefox-esr
libnss3-tools
libxml2-utils
libssl-dev
libqrencode-dev
"

# node and npm: Debian's nodejs and npm, unless a node with its npm is already there (a
# NodeSource nodejs bundles npm and conflicts with Debian's npm package: asking dpkg for
# `npm` there would make apt remove node). Only the commands matter to the tests.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	PACKAGES="$PACKAGES nodejs npm"
fi

# Extra packages for the sanitizer and fuzzing builds (clang's libFuzzer runtime).
if [ "${CITYPASS_DEPS_FUZZ:-0}" = 1 ]; then
	PACKAGES="$PACKAGES clang libclang-rt-14-dev"
fi

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -z "$missing" ]; then
	exit 0
fi

if [ "${1:-}" = "--check" ]; then
	echo "citypass: missing Debian packages:$missing" >&2
	exit 1
fi

if [ "$(id -u)" = 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	SUDO="sudo -n"
else
	echo "citypass: these Debian packages are missing:$missing" >&2
	echo "citypass: installing them needs root; run as root, or give this user sudo, or run:" >&2
	echo "    apt-get install$missing" >&2
	exit 1
fi

echo "citypass: installing missing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# An old or absent package index makes apt-get fail to find packages: refresh it first.
$SUDO apt-get update -q >&2
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y -q --no-install-recommends $missing >&2
