#!/bin/sh
# browser_run.sh — run one test beside a headless browser of its own (issue 18, items 1 and 5).
#
#   sh tests/support/browser_run.sh [--browser chromium|firefox] [--trust CERT.pem | --spki HASH]...
#       COMMAND [ARG...]
#
# Starts Debian's chromium (/usr/bin/chromium, or $CITYPASS_CHROMIUM) or Debian's Firefox ESR
# (/usr/bin/firefox-esr, or $CITYPASS_FIREFOX) headless with a fresh temporary profile, HOME,
# TMPDIR and XDG directories (nothing of the user's own profile is read or written), its
# remote endpoint on a port the kernel picks (port 0, read back from the profile: chromium's
# DevToolsActivePort, Firefox's WebDriverBiDiServer.json; tests running in parallel never
# clash), then runs COMMAND with
#   CITYPASS_BROWSER_WS        the browser's websocket (puppeteer.connect's browserWSEndpoint)
#   CITYPASS_BROWSER_PROTOCOL  cdp (chromium, the DevTools protocol) or webDriverBiDi
#                              (Firefox: puppeteer drives it over WebDriver BiDi only)
#   CITYPASS_BROWSER_NAME      chromium or firefox
#   CITYPASS_BROWSER_DIR       the temporary directory (profile, the browser's log)
#   CITYPASS_BROWSER_PID       the browser process, leader of the browser's process group
# and stops the browser and removes the directory however COMMAND ends. Exit status:
# COMMAND's. --browser defaults to $CITYPASS_BROWSER, else chromium.
#
# Why the shell starts the browser and the test only connects to it (rather than
# puppeteer.launch): the browser's life is then held here, by the same exit convention as
# every other test (procs.sh), whatever happens to the node process.
#  - the browser runs in a session and process group of its own (setsid): chromium's
#    zygote, GPU, network and renderer processes, Firefox's content, socket and utility
#    processes, are all in that group, and the cleanup kills the whole group (SIGTERM, then
#    SIGKILL after STOP_GRACE), not just the browser process.
#  - a parent-death signal (prctl PR_SET_PDEATHSIG through setpriv): if this script is
#    killed with SIGKILL (ctest's timeout), the browser process gets SIGKILL too, and its
#    children, whose IPC channel to it closes, exit by themselves. citypass-test-guard
#    adopts and names anything left (it walks the process tree, not the group), and the
#    tests_left_nothing sweep finds it by its CITYPASS_TEST_BUILD environment.
#  - what a SIGKILL leaves is the directory: the next run removes the directories whose
#    script is gone (as pg_run.sh does).
#
# The sandbox: chromium refuses to start as root with its sandbox on, and CI runs as root;
# then (and only then) chromium gets --no-sandbox. Firefox keeps its sandbox as root. The
# pages the browser loads are the test's own (the back office on 127.0.0.1 or the harness's
# page), never the network's. CITYPASS_BROWSER_NO_SANDBOX=1 turns the sandbox off where
# user namespaces are not available (some containers): say so when you use it.
#
# TLS: --trust CERT.pem (repeatable) makes the browser accept a server whose chain holds one
# of the certificates in CERT.pem, and nothing else: no blanket certificate exception.
#  - chromium: --ignore-certificate-errors-spki-list with their SPKI SHA-256 hashes, a flag
#    chromium honours only with its own --user-data-dir, as here. chromium matches the
#    hashes against the chain the server presents: a server sending its own certificate
#    only is trusted by that certificate's hash, not its CA's; --spki HASH gives such a
#    hash directly (base64 of the SHA-256 of the DER SubjectPublicKeyInfo, as office_run.sh
#    prints it).
#  - Firefox: the certificates become trust anchors ("C,,") of the temporary profile's own
#    NSS database (certutil, Debian's libnss3-tools); Firefox then verifies the server as
#    for any CA, names and dates included, and builds the chain to a CA the server does not
#    send. Firefox has no SPKI list: --spki is refused, give the CA with --trust.
#
# Env: CITYPASS_CHROMIUM, CITYPASS_FIREFOX, BROWSER_START_TIMEOUT (seconds to wait for the
# endpoint, default 60: a shared 2-core machine can be slow).
set -eu
. "$(dirname "$0")/procs.sh"

START_TIMEOUT=${BROWSER_START_TIMEOUT:-60}

browser=${CITYPASS_BROWSER:-chromium}
trust=
spki=
while [ $# -gt 0 ]; do
	case "$1" in
	--browser)
		[ $# -ge 2 ] || {
			echo "browser_run: --browser needs chromium or firefox" >&2
			exit 2
		}
		browser=$2
		shift 2
		;;
	--trust)
		[ $# -ge 2 ] || {
			echo "browser_run: --trust needs a PEM file" >&2
			exit 2
		}
		trust="$trust $2"
		shift 2
		;;
	--spki)
		[ $# -ge 2 ] || {
			echo "browser_run: --spki needs a base64 SHA-256 hash" >&2
			exit 2
		}
		case $2 in
		*[!A-Za-z0-9+/=]* | "")
			echo "browser_run: --spki '$2' is not a base64 hash" >&2
			exit 2
			;;
		esac
		spki="${spki:+$spki,}$2"
		shift 2
		;;
	--) shift; break ;;
	*) break ;;
	esac
done
if [ $# -lt 1 ]; then
	echo "usage: browser_run.sh [--browser chromium|firefox] [--trust CERT.pem | --spki HASH]..." \
		"COMMAND [ARG...]" >&2
	exit 2
fi
case $browser in
chromium)
	BROWSER_BIN=${CITYPASS_CHROMIUM:-/usr/bin/chromium}
	package=chromium
	;;
firefox)
	BROWSER_BIN=${CITYPASS_FIREFOX:-/usr/bin/firefox-esr}
	package=firefox-esr
	if [ -n "$spki" ]; then
		echo "browser_run: firefox has no SPKI list (--spki): give the server's CA with --trust" >&2
		exit 2
	fi
	if [ -n "$trust" ] && ! command -v certutil >/dev/null 2>&1; then
		echo "browser_run: no certutil: scripts/install-deps.sh installs Debian's libnss3-tools" >&2
		exit 1
	fi
	;;
*)
	echo "browser_run: --browser '$browser': chromium or firefox" >&2
	exit 2
	;;
esac
if [ ! -x "$BROWSER_BIN" ]; then
	echo "browser_run: no $BROWSER_BIN: $browser is not installed (scripts/install-deps.sh" \
		"installs Debian's $package)" >&2
	exit 1
fi

# each_cert FILE OUT_PREFIX: one certificate per file (OUT_PREFIX.1, .2, ...), for openssl x509
# and certutil, which read only the first of a bundle; prints how many
each_cert() {
	awk -v out="$2" '/-----BEGIN CERTIFICATE-----/{n++} n{print > (out "." n)} END {print n + 0}' "$1"
}
for f in $trust; do
	if [ ! -r "$f" ]; then
		echo "browser_run: --trust $f: no such readable file" >&2
		exit 1
	fi
	tmp=$(mktemp)
	n=$(each_cert "$f" "$tmp")
	rm -f "$tmp" "$tmp".*
	if [ "$n" -eq 0 ]; then
		echo "browser_run: --trust $f: no PEM certificate in it" >&2
		exit 1
	fi
done

base=${TMPDIR:-/tmp}
for d in "$base"/citypass-browser.*; do
	[ -f "$d/runner" ] || continue
	kill -0 "$(cat "$d/runner")" 2>/dev/null && continue
	# a helper of that browser may still be writing its last file: once more after it
	rm -rf "$d" 2>/dev/null || { sleep 0.5; rm -rf "$d"; } || true
done

dir=$(mktemp -d "$base/citypass-browser.XXXXXX")
echo $$ >"$dir/runner"
mkdir "$dir/profile" "$dir/home" "$dir/cache" "$dir/config" "$dir/tmp"
pid=
cleanup() {
	if [ -n "$pid" ]; then
		# the whole group: the browser and every helper process it forked
		kill -TERM "-$pid" 2>/dev/null || true
		i=0
		while kill -0 "-$pid" 2>/dev/null && [ $i -lt $((STOP_GRACE * 10)) ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "-$pid" 2>/dev/null; then
			echo "browser_run: $browser's group $pid still running ${STOP_GRACE} s after" \
				"SIGTERM: SIGKILL" >&2
			kill -KILL "-$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
		# Firefox's crash helper is not in the group: it leaves the browser's session
		# (its own setsid) and watches the browser's pid, exiting after it. Waited for, so
		# that nothing of this browser outlives the script; killed if it lingers.
		i=0
		while [ -n "$(outside_helpers)" ] && [ $i -lt $((STOP_GRACE * 10)) ]; do
			sleep 0.1
			i=$((i + 1))
		done
		for h in $(outside_helpers); do
			echo "browser_run: $browser's helper $h still running ${STOP_GRACE} s after" \
				"the browser: SIGKILL" >&2
			kill -KILL "$h" 2>/dev/null || true
		done
	fi
	rm -rf "$dir"
}
# the browser's helper processes outside its process group: Firefox's crashhelper, whose
# first argument is the browser's pid (none for chromium)
outside_helpers() {
	[ "$browser" = firefox ] || return 0
	ps -eo pid=,args= | awk -v p="$pid" '$2 ~ /\/crashhelper$/ && $3 == p {print $1}'
}
on_exit cleanup

# --headless=new is the real browser without a window (the old headless mode is a separate
# implementation); no first-run, sync, extensions, translation or background networking:
# the browser talks to the test's pages and nothing else. --disable-dev-shm-usage: a
# container's /dev/shm is often 64 MiB, too small for renderers.
start_chromium() {
	for f in $trust; do
		tmp=$(mktemp)
		each_cert "$f" "$tmp" >/dev/null
		for c in "$tmp".*; do
			h=$(openssl x509 -in "$c" -pubkey -noout | openssl pkey -pubin -outform der |
				openssl dgst -sha256 -binary | base64)
			spki="${spki:+$spki,}$h"
		done
		rm -f "$tmp" "$tmp".*
	done
	sandbox=
	if [ "$(id -u)" = 0 ] || [ "${CITYPASS_BROWSER_NO_SANDBOX:-0}" = 1 ]; then
		sandbox=--no-sandbox
	fi
	spki_flag=
	if [ -n "$spki" ]; then
		spki_flag="--ignore-certificate-errors-spki-list=$spki"
	fi
	# shellcheck disable=SC2086 # $sandbox and $spki_flag are empty or one word
	HOME="$dir/home" XDG_CONFIG_HOME="$dir/config" XDG_CACHE_HOME="$dir/cache" TMPDIR="$dir/tmp" \
		setsid setpriv --pdeathsig KILL -- "$BROWSER_BIN" \
		--headless=new $sandbox $spki_flag \
		--user-data-dir="$dir/profile" --remote-debugging-port=0 --remote-debugging-address=127.0.0.1 \
		--no-first-run --no-default-browser-check --disable-background-networking \
		--disable-sync --disable-extensions --disable-component-update --disable-translate \
		--disable-features=Translate,OptimizationHints,MediaRouter --disable-dev-shm-usage \
		--metrics-recording-only --password-store=basic --use-mock-keychain \
		--window-size=1280,900 about:blank >"$dir/browser.log" 2>&1 &
	pid=$!
}
# DevToolsActivePort: first line the port, second the browser's websocket path
chromium_endpoint() {
	[ -s "$dir/profile/DevToolsActivePort" ] || return 1
	port=$(sed -n 1p "$dir/profile/DevToolsActivePort")
	path=$(sed -n 2p "$dir/profile/DevToolsActivePort")
	[ -n "$port" ] && [ -n "$path" ] || return 1
	echo "ws://127.0.0.1:$port$path"
}

# Firefox reads its preferences from the profile's user.js. The remote agent already sets
# its recommended preferences (no updates, no telemetry, no safe-browsing lists, no first
# run pages: remote.prefs.recommended); these close what is left of the background network
# (captive portal and connectivity probes, remote settings, search and add-on updates,
# prefetching), so that the browser talks to the test's pages only.
firefox_prefs() {
	cat <<'PREFS'
user_pref("app.update.disabledForTesting", true);
user_pref("app.normandy.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.blockedURIs.enabled", false);
user_pref("browser.search.update", false);
user_pref("browser.region.network.url", "");
user_pref("browser.topsites.contile.enabled", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.server", "");
user_pref("toolkit.telemetry.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("extensions.getAddons.cache.enabled", false);
user_pref("extensions.blocklist.enabled", false);
user_pref("media.gmp-manager.updateEnabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("network.predictor.enabled", false);
user_pref("services.settings.server", "");
user_pref("security.OCSP.enabled", 0);
user_pref("security.remote_settings.crlite_filters.enabled", false);
user_pref("signon.rememberSignons", false);
PREFS
}
start_firefox() {
	firefox_prefs >"$dir/profile/user.js"
	if [ -n "$trust" ]; then
		# the profile's own NSS database, empty password; Firefox opens it at start
		certutil -N -d "sql:$dir/profile" --empty-password
		for f in $trust; do
			tmp=$(mktemp)
			each_cert "$f" "$tmp" >/dev/null
			for c in "$tmp".*; do
				certutil -A -d "sql:$dir/profile" -n "citypass-test-${c##*.}-$(basename "$f")" \
					-t "C,," -i "$c"
			done
			rm -f "$tmp" "$tmp".*
		done
	fi
	if [ "${CITYPASS_BROWSER_NO_SANDBOX:-0}" = 1 ]; then
		export MOZ_DISABLE_CONTENT_SANDBOX=1 MOZ_DISABLE_GMP_SANDBOX=1 \
			MOZ_DISABLE_RDD_SANDBOX=1 MOZ_DISABLE_SOCKET_PROCESS_SANDBOX=1
	fi
	# --no-remote: never hand the URL to a Firefox already running for this user; the
	# remote agent listens on 127.0.0.1 only. No crash reporter (no minidump left behind).
	HOME="$dir/home" XDG_CONFIG_HOME="$dir/config" XDG_CACHE_HOME="$dir/cache" TMPDIR="$dir/tmp" \
		MOZ_CRASHREPORTER_DISABLE=1 \
		setsid setpriv --pdeathsig KILL -- "$BROWSER_BIN" \
		--headless --no-remote --profile "$dir/profile" --remote-debugging-port 0 \
		--window-size 1280,900 about:blank >"$dir/browser.log" 2>&1 &
	pid=$!
}
# WebDriverBiDiServer.json: {"ws_host": "127.0.0.1", "ws_port": N}; the BiDi session
# endpoint is /session
firefox_endpoint() {
	[ -s "$dir/profile/WebDriverBiDiServer.json" ] || return 1
	port=$(sed -n 's/.*"ws_port": *\([0-9][0-9]*\).*/\1/p' "$dir/profile/WebDriverBiDiServer.json")
	[ -n "$port" ] || return 1
	echo "ws://127.0.0.1:$port/session"
}

case $browser in
chromium) start_chromium; protocol=cdp ;;
firefox) start_firefox; protocol=webDriverBiDi ;;
esac

i=0
ws=
while [ $i -lt $((START_TIMEOUT * 10)) ]; do
	if ws=$("${browser}_endpoint"); then
		break
	fi
	ws=
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$dir/browser.log" >&2
		echo "browser_run: $browser exited before opening its remote endpoint (its log" \
			"above)" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$ws" ]; then
	cat "$dir/browser.log" >&2
	echo "browser_run: $browser opened no remote endpoint in $START_TIMEOUT s (its log" \
		"above)" >&2
	exit 1
fi

export CITYPASS_BROWSER_WS="$ws"
export CITYPASS_BROWSER_PROTOCOL="$protocol"
export CITYPASS_BROWSER_NAME="$browser"
export CITYPASS_BROWSER_DIR="$dir"
export CITYPASS_BROWSER_PID="$pid"
"$@"
