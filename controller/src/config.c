/*
 * controller/src/config.c — the controller's file, device.conf and card-sector.key,
 * checked line by line (see controller/config.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "cardlib/diversify.h"
#include "controller/config.h"
#include "link/addr.h"
#include "proto/bundle.h"
#include "proto/device_conf.h"
#include "proto/hours.h"

#define LINE_MAX_LEN 2048

struct parse_ctx {
	const char *file;
	unsigned line;
	char *err;
	size_t errlen;
};

static int failf(struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int failf(struct parse_ctx *p, const char *fmt, ...)
{
	char msg[CONTROLLER_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->line)
		snprintf(p->err, p->errlen, "%s:%u: %s", p->file, p->line, msg);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->file, msg);
	return -1;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static int copy_str(struct parse_ctx *p, const char *key, const char *v, char *dst, size_t cap)
{
	if (*v == '\0')
		return failf(p, "%s: empty value: expected a value", key);
	if (strlen(v) >= cap)
		return failf(p, "%s '%s': longer than %zu characters", key, v, cap - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int parse_uint(struct parse_ctx *p, const char *key, const char *v, unsigned long min,
                      unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*v))
		return failf(p, "%s '%s': expected a number from %lu to %lu", key, v, min, max);
	unsigned long n = strtoul(v, &end, 10);
	if (errno || *end != '\0' || n < min || n > max)
		return failf(p, "%s '%s': expected a number from %lu to %lu", key, v, min, max);
	*out = n;
	return 0;
}

static int parse_bool(struct parse_ctx *p, const char *key, const char *v, bool *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return failf(p, "%s '%s': expected yes or no", key, v);
	return 0;
}

/* A path relative to `base_dir` (when not absolute), into dst. */
static int resolve_path(struct parse_ctx *p, const char *key, const char *base_dir, const char *v,
                        char *dst, size_t cap)
{
	if (*v == '\0')
		return failf(p, "%s: empty value: expected a path", key);
	int n = v[0] == '/' ? snprintf(dst, cap, "%s", v)
	                    : snprintf(dst, cap, "%s/%s", base_dir, v);
	if (n < 0 || (size_t)n >= cap)
		return failf(p, "%s '%s': path too long", key, v);
	return 0;
}

/* Split "key = value"; 0 for a blank or comment line, 1 for a pair, -1 on error. */
static int split_line(struct parse_ctx *p, char *line, char **key, char **value)
{
	char *hash = strchr(line, '#');
	if (hash)
		*hash = '\0';
	char *s = trim(line);
	if (*s == '\0')
		return 0;
	char *eq = strchr(s, '=');
	if (!eq)
		return failf(p, "'%s': expected key = value", s);
	*eq = '\0';
	*key = trim(s);
	*value = trim(eq + 1);
	return 1;
}

/* --- hours ------------------------------------------------------------------------- */

/* the grammar is proto/hours.h's, the same the admin CLI and device.conf's reader check */
_Static_assert(CONTROLLER_MAX_WINDOWS == PROTO_HOURS_WINDOWS,
               "a site's windows fit the engine's policy");

int controller_config_parse_hours(const char *text, struct controller_site_policy *policy,
                                  char *err, size_t errlen)
{
	struct proto_hours h;
	int rc = proto_hours_parse(text, &h, err, errlen);
	policy->window_count = h.count;
	for (size_t i = 0; i < h.count; i++)
		policy->windows[i] = (struct controller_time_window){
		        h.windows[i].days, h.windows[i].open, h.windows[i].close};
	return rc;
}

/* --- card-sector.key --------------------------------------------------------------- */

/* The card key file (proto/bundle.h reads it) as cardlib's sector key. */
static void card_key_of(const struct proto_card_key *f, struct cardlib_sector_key *k)
{
	memset(k, 0, sizeof(*k));
	k->auth = CARDLIB_AUTH_EV2;
	k->sys.aid = f->aid;
	memcpy(k->sys.sys_id, f->sys_id, f->sys_id_len);
	k->sys.sys_id_len = f->sys_id_len;
	k->slot = f->slot;
	k->version = f->version;
	memcpy(k->master, f->master, sizeof(k->master));
	k->reads_value = f->reads_value;
	k->has_previous = f->has_previous;
	k->previous_version = f->previous_version;
	memcpy(k->previous, f->previous, sizeof(k->previous));
}

_Static_assert(PROTO_CARD_KEY_SYS_MAX == CARDLIB_DIVERSIFY_SYS_MAX &&
                       PROTO_CARD_KEY_AES_LEN == CARDLIB_AES_KEY_LEN &&
                       PROTO_CARD_KEY_SLOTS == CARDLIB_LAYOUT_SECTORS_MAX,
               "the card key file holds what cardlib's sector key holds");

static int load_card_key(const char *path, uint16_t sector, struct cardlib_sector_key *k, char *err,
                         size_t errlen)
{
	struct parse_ctx p = {path, 0, err, errlen};
	memset(k, 0, sizeof(*k));
	/* read(2), not stdio: no buffer of ours or libc's keeps the master keys afterwards */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return failf(&p, "cannot open: %s", strerror(errno));
	char text[PROTO_CARD_KEY_TEXT_MAX * 4];
	size_t len = 0;
	ssize_t r = 0;
	while (len < sizeof(text) && (r = read(fd, text + len, sizeof(text) - len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	int rc = 0;
	if (r < 0)
		rc = failf(&p, "cannot read: %s", strerror(errno));
	else if (len == sizeof(text))
		rc = failf(&p, "longer than %zu bytes: not a card key file", sizeof(text) - 1);
	struct proto_card_key f;
	char why[CONTROLLER_ERROR_MAX];
	if (rc == 0 && proto_card_key_parse(text, len, &f, why, sizeof(why), &p.line) != 0)
		rc = failf(&p, "%s", why);
	mbedtls_platform_zeroize(text, sizeof(text));
	p.line = 0;
	if (rc == 0 && f.sector != sector)
		rc = failf(&p, "sector %u: device.conf says sector %u", (unsigned)f.sector,
		           (unsigned)sector);
	if (rc == 0)
		card_key_of(&f, k);
	mbedtls_platform_zeroize(&f, sizeof(f));
	return rc;
}

/* --- device.conf -------------------------------------------------------------------- */

/* A zone must be one the C library knows, or hours would silently be UTC. */
static int zone_check(struct parse_ctx *p, const char *key, const char *tz)
{
	char zpath[CONTROLLER_PATH_MAX + 64];
	snprintf(zpath, sizeof(zpath), "/usr/share/zoneinfo/%s", tz);
	if (tz[0] != ':' && strstr(tz, "..") == NULL && access(zpath, R_OK) != 0 &&
	    strcmp(tz, "UTC") != 0)
		return failf(p, "%s '%s': not a time zone of this system (%s)", key, tz, zpath);
	return 0;
}

/* device.conf's text (cap bytes at most): its length, or -1 with the reason. */
static int read_device_conf(struct parse_ctx *p, char *text, size_t cap, size_t *len)
{
	FILE *f = fopen(p->file, "r");
	if (!f)
		return failf(p, "cannot open the provisioning bundle's device.conf: %s",
		             strerror(errno));
	*len = fread(text, 1, cap, f);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return failf(p, "cannot read: %s", strerror(errno));
	if (*len == cap)
		return failf(p, "longer than %zu bytes: not a device.conf", cap - 1);
	return 0;
}

/* The bundle's values (proto/device_conf.h read them) as the gate uses them. */
static int device_of(struct parse_ctx *p, const struct proto_device_conf *d,
                     const unsigned lines[PROTO_DEVICE_KEYS], struct controller_config *c)
{
	_Static_assert(sizeof(c->device_id) >= sizeof(d->device_id) &&
	                       sizeof(c->server) >= sizeof(d->server) &&
	                       sizeof(c->tz) >= sizeof(d->tz) &&
	                       sizeof(c->site_name) >= sizeof(d->site_name) &&
	                       CONTROLLER_PATH_MAX >= PROTO_DEVICE_LONG_MAX,
	               "the controller holds what device.conf may say");
	strcpy(c->device_id, d->device_id);
	c->gate = d->gate;
	c->site = d->site;
	strcpy(c->site_name, d->site_name);
	c->sector = d->sector;
	strcpy(c->sector_name, d->sector_name);
	strcpy(c->server, d->server);
	strcpy(c->server_name, d->server_name);
	strcpy(c->tz, d->tz);
	/* the zone quota periods are numbered in, the same on the server and every gate
	 * (proto/calendar.h); a bundle written before it existed counts in the site's */
	strcpy(c->period_tz, d->period_tz);
	char err[CONTROLLER_ERROR_MAX];
	p->line = lines[PROTO_DEVICE_KEY_HOURS];
	if (d->hours[0] && controller_config_parse_hours(d->hours, &c->policy, err, sizeof(err)))
		return failf(p, "%s", err);
	c->policy.antipassback_minutes = d->antipassback_minutes;
	c->policy.refused_fares = d->refused_fares;
	c->stale.mode = d->expiry == PROTO_EXPIRY_GRACE ? CONTROLLER_STALE_ACCEPT_KNOWN
	                                                : CONTROLLER_STALE_REFUSE_ALL;
	c->stale.grace_hours = d->grace_hours;
	char *const paths[PROTO_DEVICE_FILES] = {
	        [PROTO_DEVICE_CERTIFICATE] = c->cert_path,
	        [PROTO_DEVICE_PRIVATE_KEY] = c->key_path,
	        [PROTO_DEVICE_CA] = c->ca_path,
	        [PROTO_DEVICE_LIST_KEY] = c->list_key_path,
	        [PROTO_DEVICE_ISSUER_KEY] = c->issuer_key_path,
	        [PROTO_DEVICE_CARD_KEY] = c->card_key_path,
	        [PROTO_DEVICE_GATE_CERT] = c->gate_cert_path,
	};
	for (unsigned i = 0; i < PROTO_DEVICE_FILES; i++) {
		const char *k = proto_device_key_name(PROTO_DEVICE_KEY_CERTIFICATE + i);
		if (!d->file[i][0]) { /* the gate certificate of a bundle older than format 3 */
			paths[i][0] = '\0';
			continue;
		}
		p->line = lines[PROTO_DEVICE_KEY_CERTIFICATE + i];
		if (resolve_path(p, k, c->bundle_dir, d->file[i], paths[i], CONTROLLER_PATH_MAX))
			return -1;
		if (access(paths[i], R_OK) != 0)
			return failf(p, "%s '%s': cannot read %s: %s", k, d->file[i], paths[i],
			             strerror(errno));
	}
	p->line = 0;
	return 0;
}

static int load_device(struct controller_config *c, char *err, size_t errlen)
{
	char path[CONTROLLER_PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/device.conf", c->bundle_dir);
	struct parse_ctx p = {path, 0, err, errlen};
	char *text = malloc(PROTO_DEVICE_CONF_TEXT_MAX);
	struct proto_device_conf *d = malloc(sizeof(*d));
	unsigned lines[PROTO_DEVICE_KEYS];
	char why[CONTROLLER_ERROR_MAX];
	size_t len = 0;
	int rc = 0;
	if (!text || !d)
		rc = failf(&p, "out of memory");
	if (rc == 0)
		rc = read_device_conf(&p, text, PROTO_DEVICE_CONF_TEXT_MAX, &len);
	if (rc == 0 && proto_device_conf_parse(text, len, d, lines, why, sizeof(why), &p.line) != 0)
		rc = failf(&p, "%s", why);
	if (rc == 0)
		rc = device_of(&p, d, lines, c);
	free(text);
	free(d);
	if (rc)
		return rc;
	if (zone_check(&p, "tz", c->tz) != 0 ||
	    (c->period_tz[0] && zone_check(&p, "period-tz", c->period_tz) != 0))
		return -1;
	return load_card_key(c->card_key_path, c->sector, &c->card_key, err, errlen);
}

/* --- secrets and the state directory (issue 10) ---------------------------------------- */

/*
 * What --check and every start verify beyond the syntax: the device key is a private key
 * and the certificate's (a garbage key used to pass --check and fail only at the first
 * handshake); secrets are not readable by other users and the state directory (journal,
 * lists) not writable by them — as ssh does, refused with the fix to apply, never used
 * without a word.
 */
static int check_secrets(const struct controller_config *c, char *err, size_t errlen)
{
	struct parse_ctx p = {c->config_path, 0, err, errlen};
	struct stat st;
	const struct {
		const char *name, *path;
	} secrets[] = {{"private-key", c->key_path}, {"card-key", c->card_key_path}};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		if (stat(secrets[i].path, &st) != 0)
			return failf(&p, "%s %s: %s", secrets[i].name, secrets[i].path,
			             strerror(errno));
		if (st.st_mode & 077)
			return failf(&p,
			             "%s %s is readable by other users (mode %04o): a secret must "
			             "be the controller's alone (chmod 600 it)",
			             secrets[i].name, secrets[i].path,
			             (unsigned)(st.st_mode & 07777));
	}
	if (stat(c->state_dir, &st) == 0 && (st.st_mode & 022))
		return failf(&p,
		             "state-dir %s is writable by other users (mode %04o): anyone could "
		             "replace the journal or the lists (chmod 700 it)",
		             c->state_dir, (unsigned)(st.st_mode & 07777));

	mbedtls_pk_context key;
	mbedtls_x509_crt crt;
	char why[128];
	int rc, ret = 0;
	mbedtls_pk_init(&key);
	mbedtls_x509_crt_init(&crt);
	if ((rc = mbedtls_pk_parse_keyfile(&key, c->key_path, NULL)) != 0) {
		mbedtls_strerror(rc, why, sizeof(why));
		ret = failf(&p, "private-key %s: not a private key (%s)", c->key_path, why);
	} else if ((rc = mbedtls_x509_crt_parse_file(&crt, c->cert_path)) != 0) {
		mbedtls_strerror(rc, why, sizeof(why));
		ret = failf(&p, "certificate %s: not a certificate (%s)", c->cert_path, why);
	} else if (mbedtls_pk_check_pair(&crt.pk, &key) != 0) {
		ret = failf(&p, "private-key %s is not the key of certificate %s", c->key_path,
		            c->cert_path);
	}
	mbedtls_x509_crt_free(&crt);
	mbedtls_pk_free(&key);
	return ret;
}

/* --- the controller's file ---------------------------------------------------------- */

static int controller_key(struct parse_ctx *p, struct controller_config *c, const char *dir,
                          const char *k, const char *v, unsigned *seen)
{
	unsigned long n;
	int rc;
	if (strcmp(k, "bundle") == 0) {
		*seen |= 1;
		return resolve_path(p, k, dir, v, c->bundle_dir, sizeof(c->bundle_dir));
	}
	if (strcmp(k, "reader") == 0) {
		*seen |= 2;
		if (strchr(v, ':') == NULL)
			return failf(p,
			             "reader '%s': expected a libnfc connection string such as "
			             "pn532_uart:/dev/ttyUSB0",
			             v);
		return copy_str(p, k, v, c->reader, sizeof(c->reader));
	}
	if (strcmp(k, "state-dir") == 0) {
		*seen |= 4;
		return resolve_path(p, k, dir, v, c->state_dir, sizeof(c->state_dir));
	}
	if (strcmp(k, "qr-scanner") == 0)
		return resolve_path(p, k, dir, v, c->qr_scanner, sizeof(c->qr_scanner));
	if (strcmp(k, "gate") == 0) {
		*seen |= 8;
		if (strcmp(v, "bench") == 0)
			c->gate_kind = CONTROLLER_GATE_BENCH;
		else if (strcmp(v, "gpio") == 0)
			c->gate_kind = CONTROLLER_GATE_GPIO;
		else
			return failf(p, "gate '%s': expected bench or gpio", v);
		return 0;
	}
	if (strcmp(k, "bench-dir") == 0)
		return resolve_path(p, k, dir, v, c->bench_dir, sizeof(c->bench_dir));
	if (strcmp(k, "bench-reader") == 0) {
		for (const char *s = v; *s; s++)
			if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
				return failf(p,
				             "bench-reader '%s': expected letters, digits, - and _",
				             v);
		return copy_str(p, k, v, c->bench_reader, sizeof(c->bench_reader));
	}
	if (strcmp(k, "gpio-chip") == 0)
		return copy_str(p, k, v, c->gpio.chip, sizeof(c->gpio.chip));
	struct {
		const char *name;
		int *dst;
	} lines[] = {{"gpio-relay-line", &c->gpio.relay_line},
	             {"gpio-green-line", &c->gpio.green_line},
	             {"gpio-red-line", &c->gpio.red_line}};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (strcmp(k, lines[i].name) == 0) {
			rc = parse_uint(p, k, v, 0, 1023, &n);
			*lines[i].dst = (int)n;
			return rc;
		}
	}
	if (strcmp(k, "gpio-active-low") == 0)
		return parse_bool(p, k, v, &c->gpio.active_low);
	if (strcmp(k, "log") == 0) {
		if (strcmp(v, "stderr") == 0)
			c->log_syslog = false;
		else if (strcmp(v, "syslog") == 0)
			c->log_syslog = true;
		else
			return failf(p, "log '%s': expected stderr or syslog", v);
		return 0;
	}
	if (strcmp(k, "log-taps") == 0)
		return parse_bool(p, k, v, &c->log_verbose);
	if (strcmp(k, "metrics") == 0) {
		/* read as the metrics endpoint reads it (link/addr.h); that it is loopback is
		 * checked when it is bound */
		struct link_addr a;
		if (link_addr_parse(v, LINK_ADDR_NUMERIC | LINK_ADDR_ANY_PORT, &a) != 0)
			return failf(p,
			             "metrics '%s': expected ADDR:PORT on loopback, e.g. "
			             "127.0.0.1:9465",
			             v);
		return copy_str(p, k, v, c->metrics, sizeof(c->metrics));
	}
	/* The plain numbers, each with its bounds. */
	const struct {
		const char *name;
		unsigned long min, max;
		unsigned *dst;
	} numbers[] = {
	        {"open-ms", 100, 60000, &c->open_ms},
	        {"retention-days", 1, 3650, &c->retention_days},
	        {"batch-max", 1, 100000, &c->batch_max},
	        {"reconnect-min-ms", 10, 600000, &c->reconnect_min_ms},
	        {"reconnect-max-ms", 10, 3600000, &c->reconnect_max_ms},
	        {"keepalive-s", 1, 60, &c->keepalive_s},
	};
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		if (strcmp(k, numbers[i].name) == 0) {
			rc = parse_uint(p, k, v, numbers[i].min, numbers[i].max, &n);
			*numbers[i].dst = (unsigned)n;
			return rc;
		}
	}
	return failf(p, "unknown key '%s'", k);
}

static void config_defaults(struct controller_config *c)
{
	memset(c, 0, sizeof(*c));
	c->gpio.relay_line = c->gpio.green_line = c->gpio.red_line = -1;
	c->open_ms = 3000;
	c->log_verbose = true;
	c->retention_days = 90;
	c->batch_max = 1000;
	c->reconnect_min_ms = 500;
	c->reconnect_max_ms = 60000;
	c->keepalive_s = 30;
	c->stale.mode = CONTROLLER_STALE_REFUSE_ALL;
}

static int check_controller(struct parse_ctx *p, struct controller_config *c, unsigned seen)
{
	static const char *const names[] = {"bundle", "reader", "state-dir", "gate"};
	p->line = 0;
	for (unsigned b = 0; b < 4; b++)
		if (!(seen & (1u << b)))
			return failf(p, "missing key '%s'", names[b]);
	if (c->gate_kind == CONTROLLER_GATE_BENCH && (!c->bench_dir[0] || !c->bench_reader[0]))
		return failf(p, "gate = bench needs bench-dir and bench-reader");
	if (c->gate_kind == CONTROLLER_GATE_GPIO) {
		if (!c->gpio.chip[0])
			return failf(p, "gate = gpio needs gpio-chip");
		if (c->gpio.relay_line < 0)
			return failf(p, "gate = gpio needs gpio-relay-line");
		int l[3] = {c->gpio.relay_line, c->gpio.green_line, c->gpio.red_line};
		for (int i = 0; i < 3; i++)
			for (int j = i + 1; j < 3; j++)
				if (l[i] >= 0 && l[i] == l[j])
					return failf(p, "gpio line %d is used twice", l[i]);
	}
	if (c->reconnect_min_ms > c->reconnect_max_ms)
		return failf(p, "reconnect-min-ms %u is above reconnect-max-ms %u",
		             c->reconnect_min_ms, c->reconnect_max_ms);
	/* A scanner not there (yet) is no configuration error: USB devices come and go, the
	 * daemon opens it when it appears (issue 13). One it may not use is. */
	if (c->qr_scanner[0] && access(c->qr_scanner, R_OK | W_OK) != 0 && errno != ENOENT &&
	    errno != ENODEV && errno != ENXIO)
		return failf(p, "qr-scanner '%s': cannot open: %s", c->qr_scanner, strerror(errno));
	return 0;
}

static int load_synced_card_key(struct controller_config *c, char *err, size_t errlen);

int controller_config_load(const char *path, struct controller_config *out, char *err,
                           size_t errlen)
{
	struct controller_config *c = malloc(sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	config_defaults(c);
	struct parse_ctx p = {path, 0, err, errlen};
	int rc = 0;
	if (strlen(path) >= sizeof(c->config_path)) {
		rc = failf(&p, "path too long");
		goto out;
	}
	strcpy(c->config_path, path);
	char dir[CONTROLLER_PATH_MAX];
	strcpy(dir, path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	FILE *f = fopen(path, "r");
	if (!f) {
		rc = failf(&p, "cannot open: %s", strerror(errno));
		goto out;
	}
	char line[LINE_MAX_LEN];
	unsigned seen = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		p.line++;
		char *k = NULL, *v = NULL;
		int s = split_line(&p, line, &k, &v);
		if (s < 0)
			rc = -1;
		else if (s > 0)
			rc = controller_key(&p, c, dir, k, v, &seen);
	}
	fclose(f);
	if (rc == 0)
		rc = check_controller(&p, c, seen);
	if (rc == 0)
		rc = load_device(c, err, errlen);
	if (rc == 0)
		rc = check_secrets(c, err, errlen);
	if (rc == 0)
		rc = load_synced_card_key(c, err, errlen);
	if (rc == 0)
		*out = *c;
out:
	controller_config_wipe(c);
	free(c);
	return rc;
}

/* --- card keys over the sync link (issue 11) ----------------------------------------------- */

int controller_card_key_path(const struct controller_config *cfg, char *path, size_t cap)
{
	int n = snprintf(path, cap, "%s/%s", cfg->state_dir, CONTROLLER_SYNCED_CARD_KEY);
	return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int controller_card_key_save(const struct controller_config *cfg,
                             const struct cardlib_sector_key *k)
{
	char path[CONTROLLER_PATH_MAX], tmp[CONTROLLER_PATH_MAX + 8];
	if (controller_card_key_path(cfg, path, sizeof(path)) != 0 ||
	    snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
		return -1;
	/* the bundle's card-sector.key format, as the server sent it (proto/bundle.h) */
	struct proto_card_key f = {
	        .aid = k->sys.aid,
	        .sys_id_len = k->sys.sys_id_len,
	        .sector = cfg->sector,
	        .slot = k->slot,
	        .version = k->version,
	        .reads_value = k->reads_value,
	        .has_previous = k->has_previous,
	        .previous_version = k->previous_version,
	};
	memcpy(f.sys_id, k->sys.sys_id, k->sys.sys_id_len);
	memcpy(f.master, k->master, sizeof(f.master));
	memcpy(f.previous, k->previous, sizeof(f.previous));
	char text[PROTO_CARD_KEY_TEXT_MAX];
	int n = proto_card_key_write(&f, "as the sync server sent it last (issue 11)", text,
	                             sizeof(text));
	mbedtls_platform_zeroize(&f, sizeof(f));
	if (n < 0)
		return -1;
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ok = fd >= 0;
	for (size_t off = 0; ok && off < (size_t)n;) {
		ssize_t w = write(fd, text + off, (size_t)n - off);
		if (w < 0 && errno == EINTR)
			continue;
		ok = w > 0;
		off += ok ? (size_t)w : 0;
	}
	mbedtls_platform_zeroize(text, sizeof(text));
	ok = ok && fsync(fd) == 0;
	if (fd >= 0)
		ok = close(fd) == 0 && ok;
	if (ok)
		ok = rename(tmp, path) == 0;
	if (!ok) {
		unlink(tmp);
		return -1;
	}
	int dfd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* What the server sent last supersedes the bundle's keys, unless the bundle is newer (a
 * gate provisioned again after rotations). A damaged copy is an error: the gate is told. */
static int load_synced_card_key(struct controller_config *c, char *err, size_t errlen)
{
	char path[CONTROLLER_PATH_MAX];
	struct cardlib_sector_key k;
	if (controller_card_key_path(c, path, sizeof(path)) != 0 || access(path, F_OK) != 0)
		return 0;
	if (load_card_key(path, c->sector, &k, err, errlen) != 0)
		return -1;
	if (k.version >= c->card_key.version && k.slot == c->card_key.slot)
		c->card_key = k;
	mbedtls_platform_zeroize(&k, sizeof(k));
	return 0;
}

void controller_config_wipe(struct controller_config *cfg)
{
	mbedtls_platform_zeroize(&cfg->card_key, sizeof(cfg->card_key));
}
