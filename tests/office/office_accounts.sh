#!/bin/sh
# Accounts at the back office (issue 18, item 4): what an administrator does when an agent
# leaves or locks themselves out, over HTTPS with curl against the real citypass-office
# (tests/support/office_run.sh, without the bench), and the console's commands:
#   - /comptes is an administrator's page: an agent is refused (403), the attempt audited
#   - disable: the agent's open session ends at once, the right password then gets a
#     sentence, `account list` says so; enable: the agent logs in again
#   - a lock-out after wrong passwords lifted from the page before its 15 minutes
#   - the last administrator cannot disable themselves (409, a sentence)
#   - a form without its CSRF token changes nothing
#   - `account password` from the console ends the agent's sessions, the old password is
#     refused and the new one opens; each change in the audit log with who made it
# Env: ADMIN OFFICE (tests/office/CMakeLists.txt).
set -eu
: "${OFFICE:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
OFFICE_TEST=comptes
. "$HERE/../support/office_lib.sh"

office_start OFFICE_BENCH=0
listed() { "$OFFICE" account list --data "$DATA" | grep "^$1 "; }
audit_has() { # the administrator's export of the audit log holds a row matching $1
	[ "$(c "$W/admin" "$URL/audit.csv")" = 200 ] || fail "audit export"
	grep -q -- "$1" "$W/body"
}

[ "$(login "$W/pool" agent-piscine "$(pw_of agent-piscine)")" = 303 ] || fail "pool login"
[ "$(login "$W/admin" admin "$(pw_of admin)")" = 303 ] || fail "admin login"

# --- an agent is refused the page -------------------------------------------------------
[ "$(c "$W/pool" "$URL/comptes")" = 403 ] || fail "an agent opens /comptes"
body_has "réservés aux administrateurs" || fail "no sentence for the agent"
c "$W/pool" "$URL/" >/dev/null
PC=$(csrf_of_body)
[ "$(c "$W/pool" --data-urlencode "csrf=$PC" --data-urlencode "login=admin" \
	--data-urlencode "action=desactiver" "$URL/comptes")" = 403 ] || fail "an agent posts /comptes"
listed admin | grep -q disabled && fail "an agent disabled the administrator"
ok "an agent is refused the accounts page and its form"

# --- the administrator's page lists the accounts ------------------------------------------
[ "$(c "$W/admin" "$URL/comptes")" = 200 ] || fail "admin GET /comptes"
body_has '<td>agent-piscine</td><td>agent</td><td>pool</td><td>actif</td>' ||
	fail "the pool agent's row (login, role, sector, state)"
C=$(csrf_of_body)
ok "the administrator sees every account, its role, sectors and state"

# --- without its CSRF token, nothing changes ------------------------------------------------
[ "$(c "$W/admin" --data-urlencode "login=agent-piscine" --data-urlencode "action=desactiver" \
	"$URL/comptes")" = 403 ] || fail "a form without CSRF token accepted"
listed agent-piscine | grep -q disabled && fail "disabled without a CSRF token"
ok "a form without its CSRF token changes nothing"

# --- disable: the open session ends, the right password gets a sentence ---------------------
[ "$(c "$W/admin" --data-urlencode "csrf=$C" --data-urlencode "login=agent-piscine" \
	--data-urlencode "action=desactiver" "$URL/comptes")" = 200 ] || fail "disable"
body_has "agent-piscine » désactivé" || fail "no confirmation"
body_has '<td>agent-piscine</td><td>agent</td><td>pool</td><td>désactivé</td>' ||
	fail "the row does not say disabled"
listed agent-piscine | grep -q '(disabled)' || fail "account list does not say disabled"
[ "$(c "$W/pool" "$URL/")" = 303 ] || fail "the disabled agent's session still opens pages"
[ "$(login "$W/pool" agent-piscine "$(pw_of agent-piscine)")" != 303 ] ||
	fail "a disabled agent logs in"
body_has "ce compte est désactivé" || fail "no sentence for a disabled account"
audit_has ',"agent-piscine","connexion",,"",refusé,"compte désactivé"' ||
	fail "the refused login of a disabled account is not audited as such"
audit_has ',"admin","compte désactivé",,"",fait,"agent-piscine"' || fail "no audit row for the disable"
ok "disabled: the session ended at once, the right password refused with a sentence, audited"

# --- enable -------------------------------------------------------------------------------
c "$W/admin" "$URL/comptes" >/dev/null
C=$(csrf_of_body)
[ "$(c "$W/admin" --data-urlencode "csrf=$C" --data-urlencode "login=agent-piscine" \
	--data-urlencode "action=reactiver" "$URL/comptes")" = 200 ] || fail "enable"
[ "$(login "$W/pool" agent-piscine "$(pw_of agent-piscine)")" = 303 ] ||
	fail "an enabled agent cannot log in"
ok "enabled again: the agent logs in"

# --- a lock-out lifted by the administrator ----------------------------------------------
i=0
while [ $i -lt 5 ]; do
	login "$W/lib" agent-biblio "not the password" >/dev/null
	i=$((i + 1))
done
[ "$(login "$W/lib" agent-biblio "$(pw_of agent-biblio)")" != 303 ] || fail "no lock-out"
body_has "verrouillé" || fail "no lock-out sentence"
c "$W/admin" "$URL/comptes" >/dev/null
body_has '<td>agent-biblio</td><td>agent</td><td>library</td><td>verrouillé jusqu' ||
	fail "the page does not show the lock"
C=$(csrf_of_body)
[ "$(c "$W/admin" --data-urlencode "csrf=$C" --data-urlencode "login=agent-biblio" \
	--data-urlencode "action=debloquer" "$URL/comptes")" = 200 ] || fail "unlock"
[ "$(login "$W/lib" agent-biblio "$(pw_of agent-biblio)")" = 303 ] ||
	fail "still locked after the unlock"
ok "a lock-out lifted from the page before its 15 minutes"

# --- the last administrator stays -----------------------------------------------------------
[ "$(c "$W/admin" --data-urlencode "csrf=$C" --data-urlencode "login=admin" \
	--data-urlencode "action=desactiver" "$URL/comptes")" = 409 ] ||
	fail "the last administrator disabled"
body_has "dernier administrateur actif" || fail "no sentence for the last administrator"
[ "$(c "$W/admin" "$URL/comptes")" = 200 ] || fail "the administrator lost their session"
ok "the last administrator cannot be disabled (409, a sentence)"

# --- a new password from the console --------------------------------------------------------
printf '%s\n' "une phrase toute neuve" |
	"$OFFICE" account password --data "$DATA" --login agent-biblio >/dev/null ||
	fail "account password"
[ "$(c "$W/lib" "$URL/")" = 303 ] || fail "the old session survived a new password"
[ "$(login "$W/lib" agent-biblio "$(pw_of agent-biblio)")" != 303 ] ||
	fail "the old password still opens"
[ "$(login "$W/lib" agent-biblio "une phrase toute neuve")" = 303 ] ||
	fail "the new password does not open"
audit_has ',"(console)","mot de passe changé",,"",fait,"agent-biblio"' ||
	fail "no audit row for the console's change"
ok "a new password ends the sessions; the old one refused, the new one opens; audited"

# --- the console's refusals -------------------------------------------------------------------
if "$OFFICE" account disable --data "$DATA" --login nobody 2>"$W/err"; then
	fail "disable of an unknown login accepted"
fi
grep -q 'aucun compte « nobody »' "$W/err" || fail "no sentence for an unknown login"
if "$OFFICE" account frob --data "$DATA" 2>"$W/err"; then fail "account frob accepted"; fi
grep -q "account 'frob': expected" "$W/err" || fail "no usage for an unknown subcommand"
ok "the console names an unknown login and an unknown subcommand"
