/*
 * office_internal.h — shared by the daemon's files: the server's state, one request's
 * context, and the page helpers every page uses (the frame, escaping, the CSRF input,
 * messages). Private to office/.
 */
#ifndef OFFICE_INTERNAL_H
#define OFFICE_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "office/accounts.h"
#include "office/form.h"
#include "office/office.h"
#include "server/passes.h"

#define OFFICE_RATE_SLOTS 64

/* Login attempts per client address, a token bucket refilled at login_per_min a minute (in
 * memory: a restart forgives, the per-account lock-out in office.db does not). */
struct office_rate {
	char addr[64];
	int64_t last;
	double tokens;
};

struct office {
	const struct office_config *cfg;
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl;
	struct server_store st;
	struct office_db *db;
	struct office_rate rate[OFFICE_RATE_SLOTS];
};

/* The medium of an issue or a replacement, from its form (page_card.c). */
struct office_medium {
	struct server_pass_medium m;
	struct server_phone_request phone;
	char desk[64];
	char dir[64], pem_path[128], out[128];
	char detail[SERVER_WHY_MAX];
};

struct office_req {
	struct office *o;
	struct evhttp_request *r;
	const char *path;
	int post;
	struct office_form query, form;
	int logged;
	struct office_session s;
	struct server_desk desk;
	FILE *page;
	char *page_buf;
	size_t page_len;
	int begun;
	/* a phone credential just issued, shown on the pass page as a QR code */
	uint8_t cred[256];
	size_t cred_len;
	uint16_t cred_sector;
};

/* The time of a request: CITYPASS_NOW (tests) or the clock. */
int64_t office_now(void);

/* --- the page frame (http.c) ------------------------------------------------------------ */
void office_page_begin(struct office_req *q, const char *title);
/* Send the page with `status` (200, or 4xx for a refusal shown on its page). */
void office_page_end(struct office_req *q, int status);
/* A whole page saying what went wrong, with its status. */
void office_page_refuse(struct office_req *q, int status, const char *title, const char *sentence,
                        const char *detail);
void office_html(struct office_req *q, const char *text);
void office_csrf_input(struct office_req *q);
void office_msg_ok(struct office_req *q, const char *sentence);
void office_msg_err(struct office_req *q, const char *sentence, const char *detail);
void office_redirect(struct office_req *q, const char *to);
/* A form value, "" when absent. */
const char *office_field(struct office_req *q, const char *name);
/* Publish every sector a change touched (as citypass-admin does after its commit); the
 * outcome as a sentence in msg ("" when all went out). */
void office_publish_changed(struct office_req *q, const struct server_sector_set *changed,
                            char *msg, size_t cap);
/* Audit one action of the logged-in agent. */
void office_audit_req(struct office_req *q, const char *action, int64_t pass, uint16_t sector,
                      int done, const char *detail);

/* --- pages ---------------------------------------------------------------------------- */
/* page_desk.c: search, a pass and what an agent does to it */
void office_page_search(struct office_req *q);
void office_page_pass(struct office_req *q, int64_t id, const char *action);
void office_page_issue(struct office_req *q);
/* 1 when the agent may see pass `id`; the pass page with a confirmation on top */
int office_pass_visible(struct office_req *q, int64_t id);
void office_show_pass(struct office_req *q, int64_t id, int status, const char *ok);
/* page_household.c: households (/foyers, /foyer/ID[/renommer|ajouter|retirer|supprimer]),
 * and the households a search finds, as links */
void office_page_households(struct office_req *q);
void office_page_household(struct office_req *q, const char *rest);
void office_households_found(struct office_req *q, const char *text);
/* 1 when the household named exists and the agent may see it (as /foyer/N: empty, or
 * holding a pass of the agent's sectors); 0 otherwise, whichever it is, so that a form
 * naming a household tells nothing of another sector's households. */
int office_household_visible(struct office_req *q, const char *name);
/* page_card.c: the medium's form fields and reading them (the reader opened, the phone's
 * request written to a temporary directory; phone_sector 0: the form names it), its end
 * (the reader closed, the credential kept in q for the page, the files removed), the
 * credential's QR block, and the card page (/carte, /carte/lire, /carte/recycler) */
void office_medium_fields(struct office_req *q, int with_sector);
int office_medium_from_form(struct office_req *q, uint16_t phone_sector, struct office_medium *m,
                            char *err, size_t cap);
void office_medium_end(struct office_req *q, struct office_medium *m, int ok);
void office_credential_block(struct office_req *q);
void office_page_card(struct office_req *q, const char *action);
/* the deployment's device CA, which a phone's wallet installs with its credential */
void office_page_gate_ca(struct office_req *q);
/* page_manager.c: gates, lists, statistics, the audit log */
void office_page_gates(struct office_req *q);
void office_page_stats(struct office_req *q);
void office_page_audit(struct office_req *q, int csv);
/* page_accounts.c: an administrator's page of accounts (GET lists, POST changes one). */
void office_page_accounts(struct office_req *q);
void office_page_opendata(struct office_req *q);
void office_page_quotas(struct office_req *q);

#endif /* OFFICE_INTERNAL_H */
