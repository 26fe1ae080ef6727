/*
 * sync_validate.c — what a gate may report, checked before anything is stored (issue 10,
 * items 5 and 6; docs/sync-server.md "What a gate may report").
 *
 * The framing layer (proto/src/frame.c) checks shapes: streams not mixed, sequences rising,
 * quarter hours multiples of 900, consumption pseudonyms 8 bytes and counts >= 1. This is
 * the second step, the domain of every numeric field for the device that sent it:
 *   statistics  — the device's own site, gate and sector; a known outcome and reason, and
 *                 the two consistent (a grant has reason 0, a refusal does not); a product
 *                 the sector knows (0 only for a refusal: no pass, no product); a quarter
 *                 hour no earlier than a day before the device was enrolled and no later
 *                 than a day after the server's clock;
 *   consumption — the device's sector; one use per event (a gate witnesses one tap at a
 *                 time); a pseudonym that is a pass of the sector holding a counted right of
 *                 that product; a period no later than the current one of that right.
 * A batch failing any check is refused whole (the connection is closed as for bad input)
 * and nothing of it is stored, so a smuggled identifier never reaches the database.
 *
 * Kept apart from the session code so that the ingestion path (sync_conn.c today, a worker
 * later) calls one function before storing. Reads the backend's optional lookups; a
 * backend without them (the in-memory test backend) gets the checks that need no data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/reason.h"
#include "sync_internal.h"

/* A gate's clock may be off by this much either way before its statistics are refused
 * (the gate corrects its own clock from the server's: docs/controller.md, Clock). */
#define VALIDATE_CLOCK_SLACK_S 86400

/* Distinct products already found in one batch: a batch of 1 000 taps asks the backend
 * about each product once. */
#define VALIDATE_PRODUCTS_SEEN 16

struct product_cache {
	uint32_t known[VALIDATE_PRODUCTS_SEEN];
	size_t n;
};

static int product_known(const struct server_sync_backend *be, uint16_t sector, uint32_t product,
                         struct product_cache *pc, int *known)
{
	for (size_t i = 0; i < pc->n; i++)
		if (pc->known[i] == product) {
			*known = 1;
			return 0;
		}
	if (!be->ops->product_known) {
		*known = 1;
		return 0;
	}
	int rc = be->ops->product_known(be->ctx, sector, product, known);
	if (rc == 0 && *known && pc->n < VALIDATE_PRODUCTS_SEEN)
		pc->known[pc->n++] = product;
	return rc;
}

static int refuse(char *why, size_t cap, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return 1;
}

static int validate_stat(const struct server_sync_backend *be, const struct server_device_info *dev,
                         const Citypass__StatEvent *e, int64_t now, struct product_cache *pc,
                         char *why, size_t cap)
{
	const unsigned long long seq = (unsigned long long)e->seq;
	if (e->sector != dev->sector)
		return refuse(why, cap, "statistic seq %llu: sector %u, the device serves %u", seq,
		              e->sector, dev->sector);
	if (dev->site != 0 && e->site != dev->site)
		return refuse(why, cap, "statistic seq %llu: site %u, the device is at site %u",
		              seq, e->site, dev->site);
	if (dev->gate != 0 && e->gate != dev->gate)
		return refuse(why, cap, "statistic seq %llu: gate %u, the device is gate %u", seq,
		              e->gate, dev->gate);
	if (!proto_reason_known(e->reason))
		return refuse(why, cap,
		              "statistic seq %llu: reason %u is not a known reason "
		              "(proto/reason.h)",
		              seq, e->reason);
	if ((e->outcome == CITYPASS__OUTCOME__GRANTED) != (e->reason == 0))
		return refuse(why, cap, "statistic seq %llu: outcome %s with reason %u", seq,
		              e->outcome == CITYPASS__OUTCOME__GRANTED ? "granted" : "refused",
		              e->reason);
	if (e->quarter_hour > now + VALIDATE_CLOCK_SLACK_S ||
	    (dev->created > 0 && e->quarter_hour < dev->created - VALIDATE_CLOCK_SLACK_S))
		return refuse(why, cap,
		              "statistic seq %llu: quarter hour %lld is not a time this device "
		              "can have decided at (enrolled %lld, now %lld)",
		              seq, (long long)e->quarter_hour, (long long)dev->created,
		              (long long)now);
	if (e->product == 0) {
		if (e->outcome == CITYPASS__OUTCOME__GRANTED)
			return refuse(why, cap, "statistic seq %llu: a grant without a product",
			              seq);
		return 0;
	}
	int known = 0;
	int rc = product_known(be, dev->sector, e->product, pc, &known);
	if (rc)
		return rc;
	if (!known)
		return refuse(why, cap,
		              "statistic seq %llu: product %u is not a product of sector %u", seq,
		              e->product, dev->sector);
	return 0;
}

static int validate_use(const struct server_sync_backend *be, const struct server_device_info *dev,
                        const Citypass__ConsumptionEvent *e, char *why, size_t cap)
{
	const unsigned long long seq = (unsigned long long)e->seq;
	if (e->sector != dev->sector)
		return refuse(why, cap, "consumption seq %llu: sector %u, the device serves %u",
		              seq, e->sector, dev->sector);
	if (e->count != 1)
		return refuse(why, cap,
		              "consumption seq %llu: count %u (a gate reports each use it "
		              "witnessed, one at a time)",
		              seq, e->count);
	if (!be->ops->counted_right)
		return 0;
	struct server_counted_right r;
	int rc = be->ops->counted_right(be->ctx, dev->sector, e->pseudonym.data, &r);
	if (rc == SERVER_ERR_NOT_FOUND)
		return refuse(why, cap,
		              "consumption seq %llu: the pseudonym is no pass of sector %u with a "
		              "counted right",
		              seq, dev->sector);
	if (rc)
		return rc;
	if (e->product != r.product)
		return refuse(why, cap,
		              "consumption seq %llu: product %u, the pass's counted right is "
		              "product %u",
		              seq, e->product, r.product);
	if ((int64_t)e->period > r.current_period)
		return refuse(why, cap,
		              "consumption seq %llu: period %u is after the current one (%lld)",
		              seq, e->period, (long long)r.current_period);
	return 0;
}

int sync_validate_batch(const struct server_sync_backend *be, const struct server_device_info *dev,
                        const Citypass__EventBatch *b, int64_t now, char *why, size_t cap)
{
	struct product_cache pc = {.n = 0};
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < b->n_stats; i++)
		rc = validate_stat(be, dev, b->stats[i], now, &pc, why, cap);
	for (size_t i = 0; rc == 0 && i < b->n_consumption; i++)
		rc = validate_use(be, dev, b->consumption[i], why, cap);
	return rc;
}
