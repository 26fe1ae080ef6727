/*
 * proto/src/device_conf.c — device.conf (proto/device_conf.h): its one writer and its one
 * reader. One table says what each key holds; the writer checks every value it writes with
 * the reader's own checks, so what it writes reads back, and a value the line format cannot
 * carry (a line end in a site name) is refused when the bundle is made, not at the gate.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bundle_text.h"
#include "link/addr.h"
#include "proto/device_conf.h"
#include "proto/error.h"
#include "proto/hours.h"

enum kind {
	K_FORMAT,
	K_ID,        /* the certificate CN */
	K_NUMBER,    /* min to max */
	K_TEXT,      /* PROTO_DEVICE_TEXT_MAX */
	K_LONG_TEXT, /* PROTO_DEVICE_LONG_MAX: hours, in proto/hours.h's grammar */
	K_HOST_NAME, /* server-name */
	K_SERVER,    /* HOST:PORT */
	K_EXPIRY,
	K_FILE, /* PROTO_DEVICE_LONG_MAX */
};

static const struct key {
	const char *name;
	enum kind kind;
	unsigned since; /* required from this format on; 0: never */
	unsigned long min, max;
} keys[PROTO_DEVICE_KEYS] = {
        [PROTO_DEVICE_KEY_FORMAT] = {"format", K_FORMAT, 0, 1, 255},
        [PROTO_DEVICE_KEY_DEVICE_ID] = {"device-id", K_ID, 1, 0, 0},
        [PROTO_DEVICE_KEY_GATE] = {"gate", K_NUMBER, 1, 1, UINT32_MAX},
        [PROTO_DEVICE_KEY_SITE] = {"site", K_NUMBER, 1, 1, UINT32_MAX},
        [PROTO_DEVICE_KEY_SITE_NAME] = {"site-name", K_TEXT, 2, 0, 0},
        [PROTO_DEVICE_KEY_SECTOR] = {"sector", K_NUMBER, 1, 1, 65535},
        [PROTO_DEVICE_KEY_SECTOR_NAME] = {"sector-name", K_TEXT, 2, 0, 0},
        [PROTO_DEVICE_KEY_SERVER] = {"server", K_SERVER, 1, 0, 0},
        [PROTO_DEVICE_KEY_SERVER_NAME] = {"server-name", K_HOST_NAME, 2, 0, 0},
        [PROTO_DEVICE_KEY_TZ] = {"tz", K_TEXT, 1, 0, 0},
        [PROTO_DEVICE_KEY_PERIOD_TZ] = {"period-tz", K_TEXT, 2, 0, 0},
        [PROTO_DEVICE_KEY_HOURS] = {"hours", K_LONG_TEXT, 2, 0, 0},
        [PROTO_DEVICE_KEY_ANTIPASSBACK] = {"antipassback-minutes", K_NUMBER, 2, 0, 1440},
        [PROTO_DEVICE_KEY_REFUSED_FARES] = {"refused-fares", K_NUMBER, 0, 0, 15},
        [PROTO_DEVICE_KEY_EXPIRY] = {"expiry-policy", K_EXPIRY, 2, 0, 0},
        [PROTO_DEVICE_KEY_CERTIFICATE] = {"certificate", K_FILE, 1, 0, 0},
        [PROTO_DEVICE_KEY_PRIVATE_KEY] = {"private-key", K_FILE, 1, 0, 0},
        [PROTO_DEVICE_KEY_CA] = {"ca", K_FILE, 1, 0, 0},
        [PROTO_DEVICE_KEY_LIST_KEY] = {"list-public-key", K_FILE, 1, 0, 0},
        [PROTO_DEVICE_KEY_ISSUER_KEY] = {"issuer-public-key", K_FILE, 1, 0, 0},
        [PROTO_DEVICE_KEY_CARD_KEY] = {"card-key", K_FILE, 1, 0, 0},
        /* issue 17: optional, format 3 on (a file naming it is format 3) */
        [PROTO_DEVICE_KEY_GATE_CERT] = {"gate-certificate", K_FILE, 0, 0, 0},
};

const char *proto_device_key_name(enum proto_device_key key)
{
	return (unsigned)key < PROTO_DEVICE_KEYS ? keys[key].name : NULL;
}

int proto_expiry_parse(const char *text, enum proto_expiry_mode *mode, uint16_t *grace_hours)
{
	if (strcmp(text, "refuse") == 0) {
		*mode = PROTO_EXPIRY_REFUSE;
		*grace_hours = 0;
		return 0;
	}
	if (strncmp(text, "grace:", 6) != 0)
		return -1;
	const char *h = text + 6;
	unsigned v = 0;
	size_t n = strlen(h);
	if (n == 0 || n > 3)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (h[i] < '0' || h[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(h[i] - '0');
	}
	if (v < 1 || v > 720)
		return -1;
	*mode = PROTO_EXPIRY_GRACE;
	*grace_hours = (uint16_t)v;
	return 0;
}

/* The string field of a text key, and its size. */
static char *text_field(struct proto_device_conf *c, enum proto_device_key k, size_t *cap)
{
	*cap = PROTO_DEVICE_TEXT_MAX;
	switch (k) {
	case PROTO_DEVICE_KEY_DEVICE_ID:
		*cap = sizeof(c->device_id);
		return c->device_id;
	case PROTO_DEVICE_KEY_SITE_NAME:
		return c->site_name;
	case PROTO_DEVICE_KEY_SECTOR_NAME:
		return c->sector_name;
	case PROTO_DEVICE_KEY_SERVER:
		*cap = sizeof(c->server);
		return c->server;
	case PROTO_DEVICE_KEY_SERVER_NAME:
		return c->server_name;
	case PROTO_DEVICE_KEY_TZ:
		return c->tz;
	case PROTO_DEVICE_KEY_PERIOD_TZ:
		return c->period_tz;
	case PROTO_DEVICE_KEY_HOURS:
		*cap = sizeof(c->hours);
		return c->hours;
	default:
		*cap = PROTO_DEVICE_LONG_MAX;
		return c->file[k - PROTO_DEVICE_KEY_CERTIFICATE];
	}
}

static void number_store(struct proto_device_conf *c, enum proto_device_key k, unsigned long n)
{
	switch (k) {
	case PROTO_DEVICE_KEY_GATE:
		c->gate = (uint32_t)n;
		break;
	case PROTO_DEVICE_KEY_SITE:
		c->site = (uint32_t)n;
		break;
	case PROTO_DEVICE_KEY_SECTOR:
		c->sector = (uint16_t)n;
		break;
	case PROTO_DEVICE_KEY_ANTIPASSBACK:
		c->antipassback_minutes = (uint16_t)n;
		break;
	default: /* PROTO_DEVICE_KEY_REFUSED_FARES */
		c->refused_fares = (uint8_t)n;
		break;
	}
}

static unsigned long number_of(const struct proto_device_conf *c, enum proto_device_key k)
{
	switch (k) {
	case PROTO_DEVICE_KEY_GATE:
		return c->gate;
	case PROTO_DEVICE_KEY_SITE:
		return c->site;
	case PROTO_DEVICE_KEY_SECTOR:
		return c->sector;
	case PROTO_DEVICE_KEY_ANTIPASSBACK:
		return c->antipassback_minutes;
	default:
		return c->refused_fares;
	}
}

/* What the line format cannot carry: control characters (a line end among them), the
 * comment sign, spaces at either end (the reader trims them). UTF-8 passes: site names
 * are the town's words. */
static int text_ok(struct bundle_in *in, const char *key, const char *v, size_t cap, int path)
{
	size_t n = strlen(v);
	if (n == 0)
		return bundle_fail(in, "%s: empty value: expected %s", key,
		                   path ? "a path" : "a value");
	if (n >= cap)
		return path ? bundle_fail(in,
		                          "%s '%.64s...': path too long (%zu characters at most)",
		                          key, v, cap - 1)
		            : bundle_fail(in, "%s '%.64s...': longer than %zu characters", key, v,
		                          cap - 1);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7F || v[i] == '#')
			return bundle_fail(in,
			                   "%s: a control character or '#' at character %zu: a "
			                   "value is one line without comments",
			                   key, i + 1);
	if (v[0] == ' ' || v[n - 1] == ' ')
		return bundle_fail(in, "%s '%s': spaces at either end would be lost", key, v);
	return 0;
}

static int host_name_char(char ch, int underscore)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || (underscore && ch == '_');
}

/* Check value v of key k and store it into c; the reader's check, and the writer's. */
static int one_value(struct bundle_in *in, enum proto_device_key k, const char *v,
                     struct proto_device_conf *c)
{
	const struct key *key = &keys[k];
	unsigned long n;
	size_t cap;
	char *dst;
	int rc;
	switch (key->kind) {
	case K_FORMAT:
		if (bundle_number(in, key->name, v, key->min, key->max, &n))
			return PROTO_ERR_BUNDLE;
		if (n > PROTO_DEVICE_CONF_FORMAT)
			return bundle_fail(in, "format %lu: newer than this reader (%u): update it",
			                   n, PROTO_DEVICE_CONF_FORMAT);
		c->format = (unsigned)n;
		return 0;
	case K_NUMBER:
		if (bundle_number(in, key->name, v, key->min, key->max, &n))
			return PROTO_ERR_BUNDLE;
		number_store(c, k, n);
		return 0;
	case K_EXPIRY:
		if (proto_expiry_parse(v, &c->expiry, &c->grace_hours) != 0)
			return bundle_fail(in,
			                   "expiry-policy '%s': expected refuse or grace:HOURS (1 "
			                   "to 720)",
			                   v);
		return 0;
	default:
		break;
	}
	dst = text_field(c, k, &cap);
	if ((rc = text_ok(in, key->name, v, cap, key->kind == K_FILE)) != 0)
		return rc;
	if (key->kind == K_ID || key->kind == K_HOST_NAME)
		for (const char *q = v; *q; q++)
			if (!host_name_char(*q, 1))
				return key->kind == K_ID
				               ? bundle_fail(in,
				                             "device-id '%s': expected 1 to 63 "
				                             "letters, "
				                             "digits, '-', '_' or '.'",
				                             v)
				               : bundle_fail(
				                         in,
				                         "server-name '%s': expected a host name",
				                         v);
	struct proto_hours hours;
	char why[300];
	if (key->kind == K_LONG_TEXT && proto_hours_parse(v, &hours, why, sizeof(why)) != 0)
		return bundle_fail(in, "%s", why);
	struct link_addr a[PROTO_DEVICE_SERVERS_MAX];
	size_t n_servers = 0, bad = 0;
	if (key->kind == K_SERVER &&
	    (rc = link_addr_list_parse(v, 0, a, PROTO_DEVICE_SERVERS_MAX, &n_servers, &bad)) != 0)
		return bad > 1 || rc == LINK_ADDR_ERR_LIST_EMPTY || rc == LINK_ADDR_ERR_LIST_TWICE
		               ? bundle_fail(in,
		                             "server '%s': address %zu: expected HOST:PORT, "
		                             "at most %d separated by commas (%s)",
		                             v, bad, PROTO_DEVICE_SERVERS_MAX,
		                             link_addr_strerror(rc))
		               : bundle_fail(in, "server '%s': expected HOST:PORT (%s)", v,
		                             link_addr_strerror(rc));
	/* issue 17: a gate of format 2 knows no gate certificate */
	if (k == PROTO_DEVICE_KEY_GATE_CERT && c->format < 3)
		return bundle_fail(in,
		                   "gate-certificate '%s': needs format = 3 (this file is format "
		                   "%u)",
		                   v, c->format);
	/* issue 16: a gate of format 2 reads one address; a list is format 3's */
	if (key->kind == K_SERVER && n_servers > 1 && c->format < 3)
		return bundle_fail(in,
		                   "server '%s': several servers need format = 3 (this file is "
		                   "format %u)",
		                   v, c->format);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* --- writer ---------------------------------------------------------------------------- */

int proto_device_conf_write(const struct proto_device_conf *c, char *buf, size_t cap, char *err,
                            size_t errlen)
{
	if (!c || !buf || cap == 0)
		return PROTO_ERR_ARG;
	struct proto_device_conf scratch; /* what the reader would store: only checked */
	struct bundle_in in = {NULL, 0, 0, 0, err, errlen, NULL};
	struct bundle_out o = {buf, cap, 0, 0};
	char value[PROTO_DEVICE_LONG_MAX + 1];
	/* the oldest format that carries the file, so gates of the previous release read
	 * what they can: 2, or 3 for a list of servers (issue 16) or a gate certificate
	 * (issue 17) */
	memset(&scratch, 0, sizeof(scratch));
	const int gate_cert = c->file[PROTO_DEVICE_GATE_CERT][0] != '\0';
	scratch.format = gate_cert || (strnlen(c->server, sizeof(c->server)) < sizeof(c->server) &&
	                               strchr(c->server, ','))
	                         ? 3
	                         : 2;
	bundle_put(&o, "# citypass controller provisioning (docs/admin.md)\n");
	bundle_put(&o, "format = %u\n", scratch.format);
	for (unsigned k = PROTO_DEVICE_KEY_FORMAT + 1; k < PROTO_DEVICE_KEYS; k++) {
		size_t fcap;
		const char *field;
		switch (keys[k].kind) {
		case K_NUMBER:
			if (k == PROTO_DEVICE_KEY_REFUSED_FARES && c->refused_fares == 0)
				continue;
			snprintf(value, sizeof(value), "%lu", number_of(c, k));
			break;
		case K_EXPIRY:
			if (c->expiry == PROTO_EXPIRY_GRACE)
				snprintf(value, sizeof(value), "grace:%u",
				         (unsigned)c->grace_hours);
			else if (c->expiry == PROTO_EXPIRY_REFUSE)
				snprintf(value, sizeof(value), "refuse");
			else
				snprintf(value, sizeof(value), "mode %d", (int)c->expiry);
			break;
		default:
			if (k == PROTO_DEVICE_KEY_GATE_CERT && !gate_cert)
				continue;
			field = text_field((struct proto_device_conf *)c, k, &fcap);
			/* a field without its NUL reads as one character too long */
			snprintf(value, sizeof(value), "%.*s", (int)fcap, field);
			break;
		}
		if (one_value(&in, k, value, &scratch) != 0) {
			memset(buf, 0, cap);
			return PROTO_ERR_BUNDLE;
		}
		bundle_put(&o, "%s = %s\n", keys[k].name, value);
	}
	if (o.over) {
		memset(buf, 0, cap);
		return PROTO_ERR_BUFSIZE;
	}
	return (int)o.n;
}

/* --- reader ---------------------------------------------------------------------------- */

/* One "key = value" line (already trimmed, not blank): its key, its value checked. */
static int one_line(struct bundle_in *in, char *s, struct proto_device_conf *c,
                    unsigned lines[PROTO_DEVICE_KEYS])
{
	char *eq = strchr(s, '=');
	if (!eq)
		return bundle_fail(in, "'%s': expected key = value", s);
	*eq = '\0';
	char *name = bundle_trim(s), *v = bundle_trim(eq + 1);
	unsigned k = 0;
	while (k < PROTO_DEVICE_KEYS && strcmp(keys[k].name, name) != 0)
		k++;
	if (k == PROTO_DEVICE_KEYS)
		return bundle_fail(in, "unknown key '%s'", name);
	if (lines[k])
		return bundle_fail(in, "%s: given twice (line %u and line %u)", name, lines[k],
		                   in->line);
	if (k == PROTO_DEVICE_KEY_FORMAT)
		for (unsigned i = 0; i < PROTO_DEVICE_KEYS; i++)
			if (lines[i])
				return bundle_fail(in, "format: must come before every other key");
	lines[k] = in->line;
	return one_value(in, k, v, c);
}

int proto_device_conf_parse(const char *text, size_t len, struct proto_device_conf *out,
                            unsigned lines[PROTO_DEVICE_KEYS], char *err, size_t errlen,
                            unsigned *err_line)
{
	struct bundle_in in = {text, len, 0, 0, err, errlen, err_line};
	unsigned seen[PROTO_DEVICE_KEYS] = {0};
	if (err_line)
		*err_line = 0;
	if (lines)
		memset(lines, 0, sizeof(seen));
	if (!text || !out)
		return PROTO_ERR_ARG;
	memset(out, 0, sizeof(*out));
	out->format = 1;
	int rc = 0;
	char line[BUNDLE_LINE_MAX], *s;
	while (rc == 0 && (rc = bundle_next_line(&in, line, sizeof(line), &s)) == 1) {
		char *hash = strchr(s, '#'); /* a comment after a value, as always */
		if (hash) {
			*hash = '\0';
			s = bundle_trim(s);
		}
		rc = *s ? one_line(&in, s, out, seen) : 0;
	}
	in.line = 0;
	for (unsigned k = 0; rc == 0 && k < PROTO_DEVICE_KEYS; k++)
		if (keys[k].since && out->format >= keys[k].since && !seen[k])
			rc = bundle_fail(&in, "missing key '%s'", keys[k].name);
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	else if (lines)
		memcpy(lines, seen, sizeof(seen));
	return rc;
}
