#include <string.h>

#include "cardlib/error.h"
#include "hil_field.h"

void hil_field_info_to_cardlib(const struct hil_target_info *hi, struct cardlib_target_info *info)
{
	memset(info, 0, sizeof(*info));
	memcpy(info->uid, hi->uid, hi->uid_len);
	info->uid_len = hi->uid_len;
	memcpy(info->atqa, hi->atqa, 2);
	info->sak = hi->sak;
	if (hi->ats_len > 1) {
		memcpy(info->ats, hi->ats + 1, (size_t)hi->ats_len - 1);
		info->ats_len = (size_t)hi->ats_len - 1;
	}
}

static void field_release(void *ctx)
{
	struct hil_field *f = ctx;
	if (f->target.ops && f->active && f->target.ops->deactivate)
		f->target.ops->deactivate(f->target.ctx);
	f->active = 0;
}

/* A selection: the card leaves the field's active state and is activated anew, as a real
 * reader's reselect does. */
static int field_info(void *ctx, struct cardlib_target_info *info)
{
	struct hil_field *f = ctx;
	if (!f->target.ops)
		return 0;
	field_release(f);
	struct hil_target_info hi;
	memset(&hi, 0, sizeof(hi));
	f->target.ops->info(f->target.ctx, &hi);
	hil_field_info_to_cardlib(&hi, info);
	if (f->target.ops->activate)
		f->target.ops->activate(f->target.ctx);
	f->active = 1;
	return 1;
}

static int field_exchange(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap)
{
	struct hil_field *f = ctx;
	if (!f->target.ops || !f->active)
		return CARDLIB_ERR_NO_CARD;
	int n = f->target.ops->transceive(f->target.ctx, tx, tx_len, rx, rx_cap);
	if (n == HIL_TARGET_SILENT)
		return CARDLIB_ERR_TIMEOUT;
	if (n < 0)
		return CARDLIB_ERR_NO_CARD;
	if (f->on_answer)
		f->on_answer(f->on_answer_ctx, rx, (size_t)n);
	return n;
}

struct cardlib_loopback_peer hil_field_peer(struct hil_field *f)
{
	struct cardlib_loopback_peer peer = {
	        .info = field_info, .exchange = field_exchange, .release = field_release, .ctx = f};
	return peer;
}

void hil_field_clear(struct hil_field *f)
{
	if (f->target.ops) {
		field_release(f);
		if (f->target.ops->destroy)
			f->target.ops->destroy(f->target.ctx);
	}
	memset(&f->target, 0, sizeof(f->target));
	f->active = 0;
}

void hil_field_place(struct hil_field *f, struct hil_target target)
{
	hil_field_clear(f);
	f->target = target;
}
