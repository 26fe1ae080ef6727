/*
 * pass_life.c — a pass from issue to revocation (server/passes.h): households, the pass's
 * random identifiers, issuing on a card or a phone, replacing, revoking. Each operation is
 * one transaction; the medium (card personalised, credentials written) is made inside it,
 * so that a card or phone that fails leaves no pass behind.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/platform_util.h>

#include "cardlib/error.h"
#include "cardlib/token.h"
#include "pass_internal.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"

#define ID_RETRIES 16

/* --- identifiers and households ---------------------------------------------------------- */

static int random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Random bytes from a pool drawn 4 KiB at a time (an import draws millions of ids). Each
 * byte is handed out once and wiped from the pool. */
static int pooled_random(void *buf, size_t n)
{
	static uint8_t pool[4096];
	static size_t left;
	if (n > sizeof(pool))
		return random_bytes(buf, n);
	if (left < n) {
		if (random_bytes(pool, sizeof(pool)) != 0)
			return -1;
		left = sizeof(pool);
	}
	memcpy(buf, pool + sizeof(pool) - left, n);
	memset(pool + sizeof(pool) - left, 0, n);
	left -= n;
	return 0;
}

int server_pass_id_assign(struct server_store *st, int64_t pass, uint16_t sector)
{
	int rc = SERVER_ERR_EXISTS;
	for (int t = 0; t < ID_RETRIES && rc == SERVER_ERR_EXISTS; t++) {
		uint8_t id[SERVER_PASS_ID_LEN], key[PROTO_LIST_KEY_LEN];
		if (pooled_random(id, sizeof(id)) != 0)
			return SERVER_ERR_CRYPTO;
		proto_list_key(sector, id, sizeof(id), key);
		rc = st->ops->pass_id_add(st->ctx, pass, sector, id, key);
		mbedtls_platform_zeroize(id, sizeof(id));
	}
	return rc;
}

/* An identifier in every sector of the deployment (a card carries them all). */
static int assign_ids(struct server_store *st, int64_t pass)
{
	struct server_sector *v = NULL;
	size_t n = 0;
	int rc = st->ops->sector_list(st->ctx, &v, &n);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = server_pass_id_assign(st, pass, v[i].number);
	free(v);
	return rc;
}

int server_household_tag(struct server_store *st, int64_t household, uint16_t sector)
{
	uint32_t tag;
	int rc = st->ops->household_tag_get(st->ctx, household, sector, &tag);
	if (rc != SERVER_ERR_NOT_FOUND)
		return rc;
	return server_household_tag_draw(st, household, sector);
}

int server_household_tag_draw(struct server_store *st, int64_t household, uint16_t sector)
{
	uint32_t tag;
	int rc = SERVER_ERR_EXISTS;
	for (int t = 0; t < ID_RETRIES && rc == SERVER_ERR_EXISTS; t++) {
		if (pooled_random(&tag, sizeof(tag)) != 0)
			return SERVER_ERR_CRYPTO;
		tag &= PROTO_LIST_HOUSEHOLD_MAX;
		if (tag == 0)
			continue;
		rc = st->ops->household_tag_add(st->ctx, household, sector, tag);
	}
	return rc;
}

int server_household_add(const struct server_desk *d, const char *name, int64_t *id,
                         struct server_why *why)
{
	struct server_store *st = d->st;
	if (!server_name_ok(name))
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "household name '%s': expected 1 to 63 letters, digits, '-', "
		                      "'_' or '.'",
		                      name);
	int rc = pass_begin(st, why);
	if (rc)
		return rc;
	rc = st->ops->household_add(st->ctx, name, id);
	if (rc == SERVER_ERR_EXISTS) {
		pass_household_taken(st, name, why);
	} else if (rc) {
		char what[128];
		snprintf(what, sizeof(what), "cannot add household '%s'", name);
		pass_why_store(why, st, rc, what);
	}
	return pass_end(st, rc, why);
}

/* --- phone credentials -------------------------------------------------------------------- */

/* Issue and write the credentials of pass `pass`; on failure removes what it wrote. */
static int issue_credentials(const struct server_desk *d, int64_t pass,
                             const struct server_pass_medium *m, struct server_why *why)
{
	struct server_store *st = d->st;
	char path[PATH_MAX], written[SERVER_CARD_SLOTS][PATH_MAX];
	struct proto_key *issuer = NULL;
	size_t nw = 0;
	char buf[32];
	int64_t days = 365;
	if (st->ops->meta_get(st->ctx, "credential_days", buf, sizeof(buf)) == 0)
		days = strtoll(buf, NULL, 10);
	/* Whole days (UTC): a validity period is then a cohort, not a link between sectors
	 * (docs/phone-tokens.md, s.5). */
	int64_t from = d->now - d->now % 86400, until = from + days * 86400;
	if (m->n_phones > SERVER_CARD_SLOTS)
		return server_why_set(why, SERVER_ERR_INVALID, "at most %d phone keys",
		                      SERVER_CARD_SLOTS);
	server_key_path(path, sizeof(path), d->data, "issuer.key");
	int rc = proto_key_load(&issuer, path);
	if (rc)
		return server_why_set(why, SERVER_ERR_CRYPTO, "cannot load the issuer key: %s",
		                      proto_strerror(rc));
	int made_out = mkdir(m->out_dir, 0700) == 0;
	if (!made_out && errno != EEXIST) {
		proto_key_free(issuer);
		return server_why_set(why, SERVER_ERR_IO, "cannot create --out '%s': %s",
		                      m->out_dir, strerror(errno));
	}
	int ret = 0;
	for (size_t i = 0; i < m->n_phones && ret == 0; i++) {
		const struct server_phone_request *pr = &m->phones[i];
		struct proto_key *phone = NULL;
		uint8_t id[SERVER_PASS_ID_LEN], cred[CARDLIB_TOKEN_CRED_MAX];
		char sec[SERVER_NAME_MAX];
		server_sector_name(st, pr->sector, sec, sizeof(sec));
		rc = proto_key_load(&phone, pr->pem_path);
		if (rc) {
			ret = server_why_set(why, SERVER_ERR_INVALID,
			                     "--phone-key '%s': not a P-256 public key PEM: %s",
			                     pr->pem_path, proto_strerror(rc));
			break;
		}
		int len = st->ops->pass_id_get(st->ctx, pass, pr->sector, id, NULL);
		if (len == 0)
			len = cardlib_token_issue(issuer, pr->sector, id, phone, from, until, cred,
			                          sizeof(cred));
		proto_key_free(phone);
		mbedtls_platform_zeroize(id, sizeof(id));
		if (len < 0) {
			/* a store code or cardlib's: the ranges do not overlap (server/error.h) */
			ret = server_why_set(why, SERVER_ERR_CRYPTO,
			                     "cannot issue the credential of sector %s: %s", sec,
			                     len <= SERVER_ERR_FIRST && len >= SERVER_ERR_LAST
			                             ? server_store_strerror(st, len)
			                             : cardlib_strerror(len));
			break;
		}
		snprintf(written[nw], PATH_MAX, "%s/sector-%u.cred", m->out_dir, pr->sector);
		rc = server_file_create(written[nw], cred, (size_t)len, 0600);
		if (rc) {
			ret = server_why_set(why, rc, "cannot write '%s': %s", written[nw],
			                     rc == SERVER_ERR_EXISTS ? "it exists"
			                                             : server_strerror(rc));
			break;
		}
		nw++;
	}
	proto_key_free(issuer);
	/* The device CA, for the phone to check gates with before it answers them (issue 17,
	 * docs/phone-tokens.md s.3): public, the same for every phone of the deployment. */
	char ca_from[PATH_MAX], ca_to[PATH_MAX];
	if (ret == 0) {
		uint8_t *ca = NULL;
		size_t ca_len = 0;
		server_key_path(ca_from, sizeof(ca_from), d->data, "ca.crt");
		snprintf(ca_to, sizeof(ca_to), "%s/gate-ca.crt", m->out_dir);
		rc = server_file_read(ca_from, &ca, &ca_len);
		if (rc == 0)
			rc = server_file_replace(ca_to, ca, ca_len, 0644);
		free(ca);
		if (rc)
			ret = server_why_set(why, rc, "cannot write '%s': %s", ca_to,
			                     server_strerror(rc));
	}
	if (ret) {
		for (size_t i = 0; i < nw; i++)
			unlink(written[i]);
		if (made_out) /* nothing of a refused issue is left behind (issue 10) */
			rmdir(m->out_dir);
	}
	return ret;
}

/* --- issue / replace ---------------------------------------------------------------------- */

static int medium_check(const struct server_pass_medium *m, struct server_why *why)
{
	if (m->reader && m->n_phones)
		return server_why_set(
		        why, SERVER_ERR_INVALID,
		        "a card and a phone exclude each other (one medium per pass)");
	if (m->n_phones && !m->out_dir)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "phone credentials need a directory to go to");
	return 0;
}

static const char *medium_name(const struct server_pass_medium *m)
{
	return m->reader ? "card" : m->n_phones ? "phone" : "none";
}

/* A replacement keeps the uses already counted: per sector, the old card's counted uses
 * (consumption rows under its list key) move to the new card's list key, so a per-pass
 * quota or phone-entry counter does not restart at zero. */
static int carry_counters(struct server_store *st, int64_t from, int64_t to,
                          const struct server_right *r, size_t n, struct server_why *why)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t old_key[PROTO_LIST_KEY_LEN], new_key[PROTO_LIST_KEY_LEN];
		if (st->ops->pass_id_get(st->ctx, from, r[i].sector, NULL, old_key) != 0)
			continue; /* the old pass had no identifier in this sector */
		int rc = st->ops->pass_id_get(st->ctx, to, r[i].sector, NULL, new_key);
		if (rc == 0)
			rc = st->ops->consumption_rekey(st->ctx, r[i].sector, old_key, new_key);
		if (rc) {
			char what[96];
			snprintf(what, sizeof(what), "cannot carry the counters of pass %" PRId64,
			         from);
			return pass_why_store(why, st, rc, what);
		}
	}
	return 0;
}

/* Everything after the pass row exists: identifiers, rights, counters, medium. */
static int finish_pass(const struct server_desk *d, const struct server_pass *p,
                       struct server_right *r, size_t nr, int64_t counters_from,
                       const struct server_pass_medium *m, struct server_issued *out,
                       struct server_why *why)
{
	struct server_store *st = d->st;
	int rc = assign_ids(st, p->id);
	if (rc)
		return pass_why_store(why, st, rc, "cannot draw the pass's identifiers");
	pass_mark_card_entries(st, r, nr, m->reader != NULL);
	if ((rc = pass_rights_store(st, p, r, nr, why)) != 0)
		return rc;
	if (counters_from && (rc = carry_counters(st, counters_from, p->id, r, nr, why)) != 0)
		return rc;
	if (m->reader &&
	    (rc = pass_card_personalise(d, p->id, m, r, nr, &out->card_retaken, why)) != 0)
		return rc;
	if (m->n_phones && (rc = issue_credentials(d, p->id, m, why)) != 0)
		return rc;
	return 0;
}

/* Add pass p (filled with its id), finish it and, when replacing, mark `old` replaced by
 * it: one transaction. */
static int add_pass(const struct server_desk *d, struct server_pass *p, struct server_pass *old,
                    struct server_right *r, size_t nr, const struct server_pass_medium *m,
                    struct server_issued *out, struct server_why *why)
{
	struct server_store *st = d->st;
	int rc = pass_begin(st, why);
	if (rc)
		return rc;
	rc = st->ops->pass_add(st->ctx, p);
	if (rc == 0 && old) {
		old->state = SERVER_PASS_REPLACED;
		old->replaced_by = p->id;
		rc = st->ops->pass_update(st->ctx, old);
	}
	if (rc) {
		char what[64];
		if (old)
			snprintf(what, sizeof(what), "cannot replace pass %" PRId64, old->id);
		else
			snprintf(what, sizeof(what), "cannot create the pass");
		pass_why_store(why, st, rc, what);
	} else {
		rc = finish_pass(d, p, r, nr, old ? old->id : 0, m, out, why);
	}
	if ((rc = pass_end(st, rc, why)) != 0)
		return rc;
	out->pass = *p;
	for (size_t i = 0; i < nr; i++)
		pass_changed_add(&out->changed, r[i].sector);
	return 0;
}

static int holder_check(const char *holder, struct server_why *why)
{
	if (strlen(holder) >= SERVER_TEXT_MAX)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "holder: expected 1 to 255 characters");
	for (const unsigned char *q = (const unsigned char *)holder; *q;) {
		size_t n = server_utf8_len(q);
		if (n == 0)
			return server_why_set(
			        why, SERVER_ERR_INVALID,
			        "holder: byte %zu is not UTF-8 text (names are stored "
			        "and exported as UTF-8)",
			        (size_t)(q - (const unsigned char *)holder) + 1);
		q += n;
	}
	return 0;
}

int server_pass_issue(const struct server_desk *d, const struct server_pass_order *o,
                      struct server_issued *out, struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_right r[SERVER_CARD_SLOTS];
	struct server_pass p;
	memset(out, 0, sizeof(*out));
	memset(&p, 0, sizeof(p));
	int rc = medium_check(&o->medium, why);
	if (rc == 0 && o->holder)
		rc = holder_check(o->holder, why);
	if (rc)
		return rc;
	if (o->n_rights > SERVER_CARD_SLOTS)
		return server_why_set(why, SERVER_ERR_INVALID, "at most %d rights (one per sector)",
		                      SERVER_CARD_SLOTS);
	for (size_t i = 0; i < o->n_rights; i++)
		for (size_t j = 0; j < i; j++)
			if (o->rights[i].sector == o->rights[j].sector)
				return server_why_set(
				        why, SERVER_ERR_INVALID,
				        "a pass holds one right per sector, and sector "
				        "%u is given twice",
				        o->rights[i].sector);
	if (o->household) {
		rc = st->ops->household_find(st->ctx, o->household, &p.household);
		if (rc == SERVER_ERR_NOT_FOUND)
			return server_why_set(why, rc,
			                      "--household '%s': no such household (create it with "
			                      "'citypass-admin household add')",
			                      o->household);
		if (rc)
			return pass_why_store(why, st, rc, "cannot read the households");
	}
	if (o->holder)
		snprintf(p.holder, sizeof(p.holder), "%s", o->holder);
	p.state = SERVER_PASS_ACTIVE;
	snprintf(p.medium, sizeof(p.medium), "%s", medium_name(&o->medium));
	p.created = d->now;
	memcpy(r, o->rights, o->n_rights * sizeof(*r));
	return add_pass(d, &p, NULL, r, o->n_rights, &o->medium, out, why);
}

int server_pass_replace(const struct server_desk *d, int64_t old_id, const char *reason,
                        const struct server_pass_medium *medium, struct server_issued *out,
                        struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_pass old, p;
	memset(out, 0, sizeof(*out));
	int rc = medium_check(medium, why);
	if (rc == 0 && reason && strlen(reason) >= SERVER_TEXT_MAX)
		rc = server_why_set(why, SERVER_ERR_INVALID, "reason: at most 255 characters");
	if (rc == 0)
		rc = server_pass_read(d, old_id, &old, why);
	if (rc)
		return rc;
	/* A lost card is revoked at once and replaced when the citizen comes to the desk: a
	 * revoked pass can be replaced, a replaced one cannot (its rights moved already). */
	if (old.state == SERVER_PASS_REPLACED)
		return server_why_set(why, SERVER_ERR_STATE,
		                      "pass %" PRId64 " is already replaced (by pass %" PRId64
		                      "): replace that one",
		                      old_id, old.replaced_by);
	struct server_right *rv = NULL, r[SERVER_CARD_SLOTS];
	size_t nr = 0;
	if ((rc = st->ops->rights_of_pass(st->ctx, old_id, &rv, &nr)) != 0) {
		char what[64];
		snprintf(what, sizeof(what), "cannot read the rights of pass %" PRId64, old_id);
		return pass_why_store(why, st, rc, what);
	}
	nr = nr < SERVER_CARD_SLOTS ? nr : SERVER_CARD_SLOTS;
	memcpy(r, rv, nr * sizeof(*r));
	free(rv);
	p = old;
	p.id = 0;
	p.replaced_by = 0;
	if (p.state == SERVER_PASS_REVOKED) /* the old card was blocked; the new one is good */
		p.state = SERVER_PASS_ACTIVE;
	p.reason[0] = 0;
	snprintf(p.medium, sizeof(p.medium), "%s", medium_name(medium));
	p.created = d->now;
	snprintf(old.reason, sizeof(old.reason), "%s", reason && *reason ? reason : "replaced");
	return add_pass(d, &p, &old, r, nr, medium, out, why);
}

/* --- revoke / read ------------------------------------------------------------------------- */

int server_pass_read(const struct server_desk *d, int64_t id, struct server_pass *out,
                     struct server_why *why)
{
	int rc = d->st->ops->pass_get(d->st->ctx, id, out);
	if (rc == SERVER_ERR_NOT_FOUND)
		return server_why_set(why, rc, "pass %" PRId64 ": no such pass", id);
	if (rc) {
		char what[64];
		snprintf(what, sizeof(what), "cannot read pass %" PRId64, id);
		return pass_why_store(why, d->st, rc, what);
	}
	return 0;
}

int pass_rights_sectors(struct server_store *st, int64_t pass, int household_only,
                        struct server_sector_set *set, struct server_why *why)
{
	struct server_right *r = NULL;
	size_t n = 0;
	int rc = st->ops->rights_of_pass(st->ctx, pass, &r, &n);
	if (rc) {
		char what[64];
		snprintf(what, sizeof(what), "cannot read the rights of pass %" PRId64, pass);
		return pass_why_store(why, st, rc, what);
	}
	for (size_t i = 0; i < n; i++)
		if (!household_only || r[i].p.scope == PROTO_SCOPE_HOUSEHOLD)
			pass_changed_add(set, r[i].sector);
	free(r);
	return 0;
}

int server_pass_revoke(const struct server_desk *d, int64_t id, const char *reason,
                       struct server_sector_set *changed, struct server_why *why)
{
	struct server_store *st = d->st;
	struct server_pass p;
	if (!reason || !*reason || strlen(reason) >= SERVER_TEXT_MAX)
		return server_why_set(why, SERVER_ERR_INVALID,
		                      "a revocation needs its reason, 1 to 255 characters");
	int rc = server_pass_read(d, id, &p, why);
	if (rc)
		return rc;
	if (p.state == SERVER_PASS_REVOKED || p.state == SERVER_PASS_REPLACED)
		return server_why_set(why, SERVER_ERR_STATE, "pass %" PRId64 " is already %s", id,
		                      server_pass_state_name(p.state));
	p.state = SERVER_PASS_REVOKED;
	snprintf(p.reason, sizeof(p.reason), "%s", reason);
	if ((rc = pass_begin(st, why)) != 0)
		return rc;
	rc = st->ops->pass_update(st->ctx, &p);
	if (rc) {
		char what[64];
		snprintf(what, sizeof(what), "cannot revoke pass %" PRId64, id);
		pass_why_store(why, st, rc, what);
	}
	if ((rc = pass_end(st, rc, why)) != 0)
		return rc;
	/* committed: a failure to read the sectors now is the caller's to publish them all */
	return pass_rights_sectors(st, id, 0, changed, why);
}
