/*
 * list_store_legacy.c — format 1 in the list store: one file v<V>.cpl and its detached
 * signature v<V>.sig, what gates held before format 2. Such a list is read into memory and
 * verified whole (O(passes), once), then decided from in memory: nothing mapped, nothing
 * re-read from disk. It lasts until the server sends a format 2 snapshot
 * (docs/list-format.md, "Upgrading a gate").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/error.h"
#include "list_store_internal.h"
#include "proto/error.h"

static void legacy_names(uint64_t version, char cpl[PROTO_CLIST_NAME_MAX],
                         char sig[PROTO_CLIST_NAME_MAX])
{
	snprintf(cpl, PROTO_CLIST_NAME_MAX, "v%" PRIu64 ".cpl", version);
	snprintf(sig, PROTO_CLIST_NAME_MAX, "v%" PRIu64 ".sig", version);
}

/* Take buf (owned) as a verified format 1 version: open, verify, check its entries. */
static int legacy_version(struct controller_list_store *s, uint8_t *buf, size_t len,
                          const uint8_t *sig, size_t sig_len, uint64_t held, int64_t now,
                          bool keep_expired, struct ls_version **out)
{
	struct ls_version *v = calloc(1, sizeof(*v));
	if (!v) {
		free(buf);
		return CONTROLLER_ERR_NOMEM;
	}
	v->format = 1;
	v->legacy_buf = buf;
	v->legacy_len = len;
	int rc = proto_list_open_mem(&v->legacy, buf, len);
	if (rc == 0) {
		struct proto_list_policy pol = {
		        .sector = s->sector, .held_version = held, .now = now, .keys = s->keys};
		rc = proto_list_verify(v->legacy, sig, sig_len, &pol);
		if (rc == PROTO_ERR_LIST_EXPIRED && keep_expired)
			rc = 0;
	}
	if (rc == 0)
		rc = proto_list_check_entries(v->legacy);
	if (rc) {
		ls_version_free(v);
		return rc;
	}
	const struct proto_list_header *h = proto_list_header(v->legacy);
	v->version = h->version;
	v->issued_at = h->issued_at;
	memcpy(v->key_id, h->key_id, PROTO_KEY_ID_LEN);
	v->expires_at = h->expires_at;
	v->entries = h->entry_count;
	memcpy(v->file_hash, proto_list_hash(v->legacy), PROTO_HASH_LEN);
	*out = v;
	return 0;
}

int ls_legacy_open(struct controller_list_store *s, uint64_t version,
                   const uint8_t hash[PROTO_HASH_LEN], int64_t now, struct ls_version **out)
{
	char cpl[PROTO_CLIST_NAME_MAX], sign[PROTO_CLIST_NAME_MAX];
	uint8_t *buf = NULL, *sig = NULL;
	size_t len = 0, sig_len = 0;
	legacy_names(version, cpl, sign);
	int rc = ls_read_file(s, sign, LS_MAX_SIG, &sig, &sig_len);
	if (rc == 0)
		rc = ls_read_file(s, cpl,
		                  PROTO_LIST_HEADER_SIZE +
		                          (size_t)PROTO_LIST_MAX_PROFILES *
		                                  PROTO_LIST_PROFILE_SIZE +
		                          (size_t)PROTO_LIST_MAX_ENTRIES * PROTO_LIST_ENTRY_SIZE,
		                  &buf, &len);
	if (rc == 0) {
		uint8_t h[PROTO_HASH_LEN];
		proto_sha256(buf, len, h);
		if (memcmp(h, hash, PROTO_HASH_LEN) != 0) {
			free(buf);
			rc = PROTO_ERR_LIST_HASH;
		}
	}
	if (rc == 0)
		rc = legacy_version(s, buf, len, sig, sig_len, 0, now, true, out);
	if (rc == 0 && (*out)->version != version) {
		ls_version_free(*out);
		*out = NULL;
		rc = PROTO_ERR_LIST_FIELD;
	}
	free(sig);
	return rc;
}

/* Verify a format 1 snapshot (copied) and make it current. */
static int install_buffer(struct controller_list_store *s, const uint8_t *list, size_t len,
                          const uint8_t *sig, size_t sig_len, int64_t now)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return CONTROLLER_ERR_NOMEM;
	memcpy(copy, list, len);
	struct ls_version *v = NULL;
	int rc = legacy_version(s, copy, len, sig, sig_len, ls_held_for_install(s, 1), now, false,
	                        &v);
	if (rc)
		return rc;
	char cpl[PROTO_CLIST_NAME_MAX], sign[PROTO_CLIST_NAME_MAX];
	legacy_names(v->version, cpl, sign);
	rc = ls_stage_write(s, cpl, list, len, NULL);
	if (rc == 0)
		rc = ls_stage_write(s, sign, sig, sig_len, NULL);
	if (rc) {
		ls_version_free(v);
		ls_sweep(s, s->cur);
		return rc;
	}
	return ls_commit(s, v);
}

int ls_legacy_install(struct controller_list_store *s, const uint8_t *list, size_t len,
                      const uint8_t *sig, size_t sig_len, int64_t now)
{
	return install_buffer(s, list, len, sig, sig_len, now);
}

int ls_legacy_delta(struct controller_list_store *s, const uint8_t *delta, size_t len,
                    const uint8_t *sig, size_t sig_len, int64_t now)
{
	if (s->cur->format != 1)
		return PROTO_ERR_DELTA_BASE;
	struct proto_list_policy pol = {
	        .sector = s->sector, .held_version = s->cur->version, .now = now, .keys = s->keys};
	uint8_t *out = NULL, rsig[PROTO_SIG_MAX];
	size_t out_len = 0, rsig_len = 0;
	int rc = proto_delta_apply(s->cur->legacy, delta, len, sig, sig_len, &pol, &out, &out_len,
	                           rsig, &rsig_len);
	if (rc)
		return rc;
	rc = install_buffer(s, out, out_len, rsig, rsig_len, now);
	free(out);
	return rc;
}

int ls_legacy_lookup(const struct ls_version *v, const uint8_t key[PROTO_LIST_KEY_LEN],
                     struct controller_pass *pass)
{
	int rc = proto_list_lookup(v->legacy, key, &pass->entry, &pass->profile);
	if (rc == PROTO_ERR_LIST_NOT_FOUND)
		return 0;
	pass->found = rc == 0;
	return rc;
}
