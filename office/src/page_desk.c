/*
 * page_desk.c — what an agent does at the desk: search a holder or a pass, see a pass with
 * its rights and what is left of them, revoke it, replace it, grant and withdraw rights,
 * issue a new pass. Every change is one call of the pass-lifecycle library
 * (server/passes.h), as citypass-admin makes it, then the sectors it touched published.
 *
 * Sector scope (docs/office.md): an agent sees a pass only when it holds a right in one of
 * the agent's sectors (or no right yet), sees and changes only those sectors' rights, and
 * never learns whether a pass it may not see exists. Checked here on every route, from the
 * database, whatever the form says.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "office/words.h"
#include "office_internal.h"
#include "server/publish.h"

#define SEARCH_MAX 50
#define SCAN_MAX   2000

/* --- scope ------------------------------------------------------------------------------ */

static int pass_visible(struct office_req *q, const struct server_right *r, size_t n)
{
	if (q->s.acct.role == OFFICE_ROLE_ADMIN || n == 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (office_account_has_sector(&q->s.acct, r[i].sector))
			return 1;
	return 0;
}

/* --- words ------------------------------------------------------------------------------ */

static void day_text(uint16_t day, char *out, size_t cap)
{
	time_t t = (time_t)day * 86400;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, cap, "%d/%m/%Y", &tm) == 0)
		snprintf(out, cap, "?");
}

static const char *period_fr(int p)
{
	switch (p) {
	case PROTO_PERIOD_DAY:
		return "par jour";
	case PROTO_PERIOD_WEEK:
		return "par semaine";
	case PROTO_PERIOD_MONTH:
		return "par mois";
	case PROTO_PERIOD_YEAR:
		return "par an";
	}
	return "";
}

static const char *fare_fr(int f)
{
	switch (f) {
	case PROTO_FARE_RESIDENT:
		return "résident";
	case PROTO_FARE_CONCESSION:
		return "réduit";
	case PROTO_FARE_FREE:
		return "gratuit";
	}
	return "plein tarif";
}

/* A right in French: "du 01/01/2026 au 31/12/2026 ; 24 passages par an pour le foyer". */
static void right_fr(const struct proto_rights_profile *p, char *out, size_t cap)
{
	char a[16], b[16];
	size_t o = 0;
	out[0] = 0;
#define ADD(...) o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, __VA_ARGS__)
	if (p->product != 1)
		ADD("produit %u ; ", p->product);
	day_text(p->valid_from, a, sizeof(a));
	day_text(p->valid_to, b, sizeof(b));
	if (p->valid_from != PROTO_DAY_UNBOUNDED_FROM && p->valid_to != PROTO_DAY_UNBOUNDED_TO)
		ADD("du %s au %s ; ", a, b);
	else if (p->valid_from != PROTO_DAY_UNBOUNDED_FROM)
		ADD("à partir du %s ; ", a);
	else if (p->valid_to != PROTO_DAY_UNBOUNDED_TO)
		ADD("jusqu'au %s ; ", b);
	else
		ADD("sans limite de dates ; ");
	if (p->period == PROTO_PERIOD_LIFETIME)
		ADD("%u entrées%s ; ", p->limit,
		    p->flags & PROTO_PROFILE_ENTRIES_ON_CARD ? " (sur la carte)" : "");
	else if (p->period != PROTO_PERIOD_NONE)
		ADD("%u passages %s%s ; ", p->limit, period_fr(p->period),
		    p->scope == PROTO_SCOPE_HOUSEHOLD ? " pour le foyer" : "");
	ADD("%s", fare_fr(p->fare));
#undef ADD
}

static const char *medium_fr(const char *m)
{
	if (strcmp(m, "card") == 0)
		return "carte";
	if (strcmp(m, "phone") == 0)
		return "téléphone";
	return "en attente de support";
}

/* What is left of a counted right this period: "reste 20 sur 24". */
static void remaining_fr(struct office_req *q, const struct server_right *r, char *out, size_t cap)
{
	out[0] = 0;
	if (r->p.period == PROTO_PERIOD_NONE)
		return;
	if (r->p.flags & PROTO_PROFILE_ENTRIES_ON_CARD) {
		snprintf(out, cap, "compté sur la carte (posez-la sur le lecteur pour le lire)");
		return;
	}
	uint8_t key[PROTO_LIST_KEY_LEN];
	struct server_periods per;
	struct server_list_row row;
	server_periods_at(q->desk.now, &per);
	if (q->o->st.ops->pass_id_get(q->o->st.ctx, r->pass, r->sector, NULL, key) != 0)
		return;
	uint32_t used = 0;
	if (q->o->st.ops->list_row(q->o->st.ctx, r->sector, key, &per, &row) == 0)
		used = row.used;
	snprintf(out, cap, "reste %u sur %u", used >= r->p.limit ? 0 : r->p.limit - used,
	         r->p.limit);
}

/* --- the right's form -------------------------------------------------------------------- */

static void sector_options(struct office_req *q, const char *selected)
{
	struct server_sector *v = NULL;
	size_t n = 0;
	if (q->o->st.ops->sector_list(q->o->st.ctx, &v, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!office_account_has_sector(&q->s.acct, v[i].number))
			continue;
		fputs("<option value=\"", q->page);
		office_html(q, v[i].name);
		fprintf(q->page, "\"%s>",
		        selected && strcmp(selected, v[i].name) == 0 ? " selected" : "");
		office_html(q, v[i].name);
		fputs("</option>", q->page);
	}
	free(v);
}

static void right_fields(struct office_req *q)
{
	fputs("<p><label for=\"secteur\">Service</label><select id=\"secteur\" name=\"secteur\">",
	      q->page);
	sector_options(q, NULL);
	fputs("</select></p>"
	      "<p><label for=\"du\">Valable du</label><input id=\"du\" name=\"du\" type=\"date\"> "
	      "<label for=\"au\">au</label><input id=\"au\" name=\"au\" type=\"date\"></p>"
	      "<p><label for=\"entrees\">Nombre d'entrées</label>"
	      "<input id=\"entrees\" name=\"entrees\" inputmode=\"numeric\" size=\"4\"></p>"
	      "<p><label for=\"quota\">Quota</label><input id=\"quota\" name=\"quota\" "
	      "inputmode=\"numeric\" size=\"4\"> <select name=\"periode\" aria-label=\"période\">"
	      "<option value=\"\">—</option><option value=\"jour\">par jour</option>"
	      "<option value=\"semaine\">par semaine</option><option value=\"mois\">par mois"
	      "</option><option value=\"annee\">par an</option></select> "
	      "<label><input type=\"checkbox\" name=\"foyer\" value=\"1\"> partagé par le foyer"
	      "</label></p>"
	      "<p><label for=\"tarif\">Tarif</label><select id=\"tarif\" name=\"tarif\">"
	      "<option value=\"standard\">plein tarif</option><option value=\"resident\">"
	      "résident</option><option value=\"concession\">réduit</option><option "
	      "value=\"free\">gratuit</option></select></p>",
	      q->page);
}

/* digits (and '-' for dates) only, so that nothing typed can add a key to the spec */
static int spec_value_ok(const char *v, int dash)
{
	if (strlen(v) > 12)
		return 0;
	for (; *v; v++)
		if (!((*v >= '0' && *v <= '9') || (dash && *v == '-')))
			return 0;
	return 1;
}

/*
 * The right the form describes, read by the library's own parser (server_right_parse, the
 * CLI's --right): 0, or a French sentence in err and the library's in detail. The sector
 * must be one of the agent's.
 */
static int form_right(struct office_req *q, struct server_right *r, char *err, size_t cap,
                      struct server_why *why)
{
	const char *sec = office_field(q, "secteur"), *from = office_field(q, "du"),
	           *to = office_field(q, "au"), *entries = office_field(q, "entrees"),
	           *quota = office_field(q, "quota"), *period = office_field(q, "periode"),
	           *fare = office_field(q, "tarif");
	struct server_sector s;
	why->text[0] = 0;
	if (server_sector_find(&q->o->st, sec, &s) != 0 ||
	    !office_account_has_sector(&q->s.acct, s.number)) {
		snprintf(err, cap,
		         "Droit impossible : ce service n'est pas le vôtre ou n'existe pas.");
		return SERVER_ERR_NOT_FOUND;
	}
	static const char *const periods[][2] = {
	        {"jour", "day"}, {"semaine", "week"}, {"mois", "month"}, {"annee", "year"}};
	const char *per = NULL;
	for (size_t i = 0; i < 4; i++)
		if (strcmp(period, periods[i][0]) == 0)
			per = periods[i][1];
	if (!spec_value_ok(from, 1) || !spec_value_ok(to, 1) || !spec_value_ok(entries, 0) ||
	    !spec_value_ok(quota, 0) || (*period && !per) ||
	    (*fare && strcmp(fare, "standard") && strcmp(fare, "resident") &&
	     strcmp(fare, "concession") && strcmp(fare, "free"))) {
		snprintf(err, cap,
		         "Droit impossible : les dates s'écrivent AAAA-MM-JJ, les nombres en "
		         "chiffres.");
		return SERVER_ERR_INVALID;
	}
	if (*quota && !per) {
		snprintf(err, cap, "Droit impossible : un quota a besoin de sa période.");
		return SERVER_ERR_INVALID;
	}
	char spec[256];
	size_t o = (size_t)snprintf(spec, sizeof(spec), "%s", s.name);
#define KEY(cond, ...)                                                                             \
	if (cond)                                                                                  \
	o += (size_t)snprintf(spec + o, o < sizeof(spec) ? sizeof(spec) - o : 0, __VA_ARGS__)
	KEY(*from, ",from=%s", from);
	KEY(*to, ",to=%s", to);
	KEY(*entries, ",entries=%s", entries);
	KEY(*quota, ",quota=%s/%s%s", quota, per, *office_field(q, "foyer") ? "/household" : "");
	KEY(*fare, ",fare=%s", fare);
#undef KEY
	int rc = server_right_parse(&q->o->st, spec, r, why);
	if (rc)
		office_refusal_fr(err, cap, "Droit", rc);
	return rc;
}

/* --- the pass page --------------------------------------------------------------------- */

static void pass_forms(struct office_req *q, const struct server_pass *p)
{
	int live = p->state == SERVER_PASS_ACTIVE || p->state == SERVER_PASS_SUSPENDED;
	if (live) {
		fprintf(q->page,
		        "<section><h2>Révoquer (carte perdue, volée, départ)</h2>"
		        "<form method=\"post\" action=\"/pass/%" PRId64 "/revoquer\">",
		        p->id);
		office_csrf_input(q);
		fputs("<p><label for=\"motif\">Motif</label><select id=\"motif\" name=\"motif\">"
		      "<option value=\"perdue\">carte perdue</option><option value=\"volée\">carte "
		      "volée</option><option value=\"départ\">départ de la commune</option>"
		      "<option value=\"autre\">autre</option></select> "
		      "<button id=\"revoquer\">Révoquer maintenant</button></p></form></section>",
		      q->page);
	}
	if (p->state != SERVER_PASS_REPLACED) {
		fprintf(q->page,
		        "<section><h2>Remplacer</h2><p>Un nouveau pass garde le titulaire, le "
		        "foyer "
		        "et les droits ; celui-ci est marqué remplacé.</p>"
		        "<form method=\"post\" action=\"/pass/%" PRId64 "/remplacer\">",
		        p->id);
		office_csrf_input(q);
		fputs("<p><label for=\"motif_r\">Motif</label><input id=\"motif_r\" name=\"motif\" "
		      "maxlength=\"200\"></p>",
		      q->page);
		office_medium_fields(q, 1);
		fputs("<p><button id=\"remplacer\">Remplacer</button></p></form></section>",
		      q->page);
	}
	if (live) {
		fprintf(q->page,
		        "<section><h2>Donner ou renouveler un droit</h2><p>Un droit remplace celui "
		        "du même service.</p><form method=\"post\" action=\"/pass/%" PRId64
		        "/droit\">",
		        p->id);
		office_csrf_input(q);
		right_fields(q);
		fputs("<p><button id=\"droit\">Enregistrer le droit</button></p></form></section>",
		      q->page);
	}
}

/* The pass page, with a message on top (ok or error): status 200 or the refusal's. */
static void render_pass(struct office_req *q, int64_t id, int status, const char *ok,
                        const char *err, const char *detail)
{
	struct server_pass p;
	struct server_why why;
	struct server_right *r = NULL;
	size_t n = 0;
	if (server_pass_read(&q->desk, id, &p, &why) != 0 ||
	    q->o->st.ops->rights_of_pass(q->o->st.ctx, id, &r, &n) != 0 || !pass_visible(q, r, n)) {
		free(r);
		char s[128];
		snprintf(s, sizeof(s), "Aucun pass n° %" PRId64 " dans vos services.", id);
		return office_page_refuse(q, 404, "Pass introuvable", s, "");
	}
	char title[64];
	snprintf(title, sizeof(title), "Pass n° %" PRId64, id);
	office_page_begin(q, title);
	if (ok && *ok)
		office_msg_ok(q, ok);
	if (err && *err)
		office_msg_err(q, err, detail);
	office_credential_block(q);
	fputs("<dl class=\"pass\"><dt>Titulaire</dt><dd id=\"titulaire\">", q->page);
	office_html(q, p.holder[0] ? p.holder : "anonyme");
	fputs("</dd>", q->page);
	if (p.household) {
		char hh[SERVER_NAME_MAX] = "";
		q->o->st.ops->household_name(q->o->st.ctx, p.household, hh, sizeof(hh));
		fputs("<dt>Foyer</dt><dd>", q->page);
		office_html(q, hh);
		fputs("</dd>", q->page);
	}
	fprintf(q->page, "<dt>État</dt><dd id=\"etat\">%s", office_state_fr(p.state));
	if (p.reason[0]) {
		fputs(" — ", q->page);
		office_html(q, p.reason);
	}
	fprintf(q->page, "</dd><dt>Support</dt><dd>%s</dd>", medium_fr(p.medium));
	if (p.replaced_by)
		fprintf(q->page,
		        "<dt>Remplacé par</dt><dd><a href=\"/pass/%" PRId64 "\">pass n° %" PRId64
		        "</a></dd>",
		        p.replaced_by, p.replaced_by);
	fputs("</dl><h2>Droits</h2><table id=\"droits\"><thead><tr><th>Service</th><th>Droit</th>"
	      "<th>Restant</th><th></th></tr></thead><tbody>",
	      q->page);
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		if (!office_account_has_sector(&q->s.acct, r[i].sector))
			continue; /* another service's right: not this agent's to see */
		char sec[SERVER_NAME_MAX], d[256], left[128];
		server_sector_name(&q->o->st, r[i].sector, sec, sizeof(sec));
		right_fr(&r[i].p, d, sizeof(d));
		remaining_fr(q, &r[i], left, sizeof(left));
		fputs("<tr><td>", q->page);
		office_html(q, sec);
		fputs("</td><td>", q->page);
		office_html(q, d);
		fputs("</td><td>", q->page);
		office_html(q, left);
		fprintf(q->page,
		        "</td><td><form method=\"post\" action=\"/pass/%" PRId64 "/retirer\">", id);
		office_csrf_input(q);
		fputs("<input type=\"hidden\" name=\"secteur\" value=\"", q->page);
		office_html(q, sec);
		fputs("\"><button>Retirer</button></form></td></tr>", q->page);
		shown++;
	}
	if (!shown)
		fputs("<tr><td colspan=\"4\">Aucun droit dans vos services.</td></tr>", q->page);
	fputs("</tbody></table>", q->page);
	free(r);
	pass_forms(q, &p);
	office_page_end(q, status);
}

void office_show_pass(struct office_req *q, int64_t id, int status, const char *ok)
{
	render_pass(q, id, status, ok, NULL, NULL);
}

int office_pass_visible(struct office_req *q, int64_t id)
{
	struct server_pass p;
	struct server_why why;
	struct server_right *r = NULL;
	size_t n = 0;
	int ok = server_pass_read(&q->desk, id, &p, &why) == 0 &&
	         q->o->st.ops->rights_of_pass(q->o->st.ctx, id, &r, &n) == 0 &&
	         pass_visible(q, r, n);
	free(r);
	return ok;
}

/* --- actions ---------------------------------------------------------------------------- */

/* The pass as the agent may act on it: 0, or the 404 page sent (audited: a forged request
 * for a pass outside the agent's sectors ends here). */
static int pass_in_scope(struct office_req *q, int64_t id, const char *action)
{
	if (office_pass_visible(q, id))
		return 0;
	office_audit_req(q, action, id, 0, 0, "hors de vos services ou inexistant");
	char s[128];
	snprintf(s, sizeof(s), "Aucun pass n° %" PRId64 " dans vos services.", id);
	office_page_refuse(q, 404, "Pass introuvable", s, "");
	return -1;
}

static void done(struct office_req *q, int64_t id, int rc, const char *action_fr, const char *ok,
                 const struct server_sector_set *changed, const struct server_why *why,
                 const char *err)
{
	/* room for the confirmation and the whole publish summary: a truncated
	 * message would hide from the agent which gates already hold the change */
	char pub[512] = "", msg[sizeof(pub) + 256];
	if (rc == 0) {
		office_publish_changed(q, changed, pub, sizeof(pub));
		if (pub[0]) {
			snprintf(msg, sizeof(msg), "%s %s", ok, pub);
			return render_pass(q, id, 200, msg, NULL, NULL);
		}
		return render_pass(q, id, 200, ok, NULL, NULL);
	}
	if (err && *err)
		snprintf(msg, sizeof(msg), "%s", err);
	else
		office_refusal_fr(msg, sizeof(msg), action_fr, rc);
	render_pass(q, id, rc == SERVER_ERR_STATE || rc == SERVER_ERR_IN_USE ? 409 : 400, NULL, msg,
	            why ? why->text : "");
}

static void act_revoke(struct office_req *q, int64_t id)
{
	const char *motif = office_field(q, "motif");
	struct server_sector_set changed = {0};
	struct server_why why = {""};
	int rc;
	if (!*motif || strlen(motif) >= SERVER_TEXT_MAX)
		rc = server_why_set(&why, SERVER_ERR_INVALID, "a reason of 1 to 255 bytes");
	else
		rc = server_pass_revoke(&q->desk, id, motif, &changed, &why);
	office_audit_req(q, "révocation", id, 0, rc == 0, motif);
	done(q, id, rc, "Révocation",
	     "Pass révoqué : les portiques en ligne le refusent dans les secondes qui viennent.",
	     &changed, &why, NULL);
}

static void act_grant(struct office_req *q, int64_t id)
{
	struct server_right r;
	struct server_why why = {""};
	struct server_sector_set changed = {0};
	char err[512] = "";
	int rc = form_right(q, &r, err, sizeof(err), &why);
	if (rc == 0)
		rc = server_rights_grant(&q->desk, id, &r, 1, &changed, &why);
	char d[256] = "";
	if (rc == 0)
		right_fr(&r.p, d, sizeof(d));
	office_audit_req(q, "droit accordé", id, rc == 0 ? r.sector : 0, rc == 0,
	                 rc == 0 ? d : office_field(q, "secteur"));
	done(q, id, rc, "Droit", "Droit enregistré.", &changed, &why, err);
}

static void act_withdraw(struct office_req *q, int64_t id)
{
	struct server_sector s;
	struct server_why why = {""};
	struct server_sector_set changed = {0};
	int rc;
	if (server_sector_find(&q->o->st, office_field(q, "secteur"), &s) != 0 ||
	    !office_account_has_sector(&q->s.acct, s.number)) {
		office_audit_req(q, "droit retiré", id, 0, 0, "service hors de vos services");
		return render_pass(q, id, 403, NULL,
		                   "Retrait impossible : ce service n'est pas le vôtre.", "");
	}
	rc = server_rights_withdraw(&q->desk, id, s.number, &changed, &why);
	office_audit_req(q, "droit retiré", id, s.number, rc == 0, "");
	done(q, id, rc, "Retrait du droit", "Droit retiré.", &changed, &why, NULL);
}

static void act_replace(struct office_req *q, int64_t id)
{
	const char *motif = office_field(q, "motif");
	struct office_medium m;
	struct server_issued out;
	struct server_why why = {""};
	char err[512] = "";
	int rc = strlen(motif) >= SERVER_TEXT_MAX
	                 ? server_why_set(&why, SERVER_ERR_INVALID, "a reason of at most 255 bytes")
	                 : office_medium_from_form(q, 0, &m, err, sizeof(err));
	if (rc == 0)
		rc = server_pass_replace(&q->desk, id, motif, &m.m, &out, &why);
	else if (m.detail[0])
		snprintf(why.text, sizeof(why.text), "%s", m.detail);
	office_medium_end(q, &m, rc == 0);
	char d[96] = "";
	if (rc == 0)
		snprintf(d, sizeof(d), "remplacé par le pass %" PRId64 " (%s)", out.pass.id,
		         out.pass.medium);
	office_audit_req(q, "remplacement", id, 0, rc == 0, d);
	if (rc != 0)
		return done(q, id, rc, "Remplacement", NULL, NULL, &why, err);
	char pub[512] = "", msg[768];
	office_publish_changed(q, &out.changed, pub, sizeof(pub));
	snprintf(msg, sizeof(msg),
	         "Pass n° %" PRId64 " remplacé par ce pass, qui garde ses droits. %s", id, pub);
	render_pass(q, out.pass.id, 200, msg, NULL, NULL);
}

void office_page_pass(struct office_req *q, int64_t id, const char *action)
{
	if (!*action)
		return render_pass(q, id, 200, NULL, NULL, NULL);
	static const struct {
		const char *name, *audit;
		void (*fn)(struct office_req *q, int64_t id);
	} acts[] = {
	        {"revoquer", "révocation", act_revoke},
	        {"droit", "droit accordé", act_grant},
	        {"retirer", "droit retiré", act_withdraw},
	        {"remplacer", "remplacement", act_replace},
	};
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
		if (strcmp(action, acts[i].name) == 0) {
			if (pass_in_scope(q, id, acts[i].audit) == 0)
				acts[i].fn(q, id);
			return;
		}
	office_page_refuse(q, 404, "Page introuvable",
	                   "Cette adresse ne correspond à aucune page du guichet.", "");
}

/* --- search ----------------------------------------------------------------------------- */

struct found {
	int64_t ids[SCAN_MAX];
	size_t n;
};

static int collect(void *arg, const struct server_pass *p)
{
	struct found *f = arg;
	f->ids[f->n++] = p->id;
	return f->n == SCAN_MAX;
}

/* The household whose name is the text typed, case ignored. */
struct household_named {
	const char *text;
	int64_t id;
	char name[SERVER_NAME_MAX];
};

static int household_named_cb(void *arg, const struct server_household *h)
{
	struct household_named *hn = arg;
	if (strcasecmp(h->name, hn->text) == 0) {
		hn->id = h->id;
		snprintf(hn->name, sizeof(hn->name), "%s", h->name);
	}
	return hn->id != 0;
}

void office_page_search(struct office_req *q)
{
	const char *text = office_field(q, "q");
	office_page_begin(q, "Rechercher un pass");
	fputs("<form method=\"get\" action=\"/\" role=\"search\"><p><label for=\"q\">Nom, numéro "
	      "de pass ou foyer</label><input id=\"q\" name=\"q\" autofocus value=\"",
	      q->page);
	office_html(q, text);
	fputs("\"> <button id=\"chercher\">Chercher</button></p></form><div id=\"resultats\">",
	      q->page);
	if (!*text) {
		fputs("</div>", q->page);
		return office_page_end(q, 200);
	}
	struct found *f = calloc(1, sizeof(*f));
	if (!f) {
		office_msg_err(q, "Mémoire insuffisante pour chercher.", "");
		fputs("</div>", q->page);
		return office_page_end(q, 500);
	}
	char *end;
	long long num = strtoll(text, &end, 10);
	if (!*end && num > 0) {
		f->ids[f->n++] = num;
	} else {
		/* the holder's name or the household's, case and accents ignored (the store
		 * compares folded names: docs/admin.md, "Searching by name") */
		struct server_pass_filter flt = {text, 0, -1, -1};
		struct household_named hn = {text, 0, ""};
		struct server_why why;
		server_household_search(&q->desk, text, 0, household_named_cb, &hn, &why);
		/* only a household the agent may see stands for the text: another sector's would
		 * hide the agent's own holders of that name, and tell that it exists */
		if (hn.id && office_household_visible(q, hn.name)) {
			flt.holder = NULL;
			flt.household = hn.id;
		}
		q->o->st.ops->pass_each(q->o->st.ctx, &flt, collect, f);
	}
	size_t shown = 0;
	fputs("<table><thead><tr><th>Pass</th><th>Titulaire</th><th>État</th><th>Support</th>"
	      "</tr></thead><tbody>",
	      q->page);
	for (size_t i = 0; i < f->n && shown < SEARCH_MAX; i++) {
		struct server_pass p;
		struct server_right *r = NULL;
		size_t n = 0;
		if (q->o->st.ops->pass_get(q->o->st.ctx, f->ids[i], &p) != 0 ||
		    q->o->st.ops->rights_of_pass(q->o->st.ctx, p.id, &r, &n) != 0) {
			free(r);
			continue;
		}
		int vis = pass_visible(q, r, n);
		free(r);
		if (!vis)
			continue;
		fprintf(q->page, "<tr><td><a href=\"/pass/%" PRId64 "\">%" PRId64 "</a></td><td>",
		        p.id, p.id);
		office_html(q, p.holder[0] ? p.holder : "anonyme");
		fprintf(q->page, "</td><td>%s</td><td>%s</td></tr>", office_state_fr(p.state),
		        medium_fr(p.medium));
		shown++;
	}
	fputs("</tbody></table>", q->page);
	if (!shown)
		fputs("<p>Aucun pass trouvé dans vos services.</p>", q->page);
	else if (shown == SEARCH_MAX)
		fputs("<p>Les 50 premiers seulement : précisez la recherche.</p>", q->page);
	if (*end || num <= 0) {
		fputs("<h2>Foyers</h2>", q->page);
		office_households_found(q, text);
	}
	fputs("</div>", q->page);
	free(f);
	office_page_end(q, 200);
}

/* --- a new pass ------------------------------------------------------------------------- */

static void issue_form(struct office_req *q, int status, const char *err, const char *detail)
{
	office_page_begin(q, "Nouveau pass");
	if (err)
		office_msg_err(q, err, detail);
	fputs("<form method=\"post\" action=\"/pass/nouveau\">", q->page);
	office_csrf_input(q);
	fputs("<p><label for=\"titulaire\">Titulaire</label><input id=\"titulaire\" "
	      "name=\"titulaire\" maxlength=\"200\" autofocus> <label><input type=\"checkbox\" "
	      "name=\"anonyme\" value=\"1\"> pass anonyme</label></p>"
	      "<p><label for=\"foyer_nom\">Foyer (facultatif)</label><input id=\"foyer_nom\" "
	      "name=\"foyer_nom\" maxlength=\"63\"></p><fieldset><legend>Premier droit</legend>",
	      q->page);
	right_fields(q);
	fputs("</fieldset>", q->page);
	office_medium_fields(q, 0);
	fputs("<p><button id=\"emettre\">Créer le pass</button></p></form>", q->page);
	office_page_end(q, status);
}

void office_page_issue(struct office_req *q)
{
	if (!q->post)
		return issue_form(q, 200, NULL, NULL);
	const char *holder = office_field(q, "titulaire"), *hh = office_field(q, "foyer_nom");
	int anonymous = *office_field(q, "anonyme") != 0;
	struct server_right r;
	struct server_why why = {""};
	char err[512] = "";
	if (!anonymous && (!*holder || strlen(holder) >= SERVER_TEXT_MAX))
		return issue_form(q, 400,
		                  "Pass non créé : donnez le nom du titulaire (au plus 255 "
		                  "caractères) ou cochez « pass anonyme ».",
		                  NULL);
	int rc = form_right(q, &r, err, sizeof(err), &why);
	if (rc) {
		office_audit_req(q, "émission", 0, 0, 0, err);
		return issue_form(q, 400, err, why.text);
	}
	/* a household another sector's agents made is not this agent's to join, nor to learn
	 * of: the same sentence whether it exists or not (as /foyer/N answers) */
	if (*hh && !office_household_visible(q, hh)) {
		snprintf(err, sizeof(err), "Pass non créé : aucun foyer « %s » dans vos services.",
		         hh);
		office_audit_req(q, "émission", 0, r.sector, 0,
		                 "foyer hors de vos services ou inexistant");
		return issue_form(q, 404, err, NULL);
	}
	struct server_pass_order o;
	memset(&o, 0, sizeof(o));
	o.holder = anonymous ? NULL : holder;
	o.household = *hh ? hh : NULL;
	o.rights = &r;
	o.n_rights = 1;
	struct server_issued out;
	struct office_medium m;
	rc = office_medium_from_form(q, r.sector, &m, err, sizeof(err));
	if (rc == 0) {
		o.medium = m.m;
		rc = server_pass_issue(&q->desk, &o, &out, &why);
		if (rc)
			office_refusal_fr(err, sizeof(err), "Émission du pass", rc);
	} else if (m.detail[0]) {
		snprintf(why.text, sizeof(why.text), "%s", m.detail);
	}
	office_medium_end(q, &m, rc == 0);
	char d[64];
	snprintf(d, sizeof(d), "support : %s",
	         rc == 0 ? out.pass.medium : office_field(q, "support"));
	office_audit_req(q, "émission", rc == 0 ? out.pass.id : 0, r.sector, rc == 0, d);
	if (rc)
		return issue_form(q, rc == SERVER_ERR_NOT_FOUND ? 404 : 400, err, why.text);
	char pub[512] = "", msg[768];
	office_publish_changed(q, &out.changed, pub, sizeof(pub));
	snprintf(msg, sizeof(msg), "Pass n° %" PRId64 " créé. %s", out.pass.id, pub);
	render_pass(q, out.pass.id, 200, msg, NULL, NULL);
}
