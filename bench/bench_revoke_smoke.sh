#!/bin/sh
# bench_revoke's code path on sqlite at a toy size, so that it does not rot between two
# `make bench` (no timing is checked: a shared CI machine's timings mean nothing). Twice on
# one kept deployment, as `make bench` runs it: the first run builds it (its gates and the
# real citypass-controller enrolled, its passes imported), the second reuses it. Each must
# reach every figure with its verdict, the real controller's among them: it took its
# snapshot, then each revocation as a delta, logged each install in a form the bench reads,
# and stopped cleanly when told.
# Env: ADMIN SERVER CONTROLLER BENCH_REVOKE.
set -eu
HERE=$(dirname "$0")
. "$HERE/../tests/support/procs.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-revoke-smoke-XXXXXX")
cleanup() { rm -rf "$T"; }
on_exit cleanup
fail() {
	echo "FAIL: $*" >&2
	exit 1
}
for run in built reused; do
	"$BENCH_REVOKE" --admin "$ADMIN" --server "$SERVER" --controller "$CONTROLLER" \
		--passes 300 --gates 4 --rounds 2 --cache "$T/cache" >"$T/out" 2>"$T/err" ||
		{
			cat "$T/out" "$T/err" >&2
			fail "bench_revoke failed on a deployment $run"
		}
	cat "$T/out"
	grep -Eq '^revocation to every gate holding it \(5 gates x 2 revocations, .*\): p50 [0-9]+ ms, p99 [0-9]+ ms, max [0-9]+ ms \(budget p99 <= 1000 ms: (met|MISSED)\)$' "$T/out" ||
		fail "$run: no end-to-end figure over the 4 clients and the real controller"
	grep -Eq '^real citypass-controller .*, 2 one-pass deltas: revocation to it holding the delta p50 [0-9]+ ms, max [0-9]+ ms; its update .* p50 [0-9.]+ ms, max [0-9.]+ ms \(budget <= 20 ms: (met|MISSED)\), of which the journal commit p50 [0-9.]+ ms, max [0-9.]+ ms, the store p50 [0-9.]+ ms, max [0-9.]+ ms; written by its process per revocation p50 [0-9]+ KiB, max [0-9]+ KiB \(budget <= 1024 KiB: (met|MISSED)\); .*snapshots taken 1 \(1 expected\); stopped by SIGTERM cleanly$' "$T/out" ||
		fail "$run: no figure of the real controller's updates with its verdicts"
	grep -q '^  baseline: the same list store in this process' "$T/out" ||
		fail "$run: no in-process baseline beside the real controller's install"
	# the controller's own lines, as an operator reads them
	[ "$(grep -c 'sync: installed delta v[0-9]* (.*) in [0-9.]* ms, [0-9.]* ms of it recording' "$T/cache/revoke-300-4/real/controller.log")" = 2 ] ||
		fail "$run: the controller did not log two timed delta installs"
done
grep -q 'reused' "$T/err" || fail "the second run did not reuse the deployment"
[ "$(grep -c '^server = ' "$T/cache/revoke-300-4/bundle-real/device.conf")" = 1 ] ||
	fail "the real controller's kept bundle lost its server line"
