#!/bin/sh
# Build the Debian packages (citypass-server, citypass-controller, citypass-office,
# citypass-tools) with Debian's own tooling, from the tree as it is (tracked and new files,
# not build output), in OUT (default build/deb): dpkg-buildpackage writes its packages
# beside the source directory, so the source is copied into OUT/src first and nothing lands
# outside OUT.
# Then lintian: an error or a warning fails the build. Prints the .deb paths.
# Usage: scripts/deb.sh [OUT]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/deb}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
rm -rf "$out"
mkdir -p "$out/src"
(cd "$top" && git ls-files -co --exclude-standard -z | xargs -0 tar cf - 2>/dev/null) |
	(cd "$out/src" && tar xf -)
(cd "$out/src" && dpkg-buildpackage -b -us -uc -j"${JOBS:-2}" >"$out/build.log" 2>&1) ||
	{ tail -n 40 "$out/build.log" >&2; echo "deb.sh: dpkg-buildpackage failed (log: $out/build.log)" >&2; exit 1; }
debs=$(ls "$out"/*.deb)
lintian --fail-on error,warning --suppress-tags-from-file /dev/null $debs >"$out/lintian.log" 2>&1 ||
	{ cat "$out/lintian.log" >&2; echo "deb.sh: lintian reports errors or warnings" >&2; exit 1; }
rm -rf "$out/src"
printf '%s\n' $debs
