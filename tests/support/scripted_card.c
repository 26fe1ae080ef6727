/*
 * scripted_card.c — see scripted_card.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cardlib/error.h"
#include "scripted_card.h"

/* ---- hex ------------------------------------------------------------------------------- */

size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;
	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		unsigned v;
		assert_true(s[1] != '\0');
		assert_int_equal(sscanf(s, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

void assert_hex(const uint8_t *got, size_t len, const char *want)
{
	uint8_t w[512];
	const size_t n = unhex(want, w);
	assert_int_equal(len, n);
	assert_memory_equal(got, w, n);
}

/* ---- a scripted card --------------------------------------------------------------------- */

static int script_info(void *ctx, struct cardlib_target_info *info)
{
	*info = ((struct script *)ctx)->info;
	return 1;
}

static int script_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap)
{
	struct script *s = ctx;
	if (s->next >= s->n) {
		if (!s->repeat_last || s->n == 0)
			return CARDLIB_ERR_TIMEOUT;
		s->next = s->n - 1;
	}
	const size_t i = s->next++;
	if (s->expect[i])
		assert_hex(tx, tx_len, s->expect[i]);
	uint8_t buf[512];
	const size_t n = unhex(s->answer[i], buf);
	assert_true(n <= rx_cap);
	memcpy(rx, buf, n);
	return (int)n;
}

struct cardlib_loopback_peer script_peer(struct script *s)
{
	const struct cardlib_loopback_peer peer = {
	        .info = script_info, .exchange = script_exchange, .ctx = s};
	return peer;
}

void desfire_info(struct cardlib_target_info *info)
{
	memset(info, 0, sizeof(*info));
	static const uint8_t uid[7] = {0x04, 0x5a, 0x11, 0x22, 0x33, 0x44, 0x80};
	memcpy(info->uid, uid, 7);
	info->uid_len = 7;
	info->atqa[0] = 0x03;
	info->atqa[1] = 0x44;
	info->sak = 0x20;
	static const uint8_t ats[] = {0x75, 0x77, 0x81, 0x02, 0x80};
	memcpy(info->ats, ats, sizeof(ats));
	info->ats_len = sizeof(ats);
}

void scripted_open(struct scripted *t)
{
	if (t->s.info.sak == 0 && t->s.info.uid_len == 0)
		desfire_info(&t->s.info);
	const struct cardlib_loopback_peer peer = script_peer(&t->s);
	assert_int_equal(cardlib_loopback_new(&t->r, &peer, 0), 0);
	struct cardlib_target_info info;
	assert_int_equal(cardlib_reader_select(t->r, &info), 1);
	assert_int_equal(cardlib_desfire_open(&t->d, t->r, &info), 0);
}

void scripted_close(struct scripted *t)
{
	cardlib_desfire_close(t->d);
	cardlib_reader_free(t->r);
}
