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
#include "office_internal.h"

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

struct stat_cell {
	uint32_t site, sector;
	uint64_t granted, refused;
};

struct stat_sum {
	struct office_req *q;
	struct stat_cell v[256];
	size_t n;
	uint64_t hours[24][2];
};

static int stat_add(void *arg, const struct server_stat_row *r)
{
	struct stat_sum *s = arg;
	if (r->sector > UINT16_MAX ||
	    !office_account_has_sector(&s->q->s.acct, (uint16_t)r->sector))
		return 0;
	int granted = r->outcome == CITYPASS__OUTCOME__GRANTED;
	time_t t = (time_t)r->quarter_hour;
	struct tm tm;
	if (localtime_r(&t, &tm))
		s->hours[tm.tm_hour][granted ? 0 : 1] += r->count;
	size_t i = 0;
	for (; i < s->n; i++)
		if (s->v[i].site == r->site && s->v[i].sector == r->sector)
			break;
	if (i == s->n) {
		if (s->n == sizeof(s->v) / sizeof(s->v[0]))
			return 0;
		s->v[s->n].site = r->site;
		s->v[s->n].sector = r->sector;
		s->n++;
	}
	if (granted)
		s->v[i].granted += r->count;
	else
		s->v[i].refused += r->count;
	return 0;
}

void office_page_stats(struct office_req *q)
{
	struct stat_sum *s = calloc(1, sizeof(*s));
	if (!s)
		return office_page_refuse(q, 500, "Statistiques", "Mémoire insuffisante.", "");
	s->q = q;
	int64_t to = q->desk.now, from = to - STATS_DAYS * 86400;
	int rc = q->o->st.ops->stats(q->o->st.ctx, from, to + 900, 900, stat_add, s);
	office_page_begin(q, "Statistiques des 7 derniers jours");
	if (rc) {
		office_msg_err(q, "Impossible de lire les statistiques.", "");
		free(s);
		return office_page_end(q, 500);
	}
	fputs("<p>Passages accordés et refusés, sans aucun identifiant (flux statistique "
	      "anonyme).</p><h2>Par site</h2><table id=\"stats-sites\"><thead><tr><th>Site</th>"
	      "<th>Service</th><th>Accordés</th><th>Refusés</th></tr></thead><tbody>",
	      q->page);
	for (size_t i = 0; i < s->n; i++) {
		struct server_site site;
		char sec[SERVER_NAME_MAX];
		server_sector_name(&q->o->st, (uint16_t)s->v[i].sector, sec, sizeof(sec));
		fputs("<tr><td>", q->page);
		if (q->o->st.ops->site_get(q->o->st.ctx, s->v[i].site, &site) == 0)
			office_html(q, site.name);
		else
			fprintf(q->page, "site %u", s->v[i].site);
		fputs("</td><td>", q->page);
		office_html(q, sec);
		fprintf(q->page, "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>",
		        s->v[i].granted, s->v[i].refused);
	}
	if (!s->n)
		fputs("<tr><td colspan=\"4\">Aucun passage enregistré.</td></tr>", q->page);
	fputs("</tbody></table><h2>Par heure de la journée</h2><table id=\"stats-heures\"><thead>"
	      "<tr><th>Heure</th><th>Accordés</th><th>Refusés</th></tr></thead><tbody>",
	      q->page);
	for (int h = 0; h < 24; h++)
		if (s->hours[h][0] || s->hours[h][1])
			fprintf(q->page,
			        "<tr><td>%02d h</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td></tr>",
			        h, s->hours[h][0], s->hours[h][1]);
	fputs("</tbody></table>", q->page);
	free(s);
	office_page_end(q, 200);
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
		struct evkeyvalq *h = evhttp_request_get_output_headers(q->r);
		evhttp_add_header(h, "Content-Type", "text/csv; charset=utf-8");
		evhttp_add_header(h, "Content-Disposition", "attachment; filename=\"audit.csv\"");
		struct evbuffer *b = evbuffer_new();
		fflush(q->page);
		if (b)
			evbuffer_add(b, q->page_buf, q->page_len);
		evhttp_send_reply(q->r, 200, "OK", b);
		if (b)
			evbuffer_free(b);
		q->begun = 1;
		return;
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
