/*
 * proto/device_conf.h — device.conf, the provisioning file of a gate's bundle: written by
 * `citypass-admin device add`, read by the gate at start-up (and by the test tools that
 * play a gate). One writer, one reader, here (issue 14); the format is docs/admin.md's.
 * The bundle's other text file, card-sector.key, is proto/bundle.h's.
 *
 *   # comment lines, blank lines; '#' also ends a line's value
 *   format = 3                   absent in bundles written before it (format 1)
 *   device-id = g1               1 to 63 letters, digits, '-', '_', '.' (the certificate CN)
 *   gate = 1                     1 to 4294967295
 *   site = 1                     1 to 4294967295
 *   site-name = pool-n           text (below)
 *   sector = 1                   1 to 65535
 *   sector-name = pool           text
 *   server = localhost:7443      HOST:PORT (link/addr.h); from format 3 on, up to 8
 *                                separated by commas (issue 16: the gate tries them in
 *                                order and fails over), 1023 characters in all
 *   server-name = localhost      the server certificate's CN: letters, digits, '-', '.', '_'
 *   tz = Europe/Paris            text: the site's zone
 *   period-tz = Europe/Paris     text: the deployment's zone (quota periods)
 *   hours = Mon-Fri 09:00-19:00  text, in proto/hours.h's grammar
 *   antipassback-minutes = 30    0 to 1440
 *   refused-fares = 0            0 to 15, optional (not written by device add yet)
 *   expiry-policy = refuse       or grace:HOURS, 1 to 720
 *   certificate = device.crt     the other files' names, relative to the bundle: text
 *   private-key = device.key
 *   ca = ca.crt
 *   list-public-key = list.pub.pem
 *   issuer-public-key = issuer.pub.pem
 *   card-key = card-sector.key
 *   gate-certificate = gate.cert the gate certificate phones check (format 3, optional:
 *                                issue 17)
 *
 * Text is 1 to 127 printable characters (1023 for hours, server and file names) without '#' and
 * without spaces at either end: what the line format cannot carry (a line end, a comment
 * sign, a control character) is refused by the writer as by the reader. Each key at most
 * once; an unknown key is refused. Format 1 needs device-id, gate, site, sector, server,
 * tz and the six files (the rest defaults: no server name pinned, periods in tz, always
 * open, no anti-passback, refuse when stale); format 2 needs every key but refused-fares;
 * format 3 is format 2 whose `server` may list several servers and which may name a
 * gate-certificate (issue 17: optional, so that a format-3 file without it still reads; a
 * gate without it serves no phone over NFC, docs/phone-tokens.md).
 * A format newer than this reader is refused with a sentence saying so.
 */
#ifndef PROTO_DEVICE_CONF_H
#define PROTO_DEVICE_CONF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The newest format read. proto_device_conf_write writes the oldest that carries the file:
 * 2, or 3 when `server` lists several servers (a gate of format 2 reads one) or the bundle
 * has a gate certificate (every bundle device add makes since issue 17). */
#define PROTO_DEVICE_CONF_FORMAT   3
#define PROTO_DEVICE_SERVERS_MAX   8 /* addresses in `server` (format 3) */
#define PROTO_DEVICE_ID_MAX        64
#define PROTO_DEVICE_TEXT_MAX      128
#define PROTO_DEVICE_LONG_MAX      1024  /* hours and file names */
#define PROTO_DEVICE_CONF_TEXT_MAX 16384 /* the longest file the writer makes, and more */

/* The keys, in the order the writer writes them; the index of proto_device_conf_parse's
 * lines[]. */
enum proto_device_key {
	PROTO_DEVICE_KEY_FORMAT,
	PROTO_DEVICE_KEY_DEVICE_ID,
	PROTO_DEVICE_KEY_GATE,
	PROTO_DEVICE_KEY_SITE,
	PROTO_DEVICE_KEY_SITE_NAME,
	PROTO_DEVICE_KEY_SECTOR,
	PROTO_DEVICE_KEY_SECTOR_NAME,
	PROTO_DEVICE_KEY_SERVER,
	PROTO_DEVICE_KEY_SERVER_NAME,
	PROTO_DEVICE_KEY_TZ,
	PROTO_DEVICE_KEY_PERIOD_TZ,
	PROTO_DEVICE_KEY_HOURS,
	PROTO_DEVICE_KEY_ANTIPASSBACK,
	PROTO_DEVICE_KEY_REFUSED_FARES,
	PROTO_DEVICE_KEY_EXPIRY,
	PROTO_DEVICE_KEY_CERTIFICATE, /* the files, in enum proto_device_file's order */
	PROTO_DEVICE_KEY_PRIVATE_KEY,
	PROTO_DEVICE_KEY_CA,
	PROTO_DEVICE_KEY_LIST_KEY,
	PROTO_DEVICE_KEY_ISSUER_KEY,
	PROTO_DEVICE_KEY_CARD_KEY,
	PROTO_DEVICE_KEY_GATE_CERT,
	PROTO_DEVICE_KEYS
};

enum proto_device_file {
	PROTO_DEVICE_CERTIFICATE, /* device.crt */
	PROTO_DEVICE_PRIVATE_KEY, /* device.key */
	PROTO_DEVICE_CA,          /* ca.crt */
	PROTO_DEVICE_LIST_KEY,    /* list.pub.pem */
	PROTO_DEVICE_ISSUER_KEY,  /* issuer.pub.pem */
	PROTO_DEVICE_CARD_KEY,    /* card-sector.key (proto/bundle.h) */
	PROTO_DEVICE_GATE_CERT,   /* gate.cert (cardlib/token.h); "": none (format < 3) */
	PROTO_DEVICE_FILES
};

/* What a gate does with a list past its expiry (DESIGN.md §5). */
enum proto_expiry_mode {
	PROTO_EXPIRY_REFUSE = 0, /* "refuse": refuse everyone */
	PROTO_EXPIRY_GRACE = 1,  /* "grace:HOURS": accept known passes for that long */
};

struct proto_device_conf {
	unsigned format; /* as read: 1, 2 or 3 */
	char device_id[PROTO_DEVICE_ID_MAX];
	uint32_t gate, site;
	char site_name[PROTO_DEVICE_TEXT_MAX]; /* "": absent (format 1) */
	uint16_t sector;
	char sector_name[PROTO_DEVICE_TEXT_MAX];
	char server[PROTO_DEVICE_LONG_MAX];      /* HOST:PORT, or several separated by commas
	                                          * (format 3; link_addr_list_parse reads it) */
	char server_name[PROTO_DEVICE_TEXT_MAX]; /* "": none pinned (format 1) */
	char tz[PROTO_DEVICE_TEXT_MAX];
	char period_tz[PROTO_DEVICE_TEXT_MAX]; /* "": the site's, tz (format 1) */
	char hours[PROTO_DEVICE_LONG_MAX];     /* "": always (format 1) */
	uint16_t antipassback_minutes;
	uint8_t refused_fares; /* a bit mask; 0 is not written */
	enum proto_expiry_mode expiry;
	uint16_t grace_hours; /* PROTO_EXPIRY_GRACE: 1 to 720 */
	char file[PROTO_DEVICE_FILES][PROTO_DEVICE_LONG_MAX];
};

/*
 * The file's text for c (format 2, or 3 for several servers; c->format is not read) into buf,
 * NUL-terminated. Its length; PROTO_ERR_BUNDLE with the sentence the reader would say in
 * err (may be NULL) for a value the file cannot carry; PROTO_ERR_BUFSIZE when cap is too
 * small; PROTO_ERR_ARG for NULL.
 */
int proto_device_conf_write(const struct proto_device_conf *c, char *buf, size_t cap, char *err,
                            size_t errlen);

/*
 * Read device.conf's text (len bytes, not necessarily NUL-terminated) into *out. lines
 * (may be NULL) receives the line each key was read from, 0 for an absent one (the caller
 * names the line when a value is wrong beyond the syntax: an unreadable file, an unknown
 * zone). 0, or PROTO_ERR_BUNDLE with one sentence in err ("gate '0': expected a number from
 * 1 to 4294967295") and the line it is about in *err_line (0: the file as a whole).
 */
int proto_device_conf_parse(const char *text, size_t len, struct proto_device_conf *out,
                            unsigned lines[PROTO_DEVICE_KEYS], char *err, size_t errlen,
                            unsigned *err_line);

/* The name of a key ("device-id"), NULL out of range. */
const char *proto_device_key_name(enum proto_device_key key);

/* "refuse" or "grace:HOURS" (1 to 720): 0, or -1. How sites store the policy, too. */
int proto_expiry_parse(const char *text, enum proto_expiry_mode *mode, uint16_t *grace_hours);

#ifdef __cplusplus
}
#endif

#endif /* PROTO_DEVICE_CONF_H */
