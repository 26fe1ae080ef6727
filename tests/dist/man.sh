#!/bin/sh
# The man pages (issue 15, item 7): one per installed program, generated at build time from
# the program's own --help by help2man (scripts/manpages.sh); each renders with `man -l`
# without a warning, and every option of every --help — each citypass-admin command's and
# subcommand's too — is in its page: --help and the page cannot disagree.
# Env: MAN_DIR SERVER CONTROLLER ADMIN LIST TOKEN OFFICE.
set -eu
: "${MAN_DIR:?}" "${SERVER:?}" "${CONTROLLER:?}" "${ADMIN:?}" "${LIST:?}" "${TOKEN:?}" "${OFFICE:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cpman-XXXXXX")
trap 'rm -rf "$T"' EXIT

# render PAGE : its text, failing on any warning of man/groff
render() {
	LC_ALL=C.UTF-8 MANWIDTH=200 man --warnings -E UTF-8 -l "$1" >"$T/page.txt" 2>"$T/warn.txt" ||
		fail "man -l $1: $(cat "$T/warn.txt")"
	[ ! -s "$T/warn.txt" ] || fail "man -l $1 warns: $(cat "$T/warn.txt")"
	# the rendered text with its hyphens as typed (groff may turn - into U+2010)
	sed 's/‐/-/g' "$T/page.txt"
}
# options HELP-TEXT : every --long-option it names
options() { grep -o -- '--[a-z][a-z0-9-]*' | sort -u; }
# covers PAGE-TEXT-FILE HELP-TEXT-FILE WHAT
covers() {
	for o in $(options <"$2"); do
		grep -q -- "$o" "$1" || fail "$3: $o is in --help and not in the man page"
	done
}

for p in "$SERVER:8" "$CONTROLLER:8" "$OFFICE:8" "$ADMIN:1" "$LIST:1" "$TOKEN:1"; do
	prog=${p%:*} sec=${p##*:}
	name=$(basename "$prog")
	page="$MAN_DIR/$name.$sec"
	[ -f "$page" ] || fail "no man page $page"
	render "$page" >"$T/$name.txt"
	grep -q "^NAME" "$T/$name.txt" && grep -q "^SYNOPSIS\|^DESCRIPTION" "$T/$name.txt" ||
		fail "$page: no NAME/DESCRIPTION"
	"$prog" --help >"$T/help.txt" 2>&1 || true
	covers "$T/$name.txt" "$T/help.txt" "$name --help"
	echo "ok - $name($sec): renders without warning, holds every option of --help"
done

# every citypass-admin command and subcommand, as its own help names them
n=0
"$ADMIN" --help | sed -n '/^commands:/,/^$/p' | sed '1d;/^$/d' | awk '{print $1, $2}' >"$T/cmds"
while read -r cmd subs; do
	case $subs in *\|* | list | add | export | report) ;; *) subs= ;; esac
	for s in $(echo "${subs:-.}" | tr '|' ' '); do
		[ "$s" = . ] && s=
		# shellcheck disable=SC2086
		"$ADMIN" $cmd $s --help >"$T/help.txt" 2>&1 || "$ADMIN" $cmd --help >"$T/help.txt" 2>&1 || true
		covers "$T/citypass-admin.txt" "$T/help.txt" "citypass-admin $cmd $s --help"
		n=$((n + 1))
	done
done <"$T/cmds"
[ "$n" -ge 20 ] || fail "only $n citypass-admin commands found in its help"
echo "ok - citypass-admin(1): the options of all $n commands and subcommands"
echo "man pages check passed"
