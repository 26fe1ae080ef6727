#!/bin/sh
# The back office's security rules, over HTTPS with curl against the real citypass-office
# (tests/support/office_run.sh): issue 18, items 4 and 5's hostile inputs.
#   - cookies Secure, HttpOnly, SameSite=Strict; pages carry a CSP
#   - a login without its form token, a POST without / with a wrong CSRF token: refused,
#     nothing changed
#   - a pool agent's forged requests on a library pass (read, revoke, search) and for a
#     library right on a pool pass: refused, nothing changed; another sector's right on a
#     shared pass is not shown
#   - revoking a lost card at once: the pass revoked, its list published, in the audit log
#   - the session cookie after logout opens nothing
#   - five wrong passwords lock the account, even for the right one
#   - HTML and SQL in every text field (holder, household, reason, search, login): shown
#     as text, the database intact
#   - the audit log: an administrator's only, exported as CSV, append-only in its file
#   - bad HTTP (oversized body and headers, bad encodings, unknown routes and methods):
#     an error page, and the daemon still answers
#   - too many logins from one address: 429
#   - the manager's pages (gates and list versions, statistics, quotas) scoped by sector;
#     the open-data export with its small cells suppressed
# Env: ADMIN OFFICE PROBE (tests/office/CMakeLists.txt).
set -eu
: "${ADMIN:?}" "${OFFICE:?}" "${PROBE:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
OFFICE_TEST=office
. "$HERE/../support/office_lib.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 is missing"

office_start OFFICE_ARGS="--login-rate 20"
PP=$(val PASS_POOL) PL=$(val PASS_LIBRARY)
[ -n "$PP" ] && [ -n "$PL" ] || fail "office_run.sh printed: $(cat "$W/env")"
state_of() { "$ADMIN" pass show "$1" --json | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'; }

# --- cookies and login --------------------------------------------------------------------
[ "$(c "$W/anon" "$URL/connexion")" = 200 ] || fail "GET /connexion"
grep -i '^set-cookie: citypass_login=' "$W/headers" | grep -q 'Secure; HttpOnly; SameSite=Strict' ||
	fail "the login cookie lacks Secure; HttpOnly; SameSite=Strict: $(cat "$W/headers")"
grep -qi "^content-security-policy: default-src 'none'" "$W/headers" || fail "no CSP"
st=$(c "$W/anon" --data-urlencode "identifiant=agent-piscine" \
	--data-urlencode "mot_de_passe=$(pw_of agent-piscine)" "$URL/connexion")
[ "$st" = 403 ] || fail "a login without its form token answered $st"
ok "a login without its form token is refused"
[ "$(c "$W/anon" "$URL/")" = 303 ] || fail "a page without a session is not sent to the login"
[ "$(login "$W/pool" agent-piscine "$(pw_of agent-piscine)")" = 303 ] || fail "agent-piscine login"
grep -i '^set-cookie: citypass_session=' "$W/headers" | grep -q 'Secure; HttpOnly; SameSite=Strict' ||
	fail "the session cookie lacks Secure; HttpOnly; SameSite=Strict"
ok "session cookie Secure, HttpOnly, SameSite=Strict"
[ "$(c "$W/pool" "$URL/pass/$PP")" = 200 ] || fail "agent-piscine cannot read pool pass $PP"
body_has 'id="contenu"' || fail "no #contenu"
CSRF=$(csrf_of_body)
[ -n "$CSRF" ] || fail "no csrf input on the pass page"

# --- CSRF -----------------------------------------------------------------------------------
st=$(c "$W/pool" --data-urlencode "motif=perdue" "$URL/pass/$PP/revoquer")
[ "$st" = 403 ] || fail "a POST without its CSRF token answered $st"
# the right token with its last digit changed
case $CSRF in *0) WRONG=${CSRF%?}1 ;; *) WRONG=${CSRF%?}0 ;; esac
st=$(c "$W/pool" --data-urlencode "csrf=$WRONG" --data-urlencode "motif=perdue" \
	"$URL/pass/$PP/revoquer")
[ "$st" = 403 ] || fail "a POST with a wrong CSRF token answered $st"
st=$(c "$W/pool" --data-urlencode "csrf=" --data-urlencode "motif=perdue" "$URL/pass/$PP/revoquer")
[ "$st" = 403 ] || fail "a POST with an empty CSRF token answered $st"
[ "$(state_of "$PP")" = active ] || fail "a refused POST revoked the pass"
ok "POST without, with an empty or a wrong CSRF token: refused, pass unchanged"

# --- sector scope ---------------------------------------------------------------------------
[ "$(c "$W/pool" "$URL/pass/$PL")" = 404 ] || fail "agent-piscine read library pass $PL"
body_has "Bruno" && fail "the refusal shows the library pass's holder"
st=$(c "$W/pool" --data-urlencode "csrf=$CSRF" --data-urlencode "motif=perdue" \
	"$URL/pass/$PL/revoquer")
[ "$st" = 404 ] || fail "agent-piscine's forged revoke of library pass $PL answered $st"
[ "$(state_of "$PL")" = active ] || fail "a forged cross-sector revoke revoked pass $PL"
st=$(c "$W/pool" --data-urlencode "csrf=$CSRF" --data-urlencode "secteur=library" \
	"$URL/pass/$PP/droit")
[ "$st" != 200 ] || fail "agent-piscine granted a library right"
"$ADMIN" pass show "$PP" --json | grep -q '"sector":"library"' && fail "a library right was granted by a pool agent"
st=$(c "$W/pool" --data-urlencode "csrf=$CSRF" --data-urlencode "secteur=library" \
	"$URL/pass/$PL/retirer")
[ "$st" = 404 ] || fail "agent-piscine's forged withdrawal answered $st"
"$ADMIN" pass show "$PL" --json | grep -q '"sector":"library"' || fail "the library right went"
[ "$(c "$W/pool" "$URL/?q=Bruno")" = 200 ] || fail "search"
body_has "/pass/$PL\"" && fail "agent-piscine's search shows a library-only holder"
body_has "Aucun pass trouvé" || fail "agent-piscine's search for a library holder says nothing"
[ "$(c "$W/pool" "$URL/?q=$PL")" = 200 ] && ! body_has "/pass/$PL\"" || fail "search by number shows pass $PL"
both=$("$ADMIN" pass issue --holder "Chloé Both" --right pool --right library,entries=10 2>/dev/null |
	sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
[ "$(c "$W/pool" "$URL/pass/$both")" = 200 ] || fail "agent-piscine cannot read shared pass $both"
body_has "library" && fail "agent-piscine sees the library right of pass $both"
body_has "10 entrées" && fail "agent-piscine sees the library entries of pass $both"
ok "a pool agent reads, revokes, searches and grants nothing of the library"

# --- revoke a lost card at once -------------------------------------------------------------
v_before=$(sqlite3 "$DATA/citypass.db" "SELECT coalesce(max(version), 0) FROM list_versions WHERE sector = 1")
st=$(c "$W/pool" --data-urlencode "csrf=$CSRF" --data-urlencode "motif=perdue" \
	"$URL/pass/$PP/revoquer")
[ "$st" = 200 ] || fail "revoke answered $st: $(cat "$W/body")"
body_has 'class="ok"' || fail "no confirmation"
[ "$(state_of "$PP")" = revoked ] || fail "pass $PP is not revoked"
st=$(c "$W/pool" --data-urlencode "csrf=$CSRF" --data-urlencode "motif=perdue" \
	"$URL/pass/$PP/revoquer")
[ "$st" = 409 ] || fail "revoking twice answered $st"
body_has 'class="erreur"' && body_has "déjà révoqué" || fail "revoking twice: no French error"
ok "a lost card revoked at once; revoking it again is refused in French"
v_after=$(sqlite3 "$DATA/citypass.db" "SELECT coalesce(max(version), 0) FROM list_versions WHERE sector = 1")
[ "$v_after" -gt "$v_before" ] || fail "the pool list was not published after the revocation ($v_before, $v_after)"

# --- injection in every text field ----------------------------------------------------------
EVIL="<script>alert(1)</script>\"'><img src=x onerror=alert(2)>'); DROP TABLE passes;--"
[ "$(login "$W/admin" admin "$(pw_of admin)")" = 303 ] || fail "admin login"
[ "$(c "$W/admin" "$URL/pass/nouveau")" = 200 ] || fail "issue form"
AC=$(csrf_of_body)
st=$(c "$W/admin" --data-urlencode "csrf=$AC" --data-urlencode "titulaire=$EVIL" \
	--data-urlencode "secteur=pool" "$URL/pass/nouveau")
[ "$st" = 200 ] || fail "issue with a hostile holder answered $st"
body_has "<script>" && fail "the holder's markup is live on the pass page"
body_has "&lt;script&gt;alert(1)&lt;/script&gt;" || fail "the holder is not shown as text"
evil_pass=$(sed -n 's/.*<h1>Pass n° \([0-9]*\)<\/h1>.*/\1/p' "$W/body")
[ -n "$evil_pass" ] || fail "no pass number on the new pass's page"
"$ADMIN" pass show "$evil_pass" --json | grep -q 'DROP TABLE' || fail "the holder was not stored as typed"
st=$(c "$W/admin" --data-urlencode "csrf=$AC" --data-urlencode "titulaire=x" \
	--data-urlencode "foyer_nom=$EVIL" --data-urlencode "secteur=pool" "$URL/pass/nouveau")
[ "$st" = 404 ] || fail "issue with a hostile household answered $st"
body_has "<script>" && fail "the household's markup is live"
st=$(c "$W/admin" --data-urlencode "csrf=$AC" --data-urlencode "motif=$EVIL" \
	"$URL/pass/$evil_pass/revoquer")
[ "$st" = 200 ] || fail "revoke with a hostile reason answered $st"
body_has "<img src=x" && fail "the reason's markup is live"
st=$(c "$W/admin" --data-urlencode "csrf=$AC" --data-urlencode "secteur=$EVIL" \
	--data-urlencode "du=2026-01-01'--" "$URL/pass/$both/droit")
[ "$st" = 404 ] || [ "$st" = 400 ] || fail "a hostile right answered $st"
body_has "<script>" && fail "a hostile sector is live"
[ "$(c "$W/admin" -G --data-urlencode "q=$EVIL" "$URL/")" = 200 ] || fail "hostile search"
body_has "<script>" && fail "the search text is live"
body_has "&lt;script&gt;" || fail "the search text is not shown back as text"
st=$(login "$W/evil" "$EVIL" "$EVIL")
[ "$st" = 400 ] || fail "a hostile login answered $st"
body_has "<script>" && fail "a hostile login is live"
[ "$(sqlite3 "$DATA/citypass.db" "SELECT count(*) FROM passes")" -ge 4 ] || fail "the passes table lost rows"
[ "$(c "$W/admin" "$URL/audit")" = 200 ] || fail "admin reads the audit log"
body_has "<img src=x" && fail "the audit page shows live markup"
body_has "&lt;img src=x" || fail "the audit page lacks the reason"
ok "HTML and SQL in holder, household, reason, sector, search and login: inert"

# --- the audit log --------------------------------------------------------------------------
body_has "révocation" || fail "no revocation in the audit log"
body_has "agent-piscine" || fail "the audit log does not name the agent"
body_has "Alice Martin" && fail "the audit log holds a holder's name"
[ "$(c "$W/pool" "$URL/audit")" = 403 ] || fail "an agent reads the audit log"
[ "$(c "$W/pool" "$URL/audit.csv")" = 403 ] || fail "an agent exports the audit log"
[ "$(c "$W/admin" "$URL/audit.csv")" = 200 ] || fail "admin exports the audit log"
grep -qi '^content-type: text/csv' "$W/headers" || fail "the export is not CSV"
head -1 "$W/body" | grep -q '^id,when_utc,login,action,pass,sector,outcome,detail' || fail "CSV header"
grep -q "\"agent-piscine\",\"révocation\",$PP,[^,]*,fait," "$W/body" || fail "the CSV lacks the revocation of $PP: $(cat "$W/body")"
if sqlite3 "$DATA/office.db" "DELETE FROM audit" 2>/dev/null; then fail "audit rows can be deleted"; fi
if sqlite3 "$DATA/office.db" "UPDATE audit SET login='x'" 2>/dev/null; then fail "audit rows can be changed"; fi
ok "audit: who, what, which pass; admin only; CSV; append-only"

# --- the manager's pages, scoped by sector ------------------------------------------------
"$ADMIN" site add piscine-est --sector pool >/dev/null || fail "site add"
"$ADMIN" site add mediatheque --sector library >/dev/null || fail "site add"
qh=$(($(date +%s) / 900 * 900))
"$PROBE" ingest "$DATA" g1 stats 1 12 1 1 1 1 1 "$qh" >/dev/null || fail "ingest pool stats"
"$PROBE" ingest "$DATA" g2 stats 1 3 2 2 2 1 1 "$qh" >/dev/null || fail "ingest library stats"
[ "$(c "$W/pool" "$URL/statistiques")" = 200 ] || fail "statistics page"
body_has "piscine-est" || fail "the pool agent's statistics lack the pool site"
body_has "mediatheque" && fail "the pool agent's statistics show the library"
[ "$(grep -o '<svg' "$W/body" | wc -l)" -ge 4 ] || fail "the statistics page lacks its four charts"
grep -q 'id="graphe-heures"><svg' "$W/body" || fail "no chart by hour"
[ "$(c "$W/pool" "$URL/portiques")" = 200 ] || fail "gates page"
grep -o '<table id="listes">.*</table><h2>Portiques' "$W/body" | grep -q '<td>pool</td><td>[1-9]' ||
	fail "the pool list's version is not shown"
grep -o '<table id="listes">.*</table><h2>Portiques' "$W/body" | grep -q '<td>library</td>' &&
	fail "the pool agent sees the library's list"
[ "$(c "$W/pool" "$URL/quotas")" = 200 ] && body_has 'id="quotas"' || fail "quota report"
[ "$(c "$W/admin" "$URL/opendata.csv")" = 200 ] || fail "open data export"
head -1 "$W/body" | grep -qx 'hour,site,service,granted,refused' || fail "open data header"
grep -q ',piscine-est,pool,12,<10$' "$W/body" || fail "open data: pool row: $(cat "$W/body")"
grep -q ',mediatheque,library,<10,<10$' "$W/body" || fail "open data: small counts not suppressed"
ok "gates and lists, statistics, quotas scoped by sector; open data with cells under 10 hidden"

# --- logout ---------------------------------------------------------------------------------
cp "$W/pool" "$W/stolen"
[ "$(c "$W/pool" "$URL/")" = 200 ] || fail "GET / before logout"
LC=$(csrf_of_body)
[ "$(c "$W/pool" --data-urlencode "csrf=$LC" "$URL/deconnexion")" = 303 ] || fail "logout"
[ "$(c "$W/stolen" "$URL/pass/$both")" = 303 ] || fail "the cookie still opens a page after logout"
st=$(c "$W/stolen" --data-urlencode "csrf=$LC" --data-urlencode "motif=perdue" \
	"$URL/pass/$both/revoquer")
[ "$st" = 403 ] || fail "the cookie still posts after logout ($st)"
[ "$(state_of "$both")" = active ] || fail "a POST after logout revoked pass $both"
ok "the session cookie opens nothing after logout"

# --- lock-out -------------------------------------------------------------------------------
for i in 1 2 3 4 5; do
	[ "$(login "$W/b" agent-biblio wrong-password-$i)" = 400 ] || [ $i = 5 ] ||
		fail "wrong password $i"
done
st=$(login "$W/b" agent-biblio "$(pw_of agent-biblio)")
[ "$st" = 403 ] || fail "the right password after 5 failures answered $st"
body_has "verrouillé" || fail "the lock-out is not said"
ok "five wrong passwords lock the account, even for the right one"

# --- bad HTTP -------------------------------------------------------------------------------
[ "$(c "$W/admin" "$URL/nulle-part")" = 404 ] || fail "unknown route"
body_has "introuvable" || fail "the 404 page is not French"
[ "$(c "$W/admin" -X PUT "$URL/")" = 405 ] || fail "PUT"
[ "$(c "$W/admin" -X DELETE "$URL/pass/$both")" = 405 ] || fail "DELETE"
[ "$(c "$W/admin" "$URL/?q=%zz")" = 400 ] || fail "a bad % escape"
[ "$(c "$W/admin" "$URL/?q=%ff%fe")" = 400 ] || fail "query not UTF-8"
[ "$(c "$W/admin" "$URL/?q=a%00b")" = 400 ] || fail "a NUL in a query"
head -c 200000 /dev/zero | tr '\0' 'a' >"$W/big"
# Expect: 100-continue lets the office refuse the body before it is sent (without it, the
# office's 413 may race curl's writes into a closed connection: curl's error 55)
st=$(c "$W/admin" --data-binary "@$W/big" -H "Content-Type: application/x-www-form-urlencoded" \
	-H "Expect: 100-continue" "$URL/pass/$both/revoquer")
[ "$st" = 413 ] || fail "an oversized body answered $st"
head -c 3000 "$W/big" | sed 's/^/csrf=x\&motif=/' >"$W/big2"
head -c 20000 "$W/big" >>"$W/big2"
st=$(c "$W/admin" --data-binary "@$W/big2" -H "Content-Type: application/x-www-form-urlencoded" \
	-H "Expect:" "$URL/pass/$both/revoquer")
[ "$st" = 413 ] || fail "a body over the form's limit answered $st"
st=$(c "$W/admin" -H "X-Big: $(head -c 20000 "$W/big")" "$URL/" || true)
case $st in 4??) ;; *) fail "an oversized header answered $st" ;; esac
st=$(c "$W/admin" --data-binary "csrf=$AC&motif=%ZZ" "$URL/pass/$both/revoquer")
[ "$st" = 400 ] || fail "a bad % escape in a body answered $st"
st=$(c "$W/admin" -H "Content-Type: application/json" --data-binary '{"csrf":"x"}' \
	"$URL/pass/$both/revoquer")
[ "$st" = 415 ] || fail "a JSON body answered $st"
st=$(c "$W/nojar" -H "Cookie: citypass_session=$(head -c 5000 "$W/big")" "$URL/")
[ "$st" = 303 ] || fail "an oversized session cookie answered $st"
# plain HTTP on the HTTPS port, and TLS older than 1.2: no page, no crash
plain=$(echo "$URL" | sed 's/^https:/http:/')
if curl -sS -m 10 -o /dev/null "$plain/" 2>/dev/null; then fail "plain HTTP got an answer"; fi
if curl -sS -m 10 --cacert "$CA" --tlsv1.0 --tls-max 1.1 -o /dev/null "$URL/" 2>/dev/null; then
	fail "TLS 1.1 was accepted"
fi
[ "$(c "$W/admin" "$URL/")" = 200 ] || fail "the office no longer answers after bad input"
[ "$(state_of "$both")" = active ] || fail "bad input changed pass $both"
ok "bad HTTP gets an error page; the office still answers"

# --- login rate-limit (last: it blocks this address for a minute) --------------------------
limited=0
for i in $(seq 1 60); do
	st=$(login "$W/r" nobody "x$i")
	[ -z "${OFFICE_DEBUG:-}" ] || echo "login $i: $st" >&2
	if [ "$st" = 429 ]; then
		limited=1
		break
	fi
done
[ $limited = 1 ] || fail "60 logins in a row from one address were never slowed down"
body_has "Trop d" || fail "the rate limit is not said"
ok "too many logins from one address: 429"
kill -0 "$(cat "$W/s/office.pid")" || fail "the office died"
echo "PASS"
