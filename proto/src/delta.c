/*
 * List deltas: version N -> N+1 of one sector as sorted add / change / remove operations.
 *
 * A gate applies a delta by merging it with the list it holds; the result must be, byte
 * for byte, the snapshot the server built for N+1. The delta carries that snapshot's hash
 * and signature, so the merge is checked end to end and the gate ends up holding a
 * (list, signature) pair an auditor can check with openssl, as if it had downloaded it.
 */
#include <stdlib.h>

#include "list_internal.h"
#include "proto/error.h"

static void delta_header_encode(uint8_t out[PROTO_DELTA_HEADER_SIZE],
                                const struct proto_delta_header *h)
{
	memset(out, 0, PROTO_DELTA_HEADER_SIZE);
	memcpy(out, DELTA_MAGIC, 4);
	put_be16(out + 4, h->format);
	put_be16(out + 6, h->sector);
	put_be64(out + 8, h->base_version);
	put_be64(out + 16, h->version);
	put_be64(out + 24, (uint64_t)h->issued_at);
	put_be64(out + 32, (uint64_t)h->expires_at);
	memcpy(out + 40, h->key_id, PROTO_KEY_ID_LEN);
	put_be32(out + 48, h->op_count);
	put_be32(out + 52, h->result_entry_count);
	put_be16(out + 56, h->profile_count);
	out[58] = h->result_sig_len;
	memcpy(out + 64, h->base_hash, PROTO_HASH_LEN);
	memcpy(out + 96, h->result_hash, PROTO_HASH_LEN);
	memcpy(out + 128, h->result_sig, h->result_sig_len);
}

int proto_delta_parse_header(const uint8_t *b, size_t len, struct proto_delta_header *h)
{
	if (!b || !h)
		return PROTO_ERR_ARG;
	if (len < 4)
		return PROTO_ERR_LIST_TRUNCATED;
	if (memcmp(b, DELTA_MAGIC, 4) != 0)
		return PROTO_ERR_LIST_MAGIC;
	if (len < PROTO_DELTA_HEADER_SIZE)
		return PROTO_ERR_LIST_TRUNCATED;
	memset(h, 0, sizeof(*h));
	h->format = get_be16(b + 4);
	if (h->format != PROTO_LIST_FORMAT)
		return PROTO_ERR_LIST_FORMAT;
	h->sector = get_be16(b + 6);
	h->base_version = get_be64(b + 8);
	h->version = get_be64(b + 16);
	h->issued_at = (int64_t)get_be64(b + 24);
	h->expires_at = (int64_t)get_be64(b + 32);
	memcpy(h->key_id, b + 40, PROTO_KEY_ID_LEN);
	h->op_count = get_be32(b + 48);
	h->result_entry_count = get_be32(b + 52);
	h->profile_count = get_be16(b + 56);
	h->result_sig_len = b[58];
	memcpy(h->base_hash, b + 64, PROTO_HASH_LEN);
	memcpy(h->result_hash, b + 96, PROTO_HASH_LEN);
	if (h->result_sig_len == 0 || h->result_sig_len > PROTO_SIG_MAX || !all_zero(b + 59, 5) ||
	    !all_zero(b + 128 + h->result_sig_len, PROTO_SIG_MAX - h->result_sig_len) ||
	    h->base_version == 0 || h->version <= h->base_version || h->expires_at <= h->issued_at)
		return PROTO_ERR_LIST_FIELD;
	memcpy(h->result_sig, b + 128, h->result_sig_len);
	if (h->op_count > PROTO_LIST_MAX_ENTRIES || h->result_entry_count > PROTO_LIST_MAX_ENTRIES)
		return PROTO_ERR_LIST_OVERSIZED;
	size_t fixed = PROTO_DELTA_HEADER_SIZE + (size_t)h->profile_count * PROTO_LIST_PROFILE_SIZE;
	if (len < fixed)
		return PROTO_ERR_LIST_TRUNCATED;
	return list_body_check(len - fixed, h->op_count, PROTO_DELTA_OP_SIZE);
}

int proto_delta_apply_unverified(const struct proto_list *base, const uint8_t *delta,
                                 size_t delta_len, const uint8_t base_hash[PROTO_HASH_LEN],
                                 uint8_t **out, size_t *out_len, struct proto_delta_header *h)
{
	int rc = proto_delta_parse_header(delta, delta_len, h);
	if (rc)
		return rc;
	if (h->sector != base->hdr.sector)
		return PROTO_ERR_LIST_SECTOR;
	if (h->base_version != base->hdr.version ||
	    memcmp(h->base_hash, base_hash, PROTO_HASH_LEN) != 0)
		return PROTO_ERR_DELTA_BASE;

	const uint8_t *profiles = delta + PROTO_DELTA_HEADER_SIZE;
	const uint8_t *ops = profiles + (size_t)h->profile_count * PROTO_LIST_PROFILE_SIZE;

	/* The result must be a list a gate can open and search: check what the delta brings
	 * in (its profile table and its entries) as the list reader would. */
	for (uint32_t i = 0; i < h->profile_count; i++) {
		struct proto_rights_profile p;
		rc = list_profile_decode(profiles + (size_t)i * PROTO_LIST_PROFILE_SIZE, &p);
		if (rc)
			return rc;
	}

	/* First pass over the operations alone: order, op codes, entries, and the resulting
	 * count, so that the output is allocated once at its exact size. */
	uint64_t count = base->hdr.entry_count;
	for (uint32_t j = 0; j < h->op_count; j++) {
		const uint8_t *op = ops + (size_t)j * PROTO_DELTA_OP_SIZE;
		const uint8_t *entry = op + 1;
		if (j > 0 && memcmp(op - PROTO_DELTA_OP_SIZE + 1, entry, PROTO_LIST_KEY_LEN) >= 0)
			return PROTO_ERR_LIST_ORDER;
		switch (op[0]) {
		case DELTA_OP_ADD:
			count++;
			break;
		case DELTA_OP_REMOVE:
			if (count == 0)
				return PROTO_ERR_DELTA_OP;
			count--;
			/* a removal names a key and nothing else: one encoding per delta */
			if (!all_zero(entry + PROTO_LIST_KEY_LEN,
			              PROTO_LIST_ENTRY_SIZE - PROTO_LIST_KEY_LEN))
				return PROTO_ERR_LIST_FIELD;
			continue;
		case DELTA_OP_CHANGE:
			break;
		default:
			return PROTO_ERR_DELTA_OP;
		}
		if (get_be16(entry + 8) >= h->profile_count)
			return PROTO_ERR_LIST_PROFILE;
		if (entry[15] > PROTO_STATUS_MAX)
			return PROTO_ERR_LIST_FIELD;
	}
	if (count != h->result_entry_count)
		return PROTO_ERR_LIST_COUNT;

	size_t len = PROTO_LIST_HEADER_SIZE + (size_t)h->profile_count * PROTO_LIST_PROFILE_SIZE +
	             (size_t)count * PROTO_LIST_ENTRY_SIZE;
	uint8_t *buf = malloc(len);
	if (!buf)
		return PROTO_ERR_NOMEM;

	struct proto_list_header rh = {
	        .format = PROTO_LIST_FORMAT,
	        .sector = h->sector,
	        .version = h->version,
	        .issued_at = h->issued_at,
	        .expires_at = h->expires_at,
	        .entry_count = (uint32_t)count,
	        .profile_count = h->profile_count,
	};
	memcpy(rh.key_id, h->key_id, PROTO_KEY_ID_LEN);
	memcpy(rh.prev_hash, base_hash, PROTO_HASH_LEN);
	list_header_encode(buf, &rh);
	memcpy(buf + PROTO_LIST_HEADER_SIZE, profiles,
	       (size_t)h->profile_count * PROTO_LIST_PROFILE_SIZE);

	/* Merge: base entries and operations are both sorted by key. An op that contradicts
	 * the base is only seen when the merge reaches it, so every write is bounded by the
	 * space the first pass computed: until then, base entries the ops claimed to remove
	 * may still be flowing into the output. */
	uint8_t *w =
	        buf + PROTO_LIST_HEADER_SIZE + (size_t)h->profile_count * PROTO_LIST_PROFILE_SIZE;
	const uint8_t *const w_end = buf + len;
	const uint8_t *e = base->entries;
	const uint8_t *e_end = e + (size_t)base->hdr.entry_count * PROTO_LIST_ENTRY_SIZE;
	rc = PROTO_OK;
	for (uint32_t j = 0; j < h->op_count && rc == 0; j++) {
		const uint8_t *op = ops + (size_t)j * PROTO_DELTA_OP_SIZE;
		const uint8_t *op_entry = op + 1;
		while (e < e_end && memcmp(e, op_entry, PROTO_LIST_KEY_LEN) < 0) {
			if (w_end - w < PROTO_LIST_ENTRY_SIZE)
				break;
			memcpy(w, e, PROTO_LIST_ENTRY_SIZE);
			w += PROTO_LIST_ENTRY_SIZE;
			e += PROTO_LIST_ENTRY_SIZE;
		}
		int present = e < e_end && memcmp(e, op_entry, PROTO_LIST_KEY_LEN) == 0;
		if (e < e_end && memcmp(e, op_entry, PROTO_LIST_KEY_LEN) < 0) {
			rc = PROTO_ERR_DELTA_OP; /* output full before reaching this op */
			break;
		}
		if (op[0] == DELTA_OP_ADD ? present : !present) {
			rc = PROTO_ERR_DELTA_OP;
			break;
		}
		if (op[0] != DELTA_OP_ADD)
			e += PROTO_LIST_ENTRY_SIZE; /* changed or removed: drop the old entry */
		if (op[0] != DELTA_OP_REMOVE) {
			if (w_end - w < PROTO_LIST_ENTRY_SIZE) {
				rc = PROTO_ERR_DELTA_OP;
				break;
			}
			memcpy(w, op_entry, PROTO_LIST_ENTRY_SIZE);
			w += PROTO_LIST_ENTRY_SIZE;
		}
	}
	/* the rest of the base, which must fill the output exactly */
	if (rc == 0 && (size_t)(w_end - w) != (size_t)(e_end - e))
		rc = PROTO_ERR_DELTA_OP;
	if (rc == 0)
		memcpy(w, e, (size_t)(e_end - e));
	if (rc) {
		free(buf);
		return rc;
	}
	*out = buf;
	*out_len = len;
	return PROTO_OK;
}

int proto_delta_apply(struct proto_list *base, const uint8_t *delta, size_t delta_len,
                      const uint8_t *delta_sig, size_t delta_sig_len,
                      const struct proto_list_policy *policy, uint8_t **out, size_t *out_len,
                      uint8_t result_sig[PROTO_SIG_MAX], size_t *result_sig_len)
{
	struct proto_delta_header h;
	if (!base || !policy || !out || !out_len || !result_sig || !result_sig_len)
		return PROTO_ERR_ARG;
	int rc = proto_delta_parse_header(delta, delta_len, &h);
	if (rc)
		return rc;
	if (h.sector != policy->sector)
		return PROTO_ERR_LIST_SECTOR;
	const struct proto_key *key = proto_keyring_find(policy->keys, h.key_id);
	if (!key)
		return PROTO_ERR_LIST_UNKNOWN_KEY;
	rc = proto_verify(key, delta, delta_len, delta_sig, delta_sig_len);
	if (rc)
		return rc;
	if (policy->now >= h.expires_at)
		return PROTO_ERR_LIST_EXPIRED;
	if (h.version <= policy->held_version)
		return PROTO_ERR_LIST_ROLLBACK;

	uint8_t *buf = NULL;
	size_t len = 0;
	rc = proto_delta_apply_unverified(base, delta, delta_len, proto_list_hash(base), &buf, &len,
	                                  &h);
	if (rc)
		return rc;
	uint8_t hash[PROTO_HASH_LEN];
	proto_sha256(buf, len, hash);
	if (memcmp(hash, h.result_hash, PROTO_HASH_LEN) != 0)
		rc = PROTO_ERR_DELTA_RESULT;
	else
		rc = proto_verify_hash(key, hash, h.result_sig, h.result_sig_len);
	if (rc) {
		free(buf);
		return rc;
	}
	memcpy(result_sig, h.result_sig, h.result_sig_len);
	*result_sig_len = h.result_sig_len;
	*out = buf;
	*out_len = len;
	return PROTO_OK;
}

/* Append one operation; ops was sized for the worst case (every entry of both lists). */
static uint8_t *put_op(uint8_t *w, uint8_t code, const uint8_t entry[PROTO_LIST_ENTRY_SIZE])
{
	w[0] = code;
	if (code == DELTA_OP_REMOVE) {
		/* a removal names only the key: the rest of the entry is zero */
		memcpy(w + 1, entry, PROTO_LIST_KEY_LEN);
		memset(w + 1 + PROTO_LIST_KEY_LEN, 0, PROTO_LIST_ENTRY_SIZE - PROTO_LIST_KEY_LEN);
	} else {
		memcpy(w + 1, entry, PROTO_LIST_ENTRY_SIZE);
	}
	return w + PROTO_DELTA_OP_SIZE;
}

int proto_delta_build(struct proto_list *base, struct proto_list *target, const uint8_t *target_sig,
                      size_t target_sig_len, const struct proto_key *signer, uint8_t **out,
                      size_t *out_len)
{
	if (!base || !target || !target_sig || !signer || !out || !out_len || target_sig_len == 0 ||
	    target_sig_len > PROTO_SIG_MAX)
		return PROTO_ERR_ARG;
	const struct proto_list_header *bh = &base->hdr, *th = &target->hdr;
	if (bh->sector != th->sector)
		return PROTO_ERR_LIST_SECTOR;
	if (th->version <= bh->version ||
	    memcmp(th->prev_hash, proto_list_hash(base), PROTO_HASH_LEN) != 0)
		return PROTO_ERR_DELTA_BASE;

	struct proto_delta_header h = {
	        .format = PROTO_LIST_FORMAT,
	        .sector = th->sector,
	        .base_version = bh->version,
	        .version = th->version,
	        .issued_at = th->issued_at,
	        .expires_at = th->expires_at,
	        .result_entry_count = th->entry_count,
	        .profile_count = th->profile_count,
	        .result_sig_len = (uint8_t)target_sig_len,
	};
	proto_key_id(signer, h.key_id);
	memcpy(h.base_hash, proto_list_hash(base), PROTO_HASH_LEN);
	memcpy(h.result_hash, proto_list_hash(target), PROTO_HASH_LEN);
	memcpy(h.result_sig, target_sig, target_sig_len);

	size_t prof_len = (size_t)th->profile_count * PROTO_LIST_PROFILE_SIZE;
	size_t max_ops = (size_t)bh->entry_count + th->entry_count;
	uint8_t *buf = malloc(PROTO_DELTA_HEADER_SIZE + prof_len + max_ops * PROTO_DELTA_OP_SIZE);
	if (!buf)
		return PROTO_ERR_NOMEM;
	memcpy(buf + PROTO_DELTA_HEADER_SIZE, target->profiles, prof_len);
	uint8_t *w = buf + PROTO_DELTA_HEADER_SIZE + prof_len, *ops = w;

	const uint8_t *b = base->entries,
	              *b_end = b + (size_t)bh->entry_count * PROTO_LIST_ENTRY_SIZE;
	const uint8_t *t = target->entries,
	              *t_end = t + (size_t)th->entry_count * PROTO_LIST_ENTRY_SIZE;
	while (b < b_end || t < t_end) {
		int c = b == b_end ? 1 : t == t_end ? -1 : memcmp(b, t, PROTO_LIST_KEY_LEN);
		if (c < 0) {
			w = put_op(w, DELTA_OP_REMOVE, b);
			b += PROTO_LIST_ENTRY_SIZE;
		} else if (c > 0) {
			w = put_op(w, DELTA_OP_ADD, t);
			t += PROTO_LIST_ENTRY_SIZE;
		} else {
			if (memcmp(b, t, PROTO_LIST_ENTRY_SIZE) != 0)
				w = put_op(w, DELTA_OP_CHANGE, t);
			b += PROTO_LIST_ENTRY_SIZE;
			t += PROTO_LIST_ENTRY_SIZE;
		}
	}
	h.op_count = (uint32_t)((size_t)(w - ops) / PROTO_DELTA_OP_SIZE);
	delta_header_encode(buf, &h);
	size_t len = (size_t)(w - buf);
	uint8_t *shrunk = realloc(buf, len);
	*out = shrunk ? shrunk : buf;
	*out_len = len;
	return PROTO_OK;
}
