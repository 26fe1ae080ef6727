#!/bin/sh
# Print the path of a promtool (Prometheus's format checker), fetching it if needed.
# The Debian package `prometheus` would also install and start a Prometheus server: the
# tests need only its promtool, so the package is downloaded (apt-get download) and that
# one binary extracted into DIR (default: build/tools), never installed.
# Usage: scripts/promtool.sh [DIR]
set -eu
if command -v promtool >/dev/null 2>&1; then
	command -v promtool
	exit 0
fi
dir=${1:-build/tools}
if [ -x "$dir/promtool" ]; then
	echo "$dir/promtool"
	exit 0
fi
mkdir -p "$dir"
work=$(mktemp -d "$dir/.promtool-XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt runs downloads as _apt, which cannot write a root-owned temp dir: let it
chmod 755 "$work"
(cd "$work" && apt-get download -q prometheus >/dev/null 2>&1) ||
	{ echo "promtool.sh: cannot download Debian's prometheus package (apt-get download)" >&2; exit 1; }
dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
mv "$work/x/usr/bin/promtool" "$dir/promtool"
echo "$dir/promtool"
