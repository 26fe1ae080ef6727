/*
 * page_accounts.c — the administrator's page of accounts (/comptes): who may log in, with
 * which role and sectors, and whether the account is locked or disabled; an administrator
 * lifts a lock-out, disables the account of an agent who left (its sessions end at once)
 * or enables it again. Creating accounts and setting passwords stay on the console
 * (`citypass-office account add|password`): a password never travels through a form
 * another person fills in. Every change is audited by login, never by a holder's name.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "office_internal.h"

static void account_button(struct office_req *q, const char *login, const char *action,
                           const char *label)
{
	fputs("<form method=\"post\" action=\"/comptes\" class=\"en-ligne\">", q->page);
	office_csrf_input(q);
	fputs("<input type=\"hidden\" name=\"login\" value=\"", q->page);
	office_html(q, login);
	fprintf(q->page,
	        "\"><input type=\"hidden\" name=\"action\" value=\"%s\"><button "
	        "id=\"%s-",
	        action, action);
	office_html(q, login);
	fputs("\">", q->page);
	office_html(q, label);
	fputs("</button></form> ", q->page);
}

static int account_row_html(void *arg, const struct office_account *a)
{
	struct office_req *q = arg;
	fputs("<tr><td>", q->page);
	office_html(q, a->login);
	fprintf(q->page, "</td><td>%s</td><td>",
	        a->role == OFFICE_ROLE_ADMIN ? "administrateur" : "agent");
	if (a->role == OFFICE_ROLE_ADMIN)
		fputs("tous", q->page);
	for (size_t i = 0; i < a->n_sectors; i++) {
		char name[SERVER_NAME_MAX];
		server_sector_name(&q->o->st, a->sectors[i], name, sizeof(name));
		if (i)
			fputs(", ", q->page);
		office_html(q, name);
	}
	fputs("</td><td>", q->page);
	int locked = a->locked_until > q->desk.now;
	if (a->disabled) {
		fputs("désactivé", q->page);
	} else if (locked) {
		time_t t = (time_t)a->locked_until;
		struct tm tm;
		char hm[16] = "?";
		if (localtime_r(&t, &tm))
			strftime(hm, sizeof(hm), "%H:%M", &tm);
		fprintf(q->page, "verrouillé jusqu'à %s", hm);
	} else {
		fputs("actif", q->page);
	}
	fputs("</td><td>", q->page);
	if (a->disabled) {
		account_button(q, a->login, "reactiver", "Réactiver");
	} else {
		if (locked)
			account_button(q, a->login, "debloquer", "Débloquer");
		account_button(q, a->login, "desactiver", "Désactiver");
	}
	fputs("</td></tr>", q->page);
	return 0;
}

void office_page_accounts(struct office_req *q)
{
	char ok[160] = "", err[SERVER_WHY_MAX] = "";
	if (q->post) {
		static const struct {
			const char *action, *audit, *done;
			int change;
		} changes[] = {
		        {"desactiver", "compte désactivé", "désactivé : ses sessions sont fermées",
		         OFFICE_ACCOUNT_DISABLE},
		        {"reactiver", "compte réactivé", "réactivé", OFFICE_ACCOUNT_ENABLE},
		        {"debloquer", "compte débloqué", "débloqué", OFFICE_ACCOUNT_UNLOCK},
		};
		const char *login = office_field(q, "login"), *action = office_field(q, "action");
		size_t k = 0;
		while (k < sizeof(changes) / sizeof(changes[0]) &&
		       strcmp(changes[k].action, action) != 0)
			k++;
		if (k == sizeof(changes) / sizeof(changes[0]) || !office_login_ok(login))
			return office_page_refuse(q, 400, "Requête refusée",
			                          "Ce formulaire ne nomme pas un compte et une "
			                          "action de cette page.",
			                          "");
		struct server_why why;
		int rc = office_account_change(q->o->db, login, changes[k].change, &why);
		office_audit_req(q, changes[k].audit, 0, 0, rc == 0, rc == 0 ? login : why.text);
		if (rc == 0)
			snprintf(ok, sizeof(ok), "Compte « %s » %s.", login, changes[k].done);
		else
			snprintf(err, sizeof(err), "%s", why.text);
	}
	office_page_begin(q, "Comptes");
	if (*ok)
		office_msg_ok(q, ok);
	if (*err)
		office_msg_err(q, err, "");
	fputs("<p>Qui peut se connecter au guichet. Un compte désactivé ne se connecte plus et "
	      "ses sessions sont fermées ; on le réactive ici. Créer un compte ou changer un "
	      "mot de passe se fait sur le serveur : <code>citypass-office account add</code> "
	      "et <code>citypass-office account password</code>.</p>"
	      "<table id=\"comptes\"><thead><tr><th>Identifiant</th><th>Rôle</th>"
	      "<th>Services</th><th>État</th><th>Actions</th></tr></thead><tbody>",
	      q->page);
	office_account_each(q->o->db, account_row_html, q);
	fputs("</tbody></table>", q->page);
	office_page_end(q, err[0] ? 409 : 200);
}
