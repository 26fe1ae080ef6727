/*
 * http.c — citypass-office's HTTPS server: TLS by OpenSSL under libevent's evhttp, the
 * limits on what a client may send, sessions and CSRF checked before any page runs, the
 * login and logout, the routes, and the page frame. docs/office.md.
 *
 * Every request goes through dispatch(): a route the agent's session does not open is
 * refused here, before the page's code; every POST (but the login's, which has its own
 * double-submit token) must carry its session's CSRF token.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>

#include "office/words.h"
#include "office_internal.h"
#include "server/publish.h"
#include "service/service.h"

#define SESSION_COOKIE "citypass_session"
#define LOGIN_COOKIE   "citypass_login" /* the login form's double-submit CSRF token */
#define MAX_HEADERS    8192
#define MAX_BODY       OFFICE_FORM_MAX

int64_t office_now(void)
{
	const char *s = getenv("CITYPASS_NOW");
	if (s && *s) {
		char *end;
		long long v = strtoll(s, &end, 10);
		if (!*end && v > 0)
			return v;
	}
	return (int64_t)time(NULL);
}

/* --- the page frame ----------------------------------------------------------------------- */

void office_html(struct office_req *q, const char *text)
{
	server_html_text(q->page, text ? text : "");
}

void office_csrf_input(struct office_req *q)
{
	fprintf(q->page, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", q->s.csrf);
}

static void nav_link(struct office_req *q, const char *href, const char *label, int key)
{
	fprintf(q->page, "<li><a href=\"%s\" accesskey=\"%c\"%s>%s</a></li>", href, key,
	        strcmp(q->path, href) == 0 ? " aria-current=\"page\"" : "", label);
}

void office_page_begin(struct office_req *q, const char *title)
{
	q->begun = 1;
	fputs("<!DOCTYPE html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">"
	      "<meta name=\"viewport\" content=\"width=device-width\">"
	      "<link rel=\"stylesheet\" href=\"/style.css\"><title>",
	      q->page);
	office_html(q, title);
	fputs(" — citypass</title></head><body><header><p class=\"marque\">citypass · guichet</p>",
	      q->page);
	if (q->logged) {
		fputs("<nav><ul>", q->page);
		nav_link(q, "/", "Rechercher", 'r');
		nav_link(q, "/pass/nouveau", "Nouveau pass", 'n');
		nav_link(q, "/carte", "Carte au guichet", 'c');
		nav_link(q, "/foyers", "Foyers", 'f');
		nav_link(q, "/portiques", "Portiques", 'p');
		nav_link(q, "/statistiques", "Statistiques", 's');
		if (q->s.acct.role == OFFICE_ROLE_ADMIN) {
			nav_link(q, "/audit", "Journal d'audit", 'j');
			nav_link(q, "/comptes", "Comptes", 'o');
		}
		fputs("</ul></nav><form method=\"post\" action=\"/deconnexion\" class=\"qui\">",
		      q->page);
		office_csrf_input(q);
		fputs("<span>", q->page);
		office_html(q, q->s.acct.login);
		fprintf(q->page,
		        " (%s)</span> <button id=\"deconnexion\">Se déconnecter</button></form>",
		        q->s.acct.role == OFFICE_ROLE_ADMIN ? "administrateur" : "agent");
	}
	fputs("</header><main id=\"contenu\"><h1>", q->page);
	office_html(q, title);
	fputs("</h1>", q->page);
}

static void send_page(struct office_req *q, int status, const char *reason)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(q->r);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	struct evbuffer *b = evbuffer_new();
	fflush(q->page);
	if (b)
		evbuffer_add(b, q->page_buf, q->page_len);
	evhttp_send_reply(q->r, status, reason, b);
	if (b)
		evbuffer_free(b);
}

static const char *reason_of(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	}
	return status >= 500 ? "Internal Server Error" : "Error";
}

void office_page_end(struct office_req *q, int status)
{
	fputs("</main><footer><p>citypass — guichet des agents. Raccourcis : Alt+Maj+R "
	      "rechercher, Alt+Maj+N nouveau pass.</p></footer></body></html>\n",
	      q->page);
	send_page(q, status, reason_of(status));
}

void office_msg_ok(struct office_req *q, const char *sentence)
{
	fputs("<p class=\"ok\" role=\"status\">", q->page);
	office_html(q, sentence);
	fputs("</p>", q->page);
}

void office_msg_err(struct office_req *q, const char *sentence, const char *detail)
{
	fputs("<div class=\"erreur\" role=\"alert\"><p>", q->page);
	office_html(q, sentence);
	fputs("</p>", q->page);
	if (detail && *detail) {
		fputs("<details><summary>Détail technique</summary><p>", q->page);
		office_html(q, detail);
		fputs("</p></details>", q->page);
	}
	fputs("</div>", q->page);
}

void office_page_refuse(struct office_req *q, int status, const char *title, const char *sentence,
                        const char *detail)
{
	office_page_begin(q, title);
	office_msg_err(q, sentence, detail);
	fputs("<p><a href=\"/\">Retour à l'accueil</a></p>", q->page);
	office_page_end(q, status);
}

void office_redirect(struct office_req *q, const char *to)
{
	evhttp_add_header(evhttp_request_get_output_headers(q->r), "Location", to);
	evhttp_send_reply(q->r, 303, "See Other", NULL);
	q->begun = 1;
}

const char *office_field(struct office_req *q, const char *name)
{
	const char *v = office_form_get(q->post ? &q->form : &q->query, name);
	return v ? v : "";
}

static int64_t meta_int(struct server_store *st, const char *key, int64_t def)
{
	char v[64];
	if (st->ops->meta_get(st->ctx, key, v, sizeof(v)) != 0)
		return def;
	char *end;
	long long n = strtoll(v, &end, 10);
	return *end || n <= 0 ? def : n;
}

void office_publish_changed(struct office_req *q, const struct server_sector_set *changed,
                            char *msg, size_t cap)
{
	msg[0] = 0;
	struct server_publish_opts po;
	memset(&po, 0, sizeof(po));
	po.now = q->desk.now;
	po.validity_s = meta_int(&q->o->st, "list_validity", SERVER_LIST_VALIDITY_DEFAULT);
	po.keep = (unsigned)meta_int(&q->o->st, "keep", SERVER_KEEP_DEFAULT);
	for (size_t i = 0; i < changed->n; i++) {
		int rc =
		        server_publish_sector(&q->o->st, q->o->cfg->data, changed->v[i], &po, NULL);
		if (rc) {
			char sec[SERVER_NAME_MAX];
			server_sector_name(&q->o->st, changed->v[i], sec, sizeof(sec));
			snprintf(msg, cap,
			         "Le changement est enregistré, mais la liste du service %s n'a "
			         "pas pu "
			         "être publiée (%s) : elle le sera à la prochaine publication.",
			         sec, office_error_fr(rc));
		}
	}
}

void office_audit_req(struct office_req *q, const char *action, int64_t pass, uint16_t sector,
                      int done, const char *detail)
{
	char sec[SERVER_NAME_MAX] = "";
	if (sector)
		server_sector_name(&q->o->st, sector, sec, sizeof(sec));
	if (office_audit(q->o->db, q->desk.now, q->logged ? q->s.acct.login : "", action, pass, sec,
	                 done, detail) != 0)
		fprintf(stderr,
		        "citypass-office: the audit log refused an entry (%s, pass %" PRId64 ")\n",
		        action, pass);
}

/* --- the style sheet (served, so that the page's CSP can forbid inline style) --------------- */

static const char style_css[] =
        "body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fafafa}"
        "header{background:#0b3d62;color:#fff;padding:.5em 1em;display:flex;flex-wrap:wrap;"
        "align-items:center;gap:1em}header a{color:#fff}.marque{font-weight:bold;margin:0}"
        "nav ul{list-style:none;display:flex;gap:1em;margin:0;padding:0}"
        "[aria-current]{text-decoration:underline 3px}.qui{margin-left:auto}"
        "main{padding:1em 2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left}"
        ".ok{background:#e3f6e3;border-left:6px solid #1a7f1a;padding:.5em 1em}"
        ".erreur{background:#fde8e8;border-left:6px solid #b00;padding:.5em 1em}"
        "fieldset{margin:1em 0;border:1px solid #bbb}label{display:inline-block;min-width:12em}"
        "input,select,button{font-size:1em;margin:.2em}"
        ":focus{outline:3px solid #f90;outline-offset:2px}"
        "footer{color:#555;font-size:.85em;padding:1em 2em}";

static void security_headers(struct evhttp_request *r)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r);
	evhttp_add_header(h, "Content-Security-Policy",
	                  "default-src 'none'; style-src 'self'; img-src 'self' data:; "
	                  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
}

/* --- login and logout ----------------------------------------------------------------------- */

static void client_addr(struct office_req *q, char *out, size_t cap)
{
	char *addr = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(q->r), &addr, &port);
	snprintf(out, cap, "%s", addr ? addr : "?");
}

/* 1 when this address may try another login now: a bucket of login_per_min tries, refilled
 * continuously (a fixed window would allow twice the rate across its edge). */
static int rate_ok(struct office *o, const char *addr, int64_t now)
{
	double cap = o->cfg->login_per_min;
	struct office_rate *slot = NULL, *oldest = &o->rate[0];
	for (size_t i = 0; i < OFFICE_RATE_SLOTS; i++) {
		if (strcmp(o->rate[i].addr, addr) == 0) {
			slot = &o->rate[i];
			break;
		}
		if (o->rate[i].last < oldest->last)
			oldest = &o->rate[i];
	}
	if (!slot) {
		slot = oldest;
		snprintf(slot->addr, sizeof(slot->addr), "%s", addr);
		slot->last = now;
		slot->tokens = cap;
	}
	if (now > slot->last)
		slot->tokens += (double)(now - slot->last) * cap / 60.0;
	if (slot->tokens > cap)
		slot->tokens = cap;
	slot->last = now;
	if (slot->tokens < 1.0)
		return 0;
	slot->tokens -= 1.0;
	return 1;
}

static void cookie_set(struct office_req *q, const char *name, const char *value, int clear)
{
	char c[256];
	snprintf(c, sizeof(c), "%s=%s; Path=/; Secure; HttpOnly; SameSite=Strict%s", name, value,
	         clear ? "; Max-Age=0" : "");
	evhttp_add_header(evhttp_request_get_output_headers(q->r), "Set-Cookie", c);
}

/* The login token the browser already holds, when it carries a well-formed one: 1. */
static int login_token_held(struct office_req *q, char token[OFFICE_TOKEN_HEX + 1])
{
	const char *hdr = evhttp_find_header(evhttp_request_get_input_headers(q->r), "Cookie");
	if (office_cookie_get(hdr, LOGIN_COOKIE, token, OFFICE_TOKEN_HEX + 1) != 0 ||
	    strlen(token) != OFFICE_TOKEN_HEX)
		return 0;
	for (size_t i = 0; i < OFFICE_TOKEN_HEX; i++)
		if (!strchr("0123456789abcdef", token[i]))
			return 0;
	return 1;
}

static void login_form(struct office_req *q, int status, const char *err, const char *detail)
{
	char token[OFFICE_TOKEN_HEX + 1];
	/* A browser loads the login page, then asks for /favicon.ico and the like, which come
	 * back here too: a token minted at each of them would expire the form on display. The
	 * token is a double-submit one, worth nothing to whoever cannot read the page; it is
	 * kept until a login succeeds (which clears it). */
	if (!login_token_held(q, token)) {
		if (office_token_new(token) != 0) {
			office_page_refuse(q, 500, "Connexion",
			                   "Le serveur n'a pas de source d'aléa.", "");
			return;
		}
		cookie_set(q, LOGIN_COOKIE, token, 0);
	}
	office_page_begin(q, "Connexion");
	if (err)
		office_msg_err(q, err, detail);
	fprintf(q->page,
	        "<form method=\"post\" action=\"/connexion\">"
	        "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	        "<p><label for=\"identifiant\">Identifiant</label>"
	        "<input id=\"identifiant\" name=\"identifiant\" autocomplete=\"username\" "
	        "required autofocus></p>"
	        "<p><label for=\"mot_de_passe\">Mot de passe</label>"
	        "<input id=\"mot_de_passe\" name=\"mot_de_passe\" type=\"password\" "
	        "autocomplete=\"current-password\" required></p>"
	        "<p><button id=\"connexion\">Se connecter</button></p></form>",
	        token);
	office_page_end(q, status);
}

static void login_post(struct office_req *q)
{
	char addr[64], cookie[OFFICE_TOKEN_HEX + 1];
	const char *hdr = evhttp_find_header(evhttp_request_get_input_headers(q->r), "Cookie");
	const char *csrf = office_field(q, "csrf");
	if (office_cookie_get(hdr, LOGIN_COOKIE, cookie, sizeof(cookie)) != 0 ||
	    !office_token_equal(csrf, cookie)) {
		login_form(q, 403,
		           "Le formulaire de connexion a expiré ou ne vient pas de cette page : "
		           "réessayez.",
		           NULL);
		return;
	}
	client_addr(q, addr, sizeof(addr));
	if (!rate_ok(q->o, addr, q->desk.now)) {
		login_form(q, 429,
		           "Trop d'essais de connexion depuis ce poste : attendez une minute.",
		           NULL);
		return;
	}
	const char *login = office_field(q, "identifiant"), *pw = office_field(q, "mot_de_passe");
	struct server_why why;
	int locked_now = 0, known = 0;
	int rc = office_login(q->o->db, login, pw, q->desk.now, &q->s, &known, &locked_now, &why);
	/* the audit names a login only when it is an account's: a password typed into the
	 * login field by mistake must not land in the log */
	if (rc != 0) {
		office_audit(q->o->db, q->desk.now, known ? login : "", "connexion", 0, "", 0,
		             locked_now ? "compte verrouillé après trop d'essais"
		             : rc == SERVER_ERR_STATE
		                     ? (strstr(why.text, "désactivé") ? "compte désactivé"
		                                                      : "compte verrouillé")
		                     : "identifiant ou mot de passe incorrect");
		login_form(q, rc == SERVER_ERR_STATE || locked_now ? 403 : 400,
		           locked_now ? "Identifiant ou mot de passe incorrect. Ce compte est "
		                        "maintenant verrouillé pour 15 minutes."
		                      : why.text,
		           NULL);
		return;
	}
	q->logged = 1;
	office_audit_req(q, "connexion", 0, 0, 1, "");
	cookie_set(q, SESSION_COOKIE, q->s.token, 0);
	cookie_set(q, LOGIN_COOKIE, "", 1);
	office_redirect(q, "/");
}

static void logout(struct office_req *q)
{
	office_session_end(q->o->db, q->s.token);
	office_audit_req(q, "déconnexion", 0, 0, 1, "");
	q->logged = 0;
	cookie_set(q, SESSION_COOKIE, "", 1);
	office_redirect(q, "/connexion");
}

/* --- routing -------------------------------------------------------------------------------- */

static void serve_css(struct office_req *q)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(q->r);
	evhttp_remove_header(h, "Cache-Control");
	evhttp_add_header(h, "Content-Type", "text/css; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "max-age=3600");
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, style_css, sizeof(style_css) - 1);
	evhttp_send_reply(q->r, 200, "OK", b);
	if (b)
		evbuffer_free(b);
	q->begun = 1;
}

/* "/pass/123" or "/pass/123/ACTION": the number, and ACTION in *action ("" for none). */
static int pass_route(const char *path, int64_t *id, const char **action)
{
	if (strncmp(path, "/pass/", 6) != 0)
		return 0;
	const char *p = path + 6;
	if (*p < '1' || *p > '9')
		return 0;
	int64_t v = 0;
	while (*p >= '0' && *p <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (*p++ - '0');
	}
	if (*p == 0)
		*action = "";
	else if (*p == '/' && p[1])
		*action = p + 1;
	else
		return 0;
	*id = v;
	return 1;
}

static int read_body(struct office_req *q)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(q->r);
	size_t len = evbuffer_get_length(in);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(q->r), "Content-Type");
	if (len && (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)) {
		office_page_refuse(q, 415, "Requête refusée",
		                   "Ce serveur ne lit que les formulaires de ses propres pages.",
		                   "expected Content-Type: application/x-www-form-urlencoded");
		return -1;
	}
	unsigned char *body = evbuffer_pullup(in, -1);
	int rc = office_form_parse((const char *)body, len, &q->form);
	if (rc) {
		office_page_refuse(q, rc == OFFICE_FORM_TOO_LONG ? 413 : 400, "Requête refusée",
		                   office_form_strerror(rc), "");
		return -1;
	}
	return 0;
}

static void dispatch(struct office_req *q)
{
	const char *path = q->path;
	int64_t id;
	const char *action;
	if (strcmp(path, "/style.css") == 0 && !q->post)
		return serve_css(q);
	if (strcmp(path, "/connexion") == 0)
		return q->post ? login_post(q) : login_form(q, 200, NULL, NULL);

	/* everything else: an agent's session */
	char token[OFFICE_TOKEN_HEX + 1];
	const char *hdr = evhttp_find_header(evhttp_request_get_input_headers(q->r), "Cookie");
	if (office_cookie_get(hdr, SESSION_COOKIE, token, sizeof(token)) == 0 &&
	    office_session_find(q->o->db, token, q->desk.now, &q->s) == 0)
		q->logged = 1;
	if (!q->logged) {
		if (!q->post)
			return office_redirect(q, "/connexion");
		return office_page_refuse(q, 403, "Session expirée",
		                          "Votre session a expiré ou vous êtes déconnecté : "
		                          "reconnectez-vous, puis recommencez.",
		                          "");
	}
	if (q->post && !office_token_equal(office_field(q, "csrf"), q->s.csrf)) {
		office_audit_req(q, "requête sans jeton CSRF valide", 0, 0, 0, path);
		return office_page_refuse(
		        q, 403, "Requête refusée",
		        "Ce formulaire ne vient pas d'une page de ce guichet, ou il "
		        "a expiré : rechargez la page et recommencez.",
		        "CSRF token missing or wrong");
	}
	int admin = q->s.acct.role == OFFICE_ROLE_ADMIN;
	if (strcmp(path, "/deconnexion") == 0 && q->post)
		return logout(q);
	if (strcmp(path, "/") == 0 && !q->post)
		return office_page_search(q);
	if (strcmp(path, "/pass/nouveau") == 0)
		return office_page_issue(q);
	if (pass_route(path, &id, &action)) {
		if (q->post == !*action)
			goto method;
		return office_page_pass(q, id, action);
	}
	if (strcmp(path, "/carte") == 0)
		return office_page_card(q, "");
	if (strncmp(path, "/carte/", 7) == 0)
		return office_page_card(q, path + 7);
	if (strcmp(path, "/gate-ca.crt") == 0 && !q->post)
		return office_page_gate_ca(q);
	if (strcmp(path, "/foyers") == 0)
		return office_page_households(q);
	if (strncmp(path, "/foyer/", 7) == 0)
		return office_page_household(q, path + 7);
	if ((strcmp(path, "/portiques") == 0 || strcmp(path, "/gates") == 0) && !q->post)
		return office_page_gates(q);
	if (strcmp(path, "/statistiques") == 0 && !q->post)
		return office_page_stats(q);
	if (strcmp(path, "/opendata.csv") == 0 && !q->post)
		return office_page_opendata(q);
	if (strcmp(path, "/quotas") == 0 && !q->post)
		return office_page_quotas(q);
	if (strcmp(path, "/audit") == 0 || strcmp(path, "/audit.csv") == 0) {
		if (!admin) {
			office_audit_req(q, "accès refusé", 0, 0, 0, path);
			return office_page_refuse(
			        q, 403, "Accès refusé",
			        "Le journal d'audit est réservé aux administrateurs.", "");
		}
		if (q->post)
			goto method;
		return office_page_audit(q, path[6] == '.');
	}
	if (strcmp(path, "/comptes") == 0) {
		if (!admin) {
			office_audit_req(q, "accès refusé", 0, 0, 0, path);
			return office_page_refuse(q, 403, "Accès refusé",
			                          "Les comptes sont réservés aux administrateurs.",
			                          "");
		}
		return office_page_accounts(q);
	}
	return office_page_refuse(q, 404, "Page introuvable",
	                          "Cette adresse ne correspond à aucune page du guichet.", "");
method:
	return office_page_refuse(q, 405, "Requête refusée",
	                          "Cette page ne s'utilise pas ainsi (méthode HTTP non prévue).",
	                          "");
}

static void on_request(struct evhttp_request *r, void *arg)
{
	struct office *o = arg;
	struct office_req q;
	memset(&q, 0, sizeof(q));
	q.o = o;
	q.r = r;
	q.desk.st = &o->st;
	q.desk.data = o->cfg->data;
	q.desk.now = office_now();
	q.page = open_memstream(&q.page_buf, &q.page_len);
	if (!q.page) {
		evhttp_send_error(r, 500, "out of memory");
		return;
	}
	security_headers(r);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(r);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	q.path = path && *path ? path : "/";
	q.post = cmd == EVHTTP_REQ_POST;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	int rc = 0;
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_POST && cmd != EVHTTP_REQ_HEAD) {
		office_page_refuse(&q, 405, "Requête refusée",
		                   "Ce guichet ne répond qu'aux méthodes GET et POST.", "");
	} else if (query && (rc = office_form_parse(query, strlen(query), &q.query)) != 0) {
		office_page_refuse(&q, rc == OFFICE_FORM_TOO_LONG ? 413 : 400, "Requête refusée",
		                   office_form_strerror(rc), "");
	} else if (!q.post || read_body(&q) == 0) {
		dispatch(&q);
	}
	if (!q.begun)
		office_page_refuse(&q, 500, "Erreur", "La page n'a rien répondu.", "");
	fclose(q.page);
	free(q.page_buf);
	office_form_free(&q.query);
	office_form_free(&q.form);
	/* a session's secrets do not linger on the stack of the next request */
	memset(&q.s, 0, sizeof(q.s));
}

/* --- TLS ----------------------------------------------------------------------------------- */

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct office *o = arg;
	SSL *ssl = SSL_new(o->ssl);
	if (!ssl)
		return NULL;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	/* browsers close TLS without close_notify often; that is no error of ours */
	if (bev)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static int tls_setup(struct office *o, struct server_why *why)
{
	o->ssl = SSL_CTX_new(TLS_server_method());
	if (!o->ssl)
		return server_why_set(why, SERVER_ERR_CRYPTO, "OpenSSL: no TLS context");
	SSL_CTX_set_min_proto_version(o->ssl, TLS1_2_VERSION);
	SSL_CTX_set_options(o->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                                    SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_cipher_list(o->ssl, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1 ||
	    SSL_CTX_use_certificate_chain_file(o->ssl, o->cfg->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(o->ssl, o->cfg->key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(o->ssl) != 1) {
		char e[256];
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		return server_why_set(why, SERVER_ERR_CRYPTO,
		                      "certificate '%s' or key '%s' not usable: %s", o->cfg->cert,
		                      o->cfg->key, e);
	}
	return 0;
}

/* --- the loop ------------------------------------------------------------------------------- */

static void on_signal(evutil_socket_t sig, short ev, void *arg)
{
	(void)sig;
	(void)ev;
	service_notify_stopping();
	event_base_loopexit(arg, NULL);
}

/* systemd's watchdog (citypass-office.service) is fed from the loop itself, as the
 * server's is: a loop stuck in a callback stops feeding it and systemd restarts the office. */
static void on_watchdog(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	service_watchdog_feed();
}

static int write_port(const char *path, uint16_t port)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

int office_serve(const struct office_config *c, struct server_why *why)
{
	struct office o;
	memset(&o, 0, sizeof(o));
	o.cfg = c;
	struct event *sigs[2] = {NULL, NULL}, *watchdog = NULL;
	int rc = server_store_open(&o.st, c->data, 0, why);
	if (rc)
		return rc;
	if ((rc = office_db_open(&o.db, c->data, why)) != 0 || (rc = tls_setup(&o, why)) != 0)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	o.base = event_base_new();
	o.http = o.base ? evhttp_new(o.base) : NULL;
	if (!o.http) {
		rc = server_why_set(why, SERVER_ERR_NOMEM, "libevent: no event loop");
		goto out;
	}
	evhttp_set_max_headers_size(o.http, MAX_HEADERS);
	evhttp_set_max_body_size(o.http, MAX_BODY);
	evhttp_set_timeout(o.http, 30);
	/* every method reaches on_request, which answers the unknown ones in French */
	evhttp_set_allowed_methods(o.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                           EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                           EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(o.http, tls_bev, &o);
	evhttp_set_gencb(o.http, on_request, &o);
	struct evhttp_bound_socket *bs =
	        evhttp_bind_socket_with_handle(o.http, c->host ? c->host : "127.0.0.1", c->port);
	if (!bs) {
		rc = server_why_set(why, SERVER_ERR_IO, "cannot listen on %s:%u: %s",
		                    c->host ? c->host : "127.0.0.1", c->port, strerror(errno));
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint16_t port = c->port;
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                                      : ((struct sockaddr_in *)&ss)->sin_port);
	if (c->port_file && write_port(c->port_file, port) != 0) {
		rc = server_why_set(why, SERVER_ERR_IO, "cannot write %s: %s", c->port_file,
		                    strerror(errno));
		goto out;
	}
	fprintf(stderr, "citypass-office: listening on https://%s:%u/\n",
	        c->host ? c->host : "127.0.0.1", port);
	sigs[0] = evsignal_new(o.base, SIGTERM, on_signal, o.base);
	sigs[1] = evsignal_new(o.base, SIGINT, on_signal, o.base);
	for (int i = 0; i < 2; i++)
		if (sigs[i])
			event_add(sigs[i], NULL);
	uint64_t wd_usec = service_watchdog_usec();
	if (wd_usec > 0) {
		/* twice per interval (service_watchdog_feed lets every tick through) */
		struct timeval tv = {.tv_sec = (time_t)(wd_usec / 2 / 1000000),
		                     .tv_usec = (suseconds_t)(wd_usec / 2 % 1000000)};
		watchdog = event_new(o.base, -1, EV_PERSIST, on_watchdog, NULL);
		if (!watchdog || event_add(watchdog, &tv) != 0) {
			rc = server_why_set(why, SERVER_ERR_NOMEM, "libevent: no watchdog timer");
			goto out;
		}
		service_watchdog_feed();
	}
	char status[320];
	snprintf(status, sizeof(status), "serving agents on https://%s:%u/",
	         c->host ? c->host : "127.0.0.1", port);
	service_notify_ready(status);
	event_base_dispatch(o.base);
	rc = 0;
out:
	for (int i = 0; i < 2; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (watchdog)
		event_free(watchdog);
	if (o.http)
		evhttp_free(o.http);
	if (o.base)
		event_base_free(o.base);
	if (o.ssl)
		SSL_CTX_free(o.ssl);
	office_db_close(o.db);
	server_store_close(&o.st);
	return rc;
}
