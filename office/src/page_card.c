/*
 * page_card.c — the pass's medium at the desk: a card in the desk's reader (libnfc, one
 * connection string per desk: --reader DESK=CONNSTRING) or a phone (its request PEM from
 * `citypass-token enrol`, pasted; the credential handed back as a QR code and as text for
 * `citypass-token install`); and the card page: read the card placed on the reader (find
 * its pass without typing anything) and take back a returned card (recycle).
 *
 * A card operation holds the event loop while the card is personalised (about a second at
 * the bench's 115 200 baud): the office serves a few desks, and a desk's agent waits for
 * their card anyway (docs/office.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <qrencode.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cardlib/error.h"
#include "cardlib/reader.h"
#include "office/words.h"
#include "office_internal.h"
#include "server/keys.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#define PEM_MAX 4096

static const char *reader_of(struct office_req *q, const char *desk)
{
	for (size_t i = 0; i < q->o->cfg->n_readers; i++)
		if (strcmp(q->o->cfg->readers[i].desk, desk) == 0)
			return q->o->cfg->readers[i].connstring;
	return NULL;
}

static void desk_options(struct office_req *q)
{
	for (size_t i = 0; i < q->o->cfg->n_readers; i++) {
		fputs("<option value=\"", q->page);
		office_html(q, q->o->cfg->readers[i].desk);
		fputs("\">", q->page);
		office_html(q, q->o->cfg->readers[i].desk);
		fputs("</option>", q->page);
	}
}

void office_medium_fields(struct office_req *q, int with_sector)
{
	fputs("<fieldset><legend>Support</legend><p><label><input type=\"radio\" name=\"support\" "
	      "value=\"aucun\" checked> en attente (le support viendra plus tard)</label></p>",
	      q->page);
	if (q->o->cfg->n_readers) {
		fputs("<p><label><input type=\"radio\" name=\"support\" value=\"carte\" "
		      "id=\"support-carte\"> carte posée sur le lecteur du guichet</label> "
		      "<select name=\"lecteur\" aria-label=\"lecteur\">",
		      q->page);
		desk_options(q);
		fputs("</select></p>", q->page);
	}
	fputs("<p><label><input type=\"radio\" name=\"support\" value=\"telephone\" "
	      "id=\"support-telephone\"> téléphone</label></p><p><label for=\"cle_telephone\">"
	      "Demande du téléphone (clé publique PEM affichée par l'application)</label><br>"
	      "<textarea id=\"cle_telephone\" name=\"cle_telephone\" rows=\"5\" cols=\"70\">"
	      "</textarea></p>",
	      q->page);
	if (with_sector) {
		fputs("<p><label for=\"secteur_telephone\">Service du téléphone</label>"
		      "<input id=\"secteur_telephone\" name=\"secteur_telephone\" size=\"12\"></p>",
		      q->page);
	}
	fputs("</fieldset>", q->page);
}

int office_medium_from_form(struct office_req *q, uint16_t phone_sector, struct office_medium *m,
                            char *err, size_t cap)
{
	memset(m, 0, sizeof(*m));
	const char *support = office_field(q, "support");
	if (!*support || strcmp(support, "aucun") == 0)
		return 0;
	if (strcmp(support, "carte") == 0) {
		const char *desk = office_field(q, "lecteur"), *conn = reader_of(q, desk);
		if (!conn) {
			snprintf(err, cap, "Aucun lecteur de guichet de ce nom.");
			return SERVER_ERR_NOT_FOUND;
		}
		snprintf(m->desk, sizeof(m->desk), "%s", desk);
		int rc = cardlib_nfc_open(&m->m.reader, conn);
		if (rc) {
			snprintf(err, cap,
			         "Le lecteur du guichet %s ne répond pas : vérifiez qu'il est "
			         "branché.",
			         desk);
			snprintf(m->detail, sizeof(m->detail), "%s", cardlib_strerror(rc));
			return SERVER_ERR_CARD;
		}
		m->m.reader_name = m->desk;
		return 0;
	}
	if (strcmp(support, "telephone") != 0) {
		snprintf(err, cap, "Support inconnu.");
		return SERVER_ERR_INVALID;
	}
	const char *pem = office_field(q, "cle_telephone");
	if (!strstr(pem, "-----BEGIN PUBLIC KEY-----") || strlen(pem) > PEM_MAX) {
		snprintf(err, cap,
		         "Collez la demande du téléphone : le bloc « BEGIN PUBLIC KEY » "
		         "que l'application affiche.");
		return SERVER_ERR_INVALID;
	}
	if (!phone_sector) {
		struct server_sector s;
		if (server_sector_find(&q->o->st, office_field(q, "secteur_telephone"), &s) != 0 ||
		    !office_account_has_sector(&q->s.acct, s.number)) {
			snprintf(err, cap, "Service du téléphone inconnu ou hors de vos services.");
			return SERVER_ERR_NOT_FOUND;
		}
		phone_sector = s.number;
	}
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp || strlen(tmp) > 40)
		tmp = "/tmp";
	snprintf(m->dir, sizeof(m->dir), "%s/citypass-office-phone-XXXXXX", tmp);
	if (!mkdtemp(m->dir)) {
		m->dir[0] = 0;
		snprintf(err, cap, "Le serveur ne peut pas écrire de fichier temporaire.");
		return SERVER_ERR_IO;
	}
	char path[128];
	snprintf(path, sizeof(path), "%s/request.pem", m->dir);
	FILE *f = fopen(path, "w");
	if (!f || fputs(pem, f) < 0 || fclose(f) != 0) {
		snprintf(err, cap, "Le serveur ne peut pas écrire de fichier temporaire.");
		return SERVER_ERR_IO;
	}
	snprintf(m->pem_path, sizeof(m->pem_path), "%s", path);
	snprintf(m->out, sizeof(m->out), "%s/out", m->dir);
	m->phone.sector = phone_sector;
	m->phone.pem_path = m->pem_path;
	m->m.phones = &m->phone;
	m->m.n_phones = 1;
	m->m.out_dir = m->out;
	return 0;
}

void office_medium_end(struct office_req *q, struct office_medium *m, int ok)
{
	cardlib_reader_free(m->m.reader);
	m->m.reader = NULL;
	if (!m->dir[0])
		return;
	char path[160];
	if (ok && m->m.n_phones) {
		snprintf(path, sizeof(path), "%s/sector-%u.cred", m->out, m->phone.sector);
		FILE *f = fopen(path, "rb");
		if (f) {
			q->cred_len = fread(q->cred, 1, sizeof(q->cred), f);
			q->cred_sector = m->phone.sector;
			fclose(f);
		}
		unlink(path);
	}
	/* the library writes the deployment's device CA beside the credential: the page links
	 * it from /gate-ca.crt instead (the same for every phone) */
	snprintf(path, sizeof(path), "%s/gate-ca.crt", m->out);
	unlink(path);
	rmdir(m->out);
	unlink(m->pem_path);
	rmdir(m->dir);
	m->dir[0] = 0;
}

/* --- the credential as a QR code ------------------------------------------------------------ */

static void base64(const uint8_t *b, size_t n, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) |
		             (i + 2 < n ? b[i + 2] : 0);
		out[o++] = t[v >> 18 & 63];
		out[o++] = t[v >> 12 & 63];
		out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[o] = 0;
}

/* A QR code (ISO/IEC 18004, libqrencode, level M) as an inline SVG: dark modules as one path. */
static void qr_svg(FILE *f, const char *text)
{
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (!qr) {
		fputs("<p>(code QR indisponible)</p>", f);
		return;
	}
	int w = qr->width, margin = 4;
	fprintf(f,
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"qr\" role=\"img\" "
	        "aria-label=\"code QR du justificatif\" width=\"%d\" height=\"%d\" "
	        "viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\"><rect width=\"100%%\" "
	        "height=\"100%%\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
	        (w + 2 * margin) * 6, (w + 2 * margin) * 6, w + 2 * margin, w + 2 * margin);
	for (int y = 0; y < w; y++)
		for (int x = 0; x < w; x++)
			if (qr->data[y * w + x] & 1)
				fprintf(f, "M%d %dh1v1h-1z", x + margin, y + margin);
	fputs("\"/></svg>", f);
	QRcode_free(qr);
}

void office_credential_block(struct office_req *q)
{
	if (!q->cred_len)
		return;
	char b64[sizeof(q->cred) * 4 / 3 + 8], text[sizeof(b64) + 16];
	base64(q->cred, q->cred_len, b64);
	snprintf(text, sizeof(text), "CPCRED1.%s", b64);
	char sec[SERVER_NAME_MAX];
	server_sector_name(&q->o->st, q->cred_sector, sec, sizeof(sec));
	fputs("<section id=\"justificatif\"><h2>Justificatif du téléphone (service ", q->page);
	office_html(q, sec);
	fputs(")</h2><p>Faites scanner ce code par l'application du citoyen. Il ne contient aucun "
	      "secret : il ne sert qu'au téléphone qui a fait la demande.</p>",
	      q->page);
	qr_svg(q->page, text);
	fputs("<p>Ou en texte : <code id=\"credential\">", q->page);
	office_html(q, text);
	fputs("</code></p><p>Le téléphone a aussi besoin du certificat des portiques du "
	      "déploiement (le même pour tous) : <a href=\"/gate-ca.crt\" id=\"gate-ca\">"
	      "gate-ca.crt</a>.</p></section>",
	      q->page);
}

void office_page_gate_ca(struct office_req *q)
{
	char path[4096];
	if (server_key_path(path, sizeof(path), q->o->cfg->data, "ca.crt") != 0)
		return office_page_refuse(q, 500, "Certificat", "Chemin trop long.", "");
	FILE *f = fopen(path, "rb");
	char buf[16384];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	if (!n)
		return office_page_refuse(q, 500, "Certificat",
		                          "Le certificat des portiques est illisible.", path);
	struct evkeyvalq *h = evhttp_request_get_output_headers(q->r);
	evhttp_add_header(h, "Content-Type", "application/x-pem-file");
	evhttp_add_header(h, "Content-Disposition", "attachment; filename=\"gate-ca.crt\"");
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add(b, buf, n);
	evhttp_send_reply(q->r, 200, "OK", b);
	if (b)
		evbuffer_free(b);
	q->begun = 1;
}

/* --- the card page: read a card, recycle it ------------------------------------------------ */

static void card_form(struct office_req *q, int status, const char *ok, const char *err,
                      const char *detail)
{
	office_page_begin(q, "Carte au guichet");
	if (ok)
		office_msg_ok(q, ok);
	if (err)
		office_msg_err(q, err, detail);
	if (!q->o->cfg->n_readers) {
		fputs("<p>Aucun lecteur n'est configuré pour ce guichet (citypass-office serve "
		      "--reader GUICHET=CONNEXION).</p>",
		      q->page);
		return office_page_end(q, status);
	}
	fputs("<form method=\"post\" action=\"/carte/lire\">", q->page);
	office_csrf_input(q);
	fputs("<p><label for=\"lecteur\">Lecteur</label><select id=\"lecteur\" name=\"lecteur\">",
	      q->page);
	desk_options(q);
	fputs("</select> <button id=\"lire\">Lire la carte posée</button> "
	      "<button id=\"recycler\" formaction=\"/carte/recycler\">Reprendre la carte "
	      "(recycler)</button></p></form><p>Reprendre une carte rendue : son pass doit être "
	      "révoqué ou remplacé ; la carte revient à l'état d'usine, prête à être émise de "
	      "nouveau.</p>",
	      q->page);
	office_page_end(q, status);
}

static void card_read(struct office_req *q, int recycle)
{
	const char *desk = office_field(q, "lecteur"), *conn = reader_of(q, desk);
	if (!conn)
		return card_form(q, 404, NULL, "Aucun lecteur de guichet de ce nom.", "");
	struct cardlib_reader *r = NULL;
	int rc = cardlib_nfc_open(&r, conn);
	if (rc)
		return card_form(q, 503, NULL,
		                 "Le lecteur ne répond pas : vérifiez qu'il est branché.",
		                 cardlib_strerror(rc));
	struct server_card_info info;
	struct server_why why = {""};
	char msg[512], err[512];
	rc = server_card_inspect(&q->desk, r, desk, 0, &info, &why);
	/* a desk visit moves a card's keys left at the previous version to the current one
	 * (DESIGN §3), only for a card of ours: asking it of a blank card is refused */
	int stale = 0;
	for (size_t i = 0; rc == 0 && i < info.n_sectors; i++)
		stale |= info.report.sectors[i].version && !info.report.sectors[i].current;
	if (rc == 0 && !recycle && stale && info.report.state == CARDLIB_CARD_OURS)
		rc = server_card_inspect(&q->desk, r, desk, 1, &info, &why);
	if (rc) {
		cardlib_reader_free(r);
		office_refusal_fr(err, sizeof(err), "Lecture de la carte", rc);
		return card_form(q, 400, NULL, err, why.text);
	}
	if (info.has_pass && !office_pass_visible(q, info.pass.id)) {
		cardlib_reader_free(r);
		office_audit_req(q, recycle ? "recyclage" : "lecture de carte", info.pass.id, 0, 0,
		                 "hors de vos services");
		return card_form(q, 404, NULL, "Cette carte ne porte aucun pass de vos services.",
		                 "");
	}
	if (!recycle) {
		cardlib_reader_free(r);
		if (!info.has_pass) {
			const char *what =
			        info.report.state == CARDLIB_CARD_BLANK
			                ? "Carte vierge : elle peut être émise."
			                : "Cette carte ne porte aucun pass de ce déploiement.";
			return card_form(q, 200, what, NULL, NULL);
		}
		office_audit_req(q, "lecture de carte", info.pass.id, 0, 1, desk);
		snprintf(msg, sizeof(msg), "Carte lue au guichet %s.", desk);
		if (info.report.has_value)
			snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg),
			         " Entrées restantes sur la carte : %d.", (int)info.report.value);
		return office_show_pass(q, info.pass.id, 200, msg);
	}
	int random_id = 0;
	rc = server_card_recycle(&q->desk, r, desk, &random_id, &why);
	cardlib_reader_free(r);
	office_audit_req(q, "recyclage", info.has_pass ? info.pass.id : 0, 0, rc == 0, desk);
	if (rc) {
		office_refusal_fr(err, sizeof(err), "Reprise de la carte", rc);
		return card_form(q, rc == SERVER_ERR_IN_USE ? 409 : 400, NULL, err, why.text);
	}
	card_form(q, 200,
	          "Carte reprise : elle est revenue à l'état d'usine et peut être émise de "
	          "nouveau.",
	          NULL, NULL);
}

void office_page_card(struct office_req *q, const char *action)
{
	if (!q->post && !*action)
		return card_form(q, 200, NULL, NULL, NULL);
	if (q->post && strcmp(action, "lire") == 0)
		return card_read(q, 0);
	if (q->post && strcmp(action, "recycler") == 0)
		return card_read(q, 1);
	office_page_refuse(q, 404, "Page introuvable",
	                   "Cette adresse ne correspond à aucune page du guichet.", "");
}
