/*
 * What `place` puts on a reader: virtual DESFire cards from their image files, and the
 * clonable tags a gate must refuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hil/desfire.h"
#include "targets.h"

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
	return 0;
}

int bench_clone_target(int classic, const uint8_t *uid, struct hil_target *out)
{
	return classic ? hil_classic1k_target_new(out, uid) : hil_uid_only_target_new(out, uid);
}
