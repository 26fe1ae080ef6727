/*
 * Rotation statements of the list-signing key and the chain a verifier follows
 * (proto/rotation.h). The text has one spelling: it is parsed, written again from what was
 * parsed, and the two must be the same bytes, so that one signature never covers two
 * readings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/error.h"
#include "proto/rotation.h"

static const char magic[] = "citypass key rotation 1\nkind list\n";

static void hex_id(const uint8_t id[PROTO_KEY_ID_LEN], char out[2 * PROTO_KEY_ID_LEN + 1])
{
	for (size_t i = 0; i < PROTO_KEY_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

int proto_rotation_write(uint32_t number, const struct proto_key *old_key,
                         const struct proto_key *new_key, char *text, size_t cap, size_t *len)
{
	char pem[PROTO_ROTATION_TEXT_MAX];
	char from[2 * PROTO_KEY_ID_LEN + 1], to[2 * PROTO_KEY_ID_LEN + 1];
	uint8_t id[PROTO_KEY_ID_LEN];
	if (!old_key || !new_key || !text || number == 0)
		return PROTO_ERR_ARG;
	int rc = proto_key_public_pem(new_key, pem, sizeof(pem));
	if (rc)
		return rc;
	proto_key_id(old_key, id);
	hex_id(id, from);
	proto_key_id(new_key, id);
	hex_id(id, to);
	const int n = snprintf(text, cap, "%snumber %u\nfrom %s\nto %s\n%s", magic,
	                       (unsigned)number, from, to, pem);
	if (n < 0 || (size_t)n >= cap || (size_t)n > PROTO_ROTATION_TEXT_MAX)
		return PROTO_ERR_BUFSIZE;
	if (len)
		*len = (size_t)n;
	return PROTO_OK;
}

void proto_rotation_clear(struct proto_rotation *r)
{
	if (!r)
		return;
	proto_key_free(r->key);
	memset(r, 0, sizeof(*r));
}

/* "<word> <value>\n" at *p: the value's bounds, or NULL when the line is not that. */
static const char *line_value(const char **p, const char *end, const char *word, size_t *vlen)
{
	const size_t wl = strlen(word);
	if ((size_t)(end - *p) < wl + 2 || memcmp(*p, word, wl) != 0 || (*p)[wl] != ' ')
		return NULL;
	const char *v = *p + wl + 1, *nl = memchr(v, '\n', (size_t)(end - v));
	if (!nl)
		return NULL;
	*vlen = (size_t)(nl - v);
	*p = nl + 1;
	return v;
}

static int parse_hex_id(const char *v, size_t n, uint8_t id[PROTO_KEY_ID_LEN])
{
	if (n != 2 * PROTO_KEY_ID_LEN)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char ch = v[i];
		const int d = ch >= '0' && ch <= '9'   ? ch - '0'
		              : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		                                       : -1;
		if (d < 0)
			return -1;
		if (i % 2 == 0)
			id[i / 2] = (uint8_t)(d << 4);
		else
			id[i / 2] |= (uint8_t)d;
	}
	return 0;
}

int proto_rotation_parse(const uint8_t *text, size_t len, struct proto_rotation *out)
{
	if (!text || !out)
		return PROTO_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if (len > PROTO_ROTATION_TEXT_MAX || len < sizeof(magic) - 1 ||
	    memcmp(text, magic, sizeof(magic) - 1) != 0 || memchr(text, 0, len))
		return PROTO_ERR_ROTATION_FORMAT;
	const char *p = (const char *)text + sizeof(magic) - 1, *end = (const char *)text + len;
	size_t n = 0;
	const char *v = line_value(&p, end, "number", &n);
	/* decimal, no sign, no leading zero, at most 9 digits: the writer's one spelling */
	if (!v || n == 0 || n > 9 || v[0] == '0')
		return PROTO_ERR_ROTATION_FORMAT;
	uint32_t number = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return PROTO_ERR_ROTATION_FORMAT;
		number = number * 10 + (uint32_t)(v[i] - '0');
	}
	v = line_value(&p, end, "from", &n);
	if (!v || parse_hex_id(v, n, out->from) != 0)
		return PROTO_ERR_ROTATION_FORMAT;
	v = line_value(&p, end, "to", &n);
	if (!v || parse_hex_id(v, n, out->to) != 0)
		return PROTO_ERR_ROTATION_FORMAT;
	if (memcmp(out->from, out->to, PROTO_KEY_ID_LEN) == 0)
		return PROTO_ERR_ROTATION_FORMAT;
	int rc = proto_key_parse_public(&out->key, (const uint8_t *)p, (size_t)(end - p));
	if (rc) {
		memset(out, 0, sizeof(*out));
		return PROTO_ERR_ROTATION_FORMAT;
	}
	out->number = number;
	uint8_t id[PROTO_KEY_ID_LEN];
	proto_key_id(out->key, id);
	/* the one spelling: what we would write from these values, byte for byte */
	char again[PROTO_ROTATION_TEXT_MAX + 1];
	char from[2 * PROTO_KEY_ID_LEN + 1], to[2 * PROTO_KEY_ID_LEN + 1];
	char pem[PROTO_ROTATION_TEXT_MAX];
	hex_id(out->from, from);
	hex_id(out->to, to);
	rc = proto_key_public_pem(out->key, pem, sizeof(pem));
	const int w = rc ? -1
	                 : snprintf(again, sizeof(again), "%snumber %u\nfrom %s\nto %s\n%s", magic,
	                            (unsigned)number, from, to, pem);
	if (memcmp(id, out->to, PROTO_KEY_ID_LEN) != 0 || w < 0 || (size_t)w != len ||
	    memcmp(again, text, len) != 0) {
		proto_rotation_clear(out);
		return PROTO_ERR_ROTATION_FORMAT;
	}
	return PROTO_OK;
}

/* ---- the chain ----------------------------------------------------------------------- */

struct link {
	struct proto_key *key;
	uint32_t number; /* of the statement that brought it in; 0 for the root */
	/* that statement as followed (empty for the root) */
	uint8_t text[PROTO_ROTATION_TEXT_MAX];
	uint8_t old_sig[PROTO_SIG_MAX], new_sig[PROTO_SIG_MAX];
	struct proto_rotation_signed as_signed;
};

struct proto_key_chain {
	size_t n;
	struct link links[PROTO_KEY_CHAIN_MAX + 1];
};

int proto_key_chain_new(struct proto_key_chain **out, struct proto_key *root)
{
	if (!out || !root) {
		proto_key_free(root);
		return PROTO_ERR_ARG;
	}
	struct proto_key_chain *c = calloc(1, sizeof(*c));
	if (!c) {
		proto_key_free(root);
		return PROTO_ERR_NOMEM;
	}
	c->links[0].key = root;
	c->n = 1;
	*out = c;
	return PROTO_OK;
}

void proto_key_chain_free(struct proto_key_chain *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		proto_key_free(c->links[i].key);
	free(c);
}

size_t proto_key_chain_length(const struct proto_key_chain *c)
{
	return c ? c->n : 0;
}

const struct proto_key *proto_key_chain_key(const struct proto_key_chain *c, size_t i)
{
	return c && i < c->n ? c->links[i].key : NULL;
}

const struct proto_rotation_signed *proto_key_chain_statement(const struct proto_key_chain *c,
                                                              size_t i)
{
	return c && i >= 1 && i < c->n ? &c->links[i].as_signed : NULL;
}

static int chain_holds(const struct proto_key_chain *c, const uint8_t id[PROTO_KEY_ID_LEN])
{
	uint8_t held[PROTO_KEY_ID_LEN];
	for (size_t i = 0; i < c->n; i++) {
		proto_key_id(c->links[i].key, held);
		if (memcmp(held, id, PROTO_KEY_ID_LEN) == 0)
			return 1;
	}
	return 0;
}

/* Follow one statement from the chain's newest key. */
static int follow_one(struct proto_key_chain *c, const struct proto_rotation_signed *s)
{
	struct proto_rotation r;
	uint8_t head[PROTO_KEY_ID_LEN];
	if (s->old_sig_len > PROTO_SIG_MAX || s->new_sig_len > PROTO_SIG_MAX)
		return PROTO_ERR_ROTATION_SIGNATURE;
	int rc = proto_rotation_parse(s->text, s->text_len, &r);
	if (rc)
		return rc;
	const struct link *last = &c->links[c->n - 1];
	proto_key_id(last->key, head);
	if (memcmp(r.from, head, PROTO_KEY_ID_LEN) != 0)
		rc = PROTO_ERR_ROTATION_UNANNOUNCED;
	/* the root's own number is unknown (0); after it, every statement is the next one */
	else if (last->number != 0 && r.number != last->number + 1)
		rc = PROTO_ERR_ROTATION_NUMBER;
	else if (c->n == PROTO_KEY_CHAIN_MAX + 1)
		rc = PROTO_ERR_ROTATION_NUMBER;
	else if (proto_verify(last->key, s->text, s->text_len, s->old_sig, s->old_sig_len) != 0 ||
	         proto_verify(r.key, s->text, s->text_len, s->new_sig, s->new_sig_len) != 0)
		rc = PROTO_ERR_ROTATION_SIGNATURE;
	if (rc) {
		proto_rotation_clear(&r);
		return rc;
	}
	struct link *l = &c->links[c->n];
	memset(l, 0, sizeof(*l));
	l->key = r.key;
	l->number = r.number;
	memcpy(l->text, s->text, s->text_len);
	memcpy(l->old_sig, s->old_sig, s->old_sig_len);
	memcpy(l->new_sig, s->new_sig, s->new_sig_len);
	l->as_signed = (struct proto_rotation_signed){
	        .text = l->text,
	        .text_len = s->text_len,
	        .old_sig = l->old_sig,
	        .old_sig_len = s->old_sig_len,
	        .new_sig = l->new_sig,
	        .new_sig_len = s->new_sig_len,
	};
	c->n++;
	return PROTO_OK;
}

int proto_key_chain_follow(struct proto_key_chain *c, const struct proto_rotation_signed *s,
                           size_t n, size_t *added)
{
	if (added)
		*added = 0;
	if (!c || (n && !s))
		return PROTO_ERR_ARG;
	/* skip up to the last statement announcing a key held: what came before it is the
	 * history of a key this chain already trusts */
	size_t from = 0;
	for (size_t i = 0; i < n; i++) {
		struct proto_rotation r;
		if (proto_rotation_parse(s[i].text, s[i].text_len, &r) != 0)
			continue;
		if (chain_holds(c, r.to))
			from = i + 1;
		proto_rotation_clear(&r);
	}
	for (size_t i = from; i < n; i++) {
		int rc = follow_one(c, &s[i]);
		if (rc)
			return rc;
		if (added)
			(*added)++;
	}
	return PROTO_OK;
}
