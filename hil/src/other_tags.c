/*
 * other_tags.c — targets that are not credentials, for the negative tests of the bench: a
 * MIFARE Classic 1K and a UID-only tag. Both answer anticollision (info) and nothing else:
 * neither speaks ISO/IEC 14443-4, so there is no ATS and every exchange times out.
 */
#include <stdlib.h>
#include <string.h>

#include "hil/desfire.h"

struct passive_tag {
	struct hil_target_info info;
};

static void passive_info(void *ctx, struct hil_target_info *info)
{
	const struct passive_tag *tag = ctx;
	*info = tag->info;
}

static void passive_activate(void *ctx)
{
	(void)ctx;
}

static int passive_transceive(void *ctx, const uint8_t *in, size_t in_len, uint8_t *out,
                              size_t out_cap)
{
	(void)ctx;
	(void)in;
	(void)in_len;
	(void)out;
	(void)out_cap;
	return HIL_TARGET_SILENT;
}

static void passive_deactivate(void *ctx)
{
	(void)ctx;
}

static void passive_destroy(void *ctx)
{
	free(ctx);
}

static const struct hil_target_ops passive_ops = {
        .info = passive_info,
        .activate = passive_activate,
        .transceive = passive_transceive,
        .deactivate = passive_deactivate,
        .destroy = passive_destroy,
};

static int passive_new(struct hil_target *out, const uint8_t atqa[2], uint8_t sak,
                       const uint8_t *uid, uint8_t uid_len)
{
	if (!out || !uid)
		return HIL_DESFIRE_EARG;
	struct passive_tag *tag = calloc(1, sizeof(*tag));
	if (!tag)
		return HIL_DESFIRE_ENOMEM;
	memcpy(tag->info.atqa, atqa, 2);
	tag->info.sak = sak;
	memcpy(tag->info.uid, uid, uid_len);
	tag->info.uid_len = uid_len;
	out->ops = &passive_ops;
	out->ctx = tag;
	return 0;
}

int hil_classic1k_target_new(struct hil_target *out, const uint8_t uid[4])
{
	static const uint8_t atqa[2] = {0x00, 0x04};
	return passive_new(out, atqa, 0x08, uid, 4);
}

int hil_uid_only_target_new(struct hil_target *out, const uint8_t uid[7])
{
	static const uint8_t atqa[2] = {0x00, 0x44};
	return passive_new(out, atqa, 0x00, uid, 7);
}
