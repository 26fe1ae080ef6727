/*
 * page_manager.c — what a manager reads: the gates and their health (as they last reported
 * it over the sync link), each sector's published list version, usage statistics (the
 * anonymous stream: no identifier), and, for an administrator, the audit log and its
 * export. An agent sees the gates and statistics of their own sectors only.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "citypass.pb-c.h"
#include "office/chart.h"
#include "office/words.h"
#include "office_internal.h"
#include "server/reports.h"

#define STATS_DAYS 7

static void time_text(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !localtime_r(&tt, &tm) || strftime(out, cap, "%d/%m/%Y %H:%M", &tm) == 0)
		snprintf(out, cap, "—");
}

static const char *health_fr(int s)
{
	switch (s) {
	case SERVER_DEVICE_OK:
		return "en marche";
	case SERVER_DEVICE_DOWN:
		return "en panne";
	case SERVER_DEVICE_NOT_CONFIGURED:
		return "absent";
	}
	return "inconnu";
}

void office_page_gates(struct office_req *q)
{
	struct server_device_status *d = NULL;
	size_t n = 0;
	office_page_begin(q, "Portiques et listes");
	fputs("<h2>Listes publiées</h2><table id=\"listes\"><thead><tr><th>Service</th>"
	      "<th>Version</th><th>Publiée le</th><th>Expire le</th></tr></thead><tbody>",
	      q->page);
	struct server_sector *sec = NULL;
	size_t ns = 0;
	if (q->o->st.ops->sector_list(q->o->st.ctx, &sec, &ns) == 0) {
		for (size_t i = 0; i < ns; i++) {
			if (!office_account_has_sector(&q->s.acct, sec[i].number))
				continue;
			struct server_list_version v;
			char a[32] = "—", b[32] = "—";
			uint64_t ver = 0;
			memset(&v, 0, sizeof(v));
			if (q->o->st.ops->list_version_get(q->o->st.ctx, sec[i].number, 0, &v) ==
			    0) {
				ver = v.version;
				time_text(v.issued_at, a, sizeof(a));
				time_text(v.expires_at, b, sizeof(b));
				server_list_version_free(&v);
			}
			fputs("<tr><td>", q->page);
			office_html(q, sec[i].name);
			fprintf(q->page, "</td><td>%" PRIu64 "</td><td>%s</td><td>%s</td></tr>",
			        ver, a, b);
		}
		free(sec);
	}
	fputs("</tbody></table><h2>Portiques</h2><table id=\"portiques\"><thead><tr>"
	      "<th>Portique</th><th>Site</th><th>Lecteur</th><th>Scanner QR</th><th>Liste</th>"
	      "<th>Événements en attente</th><th>Décalage d'horloge</th><th>Dernier rapport</th>"
	      "</tr></thead><tbody>",
	      q->page);
	if (q->o->st.ops->device_status_list(q->o->st.ctx, &d, &n) != 0) {
		fputs("</tbody></table>", q->page);
		office_msg_err(q, "Impossible de lire l'état des portiques.", "");
		return office_page_end(q, 500);
	}
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		if (!office_account_has_sector(&q->s.acct, d[i].dev.sector))
			continue;
		char at[32] = "jamais";
		fputs("<tr><td>", q->page);
		office_html(q, d[i].dev.id);
		if (d[i].dev.revoked)
			fputs(" (révoqué)", q->page);
		fputs("</td><td>", q->page);
		office_html(q, d[i].site_name);
		if (d[i].has_health) {
			const struct server_device_health *h = &d[i].health;
			time_text(h->reported_at, at, sizeof(at));
			fprintf(q->page,
			        "</td><td>%s</td><td>%s</td><td>%" PRIu64 "</td><td>%" PRIu64
			        "</td><td>%" PRId64 " s</td><td>%s</td></tr>",
			        health_fr(h->reader), health_fr(h->scanner), h->list_version,
			        h->journal_backlog, h->clock_skew_s, at);
		} else {
			fputs("</td><td colspan=\"5\">aucun rapport reçu</td><td>jamais</td></tr>",
			      q->page);
		}
		shown++;
	}
	free(d);
	if (!shown)
		fputs("<tr><td colspan=\"8\">Aucun portique dans vos services.</td></tr>", q->page);
	fputs("</tbody></table>", q->page);
	office_page_end(q, 200);
}

/* --- statistics ------------------------------------------------------------------------- */

/* The sums of the last STATS_DAYS days by site x service x outcome x hour, only the
 * agent's sectors kept: 0 and *out (malloc'd), or an error. */
static int stats_of_scope(struct office_req *q, struct server_stat_sum **out, size_t *n)
{
	int64_t to = q->desk.now + 900, from = q->desk.now - STATS_DAYS * 86400;
	int rc = server_stats_sum(&q->o->st, from, to,
	                          SERVER_STAT_SITE | SERVER_STAT_SERVICE | SERVER_STAT_OUTCOME |
	                                  SERVER_STAT_HOUR,
	                          out, n);
	if (rc)
		return rc;
	size_t k = 0;
	for (size_t i = 0; i < *n; i++)
		if ((*out)[i].sector <= UINT16_MAX &&
		    office_account_has_sector(&q->s.acct, (uint16_t)(*out)[i].sector))
			(*out)[k++] = (*out)[i];
	*n = k;
	return 0;
}

struct site_sum {
	uint32_t site, sector;
	uint64_t granted, refused;
};

void office_page_stats(struct office_req *q)
{
	struct server_stat_sum *v = NULL;
	size_t n = 0;
	int rc = stats_of_scope(q, &v, &n);
	office_page_begin(q, "Statistiques des 7 derniers jours");
	if (rc) {
		office_msg_err(q, "Impossible de lire les statistiques.", office_error_fr(rc));
		return office_page_end(q, 500);
	}
	struct site_sum sites[128];
	size_t ns = 0;
	uint64_t hours[24][2], outcome[2] = {0, 0};
	memset(hours, 0, sizeof(hours));
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < ns && (sites[k].site != v[i].site || sites[k].sector != v[i].sector))
			k++;
		if (k == ns && ns < sizeof(sites) / sizeof(sites[0])) {
			memset(&sites[ns], 0, sizeof(sites[ns]));
			sites[ns].site = v[i].site;
			sites[ns++].sector = v[i].sector;
		}
		time_t t = (time_t)v[i].hour;
		struct tm tm;
		int h = localtime_r(&t, &tm) ? tm.tm_hour : 0;
		if (k < ns) {
			sites[k].granted += v[i].granted;
			sites[k].refused += v[i].refused;
		}
		hours[h][0] += v[i].granted;
		hours[h][1] += v[i].refused;
		outcome[0] += v[i].granted;
		outcome[1] += v[i].refused;
	}
	free(v);
	fprintf(q->page,
	        "<p>Passages accordés et refusés, sans aucun identifiant (flux statistique "
	        "anonyme) : %" PRIu64 " accordés, %" PRIu64 " refusés. <a href=\"/opendata.csv\" "
	        "id=\"export-opendata\">Export open data (CSV, 7 jours, cases sous 10 "
	        "masquées)</a> · <a href=\"/quotas\">Quotas dépassés</a></p>",
	        outcome[0], outcome[1]);
	/* the charts (office/chart.h): by site, service, hour and outcome */
	struct office_chart_row rows[128];
	char labels[128][SERVER_NAME_MAX * 2 + 4];
	size_t nr = 0;
	for (size_t i = 0; i < ns && nr < 128; i++, nr++) {
		struct server_site site;
		char sec[SERVER_NAME_MAX];
		server_sector_name(&q->o->st, (uint16_t)sites[i].sector, sec, sizeof(sec));
		if (q->o->st.ops->site_get(q->o->st.ctx, sites[i].site, &site) == 0)
			snprintf(labels[nr], sizeof(labels[nr]), "%s", site.name);
		else
			snprintf(labels[nr], sizeof(labels[nr]), "site %u", sites[i].site);
		rows[nr].label = labels[nr];
		rows[nr].value = sites[i].granted + sites[i].refused;
	}
	struct office_chart ch = {office_chart_title(OFFICE_CHART_BY_SITE), "passages", rows, nr};
	fputs("<section id=\"graphe-sites\">", q->page);
	office_chart_svg(q->page, &ch);
	fputs("</section>", q->page);
	/* by service: the sites' sums folded by sector */
	nr = 0;
	for (size_t i = 0; i < ns; i++) {
		char sec[SERVER_NAME_MAX];
		server_sector_name(&q->o->st, (uint16_t)sites[i].sector, sec, sizeof(sec));
		size_t k = 0;
		while (k < nr && strcmp(labels[k], sec) != 0)
			k++;
		if (k == nr) {
			snprintf(labels[nr], sizeof(labels[nr]), "%s", sec);
			rows[nr].label = labels[nr];
			rows[nr++].value = 0;
		}
		rows[k].value += sites[i].granted + sites[i].refused;
	}
	ch.title = office_chart_title(OFFICE_CHART_BY_SERVICE);
	ch.n_rows = nr;
	fputs("<section id=\"graphe-services\">", q->page);
	office_chart_svg(q->page, &ch);
	fputs("</section>", q->page);
	/* by hour of the day, and by outcome */
	nr = 0;
	for (int h = 0; h < 24; h++) {
		office_chart_hour_label(h, labels[nr]);
		rows[nr].label = labels[nr];
		rows[nr++].value = hours[h][0] + hours[h][1];
	}
	ch.title = office_chart_title(OFFICE_CHART_BY_HOUR);
	ch.n_rows = nr;
	fputs("<section id=\"graphe-heures\">", q->page);
	office_chart_svg(q->page, &ch);
	fputs("</section>", q->page);
	struct office_chart_row out_rows[2] = {{"accordés", outcome[0]}, {"refusés", outcome[1]}};
	struct office_chart oc = {office_chart_title(OFFICE_CHART_BY_OUTCOME), "passages", out_rows,
	                          2};
	fputs("<section id=\"graphe-resultats\">", q->page);
	office_chart_svg(q->page, &oc);
	fputs("</section>", q->page);
	/* the same figures as tables, for a screen reader, a printout or a copy */
	fputs("<h2>Par site</h2><table id=\"stats-sites\"><thead><tr><th>Site</th>"
	      "<th>Service</th><th>Accordés</th><th>Refusés</th></tr></thead><tbody>",
	      q->page);
	for (size_t i = 0; i < ns; i++) {
		struct server_site site;
		char sec[SERVER_NAME_MAX];
		server_sector_name(&q->o->st, (uint16_t)sites[i].sector, sec, sizeof(sec));
		fputs("<tr><td>", q->page);
		if (q->o->st.ops->site_get(q->o->st.ctx, sites[i].site, &site) == 0)
			office_html(q, site.name);
		else
			fprintf(q->page, "site %u", sites[i].site);
		fputs("</td><td>", q->page);
		office_html(q, sec);
		fprintf(q->page, "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>",
		        sites[i].granted, sites[i].refused);
	}
	if (!ns)
		fputs("<tr><td colspan=\"4\">Aucun passage enregistré.</td></tr>", q->page);
	fputs("</tbody></table><h2>Par heure de la journée</h2><table id=\"stats-heures\"><thead>"
	      "<tr><th>Heure</th><th>Accordés</th><th>Refusés</th></tr></thead><tbody>",
	      q->page);
	for (int h = 0; h < 24; h++)
		if (hours[h][0] || hours[h][1])
			fprintf(q->page,
			        "<tr><td>%02d h</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>",
			        h, hours[h][0], hours[h][1]);
	fputs("</tbody></table>", q->page);
	office_page_end(q, 200);
}

static void send_csv(struct office_req *q, const char *filename)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(q->r);
	char disp[128];
	snprintf(disp, sizeof(disp), "attachment; filename=\"%s\"", filename);
	evhttp_add_header(h, "Content-Type", "text/csv; charset=utf-8");
	evhttp_add_header(h, "Content-Disposition", disp);
	struct evbuffer *b = evbuffer_new();
	fflush(q->page);
	if (b)
		evbuffer_add(b, q->page_buf, q->page_len);
	evhttp_send_reply(q->r, 200, "OK", b);
	if (b)
		evbuffer_free(b);
	q->begun = 1;
}

/* The open-data export (server/reports.h): anonymous, small counts suppressed, the same
 * file `citypass-admin opendata export` writes, every sector (it is published as is). */
void office_page_opendata(struct office_req *q)
{
	int64_t to = q->desk.now + 900, from = q->desk.now - STATS_DAYS * 86400;
	int rc = server_opendata_write(&q->o->st, from, to, q->page);
	if (rc) /* nothing written yet: the sums are read before the first line */
		return office_page_refuse(q, 500, "Open data",
		                          "Impossible de lire les statistiques.",
		                          office_error_fr(rc));
	office_audit_req(q, "export open data", 0, 0, 1, "");
	send_csv(q, "opendata.csv");
}

struct quota_ctx {
	struct office_req *q;
	size_t n;
};

static int quota_row(void *arg, const struct server_quota_line *l)
{
	struct quota_ctx *c = arg;
	struct office_req *q = c->q;
	if (!office_account_has_sector(&q->s.acct, l->sector.number))
		return 0;
	fputs("<tr><td>", q->page);
	office_html(q, l->sector.name);
	fputs("</td><td>", q->page);
	if (l->pass)
		fprintf(q->page, "<a href=\"/pass/%" PRId64 "\">%" PRId64 "</a>", l->pass, l->pass);
	fputs("</td><td>", q->page);
	office_html(q, l->holder[0] ? l->holder : "—");
	fprintf(q->page, "</td><td>%s</td><td>%u</td><td>%u</td><td>%u</td></tr>",
	        l->household ? "foyer" : "pass", l->used, l->limit, l->used - l->limit);
	c->n++;
	return 0;
}

void office_page_quotas(struct office_req *q)
{
	struct quota_ctx c = {q, 0};
	office_page_begin(q, "Quotas dépassés");
	fputs("<p>Les pass (ou les foyers, pour un quota partagé) dont les passages comptés sur la "
	      "période en cours dépassent le quota : un portique hors ligne compte localement "
	      "jusqu'à sa synchronisation, le dépassement est borné et rapporté ici.</p>"
	      "<table id=\"quotas\"><thead><tr><th>Service</th><th>Pass</th><th>Titulaire</th>"
	      "<th>Quota du</th><th>Passages</th><th>Quota</th><th>Dépassement</th></tr></thead>"
	      "<tbody>",
	      q->page);
	int rc = server_quota_overshoot(&q->o->st, q->desk.now, NULL, quota_row, &c);
	if (!c.n)
		fputs("<tr><td colspan=\"7\">Aucun quota dépassé.</td></tr>", q->page);
	fputs("</tbody></table>", q->page);
	if (rc)
		office_msg_err(q, "Impossible de lire les droits.", office_error_fr(rc));
	office_page_end(q, rc ? 500 : 200);
}

/* --- the audit log ---------------------------------------------------------------------- */

/* A CSV field (RFC 4180), with a leading ' before = + - @ so that a spreadsheet opening the
 * export never runs a typed text as a formula. */
static void csv_field(FILE *f, const char *s)
{
	fputc('"', f);
	if (*s == '=' || *s == '+' || *s == '-' || *s == '@')
		fputc('\'', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static int audit_csv_row(void *arg, const struct office_audit_entry *e)
{
	struct office_req *q = arg;
	char at[32];
	time_t t = (time_t)e->at;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(at, sizeof(at), "?");
	fprintf(q->page, "%" PRId64 ",%s,", e->id, at);
	csv_field(q->page, e->login);
	fputc(',', q->page);
	csv_field(q->page, e->action);
	fputc(',', q->page);
	if (e->pass)
		fprintf(q->page, "%" PRId64, e->pass);
	fputc(',', q->page);
	csv_field(q->page, e->sector);
	fprintf(q->page, ",%s,", e->outcome);
	csv_field(q->page, e->detail);
	fputs("\r\n", q->page);
	return 0;
}

static int audit_html_row(void *arg, const struct office_audit_entry *e)
{
	struct office_req *q = arg;
	char at[32];
	time_text(e->at, at, sizeof(at));
	fprintf(q->page, "<tr><td>%s</td><td>", at);
	office_html(q, e->login);
	fputs("</td><td>", q->page);
	office_html(q, e->action);
	fputs("</td><td>", q->page);
	if (e->pass)
		fprintf(q->page, "<a href=\"/pass/%" PRId64 "\">%" PRId64 "</a>", e->pass, e->pass);
	fputs("</td><td>", q->page);
	office_html(q, e->sector);
	fputs("</td><td>", q->page);
	office_html(q, e->outcome);
	fputs("</td><td>", q->page);
	office_html(q, e->detail);
	fputs("</td></tr>", q->page);
	return 0;
}

void office_page_audit(struct office_req *q, int csv)
{
	if (csv) {
		fputs("id,when_utc,login,action,pass,sector,outcome,detail\r\n", q->page);
		office_audit_each(q->o->db, 0, audit_csv_row, q);
		office_audit_req(q, "export du journal d'audit", 0, 0, 1, "");
		return send_csv(q, "audit.csv");
	}
	office_page_begin(q, "Journal d'audit");
	fputs("<p>Chaque action des agents, la plus récente en premier (les 500 dernières). "
	      "Le journal ne s'efface ni ne se modifie. <a href=\"/audit.csv\" "
	      "id=\"export-audit\">Exporter tout le journal (CSV)</a></p>"
	      "<table id=\"audit\"><thead><tr><th>Quand</th><th>Qui</th><th>Action</th>"
	      "<th>Pass</th><th>Service</th><th>Résultat</th><th>Détail</th></tr></thead><tbody>",
	      q->page);
	office_audit_each(q->o->db, 500, audit_html_row, q);
	fputs("</tbody></table>", q->page);
	office_page_end(q, 200);
}
