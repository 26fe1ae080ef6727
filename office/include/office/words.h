/*
 * office/words.h — the one place where the server library's refusals become French for the
 * agent (DESIGN §12: "shows the same errors in plain French"). The library's own sentence
 * (English, with sqlite's or cardlib's words) goes under it as the technical detail, so
 * nothing the CLI would say is lost.
 */
#ifndef OFFICE_WORDS_H
#define OFFICE_WORDS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a SERVER_ERR_* (or cardlib) code means, as the end of a French sentence:
 * "cette carte est déjà révoquée ou remplacée". Never NULL. */
const char *office_error_fr(int code);

/* "ACTION impossible : MEANING." into out, e.g. ("Révocation", SERVER_ERR_STATE) ->
 * "Révocation impossible : l'état du pass ne le permet pas (déjà révoqué ou remplacé)." */
void office_refusal_fr(char *out, size_t cap, const char *action, int code);

/* A pass state in French: "valide", "révoqué", "remplacé", "suspendu". */
const char *office_state_fr(int state);

#ifdef __cplusplus
}
#endif

#endif /* OFFICE_WORDS_H */
