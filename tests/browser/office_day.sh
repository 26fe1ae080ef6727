#!/bin/sh
# office_day.sh [chromium|firefox] — an agent's day at the back office, in Debian's chromium
# or Firefox ESR (issue 18, items 1 and 5).
#
# The whole system as in the scenarios (tests/controller/daemon/lib.sh): a deployment with
# the pool and library sectors, the real citypass-server, the bench (citypass-hil) with a
# desk reader and a pool gate run by the real citypass-controller. The back office
# (citypass-office, started by tests/support/office_run.sh, which makes the deployment and
# a bench of its own for the desk reader), then the browser (tests/support/browser_run.sh,
# trusting only the office's certificate, or for Firefox only the test CA that signed it)
# driven by office_day.js through the day and the hostile requests. Screenshots:
# $CITYPASS_ARTIFACTS (build/tests/artifacts/office/, office-firefox/).
# Env: ADMIN SERVER HIL CONTROLLER TOKEN (as the scenarios), OFFICE (citypass-office),
# NODE_PATH (puppeteer-core), CITYPASS_ARTIFACTS.
. "$(dirname "$0")/../controller/daemon/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SUPPORT=$(cd "$HERE/../support" && pwd)
BROWSER=${1:-chromium}
: "${CITYPASS_ARTIFACTS:?}" "${NODE_PATH:?}" "${OFFICE:?}"

# the back office first: office_run.sh makes the deployment (sectors pool and library, Alice's
# pool pass, Bruno's library pass, the accounts) and starts citypass-office on it
EXTRA_CLEANUP="sh '$SUPPORT/office_run.sh' stop '$T/office' >/dev/null 2>&1 || true"
ADMIN=$ADMIN OFFICE=$OFFICE HIL=$HIL sh "$SUPPORT/office_run.sh" start "$T/office" >"$T/office.env" \
	2>"$T/office.log" || fail "office_run.sh start: $(tail -n 20 "$T/office.log")"
val() { sed -n "s/^$1=//p" "$T/office.env" | head -n1; }
pw() { sed -n "s/^LOGIN=$1 PASSWORD=//p" "$T/office.env" | head -n1; }
OFFICE_URL=$(val URL)
SPKI=$(val SPKI)
CA=$(val CA)
CITYPASS_DATA=$(val DATA)
OFFICE_POOL_PASS=$(val PASS_POOL)
OFFICE_LIBRARY_PASS=$(val PASS_LIBRARY)
OFFICE_ADMIN_PASSWORD=$(pw admin)
OFFICE_POOL_PASSWORD=$(pw agent-piscine)
OFFICE_LIBRARY_PASSWORD=$(pw agent-biblio)
# the office's own bench, whose reader is the desk's (a card image is a file: the card
# written there is tapped at the gate of the other bench)
OFFICE_BENCH=$(val BENCH)
OFFICE_DESK=$(val DESK)
for v in OFFICE_URL SPKI CA CITYPASS_DATA OFFICE_POOL_PASS OFFICE_LIBRARY_PASS OFFICE_ADMIN_PASSWORD \
	OFFICE_POOL_PASSWORD OFFICE_LIBRARY_PASSWORD OFFICE_BENCH OFFICE_DESK; do
	[ -n "$(eval "echo \${$v}")" ] || fail "office_run.sh printed no value for $v: $(cat "$T/office.env")"
done
export OFFICE_URL CITYPASS_DATA OFFICE_POOL_PASS OFFICE_LIBRARY_PASS OFFICE_ADMIN_PASSWORD \
	OFFICE_POOL_PASSWORD OFFICE_LIBRARY_PASSWORD OFFICE_BENCH OFFICE_DESK BENCH HIL ADMIN T

# the gates' bench on the same deployment: the server and the pool's gate
adm site add piscine --sector pool >/dev/null
start_bench pool-1
start_server
enrol pool-g1 piscine pool-1
start_controller pool-1
wait_list pool-1 pool

rm -rf "$CITYPASS_ARTIFACTS"
# chromium trusts the office's own certificate (office_run.sh's SPKI), and nothing else;
# Firefox, which has no SPKI list, trusts the test's own CA that signed it (its profile's
# NSS database), and nothing else
if [ "$BROWSER" = firefox ]; then
	trust="--trust $CA"
else
	trust="--spki $SPKI"
fi
# shellcheck disable=SC2086 # $trust is two words
sh "$SUPPORT/browser_run.sh" --browser "$BROWSER" $trust node "$HERE/office_day.js"
