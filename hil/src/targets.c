/*
 * What `place` puts on a reader: virtual DESFire cards from their image files, and the
 * clonable tags a gate must refuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include "hil/desfire.h"
#include "targets.h"

/* ---- a card pulled from the field ------------------------------------------------------ */

/* Wraps a target: the pull_after-th exchange reaches the card (a DESFire command runs whole
 * or not at all, so it runs) but its answer never leaves, and the target is gone from the
 * field: the reader times out, then finds no card until the next `place`. */
struct pulled {
	struct hil_target inner;
	long left;
};

static void pulled_info(void *ctx, struct hil_target_info *info)
{
	struct pulled *p = ctx;
	p->inner.ops->info(p->inner.ctx, info);
}

static void pulled_activate(void *ctx)
{
	struct pulled *p = ctx;
	if (p->inner.ops->activate)
		p->inner.ops->activate(p->inner.ctx);
}

static int pulled_transceive(void *ctx, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap)
{
	struct pulled *p = ctx;
	if (p->left <= 0)
		return HIL_TARGET_GONE;
	const int n = p->inner.ops->transceive(p->inner.ctx, in, in_len, out, cap);
	return --p->left > 0 ? n : HIL_TARGET_GONE;
}

static void pulled_deactivate(void *ctx)
{
	struct pulled *p = ctx;
	if (p->inner.ops->deactivate)
		p->inner.ops->deactivate(p->inner.ctx);
}

static void pulled_destroy(void *ctx)
{
	struct pulled *p = ctx;
	if (p->inner.ops->destroy)
		p->inner.ops->destroy(p->inner.ctx);
	free(p);
}

int bench_desfire_target(const char *image, const struct bench_desfire_opts *o,
                         struct hil_target *out, char *err, size_t err_len)
{
	struct hil_desfire_config cfg = {.random_id = o->random_id,
	                                 .picc_key_aes = o->picc_key_aes};
	if (o->have_uid) {
		memcpy(cfg.uid, o->uid, sizeof(cfg.uid));
	} else {
		/* a new card gets a fresh NXP-style UID (manufacturer byte 0x04) */
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, cfg.uid, sizeof(cfg.uid)) : -1;
		if (fd >= 0)
			close(fd);
		if (n != (ssize_t)sizeof(cfg.uid)) {
			snprintf(err, err_len, "cannot draw a UID: %s", strerror(errno));
			return -1;
		}
		cfg.uid[0] = 0x04;
	}
	struct hil_desfire_card *card = NULL;
	int rc = hil_desfire_card_open(&card, image, &cfg);
	if (rc != 0) {
		snprintf(err, err_len, "%s", hil_desfire_strerror(rc));
		return -1;
	}
	*out = hil_desfire_card_target(card);
	if (o->pull_after > 0) {
		static const struct hil_target_ops pulled_ops = {
		        .info = pulled_info,
		        .activate = pulled_activate,
		        .transceive = pulled_transceive,
		        .deactivate = pulled_deactivate,
		        .destroy = pulled_destroy,
		};
		struct pulled *p = calloc(1, sizeof(*p));
		if (!p) {
			out->ops->destroy(out->ctx);
			snprintf(err, err_len, "out of memory");
			return -1;
		}
		p->inner = *out;
		p->left = o->pull_after;
		out->ops = &pulled_ops;
		out->ctx = p;
	}
	return 0;
}

int bench_clone_target(int classic, const uint8_t *uid, struct hil_target *out)
{
	return classic ? hil_classic1k_target_new(out, uid) : hil_uid_only_target_new(out, uid);
}
