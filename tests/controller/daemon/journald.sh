#!/bin/sh
# The daemons' lines in journald (issue 15, item 3): under systemd (JOURNAL_STREAM names
# their stderr) both daemons speak journald's native protocol, with priorities and the
# fields CITYPASS_DEVICE, CITYPASS_SITE, CITYPASS_SECTOR, CITYPASS_OUTCOME, CITYPASS_REASON,
# and no line or field holds a card's identifier. The real systemd-journald receives them,
# in a private mount namespace (a tmpfs on /run, so the machine's journal is untouched), and
# journalctl reads them back: needs root and unshare -m, else skipped (exit 77), said so.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
set -eu
JOURNALD=/lib/systemd/systemd-journald
if [ -z "${CITYPASS_JOURNAL_NS:-}" ]; then
	skip() { echo "SKIP: $*" >&2; exit 77; }
	[ "$(id -u)" = 0 ] || skip "needs root (a private mount namespace for a journald of its own)"
	[ -x "$JOURNALD" ] || skip "no $JOURNALD"
	command -v journalctl >/dev/null || skip "no journalctl"
	unshare -m --propagation private true 2>/dev/null || skip "unshare -m is not permitted here"
	CITYPASS_JOURNAL_NS=1 exec unshare -m --propagation private sh "$0" "$@"
fi
# inside the namespace: /run (journald's sockets and its volatile journal) is our own; a
# persistent journal directory would catch our lines too: hide it as well
mount -t tmpfs citypass-run /run
[ -d /var/log/journal ] && mount -t tmpfs citypass-journal /var/log/journal
mkdir -p /run/systemd/journal

. "$(dirname "$0")/lib.sh"
JOURNALD_PID=
EXTRA_CLEANUP='stop_procs $JOURNALD_PID'
"$JOURNALD" >"$T/journald.log" 2>&1 &
JOURNALD_PID=$!
wait_for 10 test -S /run/systemd/journal/socket || fail "journald did not start: $(cat "$T/journald.log")"

# jq-free: one JSON object per line; LINE matches when it holds every given "K":"V"
entries() { journalctl -D /run/log/journal --no-pager -o json 2>/dev/null; }
has_entry() {
	entries | while IFS= read -r e; do
		ok=1
		for kv in "$@"; do
			case "$e" in *"$kv"*) ;; *) ok=0 ;; esac
		done
		[ "$ok" = 1 ] && echo found && break
	done | grep -q found
}
# as under systemd: stderr is the journal's stream, and JOURNAL_STREAM says so
stream_of() { : >"$1"; stat -c '%d:%i' "$1"; }

deployment pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
# a random port may be taken: another one while the server exits at once (bounded)
for _attempt in 1 2 3 4 5; do
	PORT=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
	JOURNAL_STREAM=$(stream_of "$T/server.err") "$SERVER" --data "$CITYPASS_DATA" \
		--listen "127.0.0.1:$PORT" --poll-ms 50 2>>"$T/server.err" &
	SERVER_PID=$!
	sleep 0.5
	kill -0 "$SERVER_PID" 2>/dev/null && break
	wait "$SERVER_PID" 2>/dev/null || true
done
wait_for 10 has_entry '"SYSLOG_IDENTIFIER":"citypass-server"' "\"MESSAGE\":\"listening on 127.0.0.1:$PORT\"" '"PRIORITY":"6"' ||
	fail "server: its start is not in the journal: $(entries | tail -n 3; cat "$T/server.err")"
[ ! -s "$T/server.err" ] || fail "server: wrote to stderr under journald: $(cat "$T/server.err")"
echo "ok - server: its lines go to journald with their priority"

enrol pool-1 pool-n pool-1
echo "log-taps = yes" >>"$T/pool-1.conf"
JOURNAL_STREAM=$(stream_of "$T/ctl.err") "$CONTROLLER" --config "$T/pool-1.conf" 2>>"$T/ctl.err" &
CTRL_PIDS=$!
ident='"SYSLOG_IDENTIFIER":"citypass-controller"'
gate='"CITYPASS_DEVICE":"pool-1"'
wait_for 10 has_entry "$ident" "$gate" '"CITYPASS_SITE":"pool-n"' '"CITYPASS_SECTOR":"pool"' \
	'"PRIORITY":"5"' '"MESSAGE":"started: device pool-1' ||
	fail "controller: its start is not in the journal with the gate's fields: $(entries | grep citypass-controller | tail -n 2)"
echo "ok - controller: its lines carry the gate's device, site and sector"
wait_for 10 has_entry '"SYSLOG_IDENTIFIER":"citypass-server"' "$gate" '"MESSAGE":"conn ' ||
	fail "server: its lines about pool-1's connection do not carry CITYPASS_DEVICE"
# its session's line, by the names the gate's own lines use: one filter finds both sides
wait_for 10 has_entry '"SYSLOG_IDENTIFIER":"citypass-server"' "$gate" '"CITYPASS_SITE":"pool-n"' \
	'"CITYPASS_SECTOR":"pool"' '"MESSAGE":"conn ' 'session: site ' ||
	fail "server: pool-1's session line does not carry its site and sector: $(entries | grep citypass-server | grep session | tail -n 1)"
echo "ok - server: a line about a gate's connection carries its device, site and sector"

# a granted tap and a refused one: outcome and reason as fields; the card's UID nowhere
uid=04A1B2C3D4E5F6
pass=$(issue_card "$T/ann.card" "$uid" pool)
wait_list pool-1 pool
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "relay=open led=green" "a pass of the pool"
wait_for 10 has_entry "$ident" "$gate" '"CITYPASS_OUTCOME":"granted"' '"CITYPASS_REASON":"ok"' \
	'"PRIORITY":"6"' ||
	fail "controller: the grant is not in the journal with its outcome: $(entries | grep '"MESSAGE":"tap' | tail -n 2)"
adm pass revoke "$pass" --reason stolen >/dev/null 2>&1 || fail "revoke"
wait_list pool-1 pool
out=$(tap pool-1 desfire "$T/ann.card")
expect "$out" "led=red display=Carte révoquée" "a revoked pass"
wait_for 10 has_entry "$ident" "$gate" '"CITYPASS_OUTCOME":"refused"' '"CITYPASS_REASON":"revoked"' ||
	fail "controller: the refusal is not in the journal with its reason: $(entries | grep '"MESSAGE":"tap' | tail -n 2)"
echo "ok - taps: outcome and reason as fields"
# the revoking list delivered to the gate: the server's line says where it went
wait_for 10 has_entry '"SYSLOG_IDENTIFIER":"citypass-server"' "$gate" '"CITYPASS_SITE":"pool-n"' \
	'"CITYPASS_SECTOR":"pool"' 'sending ' ||
	fail "server: the list update sent to pool-1 is not logged with its site and sector"
echo "ok - server: a list delivered to a gate is logged with its device, site and sector"
lower=$(echo "$uid" | tr 'A-F' 'a-f')
if journalctl -D /run/log/journal --no-pager -o export | grep -aiq -e "$uid" -e "$lower"; then
	fail "the card's UID is in the journal"
fi
echo "ok - the card's UID is in no journal entry"

# stderr that is not the journal's stream (a shell, a redirect): plain lines as before
stop_procs $CTRL_PIDS
CTRL_PIDS=
JOURNAL_STREAM=1:1 "$CONTROLLER" --config "$T/pool-1.conf" 2>"$T/ctl-plain.log" &
CTRL_PIDS=$!
wait_for 10 grep -q "citypass-controller: notice: started: device pool-1" "$T/ctl-plain.log" ||
	fail "controller: a JOURNAL_STREAM naming another file took its stderr lines"
echo "ok - a stderr that is not the journal's keeps its text lines"
echo "journald check passed"
