#!/bin/sh
# browser_run.sh — run one test beside a headless chromium of its own (issue 18, item 5).
#
#   sh tests/support/browser_run.sh [--trust CERT.pem | --spki HASH]... COMMAND [ARG...]
#
# Starts Debian's chromium (/usr/bin/chromium, or $CITYPASS_CHROMIUM) headless with a fresh
# temporary profile, HOME and XDG directories (nothing of the user's own profile is read or
# written), the DevTools endpoint on a port the kernel picks (--remote-debugging-port=0,
# read back from the profile's DevToolsActivePort: tests running in parallel never clash),
# then runs COMMAND with
#   CITYPASS_BROWSER_WS   the browser's DevTools websocket (puppeteer.connect's
#                         browserWSEndpoint)
#   CITYPASS_BROWSER_DIR  the temporary directory (profile, chromium's log)
#   CITYPASS_BROWSER_PID  the browser process, leader of chromium's process group
# and stops chromium and removes the directory however COMMAND ends. Exit status: COMMAND's.
#
# Why the shell starts chromium and the test only connects to it (rather than
# puppeteer.launch): the browser's life is then held here, by the same exit convention as
# every other test (procs.sh), whatever happens to the node process.
#  - chromium runs in a session and process group of its own (setsid): its zygote, GPU,
#    network and renderer processes are all in that group, and the cleanup kills the whole
#    group (SIGTERM, then SIGKILL after STOP_GRACE), not just the browser process.
#  - a parent-death signal (prctl PR_SET_PDEATHSIG through setpriv): if this script is
#    killed with SIGKILL (ctest's timeout), the browser process gets SIGKILL too, and its
#    children, whose IPC channel to it closes, exit by themselves. citypass-test-guard
#    adopts and names anything left (it walks the process tree, not the group), and the
#    tests_left_nothing sweep finds it by its CITYPASS_TEST_BUILD environment.
#  - what a SIGKILL leaves is the directory: the next run removes the directories whose
#    script is gone (as pg_run.sh does).
#
# The sandbox: chromium refuses to start as root with its sandbox on, and CI runs as root;
# then (and only then) chromium gets --no-sandbox. The pages it loads are the test's own
# (the back office on 127.0.0.1 or the harness's page), never the network's. As another
# user the sandbox stays on; CITYPASS_BROWSER_NO_SANDBOX=1 turns it off where user
# namespaces are not available (some containers): say so when you use it.
#
# TLS: --trust CERT.pem (repeatable) makes chromium accept a server whose chain holds one
# of the certificates in CERT.pem (--ignore-certificate-errors-spki-list with their SPKI
# SHA-256 hashes, a flag chromium honours only with its own --user-data-dir, as here).
# chromium matches the hashes against the chain the server presents: a server sending its
# own certificate only is trusted by that certificate's hash, not its CA's; --spki HASH
# gives such a hash directly (base64 of the SHA-256 of the DER SubjectPublicKeyInfo, as
# office_run.sh prints it). Every other certificate error still stops the page: there is
# no blanket --ignore-certificate-errors.
#
# Env: CITYPASS_CHROMIUM (default /usr/bin/chromium), BROWSER_START_TIMEOUT (seconds to
# wait for the DevTools endpoint, default 60: a shared 2-core machine can be slow).
set -eu
. "$(dirname "$0")/procs.sh"

CHROMIUM=${CITYPASS_CHROMIUM:-/usr/bin/chromium}
START_TIMEOUT=${BROWSER_START_TIMEOUT:-60}

trust=
spki=
while [ $# -gt 0 ]; do
	case "$1" in
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
	echo "usage: browser_run.sh [--trust CERT.pem | --spki HASH]... COMMAND [ARG...]" >&2
	exit 2
fi
if [ ! -x "$CHROMIUM" ]; then
	echo "browser_run: no $CHROMIUM: chromium is not installed (scripts/install-deps.sh" \
		"installs Debian's chromium)" >&2
	exit 1
fi

# SPKI hashes of every certificate in each --trust file, computed with openssl (not ours)
for f in $trust; do
	if [ ! -r "$f" ]; then
		echo "browser_run: --trust $f: no such readable file" >&2
		exit 1
	fi
	n=0
	tmp=$(mktemp)
	# one certificate per file for openssl x509, which reads only the first of a bundle
	awk -v out="$tmp" '/-----BEGIN CERTIFICATE-----/{n++} n{print > (out "." n)}' "$f"
	for c in "$tmp".*; do
		[ -f "$c" ] || continue
		h=$(openssl x509 -in "$c" -pubkey -noout | openssl pkey -pubin -outform der |
			openssl dgst -sha256 -binary | base64)
		spki="${spki:+$spki,}$h"
		n=$((n + 1))
	done
	rm -f "$tmp" "$tmp".*
	if [ $n -eq 0 ]; then
		echo "browser_run: --trust $f: no PEM certificate in it" >&2
		exit 1
	fi
done

base=${TMPDIR:-/tmp}
for d in "$base"/citypass-browser.*; do
	[ -f "$d/runner" ] || continue
	kill -0 "$(cat "$d/runner")" 2>/dev/null && continue
	# a helper of that chromium may still be writing its last file: once more after it
	rm -rf "$d" 2>/dev/null || { sleep 0.5; rm -rf "$d"; } || true
done

dir=$(mktemp -d "$base/citypass-browser.XXXXXX")
echo $$ >"$dir/runner"
mkdir "$dir/profile" "$dir/home" "$dir/cache" "$dir/config"
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
			echo "browser_run: chromium's group $pid still running ${STOP_GRACE} s after" \
				"SIGTERM: SIGKILL" >&2
			kill -KILL "-$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
on_exit cleanup

sandbox=
if [ "$(id -u)" = 0 ] || [ "${CITYPASS_BROWSER_NO_SANDBOX:-0}" = 1 ]; then
	sandbox=--no-sandbox
fi
spki_flag=
if [ -n "$spki" ]; then
	spki_flag="--ignore-certificate-errors-spki-list=$spki"
fi

# --headless=new is the real browser without a window (the old headless mode is a separate
# implementation); no first-run, sync, extensions, translation or background networking:
# the browser talks to the test's pages and nothing else. --disable-dev-shm-usage: a
# container's /dev/shm is often 64 MiB, too small for renderers.
# shellcheck disable=SC2086 # $sandbox and $spki_flag are empty or one word
HOME="$dir/home" XDG_CONFIG_HOME="$dir/config" XDG_CACHE_HOME="$dir/cache" \
	setsid setpriv --pdeathsig KILL -- "$CHROMIUM" \
	--headless=new $sandbox $spki_flag \
	--user-data-dir="$dir/profile" --remote-debugging-port=0 --remote-debugging-address=127.0.0.1 \
	--no-first-run --no-default-browser-check --disable-background-networking \
	--disable-sync --disable-extensions --disable-component-update --disable-translate \
	--disable-features=Translate,OptimizationHints,MediaRouter --disable-dev-shm-usage \
	--metrics-recording-only --password-store=basic --use-mock-keychain \
	--window-size=1280,900 about:blank >"$dir/chromium.log" 2>&1 &
pid=$!

# DevToolsActivePort: first line the port, second the browser's websocket path
i=0
ws=
while [ $i -lt $((START_TIMEOUT * 10)) ]; do
	if [ -s "$dir/profile/DevToolsActivePort" ]; then
		port=$(sed -n 1p "$dir/profile/DevToolsActivePort")
		path=$(sed -n 2p "$dir/profile/DevToolsActivePort")
		if [ -n "$port" ] && [ -n "$path" ]; then
			ws="ws://127.0.0.1:$port$path"
			break
		fi
	fi
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$dir/chromium.log" >&2
		echo "browser_run: chromium exited before opening its DevTools endpoint (its log" \
			"above)" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$ws" ]; then
	cat "$dir/chromium.log" >&2
	echo "browser_run: chromium opened no DevTools endpoint in $START_TIMEOUT s (its log" \
		"above)" >&2
	exit 1
fi

export CITYPASS_BROWSER_WS="$ws"
export CITYPASS_BROWSER_DIR="$dir"
export CITYPASS_BROWSER_PID="$pid"
"$@"
