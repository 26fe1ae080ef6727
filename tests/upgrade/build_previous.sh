#!/bin/sh
# build_previous.sh SOURCE_DIR BUILD_DIR : build the previous release's binaries (the commit
# in tests/upgrade/PREVIOUS_RELEASE) from this clone's git history, into
# BUILD_DIR/upgrade-prev/<commit>/, and print that directory. Only the five programs a
# deployment runs are built (Release, JOBS at most 2). A finished build is reused: the
# directory holds a stamp once every binary is there, so a rerun costs nothing.
# A clone without that commit (a shallow CI checkout) gets it fetched from origin when it
# can; otherwise the script fails, saying so: an upgrade test that skips tests nothing.
set -eu
SRC=$1
BUILD=$2
JOBS=${JOBS:-2}
[ "$JOBS" -gt 2 ] && JOBS=2
PREV=$(grep -v '^#' "$SRC/tests/upgrade/PREVIOUS_RELEASE" | tr -d ' \t' | grep . | head -n1)
OUT="$BUILD/upgrade-prev/$PREV"
TARGETS="citypass-admin citypass-server citypass-controller citypass-hil citypass-token"
if [ -f "$OUT/done" ]; then
	echo "$OUT"
	exit 0
fi
if ! git -C "$SRC" cat-file -e "$PREV^{commit}" 2>/dev/null; then
	echo "build_previous: commit $PREV (tests/upgrade/PREVIOUS_RELEASE) is not in this clone; fetching it from origin" >&2
	git -C "$SRC" fetch --quiet origin "$PREV" >&2 2>&1 ||
		git -C "$SRC" fetch --quiet --unshallow origin >&2 2>&1 || true
	git -C "$SRC" cat-file -e "$PREV^{commit}" 2>/dev/null || {
		echo "FAIL: the previous release $PREV is not in this clone's history (a shallow clone?) and could not be fetched: the upgrade test needs it (git fetch --unshallow, or a full clone)" >&2
		exit 1
	}
fi
rm -rf "$OUT"
mkdir -p "$OUT/src"
git -C "$SRC" archive --format=tar "$PREV" | tar -x -C "$OUT/src"
# the old tree's own CI setting must not turn an old warning under a newer compiler into
# a failed upgrade test
env -u CI cmake -S "$OUT/src" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release \
	-DCITYPASS_WERROR=OFF >"$OUT/configure.log" 2>&1 || {
	tail -n 30 "$OUT/configure.log" >&2
	echo "FAIL: configuring the previous release $PREV" >&2
	exit 1
}
# shellcheck disable=SC2086
cmake --build "$OUT/build" -j "$JOBS" --target $TARGETS >"$OUT/build.log" 2>&1 || {
	tail -n 30 "$OUT/build.log" >&2
	echo "FAIL: building the previous release $PREV" >&2
	exit 1
}
mkdir -p "$OUT/bin"
for t in $TARGETS; do
	f=$(find "$OUT/build" -type f -name "$t" -perm -u+x | head -n1)
	[ -n "$f" ] || { echo "FAIL: the previous release built no $t" >&2; exit 1; }
	cp "$f" "$OUT/bin/$t"
done
# the sources and objects are not needed any more: keep the binaries only
rm -rf "$OUT/src" "$OUT/build"
touch "$OUT/done"
echo "$OUT"
