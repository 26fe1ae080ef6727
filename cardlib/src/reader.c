/*
 * The reader ops wrappers (statistics) and the loopback backend used by unit tests.
 */
#include <stdlib.h>
#include <string.h>

#include "cardlib/error.h"
#include "cardlib/reader.h"

int cardlib_reader_select(struct cardlib_reader *r, struct cardlib_target_info *info)
{
	if (!r || !info)
		return CARDLIB_ERR_ARG;
	memset(info, 0, sizeof(*info));
	r->stats.selects++;
	return r->ops->select(r->ctx, info);
}

int cardlib_reader_wait(struct cardlib_reader *r, struct cardlib_target_info *info, int timeout_ms)
{
	if (!r || !info || timeout_ms < 0)
		return CARDLIB_ERR_ARG;
	if (!r->ops->wait)
		return cardlib_reader_select(r, info);
	memset(info, 0, sizeof(*info));
	r->stats.selects++;
	return r->ops->wait(r->ctx, info, timeout_ms);
}

int cardlib_reader_transceive(struct cardlib_reader *r, const uint8_t *tx, size_t tx_len,
                              uint8_t *rx, size_t rx_cap, int timeout_ms)
{
	if (!r || (!tx && tx_len) || !rx || tx_len > CARDLIB_FRAME_MAX)
		return CARDLIB_ERR_ARG;
	r->stats.exchanges++;
	r->stats.tx_bytes += tx_len;
	int n = r->ops->transceive(r->ctx, tx, tx_len, rx, rx_cap, timeout_ms);
	if (n > (int)rx_cap) /* a backend that overran our buffer is not to be believed */
		return CARDLIB_ERR_IO;
	if (n > 0)
		r->stats.rx_bytes += (unsigned long)n;
	return n;
}

void cardlib_reader_release(struct cardlib_reader *r)
{
	if (r && r->ops->release)
		r->ops->release(r->ctx);
}

int64_t cardlib_reader_now_ms(struct cardlib_reader *r)
{
	return r->ops->now_ms(r->ctx);
}

int64_t cardlib_reader_wall_time(struct cardlib_reader *r)
{
	return r->ops->wall_time(r->ctx);
}

void cardlib_reader_reset_stats(struct cardlib_reader *r)
{
	memset(&r->stats, 0, sizeof(r->stats));
}

void cardlib_reader_free(struct cardlib_reader *r)
{
	if (!r)
		return;
	if (r->ops->destroy)
		r->ops->destroy(r->ctx);
	free(r);
}

/* --- loopback ------------------------------------------------------------------------- */

struct loopback {
	struct cardlib_loopback_peer peer;
	int64_t mono_ms;
	int64_t wall;
};

static int lb_select(void *ctx, struct cardlib_target_info *info)
{
	struct loopback *lb = ctx;
	return lb->peer.info(lb->peer.ctx, info) > 0 ? 1 : 0;
}

static int lb_transceive(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap,
                         int timeout_ms)
{
	struct loopback *lb = ctx;
	(void)timeout_ms;
	return lb->peer.exchange(lb->peer.ctx, tx, tx_len, rx, rx_cap);
}

static void lb_release(void *ctx)
{
	struct loopback *lb = ctx;
	if (lb->peer.release)
		lb->peer.release(lb->peer.ctx);
}

static int64_t lb_now_ms(void *ctx)
{
	return ((struct loopback *)ctx)->mono_ms;
}

static int64_t lb_wall_time(void *ctx)
{
	struct loopback *lb = ctx;
	return lb->wall + lb->mono_ms / 1000;
}

static const struct cardlib_reader_ops loopback_ops = {
        .select = lb_select,
        .transceive = lb_transceive,
        .release = lb_release,
        .now_ms = lb_now_ms,
        .wall_time = lb_wall_time,
        .destroy = free,
};

int cardlib_loopback_new(struct cardlib_reader **out, const struct cardlib_loopback_peer *peer,
                         int64_t wall_time)
{
	if (!out || !peer || !peer->info || !peer->exchange)
		return CARDLIB_ERR_ARG;
	struct cardlib_reader *r = calloc(1, sizeof(*r));
	struct loopback *lb = calloc(1, sizeof(*lb));
	if (!r || !lb) {
		free(r);
		free(lb);
		return CARDLIB_ERR_NOMEM;
	}
	lb->peer = *peer;
	lb->wall = wall_time;
	r->ops = &loopback_ops;
	r->ctx = lb;
	*out = r;
	return CARDLIB_OK;
}

void cardlib_loopback_advance(struct cardlib_reader *r, int64_t ms)
{
	if (r && r->ops == &loopback_ops)
		((struct loopback *)r->ctx)->mono_ms += ms;
}
