/*
 * bench_card — what a card tap costs on the wire: cardlib's sector read (cardlib/layout.h)
 * beside libfreefare 0.4.0 doing the same authenticated read (its own selection, select
 * application, EV1 AES authentication with the diversified key, ReadData enciphered) on the
 * same virtual card, through the same emulated PN532 and Debian's libnfc pn532_uart driver.
 *
 *     bench_card [--reads N]
 *
 * The emulated chip (hil/pn532.h) runs in this process on a pseudo-terminal, pumped by a
 * thread; libnfc drives it as it drives a reader on /dev/ttyUSB0. Counted per read: PN532
 * commands (every frame the chip answers: selection, register writes, InDataExchange,
 * deselect...), exchanges with the card, and bytes on the UART both ways (ACKs included),
 * whose 115 200-baud transfer time is the wire-time floor of DESIGN.md s.9. A plain card
 * and a random-ID card (GetCardUID under the sector's UID key, then the read key: libfreefare
 * does the same). libfreefare twice for the plain card: as its examples read a card
 * (freefare_get_tags at every read, which re-initialises the reader) and as a lean program
 * that lists the card once. Counts are exact; the times are informative (no wire model, shared
 * machine) and nothing here asserts a timing.
 */
#define _GNU_SOURCE /* posix_openpt, ptsname, cfmakeraw */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <freefare.h>
#include <nfc/nfc.h>

#include "bench_table.h"
#include "cardlib/error.h"
#include "cardlib/issue.h"
#include "cardlib/layout.h"
#include "cardlib/reader.h"
#include "hil/desfire.h"
#include "hil/pn532.h"

#define DEFAULT_READS 100
#define BENCH_SLOT    1 /* the sector read: no value file, the 5-command path */
#define BAUD          115200.0

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fprintf(stderr, "bench_card: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the emulated reader, pumped by a thread ----------------------------------------- */

struct emulated_reader {
	int master, slave;
	nfc_connstring connstring; /* libnfc reads it as char[1024] */
	struct hil_pn532 *chip;
	pthread_t pump;
	pthread_mutex_t lock; /* the chip and the counters */
	int stop;
	unsigned long bytes_in, bytes_out; /* host -> chip, chip -> host */
};

struct wire_counts {
	unsigned long commands, exchanges, bytes;
};

static void chip_write(void *ctx, const uint8_t *data, size_t len)
{
	struct emulated_reader *er = ctx;
	er->bytes_out += len;
	while (len > 0) {
		ssize_t n = write(er->master, data, len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = {.fd = er->master, .events = POLLOUT};
			(void)poll(&p, 1, 100);
			continue;
		}
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

static void *pump(void *arg)
{
	struct emulated_reader *er = arg;
	uint8_t buf[1024];
	for (;;) {
		pthread_mutex_lock(&er->lock);
		int stop = er->stop;
		pthread_mutex_unlock(&er->lock);
		if (stop)
			return NULL;
		struct pollfd p = {.fd = er->master, .events = POLLIN};
		if (poll(&p, 1, 20) <= 0)
			continue;
		ssize_t n = read(er->master, buf, sizeof(buf));
		if (n <= 0) /* EIO while nobody else holds the slave: we do, so rare */
			continue;
		pthread_mutex_lock(&er->lock);
		er->bytes_in += (unsigned long)n;
		hil_pn532_feed(er->chip, buf, (size_t)n);
		pthread_mutex_unlock(&er->lock);
	}
}

/* HIL-NOTES.md: raw mode, and our own handle on the slave kept open. */
static void reader_start(struct emulated_reader *er)
{
	memset(er, 0, sizeof(*er));
	er->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (er->master < 0 || grantpt(er->master) != 0 || unlockpt(er->master) != 0)
		die("pseudo-terminal: %s", strerror(errno));
	const char *name = ptsname(er->master);
	er->slave = name ? open(name, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
	struct termios t;
	if (er->slave < 0 || tcgetattr(er->slave, &t) != 0)
		die("pseudo-terminal slave: %s", strerror(errno));
	cfmakeraw(&t);
	cfsetspeed(&t, B115200);
	tcsetattr(er->slave, TCSANOW, &t);
	if (tcgetattr(er->master, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(er->master, TCSANOW, &t);
	}
	fcntl(er->master, F_SETFL, fcntl(er->master, F_GETFL) | O_NONBLOCK);
	snprintf(er->connstring, sizeof(er->connstring), "pn532_uart:%s", name);
	const struct hil_pn532_io io = {.write = chip_write, .ctx = er};
	er->chip = hil_pn532_new(&io);
	if (!er->chip)
		die("hil_pn532_new failed");
	pthread_mutex_init(&er->lock, NULL);
	if (pthread_create(&er->pump, NULL, pump, er) != 0)
		die("pthread_create failed");
}

static void reader_stop(struct emulated_reader *er)
{
	pthread_mutex_lock(&er->lock);
	er->stop = 1;
	pthread_mutex_unlock(&er->lock);
	pthread_join(er->pump, NULL);
	hil_pn532_free(er->chip);
	pthread_mutex_destroy(&er->lock);
	close(er->master);
	close(er->slave);
}

static void reader_place(struct emulated_reader *er, const struct hil_target *t)
{
	pthread_mutex_lock(&er->lock);
	hil_pn532_set_target(er->chip, t);
	pthread_mutex_unlock(&er->lock);
}

static struct wire_counts reader_counts(struct emulated_reader *er)
{
	struct hil_pn532_stats s;
	pthread_mutex_lock(&er->lock);
	hil_pn532_get_stats(er->chip, &s);
	struct wire_counts c = {s.commands, s.exchanges, er->bytes_in + er->bytes_out};
	pthread_mutex_unlock(&er->lock);
	return c;
}

/* --- the pass --------------------------------------------------------------------------- */

static void bench_keyset(struct cardlib_keyset *ks, struct cardlib_pass_ids *ids)
{
	static const uint8_t slots[] = {0, 1, 3};
	memset(ks, 0, sizeof(*ks));
	ks->sys.aid = CARDLIB_LAYOUT_AID;
	memcpy(ks->sys.sys_id, "citypass-bench", 14);
	ks->sys.sys_id_len = 14;
	for (int i = 0; i < CARDLIB_AES_KEY_LEN; i++)
		ks->app_master[i] = (uint8_t)(0xA0 + i);
	ks->key_version = 1;
	ks->n_sectors = sizeof(slots);
	for (size_t s = 0; s < ks->n_sectors; s++) {
		ks->sectors[s].slot = slots[s];
		for (int i = 0; i < CARDLIB_AES_KEY_LEN; i++)
			ks->sectors[s].master[i] = (uint8_t)(0x10 * (slots[s] + 1) + i);
		memset(ids->id[s], 0x30 + (int)s, CARDLIB_LAYOUT_ID_LEN);
	}
	ks->value_slot = 0;
}

static void place_card(struct emulated_reader *er, const char *image, const uint8_t uid[7],
                       int random_id)
{
	struct hil_desfire_config cfg = {.random_id = random_id, .picc_key_aes = 1};
	memcpy(cfg.uid, uid, 7);
	struct hil_desfire_card *card = NULL;
	int rc = hil_desfire_card_open(&card, image, &cfg);
	if (rc != 0)
		die("card image %s: %s", image, hil_desfire_strerror(rc));
	struct hil_target t = hil_desfire_card_target(card);
	reader_place(er, &t);
}

/* --- one scenario ----------------------------------------------------------------------- */

struct measure {
	double commands, exchanges, bytes, seconds;
	double cardlib_count; /* cardlib's own selection + exchanges */
};

static void per_read(struct measure *m, struct wire_counts a, struct wire_counts b, double t,
                     unsigned reads)
{
	m->commands = (double)(b.commands - a.commands) / reads;
	m->exchanges = (double)(b.exchanges - a.exchanges) / reads;
	m->bytes = (double)(b.bytes - a.bytes) / reads;
	m->seconds = t / reads;
}

static void run_cardlib(struct emulated_reader *er, const struct cardlib_keyset *ks, unsigned reads,
                        struct measure *m)
{
	struct cardlib_reader *r = NULL;
	struct cardlib_sector_key key;
	struct cardlib_card_read read;
	int rc = cardlib_nfc_open(&r, er->connstring);
	if (rc < 0)
		die("cardlib_nfc_open: %s", cardlib_strerror(rc));
	(void)cardlib_keyset_sector_key(ks, 1, &key);  /* slot BENCH_SLOT */
	rc = cardlib_card_read_sector(r, &key, &read); /* warm-up */
	if (rc < 0)
		die("cardlib read: %s", cardlib_strerror(rc));
	cardlib_reader_reset_stats(r);
	struct wire_counts a = reader_counts(er);
	double t0 = now_s();
	for (unsigned i = 0; i < reads; i++)
		if ((rc = cardlib_card_read_sector(r, &key, &read)) < 0)
			die("cardlib read %u: %s", i, cardlib_strerror(rc));
	double t = now_s() - t0;
	per_read(m, a, reader_counts(er), t, reads);
	m->cardlib_count = (double)(r->stats.selects + r->stats.exchanges) / reads;
	cardlib_reader_free(r);
}

static int freefare_auth(MifareTag tag, uint8_t key_no, uint8_t key[CARDLIB_AES_KEY_LEN])
{
	MifareDESFireKey k = mifare_desfire_aes_key_new(key);
	int rc = mifare_desfire_authenticate(tag, key_no, k);
	mifare_desfire_key_free(k);
	return rc;
}

/* One read with a tag libfreefare knows: connect (it selects the card by its UID), select
 * the application, authenticate, read, disconnect. */
static void freefare_read_tag(MifareTag tag, const struct cardlib_keyset *ks, int random_id,
                              const uint8_t real_uid[7])
{
	const struct cardlib_layout_sector *s = &ks->sectors[1];
	uint8_t key[CARDLIB_AES_KEY_LEN], data[CARDLIB_LAYOUT_ID_LEN + 64];
	MifareDESFireAID aid = mifare_desfire_aid_new(ks->sys.aid);
	int ok = mifare_desfire_connect(tag) == 0 &&
	         mifare_desfire_select_application(tag, aid) == 0;
	if (ok && random_id) {
		char *uid_hex = NULL;
		ok = cardlib_layout_uid_key(&ks->sys, s->master, key) == 0 &&
		     freefare_auth(tag, CARDLIB_LAYOUT_UID_KEY(s->slot), key) == 0 &&
		     mifare_desfire_get_card_uid(tag, &uid_hex) == 0;
		free(uid_hex); /* the bench knows the real UID already */
	}
	ok = ok && cardlib_layout_read_key(&ks->sys, s->master, real_uid, 7, key) == 0 &&
	     freefare_auth(tag, CARDLIB_LAYOUT_READ_KEY(s->slot), key) == 0 &&
	     mifare_desfire_read_data_ex(tag, CARDLIB_LAYOUT_FILE(s->slot), 0,
	                                 CARDLIB_LAYOUT_ID_LEN, data,
	                                 MDCM_ENCIPHERED) == CARDLIB_LAYOUT_ID_LEN;
	if (!ok)
		die("libfreefare read failed: %s", freefare_strerror(tag));
	mifare_desfire_disconnect(tag);
	free(aid);
}

/* A read as libfreefare's examples do it: freefare_get_tags() lists the cards in the field
 * (and re-initialises the reader: nfc_initiator_init) every time. */
static void freefare_read_once(nfc_device *dev, const struct cardlib_keyset *ks, int random_id,
                               const uint8_t real_uid[7])
{
	MifareTag *tags = freefare_get_tags(dev);
	if (!tags || !tags[0] || freefare_get_tag_type(tags[0]) != DESFIRE)
		die("libfreefare: no DESFire in the field");
	freefare_read_tag(tags[0], ks, random_id, real_uid);
	freefare_free_tags(tags);
}

/* The lean libfreefare program: the card listed once, then only connect .. disconnect per
 * read. A plain card only: a random-ID card answers with a new UID at each activation, and
 * libfreefare's connect selects by the UID it listed. */
static void run_freefare_lean(struct emulated_reader *er, const struct cardlib_keyset *ks,
                              const uint8_t real_uid[7], unsigned reads, struct measure *m)
{
	nfc_context *ctx = NULL;
	nfc_init(&ctx);
	nfc_device *dev = ctx ? nfc_open(ctx, er->connstring) : NULL;
	if (!dev || nfc_initiator_init(dev) < 0)
		die("libnfc cannot open %s", er->connstring);
	MifareTag *tags = freefare_get_tags(dev);
	if (!tags || !tags[0] || freefare_get_tag_type(tags[0]) != DESFIRE)
		die("libfreefare: no DESFire in the field");
	freefare_read_tag(tags[0], ks, 0, real_uid); /* warm-up */
	struct wire_counts a = reader_counts(er);
	double t0 = now_s();
	for (unsigned i = 0; i < reads; i++)
		freefare_read_tag(tags[0], ks, 0, real_uid);
	double t = now_s() - t0;
	per_read(m, a, reader_counts(er), t, reads);
	freefare_free_tags(tags);
	nfc_close(dev);
	nfc_exit(ctx);
}

static void run_freefare(struct emulated_reader *er, const struct cardlib_keyset *ks, int random_id,
                         const uint8_t real_uid[7], unsigned reads, struct measure *m)
{
	nfc_context *ctx = NULL;
	nfc_init(&ctx);
	nfc_device *dev = ctx ? nfc_open(ctx, er->connstring) : NULL;
	if (!dev || nfc_initiator_init(dev) < 0)
		die("libnfc cannot open %s", er->connstring);
	freefare_read_once(dev, ks, random_id, real_uid); /* warm-up */
	struct wire_counts a = reader_counts(er);
	double t0 = now_s();
	for (unsigned i = 0; i < reads; i++)
		freefare_read_once(dev, ks, random_id, real_uid);
	double t = now_s() - t0;
	per_read(m, a, reader_counts(er), t, reads);
	nfc_close(dev);
	nfc_exit(ctx);
}

/* --- the table ------------------------------------------------------------------------ */

static struct bench_table g_table = {.ours_name = "cardlib", .base_name = "libfreefare"};

static void rows_for(const char *card, const struct measure *c, const struct measure *f)
{
	char metric[64];
	snprintf(metric, sizeof(metric), "%s: PN532 commands / read", card);
	bench_table_add(&g_table, metric, 1, "", 1, c->commands, f->commands);
	snprintf(metric, sizeof(metric), "%s: card exchanges / read", card);
	bench_table_add(&g_table, metric, 1, "", 1, c->exchanges, f->exchanges);
	snprintf(metric, sizeof(metric), "%s: UART bytes / read", card);
	bench_table_add(&g_table, metric, 1, "", 1, c->bytes, f->bytes);
	snprintf(metric, sizeof(metric), "%s: wire-time floor @115200", card);
	bench_table_add(&g_table, metric, 2, "ms", 1e3, c->bytes * 10 / BAUD,
	                f->bytes * 10 / BAUD); /* start + 8 + stop bits */
	snprintf(metric, sizeof(metric), "%s: time / read (pty, no wire)", card);
	bench_table_add(&g_table, metric, 1, "us", 1e6, c->seconds, f->seconds);
}

int main(int argc, char **argv)
{
	unsigned reads = DEFAULT_READS;
	static const struct option opts[] = {{"reads", required_argument, NULL, 'n'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		if (o == 'n' && atoi(optarg) > 0) {
			reads = (unsigned)atoi(optarg);
		} else {
			fprintf(stderr, "usage: bench_card [--reads N]\n");
			return o == 'h' ? 0 : 2;
		}
	}
	char dir[] = "/tmp/citypass-bench-card.XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	char plain_image[64], random_image[64];
	snprintf(plain_image, sizeof(plain_image), "%s/plain.card", dir);
	snprintf(random_image, sizeof(random_image), "%s/random.card", dir);
	static const uint8_t uid[7] = {0x04, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

	struct cardlib_keyset ks;
	struct cardlib_pass_ids ids;
	bench_keyset(&ks, &ids);
	struct emulated_reader er;
	reader_start(&er);
	struct measure c_plain = {0}, f_plain = {0}, c_random = {0}, f_random = {0}, f_lean = {0};
	const char *images[2] = {plain_image, random_image};
	for (int random_id = 0; random_id <= 1; random_id++) {
		place_card(&er, images[random_id], uid, random_id);
		struct cardlib_reader *r = NULL;
		int rc = cardlib_nfc_open(&r, er.connstring);
		if (rc == 0)
			rc = cardlib_card_issue(
			        r, &ks, &ids, &(struct cardlib_issue_opts){.initial_entries = 10});
		if (rc < 0)
			die("personalisation: %s", cardlib_strerror(rc));
		cardlib_reader_free(r);
		run_cardlib(&er, &ks, reads, random_id ? &c_random : &c_plain);
		run_freefare(&er, &ks, random_id, uid, reads, random_id ? &f_random : &f_plain);
		if (!random_id)
			run_freefare_lean(&er, &ks, uid, reads, &f_lean);
	}
	reader_stop(&er);
	unlink(plain_image);
	unlink(random_image);
	rmdir(dir);

	printf("bench_card: %u reads of one sector identifier (16 bytes, enciphered) per card, "
	       "emulated PN532 on a pty, libnfc pn532_uart\n\n",
	       reads);
	rows_for("plain", &c_plain, &f_plain);
	rows_for("plain, lean libfreefare", &c_plain, &f_lean);
	rows_for("random-ID", &c_random, &f_random);
	bench_table_print(&g_table);
	/* DESIGN s.9: <= 5 for a plain card, <= 8 for a random-ID card (NXP's method costs one
	 * more authentication); bench_tap.sh counts the same at the real controller */
	printf("\ncardlib's own count (selection + exchanges, DESIGN.md s.9): plain %.1f (budget "
	       "<= 5: %s), random-ID %.1f (budget <= 8: %s)\n",
	       c_plain.cardlib_count, c_plain.cardlib_count <= 5 ? "met" : "MISSED",
	       c_random.cardlib_count, c_random.cardlib_count <= 8 ? "met" : "MISSED");
	return 0;
}
