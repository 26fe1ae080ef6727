#!/bin/sh
# browser_run_check.sh [chromium|firefox] — the browser fixture (browser_run.sh) leaves
# nothing behind: not when its test passes, fails, is stopped (SIGTERM, as
# citypass-test-guard passes ctest's stop on) or killed (SIGKILL, ctest's timeout): no
# process of the browser's group, no directory. The endpoint it exports answers (an
# independent client, curl: chromium's DevTools /json/version, Firefox's WebDriver BiDi
# websocket handshake on /session).
set -eu
HERE=$(dirname "$0")
BROWSER=${1:-chromium}
case $BROWSER in
chromium | firefox) ;;
*)
	echo "usage: browser_run_check.sh [chromium|firefox]" >&2
	exit 2
	;;
esac
run_browser() { sh "$HERE/browser_run.sh" --browser "$BROWSER" "$@"; }
T=$(mktemp -d "${TMPDIR:-/tmp}/browsercheck-XXXXXX")
. "$HERE/procs.sh"
runner=
cleanup() {
	[ -z "$runner" ] || kill -KILL "-$runner" 2>/dev/null || true
	rm -rf "$T"
}
on_exit cleanup
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
# group_gone PGID: no process of the group within 15 s (zombies count as gone: the guard,
# their subreaper, reaps them)
group_gone() {
	i=0
	while ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ {f=1} END {exit !f}'; do
		[ $i -lt 150 ] || {
			ps -eo pid,pgid,stat,args | awk -v g="$1" 'NR == 1 || $2 == g' >&2
			return 1
		}
		sleep 0.1
		i=$((i + 1))
	done
}
# dir_unused DIR: no process names DIR in its command line within 15 s — what the group
# misses: Firefox's crash helper leaves the browser's session, and names the fixture's TMPDIR
dir_unused() {
	i=0
	# the directory through the environment: awk's own command line must not name it
	while ps -eo args= | D=$1 awk 'index($0, ENVIRON["D"]) {f = 1} END {exit !f}'; do
		[ $i -lt 150 ] || {
			ps -eo pid,pgid,stat,args | D=$1 awk 'index($0, ENVIRON["D"])' >&2
			return 1
		}
		sleep 0.1
		i=$((i + 1))
	done
}
# what the command under the fixture records: its directory, the browser's pid, the group's
# size, the endpoint's answer (Firefox's is a websocket only: curl's handshake must get
# "101 Switching Protocols"; --max-time ends the open connection that follows)
RECORD='echo "$CITYPASS_BROWSER_DIR" >"$0/dir"; echo "$CITYPASS_BROWSER_PID" >"$0/pid";
	port=${CITYPASS_BROWSER_WS#ws://127.0.0.1:}; port=${port%%/*};
	if [ "$CITYPASS_BROWSER_NAME" = firefox ]; then
		curl -si --max-time 3 -H "Connection: Upgrade" -H "Upgrade: websocket" \
			-H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: Y2l0eXBhc3MtY2hlY2sxMg==" \
			"http://127.0.0.1:$port/session" >"$0/version" || true;
	else
		curl -sf "http://127.0.0.1:$port/json/version" >"$0/version" || true;
	fi;
	ps -eo pgid= | awk -v g="$CITYPASS_BROWSER_PID" "\$1 == g" | wc -l >"$0/count"'
if [ "$BROWSER" = firefox ]; then
	ENDPOINT='^HTTP/1.1 101 '
else
	ENDPOINT='"Browser": *"Chrom'
fi

# 1. a passing command reaches the browser's endpoint; then the group and directory are gone
run_browser sh -c "$RECORD" "$T"
grep -q "$ENDPOINT" "$T/version" || fail "$BROWSER's endpoint did not answer: $(head -c 300 "$T/version")"
[ "$(cat "$T/count")" -ge 2 ] || fail "$BROWSER's helper processes are not in its group ($(cat "$T/count"))"
[ ! -e "$(cat "$T/dir")" ] || fail "the fixture directory $(cat "$T/dir") was left behind"
group_gone "$(cat "$T/pid")" || fail "$BROWSER's group $(cat "$T/pid") outlived a passing test"
dir_unused "$(cat "$T/dir")" || fail "a process of $BROWSER outside its group outlived a passing test"

# 2. a failing command: its status comes back, nothing is left
rc=0
run_browser sh -c "$RECORD; exit 3" "$T" || rc=$?
[ $rc = 3 ] || fail "a failing command's status came back as $rc, not 3"
[ ! -e "$(cat "$T/dir")" ] || fail "a failing test left its fixture directory"
group_gone "$(cat "$T/pid")" || fail "$BROWSER's group outlived a failing test"
dir_unused "$(cat "$T/dir")" || fail "a process of $BROWSER outside its group outlived a failing test"

# 3. stopped (SIGTERM) and 4. killed (SIGKILL) while the command runs
for sig in TERM KILL; do
	rm -f "$T/dir" "$T/pid"
	# a process group of its own, as citypass-test-guard runs a test
	setsid sh "$HERE/browser_run.sh" --browser "$BROWSER" sh -c "$RECORD; touch \"\$0/ready\"; exec sleep 300" "$T" &
	runner=$!
	i=0
	rm -f "$T/ready"
	until [ -e "$T/ready" ]; do
		[ $i -lt 900 ] || fail "the fixture never ran its command"
		sleep 0.1
		i=$((i + 1))
	done
	dir=$(cat "$T/dir")
	pid=$(cat "$T/pid")
	kill -0 "$pid" || fail "no $BROWSER running for $dir"
	if [ $sig = TERM ]; then
		kill -TERM "-$runner" # the guard's stop: the whole group (not the browser's: its own)
	else
		kill -KILL "$runner" # the script alone: the browser must notice (parent-death signal)
	fi
	wait "$runner" 2>/dev/null || true
	group_gone "$pid" || fail "$BROWSER's group $pid outlived its fixture stopped with SIG$sig"
	kill -KILL "-$runner" 2>/dev/null || true # the command (sleep): the guard's to end
	dir_unused "$dir" || fail "a process of $BROWSER outside its group outlived its fixture" \
		"stopped with SIG$sig"
	runner=
	if [ $sig = TERM ]; then
		[ ! -e "$dir" ] || fail "a fixture stopped with SIGTERM left $dir"
	else
		# the directory is the next run's
		run_browser true
		[ ! -e "$dir" ] || fail "the next run did not remove $dir, left by a SIGKILL (runner" \
			"$(cat "$dir/runner" 2>/dev/null): $(ps -o pid=,stat=,args= -p "$(cat "$dir/runner" 2>/dev/null)" || echo gone); left: $(find "$dir" | head -n 20))"
	fi
done
echo "browser_run ($BROWSER): nothing left behind (pass, fail, SIGTERM, SIGKILL)"
