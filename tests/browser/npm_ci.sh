#!/bin/sh
# npm_ci.sh SRC_DIR DEST_DIR — puppeteer-core (and nothing else) into the build tree.
#
# The browser tests' node_modules live in DEST_DIR (build/tests/browser), never in the
# sources: package.json and package-lock.json are copied there and `npm ci` installs
# exactly the locked versions, with no install scripts run (--ignore-scripts: puppeteer-core
# downloads no browser anyway; the tests use Debian's chromium). A second run with the
# same lock file does nothing (the copy of the lock is the stamp); a fresh build tree
# installs from npm's cache (--prefer-offline: no registry round trip for what is cached;
# the cache is npm's own, ~/.npm, or $CITYPASS_NPM_CACHE).
set -eu
src=$1
dest=$2
for c in node npm; do
	command -v $c >/dev/null 2>&1 || {
		echo "npm_ci: no $c: scripts/install-deps.sh installs Debian's nodejs and npm" >&2
		exit 1
	}
done
mkdir -p "$dest"
if [ -f "$dest/node_modules/.package-lock.json" ] && [ -f "$dest/package-lock.json" ] &&
	cmp -s "$src/package-lock.json" "$dest/package-lock.json" &&
	cmp -s "$src/package.json" "$dest/package.json"; then
	echo "npm_ci: node_modules in $dest up to date with tests/browser/package-lock.json"
	exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cache=
if [ -n "${CITYPASS_NPM_CACHE:-}" ]; then cache="--cache=$CITYPASS_NPM_CACHE"; fi
cd "$dest"
# shellcheck disable=SC2086 # $cache is empty or one word
if ! npm ci --ignore-scripts --no-audit --no-fund --prefer-offline $cache; then
	rm -f "$dest/package-lock.json" # not up to date: the next run tries again
	echo "npm_ci: npm ci failed in $dest (above): is npm's registry reachable?" >&2
	exit 1
fi
node -e "require('puppeteer-core')" || {
	rm -f "$dest/package-lock.json"
	echo "npm_ci: puppeteer-core installed but does not load with $(node --version)" >&2
	exit 1
}
echo "npm_ci: puppeteer-core $(node -p "require('puppeteer-core/package.json').version") in $dest/node_modules"
