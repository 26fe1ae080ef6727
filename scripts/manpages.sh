#!/bin/sh
# Write a man page per installed program into OUT, generated from the programs' own --help
# and --version by Debian's help2man: one source, so a man page never disagrees with
# --help on an option. citypass-admin's page also holds every command's and subcommand's
# --help (section COMMANDS), the commands read from its own help text.
# Usage: scripts/manpages.sh OUT SERVER CONTROLLER ADMIN LIST TOKEN OFFICE (paths to the
# programs)
set -eu
[ $# = 7 ] || { echo "usage: manpages.sh OUT SERVER CONTROLLER ADMIN LIST TOKEN OFFICE" >&2; exit 2; }
out=$1 server=$2 controller=$3 admin=$4 list=$5 token=$6 office=$7
command -v help2man >/dev/null || { echo "manpages.sh: help2man is missing (Debian package help2man)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# roff: a text kept as it is (backslashes escaped, lines that roff would read as requests
# protected)
verbatim() { printf '.nf\n'; sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; printf '.fi\n'; }

# page PROGRAM SECTION "DESCRIPTION" [INCLUDE]
page() {
	_name=$(basename "$1")
	# help2man wants an include file with at least one section: SEE ALSO, where each
	# page points to the others and to the project's documentation
	_inc=$tmp/$_name.h2m
	{
		[ $# -ge 4 ] && cat "$4"
		printf '[SEE ALSO]\n'
		printf 'citypass-server(8), citypass-controller(8), citypass-office(8), citypass-admin(1),\n'
		printf 'citypass-list(1), citypass-token(1); the project'"'"'s docs/ directory (operations.md,\n'
		printf 'admin.md, office.md).\n'
	} >"$_inc"
	help2man --no-info --no-discard-stderr --section="$2" --name="$3" --include="$_inc" \
		--output="$out/$_name.$2" "$1" || { echo "manpages.sh: help2man $1 failed" >&2; exit 1; }
}

page "$server" 8 "citypass sync server: lists to the gates, anonymised usage from them"
page "$controller" 8 "citypass gate controller: cards and phones, offline decisions"
page "$office" 8 "citypass agents' back office: passes, rights and statistics over HTTPS"
page "$list" 1 "inspect and verify citypass signed lists as a gate would"
page "$token" 1 "citypass reference phone wallet: enrol, install, QR codes, NFC"

# citypass-admin: each COMMAND [SUB|SUB...] line of its help, each subcommand's --help
{
	printf '[COMMANDS]\n'
	"$admin" --help | sed -n '/^commands:/,/^$/p' | sed '1d;/^$/d' | awk '{print $1, $2}' |
		while read -r cmd subs; do
			case $subs in
			*[a-z]\|* | [a-z]*) case $subs in *\|* | list | add | export | report) ;; *) subs= ;; esac ;;
			*) subs= ;;
			esac
			if [ -z "$subs" ]; then
				printf '.SS "%s"\n' "$cmd"
				"$admin" "$cmd" --help 2>&1 | verbatim || true
				continue
			fi
			for s in $(echo "$subs" | tr '|' ' '); do
				# a subcommand without a help of its own: its group's
				text=$("$admin" "$cmd" "$s" --help 2>&1) || text=$("$admin" "$cmd" --help 2>&1)
				# a group's subcommands may share one help: print it once
				sum=$(printf '%s' "$text" | cksum)
				grep -qx "$sum" "$tmp/seen" 2>/dev/null && continue
				echo "$sum" >>"$tmp/seen"
				printf '.SS "%s %s"\n' "$cmd" "$s"
				printf '%s\n' "$text" | verbatim
			done
		done
} >"$tmp/admin.h2m"
page "$admin" 1 "citypass deployment, passes, rights, devices, statistics, backups" "$tmp/admin.h2m"
ls "$out"/*.[18]
