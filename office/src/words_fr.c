/*
 * words_fr.c — the library's error codes in French (office/words.h).
 */
#include <stdio.h>

#include "cardlib/error.h"
#include "office/words.h"
#include "server/error.h"
#include "server/store.h"

const char *office_error_fr(int code)
{
	switch (code) {
	case SERVER_OK:
		return "aucune erreur";
	case SERVER_ERR_ARG:
		return "une donnée manque ou n'a pas la bonne forme";
	case SERVER_ERR_NOMEM:
		return "le serveur manque de mémoire : réessayez";
	case SERVER_ERR_IO:
		return "la base de données ou un fichier a échoué : prévenez l'exploitant";
	case SERVER_ERR_NOT_FOUND:
		return "introuvable (ce pass, ce foyer ou ce service n'existe pas)";
	case SERVER_ERR_REVOKED:
		return "ce pass ou cet appareil est révoqué";
	case SERVER_ERR_INVALID:
		return "une valeur saisie ne respecte pas les règles (voir le détail)";
	case SERVER_ERR_EXISTS:
		return "cela existe déjà";
	case SERVER_ERR_CRYPTO:
		return "une opération cryptographique a échoué (clés du déploiement)";
	case SERVER_ERR_BUSY:
		return "la base est occupée par une autre opération : réessayez dans un instant";
	case SERVER_ERR_STATE:
		return "l'état du pass ne le permet pas (déjà révoqué ou remplacé)";
	case SERVER_ERR_CARD:
		return "la carte ou le lecteur a refusé l'opération (carte retirée trop tôt, "
		       "carte d'un autre système ?)";
	case SERVER_ERR_IN_USE:
		return "cette carte porte un pass encore valide : révoquez-le d'abord";
	case SERVER_ERR_SCHEMA_NEWER:
		return "la base a été écrite par une version plus récente de citypass";
	case SERVER_ERR_UNREACHABLE:
		return "la base de données est injoignable pour le moment : réessayez";
	case SERVER_ERR_RETENTION:
		return "durée de conservation au-delà du plafond de ce type de service";
	}
	if (code <= CARDLIB_ERR_FIRST && code >= CARDLIB_ERR_LAST)
		return "la carte ou le lecteur a refusé l'opération";
	return "erreur inattendue";
}

void office_refusal_fr(char *out, size_t cap, const char *action, int code)
{
	snprintf(out, cap, "%s impossible : %s.", action, office_error_fr(code));
}

const char *office_state_fr(int state)
{
	switch (state) {
	case SERVER_PASS_ACTIVE:
		return "valide";
	case SERVER_PASS_REVOKED:
		return "révoqué";
	case SERVER_PASS_REPLACED:
		return "remplacé";
	case SERVER_PASS_SUSPENDED:
		return "suspendu";
	}
	return "inconnu";
}
