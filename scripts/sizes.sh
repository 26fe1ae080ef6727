#!/bin/sh
# sizes.sh [DIR] — the largest C files and functions of the tree (issue 14's closing note:
# "the largest files and functions before and after"). A function is counted from its
# opening brace in column 0 to the closing brace in column 0 (the tree's clang-format
# style), with its name taken from the line that opens its parameter list.
#   sh scripts/sizes.sh            this tree
#   sh scripts/sizes.sh /tmp/old   another checkout (e.g. git worktree add /tmp/old 340a090)
set -eu
cd "${1:-$(dirname "$0")/..}"
N=${N:-15}
files=$(find cardlib controller hil link proto server -name '*.[ch]' | sort)
echo "== largest files (lines)"
# shellcheck disable=SC2086
wc -l $files | grep -v ' total$' | sort -rn | head -n "$N"
echo "== largest functions (lines, file:function)"
# shellcheck disable=SC2086
awk '
	FNR == 1 { name = "" }
	/^[A-Za-z_].*[A-Za-z_0-9]+\(/ && !/;[ \t]*$/ {
		s = $0; sub(/\(.*/, "", s); n = split(s, w, /[ \t*]+/); name = w[n]
	}
	/^\{/ { start = FNR; fn = name }
	/^\}/ && start { printf "%6d %s:%s\n", FNR - start + 1, FILENAME, fn; start = 0 }
' $(echo "$files" | grep '\.c$') | sort -rn | head -n "$N"
