/*
 * page_household.c — households at the desk (issue 18): find them, see one with its passes
 * and the quotas it shares (used and left this period), create, rename, move a pass in or
 * out, remove an empty one. Every change is one call of the pass-lifecycle library
 * (server/passes.h), audited, then the sectors it touched published, as on the pass page.
 *
 * Sector scope (docs/office.md, "Households"): a household has no sector of its own, so an
 * agent sees one when it is empty or holds a pass the agent may see (a right in one of the
 * agent's sectors, or no right yet), and sees only those passes and its own sectors' quotas;
 * it may rename or remove one only when every pass in it is its to see (a pool agent does
 * not rename the household of a library-only pass); it moves only passes it may see. Never
 * does a page say whether a household or pass it may not see exists.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "office/words.h"
#include "office_internal.h"

#define HOUSEHOLDS_SHOWN   50
#define HOUSEHOLDS_SCANNED 500

/* --- scope ------------------------------------------------------------------------------ */

/* How much of household v the agent may see (1) and change (2): 0 none of it. */
static int household_scope(struct office_req *q, const struct server_household_view *v)
{
	if (q->s.acct.role == OFFICE_ROLE_ADMIN)
		return 2;
	size_t seen = 0;
	for (size_t i = 0; i < v->n_passes; i++)
		seen += office_pass_visible(q, v->passes[i].id) != 0;
	if (seen == v->n_passes)
		return 2; /* all of it (or it is empty) */
	return seen ? 1 : 0;
}

/* The household as the agent may act on it: 0 and *v (free it), or the 404 page sent and
 * the attempt audited. need: 1 to see it, 2 to change it as a whole. */
static int household_in_scope(struct office_req *q, int64_t id, int need, const char *action,
                              struct server_household_view *v)
{
	struct server_why why = {""};
	if (server_household_read(&q->desk, id, v, &why) == 0) {
		if (household_scope(q, v) >= need)
			return 0;
		server_household_view_free(v);
	}
	if (action)
		office_audit_req(q, action, 0, 0, 0, "foyer hors de vos services ou inexistant");
	office_page_refuse(q, 404, "Foyer introuvable",
	                   "Aucun foyer de ce numéro dans vos services.", "");
	return -1;
}

int office_household_visible(struct office_req *q, const char *name)
{
	struct server_household h;
	struct server_household_view v;
	struct server_why why = {""};
	if (server_household_find(&q->desk, name, &h, &why) != 0 ||
	    server_household_read(&q->desk, h.id, &v, &why) != 0)
		return 0;
	int seen = household_scope(q, &v) >= 1;
	server_household_view_free(&v);
	return seen;
}

/* --- words ------------------------------------------------------------------------------ */

static const char *per_fr(int period)
{
	switch (period) {
	case PROTO_PERIOD_DAY:
		return "par jour";
	case PROTO_PERIOD_WEEK:
		return "par semaine";
	case PROTO_PERIOD_MONTH:
		return "par mois";
	}
	return "par an";
}

/* The French for a household action's refusal, from the library's code. */
static void refusal_fr(char *out, size_t cap, const char *action, int rc)
{
	if (rc == SERVER_ERR_IN_USE)
		snprintf(out, cap,
		         "%s impossible : des pass valides sont encore dans ce foyer ; "
		         "retirez-les d'abord.",
		         action);
	else if (rc == SERVER_ERR_STATE)
		snprintf(out, cap,
		         "%s impossible : un pass révoqué ou remplacé reste dans son foyer.",
		         action);
	else if (rc == SERVER_ERR_EXISTS)
		snprintf(out, cap,
		         "%s impossible : un foyer de ce nom existe déjà (majuscules et "
		         "minuscules confondues).",
		         action);
	else
		office_refusal_fr(out, cap, action, rc);
}

static int status_of(int rc)
{
	switch (rc) {
	case SERVER_ERR_NOT_FOUND:
		return 404;
	case SERVER_ERR_EXISTS:
	case SERVER_ERR_IN_USE:
	case SERVER_ERR_STATE:
		return 409;
	}
	return 400;
}

/* --- the household page ------------------------------------------------------------------- */

static void members_table(struct office_req *q, const struct server_household_view *v)
{
	fputs("<h2>Pass du foyer</h2><table id=\"membres\"><thead><tr><th>Pass</th>"
	      "<th>Titulaire</th><th>État</th><th></th></tr></thead><tbody>",
	      q->page);
	size_t shown = 0;
	for (size_t i = 0; i < v->n_passes; i++) {
		const struct server_pass *p = &v->passes[i];
		if (q->s.acct.role != OFFICE_ROLE_ADMIN && !office_pass_visible(q, p->id))
			continue; /* another service's pass: not this agent's to see */
		fprintf(q->page, "<tr><td><a href=\"/pass/%" PRId64 "\">%" PRId64 "</a></td><td>",
		        p->id, p->id);
		office_html(q, p->holder[0] ? p->holder : "anonyme");
		fprintf(q->page, "</td><td>%s</td><td>", office_state_fr(p->state));
		if (p->state == SERVER_PASS_ACTIVE || p->state == SERVER_PASS_SUSPENDED) {
			fprintf(q->page,
			        "<form method=\"post\" action=\"/foyer/%" PRId64 "/retirer\">",
			        v->h.id);
			office_csrf_input(q);
			fprintf(q->page,
			        "<input type=\"hidden\" name=\"pass\" value=\"%" PRId64 "\">"
			        "<button aria-label=\"Retirer le pass %" PRId64
			        " du foyer\">Retirer "
			        "du foyer</button></form>",
			        p->id, p->id);
		}
		fputs("</td></tr>", q->page);
		shown++;
	}
	if (!shown)
		fputs("<tr><td colspan=\"4\">Aucun pass dans vos services.</td></tr>", q->page);
	fputs("</tbody></table>", q->page);
}

static void quotas_table(struct office_req *q, const struct server_household_view *v)
{
	fputs("<h2>Quotas partagés</h2><table id=\"quotas-foyer\"><thead><tr><th>Service</th>"
	      "<th>Quota</th><th>Utilisé</th><th>Restant</th></tr></thead><tbody>",
	      q->page);
	size_t shown = 0;
	for (size_t i = 0; i < v->n_quotas; i++) {
		const struct server_household_quota *k = &v->quotas[i];
		if (!office_account_has_sector(&q->s.acct, k->sector))
			continue;
		char sec[SERVER_NAME_MAX];
		server_sector_name(&q->o->st, k->sector, sec, sizeof(sec));
		fputs("<tr><td>", q->page);
		office_html(q, sec);
		fprintf(q->page, "</td><td>%u passages %s", k->p.limit, per_fr(k->p.period));
		if (k->p.product != 1)
			fprintf(q->page, " (produit %u)", k->p.product);
		fprintf(q->page, "</td><td>%u</td><td>%u</td></tr>", k->used,
		        k->used >= k->p.limit ? 0 : k->p.limit - k->used);
		shown++;
	}
	if (!shown)
		fputs("<tr><td colspan=\"4\">Aucun quota partagé dans vos services.</td></tr>",
		      q->page);
	fputs("</tbody></table><p>Les passages comptés restent au pass qui les a faits : un pass "
	      "qui rejoint le foyer y apporte ceux de la période, un pass qui le quitte les "
	      "emporte.</p>",
	      q->page);
}

static void household_forms(struct office_req *q, const struct server_household_view *v, int change)
{
	fprintf(q->page,
	        "<section><h2>Ajouter un pass au foyer</h2><form method=\"post\" "
	        "action=\"/foyer/%" PRId64 "/ajouter\">",
	        v->h.id);
	office_csrf_input(q);
	fputs("<p><label for=\"pass\">Numéro du pass</label><input id=\"pass\" name=\"pass\" "
	      "inputmode=\"numeric\" size=\"10\" required> <button id=\"ajouter\">Ajouter au "
	      "foyer</button></p></form></section>",
	      q->page);
	if (change < 2)
		return; /* some of its passes are another service's: not this agent's to rename */
	fprintf(q->page,
	        "<section><h2>Renommer</h2><form method=\"post\" action=\"/foyer/%" PRId64
	        "/renommer\">",
	        v->h.id);
	office_csrf_input(q);
	fputs("<p><label for=\"nom\">Nouveau nom</label><input id=\"nom\" name=\"nom\" "
	      "maxlength=\"63\" required value=\"",
	      q->page);
	office_html(q, v->h.name);
	fputs("\"> <button id=\"renommer\">Renommer</button></p></form></section>", q->page);
	fprintf(q->page,
	        "<section><h2>Supprimer le foyer</h2><p>Seulement quand aucun pass valide n'y "
	        "est plus.</p><form method=\"post\" action=\"/foyer/%" PRId64 "/supprimer\">",
	        v->h.id);
	office_csrf_input(q);
	fputs("<p><button id=\"supprimer\">Supprimer le foyer</button></p></form></section>",
	      q->page);
}

/* The household page with a message on top; status 200 or the refusal's. */
static void render_household(struct office_req *q, int64_t id, int status, const char *ok,
                             const char *err, const char *detail)
{
	struct server_household_view v;
	if (household_in_scope(q, id, 1, NULL, &v) != 0)
		return;
	int change = household_scope(q, &v);
	char title[SERVER_NAME_MAX + 16];
	snprintf(title, sizeof(title), "Foyer %s", v.h.name);
	office_page_begin(q, title);
	if (ok && *ok)
		office_msg_ok(q, ok);
	if (err && *err)
		office_msg_err(q, err, detail);
	members_table(q, &v);
	quotas_table(q, &v);
	household_forms(q, &v, change);
	server_household_view_free(&v);
	office_page_end(q, status);
}

/* A change done to a household the agent no longer sees (removed, or left with none of
 * the agent's passes): the confirmation, and the way back to the list. */
static void confirm_to_list(struct office_req *q, const char *msg)
{
	office_page_begin(q, "Foyers");
	office_msg_ok(q, msg);
	fputs("<p><a href=\"/foyers\">Retour aux foyers</a></p>", q->page);
	office_page_end(q, 200);
}

/* After a change: the publish summary after the confirmation, or the refusal. */
static void after(struct office_req *q, int64_t id, int rc, const char *ok, const char *action_fr,
                  const struct server_sector_set *changed, const struct server_why *why)
{
	char pub[512] = "", msg[sizeof(pub) + 256];
	if (rc == 0) {
		if (changed)
			office_publish_changed(q, changed, pub, sizeof(pub));
		snprintf(msg, sizeof(msg), "%s%s%s", ok, pub[0] ? " " : "", pub);
		/* the agent's last pass taken out of a household of several services: done and
		 * audited, and the household is now out of the agent's sight (no 404 for it) */
		struct server_household_view v;
		struct server_why gone = {""};
		if (server_household_read(&q->desk, id, &v, &gone) != 0)
			return confirm_to_list(q, msg);
		const int seen = household_scope(q, &v);
		server_household_view_free(&v);
		if (seen < 1)
			return confirm_to_list(q, msg);
		return render_household(q, id, 200, msg, NULL, NULL);
	}
	refusal_fr(msg, sizeof(msg), action_fr, rc);
	render_household(q, id, status_of(rc), NULL, msg, why->text);
}

/* --- actions ---------------------------------------------------------------------------- */

static int64_t pass_number(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	return *s && !*end && v > 0 ? v : 0;
}

static void act_rename(struct office_req *q, int64_t id)
{
	struct server_household_view v;
	if (household_in_scope(q, id, 2, "foyer renommé", &v) != 0)
		return;
	server_household_view_free(&v);
	struct server_why why = {""};
	int rc = server_household_rename(&q->desk, id, office_field(q, "nom"), &why);
	char d[32];
	snprintf(d, sizeof(d), "foyer %" PRId64, id);
	office_audit_req(q, "foyer renommé", 0, 0, rc == 0, d);
	after(q, id, rc, "Foyer renommé.", "Renommage du foyer", NULL, &why);
}

/* Move the pass the form names in (into = 1) or out of household id. */
static void act_move(struct office_req *q, int64_t id, int into)
{
	const char *action = into ? "pass ajouté au foyer" : "pass retiré du foyer";
	struct server_household_view v;
	if (household_in_scope(q, id, 1, action, &v) != 0)
		return;
	int64_t pass = pass_number(office_field(q, "pass"));
	int member = 0;
	for (size_t i = 0; i < v.n_passes; i++)
		member |= v.passes[i].id == pass;
	server_household_view_free(&v);
	struct server_why why = {""};
	struct server_sector_set changed = {0};
	char d[32];
	snprintf(d, sizeof(d), "foyer %" PRId64, id);
	if (!pass || !office_pass_visible(q, pass) || (!into && !member)) {
		/* a pass of another service is refused as one that does not exist */
		office_audit_req(q, action, pass, 0, 0, "pass hors de vos services ou inexistant");
		return render_household(q, id, 404, NULL,
		                        into ? "Ajout impossible : aucun pass de ce numéro dans "
		                               "vos services."
		                             : "Retrait impossible : ce pass n'est pas dans ce "
		                               "foyer.",
		                        "");
	}
	int rc = server_household_move(&q->desk, pass, into ? id : 0, &changed, &why);
	office_audit_req(q, action, pass, 0, rc == 0, d);
	after(q, id, rc, into ? "Pass ajouté au foyer." : "Pass retiré du foyer.",
	      into ? "Ajout au foyer" : "Retrait du foyer", &changed, &why);
}

static void act_remove(struct office_req *q, int64_t id)
{
	struct server_household_view v;
	if (household_in_scope(q, id, 2, "foyer supprimé", &v) != 0)
		return;
	server_household_view_free(&v);
	struct server_why why = {""};
	struct server_sector_set changed = {0};
	int rc = server_household_remove(&q->desk, id, &changed, &why);
	char d[32];
	snprintf(d, sizeof(d), "foyer %" PRId64, id);
	office_audit_req(q, "foyer supprimé", 0, 0, rc == 0, d);
	if (rc)
		return after(q, id, rc, "", "Suppression du foyer", NULL, &why);
	char pub[512] = "", msg[sizeof(pub) + 64];
	office_publish_changed(q, &changed, pub, sizeof(pub));
	snprintf(msg, sizeof(msg), "Foyer supprimé. %s", pub);
	confirm_to_list(q, msg);
}

void office_page_household(struct office_req *q, const char *rest)
{
	int64_t id = 0;
	const char *p = rest;
	while (*p >= '0' && *p <= '9' && id < INT64_MAX / 10)
		id = id * 10 + (*p++ - '0');
	const char *action = *p == '/' ? p + 1 : p;
	if (id <= 0 || (*p && *p != '/') || (*p == '/' && !*action))
		return office_page_refuse(q, 404, "Page introuvable",
		                          "Cette adresse ne correspond à aucune page du guichet.",
		                          "");
	if (q->post == !*action)
		return office_page_refuse(
		        q, 405, "Requête refusée",
		        "Cette page ne s'utilise pas ainsi (méthode HTTP non prévue).", "");
	if (!*action)
		return render_household(q, id, 200, NULL, NULL, NULL);
	if (strcmp(action, "renommer") == 0)
		return act_rename(q, id);
	if (strcmp(action, "ajouter") == 0)
		return act_move(q, id, 1);
	if (strcmp(action, "retirer") == 0)
		return act_move(q, id, 0);
	if (strcmp(action, "supprimer") == 0)
		return act_remove(q, id);
	office_page_refuse(q, 404, "Page introuvable",
	                   "Cette adresse ne correspond à aucune page du guichet.", "");
}

/* --- the list: find, create ---------------------------------------------------------------- */

/* The households found, read before any is looked into (no statement left open). */
struct listing {
	struct server_household v[HOUSEHOLDS_SCANNED];
	size_t n;
};

static int list_collect(void *arg, const struct server_household *h)
{
	struct listing *l = arg;
	l->v[l->n++] = *h;
	return 0;
}

/* The households whose name holds `text` (case ignored) the agent may see, as links. */
void office_households_found(struct office_req *q, const char *text)
{
	struct listing *l = calloc(1, sizeof(*l));
	struct server_why why = {""};
	size_t shown = 0;
	if (l)
		server_household_search(&q->desk, text, HOUSEHOLDS_SCANNED, list_collect, l, &why);
	fputs("<ul id=\"foyers\">", q->page);
	for (size_t i = 0; l && i < l->n && shown < HOUSEHOLDS_SHOWN; i++) {
		struct server_household_view v;
		if (server_household_read(&q->desk, l->v[i].id, &v, &why) != 0)
			continue;
		int scope = household_scope(q, &v);
		server_household_view_free(&v);
		if (!scope)
			continue;
		fprintf(q->page, "<li><a href=\"/foyer/%" PRId64 "\">", l->v[i].id);
		office_html(q, l->v[i].name);
		fputs("</a></li>", q->page);
		shown++;
	}
	fputs("</ul>", q->page);
	if (!shown)
		fputs("<p>Aucun foyer trouvé dans vos services.</p>", q->page);
	else if (shown == HOUSEHOLDS_SHOWN || (l && l->n == HOUSEHOLDS_SCANNED))
		fputs("<p>Les premiers seulement : précisez la recherche.</p>", q->page);
	free(l);
}

void office_page_households(struct office_req *q)
{
	char ok[256] = "", err[512] = "";
	struct server_why why = {""};
	int status = 200;
	int64_t made = 0;
	if (q->post) {
		const char *name = office_field(q, "nom");
		int rc = server_household_add(&q->desk, name, &made, &why);
		char d[32];
		snprintf(d, sizeof(d), "foyer %" PRId64, made);
		office_audit_req(q, "foyer créé", 0, 0, rc == 0, rc == 0 ? d : "");
		if (rc == 0) {
			snprintf(ok, sizeof(ok),
			         "Foyer créé : choisissez-le en émettant les pass de ses membres, "
			         "ou "
			         "ajoutez-y un pass existant depuis sa page.");
		} else {
			refusal_fr(err, sizeof(err), "Création du foyer", rc);
			status = rc == SERVER_ERR_EXISTS ? 409 : 400;
		}
	}
	const char *text = office_field(q, "q");
	office_page_begin(q, "Foyers");
	if (*ok)
		office_msg_ok(q, ok);
	if (*err)
		office_msg_err(q, err, why.text);
	if (made)
		fprintf(q->page, "<p><a href=\"/foyer/%" PRId64 "\">Voir le foyer créé</a></p>",
		        made);
	fputs("<p>Un foyer partage ses quotas (par exemple 24 passages par an en déchèterie) entre "
	      "les pass de ses membres.</p>"
	      "<form method=\"get\" action=\"/foyers\" role=\"search\"><p><label for=\"q\">Nom du "
	      "foyer</label><input id=\"q\" name=\"q\" value=\"",
	      q->page);
	office_html(q, text);
	fputs("\"> <button id=\"chercher-foyer\">Chercher</button></p></form>", q->page);
	if (*text)
		office_households_found(q, text);
	fputs("<h2>Nouveau foyer</h2><form method=\"post\" action=\"/foyers\">", q->page);
	office_csrf_input(q);
	fputs("<p><label for=\"nom\">Nom du foyer</label><input id=\"nom\" name=\"nom\" "
	      "maxlength=\"63\" required> <button id=\"foyer\">Créer le foyer</button></p>"
	      "<p>Lettres, chiffres, tiret, point ou souligné (par exemple "
	      "martin-12-rue-haute).</p>"
	      "</form>",
	      q->page);
	office_page_end(q, status);
}
