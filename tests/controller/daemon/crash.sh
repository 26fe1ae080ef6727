#!/bin/sh
# Crash safety of the whole daemon: citypass-controller is killed with SIGKILL at random
# moments while the server keeps publishing new list versions (a rights change every few
# tens of milliseconds, so deltas are being installed) and while it uploads the taps just
# made. Each iteration: start, then either (one in four) kill -9 within 120 ms, while the
# list versions published since the last run are being installed, or one tap (journalled
# before the gate shows it), a random delay of 0-250 ms, and kill -9. After every kill the list
# store on disk must verify with openssl and sha256sum alone (the manifest CURRENT names, its
# signature, every file) and the next start must come up; at the end the server's count of
# events equals the number of taps, exactly.
#   CONTROLLER_CRASH_ITERATIONS (default 200), CONTROLLER_CRASH_SEED to replay delays.
# Env: ADMIN SERVER HIL CONTROLLER TOKEN.
. "$(dirname "$0")/lib.sh"
N=${CONTROLLER_CRASH_ITERATIONS:-200}
SEED=${CONTROLLER_CRASH_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
echo "crash test: $N iterations, seed $SEED (CONTROLLER_CRASH_SEED=$SEED replays the delays)"

deployment pool --value-sector pool
adm site add pool-n --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-1 pool-n pool-1
issue_card "$T/ann.card" 04A1B2C3D4E5F6 pool >/dev/null
churn=$(issue_card "$T/churn.card" 04C1C2C3C4C5C6 pool)
PUB="$T/bundle-pool-1/list.pub.pem"
LISTS="$T/state-pool-1/lists"

# the publisher: a new pool list version every few tens of milliseconds
(
	i=0
	while [ ! -f "$T/stop-churn" ]; do
		i=$((i + 1))
		"$ADMIN" rights grant "$churn" --right "pool,product=$((i % 200 + 1))" \
			>/dev/null 2>&1 || true
		sleep 0.03
	done
) &
CHURN_PID=$!
PEER_PIDS="$PEER_PIDS $CHURN_PID"

# the store as a crash left it: CURRENT (if any) names a manifest whose hash matches, whose
# signature openssl verifies, and every file of which sha256sum finds intact
check_store() {
	[ -f "$LISTS/CURRENT" ] || return 0
	v=$(sed -n 's/^version \([0-9]*\)$/\1/p' "$LISTS/CURRENT")
	h=$(sed -n 's/^manifest \([0-9a-f]*\)$/\1/p' "$LISTS/CURRENT")
	[ -n "$v" ] && [ -n "$h" ] || fail "iteration $1: CURRENT is malformed: $(cat "$LISTS/CURRENT")"
	[ "$(sha256sum "$LISTS/v$v.manifest" | cut -d' ' -f1)" = "$h" ] ||
		fail "iteration $1: v$v.manifest does not match CURRENT's hash"
	openssl dgst -sha256 -verify "$PUB" -signature "$LISTS/v$v.manifest.sig" "$LISTS/v$v.manifest" \
		>/dev/null 2>&1 || fail "iteration $1: openssl does not verify v$v"
	(cd "$LISTS" && sha256sum -c --quiet "v$v.manifest" >/dev/null 2>&1) ||
		fail "iteration $1: a file of v$v does not match its manifest"
}

taps=0
rnd=$SEED
i=0
start=$(date +%s)
while [ $i -lt "$N" ]; do
	i=$((i + 1))
	: >"$T/ctl-pool-1.log"
	"$CONTROLLER" --config "$T/pool-1.conf" >>"$T/ctl-pool-1.log" 2>&1 &
	pid=$!
	wait_for 10 grep -q "started\|cannot start" "$T/ctl-pool-1.log" ||
		fail "iteration $i: the controller did not start"
	grep -q "cannot start" "$T/ctl-pool-1.log" &&
		fail "iteration $i: $(grep 'cannot start' "$T/ctl-pool-1.log")"
	rnd=$(((rnd * 1103515245 + 12345) % 2147483648))
	if [ $((rnd / 65536 % 4)) = 0 ]; then
		# one kill in four right after start-up: during the catch-up install
		sleep "$(printf '0.%03d' $((rnd / 256 % 120)))"
		kill -9 $pid
		wait $pid 2>/dev/null || true
		check_store $i
		continue
	fi
	# one tap: once the gate shows it, it is in the journal (journal before gate)
	since=$(now_us)
	ctl place pool-1 desfire "$T/ann.card" >/dev/null
	decided() { ctl outputs pool-1 "since=$since" | grep -q "led=green"; }
	wait_for 10 decided || fail "iteration $i: no decision"
	taps=$((taps + 1))
	ctl remove pool-1 >/dev/null
	# kill at a random moment: uploads and list installs are under way
	rnd=$(((rnd * 1103515245 + 12345) % 2147483648))
	ms=$((rnd / 65536 % 250))
	sleep "$(printf '0.%03d' "$ms")"
	kill -9 $pid
	wait $pid 2>/dev/null || true
	check_store $i
	[ $((i % 50)) = 0 ] && echo "ok - $i kills, $taps taps, $(server_count) at the server so far"
done
touch "$T/stop-churn"
# the publisher ends its last command and stops: nothing of it outlives the test
wait "$CHURN_PID" 2>/dev/null || true

# a last start: everything arrives, exactly once, and the store holds the newest list
start_controller pool-1
exact() { [ "$(server_count)" = "$taps" ]; }
wait_for 60 exact || fail "after $N kills: server counts $(server_count) events, expected $taps"
sleep 1
exact || fail "after $N kills: server counts $(server_count) events, expected $taps"
wait_list pool-1 pool
check_store final
echo "ok - $N kills -9: every store verified, the server counts exactly the $taps taps ($(($(date +%s) - start)) s)"
echo "controller crash check passed"
