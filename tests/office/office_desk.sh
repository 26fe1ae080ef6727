#!/bin/sh
# An agent's desk work through the back office (issue 18, item 2), over HTTPS with curl,
# the desk reader being the bench's emulated PN532 under libnfc's own pn532_uart driver:
#   - a pass issued on a factory-fresh card placed on the desk reader, its entries on the card
#   - the card read back at the desk finds its pass (nothing typed), with its entries
#   - a live card's recycling refused; revoked, then taken back (blank again)
#   - the revoked pass replaced on a new card, the old one marked replaced
#   - a pass issued for a phone: the credential handed back as a QR code and as text, which
#     the reference wallet (citypass-token install) accepts as binding its own key
#   - a household created (twice: refused), a pass issued into it, found by its name
#   - a library agent reading the pool card at the desk learns nothing of it
# Env: ADMIN OFFICE HIL TOKEN (tests/office/CMakeLists.txt).
set -eu
: "${ADMIN:?}" "${OFFICE:?}" "${HIL:?}" "${TOKEN:?}"
HERE=$(cd "$(dirname "$0")" && pwd)
OFFICE_TEST=desk
. "$HERE/../support/office_lib.sh"

office_start HIL="$HIL"
BENCH=$(val BENCH) DESK=$(val DESK)
[ -n "$BENCH" ] && [ -n "$DESK" ] || fail "no bench in: $(cat "$W/env")"
place() { "$HIL" ctl --run-dir "$BENCH" place desk desfire "$@" >/dev/null || fail "place $*"; }
pass_on_page() { sed -n 's/.*<h1>Pass n° \([0-9]*\)<\/h1>.*/\1/p' "$W/body"; }
shown() { "$ADMIN" pass show "$1" --json; }

[ "$(login "$W/j" agent-piscine "$(pw_of agent-piscine)")" = 303 ] || fail "login"
c "$W/j" "$URL/carte" >/dev/null
C=$(csrf_of_body)

# --- a card issued at the desk ---------------------------------------------------------------
place "$W/card1" uid=04A1A2A3A4A5A6
st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "titulaire=Zoé Garnier" \
	--data-urlencode "secteur=pool" --data-urlencode "entrees=5" --data-urlencode "support=carte" \
	--data-urlencode "lecteur=$DESK" "$URL/pass/nouveau")
[ "$st" = 200 ] || fail "issue on the desk card answered $st"
p1=$(pass_on_page)
[ -n "$p1" ] || fail "no pass number after issuing"
shown "$p1" | grep -q '"medium":"card"' || fail "pass $p1 is not on a card: $(shown "$p1")"
grep -q '^picc settings=09 key-type=aes ' "$W/card1" || fail "the card's PICC key is not ours"
ok "pass $p1 issued on the card at the desk reader"

st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "lecteur=$DESK" "$URL/carte/lire")
[ "$st" = 200 ] || fail "reading the card answered $st"
[ "$(pass_on_page)" = "$p1" ] || fail "the card read does not lead to pass $p1"
body_has "Entrées restantes sur la carte : 5" || fail "the card's entries are not shown"
ok "the card placed on the reader finds pass $p1 and its 5 entries"

st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "lecteur=$DESK" "$URL/carte/recycler")
[ "$st" = 409 ] || fail "recycling a live card answered $st"
body_has "encore valide" || fail "no French reason for refusing the recycle"
st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "motif=perdue" "$URL/pass/$p1/revoquer")
[ "$st" = 200 ] || fail "revoke answered $st"
st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "lecteur=$DESK" "$URL/carte/recycler")
[ "$st" = 200 ] || fail "recycling the revoked card answered $st"
st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "lecteur=$DESK" "$URL/carte/lire")
[ "$st" = 200 ] && body_has "Carte vierge" || fail "the recycled card is not blank ($st)"
ok "a live card is not taken back; revoked, it is, blank again"

# --- replaced on a new card ----------------------------------------------------------------
place "$W/card2" uid=04B1B2B3B4B5B6
st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "motif=perdue" \
	--data-urlencode "support=carte" --data-urlencode "lecteur=$DESK" "$URL/pass/$p1/remplacer")
[ "$st" = 200 ] || fail "replace answered $st"
p2=$(pass_on_page)
[ -n "$p2" ] && [ "$p2" != "$p1" ] || fail "no new pass after replacing"
shown "$p1" | grep -q '"state":"replaced"' || fail "pass $p1 is not marked replaced"
shown "$p2" | grep -q '"medium":"card"' || fail "pass $p2 is not on a card"
ok "pass $p1 replaced by pass $p2 on a new card"

# --- a library agent at the desk learns nothing of the pool card -------------------------
[ "$(login "$W/b" agent-biblio "$(pw_of agent-biblio)")" = 303 ] || fail "agent-biblio login"
c "$W/b" "$URL/carte" >/dev/null
B=$(csrf_of_body)
st=$(c "$W/b" --data-urlencode "csrf=$B" --data-urlencode "lecteur=$DESK" "$URL/carte/lire")
[ "$st" = 404 ] || fail "agent-biblio reading a pool card answered $st"
body_has "Garnier" && fail "agent-biblio sees the pool card's holder"
ok "a library agent reading a pool card learns nothing"

# --- a phone ----------------------------------------------------------------------------------
req=$("$TOKEN" enrol --wallet "$W/wallet" --sector 1) || fail "citypass-token enrol"
st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "titulaire=Yann Phone" \
	--data-urlencode "secteur=pool" --data-urlencode "support=telephone" \
	--data-urlencode "cle_telephone@$req" "$URL/pass/nouveau")
[ "$st" = 200 ] || fail "issue for a phone answered $st"
p3=$(pass_on_page)
body_has '<svg xmlns="http://www.w3.org/2000/svg" id="qr"' || fail "no QR code"
cred=$(sed -n 's/.*<code id="credential">CPCRED1\.\([A-Za-z0-9+\/=]*\)<\/code>.*/\1/p' "$W/body")
[ -n "$cred" ] || fail "no credential text"
printf '%s' "$cred" | base64 -d >"$W/cred" || fail "the credential is not base64"
[ "$(c "$W/j" "$URL/gate-ca.crt")" = 200 ] || fail "the gates' CA is not served"
cp "$W/body" "$W/gate-ca.crt"
cmp -s "$W/gate-ca.crt" "$DATA/keys/ca.crt" || fail "the gates' CA served is not the deployment's"
"$TOKEN" install --wallet "$W/wallet" --credential "$W/cred" --gate-ca "$W/gate-ca.crt" \
	>"$W/install.log" 2>&1 ||
	fail "the wallet refuses the credential: $(cat "$W/install.log")"
shown "$p3" | grep -q '"medium":"phone"' || fail "pass $p3 is not on a phone"
qr=$("$TOKEN" show-qr --wallet "$W/wallet" --sector 1) || fail "the wallet cannot show its QR"
[ -n "$qr" ] || fail "empty QR"
ls "$W/s" | grep -q phone && fail "the phone's request was left in the state dir"
[ -z "$(ls -A "$W/s/tmp")" ] || fail "the office left temporary files: $(ls -A "$W/s/tmp")"
ok "pass $p3 for a phone: QR and text credential, installed by the wallet"

# --- households ------------------------------------------------------------------------------
[ "$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "nom=dupont-3-rue-haute" "$URL/foyers")" = 200 ] ||
	fail "household add"
[ "$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "nom=dupont-3-rue-haute" "$URL/foyers")" = 409 ] ||
	fail "the same household twice"
body_has "existe déjà" || fail "no French sentence for a household twice"
# the same name in other letters' case is the same family: refused too
[ "$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "nom=Dupont-3-Rue-Haute" "$URL/foyers")" = 409 ] ||
	fail "the same household in capitals"
body_has "majuscules et minuscules confondues" || fail "no French sentence for a household in capitals"
st=$(c "$W/j" --data-urlencode "csrf=$C" --data-urlencode "titulaire=Jeanne Dupont" \
	--data-urlencode "foyer_nom=dupont-3-rue-haute" --data-urlencode "secteur=pool" \
	--data-urlencode "quota=24" --data-urlencode "periode=annee" --data-urlencode "foyer=1" \
	"$URL/pass/nouveau")
[ "$st" = 200 ] || fail "issue into the household answered $st"
body_has "24 passages par an pour le foyer" || fail "the household quota is not shown"
[ "$(c "$W/j" -G --data-urlencode "q=dupont-3-rue-haute" "$URL/")" = 200 ] || fail "search"
body_has "Jeanne Dupont" || fail "the household's pass is not found by its name"
ok "households: created once, a pass issued into it, found by its name"
echo PASS
