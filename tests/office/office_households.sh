#!/bin/sh
# Households at the back office (issue 18, item 2: "manage households"), over HTTPS with
# curl against the real citypass-office (tests/support/office_run.sh, without the bench):
#   - found by name, case ignored; a holder found without case or accents ("helene")
#   - a household's page: its passes, its shared quota used and left
#   - a pass moved in and out, the household renamed, then removed once empty; each
#     change in the database (citypass-admin reads it), in the lists (a new version), in
#     the audit log
#   - a pool agent on a library household, and on a library pass: refused as if they did
#     not exist, nothing changed, the attempt audited; a library agent cannot see the
#     pool household
#   - a form without its CSRF token refused, nothing changed; a holder's markup inert
#   - removal refused while a live pass is in it, in French
# Env: ADMIN OFFICE (tests/office/CMakeLists.txt).
set -eu
: "${ADMIN:?}" "${OFFICE:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
OFFICE_TEST=foyers
. "$HERE/../support/office_lib.sh"

office_start OFFICE_BENCH=0
PP=$(val PASS_POOL) PL=$(val PASS_LIBRARY)
[ -n "$PP" ] && [ -n "$PL" ] || fail "office_run.sh printed: $(cat "$W/env")"
adm() { "$ADMIN" "$@"; }
household_of() { adm pass show "$1" --json | sed -n 's/.*"household":\([0-9a-z]*\).*/\1/p'; }
# the newest published version of a sector's list
list_version() {
	rm -rf "$W/ex"
	adm list export --sector "$1" --out "$W/ex" >/dev/null 2>&1 || fail "list export $1"
	ls "$W/ex" | sed -n 's/^sector-[0-9]*-v\([0-9]*\)$/\1/p'
}

[ "$(login "$W/pool" agent-piscine "$(pw_of agent-piscine)")" = 303 ] || fail "pool login"
[ "$(login "$W/lib" agent-biblio "$(pw_of agent-biblio)")" = 303 ] || fail "library login"
[ "$(login "$W/admin" admin "$(pw_of admin)")" = 303 ] || fail "admin login"
c "$W/pool" "$URL/foyers" >/dev/null
C=$(csrf_of_body)

# --- the pool's household, and a library one ------------------------------------------------
[ "$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "nom=Martin-3" "$URL/foyers")" = 200 ] ||
	fail "household add"
HM=$(sed -n 's/.*href="\/foyer\/\([0-9]*\)">Voir le foyer créé.*/\1/p' "$W/body")
[ -n "$HM" ] || fail "no link to the household created"
year=$(date +%Y)
ph=$(adm pass issue --holder "Hélène <b>Dupont</b>" --household Martin-3 \
	--right "pool,quota=24/year/household" | sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
[ -n "$ph" ] || fail "pass issue into Martin-3"
adm household add leroy >/dev/null
adm household move "$PL" --to leroy >/dev/null || fail "library pass into leroy"
HL=$(adm household show leroy --json | sed -n 's/^{"id": \([0-9]*\),.*/\1/p')
[ -n "$HL" ] || fail "no id for leroy"

# --- search: case and accents ignored -------------------------------------------------------
[ "$(c "$W/pool" -G --data-urlencode "q=MARTIN" "$URL/foyers")" = 200 ] || fail "household search"
body_has "href=\"/foyer/$HM\">Martin-3<" || fail "the household is not found by 'MARTIN'"
[ "$(c "$W/pool" -G --data-urlencode "q=leroy" "$URL/foyers")" = 200 ] || fail "household search"
body_has "/foyer/$HL" && fail "a pool agent finds the library household"
body_has "Aucun foyer trouvé" || fail "no 'nothing found' sentence"
# the library household's name typed in the pass search: the pool agent's own holder of that
# name is found, not hidden behind a household the agent cannot see
pa=$(adm pass issue --holder "Anne Leroy" --right pool | sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
[ -n "$pa" ] || fail "pass issue Anne Leroy"
[ "$(c "$W/pool" -G --data-urlencode "q=leroy" "$URL/")" = 200 ] || fail "holder search"
body_has "href=\"/pass/$pa\"" || fail "another sector's household 'leroy' hides the pool's Anne Leroy"
[ "$(c "$W/pool" -G --data-urlencode "q=helene" "$URL/")" = 200 ] || fail "holder search"
body_has "href=\"/pass/$ph\"" || fail "'helene' does not find Hélène"
[ "$(c "$W/pool" -G --data-urlencode "q=DUPONT" "$URL/")" = 200 ] || fail "holder search"
body_has "href=\"/pass/$ph\"" || fail "'DUPONT' does not find Dupont"
[ "$(c "$W/pool" -G --data-urlencode "q=martin-3" "$URL/")" = 200 ] || fail "search by household"
body_has "href=\"/pass/$ph\"" || fail "the household's pass is not found by its name in lower case"
body_has "href=\"/foyer/$HM\"" || fail "the search does not link to the household"
ok "search: 'MARTIN', 'helene', 'DUPONT', 'martin-3' found; the library household hidden"

# --- the household's page -------------------------------------------------------------------
[ "$(c "$W/pool" "$URL/foyer/$HM")" = 200 ] || fail "household page"
body_has "href=\"/pass/$ph\"" || fail "the member is not listed"
body_has "&lt;b&gt;Dupont" || fail "the holder's name is not escaped"
body_has "<b>Dupont" && fail "the holder's markup is live"
body_has "24 passages par an" || fail "the shared quota is not shown"
body_has '<label for="pass">' || fail "the forms lack their labels"
ok "the household page: its pass, its shared quota, the holder's markup inert"

# --- moves, rename, CSRF ------------------------------------------------------------------------
v0=$(list_version pool)
st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "pass=$PP" "$URL/foyer/$HM/ajouter")
[ "$st" = 200 ] || fail "adding a pass answered $st"
body_has "Pass ajouté au foyer" || fail "no confirmation of the move"
[ "$(household_of "$PP")" = "$HM" ] || fail "pass $PP is not in the household: $(household_of "$PP")"
v1=$(list_version pool)
[ "$v1" -gt "$v0" ] || fail "the pool list was not republished after the move ($v0 -> $v1)"
ok "pass $PP moved into the household, the pool list republished (v$v0 -> v$v1)"

st=$(c "$W/pool" --data-urlencode "nom=volé" "$URL/foyer/$HM/renommer")
[ "$st" = 403 ] || fail "a rename without its CSRF token answered $st"
adm household show Martin-3 >/dev/null || fail "the household was renamed without a token"
st=$(c "$W/pool" --data-urlencode "csrf=00$C" --data-urlencode "pass=$ph" "$URL/foyer/$HM/retirer")
[ "$st" = 403 ] || fail "a move with a wrong CSRF token answered $st"
[ "$(household_of "$ph")" = "$HM" ] || fail "a wrong token moved a pass out"
ok "forms without a valid CSRF token refused, nothing changed"

st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "nom=a b" "$URL/foyer/$HM/renommer")
[ "$st" = 400 ] || fail "a bad name answered $st"
body_has "Renommage du foyer impossible" || fail "no French sentence for a bad name"
st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "nom=Martin-Trois" "$URL/foyer/$HM/renommer")
[ "$st" = 200 ] || fail "rename answered $st"
adm household show Martin-Trois >/dev/null || fail "the household was not renamed"
ok "renamed (a bad name refused in French)"

# --- sector scope ---------------------------------------------------------------------------
for a in renommer supprimer; do
	st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "nom=x" "$URL/foyer/$HL/$a")
	[ "$st" = 404 ] || fail "a pool agent's $a on the library household answered $st"
done
st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "pass=$PL" "$URL/foyer/$HL/retirer")
[ "$st" = 404 ] || fail "a pool agent moving a library pass out answered $st"
[ "$(c "$W/pool" "$URL/foyer/$HL")" = 404 ] || fail "a pool agent reads the library household"
body_has "Bruno" && fail "the library household's holder leaked"
st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "pass=$PL" "$URL/foyer/$HM/ajouter")
[ "$st" = 404 ] || fail "a pool agent moving a library pass into its household answered $st"
body_has "aucun pass de ce numéro dans vos services" || fail "no French sentence for the refused pass"
[ "$(household_of "$PL")" = "$HL" ] || fail "the library pass moved: $(household_of "$PL")"
adm household show leroy >/dev/null || fail "the library household was renamed or removed"
# nor may a pass be issued into it: the same sentence as for a household that does not exist
for name in leroy no-such-household; do
	st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "titulaire=Intrus" \
		--data-urlencode "foyer_nom=$name" --data-urlencode "secteur=pool" "$URL/pass/nouveau")
	[ "$st" = 404 ] || fail "a pool agent issuing into household $name answered $st"
	body_has "Pass non créé : aucun foyer « $name » dans vos services" ||
		fail "no sentence for household $name"
done
[ "$(adm household show leroy --json | grep -c '"id"')" -ge 1 ] || fail "household leroy gone"
[ "$(c "$W/admin" -G --data-urlencode "q=Intrus" "$URL/")" = 200 ] || fail "admin search"
body_has "Aucun pass trouvé" || fail "a pass was issued into another sector's household"
[ "$(c "$W/admin" "$URL/audit.csv")" = 200 ] || fail "audit export"
grep -q '"agent-piscine","émission",,"pool",refusé,"foyer hors de vos services ou inexistant"' "$W/body" ||
	fail "the refused issue is not audited"
# a household holding a pool pass and a library pass: the pool agent sees it and its pool
# pass only, and may not rename or remove it as a whole
adm household add mixte >/dev/null
pm=$(adm pass issue --holder "Paul Mixte" --household mixte --right pool | sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
lm=$(adm pass issue --holder "Lucie Cachée" --household mixte --right library | sed -n 's/^pass \([0-9]*\) issued.*/\1/p')
HX=$(adm household show mixte --json | sed -n 's/^{"id": \([0-9]*\),.*/\1/p')
[ "$(c "$W/pool" "$URL/foyer/$HX")" = 200 ] || fail "a pool agent cannot read a mixed household"
body_has "href=\"/pass/$pm\"" || fail "the pool pass of the mixed household is not listed"
body_has "Lucie" && fail "the library pass of the mixed household is shown to the pool agent"
body_has "/pass/$lm\"" && fail "the library pass's number is shown to the pool agent"
body_has 'id="renommer"' && fail "the pool agent is offered to rename a mixed household"
for a in renommer supprimer; do
	st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "nom=x" "$URL/foyer/$HX/$a")
	[ "$st" = 404 ] || fail "a pool agent's $a on a mixed household answered $st"
done
adm household show mixte >/dev/null || fail "the mixed household was renamed or removed"
# the pool agent takes the pool's one pass out of the mixed household: done, confirmed, and
# the household (now the library's alone) is no longer the pool agent's to see
st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "pass=$pm" "$URL/foyer/$HX/retirer")
[ "$st" = 200 ] || fail "taking the pool's last pass out of a mixed household answered $st"
body_has "Pass retiré du foyer" || fail "no confirmation of the move out of the mixed household"
body_has "Lucie" && fail "the confirmation shows the library's member"
body_has "mixte" && fail "the confirmation names a household the agent no longer sees"
[ "$(household_of "$pm")" = null ] || fail "pass $pm is still in the mixed household"
[ "$(c "$W/pool" "$URL/foyer/$HX")" = 404 ] || fail "the pool agent still reads the household"
c "$W/lib" "$URL/foyers" >/dev/null
[ "$(c "$W/lib" "$URL/foyer/$HM")" = 404 ] || fail "a library agent reads the pool household"
ok "a pool agent refused on the library household and pass, and on a mixed household as a whole (404, nothing changed); the library agent on the pool's"

# --- removal -----------------------------------------------------------------------------------
st=$(c "$W/pool" --data-urlencode "csrf=$C" "$URL/foyer/$HM/supprimer")
[ "$st" = 409 ] || fail "removing a household with live passes answered $st"
body_has "des pass valides sont encore dans ce foyer" || fail "no French sentence for the refusal"
for p in "$ph" "$PP"; do
	st=$(c "$W/pool" --data-urlencode "csrf=$C" --data-urlencode "pass=$p" "$URL/foyer/$HM/retirer")
	[ "$st" = 200 ] || fail "moving pass $p out answered $st"
	[ "$(household_of "$p")" = null ] || fail "pass $p is still in a household"
done
st=$(c "$W/pool" --data-urlencode "csrf=$C" "$URL/foyer/$HM/supprimer")
[ "$st" = 200 ] || fail "removing the empty household answered $st"
body_has "Foyer supprimé" || fail "no confirmation of the removal"
adm household show Martin-Trois >/dev/null 2>&1 && fail "the household is still there"
ok "removal refused while passes are in it, done once they are out"

# --- routes ---------------------------------------------------------------------------------
[ "$(c "$W/pool" "$URL/foyer/abc")" = 404 ] || fail "/foyer/abc"
[ "$(c "$W/pool" "$URL/foyer/$HL/renommer")" = 405 ] || fail "GET of an action"
[ "$(c "$W/pool" --data-urlencode "csrf=$C" "$URL/foyer/$HL")" = 405 ] || fail "POST of a page"
[ "$(c "$W/pool" "$URL/foyer/99999999999999999999")" = 404 ] || fail "a huge household number"
ok "unknown routes and methods refused"

# --- the audit log ----------------------------------------------------------------------------
[ "$(c "$W/admin" "$URL/audit.csv")" = 200 ] || fail "admin exports the audit log"
# each action done, by the agent, on which pass and household (its number, not its name)
audit_has() { # ACTION PASS OUTCOME DETAIL: a row of agent-piscine's
	grep -qF ",\"agent-piscine\",\"$1\",$2,\"\",$3,\"$4\"" "$W/body" ||
		fail "no audit row '$*' in: $(cat "$W/body")"
}
audit_has "foyer créé" "" fait "foyer $HM"
audit_has "pass ajouté au foyer" "$PP" fait "foyer $HM"
audit_has "foyer renommé" "" fait "foyer $HM"
audit_has "pass retiré du foyer" "$ph" fait "foyer $HM"
audit_has "pass retiré du foyer" "$PP" fait "foyer $HM"
audit_has "foyer supprimé" "" refusé "foyer $HM"
audit_has "foyer supprimé" "" fait "foyer $HM"
audit_has "foyer renommé" "" refusé "foyer hors de vos services ou inexistant"
audit_has "pass ajouté au foyer" "$PL" refusé "pass hors de vos services ou inexistant"
body_has "Martin-Trois" && fail "the audit log holds the household's name"
body_has "Hélène" && fail "the audit log holds a holder's name"
ok "every household action and refusal in the audit log, without names"
echo PASS
