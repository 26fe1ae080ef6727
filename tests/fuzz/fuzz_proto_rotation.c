/*
 * fuzz_proto_rotation.c — the list key's rotation statements on hostile bytes: the chain a
 * gate keeps on disk and receives over the link (a protobuf KeyChain), followed from a
 * root key, and the same bytes parsed as one statement's text.
 *
 * Beyond "no crash, no leak": a chain never grows by a statement it refused, and every key
 * it holds after the root came from a statement that parses and names that key. The seeds
 * are a real chain of two rotations from the root this process made (with `make fuzz` the
 * seed writer is another process: its chains start from another root and exercise the
 * refusals only).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "citypass.pb-c.h"
#include "fuzz.h"
#include "proto/error.h"
#include "proto/rotation.h"

static struct proto_key *root;
static char root_pem[512];

static void need_root(void)
{
	if (root)
		return;
	if (proto_key_generate(&root) != 0 ||
	    proto_key_public_pem(root, root_pem, sizeof(root_pem)) != 0)
		abort();
}

static void check_chain(const struct proto_key_chain *c, size_t added)
{
	if (proto_key_chain_length(c) != added + 1)
		abort();
	for (size_t i = 1; i < proto_key_chain_length(c); i++) {
		const struct proto_rotation_signed *s = proto_key_chain_statement(c, i);
		struct proto_rotation r;
		uint8_t id[PROTO_KEY_ID_LEN];
		if (!s || proto_rotation_parse(s->text, s->text_len, &r) != 0)
			abort();
		proto_key_id(proto_key_chain_key(c, i), id);
		if (memcmp(id, r.to, PROTO_KEY_ID_LEN) != 0)
			abort();
		proto_rotation_clear(&r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	need_root();
	struct proto_rotation r;
	if (proto_rotation_parse(data, size, &r) == 0)
		proto_rotation_clear(&r);

	Citypass__KeyChain *msg = citypass__key_chain__unpack(NULL, size, data);
	if (!msg)
		return 0;
	struct proto_key *pub = NULL;
	struct proto_key_chain *c = NULL;
	struct proto_rotation_signed *s = calloc(msg->n_statements + 1, sizeof(*s));
	if (s && proto_key_parse_public(&pub, (const uint8_t *)root_pem, strlen(root_pem)) == 0 &&
	    proto_key_chain_new(&c, pub) == 0) {
		for (size_t i = 0; i < msg->n_statements; i++) {
			const Citypass__KeyStatement *m = msg->statements[i];
			s[i] = (struct proto_rotation_signed){
			        m->text.data,         m->text.len,           m->old_signature.data,
			        m->old_signature.len, m->new_signature.data, m->new_signature.len};
		}
		size_t added = 0;
		(void)proto_key_chain_follow(c, s, msg->n_statements, &added);
		check_chain(c, added);
	}
	proto_key_chain_free(c);
	free(s);
	citypass__key_chain__free_unpacked(msg, NULL);
	return 0;
}

/* One statement from `from` to `to`, signed by both, into m (buffers malloc'd). */
static void seed_statement(Citypass__KeyStatement *m, uint32_t n, const struct proto_key *from,
                           const struct proto_key *to)
{
	char *text = malloc(PROTO_ROTATION_TEXT_MAX + 1);
	uint8_t *a = malloc(PROTO_SIG_MAX), *b = malloc(PROTO_SIG_MAX);
	size_t len = 0, al = 0, bl = 0;
	if (!text || !a || !b ||
	    proto_rotation_write(n, from, to, text, PROTO_ROTATION_TEXT_MAX + 1, &len) != 0 ||
	    proto_sign(from, (uint8_t *)text, len, a, &al) != 0 ||
	    proto_sign(to, (uint8_t *)text, len, b, &bl) != 0)
		abort();
	citypass__key_statement__init(m);
	m->text.data = (uint8_t *)text;
	m->text.len = len;
	m->old_signature.data = a;
	m->old_signature.len = al;
	m->new_signature.data = b;
	m->new_signature.len = bl;
}

void fuzz_seeds(fuzz_emit_fn emit, void *ctx)
{
	need_root();
	struct proto_key *k1 = NULL, *k2 = NULL;
	if (proto_key_generate(&k1) != 0 || proto_key_generate(&k2) != 0)
		abort();
	Citypass__KeyStatement st[2], *ptrs[2] = {&st[0], &st[1]};
	seed_statement(&st[0], 1, root, k1);
	seed_statement(&st[1], 2, k1, k2);
	Citypass__KeyChain msg = CITYPASS__KEY_CHAIN__INIT;
	msg.n_statements = 2;
	msg.statements = ptrs;
	size_t len = citypass__key_chain__get_packed_size(&msg);
	uint8_t *buf = malloc(len);
	if (!buf)
		abort();
	citypass__key_chain__pack(&msg, buf);
	emit(buf, len, ctx);
	msg.n_statements = 1;
	len = citypass__key_chain__pack(&msg, buf);
	emit(buf, len, ctx);
	emit(st[1].text.data, st[1].text.len, ctx);
	free(buf);
	for (int i = 0; i < 2; i++) {
		free(st[i].text.data);
		free(st[i].old_signature.data);
		free(st[i].new_signature.data);
	}
	proto_key_free(k1);
	proto_key_free(k2);
}
