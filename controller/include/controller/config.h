/*
 * controller/config.h — what citypass-controller reads at start-up (and again on SIGHUP).
 *
 * Two sources, both `key = value` lines with `#` comments:
 *   - the controller's own file (--config FILE): where the provisioning bundle is, the
 *     reader's libnfc connection string, the QR scanner line, the gate backend and its
 *     settings, the state directory, logging and sync tuning (docs/controller.md,
 *     "Configuration");
 *   - the provisioning bundle written by `citypass-admin device add` (device.conf and the
 *     files it names, card-sector.key; docs/admin.md).
 * Every setting is checked when loaded: an unknown key, a missing mandatory key, a
 * malformed value or an unreadable file is one sentence naming the file, the line, the
 * value and what was expected. Nothing is half-loaded: on error the caller's previous
 * configuration stays as it was.
 */
#ifndef CONTROLLER_CONFIG_H
#define CONTROLLER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cardlib/layout.h"
#include "controller/engine.h"
#include "controller/list_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CONTROLLER_PATH_MAX  1024
#define CONTROLLER_NAME_MAX  128
#define CONTROLLER_ERROR_MAX 2048

enum controller_gate_kind {
	CONTROLLER_GATE_BENCH = 0, /* report to citypass-hil's control socket */
	CONTROLLER_GATE_GPIO = 1,  /* a relay and LEDs on GPIO lines (libgpiod) */
};

struct controller_gpio_config {
	char chip[CONTROLLER_NAME_MAX]; /* "gpiochip0", "/dev/gpiochip0" or a label */
	int relay_line;                 /* line offsets; -1: not wired */
	int green_line, red_line;
	bool active_low; /* lines are driven low to switch on */
};

struct controller_config {
	/* --- the controller's own file ----------------------------------------------- */
	char config_path[CONTROLLER_PATH_MAX];
	char bundle_dir[CONTROLLER_PATH_MAX];
	char reader[CONTROLLER_PATH_MAX];     /* libnfc connection string */
	char qr_scanner[CONTROLLER_PATH_MAX]; /* serial device of the QR scanner, "" none */
	char metrics[CONTROLLER_NAME_MAX];    /* Prometheus endpoint ADDR:PORT, "" off */
	char state_dir[CONTROLLER_PATH_MAX];  /* lists/ and journal.db live here */
	enum controller_gate_kind gate_kind;
	char bench_dir[CONTROLLER_PATH_MAX];    /* bench: citypass-hil's run directory */
	char bench_reader[CONTROLLER_NAME_MAX]; /* bench: the reader's name there */
	struct controller_gpio_config gpio;     /* gpio */
	unsigned open_ms;                       /* how long the relay stays open */
	bool log_syslog;                        /* else stderr */
	bool log_verbose;                       /* one line per tap (default on) */
	unsigned retention_days;                /* identifying journal rows */
	unsigned batch_max;                     /* sync tuning */
	unsigned reconnect_min_ms, reconnect_max_ms, keepalive_s;

	/* --- device.conf --------------------------------------------------------------- */
	char device_id[CONTROLLER_NAME_MAX];
	uint32_t gate, site;
	char site_name[CONTROLLER_NAME_MAX];
	uint16_t sector;
	char sector_name[CONTROLLER_NAME_MAX];
	char server[CONTROLLER_PATH_MAX];      /* HOST:PORT, or several by commas (issue 16) */
	char server_name[CONTROLLER_NAME_MAX]; /* the server certificate's CN, pinned; "" none */
	char tz[CONTROLLER_NAME_MAX];          /* the site's: hours, subscription days */
	char period_tz[CONTROLLER_NAME_MAX];   /* the deployment's: quota periods; "" = tz */
	struct controller_site_policy policy;
	struct controller_stale_policy stale;
	char cert_path[CONTROLLER_PATH_MAX], key_path[CONTROLLER_PATH_MAX];
	char ca_path[CONTROLLER_PATH_MAX], list_key_path[CONTROLLER_PATH_MAX];
	char issuer_key_path[CONTROLLER_PATH_MAX], card_key_path[CONTROLLER_PATH_MAX];
	/* the gate certificate phones check (issue 17); "": a bundle made before it */
	char gate_cert_path[CONTROLLER_PATH_MAX];

	/* --- card-sector.key ------------------------------------------------------------ */
	struct cardlib_sector_key card_key;
};

/*
 * Load and check everything. 0, or -1 with one sentence in err (at most errlen bytes,
 * e.g. "controller.conf:4: gate 'relay': expected bench or gpio"). *cfg is written only
 * on success.
 */
int controller_config_load(const char *path, struct controller_config *cfg, char *err,
                           size_t errlen);

/*
 * Parse device.conf's `hours` grammar ("always", or "Mon-Fri 09:00-12:00,14:00-19:00;Sat
 * 10:00-18:00") into policy windows. 0, or -1 with the reason in err.
 */
int controller_config_parse_hours(const char *text, struct controller_site_policy *policy,
                                  char *err, size_t errlen);

/*
 * Issue 11: the card keys the sync server sends (a sector key rotation) are kept in the
 * state directory, in card-sector.key's format, and supersede the bundle's at start-up
 * unless the bundle's version is newer. controller_card_key_save writes them atomically
 * (0600); 0 or -1.
 */
#define CONTROLLER_SYNCED_CARD_KEY "card-sector.key"
int controller_card_key_path(const struct controller_config *cfg, char *path, size_t cap);
int controller_card_key_save(const struct controller_config *cfg,
                             const struct cardlib_sector_key *k);

/* Wipe secrets (the card master key) from a configuration no longer used. */
void controller_config_wipe(struct controller_config *cfg);

#ifdef __cplusplus
}
#endif

#endif /* CONTROLLER_CONFIG_H */
