/*
 * controller/src/reader_loop.c — the reader thread (see controller/reader_loop.h and
 * reader_internal.h): the reader opened, polled and re-opened; each target it finds is
 * handed to the tap (controller/tap.h), which decides it.
 *
 * Waiting for a card costs nothing and loses nothing: the PN532 polls by itself
 * (InAutoPoll, cardlib_reader_wait) and answers the moment a card enters the field, so a
 * tap is timed from the card's arrival, not from the next turn of a sleeping loop
 * (issue 13, item 4). A reader that fails (unplugged, answering garbage, gone silent) is
 * closed and opened again after 100 ms, doubling up to 1 s: never a spin, back within about
 * a second of the device's return (item 1).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cardlib/error.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "cardlib/token.h"
#include "controller/error.h"
#include "controller/log.h"
#include "controller/timekeeper.h"
#include "proto/error.h"
#include "proto/list.h"
#include "proto/sign.h"
#include "reader_internal.h"
#include "service/service.h"

/* One InAutoPoll: the chip answers a card at once, or "none" after this; the loop then
 * looks at its flags (stop, reload) and polls again. */
#define WAIT_MS         300
#define REMOVAL_POLL_MS 100  /* pause between selects while a decided card stays */
#define REOPEN_MIN_MS   100  /* reader lost: first retry, then doubling ... */
#define REOPEN_MAX_MS   1000 /* ... up to this: back within ~1 s of the device */
/* How long a libnfc call of this thread may take before the watchdog acts (qr_scanner.c):
 * an InAutoPoll lasts WAIT_MS; a tap's exchanges each have libnfc's own timeouts. */
#define BUSY_WAIT_LIMIT_MS (WAIT_MS + 3000)
#define BUSY_TAP_LIMIT_MS  15000
#define BUSY_OPEN_LIMIT_MS 8000

int64_t reader_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The watchdog (qr_scanner.c) sees how long this thread has been inside libnfc. */
static void busy(struct controller_reader_loop *l, int64_t limit_ms)
{
	atomic_store(&l->busy_limit_ms, limit_ms);
	atomic_store(&l->busy_since_ms, reader_mono_ms());
}

static void idle(struct controller_reader_loop *l)
{
	atomic_store(&l->busy_since_ms, 0);
}

/* --- the presence poll's selection, handed to cardlib ------------------------------------ */

/*
 * The loop's poll selects the target; cardlib's card session begins with a select of its
 * own. Rather than deselect and select again (two more reader commands per tap, against
 * DESIGN.md s.9's budget), the libnfc reader is wrapped: after the poll found a target,
 * the next select returns it as it is, still selected in the chip (HIL-NOTES: libnfc
 * leaves the last target selected). Everything else goes through unchanged.
 */
struct presence_reader {
	struct cardlib_reader *inner;
	struct controller_timekeeper *clock; /* the time phones' proofs are checked at */
	bool handed;                         /* the next select returns `info` */
	struct cardlib_target_info info;     /* the target the poll selected */
};

static int presence_select(void *ctx, struct cardlib_target_info *info)
{
	struct presence_reader *p = ctx;
	if (p->handed) {
		p->handed = false;
		*info = p->info;
		return 1;
	}
	return cardlib_reader_select(p->inner, info);
}

static int presence_wait(void *ctx, struct cardlib_target_info *info, int timeout_ms)
{
	struct presence_reader *p = ctx;
	p->handed = false;
	return cardlib_reader_wait(p->inner, info, timeout_ms);
}

static int presence_transceive(void *ctx, const uint8_t *tx, size_t tx_len, uint8_t *rx,
                               size_t rx_cap, int timeout_ms)
{
	struct presence_reader *p = ctx;
	return cardlib_reader_transceive(p->inner, tx, tx_len, rx, rx_cap, timeout_ms);
}

static void presence_release(void *ctx)
{
	struct presence_reader *p = ctx;
	p->handed = false;
	cardlib_reader_release(p->inner);
}

static int64_t presence_now_ms(void *ctx)
{
	struct presence_reader *p = ctx;
	return cardlib_reader_now_ms(p->inner);
}

static int64_t presence_wall_time(void *ctx)
{
	struct presence_reader *p = ctx;
	return p->clock ? controller_timekeeper_now(p->clock) : cardlib_reader_wall_time(p->inner);
}

static void presence_destroy(void *ctx)
{
	struct presence_reader *p = ctx;
	cardlib_reader_free(p->inner);
	memset(p, 0, sizeof(*p));
	free(p);
}

static const struct cardlib_reader_ops presence_ops = {
        .select = presence_select,
        .wait = presence_wait,
        .transceive = presence_transceive,
        .release = presence_release,
        .now_ms = presence_now_ms,
        .wall_time = presence_wall_time,
        .destroy = presence_destroy,
};

static int presence_open(struct cardlib_reader **out, const char *connstring,
                         struct controller_timekeeper *clock)
{
	struct cardlib_reader *r = calloc(1, sizeof(*r));
	struct presence_reader *p = calloc(1, sizeof(*p));
	if (!r || !p) {
		free(r);
		free(p);
		return CARDLIB_ERR_NOMEM;
	}
	int rc = cardlib_nfc_open(&p->inner, connstring);
	if (rc != 0) {
		free(r);
		free(p);
		return rc;
	}
	p->clock = clock;
	r->ops = &presence_ops;
	r->ctx = p;
	*out = r;
	return 0;
}

/* The poll found this target: cardlib's next select gets it without a reader command. */
static void presence_hand_over(struct cardlib_reader *r, const struct cardlib_target_info *info)
{
	struct presence_reader *p = r->ctx;
	p->info = *info;
	p->handed = true;
}

/* --- a tap ------------------------------------------------------------------------------- */

static void tap_target(struct controller_reader_loop *l, const struct cardlib_target_info *info,
                       int64_t t0)
{
	/* cardlib's card session begins with a select: it gets the target the poll selected
	 * (a phone's exchanges need no select; a release ends the hand-over) */
	presence_hand_over(l->reader, info);
	controller_tap_target(l->tap, l->reader, info, t0, NULL);
}

/* --- the reader ------------------------------------------------------------------------------ */

/* Sleep up to ms, in slices, while no stop or reload is asked for. A loop that waits for
 * an unplugged reader is alive: it feeds systemd's watchdog as it waits. */
static void nap(struct controller_reader_loop *l, int64_t ms)
{
	while (ms > 0 && !*l->stop && !*l->reload) {
		int64_t slice = ms < 200 ? ms : 200;
		service_watchdog_feed();
		struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

static void reader_lost(struct controller_reader_loop *l, const char *what, int rc)
{
	if (!l->reader_failed_logged)
		controller_log(LOG_ERR,
		               "reader %s: %s (%s): out of service, opening it again "
		               "every %d ms at most",
		               l->cfg->reader, what, cardlib_strerror(rc), REOPEN_MAX_MS);
	l->reader_failed_logged = true;
	if (l->reader) {
		busy(l, BUSY_OPEN_LIMIT_MS); /* closing talks to the chip (InRelease, PowerDown) */
		cardlib_reader_free(l->reader);
		idle(l);
		l->reader = NULL;
	}
	l->waiting_removal = false;
	panel_reader(&l->panel, false);
	l->reopen_at_ms = reader_mono_ms() + l->reopen_delay_ms;
	l->reopen_delay_ms *= 2;
	if (l->reopen_delay_ms > REOPEN_MAX_MS)
		l->reopen_delay_ms = REOPEN_MAX_MS;
}

static bool reader_open(struct controller_reader_loop *l)
{
	int64_t now = reader_mono_ms();
	if (now < l->reopen_at_ms) {
		nap(l, l->reopen_at_ms - now);
		return false;
	}
	busy(l, BUSY_OPEN_LIMIT_MS);
	int rc = presence_open(&l->reader, l->cfg->reader, l->p.clock);
	idle(l);
	if (rc != 0) {
		l->reader = NULL;
		reader_lost(l, "cannot open it", rc);
		return false;
	}
	if (l->reader_failed_logged)
		controller_log(LOG_NOTICE, "reader %s: open again: back in service",
		               l->cfg->reader);
	l->reader_failed_logged = false;
	/* the delay goes back to its minimum only once the reader has answered a poll */
	return true;
}

static bool same_target(const struct controller_reader_loop *l,
                        const struct cardlib_target_info *info)
{
	bool random_id = info->uid_len == 4 && info->uid[0] == 0x08;
	if (random_id)
		return true; /* cannot tell: wait for an empty field */
	return info->uid_len == l->last_uid_len &&
	       memcmp(info->uid, l->last_uid, info->uid_len) == 0;
}

static void reader_turn(struct controller_reader_loop *l)
{
	if (!l->reader && !reader_open(l))
		return;
	struct cardlib_target_info info;
	memset(&info, 0, sizeof(info));
	int rc;
	if (l->waiting_removal) {
		/* a card decided stays on the reader: it is decided once, so look (select) until
		 * the field is empty rather than wait for a target that is already there */
		busy(l, BUSY_WAIT_LIMIT_MS);
		rc = cardlib_reader_select(l->reader, &info);
	} else {
		busy(l, BUSY_WAIT_LIMIT_MS);
		rc = cardlib_reader_wait(l->reader, &info, WAIT_MS);
	}
	idle(l);
	const int64_t t0 = reader_mono_ms();
	if (rc < 0) {
		reader_lost(l, "polling failed", rc);
		return;
	}
	l->reopen_delay_ms = REOPEN_MIN_MS; /* it answered */
	panel_reader(&l->panel, true);
	if (rc == 0) {
		l->waiting_removal = false;
		controller_tap_housekeeping(l->tap);
		return;
	}
	if (l->waiting_removal && same_target(l, &info)) {
		cardlib_reader_release(l->reader);
		nap(l, REMOVAL_POLL_MS);
		return;
	}
	l->waiting_removal = true;
	l->last_uid_len = info.uid_len;
	memcpy(l->last_uid, info.uid, info.uid_len);
	busy(l, BUSY_TAP_LIMIT_MS);
	tap_target(l, &info, t0);
	idle(l);
	memset(&info, 0, sizeof(info));
}

void controller_reader_loop_run(struct controller_reader_loop *l, volatile sig_atomic_t *stop,
                                volatile sig_atomic_t *reload)
{
	l->stop = stop;
	l->reload = reload;
	panel_idle(&l->panel);
	if (qr_scanner_start(l) != 0)
		controller_log(LOG_ERR, "cannot start the scanner thread: QR codes are not read");
	while (!*stop && !*reload) {
		/* systemd's watchdog is fed by this loop only: a reader thread stuck where its own
		 * watchdog (qr_scanner.c) cannot free it gets the daemon restarted */
		service_watchdog_feed();
		reader_turn(l);
	}
	qr_scanner_join(l);
	panel_off(&l->panel);
}

/*
 * The gate's certificate for phones (issue 17) and the device key it certifies (the sync
 * link's): a phone answers only a reader proving it is a gate of this deployment. A
 * bundle made before gate certificates serves no phone over NFC, and says so once.
 */
static int load_gate(struct controller_reader_loop *l, char *err, size_t errlen)
{
	const struct controller_config *cfg = l->cfg;
	if (!cfg->gate_cert_path[0]) {
		controller_log(LOG_WARNING, "device.conf has no gate-certificate (a bundle made "
		                            "before format 3): phones over NFC are not served "
		                            "until the gate is enrolled again");
		return 0;
	}
	uint8_t cert[CARDLIB_GATE_CERT_MAX + 1];
	size_t len = 0;
	FILE *f = fopen(cfg->gate_cert_path, "rb");
	if (f) {
		len = fread(cert, 1, sizeof(cert), f);
		fclose(f);
	}
	struct proto_key *key = NULL;
	int rc = f ? 0 : CARDLIB_ERR_IO;
	if (rc == 0 && proto_key_load_private(&key, cfg->key_path) != PROTO_OK)
		rc = CARDLIB_ERR_ARG;
	if (rc == 0)
		rc = cardlib_gate_new(&l->gate, cert, len, key);
	proto_key_free(key);
	if (rc == 0 && cardlib_gate_sector(l->gate) != cfg->sector) {
		snprintf(err, errlen, "gate-certificate %s is for sector %u, device.conf says %u",
		         cfg->gate_cert_path, (unsigned)cardlib_gate_sector(l->gate),
		         (unsigned)cfg->sector);
		cardlib_gate_free(l->gate);
		l->gate = NULL;
		return -1;
	}
	if (rc != 0) {
		snprintf(err, errlen,
		         "gate-certificate %s: %s (it must be the certificate of private-key %s "
		         "for sector %u, as citypass-admin device add writes it)",
		         cfg->gate_cert_path,
		         rc == CARDLIB_ERR_IO ? strerror(errno) : cardlib_strerror(rc),
		         cfg->key_path, (unsigned)cfg->sector);
		cardlib_gate_free(l->gate);
		l->gate = NULL;
		return -1;
	}
	int64_t from, until;
	cardlib_gate_validity(l->gate, &from, &until);
	if (until <= (int64_t)time(NULL))
		controller_log(LOG_WARNING,
		               "gate-certificate %s expired: phones will not answer "
		               "this gate until it is enrolled again",
		               cfg->gate_cert_path);
	return 0;
}

int controller_reader_loop_open(struct controller_reader_loop **out,
                                const struct controller_reader_loop_params *params, char *err,
                                size_t errlen)
{
	struct controller_reader_loop *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->p = *params;
	l->cfg = params->cfg;
	l->qr_fd = -1;
	l->reopen_delay_ms = REOPEN_MIN_MS;
	l->qr_reopen_delay_ms = REOPEN_MIN_MS;
	const struct controller_config *cfg = l->cfg;
	panel_init(&l->panel, params->gate, cfg->open_ms, cfg->qr_scanner[0] != '\0');
	l->panel.changed = params->devices_changed;
	l->panel.ctx = params->ctx;

	/* one keyring per thread: nothing of mbedTLS is shared across threads */
	for (int i = 0; i < 2; i++) {
		struct proto_key *issuer = NULL;
		struct proto_keyring **ring = i ? &l->qr_issuers : &l->issuers;
		int rc = proto_key_load(&issuer, cfg->issuer_key_path);
		if (rc == 0 && !(*ring = proto_keyring_new()))
			rc = PROTO_ERR_NOMEM;
		if (rc == 0)
			rc = proto_keyring_add(*ring, issuer);
		proto_key_free(issuer);
		if (rc != 0) {
			snprintf(err, errlen, "issuer-public-key %s: %s", cfg->issuer_key_path,
			         proto_strerror(rc));
			goto fail;
		}
	}
	if (load_gate(l, err, errlen) != 0)
		goto fail;
	const struct controller_tap_params tp = {
	        .cfg = cfg,
	        .store = params->store,
	        .store_lock = params->store_lock,
	        .journal = params->journal,
	        .clock = params->clock,
	        .gate = &l->panel.decisions,
	        .nfc_issuers = l->issuers,
	        .nfc_gate = l->gate,
	        .qr_issuers = l->qr_issuers,
	        .journal_written = params->journal_written,
	        .granted = params->granted,
	        .ctx = params->ctx,
	};
	if (controller_tap_open(&l->tap, &tp, err, errlen) != 0)
		goto fail;
	/* The reader and the scanner are opened by their threads, and again whenever they
	 * fail: a gate whose reader is unplugged at boot starts, says "Hors service", syncs
	 * and reports it (docs/controller.md, "Devices come and go"). */
	*out = l;
	return 0;
fail:
	controller_reader_loop_close(l);
	return -1;
}

void controller_reader_loop_devices(struct controller_reader_loop *l, bool *reader_up,
                                    bool *scanner_configured, bool *scanner_up)
{
	panel_devices(&l->panel, reader_up, scanner_configured, scanner_up);
}

void controller_reader_loop_close(struct controller_reader_loop *l)
{
	if (!l)
		return;
	cardlib_reader_free(l->reader);
	if (l->qr_fd >= 0)
		close(l->qr_fd);
	controller_tap_close(l->tap);
	proto_keyring_free(l->issuers);
	cardlib_gate_free(l->gate);
	proto_keyring_free(l->qr_issuers);
	panel_destroy(&l->panel);
	free(l);
}
