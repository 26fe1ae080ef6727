/*
 * Rotation of the list-signing key (proto/rotation.h): the statement's one spelling, and the
 * chain a gate follows — a key comes in only when announced by the newest key held and
 * signed by itself, numbers only rise. The statements are checked with openssl, an
 * independent verifier, in tests/scenarios/list_key_rotation.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/error.h"
#include "proto/rotation.h"
#include "proto/sign.h"

/* A signed statement kept in the test's own buffers. */
struct stmt {
	char text[PROTO_ROTATION_TEXT_MAX + 1];
	size_t len;
	uint8_t old_sig[PROTO_SIG_MAX], new_sig[PROTO_SIG_MAX];
	size_t old_len, new_len;
	struct proto_rotation_signed s;
};

static struct proto_key *gen(void)
{
	struct proto_key *k = NULL;
	assert_int_equal(proto_key_generate(&k), 0);
	return k;
}

/* The public half of k as a key of its own (what a gate holds). */
static struct proto_key *pub_of(const struct proto_key *k)
{
	char pem[512];
	struct proto_key *p = NULL;
	assert_int_equal(proto_key_public_pem(k, pem, sizeof(pem)), 0);
	assert_int_equal(proto_key_parse_public(&p, (const uint8_t *)pem, strlen(pem)), 0);
	return p;
}

/* Statement `number` from `from` to `to`, signed by old_signer and new_signer. */
static void make(struct stmt *st, uint32_t number, const struct proto_key *from,
                 const struct proto_key *to, const struct proto_key *old_signer,
                 const struct proto_key *new_signer)
{
	assert_int_equal(
	        proto_rotation_write(number, from, to, st->text, sizeof(st->text), &st->len), 0);
	assert_int_equal(proto_sign(old_signer, (const uint8_t *)st->text, st->len, st->old_sig,
	                            &st->old_len),
	                 0);
	assert_int_equal(proto_sign(new_signer, (const uint8_t *)st->text, st->len, st->new_sig,
	                            &st->new_len),
	                 0);
	st->s = (struct proto_rotation_signed){(const uint8_t *)st->text,
	                                       st->len,
	                                       st->old_sig,
	                                       st->old_len,
	                                       st->new_sig,
	                                       st->new_len};
}

static void head_is(const struct proto_key_chain *c, const struct proto_key *want)
{
	uint8_t a[PROTO_KEY_ID_LEN], b[PROTO_KEY_ID_LEN];
	proto_key_id(proto_key_chain_key(c, proto_key_chain_length(c) - 1), a);
	proto_key_id(want, b);
	assert_memory_equal(a, b, PROTO_KEY_ID_LEN);
}

static void test_statement_text_and_parse(void **state)
{
	(void)state;
	struct proto_key *k0 = gen(), *k1 = gen();
	struct stmt st;
	make(&st, 7, k0, k1, k0, k1);
	uint8_t id0[PROTO_KEY_ID_LEN], id1[PROTO_KEY_ID_LEN];
	proto_key_id(k0, id0);
	proto_key_id(k1, id1);
	char want[128];
	snprintf(want, sizeof(want), "citypass key rotation 1\nkind list\nnumber 7\nfrom ");
	assert_memory_equal(st.text, want, strlen(want));
	assert_non_null(strstr(st.text, "\n-----BEGIN PUBLIC KEY-----\n"));
	assert_int_equal(st.text[st.len - 1], '\n');

	struct proto_rotation r;
	assert_int_equal(proto_rotation_parse((const uint8_t *)st.text, st.len, &r), 0);
	assert_int_equal(r.number, 7);
	assert_memory_equal(r.from, id0, PROTO_KEY_ID_LEN);
	assert_memory_equal(r.to, id1, PROTO_KEY_ID_LEN);
	uint8_t got[PROTO_KEY_ID_LEN];
	proto_key_id(r.key, got);
	assert_memory_equal(got, id1, PROTO_KEY_ID_LEN);
	proto_rotation_clear(&r);
	proto_key_free(k0);
	proto_key_free(k1);
}

/* Every other spelling of the same statement is refused: one text, one meaning. */
static void test_statement_other_spellings_refused(void **state)
{
	(void)state;
	struct proto_key *k0 = gen(), *k1 = gen(), *k2 = gen();
	struct stmt st;
	make(&st, 12, k0, k1, k0, k1);
	struct proto_rotation r;
	char t[PROTO_ROTATION_TEXT_MAX + 2];

	/* a byte more, a byte less */
	memcpy(t, st.text, st.len);
	t[st.len] = '\n';
	assert_int_equal(proto_rotation_parse((uint8_t *)t, st.len + 1, &r),
	                 PROTO_ERR_ROTATION_FORMAT);
	assert_int_equal(proto_rotation_parse((uint8_t *)t, st.len - 1, &r),
	                 PROTO_ERR_ROTATION_FORMAT);
	/* upper-case hex in the from line */
	memcpy(t, st.text, st.len);
	char *from = strstr(t, "from ") + 5;
	for (int i = 0; i < 16; i++)
		if (from[i] >= 'a' && from[i] <= 'f') {
			from[i] = (char)(from[i] - 'a' + 'A');
			assert_int_equal(proto_rotation_parse((uint8_t *)t, st.len, &r),
			                 PROTO_ERR_ROTATION_FORMAT);
			break;
		}
	/* a leading zero in the number ("number 012" for "number 12" would be one byte more:
	 * compare with the same length, "number 09" against a statement numbered 9) */
	struct stmt nine;
	make(&nine, 9, k0, k1, k0, k1);
	char z[PROTO_ROTATION_TEXT_MAX + 2];
	const char *num = strstr(nine.text, "number 9\n");
	assert_non_null(num);
	size_t at = (size_t)(num - nine.text) + 7;
	memcpy(z, nine.text, at);
	z[at] = '0';
	memcpy(z + at + 1, nine.text + at, nine.len - at);
	assert_int_equal(proto_rotation_parse((uint8_t *)z, nine.len + 1, &r),
	                 PROTO_ERR_ROTATION_FORMAT);
	/* a `to` line that is not the key carried: the key of another statement spliced in */
	struct stmt other;
	make(&other, 12, k0, k2, k0, k2);
	const char *pem_a = strstr(st.text, "-----BEGIN"),
	           *pem_b = strstr(other.text, "-----BEGIN");
	size_t head = (size_t)(pem_a - st.text);
	memcpy(t, st.text, head);
	memcpy(t + head, pem_b, strlen(pem_b));
	assert_int_equal(proto_rotation_parse((uint8_t *)t, head + strlen(pem_b), &r),
	                 PROTO_ERR_ROTATION_FORMAT);
	/* a NUL inside, a key from itself to itself */
	memcpy(t, st.text, st.len);
	t[30] = 0;
	assert_int_equal(proto_rotation_parse((uint8_t *)t, st.len, &r), PROTO_ERR_ROTATION_FORMAT);
	char self[PROTO_ROTATION_TEXT_MAX + 1];
	size_t self_len = 0;
	assert_int_equal(proto_rotation_write(1, k1, k1, self, sizeof(self), &self_len), 0);
	assert_int_equal(proto_rotation_parse((uint8_t *)self, self_len, &r),
	                 PROTO_ERR_ROTATION_FORMAT);
	proto_key_free(k0);
	proto_key_free(k1);
	proto_key_free(k2);
}

/* A gate rooted at the first key follows two rotations; one enrolled after the first
 * rotation (rooted at the second key) skips the history and follows the second. */
static void test_chain_follows_rotations(void **state)
{
	(void)state;
	struct proto_key *k0 = gen(), *k1 = gen(), *k2 = gen();
	struct stmt s[2];
	make(&s[0], 1, k0, k1, k0, k1);
	make(&s[1], 2, k1, k2, k1, k2);
	struct proto_rotation_signed v[2] = {s[0].s, s[1].s};

	struct proto_key_chain *c = NULL;
	size_t added = 9;
	assert_int_equal(proto_key_chain_new(&c, pub_of(k0)), 0);
	assert_int_equal(proto_key_chain_follow(c, v, 2, &added), 0);
	assert_int_equal(added, 2);
	assert_int_equal(proto_key_chain_length(c), 3);
	head_is(c, k2);
	/* what was followed is kept as it came, to be written down by the gate */
	const struct proto_rotation_signed *kept = proto_key_chain_statement(c, 2);
	assert_non_null(kept);
	assert_int_equal(kept->text_len, s[1].len);
	assert_memory_equal(kept->text, s[1].text, s[1].len);
	/* the same chain again adds nothing */
	assert_int_equal(proto_key_chain_follow(c, v, 2, &added), 0);
	assert_int_equal(added, 0);
	proto_key_chain_free(c);

	assert_int_equal(proto_key_chain_new(&c, pub_of(k1)), 0);
	assert_int_equal(proto_key_chain_follow(c, v, 2, &added), 0);
	assert_int_equal(added, 1);
	head_is(c, k2);
	proto_key_chain_free(c);
	proto_key_free(k0);
	proto_key_free(k1);
	proto_key_free(k2);
}

/* A key nobody trusted announced — an attacker's key signing for itself, or a stolen old
 * key naming a successor after the chain moved on — never comes in. */
static void test_chain_refuses_unannounced(void **state)
{
	(void)state;
	struct proto_key *k0 = gen(), *k1 = gen(), *ka = gen(), *kb = gen();
	struct proto_key_chain *c = NULL;
	size_t added = 0;
	assert_int_equal(proto_key_chain_new(&c, pub_of(k0)), 0);

	struct stmt forged;
	make(&forged, 1, ka, kb, ka, kb);
	assert_int_equal(proto_key_chain_follow(c, &forged.s, 1, &added),
	                 PROTO_ERR_ROTATION_UNANNOUNCED);
	assert_int_equal(proto_key_chain_length(c), 1);

	struct stmt s1;
	make(&s1, 1, k0, k1, k0, k1);
	assert_int_equal(proto_key_chain_follow(c, &s1.s, 1, &added), 0);
	/* the old key k0, stolen, announces the attacker's key: k1 is the newest, refused */
	struct stmt stolen;
	make(&stolen, 2, k0, ka, k0, ka);
	assert_int_equal(proto_key_chain_follow(c, &stolen.s, 1, &added),
	                 PROTO_ERR_ROTATION_UNANNOUNCED);
	head_is(c, k1);
	proto_key_chain_free(c);
	proto_key_free(k0);
	proto_key_free(k1);
	proto_key_free(ka);
	proto_key_free(kb);
}

/* Both signatures are needed, by the right keys; numbers follow one another. */
static void test_chain_signatures_and_numbers(void **state)
{
	(void)state;
	struct proto_key *k0 = gen(), *k1 = gen(), *k2 = gen(), *kx = gen();
	struct proto_key_chain *c = NULL;
	size_t added = 0;
	assert_int_equal(proto_key_chain_new(&c, pub_of(k0)), 0);

	struct stmt st;
	make(&st, 1, k0, k1, kx, k1); /* "announced" by a key that is not k0 */
	assert_int_equal(proto_key_chain_follow(c, &st.s, 1, &added), PROTO_ERR_ROTATION_SIGNATURE);
	make(&st, 1, k0, k1, k0, kx); /* the new key did not sign */
	assert_int_equal(proto_key_chain_follow(c, &st.s, 1, &added), PROTO_ERR_ROTATION_SIGNATURE);
	make(&st, 1, k0, k1, k0, k1);
	st.old_sig[st.old_len - 1] ^= 1;
	assert_int_equal(proto_key_chain_follow(c, &st.s, 1, &added), PROTO_ERR_ROTATION_SIGNATURE);
	assert_int_equal(proto_key_chain_length(c), 1);

	make(&st, 5, k0, k1, k0, k1); /* the root's number is unknown: any number starts */
	assert_int_equal(proto_key_chain_follow(c, &st.s, 1, &added), 0);
	struct stmt next;
	make(&next, 7, k1, k2, k1, k2); /* 6 expected */
	assert_int_equal(proto_key_chain_follow(c, &next.s, 1, &added), PROTO_ERR_ROTATION_NUMBER);
	make(&next, 6, k1, k2, k1, k2);
	assert_int_equal(proto_key_chain_follow(c, &next.s, 1, &added), 0);
	head_is(c, k2);
	proto_key_chain_free(c);
	proto_key_free(k0);
	proto_key_free(k1);
	proto_key_free(k2);
	proto_key_free(kx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_statement_text_and_parse),
	        cmocka_unit_test(test_statement_other_spellings_refused),
	        cmocka_unit_test(test_chain_follows_rotations),
	        cmocka_unit_test(test_chain_refuses_unannounced),
	        cmocka_unit_test(test_chain_signatures_and_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
