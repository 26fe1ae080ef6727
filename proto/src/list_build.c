/*
 * Building list snapshots (server side). The builder is the only writer of the format, so
 * it refuses anything a gate would refuse: duplicate keys, profiles out of range, bad
 * header fields.
 */
#include <stdlib.h>

#include "list_internal.h"
#include "proto/error.h"

static int entry_key_cmp(const void *a, const void *b)
{
	return memcmp(((const struct proto_list_entry *)a)->key,
	              ((const struct proto_list_entry *)b)->key, PROTO_LIST_KEY_LEN);
}

int proto_list_build(const struct proto_list_params *params, const struct proto_key *signer,
                     const struct proto_rights_profile *profiles, size_t profile_count,
                     struct proto_list_entry *entries, size_t entry_count, uint8_t **out,
                     size_t *out_len)
{
	if (!params || !signer || !out || !out_len || (profile_count && !profiles) ||
	    (entry_count && !entries))
		return PROTO_ERR_ARG;
	if (params->version == 0 || params->expires_at <= params->issued_at)
		return PROTO_ERR_LIST_FIELD;
	if (entry_count > PROTO_LIST_MAX_ENTRIES || profile_count > PROTO_LIST_MAX_PROFILES)
		return PROTO_ERR_LIST_OVERSIZED;

	if (entry_count > 1) /* qsort's base must not be NULL, even for no element */
		qsort(entries, entry_count, sizeof(*entries), entry_key_cmp);
	for (size_t i = 0; i < entry_count; i++) {
		const struct proto_list_entry *e = &entries[i];
		if (i > 0 && entry_key_cmp(&entries[i - 1], e) == 0)
			return PROTO_ERR_LIST_ORDER;
		if (e->profile >= profile_count)
			return PROTO_ERR_LIST_PROFILE;
		if (e->status > PROTO_STATUS_MAX || e->household > PROTO_LIST_HOUSEHOLD_MAX)
			return PROTO_ERR_LIST_FIELD;
	}

	struct proto_list_header h = {
	        .format = PROTO_LIST_FORMAT,
	        .sector = params->sector,
	        .version = params->version,
	        .issued_at = params->issued_at,
	        .expires_at = params->expires_at,
	        .entry_count = (uint32_t)entry_count,
	        .profile_count = (uint16_t)profile_count,
	};
	proto_key_id(signer, h.key_id);
	memcpy(h.prev_hash, params->prev_hash, PROTO_HASH_LEN);

	size_t len = PROTO_LIST_HEADER_SIZE + profile_count * PROTO_LIST_PROFILE_SIZE +
	             entry_count * PROTO_LIST_ENTRY_SIZE;
	uint8_t *buf = malloc(len);
	if (!buf)
		return PROTO_ERR_NOMEM;
	list_header_encode(buf, &h);
	uint8_t *p = buf + PROTO_LIST_HEADER_SIZE;
	for (size_t i = 0; i < profile_count; i++, p += PROTO_LIST_PROFILE_SIZE) {
		list_profile_encode(p, &profiles[i]);
		struct proto_rights_profile check;
		if (list_profile_decode(p, &check) != 0) {
			free(buf);
			return PROTO_ERR_LIST_FIELD;
		}
	}
	for (size_t i = 0; i < entry_count; i++, p += PROTO_LIST_ENTRY_SIZE)
		list_entry_encode(p, &entries[i]);
	*out = buf;
	*out_len = len;
	return PROTO_OK;
}
